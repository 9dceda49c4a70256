"""eigh, svd, eig at the inputs where the usual formulas divide by zero.

The registry tests (test_rules.py) cover distinct spectra in both modes at
second order.  Here: repeated eigenvalues and singular values, the identity,
rank deficiency, complex phases, and what the rules say when a loss is not
differentiable through a decomposition's free choices.  Every degenerate case
is checked against finite differences of the loss (and a closed form where
there is one), with GaugeWarning turned into an error so that "finite" cannot
hide behind a warning.
"""

import contextlib
import warnings

import numpy as np
import scipy.linalg
import pytest

import linalgad as lad
from linalgad import linalg as la
from linalgad.testing import check_grads
from linalgad.testing import matrices as M

DTYPES = (np.float64, np.complex128)


@contextlib.contextmanager
def no_gauge_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error", lad.GaugeWarning)
        yield


def mH(x):
    return np.conj(np.swapaxes(x, -1, -2))


def lower_cotangent(G):
    """The cotangent of the lower triangle eigh reads, from a full-matrix gradient G."""
    both = np.tril(G + mH(G))
    d = np.diagonal(G, 0, -2, -1).real
    return both - d[..., None] * np.eye(G.shape[-1])


def with_spectrum(rng, values, dtype, batch=()):
    """Q diag(values) Qᴴ, Q Haar-random, exactly Hermitian."""
    n = len(values)
    Q = M.random_orthogonal(rng, n, batch, np.complex128 if np.dtype(dtype).kind == "c"
                            else np.float64)
    A = (Q * np.asarray(values, float)) @ mH(Q)
    return np.ascontiguousarray(((A + mH(A)) / 2).astype(dtype))


def with_singular_values(rng, m, n, values, dtype, batch=()):
    cplx = np.dtype(dtype).kind == "c"
    base = np.complex128 if cplx else np.float64
    U = M.random_orthogonal(rng, m, batch, base)[..., :, :len(values)]
    V = M.random_orthogonal(rng, n, batch, base)[..., :, :len(values)]
    return np.ascontiguousarray(((U * np.asarray(values, float)) @ mH(V)).astype(dtype))


def rel(a, b):
    return np.linalg.norm(a - b) / np.linalg.norm(b)


def trace(X):
    return lad.sum(lad.real(lad.diagonal(X, 0, -2, -1)))


# -- eigh ----------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch", [(), (2,)])
@pytest.mark.parametrize("spectrum", [(1.0, 1.0, 2.0, -0.5), (0.3, 0.3, 0.3, 1.0),
                                      (1.0, 1.0, 1.0, 1.0)], ids=["double", "triple", "identity"])
def test_eigh_spectral_losses_at_repeated_eigenvalues(dtype, batch, spectrum):
    """sum f(w) and trace(V f(w) Vᴴ): finite, equal to f'(A) (projected), equal to FD."""
    A = with_spectrum(np.random.default_rng(0), spectrum, dtype, batch)

    def sum_f(A):
        return lad.sum(lad.exp(la.eigvalsh(A)))

    def matrix_function(A):
        w, V = la.eigh(A)
        return trace(lad.matmul(V * lad.expand_dims(lad.sin(w), -2), lad.mH(V)))

    w, V = np.linalg.eigh(A)
    expA = (V * np.exp(w)[..., None, :]) @ mH(V)
    cosA = (V * np.cos(w)[..., None, :]) @ mH(V)
    with no_gauge_warning():
        for loss, closed in ((sum_f, expA), (matrix_function, cosA)):
            g = lad.grad(loss)(A)
            assert np.all(np.isfinite(g))
            assert rel(g, lower_cotangent(closed)) < 1e-12
            check_grads(loss, (A,), order=1)


def test_eigh_eigenvectors_of_the_identity():
    """Every eigenvalue equal: sum(w²) + trace(V diag(w³) Vᴴ) = ‖A‖² + tr A³ at A = I."""
    A = np.eye(4)

    def loss(A):
        w, V = la.eigh(A)
        return lad.sum(w ** 2) + trace(lad.matmul(V * lad.expand_dims(w ** 3, -2), lad.mH(V)))

    with no_gauge_warning():
        g = lad.grad(loss)(A)
        check_grads(loss, (A,), order=1)
    assert rel(g, lower_cotangent(2 * A + 3 * A @ A)) < 1e-13


def test_eigh_projector_onto_a_repeated_eigenspace():
    """The spectral projector of a double eigenvalue is smooth: its gradient is exact."""
    rng = np.random.default_rng(1)
    A = with_spectrum(rng, (1.0, 1.0, 3.0, 4.0), np.complex128)
    G = rng.standard_normal((4, 4))

    def loss(A):
        w, V = la.eigh(A)
        P = lad.matmul(V[:, :2], lad.mH(V[:, :2]))
        return lad.sum(lad.real(P * G))

    with no_gauge_warning():
        check_grads(loss, (A,), order=1)


def test_second_derivatives_at_a_cluster_warn():
    """Differentiating eigh's, svd's or eig's reverse pass at a cluster (a traced
    cotangent: second order) misses the in-cluster curvature even for losses whose first
    derivatives are exact there, so it warns: Σ exp(wᵢ) at I (funmh is exact there:
    test_funmh.py), the projector of a double eigenvalue, Σ sᵢ² at I, Σ wᵢ² of eig at a
    double eigenvalue.  A loss linear in the values differentiates a constant cotangent:
    no warning (its Hessian is exact)."""
    rng = np.random.default_rng(21)
    T = rng.standard_normal((4, 4))
    A2 = with_spectrum(rng, (1.0, 1.0, 3.0, 4.0), np.float64)
    W = rng.standard_normal((4, 4))

    def projector(A):
        w, V = la.eigh(A)
        return lad.sum(W * lad.matmul(V[:, :2], lad.mT(V[:, :2])))

    cases = ((lambda a: lad.sum(lad.exp(la.eigvalsh(a))), np.eye(4), "eigh"),
             (projector, A2, "eigh"),
             (lambda a: lad.sum(la.svdvals(a) ** 2), np.eye(4), "svd"),
             (lambda a: lad.real(lad.sum(la.eigvals(a) ** 2)), A2, "eig"))
    for loss, A, op in cases:
        with pytest.warns(lad.GaugeWarning, match=f"{op}: second derivatives"):
            lad.hvp(loss, (A,), (T,))
        with no_gauge_warning():
            lad.grad(loss)(A)
    # a near tie above the clusters' threshold: first derivatives are accurate (ε/gap),
    # second ones lose ε/gap² (here 200 times the value) and warn
    A9 = with_spectrum(rng, (1.0, 1.0 + 1e-9, 3.0, 4.0), np.float64)
    with pytest.warns(lad.GaugeWarning, match="amplify rounding"):
        lad.hvp(cases[0][0], (A9,), (T,))
    with no_gauge_warning():
        lad.grad(cases[0][0])(A9)
        lad.hvp(cases[0][0], (with_spectrum(rng, (1.0, 1.1, 3.0, 4.0), np.float64),), (T,))
    c = np.array([0.7, 0.7, -1.2, 2.0])          # symmetric in the cluster's two values
    with no_gauge_warning():
        (h,) = lad.hvp(lambda a: lad.sum(c * la.eigvalsh(a)), (A2,), (T,))
    assert np.all(np.isfinite(h))


