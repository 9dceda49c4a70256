"""What the spectral rules (eigh, svd, eig) share: gap matrices and the gauge checks (private).

A decomposition leaves some choices free: the sign or phase of each
eigenvector (singular pair), and the basis inside a cluster of equal
eigenvalues (singular values).  Their derivative rules divide by eigenvalue
gaps; this module decides which gaps count as zero and what a reverse pass
does when the loss depends on a free choice.

* "Nearly coincide" (:func:`degenerate_pairs`): |w_i − w_j| ≤ eps^(2/3) ·
  max|w| per matrix (eigh, eig: the spectrum's scale, since the computed
  eigenvalues carry errors of order k·eps·‖A‖), or |s_i − s_j| ≤ eps^(2/3) ·
  max(s_i, s_j) for singular values (relative: see svd.md, section 6).
  eps^(2/3) is 3.7e-11 in double and 2.4e-5 in single precision: far above
  the rounding that splits an exactly repeated value, far below the gaps of
  genuinely distinct ones.  The rotation inside such a cluster is held fixed:
  its gap terms are set to zero.
* A loss that depends on the phase of a vector raises ValueError (the loss is
  not a function of the matrix at any input).
* A loss that depends on the basis inside a cluster, or that is not a
  symmetric function of the cluster's values, gets :class:`GaugeWarning` and
  the gradient with the in-cluster rotation held fixed.
"""

from __future__ import annotations

import warnings

import numpy as np

from .. import ops
from .. import _lapack_extreme
from ..backend import namespace_of
from . import _common as C
from ..tape import Primitive, Tracer

__all__ = ["GaugeWarning", "degenerate_pairs", "inverse_gaps", "check_phase",
           "check_clusters", "check_second_order", "gauge_weights", "gap_tol", "rel_tol",
           "values_tol"]


class GaugeWarning(RuntimeWarning):
    """A reverse pass met a loss that depends on a choice the decomposition leaves free.

    At (nearly) repeated eigenvalues or singular values the basis of the
    cluster is not a function of the matrix.  The gradient returned holds
    that basis fixed; it is the gradient of the loss only if the loss depends
    on the cluster through its values symmetrically and through its subspace.
    Turn it into an error with
    ``warnings.simplefilter("error", linalgad.GaugeWarning)``.
    """


_EPS = {}


def _eps(dtype):
    dtype = np.dtype(dtype)
    e = _EPS.get(dtype)
    if e is None:
        e = _EPS[dtype] = float(np.finfo(dtype).eps)
    return e


def gap_tol(dtype):
    """eps^(2/3) of dtype's precision: the relative gap below which values coincide."""
    return _eps(dtype) ** (2.0 / 3.0)


def tie_weights(sv, idx):
    """(w, any_tie): weights 1/k on the k singular values tied with sv[..., idx] (within
    gap_tol, relative), 0 elsewhere — the cluster mean that the spectral norm, its
    reciprocal side and cond differentiate at a tie (norms.md §6) — and whether any
    matrix of the stack has a tie there."""
    w, count = _lapack_extreme.tie_weights(namespace_of(sv), sv, idx, gap_tol(sv.dtype))
    return w, bool((count > 1).any())


def rel_tol(dtype):
    """√eps: how large (relative) a gauge-dependent part of a cotangent must be to count."""
    return _eps(dtype) ** 0.5


def values_tol(dtype):
    """eps^(1/4): how much (relative) value cotangents may differ inside a cluster.

    A smooth symmetric loss has w̄_i − w̄_j of order f''·gap there; a loss
    that singles out one value has a difference of order |w̄|.
    """
    return _eps(dtype) ** 0.25


