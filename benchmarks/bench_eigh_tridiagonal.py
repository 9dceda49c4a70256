"""eigh_tridiagonal: value+gradient cost against SciPy's forward, and the dense route.

    taskset -c 1 .venv-bench/bin/python benchmarks/bench_eigh_tridiagonal.py [--out F]

Two losses of the diagonal d and off-diagonal e of a symmetric tridiagonal matrix: the
eigenvalues alone, sum(c·w); and Gauss quadrature by Golub and Welsch, sum(2 V₀ᵢ² cos wᵢ)
(the nodes and the first components of the eigenvectors).  Reference: SciPy's forward
(`eigvalsh_tridiagonal`, or `eigh_tridiagonal` for the quadrature).  Peers: neither JAX
(`jax.scipy.linalg.eigh_tridiagonal` has no reverse-mode rule: its while_loop) nor PyTorch
differentiates a tridiagonal eigensolver; their route is `eigh` of the assembled n × n matrix
(jitted for JAX), and linalgad's own dense route is timed too.  One pinned core, one thread,
interleaved, min over the rounds.
"""

import common  # noqa: F401  (first: pins threads and the core before numpy is imported)

import argparse  # noqa: E402

import numpy as np  # noqa: E402
import scipy.linalg as sl  # noqa: E402

import peers  # noqa: E402

import linalgad as lad  # noqa: E402
from linalgad import linalg as la  # noqa: E402

SIZES = (200, 1000, 3000)
COLUMNS = ("linalgad", "linalgad, dense eigh", "jax-jit, dense eigh", "torch, dense eigh")


def inputs(rng, n):
    k = np.arange(1, n)
    return 0.1 * rng.standard_normal(n), np.sqrt(k ** 2 / (4.0 * k ** 2 - 1))


def linalgad_runs(d, e, c, quad):
    def tri(d_, e_):
        if quad:
            w, V = la.eigh_tridiagonal(d_, e_)
            return lad.sum(2.0 * V[0] ** 2 * lad.cos(w))
        return lad.sum(c * la.eigvalsh_tridiagonal(d_, e_))

    def dense(d_, e_):
        T = lad.diag(d_) + lad.diag(e_, 1) + lad.diag(e_, -1)
        if quad:
            w, V = la.eigh(T)
            return lad.sum(2.0 * V[0] ** 2 * lad.cos(w))
        return lad.sum(c * la.eigvalsh(T))
    g1 = lad.grad(tri, argnums=(0, 1))
    g2 = lad.grad(dense, argnums=(0, 1))
    return (lambda: g1(d, e)), (lambda: g2(d, e))


def jax_run(d, e, c, quad):
    jax = peers.load_jax()
    if jax is None:
        return None
    import jax.numpy as jnp

    def loss(d_, e_):
        T = jnp.diag(d_) + jnp.diag(e_, 1) + jnp.diag(e_, -1)
        w, V = jnp.linalg.eigh(T)
        return jnp.sum(2.0 * V[0] ** 2 * jnp.cos(w)) if quad else jnp.sum(c * w)
    g = jax.jit(jax.grad(loss, argnums=(0, 1)))
    dj, ej = jnp.asarray(d), jnp.asarray(e)
    return lambda: [np.asarray(x) for x in g(dj, ej)]


def torch_run(d, e, c, quad):
    torch = peers.load_torch()
    if torch is None:
        return None
    dt, et, ct = torch.tensor(d), torch.tensor(e), torch.tensor(c)

    def go():
        d_ = dt.clone().requires_grad_(True)
        e_ = et.clone().requires_grad_(True)
        T = torch.diag(d_) + torch.diag(e_, 1) + torch.diag(e_, -1)
        w, V = torch.linalg.eigh(T)
        out = (2.0 * V[0] ** 2 * torch.cos(w)).sum() if quad else (ct * w).sum()
        out.backward()
        return d_.grad.numpy(), e_.grad.numpy()
    return go


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=None)
    opts = ap.parse_args()
    rng = np.random.default_rng(common.SEED)
    rows, checks = [], []
    for n in SIZES:
        d, e = inputs(rng, n)
        c = rng.standard_normal(n)
        for quad in (False, True):
            mine, dense = linalgad_runs(d, e, c, quad)
            runs = {"linalgad": mine, "linalgad, dense eigh": dense}
            for name, make in (("jax-jit, dense eigh", jax_run), ("torch, dense eigh", torch_run)):
                run = make(d, e, c, quad)
                if run is not None:
                    runs[name] = run
            g = mine()
            for name in COLUMNS[1:]:
                if name in runs:
                    other = runs[name]()
                    checks.append((f"{name} n={n}{' quad' if quad else ''}",
                                   common.rel_err([np.asarray(o) for o in other], g)))
            ref = (lambda: sl.eigh_tridiagonal(d, e, check_finite=False)) if quad else \
                (lambda: sl.eigvalsh_tridiagonal(d, e, check_finite=False))
            best = common.interleaved_min({"ref": ref, **runs}, 3 if n >= 3000 else 5)
            r = best.pop("ref")
            rows.append([str(n), "quadrature (w, V)" if quad else "values (w)",
                         common.fmt_time(r)]
                        + [f"{best[c_] / r:.2f}" if c_ in best else "—" for c_ in COLUMNS])
            print(rows[-1], flush=True)
    lines = ["# eigh_tridiagonal: value and gradient over SciPy's forward", "",
             "Gradient w.r.t. the diagonal and off-diagonal; ratios to SciPy's forward of the "
             "same outputs; float64, one pinned core, one thread, interleaved, min over the "
             "rounds.  The dense columns assemble the n × n matrix and differentiate its eigh "
             "(no peer has a differentiable tridiagonal eigensolver).", "",
             *common.machine_info(), "",
             common.markdown_table(["n", "loss", "SciPy forward", *COLUMNS], rows), "",
             "Gradient agreement with linalgad's tridiagonal rule (max relative error): " +
             ", ".join(f"{name} {e_:.0e}" for name, e_ in checks), ""]
    common.emit("\n".join(lines), opts.out)


if __name__ == "__main__":
    main()
