"""lu_factor, lu_solve, lu.   Derivation: docs/derivations/lu.md

A (m×n), rows permuted by partial pivoting:  A[perm] = L U,  k = min(m, n),
L (m×k) unit lower trapezoidal, U (k×n) upper trapezoidal, returned packed as
lu = tril(L, −1) + U (SciPy's lu_factor).  Pivots are piecewise constant: no
gradient.  With Ṁ = Ȧ[perm] and the leading k×k blocks L₁, U₁:

    X = L₁⁻¹ Ṁ₁ U₁⁻¹,  L̇₁ = L₁ tril(X, −1),  U̇₁ = triu(X) U₁
    tall (m > n):  L̇₂ = (Ṁ₂ − L₂ U̇₁) U₁⁻¹
    wide (m < n):  U̇₂ = L₁⁻¹ (Ṁ_{:,2} − L̇₁ U₂)

The reverse rule is the transpose of these (triangular solves and products
only, see lu_vjp); Ā is M̄ with the row permutation undone.

lu_solve is a row gather and two differentiable triangular solves with the
packed factor, so its gradient w.r.t. the factor values and b is their chain
rule (O(n² k)).  lu() returns P, L, U as differentiable slices of the packed
factor.
"""

from __future__ import annotations

import numpy as np

from .. import ops, transforms
from ..backend import _TRANS, kernels_for
from ..registry import Domain, Rule
from ..tape import Primitive, Tracer
from ..testing import matrices as M
from . import _common as C
from .triangular import _trisolve, triangular_solve

__all__ = ["lu_factor", "lu_solve", "lu", "RULES"]


def lu_forward(A):
    lu_, perm, piv = kernels_for(A).lu_packed(A, op="lu_factor")
    return lu_, (perm, piv)


def _blocks(lu_):
    """L (m×k) and U (k×n) from the packed factor, differentiable."""
    m, n = ops._shape(lu_)[-2:]
    k = min(m, n)
    v = C.peek(lu_)
    xp = C.namespace_of(v)
    L = ops.tril(lu_, -1)
    U = ops.triu(lu_)
    if n > k:
        L = ops.getitem(L, (Ellipsis, slice(None), slice(0, k)))
    if m > k:
        U = ops.getitem(U, (Ellipsis, slice(0, k), slice(None)))
    return L + xp.eye(m, k, dtype=v.dtype), U


def _sl(x, rows=slice(None), cols=slice(None)):
    return ops.getitem(x, (Ellipsis, rows, cols))


def _right_solve_U(U1, B):
    """B U₁⁻¹ = (U₁⁻ᴴ Bᴴ)ᴴ."""
    return ops.mH(_trisolve(U1, ops.mH(B), lower=False, trans=2, op="lu"))


def _right_solve_UH(U1, B):
    """B U₁⁻ᴴ = (U₁⁻¹ Bᴴ)ᴴ."""
    return ops.mH(_trisolve(U1, ops.mH(B), lower=False, trans=0, op="lu"))


def _cotangent_composed(lu_, lu_bar, *, perm):
    """M̄₁ = L₁⁻ᴴ [tril(L₁ᴴ L̄₁, −1) + triu(Ū₁ U₁ᴴ)] U₁⁻ᴴ, plus the tall/wide blocks, rows
    un-permuted — in differentiable operations: the definition, and what its
    derivatives trace."""
    m, n = ops._shape(lu_)[-2:]
    k = min(m, n)
    L, U = _blocks(lu_)
    L_bar, U_bar = ops.tril(lu_bar, -1), ops.triu(lu_bar)
    sq = _sl(lu_, slice(0, k), slice(0, k))                 # L₁ (unit, strict lower) and U₁
    L1, U1 = _sl(L, slice(0, k)), _sl(U, slice(None), slice(0, k))
    L1_bar = _sl(L_bar, slice(0, k), slice(0, k))
    U1_bar = _sl(U_bar, slice(0, k), slice(0, k))
    if m > n:          # tall: L̇₂ = (Ṁ₂ − L₂ U̇₁) U₁⁻¹
        L2, L2_bar = _sl(L, slice(k, None)), _sl(L_bar, slice(k, None))
        M2_bar = _right_solve_UH(sq, L2_bar)                 # L̄₂ U₁⁻ᴴ
        U1_bar = U1_bar - ops.matmul(ops.mH(L2), M2_bar)
    if n > m:          # wide: U̇₂ = L₁⁻¹ (Ṁ_{:,2} − L̇₁ U₂)
        U2, U2_bar = _sl(U, slice(None), slice(k, None)), _sl(U_bar, slice(None), slice(k, None))
        M2_bar = _trisolve(sq, U2_bar, lower=True, trans=2, unit_diagonal=True, op="lu")
        L1_bar = L1_bar - ops.matmul(M2_bar, ops.mH(U2))
    X_bar = ops.tril(ops.matmul(ops.mH(L1), L1_bar), -1) + ops.triu(ops.matmul(U1_bar, ops.mH(U1)))
    M1_bar = _right_solve_UH(sq, _trisolve(sq, X_bar, lower=True, trans=2, unit_diagonal=True,
                                           op="lu"))
    if m > n:
        M_bar = ops.concatenate([M1_bar, M2_bar], axis=-2)
    elif n > m:
        M_bar = ops.concatenate([M1_bar, M2_bar], axis=-1)
    else:
        M_bar = M1_bar
    return ops.permute_rows(M_bar, C.inverse_permutation(perm))        # Ā[perm] = M̄


