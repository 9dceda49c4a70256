"""solve: closed-form gradients, Hessian-vector products, factor reuse, bad input."""

import numpy as np
import pytest

import linalgad as lad
from linalgad import backend
from linalgad import linalg as la
from linalgad.testing import check_grads
from linalgad.testing import matrices as M
from numpy.linalg import LinAlgError

RNG = np.random.default_rng(20261122)


def _closed_form(A, b, W):
    """For L = Re sum(conj(W) x): b̄ = A⁻ᴴ W, Ā = −b̄ xᴴ."""
    x = np.linalg.solve(A, b)
    b_bar = np.linalg.solve(np.conj(np.swapaxes(A, -1, -2)), W)
    A_bar = -b_bar @ np.conj(np.swapaxes(x, -1, -2))
    return A_bar, b_bar


def _rel(a, b):
    return np.max(np.abs(a - b)) / np.max(np.abs(b))


@pytest.mark.parametrize("dtype", [np.float64, np.complex128])
@pytest.mark.parametrize("batch", [(), (4,), (2, 3)], ids=["single", "stack4", "stack2x3"])
@pytest.mark.parametrize("n", [1, 5, 40])
def test_gradient_equals_closed_form(n, batch, dtype):
    A = M.random_general(RNG, n, batch, dtype)
    b = M.random_rhs(RNG, n, 3, batch, dtype)
    W = M.random_rhs(RNG, n, 3, batch, dtype)

    def loss(A, b):
        x = la.solve(A, b)
        return lad.sum(lad.real(lad.conj(W) * x))

    gA, gb = lad.grad(loss, argnums=(0, 1))(A, b)
    A_bar, b_bar = _closed_form(A, b, W)
    assert gA.dtype == dtype and gb.dtype == dtype
    assert _rel(gA, A_bar) < 1e-10
    assert _rel(gb, b_bar) < 1e-10


def test_gradient_real_closed_form_literal():
    """The issue's formula: L = sum(solve(A, b) * W) -> -A^{-T} W x^T and A^{-T} W."""
    A = M.random_general(RNG, 6, (), np.float64)
    b = M.random_rhs(RNG, 6, 2, (), np.float64)
    W = M.random_rhs(RNG, 6, 2, (), np.float64)
    gA, gb = lad.grad(lambda A, b: lad.sum(la.solve(A, b) * W), argnums=(0, 1))(A, b)
    x = np.linalg.solve(A, b)
    AinvT_W = np.linalg.inv(A).T @ W
    assert _rel(gb, AinvT_W) < 1e-10
    assert _rel(gA, -AinvT_W @ x.T) < 1e-10


@pytest.mark.parametrize("dtype", [np.float64, np.complex128])
@pytest.mark.parametrize("batch", [(), (3,)], ids=["single", "stack"])
def test_hvp_matches_finite_differences_of_grad(batch, dtype):
    n = 6
    A = M.random_general(RNG, n, batch, dtype)
    b = M.random_rhs(RNG, n, 2, batch, dtype)
    W = M.random_rhs(RNG, n, 2, batch, dtype)
    V = M.random_rhs(RNG, n, n, batch, dtype)
    w = M.random_rhs(RNG, n, 2, batch, dtype)

    def loss(A, b):
        x = la.solve(A, b)
        return lad.sum(lad.abs(x - W) ** 2)      # a genuinely curved loss

    HA, Hb = lad.hvp(loss, (A, b), (V, w))
    g = lad.grad(loss, argnums=(0, 1))
    h = 1e-5
    plus, minus = g(A + h * V, b + h * w), g(A - h * V, b - h * w)
    for got, p, m in zip((HA, Hb), plus, minus):
        assert _rel(got, (p - m) / (2 * h)) < 1e-6


