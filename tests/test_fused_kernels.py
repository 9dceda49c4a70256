"""Fused kernels against the composed rules they stand for.

A rule's derivative that runs as one kernel call (``transforms.fused``) must
equal its composed definition in differentiable operations on every path the
CPU table takes: one matrix (two solves below ``SANDWICH_GST_N``, sygst/hegst
from it), stacks of tiny matrices (substitution), stacks of 9..128 (the
vectorised triangular inverse) and stacks of larger ones (per matrix), both
triangles, all four dtypes.  Second derivatives through the fused primitives
are covered by the registry's order-2 checks.
"""

import numpy as np
import pytest

import linalgad as lad
from linalgad import backend, linalg as la, transforms
from linalgad.backend import CPU
from linalgad.rules import cholesky as R

DTYPES = (np.float32, np.float64, np.complex64, np.complex128)
SHAPES = [((), 1), ((), 5), ((), 40), ((3,), 4), ((2, 2), 8), ((5,), 9), ((4,), 33),
          ((2,), 130)]


def _spd(rng, batch, n, dtype):
    A = rng.standard_normal(batch + (n, n))
    if np.dtype(dtype).kind == "c":
        A = A + 1j * rng.standard_normal(batch + (n, n))
    return (A @ np.conj(np.swapaxes(A, -1, -2)) / n + np.eye(n)).astype(dtype)


def _tol(dtype):
    return 2e-4 if np.dtype(dtype) in (np.float32, np.complex64) else 1e-10


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch,n", SHAPES)
@pytest.mark.parametrize("lower", [True, False])
def test_cholesky_cotangent_kernel_matches_composed(batch, n, dtype, lower):
    rng = np.random.default_rng(n + len(batch))
    C = la.cholesky(_spd(rng, batch, n, dtype), lower=lower)
    C_bar = rng.standard_normal(C.shape).astype(dtype)
    want = R._cotangent_composed(C, C_bar, lower=lower)
    got = CPU.cholesky_cotangent(C, C_bar, lower)
    # the kernel keeps the factor's precision (the composed form promotes float32 on the
    # way; the rule casts its result to the input's dtype either way)
    assert got.dtype == np.dtype(dtype) and got.shape == want.shape
    assert np.abs(got - want).max() <= _tol(dtype) * np.abs(want).max()
    # the triangle that was not read gets nothing
    other = np.triu(got, 1) if lower else np.tril(got, -1)
    assert not other.any()


@pytest.mark.parametrize("n", [64, 300])
def test_cholesky_cotangent_sygst_path_and_solves_agree(n, monkeypatch):
    rng = np.random.default_rng(n)
    for dtype in (np.float64, np.complex128):
        for lower in (True, False):
            C = la.cholesky(_spd(rng, (), n, dtype), lower=lower)
            C_bar = rng.standard_normal(C.shape).astype(dtype)
            monkeypatch.setattr(backend, "SANDWICH_GST_N", 1)
            a = CPU.cholesky_cotangent(C, C_bar, lower)
            monkeypatch.setattr(backend, "SANDWICH_GST_N", 10 ** 9)
            b = CPU.cholesky_cotangent(C, C_bar, lower)
            assert np.abs(a - b).max() <= 1e-10 * np.abs(b).max()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch,n", SHAPES)
@pytest.mark.parametrize("lower", [True, False])
def test_cho_inverse_kernel(batch, n, dtype, lower):
    rng = np.random.default_rng(7 * n)
    A = _spd(rng, batch, n, dtype)
    got = CPU.cho_inverse(CPU.cho_factor(A, lower))
    want = np.linalg.inv(A.astype(np.complex128 if np.dtype(dtype).kind == "c"
                                  else np.float64))
    assert got.dtype == np.dtype(dtype) and got.shape == A.shape
    assert np.abs(got - want).max() <= _tol(dtype) * np.abs(want).max()


@pytest.mark.parametrize("batch,n", [((), 6), ((3,), 12)])
def test_tri_inverse(batch, n):
    rng = np.random.default_rng(0)
    L = np.linalg.cholesky(_spd(rng, batch, n, np.complex128))
    Li = backend._tri_inverse(L)
    assert np.abs(Li @ L - np.eye(n)).max() < 1e-13
    assert not np.triu(Li, 1).any()


def test_fused_primitive_derivatives_trace_the_reference():
    """A fused primitive with a deliberately different kernel: first-order results come
    from the kernel, derivatives of its derivatives from the reference."""
    from linalgad import ops

    prim = transforms.fused("square_plus", lambda x: x * x + 1.0, lambda x: x * x)
    x = np.array([1.5, -2.0])
    assert np.allclose(prim(x), x * x + 1.0)                       # the kernel runs
    g = transforms.grad(lambda x: ops.sum(prim(x)))(x)             # d/dx of x² (reference)
    assert np.allclose(g, 2 * x)
    t = transforms.jvp(prim, (x,), (np.ones(2),))[1]
    assert np.allclose(t, 2 * x)
    h = transforms.grad(lambda x: ops.sum(transforms.grad(lambda y: ops.sum(prim(y) * y))(x)))(x)
    assert np.allclose(h, 6 * x)                                   # d²/dx² of x³ summed


@pytest.mark.parametrize("dtype", [np.float32, np.complex128])
@pytest.mark.parametrize("lower", [True, False])
@pytest.mark.parametrize("trans", [0, 1, 2])
@pytest.mark.parametrize("unit", [False, True])
def test_blocked_stack_triangular_solve(dtype, lower, trans, unit):
    """The stack solver for 8 < n <= BLOCKED_TRI_N (halving, inverted diagonal blocks)
    against SciPy matrix by matrix."""
    import scipy.linalg

    rng = np.random.default_rng(3)
    n = 21
    A = rng.standard_normal((4, n, n)) + n * np.eye(n)
    if np.dtype(dtype).kind == "c":
        A = A + 1j * rng.standard_normal((4, n, n))
    A, b = A.astype(dtype), rng.standard_normal((4, n, 3)).astype(dtype)
    got = CPU.solve_triangular(A, b, lower=lower, trans=trans, unit_diagonal=unit)
    for i in range(4):
        want = scipy.linalg.solve_triangular(A[i], b[i], lower=lower, trans=trans,
                                             unit_diagonal=unit)
        assert np.abs(got[i] - want).max() <= _tol(dtype) * np.abs(want).max()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch,n", [((), 1), ((), 2), ((), 7), ((), 70), ((3,), 1),
                                     ((2, 3), 4), ((5,), 8), ((4,), 9), ((2, 2), 16),
                                     ((2,), 33)])