def _cotangent_kernel(lu_, lu_bar, *, perm):
    """The same map as one kernel call where the table has one (a single square matrix on
    the CPU: BLAS trmm and trsm on the packed factor); otherwise the composed form."""
    out = kernels_for(lu_, lu_bar).lu_cotangent(lu_, lu_bar, perm)
    return _cotangent_composed(lu_, lu_bar, perm=perm) if out is None else out


_cotangent = transforms.fused("lu_cotangent", _cotangent_kernel, _cotangent_composed)


def lu_vjp(lu_bar, needs, lu_, res, A):
    """Ā from the packed factor's cotangent (``_cotangent_composed``)."""
    perm, _ = res
    return (ops.fit(_cotangent(lu_, lu_bar, perm=perm), A),)




def lu_jvp(tangents, lu_, res, A):
    (A_dot,) = tangents
    perm, _ = res
    m, n = ops._shape(lu_)[-2:]
    k = min(m, n)
    L, U = _blocks(lu_)
    sq = _sl(lu_, slice(0, k), slice(0, k))
    L1, U1 = _sl(L, slice(0, k)), _sl(U, slice(None), slice(0, k))
    M_dot = ops.permute_rows(A_dot, perm)
    M1 = _sl(M_dot, slice(0, k), slice(0, k))
    X = _right_solve_U(sq, _trisolve(sq, M1, lower=True, trans=0, unit_diagonal=True, op="lu"))
    L1_dot = ops.matmul(L1, ops.tril(X, -1))
    U1_dot = ops.matmul(ops.triu(X), U1)
    out = L1_dot + U1_dot
    if m > n:
        L2 = _sl(L, slice(k, None))
        L2_dot = _right_solve_U(sq, _sl(M_dot, slice(k, None)) - ops.matmul(L2, U1_dot))
        out = ops.concatenate([out, L2_dot], axis=-2)
    elif n > m:
        U2 = _sl(U, slice(None), slice(k, None))
        U2_dot = _trisolve(sq, _sl(M_dot, slice(None), slice(k, None)) - ops.matmul(L1_dot, U2),
                           lower=True, trans=0, unit_diagonal=True, op="lu")
        out = ops.concatenate([out, U2_dot], axis=-1)
    return out


_lu = Primitive("lu", lu_forward, lu_vjp, lu_jvp, staged=True)


def _factor(op, a, check_finite):
    # the pivots are this call's: under linalgad.jit, values of the recording
    packed, (perm, piv) = _lu.bind_staged((C.prepare(op, a, check_finite, square=False),), {})
    return packed, perm, piv


def lu_factor(a, overwrite_a=False, check_finite=True):
    """``(lu, piv)``: the packed LU factorization with partial pivoting, differentiable.

    scipy.linalg.lu_factor: ``lu`` holds U in its upper triangle and L's
    multipliers (unit diagonal implied) below it; ``piv`` is LAPACK's 0-based
    swap sequence (row i was interchanged with row piv[i]; int32, as SciPy).  ``a`` is
    (..., n, n) (also (..., m, n)); ``piv`` is (..., min(m, n)).  An exactly
    singular matrix is factored with a LinAlgWarning, as SciPy.  Gradients
    flow through the values of ``lu``; the pivots are piecewise constant.
    ``overwrite_a`` is accepted and ignored.

    Valid when: the leading min(m, n) × min(m, n) block of U is nonsingular
    (for the derivative).
    """
    packed, perm, piv = _factor("lu_factor", a, check_finite)
    return packed, piv.astype(np.int32)     # LAPACK's integer type, as SciPy returns it


