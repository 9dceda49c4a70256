"""norm, cond, matrix_power, multi_dot and NumPy 2's small linalg helpers.   Derivation: docs/derivations/norms.md

Everything here is a composition of differentiable pieces that already have
rules: the vector norms and the Frobenius norm of ``linalgad.ops`` (``ops.norm``,
whose 2-norm is one primitive with a safe gradient at 0), ``abs``/``sum``/
``max``/``min`` for the 1- and inf-norms, ``svdvals`` for 'nuc', 2 and −2,
``inv`` for cond with p ∉ {None, 2, −2} and for negative powers, ``matmul`` for
products.  The derivatives are those of the parts; what this module decides
is the subgradient at the kinks (docs/derivations/norms.md, section 6):

* |x| at 0: 0 (real), 0 (complex: x/|x| is taken as 0);
* max/min over tied entries (1/inf norms, vector inf-norm): the gradient is
  split equally among the tied entries (ops.max);
* the extreme singular value (ord 2 / −2, cond) inside a cluster of (nearly)
  equal values, |s_i − s_1| ≤ eps^(2/3)·s_1: the average over the cluster,
  U_k V_kᴴ / k, the minimum-norm subgradient, basis-independent (no
  GaugeWarning);
* nuc at zero singular values: svdvals' u_i v_iᴴ (a valid subgradient);
* cond of a singular matrix: inf (like NumPy), with gradient 0 there.
"""

from __future__ import annotations

import operator
import string

import numpy as np

from .. import ops
from ..backend import LinAlgError, kernels_for, namespace_of
from ..registry import Domain, Rule
from ..tape import Tracer
from ..testing import matrices as M
from . import _common as C
from . import _spectral as S
from .inverse import inv as _inv
from .svd import extreme_singular_values, svdvals

__all__ = ["norm", "matrix_norm", "vector_norm", "cond", "matrix_power", "multi_dot",
           "trace", "diagonal", "matrix_transpose", "outer", "vecdot", "cross", "tensordot",
           "matmul", "matrix_rank", "tensorinv", "tensorsolve", "RULES"]


# -- helpers ------------------------------------------------------------------------------------

def _inexact(x):
    """x promoted (differentiably) to an inexact dtype as numpy.linalg.norm does (ints → float64)."""
    v = C.peek(x)
    if v.dtype.kind in "fc":
        return x
    return C.promote(x, np.float64)


def _is_traced(*xs):
    return any(isinstance(x, Tracer) for x in xs)


def _extreme(s, last):
    """s[..., 0] (or s[..., -1]) of descending singular values, averaged over a tied cluster.

    The value is the extreme singular value; the derivative is the mean over the
    values within eps^(2/3) (relative) of it, so a tie gets the minimum-norm
    subgradient U_k V_kᴴ / k and svdvals sees a symmetric loss (no GaugeWarning).
    """
    k = C.peek(s).shape[-1]
    idx = k - 1 if last else 0
    pick = ops.getitem(s, (Ellipsis, idx))
    if k < 2:
        return pick
    # the weights are values the rule computes for itself (under jit: again on every
    # replay, whether there is a tie at all being the decision re-checked)
    w = C.compute(lambda sv: _tie_weights(sv, idx), (s,), decide=lambda w: w is None,
                  name="norm's tie check")
    if w is None:
        return pick
    avg = ops.sum(s * w, axis=-1)
    # value s[idx], derivative of the mean: avg plus the (constant) difference
    return avg + C.compute(lambda p, a: p - a, (pick, avg), name="norm's tie value")


def _tie_weights(sv, idx):
    """Weights 1/k on the k values tied with sv[..., idx] (None when no matrix has a tie)."""
    w, tie = S.tie_weights(sv, idx)
    return w if tie else None


def _restore_axes(r, shape, axes):
    """keepdims for a matrix norm over ``axes`` of ``shape``."""
    return ops.reshape(r, tuple(1 if i in axes else d for i, d in enumerate(shape)))


