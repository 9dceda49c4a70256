"""The factorization rules of issue 3, beyond what the registry-generated tests check.

Closed forms (slogdet/logdet gradients = A⁻ᵀ/A⁻ᴴ, det's adjugate at singular
matrices), NumPy/SciPy conventions (triangles read, output forms), errors
that name the function and the failing matrix of a stack, and factor reuse.
"""

import warnings

import numpy as np
import pytest
import scipy.linalg

import linalgad as lad
from linalgad import backend, linalg as la
from linalgad.testing import check_grads, matrices as M

RNG = np.random.default_rng(7)


def _rel(got, want):
    return np.linalg.norm(got - want) / max(np.linalg.norm(want), 1e-300)


def mH(X):
    return np.conj(np.swapaxes(X, -1, -2))


def _cofactor_adjugate(A):
    """adj(A) from its definition: adj(A)[j, i] = (-1)^(i+j) det(A without row i, col j)."""
    n = A.shape[-1]
    adj = np.zeros_like(A)
    for i in range(n):
        for j in range(n):
            minor = np.delete(np.delete(A, i, 0), j, 1)
            adj[j, i] = (-1) ** (i + j) * np.linalg.det(minor)
    return adj


@pytest.fixture
def count_kernels(monkeypatch):
    """Counts of factorization kernels called (per kernel name)."""
    calls = {}
    for name in ("lu_factor", "cholesky", "inv", "qr", "lu_packed", "svd", "lu_inverse"):
        original = getattr(backend.CPUKernels, name)

        def counting(self, *a, _name=name, _orig=original, **k):
            calls[_name] = calls.get(_name, 0) + 1
            return _orig(self, *a, **k)
        monkeypatch.setattr(backend.CPUKernels, name, counting)
    return calls


# -- closed forms -------------------------------------------------------------------------

@pytest.mark.parametrize("batch", [(), (4,), (2, 3)])
@pytest.mark.parametrize("dtype", [np.float64, np.complex128])
@pytest.mark.parametrize("n", [1, 5, 40])
def test_slogdet_gradient_is_inverse_transpose(n, batch, dtype):
    A = M.random_general(RNG, n, batch, dtype)
    g = lad.grad(lambda A: lad.sum(la.slogdet(A).logabsdet))(A)
    want = mH(np.linalg.inv(A))                       # A⁻ᵀ, A⁻ᴴ for complex
    assert _rel(g, want) < 1e-10


@pytest.mark.parametrize("batch", [(), (3,)])
@pytest.mark.parametrize("dtype", [np.float64, np.complex128])
@pytest.mark.parametrize("lower", [True, False])
def test_logdet_gradient_is_the_inverse_on_the_triangle_read(batch, dtype, lower):
    A = M.random_spd(RNG, 6, batch, dtype)
    value, g = lad.value_and_grad(lambda A: lad.sum(la.logdet(A, lower=lower)))(A)
    np.testing.assert_allclose(value, np.sum(np.linalg.slogdet(A)[1]), rtol=1e-12)
    Ainv = np.linalg.inv(A)                           # = A⁻ᴴ: Hermitian
    tri = np.tril if lower else np.triu
    want = tri(2 * Ainv) - np.real(np.diagonal(Ainv, 0, -2, -1))[..., None] * np.eye(6)
    assert _rel(g, want) < 1e-10
    # the symmetrized gradient is A⁻ᴴ itself
    assert _rel((g + mH(g)) / 2, Ainv) < 1e-10


@pytest.mark.parametrize("dtype", [np.float64, np.complex128])
def test_det_gradient_is_det_times_inverse_transpose(dtype):
    A = M.random_general(RNG, 5, (3,), dtype)
    g = lad.grad(lambda A: lad.real(lad.sum(la.det(A))))(A)
    d = np.linalg.det(A)
    assert _rel(g, np.conj(d)[..., None, None] * mH(np.linalg.inv(A))) < 1e-10


def _rank_deficient_examples():
    exact = np.array([[1., 2., 3.], [2., 4., 6.], [1., 0., 1.]])     # an exact zero pivot
    zero_col = np.array([[0., 1., 2.], [0., 3., 1.], [0., 5., 7.]])
    rng = np.random.default_rng(3)
    B, Cm = rng.standard_normal((4, 3)), rng.standard_normal((3, 4))
    return {"exact-zero-pivot": exact, "zero-column": zero_col, "product-rank-3": B @ Cm}


@pytest.mark.parametrize("name", list(_rank_deficient_examples()))
def test_det_gradient_at_rank_n_minus_1_is_the_adjugate_transpose(name):
    A = _rank_deficient_examples()[name]
    assert np.linalg.matrix_rank(A) == A.shape[-1] - 1
    g = lad.grad(lambda A: la.det(A))(A)
    want = _cofactor_adjugate(A).T
    assert np.all(np.isfinite(g))
    assert np.abs(want).max() > 1e-3                 # the adjugate is not zero here
    np.testing.assert_allclose(g, want, rtol=1e-9, atol=1e-9 * np.abs(want).max())