def test_lu_cotangent_kernel_matches_composed(batch, n, dtype):
    """One matrix (BLAS on the packed factor) and stacks (batched steps; substitution
    up to SMALL_N, blocks above, direct trsm calls from order 16 and 32)."""
    from linalgad.rules import lu as LU

    rng = np.random.default_rng(n + len(batch))
    shape = batch + (n, n)
    A = rng.standard_normal(shape) + (1j * rng.standard_normal(shape)
                                      if np.dtype(dtype).kind == "c" else 0)
    lu_, perm, _ = CPU.lu_packed(A.astype(dtype))
    g = rng.standard_normal(shape).astype(dtype)
    want = LU._cotangent_composed(lu_, g, perm=perm)
    got = CPU.lu_cotangent(lu_, g, perm)
    assert got.dtype == np.dtype(dtype)
    assert np.abs(got - want).max() <= 10 * _tol(dtype) * np.abs(want).max()


def test_lu_cotangent_kernel_declines_what_it_does_not_fuse():
    rng = np.random.default_rng(0)
    for shape in [(2, 130, 130), (5, 3), (3, 5), (2, 5, 3)]:
        lu_, perm, _ = CPU.lu_packed(rng.standard_normal(shape))
        assert CPU.lu_cotangent(lu_, np.ones(shape), perm) is None
    from scipy.linalg import LinAlgWarning

    with pytest.warns(LinAlgWarning, match="singular"):
        lu_, perm, _ = CPU.lu_packed(np.array([[1.0, 2.0], [2.0, 4.0]]))     # U₂₂ = 0
    assert CPU.lu_cotangent(lu_, np.ones((2, 2)), perm) is None
    with pytest.warns(LinAlgWarning, match="singular"):
        lu_, perm, _ = CPU.lu_packed(np.array([np.eye(2), [[1.0, 2.0], [2.0, 4.0]]]))
    assert CPU.lu_cotangent(lu_, np.ones((2, 2, 2)), perm) is None


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 1), (4, 4), (9, 5), (60, 60),
                                   # stacks of matrices large enough for one trsm call
                                   # each (backend.STACK_TRSM_N): the stack kernel
                                   (3, 40, 32), (2, 2, 16, 16), (2, 33, 32)])
@pytest.mark.parametrize("which", ["both", "Q", "R"])
def test_qr_cotangent_kernel_matches_composed(shape, dtype, which):
    from linalgad.rules import qr as QR

    rng = np.random.default_rng(sum(shape))
    A = rng.standard_normal(shape) + (1j * rng.standard_normal(shape)
                                      if np.dtype(dtype).kind == "c" else 0)
    Q, R = np.linalg.qr(A.astype(dtype))
    Q_bar = rng.standard_normal(Q.shape).astype(dtype) if which != "R" else None
    R_bar = rng.standard_normal(R.shape).astype(dtype) if which != "Q" else None
    want = QR._square_composed(Q, R, Q_bar, R_bar)
    got = CPU.qr_cotangent(Q, R, Q_bar, R_bar)
    assert got is not None and got.dtype == np.dtype(dtype) and got.shape == A.shape
    scale = max(np.abs(want).max(), 1.0)
    assert np.abs(got - want).max() <= 10 * _tol(dtype) * scale


@pytest.mark.parametrize("dtype", [np.float64, np.complex128])
def test_qr_rule_on_a_stack_through_the_stack_kernel(dtype):
    from linalgad.testing import check_grads

    rng = np.random.default_rng(11)
    A = rng.standard_normal((2, 17, 16)) + (1j * rng.standard_normal((2, 17, 16))
                                            if np.dtype(dtype).kind == "c" else 0)
    assert backend._stack_trsm_pays(16, 17)
    check_grads(lambda a: la.qr(a), (A.astype(dtype),), order=1)