def degenerate_pairs(w, relative=False, ordered=False, tol=None, scale=None):
    """Concrete mask (..., k, k): True where i ≠ j and w_i, w_j nearly coincide.

    None when no pair does (the common case).  ``ordered``: w is sorted (eigh,
    svd), so a cluster shows up between neighbours and an O(k) test decides.
    ``scale`` (absolute, per matrix): the spectrum's scale when w holds only some of
    its values (eigh's subset by index), in place of max|w|.
    """
    wv = C.value(w)
    xp = namespace_of(wv)
    k = wv.shape[-1]
    if k < 2 or wv.size == 0:
        return None
    tol = gap_tol(wv.dtype) if tol is None else tol
    if scale is not None:
        gap = xp.abs(wv[..., None, :] - wv[..., :, None])
        bound = tol * xp.asarray(C.value(scale))[..., None, None]
        mask = (gap <= bound) & ~_eye(xp, k)
        return mask if bool(mask.any()) else None
    if ordered and wv.ndim == 1 and type(wv) is np.ndarray and wv.dtype.kind == "f":
        # one sorted vector (a matrix's eigh or SVD values), the common case: the largest
        # |w| is at an end, so the test is a difference, a comparison and any() (3 µs of
        # the general path's 9 at k = 64); a tie found falls through to build the mask
        step = wv[1:] - wv[:-1]
        if relative:
            # |w_i − w_{i+1}| ≤ tol · max(|w_i|, |w_{i+1}|): for non-negative values
            # (singular values) the larger of each pair is the one nearer the top
            first, last = float(wv[0]), float(wv[-1])
            if min(first, last) >= 0:
                bound = (wv[:-1] if first >= last else wv[1:]) * tol
            else:
                bound = np.maximum(np.abs(wv[1:]), np.abs(wv[:-1]))
                bound *= tol
        else:
            bound = tol * max(abs(float(wv[0])), abs(float(wv[-1])))
        if not (np.abs(step, out=step) <= bound).any():
            return None
    aw = xp.abs(wv)
    # the absolute threshold, one per matrix (..., 1): every test below compares with it
    delta = None if relative else tol * aw.max(axis=-1, keepdims=True)
    if ordered:
        near = wv[..., 1:] - wv[..., :-1]
        near = xp.abs(near, out=near)
        if relative:
            scale = xp.maximum(aw[..., 1:], aw[..., :-1])
            scale *= tol
        else:
            scale = delta
        if not bool((near <= scale).any()):
            return None
    elif not relative and xp is np and k >= 16 and wv.size * k >= 16384 and \
            _no_close_pair(wv, delta):
        # (where the k × k gap matrices are large: 5.2 → 0.8 ms for 1000 of order 32;
        # for one matrix of order 64 both take about 30 µs)
        return None
    gap = xp.abs(wv[..., None, :] - wv[..., :, None])
    if relative:
        bound = xp.maximum(aw[..., None, :], aw[..., :, None])
        bound *= tol
    else:
        bound = delta[..., None]
    mask = (gap <= bound) & ~_eye(xp, k)
    return mask if bool(mask.any()) else None


def _no_close_pair(wv, delta, max_offset=4):
    """True when no two entries of wv (..., k), real or complex, are within ``delta``
    (..., 1) of each other (|w_i − w_j| ≤ delta, as degenerate_pairs computes it); False
    when some are, or when this cheap test cannot tell.

    Sorted by real part, two entries can only be that close if their real parts are
    (|Re(w_i − w_j)| ≤ |w_i − w_j|), and if the entries t places apart have no such pair,
    neither have those further apart.  So the offsets t = 1, 2, … are compared until one
    has no pair with close real parts: O(k) work per offset instead of the k × k gap
    matrix (a real matrix's conjugate pairs share their real part, so t = 1 always has
    candidates).  After ``max_offset`` offsets (many real parts within delta, e.g. a
    skew-symmetric matrix's imaginary spectrum) it gives up (False)."""
    order = np.argsort(wv.real, axis=-1)
    ws = np.take_along_axis(wv, order, axis=-1)
    rs = ws.real
    for t in range(1, min(wv.shape[-1], max_offset + 1)):
        close = (rs[..., t:] - rs[..., :-t]) <= delta
        if not close.any():
            return True
        if (close & (np.abs(ws[..., t:] - ws[..., :-t]) <= delta)).any():
            return False
    return wv.shape[-1] <= max_offset + 1       # every offset was compared


