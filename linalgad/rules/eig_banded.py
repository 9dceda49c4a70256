"""eig_banded, eigvals_banded: A = V diag(w) Vᴴ for a Hermitian A given by one triangle of its
band.   Derivation: docs/derivations/eig_banded.md

A = ℋ(ab), the full band of the Hermitian matrix one of whose triangles ab holds (banded.py's
_hermitian_band: the stored diagonals, their conjugate mirrors, the real diagonal), so eigh's
rule (eigh.md) read on the band gives the cotangent of the full band, and the chain rule
through ℋ that of the triangle read:

    Ā_h = V (diag(w̄) + F ∘ VᴴV̄) Vᴴ,   ā_full = band(Ā_h)

formed without the n × n product (banded.py's band_product: O(n² u) from the n × n factors,
O(n k u) for the values' part alone), and the forward mode Z = Vᴴ (Ȧ V) with Ȧ V from Ȧ's
band (band_matmul, O(n² u)).  Clusters, the phase test, the second-order warning and the
GaugeWarning are eigh's (_spectral.py).  The forward pass is LAPACK's band reduction
(SciPy's eig_banded: sbevd / hbevd), every pair; selections are slices of it when traced.
"""

from __future__ import annotations

import operator

import numpy as np

from .. import ops, transforms
from ..backend import band_from_dense, kernels_for
from ..registry import Domain, Rule
from ..tape import Primitive, Tracer
from ..testing import matrices as M
from . import _common as C
from . import _spectral as S
from ._spectral import few_pays as _few_pays       # a module name: the tests switch it
from .banded import _corners, _hermitian_band, band_apply, band_of_product, junk_corners

__all__ = ["eig_banded", "eigvals_banded", "RULES"]


def _forward(full, *, u):
    return kernels_for(full).eig_banded(getitem_rows(full, u), op="eig_banded")


def getitem_rows(full, u):
    """The upper form (rows 0..u) of a full Hermitian band (..., 2u + 1, n)."""
    return full[..., :u + 1, :]


def _vjp(cts, needs, out, res, full, *, u):
    """ā_full = band(V (diag(w̄) + F ∘ VᴴV̄) Vᴴ)."""
    w_bar, V_bar = cts
    w, V = out
    if w_bar is None and V_bar is None:
        return (None,)
    L = S.hermitian_left_factor("eig_banded", w, V, w_bar, V_bar)
    return (ops.fit(band_of_product(L, ops.mH(V), u, u), full),)


def _jvp(tangents, out, res, full, *, u):
    """Z = Vᴴ (Ȧ V), ẇ = Re diag(Z), V̇ = V (F ∘ Z)."""
    (t,) = tangents
    w, V = out
    return S.hermitian_tangents(w, V, ops.matmul(ops.mH(V), band_apply(t, V, u, u)))


_band_eigh = Primitive("eig_banded", _forward, _vjp, _jvp, multiple_results=True)


# -- a few eigenvalues alone: O(n k u) after the forward pass ------------------------------------
#
# eigvals_banded (or eigvals_only=True) with select='i' of k ≪ n values needs only their k
# eigenvectors for the gradient (ā = band(V_S diag(w̄) V_Sᴴ)) and for the forward mode
# (ẇ_i = Re v_iᴴ Ȧ v_i): LAPACK's bisection and inverse iteration (sbevx) find them without
# the other n − k.  The two formulas are fused primitives: their kernels use the k vectors;
# their derivatives (second order) trace the same formulas through the full decomposition,
# which alone has the vectors' derivatives (as eigvalsh_tridiagonal's few values).

def _subset_pairs(full, u, lo, hi):
    """(w, V) of the pairs lo − 1 .. hi + 1 (the neighbours show a tie at the range's ends),
    and whether any two of them tie (then the full path's rule and its warnings apply)."""
    n = full.shape[-1]
    a, b = S.few_window(lo, hi, n)
    upper = getitem_rows(full, u)
    w, V = kernels_for(full).eig_banded(upper, select_range=(a, b), op="eig_banded",
                                        few=True)
    xp = C.namespace_of(w)
    inside = xp.asarray(~_corners(n, u, u))                 # the corners are not A's
    scale = (xp.abs(full) * inside).sum(axis=-2).max(axis=-1)  # ≥ ‖A‖₂ (row sums)
    return S.few_trim(w, V, lo, hi, a, scale)


def _pairs(full, u, lo, hi, computed):
    """The kept vectors: the subset's (``computed``, plain) in a kernel, the full
    decomposition's columns lo..hi in a reference (whose derivatives are the full rule's)."""
    if computed is not None:
        return computed[1]
    _, V = _band_eigh(full, u=u)
    return ops.getitem(V, (Ellipsis, slice(None), slice(lo, hi + 1)))


