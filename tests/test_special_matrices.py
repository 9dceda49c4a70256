"""block_diag, hankel, khatri_rao, companion, convolution_matrix, diagsvd, leslie, fiedler,
fiedler_companion: SciPy 1.17's signatures, values, shapes, dtypes, batching and errors, on
the plain path (SciPy itself) and the traced one (linalgad's ops); gradients against central
differences of SciPy's functions; the dot-product test between VJP and JVP; realistic uses."""

import inspect
import warnings

import numpy as np
import pytest
import scipy.linalg as sl

import linalgad as lad
from linalgad.rules import special_matrices as S

la = lad.linalg
NAMES = ["block_diag", "hankel", "khatri_rao", "companion", "convolution_matrix", "diagsvd",
         "leslie", "fiedler", "fiedler_companion"]
RNG = np.random.default_rng(0)


def _rand(shape, dtype=np.float64, rng=RNG):
    x = rng.standard_normal(shape)
    if np.dtype(dtype).kind == "c":
        x = x + 1j * rng.standard_normal(shape)
    if np.dtype(dtype).kind in "iu":
        x = np.round(3 * x) + (np.round(3 * x) == 0)        # nonzero integers
    return x.astype(dtype)


def _lead(a):
    """a with its leading coefficient(s) bounded away from zero."""
    a = a.copy()
    a[..., 0] = np.where(a[..., 0] == 0, 2, a[..., 0]) * (1 if a.dtype.kind in "iu" else 2)
    if a.dtype.kind in "fc":
        a[..., 0] += np.sign(a[..., 0].real) + (a[..., 0].real == 0)
    return a


def _traced(fun, *args, **kwargs):
    """fun's value computed on traced inputs (the differentiable composite, not SciPy)."""
    args = tuple(np.asarray(x) for x in args)
    inexact = [i for i, x in enumerate(args) if x.dtype.kind in "fc"]
    assert inexact

    def f(*t):
        full = list(args)
        for i, x in zip(inexact, t):
            full[i] = x
        return fun(*full, **kwargs)
    out, _ = lad.vjp(f, *[args[i] for i in inexact])
    return out


# name -> list of (args, kwargs) cases: shapes, 0-d/1-d/empty, stacks
def _cases(dtype):
    r = lambda *s: _rand(s, dtype)
    return {
        "block_diag": [((r(2, 2), r(1, 3), r(2)), {}), ((r(3, 2, 2), r(1, 3)), {}),
                       ((r(2, 1, 2, 2), r(3, 1, 1)), {}), ((r(2, 0), r(2, 2)), {}),
                       ((r(), r(2)), {}), ((r(0, 2, 2), r(1, 1)), {})],
        "hankel": [((r(3), r(4)), {}), ((r(4),), {}), ((r(3), r(1)), {}), ((r(0), r(3)), {}),
                   ((r(3), r(0)), {}), ((r(1),), {})],
        "khatri_rao": [((r(2, 3), r(4, 3)), {}), ((r(5, 2, 3), r(4, 3)), {}),
                       ((r(2, 1, 2, 3), r(3, 4, 3)), {}), ((r(0, 3), r(2, 3)), {}),
                       ((r(2, 0), r(3, 0)), {}), ((r(1, 1), r(1, 1)), {})],
        "companion": [((_lead(r(4)),), {}), ((_lead(r(2)),), {}), ((_lead(r(2, 3, 5)),), {}),
                      ((_lead(r(0, 4)),), {})],
        "convolution_matrix": [((r(3),), {"n": 5}), ((r(1),), {"n": 1}),
                               ((r(2, 6),), {"n": 4, "mode": "same"}),
                               ((r(4),), {"n": 6, "mode": "same"}),
                               ((r(5),), {"n": 3, "mode": "same"}),
                               ((r(5),), {"n": 2, "mode": "valid"}),
                               ((r(2),), {"n": 5, "mode": "valid"}),
                               ((r(2, 1, 3),), {"n": 3, "mode": "valid"})],
        "diagsvd": [((r(3),), {"M": 5, "N": 3}), ((r(3),), {"M": 3, "N": 4}),
                    ((r(3),), {"M": 3, "N": 3}), ((r(2, 3),), {"M": 3, "N": 4}),
                    ((r(0),), {"M": 0, "N": 3}), ((r(2, 0),), {"M": 2, "N": 0})],
        "leslie": [((r(4), r(3)), {}), ((r(2, 4), r(3)), {}), ((r(4, 1, 3), r(5, 2)), {}),
                   ((r(2), r()), {})],
        "fiedler": [((r(4),), {}), ((r(2, 3, 4),), {}), ((r(2, 1),), {}), ((r(0),), {}),
                    ((r(1, 1),), {}), ((r(),), {})],
        "fiedler_companion": [((_lead(r(6)),), {}), ((_lead(r(7)),), {}),
                              ((_lead(r(3)),), {}), ((_lead(r(2)),), {}), ((r(1),), {}),
                              ((r(0),), {}), ((_lead(r(2, 5)),), {}), ((_lead(r(3, 2)),), {}),
                              ((r(2, 1),), {}), ((r(),), {})],
    }


