"""signm: SciPy's values, dtypes, stacks and disp; the sign's identities; derivatives against
independent references (finite differences of SciPy's signm, the block identity
sign([[A, E], [0, A]]) evaluated by SciPy, Daleckii–Krein divided differences, eigh for
Hermitian A) at first, second and third order; jit; errors on the imaginary axis."""

import contextlib
import io
import warnings

import numpy as np
import pytest
import scipy.linalg as sl

import linalgad as lad
from linalgad.backend import LinAlgError, signm_schur
from linalgad.rules import signm as SG
from linalgad.testing import check_grads

la = lad.linalg


def _scipy(A):
    """scipy.linalg.signm, its inaccuracy notice silenced."""
    with contextlib.redirect_stdout(io.StringIO()):
        return sl.signm(A)


def _mixed(rng, n, batch=(), complex_=False, offdiag=0.5):
    """A non-normal matrix (stack) with eigenvalues in both half planes, |Re λ| >= 0.5."""
    shape = batch + (n, n)
    d = rng.uniform(0.5, 2.0, batch + (n,)) * np.where(np.arange(n) % 2, -1.0, 1.0)
    if complex_:
        d = d + 1j * rng.uniform(-1.5, 1.5, d.shape)
    N = np.triu(rng.standard_normal(shape), 1) * offdiag
    P = rng.standard_normal(shape) + 2 * np.eye(n)
    A = P @ (d[..., None, :] * np.eye(n) + N) @ np.linalg.inv(P)
    return A if complex_ else A.real


def _block_frechet(A, E):
    """L(A, E) = sign([[A, E], [0, A]])[:n, n:] by SciPy (the block identity)."""
    n = A.shape[-1]
    Z = np.zeros_like(A)
    top = np.concatenate([A, E], axis=-1)
    bottom = np.concatenate([Z, A], axis=-1)
    return _scipy(np.concatenate([top, bottom], axis=-2))[..., :n, n:]


def _inner(X, Y):
    return float(np.real(np.sum(np.conj(X) * Y)))


# -- values -------------------------------------------------------------------------------------

@pytest.mark.parametrize("n", [1, 2, 5, 12, 40])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.complex64, np.complex128])
def test_values_match_scipy(n, dtype):
    rng = np.random.default_rng(n)
    complex_ = np.dtype(dtype).kind == "c"
    A = (rng.standard_normal((n, n)) + (1j * rng.standard_normal((n, n)) if complex_ else 0))
    A = A.astype(dtype)
    S = la.signm(A)
    want = _scipy(A)
    assert S.dtype == want.dtype == A.dtype
    single = np.dtype(dtype) in (np.dtype(np.float32), np.dtype(np.complex64))
    # the sign's own conditioning: ε·(‖S‖² + n) covers both algorithms' rounding
    tol = (3e-5 if single else 1e-13) * (np.linalg.norm(want) ** 2 + n)
    assert np.linalg.norm(S - want) <= tol * np.linalg.norm(want), np.linalg.norm(S - want)
    n2 = np.linalg.norm(S) ** 2
    assert np.linalg.norm(S @ S - np.eye(n)) <= (1e-4 if single else 1e-12) * n2
    assert np.linalg.norm(A @ S - S @ A) <= (1e-4 if single else 1e-12) * n2 * np.linalg.norm(A)


def test_values_of_stacks_match_scipy_batched():
    """SciPy 1.17 batches signm over leading dimensions; so does linalgad."""
    rng = np.random.default_rng(1)
    for A in (_mixed(rng, 4, (2, 3)), _mixed(rng, 3, (2,), complex_=True),
              SG._complex_pairs(rng, 5, (3,), np.float64)[0][0]):
        S = la.signm(A)
        want = _scipy(A)
        assert S.shape == want.shape and S.dtype == want.dtype
        np.testing.assert_allclose(S, want, atol=1e-12)
        # a stack is its matrices one by one
        for idx in np.ndindex(*A.shape[:-2]):
            np.testing.assert_allclose(la.signm(A[idx]), S[idx], atol=1e-13)


