"""Banded Cholesky: value+gradient cost of a Gaussian log-likelihood through
cholesky_banded and cho_solve_banded, as a ratio to SciPy's forward.

    taskset -c 1 .venv-bench/bin/python benchmarks/bench_banded_cholesky.py [--quick] [--out F]

Loss L(ab) = ½ yᵀ A⁻¹ y + ½ log det A with A Hermitian positive definite banded (u
off-diagonals, upper form ab, float64): c = cholesky_banded(ab), α = cho_solve_banded((c,
False), y), L = ½ Σ y α + Σ log c[u]; gradient w.r.t. ab.  Reference: SciPy's
cholesky_banded and cho_solve_banded (forward only).  Cells: n = 1,000, 10,000, 100,000
for u = 1, 2, 4, 8, and a stack of 1,000 of order 64 with u = 2.

No peer has a banded Cholesky (JAX, PyTorch and HIPS autograd factor dense matrices only);
the dense alternative, the Cholesky of the assembled n × n matrix (PyTorch's
`torch.linalg.cholesky` + `cholesky_solve`, JAX's jitted `jnp.linalg.cholesky` +
`jax.scipy.linalg.cho_solve`), is timed where it fits (n ≤ 1,000; the stack of 1,000 of
order 64), marked "dense".  Each cell: (value+grad time) / (SciPy forward time), every
library in the same run, interleaved, min over the rounds; one pinned core, one thread.
"""

import common  # noqa: F401  (first: pins threads and the core before numpy is imported)


import numpy as np  # noqa: E402
import scipy.linalg as sl  # noqa: E402

import peers  # noqa: E402

import linalgad as lad  # noqa: E402
from linalgad import linalg as la  # noqa: E402
from linalgad.backend import band_from_dense, dense_from_band  # noqa: E402

CELLS = [(n, u) for u in (1, 2, 4, 8) for n in (1000, 10_000, 100_000)]
QUICK = {(1000, 1), (10_000, 2)}
COLUMNS = ("linalgad", "linalgad-jit", "torch dense", "jax-jit dense")


def band(rng, batch, n, u):
    """Upper form of a diagonally dominant symmetric band (positive definite)."""
    ab = rng.standard_normal(batch + (u + 1, n))
    ab[..., :u, :] = np.where(np.add.outer(np.arange(u), np.arange(n)) < u, 0,
                              ab[..., :u, :])          # zero corners
    off = np.abs(ab[..., :u, :])
    dominance = off.sum(axis=-2)                        # column j: A[j − s, j]
    for s in range(1, u + 1):                           # row j: A[j, j + s]
        dominance[..., :n - s] += off[..., u - s, s:]
    ab[..., u, :] = dominance + 0.5 + np.abs(ab[..., u, :])
    return ab


def reference(ab, y):
    u = ab.shape[-2] - 1
    if ab.ndim == 2:
        def run():
            c = sl.cholesky_banded(ab, check_finite=False)
            return sl.cho_solve_banded((c, False), y, check_finite=False)
        return run

    def run_stack():
        for a, yy in zip(ab, y):
            c = sl.cholesky_banded(a, check_finite=False)
            sl.cho_solve_banded((c, False), yy, check_finite=False)
    del u
    return run_stack


def linalgad_runs(ab, y):
    u = ab.shape[-2] - 1

    def loss(a):
        c = la.cholesky_banded(a)
        alpha = la.cho_solve_banded((c, False), y)
        return 0.5 * lad.sum(y * alpha) + lad.sum(lad.log(c[..., u, :]))
    vg = lad.value_and_grad(loss)
    jvg = lad.jit(vg)
    return (lambda: vg(ab)[1]), (lambda: jvg(ab)[1])


