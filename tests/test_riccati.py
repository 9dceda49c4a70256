"""solve_continuous_are / solve_discrete_are: SciPy's values and errors, the derivatives the
registry does not exercise (losses users write, shared factors, stacks, jit), and what a
plain call costs."""

import numpy as np
import pytest
import scipy.linalg

import linalgad as lad
from linalgad.rules import riccati as R

la = lad.linalg
SOLVERS = {"care": (la.solve_continuous_are, scipy.linalg.solve_continuous_are),
           "dare": (la.solve_discrete_are, scipy.linalg.solve_discrete_are)}


def _residual(kind, X, a, b, q, r, e=None, s=None):
    n, m = b.shape[-2:]
    e = np.eye(n) if e is None else e
    s = np.zeros((n, m)) if s is None else s
    H = lambda x: np.conj(np.swapaxes(x, -1, -2))
    if kind == "care":
        Mt = H(e) @ X @ b + s
        return H(a) @ X @ e + H(e) @ X @ a - Mt @ np.linalg.solve(r, H(Mt)) + q
    Mt = H(a) @ X @ b + s
    return H(a) @ X @ a - H(e) @ X @ e - Mt @ np.linalg.solve(r + H(b) @ X @ b, H(Mt)) + q


@pytest.mark.parametrize("kind", ["care", "dare"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.complex64, np.complex128])
@pytest.mark.parametrize("generalized", [False, True])
def test_values_match_scipy_and_solve_the_equation(kind, dtype, generalized):
    ours, theirs = SOLVERS[kind]
    rng = np.random.default_rng(1)
    args = R._inputs(rng, 5, (), dtype, kind, generalized)
    X = ours(*args)
    assert X.dtype == dtype and X.shape == (5, 5)
    want = theirs(*(x.astype(np.result_type(dtype, np.float64)) for x in args))
    single = dtype in (np.float32, np.complex64)
    np.testing.assert_allclose(X, want, rtol=1e-5 if single else 1e-12,
                               atol=1e-5 * abs(want).max() if single else 0)
    res = _residual(kind, np.asarray(want), *(x.astype(want.dtype) for x in args))
    assert np.abs(res).max() < 1e-9 * np.abs(want).max()
    np.testing.assert_array_equal(X, np.conj(X.T))          # Hermitian, as SciPy's


@pytest.mark.parametrize("kind", ["care", "dare"])
def test_stacks_broadcast_and_match_each_matrix(kind):
    ours, theirs = SOLVERS[kind]
    rng = np.random.default_rng(2)
    a, b, q, r, e, s = R._inputs(rng, 4, (3,), np.float64, kind, True)
    X = ours(a[0], b, q[:1], r, e, s)           # one a and one q against stacks
    assert X.shape == (3, 4, 4)
    for i in range(3):
        np.testing.assert_allclose(X[i], theirs(a[0], b[i], q[0], r[i], e[i], s[i]),
                                   rtol=1e-12, atol=1e-12)
    g = lad.grad(lambda a0: lad.sum(ours(a0, b, q[:1], r, e, s)))(a[0])
    assert g.shape == (4, 4)
    want = sum(lad.grad(lambda a0, i=i: lad.sum(ours(a0, b[i], q[0], r[i], e[i], s[i])))(a[0])
               for i in range(3))
    np.testing.assert_allclose(g, want, rtol=1e-10, atol=1e-12)


def test_scipys_example_with_a_scalar_r():
    """SciPy's docstring example: one input, r = 1 (atleast_2d), and its gradient."""
    a = np.array([[4, 3], [-4.5, -3.5]])
    b = np.array([[1], [-1]])
    q = np.array([[9, 6], [6, 4.]])
    X = la.solve_continuous_are(a, b, q, 1)
    np.testing.assert_allclose(X, [[21.72792206, 14.48528137], [14.48528137, 9.65685425]],
                               rtol=1e-8)
    # d tr X / d r against a central difference of SciPy's
    g = lad.grad(lambda r: lad.trace(la.solve_continuous_are(a, b, q, r)))(1.0)
    h = 1e-6
    fd = (np.trace(scipy.linalg.solve_continuous_are(a, b, q, 1 + h)) -
          np.trace(scipy.linalg.solve_continuous_are(a, b, q, 1 - h))) / (2 * h)
    assert np.ndim(g) == 0
    np.testing.assert_allclose(g, fd, rtol=1e-6)


