"""Special matrices built from array data: block_diag, hankel, khatri_rao, companion,
convolution_matrix, diagsvd, leslie, fiedler, fiedler_companion.
Derivation: docs/derivations/special_matrices.md

Each constructor is a fixed map of its array arguments (SciPy 1.17's names, signatures,
output shapes, dtypes, errors and batching), differentiable at any order because it is
written with linalgad's own differentiable ops:

  linear maps (placement of entries; the adjoint gathers them back)
    block_diag          concatenation with zero blocks          Ā_i = the i-th diagonal block
    hankel              H[i, j] = v[i + j], v = (c, r[1:])      v̄ = anti-diagonal sums of H̄
    convolution_matrix  a Toeplitz matrix of the zero-padded a  ā = (trimmed) diagonal sums
    diagsvd, leslie     entries on a diagonal / a first row     s̄ = diagonal of S̄, f̄ = row 0
  bilinear
    khatri_rao          C[(i, j), k] = a[i, k] b[j, k]          Ā = Σ_j C̄ conj(b),  B̄ = Σ_i C̄ conj(a)
  rational (a quotient by the leading coefficient)
    companion           row 0 = −a[1:] / a[0]                   quotient rule, below
    fiedler_companion   the same quotients, on three diagonals
  modulus
    fiedler             F[i, j] = |a_i − a_j|                   d|z| = Re(conj(z)/|z| dz)

No index array of the output's size is ever formed: the Hankel matrix is a strided copy
(its own primitive pair ``_hankel``/``_antidiagonal_sums``, the Hankel image of toeplitz.py's
strided assembly; the adjoint is min(m, n) shifted vector additions on the CPU), convolution_matrix uses toeplitz.py's strided ``_assemble``, diagonals are
placed by ``ops._embed_diagonal`` (an index of the diagonal's length), the rest are
concatenations, broadcasts and elementwise products.  Plain NumPy inputs (nothing traced)
go to SciPy itself after linalgad's own argument checks, so they return exactly SciPy's
array; traced and CuPy inputs take the differentiable composite, which computes the same
values in the same dtypes.
"""

from __future__ import annotations

import math
import warnings

import operator

import numpy as np

from .. import ops
from ..backend import (_as_strided, _is_cupy, namespace_of, to_host,
                       toeplitz_diagonal_sums)
from ..registry import Domain, Rule
from ..tape import Tracer
from . import _common as C
from .toeplitz import _assemble as _toeplitz_assemble

__all__ = ["block_diag", "hankel", "khatri_rao", "companion", "convolution_matrix",
           "diagsvd", "leslie", "fiedler", "fiedler_companion", "bandwidth", "ishermitian",
           "issymmetric", "dft", "hadamard", "helmert", "hilbert", "invhilbert", "pascal",
           "invpascal", "RULES"]


# -- helpers ---------------------------------------------------------------------------------------

def _plain(*xs):
    """True when nothing is traced and every array is a NumPy array (lists and numbers
    count): SciPy itself can then be called and returns exactly its own result."""
    for x in xs:
        if isinstance(x, Tracer):
            return False
        if hasattr(x, "shape") and (not isinstance(x, np.ndarray) or _is_cupy(x)):
            return False                    # a CuPy (or other) array: the composite
    return True


def _zeros(like, shape, dtype):
    return namespace_of(like).zeros(shape, dtype=dtype)


def _inexact(dtype):
    """The dtype of x / x[0] (and of 1.0 * x): integers and booleans become float64."""
    dtype = np.dtype(dtype)
    return dtype if dtype.kind in "fc" else np.dtype(np.float64)


def _no_zero_size_batch(op, batch):
    if batch and math.prod(batch) == 0:
        raise ValueError(f"{op}: SciPy's batching does not support zero-size batches; got "
                         f"the stack shape {batch}")


def _broadcast(op, shapes, names):
    try:
        return np.broadcast_shapes(*shapes)
    except ValueError:
        shown = ", ".join(f"{n} {s}" for n, s in zip(names, shapes))
        raise ValueError(f"{op}: the stack shapes ({shown}) do not broadcast") from None


def _to(x, dtype, shape):
    """x cast to dtype and broadcast to shape (each only when needed)."""
    x = C.promote(x, dtype)
    return x if C.peek(x).shape == tuple(shape) else ops.broadcast_to(x, tuple(shape))


