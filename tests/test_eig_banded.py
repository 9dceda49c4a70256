"""eig_banded and eigvals_banded: SciPy's values and selections, the band cotangent against the
dense eigh rule's band, stacks, errors, the emulated device.  The registry checks both rules
in both modes and at second order."""

import numpy as np
import pytest
import scipy.linalg

import linalgad as lad
from linalgad import linalg as la
from linalgad.backend import band_from_dense

import _fake_cupy

DTYPES = [np.float32, np.float64, np.complex64, np.complex128]


@pytest.fixture
def cupy(monkeypatch):
    return _fake_cupy.install(monkeypatch)


def _band(rng, n, u, batch=(), dtype=np.float64, lower=False):
    G = rng.standard_normal(batch + (n, n))
    if np.dtype(dtype).kind == "c":
        G = G + 1j * rng.standard_normal(batch + (n, n))
    i, j = np.indices((n, n))
    A = np.where(abs(i - j) <= u, 0.3 * (G + np.conj(np.swapaxes(G, -1, -2))), 0)
    A = A + np.diag(np.linspace(-2.0, 2.0, n) * n)
    ab = band_from_dense(np, A, u, 0) if lower else band_from_dense(np, A, 0, u)
    return ab.astype(dtype), A


def _tol(dtype):
    return 1e-3 if np.dtype(dtype) in (np.float32, np.complex64) else 1e-11


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("lower", [False, True])
@pytest.mark.parametrize("traced", [False, True])
def test_values_and_selections_match_scipy(dtype, lower, traced):
    rng = np.random.default_rng(1)
    ab, _ = _band(rng, 9, 2, (2,), dtype, lower)
    wrap = (lambda f: lad.jvp(f, (ab,), (np.zeros_like(ab),))[0]) if traced else \
        (lambda f: f(ab))
    for kw in ({}, {"select": "i", "select_range": (2, 5)},
               {"select": "v", "select_range": (-30.0, 1.0)}):
        w = wrap(lambda a: la.eigvals_banded(a, lower=lower, **kw))
        for k in range(2):
            w0 = scipy.linalg.eigvals_banded(ab[k], lower=lower, **kw)
            np.testing.assert_allclose(w[k], w0, rtol=_tol(dtype), atol=_tol(dtype) * 20)
    w, V = (lad.jvp(lambda a: la.eig_banded(a, lower=lower), (ab,), (np.zeros_like(ab),))[0]
            if traced else la.eig_banded(ab, lower=lower))
    for k in range(2):
        w0, V0 = scipy.linalg.eig_banded(ab[k], lower=lower)
        np.testing.assert_allclose(w[k], w0, rtol=_tol(dtype), atol=_tol(dtype) * 20)
        np.testing.assert_allclose(np.abs(np.sum(np.conj(V[k]) * V0, axis=0)), 1,
                                   atol=_tol(dtype) * 100)


@pytest.mark.parametrize("dtype", [np.float64, np.complex128])
@pytest.mark.parametrize("u", [0, 1, 3])
def test_values_gradient_is_the_dense_rules_band(dtype, u):
    rng = np.random.default_rng(u)
    n = 12
    ab, A = _band(rng, n, u, (), dtype)
    g = lad.grad(lambda a: lad.sum(lad.sin(la.eigvals_banded(a))))(ab)
    G = lad.grad(lambda M: lad.sum(lad.sin(la.eigvalsh(M, lower=False))))(np.triu(A))
    ok = np.add.outer(np.arange(u + 1), np.arange(n)) >= u
    np.testing.assert_allclose(g[ok], band_from_dense(np, G, 0, u)[ok], rtol=1e-10,
                               atol=1e-13)


def test_value_selection_on_a_stack_must_agree():
    rng = np.random.default_rng(2)
    ab, _ = _band(rng, 6, 1, (2,))
    ab[1, 1] += 100                          # matrix 1: every eigenvalue shifted up
    for traced in (False, True):
        f = lambda a: la.eigvals_banded(a, select="v", select_range=(-50, 50))  # noqa: E731
        with pytest.raises(ValueError, match="different numbers"):
            lad.grad(lambda a: lad.sum(f(a)))(ab) if traced else f(ab)


def test_errors():
    with pytest.raises(ValueError, match="band storage"):
        la.eig_banded(np.ones(3))
    with pytest.raises(ValueError, match="select must be"):
        la.eig_banded(np.ones((2, 3)), select="x")
    with pytest.raises(ValueError, match="select_range"):
        la.eigvals_banded(np.ones((2, 3)), select="i")
    with pytest.raises(ValueError, match="0 <= lo <= hi < n"):
        la.eigvals_banded(np.ones((2, 3)), select="i", select_range=(1, 5))
    with pytest.raises(ValueError, match="lower must be a boolean"):
        la.eig_banded(np.ones((2, 3)), lower="yes")
    with pytest.raises(ValueError, match="a_band contains infs or NaNs"):
        la.eig_banded(np.full((2, 3), np.nan))


def test_phase_dependent_loss_raises():
    rng = np.random.default_rng(3)
    ab, _ = _band(rng, 6, 2, (), np.complex128)
    with pytest.raises(ValueError, match="phase"):
        lad.grad(lambda a: lad.sum(lad.real(la.eig_banded(a)[1])))(ab)


