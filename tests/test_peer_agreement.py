"""Gradients agree with PyTorch's and JAX's (and autograd's, where only it has the rule).

The factorization rules (inv, det, slogdet with its complex sign, cholesky, logdet,
cho_solve, solve_triangular with every trans and a unit diagonal, lu_factor, lu_solve,
lu, qr in its unique modes), through every differentiable argument; spectral rules on
random inputs with distinct spectra; expm, expm_frechet (in A and E,
vs JAX), pinv (full and constant rank), polar, the matrix norms, cond (stacks of order 24
included), matrix_power and multi_dot; sqrtm and
solve_sylvester against HIPS autograd (the only peer with their gradients).

The peers are optional (the ``bench`` extra; torch==2.13.0 CPU): this module is
skipped where they are not installed, as in CI.  Run it with them:

    taskset -c 0 .venv-bench/bin/python -m pytest -q tests/test_peer_agreement.py

(JAX can deadlock on batched linear algebra on two cores unless pinned to one.)
Inputs are batched and real or complex; losses are invariant under the
decomposition's free phases, so every library's gradient is defined.  For
eigh the peers see the Hermitian matrix built from the lower triangle, and
their full-matrix gradient G is mapped to the triangle's as tril(G + Gᴴ) −
Re diag(G).  Complex gradients are compared as ∂L/∂Re + i ∂L/∂Im (PyTorch's
and linalgad's convention; JAX returns the conjugate).
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
jax = pytest.importorskip("jax")

import jax.numpy as jnp  # noqa: E402

import linalgad as lad  # noqa: E402
from linalgad import linalg as la  # noqa: E402
from linalgad.testing import matrices as M  # noqa: E402

jax.config.update("jax_enable_x64", True)
torch.set_num_threads(1)
pytestmark = pytest.mark.peers

RTOL = 1e-9


def mH(x):
    return np.conj(np.swapaxes(x, -1, -2))


def lower_cotangent(G):
    both = np.tril(G + mH(G))
    return both - np.diagonal(G, 0, -2, -1).real[..., None] * np.eye(G.shape[-1])


def hermitian_from_lower(T):
    L = np.tril(T, -1)
    return L + mH(L) + np.diagonal(T, 0, -2, -1).real[..., None] * np.eye(T.shape[-1])


def rel(a, b):
    return np.linalg.norm(a - b) / np.linalg.norm(b)


def torch_grads(loss, *args):
    ts = [torch.tensor(a, requires_grad=True) for a in args]
    loss(*ts).backward()
    return [t.grad.numpy() for t in ts]


def jax_grads(loss, *args):
    gs = jax.grad(loss, argnums=tuple(range(len(args))))(*(jnp.asarray(a) for a in args))
    return [np.conj(np.asarray(g)) for g in gs]


def torch_grad(loss, A):
    return torch_grads(loss, A)[0]


def jax_grad(loss, A):
    return jax_grads(loss, A)[0]


def _const(xp, x):
    """A NumPy constant as the library's array (linalgad takes NumPy arrays as they are)."""
    return x if xp is lad else xp.asarray(x)


def _jax_batched(fun, batch):
    """fun vmapped over the leading dimensions (for JAX functions that take one matrix)."""
    for _ in batch:
        fun = jax.vmap(fun)
    return fun


CASES = [(np.float64, ()), (np.float64, (2,)), (np.complex128, ()), (np.complex128, (2, 1))]


@pytest.mark.parametrize("dtype,batch", CASES)
def test_eigh_agrees(dtype, batch):
    rng = np.random.default_rng(0)
    n = 5
    T = M.random_symmetric(rng, n, batch, dtype)
    T = T + np.triu(M.random_general(rng, n, batch, dtype), 1)   # unread upper triangle
    c, g, W = rng.standard_normal(n), np.linspace(1, 2, n), rng.standard_normal((n, n))

    def ours(A):
        w, V = la.eigh(A)
        return lad.sum(c * lad.sin(w)) + lad.sum(W * lad.real(lad.matmul(V * g, lad.mH(V))))

    def theirs(xp, eigh, A):
        w, V = eigh(A)
        P = (V * xp.asarray(g)) @ xp.conj(xp.swapaxes(V, -1, -2))
        return xp.sum(xp.asarray(c) * xp.sin(w)) + xp.sum(xp.asarray(W) * xp.real(P))

    got = lad.grad(ours)(T)
    H = hermitian_from_lower(T)
    t = lower_cotangent(torch_grad(lambda A: theirs(torch, torch.linalg.eigh, A), H))
    j = lower_cotangent(jax_grad(lambda A: theirs(jnp, jnp.linalg.eigh, A), H))
    assert rel(got, t) < RTOL and rel(got, j) < RTOL


