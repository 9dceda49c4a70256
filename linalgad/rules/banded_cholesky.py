"""cholesky_banded, cho_solve_banded.   Derivation: docs/derivations/banded_cholesky.md

Band storage as in banded.py; internally every band is in the *lower form*
tb[..., s, j] = A[..., j + s, j] (0 ≤ s ≤ u) and the factor is L (A = L Lᴴ).

cholesky_banded   A = L Lᴴ for A, L with u off-diagonals (pbtrf).
                  Reverse: Ā = L⁻ᴴ Φ(Lᴴ L̄) L⁻¹ (cholesky.md), of which only the band is
                  needed: with blocks of order b = u, L is block bidiagonal (D[m] on the
                  diagonal, C[m] below it) and the diagonal blocks of
                  X = L⁻ᴴ S L⁻¹ (S = P + Pᴴ, P = Φ(Lᴴ L̄)) obey
                      X[m] = Q[m] + K[m]ᴴ X[m + 1] K[m],   K[m] = C[m] D[m]⁻¹,
                  Q[m] and the blocks below the diagonal local products: O(n u²).
                  Forward:  L̇ = L Φ(W), W = L⁻¹ Ȧ L⁻ᴴ by the adjoint recurrence
                      W[m + 1] = G[m + 1] + J[m] W[m] J[m]ᴴ,   J[m] = D[m + 1]⁻¹ C[m].
cho_solve_banded  x = L⁻ᴴ (L⁻¹ b): two differentiable banded triangular solves (tbtrs),
                  each with  b̄ = op(L)⁻ᴴ x̄,  L̄ = band(−b̄ xᴴ)  (O(n u k)).

The recurrence is a primitive of its own (``_chain``: its derivatives are the two
recurrences again), the block gathers are linear primitives that are each other's
adjoints, and the rest is products of b × b blocks: every order of derivative stays
O(n u²) and never forms an n × n matrix.
"""

from __future__ import annotations

import numpy as np

from .. import ops
from .. import transforms
from ..backend import (band_block_pad, band_from_blocks, band_from_dense, band_to_blocks,
                       kernels_for)
from ..registry import Domain, Rule
from ..tape import Primitive
from ..testing import matrices as M
from . import _common as C
from .banded import _matmul as _band_matmul
from .banded import _product as _band_product
from .banded import _operands, hpd_band_matrix, junk_corners, triangle_corners
from .cholesky import _phi

__all__ = ["cholesky_banded", "cho_solve_banded", "RULES"]


# -- the blocks of a lower band -------------------------------------------------------------

_to_blocks = Primitive(
    "band_to_blocks", lambda tb, *, u, n: band_to_blocks(C.namespace_of(tb), tb),
    lambda g, needs, out, res, tb, *, u, n: (ops.fit(_from_blocks(g, u=u, n=n), tb),),
    lambda t, out, res, tb, *, u, n: _to_blocks(t[0], u=u, n=n))
_from_blocks = Primitive(
    "band_from_blocks", lambda X, *, u, n: band_from_blocks(C.namespace_of(X), X, u, n),
    lambda g, needs, out, res, X, *, u, n: (ops.fit(_to_blocks(g, u=u, n=n), X),),
    lambda t, out, res, X, *, u, n: _from_blocks(t[0], u=u, n=n))


def _blocks(tb, u, n):
    """(D, C): the diagonal blocks (…, M, b, b) and those below them, differentiable."""
    X = _to_blocks(tb, u=u, n=n)
    return ops.getitem(X, (Ellipsis, 0, slice(None), slice(None))), \
        ops.getitem(X, (Ellipsis, 1, slice(None), slice(None)))


def _band(D, Cb, u, n):
    """The lower form of the band whose blocks D (diagonal, lower triangle read) and Cb
    (below the diagonal) hold — _blocks' adjoint."""
    return _from_blocks(ops.stack([D, Cb], axis=-3), u=u, n=n)


def _next(X):
    """X[..., m + 1, :, :] at m (zero at the last block)."""
    shape = ops._shape(X)
    if shape[-3] == 0:
        return X
    zero = C.namespace_of(ops._peek(X)).zeros(shape[:-3] + (1,) + shape[-2:],
                                              dtype=ops._peek(X).dtype)
    return ops.concatenate([ops.getitem(X, (Ellipsis, slice(1, None), slice(None),
                                            slice(None))), zero], axis=-3)


