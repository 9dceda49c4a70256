"""Differentiable linear algebra with NumPy's and SciPy's names and conventions.

A user changes an import, not their code::

    from linalgad import linalg as la      # instead of numpy.linalg / scipy.linalg
    x = la.solve(A, b, assume_a="pos")

Each function here is backed by a rule family in ``linalgad/rules/`` (see
``python -m linalgad rules``).  Applied to traced values, NumPy's own
functions (``np.linalg.solve``) are routed here too.
"""

from __future__ import annotations

import numpy as np

from ._array_methods import register_numpy_function
from .ops import norm
from .rules.solve import solve

__all__ = ["solve", "norm", "LinAlgError"]

LinAlgError = np.linalg.LinAlgError

register_numpy_function(np.linalg.solve, solve)