@pytest.mark.parametrize("dtype,batch", CASES)
@pytest.mark.parametrize("shape", [(5, 5), (6, 4), (3, 5)])
def test_svd_agrees(dtype, batch, shape):
    rng = np.random.default_rng(1)
    m, n = shape
    k = min(m, n)
    A = np.ascontiguousarray(M.random_general(rng, max(m, n), batch, dtype)[..., :m, :n])
    c, g = rng.standard_normal(k), np.linspace(1, 2, k)
    W1, W2 = rng.standard_normal((m, n)), rng.standard_normal((m, m))

    def ours(A):
        U, s, Vh = la.svd(A, full_matrices=False)
        return (lad.sum(c * s ** 2) + lad.sum(W1 * lad.real(lad.matmul(U * g, Vh)))
                + lad.sum(W2 * lad.abs(lad.matmul(U * g, lad.mH(U)))))

    def theirs(xp, svd, A):
        U, s, Vh = svd(A)
        return (xp.sum(xp.asarray(c) * s ** 2)
                + xp.sum(xp.asarray(W1) * xp.real((U * xp.asarray(g)) @ Vh))
                + xp.sum(xp.asarray(W2) * xp.abs((U * xp.asarray(g))
                                                  @ xp.conj(xp.swapaxes(U, -1, -2)))))

    got = lad.grad(ours)(A)
    t = torch_grad(lambda A: theirs(torch, lambda X: torch.linalg.svd(X, full_matrices=False),
                                    A), A)
    j = jax_grad(lambda A: theirs(jnp, lambda X: jnp.linalg.svd(X, full_matrices=False), A), A)
    assert rel(got, t) < RTOL and rel(got, j) < RTOL


@pytest.mark.parametrize("dtype,batch", CASES)
def test_eig_agrees(dtype, batch):
    """PyTorch's eig, and JAX's lax.linalg.eig with enable_eigvec_derivs (jnp.linalg.eig has
    no eigenvector derivative)."""
    rng = np.random.default_rng(2)
    n = 4
    A = M.random_general(rng, n, batch, dtype)
    c, W = rng.standard_normal(n), rng.standard_normal((n, n))

    def ours(A):
        w, V = la.eig(A)
        return lad.sum(c * lad.real(w)) + lad.sum(c * lad.imag(w)) + \
            lad.sum(W * lad.abs(V) ** 2)

    def theirs(A):
        w, V = torch.linalg.eig(A)
        cc = torch.tensor(c)
        return (cc * w.real).sum() + (cc * w.imag).sum() + (torch.tensor(W) * V.abs() ** 2).sum()

    got = lad.grad(ours)(A)
    assert rel(got, torch_grad(theirs, A)) < 1e-8

    def jax_loss(A):      # jnp.linalg.eig refuses eigenvector derivatives; lax's eig has them
        w, V = _jax_batched(lambda X: jax.lax.linalg.eig(
            X, compute_left_eigenvectors=False, enable_eigvec_derivs=True), batch)(A)
        return (jnp.sum(c * w.real) + jnp.sum(c * w.imag) + jnp.sum(W * jnp.abs(V) ** 2))

    assert rel(got, jax_grad(jax_loss, A)) < 1e-8


