"""expm, expm_frechet, sqrtm, logm on the inputs the registry domains avoid.

The registry tests (test_rules.py) check every rule on modest, well-conditioned
inputs in both modes at second order.  Here: large norms (scaling and squaring
active), strongly non-normal and complex matrices, SciPy's return forms, round
trips, closed forms (normal matrices), batching, float32 and the error cases.
"""

import math

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


@pytest.mark.parametrize("n, a", [(4, 10.0), (4, 100.0), (4, 1e4), (6, 1e3), (8, 1e2), (8, 1e4)])
def test_expm_frechet_of_nilpotent_matrices(n, a):
    """A strictly triangular A: e^A is the polynomial Σ_{k<n} Aᵏ/k!, which a low Padé degree
    reproduces exactly although ‖A‖ is large — but its derivative involves Aᵃ E Aᵇ, which
    does not vanish: degree 3 at order 4 gave the derivative 4% off (SciPy's expm_frechet,
    JAX and PyTorch: 1e-15).  And the bound ‖A⁸‖ ≤ ‖A⁴‖² asked for squarings A⁸ = 0 does
    not need (order 8: e^A 1e+1 off after 11 of them)."""
    rng = np.random.default_rng(n)
    A = np.triu(rng.standard_normal((n, n)), 1) * a
    E = rng.standard_normal((n, n))
    exact = sum(np.linalg.matrix_power(A, k) / math.factorial(k) for k in range(n))
    np.testing.assert_allclose(la.expm(A), exact, rtol=1e-12, atol=1e-12 * np.abs(exact).max())
    _, L = lad.jvp(la.expm, (A,), (E,))
    # the exact derivative: Σ_k Σ_{i+j=k-1} Aⁱ E Aʲ / k!, a finite sum here (k ≤ 2n - 1)
    P = [np.linalg.matrix_power(A, k) for k in range(2 * n)]
    want = sum(P[i] @ E @ P[k - 1 - i] / math.factorial(k)
               for k in range(1, 2 * n) for i in range(k))
    np.testing.assert_allclose(L, want, rtol=0, atol=1e-11 * np.abs(want).max())
    W = rng.standard_normal((n, n))
    g = lad.grad(lambda x: lad.sum(W * la.expm(x)))(A)
    np.testing.assert_allclose(np.sum(g * E), np.sum(W * want), rtol=1e-10)
    # a stack with it: one degree, a scaling per matrix, the same derivative
    B = np.stack([A, rng.standard_normal((n, n))])
    _, LB = lad.jvp(la.expm, (B,), (np.stack([E, E]),))
    np.testing.assert_allclose(LB[0], want, rtol=0, atol=1e-10 * np.abs(want).max())


@pytest.mark.parametrize("n, a, d", [(6, 1e3, 0.7), (6, 1e4, -1.3), (10, 1e3, 0.2)])
@pytest.mark.parametrize("lower", [False, True])
def test_expm_of_triangular_matrices_with_a_diagonal(n, a, d, lower):
    """A = d I + N, N strictly triangular with large entries: e^A = e^d Σ_{k<n} Nᵏ/k! and
    L(A, E) = e^d L(N, E), both finite sums.  The Padé solve with V − U (triangular)
    factored Aᵀ with row exchanges where A is upper triangular, losing the exact back
    substitution: e^A of order 10 was 43% off (SciPy's expm 1e-5 on these); now the LU
    of a triangular matrix exchanges no rows (backend.lu_factor)."""
    rng = np.random.default_rng(n + int(a))
    N = np.triu(rng.standard_normal((n, n)), 1) * a
    E = rng.standard_normal((n, n))
    P = [np.linalg.matrix_power(N, k) for k in range(2 * n)]
    exact = np.exp(d) * sum(P[k] / math.factorial(k) for k in range(n))
    L = np.exp(d) * sum(P[i] @ E @ P[k - 1 - i] / math.factorial(k)
                        for k in range(1, 2 * n) for i in range(k))
    A = N + d * np.eye(n)
    if lower:
        A, E, exact, L = A.T.copy(), E.T.copy(), exact.T.copy(), L.T.copy()
    for B, Eb, want, Lw in ((A, E, exact, L), (np.stack([A] * 3), np.stack([E] * 3),
                                              exact, L)):
        F, Lg = lad.jvp(la.expm, (B,), (Eb,))
        F, Lg = F.reshape(-1, n, n)[-1], Lg.reshape(-1, n, n)[-1]
        np.testing.assert_allclose(F, want, rtol=0, atol=1e-13 * np.abs(want).max())
        np.testing.assert_allclose(Lg, Lw, rtol=0, atol=1e-12 * np.abs(Lw).max())
    W = rng.standard_normal((n, n))
    g = lad.grad(lambda x: lad.sum(W * la.expm(x)))(A)
    np.testing.assert_allclose(np.sum(g * E), np.sum(W * L), rtol=1e-11)


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


