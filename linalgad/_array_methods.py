"""Traced values behave like arrays: operators, methods and NumPy's protocols.

The operators and methods of :class:`~linalgad.tape.Tracer` call the
differentiable ops.  NumPy functions and ufuncs applied to a traced value
(``np.sum(x)``, ``np.exp(x)``, ``np.linalg.solve(A, b)``) reach linalgad
through ``__array_ufunc__`` and ``__array_function__``; a NumPy function
linalgad cannot differentiate raises a TypeError naming it rather than
silently dropping the derivative.  ``linalgad.linalg`` adds its functions to
the table with :func:`register_numpy_function`.
"""

from __future__ import annotations

import inspect

import numpy as np

from . import ops
from .tape import JitTracer, Tracer

__all__ = ["register_numpy_function", "NUMPY_FUNCTIONS", "NUMPY_UFUNCS"]


def _rev(op):
    def reflected(self, other):
        return op(other, self)
    reflected.__name__ = f"r{op.name if hasattr(op, 'name') else op.__name__}"
    return reflected


def _fwd(op):
    call = op.__call__       # skip one attribute lookup per operator use

    def method(self, other):
        return call(self, other)
    return method


def _compare(np_op):
    def method(self, other):
        # comparisons are not differentiable: they return plain booleans
        return np_op(ops.asarray_value(self), ops.asarray_value(other))
    return method


def _array(self, dtype=None, copy=None):
    raise TypeError(
        "cannot convert a traced value to a NumPy array: that would drop its derivative. "
        "Use linalgad operations (or NumPy functions that linalgad supports) on it, "
        "or call linalgad.stop_gradient / take the value outside the differentiated function.")


_METHODS = {
    "__add__": _fwd(ops.add), "__radd__": _rev(ops.add),
    "__sub__": _fwd(ops.subtract), "__rsub__": _rev(ops.subtract),
    "__mul__": _fwd(ops.multiply), "__rmul__": _rev(ops.multiply),
    "__truediv__": _fwd(ops.divide), "__rtruediv__": _rev(ops.divide),
    "__pow__": _fwd(ops.power), "__rpow__": _rev(ops.power),
    "__matmul__": _fwd(ops.matmul), "__rmatmul__": _rev(ops.matmul),
    "__neg__": lambda self: ops.negative(self),
    "__pos__": lambda self: self,
    "__abs__": lambda self: ops.abs(self),
    "__getitem__": lambda self, idx: ops.getitem(self, idx),
    "__lt__": _compare(np.less), "__le__": _compare(np.less_equal),
    "__gt__": _compare(np.greater), "__ge__": _compare(np.greater_equal),
    "__eq__": _compare(np.equal), "__ne__": _compare(np.not_equal),
    "__hash__": object.__hash__,
    "__array__": _array,
    "T": property(lambda self: ops.transpose(self)),
    "mT": property(lambda self: ops.mT(self)),
    "real": property(lambda self: ops.real(self)),
    "imag": property(lambda self: ops.imag(self)),
    "conj": lambda self: ops.conj(self),
    "conjugate": lambda self: ops.conj(self),
    "sum": lambda self, axis=None, keepdims=False: ops.sum(self, axis, keepdims),
    "mean": lambda self, axis=None, keepdims=False: ops.mean(self, axis, keepdims),
    "max": lambda self, axis=None, keepdims=False: ops.max(self, axis, keepdims),
    "min": lambda self, axis=None, keepdims=False: ops.min(self, axis, keepdims),
    "reshape": lambda self, *shape: ops.reshape(
        self, shape[0] if len(shape) == 1 else shape),
    "ravel": lambda self: ops.ravel(self),
    "flatten": lambda self: ops.ravel(self),
    "transpose": lambda self, *axes: ops.transpose(
        self, (axes[0] if len(axes) == 1 and not isinstance(axes[0], int) else axes) or None),
    "swapaxes": lambda self, a, b: ops.swapaxes(self, a, b),
    "squeeze": lambda self, axis=None: ops.squeeze(self, axis),
    "diagonal": lambda self, offset=0, axis1=0, axis2=1: ops.diagonal(self, offset, axis1, axis2),
    "trace": lambda self, offset=0, axis1=0, axis2=1: ops.trace(self, offset, axis1, axis2),
    "dot": lambda self, other: ops.dot(self, other),
    "astype": lambda self, dtype, copy=True: ops.astype(self, dtype),
    "item": lambda self, *index: self._concrete("item"),
    "tolist": lambda self: self._concrete("tolist"),
}