def dense_peers(A, y):
    """Value and gradient w.r.t. the full symmetric A of the same loss, dense."""
    runs = {}
    torch = peers.load_torch()
    if torch is not None:
        At = torch.tensor(A)
        yt = torch.tensor(y if y.ndim == A.ndim else y[..., None])

        def t_run():
            a = At.clone().requires_grad_(True)
            c = torch.linalg.cholesky(a)
            alpha = torch.cholesky_solve(yt, c)
            loss = 0.5 * (yt * alpha).sum() + torch.log(torch.diagonal(c, 0, -2, -1)).sum()
            loss.backward()
            return a.grad.numpy()
        runs["torch dense"] = t_run
    jax = peers.load_jax()
    if jax is not None:
        import jax.numpy as jnp
        from jax.scipy.linalg import cho_solve

        def loss(a):
            c = jnp.linalg.cholesky(a)
            alpha = cho_solve((c, True), yc)
            return 0.5 * jnp.sum(yc * alpha) + jnp.sum(jnp.log(jnp.diagonal(c, 0, -2, -1)))
        yc = y if y.ndim == A.ndim else y[..., None]
        g = jax.jit(jax.value_and_grad(loss))
        Aj = jnp.asarray(A)
        runs["jax-jit dense"] = lambda: np.asarray(jax.block_until_ready(g(Aj))[1])
    return runs


def cell(label, ref, runs, rounds):
    best = common.interleaved_min({"ref": ref, **runs}, rounds)
    r = best.pop("ref")
    return [label, common.fmt_time(r)] + [f"{best[c] / r:.2f}" if c in best else "—"
                                          for c in COLUMNS]


def agreement(ab, mine, dense_grad):
    """The dense gradient w.r.t. the full symmetric A, on the upper band: the upper form's
    cotangent is Ā_ij + Ā_ji off the diagonal (both entries hold the stored one)."""
    u = ab.shape[-2] - 1
    G = dense_grad + np.swapaxes(dense_grad, -1, -2)
    G = G - np.eye(ab.shape[-1]) * np.diagonal(dense_grad, 0, -2, -1)[..., None, :]
    theirs = band_from_dense(np, G, 0, u)
    ok = np.add.outer(np.arange(u + 1), np.arange(ab.shape[-1])) >= u
    return float(np.abs(theirs - mine)[..., ok].max() / np.abs(mine[..., ok]).max())


def main():
    opts, rng, cells = common.cell_options(CELLS, QUICK)
    rounds = 3 if opts.quick else 7
    cells = cells + [("stack", 2)]
    rows, checks = [], []
    for n, u in cells:
        if n == "stack":
            ab, y = band(rng, (1000,), 64, u), rng.standard_normal((1000, 64, 1))
            label = f"u = {u}, 1000 × 64"
        else:
            ab, y = band(rng, (), n, u), rng.standard_normal(n)
            label = f"u = {u}, n = {n:,}"
        vg, jvg = linalgad_runs(ab, y)
        runs = {"linalgad": vg, "linalgad-jit": jvg}
        mine = vg()
        if n == "stack" or n <= 1000:
            A = dense_from_band(np, ab, 0, u)
            A = A + np.swapaxes(np.triu(A, 1), -1, -2)
            for name, run in dense_peers(A, y).items():
                runs[name] = run
                checks.append((f"{name} {label}", agreement(ab, mine, run())))
        rows.append(cell(label, reference(ab, y), runs, rounds))
        print(rows[-1], flush=True)
    lines = ["# Banded Cholesky (cholesky_banded, cho_solve_banded)", "",
             "Value + gradient (w.r.t. the upper form ab) of the Gaussian log-likelihood "
             "½ yᵀA⁻¹y + ½ log det A through `cholesky_banded` and `cho_solve_banded`, as a "
             "ratio to SciPy's forward-only time of the same two calls; float64, one pinned "
             "core, one thread, libraries interleaved in one run, min over the rounds.  "
             "\"dense\": the peer's Cholesky of the assembled n × n matrix (no peer has a "
             "banded one), timed up to n = 1,000 and for the stack.", "",
             *common.machine_info(), "",
             common.markdown_table(["cell", "SciPy forward", *COLUMNS], rows), "",
             "Gradient agreement of the dense peers with linalgad on the band (max relative "
             "error): " + ", ".join(f"{name} {e:.0e}" for name, e in checks), ""]
    common.emit("\n".join(lines), opts.out)


if __name__ == "__main__":
    main()
