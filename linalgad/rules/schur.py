"""schur, rsf2csf: the Schur decomposition A = Z T Zᴴ.   Derivation: docs/derivations/schur.md

    Ω = Zᴴ dZ (skew-Hermitian),   C = Zᴴ dA Z,   dT = C + T Ω − Ω T,   dZ = Z Ω
With L the strictly lower part of Ω (Ω = L − Lᴴ; Im diag Ω = 0 fixes the phases of the
complex form) and P the map keeping a matrix's strictly lower part, except that at the
subdiagonal slot (k+1, k) of each 2×2 block k of a real form it puts X_kk − X_{k+1,k+1}
(LAPACK's standardized blocks keep equal diagonal entries):
    S(L) := P(T Ω − Ω T) = −P(C)                          a column sweep (backend.schur_sweep)
Forward   Ṫ = C + T Ω − Ω T (on T's pattern),  Ż = Z Ω
Reverse   M = Zᴴ Z̄ + Tᴴ T̄ − T̄ Tᴴ,  Sᴴ(Y) = tril(M − Mᴴ, −1),  Ā = Z (T̄ − Pᴴ Y) Zᴴ
          (Re of it for real A).
The sweep and its adjoint are one primitive pair whose own derivatives are sweeps, so every
order of derivative works.  A loss that depends on the complex form's column phases (Im diag M
≠ 0), or on the rotation inside a (nearly) normal 2×2 block of the real form, raises
ValueError; (nearly) repeated eigenvalues raise LinAlgError.

rsf2csf is composed of differentiable ops: the Givens rotation of each 2×2 block built from
the block's entries, T_c = triu(U T Uᴴ), Z_c = Z Uᴴ (U the rotations, block diagonal).
"""

from __future__ import annotations

import numpy as np

from .. import ops
from ..backend import (LinAlgError, namespace_of, schur_blocks, schur_factor, schur_sweep,
                       to_host)
from ..registry import Domain, Rule
from ..tape import Primitive
from ..testing import matrices as M
from . import _common as C
from . import _spectral as S

__all__ = ["schur", "rsf2csf", "RULES"]

OP = "schur"
_SORTS = ("lhp", "rhp", "iuc", "ouc")


# -- the pattern of a Schur form (plain constants read off T's value) ---------------------------

def _pattern(T):
    """(sub, struct, gauge) of T's value: sub (..., n, n) 1.0 at the subdiagonal slot (k+1, k)
    of each 2×2 block (None when there is none: a complex or triangular form), struct the
    pattern of T (upper triangle and the slots), gauge (..., n) the (nearly) normal blocks."""
    Tv = C.value(T)
    xp = namespace_of(Tv)
    n = Tv.shape[-1]
    rdt = np.finfo(Tv.dtype).dtype
    starts, gauge = schur_blocks(Tv)
    struct = xp.triu(xp.ones((n, n), dtype=rdt))
    if not bool(starts.any()):
        return None, struct, None
    sub = xp.zeros(starts.shape[:-1] + (n, n), dtype=rdt)
    k = xp.arange(n - 1)
    sub[..., k + 1, k] = starts[..., :-1]
    return sub, struct + sub, gauge


def _shift(v, up):
    """v (..., n) moved one place up (v_{k+1} at k) or down, a zero filling in."""
    z = ops.zeros_like(ops.getitem(v, (Ellipsis, slice(0, 1))))
    if up:
        return ops.concatenate([ops.getitem(v, (Ellipsis, slice(1, None))), z], axis=-1)
    return ops.concatenate([z, ops.getitem(v, (Ellipsis, slice(None, -1)))], axis=-1)


def _P(X, sub):
    """The equations' map: tril(X, −1), with X_kk − X_{k+1,k+1} at each block's slot."""
    out = ops.tril(X, -1)
    if sub is None:
        return out
    d = ops.diagonal(X, 0, -2, -1)
    return out * (1 - sub) + sub * ops.expand_dims(d - _shift(d, True), -2)


