"""orth and subspace_angles: SciPy's values, gradients of span-only losses (the svd rule's
gauge checks measured in the cotangents' units), the angles' branches, errors, jit."""

import warnings

import numpy as np
import pytest
import scipy.linalg

import linalgad as lad
from linalgad import linalg as la


def _pair(rng, m, na, nb, cplx, shared=0.7):
    z = (lambda *s: rng.standard_normal(s) + 1j * rng.standard_normal(s)) if cplx else \
        (lambda *s: rng.standard_normal(s))
    A = z(m, na)
    return A, A @ rng.standard_normal((na, nb)) + shared * z(m, nb)


@pytest.mark.parametrize("cplx", [False, True])
@pytest.mark.parametrize("m,na,nb", [(6, 3, 2), (5, 2, 3), (4, 2, 2), (8, 1, 4), (3, 3, 3),
                                    (5, 3, 3)])
def test_values_and_gradients(m, na, nb, cplx):
    rng = np.random.default_rng(m * 100 + na * 10 + nb)
    A, B = _pair(rng, m, na, nb, cplx)
    theta = la.subspace_angles(A, B)
    # SciPy's branch mask pairs the i-th largest cosine with the i-th largest angle, so a
    # zero angle can come from its arccos (1.5e-8 for an exact 0); each angle here takes
    # its own branch
    np.testing.assert_allclose(theta, scipy.linalg.subspace_angles(A, B), atol=3e-8)
    fixed = max(na + nb - m, 0)
    if fixed:
        assert np.all(theta[len(theta) - fixed:] < 1e-14)
    W = rng.standard_normal(theta.shape)

    def f(A, B):
        return lad.sum(W * la.subspace_angles(A, B))

    with warnings.catch_warnings():
        warnings.simplefilter("error")                  # no gauge warning for span losses
        gA, gB = lad.grad(f, argnums=(0, 1))(A, B)
    for g, X, part in ((gA, A, lambda X: f(X, B)), (gB, B, lambda X: f(A, X))):
        E = rng.standard_normal(X.shape) + (1j * rng.standard_normal(X.shape) if cplx else 0)
        fd = (part(X + 1e-6 * E) - part(X - 1e-6 * E)) / 2e-6
        assert abs(np.real(np.vdot(g, E)) - fd) < 1e-6 * max(1, abs(fd))
        _, t = lad.jvp(part, (X,), (E,))
        assert abs(t - fd) < 1e-6 * max(1, abs(fd))


def test_second_order():
    rng = np.random.default_rng(2)
    A, B = _pair(rng, 6, 3, 2, False)

    def f(A):
        return lad.sum(la.subspace_angles(A, B) ** 2)

    v = rng.standard_normal(A.shape)
    Hv = lad.hvp(f, (A,), (v,))
    Hv = Hv[0] if isinstance(Hv, tuple) else Hv
    fd = (lad.grad(f)(A + 1e-5 * v) - lad.grad(f)(A - 1e-5 * v)) / 2e-5
    np.testing.assert_allclose(Hv, fd, rtol=1e-5, atol=1e-8)


def test_angles_at_zero_and_right_angles_have_finite_gradients():
    rng = np.random.default_rng(3)
    A = rng.standard_normal((5, 2))
    B = A @ np.array([[1.0, 2.0], [0.0, 1.0]])        # the same subspace
    assert np.all(la.subspace_angles(A, B) < 1e-14)
    g = lad.grad(lambda A: lad.sum(la.subspace_angles(A, B)))(A)
    assert np.all(np.isfinite(g))
    A, B = np.eye(4)[:, :2], np.eye(4)[:, 2:]         # orthogonal
    np.testing.assert_allclose(la.subspace_angles(A, B), np.pi / 2)
    assert np.all(np.isfinite(lad.grad(lambda A: lad.sum(la.subspace_angles(A, B)))(A)))


