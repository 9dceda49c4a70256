"""LU of stacks of mid-size matrices by direct LAPACK calls (linalgad._lapack_stack).

Stacks of order above backend.SMALL_N are factored by one getrf call per matrix on one
C-ordered copy of the stack; these tests check those factors and every kernel that reads
them (solves in the three ops, the diagonal and permutation sign, the inverse) against
NumPy, the rules built on them against finite differences, the errors, and that the
fallback (SciPy's wrappers, where the direct calls are unavailable) agrees.
"""

import numpy as np
import pytest

import linalgad as lad
from linalgad import _lapack_stack, backend, linalg as la
from linalgad.backend import CPU, LinAlgError
from linalgad.testing import check_grads

DTYPES = (np.float32, np.float64, np.complex64, np.complex128)
STACKS = [((3,), 9), ((2,), 17), ((2, 2), 12)]


def _mat(rng, shape, dtype):
    A = rng.standard_normal(shape)
    if np.dtype(dtype).kind == "c":
        A = A + 1j * rng.standard_normal(shape)
    return A.astype(dtype)


def _tol(dtype):
    return 1e-4 if np.dtype(dtype) in (np.float32, np.complex64) else 1e-11


def _op(A, trans):
    t = np.swapaxes(A, -1, -2)
    return A if trans == 0 else t if trans == 1 else np.conj(t)


def test_available_for_every_dtype():
    for available in (_lapack_stack.available, _lapack_stack.trsm_available):
        assert all(available(d) for d in DTYPES)
        assert not available(np.int64)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch,n", STACKS)
@pytest.mark.parametrize("direct", [True, False])
def test_factors_and_what_reads_them(batch, n, dtype, direct, monkeypatch):
    if not direct:
        monkeypatch.setattr(_lapack_stack, "available", lambda dtype: False)
    rng = np.random.default_rng(n)
    A = _mat(rng, batch + (n, n), dtype) + n * np.eye(n, dtype=dtype)
    b = _mat(rng, batch + (n, 3), dtype)
    A0, b0 = A.copy(), b.copy()
    F = CPU.lu_factor(A)
    assert F.kind == ("stack" if direct else "lapack")
    tol = _tol(dtype)
    for trans in (0, 1, 2):
        x = CPU.lu_solve(F, b, trans)
        np.testing.assert_allclose(x, np.linalg.solve(_op(A, trans), b), rtol=tol, atol=tol)
    one = b[..., :1]                         # k = 1: the transposed copy must still copy
    CPU.lu_solve(F, one, 0)
    np.testing.assert_array_equal(b, b0)
    np.testing.assert_array_equal(A, A0)
    d, sign = CPU.lu_diagonal(F)
    np.testing.assert_allclose(sign * np.prod(d, axis=-1), np.linalg.det(A),
                               rtol=20 * tol)
    np.testing.assert_allclose(CPU.lu_inverse(F), np.linalg.inv(A), rtol=tol, atol=tol)


def test_real_factors_with_complex_right_hand_sides():
    rng = np.random.default_rng(0)
    A = rng.standard_normal((4, 10, 10)) + 10 * np.eye(10)
    b = _mat(rng, (4, 10, 2), np.complex128)
    F = CPU.lu_factor(A)
    for trans in (0, 1, 2):
        np.testing.assert_allclose(CPU.lu_solve(F, b, trans),
                                   np.linalg.solve(_op(A, trans), b), rtol=1e-12)


def test_singular_matrix_is_named_by_its_index():
    rng = np.random.default_rng(1)
    A = rng.standard_normal((2, 3, 10, 10))
    A[1, 2, :, 4] = 0.0
    with pytest.raises(LinAlgError, match=r"solve.*singular.*\(1, 2\)"):
        la.solve(A, rng.standard_normal((2, 3, 10, 1)))
    # det and slogdet keep the factors: zero, and -inf
    np.testing.assert_array_equal(la.det(A)[1, 2], 0.0)
    assert la.slogdet(A)[1][1, 2] == -np.inf


@pytest.mark.parametrize("dtype", [np.float64, np.complex128])
def test_rules_on_stacks_against_finite_differences(dtype):
    rng = np.random.default_rng(2)
    A = _mat(rng, (2, 10, 10), dtype) + 10 * np.eye(10, dtype=dtype)
    b = _mat(rng, (2, 10, 2), dtype)
    check_grads(lambda A, b: la.solve(A, b), (A, b), order=1)
    check_grads(lambda A, b: la.solve(A, b, transposed=True), (A, b), order=1)
    check_grads(la.det, (A,), order=1)
    check_grads(lambda A: la.slogdet(A)[1], (A,), order=1)
    check_grads(la.inv, (A,), order=1)