def _matrix_norm(x, ord, axes, keepdims):
    shape = ops._shape(x)
    ndim = len(shape)
    r_ax, c_ax = axes[0] % ndim, axes[1] % ndim
    if 0 in (shape[r_ax], shape[c_ax]) and ord in (None, "fro", "f", "nuc", 2, 1, np.inf):
        # an empty matrix: every norm that is a maximum or a sum is 0 (NumPy's convention;
        # the minimum-based ones, -2, -1 and -inf, have nothing to take a minimum over)
        return ops.sum(ops.abs(x), axis=(r_ax, c_ax), keepdims=keepdims)
    if 0 in (shape[r_ax], shape[c_ax]) and ord == -2:
        raise ValueError(f"norm: ord=-2 (the smallest singular value) of an empty matrix "
                         f"(shape {shape[r_ax]} x {shape[c_ax]}) is not defined")
    if ord in (None, "fro", "f"):
        return ops.norm(x, None, axis=(r_ax, c_ax), keepdims=keepdims)
    if ord in ("nuc", 2, -2):
        y = ops.moveaxis(x, (r_ax, c_ax), (-2, -1))
        if ord != "nuc" and _is_traced(y):      # the vectors of that one value only
            r = extreme_singular_values(y, ("top",) if ord == 2 else ("bottom",))[0]
        else:
            s = svdvals(y, check_finite=False)
            r = ops.sum(s, axis=-1) if ord == "nuc" else _extreme(s, last=(ord == -2))
    elif ord in (1, -1, np.inf, -np.inf):
        red = ops.max if ord in (1, np.inf) else ops.min
        a = ops.abs(x)
        if ord in (1, -1):        # max over columns of the column sums
            c = c_ax - 1 if c_ax > r_ax else c_ax
            r = red(ops.sum(a, axis=r_ax), axis=c)
        else:                     # max over rows of the row sums
            rr = r_ax - 1 if r_ax > c_ax else r_ax
            r = red(ops.sum(a, axis=c_ax), axis=rr)
    else:
        raise ValueError(f"norm: invalid norm order {ord!r} for matrices")
    return _restore_axes(r, shape, (r_ax, c_ax)) if keepdims else r


def _vector_norm(x, ord, axis, keepdims):
    if isinstance(ord, str):
        raise ValueError(f"norm: invalid norm order {ord!r} for vectors")
    if ord == 0:
        v = C.value(x)
        xp = namespace_of(v)
        return xp.sum(v != 0, axis=axis, keepdims=keepdims).astype(
            np.finfo(v.dtype).dtype)
    return ops.norm(x, ord, axis=(axis,), keepdims=keepdims)


# -- norm, matrix_norm, vector_norm -------------------------------------------------------------

def norm(x, ord=None, axis=None, keepdims=False, check_finite=False):
    r = _norm(x, ord, axis, keepdims, check_finite)
    # one norm of plain input is a NumPy scalar, as numpy.linalg.norm's (not a 0-d array)
    return r[()] if type(r) is np.ndarray and r.ndim == 0 else r


def _norm(x, ord=None, axis=None, keepdims=False, check_finite=False):
    """Matrix or vector norm, differentiable (numpy.linalg.norm, scipy.linalg.norm).

    ``axis`` None: the 2-norm of the flattened x when ord is None, else a
    vector norm of 1-D x or a matrix norm of 2-D x; an int: vector norms
    along it; a 2-tuple: matrix norms over those axes.  Matrix ords: None /
    'fro', 'nuc', 2, −2, 1, −1, inf, −inf; vector ords: any number (0 counts
    nonzeros, no gradient), inf, −inf.  The result is real, in x's precision
    (integers go to float64).  Raises ValueError for an invalid ord or axes,
    as NumPy.  ``check_finite=True`` (SciPy's keyword; its default there,
    NumPy's behaviour here) raises ValueError for infs or NaNs.

    Valid when: x is away from the kinks of the chosen norm (x ≠ 0; for 1/inf
    no tied maximal column/row sums and no zero entries; for 2/−2/nuc distinct
    extreme / nonzero singular values).  At a kink a subgradient is returned:
    ties share the gradient equally (for 2/−2 the cluster average
    U_k V_kᴴ/k, no GaugeWarning), |x| at 0 and x/|x| at 0 count as 0, and
    'nuc' at zero singular values uses svdvals' u_i v_iᴴ.
    """
    x = C.array_arg(x)
    x = _inexact(x)
    if check_finite:
        C.checked("norm", ("a",), (x,), True)
    shape = ops._shape(x)
    ndim = len(shape)
    if axis is None:
        if ord is None:
            r = ops.norm(x, None, axis=tuple(range(ndim)), keepdims=keepdims)
            return r
        if ndim == 1:
            return _vector_norm(x, ord, 0, keepdims)
        if ndim == 2:
            return _matrix_norm(x, ord, (0, 1), keepdims)
        raise ValueError(f"norm: improper number of dimensions to norm: x has shape {shape} "
                         f"and ord={ord!r} with axis=None (needs 1-D or 2-D)")
    if isinstance(axis, (int, np.integer)):
        axis = (int(axis),)
    try:
        axis = tuple(operator.index(a) for a in axis)
    except TypeError:
        raise TypeError(f"norm: 'axis' must be None, an integer or a tuple of integers; "
                        f"got {axis!r}") from None
    for a in axis:
        if not -ndim <= a < ndim:
            raise np.exceptions.AxisError(a, ndim)
    if len(axis) == 1:
        return _vector_norm(x, ord, axis[0], keepdims)
    if len(axis) == 2:
        if axis[0] % ndim == axis[1] % ndim:
            raise ValueError(f"norm: duplicate axes given: {axis}")
        return _matrix_norm(x, ord, axis, keepdims)
    raise ValueError(f"norm: improper number of dimensions to norm: axis={axis}")



