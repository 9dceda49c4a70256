"""Hard inputs for the matrix-equation rules (linalgad/rules/sylvester.py).

The registry already checks every domain/dtype/batch at second order; here:
the internal ``sylvester``/``stein`` with reused factors and ``.H``, mixed
real/complex factors, non-normal and broadcast inputs, Hermitian Lyapunov
right-hand sides, factor reuse in the backward pass, and the error cases.
"""

import numpy as np
import pytest
import scipy.linalg as sl

import linalgad as lad
from linalgad import linalg as la
from linalgad import ops
from linalgad.backend import CPU, LinAlgError
from linalgad.rules import sylvester as S
from linalgad.testing import check_grads


def crandn(rng, *shape, dtype=np.complex128):
    x = rng.standard_normal(shape)
    if np.dtype(dtype).kind == "c":
        x = x + 1j * rng.standard_normal(shape)
    return x.astype(dtype)


def mH(x):
    return np.conj(np.swapaxes(x, -1, -2))


def shifted(rng, n, batch=(), dtype=np.complex128, shift=2.0, nonnormal=0.0):
    A = crandn(rng, *batch, n, n, dtype=dtype) / (2 * np.sqrt(n)) + shift * np.eye(n)
    if nonnormal:
        A = A + nonnormal * np.triu(crandn(rng, *batch, n, n, dtype=dtype), 1)
    return A.astype(dtype)


# -- the internal building block ---------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float64, np.complex128])
def test_internal_sylvester_reused_factors_second_order(dtype):
    rng = np.random.default_rng(1)
    A, B = shifted(rng, 4, (2,), dtype), shifted(rng, 3, (), dtype)
    Cm = crandn(rng, 2, 4, 3, dtype=dtype)

    def f(A, B, Cm):
        # factors of the arguments' values (a cache: finite differences must refactor)
        return S.sylvester(A, B, Cm, fa=S.schur_factors(A), fb=S.schur_factors(B))
    X = f(A, B, Cm)
    np.testing.assert_allclose(A @ X + X @ B, Cm, atol=1e-12)
    check_grads(f, (A, B, Cm), modes=("fwd", "rev"), order=2, rtol=1e-6)


def test_factors_H_solve_the_adjoint_equation():
    rng = np.random.default_rng(2)
    A, B = shifted(rng, 5), shifted(rng, 4, nonnormal=1.0)
    Cm = crandn(rng, 5, 4)
    fa, fb = S.schur_factors(A), S.schur_factors(B)
    Y = S.sylvester(mH(A), mH(B), Cm, fa=fa.H, fb=fb.H)
    np.testing.assert_allclose(mH(A) @ Y + Y @ mH(B), Cm, atol=1e-12)
    assert fa.H.H.adjoint is False and fa.H.T is fa.T and fa.H.Z is fa.Z


@pytest.mark.parametrize("dtype", [np.float64, np.complex128])
def test_sqrtm_style_calls(dtype):
    """The calls the sqrtm rule makes: X Z + Z X = Ȧ and Xᴴ W + W Xᴴ = X̄, one factor."""
    rng = np.random.default_rng(3)
    Xs = shifted(rng, 4, (), dtype, shift=1.5)
    f = S.schur_factors(Xs)
    Ad = crandn(rng, 4, 4, dtype=dtype)
    Zd = S.sylvester(Xs, Xs, Ad, fa=f, fb=f)
    np.testing.assert_allclose(Zd, sl.solve_sylvester(Xs, Xs, Ad), atol=1e-12)
    Wd = S.sylvester(mH(Xs), mH(Xs), Ad, fa=f.H, fb=f.H)
    np.testing.assert_allclose(Wd, sl.solve_sylvester(mH(Xs), mH(Xs), Ad), atol=1e-12)

    def forward_like(X, C):
        f = S.schur_factors(X)
        return S.sylvester(X, X, C, fa=f, fb=f)

    def reverse_like(X, C):
        f = S.schur_factors(X)
        return S.sylvester(ops.mH(X), ops.mH(X), C, fa=f.H, fb=f.H)
    check_grads(forward_like, (Xs, Ad), order=2, rtol=1e-6)
    check_grads(reverse_like, (Xs, Ad), order=2, rtol=1e-6)


def test_real_factors_complex_rhs_and_mixed_factors():
    rng = np.random.default_rng(4)
    A = shifted(rng, 4, (), np.float64)                      # real Schur (2×2 blocks likely)
    B = shifted(rng, 3, (), np.complex128)
    Cc = crandn(rng, 4, 3)
    X = S.sylvester(A, B, Cc)
    assert X.dtype == np.complex128
    np.testing.assert_allclose(A @ X + X @ B, Cc, atol=1e-12)
    Ar = shifted(rng, 3, (), np.float64)
    X = S.sylvester(Ar, Ar, Cc[:3])                          # real factors, complex rhs
    np.testing.assert_allclose(Ar @ X + X @ Ar, Cc[:3], atol=1e-12)
    check_grads(lambda A, B, C: S.sylvester(A, B, C), (A, B, Cc), order=2, rtol=1e-6)


