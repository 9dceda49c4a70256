"""solve_triangular: x = op(T)⁻¹ b.   Derivation: docs/derivations/triangular.md

Defining equation  op(T) x = b, T the referenced triangle of a (unit diagonal
                   when ``unit_diagonal``), op ∈ {identity, ᵀ, ᴴ} (trans 0/1/2).
Differential       op(T) dx = db − op(dT) x.
Reverse            b̄ = op(T)⁻ᴴ x̄   (one triangular solve with the flipped op)
                   Ā = proj(−b̄ xᴴ)  (op = identity; see trisolve_vjp for the others)
Forward            ẋ = op(T)⁻¹ (ḃ − op(proj Ȧ) x)

proj keeps the referenced triangle (strictly, when the diagonal is taken as
one): entries the solver never reads get no gradient.  Every pass is O(n² k).
The same differentiable primitive is the building block of cho_solve and
lu_solve, whose gradients are its chain rule.
"""

from __future__ import annotations

import numpy as np

from .. import ops
from ..backend import _TRANS, kernels_for
from ..registry import Domain, Rule
from ..tape import Primitive
from ..testing import matrices as M
from . import _common as C

__all__ = ["solve_triangular", "RULES"]


def trisolve_forward(A, b, *, lower, trans=0, unit_diagonal=False, op="solve_triangular"):
    K = kernels_for(A, b)
    return C.broadcast_solve(A, b, lambda A_, b_: K.solve_triangular(
        A_, b_, lower=lower, trans=trans, unit_diagonal=unit_diagonal, op=op))


def _offset(lower, unit_diagonal):
    return (-1 if lower else 1) if unit_diagonal else 0


def _project(G, lower, unit_diagonal):
    k = _offset(lower, unit_diagonal)
    return ops.tril(G, k) if lower else ops.triu(G, k)


def trisolve_vjp(x_bar, needs, x, res, A, b, *, lower, trans=0, unit_diagonal=False,
                 op="solve_triangular"):
    """b̄ = op(T)⁻ᴴ x̄;  Ā = proj(−b̄ xᴴ), proj(−conj(x) b̄ᵀ), proj(−x b̄ᴴ) for op = I, ᵀ, ᴴ."""
    b_bar = C.adjoint_rhs(lambda rhs, t: _trisolve(A, rhs, lower=lower, trans=t,
                                                   unit_diagonal=unit_diagonal, op=op),
                          x_bar, trans)
    A_bar = None
    if needs[0]:
        A_bar = ops.fit(C.solve_cotangent(b_bar, x, trans,
                                          project=(lower, _offset(lower, unit_diagonal)),
                                          a_shape=ops._shape(A)), A)
    return A_bar, (ops.fit(b_bar, b) if needs[1] else None)


def trisolve_jvp(tangents, x, res, A, b, *, lower, trans=0, unit_diagonal=False,
                 op="solve_triangular"):
    """ẋ = op(T)⁻¹ (ḃ − op(proj Ȧ) x)."""
    A_dot, b_dot = tangents
    rhs = None
    if A_dot is not None:
        rhs = -ops.matmul(C.op(_project(A_dot, lower, unit_diagonal), trans), x)
    if b_dot is not None:
        rhs = b_dot if rhs is None else rhs + b_dot
    return _trisolve(A, rhs, lower=lower, trans=trans, unit_diagonal=unit_diagonal, op=op)


_trisolve = Primitive("solve_triangular", trisolve_forward, trisolve_vjp, trisolve_jvp)


def triangular_solve(a, b, *, lower, trans=0, unit_diagonal=False, op="solve_triangular"):
    """The primitive on checked, promoted arguments; b (n,) or (..., n, k)."""
    if (type(a) is np.ndarray and type(b) is np.ndarray and b.ndim == a.ndim
            and a.shape[:-2] == b.shape[:-2]):
        # plain arrays of one stack (what first-order reverse passes solve with): the
        # kernel itself, without the primitive's dispatch and the stack broadcasting
        return kernels_for(a).solve_triangular(a, b, lower=lower, trans=trans,
                                               unit_diagonal=unit_diagonal, op=op)
    return C.on_columns(lambda b_: _trisolve(a, b_, lower=lower, trans=trans,
                                             unit_diagonal=unit_diagonal, op=op), b)


