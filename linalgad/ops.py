"""Differentiable array operations for writing losses, with NumPy broadcasting.

Each operation is a :class:`~linalgad.tape.Primitive` with a kernel (a NumPy
ufunc or function, which CuPy arrays dispatch to CuPy through NumPy's
protocols), a VJP and a JVP.  Operations that are compositions of others
(``mean``, ``stack``, ``outer``, ``trace``, ``norm`` ...) are plain functions,
differentiable because their parts are.

Complex convention (used by every rule): for a real loss L of a complex X the
cotangent is X̄ = ∂L/∂Re X + i ∂L/∂Im X, so dL = Re <X̄, dX> with
<A, B> = sum(conj(A) * B).  A holomorphic y = f(x) therefore pulls back as
x̄ = conj(f'(x)) ȳ, and the cotangent of a real input is the real part.

Cotangents are "fitted" to their input: summed over broadcast axes and made
real when the input is real (:func:`fit`).
"""

from __future__ import annotations

import builtins as _builtins
import string

import numpy as np

from ._cache import ArrayCache
from .tape import JitTracer, Primitive, ReverseTracer, Tracer, compute, peek

__all__ = [
    "add", "subtract", "multiply", "divide", "true_divide", "power", "negative",
    "positive", "matmul", "abs", "absolute", "exp", "expm1", "log", "log1p",
    "sqrt", "square", "sin", "cos", "tan", "tanh", "sinh", "cosh", "arcsin", "arccos", "sign",
    "sum", "mean", "max", "min", "amax", "amin", "maximum", "minimum", "where",
    "reshape", "ravel", "transpose", "swapaxes", "moveaxis", "matrix_transpose",
    "mT", "mH", "expand_dims", "squeeze", "broadcast_to", "getitem", "diagonal",
    "diag", "trace", "tril", "triu", "concatenate", "stack", "real", "imag",
    "conj", "conjugate", "outer", "dot", "vdot", "inner", "einsum", "norm",
    "zeros_like", "ones_like", "astype", "fit", "unbroadcast", "asarray_value",
    "permute_rows", "tri_matmul", "split_matmul",
]


# -- helpers ------------------------------------------------------------------

# sum, max, min and abs are redefined below as differentiable ops
builtins_max = _builtins.max
min_ = _builtins.min
_ndarray = np.ndarray


def _value(x):
    """The plain array inside any number of tracers, for its values.  (A recording for
    linalgad.jit that reads a value this way is not replayed: use _peek for the shape,
    dtype or type alone.)"""
    while isinstance(x, Tracer):
        if x.__class__ is JitTracer:
            x._trace.escape("a traced value was read into Python")
        x = x.value
    return x


_peek = peek


def asarray_value(x):
    return _value(x)


def _is_complex(x):
    dt = getattr(x, "dtype", None)
    if dt is None:
        return isinstance(x, complex)
    return dt.kind == "c"


def _shape(x):
    s = getattr(x, "shape", None)
    return np.shape(x) if s is None else s        # a list has a shape too (dot(list, list))


def unbroadcast(g, shape):
    """Sum g over the axes that broadcasting added to reach ``shape``."""
    gshape = _shape(g)
    if gshape == shape:
        return g
    lead = len(gshape) - len(shape)
    axes = tuple(range(lead)) + tuple(
        lead + i for i, s in enumerate(shape) if s == 1 and gshape[lead + i] != 1)
    if axes:
        g = sum(g, axis=axes, keepdims=True)
    if lead:
        g = reshape(g, shape)
    return g


def fit(g, x):
    """Shape g like x (un-broadcast), real if x is real, in x's precision.

    A float32 input keeps float32 cotangents even when it met float64
    constants on the way (NumPy promotes the forward pass; the gradient of
    the input is still the input's type, as in JAX and PyTorch).
    """
    if type(g) is _ndarray and (type(x) is _ndarray or isinstance(x, np.generic)) and \
            g.shape == x.shape and g.dtype == x.dtype:
        return g              # the common case, decided without further calls
    if g is None:
        return None
    if isinstance(g, np.generic) and (type(x) is _ndarray or type(x) is type(g)) and \
            x.shape == () and g.dtype == x.dtype:
        return g              # a NumPy scalar for a 0-d array (or scalar) of its dtype
    if _is_complex(g) and not _is_complex(x):
        g = real(g)
    g = unbroadcast(g, _shape(x))
    xd = getattr(_peek(x), "dtype", None)
    if xd is not None and xd.kind in "fc" and np.result_type(_peek(g)) != xd:
        g = astype(g, xd)
    return g


def zeros_like(x, dtype=None):
    """A plain (never traced) zero array shaped like x."""
    v = _peek(x)
    if v.__class__ is _ndarray and dtype is None and v.flags.c_contiguous:
        return np.zeros(v.shape, v.dtype)      # a quarter of zeros_like's cost, same array
    return _xp(v).zeros_like(v, dtype=dtype)


def ones_like(x, dtype=None):
    """A plain (never traced) array of ones shaped like x."""
    v = _peek(x)
    return _xp(v).ones(v.shape, dtype=dtype or v.dtype)


def _xp(v):
    if type(v) is np.ndarray or np.isscalar(v):
        return np
    from .backend import namespace_of
    return namespace_of(v)


def _conj(x):
    """conj that is free for real values (and for Python scalars)."""
    return conj(x) if _is_complex(x) else x


def _prim(name, impl, vjp, jvp, **kw):
    return Primitive(name, impl, vjp, jvp, **kw)


# What a VJP reads besides its cotangent (Primitive's vjp_reads): nothing but shapes and
# dtypes (the linear maps), or the other operand of a product.
def _reads_nothing(needs):
    return ()


def _reads_other(needs):
    return tuple(1 - i for i, n in enumerate(needs) if n)


# -- elementwise binary -----------------------------------------------------------

def _add_vjp(g, needs, out, res, x, y):
    return (fit(g, x) if needs[0] else None, fit(g, y) if needs[1] else None)


def _tangent_like(r, out):
    """r broadcast to out's shape and cast to out's dtype.

    The tangent of one operand alone can be narrower than the output: real when a
    complex constant joins it (x + 1j), so it is widened to the output's dtype.
    """
    if _shape(r) != _shape(out):
        r = broadcast_to(r, _shape(out))
    dt = np.result_type(_peek(out))
    if np.result_type(_peek(r)) != dt:
        r = astype(r, dt)
    return r


def _add_jvp(t, out, res, x, y):
    tx, ty = t
    if tx is None:
        return _tangent_like(ty, out)
    if ty is None:
        return _tangent_like(tx, out)
    return _tangent_like(tx + ty, out)


def _sub_vjp(g, needs, out, res, x, y):
    return (fit(g, x) if needs[0] else None, fit(-g, y) if needs[1] else None)


def _sub_jvp(t, out, res, x, y):
    tx, ty = t
    if ty is None:
        return _add_jvp((tx, None), out, res, x, y)
    return _add_jvp((tx, -ty), out, res, x, y)


def _mul_vjp(g, needs, out, res, x, y):
    return (fit(g * _conj(y), x) if needs[0] else None,
            fit(g * _conj(x), y) if needs[1] else None)


def _mul_jvp(t, out, res, x, y):
    tx, ty = t
    if ty is None:
        return tx * y
    if tx is None:
        return x * ty
    return tx * y + x * ty


def _div_vjp(g, needs, out, res, x, y):
    gy = g / _conj(y)
    return (fit(gy, x) if needs[0] else None,
            fit(-gy * _conj(out), y) if needs[1] else None)


def _div_jvp(t, out, res, x, y):
    tx, ty = t
    if ty is None:
        return tx / y
    if tx is None:
        return -ty * out / y
    return (tx - ty * out) / y


def _safe_log(x):
    """log(x) with 0 where x == 0 (the limit that makes d(x^y)/dy finite)."""
    v = _value(x)
    if isinstance(v, (int, float, complex)):
        # a Python scalar stays a Python scalar: an np.float64 would promote float32 results
        return 0.0 if v == 0 else np.log(v).item()
    zero = v == 0
    if not np.any(zero):
        return log(x)
    return where(zero, 0.0, log(where(zero, 1.0, x)))


def _pow_vjp(g, needs, out, res, x, y):
    gx = gy = None
    if needs[0]:
        gx = fit(g * _conj(y * power(x, y - 1)), x)
    if needs[1]:
        gy = fit(g * _conj(out * _safe_log(x)), y)
    return gx, gy


