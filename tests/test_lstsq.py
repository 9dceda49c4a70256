"""lstsq, pinv, pinvh beyond the registry: hard inputs, NumPy/SciPy semantics, errors.

The registry (tests/test_rules.py) already checks every domain to second order in
both modes; here: rank-deficient and wide inputs against finite differences with a
fixed cutoff, residues and singular values, complex / batched / vector b / float32,
the cutoff keywords (rcond, cond, rtol, atol) against NumPy/SciPy, mixed-rank stacks,
errors, and (marker ``peers``) agreement with JAX and PyTorch.
"""

import numpy as np
import pytest
import scipy.linalg

import linalgad as lad
from linalgad import linalg as la
from linalgad.testing import check_grads
from linalgad.testing import matrices as M

CUT = 1e-4          # a cutoff above the O(h) singular values a finite-difference step makes


def low_rank(rng, m, n, rank, batch=(), dtype=np.float64):
    return M.random_rank_deficient(rng, m, n, rank, batch, dtype, cond=3.0)


@pytest.mark.parametrize("dtype", [np.float64, np.complex128])
@pytest.mark.parametrize("shape,rank", [((5, 3), 2), ((3, 5), 2), ((4, 4), 3), ((6, 4), 1)])
def test_lstsq_rank_deficient_fd(shape, rank, dtype):
    rng = np.random.default_rng(1)
    A = low_rank(rng, *shape, rank, dtype=dtype)
    b = M.random_rhs(rng, shape[0], 2, (), dtype)
    x, res, r, s = la.lstsq(A, b, CUT)
    assert r == rank and res.shape == (0,)
    check_grads(lambda A, b: la.lstsq(A, b, CUT)[0], (A, b), order=2)


@pytest.mark.parametrize("dtype", [np.float64, np.complex128, np.float32, np.complex64])
def test_lstsq_wide_min_norm(dtype):
    rng = np.random.default_rng(2)
    A = M.random_wide(rng, 3, 6, (), dtype, cond=3.0)
    b = M.random_vector(rng, 3, (), dtype)
    x = la.lstsq(A, b)[0]
    want = np.linalg.lstsq(A, b, rcond=None)[0]
    tol = 1e-4 if np.finfo(dtype).eps > 1e-10 else 1e-12
    np.testing.assert_allclose(x, want, rtol=tol, atol=tol)
    rtol = 2e-2 if np.finfo(dtype).eps > 1e-10 else 1e-6
    check_grads(lambda A, b: la.lstsq(A, b)[0], (A, b), order=2, rtol=rtol)


@pytest.mark.parametrize("dtype", [np.float64, np.complex128])
def test_lstsq_residues_and_singular_values_gradients(dtype):
    rng = np.random.default_rng(3)
    A = M.random_tall(rng, 6, 3, (), dtype, cond=3.0)
    b = M.random_rhs(rng, 6, 2, (), dtype)
    check_grads(lambda A, b: la.lstsq(A, b)[1], (A, b), order=2)
    check_grads(lambda A, b: la.lstsq(A, b)[3], (A, b), order=2)
    # the closed forms: residues_bar = 1 -> A_bar = -2 r x^H, b_bar = 2 r
    x = la.lstsq(A, b)[0]
    r = b - A @ x
    gA, gb = lad.grad(lambda A, b: lad.sum(la.lstsq(A, b)[1]), argnums=(0, 1))(A, b)
    np.testing.assert_allclose(gA, -2 * r @ np.conj(x.T), atol=1e-10)
    np.testing.assert_allclose(gb, 2 * r, atol=1e-10)


