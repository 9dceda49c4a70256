"""eigh, eigvalsh: A = V diag(w) Vᴴ for Hermitian A.   Derivation: docs/derivations/eigh.md

One triangle of the input is read (lower by default), as LAPACK does.

    Z = Vᴴ dA V,   dw = Re diag(Z),   dV = V (F ∘ Z),   F_ij = 1/(w_j − w_i) (i ≠ j)
Reverse  K = Vᴴ V̄,  Ā_h = V (diag(w̄) + F ∘ K) Vᴴ,  then the triangle projection
Forward  ẇ = Re diag(Z), V̇ = V (F ∘ Z), Z = Vᴴ Ȧ_h V

Pairs with |w_i − w_j| ≤ eps^(2/3)·max|w| count as equal: F_ij = 0 there (the
rotation inside the cluster is held fixed), which is exact for losses that
depend on a cluster through symmetric functions of its values and through its
subspace.  A loss that depends on an eigenvector's phase raises ValueError; one
that depends on the basis inside a cluster gets a GaugeWarning (_spectral.py).
"""

from __future__ import annotations

from collections import namedtuple

import numpy as np

from .. import ops, transforms
from ..backend import full_from_triangle, kernels_for, namespace_of, to_host
from ..registry import Domain, Rule
from ..tape import Primitive, Tracer
from ..testing import matrices as M
from . import _common as C
from . import _spectral as S

__all__ = ["eigh", "eigvalsh", "EighResult", "RULES"]

EighResult = namedtuple("EighResult", ["eigenvalues", "eigenvectors"])


def eigh_forward(A, *, lower=True):
    w, V = kernels_for(A).eigh(A, lower=lower)
    return w, V


def _cotangent_composed(w, V, w_bar, V_bar, *, lower):
    """Ā from (w̄, V̄): Ā_h = V (diag(w̄) + F ∘ VᴴV̄) Vᴴ onto the triangle read, gap terms
    dropped (and the loss checked) inside clusters — in differentiable operations: the
    definition, and what derivatives of the rule trace."""
    left = S.hermitian_left_factor("eigh", w, V, w_bar, V_bar)
    Ah_bar = ops.matmul(left, ops.mH(V))
    return C.triangle_cotangent(Ah_bar, lower, hermitian=True)


def _cotangent_kernel(w, V, w_bar, V_bar, *, lower):
    """One kernel call in the common case (real, no cluster: nothing to check or drop)."""
    if V.dtype.kind == "f" and S.degenerate_pairs(w, ordered=True) is None:
        return kernels_for(V).eigh_cotangent(w, V, w_bar, V_bar, lower)
    return _cotangent_composed(w, V, w_bar, V_bar, lower=lower)


_cotangent = transforms.fused("eigh_cotangent", _cotangent_kernel, _cotangent_composed)


def eigh_vjp(cts, needs, out, res, A, *, lower=True):
    w_bar, V_bar = cts
    w, V = out
    if w_bar is None and V_bar is None:
        return (None,)
    return (ops.fit(_cotangent(w, V, w_bar, V_bar, lower=lower), A),)


def eigh_jvp(tangents, out, res, A, *, lower=True):
    (A_dot,) = tangents
    w, V = out
    Ah_dot = C.from_triangle(A_dot, lower, hermitian=True)
    return S.hermitian_tangents(w, V, ops.matmul(ops.mH(V), ops.matmul(Ah_dot, V)))


_eigh = Primitive("eigh", eigh_forward, eigh_vjp, eigh_jvp, multiple_results=True)


# -- eigenpairs by index: LAPACK's subset driver -------------------------------------------
#
# With subset_by_index = (first, last) the forward pass computes only those k pairs (syevr),
# and the rule needs no others:
#     Ā_h = V_S (diag(w̄) + F_S ∘ V_SᴴV̄) V_Sᴴ + Y V_Sᴴ,   y_i = (w_i I − A)⁻¹ P⊥ v̄_i,
# the resolvent on the complement P⊥ = I − V_S V_Sᴴ of the subset (the terms of the full
# rule's F ∘ VᴴV̄ that pair a kept vector with a dropped one), solved with the deflated
# matrices M_i = A − w_i I + V_S diag(c − w_S + w_i) V_Sᴴ, which equal A − w_i I on the
# complement and c I on the subset (eigh.md, section 9).  Forward mode: the same with
# Ȧ_h V_S for V̄.  Both are differentiable operations (the solves are linalgad's solve),
# so second order follows.  A subset whose boundary splits a cluster of equal eigenvalues
# takes the full decomposition (its vectors are not a function of the matrix there).

