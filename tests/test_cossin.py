"""cossin: SciPy's outputs and errors, and derivatives against SciPy's own decomposition
differentiated by central differences along unitary curves X exp(tK) (gauge-free quantities),
in both modes and at second order.  The registry's generated checks (tests/test_rules.py)
cover the same rule composed with polar on random directions."""

import inspect
import warnings

import numpy as np
import pytest
import scipy.linalg as sl

import linalgad as lad
from linalgad import linalg as la
from linalgad.rules._spectral import GaugeWarning

# (m, p, q, swap_sign): no identity block; p ≠ q; p + q < m; p + q > m; p = 1; q = 1
CONFIGS = [(4, 2, 2, False), (5, 2, 3, False), (6, 2, 2, True), (7, 4, 2, False),
           (6, 1, 2, True), (5, 3, 1, False), (7, 3, 5, True)]


def _sizes(m, p, q):
    r = min(p, q, m - p, m - q)
    return r, min(p, q) - r, min(p, m - q) - r, min(m - p, q) - r, min(m - p, m - q) - r


def _unitary(rng, m, cplx, batch=()):
    Z = rng.standard_normal(batch + (m, m))
    if cplx:
        Z = Z + 1j * rng.standard_normal(batch + (m, m))
    Q, R = np.linalg.qr(Z)
    d = np.diagonal(R, 0, -2, -1)
    return Q * (d / np.abs(d))[..., None, :]


def _skew(rng, m, cplx):
    K = rng.standard_normal((m, m)) + (1j * rng.standard_normal((m, m)) if cplx else 0)
    return (K - K.conj().T) / 2


def _flat(out):
    (u1, u2), th, (v1h, v2h) = out
    return u1, u2, th, v1h, v2h


def _invariants(u1, u2, th, v1h, v2h, m, p, q, W):
    """A real, gauge-invariant loss of every output: θ, the rotation pairings and the
    weighted group projectors (weights constant on each identity group)."""
    r, k11, k12, k21, k22 = _sizes(m, p, q)
    conj = np.conj
    w = np.linspace(1.0, 2.0, r)
    U1r, U2r = u1[..., :, k11:k11 + r], u2[..., :, k22:k22 + r]
    V1hr, V2hr = v1h[..., k11:k11 + r, :], v2h[..., k22:k22 + r, :]
    mH = lambda x: conj(x).swapaxes(-1, -2)                         # noqa: E731
    cu1 = np.concatenate([np.full(k11, 0.5), w, np.full(k12, 3.0)])
    cu2 = np.concatenate([np.full(k22, 0.5), w, np.full(k21, 3.0)])
    cv1 = np.concatenate([np.full(k11, 0.5), w, np.full(k21, 3.0)])
    cv2 = np.concatenate([np.full(k22, 0.5), w, np.full(k12, 3.0)])
    parts = [th, (U1r * w) @ V1hr, (U2r * w) @ V2hr, (U1r * w) @ mH(U2r),
             (u1 * cu1) @ mH(u1), (u2 * cu2) @ mH(u2), (mH(v1h) * cv1) @ v1h,
             (mH(v2h) * cv2) @ v2h]
    total = 0
    for x, wt in zip(parts, W):
        total = total + lad.sum(lad.real(x * conj(wt)))
    return total


def _weights(rng, m, p, q, cplx):
    out = _flat(sl.cossin(_unitary(rng, m, cplx), p=p, q=q, separate=True))
    r, k11, k12, k21, k22 = _sizes(m, p, q)
    shapes = [(r,), (p, q), (m - p, m - q), (p, m - p), (p, p), (m - p, m - p), (q, q),
              (m - q, m - q)]
    del out
    return [rng.standard_normal(s) + (1j * rng.standard_normal(s) if cplx else 0)
            for s in shapes]


def _loss(m, p, q, swap, W, lib=True):
    def f(X):
        if lib:
            out = la.cossin(X, p, q, separate=True, swap_sign=swap)
        else:
            out = sl.cossin(X, p=p, q=q, separate=True, swap_sign=swap)
        return _invariants(*_flat(out), m, p, q, W)
    return f


def _fd(f, X, K, h=1e-5):
    """Richardson-extrapolated central difference of f along X exp(tK)."""
    def c(h):
        return (f(X @ sl.expm(h * K)) - f(X @ sl.expm(-h * K))) / (2 * h)
    a, b = c(h), c(h / 2)
    return b + (b - a) / 3


