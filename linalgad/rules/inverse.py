"""inv: Y = A⁻¹.   Derivation: docs/derivations/inverse.md

Defining equation  A Y = I.
Differential       dY = −Y dA Y.
Reverse            Ā = −Yᴴ Ȳ Yᴴ
Forward            Ẏ = −Y Ȧ Y

Both derivative passes are two matrix products with the stored inverse; no
factorization is redone.  The ``factors=`` cache lets another rule (slogdet,
det) obtain A⁻¹ from LU factors it already has, while the result stays a
differentiable function of A.
"""

from __future__ import annotations

import numpy as np

from .. import ops
from ..backend import kernels_for
from ..registry import Domain, Rule
from ..tape import Primitive
from ..testing import matrices as M
from . import _common as C

__all__ = ["inv", "RULES"]


def inv_forward(A, *, factors=None):
    K = kernels_for(A)
    if factors is not None:
        return K.lu_inverse(factors)
    return K.inv(A, op="inv")


def inv_vjp(Y_bar, needs, Y, res, A, *, factors=None):
    """Ā = −Yᴴ Ȳ Yᴴ."""
    YH = ops.mH(Y)
    return (ops.fit(-ops.matmul(YH, ops.matmul(Y_bar, YH)), A),)


def inv_jvp(tangents, Y, res, A, *, factors=None):
    """Ẏ = −Y Ȧ Y."""
    (A_dot,) = tangents
    return -ops.matmul(Y, ops.matmul(A_dot, Y))


_inv = Primitive("inv", inv_forward, inv_vjp, inv_jvp)


def inverse(A, factors=None):
    """A⁻¹ of a checked square stack, optionally from A's LU factors (differentiable in A)."""
    return _inv(A, factors=factors)


def inv(a, overwrite_a=False, check_finite=True, *, assume_a=None, lower=False):
    """The inverse of a square matrix (or of each matrix of a stack), differentiable.

    numpy.linalg.inv / scipy.linalg.inv: ``a`` is (..., n, n); the result has
    its shape and (inexact) dtype.  Raises LinAlgError for a singular matrix,
    naming its index in a stack; ValueError for infs or NaNs when
    ``check_finite`` (the default).  ``overwrite_a`` is accepted and ignored.
    As NumPy's (and unlike SciPy's), no LinAlgWarning for an ill-conditioned
    matrix: ``cond(a)`` measures it.

    SciPy's ``assume_a`` ('diagonal', 'upper triangular', 'lower triangular',
    'pos', 'sym', 'her'; with ``lower`` choosing the triangle of the last three)
    is ``solve(a, I, assume_a=..., lower=...)``: only the entries that structure
    reads are read, and only they get gradient.  Without it the whole matrix is
    inverted and differentiated (SciPy detects structure then; a gradient that
    changed with the values' pattern would not be one function's).  'diagonal'
    returns the inverse of the diagonal (SciPy 1.17's inv copies the unread
    off-diagonal entries into its result; its solve does not).

    Valid when: a is nonsingular.  The gradient grows like cond(a)²; prefer
    ``solve`` when the inverse is only applied to vectors.
    """
    op = "inv"
    A = C.prepare(op, a, check_finite)
    if assume_a is None or assume_a in ("gen", "general"):
        return _inv(A)
    from .solve import solve                    # the structured solvers and their rules
    av = C.peek(A)
    eye = C.eye_like(av.shape[-1], av.dtype, av)            # (CuPy's for a CuPy a)
    try:
        return solve(A, eye, assume_a=assume_a, lower=lower, check_finite=False)
    except ValueError as e:         # LinAlgError included: the same class, named for inv
        raise type(e)(str(e).replace("solve:", "inv:", 1)) from None


def inv_reference(a):
    return np.linalg.inv(a)


def _domain_general(rng, n, batch, dtype):
    return (M.random_general(rng, n, batch, dtype),), {}


def _domain_spd(rng, n, batch, dtype):
    return (M.random_spd(rng, n, batch, dtype),), {}


RULES = (
    Rule(
        name="inv",
        fun=inv,
        primitive=_inv,
        domains=(
            Domain("general", _domain_general, "well-conditioned general matrices"),
            Domain("spd", _domain_spd, "symmetric / Hermitian positive definite"),
        ),
        derivation="docs/derivations/inverse.md",
        reference=inv_reference,
        references=("Giles 2008",),
    ),
)
