"""Toeplitz matrices: solve_toeplitz, matmul_toeplitz, toeplitz.   Derivation: docs/derivations/toeplitz.md

A Toeplitz matrix is held by its diagonals v (SciPy's order: the first row reversed
without its first entry, then the first column), T[i, j] = v[n − 1 + i − j]; T is linear
in v, so every rule is two linear maps and their adjoints:

  product      Y = T(v) X                 v̄ = tcorr(Ȳ, X),   X̄ = T(ṽ) Ȳ,   ṽ = conj(flip(v))
  correlation  s = tcorr(Y, X)            Ȳ = T(s̄) X,        X̄ = T(conj(flip(s̄))) Y
               s[n − 1 + i − j] = Σₖ Y[i, k] conj(X[j, k])  (the diagonal sums of Y Xᴴ)
  solve        X = T(v)⁻¹ B               Ŷ = T(ṽ)⁻¹ X̄ (Tᴴ is Toeplitz: ṽ),
                                          B̄ = Ŷ,  v̄ = −tcorr(Ŷ, X)
               forward: Ẋ = T(v)⁻¹ (Ḃ − T(v̇) X)

T(ṽ) = T(v)ᴴ.  The products and correlations are FFTs of length m + n − 1 (backend
toeplitz_matmul, toeplitz_correlate), the solves SciPy's Levinson recursion: value,
gradient and forward mode O(n²) a right-hand side where the dense route is O(n³), and
O(n) memory.  The first column c and row r map to v by a concatenation (r = conj(c) when
only c is given), which the tape differentiates: only r[1:] reaches v, r[0] gets a zero
gradient (SciPy ignores it).
"""

from __future__ import annotations

import numpy as np

from .. import ops
from ..backend import (kernels_for, namespace_of, toeplitz_assemble, toeplitz_correlate,
                       toeplitz_diagonal_sums, toeplitz_matmul)
from ..registry import Domain, Rule
from ..tape import Primitive
from . import _common as C

__all__ = ["solve_toeplitz", "matmul_toeplitz", "toeplitz", "RULES"]


def _flip_conj(v):
    return ops.conj(ops.getitem(v, (Ellipsis, slice(None, None, -1))))


# -- the two linear maps ---------------------------------------------------------------------

def _tmatmul_vjp(g, needs, out, res, v, X):
    v_bar = ops.fit(_tcorr(g, X), v) if needs[0] else None
    X_bar = ops.fit(_tmatmul(_flip_conj(v), g), X) if needs[1] else None
    return v_bar, X_bar


def _tcorr_vjp(g, needs, out, res, Y, X):
    Y_bar = ops.fit(_tmatmul(g, X), Y) if needs[0] else None
    X_bar = ops.fit(_tmatmul(_flip_conj(g), Y), X) if needs[1] else None
    return Y_bar, X_bar


_assemble, _diag_sums = C.adjoint_pair(
    "toeplitz_assemble", lambda v, *, m, n: toeplitz_assemble(namespace_of(v), v, m, n),
    "toeplitz_diagonal_sums", lambda G: toeplitz_diagonal_sums(namespace_of(G), G),
    C.matrix_shape)
_tmatmul = Primitive("toeplitz_matmul",
                     lambda v, X: toeplitz_matmul(namespace_of(v, X), v, X),
                     _tmatmul_vjp, C.bilinear_jvp(lambda: _tmatmul))
_tcorr = Primitive("toeplitz_correlate",
                   lambda Y, X: toeplitz_correlate(namespace_of(Y, X), Y, X),
                   _tcorr_vjp, C.bilinear_jvp(lambda: _tcorr))


# -- the solve -------------------------------------------------------------------------------

def _tsolve_impl(v, B, *, op):
    return kernels_for(v, B).toeplitz_solve(v, B, op=op)


def _tsolve_vjp(g, needs, X, res, v, B, *, op):
    Y = _tsolve(_flip_conj(v), g, op=op)                  # Tᴴ Ŷ = X̄
    v_bar = ops.fit(-_tcorr(Y, X), v) if needs[0] else None
    B_bar = ops.fit(Y, B) if needs[1] else None
    return v_bar, B_bar


def _tsolve_jvp(tangents, X, res, v, B, *, op):
    v_dot, B_dot = tangents
    rhs = B_dot
    if v_dot is not None:
        t = _tmatmul(v_dot, X)
        rhs = -t if rhs is None else rhs - t
    return None if rhs is None else _tsolve(v, rhs, op=op)