def _pow_jvp(t, out, res, x, y):
    tx, ty = t
    r = None
    if tx is not None:
        r = tx * (y * power(x, y - 1))
    if ty is not None:
        d = ty * (out * _safe_log(x))
        r = d if r is None else r + d
    return r


def _weight_dtype(*values):
    """The real floating dtype of a result computed from ``values`` (float64 otherwise).

    Constant weights (ties, selections) are made in this dtype so that they do not
    promote float32 cotangents and tangents to float64.
    """
    dt = np.result_type(*values)
    return np.finfo(dt).dtype if dt.kind in "fc" else np.dtype(np.float64)


def _tie_weight(vx, vy, first_wins):
    """Weight of x in max/min(x, y): 1 where x wins, 0.5 at ties, 0 where y wins."""
    wx = np.where(first_wins, 1.0, np.where(vx == vy, 0.5, 0.0))
    return wx.astype(_weight_dtype(vx, vy))


def _max_vjp(g, needs, out, res, x, y):
    # ties split the gradient evenly (the symmetric subgradient)
    vx, vy = _value(x), _value(y)
    wx = _tie_weight(vx, vy, vx > vy)
    return (fit(g * wx, x) if needs[0] else None,
            fit(g * (1.0 - wx), y) if needs[1] else None)


def _min_vjp(g, needs, out, res, x, y):
    vx, vy = _value(x), _value(y)
    wx = _tie_weight(vx, vy, vx < vy)
    return (fit(g * wx, x) if needs[0] else None,
            fit(g * (1.0 - wx), y) if needs[1] else None)


def _max_jvp(t, out, res, x, y):
    vx, vy = _value(x), _value(y)
    return _blend_tangents(t, _tie_weight(vx, vy, vx > vy), out)


def _min_jvp(t, out, res, x, y):
    vx, vy = _value(x), _value(y)
    return _blend_tangents(t, _tie_weight(vx, vy, vx < vy), out)


def _blend_tangents(t, wx, out):
    tx, ty = t
    r = None
    if tx is not None:
        r = tx * wx
    if ty is not None:
        d = ty * (1.0 - wx)
        r = d if r is None else r + d
    return broadcast_to(r, _shape(out)) if _shape(r) != _shape(out) else r


add = _prim("add", np.add, _add_vjp, _add_jvp,
    vjp_reads=_reads_nothing)


def _lincomb_impl(*arrays, coefs):
    if not all(type(x) is np.ndarray for x in arrays):    # CuPy: plain arithmetic
        out = arrays[0] * coefs[0]
        for c, x in zip(coefs[1:], arrays[1:]):
            out = out + x * c
        return out
    dtype = np.result_type(*arrays, np.float16)
    out = np.empty(np.broadcast_shapes(*(x.shape for x in arrays)), dtype=dtype)
    np.multiply(arrays[0], coefs[0], out=out)
    tmp = None
    for c, x in zip(coefs[1:], arrays[1:]):
        if c == 1.0:
            np.add(out, x, out=out)
            continue
        if tmp is None:
            tmp = np.empty_like(out)
        np.multiply(x, c, out=tmp)
        out += tmp
    return out


def _lincomb_vjp(g, needs, out, res, *arrays, coefs):
    return tuple((fit(g if c == 1.0 else g * c, x) if need else None)
                 for c, x, need in zip(coefs, arrays, needs))


def _lincomb_jvp(t, out, res, *arrays, coefs):
    r = None
    for c, tx in zip(coefs, t):
        if tx is not None:
            term = tx if c == 1.0 else tx * c
            r = term if r is None else r + term
    return None if r is None else _tangent_like(r, out)


_lincomb = _prim("lincomb", _lincomb_impl, _lincomb_vjp, _lincomb_jvp,
    vjp_reads=_reads_nothing)


def lincomb(coefs, *arrays):
    """Σ cᵢ xᵢ for real scalars cᵢ, as one primitive (one node on the tape, the sum
    accumulated in place)."""
    return _lincomb(*arrays, coefs=tuple(float(c) for c in coefs))
subtract = _prim("subtract", np.subtract, _sub_vjp, _sub_jvp,
    vjp_reads=_reads_nothing)
multiply = _prim("multiply", np.multiply, _mul_vjp, _mul_jvp,
    vjp_reads=_reads_other)
divide = true_divide = _prim("divide", np.true_divide, _div_vjp, _div_jvp)
_power = _prim("power", np.power, _pow_vjp, _pow_jvp)
maximum = _prim("maximum", np.maximum, _max_vjp, _max_jvp)
minimum = _prim("minimum", np.minimum, _min_vjp, _min_jvp)


# -- elementwise unary ----------------------------------------------------------

def _holomorphic(name, kernel, derivative):
    """y = f(x) with f' given by derivative(x, y), differentiable."""

    def vjp(g, needs, out, res, x):
        return (fit(g * _conj(derivative(x, out)), x),)

    def jvp(t, out, res, x):
        return t[0] * derivative(x, out)

    vjp.__name__ = f"{name}_vjp"
    jvp.__name__ = f"{name}_jvp"
    return _prim(name, kernel, vjp, jvp)


def _neg_vjp(g, needs, out, res, x):
    return (-g,)


def _neg_jvp(t, out, res, x):
    return -t[0]


negative = _prim("negative", np.negative, _neg_vjp, _neg_jvp,
    vjp_reads=_reads_nothing)
# f'(x), given x and y = f(x); written with differentiable ops (second order)
def _d_exp(x, y):
    return y


def _d_expm1(x, y):
    return y + 1.0


def _d_log(x, y):
    return 1.0 / x


def _d_log1p(x, y):
    return 1.0 / (1.0 + x)


def _d_sqrt(x, y):
    return 0.5 / y


def _d_square(x, y):
    return 2.0 * x


def _d_sin(x, y):
    return cos(x)


def _d_cos(x, y):
    return -sin(x)


def _d_tan(x, y):
    return 1.0 + y * y


def _d_tanh(x, y):
    return 1.0 - y * y


def _d_sinh(x, y):
    return cosh(x)


def _d_cosh(x, y):
    return sinh(x)


def _d_arcsin(x, y):
    return 1.0 / sqrt(1.0 - x * x)


def _d_arccos(x, y):
    return -1.0 / sqrt(1.0 - x * x)


exp = _holomorphic("exp", np.exp, _d_exp)
expm1 = _holomorphic("expm1", np.expm1, _d_expm1)
log = _holomorphic("log", np.log, _d_log)
log1p = _holomorphic("log1p", np.log1p, _d_log1p)
sqrt = _holomorphic("sqrt", np.sqrt, _d_sqrt)
square = _holomorphic("square", np.square, _d_square)
sin = _holomorphic("sin", np.sin, _d_sin)
cos = _holomorphic("cos", np.cos, _d_cos)
tan = _holomorphic("tan", np.tan, _d_tan)
tanh = _holomorphic("tanh", np.tanh, _d_tanh)
sinh = _holomorphic("sinh", np.sinh, _d_sinh)
cosh = _holomorphic("cosh", np.cosh, _d_cosh)
arcsin = _holomorphic("arcsin", np.arcsin, _d_arcsin)
arccos = _holomorphic("arccos", np.arccos, _d_arccos)


def power(x, y):
    """x ** y elementwise (numpy.power), differentiable in both operands.

    The exponent 2 or 0.5, given as a Python number, on a float or complex x records
    the square or square-root node: NumPy's ``x ** 2`` takes the same shortcut, where
    np.power calls pow() per element (at 64×64: 2.3x np.square's time in double, 10x
    for complex; np.sqrt takes half of power's 0.5), and their derivatives are one
    product (2x, 0.5/y) where power's call pow() again.
    """
    if type(y) is int or type(y) is float:
        if (y == 2 or y == 0.5) and np.result_type(_peek(x)).kind in "fc":
            return square(x) if y == 2 else sqrt(x)
    return _power(x, y)


def positive(x):
    return x


def _abs_direction(x, out):
    """d|x| = Re(conj(u) dx) with u = x/|x| (u = 0 at x = 0: a subgradient)."""
    vo = _value(out)
    if not _is_complex(x):
        return sign(x)
    zero = vo == 0
    return where(zero, 0.0, x / where(zero, 1.0, out))