_EYES = {}


def _eye(xp, k):
    if xp is not np:
        return xp.eye(k, dtype=bool)
    e = _EYES.get(k)
    if e is None:
        if len(_EYES) > 64:
            _EYES.clear()
        e = _EYES[k] = np.eye(k, dtype=bool)
    return e


def _gaps_impl(w, zero, plus):
    xp = namespace_of(w)
    k = w.shape[-1]
    D = w[..., None, :] + w[..., :, None] if plus else w[..., None, :] - w[..., :, None]
    idx = xp.arange(k)
    if not plus:
        D[..., idx, idx] = 1              # the diagonal of 1/(w_j − w_i) is set to 0 below
    if zero is not None:
        D = xp.where(zero, 1, D)
    G = 1 / D
    if not plus:
        G[..., idx, idx] = 0
    if zero is not None:
        G = xp.where(zero, 0, G)
    return G


def _gaps_vjp(G_bar, needs, G, res, w, zero, plus):
    H = -ops._conj(G * G) * G_bar          # dG = −G² ∘ dD (holomorphic in w)
    cols = ops.sum(H, axis=-2)
    rows = ops.sum(H, axis=-1)
    return (ops.fit(cols + rows if plus else cols - rows, w),)


def _gaps_jvp(tangents, G, res, w, zero, plus):
    (w_dot,) = tangents
    dD = ops.expand_dims(w_dot, -2) + ops.expand_dims(w_dot, -1) if plus else \
        ops.expand_dims(w_dot, -2) - ops.expand_dims(w_dot, -1)
    return -(G * G) * dD


_gaps = Primitive("inverse_gaps", _gaps_impl, _gaps_vjp, _gaps_jvp)


def inverse_gaps(w, mask, plus=False):
    """G with G_ij = 1/(w_j − w_i) (or 1/(w_i + w_j) with plus=True), differentiable in w.

    Zero where ``mask`` (..., k, k) is True (None: nowhere); for the difference also on
    the diagonal.
    """
    return _gaps(w, zero=mask, plus=bool(plus))


def gauge_weights(k, like):
    """Fixed distinct weights c (k,) for registry losses Σ c_i (vector products), in the
    real precision and on the device of the array ``like``: distinct, so eigenvector
    (singular vector) derivatives are exercised."""
    v = C.peek(like)
    return namespace_of(v).asarray(np.linspace(1.0, 2.0, k).astype(np.finfo(v.dtype).dtype))


def _scale(xv, xp):
    return xp.abs(xv).max(axis=(-2, -1)) if xv.size else 0.0


def check_phase(op, K, what, values=None, value_bar=None, size=None):
    """Raise ValueError if Im diag(K) is not ~0: the loss depends on a phase.  ``size``
    (per matrix): the vector cotangent's own size, when K = VᴴV̄ may be far smaller than
    V̄ (a loss through the vectors' complement, span(V) only: K is rounding then)."""
    Kv = C.value(K)
    if Kv.dtype.kind != "c" or not Kv.size:
        return
    xp = namespace_of(Kv)
    scale = _scale(Kv, xp)
    if size is not None:            # per column (..., k): the pair's own cotangent norms
        scale = C.value(size)
    check_phase_diagonal(op, xp.diagonal(Kv, 0, -2, -1), scale, what, values, value_bar)


