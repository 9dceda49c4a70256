"""cholesky_banded and cho_solve_banded.

The registry (tests/test_rules.py) checks both rules on their domains in both modes and at
second order; here: SciPy's values and conventions, the gradient against the dense
Cholesky's (projected on the band), the log-determinant's gradient (the band of A⁻¹) and
Hessian, both recurrence kernels (the Kronecker band system in chunks, cyclic reduction),
the fused cotangent against its composed definition, errors, empty input, the emulated
device, and the O(n) memory that is the point of the rules.
"""

import tracemalloc

import numpy as np
import pytest
import scipy.linalg
from numpy.linalg import LinAlgError

import linalgad as lad
from linalgad import backend
from linalgad import linalg as la
from linalgad.backend import CPU, ComposedKernels, band_from_dense, dense_from_band
from linalgad.rules import banded_cholesky as R
from linalgad.rules.banded import band_of

import _fake_cupy

DTYPES = [np.float32, np.float64, np.complex64, np.complex128]


def _hpd(rng, n, u, batch=(), dtype=np.float64, lower=False, junk=True):
    """(ab, A): one triangle's band of a Hermitian positive definite band matrix A (junk in
    the corners of ab, never read)."""
    A = rng.standard_normal(batch + (n, n))
    if np.dtype(dtype).kind == "c":
        A = A + 1j * rng.standard_normal(batch + (n, n))
    i, j = np.indices((n, n))
    S = np.where(abs(i - j) <= u, A + np.conj(np.swapaxes(A, -1, -2)), 0)
    S = S + (np.abs(S).sum(axis=-1).max() + 1) * np.eye(n)
    ab = band_from_dense(np, S, u, 0) if lower else band_from_dense(np, S, 0, u)
    if junk:
        r, c = np.indices(ab.shape[-2:])
        corners = (c + r >= n) if lower else (c + r < u)
        ab = np.where(corners, 7.0, ab)
    return ab.astype(dtype), S.astype(dtype)


@pytest.fixture
def cupy(monkeypatch):
    return _fake_cupy.install(monkeypatch)


def _tol(dtype):
    return 2e-4 if np.dtype(dtype) in (np.float32, np.complex64) else 1e-11


def _valid(ab, lower):
    u, n = ab.shape[-2] - 1, ab.shape[-1]
    r, c = np.indices(ab.shape[-2:])
    return ~((c + r >= n) if lower else (c + r < u))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("lower", [False, True])
@pytest.mark.parametrize("n,u", [(1, 0), (5, 0), (6, 1), (9, 2), (7, 3), (4, 4), (3, 6),
                                 (30, 5)])
def test_values_match_scipy(n, u, lower, dtype):
    rng = np.random.default_rng(n * 10 + u)
    ab, _ = _hpd(rng, n, u, (2,), dtype, lower)
    got = la.cholesky_banded(ab, lower=lower)
    assert got.dtype == dtype and got.shape == ab.shape
    for k in range(2):
        want = scipy.linalg.cholesky_banded(ab[k], lower=lower)
        ok = _valid(ab, lower)
        np.testing.assert_allclose(got[k][ok], want[ok], rtol=_tol(dtype), atol=_tol(dtype))
        assert np.all(got[k][~ok] == 0)                 # SciPy leaves the input's junk


@pytest.mark.parametrize("dtype", [np.float64, np.complex128])
@pytest.mark.parametrize("lower", [False, True])
@pytest.mark.parametrize("n,u", [(1, 0), (8, 0), (9, 1), (11, 2), (10, 3), (13, 4), (9, 5),
                                 (4, 6)])