norm.__doc__ = _norm.__doc__

def matrix_norm(x, /, *, keepdims=False, ord="fro"):
    """Matrix norm over the last two axes, differentiable (numpy.linalg.matrix_norm, NumPy 2).

    ``norm(x, ord, axis=(-2, -1), keepdims)``; x must be (..., m, n).

    Valid when: as :func:`norm` (subgradients at kinks, documented there).
    """
    x = C.array_arg(x)
    if len(ops._shape(x)) < 2:
        raise ValueError(f"matrix_norm: x must be at least 2-D; got shape {ops._shape(x)}")
    return norm(x, ord=ord, axis=(-2, -1), keepdims=keepdims)


def vector_norm(x, /, *, axis=None, keepdims=False, ord=2):
    """Vector norm, differentiable (numpy.linalg.vector_norm, NumPy 2).

    ``axis`` None flattens x; a tuple of axes is treated as one flattened axis.

    Valid when: x is away from the kinks of the chosen ord (x ≠ 0, no zero
    entries for ord ≤ 1, no ties for ±inf); subgradients there as in :func:`norm`.
    """
    x = C.array_arg(x)
    x = _inexact(x)
    shape = ops._shape(x)
    ndim = len(shape)
    if axis is None:
        r = _vector_norm(ops.reshape(x, (-1,)), ord, 0, False)
        return ops.reshape(r, (1,) * ndim) if keepdims else r
    if isinstance(axis, (int, np.integer)):
        return _vector_norm(x, ord, int(axis), keepdims)
    axis = tuple(a % ndim for a in axis)
    rest = tuple(i for i in range(ndim) if i not in axis)
    y = ops.transpose(x, rest + axis)
    y = ops.reshape(y, tuple(shape[i] for i in rest) + (-1,))
    r = _vector_norm(y, ord, -1, False)
    return _restore_axes(r, shape, axis) if keepdims else r


# -- cond ----------------------------------------------------------------------------------------

def _singular_mask(X):
    """Concrete bool mask (stack shape) of the matrices whose LU has a zero pivot."""
    xv = C.value(X)
    K = kernels_for(xv)
    n = xv.shape[-1]
    flat = xv.reshape((-1, n, n))
    bad = np.zeros(flat.shape[0], dtype=bool)
    for i in range(flat.shape[0]):
        try:
            K.inv(flat[i], op="cond")
        except LinAlgError:
            bad[i] = True
    return bad.reshape(xv.shape[:-2])


def cond(x, p=None):
    """Condition number, differentiable (numpy.linalg.cond).

    p None / 2: s_max / s_min; −2: s_min / s_max (x may be (..., m, n));
    'fro', 'nuc', 1, −1, inf, −inf: norm(x, p) · norm(inv(x), p) (x square,
    else LinAlgError).  Real result in x's precision.  A singular matrix has
    cond inf (like NumPy, which maps the NaN of 0/0 to inf).

    Valid when: x is nonsingular and the norm used is differentiable there
    (distinct extreme singular values for p None/±2; see :func:`norm`).  At a
    tied extreme singular value the cluster average is the subgradient (as for
    norm ord 2); at a singular matrix the value is inf and the gradient is 0
    (not NaN).
    """
    x = C.array_arg(x)
    v = C.peek(x)
    if v.ndim < 2:
        raise LinAlgError(f"cond: {v.ndim}-dimensional array given; x must be at least "
                          "two-dimensional")
    if v.size == 0:
        if v.shape[-1] and v.shape[-2]:          # an empty stack: NumPy's empty result
            return np.zeros(v.shape[:-2], dtype=np.abs(np.zeros(0, v.dtype)).dtype
                            if v.dtype.kind in "fc" else np.float64)
        raise LinAlgError("cond: cond is not defined on empty arrays")
    X = C.promote(x, C.result_dtype("cond", v))
    if p is None or p == 2 or p == -2:
        if _is_traced(X):                       # the vectors of the two values only
            hi, lo = extreme_singular_values(X, ("top", "bottom"))
        else:
            s = svdvals(X, check_finite=False)
            hi, lo = _extreme(s, last=False), _extreme(s, last=True)
        num, den = (lo, hi) if p == -2 else (hi, lo)
        zero = C.compute(lambda d: d == 0, (den,), decide=lambda z: bool(z.any()),
                         name="cond's singular check")
        if not bool(zero.any()):
            return num / den
        return ops.where(zero, np.inf, num / ops.where(zero, 1, den))
    C.square_matrix("cond", X, "x")
    if p not in ("fro", "f", "nuc", 1, -1, np.inf, -np.inf):
        raise ValueError(f"cond: invalid norm order {p!r}")
    try:
        Xi = _inv(X, check_finite=False)
        bad = None
    except LinAlgError:
        bad = _singular_mask(X)
        n = v.shape[-1]
        eye = C.eye_like(n, C.value(X).dtype, C.value(X))
        Xi = _inv(ops.where(bad[..., None, None], eye, X), check_finite=False)
    r = norm(X, p, axis=(-2, -1)) * norm(Xi, p, axis=(-2, -1))
    if bad is not None:
        r = ops.where(bad, np.inf, r)
    return r