def _fd(f, x, v, h=1e-6):
    return (f(x + h * v) - f(x - h * v)) / (2 * h)


@pytest.mark.parametrize("kind", ["care", "dare"])
@pytest.mark.parametrize("dtype", [np.float64, np.complex128])
def test_lqr_cost_gradient_and_hessian_against_differences(kind, dtype):
    """J(θ) = tr(X Σ₀) for a system a(θ) = a₀ + θ a₁: the expected cost of the optimal
    regulator from random initial states — what a design loop differentiates.  Gradients
    with respect to a, b, q and r, and a Hessian-vector product, against differences of
    SciPy's solution."""
    ours, theirs = SOLVERS[kind]
    rng = np.random.default_rng(3)
    a, b, q, r = R._inputs(rng, 5, (), dtype, kind)
    sigma = np.cov(rng.standard_normal((5, 50)))
    herm = lambda x: (x + np.conj(x.T)) / 2

    def J(a_, b_, q_, r_):
        return lad.real(lad.trace(ours(a_, b_, q_, r_) @ sigma))

    def J_ref(a_, b_, q_, r_):
        return np.real(np.trace(theirs(a_, b_, q_, r_) @ sigma))

    grads = lad.grad(J, argnums=(0, 1, 2, 3))(a, b, q, r)
    for i, g in enumerate(grads):
        v = rng.standard_normal(g.shape) + (1j * rng.standard_normal(g.shape)
                                            if dtype == np.complex128 else 0)
        if i >= 2:
            v = herm(v)                     # q and r stay Hermitian
            np.testing.assert_allclose(g, herm(g), atol=1e-12 * abs(g).max())
        args = [a, b, q, r]

        def f(x, i=i):
            xs = list(args)
            xs[i] = x
            return J_ref(*xs)
        np.testing.assert_allclose(np.real(np.vdot(g, v)), _fd(f, args[i], v), rtol=1e-6)
    # Hessian-vector product in a: forward over reverse against differences of the gradient
    v = rng.standard_normal(a.shape) + (1j * rng.standard_normal(a.shape)
                                        if dtype == np.complex128 else 0)
    ga = lambda x: lad.grad(lambda t: J(t, b, q, r))(x)
    hv = lad.hvp(lambda t: J(t, b, q, r), (a,), (v,))
    hv = hv[0] if isinstance(hv, tuple) else hv
    np.testing.assert_allclose(hv, _fd(ga, a, v, 1e-5), rtol=1e-5,
                               atol=1e-6 * np.abs(hv).max())


def test_a_plain_call_computes_no_schur_form_and_derivatives_share_one(monkeypatch):
    """The closed loop's Schur form is the derivatives' cache: none in a plain call (the
    forward pass is SciPy's alone), one for a value, gradient and tangent of one call."""
    calls = []
    real = R.SchurFactors
    monkeypatch.setattr(R, "SchurFactors", lambda *a, **k: calls.append(1) or real(*a, **k))
    rng = np.random.default_rng(4)
    a, b, q, r = R._inputs(rng, 4, (), np.float64, "care")
    la.solve_continuous_are(a, b, q, r)
    assert calls == []
    W = rng.standard_normal((4, 4))
    lad.value_and_grad(lambda a_: lad.sum(W * la.solve_continuous_are(a_, b, q, r)))(a)
    assert calls == [1]
    calls.clear()
    lad.hvp(lambda a_: lad.sum(W * la.solve_continuous_are(a_, b, q, r)), (a,), (W,))
    assert len(calls) >= 1