def test_signatures_are_scipys():
    for name in NAMES:
        assert inspect.signature(getattr(la, name)) == inspect.signature(getattr(sl, name)), name
        assert name in la.__all__


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.complex128, np.complex64,
                                   np.int64])
@pytest.mark.parametrize("name", NAMES)
def test_values_shapes_and_dtypes_match_scipy(name, dtype):
    """Both paths: plain NumPy (SciPy itself, after linalgad's checks) and traced (the
    differentiable composite), against SciPy on the same inputs."""
    for args, kwargs in _cases(dtype)[name]:
        want = getattr(sl, name)(*args, **kwargs)
        got = getattr(la, name)(*args, **kwargs)
        assert type(got) is np.ndarray
        assert got.shape == want.shape and got.dtype == want.dtype, (args, kwargs)
        np.testing.assert_array_equal(got, want)
        if np.dtype(dtype).kind in "fc" and want.size:
            tr = _traced(getattr(la, name), *args, **kwargs)
            assert tr.shape == want.shape and tr.dtype == want.dtype, (name, args, kwargs)
            tol = 1e-6 if np.dtype(dtype).itemsize <= 8 else 1e-15
            np.testing.assert_allclose(tr, want, rtol=tol, atol=tol * np.abs(want).max())


def test_mixed_dtypes_and_python_inputs():
    f32, f64 = np.ones(3, np.float32), np.ones(3)
    i64 = np.arange(1, 4)
    pairs = [
        ("block_diag", (f32.reshape(1, 3), i64), (f32.reshape(1, 3), f64)),
        ("hankel", (f32, i64), (f32, f64)),
        ("khatri_rao", (f32.reshape(1, 3), i64.reshape(1, 3)), None),
        ("leslie", (np.r_[f32, 1], i64), (np.r_[f32, 1], f64)),
    ]
    for name, ints, floats in pairs:
        for args in filter(None, (ints, floats)):
            want = getattr(sl, name)(*args)
            got = getattr(la, name)(*args)
            assert got.dtype == want.dtype, (name, [a.dtype for a in args])
            if args is floats:                  # the traced path's promotion too
                tr = _traced(getattr(la, name), *args)
                assert tr.dtype == want.dtype
                np.testing.assert_allclose(tr, want, rtol=1e-6)
    # lists and numbers, as SciPy takes them
    assert np.array_equal(la.block_diag(1.0, [2, 3], [[4, 5], [6, 7]]),
                          sl.block_diag(1.0, [2, 3], [[4, 5], [6, 7]]))
    assert la.block_diag().shape == (1, 0) and la.block_diag().dtype == np.float64
    assert np.array_equal(la.companion([1, -3, 2]), sl.companion([1, -3, 2]))
    assert np.array_equal(la.diagsvd([1, 2], 3, 2), sl.diagsvd([1, 2], 3, 2))
    assert np.array_equal(la.fiedler([1, 4, 12, 45]), sl.fiedler([1, 4, 12, 45]))
    assert np.array_equal(la.leslie([0.1, 2.0, 1.0, 0.1], [0.2, 0.8, 0.7]),
                          sl.leslie([0.1, 2.0, 1.0, 0.1], [0.2, 0.8, 0.7]))


