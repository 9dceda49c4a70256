"""eigh_tridiagonal / eigvalsh_tridiagonal (eigh_tridiagonal.md): SciPy's values and
selections, gradients equal to the dense eigh rule's on the three diagonals, second order,
stacks, errors, empty and order-1 input."""

import numpy as np
import pytest
import scipy.linalg

import linalgad as lad
from linalgad import linalg as la
from linalgad.testing import check_grads


def _de(rng, n, batch=()):
    d = np.linspace(-1, 1, n) * n + 0.3 * rng.standard_normal(batch + (n,))
    e = 0.5 + 0.3 * rng.standard_normal(batch + (max(n - 1, 0),))
    return d, e


def _dense(d, e):
    return np.diag(d) + np.diag(e, 1) + np.diag(e, -1)


@pytest.mark.parametrize("select, select_range", [("a", None), ("i", (2, 4)), ("v", (-3, 3))])
def test_values_match_scipy_traced_and_not(select, select_range):
    rng = np.random.default_rng(1)
    d, e = _de(rng, 9)
    want = scipy.linalg.eigh_tridiagonal(d, e, select=select, select_range=select_range)
    got = la.eigh_tridiagonal(d, e, select=select, select_range=select_range)
    np.testing.assert_allclose(got[0], want[0], atol=1e-12)
    np.testing.assert_allclose(np.abs(got[1]), np.abs(want[1]), atol=1e-10)
    w = la.eigvalsh_tridiagonal(d, e, select=select, select_range=select_range)
    np.testing.assert_allclose(w, want[0], atol=1e-12)
    # traced: every pair from stevd, then the selection (the same values)
    v, g = lad.value_and_grad(lambda d_: lad.sum(la.eigvalsh_tridiagonal(
        d_, e, select=select, select_range=select_range)))(d)
    np.testing.assert_allclose(v, want[0].sum(), rtol=1e-12)
    V = want[1]
    np.testing.assert_allclose(g, np.sum(V ** 2, axis=1), atol=1e-12)


@pytest.mark.parametrize("batch", [(), (3,)])
def test_gradients_are_the_dense_rules_on_three_diagonals(batch):
    rng = np.random.default_rng(2)
    n = 8
    d, e = _de(rng, n, batch)
    W = rng.standard_normal(batch + (n, n))
    c = rng.standard_normal(n)

    def loss_tri(d_, e_):
        w, V = la.eigh_tridiagonal(d_, e_)
        return lad.sum(c * w) + lad.sum(W * lad.matmul(V * np.linspace(1, 2, n),
                                                     lad.swapaxes(V, -1, -2)))

    def loss_dense(T):
        w, V = la.eigh(T)
        return lad.sum(c * w) + lad.sum(W * lad.matmul(V * np.linspace(1, 2, n),
                                                     lad.swapaxes(V, -1, -2)))
    gd, ge = lad.grad(loss_tri, argnums=(0, 1))(d, e)
    T = np.stack([_dense(di, ei) for di, ei in zip(d.reshape(-1, n), e.reshape(-1, n - 1))])
    G = lad.grad(loss_dense)(T.reshape(batch + (n, n)))       # the lower triangle's
    np.testing.assert_allclose(gd, np.diagonal(G, 0, -2, -1), atol=1e-12)
    np.testing.assert_allclose(ge, np.diagonal(G, -1, -2, -1), atol=1e-12)
    check_grads(loss_tri, (d, e), order=2)
    check_grads(lambda d_, e_: la.eigvalsh_tridiagonal(d_, e_, select="i", select_range=(0, 2)),
                (d, e), order=2)


