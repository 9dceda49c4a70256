"""funm: SciPy's values, dtypes, stacks, disp and errors; derivatives against independent
references — finite differences of scipy.linalg.funm itself, SciPy's exact Fréchet derivative
of expm (expm_frechet), linalgad's expm/logm/sqrtm/cosm, funmh for Hermitian A — at first
and second order, at repeated eigenvalues of diagonalizable matrices, for real matrices with
complex-conjugate eigenvalues; defective matrices refused."""

import contextlib
import io

import numpy as np
import pytest
import scipy.linalg as sl

import linalgad as lad
from linalgad.backend import LinAlgError, funm_eigvectors, funm_schur
from linalgad.rules import funm as FN
from linalgad.testing import check_grads

la = lad.linalg


def _scipy(A, func, disp=True):
    with contextlib.redirect_stdout(io.StringIO()):
        return sl.funm(A, func, disp=disp)


def _general(rng, n, batch=(), complex_=False, spread=2.0):
    """P (D + N) P⁻¹: non-normal, diagonalizable, eigenvalues spread over [−spread, spread]."""
    shape = batch + (n, n)
    d = np.linspace(-spread, spread, n) + rng.uniform(-0.05, 0.05, batch + (n,))
    if complex_:
        d = d + 1j * rng.uniform(-1, 1, d.shape)
    N = np.triu(rng.standard_normal(shape), 1) * 0.3
    P = rng.standard_normal(shape) + 3 * np.eye(n)
    A = P @ (d[..., None, :] * np.eye(n) + N) @ np.linalg.inv(P)
    return A if complex_ else A.real


def _inner(X, Y):
    return float(np.real(np.sum(np.conj(X) * Y)))


def _fd_grad(fun, A, G, V, h=1e-6):
    """⟨G, d/dt fun(A + tV)⟩ by central differences."""
    return _inner(G, (fun(A + h * V) - fun(A - h * V)) / (2 * h))


def _cot(rng, shape, complex_):
    G = rng.standard_normal(shape)
    return G + 1j * rng.standard_normal(shape) if complex_ else G


# -- values ----------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.complex64, np.complex128])
@pytest.mark.parametrize("func", [np.exp, np.sin, np.sqrt, lambda x: x * x + 1])
def test_values_and_dtypes_match_scipy(dtype, func):
    rng = np.random.default_rng(0)
    A = rng.standard_normal((6, 6))
    if np.dtype(dtype).kind == "c":
        A = A + 1j * rng.standard_normal((6, 6))
    A = A.astype(dtype)
    F, err = la.funm(A, func, disp=False)
    Fs, errs = _scipy(A, func, disp=False)
    assert F.dtype == Fs.dtype and F.shape == Fs.shape
    np.testing.assert_array_equal(F, Fs)             # SciPy's own steps: bit for bit
    assert type(err) is type(errs) and err == errs


def test_real_matrix_gives_real_or_complex_as_scipy():
    rng = np.random.default_rng(1)
    A = _general(rng, 5)                              # real eigenvalues in [−2, 2]
    assert la.funm(A, np.exp).dtype == np.float64
    assert la.funm(A, np.sqrt).dtype == np.complex128   # negative eigenvalues
    assert _scipy(A, np.sqrt).dtype == np.complex128
    B = A @ A + np.eye(5)                             # positive eigenvalues
    assert la.funm(B, np.sqrt).dtype == _scipy(B, np.sqrt).dtype == np.float64
    assert la.funm(np.arange(4.0).reshape(2, 2).astype(int), np.exp).dtype == np.float64


def test_stacks_match_scipy_batched():
    rng = np.random.default_rng(2)
    A = _general(rng, 4, (2, 3))
    F, err = la.funm(A, np.exp, disp=False)
    Fs, errs = _scipy(A, np.exp, disp=False)
    np.testing.assert_array_equal(F, Fs)
    np.testing.assert_array_equal(err, errs)
    assert err.shape == (2, 3)


