"""The transforms: meanings, structures, composition, errors, threads, memory."""

import gc
import threading
import tracemalloc
import weakref

import numpy as np
import pytest

import linalgad as lad
from linalgad import linalg as la
from linalgad import tape
from linalgad.testing import check_grads
from linalgad.testing import matrices as M

RNG = np.random.default_rng(7)


def _loss(A, b):
    x = la.solve(A, b)
    return lad.sum(lad.tanh(x) ** 2) + lad.sum(A * A) * 0.1


def _fd_grad(f, x, h=1e-6):
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[i] = h
        g[i] = (f(x + e) - f(x - e)) / (2 * h)
    return g


# -- meanings -------------------------------------------------------------------

def test_grad_and_value_and_grad_agree_with_finite_differences():
    A = M.random_general(RNG, 4, (), np.float64)
    b = M.random_rhs(RNG, 4, 2, (), np.float64)
    value, (gA, gb) = lad.value_and_grad(_loss, argnums=(0, 1))(A, b)
    assert value == pytest.approx(float(_loss(A, b)))
    np.testing.assert_allclose(gA, _fd_grad(lambda A: float(_loss(A, b)), A), rtol=1e-6)
    np.testing.assert_allclose(gb, _fd_grad(lambda b: float(_loss(A, b)), b), rtol=1e-6)
    # argnums int -> a single gradient; default argnums=0
    np.testing.assert_array_equal(lad.grad(_loss)(A, b), gA)
    np.testing.assert_array_equal(lad.grad(_loss, argnums=1)(A, b), gb)
    np.testing.assert_array_equal(lad.grad(_loss, argnums=-1)(A, b), gb)


def test_has_aux():
    A = M.random_general(RNG, 3, (), np.float64)
    b = np.ones(3)

    def f(A):
        x = la.solve(A, b)
        return lad.sum(x * x), {"x": x}

    (val, aux), g = lad.value_and_grad(f, has_aux=True)(A)
    np.testing.assert_allclose(aux["x"], np.linalg.solve(A, b))
    assert type(aux["x"]) is np.ndarray
    g2, aux2 = lad.grad(f, has_aux=True)(A)
    np.testing.assert_array_equal(g, g2)
    out, vjp_fn, aux3 = lad.vjp(f, A, has_aux=True)
    (t_out, t_tan, aux4) = lad.jvp(f, (A,), (A,), has_aux=True)
    assert set(aux3) == set(aux4) == {"x"}


def test_nested_structures_in_and_out():
    params = {"A": M.random_general(RNG, 3, (), np.float64),
              "rhs": [np.ones(3), np.arange(3.0)], "none": None}

    def f(p):
        x = la.solve(p["A"], p["rhs"][0] + p["rhs"][1])
        return lad.sum(x ** 2)

    g = lad.grad(f)(params)
    assert set(g) == {"A", "rhs", "none"} and g["none"] is None
    assert isinstance(g["rhs"], list) and len(g["rhs"]) == 2
    np.testing.assert_allclose(g["rhs"][0], g["rhs"][1])

    def h(p):
        return {"x": la.solve(p["A"], p["rhs"][0]), "s": lad.sum(p["A"])}

    out, pull = lad.vjp(h, params)
    ct = {"x": np.ones(3), "s": np.array(2.0)}
    (g,) = pull(ct)
    assert g["A"].shape == (3, 3) and g["rhs"][1].shape == (3,)
    np.testing.assert_array_equal(g["rhs"][1], 0)
    check_grads(h, (params,), order=2)


def test_vjp_function_can_be_called_repeatedly():
    A = M.random_general(RNG, 3, (), np.float64)
    out, pull = lad.vjp(lambda A: la.solve(A, np.ones(3)), A)
    g1 = pull(np.ones(3))
    g2 = pull(np.ones(3))
    g3 = pull(2 * np.ones(3))
    np.testing.assert_array_equal(g1[0], g2[0])
    np.testing.assert_allclose(g3[0], 2 * g1[0])


def test_constant_output_gives_zero_gradient():
    g = lad.grad(lambda x: lad.sum(lad.stop_gradient(x) ** 2))(np.ones(3))
    np.testing.assert_array_equal(g, 0)
    g = lad.grad(lambda x: np.float64(3.0))(np.ones(3))
    np.testing.assert_array_equal(g, 0)