def _subset_pays(n, k, vectors):
    """Whether the k pairs come from the subset driver rather than the full decomposition.

    Measured, value and gradient, one thread (subset / full time): the values alone (no
    eigenvector output: the gradient V_S diag(w̄) V_Sᴴ needs no solve) 0.72 at n = 64,
    k = 1 but 1.09 at k = 6; 0.77 at 128, k = 12; 0.83 at 200, k = 20; 0.43 at 1000,
    k = 1-5, 0.69 at k = 125, 1.01 at k = 250.  Vectors cost an LU of order n each in a
    reverse or forward pass: 1.24 at n = 64, k = 1; 0.66 / 0.77 at 128, k = 1 / 2; 0.94
    at 160, k = 4; 0.45 / 0.56 / 0.75 / 1.09 at 1000, k = 1 / 2 / 4 / 8."""
    if vectors:
        return n >= SUBSET_VECTORS_N and k <= (2 if n < 192 else SUBSET_VECTORS)
    return n >= SUBSET_N and k * (16 if n < 128 else 8) <= n


SUBSET_N = 64               # the values alone
SUBSET_VECTORS_N = 112      # with eigenvectors, at most SUBSET_VECTORS of them
SUBSET_VECTORS = 4


def _subset_values(K, Av, lower, first, last, op):
    """The pairs first..last widened by one on each side (the neighbours show whether the
    subset splits a cluster); ρ, the spectrum's scale max|w| over all of it, as section 6's
    tie tests need it; and c, the deflation's scale.

    ρ lies between the largest value computed and n·max|a_ij| (≥ ‖A‖_∞ ≥ ‖A‖₂).  Only a
    gap between the values computed that one bound calls a tie and the other does not (at
    either tolerance: section 6's ε^(2/3) and the second-order test's ε^(1/3)) needs ρ
    better: then a few power steps estimate ‖A‖₂ (``_norm_estimate``); otherwise the
    lower bound decides every test alike.
    """
    n = Av.shape[-1]
    lo, hi = max(first - 1, 0), min(last + 1, n - 1)
    w, V = K.eigh_subset(Av, lower, lo, hi, op=op)
    xp = namespace_of(w)
    low = xp.abs(w).max(axis=-1)
    big = xp.abs(Av).max(axis=(-2, -1)).astype(low.dtype)
    gaps = xp.abs(w[..., 1:] - w[..., :-1])
    unsure = False
    for tol in (S.gap_tol(w.dtype), S.second_order_tol(w.dtype)):
        unsure |= bool(((gaps > tol * low[..., None])
                        & (gaps <= tol * n * big[..., None])).any())
    rho = low
    if unsure:
        rho = xp.maximum(low, _norm_estimate(xp, Av, lower).astype(low.dtype))
    c = xp.maximum(low, big)
    return w, V, (rho, xp.where(c > 0, c, 1)), first - lo, hi


def _norm_estimate(xp, Av, lower, steps=5):
    """‖A‖₂ of the Hermitian matrices one triangle of Av holds, from below: the largest
    ‖A x‖ / ‖x‖ of ``steps`` power steps from a fixed start (within 10% of ‖A‖₂ for a
    Gaussian matrix of order 1,000), on A scaled by its largest entry (no overflow at any
    scale).  O(steps·n²), and taken only when a gap is near a tie (``_subset_values``)."""
    big = xp.abs(Av).max(axis=(-2, -1))
    unit = xp.where(big > 0, big, 1)[..., None, None]
    Ah = full_from_triangle(xp, Av / unit, lower)
    n = Av.shape[-1]
    x0 = np.random.default_rng(n).standard_normal(n)
    x = xp.broadcast_to(xp.asarray(x0 / np.linalg.norm(x0)).astype(Av.dtype),
                        Av.shape[:-1])[..., None]
    est = xp.zeros(big.shape, dtype=big.dtype)
    for _ in range(steps):
        y = Ah @ x
        ny = xp.sqrt(xp.sum(xp.abs(y) ** 2, axis=(-2, -1)))
        est = xp.maximum(est, ny)
        x = y / xp.where(ny > 0, ny, 1)[..., None, None]
    return est * big