def test_real_schur_with_complex_pairs():
    # rotation-like blocks: complex-conjugate eigenvalues, quasi-triangular T
    rng = np.random.default_rng(5)
    A = np.array([[2.0, 3.0, 0.5], [-3.0, 2.0, 0.1], [0.0, 0.2, 1.5]])
    B = np.array([[1.0, -2.0], [2.0, 1.0]])
    Cm = rng.standard_normal((3, 2))
    T, _ = CPU.schur(A)
    assert abs(T[1, 0]) > 0 or abs(T[2, 1]) > 0              # a 2×2 block
    np.testing.assert_allclose(la.solve_sylvester(A, B, Cm), sl.solve_sylvester(A, B, Cm),
                               atol=1e-12)
    check_grads(la.solve_sylvester, (A, B, Cm), order=2, rtol=1e-6)
    check_grads(la.solve_discrete_lyapunov, (A / 5, B[:1, :1] * np.eye(3)), order=2, rtol=1e-6)


# -- public functions: hard inputs -----------------------------------------------------------

def test_solve_sylvester_nonnormal_complex_batched_broadcast():
    rng = np.random.default_rng(6)
    a = shifted(rng, 4, (), nonnormal=4.0)
    b = shifted(rng, 2, (3, 1), nonnormal=4.0)
    q = crandn(rng, 3, 2, 4, 2)
    x = la.solve_sylvester(a, b, q)
    assert x.shape == (3, 2, 4, 2)
    np.testing.assert_allclose(x, sl.solve_sylvester(a, b, q), rtol=1e-9, atol=1e-9)
    check_grads(la.solve_sylvester, (a, b, q), order=2, rtol=1e-6)


def test_continuous_lyapunov_hermitian_q():
    rng = np.random.default_rng(7)
    a = shifted(rng, 4, (2,), shift=-2.0, nonnormal=1.0)
    G = crandn(rng, 2, 4, 4)
    q = G @ mH(G)
    x = la.solve_continuous_lyapunov(a, q)
    np.testing.assert_allclose(x, mH(x), atol=1e-10)         # Hermitian solution
    np.testing.assert_allclose(a @ x + x @ mH(a), q, atol=1e-10)
    check_grads(la.solve_continuous_lyapunov, (a, q), order=2, rtol=1e-6)

    # a loss of a Hermitian X with a Hermitian weight: Ā = −2 Y X (derivation, section 3)
    w = crandn(rng, 4, 4)
    w = w + mH(w)
    g = lad.grad(lambda a: lad.sum(ops.real(la.solve_continuous_lyapunov(a, q) * w)))(a)
    y = sl.solve_continuous_lyapunov(mH(a), np.conj(w))      # X̄ = conj(w), Hermitian
    np.testing.assert_allclose(g, -2 * y @ x, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("method", [None, "direct", "bilinear", "BILINEAR"])
def test_discrete_lyapunov_methods_and_symmetric_q(method):
    rng = np.random.default_rng(8)
    a = 0.3 * rng.standard_normal((5, 5))
    q = rng.standard_normal((5, 5))
    q = q @ q.T
    x = la.solve_discrete_lyapunov(a, q, method=method)
    np.testing.assert_allclose(x, x.T, atol=1e-10)
    np.testing.assert_allclose(x, sl.solve_discrete_lyapunov(a, q), rtol=1e-10, atol=1e-10)
    check_grads(lambda a, q: la.solve_discrete_lyapunov(a, q, method=method), (a, q),
                order=2, rtol=1e-6)


def test_discrete_lyapunov_complex_nonnormal_batched():
    rng = np.random.default_rng(9)
    a = 0.2 * crandn(rng, 2, 4, 4) + 0.5 * np.triu(crandn(rng, 2, 4, 4), 1)
    q = crandn(rng, 4, 4)
    x = la.solve_discrete_lyapunov(a, q)
    np.testing.assert_allclose(a @ x @ mH(a) - x + q, 0, atol=1e-10)
    check_grads(la.solve_discrete_lyapunov, (a, q), order=2, rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.complex64])
def test_single_precision_dtypes(dtype):
    rng = np.random.default_rng(10)
    a = shifted(rng, 3, (), dtype)
    q = crandn(rng, 3, 3, dtype=dtype)
    assert la.solve_sylvester(a, a, q).dtype == dtype
    assert la.solve_continuous_lyapunov(a, q).dtype == dtype
    assert la.solve_discrete_lyapunov(a / 4, q).dtype == dtype   # SciPy gives float64 here
    assert la.solve_sylvester(np.eye(2, dtype=int) * 2, np.eye(2, dtype=int),
                              np.ones((2, 2), dtype=int)).dtype == np.float64