def test_det_gradient_at_rank_n_minus_2_is_zero_and_complex_singular_is_finite():
    A = np.array([[1., 2., 3.], [2., 4., 6.], [3., 6., 9.]])          # rank 1
    g = lad.grad(lambda A: la.det(A))(A)
    np.testing.assert_allclose(g, np.zeros((3, 3)), atol=1e-12)   # singular values ~1e-16
    Z = np.array([[1 + 1j, 2, 0], [2 + 2j, 4, 0], [1, 1j, 3]])         # rank 2, exact
    g = lad.grad(lambda A: lad.real(la.det(A)))(Z)
    want = np.conj(_cofactor_adjugate(Z)).T                           # ȳ adj(A)ᴴ with ȳ = 1
    assert np.all(np.isfinite(g))
    np.testing.assert_allclose(g, want, atol=1e-12)


def test_det_gradient_in_a_stack_with_one_singular_matrix():
    A = np.stack([M.random_general(RNG, 3, (), np.float64), _rank_deficient_examples()[
        "exact-zero-pivot"], M.random_general(RNG, 3, (), np.float64)])
    g = lad.grad(lambda A: lad.sum(la.det(A)))(A)
    for i in range(3):
        np.testing.assert_allclose(g[i], _cofactor_adjugate(A[i]).T, rtol=1e-9, atol=1e-12)


def test_det_hessian_away_from_singular_and_at_an_exact_zero_pivot():
    A = M.random_general(RNG, 4, (), np.float64)
    check_grads(la.det, (A,), order=2)
    S = _rank_deficient_examples()["exact-zero-pivot"]
    V = np.ones((3, 3))
    hv = lad.hvp(la.det, (S,), (V,))
    hv = hv[0] if isinstance(hv, tuple) else hv
    h = 1e-6
    want = (_cofactor_adjugate(S + h * V) - _cofactor_adjugate(S - h * V)).T / (2 * h)
    np.testing.assert_allclose(hv, want, rtol=1e-8, atol=1e-8 * np.abs(want).max())
    # a third derivative there is not implemented, and says so
    with pytest.raises(np.linalg.LinAlgError, match="third derivatives at or near a singular"):
        lad.jacfwd(lad.jacfwd(lad.grad(la.det)))(S)


@pytest.mark.parametrize("dtype", [np.float64, np.complex128])
@pytest.mark.parametrize("kind", ["rank n-1", "rank n-2", "near-singular", "zero column"])
def test_det_second_derivatives_at_and_near_singular_matrices(dtype, kind):
    """The adjugate's derivative through the SVD (determinant.md, section 6): at rank n − 1
    the nonsingular formula Y tr(A⁻¹Ȧ) − A⁻¹ȦY divides by a rounded pivot (its Hessian-vector
    product was off by 15 times its size at a matrix of rank 4 of order 5); near it
    (κ 10¹²) it lost 3.6e-4; at a zero pivot it raised.  Now hvp and jacrev(jacrev) agree
    with differences of the cofactor definition, real and complex, in a stack too."""
    rng = np.random.default_rng(12)
    n = 5
    rand = lambda *s: rng.standard_normal(s) + (1j * rng.standard_normal(s)     # noqa: E731
                                               if dtype == np.complex128 else 0)
    B1, B2 = rand(n, n), rand(n, n)
    A = {"rank n-1": B1 @ np.diag([1.0, 2.0, 0.5, 3.0, 0.0]) @ B2,
         "rank n-2": B1 @ np.diag([1.0, 2.0, 0.5, 0.0, 0.0]) @ B2,
         "near-singular": B1 @ np.diag([1.0, 2.0, 0.5, 3.0, 1e-12]) @ B2,
         "zero column": np.c_[B1[:, :4], np.zeros(n)]}[kind].astype(dtype)
    V = rand(n, n).astype(dtype)
    y_bar = 0.7 - 0.2j if dtype == np.complex128 else 0.7
    f = lambda a: lad.real(y_bar * la.det(a)) if dtype == np.complex128 else y_bar * la.det(a)
    hv = lad.hvp(f, (A,), (V,))
    hv = hv[0] if isinstance(hv, tuple) else hv
    h = 1e-6
    # the cotangent of Re(c det A) is conj(c) adj(A)ᴴ (determinant.md, section 2)
    grad_of = lambda a: np.conj(y_bar) * np.conj(_cofactor_adjugate(a).T)   # noqa: E731
    want = (grad_of(A + h * V) - grad_of(A - h * V)) / (2 * h)
    scale = np.abs(want).max()
    assert scale > 1e-3
    np.testing.assert_allclose(hv, want, rtol=0, atol=1e-7 * scale)
    if dtype == np.float64:
        H = np.asarray(lad.jacrev(lad.jacrev(f))(A)).reshape(n * n, n * n)
        np.testing.assert_allclose(H @ V.ravel(), np.asarray(hv).ravel(), rtol=0,
                                   atol=1e-10 * scale)
        Hs = lad.hvp(lambda a: lad.sum(f(a)), (np.stack([A, B1]),), (np.stack([V, V]),))
        Hs = Hs[0] if isinstance(Hs, tuple) else Hs
        np.testing.assert_allclose(Hs[0], hv, rtol=0, atol=1e-10 * scale)