# -- matrix_power --------------------------------------------------------------------------------

def matrix_power(a, n):
    """a raised to the integer power n, differentiable (numpy.linalg.matrix_power).

    a is (..., m, m); n = 0 gives the identity (in a's dtype, derivative 0),
    n < 0 the power of inv(a) (LinAlgError if a is singular); otherwise
    repeated squaring with differentiable products (⌊log₂ n⌋ squarings and
    popcount(n) − 1 further products, like NumPy).  Raises TypeError for a
    non-integer n, LinAlgError for a non-square a.

    Valid when: always for n ≥ 0 (a polynomial); for n < 0, a nonsingular
    (the gradient grows like cond(a)^(|n|+1)).
    """
    a = C.array_arg(a)
    v = C.peek(a)
    if v.ndim < 2 or v.shape[-1] != v.shape[-2]:
        raise LinAlgError(f"matrix_power: a must be a square matrix or a stack of square "
                          f"matrices (..., m, m); got shape {v.shape}")
    try:
        n = operator.index(n)
    except TypeError as e:
        raise TypeError(f"matrix_power: exponent must be an integer; got {n!r}") from e
    if n == 0:
        xp = namespace_of(v)
        eye = xp.broadcast_to(xp.eye(v.shape[-1], dtype=v.dtype), v.shape).copy()
        if not _is_traced(a):
            return eye
        return ops.where(xp.ones((1, 1), dtype=bool), eye, a)   # identity, derivative 0
    if n < 0:
        a = _inv(a)
        n = -n
    if n == 1:
        return a if _is_traced(a) else C.value(a).copy()
    if n == 2:
        return ops.matmul(a, a)
    if n == 3:
        return ops.matmul(ops.matmul(a, a), a)
    z = result = None
    while n > 0:
        z = a if z is None else ops.matmul(z, z)
        n, bit = divmod(n, 2)
        if bit:
            result = z if result is None else ops.matmul(result, z)
    return result


# -- multi_dot -----------------------------------------------------------------------------------

def _chain_order(shapes):
    """NumPy's O(k³) matrix-chain order: s[i, j] = the split of arrays[i..j]."""
    k = len(shapes)
    p = [shapes[0][0]] + [s[1] for s in shapes]
    m = np.zeros((k, k), dtype=float)
    s = np.empty((k, k), dtype=np.intp)
    for length in range(1, k):
        for i in range(k - length):
            j = i + length
            m[i, j] = np.inf
            for t in range(i, j):
                q = m[i, t] + m[t + 1, j] + p[i] * p[t + 1] * p[j + 1]
                if q < m[i, j]:
                    m[i, j] = q
                    s[i, j] = t
    return s


def _chain(arrays, s, i, j):
    if i == j:
        return arrays[i]
    return ops.matmul(_chain(arrays, s, i, s[i, j]), _chain(arrays, s, s[i, j] + 1, j))