def lu(a, permute_l=False, overwrite_a=False, check_finite=True, p_indices=False):
    """P, L, U of ``a = P @ L @ U`` (scipy.linalg.lu), differentiable in L and U.

    ``a`` is (..., m, n), k = min(m, n): L is (..., m, k) unit lower
    trapezoidal, U (..., k, n) upper trapezoidal.  ``permute_l=True`` returns
    ``(P @ L, U)``; ``p_indices=True`` returns ``(p, L, U)`` with
    ``a = L[p] @ U``.  P (a permutation matrix of a's real dtype) and p are
    constants.

    Valid when: the leading k × k block of U is nonsingular (for the
    derivative).
    """
    packed, perm, piv = _factor("lu", a, check_finite)
    L, U = _blocks(packed)
    # P and p are made from this call's pivots: under linalgad.jit, steps of the recording
    # whose results are values of it (so a replay returns the new call's)
    inv_perm = C.compute(C.inverse_permutation, (perm,), name="lu's row order")
    if permute_l:
        return ops.permute_rows(L, inv_perm), U
    if p_indices:
        return C.expose(inv_perm, perm), L, U
    real = np.empty(0, dtype=C.peek(packed).dtype).real.dtype
    P = C.compute(lambda p: _perm_matrix(p, real), (perm,), name="lu's P")
    return C.expose(P, perm), L, U


def _perm_matrix(perm, dtype):
    """P with a = P L U, i.e. P[perm[i], i] = 1."""
    xp = C.namespace_of(perm)
    m = perm.shape[-1]
    P = xp.zeros(perm.shape + (m,), dtype=dtype)
    xp.put_along_axis(P, perm[..., None], 1, axis=-1)     # row i of Pᵀ is e_{perm[i]}
    return xp.swapaxes(P, -1, -2)


def lu_solve(lu_and_piv, b, trans=0, overwrite_b=False, check_finite=True):
    """Solve ``op(a) x = b`` from ``(lu, piv) = lu_factor(a)``, differentiable in lu and b.

    scipy.linalg.lu_solve: ``trans`` 0/'N' (a x = b), 1/'T' (aᵀ x = b),
    2/'C' (aᴴ x = b).  ``b`` is (n,) or (..., n, k), stacks broadcast with
    ``lu``'s.  Composed of a row permutation and two triangular solves with
    the packed factor, so the gradient w.r.t. the factor values costs
    O(n² k).  Raises LinAlgError when U has an exactly zero diagonal entry
    (a singular matrix), naming its index in a stack.

    Valid when: U is nonsingular.
    """
    op = "lu_solve"
    try:
        lu_, piv = lu_and_piv
    except (TypeError, ValueError):
        raise TypeError("lu_solve: the first argument must be the pair (lu, piv) returned by "
                        "lu_factor") from None
    if trans not in _TRANS:
        raise ValueError(f"{op}: trans must be 0, 1, 2, 'N', 'T' or 'C'; got {trans!r}")
    trans = _TRANS[trans]
    lv = C.square_matrix(op, lu_, "lu")
    bv = C.peek(b)
    piv = C.value(piv)
    n = lv.shape[-1]
    if piv.shape != lv.shape[:-1]:
        raise ValueError(f"{op}: piv has shape {piv.shape}; expected {lv.shape[:-1]} for lu "
                         f"of shape {lv.shape}")
    C.rhs_shape(op, lv.shape, bv.shape)
    dtype = C.result_dtype(op, lv, bv)
    C.checked(op, ("lu", "b"), (lu_, b), check_finite)
    lu_, b = C.promote(lu_, dtype), C.promote(b, dtype)
    perm = kernels_for(lv).perm_from_swaps(piv, n)
    return C.on_columns(lambda b_: _lusolve(lu_, b_, perm=perm, trans=trans), b)