def _PH(Y, sub):
    """P's adjoint: tril(Y, −1) off the slots, and ±y (y = Y at the slot (k+1, k)) on the
    block's diagonal entries (k, k) and (k+1, k+1)."""
    out = ops.tril(Y, -1)
    if sub is None:
        return out
    y = ops.sum(Y * sub, axis=-2)
    u = y - _shift(y, False)
    n = ops._shape(Y)[-1]
    eye = namespace_of(sub).eye(n, dtype=sub.dtype)
    return out * (1 - sub) + eye * ops.expand_dims(u, -2)


# -- the sweep pair: L = S⁻¹ R and Y = S⁻ᴴ G ----------------------------------------------

def _sweep_impl(T, R, adjoint):
    return schur_sweep(T, R, adjoint, OP)


def _sweep_vjp(ct, needs, out, res, T, R, adjoint):
    """f (adjoint=False): L = S⁻¹ R, R̄ = S⁻ᴴ L̄ =: Y, T̄ = −(W Ωᴴ − Ωᴴ W), W = Pᴴ Y, Ω = L − Lᴴ;
    fᴴ: Y = S⁻ᴴ G, Ḡ = S⁻¹ Ȳ =: L₂, T̄ = −(W Ω₂ᴴ − Ω₂ᴴ W), W = Pᴴ Y, Ω₂ = L₂ − L₂ᴴ."""
    other = _sweep(T, ops.tril(ct, -1), adjoint=not adjoint)
    T_bar = None
    if needs[0]:
        sub = _pattern(T)[0]
        L, Y = (other, out) if adjoint else (out, other)
        W = _PH(Y, sub)
        Omh = ops.mH(L - ops.mH(L))
        T_bar = ops.fit(-(ops.matmul(W, Omh) - ops.matmul(Omh, W)), T)
    return T_bar, (ops.fit(other, R) if needs[1] else None)


def _sweep_jvp(tangents, out, res, T, R, adjoint):
    """L̇ = S⁻¹(Ṙ − P(Ṫ Ω − Ω Ṫ));  Ẏ = S⁻ᴴ(Ġ − tril(N − Nᴴ, −1)), N = Ṫᴴ W − W Ṫᴴ."""
    T_dot, R_dot = tangents
    rhs = R_dot
    if T_dot is not None:
        sub = _pattern(T)[0]
        if adjoint:
            W = _PH(out, sub)
            Th = ops.mH(T_dot)
            N = ops.matmul(Th, W) - ops.matmul(W, Th)
            d = ops.tril(N - ops.mH(N), -1)
        else:
            Om = out - ops.mH(out)
            d = _P(ops.matmul(T_dot, Om) - ops.matmul(Om, T_dot), sub)
        rhs = -d if rhs is None else rhs - d
    return _sweep(T, rhs, adjoint=adjoint)


_sweep = Primitive("schur_sweep", _sweep_impl, _sweep_vjp, _sweep_jvp)


# -- schur ----------------------------------------------------------------------------------

def _schur_impl(A, complex_out, sort):
    T, Z, sdim = schur_factor(A, complex_out, sort, OP)
    return (T, Z), sdim


def _eigenvalues(T):
    """The eigenvalues of a Schur form's value (complex; a real form's blocks a ± i√(−bc))."""
    Tv = C.value(T)
    xp = namespace_of(Tv)
    w = xp.diagonal(Tv, 0, -2, -1).astype(np.result_type(Tv.dtype, np.complex64))
    if Tv.dtype.kind == "f" and Tv.shape[-1] > 1:
        starts = schur_blocks(Tv)[0][..., :-1]
        b, c = xp.diagonal(Tv, 1, -2, -1), xp.diagonal(Tv, -1, -2, -1)
        im = xp.sqrt(xp.abs(b * c)) * starts
        w[..., :-1] = w[..., :-1] + 1j * im
        w[..., 1:] = w[..., 1:] - 1j * im
    return w


