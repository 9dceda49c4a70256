"""orth, subspace_angles.   Derivation: docs/derivations/subspaces.md

orth             Q = U[:, :r], the left singular vectors of the r singular values above
                 rcond · s_max (SciPy's): a basis, so its derivative exists for losses that
                 depend on span(Q) only (the svd rule reports the others).
subspace_angles  the principal angles θ between span(A) and span(B), descending: with
                 QA = orth(A), QB = orth(B), cos θ = svdvals(QAᴴ QB) and sin θ =
                 svdvals(QB − QA QAᴴ QB) (Knyazev & Argentati's pair, as SciPy): the angle
                 comes from its sine where it is below π/4 and from its cosine above, so that
                 neither arcsin nor arccos is taken near ±1 — where their derivative is
                 infinite — and the branch not taken never sees a value there (its input is
                 replaced, not only its output masked: a masked infinite derivative would
                 still give 0 · ∞).

No primitive of its own: svd, svdvals and elementwise operations, whose rules give every
order of derivative; the angles are functions of the two subspaces, so they are
independent of the bases' gauge, which the svd rule verifies.
"""

from __future__ import annotations

import numpy as np

from .. import ops
from ..transforms import stop_gradient
from ..registry import Domain, Rule
from ..testing import matrices as M
from . import _common as C
from .svd import _svd, svd, svdvals

__all__ = ["orth", "subspace_angles", "RULES"]


def _rank(s, shape, rcond):
    """SciPy's numerical rank: the singular values above rcond · s_max (rcond defaulting to
    eps · max(m, n)); an integer, no gradient (under jit, decided again on every replay)."""
    def count(sv):
        r = np.finfo(sv.dtype).eps * max(shape) if rcond is None else rcond
        tol = float(sv.max()) * r if sv.size else 0.0
        return int((sv > tol).sum())
    return C.compute(count, (s,), decide=lambda r: r, name="orth's rank")


def orth(A, rcond=None):
    """An orthonormal basis of the range of ``A`` (scipy.linalg.orth), differentiable for
    losses that depend on the range only.

    The left singular vectors of the singular values above ``rcond · s_max`` (``rcond``
    defaulting to eps · max(m, n)), (m, r).  The basis is unique up to a unitary mixing of
    its columns (more freedom where singular values repeat): a loss that depends on that
    choice gets the svd rule's GaugeWarning or error, one through Q Qᴴ (or the angles of
    :func:`subspace_angles`) a correct gradient.  2-D only, as SciPy.

    Valid when: the numerical rank r is constant near A (r < min(m, n) is allowed).
    """
    op = "orth"
    A = _matrix(op, A, "A")
    U, s, _ = svd(A, full_matrices=False, check_finite=False)
    r = _rank(s, C.peek(A).shape, rcond)
    return ops.getitem(U, (slice(None), slice(0, r)))


def _matrix(op, A, name):
    v = C.peek(A)
    if v.ndim != 2:
        raise ValueError(f"{op}: expected a 2-D array for {name}, got shape {v.shape}")
    dtype = C.result_dtype(op, v)
    C.checked(op, (name,), (A,), True)
    return C.promote(A, dtype)