@pytest.mark.parametrize("dtype,batch", CASES)
def test_values_only_agree(dtype, batch):
    rng = np.random.default_rng(3)
    n = 4
    A = M.random_general(rng, n, batch, dtype)
    c = rng.standard_normal(n)

    got = lad.grad(lambda A: lad.sum(c * la.svdvals(A)) + lad.sum(c * lad.real(la.eigvals(A))))(A)
    want = torch_grad(lambda A: (torch.tensor(c) * torch.linalg.svdvals(A)).sum()
                      + (torch.tensor(c) * torch.linalg.eigvals(A).real).sum(), A)
    assert rel(got, want) < 1e-8
    j = jax_grad(lambda A: jnp.sum(jnp.asarray(c) * jnp.linalg.svd(A, compute_uv=False)), A)
    assert rel(lad.grad(lambda A: lad.sum(c * la.svdvals(A)))(A), j) < RTOL


# -- issue 5: matrix functions, pseudo-inverse, polar, norms ---------------------------------

def _weights(rng, shape, dtype):
    W = rng.standard_normal(shape)
    if np.dtype(dtype).kind == "c":
        W = W + 1j * rng.standard_normal(shape)
    return W


def _re_inner(xp, W, X):
    """Re sum(conj(W) * X): a real loss touching every entry of X."""
    W = np.conj(W) if xp is lad else xp.conj(xp.asarray(W))
    return xp.sum(xp.real(W * X))


@pytest.mark.parametrize("dtype,batch", CASES)
def test_expm_agrees(dtype, batch):
    rng = np.random.default_rng(4)
    n = 5
    A = 0.5 * M.random_general(rng, n, batch, dtype)
    W = _weights(rng, (n, n), dtype)
    got = lad.grad(lambda A: _re_inner(lad, W, la.expm(A)))(A)
    t = torch_grad(lambda A: _re_inner(torch, W, torch.linalg.matrix_exp(A)), A)
    j = jax_grad(lambda A: _re_inner(jnp, W, jax.scipy.linalg.expm(A)), A)
    assert rel(got, t) < 1e-8 and rel(got, j) < 1e-8


@pytest.mark.parametrize("dtype", [np.float64, np.complex128])
@pytest.mark.parametrize("scale", [0.3, 4.0])          # Padé without / with squarings
def test_expm_frechet_agrees_with_jax_in_both_arguments(dtype, scale):
    """JAX differentiates its own Fréchet algorithm; the A-gradient is a second Fréchet
    derivative, which linalgad computes through its Padé steps."""
    rng = np.random.default_rng(9)
    n = 5
    A = scale * M.random_general(rng, n, (), dtype) / np.sqrt(n)
    E = M.random_general(rng, n, (), dtype)
    W = _weights(rng, (n, n), dtype)
    gA, gE = lad.grad(lambda a, e: _re_inner(
        lad, W, la.expm_frechet(a, e, compute_expm=False)), argnums=(0, 1))(A, E)
    jA, jE = jax.grad(lambda a, e: _re_inner(
        jnp, W, jax.scipy.linalg.expm_frechet(a, e, compute_expm=False)),
        argnums=(0, 1))(jnp.asarray(A), jnp.asarray(E))
    assert rel(gA, np.conj(np.asarray(jA))) < 1e-8 and rel(gE, np.conj(np.asarray(jE))) < 1e-8


@pytest.mark.parametrize("dtype,batch", CASES)
@pytest.mark.parametrize("shape,rank", [((5, 3), None), ((3, 5), None), ((5, 4), 2)])
def test_pinv_agrees(dtype, batch, shape, rank):
    """Full rank, and rank 2 with the cutoff held (rtol = 1e-6: the rank stays 2 under the
    perturbation), where every library's derivative is the constant-rank one."""
    rng = np.random.default_rng(5)
    m, n = shape
    if rank is None:
        A = np.ascontiguousarray(M.random_general(rng, max(m, n), batch, dtype)[..., :m, :n])
    else:
        A = M.random_rank_deficient(rng, m, n, rank, batch, dtype, cond=3.0)
    W = _weights(rng, (n, m), dtype)
    got = lad.grad(lambda A: _re_inner(lad, W, la.pinv(A, rtol=1e-6)))(A)
    t = torch_grad(lambda A: _re_inner(torch, W, torch.linalg.pinv(A, rtol=1e-6)),
                   A)
    j = jax_grad(lambda A: _re_inner(jnp, W, jnp.linalg.pinv(A, rtol=1e-6)), A)
    assert rel(got, t) < 1e-8 and rel(got, j) < 1e-8