def test_values_gradient_is_quadratic_not_cubic():
    """d̄_j = Σ w̄_i V_ji², ē_j = 2 Σ w̄_i V_ji V_j+1,i: the value gradient at n = 1500 equals
    the formula (no n × n product of the dense rule)."""
    rng = np.random.default_rng(3)
    d, e = _de(rng, 1500)
    c = rng.standard_normal(1500)
    gd, ge = lad.grad(lambda d_, e_: lad.sum(c * la.eigvalsh_tridiagonal(d_, e_)),
                      argnums=(0, 1))(d, e)
    w, V = scipy.linalg.eigh_tridiagonal(d, e)
    np.testing.assert_allclose(gd, (V ** 2) @ c, atol=1e-10)
    np.testing.assert_allclose(ge, 2 * (V[:-1] * V[1:]) @ c, atol=1e-10)


def test_float32_broadcast_and_errors():
    rng = np.random.default_rng(4)
    d, e = _de(rng, 6, (2,))
    w = la.eigvalsh_tridiagonal(d.astype(np.float32), e[0].astype(np.float32))
    assert w.dtype == np.float32 and w.shape == (2, 6)
    g = lad.grad(lambda d_: lad.sum(la.eigvalsh_tridiagonal(d_, e[0].astype(np.float32))))(
        d.astype(np.float32))
    assert g.dtype == np.float32
    np.testing.assert_allclose(g, np.ones_like(g), atol=1e-5)   # Σ w = tr T = Σ d
    with pytest.raises(TypeError, match="complex"):
        la.eigh_tridiagonal(d[0] + 0j, e[0])
    with pytest.raises(ValueError, match="one more element"):
        la.eigh_tridiagonal(d[0], e[0, :-1])
    with pytest.raises(ValueError, match="select"):
        la.eigh_tridiagonal(d[0], e[0], select="x")
    with pytest.raises(ValueError, match="infs or NaNs"):
        la.eigh_tridiagonal(np.full(3, np.nan), np.ones(2))


def test_order_zero_is_refused_as_scipy_does():
    with pytest.raises(ValueError, match="one more element"):
        scipy.linalg.eigh_tridiagonal(np.zeros(0), np.zeros(0))
    with pytest.raises(ValueError, match="one more element"):
        la.eigh_tridiagonal(np.zeros(0), np.zeros(0))


@pytest.mark.parametrize("n", [1, 2])
def test_tiny_orders(n):
    d, e = np.arange(1.0, n + 1), np.full(max(n - 1, 0), 0.5)
    w, V = lad.value_and_grad(lambda d_: lad.sum(la.eigvalsh_tridiagonal(d_, e)))(d)
    assert V.shape == (n,)
    np.testing.assert_allclose(V, np.ones(n))


def test_value_range_may_start_at_different_indices_in_a_stack():
    """select='v' keeps as many pairs in every matrix, from each matrix's own first index
    (SciPy's per-matrix call does); eigh's subset_by_value the same."""
    d = np.array([[0.0, 5, 10], [0, 0.2, 1]])
    e = np.full(2, 0.3)
    sel = dict(select="v", select_range=(0.7, 6))
    want = scipy.linalg.eigh_tridiagonal(d, e, **sel)
    w, V = la.eigh_tridiagonal(d, e, **sel)
    np.testing.assert_allclose(w, want[0], atol=1e-12)
    g = lad.grad(lambda d_: lad.sum(la.eigvalsh_tridiagonal(d_, e, **sel)))(d)
    np.testing.assert_allclose(g, np.stack([want[1][i, :, 0] ** 2 for i in range(2)]),
                               atol=1e-12)
    check_grads(lambda d_: la.eigh_tridiagonal(d_, e, **sel)[1] ** 2, (d,), order=2)
    A = np.stack([_dense(di, e) for di in d])
    wd, Vd = la.eigh(A, subset_by_value=(0.7, 6))
    np.testing.assert_allclose(wd, want[0], atol=1e-12)
    check_grads(lambda a: la.eigh(a, subset_by_value=(0.7, 6))[1] ** 2, (A,), order=1)
    with pytest.raises(ValueError, match="different numbers"):     # 1 pair, then 2
        lad.grad(lambda d_: lad.sum(la.eigvalsh_tridiagonal(d_, e, select="v",
                                                            select_range=(0.7, 6))))(
            np.array([[0.0, 5, 10], [0, 1, 2]]))


