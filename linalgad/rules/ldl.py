"""ldl: the LDLᴴ (Bunch–Kaufman) factorization.   Derivation: docs/derivations/ldl.md

scipy.linalg.ldl(A, lower=True, hermitian=True) returns (lu, d, perm) with
A = lu d lu^H (lu d luᵀ for a complex symmetric A, hermitian=False), read from
the triangle ``lower`` names; lu[perm] = L is unit lower (upper for lower=False)
triangular with zeros inside the 2×2 blocks of the block-diagonal d.  With
B = A[perm][:, perm] = L D L^†  († = ᴴ, or ᵀ for hermitian=False) and the
pivots (perm and the 1×1 / 2×2 block structure) held fixed — they are piecewise
constant, with no derivative — differentiating gives, for M = L⁻¹ dB L^{-†}:

    dD = blockdiag(M),   X = L⁻¹ dL = sbl(M) D⁻¹,   dL = L X

(sbl: the strictly block-lower part, block-upper for lower=False; D⁻¹ is
block diagonal, applied in O(n²)).  The reverse rule is its adjoint:

    M̄ = sbl(Lᴴ L̄) D⁻ᴴ + blockdiag(D̄),   B̄ = L⁻ᴴ M̄ (L^†)⁻ᴴ,

un-permuted and folded onto the triangle read.  Both are two triangular
solves and products, written with linalgad's differentiable operations (the
masks are constants), so every order follows.  A singular pivot block of D
(SciPy returns it without complaint) makes the derivative undefined: the
derivative rules raise LinAlgError naming ldl.
"""

from __future__ import annotations

import warnings

import numpy as np

from .. import ops, transforms
from ..backend import LinAlgError, _where, kernels_for
from ..registry import Domain, Rule
from ..tape import Primitive
from ..testing import matrices as M
from . import _common as C
from .triangular import triangular_solve

__all__ = ["ldl", "RULES"]

OP = "ldl"


# -- the structure: masks from the pivot blocks (constants) ---------------------------------

def _masks(blocks, n, lower, dtype):
    """(S, Bd): the strictly block-lower (block-upper for lower=False) mask and the
    block-diagonal mask, (..., n, n) in the real dtype of ``dtype``, from the 2×2 block
    marks ``blocks`` (..., n − 1) — in the namespace of ``blocks`` (host or device)."""
    xp = C.namespace_of(blocks)
    real = np.empty(0, dtype=dtype).real.dtype
    batch = blocks.shape[:-1]
    E = xp.zeros(batch + (n, n), dtype=real)         # 1 at (s + 1, s) for a block at s
    if n > 1:
        i = xp.arange(n - 1)
        E[..., i + 1, i] = blocks.astype(real)
    Et = xp.swapaxes(E, -1, -2)
    one = xp.ones((n, n), dtype=real)
    S = (xp.tril(one, -1) - E) if lower else (xp.triu(one, 1) - Et)
    Bd = xp.eye(n, dtype=real) + E + Et
    return S, Bd


def _sl(x, s):
    return ops.getitem(x, (Ellipsis, s))


def _pad(v, before, like):
    """v (..., m) with one zero before (or after) it, along the last axis."""
    xp = C.namespace_of(C.peek(like))
    z = xp.zeros(ops._shape(v)[:-1] + (1,), dtype=C.peek(v).dtype)
    return ops.concatenate([z, v] if before else [v, z], axis=-1)