def test_eigh_basis_dependent_loss_at_a_tie_warns_and_stays_finite():
    A = with_spectrum(np.random.default_rng(2), (1.0, 1.0, 2.0), np.float64)
    W = np.random.default_rng(3).standard_normal((3, 3))

    def loss(A):
        V = la.eigh(A)[1]
        return lad.sum(W * lad.matmul(V[:, :1], lad.mH(V[:, :1])))

    with pytest.warns(lad.GaugeWarning, match="eigh"):
        g = lad.grad(loss)(A)
    assert np.all(np.isfinite(g))


def test_eigh_loss_that_singles_out_one_of_equal_eigenvalues_warns():
    A = with_spectrum(np.random.default_rng(4), (2.0, 2.0, -1.0), np.float64)
    with pytest.warns(lad.GaugeWarning):
        g = lad.grad(lambda A: la.eigvalsh(A)[-1])(A)
    assert np.all(np.isfinite(g))


def test_eigh_matrix_function_against_non_identity_weights_warns():
    """<G, f(A)> at a repeated eigenvalue: not determined by (w̄, V̄); said, not guessed."""
    A = with_spectrum(np.random.default_rng(5), (1.0, 1.0, 2.0), np.float64)
    G = np.random.default_rng(6).standard_normal((3, 3))
    G = G + G.T

    def loss(A):
        w, V = la.eigh(A)
        return lad.sum(G * lad.matmul(V * lad.expand_dims(lad.exp(w), -2), lad.mH(V)))

    with pytest.warns(lad.GaugeWarning):
        lad.grad(loss)(A)


def test_eigh_phase_dependent_loss_raises():
    A = M.random_symmetric(np.random.default_rng(7), 3, (), np.complex128)
    with pytest.raises(ValueError, match="eigh: the loss depends on the phase"):
        lad.grad(lambda A: lad.sum(lad.real(la.eigh(A)[1])))(A)


def test_eigh_phase_invariant_complex_loss_is_exact():
    rng = np.random.default_rng(8)
    A = M.random_symmetric(rng, 4, (2,), np.complex128)
    W = rng.standard_normal((4, 4))
    with no_gauge_warning():
        check_grads(lambda A: lad.sum(W * lad.abs(la.eigh(A)[1]) ** 2), (A,), order=2)


def test_eigh_subset_by_index_and_eigvals_only():
    rng = np.random.default_rng(9)
    A = M.random_symmetric(rng, 5, (), np.float64)
    w_all, V_all = np.linalg.eigh(A)
    w, V = la.eigh(A, subset_by_index=(1, 3))
    np.testing.assert_allclose(w, w_all[1:4], atol=1e-13)
    np.testing.assert_allclose(np.abs(V), np.abs(V_all[:, 1:4]), atol=1e-12)
    np.testing.assert_allclose(la.eigh(A, eigvals_only=True), w_all, atol=1e-13)
    np.testing.assert_allclose(la.eigh(A, lower=False)[0], np.linalg.eigvalsh(A, UPLO="U"),
                               atol=1e-13)
    check_grads(lambda A: lad.sum(la.eigh(A, subset_by_index=(1, 3))[0] ** 3), (A,), order=2)
    with pytest.raises(ValueError, match="subset_by_index"):
        la.eigh(A, subset_by_index=(2, 7))


def test_eigh_subset_by_value_and_scipy_keywords():
    """SciPy's subset_by_value (lo < w <= hi), driver and overwrite_a: SciPy's results, a
    gradient through the pairs kept, the count decided again on every jit replay."""
    import scipy.linalg
    rng = np.random.default_rng(19)
    A = M.random_symmetric(rng, 6, (), np.float64)
    w_all = np.linalg.eigvalsh(A)
    lo, hi = (w_all[1] + w_all[2]) / 2, w_all[4]          # keeps w[2], w[3], w[4] (hi: closed)
    w, V = la.eigh(A, subset_by_value=(lo, hi), driver="evr", overwrite_a=True)
    ws, Vs = scipy.linalg.eigh(A, subset_by_value=(lo, hi), driver="evr")
    np.testing.assert_allclose(w, ws, atol=1e-13)
    np.testing.assert_allclose(np.abs(V), np.abs(Vs), atol=1e-12)
    assert la.eigh(A, eigvals_only=True, subset_by_value=(9.0, 10.0)).shape == (0,)
    hi = (w_all[4] + w_all[5]) / 2        # away from the ends: the count holds under steps
    check_grads(lambda A: lad.sum(la.eigh(A, subset_by_value=(lo, hi))[0] ** 3), (A,), order=2)
    # a stack: the same count in every matrix, else a clear error
    stack = np.stack([A, A + 1e-3 * np.eye(6)])
    assert la.eigh(stack, eigvals_only=True, subset_by_value=(lo, hi)).shape == (2, 3)
    with pytest.raises(ValueError, match="different numbers of eigenpairs"):
        la.eigh(np.stack([A, A + 2.0 * np.eye(6)]), subset_by_value=(lo, hi))
    # jit: recorded with three pairs kept, replayed, recorded again when the count changes
    def loss(A):
        return lad.sum(la.eigh(A, eigvals_only=True, subset_by_value=(lo, hi)))
    f, vg = lad.jit(lad.value_and_grad(loss)), lad.value_and_grad(loss)
    for X in (A, A + 1e-3 * np.eye(6), A + (hi - lo) * np.eye(6), A):
        (v, g), (v0, g0) = f(X), vg(X)
        assert v == pytest.approx(v0, abs=1e-13) and np.allclose(g, g0, atol=1e-13)
    # eigvalsh takes SciPy's keywords too
    np.testing.assert_allclose(la.eigvalsh(A, subset_by_value=(lo, hi), driver="evd"),
                               scipy.linalg.eigvalsh(A, subset_by_value=(lo, hi)), atol=1e-13)
    Bm = M.random_spd(rng, 6, (), np.float64)
    np.testing.assert_allclose(la.eigvalsh(A, b=Bm, type=2, lower=False),
                               scipy.linalg.eigvalsh(A, Bm, type=2, lower=False), atol=1e-12)
    with pytest.raises(ValueError, match="driver"):
        la.eigh(A, driver="gesdd")
    with pytest.raises(ValueError, match="generalized"):
        la.eigh(A, driver="gvd")
    with pytest.raises(ValueError, match="not both"):
        la.eigh(A, subset_by_index=(0, 1), subset_by_value=(lo, hi))


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.complex64, np.complex128])
def test_eigh_generalized_matches_scipy(dtype):
    """eigh(a, b, type=t): SciPy's values and normalization, one triangle of each read."""
    import scipy.linalg

    rng = np.random.default_rng(21)
    n = 5
    A = M.random_symmetric(rng, n, (), dtype)
    B = M.random_spd(rng, n, (), dtype, cond=3.0)
    tol = 1e-4 if np.dtype(dtype) in (np.dtype(np.float32), np.dtype(np.complex64)) else 1e-11
    for t in (1, 2, 3):
        for lower in (True, False):
            junk = (np.triu if lower else np.tril)(np.full((n, n), 9.0), 1 if lower else -1)
            w, V = la.eigh(A + junk.astype(dtype), B + junk.astype(dtype), lower=lower, type=t)
            ws, Vs = scipy.linalg.eigh(A, B, type=t)
            assert w.dtype == np.zeros(0, dtype).real.dtype and V.dtype == np.dtype(dtype)
            np.testing.assert_allclose(w, ws, rtol=tol, atol=tol)
            Bn = np.linalg.inv(B) if t == 3 else B          # SciPy's normalization
            np.testing.assert_allclose(np.conj(V.T) @ Bn @ V, np.eye(n), atol=10 * tol)
            # columns agree up to phase: compare V diag(c) Vᴴ
            c = np.arange(1.0, n + 1)
            np.testing.assert_allclose((V * c) @ np.conj(V.T), (Vs * c) @ np.conj(Vs.T),
                                       atol=10 * tol)
    np.testing.assert_allclose(la.eigh(A, b=B, eigvals_only=True), scipy.linalg.eigh(
        A, B, eigvals_only=True), rtol=tol, atol=tol)