def _check_distinct(T):
    if S.degenerate_pairs(_eigenvalues(T)) is not None:
        raise LinAlgError(
            "schur: (nearly) repeated eigenvalues: the Schur form is not a differentiable "
            "function of the matrix there (its restricted Sylvester equation is singular), "
            "and no derivative through schur is returned. Functions of the eigenvalues "
            "alone (a trace of a matrix function) are smooth: differentiate them without "
            "schur.")


def _terms_size(T, T_bar, Z_bar):
    """Per matrix (...): ‖Z̄‖_F + ‖T‖_F ‖T̄‖_F, the size of the terms of M = ZᴴZ̄ + TᴴT̄ − T̄Tᴴ
    before they cancel.  A gauge-invariant loss of a normal matrix (T diagonal, or with
    normal blocks) has an M of pure rounding, of the order eps times this: judged against
    max|M| alone, its rounding would look like a gauge dependence."""
    Tv = C.value(T)
    xp = namespace_of(Tv)
    size = 0.0
    if Z_bar is not None:
        size = xp.sqrt(xp.sum(xp.abs(C.value(Z_bar)) ** 2, axis=(-2, -1)))
    if T_bar is not None:
        nt = xp.sqrt(xp.sum(xp.abs(Tv) ** 2, axis=(-2, -1)))
        size = size + nt * xp.sqrt(xp.sum(xp.abs(C.value(T_bar)) ** 2, axis=(-2, -1)))
    return size


def _check_gauge(M_, sub, gauge, size=0.0):
    """The loss's derivative along the gauge: Im diag M (the complex form's column phases:
    Z → Z D, T → Dᴴ T D) and M_{k+1,k} − M_{k,k+1} (the rotation inside a normal 2×2
    block); ValueError where it is not ~0: above √eps times the larger of max|M| and
    ``size`` (per matrix, _terms_size)."""
    Mv = C.value(M_)
    xp = namespace_of(Mv)
    if not Mv.size:
        return
    scale = xp.maximum(S._scale(Mv, xp), xp.asarray(size, dtype=np.finfo(Mv.dtype).dtype))
    if Mv.dtype.kind == "c":
        S.check_phase(OP, Mv, "the Schur vectors (Z → Z D, T → Dᴴ T D for a diagonal D of "
                      "phases)", size=scale)
    if gauge is not None and bool(gauge.any()):
        n = Mv.shape[-1]
        k = xp.arange(n - 1)
        part = xp.abs(Mv[..., k + 1, k] - Mv[..., k, k + 1]) * gauge[..., :-1]
        if bool((part > S.rel_tol(Mv.dtype) * scale[..., None]).any()):
            raise ValueError(
                "schur: the loss depends on the rotation inside a normal 2×2 block of the "
                "real Schur form (b = −c), which the form leaves free there, so its "
                "gradient is not defined. Use a loss invariant under it (eigenvalues, |T|², "
                "the block's invariant subspace Z[:, k:k+2] Z[:, k:k+2]ᵀ) or output='complex'.")


def _schur_vjp(cts, needs, out, res, A, complex_out, sort):
    T_bar, Z_bar = cts
    T, Z = out
    if T_bar is None and Z_bar is None:
        return (None,)
    _check_distinct(T)
    sub, struct, gauge = _pattern(T)
    M_ = None
    if T_bar is not None:
        T_bar = T_bar * struct
        Th = ops.mH(T)
        M_ = ops.matmul(Th, T_bar) - ops.matmul(T_bar, Th)
    if Z_bar is not None:
        K = ops.matmul(ops.mH(Z), Z_bar)
        M_ = K if M_ is None else M_ + K
    _check_gauge(M_, sub, gauge, _terms_size(T, T_bar, Z_bar))
    Y = _sweep(T, ops.tril(M_ - ops.mH(M_), -1), adjoint=True)
    C_bar = -_PH(Y, sub) if T_bar is None else T_bar - _PH(Y, sub)
    return (ops.fit(ops.matmul(ops.matmul(Z, C_bar), ops.mH(Z)), A),)