_tsolve = Primitive("toeplitz_solve", _tsolve_impl, _tsolve_vjp, _tsolve_jvp)


# -- arguments -------------------------------------------------------------------------------

def _first_column_and_row(op, c_or_cr):
    """(c, r, given): SciPy's c_or_cr, r = conj(c) when only c is given."""
    if isinstance(c_or_cr, tuple):
        if len(c_or_cr) != 2:
            raise ValueError(f"{op}: c_or_cr must be c or a tuple (c, r); got a tuple of "
                             f"{len(c_or_cr)}")
        c, r = C.array_args(op, c=c_or_cr[0], r=c_or_cr[1])
        return c, r, True
    (c,) = C.array_args(op, c=c_or_cr)
    return c, None, False


def _diagonals(c, r):
    """v: SciPy's order r[n − 1], …, r[1], then c (c[0] is the diagonal; r[0] is never
    read), the stacks of c and r broadcast (a shared one gets the stack's gradient sum)."""
    head = ops.getitem(r, (Ellipsis, slice(None, 0, -1)))
    batch = np.broadcast_shapes(C.peek(c).shape[:-1], C.peek(r).shape[:-1])
    parts = [ops.broadcast_to(x, batch + C.peek(x).shape[-1:]) if C.peek(x).shape[:-1] != batch
             else x for x in (head, c)]
    return ops.concatenate(parts, axis=-1)


def _as_vector(op, x, name):
    v = C.peek(x)
    if v.ndim == 0:
        return ops.reshape(x, (1,)), (1,)
    return x, v.shape


def _operands(op, c_or_cr, x, xname, check_finite, square):
    """v (..., m + n − 1), X (..., n, k), whether x was a vector, m and the dtype."""
    c, r, given = _first_column_and_row(op, c_or_cr)
    c, cshape = _as_vector(op, c, "c")
    if given:
        r, rshape = _as_vector(op, r, "r")
    else:
        rshape = cshape
    (x,) = C.array_args(op, **{xname: x})
    xv = C.peek(x)
    if xv.ndim == 0:
        raise ValueError(f"{op}: {xname} must be an array of shape (n,) or (..., n, k); got a "
                         "scalar")
    m, n = cshape[-1], rshape[-1]
    if square and m != n:
        raise ValueError(f"{op}: incompatible dimensions: c has {m} entries and r {n}; the "
                         "matrix must be square")
    rows = xv.shape[0] if xv.ndim == 1 else xv.shape[-2]
    if rows != n:
        raise ValueError(f"{op}: incompatible dimensions: the matrix is {m}×{n} and "
                         f"{xname} has shape {xv.shape} (vectors (n,), or (..., n, k))")
    vals = [("c", C.peek(c))] + ([("r", C.peek(r))] if given else []) + [(xname, xv)]
    batches = [v.shape[:-1] for _, v in vals[:-1]] + [xv.shape[:-2] if xv.ndim > 1 else ()]
    try:
        np.broadcast_shapes(*batches)
    except ValueError:
        shapes = ", ".join(f"{k} {v.shape}" for k, v in vals)
        raise ValueError(f"{op}: the stacks of {shapes} do not broadcast") from None
    dtype = C.result_dtype(op, *(v for _, v in vals))
    C.checked(op, tuple(k for k, _ in vals), (c,) + ((r,) if given else ()) + (x,),
              check_finite)
    c = C.promote(c, dtype)
    r = C.promote(r, dtype) if given else ops.conj(c)
    x = C.promote(x, dtype)
    v = _diagonals(c, r)
    vector = xv.ndim == 1
    X = ops.reshape(x, (n, 1)) if vector else x
    return v, X, vector, m, dtype