def _values_cotangent_of(full, w_bar, *, u, lo, hi, computed):
    V = _pairs(full, u, lo, hi, computed)
    return band_of_product(V * ops.expand_dims(w_bar, -2), ops.mH(V), u, u)


def _values_tangent_of(full, t, *, u, lo, hi, computed):
    V = _pairs(full, u, lo, hi, computed)
    d = ops.sum(ops.conj(V) * band_apply(t, V, u, u), axis=-2)
    return ops.real(d) if ops._is_complex(d) else d


_values_cotangent = transforms.fused("band_values_cotangent", _values_cotangent_of,
                                     S.with_full_pairs(_values_cotangent_of))
_values_tangent = transforms.fused("band_values_tangent", _values_tangent_of,
                                   S.with_full_pairs(_values_tangent_of))


def _few_vjp(w_bar, needs, out, res, full, *, u, lo, hi, computed):
    return (ops.fit(_values_cotangent(full, w_bar, u=u, lo=lo, hi=hi, computed=computed),
                    full),)


def _few_jvp(tangents, out, res, full, *, u, lo, hi, computed):
    return _values_tangent(full, tangents[0], u=u, lo=lo, hi=hi, computed=computed)


_few_values = Primitive("eigvals_banded_few", lambda full, *, u, lo, hi, computed: computed[0],
                        _few_vjp, _few_jvp)


def _few(op, full, u, lo, hi):
    """w[lo..hi] from the k vectors alone, or None where every pair is taken (a tie)."""
    res = C.compute(lambda f: _subset_pairs(f, u, lo, hi), (full,), decide=lambda r: r[2],
                    name=f"{op}'s few values")
    if res[2]:
        return None
    return _few_values(full, u=u, lo=lo, hi=hi, computed=res)


# -- the public functions ---------------------------------------------------------------------

_SELECT = {"a": "a", "all": "a", 0: "a", "v": "v", "value": "v", 1: "v", "i": "i",
           "index": "i", 2: "i"}


def eig_banded(a_band, lower=False, eigvals_only=False, overwrite_a_band=False, select="a",
               select_range=None, max_ev=0, check_finite=True):
    """Eigenvalues and eigenvectors of a Hermitian banded matrix given by one triangle of its
    band, differentiable in ``a_band`` (scipy.linalg.eig_banded).

    ``a_band`` (..., u + 1, n): the upper form ``a_band[u + i − j, j] == a[i, j]`` (i ≤ j;
    the default) or the lower form (``lower=True``, ``a_band[i − j, j] == a[i, j]``); only
    that triangle is read and gets gradient (the diagonal's real part); stacks are
    decomposed matrix by matrix (SciPy's takes one).  Returns ``(w, v)``, w ascending, v
    (..., n, k) orthonormal, or w alone with ``eigvals_only=True``; ``select`` 'a', 'i'
    (``select_range = (lo, hi)`` indices, inclusive) or 'v' (lo < w ≤ hi; traced, at the
    same indices in every matrix of a stack) as SciPy; ``max_ev`` and ``overwrite_a_band``
    are accepted and ignored (SciPy 1.17's sbevx writes past its buffer when ``max_ev`` is
    below the number of values found).  Rows past the (n − 1)-th diagonal (u ≥ n) are all
    corners and not read (for n = 1 SciPy returns the upper form's corner).

    Traced, every pair is computed (LAPACK's band reduction and divide and conquer, O(n² u)
    and O(n³) for the vectors, or the assembled matrix's eigh for u > 4) and selections are
    slices of it; except a few eigenvalues
    alone by index (``eigvals_banded`` or ``eigvals_only=True`` with select='i', k ≤ n/8
    from n = 64): their k vectors by inverse iteration on the band, O(n u² k) time and
    O(n (u + k)) memory for the value, the gradient and the forward mode (n = 20,000: as
    long as SciPy's values alone), second order through the full decomposition.  The gradient reads eigh's
    rule on the band (eig_banded.md): O(n² u) for the eigenvalues alone — ā[j + s, j] =
    Σ_i w̄_i v_{j+s,i} conj(v_{ji}) — against O(n³) for the dense rule and its n × n
    cotangent; eigenvector cotangents cost O(n³) (F ∘ VᴴV̄).

    Valid when: as :func:`eigh` — a loss invariant under each eigenvector's phase; at
    (nearly) repeated eigenvalues a loss that depends on a cluster's basis gets a
    GaugeWarning.  Raises LinAlgError where LAPACK's iteration fails.
    """
    return _decomposition("eig_banded", a_band, lower, eigvals_only, select, select_range,
                          max_ev, check_finite)