def test_hvp_and_jacfwd_of_grad():
    rng = np.random.default_rng(11)
    a = shifted(rng, 3, (), np.float64, shift=-2.0)
    q = rng.standard_normal((3, 3))

    def loss(a):
        return lad.sum(la.solve_continuous_lyapunov(a, q) ** 2)
    v = rng.standard_normal((3, 3))
    hv = lad.hvp(loss, (a,), (v,))
    hv = hv[0] if isinstance(hv, (tuple, list)) else hv
    g = lad.grad(loss)
    fd = (g(a + 1e-6 * v) - g(a - 1e-6 * v)) / 2e-6
    np.testing.assert_allclose(hv, fd, rtol=1e-6, atol=1e-8)


def test_backward_pass_does_not_refactor(monkeypatch):
    rng = np.random.default_rng(12)
    a, b = shifted(rng, 4, (2,), np.float64), shifted(rng, 3, (), np.float64)
    q = rng.standard_normal((2, 4, 3))
    a2 = 0.3 * rng.standard_normal((4, 4))
    calls = {"schur": 0, "cayley": 0}
    # patched on the class: monkeypatch's undo of an instance attribute leaves the bound
    # method in the instance's __dict__, which then hides later patches of the class
    table = type(CPU)
    real_schur, real_cayley = table.schur, table.cayley

    def counting_schur(self, *args, **kw):
        calls["schur"] += 1
        return real_schur(self, *args, **kw)

    def counting_cayley(self, *args, **kw):
        calls["cayley"] += 1
        return real_cayley(self, *args, **kw)
    monkeypatch.setattr(table, "schur", counting_schur)
    monkeypatch.setattr(table, "cayley", counting_cayley)

    lad.grad(lambda a, b, q: lad.sum(la.solve_sylvester(a, b, q) ** 2), argnums=(0, 1, 2))(a, b, q)
    assert calls["schur"] == 2
    calls["schur"] = 0
    lad.grad(lambda a, q: lad.sum(la.solve_continuous_lyapunov(a, q) ** 2))(a, q[..., :4, :3]
                                                                           @ np.ones((3, 4)))
    assert calls["schur"] == 1
    calls["schur"] = 0
    lad.grad(lambda a: lad.sum(la.solve_discrete_lyapunov(a, np.eye(4)) ** 2))(a2)
    assert calls == {"schur": 1, "cayley": 1}


# -- errors -----------------------------------------------------------------------------------

def test_shape_and_value_errors():
    a, b, q = np.eye(3) * 2, np.eye(2), np.ones((3, 2))
    with pytest.raises(ValueError, match="solve_sylvester"):
        la.solve_sylvester(np.ones((3, 2)), b, q)          # non-square a (LinAlgError ⊂ ValueError)
    with pytest.raises(ValueError, match="solve_sylvester"):
        la.solve_sylvester(a, b, np.ones((2, 3)))
    with pytest.raises(ValueError, match="do not broadcast"):
        la.solve_sylvester(np.stack([a] * 2), b, np.stack([q] * 3))
    with pytest.raises(ValueError, match="infs or NaNs"):
        la.solve_sylvester(a, b, np.full((3, 2), np.nan))
    with pytest.raises(ValueError, match="solve_continuous_lyapunov"):
        la.solve_continuous_lyapunov(a, np.eye(2))
    with pytest.raises(ValueError, match="solve_discrete_lyapunov"):
        la.solve_discrete_lyapunov(a, np.ones((3, 2)))
    with pytest.raises(ValueError, match="unknown solver"):
        la.solve_discrete_lyapunov(a / 4, a, method="schur")


def test_singular_equations_name_the_matrix():
    good, bad = np.diag([1.0, 2.0]), np.diag([-1.0, 3.0])
    a = np.stack([good, good, good])
    b = np.stack([good, bad, good])                           # a[1] and -b[1] share 1
    with pytest.raises(LinAlgError, match=r"solve_sylvester.*singular.*\(1,\)"):
        la.solve_sylvester(a, b, np.ones((3, 2, 2)))
    rot = np.array([[0.0, 1.0], [-1.0, 0.0]])                # eigenvalues ±i
    with pytest.raises(LinAlgError, match="solve_continuous_lyapunov.*singular"):
        la.solve_continuous_lyapunov(rot, np.eye(2))
    with pytest.raises(LinAlgError, match=r"solve_discrete_lyapunov.*\(0, 1\)"):
        la.solve_discrete_lyapunov(np.stack([[0.5 * rot, rot]]), np.eye(2))   # |λ| = 1
    with pytest.raises(LinAlgError, match="solve_discrete_lyapunov.*-1"):
        la.solve_discrete_lyapunov(-np.eye(2), np.eye(2))


def test_singular_internal_adjoint_is_reported():
    # a singular equation can only be met in the forward pass: the adjoint operator
    # has the same spectrum (conjugated), so the same factors solve it
    with pytest.raises(LinAlgError, match="sylvester"):
        S.sylvester(np.eye(2), -np.eye(2), np.ones((2, 2)))
