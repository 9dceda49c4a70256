"""generalized_funm: U f(Σ) Vᴴ, exact at repeated singular values (generalized_funm.md).

The registry tests (test_rules.py) cover square, tall and wide inputs in both modes,
every dtype, batches and second order at distinct singular values.  Here: ties, A = I
and rank deficiency, against two exact references (f(s) = s is A itself, f = 1 the polar
factor, whose rule has no gap) and finite differences; the arguments and errors.
"""

import warnings

import numpy as np
import pytest

import linalgad as lad
from linalgad import linalg as la


def _with_values(rng, m, n, s, dtype=np.float64):
    cplx = np.dtype(dtype).kind == "c"

    def orth(p):
        q, _ = np.linalg.qr(rng.standard_normal((p, p)) + (
            1j * rng.standard_normal((p, p)) if cplx else 0))
        return q
    k = len(s)
    return ((orth(m)[:, :k] * np.asarray(s)) @ np.conj(orth(n)[:, :k]).T).astype(dtype)


def _fd_gradient(loss, A, h=1e-6):
    """∂/∂Re + i ∂/∂Im of a real loss, by central differences."""
    g = np.zeros_like(A)
    for idx in np.ndindex(A.shape):
        for unit in ((1, 1j) if np.iscomplexobj(A) else (1,)):
            E = np.zeros_like(A)
            E[idx] = unit * h
            g[idx] += unit * (loss(A + E) - loss(A - E)) / (2 * h)
    return g


def _np_gmf(a, f):
    U, s, Vh = np.linalg.svd(a, full_matrices=False)
    return (U * f(s)[..., None, :]) @ Vh


HARD = {
    "identity": (3, 3, [1.0, 1.0, 1.0]),
    "pair": (4, 4, [2.0, 2.0, 1.0, 0.5]),
    "tall-pair": (5, 3, [1.5, 0.7, 0.7]),
    "wide-triple": (3, 5, [0.9, 0.9, 0.9]),
    "near-tie": (4, 4, [2.0, 1.0 + 1e-10, 1.0, 0.5]),
}


@pytest.mark.parametrize("case", HARD)
@pytest.mark.parametrize("dtype", [np.float64, np.complex128])
def test_identity_and_polar_at_ties(case, dtype):
    """f(s) = s gives F = A, gradient G; f = 1 gives the polar factor U Vᴴ, whose own rule
    divides by sums of singular values only: both exact references at ties."""
    rng = np.random.default_rng(abs(hash((case, str(dtype)))) % 2**32)
    m, n, s = HARD[case]
    A = np.eye(3, dtype=dtype) if case == "identity" else _with_values(rng, m, n, s, dtype)
    G = rng.standard_normal(A.shape) + (1j * rng.standard_normal(A.shape)
                                        if np.dtype(dtype).kind == "c" else 0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        F, g = lad.value_and_grad(
            lambda a: lad.real(lad.sum(G * la.generalized_funm(a, lambda t: t))))(A)
        np.testing.assert_allclose(g, np.conj(G), rtol=1e-11, atol=1e-11)
        one = lad.grad(lambda a: lad.real(lad.sum(G * la.generalized_funm(
            a, lambda t: 0 * t + 1.0))))(A)
        polar = lad.grad(lambda a: lad.real(lad.sum(G * la.polar(a)[0])))(A)
    np.testing.assert_allclose(one, polar, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(la.generalized_funm(A, lambda t: 0 * t + 1.0), la.polar(A)[0],
                               atol=1e-12)


@pytest.mark.parametrize("case", ["identity", "pair", "tall-pair", "wide-triple"])
def test_tanh_at_ties_against_differences(case):
    rng = np.random.default_rng(11)
    m, n, s = HARD[case]
    A = np.eye(3) if case == "identity" else _with_values(rng, m, n, s)
    G = rng.standard_normal(A.shape)
    g = lad.grad(lambda a: lad.sum(G * la.generalized_funm(a, np.tanh)))(A)
    fd = _fd_gradient(lambda a: np.sum(G * _np_gmf(a, np.tanh)), A)
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-8)


def test_identity_where_the_svd_route_cannot_be_right():
    """At A = I with a zero-diagonal symmetric G, ⟨G, U sin(Σ) Vᵀ⟩ through svd's
    cotangents misses the in-cluster terms (svd.md §6); generalized_funm has them:
    sin'(1)·G on the symmetric part (the rotation terms cancel for symmetric G)."""
    rng = np.random.default_rng(12)
    G = rng.standard_normal((4, 4))
    G = G + G.T
    np.fill_diagonal(G, 0)
    want = _fd_gradient(lambda a: np.sum(G * _np_gmf(a, np.sin)), np.eye(4))
    np.testing.assert_allclose(want, np.cos(1.0) * G, rtol=1e-6, atol=1e-8)
    g = lad.grad(lambda a: lad.sum(G * la.generalized_funm(a, np.sin)))(np.eye(4))
    np.testing.assert_allclose(g, np.cos(1.0) * G, rtol=1e-12, atol=1e-13)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        route = lad.grad(lambda a: lad.sum(G * (lambda U, s, Vh: (U * lad.sin(s)) @ Vh)(
            *la.svd(a, full_matrices=False))))(np.eye(4))
    assert np.abs(route - want).max() > 0.1 * np.abs(want).max()


def test_rank_deficient_with_f_of_zero_zero():
    """Rank 2 of a 5×4 matrix, f = tanh (f(0) = 0): the value does not depend on the null
    vectors, and the gradient matches differences (which keep the rank's neighbourhood:
    tanh(s)/s → 1 as s → 0)."""
    rng = np.random.default_rng(13)
    A = _with_values(rng, 5, 4, [1.3, 0.6])
    G = rng.standard_normal((5, 4))
    g = lad.grad(lambda a: lad.sum(G * la.generalized_funm(a, np.tanh)))(A)
    fd = _fd_gradient(lambda a: np.sum(G * _np_gmf(a, np.tanh)), A)
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-7)