def _check_pivots(D):
    """LinAlgError naming ldl when a pivot block of D is singular (the derivative has a
    division by it); run on D's values, now and on every jit replay (the blocks are read
    off that D, as the kernel marks them: a replay's may differ from the recording's)."""
    def check(d):
        xp = C.namespace_of(d)
        n = d.shape[-1]
        dg = xp.diagonal(d, 0, -2, -1)
        one = xp.ones(dg.shape, dtype=bool)
        det = dg.copy()
        if n > 1:
            b = xp.diagonal(d, -1, -2, -1) != 0
            pair = dg[..., :-1] * dg[..., 1:] - xp.diagonal(d, 1, -2, -1) * \
                xp.diagonal(d, -1, -2, -1)
            one[..., :-1] &= ~b
            one[..., 1:] &= ~b
            det[..., :-1] = xp.where(b, pair, det[..., :-1])
            det[..., 1:] = xp.where(b, pair, det[..., 1:])
        bad = (det == 0).reshape(-1, n).any(axis=-1) if d.size else xp.zeros(0, dtype=bool)
        if bool(bad.any()):
            flat = int(xp.flatnonzero(bad)[0])
            k = int(xp.flatnonzero((det == 0).reshape(-1, n)[flat])[0])
            what = "a zero 1×1 pivot" if bool(one.reshape(-1, n)[flat, k]) else \
                "a singular 2×2 pivot block"
            raise LinAlgError(
                f"{OP}: the derivative is undefined: d has {what} at index {k} (the matrix "
                f"is singular){_where(OP, d.shape[:-2], flat)}")
    C.guard(D, check)


def _inverse_bands(D, blocks):
    """D⁻¹ of the block-diagonal D as three vectors: its diagonal a (..., n), and its
    entries up = D⁻¹[s, s + 1], lo = D⁻¹[s + 1, s] (..., n − 1) (zero off the blocks) —
    differentiable in D, the block marks constants.  A 2×2 block [[p, q], [r, t]] has the
    inverse [[t, −q], [−r, p]] / (p t − q r)."""
    n = ops._shape(D)[-1]
    dg = ops.diagonal(D, 0, -2, -1)
    if n == 1:
        return 1 / dg, None, None
    real = np.empty(0, dtype=C.peek(D).dtype).real.dtype
    b = blocks.astype(real)
    sup, sub = ops.diagonal(D, 1, -2, -1), ops.diagonal(D, -1, -2, -1)
    pair = b * (_sl(dg, slice(None, -1)) * _sl(dg, slice(1, None)) - sup * sub)
    xp = C.namespace_of(blocks)
    z = xp.zeros(blocks.shape[:-1] + (1,), dtype=real)
    first, second = xp.concatenate([b, z], axis=-1), xp.concatenate([z, b], axis=-1)
    single = 1 - first - second
    det = single * dg + _pad(pair, False, D) + _pad(pair, True, D)
    numer = single + _pad(b * _sl(dg, slice(1, None)), False, D) + \
        _pad(b * _sl(dg, slice(None, -1)), True, D)
    safe = pair + (1 - b)                      # the blocks' determinants, 1 off the blocks
    return numer / det, -(b * sup) / safe, -(b * sub) / safe


def _times_block_diagonal(X, a, up, lo):
    """X Y for the block-diagonal (tridiagonal) Y with diagonal a, Y[j, j + 1] = up[j],
    Y[j + 1, j] = lo[j]: column j of the product is a_j X[:, j] + up_{j−1} X[:, j − 1] +
    lo_j X[:, j + 1].  O(n²), differentiable."""
    out = X * ops.expand_dims(a, -2)
    if up is None:
        return out
    left = _sl(X, slice(None, -1)) * ops.expand_dims(up, -2)        # into columns 1..n−1
    right = _sl(X, slice(1, None)) * ops.expand_dims(lo, -2)        # into columns 0..n−2
    return out + _pad(left, True, X) + _pad(right, False, X)


def _dagger(hermitian):
    return ops.mH if hermitian else ops.mT


def _sym_permute(X, perm):
    """X[perm][:, perm] (stacks), differentiable in X."""
    return ops.mT(ops.permute_rows(ops.mT(ops.permute_rows(X, perm)), perm))


def _hermitian(A, hermitian):
    """Whether the factorization is Hermitian: hermitian=True for complex input; real
    input is symmetric either way (SciPy: the flag has no effect)."""
    return bool(hermitian) or np.dtype(C.peek(A).dtype).kind != "c"


# -- the primitive ------------------------------------------------------------------------------

def ldl_forward(A, *, lower, hermitian):
    lu, d, perm, blocks = kernels_for(A).ldl(A, lower=lower, hermitian=hermitian, op=OP)
    return (lu, d), (perm, blocks)


