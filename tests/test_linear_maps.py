"""matrix_balance, cdf2rdf, clarkson_woodruff_transform (linear maps chosen from the value
or a seed), expm_cond, the structure queries and constant matrices, and the coverage of
scipy.linalg's and numpy.linalg's public functions."""

import warnings

import numpy as np
import pytest
import scipy.linalg as sl

import linalgad as lad
from linalgad import linalg as la
from linalgad.testing import check_grads

DTYPES = (np.float32, np.float64, np.complex64, np.complex128)


def _random(rng, shape, dtype):
    x = rng.standard_normal(shape)
    if np.dtype(dtype).kind == "c":
        x = x + 1j * rng.standard_normal(shape)
    return x.astype(dtype)


def _fd(f, x, d, h=1e-6):
    return (f(x + h * d) - f(x - h * d)) / (2 * h)


# -- matrix_balance -----------------------------------------------------------------------------

def _permuting(rng, n, dtype, batch=()):
    """Graded, with row 0 zero off the diagonal: gebal permutes and scales."""
    A = _random(rng, batch + (n, n), dtype) * (2.0 ** rng.integers(-5, 6, batch + (n, 1)))
    A[..., 0, 1:] = 0
    return A


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch", [(), (3,), (2, 2)])
def test_matrix_balance_matches_scipy(dtype, batch):
    rng = np.random.default_rng(1)
    A = _permuting(rng, 5, dtype, batch)
    for kw in ({}, {"permute": False}, {"scale": False}, {"permute": False, "scale": False}):
        B, T = la.matrix_balance(A, **kw)
        B0, T0 = sl.matrix_balance(A, **kw)
        assert B.dtype == B0.dtype and T.dtype == T0.dtype
        np.testing.assert_array_equal(B, B0)
        np.testing.assert_array_equal(T, T0)
        B, (s, p) = la.matrix_balance(A, separate=True, **kw)
        np.testing.assert_array_equal(B, B0)
        for i in np.ndindex(batch):
            _, (s0, p0) = sl.matrix_balance(A[i], separate=True, **kw)
            np.testing.assert_array_equal(s[i], s0)
            np.testing.assert_array_equal(p[i], p0)
    _, (s, p) = la.matrix_balance(A, separate=True)
    assert not (s == 1).all() and not (p == np.arange(5)).all()   # both parts exercised


def test_matrix_balance_gradient_on_the_permuting_branch():
    """Along directions that keep the zero pattern, against SciPy's own function."""
    rng = np.random.default_rng(2)
    A = _permuting(rng, 5, np.complex128)
    W = _random(rng, (5, 5), np.complex128)
    dA = _random(rng, (5, 5), np.complex128)
    dA[0, 1:] = 0
    g = lad.grad(lambda a: lad.sum(lad.real(np.conj(W) * la.matrix_balance(a)[0])))(A)
    want = np.vdot(W, _fd(lambda a: sl.matrix_balance(a)[0], A, dA)).real
    assert abs(np.vdot(g, dA).real - want) < 1e-7 * abs(want)
    # the forward mode agrees
    _, t = lad.jvp(lambda a: la.matrix_balance(a)[0], (A,), (dA,))
    np.testing.assert_allclose(t, _fd(lambda a: sl.matrix_balance(a)[0], A, dA), rtol=1e-7,
                               atol=1e-9)


def test_matrix_balance_is_exactly_the_similarity():
    rng = np.random.default_rng(3)
    A = _permuting(rng, 6, np.float64)
    B, T = la.matrix_balance(A)
    np.testing.assert_allclose(np.linalg.solve(T, A @ T), B, rtol=1e-13, atol=1e-13)
    # gradient of a generic loss: T^{-H} B_bar T^H
    W = rng.standard_normal((6, 6))
    g = lad.grad(lambda a: lad.sum(W * la.matrix_balance(a)[0]))(A)
    np.testing.assert_allclose(g, np.linalg.inv(T).T @ W @ T.T, rtol=1e-13, atol=1e-13)


