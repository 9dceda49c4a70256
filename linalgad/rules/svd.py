"""svd, svdvals: A = U diag(s) Vᴴ.   Derivation: docs/derivations/svd.md

Thin factors, k = min(m, n); dP = Uᴴ dA V, Hp / Hm its Hermitian / skew parts:

    ds = Re diag(dP)
    Ω₊ = Gp ∘ Hp,  Gp_ij = 1/(s_j − s_i)   (the joint rotation of u and v: the gauge)
    Ω₋ = Gm ∘ Hm,  Gm_ij = 1/(s_i + s_j)   (finite at repeated nonzero s)
    dU = U (Ω₊ + Ω₋) + (I − UUᴴ) dA V S⁻¹,   dV = V (Ω₊ − Ω₋) + (I − VVᴴ) dAᴴ U S⁻¹
Reverse  J = UᴴŪ, K = VᴴV̄,
    Ā = U [diag(s̄) + sym(Gp ∘ (J + K)) + skew(Gm ∘ (J − K))] Vᴴ
        + (Ū − UJ) S⁻¹ Vᴴ  (m > k)  +  U S⁻¹ (V̄ᴴ − Kᴴ Vᴴ)  (n > k)

Pairs with |s_i − s_j| ≤ eps^(2/3)·max(s_i, s_j) count as equal (Gp_ij = 0);
1/(s_i + s_j) and 1/s_i are zeroed only below the smallest normal number.
With full_matrices and m ≠ n the extra columns of U (rows of Vh) are an
arbitrary completion: reverse mode raises for a loss that uses them, forward
mode gives them the tangent −U₁(U̇₁ᴴU₂) as qr 'complete' does.

extreme_singular_values (norm 2, −2, cond): ∂s/∂A = u vᴴ of s₁ or s_min alone,
the tied cluster's mean at a tie; derived in docs/derivations/norms.md.
"""

from __future__ import annotations

import warnings
from collections import namedtuple

import numpy as np

from .. import ops, transforms
from ..backend import kernels_for, namespace_of, to_host
from ..registry import Domain, Rule
from ..tape import Primitive, Tracer
from . import _common as C
from . import _spectral as S

__all__ = ["svd", "svdvals", "SVDResult", "RULES"]

SVDResult = namedtuple("SVDResult", ["U", "S", "Vh"])


def svd_forward(A, *, full_matrices=False):
    U, s, Vh = kernels_for(A).svd(A, full_matrices=full_matrices, compute_uv=True)
    return U, s, Vh


def _cols(x, lo, hi):
    return C.submatrix(x, cols=slice(lo, hi))


def _rows(x, lo, hi):
    return C.submatrix(x, rows=slice(lo, hi))


def _inverse(s):
    """1/s, with 0 where s is below the smallest normal number (differentiable)."""
    sv = C.value(s)
    zero = sv <= np.finfo(sv.dtype).tiny
    if not bool(zero.any()):
        return 1 / s
    return ops.where(zero, 0, 1 / ops.where(zero, 1, s))


def _extra_unused(bar, m, n, k, what):
    C.require_unused(
        bar, f"svd(full_matrices=True): the loss depends on the last {max(m, n) - k} {what}, "
        f"which are an arbitrary orthonormal completion (a is {m}x{n}), not a function "
        "of a; its gradient is not defined. Use full_matrices=False or make the loss "
        "depend on the first min(m, n) singular vectors only.")


def svd_vjp(cts, needs, out, res, A, *, full_matrices=False):
    U_bar, s_bar, Vh_bar = cts
    U, s, Vh = out
    m, n = ops._shape(A)[-2:]
    k = min(m, n)
    if full_matrices and m != n:
        if m > n:
            if U_bar is not None:
                _extra_unused(_cols(U_bar, k, None), m, n, k, "columns of U")
                U_bar = _cols(U_bar, 0, k)
            U = _cols(U, 0, k)
        else:
            if Vh_bar is not None:
                _extra_unused(_rows(Vh_bar, k, None), m, n, k, "rows of Vh")
                Vh_bar = _rows(Vh_bar, 0, k)
            Vh = _rows(Vh, 0, k)
    if U_bar is None and s_bar is None and Vh_bar is None:
        return (None,)
    r = _truncation(s, (U_bar, s_bar, Vh_bar), (A, U, s, Vh))
    if isinstance(r, tuple):                        # a stack of matrices of several ranks
        def run(rg, A, U, s, Vh, U_bar, s_bar, Vh_bar):
            if rg is None or rg == k:
                return (_cotangent(U, s, Vh, U_bar, s_bar, Vh_bar),)
            return (_truncated_vjp(A, U, s, Vh, U_bar, s_bar, Vh_bar, r=rg),)
        (A_bar,) = _by_rank(r, ops._shape(A)[:-2], (A, U, s, Vh, U_bar, s_bar, Vh_bar), run)
        return (ops.fit(A_bar, A),)
    if r is not None:
        return (ops.fit(_truncated_vjp(A, U, s, Vh, U_bar, s_bar, Vh_bar, r=r), A),)
    return (ops.fit(_cotangent(U, s, Vh, U_bar, s_bar, Vh_bar), A),)