def _abs_vjp(g, needs, out, res, x):
    return (fit(g * _abs_direction(x, out), x),)


def _abs_jvp(t, out, res, x):
    u = _abs_direction(x, out)
    return real(_conj(u) * t[0]) if _is_complex(x) else u * t[0]


absolute = abs = _prim("abs", np.abs, _abs_vjp, _abs_jvp)


# NumPy >= 2 defines sign(z) = z / |z| for complex z (NumPy 1 took the sign of the real
# part, a piecewise constant).  The first has a derivative:
#   d sign = (dz - u Re(conj(u) dz)) / |z|,  u = sign(z)   (0 at z = 0, a subgradient);
# the map is self-adjoint for Re<., .>, so the VJP has the same form.
_SIGN_IS_UNIT = bool(np.sign(np.complex128(3j)) == 1j)


def _sign_derivative(d, out, x):
    r = abs(x)
    zero = _value(r) == 0
    inv = where(zero, 0.0, 1.0 / where(zero, 1.0, r))
    return (d - out * real(conj(out) * d)) * inv


def _sign_vjp(g, needs, out, res, x):
    if not (_SIGN_IS_UNIT and _is_complex(x)):
        return (None,)
    return (fit(_sign_derivative(g, out, x), x),)


def _sign_jvp(t, out, res, x):
    if not (_SIGN_IS_UNIT and _is_complex(x)) or t[0] is None:
        return None
    return _sign_derivative(t[0], out, x)


sign = _prim("sign", np.sign, _sign_vjp, _sign_jvp)


def _real_vjp(g, needs, out, res, x):
    g = fit(g, x)
    if _is_complex(x) and not _is_complex(g):
        g = astype(g, np.result_type(_peek(x)))    # a complex input gets a complex cotangent
    return (g,)


def _real_jvp(t, out, res, x):
    return real(t[0])


def _imag_vjp(g, needs, out, res, x):
    return (fit(1j * g, x),)


def _imag_jvp(t, out, res, x):
    return imag(t[0])


def _conj_vjp(g, needs, out, res, x):
    return (fit(conj(g), x),)


def _conj_jvp(t, out, res, x):
    return conj(t[0])


real = _prim("real", np.real, _real_vjp, _real_jvp,
    vjp_reads=_reads_nothing)
imag = _prim("imag", np.imag, _imag_vjp, _imag_jvp,
    vjp_reads=_reads_nothing)
conj = conjugate = _prim("conj", np.conjugate, _conj_vjp, _conj_jvp,
    vjp_reads=_reads_nothing)


# -- dtype conversion -------------------------------------------------------------

def _astype_impl(x, dtype):
    return x.astype(dtype)


def _astype_vjp(g, needs, out, res, x, dtype):
    xd = np.result_type(_peek(x))
    if xd.kind != "c" and _is_complex(g):
        g = real(g)
    return (astype(g, xd) if np.result_type(_peek(g)) != xd else g,)


def _astype_jvp(t, out, res, x, dtype):
    return astype(t[0], dtype)


_astype = _prim("astype", _astype_impl, _astype_vjp, _astype_jvp,
    vjp_reads=_reads_nothing)


def astype(x, dtype):
    """Cast to ``dtype`` (differentiable between floating/complex dtypes)."""
    dtype = np.dtype(dtype)
    v = _peek(x)
    if np.result_type(v) == dtype and getattr(getattr(v, "dtype", None), "isnative", True):
        return x              # (np.result_type is native: a byte-swapped array is cast)
    return _astype(x, dtype=dtype)


# -- matmul ---------------------------------------------------------------------

def mT(x):
    """Transpose of the last two axes (a stack of matrices)."""
    return swapaxes(x, -1, -2)


matrix_transpose = mT


def mH(x):
    """Conjugate transpose of the last two axes."""
    return _conj(swapaxes(x, -1, -2))


def _transposed_real(a, g, other):
    """Whether the operand a of a first-order product is a plain real array laid out as the
    transpose of a C-ordered stack (a = mT(b), b C-contiguous: the operand ``x @ x.T``
    or ``(V * g) @ mT(V)`` passes) with a real cotangent g and other operand.  Its
    cotangent is then made in the same layout, the same product with the operands
    swapped and transposed: the transpose's own VJP turns it back into a C-ordered array
    for free, and the sum of the input's cotangents reads both contiguously (a sum that
    reads one transposed costs 4x the contiguous one at n = 256, 3x on a 1000x32x32
    stack)."""
    if a.__class__ is not _ndarray or a.ndim < 2 or a.flags.c_contiguous or \
            a.strides[-2] >= a.strides[-1] or a.dtype.kind != "f":
        return False
    return (g.__class__ is _ndarray and g.dtype.kind == "f" and other.__class__ is _ndarray
            and other.dtype.kind == "f" and np.swapaxes(a, -1, -2).flags.c_contiguous)


def _matmul_vjp(g, needs, out, res, x, y):
    o = ops_for(g, x, y)            # NumPy directly at first order on plain arrays
    xs, ys = _shape(x), _shape(y)
    xe = o.reshape(x, (1,) + xs) if len(xs) == 1 else x
    ye = o.reshape(y, ys + (1,)) if len(ys) == 1 else y
    ge = g
    if len(xs) == 1:
        ge = o.expand_dims(ge, -2 if len(ys) > 1 else -1)
    if len(ys) == 1:
        ge = o.expand_dims(ge, -1)
    gx = gy = None
    if needs[0]:
        if _transposed_real(xe, ge, ye):     # x̄ = G yᵀ made as the view (y Gᵀ)ᵀ
            gx = fit(np.swapaxes(np.matmul(ye, np.swapaxes(ge, -1, -2)), -1, -2), xe)
        else:
            gx = fit(o.matmul(ge, o.mH(ye)), xe)
    if needs[1]:
        if _transposed_real(ye, ge, xe):     # ȳ = xᵀ G made as the view (Gᵀ x)ᵀ
            gy = fit(np.swapaxes(np.matmul(np.swapaxes(ge, -1, -2), xe), -1, -2), ye)
        else:
            gy = fit(o.matmul(o.mH(xe), ge), ye)
    if gx is not None and len(xs) == 1:
        gx = o.reshape(gx, xs)
    if gy is not None and len(ys) == 1:
        gy = o.reshape(gy, ys)
    return gx, gy


def _matmul_jvp(t, out, res, x, y):
    tx, ty = t
    r = None
    if tx is not None:
        r = matmul(tx, y)
    if ty is not None:
        d = matmul(x, ty)
        r = d if r is None else r + d
    return broadcast_to(r, _shape(out)) if _shape(r) != _shape(out) else r


_matmul = _prim("matmul", np.matmul, _matmul_vjp, _matmul_jvp,
    vjp_reads=_reads_other)


# -- reductions ------------------------------------------------------------------

def _norm_axes(axis, ndim):
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, int):
        axis = (axis,)
    return tuple(sorted(a % ndim if ndim else a for a in axis))


def _restore_reduced(g, shape, axis, keepdims):
    """Broadcast a reduced cotangent back to ``shape``."""
    if axis is None and len(_shape(g)) == 0:
        return broadcast_to(g, shape)
    if not keepdims:
        axes = _norm_axes(axis, len(shape))
        g = reshape(g, tuple(1 if i in axes else s for i, s in enumerate(shape)))
    return broadcast_to(g, shape)


def _sum_impl(x, axis=None, keepdims=False):
    if x.__class__ is _ndarray:
        if not x.ndim and axis is None and not keepdims and x.dtype.kind in "fc":
            return x[()]                   # the scalar np.sum returns, at a fifteenth the cost
        return _add_reduce(x, axis, keepdims=keepdims)   # np.sum without its dispatch
    if isinstance(x, np.inexact) and axis is None and not keepdims:
        return x
    return np.sum(x, axis=axis, keepdims=keepdims)


_add_reduce = np.add.reduce


def _sum_vjp(g, needs, out, res, x, axis=None, keepdims=False):
    if axis is None and g.__class__ is _ndarray and x.__class__ is _ndarray and \
            g.dtype == x.dtype:
        return (_broadcast_impl(g, x.shape),)        # the common loss: a read-only view
    return (_restore_reduced(fit(g, g) if _is_complex(x) else real(g) if _is_complex(g) else g,
                             _shape(x), axis, keepdims),)