@pytest.mark.parametrize("dtype,batch", CASES)
@pytest.mark.parametrize("side", ["right", "left"])
def test_polar_agrees_with_jax(dtype, batch, side):
    """PyTorch has no polar; JAX's needs method='svd' (its default qdwh has no VJP)."""
    rng = np.random.default_rng(6)
    n = 4
    A = M.random_general(rng, n, batch, dtype)
    W1, W2 = _weights(rng, (n, n), dtype), _weights(rng, (n, n), dtype)

    def loss(xp, polar, A):
        u, p = polar(A)
        return _re_inner(xp, W1, u) + _re_inner(xp, W2, p)

    got = lad.grad(lambda A: loss(lad, lambda X: la.polar(X, side=side), A))(A)
    if batch:
        pol = jax.vmap(lambda X: jax.scipy.linalg.polar(X, side=side, method="svd"))
        for _ in batch[1:]:
            pol = jax.vmap(pol)
    else:
        def pol(X):
            return jax.scipy.linalg.polar(X, side=side, method="svd")
    j = jax_grad(lambda A: loss(jnp, pol, A), A)
    assert rel(got, j) < 1e-8


@pytest.mark.parametrize("dtype,batch", CASES)
@pytest.mark.parametrize("ord", ["fro", "nuc", 2, -2, 1, -1, np.inf, -np.inf])
def test_matrix_norms_agree(dtype, batch, ord):
    rng = np.random.default_rng(7)
    A = M.random_general(rng, 4, batch, dtype)
    c = rng.standard_normal(batch) if batch else 1.0
    got = lad.grad(lambda A: lad.sum(c * la.norm(A, ord, axis=(-2, -1))))(A)
    t = torch_grad(lambda A: (torch.tensor(c) * torch.linalg.matrix_norm(A, ord)).sum(), A)
    j = jax_grad(lambda A: jnp.sum(c * jnp.linalg.norm(A, ord, axis=(-2, -1))), A)
    assert rel(got, t) < 1e-8 and rel(got, j) < 1e-8


@pytest.mark.parametrize("dtype,batch", CASES)
def test_cond_matrix_power_multi_dot_agree(dtype, batch):
    rng = np.random.default_rng(8)
    n = 4
    A = M.random_general(rng, n, batch, dtype)
    W = _weights(rng, (n, n), dtype)
    B, C = M.random_general(rng, n, (), dtype), M.random_general(rng, n, (), dtype)

    def loss(xp, cond, power, A):
        return (xp.sum(cond(A)) + _re_inner(xp, W, power(A, 3)) + _re_inner(xp, W, power(A, -2)))

    got = lad.grad(lambda A: loss(lad, la.cond, la.matrix_power, A))(A)
    t = torch_grad(lambda A: loss(torch, torch.linalg.cond, torch.linalg.matrix_power, A), A)
    j = jax_grad(lambda A: loss(jnp, jnp.linalg.cond, jnp.linalg.matrix_power, A), A)
    assert rel(got, t) < 1e-8 and rel(got, j) < 1e-8
    if not batch:
        got = lad.grad(lambda A: _re_inner(lad, W, la.multi_dot([A, B, C])))(A)
        t = torch_grad(lambda A: _re_inner(torch, W, torch.linalg.multi_dot(
            [A, torch.tensor(B), torch.tensor(C)])), A)
        assert rel(got, t) < 1e-10


