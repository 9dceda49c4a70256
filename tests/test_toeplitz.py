"""solve_toeplitz / matmul_toeplitz / toeplitz: SciPy's values, shapes and errors; derivatives
on both kernel paths (the assembled matrices for small stacks, FFT above) at any order; O(n)
memory where the dense route needs n²."""

import tracemalloc

import numpy as np
import pytest
import scipy.linalg

import linalgad as lad
from linalgad.backend import TOEPLITZ_DENSE_CORRELATE, TOEPLITZ_DENSE_PRODUCT
from linalgad.rules import toeplitz as T
from linalgad.testing import check_grads

la = lad.linalg


def _rand(rng, shape, complex_):
    x = rng.standard_normal(shape)
    return x + 1j * rng.standard_normal(shape) if complex_ else x


def _cr(rng, n, batch=(), complex_=False):
    c = _rand(rng, batch + (n,), complex_) / np.sqrt(n)
    r = _rand(rng, batch + (n,), complex_) / np.sqrt(n)
    c[..., 0] += 3
    return c, r


@pytest.mark.parametrize("n", [5, 70])
@pytest.mark.parametrize("complex_", [False, True])
def test_values_match_scipy(n, complex_):
    rng = np.random.default_rng(0)
    c, r = _cr(rng, n, complex_=complex_)
    ch = T._autocovariance(rng, n, (), np.complex128 if complex_ else np.float64)
    for b in (_rand(rng, (n,), complex_), _rand(rng, (n, 3), complex_)):
        for cr in ((c, r), ch):
            x = la.solve_toeplitz(cr, b)
            want = scipy.linalg.solve_toeplitz(cr, b)
            assert x.shape == want.shape and x.dtype == want.dtype
            np.testing.assert_allclose(x, want, rtol=1e-12, atol=1e-12 * abs(want).max())
        for cr in ((c, r), (np.r_[c, c[:3]], r), ch):
            y = la.matmul_toeplitz(cr, b)
            want = scipy.linalg.matmul_toeplitz(cr, b)
            assert y.shape == want.shape
            np.testing.assert_allclose(y, want, rtol=1e-12, atol=1e-12 * abs(want).max())
    np.testing.assert_array_equal(la.toeplitz(c, r), scipy.linalg.toeplitz(c, r))
    np.testing.assert_array_equal(la.toeplitz(c), scipy.linalg.toeplitz(c))


def test_stacks_and_dtypes_follow_scipys_batching():
    """c, r (..., n) stacks; b (n,) broadcasts, b of two or more dimensions is (..., n, k)."""
    rng = np.random.default_rng(1)
    c, r = _cr(rng, 6, (3,))
    b = rng.standard_normal(6)
    B = rng.standard_normal((3, 6, 2))
    for bb in (b, B, B[0]):
        x = la.solve_toeplitz((c, r), bb)
        want = scipy.linalg.solve_toeplitz((c, r), bb)
        assert x.shape == want.shape
        np.testing.assert_allclose(x, want, rtol=1e-12)
        y = la.matmul_toeplitz((c, r), bb)
        np.testing.assert_allclose(y, scipy.linalg.matmul_toeplitz((c, r), bb), rtol=1e-12)
    np.testing.assert_array_equal(la.toeplitz(c, r), scipy.linalg.toeplitz(c, r))
    x32 = la.solve_toeplitz((c.astype(np.float32), r.astype(np.float32)), b.astype(np.float32))
    assert x32.dtype == np.float32
    np.testing.assert_allclose(x32, scipy.linalg.solve_toeplitz((c, r), b), rtol=1e-5)
    assert la.solve_toeplitz(([2, 1, 0], [2, 0, 1]), [1, 2, 3]).dtype == np.float64


@pytest.mark.parametrize("n", [6, 70])          # stacks of 2: both kernel paths
@pytest.mark.parametrize("dtype", [np.float64, np.complex128])
def test_derivatives_on_both_kernel_paths(n, dtype):
    assert 2 * 6 * 9 <= TOEPLITZ_DENSE_CORRELATE <= TOEPLITZ_DENSE_PRODUCT < 2 * 70 * 70
    rng = np.random.default_rng(2)
    complex_ = dtype == np.complex128
    c, r = _cr(rng, n, (2,), complex_)
    b = _rand(rng, (2, n, 2), complex_)
    ch = T._autocovariance(rng, n, (2,), dtype)
    check_grads(lambda c_, r_, b_: la.solve_toeplitz((c_, r_), b_), (c, r, b), order=2)
    check_grads(lambda c_, b_: la.solve_toeplitz(c_, b_), (ch, b[0]), order=2)
    check_grads(lambda c_, r_, x_: la.matmul_toeplitz((c_, r_), x_),
                (np.r_['-1', c, c[..., :3]], r, b), order=2)
    check_grads(lambda c_, r_: la.toeplitz(c_, r_), (c, r), order=2)
    check_grads(lambda c_, r_: la.toeplitz(c_, r_), (c[..., :4], r[:1]), order=2)