# -- SciPy's signature, outputs and errors ------------------------------------------------------

def test_signature_is_scipys():
    assert inspect.signature(la.cossin) == inspect.signature(sl.cossin)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.complex64, np.complex128])
@pytest.mark.parametrize("m,p,q,swap", CONFIGS)
def test_values_match_scipy(dtype, m, p, q, swap):
    rng = np.random.default_rng(m * 10 + p)
    X = _unitary(rng, m, np.dtype(dtype).kind == "c").astype(dtype)
    for separate in (False, True):
        for cu, cv in ((True, True), (False, True), (True, False)):
            got = la.cossin(X, p, q, separate=separate, swap_sign=swap, compute_u=cu,
                            compute_vh=cv)
            want = sl.cossin(X, p=p, q=q, separate=separate, swap_sign=swap, compute_u=cu,
                             compute_vh=cv)
            g, w = (_flat(got), _flat(want)) if separate else (got, want)
            for a, b in zip(g, w):
                assert a.shape == b.shape and a.dtype == b.dtype
                np.testing.assert_array_equal(a, b)
    # traced: the same values (the middle factor rebuilt in differentiable operations)
    got, _ = lad.jvp(lambda Y: la.cossin(Y, p, q, swap_sign=swap), (X,), (np.zeros_like(X),))
    for a, b in zip(got, sl.cossin(X, p=p, q=q, swap_sign=swap)):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=0, atol=10 * np.finfo(b.dtype).eps)


def test_blocks_input_and_defaults():
    rng = np.random.default_rng(1)
    X = _unitary(rng, 5, True)
    blocks = (X[:2, :3], X[:2, 3:], X[2:, :3], X[2:, 3:])
    for a, b in zip(la.cossin(blocks), sl.cossin(blocks)):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(la.cossin(X, p=2), sl.cossin(X, p=2)):      # q defaults to 1
        np.testing.assert_array_equal(a, b)
    # gradients flow to the blocks
    def f(b11, b12, b21, b22):
        return lad.sum(la.cossin((b11, b12, b21, b22), separate=True)[1])
    g = lad.grad(f, argnums=(0, 1, 2, 3))(*blocks)
    G = lad.grad(lambda Y: lad.sum(la.cossin(Y, 2, 3, separate=True)[1]))(X)
    np.testing.assert_allclose(np.block([[g[0], g[1]], [g[2], g[3]]]), G, atol=1e-12)


def test_stacks():
    rng = np.random.default_rng(2)
    X = _unitary(rng, 5, True, (3, 2))
    got = la.cossin(X, 2, 3)
    want = sl.cossin(X, p=2, q=3)                  # SciPy batches the separate=False form
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)
    (u1, u2), th, (v1h, v2h) = la.cossin(X, 2, 3, separate=True)   # SciPy 1.17 fails here
    assert th.shape == (3, 2, 2) and u1.shape == (3, 2, 2, 2) and v2h.shape == (3, 2, 2, 2)
    for i in np.ndindex(3, 2):
        ref = _flat(sl.cossin(X[i], p=2, q=3, separate=True))
        for a, b in zip((u1, u2, th, v1h, v2h), ref):
            np.testing.assert_array_equal(a[i], b)
    # a stack's gradient is the per-matrix gradients
    W = _weights(rng, 5, 2, 3, True)
    f = _loss(5, 2, 3, False, W)
    G = lad.grad(lambda Y: lad.sum(lad.stack([f(Y[i, j]) for i in range(3) for j in range(2)])))(X)
    def stacked(Y):
        out = la.cossin(Y, 2, 3, separate=True)
        return _invariants(*_flat(out), 5, 2, 3, W)
    np.testing.assert_allclose(lad.grad(stacked)(X), G, atol=1e-10)


def test_errors_name_cossin():
    X = _unitary(np.random.default_rng(3), 4, False)
    cases = [
        (lambda: la.cossin(X[:, :3], 2, 2), "square"),
        (lambda: la.cossin(X, 0, 2), "invalid p=0"),
        (lambda: la.cossin(X, 4, 2), "invalid p=4"),
        (lambda: la.cossin(X, 2, 4), "invalid q=4"),
        (lambda: la.cossin([X[:2, :2], X[:2, 2:], X[2:, :2]]), "exactly four"),
        (lambda: la.cossin(5), "Iterable"),
        (lambda: la.cossin([X[:2, :2], X[:2, 2:], X[2:, :3], X[2:, 2:]]), "x21"),
        (lambda: la.cossin([X[:2, :2], X[:2, 2:3], X[2:, :2], X[2:, 2:]]), "x12"),
        (lambda: la.cossin(np.zeros((0, 4, 4)), 2, 2), "zero-size"),
    ]
    for fn, what in cases:
        with pytest.raises(ValueError, match="cossin") as e:
            fn()
        assert what in str(e.value)
    bad = X.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="cossin"):
        la.cossin(bad, 2, 2)
    with pytest.raises(ValueError):
        sl.cossin(bad, p=2, q=2)
    with pytest.raises(ValueError, match="zero-size"):
        sl.cossin(np.zeros((0, 4, 4)), p=2, q=2)


