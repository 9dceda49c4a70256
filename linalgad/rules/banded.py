"""solve_banded, solveh_banded: x = A⁻¹ b for A given by its band.   Derivation: docs/derivations/banded.md

Band storage (SciPy's): ab[..., u + i − j, j] = A[..., i, j] for −u ≤ i − j ≤ l, so that
row r of ab holds the diagonal i − j = r − u; the corners of ab that would lie outside
the matrix are never read and get zero gradient.

Defining equation  op(A) x = b,  op ∈ {identity, transpose, conjugate transpose}.
Differential       op(A) dx = db − op(dA) x.
Reverse            b̄ = op(A)⁻ᴴ x̄   (one solve with the stored band factors)
                   āb = band(Ā),  Ā = −b̄ xᴴ (op = identity): only the band's entries
                   are formed, O(n (l + u + 1) k), never the n × n outer product
Forward            ẋ = op(A)⁻¹ (ḃ − op(Ȧ) x), op(Ȧ) x from Ȧ's band, O(n (l + u + 1) k)

The two band operations the rules need — the band of a product p q and the product of
a band with a matrix — are linear primitives whose derivatives are each other, so
every order of derivative stays on the band.  ``solveh_banded`` expands its one
stored triangle into the full band with differentiable operations (the conjugate
mirror, the real diagonal) and solves with LAPACK's banded Cholesky: the cotangent of
the triangle read comes out of the chain rule.  ``solve(a, b, assume_a='banded')``
and ``'tridiagonal'`` gather a's band and come here (solve.py).
"""

from __future__ import annotations

import operator

import numpy as np

from .. import ops
from ..backend import band_from_dense, band_matmul, band_product, dense_from_band, kernels_for
from ..registry import Domain, Rule
from ..tape import Primitive
from ..testing import matrices as M
from . import _common as C

__all__ = ["solve_banded", "solveh_banded", "banded_solve", "band_of", "band_of_product",
           "band_apply", "RULES"]


# -- the band operations: linear maps, each other's adjoints ------------------------------

def _band_of_vjp(g, needs, out, res, A, *, lower, upper):
    return (ops.fit(_from_band(g, lower=lower, upper=upper), A),)


def _band_of_jvp(t, out, res, A, *, lower, upper):
    return _band_of(t[0], lower=lower, upper=upper)


def _from_band_vjp(g, needs, out, res, ab, *, lower, upper):
    return (ops.fit(_band_of(g, lower=lower, upper=upper), ab),)


def _from_band_jvp(t, out, res, ab, *, lower, upper):
    return _from_band(t[0], lower=lower, upper=upper)


_band_of = Primitive("band_of", lambda A, *, lower, upper:
                     band_from_dense(C.namespace_of(A), A, lower, upper),
                     _band_of_vjp, _band_of_jvp)
_from_band = Primitive("from_band", lambda ab, *, lower, upper:
                       dense_from_band(C.namespace_of(ab), ab, lower, upper),
                       _from_band_vjp, _from_band_jvp)


def _product_impl(p, q, *, lower, upper):
    return band_product(C.namespace_of(p, q), p, q, lower, upper)


def _product_vjp(g, needs, out, res, p, q, *, lower, upper):
    """G = band(p q): p̄ = A_G qᴴ, q̄ = pᴴ A_G with A_G the band matrix G holds."""
    p_bar = q_bar = None
    if needs[0]:
        p_bar = ops.fit(_matmul(g, ops.mH(q), lower=lower, upper=upper, trans=0), p)
    if needs[1]:
        q_bar = ops.fit(ops.mH(_matmul(g, p, lower=lower, upper=upper, trans=2)), q)
    return p_bar, q_bar


def _product_jvp(tangents, out, res, p, q, *, lower, upper):
    p_dot, q_dot = tangents
    t = None if p_dot is None else _product(p_dot, q, lower=lower, upper=upper)
    if q_dot is not None:
        u = _product(p, q_dot, lower=lower, upper=upper)
        t = u if t is None else t + u
    return t


def _matmul_impl(ab, X, *, lower, upper, trans):
    return band_matmul(C.namespace_of(ab, X), ab, X, lower, upper, trans)