def test_eigh_generalized_stacks_and_errors():
    import scipy.linalg

    rng = np.random.default_rng(22)
    A = M.random_symmetric(rng, 4, (3,), np.float64)
    B = M.random_spd(rng, 4, (), np.float64)
    w = la.eigh(A, B, eigvals_only=True)                     # one b for the whole stack
    assert w.shape == (3, 4)
    for i in range(3):
        np.testing.assert_allclose(w[i], scipy.linalg.eigh(A[i], B, eigvals_only=True),
                                   atol=1e-12)
    check_grads(lambda A, B: lad.sum(la.eigh(A, B, eigvals_only=True) ** 2), (A, B), order=2)
    np.testing.assert_allclose(la.eigvalsh(A, B), w, atol=1e-13)       # SciPy's eigvalsh(a, b)
    with pytest.raises(ValueError, match="type must be 1, 2 or 3"):
        la.eigh(A, B, type=4)
    with pytest.raises(ValueError, match="type=2 needs b"):
        la.eigh(A, type=2)
    with pytest.raises(TypeError, match="b given twice"):
        la.eigh(A, B, b=B)
    with pytest.raises(ValueError, match="same n"):
        la.eigh(A, np.eye(5))
    with pytest.raises(np.linalg.LinAlgError, match="eigh: b is not positive definite"):
        la.eigh(A, -np.eye(4))


def test_eigh_untraced_values_only_and_float32():
    A = M.random_symmetric(np.random.default_rng(10), 4, (3,), np.float32)
    w = la.eigvalsh(A)
    assert w.dtype == np.float32
    np.testing.assert_allclose(w, np.linalg.eigvalsh(A), rtol=1e-6)
    assert la.eigh(A).eigenvectors.dtype == np.float32
    g = lad.grad(lambda A: lad.sum(la.eigvalsh(A) ** 2))(A)
    assert g.dtype == np.float32


# -- svd -----------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch", [(), (2,)])
def test_nuclear_norm_at_repeated_singular_values(dtype, batch):
    A = with_singular_values(np.random.default_rng(11), 3, 3, (2.0, 2.0, 1.0), dtype, batch)
    U, s, Vh = np.linalg.svd(A)
    with no_gauge_warning():
        g = lad.grad(lambda A: lad.sum(la.svdvals(A)))(A)
        check_grads(lambda A: lad.sum(la.svdvals(A)), (A,), order=1)
    assert rel(g, U @ Vh) < 1e-12


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,values", [((3, 3), (2.0, 2.0, 1.0)), ((4, 3), (1.5, 1.5, 1.5)),
                                          ((3, 5), (1.0, 0.5, 0.5))])
def test_polar_factor_at_repeated_singular_values(dtype, shape, values):
    """U Vᴴ is smooth where singular values repeat (not where they vanish): exact."""
    rng = np.random.default_rng(12)
    A = with_singular_values(rng, *shape, values, dtype)
    W = rng.standard_normal(shape)

    def loss(A):
        U, s, Vh = la.svd(A, full_matrices=False)
        return lad.sum(lad.real(W * lad.matmul(U, Vh)))

    with no_gauge_warning():
        check_grads(loss, (A,), order=1)


def test_svd_at_the_identity():
    A = np.eye(3)
    with no_gauge_warning():
        g = lad.grad(lambda A: lad.sum(la.svdvals(A) ** 2))(A)
        h = lad.grad(lambda A: lad.sum(la.svdvals(A)))(A)
    assert rel(g, 2 * A) < 1e-14 and rel(h, A) < 1e-14


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(4, 4), (5, 3), (3, 5)])
def test_reconstruction_through_rank_deficient_svd(dtype, shape):
    """<W, U diag(s) Vᴴ> = <W, A>: gradient W, also at rank 2 (numerically zero s)."""
    rng = np.random.default_rng(13)
    m, n = shape
    A = M.random_rank_deficient(rng, m, n, 2, (), dtype)
    W = M.random_general(rng, max(m, n), (), dtype)[:m, :n]

    def loss(A):
        U, s, Vh = la.svd(A, full_matrices=False)
        return lad.sum(lad.real(lad.conj(W) * lad.matmul(U * lad.expand_dims(s, -2), Vh)))

    with no_gauge_warning():
        g = lad.grad(loss)(A)
    assert rel(g, W) < 1e-8


def test_exact_zero_singular_values_stay_finite():
    A = np.zeros((4, 3))
    A[:2, :2] = [[3.0, 1.0], [1.0, 2.0]]
    g = lad.grad(lambda A: lad.sum(la.svdvals(A) ** 2))(A)
    assert rel(g, 2 * A) < 1e-14
    h = lad.grad(lambda A: lad.sum(la.svdvals(A)))(A)
    assert np.all(np.isfinite(h))


def test_svd_complex_phase_invariant_and_phase_dependent():
    rng = np.random.default_rng(14)
    A = M.random_general(rng, 4, (2,), np.complex128)[..., :, :3]
    W = rng.standard_normal((4, 3))

    def invariant(A):
        U, s, Vh = la.svd(A, full_matrices=False)
        return lad.sum(W * lad.abs(U) ** 2) + lad.sum(s)

    with no_gauge_warning():
        check_grads(invariant, (A,), order=2)
    with pytest.raises(ValueError, match="svd: the loss depends on the phase"):
        lad.grad(lambda A: lad.sum(lad.real(la.svd(A, full_matrices=False)[0])))(A)


def test_svd_full_matrices_completion_is_not_differentiable():
    A = M.random_general(np.random.default_rng(15), 5, (), np.float64)[:, :3]
    with pytest.raises(ValueError, match="completion"):
        lad.grad(lambda A: lad.sum(la.svd(A)[0][:, 3:]))(A)
    A = A.T.copy()
    with pytest.raises(ValueError, match="rows of Vh"):
        lad.grad(lambda A: lad.sum(la.svd(A)[2][3:, :]))(A)