def _factors(lu, d, perm, blocks, lower, herm):
    """L = lu[perm] (differentiable in lu), D, the masks and D⁻¹'s bands."""
    n = ops._shape(lu)[-1]
    L = ops.permute_rows(lu, perm)
    S, Bd = _masks(blocks, n, lower, C.peek(lu).dtype)
    _check_pivots(d)
    return L, S, Bd, _inverse_bands(d, blocks)


def _solve_L(L, B, lower, trans):
    return triangular_solve(L, B, lower=lower, trans=trans, unit_diagonal=True, op=OP)


def _tangent_composed(lu, d, A_dot, *, perm, blocks, lower, herm):
    """(l̇u, ḋ) in differentiable operations: the definition."""
    t = _dagger(herm)
    L, S, Bd, (a, up, lo) = _factors(lu, d, perm, blocks, lower, herm)
    B_dot = _sym_permute(C.from_triangle(A_dot, lower, herm), perm)
    Y = _solve_L(L, B_dot, lower, 0)                                  # L⁻¹ Ḃ
    Mt = t(_solve_L(L, t(Y), lower, 0))                               # Y L^{-†}
    d_dot = Mt * Bd
    X = _times_block_diagonal(Mt * S, a, up, lo)                      # L⁻¹ L̇
    lu_dot = ops.permute_rows(ops.matmul(L, X), C.inverse_permutation(perm))
    return lu_dot, d_dot


def _tangent_kernel(lu, d, A_dot, *, perm, blocks, lower, herm):
    _check_pivots(d)
    out = kernels_for(lu, d).ldl_tangent(lu, d, A_dot, perm, blocks, lower, herm)
    if out is None:
        return _tangent_composed(lu, d, A_dot, perm=perm, blocks=blocks, lower=lower,
                                 herm=herm)
    return out


# one sygst where the composed form has two triangular solves (ldl.md, section 5)
_tangent = transforms.fused("ldl_tangent", _tangent_kernel, _tangent_composed,
                            multiple_results=True)


def ldl_jvp(tangents, out, res, A, *, lower, hermitian):
    """Ḃ = Ȧ_h[perm][:, perm], M = L⁻¹ Ḃ L^{-†};  Ḋ = Bd ∘ M,  L̇ = L ((S ∘ M) D⁻¹)."""
    (A_dot,) = tangents
    lu, d = out
    perm, blocks = res
    if ops._shape(lu)[-1] == 0:                 # nothing to differentiate
        return tuple(C.namespace_of(C.peek(lu)).zeros_like(C.peek(x)) for x in (lu, d))
    A_dot = C.promote(A_dot, C.peek(lu).dtype)
    return _tangent(lu, d, A_dot, perm=perm, blocks=blocks, lower=bool(lower),
                    herm=_hermitian(A, hermitian))


def _cotangent_composed(lu, d, lu_bar, d_bar, *, perm, blocks, lower, herm):
    """Ā (before the fit to A's dtype) in differentiable operations: the definition."""
    t = _dagger(herm)
    L, S, Bd, (a, up, lo) = _factors(lu, d, perm, blocks, lower, herm)
    W = ops.matmul(ops.mH(L), ops.permute_rows(lu_bar, perm)) * S
    conj = (lambda v: v) if up is None else ops.conj
    M_bar = _times_block_diagonal(W, ops.conj(a), conj(lo), conj(up))       # W D⁻ᴴ
    M_bar = M_bar + d_bar * Bd
    Z = _solve_L(L, M_bar, lower, 2)                                  # L⁻ᴴ M̄
    B_bar = t(_solve_L(L, t(Z), lower, 2))                            # Z (L^†)⁻ᴴ
    return C.triangle_cotangent(_sym_permute(B_bar, C.inverse_permutation(perm)), lower, herm)