def _truncation(s, cts, primals):
    """r, where this reverse pass is being differentiated (something traced) at a matrix
    whose singular values past the r-th are zero (≤ ε^(2/3) s₁, the cluster tolerance; per
    matrix: a stack of several ranks gives a tuple, and _by_rank runs each rank's group
    with its own rule) and the loss does not touch them (cotangents exactly
    0 on those pairs): the truncated form of the rule is then exact in value and has the
    exact derivative (svd.md §6).  None otherwise; under linalgad.jit, decided again on
    every replay."""
    if not any(isinstance(x, Tracer) for x in cts + primals):
        return None
    which = tuple(c is not None for c in cts)
    present = tuple(c for c in cts if c is not None)
    return C.compute(lambda sv, *bars: _untouched_rank(sv, bars, which), (s,) + present,
                     decide=lambda r: r, name="svd's zero singular values")


def _untouched_rank(sv, bars, which):
    """The r of _truncation: an int when every matrix of the stack has it; for a stack of
    matrices of different ranks, a tuple of each matrix's (flattened stack order): its rank
    r where the truncated rule applies to it, k where it has no zero value (the thin rule
    is exact), None where neither (the thin rule, as for the whole stack otherwise)."""
    k = sv.shape[-1]
    if not sv.size:
        return None
    xp = namespace_of(sv)
    kept = (sv > S.gap_tol(sv.dtype) * sv[..., :1]).sum(axis=-1)
    kept = to_host(kept).reshape(-1)
    svf = sv.reshape((-1, k))
    flat = [None if b is None else b.reshape((-1,) + b.shape[sv.ndim - 1:]) for b in
            _present_bars(bars, which)]
    ranks = tuple(_matrix_rank_rule(svf[i], [None if b is None else b[i] for b in flat],
                                    which, int(kept[i]), k, xp) for i in range(len(kept)))
    if all(r == ranks[0] for r in ranks):
        return None if ranks[0] in (None, k) else ranks[0]
    if all(r in (None, k) for r in ranks):
        return None
    return ranks


def _present_bars(bars, which):
    bars = iter(bars)
    return [next(bars) if present else None for present in which]


def _matrix_rank_rule(sv, bars, which, r, k, xp):
    """One matrix's entry of _untouched_rank: r, k or None."""
    if r == k:
        return k
    if r == 0:
        return None
    if len(which) > 1 and which[1] and bool((sv[r:] <= np.finfo(sv.dtype).tiny).any()):
        # an exactly zero value with s̄ = 0 there: s̄ = f'(0) may vanish while f''(0) does
        # not (Σ s², ‖A‖_F²), so a zero cotangent does not say the loss leaves it alone
        return None
    parts = (lambda x: x[:, r:], lambda x: x[r:], lambda x: x[r:, :])
    for bar, part in zip(bars, parts):
        if bar is not None and bool(xp.any(part(bar) != 0)):
            return None
    return r