def test_svd_reconstruction_at_repeated_nonzero_values_warns():
    """The documented limit: <G, U S Vᴴ> at s_1 = s_2 > 0 is not recoverable from (Ū, s̄, V̄)."""
    rng = np.random.default_rng(16)
    A = with_singular_values(rng, 3, 3, (2.0, 2.0, 1.0), np.float64)
    G = rng.standard_normal((3, 3))

    def loss(A):
        U, s, Vh = la.svd(A)
        return lad.sum(G * lad.matmul(U * lad.expand_dims(s, -2), Vh))

    with pytest.warns(lad.GaugeWarning, match="svd"):
        g = lad.grad(loss)(A)
    assert np.all(np.isfinite(g))


def test_spectral_norm_at_a_tie_warns():
    A = with_singular_values(np.random.default_rng(17), 3, 3, (2.0, 2.0, 1.0), np.float64)
    with pytest.warns(lad.GaugeWarning):
        g = lad.grad(lambda A: la.svdvals(A)[0])(A)
    assert np.all(np.isfinite(g))


def test_svd_conventions():
    rng = np.random.default_rng(18)
    A = M.random_general(rng, 5, (2,), np.float64)[..., :, :3]
    U, s, Vh = la.svd(A)
    assert U.shape == (2, 5, 5) and s.shape == (2, 3) and Vh.shape == (2, 3, 3)
    np.testing.assert_allclose(s, np.linalg.svd(A, compute_uv=False), rtol=1e-13)
    np.testing.assert_allclose(la.svd(A, compute_uv=False), s, rtol=1e-13)
    np.testing.assert_allclose(la.svdvals(A), s, rtol=1e-13)
    r = la.svd(A, full_matrices=False)
    assert r.U.shape == (2, 5, 3) and r.Vh.shape == (2, 3, 3)
    np.testing.assert_allclose((r.U * r.S[..., None, :]) @ r.Vh, A, atol=1e-13)


# -- eig -----------------------------------------------------------------------------------

def test_eig_symmetric_function_at_a_repeated_eigenvalue():
    rng = np.random.default_rng(19)
    X = M.random_general(rng, 3, (), np.float64, cond=3.0)
    A = X @ np.diag([1.0, 1.0, 3.0]) @ np.linalg.inv(X)

    def loss(A):
        return lad.sum(lad.real(lad.exp(la.eigvals(A))))

    with no_gauge_warning():
        g = lad.grad(loss)(A)
        check_grads(loss, (A,), order=1)
    expA_T = (X @ np.diag(np.exp([1.0, 1.0, 3.0])) @ np.linalg.inv(X)).T
    assert rel(g, expA_T) < 1e-8


def test_eig_outputs_are_complex_and_match_numpy():
    rng = np.random.default_rng(20)
    A = M.random_symmetric(rng, 4, (), np.float64)          # real eigenvalues: NumPy gives float
    w, V = la.eig(A)
    assert w.dtype == np.complex128 and V.dtype == np.complex128
    np.testing.assert_allclose(np.sort(w.real), np.linalg.eigvalsh(A), atol=1e-12)
    np.testing.assert_allclose(A @ V, V * w, atol=1e-12)
    assert la.eigvals(A.astype(np.float32)).dtype == np.complex64


def test_eig_phase_dependent_loss_raises():
    A = M.random_general(np.random.default_rng(21), 3, (), np.complex128)
    with pytest.raises(ValueError, match="eig: the loss depends on the phase"):
        lad.grad(lambda A: lad.sum(lad.real(la.eig(A)[1])))(A)


def test_eig_real_input_gets_real_gradient_through_a_conjugate_pair():
    A = np.array([[1.0, 2.0, 0.5], [-2.0, 1.0, 0.3], [0.1, 0.2, 3.0]])
    c = np.array([0.3, -1.2, 0.7])

    def loss(A):
        w, V = la.eig(A)
        return lad.sum(c * lad.imag(w)) + lad.sum(lad.abs(V[0]) ** 2)

    g = lad.grad(loss)(A)
    assert g.dtype == np.float64
    check_grads(loss, (A,), order=2)


# -- numpy dispatch ------------------------------------------------------------------------

def test_numpy_spectral_functions_route_to_linalgad():
    A = M.random_symmetric(np.random.default_rng(22), 3, (), np.float64)
    g = lad.grad(lambda A: np.sum(np.linalg.eigvalsh(A) ** 2) + np.sum(np.linalg.svd(A)[1])
                 + np.sum(np.real(np.linalg.eigvals(A))))(A)
    w, V = np.linalg.eigh(A)
    U, s, Vh = np.linalg.svd(A)
    want = lower_cotangent(2 * A) + U @ Vh + np.eye(3)
    assert rel(g, want) < 1e-12


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.complex64, np.complex128])
def test_large_single_matrices_by_scipy_agree_with_numpy_path(dtype, monkeypatch):
    """From SCIPY_EIGH_N / SCIPY_SVD_N on, one matrix is decomposed by SciPy's syevd/heevd
    and gesdd (Fortran-ordered factors); values, the triangle read and the gradients of
    gauge-invariant losses agree with NumPy's kernels."""
    from linalgad import backend

    n = backend.SCIPY_EIGH_N + 3
    rng = np.random.default_rng(5)
    cplx = np.dtype(dtype).kind == "c"
    X = rng.standard_normal((n, n)) + (1j * rng.standard_normal((n, n)) if cplx else 0)
    X = X.astype(dtype)
    T = (rng.standard_normal((n + 7, n)) + (1j if cplx else 0)).astype(dtype)    # tall
    tol = 2e-3 if np.dtype(dtype).itemsize <= 8 else 1e-9
    g = rng.standard_normal(n)
    W = rng.standard_normal((n, n))

    def eigh_loss(a, lower):
        w, V = la.eigh(a, lower=lower)
        return lad.sum(g * w) + lad.sum(W * lad.real(V * g @ lad.mH(V)))

    def svd_loss(a, full):
        U, s, Vh = la.svd(a, full_matrices=full)
        k = s.shape[-1]
        return lad.sum(g[:k] * s) + lad.sum(lad.real(U[:, :k] * g[:k] @ Vh[:k]) ** 2)

    cases = [(eigh_loss, X, lower) for lower in (True, False)]
    cases += [(svd_loss, a, full) for a in (T, T.T.copy()) for full in (False, True)]
    results = []
    for threshold in (None, 10**9):              # the SciPy kernels, then NumPy's
        if threshold:
            monkeypatch.setattr(backend, "SCIPY_EIGH_N", threshold)
            monkeypatch.setattr(backend, "SCIPY_SVD_N", threshold)
        results.append([lad.value_and_grad(f)(a, opt) for f, a, opt in cases])
    for (v1, g1), (v0, g0) in zip(*results):
        assert g1.dtype == g0.dtype == np.dtype(dtype)
        assert abs(v1 - v0) <= tol * abs(v0)
        assert np.abs(g1 - g0).max() <= tol * np.abs(g0).max()
    # the forward itself: eigenvalues of the triangle read, singular values, orthonormality
    for lower in (True, False):
        w, V = la.eigh(X, lower=lower)
        want = np.linalg.eigvalsh(X, UPLO="L" if lower else "U")
        assert np.abs(w - want).max() <= tol * np.abs(want).max()
        assert np.abs(mH(V) @ V - np.eye(n)).max() <= tol
    U, s, Vh = la.svd(T, full_matrices=True)
    assert U.shape == (n + 7, n + 7) and Vh.shape == (n, n)
    np.testing.assert_allclose(s, np.linalg.svd(T, compute_uv=False), rtol=tol, atol=0)
    assert np.abs((U[:, :n] * s) @ Vh - T).max() <= tol * np.abs(T).max() * 10
    np.testing.assert_allclose(la.svdvals(T), s, rtol=tol, atol=0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1, 1), (2, 2), (7, 7), (40, 40), (5, 6, 6), (30, 4, 4)])