def _schur_jvp(tangents, out, res, A, complex_out, sort):
    (A_dot,) = tangents
    T, Z = out
    _check_distinct(T)
    sub, struct, _ = _pattern(T)
    if ops._is_complex(T) and not ops._is_complex(A_dot):
        A_dot = ops.astype(A_dot, C.peek(T).dtype)
    Cm = ops.matmul(ops.matmul(ops.mH(Z), A_dot), Z)
    L = _sweep(T, -_P(Cm, sub), adjoint=False)
    Om = L - ops.mH(L)
    T_dot = (Cm + ops.matmul(T, Om) - ops.matmul(Om, T)) * struct
    return T_dot, ops.matmul(Z, Om)


_schur = Primitive("schur", _schur_impl, _schur_vjp, _schur_jvp, staged=True,
                   multiple_results=True)


def schur(a, output="real", lwork=None, overwrite_a=False, sort=None, check_finite=True):
    """Schur decomposition A = Z T Zᴴ of a square matrix or stack, differentiable.

    scipy.linalg.schur's signature and outputs: ``(T, Z)``, or ``(T, Z, sdim)`` with ``sort``
    (SciPy's 'lhp', 'rhp', 'iuc', 'ouc' or a callable: of (re, im) for the real form, of
    the eigenvalue for the complex one; sdim the number of eigenvalues selected, an int, an
    int array over a stack, never differentiated).  output='real' (default) gives for real
    input the real Schur form (T quasi upper triangular with LAPACK's standardized 2×2 blocks
    for complex-conjugate pairs: equal diagonal entries, off-diagonal product negative; Z
    orthogonal); complex input, or output='complex', the complex form (T upper triangular,
    Z unitary).  Integers compute in float64, float32/complex64 stay single precision.
    Stacks (..., n, n) are factored matrix by matrix (SciPy 1.17 batches schur too); an
    empty matrix gives empty factors, and sdim 0; an empty stack (SciPy raises) empty
    factors.  ``lwork`` and ``overwrite_a`` are accepted and ignored.  ValueError for a
    non-square input, infs or NaNs (check_finite), a bad ``output`` or ``sort``.  On the GPU
    the factors are computed on the host (CuPy has no Schur decomposition).

    Valid when: the eigenvalues are distinct (LinAlgError naming schur where two are within
    eps^(2/3) of the spectrum's scale: the form is not differentiable there; its derivative
    grows like 1/gap).  The complex form's column phases are a gauge (Z → Z D, T → Dᴴ T D)
    LAPACK fixes by no smooth rule: the derivative holds them fixed (Im diag ZᴴdZ = 0) and a
    loss that depends on them (Im diag(ZᴴZ̄ + TᴴT̄ − T̄Tᴴ) ≠ 0) raises ValueError; |T|, diag T,
    Z f(T) Zᴴ, Z[:, :k] Z[:, :k]ᴴ are invariant.  The real form is smooth near a generic A
    up to the columns' signs (Z → Z D, T → D T D with D = ±1, which LAPACK keeps locally);
    at a normal 2×2 block (b = −c) its rotation is free, and a loss that depends on it
    raises ValueError.  With ``sort`` the ordering is locally constant (an eigenvalue
    exactly on the selection's border is not differentiable).
    """
    if output not in ("real", "complex", "r", "c"):
        raise ValueError("schur: argument must be 'real', or 'complex'")
    if sort is not None and not callable(sort) and not (isinstance(sort, str) and sort in _SORTS):
        raise ValueError("schur: 'sort' parameter must either be 'None', or a callable, or "
                         "one of ('lhp','rhp','iuc','ouc')")
    a = C.array_arg(a)
    av = C.peek(a)
    if av.ndim < 2 or av.shape[-1] != av.shape[-2]:
        raise ValueError(f"schur: expected a square matrix or a stack of square matrices "
                         f"(..., n, n); got shape {av.shape}")
    A = C.promote(a, C.result_dtype(OP, av))
    C.checked(OP, ("a",), (A,), check_finite)
    (T, Z), sdim = _schur.bind_staged((A,), {"complex_out": output in ("complex", "c"),
                                             "sort": sort})
    if sort is None:
        return T, Z
    return T, Z, sdim