@pytest.mark.parametrize("kw", [dict(select="i", select_range=(1.5, 2.5)),
                                dict(select="v", select_range=(3, 1)),
                                dict(lapack_driver="foo"),
                                dict(lapack_driver="stevd", select="i", select_range=(0, 1))])
def test_scipys_argument_checks_on_both_routes(kw):
    d, e = np.array([1.0, 2, 3, 4]), np.full(3, 0.1)
    with pytest.raises(ValueError):
        scipy.linalg.eigvalsh_tridiagonal(d, e, **kw)
    with pytest.raises(ValueError):
        la.eigvalsh_tridiagonal(d, e, **kw)
    with pytest.raises(ValueError):
        lad.grad(lambda d_: lad.sum(la.eigvalsh_tridiagonal(d_, e, **kw)))(d)


def test_a_few_values_of_a_large_matrix_without_every_eigenvector(monkeypatch):
    """select='i' of k ≪ n values: their k vectors by bisection and inverse iteration, O(n k)
    (every pair took n² memory: 80 GB at n = 10⁵); second order traces the full rule."""
    import tracemalloc
    from linalgad.rules import eigh_tridiagonal as T
    rng = np.random.default_rng(21)
    n = 100_000
    d, e = rng.standard_normal(n), rng.standard_normal(n - 1)
    tracemalloc.start()
    v, g = lad.value_and_grad(lambda d_: lad.sum(la.eigvalsh_tridiagonal(
        d_, e, select="i", select_range=(n - 1, n - 1))))(d)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 100 * n * 8, peak
    w, V = scipy.linalg.eigh_tridiagonal(d, e, select="i", select_range=(n - 1, n - 1))
    np.testing.assert_allclose(v, w[0], rtol=1e-14)
    np.testing.assert_allclose(g, V[:, 0] ** 2, atol=1e-12)
    # first order, forward mode and second order equal the full path's
    n = 120
    d, e = _de(rng, n)
    sel = dict(select="i", select_range=(n - 3, n - 1))
    f = lambda d_, e_: lad.sum(la.eigvalsh_tridiagonal(d_, e_, **sel) ** 2)  # noqa: E731
    t = rng.standard_normal(n)
    few = (lad.grad(f, argnums=(0, 1))(d, e), lad.hvp(lambda x: f(x, e), (d,), (t,)),
           lad.jvp(lambda x: la.eigvalsh_tridiagonal(x, e, **sel), (d,), (t,))[1])
    monkeypatch.setattr(T, "_few_pays", lambda n, k: False)
    full = (lad.grad(f, argnums=(0, 1))(d, e), lad.hvp(lambda x: f(x, e), (d,), (t,)),
            lad.jvp(lambda x: la.eigvalsh_tridiagonal(x, e, **sel), (d,), (t,))[1])
    for a, b in zip(few[0] + (few[1], few[2]), full[0] + (full[1], full[2])):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-10)
    monkeypatch.setattr(T, "_few_pays", lambda n, k: True)
    check_grads(lambda d_, e_: la.eigvalsh_tridiagonal(d_, e_, select="i",
                                                       select_range=(2, 4)), (d, e), order=2)


def test_a_few_values_at_a_tie_take_the_full_rule(monkeypatch):
    """A value in the range tied with its neighbour: the full decomposition's rule (and its
    GaugeWarning for a loss that singles one of them out)."""
    from linalgad.rules import eigh_tridiagonal as T
    monkeypatch.setattr(T, "_few_pays", lambda n, k: True)
    d = np.array([1.0, 2, 1, 2])                       # two equal blocks: every value twice
    e = np.array([0.5, 0.0, 0.5])
    calls = []
    monkeypatch.setattr(T, "_tri_eigh", lambda *a, _f=T._tri_eigh: calls.append(1) or _f(*a))
    with pytest.warns(lad.GaugeWarning):
        lad.grad(lambda d_: la.eigvalsh_tridiagonal(d_, e, select="i", select_range=(0, 0))[0])(d)
    assert calls