def _splits_cluster(res, first, last, n):
    """True where a neighbour outside the subset ties with its end (eigh's tie test,
    gap_tol times the spectrum's scale ρ)."""
    w, _, (rho, _), start, _ = res
    wv = C.value(w)
    xp = namespace_of(wv)
    k = last - first + 1
    tol = S.gap_tol(wv.dtype) * C.value(rho)
    split = xp.zeros(wv.shape[:-1], dtype=bool)
    if first > 0:
        split |= xp.abs(wv[..., start] - wv[..., start - 1]) <= tol
    if last < n - 1:
        split |= xp.abs(wv[..., start + k] - wv[..., start + k - 1]) <= tol
    return bool(split.any())


def _resolvent(Ah, w, V, c, R):
    """[(w_i I − A)⁻¹ P⊥ r_i]_i (..., n, k) for R (..., n, k): P⊥ = I − V Vᴴ, the solves with
    M_i = A_h + V diag(c − w) Vᴴ − w_i P⊥ (A − w_i I on the complement, c I on the
    subset), one stack of k LU solves, differentiable."""
    from .solve import solve                    # a sibling family: imported when needed
    VH = ops.mH(V)
    P_R = R - ops.matmul(V, ops.matmul(VH, R))
    B = Ah + ops.matmul(V * ops.expand_dims(C.per_matrix_scalar(c)[..., 0] - w, -2), VH)
    n = ops._shape(V)[-2]
    P = C.eye_like(n, C.peek(V).dtype, C.peek(V)) - ops.matmul(V, VH)
    M = ops.expand_dims(B, -3) - ops.expand_dims(ops.expand_dims(w, -1), -1) * \
        ops.expand_dims(P, -3)                                       # (..., k, n, n)
    rhs = ops.expand_dims(ops.moveaxis(-P_R, -1, -2), -1)             # (..., k, n, 1)
    Y = ops.moveaxis(solve(M, rhs, check_finite=False)[..., 0], -2, -1)
    return Y - ops.matmul(V, ops.matmul(VH, Y))      # rounding in the subset removed


def _subset_forward(A, *, lower, keep, computed):
    w, V = computed[0], computed[1]
    start, k = keep
    return w[..., start:start + k], V[..., start:start + k]


def _subset_vjp(cts, needs, out, res, A, *, lower, keep, computed):
    w_bar, V_bar = cts
    w, V = out
    if w_bar is None and V_bar is None:
        return (None,)
    rho, c = computed[2]
    mask = S.degenerate_pairs(w, ordered=True, scale=rho)
    K = size = None
    if V_bar is not None:
        K = ops.matmul(ops.mH(V), V_bar)
        # the full rule's K = VᴴV̄ has the columns' complement parts too: its size is that
        # of V̄'s columns, which the phase and cluster tests measure against
        Vb = C.value(V_bar)
        xp = namespace_of(Vb)
        size = xp.sqrt(xp.sum(xp.abs(Vb) ** 2, axis=-2)).max(axis=-1)
        S.check_phase_diagonal("eigh", ops.diagonal(K, 0, -2, -1), size, "an eigenvector",
                               w, w_bar)
    S.check_second_order("eigh", computed[0], (w_bar, V_bar), ordered=True, scale=rho)
    S.check_clusters("eigh", mask, K, w_bar, scale=size)
    left = V * ops.expand_dims(w_bar, -2) if w_bar is not None else None
    if K is not None:
        Ah = C.from_triangle(A, lower, hermitian=True)
        inner = ops.matmul(V, S.inverse_gaps(w, mask) * K) + _resolvent(Ah, w, V, c, V_bar)
        left = inner if left is None else inner + left
    Ah_bar = ops.matmul(left, ops.mH(V))
    return (ops.fit(C.triangle_cotangent(Ah_bar, lower, hermitian=True), A),)