def _embed(v, shape, offset=0):
    """Zeros of ``shape`` (..., m, n) with v (..., L) on the ``offset`` diagonal of the last
    two axes (differentiable: its adjoint reads the diagonal back)."""
    return ops._embed_diagonal(v, shape=tuple(shape), offset=offset, axis1=-2, axis2=-1)


def _integer(op, name, value):
    """An integer as SciPy takes it (operator.index: ints, NumPy integers and 0-d integer
    arrays, bools included)."""
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{op}: {name} must be an integer; got {value!r}") from None


def _check_leading(op, message, a):
    """ValueError when a[..., 0] has a zero (naming the first such vector of a stack);
    checked on every replay under linalgad.jit."""
    def check(v):
        zero = v[..., 0] == 0
        if bool(zero.any()):
            where = ""
            if zero.ndim:
                idx = np.unravel_index(int(np.argmax(to_host(zero).reshape(-1))), zero.shape)
                where = f" (vector {tuple(int(i) for i in idx)} of the stack of shape {zero.shape})"
            raise ValueError(f"{op}: {message}{where}")
    C.guard(a, check)


# -- the Hankel primitive pair -------------------------------------------------------------------

def _hankel_impl(v, *, m, n):
    """H[..., i, j] = v[..., i + j] for v (..., m + n − 1): a strided view of v copied out."""
    xp = namespace_of(v)
    v = xp.ascontiguousarray(v)
    step = v.strides[-1]
    return _as_strided(xp)(v, shape=v.shape[:-1] + (m, n),
                           strides=v.strides[:-1] + (step, step)).copy()


def _antidiagonal_sums_impl(G):
    """s[..., k] = Σ_{i+j=k} G[..., i, j], the adjoint of _hankel.  On the CPU: min(m, n)
    shifted vector additions (row i of G into s[i : i + n], or column j into s[j : j + m]),
    O(m + n) memory beyond G; on the GPU (one launch matters more than scratch memory):
    the Toeplitz diagonal sums of G with its columns reversed (column j ↦ n − 1 − j turns
    i + j into n − 1 + i − j')."""
    xp = namespace_of(G)
    m, n = G.shape[-2:]
    if xp is not np:
        return toeplitz_diagonal_sums(xp, G[..., ::-1])
    s = np.zeros(G.shape[:-2] + (max(m + n - 1, 0),), dtype=G.dtype)
    if m <= n:
        for i in range(m):
            s[..., i:i + n] += G[..., i, :]
    else:
        for j in range(n):
            s[..., j:j + m] += G[..., :, j]
    return s


_hankel, _antidiagonal_sums = C.adjoint_pair(
    "hankel_assemble", _hankel_impl, "hankel_antidiagonal_sums", _antidiagonal_sums_impl,
    C.matrix_shape)


# -- the constructors ------------------------------------------------------------------------------

def block_diag(*arrs):
    """The block diagonal matrix of the arguments, differentiable (scipy.linalg.block_diag).

    A 0-d argument is a 1×1 block, a 1-D one of length n a 1×n block; no
    argument gives a 1×0 matrix (SciPy's).  Leading dimensions beyond the
    last two are stacks that broadcast (SciPy 1.17's batching).  The result
    has the arguments' common dtype (np.result_type).  Concatenations with
    zero blocks; the gradient of each block is its diagonal block of the
    cotangent.

    Valid when: always (a linear map).
    """
    op = "block_diag"
    if len(arrs) == 0:
        arrs = ([],)
    xs = [C.array_arg(a) for a in arrs]
    vals = [C.peek(x) for x in xs]
    shapes = [v.shape if v.ndim >= 2 else (1, 1) if v.ndim == 0 else (1,) + v.shape
              for v in vals]
    batch = _broadcast(op, [s[:-2] for s in shapes], [f"argument {i}" for i in range(len(xs))])
    if _plain(*xs):
        import scipy.linalg
        return scipy.linalg.block_diag(*xs)
    dtype = np.result_type(*[v.dtype for v in vals])
    rows = sum(s[-2] for s in shapes)
    cols = sum(s[-1] for s in shapes)
    like = vals[0]
    blocks, c0 = [], 0
    for x, s in zip(xs, shapes):
        r, c = s[-2:]
        x = _to(ops.reshape(x, s) if C.peek(x).shape != s else x, dtype, batch + (r, c))
        parts = []
        if c0:
            parts.append(_zeros(like, batch + (r, c0), dtype))
        parts.append(x)
        if cols - c0 - c:
            parts.append(_zeros(like, batch + (r, cols - c0 - c), dtype))
        blocks.append(ops.concatenate(parts, axis=-1) if len(parts) > 1 else x)
        c0 += c
    out = ops.concatenate(blocks, axis=-2) if len(blocks) > 1 else blocks[0]
    assert C.peek(out).shape == batch + (rows, cols)
    return out