def test_eigvals_of_real_input_backward_in_real_arithmetic(dtype, shape):
    """A real A's eigenvalue cotangent Re(V⁻ᴴ diag(w̄) Vᴴ) by LAPACK's real eigenvector
    matrix (pairs as (Re v, Im v)) and a real solve equals the complex closed form, with
    complex-conjugate pairs, real eigenvalues only, and stacks mixing both."""
    from linalgad.rules import eig as E

    rng = np.random.default_rng(shape[-1])
    A = rng.standard_normal(shape).astype(dtype)
    if shape == (7, 7):
        A = np.triu(A) + np.diag(np.arange(7.0)).astype(dtype)     # real eigenvalues only
    c = rng.standard_normal(shape[:-1]) + 1j * rng.standard_normal(shape[:-1])
    w, V = np.linalg.eig(A.astype(np.float64))
    Vh = mH(V.astype(complex))
    want = np.linalg.solve(Vh, np.conj(c)[..., :, None] * Vh).real       # V⁻ᴴ diag(c̄) Vᴴ
    w32, V32 = la.eig(A)
    assert E._conjugate_pairs(A, w32, V32) is not None     # the real path is the one taken
    got = lad.grad(lambda a: lad.sum(lad.real(c * la.eigvals(a))))(A)
    assert got.dtype == np.dtype(dtype)
    tol = 1e-3 if dtype == np.float32 else 1e-10
    assert np.abs(got - want).max() <= tol * np.abs(want).max()
    # and the layouts it must not take: complex input, an eigenvector cotangent (complex)
    assert E._conjugate_pairs(A.astype(np.complex128), *la.eig(A.astype(np.complex128))) is None


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n,kind", [(72, "pairs"), (90, "pairs"), (80, "real"),
                                    (75, "cluster")])
def test_eig_eigenvector_backward_of_real_input_in_real_arithmetic(dtype, n, kind):
    """From order REAL_VECTORS_N a real A's eig reverse pass runs its products and solve
    in real arithmetic (Y = Pᴴ(Vrᵀ Z), Ā = Vr⁻ᵀ Re(P⁻ᴴ W Pᴴ) Vrᵀ): it must equal the
    complex form for (w̄, V̄), V̄ alone and w̄ alone, with complex pairs, real eigenvalues
    only, and a cluster (the gap terms inside it dropped the same way)."""
    from linalgad.rules import eig as E

    assert n >= E.REAL_VECTORS_N
    rng = np.random.default_rng(n)
    A = rng.standard_normal((n, n))
    if kind == "real":
        A = np.triu(A) + np.diag(np.arange(float(n)))
    if kind == "cluster":                   # a double eigenvalue 3 with a 2-D eigenspace
        S_ = rng.standard_normal((n, n)) / np.sqrt(n) + 2 * np.eye(n)
        d = rng.standard_normal(n) * 4
        d[:2] = 3.0
        A = S_ @ np.diag(d) @ np.linalg.inv(S_)
    A = A.astype(dtype)
    w, V = la.eig(A)
    assert E._conjugate_pairs(A, w, V) is not None          # the real path is the one taken
    from linalgad.rules import _spectral as S
    assert (S.degenerate_pairs(w) is not None) == (kind == "cluster")
    Wt = rng.standard_normal((n, n))
    wb = (rng.standard_normal(n) + 1j * rng.standard_normal(n)).astype(w.dtype)
    if kind == "cluster":
        wb[np.abs(w - 3) < 1e-2] = 0.7                # symmetric in the cluster
    tol = 2e-3 if dtype == np.float32 else 1e-9
    for cts in ((wb, (2 * Wt * V).astype(V.dtype)), (None, (2 * Wt * V).astype(V.dtype)),
                (wb, None)):
        if kind == "cluster" and cts[1] is not None:
            # a loss through the cluster's vectors must not depend on the basis: |v|² of
            # the other columns only
            Wc = Wt.copy()
            Wc[:, np.abs(w - 3) < 1e-2] = 0
            cts = (cts[0], (2 * Wc * V).astype(V.dtype))
        with warnings.catch_warnings():
            # (float32 splits the double eigenvalue enough for the cluster test to see a
            # basis-dependent loss: both forms warn alike; their arithmetic is compared)
            warnings.simplefilter("ignore", S.GaugeWarning)
            got = E.eig_vjp(cts, (True,), (w, V), None, A)[0]
            pairs = E._conjugate_pairs
            E._conjugate_pairs = lambda *a: None            # the complex form
            try:
                want = E.eig_vjp(cts, (True,), (w, V), None, A)[0]
            finally:
                E._conjugate_pairs = pairs
        assert got.dtype == want.dtype == np.dtype(dtype)
        assert np.abs(got - want).max() <= tol * max(np.abs(want).max(), 1.0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1, 1), (2, 2), (7, 7), (40, 40), (5, 6, 6)])
def test_eig_forward_mode_of_real_input_in_real_arithmetic(dtype, shape):
    """Forward mode for real A and Ȧ: Z = V⁻¹ Ȧ V as P⁻¹ (Vr⁻¹ Ȧ Vr) P (a real solve and
    O(n²) pair transforms) gives the same (ẇ, V̇) as the complex solve."""
    from linalgad.rules import eig as E

    rng = np.random.default_rng(shape[-1] + 1)
    A = rng.standard_normal(shape).astype(dtype)
    if shape == (7, 7):
        A = np.triu(A) + np.diag(np.arange(7.0)).astype(dtype)     # real eigenvalues only
    A_dot = rng.standard_normal(shape).astype(dtype)
    w, V = la.eig(A)
    assert E._conjugate_pairs(A, w, V) is not None      # the real path is the one taken
    w_dot, V_dot = E.eig_jvp((A_dot,), (w, V), None, A)
    # the complex closed form: Z = V⁻¹ Ȧ V, ẇ = diag Z, V̇ = V C₀ − V diag(Re diag(Vᴴ V C₀))
    Z = np.linalg.solve(V, A_dot.astype(V.dtype) @ V)
    assert w_dot.dtype == V_dot.dtype == V.dtype
    tol = 1e-3 if dtype == np.float32 else 1e-10
    want_w = np.diagonal(Z, 0, -2, -1)
    assert np.abs(w_dot - want_w).max() <= tol * np.abs(want_w).max()
    gaps = w[..., None, :] - w[..., :, None]
    E_ = np.where(np.eye(shape[-1], dtype=bool), 0, 1 / np.where(gaps == 0, 1, gaps))
    T = V @ (E_ * Z)
    want_V = T - V * np.sum(np.conj(V) * T, axis=-2).real[..., None, :]
    assert np.abs(V_dot - want_V).max() <= tol * max(np.abs(want_V).max(), 1)