def _cotangent_kernel(lu, d, lu_bar, d_bar, *, perm, blocks, lower, herm):
    _check_pivots(d)
    out = kernels_for(lu, d).ldl_cotangent(lu, d, lu_bar, d_bar, perm, blocks, lower, herm)
    if out is None:
        return _cotangent_composed(lu, d, lu_bar, d_bar, perm=perm, blocks=blocks,
                                   lower=lower, herm=herm)
    return out


# one sygst where the composed form has two triangular solves (ldl.md, section 5)
_cotangent = transforms.fused("ldl_cotangent", _cotangent_kernel, _cotangent_composed)


def ldl_vjp(cts, needs, out, res, A, *, lower, hermitian):
    """M̄ = (S ∘ Lᴴ L̄) D⁻ᴴ + Bd ∘ D̄,  B̄ = L⁻ᴴ M̄ (L^†)⁻ᴴ;  Ā: B̄ un-permuted, folded
    onto the triangle read."""
    lu_bar, d_bar = cts
    if lu_bar is None and d_bar is None:
        return (None,)
    lu, d = out
    perm, blocks = res
    if ops._shape(lu)[-1] == 0:
        return (C.namespace_of(C.peek(A)).zeros_like(C.peek(A)),)
    lu_bar = ops.zeros_like(lu) if lu_bar is None else lu_bar
    d_bar = ops.zeros_like(d) if d_bar is None else d_bar
    A_bar = _cotangent(lu, d, lu_bar, d_bar, perm=perm, blocks=blocks, lower=bool(lower),
                       herm=_hermitian(A, hermitian))
    return (ops.fit(A_bar, A),)


_ldl = Primitive("ldl", ldl_forward, ldl_vjp, ldl_jvp, staged=True, multiple_results=True)


# -- the public function ------------------------------------------------------------------------

def _warn_imaginary_diagonal(v):
    xp = C.namespace_of(v)
    if v.size and bool((xp.diagonal(v, 0, -2, -1).imag != 0).any()):
        warnings.warn("scipy.linalg.ldl():\nThe imaginary parts of the diagonal are ignored. "
                      "Use \"hermitian=False\" for factorization of complex symmetric arrays.",
                      np.exceptions.ComplexWarning, stacklevel=4)


def ldl(A, lower=True, hermitian=True, overwrite_a=False, check_finite=True):
    """LDLᴴ (Bunch–Kaufman) factorization of a symmetric / Hermitian matrix, differentiable.

    scipy.linalg.ldl: returns ``(lu, d, perm)`` with ``A = lu @ d @ lu.conj().T``
    (``lu @ d @ lu.T`` for a complex symmetric A, ``hermitian=False``); ``d`` is block
    diagonal with 1×1 and 2×2 blocks, ``lu[perm]`` is unit lower triangular (upper for
    ``lower=False``).  Only the triangle ``lower`` names is read (and receives gradient);
    with ``hermitian=True`` the imaginary part of the diagonal is ignored (with SciPy's
    ComplexWarning).  The values are SciPy's (LAPACK sytrf / hetrf, matrix by matrix
    for a stack (..., n, n), as SciPy 1.17 batches).  ``perm`` (int64) is a constant;
    gradients flow through ``lu`` and ``d`` with the pivots held fixed — they are
    piecewise constant, and the derivative does not exist where Bunch–Kaufman's
    pivot choice switches.  Each derivative (reverse or forward) costs two triangular
    solves and one product, O(n³), reusing lu and d.  ``overwrite_a`` is accepted and
    ignored.  Raises ValueError for a non-square input (or non-finite entries with
    ``check_finite``); an exactly singular matrix is factored as SciPy does, but its
    derivatives raise LinAlgError (a zero pivot block of d).  The results are a tuple
    also for a stack (SciPy's batching returns a list); a stack with no matrices gives
    empty results (SciPy raises ValueError there).

    Valid when: the pivot blocks of d are nonsingular (A nonsingular) and A is not on
    a switching threshold of Bunch–Kaufman's pivoting (for the derivative).
    """
    a = C.array_arg(A)
    v = C.peek(a)
    if v.ndim < 2:                          # SciPy's atleast_2d: a 1 × 1 matrix passes
        a = ops.reshape(a, (1, int(np.prod(v.shape))))
        v = C.peek(a)
    if v.shape[-1] != v.shape[-2]:
        raise ValueError(f"{OP}: the input array a should be square (..., n, n); got shape "
                         f"{v.shape}")
    dtype = C.result_dtype(OP, v)
    C.checked(OP, ("a",), (a,), check_finite)
    a = C.promote(a, dtype)
    lower, hermitian = bool(lower), bool(hermitian)
    if hermitian and np.dtype(dtype).kind == "c":
        C.guard(a, _warn_imaginary_diagonal)
    (lu, d), (perm, _) = _ldl.bind_staged((a,), {"lower": lower, "hermitian": hermitian})
    return lu, d, perm