_HANKEL_WARNING = ("Beginning in SciPy 1.19, multidimensional input will be treated as a "
                   "batch, not `ravel`ed. To preserve the existing behavior and silence "
                   "this warning, `ravel` arguments before passing them to `hankel`.")


def hankel(c, r=None):
    """The Hankel matrix with first column c and last row r, differentiable (scipy.linalg.hankel).

    H[i, j] = c[i + j] for i + j < len(c), r[i + j − len(c) + 1] after;
    r[0] is ignored, and r = zeros_like(c) when not given (zeros below the
    anti-diagonal).  Shape (len(c), len(r)), dtype np.result_type(c, r).
    As SciPy 1.17, multidimensional c or r are raveled with a FutureWarning
    (no batching yet).  A strided copy of v = (c, r[1:]); its gradient sums
    the cotangent over each anti-diagonal (v̄[k] = Σ_{i+j=k} H̄[i, j]).

    Raises ValueError for a 0-d c or r (SciPy raises IndexError or
    ValueError there).

    Valid when: always (a linear map).
    """
    op = "hankel"
    (c,) = C.array_args(op, c=c)
    r = None if r is None else C.array_arg(r)
    cv = C.peek(c)
    rv = cv if r is None else C.peek(r)
    if cv.ndim == 0 or rv.ndim == 0:
        raise ValueError(f"{op}: c and r must be 1-D arrays; got shapes {cv.shape} and "
                         f"{rv.shape if r is not None else None}")
    if cv.ndim > 1 or rv.ndim > 1:
        warnings.warn(_HANKEL_WARNING, FutureWarning, stacklevel=2)
        c = ops.ravel(c) if cv.ndim > 1 else c
        if r is not None and rv.ndim > 1:
            r = ops.ravel(r)
        cv = C.peek(c)
        rv = cv if r is None else C.peek(r)
    if _plain(c, r):
        import scipy.linalg
        return scipy.linalg.hankel(c, r)
    dtype = np.result_type(cv.dtype, rv.dtype)
    m, n = cv.shape[0], rv.shape[0]
    c = C.promote(c, dtype)
    tail = (_zeros(cv, (max(n - 1, 0),), dtype) if r is None
            else ops.getitem(C.promote(r, dtype), slice(1, None)))
    v = ops.concatenate([c, tail], axis=0)
    if m == 0 or n == 0:                 # nothing to place (v keeps the graph and the dtype)
        return ops.reshape(ops.getitem(v, slice(0, 0)), (m, n))
    return _hankel(v, m=m, n=n)


def khatri_rao(a, b):
    """The Khatri–Rao (column-wise Kronecker) product, differentiable (scipy.linalg.khatri_rao).

    a (n, k) and b (m, k) give C (n·m, k) with C[i·m + j, l] = a[i, l] b[j, l];
    leading dimensions are stacks that broadcast (SciPy 1.17's batching; a
    zero-size stack raises, as SciPy).  dtype np.result_type(a, b), except
    that an empty product has a's dtype (SciPy's np.empty_like(a)).  An
    elementwise product of broadcast views; the gradient is
    Ā[i, l] = Σ_j C̄[i·m + j, l] conj(b[j, l]), B̄ likewise with a.

    Raises ValueError unless both are (stacks of) 2-D arrays with the same
    number of columns.

    Valid when: always (a bilinear map).
    """
    op = "khatri_rao"
    a, b = C.array_args(op, a=a, b=b)
    av, bv = C.peek(a), C.peek(b)
    if av.ndim < 2 or bv.ndim < 2:
        raise ValueError(f"{op}: a and b must both be 2-dimensional (or stacks of 2-D "
                         f"arrays); got shapes {av.shape} and {bv.shape}")
    batch = _broadcast(op, [av.shape[:-2], bv.shape[:-2]], ["a", "b"])
    _no_zero_size_batch(op, batch)
    if av.shape[-1] != bv.shape[-1]:
        raise ValueError(f"{op}: the number of columns of a and b must be equal; got shapes "
                         f"{av.shape} and {bv.shape}")
    if _plain(a, b):
        import scipy.linalg
        return scipy.linalg.khatri_rao(a, b)
    n, k = av.shape[-2:]
    m = bv.shape[-2]
    if n * k == 0 or m * k == 0:         # SciPy: np.empty_like(a, shape=(n·m, k))
        return _zeros(av, batch + (n * m, k), av.dtype)
    dtype = np.result_type(av.dtype, bv.dtype)
    a, b = C.promote(a, dtype), C.promote(b, dtype)
    prod = ops.expand_dims(a, -2) * ops.expand_dims(b, -3)       # (..., n, m, k)
    return ops.reshape(prod, batch + (n * m, k))