def test_qr_cotangent_kernel_declines_tiny_stacks_and_rank_deficiency():
    Q, R = np.linalg.qr(np.ones((3, 4, 4)) + np.eye(4))
    assert CPU.qr_cotangent(Q, R, Q, None) is None       # substitutions win: composed form
    Q, R = np.linalg.qr(np.array([[1.0, 0.0], [0.0, 0.0]]))              # R₂₂ = 0
    assert CPU.qr_cotangent(Q, R, None, R) is None
    A = np.tile(np.eye(32), (2, 1, 1))
    A[1, :, 7] = 0.0
    Q, R = np.linalg.qr(A)
    assert CPU.qr_cotangent(Q, R, None, R) is None


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("batch,n", [((), 1), ((), 6), ((3,), 5), ((2, 2), 20)])
@pytest.mark.parametrize("lower", [True, False])
@pytest.mark.parametrize("which", ["both", "w", "V"])
def test_eigh_cotangent_kernel_matches_composed(batch, n, dtype, lower, which):
    from linalgad.rules import eigh as E

    rng = np.random.default_rng(n)
    A = rng.standard_normal(batch + (n, n)).astype(dtype)
    w, V = np.linalg.eigh(A + np.swapaxes(A, -1, -2))
    w_bar = rng.standard_normal(w.shape).astype(dtype) if which != "V" else None
    V_bar = rng.standard_normal(V.shape).astype(dtype) if which != "w" else None
    want = E._cotangent_composed(w, V, w_bar, V_bar, lower=lower)
    got = CPU.eigh_cotangent(w, V, w_bar, V_bar, lower)
    assert got.dtype == np.dtype(dtype)
    assert np.abs(got - want).max() <= 10 * _tol(dtype) * max(np.abs(want).max(), 1.0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("lower", [True, False])
@pytest.mark.parametrize("order", ["C", "F"])
def test_eigenvalue_cotangent_by_syrk_matches_composed(dtype, lower, order):
    """From SYRK_N on, V diag(w̄) Vᵀ is one syrk of V √(w̄ − min w̄) plus a shift."""
    from linalgad.rules import eigh as E

    n = backend.SYRK_N + 3
    rng = np.random.default_rng(7)
    A = rng.standard_normal((n, n)).astype(dtype)
    w, V = np.linalg.eigh(A + A.T)
    V = np.asarray(V, order=order)
    w_bar = rng.standard_normal(n).astype(dtype)
    want = E._cotangent_composed(w, V, w_bar, None, lower=lower)
    got = CPU.eigh_cotangent(w, V, w_bar, None, lower)
    assert got.dtype == np.dtype(dtype)
    assert np.abs(got - want).max() <= 10 * _tol(dtype) * np.abs(want).max()
    other = np.triu(got, 1) if lower else np.tril(got, -1)
    assert not other.any()                       # only the triangle read gets gradient


@pytest.mark.parametrize("lower", [True, False])
@pytest.mark.parametrize("with_w", [True, False])
def test_eigh_cotangent_by_triangle_product_matches_composed(lower, with_w):
    """From TRIANGLE_PRODUCT_N on, the last product of V S Vᵀ is one triangle, by row blocks."""
    from linalgad.rules import eigh as E

    n = backend.TRIANGLE_PRODUCT_N + 5
    rng = np.random.default_rng(11)
    A = rng.standard_normal((n, n))
    w, V = np.linalg.eigh(A + A.T)
    w_bar = rng.standard_normal(n) if with_w else None
    V_bar = rng.standard_normal((n, n))
    want = E._cotangent_composed(w, V, w_bar, V_bar, lower=lower)
    got = CPU.eigh_cotangent(w, V, w_bar, V_bar, lower)
    assert np.abs(got - want).max() <= 10 * _tol(np.float64) * np.abs(want).max()
    other = np.triu(got, 1) if lower else np.tril(got, -1)
    assert not other.any()


@pytest.mark.parametrize("n", [5, 256, 600])
@pytest.mark.parametrize("lower", [True, False])
def test_triangle_product(n, lower):
    rng = np.random.default_rng(n)
    P, Q = rng.standard_normal((n, n)), rng.standard_normal((n, n))
    X = backend._triangle_product(P, Q, lower)
    tri = np.tril if lower else np.triu
    np.testing.assert_allclose(tri(X), tri(P @ Q), rtol=1e-12, atol=1e-12 * n)


def test_eigenvalue_cotangent_by_syrk_is_exact_for_constant_weights():
    """Σ w = trace A: Ā is exactly c I (the shift carries it; no product rounding)."""

    n = backend.SYRK_N + 1
    A = np.random.default_rng(3).standard_normal((n, n))
    w, V = np.linalg.eigh(A + A.T)
    got = CPU.eigh_cotangent(w, V, np.full(n, 2.5), None, True)
    assert np.array_equal(got, 2.5 * np.eye(n))


def test_eigh_kernel_not_used_at_a_cluster():
    """At repeated eigenvalues the rule keeps the composed form: it drops the gap terms
    inside the cluster and warns when the loss depends on the basis there."""
    import warnings

    from linalgad import GaugeWarning
    from linalgad.rules import eigh as E

    w = np.array([1.0, 1.0, 3.0])
    V = np.eye(3)
    V_bar = np.arange(9.0).reshape(3, 3)
    with pytest.warns(GaugeWarning):
        got = E._cotangent_kernel(w, V, None, V_bar, lower=True)
    assert np.isfinite(got).all()
    # a basis-independent cotangent (V̄ = V S, S symmetric) at the cluster: no warning, and
    # the gradient of Σ f(w)-type losses is exact
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = E._cotangent_kernel(w, V, np.array([2.0, 2.0, 1.0]), V @ np.diag([1.0, 1, 2]),
                                  lower=True)
    want = np.diag([2.0, 2.0, 1.0])                  # V diag(w̄) Vᴴ, folded (diagonal)
    assert np.allclose(got, want)


# The device-neutral versions in ComposedKernels are what the CuPy table runs; with the
# NumPy table as their device they must give the CPU kernels' results.

@pytest.mark.parametrize("dtype", [np.float32, np.complex128])
@pytest.mark.parametrize("batch,n", [((), 5), ((3,), 9)])
@pytest.mark.parametrize("lower", [True, False])
def test_device_neutral_cholesky_kernels(batch, n, dtype, lower):
    from linalgad.backend import ComposedKernels

    rng = np.random.default_rng(11)
    A = _spd(rng, batch, n, dtype)
    C = la.cholesky(A, lower=lower)
    C_bar = rng.standard_normal(C.shape).astype(dtype)
    got = ComposedKernels.cholesky_cotangent(CPU, C, C_bar, lower)
    want = CPU.cholesky_cotangent(C, C_bar, lower)
    assert np.abs(got - want).max() <= 10 * _tol(dtype) * np.abs(want).max()
    F = CPU.cho_factor(A, lower)
    got = ComposedKernels.cho_inverse(CPU, F)
    want = CPU.cho_inverse(F)
    assert np.abs(got - want).max() <= 10 * _tol(dtype) * np.abs(want).max()


# -- triangle-restricted products (ops.tri_matmul, ops.split_matmul) -------------------

def _split_reference(lo, up, k):
    out = 0
    if lo is not None:
        out = out + np.tril(np.matmul(*lo), k - 1)
    if up is not None:
        out = out + np.triu(np.matmul(*up), k)
    return out


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,m,kdim,batch", [(6, 6, 2, ()), (9, 5, 3, (2,)), (5, 9, 4, ()),
                                            (17, 17, 1, (3,)), (20, 13, 6, (2, 1)),
                                            (13, 20, 2, ())])
@pytest.mark.parametrize("k", [-20, -3, -1, 0, 1, 4, 25])
@pytest.mark.parametrize("blocked", [False, True])
def test_split_product_every_path(dtype, n, m, kdim, batch, k, blocked, monkeypatch):
    """Whole product and masked copy, or row blocks (forced with tiny blocks here); each
    side alone (tril / triu of one product) and both; offsets past either edge."""
    from linalgad import ops
    if blocked:
        monkeypatch.setattr(ops, "TRI_PRODUCT_WORK", 1)
        monkeypatch.setattr(ops, "TRI_PRODUCT_BLOCK", 2)
    rng = np.random.default_rng(n * 31 + m + kdim)
    cplx = np.dtype(dtype).kind == "c"

    def draw(shape):
        x = rng.standard_normal(shape) + (1j * rng.standard_normal(shape) if cplx else 0)
        return x.astype(dtype)
    lo = (draw(batch + (n, kdim)), draw((kdim, m)))
    up = (draw((n, kdim)), draw(batch + (kdim, m)))
    tol = _tol(dtype) * 10
    for a, b in [(lo, None), (None, up), (lo, up)]:
        got = ops._split_product(a, b, k)
        want = _split_reference(a, b, k)
        assert got.shape == want.shape and got.dtype == np.dtype(dtype)
        assert np.abs(got - want).max() <= tol * max(np.abs(want).max(), 1)
        # entries outside the kept triangles are exact zeros, not tiny leftovers
        if b is None:
            assert not np.triu(got, k).any()
        if a is None:
            assert not np.tril(got, k - 1).any()
    got = ops.tri_matmul(lo[0], lo[1], k=k, lower=True)
    assert np.allclose(got, np.tril(np.matmul(*lo), k), atol=tol, rtol=tol)
    got = ops.tri_matmul(up[0], up[1], k=k, lower=False)
    assert np.allclose(got, np.triu(np.matmul(*up), k), atol=tol, rtol=tol)