@pytest.mark.parametrize("dtype", [np.float64, np.complex128])
def test_extreme_singular_values_of_stacks_agree(dtype):
    """norm 2, norm −2 and cond of a stack of 40 matrices of order 24: linalgad's inverse
    iteration after the values (``_lapack_extreme.extreme_stack``) against the peers'
    SVD-based gradients."""
    from linalgad import backend
    rng = np.random.default_rng(12)
    n, batch = 24, (40,)
    assert n >= backend.EXTREME_STACK_BOTTOM_N and batch[0] >= backend.EXTREME_STACK_BATCH
    A = M.random_general(rng, n, batch, dtype)
    c = rng.standard_normal(batch)
    for ord in (2, -2):
        got = lad.grad(lambda A: lad.sum(c * la.norm(A, ord, axis=(-2, -1))))(A)
        t = torch_grad(lambda A: (torch.tensor(c) * torch.linalg.matrix_norm(A, ord)).sum(),
                       A)
        j = jax_grad(lambda A: jnp.sum(c * jnp.linalg.norm(A, ord, axis=(-2, -1))), A)
        assert rel(got, t) < 1e-9 and rel(got, j) < 1e-9
    got = lad.grad(lambda A: lad.sum(c * la.cond(A)))(A)
    t = torch_grad(lambda A: (torch.tensor(c) * torch.linalg.cond(A)).sum(), A)
    j = jax_grad(lambda A: jnp.sum(c * jnp.linalg.cond(A)), A)
    assert rel(got, t) < 1e-9 and rel(got, j) < 1e-9


@pytest.mark.parametrize("dtype", [np.float64])
def test_sqrtm_and_sylvester_agree_with_autograd(dtype):
    """autograd is the only peer with gradients for sqrtm and solve_sylvester (real only)."""
    ag = pytest.importorskip("autograd")
    asl = pytest.importorskip("autograd.scipy.linalg")
    rng = np.random.default_rng(9)
    n = 4
    A = M.random_spd(rng, n, (), dtype) + 0.1 * M.random_general(rng, n, (), dtype)
    B = M.random_spd(rng, n, (), dtype)
    Q = M.random_general(rng, n, (), dtype)
    W = rng.standard_normal((n, n))
    got = lad.grad(lambda A: lad.sum(W * la.sqrtm(A)))(A)
    want = ag.grad(lambda A: ag.numpy.sum(W * asl.sqrtm(A)))(A)
    assert rel(got, want) < 1e-8
    got = lad.grad(lambda A, B, Q: lad.sum(W * la.solve_sylvester(A, B, Q)), argnums=(0, 1, 2))(
        A, B, Q)
    want = ag.grad(lambda A, B, Q: ag.numpy.sum(W * asl.solve_sylvester(A, B, Q)), argnum=(0, 1, 2))(
        A, B, Q)
    for g, w in zip(got, want):
        assert rel(g, w) < 1e-8


@pytest.mark.parametrize("dtype", [np.float64, np.complex128])
@pytest.mark.parametrize("shape", [(5, 3), (4, 4), (3, 5)])
def test_pivoted_qr_agrees_with_jax(dtype, shape):
    """JAX's qr(pivoting=True) is differentiable too (PyTorch has no pivoted QR): the same
    pivots, and the same gradient of a loss on Q and R (columns of distinct norms)."""
    rng = np.random.default_rng(12)
    m, n = shape
    A = (rng.standard_normal(shape) * 2.0 ** -np.arange(n))[:, rng.permutation(n)]
    if np.dtype(dtype).kind == "c":
        A = A + 0.1j * rng.standard_normal(shape)
    k = min(m, n)
    WQ, WR = _weights(rng, (m, k), dtype), _weights(rng, (k, n), dtype)

    def loss(xp, Q, R):
        return _re_inner(xp, WQ, Q) + _re_inner(xp, WR, R)

    Q, R, P = la.qr(A, pivoting=True)
    _, _, Pj = jax.scipy.linalg.qr(jnp.asarray(A), mode="economic", pivoting=True)
    np.testing.assert_array_equal(P, np.asarray(Pj))
    got = lad.grad(lambda A: loss(lad, *la.qr(A, pivoting=True)[:2]))(A)
    j = jax_grad(lambda A: loss(jnp, *jax.scipy.linalg.qr(A, mode="economic",
                                                           pivoting=True)[:2]), A)
    if m >= n:
        assert rel(got, j) < RTOL
        return
    # wide: JAX 0.10.2's gradient is wrong in the columns past the first m pivots (qr.md,
    # section 8); linalgad's is checked against central differences instead
    h = 1e-6
    fd = np.zeros_like(A)
    for idx in np.ndindex(A.shape):
        for unit in ((1, 1j) if np.iscomplexobj(A) else (1,)):
            E = np.zeros_like(A)
            E[idx] = unit * h
            fp = float(loss(lad, *la.qr(A + E, pivoting=True)[:2]))
            fm = float(loss(lad, *la.qr(A - E, pivoting=True)[:2]))
            fd[idx] += unit * (fp - fm) / (2 * h)
    assert rel(got, fd) < 1e-7