def _by_rank(ranks, batch, arrays, run):
    """run(r, *group) for each group of the flattened stack's matrices with one entry r of
    ``ranks`` (_untouched_rank's tuple), ``group`` the arrays' matrices of that group (None
    stays None); the results (tuples of arrays, stacked like the inputs) reassembled in
    stack order — differentiable (slices, concatenation and a permutation)."""
    B = len(ranks)
    order, parts = [], []
    groups = {}
    for i, r in enumerate(ranks):
        groups.setdefault(r, []).append(i)
    for r, idx in groups.items():
        idx = np.asarray(idx)
        sub = [None if x is None else ops.getitem(
            ops.reshape(x, (B,) + ops._shape(x)[len(batch):]), (idx,)) for x in arrays]
        parts.append(run(r, *sub))
        order.extend(idx.tolist())
    inverse = np.empty(B, dtype=np.intp)
    inverse[np.asarray(order)] = np.arange(B)
    outs = []
    for j in range(len(parts[0])):
        joined = ops.concatenate([p[j] for p in parts], axis=0)
        joined = ops.getitem(joined, (inverse,))
        outs.append(ops.reshape(joined, batch + ops._shape(joined)[1:]))
    return tuple(outs)


def _truncated_cotangent(A, U, s, Vh, U_bar, s_bar, Vh_bar, *, r):
    """Ā for a loss of the first r singular triplets of A, whose others are zero: the thin
    rule on r pairs with both complements, plus the first-order terms of the dropped part
    A_s = A − U_r S_r V_rᴴ (0 in value), which turn the kept singular vectors:
    U_r S⁻² Ū_rᴴ A_s + A_s V̄_r S⁻² V_rᴴ (svd.md §6)."""
    m, n = ops._shape(A)[-2:]
    Ur, sr, Vhr = _cols(U, 0, r), ops.getitem(s, (Ellipsis, slice(0, r))), _rows(Vh, 0, r)
    Ub = _cols(U_bar, 0, r) if U_bar is not None else None
    sb = ops.getitem(s_bar, (Ellipsis, slice(0, r))) if s_bar is not None else None
    Vhb = _rows(Vh_bar, 0, r) if Vh_bar is not None else None
    J, K, term = _core(Ur, sr, Vhr, Ub, sb, Vhb, m, n)
    inv = 1 / sr
    inv_row, inv_col = ops.expand_dims(inv, -2), ops.expand_dims(inv, -1)
    As = A - ops.matmul(Ur * ops.expand_dims(sr, -2), Vhr)
    left = None                                       # Ā = left Vh_r + U_r right + extra
    right = None
    if term is not None:
        left = ops.matmul(Ur, term)
    if sb is not None:
        t = Ur * ops.expand_dims(sb, -2)
        left = t if left is None else left + t
    if Ub is not None:
        t = (Ub - ops.matmul(Ur, J)) * inv_row          # (I − U_r U_rᴴ) Ū S⁻¹
        left = t if left is None else left + t
    if Vhb is not None:
        right = inv_col * (Vhb - ops.matmul(ops.mH(K), Vhr))   # S⁻¹ V̄ᴴ (I − V_r V_rᴴ)
    out = None
    if left is not None:
        out = ops.matmul(left, Vhr)
    if right is not None:
        t = ops.matmul(Ur, right)
        out = t if out is None else out + t
    inv2_row = ops.expand_dims(inv * inv, -2)
    if Ub is not None:
        out = out + ops.matmul(Ur * inv2_row, ops.matmul(ops.mH(Ub), As))
    if Vhb is not None:
        out = out + ops.matmul(ops.matmul(As, ops.mH(Vhb)) * inv2_row, Vhr)
    return out


def _check_rank_deficient_second_order(s, m, n, cplx, traced):
    """Warn (GaugeWarning) when this reverse pass is being differentiated at a matrix with
    zero singular values (≤ ε^(1/3) s₁) in a configuration where its derivative is not
    exact: two or more of them, or one of a complex or non-square matrix, with a vector
    cotangent.  Losses that leave the zero pairs alone take the truncated rule
    (_truncated_cotangent), exact there; this is what remains: a loss of the zero pairs'
    own vectors, whose derivative needs d(Σ sᵢ uᵢ vᵢᴴ) over the cluster where the tape
    differentiates each pair's sᵢ (a |·| there) (svd.md §6).  A real square matrix with one
    zero value is exact."""
    if not any(isinstance(x, Tracer) for x in traced) or (traced[0] is None and
                                                           traced[2] is None):
        return
    sv = C.value(s)
    if not sv.size:
        return
    xp = namespace_of(sv)
    small = (sv <= S.second_order_tol(sv.dtype) * sv[..., :1]).sum(axis=-1)
    need = 1 if cplx or m != n else 2
    if bool(xp.any(small >= need)):
        warnings.warn(
            "svd: second derivatives at a rank-deficient matrix are not reliable: the "
            "derivative of the terms of its zero singular values is missing its "
            "off-diagonal and phase parts (svd.md, section 6). pinv, lstsq and null_space "
            "have exact second derivatives of the truncated map there.",
            S.GaugeWarning, stacklevel=3)