@pytest.mark.parametrize("cplx", [False, True])
def test_orth_spans_scipys_range_and_projector_gradient(cplx):
    """orth's basis spans SciPy's (the same projector, rank-deficient input too); a loss
    through the projector Q Qᴴ is gauge-free: its gradient matches differences."""
    rng = np.random.default_rng(4)
    A = rng.standard_normal((6, 4)) + (1j * rng.standard_normal((6, 4)) if cplx else 0)
    A[:, 3] = A[:, 0] + 2 * A[:, 1]                   # rank 3
    Q = la.orth(A)
    Q0 = scipy.linalg.orth(A)
    assert Q.shape == Q0.shape == (6, 3)
    np.testing.assert_allclose(Q @ Q.conj().T, Q0 @ Q0.conj().T, atol=1e-13)
    W = rng.standard_normal((6, 6))

    def f(A):
        Q = la.orth(A)
        return lad.sum(W * lad.real(Q @ lad.conj(lad.transpose(Q))))

    g = lad.grad(f)(A)
    E = rng.standard_normal(A.shape) + (1j * rng.standard_normal(A.shape) if cplx else 0)
    E[:, 3] = E[:, 0] + 2 * E[:, 1]                   # stay at rank 3
    fd = (f(A + 1e-6 * E) - f(A - 1e-6 * E)) / 2e-6
    assert abs(np.real(np.vdot(g, E)) - fd) < 1e-6 * max(1, abs(fd))
    with pytest.raises(ValueError, match="phase"):    # a basis-dependent loss is reported
        lad.grad(lambda A: lad.sum(lad.imag(la.orth(A))))(A + 1j)


def test_errors_and_jit():
    with pytest.raises(ValueError, match="subspace_angles: expected a 2-D array for A"):
        la.subspace_angles(np.ones((2, 3, 3)), np.ones((3, 3)))
    with pytest.raises(ValueError, match="same number of rows"):
        la.subspace_angles(np.ones((3, 2)), np.ones((4, 2)))
    with pytest.raises(ValueError, match="B contains infs or NaNs"):
        la.subspace_angles(np.ones((3, 2)), np.full((3, 1), np.nan))
    rng = np.random.default_rng(6)
    A, B = _pair(rng, 6, 3, 2, False)
    f = lad.jit(lad.value_and_grad(lambda A: lad.sum(la.subspace_angles(A, B))))
    for A_ in (A, A * 2 + 0.1, A[:, [0, 1, 1]]):      # the last: rank 2, re-recorded
        v, g = f(A_)
        v0, g0 = lad.value_and_grad(lambda A: lad.sum(la.subspace_angles(A, B)))(A_)
        np.testing.assert_allclose(v, v0, rtol=1e-13)
        np.testing.assert_allclose(g, g0, rtol=1e-10, atol=1e-13)


def _spread(rng, m, s):
    """A complex m × len(s) matrix with singular values s and random singular vectors."""
    n = len(s)
    Q = np.linalg.qr(rng.standard_normal((m, m)) + 1j * rng.standard_normal((m, m)))[0]
    W = np.linalg.qr(rng.standard_normal((n, n)) + 1j * rng.standard_normal((n, n)))[0]
    return (Q[:, :n] * np.asarray(s)) @ W.conj().T, Q


def test_svd_gauge_checks_are_per_pair():
    """svd's phase and cluster tests judge each pair in the gradient's units (review 41): a
    large span-only cotangent on one column does not hide an O(1) phase (or cluster basis)
    dependence of another, and rounding in a span-only loss's UᴴŪ does not trip them."""
    rng = np.random.default_rng(0)
    A, Q = _spread(rng, 6, [1e8, 1.0])
    x, y = Q[:, 3], np.linalg.svd(A)[0][:, 0]

    def span(U):
        P = U @ lad.conj(lad.transpose(U))
        return 1e8 * lad.real(lad.sum(np.conj(x)[:, None] * P * y[None, :]))

    lad.grad(lambda A: span(la.svd(A, full_matrices=False)[0]))(A)       # no error
    with pytest.raises(ValueError, match="phase"):
        lad.grad(lambda A: span(la.svd(A, full_matrices=False)[0])
                 + lad.real(la.svd(A, full_matrices=False)[0][0, 1]))(A)
    with pytest.raises(ValueError, match="phase"):                    # in-span, one column
        lad.grad(lambda A: 1e8 * lad.abs(la.svd(A, full_matrices=False)[0][0, 0]) ** 2
                 + lad.real(la.svd(A, full_matrices=False)[0][0, 1]))(_spread(rng, 4,
                                                                            [1e8, 1.0])[0])
    A, Q = _spread(np.random.default_rng(1), 6, [1e4, 1.0, 1.0])    # a cluster s2 = s3
    Mh = rng.standard_normal((6, 6))
    Mh = Mh + Mh.T
    x, y = Q[:, 4], np.linalg.svd(A)[0][:, 0]

    def cluster_basis(A):
        U = la.svd(A, full_matrices=False)[0]
        u2 = U[:, 1]
        return span(U) + lad.real(lad.sum(lad.conj(u2) * (Mh @ u2)))

    with pytest.warns(lad.GaugeWarning):
        lad.grad(cluster_basis)(A)


