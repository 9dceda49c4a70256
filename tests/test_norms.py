"""norm, cond, matrix_power, multi_dot and the NumPy 2 helpers: values, ties, errors, stacks."""

import warnings

import numpy as np
import pytest

import linalgad as lad
from linalgad.rules import norms as N
from linalgad.testing import check_grads

INF = np.inf
MATRIX_ORDS = [None, "fro", "nuc", 2, -2, 1, -1, INF, -INF]


def _x(shape, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    rng.standard_normal(13)
    x = rng.standard_normal(shape)
    if np.dtype(dtype).kind == "c":
        x = x + 1j * rng.standard_normal(shape)
    return x.astype(dtype)


@pytest.mark.parametrize("ord", MATRIX_ORDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.complex64, np.complex128])
def test_matrix_norm_values(ord, dtype):
    x = _x((3, 4), dtype)
    got = N.norm(x, ord)
    want = np.linalg.norm(x, ord)
    assert got.dtype == want.dtype
    np.testing.assert_allclose(got, want, rtol=1e-5 if np.finfo(dtype).bits <= 32 else 1e-12)


@pytest.mark.parametrize("ord", MATRIX_ORDS)
@pytest.mark.parametrize("axis,keepdims", [((0, 2), False), ((2, 0), True), ((-1, -3), False)])
def test_matrix_norm_axes_over_stacks(ord, axis, keepdims):
    x = _x((3, 2, 4), np.complex128)
    np.testing.assert_allclose(N.norm(x, ord, axis, keepdims),
                               np.linalg.norm(x, ord, axis, keepdims), rtol=1e-12)
    check_grads(lambda x: N.norm(x, ord, axis, keepdims), (x,), order=1)


@pytest.mark.parametrize("ord", [None, 2, 1, INF, -INF, 3, 0.5, -1, 0])
@pytest.mark.parametrize("axis", [None, 0, -1])
def test_vector_norms(ord, axis):
    x = _x((4, 5), np.complex128)
    if axis is None:
        x = x[0]
    got, want = N.norm(x, ord, axis), np.linalg.norm(x, ord, axis)
    np.testing.assert_allclose(got, want, rtol=1e-12)
    assert got.dtype == want.dtype
    if ord != 0:
        check_grads(lambda x: N.norm(x, ord, axis), (x,), order=1)


def test_numpy2_norms():
    x = _x((2, 3, 4))
    for ord in ("fro", "nuc", 2, 1, INF):
        np.testing.assert_allclose(N.matrix_norm(x, ord=ord, keepdims=True),
                                   np.linalg.matrix_norm(x, ord=ord, keepdims=True))
    for axis in (None, 1, (0, 2)):
        for ord in (2, 1, INF, 3):
            np.testing.assert_allclose(N.vector_norm(x, axis=axis, ord=ord, keepdims=True),
                                       np.linalg.vector_norm(x, axis=axis, ord=ord,
                                                             keepdims=True))
    check_grads(lambda x: N.vector_norm(x, axis=(0, 2), ord=3, keepdims=True), (x,), order=2)


def test_ties_give_valid_subgradients():
    # vector inf-norm at a tie: split equally
    g = lad.grad(lambda v: N.norm(v, INF))(np.array([3.0, -3.0, 1.0]))
    np.testing.assert_allclose(g, [0.5, -0.5, 0.0])
    # tied max row sums (inf-norm)
    T = np.array([[1.0, 2.0], [-2.0, 1.0]])
    np.testing.assert_allclose(lad.grad(lambda T: N.norm(T, INF))(T), np.sign(T) / 2)
    # abs at 0, real and complex: 0
    np.testing.assert_allclose(lad.grad(lambda v: N.norm(v, 1))(np.array([0.0, 2.0])), [0, 1])
    gz = lad.grad(lambda v: N.norm(v, 1))(np.array([0j, 1j]))
    np.testing.assert_allclose(gz, [0, 1j])
    # 2-norm at 0
    assert np.all(lad.grad(lambda v: N.norm(v))(np.zeros(3)) == 0)
    # nuc at zero singular values: subgradient with spectral norm 1, <G, A> = ‖A‖_*
    A = np.diag([2.0, 1.0, 0.0])
    G = lad.grad(lambda A: N.norm(A, "nuc"))(A)
    assert np.all(np.isfinite(G)) and np.isclose(np.sum(G * A), 3.0)
    assert np.linalg.norm(G, 2) <= 1 + 1e-12