def test_backward_reuses_the_forward_factorization(monkeypatch):
    calls = []
    original = backend.CPUKernels.lu_factor

    def counting(self, A, op="lu_factor"):
        calls.append(A.shape)
        return original(self, A, op)

    monkeypatch.setattr(backend.CPUKernels, "lu_factor", counting)
    for batch in [(), (20,), (3,)]:
        n = 30 if batch != (20,) else 4
        calls.clear()
        A = M.random_general(RNG, n, batch, np.float64)
        b = M.random_rhs(RNG, n, 2, batch, np.float64)
        lad.grad(lambda A, b: lad.sum(la.solve(A, b) ** 2), argnums=(0, 1))(A, b)
        assert len(calls) == 1, f"factorized {len(calls)} times for batch {batch}"
        calls.clear()
        lad.jvp(lambda A: la.solve(A, b), (A,), (A,))
        assert len(calls) == 1


def test_pos_uses_cholesky_and_reuses_it(monkeypatch):
    calls = []
    original = backend.CPUKernels.cho_factor

    def counting(self, A, lower=True, op="cho_factor"):
        calls.append(A.shape)
        return original(self, A, lower, op)

    monkeypatch.setattr(backend.CPUKernels, "cho_factor", counting)
    A = M.random_spd(RNG, 7, (), np.float64)
    b = M.random_rhs(RNG, 7, 2, (), np.float64)
    gA = lad.grad(lambda A: lad.sum(la.solve(A, b, assume_a="pos") ** 2))(A)
    assert len(calls) == 1
    # SciPy's default lower=False reads the upper triangle: only it gets gradient
    assert np.all(np.tril(gA, -1) == 0) and np.any(np.triu(gA, 1) != 0)
    gA = lad.grad(lambda A: lad.sum(la.solve(A, b, assume_a="pos", lower=True) ** 2))(A)
    assert np.all(np.triu(gA, 1) == 0) and np.any(np.tril(gA, -1) != 0)


@pytest.mark.parametrize("a_batch,b_batch", [((), (4,)), ((4,), ()), ((2, 1), (3,)),
                                             ((1,), (2, 5))])
def test_broadcasting_stacks(a_batch, b_batch):
    n = 3
    A = M.random_general(RNG, n, a_batch, np.float64)
    b = M.random_rhs(RNG, n, 2, b_batch, np.float64)
    x = la.solve(A, b)
    np.testing.assert_allclose(x, np.linalg.solve(A, b), rtol=1e-12)
    gA, gb = lad.grad(lambda A, b: lad.sum(la.solve(A, b)), argnums=(0, 1))(A, b)
    assert gA.shape == A.shape and gb.shape == b.shape
    # against the sum over the broadcast stack of per-matrix gradients
    stack = np.broadcast_shapes(A.shape[:-2], b.shape[:-2])
    Ab = np.broadcast_to(A, stack + A.shape[-2:])
    bb = np.broadcast_to(b, stack + b.shape[-2:])
    A_bar, b_bar = _closed_form(Ab, bb, np.ones_like(bb))
    np.testing.assert_allclose(gA, _sum_to(A_bar, A.shape), rtol=1e-10)
    np.testing.assert_allclose(gb, _sum_to(b_bar, b.shape), rtol=1e-10)


def _sum_to(x, shape):
    lead = x.ndim - len(shape)
    x = x.sum(axis=tuple(range(lead)))
    axes = tuple(i for i, s in enumerate(shape) if s == 1 and x.shape[i] != 1)
    return x.sum(axis=axes, keepdims=True)


def test_vector_rhs_follows_numpy2():
    A = M.random_general(RNG, 4, (3,), np.float64)
    b = M.random_vector(RNG, 4, (), np.float64)
    x = la.solve(A, b)
    assert x.shape == (3, 4)
    np.testing.assert_allclose(x, np.linalg.solve(A, b), rtol=1e-12)


# -- bad input ------------------------------------------------------------------

def test_singular_matrix_raises_naming_solve():
    A = np.ones((3, 3))
    with pytest.raises(np.linalg.LinAlgError, match="solve: matrix is singular"):
        la.solve(A, np.ones(3))