# -- composition ----------------------------------------------------------------

def test_jacfwd_equals_jacrev():
    A = M.random_general(RNG, 3, (), np.float64)
    b = M.random_rhs(RNG, 3, 2, (), np.float64)

    def f(A, b):
        return la.solve(A, b)

    for argnums in (0, 1, (0, 1)):
        Jf = lad.jacfwd(f, argnums=argnums)(A, b)
        Jr = lad.jacrev(f, argnums=argnums)(A, b)
        for a, c in zip(np.atleast_1d(Jf) if argnums != (0, 1) else Jf,
                        np.atleast_1d(Jr) if argnums != (0, 1) else Jr):
            np.testing.assert_allclose(a, c, rtol=1e-12, atol=1e-14)
    J = lad.jacrev(f)(A, b)
    assert J.shape == (3, 2, 3, 3)
    # J[i, j, k, l] = d x_ij / d A_kl = -(A^-1)_ik x_lj
    x = np.linalg.solve(A, b)
    Ainv = np.linalg.inv(A)
    np.testing.assert_allclose(J, -np.einsum("ik,lj->ijkl", Ainv, x), rtol=1e-10)


def test_second_derivatives_all_compositions_agree():
    A = M.random_general(RNG, 3, (), np.float64)
    b = np.ones(3)

    def f(A):
        return lad.sum(la.solve(A, b) ** 3)

    H_rr = lad.jacrev(lad.grad(f))(A)
    H_fr = lad.jacfwd(lad.grad(f))(A)
    H_ff = lad.jacfwd(lad.jacfwd(f))(A)
    H_rf = lad.jacrev(lad.jacfwd(f))(A)
    for H in (H_fr, H_ff, H_rf):
        np.testing.assert_allclose(H, H_rr, rtol=1e-9, atol=1e-12)
    # Hessians are symmetric
    np.testing.assert_allclose(H_rr.reshape(9, 9), H_rr.reshape(9, 9).T, rtol=1e-9, atol=1e-12)
    # and they match finite differences of the gradient
    g = lad.grad(f)
    H_fd = np.stack([(g(A + 1e-6 * e) - g(A - 1e-6 * e)) / 2e-6
                     for e in np.eye(9).reshape(9, 3, 3)], axis=-1).reshape(3, 3, 3, 3)
    np.testing.assert_allclose(H_rr, H_fd, rtol=1e-6, atol=1e-8)