def _full_mask(w, relative=False):
    """degenerate_pairs' definition, the k × k gap matrix computed outright."""
    from linalgad.rules._spectral import gap_tol
    aw = np.abs(w)
    gap = np.abs(w[..., None, :] - w[..., :, None])
    scale = (np.maximum(aw[..., None, :], aw[..., :, None]) if relative
             else aw.max(axis=-1, keepdims=True)[..., None])
    return (gap <= gap_tol(w.dtype) * scale) & ~np.eye(w.shape[-1], dtype=bool)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("relative", [False, True])
def test_degenerate_pairs_of_one_sorted_vector(dtype, relative):
    """One sorted vector (eigh's ascending values, the SVD's descending ones) takes a
    short test, the largest |w| read off the ends: it must agree with the gap matrix on
    ascending and descending, signed and non-negative values, exact and near ties at
    either end and inside, ties just outside the tolerance, and zeros."""
    from linalgad.rules._spectral import degenerate_pairs, gap_tol

    rng = np.random.default_rng(11)
    tol = gap_tol(np.dtype(dtype))
    cases = []
    for k in (2, 3, 8, 64):
        for _ in range(40):
            w = np.sort(rng.standard_normal(k) * rng.choice([1e-3, 1.0, 1e3]))
            if rng.random() < 0.4:
                w = np.abs(w)
            if rng.random() < 0.6:                 # a tie or a near miss somewhere
                i = rng.integers(k - 1)
                w[i + 1] = w[i] * (1 + tol * rng.choice([0.0, 0.5, 0.99, 1.5, 3.0]))
            w = np.sort(w).astype(dtype)
            cases.append(w)
            cases.append(w[::-1].copy())           # descending
        cases.append(np.zeros(k, dtype))
    hits = 0
    for w in cases:
        want = _full_mask(w, relative)
        got = degenerate_pairs(w, relative=relative, ordered=True)
        general = degenerate_pairs(w[None], relative=relative, ordered=True)   # 2-D path
        assert (got is None) == (not want.any()) == (general is None)
        if got is not None:
            np.testing.assert_array_equal(got, want)
            hits += 1
    assert 0.2 * len(cases) < hits < 0.8 * len(cases)      # both answers exercised


@pytest.mark.parametrize("dtype", [np.complex64, np.complex128, np.float64])
def test_degenerate_pairs_quick_test_never_misses_a_pair(dtype):
    """The unordered test sorts by real part and compares near neighbours only: it must
    say "no pair" exactly when the full gap matrix has none — conjugate pairs (equal real
    parts), clusters several places apart in that order, imaginary spectra (every real
    part equal: the quick test gives up), stacks."""
    from linalgad.rules._spectral import degenerate_pairs

    rng = np.random.default_rng(3)
    tol = 10 * np.finfo(dtype).eps ** (2 / 3)
    cases = []
    for k in (2, 3, 5, 9, 16):
        for _ in range(30):
            re = rng.choice([0.0, 1.0, -0.5], size=k) if rng.random() < 0.5 \
                else rng.standard_normal(k)
            im = rng.standard_normal(k) if np.dtype(dtype).kind == "c" else 0
            w = (re + 1j * im) if np.dtype(dtype).kind == "c" else re
            if np.dtype(dtype).kind == "c" and rng.random() < 0.5:
                w[1::2] = np.conj(w[0::2][: k // 2])          # conjugate pairs
            if rng.random() < 0.5:                             # a near-tie somewhere
                i, j = rng.choice(k, 2, replace=False)
                w[i] = w[j] * (1 + tol * rng.choice([0.01, 100]))
            cases.append(w.astype(dtype))
        cases.append((1j * np.linspace(-1, 1, k)).astype(dtype) if np.dtype(dtype).kind == "c"
                     else np.zeros(k, dtype))
    from linalgad.rules._spectral import _no_close_pair, gap_tol

    said_none = 0
    for w in cases:
        want = _full_mask(w)
        delta = gap_tol(w.dtype) * np.abs(w).max(axis=-1, keepdims=True)
        quick = _no_close_pair(w, delta)
        assert not (quick and want.any())           # "no pair" only when there is none
        said_none += quick
    assert said_none >= len(cases) // 4            # and it does say so (not vacuous)
    # through degenerate_pairs, where the quick test is used (large stacks)
    for k in (16, 32):
        ws = np.stack([c for c in cases if c.shape[-1] == 16][:64]) if k == 16 else \
            np.linalg.eigvals(rng.standard_normal((40, 32, 32))).astype(
                np.result_type(dtype, np.complex64))
        if np.dtype(dtype).kind != "c":
            ws = ws.real.astype(dtype) if k == 32 else ws
        tied = ws.copy()
        tied[5, 3] = tied[5, 7] * (1 + tol / 100)            # one near-tie in one matrix
        for w in (ws, tied):
            want = _full_mask(w)
            got = degenerate_pairs(w)
            assert (got is None) == (not want.any())
            if got is not None:
                np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.complex64, np.complex128])
def test_eig_takes_scipys_signature(dtype):
    """eig(a, b, left, right, homogeneous_eigvals, overwrite_*) and eigvals(a, b): SciPy's
    return forms; the pencil's values and vectors equal SciPy's (QZ) up to order and phase."""
    import scipy.linalg
    rng = np.random.default_rng(23)
    n = 4
    A = M.random_general(rng, n, (), dtype)
    B = M.random_general(rng, n, (), dtype, cond=3.0)
    tol = 1e-4 if np.dtype(dtype) in (np.dtype(np.float32), np.dtype(np.complex64)) else 1e-10
    cdt = np.result_type(dtype, np.complex64)

    def order(w):
        return np.lexsort((np.round(w.imag, 3), np.round(w.real, 3)))

    for b in (None, B):
        w, U, V = la.eig(A, b, left=True, overwrite_a=True, overwrite_b=True)
        ws, Us, Vs = scipy.linalg.eig(A, b, left=True)
        i, j = order(w), order(ws)
        assert w.dtype == U.dtype == V.dtype == cdt
        np.testing.assert_allclose(w[i], ws[j], rtol=tol, atol=tol)
        for X, Xs in ((U, Us), (V, Vs)):
            np.testing.assert_allclose(np.abs(np.sum(np.conj(X[:, i]) * Xs[:, j], axis=0)), 1,
                                       atol=tol)
        np.testing.assert_allclose(np.sort_complex(la.eigvals(A, b)), np.sort_complex(w),
                                   rtol=tol, atol=tol)
    wl, Ul = la.eig(A, left=True, right=False)
    np.testing.assert_allclose(Ul, la.eig(A, left=True)[1], rtol=tol, atol=tol)
    np.testing.assert_allclose(la.eig(A, right=False), la.eigvals(A), rtol=tol, atol=tol)
    h = la.eig(A, B, homogeneous_eigvals=True)[0]
    assert h.shape == (2, n) and np.all(h[1] == 1)
    assert la.eigvals(np.stack([A, A]), homogeneous_eigvals=True).shape == (2, 2, n)