def column_size(*arrays, rows=()):
    """Per matrix, the column norms (row norms for the entries of ``rows``: Vᴴ's cotangent)
    of the given vector cotangents, the larger of them column by column (..., k); None
    skipped."""
    size = None
    for i, a in enumerate(arrays):
        if a is None:
            continue
        v = C.value(a)
        xp = namespace_of(v)
        n = xp.sqrt(xp.sum(xp.abs(v) ** 2, axis=-1 if i in rows else -2))
        size = n if size is None else xp.maximum(size, n)
    return size


def gradient_units_size(s, n):
    """Per pair i: the cotangent norms n (..., k) judged in the gradient's units: pair i's
    phase/cluster part moves Ā by about part/s_i, the largest column term by n_j/s_j; floored
    at the rounding of the largest column (so a cancelling cotangent does not trip it)."""
    sv, nv = C.value(s), C.value(n)
    xp = namespace_of(sv)
    if not sv.size:
        return nv
    eps = _eps(sv.dtype)
    smax = sv.max(axis=-1, keepdims=True)
    sj = xp.maximum(sv, xp.maximum(eps * smax, np.finfo(sv.dtype).tiny))
    g = (nv / sj).max(axis=-1, keepdims=True)
    nmax = nv.max(axis=-1, keepdims=True)
    return xp.maximum(sj * g, 100 * eps ** 0.5 * nmax)


def with_full_pairs(fn):
    """fn(..., computed=None): a few-values formula evaluated with the full decomposition's
    vectors instead of the kernel's ``computed`` subset — what the fused few-values
    primitives' derivatives trace (eigh_tridiagonal, eig_banded)."""
    return lambda *args, computed, **params: fn(*args, computed=None, **params)


def hermitian_left_factor(op, w, V, w_bar, V_bar):
    """L = V (diag(w̄) + F ∘ VᴴV̄) of a Hermitian eigendecomposition's cotangent Ā_h = L Vᴴ
    (eigh.md, section 3), gap terms dropped inside clusters, after the phase, second-order
    and cluster checks; the callers form L Vᴴ, or only the part of it they need (a band)."""
    K = None
    mask = degenerate_pairs(w, ordered=True)
    if V_bar is not None:
        K = ops.matmul(ops.mH(V), V_bar)
        check_phase(op, K, "an eigenvector", w, w_bar)
    check_second_order(op, w, (w_bar, V_bar), ordered=True)
    check_clusters(op, mask, K, w_bar)
    left = V * ops.expand_dims(w_bar, -2) if w_bar is not None else None
    if K is not None:
        FK = ops.matmul(V, inverse_gaps(w, mask) * K)
        left = FK if left is None else FK + left
    return left


def hermitian_tangents(w, V, Z):
    """(ẇ, V̇) from Z = Vᴴ Ȧ V: ẇ = Re diag(Z), V̇ = V (F ∘ Z) (eigh.md, section 4)."""
    d = ops.diagonal(Z, 0, -2, -1)
    w_dot = ops.real(d) if ops._is_complex(d) else d
    return w_dot, ops.matmul(V, inverse_gaps(w, degenerate_pairs(w, ordered=True)) * Z)


def value_floor(values, value_bar, xp):
    """max|w̄|·max|w| per matrix: the loss's sensitivity to the values, in the units of a
    vector cotangent's K = VᴴV̄ (loss units; V is unitless)."""
    wv, bv = C.value(values), C.value(value_bar)
    if not wv.size:
        return 0.0
    return xp.abs(bv).max(axis=-1) * xp.abs(wv).max(axis=-1)