for _name, _m in _METHODS.items():
    if callable(_m) and not isinstance(_m, property) and getattr(_m, "__name__", "") == "<lambda>":
        _m.__name__ = _name
    setattr(Tracer, _name, _m)


NUMPY_UFUNCS = {
    np.add: ops.add, np.subtract: ops.subtract, np.multiply: ops.multiply,
    np.true_divide: ops.divide, np.power: ops.power, np.negative: ops.negative,
    np.positive: ops.positive, np.absolute: ops.abs, np.exp: ops.exp, np.expm1: ops.expm1,
    np.log: ops.log, np.log1p: ops.log1p, np.sqrt: ops.sqrt, np.square: ops.square,
    np.sin: ops.sin, np.cos: ops.cos, np.arcsin: ops.arcsin, np.arccos: ops.arccos, np.tan: ops.tan, np.tanh: ops.tanh, np.sinh: ops.sinh,
    np.cosh: ops.cosh, np.sign: ops.sign, np.maximum: ops.maximum, np.minimum: ops.minimum,
    np.conjugate: ops.conj, np.matmul: ops.matmul,
}
_COMPARISONS = {np.less, np.less_equal, np.greater, np.greater_equal, np.equal, np.not_equal,
                np.isfinite, np.isnan, np.isinf, np.signbit}

NUMPY_FUNCTIONS = {
    np.sum: ops.sum, np.mean: ops.mean, np.max: ops.max, np.min: ops.min,
    np.amax: ops.max, np.amin: ops.min,
    np.reshape: ops.reshape, np.ravel: ops.ravel, np.transpose: ops.transpose,
    np.swapaxes: ops.swapaxes, np.moveaxis: ops.moveaxis, np.expand_dims: ops.expand_dims,
    np.squeeze: ops.squeeze, np.broadcast_to: ops.broadcast_to, np.where: ops.where,
    np.diagonal: ops.diagonal, np.diag: ops.diag, np.trace: ops.trace, np.tril: ops.tril,
    np.triu: ops.triu, np.concatenate: ops.concatenate, np.stack: ops.stack,
    np.real: ops.real, np.imag: ops.imag, np.conj: ops.conj, np.outer: ops.outer,
    np.dot: ops.dot, np.vdot: ops.vdot, np.inner: ops.inner, np.einsum: ops.einsum,
    np.linalg.norm: ops.norm, np.matrix_transpose: ops.mT,
    np.zeros_like: ops.zeros_like, np.ones_like: ops.ones_like,
    np.shape: lambda x: x.shape, np.ndim: lambda x: x.ndim, np.size: lambda x: x.size,
}


def register_numpy_function(np_func, impl):
    """Route ``np_func`` applied to traced values to the differentiable ``impl``."""
    NUMPY_FUNCTIONS[np_func] = impl


def _qualname(f):
    mod = getattr(f, "__module__", None) or "numpy"
    return f"{mod}.{getattr(f, '__name__', repr(f))}"


def _array_ufunc(self, ufunc, method, *inputs, **kwargs):
    if method == "__call__" and not kwargs:
        op = NUMPY_UFUNCS.get(ufunc)
        if op is not None:
            return op(*inputs)
        if ufunc in _COMPARISONS:
            return ufunc(*(ops.asarray_value(i) for i in inputs))
    detail = f".{method}" if method != "__call__" else ""
    extra = f" with {sorted(kwargs)}" if kwargs else ""
    raise TypeError(f"linalgad cannot differentiate numpy.{ufunc.__name__}{detail}{extra}; "
                    "use an operation from linalgad (see linalgad.ops) instead")


def _array_function(self, func, types, args, kwargs):
    impl = NUMPY_FUNCTIONS.get(func)
    if impl is None:
        raise TypeError(f"linalgad cannot differentiate {_qualname(func)}; it has no "
                        "derivative rule. Use a linalgad operation instead, or open an issue.")
    try:
        return impl(*args, **kwargs)
    except TypeError as exc:
        if _accepts(impl, args, kwargs):
            raise
        # an argument NumPy has and linalgad's op has not (out=, dtype=, where=, ...)
        raise TypeError(f"linalgad cannot differentiate {_qualname(func)} with these arguments "
                        f"({exc}); use the linalgad operation's arguments instead") from exc