def _sum_jvp(t, out, res, x, axis=None, keepdims=False):
    return sum(t[0], axis=axis, keepdims=keepdims)


_sum = _prim("sum", _sum_impl, _sum_vjp, _sum_jvp,
    vjp_reads=_reads_nothing)


def sum(x, axis=None, keepdims=False):
    """Sum over the given axes (NumPy's meaning of axis and keepdims)."""
    if isinstance(axis, list):
        axis = tuple(axis)
    return _sum(x, axis=axis, keepdims=keepdims)


def mean(x, axis=None, keepdims=False):
    shape = _shape(x)
    count = 1
    for a in _norm_axes(axis, len(shape)):
        count *= shape[a]
    return sum(x, axis=axis, keepdims=keepdims) / count


def _extreme_vjp(g, needs, out, res, x, axis=None, keepdims=False):
    vx, vo = _value(x), _value(out)
    vo_b = vo if keepdims else np.expand_dims(vo, _norm_axes(axis, vx.ndim))
    hit = (vx == vo_b)
    weight = (hit / np.sum(hit, axis=axis, keepdims=True)).astype(_weight_dtype(vx))  # ties share
    return (fit(_restore_reduced(g, _shape(x), axis, keepdims) * weight, x),)


def _extreme_jvp(t, out, res, x, axis=None, keepdims=False):
    vx, vo = _value(x), _value(out)
    vo_b = vo if keepdims else np.expand_dims(vo, _norm_axes(axis, vx.ndim))
    hit = (vx == vo_b)
    weight = (hit / np.sum(hit, axis=axis, keepdims=True)).astype(_weight_dtype(vx))
    return sum(t[0] * weight, axis=axis, keepdims=keepdims)


def _amax_impl(x, axis=None, keepdims=False):
    return np.max(x, axis=axis, keepdims=keepdims)


def _amin_impl(x, axis=None, keepdims=False):
    return np.min(x, axis=axis, keepdims=keepdims)


_amax = _prim("max", _amax_impl, _extreme_vjp, _extreme_jvp)
_amin = _prim("min", _amin_impl, _extreme_vjp, _extreme_jvp)


def max(x, axis=None, keepdims=False):
    """Maximum over axes; tied maxima share the gradient evenly."""
    return _amax(x, axis=axis, keepdims=keepdims)


def min(x, axis=None, keepdims=False):
    """Minimum over axes; tied minima share the gradient evenly."""
    return _amin(x, axis=axis, keepdims=keepdims)


amax, amin = max, min


# -- shape and structure --------------------------------------------------------

def _reshape_impl(x, shape):
    return np.reshape(x, shape)


def _reshape_vjp(g, needs, out, res, x, shape):
    return (reshape(g, _shape(x)),)


def _reshape_jvp(t, out, res, x, shape):
    return reshape(t[0], shape)


_reshape = _prim("reshape", _reshape_impl, _reshape_vjp, _reshape_jvp,
    vjp_reads=_reads_nothing)


def reshape(x, shape):
    if isinstance(shape, int):
        shape = (shape,)
    shape = tuple(shape)
    if -1 in shape:
        shape = np.empty(_shape(x), dtype=np.int8).reshape(shape).shape
    return _reshape(x, shape=shape)


def ravel(x):
    return reshape(x, (-1,))


def _transpose_impl(x, axes):
    return np.transpose(x, axes)


def _transpose_vjp(g, needs, out, res, x, axes):
    inverse = [0] * len(axes)          # the inverse permutation (np.argsort costs ~2 µs)
    for i, a in enumerate(axes):
        inverse[a] = i
    return (_transpose(g, axes=tuple(inverse)),)


def _transpose_jvp(t, out, res, x, axes):
    return transpose(t[0], axes)


_transpose = _prim("transpose", _transpose_impl, _transpose_vjp, _transpose_jvp,
    vjp_reads=_reads_nothing)


# -- products of an array with its own transpose -----------------------------------

def _gram_impl(x, left):
    xt = np.swapaxes(x, -1, -2)
    return np.matmul(xt, x) if left else np.matmul(x, xt)     # NumPy: syrk, one triangle


def _gram_vjp(g, needs, out, res, x, left):
    """P = x xᵀ: x̄ = (P̄ + P̄ᵀ) conj(x);  P = xᵀ x: x̄ = conj(x) (P̄ + P̄ᵀ).  One
    product where the two operands' VJPs would take two (plain transposes: for complex
    x the product is complex symmetric, not Hermitian)."""
    o = ops_for(g, x)
    s = g + o.mT(g)
    xc = o.conj(x)
    return (fit(o.matmul(xc, s) if left else o.matmul(s, xc), x),)


def _gram_jvp(t, out, res, x, left):
    """Ṗ = D + Dᵀ with D = ẋᵀ x (xᵀ x) or ẋ xᵀ (x xᵀ): one product."""
    tx = t[0]
    d = matmul(mT(tx), x) if left else matmul(tx, mT(x))
    return d + mT(d)


_gram = _prim("gram", _gram_impl, _gram_vjp, _gram_jvp, vjp_reads=lambda needs: (0,))


def _square_vjp(g, needs, out, res, x):
    """P = x x: the product's two operand cotangents P̄ xᴴ and xᴴ P̄ (_matmul_vjp), summed
    into the first one's fresh array (the tape would add them in a third)."""
    gx, gy = _matmul_vjp(g, (True, True), out, res, x, x)
    if gx.__class__ is _ndarray and gy.__class__ is _ndarray and gx.dtype == gy.dtype:
        gx += gy
        return (gx,)
    return (gx + gy,)


def _square_jvp(t, out, res, x):
    return matmul(t[0], x) + matmul(x, t[0])


def _square_impl(x):
    return np.matmul(x, x)


_square = _prim("square_matrix", _square_impl, _square_vjp, _square_jvp,
                vjp_reads=lambda needs: (0,))


def _transpose_of(t, x):
    """Whether the traced t is mT(x), recorded on the same reverse tape as x."""
    node = t.node
    if node.prim is not _transpose or x.__class__ is not ReverseTracer or \
            x._trace is not t._trace:
        return False
    axes = node.params["axes"]
    nd = len(axes)
    return (nd >= 2 and axes[-2:] == (nd - 1, nd - 2) and axes[:-2] == tuple(range(nd - 2))
            and node.parents[0] == (x.node, x.index))


def matmul(x, y):
    """np.matmul, differentiable.  A product of an array with its own transpose
    (``x @ x.T``, ``mT(x) @ x``) on a reverse tape is recorded as one primitive, the
    Gram product, whose VJP takes one product (x̄ = (P̄ + P̄ᵀ) x) instead of the two its
    operands' would: the forward is the same NumPy call (which uses syrk for it).  A
    square ``x @ x`` is one primitive too, whose VJP sums its two products in place."""
    if y.__class__ is ReverseTracer:
        if x is y:                            # x @ x: one node, its cotangents summed
            return _square(x)
        if _transpose_of(y, x):
            return _gram(x, left=False)
    if x.__class__ is ReverseTracer and _transpose_of(x, y):
        return _gram(y, left=True)
    return _matmul(x, y)


def transpose(x, axes=None):
    nd = len(_shape(x))
    if axes is None:
        axes = tuple(range(nd - 1, -1, -1))
    return _transpose(x, axes=tuple(a % nd for a in axes))


def swapaxes(x, axis1, axis2):
    nd = len(_shape(x))
    axes = list(range(nd))
    a, b = axis1 % nd, axis2 % nd
    axes[a], axes[b] = axes[b], axes[a]
    return _transpose(x, axes=tuple(axes))


def moveaxis(x, source, destination):
    """np.moveaxis: source and destination are axes or sequences of axes."""
    nd = len(_shape(x))
    src = [a % nd for a in ((source,) if isinstance(source, (int, np.integer)) else source)]
    dst = [a % nd for a in ((destination,) if isinstance(destination, (int, np.integer))
                            else destination)]
    if len(src) != len(dst):
        raise ValueError("moveaxis: source and destination must have the same number of "
                         "elements")
    order = [a for a in range(nd) if a not in src]
    for d, a in sorted(zip(dst, src)):
        order.insert(d, a)
    return _transpose(x, axes=tuple(order))