def test_real_matrix_with_conjugate_pairs_gives_real_sign():
    rng = np.random.default_rng(2)
    (A,), _ = SG._complex_pairs(rng, 6, (), np.float64)
    lam = np.linalg.eigvals(A)
    assert np.abs(lam.imag).min() > 0.3               # every eigenvalue in a pair, off the axis
    S = la.signm(A)
    assert S.dtype == np.float64
    # independent reference: the spectral form V sign(Re λ) V⁻¹
    lam, V = np.linalg.eig(A)
    ref = (V @ np.diag(np.sign(lam.real)) @ np.linalg.inv(V)).real
    np.testing.assert_allclose(S, ref, atol=1e-12)


def test_hermitian_sign_is_eigh_sign():
    rng = np.random.default_rng(3)
    B = rng.standard_normal((6, 6)) + 1j * rng.standard_normal((6, 6))
    H = B + B.conj().T
    w, V = np.linalg.eigh(H)
    np.testing.assert_allclose(la.signm(H), (V * np.sign(w)) @ V.conj().T, atol=1e-12)


def test_defective_matrix_off_the_axis():
    A = np.array([[1.0, 1.0, 0.0], [0.0, 1.0, 3.0], [0.0, 0.0, -2.0]])   # a Jordan block at 1
    S = la.signm(A)
    np.testing.assert_allclose(S @ S, np.eye(3), atol=1e-13)
    np.testing.assert_allclose(S, _scipy(A), atol=1e-12)
    E = np.random.default_rng(4).standard_normal((3, 3))
    _, L = lad.jvp(la.signm, (A,), (E,))
    np.testing.assert_allclose(L, _block_frechet(A, E), atol=1e-10)


def test_dtypes_and_array_likes():
    A = [[2, 1], [0, -3]]
    S = la.signm(A)
    assert S.dtype == _scipy(np.array(A)).dtype == np.float64
    np.testing.assert_allclose(S, _scipy(np.array(A)), atol=1e-14)
    np.testing.assert_allclose(la.signm(np.array([[4.0]])), [[1.0]])
    np.testing.assert_allclose(la.signm(np.array([[-0.5j - 3]])), [[-1.0]])


def test_empty():
    for shape in ((0, 0), (2, 0, 0), (0, 3, 3)):
        for dtype in (np.float32, np.complex128):
            A = np.zeros(shape, dtype)
            S = la.signm(A)
            assert S.shape == shape and S.dtype == dtype
            g = lad.grad(lambda a: lad.sum(lad.real(la.signm(a))))(A)
            assert g.shape == shape
            _, t = lad.jvp(la.signm, (A,), (A,))
            assert t.shape == shape


def test_disp_false_returns_scipy_error_estimate():
    rng = np.random.default_rng(5)
    A = _mixed(rng, 8)
    S, e = la.signm(A, disp=False)
    assert isinstance(e, float)
    np.testing.assert_allclose(S, la.signm(A))
    P = 0.5 * (S @ S + S)
    assert e == pytest.approx(np.linalg.norm(P @ P - P, 1), rel=1e-12, abs=1e-300)
    assert e < 1e-13 * np.linalg.norm(S, 1) ** 2 * 8
    # SciPy's estimate when it goes through its Newton refinement is of the same kind
    A = rng.standard_normal((40, 40))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        out = sl.signm(A, disp=False)
    S_scipy = out[0] if isinstance(out, tuple) else out     # SciPy: S alone here
    np.testing.assert_allclose(la.signm(A), S_scipy, atol=1e-10)
    assert la.signm(A, disp=False)[1] < 1e-9
    Ss, es = la.signm(_mixed(rng, 4, (3,)), disp=False)
    assert Ss.shape == (3, 4, 4) and es.shape == (3,) and np.all(es < 1e-9)


# -- errors -------------------------------------------------------------------------------------

def test_shape_and_finiteness_errors_name_signm():
    for bad in (np.ones((3, 4)), np.ones(3), np.ones((2, 3, 2))):
        with pytest.raises(ValueError, match="signm"):
            la.signm(bad)
    with pytest.raises(ValueError, match="signm"):
        la.signm(np.array([[np.nan, 1.0], [0.0, 1.0]]))


