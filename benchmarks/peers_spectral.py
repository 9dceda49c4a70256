"""The peers for the spectral rules (issue 4): value and gradient of a gauge-invariant loss.

For every rule of bench_spectral.py, each peer's loss is written here in that peer's own
API, side by side, so that one can read what each library is asked to do:

    loss(A, c) -> scalar

`A` is the matrix the gradient is taken with respect to, `c` a dict of constants, the same
for every library:

    c    weights of the values, shape (..., n); complex for eig and eigvals
    g    weights of the vectors, shape (..., 1, n) (a row: broadcasts over the columns)
    W    weights of the matrix built from the vectors, shape (..., n, n)

The losses (every output is touched, and no loss depends on a choice the decomposition
leaves free: the sign or phase of a vector):

    eigh      sum(c * w) + sum(W * (V diag(g) Vᵀ))     (w, V) = eigh(A), A symmetric
    eigvalsh  sum(c * w)
    svd       sum(c * s) + sum(W * (U diag(g) Vh))     thin SVD, A square
    svdvals   sum(c * s)
    eig       Re sum(c * w) + sum(W * |V|²)           (w, V) = eig(A), A real general
    eigvals   Re sum(c * w)
    funmh     sum(W * e^A), A symmetric: no peer has a function of a symmetric matrix, so
              e^A = V diag(e^w) Vᵀ through each peer's eigh (what a user writes for any f)
    generalized_funm  sum(W * (U diag(tanh s) Vh)), thin SVD, A square: through each
              peer's svd (no peer has the generalized matrix function)

A peer that lacks a rule has a string instead of a function: the reason, shown under the
table. `make(peer, rule, A, consts)` returns (run, unpack) like peers_factorizations.py.

eig and eigvals are order dependent (c weighs the i-th eigenvalue, W the i-th column) and
LAPACK's geev orders the eigenvalues differently with and without eigenvectors, and MKL
(torch) differently from OpenBLAS (NumPy, JAX): `eigenvalue_probes(peer, A)` gives the
orders a peer may have used, so that its gradient is checked against the closed form in
its own order.

Import benchmarks/common.py before this module (it pins threads first).
"""

import numpy as np

import peers
from peers_factorizations import _autograd, _jax, _torch  # the generic value+grad closures

PEER_NAMES = peers.PEER_NAMES  # ("jax-jit", "jax-eager", "torch", "autograd")
RULE_NAMES = ("eigh", "eigvalsh", "svd", "svdvals", "eig", "eigvals", "funmh",
              "generalized_funm")


# --- JAX: jax.numpy.linalg (and jax.lax.linalg.eig for eigenvector derivatives) -----------
def _jax_losses():
    jax = peers.load_jax()
    jnp = jax.numpy

    def eigh(A, c):  # symmetrize_input=True (default): a symmetric gradient
        w, V = jnp.linalg.eigh(A)
        return jnp.sum(c["c"] * w) + jnp.sum(c["W"] * ((V * c["g"]) @ jnp.matrix_transpose(V)))

    def eigvalsh(A, c):
        return jnp.sum(c["c"] * jnp.linalg.eigvalsh(A))

    def svd(A, c):
        U, s, Vh = jnp.linalg.svd(A, full_matrices=False)
        return jnp.sum(c["c"] * s) + jnp.sum(c["W"] * ((U * c["g"]) @ Vh))

    def svdvals(A, c):
        return jnp.sum(c["c"] * jnp.linalg.svdvals(A))

    def eig(A, c):
        # jnp.linalg.eig raises NotImplementedError for eigenvector derivatives; the opt-in
        # is jax.lax.linalg.eig(..., enable_eigvec_derivs=True) (JAX issue 2748).
        w, V = jax.lax.linalg.eig(A, compute_left_eigenvectors=False,
                                  enable_eigvec_derivs=True)
        return (jnp.real(jnp.sum(c["c"] * w))
                + jnp.sum(c["W"] * (jnp.real(V) ** 2 + jnp.imag(V) ** 2)))

    def eigvals(A, c):
        return jnp.real(jnp.sum(c["c"] * jnp.linalg.eigvals(A)))

    def funmh(A, c):
        w, V = jnp.linalg.eigh(A)
        return jnp.sum(c["W"] * ((V * jnp.exp(w)[..., None, :]) @ jnp.matrix_transpose(V)))

    def generalized_funm(A, c):
        U, s, Vh = jnp.linalg.svd(A, full_matrices=False)
        return jnp.sum(c["W"] * ((U * jnp.tanh(s)[..., None, :]) @ Vh))

    return dict(eigh=eigh, eigvalsh=eigvalsh, svd=svd, svdvals=svdvals, eig=eig,
                eigvals=eigvals, funmh=funmh, generalized_funm=generalized_funm)