def _subset_jvp(tangents, out, res, A, *, lower, keep, computed):
    (A_dot,) = tangents
    w, V = out
    Ah_dot = C.from_triangle(A_dot, lower, hermitian=True)
    AV = ops.matmul(Ah_dot, V)
    Z = ops.matmul(ops.mH(V), AV)
    d = ops.diagonal(Z, 0, -2, -1)
    w_dot = ops.real(d) if ops._is_complex(d) else d
    Ah = C.from_triangle(A, lower, hermitian=True)
    rho, c = computed[2]
    mask = S.degenerate_pairs(w, ordered=True, scale=rho)
    V_dot = ops.matmul(V, S.inverse_gaps(w, mask) * Z) + _resolvent(Ah, w, V, c, AV)
    return w_dot, V_dot


_eigh_subset = Primitive("eigh_subset", _subset_forward, _subset_vjp, _subset_jvp,
                         multiple_results=True)


def _by_index(op, A, lower, first, last, vectors):
    """(w, V) of the pairs first..last from the subset driver, or None where the full
    decomposition is taken (too many pairs, small or tiny-many matrices, a split cluster)."""
    Av = C.peek(A)
    n = Av.shape[-1]
    count = int(np.prod(Av.shape[:-2]))
    K = kernels_for(Av)
    if not count or not K.subset_driver or not _subset_pays(n, last - first + 1, vectors):
        return None       # (a device computes every pair anyway: the full rule is cheaper)
    # the pairs are values the rule computes on for itself: recomputed on every replay
    # under linalgad.jit, which re-checks the branch (a split cluster) taken
    res = C.compute(lambda a: _subset_values(K, a, lower, first, last, op), (A,),
                    decide=lambda r: _splits_cluster(r, first, last, n),
                    name=f"{op}'s subset_by_index")
    if _splits_cluster(res, first, last, n):
        return None
    return _eigh_subset(A, lower=lower, keep=(res[3], last - first + 1), computed=res)


def _by_value_subset(op, A, lower, value_range, vectors):
    """(w, V) of the pairs with low < w ≤ high from the subset driver, or None where the
    full decomposition is taken.  The indices come from the values alone (LAPACK's
    values-only path, about a seventh of the decomposition with vectors); then it is
    subset_by_index: the selection must start at the same index in every matrix of a
    stack, and few enough pairs must be asked for (``_subset_pays``)."""
    Av = C.peek(A)
    n = Av.shape[-1]
    K = kernels_for(Av)
    if not int(np.prod(Av.shape[:-2])) or not K.subset_driver or \
            not _subset_pays(n, 1, vectors):
        return None
    low, high = (float(v) for v in value_range)
    if not low < high:
        return None                         # by_value raises SciPy's error
    # the selection is a value the rule computes on for itself: decided again on replay
    first, count = C.compute(
        lambda a: _value_range(op, K.eigvalsh(a, lower=lower, op=op), low, high,
                               "subset_by_value"),
        (A,), decide=lambda r: (r[0].tobytes(), r[1]), name=f"{op}'s subset_by_value")
    if not count or not (first == first.ravel()[0]).all():
        return None                         # (_by_index judges whether count pays)
    f = int(first.ravel()[0])
    return _by_index(op, A, lower, f, f + count - 1, vectors)


def _lower(op, UPLO, lower):
    if lower is not None:
        return bool(lower)
    if UPLO not in ("L", "U", "l", "u"):
        raise ValueError(f"{op}: UPLO must be 'L' or 'U', got {UPLO!r}")
    return UPLO in ("L", "l")


_DRIVERS = {None, "ev", "evd", "evr", "evx", "gv", "gvd", "gvx"}