def expand_dims(x, axis):
    shape = _shape(x)
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    nd = len(shape) + len(axes)
    axes = sorted(a + nd if a < 0 else a for a in axes)
    if len(set(axes)) != len(axes) or any(not 0 <= a < nd for a in axes):
        raise ValueError(f"expand_dims: axis {axis} is out of bounds for the result's "
                         f"{nd} dimensions")
    out = list(shape)
    for a in axes:
        out.insert(a, 1)
    return reshape(x, tuple(out))


def squeeze(x, axis=None):
    shape = _shape(x)
    if axis is None:
        return reshape(x, tuple(d for d in shape if d != 1))
    axes = {a + len(shape) if a < 0 else a for a in ((axis,) if isinstance(axis, int)
                                                      else axis)}
    if any(not 0 <= a < len(shape) or shape[a] != 1 for a in axes):
        raise ValueError(f"squeeze: cannot remove axis {axis} from shape {shape}")
    return reshape(x, tuple(d for i, d in enumerate(shape) if i not in axes))


def _broadcast_impl(x, shape):
    if x.__class__ is _ndarray and x.ndim == 0:
        # a read-only view with zero strides (what broadcast_to makes, at a quarter of
        # its cost): free at any size, where full() would write every entry
        v = _ndarray(shape, x.dtype, buffer=x, strides=(0,) * len(shape))
        v.flags.writeable = False
        return v
    if getattr(x, "ndim", 0) == 0:
        return _xp(x).full(shape, x)     # much cheaper than broadcast_to for a scalar
    return np.broadcast_to(x, shape)


def _broadcast_vjp(g, needs, out, res, x, shape):
    return (fit(g, x),)


def _broadcast_jvp(t, out, res, x, shape):
    return broadcast_to(t[0], shape)


_broadcast_to = _prim("broadcast_to", _broadcast_impl, _broadcast_vjp, _broadcast_jvp,
    vjp_reads=_reads_nothing)


def broadcast_to(x, shape):
    shape = tuple(shape)
    if _shape(x) == shape:
        return x
    return _broadcast_to(x, shape=shape)


# indexing ------------------------------------------------------------------------

def _has_advanced(idx):
    items = idx if isinstance(idx, tuple) else (idx,)
    return any(not (i is None or i is Ellipsis or isinstance(i, (int, np.integer, slice)))
               for i in items)


def _getitem_impl(x, idx):
    return x[idx]


def _getitem_vjp(g, needs, out, res, x, idx):
    return (fit(_scatter_add(g, idx=idx, shape=_shape(x)), x),)


def _getitem_jvp(t, out, res, x, idx):
    return getitem(t[0], idx)


def _scatter_impl(g, idx, shape):
    xp = _xp(g)
    out = xp.zeros(shape, dtype=np.result_type(g))
    if _has_advanced(idx):
        if xp is np:
            np.add.at(out, idx, g)
        else:
            import cupyx
            cupyx.scatter_add(out, idx, g)
    else:
        out[idx] = g
    return out


def _scatter_vjp(h, needs, out, res, g, idx, shape):
    return (getitem(h, idx),)


def _scatter_jvp(t, out, res, g, idx, shape):
    return _scatter_add(t[0], idx=idx, shape=shape)


_getitem = _prim("getitem", _getitem_impl, _getitem_vjp, _getitem_jvp)
_scatter_add = _prim("scatter_add", _scatter_impl, _scatter_vjp, _scatter_jvp)


def _freeze_index(idx):
    if isinstance(idx, Tracer):
        raise TypeError("indexing with a traced array is not differentiable; "
                        "index with plain integer or boolean arrays")
    if isinstance(idx, list):
        return np.asarray(idx)
    if isinstance(idx, tuple):
        return tuple(_freeze_index(i) for i in idx)
    if isinstance(idx, np.ndarray) and idx.dtype == bool:
        return np.nonzero(idx) if idx.ndim > 1 else np.nonzero(idx)[0]
    return idx


def getitem(x, idx):
    """x[idx] for basic and integer-array (and boolean) indices."""
    idx = _freeze_index(idx)
    if isinstance(idx, tuple) and any(isinstance(i, tuple) for i in idx):
        flat = []
        for i in idx:
            flat.extend(i if isinstance(i, tuple) else (i,))
        idx = tuple(flat)
    return _getitem(x, idx=idx)


def _permute_rows_impl(x, perm):
    xp = _xp(x)
    m = x.shape[-2]
    if perm.ndim == 1:
        return xp.take(x, perm, axis=-2)
    batch = np.broadcast_shapes(x.shape[:-2], perm.shape[:-1])
    B = int(np.prod(batch))
    x = xp.broadcast_to(x, batch + x.shape[-2:]).reshape((B * m,) + x.shape[-1:])
    rows = (xp.broadcast_to(perm, batch + (m,)).reshape(B, m)
            + m * xp.arange(B, dtype=perm.dtype)[:, None]).reshape(-1)
    # take along the first axis of a 2-D view: 10× faster than x[rows, perm] on NumPy
    return xp.take(x, rows, axis=0).reshape(batch + (m,) + x.shape[-1:])


def _permute_rows_vjp(g, needs, out, res, x, perm):
    return (fit(permute_rows(g, _xp(perm).argsort(perm, axis=-1)), x),)


def _permute_rows_jvp(t, out, res, x, perm):
    r = permute_rows(t[0], perm)
    return broadcast_to(r, _shape(out)) if _shape(r) != _shape(out) else r


_permute_rows = _prim("permute_rows", _permute_rows_impl, _permute_rows_vjp, _permute_rows_jvp)


def permute_rows(x, perm):
    """x[..., perm, :] for a permutation perm (..., m) of x's m rows, stacks broadcast:
    a gather whose reverse is the gather by the inverse permutation (no scatter-add)."""
    return _permute_rows(x, perm=perm)


# diagonals ---------------------------------------------------------------------

def _diagonal_impl(x, offset, axis1, axis2):
    return np.diagonal(x, offset, axis1, axis2)


def _diagonal_vjp(g, needs, out, res, x, offset, axis1, axis2):
    return (fit(_embed_diagonal(g, shape=_shape(x), offset=offset, axis1=axis1, axis2=axis2), x),)


def _diagonal_jvp(t, out, res, x, offset, axis1, axis2):
    return _diagonal(t[0], offset=offset, axis1=axis1, axis2=axis2)


def _embed_impl(g, shape, offset, axis1, axis2):
    """Zeros of ``shape`` with g (diagonal along its last axis) on a diagonal."""
    xp = _xp(g)
    out = xp.zeros(shape, dtype=np.result_type(g))
    nd = len(shape)
    if offset == 0 and nd >= 2 and axis1 % nd == nd - 2 and axis2 % nd == nd - 1 \
            and shape[-1] == shape[-2] and g.shape == shape[:-1]:
        # the common case, the main diagonal of a stack of square matrices: a strided view
        n = shape[-1]
        out.reshape(shape[:-2] + (n * n,))[..., ::n + 1] = g
        return out
    out[_diagonal_index(shape, offset, axis1, axis2)] = _place_diagonal(
        xp, g, _diag_len(shape, offset, axis1, axis2), shape, axis1, axis2)
    return out


def _diag_len(shape, offset, axis1, axis2):
    nd = len(shape)
    n1, n2 = shape[axis1 % nd], shape[axis2 % nd]
    return builtins_max(0, min_(n1, n2 - offset) if offset >= 0 else min_(n1 + offset, n2))


def _diagonal_index(shape, offset, axis1, axis2):
    """Index tuple addressing the chosen diagonal of an array of ``shape``."""
    nd = len(shape)
    a1, a2 = axis1 % nd, axis2 % nd
    n1, n2 = shape[a1], shape[a2]
    if offset >= 0:
        k = np.arange(builtins_max(0, min_(n1, n2 - offset)))
        i1, i2 = k, k + offset
    else:
        k = np.arange(builtins_max(0, min_(n1 + offset, n2)))
        i1, i2 = k - offset, k
    idx = [slice(None)] * nd
    idx[a1], idx[a2] = i1, i2
    return tuple(idx)


def _place_diagonal(xp, g, length, shape, axis1, axis2):
    """Arrange g (diagonal last) as the advanced-index assignment expects it.

    NumPy puts the axis of two adjacent advanced indices where they stand, and
    that of non-adjacent ones first.
    """
    nd = len(shape)
    a1, a2 = sorted((axis1 % nd, axis2 % nd))
    rest = tuple(s for i, s in enumerate(shape) if i not in (a1, a2))
    g = xp.broadcast_to(g, rest + (length,))
    return xp.moveaxis(g, -1, a1 if a2 - a1 == 1 else 0)