def solve_triangular(a, b, trans=0, lower=False, unit_diagonal=False, overwrite_b=False,
                     check_finite=True):
    """Solve ``op(a) x = b`` for triangular ``a``, differentiable in ``a`` and ``b``.

    scipy.linalg.solve_triangular's signature and meaning: only the lower
    (``lower=True``) or upper (default) triangle of ``a`` is read; with
    ``unit_diagonal=True`` its diagonal is taken to be ones and not read.
    ``trans`` is 0/'N' (a x = b), 1/'T' (aᵀ x = b) or 2/'C' (aᴴ x = b).
    ``a`` is (..., n, n); ``b`` is (n,) or (..., n, k) (NumPy's stacking,
    stacks broadcast).  Only the entries the solver reads receive gradient.

    Raises LinAlgError when a diagonal entry is exactly zero (naming the
    matrix of a stack), ValueError for incompatible shapes or bad ``trans``.
    ``overwrite_b`` is accepted and ignored.

    Valid when: the referenced triangle has a nonzero diagonal.  Forward,
    reverse and forward-mode passes are each one triangular solve: O(n² k).
    """
    op = "solve_triangular"
    if trans not in _TRANS:
        raise ValueError(f"{op}: trans must be 0, 1, 2, 'N', 'T' or 'C'; got {trans!r}")
    trans = _TRANS[trans]
    av = C.square_matrix(op, a)
    bv = C.peek(b)
    C.rhs_shape(op, av.shape, bv.shape)
    dtype = C.result_dtype(op, av, bv)
    C.checked(op, ("a", "b"), (a, b), check_finite)
    return triangular_solve(C.promote(a, dtype), C.promote(b, dtype), lower=bool(lower),
                            trans=trans, unit_diagonal=bool(unit_diagonal))


# -- registry -------------------------------------------------------------------------

def solve_triangular_reference(a, b, trans=0, lower=False, unit_diagonal=False):
    """scipy.linalg.solve_triangular matrix by matrix over the broadcast stack."""
    import scipy.linalg
    vector = b.ndim == 1
    x = C.per_matrix(lambda ai, bi: scipy.linalg.solve_triangular(
        ai, bi, trans=trans, lower=lower, unit_diagonal=unit_diagonal),
        a, b[:, None] if vector else b, cores=(2, 2))
    return x[..., 0] if vector else x


def _triangular(rng, n, batch, dtype):
    # a full array: the rule must read (and differentiate) one triangle only
    return M.random_general(rng, n, batch, dtype) + 2 * np.eye(n, dtype=dtype)


def _domain(**kw):
    def make(rng, n, batch, dtype):
        return (_triangular(rng, n, batch, dtype), M.random_rhs(rng, n, 2, batch, dtype)), kw
    return make


def _domain_vector(rng, n, batch, dtype):
    return (_triangular(rng, n, batch, dtype), M.random_vector(rng, n, (), dtype)), \
        {"lower": True, "trans": "C"}


def _domain_broadcast(rng, n, batch, dtype):
    return (_triangular(rng, n, (), dtype), M.random_rhs(rng, n, 2, batch or (2,), dtype)), \
        {"lower": True}


RULES = (
    Rule(
        name="solve_triangular",
        fun=solve_triangular,
        primitive=_trisolve,
        domains=(
            Domain("upper", _domain(), "upper triangle of a full array, trans 0"),
            Domain("lower-T", _domain(lower=True, trans=1), "lower triangle, aᵀ x = b"),
            Domain("upper-C-unit", _domain(trans=2, unit_diagonal=True),
                   "upper, aᴴ x = b, unit diagonal (not read)"),
            Domain("lower-unit", _domain(lower=True, unit_diagonal=True),
                   "lower, unit diagonal"),
            Domain("vector", _domain_vector, "b a vector, broadcast over a's stack"),
            Domain("broadcast", _domain_broadcast, "one a, a stack of right-hand sides"),
        ),
        derivation="docs/derivations/triangular.md",
        reference=solve_triangular_reference,
        references=("Giles 2008", "Seeger et al. 2017, Auto-differentiating linear algebra"),
    ),
)