def eigh(a, UPLO="L", *, lower=None, eigvals_only=False, check_finite=True, b=None,
         subset_by_index=None, subset_by_value=None, type=1, driver=None, overwrite_a=False,
         overwrite_b=False):
    """Eigenvalues and eigenvectors of a Hermitian matrix, differentiable (numpy.linalg.eigh).

    ``a`` is (..., n, n); only one triangle is read: the lower one unless
    ``UPLO='U'`` (NumPy) or ``lower=False`` (SciPy).  Returns
    ``EighResult(eigenvalues, eigenvectors)``: w ascending and real, V unitary
    with w's matrices' columns as eigenvectors.  ``eigvals_only=True``
    returns w (like :func:`eigvalsh`); ``subset_by_index=(lo, hi)`` keeps the
    eigenpairs lo..hi (inclusive, SciPy), ``subset_by_value=(lo, hi)`` those with
    lo < w ≤ hi (the same number in every matrix of a stack, from each matrix's own
    first index; a count decided by the
    values is decided again on every replay under :func:`linalgad.jit`).  A few
    pairs by index of a large matrix (eigenvalues only: up to n/8 of them from
    n = 64; with eigenvectors up to 2 from n = 112 and 4 from n = 192) are
    computed alone (LAPACK's syevr: about half of the full decomposition's time)
    and differentiated without the others — with an eigenvector cotangent, one
    resolvent solve of order n per kept eigenvector (eigh.md, section 9);
    otherwise, and where the range's ends tie with the eigenvalues next to them,
    through the full decomposition.  A few pairs by value take the same route
    once their indices are known from the eigenvalues alone (LAPACK's values-only
    path), when they start at the same index in every matrix of a stack.  SciPy's ``driver``
    names are accepted and checked; the results agree to rounding whichever
    LAPACK driver computes them, so linalgad chooses its own kernel.  Nothing is
    overwritten (``overwrite_a``/``overwrite_b`` allow it; they are accepted).

    ``b`` (Hermitian positive definite, SciPy's second argument: ``eigh(a, b)``
    works too) solves the generalized problem of ``type`` 1 (a v = w b v), 2
    (a b v = w v) or 3 (b a v = w v), with SciPy's normalization Vᴴ b V = I
    (types 1, 2) or Vᴴ b⁻¹ V = I (type 3); the same triangle of a and b is read.
    It is the reduction LAPACK uses, b = L Lᴴ and the standard problem of
    L⁻¹ a L⁻ᴴ (type 1) or Lᴴ a L (types 2, 3), differentiated through the
    cholesky, triangular-solve and eigh rules (eigh.md, section 8): gradients
    flow to a and b.

    Valid when: the loss is invariant under the sign (real) or phase
    (complex) of each eigenvector -- a phase-dependent loss raises ValueError
    in reverse mode.  At (nearly) repeated eigenvalues, |w_i − w_j| ≤
    eps^(2/3)·max|w|, the gradient is exact for losses that depend on a cluster
    only through symmetric functions of its eigenvalues and through its
    eigenspace (sum f(w), traces of matrix functions, A = I); a loss that
    depends on the basis inside the cluster gets a ``GaugeWarning``.  A
    function of the matrix, ``(V * f(w)) @ V.conj().T``, is not such a loss at
    a tie: write it as ``funmh(a, f)``, whose gradient is exact there.
    Second derivatives (Hessian-vector products) at an exactly repeated
    eigenvalue are finite but miss the in-cluster curvature term, and say so
    with a ``GaugeWarning`` (eigh.md, section 6); ``funmh`` has exact ones
    there, for f(A) and for tr f(A) = Σ f(wᵢ).  The backward pass is three matrix products; nothing is
    refactored.
    """
    return _decomposition("eigh", a, UPLO, lower, eigvals_only, check_finite, b,
                          subset_by_index, subset_by_value, type, driver)