# -- issue 3: factorizations -------------------------------------------------------------------
# Every library's gradient of the same real loss, batched and complex.  Where a rule reads one
# triangle (cholesky, logdet, cho_solve's factor, solve_triangular, lu_solve's packed factors),
# the peers either symmetrize (JAX's cholesky) or leave the other triangle's gradient in place
# (PyTorch's cholesky_solve): they are given the matrix the rule sees and their gradient is
# read on the triangle it reads (lower_cotangent for a Hermitian input, tril/triu otherwise).

@pytest.mark.parametrize("dtype,batch", CASES)
def test_inv_det_slogdet_agree(dtype, batch):
    """inv, det and slogdet (the complex sign included: a loss on Re and Im of it)."""
    rng = np.random.default_rng(20)
    n = 4
    A = M.random_general(rng, n, batch, dtype)
    W = _weights(rng, (n, n), dtype)
    w1, w2 = _weights(rng, batch, dtype), rng.standard_normal(batch)

    def loss(xp, inv, det, slogdet, A):
        sign, logabs = slogdet(A)
        return (_re_inner(xp, W, inv(A)) + _re_inner(xp, w1, det(A))
                + _re_inner(xp, w1, sign) + xp.sum(_const(xp, w2) * logabs))

    got = lad.grad(lambda A: loss(lad, la.inv, la.det, la.slogdet, A))(A)
    t = torch_grad(lambda A: loss(torch, torch.linalg.inv, torch.linalg.det,
                                  torch.linalg.slogdet, A), A)
    j = jax_grad(lambda A: loss(jnp, jnp.linalg.inv, jnp.linalg.det, jnp.linalg.slogdet, A), A)
    assert rel(got, t) < RTOL and rel(got, j) < RTOL


@pytest.mark.parametrize("dtype,batch", CASES)
def test_cholesky_and_logdet_agree(dtype, batch):
    """The lower triangle is read: the peers get the Hermitian matrix it defines, and their
    (Hermitian) gradient is mapped to the triangle's."""
    rng = np.random.default_rng(21)
    n = 5
    T = M.random_spd(rng, n, batch, dtype, cond=5.0)
    T = T + np.triu(M.random_general(rng, n, batch, dtype), 1)     # unread upper triangle
    H = hermitian_from_lower(T)
    W, c = _weights(rng, (n, n), dtype), rng.standard_normal(batch)

    got = lad.grad(lambda A: _re_inner(lad, W, la.cholesky(A))
                   + lad.sum(c * la.logdet(A)))(T)

    def theirs(xp, cholesky, slogdet, A):
        return _re_inner(xp, W, cholesky(A)) + xp.sum(_const(xp, c) * slogdet(A)[1])

    t = lower_cotangent(torch_grad(lambda A: theirs(torch, torch.linalg.cholesky,
                                                    torch.linalg.slogdet, A), H))
    j = lower_cotangent(jax_grad(lambda A: theirs(jnp, jnp.linalg.cholesky,
                                                  jnp.linalg.slogdet, A), H))
    assert rel(got, t) < RTOL and rel(got, j) < RTOL