@pytest.mark.parametrize("A", [
    np.diag([1.0, 0.0, -2.0]),                                   # an eigenvalue 0
    np.array([[0.0, 1.0], [-1.0, 0.0]]),                          # ±i, real
    np.array([[1.0, 0, 0], [0, 0, 2.0], [0, -2.0, 0]]),           # ±2i, real
    np.diag([1j, 2.0, -1.0]),                                     # i, complex
    np.diag([0.5j, 2.0]) + np.triu(np.ones((2, 2)), 1),           # i/2, non-normal
], ids=["zero", "rotation", "pair", "complex-axis", "nonnormal-axis"])
def test_eigenvalues_on_the_imaginary_axis_raise(A):
    """SciPy returns a value with sign(0) := 0 there (not a sign: S² ≠ I); linalgad raises."""
    with pytest.raises(la.LinAlgError, match="signm.*imaginary axis"):
        la.signm(A)


def test_failing_matrix_of_a_stack_is_named():
    A = np.stack([np.diag([1.0, -2.0]), np.diag([1.0, -2.0]), np.diag([3j, 1.0])])
    with pytest.raises(la.LinAlgError, match=r"signm.*\(2,\)"):
        la.signm(A)


# -- first order ----------------------------------------------------------------------------------

@pytest.mark.parametrize("complex_", [False, True])
def test_jvp_is_the_block_identity_and_finite_differences(complex_):
    rng = np.random.default_rng(6)
    A = _mixed(rng, 6, complex_=complex_)
    E = rng.standard_normal((6, 6)) + (1j * rng.standard_normal((6, 6)) if complex_ else 0)
    S, L = lad.jvp(la.signm, (A,), (E,))
    np.testing.assert_allclose(L, _block_frechet(A, E), atol=1e-10 * np.abs(L).max())
    h = 1e-6
    fd = (_scipy(A + h * E) - _scipy(A - h * E)) / (2 * h)
    np.testing.assert_allclose(L, fd, atol=1e-6 * np.abs(L).max())
    # the differentials of S² = I and AS = SA
    scale = np.abs(L).max() * np.abs(S).max() * 6
    np.testing.assert_allclose(S @ L + L @ S, 0, atol=1e-11 * scale)
    np.testing.assert_allclose(A @ L - L @ A, S @ E - E @ S, atol=1e-11 * scale * np.abs(A).max())


def test_jvp_is_daleckii_krein_with_sign_divided_differences():
    rng = np.random.default_rng(7)
    A = _mixed(rng, 5, complex_=True)
    E = rng.standard_normal((5, 5)) + 1j * rng.standard_normal((5, 5))
    lam, V = np.linalg.eig(A)
    s = np.sign(lam.real)
    same = s[:, None] == s[None, :]
    gaps = np.where(same, 1, lam[:, None] - lam[None, :])
    D = np.where(same, 0, (s[:, None] - s[None, :]) / gaps)
    ref = V @ (D * np.linalg.solve(V, E @ V)) @ np.linalg.inv(V)
    _, L = lad.jvp(la.signm, (A,), (E,))
    np.testing.assert_allclose(L, ref, atol=1e-10 * np.abs(ref).max())


@pytest.mark.parametrize("complex_", [False, True])
def test_adjoint_identity(complex_):
    """<Ḡ, L(A, E)> = <L(Aᴴ, Ḡ), E>: linalgad's VJP against the block identity at Aᴴ, and
    against its own JVP (the dot-product test)."""
    rng = np.random.default_rng(8)
    A = _mixed(rng, 5, complex_=complex_)
    cplx = (lambda s: 1j * rng.standard_normal(s)) if complex_ else (lambda s: 0)
    E = rng.standard_normal((5, 5)) + cplx((5, 5))
    G = rng.standard_normal((5, 5)) + cplx((5, 5))
    _, pull = lad.vjp(la.signm, A)
    (A_bar,) = pull(G)
    np.testing.assert_allclose(A_bar, _block_frechet(A.conj().T, G),
                               atol=1e-10 * np.abs(A_bar).max())
    _, L = lad.jvp(la.signm, (A,), (E,))
    assert _inner(G, L) == pytest.approx(_inner(A_bar, E), rel=1e-11)