def test_hvp_matches_finite_differences_of_grad():
    A = M.random_general(RNG, 5, (2,), np.complex128)
    b = M.random_rhs(RNG, 5, 2, (2,), np.complex128)
    V = M.random_rhs(RNG, 5, 5, (2,), np.complex128)
    w = M.random_rhs(RNG, 5, 2, (2,), np.complex128)

    def f(A, b):
        return lad.sum(lad.abs(la.solve(A, b)) ** 2)

    HA, Hb = lad.hvp(f, (A, b), (V, w))
    g = lad.grad(f, argnums=(0, 1))
    h = 1e-6
    (pA, pb), (mA, mb) = g(A + h * V, b + h * w), g(A - h * V, b - h * w)
    np.testing.assert_allclose(HA, (pA - mA) / (2 * h), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(Hb, (pb - mb) / (2 * h), rtol=1e-6, atol=1e-8)
    HA_only = lad.hvp(f, (A, b), (V, w), argnums=0)
    assert HA_only.shape == A.shape


def test_third_order():
    # d^3/dx^3 of sum(x^4) = 24 x
    x = np.array([0.5, -1.0, 2.0])
    d3 = lad.grad(lambda x: lad.sum(lad.grad(lambda y: lad.sum(lad.grad(
        lambda z: lad.sum(z ** 4))(y)))(x)))(x)
    np.testing.assert_allclose(d3, 24 * x)


def test_no_perturbation_confusion():
    # d/dx [ x * d/dy (x * y) ] = d/dx [x * x] = 2x: levels must keep the two apart
    def f(x):
        inner = lad.grad(lambda y: lad.sum(x * y))(np.ones(()))
        return lad.sum(x * inner)

    x = np.array(3.0)
    assert float(lad.grad(f)(x)) == pytest.approx(6.0)
    # forward mode as well
    _, t = lad.jvp(f, (x,), (np.array(1.0),))
    assert float(t) == pytest.approx(6.0)


def test_checkpoint_gives_identical_gradients():
    A = M.random_general(RNG, 4, (), np.float64)
    b = M.random_rhs(RNG, 4, 2, (), np.float64)

    def block(A, x):
        return lad.tanh(la.solve(A, x)) * 2.0

    def f(A, b, ck):
        blk = lad.checkpoint(block) if ck else block
        x = b
        for _ in range(3):
            x = blk(A, x)
        return lad.sum(x ** 2)

    g_plain = lad.grad(f, argnums=(0, 1))(A, b, False)
    g_ck = lad.grad(f, argnums=(0, 1))(A, b, True)
    for a, c in zip(g_plain, g_ck):
        np.testing.assert_allclose(a, c, rtol=1e-13)
    # forward mode and second order go through checkpoint too
    check_grads(lambda A, b: f(A, b, True), (A, b), order=2)


def test_checkpoint_stores_less():
    n, steps = 200, 8
    x0 = RNG.standard_normal((n, n))

    def segment(x):
        for _ in range(steps):
            x = lad.sin(x) * 1.5 + x       # every step keeps n*n arrays alive
        return x

    def f(x, ck):
        seg = lad.checkpoint(segment) if ck else segment
        return lad.sum(seg(seg(x)))

    def held_after_forward(ck):
        gc.collect()
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        out, pull = lad.vjp(lambda x: f(x, ck), x0)
        held = tracemalloc.get_traced_memory()[0] - base
        tracemalloc.stop()
        return held, pull

    held_plain, pull_plain = held_after_forward(False)
    held_ck, pull_ck = held_after_forward(True)
    assert held_ck < held_plain / 4, (held_ck, held_plain)
    np.testing.assert_allclose(pull_ck(np.array(1.0))[0], pull_plain(np.array(1.0))[0],
                               rtol=1e-13)


# -- no global state, threads ----------------------------------------------------

def test_trace_is_released_after_return_and_after_raise():
    A = M.random_general(RNG, 3, (), np.float64)
    seen = []

    def f(A):
        seen.append(weakref.ref(A._trace))
        return lad.sum(la.solve(A, np.ones(3)))

    lad.grad(f)(A)
    gc.collect()
    assert seen[-1]() is None

    def g(A):
        seen.append(weakref.ref(A._trace))
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        lad.grad(g)(A)
    gc.collect()
    assert seen[-1]() is None
    # and the next transform is unaffected
    np.testing.assert_allclose(lad.grad(lambda A: lad.sum(A * A))(A), 2 * A)


def test_untraced_ops_run_kernels_directly():
    A = M.random_general(RNG, 3, (), np.float64)
    x = la.solve(A, np.ones(3))
    assert type(x) is np.ndarray
    assert type(lad.exp(A)) is np.ndarray
    assert not any(isinstance(o, tape.Tracer) for o in (x, lad.sum(A), A @ A))


def test_threads_get_correct_independent_gradients():
    mats = [M.random_general(np.random.default_rng(i), 6, (), np.float64) for i in range(8)]
    b = np.ones((6, 2))
    expected = [lad.grad(_loss)(A, b) for A in mats]
    results = [None] * len(mats)
    barrier = threading.Barrier(4)

    def work(k):
        barrier.wait()
        for _ in range(20):
            for i in range(k, len(mats), 4):
                results[i] = lad.grad(_loss)(mats[i], b)
                # nested transforms in threads too
                lad.hvp(_loss, (mats[i], b), (mats[i], b))

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for got, want in zip(results, expected):
        np.testing.assert_array_equal(got, want)


# -- errors ---------------------------------------------------------------------

def test_grad_of_non_scalar_names_the_shape():
    with pytest.raises(ValueError, match=r"scalar.*\(3,\)"):
        lad.grad(lambda x: x * 2)(np.ones(3))


def test_grad_of_complex_output_is_an_error():
    with pytest.raises(TypeError, match="real output"):
        lad.grad(lambda x: lad.sum(x * 1j))(np.ones(3))


@pytest.mark.parametrize("x", [np.arange(3), 3, np.array([True, False])])
def test_integer_inputs_to_grad_raise_typeerror(x):
    with pytest.raises(TypeError):
        lad.grad(lambda x: lad.sum(x * 1.0))(x)


def test_wrong_cotangent_shape_or_dtype():
    out, pull = lad.vjp(lambda x: x * 2.0, np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"\(3, 2\).*\(2, 3\)"):
        pull(np.ones((3, 2)))
    with pytest.raises(ValueError, match="complex"):
        pull(np.ones((2, 3), dtype=complex))
    with pytest.raises(ValueError, match="structure"):
        pull((np.ones((2, 3)),))


def test_wrong_tangent_shape():
    with pytest.raises(ValueError, match=r"\(2,\).*\(3,\)"):
        lad.jvp(lambda x: x * 2.0, (np.ones(3),), (np.ones(2),))


def test_argnums_out_of_range():
    with pytest.raises(ValueError, match="argnums"):
        lad.grad(lambda x: lad.sum(x), argnums=2)(np.ones(2))


def test_traced_value_cannot_be_branched_on_or_converted():
    with pytest.raises(TypeError, match="truth value"):
        lad.grad(lambda x: lad.sum(x) if x else 0.0)(np.ones(()))
    with pytest.raises(TypeError, match="drop its derivative"):
        lad.grad(lambda x: np.asarray(x).sum())(np.ones(2))


def test_debug_nans_names_the_rule():
    def f(x):
        return lad.sum(lad.sqrt(x))          # d sqrt at 0 is inf

    lad.debug_nans(True)
    try:
        with pytest.raises(FloatingPointError, match="sqrt"), np.errstate(divide="ignore"):
            lad.grad(f)(np.array([0.0, 1.0]))
    finally:
        lad.debug_nans(False)
    with np.errstate(divide="ignore"):          # the infinite derivative is the point here
        assert np.isinf(lad.grad(f)(np.array([0.0, 1.0]))[0])


def test_complex_gradient_convention_descends():
    # L(z) = |z - c|^2 has gradient 2 (z - c) under X̄ = dL/dRe + i dL/dIm
    c = np.array([1.0 + 2.0j, -0.5j])
    z = np.array([0.3 - 0.1j, 2.0 + 1.0j])
    g = lad.grad(lambda z: lad.sum(lad.abs(z - c) ** 2))(z)
    np.testing.assert_allclose(g, 2 * (z - c))
    z_next = z - 0.25 * g
    assert np.sum(np.abs(z_next - c) ** 2) < np.sum(np.abs(z - c) ** 2)


def test_float_of_a_traced_value_is_an_error_not_a_silent_constant():
    with pytest.raises(TypeError, match="drop its derivative"):
        lad.grad(lambda x: lad.sum(x) * float(lad.sum(x)))(np.ones(2))
    # stop_gradient is the explicit way
    g = lad.grad(lambda x: lad.sum(x) * float(lad.stop_gradient(lad.sum(x))))(np.ones(2))
    np.testing.assert_array_equal(g, [2.0, 2.0])


@pytest.mark.parametrize("const_dtype", [np.float64, np.float32])
def test_gradient_keeps_the_input_precision(const_dtype):
    x = np.ones(3, dtype=np.float32)
    c = np.arange(3, dtype=const_dtype)
    g = lad.grad(lambda x: lad.sum(x * c + np.float64(2.0) * x))(x)
    assert g.dtype == np.float32
    np.testing.assert_allclose(g, c + 2.0)
    _, t = lad.jvp(lambda x: x * c, (x,), (np.ones(3, dtype=np.float32),))
    assert t.dtype == np.result_type(x, c)


def test_checkpoint_of_a_closure_over_a_traced_value():
    """The closed-over y cannot be recomputed from the checkpoint's arguments: the function
    runs un-checkpointed (a warning says so) with exact gradients in both arguments — it
    used to return tracers and a zero gradient for y."""
    x, y = np.array([1.0, 2.0, 3.0]), np.array([0.5, -1.0, 2.0])
    f = lambda x, y: lad.sum(lad.checkpoint(lambda a: a * y)(x))
    with pytest.warns(UserWarning, match="closes over"):
        value, (gx, gy) = lad.value_and_grad(f, argnums=(0, 1))(x, y)
    assert type(value) is not tape.ReverseTracer and value == pytest.approx(4.5)
    np.testing.assert_array_equal(gx, y)
    np.testing.assert_array_equal(gy, x)
    with pytest.warns(UserWarning, match="closes over"):
        j = lad.jit(f)
        j(x, y)
        assert j(x, 2 * y) == pytest.approx(9.0)


def test_checkpoint_takes_keywords_and_containers():
    A = M.random_general(RNG, 3, (), np.float64)

    def block(p, scale=1.0):
        return lad.tanh(p["A"] @ p["x"]) * scale

    def f(A, x, s):
        return lad.sum(lad.checkpoint(block)({"A": A, "x": x}, scale=s) ** 2)

    x = np.ones(3)
    plain = lad.grad(lambda A, x, s: lad.sum(block({"A": A, "x": x}, scale=s) ** 2),
                     argnums=(0, 1, 2))(A, x, np.array(2.0))
    for a, b in zip(plain, lad.grad(f, argnums=(0, 1, 2))(A, x, np.array(2.0))):
        np.testing.assert_allclose(a, b, rtol=1e-14)


def test_jacobians_of_containers_nest_as_jax():
    """Output structure outside, input structure inside; a block per pair of leaves,
    shaped out_leaf.shape + in_leaf.shape."""
    f = lambda d, y: (d["a"] * y, {"s": lad.sum(d["a"] ** 2)})
    d, y = {"a": np.array([1.0, 2.0])}, np.array([3.0, 4.0])
    for jac in (lad.jacrev, lad.jacfwd):
        (J0, J1) = jac(f, argnums=(0, 1))(d, y)
        np.testing.assert_array_equal(J0[0]["a"], np.diag(y))
        np.testing.assert_array_equal(J0[1], np.diag(d["a"]))
        np.testing.assert_array_equal(J1["s"][0]["a"], 2 * d["a"])
        np.testing.assert_array_equal(J1["s"][1], np.zeros(2))
        Jd = jac(lambda d: d["a"] * 2)(d)
        assert set(Jd) == {"a"}
        np.testing.assert_array_equal(Jd["a"], 2 * np.eye(2))


@pytest.mark.parametrize("argnums, error", [((0, 0), ValueError), ((), ValueError),
                                            ((0, -2), ValueError), ("x", TypeError)])
def test_argnums_that_select_badly_raise(argnums, error):
    f = lambda a, b: lad.sum(a * b)
    with pytest.raises(error, match="argnums"):
        lad.grad(f, argnums=argnums)(np.ones(2), np.ones(2))


def test_argnums_may_be_a_numpy_integer():
    f = lambda a, b: lad.sum(a * b)
    np.testing.assert_array_equal(lad.grad(f, argnums=np.int64(1))(np.ones(2), 2 * np.ones(2)),
                                  np.ones(2))


def test_jvp_has_aux_requires_a_pair():
    with pytest.raises(ValueError, match="pair"):
        lad.jvp(lambda x: x * 2, (np.ones(2),), (np.ones(2),), has_aux=True)


def test_a_tracer_that_leaks_out_of_its_transform_raises_when_used():
    """A traced value saved inside grad, jvp or jit and used after the transform returned
    silently went on computing (a ReverseTracer, keeping its tape alive); now it raises,
    as JAX's UnexpectedTracerError does.  Transforms that run inside each other, and a
    pullback called later, are unaffected."""
    leak = []
    x = np.ones(2)
    lad.grad(lambda z: (leak.append(z), lad.sum(z))[1])(x)
    lad.jvp(lambda z: (leak.append(z), z * 2)[1], (x,), (x,))
    lad.jit(lambda z: (leak.append(z), z * 2)[1])(x)
    for t in leak:
        with pytest.raises(ValueError, match="already returned"):
            t * 2
    _, pull = lad.vjp(lambda z: la.inv(z) @ z, 2 * np.eye(2))
    np.testing.assert_allclose(pull(np.ones((2, 2)))[0], np.zeros((2, 2)), atol=1e-15)
    np.testing.assert_allclose(lad.hvp(lambda z: lad.sum(z ** 3), (x,), (x,))[0], 6 * x)


def test_jacobians_name_what_is_complex():
    """jacrev of a real input with complex output said "complex inputs"."""
    import linalgad.linalg as la
    A = np.random.default_rng(0).standard_normal((3, 3))
    with pytest.raises(TypeError, match="jacrev: complex outputs"):
        lad.jacrev(la.eigvals)(A)
    with pytest.raises(TypeError, match="jacfwd: complex inputs"):
        lad.jacfwd(lad.sum)(A + 1j)
    assert lad.jacfwd(la.eigvals)(A).shape == (3, 3, 3)       # real in, complex out: fine