def companion(a):
    """The companion matrix of the polynomial a, differentiable (scipy.linalg.companion).

    a (..., n) with n ≥ 2 and a[..., 0] ≠ 0 gives (..., n − 1, n − 1): first
    row −a[1:] / a[0], ones on the subdiagonal (SciPy 1.17's batching over
    leading dimensions).  dtype that of 1.0 · a (integers become float64,
    float32 and float16 stay).  The gradient is the quotient rule:
    ā[1:] = −R̄ / conj(a[0]), ā[0] = Σ_k R̄_k conj(a[k]) / conj(a[0])²,
    R̄ the cotangent's first row.

    Raises ValueError when n < 2 or a leading coefficient is zero (naming the
    vector of a stack), TypeError for boolean a (as SciPy, whose negation
    fails).

    Valid when: a[..., 0] ≠ 0; the entries grow like 1/|a[0]| and the
    gradient like 1/|a[0]|².
    """
    op = "companion"
    (a,) = C.array_args(op, a=a)
    av = C.peek(a)
    if av.ndim == 0:
        a, av = ops.reshape(a, (1,)), av.reshape(1)
    n = av.shape[-1]
    if n < 2:
        raise ValueError(f"{op}: the length of `a` along the last axis must be at least 2; "
                         f"got shape {av.shape}")
    if av.dtype.kind == "b":
        raise TypeError(f"{op}: boolean coefficients are not supported (SciPy negates them)")
    _check_leading(op, "the first coefficient(s) of `a` (i.e. elements of `a[..., 0]`) "
                   "must not be zero", a)
    if _plain(a):
        import scipy.linalg
        return scipy.linalg.companion(a)
    dtype = _inexact(av.dtype)
    a = C.promote(a, dtype)
    batch = av.shape[:-1]
    row = -ops.getitem(a, (Ellipsis, slice(1, None))) / ops.getitem(a, (Ellipsis, slice(0, 1)))
    rest = namespace_of(av).zeros((n - 2, n - 1), dtype=dtype)
    if n > 2:
        rest[:, :n - 2] = namespace_of(av).eye(n - 2, dtype=dtype)
    rest = namespace_of(av).broadcast_to(rest, batch + (n - 2, n - 1))
    return ops.concatenate([ops.expand_dims(row, -2), rest], axis=-2)


def _convolution_layout(m, n, mode):
    """(rows, tb): the matrix's rows and the offset, T[i, j] = a[i − j + tb] (SciPy's trims)."""
    if mode == "same":
        trim = min(n, m) - 1
        tb = trim // 2
        return m + n - 1 - trim, tb
    if mode == "valid":
        tb = min(n, m) - 1
        return m + n - 1 - 2 * tb, tb
    return m + n - 1, 0


