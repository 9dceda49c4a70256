"""hessenberg (scipy.linalg.hessenberg): values, derivatives against finite differences of SciPy's
own function, the gauge, small, empty and reduced inputs, stacks, errors, second order.

The registry's generated checks (tests/test_rules.py) also cover it; these tests compare with
SciPy's hessenberg directly (its values bit for bit, its finite differences for arbitrary
losses of H and Q) and with an independent dense solve of the constraint that fixes Ω."""

import inspect

import numpy as np
import pytest
import scipy.linalg as sl

import linalgad as lad
from linalgad import linalg as la

import _fake_cupy

DTYPES = (np.float32, np.float64, np.complex64, np.complex128)
SINGLE = (np.dtype(np.float32), np.dtype(np.complex64))


def _draw(rng, shape, dtype):
    x = rng.standard_normal(shape)
    if np.dtype(dtype).kind == "c":
        x = x + 1j * rng.standard_normal(shape)
    return x.astype(dtype)


def _inner(X, Y):
    return float(np.sum(np.conj(np.asarray(X, complex)) * np.asarray(Y, complex)).real)


def _double(x):
    return x.astype(np.complex128 if x.dtype.kind == "c" else np.float64)


def _scipy_loss(WH, WQ):
    """A nonlinear loss of SciPy's (H, Q): its value, for finite differences."""
    def f(a):
        H, Q = sl.hessenberg(a, calc_q=True)
        return (np.sum(WH * np.abs(H) ** 2) + np.sum(np.real(WQ * Q))
                + np.sum(np.real(Q[..., 1:, 1:]) ** 3))
    return f


def _lad_loss(WH, WQ):
    def f(a):
        H, Q = la.hessenberg(a, calc_q=True)
        return (lad.sum(WH * lad.real(H * lad.conj(H))) + lad.sum(lad.real(WQ * Q))
                + lad.sum(lad.real(Q[..., 1:, 1:]) ** 3))
    return f


def _fd(f, a, v, h=1e-6):
    """Central difference of f at a along v, Richardson-extrapolated (double precision)."""
    def c(s):
        return (f(a + s * v) - f(a - s * v)) / (2 * s)
    wide, narrow = c(h), c(h / 2)
    return narrow + (narrow - wide) / 3


def test_signature_is_scipys():
    assert inspect.signature(la.hessenberg) == inspect.signature(sl.hessenberg)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 1), (2, 2), (3, 3), (5, 5), (17, 17), (2, 3, 6, 6),
                                   (4, 2, 2)])
def test_values_are_scipys(dtype, shape):
    a = _draw(np.random.default_rng(1), shape, dtype)
    H = la.hessenberg(a)
    H2, Q = la.hessenberg(a, calc_q=True)
    Hs, Qs = sl.hessenberg(a, calc_q=True)
    assert np.array_equal(H, sl.hessenberg(a)) and np.array_equal(H2, Hs)
    assert H.dtype == np.dtype(dtype) and Q.dtype == np.dtype(dtype)
    if shape[-1] > 2:
        assert np.array_equal(Q, Qs) and Q.dtype == Qs.dtype
    else:       # SciPy's shortcut: Q = I, float64 whatever the dtype (here a's dtype)
        assert np.array_equal(Q, np.broadcast_to(np.eye(shape[-1]), shape))
    assert not isinstance(la.hessenberg(a, calc_q=1), np.ndarray)   # SciPy's truthiness


def test_gauge_of_the_output():
    """Q e1 = e1 and a real subdiagonal (complex) in SciPy's output: what makes the
    derivative unique."""
    a = _draw(np.random.default_rng(2), (3, 7, 7), np.complex128)
    H, Q = sl.hessenberg(a, calc_q=True)
    e1 = np.eye(7)[0]
    assert np.array_equal(Q[..., :, 0], np.broadcast_to(e1, (3, 7)))
    assert np.array_equal(Q[..., 0, :], np.broadcast_to(e1, (3, 7)))
    assert not np.any(np.diagonal(H, -1, -2, -1).imag)
    assert not np.any(np.tril(H, -2))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(3, 3), (4, 4), (7, 7), (2, 5, 5)])