# -- lu_solve as one primitive ----------------------------------------------------------
#
# trans 0:  L y = b[perm],  U x = y.
# trans t:  op(U) y = b,  op(L) z = y,  x = Pᵀ z  (x[perm] = z).
# The half-way y is the residual; the reverse pass is two triangular solves with the
# adjoint ops and the two projected products of triangular.md, one per factor (lu.md §5).

def _first_stage(lu, b, perm, trans):
    """y as a function of (lu, b): L⁻¹ b[perm] (trans 0) or op(U)⁻¹ b."""
    if trans == 0:
        return triangular_solve(lu, ops.permute_rows(b, perm), lower=True, unit_diagonal=True,
                                op="lu_solve")
    return triangular_solve(lu, b, lower=False, trans=trans, op="lu_solve")


def lusolve_forward(lu, b, *, perm, trans):
    y = _first_stage(lu, b, perm, trans)
    if trans == 0:
        return triangular_solve(lu, y, lower=False, op="lu_solve"), y
    z = triangular_solve(lu, y, lower=True, trans=trans, unit_diagonal=True, op="lu_solve")
    return ops.permute_rows(z, C.inverse_permutation(perm)), y


def _stored_or_traced(y, lu, b, perm, trans):
    """The residual y, recomputed with differentiable ops when lu or b is traced (so that
    the reverse rule itself can be differentiated)."""
    if isinstance(lu, Tracer) or isinstance(b, Tracer):
        return _first_stage(lu, b, perm, trans)
    return y


def lusolve_vjp(x_bar, needs, x, y, lu, b, *, perm, trans):
    """trans 0: u = U⁻ᴴ x̄, v = L⁻ᴴ u;  b̄ = Pᵀ v,  L̄ = −tril(v yᴴ, −1),  Ū = −triu(u xᴴ).
    trans t: w = op(L)⁻ᴴ (P x̄), s = op(U)⁻ᴴ w;  b̄ = s, L̄ and Ū from (w, z) and (s, y)
    as for op(T) x = b (triangular.md)."""
    op = "lu_solve"
    if trans == 0 and not (isinstance(lu, Tracer) or isinstance(b, Tracer)):
        fast = C.fitted_pair(kernels_for(lu).lu_solve_cotangent(lu, perm, x_bar, x, y,
                                                                 needs[0]), needs, lu, b)
        if fast is not None:
            return fast
    if trans == 0:
        u = triangular_solve(lu, x_bar, lower=False, trans=2, op=op)
        v = triangular_solve(lu, u, lower=True, trans=2, unit_diagonal=True, op=op)
        b_bar = ops.permute_rows(v, C.inverse_permutation(perm)) if needs[1] else None
        lu_bar = None
        if needs[0]:
            yv = _stored_or_traced(y, lu, b, perm, trans)
            lu_bar = C.split_cotangent((v, yv), (u, x), 0, a_shape=ops._shape(lu))
    else:
        z_bar = ops.permute_rows(x_bar, perm)
        w = C.adjoint_rhs(lambda rhs, t: triangular_solve(
            lu, rhs, lower=True, trans=t, unit_diagonal=True, op=op), z_bar, trans)
        s = C.adjoint_rhs(lambda rhs, t: triangular_solve(lu, rhs, lower=False, trans=t, op=op),
                          w, trans)
        b_bar = s if needs[1] else None
        lu_bar = None
        if needs[0]:
            yv = _stored_or_traced(y, lu, b, perm, trans)
            z = ops.permute_rows(x, perm)
            lu_bar = C.split_cotangent((w, z), (s, yv), trans, a_shape=ops._shape(lu))
    return (ops.fit(lu_bar, lu) if lu_bar is not None else None,
            ops.fit(b_bar, b) if b_bar is not None else None)


