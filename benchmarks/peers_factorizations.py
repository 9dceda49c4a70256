"""The peers for the factorization rules (issue 3): value and gradient of a weighted-sum loss.

For every rule of bench_factorizations.py, each peer's loss is written here in that peer's
own API, side by side, so that one can read what each library is asked to do:

    loss(*diff, c) -> scalar

`diff` are the matrix inputs the gradient is taken with respect to (A; or the factor and
b), `c` a dict of constants: the weights (W, w, WQ, WR) and, for lu_solve, the pivots
(`piv` 0-based as SciPy and JAX use them, `piv1` 1-based as PyTorch uses them).

A peer that lacks a rule (or cannot run it on a stack) has a string instead of a function:
the reason, shown under the table. `make(peer, rule, diff, consts)` returns (run, unpack)
like peers.py: run() is one finished value+gradient evaluation (what is timed; inputs are
converted to the peer's arrays once, before), unpack(out) gives (value, [grads as NumPy]).

Import benchmarks/common.py before this module (it pins threads first).
"""

import numpy as np

import peers

PEER_NAMES = peers.PEER_NAMES  # ("jax-jit", "jax-eager", "torch", "autograd")


# --- JAX: jax.numpy.linalg and jax.scipy.linalg ----------------------------------------
def _jax_losses():
    jax = peers.load_jax()
    jnp = jax.numpy
    jsl = jax.scipy.linalg

    def inv(A, c):
        return jnp.sum(jnp.linalg.inv(A) * c["W"])

    def det(A, c):
        return jnp.sum(jnp.linalg.det(A) * c["w"])

    def slogdet(A, c):
        return jnp.sum(jnp.linalg.slogdet(A)[1] * c["w"])

    def cholesky(A, c):  # lower; symmetrize_input=True (default): symmetric gradient
        return jnp.sum(jnp.linalg.cholesky(A) * c["W"])

    def cho_solve(C, b, c):
        return jnp.sum(jsl.cho_solve((C, True), b) * c["W"])

    def solve_triangular(T, b, c):
        return jnp.sum(jsl.solve_triangular(T, b, lower=True) * c["W"])

    def lu_factor(A, c):
        return jnp.sum(jsl.lu_factor(A)[0] * c["W"])

    def lu_solve(LU, b, c):
        return jnp.sum(jsl.lu_solve((LU, c["piv"]), b) * c["W"])

    def qr(A, c):
        Q, R = jnp.linalg.qr(A)  # reduced
        return jnp.sum(Q * c["WQ"]) + jnp.sum(R * c["WR"])

    def logdet(A, c):  # no PD logdet in JAX: 2 sum log diag(cholesky(A))
        L = jnp.linalg.cholesky(A)
        return jnp.sum(2.0 * jnp.sum(jnp.log(jnp.diagonal(L, axis1=-2, axis2=-1)), axis=-1)
                       * c["w"])

    return dict(inv=inv, det=det, slogdet=slogdet, cholesky=cholesky, cho_solve=cho_solve,
                solve_triangular=solve_triangular, lu_factor=lu_factor, lu_solve=lu_solve,
                qr=qr, logdet=logdet)


# --- PyTorch: torch.linalg (and torch.cholesky_solve) ---------------------------------------
def _torch_losses():
    torch = peers.load_torch()

    def inv(A, c):
        return torch.sum(torch.linalg.inv(A) * c["W"])

    def det(A, c):
        return torch.sum(torch.linalg.det(A) * c["w"])

    def slogdet(A, c):
        return torch.sum(torch.linalg.slogdet(A).logabsdet * c["w"])

    def cholesky(A, c):  # lower; the gradient is symmetric
        return torch.sum(torch.linalg.cholesky(A) * c["W"])

    def cho_solve(C, b, c):
        return torch.sum(torch.cholesky_solve(b, C, upper=False) * c["W"])

    def solve_triangular(T, b, c):
        return torch.sum(torch.linalg.solve_triangular(T, b, upper=False) * c["W"])

    def lu_factor(A, c):
        return torch.sum(torch.linalg.lu_factor(A).LU * c["W"])

    def lu_solve(LU, b, c):  # 1-based pivots
        return torch.sum(torch.linalg.lu_solve(LU, c["piv1"], b) * c["W"])

    def qr(A, c):
        Q, R = torch.linalg.qr(A, mode="reduced")
        return torch.sum(Q * c["WQ"]) + torch.sum(R * c["WR"])

    def logdet(A, c):  # torch.logdet is LU-based; the PD one: 2 sum log diag(cholesky(A))
        L = torch.linalg.cholesky(A)
        return torch.sum(2.0 * torch.sum(torch.log(torch.diagonal(L, dim1=-2, dim2=-1)), dim=-1)
                         * c["w"])

    return dict(inv=inv, det=det, slogdet=slogdet, cholesky=cholesky, cho_solve=cho_solve,
                solve_triangular=solve_triangular, lu_factor=lu_factor, lu_solve=lu_solve,
                qr=qr, logdet=logdet)