def _matmul_vjp(g, needs, out, res, ab, X, *, lower, upper, trans):
    """Y = op(A) X: X̄ = op(A)ᴴ Ȳ; āb = band(Ȳ Xᴴ), band(conj(X) Ȳᵀ), band(X Ȳᴴ) for
    trans 0, 1, 2."""
    kw = dict(lower=lower, upper=upper)
    ab_bar = X_bar = None
    if needs[0]:
        if trans == 0:
            G = _product(g, ops.mH(X), **kw)
        elif trans == 1:
            G = _product(ops.conj(X), ops.mT(g), **kw)
        else:
            G = _product(X, ops.mH(g), **kw)
        ab_bar = ops.fit(G, ab)
    if needs[1]:
        if trans == 1:
            X_bar = ops.conj(_matmul(ab, ops.conj(g), trans=0, **kw))
        else:
            X_bar = _matmul(ab, g, trans=2 if trans == 0 else 0, **kw)
        X_bar = ops.fit(X_bar, X)
    return ab_bar, X_bar


def _matmul_jvp(tangents, out, res, ab, X, *, lower, upper, trans):
    ab_dot, X_dot = tangents
    kw = dict(lower=lower, upper=upper, trans=trans)
    t = None if ab_dot is None else _matmul(ab_dot, X, **kw)
    if X_dot is not None:
        u = _matmul(ab, X_dot, **kw)
        t = u if t is None else t + u
    return t


_product = Primitive("band_product", _product_impl, _product_vjp, _product_jvp)
_matmul = Primitive("band_matmul", _matmul_impl, _matmul_vjp, _matmul_jvp)


def band_of(a, lower, upper):
    """The band storage (..., lower + upper + 1, n) of a's band, differentiable: the
    entries outside the band get no gradient."""
    return _band_of(a, lower=lower, upper=upper)


def band_of_product(p, q, lower, upper):
    """The band of p q (p (..., n, k), q (..., k, n)) in band storage, differentiable, without
    the n × n product: O(n k) a diagonal."""
    return _product(p, q, lower=lower, upper=upper)


def band_apply(ab, X, lower, upper, trans=0):
    """op(A) X for the matrices A whose band ab holds (trans 0, 1, 2: A, Aᵀ, Aᴴ),
    differentiable: O(n k) a diagonal."""
    return _matmul(ab, X, lower=lower, upper=upper, trans=trans)


# -- the solve primitive -------------------------------------------------------------------

def band_solve_forward(ab, b, *, lower, upper, hermitian=False, trans=0, op="solve_banded",
                       factors=None):
    """Solve op(A) x = b for A's band ab (..., l + u + 1, n), b (..., n, k).  Returns
    (x, factors); ``hermitian``: A is Hermitian positive definite (its band factored by
    Cholesky from the rows 0..u)."""
    K = kernels_for(ab, b)

    def apply(ab_, b_):
        nonlocal factors
        if factors is None:
            factors = K.band_factor(ab_, lower, upper, hermitian, op)
        return K.band_solve(factors, b_, trans)

    return C.broadcast_solve(ab, b, apply), factors


def band_solve_vjp(x_bar, needs, x, res, ab, b, *, lower, upper, hermitian=False, trans=0,
                   op="solve_banded", factors=None):
    """b̄ = op(A)⁻ᴴ x̄ with the forward pass's factors ``res``; āb the band of −b̄ xᴴ
    arranged for op."""
    kw = dict(lower=lower, upper=upper, hermitian=hermitian, op=op, factors=res)
    b_bar = C.adjoint_rhs(lambda rhs, t: _band_solve(ab, rhs, trans=t, **kw), x_bar, trans)
    ab_bar = None
    if needs[0]:
        p, q, negate = C.cotangent_factors(b_bar, x, trans)
        if C.folds(ops._shape(ab), x):
            p, q = C._fold_factors(p, q)
        G = _product(p, q, lower=lower, upper=upper)
        ab_bar = ops.fit(-G if negate else G, ab)
    return ab_bar, (ops.fit(b_bar, b) if needs[1] else None)


