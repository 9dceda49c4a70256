"""linalgad: exact gradients, JVPs and Hessian-vector products through linear algebra.

    import linalgad as lad
    from linalgad import linalg as la

    def loss(A, b):
        x = la.solve(A, b)
        return lad.sum(x * x)

    gA, gb = lad.grad(loss, argnums=(0, 1))(A, b)

Transforms follow JAX (grad, value_and_grad, vjp, jvp, jacrev, jacfwd, hvp,
checkpoint); ``linalgad.linalg`` follows numpy.linalg / scipy.linalg; the
array operations below (sum, exp, einsum, ...) follow NumPy.  Complex
gradients use the convention X̄ = ∂L/∂Re X + i ∂L/∂Im X.
"""

from . import _array_methods  # noqa: F401  (makes traced values array-like)
from . import _memory
from ._memory import keep_freed_memory
from . import linalg, testing
from .rules._spectral import GaugeWarning
from .ops import (abs, absolute, add, amax, amin, arccos, arcsin, astype, broadcast_to,
                  concatenate, conj, conjugate, cos, cosh, diag, diagonal, divide, dot, einsum, exp, expand_dims,
                  expm1, imag, inner, log, log1p, matmul, matrix_transpose, max, maximum, mean,
                  mH, min, minimum, moveaxis, mT, multiply, negative, norm, ones_like, outer,
                  power, ravel, real, reshape, sign, sin, sinh, sqrt, square, squeeze, stack,
                  subtract, sum, swapaxes, tan, tanh, trace, transpose, tril, triu, true_divide,
                  vdot, where, zeros_like)
from .ops import getitem as take_index  # x[idx] as a function (basic, integer, boolean)
from .tape import Tracer
from .transforms import (checkpoint, debug_nans, grad, hvp, jacfwd, jacrev, jit, jvp,
                         stop_gradient, value_and_grad, vjp)

__version__ = "0.1.0"

_memory.configure_from_environment()   # keep freed heap memory for reuse (see _memory)

__all__ = [
    "grad", "value_and_grad", "vjp", "jvp", "jacrev", "jacfwd", "hvp", "checkpoint", "jit",
    "stop_gradient", "debug_nans", "keep_freed_memory", "linalg", "testing", "Tracer",
    "GaugeWarning",
    "abs", "absolute", "add", "amax", "amin", "arccos", "arcsin", "astype", "broadcast_to", "concatenate", "conj",
    "conjugate", "cos", "cosh", "diag", "diagonal", "divide", "dot", "einsum", "exp",
    "expand_dims", "expm1", "imag", "inner", "log", "log1p", "matmul", "matrix_transpose",
    "max", "maximum", "mean", "mH", "min", "minimum", "moveaxis", "mT", "multiply", "negative",
    "norm", "ones_like", "outer", "power", "ravel", "real", "reshape", "sign", "sin", "sinh",
    "sqrt", "square", "squeeze", "stack", "subtract", "sum", "swapaxes", "take_index", "tan",
    "tanh", "trace",
    "transpose", "tril", "triu", "true_divide", "vdot", "where", "zeros_like",
]