def test_gradient_matches_finite_differences_of_scipy(dtype, shape):
    rng = np.random.default_rng(3)
    a = _draw(rng, shape, dtype)
    v = _draw(rng, shape, dtype)
    WH = rng.standard_normal(shape)
    WQ = _draw(rng, shape, np.complex128)
    g = lad.grad(_lad_loss(WH, WQ))(a)
    assert g.dtype == a.dtype and g.shape == a.shape
    want = _fd(_scipy_loss(WH, WQ), _double(a), _double(v))
    tol = 2e-3 if np.dtype(dtype) in SINGLE else 1e-7
    assert abs(_inner(g, v) - want) <= tol * (abs(want) + np.linalg.norm(g) * np.linalg.norm(v)
                                             / np.sqrt(g.size))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("calc_q", [False, True])
def test_jvp_matches_finite_differences_of_scipy(dtype, calc_q):
    rng = np.random.default_rng(4)
    a, v = _draw(rng, (2, 6, 6), dtype), _draw(rng, (2, 6, 6), dtype)
    out, t = lad.jvp(lambda x: la.hessenberg(x, calc_q=calc_q), (a,), (v,))
    outs, ts = (out, t) if calc_q else ((out,), (t,))
    fd = _fd(lambda x: np.stack(sl.hessenberg(x, calc_q=True)), _double(a), _double(v))
    tol = 2e-3 if np.dtype(dtype) in SINGLE else 1e-7
    for k, (o, d) in enumerate(zip(outs, ts)):
        assert d.dtype == np.dtype(dtype)
        assert np.linalg.norm(d - fd[k]) <= tol * np.linalg.norm(fd[k])
    if calc_q:      # the tangent of Q keeps the gauge: Q̇ e1 = 0, QᴴQ̇ skew-Hermitian
        Q, Qd = outs[1], ts[1]
        assert np.abs(Qd[..., :, 0]).max() <= 1e-5
        S = np.conj(np.swapaxes(Q, -1, -2)) @ Qd
        assert np.abs(S + np.conj(np.swapaxes(S, -1, -2))).max() <= (1e-4 if np.dtype(dtype)
                                                                     in SINGLE else 1e-12)


@pytest.mark.parametrize("calc_q", [False, True])
def test_h_only_and_h_and_q_give_the_same_h_gradient(calc_q):
    rng = np.random.default_rng(5)
    a = _draw(rng, (5, 5), np.complex128)
    W = _draw(rng, (5, 5), np.complex128)

    def loss(x):
        out = la.hessenberg(x, calc_q=calc_q)
        H = out[0] if calc_q else out
        return lad.sum(lad.real(W * H))
    g = lad.grad(loss)(a)
    want = np.array([[_fd(lambda x: np.sum(np.real(W * sl.hessenberg(x))), a,
                          np.eye(25)[5 * i + j].reshape(5, 5))
                      + 1j * _fd(lambda x: np.sum(np.real(W * sl.hessenberg(x))), a,
                                 1j * np.eye(25)[5 * i + j].reshape(5, 5))
                      for j in range(5)] for i in range(5)])
    np.testing.assert_allclose(g, want, rtol=1e-7, atol=1e-8)


def _dense_omega(H, E):
    """Ω from the constraint P_V(E + HΩ − ΩH) = 0 by a dense least-squares solve over Ω's
    real parameters (independent of the sweeps)."""
    n = H.shape[-1]
    cplx = np.iscomplexobj(H) or np.iscomplexobj(E)
    basis = []
    for j in range(1, n):
        for i in range(j + 1, n):
            for unit in ((1, 1j) if cplx else (1,)):
                B = np.zeros((n, n), complex)
                B[i, j] = unit
                B[j, i] = -np.conj(unit)
                basis.append(B)
        if cplx:
            B = np.zeros((n, n), complex)
            B[j, j] = 1j
            basis.append(B)

    def constraint(X):
        rows = [X[i, j] for j in range(n) for i in range(j + 2, n)]
        parts = [np.real(rows)]
        if cplx:
            parts += [np.imag(rows), np.imag(np.diagonal(X, -1))]
        return np.concatenate(parts)
    K = np.stack([constraint(H @ B - B @ H) for B in basis], axis=1)
    c = np.linalg.solve(K, -constraint(E))
    return sum(ci * B for ci, B in zip(c, basis))