def band_solve_jvp(tangents, x, res, ab, b, *, lower, upper, hermitian=False, trans=0,
                   op="solve_banded", factors=None):
    """ẋ = op(A)⁻¹ (ḃ − op(Ȧ) x)."""
    ab_dot, b_dot = tangents
    rhs = None
    if ab_dot is not None:
        rhs = -_matmul(ab_dot, x, lower=lower, upper=upper, trans=trans)
    if b_dot is not None:
        rhs = b_dot if rhs is None else rhs + b_dot
    return _band_solve(ab, rhs, lower=lower, upper=upper, hermitian=hermitian, trans=trans,
                       op=op, factors=res)


_band_solve = Primitive("band_solve", band_solve_forward, band_solve_vjp, band_solve_jvp,
                        staged=True)


def banded_solve(ab, b, lower, upper, *, hermitian=False, trans=0, op="solve_banded"):
    """x of op(A) x = b for A's band ab (..., lower + upper + 1, n) and b (n,) or
    (..., n, k), both already of the dtype to compute in (callers validate)."""
    return C.on_columns(lambda b_: _band_solve(ab, b_, lower=lower, upper=upper,
                                               hermitian=hermitian, trans=trans, op=op), b)


# -- the public functions ------------------------------------------------------------------

def _operands(op, ab, b, rows, check_finite, name="ab"):
    """(ab, b) validated and promoted: ab (..., rows, n), b (n,) or (..., n, k); ``name``:
    what the messages call ab."""
    abv, bv = C.peek(ab), C.peek(b)
    if abv.ndim < 2:
        raise ValueError(f"{op}: {name} must be (..., {rows}, n) (band storage); got shape "
                         f"{abv.shape}")
    if abv.shape[-2] != rows:
        raise ValueError(f"{op}: {name} has {abv.shape[-2]} rows; the band needs {rows} "
                         f"(shape {abv.shape})")
    n = abv.shape[-1]
    C.rhs_shape(op, abv.shape[:-2] + (n, n), bv.shape)
    dtype = C.result_dtype(op, abv, bv)
    C.checked(op, (name, "b"), (ab, b), check_finite)
    return C.promote(ab, dtype), C.promote(b, dtype)


def _bandwidths(op, l_and_u):
    try:
        lower, upper = (operator.index(v) for v in l_and_u)
    except TypeError:
        raise TypeError(f"{op}: l_and_u must be a pair of integers (l, u); got "
                        f"{l_and_u!r}") from None
    except ValueError:
        raise ValueError(f"{op}: l_and_u must be a pair of integers (l, u); got "
                         f"{l_and_u!r}") from None
    if lower < 0 or upper < 0:
        raise ValueError(f"{op}: the numbers of lower and upper diagonals must be "
                         f"non-negative; got {(lower, upper)}")
    return lower, upper


def solve_banded(l_and_u, ab, b, overwrite_ab=False, overwrite_b=False, check_finite=True):
    """Solve ``a @ x = b`` for a banded ``a`` given by its band, differentiable in ``ab``
    and ``b`` (scipy.linalg.solve_banded).

    ``l_and_u = (l, u)``: the numbers of nonzero lower and upper diagonals.  ``ab``
    (..., l + u + 1, n) holds them in SciPy's band storage, ``ab[u + i − j, j] ==
    a[i, j]`` (the entries of ``ab`` outside the matrix are not read, and get zero
    gradient); ``b`` is (n,) or (..., n, k), stacks broadcast as in :func:`solve`.

    LAPACK's band LU (gbtrf, gttrf for l = u = 1): O(n·l·(l + u)) to factor, O(n (l + u) k)
    per solve, where the dense solve is O(n³); the backward pass reuses the factors and
    forms only the band of the cotangent, O(n (l + u) k); so does the forward mode.
    Stacks of small matrices (order < 12) use the vectorised dense LU.

    Raises LinAlgError for a singular matrix (naming its index in a stack), ValueError
    when ``ab`` has not l + u + 1 rows or b does not match.  ``overwrite_*`` are
    accepted and ignored.

    Valid when: a is nonsingular.
    """
    op = "solve_banded"
    lower, upper = _bandwidths(op, l_and_u)
    ab, b = _operands(op, ab, b, lower + upper + 1, check_finite)
    return banded_solve(ab, b, lower, upper, op=op)