@pytest.mark.parametrize("dtype,batch", CASES)
@pytest.mark.parametrize("lower", [True, False])
def test_cho_solve_agrees(dtype, batch, lower):
    """Gradients through the factor (on the triangle read) and the right-hand side."""
    rng = np.random.default_rng(22)
    n, k = 4, 3
    A = M.random_spd(rng, n, batch, dtype, cond=5.0)
    L = np.linalg.cholesky(A)
    C = L if lower else np.ascontiguousarray(mH(L))
    b = M.random_rhs(rng, n, k, batch, dtype)
    W = _weights(rng, (n, k), dtype)
    keep = np.tril if lower else np.triu

    gC, gb = lad.grad(lambda C, b: _re_inner(lad, W, la.cho_solve((C, lower), b)),
                      argnums=(0, 1))(C, b)
    tC, tb = torch_grads(lambda C, b: _re_inner(
        torch, W, torch.cholesky_solve(b, C, upper=not lower)), C, b)
    jC, jb = jax_grads(lambda C, b: _re_inner(
        jnp, W, jax.scipy.linalg.cho_solve((C, lower), b)), C, b)
    assert rel(gC, keep(tC)) < RTOL and rel(gb, tb) < RTOL
    assert rel(gC, keep(jC)) < RTOL and rel(gb, jb) < RTOL


@pytest.mark.parametrize("dtype,batch", CASES)
@pytest.mark.parametrize("lower,trans,unit", [(True, 0, False), (False, 1, False),
                                              (True, 2, False), (False, 0, True)])
def test_solve_triangular_agrees(dtype, batch, lower, trans, unit):
    """Only the triangle read (strictly, with a unit diagonal) gets gradient; PyTorch has no
    ``trans``, so it is given op(T) with the opposite triangle."""
    rng = np.random.default_rng(23)
    n, k = 5, 2
    T = M.random_triangular(rng, n, batch, dtype, lower=lower, unit_diagonal=unit)
    T = T + (np.triu if lower else np.tril)(M.random_general(rng, n, batch, dtype), 1 if lower
                                             else -1)     # the unread triangle: ignored
    b = M.random_rhs(rng, n, k, batch, dtype)
    W = _weights(rng, (n, k), dtype)
    read = (lambda X: np.tril(X, -1 if unit else 0)) if lower else \
        (lambda X: np.triu(X, 1 if unit else 0))

    gT, gb = lad.grad(lambda T, b: _re_inner(lad, W, la.solve_triangular(
        T, b, trans=trans, lower=lower, unit_diagonal=unit)), argnums=(0, 1))(T, b)

    def op(xp, T):
        if trans == 0:
            return T
        Tt = xp.swapaxes(T, -1, -2) if xp is jnp else T.mT
        return xp.conj(Tt) if trans == 2 else Tt

    upper_op = (not lower) if trans == 0 else lower
    tT, tb = torch_grads(lambda T, b: _re_inner(torch, W, torch.linalg.solve_triangular(
        op(torch, T), b, upper=upper_op, unitriangular=unit)), T, b)
    jT, jb = jax_grads(lambda T, b: _re_inner(jnp, W, jax.scipy.linalg.solve_triangular(
        T, b, trans=trans, lower=lower, unit_diagonal=unit)), T, b)
    assert rel(gT, read(tT)) < RTOL and rel(gb, tb) < RTOL
    assert rel(gT, read(jT)) < RTOL and rel(gb, jb) < RTOL