def test_forward_mode_and_stack():
    rng = np.random.default_rng(14)
    A = np.stack([np.eye(4)[:, :3] * [1.0, 1.0, 2.0], rng.standard_normal((4, 3))])
    T = rng.standard_normal(A.shape)
    F, Fdot = lad.jvp(lambda a: la.generalized_funm(a, np.tanh), (A,), (T,))
    want = (_np_gmf(A + 1e-6 * T, np.tanh) - _np_gmf(A - 1e-6 * T, np.tanh)) / 2e-6
    np.testing.assert_allclose(F, _np_gmf(A, np.tanh), atol=1e-13)
    np.testing.assert_allclose(Fdot, want, rtol=1e-6, atol=1e-8)


def test_jit_and_float32():
    rng = np.random.default_rng(15)
    G = rng.standard_normal((4, 3))
    vg = lad.value_and_grad(lambda a: lad.sum(G * la.generalized_funm(a, np.sin)))
    jv = lad.jit(vg)
    for A in (rng.standard_normal((4, 3)), np.eye(4)[:, :3].copy(),
              _with_values(rng, 4, 3, [1.0, 1.0, 0.3])):
        v, g = jv(A)
        np.testing.assert_allclose(g, vg(A)[1], rtol=1e-12, atol=1e-14)
    A32 = rng.standard_normal((4, 3)).astype(np.float32)
    g32 = lad.grad(lambda a: lad.sum(G * la.generalized_funm(a, np.sin)))(A32)
    assert g32.dtype == np.float32
    np.testing.assert_allclose(g32, vg(A32.astype(np.float64))[1], rtol=2e-4, atol=2e-5)


def test_arguments_and_errors():
    A = np.diag([3.0, 2.0])
    np.testing.assert_allclose(la.generalized_funm(A, np.sqrt), np.diag(np.sqrt([3.0, 2.0])))
    g = lad.grad(lambda a: lad.sum(la.generalized_funm(a, np.sqrt, lambda s: 0.5 / np.sqrt(s))
                                   * np.eye(2)))(A)
    np.testing.assert_allclose(g, np.diag(0.5 / np.sqrt([3.0, 2.0])), rtol=1e-13)
    with pytest.raises(TypeError, match="generalized_funm: func must be callable"):
        la.generalized_funm(A, 1.0)
    with pytest.raises(TypeError, match="generalized_funm: func must return real values"):
        la.generalized_funm(A, lambda s: 1j * s)
    with pytest.raises(ValueError, match="generalized_funm: func must act elementwise"):
        la.generalized_funm(A, lambda s: s[..., :1])
    with pytest.raises(np.linalg.LinAlgError, match="generalized_funm"):
        la.generalized_funm(np.ones(3), np.tanh)


def test_svds_gauge_warning_points_to_generalized_funm():
    rng = np.random.default_rng(16)
    A = _with_values(rng, 4, 4, HARD["pair"][2])
    G = rng.standard_normal((4, 4))
    with pytest.warns(la.GaugeWarning, match=r"generalized_funm\(a, f\)"):
        lad.grad(lambda a: lad.sum(G * (lambda U, s, Vh: (U * lad.sin(s)) @ Vh)(
            *la.svd(a, full_matrices=False))))(A)


HESSIAN_CASES = dict(HARD, **{
    "distinct": (4, 4, [2.5, 1.7, 0.9, 0.4]),
    "rank-deficient": (4, 4, [2.0, 1.0, 0.0, 0.0]),
    "tall-identity": (7, 4, [1.0, 1.0, 1.0, 1.0]),        # three zeros in the dilation
})