# -- rsf2csf --------------------------------------------------------------------------------

_RSF_EPS = float(np.finfo(np.float64).eps)       # SciPy's test for a block


def rsf2csf(T, Z, check_finite=True):
    """The complex Schur form (T_c, Z_c) of a real one (T, Z), differentiable.

    scipy.linalg.rsf2csf: each 2×2 block k of T (|T[k+1, k]| > eps (|T[k, k]| + |T[k+1,
    k+1]|), eps float64's) is made upper triangular by the Givens rotation G = [[c̄, s],
    [−s, c]] built from the block's eigenvalue μ with positive imaginary part: c = (μ − d)/r,
    s = T[k+1, k]/r, r = ‖(μ − d, T[k+1, k])‖, d = T[k+1, k+1]; T_c = triu(U T Uᴴ) and
    Z_c = Z Uᴴ with U the block-diagonal matrix of the rotations.  Complex output (complex64
    for float32 input, else complex128); stacks (..., n, n) broadcast; ValueError for
    non-square or mismatched inputs and for infs or NaNs (check_finite).  Written with
    linalgad's differentiable ops: every order of derivative.

    Valid when: T is a real Schur form (blocks with complex eigenvalues, not adjacent; the
    entries below the first subdiagonal zero: SciPy passes them through, this drops them).
    Differentiable in every direction that keeps the blocks (a direction that makes a zero
    subdiagonal entry nonzero switches a rotation on: not continuous); a complex T with a
    nonzero subdiagonal entry raises ValueError (SciPy rotates it; not supported here), and
    so does a 2×2 block with real eigenvalues (not a real Schur form; SciPy rotates it with
    the first eigenvalue eigvals returns).  Each block is scaled by its largest entry before
    the rotation is formed, so |T| ~ 1e±200 stays finite (SciPy's own loses accuracy there).
    """
    T, Z = C.array_args("rsf2csf", T=T, Z=Z)
    tv, zv = C.peek(T), C.peek(Z)
    for name, v in (("Z", zv), ("T", tv)):
        if v.ndim < 2 or v.shape[-1] != v.shape[-2]:
            raise ValueError(f"rsf2csf: Input '{name}' must be square; got shape {v.shape}")
    if tv.shape[-1] != zv.shape[-1]:
        raise ValueError(f"rsf2csf: Input array shapes must match: Z: {zv.shape} vs. T: "
                         f"{tv.shape}")
    C.stacks("rsf2csf", T=tv.shape, Z=zv.shape)
    C.checked("rsf2csf", ("T", "Z"), (T, Z), check_finite)
    dtype = C.result_dtype("rsf2csf", tv, zv)
    cdt = np.result_type(dtype, np.complex64)
    n = tv.shape[-1]
    Tval = C.value(T)
    xp = namespace_of(Tval)
    if n > 1:
        sd = xp.abs(xp.diagonal(Tval, -1, -2, -1))
        dg = xp.abs(xp.diagonal(Tval, 0, -2, -1))
        mk = sd > _RSF_EPS * (dg[..., :-1] + dg[..., 1:])
    else:
        mk = xp.zeros(tv.shape[:-2] + (0,), dtype=bool)
    if tv.dtype.kind == "c" or zv.dtype.kind == "c":
        if bool(mk.any()):
            raise ValueError("rsf2csf: a complex T with a nonzero subdiagonal entry is not "
                             "supported (T must be a real Schur form)")
        return ops.triu(C.promote(T, cdt)), C.promote(Z, cdt)
    T, Z = C.promote(T, dtype), C.promote(Z, dtype)
    if n < 2 or not bool(mk.any()):
        return ops.triu(ops.astype(T, cdt)), ops.astype(Z, cdt)
    if bool((mk[..., 1:] & mk[..., :-1]).any()):
        raise ValueError("rsf2csf: T has adjacent 2×2 blocks (two consecutive nonzero "
                         "subdiagonal entries): it is not a real Schur form")
    U = _rotations(T, mk, xp, cdt)
    Uh = ops.mH(U)
    Tc = ops.triu(ops.matmul(ops.matmul(U, ops.astype(T, cdt)), Uh))
    return Tc, ops.matmul(ops.astype(Z, cdt), Uh)


