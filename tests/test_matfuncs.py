"""expm, expm_frechet, sqrtm, logm on the inputs the registry domains avoid.

The registry tests (test_rules.py) check every rule on modest, well-conditioned
inputs in both modes at second order.  Here: large norms (scaling and squaring
active), strongly non-normal and complex matrices, SciPy's return forms, round
trips, closed forms (normal matrices), batching, float32 and the error cases.
"""

import numpy as np
import pytest
import scipy.linalg as sl
from numpy.linalg import LinAlgError

import linalgad as lad
from linalgad import linalg as la
from linalgad.rules import matfuncs as mf
from linalgad.testing import check_grads
from linalgad.testing import matrices as M

DTYPES = (np.float64, np.complex128)


def mH(x):
    return np.conj(np.swapaxes(x, -1, -2))


def gauss(rng, shape, dtype):
    if np.dtype(dtype).kind == "c":
        return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)) / np.sqrt(2)
    return rng.standard_normal(shape)


def nonnormal(rng, n, dtype, lo, hi, off, batch=()):
    return mf._nonnormal(rng, n, batch, dtype, lo, hi, off, imag=0.5)


# -- expm ---------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
def test_expm_large_norm_scaling_and_squaring(dtype):
    rng = np.random.default_rng(1)
    A = gauss(rng, (5, 5), dtype)
    A *= 6.0 / np.linalg.norm(A, 1)          # ‖A‖₁ = 6: SciPy squares several times
    np.testing.assert_allclose(la.expm(A), sl.expm(A), rtol=1e-12)
    check_grads(la.expm, (A,), order=2, rtol=1e-5)


@pytest.mark.parametrize("dtype", DTYPES)
def test_expm_strongly_nonnormal(dtype):
    rng = np.random.default_rng(2)
    A = nonnormal(rng, 6, dtype, -1.0, 0.5, 6.0)
    check_grads(la.expm, (A,), order=2, rtol=1e-5)


@pytest.mark.parametrize("dtype", DTYPES)
def test_expm_gradient_normal_closed_form(dtype):
    # A = Q diag(λ) Qᴴ normal: Ā = Q (Qᴴ Ḡ Q ∘ Φ) Qᴴ with Φᵢⱼ = (e^λᵢ − e^λⱼ)/(λᵢ − λⱼ) at conj(λ)
    rng = np.random.default_rng(3)
    n = 4
    Q = M.random_orthogonal(rng, n, (), dtype)
    lam = rng.uniform(-1, 1, n) + (1j * rng.uniform(-1, 1, n) if np.dtype(dtype).kind == "c" else 0)
    A = (Q * lam) @ mH(Q)
    G = gauss(rng, (n, n), dtype)
    g = lad.grad(lambda a: lad.real(lad.sum(np.conj(G) * la.expm(a))))(A)
    mu = np.conj(lam)
    d = mu[:, None] - mu[None, :]
    same = np.abs(d) < 1e-14
    phi = np.where(same, np.exp(mu)[:, None] + 0 * d,
                   (np.exp(mu)[:, None] - np.exp(mu)[None, :]) / np.where(same, 1, d))
    want = Q @ ((mH(Q) @ G @ Q) * phi) @ mH(Q)
    if np.dtype(dtype).kind == "f":
        want = want.real
    np.testing.assert_allclose(g, want, rtol=1e-10, atol=1e-12)


def test_expm_batched_and_float32():
    rng = np.random.default_rng(4)
    A = gauss(rng, (2, 3, 4, 4), np.float64) * 0.4
    np.testing.assert_allclose(la.expm(A), sl.expm(A), rtol=1e-12)
    check_grads(la.expm, (A,), order=1)
    A32 = A.astype(np.float32)
    out = la.expm(A32)
    assert out.dtype == np.float32
    assert lad.grad(lambda a: lad.sum(la.expm(a)))(A32).dtype == np.float32
    check_grads(la.expm, (A32,), order=1, rtol=2e-2)