@pytest.mark.parametrize("kind", ["care", "dare"])
def test_jit_replays_with_new_inputs(kind):
    ours, _ = SOLVERS[kind]
    rng = np.random.default_rng(5)
    a, b, q, r = R._inputs(rng, 4, (2,), np.float64, kind)
    W = rng.standard_normal((2, 4, 4))
    f = lambda a_, b_: lad.sum(W * ours(a_, b_, q, r))
    vg = lad.jit(lad.value_and_grad(f, argnums=(0, 1)))
    for scale in (1.0, 0.9, 1.1):
        got = vg(a * scale, b)
        want = lad.value_and_grad(f, argnums=(0, 1))(a * scale, b)
        np.testing.assert_allclose(got[0], want[0], rtol=1e-12)
        for x, y in zip(got[1], want[1]):
            np.testing.assert_allclose(x, y, rtol=1e-11, atol=1e-12 * abs(y).max())


def test_empty_and_one_by_one():
    X = la.solve_continuous_are(np.zeros((0, 0)), np.zeros((0, 1)), np.zeros((0, 0)), np.eye(1))
    assert X.shape == (0, 0)
    # 1×1: 2 a x − x² b²/r + q = 0, x = r (a + √(a² + b² q / r)) / b²
    a, b, q, r = 0.5, 2.0, 3.0, 1.5
    x = r * (a + np.sqrt(a * a + b * b * q / r)) / b ** 2
    np.testing.assert_allclose(la.solve_continuous_are([[a]], [[b]], [[q]], [[r]]), [[x]])
    g = lad.grad(lambda t: la.solve_continuous_are(t, [[b]], [[q]], [[r]])[0, 0])(
        np.array([[a]]))
    # dx/da = x / (b² x / r − a)   (from 2 x da + 2 (a − b² x / r) dx = 0)
    np.testing.assert_allclose(g, [[x / (b * b * x / r - a)]], rtol=1e-12)


def test_errors_name_the_function_and_the_matrix():
    rng = np.random.default_rng(6)
    a, b, q, r = R._inputs(rng, 3, (2,), np.float64, "care")
    care = la.solve_continuous_are
    q_bad = q.copy()
    q_bad[1, 0, 1] += 1.0
    with pytest.raises(ValueError, match=r"solve_continuous_are: q should be symmetric/hermitian "
                                         r"\(matrix 1 of the stack\)"):
        care(a, b, q_bad, r)
    a4, b4, q4, r4 = R._inputs(rng, 4, (), np.float64, "dare")
    with pytest.raises(ValueError, match=r"solve_discrete_are: r should be symmetric/hermitian$"):
        la.solve_discrete_are(a4, b4, q4, r4 + np.triu(np.ones((2, 2)), 1))
    with pytest.raises(ValueError, match="a and b should have the same number of rows"):
        care(a, b[..., :2, :], q, r)
    with pytest.raises(ValueError, match="r should be"):
        care(a, b, q, np.eye(3))
    with pytest.raises(ValueError, match="b and s should have the same shape"):
        care(a, b, q, r, s=np.zeros((3, 3)))
    with pytest.raises(ValueError, match="do not broadcast"):
        care(a, b[:1].repeat(3, 0), q, r)
    a_nan = a.copy()
    a_nan[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="solve_continuous_are"):
        care(a_nan, b, q, r)
    with pytest.raises(ValueError, match=r"solve_continuous_are: .*singular.*\(matrix 0"):
        care(a, b, q, np.zeros_like(r))
    # an unstable mode that b cannot reach: no stabilizing solution
    a_unst = np.stack([np.diag([1.0, -1.0, -2.0])] * 2)
    b_blind = np.zeros((2, 3, 1))
    b_blind[:, 1:, 0] = 1.0
    b_blind[0, 0, 0] = 1.0
    with pytest.raises(np.linalg.LinAlgError, match=r"solve_continuous_are: .*\(matrix 1 of "):
        care(a_unst, b_blind, np.stack([np.eye(3)] * 2), np.ones((2, 1, 1)))