@pytest.mark.parametrize("dtype", [np.float64, np.complex128])
@pytest.mark.parametrize("b_kind", ["shared", "stacked", "vector"])
def test_lstsq_solution_and_residues_in_one_pass(dtype, b_kind):
    """x and the residues come from one primitive whose reverse pass merges both
    cotangents (w = A⁺ᴴx̄ + 2ρ̄r); that must equal the sum of the two separate gradients,
    for b shared by a stack of A, stacked with it, or a vector, to second order."""
    rng = np.random.default_rng(11)
    A = M.random_tall(rng, 6, 3, (3,), dtype, cond=3.0)
    b = {"shared": M.random_rhs(rng, 6, 2, (), dtype),
         "stacked": M.random_rhs(rng, 6, 2, (3,), dtype),
         "vector": M.random_vector(rng, 6, (), dtype)}[b_kind]
    W = M.random_rhs(rng, 3, 2, (3,), dtype) if b_kind != "vector" else \
        rng.standard_normal((3, 3))
    c = rng.standard_normal((3, 2) if b_kind != "vector" else (3,))

    def loss_x(A, b):
        return lad.sum(lad.real(la.lstsq(A, b)[0] * np.conj(W)))

    def loss_res(A, b):
        return lad.sum(la.lstsq(A, b)[1] * c)

    both = lad.grad(lambda A, b: loss_x(A, b) + loss_res(A, b), argnums=(0, 1))(A, b)
    gx = lad.grad(loss_x, argnums=(0, 1))(A, b)
    gr = lad.grad(loss_res, argnums=(0, 1))(A, b)
    for g, p, q in zip(both, gx, gr):
        np.testing.assert_allclose(g, p + q, rtol=1e-12, atol=1e-12)
    x, res = la.lstsq(A, b)[:2]
    r = (b[..., None] if b_kind == "vector" else b) - A @ (x[..., None] if b_kind == "vector"
                                                          else x)
    cw = 2 * (c[:, None, None] if b_kind == "vector" else c[:, None, :]) * r
    want_A = -cw @ np.conj(np.swapaxes(x[..., None] if b_kind == "vector" else x, -1, -2))
    np.testing.assert_allclose(gr[0], want_A, atol=1e-12)
    want_b = cw if b_kind == "stacked" else np.sum(cw, axis=0).reshape(np.shape(b))
    np.testing.assert_allclose(gr[1], want_b, atol=1e-12)
    check_grads(lambda A, b: la.lstsq(A, b)[:2], (A, b), order=2)


@pytest.mark.parametrize("dtype", [np.float32, np.complex64])
def test_lstsq_float32(dtype):
    rng = np.random.default_rng(4)
    A = M.random_tall(rng, 5, 3, (2,), dtype, cond=3.0)
    b = M.random_rhs(rng, 5, 2, (2,), dtype)
    out = la.lstsq(A, b)
    assert out[0].dtype == dtype and out[1].dtype == np.finfo(dtype).dtype
    assert out[3].dtype == np.finfo(dtype).dtype
    check_grads(lambda A, b: tuple(la.lstsq(A, b)[i] for i in (0, 1, 3)), (A, b), order=1,
                rtol=2e-2)


def test_lstsq_batched_matches_scipy_and_vector_b():
    rng = np.random.default_rng(5)
    A = M.random_tall(rng, 7, 3, (4,), np.float64, cond=3.0)
    b = M.random_rhs(rng, 7, 2, (4,), np.float64)
    x, res, rank, s = la.lstsq(A, b, cond=1e-12)
    xs, ress, ranks, ss = scipy.linalg.lstsq(A, b, cond=1e-12)
    np.testing.assert_allclose(x, xs, atol=1e-12)
    np.testing.assert_allclose(res, ress, atol=1e-12)
    np.testing.assert_array_equal(rank, ranks)
    np.testing.assert_allclose(s, ss, atol=1e-12)
    v = b[0, :, 0]
    x, res, rank, s = la.lstsq(A, v)
    xs, ress, _, _ = scipy.linalg.lstsq(A, v)
    assert x.shape == (4, 3) and res.shape == (4,)
    np.testing.assert_allclose(x, xs, atol=1e-12)
    np.testing.assert_allclose(res, ress, atol=1e-12)
    x, res, rank, s = la.lstsq(A[0], v)                  # NumPy: (1,) residues, int rank
    xn, resn, rankn, sn = np.linalg.lstsq(A[0], v, rcond=None)
    assert res.shape == resn.shape == (1,) and rank == rankn
    np.testing.assert_allclose(res, resn, atol=1e-12)
    check_grads(lambda A, b: la.lstsq(A, b)[:2], (A, v), order=1)


def test_lstsq_mixed_rank_stack():
    rng = np.random.default_rng(6)
    A = M.random_tall(rng, 5, 3, (3,), np.float64, cond=3.0)
    A[1] = low_rank(rng, 5, 3, 2)
    b = M.random_rhs(rng, 5, 1, (3,), np.float64)
    x, res, rank, s = la.lstsq(A, b, CUT)
    np.testing.assert_array_equal(rank, [3, 2, 3])
    assert res.shape == (3, 0)
    for i in range(3):
        np.testing.assert_allclose(x[i], np.linalg.lstsq(A[i], b[i], rcond=CUT)[0], atol=1e-12)
    check_grads(lambda A, b: la.lstsq(A, b, CUT)[0], (A, b), order=1)