@pytest.mark.parametrize("blocked", [False, True])
@pytest.mark.parametrize("dtype", [np.float64, np.complex128])
def test_split_and_triangle_products_are_differentiable(blocked, dtype, monkeypatch):
    """Both primitives to second order (JVP, VJP, finite differences, dot-product test)
    on both kernel paths; the input shapes broadcast a stack."""
    from linalgad import ops
    from linalgad.testing import check_grads
    if blocked:
        monkeypatch.setattr(ops, "TRI_PRODUCT_WORK", 1)
        monkeypatch.setattr(ops, "TRI_PRODUCT_BLOCK", 2)
    rng = np.random.default_rng(7)
    cplx = np.dtype(dtype).kind == "c"

    def draw(*shape):
        x = rng.standard_normal(shape) + (1j * rng.standard_normal(shape) if cplx else 0)
        return x.astype(dtype)
    p, q, r, s = draw(2, 5, 3), draw(3, 6), draw(5, 3), draw(2, 3, 6)
    check_grads(lambda p, q, r, s: ops.split_matmul(p, q, r, s, k=1), (p, q, r, s), order=2)
    check_grads(lambda p, q: ops.tri_matmul(p, q, k=-1, lower=True), (p, q), order=2)
    check_grads(lambda r, s: ops.tri_matmul(r, s, k=2, lower=False), (r, s), order=2)


# -- eigh of large stacks of tiny real symmetric matrices (vectorised Jacobi) ---------

def _jacobi_cases(rng, n, big=1e150):
    Q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    special = [np.zeros((n, n)), np.eye(n), np.diag(np.arange(n, 0, -1.0)),
               Q @ np.diag([1.0] * (n - 1) + [2.0]) @ Q.T,                 # a cluster
               Q @ np.diag(np.geomspace(1e-12, 1, n)) @ Q.T,              # graded
               big * (Q @ np.diag(np.linspace(-1, 1, n)) @ Q.T),           # huge
               (1 / big) * (Q @ np.diag(np.linspace(-1, 1, n)) @ Q.T)]     # tiny
    X = rng.standard_normal((41, n, n))
    return np.concatenate([np.stack(special), X + np.swapaxes(X, -1, -2)])


@pytest.mark.parametrize("n", [2, 3, 4])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("lower", [True, False])
def test_jacobi_eigh_matches_lapack(n, dtype, lower):
    """Eigenvalues ascending and equal to LAPACK's to a few eps·‖A‖, V orthogonal, A = V W Vᵀ
    rebuilt from the triangle read (junk in the other one), on clusters, graded, zero and
    extreme-scale matrices; float32 rounds a double-precision result."""
    rng = np.random.default_rng(n)
    S = _jacobi_cases(rng, n, big=1e150 if dtype == np.float64 else 1e15)
    junk = rng.standard_normal(S.shape)
    A = np.where(np.tri(n, dtype=bool) if lower else np.tri(n, dtype=bool).T, S, junk)
    A = A.astype(dtype).reshape((2, -1, n, n))                       # a 2-D batch
    w, V = backend._jacobi_eigh(A, lower)
    assert w.dtype == V.dtype == np.dtype(dtype) and w.shape == A.shape[:-1]
    w_ref = np.linalg.eigvalsh(A, UPLO="L" if lower else "U")
    S = S.astype(dtype).astype(np.float64).reshape(A.shape)
    scale = np.abs(S).max(axis=(-2, -1))[..., None] + 1e-300
    eps = np.finfo(dtype).eps
    assert np.all(np.diff(w, axis=-1) >= 0)
    assert (np.abs(w - w_ref) / scale).max() <= 50 * eps
    V64, w64 = V.astype(np.float64), w.astype(np.float64)
    rebuilt = V64 @ (w64[..., None] * np.swapaxes(V64, -1, -2))
    assert (np.abs(rebuilt - S).max(axis=-1) / scale).max() <= 60 * eps
    assert np.abs(np.swapaxes(V64, -1, -2) @ V64 - np.eye(n)).max() <= 20 * eps
    w_only = backend._jacobi_eigh(A, lower, vectors=False)       # eigenvalues alone
    assert w_only.dtype == np.dtype(dtype) and w_only.shape == w.shape
    assert (np.abs(w_only - w_ref) / scale).max() <= 50 * eps


def test_jacobi_eigh_is_taken_by_shape_and_gradients_through_it(monkeypatch):
    """CPU.eigh takes the Jacobi kernel for large real stacks of order <= 4 only, and the
    rule's derivatives (to second order) are right through it; non-finite input falls back
    to LAPACK, whose error names the matrix."""
    from linalgad.testing import check_grads
    calls = []
    real = backend._jacobi_eigh
    monkeypatch.setattr(backend, "_jacobi_eigh", lambda A, lower, vectors=True:
                        calls.append(A.shape) or real(A, lower, vectors))
    rng = np.random.default_rng(3)
    X = rng.standard_normal((backend.JACOBI_MIN_BATCH[3], 3, 3))
    CPU.eigh(X)
    CPU.eigh(X[:10])                                        # small stack: LAPACK
    CPU.eigh(X.astype(np.complex128))                       # complex: LAPACK
    CPU.eigh(np.zeros((5000, 5, 5)))                        # order 5: LAPACK
    assert calls == [X.shape]
    calls.clear()
    Y = rng.standard_normal((backend.JACOBI_VALUES_MIN_BATCH[3], 3, 3))
    assert np.allclose(CPU.eigvalsh(Y, lower=False), np.linalg.eigvalsh(Y, UPLO="U"),
                       rtol=0, atol=1e-13)                  # eigenvalues alone, order 3
    CPU.eigvalsh(rng.standard_normal((backend.JACOBI_VALUES_MIN_BATCH[4] - 1, 4, 4)))
    CPU.eigvalsh(rng.standard_normal((5000, 5, 5)))         # order 5, or fewer: LAPACK
    assert calls == [Y.shape]
    monkeypatch.setattr(backend, "JACOBI_MIN_BATCH", {2: 1, 3: 1, 4: 1})
    A = rng.standard_normal((3, 4, 4))
    A = A + np.swapaxes(A, -1, -2)
    calls.clear()
    check_grads(lambda A: la.eigh(A)[0], (A,), order=2)
    check_grads(lambda A: la.eigh(A, UPLO="U")[1] @ np.diag([1.0, 2.0, 3.0, 4.0])
                @ lad.mT(la.eigh(A, UPLO="U")[1]), (A,), order=1)
    assert calls                                            # the kernel ran
    bad = A.copy()
    bad[1, 0, 0] = np.nan
    with pytest.raises(np.linalg.LinAlgError, match=r"eigh: .*\(matrix \(1,\)"):
        la.eigh(bad, check_finite=False)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch,n", [((), 1), ((), 6), ((), 40), ((3,), 4), ((2,), 9),
                                     ((2,), 130)])
