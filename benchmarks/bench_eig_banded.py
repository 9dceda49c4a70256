"""Hermitian band eigenvalues: value+gradient cost of linalgad and the peers' dense route, as a
ratio to SciPy's forward.

    taskset -c 1 .venv-bench/bin/python benchmarks/bench_eig_banded.py [--quick] [--out F]

Loss L = Σ sin(w), w = eigvals_banded(ab) (upper form, float64), gradient w.r.t. ab.
Reference: SciPy's `eigvals_banded` (values only, forward).  Cells: n = 500, 1,000, 2,000 for
u = 2 and 8, and the 3 largest values alone (select='i') at n = 5,000 and 20,000, u = 4.  No peer has a band eigensolver; the dense route (`eigvalsh` of the assembled
matrix: linalgad's own, PyTorch's `torch.linalg.eigvalsh`, JAX's jitted `jnp.linalg.eigvalsh`)
is timed beside it, marked "dense".  Each cell: (value+grad time) / (SciPy forward time),
every library in the same run, interleaved, min over the rounds; one pinned core, one thread.
"""

import common  # noqa: F401  (first: pins threads and the core before numpy is imported)


import numpy as np  # noqa: E402
import scipy.linalg as sl  # noqa: E402

import peers  # noqa: E402

import linalgad as lad  # noqa: E402
from linalgad import linalg as la  # noqa: E402
from linalgad.backend import band_from_dense, dense_from_band  # noqa: E402

CELLS = [(n, u) for u in (2, 8) for n in (500, 1000, 2000)]
QUICK = {(500, 2), (1000, 8)}
COLUMNS = ("linalgad", "linalgad-jit", "linalgad dense", "torch dense", "jax-jit dense")


def band(rng, n, u):
    G = rng.standard_normal((u + 1, n))
    G[u] = np.linspace(-2.0, 2.0, n) * n
    return band_from_dense(np, dense_from_band(np, G, 0, u), 0, u)     # zero corners


def main():
    opts, rng, cells = common.cell_options(CELLS, QUICK)
    rounds = 3 if opts.quick else 5
    rows, checks = [], []
    for n, u in cells:
        ab = band(rng, n, u)
        A = dense_from_band(np, ab, 0, u)
        A = A + np.triu(A, 1).T
        vg = lad.value_and_grad(lambda a: lad.sum(lad.sin(la.eigvals_banded(a))))
        jvg = lad.jit(vg)
        dvg = lad.value_and_grad(lambda M: lad.sum(lad.sin(la.eigvalsh(M, lower=False))))
        runs = {"linalgad": lambda: vg(ab)[1], "linalgad-jit": lambda: jvg(ab)[1],
                "linalgad dense": lambda: dvg(np.triu(A))[1]}
        mine = vg(ab)[1]
        torch = peers.load_torch()
        if torch is not None:
            At = torch.tensor(A)

            def t_run():
                a = At.clone().requires_grad_(True)
                torch.sin(torch.linalg.eigvalsh(a)).sum().backward()
                return a.grad.numpy()
            runs["torch dense"] = t_run
            G = t_run()               # full symmetric gradient: the upper form's cotangent
            theirs = band_from_dense(np, G + G.T - np.diag(np.diag(G)), 0, u)
            checks.append((f"torch n={n} u={u}", common.rel_err([theirs], [mine])))
        jax = peers.load_jax()
        if jax is not None:
            import jax.numpy as jnp
            g = jax.jit(jax.value_and_grad(lambda a: jnp.sum(jnp.sin(jnp.linalg.eigvalsh(a)))))
            Aj = jnp.asarray(A)
            runs["jax-jit dense"] = lambda: jax.block_until_ready(g(Aj))
        best = common.interleaved_min(
            {"ref": lambda: sl.eigvals_banded(ab, check_finite=False), **runs}, rounds)
        r = best.pop("ref")
        rows.append([f"u = {u}, n = {n:,}", common.fmt_time(r)] +
                    [f"{best[c] / r:.2f}" if c in best else "—" for c in COLUMNS])
        print(rows[-1], flush=True)
    # a few values alone by index: their vectors by inverse iteration on the band
    for n, u in ((5000, 4), (20000, 4)) if not opts.quick else ((5000, 4),):
        ab = band(rng, n, u)
        sel = dict(select="i", select_range=(n - 3, n - 1))
        vg = lad.value_and_grad(lambda a: lad.sum(lad.sin(la.eigvals_banded(a, **sel))))
        best = common.interleaved_min(
            {"ref": lambda: sl.eigvals_banded(ab, check_finite=False, **sel),
             "linalgad": lambda: vg(ab)[1]}, 3)
        r = best.pop("ref")
        rows.append([f"u = {u}, n = {n:,}, the 3 largest", common.fmt_time(r),
                     f"{best['linalgad'] / r:.2f}"] + ["—"] * (len(COLUMNS) - 1))
        print(rows[-1], flush=True)
    lines = ["# Hermitian band eigenvalues (eigvals_banded)", "",
             "Value + gradient (w.r.t. the upper form ab) of L = Σ sin(w), as a ratio to "
             "SciPy's forward-only `eigvals_banded` (values alone); float64, one pinned core, "
             "one thread, libraries interleaved in one run, min over the rounds.  \"dense\": "
             "eigvalsh of the assembled matrix (no peer has a band eigensolver).", "",
             *common.machine_info(), "",
             common.markdown_table(["cell", "SciPy forward", *COLUMNS], rows), "",
             "Gradient agreement with PyTorch's dense route on the band (max relative error): "
             + ", ".join(f"{name} {e:.0e}" for name, e in checks), ""]
    common.emit("\n".join(lines), opts.out)


if __name__ == "__main__":
    main()