def _decomposition(op, a, UPLO, lower, eigvals_only, check_finite, b, subset_by_index,
                   subset_by_value, type_, driver):
    """eigh and eigvalsh: NumPy's and SciPy's calls, errors named after ``op``."""
    if not isinstance(UPLO, str):          # SciPy's positional b: eigh(a, b)
        if b is not None:
            raise TypeError(f"{op}: b given twice (as the second argument and as b=)")
        UPLO, b = "L", UPLO
    lo = _lower(op, UPLO, lower)
    if driver not in _DRIVERS:
        raise ValueError(f"{op}: driver={driver!r} is not one of SciPy's "
                         f"{sorted(d for d in _DRIVERS if d)}")
    if b is None and driver in ("gv", "gvd", "gvx"):
        raise ValueError(f"{op}: driver={driver!r} is for the generalized problem (with b)")
    if subset_by_index is not None and subset_by_value is not None:
        raise ValueError(f"{op}: give subset_by_index or subset_by_value, not both")
    A = C.prepare(op, a, check_finite)
    if b is not None:
        w, V = _generalized(A, b, lo, type_, check_finite, op)
    elif type_ != 1:
        raise ValueError(f"{op}: type={type_!r} needs b (the generalized problem)")
    elif eigvals_only and not isinstance(A, Tracer) and subset_by_index is None \
            and subset_by_value is None:
        return kernels_for(A).eigvalsh(A, lower=lo, op=op)      # the values alone
    else:
        if subset_by_index is not None:
            first, last = _index_range(op, subset_by_index, C.peek(A).shape[-1])
            pairs = _by_index(op, A, lo, first, last, not eigvals_only)
            if pairs is not None:
                return pairs[0] if eigvals_only else EighResult(*pairs)
        if subset_by_value is not None:
            pairs = _by_value_subset(op, A, lo, subset_by_value, not eigvals_only)
            if pairs is not None:
                return pairs[0] if eigvals_only else EighResult(*pairs)
        w, V = _eigh(A, lower=lo)
    if subset_by_value is not None:
        w, V = by_value(op, w, V, subset_by_value, "subset_by_value")
    if subset_by_index is not None:
        first, last = _index_range(op, subset_by_index, C.peek(A).shape[-1])
        w = ops.getitem(w, (Ellipsis, slice(first, last + 1)))
        V = ops.getitem(V, (Ellipsis, slice(None), slice(first, last + 1)))
    return w if eigvals_only else EighResult(w, V)


def _index_range(op, subset_by_index, n):
    first, last = (int(i) for i in subset_by_index)
    if not 0 <= first <= last < n:
        raise ValueError(f"{op}: subset_by_index={tuple(subset_by_index)} is not within "
                         f"[0, {n - 1}]")
    return first, last


def by_value(op, w, V, value_range, keyword):
    """The pairs with low < w ≤ high (``value_range``) of ascending w (..., n) and V
    (..., n, n), differentiable: as many in every matrix of a stack, where they may start
    at different indices (each matrix's own slice)."""
    low, high = (float(v) for v in value_range)
    if not low < high:
        raise ValueError(f"{op}: {keyword}=({low}, {high}) must be an increasing pair")
    # decided again on every replay under jit (a new selection records the call anew)
    first, count = C.compute(lambda wv: _value_range(op, wv, low, high, keyword), (w,),
                             decide=lambda r: (r[0].tobytes(), r[1]),
                             name=f"{op}'s {keyword}")
    if first.size <= 1 or not first.any() or (first == first.ravel()[0]).all():
        f = int(first.ravel()[0]) if first.size else 0
        return (ops.getitem(w, (Ellipsis, slice(f, f + count))),
                None if V is None else ops.getitem(V, (Ellipsis, slice(None), slice(f, f + count))))
    batch = first.shape
    rows = tuple(np.arange(s).reshape((-1,) + (1,) * (len(batch) - i))
                 for i, s in enumerate(batch))               # (..., 1) index per stack axis
    cols = first[..., None] + np.arange(count)               # (..., count)
    w_sel = ops.getitem(w, rows + (cols,))
    if V is None:
        return w_sel, None
    n = ops._shape(V)[-2]
    V_sel = ops.getitem(V, tuple(r[..., None] for r in rows)
                        + (np.arange(n)[:, None], cols[..., None, :]))
    return w_sel, V_sel