def convolution_matrix(a, n, mode="full"):
    """The matrix of convolution with a, differentiable (scipy.linalg.convolution_matrix).

    A @ v equals np.convolve(a, v, mode) for v of length n: a Toeplitz matrix
    (m + n − 1, n) for mode='full', (max(m, n), n) for 'same' and
    (max(m, n) − min(m, n) + 1, n) for 'valid', with A[i, j] = a[i − j + tb]
    (zero outside a).  Leading dimensions of a are a stack (SciPy 1.17's
    batching); the dtype is a's.  A strided copy of the zero-padded a (the
    Toeplitz assembly); the gradient sums the cotangent along each diagonal
    and keeps the sums that fall on a.

    Raises ValueError for n ≤ 0, an empty or 0-d a and an unknown mode,
    TypeError for a non-integer n.

    Valid when: always (a linear map).
    """
    op = "convolution_matrix"
    if isinstance(n, (int, np.integer, float, np.floating)) and not isinstance(n, bool) \
            and n <= 0:
        raise ValueError(f"{op}: n must be a positive integer; got {n!r}")
    n = _integer(op, "n", n)
    (a,) = C.array_args(op, a=a)
    av = C.peek(a)
    if av.size == 0:
        raise ValueError(f"{op}: len(a) must be at least 1; got shape {av.shape}")
    if not isinstance(mode, str) or mode not in ("full", "valid", "same"):
        raise ValueError(f"{op}: 'mode' argument must be one of ('full', 'valid', 'same'); "
                         f"got {mode!r}")
    if av.ndim == 0:
        raise ValueError(f"{op}: a must be an array of at least one dimension; got a scalar")
    if _plain(a):
        import scipy.linalg
        return scipy.linalg.convolution_matrix(a, n, mode)
    m = av.shape[-1]
    batch = av.shape[:-1]
    rows, tb = _convolution_layout(m, n, mode)
    # diagonals v (..., rows + n − 1) of the Toeplitz matrix, T[i, j] = v[n − 1 + i − j]
    left, right = n - 1 - tb, rows - m + tb
    parts = ([_zeros(av, batch + (left,), av.dtype)] if left else []) + [a] + \
        ([_zeros(av, batch + (right,), av.dtype)] if right else [])
    v = ops.concatenate(parts, axis=-1) if len(parts) > 1 else a
    return _toeplitz_assemble(v, m=rows, n=n)


def diagsvd(s, M, N):
    """The M×N matrix with s on its diagonal, differentiable (scipy.linalg.diagsvd).

    len(s) must be M (then N ≥ M) or N (then M ≥ N); Σ of an SVD.  Leading
    dimensions of s are a stack (SciPy 1.17's batching; a zero-size stack
    raises, as SciPy).  dtype s's.  The gradient of s is the diagonal of the
    cotangent.

    Raises ValueError for a 0-d s and for lengths that do not fit, TypeError
    for non-integer M, N.

    Valid when: always (a linear map).
    """
    op = "diagsvd"
    (s,) = C.array_args(op, s=s)
    sv = C.peek(s)
    if sv.ndim == 0:
        raise ValueError(f"{op}: s must be a 1-D array (or a stack of them); got a scalar")
    batch = sv.shape[:-1]
    _no_zero_size_batch(op, batch)
    M, N = _integer(op, "M", M), _integer(op, "N", N)
    k = sv.shape[-1]
    if k == M:
        if N < M:
            raise ValueError(f"{op}: s has M = {M} entries, so N must be at least M; got "
                             f"N = {N}")
    elif k == N:
        if M < N:
            raise ValueError(f"{op}: s has N = {N} entries, so M must be at least N; got "
                             f"M = {M}")
    else:
        raise ValueError(f"{op}: length of s must be M or N; got {k} with M = {M}, N = {N}")
    if _plain(s):
        import scipy.linalg
        return scipy.linalg.diagsvd(s, M, N)
    return _embed(s, batch + (M, N))


def leslie(f, s):
    """The Leslie matrix of fecundities f and survival rates s, differentiable (scipy.linalg.leslie).

    f (..., n) and s (..., n − 1), n ≥ 2, give (..., n, n): first row f, s on
    the subdiagonal, zeros elsewhere.  Leading dimensions are stacks that
    broadcast (SciPy 1.17's batching; a zero-size stack raises, as SciPy).
    dtype np.result_type(f, s).  The gradient of f is the cotangent's first
    row, of s its subdiagonal.

    Raises ValueError for incompatible lengths or an empty s.

    Valid when: always (a linear map).
    """
    op = "leslie"
    f, s = C.array_args(op, f=f, s=s)
    fv, sv = C.peek(f), C.peek(s)
    if fv.ndim == 0:
        f, fv = ops.reshape(f, (1,)), fv.reshape(1)
    if sv.ndim == 0:
        s, sv = ops.reshape(s, (1,)), sv.reshape(1)
    batch = _broadcast(op, [fv.shape[:-1], sv.shape[:-1]], ["f", "s"])
    _no_zero_size_batch(op, batch)
    if fv.shape[-1] != sv.shape[-1] + 1:
        raise ValueError(f"{op}: incorrect lengths for f and s: the length of s along the last "
                         f"axis must be one less than the length of f; got shapes "
                         f"{fv.shape} and {sv.shape}")
    if sv.shape[-1] == 0:
        raise ValueError(f"{op}: the length of s must be at least 1")
    if _plain(f, s):
        import scipy.linalg
        return scipy.linalg.leslie(f, s)
    dtype = np.result_type(fv.dtype, sv.dtype)
    n = fv.shape[-1]
    f = _to(f, dtype, batch + (n,))
    s = _to(s, dtype, batch + (n - 1,))
    return ops.concatenate([ops.expand_dims(f, -2), _embed(s, batch + (n - 1, n))], axis=-2)