@pytest.mark.parametrize("n", [3, 20])          # vectorised-small and LAPACK paths
def test_singular_matrix_in_a_stack_names_its_index(n):
    A = M.random_general(RNG, n, (2, 3), np.float64)
    A[1, 2] = 0.0
    b = M.random_rhs(RNG, n, 1, (2, 3), np.float64)
    with pytest.raises(np.linalg.LinAlgError, match=r"solve: .*singular.*matrix \(1, 2\)"):
        la.solve(A, b)
    with pytest.raises(np.linalg.LinAlgError, match=r"\(1, 2\)"):
        lad.grad(lambda A: lad.sum(la.solve(A, b)))(A)


def test_not_positive_definite_names_its_index():
    A = M.random_spd(RNG, 4, (3,), np.float64)
    A[2] = -A[2]
    with pytest.raises(np.linalg.LinAlgError, match=r"not positive definite.*matrix \(2,\)"):
        la.solve(A, np.ones((3, 4, 1)), assume_a="pos")


@pytest.mark.parametrize("a_shape,b_shape", [((3, 3), (4,)), ((3, 3), (4, 2)), ((3, 3), ()),
                                             ((2, 3, 3), (4, 3, 1))])
def test_mismatched_shapes_raise_valueerror_with_shapes(a_shape, b_shape):
    with pytest.raises(ValueError) as info:
        la.solve(np.eye(3) * np.ones(a_shape), np.ones(b_shape))
    assert str(a_shape) in str(info.value) and str(b_shape) in str(info.value)


@pytest.mark.parametrize("shape", [(3, 4), (3,), (2, 3, 4)])
def test_non_square_raises(shape):
    with pytest.raises(np.linalg.LinAlgError, match="square"):
        la.solve(np.ones(shape), np.ones(3))


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_input_raises_valueerror(bad):
    A = np.eye(3)
    A[1, 1] = bad
    with pytest.raises(ValueError, match="solve: a contains infs or NaNs"):
        la.solve(A, np.ones(3))
    b = np.ones((2, 3, 1))
    b[1, 0, 0] = bad
    with pytest.raises(ValueError, match=r"solve: b contains infs or NaNs \(matrix \(1,\)"):
        la.solve(np.stack([np.eye(3)] * 2), b)


def test_non_finite_allowed_with_check_finite_false():
    A = np.eye(3)
    b = np.array([1.0, np.nan, 2.0])
    x = la.solve(A, b, check_finite=False)      # no error: NaN propagates (IEEE)
    assert np.isnan(x[1])


def test_integer_inputs_promote_like_numpy():
    A = np.array([[2, 1], [1, 3]])
    b = np.array([1, 2])
    x = la.solve(A, b)
    assert x.dtype == np.linalg.solve(A, b).dtype == np.float64
    np.testing.assert_allclose(x, np.linalg.solve(A, b))


@pytest.mark.parametrize("da,db", [(np.float32, np.float32), (np.float32, np.float64),
                                   (np.float32, np.complex64), (np.complex64, np.float64)])
def test_mixed_dtypes_promote_like_numpy(da, db):
    A = M.random_general(RNG, 3, (), np.float64).astype(da)
    b = np.ones(3, dtype=db)
    assert la.solve(A, b).dtype == np.linalg.solve(A, b).dtype
    gA, gb = lad.grad(lambda A, b: lad.sum(lad.abs(la.solve(A, b))), argnums=(0, 1))(A, b)
    assert gA.dtype == A.dtype and gb.dtype == b.dtype


def test_unknown_assume_a():
    with pytest.raises(ValueError, match="assume_a"):
        la.solve(np.eye(2), np.ones(2), assume_a="banana")


def test_numpy_solve_on_traced_values_is_routed_here():
    A = M.random_general(RNG, 4, (), np.float64)
    b = M.random_rhs(RNG, 4, 2, (), np.float64)
    g1 = lad.grad(lambda A: lad.sum(np.linalg.solve(A, b)))(A)
    g2 = lad.grad(lambda A: lad.sum(la.solve(A, b)))(A)
    np.testing.assert_array_equal(g1, g2)