def test_gradient_is_the_dense_choleskys_on_the_band(n, u, lower, dtype):
    """The band rule's cotangent of the triangle read equals the dense Cholesky's (cholesky.md)
    restricted to the band; zero in the corners."""
    rng = np.random.default_rng(3 * n + u)
    ab, S = _hpd(rng, n, u, (2,), dtype, lower)
    W = rng.standard_normal(ab.shape) + (1j * rng.standard_normal(ab.shape)
                                         if np.dtype(dtype).kind == "c" else 0)

    def band_loss(ab_):
        return lad.sum(lad.real(W * la.cholesky_banded(ab_, lower=lower)))

    lo, up = (u, 0) if lower else (0, u)

    def dense_loss(A_):
        c = la.cholesky(A_, lower=lower)
        return lad.sum(lad.real(W * band_of(c, lo, up)))

    g = lad.grad(band_loss)(ab)
    G = lad.grad(dense_loss)(S)
    want = band_from_dense(np, G, lo, up)
    ok = _valid(ab, lower)
    np.testing.assert_allclose(g[..., ok], want[..., ok], rtol=1e-10, atol=1e-12)
    assert np.all(g[..., ~ok] == 0)
    # the forward mode: the same directional derivative
    E = rng.standard_normal(ab.shape)
    _, t = lad.jvp(band_loss, (ab,), (E,))
    np.testing.assert_allclose(t, np.real(np.vdot(g, E)), rtol=1e-10)


