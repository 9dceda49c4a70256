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


def test_second_order_at_a_tie_warns():
    rng = np.random.default_rng(17)
    G, T = rng.standard_normal((2, 4, 4))

    def loss(a):
        return lad.sum(G * la.generalized_funm(a, np.sin))
    with pytest.warns(la.GaugeWarning, match="second derivatives"):
        lad.hvp(loss, (np.eye(4),), (T,))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        lad.hvp(loss, (rng.standard_normal((4, 4)),), (T,))
        lad.grad(loss)(np.eye(4))