@pytest.mark.parametrize("ord", [2, -2])
def test_repeated_extreme_singular_value(ord):
    rng = np.random.default_rng(5)
    Q = np.linalg.qr(rng.standard_normal((4, 4)) + 1j * rng.standard_normal((4, 4)))[0]
    R = np.linalg.qr(rng.standard_normal((4, 4)) + 1j * rng.standard_normal((4, 4)))[0]
    s = np.array([3.0, 3.0, 2.0, 1.0]) if ord == 2 else np.array([3.0, 2.0, 1.0, 1.0])
    A = Q @ np.diag(s) @ R.conj().T
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        g = lad.grad(lambda A: N.norm(A, ord))(A)
    idx = slice(0, 2) if ord == 2 else slice(2, 4)
    np.testing.assert_allclose(g, Q[:, idx] @ R[:, idx].conj().T / 2, atol=1e-12)
    np.testing.assert_allclose(N.norm(A, ord), np.linalg.norm(A, ord), rtol=1e-14)


def _with_spectrum(rng, m, n, s, dtype):
    """Q diag(s) Rᴴ with Haar-like Q (m × k), R (n × k); complex for complex dtypes."""
    k = len(s)
    cplx = np.dtype(dtype).kind == "c"

    def orth(r):
        g = rng.standard_normal((r, k)) + (1j * rng.standard_normal((r, k)) if cplx else 0)
        return np.linalg.qr(g)[0]
    Q, R = orth(m), orth(n)
    return (Q * s) @ R.conj().T, Q, R


@pytest.mark.parametrize("dtype", [np.float64, np.complex128, np.float32, np.complex64])
@pytest.mark.parametrize("shape", [(64, 64), (80, 56), (56, 80), (2, 60, 60)])
def test_extreme_singular_values_by_bidiagonal_kernel(dtype, shape):
    """From order 48 on the CPU, ‖A‖₂, its reciprocal side and cond take the singular
    vectors of the extreme values only (bidiagonal reduction and inverse iteration):
    values as NumPy's, gradients u₁v₁ᴴ and u_k v_kᴴ, ties averaged (the minimum-norm
    subgradient), a singular matrix through the thin SVD (cond inf, gradient 0)."""
    from linalgad import backend, _lapack_extreme
    assert _lapack_extreme.available(dtype)
    rng = np.random.default_rng(7)
    *batch, m, n = shape
    k = min(m, n)
    A = np.zeros(shape, dtype=dtype)
    Gtop, Gbot = np.zeros(shape, dtype=dtype), np.zeros(shape, dtype=dtype)
    for i in np.ndindex(*batch):
        s = np.linspace(3.0, 1.0, k)
        s[1] = s[0] if i == (1,) else s[1]            # a tie at the top of the second
        a, Q, R = _with_spectrum(rng, m, n, s, dtype)
        A[i] = a
        top = 2 if s[1] == s[0] else 1
        Gtop[i] = Q[:, :top] @ R[:, :top].conj().T / top
        Gbot[i] = np.outer(Q[:, -1], R[:, -1].conj())
    tol = 1e-4 if np.dtype(dtype).itemsize <= 8 and np.dtype(dtype).kind == "c" or \
        np.dtype(dtype) == np.float32 else 1e-10
    calls = []
    original = _lapack_extreme.extreme

    def counted(*a, **kw):
        r = original(*a, **kw)
        calls.append(r is not None)
        return r
    _lapack_extreme.extreme = counted
    try:
        for ord, want_g in ((2, Gtop), (-2, Gbot)):
            v, g = lad.value_and_grad(lambda A: lad.sum(N.norm(A, ord, axis=(-2, -1))))(A)
            np.testing.assert_allclose(v, np.sum(np.linalg.norm(A, ord, axis=(-2, -1))),
                                       rtol=tol)
            np.testing.assert_allclose(g, want_g, atol=tol)
        v, g = lad.value_and_grad(lambda A: lad.sum(N.cond(A)))(A)
        s = np.linalg.svd(A, compute_uv=False)
        np.testing.assert_allclose(v, np.sum(s[..., 0] / s[..., -1]), rtol=tol)
        want = (Gtop - Gbot * (s[..., 0] / s[..., -1])[..., None, None]) / \
            s[..., -1][..., None, None]
        np.testing.assert_allclose(g, want, atol=tol)
        assert calls and all(calls)               # the bidiagonal kernel, not the SVD
        if not batch and np.dtype(dtype) == np.float64:
            check_grads(lambda A: N.cond(A), (A,), order=2)
            calls.clear()
            S = A.copy()
            if m >= n:                            # rank k − 1: the thin SVD answers
                S[:, -1] = S[:, 0]
            else:
                S[-1] = S[0]
            assert N.cond(S) > 1e14 or np.isinf(N.cond(S))
            gS = lad.grad(lambda S: N.norm(S, -2))(S)
            assert np.all(np.isfinite(gS)) and calls == [False]
    finally:
        _lapack_extreme.extreme = original
    assert backend.EXTREME_SVD_N <= k