def _core(U, s, Vh, U_bar, s_bar, Vh_bar, m, n):
    """(J, K, term) of the reverse rule, J = UᴴŪ, K = VᴴV̄, term the symmetrised gap terms
    (dropped inside clusters), after the phase, second-order and cluster checks."""
    J = ops.matmul(ops.mH(U), U_bar) if U_bar is not None else None
    K = ops.matmul(Vh, ops.mH(Vh_bar)) if Vh_bar is not None else None     # Vᴴ V̄
    mask = S.degenerate_pairs(s, relative=True, ordered=True)
    plus = minus = term = None
    if J is not None or K is not None:
        plus = J if K is None else (K if J is None else J + K)
        minus = J if K is None else (-K if J is None else J - K)
    size = None
    if plus is not None:
        # measured in the units of the cotangents' columns, which may be far larger than
        # J + K: a loss through span(U) alone (orth, subspace_angles) has Ū ⊥ U, and J of
        # rounding, whose phase or cluster part is then no evidence of a dependence
        size = S.gradient_units_size(s, S.column_size(U_bar, Vh_bar, rows=(1,)))
        S.check_phase("svd", plus, "a pair of singular vectors (u_i, v_i)", s, s_bar,
                      size=size)
    S.check_second_order("svd", s, (U_bar, s_bar, Vh_bar), relative=True, ordered=True)
    _check_rank_deficient_second_order(s, m, n, ops._is_complex(U),
                                       (U_bar, s_bar, Vh_bar, U, s, Vh))
    S.check_clusters("svd", mask, plus, s_bar, what="singular vectors", scale=size)
    if plus is not None:
        Yp = S.inverse_gaps(s, mask) * plus
        Ym = S.inverse_gaps(s, _zero_sums(s), plus=True) * minus
        term = 0.5 * (Yp + ops.mH(Yp)) + 0.5 * (Ym - ops.mH(Ym))
    return J, K, term


def _cotangent_composed(U, s, Vh, U_bar, s_bar, Vh_bar):
    """Ā of the thin SVD from (Ū, s̄, V̄h) in differentiable operations, gap terms dropped
    (and the loss checked) inside clusters: the definition, and what derivatives of the
    rule trace."""
    m, n = ops._shape(U)[-2], ops._shape(Vh)[-1]
    k = min(m, n)
    J, K, term = _core(U, s, Vh, U_bar, s_bar, Vh_bar, m, n)
    if (m > k and U_bar is not None) or (n > k and Vh_bar is not None):
        _check_exact_zeros(s, s_bar, m, n)
    if m > k and U_bar is not None:
        # Ā = [U (term − J S⁻¹) + U diag(s̄) + Ū S⁻¹] Vh
        inv_row = ops.expand_dims(_inverse(s), -2)
        left = ops.matmul(U, term - J * inv_row) + U_bar * inv_row
        if s_bar is not None:
            left = left + U * ops.expand_dims(s_bar, -2)
        return ops.matmul(left, Vh)
    if n > k and Vh_bar is not None:
        # Ā = U [(term − S⁻¹ Kᴴ) Vh + diag(s̄) Vh + S⁻¹ V̄ᴴ]
        inv_col = ops.expand_dims(_inverse(s), -1)
        right = ops.matmul(term - inv_col * ops.mH(K), Vh) + inv_col * Vh_bar
        if s_bar is not None:
            right = right + ops.expand_dims(s_bar, -1) * Vh
        return ops.matmul(U, right)
    # Ā = [U term + U diag(s̄)] Vh
    left = U * ops.expand_dims(s_bar, -2) if s_bar is not None else None
    if term is not None:
        left = ops.matmul(U, term) if left is None else ops.matmul(U, term) + left
    return ops.matmul(left, Vh)