def _prev(X):
    """X[..., m − 1, :, :] at m (zero at the first block)."""
    shape = ops._shape(X)
    if shape[-3] == 0:
        return X
    zero = C.namespace_of(ops._peek(X)).zeros(shape[:-3] + (1,) + shape[-2:],
                                              dtype=ops._peek(X).dtype)
    return ops.concatenate([zero, ops.getitem(X, (Ellipsis, slice(None, -1), slice(None),
                                                  slice(None)))], axis=-3)


def _mm(*factors):
    out = factors[0]
    for f in factors[1:]:
        out = ops.matmul(out, f)
    return out


# -- the recurrence ------------------------------------------------------------------------

def _chain_impl(K, Q, *, forward):
    return kernels_for(K, Q).congruence_chain(K, Q, forward)


def _chain_vjp(g, needs, out, res, K, Q, *, forward):
    """X = (I − 𝒩)⁻¹ Q with (𝒩X)[m] = K[m]ᴴ X[m+1] K[m] (backward) or its adjoint
    (𝒩*Y)[m+1] = K[m] Y[m] K[m]ᴴ (forward): Q̄ is the other recurrence on Ḡ, and
    K̄[m] = X[m+1] K[m] Q̄[m]ᴴ + X[m+1]ᴴ K[m] Q̄[m] (backward),
    K̄[m] = Q̄[m+1] K[m] X[m]ᴴ + Q̄[m+1]ᴴ K[m] X[m] (forward)."""
    Q_bar = _chain(K, g, forward=not forward)
    K_bar = None
    if needs[0]:
        if forward:
            Qn = _next(Q_bar)
            K_bar = _mm(Qn, K, ops.mH(out)) + _mm(ops.mH(Qn), K, out)
        else:
            Xn = _next(out)
            K_bar = _mm(Xn, K, ops.mH(Q_bar)) + _mm(ops.mH(Xn), K, Q_bar)
        K_bar = ops.fit(K_bar, K)
    return K_bar, (ops.fit(Q_bar, Q) if needs[1] else None)


def _chain_jvp(tangents, out, res, K, Q, *, forward):
    K_dot, Q_dot = tangents
    rhs = Q_dot
    if K_dot is not None:
        if forward:
            t = _prev(_mm(K_dot, out, ops.mH(K)) + _mm(K, out, ops.mH(K_dot)))
        else:
            Xn = _next(out)
            t = _mm(ops.mH(K_dot), Xn, K) + _mm(ops.mH(K), Xn, K_dot)
        rhs = t if rhs is None else rhs + t
    return _chain(K, rhs, forward=forward)


_chain = Primitive("congruence_chain", _chain_impl, _chain_vjp, _chain_jvp)


# -- the banded Cholesky primitive ----------------------------------------------------------

def _factor_blocks(L, u, n):
    """(D, C, D⁻¹) of the lower band L (D padded with the identity past n)."""
    D, Cb = _blocks(L, u, n)
    pad = band_block_pad(u, n)
    if pad is not None:
        xp = C.namespace_of(ops._peek(L))
        full = xp.zeros(ops._shape(D)[-3:], dtype=ops._peek(L).dtype)
        full[-1] = xp.asarray(pad, dtype=full.dtype)        # the last diagonal block
        D = D + full
    return D, Cb, _lower_inverse(D)


def _lower_inverse_vjp(g, needs, out, res, D):
    """G = D⁻¹: D̄ = −Gᴴ Ḡ Gᴴ (the upper triangle's part is dropped by the block gather)."""
    return (ops.fit(-_mm(ops.mH(out), g, ops.mH(out)), D),)


def _lower_inverse_jvp(t, out, res, D):
    return -_mm(out, t[0], out)


# The inverses of a stack of lower triangular blocks, one batched kernel call (a device's
# triangular solve would run once per block).
_lower_inverse = Primitive(
    "lower_block_inverse", lambda D: kernels_for(D).lower_block_inverse(D),
    _lower_inverse_vjp, _lower_inverse_jvp)


def band_cholesky_forward(tb):
    return kernels_for(tb).band_cholesky(tb, op="cholesky_banded")