@pytest.mark.parametrize("case", HESSIAN_CASES)
@pytest.mark.parametrize("dtype", [np.float64, np.complex128])
def test_hessian_exact_for_a_polynomial(case, dtype):
    """f(s) = s³ makes U f(Σ) Vᴴ = A Aᴴ A, whose second derivative is a polynomial: the
    hvp (forward over reverse) and reverse over reverse equal it to rounding at ties,
    A = I, rank deficiency, tall and wide, with no warning (the second Daleckii–Krein
    map of the Hermitian dilation, generalized_funm.md section 4)."""
    m, n, values = HESSIAN_CASES[case]
    rng = np.random.default_rng(sum(map(ord, case)))
    A = _with_values(rng, m, n, values, dtype)
    cplx = 1j if np.dtype(dtype).kind == "c" else 0
    G, T = (rng.standard_normal((m, n)) + cplx * rng.standard_normal((m, n))
            for _ in range(2))
    H = lambda X: np.conj(X).T                                    # noqa: E731

    def loss(a):
        return lad.real(lad.sum(np.conj(G) * la.generalized_funm(a, lambda x: x ** 3)))
    want = (G @ (H(T) @ A + H(A) @ T) + T @ H(G) @ A + A @ H(G) @ T + T @ H(A) @ G
            + A @ H(T) @ G)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        (h,) = lad.hvp(loss, (A,), (T,))
        rr = lad.grad(lambda a: lad.real(lad.sum(np.conj(T) * lad.grad(loss)(a))))(A)
    np.testing.assert_allclose(h, want, rtol=1e-12, atol=1e-12 * np.abs(want).max())
    np.testing.assert_allclose(rr, want, rtol=1e-12, atol=1e-12 * np.abs(want).max())


@pytest.mark.parametrize("case", ["pair", "tall-pair", "wide-triple", "identity"])
def test_hessian_of_the_polar_factor_and_tanh_at_ties(case):
    """f = 1 (the polar factor, f(0) ≠ 0: its odd extension jumps at 0, which only the
    dilation's zero block sees) and f = tanh, against differences of the exact gradient."""
    m, n, values = HARD[case]
    rng = np.random.default_rng(sum(map(ord, case)) + 1)
    A = _with_values(rng, m, n, values)
    G, T = rng.standard_normal((2, m, n))
    for f in (lambda x: x * 0.0 + 1.0, np.tanh):
        def loss(a):
            return lad.sum(G * la.generalized_funm(a, f))
        grad = lad.grad(loss)
        # h = 1e-6: the gradients at A ± hT, whose split values are 1e-6 apart, are exact
        # to about 1e-15 (pairs inside the slope threshold); at h = 1e-5 their rounding,
        # ε/gap, over 2h already costs 5e-7
        h = 1e-6
        fd = (grad(A + h * T) - grad(A - h * T)) / (2 * h)
        (hv,) = lad.hvp(loss, (A,), (T,))
        np.testing.assert_allclose(hv, fd, rtol=1e-6, atol=1e-7 * np.abs(fd).max())


def test_hessian_of_a_stack_in_float32():
    rng = np.random.default_rng(18)
    A = np.stack([np.eye(3), _with_values(rng, 3, 3, [2.0, 1.0, 1.0]),
                  _with_values(rng, 3, 3, [1.9, 1.2, 0.3])])
    G, T = rng.standard_normal((2, 3, 3, 3))

    def loss(a):
        return lad.sum(G.astype(a.dtype) * la.generalized_funm(a, np.sin))
    (h64,) = lad.hvp(loss, (A,), (T,))
    (h32,) = lad.hvp(loss, (A.astype(np.float32),), (T.astype(np.float32),))
    assert h32.dtype == np.float32
    np.testing.assert_allclose(h32, h64, rtol=2e-3, atol=2e-3)
    for a, t, g, hv in zip(A, T, G, h64):
        (one,) = lad.hvp(lambda x: lad.sum(g * la.generalized_funm(x, np.sin)), (a,), (t,))
        np.testing.assert_allclose(hv, one, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype, scale", [(np.float64, 1e-200), (np.float64, 1e154),
                                          (np.float64, 1e160), (np.complex128, 1e-200),
                                          (np.complex128, 1e160), (np.float32, 1e-23),
                                          (np.float32, 1e20)])
def test_extreme_scales_neither_overflow_nor_underflow(dtype, scale):
    """The kernels' (sⱼ − sᵢ)(sⱼ + sᵢ) and sᵢ² overflowed (silent zeros) or underflowed
    (NaN) although every result is representable: the gradient of generalized_funm(A, id)
    is W at any scale, and that of the polar factor U Vᴴ through svd scales as 1/c."""
    rng = np.random.default_rng(0)
    A0 = rng.standard_normal((3, 4)).astype(dtype)
    W = rng.standard_normal((3, 4)).astype(dtype)
    if np.dtype(dtype).kind == "c":
        A0 = A0 + 1j * rng.standard_normal((3, 4))
        W = W + 1j * rng.standard_normal((3, 4))
    A = (scale * A0).astype(dtype)
    rtol = 1e-4 if dtype == np.float32 else 1e-12
    ident = lambda a: lad.real(lad.sum(np.conj(W) * la.generalized_funm(a, lambda s: s)))
    np.testing.assert_allclose(lad.grad(ident)(A), W, rtol=rtol, atol=rtol)
    polar = lambda a: lad.real(lad.sum(np.conj(W) * (lambda U, s, Vh: U @ Vh)(
        *la.svd(a, full_matrices=False))))
    want = lad.grad(polar)(A0)
    np.testing.assert_allclose(scale * lad.grad(polar)(A), want, rtol=rtol * 10,
                               atol=rtol * 10 * np.abs(want).max())