@pytest.mark.parametrize("dtype", DTYPES)
def test_expm_stack_with_mixed_norms_per_matrix_scaling(dtype):
    """One Padé degree for the stack, a scaling per matrix: every matrix as SciPy's, and
    the gradient of each matrix as the adjoint Fréchet derivative SciPy computes."""
    rng = np.random.default_rng(5)
    A = gauss(rng, (6, 5, 5), dtype) * np.array([1e-3, 0.1, 1.0, 4.0, 20.0, 60.0])[:, None, None]
    F = la.expm(A)
    for a, f in zip(A, F):
        np.testing.assert_allclose(f, sl.expm(a), rtol=1e-11 * max(1.0, np.abs(a).sum(0).max()))
    W = gauss(rng, A.shape, dtype)
    g = lad.grad(lambda a: lad.real(lad.sum(np.conj(W) * la.expm(a))))(A)
    for a, w, gi in zip(A, W, g):
        want = sl.expm_frechet(mH(a), w, compute_expm=False)
        want = want.real if np.dtype(dtype).kind == "f" else want
        np.testing.assert_allclose(gi, want, rtol=1e-9, atol=1e-12 * np.abs(want).max())
    _, factors = mf.kernels_for(A).expm_staged(A)
    assert factors.m == 13 and list(factors.s[:2]) == [0, 0] and factors.s[-1] >= 4


@pytest.mark.parametrize("scale, degree", [(1e-3, 3), (0.05, 5), (0.8, 7), (2.0, 9), (6.0, 13)])
def test_expm_small_norm_degrees_and_their_frechet(scale, degree):
    """Each Padé degree below 13 (chosen by the norms) has its own differentiated steps."""
    rng = np.random.default_rng(6)
    A = gauss(rng, (4, 4), np.float64)
    A *= scale / np.linalg.norm(A, 1)
    E = gauss(rng, (4, 4), np.float64)
    F, factors = mf.kernels_for(A).expm_staged(A)
    assert factors.m == degree
    L = mf.kernels_for(A).expm_frechet_staged(factors, A, E)
    np.testing.assert_allclose(F, sl.expm(A), rtol=1e-13, atol=1e-16)
    np.testing.assert_allclose(L, sl.expm_frechet(A, E, compute_expm=False), rtol=1e-12)
    check_grads(la.expm, (A,), order=2)


def test_expm_huge_norm_prescaled_and_single_precision_thresholds():
    rng = np.random.default_rng(7)
    Q = M.random_orthogonal(rng, 3, (), np.float64)
    A = (Q * np.array([-1e6, -2e6, -5.0])) @ Q.T      # ‖A‖₁ > θ₁₃·2¹⁶: pre-scaled powers
    want = np.exp(-5.0) * np.outer(Q[:, 2], Q[:, 2])
    np.testing.assert_allclose(la.expm(A), want, rtol=1e-8, atol=1e-12)
    A32 = (gauss(rng, (4, 4), np.float64) * 3).astype(np.float32)
    _, factors = mf.kernels_for(A32).expm_staged(A32)
    assert factors.m <= 7                         # single precision: degrees 3, 5, 7
    np.testing.assert_allclose(la.expm(A32), sl.expm(A32.astype(np.float64)), rtol=2e-5)


def test_expm_errors():
    with pytest.raises(LinAlgError, match="expm"):
        la.expm(np.ones((2, 3)))
    with pytest.raises(ValueError, match="expm"):
        la.expm(np.array([[1.0, np.nan], [0, 1]]))


