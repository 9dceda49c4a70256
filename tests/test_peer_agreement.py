"""Gradients agree with PyTorch's and JAX's (and autograd's, where only it has the rule).

Spectral rules on random inputs with distinct spectra; expm, expm_frechet (in A and E,
vs JAX), pinv (full and constant rank), polar, the matrix norms, cond, matrix_power and multi_dot; sqrtm and
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


def torch_grad(loss, A):
    t = torch.tensor(A, requires_grad=True)
    loss(t).backward()
    return t.grad.numpy()


def jax_grad(loss, A):
    return np.conj(np.asarray(jax.grad(loss)(jnp.asarray(A))))


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
def test_eig_agrees_with_torch(dtype, batch):
    """JAX's jnp.linalg.eig has no eigenvector derivative by default; PyTorch's is compared."""
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