def test_float32_gradients_are_accurate():
    A = M.random_general(RNG, 8, (), np.float64)
    b = M.random_rhs(RNG, 8, 2, (), np.float64)
    W = M.random_rhs(RNG, 8, 2, (), np.float64)
    g64 = lad.grad(lambda A: lad.sum(la.solve(A, b) * W))(A)
    g32 = lad.grad(lambda A: lad.sum(la.solve(A, b.astype(np.float32)) * W.astype(np.float32)))(
        A.astype(np.float32))
    assert g32.dtype == np.float32
    assert _rel(g32, g64) < 1e-5


def test_structured_assume_a_reads_only_its_structure():
    """SciPy's 'diagonal', 'tridiagonal', 'banded', 'upper/lower triangular': the values
    SciPy computes, and gradient only on the entries each one reads."""
    import scipy.linalg

    rng = np.random.default_rng(41)
    n = 6
    A = rng.standard_normal((n, n)) + 4 * np.eye(n)
    b, W = rng.standard_normal((n, 3)), rng.standard_normal((n, 3))
    i, j = np.indices((n, n))
    reads = {"diagonal": i == j, "tridiagonal": abs(i - j) <= 1,
             "upper triangular": i <= j, "lower triangular": i >= j}
    for kind, mask in reads.items():
        x = la.solve(A, b, assume_a=kind)
        np.testing.assert_allclose(x, scipy.linalg.solve(A, b, assume_a=kind), atol=1e-12)
        g = lad.grad(lambda A: lad.sum(la.solve(A, b, assume_a=kind) * W))(A)
        assert not g[~mask].any()
        S = np.where(mask, A, 0)                    # the matrix the solver sees
        want = -np.linalg.solve(S.T, W) @ np.linalg.solve(S, b).T
        np.testing.assert_allclose(g, np.where(mask, want, 0), atol=1e-12)
    # 'banded': the band of the nonzeros, detected over the whole stack
    Bd = np.stack([np.triu(np.tril(A, 2), -1), np.triu(np.tril(A, 1), -1)])
    x = la.solve(Bd, b, assume_a="banded")
    np.testing.assert_allclose(x, np.linalg.solve(Bd, b), atol=1e-12)
    g = lad.grad(lambda A: lad.sum(la.solve(A, b, assume_a="banded") * W))(Bd)
    assert not g[:, (i - j > 1) | (j - i > 2)].any() and g[1, (j - i == 2)].any()


def test_structured_assume_a_errors_and_kernels():
    from linalgad.backend import CPU, band_from_dense

    with pytest.raises(LinAlgError, match=r"solve: matrix is singular.*\(1,\)"):
        la.solve(np.stack([np.eye(3), np.diag([1.0, 0.0, 2.0])]), np.ones((2, 3, 1)),
                 assume_a="diagonal")
    with pytest.raises(LinAlgError, match="solve"):
        la.solve(np.zeros((4, 4)), np.ones(4), assume_a="tridiagonal")
    with pytest.raises(LinAlgError, match="singular"):
        la.solve(np.triu(np.ones((3, 3))) - np.eye(3), np.ones(3), assume_a="upper triangular")
    T = np.diag(np.full(5, 3.0)) + np.diag(np.ones(4), 1) + np.diag(np.ones(4), -1)
    assert CPU.band_factor(band_from_dense(np, T, 1, 1), 1, 1).kind == "gt"   # O(n) gttrf
    x = la.solve(T, np.arange(5.0), assume_a="tridiagonal", transposed=True)
    np.testing.assert_allclose(T.T @ x, np.arange(5.0), atol=1e-12)
    with pytest.raises(ValueError, match="assume_a"):
        la.solve(T, np.ones(5), assume_a="bidiagonal")


@pytest.mark.parametrize("lower", [False, True])
@pytest.mark.parametrize("n, batch", [(20, ()), (6, (3,)), (6, (1200,)), (40, (3,))],
                         ids=["one", "small-stack", "tiny-many", "lapack-stack"])