# -- first derivatives against SciPy's differences along unitary curves ------------------------

@pytest.mark.parametrize("cplx", [False, True])
@pytest.mark.parametrize("m,p,q,swap", CONFIGS)
def test_gradient_and_jvp_match_scipy_differences(m, p, q, swap, cplx):
    rng = np.random.default_rng(100 + 7 * m + p + 3 * q)
    X = _unitary(rng, m, cplx)
    W = _weights(rng, m, p, q, cplx)
    f, f_np = _loss(m, p, q, swap, W), _loss(m, p, q, swap, W, lib=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")                    # no gauge warning here
        G = lad.grad(f)(X)
        for _ in range(2):
            K = _skew(rng, m, cplx)
            fd = _fd(f_np, X, K)
            rev = np.real(np.vdot(G, X @ K))
            fwd = lad.jvp(f, (X,), (X @ K,))[1]
            assert abs(rev - fd) <= 1e-7 * max(1.0, abs(fd)), (rev, fd)
            assert abs(fwd - fd) <= 1e-7 * max(1.0, abs(fd)), (fwd, fd)
    # the gradient lies in the tangent space: Xᴴ G is skew-Hermitian
    XG = X.conj().T @ G
    np.testing.assert_allclose(XG, -XG.conj().T, atol=1e-10)


@pytest.mark.parametrize("cplx", [False, True])
def test_normal_directions_give_zero(cplx):
    """The polar convention: Ẋ = X H (H Hermitian) leaves every output unchanged."""
    rng = np.random.default_rng(5)
    m, p, q = 6, 2, 3
    X = _unitary(rng, m, cplx)
    H = _skew(rng, m, cplx)
    H = H @ H.conj().T + np.eye(m)
    outs = lad.jvp(lambda Y: _flat(la.cossin(Y, p, q, separate=True)), (X,), (X @ H,))[1]
    for t in outs:
        assert np.abs(t).max() < 1e-12
    # and the projector's derivative along a general direction is that along its skew part
    W = _weights(rng, m, p, q, cplx)
    f = _loss(m, p, q, False, W)
    E = rng.standard_normal((m, m)) + (1j * rng.standard_normal((m, m)) if cplx else 0)
    M = X.conj().T @ E
    K = (M - M.conj().T) / 2
    assert abs(lad.jvp(f, (X,), (E,))[1] - lad.jvp(f, (X,), (X @ K,))[1]) < 1e-12


def test_theta_gradient_closed_form():
    """θ̄ ↦ X̄ = ½ U Σ (E − Eᵀ) Vᴴ (cossin.md, section 3), written out with SciPy's factors."""
    rng = np.random.default_rng(6)
    m, p, q = 7, 4, 2
    X = _unitary(rng, m, True)
    tb = rng.standard_normal(2)
    G = lad.grad(lambda Y: lad.sum(la.cossin(Y, p, q, separate=True)[1] * tb))(X)
    U, cs, Vh = sl.cossin(X, p=p, q=q)
    r, k11, k12, k21, k22 = _sizes(m, p, q)
    E = np.zeros((m, m))
    E[q + k22 + np.arange(r), k11 + np.arange(r)] = tb
    np.testing.assert_allclose(G, 0.5 * U @ cs @ (E - E.T) @ Vh, atol=1e-12)


@pytest.mark.parametrize("cplx", [False, True])
def test_single_precision(cplx):
    rng = np.random.default_rng(7)
    m, p, q = 5, 2, 3
    X = _unitary(rng, m, cplx)
    W = _weights(rng, m, p, q, cplx)
    X32 = X.astype(np.complex64 if cplx else np.float32)
    G = lad.grad(_loss(m, p, q, False, W))(X32)
    assert G.dtype == X32.dtype
    K = _skew(rng, m, cplx)
    fd = _fd(_loss(m, p, q, False, W, lib=False), X, K)
    assert abs(np.real(np.vdot(G, X @ K)) - fd) <= 2e-3 * max(1.0, abs(fd))
    t = lad.jvp(_loss(m, p, q, False, W), (X32,), ((X32 @ K.astype(X32.dtype)),))[1]
    assert abs(t - fd) <= 2e-3 * max(1.0, abs(fd))


@pytest.mark.parametrize("swap", [False, True])
def test_matrix_form_and_compute_flags(swap):
    """separate=False: losses of u, cs, vh (the middle factor, gauge-free products) against
    SciPy's differences; compute_u / compute_vh False still differentiate what is returned."""
    rng = np.random.default_rng(8)
    m, p, q = 6, 2, 3
    X = _unitary(rng, m, True)
    C1 = rng.standard_normal((m, m))
    C2 = rng.standard_normal((m, m)) + 1j * rng.standard_normal((m, m))

    def loss(X, lib=True):
        U, CS, Vh = (la.cossin(X, p, q, swap_sign=swap) if lib
                     else sl.cossin(X, p=p, q=q, swap_sign=swap))
        Uh = lad.conj(U).T if lib else np.conj(U).T
        # the middle factor, U CS Vh (= X) and a weighted projector of U's blocks
        P = U @ np.diag(np.r_[np.linspace(1, 2, p), np.linspace(3, 4, m - p)]) @ Uh
        return lad.sum(CS * C1) + lad.sum(lad.real(np.conj(C2) * (U @ CS @ Vh))) + \
            lad.sum(lad.real(np.conj(C2) * P))

    G = lad.grad(loss)(X)
    for _ in range(2):
        K = _skew(rng, m, True)
        fd = _fd(lambda Y: loss(Y, lib=False), X, K)
        assert abs(np.real(np.vdot(G, X @ K)) - fd) <= 1e-7 * max(1.0, abs(fd))
        assert abs(lad.jvp(loss, (X,), (X @ K,))[1] - fd) <= 1e-7 * max(1.0, abs(fd))
    tb = rng.standard_normal(2)
    g1 = lad.grad(lambda Y: lad.sum(la.cossin(Y, p, q, separate=True, compute_u=False,
                                             compute_vh=False, swap_sign=swap)[1] * tb))(X)
    g2 = lad.grad(lambda Y: lad.sum(la.cossin(Y, p, q, separate=True, swap_sign=swap)[1]
                                    * tb))(X)
    np.testing.assert_allclose(g1, g2, atol=1e-13)
    out = la.cossin(X, p, q, compute_u=False)
    assert out[0].shape == (0, 0)


# -- second order --------------------------------------------------------------------------------

@pytest.mark.parametrize("cplx", [False, True])
@pytest.mark.parametrize("m,p,q,swap", [(5, 2, 3, False), (7, 4, 2, True)])
def test_hvp_against_differences_of_the_gradient(m, p, q, swap, cplx):
    rng = np.random.default_rng(9 + m)
    X = _unitary(rng, m, cplx)
    W = _weights(rng, m, p, q, cplx)
    f = _loss(m, p, q, swap, W)
    K = _skew(rng, m, cplx)
    V = X @ K
    hv = lad.hvp(f, (X,), (V,))
    hv = hv[0] if isinstance(hv, tuple) else hv
    h = 1e-5
    g = lad.grad(f)
    fd = (g(X @ sl.expm(h * K)) - g(X @ sl.expm(-h * K))) / (2 * h)
    np.testing.assert_allclose(hv, fd, atol=1e-6 * max(1.0, np.abs(fd).max()))
    # forward-over-forward: the derivative of D f(Y)[Y K2] along the same curve
    K2 = _skew(rng, m, cplx)
    d1 = lambda Y: lad.jvp(f, (Y,), (Y @ K2,))[1]              # noqa: E731
    second = lad.jvp(d1, (X,), (V,))[1]
    fd2 = (d1(X @ sl.expm(h * K)) - d1(X @ sl.expm(-h * K))) / (2 * h)
    assert abs(second - fd2) <= 1e-6 * max(1.0, abs(fd2))


# -- the gauge ---------------------------------------------------------------------------------

def test_phase_dependent_loss_raises():
    rng = np.random.default_rng(10)
    X = _unitary(rng, 5, True)
    with pytest.raises(ValueError, match="cossin: the loss depends on the common phase"):
        lad.grad(lambda Y: lad.real(la.cossin(Y, 2, 3, separate=True)[0][0][0, 0]))(X)
    # the same entry's modulus is fine (u1_i's phase cancels)
    lad.grad(lambda Y: lad.abs(la.cossin(Y, 2, 3, separate=True)[0][0][0, 0]))(X)


def test_identity_block_rotation_warns():
    """(7, 4, 2): the −I block g12 has order 2, its basis is free: a loss of one of its
    columns warns; its projector does not."""
    rng = np.random.default_rng(11)
    X = _unitary(rng, 7, False)
    r, k11, k12, k21, k22 = _sizes(7, 4, 2)
    assert k12 == 2
    col = k11 + r
    with pytest.warns(GaugeWarning, match="identity block"):
        lad.grad(lambda Y: lad.sum(la.cossin(Y, 4, 2, separate=True)[0][0][:, col] ** 2 *
                                   np.arange(1.0, 5.0)))(X)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        def proj(Y):
            u1 = la.cossin(Y, 4, 2, separate=True)[0][0][:, col:col + 2]
            return lad.sum((u1 @ u1.T) * np.arange(16.0).reshape(4, 4))
        lad.grad(proj)(X)


def _with_angles(rng, theta, m, p, q, cplx):
    """A unitary X with the given angles: blockdiag(U1, U2) Σ(θ) blockdiag(V1, V2)ᴴ."""
    r = len(theta)
    X0 = _unitary(rng, m, False)
    cs = sl.cossin(X0, p=p, q=q)[1]
    _, n11, n12, n21, n22 = _sizes(m, p, q)
    i = np.arange(r)
    cs[n11 + i, n11 + i] = np.cos(theta)
    cs[p + n22 + i, q + n22 + i] = np.cos(theta)
    cs[n11 + i, q + n22 + i] = -np.sin(theta)
    cs[p + n22 + i, n11 + i] = np.sin(theta)
    U = sl.block_diag(_unitary(rng, p, cplx), _unitary(rng, m - p, cplx))
    V = sl.block_diag(_unitary(rng, q, cplx), _unitary(rng, m - q, cplx))
    return U @ cs @ V.conj().T


def test_repeated_angles():
    rng = np.random.default_rng(12)
    X = _with_angles(rng, np.array([0.7, 0.7, 1.1]), 7, 3, 3, True)
    np.testing.assert_allclose(np.sort(sl.cossin(X, p=3, q=3, separate=True)[1]),
                               [0.7, 0.7, 1.1], atol=1e-12)
    K = _skew(rng, 7, True)
    # a symmetric function of the angles and U1 V1ᴴ (the polar factor of X11): exact, silent
    C = rng.standard_normal((3, 3)) + 1j * rng.standard_normal((3, 3))
    def sym(Y, lib=True):
        (u1, u2), th, (v1h, v2h) = (la.cossin(Y, 3, 3, separate=True) if lib
                                    else sl.cossin(Y, p=3, q=3, separate=True))
        return lad.sum(th ** 2) + lad.sum(lad.real(np.conj(C) * (u1 @ v1h)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        G = lad.grad(sym)(X)
    fd = _fd(lambda Y: sym(Y, lib=False), X, K)
    assert abs(np.real(np.vdot(G, X @ K)) - fd) < 1e-6 * max(1, abs(fd))
    # one of the two equal angles alone: not differentiable, warned
    with pytest.warns(GaugeWarning):
        lad.grad(lambda Y: la.cossin(Y, 3, 3, separate=True)[1][0])(X)


def test_boundary_angle_warns():
    rng = np.random.default_rng(13)
    X = _with_angles(rng, np.array([0.0, 0.6]), 6, 2, 3, False)
    with pytest.warns(GaugeWarning, match="0 or π/2"):
        lad.grad(lambda Y: lad.sum(la.cossin(Y, 2, 3, separate=True)[0][0] ** 3))(X)


# -- review: non-unitary inputs, stacks in the gauge check, boundary angles ----------------------

@pytest.mark.parametrize("c", [2.0, 1e-3])
def test_non_unitary_input_warns(c):
    """X = c Q: SciPy's values are those of Q = polar(X), but Xᴴ Ẋ in the tangent map is
    c² times Qᴴ Q̇, so the derivative is c² times that of cossin(polar(X)) — a silent
    factor before the review; now a warning in both modes."""
    rng = np.random.default_rng(20)
    Q = _unitary(rng, 5, True)
    X = c * Q
    for a, b in zip(_flat(sl.cossin(X, p=2, q=3, separate=True)),
                    _flat(sl.cossin(Q, p=2, q=3, separate=True))):
        np.testing.assert_allclose(a, b, atol=1e-12)           # the values are polar(X)'s
    f = lambda Y: lad.sum(la.cossin(Y, 2, 3, separate=True)[1])             # noqa: E731
    K = _skew(rng, 5, True)
    # the reference: cossin of the polar factor, differentiated by SciPy's differences
    ref = _fd(lambda Y: np.sum(sl.cossin(sl.polar(Y)[0], p=2, q=3, separate=True)[1]), X,
              K)
    with pytest.warns(GaugeWarning, match="cossin: X is not unitary"):
        got = lad.jvp(f, (X,), (X @ K,))[1]
    with pytest.warns(GaugeWarning, match="cossin: X is not unitary"):
        lad.grad(f)(X)
    assert abs(got - ref) > 0.1 * abs(ref)                      # the documented error


def test_unitary_to_single_precision_is_silent_and_accurate():
    """X unitary only to float32 rounding, used in float64: no warning, and the derivative
    matches central differences of cossin(polar(X)) along general directions."""
    rng = np.random.default_rng(21)
    for cplx in (False, True):
        X = _unitary(rng, 7, cplx).astype(np.complex64 if cplx else np.float32)
        X = X.astype(np.complex128 if cplx else np.float64)
        W = _weights(rng, 7, 4, 2, cplx)
        f, f_np = _loss(7, 4, 2, False, W), _loss(7, 4, 2, False, W, lib=False)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            G = lad.grad(f)(X)
        D = rng.standard_normal((7, 7)) + (1j * rng.standard_normal((7, 7)) if cplx else 0)
        h = 1e-6
        ref = (f_np(sl.polar(X + h * D)[0]) - f_np(sl.polar(X - h * D)[0])) / (2 * h)
        assert abs(np.real(np.vdot(G, D)) - ref) <= 1e-5 * max(1.0, abs(ref))


def test_gauge_check_is_per_matrix_in_a_stack():
    """A phase-dependent loss on one matrix of a stack raises even when another matrix's
    (invariant) cotangent is 10⁸ times larger (the tolerance was the stack's maximum)."""
    rng = np.random.default_rng(22)
    X = _unitary(rng, 5, True, (2,))
    Wt = rng.standard_normal((2, 2))

    def f(Y):
        u1 = la.cossin(Y, 2, 3, separate=True)[0][0]
        P = u1[0] @ lad.conj(u1[0]).T
        return 1e8 * lad.sum(lad.real(P) * Wt) + lad.real(u1[1][0, 0])
    with pytest.raises(ValueError, match="cossin: the loss depends on the common phase"):
        lad.grad(f)(X)


@pytest.mark.parametrize("cplx", [False, True])
def test_boundary_angle_is_not_a_one_sided_derivative(cplx):
    """At θ_i = 0 SciPy's θ_i(t) along X exp(tK) is |t|·(a norm of several entries of W):
    no linear map gives its one-sided derivative.  The rule returns −Re W12_ii and warns
    that θ_i is not differentiable there (it claimed a one-sided derivative)."""
    rng = np.random.default_rng(23)
    m, p, q = 7, 3, 3
    X = _with_angles(rng, np.array([0.0, 0.5, 1.1]), m, p, q, cplx)
    K = _skew(rng, m, cplx)
    h = 1e-7
    t0 = sl.cossin(X, p=p, q=q, separate=True)[1]
    tp = sl.cossin(X @ sl.expm(h * K), p=p, q=q, separate=True)[1]
    tm = sl.cossin(X @ sl.expm(-h * K), p=p, q=q, separate=True)[1]
    right, left = (tp[0] - t0[0]) / h, (t0[0] - tm[0]) / h
    assert right > 0 and abs(right + left) < 1e-5                # a kink: θ ≈ |t|·right
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        jv = lad.jvp(lambda Y: la.cossin(Y, p, q, separate=True)[1], (X,), (X @ K,))[1]
    assert abs(jv[0] - right) > 1e-3 and abs(jv[0] - left) > 1e-3
    with pytest.warns(GaugeWarning, match="not differentiable") as rec:
        lad.grad(lambda Y: la.cossin(Y, p, q, separate=True)[1][0])(X)
    assert not any("(one-sided derivative)" in str(w.message) for w in rec)
    assert any("not a one-sided derivative" in str(w.message) for w in rec)