def test_r0_is_ignored_and_gets_no_gradient():
    rng = np.random.default_rng(3)
    c, r = _cr(rng, 5)
    b = rng.standard_normal(5)
    r2 = r.copy()
    r2[0] = 100.0
    np.testing.assert_array_equal(la.solve_toeplitz((c, r), b), la.solve_toeplitz((c, r2), b))
    g = lad.grad(lambda r_: lad.sum(la.solve_toeplitz((c, r_), b)))(r)
    assert g[0] == 0 and np.all(g[1:] != 0)


def test_gradient_against_the_dense_solve():
    """The rule's c̄, r̄, b̄ are the dense solve's Ā summed along the diagonals."""
    rng = np.random.default_rng(4)
    n = 90
    c, r = _cr(rng, n, complex_=True)
    b = _rand(rng, (n, 2), True)
    W = _rand(rng, (n, 2), True)
    loss = lambda c_, r_, b_: lad.real(lad.sum(W * la.solve_toeplitz((c_, r_), b_)))
    dense = lambda c_, r_, b_: lad.real(lad.sum(W * la.solve(la.toeplitz(c_, r_), b_)))
    got = lad.grad(loss, argnums=(0, 1, 2))(c, r, b)
    want = lad.grad(dense, argnums=(0, 1, 2))(c, r, b)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-12 * abs(w).max())


def test_hvp_and_jit():
    rng = np.random.default_rng(5)
    n = 70
    ch = T._autocovariance(rng, n, (), np.float64)
    y = rng.standard_normal(n)

    def quad(c_):                           # yᵀ T(c)⁻¹ y, a Gaussian likelihood's data term
        return lad.sum(y * la.solve_toeplitz(c_, y))
    v = rng.standard_normal(n)
    hv = lad.hvp(quad, (ch,), (v,))
    hv = hv[0] if isinstance(hv, tuple) else hv
    g = lad.grad(quad)
    h = 1e-5
    np.testing.assert_allclose(hv, (g(ch + h * v) - g(ch - h * v)) / (2 * h), rtol=1e-6,
                               atol=1e-7 * abs(hv).max())
    vg = lad.jit(lad.value_and_grad(quad))
    for s in (1.0, 1.1, 0.9):
        got, want = vg(ch * s), lad.value_and_grad(quad)(ch * s)
        np.testing.assert_allclose(got[0], want[0], rtol=1e-13)
        np.testing.assert_allclose(got[1], want[1], rtol=1e-12, atol=1e-14)


def test_memory_is_linear_in_n():
    """n = 6000: value and gradient in O(n) memory (the dense matrix alone is 288 MB)."""
    rng = np.random.default_rng(6)
    n = 6000
    c = T._autocovariance(rng, n, (), np.float64)
    b = rng.standard_normal(n)
    W = rng.standard_normal(n)
    f = lad.value_and_grad(lambda c_, b_: lad.sum(W * la.solve_toeplitz(c_, b_)),
                           argnums=(0, 1))
    lad.grad(lambda c_: lad.sum(la.solve_toeplitz(c_, b[:100])))(c[:100])   # warm up
    tracemalloc.start()
    _, (gc, gb) = f(c, b)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 60 * n * 8, peak
    # the gradient in b is the solve with Tᴴ = T (real symmetric): check one entry's scale
    np.testing.assert_allclose(gb, scipy.linalg.solve_toeplitz(c, W), rtol=1e-9, atol=1e-12)


def test_empty_and_one():
    assert la.solve_toeplitz(np.zeros(0), np.zeros(0)).shape == (0,)
    assert la.matmul_toeplitz((np.zeros(0), np.zeros(0)), np.zeros((0, 2))).shape == (0, 2)
    y = la.matmul_toeplitz((np.ones(3), np.zeros(0)), np.zeros((0, 2)))
    assert y.shape == (3, 2) and not y.any()       # as T @ x (SciPy 1.17 gives (3, 0))
    np.testing.assert_allclose(la.solve_toeplitz([2.0], [4.0]), [2.0])
    g = lad.grad(lambda c: lad.sum(la.solve_toeplitz(c, np.array([4.0]))))(np.array([2.0]))
    np.testing.assert_allclose(g, [-1.0])                 # d(4/c)/dc = −4/c²