# -- expm_frechet -------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
def test_expm_frechet_matches_scipy_both_forms(dtype):
    rng = np.random.default_rng(5)
    A, E = gauss(rng, (5, 5), dtype), gauss(rng, (5, 5), dtype)
    F, L = la.expm_frechet(A, E)
    F0, L0 = sl.expm_frechet(A, E)
    np.testing.assert_allclose(F, F0, rtol=1e-12)
    np.testing.assert_allclose(L, L0, rtol=1e-12)
    np.testing.assert_allclose(la.expm_frechet(A, E, compute_expm=False), L0, rtol=1e-12)
    np.testing.assert_allclose(la.expm_frechet(A, E, method="blockEnlarge")[1], L0, rtol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
def test_expm_frechet_gradients_in_A_and_E(dtype):
    rng = np.random.default_rng(6)
    A, E = gauss(rng, (4, 4), dtype) * 0.7, gauss(rng, (4, 4), dtype)
    check_grads(lambda a, e: la.expm_frechet(a, e, compute_expm=False), (A, E), order=2)
    check_grads(la.expm_frechet, (A, E), order=2)


def test_expm_frechet_stack_of_small_matrices_block_kernel():
    # stacks of small matrices take the batched 2n×2n block expm; same values
    rng = np.random.default_rng(7)
    A, E = gauss(rng, (50, 3, 3), np.float64), gauss(rng, (50, 3, 3), np.float64)
    L = la.expm_frechet(A, E, compute_expm=False)
    L0 = np.stack([sl.expm_frechet(a, e, compute_expm=False) for a, e in zip(A, E)])
    np.testing.assert_allclose(L, L0, rtol=1e-11, atol=1e-13)
    check_grads(lambda a, e: la.expm_frechet(a, e, compute_expm=False), (A[:3], E[:3]), order=1)


def test_expm_frechet_third_order():
    # expm's third derivative goes through the Fréchet derivative of a 4n×4n block
    rng = np.random.default_rng(8)
    A, V = gauss(rng, (3, 3), np.float64) * 0.5, gauss(rng, (3, 3), np.float64)
    f = lambda a: lad.sum(la.expm(a) ** 2)          # noqa: E731
    hvp = lambda a: lad.hvp(f, (a,), (V,))[0]        # noqa: E731
    check_grads(hvp, (A,), order=1, modes=("fwd",))


def test_expm_frechet_errors():
    A = np.eye(3)
    with pytest.raises(ValueError, match="expm_frechet"):
        la.expm_frechet(A, np.eye(4))
    with pytest.raises(ValueError, match="expm_frechet"):
        la.expm_frechet(A, A, method="bogus")
    with pytest.raises(LinAlgError, match="expm_frechet"):
        la.expm_frechet(np.ones((2, 3)), np.ones((2, 3)))


# -- sqrtm, logm ----------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("fun,ref", [(la.sqrtm, sl.sqrtm), (la.logm, sl.logm)],
                         ids=["sqrtm", "logm"])
def test_spd_nonnormal_complex(fun, ref, dtype):
    rng = np.random.default_rng(9)
    S = M.random_spd(rng, 5, (), dtype, cond=20.0) * 0.2
    N = nonnormal(rng, 5, dtype, 0.3, 3.0, 3.0)
    for A in (S, N):
        np.testing.assert_allclose(fun(A), ref(A), rtol=1e-9, atol=1e-12)
        check_grads(fun, (A,), order=2, rtol=1e-5)


def test_sqrtm_logm_real_matrix_with_complex_pairs():
    rng = np.random.default_rng(10)
    A = mf._positive_complex_pairs(rng, 6, (), np.float64)[0][0]
    assert np.iscomplex(np.linalg.eigvals(A)).any()
    for fun in (la.sqrtm, la.logm):
        out = fun(A)
        assert out.dtype == np.float64
        check_grads(fun, (A,), order=2, rtol=1e-5)


