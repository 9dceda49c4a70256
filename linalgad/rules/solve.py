"""solve: x = A⁻¹ b.   Derivation: docs/derivations/solve.md

Defining equation  op(A) x = b,  op ∈ {identity, transpose, conjugate transpose}.
Differential       op(A) dx = db − op(dA) x.
Reverse            b̄ = op(A)⁻ᴴ x̄   (one solve with the stored factors)
                   Ā = −b̄ xᴴ        (for op = identity; see _solve_vjp for the others)
Forward            ẋ = op(A)⁻¹ (ḃ − op(Ȧ) x)

The factorization computed by the forward pass (LU with partial pivoting, or
Cholesky when A is declared positive definite) is a residual: the reverse and
forward rules pass it back into the same differentiable ``_solve`` as a cache
(``factors=``), so they cost O(n² k), and their own derivative with respect
to A flows through A itself — which is what makes second order work.

Structured A (assume_a 'sym', 'her', 'pos') reads one triangle only.  The
full matrix is assembled from that triangle with differentiable ops
(:func:`._common.from_triangle`), so the cotangent of the referenced triangle comes
out of the chain rule: the derivative is written once.
"""

from __future__ import annotations

import numpy as np

from .. import ops
from ..backend import check_diagonal, kernels_for
from ..registry import Domain, Rule
from ..tape import Primitive
from ..testing import matrices as M
from . import _common as C
from .banded import band_of, banded_solve
from .triangular import triangular_solve

__all__ = ["solve", "RULES"]

_ASSUME = {
    "gen": "gen", "general": "gen",
    "sym": "sym", "symmetric": "sym",
    "her": "her", "hermitian": "her",
    "pos": "pos", "positive definite": "pos",
    "diagonal": "diagonal", "tridiagonal": "tri", "banded": "banded",
    "upper triangular": "upper", "lower triangular": "lower",
}


# -- the primitive ------------------------------------------------------------------

def solve_forward(A, b, *, kind, trans=0, factors=None):
    """Solve op(A) x = b for a stack; b is (..., n, k).  Returns (x, factors).

    One matrix against a stack of right-hand sides is factored once; a cached
    factorization (``factors``) has the stack shape this forward pass gave it.
    """
    K = kernels_for(A, b)

    def apply(A_, b_):
        nonlocal factors
        if factors is None:
            factors = _factor(K, A_, kind)
        return _apply(K, factors, b_, kind, trans)

    return C.broadcast_solve(A, b, apply), factors


def _factor(K, A, kind):
    if kind == "pos":
        return K.cho_factor(A, lower=True, op="solve")
    return K.lu_factor(A, op="solve")


def _apply(K, factors, b, kind, trans):
    if kind == "pos":
        # A is Hermitian: op(A) is A (trans 0, 2) or conj(A) (trans 1)
        if trans == 1:
            return np.conj(K.cho_solve(factors, np.conj(b)))
        return K.cho_solve(factors, b)
    return K.lu_solve(factors, b, trans)


def solve_vjp(x_bar, needs, x, res, A, b, *, kind, trans=0, factors=None):
    """b̄ = op(A)⁻ᴴ x̄,  Ā from −b̄ xᴴ arranged for op.

    ``res`` is the factorization the forward pass used (kept, never redone).
    """
    if type(x_bar) is np.ndarray and type(A) is np.ndarray and A.shape[:-2] == x.shape[:-2]:
        # first order on one stack of plain arrays: the stored factors' kernel directly,
        # without the primitive's dispatch and stack broadcasting (a third of the
        # backward pass at n = 16)
        K = kernels_for(A)
        solve_op = lambda rhs, t: _apply(K, res, rhs, kind, t)          # noqa: E731
    else:
        solve_op = lambda rhs, t: _solve(A, rhs, kind=kind, trans=t, factors=res)  # noqa: E731
    b_bar = C.adjoint_rhs(solve_op, x_bar, trans)
    A_bar = ops.fit(C.solve_cotangent(b_bar, x, trans, a_shape=ops._shape(A)), A) \
        if needs[0] else None
    return A_bar, (ops.fit(b_bar, b) if needs[1] else None)


def solve_jvp(tangents, x, res, A, b, *, kind, trans=0, factors=None):
    """ẋ = op(A)⁻¹ (ḃ − op(Ȧ) x), with the forward pass's factors ``res``."""
    factors = res
    A_dot, b_dot = tangents
    rhs = None
    if A_dot is not None:
        rhs = -ops.matmul(C.op(A_dot, trans), x)
    if b_dot is not None:
        rhs = b_dot if rhs is None else rhs + b_dot
    return _solve(A, rhs, kind=kind, trans=trans, factors=factors)


_solve = Primitive("solve", solve_forward, solve_vjp, solve_jvp, staged=True)