def test_an_unforced_zero_angle_gets_the_subgradient_zero():
    """A shared direction with room to spare (m ≥ rA + rB): the zero angle's derivative does
    not exist (|x|); it gets 0, the same under last-bit changes of the input (review 41)."""
    rng = np.random.default_rng(3)
    shared = rng.standard_normal((7, 1))
    A = np.c_[shared, rng.standard_normal((7, 1))]
    B = np.c_[shared, rng.standard_normal((7, 1))]
    f = lambda A: lad.sum(la.subspace_angles(A, B))            # noqa: E731
    g = [lad.grad(f)(A * p) * p for p in (1.0, 1 + 2 ** -52, 1 - 2 ** -52)]
    assert max(np.abs(x - g[0]).max() for x in g) < 1e-12
    g1 = lad.grad(lambda A: la.subspace_angles(A, B)[0])(A)       # the nonzero angle
    np.testing.assert_allclose(g[0], g1, atol=1e-12)


# -- null_space ------------------------------------------------------------------------------

def _z(rng, shape, cplx):
    return rng.standard_normal(shape) + (1j * rng.standard_normal(shape) if cplx else 0)


@pytest.mark.parametrize("shape", [(2, 4), (3, 5), (4, 4), (5, 3), (2, 3, 5), (0, 3), (3, 0),
                                   (2, 0, 3)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.complex64, np.complex128])
def test_null_space_is_scipys(shape, dtype):
    rng = np.random.default_rng(3)
    A = _z(rng, shape, np.dtype(dtype).kind == "c").astype(dtype)
    want, got = scipy.linalg.null_space(A), la.null_space(A)
    assert got.shape == want.shape and got.dtype == want.dtype
    if want.size:
        np.testing.assert_allclose(got, want, atol=1e-5 if dtype in (np.float32,
                                                                      np.complex64) else 1e-13)


@pytest.mark.parametrize("cplx", [False, True])
@pytest.mark.parametrize("m,n,rank,rcond", [(3, 5, 3, None), (2, 6, 2, None),
                                            (4, 5, 2, 1e-3), (5, 3, 1, 1e-3)])
def test_null_space_gradient_is_the_projectors(m, n, rank, rcond, cplx):
    """A loss through span(N) against the same loss through I − A⁺A (lstsq's pinv at
    constant rank, an independent rule), and against central differences."""
    rng = np.random.default_rng(m + n + rank)
    Ar = _z(rng, (m, rank), cplx) @ _z(rng, (rank, n), cplx)
    B = _z(rng, (4, n), cplx)

    def through_null(A):
        Z = la.null_space(A, rcond=rcond)
        return lad.sum(lad.abs(B @ Z) ** 2)                    # ‖B Z‖_F², basis-free

    def through_pinv(A):
        Pn = np.eye(n) - la.pinv(A, rtol=1e-3 if rcond else None) @ A
        return lad.real(lad.sum(lad.conj(B) * (B @ Pn)))       # tr(B Pn Bᴴ)

    np.testing.assert_allclose(through_null(Ar), through_pinv(Ar), rtol=1e-10)
    g = lad.grad(through_null)(Ar)
    np.testing.assert_allclose(g, lad.grad(through_pinv)(Ar), atol=1e-9)
    # second order, forward over reverse, against the pinv route
    V = _z(rng, Ar.shape, cplx)
    np.testing.assert_allclose(lad.hvp(through_null, (Ar,), (V,)),
                               lad.hvp(through_pinv, (Ar,), (V,)), atol=1e-8)
    # central differences (the rank is constant under the steps: rcond or full rank)
    h = 1e-6
    G = np.zeros_like(Ar)
    for idx in np.ndindex(Ar.shape):
        for unit in ((1, 1j) if cplx else (1,)):
            E = np.zeros_like(Ar)
            E[idx] = unit * h
            G[idx] += unit * (float(through_null(Ar + E)) - float(through_null(Ar - E))) / (2 * h)
    np.testing.assert_allclose(g, G, atol=1e-6)