def _cotangent_composed(L, L_bar):
    """t̄ = the lower band of X = L⁻ᴴ S L⁻¹ (diagonal halved, its real part), S = P + Pᴴ,
    P = Φ(Lᴴ L̄): the cotangent of the lower triangle read (cholesky.md's projection) —
    in differentiable operations: the definition, and what its derivatives trace."""
    u, n = ops._shape(L)[-2] - 1, ops._shape(L)[-1]
    D, Cb, Di = _factor_blocks(L, u, n)
    Db, Cbb = _blocks(L_bar, u, n)
    Pd = _phi(ops.matmul(ops.mH(D), Db) + ops.matmul(ops.mH(Cb), Cbb))
    Sd = Pd + ops.mH(Pd)                                  # S's diagonal blocks
    K = ops.matmul(Cb, Di)
    # S's blocks below the diagonal are D[m+1]ᴴ C̄[m], so E = D[m+1]⁻ᴴ S[m+1, m] D[m]⁻¹ is
    E = ops.matmul(Cbb, Di)
    KE = ops.matmul(ops.mH(K), E)
    Q = _mm(ops.mH(Di), Sd, Di) - (KE + ops.mH(KE))
    Xd = _chain(K, Q, forward=False)
    Xl = E - ops.matmul(_next(Xd), K)
    return _real_diagonal(_band(_phi(Xd), Xl, u, n))


# The same map as one kernel call (the block products on plain arrays): a traced
# operation per block product cost more than the products at small u.
_cotangent = transforms.fused(
    "cholesky_banded_cotangent",
    lambda L, L_bar: kernels_for(L, L_bar).band_cholesky_cotangent(L, L_bar),
    _cotangent_composed)


def band_cholesky_vjp(L_bar, needs, L, res, tb):
    return (ops.fit(_cotangent(L, L_bar), tb),)


def band_cholesky_jvp(tangents, L, res, tb):
    """L̇ = L Φ(W), W = L⁻¹ Ȧ L⁻ᴴ (its blocks on and below the diagonal)."""
    (t_dot,) = tangents
    u, n = ops._shape(tb)[-2] - 1, ops._shape(tb)[-1]
    D, Cb, Di = _factor_blocks(L, u, n)
    Td, Sl = _blocks(_real_diagonal(t_dot), u, n)
    Sd = C.from_triangle(Td, True, ops._is_complex(Td))
    Dn = _next(Di)
    J = ops.matmul(Dn, Cb)
    F = _mm(Dn, Sl, ops.mH(Di))
    FJ = ops.matmul(F, ops.mH(J))
    G = _mm(Di, Sd, ops.mH(Di)) - _prev(FJ + ops.mH(FJ))
    W = _chain(J, G, forward=True)
    Wl = F - ops.matmul(J, W)
    Pw = _phi(W)
    return _band(ops.matmul(D, Pw), ops.matmul(Cb, Pw) + ops.matmul(_next(D), Wl), u, n)


_band_cholesky = Primitive("cholesky_banded", band_cholesky_forward, band_cholesky_vjp,
                           band_cholesky_jvp)


def _real_diagonal(tb):
    """tb with the real part of its row 0 (the diagonal), differentiably."""
    if not ops._is_complex(tb):
        return tb
    dtype = ops._peek(tb).dtype
    d = ops.astype(ops.real(ops.getitem(tb, (Ellipsis, slice(0, 1), slice(None)))), dtype)
    return ops.concatenate([d, ops.getitem(tb, (Ellipsis, slice(1, None), slice(None)))],
                           axis=-2)


# -- banded triangular solves ----------------------------------------------------------------

def band_trsolve_forward(lb, b, *, trans):
    K = kernels_for(lb, b)
    return C.broadcast_solve(lb, b, lambda lb_, b_: K.band_trsolve(lb_, b_, trans))


def band_trsolve_vjp(x_bar, needs, x, res, lb, b, *, trans):
    """b̄ = op(L)⁻ᴴ x̄, l̄b = the lower band of −b̄ xᴴ (arranged for op)."""
    u = ops._shape(lb)[-2] - 1
    b_bar = C.adjoint_rhs(lambda rhs, t: _band_trsolve(lb, rhs, trans=t), x_bar, trans)
    lb_bar = None
    if needs[0]:
        p, q, negate = C.cotangent_factors(b_bar, x, trans)
        if C.folds(ops._shape(lb), x):
            p, q = C._fold_factors(p, q)
        G = _band_product(p, q, lower=u, upper=0)
        lb_bar = ops.fit(-G if negate else G, lb)
    return lb_bar, (ops.fit(b_bar, b) if needs[1] else None)


def band_trsolve_jvp(tangents, x, res, lb, b, *, trans):
    """ẋ = op(L)⁻¹ (ḃ − op(L̇) x)."""
    lb_dot, b_dot = tangents
    u = ops._shape(lb)[-2] - 1
    rhs = None
    if lb_dot is not None:
        rhs = -_band_matmul(lb_dot, x, lower=u, upper=0, trans=trans)
    if b_dot is not None:
        rhs = b_dot if rhs is None else rhs + b_dot
    return _band_trsolve(lb, rhs, trans=trans)