def _check_exact_zeros(s, s_bar, m, n):
    """Warn where an exactly zero singular value of a non-square matrix meets a loss of
    both the values and the vectors (U diag(s) Vᴴ through the thin SVD): the component of
    its gradient outside U's range (V's) is the limit of Ū_j/s_j, 0/0 at s_j = 0, which
    the cotangents do not hold and the rule drops (svd.md, section 6)."""
    if s_bar is None:
        return
    sv, bv = C.value(s), C.value(s_bar)
    xp = namespace_of(sv)
    zero = sv <= np.finfo(sv.dtype).tiny
    if bool(zero.any()) and bool((xp.abs(bv) > 0).any()):
        warnings.warn(
            f"svd: a singular value of this {m}x{n} matrix is exactly 0 and the loss uses "
            "both the singular values and the singular vectors (U diag(s) Vh, say): the "
            "part of the gradient outside the range of the thin factors at that value is "
            "0/0 in the cotangents and is left out. Write a function of the matrix through "
            "the matrix itself, or U f(s) Vh as linalgad.linalg.generalized_funm(a, f).",
            S.GaugeWarning, stacklevel=4)


def _cotangent_kernel(U, s, Vh, U_bar, s_bar, Vh_bar):
    """One kernel call in the common case (real, every cotangent of the factors' dtype,
    no cluster, and no zero singular value where 1/s is needed: nothing to check or
    drop)."""
    dtype = U.dtype
    m, k, n = U.shape[-2], s.shape[-1], Vh.shape[-1]
    inverse = (m > k and U_bar is not None) or (n > k and Vh_bar is not None)    # 1/s used
    if dtype.kind == "f" and all(x is None or x.dtype == dtype for x in (U_bar, s_bar, Vh_bar)) \
            and S.degenerate_pairs(s, relative=True, ordered=True) is None \
            and not (inverse and s.size and bool(s.min() <= np.finfo(dtype).tiny)):
        return kernels_for(U).svd_cotangent(U, s, Vh, U_bar, s_bar, Vh_bar)
    return _cotangent_composed(U, s, Vh, U_bar, s_bar, Vh_bar)


_cotangent = transforms.fused("svd_cotangent", _cotangent_kernel, _cotangent_composed)


def _zero_sums(s):
    """Concrete mask of s_i + s_j below the smallest normal number (1/(s_i + s_j) → 0)."""
    sv = C.value(s)
    tiny = np.finfo(sv.dtype).tiny
    if sv.size == 0 or not bool((sv <= tiny).any()):
        return None
    return (sv[..., :, None] + sv[..., None, :]) <= tiny


def svd_jvp(tangents, out, res, A, *, full_matrices=False):
    (A_dot,) = tangents
    U, s, Vh = out
    m, n = ops._shape(A)[-2:]
    k = min(m, n)
    U1 = _cols(U, 0, k) if (full_matrices and m > n) else U
    Vh1 = _rows(Vh, 0, k) if (full_matrices and n > m) else Vh
    V1 = ops.mH(Vh1)
    AV = ops.matmul(A_dot, V1)
    dP = ops.matmul(ops.mH(U1), AV)
    d = ops.diagonal(dP, 0, -2, -1)
    s_dot = ops.real(d) if ops._is_complex(d) else d
    Gp = S.inverse_gaps(s, S.degenerate_pairs(s, relative=True, ordered=True))
    Gm = S.inverse_gaps(s, _zero_sums(s), plus=True)
    dPh = ops.mH(dP)
    Op = Gp * (0.5 * (dP + dPh))
    Om = Gm * (0.5 * (dP - dPh))
    s_inv = _inverse(s)
    U_dot = ops.matmul(U1, Op + Om)
    if m > k:
        U_dot = U_dot + (AV - ops.matmul(U1, dP)) * ops.expand_dims(s_inv, -2)
    V_dot = ops.matmul(V1, Op - Om)
    if n > k:
        AhU = ops.matmul(ops.mH(A_dot), U1)
        V_dot = V_dot + (AhU - ops.matmul(V1, dPh)) * ops.expand_dims(s_inv, -2)
    r = _truncation(s, (), (A_dot, A, U, s, Vh))
    if isinstance(r, tuple):                        # a stack of matrices of several ranks
        def run(rg, A, A_dot, U1, s, V1, U_dot, s_dot, V_dot):
            if rg is None or rg == k:
                return U_dot, s_dot, V_dot
            return _truncated_jvp(A, A_dot, U1, s, V1, U_dot, s_dot, V_dot, r=rg)
        U_dot, s_dot, V_dot = _by_rank(r, ops._shape(A)[:-2],
                                       (A, A_dot, U1, s, V1, U_dot, s_dot, V_dot), run)
    elif r is not None:
        U_dot, s_dot, V_dot = _truncated_jvp(A, A_dot, U1, s, V1, U_dot, s_dot, V_dot, r=r)
    if full_matrices and m > n:
        U2 = _cols(U, k, None)
        U_dot = ops.concatenate([U_dot, C.completion_tangent(U1, U_dot, U2)], axis=-1)
    if full_matrices and n > m:
        V2 = ops.mH(_rows(Vh, k, None))
        V_dot = ops.concatenate([V_dot, C.completion_tangent(V1, V_dot, V2)], axis=-1)
    return U_dot, s_dot, ops.mH(V_dot)