def test_matrix_balance_inputs():
    with pytest.raises(ValueError, match="matrix_balance.*square"):
        la.matrix_balance(np.ones((2, 3)))
    with pytest.raises(ValueError, match="matrix_balance.*infs or NaNs"):
        la.matrix_balance(np.array([[1.0, np.nan], [0, 1]]))
    for shape in [(0, 0), (2, 0, 0)]:
        B, T = la.matrix_balance(np.zeros(shape))
        assert B.shape == T.shape == shape
    B, T = la.matrix_balance(np.array([[1, 200], [3, 4]]))      # integers: float64, as SciPy
    np.testing.assert_array_equal(B, sl.matrix_balance(np.array([[1, 200], [3, 4]]))[0])
    assert B.dtype == np.float64
    rng = np.random.default_rng(4)
    A = _random(rng, (4, 4), np.float64) * (2.0 ** rng.integers(-3, 4, (4, 1)))
    check_grads(lambda a: la.matrix_balance(a)[0], (A,), order=2)


def test_matrix_balance_under_jit_rebalances():
    """The balancing choice is read from the value: a jit replay must not reuse the first
    matrix's permutation and scaling."""
    rng = np.random.default_rng(5)
    A1, A2 = _permuting(rng, 5, np.float64), _permuting(rng, 5, np.float64)
    A2[1, :] *= 64
    f = lad.jit(lambda a: la.matrix_balance(a)[0])
    np.testing.assert_array_equal(f(A1), sl.matrix_balance(A1)[0])
    np.testing.assert_array_equal(f(A2), sl.matrix_balance(A2)[0])


# -- cdf2rdf -----------------------------------------------------------------------------------

def _eig_with_pairs(rng, n, batch=()):
    X = rng.standard_normal(batch + (n, n))
    return np.linalg.eig(X)


@pytest.mark.parametrize("batch", [(), (4,), (2, 3)])
def test_cdf2rdf_matches_scipy(batch):
    rng = np.random.default_rng(6)
    for n in (1, 2, 5, 6):
        w, v = _eig_with_pairs(rng, n, batch)
        for dtype in (np.complex64, np.complex128):
            wr, vr = la.cdf2rdf(w.astype(dtype), v.astype(dtype))
            wr0, vr0 = sl.cdf2rdf(w.astype(dtype), v.astype(dtype))
            assert wr.dtype == wr0.dtype and vr.dtype == vr0.dtype
            np.testing.assert_allclose(wr, wr0, rtol=0, atol=1e-6)
            np.testing.assert_allclose(vr, vr0, rtol=0, atol=1e-6)
    w = rng.standard_normal(3).astype(np.float32)                 # real eigenvalues: trivial
    v = rng.standard_normal((3, 3)).astype(np.float32)
    wr, vr = la.cdf2rdf(w, v)
    wr0, vr0 = sl.cdf2rdf(w, v)
    assert wr.dtype == wr0.dtype and vr.dtype == vr0.dtype
    np.testing.assert_array_equal(wr, wr0)
    np.testing.assert_allclose(vr, vr0, rtol=1e-7)


def test_cdf2rdf_gradients_against_differences():
    rng = np.random.default_rng(7)
    w, v = _eig_with_pairs(rng, 5, (2,))
    m = np.iscomplex(w)
    Ww, Wv = rng.standard_normal((2, 5, 5)), rng.standard_normal((2, 5, 5))
    dw = _random(rng, w.shape, np.complex128)
    dw = np.where(m, dw, dw.real)
    dv = _random(rng, v.shape, np.complex128)

    def ref(t):
        wr, vr = sl.cdf2rdf(w + t * dw, v + t * dv)
        return np.sum(Ww * wr) + np.sum(Wv * vr)
    gw, gv = lad.grad(lambda a, b: lad.sum(Ww * la.cdf2rdf(a, b)[0])
                      + lad.sum(Wv * la.cdf2rdf(a, b)[1]), argnums=(0, 1))(w, v)
    want = (ref(1e-6) - ref(-1e-6)) / 2e-6
    got = np.vdot(gw, dw).real + np.vdot(gv, dv).real
    assert abs(got - want) < 1e-8 * max(1, abs(want))
    # every order, where no entry is real (a difference step in a generic complex direction
    # would make a real eigenvalue complex: outside the locally constant region)
    from linalgad.rules.linear_maps import _eigen_pairs
    (w, v), _ = _eigen_pairs(rng, 6, (2,), np.complex128)
    assert np.iscomplex(w).all()
    check_grads(lambda a, b: la.cdf2rdf(a, b), (w, v), order=2)