def test_lstsq_cutoffs_match_numpy_and_scipy():
    rng = np.random.default_rng(7)
    U = np.linalg.qr(rng.standard_normal((6, 4)))[0]
    V = np.linalg.qr(rng.standard_normal((4, 4)))[0]
    A = (U * np.array([1.0, 1e-3, 1e-9, 1e-14])) @ V.T
    b = rng.standard_normal(6)
    for rcond in (None, 1e-12, 1e-6, 1e-2, -1):
        got = la.lstsq(A, b, rcond)
        want = np.linalg.lstsq(A, b, rcond=rcond)
        assert got[2] == want[2], rcond
        np.testing.assert_allclose(got[0], want[0], rtol=1e-6, atol=1e-8)
        assert got[1].shape == want[1].shape
    for cond in (1e-12, 1e-6, 1e-2):
        got = la.lstsq(A, b, cond=cond)
        want = scipy.linalg.lstsq(A, b, cond=cond)
        assert got[2] == want[2], cond
        np.testing.assert_allclose(got[0], want[0], rtol=1e-6, atol=1e-8)
    assert la.lstsq(A, b, lapack_driver="gelsy")[3] is None


def test_lstsq_errors():
    A = np.ones((5, 3))
    with pytest.raises(np.linalg.LinAlgError, match="lstsq.*\\(5, 3\\).*\\(4,\\)"):
        la.lstsq(A, np.ones(4))
    with pytest.raises(ValueError, match="lstsq"):
        la.lstsq(A, np.ones((4, 2)))
    with pytest.raises(ValueError, match="lstsq"):
        la.lstsq(np.ones(5), np.ones(5))
    with pytest.raises(ValueError, match="infs or NaNs"):
        la.lstsq(np.full((5, 3), np.nan), np.ones(5))
    with pytest.raises(ValueError, match="driver"):
        la.lstsq(A, np.ones(5), lapack_driver="gels")


@pytest.mark.parametrize("dtype", [np.float64, np.complex128])
@pytest.mark.parametrize("shape,rank", [((5, 3), 2), ((3, 5), 2), ((4, 4), 2), ((4, 3), 3)])
def test_pinv_constant_rank_fd(shape, rank, dtype):
    rng = np.random.default_rng(8)
    if rank < min(shape):
        A = low_rank(rng, *shape, rank, dtype=dtype)
    else:
        A = M.random_tall(rng, *shape, (), dtype, cond=3.0)
    Y, r = la.pinv(A, rtol=CUT, return_rank=True)
    assert r == rank
    np.testing.assert_allclose(Y, np.linalg.pinv(A, rtol=CUT), atol=1e-12)
    check_grads(lambda A: la.pinv(A, rtol=CUT), (A,), order=2)


def test_pinv_projector_terms_matter():
    """−A⁺ dA A⁺ alone is wrong for a tall matrix; the full rule matches FD."""
    rng = np.random.default_rng(9)
    A = M.random_tall(rng, 5, 3, (), np.float64, cond=3.0)
    W = rng.standard_normal((3, 5))
    g = lad.grad(lambda A: lad.sum(la.pinv(A) * W))(A)
    Ap = np.linalg.pinv(A)
    naive = -Ap.T @ W @ Ap.T
    assert np.linalg.norm(g - naive) > 1e-2 * np.linalg.norm(g)
    h = 1e-6
    fd = np.zeros_like(A)
    for idx in np.ndindex(A.shape):
        E = np.zeros_like(A)
        E[idx] = h
        fd[idx] = np.sum((np.linalg.pinv(A + E) - np.linalg.pinv(A - E)) * W) / (2 * h)
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-8)


def test_pinv_cutoff_semantics():
    rng = np.random.default_rng(10)
    U = np.linalg.qr(rng.standard_normal((5, 4)))[0]
    V = np.linalg.qr(rng.standard_normal((4, 4)))[0]
    A = (U * np.array([2.0, 1.0, 1e-8, 1e-16])) @ V.T
    np.testing.assert_allclose(la.pinv(A), np.linalg.pinv(A), rtol=1e-6)
    for kw in ({"rcond": 1e-10}, {"rtol": None}, {"rtol": 1e-6}):
        np.testing.assert_allclose(la.pinv(A, **kw), np.linalg.pinv(A, **kw), rtol=1e-6)
    for kw in ({}, {"atol": 1e-6}, {"atol": 1e-12, "rtol": 1e-3}):
        got, r = la.pinv(A, return_rank=True, **kw) if kw else la.pinv(A, rtol=None,
                                                                        return_rank=True)
        want, rw = scipy.linalg.pinv(A, return_rank=True, **kw)
        assert r == rw
        np.testing.assert_allclose(got, want, rtol=1e-6)
    with pytest.raises(ValueError):
        la.pinv(A, rcond=1e-3, rtol=1e-3)


