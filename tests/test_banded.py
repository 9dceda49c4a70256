"""solve_banded, solveh_banded and solve(assume_a='banded'/'tridiagonal') on the band.

The registry (tests/test_rules.py) checks both rules on its domains in both modes and at
second order; here: SciPy's values and conventions, the band-only cotangent (zero in the
corners and off the band, equal to the dense rule's projected), every op(A) of the
primitive, both kernel paths (LAPACK per matrix, the vectorised dense LU of a small
stack), errors, empty input, jit re-deciding the detected band, and the O(n) memory that
is the point of the rule.
"""

import tracemalloc

import numpy as np
import pytest
import scipy.linalg
from numpy.linalg import LinAlgError

import linalgad as lad
from linalgad import backend
from linalgad import linalg as la
from linalgad.backend import band_from_dense, band_matmul, band_product, dense_from_band
from linalgad.rules.banded import _hermitian_band, banded_solve
from linalgad.testing import check_grads

BANDS = [(0, 0), (1, 1), (1, 2), (2, 0), (0, 3), (3, 1)]
DTYPES = [np.float32, np.float64, np.complex64, np.complex128]


def _rel(got, want):
    return np.linalg.norm(got - want) / max(np.linalg.norm(want), 1e-300)


def _band(rng, n, lower, upper, batch=(), dtype=np.float64, junk=True):
    """ab (..., l + u + 1, n) of a diagonally dominant banded matrix, junk in the corners."""
    shape = batch + (lower + upper + 1, n)
    ab = rng.standard_normal(shape)
    if np.dtype(dtype).kind == "c":
        ab = ab + 1j * rng.standard_normal(shape)
    ab[..., upper, :] += 2 * (lower + upper) + 2
    if not junk:
        ab = band_from_dense(np, dense_from_band(np, ab, lower, upper), lower, upper)
    return ab.astype(dtype)


def _hermitian(rng, n, u, lower, batch=(), dtype=np.float64):
    A = rng.standard_normal(batch + (n, n))
    if np.dtype(dtype).kind == "c":
        A = A + 1j * rng.standard_normal(batch + (n, n))
    i, j = np.indices((n, n))
    S = np.where(abs(i - j) <= u, A + np.conj(np.swapaxes(A, -1, -2)), 0)
    S = S + (np.abs(S).sum(axis=-1).max() + 1) * np.eye(n)
    ab = band_from_dense(np, S, u, 0) if lower else band_from_dense(np, S, 0, u)
    return ab.astype(dtype), S.astype(dtype)


@pytest.fixture(params=["lapack", "dense-stack"])
def kernel_path(request, monkeypatch):
    """Both CPU paths for stacks: LAPACK's band routines per matrix, or the dense LU."""
    monkeypatch.setattr(backend, "BAND_STACK_N", 0 if request.param == "lapack" else 10 ** 9)
    return request.param