def test_cdf2rdf_empty_and_integer():
    for w, v in [(np.zeros(0, complex), np.zeros((0, 0), complex)),
                 (np.zeros((3, 0)), np.zeros((3, 0, 0)))]:
        wr, vr = la.cdf2rdf(w, v)
        wr0, vr0 = sl.cdf2rdf(w, v)
        assert wr.shape == wr0.shape and vr.shape == vr0.shape
        assert wr.dtype == wr0.dtype and vr.dtype == vr0.dtype
    w, v = np.array([1, 2, 3]), np.eye(3, dtype=int)             # integers: SciPy's dtypes
    wr, vr = la.cdf2rdf(w, v)
    wr0, vr0 = sl.cdf2rdf(w, v)
    assert wr.dtype == wr0.dtype and vr.dtype == vr0.dtype
    np.testing.assert_array_equal(wr, wr0)


def test_cdf2rdf_errors():
    with pytest.raises(ValueError, match="cdf2rdf: expected complex-conjugate pairs"):
        la.cdf2rdf(np.array([1 + 1j, 2.0]), np.eye(2))
    with pytest.raises(ValueError, match="cdf2rdf: expected the same number"):
        la.cdf2rdf(np.ones(3), np.eye(2))
    with pytest.raises(ValueError, match="cdf2rdf: expected v to be a square"):
        la.cdf2rdf(np.ones(2), np.ones((2, 3)))
    with pytest.raises(ValueError, match="cdf2rdf: expected w to be at least 1D"):
        la.cdf2rdf(np.float64(1.0), np.eye(1))


# -- clarkson_woodruff_transform ---------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES + (np.int64,))
def test_cwt_matches_scipy(dtype):
    rng = np.random.default_rng(8)
    A = (_random(rng, (2, 40, 3), dtype if dtype != np.int64 else np.float64) * 10
         ).astype(dtype)
    for seed in (0, 11):
        Y = la.clarkson_woodruff_transform(A, 7, rng=seed)
        Y0 = sl.clarkson_woodruff_transform(A, 7, rng=seed)
        assert Y.dtype == Y0.dtype and Y.shape == Y0.shape
        np.testing.assert_allclose(Y, Y0, rtol=1e-12, atol=0)
    g1, g2 = np.random.default_rng(3), np.random.default_rng(3)    # a Generator, consumed alike
    np.testing.assert_allclose(la.clarkson_woodruff_transform(A[0], 5, g1),
                               sl.clarkson_woodruff_transform(A[0], 5, g2), rtol=1e-12)
    np.testing.assert_allclose(la.clarkson_woodruff_transform(A[0], 5, g1),
                               sl.clarkson_woodruff_transform(A[0], 5, g2), rtol=1e-12)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")                           # seed= is SciPy's old name
        np.testing.assert_allclose(la.clarkson_woodruff_transform(A[0], 5, seed=4),
                                   sl.clarkson_woodruff_transform(A[0], 5, seed=4), rtol=1e-12)


