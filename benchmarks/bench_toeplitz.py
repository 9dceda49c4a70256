"""Toeplitz solves: value+gradient cost, as a ratio to SciPy's forward solve_toeplitz.

    taskset -c 1 .venv-bench/bin/python benchmarks/bench_toeplitz.py [--quick] [--out F]

Loss L = sum(W * x), x = solve_toeplitz((c, r), b) (W a fixed random weight), its gradient
w.r.t. c, r and b; c, r random with a dominant diagonal (every leading minor well
conditioned), b one column; float64.  Columns:
- linalgad: solve_toeplitz's rule (Levinson with T and Tᴴ, one FFT correlation), eager and
  under lad.jit (linalgad-jit);
- linalgad-dense: la.solve(la.toeplitz(c, r), b), the dense route inside linalgad;
- jax-dense, torch-dense: the peers' route (no peer has a Toeplitz solver with a gradient):
  the assembled matrix and their dense solve, jitted for JAX.
Each cell is (value+grad time) / (SciPy forward time on the same inputs), libraries
interleaved in one run, min over the repeats; n = 4096 takes 3 rounds and drops the dense
routes above n = 4096.
"""

import common  # noqa: F401  (first: pins threads and the core before numpy is imported)


import numpy as np  # noqa: E402
import scipy.linalg as sl  # noqa: E402

import peers  # noqa: E402

import linalgad as lad  # noqa: E402
from linalgad import linalg as la  # noqa: E402

SHAPES = [("n=64", (), 64), ("n=256", (), 256), ("n=1024", (), 1024), ("n=4096", (), 4096),
          ("n=16384", (), 16384), ("100 of n=64", (100,), 64)]
QUICK = {"n=64", "n=256", "100 of n=64"}
DENSE_MAX = 4096
RTOL = 1e-6


def inputs(rng, batch, n):
    c = rng.standard_normal(batch + (n,)) / np.sqrt(n)
    r = rng.standard_normal(batch + (n,)) / np.sqrt(n)
    c[..., 0] += 3.0
    b = rng.standard_normal(batch + (n, 1))
    return c, r, b


def scipy_forward(c, r, b):
    if c.ndim == 1:
        return lambda: sl.solve_toeplitz((c, r), b)
    return lambda: [sl.solve_toeplitz((c[i], r[i]), b[i]) for i in range(c.shape[0])]


def linalgad_run(c, r, b, W, dense=False, jit=False):
    if dense:
        f = lambda c_, r_, b_: lad.sum(W * la.solve(la.toeplitz(c_, r_), b_))
    else:
        f = lambda c_, r_, b_: lad.sum(W * la.solve_toeplitz((c_, r_), b_))
    vg = lad.value_and_grad(f, argnums=(0, 1, 2))
    if jit:
        vg = lad.jit(vg)
    return lambda: vg(c, r, b)


def jax_dense(c, r, b, W):
    jax = peers.load_jax()
    if jax is None:
        return None
    jnp = jax.numpy
    n = c.shape[-1]
    idx = (n - 1) + np.arange(n)[:, None] - np.arange(n)[None, :]

    def f(c_, r_, b_):
        v = jnp.concatenate([r_[..., :0:-1], c_], axis=-1)
        return jnp.sum(jnp.asarray(W) * jnp.linalg.solve(v[..., idx], b_))
    vg = jax.jit(jax.value_and_grad(f, argnums=(0, 1, 2)))
    args = [jnp.asarray(x) for x in (c, r, b)]
    return lambda: jax.block_until_ready(vg(*args))


def torch_dense(c, r, b, W):
    torch = peers.load_torch()
    if torch is None:
        return None
    n = c.shape[-1]
    idx = torch.as_tensor((n - 1) + np.arange(n)[:, None] - np.arange(n)[None, :])
    Wt = torch.as_tensor(W)

    def run():
        ct, rt, bt = (torch.tensor(x, requires_grad=True) for x in (c, r, b))
        v = torch.cat([torch.flip(rt[..., 1:], [-1]), ct], dim=-1)
        loss = (Wt * torch.linalg.solve(v[..., idx], bt)).sum()
        loss.backward()
        return loss.detach(), (ct.grad, rt.grad, bt.grad)
    return run


def main():
    opts, rng, shapes = common.cell_options(SHAPES, QUICK, key=lambda s: s[0])
    rows, checks = [], []
    cols = ["linalgad", "linalgad-jit", "linalgad-dense", "jax-dense", "torch-dense"]
    for label, batch, n in shapes:
        c, r, b = inputs(rng, batch, n)
        W = rng.standard_normal(batch + (n, 1))
        runs = {"scipy fwd": scipy_forward(c, r, b), "linalgad": linalgad_run(c, r, b, W),
                "linalgad-jit": linalgad_run(c, r, b, W, jit=True)}
        if n <= DENSE_MAX:
            runs["linalgad-dense"] = linalgad_run(c, r, b, W, dense=True)
            for name, make in (("jax-dense", jax_dense), ("torch-dense", torch_dense)):
                fn = make(c, r, b, W)
                if fn is not None:
                    runs[name] = fn
        mine = runs["linalgad"]()
        for name in cols[2:]:
            if name in runs:
                val, grads = runs[name]()
                err = common.rel_err([np.asarray(val)] + [np.asarray(g) for g in grads],
                                     [np.asarray(mine[0])] + [np.asarray(g) for g in mine[1]])
                checks.append((name, label, err))
        rounds = 3 if opts.quick or n >= 4096 else 7
        best = common.interleaved_min(runs, rounds, warmup=True)
        ref = best["scipy fwd"]
        rows.append([label, common.fmt_time(ref)] +
                    [f"{best[k] / ref:.2f}" if k in best else "—" for k in cols])
        print(rows[-1], flush=True)
    lines = ["# Toeplitz solves (solve_toeplitz)", "",
             "Value + gradient (w.r.t. c, r, b) of L = sum(W * solve_toeplitz((c, r), b)), as "
             "a ratio to SciPy's forward-only solve_toeplitz on the same inputs (a loop for the "
             "stack); float64, one column, one pinned core, one thread, libraries interleaved "
             "in one run, min over 7 rounds (3 from n = 4096).  No peer has a Toeplitz solver "
             "with a gradient: `*-dense` assemble the matrix and solve it densely "
             f"(— above n = {DENSE_MAX}).", "",
             *common.machine_info(), "",
             common.markdown_table(["shape", "SciPy forward"] + cols, rows), "",
             "Agreement with linalgad (max relative error, value and gradients): " +
             ", ".join(f"{k} {lab} {e:.0e}" for k, lab, e in checks), ""]
    common.emit("\n".join(lines), opts.out)


if __name__ == "__main__":
    main()