def _triangular_kinds(rng, n):
    """Upper triangular matrices of the kinds logm's scaling and degree choices tell apart."""
    def tri(diag, off=1.0, complex_=False):
        X = gauss(rng, (n, n), np.complex128 if complex_ else np.float64) * off
        T = np.triu(X, 1) + np.diag(diag)
        return T
    u = rng.uniform
    return {
        "real": tri(u(0.1, 10, n)),
        "near-identity": tri(1 + 1e-7 * rng.standard_normal(n), 1e-6),
        "clustered": tri(2 + 1e-9 * rng.standard_normal(n)),
        "repeated": tri(np.full(n, 3.0)),
        "scales": tri(10.0 ** u(-4, 4, n), 0.3),
        "complex": tri(u(0.1, 5, n) * np.exp(1j * u(-3, 3, n)), complex_=True),
        "unit-circle": tri(np.exp(1j * u(-3.1, 3.1, n)), 0.3, complex_=True),
        "negative-real": tri(np.r_[-2.0, u(0.5, 2, n - 1)] + 0j, complex_=True),
        # many square roots (1e5) beside an eigenvalue within 1e-10 of 1: tᵢᵢ^(1/2^s) − 1
        # needs its product form (the plain difference is 1e-4 off)
        "near-one-and-far": tri(np.r_[1 + 1e-10, 1e5, u(0.5, 2, max(n - 2, 0))][:n], 0.01),
    }


@pytest.mark.parametrize("n", [1, 2, 5, 16])
def test_logm_stack_kernel_matches_scipy_per_matrix(n):
    """linalgad._logm_stack (one operation per step for the whole stack) against SciPy's
    per-matrix inverse scaling and squaring, on one stack that mixes every kind, so that
    its matrices take different numbers of square roots and Padé degrees."""
    from scipy.linalg._matfuncs_inv_ssq import _logm

    from linalgad import _logm_stack
    rng = np.random.default_rng(40 + n)
    kinds = {k: v for k, v in _triangular_kinds(rng, n).items()}
    T = np.stack([v.astype(complex) for v in kinds.values()] * 2)
    U = _logm_stack.logm_triangular(T)
    for i, name in enumerate(list(kinds) * 2):
        ref = _logm(T[i])
        err = np.abs(U[i] - ref).max() / np.abs(ref).max()
        assert err < 1e-13, (name, err)
        # entry by entry where the entries are not tiny beside the largest
        big = np.abs(ref) > 1e-8 * np.abs(ref).max()
        assert (np.abs(U[i] - ref)[big] <= 1e-12 * np.abs(ref)[big]).all(), name
    # real triangular input (positive diagonal) stays real
    R = np.stack([kinds[k] for k in ("real", "near-identity", "clustered", "repeated",
                                     "scales")])
    UR = _logm_stack.logm_triangular(R)
    assert UR.dtype == np.float64
    for i in range(len(R)):
        ref = _logm(R[i])
        assert np.abs(UR[i] - ref).max() <= 1e-13 * np.abs(ref).max()
    # a real triangular matrix with a negative diagonal entry: complex, as SciPy's
    if n > 1:
        Rn = R.copy()
        Rn[0, 0, 0] = -2.0
        Un = _logm_stack.logm_triangular(Rn)
        assert Un.dtype == np.complex128
        np.testing.assert_allclose(Un[0], _logm(Rn[0]), rtol=1e-13, atol=1e-14)
    # the square root of the recurrence by superdiagonals
    S = _logm_stack.sqrtm_triangular(T)
    assert np.abs(S @ S - T).max() <= 1e-12 * np.abs(T).max()