def check_phase_diagonal(op, kd, scale, what, values=None, value_bar=None):
    """check_phase given diag(K) (..., n) and the per-matrix scale of K (...).

    A phase part is judged against K's own size and, where the loss also has a value
    cotangent, against its sensitivity to the values (``value_floor``): a loss whose
    vector cotangent cancels to rounding — Re tr(V f(w) V⁻¹), whose vector terms cancel
    exactly — leaves a K of pure rounding, whose "phase part" is as large as K itself;
    what it would change in the gradient is below √ε of the value part's."""
    kd = C.value(kd)
    if kd.dtype.kind != "c" or not kd.size:
        return
    xp = namespace_of(kd)
    tol = rel_tol(kd.dtype)
    im = xp.abs(kd.imag)
    scale = C.value(scale)
    if scale.ndim == kd.ndim - 1:
        scale = scale[..., None]
    if value_bar is not None:
        vf = xp.asarray(value_floor(values, value_bar, xp))
        scale = xp.maximum(scale, vf[..., None] if vf.ndim else vf)
    if bool((im > tol * scale).any()):
        raise ValueError(
            f"{op}: the loss depends on the phase of {what}, which is arbitrary (any "
            "e^{iφ} multiple is an equally valid output), so its gradient is not defined. "
            "Make the loss invariant under that phase (e.g. use |v|², v vᴴ, or products "
            "of matching left and right vectors).")


# where a warned loss is a function of the matrix, the rule that differentiates it exactly
_EXACT_RULE = {
    "eigh": " A function of the matrix, V f(w) Vᴴ, is differentiated exactly by "
            "linalgad.linalg.funmh(a, f).",
    "svd": " A function of the singular values, U f(s) Vᴴ, is differentiated exactly by "
           "linalgad.linalg.generalized_funm(a, f).",
}


# ... and where second derivatives are exact at ties
_SECOND_ORDER_RULE = {
    "eigh": " linalgad.linalg.funmh(a, f) has exact second derivatives of V f(w) Vᴴ "
            "there (and of Σ f(wᵢ), its trace).",
    "svd": " linalgad.linalg.generalized_funm(a, f) has exact second derivatives of "
           "U f(s) Vᴴ there, and Σ f(sᵢ) = tr funmh(aᴴa, λ ↦ f(√λ)) of Σ f(sᵢ).",
}


def second_order_tol(dtype):
    """ε^(1/3): below this relative gap a second derivative through the gap terms loses
    more than about ε^(1/3) to rounding (amplified by 1/gap²)."""
    return _eps(dtype) ** (1.0 / 3.0)


def check_second_order(op, values, cotangents, *, relative=False, ordered=False, scale=None):
    """Warn (GaugeWarning) when a reverse pass with a traced cotangent (a second
    derivative is being taken) meets values within ε^(1/3) of each other (relative as
    for the clusters): inside a cluster the in-cluster curvature is missing, and near
    one the gap terms amplify rounding by 1/gap² (the derivation documents, section 6)."""
    if not any(isinstance(c, Tracer) for c in cotangents):
        return
    wv = C.value(values)
    if degenerate_pairs(wv, relative=relative, ordered=ordered,
                        tol=second_order_tol(wv.dtype), scale=scale) is None:
        return
    warnings.warn(
        f"{op}: second derivatives at (nearly) repeated values are not reliable: inside "
        "a cluster the in-cluster curvature terms are missing, even for losses whose first "
        "derivatives are exact there, and near one the gap terms amplify rounding by "
        "1/gap² (the derivation document, section 6)." + _SECOND_ORDER_RULE.get(op, ""),
        GaugeWarning, stacklevel=3)