def eigvals_banded(a_band, lower=False, overwrite_a_band=False, select="a", select_range=None,
                   check_finite=True):
    """The eigenvalues of a Hermitian banded matrix, ascending, differentiable
    (scipy.linalg.eigvals_banded); see :func:`eig_banded`.  Untraced, only the eigenvalues
    are computed (SciPy's call); traced, the eigenvectors too, for the O(n² u) gradient.

    Valid when: always for losses symmetric in the values of each cluster of (nearly)
    equal eigenvalues; one that singles out one of them gets a GaugeWarning.
    """
    return _decomposition("eigvals_banded", a_band, lower, True, select, select_range, 0,
                          check_finite)


def _decomposition(op, a_band, lower, eigvals_only, select, select_range, max_ev,
                   check_finite):
    lower = C.boolean(op, lower, "lower")
    eigvals_only = C.boolean(op, eigvals_only, "eigvals_only")
    kind = _SELECT.get(select.lower() if isinstance(select, str) else select)
    if kind is None:
        raise ValueError(f"{op}: select must be 'a', 'v' or 'i'; got {select!r}")
    abv = C.peek(a_band)
    if abv.ndim < 2 or abv.shape[-2] < 1:
        raise ValueError(f"{op}: a_band must be (..., u + 1, n) (band storage); got shape "
                         f"{abv.shape}")
    u, n = abv.shape[-2] - 1, abv.shape[-1]
    lo = hi = None
    if kind != "a":
        if select_range is None or len(select_range) != 2:
            raise ValueError(f"{op}: select_range must be a pair with select={select!r}")
        if kind == "i":
            try:
                lo, hi = (operator.index(i) for i in select_range)
            except TypeError:
                raise ValueError(f"{op}: select_range={select_range!r} must contain "
                                 "integers with select='i'") from None
            if not 0 <= lo <= hi < n:
                raise ValueError(f"{op}: select_range={tuple(select_range)} must satisfy "
                                 f"0 <= lo <= hi < n = {n}")
        else:
            lo, hi = float(select_range[0]), float(select_range[1])
            if not lo < hi:
                raise ValueError(f"{op}: select_range={tuple(select_range)} must be an "
                                 "increasing pair")
    dtype = C.result_dtype(op, abv)
    C.checked(op, ("a_band",), (a_band,), check_finite)
    ab = C.promote(a_band, dtype)
    if u > max(n - 1, 0):
        # the rows past the (n − 1)-th diagonal are all corners: drop them (LAPACK's
        # sbevd returns ab[0, 0] for n = 1, a corner of the upper form, review 42)
        keep = max(n - 1, 0)
        ab = ops.getitem(ab, (Ellipsis, slice(0, keep + 1) if lower else slice(u - keep, None),
                              slice(None)))
        u = keep
    if not isinstance(ab, Tracer) and C.namespace_of(C.peek(ab)) is np:
        return _untraced(op, ab, lower, eigvals_only, kind, select_range, lo, hi)
    full = _hermitian_band(ab, u, lower)
    if eigvals_only and kind == "i" and _few_pays(n, hi - lo + 1):
        w = _few(op, full, u, lo, hi)
        if w is not None:
            return w
    w, V = _band_eigh(full, u=u)
    if kind != "a":
        a, b = (lo, hi + 1) if kind == "i" else C.compute(
            lambda wv: _value_slice(op, wv, lo, hi), (w,), decide=lambda r: r,
            name=f"{op}'s selection")
        w = ops.getitem(w, (Ellipsis, slice(a, b)))
        V = ops.getitem(V, (Ellipsis, slice(None), slice(a, b)))
    return w if eigvals_only else (w, V)


def _value_slice(op, w, lo, hi):
    """(a, b): the eigenvalues lo < w ≤ hi are w[..., a:b] in every matrix of the stack."""
    flat = w.reshape(int(np.prod(w.shape[:-1])), w.shape[-1])
    first = (flat <= lo).sum(axis=-1)
    last = (flat <= hi).sum(axis=-1)
    if flat.shape[0] and (np.ptp(first) or np.ptp(last)):
        raise ValueError(f"{op}: select='v' found different numbers (or positions) of "
                         "eigenvalues in the matrices of the stack; select them one matrix "
                         "at a time")
    return (int(first[0]), int(last[0])) if flat.shape[0] else (0, 0)