# --- HIPS autograd: autograd.numpy.linalg, autograd.scipy.linalg ----------------------------
def _autograd_losses():
    import autograd.numpy as anp
    import autograd.scipy.linalg as asl

    def inv(A, c):
        return anp.sum(anp.linalg.inv(A) * c["W"])

    def det(A, c):
        return anp.sum(anp.linalg.det(A) * c["w"])

    def slogdet(A, c):
        return anp.sum(anp.linalg.slogdet(A)[1] * c["w"])

    def cholesky(A, c):  # lower; the gradient is symmetric
        return anp.sum(anp.linalg.cholesky(A) * c["W"])

    def solve_triangular(T, b, c):  # 2-D only (its VJP uses .T and dot)
        return anp.sum(asl.solve_triangular(T, b, lower=True) * c["W"])

    def logdet(A, c):  # 2 sum log diag(cholesky(A))
        L = anp.linalg.cholesky(A)  # (its diagonal's VJP needs axis1=-1, axis2=-2)
        return anp.sum(2.0 * anp.sum(anp.log(anp.diagonal(L, axis1=-1, axis2=-2)), axis=-1)
                       * c["w"])

    no_vjp = "autograd.scipy.linalg.{} has no gradient (it wraps SciPy's forward only)"
    return dict(inv=inv, det=det, slogdet=slogdet, cholesky=cholesky,
                cho_solve=no_vjp.format("cho_solve"),
                solve_triangular=solve_triangular,
                lu_factor=no_vjp.format("lu_factor"), lu_solve=no_vjp.format("lu_solve"),
                qr="autograd 1.9 has no gradient for numpy.linalg.qr",
                logdet=logdet)


_LOSSES = {"jax-jit": _jax_losses, "jax-eager": _jax_losses, "torch": _torch_losses,
           "autograd": _autograd_losses}

# Peers whose rule is written for single matrices only: (peer, rule) -> why.
UNBATCHED_ONLY = {
    ("autograd", "solve_triangular"):
        "autograd's solve_triangular VJP is 2-D only (uses .T and dot): no stacks",
}


_TABLE = peers.LossTable(_LOSSES, UNBATCHED_ONLY)
losses, available, lacks = _TABLE.losses, _TABLE.available, _TABLE.lacks


# --- value+grad closures -------------------------------------------------------------------
def _jax(loss, diff, consts, jit):
    jax = peers.load_jax()
    vg = jax.value_and_grad(loss, argnums=tuple(range(len(diff))))
    if jit:
        vg = jax.jit(vg)
    d = [jax.device_put(x) for x in diff]
    c = {k: jax.device_put(v) for k, v in consts.items()}

    def run():
        return jax.block_until_ready(vg(*d, c))

    def unpack(out):
        val, grads = out
        return float(val), [np.asarray(g) for g in grads]

    return run, unpack


def _torch(loss, diff, consts):
    torch = peers.load_torch()
    d = [torch.tensor(x, dtype=torch.float64, requires_grad=True) for x in diff]
    c = {k: torch.from_numpy(np.array(v)) for k, v in consts.items()}  # ints keep their dtype

    def run():
        for t in d:
            t.grad = None  # fresh gradients each call, no accumulation
        L = loss(*d, c)
        L.backward()
        return L.detach(), [t.grad for t in d]

    def unpack(out):
        val, grads = out
        return float(val), [g.numpy() for g in grads]

    return run, unpack


def _autograd(loss, diff, consts):
    autograd = peers.load_autograd()

    def f(*d):
        return loss(*d, consts)

    vg = autograd.value_and_grad(f, argnum=tuple(range(len(diff))))

    def run():
        return vg(*diff)

    def unpack(out):
        val, grads = out
        return float(val), [np.asarray(g) for g in grads]

    return run, unpack


def make(peer, rule, diff, consts):
    """(run, unpack) for value+grad of `rule`'s loss in `peer` (see the module docstring)."""
    loss = losses(peer)[rule]
    if peer == "jax-jit":
        return _jax(loss, diff, consts, jit=True)
    if peer == "jax-eager":
        return _jax(loss, diff, consts, jit=False)
    if peer == "torch":
        return _torch(loss, diff, consts)
    return _autograd(loss, diff, consts)