def test_through_the_emulated_gpu_table(cupy):
    rng = np.random.default_rng(4)
    ab, _ = _band(rng, 10, 2, (2,), np.complex128)

    def loss(a):
        w, V = la.eig_banded(a)
        return lad.sum(w ** 2) + lad.sum(lad.abs(V[..., :2]) ** 2 * lad.real(a[..., :1, :2]))

    want = lad.value_and_grad(loss)(ab)
    got = lad.value_and_grad(loss)(cupy.asarray(ab))
    np.testing.assert_allclose(cupy.asnumpy(got[0]), want[0], rtol=1e-10)
    assert isinstance(got[1], cupy.ndarray)
    np.testing.assert_allclose(cupy.asnumpy(got[1]), want[1], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float64, np.complex128])
def test_few_values_by_inverse_iteration_match_the_full_rule(dtype):
    """select='i' of k ≤ n/8 values alone: the values, gradient, forward mode and Hessian-vector
    product from the k vectors (inverse iteration on the band) equal the full path's."""
    from linalgad.backend import _band_inverse_iteration
    rng = np.random.default_rng(5)
    n, u = 200, 3
    ab, A = _band(rng, n, u, (), dtype)
    w, V = _band_inverse_iteration(ab, (n - 6, n - 1))
    w0, V0 = scipy.linalg.eigh(A, subset_by_index=(n - 6, n - 1))
    np.testing.assert_allclose(w, w0, rtol=1e-13)
    np.testing.assert_allclose(np.abs(np.sum(np.conj(V) * V0, axis=0)), 1, atol=1e-12)

    def few(a):
        return lad.sum(la.eigvals_banded(a, select="i", select_range=(n - 5, n - 1)) ** 2)

    def full(a):
        return lad.sum(la.eigvals_banded(a)[n - 5:] ** 2)

    np.testing.assert_allclose(lad.grad(few)(ab), lad.grad(full)(ab), rtol=1e-9, atol=1e-9)
    E = rng.standard_normal(ab.shape)
    np.testing.assert_allclose(lad.jvp(few, (ab,), (E,))[1], lad.jvp(full, (ab,), (E,))[1],
                               rtol=1e-10)
    h1, h2 = lad.hvp(few, (ab,), (E,)), lad.hvp(full, (ab,), (E,))
    h1, h2 = (h[0] if isinstance(h, tuple) else h for h in (h1, h2))
    np.testing.assert_allclose(h1, h2, rtol=1e-8, atol=1e-9)


def test_few_values_at_a_tie_take_the_full_path():
    """Two equal eigenvalues at the selection's edge: the full rule (and its warning for a
    loss that singles one out) rather than vectors of an ill-defined pair."""
    n = 80
    ab = np.zeros((2, n))
    ab[1] = np.arange(n, dtype=float)
    ab[1, -1] = ab[1, -2]                      # a double eigenvalue at the top
    with pytest.warns(lad.GaugeWarning):
        lad.grad(lambda a: la.eigvals_banded(a, select="i", select_range=(n - 1, n - 1))[0])(ab)
    g = lad.grad(lambda a: lad.sum(la.eigvals_banded(a, select="i",
                                                     select_range=(n - 2, n - 1))))(ab)
    np.testing.assert_allclose(g[1, -2:], 1.0)


def test_review_42_cases():
    """n = 1 (SciPy returns the upper form's corner), u ≥ n on the few-values path, empty
    input, max_ev (SciPy's sbevx writes past its buffer with it): as a demanding user meets
    them."""
    for u in (1, 5):
        for lower in (False, True):
            ab = np.zeros((u + 1, 1))
            ab[0, 0], ab[u, 0] = 7.0, 3.0            # the diagonal 3, a corner 7
            if lower:
                ab = ab[::-1].copy()
            np.testing.assert_allclose(la.eigvals_banded(ab, lower=lower), [3.0])
            g = lad.grad(lambda a: lad.sum(la.eigvals_banded(a, lower=lower)))(ab)
            np.testing.assert_allclose(g[0 if lower else u], [1.0])
            assert g.sum() == 1.0
    rng = np.random.default_rng(7)
    n, u = 64, 70
    ab = rng.standard_normal((u + 1, n))
    ab[u] += np.linspace(-50, 50, n)
    few = lad.grad(lambda a: lad.sum(la.eigvals_banded(a, select="i", select_range=(0, 3))))
    full = lad.grad(lambda a: lad.sum(la.eigvals_banded(a)[:4]))
    np.testing.assert_allclose(few(ab), full(ab), rtol=1e-9, atol=1e-10)
    assert la.eigvals_banded(np.zeros((3, 0))).shape == (0,)
    assert la.eigvals_banded(np.zeros((0, 3, 4)), select="i", select_range=(0, 1)).shape == \
        (0, 2)
    ab = rng.standard_normal((3, 8))
    ab[2] += np.arange(8) * 5
    w, V = la.eig_banded(ab, select="v", select_range=(-100, 100), max_ev=2)
    assert w.shape == (8,) and V.shape == (8, 8)