def _untraced(op, ab, lower, eigvals_only, kind, select_range, lo, hi):
    """SciPy's own call, matrix by matrix (``max_ev`` not passed: with select='v' and fewer
    slots than values, SciPy 1.17's sbevx writes past its buffer, review 42)."""
    import scipy.linalg
    batch, rows, n = ab.shape[:-2], ab.shape[-2], ab.shape[-1]
    count = int(np.prod(batch))
    flat = ab.reshape((count, rows, n))
    kw = {} if kind == "a" else {"select": kind, "select_range": select_range}
    if op == "eigvals_banded" or eigvals_only:
        outs = [scipy.linalg.eigvals_banded(a, lower=lower, check_finite=False, **kw)
                for a in flat] if n else []
    else:
        outs = [scipy.linalg.eig_banded(a, lower=lower, check_finite=False, **kw)
                for a in flat] if n else []
    if not outs:
        k = n if kind == "a" else (hi - lo + 1 if kind == "i" else 0)
        w = np.zeros(batch + (k,), dtype=np.finfo(ab.dtype).dtype)
        return w if eigvals_only else (w, np.zeros(batch + (n, k), dtype=ab.dtype))
    ws = [o if eigvals_only else o[0] for o in outs]
    if len({x.shape for x in ws}) > 1:
        raise ValueError(f"{op}: select='v' found different numbers of eigenvalues in the "
                         "matrices of the stack; select them one matrix at a time")
    w = np.stack(ws).reshape(batch + ws[0].shape)
    if eigvals_only:
        return w
    V = np.stack([o[1] for o in outs])
    return w, V.reshape(batch + V.shape[1:])


# -- registry -------------------------------------------------------------------------------

def _fun(a_band, lower=False):
    """w and Σ c_i v_i v_iᴴ: invariant under each eigenvector's phase."""
    w, V = eig_banded(a_band, lower=lower)
    c = S.gauge_weights(ops._shape(V)[-1], V)
    return w, ops.matmul(V * c, ops.mH(V))


_fun.__doc__ = eig_banded.__doc__


def _domain(rng, n, batch, dtype, lower=False):
    """A Hermitian band (u = 2, fewer below order 3) with a spread spectrum (a ramp on the
    diagonal), junk in the corners (never read: zero gradient)."""
    u = min(2, max(n - 1, 0))
    G = M.random_general(rng, n, batch, dtype)
    near = np.abs(np.subtract.outer(np.arange(n), np.arange(n))) <= u
    S_ = np.where(near, 0.3 * (G + np.conj(np.swapaxes(G, -1, -2))), 0)
    S_ = S_ + np.diag(np.linspace(-2.0, 2.0, n) * n)
    ab = band_from_dense(np, S_, u, 0) if lower else band_from_dense(np, S_, 0, u)
    return (junk_corners(rng, ab, lower).astype(dtype),), {"lower": lower}


def _domain_lower(rng, n, batch, dtype):
    return _domain(rng, n, batch, dtype, lower=True)


def _reference(a_band, lower=False):
    import scipy.linalg
    flat = a_band.reshape((-1,) + a_band.shape[-2:])
    pairs = [scipy.linalg.eig_banded(a, lower=lower) for a in flat]
    w = np.stack([p[0] for p in pairs]).reshape(a_band.shape[:-2] + (a_band.shape[-1],))
    V = np.stack([p[1] for p in pairs]).reshape(a_band.shape[:-2] + (a_band.shape[-1],) * 2)
    c = S.gauge_weights(w.shape[-1], w)
    return w, (V * c) @ np.conj(np.swapaxes(V, -1, -2))


def _values_reference(a_band, lower=False):
    import scipy.linalg
    flat = a_band.reshape((-1,) + a_band.shape[-2:])
    return np.stack([scipy.linalg.eigvals_banded(a, lower=lower) for a in flat]).reshape(
        a_band.shape[:-2] + (a_band.shape[-1],))


RULES = (
    Rule(
        name="eig_banded",
        fun=_fun,
        primitive=_band_eigh,
        domains=(Domain("upper", _domain, "u = 2, a spread spectrum, upper form"),
                 Domain("lower", _domain_lower, "lower form")),
        derivation="docs/derivations/eig_banded.md",
        reference=_reference,
        references=("Giles 2008",),
    ),
    Rule(
        name="eigvals_banded",
        fun=eigvals_banded,
        primitive=_band_eigh,
        domains=(Domain("upper", _domain, "u = 2, a spread spectrum, upper form"),
                 Domain("lower", _domain_lower, "lower form")),
        derivation="docs/derivations/eig_banded.md",
        reference=_values_reference,
    ),
)