def test_slogdet_of_singular_matches_numpy_and_its_gradient_raises():
    S = _rank_deficient_examples()["exact-zero-pivot"]
    sign, logabs = la.slogdet(S)
    assert sign == 0 and logabs == -np.inf
    with pytest.raises(np.linalg.LinAlgError, match="slogdet: .*singular"):
        lad.grad(lambda A: la.slogdet(A).logabsdet)(S)


def test_complex_slogdet_sign_cotangent():
    A = M.random_general(RNG, 4, (), np.complex128)

    def loss(A):    # depends on the phase of the determinant
        s, l = la.slogdet(A)
        return lad.real(s) + 0.5 * lad.imag(s) + l
    check_grads(loss, (A,), order=2)


def test_hvp_through_logdet_matches_finite_differences_of_grad():
    A = M.random_spd(RNG, 5, (), np.float64)
    V = M.random_general(RNG, 5, (), np.float64)
    f = lambda A: la.logdet(A)    # noqa: E731
    Hv = lad.hvp(f, (A,), (V,))
    h = 1e-5
    g = lad.grad(f)
    assert _rel(Hv, (g(A + h * V) - g(A - h * V)) / (2 * h)) < 1e-7


# -- conventions --------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float64, np.complex128])
def test_cholesky_triangle_conventions(dtype):
    A = M.random_spd(RNG, 4, (), dtype)
    noisy_upper = A + np.triu(np.ones((4, 4)), 1)       # lower triangle is A's
    noisy_lower = A + np.tril(np.ones((4, 4)), -1)
    np.testing.assert_allclose(la.cholesky(noisy_upper), np.linalg.cholesky(A), atol=1e-12)
    U = scipy.linalg.cholesky(A)
    np.testing.assert_allclose(la.cholesky(noisy_lower, lower=False), U, atol=1e-12)
    np.testing.assert_allclose(la.cholesky(noisy_lower, upper=True), U, atol=1e-12)
    with pytest.raises(ValueError, match="contradict"):
        la.cholesky(A, lower=True, upper=True)
    # only the triangle read gets gradient
    W = M.random_general(RNG, 4, (), dtype)
    g = lad.grad(lambda A: lad.real(lad.sum(W * la.cholesky(A))))(noisy_upper)
    assert np.all(np.triu(g, 1) == 0) and np.any(np.tril(g, -1) != 0)
    g = lad.grad(lambda A: lad.real(lad.sum(W * la.cholesky(A, lower=False))))(noisy_lower)
    assert np.all(np.tril(g, -1) == 0) and np.any(np.triu(g, 1) != 0)
    if dtype == np.complex128:
        assert np.all(np.imag(np.diagonal(g)) == 0)    # the diagonal's Im is not read


def test_cho_factor_and_cho_solve_follow_scipy():
    A = M.random_spd(RNG, 5, (), np.float64)
    b = M.random_rhs(RNG, 5, 3, (), np.float64)
    for lower in (False, True):
        c, low = la.cho_factor(A, lower=lower)
        assert low is lower
        c_sp, _ = scipy.linalg.cho_factor(A, lower=lower)
        tri = np.tril if lower else np.triu
        np.testing.assert_allclose(c, tri(c_sp), atol=1e-12)
        np.testing.assert_allclose(la.cho_solve((c, low), b),
                                   scipy.linalg.cho_solve((c_sp, lower), b), atol=1e-12)
        np.testing.assert_allclose(la.cho_solve(la.cho_factor(A, lower=lower), b[:, 0]),
                                   np.linalg.solve(A, b[:, 0]), atol=1e-12)
    # gradient end to end: through cho_factor and cho_solve equals solve's
    f1 = lambda A: lad.sum(la.cho_solve(la.cho_factor(A, lower=True), b) ** 2)    # noqa: E731
    f2 = lambda A: lad.sum(la.solve(A, b, assume_a="pos", lower=True) ** 2)        # noqa: E731
    np.testing.assert_allclose(lad.grad(f1)(A), lad.grad(f2)(A), rtol=1e-9, atol=1e-12)


def test_cho_solve_backward_reuses_the_factor(count_kernels):
    A = M.random_spd(RNG, 30, (), np.float64)
    c = np.linalg.cholesky(A)
    b = M.random_rhs(RNG, 30, 2, (), np.float64)
    lad.grad(lambda c, b: lad.sum(la.cho_solve((c, True), b) ** 2), argnums=(0, 1))(c, b)
    assert not count_kernels, f"cho_solve's gradient factorized: {count_kernels}"