def test_cwt_rng_passed_as_scipy_reads_it():
    """SciPy reads a positional rng (and seed=, and no rng) the legacy way: an int seeds a
    RandomState, a RandomState is used as is, None is NumPy's global RandomState; only the
    rng= keyword goes through default_rng.  The same call must give SciPy's sketch and
    leave the generator in SciPy's state."""
    rng = np.random.default_rng(13)
    A = rng.standard_normal((50, 3))
    np.testing.assert_array_equal(la.clarkson_woodruff_transform(A, 7, 3),
                                  sl.clarkson_woodruff_transform(A, 7, 3))
    r0, r1 = np.random.RandomState(3), np.random.RandomState(3)
    np.testing.assert_array_equal(la.clarkson_woodruff_transform(A, 7, r1),
                                  sl.clarkson_woodruff_transform(A, 7, r0))
    assert r0.randint(1 << 30) == r1.randint(1 << 30)
    r0, r1 = np.random.RandomState(4), np.random.RandomState(4)
    np.testing.assert_array_equal(la.clarkson_woodruff_transform(A, 7, rng=r1),
                                  sl.clarkson_woodruff_transform(A, 7, rng=r0))
    state = np.random.get_state()
    try:
        np.random.seed(5)
        Y0 = sl.clarkson_woodruff_transform(A, 7)
        np.random.seed(5)
        Y1 = la.clarkson_woodruff_transform(A, 7)
        np.testing.assert_array_equal(Y1, Y0)
        np.random.seed(6)
        Y0 = sl.clarkson_woodruff_transform(A, 7, None)
        np.random.seed(6)
        Y1 = la.clarkson_woodruff_transform(A, 7, None)
        np.testing.assert_array_equal(Y1, Y0)
    finally:
        np.random.set_state(state)
    with pytest.raises(TypeError, match="multiple values"):
        la.clarkson_woodruff_transform(A, 7, 1, seed=3)
    # edge shapes: no columns, no rows
    for shape in [(5, 0), (0, 3), (2, 0, 3)]:
        Y = la.clarkson_woodruff_transform(np.zeros(shape), 4, rng=3)
        assert Y.shape == sl.clarkson_woodruff_transform(np.zeros(shape), 4, rng=3).shape


def test_cwt_gradient_is_the_transposed_sketch():
    rng = np.random.default_rng(9)
    A = rng.standard_normal((30, 4))
    S = sl.clarkson_woodruff_transform(np.eye(30), 6, rng=2)
    Yb = rng.standard_normal((6, 4))
    g = lad.grad(lambda a: lad.sum(Yb * la.clarkson_woodruff_transform(a, 6, rng=2)))(A)
    np.testing.assert_allclose(g, S.T @ Yb, rtol=1e-14, atol=1e-14)
    check_grads(lambda a: la.clarkson_woodruff_transform(a, 6, rng=2), (A + 0j,), order=2)


def test_cwt_errors():
    with pytest.raises(ValueError, match="clarkson_woodruff_transform: input_matrix"):
        la.clarkson_woodruff_transform(np.ones(5), 2)
    with pytest.raises(ValueError, match="clarkson_woodruff_transform: sketch_size"):
        la.clarkson_woodruff_transform(np.ones((5, 2)), -1)
    # a zero sketch of a matrix with rows: SciPy raises ValueError ('high <= 0'); ours names
    # the function.  A non-integer size: SciPy's TypeError
    with pytest.raises(ValueError):
        sl.clarkson_woodruff_transform(np.ones((5, 2)), 0)
    with pytest.raises(ValueError, match="clarkson_woodruff_transform: sketch_size"):
        la.clarkson_woodruff_transform(np.ones((5, 2)), 0)
    with pytest.raises(TypeError):
        sl.clarkson_woodruff_transform(np.ones((5, 2)), 2.0)
    with pytest.raises(TypeError, match="clarkson_woodruff_transform: sketch_size"):
        la.clarkson_woodruff_transform(np.ones((5, 2)), 2.0)


# -- expm_cond ---------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
def test_expm_cond_matches_scipy(dtype):
    rng = np.random.default_rng(10)
    A = (_random(rng, (2, 4, 4), dtype) * 0.5).astype(dtype)
    k, k0 = la.expm_cond(A), sl.expm_cond(A)
    assert k.shape == k0.shape == (2,) and k.dtype == k0.dtype
    tol = 1e-6 if dtype in (np.float32, np.complex64) else 1e-12
    np.testing.assert_allclose(k, k0, rtol=tol)


def test_expm_cond_gradient_against_scipy_differences():
    rng = np.random.default_rng(11)
    for dtype in (np.float64, np.complex128):
        A = _random(rng, (3, 3), dtype) * 0.6
        d = _random(rng, (3, 3), dtype)
        g = lad.grad(la.expm_cond)(A)
        want = _fd(sl.expm_cond, A, d)
        assert abs(np.vdot(g, d).real - want) < 1e-7 * abs(want)
    g = lad.grad(la.expm_cond)(A.real.astype(np.float32))
    assert g.dtype == np.float32