# -- registry -------------------------------------------------------------------------------

def _structure(A, lower, hermitian):
    """(perm, 2×2 block marks) of SciPy's ldl of one matrix."""
    import scipy.linalg
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", np.exceptions.ComplexWarning)
        _, d, perm = scipy.linalg.ldl(A, lower=lower, hermitian=hermitian, check_finite=False)
    return tuple(perm), tuple(np.diagonal(d, -1) != 0)


def _full(A, lower, herm):
    T = np.tril(A, -1) if lower else np.triu(A, 1)
    T = T + (T.conj().T if herm else T.T)
    return T + np.diag(np.diagonal(A).real if herm else np.diagonal(A))


def stable_structure(A, lower, hermitian, rng, delta=1e-3, tries=6):
    """Whether SciPy's pivot structure of A (one matrix) is the same at A ± δ‖A‖E for
    ``tries`` random directions E (‖E‖_F = 1) of A's class — the finite-difference checks
    move A by far less (1e-6 relative) — and in A's own precision and in double."""
    herm = hermitian or A.dtype.kind != "c"
    ref = _structure(A, lower, hermitian)
    A64 = A.astype(np.complex128 if A.dtype.kind == "c" else np.float64)
    if _structure(A64, lower, hermitian) != ref:
        return False
    scale = delta * np.linalg.norm(A64)
    for _ in range(tries):
        E = rng.standard_normal(A.shape)
        if A.dtype.kind == "c":
            E = E + 1j * rng.standard_normal(A.shape)
        E = _full(E, lower, herm)
        E /= np.linalg.norm(E)
        for s in (1, -1):
            if _structure(A64 + s * scale * E, lower, hermitian) != ref:
                return False
    return True


