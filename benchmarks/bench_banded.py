"""Banded solves: value+gradient cost of linalgad and its peers, as a ratio to SciPy's forward.

    taskset -c 1 .venv-bench/bin/python benchmarks/bench_banded.py [--quick] [--out F]

Loss L = sum(W * x), x = solve_banded((l, u), ab, b), gradient w.r.t. ab and b (W a fixed
random weight, b one column).  ab: a diagonally dominant band, float64.  Cells: n = 1,000,
10,000 and 100,000 for (l, u) = (1, 1), (2, 2), (8, 8); a stack of 1,000 tridiagonal
systems of order 64; and `solve(a, b, assume_a='banded')` of an order-2,000 matrix with
(l, u) = (2, 2) given as a dense array (reference: SciPy's `solve(a, b,
assume_a='banded')`, which detects the band and calls gbsv).

Peers: JAX's `jax.lax.linalg.tridiagonal_solve` (differentiable in the three diagonals and
b) for l = u = 1, jitted and eager; no peer has a general band solver, and PyTorch and
HIPS autograd have no tridiagonal one.  The dense alternative a user of those libraries
has, `solve` of the assembled n × n matrix, is timed where it fits (n ≤ 2,000: PyTorch's
`torch.linalg.solve`, JAX's `jnp.linalg.solve` jitted), marked "dense".
Each cell: (value+grad time) / (SciPy forward time), every library in the same run,
interleaved, min over the rounds; one pinned core, one thread.
"""

import common  # noqa: F401  (first: pins threads and the core before numpy is imported)


import numpy as np  # noqa: E402
import scipy.linalg as sl  # noqa: E402

import peers  # noqa: E402

import linalgad as lad  # noqa: E402
from linalgad import linalg as la  # noqa: E402
from linalgad.backend import band_from_dense, dense_from_band  # noqa: E402

RTOL = 1e-8
CELLS = [(n, band) for band in ((1, 1), (2, 2), (8, 8)) for n in (1000, 10_000, 100_000)]
QUICK = {(1000, (1, 1)), (10_000, (2, 2))}


def band(rng, batch, n, lower, upper):
    ab = rng.standard_normal(batch + (lower + upper + 1, n))
    ab[..., upper, :] += 2 * (lower + upper) + 2
    return band_from_dense(np, dense_from_band(np, ab, lower, upper), lower, upper) \
        if n <= 2000 else ab


def linalgad_runs(lu, ab, b, W):
    def loss(a, bb):
        return lad.sum(la.solve_banded(lu, a, bb) * W)
    vg = lad.value_and_grad(loss, argnums=(0, 1))
    jvg = lad.jit(vg)
    return (lambda: vg(ab, b)[1]), (lambda: jvg(ab, b)[1])


def jax_tridiagonal(ab, b, W, jit):
    jax = peers.load_jax()
    if jax is None:
        return None
    import jax.numpy as jnp
    from jax.lax.linalg import tridiagonal_solve
    n = ab.shape[-1]
    # JAX's layout: dl[0] = 0, du[-1] = 0, b (..., n, k)
    zero = np.zeros(ab.shape[:-2] + (1,))
    dl = np.concatenate([zero, ab[..., 2, :n - 1]], -1)
    d = ab[..., 1, :].copy()
    du = np.concatenate([ab[..., 0, 1:], zero], -1)
    bb = b[..., None] if b.ndim == ab.ndim - 1 else b

    def loss(dl, d, du, bb):
        x = tridiagonal_solve(dl, d, du, bb)
        return jnp.sum(x[..., 0] * W) if b.ndim == ab.ndim - 1 else jnp.sum(x * W)
    g = jax.value_and_grad(loss, argnums=(0, 1, 2, 3))
    if jit:
        g = jax.jit(g)
    args = tuple(jnp.asarray(a) for a in (dl, d, du, bb))

    def run():
        v, grads = g(*args)
        return [np.asarray(x) for x in grads]
    return run, (dl, d, du)


def dense_peers(A, b, W):
    runs = {}
    torch = peers.load_torch()
    if torch is not None:
        At, bt, Wt = (torch.tensor(x) for x in (A, b, W))

        def t_run():
            a = At.clone().requires_grad_(True)
            bb = bt.clone().requires_grad_(True)
            (torch.linalg.solve(a, bb) * Wt).sum().backward()
            return a.grad, bb.grad
        runs["torch dense"] = t_run
    jax = peers.load_jax()
    if jax is not None:
        import jax.numpy as jnp
        g = jax.jit(jax.value_and_grad(lambda a, bb: jnp.sum(jnp.linalg.solve(a, bb) * W),
                                       argnums=(0, 1)))
        Aj, bj = jnp.asarray(A), jnp.asarray(b)
        runs["jax-jit dense"] = lambda: jax.block_until_ready(g(Aj, bj))
    return runs


