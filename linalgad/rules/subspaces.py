"""orth, null_space, subspace_angles.   Derivation: docs/derivations/subspaces.md

orth             Q = U[:, :r], the left singular vectors of the r singular values above
                 rcond · s_max (SciPy's): a basis, so its derivative exists for losses that
                 depend on span(Q) only (the svd rule reports the others).
null_space       N = V[:, r:], an orthonormal basis of the null space (SciPy's, from the
                 full SVD): its own primitive on the row-space basis V_r, since N holds
                 completion vectors the svd rule cannot differentiate; from A N = 0 and
                 the gauge Nᴴ dN = 0, dN = −A⁺ dA N and Ā = −A⁺ᴴ N̄ Nᴴ, with A⁺ lstsq's
                 constant-rank pseudo-inverse primitive (exact Hessians at rank
                 deficiency too, lstsq.md §8); a loss
                 that depends on the basis of span(N) (Nᴴ N̄ not Hermitian) raises.
subspace_angles  the principal angles θ between span(A) and span(B), descending: with
                 QA = orth(A), QB = orth(B), cos θ = svdvals(QAᴴ QB) and sin θ =
                 svdvals(QB − QA QAᴴ QB) (Knyazev & Argentati's pair, as SciPy): the angle
                 comes from its sine where it is below π/4 and from its cosine above, so that
                 neither arcsin nor arccos is taken near ±1 — where their derivative is
                 infinite — and the branch not taken never sees a value there (its input is
                 replaced, not only its output masked: a masked infinite derivative would
                 still give 0 · ∞).

orth and subspace_angles have no primitive of their own: svd, svdvals and elementwise
operations, whose rules give every order of derivative; the angles are functions of the two subspaces, so they are
independent of the bases' gauge, which the svd rule verifies.
"""

from __future__ import annotations

import numpy as np

from .. import ops
from ..transforms import stop_gradient
from ..backend import kernels_for, namespace_of, to_host
from ..registry import Domain, Rule
from ..tape import Primitive
from ..testing import matrices as M
from . import _common as C
from ._spectral import rel_tol
from .lstsq import _mh, _pinv_apply, _svd_factors
from .svd import _svd, svd, svdvals