@pytest.mark.parametrize("lower", [True, False])
def test_logdet_cotangent_kernel_matches_composed(batch, n, dtype, lower):
    """ℓ̄ (2 tril(A⁻¹, −1) + Re diag A⁻¹) straight from potri's triangle (one matrix) or the
    stack's inverse, against the composed definition; nothing in the other triangle."""
    from linalgad.rules import cholesky as R
    rng = np.random.default_rng(n + 7 * len(batch))
    A = _spd(rng, batch, n, dtype)
    F = CPU.cho_factor(A, lower=lower)
    l_bar = rng.standard_normal(batch).astype(np.dtype(dtype).type(0).real.dtype)
    want = R._logdet_cotangent_composed(A, l_bar, F=F, lower=lower)
    got = CPU.logdet_cotangent(F, np.asarray(l_bar))
    assert got.dtype == np.dtype(dtype) and got.shape == A.shape
    assert np.abs(got - want).max() <= _tol(dtype) * np.abs(want).max()
    other = np.triu(got, 1) if lower else np.tril(got, -1)
    assert not other.any()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch,n", [((), 1), ((), 7), ((), 70), ((3,), 4), ((2, 2), 8),
                                     ((3,), 20)])
def test_slogdet_cotangent_kernel_matches_composed(batch, n, dtype):
    """w A⁻ᴴ from getri's A⁻ᵀ (one matrix, stacks by LAPACK) or the vectorised solve with
    Aᴴ (tiny stacks), against the composed definition; w complex for complex input."""
    from linalgad.rules import determinant as R
    rng = np.random.default_rng(n + len(batch))
    cplx = np.dtype(dtype).kind == "c"
    shape = batch + (n, n)
    A = (rng.standard_normal(shape) + (1j * rng.standard_normal(shape) if cplx else 0)
         + 3 * np.eye(n)).astype(dtype)
    F = CPU.lu_factor(A, op="slogdet", singular_ok=True)
    w = rng.standard_normal(batch) + (1j * rng.standard_normal(batch) if cplx else 0)
    w = np.asarray(w, dtype=dtype)
    want = R._slogdet_cotangent_composed(A, w, F=F)
    got = CPU.lu_inverse_h(F, w)
    assert got.dtype == np.dtype(dtype) and got.shape == A.shape
    assert np.abs(got - want).max() <= 10 * _tol(dtype) * np.abs(want).max()


# -- svd of large stacks of tiny real square matrices (one-sided Jacobi) ---------------

@pytest.mark.parametrize("n", [2, 3, 4])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_jacobi_svd_matches_lapack(n, dtype):
    """s descending and equal to LAPACK's to a few eps·‖A‖, U and V orthogonal, A rebuilt,
    on zero, identity, rank-deficient, ill-conditioned (redone by LAPACK) and extreme-scale
    matrices; singular values alone without the vectors."""
    rng = np.random.default_rng(10 + n)
    A = rng.standard_normal((2, 30, n, n))
    A[0, 0] = 0
    A[0, 1] = np.eye(n)
    A[0, 2, :, 0] = A[0, 2, :, 1]                                # rank deficient
    A[0, 3] = np.diag(np.geomspace(1, 1e-9, n))                  # ill-conditioned
    big = 1e150 if dtype == np.float64 else 1e15
    A[0, 4] *= big
    A[0, 5] /= big
    A = A.astype(dtype)
    U, s, Vh = backend._jacobi_svd(A)
    assert U.dtype == s.dtype == Vh.dtype == np.dtype(dtype)
    assert U.shape == Vh.shape == A.shape and s.shape == A.shape[:-1]
    A64 = A.astype(np.float64)
    s_ref = np.linalg.svd(A64, compute_uv=False)
    scale = np.abs(A64).max(axis=(-2, -1)) + 1e-300
    eps = np.finfo(dtype).eps
    assert np.all(np.diff(s, axis=-1) <= 0)
    assert (np.abs(s - s_ref).max(axis=-1) / scale).max() <= 20 * eps
    U64, s64, Vh64 = U.astype(np.float64), s.astype(np.float64), Vh.astype(np.float64)
    rebuilt = (U64 * s64[..., None, :]) @ Vh64
    assert (np.abs(rebuilt - A64).max(axis=(-2, -1)) / scale).max() <= 30 * eps
    eye = np.eye(n)
    assert np.abs(np.swapaxes(U64, -1, -2) @ U64 - eye).max() <= 30 * eps
    assert np.abs(Vh64 @ np.swapaxes(Vh64, -1, -2) - eye).max() <= 30 * eps
    s_only = backend._jacobi_svd(A, vectors=False)
    assert s_only.dtype == np.dtype(dtype)
    assert (np.abs(s_only - s_ref).max(axis=-1) / scale).max() <= 20 * eps


def test_jacobi_svd_is_taken_by_shape_and_gradients_through_it(monkeypatch):
    """CPU.svd takes the kernel for large real square stacks of order <= 4 only (with and
    without vectors), and the svd rule's derivatives are right through it."""
    from linalgad.testing import check_grads
    calls = []
    real = backend._jacobi_svd
    monkeypatch.setattr(backend, "_jacobi_svd", lambda A, vectors=True:
                        calls.append((A.shape, vectors)) or real(A, vectors))
    rng = np.random.default_rng(5)
    X = rng.standard_normal((backend.JACOBI_SVDVALS_MIN_BATCH[4], 4, 4))
    CPU.svd(X)
    CPU.svd(X, compute_uv=False)
    CPU.svd(X[:10])                                          # small stack: LAPACK
    CPU.svd(rng.standard_normal((5000, 4, 3)))               # not square: LAPACK
    CPU.svd(X.astype(np.complex128))                         # complex: LAPACK
    assert calls == [(X.shape, True), (X.shape, False)]
    monkeypatch.setattr(backend, "JACOBI_SVD_MIN_BATCH", {2: 1, 3: 1, 4: 1})
    A = rng.standard_normal((3, 3, 3)) + 2 * np.eye(3)
    calls.clear()
    check_grads(lambda A: la.svd(A)[1], (A,), order=2)
    check_grads(lambda A: la.svd(A)[0] @ la.svd(A)[2], (A,), order=1)     # the polar factor
    assert calls


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [2, 4, 6])
def test_inv_of_large_tiny_stacks_by_the_vectorised_lu(n, dtype):
    """From VECTOR_INV_BATCH matrices of order <= VECTOR_INV_N, inv is the vectorised LU and
    its solve with the identity: equal to LAPACK's inverse (same partial pivoting), and a
    singular matrix named by its index."""
    rng = np.random.default_rng(n)
    shape = (backend.VECTOR_INV_BATCH, n, n)
    cplx = np.dtype(dtype).kind == "c"
    A = (rng.standard_normal(shape) + (1j * rng.standard_normal(shape) if cplx else 0)
         + 3 * np.eye(n)).astype(dtype)
    got = CPU.inv(A)
    want = np.linalg.inv(A.astype(np.complex128 if cplx else np.float64))
    assert got.dtype == np.dtype(dtype)
    assert np.abs(got - want).max() <= 50 * _tol(dtype) * np.abs(want).max()
    A[7] = 0
    with pytest.raises(np.linalg.LinAlgError, match=r"inv: matrix is singular.*\(matrix \(7,\)"):
        la.inv(A)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("batch,m,n", [((), 1, 1), ((), 6, 6), ((), 9, 4), ((), 4, 9),
                                       ((3,), 5, 5), ((2, 2), 7, 3), ((2,), 3, 8),
                                       ((4,), 20, 20)])