def _ends_in_double(A, top_tied, bottom_tied):
    """u₁v₁ᴴ and u_k v_kᴴ of each matrix of a stack by the double-precision SVD of its
    (rounded) values, averaged over the first ``top_tied`` (last ``bottom_tied``) pairs
    (per matrix): the derivatives of ‖A‖₂ and of its reciprocal side, the truth the
    kernels are held to."""
    U, _, Vh = np.linalg.svd(A.astype(np.promote_types(A.dtype, np.float64)))
    k = min(A.shape[-2:])
    Mt, Mb = np.zeros(A.shape, U.dtype), np.zeros(A.shape, U.dtype)
    for i in np.ndindex(*A.shape[:-2]):
        t, b = top_tied[i], bottom_tied[i]
        Mt[i] = U[i][:, :t] @ Vh[i][:t] / t
        Mb[i] = U[i][:, k - b:k] @ Vh[i][k - b:k] / b
    return Mt, Mb


@pytest.mark.parametrize("dtype", [np.float64, np.complex128, np.float32, np.complex64])
@pytest.mark.parametrize("shape", [(40, 24, 24), (40, 20, 14), (40, 14, 20), (4, 10, 20, 20)])
def test_extreme_singular_values_of_stacks_by_inverse_iteration(dtype, shape, monkeypatch):
    """Stacks of small matrices: the values, then inverse iteration for the ends' pairs
    (``_lapack_extreme.extreme_stack``; s_min's for real stacks, where it is faster than
    the SVD).  Ordinary matrices are answered there; a tie at an end goes to the thin SVD
    (counted), and so may a pair orthogonal to the start vector or a near pair slow to
    converge; every gradient agrees with the double-precision SVD of the same matrices
    (as closely as that SVD itself is accurate).  The kernel's s_min path is also run
    directly, complex included."""
    from linalgad import backend, _lapack_extreme
    *batch, m, n = shape
    k = min(m, n)
    square = m == n
    assert k >= (backend.EXTREME_STACK_BOTTOM_N if square else backend.EXTREME_STACK_N)
    assert int(np.prod(batch)) >= backend.EXTREME_STACK_BATCH
    single = np.dtype(dtype) in (np.float32, np.complex64)
    real = np.dtype(dtype).kind == "f"            # s_min is iterated for real stacks only
    eps = np.finfo(dtype).eps
    close = 1e-4 if single else 1e-8             # distinct values, slow to converge
    rng = np.random.default_rng(11)
    A = np.zeros(shape, dtype=dtype)
    top_tied = np.ones(batch, dtype=int)
    bottom_tied = np.ones(batch, dtype=int)
    tol = np.full(batch, 1e-5 if single else 1e-10)   # per matrix
    special = {}                                  # flat index -> case
    start = _lapack_extreme._start(k, np.dtype(dtype), 1)[0, 0]
    for j, i in enumerate(np.ndindex(*batch)):
        s = np.linspace(3.0, 1.0, k) + rng.uniform(-0.3, 0.3, k) / k     # gaps ≥ 1/(2k)
        case = j if j < 6 and (square or j != 2) else None
        if case == 1:
            s[1] = s[0]                           # tied at the top
            top_tied[i] = 2
        elif case == 2:
            s[-2] = s[-1]                         # tied at the bottom
            bottom_tied[i] = 2
        elif case == 4:
            s[1] = s[0] * (1 - close)
        elif case == 5:
            s[-2] = s[-1] * (1 + close)
        if case in (4, 5):                        # the double SVD's own error: ε/close
            tol[i] = 1e-5 if single else 100 * eps / close
        a, Q, R = _with_spectrum(rng, m, n, s, dtype)
        if case == 3:                             # top pair orthogonal to the start vector
            w = (R if m >= n else Q)[:, 0]        # the vector iterated on (length k)
            b = start / np.linalg.norm(start)
            w = w - b * (b.conj() @ w)
            w /= np.linalg.norm(w)
            basis = np.linalg.qr(np.column_stack([w, rng.standard_normal((k, k - 1))]))[0]
            basis[:, 0] = w
            if m >= n:
                R = basis
            else:
                Q = basis
            a = (Q * s) @ R.conj().T
        A[i] = a
        if case:
            special[j] = case
    Gtop, Gbot = _ends_in_double(A, top_tied, bottom_tied)
    declined = []
    original = backend.ComposedKernels.svd_extreme

    def counted(self, X, ends, tol):
        declined.append(X.size // (m * n))       # how many matrices
        return original(self, X, ends, tol)
    monkeypatch.setattr(backend.ComposedKernels, "svd_extreme", counted)
    err = lambda g, want: np.abs(g - want).max(axis=(-2, -1))      # noqa: E731
    for ord, want in ((2, Gtop),) + (((-2, Gbot),) if square else ()):
        declined.clear()
        v, g = lad.value_and_grad(lambda A: lad.sum(N.norm(A, ord, axis=(-2, -1))))(A)
        np.testing.assert_allclose(v, np.sum(np.linalg.norm(A, ord, axis=(-2, -1))),
                                   rtol=1e-5 if single else 1e-12)
        assert g.dtype == A.dtype and np.all(err(g, want) <= tol)
        # the tie went to the SVD, and at most the matrices whose iteration may not
        # converge in six steps besides: the pair orthogonal to the start vector
        # (rounding gives it a component the steps amplify) and the near pair
        ties = sum(c == (1 if ord == 2 else 2) for c in special.values())
        spare = sum(c in ((3, 4) if ord == 2 else (5,)) for c in special.values())
        if ord == -2 and not real:                # s_min of complex stacks: the SVD's
            assert declined == [A.size // (m * n)]
        else:
            assert len(declined) == 1 and ties <= declined[0] <= ties + spare
        # forward mode reads the same directions: ṡ = Re Σ conj(M) ∘ Ȧ
        T = rng.standard_normal(shape).astype(dtype)
        _, t = lad.jvp(lambda A: N.norm(A, ord, axis=(-2, -1)), (A,), (T,))
        t_want = np.sum(np.conj(want) * T, axis=(-2, -1)).real
        assert np.all(np.abs(t - t_want) <= tol * np.abs(T).sum(axis=(-2, -1)))
    if not square:
        return
    declined.clear()
    v, g = lad.value_and_grad(lambda A: lad.sum(N.cond(A)))(A)
    sv = np.linalg.svd(A.astype(Gtop.dtype), compute_uv=False)
    hi, lo = sv[..., 0, None, None], sv[..., -1, None, None]
    np.testing.assert_allclose(v, np.sum(hi / lo), rtol=1e-5 if single else 1e-12)
    assert np.all(err(g, (Gtop - Gbot * hi / lo) / lo) <= 3 * tol * hi / lo)
    assert declined == [A.size // (m * n)] if not real else \
        len(declined) == 1 and 2 <= declined[0] <= len(special)
    # s_min exactly 0 (a repeated row) and near 0 (graded rows): declined, the SVD
    # answers; ill-conditioned but not near singular (κ ≈ 1e5, or 1e3 in single
    # precision): answered, as accurately as the double SVD (whose error there is
    # about ε s₁/(s_{k−1} − s_k))
    S = A.reshape((-1, m, n)).copy()
    S[6, -1] = S[6, 0]
    S[7] *= np.geomspace(1, 1e-18, n).astype(S.real.dtype)[:, None]
    S[8] *= np.geomspace(1, 1e-3 if single else 1e-5, n).astype(S.real.dtype)[:, None]
    Mt, Mb, ok = _lapack_extreme.extreme_stack(S, np.linalg.svd(S, compute_uv=False), True,
                                               True, 1e-10)
    assert not ok[6] and not ok[7] and ok[8] and ok[0]
    ones = np.ones(S.shape[0], dtype=int)
    Tt, Tb = _ends_in_double(S, ones, ones)
    sS = np.linalg.svd(S.astype(Tt.dtype), compute_uv=False)
    bound = 100 * eps * sS[:, 0] / (sS[:, -2] - sS[:, -1])
    for j in (0, 8):
        assert err(Mt[j], Tt[j]) <= tol.flat[j] and err(Mb[j], Tb[j]) <= max(bound[j], 1e-5)
    gS = lad.grad(lambda S: lad.sum(N.norm(S, -2, axis=(-2, -1))))(S)
    assert np.all(np.isfinite(gS))
    for j in (0, 6, 8):
        assert err(gS[j], Tb[j]) <= max(bound[j], 1e-5 if single else 1e-10)


@pytest.mark.parametrize("dtype", [np.float64, np.complex64])
def test_extreme_stack_residual_net(dtype, monkeypatch):
    """A start vector with no component along s₁'s pair (a diagonal matrix, the start's
    first entry 0): inverse iteration settles on the next pair and stops changing, so
    only the residual test can tell; it declines, and the thin SVD answers."""
    from linalgad import _lapack_extreme
    k, B = 24, 40
    s = np.linspace(3.0, 1.0, k)
    s[1] = s[0] * (1 - 1e-9 if dtype == np.float64 else 1 - 1e-3)
    A = np.zeros((B, k, k), dtype=dtype)
    A[:, np.arange(k), np.arange(k)] = s
    start = np.cos(np.arange(k) + 0.5) + 1.5
    start[0] = 0
    monkeypatch.setitem(_lapack_extreme._STARTS, (k, np.dtype(np.promote_types(dtype,
                                                                                np.float64))),
                        start)
    Mt, _, ok = _lapack_extreme.extreme_stack(A, np.linalg.svd(A, compute_uv=False),
                                              True, False, 1e-10)
    assert not ok.any()
    g = lad.grad(lambda A: lad.sum(N.norm(A, 2, axis=(-2, -1))))(A)
    want = np.zeros((k, k))
    want[0, 0] = 1
    np.testing.assert_allclose(g, np.broadcast_to(want, A.shape), atol=1e-12)


@pytest.mark.parametrize("p", [None, 2, -2, "fro", "nuc", 1, -1, INF, -INF])
def test_cond(p):
    x = _x((3, 3, 3), np.complex128)
    np.testing.assert_allclose(N.cond(x, p), np.linalg.cond(x, p), rtol=1e-10)
    check_grads(lambda x: N.cond(x, p), (x,), order=1)


def test_cond_singular_and_errors():
    S = np.stack([np.array([[1.0, 2.0], [2.0, 4.0]]), np.eye(2)])
    for p in (None, 1, "fro"):
        want = np.linalg.cond(S, p)
        got = N.cond(S, p)
        assert np.isclose(got[1], want[1])
        assert np.isinf(got[0]) if p is not None else np.isclose(got[0], want[0])
        g = lad.grad(lambda S: lad.sum(N.cond(S, p)[1:]) + 0 * lad.sum(S))(S)
        assert np.all(np.isfinite(g))
    np.testing.assert_allclose(N.cond(_x((4, 3))), np.linalg.cond(_x((4, 3))))
    with pytest.raises(np.linalg.LinAlgError):
        N.cond(_x((4, 3)), 1)
    with pytest.raises(np.linalg.LinAlgError):
        N.cond(np.ones(3))


@pytest.mark.parametrize("n", [0, 1, 2, 3, 4, 5, 7, 8, -1, -3])
def test_matrix_power(n):
    a = _x((2, 3, 3)) / 2 + np.eye(3)
    np.testing.assert_allclose(N.matrix_power(a, n), np.linalg.matrix_power(a, n), rtol=1e-10)
    check_grads(lambda a: N.matrix_power(a, n), (a,), order=2)


def test_matrix_power_errors_and_ints():
    with pytest.raises(np.linalg.LinAlgError, match="matrix_power"):
        N.matrix_power(np.ones((2, 3)), 2)
    with pytest.raises(TypeError):
        N.matrix_power(np.eye(2), 1.5)
    with pytest.raises(np.linalg.LinAlgError):
        N.matrix_power(np.zeros((2, 2)), -1)
    m = np.array([[1, 1], [1, 0]])
    np.testing.assert_array_equal(N.matrix_power(m, 10), np.linalg.matrix_power(m, 10))


@pytest.mark.parametrize("shapes", [[(3, 5), (5, 2)], [(4,), (4, 6), (6, 2)],
                                    [(3, 7), (7, 2), (2,)], [(5,), (5, 3), (3, 8), (8, 2), (2,)],
                                    [(10, 2), (2, 9), (9, 3), (3, 7), (7, 4)]])
def test_multi_dot(shapes):
    arrs = [_x(s, seed=i) for i, s in enumerate(shapes)]
    np.testing.assert_allclose(N.multi_dot(arrs), np.linalg.multi_dot(arrs), rtol=1e-12)
    check_grads(lambda *a: N.multi_dot(a), tuple(arrs), order=1)
    out = np.empty(np.linalg.multi_dot(arrs).shape)
    assert N.multi_dot(arrs, out=out) is out


def test_multi_dot_errors():
    with pytest.raises(ValueError):
        N.multi_dot([np.eye(2)])
    with pytest.raises(np.linalg.LinAlgError):
        N.multi_dot([np.eye(2), np.ones((2, 2, 2)), np.eye(2)])
    with pytest.raises(TypeError, match="out"):
        lad.grad(lambda a: lad.sum(N.multi_dot([a, a, a], out=np.empty((2, 2)))))(np.eye(2))


def test_helpers_match_numpy_and_differentiate():
    x, y = _x((2, 3, 3), np.complex128), _x((2, 3, 3), np.complex128, seed=1)
    v, w = _x((4, 3)), _x((4, 3), seed=2)
    cases = [
        (lambda x: N.trace(x, offset=1), np.linalg.trace(x, offset=1), (x,)),
        (lambda x: N.diagonal(x, offset=-1), np.linalg.diagonal(x, offset=-1), (x,)),
        (N.matrix_transpose, np.linalg.matrix_transpose(x), (x,)),
        (N.outer, np.linalg.outer(v[0], w[1]), (v[0], w[1])),
        (N.vecdot, np.linalg.vecdot(x, y), (x, y)),
        (lambda a, b: N.vecdot(a, b, axis=0), np.linalg.vecdot(v, w, axis=0), (v, w)),
        (N.cross, np.linalg.cross(v, w), (v, w)),
        (lambda a, b: N.cross(a, b, axis=0), np.linalg.cross(v[:3], w[:3], axis=0),
         (v[:3], w[:3])),
        (N.tensordot, np.linalg.tensordot(x, y.transpose(1, 2, 0)), (x, y.transpose(1, 2, 0))),
        (lambda a, b: N.tensordot(a, b, axes=([0, 2], [0, 1])),
         np.linalg.tensordot(x, y, axes=([0, 2], [0, 1])), (x, y)),
        (N.matmul, np.linalg.matmul(x, y), (x, y)),
        (N.tensorinv, np.linalg.tensorinv(np.eye(6).reshape(6, 2, 3) + 0.1 * _x((6, 2, 3)), ind=1),
         (np.eye(6).reshape(6, 2, 3) + 0.1 * _x((6, 2, 3)),)),
    ]
    for fn, want, args in cases:
        if fn is N.tensorinv:
            fn = lambda a: N.tensorinv(a, ind=1)   # noqa: E731
        np.testing.assert_allclose(fn(*args), want, rtol=1e-10, atol=1e-12)
        check_grads(fn, args, order=1)
    a = np.eye(6).reshape(2, 3, 6) + 0.1 * _x((2, 3, 6))
    b = _x((2, 3))
    np.testing.assert_allclose(N.tensorsolve(a, b), np.linalg.tensorsolve(a, b))
    check_grads(N.tensorsolve, (a, b), order=1)


def test_matrix_rank_on_traced_values():
    A = np.diag([1.0, 2.0, 0.0])
    assert N.matrix_rank(A) == np.linalg.matrix_rank(A) == 2
    np.testing.assert_array_equal(N.matrix_rank(np.stack([A, np.eye(3)]), rtol=0.6),
                                  np.linalg.matrix_rank(np.stack([A, np.eye(3)]), rtol=0.6))

    def f(A):
        r = N.matrix_rank(A)
        return lad.sum(A) * int(r)
    assert np.all(lad.grad(f)(A) == 2)


def test_norm_errors():
    with pytest.raises(ValueError):
        N.norm(np.ones((2, 2)), "bad")
    with pytest.raises(ValueError):
        N.norm(np.ones(3), "fro")
    with pytest.raises(ValueError):
        N.norm(np.ones((2, 2, 2)), 2)
    with pytest.raises(ValueError):
        N.norm(np.ones((2, 2)), 2, axis=(1, 1))
    with pytest.raises(ValueError):
        N.outer(np.ones((2, 2)), np.ones(2))
    assert N.norm(np.arange(4)).dtype == np.float64


def test_matrix_rank_hermitian_counts_eigenvalues_like_numpy():
    rng = np.random.default_rng(12)
    X = rng.standard_normal((5, 3))
    H = X @ X.T                                   # rank 3, positive semidefinite
    stack = np.stack([H, -H, np.eye(5)])          # |eigenvalues| count for indefinite ones
    for A in (H, stack):
        np.testing.assert_array_equal(N.matrix_rank(A, hermitian=True),
                                      np.linalg.matrix_rank(A, hermitian=True))
    assert N.matrix_rank(H, hermitian=True, rtol=1e-3) == \
        np.linalg.matrix_rank(H, hermitian=True, rtol=1e-3)
    with pytest.raises(np.linalg.LinAlgError, match="matrix_rank"):
        N.matrix_rank(X, hermitian=True)


def test_norm_takes_scipys_check_finite():
    """scipy.linalg.norm's keyword: off by default here (NumPy's norm propagates NaN)."""
    assert np.isnan(N.norm(np.array([1.0, np.nan])))
    assert N.norm(np.eye(2), 2, check_finite=True) == 1.0
    with pytest.raises(ValueError, match="norm"):
        N.norm(np.array([1.0, np.inf]), check_finite=True)