def test_null_space_of_dimension_one_is_differentiable_itself():
    """A real null space of dimension 1 has no continuous gauge: Z itself, sign included,
    is a smooth function of A, and its derivative is −A⁺ Ȧ Z."""
    rng = np.random.default_rng(11)
    A = rng.standard_normal((3, 4))
    W = rng.standard_normal((4, 1))
    g = lad.grad(lambda A: lad.sum(la.null_space(A) * W))(A)
    h = 1e-6
    G = np.zeros_like(A)
    for idx in np.ndindex(A.shape):
        E = np.zeros_like(A)
        E[idx] = h
        G[idx] = np.sum((scipy.linalg.null_space(A + E) - scipy.linalg.null_space(A - E)) * W) / (2 * h)
    np.testing.assert_allclose(g, G, atol=1e-8)
    V = rng.standard_normal(A.shape)
    _, Zdot = lad.jvp(la.null_space, (A,), (V,))
    Zfd = (scipy.linalg.null_space(A + h * V) - scipy.linalg.null_space(A - h * V)) / (2 * h)
    np.testing.assert_allclose(Zdot, Zfd, atol=1e-8)


def test_null_space_stack_and_jit():
    rng = np.random.default_rng(12)
    A = rng.standard_normal((3, 2, 5))
    W = rng.standard_normal((3, 5, 5))
    W = W + W.swapaxes(-1, -2)

    def loss(A):
        Z = la.null_space(A)
        return lad.sum((Z @ lad.mT(Z)) * W)
    g = lad.grad(loss)(A)
    for i in range(3):
        gi = lad.grad(lambda a: lad.sum((la.null_space(a) @ lad.mT(la.null_space(a))) * W[i]))(A[i])
        np.testing.assert_allclose(g[i], gi, atol=1e-12)
    jg = lad.jit(lad.grad(loss))
    np.testing.assert_allclose(jg(A), g, atol=1e-12)
    A2 = rng.standard_normal((3, 2, 5))
    np.testing.assert_allclose(jg(A2), lad.grad(loss)(A2), atol=1e-12)


def test_null_space_errors():
    rng = np.random.default_rng(13)
    A = rng.standard_normal((2, 5)) + 1j * rng.standard_normal((2, 5))
    with pytest.raises(ValueError, match="null_space: the loss depends on the choice of basis"):
        lad.grad(lambda A: lad.sum(lad.real(la.null_space(A))))(A)
    with pytest.raises(ValueError, match=r"matrix \(1,\) of the stack"):
        B = rng.standard_normal((2, 2, 5))
        w = np.array([0.0, 1.0])[:, None, None]
        lad.grad(lambda B: lad.sum(la.null_space(B) * w))(B)
    # real, dimension 1: a phase cannot exist, the sign is discrete — no error
    lad.grad(lambda A: lad.sum(la.null_space(A)))(rng.standard_normal((3, 4)))
    S = rng.standard_normal((2, 3, 5))
    S[1, 2] = S[1, 0] + S[1, 1]                         # rank 2 against 3
    with pytest.raises(ValueError, match="null_space: the matrices of the stack have null"):
        la.null_space(S)
    with pytest.raises(ValueError, match="null_space: lapack_driver"):
        la.null_space(A, lapack_driver="gelsd")
    with pytest.raises(ValueError, match="null_space"):
        la.null_space(np.ones(3))
    with pytest.raises(ValueError, match="null_space"):
        la.null_space(np.array([[1.0, np.inf]]))