@pytest.mark.parametrize("fun,kernel", [
    (lambda A: la.slogdet(A).logabsdet, "lu_factor"),
    (lambda A: la.det(A), "lu_factor"),
    (lambda A: la.logdet(A @ A.T + 3 * np.eye(20)), "cholesky"),
    (lambda A: lad.sum(la.inv(A)), "inv"),
    (lambda A: lad.sum(la.qr(A)[1]), "qr"),
    (lambda A: lad.sum(la.lu_factor(A)[0]), "lu_packed"),
])
def test_one_factorization_per_gradient(fun, kernel, count_kernels):
    A = M.random_general(RNG, 20, (), np.float64)
    lad.grad(lambda A: lad.sum(fun(A)))(A)
    assert count_kernels.pop(kernel) == 1
    if kernel == "inv":                               # the inv kernel is LU + getri itself
        assert count_kernels.pop("lu_factor") == 1
    count_kernels.pop("lu_inverse", None)             # A⁻¹ from the stored factors
    assert not count_kernels, f"extra factorizations: {count_kernels}"


def test_lu_forms_follow_scipy():
    for shape in [(4, 4), (6, 3), (3, 6), (2, 5, 4)]:
        A = RNG.standard_normal(shape)
        P, L, U = la.lu(A)
        Ps, Ls, Us = scipy.linalg.lu(A)
        for got, want in ((P, Ps), (L, Ls), (U, Us)):
            np.testing.assert_allclose(got, want, atol=1e-12)
        assert P.dtype == Ps.dtype
        p, L2, U2 = la.lu(A, p_indices=True)
        np.testing.assert_array_equal(p, scipy.linalg.lu(A, p_indices=True)[0])
        PL, U3 = la.lu(A, permute_l=True)
        np.testing.assert_allclose(PL, scipy.linalg.lu(A, permute_l=True)[0], atol=1e-12)
    for batch in [(), (3,), (20,)]:                   # (20,) 4x4: the vectorised kernel
        A = M.random_general(RNG, 4, batch, np.complex128)
        lu_, piv = la.lu_factor(A)
        flat = A.reshape(-1, 4, 4)
        for i, (l, p) in enumerate(zip(lu_.reshape(-1, 4, 4), piv.reshape(-1, 4))):
            ls, ps = scipy.linalg.lu_factor(flat[i])
            np.testing.assert_allclose(l, ls, atol=1e-12)
            np.testing.assert_array_equal(p, ps)


@pytest.mark.parametrize("trans", [0, 1, 2, "N", "T", "C"])
def test_lu_solve_matches_scipy_and_gradients(trans):
    A = M.random_general(RNG, 5, (), np.complex128)
    b = M.random_rhs(RNG, 5, 2, (), np.complex128)
    lu_, piv = scipy.linalg.lu_factor(A)
    t = {"N": 0, "T": 1, "C": 2}.get(trans, trans)      # SciPy's lu_solve takes integers
    np.testing.assert_allclose(la.lu_solve((lu_, piv), b, trans=trans),
                               scipy.linalg.lu_solve((lu_, piv), b, trans=t), atol=1e-12)
    # end to end through lu_factor: the same gradient as solve's
    opA = [lambda A: A, lambda A: lad.mT(A), lambda A: lad.mH(A)][t]
    f1 = lambda A: lad.real(lad.sum(la.lu_solve(la.lu_factor(A), b, trans=trans)))  # noqa
    f2 = lambda A: lad.real(lad.sum(la.solve(opA(A), b)))                           # noqa
    np.testing.assert_allclose(lad.grad(f1)(A), lad.grad(f2)(A), rtol=1e-9, atol=1e-12)


def test_qr_modes_follow_numpy():
    for shape in [(5, 3), (3, 3), (3, 5), (2, 6, 4)]:
        A = RNG.standard_normal(shape) + 1j * RNG.standard_normal(shape)
        for mode, alias in [("reduced", "economic"), ("complete", "full")]:
            Q, R = la.qr(A, mode=mode)
            Qn, Rn = np.linalg.qr(A, mode=mode)
            np.testing.assert_allclose(Q, Qn, atol=1e-12)
            np.testing.assert_allclose(R, Rn, atol=1e-12)
            np.testing.assert_allclose(la.qr(A, mode=alias).R, Rn, atol=1e-12)
        np.testing.assert_allclose(la.qr(A, mode="r"), np.linalg.qr(A, mode="r"), atol=1e-12)
        # LAPACK's gauge: R's diagonal is real
        assert np.all(np.imag(np.diagonal(la.qr(A).R, 0, -2, -1)) == 0)
    with pytest.raises(ValueError, match="mode='raw' is not supported"):
        la.qr(np.eye(3), mode="raw")
    Q, R, P = la.qr(np.diag([1.0, 3.0, 2.0]), pivoting=True)   # largest column first
    np.testing.assert_array_equal(P, [1, 2, 0])
    np.testing.assert_allclose(np.abs(np.diag(R)), [3.0, 2.0, 1.0])