def multi_dot(arrays, *, out=None):
    """The product of two or more matrices in the cheapest order, differentiable (numpy.linalg.multi_dot).

    The first array may be 1-D (a row vector) and the last 1-D (a column
    vector); the others must be 2-D (LinAlgError otherwise, as NumPy).  The
    parenthesisation is NumPy's (cost formula for three, the O(k³) chain
    order beyond), so the result matches numpy's to rounding.  ``out`` is
    filled and returned for plain inputs; with traced inputs it is an error
    (a traced result cannot be written into an array).

    Valid when: always (a multilinear map).
    """
    arrays = [C.array_arg(a) for a in arrays]
    k = len(arrays)
    if k < 2:
        raise ValueError("multi_dot: expecting at least two arrays")
    if k == 2:
        r = ops.dot(arrays[0], arrays[1])
        return _fill(r, out, arrays)
    shapes = [ops._shape(a) for a in arrays]
    first, last = len(shapes[0]) == 1, len(shapes[-1]) == 1
    if first:
        arrays[0] = ops.reshape(arrays[0], (1, shapes[0][0]))
    if last:
        arrays[-1] = ops.reshape(arrays[-1], (shapes[-1][0], 1))
    for i, a in enumerate(arrays):
        if len(ops._shape(a)) != 2:
            raise LinAlgError(f"multi_dot: array {i} is {len(ops._shape(a))}-dimensional; "
                              "arrays must be two-dimensional (the first and last may be 1-D)")
    shapes = [ops._shape(a) for a in arrays]
    for i in range(k - 1):
        if shapes[i][1] != shapes[i + 1][0]:
            raise ValueError(f"multi_dot: shapes {shapes[i]} and {shapes[i + 1]} (arrays {i} "
                             f"and {i + 1}) are not aligned")
    if k == 3:
        (a0, a1), (_, b1), (_, c1) = shapes
        cost1 = a0 * b1 * (a1 + c1)          # (AB)C
        cost2 = a1 * c1 * (a0 + b1)          # A(BC)
        A, B, Cm = arrays
        r = ops.matmul(ops.matmul(A, B), Cm) if cost1 < cost2 else \
            ops.matmul(A, ops.matmul(B, Cm))
    else:
        r = _chain(arrays, _chain_order(shapes), 0, k - 1)
    if first and last:
        r = ops.reshape(r, ())
    elif first:
        r = ops.reshape(r, ops._shape(r)[-1:])
    elif last:
        r = ops.reshape(r, ops._shape(r)[:1])
    return _fill(r, out, arrays)


def _fill(r, out, arrays):
    if out is None:
        return r
    if _is_traced(r, *arrays):
        raise TypeError("multi_dot: out= cannot hold a traced (differentiated) result; "
                        "drop out= inside differentiated code")
    out[...] = r
    return out


# -- NumPy 2 helpers (thin wrappers over ops, differentiable through them) ----------------------

def trace(x, /, *, offset=0, dtype=None):
    """Sum of the diagonals of the last two axes (numpy.linalg.trace, NumPy 2), differentiable.

    Valid when: always (linear).
    """
    x = C.array_arg(x)
    if len(ops._shape(x)) < 2:
        raise ValueError(f"trace: x must be at least 2-D; got shape {ops._shape(x)}")
    r = ops.sum(ops.diagonal(x, offset, -2, -1), axis=-1)
    return ops.astype(r, dtype) if dtype is not None else r


def diagonal(x, /, *, offset=0):
    """Diagonals of the last two axes (numpy.linalg.diagonal, NumPy 2), differentiable.

    Valid when: always (linear).
    """
    x = C.array_arg(x)
    if len(ops._shape(x)) < 2:
        raise ValueError(f"diagonal: x must be at least 2-D; got shape {ops._shape(x)}")
    return ops.diagonal(x, offset, -2, -1)


def matrix_transpose(x, /):
    """Swap the last two axes (numpy.linalg.matrix_transpose), differentiable.

    Valid when: always (linear).
    """
    x = C.array_arg(x)
    if len(ops._shape(x)) < 2:
        raise ValueError(f"matrix_transpose: x must be at least 2-D; got shape "
                         f"{ops._shape(x)}")
    return ops.mT(x)


def outer(x1, x2, /):
    """Outer product of two 1-D vectors (numpy.linalg.outer, NumPy 2), differentiable.

    Valid when: always (bilinear).
    """
    x1, x2 = C.array_arg(x1), C.array_arg(x2)
    if len(ops._shape(x1)) != 1 or len(ops._shape(x2)) != 1:
        raise ValueError(f"outer: input arrays must be one-dimensional; got shapes "
                         f"{ops._shape(x1)} and {ops._shape(x2)}")
    return ops.outer(x1, x2)


def vecdot(x1, x2, /, *, axis=-1):
    """Σ conj(x1) x2 along ``axis``, broadcasting (numpy.linalg.vecdot), differentiable.

    As NumPy's: ``axis`` names the vector axis of each operand before the others are
    broadcast (x1 of shape (3,) against x2 of (3, 4) with axis=0 is x1 @ x2), and the two
    vector axes must have the same length (they are not broadcast).

    Valid when: always (sesquilinear).
    """
    x1, x2 = C.array_arg(x1), C.array_arg(x2)
    s1, s2 = ops._shape(x1), ops._shape(x2)
    if not s1 or not s2:
        raise ValueError("vecdot: the inputs must be at least one-dimensional")
    for s in (s1, s2):
        if not -len(s) <= axis < len(s):
            raise np.exceptions.AxisError(axis, len(s))
    if s1[axis] != s2[axis]:
        raise ValueError(f"vecdot: the vector axes differ in length: {s1[axis]} (shape {s1}) "
                         f"and {s2[axis]} (shape {s2}) along axis {axis}")
    if axis % len(s1) != len(s1) - 1:
        x1 = ops.moveaxis(x1, axis, -1)
    if axis % len(s2) != len(s2) - 1:
        x2 = ops.moveaxis(x2, axis, -1)
    return ops.sum(ops._conj(x1) * x2, axis=-1)