@pytest.mark.parametrize("which", ["Usv", "U", "v", "s", "Us", "sv", "Uv"])
def test_svd_cotangent_kernel_matches_composed(batch, m, n, dtype, which):
    from linalgad.rules import svd as SV

    rng = np.random.default_rng(m * 10 + n)
    A = rng.standard_normal(batch + (m, n)).astype(dtype)
    U, s, Vh = np.linalg.svd(A, full_matrices=False)
    U_bar = rng.standard_normal(U.shape).astype(dtype) if "U" in which else None
    s_bar = rng.standard_normal(s.shape).astype(dtype) if "s" in which else None
    Vh_bar = rng.standard_normal(Vh.shape).astype(dtype) if "v" in which else None
    want = SV._cotangent_composed(U, s, Vh, U_bar, s_bar, Vh_bar)
    got = CPU.svd_cotangent(U, s, Vh, U_bar, s_bar, Vh_bar)
    assert got.dtype == np.dtype(dtype) and got.shape == A.shape
    # the gap terms amplify rounding by s_max / min gap; these spectra keep it below ~1e3
    assert np.abs(got - want).max() <= 1e3 * _tol(dtype) * max(np.abs(want).max(), 1.0)


def test_svd_backward_takes_the_kernel_only_where_nothing_is_dropped(monkeypatch):
    """Real, distinct, nonzero singular values: one kernel call; a cluster, a zero
    singular value with a 1/s term, or complex input: the composed form (which checks)."""
    from linalgad.rules import svd as SV

    calls = []
    real = CPU.svd_cotangent
    monkeypatch.setattr(CPU, "svd_cotangent", lambda *a: calls.append(1) or real(*a))

    def loss(A):
        U, s, Vh = la.svd(A, full_matrices=False)
        return lad.sum(U[..., :2] ** 3) + lad.sum(s ** 2) + lad.sum(Vh ** 3)

    rng = np.random.default_rng(0)
    lad.grad(loss)(rng.standard_normal((5, 3)))
    assert len(calls) == 1
    Q1, Q2 = np.linalg.qr(rng.standard_normal((2, 3, 3)))[0]
    with pytest.warns(lad.GaugeWarning):
        lad.grad(loss)(Q1 @ np.diag([2.0, 1.0, 1.0]) @ Q2.T)          # a cluster
    lad.grad(lambda A: lad.sum(la.svd(A)[1] ** 2))(np.diag([0.0, 1.0, 2.0]))
    lad.grad(lambda A: lad.sum(lad.abs(la.svd(A)[0] @ la.svd(A)[2]) ** 2) + lad.sum(
        la.svdvals(A) ** 3))(rng.standard_normal((3, 3)) + 1j * rng.standard_normal((3, 3)))
    assert len(calls) == 2      # a zero singular value without a 1/s term: still the kernel
    g = lad.grad(lambda A: lad.sum(SV.svd(A, full_matrices=False)[0] ** 3))(
        np.array([[1.0, 0.0], [0.0, 0.0], [0.0, 0.0]]))                 # zero s, 1/s term
    assert np.isfinite(g).all() and len(calls) == 2


def test_svd_cotangent_of_the_values_alone_is_one_product(monkeypatch):
    """svdvals (s̄ only): U diag(s̄) Vᵀ as a column scaling and one product, not two."""
    rng = np.random.default_rng(5)
    U, s, Vh = np.linalg.svd(rng.standard_normal((7, 5)), full_matrices=False)
    s_bar = rng.standard_normal(5)
    calls = []
    real_matmul = np.matmul
    monkeypatch.setattr(backend.np, "matmul", lambda *a, **k: calls.append(1) or real_matmul(*a, **k))
    got = CPU.svd_cotangent(U, s, Vh, None, s_bar, None)
    monkeypatch.undo()
    assert len(calls) == 1
    np.testing.assert_allclose(got, U @ np.diag(s_bar) @ Vh, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch,n,scale", [((), 1, 0.3), ((), 6, 0.02), ((), 6, 1.0),
                                           ((), 9, 4.0), ((), 5, 40.0), ((3,), 4, 3.0),
                                           ((2, 2), 3, 0.5)])
@pytest.mark.parametrize("kept", [True, False])
def test_expm_frechet_adjoint_matches_reverse_mode_through_the_steps(batch, n, scale, dtype,
                                                                     kept):
    """_pade.frechet_adjoint (the reverse sweep written out) against reverse mode through
    frechet_traced, over every Padé degree the norms select (3 … 13; 3 … 7 in single
    precision), scaled and squared matrices, stacks whose matrices square a different
    number of times (the masked squarings), with the steps kept by the forward pass or
    recomputed."""
    from linalgad.rules import matfuncs as MF
    rng = np.random.default_rng(n + len(batch))
    real = np.dtype(dtype).kind == "f"

    def draw(s=1.0):
        X = rng.standard_normal(batch + (n, n))
        if not real:
            X = X + 1j * rng.standard_normal(batch + (n, n))
        return (s * X).astype(dtype)

    A = draw(scale / np.sqrt(n))
    if batch:
        A[0] *= 0.05                     # squared fewer times than the rest of the stack
    E, G = draw(), draw()
    K = CPU
    _, F = K.expm_staged(A)
    if kept:
        K.expm_frechet_staged(F, A, E, keep=True)
        assert F.frechet is not None
    got = K.expm_frechet_adjoint(F, A, E, G)
    want = MF._frechet_grads_traced(A, E, G, F=F)
    for g, w in zip(got, want):
        w = np.asarray(w)
        assert g.shape == w.shape
        assert np.abs(g - w).max() <= _tol(dtype) * np.abs(w).max()