COLUMNS = ("linalgad", "linalgad-jit", "jax-jit", "jax-eager", "torch dense", "jax-jit dense")


def cell(label, ref, runs, rounds, checks):
    best = common.interleaved_min({"ref": ref, **runs}, rounds)
    r = best.pop("ref")
    return [label, common.fmt_time(r)] + [f"{best[c] / r:.2f}" if c in best else "—"
                                          for c in COLUMNS]


def main():
    opts, rng, cells = common.cell_options(CELLS, QUICK)
    rounds = 3 if opts.quick else 7
    rows, checks = [], []
    for n, lu in cells:
        ab = band(rng, (), n, *lu)
        b, W = rng.standard_normal(n), rng.standard_normal(n)
        vg, jvg = linalgad_runs(lu, ab, b, W)
        runs = {"linalgad": vg, "linalgad-jit": jvg}
        mine = vg()
        if lu == (1, 1):
            for jit, name in ((True, "jax-jit"), (False, "jax-eager")):
                got = jax_tridiagonal(ab, b, W, jit)
                if got is not None:
                    run, _ = got
                    runs[name] = run
                    if not jit:
                        continue
                    g = run()          # (dl, d, du, b) gradients against ab's rows
                    theirs = np.stack([np.r_[0, g[2][:-1]], g[1], np.r_[g[0][1:], 0]])
                    checks.append((f"jax tridiagonal n={n}",
                                   common.rel_err(theirs, mine[0]),
                                   common.rel_err(g[3].reshape(mine[1].shape), mine[1])))
        if n <= 2000:
            A = dense_from_band(np, ab, *lu)
            for name, run in dense_peers(A, b, W).items():
                runs[name] = run
        ref = (lambda lu=lu, ab=ab, b=b: sl.solve_banded(lu, ab, b, check_finite=False))
        rows.append(cell(f"solve_banded {lu}, n = {n:,}", ref, runs, rounds, checks))
        print(rows[-1], flush=True)
    # a stack of tridiagonal systems
    ab = band(rng, (1000,), 64, 1, 1)
    b, W = rng.standard_normal((1000, 64, 1)), rng.standard_normal((1000, 64, 1))
    vg, jvg = linalgad_runs((1, 1), ab, b, W)
    runs = {"linalgad": vg, "linalgad-jit": jvg}
    for jit, name in ((True, "jax-jit"), (False, "jax-eager")):
        got = jax_tridiagonal(ab, b, W, jit)
        if got is not None:
            runs[name] = got[0]
    ref = lambda: sl.solve_banded((1, 1), ab, b, check_finite=False)  # noqa: E731
    rows.append(cell("solve_banded (1, 1), 1000 × 64", ref, runs, rounds, checks))
    print(rows[-1], flush=True)
    # solve(assume_a='banded') of a dense array
    n, lu = 2000, (2, 2)
    A = dense_from_band(np, band(rng, (), n, *lu), *lu)
    b, W = rng.standard_normal(n), rng.standard_normal(n)
    vgA = lad.value_and_grad(lambda a: lad.sum(la.solve(a, b, assume_a="banded") * W))
    jvgA = lad.jit(vgA)
    runs = {"linalgad": lambda: vgA(A)[1], "linalgad-jit": lambda: jvgA(A)[1],
            **dense_peers(A, b, W)}
    ref = lambda: sl.solve(A, b, assume_a="banded")  # noqa: E731
    rows.append(cell("solve(assume_a='banded') (2, 2), n = 2,000, dense input", ref, runs,
                     rounds, checks))
    print(rows[-1], flush=True)
    lines = ["# Banded solves (solve_banded, solve(assume_a='banded'))", "",
             "Value + gradient (w.r.t. ab and b) of L = sum(W * x), as a ratio to SciPy's "
             "forward-only time on the same inputs (`solve_banded`, or `solve(a, b, "
             "assume_a='banded')` for the dense-input row); float64, one pinned core, one "
             "thread, libraries interleaved in one run, min over the rounds.  — : the peer has "
             "no band solver for the cell.  \"dense\": the peer's dense solve of the assembled "
             "n × n matrix (its only way to solve a general band), timed up to n = 2,000.", "",
             *common.machine_info(), "",
             common.markdown_table(["cell", "SciPy forward", *COLUMNS], rows), "",
             "Gradient agreement of JAX's tridiagonal_solve with linalgad (max relative "
             "error, diagonals / b): " +
             ", ".join(f"{name} {e1:.0e} / {e2:.0e}" for name, e1, e2 in checks), ""]
    common.emit("\n".join(lines), opts.out)


if __name__ == "__main__":
    main()