def test_logm_stack_first_superdiagonal_formulas():
    """The 2×2 entries the stack kernel recomputes, (T^p)₁₂ and (log T)₁₂ of
    [[l1, t], [0, l2]], against an independent form: t·l1^p·expm1(p·w)/(l2 − l1) and
    t·w/(l2 − l1) with w = log1p((l2 − l1)/l1) + 2πik the principal log l2 − log l1
    without cancellation — equal, far, near, near across the branch cut."""
    from linalgad import _logm_stack as S
    a = np.exp(1j * (np.pi - 0.01))
    pairs = [(2.0, 2.0), (0.5, 3.0), (1.0, 1.0 + 1e-9), (1e5, 1e5 * (1 + 3e-11)),
             (a, np.conj(a)), (3j, 3j * (1 + 1e-8)), (-1 + 1e-3j, -1 - 1e-3j),
             (0.2 + 0.1j, 0.21 + 0.1j)]
    l1 = np.array([p[0] for p in pairs], dtype=complex)[None]
    l2 = np.array([p[1] for p in pairs], dtype=complex)[None]
    t = np.full(l1.shape, 1.7 - 0.4j)
    q = np.array([[2.0 ** -5]])
    diff = l2 - l1
    z = diff / l1                                   # log1p and expm1 in real arithmetic
    x, y = z.real, z.imag                           # (NumPy's complex ones lose digits)
    log1p = 0.5 * np.log1p(x * (2 + x) + y * y) + 1j * np.arctan2(y, 1 + x)

    def expm1(v):
        return np.expm1(v.real) * np.cos(v.imag) - 2 * np.sin(v.imag / 2) ** 2 + \
            1j * np.exp(v.real) * np.sin(v.imag)
    k = np.round((np.log(l2) - np.log(l1) - log1p).imag / (2 * np.pi))
    w = log1p + 2j * np.pi * k
    with np.errstate(invalid="ignore", divide="ignore"):
        want_log = np.where(diff == 0, t / l1, t * w / diff)
        want_pow = np.where(diff == 0, t * q * l1 ** (q - 1),
                            t * l1 ** q * expm1(q * w) / diff)
    got_log = S._log_superdiagonal(l1, l2, t)
    got_pow = S._power_superdiagonal(l1, l2, t, q)
    np.testing.assert_allclose(got_log, want_log, rtol=1e-13)
    np.testing.assert_allclose(got_pow, want_pow, rtol=1e-13)
    # aᵖ − 1 with p = 1/2^k in product form, against expm1(p log a)
    av = np.array([[1 + 1e-10, 1e5, 0.3, -2 + 1e-3j, 1j, 1 - 1e-12j, 4.0]])
    for k in (0, 1, 2, 7, 30):
        v = np.log(av) / 2.0 ** k
        np.testing.assert_allclose(S._power_minus_one(av, np.array([[k]])), expm1(v),
                                   rtol=1e-13)
    # the real forms stay real
    r1, r2, tr = np.array([[0.5, 1.0, 7.0]]), np.array([[3.0, 1.0 + 1e-10, 7.0]]), \
        np.ones((1, 3))
    assert S._log_superdiagonal(r1, r2, tr).dtype == np.float64
    assert S._power_superdiagonal(r1, r2, tr, q).dtype == np.float64