def test_expm_frechet_adjoint_covers_every_degree_and_a_real_a_with_complex_e():
    """The norms above reach degrees 3, 5, 7, 9 and 13 in double precision; a real A
    with a complex E (L complex) gets the real part of the complex gradient."""
    from linalgad.rules import matfuncs as MF
    rng = np.random.default_rng(7)
    seen = set()
    for scale in (0.002, 0.05, 0.4, 1.2, 3.0):
        A = scale * rng.standard_normal((6, 6)) / np.sqrt(6)
        _, F = CPU.expm_staged(A)
        seen.add(F.m)
        E = rng.standard_normal((6, 6)) + 1j * rng.standard_normal((6, 6))
        G = rng.standard_normal((6, 6)) + 1j * rng.standard_normal((6, 6))
        got = CPU.expm_frechet_adjoint(F, A, E, G)
        want = MF._frechet_grads_traced(A, E, G, F=F)
        np.testing.assert_allclose(np.real(got[0]), want[0], rtol=1e-11, atol=1e-11)
        np.testing.assert_allclose(got[1], want[1], rtol=1e-11, atol=1e-11)
    assert seen == {3, 5, 7, 9, 13}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch,m,n", [((), 3, 3), ((), 64, 64), ((), 7, 4), ((3,), 5, 5),
                                       ((2,), 6, 3)])
@pytest.mark.parametrize("which", ["both", "u", "p"])
def test_polar_cotangent_kernel_matches_composed(batch, m, n, dtype, which):
    """polar's one-kernel reverse pass (six products, in the right singular basis) against
    its composed definition with the Lyapunov and quotient primitives: square, tall and
    stacked, the unitary factor's cotangent, the PSD factor's, or both."""
    from linalgad.rules import polar as PL
    rng = np.random.default_rng(m * n + len(batch))
    cplx = np.dtype(dtype).kind == "c"

    def draw(*shape):
        x = rng.standard_normal(batch + shape)
        return (x + 1j * rng.standard_normal(batch + shape) if cplx else x).astype(dtype)

    A = draw(m, n)
    (U, P), res = PL.polar_forward(A)
    U_bar = draw(m, n) if which != "p" else None
    P_bar = draw(n, n) if which != "u" else None
    want = PL._cotangent_composed(U, P, U_bar, P_bar, factors=res)
    got = PL._cotangent_kernel(U, P, U_bar, P_bar, factors=res)
    assert got.shape == want.shape == A.shape
    assert np.abs(got - want).max() <= 10 * _tol(dtype) * np.abs(want).max()


def test_polar_cotangent_kernel_at_a_rank_deficient_matrix():
    """Where s_i + s_j or s_i is below the smallest normal number both forms take its
    reciprocal as 0 (the rule warns); they agree there too, and stay finite."""
    from linalgad.rules import polar as PL
    rng = np.random.default_rng(5)
    for m, n in ((4, 4), (6, 4)):
        A = rng.standard_normal((m, 2)) @ rng.standard_normal((2, n))
        (U, P), res = PL.polar_forward(A)
        V, s, W = res
        s = s.copy()
        s[2:] = 0                                    # exactly rank 2
        res = (V, s, W)
        U_bar, P_bar = rng.standard_normal((m, n)), rng.standard_normal((n, n))
        want = PL._cotangent_composed(U, P, U_bar, P_bar, factors=res)
        got = PL._cotangent_kernel(U, P, U_bar, P_bar, factors=res)
        assert np.isfinite(got).all()
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


def _assert_fused_equals_composed(vjp, kernel, needs, dtype, monkeypatch):
    """A solve rule's vjp() with the CPU table's fused ``kernel`` and with it declining
    (the composed form): the same cotangents, and only those ``needs`` asks for."""
    got = vjp()
    monkeypatch.setattr(backend.CPUKernels, kernel, lambda self, *a: None)
    ref = vjp()
    for g, r, need in zip(got, ref, needs):
        assert (g is None) == (r is None) == (not need)
        if need:
            assert g.dtype == r.dtype
            np.testing.assert_allclose(g, r, rtol=_tol(dtype), atol=_tol(dtype))