@pytest.mark.parametrize("lower, upper", BANDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_values_match_scipy(lower, upper, dtype):
    rng = np.random.default_rng(lower * 10 + upper)
    n = 9
    ab = _band(rng, n, lower, upper, dtype=dtype)
    tol = 1e-5 if np.dtype(dtype).itemsize <= 8 and dtype != np.float64 else 1e-12
    for b in (rng.standard_normal(n), rng.standard_normal((n, 3))):
        b = b.astype(dtype)
        x = la.solve_banded((lower, upper), ab, b)
        want = scipy.linalg.solve_banded((lower, upper), ab, b)
        assert x.dtype == want.dtype and x.shape == want.shape
        assert _rel(x, want) < tol


@pytest.mark.parametrize("batch_ab, batch_b", [((3,), (3,)), ((), (4,)), ((2, 1), (1, 3)),
                                               ((3,), None)])
def test_stacks_broadcast_like_solve(batch_ab, batch_b, kernel_path):
    rng = np.random.default_rng(3)
    n, (lo, up) = 24, (2, 1)
    ab = _band(rng, n, lo, up, batch_ab)
    b = rng.standard_normal(n) if batch_b is None else rng.standard_normal(batch_b + (n, 2))
    A = dense_from_band(np, ab, lo, up)
    x = la.solve_banded((lo, up), ab, b)
    np.testing.assert_allclose(x, la.solve(A, b), rtol=1e-11, atol=1e-12)
    check_grads(lambda a, bb: la.solve_banded((lo, up), a, bb), (ab, b), order=2)


@pytest.mark.parametrize("lower, upper", [(1, 1), (1, 2), (0, 2), (3, 0)])
@pytest.mark.parametrize("dtype", [np.float64, np.complex128])
def test_cotangent_is_the_band_of_the_dense_rule(lower, upper, dtype):
    """āb holds the band of −b̄ xᴴ (the dense rule's Ā, solve.md), zero in the corners."""
    rng = np.random.default_rng(11)
    n = 30
    ab = _band(rng, n, lower, upper, (2,), dtype)
    b = rng.standard_normal((2, n, 3)).astype(dtype)
    W = rng.standard_normal((2, n, 3)).astype(dtype)

    def loss(a, bb):
        return lad.sum(lad.real(lad.conj(W) * la.solve_banded((lower, upper), a, bb)))

    g_ab, g_b = lad.grad(loss, argnums=(0, 1))(ab, b)
    A = dense_from_band(np, ab, lower, upper)
    A_bar = lad.grad(lambda A_: lad.sum(lad.real(lad.conj(W) * la.solve(A_, b))))(A)
    want = band_from_dense(np, A_bar, lower, upper)
    assert _rel(g_ab, want) < 1e-12
    r, j = np.indices(ab.shape[-2:])
    corner = (j + r - upper < 0) | (j + r - upper >= n)
    assert not g_ab[..., corner].any()
    assert _rel(g_b, lad.grad(lambda bb: lad.sum(lad.real(lad.conj(W) * la.solve(A, bb))))(b)) \
        < 1e-12


@pytest.mark.parametrize("trans", [0, 1, 2])
@pytest.mark.parametrize("hermitian", [False, True])
@pytest.mark.parametrize("dtype", [np.float64, np.complex128])
def test_every_op_of_the_primitive(trans, hermitian, dtype, kernel_path):
    """op(A) x = b for A, Aᵀ, Aᴴ: values against the dense solve, derivatives to second
    order in both modes (band_matmul's three transposes and their adjoints)."""
    rng = np.random.default_rng(5 + trans)
    n, lo, up = 22, 2, 1
    if hermitian:
        lo = up = 2
        abh, S = _hermitian(rng, n, 2, False, (2,), dtype)
        ab = _hermitian_band(abh, 2, False)
        A = S
    else:
        ab = _band(rng, n, lo, up, (2,), dtype)
        A = dense_from_band(np, ab, lo, up)
    b = rng.standard_normal((2, n, 2)).astype(dtype)
    opA = A if trans == 0 else np.swapaxes(A, -1, -2)
    if trans == 2:
        opA = np.conj(opA)
    x = banded_solve(ab, b, lo, up, hermitian=hermitian, trans=trans)
    np.testing.assert_allclose(x, np.linalg.solve(opA, b), rtol=1e-11, atol=1e-12)
    if hermitian:       # the full band is a function of the stored triangle: go through it
        check_grads(lambda a, bb: banded_solve(_hermitian_band(a, 2, False), bb, 2, 2,
                                               hermitian=True, trans=trans), (abh, b), order=2)
    else:
        check_grads(lambda a, bb: banded_solve(a, bb, lo, up, trans=trans), (ab, b), order=2)


@pytest.mark.parametrize("lower", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
def test_solveh_banded_values_and_triangle(lower, dtype):
    """SciPy's values; the gradient lives on the stored triangle with a real diagonal and
    equals the 'pos' dense rule's triangle cotangent."""
    rng = np.random.default_rng(7)
    n, u = 12, 3
    ab, S = _hermitian(rng, n, u, lower, dtype=dtype)
    b = rng.standard_normal((n, 2)).astype(dtype)
    x = la.solveh_banded(ab, b, lower=lower)
    single = np.dtype(dtype) in (np.dtype(np.float32), np.dtype(np.complex64))
    assert _rel(x, scipy.linalg.solveh_banded(ab, b, lower=lower)) < (1e-5 if single else 1e-12)
    if single:
        return
    W = rng.standard_normal((n, 2)).astype(dtype)
    g = lad.grad(lambda a: lad.sum(lad.real(lad.conj(W) * la.solveh_banded(a, b, lower=lower))))(ab)
    G = lad.grad(lambda A: lad.sum(lad.real(lad.conj(W) * la.solve(A, b, assume_a="pos",
                                                                   lower=lower))))(S)
    want = band_from_dense(np, G, u, 0) if lower else band_from_dense(np, G, 0, u)
    assert _rel(g, want) < 1e-12
    diag = g[0] if lower else g[u]
    assert not np.imag(diag).any()


@pytest.mark.parametrize("n", [400, 6])
def test_solve_assume_banded_goes_through_the_band(n):
    """solve(assume_a='banded' / 'tridiagonal') of a narrow band: the band kernels, the
    gradient only on the band (and equal to solve_banded's); a wide band keeps the dense
    LU (n = 6)."""
    rng = np.random.default_rng(2)
    lo, up = (2, 3) if n > 10 else (1, 2)
    ab = _band(rng, n, lo, up, junk=False)
    A = dense_from_band(np, ab, lo, up)
    b, W = rng.standard_normal((n, 2)), rng.standard_normal((n, 2))
    x = la.solve(A, b, assume_a="banded")
    np.testing.assert_allclose(x, scipy.linalg.solve(A, b, assume_a="banded"), rtol=1e-11)
    g = lad.grad(lambda A_: lad.sum(la.solve(A_, b, assume_a="banded") * W))(A)
    g_ab = lad.grad(lambda a: lad.sum(la.solve_banded((lo, up), a, b) * W))(ab)
    np.testing.assert_allclose(g, dense_from_band(np, g_ab, lo, up), rtol=1e-11, atol=1e-14)
    # finite differences must not move the detected band: perturb within it
    mask = (A != 0).astype(float)
    check_grads(lambda A_, bb: la.solve(A_ * mask, bb, assume_a="banded", transposed=True),
                (A, b), order=2)
    T = dense_from_band(np, _band(rng, n, 1, 1), 1, 1) + np.triu(rng.standard_normal((n, n)), 3)
    x = la.solve(T, b, assume_a="tridiagonal")
    np.testing.assert_allclose(x, np.linalg.solve(np.triu(np.tril(T, 1), -1), b), rtol=1e-11)
    gT = lad.grad(lambda A_: lad.sum(la.solve(A_, b, assume_a="tridiagonal") * W))(T)
    i, j = np.indices((n, n))
    assert not gT[abs(i - j) > 1].any() and gT[abs(i - j) <= 1].all()


def test_jit_decides_the_band_again():
    """The detected band is a value decision: a replay on a matrix with a wider band is
    recorded anew, never solved with the old band."""
    rng = np.random.default_rng(4)
    n = 40
    f = lad.jit(lad.value_and_grad(lambda A, b: lad.sum(la.solve(A, b, assume_a="banded"))))
    b = rng.standard_normal(n)
    for lo, up in ((1, 1), (1, 1), (2, 3), (1, 1)):
        A = dense_from_band(np, _band(rng, n, lo, up, junk=False), lo, up)
        v, g = f(A, b)
        want_v, want_g = lad.value_and_grad(lambda A_: lad.sum(la.solve(A_, b)))(A)
        np.testing.assert_allclose(v, want_v, rtol=1e-12)
        i, j = np.indices((n, n))
        np.testing.assert_allclose(g, np.where((i - j <= lo) & (j - i <= up), want_g, 0),
                                   rtol=1e-10, atol=1e-14)


def test_errors_name_the_function_and_the_matrix():
    rng = np.random.default_rng(8)
    ab = _band(rng, 25, 1, 2, (3,))
    ab[1, 2, :] = 0                       # matrix 1: a zero diagonal and superdiagonals above
    ab[1, :2, :] = 0
    with pytest.raises(LinAlgError, match=r"solve_banded: matrix is singular.*\(1,\)"):
        la.solve_banded((1, 2), ab, np.ones(25))
    abh, _ = _hermitian(rng, 25, 2, False, (2,))
    abh[1, 2, 5] = -1.0
    with pytest.raises(LinAlgError, match=r"solveh_banded: matrix is not positive definite.*"
                                          r"\(1,\)"):
        la.solveh_banded(abh, np.ones(25))
    small, _ = _hermitian(rng, 6, 1, False, (2,))          # a stack of small orders: dense
    small[1, 1, 3] = -1.0
    with pytest.raises(LinAlgError, match=r"solveh_banded: matrix is not positive definite "
                                          r"\(leading minor of order 4 .*\(1,\)"):
        la.solveh_banded(small, np.ones(6))
    with pytest.raises(ValueError, match="solve_banded: ab has 4 rows; the band needs 3"):
        la.solve_banded((1, 1), np.ones((4, 5)), np.ones(5))
    with pytest.raises(TypeError, match="l_and_u"):          # SciPy: TypeError too
        la.solve_banded(1, np.ones((3, 5)), np.ones(5))
    with pytest.raises(ValueError, match="non-negative"):
        la.solve_banded((-1, 3), np.ones((3, 5)), np.ones(5))
    with pytest.raises(ValueError, match="solve_banded.*b must be"):
        la.solve_banded((1, 1), np.ones((3, 5)), np.ones(4))
    with pytest.raises(ValueError, match="infs or NaNs"):
        la.solve_banded((1, 1), np.full((3, 5), np.nan), np.ones(5))


@pytest.mark.parametrize("n, batch", [(30, ()), (30, (3,)), (5, (3,))])
@pytest.mark.parametrize("kind", ["tridiagonal", "band", "hermitian"])
def test_inputs_are_not_overwritten(n, batch, kind, kernel_path):
    """LAPACK factors in place: the kernels work on copies of ab and b."""
    rng = np.random.default_rng(12)
    if kind == "hermitian":
        ab, _ = _hermitian(rng, n, 1 if n > 10 else 0, False, batch)
        fun = lambda a, bb: la.solveh_banded(a, bb)           # noqa: E731
    else:
        lu = (1, 1) if kind == "tridiagonal" else (2, 1)
        ab = _band(rng, n, *lu, batch)
        fun = lambda a, bb: la.solve_banded(lu, a, bb)        # noqa: E731
    b = rng.standard_normal(batch + (n, 2))
    ab0, b0 = ab.copy(), b.copy()
    lad.value_and_grad(lambda a, bb: lad.sum(fun(a, bb)), argnums=(0, 1))(ab, b)
    np.testing.assert_array_equal(ab, ab0)
    np.testing.assert_array_equal(b, b0)


@pytest.mark.parametrize("shape_ab, shape_b", [((3, 0), (0,)), ((3, 0), (0, 2)),
                                               ((0, 3, 4), (0, 4, 1)), ((3, 4), (4, 0))])
def test_empty(shape_ab, shape_b):
    ab, b = np.ones(shape_ab), np.ones(shape_b)
    x = la.solve_banded((1, 1), ab, b)
    n = shape_ab[-1]
    eye = np.broadcast_to(np.eye(n), shape_ab[:-2] + (n, n))
    assert x.shape == np.linalg.solve(eye, b).shape
    g = lad.grad(lambda a: lad.sum(la.solve_banded((1, 1), a, b)))(ab)
    assert g.shape == ab.shape and not g.any()


def test_memory_is_linear_in_n():
    """Value and gradient of a tridiagonal system of order 200,000 (the dense matrix would
    take 320 GB; its outer-product cotangent as much): a few arrays of length n."""
    rng = np.random.default_rng(9)
    n = 200_000
    ab = _band(rng, n, 1, 1)
    b = rng.standard_normal(n)
    tracemalloc.start()
    v, (g_ab, g_b) = lad.value_and_grad(lambda a, bb: lad.sum(la.solve_banded((1, 1), a, bb)),
                                        argnums=(0, 1))(ab, b)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 40 * n * 8, peak
    x = scipy.linalg.solve_banded((1, 1), ab, b)
    assert abs(v - x.sum()) < 1e-8 * np.abs(x).sum()
    # b̄ = A⁻ᵀ 1 and āb = band(−b̄ xᵀ), checked by the band's own products
    np.testing.assert_allclose(band_matmul(np, ab, g_b[:, None], 1, 1, 1)[:, 0], 1, atol=1e-10)
    np.testing.assert_allclose(g_ab, band_product(np, -g_b[:, None], x[None, :], 1, 1),
                               rtol=1e-12)


def test_byte_swapped_input_takes_the_band_path(monkeypatch):
    """A big-endian array (FITS, HDF5) compares equal to its native dtype: it went to the
    dense path (256 MB and 1.4 s at n = 4000; the assembled matrix at n = 2·10⁵ would be
    320 GB), and solve(assume_a='banded') of a 2-D one raised in SciPy's bandwidth."""
    from linalgad.backend import CPUKernels
    kinds = []
    original = CPUKernels.band_factor
    monkeypatch.setattr(CPUKernels, "band_factor",
                        lambda self, *a, **k: kinds.append(original(self, *a, **k).kind)
                        or original(self, *a, **k))
    rng = np.random.default_rng(14)
    ab = _band(rng, 4000, 1, 1)
    b = rng.standard_normal(4000)
    x = la.solve_banded((1, 1), ab.astype(">f8"), b.astype(">f8"))
    np.testing.assert_allclose(x, scipy.linalg.solve_banded((1, 1), ab, b), rtol=1e-12)
    assert kinds == ["gt"]
    A = dense_from_band(np, _band(rng, 13, 1, 1, junk=False), 1, 1)
    for M in (A.astype(">f8"), A[None].astype(">f8")):
        np.testing.assert_allclose(la.solve(M, np.ones(13), assume_a="banded"),
                                   np.linalg.solve(A, np.ones(13)).reshape((1,) * (M.ndim - 2)
                                                                          + (13,)), rtol=1e-12)
    with pytest.raises(TypeError, match="l_and_u"):
        la.solve_banded((1.5, 0.5), ab, b)


def test_solve_assume_banded_of_an_empty_stack():
    x = la.solve(np.zeros((3, 0, 0)), np.zeros((3, 0, 1)), assume_a="banded")
    assert x.shape == (3, 0, 1)
    g = lad.grad(lambda a: lad.sum(la.solve(a, np.zeros((3, 0, 1)), assume_a="banded")))(
        np.zeros((3, 0, 0)))
    assert g.shape == (3, 0, 0)