def cross(x1, x2, /, *, axis=-1):
    """Cross product of 3-vectors along ``axis`` (numpy.linalg.cross), differentiable.

    Valid when: always (bilinear).
    """
    x1, x2 = C.array_arg(x1), C.array_arg(x2)
    s1, s2 = ops._shape(x1), ops._shape(x2)
    if s1[axis] != 3 or s2[axis] != 3:
        raise ValueError(f"cross: both inputs must be 3-dimensional vectors along axis "
                         f"{axis}; got shapes {s1} and {s2}")
    a = ops.moveaxis(x1, axis, -1)
    b = ops.moveaxis(x2, axis, -1)
    g = lambda v, i: ops.getitem(v, (Ellipsis, i))          # noqa: E731
    c = ops.stack([g(a, 1) * g(b, 2) - g(a, 2) * g(b, 1),
                   g(a, 2) * g(b, 0) - g(a, 0) * g(b, 2),
                   g(a, 0) * g(b, 1) - g(a, 1) * g(b, 0)], axis=-1)
    return ops.moveaxis(c, -1, axis) if axis not in (-1, len(ops._shape(c)) - 1) else c


def tensordot(x1, x2, /, *, axes=2):
    """Sum products over the given axes (numpy.linalg.tensordot), differentiable (einsum).

    Valid when: always (bilinear).
    """
    x1, x2 = C.array_arg(x1), C.array_arg(x2)
    na, nb = len(ops._shape(x1)), len(ops._shape(x2))
    if isinstance(axes, (int, np.integer)):
        ax_a, ax_b = list(range(na - axes, na)), list(range(axes))
    else:
        ax_a, ax_b = axes
        ax_a = [ax_a] if isinstance(ax_a, (int, np.integer)) else list(ax_a)
        ax_b = [ax_b] if isinstance(ax_b, (int, np.integer)) else list(ax_b)
    ax_a = [a % na for a in ax_a]
    ax_b = [b % nb for b in ax_b]
    if len(ax_a) != len(ax_b) or any(ops._shape(x1)[a] != ops._shape(x2)[b]
                                     for a, b in zip(ax_a, ax_b)):
        raise ValueError(f"tensordot: shape mismatch for sum: {ops._shape(x1)} axes {ax_a}, "
                         f"{ops._shape(x2)} axes {ax_b}")
    letters = iter(string.ascii_letters)
    sa = [next(letters) for _ in range(na)]
    sb = [next(letters) for _ in range(nb)]
    for a, b in zip(ax_a, ax_b):
        sb[b] = sa[a]
    out = [sa[i] for i in range(na) if i not in ax_a] + [sb[j] for j in range(nb)
                                                          if j not in ax_b]
    r = ops.einsum(f"{''.join(sa)},{''.join(sb)}->{''.join(out)}", x1, x2)
    return np.asarray(r) if isinstance(r, np.generic) else r     # 0-d array, as NumPy


def matmul(x1, x2, /):
    """Matrix product with NumPy broadcasting (numpy.linalg.matmul), differentiable.

    Valid when: always (bilinear).
    """
    x1, x2 = C.array_arg(x1), C.array_arg(x2)
    return ops.matmul(x1, x2)


def matrix_rank(A, tol=None, hermitian=False, *, rtol=None):
    """Rank by counting singular values above a tolerance (numpy.linalg.matrix_rank).

    Integer valued, so there is no gradient; it accepts traced values (their
    plain value is used) so code that branches on a rank works inside
    differentiated functions.  ``hermitian=True`` counts |eigenvalues| from
    eigvalsh (the lower triangle) instead of singular values, as NumPy.

    Valid when: always (piecewise constant: its derivative is 0 where defined).
    """
    A = C.array_arg(A)
    if rtol is not None and tol is not None:
        raise ValueError("matrix_rank: `tol` and `rtol` can't be both set.")
    v = C.value(A)
    xp = namespace_of(v)
    if v.ndim < 2:
        return int(not bool((v == 0).all()))
    if v.dtype.kind not in "fc":
        v = v.astype(np.float64)
    K = kernels_for(v)
    if hermitian:
        if v.shape[-1] != v.shape[-2]:
            raise LinAlgError(f"matrix_rank: hermitian=True needs square matrices; got shape "
                              f"{v.shape}")
        s = xp.abs(K.eigvalsh(v, lower=True, op="matrix_rank"))
    else:
        s = K.svd(v, full_matrices=False, compute_uv=False, op="matrix_rank")
    if s.shape[-1] == 0:                         # an empty matrix: rank 0 (NumPy's)
        return xp.zeros(s.shape[:-1], dtype=np.intp) if s.ndim > 1 else 0
    if tol is None:
        if rtol is None:
            rtol = max(v.shape[-2:]) * np.finfo(s.dtype).eps
        else:
            rtol = xp.asarray(rtol)[..., None]
        tol = s.max(axis=-1, keepdims=True) * rtol
    else:
        tol = xp.asarray(tol)[..., None]
    return xp.count_nonzero(s > tol, axis=-1)