def solve_toeplitz(c_or_cr, b, check_finite=True):
    """Solve T x = b for a Toeplitz T, differentiable in c, r and b (scipy.linalg.solve_toeplitz).

    ``c_or_cr`` is the first column c, or a tuple (c, r) with the first row r
    (r[0] is ignored; r = conj(c) when only c is given: a Hermitian T for a
    real c[0]).  b is a vector (n,) or (..., n, k); c and r may carry leading
    stack dimensions, which broadcast with b's (SciPy 1.17's batching: a b
    of two or more dimensions is (..., n, k)).  The result has b's shape with
    the broadcast stack in front, and the inputs' common inexact dtype
    (float32 stays float32; SciPy returns float64).

    SciPy's Levinson recursion, O(n²) a right-hand side; the gradient is one
    more Levinson solve with Tᴴ (also Toeplitz) and the diagonal sums of an
    outer product (one FFT correlation), forward mode one FFT product and one
    solve: O(n²) and O(n) memory throughout, any order.

    Raises ValueError for incompatible shapes and (check_finite) infs/NaNs,
    and LinAlgError when a leading principal minor of T is singular (Levinson
    cannot proceed; SciPy raises there too), naming the matrix of a stack.

    Valid when: every leading principal minor of T is nonsingular (true for
    Hermitian positive definite T).  Levinson is not backward stable for
    indefinite or nonsymmetric T: the solution — and its gradient — can lose
    accuracy when a leading minor is nearly singular even if T is not.
    """
    op = "solve_toeplitz"
    v, B, vector, n, _ = _operands(op, c_or_cr, b, "b", check_finite, square=True)
    X = _tsolve(v, B, op=op)
    return ops.reshape(X, C.peek(X).shape[:-1]) if vector else X


def matmul_toeplitz(c_or_cr, x, check_finite=False, workers=None):
    """T @ x for a Toeplitz T by FFT, differentiable in c, r and x (scipy.linalg.matmul_toeplitz).

    T is m×n with first column c (m entries) and first row r (n entries; r =
    conj(c) when only c is given); x is (n,) or (..., n, k), stacks broadcast
    as in :func:`solve_toeplitz`.  The result is (m,) or (..., m, k) in the
    inputs' common inexact dtype.  ``workers`` is accepted (NumPy's FFT runs
    on one thread).

    O((m + n) log(m + n)) a column by FFT (for stacks of at most 8,192
    assembled entries, through the assembled matrices); its gradient in x is the product with Tᴴ (also
    Toeplitz), in c and r the diagonal sums of ȳ xᴴ (an FFT correlation).

    Valid when: always (a bilinear map); FFT rounding is relative to
    ‖T‖ ‖x‖, so entries of y much smaller than that carry absolute, not
    relative, accuracy.
    """
    op = "matmul_toeplitz"
    if workers is not None:             # scipy.fft's checks (NumPy's FFT runs on one thread)
        if not isinstance(workers, (int, np.integer)) or isinstance(workers, bool):
            raise ValueError(f"{op}: workers must be an integer; got {workers!r}")
        if workers == 0:
            raise ValueError(f"{op}: workers must not be zero")
    v, X, vector, m, dtype = _operands(op, c_or_cr, x, "x", check_finite, square=False)
    n = C.peek(X).shape[-2]
    if m == 0 or n == 0:            # no diagonals to hold: an empty or zero product
        xp = namespace_of(C.peek(X))
        Y = ops.matmul(xp.zeros(C.peek(v).shape[:-1] + (m, n), dtype=dtype), X)
    else:
        Y = _tmatmul(v, X)
    return ops.reshape(Y, C.peek(Y).shape[:-1]) if vector else Y


def toeplitz(c, r=None):
    """The Toeplitz matrix with first column c and first row r, differentiable (scipy.linalg.toeplitz).

    r = conj(c) when not given; r[0] is ignored.  Leading dimensions of c and
    r are stacks (SciPy 1.17's batching): the result is (..., m, n).  A strided
    copy of the diagonals, as SciPy's; its gradient sums each diagonal of the
    cotangent (a strided scatter and column sums).

    Valid when: always.
    """
    c = C.array_arg(c)
    cv = C.peek(c)
    if cv.ndim == 0:
        c, cv = ops.reshape(c, (1,)), cv.reshape(1)
    r = ops.conj(c) if r is None else C.array_arg(r)
    rv = C.peek(r)
    if rv.ndim == 0:
        r, rv = ops.reshape(r, (1,)), rv.reshape(1)
    dtype = np.result_type(cv.dtype, rv.dtype)
    c, r = C.promote(c, dtype), C.promote(r, dtype)
    m, n = cv.shape[-1], rv.shape[-1]
    try:
        v = _diagonals(c, r)
    except ValueError:
        raise ValueError(f"toeplitz: the stacks of c {cv.shape} and r {rv.shape} do not "
                         "broadcast") from None
    return _assemble(v, m=m, n=n)