def _embed_vjp(h, needs, out, res, g, shape, offset, axis1, axis2):
    return (_diagonal(h, offset=offset, axis1=axis1, axis2=axis2),)


def _embed_jvp(t, out, res, g, shape, offset, axis1, axis2):
    return _embed_diagonal(t[0], shape=shape, offset=offset, axis1=axis1, axis2=axis2)


_diagonal = _prim("diagonal", _diagonal_impl, _diagonal_vjp, _diagonal_jvp)
_embed_diagonal = _prim("embed_diagonal", _embed_impl, _embed_vjp, _embed_jvp)


def diagonal(x, offset=0, axis1=0, axis2=1):
    """np.diagonal: the diagonal is the last axis of the result."""
    return _diagonal(x, offset=offset, axis1=axis1, axis2=axis2)


def diag(v, k=0):
    """np.diag: a 1-D input makes a matrix, a 2-D input gives its diagonal."""
    shape = _shape(v)
    if len(shape) == 1:
        n = shape[0] + (k if k >= 0 else -k)
        return _embed_diagonal(v, shape=(n, n), offset=k, axis1=0, axis2=1)
    if len(shape) == 2:
        return diagonal(v, k, 0, 1)
    raise ValueError("diag: input must be 1-D or 2-D")


def trace(x, offset=0, axis1=0, axis2=1):
    return sum(diagonal(x, offset, axis1, axis2), axis=-1)


_TRI_MASKS = ArrayCache()


def _tri_mask(n, m, k, lower):
    """Boolean mask of the kept triangle (np.tril rebuilds it every call), cached while
    small (linalgad/_cache.py)."""
    key = (n, m, k, lower)
    mask = _TRI_MASKS.get(key)
    if mask is None:
        mask = _TRI_MASKS.put(key, np.tri(n, m, k, dtype=bool) if lower
                              else ~np.tri(n, m, k - 1, dtype=bool))
    return mask


def _tri_impl(x, k, lower):
    if type(x) is np.ndarray and x.ndim >= 2:
        return np.where(_tri_mask(x.shape[-2], x.shape[-1], k, lower), x,
                        np.zeros((), dtype=x.dtype))
    return np.tril(x, k) if lower else np.triu(x, k)


def _tri_vjp(g, needs, out, res, x, k, lower):
    return (fit(_tri(g, k=k, lower=lower), x),)


def _tri_jvp(t, out, res, x, k, lower):
    return _tri(t[0], k=k, lower=lower)


_tri = _prim("tril_triu", _tri_impl, _tri_vjp, _tri_jvp)


# Triangle-restricted products (the cotangents of triangular factors).  A product
# projected onto one triangle needs only half the flops and, written block row by block
# row into one fresh array, no second pass and no second large allocation: both matter
# at n ≥ 128, where the product is n²k for a small k and the memory passes cost as much
# as the arithmetic.  One-sided products of at least TRI_PRODUCT_WORK multiply-adds per
# matrix go by row blocks of TRI_PRODUCT_BLOCK, each row block one product over the columns
# it keeps (measured: 0.8× the whole product and masked copy at n = 256, k = 8; 0.55× at
# n = 1024; 1.35× at n = 128, below the threshold); two-sided ones whenever two blocks fit
# (as fast as two whole products, without the second n×n temporary).
TRI_PRODUCT_WORK = 1 << 19
TRI_PRODUCT_BLOCK = 64


def _split_product(lo, up, k):
    """tril(p q, k − 1) + triu(r s, k) for lo = (p, q), up = (r, s); a missing pair is
    zero.  Stacks broadcast.  NumPy arrays: by row blocks, each entry computed once."""
    pairs = [x for x in (lo, up) if x is not None]
    a, b = pairs[0]
    if any(type(x) is not np.ndarray for pair in pairs for x in pair):   # CuPy: whole products
        xp = _xp(a)
        out = xp.tril(xp.matmul(*lo), k - 1) if lo is not None else None
        if up is not None:
            u = xp.triu(xp.matmul(*up), k)
            out = u if out is None else out + u
        return out
    n, m = a.shape[-2], b.shape[-1]
    # two sides: by blocks from order 256, or from 128 with inner dimension >= 64; below
    # that two whole products and one masked merge are faster (measured, one matrix,
    # inner dimension 8: 17.7 against 27.0 µs at 128, 27.0 against 36.4 at 160, 65 against
    # 70 µs the other way at 256), and above it the whole-product route's second full
    # temporary costs page faults (glibc trims the heap behind it)
    if len(pairs) == 2:
        fits = min_(n, m) >= 2 * TRI_PRODUCT_BLOCK
        blocks = fits and (min_(n, m) >= 4 * TRI_PRODUCT_BLOCK or a.shape[-1] >= 64)
        work = TRI_PRODUCT_WORK if blocks else 0
    else:
        work = n * m * a.shape[-1]
    if work < TRI_PRODUCT_WORK or min_(n, m) < 2 * TRI_PRODUCT_BLOCK:
        if lo is None:                 # one fresh product, projected in place
            G = np.matmul(*up)
            np.copyto(G, 0, where=_tri_mask(n, m, k - 1, True))
            return G
        G = np.matmul(*lo)
        above = _tri_mask(n, m, k, False)
        if up is None:
            np.copyto(G, 0, where=above)
            return G
        H = np.matmul(*up)
        # a fresh select for tiny matrices: copyto's masked path costs twice as much over
        # a broadcast mask of order <= 8 (10,000 of order 4: 0.41 against 0.21 ms), half
        # as much from order 32 on (and needs no second allocation)
        if H.shape != G.shape or H.dtype != G.dtype or n * m <= 64:
            return np.where(above, H, G)
        np.copyto(G, H, where=above)
        return G
    batch = np.broadcast_shapes(*(x.shape[:-2] for pair in pairs for x in pair))
    dtype = np.result_type(*(x for pair in pairs for x in pair))
    # one side missing: start from zeros (calloc) and write only the kept triangle
    out = (np.empty if len(pairs) == 2 else np.zeros)(batch + (n, m), dtype=dtype)
    bs = TRI_PRODUCT_BLOCK

    def part(pair, rows, cols):
        dest = out[..., rows, cols]
        if pair is not None and dest.size:
            np.matmul(pair[0][..., rows, :], pair[1][..., :, cols], out=dest)
        return dest

    for i in range(0, n, bs):
        j = min_(i + bs, n)
        rows = slice(i, j)
        c0 = min_(builtins_max(i + k, 0), m)       # columns < c0: below the cut in every row
        c1 = min_(builtins_max(j - 1 + k, c0), m)  # columns ≥ c1: on or above it in all
        if c1 == c0:
            part(lo, rows, slice(0, c0))
            part(up, rows, slice(c1, m))
            continue
        kk = k - (c0 - i)       # the cut's offset in the block it crosses (cached masks)
        above = _tri_mask(j - i, c1 - c0, kk, False)
        if up is None:          # one product over the columns kept, then the block's cut
            part(lo, rows, slice(0, c1))
            np.copyto(out[..., rows, c0:c1], 0, where=above)
        elif lo is None:
            part(up, rows, slice(c0, m))
            np.copyto(out[..., rows, c0:c1], 0, where=_tri_mask(j - i, c1 - c0, kk - 1, True))
        else:                   # both sides: each outside the block, merged inside it
            part(lo, rows, slice(0, c1))
            part(up, rows, slice(c1, m))
            np.copyto(out[..., rows, c0:c1],
                      np.matmul(up[0][..., rows, :], up[1][..., :, c0:c1]), where=above)
    return out


def _tri_matmul_impl(a, b, *, k, lower):
    return _split_product((a, b), None, k + 1) if lower else _split_product(None, (a, b), k)


def _tri_matmul_vjp(g, needs, out, res, a, b, *, k, lower):
    """out = P(a b), P self-adjoint:  ā = P(ḡ) bᴴ,  b̄ = aᴴ P(ḡ)."""
    gp = _tri(g, k=k, lower=lower)
    return (fit(matmul(gp, mH(b)), a) if needs[0] else None,
            fit(matmul(mH(a), gp), b) if needs[1] else None)