def _band_pays(n, lower, upper):
    """Whether a band of l + u + 1 diagonals is solved as a band (solve_banded's O(n l (l + u))
    LU and band-only cotangents) rather than as the dense matrix: the tridiagonal always,
    wider bands when they cover at most a quarter of the matrix (LAPACK's gbtrf is faster
    than getrf up to half of it, measured at n = 64-1024, but the band's cotangent loops
    over its diagonals)."""
    return lower + upper + 1 <= max(3, n // 4)


# -- the public function ------------------------------------------------------------

def solve(a, b, lower=False, overwrite_a=False, overwrite_b=False, check_finite=True,
          assume_a=None, transposed=False):
    """Solve ``a @ x = b`` for x, differentiable in ``a`` and ``b``.

    SciPy's signature (``scipy.linalg.solve``) with NumPy's stacking
    (``numpy.linalg.solve``): ``a`` is (..., n, n); ``b`` is a vector (n,) or
    a stack of matrices (..., n, k), broadcast against ``a``'s stack.

    assume_a: 'gen' (default; LU with partial pivoting), 'sym', 'her' (the
    matrix is read from one triangle, chosen by ``lower``), or 'pos'
    (positive definite: Cholesky, also one triangle).  With 'sym'/'her'/'pos'
    only the referenced triangle receives gradient (and for 'her'/'pos' only
    the real part of the diagonal, as SciPy reads it).  SciPy's structured
    solvers: 'diagonal', 'tridiagonal' (LAPACK gttrf/gttrs: O(n) factor and
    solves), 'upper triangular', 'lower triangular' read only that part of
    ``a``, which alone receives gradient; 'banded' reads the band that holds
    a's nonzero entries (of every matrix of a stack: the union of their bands,
    where SciPy 1.17 detects each matrix's own — the values agree; an entry that
    is zero in one matrix but inside another's band gets gradient here) and,
    when it covers at most a quarter of the matrix, solves it as
    :func:`solve_banded` does (LAPACK's band LU; value, gradient and forward
    mode O(n·l·(l + u)) beyond reading a), else by dense LU.  ``None`` means 'gen': the derivative with
    respect to every entry (SciPy would pick a solver from the values).

    ``transposed=True`` solves ``a.T @ x = b``.  ``check_finite=True`` (the
    default) raises ValueError on infs or NaNs; ``overwrite_*`` are accepted
    for compatibility and ignored (inputs are never overwritten).

    Raises LinAlgError for a singular (or, with 'pos', non positive definite)
    matrix, naming its index in a stack; ValueError for incompatible shapes.
    Unlike SciPy, no condition number is estimated and no LinAlgWarning is
    given for an ill-conditioned ``a`` (LAPACK's gecon would add 10-45% to the
    solve at n = 64-256, as NumPy's solve has none): call ``cond(a)`` where that
    matters.

    Valid when: a is nonsingular.  The backward pass reuses the forward
    factorization: O(n² k).
    """
    op_name = "solve"
    av = C.square_matrix(op_name, a)
    bv = C.peek(b)
    C.rhs_shape(op_name, av.shape, bv.shape)
    kind = _ASSUME.get(assume_a if assume_a is not None else "gen")
    if kind is None:
        raise ValueError(f"solve: assume_a={assume_a!r} is not supported; use one of "
                         f"{sorted(set(_ASSUME))}")
    dtype = C.result_dtype(op_name, av, bv)
    C.checked(op_name, ("a", "b"), (a, b), check_finite)
    a, b = C.promote(a, dtype), C.promote(b, dtype)
    trans = 1 if transposed else 0
    if kind in ("upper", "lower"):
        return triangular_solve(a, b, lower=(kind == "lower"), trans=trans, op=op_name)
    if kind == "diagonal":
        d = ops.diagonal(a, 0, -2, -1)
        C.guard(d, lambda dv: check_diagonal(dv, dv.shape[:-1], op_name, what="matrix"))
        return C.on_columns(lambda b_: b_ / ops.expand_dims(d, -1), b)
    if kind in ("tri", "banded"):
        # the band read (the union over the stack; decided again on every replay under
        # linalgad.jit): the only entries with a gradient
        lo, up = (1, 1) if kind == "tri" else C.compute(C.bandwidth, (a,), decide=lambda r: r,
                                                         name="solve's band")
        if _band_pays(av.shape[-1], lo, up):
            return banded_solve(band_of(a, lo, up), b, lo, up, trans=trans, op=op_name)
        a, kind = C.band(a, lo, up), "gen"
    elif kind != "gen":
        a = C.from_triangle(a, lower, hermitian=(kind != "sym" and dtype.kind == "c"))
    return C.on_columns(lambda b_: _solve(a, b_, kind=kind, trans=trans), b)


# -- registry -------------------------------------------------------------------

def solve_reference(a, b, lower=False, assume_a=None, transposed=False):
    """scipy.linalg.solve applied matrix by matrix over the broadcast stack."""
    import scipy.linalg
    vector = b.ndim == 1
    # SciPy refuses transposed=True for complex input: pass the transpose itself (the
    # structures the domains use transposed, general and diagonal, are closed under it)
    x = C.per_matrix(lambda ai, bi: scipy.linalg.solve(ai.T if transposed else ai, bi,
                                                       lower=lower, assume_a=assume_a or "gen"),
                     a, b[:, None] if vector else b, cores=(2, 2))
    return x[..., 0] if vector else x


def _domain_general(rng, n, batch, dtype):
    return (M.random_general(rng, n, batch, dtype), M.random_rhs(rng, n, 2, batch, dtype)), {}


def _domain_vector(rng, n, batch, dtype):
    return (M.random_general(rng, n, batch, dtype), M.random_vector(rng, n, (), dtype)), {}


def _domain_broadcast(rng, n, batch, dtype):
    return (M.random_general(rng, n, (), dtype),
            M.random_rhs(rng, n, 2, batch or (2,), dtype)), {}


def _domain_pos(rng, n, batch, dtype):
    return (M.random_spd(rng, n, batch, dtype), M.random_rhs(rng, n, 2, batch, dtype)), \
        {"assume_a": "pos"}


def _domain_sym_upper(rng, n, batch, dtype):
    # a general matrix: the rule must read (and differentiate) the upper triangle only
    A = M.random_spd(rng, n, batch, dtype) + 0.1 * M.random_general(rng, n, batch, dtype)
    kind = "her" if np.dtype(dtype).kind == "c" else "sym"
    return (A.astype(dtype), M.random_rhs(rng, n, 2, batch, dtype)), \
        {"assume_a": kind, "lower": False}


def _with_junk(A, keep, rng, n, batch, dtype):
    """A where ``keep`` (an n x n bool mask) holds, unrelated values elsewhere: the entries
    the solver must not read (they must get zero gradient)."""
    junk = M.random_general(rng, n, batch, dtype)
    return np.where(keep, A, junk).astype(dtype)


def _domain_tridiagonal(rng, n, batch, dtype):
    band = np.abs(np.subtract.outer(np.arange(n), np.arange(n))) <= 1
    T = 0.4 * M.random_general(rng, n, batch, dtype) + 2 * np.eye(n)    # diagonally dominant
    return (_with_junk(T, band, rng, n, batch, dtype), M.random_rhs(rng, n, 2, batch, dtype)), \
        {"assume_a": "tridiagonal"}


def _domain_lower_triangular(rng, n, batch, dtype):
    L = M.random_triangular(rng, n, batch, dtype, lower=True)
    return (_with_junk(L, np.tri(n, dtype=bool), rng, n, batch, dtype),
            M.random_rhs(rng, n, 2, batch, dtype)), {"assume_a": "lower triangular"}


def _domain_diagonal(rng, n, batch, dtype):
    D = M.random_triangular(rng, n, batch, dtype, lower=True)
    return (_with_junk(D, np.eye(n, dtype=bool), rng, n, batch, dtype),
            M.random_rhs(rng, n, 2, batch, dtype)), {"assume_a": "diagonal", "transposed": True}


def _domain_transposed(rng, n, batch, dtype):
    return _domain_general(rng, n, batch, dtype)[0], {"transposed": True}


RULES = (
    Rule(
        name="solve",
        fun=solve,
        primitive=_solve,
        domains=(
            Domain("general", _domain_general, "well-conditioned A, b of shape (..., n, 2)"),
            Domain("vector", _domain_vector, "b a vector (n,), broadcast over A's stack"),
            Domain("broadcast", _domain_broadcast, "one A, a stack of right-hand sides"),
            Domain("pos", _domain_pos, "positive definite A, Cholesky"),
            Domain("structured-upper", _domain_sym_upper,
                   "sym/her read from the upper triangle of a non-symmetric array"),
            Domain("transposed", _domain_transposed, "solve a.T x = b"),
            Domain("tridiagonal", _domain_tridiagonal, "assume_a='tridiagonal', junk off the band"),
            Domain("lower-triangular", _domain_lower_triangular,
                   "assume_a='lower triangular', junk above"),
            Domain("diagonal", _domain_diagonal, "assume_a='diagonal', transposed, junk off it"),
        ),
        derivation="docs/derivations/solve.md",
        reference=solve_reference,
        references=("Giles 2008, Collected matrix derivative results for forward and reverse "
                    "mode algorithmic differentiation",),
    ),
)