@pytest.mark.parametrize("n", [2, 3, 7, 20])
def test_complex_schur_of_a_stack(n):
    """_logm_stack.complex_schur against the definition: Zc Tc Zcᴴ = A, Tc upper
    triangular with A's eigenvalues, Zc unitary — on a stack that mixes matrices with and
    without complex pairs (real triangular T's pass through unchanged)."""
    from linalgad import _logm_stack
    rng = np.random.default_rng(50 + n)
    A = rng.standard_normal((6, n, n))
    A[1] = np.triu(A[1])                                  # real eigenvalues only
    A[2] = A[2] + A[2].T
    TZ = [sl.schur(a) for a in A]
    T, Z = np.stack([t for t, _ in TZ]), np.stack([z for _, z in TZ])
    Tc, Zc = _logm_stack.complex_schur(T, Z)
    assert Tc.dtype == Zc.dtype == np.complex128
    np.testing.assert_allclose(Zc @ Tc @ mH(Zc), A, atol=1e-13 * n)
    np.testing.assert_allclose(mH(Zc) @ Zc, np.broadcast_to(np.eye(n), A.shape), atol=1e-14 * n)
    below = np.tril(np.ones((n, n), dtype=bool), -1)
    assert (Tc[:, below] == 0).all()
    for i in range(len(A)):
        np.testing.assert_allclose(np.sort_complex(np.diagonal(Tc[i])),
                                   np.sort_complex(np.linalg.eigvals(A[i])), atol=1e-12)
    np.testing.assert_array_equal(Tc[1:3], T[1:3])           # no blocks: T itself
    # each pair in LAPACK's (and rsf2csf's) order: positive imaginary part first
    b, m = np.nonzero(np.diagonal(T, -1, -2, -1))
    assert b.size and (Tc[b, m, m].imag > 0).all() and (Tc[b, m + 1, m + 1].imag < 0).all()
    # the backend's conversion of a stack is this one
    from linalgad.backend import CPU
    Tb, Zb = CPU.schur_complex(T, Z)
    np.testing.assert_array_equal(Tb, Tc)


@pytest.mark.parametrize("n", [1, 3, 8])
def test_logm_frechet_of_a_stack_differentiates_the_algorithm(n, monkeypatch):
    """_logm_stack.frechet_triangular (Sylvester equations of the square roots, the Padé
    approximant's solves) against the logarithm of the block [[T, F], [0, T]] (SciPy's
    per-matrix logm, the definition L_log(T, F) = log(block)₁₂), on a stack that mixes the
    kinds of spectra; and CPU.logm_frechet_schur takes it for stacks."""
    from scipy.linalg._matfuncs_inv_ssq import _logm

    from linalgad import _logm_stack
    from linalgad.backend import CPU
    rng = np.random.default_rng(60 + n)
    kinds = _triangular_kinds(rng, n)
    T = np.stack([v.astype(complex) for v in kinds.values()])
    F = gauss(rng, T.shape, np.complex128)
    L = _logm_stack.frechet_triangular(T, F, CPU._root_sylvester, CPU._upper_solve)
    for i, name in enumerate(kinds):
        big = np.zeros((2 * n, 2 * n), dtype=complex)
        big[:n, :n] = big[n:, n:] = T[i]
        scale = np.abs(T[i]).sum(axis=0).max() / np.abs(F[i]).sum(axis=0).max()
        big[:n, n:] = scale * F[i]
        want = _logm(big)[:n, n:] / scale
        assert np.abs(L[i] - want).max() <= 1e-11 * np.abs(want).max(), name
    # real triangular factors and a real direction stay real
    R = np.stack([kinds[k] for k in ("real", "clustered", "scales")])
    FR = rng.standard_normal(R.shape)
    LR = _logm_stack.frechet_triangular(R, FR, CPU._root_sylvester, CPU._upper_solve)
    assert LR.dtype == np.float64
    # the backend's stack path is this one (the block logm is not computed)
    monkeypatch.setattr(CPU, "_frechet_block", lambda *a: (_ for _ in ()).throw(
        AssertionError("the 2n block was formed")))
    Z = np.broadcast_to(np.eye(n), T.shape)
    np.testing.assert_allclose(CPU.logm_frechet_schur(T, Z, F, False), L, rtol=1e-12,
                               atol=1e-14)