def _tri_matmul_jvp(t, out, res, a, b, *, k, lower):
    ta, tb = t
    r = None
    if ta is not None:
        r = tri_matmul(ta, b, k=k, lower=lower)
    if tb is not None:
        d = tri_matmul(a, tb, k=k, lower=lower)
        r = d if r is None else r + d
    return broadcast_to(r, _shape(out)) if _shape(r) != _shape(out) else r


_tri_matmul = _prim("tril_triu_matmul", _tri_matmul_impl, _tri_matmul_vjp, _tri_matmul_jvp)


def tri_matmul(a, b, k=0, lower=True):
    """tril(a @ b, k) (triu when not ``lower``) for stacks of matrices, as one primitive:
    the product is projected in place (the cotangent of a triangular factor)."""
    return _tri_matmul(a, b, k=k, lower=lower)


def _split_matmul_impl(p, q, r, s, *, k):
    return _split_product((p, q), (r, s), k)


def _split_matmul_vjp(g, needs, out, res, p, q, r, s, *, k):
    """out = P_L(p q) + P_U(r s), P_L = tril(·, k−1) and P_U = triu(·, k) self-adjoint."""
    gl = _tri(g, k=k - 1, lower=True) if needs[0] or needs[1] else None
    gu = _tri(g, k=k, lower=False) if needs[2] or needs[3] else None
    return (fit(matmul(gl, mH(q)), p) if needs[0] else None,
            fit(matmul(mH(p), gl), q) if needs[1] else None,
            fit(matmul(gu, mH(s)), r) if needs[2] else None,
            fit(matmul(mH(r), gu), s) if needs[3] else None)


def _split_matmul_jvp(t, out, res, p, q, r, s, *, k):
    tp, tq, tr, ts = t
    terms = [tri_matmul(tp, q, k=k - 1) if tp is not None else None,
             tri_matmul(p, tq, k=k - 1) if tq is not None else None,
             tri_matmul(tr, s, k=k, lower=False) if tr is not None else None,
             tri_matmul(r, ts, k=k, lower=False) if ts is not None else None]
    acc = None
    for d in terms:
        if d is not None:
            acc = d if acc is None else acc + d
    return broadcast_to(acc, _shape(out)) if _shape(acc) != _shape(out) else acc


_split_matmul = _prim("split_triangle_matmul", _split_matmul_impl, _split_matmul_vjp,
                      _split_matmul_jvp)


def split_matmul(p, q, r, s, k=0):
    """tril(p @ q, k − 1) + triu(r @ s, k) as one primitive: the strict lower part of one
    product joined to the upper part of another, each entry computed once (LU's
    cotangent, whose L and U share one array)."""
    return _split_matmul(p, q, r, s, k=k)


def tril(x, k=0):
    return _tri(x, k=k, lower=True)


def triu(x, k=0):
    return _tri(x, k=k, lower=False)


# joining ------------------------------------------------------------------------

def _concat_impl(*arrays, axis):
    return np.concatenate(arrays, axis=axis)


def _concat_vjp(g, needs, out, res, *arrays, axis):
    out_cts = []
    start = 0
    nd = len(_shape(g))
    ax = axis % nd
    for a, need in zip(arrays, needs):
        size = _shape(a)[ax]
        if need:
            idx = (slice(None),) * ax + (slice(start, start + size),)
            out_cts.append(fit(getitem(g, idx), a))
        else:
            out_cts.append(None)
        start += size
    return tuple(out_cts)


def _concat_jvp(t, out, res, *arrays, axis):
    parts = [ti if ti is not None else zeros_like(a, dtype=np.result_type(_peek(out)))
             for ti, a in zip(t, arrays)]
    return _concatenate(*parts, axis=axis)


_concatenate = _prim("concatenate", _concat_impl, _concat_vjp, _concat_jvp)


def concatenate(arrays, axis=0):
    arrays = tuple(arrays)
    if axis is None:
        arrays = tuple(ravel(a) for a in arrays)
        axis = 0
    return _concatenate(*arrays, axis=axis)


def stack(arrays, axis=0):
    arrays = tuple(arrays)
    nd = len(_shape(arrays[0])) + 1
    return concatenate([expand_dims(a, axis % nd) for a in arrays], axis=axis % nd)


# where -------------------------------------------------------------------------

def _where_impl(cond, x, y):
    return np.where(cond, x, y)


def _where_vjp(g, needs, out, res, cond, x, y):
    c = _value(cond)
    return (None,
            fit(where(c, g, 0.0), x) if needs[1] else None,
            fit(where(c, 0.0, g), y) if needs[2] else None)


def _where_jvp(t, out, res, cond, x, y):
    c = _value(cond)
    tx = t[1] if t[1] is not None else 0.0
    ty = t[2] if t[2] is not None else 0.0
    return _tangent_like(where(c, tx, ty), out)


_where = _prim("where", _where_impl, _where_vjp, _where_jvp)


def where(cond, x, y):
    """np.where(cond, x, y); cond is not differentiated."""
    return _where(_value(cond), x, y)


# -- products and norms built from the primitives ---------------------------------

def outer(a, b):
    return multiply(reshape(a, (-1, 1)), reshape(b, (1, -1)))


def vdot(a, b):
    return sum(_conj(ravel(a)) * ravel(b))


def inner(a, b):
    if len(_shape(a)) == 0 or len(_shape(b)) == 0:
        return a * b
    return einsum("...i,...i->...", a, b) if len(_shape(a)) == 1 == len(_shape(b)) else \
        _inner_nd(a, b)


def _inner_nd(a, b):
    na, nb = len(_shape(a)), len(_shape(b))
    letters = string.ascii_letters
    sa = letters[:na - 1] + "z"
    sb = letters[na - 1:na + nb - 2] + "z"
    return einsum(f"{sa},{sb}->{sa[:-1]}{sb[:-1]}", a, b)


def dot(a, b):
    """np.dot: matmul for 1-D/2-D operands, a sum product for N-D ones."""
    na, nb = len(_shape(a)), len(_shape(b))
    if na == 0 or nb == 0:
        return multiply(a, b)
    if na <= 2 and nb <= 2:
        return matmul(a, b)
    letters = string.ascii_letters
    sa = letters[:na - 1] + "Z"
    if nb == 1:
        return einsum(f"{sa},Z->{sa[:-1]}", a, b)
    sb = letters[na - 1:na + nb - 2]
    sb = sb[:-1] + "Z" + sb[-1]
    out = sa[:-1] + sb[:-2] + sb[-1]
    return einsum(f"{sa},{sb}->{out}", a, b)


def norm(x, ord=None, axis=None, keepdims=False):
    """Vector norms (any ord) and the Frobenius norm, as numpy.linalg.norm.

    At x = 0 the gradient of a vector norm is taken as 0 (a subgradient), not NaN.
    Matrix norms other than 'fro' live in linalgad.linalg.
    """
    shape = _shape(x)
    if axis is None:
        if ord is not None and not (ord == "fro" and len(shape) == 2) and len(shape) != 1:
            raise NotImplementedError("norm: with axis=None only the Frobenius/2-norm of the "
                                      "flattened array and vector norms of 1-D input are supported")
        axes = tuple(range(len(shape)))
    else:
        axes = (axis,) if isinstance(axis, int) else tuple(axis)
    if len(axes) == 2 and ord not in (None, "fro"):
        raise NotImplementedError(f"norm: matrix norm ord={ord!r} is not in ops "
                                  "(see linalgad.linalg.norm)")
    if ord in (None, 2, "fro") or (len(axes) == 2 and ord is None):
        return _norm2(x, axis=axes, keepdims=keepdims)
    if any(shape[i] == 0 for i in axes) and ord != -np.inf:
        # an empty vector, as NumPy: inf-norm 0, negative orders (a sum of none) inf
        v = _peek(x)
        out = np.sum(np.zeros(shape, dtype=np.abs(v).dtype if hasattr(v, "dtype")
                              else np.float64), axis=axes, keepdims=keepdims)
        return out + np.inf if not isinstance(ord, str) and ord < 0 else out
    a = abs(x)
    if ord == np.inf:
        return max(a, axis=axes, keepdims=keepdims)
    if ord == -np.inf:
        return min(a, axis=axes, keepdims=keepdims)
    if ord == 1:
        return sum(a, axis=axes, keepdims=keepdims)
    if ord == 0:
        return sum(a != 0, axis=axes, keepdims=keepdims)
    s = sum(power(a, ord), axis=axes, keepdims=keepdims)
    zero = compute(lambda v: v == 0, (s,), decide=lambda z: bool(z.any()),
                   name="norm's zero check")       # re-checked on every jit replay
    if zero.any():
        # not differentiable at 0: take the subgradient 0 there (as for the 2-norm),
        # where s ** (1/ord - 1) would otherwise make the gradient inf * 0 = NaN
        return where(zero, 0.0, power(where(zero, 1.0, s), 1.0 / ord))
    return power(s, 1.0 / ord)