# --- PyTorch: torch.linalg ---------------------------------------------------------------
def _torch_losses():
    torch = peers.load_torch()

    def eigh(A, c):  # reads the lower triangle; the gradient is symmetric (not projected)
        w, V = torch.linalg.eigh(A)
        return torch.sum(c["c"] * w) + torch.sum(c["W"] * ((V * c["g"]) @ V.mT))

    def eigvalsh(A, c):
        return torch.sum(c["c"] * torch.linalg.eigvalsh(A))

    def svd(A, c):
        U, s, Vh = torch.linalg.svd(A, full_matrices=False)
        return torch.sum(c["c"] * s) + torch.sum(c["W"] * ((U * c["g"]) @ Vh))

    def svdvals(A, c):
        return torch.sum(c["c"] * torch.linalg.svdvals(A))

    def eig(A, c):
        w, V = torch.linalg.eig(A)
        return torch.real(torch.sum(c["c"] * w)) + torch.sum(c["W"] * (V.real ** 2 + V.imag ** 2))

    def eigvals(A, c):
        return torch.real(torch.sum(c["c"] * torch.linalg.eigvals(A)))

    def funmh(A, c):
        w, V = torch.linalg.eigh(A)
        return torch.sum(c["W"] * ((V * torch.exp(w)[..., None, :]) @ V.mT))

    def generalized_funm(A, c):
        U, s, Vh = torch.linalg.svd(A, full_matrices=False)
        return torch.sum(c["W"] * ((U * torch.tanh(s)[..., None, :]) @ Vh))

    return dict(eigh=eigh, eigvalsh=eigvalsh, svd=svd, svdvals=svdvals, eig=eig,
                eigvals=eigvals, funmh=funmh, generalized_funm=generalized_funm)


# --- HIPS autograd: autograd.numpy.linalg --------------------------------------------------
def _autograd_losses():
    import autograd.numpy as anp

    def eigh(A, c):  # reads the lower triangle; the gradient is projected onto it
        w, V = anp.linalg.eigh(A)
        VgVt = anp.matmul(V * c["g"], anp.swapaxes(V, -1, -2))
        return anp.sum(c["c"] * w) + anp.sum(c["W"] * VgVt)

    def eigvalsh(A, c):  # no eigvalsh rule: eigh's, with a zero eigenvector cotangent
        return anp.sum(c["c"] * anp.linalg.eigh(A)[0])

    def svd(A, c):
        U, s, Vh = anp.linalg.svd(A, full_matrices=False)
        return anp.sum(c["c"] * s) + anp.sum(c["W"] * anp.matmul(U * c["g"], Vh))

    def svdvals(A, c):  # its rule computes the SVD again, with vectors, in the backward pass
        return anp.sum(c["c"] * anp.linalg.svd(A, compute_uv=False))

    def eig(A, c):
        w, V = anp.linalg.eig(A)
        return (anp.real(anp.sum(c["c"] * w))
                + anp.sum(c["W"] * (anp.real(V) ** 2 + anp.imag(V) ** 2)))

    def eigvals(A, c):  # no eigvals rule: eig's, with a zero eigenvector cotangent
        return anp.real(anp.sum(c["c"] * anp.linalg.eig(A)[0]))

    def funmh(A, c):
        w, V = anp.linalg.eigh(A)
        return anp.sum(c["W"] * anp.matmul(V * anp.exp(w)[..., None, :], anp.swapaxes(V, -1, -2)))

    def generalized_funm(A, c):
        U, s, Vh = anp.linalg.svd(A, full_matrices=False)
        return anp.sum(c["W"] * anp.matmul(U * anp.tanh(s)[..., None, :], Vh))

    return dict(eigh=eigh, eigvalsh=eigvalsh, svd=svd, svdvals=svdvals, eig=eig,
                eigvals=eigvals, funmh=funmh, generalized_funm=generalized_funm)


_LOSSES = {"jax-jit": _jax_losses, "jax-eager": _jax_losses, "torch": _torch_losses,
           "autograd": _autograd_losses}

# Peers whose rule cannot run a stack: (peer, rule) -> why.  (None known.)
UNBATCHED_ONLY = {}


_TABLE = peers.LossTable(_LOSSES, UNBATCHED_ONLY)
losses, available, lacks = _TABLE.losses, _TABLE.available, _TABLE.lacks


def make(peer, rule, A, consts):
    """(run, unpack) for value+grad of `rule`'s loss w.r.t. A in `peer`: run() is one
    finished evaluation (what is timed), unpack(out) -> (value, [A_bar as NumPy])."""
    loss = losses(peer)[rule]
    if peer == "jax-jit":
        return _jax(loss, [A], consts, jit=True)
    if peer == "jax-eager":
        return _jax(loss, [A], consts, jit=False)
    if peer == "torch":
        return _torch(loss, [A], consts)
    return _autograd(loss, [A], consts)


def eigenvalue_probes(peer, A):
    """The eigenvalues of A in the orders `peer` may return them while differentiating
    (forward only, untimed): with eigenvectors (what a backward pass needs) and without."""
    if peer in ("jax-jit", "jax-eager"):
        jax = peers.load_jax()
        return [np.asarray(jax.lax.linalg.eig(A, compute_left_eigenvectors=False)[0]),
                np.asarray(jax.numpy.linalg.eigvals(A))]
    if peer == "torch":
        torch = peers.load_torch()
        At = torch.from_numpy(np.array(A))
        return [torch.linalg.eig(At)[0].numpy(), torch.linalg.eigvals(At).numpy()]
    return [np.linalg.eig(A)[0], np.linalg.eigvals(A)]  # autograd calls NumPy