def _rotations(T, mk, xp, cdt):
    """U (..., n, n): the identity, with G = [[c̄, s], [−s, c]] on each block's rows and
    columns (k, k+1); mk (..., n−1) the blocks (plain)."""
    d0 = ops.diagonal(T, 0, -2, -1)
    a = ops.getitem(d0, (Ellipsis, slice(None, -1)))
    d = ops.getitem(d0, (Ellipsis, slice(1, None)))
    b = ops.diagonal(T, 1, -2, -1)
    c = ops.diagonal(T, -1, -2, -1)
    # the rotation is homogeneous of degree 0 in the block (a, b, c, d): each block is
    # divided by its largest entry (a constant: the derivative is unchanged), so that the
    # squares below neither overflow nor underflow (|T| ~ 1e±200)
    av, bv, cv, dv = (xp.abs(C.value(x)) for x in (a, b, c, d))
    sc = xp.maximum(xp.maximum(av, bv), xp.maximum(cv, dv))
    sc = xp.where(sc > 0, sc, 1.0).astype(av.dtype)       # (also off the blocks: no inf there)
    a, b, c, d = a / sc, b / sc, c / sc, d / sc
    h = 0.5 * (a - d)
    # μ − d = h ± i √(−(h² + bc)) (a block's eigenvalues are complex); elsewhere a dummy 1
    q = ops.where(mk, -(h * h + b * c), 1.0)
    if bool((C.value(q) <= 0).any()):
        k = int(np.argwhere(to_host(C.value(q) <= 0))[0][-1])
        raise ValueError(f"rsf2csf: the 2×2 block of T at rows {k}, {k + 1} has real "
                         "eigenvalues: T is not a real Schur form (scipy.linalg.schur's "
                         "blocks hold complex-conjugate pairs)")
    s_im = ops.sqrt(q)
    r = ops.sqrt(h * h + q + c * c)
    cs = ops.astype(h / r, cdt) + 1j * ops.astype(s_im / r, cdt)        # (μ − d)/r
    sn = ops.astype(c / r, cdt)
    one = xp.ones(mk.shape, dtype=cdt)
    zero = xp.zeros(mk.shape, dtype=cdt)
    first = ops.where(mk, ops.conj(cs), one)          # U[k, k] for a block starting at k
    second = ops.where(mk, cs, one)                   # U[k+1, k+1]
    pad1 = xp.ones(mk.shape[:-1] + (1,), dtype=cdt)
    diag = ops.concatenate([first, pad1], axis=-1) * ops.concatenate([pad1, second], axis=-1)
    sup = ops.concatenate([pad1 * 0, ops.where(mk, sn, zero)], axis=-1)   # U[k, k+1] at col k+1
    sbd = ops.concatenate([ops.where(mk, -sn, zero), pad1 * 0], axis=-1)  # U[k+1, k] at col k
    n = mk.shape[-1] + 1
    eye = xp.eye(n, dtype=cdt)
    return (eye * ops.expand_dims(diag, -2) + xp.eye(n, k=1, dtype=cdt) * ops.expand_dims(sup, -2)
            + xp.eye(n, k=-1, dtype=cdt) * ops.expand_dims(sbd, -2))