def tensorinv(a, ind=2):
    """Inverse of a tensor w.r.t. the tensordot over its first ``ind`` axes (numpy.linalg.tensorinv).

    Valid when: the reshaped square matrix is nonsingular (as :func:`inv`).
    """
    a = C.array_arg(a)
    shape = ops._shape(a)
    if ind <= 0:
        raise ValueError("tensorinv: ind must be > 0")
    inv_shape = shape[ind:] + shape[:ind]
    prod = int(np.prod(shape[ind:]))
    return ops.reshape(_inv(ops.reshape(a, (prod, -1))), inv_shape)


def tensorsolve(a, b, axes=None):
    """Solve tensordot(a, x, axes=x.ndim) = b for x (numpy.linalg.tensorsolve), differentiable.

    Valid when: the reshaped square matrix is nonsingular (as solve).
    """
    a, b = C.array_arg(a), C.array_arg(b)
    from .solve import solve
    an = len(ops._shape(a))
    if axes is not None:
        allaxes = list(range(an))
        for k in axes:
            allaxes.remove(k)
            allaxes.insert(an, k)
        a = ops.transpose(a, tuple(allaxes))
    bshape = ops._shape(b)
    oldshape = ops._shape(a)[-(an - len(bshape)):]
    prod = int(np.prod(oldshape))
    if int(np.prod(ops._shape(a))) != prod ** 2:
        raise LinAlgError("tensorsolve: input arrays must satisfy the requirement "
                          "prod(a.shape[b.ndim:]) == prod(a.shape[:b.ndim])")
    x = solve(ops.reshape(a, (prod, prod)), ops.reshape(b, (prod,)))
    return ops.reshape(x, oldshape)


# -- registry -----------------------------------------------------------------------------------

def _separated(rng, batch, m, n, dtype):
    """Entries with |x| ≥ 0.5 and row and column sums of |x| well apart (no ties, no zeros)."""
    rows = rng.permutation(np.linspace(1.0, 3.0, m))   # drawn first: x must not share the
    cols = rng.permutation(np.linspace(1.0, 3.0, n))   # checker's random direction (same seed)
    g = rng.standard_normal(batch + (m, n))
    if np.dtype(dtype).kind == "c":
        g = g + 1j * rng.standard_normal(batch + (m, n))
    mag = np.abs(g)
    x = g / mag * (0.5 + 0.5 * mag / mag.max())
    return np.ascontiguousarray((x * rows[:, None] * cols[None, :]).astype(dtype))


def _spread_sv(rng, batch, m, n, dtype):
    """U diag(s) Vᴴ with well-separated singular values in [1, 3]."""
    k = min(m, n)
    dtype = np.dtype(dtype)
    U = M._orthonormal_columns(rng, batch, m, k, dtype)
    V = M._orthonormal_columns(rng, batch, n, k, dtype)
    s = np.linspace(3.0, 1.0, k)
    return np.ascontiguousarray(((U * s) @ np.conj(np.swapaxes(V, -1, -2))).astype(dtype))


def _norm_domain(ord, kind, m=3, n=3, **kw):
    def make(rng, _n, batch, dtype):
        if kind == "vector":
            x = _separated(rng, batch, 1, n, dtype)[..., 0, :]
            return (x,), dict(ord=ord, axis=-1, **kw)
        x = (_spread_sv if ord in (2, -2, "nuc") else _separated)(rng, batch, m, n, dtype)
        return (x,), dict(ord=ord, axis=(-2, -1), **kw)
    return make


def _mat_domain(make_x, **kw):
    def make(rng, n, batch, dtype):
        return (make_x(rng, batch, 3, 3, dtype),), dict(kw)
    return make


def _chain_domain(shapes):
    def make(rng, _n, batch, dtype):
        arrs = []
        for s in shapes:
            g = rng.standard_normal(s)
            if np.dtype(dtype).kind == "c":
                g = g + 1j * rng.standard_normal(s)
            arrs.append((g / np.sqrt(s[-1])).astype(dtype))
        return tuple(arrs), {}
    return make