@pytest.mark.parametrize("lower", [True, False])
@pytest.mark.parametrize("dtype", [np.float64, np.complex128])
def test_pinvh_triangle_and_rank(lower, dtype):
    rng = np.random.default_rng(11)
    Q = M.random_orthogonal(rng, 4, (), dtype)
    H = (Q[:, :2] * np.array([1.5, -1.0])) @ np.conj(Q[:, :2].T)      # rank 2, indefinite
    junk = M.random_general(rng, 4, (), dtype)
    A = H + (np.triu(junk, 1) if lower else np.tril(junk, -1))        # unread triangle
    Y, r = la.pinvh(A, rtol=CUT, lower=lower, return_rank=True)
    Ys, rs = scipy.linalg.pinvh(A, rtol=CUT, lower=lower, return_rank=True)
    assert r == rs == 2
    np.testing.assert_allclose(Y, Ys, atol=1e-12)
    W = rng.standard_normal((4, 4))
    g = lad.grad(lambda A: lad.sum(lad.real(la.pinvh(A, rtol=CUT, lower=lower) * W)))(A)
    unread = np.triu(g, 1) if lower else np.tril(g, -1)
    assert np.all(unread == 0)
    check_grads(lambda A: la.pinvh(A, rtol=CUT, lower=lower), (A,), order=2)
    # hermitian=True in pinv: NumPy's eigh path (lower triangle)
    if lower:
        np.testing.assert_allclose(la.pinv(A, rtol=CUT, hermitian=True),
                                   np.linalg.pinv(A, rtol=CUT, hermitian=True), atol=1e-12)


def test_pinvh_errors():
    with pytest.raises(np.linalg.LinAlgError, match="pinvh"):
        la.pinvh(np.ones((3, 4)))
    with pytest.raises(ValueError, match="positive"):
        la.pinvh(np.eye(3), rtol=-1.0)


def test_pinv_batched_mixed_rank():
    rng = np.random.default_rng(12)
    A = M.random_tall(rng, 4, 3, (3,), np.float64, cond=3.0)
    A[2] = low_rank(rng, 4, 3, 1)
    Y, r = la.pinv(A, rtol=CUT, return_rank=True)
    np.testing.assert_array_equal(r, [3, 3, 1])
    np.testing.assert_allclose(Y, np.linalg.pinv(A, rtol=CUT), atol=1e-12)
    check_grads(lambda A: la.pinv(A, rtol=CUT), (A,), order=1)