def fiedler(a):
    """The Fiedler matrix F[i, j] = |a_i − a_j|, differentiable (scipy.linalg.fiedler).

    a (..., n) gives (..., n, n) (SciPy 1.17's batching), in the dtype of
    |a| (complex a gives a real matrix, integers stay integers).  As SciPy:
    an empty a gives np.array([]) (float64, shape (0,)) and an a of one entry
    [[0.]] (float64), whatever their shapes.  The gradient is
    ā_i = Σ_j (F̄[i, j] + F̄[j, i]) (a_i − a_j)/|a_i − a_j| (the direction is 0
    where a_i = a_j: the diagonal, whose entries are identically 0).

    Raises TypeError for boolean a (as SciPy).

    Valid when: the a_i are distinct (|·| has no derivative at 0; ties get
    the subgradient 0, exact for the diagonal).
    """
    op = "fiedler"
    (a,) = C.array_args(op, a=a)
    av = C.peek(a)
    if av.dtype.kind == "b":
        raise TypeError(f"{op}: boolean a is not supported (SciPy subtracts its entries)")
    if av.ndim == 0:
        a, av = ops.reshape(a, (1,)), av.reshape(1)
    if _plain(a):
        import scipy.linalg
        return scipy.linalg.fiedler(a)
    if av.size == 0:
        return namespace_of(av).asarray([], dtype=np.float64)
    if av.size == 1:
        return namespace_of(av).asarray([[0.0]])
    return ops.abs(ops.expand_dims(a, -1) - ops.expand_dims(a, -2))


def _fiedler_companion_ones(n, xp, dtype):
    """The constant entries of the Fiedler companion matrix of order n ≥ 2 (SciPy's)."""
    c = np.zeros((n, n), dtype=dtype)
    c[range(3, n, 2), range(1, n - 2, 2)] = 1
    c[range(0, n - 2, 2), range(2, n, 2)] = 1
    c[1, 0] = 1
    return xp.asarray(c)


def fiedler_companion(a):
    """The Fiedler companion matrix of the polynomial a, differentiable (scipy.linalg.fiedler_companion).

    a (n + 1,) with a[0] ≠ 0 gives an (n, n) pentadiagonal matrix with the
    eigenvalues of companion(a): with â = a / a[0], −â[1] at (0, 0), −â[k] on
    the super- (k even) or subdiagonal (k odd ≥ 3) in SciPy's pattern, ones
    on the second off-diagonals and at (1, 0).  Leading dimensions of a are
    a stack (SciPy 1.17: np.apply_along_axis; an empty stack raises).  dtype
    that of a / a[0]; as SciPy, a of two entries gives [[−a[1]/a[0]]] without
    a check of a[0], and of fewer an empty (…, 0) array of a's dtype.  The
    gradient is the quotient rule of companion on the three diagonals.

    Raises ValueError when a[0] == 0 (n ≥ 2).

    Valid when: a[0] ≠ 0; entries grow like 1/|a[0]|, gradients like 1/|a[0]|².
    """
    op = "fiedler_companion"
    (a,) = C.array_args(op, a=a)
    av = C.peek(a)
    if av.ndim == 0:
        a, av = ops.reshape(a, (1,)), av.reshape(1)
    batch = av.shape[:-1]
    if batch and math.prod(batch) == 0:
        raise ValueError(f"{op}: cannot build a stack of shape {batch}: SciPy's "
                         "np.apply_along_axis refuses iteration dimensions of size 0")
    k = av.shape[-1]
    if k >= 3:
        _check_leading(op, "leading coefficient is zero", a)
    if _plain(a):
        import scipy.linalg
        return scipy.linalg.fiedler_companion(a)
    xp = namespace_of(av)
    if k <= 1:
        return xp.zeros(batch + (0,), dtype=av.dtype)
    dtype = _inexact(av.dtype)
    a = C.promote(a, dtype)
    ahat = a / ops.getitem(a, (Ellipsis, slice(0, 1)))
    if k == 2:
        return ops.reshape(-ops.getitem(ahat, (Ellipsis, slice(1, 2))), batch + (1, 1))
    n = k - 1
    shape = batch + (n, n)
    e = -ops.getitem(ahat, (Ellipsis, slice(2, None)))                # −â[j + 2], j < n − 1
    even = xp.asarray((np.arange(n - 1) % 2 == 0).astype(dtype))
    d0 = ops.concatenate([-ops.getitem(ahat, (Ellipsis, slice(1, 2))),
                          xp.zeros(batch + (n - 1,), dtype=dtype)], axis=-1)
    out = _embed(d0, shape, 0) + _embed(e * even, shape, 1) + _embed(e * (1 - even), shape, -1)
    return out + _fiedler_companion_ones(n, xp, dtype)