_band_trsolve = Primitive("band_triangular_solve", band_trsolve_forward, band_trsolve_vjp,
                          band_trsolve_jvp)


# -- the lower and upper forms ----------------------------------------------------------------

def _flip_impl(x, *, to_upper):
    """Lower form lb of L → upper form of Lᴴ (to_upper), or back: up[u − s, j + s] =
    conj(lb[s, j]) for j + s < n; the corners are zero."""
    xp = C.namespace_of(x)
    u, n = x.shape[-2] - 1, x.shape[-1]
    out = xp.zeros(x.shape, dtype=x.dtype)
    for s in range(min(u, n - 1) + 1 if n else 0):
        if to_upper:
            out[..., u - s, s:] = xp.conj(x[..., s, :n - s])
        else:
            out[..., s, :n - s] = xp.conj(x[..., u - s, s:])
    return out


# The two forms of a band and of its conjugate transpose: conjugating permutations, each
# the other's adjoint (and inverse).
_to_upper = Primitive(
    "band_lower_to_upper", lambda x: _flip_impl(x, to_upper=True),
    lambda g, needs, out, res, x: (ops.fit(_to_lower(g), x),),
    lambda t, out, res, x: _to_upper(t[0]))
_to_lower = Primitive(
    "band_upper_to_lower", lambda x: _flip_impl(x, to_upper=False),
    lambda g, needs, out, res, x: (ops.fit(_to_upper(g), x),),
    lambda t, out, res, x: _to_lower(t[0]))


def _band_argument(op, ab, check_finite):
    abv = C.peek(ab)
    if abv.ndim < 2 or abv.shape[-2] < 1:
        raise ValueError(f"{op}: ab must be (..., u + 1, n) (band storage); got shape "
                         f"{abv.shape}")
    dtype = C.result_dtype(op, abv)
    C.checked(op, ("ab",), (ab,), check_finite)
    return C.promote(ab, dtype), abv.shape[-2] - 1


# -- the public functions ---------------------------------------------------------------------

def cholesky_banded(ab, overwrite_ab=False, lower=False, check_finite=True):
    """Cholesky factor of a Hermitian positive definite banded matrix given by one
    triangle of its band, differentiable (scipy.linalg.cholesky_banded).

    ``ab`` (..., u + 1, n) in SciPy's band storage: the upper form ``ab[u + i − j, j] ==
    a[i, j]`` (i ≤ j; the default) returns U with a = Uᴴ U in the same form, the lower
    form (``lower=True``, ``ab[i − j, j] == a[i, j]``, i ≥ j) returns L with a = L Lᴴ.
    Only that triangle is read and gets gradient (the diagonal's real part); the corners
    of ``ab`` are not read, and those of the result are zero.  Stacks of bands are
    factored in one LAPACK call (pbtrf on the block diagonal matrix).

    O(n u²) forward, and O(n u²) for the gradient and for the forward mode (a
    recurrence on u × u blocks, banded_cholesky.md), any order; the log-determinant
    ``2 * sum(log(real(c[..., u, :])))`` (upper form; row 0 for the lower) is
    differentiable through it — its gradient is the band of a⁻¹ — and so are solves with
    :func:`cho_solve_banded`.

    Raises LinAlgError when a matrix is not positive definite (naming the leading minor
    and the matrix's index in a stack).  ``overwrite_ab`` is accepted and ignored.

    Valid when: a is Hermitian positive definite.
    """
    op = "cholesky_banded"
    lower = C.boolean(op, lower, "lower")
    ab, u = _band_argument(op, ab, check_finite)
    L = _band_cholesky(ab if lower else _to_lower(ab))        # (the diagonal's real part)
    return L if lower else _to_upper(L)


def cho_solve_banded(cb_and_lower, b, overwrite_b=False, check_finite=True):
    """Solve ``a x = b`` given the banded Cholesky factor ``(cb, lower)`` of ``a``,
    differentiable in ``cb`` and ``b`` (scipy.linalg.cho_solve_banded).

    ``cb`` (..., u + 1, n) as :func:`cholesky_banded` returns it (upper form: a = Uᴴ U;
    ``lower=True``: a = L Lᴴ); ``b`` (n,) or (..., n, k), stacks broadcast.  Two banded
    triangular solves (LAPACK tbtrs), O(n u k); the gradient is two more and the band
    of an outer product, O(n u k), as is the forward mode.  ``overwrite_b`` is accepted
    and ignored.

    Valid when: the factor's diagonal has no zero.
    """
    op = "cho_solve_banded"
    try:
        cb, lower = cb_and_lower
    except (TypeError, ValueError):
        raise TypeError(f"{op}: the first argument must be the pair (cb, lower)") from None
    lower = C.boolean(op, lower, "lower", TypeError, "the first argument must be the pair "
                      "(cb, lower), lower a boolean; got {shown} for lower")
    abv = C.peek(cb)
    if abv.ndim < 2 or abv.shape[-2] < 1:
        raise ValueError(f"{op}: cb must be (..., u + 1, n) (band storage); got shape "
                         f"{abv.shape}")
    u = abv.shape[-2] - 1
    cb, b = _operands(op, cb, b, u + 1, check_finite, name="cb")
    lb = cb if lower else _to_lower(cb)

    def solve(b_):
        y = _band_trsolve(lb, b_, trans=0)
        return _band_trsolve(lb, y, trans=2)

    return C.on_columns(solve, b)