# -- registry ---------------------------------------------------------------------------------
# The checks pass array arguments positionally: (c, b) or (c, r, b) stand for SciPy's
# (c, b) and ((c, r), b).

def _positional(fn):
    def fun(*args):
        return fn(args[0] if len(args) == 2 else tuple(args[:2]), args[-1])
    fun.__doc__ = fn.__doc__
    fun.__name__ = f"{fn.__name__}_positional"
    return fun


_solve_toeplitz_fun = _positional(solve_toeplitz)
_matmul_toeplitz_fun = _positional(matmul_toeplitz)


def _reference(name):
    def ref(*args):
        import scipy.linalg
        dtype = C.result_dtype("reference", *(np.asarray(a) for a in args))
        cr = args[0] if len(args) == 2 else tuple(args[:2])
        return np.asarray(getattr(scipy.linalg, name)(cr, args[-1])).astype(dtype, copy=False)
    ref.__name__ = f"{name}_reference"
    return ref


def _random(rng, shape, dtype):
    x = rng.standard_normal(shape)
    if np.dtype(dtype).kind == "c":
        x = x + 1j * rng.standard_normal(shape)
    return x


def _autocovariance(rng, n, batch, dtype):
    """c of a Hermitian positive definite Toeplitz matrix: the autocovariance of a random
    moving-average process plus a nugget (every leading minor positive)."""
    taps = _random(rng, batch + (3,), dtype)
    c = np.zeros(batch + (n,), dtype=np.result_type(dtype, np.float64))
    for k in range(min(n, 3)):
        c[..., k] = np.sum(taps[..., k:] * np.conj(taps[..., :3 - k]), axis=-1)
    c[..., 0] = c[..., 0].real + 1.0
    return c.astype(dtype)


def _general_cr(rng, n, batch, dtype):
    """c, r with a dominant diagonal: every leading principal minor well conditioned."""
    c = _random(rng, batch + (n,), dtype) / np.sqrt(max(n, 1))
    r = _random(rng, batch + (n,), dtype) / np.sqrt(max(n, 1))
    c[..., 0] += 3.0
    return c.astype(dtype), r.astype(dtype)


def _rhs(rng, n, batch, dtype, k):
    return _random(rng, batch + (n, k) if k else (n,), dtype).astype(dtype)


def _solve_domain(kind, k):
    def make(rng, n, batch, dtype):
        b = _rhs(rng, n, batch if k else (), dtype, k)
        if kind == "hermitian":
            return (_autocovariance(rng, n, batch, dtype), b), {}
        return (*_general_cr(rng, n, batch, dtype), b), {}
    return make


def _matmul_domain(extra_rows, k):
    def make(rng, n, batch, dtype):
        c = _random(rng, batch + (n + extra_rows,), dtype).astype(dtype)
        r = _random(rng, batch + (n,), dtype).astype(dtype)
        return (c, r, _rhs(rng, n, batch if k else (), dtype, k)), {}
    return make


_REFS = ("Levinson 1947; Durbin 1960 (the recursion SciPy implements)",
         "Golub & Van Loan, Matrix Computations, 4th ed., section 4.7",
         "Giles 2008")

RULES = (
    Rule(
        name="solve_toeplitz",
        fun=_solve_toeplitz_fun,
        primitive=_tsolve,
        domains=(
            Domain("hermitian", _solve_domain("hermitian", 2),
                   "c alone (r = conj(c)): a Hermitian positive definite autocovariance, "
                   "b (..., n, 2)"),
            Domain("general", _solve_domain("general", 2),
                   "(c, r) with a dominant diagonal, b (..., n, 2)"),
            Domain("vector", _solve_domain("general", 0),
                   "(c, r) stacks against one vector b (n,)"),
        ),
        derivation="docs/derivations/toeplitz.md",
        reference=_reference("solve_toeplitz"),
        references=_REFS,
    ),
    Rule(
        name="matmul_toeplitz",
        fun=_matmul_toeplitz_fun,
        primitive=_tmatmul,
        domains=(
            Domain("square", _matmul_domain(0, 2), "n×n, x (..., n, 2)"),
            Domain("tall", _matmul_domain(3, 1), "(n+3)×n, x (..., n, 1)"),
            Domain("vector", _matmul_domain(0, 0), "stacks of (c, r) against one x (n,)"),
        ),
        derivation="docs/derivations/toeplitz.md",
        reference=_reference("matmul_toeplitz"),
        references=_REFS,
    ),
)