__all__ = ["orth", "null_space", "subspace_angles", "RULES"]


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

    Valid when: the numerical rank r is constant near A (r < min(m, n) is allowed; there
    second derivatives go through the svd rule's zero cluster and warn where they are not
    exact, svd.md §6 — null_space's rule, on the complement, has exact ones).
    """
    op = "orth"
    A = _matrix(op, A, "A")
    U, s, _ = svd(A, full_matrices=False, check_finite=False)
    r = _rank(s, C.peek(A).shape, rcond)
    return ops.getitem(U, (slice(None), slice(0, r)))


# -- null_space ------------------------------------------------------------------------------

def _null_forward(A, *, P, given):
    """N: the basis the full SVD gave (computed once, with A⁺'s factors P)."""
    return given


def _basis_check(Kv):
    """Nᴴ N̄ must be Hermitian: L(N W) = L(N) for unitary W to first order (null_space).

    Its skew part is judged against K's own size at √eps (the spectral rules' gauge
    tolerance): an invariant loss leaves rounding there, of order eps · ‖K‖."""
    if not Kv.size:
        return
    xp = namespace_of(Kv)
    skew = xp.abs(Kv - xp.conj(xp.swapaxes(Kv, -1, -2))).max(axis=(-2, -1))
    bad = to_host(skew > rel_tol(Kv.dtype) * xp.abs(Kv).max(axis=(-2, -1)))
    if bool(bad.any()):
        where = "" if bad.ndim == 0 else \
            f" (matrix {tuple(int(i) for i in np.argwhere(bad)[0])} of the stack)"
        raise ValueError(
            "null_space: the loss depends on the choice of basis of the null space"
            f"{where}: N is any orthonormal basis of it (SciPy's is what LAPACK's SVD "
            "completion gives), so only losses through its span (N Nᴴ, ‖B N‖, angles) "
            "have a gradient. Make the loss invariant under N → N W for unitary W.")


def _null_vjp(N_bar, needs, N, res, A, *, P, given):
    """Ā = −A⁺ᴴ N̄ Nᴴ − (A N)(A⁺ A⁺ᴴ N̄)ᴴ (subspaces.md §8), after the gauge check on Nᴴ N̄.

    A N is the dropped part of A on the null space (0 at exact rank deficiency, of the
    size of the dropped singular values near it): its term is what makes the derivative
    of this rule, the Hessian, exact for the function SciPy computes."""
    C.guard(ops.matmul(ops.mH(N), N_bar), _basis_check)
    W = _pinv_apply(A, N_bar, P=P, adjoint=True)
    A_bar = -ops.matmul(W, ops.mH(N))
    if not P.full_row:
        A_bar = A_bar - ops.matmul(ops.matmul(A, N), ops.mH(_pinv_apply(A, W, P=P)))
    return (ops.fit(A_bar, A),)


def _null_jvp(tangents, N, res, A, *, P, given):
    """Ṅ = −A⁺ Ȧ N − A⁺ A⁺ᴴ Ȧᴴ (A N): the tangent with Nᴴ Ṅ = 0."""
    (A_dot,) = tangents
    N_dot = -_pinv_apply(A, ops.matmul(A_dot, N), P=P)
    if not P.full_row:
        AN = ops.matmul(A, N)
        N_dot = N_dot - _pinv_apply(A, _pinv_apply(A, ops.matmul(ops.mH(A_dot), AN), P=P,
                                                    adjoint=True), P=P)
    return N_dot


_null = Primitive("null_space", _null_forward, _null_vjp, _null_jvp)


def _null_factors(op, Av, rcond):
    """(A⁺'s factors, N) from one full SVD, with SciPy's rank: s > rcond · max s, rcond
    defaulting to eps · max(M, N); every matrix of a stack must have the same rank."""
    K = kernels_for(C.peek(Av))
    xp = K.xp
    m, n = C.peek(Av).shape[-2:]

    def factor(Av_):
        U, s, Vh = K.svd(Av_, full_matrices=True, compute_uv=True, op=op)
        r_ = np.finfo(s.dtype).eps * max(m, n) if rcond is None else rcond
        thr = (s.max(axis=-1, keepdims=True) if s.shape[-1] else s) * r_
        k = min(m, n)
        P, rank = _svd_factors(K, U[..., :, :k], s, Vh[..., :k, :], thr, m, n)
        ranks = to_host(rank).reshape(-1)
        if ranks.size and (ranks != ranks[0]).any():
            raise ValueError(
                f"{op}: the matrices of the stack have null spaces of different "
                f"dimensions ({sorted(set(int(x) for x in ranks))} nonzero singular "
                "values): their bases do not stack into one array")
        r = int(ranks[0]) if ranks.size else 0
        N = xp.ascontiguousarray(_mh(Vh[..., r:, :], xp))
        return P, N, r

    P, N, _ = C.compute(factor, (Av,), decide=lambda out: out[2],
                        name=f"{op}'s rank")
    return P, N


def null_space(A, rcond=None, *, overwrite_a=False, check_finite=True, lapack_driver="gesdd"):
    """An orthonormal basis of the null space of ``A`` (scipy.linalg.null_space),
    differentiable for losses that depend on the null space only.

    ``A`` is (..., M, N); returns Z (..., N, K), the right singular vectors of the
    singular values at or below ``rcond · s_max`` (``rcond`` defaulting to eps · max(M, N))
    and the completion of the full SVD, K = N − rank: SciPy's basis exactly.  Stacks as
    SciPy 1.17 (every matrix of a stack must have the same rank).

    The basis is unique only up to Z → Z W (W unitary): a loss through the null space
    itself — Z Zᴴ, ‖B Z‖_F, ``subspace_angles`` — gets its gradient, Ā = −A⁺ᴴ Z̄ Zᴴ; one
    that depends on the basis (Zᴴ Z̄ not Hermitian) raises ValueError.  A real null space
    of dimension one has no continuous freedom (only the sign), so every loss through Z
    is differentiable there.  Forward mode gives the tangent with Zᴴ Ż = 0, −A⁺ Ȧ Z.
    Its rules are A⁺ (at constant rank) and this rule again: every order at full row rank,
    exact Hessians at exact rank deficiency (third derivatives there are not, lstsq.md §8).
    ``overwrite_a`` is accepted and ignored; ``lapack_driver`` ('gesdd' or 'gesvd') is
    checked and the general SVD is used.

    Valid when: the numerical rank is constant near A.
    """
    op = "null_space"
    if lapack_driver not in ("gesdd", "gesvd"):
        raise ValueError(f"null_space: lapack_driver must be 'gesdd' or 'gesvd', got "
                         f"{lapack_driver!r}")
    A = C.prepare(op, A, check_finite, square=False)
    P, N = _null_factors(op, A, rcond)
    return _null(A, P=P, given=N)


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


def _null_projector(A, rcond=None, weight=None):
    """The projector N Nᴴ onto null(A): a function of the null space alone (invariant
    under N → N W), so every cotangent the checks draw is a valid one."""
    N = null_space(A, rcond=rcond)
    return ops.matmul(N, ops.mH(N))


_null_projector.__doc__ = null_space.__doc__


def null_projector_reference(A, rcond=None):
    import scipy.linalg
    def projector(a):
        N = scipy.linalg.null_space(a, rcond=rcond)
        return N @ N.conj().T
    return C.per_matrix(projector, A, cores=(2,))


def _rank_deficient_domain(m, n, rank):
    """Rank ``rank`` exactly, with rcond = 1e-3: finite-difference steps move the zero
    singular values to O(h), far below the threshold, so the rank is constant near A."""
    def make(rng, _n, batch, dtype):
        A = M.random_rank_deficient(rng, m, n, rank, batch, dtype)
        return (np.ascontiguousarray(A),), {"rcond": 1e-3}
    return make


def subspace_angles_reference(A, B):
    import scipy.linalg
    return scipy.linalg.subspace_angles(A, B)


RULES = (
    Rule(
        name="null_space",
        fun=_null_projector,
        primitive=_null,
        domains=(
            Domain("wide", C.rect_domain(2, 4), "2×4: null space of dimension 2, N Nᴴ"),
            Domain("wider", C.rect_domain(3, 5), "3×5"),
            Domain("rank-deficient", _rank_deficient_domain(3, 4, 2),
                   "3×4 of rank 2, rcond=1e-3: dimension 2, zero singular values"),
        ),
        derivation="docs/derivations/subspaces.md",
        reference=null_projector_reference,
        references=("Golub & Van Loan, Matrix Computations, §2.5, 6.4",),
    ),
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