def test_disp_prints_scipy_notice_for_large_errest():
    J = np.array([[1.0, 1e3], [0.0, 1.0 + 1e-10]])    # nearly defective: a large estimate
    outs = []
    for f in (sl.funm, la.funm):
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            f(J, np.exp)
        outs.append(buf.getvalue())
    assert outs[0] == outs[1] and "inaccurate" in outs[1]
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        la.funm(J, np.exp, disp=False)
        la.funm(np.eye(3), np.exp)
    assert buf.getvalue() == ""


def test_empty_and_errors():
    for shape in [(0, 0), (2, 0, 0)]:
        F, err = la.funm(np.zeros(shape), np.exp, disp=False)
        assert F.shape == shape and F.dtype == np.float64 and np.shape(err) == shape[:-2]
    with pytest.raises(ValueError, match="funm"):
        la.funm(np.zeros((2, 3)), np.exp)
    with pytest.raises(TypeError, match="funm"):
        la.funm(np.eye(2), 3)
    with pytest.raises(TypeError, match="funm"):
        la.funm(np.eye(2), np.exp, dfunc=4)
    with pytest.raises(ValueError, match="funm"):
        la.funm(np.array([[1.0, np.nan], [0, 1]]), np.exp)


def test_agrees_with_expm_logm_sqrtm_cosm():
    rng = np.random.default_rng(3)
    A = _general(rng, 6, complex_=True)
    np.testing.assert_allclose(la.funm(A, np.exp), la.expm(A), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(la.funm(A, np.cos), la.cosm(A), rtol=1e-10, atol=1e-12)
    B = A + 4 * np.eye(6)                             # spectrum in the right half plane
    np.testing.assert_allclose(la.funm(B, np.log), la.logm(B), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(la.funm(B, np.sqrt), la.sqrtm(B), rtol=1e-10, atol=1e-12)


# -- first derivatives ------------------------------------------------------------------------

@pytest.mark.parametrize("complex_", [False, True])
@pytest.mark.parametrize("func", [np.exp, np.sin, lambda x: np.log1p(x * 0.25 + 1.0)])
def test_gradient_and_jvp_against_differences_of_scipy_funm(complex_, func):
    rng = np.random.default_rng(4)
    A = _general(rng, 5, complex_=complex_)
    F = la.funm(A, func)
    G, V = _cot(rng, A.shape, F.dtype.kind == "c"), _cot(rng, A.shape, complex_)
    g = lad.grad(lambda a: lad.real(lad.sum(lad.conj(G) * la.funm(a, func))))(A)
    assert g.dtype == A.dtype
    fd = _fd_grad(lambda a: _scipy(a, func), A, G, V)
    assert abs(_inner(g, V) - fd) <= 1e-7 * max(1.0, abs(fd))
    _, t = lad.jvp(lambda a: la.funm(a, func), (A,), (V,))
    ref = (_scipy(A + 1e-6 * V, func) - _scipy(A - 1e-6 * V, func)) / 2e-6
    np.testing.assert_allclose(t, ref, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("complex_", [False, True])
def test_gradient_is_scipys_expm_frechet_adjoint(complex_):
    """exp: the exact adjoint L(Aᴴ, Ḡ) of expm's Fréchet derivative (SciPy, block method)."""
    rng = np.random.default_rng(5)
    A = _general(rng, 7, complex_=complex_)
    G = _cot(rng, A.shape, complex_)
    g = lad.grad(lambda a: lad.real(lad.sum(lad.conj(G) * la.funm(a, np.exp))))(A)
    ref = sl.expm_frechet(np.conj(A).T, G, compute_expm=False)
    np.testing.assert_allclose(g, ref, rtol=1e-9, atol=1e-10)


def test_real_matrix_with_conjugate_pairs_has_real_result_and_gradient():
    (A,), kw = FN.RULES[0].domains[2].make(np.random.default_rng(6), 6, (), np.float64)
    w = np.linalg.eigvals(A)
    assert np.abs(w.imag).max() > 0.3
    F = la.funm(A, np.exp)
    assert F.dtype == np.float64
    G = np.random.default_rng(7).standard_normal(A.shape)
    g = lad.grad(lambda a: lad.sum(G * la.funm(a, np.exp)))(A)
    assert g.dtype == np.float64
    np.testing.assert_allclose(g, sl.expm_frechet(A.T, G, compute_expm=False), rtol=1e-9,
                               atol=1e-10)


@pytest.mark.parametrize("dtype", [np.float32, np.complex64])
def test_single_precision(dtype):
    rng = np.random.default_rng(8)
    A = _general(rng, 5, complex_=np.dtype(dtype).kind == "c").astype(dtype)
    G = _cot(rng, A.shape, np.dtype(dtype).kind == "c").astype(dtype)
    g = lad.grad(lambda a: lad.real(lad.sum(lad.conj(G) * la.funm(a, np.exp))))(A)
    assert g.dtype == dtype
    A64 = A.astype(np.complex128 if np.dtype(dtype).kind == "c" else np.float64)
    ref = sl.expm_frechet(np.conj(A64).T, G, compute_expm=False)
    np.testing.assert_allclose(g, ref, rtol=2e-4, atol=2e-4 * np.abs(ref).max())


def test_stack_gradients_are_per_matrix():
    rng = np.random.default_rng(9)
    A = _general(rng, 4, (3,), complex_=True)
    G = _cot(rng, A.shape, True)
    g = lad.grad(lambda a: lad.real(lad.sum(lad.conj(G) * la.funm(a, np.sin))))(A)
    for i in range(3):
        gi = lad.grad(lambda a: lad.real(lad.sum(lad.conj(G[i]) * la.funm(a, np.sin))))(A[i])
        np.testing.assert_allclose(g[i], gi, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("complex_", [False, True])
def test_hermitian_matrices_agree_with_funmh(complex_):
    rng = np.random.default_rng(10)
    X = _cot(rng, (5, 5), complex_)
    A = X + np.conj(X).T
    G = _cot(rng, A.shape, complex_)
    soft = lambda w: np.log1p(np.exp(w))                      # noqa: E731
    np.testing.assert_allclose(la.funm(A, soft), la.funmh(A, soft), rtol=1e-10, atol=1e-12)
    # on Hermitian directions E the derivatives coincide
    E = _cot(rng, A.shape, complex_)
    E = E + np.conj(E).T
    t1 = lad.jvp(lambda a: la.funm(a, soft), (A,), (E,))[1]
    t2 = lad.jvp(lambda a: la.funmh(a, soft), (A,), (E,))[1]
    np.testing.assert_allclose(t1, t2, rtol=1e-9, atol=1e-11)
    # funm's gradient projected on Hermitian matrices is funmh's on the full matrix
    g = lad.grad(lambda a: lad.real(lad.sum(lad.conj(G) * la.funm(a, soft))))(A)
    Gh = G + np.conj(G).T
    # funmh reads the lower triangle: compare ⟨·, E⟩ for Hermitian E
    assert abs(_inner(g + np.conj(g).T, E) - _inner(Gh, t2)) < 1e-9 * max(1, abs(_inner(Gh, t2)))


def test_dfunc_for_a_func_linalgad_cannot_differentiate():
    rng = np.random.default_rng(11)
    A = _general(rng, 4)
    vexp = np.vectorize(np.exp)
    G = rng.standard_normal(A.shape)
    with pytest.raises(TypeError, match="funm"):
        lad.grad(lambda a: lad.sum(G * la.funm(a, vexp)))(A)
    g = lad.grad(lambda a: lad.sum(G * la.funm(a, vexp, dfunc=vexp)))(A)
    np.testing.assert_allclose(g, sl.expm_frechet(A.T, G, compute_expm=False), rtol=1e-9)


# -- repeated eigenvalues (diagonalizable) and defective matrices ------------------------------

def _similar(rng, d, complex_=False):
    n = len(d)
    P = rng.standard_normal((n, n)) + 2 * np.eye(n)
    if complex_:
        P = P + 1j * rng.standard_normal((n, n))
    return P @ np.diag(d) @ np.linalg.inv(P)


@pytest.mark.parametrize("d", [[1.0, 1.0, 1.0, 1.0], [0.5, 0.5, 1.5, -1.0],
                               [-0.3, 2.0, 2.0, 2.0], [0.7, 0.7 + 3e-10, 1.9, -0.4]])
@pytest.mark.parametrize("complex_", [False, True])
def test_repeated_eigenvalues_first_order_exact(d, complex_):
    rng = np.random.default_rng(12)
    A = np.eye(4) if d == [1.0] * 4 else _similar(rng, d, complex_)
    if complex_:
        A = A.astype(np.complex128)
    G = _cot(rng, A.shape, complex_)
    g = lad.grad(lambda a: lad.real(lad.sum(lad.conj(G) * la.funm(a, np.exp))))(A)
    ref = sl.expm_frechet(np.conj(A).T, G, compute_expm=False)
    np.testing.assert_allclose(g, ref, rtol=1e-7, atol=1e-8 * np.abs(ref).max())


def test_defective_matrices_raise_naming_funm():
    J = np.array([[1.0, 1.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 2.0]])
    F = la.funm(np.eye(3) * 2 + 0 * J, np.exp)            # fine
    assert F.shape == (3, 3)
    with pytest.raises(LinAlgError, match="funm.*defective"):
        lad.grad(lambda a: lad.sum(la.funm(a, np.exp)))(J)
    with pytest.raises(LinAlgError, match="funm.*defective"):
        lad.jvp(lambda a: la.funm(a, np.exp), (J,), (np.ones((3, 3)),))
    near = np.array([[1.0, 1.0], [0.0, 1.0 + 1e-10]])
    with pytest.raises(LinAlgError, match="funm"):
        lad.grad(lambda a: lad.sum(la.funm(a, np.exp)))(near)
    stack = np.stack([np.diag([1.0, 2.0, 3.0]), J])
    with pytest.raises(LinAlgError, match=r"matrix \(1,\)"):
        lad.grad(lambda a: lad.sum(la.funm(a, np.exp)))(stack)


def test_eigvector_kernel():
    rng = np.random.default_rng(13)
    A = _general(rng, 6, (2,), complex_=True)
    _, _, T, Z = funm_schur(A, np.exp)
    lam, W, Winv, kappa = funm_eigvectors(T, Z, A)
    np.testing.assert_allclose(W @ Winv, np.broadcast_to(np.eye(6), W.shape), atol=1e-12)
    np.testing.assert_allclose(A @ W, W * lam[..., None, :], atol=1e-11)
    assert kappa.shape == (2,) and np.all(kappa < 1e3)


# -- second order ---------------------------------------------------------------------------------

@pytest.mark.parametrize("complex_", [False, True])
@pytest.mark.parametrize("func", [np.exp, lambda x: np.log1p(x * 0.25 + 1.0)])
def test_hvp_against_differences_of_gradients(complex_, func):
    rng = np.random.default_rng(14)
    A = _general(rng, 5, complex_=complex_)
    F = la.funm(A, func)
    G, V = _cot(rng, A.shape, F.dtype.kind == "c"), _cot(rng, A.shape, complex_)

    def loss(a):
        F = la.funm(a, func)
        return lad.real(lad.sum(lad.conj(G) * F * F))      # nonlinear in F

    grad = lad.grad(loss)
    Hv = lad.hvp(loss, (A,), (V,))[0]
    h = 1e-5
    ref = (grad(A + h * V) - grad(A - h * V)) / (2 * h)
    np.testing.assert_allclose(Hv, ref, rtol=1e-6, atol=1e-6 * np.abs(ref).max())


@pytest.mark.parametrize("d", [[0.5, 0.5, 1.5, -1.0], [2.0, 2.0, 2.0, -0.3], [1.0] * 4])
def test_second_order_at_repeated_eigenvalues_is_exact(d):
    """The Hessian of Σ G ∘ e^A along V: the derivative of SciPy's exact Fréchet adjoint
    L(Aᵀ, G) in direction V, by differences of expm_frechet (smooth there)."""
    rng = np.random.default_rng(15)
    A = np.eye(4) if d == [1.0] * 4 else _similar(rng, d)
    G, V = rng.standard_normal(A.shape), rng.standard_normal(A.shape)
    Hv = lad.hvp(lambda a: lad.sum(G * la.funm(a, np.exp)), (A,), (V,))[0]
    h = 1e-5
    ref = (sl.expm_frechet((A + h * V).T, G, compute_expm=False)
           - sl.expm_frechet((A - h * V).T, G, compute_expm=False)) / (2 * h)
    np.testing.assert_allclose(Hv, ref, rtol=1e-6, atol=1e-6 * np.abs(ref).max())


def test_check_grads_second_order_stack():
    rng = np.random.default_rng(16)
    A = _general(rng, 3, (2,), complex_=True)
    check_grads(lambda a: la.funm(a, np.sin), (A,), order=2, modes=("rev", "fwd"))


def test_third_order_against_differences_of_the_hessian():
    rng = np.random.default_rng(17)
    A = _general(rng, 3)
    G, V, U = (rng.standard_normal(A.shape) for _ in range(3))
    loss = lambda a: lad.sum(G * la.funm(a, np.exp))       # noqa: E731

    def hv(a):
        return lad.hvp(loss, (a,), (V,))[0]
    t = lad.jvp(hv, (A,), (U,))[1]
    h = 1e-4
    ref = (hv(A + h * U) - hv(A - h * U)) / (2 * h)
    np.testing.assert_allclose(t, ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max())


def test_internal_frechet_without_factors():
    rng = np.random.default_rng(18)
    A = _general(rng, 4, complex_=True)
    E = _cot(rng, A.shape, True)
    L = FN.frechet_funm(A, E, np.exp)
    np.testing.assert_allclose(L, sl.expm_frechet(A, E, compute_expm=False), rtol=1e-9,
                               atol=1e-10)


def test_jit_replays_value_and_gradient():
    rng = np.random.default_rng(19)
    G = rng.standard_normal((4, 4))
    f = lad.jit(lad.value_and_grad(lambda a: lad.sum(G * la.funm(a, np.exp))))
    for seed in (20, 21):
        A = _general(np.random.default_rng(seed), 4)
        v, g = f(A)
        np.testing.assert_allclose(v, np.sum(G * sl.expm(A)), rtol=1e-12)
        np.testing.assert_allclose(g, sl.expm_frechet(A.T, G, compute_expm=False),
                                   rtol=1e-9, atol=1e-10)


def test_jit_replays_disp_notice_and_errest():
    J = np.array([[1.0, 1e3], [0.0, 1.0 + 1e-10]])
    f = lad.jit(lambda a: la.funm(a, np.exp, disp=False))
    g = lad.jit(lambda a: la.funm(a, np.exp))
    for A in (J, J + 0.5 * np.eye(2), np.diag([1.0, 2.0])):
        F, err = f(A)
        Fs, errs = _scipy(A, np.exp, disp=False)
        np.testing.assert_allclose(F, Fs, rtol=1e-14)
        assert float(err) == float(errs)
        out, ref = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out):
            g(A)
        with contextlib.redirect_stdout(ref):
            sl.funm(A, np.exp)
        assert out.getvalue() == ref.getvalue()


def test_errest_under_grad_is_a_plain_value():
    A = _general(np.random.default_rng(22), 3)
    seen = []

    def loss(a):
        F, err = la.funm(a, np.exp, disp=False)
        seen.append(err)
        return lad.sum(F)
    lad.grad(loss)(A)
    assert isinstance(seen[0], np.floating) and seen[0] == _scipy(A, np.exp, disp=False)[1]


def test_third_order_at_a_repeated_eigenvalue_warns():
    rng = np.random.default_rng(23)
    A = _similar(rng, [0.5, 0.5, 1.5, -1.0])
    G, V, U = (rng.standard_normal(A.shape) for _ in range(3))
    loss = lambda a: lad.sum(G * la.funm(a, np.exp))       # noqa: E731
    lad.hvp(loss, (A,), (V,))                              # second order: no warning
    with pytest.warns(la.GaugeWarning, match="funm: third derivatives"):
        lad.jvp(lambda a: lad.hvp(loss, (a,), (V,))[0], (A,), (U,))


def test_single_precision_random_matrix_of_order_256_is_differentiated():
    """κ₁(X) ≈ 5e3 > ε^(-1/2) of float32: accepted (the limit is n·ε^(-1/2)); the gradient
    to about κε."""
    rng = np.random.default_rng(24)
    A = rng.standard_normal((256, 256)) / 16
    G = rng.standard_normal(A.shape)
    g = lad.grad(lambda a: lad.sum(G * la.funm(a, np.exp)))(A.astype(np.float32))
    ref = sl.expm_frechet(A.T, G, compute_expm=False)
    assert g.dtype == np.float32
    assert np.abs(g - ref).max() <= 2e-3 * np.abs(ref).max()


def test_fallback_parlett_recurrence_matches_scipys_compiled_one():
    from scipy.linalg._linalg_pythran import _funm_loops

    from linalgad.backend import _funm_parlett
    rng = np.random.default_rng(25)
    T, Z = sl.rsf2csf(*sl.schur(rng.standard_normal((7, 7))))
    F0 = np.diag(np.sin(np.diag(T))).astype(T.dtype)
    a, m1 = _funm_loops(F0.copy(), T, 7, abs(T[0, 0]))
    b, m2 = _funm_parlett(F0.copy(), T, 7, abs(T[0, 0]))
    np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-14)
    assert m1 == m2


# -- review: non-holomorphic func ------------------------------------------------------------------

@pytest.mark.parametrize("func", [np.abs, np.conj, lambda x: np.exp(np.real(x))])
def test_non_holomorphic_func_is_refused_where_the_eigenvalues_are_complex(func):
    """np.abs & co. at complex eigenvalues: the rule's C-linear derivative is wrong (measured:
    ⟨ḡ, V⟩ = −0.36 against −0.97 by differences of SciPy's funm for np.abs); refused."""
    rng = np.random.default_rng(40)
    Ac = rng.standard_normal((3, 3)) + 1j * rng.standard_normal((3, 3))
    Ar = np.array([[0.3, 1.2, 0.1], [-1.1, 0.4, 0.2], [0.0, 0.5, -0.7]])  # conjugate pair
    G = rng.standard_normal((3, 3))
    for A in (Ac, Ar):
        with pytest.raises(ValueError, match="funm.*holomorphic"):
            lad.grad(lambda a: lad.real(lad.sum(G * la.funm(a, func))))(A)
        with pytest.raises(ValueError, match="funm.*holomorphic"):
            lad.jvp(lambda a: la.funm(a, func), (A,), (np.ones_like(A),))


def test_non_holomorphic_func_at_real_eigenvalues_of_a_real_matrix_is_exact():
    """Real A with real eigenvalues: real perturbations keep them real, only f on the real
    line matters (np.abs is smooth away from 0): no refusal, differences of SciPy agree."""
    rng = np.random.default_rng(41)
    A = _general(rng, 4)                                 # real eigenvalues in [−2, 2]
    G, V = rng.standard_normal((2, 4, 4))
    g = lad.grad(lambda a: lad.real(lad.sum(G * la.funm(a, np.abs))))(A)
    fd = _fd_grad(lambda a: _scipy(a, np.abs), A, G, V)
    assert abs(_inner(g, V) - fd) <= 1e-7 * max(1.0, abs(fd))


def test_holomorphic_funcs_are_not_refused():
    rng = np.random.default_rng(42)
    A = _general(rng, 4, complex_=True)
    for func in (np.exp, np.sqrt, lambda x: np.where(x.real > 0, np.exp(x), 1 + x),
                 lambda x: x ** 3 - 2j * x):
        lad.grad(lambda a: lad.real(lad.sum(la.funm(a, func))))(A)


def test_where_with_a_taylor_branch_is_differentiated_correctly_at_a_zero_eigenvalue():
    """φ₁(x) = expm1(x)/x with its small branch written as 1 + x/2 (funm.md, section 6): the
    gradient at a singular A agrees with differences of SciPy's funm."""
    rng = np.random.default_rng(43)

    def phi1(x):
        small = np.abs(x) < 1e-8
        return np.where(small, 1.0 + x / 2, np.expm1(x) / np.where(small, 1.0, x))
    P = rng.standard_normal((3, 3)) + 2 * np.eye(3)
    A = P @ np.diag([0.0, 1.0, -0.5]) @ np.linalg.inv(P)
    G, V = rng.standard_normal((2, 3, 3))
    g = lad.grad(lambda a: lad.sum(G * la.funm(a, phi1)))(A)
    fd = _fd_grad(lambda a: _scipy(a, phi1), A, G, V, h=1e-5)
    assert abs(_inner(g, V) - fd) <= 1e-6 * max(1.0, abs(fd))