# -- registry -------------------------------------------------------------------------------

def _sq(X):
    """|X|² entrywise (real): invariant under the column signs and phases of a Schur form."""
    return ops.real(X * ops.conj(X)) if ops._is_complex(X) else X * X


def _block_weights(Tv):
    """W (..., n, n) = 1 / (1 + I + J/2), I and J the block numbers of row i and column j
    (a 2×2 block counts once): constant on each pair of blocks."""
    xp = namespace_of(Tv)
    starts = schur_blocks(Tv)[0]
    second = xp.zeros_like(starts)
    second[..., 1:] = starts[..., :-1]
    blk = xp.cumsum(~second, axis=-1) - 1.0
    return 1.0 / (1.0 + blk[..., :, None] + 0.5 * blk[..., None, :])


def _invariant(T, Z):
    """Outputs of a Schur form that do not depend on its free choices.  Complex form:
    |T|² and |Z|² (the column phases).  Real form: diag T and Z (T ∘ W) Zᵀ with W constant
    on each pair of blocks (W: _block_weights), since LAPACK's standardized form is fixed
    only up to each column's sign and, for a 2×2 block, a quarter turn (b, c) → (−c, −b):
    dlanv2 picks between them by a sign test on the block it receives, which jumps
    (schur.md, section 6)."""
    if ops._is_complex(T):
        return _sq(T), _sq(Z)
    W = _block_weights(C.value(T)).astype(C.peek(T).dtype)
    return (ops.diagonal(T, 0, -2, -1),
            ops.matmul(ops.matmul(Z, T * W), ops.mT(Z)))


def _invariant_ref(T, Z):
    if np.iscomplexobj(T):
        return np.abs(T) ** 2, np.abs(Z) ** 2
    W = _block_weights(T).astype(T.dtype)
    return np.diagonal(T, 0, -2, -1), Z @ (T * W) @ np.swapaxes(Z, -1, -2)


def _schur_fun(a):
    return _invariant(*schur(a))


def _schur_complex_fun(a):
    return _invariant(*schur(a, output="complex"))


def _schur_sorted_fun(a):
    return _invariant(*schur(a, sort="lhp")[:2])


def _rsf2csf_fun(a):
    Tc, Zc = rsf2csf(*schur(a))
    return _sq(Tc), _sq(Zc)


_schur_fun.__doc__ = _schur_complex_fun.__doc__ = _schur_sorted_fun.__doc__ = schur.__doc__
_rsf2csf_fun.__doc__ = rsf2csf.__doc__


def _ref(kind):
    import scipy.linalg as sl

    def reference(a):
        if kind == "rsf2csf":
            out = sl.rsf2csf(*sl.schur(a))
        elif kind == "sorted":
            out = sl.schur(a, sort="lhp")[:2]
        else:
            out = sl.schur(a, output="complex" if kind == "complex" else "real")
        return tuple(np.asarray(x) for x in _invariant_ref(*out))
    return reference


def _similar(rng, D, batch, dtype):
    """Q D Qᴴ, Q orthogonal (unitary for complex dtypes), D = its Schur form to be."""
    n = D.shape[-1]
    complex_ = np.dtype(dtype).kind == "c"
    Q = M.random_orthogonal(rng, n, batch, np.complex128 if complex_ else np.float64)
    A = Q @ D @ np.conj(np.swapaxes(Q, -1, -2))
    return np.ascontiguousarray((A if complex_ else A.real).astype(dtype))