def test_gradient_near_the_axis_grows_like_one_over_the_distance():
    """A = diag(δ, −δ): L(A, E) = [[0, E₁₂/δ], [E₂₁/δ, 0]] (D₁₂ = 2/(2δ))."""
    E = np.array([[0.3, 1.0], [-2.0, 0.7]])
    for delta in (1e-1, 1e-4, 1e-8):
        A = np.diag([delta, -delta])
        _, L = lad.jvp(la.signm, (A,), (E,))
        np.testing.assert_allclose(L, [[0, 1.0 / delta], [-2.0 / delta, 0]], rtol=1e-10)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.complex64, np.complex128])
@pytest.mark.parametrize("batch", [(), (2,)])
def test_check_grads_second_order(dtype, batch):
    rng = np.random.default_rng(9)
    (A,), _ = SG._mixed(rng, 4, batch, dtype)
    single = np.dtype(dtype) in (np.dtype(np.float32), np.dtype(np.complex64))
    check_grads(la.signm, (A,), order=2, rtol=2e-2 if single else 1e-6)


# -- second and third order -----------------------------------------------------------------------

@pytest.mark.parametrize("complex_", [False, True])
def test_hvp_against_second_differences_of_scipy(complex_):
    """<W, H V> of f(A) = Re<G, sign(A)> against the mixed second difference of SciPy's signm."""
    rng = np.random.default_rng(10)
    n = 4
    A = _mixed(rng, n, complex_=complex_)
    cplx = (lambda s: 1j * rng.standard_normal(s)) if complex_ else (lambda s: 0)
    G, V, W = (rng.standard_normal((n, n)) + cplx((n, n)) for _ in range(3))

    def loss(a):
        return lad.real(lad.sum(lad.conj(G) * la.signm(a)))

    Hv = lad.hvp(loss, (A,), (V,))[0]
    got = _inner(W, Hv)
    f = lambda a: _inner(G, _scipy(a))
    def mixed(h):
        return (f(A + h * V + h * W) - f(A + h * V - h * W) - f(A - h * V + h * W)
                + f(A - h * V - h * W)) / (4 * h * h)
    want = (4 * mixed(1e-3) - mixed(2e-3)) / 3          # Richardson: O(h⁴)
    assert got == pytest.approx(want, rel=1e-6, abs=1e-8)
    h = 1e-3
    # forward over forward: the second directional derivative along V
    jv = lambda a: lad.jvp(la.signm, (a,), (V,))[1]
    _, second = lad.jvp(jv, (A,), (V,))
    d2 = lambda h: (_scipy(A + h * V) - 2 * _scipy(A) + _scipy(A - h * V)) / (h * h)
    want2 = (4 * d2(h) - d2(2 * h)) / 3
    np.testing.assert_allclose(second, want2, atol=1e-5 * np.abs(want2).max())


def test_third_order_against_differences_of_the_hessian():
    rng = np.random.default_rng(11)
    A = _mixed(rng, 3)
    G, V, U = (rng.standard_normal((3, 3)) for _ in range(3))
    loss = lambda a: lad.sum(G * la.signm(a))
    hv = lambda a: lad.hvp(loss, (a,), (V,))[0]
    _, third = lad.jvp(hv, (A,), (U,))
    h = 1e-4
    fd = (hv(A + h * U) - hv(A - h * U)) / (2 * h)
    np.testing.assert_allclose(third, fd, atol=1e-6 * np.abs(fd).max())
    # ... and against third differences of SciPy's values (fully independent), <W, third>
    W = rng.standard_normal((3, 3))
    f = lambda a: float(np.sum(G * _scipy(a)))
    def mixed(h):
        return sum(sa * sb * sc * f(A + h * (sa * V + sb * U + sc * W))
                   for sa in (1, -1) for sb in (1, -1) for sc in (1, -1)) / (8 * h ** 3)
    want = (4 * mixed(1e-2) - mixed(2e-2)) / 3          # Richardson: O(h⁴)
    assert float(np.sum(W * third)) == pytest.approx(want, rel=1e-4, abs=1e-6)