def _truncated_tangents(A, A_dot, U, s, V, U_dot, s_dot, V_dot, *, r):
    """The tangents of the first r singular triplets where the others are zero, exact to
    first order in the dropped part A_s = A − U_r S_r V_rᴴ (svd.md §6), in place of the
    thin rule's first r columns: U̇_r = U_r Ω + (I − U_r U_rᴴ) Ȧ V_r S⁻¹ + A_s Ȧᴴ U_r S⁻²,
    V̇_r likewise with A ↔ Aᴴ.  The zero pairs keep the thin rule's tangents."""
    Ur, sr, Vr = _cols(U, 0, r), ops.getitem(s, (Ellipsis, slice(0, r))), _cols(V, 0, r)
    AV = ops.matmul(A_dot, Vr)
    AhU = ops.matmul(ops.mH(A_dot), Ur)
    dP = ops.matmul(ops.mH(Ur), AV)
    dPh = ops.mH(dP)
    Gp = S.inverse_gaps(sr, S.degenerate_pairs(sr, relative=True, ordered=True))
    Gm = S.inverse_gaps(sr, _zero_sums(sr), plus=True)
    Op = Gp * (0.5 * (dP + dPh))
    Om = Gm * (0.5 * (dP - dPh))
    inv = ops.expand_dims(1 / sr, -2)
    inv2 = inv * inv
    As = A - ops.matmul(Ur * ops.expand_dims(sr, -2), ops.mH(Vr))
    Ur_dot = (ops.matmul(Ur, Op + Om) + (AV - ops.matmul(Ur, dP)) * inv
              + ops.matmul(As, AhU) * inv2)
    Vr_dot = (ops.matmul(Vr, Op - Om) + (AhU - ops.matmul(Vr, dPh)) * inv
              + ops.matmul(ops.mH(As), AV) * inv2)
    return (ops.concatenate([Ur_dot, _cols(U_dot, r, None)], axis=-1), s_dot,
            ops.concatenate([Vr_dot, _cols(V_dot, r, None)], axis=-1))


# as fused primitives: under linalgad.jit their value checks (clusters, phases) run on the
# values of each replay, and their derivatives trace the same functions
_truncated_vjp = transforms.fused("svd_truncated_cotangent", _truncated_cotangent,
                                  _truncated_cotangent)
_truncated_jvp = transforms.fused("svd_truncated_tangents", _truncated_tangents,
                                  _truncated_tangents, multiple_results=True)

_svd = Primitive("svd", svd_forward, svd_vjp, svd_jvp, multiple_results=True)