def lusolve_jvp(tangents, x, y, lu, b, *, perm, trans):
    """trans 0: ẋ = U⁻¹(L⁻¹(ḃ[perm] − L̇ y) − U̇ x);
    trans t: ẏ = op(U)⁻¹(ḃ − op(U̇) y), ż = op(L)⁻¹(ẏ − op(L̇) z), ẋ = Pᵀ ż;
    L̇ = tril(l̇u, −1), U̇ = triu(l̇u)."""
    op = "lu_solve"
    lu_dot, b_dot = tangents
    yv = _stored_or_traced(y, lu, b, perm, trans) if lu_dot is not None else y
    if trans == 0:
        r = ops.permute_rows(b_dot, perm) if b_dot is not None else None
        if lu_dot is not None:
            d = -ops.matmul(ops.tril(lu_dot, -1), yv)
            r = d if r is None else r + d
        t = triangular_solve(lu, r, lower=True, unit_diagonal=True, op=op)
        if lu_dot is not None:
            t = t - ops.matmul(ops.triu(lu_dot), x)
        out = triangular_solve(lu, t, lower=False, op=op)
    else:
        r = b_dot
        if lu_dot is not None:
            d = -ops.matmul(C.op(ops.triu(lu_dot), trans), yv)
            r = d if r is None else r + d
        y_dot = triangular_solve(lu, r, lower=False, trans=trans, op=op)
        if lu_dot is not None:
            z = ops.permute_rows(x, perm)
            y_dot = y_dot - ops.matmul(C.op(ops.tril(lu_dot, -1), trans), z)
        z_dot = triangular_solve(lu, y_dot, lower=True, trans=trans, unit_diagonal=True, op=op)
        out = ops.permute_rows(z_dot, C.inverse_permutation(perm))
    shape = ops._shape(x)
    return ops.broadcast_to(out, shape) if ops._shape(out) != shape else out


_lusolve = Primitive("lu_solve", lusolve_forward, lusolve_vjp, lusolve_jvp, staged=True)


# -- registry -------------------------------------------------------------------------------

def _general(rng, n, batch, dtype):
    return (M.random_general(rng, n, batch, dtype),), {}



def _lu_solve_domain(trans):
    def make(rng, n, batch, dtype):
        import scipy.linalg
        A = M.random_general(rng, n, batch, dtype)
        flat = A.reshape((-1, n, n))
        lus = [scipy.linalg.lu_factor(a) for a in flat]
        lu_ = np.stack([p[0] for p in lus]).reshape(A.shape)
        piv = np.stack([p[1] for p in lus]).reshape(A.shape[:-1])
        return (lu_, M.random_rhs(rng, n, 2, batch, dtype)), {"piv": piv, "trans": trans}
    return make


def _lu_solve_fun(lu_, b, piv, trans=0):
    return lu_solve((lu_, piv), b, trans=trans)


_lu_solve_fun.__doc__ = lu_solve.__doc__


def _lu_factor_fun(a):
    return lu_factor(a)[0]


_lu_factor_fun.__doc__ = lu_factor.__doc__


def _lu_fun(a):
    _, L, U = lu(a, p_indices=True)
    return L, U


_lu_fun.__doc__ = lu.__doc__


def lu_factor_reference(a):
    import scipy.linalg
    return C.per_matrix(lambda x: scipy.linalg.lu_factor(x)[0], a, cores=(2,))


def lu_reference(a):
    import scipy.linalg
    _, L, U = scipy.linalg.lu(a, p_indices=True)
    return L, U


def lu_solve_reference(lu_, b, piv, trans=0):
    import scipy.linalg
    return C.per_matrix(lambda l, p, x: scipy.linalg.lu_solve((l, p), x, trans=trans),
                        lu_, piv, b, cores=(2, 1, 2))


RULES = (
    Rule(
        name="lu_factor",
        fun=_lu_factor_fun,
        primitive=_lu,
        domains=(
            Domain("square", _general, "well-conditioned square matrices"),
        ),
        derivation="docs/derivations/lu.md",
        reference=lu_factor_reference,
        references=("Walter & Lehmann 2018", "Seeger et al. 2017"),
    ),
    Rule(
        name="lu",
        fun=_lu_fun,
        primitive=_lu,
        domains=(
            Domain("square", _general, "square"),
            Domain("tall", C.rect_domain(5, 3), "5×3"),
            Domain("wide", C.rect_domain(3, 5), "3×5"),
        ),
        derivation="docs/derivations/lu.md",
        reference=lu_reference,
        references=("Walter & Lehmann 2018",),
    ),
    Rule(
        name="lu_solve",
        fun=_lu_solve_fun,
        primitive=_trisolve,
        domains=(
            Domain("N", _lu_solve_domain(0), "trans 0"),
            Domain("T", _lu_solve_domain(1), "trans 1"),
            Domain("C", _lu_solve_domain(2), "trans 2"),
        ),
        derivation="docs/derivations/lu.md",
        reference=lu_solve_reference,
        references=("Giles 2008",),
    ),
)
