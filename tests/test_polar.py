"""polar: hard inputs beyond the registry (repeated singular values, rank deficiency, errors)."""

import warnings

import numpy as np
import pytest
import scipy.linalg

import linalgad as lad
from linalgad import GaugeWarning
from linalgad import linalg as la
from linalgad.rules.polar import polar
from linalgad.testing import check_grads


def _orth(rng, n, complex_=False):
    g = rng.standard_normal((n, n))
    if complex_:
        g = g + 1j * rng.standard_normal((n, n))
    return np.linalg.qr(g)[0]


@pytest.mark.parametrize("dtype", [np.float64, np.complex128])
@pytest.mark.parametrize("side", ["right", "left"])
def test_repeated_singular_values_exact(dtype, side):
    rng = np.random.default_rng(3)
    c = np.dtype(dtype).kind == "c"
    A = (_orth(rng, 3, c) @ np.diag([2.0, 2.0, 1.0]) @ _orth(rng, 3, c).conj().T).astype(dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_grads(lambda A: polar(A, side=side), (A,), order=2)


@pytest.mark.parametrize("shape", [(5, 3), (3, 5), (2, 4, 3), (2, 3, 4)])
@pytest.mark.parametrize("side", ["right", "left"])
@pytest.mark.parametrize("dtype", [np.float32, np.complex128])
def test_shapes_sides_batches(shape, side, dtype):
    rng = np.random.default_rng(0)
    rng.standard_normal(11)
    A = rng.standard_normal(shape)
    if np.dtype(dtype).kind == "c":
        A = A + 1j * rng.standard_normal(shape)
    A = A.astype(dtype)
    U, P = polar(A, side=side)
    flat = A.reshape((-1,) + shape[-2:])
    for i, a in enumerate(flat):
        u0, p0 = scipy.linalg.polar(a, side=side)
        tol = 1e-4 if dtype == np.float32 else 1e-10
        np.testing.assert_allclose(U.reshape((-1,) + U.shape[-2:])[i], u0, atol=tol)
        np.testing.assert_allclose(P.reshape((-1,) + P.shape[-2:])[i], p0, atol=tol)
    assert U.dtype == P.dtype == A.dtype
    check_grads(lambda A: polar(A, side=side), (A,), order=1,
                rtol=2e-2 if dtype == np.float32 else 1e-6)


def test_rank_deficient_u_warns_p_finite():
    rng = np.random.default_rng(1)
    A = _orth(rng, 3) @ np.diag([2.0, 1.0, 0.0]) @ _orth(rng, 3).T
    with pytest.warns(GaugeWarning):
        g = lad.grad(lambda A: lad.sum(polar(A)[0] * np.arange(9.0).reshape(3, 3)))(A)
    assert np.all(np.isfinite(g))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gp = lad.grad(lambda A: lad.trace(polar(A)[1]))(A)    # tr P = nuclear norm
    assert np.all(np.isfinite(gp))
    # a subgradient of the nuclear norm: spectral norm ≤ 1 and <G, A> = ‖A‖_*
    assert np.linalg.norm(gp, 2) <= 1 + 1e-12
    assert np.isclose(np.sum(gp * A), 3.0)


def test_zero_matrix_is_finite():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GaugeWarning)
        g = lad.grad(lambda A: lad.sum(polar(A)[1]) + lad.sum(polar(A)[0]))(np.zeros((3, 3)))
    assert np.all(np.isfinite(g))


def test_hvp_through_polar():
    rng = np.random.default_rng(2)
    A = rng.standard_normal((4, 3))
    f = lambda A: lad.sum(polar(A)[0] ** 3) + lad.sum(polar(A)[1] ** 2)   # noqa: E731
    V = rng.standard_normal(A.shape)
    hv = lad.hvp(f, (A,), (V,))
    hv = hv[0] if isinstance(hv, tuple) else hv
    h = 1e-5
    g = lad.grad(f)
    fd = (g(A + h * V) - g(A - h * V)) / (2 * h)
    np.testing.assert_allclose(hv, fd, rtol=1e-5, atol=1e-7)


def test_errors():
    with pytest.raises(ValueError, match="polar"):
        polar(np.eye(3), side="up")
    with pytest.raises(ValueError, match="polar"):
        polar(np.ones(3))
    with pytest.raises(ValueError):
        polar(np.array([[1.0, np.nan], [0.0, 1.0]]))