def _value_range(op, w, low, high, keyword):
    """(first (...), count): each matrix's first index of the ascending w's entries in
    (low, high], and their number, which must be the same in every matrix."""
    w = to_host(w)
    inside = (w > low) & (w <= high)
    count = inside.sum(axis=-1)
    first = np.argmax(inside, axis=-1) if w.shape[-1] else np.zeros_like(count)
    counts = np.unique(count)
    if counts.size > 1:
        raise ValueError(f"{op}: {keyword}=({low}, {high}) selects different numbers of "
                         f"eigenpairs in the matrices of the stack "
                         f"({sorted(set(count.ravel().tolist()))}); select by index, or call "
                         f"{op} on each matrix")
    c = int(counts[0]) if counts.size else 0
    return (np.asarray(first if c else np.zeros_like(first), dtype=np.intp)), c


def _generalized(A, b, lower, type_, check_finite, op):
    """(w, V) of the generalized problem by the Cholesky reduction (eigh.md, section 8)."""
    if type_ not in (1, 2, 3):
        raise ValueError(f"{op}: type must be 1, 2 or 3; got {type_!r}")
    av, bv = C.peek(A), C.square_matrix(op, b, "b")
    if bv.shape[-1] != av.shape[-1]:
        raise ValueError(f"{op}: a has shape {av.shape} and b has shape {bv.shape}; they must "
                         "be (..., n, n) with the same n")
    C.stacks(op, a=av.shape, b=bv.shape)
    dtype = C.result_dtype(op, av, bv)
    C.checked(op, ("b",), (b,), check_finite)
    A, B = C.promote(A, dtype), C.promote(b, dtype)
    from .cholesky import _cholesky            # a sibling family: imported when needed
    from .triangular import triangular_solve
    try:
        L = _cholesky(B, lower=lower)
    except C.LinAlgError as e:
        raise C.LinAlgError(f"{op}: b is not positive definite ({e})") from None
    if not lower:
        L = ops.mH(L)                          # b = Uᴴ U = L Lᴴ with L = Uᴴ
    Ah = C.from_triangle(A, lower, hermitian=True)

    def solve_l(X, t):                         # L⁻¹ X (t = 0) or L⁻ᴴ X (t = 2)
        return triangular_solve(L, X, lower=True, trans=t, op=op)

    if type_ == 1:                             # L⁻¹ a L⁻ᴴ
        Cm = ops.mH(solve_l(ops.mH(solve_l(Ah, 0)), 0))
    else:                                      # Lᴴ a L
        Cm = ops.matmul(ops.mH(L), ops.matmul(Ah, L))
    w, Y = _eigh(Cm, lower=True)
    V = solve_l(Y, 2) if type_ in (1, 2) else ops.matmul(L, Y)
    return w, V


def eigvalsh(a, UPLO="L", *, lower=None, check_finite=True, b=None, type=1,
             subset_by_index=None, subset_by_value=None, driver=None, overwrite_a=False,
             overwrite_b=False):
    """Eigenvalues of a Hermitian matrix, ascending, differentiable (numpy.linalg.eigvalsh).

    Reads one triangle like :func:`eigh`; ``eigvalsh(a, b)`` (SciPy) gives the
    eigenvalues of the generalized problem a v = w b v (see :func:`eigh`), and
    SciPy's other keywords (``type``, ``subset_by_index``, ``subset_by_value``,
    ``driver``, ``overwrite_a``/``overwrite_b``) mean what they mean there.
    Untraced, only the eigenvalues are computed; traced, the eigenvectors are
    kept for the backward pass Ā = V diag(w̄) Vᴴ (projected onto the triangle
    read).

    Valid when: always for losses symmetric in the eigenvalues of each
    cluster of equal ones (sum f(w), a norm, a log-determinant); a loss that
    singles out one of several equal eigenvalues (e.g. w[-1] at a tie) is not
    differentiable there, gets a GaugeWarning and one of its subgradients.
    Second derivatives near a tie are not exact and warn (see :func:`eigh`);
    Σ f(wᵢ) = tr funmh(a, f) has exact ones.
    """
    return _decomposition("eigvalsh", a, UPLO, lower, True, check_finite, b, subset_by_index,
                          subset_by_value, type, driver)


# -- registry -------------------------------------------------------------------------------