# -- registry -------------------------------------------------------------------------------

def _domain(rng, n, batch, dtype, lower=False, u=2):
    """A Hermitian positive definite band (u = 2, fewer below order 3), junk in the
    corners (never read: zero gradient)."""
    u = min(u, max(n - 1, 0))
    S = hpd_band_matrix(rng, n, batch, dtype, u)
    ab = band_from_dense(np, S, u, 0) if lower else band_from_dense(np, S, 0, u)
    return (junk_corners(rng, ab, lower).astype(dtype),), {"lower": lower}


def _domain_lower(rng, n, batch, dtype):
    return _domain(rng, n, batch, dtype, lower=True)


def _domain_tridiagonal(rng, n, batch, dtype):
    return _domain(rng, n, batch, dtype, lower=False, u=1)


def _domain_wide(rng, n, batch, dtype):
    """u = 5, order at least 7: blocks of order 5, past CHAIN_KRONECKER_B (the recurrence
    by cyclic reduction)."""
    return _domain(rng, max(n, 7), batch, dtype, lower=True, u=5)


def _solve_domain(rng, n, batch, dtype, lower=False):
    (ab,), _ = _domain(rng, n, batch, dtype, lower=lower)
    import scipy.linalg
    cb = C.per_matrix(lambda a: scipy.linalg.cholesky_banded(a, lower=lower), ab, cores=(2,))
    return (cb.astype(dtype), M.random_rhs(rng, n, 2, batch, dtype)), {"lower": lower}


def _solve_domain_lower(rng, n, batch, dtype):
    return _solve_domain(rng, n, batch, dtype, lower=True)


def _cho_solve_banded_fun(cb, b, lower=False):
    return cho_solve_banded((cb, lower), b)


_cho_solve_banded_fun.__doc__ = cho_solve_banded.__doc__


def cholesky_banded_reference(ab, lower=False):
    import scipy.linalg
    u = ab.shape[-2] - 1
    out = C.per_matrix(lambda a: scipy.linalg.cholesky_banded(a, lower=lower), ab,
                       cores=(2,))
    n = ab.shape[-1]
    return np.where(triangle_corners(n, u, lower), 0, out)   # SciPy leaves the input's there


def cho_solve_banded_reference(cb, b, lower=False):
    import scipy.linalg
    vector = b.ndim == 1
    x = C.per_matrix(lambda c_, b_: scipy.linalg.cho_solve_banded((c_, lower), b_), cb,
                     b[:, None] if vector else b, cores=(2, 2))
    return x[..., 0] if vector else x


RULES = (
    Rule(
        name="cholesky_banded",
        fun=cholesky_banded,
        primitive=_band_cholesky,
        domains=(
            Domain("upper", _domain, "Hermitian positive definite, u = 2, upper form"),
            Domain("lower", _domain_lower, "lower form"),
            Domain("tridiagonal", _domain_tridiagonal, "u = 1, upper form"),
            Domain("u5", _domain_wide, "u = 5, n ≥ 7: blocks of order 5, the recurrence "
                                       "by cyclic reduction"),
        ),
        derivation="docs/derivations/banded_cholesky.md",
        reference=cholesky_banded_reference,
        references=("Murray 2016, Differentiation of the Cholesky decomposition",
                    "Takahashi, Fagan, Chen 1973, Formation of a sparse bus impedance "
                    "matrix and its application to short circuit study"),
    ),
    Rule(
        name="cho_solve_banded",
        fun=_cho_solve_banded_fun,
        primitive=_band_trsolve,
        domains=(
            Domain("upper", _solve_domain, "the factor of a positive definite band, "
                                           "upper form"),
            Domain("lower", _solve_domain_lower, "lower form"),
        ),
        derivation="docs/derivations/banded_cholesky.md",
        reference=cho_solve_banded_reference,
    ),
)