@pytest.mark.parametrize("u", [1, 2, 5])
def test_logdet_gradient_is_the_band_of_the_inverse_and_its_hessian(u):
    """d log det A = ⟨A⁻¹, dA⟩: through the factor, the gradient of the lower triangle read
    is the band of A⁻¹ (off-diagonal entries doubled, the diagonal once); the Hessian-vector
    product is −A⁻¹ Ȧ A⁻¹ on the band."""
    rng = np.random.default_rng(u)
    n = 60
    ab, A = _hpd(rng, n, u, (), np.complex128, lower=True)

    def logdet(ab_):
        c = la.cholesky_banded(ab_, lower=True)
        return 2 * lad.sum(lad.log(lad.real(c[0])))

    value, g = lad.value_and_grad(logdet)(ab)
    np.testing.assert_allclose(value, np.linalg.slogdet(A)[1], rtol=1e-12)
    Ai = np.linalg.inv(A)
    want = band_from_dense(np, 2 * Ai - np.diag(np.diag(Ai).real), u, 0)
    ok = _valid(ab, True)
    np.testing.assert_allclose(g[ok], want[ok], rtol=1e-10, atol=1e-13)
    # Hessian-vector product along a Hermitian band direction
    T = rng.standard_normal(ab.shape) + 1j * rng.standard_normal(ab.shape)
    T[~ok] = 0
    Ad = dense_from_band(np, T, u, 0)
    Ad = Ad + np.conj(np.tril(Ad, -1)).T
    np.fill_diagonal(Ad, np.diag(Ad).real)
    Hv = lad.hvp(logdet, (ab,), (T,))
    if isinstance(Hv, tuple):
        Hv = Hv[0]
    M = -Ai @ Ad @ Ai
    want = band_from_dense(np, 2 * M - np.diag(np.diag(M).real), u, 0)
    np.testing.assert_allclose(Hv[ok], want[ok], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("u", [0, 1, 2, 3, 4, 6])
@pytest.mark.parametrize("forward", [False, True])
@pytest.mark.parametrize("M", [1, 2, 16, 17])
def test_recurrence_kernels_agree(u, forward, dtype, M, monkeypatch):
    """The Kronecker band system (in one chunk and in many), cyclic reduction, and the
    recurrence stepped block by block."""
    rng = np.random.default_rng(u + 10 * forward + M)
    b = max(u, 1)
    shape = (2, 3, M, b, b)
    K = 0.5 * rng.standard_normal(shape)
    Q = rng.standard_normal(shape)
    if np.dtype(dtype).kind == "c":
        K = K + 0.5j * rng.standard_normal(shape)
        Q = Q + 1j * rng.standard_normal(shape)
    K, Q = K.astype(dtype), Q.astype(dtype)
    want = ComposedKernels.congruence_chain(CPU, K, Q, forward)
    monkeypatch.setattr(backend, "CHAIN_KRONECKER_B", 10)
    for chunk in (1 << 22, 64):
        monkeypatch.setattr(backend, "CHAIN_CHUNK", chunk)
        got = CPU.congruence_chain(K, Q, forward)
        np.testing.assert_allclose(got, want, rtol=_tol(dtype) * 10, atol=_tol(dtype) * 10)
    # the recurrence itself, written out for the first matrix
    X = np.zeros((M, b, b), dtype=np.result_type(dtype, np.float64))
    Kk, Qk = K[0, 0].astype(X.dtype), Q[0, 0].astype(X.dtype)
    order = range(M) if forward else range(M - 1, -1, -1)
    for m in order:
        X[m] = Qk[m]
        if forward and m > 0:
            X[m] += Kk[m - 1] @ X[m - 1] @ Kk[m - 1].conj().T
        if not forward and m < M - 1:
            X[m] += Kk[m].conj().T @ X[m + 1] @ Kk[m]
    np.testing.assert_allclose(want[0, 0], X, rtol=_tol(dtype) * 10, atol=_tol(dtype) * 10)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,u", [(1, 0), (9, 1), (10, 2), (11, 3), (12, 5), (40, 9)])
def test_fused_cotangent_matches_composed(n, u, dtype):
    rng = np.random.default_rng(n + u)
    ab, _ = _hpd(rng, n, u, (3,), dtype, lower=True)
    L = CPU.band_cholesky(ab)
    Lb = rng.standard_normal(L.shape).astype(dtype)
    got = CPU.band_cholesky_cotangent(L, Lb)
    want = R._cotangent_composed(L, Lb)
    np.testing.assert_allclose(got, want, rtol=_tol(dtype), atol=_tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("lower", [False, True])
def test_cho_solve_banded_values_and_gradients(lower, dtype):
    """SciPy's values; the gradients with respect to the factor and b equal those of the dense
    cho_solve with the assembled factor, projected on the band; stacks broadcast, b a vector."""
    rng = np.random.default_rng(5 + lower)
    n, u = 9, 2
    ab, _ = _hpd(rng, n, u, (2,), dtype, lower)
    cb = la.cholesky_banded(ab, lower=lower)
    b = rng.standard_normal((3, 2, n, 2)).astype(dtype)
    x = la.cho_solve_banded((cb, lower), b)
    assert x.shape == (3, 2, n, 2) and x.dtype == dtype
    for k in range(2):
        want = scipy.linalg.cho_solve_banded((cb[k], lower), b[0, k])
        np.testing.assert_allclose(x[0, k], want, rtol=_tol(dtype) * 10, atol=_tol(dtype))
    xv = la.cho_solve_banded((cb[0], lower), b[0, 0, :, 0])
    np.testing.assert_allclose(xv, x[0, 0, :, 0], rtol=_tol(dtype))
    if np.dtype(dtype) not in (np.float64, np.complex128):
        return
    lo, up = (u, 0) if lower else (0, u)
    W = rng.standard_normal(b.shape)

    def band_loss(c_, b_):
        return lad.sum(lad.real(W * la.cho_solve_banded((c_, lower), b_)))

    def dense_loss(C_, b_):
        return lad.sum(lad.real(W * la.cho_solve((C_, lower), b_)))

    g = lad.grad(band_loss, argnums=(0, 1))(cb, b)
    G = lad.grad(dense_loss, argnums=(0, 1))(dense_from_band(np, cb, lo, up), b)
    np.testing.assert_allclose(g[0], band_from_dense(np, G[0], lo, up), rtol=1e-10,
                               atol=1e-13)
    np.testing.assert_allclose(g[1], G[1], rtol=1e-10, atol=1e-13)


def test_gp_likelihood_through_both():
    """A Gaussian log-likelihood with a banded precision-free covariance, value and gradient
    against the dense computation."""
    rng = np.random.default_rng(8)
    n, u = 50, 2
    ab, A = _hpd(rng, n, u, (), np.float64, lower=False)
    y = rng.standard_normal(n)

    def nll(ab_):
        c = la.cholesky_banded(ab_)
        alpha = la.cho_solve_banded((c, False), y)
        return 0.5 * lad.sum(y * alpha) + lad.sum(lad.log(c[u]))

    def dense(A_):
        return 0.5 * lad.sum(y * la.solve(A_, y, assume_a="pos")) + 0.5 * la.logdet(A_, lower=False)

    v, g = lad.value_and_grad(nll)(ab)
    vd, G = lad.value_and_grad(dense)(np.triu(A))
    np.testing.assert_allclose(v, vd, rtol=1e-12)
    ok = _valid(ab, False)
    np.testing.assert_allclose(g[ok], band_from_dense(np, G, 0, u)[ok], rtol=1e-9,
                               atol=1e-12)


def test_errors():
    rng = np.random.default_rng(0)
    ab, _ = _hpd(rng, 6, 1, (3,), np.float64, lower=True)
    bad = ab.copy()
    bad[1, 0, 3] = -50.0
    with pytest.raises(LinAlgError, match=r"cholesky_banded: .*leading minor of order 4.*"
                                          r"matrix \(1,\) of the stack"):
        la.cholesky_banded(bad, lower=True)
    with pytest.raises(LinAlgError, match="leading minor of order 1"):
        la.cholesky_banded(-ab[0])
    with pytest.raises(ValueError, match="band storage"):
        la.cholesky_banded(np.ones(4))
    with pytest.raises(ValueError, match="ab"):
        la.cholesky_banded(np.array([[1.0, np.nan], [2.0, 3.0]]))
    cb = la.cholesky_banded(ab[0], lower=True)
    with pytest.raises(TypeError, match=r"\(cb, lower\)"):
        la.cho_solve_banded((cb,), np.ones(6))
    with pytest.raises(TypeError, match=r"\(cb, lower\), lower a boolean; got an array"):
        la.cho_solve_banded(cb, np.ones(6))                  # cb alone: its rows unpacked
    with pytest.raises(ValueError, match="cho_solve_banded"):
        la.cho_solve_banded((cb, True), np.ones(5))
    zero = cb.copy()
    zero[0, 2] = 0
    with pytest.raises(LinAlgError, match="cho_solve_banded: the factor is singular"):
        la.cho_solve_banded((zero, True), np.ones(6))


def test_empty_and_integer_input():
    assert la.cholesky_banded(np.zeros((2, 0))).shape == (2, 0)
    assert la.cholesky_banded(np.zeros((0, 2, 3))).shape == (0, 2, 3)
    g = lad.grad(lambda a: lad.sum(la.cholesky_banded(a)))(np.zeros((2, 0)))
    assert g.shape == (2, 0)
    c = la.cholesky_banded(np.array([[0, 1, 1], [4, 4, 4]]))        # integers: float64
    np.testing.assert_allclose(c, scipy.linalg.cholesky_banded(np.array([[0., 1, 1],
                                                                         [4, 4, 4]])))
    x = la.cho_solve_banded((c, False), np.zeros((3, 0)))
    assert x.shape == (3, 0)


def test_jit_replays():
    rng = np.random.default_rng(4)
    ab, _ = _hpd(rng, 40, 2, (), np.float64)

    def logdet(ab_):
        return 2 * lad.sum(lad.log(la.cholesky_banded(ab_)[2]))

    f = lad.jit(lad.value_and_grad(logdet))
    for k in range(3):
        a = ab * (1 + 0.1 * k)
        v, g = f(a)
        v2, g2 = lad.value_and_grad(logdet)(a)
        np.testing.assert_allclose(v, v2, rtol=1e-13)
        np.testing.assert_allclose(g, g2, rtol=1e-12)


def test_memory_is_linear_in_n():
    """Value and gradient of log det of a pentadiagonal matrix of order 200,000 in a few
    dozen arrays of length n (the dense matrix would be 320 GB)."""
    n, u = 200_000, 2
    rng = np.random.default_rng(1)
    ab = 0.3 * rng.standard_normal((u + 1, n))
    ab[u] = 3.0 + np.abs(ab[u])

    def logdet(ab_):
        return 2 * lad.sum(lad.log(la.cholesky_banded(ab_)[u]))

    tracemalloc.start()
    try:
        v, g = lad.value_and_grad(logdet)(ab)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert np.isfinite(v) and g.shape == ab.shape
    assert peak < 120 * n * 8, peak / (n * 8)


def test_through_the_emulated_gpu_table(cupy):
    """Small orders assembled on the device, large ones on the host; values and gradients as
    the CPU's."""
    rng = np.random.default_rng(2)
    for n in (12, 200):
        ab, _ = _hpd(rng, n, 2, (2,), np.complex128, lower=False)
        b = rng.standard_normal((2, n, 3))

        def loss(ab_, b_):
            c = la.cholesky_banded(ab_)
            return lad.sum(lad.real(la.cho_solve_banded((c, False), b_))) + \
                lad.sum(lad.log(lad.real(c[..., 2, :])))

        want = lad.value_and_grad(loss, argnums=(0, 1))(ab, b)
        got = lad.value_and_grad(loss, argnums=(0, 1))(cupy.asarray(ab), cupy.asarray(b))
        np.testing.assert_allclose(cupy.asnumpy(got[0]), want[0], rtol=1e-12)
        for d, c in zip(got[1], want[1]):
            assert isinstance(d, cupy.ndarray)
            np.testing.assert_allclose(cupy.asnumpy(d), c, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("b", [1, 2, 3, 7, 16, 17, 20])
def test_lower_block_inverse(b, dtype):
    """Substitution over the stack (b ≤ BLOCK_INVERSE_B) and the triangular solve above."""
    rng = np.random.default_rng(b)
    D = np.tril(rng.standard_normal((3, 5, b, b))) + 3 * np.eye(b)
    if np.dtype(dtype).kind == "c":
        D = D + 1j * np.tril(rng.standard_normal((3, 5, b, b)))
    D = D.astype(dtype)
    got = CPU.lower_block_inverse(D)
    np.testing.assert_allclose(got, np.linalg.inv(D), rtol=_tol(dtype), atol=_tol(dtype))


def test_device_makes_no_call_per_block(cupy, monkeypatch):
    """The device inverts the stack of diagonal blocks in batched operations: no triangular
    solve per block in the gradient, the forward mode or a Hessian-vector product."""
    import linalgad.gpu.kernels as gk
    calls = []
    real = gk._cxl.solve_triangular
    monkeypatch.setattr(gk._cxl, "solve_triangular",
                        lambda *a, **k: calls.append(1) or real(*a, **k))
    rng = np.random.default_rng(3)
    for u in (1, 3, 20):
        ab, _ = _hpd(rng, 300, u, (), np.float64)
        a = cupy.asarray(ab)

        def logdet(x):
            return 2 * lad.sum(lad.log(la.cholesky_banded(x)[u]))

        lad.value_and_grad(logdet)(a)
        lad.jvp(logdet, (a,), (a,))
        lad.hvp(logdet, (a,), (a,))
    assert calls == []


def test_argument_checks_and_messages_on_both_tables(cupy):
    rng = np.random.default_rng(6)
    ab, _ = _hpd(rng, 6, 1, (2,), np.float64, lower=True)
    with pytest.raises(ValueError, match="cholesky_banded: lower must be a boolean"):
        la.cholesky_banded(ab, lower="yes")
    cb = la.cholesky_banded(ab, lower=True)
    with pytest.raises(TypeError, match=r"\(cb, lower\), lower a boolean"):
        la.cho_solve_banded(np.array([[[2.0]], [[4.0]]]), np.ones(1))
    bad = cb.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="cho_solve_banded: cb contains infs or NaNs"):
        la.cho_solve_banded((bad, True), np.ones(6))
    # the device's small orders (assembled) say what the CPU says
    notpd = ab.copy()
    notpd[1, 0, 3] = -50.0
    zero = cb.copy()
    zero[1, 0, 2] = 0
    for xp in (np, cupy):
        with pytest.raises(LinAlgError, match=r"leading minor of order 4 is not positive\) "
                                              r"\(matrix \(1,\)"):
            la.cholesky_banded(xp.asarray(notpd), lower=True)
        with pytest.raises(LinAlgError, match=r"the factor is singular \(its diagonal entry 2 "
                                              r"is zero\) \(matrix \(1,\)"):
            la.cho_solve_banded((xp.asarray(zero), True), xp.ones((2, 6, 1)))