_vecdot = getattr(np, "vecdot", None)       # NumPy >= 2.0


def _sumsq(x, axis):
    """Σ|x|² over ``axis`` (a tuple of one or two axes) without an array-sized temporary."""
    nd = x.ndim
    if nd == len(axis) and x.__class__ is _ndarray:   # the whole array: one BLAS dot
        return np.vdot(x, x).real
    axes = tuple(a % nd for a in axis)
    k = len(axes)
    if (_vecdot is not None and x.__class__ is _ndarray and axes == tuple(range(nd - k, nd))
            and x.flags.c_contiguous and np.prod(x.shape[nd - k:]) >= 64):
        # trailing axes of a C-ordered stack: one BLAS dot per row (2.3x einsum's speed at
        # 1,000 rows of 1,024; below ~64 numbers a row, einsum's loop is as fast)
        rows = x.reshape(x.shape[:nd - k] + (-1,))
        return _vecdot(rows, rows).real
    xm = np.moveaxis(x, axes, tuple(range(nd - len(axes), nd)))      # a view
    spec = "...a,...a->..." if len(axes) == 1 else "...ab,...ab->..."
    if x.dtype.kind == "c":
        return np.einsum(spec, xm.real, xm.real) + np.einsum(spec, xm.imag, xm.imag)
    return np.einsum(spec, xm, xm)


def _norm2_impl(x, axis, keepdims):
    if x.dtype.kind in "fc" and len(axis) in (1, 2) and x.ndim >= len(axis):
        r = np.sqrt(_sumsq(x, axis))
        return np.expand_dims(r, axis) if keepdims else r
    xv = np.abs(x)
    return np.sqrt(np.sum(xv * xv, axis=axis, keepdims=keepdims))


def _norm2_vjp(g, needs, out, res, x, axis, keepdims):
    """x ḡ / ‖x‖ (0 where ‖x‖ = 0); NumPy's operations directly at first order."""
    o = ops_for(g, out, x)
    if o.plain and np.ndim(out) == 0:             # one norm: a scalar scale
        return (fit(x * (g / out if out != 0 else 0 * g), x),)
    ob = out if keepdims else o.expand_dims(out, axis)
    gb = g if keepdims else o.expand_dims(g, axis)
    zero = _value(ob) == 0
    return (fit(x * o.where(zero, 0.0, gb / o.where(zero, 1.0, ob)), x),)


def _norm2_jvp(t, out, res, x, axis, keepdims):
    o = out if keepdims else expand_dims(out, axis)
    zero = _value(o) == 0
    inner_ = sum(real(_conj(x) * t[0]), axis=axis, keepdims=True)
    r = where(zero, 0.0, inner_ / where(zero, 1.0, o))
    return r if keepdims else squeeze(r, axis)


_norm2 = _prim("norm2", _norm2_impl, _norm2_vjp, _norm2_jvp)


# -- einsum ----------------------------------------------------------------------

def _parse_einsum(subscripts, shapes):
    """Explicit-mode subscripts with '...' replaced by letters."""
    subscripts = subscripts.replace(" ", "")
    if "->" in subscripts:
        ins, out = subscripts.split("->")
    else:
        ins, out = subscripts, None
    ins = ins.split(",")
    if len(ins) != len(shapes):
        raise ValueError(f"einsum: {len(ins)} operands in subscripts, {len(shapes)} given")
    used = set(subscripts)
    free = [c for c in string.ascii_letters if c not in used]
    ell_nd = 0
    for s, shape in zip(ins, shapes):
        if "..." in s:
            ell_nd = builtins_max(ell_nd, len(shape) - (len(s) - 3))
    ell = "".join(free[:ell_nd])
    new_ins = []
    for s, shape in zip(ins, shapes):
        if "..." in s:
            k = len(shape) - (len(s) - 3)
            s = s.replace("...", ell[ell_nd - k:] if k else "")
        new_ins.append(s)
    if out is None:
        counts = {}
        for s in new_ins:
            for c in s:
                counts[c] = counts.get(c, 0) + 1
        out = ell + "".join(sorted(c for c, n in counts.items() if n == 1 and c not in ell))
    else:
        out = out.replace("...", ell)
    return new_ins, out




def _einsum_impl(*operands, spec):
    ins, out = spec
    return np.einsum(",".join(ins) + "->" + out, *operands, optimize=len(ins) > 2)


def _einsum_vjp(g, needs, out_val, res, *operands, spec):
    ins, out = spec
    cts = []
    for i, (sub, x) in enumerate(zip(ins, operands)):
        if not needs[i]:
            cts.append(None)
            continue
        others = [(s, _conj(o)) for j, (s, o) in enumerate(zip(ins, operands)) if j != i]
        have = set(out).union(*[set(s) for s, _ in others])
        keep = "".join(c for c in dict.fromkeys(sub) if c in have)
        spec_i = ([out] + [s for s, _ in others], keep)
        gi = _einsum(g, *[o for _, o in others], spec=spec_i)
        if keep != sub:
            # letters summed away by this operand alone: broadcast them back
            shape = _shape(x)
            sizes = dict(zip(sub, shape))
            expand = tuple(sizes[c] if c not in keep else sizes[c] for c in sub)
            gi = _einsum(gi, spec=([keep], "".join(c for c in sub if c in keep)))
            gi = reshape(gi, tuple(sizes[c] if c in keep else 1 for c in sub))
            gi = broadcast_to(gi, expand)
        cts.append(fit(gi, x))
    return tuple(cts)


def _einsum_jvp(t, out_val, res, *operands, spec):
    r = None
    for i, ti in enumerate(t):
        if ti is None:
            continue
        ops_i = list(operands)
        ops_i[i] = ti
        d = _einsum(*ops_i, spec=spec)
        r = d if r is None else r + d
    return r


_einsum = _prim("einsum", _einsum_impl, _einsum_vjp, _einsum_jvp)


def einsum(subscripts, *operands):
    """np.einsum (explicit or implicit mode, with '...').

    An index repeated inside one operand (a diagonal, as in 'ii->i') is not
    supported: use diagonal/trace, which are differentiable.
    """
    ins, out = _parse_einsum(subscripts, [_shape(o) for o in operands])
    for s in ins:
        if len(set(s)) != len(s):
            raise NotImplementedError(f"einsum: repeated index within one operand ({s!r}) is "
                                      "not differentiable here; use diagonal() or trace()")
    return _einsum(*operands, spec=(tuple(ins), out))


# -- the operations a derivative rule runs, by the kind of its arguments -------------------

def ops_for(*xs):
    """The operations for a derivative rule's arguments: NumPy's directly when every one
    is a plain NumPy array or scalar (or None) — a first-order pass, where nothing is
    traced and the primitives' dispatch would only cost time — else linalgad's
    differentiable ones."""
    for x in xs:
        if x is not None and x.__class__ is not _ndarray and not isinstance(x, np.generic):
            return _TracedOps
    return _PlainOps


class _TracedOps:
    """linalgad's differentiable operations (any array, traced or not)."""
    plain = False
    negative, mH, mT, conj, matmul = negative, mH, mT, conj, matmul
    reshape, expand_dims, where = reshape, expand_dims, where


class _PlainOps:
    """The same on plain NumPy arrays, without the primitives' dispatch."""
    plain = True
    negative, matmul, reshape, expand_dims = np.negative, np.matmul, np.reshape, np.expand_dims
    where = np.where

    @staticmethod
    def mT(x):
        return np.swapaxes(x, -1, -2)

    @staticmethod
    def conj(x):
        return np.conj(x) if x.dtype.kind == "c" else x

    @staticmethod
    def mH(x):
        return _PlainOps.conj(np.swapaxes(x, -1, -2))