def test_hankel_ravels_stacks_with_scipys_future_warning():
    c, r = _rand((2, 2)), _rand((3,))
    with pytest.warns(FutureWarning, match="ravel"):
        got = la.hankel(c, r)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        want = sl.hankel(c, r)
    np.testing.assert_array_equal(got, want)
    with pytest.warns(FutureWarning, match="ravel"):
        tr = _traced(la.hankel, c, r)
    np.testing.assert_array_equal(tr, want)


# -- derivatives -------------------------------------------------------------------------------

def _fd_cotangent(L, x, h=1e-6):
    """Central differences of a real L at x: the cotangent x̄ with dL = Re<x̄, dx>."""
    complex_ = x.dtype.kind == "c"
    g = np.zeros(x.shape, dtype=x.dtype)
    for idx in np.ndindex(x.shape):
        for unit in ((1, 1j) if complex_ else (1,)):
            e = np.zeros(x.shape, dtype=x.dtype)
            e[idx] = unit * h
            g[idx] += unit * (L(x + e) - L(x - e)) / (2 * h)
    return g


def _inner(X, Y):
    return sum(np.sum(np.conj(np.asarray(x)) * np.asarray(y)).real for x, y in zip(X, Y))


def _separated(shape, dtype):
    return S._separated(np.random.default_rng(3), shape, dtype)


# name -> (linalgad fun, SciPy fun, args): the arguments are all differentiated
DIFF_CASES = {
    "block_diag": (lambda a, b, c: la.block_diag(a, b, c), lambda a, b, c: sl.block_diag(a, b, c),
                   lambda dt: (_rand((2, 2, 3), dt), _rand((1, 2), dt), _rand((2,), dt))),
    "hankel": (la.hankel, sl.hankel, lambda dt: (_rand((4,), dt), _rand((3,), dt))),
    "hankel_c": (la.hankel, sl.hankel, lambda dt: (_rand((4,), dt),)),
    "khatri_rao": (la.khatri_rao, sl.khatri_rao,
                   lambda dt: (_rand((2, 3, 2), dt), _rand((4, 2), dt))),
    "companion": (la.companion, sl.companion, lambda dt: (_lead(_rand((2, 5), dt)),)),
    "convolution_matrix_full": (lambda a: la.convolution_matrix(a, 3),
                                lambda a: sl.convolution_matrix(a, 3),
                                lambda dt: (_rand((2, 4), dt),)),
    "convolution_matrix_same": (lambda a: la.convolution_matrix(a, 6, "same"),
                                lambda a: sl.convolution_matrix(a, 6, "same"),
                                lambda dt: (_rand((3,), dt),)),
    "convolution_matrix_valid": (lambda a: la.convolution_matrix(a, 2, "valid"),
                                 lambda a: sl.convolution_matrix(a, 2, "valid"),
                                 lambda dt: (_rand((5,), dt),)),
    "diagsvd": (lambda s: la.diagsvd(s, 4, 3), lambda s: sl.diagsvd(s, 4, 3),
                lambda dt: (_rand((2, 3), dt),)),
    "leslie": (la.leslie, sl.leslie, lambda dt: (_rand((2, 4), dt), _rand((3,), dt))),
    "fiedler": (la.fiedler, sl.fiedler, lambda dt: (_separated((2, 4), dt),)),
    "fiedler_companion": (la.fiedler_companion, sl.fiedler_companion,
                          lambda dt: (_lead(_rand((2, 6), dt)),)),
    "fiedler_companion_odd": (la.fiedler_companion, sl.fiedler_companion,
                              lambda dt: (_lead(_rand((5,), dt)),)),
    "fiedler_companion_2": (la.fiedler_companion, sl.fiedler_companion,
                            lambda dt: (_lead(_rand((3, 2), dt)),)),
}