def test_eig_left_and_pencil_gradients():
    """The left eigenvectors and the pencil are compositions (inverse, normalization, the
    solve b⁻¹ a): exact to second order, gradients reaching b; a stack; bad b."""
    rng = np.random.default_rng(24)
    A = M.random_general(rng, 4, (2,), np.complex128)
    B = M.random_general(rng, 4, (2,), np.complex128, cond=3.0)
    W = rng.standard_normal((4, 4))
    check_grads(lambda A, B: lad.sum(W * lad.abs(la.eig(A, B, left=True)[1]) ** 2)
                + lad.sum(lad.real(la.eigvals(A, B)) ** 2), (A, B), order=2)
    # the eigenvalues' condition numbers |u_i^H v_i|^-1, a loss that needs both sides
    check_grads(lambda A: lad.sum(1 / lad.abs(lad.sum(lad.conj(la.eig(A, left=True)[1])
                                                      * la.eig(A)[1], axis=-2))), (A,), order=2)
    with pytest.raises(np.linalg.LinAlgError, match="eig: b is singular"):
        la.eig(A[0], np.zeros((4, 4)))
    with pytest.raises(ValueError, match="same n"):
        la.eigvals(A[0], np.eye(3))


@pytest.mark.parametrize("dtype", [np.float64, np.complex128])
def test_a_matrix_function_rebuilt_from_eig_has_its_gradient(dtype):
    """Re tr(V f(w) V⁻¹) = Re tr f(A): the vector terms of the cotangent cancel exactly,
    and what reached eig's phase test was rounding, as large "in phase" as it is in
    size — the test raised.  Judged against the loss's value cotangent too, it passes,
    and the gradient is f'(A)ᵀ."""
    rng = np.random.default_rng(7)
    A = M.random_general(rng, 4, (), dtype)
    for f, df in ((lambda w: w, lambda a: np.eye(4)), (lad.exp, scipy.linalg.expm)):
        def loss(a):
            w, V = la.eig(a)
            return lad.real(lad.trace((V * f(w)[None, :]) @ la.inv(V)))
        g = lad.grad(loss)(A)
        want = np.conj(df(A)).T
        np.testing.assert_allclose(g, want, rtol=1e-11, atol=1e-12 * np.abs(want).max())
    # a loss that does depend on the phases still raises, with a value cotangent beside it
    with pytest.raises(ValueError, match="phase"):
        lad.grad(lambda a: lad.sum(lad.real(la.eig(a)[0])) + lad.sum(lad.real(la.eig(a)[1])))(A)


def _fd_hessian(f, x, h=1e-5):
    g = lad.grad(f)
    cols = []
    for k in range(x.size):
        e = np.zeros(x.size)
        e[k] = h
        e = e.reshape(x.shape)
        cols.append(((g(x + e) - g(x - e)) / (2 * h)).ravel())
    return np.stack(cols, axis=1)


def test_eig_hessians_by_reverse_over_reverse():
    """jacrev(jacrev) of a loss of tr A = Σ wᵢ raised "depends on the phase": the first
    pass's V⁻ᴴ diag(w̄) Vᴴ with a uniform w̄ is c I, so V's second-order cotangent was two
    O(1) terms cancelling to rounding, read as a phase part.  Now c I is split off and
    that cotangent is exactly zero; Hessians of genuine losses (through the pencil, of
    complex input, with vectors beside the trace) match differences of the gradient."""
    rng = np.random.default_rng(11)
    n = 4
    A = rng.standard_normal((n, n))
    Y = rng.standard_normal((n, n))
    B = rng.standard_normal((n, n)) + 3 * np.eye(n)
    W = rng.standard_normal((n, n))
    zero = [lambda a: lad.real(lad.sum(la.eigvals(a))),
            lambda a: lad.imag(lad.sum(2j * la.eig(a)[0])),
            lambda a: lad.real(lad.sum(la.eigvals(a, B))),
            lambda a: lad.real(lad.sum(la.eigvals(a + 1j * Y)))]
    for f in zero:
        np.testing.assert_array_equal(lad.jacrev(lad.jacrev(f))(A), 0)
        np.testing.assert_array_equal(lad.jacrev(lad.jacrev(f))(np.stack([A, A.T])), 0)
    genuine = [(lambda a: lad.real(lad.sum(la.eigvals(a))) ** 2, A),
               (lambda a: lad.real(lad.sum(la.eigvals(a + 1j * Y) ** 3 * (1 + 2j))), A),
               (lambda b: lad.real(lad.sum(lad.exp(la.eigvals(A, b)))), B),
               (lambda a: lad.sum(lad.abs(la.eig(a)[1]) ** 4 * W)
                + 3 * lad.real(lad.sum(la.eig(a)[0])), A)]
    for f, x in genuine:
        want = _fd_hessian(f, x)
        for H in (lad.jacrev(lad.jacrev(f)), lad.jacfwd(lad.jacrev(f))):
            got = np.asarray(H(x)).reshape(x.size, x.size)
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-7 * np.abs(want).max())
            assert np.abs(want).max() > 0.1


def test_a_loss_coupling_a_clusters_values_and_vectors_warns():
    """<B, V e^w Vᵀ> through eigh and <B, U S Vᵀ> through svd at A = I with B all ones:
    the cluster's value cotangent is constant, so the older tests passed, and the
    gradients were silently wrong (<g, E> = -3.03 against 9.78 for eigh; the identity
    instead of ones for svd).  The coupling of values and vectors now warns; losses in the
    exactness class stay silent."""
    import warnings as w
    B = np.ones((3, 3))
    eigh_loss = lambda A: (lambda r: lad.sum(B * ((r[1] * lad.exp(r[0])) @ r[1].T)))(
        la.eigh(A))
    svd_loss = lambda A: (lambda r: lad.sum(B * ((r[0] * r[1]) @ r[2])))(la.svd(A))
    for loss, op in ((eigh_loss, "eigh"), (svd_loss, "svd")):
        with pytest.warns(la.GaugeWarning, match=f"{op}: the loss couples"):
            lad.grad(loss)(np.eye(3))
    with w.catch_warnings():
        w.simplefilter("error", la.GaugeWarning)
        lad.grad(lambda A: lad.sum(lad.exp(la.eigvalsh(A))))(np.eye(3))
        lad.grad(lambda A: (lambda r: lad.trace((r[1] * lad.exp(r[0])) @ r[1].T))(
            la.eigh(A)))(np.eye(3))
        lad.grad(lambda A: (lambda r: lad.sum(B * (r[0] @ r[2])))(la.svd(A)))(np.eye(3))
        lad.grad(lambda A: lad.sum(la.svdvals(A)))(np.eye(3))