def test_order_one_stack_has_zero_derivative():
    A = np.array([[[2.0]], [[-0.25]], [[1e-3]]])
    np.testing.assert_array_equal(la.signm(A), [[[1.0]], [[-1.0]], [[1.0]]])
    g = lad.grad(lambda a: lad.sum(la.signm(a)))(A)
    np.testing.assert_allclose(g, 0, atol=1e-12)


# -- the kernel and jit ---------------------------------------------------------------------------

def test_schur_kernel_factors():
    """The ordered Schur factors the derivatives reuse: A = Z T Zᴴ, Z unitary, the p
    eigenvalues of the right half plane first, sign(T) = [[I, X], [0, −I]]."""
    rng = np.random.default_rng(12)
    for A in (_mixed(rng, 7, (2,)), _mixed(rng, 6, (2,), complex_=True),
              SG._complex_pairs(rng, 5, (2,), np.float64)[0][0]):
        S, (T, Z, ST, p, c) = signm_schur(A)              # T: the Schur form of c A
        ZH = np.conj(np.swapaxes(Z, -1, -2))
        np.testing.assert_allclose(Z @ T @ ZH / c[..., None, None], A,
                                   atol=1e-12 * np.abs(A).max())
        assert np.all(np.log2(c) == np.round(np.log2(c)))  # powers of two: exact scaling
        np.testing.assert_allclose(ZH @ Z, np.broadcast_to(np.eye(A.shape[-1]), A.shape),
                                   atol=1e-13)
        for idx in np.ndindex(*A.shape[:-2]):
            lam = np.linalg.eigvals(A[idx])
            k = int(p[idx])
            assert k == np.count_nonzero(lam.real > 0)
            assert np.all(np.diagonal(T[idx]).real[:k] > 0)
            assert np.all(np.diagonal(T[idx]).real[k:] < 0)
            np.testing.assert_allclose(np.diagonal(ST[idx]), [1] * k + [-1] * (len(lam) - k))
            np.testing.assert_allclose(np.tril(ST[idx], -1), 0)
        np.testing.assert_allclose(S, _scipy(A), atol=1e-12 * np.abs(S).max())


def test_strongly_non_normal_matrices_keep_the_schur_accuracy():
    """‖S‖ ~ 10⁷: the scaled Newton iteration was 1.5e-2 off here (its error grows like
    ‖S‖²ε); the Schur method keeps SciPy's accuracy (8e-8 against a 60-digit reference), and
    an exactly known sign of a 2×2 matrix is kept within its conditioning (3.8e-6 at
    b = 10⁶, where SciPy's is 2.0e-4 off)."""
    rng = np.random.default_rng(16)
    n = 6
    T = np.diag([1.0, -1.0, 2.0, -0.5, 1.5, -2.0]) + np.triu(rng.standard_normal((n, n)), 1) * 100
    Q = np.linalg.qr(rng.standard_normal((n, n)))[0]
    A = Q @ T @ Q.T
    S, want = la.signm(A), _scipy(A)
    assert np.linalg.norm(want) > 1e6
    assert np.linalg.norm(S - want) <= 1e-5 * np.linalg.norm(want)
    for b in (1e3, 1e6):
        # V T V⁻¹ with V = [[1, 0], [1, 1]], T = [[1.5, b], [0, −0.5]]: exact in binary, and so
        # is its sign V [[1, b], [0, −1]] V⁻¹; the data's own conditioning is ~ b²ε
        A2 = np.array([[1.5 - b, b], [2 - b, b - 0.5]])
        exact = np.array([[1 - b, b], [2 - b, b - 1]])
        err = np.abs(la.signm(A2) - exact).max() / b
        assert err <= 0.2 * np.finfo(float).eps * b * b, err