def _accepts(impl, args, kwargs):
    """Whether impl's signature binds args and kwargs (True when it cannot be inspected)."""
    try:
        sig = inspect.signature(impl)
    except (TypeError, ValueError):
        return True
    try:
        sig.bind(*args, **kwargs)
    except TypeError:
        return False
    return True


def _cupy_elementwise(self, kernel, *args, **kwargs):
    """CuPy's hook for an elementwise kernel with a traced operand.

    ``cupy_array * x`` does not reach NumPy's protocol: CuPy defers to the right operand
    only where its ``__array_ufunc__`` is None, and otherwise runs its own ufunc, which
    asks each argument for this method before rejecting what it cannot read.  The ufunc
    ("cupy_multiply") is NumPy's of the same name, and takes the route NumPy's would."""
    name = getattr(kernel, "name", "")
    ufunc = getattr(np, name[len("cupy_"):] if name.startswith("cupy_") else name, None)
    if not isinstance(ufunc, np.ufunc):
        raise TypeError(f"linalgad cannot differentiate CuPy's {name or kernel!r}; use an "
                        "operation from linalgad (see linalgad.ops) instead")
    return type(self).__array_ufunc__(self, ufunc, "__call__", *args, **kwargs)


Tracer.__array_ufunc__ = _array_ufunc
Tracer.__array_function__ = _array_function
Tracer.__cupy_override_elementwise_kernel__ = _cupy_elementwise


# -- values of a linalgad.jit recording -----------------------------------------------------
# A JitTracer carries no derivative: anything a plain array does that linalgad has no
# operation for (a NumPy function without a rule, float(x), x.item(), x.flags, np.asarray)
# runs on its value, as it would eagerly, and marks the recording as not replayable.
# Where a derivative trace is involved too, the rules above apply unchanged.

def _only_jit(values):
    """True when no value is a tracer other than a JitTracer."""
    return all(not isinstance(v, Tracer) or v.__class__ is JitTracer for v in values)


def _plain(x, why):
    if x.__class__ is JitTracer:
        x._trace.escape(why)
        return x.value
    if isinstance(x, (tuple, list)):
        return type(x)(_plain(e, why) for e in x)
    return x


def _jit_array_ufunc(self, ufunc, method, *inputs, **kwargs):
    if (method == "__call__" and not kwargs and ufunc in NUMPY_UFUNCS) or \
            not _only_jit(inputs + tuple(kwargs.values())):
        return _array_ufunc(self, ufunc, method, *inputs, **kwargs)
    why = f"numpy.{ufunc.__name__} ran on a traced value"
    return getattr(ufunc, method)(*_plain(inputs, why),
                                  **{k: _plain(v, why) for k, v in kwargs.items()})


def _jit_array_function(self, func, types, args, kwargs):
    if func in NUMPY_FUNCTIONS or not _only_jit(list(args) + list(kwargs.values())):
        return _array_function(self, func, types, args, kwargs)
    why = f"{_qualname(func)} ran on a traced value"
    return func(*_plain(args, why), **{k: _plain(v, why) for k, v in kwargs.items()})


def _jit_value_method(name):
    def method(self, *args):
        self._trace.escape(f"{name}() of a traced value")
        return getattr(self.value, name)(*args)
    method.__name__ = name
    return method


def _jit_getattr(self, name):
    if name.startswith("__"):
        raise AttributeError(name)
    self._trace.escape(f".{name} of a traced value")
    return getattr(self.value, name)


def _jit_array(self, dtype=None, copy=None):
    self._trace.escape("a traced value was converted to a NumPy array")
    return np.asarray(self.value, dtype=dtype)


JitTracer.__array_ufunc__ = _jit_array_ufunc
JitTracer.__array_function__ = _jit_array_function
JitTracer.__array__ = _jit_array
JitTracer.__getattr__ = _jit_getattr
for _name in ("__bool__", "__float__", "__int__", "__complex__", "__index__", "item",
              "tolist"):
    setattr(JitTracer, _name, _jit_value_method(_name))