def svd(a, full_matrices=True, compute_uv=True, hermitian=False, *, overwrite_a=False,
        check_finite=True, lapack_driver=None):
    """Singular value decomposition ``a = U @ diag(S) @ Vh``, differentiable (numpy.linalg.svd).

    ``a`` is (..., m, n), k = min(m, n).  Returns ``SVDResult(U, S, Vh)``
    with S descending; ``full_matrices=True`` (NumPy's default) gives U
    (..., m, m) and Vh (..., n, n), ``False`` the thin factors (..., m, k),
    (..., k, n).  ``compute_uv=False`` returns S only (see :func:`svdvals`).
    SciPy's keywords ``check_finite`` and ``overwrite_a`` are accepted;
    ``lapack_driver`` and NumPy's ``hermitian=True`` are accepted and the
    general SVD (gesdd) is used.

    Valid when: the loss is invariant under the joint phase of (u_i, v_i)
    (reverse mode raises ValueError otherwise) and, with full_matrices and
    m ≠ n, does not use the completion columns (ValueError).  At repeated
    singular values, |s_i − s_j| ≤ eps^(2/3)·max(s_i, s_j), the gradient is exact
    for losses that depend on a cluster through symmetric functions of its
    values, its singular subspaces and its polar part U_B V_Bᴴ (the nuclear
    norm, sum f(s), U Vᴴ); other losses get a ``GaugeWarning`` (write
    U diag(f(s)) Vᴴ as ``generalized_funm(a, f)``: exact there).  Second
    derivatives within eps^(1/3) of a tie miss the in-cluster curvature (or
    amplify rounding by 1/gap²) and say so with a ``GaugeWarning``:
    ``generalized_funm`` has exact ones, and Σ f(sᵢ) = tr funmh(aᴴa, f∘√).  At a
    rank-deficient matrix, second derivatives of losses of the nonzero triplets (orth,
    subspace angles) are exact (the truncated rule, svd.md §6); of the zero pairs' own
    vectors they are not, and warn.  Zero
    singular values: 1/s is used down to the smallest normal number, so
    losses through U diag(s) Vᴴ stay exact at rank deficiency (an exactly
    zero value of a non-square matrix warns: its complement term is 0/0).  The backward
    pass is four matrix products; nothing is refactored.
    """
    op = "svd"
    if lapack_driver not in (None, "gesdd", "gesvd"):
        raise ValueError(f"svd: lapack_driver must be 'gesdd' or 'gesvd', got {lapack_driver!r}")
    del hermitian, overwrite_a, lapack_driver
    A = C.prepare(op, a, check_finite, square=False)
    if not compute_uv:
        return _values(A)
    U, s, Vh = _svd(A, full_matrices=bool(full_matrices))
    return SVDResult(U, s, Vh)


def _values(A):
    if not isinstance(A, Tracer):
        return kernels_for(A).svd(A, full_matrices=False, compute_uv=False)
    return _svd(A, full_matrices=False)[1]


def svdvals(a, *, overwrite_a=False, check_finite=True):
    """Singular values, descending, differentiable (numpy.linalg.svdvals, scipy.linalg.svdvals).

    Untraced, only the values are computed (LAPACK without vectors); traced,
    the thin SVD is kept for the backward pass Ā = U diag(s̄) Vᴴ.

    Valid when: always for losses symmetric in each cluster of equal singular
    values (norms, sum f(s)); a loss that singles out one of several equal
    values (s[0] at a tie: the spectral norm) is not differentiable there and
    gets a GaugeWarning and a subgradient.  Zero singular values: |·| is not
    differentiable at 0; the rule returns the subgradient u_i v_iᴴ s̄_i.
    Second derivatives near a tie: see :func:`svd`.
    """
    del overwrite_a
    return _values(C.prepare("svdvals", a, check_finite, square=False))


# -- the extreme singular values: the spectral norm, its reciprocal twin, cond -----------------
# s₁ (and s_min) need the singular vectors of that value only: ∂s/∂A = u vᴴ.  At a tie the
# derivative does not exist; the mean of u_i v_iᴴ over the tied values is the minimum-norm
# subgradient (norms.md, sections 6 and 7).  The CPU kernel reduces to bidiagonal form and
# finds just those vectors (about the cost of the values, half the thin SVD's), or, for a
# stack of small matrices, adds inverse iteration per end to the stacked values.

def extreme_forward(A, *, ends):
    """((value per end), (M per end)): the extreme singular values and their derivatives."""
    return kernels_for(A).svd_extreme(A, ends, S.gap_tol(A.dtype))


def _extreme_directions(A, ends):
    """M per end, differentiable in A (through the svd rule): U diag(w) Vᴴ with constant
    weights w, 1/k on the k values tied with the end (a loss the svd rule sees as
    invariant under rotations within the tie)."""
    U, s, Vh = _svd(A, full_matrices=False)
    sv = C.value(s)
    k = sv.shape[-1]
    return [ops.matmul(U * ops.expand_dims(S.tie_weights(sv, 0 if end == "top" else k - 1)[0],
                                           -2), Vh) for end in ends]