def test_expm_cond_errors():
    with pytest.raises(ValueError, match="expm_cond.*square"):
        la.expm_cond(np.ones((2, 3)))
    with pytest.raises(ValueError, match="expm_cond.*empty"):
        la.expm_cond(np.zeros((0, 0)))
    with pytest.raises(ValueError, match="expm_cond"):
        la.expm_cond(np.array([[np.inf]]))
    assert la.expm_cond(np.zeros((1, 1))) == sl.expm_cond(np.zeros((1, 1))) == 0
    # SciPy scans for infs and NaNs even with check_finite=False (expm_frechet's norm does);
    # so do we, with a ValueError naming expm_cond (not an SVD failure deep inside)
    A = np.array([[np.inf, 0.0], [0.0, 1.0]])
    with pytest.raises(ValueError):
        sl.expm_cond(A, check_finite=False)
    with pytest.raises(ValueError, match="expm_cond"):
        la.expm_cond(A, check_finite=False)


# -- structure queries, constant matrices, aliases ---------------------------------------------

def test_structure_queries_read_traced_values():
    A = np.triu(np.arange(1.0, 17).reshape(4, 4), -1)
    seen = {}

    def f(a):
        seen["bw"] = la.bandwidth(a)
        seen["sym"] = la.issymmetric(a)
        seen["herm"] = la.ishermitian(a + a.mT)
        return lad.sum(a * a)
    lad.grad(f)(A)
    assert seen == {"bw": (1, 3), "sym": False, "herm": True}
    stack = np.stack([A, A.T])
    for got, want in zip(la.bandwidth(stack), sl.bandwidth(stack)):
        np.testing.assert_array_equal(got, want)


def test_structure_query_errors_name_the_function():
    """SciPy's own errors (its exception types), with the function named."""
    for name in ("bandwidth", "issymmetric", "ishermitian"):
        for bad, err in ((np.ones(3), ValueError), (np.ones((2, 2), np.float16), TypeError)):
            with pytest.raises(err):
                getattr(sl, name)(bad)
            with pytest.raises(err, match=f"^{name}: "):
                getattr(la, name)(bad)
    with pytest.raises(ValueError, match="^ishermitian: .*square"):
        la.ishermitian(np.ones((2, 3)))


def test_constant_matrices_and_aliases_are_scipys():
    for name, args in (("hilbert", (4,)), ("invhilbert", (4,)), ("pascal", (4,)),
                       ("invpascal", (4,)), ("hadamard", (4,)), ("helmert", (4,)),
                       ("dft", (4,))):
        np.testing.assert_array_equal(getattr(la, name)(*args), getattr(sl, name)(*args))
    rng = np.random.default_rng(12)
    a, q = rng.standard_normal((3, 3)) - 3 * np.eye(3), rng.standard_normal((3, 3))
    np.testing.assert_allclose(la.solve_lyapunov(a, q), sl.solve_lyapunov(a, q), rtol=1e-12)
    assert la.LinAlgWarning is sl.LinAlgWarning


# Public callables of scipy.linalg and numpy.linalg that linalgad.linalg does not offer,
# each with the reason.  A name added to SciPy or NumPy and missing here fails the test.
NOT_OFFERED = {
    "get_blas_funcs": "BLAS handles, not linear algebra",
    "get_lapack_funcs": "LAPACK handles, not linear algebra",
    "find_best_blas_type": "BLAS type selection",
    "test": "the library's own test runner",
}


def test_every_scipy_and_numpy_linalg_function_is_offered():
    import numpy.linalg
    import scipy.linalg
    missing = set()
    for module in (scipy.linalg, numpy.linalg):
        for name in dir(module):
            obj = getattr(module, name)
            if name.startswith("_") or not callable(obj) or isinstance(obj, type):
                continue
            if not hasattr(la, name) and name not in NOT_OFFERED:
                missing.add(name)
    assert not missing, f"not offered and not listed in NOT_OFFERED: {sorted(missing)}"
    stale = sorted(name for name in NOT_OFFERED if hasattr(la, name))
    assert not stale, f"offered but still listed in NOT_OFFERED: {stale}"