def test_qr_complete_reports_a_loss_on_the_undetermined_columns():
    A = RNG.standard_normal((5, 3))
    with pytest.raises(ValueError, match="last m - n columns of Q"):
        lad.grad(lambda A: lad.sum(la.qr(A, mode="complete").Q))(A)
    # a loss on the determined columns is fine
    g = lad.grad(lambda A: lad.sum(la.qr(A, mode="complete").Q[:, :3]))(A)
    np.testing.assert_allclose(g, lad.grad(lambda A: lad.sum(la.qr(A).Q))(A), atol=1e-12)


def test_qr_complete_forward_convention_keeps_orthogonality():
    A = RNG.standard_normal((5, 3))
    V = RNG.standard_normal((5, 3))
    (Q, R), (Qd, Rd) = lad.jvp(lambda A: tuple(la.qr(A, mode="complete")), (A,), (V,))
    # d(QᴴQ) = Q̇ᴴQ + QᴴQ̇ = 0, and Q₂ᴴ Q̇₂ = 0 (the convention)
    np.testing.assert_allclose(Qd.T @ Q + Q.T @ Qd, 0, atol=1e-12)
    np.testing.assert_allclose(Q[:, 3:].T @ Qd[:, 3:], 0, atol=1e-12)
    np.testing.assert_allclose(Qd @ R + Q @ Rd, V, atol=1e-12)


def test_solve_triangular_reads_one_triangle():
    A = RNG.standard_normal((4, 4)) + 3 * np.eye(4)
    b = RNG.standard_normal((4, 2))
    for lower in (True, False):
        for unit in (False, True):
            g = lad.grad(lambda A: lad.sum(la.solve_triangular(A, b, lower=lower,
                                                               unit_diagonal=unit) ** 2))(A)
            unread = np.triu(g, 1) if lower else np.tril(g, -1)
            assert np.all(unread == 0)
            if unit:
                assert np.all(np.diagonal(g) == 0)
    np.testing.assert_allclose(la.solve_triangular(A, b, trans="T", lower=True),
                               scipy.linalg.solve_triangular(A, b, trans="T", lower=True))


def test_numpy_functions_on_traced_values_are_routed_here():
    A = M.random_spd(RNG, 4, (), np.float64)
    for np_fn, fn in [(np.linalg.inv, la.inv), (np.linalg.det, la.det),
                      (lambda a: np.linalg.slogdet(a)[1], lambda a: la.slogdet(a)[1]),
                      (np.linalg.cholesky, la.cholesky),
                      (lambda a: np.linalg.qr(a)[1], lambda a: la.qr(a)[1])]:
        g1 = lad.grad(lambda A: lad.sum(np_fn(A)))(A)
        g2 = lad.grad(lambda A: lad.sum(fn(A)))(A)
        np.testing.assert_allclose(g1, g2)


# -- errors -------------------------------------------------------------------------------

def test_cholesky_of_non_positive_definite_names_the_matrix():
    S = np.stack([np.eye(3), np.diag([1., -1., 1.]), np.eye(3)])
    with pytest.raises(np.linalg.LinAlgError, match=r"cholesky: .*not positive definite "
                                                     r"\(leading minor of order 2 .*\(1,\)"):
        la.cholesky(S)
    with pytest.raises(np.linalg.LinAlgError, match="cholesky: .*not positive definite"):
        la.cholesky(np.diag([1., -1.]))
    big = np.stack([np.eye(12)] * 2 + [-np.eye(12)])
    with pytest.raises(np.linalg.LinAlgError, match=r"logdet: .*\(2,\)"):
        la.logdet(big)