@pytest.mark.parametrize("dtype", [np.float64, np.complex128])
def test_tangent_matches_a_dense_solve_of_the_constraint(dtype):
    rng = np.random.default_rng(6)
    a, v = _draw(rng, (6, 6), dtype), _draw(rng, (6, 6), dtype)
    H, Q = sl.hessenberg(a, calc_q=True)
    E = np.conj(Q.T) @ v @ Q
    Om = _dense_omega(H, E)
    _, (Hd, Qd) = lad.jvp(lambda x: la.hessenberg(x, calc_q=True), (a,), (v,))
    np.testing.assert_allclose(Qd, Q @ Om, atol=1e-11)
    np.testing.assert_allclose(Hd, E + H @ Om - Om @ H, atol=1e-11)


@pytest.mark.parametrize("dtype", DTYPES)
def test_second_order_matches_differences_of_the_gradient(dtype):
    rng = np.random.default_rng(7)
    a, v = _draw(rng, (2, 5, 5), dtype), _draw(rng, (2, 5, 5), dtype)
    WH = rng.standard_normal((2, 5, 5))
    WQ = _draw(rng, (2, 5, 5), np.complex128)
    loss = _lad_loss(WH, WQ)
    (hv,) = lad.hvp(loss, (a,), (v,))
    assert hv.dtype == np.dtype(dtype)
    g = lad.grad(loss)
    fd = _fd(g, _double(a), _double(v), h=1e-5)
    tol = 5e-3 if np.dtype(dtype) in SINGLE else 1e-6
    assert np.linalg.norm(hv - fd) <= tol * np.linalg.norm(fd)
    # reverse over reverse: the Jacobian of the gradient, one column, agrees
    if np.dtype(dtype) == np.float64:
        J = lad.jacrev(g)(a)
        np.testing.assert_allclose(np.tensordot(J, v, axes=3), hv, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("dtype", [np.float64, np.complex128])
def test_forward_over_forward_and_reverse_over_forward(dtype):
    """Second derivatives through the forward rule (the sweep's own derivative in H)."""
    rng = np.random.default_rng(14)
    a, v, u = (_draw(rng, (5, 5), dtype) for _ in range(3))
    W = _draw(rng, (2, 5, 5), np.complex128)

    def push(x):
        return lad.jvp(lambda y: la.hessenberg(y, calc_q=True), (x,), (v,))[1]
    _, (Hdd, Qdd) = lad.jvp(push, (a,), (u,))
    fd = _fd(lambda x: np.stack(push(x)), a, u, h=1e-5)
    np.testing.assert_allclose(Hdd, fd[0], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(Qdd, fd[1], rtol=1e-6, atol=1e-7)

    def pushed_loss(x):
        Hd, Qd = push(x)
        return lad.sum(lad.real(W[0] * Hd)) + lad.sum(lad.real(W[1] * Qd))
    g = lad.grad(pushed_loss)(a)
    want = float(np.sum(np.real(W[0] * fd[0])) + np.sum(np.real(W[1] * fd[1])))
    assert abs(_inner(g, u) - want) <= 1e-6 * (abs(want) + 1)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [1, 2])
def test_small_matrices_are_already_hessenberg(dtype, n):
    rng = np.random.default_rng(8)
    a = _draw(rng, (3, n, n), dtype)
    H, Q = la.hessenberg(a, calc_q=True)
    assert np.array_equal(H, a) and H is not a
    Hb, Qb = _draw(rng, (3, n, n), dtype), _draw(rng, (3, n, n), dtype)
    _, pull = lad.vjp(lambda x: la.hessenberg(x, calc_q=True), a)
    (g,) = pull((Hb, Qb))
    assert np.array_equal(g, Hb)            # H = a, Q = I: Ā = H̄
    _, (Hd, Qd) = lad.jvp(lambda x: la.hessenberg(x, calc_q=True), (a,), (Hb,))
    assert np.array_equal(Hd, Hb) and not np.any(Qd)


@pytest.mark.parametrize("dtype", DTYPES + (np.int64,))
@pytest.mark.parametrize("shape", [(0, 0), (2, 0, 0), (0, 3, 3), (0, 1, 1)])
def test_empty_inputs(dtype, shape):
    a = np.zeros(shape, dtype=dtype)
    H, Q = la.hessenberg(a, calc_q=True)
    if len(shape) > 2 and shape[0] == 0:
        # SciPy 1.17 refuses zero-size batches; linalgad gives empty results, in the dtypes
        # SciPy gives one matrix of the core shape
        with pytest.raises(ValueError, match="zero-size batches"):
            sl.hessenberg(a)
        Hs, Qs = (np.zeros(shape, np.asarray(x).dtype)
                  for x in sl.hessenberg(np.zeros(shape[1:], dtype), calc_q=True))
    else:
        Hs, Qs = sl.hessenberg(a, calc_q=True)
        assert la.hessenberg(a).dtype == sl.hessenberg(a).dtype
    assert H.shape == Hs.shape == shape and Q.shape == Qs.shape
    # (an integer 1 x 1 core: SciPy returns the integers themselves, linalgad float64)
    assert H.dtype == (Hs.dtype if Hs.dtype.kind in "fc" else np.float64)
    assert Q.dtype == H.dtype
    if a.dtype.kind in "fc":
        g = lad.grad(lambda x: lad.sum(lad.real(la.hessenberg(x, calc_q=True)[1])))(a)
        assert g.shape == shape and g.dtype == a.dtype
        _, (Hd, Qd) = lad.jvp(lambda x: la.hessenberg(x, calc_q=True), (a,), (a,))
        assert Hd.shape == Qd.shape == shape


def test_integer_and_list_inputs():
    a = [[2, 5, 8, 7], [5, 2, 2, 8], [7, 5, 6, 6], [5, 4, 4, 8]]
    H, Q = la.hessenberg(a, calc_q=True)
    Hs, Qs = sl.hessenberg(a, calc_q=True)
    assert H.dtype == Hs.dtype == np.float64
    np.testing.assert_array_equal(H, Hs)
    np.testing.assert_array_equal(Q, Qs)
    assert la.hessenberg(np.array([[1, 2], [3, 4]])).dtype == np.float64   # SciPy: int64
    # linalgad's integer rule (NumPy's): float64 for every integer and boolean type
    for dt in (np.bool_, np.int8, np.uint16):
        assert la.hessenberg(np.eye(4, dtype=dt)).dtype == np.float64
    assert la.hessenberg(np.eye(4, dtype=np.float16)).dtype == np.float32


@pytest.fixture
def cupy(monkeypatch):
    return _fake_cupy.install(monkeypatch)


@pytest.mark.parametrize("dtype", [np.float32, np.complex128])
def test_device_arrays_stay_on_the_device(cupy, dtype):
    """Emulated CuPy: the reduction goes through the host, the sweeps stay on the device;
    values, gradients and tangents agree with the CPU's."""
    rng = np.random.default_rng(15)
    a, v = _draw(rng, (2, 6, 6), dtype), _draw(rng, (2, 6, 6), dtype)
    W = rng.standard_normal((2, 6, 6))
    da, dv = cupy.asarray(a), cupy.asarray(v)

    def loss(x, w):
        H, Q = la.hessenberg(x, calc_q=True)
        return lad.sum(w * lad.real(H * lad.conj(H))) + lad.sum(lad.real(Q) ** 3)
    H, Q = la.hessenberg(da, calc_q=True)
    assert isinstance(H, cupy.ndarray) and isinstance(Q, cupy.ndarray)
    assert np.array_equal(cupy.asnumpy(H), sl.hessenberg(a))
    g = lad.grad(loss)(da, cupy.asarray(W))
    assert isinstance(g, cupy.ndarray)
    tol = 1e-4 if np.dtype(dtype) in SINGLE else 1e-12
    np.testing.assert_allclose(cupy.asnumpy(g), lad.grad(loss)(a, W), rtol=tol, atol=tol)
    _, (Hd, Qd) = lad.jvp(lambda x: la.hessenberg(x, calc_q=True), (da,), (dv,))
    _, (Hc, Qc) = lad.jvp(lambda x: la.hessenberg(x, calc_q=True), (a,), (v,))
    assert isinstance(Qd, cupy.ndarray)
    np.testing.assert_allclose(cupy.asnumpy(Qd), Qc, rtol=tol, atol=tol)
    Hs, Qs = la.hessenberg(cupy.asarray(a[:, :2, :2]), calc_q=True)      # n <= 2
    assert isinstance(Hs, cupy.ndarray) and isinstance(Qs, cupy.ndarray)
    with pytest.raises(np.linalg.LinAlgError, match="hessenberg"):
        lad.grad(lambda x: lad.sum(la.hessenberg(x) ** 2))(cupy.asarray(_reduced(rng)))


def test_errors_name_hessenberg():
    for bad in (np.ones((3, 4)), np.ones(3), np.ones((2, 3, 4)), 1.0):
        with pytest.raises(ValueError, match="hessenberg"):
            la.hessenberg(bad)
    a = np.eye(4)
    a[1, 2] = np.nan
    with pytest.raises(ValueError, match="hessenberg"):
        la.hessenberg(a)
    with pytest.raises(ValueError, match=r"hessenberg.*\(1,\)"):
        la.hessenberg(np.stack([np.eye(4), a]))
    assert np.isnan(la.hessenberg(a, check_finite=False)).any()    # as SciPy: no check


def _reduced(rng):
    a = np.triu(rng.standard_normal((5, 5)), -1)
    a[3, 2] = 0.0
    return a


def test_reduced_matrix_values_and_error():
    rng = np.random.default_rng(9)
    a = _reduced(rng)
    H, Q = la.hessenberg(a, calc_q=True)
    Hs, Qs = sl.hessenberg(a, calc_q=True)
    assert np.array_equal(H, Hs) and np.array_equal(Q, Qs)
    with pytest.raises(np.linalg.LinAlgError, match=r"hessenberg.*H\[3, 2\]"):
        lad.grad(lambda x: lad.sum(la.hessenberg(x) ** 2))(a)
    with pytest.raises(np.linalg.LinAlgError, match="hessenberg"):
        lad.jvp(lambda x: la.hessenberg(x, calc_q=True), (a,), (a,))
    stack = np.stack([rng.standard_normal((5, 5)), rng.standard_normal((5, 5)), a])
    with pytest.raises(np.linalg.LinAlgError, match=r"hessenberg.*matrix \(2,\)"):
        lad.grad(lambda x: lad.sum(la.hessenberg(x) ** 2))(stack)
    # numerically zero, not exactly: also refused (the derivative would be ~1/h ~ 1e16)
    a[3, 2] = 1e-17
    with pytest.raises(np.linalg.LinAlgError, match="hessenberg"):
        lad.grad(lambda x: lad.sum(la.hessenberg(x) ** 2))(a)
    # small but meaningful: finite, and still the derivative (of a 1/h-sized map)
    a[3, 2] = 1e-4
    g = lad.grad(lambda x: lad.sum(la.hessenberg(x, calc_q=True)[1][..., 3:, 3:] ** 2))(a)
    assert np.all(np.isfinite(g))


def test_already_hessenberg_input_gets_the_branch_through_its_value():
    """For an unreduced Hessenberg a, SciPy returns (a, I) but flips subdiagonal signs at
    every nearby matrix; the derivative is that of the branch that keeps a's signs."""
    rng = np.random.default_rng(10)
    for dtype in (np.float64, np.complex128):
        a = np.triu(_draw(rng, (5, 5), dtype), -1)
        a[np.arange(1, 5), np.arange(4)] = rng.uniform(0.5, 1.5, 4) * rng.choice([-1, 1], 4)
        v = _draw(rng, (5, 5), dtype)
        H, Q = la.hessenberg(a, calc_q=True)
        assert np.array_equal(H, a) and np.array_equal(Q, np.eye(5))

        def branch(x):
            Hx, Qx = sl.hessenberg(x, calc_q=True)
            s = np.sign(np.diagonal(Hx, -1).real) * np.sign(np.diagonal(a, -1).real)
            d = np.concatenate([[1.0], np.cumprod(s)])
            return np.stack([d[:, None] * Hx * d, Qx * d])
        _, (Hd, Qd) = lad.jvp(lambda x: la.hessenberg(x, calc_q=True), (a,), (v,))
        fd = _fd(branch, a, v)
        np.testing.assert_allclose(Hd, fd[0], atol=1e-7)
        np.testing.assert_allclose(Qd, fd[1], atol=1e-7)


def test_stack_gradient_is_the_per_matrix_gradient():
    rng = np.random.default_rng(11)
    a = _draw(rng, (3, 2, 5, 5), np.complex128)
    W = _draw(rng, (3, 2, 5, 5), np.complex128)

    def loss(x):
        H, Q = la.hessenberg(x, calc_q=True)
        return lad.sum(lad.real(W * H)) + lad.sum(lad.real(W * Q) ** 2)
    g = lad.grad(loss)(a)
    for idx in np.ndindex(3, 2):
        gi = lad.grad(lambda x: lad.sum(lad.real(W[idx] * la.hessenberg(x, calc_q=True)[0]))
                      + lad.sum(lad.real(W[idx] * la.hessenberg(x, calc_q=True)[1]) ** 2))(a[idx])
        np.testing.assert_allclose(g[idx], gi, rtol=1e-12, atol=1e-12)


def test_jit_replays_value_and_gradient():
    rng = np.random.default_rng(12)
    W = rng.standard_normal((6, 6))

    def loss(x):
        H, Q = la.hessenberg(x, calc_q=True)
        return lad.sum(W * H ** 2) + lad.sum(Q[..., 2:, 1])
    f = lad.jit(lad.value_and_grad(loss))
    for _ in range(3):
        a = rng.standard_normal((6, 6))
        v, g = f(a)
        v0, g0 = lad.value_and_grad(loss)(a)
        np.testing.assert_allclose(v, v0, rtol=1e-12)
        np.testing.assert_allclose(g, g0, rtol=1e-10, atol=1e-12)


def test_larger_matrix_gradient_and_cost_path():
    """n = 40 (blocked gehrd): gradient against finite differences of SciPy along a
    direction, H-only loss (the calc_q=False path with a trace)."""
    rng = np.random.default_rng(13)
    a = rng.standard_normal((40, 40)) / np.sqrt(40)
    v = rng.standard_normal((40, 40))
    W = rng.standard_normal((40, 40))
    g = lad.grad(lambda x: lad.sum(W * la.hessenberg(x) ** 2))(a)
    want = _fd(lambda x: np.sum(W * sl.hessenberg(x) ** 2), a, v)
    assert abs(_inner(g, v) - want) <= 1e-6 * (abs(want) + np.linalg.norm(g) * np.linalg.norm(v)
                                              / 40)


def test_huge_first_row_is_not_refused():
    """H's rows 1: (its subdiagonal included) depend only on a's rows 1:, and Q only on
    them too (gehrd's reflectors act on rows 1: from the left; from the right each row by
    itself): a huge first row, which dominates ‖H‖_F, does not make the subdiagonal
    inaccurate, so it must not be refused as "numerically zero"."""
    rng = np.random.default_rng(30)
    b = rng.standard_normal((6, 6))
    v = rng.standard_normal((6, 6))
    a1 = b.copy()
    a1[0, -1] = 1e16
    a2 = b.copy()
    a2[0, :] *= 1e15
    for a in (a1, a2):
        _, (Hd, Qd) = lad.jvp(lambda x: la.hessenberg(x, calc_q=True), (a,), (v,))
        fd = _fd(lambda x: sl.hessenberg(x, calc_q=True)[1], a, v, h=1e-4)
        np.testing.assert_allclose(Qd, fd, atol=1e-7)
        fdH = _fd(lambda x: sl.hessenberg(x)[1:], a, v, h=1e-4)
        np.testing.assert_allclose(Hd[1:], fdH, atol=1e-6)