def solveh_banded(ab, b, overwrite_ab=False, overwrite_b=False, lower=False,
                  check_finite=True):
    """Solve ``a @ x = b`` for a Hermitian positive definite banded ``a`` given by one
    triangle of its band, differentiable in ``ab`` and ``b`` (scipy.linalg.solveh_banded).

    ``ab`` (..., u + 1, n): the upper form ``ab[u + i − j, j] == a[i, j]`` (i ≤ j; the
    default) or, with ``lower=True``, the lower form ``ab[i − j, j] == a[i, j]`` (i ≥ j).
    Only that triangle is read, and only it gets gradient — of the diagonal only the real
    part (as LAPACK reads it).  LAPACK's banded Cholesky (pbtrf): O(n u²) to factor,
    O(n u k) per solve and for the backward and forward passes.

    Raises LinAlgError when the matrix is not positive definite (naming its index in a
    stack).  Valid when: a is Hermitian positive definite.
    """
    op = "solveh_banded"
    abv = C.peek(ab)
    if abv.ndim < 2 or abv.shape[-2] < 1:
        raise ValueError(f"{op}: ab must be (..., u + 1, n) (band storage); got shape "
                         f"{abv.shape}")
    u = abv.shape[-2] - 1
    ab, b = _operands(op, ab, b, u + 1, check_finite)
    return banded_solve(_hermitian_band(ab, u, bool(lower)), b, u, u, hermitian=True, op=op)


def _shift(row, s):
    """row[..., j + s] at j (zero where j + s is outside): s > 0 left, s < 0 right."""
    v = C.peek(row)
    n = v.shape[-1]
    s = max(-n, min(n, s))
    zeros = C.namespace_of(v).zeros(v.shape[:-1] + (abs(s),), dtype=v.dtype)
    if s >= 0:
        return ops.concatenate([ops.getitem(row, (Ellipsis, slice(s, None))), zeros], axis=-1)
    return ops.concatenate([zeros, ops.getitem(row, (Ellipsis, slice(None, n + s)))], axis=-1)


def _hermitian_band(ab, u, lower):
    """The full band (..., 2u + 1, n) of the Hermitian matrix one of whose triangles ab
    holds (upper form ab[u + i − j, j], lower form ab[i − j, j]): the stored diagonals,
    their conjugate mirrors and the real part of the diagonal."""
    def row(r):
        return ops.getitem(ab, (Ellipsis, r, slice(None)))

    diag = row(0 if lower else u)
    if ops._is_complex(diag):
        diag = ops.astype(ops.real(diag), C.peek(ab).dtype)
    rows = []
    for s in range(u, 0, -1):           # the superdiagonal i − j = −s (row u − s)
        rows.append(_shift(ops.conj(row(s)), -s) if lower else row(u - s))
    rows.append(diag)
    for s in range(1, u + 1):           # the subdiagonal i − j = s (row u + s)
        rows.append(row(s) if lower else _shift(ops.conj(row(u - s)), s))
    return ops.stack(rows, axis=-2)


# -- registry -------------------------------------------------------------------------------

def _solve_banded_fun(ab, b, l_and_u):
    return solve_banded(l_and_u, ab, b)


_solve_banded_fun.__doc__ = solve_banded.__doc__


def _band_storage(A, lower, upper):
    return band_from_dense(np, A, lower, upper)


def _corners(n, lower, upper):
    r, j = np.indices((lower + upper + 1, n))
    i = j + r - upper
    return (i < 0) | (i >= n)


def triangle_corners(n, u, lower):
    """The corners of one triangle's band storage (u + 1, n): the lower form's bottom right,
    the upper form's top left."""
    return _corners(n, u, 0) if lower else _corners(n, 0, u)