def subspace_angles(A, B):
    """The principal angles between the column spaces of ``A`` (m, nA) and ``B`` (m, nB),
    in radians, descending (scipy.linalg.subspace_angles), differentiable in A and B.

    Bases from :func:`orth` (rank decided as SciPy does), the cosines as the singular
    values of QAᴴ QB, the sines as those of QB − QA (QAᴴ QB) (or the other way round when
    nA < nB); each angle from its sine where it is below π/4, from its cosine above
    (subspaces.md): the derivative is finite at π/2, 0 at an angle that is 0 near the
    inputs too (subspaces whose dimensions force an intersection), the subgradient 0 at
    an angle 0 to rounding otherwise (a kink), and exact at repeated angles (the svd
    rule's clusters).  2-D only, as SciPy.

    Valid when: the ranks of A and B are constant near them; the derivative of an angle
    is that of a singular value, so it is not differentiable where two angles cross (the
    sorted output is).
    """
    op = "subspace_angles"
    A, B = _matrix(op, A, "A"), _matrix(op, B, "B")
    dtype = np.result_type(C.peek(A).dtype, C.peek(B).dtype)
    A, B = C.promote(A, dtype), C.promote(B, dtype)
    if C.peek(A).shape[0] != C.peek(B).shape[0]:
        raise ValueError(f"{op}: A and B must have the same number of rows; got "
                         f"{C.peek(A).shape} and {C.peek(B).shape}")
    QA, QB = orth(A), orth(B)
    QAB = ops.matmul(ops.mH(QA), QB)
    cos = svdvals(QAB, check_finite=False)                       # descending: ascending θ
    if C.peek(QA).shape[1] >= C.peek(QB).shape[1]:
        R = QB - ops.matmul(QA, QAB)
    else:
        R = QA - ops.matmul(QB, ops.mH(QAB))
    k = ops._shape(cos)[-1]
    sin = svdvals(R, check_finite=False)[..., :k]                # descending: descending θ
    cos = ops.getitem(cos, (Ellipsis, slice(None, None, -1)))   # ascending: descending θ
    # per angle (descending): small angles (cos² ≥ ½) from the sine, the others from the
    # cosine; each branch evaluated only on values where its derivative is finite
    small = C.compute(lambda c: c * c >= 0.5, (cos,), name="subspace_angles' branches")
    zero = np.zeros((), dtype=C.peek(sin).dtype)
    one = np.ones((), dtype=C.peek(sin).dtype)
    theta = ops.where(small, ops.arcsin(ops.minimum(ops.where(small, sin, zero), one)),
                      ops.arccos(ops.minimum(ops.where(small, zero, cos), one)))
    # subspaces of dimensions rA + rB > m meet in rA + rB − m dimensions at least: that
    # many angles are 0 near A and B too, so their derivative is 0 — not the subgradient
    # of a zero singular value of R, whose vectors are rounding there
    m, ra, rb = C.peek(A).shape[0], C.peek(QA).shape[1], C.peek(QB).shape[1]
    fixed = min(max(ra + rb - m, 0), k)
    if fixed:
        theta = ops.concatenate([ops.getitem(theta, slice(0, k - fixed)),
                                 stop_gradient(ops.getitem(theta, slice(k - fixed, k)))])
    # an angle 0 to rounding that the dimensions do not force is a kink (θ behaves as |x|):
    # its subgradient 0, not the rounding-chosen singular vectors of R's zero value
    tiny = C.compute(lambda sv: sv <= 16 * m * np.finfo(sv.dtype).eps, (sin,),
                     name="subspace_angles' zero angles")
    theta = ops.where(tiny, stop_gradient(theta), theta)
    return theta


# -- registry -------------------------------------------------------------------------------

def _angles_domain(m, na, nb):
    def make(rng, _n, batch, dtype):
        A = M.random_general(rng, m, (), dtype)[:, :na]
        # B shares part of A's span: angles spread over (0, π/2)
        mix = rng.standard_normal((na, nb))
        B = A @ mix.astype(dtype) + 0.7 * M.random_general(rng, m, (), dtype)[:, :nb]
        return (np.ascontiguousarray(A), np.ascontiguousarray(B.astype(dtype))), {}
    return make


def subspace_angles_reference(A, B):
    import scipy.linalg
    return scipy.linalg.subspace_angles(A, B)


RULES = (
    Rule(
        name="subspace_angles",
        fun=subspace_angles,
        primitive=_svd,
        domains=(
            Domain("wider-A", _angles_domain(6, 3, 2), "6×3 and 6×2"),
            Domain("wider-B", _angles_domain(5, 2, 3), "5×2 and 5×3"),
        ),
        derivation="docs/derivations/subspaces.md",
        reference=subspace_angles_reference,
        batch_shapes=((),),
        references=("Knyazev, Argentati 2002, Principal angles between subspaces in an "
                    "A-based scalar product",),
    ),
)