def test_a_non_diagonal_e_is_solved_correctly_where_scipys_balancing_is_not():
    """SciPy 1.17 balances the pencil, e included, then forms X with the unscaled e: with a
    non-diagonal e and balanced=True its X misses the equation (residual 38 here) or it
    raises.  linalgad solves that pencil unbalanced: residual at rounding, and a gradient
    equal to differences of the true solution."""
    a = np.array([[-1.0, 1.0], [0.0, -2.0]])
    b = np.array([[0.0], [1.0]])
    q = np.diag([1.0, 1e4])
    r = np.eye(1)
    e = np.array([[1.0, 0.5], [0.0, 1.0]])
    for kind, aa in (("care", a), ("dare", a / 2)):
        ours, theirs = SOLVERS[kind]
        X = ours(aa, b, q, r, e)
        assert np.abs(_residual(kind, X, aa, b, q, r, e)).max() < 1e-8 * np.abs(X).max()
        bad = theirs(aa, b, q, r, e)                    # SciPy's, balanced
        assert np.abs(_residual(kind, bad, aa, b, q, r, e)).max() > 1e-5 * np.abs(X).max()
        g = lad.grad(lambda a_: lad.trace(ours(a_, b, q, r, e)))(aa)
        # differences of the equivalent standard equation in Y = eᵀ X e (a⁻¹-free for this
        # well-conditioned e, and smoother than the unbalanced pencil's X, residual 1e-9)
        ei = np.linalg.inv(e)
        X_std = lambda a_: ei.T @ theirs(ei @ a_, ei @ b, q, r) @ ei
        np.testing.assert_allclose(X, X_std(aa), rtol=1e-9, atol=1e-9 * np.abs(X).max())
        fd = np.zeros_like(aa)
        for i in range(2):
            for j in range(2):
                d = np.zeros_like(aa)
                d[i, j] = 1e-5
                fd[i, j] = (np.trace(X_std(aa + d)) - np.trace(X_std(aa - d))) / 2e-5
        np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-7 * np.abs(fd).max())


def test_single_precision_q_is_judged_in_its_own_precision():
    """q = cᵀ w c in float32 is Hermitian to float32's rounding, which SciPy accepts; the
    double-precision copy the solver works on is not, and SciPy's check raised there."""
    rng = np.random.default_rng(8)
    a, b, _, r = R._inputs(rng, 5, (), np.float32, "care")
    c = rng.standard_normal((5, 5)).astype(np.float32)
    w = np.diag(rng.uniform(1, 2, 5)).astype(np.float32)
    q = c.T @ w @ c
    assert np.any(q != q.T)
    X = la.solve_continuous_are(a, b, q, r)
    assert X.dtype == np.float32
    np.testing.assert_allclose(X, scipy.linalg.solve_continuous_are(a, b, q, r), rtol=1e-4,
                               atol=1e-4 * abs(X).max())


def test_a_closed_loop_on_the_boundary_has_no_derivative():
    """An uncontrollable mode at 0 that q does not penalize: SciPy returns a finite X whose
    closed loop keeps that eigenvalue on the imaginary axis (no stabilizing solution).  The
    value is SciPy's; a derivative raises, saying why (it raised the Sylvester kernel's
    'a and -b have a common eigenvalue', about matrices the user never passed)."""
    a = np.diag([0.0, -1.0])
    b = np.array([[0.0], [1.0]])
    q = np.diag([0.0, 1.0])
    r = np.eye(1)
    X = la.solve_continuous_are(a, b, q, r)
    np.testing.assert_allclose(X, scipy.linalg.solve_continuous_are(a, b, q, r), atol=1e-12)
    with pytest.raises(np.linalg.LinAlgError,
                       match="solve_continuous_are: the solution is not stabilizing"):
        lad.grad(lambda a_: lad.trace(la.solve_continuous_are(a_, b, q, r)))(a)
    with pytest.raises(np.linalg.LinAlgError,
                       match=r"solve_discrete_are: the solution is not stabilizing: .*\(matrix 1"):
        A = np.stack([np.diag([0.5, 0.2]), np.diag([1.0, 0.5])])
        lad.grad(lambda a_: lad.sum(lad.trace(la.solve_discrete_are(a_, b, q, r),
                                              axis1=-2, axis2=-1)))(A)
    with pytest.raises(ValueError, match="solve_continuous_are: b has no columns"):
        la.solve_continuous_are(a, np.zeros((2, 0)), q, np.zeros((0, 0)))