def test_errors():
    rng = np.random.default_rng(7)
    c, r = _cr(rng, 4, (2,))
    with pytest.raises(ValueError, match="solve_toeplitz: incompatible dimensions"):
        la.solve_toeplitz((c, r[..., :3]), np.ones(4))
    with pytest.raises(ValueError, match="solve_toeplitz: incompatible dimensions"):
        la.solve_toeplitz((c, r), np.ones(5))
    with pytest.raises(ValueError, match="matmul_toeplitz: incompatible dimensions"):
        la.matmul_toeplitz((c, r), np.ones((3, 2)))
    with pytest.raises(ValueError, match="do not broadcast"):
        la.solve_toeplitz((c, r), np.ones((3, 4, 1)))
    with pytest.raises(ValueError, match="c_or_cr must be c or a tuple"):
        la.solve_toeplitz((c, r, r), np.ones(4))
    bad = c.copy()
    bad[1, 2] = np.nan
    with pytest.raises(ValueError, match="solve_toeplitz"):
        la.solve_toeplitz((bad, r), np.ones(4))
    # T = [[0, 1], [1, 0]] is nonsingular, but its leading minor is zero: Levinson stops
    cz = np.array([[2.0, 1.0], [0.0, 1.0]])
    with pytest.raises(np.linalg.LinAlgError,
                       match=r"solve_toeplitz: a leading principal minor .* \(matrix 1 of"):
        la.solve_toeplitz(cz, np.ones(2))
    with pytest.raises(np.linalg.LinAlgError):
        scipy.linalg.solve_toeplitz(cz[1], np.ones(2))


def test_stacks_of_c_and_r_broadcast():
    """c (3, n) with r (n,) and the reverse: SciPy 1.17 broadcasts them; a shared argument
    gets the stack's gradient sum."""
    rng = np.random.default_rng(8)
    c, r = _cr(rng, 5, (3,))
    b = rng.standard_normal((5, 2))
    for cc, rr in ((c, r[0]), (c[0], r), (c[:1], r)):
        np.testing.assert_allclose(la.solve_toeplitz((cc, rr), b),
                                   scipy.linalg.solve_toeplitz((cc, rr), b), rtol=1e-12)
        np.testing.assert_allclose(la.matmul_toeplitz((cc, rr), b),
                                   scipy.linalg.matmul_toeplitz((cc, rr), b), rtol=1e-12)
        np.testing.assert_array_equal(la.toeplitz(cc, rr), scipy.linalg.toeplitz(cc, rr))
    g = lad.grad(lambda r_: lad.sum(la.solve_toeplitz((c, r_), b)))(r[0])
    want = sum(lad.grad(lambda r_, i=i: lad.sum(la.solve_toeplitz((c[i], r_), b)))(r[0])
               for i in range(3))
    np.testing.assert_allclose(g, want, rtol=1e-12)


def test_argument_messages_and_workers():
    c = np.array([3.0, 1.0, 0.5])
    with pytest.raises(ValueError, match="solve_toeplitz: b must be an array, not None"):
        la.solve_toeplitz(c, None)
    with pytest.raises(ValueError, match="solve_toeplitz: r must be an array, not None"):
        la.solve_toeplitz((c, None), np.ones(3))
    for bad in (0, "a", 2.5):
        with pytest.raises(ValueError, match="matmul_toeplitz: workers"):
            la.matmul_toeplitz(c, np.ones(3), workers=bad)
    np.testing.assert_allclose(la.matmul_toeplitz(c, np.ones(3), workers=-1),
                               scipy.linalg.matmul_toeplitz(c, np.ones(3)))


def test_a_tall_correlation_takes_the_fft_path():
    """The assembled correlation scatters into an m × (m + n − 1) array: its switch counts
    that array (a tall m = 1024, n = 1 took 8 MB and 16 times the FFT's time)."""
    import linalgad.backend as B
    Y = np.random.default_rng(9).standard_normal((1024, 1))
    X = np.ones((1, 1))
    tracemalloc.start()
    s = B.toeplitz_correlate(np, Y, X)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    np.testing.assert_allclose(s, Y[:, 0], atol=1e-12)
    assert peak < 200_000, peak