@pytest.mark.parametrize("dtype", [np.float64, np.complex128])
def test_triangular_matrices_are_factored_without_row_exchanges(lower, n, batch, dtype):
    """A triangular matrix whose off-diagonal entries outgrow its diagonal: solve, inv and
    det are exact back substitutions (as NumPy for upper, SciPy's solve_triangular for
    both).  The LU of Aᵀ (LAPACK's layout, no transposing copy) exchanged rows of an
    upper triangular A: solve of order 20 was 100% off, det of a unit triangular matrix
    1 + 4e-8; the vectorised LU of small stacks (of A itself) did so for lower ones."""
    rng = np.random.default_rng(n)
    N = M.random_general(rng, n, batch, dtype) * 100
    A = (np.tril(N, -1) if lower else np.triu(N, 1)) + np.eye(n, dtype=dtype)
    b = M.random_rhs(rng, n, 2, batch, dtype)
    # references: the triangular solver (its own kernels, checked against SciPy's)
    tri = lambda rhs, trans=0: la.solve_triangular(A, rhs, lower=lower, trans=trans)  # noqa
    want = tri(b)
    assert _rel(la.solve(A, b), want) < 1e-13
    assert _rel(la.solve(A, b, transposed=True), tri(b, 1)) < 1e-13
    assert _rel(la.inv(A), tri(np.broadcast_to(np.eye(n, dtype=dtype), A.shape))) < 1e-13
    np.testing.assert_array_equal(la.det(A), np.ones(batch))
    # the gradient through the same factors: Ā = −A⁻ᴴ W xᴴ, b̄ = A⁻ᴴ W
    W = M.random_rhs(rng, n, 2, batch, dtype)
    gA, gb = lad.grad(lambda A, b: lad.sum(lad.real(np.conj(W) * la.solve(A, b))),
                      argnums=(0, 1))(A, b)
    bbar = tri(W, 2)
    assert _rel(gb, bbar) < 1e-13
    assert _rel(gA, -bbar @ np.conj(np.swapaxes(want, -1, -2))) < 1e-12


@pytest.mark.parametrize("name", ["solve", "pos", "triangular", "cho_solve", "lu_solve",
                                  "lstsq"])
@pytest.mark.parametrize("dtype", [np.float64, np.complex128])
def test_one_matrix_against_a_stack_sums_inside_one_product(name, dtype):
    """A (n, n) against b (B, n, k): Ā = Σ over the stack, now one product of the stack's
    columns side by side (it was a (B, n, n) batched product and a sum: 6-10 times the
    time).  The gradient equals the one of the same columns as one (n, B·k) block; first
    and second order."""
    import scipy.linalg as sl
    rng = np.random.default_rng(4)
    n, B, k = 4, 3, 2
    A = M.random_spd(rng, n, (), dtype) if name in ("pos", "cho_solve") else \
        M.random_general(rng, n, (), dtype)
    if name == "triangular":
        A = np.triu(A) + 3 * np.eye(n)
    b = M.random_rhs(rng, n, k, (B,), dtype)
    W = M.random_rhs(rng, n, k, (B,), dtype)
    f = {"solve": lambda a, r: la.solve(a, r), "pos": lambda a, r: la.solve(a, r, assume_a="pos"),
         "triangular": lambda a, r: la.solve_triangular(a, r),
         "cho_solve": lambda a, r: la.cho_solve((la.cholesky(a, lower=True), True), r),
         "lu_solve": lambda a, r: la.lu_solve(la.lu_factor(a), r),
         "lstsq": lambda a, r: la.lstsq(a, r)[0]}[name]
    block = lambda x: np.moveaxis(x, 0, -2).reshape(n, B * k)          # noqa: E731

    def loss(a, r):
        return lad.sum(lad.real(np.conj(W) * f(a, r)))
    gA, gb = lad.grad(loss, argnums=(0, 1))(A, b)
    gA_block = lad.grad(lambda a: lad.sum(lad.real(np.conj(block(W)) * f(a, block(b)))))(A)
    np.testing.assert_allclose(gA, gA_block, rtol=1e-12, atol=1e-12)
    check_grads(f, (A, b[:2]), order=2)