@pytest.mark.parametrize("n", [3, 12])
def test_inv_and_lu_solve_of_singular_name_the_matrix(n):
    A = np.stack([np.eye(n), np.eye(n), np.zeros((n, n))])
    with pytest.raises(np.linalg.LinAlgError, match=r"inv: .*singular.*\(2,\)"):
        la.inv(A)
    with pytest.raises(np.linalg.LinAlgError, match="inv: .*singular"):
        la.inv(np.zeros((n, n)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lu_, piv = la.lu_factor(A)
    with pytest.raises(np.linalg.LinAlgError, match=r"lu_solve: .*singular.*\(2,\)"):
        la.lu_solve((lu_, piv), np.ones((3, n, 1)))


def test_lu_factor_of_singular_warns_like_scipy():
    with pytest.warns(scipy.linalg.LinAlgWarning, match="exactly zero"):
        la.lu_factor(np.array([[1., 2.], [2., 4.]]))


@pytest.mark.parametrize("fn", [la.inv, la.det, la.slogdet, la.cholesky, la.logdet])
def test_square_only_functions_reject_rectangular_input(fn):
    with pytest.raises(np.linalg.LinAlgError, match=r"must be a square matrix.*\(3, 4\)"):
        fn(np.ones((3, 4)))


def test_bad_arguments_raise_clear_errors():
    A = np.eye(3)
    with pytest.raises(ValueError, match="trans must be"):
        la.solve_triangular(A, np.ones(3), trans=3)
    with pytest.raises(ValueError, match=r"solve_triangular: a has shape \(3, 3\) and b"):
        la.solve_triangular(A, np.ones(4))
    with pytest.raises(TypeError, match="cho_solve: the first argument must be the pair"):
        la.cho_solve(A, np.ones(3))
    with pytest.raises(TypeError, match="lu_solve: the first argument must be the pair"):
        la.lu_solve(A, np.ones(3))
    with pytest.raises(np.linalg.LinAlgError, match="solve_triangular: .*diagonal entry 1"):
        la.solve_triangular(np.diag([1., 0., 1.]), np.ones(3))
    with pytest.raises(ValueError, match="inv: a contains infs or NaNs"):
        la.inv(np.full((2, 2), np.nan))
    with pytest.raises(ValueError, match=r"slogdet: a contains infs or NaNs \(matrix \(1,\)"):
        la.slogdet(np.stack([np.eye(2), np.full((2, 2), np.inf)]))
    # check_finite=False: no scan, IEEE propagation (as SciPy's check_finite=False)
    sign, logabs = la.slogdet(np.full((2, 2), np.nan), check_finite=False)
    assert np.isnan(logabs)


@pytest.mark.parametrize("fn", [la.inv, la.det, lambda a: la.slogdet(a)[1], la.cholesky,
                                lambda a: la.qr(a)[1], lambda a: la.lu_factor(a)[0]])
@pytest.mark.parametrize("dtype", [np.float32, np.complex64])
def test_single_precision_in_single_precision_out(fn, dtype):
    A = M.random_spd(RNG, 4, (2,), dtype)
    out = fn(A)
    assert out.dtype in (np.dtype(dtype), np.dtype(dtype).type(0).real.dtype)
    g = lad.grad(lambda A: lad.real(lad.sum(fn(A))))(A)
    assert g.dtype == np.dtype(dtype)


def test_qr_pivoting_matches_scipy_on_stacks_and_dtypes():
    """qr(pivoting=True): SciPy's (Q, R, P) per matrix, P int32 per matrix of a stack."""
    import scipy.linalg

    rng = np.random.default_rng(31)
    for dtype in (np.float32, np.float64, np.complex64, np.complex128):
        A = (rng.standard_normal((2, 5, 4)) * 2.0 ** -np.arange(4))[..., [2, 0, 3, 1]]
        A = A.astype(dtype)
        Q, R, P = la.qr(A, pivoting=True)
        assert P.shape == (2, 4) and P.dtype == np.int32
        assert Q.dtype == np.dtype(dtype) and R.dtype == np.dtype(dtype)
        single = np.dtype(dtype) in (np.dtype(np.float32), np.dtype(np.complex64))
        tol = 1e-5 if single else 1e-12
        for i in range(2):
            Qs, Rs, Ps = scipy.linalg.qr(A[i], mode="economic", pivoting=True)
            assert np.array_equal(P[i], Ps)
            np.testing.assert_allclose(Q[i], Qs, atol=tol)
            np.testing.assert_allclose(R[i], Rs, atol=tol)
            np.testing.assert_allclose(Q[i] @ R[i], A[i][:, P[i]], atol=tol)
        R2, P2 = la.qr(A, mode="r", pivoting=True)
        np.testing.assert_array_equal(P2, P)
        np.testing.assert_allclose(R2, R, atol=tol)
    Qc, Rc, Pc = la.qr(A[0], mode="complete", pivoting=True)
    assert Qc.shape == (5, 5) and Rc.shape == (5, 4)


@pytest.mark.parametrize("assume_a,lower", [("pos", False), ("pos", True), ("sym", False),
                                            ("her", True), ("upper triangular", False),
                                            ("lower triangular", False), ("diagonal", False)])
def test_inv_assume_a_reads_and_differentiates_only_its_structure(assume_a, lower):
    """SciPy 1.17's inv(a, assume_a=..., lower=...): SciPy's values, and a gradient on the
    entries that structure reads (checked against central differences over all entries:
    the others do not change the result, so their gradient must be 0)."""
    import scipy.linalg
    rng = np.random.default_rng(31)
    dtype = np.complex128 if assume_a == "her" else np.float64
    S = M.random_spd(rng, 4, (2,), dtype)
    noise = M.random_general(rng, 4, (2,), dtype)
    X = S + (np.triu(noise, 1) if lower else np.tril(noise, -1))   # the unread triangle
    if assume_a.endswith("triangular"):
        X = (np.triu if assume_a.startswith("upper") else np.tril)(S) + 0.1 * noise
    if assume_a == "diagonal":
        X = np.eye(4) * (np.diagonal(S, 0, -2, -1)[..., None]) + 0.1 * noise
    got = la.inv(X, assume_a=assume_a, lower=lower)
    for i in range(2):
        # (SciPy 1.17's inv copies the off-diagonal entries it does not read into the
        # result of 'diagonal'; its solve, like linalgad, returns the diagonal inverse)
        want = scipy.linalg.solve(X[i], np.eye(4), assume_a=assume_a, lower=lower) \
            if assume_a == "diagonal" else scipy.linalg.inv(X[i], assume_a=assume_a,
                                                            lower=lower)
        np.testing.assert_allclose(got[i], want, atol=1e-12)
    W = rng.standard_normal((4, 4))
    check_grads(lambda X: lad.sum(W * lad.real(la.inv(X, assume_a=assume_a, lower=lower))),
                (X,), order=2)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.complex64, np.complex128])