def test_jit_replays_value_and_gradient():
    rng = np.random.default_rng(13)
    G = rng.standard_normal((5, 5))

    def both(a):
        return lad.value_and_grad(lambda x: lad.sum(G * la.signm(x)))(a)

    fast = lad.jit(both)
    for seed in (1, 2, 3):
        A = _mixed(np.random.default_rng(seed), 5)
        v, g = fast(A)
        v0, g0 = both(A)
        assert v == pytest.approx(v0, rel=1e-12)
        np.testing.assert_allclose(g, g0, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(g, _block_frechet(A.T, G), atol=1e-9 * np.abs(g).max())
    assert "replayed" in list(fast.explain().values())[0], fast.explain()


def test_jit_replays_second_order():
    rng = np.random.default_rng(14)
    G, V = rng.standard_normal((2, 4, 4))
    loss = lambda a: lad.sum(G * la.signm(a))
    hv = lambda a: lad.hvp(loss, (a,), (V,))[0]
    fast = lad.jit(hv)
    for seed in (1, 2, 3):
        A = _mixed(np.random.default_rng(seed), 4)
        np.testing.assert_allclose(fast(A), hv(A), rtol=1e-10, atol=1e-12)
    assert "replayed" in list(fast.explain().values())[0], fast.explain()


def test_internal_frechet_without_factors():
    rng = np.random.default_rng(15)
    A = _mixed(rng, 5, (2,), complex_=True)
    E = rng.standard_normal(A.shape) + 1j * rng.standard_normal(A.shape)
    np.testing.assert_allclose(SG.frechet_signm(A, E), _block_frechet(A, E), atol=1e-10 *
                               np.abs(_block_frechet(A, E)).max())


# -- review 48 ----------------------------------------------------------------------------------

def test_axis_pairs_of_a_real_matrix_are_refused():
    """A pair ±10i beside a real eigenvalue 0.01: the real Schur form's 2×2 block holds only
    the pair's real part, so a threshold from max|T_ii| (0.01) let 75 of 100 rotations be
    signed by rounding; the ‖T‖_F scale refuses every one."""
    T = np.zeros((3, 3))
    T[0, 0], T[1, 2], T[2, 1] = 0.01, 10.0, -10.0
    for seed in range(20):
        Q = np.linalg.qr(np.random.default_rng(seed).standard_normal((3, 3)))[0]
        with pytest.raises(LinAlgError, match="imaginary axis"):
            la.signm(Q @ T @ Q.T)


def test_nilpotent_matrices_are_refused():
    N = np.diag(np.ones(3), 1)
    Q = np.linalg.qr(np.random.default_rng(2).standard_normal((4, 4)))[0]
    with pytest.raises(LinAlgError, match="signm"):
        la.signm(Q @ N @ Q.T)
    with pytest.raises(LinAlgError, match="signm"):
        la.signm((Q @ N @ Q.T).astype(complex))


def test_scaling_is_exact():
    A = np.random.default_rng(1).standard_normal((5, 5))
    S = la.signm(A)
    for c in (1e-295, 1e-150, 1e150, 1e295):
        np.testing.assert_allclose(la.signm(A * c), S, atol=1e-13)
    G, E = np.random.default_rng(2).standard_normal((2, 5, 5))
    g = lad.grad(lambda X: lad.sum(G * la.signm(X)))(A)
    np.testing.assert_allclose(lad.grad(lambda X: lad.sum(G * la.signm(X)))(A * 1e-200),
                               g * 1e200, rtol=1e-12)


def test_a_small_eigenvalue_of_a_large_symmetric_matrix_is_accepted():
    """The old threshold grew with n and refused order 300 with an eigenvalue 5e-3, whose
    eigenvalue noise is ε‖A‖ ≈ 2e-6 (review 48)."""
    n = 300
    rng = np.random.default_rng(1)
    w = np.logspace(np.log10(5e-3), 10, n) * np.where(np.arange(n) % 2, -1, 1)
    Q = np.linalg.qr(rng.standard_normal((n, n)))[0]
    A = (Q * w) @ Q.T
    A = (A + A.T) / 2
    wv, V = np.linalg.eigh(A)
    np.testing.assert_allclose(la.signm(A), (V * np.sign(wv)) @ V.T, atol=1e-5)