def _solve_det_loss(A, b, W):
    return lad.sum(la.solve(A, b) * W) + lad.sum(la.slogdet(A)[1]) + lad.sum(la.det(A))


def _triangular_loss(A, b, W):
    return lad.sum(la.solve_triangular(A, b, lower=False, trans=1) * W)


@pytest.mark.parametrize("switch,n,loss", [
    ("available", 12, _solve_det_loss),            # LU by direct calls / SciPy's wrappers
    ("trsm_available", 32, _triangular_loss),      # trsm by direct calls / blocked solves
])
def test_gradients_equal_the_fallbacks(switch, n, loss, monkeypatch):
    assert backend.SMALL_N < n
    rng = np.random.default_rng(n)
    A = rng.standard_normal((4, n, n)) + n * np.eye(n)
    b = rng.standard_normal((4, n, 3))
    W = rng.standard_normal((4, n, 3))
    direct = lad.value_and_grad(loss, argnums=(0, 1))(A, b, W)
    monkeypatch.setattr(_lapack_stack, switch, lambda dtype: False)
    other = lad.value_and_grad(loss, argnums=(0, 1))(A, b, W)
    np.testing.assert_allclose(direct[0], other[0], rtol=1e-12)
    for g, h in zip(direct[1], other[1]):
        np.testing.assert_allclose(g, h, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("direct", [True, False])
def test_lu_factor_of_a_stack_is_scipys(dtype, direct, monkeypatch):
    import scipy.linalg
    if not direct:
        monkeypatch.setattr(_lapack_stack, "available", lambda dtype: False)
    rng = np.random.default_rng(4)
    A = _mat(rng, (2, 3, 11, 11), dtype)
    lu, piv = la.lu_factor(A)
    for idx in np.ndindex(2, 3):
        lu1, piv1 = scipy.linalg.lu_factor(A[idx])
        np.testing.assert_allclose(lu[idx], lu1, rtol=_tol(dtype), atol=_tol(dtype))
        np.testing.assert_array_equal(piv[idx], piv1)
    P, L, U = la.lu(A)
    np.testing.assert_allclose(P @ L @ U, A, atol=10 * _tol(dtype))


def test_lu_factor_gradient_on_a_stack():
    rng = np.random.default_rng(5)
    A = rng.standard_normal((2, 10, 10)) + 10 * np.eye(10)
    check_grads(lambda A: la.lu_factor(A)[0], (A,), order=1)


# -- triangular solves of stacks by direct BLAS trsm calls ---------------------------------

TRSM_STACKS = [((3,), 32, 8), ((2, 2), 40, 1), ((2,), 16, 16)]   # where backend picks trsm
# the direction policies of _lapack_stack.trsm_cost: measured tables, and none
KERNEL_SETS = ["haswell", "skylakex", None]


@pytest.fixture(params=KERNEL_SETS)
def kernel_set(request, monkeypatch):
    """Run the test as if scipy's OpenBLAS had picked this kernel set."""
    monkeypatch.setattr(_lapack_stack, "_CORE", [request.param])
    return request.param


def test_kernel_set_is_read_from_scipys_blas():
    core = _lapack_stack.kernel_set()
    assert core is None or (core == core.lower() and core.isidentifier())
    assert _lapack_stack.trsm_cost(np.complex128, True, True, 1) is None


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch,n,k", TRSM_STACKS)
@pytest.mark.parametrize("lower", [True, False])
@pytest.mark.parametrize("unit", [False, True])
def test_stack_triangular_solves(batch, n, k, dtype, lower, unit, kernel_set):
    assert backend._stack_trsm_pays(n, k)
    rng = np.random.default_rng(n + k)
    # off-diagonal entries of order 1/n: well conditioned with a unit diagonal too
    A = _mat(rng, batch + (n, n), dtype) / n + 2 * np.eye(n, dtype=dtype)
    b = _mat(rng, batch + (n, k), dtype)
    A0, b0 = A.copy(), b.copy()
    T = np.tril(A) if lower else np.triu(A)
    if unit:
        T = T - T * np.eye(n, dtype=dtype) + np.eye(n, dtype=dtype)
    tol = _tol(dtype)
    for trans in (0, 1, 2, "N", "T", "C"):
        t = {"N": 0, "T": 1, "C": 2}.get(trans, trans)
        x = CPU.solve_triangular(A, b, lower=lower, trans=trans, unit_diagonal=unit)
        assert x.dtype == dtype and x.shape == b.shape
        np.testing.assert_allclose(_op(T, t) @ x, b, rtol=tol, atol=tol * n)
        # the same solve on the matrices' transposes (views, no copy), and the blocked
        # substitution the stack would otherwise take, agree with it
        y = CPU.solve_triangular(np.ascontiguousarray(np.swapaxes(A, -1, -2)).swapaxes(-1, -2),
                                 b, lower=lower, trans=trans, unit_diagonal=unit)
        z = backend._blocked_tri_solve(A, b, lower, t, unit, "solve_triangular")
        np.testing.assert_allclose(y, x, rtol=tol, atol=tol)
        np.testing.assert_allclose(z, x, rtol=tol, atol=tol)
    np.testing.assert_array_equal(A, A0)                 # nothing overwritten
    np.testing.assert_array_equal(b, b0)


def test_stack_triangular_solve_mixed_dtypes_and_empty_stack():
    rng = np.random.default_rng(6)
    A = rng.standard_normal((3, 32, 32)) + 32 * np.eye(32)
    b = _mat(rng, (3, 32, 4), np.complex64)
    x = CPU.solve_triangular(A, b, lower=True, trans=2)
    assert x.dtype == np.complex128
    np.testing.assert_allclose(np.swapaxes(np.tril(A), -1, -2) @ x, b, rtol=1e-6, atol=1e-6)
    empty = CPU.solve_triangular(np.zeros((0, 32, 32)), np.zeros((0, 32, 8)), lower=True)
    assert empty.shape == (0, 32, 8)


def test_stack_triangular_singular_is_named_by_its_index():
    rng = np.random.default_rng(7)
    A = np.tril(rng.standard_normal((2, 3, 32, 32))) + 32 * np.eye(32)
    A[1, 0, 5, 5] = 0.0
    b = rng.standard_normal((2, 3, 32, 8))
    with pytest.raises(LinAlgError, match=r"solve_triangular.*singular.*entry 5.*\(1, 0\)"):
        la.solve_triangular(A, b, lower=True)
    la.solve_triangular(A, b, lower=True, unit_diagonal=True)     # diagonal not read


@pytest.mark.parametrize("dtype", [np.float64, np.complex128])
def test_stack_triangular_rules_against_finite_differences(dtype):
    rng = np.random.default_rng(8)
    A = _mat(rng, (2, 32, 32), dtype) + 32 * np.eye(32, dtype=dtype)
    b = _mat(rng, (2, 32, 3), dtype)
    for trans in (0, 2):
        check_grads(lambda A, b: la.solve_triangular(A, b, lower=True, trans=trans), (A, b),
                    order=1)
    S = np.swapaxes(A.conj(), -1, -2) @ A / 32
    C = np.linalg.cholesky(S)
    check_grads(lambda C, b: la.cho_solve((C, True), b), (C, b), order=1)



def _trsm_sides(monkeypatch):
    """Record the side of every direct trsm call."""
    sides, trsm = [], _lapack_stack.trsm

    def spy(t, x, lower, trans, unit, right=False):
        sides.append(right)
        return trsm(t, x, lower, trans, unit, right=right)

    monkeypatch.setattr(_lapack_stack, "trsm", spy)
    return sides


def _stack_cotangent_losses():
    """Losses whose gradients on a stack of order 32 run the stack trsm kernels from both
    sides: triangular solves (every triangle and op), cholesky (both triangles), cho_solve,
    lu_factor, lu_solve, qr."""
    def spd(A):
        return A @ lad.conj(lad.swapaxes(A, -1, -2)) / 32

    def tri(lower, trans):
        return lambda A, b, W: la.solve_triangular(A, b, lower=lower, trans=trans) * W

    losses = [tri(lower, trans) for lower in (True, False) for trans in (0, 1, 2)]
    losses += [
        lambda A, b, W: la.cholesky(spd(A), lower=True) * W[..., :1],
        lambda A, b, W: la.cholesky(spd(A), lower=False) * W[..., :1],
        lambda A, b, W: la.cho_solve((la.cholesky(spd(A)), True), b) * W,
        lambda A, b, W: la.lu_factor(A)[0] * W[..., :1],
        lambda A, b, W: la.lu_solve(la.lu_factor(A), b, trans=1) * W,
        lambda A, b, W: la.qr(A)[0] * W[..., :1] + la.qr(A)[1] * W[..., 1:2],
    ]
    return [lambda *a, f=f: lad.sum(lad.real(f(*a))) for f in losses]


@pytest.mark.parametrize("dtype", [np.float64, np.complex128])
def test_stack_cotangents_agree_in_every_trsm_direction(dtype, monkeypatch):
    # the same gradients whichever direction the kernel set makes the stack's trsm calls
    # take; and each real policy takes a direction the others do not somewhere
    rng = np.random.default_rng(11)
    n = 32
    A = _mat(rng, (3, n, n), dtype) / n + 2 * np.eye(n, dtype=dtype)
    b = _mat(rng, (3, n, 8), dtype)
    W = _mat(rng, (3, n, 8), dtype).real
    results, sides = {}, {}
    for core in KERNEL_SETS:
        monkeypatch.setattr(_lapack_stack, "_CORE", [core])
        log = _trsm_sides(monkeypatch)
        out = []
        for loss in _stack_cotangent_losses():
            out.append(lad.value_and_grad(loss, argnums=(0, 1))(A, b, W))
        results[core], sides[core] = out, tuple(log)
        monkeypatch.undo()
    for core in ("haswell", "skylakex"):
        for (v, g), (v0, g0) in zip(results[core], results[None]):
            np.testing.assert_allclose(v, v0, rtol=1e-12)
            for x, x0 in zip(g, g0):
                np.testing.assert_allclose(x, x0, rtol=1e-10, atol=1e-12)
        if dtype == np.float64:
            assert sides[core] != sides[None]
        else:
            assert sides[core] == sides[None]        # complex: always as asked


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("right", [False, True])
def test_trsm_from_either_side(dtype, right):
    # op(T) X = B (left) or X op(T) = B (right), every triangle, op and diagonal kind
    rng = np.random.default_rng(10)
    B, n, k = 4, 7, 3
    for lower in (True, False):
        for trans in (0, 1, 2):
            for unit in (False, True):
                T = _mat(rng, (B, n, n), dtype) / n + 2 * np.eye(n, dtype=dtype)
                b = _mat(rng, (B, k, n) if right else (B, n, k), dtype)
                Tm = np.tril(T) if lower else np.triu(T)
                if unit:
                    Tm[:, range(n), range(n)] = 1
                x = _lapack_stack.trsm(T, b.copy(), lower, trans, unit, right=right)
                got = x @ _op(Tm, trans) if right else _op(Tm, trans) @ x
                np.testing.assert_allclose(got, b, rtol=_tol(dtype), atol=_tol(dtype))


@pytest.mark.parametrize("n", [4, 12, 40, 200])   # substitution, blocks, trsm, per matrix
def test_stacks_with_no_right_hand_sides(n):
    # k = 0 columns: empty solutions and zero gradients on every stack path (a reshape
    # with -1 cannot size an empty array, and BLAS rejects a leading dimension of 0)
    rng = np.random.default_rng(n)
    A = np.tril(rng.standard_normal((3, n, n))) + n * np.eye(n)
    C = np.linalg.cholesky(A @ np.swapaxes(A, -1, -2))
    b = np.zeros((3, n, 0))
    for x in (la.solve_triangular(A, b, lower=True), la.solve(A, b),
              la.solve(A @ np.swapaxes(A, -1, -2), b, assume_a="pos"),
              la.cho_solve((C, True), b), la.lu_solve(la.lu_factor(A), b)):
        assert x.shape == (3, n, 0)
    g = lad.grad(lambda A, b: lad.sum(la.solve_triangular(A, b, lower=True, trans=1)))(A, b)
    np.testing.assert_array_equal(g, np.zeros_like(A))
    g = lad.grad(lambda A, b: lad.sum(la.solve(A, b)))(A, b)
    np.testing.assert_array_equal(g, np.zeros_like(A))


@pytest.mark.parametrize("shape", [(0, 40, 32), (0, 32, 32), (2, 0, 33, 33)])
def test_empty_stacks_of_large_matrices(shape):
    # no matrices at all, of orders where the direct-call kernels would run
    A = np.zeros(shape)
    g = lad.grad(lambda A: lad.sum(la.qr(A)[0]) + lad.sum(la.qr(A)[1]))(A)
    assert g.shape == shape
    if shape[-1] == shape[-2]:
        assert lad.grad(lambda A: lad.sum(la.lu_factor(A)[0]))(A).shape == shape
        b = np.zeros(shape[:-1] + (3,))
        assert lad.grad(lambda A, b: lad.sum(la.solve_triangular(A, b)))(A, b).shape == shape


@pytest.mark.parametrize("block", [1 << 19, 200, 1])
@pytest.mark.parametrize("shape,src,dst", [((37, 4, 8), np.float64, np.float64),
                                           ((1001, 3, 3), np.float32, np.float64),
                                           ((5, 2, 6), np.float64, np.complex128),
                                           ((0, 4, 4), np.float64, np.float64)])
def test_batch_last_copies_in_blocks(block, shape, src, dst, monkeypatch):
    # the vectorised kernels' (..., B) layout, copied over blocks of matrices (here as
    # small as one matrix, and blocks that leave a remainder)
    monkeypatch.setattr(backend, "_BATCH_LAST_BLOCK", block)
    x = np.random.default_rng(12).standard_normal(shape).astype(src)
    x = np.swapaxes(x, -1, -2)                     # a view, as the kernels pass
    out = backend._batch_last(x, np.dtype(dst))
    assert out.dtype == dst and out.flags.c_contiguous
    np.testing.assert_array_equal(out, np.moveaxis(x, 0, -1).astype(dst))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("right", [False, True])
@pytest.mark.parametrize("layout", ["C", "transposed"])
def test_stack_trsm_in_every_direction(dtype, right, layout, kernel_set):
    # backend._stack_trsm: the direct or the transposed system, on b, on bᵀ in place or on
    # a copy: the solution of the system asked, b kept unless in place
    rng = np.random.default_rng(13)
    B, n, k = 3, 6, 4
    T = _mat(rng, (B, n, n), dtype) / n + 2 * np.eye(n, dtype=dtype)
    for lower in (True, False):
        Tm = np.tril(T) if lower else np.triu(T)
        for trans in (0, 1, 2):
            for inplace in (False, True):
                shape = (B, k, n) if right else (B, n, k)
                b = _mat(rng, shape, dtype)
                if layout == "transposed":      # bᵀ C-contiguous: the free flipped form
                    b = np.swapaxes(np.ascontiguousarray(np.swapaxes(b, -1, -2)), -1, -2)
                b0 = b.copy()
                x = backend._stack_trsm(T, b, lower, trans, False, right=right,
                                        inplace=inplace)
                got = x @ _op(Tm, trans) if right else _op(Tm, trans) @ x
                np.testing.assert_allclose(got, b0, rtol=_tol(dtype), atol=_tol(dtype))
                if not inplace:
                    np.testing.assert_array_equal(b, b0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_one_matrix_triangular_solve_on_either_memory_order(dtype):
    # one real matrix goes to trtrs on its free Fortran form: a Fortran-ordered A (SciPy's
    # and linalgad's own LU factors) as it is, a C-ordered one as the view Aᵀ
    rng = np.random.default_rng(14)
    n = 9
    A = (rng.standard_normal((n, n)) / n + 2 * np.eye(n)).astype(dtype)
    b = rng.standard_normal((n, 3)).astype(dtype)
    for lower in (True, False):
        for trans in (0, 1, 2):
            for unit in (False, True):
                Tm = np.tril(A) if lower else np.triu(A)
                if unit:
                    Tm[range(n), range(n)] = 1
                xs = [CPU.solve_triangular(M, b, lower=lower, trans=trans, unit_diagonal=unit)
                      for M in (np.ascontiguousarray(A), np.asfortranarray(A))]
                for x in xs:
                    np.testing.assert_allclose(_op(Tm, trans) @ x, b, rtol=_tol(dtype),
                                               atol=_tol(dtype))


# -- the vectorised LU of stacks of order <= SMALL_N (backend._lu_batch_last) ---------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.complex64, np.complex128])
@pytest.mark.parametrize("n", [1, 2, 4, 8])
def test_vectorised_lu_is_lapacks_factorization(dtype, n):
    # P A = L U with LAPACK's pivoting (the first largest |x|, |Re| + |Im| for complex:
    # a tie is made on purpose in the first column, where both see the same numbers;
    # later columns may differ in rounding from getrf's recursive order), every row
    # exchange of every matrix done by the masked in-place swap
    rng = np.random.default_rng(n)
    A = rng.standard_normal((300, n, n))
    if np.dtype(dtype).kind == "c":
        A = A + 1j * rng.standard_normal((300, n, n))
    A[::7, -1, 0] = -A[::7, 0, 0]              # equal magnitudes in the first column
    A = A.astype(dtype)
    F = backend._vector_lu_factor(A, "lu_factor", singular_ok=True)
    lu = np.moveaxis(F.data, -1, 0)
    L = np.tril(lu, -1) + np.eye(n)
    U = np.triu(lu)
    PA = np.take_along_axis(A, backend._perm_from_swaps(F.swaps.T, n)[..., None], axis=-2)
    tol = 1e-5 if np.dtype(dtype) in (np.float32, np.complex64) else 1e-13
    assert np.abs(L @ U - PA).max() <= tol * np.abs(A).max()
    # partial pivoting: |multipliers| <= 1 (complex: the pivot is largest in |Re| + |Im|,
    # so a multiplier's modulus is at most √2)
    bound = np.sqrt(2) * (1 + tol) if np.dtype(dtype).kind == "c" else 1
    assert np.abs(L).max() <= bound
    getrf = backend._lapack_fn("getrf", A.dtype)
    first = np.array([getrf(a)[1][0] for a in A])
    assert np.array_equal(F.swaps[0], first)


def test_vectorised_lu_swaps_leave_other_matrices_untouched():
    # a stack where only some matrices exchange rows: the others keep theirs bit for bit
    A = np.tile(np.diag([4.0, 3.0, 2.0, 1.0]), (6, 1, 1))
    A[1] = A[1][[2, 0, 3, 1]]                   # needs exchanges
    A[4, 3, 0] = 9.0
    F = backend._vector_lu_factor(A, "lu_factor")
    lu = np.moveaxis(F.data, -1, 0)
    for i in (0, 2, 3, 5):
        assert np.array_equal(lu[i], A[i]) and np.array_equal(F.swaps[:, i], np.arange(4))
    assert F.swaps[0, 1] == 1 and F.swaps[0, 4] == 3
    x = np.linalg.solve(A, np.ones((6, 4, 1)))
    assert np.allclose(CPU.lu_solve(F, np.ones((6, 4, 1))), x, rtol=1e-14, atol=0)


def test_vectorised_lu_of_an_augmented_system():
    # eig's kernel eliminates [A | b] and back-substitutes U: the solve A⁻¹ b
    rng = np.random.default_rng(5)
    A = rng.standard_normal((50, 4, 4)) + 1j * rng.standard_normal((50, 4, 4))
    b = rng.standard_normal((50, 4, 3)) + 1j * rng.standard_normal((50, 4, 3))
    aug = backend._batch_last(np.concatenate([A, b], axis=-1), np.complex128)
    _, _, rdiag = backend._lu_batch_last(aug, "test", (50,))
    x = backend._lu_substitute_batch_last(aug, rdiag, aug[:, 4:], 0, lower=False)
    assert np.allclose(np.moveaxis(x, -1, 0), np.linalg.solve(A, b), rtol=1e-12, atol=1e-12)


def test_det_of_a_singular_complex_stack_warns_nothing():
    # a zero pivot kept for det: its reciprocal is not used, and makes no RuntimeWarning
    import warnings
    A = np.ones((300, 2, 2)) * (1 + 1j)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not la.det(A).any()
        g = lad.grad(lambda A: lad.real(la.det(A)).sum())(A)
    assert np.allclose(g, np.array([[1 - 1j, -1 + 1j], [-1 + 1j, 1 - 1j]]), rtol=1e-15, atol=0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.complex64, np.complex128])
@pytest.mark.parametrize("trans", [0, 1, 2])
@pytest.mark.parametrize("scaled", [False, True])
def test_vectorised_inverse_from_the_factors(dtype, trans, scaled):
    # op(A)⁻¹ (times a per-matrix scale) straight from the vectorised factors, rows
    # exchanged in every matrix (inv and slogdet's cotangent of tiny stacks)
    rng = np.random.default_rng(trans)
    A = rng.standard_normal((2, 150, 4, 4))
    if np.dtype(dtype).kind == "c":
        A = A + 1j * rng.standard_normal(A.shape)
    A = A.astype(dtype)
    F = backend._vector_lu_factor(A, "inv")
    s = rng.standard_normal((2, 150)).astype(dtype) if scaled else None
    got = backend._vector_inverse(F, trans, s)
    Ai = np.linalg.inv(A.astype(np.complex128 if np.dtype(dtype).kind == "c" else np.float64))
    want = Ai if trans == 0 else np.swapaxes(Ai, -1, -2)
    if trans == 2:
        want = np.conj(want)
    if scaled:
        want = want * s[..., None, None]
    assert got.dtype == np.dtype(dtype) and got.shape == A.shape
    tol = 1e-3 if np.dtype(dtype) in (np.float32, np.complex64) else 1e-10
    assert np.all(np.abs(got - want) <= tol * np.abs(want).max(axis=(-2, -1), keepdims=True))


# -- Schur forms and triangular Sylvester solves of stacks (gees, trsyl) -------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", ["C", "F", "transposed"])
def test_schur_of_a_stack_is_scipys_and_leaves_the_input_alone(dtype, layout, monkeypatch):
    """CPU.schur of a stack by one loop of direct gees calls: SciPy's Schur form exactly,
    for C- and Fortran-ordered and transposed inputs, which it must not overwrite (of an
    F-ordered matrix the transpose is C-contiguous: a copy that is not made would be
    handed to LAPACK)."""
    import scipy.linalg as sl
    assert _lapack_stack.schur_available(dtype)
    rng = np.random.default_rng(5)
    A = _mat(rng, (5, 6, 6), dtype)
    if layout == "F":
        A = np.asfortranarray(A)
    elif layout == "transposed":
        A = np.swapaxes(A, -1, -2)
    before = A.copy()
    T, Z = CPU.schur(A)
    np.testing.assert_array_equal(A, before)
    for i in range(len(A)):
        Ts, Zs = sl.schur(A[i])
        np.testing.assert_allclose(T[i], Ts, rtol=_tol(dtype), atol=_tol(dtype))
        np.testing.assert_allclose(Z[i], Zs, rtol=_tol(dtype), atol=_tol(dtype))
    monkeypatch.setattr(_lapack_stack, "schur_available", lambda dt: False)
    T2, Z2 = CPU.schur(A)                                 # SciPy's wrapper, per matrix
    np.testing.assert_array_equal(T, T2)
    np.testing.assert_array_equal(Z, Z2)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("ta,tb", [(False, False), (True, False), (False, True), (True, True)])
def test_triangular_sylvester_stack_equals_the_wrapper_loop(dtype, ta, tb, monkeypatch):
    """backend._trsyl_stack by direct trsyl calls against SciPy's wrapper per matrix, with
    broadcast factors and a Fortran-ordered right-hand side it must not overwrite."""
    rng = np.random.default_rng(6)
    Ta, _ = CPU.schur(_mat(rng, (1, 4, 4), dtype))
    Tb, _ = CPU.schur(_mat(rng, (3, 5, 5), dtype))
    F = np.asfortranarray(_mat(rng, (3, 4, 5), dtype))
    before = F.copy()
    Y = CPU._trsyl_stack(Ta, ta, Tb, tb, F, "sylvester", "no solution")
    np.testing.assert_array_equal(F, before)
    op = lambda T, t: np.conj(np.swapaxes(T, -1, -2)) if t else T   # noqa: E731
    np.testing.assert_allclose(op(Ta, ta) @ Y + Y @ op(Tb, tb), F,
                               rtol=10 * _tol(dtype), atol=10 * _tol(dtype))
    monkeypatch.setattr(_lapack_stack, "schur_available", lambda dt: False)
    np.testing.assert_allclose(CPU._trsyl_stack(Ta, ta, Tb, tb, F, "sylvester", "x"), Y,
                               rtol=_tol(dtype), atol=_tol(dtype))


def test_schur_of_a_stack_names_a_matrix_that_fails(monkeypatch):
    """gees's info > 0 (no convergence) names the matrix, as the wrapper loop does."""
    def failing(a):
        info = np.zeros(a.shape[0], dtype=np.int32)
        info[2] = 1
        return np.empty_like(a), info
    monkeypatch.setattr(_lapack_stack, "gees", failing)
    with pytest.raises(LinAlgError, match=r"schur.*did not converge.*\(2,\)"):
        CPU.schur(np.ones((4, 3, 3)))