def test_slogdet_where_the_product_of_the_pivots_leaves_the_normal_range(dtype):
    """log|det| is the log of the pivots' product where that is a normal number and the sum
    of their logs where it over- or underflows (or is 0): NumPy's values on both sides, in
    one stack, with a gradient that stays A⁻ᴴ."""
    rng = np.random.default_rng(41)
    base = M.random_general(rng, 40, (4,), dtype)
    scale = np.array([1.0, 1e9, 1e-9, 0.0]).astype(np.finfo(dtype).dtype)   # fine, over, under, 0
    A = base * scale[:, None, None]
    A[3, :, 0] = 0                                      # an exactly singular one too
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no overflow warnings escape
        sign, logabs = la.slogdet(A)
    s_np, l_np = np.linalg.slogdet(A.astype(np.result_type(dtype, np.float64)))
    tol = 1e-4 if np.dtype(dtype) in (np.dtype(np.float32), np.dtype(np.complex64)) else 1e-10
    np.testing.assert_allclose(sign, s_np, atol=tol)
    np.testing.assert_allclose(logabs[:3], l_np[:3], rtol=tol)
    assert logabs[3] == -np.inf and sign[3] == 0
    if tol < 1e-8:
        g = lad.grad(lambda A: lad.sum(la.slogdet(A)[1]))(A[:3])
        np.testing.assert_allclose(g, np.conj(np.swapaxes(np.linalg.inv(A[:3]), -1, -2)),
                                   rtol=1e-8, atol=1e-8 * np.abs(g).max(axis=(-2, -1))[0])


@pytest.mark.parametrize("dtype", [np.float64, np.complex128, np.float32])
def test_det_whose_pivots_run_out_of_range_on_the_way(dtype):
    """block_diag(1e-200·B₁, 1e200·B₂) has det 90, but the running product of its pivots
    underflowed to 0 (gradient 0 too); NumPy's det says 90.  Also 1200 pivots of 1e±3."""
    import scipy.linalg as sl
    if dtype == np.float32:
        A = sl.block_diag(1e-20 * np.array([[2.0, 1.0], [1.0, 3.0]]),
                          1e20 * np.array([[4.0, 1.0], [2.0, 5.0]])).astype(dtype)
        C = np.diag(np.r_[np.full(60, 1e-3), np.full(60, 1e3)]).astype(dtype)
    else:
        A = sl.block_diag(1e-200 * np.array([[2.0, 1.0], [1.0, 3.0]]),
                          1e200 * np.array([[4.0, 1.0], [2.0, 5.0]])).astype(dtype)
        C = np.diag(np.r_[np.full(600, 1e-3), np.full(600, 1e3)]).astype(dtype)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(la.det(A), 90.0, rtol=rtol)
    np.testing.assert_allclose(la.det(C), 1.0, rtol=rtol * 10)
    np.testing.assert_allclose(la.det(np.stack([A, 2 * np.eye(4, dtype=dtype)])), [90.0, 16.0],
                               rtol=rtol)
    if dtype != np.float32:
        g = lad.grad(lambda a: lad.real(la.det(a)))(A)
        want = np.conj(90.0 * np.linalg.inv(A).T)
        np.testing.assert_allclose(g, want, rtol=1e-10, atol=1e-10 * np.abs(want).max())


def test_qr_mode_r_untraced_forms_no_q():
    """qr(mode='r') of a plain array is R alone (geqrf, as numpy.linalg.qr(mode='r')):
    forming Q too took 1.5-1.9x the time; traced, R is differentiated as before."""
    from linalgad import backend
    rng = np.random.default_rng(30)
    for shape in [(6, 4), (4, 6), (3, 5, 5), (2, 0, 3)]:
        A = rng.standard_normal(shape) + 1j * rng.standard_normal(shape)
        np.testing.assert_allclose(la.qr(A, mode="r"), np.linalg.qr(A, mode="r"), atol=1e-13)
    A = rng.standard_normal((6, 4))
    calls = []
    orig = backend.CPUKernels.qr
    try:
        backend.CPUKernels.qr = lambda self, *a, **k: calls.append(1) or orig(self, *a, **k)
        la.qr(A, mode="r")
        assert not calls
        lad.grad(lambda a: lad.sum(la.qr(a, mode="r")))(A)
        assert calls
    finally:
        backend.CPUKernels.qr = orig


