"""eigh / eigvalsh with subset_by_index: value+gradient cost against SciPy's subset forward.

    taskset -c 1 .venv-bench/bin/python benchmarks/bench_eigh_subset.py [--quick] [--out F]

Loss: values only, sum(w_S²) through eigvalsh(a, subset_by_index=(0, k − 1)); with vectors,
sum(w_S²) + sum(W ∘ V_S ∘ V_S) through eigh (invariant under each vector's sign).  a: a
random symmetric matrix (Gaussian, float64).  Each cell: value+gradient time over SciPy's
forward of the same pairs (`scipy.linalg.eigh(a, subset_by_index=..., driver='evr')`), every
library in the same run, interleaved, min over the rounds; one pinned core, one thread.

Columns: linalgad (the subset driver where `_subset_pays` takes it), linalgad through the
full decomposition (what it did before, forced), and the peers, which have no differentiable
subset (JAX's `eigh` accepts subset_by_index on TPU only; PyTorch's `lobpcg` is for the
largest pairs of a positive definite matrix): their full `eigh`, sliced.
"""

import common  # noqa: F401  (first: pins threads and the core before numpy is imported)


import numpy as np  # noqa: E402
import scipy.linalg as sl  # noqa: E402

import peers  # noqa: E402

import linalgad as lad  # noqa: E402
from linalgad import linalg as la  # noqa: E402
from linalgad.rules import eigh as E  # noqa: E402

CELLS = [(n, k, vec) for n in (500, 1000, 2000) for k, vec in ((1, False), (10, False),
                                                                 (1, True), (4, True))]
QUICK = {(500, 1, False), (500, 4, True)}
COLUMNS = ("linalgad", "linalgad, full decomposition", "jax-jit", "torch")


def linalgad_run(A, k, vec, W):
    sub = (0, k - 1)
    if vec:
        def loss(a):
            w, V = la.eigh(a, subset_by_index=sub)
            return lad.sum(w * w) + lad.sum(V * V * W)
    else:
        def loss(a):
            return lad.sum(la.eigvalsh(a, subset_by_index=sub) ** 2)
    vg = lad.value_and_grad(loss)
    return lambda: vg(A)[1]


def forced_full(run):
    def go():
        saved = E._subset_pays
        E._subset_pays = lambda *a: False
        try:
            return run()
        finally:
            E._subset_pays = saved
    return go


def jax_run(A, k, vec, W):
    jax = peers.load_jax()
    if jax is None:
        return None
    import jax.numpy as jnp

    def loss(a):
        w, V = jnp.linalg.eigh(a)
        out = jnp.sum(w[:k] ** 2)
        return out + jnp.sum(V[:, :k] ** 2 * W) if vec else out
    g = jax.jit(jax.grad(loss))
    Aj = jnp.asarray(A)
    return lambda: np.asarray(g(Aj))


def torch_run(A, k, vec, W):
    torch = peers.load_torch()
    if torch is None:
        return None
    At, Wt = torch.tensor(A), torch.tensor(W)

    def go():
        a = At.clone().requires_grad_(True)
        w, V = torch.linalg.eigh(a)
        out = (w[:k] ** 2).sum()
        if vec:
            out = out + (V[:, :k] ** 2 * Wt).sum()
        out.backward()
        return a.grad.numpy()
    return go


def main():
    opts, rng, cells = common.cell_options(CELLS, QUICK)
    rounds = 3 if opts.quick else 5
    rows, checks = [], []
    for n, k, vec in cells:
        G = rng.standard_normal((n, n))
        A = G + G.T
        W = rng.standard_normal((n, k))
        mine = linalgad_run(A, k, vec, W)
        runs = {"linalgad": mine, "linalgad, full decomposition": forced_full(mine)}
        for name, make in (("jax-jit", jax_run), ("torch", torch_run)):
            run = make(A, k, vec, W)
            if run is not None:
                runs[name] = run
        g = mine()
        # both triangles of the peers' gradient land in the lower one linalgad reads
        for name in ("linalgad, full decomposition", "jax-jit", "torch"):
            if name in runs:
                other = np.asarray(runs[name]())
                if name != "linalgad, full decomposition":
                    other = np.tril(other + other.T) - np.diag(np.diag(other))
                checks.append((f"{name} n={n} k={k}{' V' if vec else ''}",
                               common.rel_err(other, g)))
        ref = (lambda A=A, k=k, vec=vec: sl.eigh(A, subset_by_index=(0, k - 1), driver="evr",
                                                 eigvals_only=not vec, check_finite=False))
        best = common.interleaved_min({"ref": ref, **runs}, rounds)
        r = best.pop("ref")
        rows.append([str(n), str(k), "w, V" if vec else "w", common.fmt_time(r)]
                    + [f"{best[c] / r:.2f}" if c in best else "—" for c in COLUMNS])
        print(rows[-1], flush=True)
    lines = ["# eigh / eigvalsh with subset_by_index = (0, k − 1)", "",
             "Value + gradient over SciPy's forward of the same pairs (syevr, values alone "
             "or with vectors); float64, one pinned core, one thread, libraries interleaved "
             "in one run, min over the rounds.  The peers compute the full eigh and slice it "
             "(they have no differentiable subset).", "",
             *common.machine_info(), "",
             common.markdown_table(["n", "k", "outputs", "SciPy forward", *COLUMNS], rows), "",
             "Gradient agreement with linalgad's subset path (max relative error): " +
             ", ".join(f"{name} {e:.0e}" for name, e in checks), ""]
    common.emit("\n".join(lines), opts.out)


if __name__ == "__main__":
    main()