@pytest.mark.parametrize("kind", ["care", "dare"])
def test_doubling_solves_and_scipy_takes_what_it_leaves(kind, monkeypatch):
    """The forward pass: the doubling algorithm for the whole stack (SciPy's solver is not
    called; for the CARE after a Cayley transform of the Hamiltonian), agreeing with SciPy's
    QZ solution to rounding, real and complex, with e and s; a matrix where doubling does
    not converge cleanly goes to SciPy's solver."""
    import linalgad.backend as B
    name = "solve_continuous_are" if kind == "care" else "solve_discrete_are"
    ours = SOLVERS[kind][0]
    calls = []
    real = getattr(scipy.linalg, name)
    monkeypatch.setattr(scipy.linalg, name, lambda *a, **k: calls.append(1) or real(*a, **k))
    rng = np.random.default_rng(9)
    for dtype in (np.float64, np.complex128):
        for generalized in (False, True):
            args = R._inputs(rng, 6, (4,), dtype, kind, generalized)
            X = ours(*args)
            assert calls == []
            for i in range(4):
                want = real(*(x[i] for x in args), balanced=False)
                np.testing.assert_allclose(X[i], want, rtol=1e-10, atol=1e-11 * abs(want).max())
                assert np.abs(_residual(kind, X[i], *(x[i] for x in args))).max() < \
                    1e-11 * np.abs(X[i]).max()
    # doubling reports matrix 1 as failed: SciPy solves that one alone
    orig = B.riccati_doubling

    def partial(*a, **k):
        X, ok = orig(*a, **k)
        ok = ok.copy()
        ok[1] = False
        return X, ok
    monkeypatch.setattr(B, "riccati_doubling", partial)
    args = R._inputs(rng, 5, (3,), np.float64, kind)
    X = ours(*args)
    assert len(calls) == 1
    for i in range(3):
        np.testing.assert_allclose(X[i], real(*(x[i] for x in args)), rtol=1e-10)
    # no convergence at all (one step allowed): every matrix through SciPy
    monkeypatch.setattr(B, "riccati_doubling", orig)
    monkeypatch.setattr(B, "RICCATI_DOUBLING_MAXIT", 1)
    calls.clear()
    X = ours(*args)
    assert len(calls) == 3
    np.testing.assert_allclose(X[2], real(*(x[2] for x in args)), rtol=1e-12)


def test_doubling_leaves_slow_and_critical_problems_and_single_failures_to_scipy(monkeypatch):
    """Cases an adversarial review found: a critical CARE (a = b = 1, q = 2, r = −2), where
    doubling converges linearly to an X on the boundary and SciPy raises; a CARE whose
    spectrum spans 10⁵, where 21 steps lost 10⁻⁹; one singular r in a stack of 200, which
    sent all 200 to SciPy (NumPy's batched solve fails for the whole stack)."""
    import linalgad.backend as B
    with pytest.raises(np.linalg.LinAlgError, match="solve_continuous_are"):
        la.solve_continuous_are([[1.0]], [[1.0]], [[2.0]], [[-2.0]])
    a = np.array([[-809.6657231576277, -8478.713266704313],
                  [3852.1423858114545, 40339.178428688814]])
    b = np.array([[-0.16147456556353149, 0.37018792901034814],
                  [-0.24648330463094242, -1.5538209829768286]])
    want = scipy.linalg.solve_continuous_are(a, b, np.eye(2), np.eye(2))
    np.testing.assert_allclose(la.solve_continuous_are(a, b, np.eye(2), np.eye(2)), want,
                               rtol=1e-12)
    calls = []
    real = scipy.linalg.solve_discrete_are
    monkeypatch.setattr(scipy.linalg, "solve_discrete_are",
                        lambda *x, **k: calls.append(1) or real(*x, **k))
    rng = np.random.default_rng(13)
    a, b, q, r = R._inputs(rng, 8, (20,), np.float64, "dare")
    r = r.copy()
    r[3] = np.diag([1.0, 1.0, 1.0, 0.0])                    # SciPy's DARE accepts it
    X = la.solve_discrete_are(a, b, q, r)
    assert len(calls) <= 1
    for i in (0, 3, 19):
        np.testing.assert_allclose(X[i], real(a[i], b[i], q[i], r[i]), rtol=1e-10,
                                   atol=1e-10 * abs(X[i]).max())
    assert B.RICCATI_DOUBLING_MAXIT == 16
