"""schur and rsf2csf: SciPy's values, dtypes, stacks, sort and errors; derivatives against
finite differences of SciPy's own schur / rsf2csf (the real form's discrete choices aligned),
against a dense solve of the constraint system, at second order; the gauge checks."""

import numpy as np
import pytest
import scipy.linalg as sl

import linalgad as lad
from linalgad.backend import LinAlgError
from linalgad.rules import schur as SR

la = lad.linalg


def _inner(X, Y):
    return float(np.real(np.sum(np.conj(X) * Y)))


def _pairs(rng, n, batch=()):
    return SR._pairs(rng, n, batch, np.float64)[0][0]


def _separated(rng, n, batch=(), dtype=np.float64):
    return SR._separated(rng, n, batch, dtype)[0][0]


def _align(T0, Z0, T1, Z1):
    """(T1, Z1) turned to the branch of (T0, Z0): the signed permutation P = round(Z0ᴴ Z1)
    (column signs; a 2×2 block's quarter turn), T1 → P T1 Pᴴ, Z1 → Z1 Pᴴ."""
    Pm = np.round(np.real(np.conj(Z0).T @ Z1))
    assert np.allclose(np.abs(Pm).sum(axis=0), 1)
    return Pm @ T1 @ Pm.T, Z1 @ Pm.T


# -- values --------------------------------------------------------------------------------

@pytest.mark.parametrize("n", [1, 2, 5, 12])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.complex64, np.complex128])
@pytest.mark.parametrize("output", ["real", "complex"])
def test_values_match_scipy(n, dtype, output):
    rng = np.random.default_rng(n)
    A = rng.standard_normal((n, n))
    if np.dtype(dtype).kind == "c":
        A = A + 1j * rng.standard_normal((n, n))
    A = A.astype(dtype)
    T, Z = la.schur(A, output=output)
    T0, Z0 = sl.schur(A, output=output)
    assert T.dtype == T0.dtype and Z.dtype == Z0.dtype and T.shape == T0.shape
    tol = 1e-4 if np.dtype(dtype) in (np.float32, np.complex64) else 1e-12
    assert np.allclose(T, T0, atol=tol * 10) and np.allclose(Z, Z0, atol=tol * 10)


def test_stack_integer_empty_and_sort():
    rng = np.random.default_rng(0)
    A = rng.standard_normal((2, 3, 5, 5))
    T, Z = la.schur(A)
    for i in np.ndindex(2, 3):
        T0, Z0 = sl.schur(A[i])
        assert np.allclose(T[i], T0) and np.allclose(Z[i], Z0)
    Ti, Zi = la.schur(np.arange(9).reshape(3, 3) % 4)
    assert Ti.dtype == np.float64 and np.allclose(Ti, sl.schur(np.arange(9).reshape(3, 3) % 4)[0])
    for sort in ("lhp", "rhp", "iuc", "ouc", lambda x, y: x > 0.1):
        T, Z, sdim = la.schur(A[0, 0], sort=sort)
        T0, Z0, s0 = sl.schur(A[0, 0], sort=sort)
        assert sdim == s0 and isinstance(sdim, int) and np.allclose(T, T0)
    T, Z, sdim = la.schur(A[0], sort="lhp")
    assert np.array_equal(sdim, sl.schur(A[0], sort="lhp")[2])
    T, Z, sdim = la.schur(A[0, 0] + 0j, sort=lambda w: w.imag > 0)
    assert sdim == sl.schur(A[0, 0] + 0j, sort=lambda w: w.imag > 0)[2]
    T, Z = la.schur(np.zeros((0, 0)))
    assert T.shape == Z.shape == (0, 0) and T.dtype == np.float64
    T, Z, s = la.schur(np.zeros((0, 0), np.complex64), sort="lhp")
    assert s == 0 and T.dtype == np.complex64
    T, Z = la.schur(np.zeros((0, 3, 3)))
    assert T.shape == (0, 3, 3)