# -- structure queries and constant matrices -----------------------------------------------------
#
# Nothing here is differentiable: the queries return integers and booleans (of a traced
# input's value, read on the host), and the constant matrices are functions of integers
# only.  They are here so that code written against scipy.linalg runs unchanged.

def _query_value(op, a):
    (a,) = C.array_args(op, a=a)
    return to_host(C.value(a))


def _query(op, a, **kw):
    """SciPy's query on a's value; SciPy's errors (their types and texts) with op named."""
    import scipy.linalg
    x = _query_value(op, a)
    try:
        return getattr(scipy.linalg, op)(x, **kw)
    except (ValueError, TypeError) as e:
        raise type(e)(f"{op}: {e}") from None


def bandwidth(a):
    """scipy.linalg.bandwidth of a's value: (lower, upper), the numbers of nonzero
    sub- and superdiagonals (arrays over a stack, as SciPy 1.17).  No gradient (integers).
    SciPy's errors (not 2-D, an unsupported dtype such as float16) name bandwidth."""
    return _query("bandwidth", a)


def ishermitian(a, atol=None, rtol=None):
    """scipy.linalg.ishermitian of a's value (booleans over a stack, as SciPy 1.17).
    SciPy's errors (not 2-D, not square, an unsupported dtype) name ishermitian."""
    return _query("ishermitian", a, atol=atol, rtol=rtol)


def issymmetric(a, atol=None, rtol=None):
    """scipy.linalg.issymmetric of a's value (booleans over a stack, as SciPy 1.17).
    SciPy's errors (not 2-D, not square, an unsupported dtype) name issymmetric."""
    return _query("issymmetric", a, atol=atol, rtol=rtol)


# SciPy's constructors of constant matrices (functions of integers and options only,
# nothing to differentiate), re-exported as they are: they return SciPy's NumPy arrays.
from scipy.linalg import (dft, hadamard, helmert, hilbert, invhilbert,  # noqa: E402
                          invpascal, pascal)


# -- registry ----------------------------------------------------------------------------------------

def _random(rng, shape, dtype):
    x = rng.standard_normal(shape)
    if np.dtype(dtype).kind == "c":
        x = x + 1j * rng.standard_normal(shape)
    return x.astype(dtype)


def _monic_ish(rng, shape, dtype):
    """Polynomial coefficients with a leading coefficient of modulus ≥ 1.5."""
    a = _random(rng, shape, dtype)
    a[..., 0] = (1.5 + abs(a[..., 0])) * np.where(a[..., 0].real < 0, -1, 1)
    return a


def _separated(rng, shape, dtype):
    """Entries 2k + noise (|noise| ≤ 0.3 in each part), shuffled along the last axis."""
    k = np.arange(shape[-1]) * 2.0
    a = rng.permuted(np.broadcast_to(k, shape), axis=-1) + 0.3 * rng.uniform(-1, 1, shape)
    if np.dtype(dtype).kind == "c":
        a = a + 0.3j * rng.uniform(-1, 1, shape)
    return a.astype(dtype)


def _reference(name, **fixed):
    def ref(*args, **kwargs):
        import scipy.linalg
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            return np.asarray(getattr(scipy.linalg, name)(*args, **kwargs, **fixed))
    ref.__name__ = f"{name}_reference"
    return ref


_DERIVATION = "docs/derivations/special_matrices.md"
_REFS = ("SciPy 1.17 scipy.linalg special matrices (the definitions matched)",
         "Giles 2008 (linear maps: the adjoint is the reverse rule)",
         "Fiedler 2003, A note on companion matrices (the pentadiagonal companion)")