def check_clusters(op, mask, X, values_bar, *, hermitian_part_free=True, what="eigenvectors",
                   scale=None):
    """Warn (GaugeWarning) if the loss depends on a free choice inside a cluster, or if
    this reverse pass is being differentiated there.

    X           the coefficients the gap terms multiply (VᴴV̄, Jᴴ... ); on a degenerate
                pair its skew-Hermitian part (or, with hermitian_part_free=False, the
                entry itself) must vanish for a basis-independent loss
    values_bar  the eigenvalue (singular value) cotangent, or None; it must be
                constant inside a cluster for a loss symmetric in the cluster's values
    """
    if mask is None:
        return
    xp = namespace_of(mask)
    tol = None
    bad = False
    if X is not None:
        Xv = C.value(X)
        tol = rel_tol(Xv.dtype)
        part = (Xv - xp.conj(xp.swapaxes(Xv, -1, -2))) / 2 if hermitian_part_free else Xv
        if scale is None:
            size = _scale(Xv, xp)[..., None, None]
        else:
            sc = xp.asarray(C.value(scale))
            size = xp.maximum(sc[..., :, None], sc[..., None, :]) \
                if sc.ndim == mask.ndim - 1 else sc[..., None, None]
        bad = bool((xp.abs(part) > tol * size)[mask].any())
    if not bad and values_bar is not None:
        bv = C.value(values_bar)
        tol = values_tol(bv.dtype)
        diff = xp.abs(bv[..., None, :] - bv[..., :, None])
        scale = xp.abs(bv).max(axis=-1)[..., None, None] if bv.shape[-1] else 0.0
        bad = bool((diff > tol * scale)[mask].any())
        if not bad and X is not None and hermitian_part_free:
            # the loss couples the cluster's values and vectors (V f(w) Vᴴ through eigh,
            # U diag(s) Vᴴ through svd): its cotangents carry the Hermitian part of X
            # inside the cluster, off the diagonal, while the gradient needs that part
            # times f' — which no cotangent of the values can hold (section 6, "the
            # limit of the method").  Also fires for a sum of two exact losses, one of
            # the values and one of the cluster's subspace: "check this loss".
            herm = (Xv + xp.conj(xp.swapaxes(Xv, -1, -2))) / 2
            off = mask & ~xp.eye(mask.shape[-1], dtype=bool)
            both = (xp.abs(bv[..., :, None]) > tol * scale) | \
                (xp.abs(bv[..., None, :]) > tol * scale)
            coupled = (xp.abs(herm) > rel_tol(Xv.dtype) * _scale(Xv, xp)[..., None, None]) \
                & both & off
            if bool(coupled.any()):
                warnings.warn(
                    f"{op}: the loss couples the values and the {what} of a cluster of "
                    "(nearly) equal values (a function of the matrix written through "
                    f"{op}'s factors, such as (V * f(w)) @ Vᴴ): the gradient's terms inside "
                    "the cluster are not in the cotangents, and the gradient returned "
                    "misses them (see the derivation document, section 6)."
                    + _EXACT_RULE.get(op, ""), GaugeWarning, stacklevel=4)
                return
    if bad:
        warnings.warn(
            f"{op}: the loss depends on the choice of {what} inside a cluster of (nearly) "
            "equal values, or is not a symmetric function of the cluster's values; the "
            "gradient there is not determined by the decomposition. The gradient returned "
            "holds the basis of the cluster fixed (see the derivation document, section 6)."
            + _EXACT_RULE.get(op, ""),
            GaugeWarning, stacklevel=4)


# -- a few eigenvalues by index (eigh_tridiagonal, eig_banded) ----------------------------

def few_pays(n, k):
    """Whether k of n eigenpairs by index are computed alone (bisection and inverse
    iteration) rather than through the full decomposition."""
    return n >= 64 and 8 * k <= n


def few_window(lo, hi, n):
    """(a, b): the pairs lo..hi with a neighbour on each side, which shows a tie at the
    range's ends."""
    return max(lo - 1, 0), min(hi + 1, n - 1)


def few_trim(w, V, lo, hi, a, scale):
    """(w, V) of the pairs lo..hi from the window a..b's, and whether two of the window's
    values tie (within gap_tol of max|w| + scale, the matrix's norm bound): then the full
    path's rule and its warnings apply."""
    xp = C.namespace_of(w)
    tie = bool((xp.abs(w[..., 1:] - w[..., :-1])
                <= gap_tol(w.dtype) * (xp.abs(w).max(axis=-1) + scale)[..., None]).any())
    return w[..., lo - a:hi - a + 1], V[..., lo - a:hi - a + 1], tie