# one matrix of each size class the fused solve cotangents meet (fused below 128 and real),
# a stack, and a product past TRI_PRODUCT_WORK
SOLVE_KERNEL_CASES = [((), 1, 1), ((), 7, 3), ((), 64, 8), ((3,), 6, 2), ((), 200, 8)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("lower", [True, False])
@pytest.mark.parametrize("needs", [(True, True), (True, False), (False, True)])
@pytest.mark.parametrize("batch,n,k", SOLVE_KERNEL_CASES)
def test_cho_solve_cotangent_kernel_matches_composed(batch, n, k, dtype, lower, needs,
                                                     monkeypatch):
    # one small real matrix: the LAPACK/BLAS kernel (and it must run there); complex,
    # stacks and large products (the composed row-block product): the kernel declines;
    # either way the composed rule's numbers
    rng = np.random.default_rng(n + k)
    C = np.linalg.cholesky(_spd(rng, batch, n, dtype))
    if not lower:
        C = np.ascontiguousarray(np.conj(np.swapaxes(C, -1, -2)))
    b = rng.standard_normal(batch + (n, k)).astype(dtype)
    x_bar = rng.standard_normal(batch + (n, k)).astype(dtype)
    x, y = R.chosolve_forward(C, b, lower=lower)
    fused = np.dtype(dtype).kind == "f" and not batch and n < 128
    out = CPU.cho_solve_cotangent(C, x_bar, x, y, lower, needs[0])
    assert (out is not None) == fused
    _assert_fused_equals_composed(
        lambda: R.chosolve_vjp(x_bar, needs, x, y, C, b, lower=lower),
        "cho_solve_cotangent", needs, dtype, monkeypatch)


def test_cho_solve_cotangent_kernel_declines_mixed_dtypes_and_singular_factors():
    rng = np.random.default_rng(3)
    C = np.linalg.cholesky(_spd(rng, (), 5, np.float64))
    b = rng.standard_normal((5, 2))
    x, y = R.chosolve_forward(C, b, lower=True)
    assert CPU.cho_solve_cotangent(C, b.astype(np.float32), x, y, True) is None
    Z = C.copy()
    Z[2, 2] = 0.0
    assert CPU.cho_solve_cotangent(Z, b, x, y, True) is None
    with pytest.raises(np.linalg.LinAlgError, match="cho_solve"):
        R.chosolve_vjp(b, (True, True), x, y, Z, b, lower=True)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("order", ["F", "C"])
@pytest.mark.parametrize("needs", [(True, True), (True, False), (False, True)])
@pytest.mark.parametrize("batch,n,k", SOLVE_KERNEL_CASES)
def test_lu_solve_cotangent_kernel_matches_composed(batch, n, k, dtype, order, needs,
                                                    monkeypatch):
    # one small real matrix, SciPy's Fortran-ordered factor or a C-ordered one: the
    # LAPACK/BLAS kernel (and it must run there); otherwise it declines; either way the
    # composed rule's numbers
    from linalgad.rules import lu as LU
    rng = np.random.default_rng(n + k)
    A = rng.standard_normal(batch + (n, n)).astype(dtype)
    if np.dtype(dtype).kind == "c":
        A = A + 1j * rng.standard_normal(batch + (n, n)).astype(dtype)
    lu, piv = la.lu_factor(A)
    lu = np.asfortranarray(lu) if order == "F" else np.ascontiguousarray(lu)
    perm = backend._perm_from_swaps(np.asarray(piv), n)
    b = rng.standard_normal(batch + (n, k)).astype(dtype)
    x_bar = rng.standard_normal(batch + (n, k)).astype(dtype)
    x, y = LU.lusolve_forward(lu, b, perm=perm, trans=0)
    fused = np.dtype(dtype).kind == "f" and not batch and n < 128
    assert (CPU.lu_solve_cotangent(lu, perm, x_bar, x, y, needs[0]) is not None) == fused
    _assert_fused_equals_composed(
        lambda: LU.lusolve_vjp(x_bar, needs, x, y, lu, b, perm=perm, trans=0),
        "lu_solve_cotangent", needs, dtype, monkeypatch)


# -- eig's cotangent over stacks of tiny matrices, batch-last (CPU.eig_cotangent) ----------

def _eig_case(rng, batch, n, dtype):
    from linalgad.rules import eig as E
    A = rng.standard_normal(batch + (n, n))
    if np.dtype(dtype).kind == "c":
        A = A + 1j * rng.standard_normal(batch + (n, n))
    A = A.astype(dtype)
    w, V = E.eig_forward(A)
    w_bar = (rng.standard_normal(w.shape) + 1j * rng.standard_normal(w.shape)).astype(w.dtype)
    # a phase-invariant eigenvector cotangent (that of Σ W ∘ |V|²)
    V_bar = (2 * rng.standard_normal(V.shape) * V).astype(V.dtype)
    return E, A, w, V, w_bar, V_bar


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch,n", [((300,), 2), ((20, 15), 3), ((700,), 4), ((), 2),
                                     ((), 5), ((), 64)])
@pytest.mark.parametrize("which", ["both", "w", "V"])
def test_eig_cotangent_kernel_matches_composed(batch, n, dtype, which, monkeypatch):
    # blocks of 128 matrices: several blocks and a short last one
    monkeypatch.setattr(backend, "EIG_VECTOR_BLOCK", 128)
    rng = np.random.default_rng(n)
    E, A, w, V, w_bar, V_bar = _eig_case(rng, batch, n, dtype)
    cts = (None if which == "V" else w_bar, None if which == "w" else V_bar)
    assert CPU.eig_cotangent(w, V, *cts, 1e-10, np.dtype(dtype).kind == "f") is not None
    got = E.eig_vjp(cts, (True,), (w, V), None, A)[0]
    monkeypatch.setattr(backend, "EIG_VECTOR_N", 0)             # the composed rule
    monkeypatch.setattr(backend, "EIG_ONE_MATRIX_N", 0)
    want = E.eig_vjp(cts, (True,), (w, V), None, A)[0]
    assert got.dtype == want.dtype == np.dtype(dtype) and got.shape == A.shape
    assert np.abs(got - want).max() <= _tol(dtype) * np.abs(want).max()


def test_eig_cotangent_kernel_declines_ties_singular_vectors_and_small_stacks():
    rng = np.random.default_rng(1)
    E, A, w, V, w_bar, V_bar = _eig_case(rng, (300,), 3, np.float64)
    assert CPU.eig_cotangent(w, V, w_bar, V_bar, 1e-10, True) is not None
    assert CPU.eig_cotangent(w[:10], V[:10], w_bar[:10], V_bar[:10], 1e-10, True) is None
    tie = w.copy()
    tie[17, 2] = tie[17, 0] * (1 + 1e-13)                    # one near-equal pair
    assert CPU.eig_cotangent(tie, V, w_bar, V_bar, 1e-10, True) is None
    assert CPU.eig_cotangent(tie, V, w_bar, None, 1e-10, True) is None
    flat = V.copy()
    flat[5, :, 1] = flat[5, :, 0]                               # a singular V
    assert CPU.eig_cotangent(w, flat, w_bar, V_bar, 1e-10, True) is None
    # one matrix: the same declines, and none from the order where the rule's real
    # forms take over
    assert CPU.eig_cotangent(w[5], V[5], w_bar[5], V_bar[5], 1e-10, True) is not None
    assert CPU.eig_cotangent(w[5], flat[5], w_bar[5], V_bar[5], 1e-10, True) is None
    assert CPU.eig_cotangent(tie[17], V[17], w_bar[17], V_bar[17], 1e-10, True) is None
    E, A, w, V, w_bar, V_bar = _eig_case(rng, (), backend.EIG_ONE_MATRIX_N, np.float64)
    assert CPU.eig_cotangent(w, V, w_bar, V_bar, 1e-10, True) is None


def test_eig_rule_on_a_stack_phase_check_and_gradient():
    # through the public API: the kernel's path raises on a phase-dependent loss, and
    # its gradient of a phase-invariant one matches finite differences
    from linalgad.testing import check_grads
    rng = np.random.default_rng(2)
    A = rng.standard_normal((300, 4, 4))
    with pytest.raises(ValueError, match="phase"):
        lad.grad(lambda A: lad.real(la.eig(A)[1]).sum())(A)
    W = rng.standard_normal(A.shape)
    c = rng.standard_normal((300, 4)) + 1j * rng.standard_normal((300, 4))

    def loss(A):
        w, V = la.eig(A)
        return lad.real(lad.sum(c * w)) + lad.sum(W * (lad.real(V) ** 2 + lad.imag(V) ** 2))
    check_grads(loss, (A,), order=1, modes=("rev",))