def test_exact_zero_singular_value_of_a_tall_matrix_warns_for_u_s_vh():
    """<W, U diag(s) Vh> at [[1, 0], [0, 0], [0, 0]]: the term (I − UUᵀ) W v₂ is the limit
    Ū₂/s₂ = 0/0 and was dropped silently (gradient [[1, 2], [3, 4], [5, 0]] for W); now
    GaugeWarning.  A loss of one nonnull vector, or of the values, stays silent; at a
    value of 1e-30 the quotient is taken and the gradient is W."""
    import warnings as w
    A = np.array([[1.0, 0.0], [0.0, 0.0], [0.0, 0.0]])
    W = np.arange(1.0, 7.0).reshape(3, 2)
    usv = lambda a: lad.sum(W * (lambda U, s, Vh: (U * s) @ Vh)(*la.svd(a, full_matrices=False)))
    with pytest.warns(la.GaugeWarning, match="exactly 0"):
        lad.grad(usv)(A)
    for wide in (False, True):
        X = A.T if wide else A
        Wx = W.T if wide else W
        loss = lambda a: lad.sum(Wx * (lambda U, s, Vh: (U * s) @ Vh)(
            *la.svd(a, full_matrices=False)))
        with pytest.warns(la.GaugeWarning, match="exactly 0"):
            lad.grad(loss)(X)
    with w.catch_warnings():
        w.simplefilter("error", la.GaugeWarning)
        lad.grad(lambda a: lad.sum(W[:, :1] * la.svd(a, full_matrices=False)[0][:, :1]))(A)
        lad.grad(lambda a: lad.sum(la.svdvals(a)))(A)
        B = A.copy()
        B[1, 1] = 1e-30
        np.testing.assert_allclose(lad.grad(usv)(B), W, rtol=1e-12)


@pytest.mark.parametrize("m,n,rank,cplx", [(4, 4, 3, False), (5, 4, 2, False), (5, 3, 2, False),
                                           (3, 5, 2, False), (4, 4, 3, True), (4, 4, 2, False)])
def test_svd_second_derivatives_at_rank_deficiency_are_exact(m, n, rank, cplx):
    """svd.md §6: a loss of the nonzero singular triplets at a rank-deficient matrix (orth)
    takes the truncated rule, exact to first order in the dropped part, so every nesting
    of modes gives the Hessian of SciPy's function.  Before: hvp −4.50 against −3.14 at
    5×4 of rank 2, jvp∘jvp and grad∘jvp other wrong values, silently."""
    import warnings as _w
    rng = np.random.default_rng(3)
    z = (lambda *s: rng.standard_normal(s) + 1j * rng.standard_normal(s)) if cplx else \
        (lambda *s: rng.standard_normal(s))
    A, B = z(m, rank) @ z(rank, n), z(3, m)
    V = z(*A.shape)
    def f(A):
        Y = B @ la.orth(A, rcond=1e-3)
        return lad.sum(lad.real(lad.conj(Y) * Y))           # ‖B Q‖_F² (no abs: jit replays)
    fv = lambda A: np.sum(np.abs(B @ scipy.linalg.orth(A, rcond=1e-3)) ** 2)
    h = 1e-4
    want = (fv(A + h * V) - 2 * fv(A) + fv(A - h * V)) / h ** 2
    with _w.catch_warnings():
        _w.simplefilter("error", lad.GaugeWarning)
        got = [float(np.real(np.vdot(lad.hvp(f, (A,), (V,)), V))),
               float(np.real(lad.jvp(lambda A: lad.jvp(f, (A,), (V,))[1], (A,), (V,))[1])),
               float(np.real(np.vdot(lad.grad(lambda A: lad.real(lad.jvp(f, (A,), (V,))[1]))(A),
                                     V)))]
        jitted = lad.jit(lambda A, V: lad.hvp(f, (A,), (V,)))
        A2 = z(m, rank) @ z(rank, n)                   # another matrix of the same rank
        jitted(A2, V)                                  # records
        got.append(float(np.real(np.vdot(jitted(A, V), V))))   # replays on A
    assert all("replayed" in e for e in jitted.explain().values()), jitted.explain()
    for g in got:
        assert abs(g - want) <= 1e-5 * max(1.0, abs(want)), (got, want)


@pytest.mark.parametrize("cplx", [False, True])
def test_svd_second_derivatives_of_a_stack_of_several_ranks_are_exact(cplx):
    """A stack whose matrices have different ranks (2, 3 and full) takes the truncated rule
    matrix by matrix (grouped by rank): before, the whole stack fell back to the thin rule,
    with a warning and a Hessian 4.7 (relative) off against differences of the gradient."""
    import warnings as _w
    rng = np.random.default_rng(3)
    z = (lambda *s: rng.standard_normal(s) + 1j * rng.standard_normal(s)) if cplx else \
        (lambda *s: rng.standard_normal(s))
    A = np.stack([z(5, 2) @ z(2, 4), z(5, 3) @ z(3, 4), z(5, 4), z(5, 2) @ z(2, 4)])
    W, V = z(*A.shape), z(*A.shape)

    def loss(a):                           # the rank-2 truncation: no gauge, no zero pairs
        U, s, Vh = la.svd(a, full_matrices=False)
        Y = lad.matmul(U[..., :, :2] * s[..., None, :2], Vh[..., :2, :])
        return lad.sum(lad.real(lad.conj(W) * Y))
    g = lad.grad(loss)
    eps = 1e-5
    want = (g(A + eps * V) - g(A - eps * V)) / (2 * eps)
    with _w.catch_warnings():
        _w.simplefilter("error", lad.GaugeWarning)
        (got,) = lad.hvp(loss, (A,), (V,))
        t = lad.jvp(lambda a: lad.jvp(loss, (a,), (V,))[1], (A,), (V,))[1]
        jitted = lad.jit(lambda a, v: lad.hvp(loss, (a,), (v,)))
        jitted(A[::-1].copy(), V)                      # records on another rank pattern
        (replay,) = jitted(A, V)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-7 * np.abs(want).max())
    np.testing.assert_allclose(replay, want, rtol=0, atol=1e-7 * np.abs(want).max())
    assert abs(np.real(t) - np.real(np.vdot(V, want))) <= 1e-7 * abs(np.vdot(V, want))


def test_svd_hessian_of_a_function_of_exactly_zero_values_is_not_truncated():
    """Σ s² at an exactly zero singular value has s̄ = 2s = 0 there but a nonzero second
    derivative: the truncated rule must not take it (review 47)."""
    A = np.array([[1., 2, 0], [3, 4, 0], [5, 6, 0]])           # s = (9.53, 0.514, 0)
    V = np.random.default_rng(0).standard_normal((3, 3))
    (H,) = lad.hvp(lambda X: lad.sum(la.svdvals(X) ** 2), (A,), (V,))
    np.testing.assert_allclose(H, 2 * V, atol=1e-12)          # ‖X‖_F²: the Hessian is 2I


def test_svd_second_derivative_through_the_zero_cluster_warns():
    """A loss of the zero cluster's own vectors has no second derivative there (not even a
    first one): the reverse pass being differentiated says so."""
    import warnings as _w
    rng = np.random.default_rng(3)
    A = rng.standard_normal((5, 2)) @ rng.standard_normal((2, 4))
    B, V = rng.standard_normal((3, 5)), rng.standard_normal((5, 4))

    def f(A):
        U = la.svd(A, full_matrices=False)[0][:, 2:]
        return lad.sum((B @ U @ lad.mT(U)) ** 2)
    with _w.catch_warnings(record=True) as caught:
        _w.simplefilter("always")
        lad.hvp(f, (A,), (V,))
    assert any("rank-deficient" in str(c.message) for c in caught)