def junk_corners(rng, ab, lower):
    """ab (one triangle's band storage) with random junk in its corners (test domains:
    never read, so zero gradient)."""
    u, n = ab.shape[-2] - 1, ab.shape[-1]
    return np.where(triangle_corners(n, u, lower), rng.standard_normal(ab.shape), ab)


def _domain_general(rng, n, batch, dtype):
    """l = 1, u = 2 (l = u = 0 below order 3), diagonally dominant, junk in the corners
    (never read: zero gradient)."""
    lower, upper = (1, 2) if n >= 3 else (0, 0)
    A = 0.4 * M.random_general(rng, n, batch, dtype) + 2 * np.eye(n)
    ab = _band_storage(A, lower, upper)
    junk = rng.standard_normal(ab.shape)
    ab = np.where(_corners(n, lower, upper), junk, ab).astype(dtype)
    return (ab, M.random_rhs(rng, n, 2, batch, dtype)), {"l_and_u": (lower, upper)}


def _domain_tridiagonal(rng, n, batch, dtype):
    A = 0.4 * M.random_general(rng, n, batch, dtype) + 2 * np.eye(n)
    return (_band_storage(A, 1, 1).astype(dtype), M.random_vector(rng, n, (), dtype)), \
        {"l_and_u": (1, 1)}


def hpd_band_matrix(rng, n, batch, dtype, u):
    """A Hermitian positive definite (diagonally dominant) matrix with u off-diagonals,
    assembled: the test domains' banded positive definite matrices."""
    G = M.random_general(rng, n, batch, dtype)
    near = np.abs(np.subtract.outer(np.arange(n), np.arange(n))) <= u
    S = np.where(near, G + np.conj(np.swapaxes(G, -1, -2)), 0)
    return S + (np.abs(S).sum(axis=-1).max() + 1) * np.eye(n)


def _domain_hermitian(rng, n, batch, dtype, lower=False):
    """A Hermitian positive definite matrix with u = 2 (fewer below order 3), by diagonal
    dominance; the other triangle's rows are not there to read."""
    u = min(2, max(n - 1, 0))
    S = hpd_band_matrix(rng, n, batch, dtype, u)
    ab = _band_storage(S, u, 0) if lower else _band_storage(S, 0, u)
    return (ab.astype(dtype), M.random_rhs(rng, n, 2, batch, dtype)), {"lower": lower}


def _domain_hermitian_lower(rng, n, batch, dtype):
    return _domain_hermitian(rng, n, batch, dtype, lower=True)


def _per_matrix_reference(fn, ab, b):
    """SciPy's fn(ab_i, b_i) matrix by matrix over the broadcast stack (b a vector or a
    stack of (n, k) blocks)."""
    vector = b.ndim == 1
    x = C.per_matrix(fn, ab, b[:, None] if vector else b, cores=(2, 2))
    return x[..., 0] if vector else x


def solve_banded_reference(ab, b, l_and_u):
    import scipy.linalg
    return _per_matrix_reference(lambda a_, b_: scipy.linalg.solve_banded(l_and_u, a_, b_),
                                 ab, b)


def solveh_banded_reference(ab, b, lower=False):
    import scipy.linalg
    return _per_matrix_reference(lambda a_, b_: scipy.linalg.solveh_banded(a_, b_, lower=lower),
                                 ab, b)


RULES = (
    Rule(
        name="solve_banded",
        fun=_solve_banded_fun,
        primitive=_band_solve,
        domains=(
            Domain("general", _domain_general, "l = 1, u = 2, junk in ab's corners"),
            Domain("tridiagonal", _domain_tridiagonal, "l = u = 1 (gttrf), b a vector"),
        ),
        derivation="docs/derivations/banded.md",
        reference=solve_banded_reference,
        references=("Giles 2008, Collected matrix derivative results for forward and reverse "
                    "mode algorithmic differentiation",),
    ),
    Rule(
        name="solveh_banded",
        fun=solveh_banded,
        primitive=_band_solve,
        domains=(
            Domain("upper", _domain_hermitian, "Hermitian positive definite, upper form"),
            Domain("lower", _domain_hermitian_lower, "lower form"),
        ),
        derivation="docs/derivations/banded.md",
        reference=solveh_banded_reference,
    ),
)