def extreme_vjp(cts, needs, out, Ms, A, *, ends):
    """Ā = Σ_end ḡ_end M_end."""
    o = C.ops_for(*cts, A)
    if not o.plain:
        Ms = _extreme_directions(A, ends)
    A_bar = None
    for g, M in zip(cts, Ms):
        if g is None:
            continue
        t = M * o.expand_dims(o.expand_dims(g, -1), -1)
        A_bar = t if A_bar is None else A_bar + t
    return (ops.fit(A_bar, A),)


def extreme_jvp(tangents, out, Ms, A, *, ends):
    """ṡ_end = Re Σᵢⱼ conj(M)ᵢⱼ Ȧᵢⱼ = Re uᴴ Ȧ v."""
    (A_dot,) = tangents
    if not C.ops_for(A).plain:
        Ms = _extreme_directions(A, ends)
    out_dot = []
    for M in Ms:
        d = ops.sum(ops.conj(M) * A_dot, axis=(-2, -1))
        out_dot.append(ops.real(d) if ops._is_complex(d) else d)
    return tuple(out_dot)


_extreme = Primitive("svd_extreme", extreme_forward, extreme_vjp, extreme_jvp, staged=True,
                     multiple_results=True)


def extreme_singular_values(a, ends=("top",)):
    """The singular values at ``ends`` ("top": s₁, "bottom": s_min) of a (..., m, n), as a
    tuple, differentiable; the spectral norm, its reciprocal side and cond use it.

    Traced, only the singular vectors of those values are computed on the CPU for
    matrices of order >= 48 (bidiagonal reduction) and for stacks of smaller ones
    (inverse iteration after the values); the thin SVD otherwise.  At a tie
    the gradient is the mean of u_i v_iᴴ over the tied values (within eps^(2/3),
    relative): the minimum-norm subgradient.
    """
    return _extreme(a, ends=tuple(ends))


# -- registry -------------------------------------------------------------------------------

def _gauge_free(U, s, Vh, k):
    """s, U diag(c) Vh, U diag(c) Uᴴ and Vᴴ diag(c) V: invariant under the joint phases."""
    c = S.gauge_weights(k, U)
    U1, Vh1 = _cols(U, 0, k), _rows(Vh, 0, k)
    Uc = U1 * c
    return (s, ops.matmul(Uc, Vh1), ops.matmul(Uc, ops.mH(U1)),
            ops.matmul(ops.mH(Vh1) * c, Vh1))


def _svd_fun(a, full_matrices=False):
    U, s, Vh = svd(a, full_matrices=full_matrices)
    return _gauge_free(U, s, Vh, min(ops._shape(a)[-2:]))


_svd_fun.__doc__ = svd.__doc__


def svd_reference(a, full_matrices=False):
    U, s, Vh = np.linalg.svd(a, full_matrices=full_matrices)
    k = min(a.shape[-2:])
    c = S.gauge_weights(k, s)
    U1, Vh1 = U[..., :, :k], Vh[..., :k, :]
    mH = lambda x: np.conj(np.swapaxes(x, -1, -2))   # noqa: E731
    return s, (U1 * c) @ Vh1, (U1 * c) @ mH(U1), (mH(Vh1) * c) @ Vh1


_THIN = (
    Domain("square", C.rect_domain(3, 3), "3×3"),
    Domain("tall", C.rect_domain(4, 3), "4×3"),
    Domain("wide", C.rect_domain(3, 4), "3×4"),
)

RULES = (
    Rule(
        name="svd",
        fun=_svd_fun,
        primitive=_svd,
        domains=_THIN + (
            Domain("tall-full", C.rect_domain(4, 2, full_matrices=True),
                   "4×2 full_matrices, loss on the first 2 columns of U"),
            Domain("wide-full", C.rect_domain(2, 4, full_matrices=True),
                   "2×4 full_matrices, loss on the first 2 rows of Vh"),
        ),
        derivation="docs/derivations/svd.md",
        reference=svd_reference,
        references=("Townsend 2016", "Wan & Zhang 2019", "Seeger et al. 2017"),
    ),
    Rule(
        name="svdvals",
        fun=svdvals,
        primitive=_svd,
        domains=_THIN,
        derivation="docs/derivations/svd.md",
        reference=lambda a: np.linalg.svd(a, compute_uv=False),
        references=("Townsend 2016",),
    ),
)