def _separated(rng, n, batch, dtype, centered=False):
    """Eigenvalues at least 0.5 apart (real for real dtypes; complex otherwise), a non-normal
    upper part; ``centered``: in both half planes, |Re λ| >= 0.25."""
    batch = tuple(batch)
    d = np.arange(n) + rng.uniform(0, 0.5, batch + (n,))
    d = d - (n - 0.5) / 2 if centered else d + 1.0
    if centered:
        d = np.where(np.abs(d) < 0.25, np.sign(d + 1e-9) * 0.25, d)
    D = d[..., None, :] * np.eye(n)
    if np.dtype(dtype).kind == "c":
        D = D + 1j * np.eye(n) * rng.uniform(-1, 1, batch + (n,))[..., None, :]
        N = np.triu(rng.standard_normal(batch + (n, n)) + 1j * rng.standard_normal(
            batch + (n, n)), 1) * 0.4
    else:
        N = np.triu(rng.standard_normal(batch + (n, n)), 1) * 0.4
    return (_similar(rng, D + N, batch, dtype),), {}


def _pairs(rng, n, batch, dtype):
    """Real, complex-conjugate pairs a ± i√(bc') in non-normal 2×2 blocks (b ≠ −c), the
    pairs' real parts 1.5 apart, and a real eigenvalue for odd n."""
    batch = tuple(batch)
    D = np.zeros(batch + (n, n))
    for j, i in enumerate(range(0, n - 1, 2)):
        a = 1.5 * j + rng.uniform(-0.2, 0.2, batch)
        D[..., i, i] = D[..., i + 1, i + 1] = a
        D[..., i, i + 1] = rng.uniform(0.9, 1.5, batch)
        D[..., i + 1, i] = -rng.uniform(0.3, 0.6, batch)
    if n % 2:
        D[..., n - 1, n - 1] = 1.5 * (n // 2) + 0.7
    D = D + np.triu(rng.standard_normal(batch + (n, n)), 2) * 0.4
    return (_similar(rng, D, batch, dtype),), {}


def _centered(rng, n, batch, dtype):
    return _separated(rng, n, batch, dtype, centered=True)


_DOMAINS = (
    Domain("separated", _separated, "eigenvalues at least 0.5 apart, non-normal"),
    Domain("conjugate-pairs", _pairs, "real, complex-conjugate pairs in non-normal 2x2 "
           "blocks", real_only=True),
)

_TOL = {"float32": 3e-2, "float64": 1e-6}
_NOTE = ("central differences; double precision only: the generated checks difference the "
         "double-promoted input, and the QR algorithm's eigenvalue order (the branch of the "
         "Schur form) can differ between a single precision input and its double promotion "
         "(seen in 1 of ~30 draws of order 4). Single precision values and derivatives are "
         "checked in tests/test_schur.py against SciPy and against the double derivative")
_DOUBLE = (np.float64, np.complex128)

RULES = (
    Rule(name="schur", fun=_schur_fun, primitive=_schur, domains=_DOMAINS, dtypes=_DOUBLE,
         derivation="docs/derivations/schur.md", reference=_ref("real"), rtol=_TOL,
         tolerance_note=_NOTE, references=("Golub & Van Loan 2013, §7.1", "Stewart 1973")),
    Rule(name="schur-complex", fun=_schur_complex_fun, primitive=_schur, domains=_DOMAINS,
         dtypes=_DOUBLE,
         derivation="docs/derivations/schur.md", reference=_ref("complex"), rtol=_TOL,
         tolerance_note=_NOTE, references=("Golub & Van Loan 2013, §7.1",)),
    Rule(name="schur-sorted", fun=_schur_sorted_fun, primitive=_schur,
         domains=(Domain("both-half-planes", _centered, "eigenvalues at least 0.5 apart in "
                         "both half planes"),),
         dtypes=_DOUBLE,
         derivation="docs/derivations/schur.md", reference=_ref("sorted"), rtol=_TOL,
         tolerance_note=_NOTE, references=("Golub & Van Loan 2013, §7.6",)),
    Rule(name="rsf2csf", fun=_rsf2csf_fun, primitive=_schur,
         domains=(_DOMAINS[1],), dtypes=(np.float64,),
         derivation="docs/derivations/schur.md", reference=_ref("rsf2csf"), rtol=_TOL,
         tolerance_note=_NOTE, references=("Golub & Van Loan 2013, §7.4",)),
)