def _multi_dot_fun(*arrays):
    return multi_dot(arrays)


_multi_dot_fun.__doc__ = multi_dot.__doc__


def _multi_dot_reference(*arrays):
    return np.linalg.multi_dot(arrays)


_MATRIX_ORDS = (("fro", "fro"), ("nuc", "nuc"), ("2", 2), ("-2", -2), ("1", 1), ("-1", -1),
                ("inf", np.inf), ("-inf", -np.inf))
_VECTOR_ORDS = (("2", 2), ("1", 1), ("inf", np.inf), ("-inf", -np.inf), ("3", 3))

RULES = (
    Rule(
        name="norm",
        fun=norm,
        primitive=ops._norm2,
        domains=tuple(Domain(f"matrix-{name}", _norm_domain(o, "matrix"),
                             f"matrix norm ord={name} over axes (-2, -1)")
                      for name, o in _MATRIX_ORDS)
        + (Domain("matrix-fro-tall-keepdims", _norm_domain("fro", "matrix", 4, 3, keepdims=True),
                  "4×3 Frobenius, keepdims"),
           Domain("matrix-2-wide", _norm_domain(2, "matrix", 2, 4), "2×4 spectral norm"))
        + tuple(Domain(f"vector-{name}", _norm_domain(o, "vector"),
                       f"vector norm ord={name} along the last axis")
                for name, o in _VECTOR_ORDS),
        derivation="docs/derivations/norms.md",
        reference=lambda x, **kw: np.linalg.norm(x, **kw),
        references=("Watson 1992", "Magnus & Neudecker 2019"),
    ),
    Rule(
        name="matrix_norm",
        fun=matrix_norm,
        primitive=ops._norm2,
        domains=(Domain("fro", _mat_domain(_separated, ord="fro"), "Frobenius"),
                 Domain("nuc", _mat_domain(_spread_sv, ord="nuc"), "nuclear"),
                 Domain("inf", _mat_domain(_separated, ord=np.inf), "max row sum")),
        derivation="docs/derivations/norms.md",
        reference=lambda x, **kw: np.linalg.matrix_norm(x, **kw),
    ),
    Rule(
        name="vector_norm",
        fun=vector_norm,
        primitive=ops._norm2,
        domains=(Domain("all", _mat_domain(_separated), "2-norm of everything"),
                 Domain("axes-1", _mat_domain(_separated, axis=(-2, -1), ord=1),
                        "1-norm over the last two axes flattened"),
                 Domain("axis-inf", _mat_domain(_separated, axis=-2, ord=np.inf),
                        "max |x| along axis -2")),
        derivation="docs/derivations/norms.md",
        reference=lambda x, **kw: np.linalg.vector_norm(x, **kw),
    ),
    Rule(
        name="cond",
        fun=cond,
        primitive=ops._norm2,
        domains=(Domain("p-None", _mat_domain(_spread_sv), "s_max/s_min"),
                 Domain("p--2", _mat_domain(_spread_sv, p=-2), "s_min/s_max"),
                 Domain("p-fro", _mat_domain(_spread_sv, p="fro"), "‖x‖_F ‖x⁻¹‖_F"),
                 Domain("p-1", _mat_domain(_separated, p=1), "‖x‖₁ ‖x⁻¹‖₁"),
                 Domain("tall-None", lambda rng, n, b, dt: ((_spread_sv(rng, b, 4, 3, dt),), {}),
                        "4×3, s_max/s_min")),
        derivation="docs/derivations/norms.md",
        reference=lambda x, **kw: np.linalg.cond(x, **kw),
    ),
    Rule(
        name="matrix_power",
        fun=matrix_power,
        primitive=ops._matmul,
        domains=tuple(Domain(f"n={k}", _mat_domain(
            lambda rng, b, m, n, dt: (M.random_general(rng, 3, b, dt, cond=4.0) / 2).astype(dt),
            n=k), f"a^{k}") for k in (3, 5, -2, 0, 1)),
        derivation="docs/derivations/norms.md",
        reference=lambda a, n: np.linalg.matrix_power(a, n),
    ),
    Rule(
        name="multi_dot",
        fun=_multi_dot_fun,
        primitive=ops._matmul,
        domains=(Domain("three", _chain_domain([(3, 5), (5, 2), (2, 4)]), "3×5 · 5×2 · 2×4"),
                 Domain("four-vector-ends", _chain_domain([(3,), (3, 4), (4, 2), (2,)]),
                        "1-D · 3×4 · 4×2 · 1-D"),
                 Domain("four", _chain_domain([(2, 6), (6, 3), (3, 5), (5, 2)]),
                        "chain order of four")),
        derivation="docs/derivations/norms.md",
        reference=_multi_dot_reference,
        batch_shapes=((),),
    ),
)