def test_det_third_derivative_near_singular_raises_instead_of_losing_digits():
    """A third derivative through the nonsingular adjugate formula loses κ² u: at κ = 3e7 it
    was off by 8e-3 (det is a cubic in a 3×3 matrix: its third derivative is a constant
    of ±1 and 0).  Where κ₁ > u^(−1/3) it now raises; below, it is accurate."""
    rng = np.random.default_rng(14)
    U, _ = np.linalg.qr(rng.standard_normal((3, 3)))
    W, _ = np.linalg.qr(rng.standard_normal((3, 3)))
    third = lad.jacfwd(lad.jacfwd(lad.jacfwd(la.det)))
    T = np.asarray(third(U @ np.diag([3.0, 2.0, 1.0]) @ W))
    assert set(np.unique(np.round(T, 8))) <= {-1.0, 0.0, 1.0}
    T4 = np.asarray(third(U @ np.diag([3.0, 2.0, 3e-4]) @ W))
    np.testing.assert_allclose(T4, T, atol=1e-7)
    with pytest.raises(np.linalg.LinAlgError, match="third derivatives at or near a singular"):
        third(U @ np.diag([3.0, 2.0, 3e-7]) @ W)
    # of order ≤ 2 det is linear or quadratic: its third derivative is zero, singular or not
    for S in (np.zeros((1, 1)), np.zeros((2, 2)), np.array([[1.0, 2.0], [2.0, 4.0]])):
        assert not np.asarray(third(S)).any()
        assert not np.asarray(lad.jacrev(lad.jacrev(lad.jacrev(la.det)))(S)).any()


# -- rq: the reflection of qr (qr.md §9) ---------------------------------------------------

@pytest.mark.parametrize("shape", [(3, 3), (3, 5), (5, 3), (2, 4, 6), (2, 6, 4), (1, 1),
                                   (0, 3), (3, 0)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.complex64, np.complex128])
@pytest.mark.parametrize("mode", ["full", "economic", "r"])
def test_rq_values_match_scipy(shape, dtype, mode):
    A = RNG.standard_normal(shape)
    if np.dtype(dtype).kind == "c":
        A = A + 1j * RNG.standard_normal(shape)
    A = A.astype(dtype)
    want = scipy.linalg.rq(A, mode=mode)
    got = la.rq(A, mode=mode)
    if mode == "r":
        want, got = (want,), (got,)
    tol = 1e-4 if dtype in (np.float32, np.complex64) else 1e-12
    for g, w in zip(got, want):
        assert g.shape == w.shape and g.dtype == w.dtype
        if w.size:
            assert np.abs(g - w).max() <= tol * max(1.0, np.abs(w).max())


def test_rq_stack_gradient_matches_per_matrix():
    A = RNG.standard_normal((3, 4, 6))
    W = RNG.standard_normal((3, 4, 6))

    def loss(X):
        R, Q = la.rq(X, mode="economic")
        return lad.sum((R @ Q[..., :, ::-1]) * W) + lad.sum(R[..., -1, -1] ** 2)
    g = lad.grad(loss)(A)
    for i in range(3):
        gi = lad.grad(lambda X: (lad.sum((la.rq(X, mode="economic")[0]
                                          @ la.rq(X, mode="economic")[1][:, ::-1]) * W[i])
                                 + la.rq(X, mode="economic")[0][-1, -1] ** 2))(A[i])
        assert _rel(g[i], gi) < 1e-12
    check_grads(loss, (A,), order=2)


def test_rq_errors():
    with pytest.raises(ValueError, match="rq: mode='raw'"):
        la.rq(np.eye(3), mode="raw")
    with pytest.raises(ValueError, match="rq"):
        la.rq(np.ones(3))
    with pytest.raises(ValueError, match="rq"):
        la.rq(np.array([[1.0, np.nan], [0.0, 1.0]]))
    A = RNG.standard_normal((2, 5))
    with pytest.raises(ValueError, match=r"first 3 rows of Q"):
        lad.grad(lambda X: lad.sum(la.rq(X)[1] ** 3))(A)
    # a rank-deficient a: the error names rq (its rule is qr's, through the reflection)
    S = np.array([[1.0, 2, 3], [2, 4, 6], [0, 0, 0]])      # an exactly zero pivot
    with pytest.raises(np.linalg.LinAlgError, match="^rq: R is singular"):
        lad.grad(lambda X: lad.sum(la.rq(X)[0] ** 2))(S)
    with pytest.raises(np.linalg.LinAlgError, match="^rq: R is singular"):
        lad.jvp(lambda X: la.rq(X)[0], (S,), (S,))