@pytest.mark.parametrize("dtype", [np.float64, np.complex128])
@pytest.mark.parametrize("case", sorted(DIFF_CASES))
def test_gradients_match_central_differences_of_scipy(case, dtype):
    ours, theirs, make = DIFF_CASES[case]
    args = make(dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        out = theirs(*args)
    W = _rand(out.shape, out.dtype)                   # F real for fiedler: a real W
    loss = lambda *a: lad.sum(lad.real(lad.conj(W) * ours(*a)))
    grads = lad.grad(loss, argnums=tuple(range(len(args))))(*args)
    for i, (g, x) in enumerate(zip(grads, args)):
        assert g.shape == x.shape and g.dtype == x.dtype

        def L(xi, i=i):
            full = list(args)
            full[i] = xi
            return _inner([W], [theirs(*full)])
        want = _fd_cotangent(L, x)
        np.testing.assert_allclose(g, want, rtol=1e-7, atol=1e-7 * np.abs(want).max())


@pytest.mark.parametrize("dtype", [np.float64, np.complex128, np.float32])
@pytest.mark.parametrize("case", sorted(DIFF_CASES))
def test_dot_product_identity_between_vjp_and_jvp(case, dtype):
    """<ȳ, J v> = <Jᴴ ȳ, v>: the forward and reverse rules are each other's adjoint."""
    ours, _, make = DIFF_CASES[case]
    args = make(dtype)
    dirs = tuple(_rand(x.shape, x.dtype) for x in args)
    out, jv = lad.jvp(ours, args, dirs)
    ybar = _rand(np.shape(out), np.asarray(out).dtype)
    _, pull = lad.vjp(ours, *args)
    vj = pull(ybar)
    vj = vj if isinstance(vj, tuple) else (vj,)
    lhs, rhs = _inner([ybar], [jv]), _inner(vj, dirs)
    tol = 1e-4 if np.dtype(dtype) == np.float32 else 1e-12
    assert abs(lhs - rhs) <= tol * (abs(lhs) + 1)


def test_linear_constructors_are_their_own_jvp_and_second_order_vanishes():
    """For the linear maps J v = f(v) exactly, and the Hessian of a linear loss is zero."""
    c, r = _rand((4,)), _rand((3,))
    dc, dr = _rand((4,)), _rand((3,))
    _, t = lad.jvp(la.hankel, (c, r), (dc, dr))
    np.testing.assert_allclose(t, sl.hankel(dc, dr), rtol=1e-15)
    a, da = _rand((4,)), _rand((4,))
    _, t = lad.jvp(lambda x: la.convolution_matrix(x, 5, "same"), (a,), (da,))
    np.testing.assert_allclose(t, sl.convolution_matrix(da, 5, "same"), rtol=1e-15)
    W = _rand((4, 3))
    hv = lad.hvp(lambda c, r: lad.sum(W * la.hankel(c, r)), (c, r), (dc, dr))
    assert all(np.all(np.asarray(h) == 0) for h in hv)


def test_hessian_vector_products_against_differences_of_the_gradient():
    """Second order through the nonlinear constructors (quotient, modulus, product)."""
    h = 1e-5
    rng = np.random.default_rng(7)
    cases = [
        (lambda a: lad.sum(la.companion(a) ** 3), _lead(_rand((5,)))),
        (lambda a: lad.sum(la.fiedler_companion(a) ** 3), _lead(_rand((6,)))),
        (lambda a: lad.sum(la.fiedler(a) ** 2 * la.fiedler(a)), _separated((4,), np.complex128)),
        (lambda a: lad.sum(la.khatri_rao(a, lad.sin(a)) ** 2), _rand((3, 2))),
    ]
    for loss, x in cases:
        v = rng.standard_normal(x.shape).astype(x.dtype)
        hv = lad.hvp(loss, (x,), (v,))[0]
        g = lad.grad(loss)
        fd = (g(x + h * v) - g(x - h * v)) / (2 * h)
        np.testing.assert_allclose(hv, fd, rtol=1e-6, atol=1e-6 * np.abs(fd).max())


def test_fiedler_gradient_on_the_diagonal_and_at_a_tie_is_finite():
    a = np.array([1.0, 2.0, 2.0, -1.0])                  # a tie: a_1 = a_2
    g = lad.grad(lambda a: lad.sum(la.fiedler(a)))(a)
    assert np.all(np.isfinite(g))
    # the diagonal is identically 0: a cotangent on it alone gives a zero gradient
    a = _separated((4,), np.complex128)
    _, pull = lad.vjp(la.fiedler, a)
    assert np.all(pull(np.eye(4))[0] == 0)


# -- errors ------------------------------------------------------------------------------------

ERRORS = [
    ("block_diag", (np.ones((2, 1, 2)), np.ones((3, 1, 1))), {}, ValueError),
    ("hankel", (3.0,), {}, (ValueError, IndexError)),
    ("hankel", ([1.0, 2.0], 5.0), {}, (ValueError, IndexError)),
    ("khatri_rao", (np.ones(3), np.ones((2, 3))), {}, ValueError),
    ("khatri_rao", (np.ones((2, 3)), np.ones((2, 2))), {}, ValueError),
    ("khatri_rao", (np.ones((0, 2, 3)), np.ones((2, 3))), {}, ValueError),
    ("khatri_rao", (np.ones((2, 2, 3)), np.ones((3, 2, 3))), {}, ValueError),
    ("companion", (3.0,), {}, ValueError),
    ("companion", ([0.0, 3.0, 4.0],), {}, ValueError),
    ("companion", ([[1.0, 3.0, 4.0], [0.0, 1.0, 1.0]],), {}, ValueError),
    ("companion", (np.array([True, True, False]),), {}, TypeError),
    ("convolution_matrix", ([1.0, 2.0], 0), {}, ValueError),
    ("convolution_matrix", ([1.0, 2.0], 2.0), {}, TypeError),
    ("convolution_matrix", ([], 2), {}, ValueError),
    ("convolution_matrix", ([1.0, 2.0], 2, "bad"), {}, ValueError),
    ("convolution_matrix", (np.ones((0, 3)), 2), {}, ValueError),
    ("convolution_matrix", (3.0, 2), {}, (ValueError, IndexError)),
    ("diagsvd", (3.0, 1, 1), {}, ValueError),
    ("diagsvd", ([1.0, 2.0], 3, 4), {}, ValueError),
    ("diagsvd", ([1.0, 2.0], 2, 1), {}, ValueError),
    ("diagsvd", (np.ones((0, 2)), 2, 3), {}, ValueError),
    ("diagsvd", ([1.0, 2.0], 2.0, 3), {}, TypeError),
    ("leslie", ([1.0, 2.0, 3.0], [0.5]), {}, ValueError),
    ("leslie", ([1.0], []), {}, ValueError),
    ("leslie", (np.ones((0, 3)), np.ones(2)), {}, ValueError),
    ("leslie", (np.ones((2, 3)), np.ones((3, 2))), {}, ValueError),
    ("fiedler", (np.array([True, False]),), {}, TypeError),
    ("fiedler_companion", ([0.0, 3.0, 4.0],), {}, ValueError),
    ("fiedler_companion", ([[1.0, 2.0, 3.0], [0.0, 1.0, 2.0]],), {}, ValueError),
    ("fiedler_companion", (np.ones((0, 4)),), {}, ValueError),
]


@pytest.mark.parametrize("name,args,kwargs,kind", ERRORS,
                         ids=[f"{e[0]}-{i}" for i, e in enumerate(ERRORS)])
def test_errors_name_the_function_where_scipy_raises(name, args, kwargs, kind):
    with pytest.raises(kind):                         # SciPy raises there too
        getattr(sl, name)(*args, **kwargs)
    ours = kind[0] if isinstance(kind, tuple) else kind
    with pytest.raises(ours, match=name):
        getattr(la, name)(*args, **kwargs)
    # and on the traced path
    float_args = [i for i, a in enumerate(args)
                  if np.asarray(a).dtype.kind == "f" and np.asarray(a).size]
    if float_args:
        i = float_args[0]

        def f(x):
            full = list(args)
            full[i] = x
            return lad.sum(lad.real(getattr(la, name)(*full, **kwargs)))
        with pytest.raises(ours, match=name):
            lad.grad(f)(np.asarray(args[i], dtype=float))


def test_zero_leading_coefficient_is_checked_on_every_jit_replay():
    f = lad.jit(lad.grad(lambda a: lad.sum(la.companion(a))))
    g = f(np.array([2.0, 1.0, 3.0]))
    np.testing.assert_allclose(g, [1.0, -0.5, -0.5])        # d/da of −(a1 + a2)/a0
    with pytest.raises(ValueError, match="companion"):
        f(np.array([0.0, 1.0, 3.0]))
    fc = lad.jit(lambda a: la.fiedler_companion(a))
    fc(np.array([2.0, 1.0, 3.0, 4.0]))
    with pytest.raises(ValueError, match="fiedler_companion"):
        fc(np.array([0.0, 1.0, 3.0, 4.0]))


def test_fiedler_companion_of_two_coefficients_divides_unchecked_like_scipy():
    with np.errstate(divide="ignore", invalid="ignore"):
        want = sl.fiedler_companion(np.array([0.0, 3.0]))
        got = la.fiedler_companion(np.array([0.0, 3.0]))
        tr = _traced(la.fiedler_companion, np.array([0.0, 3.0]))
    assert np.isinf(want).all() and np.array_equal(got, want) and np.array_equal(tr, want)


# -- realistic uses ----------------------------------------------------------------------------

def test_logdet_of_a_block_diagonal_matrix_has_the_blockwise_gradients():
    rng = np.random.default_rng(11)
    X, Y = rng.standard_normal((3, 3)), rng.standard_normal((2, 2))
    A, B = X @ X.T + 3 * np.eye(3), Y @ Y.T + 2 * np.eye(2)
    logdet = lambda M: la.slogdet(M)[1]
    gA, gB = lad.grad(lambda A, B: logdet(la.block_diag(A, B)), argnums=(0, 1))(A, B)
    np.testing.assert_allclose(gA, np.linalg.inv(A).T, rtol=1e-12)
    np.testing.assert_allclose(gB, np.linalg.inv(B).T, rtol=1e-12)
    # a stack of block pairs against one shared block: the shared one sums the stack
    As = np.stack([A, 2 * A])
    gAs, gB = lad.grad(lambda A, B: lad.sum(logdet(la.block_diag(A, B))),
                       argnums=(0, 1))(As, B)
    np.testing.assert_allclose(gAs, np.linalg.inv(As).transpose(0, 2, 1), rtol=1e-12)
    np.testing.assert_allclose(gB, 2 * np.linalg.inv(B).T, rtol=1e-12)


def test_blind_kernel_fit_through_convolution_matrix():
    """Least-squares fit of a convolution kernel k to y = x * k_true + noise: the gradient of
    ‖C(k) x − y‖² through convolution_matrix equals the closed form 2 C(x)ᵀ r (convolution
    commutes), and SciPy's optimizer with that gradient recovers the least-squares kernel."""
    from scipy.optimize import minimize
    rng = np.random.default_rng(5)
    x = rng.standard_normal(40)
    k_true = np.array([0.5, -1.0, 0.25, 0.1])
    y = np.convolve(k_true, x) + 0.01 * rng.standard_normal(43)

    def loss(k):
        r = la.convolution_matrix(k, 40) @ x - y
        return lad.sum(r * r)
    k0 = np.zeros(4)
    r0 = sl.convolution_matrix(k0, 40) @ x - y
    np.testing.assert_allclose(lad.grad(loss)(k0), 2 * sl.convolution_matrix(x, 4).T @ r0,
                               rtol=1e-12)
    res = minimize(lad.value_and_grad(loss), k0, jac=True, method="BFGS")
    k_ls = np.linalg.lstsq(sl.convolution_matrix(x, 4), y, rcond=None)[0]
    np.testing.assert_allclose(res.x, k_ls, atol=1e-5)
    assert np.abs(res.x - k_true).max() < 0.02


def test_root_sensitivity_through_the_companion_matrices():
    """A simple root λ of p moves by dλ = −(Σ_k da_k λ^{n−k}) / p'(λ): the gradient of a root
    (an eigenvalue of the companion or the Fiedler companion matrix) against that formula."""
    a = np.array([1.0, -6.0, 11.0, -6.0])              # roots 1, 2, 3
    n = len(a) - 1
    lam = 3.0
    dp = np.polyval(np.polyder(a), lam)
    want = -lam ** np.arange(n, -1, -1) / dp
    for build in (la.companion, la.fiedler_companion):
        g = lad.grad(lambda a: lad.max(lad.real(la.eigvals(build(a)))))(a)
        np.testing.assert_allclose(g, want, rtol=1e-8, atol=1e-10)
    # a scaled polynomial has the same roots: the gradient is orthogonal to a
    g = lad.grad(lambda a: lad.max(lad.real(la.eigvals(la.companion(a)))))(2 * a)
    assert abs(g @ a) < 1e-10


def test_leslie_growth_rate_sensitivity():
    """The dominant eigenvalue λ of a Leslie matrix has ∂λ/∂L = conj(u) vᵀ / (u·v) (left and
    right eigenvectors), so ∂λ/∂f = u₀ v / (u·v) and ∂λ/∂s_k = u_{k+1} v_k / (u·v)."""
    f = np.array([0.1, 2.0, 1.0, 0.1])
    s = np.array([0.2, 0.8, 0.7])
    L = sl.leslie(f, s)
    w, vl, vr = sl.eig(L, left=True)
    i = np.argmax(w.real)
    u, v = vl[:, i].real, vr[:, i].real
    scale = u @ v
    gf, gs = lad.grad(lambda f, s: lad.max(lad.real(la.eigvals(la.leslie(f, s)))),
                      argnums=(0, 1))(f, s)
    np.testing.assert_allclose(gf, u[0] * v / scale, rtol=1e-8)
    np.testing.assert_allclose(gs, u[1:] * v[:-1] / scale, rtol=1e-8)


def test_hankel_gradient_keeps_less_than_a_gather_would():
    """The strided primitive pair: a gradient through a 1500 × 1500 Hankel matrix peaks
    below the same gradient through a gather v[i + j] (whose int64 index is as large as the
    output), and equals the anti-diagonal sums of the cotangent."""
    import tracemalloc
    from linalgad import ops
    m = 1500
    c, r = _rand((m,)), _rand((m,))
    W = _rand((m, m))

    def gathered(c, r):
        idx = np.add.outer(np.arange(m), np.arange(m))
        return ops.getitem(ops.concatenate([c, ops.getitem(r, slice(1, None))]), idx)

    def peak(build):
        loss = lambda c, r: lad.sum(W * build(c, r))
        tracemalloc.start()
        grads = lad.grad(loss, argnums=(0, 1))(c, r)
        p = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return p, grads
    ours, (gc_, gr) = peak(la.hankel)
    theirs, (hc, hr) = peak(gathered)
    assert ours < theirs - 0.5 * m * m * 8, (ours / (m * m * 8), theirs / (m * m * 8))
    np.testing.assert_allclose(gc_, hc, rtol=1e-10)
    np.testing.assert_allclose(gr, hr, rtol=1e-10)
    v_bar = np.array([np.trace(W[:, ::-1], offset=m - 1 - k) for k in range(2 * m - 1)])
    np.testing.assert_allclose(gc_, v_bar[:m], rtol=1e-10)
    np.testing.assert_allclose(gr, np.r_[0, v_bar[m:]], rtol=1e-10)


# -- review 50 --------------------------------------------------------------------------------

def test_tall_diagonal_sums_need_no_quadratic_scratch():
    """convolution_matrix of a long filter against a short vector, and a tall hankel on the
    (emulated) device path: the diagonal-sum scratch was p × (p + n − 1), 72 MB for a
    (3001, 2) output; now at most twice the output."""
    import tracemalloc
    from linalgad.backend import toeplitz_diagonal_sums
    rng = np.random.default_rng(0)
    G = rng.standard_normal((2, 7, 3))
    want = np.array([[sum(G[b, i, j] for i in range(7) for j in range(3) if 3 - 1 + i - j == k)
                      for k in range(9)] for b in range(2)])
    np.testing.assert_allclose(toeplitz_diagonal_sums(np, G), want, atol=1e-12)
    a = rng.standard_normal(3000)
    f = lambda a: lad.sum(la.convolution_matrix(a, 2) ** 2)
    lad.grad(f)(a)
    tracemalloc.start()
    g = lad.grad(f)(a)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 2e6, peak                                   # was 72 MB
    h = 1e-6
    e = np.zeros(3000)
    e[17] = h
    assert abs(g[17] - (float(f(a + e)) - float(f(a - e))) / (2 * h)) < 1e-5


def test_integer_arguments_as_scipy():
    a = np.arange(1.0, 4.0)
    np.testing.assert_array_equal(la.convolution_matrix(a, np.array(3)),
                                  sl.convolution_matrix(a, np.array(3)))
    np.testing.assert_array_equal(la.diagsvd(a, np.array(3), 3), sl.diagsvd(a, 3, 3))
    with pytest.raises(TypeError, match="convolution_matrix"):
        la.convolution_matrix(a, 3.0)
