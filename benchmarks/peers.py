"""The peers: value and gradient of L(A, b) = sum(solve(A, b) * W) w.r.t. (A, b).

Every factory takes float64 NumPy arrays A (..., n, n), b (..., n, k), W (..., n, k)
and returns (run, unpack):
- run(): one complete value+gradient evaluation, finished (results materialized,
  asynchronous work waited for); this is what is timed. Inputs are converted to
  the peer's array type once, before timing.
- unpack(out): run()'s result as NumPy (value, A_bar, b_bar), to check it.

A peer that is not installed is simply absent from `available()`.
Import benchmarks/common.py before this module (it pins threads first).
"""

import importlib

import numpy as np

PEER_NAMES = ("jax-jit", "jax-eager", "torch", "autograd")

_modules = {}


def _load(name):
    """Import a peer's top module once; None when it is not installed or broken."""
    if name not in _modules:
        try:
            mod = importlib.import_module(name)
            if name == "jax":
                mod.config.update("jax_enable_x64", True)
                mod.config.update("jax_platforms", "cpu")
            elif name == "torch":
                mod.set_num_threads(1)
                try:
                    mod.set_num_interop_threads(1)
                except RuntimeError:  # already set, or parallel work already started
                    pass
            _modules[name] = mod
        except Exception:  # ImportError, or a broken install
            _modules[name] = None
    return _modules[name]


def load_jax():
    return _load("jax")


def load_torch():
    return _load("torch")


def load_autograd():
    return _load("autograd")


# --- solve -------------------------------------------------------------------------------
def _jax(A, b, W, jit):
    jax = load_jax()
    jnp = jax.numpy

    def loss(A, b, W):
        return jnp.sum(jnp.linalg.solve(A, b) * W)

    vg = jax.value_and_grad(loss, argnums=(0, 1))
    if jit:
        vg = jax.jit(vg)
    Aj, bj, Wj = (jax.device_put(x) for x in (A, b, W))

    def run():
        return jax.block_until_ready(vg(Aj, bj, Wj))

    def unpack(out):
        val, (gA, gb) = out
        return float(val), np.asarray(gA), np.asarray(gb)

    return run, unpack


def jax_jit(A, b, W):
    return _jax(A, b, W, jit=True)


def jax_eager(A, b, W):
    return _jax(A, b, W, jit=False)


def torch_cpu(A, b, W):
    torch = load_torch()
    At = torch.tensor(A, dtype=torch.float64, requires_grad=True)
    bt = torch.tensor(b, dtype=torch.float64, requires_grad=True)
    Wt = torch.tensor(W, dtype=torch.float64)

    def run():
        At.grad = None  # fresh gradients each call, no accumulation
        bt.grad = None
        L = torch.sum(torch.linalg.solve(At, bt) * Wt)
        L.backward()
        return L.detach(), At.grad, bt.grad

    def unpack(out):
        val, gA, gb = out
        return float(val), gA.numpy(), gb.numpy()

    return run, unpack


def hips_autograd(A, b, W):
    autograd = load_autograd()
    import autograd.numpy as anp

    def loss(A, b):
        return anp.sum(anp.linalg.solve(A, b) * W)

    vg = autograd.value_and_grad(loss, argnum=(0, 1))

    def run():
        return vg(A, b)

    def unpack(out):
        val, (gA, gb) = out
        return float(val), np.asarray(gA), np.asarray(gb)

    return run, unpack


_FACTORIES = {
    "jax-jit": (load_jax, jax_jit),
    "jax-eager": (load_jax, jax_eager),
    "torch": (load_torch, torch_cpu),
    "autograd": (load_autograd, hips_autograd),
}


def available(names=PEER_NAMES):
    """{name: factory} for the requested peers that are installed."""
    return {n: _FACTORIES[n][1] for n in names if _FACTORIES[n][0]() is not None}


class LossTable:
    """Each peer's losses for a family of rules, built once per installed peer.

    builders: {peer: () -> {rule: loss function, or a string saying why the peer lacks it}};
    unbatched_only: {(peer, rule): why} for rules a peer cannot run on a stack.
    """

    def __init__(self, builders, unbatched_only=None):
        self._builders = builders
        self.unbatched_only = dict(unbatched_only or {})
        self._cache = {}

    def losses(self, peer):
        """{rule: loss function or reason string} for an installed peer."""
        if peer not in self._cache:
            self._cache[peer] = self._builders[peer]()
        return self._cache[peer]

    def available(self, names=PEER_NAMES):
        """The requested peers that are installed."""
        return [n for n in names if _FACTORIES[n][0]() is not None]

    def lacks(self, peer, rule, batched):
        """None when the peer can run the rule on this kind of shape; else the reason."""
        loss = self.losses(peer).get(rule, f"{peer} has no {rule}")
        if isinstance(loss, str):
            return loss
        if batched and (peer, rule) in self.unbatched_only:
            return self.unbatched_only[(peer, rule)]
        return None