def test_logm_of_a_stack_takes_the_stack_kernel(monkeypatch):
    """Real 3×3 matrices with complex eigenvalues (scaled rotations, a common stack): the
    values match SciPy's per matrix and the per-matrix SciPy loop is not called (the
    forward pass, and the Fréchet derivative's block logm of order 6 in the backward)."""
    import scipy.linalg._matfuncs_inv_ssq as ssq
    rng = np.random.default_rng(41)
    B = 24
    th = rng.uniform(-2.5, 2.5, B)
    c, s_ = np.cos(th), np.sin(th)
    Rz = np.zeros((B, 3, 3))
    Rz[:, 0, 0], Rz[:, 0, 1], Rz[:, 1, 0], Rz[:, 1, 1], Rz[:, 2, 2] = c, -s_, s_, c, 1.0
    Q = M.random_orthogonal(rng, 3, (B,), np.float64)
    A = Q @ Rz @ np.swapaxes(Q, -1, -2) * rng.uniform(0.5, 2, (B, 1, 1)) \
        + 0.05 * rng.standard_normal((B, 3, 3))
    want = np.stack([sl.logm(a) for a in A])

    def no_loop(*args, **kwargs):
        raise AssertionError("SciPy's per-matrix logm was called")
    monkeypatch.setattr(ssq, "_logm", no_loop)
    got = la.logm(A)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, want, rtol=1e-11, atol=1e-12)
    check_grads(la.logm, (A[:4],), order=1, rtol=1e-6)
    W = rng.standard_normal((B, 3, 3))
    g = lad.grad(lambda a: lad.sum(W * la.logm(a)))(A)
    # one matrix at a time (SciPy's path is off: through expm_frechet's inverse relation)
    i = 7
    E = rng.standard_normal((3, 3))
    L = mf.frechet_logm(A[i:i + 4], np.stack([E] * 4))[0]
    np.testing.assert_allclose(la.expm_frechet(want[i], L, compute_expm=False), E,
                               rtol=1e-9, atol=1e-11)
    assert np.isfinite(g).all()


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


def test_matrix_functions_of_order_one_are_elementwise():
    """expm of (..., 1, 1) is exp (and the functions through it, cosm, tanhm, the
    fractional powers); it ran the Padé steps at 100 times SciPy's time."""
    rng = np.random.default_rng(21)
    A = rng.standard_normal((500, 1, 1)) + 1j * rng.standard_normal((500, 1, 1))
    np.testing.assert_allclose(la.expm(A), np.exp(A), rtol=1e-14)
    np.testing.assert_allclose(la.cosm(A.real), np.cos(A.real), rtol=1e-14)
    np.testing.assert_allclose(la.expm(A), sl.expm(A), rtol=1e-13)
    check_grads(la.expm, (A[:3],), order=2)
    check_grads(la.tanhm, (A[:3].real,), order=2)
    np.testing.assert_allclose(la.fractional_matrix_power(np.array([[4.0]]), 0.5), [[2.0]])


def test_sqrtm_forward_costs_scipys_alone(monkeypatch):
    """The Schur factors of X that the derivatives use are computed when a derivative first
    needs them, once per forward pass (a plain call took twice SciPy's time with them)."""
    from linalgad.backend import CPUKernels
    calls = []
    original = CPUKernels.schur
    monkeypatch.setattr(CPUKernels, "schur",
                        lambda self, *a, **k: calls.append(1) or original(self, *a, **k))
    rng = np.random.default_rng(31)
    A = rng.standard_normal((6, 6)) / 6 + 2 * np.eye(6)
    X = la.sqrtm(A)
    np.testing.assert_allclose(X, sl.sqrtm(A), rtol=1e-13)
    assert not calls
    J = lad.jacrev(la.sqrtm)(A)                  # 36 cotangents, one forward pass
    assert len(calls) == 1
    E = rng.standard_normal((6, 6))
    np.testing.assert_allclose(np.einsum("ijkl,kl->ij", J, E),
                               lad.jvp(la.sqrtm, (A,), (E,))[1], rtol=1e-10, atol=1e-12)
    with pytest.raises(LinAlgError, match="singular"):
        lad.grad(lambda a: lad.sum(la.sqrtm(a)))(np.diag([0.0, 1.0, 4.0]))