@pytest.mark.peers
def test_peers_agree_at_constant_rank():
    torch = pytest.importorskip("torch")
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    jnp = jax.numpy
    rng = np.random.default_rng(13)
    A = low_rank(rng, 5, 4, 2)
    b = rng.standard_normal(5)
    W = rng.standard_normal((4, 5))
    w = rng.standard_normal(4)
    ours_x = lad.grad(lambda A: lad.sum(la.lstsq(A, b, CUT)[0] * w))(A)
    ours_p = lad.grad(lambda A: lad.sum(la.pinv(A, rtol=CUT) * W))(A)
    jx = np.asarray(jax.grad(lambda A: jnp.sum(jnp.linalg.lstsq(A, b, rcond=CUT)[0] * w))(A))
    jp = np.asarray(jax.grad(lambda A: jnp.sum(jnp.linalg.pinv(A, rtol=CUT) * W))(A))
    At = torch.tensor(A, requires_grad=True)
    torch.sum(torch.linalg.pinv(At, rtol=CUT) * torch.tensor(W)).backward()
    np.testing.assert_allclose(jx, ours_x, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(jp, ours_p, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(At.grad.numpy(), ours_p, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("a_shape, b_shape", [((0, 3), (0,)), ((3, 0), (3,)), ((3, 0), (3, 2)),
                                              ((0, 0), (0, 2)), ((2, 3, 0), (3, 2))])
def test_lstsq_empty_matrices_follow_numpy(a_shape, b_shape):
    """x = 0 with n rows, rank 0, s empty; residues ‖b‖² when m > n (NumPy's shapes), and
    their gradient in b is 2b (summed over a stack b is broadcast to)."""
    rng = np.random.default_rng(0)
    A, b = np.zeros(a_shape), rng.standard_normal(b_shape)
    x, res, rank, s = la.lstsq(A, b)
    if len(a_shape) == 2:
        want = np.linalg.lstsq(A, b, rcond=None)
        assert x.shape == want[0].shape and res.shape == want[1].shape and s.shape == want[3].shape
        np.testing.assert_allclose(res, want[1])
        assert rank == 0 and isinstance(rank, int)
    else:
        assert x.shape == (2, 0, 2) and res.shape == (2, 2) and rank.shape == (2,)
    if res.size:
        g = lad.grad(lambda b: lad.ops.sum(la.lstsq(A, b)[1]))(b)
        copies = a_shape[0] if len(a_shape) == 3 else 1     # b broadcast over the stack
        np.testing.assert_allclose(g, 2 * copies * b)


def test_pinv_of_a_tall_matrix_forms_nothing_of_order_m():
    """pinv(A) was A⁺ applied to I_m: a 100000 × 3 matrix asked for 75 GB, 10000 × 5 took
    3 GB and 3,100 times NumPy's time for value and gradient.  A tall A applies A⁺ᴴ to
    I_n instead; checked against the wide transpose and at second order."""
    import tracemalloc
    rng = np.random.default_rng(8)
    A = rng.standard_normal((20000, 3))
    W = rng.standard_normal((3, 20000))
    vg = lad.value_and_grad(lambda a: lad.sum(W * la.pinv(a)))
    tracemalloc.start()
    v, g = vg(A)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 40 * A.nbytes                      # order m·n, never m²
    np.testing.assert_allclose(la.pinv(A), np.linalg.pinv(A), rtol=1e-10, atol=1e-14)
    gw = lad.grad(lambda b: lad.sum(W.T * la.pinv(b)))(A.T.copy())
    np.testing.assert_allclose(g, gw.T, rtol=1e-10, atol=1e-14)
    B = rng.standard_normal((2, 7, 3)) + 1j * rng.standard_normal((2, 7, 3))
    check_grads(la.pinv, (B,), order=2)


# -- Hessians at rank deficiency: those of the truncated function SciPy computes ------------

def _second_difference(fv, A, V, h=1e-4):
    return (fv(A + h * V) - 2 * fv(A) + fv(A - h * V)) / h ** 2


@pytest.mark.parametrize("cplx", [False, True])
@pytest.mark.parametrize("which", ["pinv", "pinv-adjoint", "lstsq", "pinvh", "null_space"])
def test_hessian_at_rank_deficiency_is_the_truncated_functions(which, cplx):
    """At a rank-deficient matrix the truncated pseudo-inverse is smooth (the kept and
    dropped singular values are apart), and its Hessian includes how the dropped part
    A − A A⁺ A turns the kept singular subspaces.  The constant-rank formula alone missed
    that term: hvp was −0.79 against a second difference of −2.03 for pinv (lstsq.md §8).
    Compared with second differences of SciPy's own function, an independent reference."""
    rng = np.random.default_rng(21 + cplx)

    def z(*shape):
        return rng.standard_normal(shape) + (1j * rng.standard_normal(shape) if cplx else 0)

    if which == "pinvh":
        X = z(5, 2)
        A = X @ X.conj().T
        V = z(5, 5)
        V = V + V.conj().T
        W = z(5, 5)
        f = lambda A: lad.real(lad.sum(W * la.pinvh(A, rtol=1e-3)))
        fv = lambda A: np.real(np.sum(W * scipy.linalg.pinvh(A, rtol=1e-3)))
    else:
        A, V = z(4, 2) @ z(2, 5), z(4, 5)
        if which == "pinv":
            W = z(5, 4)
            f = lambda A: lad.real(lad.sum(W * la.pinv(A, rtol=1e-3)))
            fv = lambda A: np.real(np.sum(W * np.linalg.pinv(A, rtol=1e-3)))
        elif which == "pinv-adjoint":
            W = z(4, 5)
            f = lambda A: lad.real(lad.sum(W * la.pinv(lad.mH(A), rtol=1e-3)))
            fv = lambda A: np.real(np.sum(W * np.linalg.pinv(A.conj().T, rtol=1e-3)))
        elif which == "lstsq":
            b, W = z(4, 2), z(5, 2)
            f = lambda A: lad.real(lad.sum(W * la.lstsq(A, b, cond=1e-3)[0]))
            fv = lambda A: np.real(np.sum(W * scipy.linalg.lstsq(A, b, cond=1e-3)[0]))
        else:
            B = z(3, 5)
            f = lambda A: lad.sum(lad.abs(B @ la.null_space(A, rcond=1e-3)) ** 2)
            fv = lambda A: np.sum(np.abs(B @ scipy.linalg.null_space(A, rcond=1e-3)) ** 2)
    Hv = lad.hvp(f, (A,), (V,))
    got = float(np.real(np.vdot(Hv, V)))          # <V, H V> in the real inner product
    want = _second_difference(fv, A, V)
    assert abs(got - want) <= 1e-5 * max(1.0, abs(want)), (got, want)