def test_sqrtm_squares_back_and_gradient_closed_form_spd():
    # SPD A = Q Λ Qᵀ: Ā = Q (Qᵀ Ḡ Q / (√λᵢ + √λⱼ)) Qᵀ
    rng = np.random.default_rng(11)
    Q = M.random_orthogonal(rng, 4, (), np.float64)
    lam = rng.uniform(0.5, 3, 4)
    A = (Q * lam) @ Q.T
    G = rng.standard_normal((4, 4))
    g = lad.grad(lambda a: lad.sum(G * la.sqrtm(a)))(A)
    s = np.sqrt(lam)
    np.testing.assert_allclose(g, Q @ ((Q.T @ G @ Q) / (s[:, None] + s[None, :])) @ Q.T,
                               rtol=1e-10)
    X = la.sqrtm(A)
    np.testing.assert_allclose(X @ X, A, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("dtype", DTYPES)
def test_logm_expm_round_trip_gradients(dtype):
    rng = np.random.default_rng(12)
    X = gauss(rng, (4, 4), dtype) * 0.3
    G = gauss(rng, (4, 4), dtype)

    def loss(x):
        return lad.real(lad.sum(np.conj(G) * la.logm(la.expm(x))))
    # logm(expm(X)) = X for ‖X‖ small (eigenvalues' imaginary parts in (−π, π)): gradient G
    np.testing.assert_allclose(la.logm(la.expm(X)), X, atol=1e-12)
    g = lad.grad(loss)(X)
    want = G.real if np.dtype(dtype).kind == "f" else G
    np.testing.assert_allclose(g, want, rtol=1e-9, atol=1e-10)
    # the second derivative of the identity map is 0: compare on an absolute scale
    check_grads(lambda x: la.logm(la.expm(x)), (X,), order=2, atol=1.0)


def test_logm_frechet_is_inverse_of_expm_frechet():
    rng = np.random.default_rng(13)
    A = nonnormal(rng, 4, np.float64, 0.5, 2.0, 1.0)
    E = rng.standard_normal((4, 4))
    F = la.logm(A)
    L = mf.frechet_logm(A, E)
    np.testing.assert_allclose(la.expm_frechet(F, L, compute_expm=False), E, rtol=1e-9, atol=1e-11)


def test_batched_and_float32():
    rng = np.random.default_rng(14)
    A = np.eye(4) + 0.2 * rng.standard_normal((2, 3, 4, 4))
    for fun, ref in ((la.sqrtm, sl.sqrtm), (la.logm, sl.logm)):
        np.testing.assert_allclose(fun(A), ref(A), rtol=1e-10, atol=1e-12)
        check_grads(fun, (A[:1, :2],), order=1)
        A32 = A.astype(np.float32)
        out = fun(A32)
        assert out.dtype == np.float32
        np.testing.assert_allclose(out, ref(A).real, rtol=1e-4, atol=1e-5)
        check_grads(fun, (A32[0],), order=1, rtol=2e-2)
        assert lad.grad(lambda a: lad.sum(fun(a)))(A32).dtype == np.float32


def test_disp_false_returns_error_estimates():
    A = np.array([[2.0, 1.0], [0.5, 3.0]])
    X, e = la.sqrtm(A, disp=False)
    assert isinstance(e, float) and e < 1e-20
    F, e = la.logm(A, disp=False)
    assert isinstance(e, float) and e < 1e-12


def test_negative_eigenvalue_real_matrix_is_an_error():
    A = np.diag([-1.0, 2.0, 3.0])
    with pytest.raises(LinAlgError, match="sqrtm.*negative real eigenvalue"):
        la.sqrtm(A)
    with pytest.raises(LinAlgError, match="logm.*negative real eigenvalue"):
        la.logm(A)
    stack = np.stack([np.eye(3), A])
    with pytest.raises(LinAlgError, match=r"logm.*\(1,\)"):
        la.logm(stack)
    with pytest.raises(LinAlgError, match=r"sqrtm.*\(1,\)"):
        la.sqrtm(stack)
    # the complex matrix has the principal complex root and logarithm, like SciPy
    Ac = A.astype(complex)
    np.testing.assert_allclose(la.sqrtm(Ac), sl.sqrtm(Ac), atol=1e-12)
    np.testing.assert_allclose(la.logm(Ac), sl.logm(Ac), atol=1e-12)


def test_singular_matrix_errors():
    S = np.diag([0.0, 2.0, 3.0])
    with pytest.raises(LinAlgError, match="logm.*singular"):
        la.logm(S)
    with pytest.warns(Warning):                       # SciPy's value and warning
        X = la.sqrtm(S)
    np.testing.assert_allclose(X, np.diag([0, np.sqrt(2), np.sqrt(3)]), atol=1e-12)
    with pytest.raises(LinAlgError, match="sqrtm.*singular"), pytest.warns(Warning):
        lad.grad(lambda a: lad.sum(la.sqrtm(a)))(S)


def test_non_square_and_non_finite_errors():
    for fun, name in ((la.sqrtm, "sqrtm"), (la.logm, "logm")):
        with pytest.raises(LinAlgError, match=name):
            fun(np.ones((2, 3)))
        with pytest.raises(ValueError, match=name):
            fun(np.array([[1.0, np.inf], [0, 1]]))


def test_trigonometric_and_hyperbolic_matrix_functions_errors_and_identities():
    """cosm ... tanhm (SciPy's definitions through expm): cos² + sin² = I and
    cosh² − sinh² = I on a stack, real results for real input, and errors naming the
    function (registry checks cover derivatives, dtypes and stacks)."""
    rng = np.random.default_rng(12)
    A = 0.5 * rng.standard_normal((3, 4, 4))
    c, s_ = la.cosm(A), la.sinm(A)
    assert c.dtype == np.float64
    np.testing.assert_allclose(c @ c + s_ @ s_, np.broadcast_to(np.eye(4), A.shape), atol=1e-12)
    ch, sh = la.coshm(A), la.sinhm(A)
    np.testing.assert_allclose(ch @ ch - sh @ sh, np.broadcast_to(np.eye(4), A.shape),
                               atol=1e-12)
    np.testing.assert_allclose(la.tanm(A), np.linalg.solve(c, s_), atol=1e-12)
    # cos(π/2) is 0 to working precision: whether it rounds to exactly 0 (a zero pivot)
    # depends on the BLAS kernels, so either the solve fails, naming tanm, or the
    # quotient is as large as 1/ε
    try:
        t = la.tanm(np.diag([np.pi / 2, 0.3]))
    except np.linalg.LinAlgError as e:
        assert "tanm" in str(e) and "cos" in str(e)
    else:
        assert abs(t[0, 0]) > 1e15 and np.isclose(t[1, 1], np.tan(0.3), rtol=1e-12)
    # an exactly singular cos: the error names the function and its denominator
    from linalgad.rules import matfuncs
    zero_cos = lambda A: (lad.zeros_like(A), A)  # noqa: E731
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(matfuncs, "_cos_sin", zero_cos)
        mp.setattr(matfuncs, "_cosh_sinh", zero_cos)
        with pytest.raises(np.linalg.LinAlgError, match="tanm: the matrix's cos is singular"):
            la.tanm(np.diag([0.5, 0.3]))
        with pytest.raises(np.linalg.LinAlgError, match="tanhm: the matrix's cosh is singular"):
            la.tanhm(np.diag([0.5, 0.3]))
    with pytest.raises(np.linalg.LinAlgError, match="cosm"):
        la.cosm(np.ones((2, 3)))
    with pytest.raises(ValueError, match="sinhm"):
        la.sinhm(np.array([[np.nan, 0.0], [0.0, 1.0]]))


def test_fractional_matrix_power_paths():
    """Integer t: matrix_power; a real matrix with a negative eigenvalue: a complex power
    (SciPy's), differentiable; a singular matrix: LinAlgError naming the function."""
    rng = np.random.default_rng(13)
    A = np.eye(3) + 0.2 * rng.standard_normal((2, 3, 3))
    np.testing.assert_allclose(la.fractional_matrix_power(A, 3.0), A @ A @ A, atol=1e-13)
    B = np.diag([-2.0, 1.0, 3.0]) + 0.1 * rng.standard_normal((3, 3))
    got = la.fractional_matrix_power(B, 0.3)
    assert got.dtype == np.complex128
    np.testing.assert_allclose(got, sl.fractional_matrix_power(B, 0.3), atol=1e-12)
    W = rng.standard_normal((3, 3))
    check_grads(lambda B: lad.sum(W * lad.abs(la.fractional_matrix_power(B, 0.3))), (B,),
                order=1)
    with pytest.raises(LinAlgError, match="fractional_matrix_power"):
        la.fractional_matrix_power(np.diag([0.0, 1.0]), 0.5)