def _well_posed(A, lower, hermitian, want_block):
    """Pivot blocks far from singular (relative to ‖A‖) and a modest factor L; and, when
    ``want_block``, at least one 2×2 block."""
    import scipy.linalg
    herm = hermitian or A.dtype.kind != "c"
    A64 = A.astype(np.complex128 if A.dtype.kind == "c" else np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", np.exceptions.ComplexWarning)
        lu, d, _ = scipy.linalg.ldl(A64, lower=lower, hermitian=hermitian)
    blocks = np.diagonal(d, -1) != 0
    if want_block and not blocks.any():
        return False
    scale = np.linalg.norm(_full(A64, lower, herm), 2)
    n = A.shape[-1]
    i = 0
    while i < n:
        k = 2 if i < n - 1 and blocks[i] else 1
        if np.linalg.svd(d[i:i + k, i:i + k], compute_uv=False).min() < 0.05 * scale:
            return False
        i += k
    return np.abs(lu).max() < 8


def _sample(kind, hermitian, lower):
    """Registry domain sampler: matrices of the class (real symmetric / complex Hermitian
    for hermitian=True, complex symmetric for hermitian=False), noise in the triangle not
    read, rejection-sampled until the pivot structure is stable and the pivots are well
    conditioned.  kind 'indefinite': eigenvalues ±[1, 3] of both signs in a random unitary
    (or, complex symmetric, Q Λ Qᵀ) basis; kind 'blocks': a small diagonal (≈ 0.05) and
    O(1) off-diagonal couplings, so Bunch–Kaufman takes 2×2 pivots (at least one, from
    n = 2)."""
    def make(rng, n, batch, dtype):
        dtype = np.dtype(dtype)
        cplx = dtype.kind == "c"
        herm = hermitian or not cplx
        out = np.empty(batch + (n, n), dtype=dtype)
        for idx in np.ndindex(*batch):
            for _ in range(10_000):
                if kind == "indefinite":
                    lam = rng.uniform(1, 3, n) * rng.choice([-1.0, 1.0], n)
                    if n > 1:
                        lam[:2] = np.abs(lam[:2]) * np.array([1, -1])
                    Q = M.random_orthogonal(rng, n, (), np.complex128 if cplx else np.float64)
                    A = (Q * lam) @ (Q.conj().T if herm else Q.T)
                else:
                    G = rng.standard_normal((n, n))
                    if cplx:
                        G = G + 1j * rng.standard_normal((n, n))
                    A = G + (G.conj().T if herm else G.T)
                    A[np.diag_indices(n)] = 0.05 * rng.standard_normal(n)
                if herm and cplx:
                    A[np.diag_indices(n)] = A.diagonal().real
                noise = rng.standard_normal((n, n))
                if cplx:
                    noise = noise + 1j * rng.standard_normal((n, n))
                A = A + 0.5 * (np.triu(noise, 1) if lower else np.tril(noise, -1))
                A = A.astype(dtype)
                if _well_posed(A, lower, hermitian, kind == "blocks" and n > 1) and \
                        stable_structure(A, lower, hermitian, rng):
                    break
            else:
                raise RuntimeError("ldl domain: no stable sample found")
            out[idx] = A
        kw = {}
        if not lower:
            kw["lower"] = False
        if not hermitian:
            kw["hermitian"] = False
        return (out,), kw
    return make


def _ldl_fun(a, lower=True, hermitian=True):
    # the checks' finite-difference and tangent directions put imaginary parts on a
    # Hermitian matrix's diagonal, which ldl ignores (derivative 0 there) and warns about,
    # as SciPy does for a user's input: expected here, so not printed by every check
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", np.exceptions.ComplexWarning)
        return ldl(a, lower=lower, hermitian=hermitian)[:2]


_ldl_fun.__doc__ = ldl.__doc__


def ldl_reference(a, lower=True, hermitian=True):
    """(lu, d) of scipy.linalg.ldl, matrix by matrix."""
    import scipy.linalg
    batch = a.shape[:-2]
    lu, d = np.empty_like(a), np.empty_like(a)
    for idx in np.ndindex(*batch):
        lu[idx], d[idx], _ = scipy.linalg.ldl(a[idx], lower=lower, hermitian=hermitian)
    return lu, d


RULES = (
    Rule(
        name="ldl",
        fun=_ldl_fun,
        primitive=_ldl,
        domains=(
            Domain("lower", _sample("indefinite", True, True),
                   "real symmetric / complex Hermitian indefinite, lower triangle, noise above"),
            Domain("upper", _sample("indefinite", True, False),
                   "lower=False: the upper triangle read, U D Uᴴ, noise below"),
            Domain("complex-symmetric", _sample("indefinite", False, True),
                   "hermitian=False: A = Aᵀ complex, L D Lᵀ (sytrf)", complex_only=True),
            Domain("complex-symmetric-upper", _sample("indefinite", False, False),
                   "hermitian=False, lower=False", complex_only=True),
            Domain("blocks", _sample("blocks", True, True),
                   "small diagonal, large couplings: 2×2 pivot blocks (stable structure)"),
            Domain("blocks-upper", _sample("blocks", True, False),
                   "2×2 pivot blocks, the upper form"),
            Domain("blocks-complex-symmetric", _sample("blocks", False, True),
                   "2×2 pivot blocks of a complex symmetric matrix", complex_only=True),
        ),
        derivation="docs/derivations/ldl.md",
        reference=ldl_reference,
        references=("Bunch & Kaufman 1977",
                    "Giles 2008, Extended collection of matrix derivative results",
                    "Murray 2016, Differentiation of the Cholesky decomposition"),
    ),
)