def _eigh_fun(a, UPLO="L"):
    """w and Σ c_i v_i v_iᴴ: invariant under each eigenvector's sign/phase."""
    w, V = eigh(a, UPLO=UPLO)
    c = S.gauge_weights(ops._shape(V)[-1], V)
    return w, ops.matmul(V * c, ops.mH(V))


_eigh_fun.__doc__ = eigh.__doc__


def eigh_reference(a, UPLO="L"):
    w, V = np.linalg.eigh(a, UPLO=UPLO)
    return w, (V * S.gauge_weights(a.shape[-1], w)) @ np.conj(np.swapaxes(V, -1, -2))


def _sym(rng, n, batch, dtype):
    return (M.random_symmetric(rng, n, batch, dtype),), {}


def _sym_raw_upper(rng, n, batch, dtype):
    """Upper triangle read; the lower one holds unrelated data (must get zero gradient)."""
    A = M.random_symmetric(rng, n, batch, dtype)
    junk = M.random_general(rng, n, batch, dtype)
    return (np.ascontiguousarray(np.triu(A) + np.tril(junk, -1)),), {"UPLO": "U"}


_DOMAINS = (
    Domain("hermitian", _sym, "spread spectrum, lower triangle read"),
    Domain("upper", _sym_raw_upper, "UPLO='U', other triangle unrelated"),
)


def _eigh_generalized_fun(a, b, lower=True, type=1):
    """w and Σ c_i v_i v_iᴴ of the generalized problem: invariant under each v_i's phase."""
    w, V = eigh(a, b=b, lower=lower, type=type)
    c = S.gauge_weights(ops._shape(V)[-1], V)
    return w, ops.matmul(V * c, ops.mH(V))


_eigh_generalized_fun.__doc__ = eigh.__doc__


def eigh_generalized_reference(a, b, lower=True, type=1):
    import scipy.linalg

    def values(ai, bi):
        return scipy.linalg.eigh(ai, bi, lower=lower, type=type, eigvals_only=True)

    def gauge_free(ai, bi):
        w, V = scipy.linalg.eigh(ai, bi, lower=lower, type=type)
        return (V * S.gauge_weights(len(w), w)) @ V.conj().T
    return (C.per_matrix(values, a, b, cores=(2, 2)),
            C.per_matrix(gauge_free, a, b, cores=(2, 2)))


def _generalized_domain(type_, lower):
    def make(rng, n, batch, dtype):
        A = M.random_symmetric(rng, n, batch, dtype)
        B = M.random_spd(rng, n, batch, dtype, cond=1.3)
        # the triangle not read holds unrelated data (it must get zero gradient)
        tri = (lambda X: np.triu(X, 1)) if lower else (lambda X: np.tril(X, -1))
        A = A + tri(M.random_general(rng, n, batch, dtype))
        B = B + tri(M.random_general(rng, n, batch, dtype))
        return (A.astype(dtype), B.astype(dtype)), {"lower": lower, "type": type_}
    return make

RULES = (
    Rule(
        name="eigh",
        fun=_eigh_fun,
        primitive=_eigh,
        domains=_DOMAINS,
        derivation="docs/derivations/eigh.md",
        reference=eigh_reference,
        references=("Giles 2008", "Magnus & Neudecker 1999"),
    ),
    Rule(
        name="eigh_generalized",
        fun=_eigh_generalized_fun,
        primitive=_eigh,
        domains=(
            Domain("type1", _generalized_domain(1, True), "a v = w b v, lower triangles read"),
            Domain("type1-upper", _generalized_domain(1, False), "upper triangles read"),
            Domain("type2", _generalized_domain(2, True), "a b v = w v"),
            Domain("type3", _generalized_domain(3, False), "b a v = w v, upper"),
        ),
        derivation="docs/derivations/eigh.md",
        reference=eigh_generalized_reference,
        references=("Golub & Van Loan 2013, section 8.7 (the Cholesky reduction)",),
    ),
    Rule(
        name="eigvalsh",
        fun=eigvalsh,
        primitive=_eigh,
        domains=_DOMAINS,
        derivation="docs/derivations/eigh.md",
        reference=lambda a, UPLO="L": np.linalg.eigvalsh(a, UPLO=UPLO),
        references=("Giles 2008",),
    ),
)