@pytest.mark.parametrize("dtype,batch", CASES)
def test_lu_factor_and_lu_solve_agree(dtype, batch):
    """Same pivots (partial pivoting, LAPACK getrf in every library); gradients through the
    packed factors and, for lu_solve, the right-hand side, for op = none, ᵀ and ᴴ."""
    rng = np.random.default_rng(24)
    n, k = 4, 2
    A = M.random_general(rng, n, batch, dtype)
    W = _weights(rng, (n, n), dtype)
    lu, piv = la.lu_factor(A)
    tlu, tpiv = torch.linalg.lu_factor(torch.tensor(A))
    np.testing.assert_array_equal(piv + 1, tpiv.numpy())

    got = lad.grad(lambda A: _re_inner(lad, W, la.lu_factor(A)[0]))(A)
    t = torch_grad(lambda A: _re_inner(torch, W, torch.linalg.lu_factor(A)[0]), A)
    j = jax_grad(lambda A: _re_inner(jnp, W, _jax_batched(
        lambda X: jax.scipy.linalg.lu_factor(X)[0], batch)(A)), A)
    assert rel(got, t) < RTOL and rel(got, j) < RTOL

    LU = np.asarray(lu)
    b = M.random_rhs(rng, n, k, batch, dtype)
    Wb = _weights(rng, (n, k), dtype)
    for trans in (0, 1, 2):
        gL, gb = lad.grad(lambda LU, b: _re_inner(lad, Wb, la.lu_solve((LU, piv), b,
                                                                       trans=trans)),
                          argnums=(0, 1))(LU, b)
        adjoint = trans != 0
        if trans == 1 and np.dtype(dtype).kind == "c":
            # PyTorch has op = none and ᴴ only: Aᵀ x = b is conj(Aᴴ conj(x) = conj(b))
            def t_solve(LU, b):
                return torch.conj(torch.linalg.lu_solve(LU, tpiv, torch.conj(b), adjoint=True))
        else:
            def t_solve(LU, b):
                return torch.linalg.lu_solve(LU, tpiv, b, adjoint=adjoint)
        tL, tb = torch_grads(lambda LU, b: _re_inner(torch, Wb, t_solve(LU, b)), LU, b)
        jL, jb = jax_grads(lambda LU, b: _re_inner(jnp, Wb, _jax_batched(
            lambda L_, p_, b_: jax.scipy.linalg.lu_solve((L_, p_), b_, trans=trans),
            batch)(LU, jnp.asarray(piv, dtype=jnp.int32), b)), LU, b)
        assert rel(gL, tL) < RTOL and rel(gb, tb) < RTOL, trans
        assert rel(gL, jL) < RTOL and rel(gb, jb) < RTOL, trans


@pytest.mark.parametrize("dtype,batch", CASES)
@pytest.mark.parametrize("shape", [(5, 5), (6, 4), (3, 5)])
def test_lu_agrees(dtype, batch, shape):
    """scipy.linalg.lu's (P, L, U), square, tall and wide: gradients through L and U."""
    rng = np.random.default_rng(25)
    m, n = shape
    A = np.ascontiguousarray(M.random_general(rng, max(m, n), batch, dtype)[..., :m, :n])
    k = min(m, n)
    WL, WU = _weights(rng, (m, k), dtype), _weights(rng, (k, n), dtype)

    def loss(xp, lu, A):
        P, L, U = lu(A)
        return _re_inner(xp, WL, L) + _re_inner(xp, WU, U)

    got = lad.grad(lambda A: loss(lad, la.lu, A))(A)
    t = torch_grad(lambda A: loss(torch, torch.linalg.lu, A), A)
    j = jax_grad(lambda A: loss(jnp, _jax_batched(jax.scipy.linalg.lu, batch), A), A)
    assert rel(got, t) < RTOL and rel(got, j) < RTOL


@pytest.mark.parametrize("dtype,batch", CASES)
@pytest.mark.parametrize("shape,mode", [((6, 4), "reduced"), ((5, 5), "reduced"),
                                        ((3, 5), "reduced"), ((6, 4), "r"),
                                        ((5, 5), "complete")])
def test_qr_agrees(dtype, batch, shape, mode):
    """Q and R (or R alone); 'complete' where it is unique (square)."""
    rng = np.random.default_rng(26)
    m, n = shape
    A = np.ascontiguousarray(M.random_general(rng, max(m, n), batch, dtype)[..., :m, :n])
    k = m if mode == "complete" else min(m, n)
    WQ, WR = _weights(rng, (m, k), dtype), _weights(rng, (k, n), dtype)

    def loss(xp, qr, A):
        if mode == "r":
            # PyTorch computes no gradient without Q (mode='r'): it gets R of 'reduced'
            R = qr(A, mode="reduced")[1] if xp is torch else qr(A, mode="r")
            return _re_inner(xp, WR, R)
        Q, R = qr(A, mode=mode)
        return _re_inner(xp, WQ, Q) + _re_inner(xp, WR, R)

    got = lad.grad(lambda A: loss(lad, la.qr, A))(A)
    t = torch_grad(lambda A: loss(torch, torch.linalg.qr, A), A)
    j = jax_grad(lambda A: loss(jnp, jnp.linalg.qr, A), A)
    assert rel(got, t) < RTOL and rel(got, j) < RTOL