def test_errors_name_schur():
    with pytest.raises(ValueError, match="schur"):
        la.schur(np.ones((3, 4)))
    with pytest.raises(ValueError, match="schur"):
        la.schur(np.array([[1.0, np.nan], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="schur.*real"):
        la.schur(np.eye(3), output="x")
    with pytest.raises(ValueError, match="sort"):
        la.schur(np.eye(3), sort="xyz")
    with pytest.raises(ValueError, match="rsf2csf"):
        la.rsf2csf(np.eye(3), np.eye(2))
    with pytest.raises(ValueError, match="rsf2csf"):
        la.rsf2csf(np.ones((3, 2)), np.eye(3))
    with pytest.raises(ValueError, match="rsf2csf"):
        la.rsf2csf(np.full((2, 2), np.inf), np.eye(2))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_rsf2csf_values(dtype):
    rng = np.random.default_rng(1)
    A = _pairs(rng, 7, (3,)).astype(dtype)
    T, Z = sl.schur(A)
    Tc, Zc = la.rsf2csf(T, Z)
    Tc0, Zc0 = sl.rsf2csf(T, Z)
    assert Tc.dtype == Tc0.dtype and Zc.dtype == Zc0.dtype
    tol = 1e-4 if dtype == np.float32 else 1e-12
    assert np.allclose(Tc, Tc0, atol=tol) and np.allclose(Zc, Zc0, atol=tol)
    T1, Z1 = sl.schur(rng.standard_normal((6, 6)))     # real eigenvalues too
    assert np.allclose(la.rsf2csf(T1, Z1)[0], sl.rsf2csf(T1, Z1)[0])


# -- derivatives against SciPy --------------------------------------------------------------

def test_real_form_jvp_vjp_against_scipy_differences():
    rng = np.random.default_rng(2)
    for n in (2, 3, 6, 9):
        A = _pairs(rng, n)
        T0, Z0 = sl.schur(A)
        V = rng.standard_normal((n, n))
        h = 1e-6
        Tp, Zp = _align(T0, Z0, *sl.schur(A + h * V))
        Tm, Zm = _align(T0, Z0, *sl.schur(A - h * V))
        (T, Z), (Td, Zd) = lad.jvp(lambda a: la.schur(a), (A,), (V,))
        assert np.allclose(Td, (Tp - Tm) / (2 * h), atol=1e-6)
        assert np.allclose(Zd, (Zp - Zm) / (2 * h), atol=1e-6)
        Tb, Zb = rng.standard_normal((2, n, n))
        _, back = lad.vjp(lambda a: la.schur(a), A)
        (Ab,) = back((Tb, Zb))
        assert np.isclose(_inner(Ab, V), _inner(Tb, Td) + _inner(Zb, Zd))


def test_complex_form_phase_invariant_losses_against_scipy():
    rng = np.random.default_rng(3)
    n, k = 6, 3
    for A in (_separated(rng, n, dtype=np.complex128), _pairs(rng, n)):
        W = rng.standard_normal((n, n))

        def ours(a):
            T, Z = la.schur(a, output="complex")
            P = Z[:, :k] @ lad.mH(Z[:, :k])
            F = Z @ (T @ T) @ lad.mH(Z)
            return (lad.sum(W * lad.abs(T) ** 2) + lad.sum(lad.real(lad.diagonal(T)) ** 2)
                    + lad.sum(W * lad.real(P)) + lad.sum(W * lad.imag(F)))

        def theirs(a):
            T, Z = sl.schur(a, output="complex")
            P = Z[:, :k] @ Z[:, :k].conj().T
            F = Z @ T @ T @ Z.conj().T
            return (np.sum(W * np.abs(T) ** 2) + np.sum(np.diag(T).real ** 2)
                    + np.sum(W * P.real) + np.sum(W * F.imag))

        g = lad.grad(ours)(A)
        V = rng.standard_normal((n, n)) + (1j * rng.standard_normal((n, n))
                                          if np.iscomplexobj(A) else 0)
        h = 1e-6
        fd = (theirs(A + h * V) - theirs(A - h * V)) / (2 * h)
        assert np.isclose(_inner(g, V), fd, rtol=1e-6, atol=1e-8)
        _, t = lad.jvp(ours, (A,), (V,))
        assert np.isclose(t, fd, rtol=1e-6, atol=1e-8)


def test_phase_dependent_loss_raises():
    A = _separated(np.random.default_rng(4), 5, dtype=np.complex128)
    with pytest.raises(ValueError, match="phase"):
        lad.grad(lambda a: lad.sum(lad.real(la.schur(a)[1])))(A)
    with pytest.raises(ValueError, match="phase"):
        lad.grad(lambda a: lad.sum(lad.real(la.schur(a)[0])))(A)   # Re of off-diagonal T


def test_sorted_against_scipy_differences():
    rng = np.random.default_rng(5)
    A = SR._centered(rng, 6, (), np.float64)[0][0]
    sort = lambda x, y: x < 0                           # noqa: E731
    T0, Z0, s0 = sl.schur(A, sort=sort)
    V = rng.standard_normal(A.shape)
    h = 1e-6
    Tp, Zp = _align(T0, Z0, *sl.schur(A + h * V, sort=sort)[:2])
    Tm, Zm = _align(T0, Z0, *sl.schur(A - h * V, sort=sort)[:2])
    _, (Td, Zd, sd) = lad.jvp(lambda a: la.schur(a, sort=sort), (A,), (V,))
    assert np.allclose(Td, (Tp - Tm) / (2 * h), atol=1e-6)
    assert np.allclose(Zd, (Zp - Zm) / (2 * h), atol=1e-6)


def test_rsf2csf_against_scipy_differences():
    """Directions that keep the blocks: T's pattern (upper part and the blocks'
    subdiagonal entries), any Z."""
    rng = np.random.default_rng(6)
    A = _pairs(rng, 7)
    T, Z = sl.schur(A)
    pattern = np.triu(np.ones((7, 7))) + np.diag((np.diagonal(T, -1) != 0) * 1.0, -1)
    VT, VZ = rng.standard_normal((2, 7, 7))
    VT *= pattern
    h = 1e-6
    p, m = sl.rsf2csf(T + h * VT, Z + h * VZ), sl.rsf2csf(T - h * VT, Z - h * VZ)
    _, (Tcd, Zcd) = lad.jvp(lambda t, z: la.rsf2csf(t, z), (T, Z), (VT, VZ))
    assert np.allclose(Tcd, (p[0] - m[0]) / (2 * h), atol=1e-6)
    assert np.allclose(Zcd, (p[1] - m[1]) / (2 * h), atol=1e-6)
    W1, W2 = rng.standard_normal((2, 7, 7)) + 1j * rng.standard_normal((2, 7, 7))
    _, back = lad.vjp(lambda t, z: la.rsf2csf(t, z), T, Z)
    Tb, Zb = back((W1, W2))
    assert np.isclose(_inner(Tb, VT) + _inner(Zb, VZ), _inner(W1, Tcd) + _inner(W2, Zcd))


def test_second_order_against_gradient_differences():
    rng = np.random.default_rng(7)
    A = _pairs(rng, 5)
    W = rng.standard_normal((5, 5))

    def loss(a):
        T, Z = la.schur(a)
        return lad.sum(lad.diagonal(T) ** 3) + lad.sum(W * (Z @ (T * T) @ Z.T))

    V = rng.standard_normal(A.shape)
    Hv = lad.hvp(loss, (A,), (V,))
    Hv = Hv[0] if isinstance(Hv, tuple) else Hv
    h = 1e-5
    fd = (lad.grad(loss)(A + h * V) - lad.grad(loss)(A - h * V)) / (2 * h)
    assert np.allclose(Hv, fd, rtol=1e-5, atol=1e-6)


def test_stack_gradient_is_per_matrix():
    rng = np.random.default_rng(8)
    A = np.stack([_pairs(rng, 5), _separated(rng, 5)])     # blocks differ between matrices
    loss = lambda a: lad.sum(lad.diagonal(la.schur(a)[0], 0, -2, -1) ** 3)  # noqa: E731
    g = lad.grad(loss)(A)
    for i in range(2):
        assert np.allclose(g[i], lad.grad(loss)(A[i]))


# -- degenerate inputs ---------------------------------------------------------------------

def test_repeated_eigenvalues_raise():
    A = np.array([[1.0, 2.0, 0.0], [0.0, 1.0, 3.0], [0.0, 0.0, 2.0]])
    with pytest.raises(LinAlgError, match="schur"):
        lad.grad(lambda a: lad.sum(la.schur(a)[0]))(A)
    with pytest.raises(LinAlgError, match="schur"):
        lad.jvp(lambda a: la.schur(a), (A,), (np.ones((3, 3)),))


def test_normal_block_gauge():
    """A rotation-scaling block (b = −c) commutes with its rotations: invariant losses are
    differentiable, a loss of the rotation raises ValueError."""
    rng = np.random.default_rng(9)
    Q = np.linalg.qr(rng.standard_normal((4, 4)))[0]
    D = np.array([[1.0, 2.0, 0, 0], [-2.0, 1.0, 0, 0], [0, 0, 3.0, 0.5], [0, 0, 0, -1.0]])
    A = Q @ D @ Q.T
    T, Z = sl.schur(A)
    k = int(np.flatnonzero(np.abs(np.diagonal(T, -1)) > 0.5)[0])       # the block's start
    assert np.isclose(T[k, k + 1], -T[k + 1, k])
    inv = lambda a: lad.sum(lad.diagonal(la.schur(a)[0]) ** 2)  # noqa: E731
    g = lad.grad(inv)(A)
    V = rng.standard_normal(A.shape)
    h = 1e-6
    f = lambda a: np.sum(np.diag(sl.schur(a)[0]) ** 2)  # noqa: E731
    assert np.isclose(np.sum(g * V), (f(A + h * V) - f(A - h * V)) / (2 * h), rtol=1e-5)
    with pytest.raises(ValueError, match="rotation"):
        lad.grad(lambda a: lad.sum(la.schur(a)[1][:, k]))(A)


# -- single precision: the derivative against the double one at the same input ----------------

@pytest.mark.parametrize("dtype", [np.float32, np.complex64])
@pytest.mark.parametrize("output", ["real", "complex"])
def test_single_precision_derivatives_match_double(dtype, output):
    """(The generated checks run in double only: finite differences of the double promotion
    can land on another eigenvalue order.)  Here the order is checked to agree first."""
    rng = np.random.default_rng(10)
    checked = 0
    for _ in range(4):
        A = (_pairs(rng, 6) if np.dtype(dtype).kind == "f" else
             _separated(rng, 6, dtype=np.complex128)).astype(dtype)
        A64 = A.astype(np.result_type(dtype, np.float64))
        if not np.allclose(np.diag(sl.schur(A, output=output)[0]),
                           np.diag(sl.schur(A64, output=output)[0]), atol=1e-3):
            continue
        W = rng.standard_normal((6, 6))

        def loss(a):
            T, Z = la.schur(a, output=output)
            T2, Z2 = SR._invariant(T, Z)
            return lad.sum(T2 ** 2) + lad.sum(W * Z2)
        g32, g64 = lad.grad(loss)(A), lad.grad(loss)(A64)
        assert g32.dtype == A.dtype
        assert np.allclose(g32, g64, rtol=2e-3, atol=2e-3 * np.abs(g64).max())
        V = rng.standard_normal((6, 6)).astype(dtype)
        _, t32 = lad.jvp(loss, (A,), (V,))
        _, t64 = lad.jvp(loss, (A64,), (V.astype(A64.dtype),))
        assert np.isclose(t32, t64, rtol=2e-3, atol=2e-3 * abs(t64))
        checked += 1
    assert checked >= 2


def test_rsf2csf_single_precision():
    rng = np.random.default_rng(11)
    A = _pairs(rng, 5).astype(np.float32)
    T, Z = sl.schur(A)
    W = rng.standard_normal((5, 5))

    def loss(t, z):
        Tc, Zc = la.rsf2csf(t, z)
        return lad.sum(W * lad.abs(Tc) ** 2) + lad.sum(W * lad.abs(Zc) ** 2)
    g32 = lad.grad(loss, argnums=(0, 1))(T, Z)
    g64 = lad.grad(loss, argnums=(0, 1))(T.astype(np.float64), Z.astype(np.float64))
    for a, b in zip(g32, g64):
        assert a.dtype == np.float32 and np.allclose(a, b, rtol=1e-3, atol=1e-3)


# -- review: normal matrices (gauge checks must not fire on rounding) -----------------------

@pytest.mark.parametrize("dtype", [np.complex64, np.complex128])
def test_phase_invariant_losses_of_normal_matrices_do_not_raise(dtype):
    """A normal matrix has a diagonal complex Schur form, so M = ZᴴZ̄ + TᴴT̄ − T̄Tᴴ of a
    phase-invariant loss is pure rounding; the phase check must judge it against the size
    of the terms that cancel, not against max|M| (itself rounding)."""
    rng = np.random.default_rng(20)
    n = 5
    tol = 2e-3 if np.dtype(dtype) == np.complex64 else 1e-10
    for _ in range(3):
        U = np.linalg.qr(rng.standard_normal((n, n)) + 1j * rng.standard_normal((n, n)))[0]
        lam = rng.standard_normal(n) + 1j * rng.standard_normal(n)
        A = (U @ np.diag(lam) @ U.conj().T).astype(dtype)
        g = lad.grad(lambda a: lad.sum(lad.abs(la.schur(a)[0]) ** 2))(A)
        np.testing.assert_allclose(g, 2 * A, atol=tol * np.abs(A).max())     # |T|² = |A|²
        g = lad.grad(lambda a: lad.sum(lad.abs(lad.diagonal(la.schur(a)[0])) ** 2))(A)
        np.testing.assert_allclose(g, 2 * A, atol=tol * np.abs(A).max())     # normal: same
        with pytest.raises(ValueError, match="phase"):                       # still caught
            lad.grad(lambda a: lad.sum(lad.real(la.schur(a)[1])))(A)
    Q = np.linalg.qr(rng.standard_normal((n, n)))[0]          # orthogonal, complex form
    Qd = Q.astype(np.float32 if np.dtype(dtype) == np.complex64 else np.float64)
    g = lad.grad(lambda a: lad.sum(lad.abs(la.schur(a, output="complex")[0]) ** 2))(Qd)
    np.testing.assert_allclose(g, 2 * Qd, atol=tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_orthogonal_matrix_real_form_invariant_loss(dtype):
    """An orthogonal matrix's real Schur form has normal 2×2 blocks (b = −c up to the
    dtype's rounding: ~1e-7 in float32).  A loss that is a function of A (Z T² Zᵀ = A²)
    must get its gradient W Aᵀ + Aᵀ W, not one divided by the rounding of b + c."""
    rng = np.random.default_rng(21)
    n = 4
    tol = 1e-4 if dtype == np.float32 else 1e-10
    for _ in range(4):
        A = np.linalg.qr(rng.standard_normal((n, n)))[0].astype(dtype)
        W = rng.standard_normal((n, n))

        def loss(a):
            T, Z = la.schur(a)
            return lad.sum(W * (Z @ (T @ T) @ Z.T))
        g = lad.grad(loss)(A)
        A64 = A.astype(np.float64)
        want = W @ A64.T + A64.T @ W
        np.testing.assert_allclose(g, want, atol=tol * np.abs(want).max())


def test_rsf2csf_extreme_scales_and_real_eigenvalue_blocks():
    """The rotations are scale invariant: T → sT gives the same Z_c and s T_c, also where
    the blocks' squares overflow or underflow (s = 1e±200: SciPy itself is off there, so
    the reference is the scaled result at s = 1); derivatives scale by 1/s.  A 2×2
    "block" with real eigenvalues is no real Schur form: ValueError, not NaN."""
    rng = np.random.default_rng(22)
    T, Z = sl.schur(_pairs(rng, 5))
    Tc1, Zc1 = la.rsf2csf(T, Z)
    V = rng.standard_normal((5, 5)) * (np.triu(np.ones((5, 5))) + np.diag(
        (np.diagonal(T, -1) != 0) * 1.0, -1))
    _, (Td1, Zd1) = lad.jvp(lambda t: la.rsf2csf(t, Z), (T,), (V,))
    for s in (1e-200, 1e-150, 1e150, 1e200):
        Tc, Zc = la.rsf2csf(T * s, Z)
        assert np.all(np.isfinite(Tc)) and np.all(np.isfinite(Zc))
        np.testing.assert_allclose(Zc, Zc1, atol=1e-13)
        np.testing.assert_allclose(Tc / s, Tc1, atol=1e-13)
        _, (Td, Zd) = lad.jvp(lambda t: la.rsf2csf(t, Z), (T * s,), (V * s,))
        np.testing.assert_allclose(Zd, Zd1, atol=1e-12)
        np.testing.assert_allclose(Td / s, Td1, atol=1e-12)
    bad = np.array([[1.0, 2.0, 0.5], [1.0, 3.0, 0.2], [0.0, 0.0, 5.0]])
    with pytest.raises(ValueError, match="rsf2csf.*real eigenvalues"):
        la.rsf2csf(bad, np.eye(3))
