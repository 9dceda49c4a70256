"""Public test helpers.

* :func:`check_grads`, :func:`check_vjp`, :func:`check_jvp`,
  :func:`grad_errors`: derivatives against finite differences and the
  dot-product test, to any order.
* :mod:`linalgad.testing.matrices`: random matrices as NumPy arrays
  (general, SPD, symmetric with spread spectrum, orthogonal, triangular, tall,
  rank deficient, repeated eigenvalues), no extra dependency.
* :mod:`linalgad.testing.strategies`: the same as Hypothesis strategies
  (needs ``pip install 'linalgad[test]'``); imported on first use.
"""

from . import matrices
from .check import GradCheckError, check_grads, check_jvp, check_vjp, default_tolerance, grad_errors

__all__ = ["check_grads", "check_vjp", "check_jvp", "grad_errors", "default_tolerance",
           "GradCheckError", "matrices", "strategies"]


def __getattr__(name):
    if name == "strategies":
        import importlib
        return importlib.import_module(".strategies", __name__)
    raise AttributeError(name)