def _rule(name, fun, primitive, *domains, **kw):
    """A Rule of this family: its derivation, SciPy reference and references are shared."""
    return Rule(name=name, fun=fun, primitive=primitive, domains=domains,
                derivation=_DERIVATION, reference=_reference(name), references=_REFS, **kw)


RULES = (
    _rule(
        "block_diag", block_diag, ops._concatenate,
        Domain("square", lambda rng, n, batch, dtype: (
            (_random(rng, batch + (n, n), dtype), _random(rng, (n - 1, n - 1), dtype)), {}),
            "a stack of n×n blocks and one shared (n−1)×(n−1) block"),
        Domain("rectangular", lambda rng, n, batch, dtype: (
            (_random(rng, (n, 2), dtype), _random(rng, batch + (1, n + 1), dtype),
             _random(rng, (n,), dtype)), {}),
            "n×2, a stack of 1×(n+1) and a 1-D block (a 1×n row)"),
    ),
    _rule(
        "hankel", hankel, _hankel,
        Domain("c_and_r", lambda rng, n, batch, dtype: (
            (_random(rng, (n + 1,), dtype), _random(rng, (n,), dtype)), {}),
            "first column (n+1) and last row (n): r[0] unused, its gradient 0"),
        Domain("c_only", lambda rng, n, batch, dtype: ((_random(rng, (n,), dtype),), {}),
               "r = zeros: the upper-left anti-triangular Hankel matrix"),
        batch_shapes=((),),          # SciPy 1.17 ravels stacks (FutureWarning): no batching
    ),
    _rule(
        "khatri_rao", khatri_rao, ops._reshape,
        Domain("general", lambda rng, n, batch, dtype: (
            (_random(rng, batch + (n, 2), dtype), _random(rng, (n + 1, 2), dtype)), {}),
            "a stack of n×2 against one (n+1)×2"),
    ),
    _rule(
        "companion", companion, ops._concatenate,
        Domain("polynomial", lambda rng, n, batch, dtype: (
            (_monic_ish(rng, batch + (n + 1,), dtype),), {}),
            "coefficients (n+1) with |a[0]| ≥ 1.5"),
    ),
    _rule(
        "convolution_matrix", convolution_matrix, _toeplitz_assemble,
        Domain("full", lambda rng, n, batch, dtype: (
            (_random(rng, batch + (n,), dtype),), {"n": n + 1}), "mode='full'"),
        Domain("same", lambda rng, n, batch, dtype: (
            (_random(rng, batch + (n + 1,), dtype),), {"n": n, "mode": "same"}),
            "mode='same', a longer than n (even trim)"),
        Domain("valid", lambda rng, n, batch, dtype: (
            (_random(rng, batch + (n,), dtype),), {"n": n + 2, "mode": "valid"}),
            "mode='valid', a shorter than n"),
    ),
    _rule(
        "diagsvd", diagsvd, ops._embed_diagonal,
        Domain("tall", lambda rng, n, batch, dtype: (
            (_random(rng, batch + (n,), dtype),), {"M": n + 2, "N": n}), "M > N = len(s)"),
        Domain("wide", lambda rng, n, batch, dtype: (
            (_random(rng, batch + (n,), dtype),), {"M": n, "N": n + 1}), "len(s) = M < N"),
    ),
    _rule(
        "leslie", leslie, ops._embed_diagonal,
        Domain("general", lambda rng, n, batch, dtype: (
            (_random(rng, batch + (n,), dtype), _random(rng, (n - 1,), dtype)), {}),
            "a stack of f against one s"),
    ),
    _rule(
        "fiedler", fiedler, ops.abs,
        Domain("distinct", lambda rng, n, batch, dtype: ((_separated(rng, batch + (n + 1,),
                                                                      dtype),), {}),
               "shuffled entries at least about 1.4 apart: |a_i − a_j| ≥ 1.4 off the "
               "diagonal, so |·| is smooth there (its curvature 1/|a_i − a_j| moderate)"),
    ),
    _rule(
        "fiedler_companion", fiedler_companion, ops._embed_diagonal,
        Domain("odd_order", lambda rng, n, batch, dtype: (
            (_monic_ish(rng, batch + (n + 3,), dtype),), {}),
            "coefficients (n+3): order n+2, every diagonal pattern"),
        Domain("even_order", lambda rng, n, batch, dtype: (
            (_monic_ish(rng, batch + (n + 2,), dtype),), {}),
            "coefficients (n+2): order n+1"),
    ),
)