def test_integer_input_promoted():
    U, P = polar(np.array([[2, 0], [0, 3]]))
    assert U.dtype == np.float64
    np.testing.assert_allclose(P, np.diag([2.0, 3.0]))


@pytest.mark.parametrize("shape", [(5, 5), (7, 4), (3, 6, 6)])
def test_real_p_is_exactly_symmetric(shape):
    """A real input's P is formed as Y Yᵀ (Y = V S^½, NumPy's syrk): exactly symmetric,
    and equal to SciPy's V S Vᵀ to rounding."""
    a = np.random.default_rng(11).standard_normal(shape)
    u, p = polar(a)
    assert np.array_equal(p, np.swapaxes(p, -1, -2))
    for i, x in enumerate(a.reshape((-1,) + shape[-2:])):
        u0, p0 = scipy.linalg.polar(x)
        np.testing.assert_allclose(p.reshape((-1,) + p.shape[-2:])[i], p0, atol=1e-13)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.complex64, np.complex128])
def test_orthogonal_procrustes_matches_scipy_on_stacks(dtype):
    """SciPy's R and scale for each pair of a stack; scale real; R recovers a rotation."""
    rng = np.random.default_rng(11)
    A = rng.standard_normal((2, 3, 7, 4))
    if np.dtype(dtype).kind == "c":
        A = A + 1j * rng.standard_normal(A.shape)
    Q = np.linalg.qr(rng.standard_normal((4, 4)))[0]
    A, B = A.astype(dtype), (A @ Q).astype(dtype)
    R, scale = la.orthogonal_procrustes(A, B)
    assert R.shape == (2, 3, 4, 4) and scale.shape == (2, 3) and R.dtype == dtype
    assert scale.dtype == np.finfo(dtype).dtype
    tol = 1e-4 if np.dtype(dtype) in (np.float32, np.complex64) else 1e-12
    np.testing.assert_allclose(R, np.broadcast_to(Q, R.shape), atol=tol)
    for i in np.ndindex(2, 3):
        R0, s0 = scipy.linalg.orthogonal_procrustes(A[i], B[i])
        np.testing.assert_allclose(R[i], R0, atol=tol)
        np.testing.assert_allclose(scale[i], s0, rtol=tol)


def test_orthogonal_procrustes_errors_and_rank_deficiency():
    with pytest.raises(ValueError, match="orthogonal_procrustes: the shapes of A and B differ"):
        la.orthogonal_procrustes(np.ones((3, 2)), np.ones((2, 3)))
    with pytest.raises(ValueError, match="orthogonal_procrustes: A and B must be 2-D arrays"):
        la.orthogonal_procrustes(np.ones(3), np.ones(3))
    with pytest.raises(ValueError, match="do not broadcast"):
        la.orthogonal_procrustes(np.ones((2, 3, 2)), np.ones((4, 3, 2)))
    # one A against a stack of B, as SciPy 1.17 broadcasts; the gradient of A sums the stack
    rng = np.random.default_rng(2)
    A, B = rng.standard_normal((5, 3)), rng.standard_normal((2, 5, 3))
    R, scale = la.orthogonal_procrustes(A, B)
    R0, s0 = scipy.linalg.orthogonal_procrustes(A, B)
    np.testing.assert_allclose(R, R0, atol=1e-12)
    np.testing.assert_allclose(scale, s0, rtol=1e-12)
    g = lad.grad(lambda a: lad.sum(la.orthogonal_procrustes(a, B)[1]))(A)
    g0 = sum(lad.grad(lambda a: la.orthogonal_procrustes(a, B[i])[1])(A) for i in range(2))
    np.testing.assert_allclose(g, g0, rtol=1e-12)
    with pytest.raises(ValueError, match="A contains infs or NaNs"):
        la.orthogonal_procrustes(np.array([[np.nan]]), np.ones((1, 1)))
    # Aᴴ B of rank 1 < 2: R is not unique, a loss through R warns; the scale's gradient
    # (the subgradient R) is still given
    A = np.array([[1.0, 0.0], [0.0, 0.0]])
    B = np.array([[2.0, 0.0], [0.0, 0.0]])
    with pytest.warns(lad.GaugeWarning):
        lad.grad(lambda a: lad.sum(la.orthogonal_procrustes(a, B)[0]))(A)
    g = lad.grad(lambda a: la.orthogonal_procrustes(a, B)[1])(A)
    assert np.all(np.isfinite(g))
