"""Hessian-vector products through a matrix function: time / forward-only NumPy eigh time.

    taskset -c 1 .venv-bench/bin/python benchmarks/bench_hessian.py [--quick] [--out F]

Loss L(A) = sum(G * e^A) for symmetric A (n × n, float64, spread spectrum, no tie), one
Hessian-vector product H·T per call (forward over reverse), T symmetric:

    linalgad, funmh    lad.hvp of sum(G * funmh(a, np.exp))  (exact at ties too); and the
                       same under lad.jit (the recorded kernels replayed)
    linalgad, eigh     lad.hvp of sum(G * (V * exp(w)) @ V.T)  (warns and is inexact at ties)
    jax, eigh          jax.jvp(jax.grad(L)) with jnp.linalg.eigh, jitted  (NaN at ties)
    jax, expm          the same with jax.scipy.linalg.expm, jitted (a dedicated rule,
                       exact, for the exponential only)
    torch, eigh        torch.autograd.functional.hvp with torch.linalg.eigh (NaN at ties)

Each cell: the hvp's time over NumPy's eigh of the same A, every entry timed in the same
interleaved rounds (min over 7 rounds of >= 20 ms), one thread, one pinned core.  The
accuracy at ties is in docs/derivations/funmh.md, section 8; here all inputs are generic,
and every result is compared with linalgad funmh's (relative error, max-norm).
"""

import common  # noqa: F401  (first: pins threads and the core before numpy is imported)

import argparse  # noqa: E402

import numpy as np  # noqa: E402

import peers  # noqa: E402

import linalgad as lad  # noqa: E402
from linalgad import linalg as la  # noqa: E402


def _symmetric(rng, n):
    X = rng.standard_normal((n, n))
    return (X + X.T) / (2 * np.sqrt(n))


def cell_fns(n, rng):
    A, G, T = _symmetric(rng, n), rng.standard_normal((n, n)), _symmetric(rng, n)
    fns = {}

    def funmh_loss(a):
        return lad.sum(G * la.funmh(a, np.exp))

    def eigh_loss(a):
        w, V = la.eigh(a)
        return lad.sum(G * ((V * lad.exp(w)) @ lad.mT(V)))
    # the lower triangle is what linalgad's rules read: its direction is tril(T)
    Tl = np.tril(T)
    fns["linalgad, funmh"] = lambda: lad.hvp(funmh_loss, (A,), (Tl,))[0]
    replayed = lad.jit(lambda a, t: lad.hvp(funmh_loss, (a,), (t,))[0])
    fns["linalgad-jit, funmh"] = lambda: replayed(A, Tl)
    fns["linalgad, eigh"] = lambda: lad.hvp(eigh_loss, (A,), (Tl,))[0]
    jax = peers.load_jax()
    if jax is not None:
        import jax.numpy as jnp
        import jax.scipy.linalg as jsl
        Gj, Aj, Tj = jnp.asarray(G), jnp.asarray(A), jnp.asarray(T)

        def jeigh(a):
            w, V = jnp.linalg.eigh(a)
            return jnp.sum(Gj * ((V * jnp.exp(w)) @ V.T))
        for name, L in (("jax, eigh", jeigh), ("jax, expm", lambda a: jnp.sum(Gj * jsl.expm(a)))):
            h = jax.jit(lambda a, t, L=L: jax.jvp(jax.grad(L), (a,), (t,))[1])
            fns[name] = lambda h=h: np.asarray(h(Aj, Tj).block_until_ready())
    torch = peers.load_torch()
    if torch is not None:
        Gt, At, Tt = (torch.from_numpy(x) for x in (G, A, T))

        def teigh(a):
            w, V = torch.linalg.eigh(a)
            return (Gt * ((V * torch.exp(w)) @ V.T)).sum()
        fns["torch, eigh"] = lambda: torch.autograd.functional.hvp(teigh, At, Tt)[1].numpy()
    return A, T, fns


def _contract(name, h, T):
    """⟨T, H T⟩ in each library's convention: linalgad differentiates the lower triangle
    it reads (direction tril T), the peers the full symmetric matrix: the same scalar."""
    return float(np.sum((np.tril(T) if name.startswith("linalgad") else T) * h))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true")
    p.add_argument("--out")
    args = p.parse_args()
    rounds, min_time = (3, 0.005) if args.quick else (7, 0.02)
    sizes = (16, 64) if args.quick else (16, 64, 256)
    rows, libs = [], None
    for n in sizes:
        rng = np.random.default_rng(n)
        A, T, fns = cell_fns(n, rng)
        libs = list(fns)
        ref_name, ref, timed = common.time_cell({"numpy eigh": lambda: np.linalg.eigh(A)},
                                                fns, rounds, min_time)
        want = _contract("linalgad, funmh", fns["linalgad, funmh"](), T)
        row = [f"{n}x{n}", common.fmt_time(ref.per_call)]
        for name in libs:
            err = abs(_contract(name, fns[name](), T) - want) / abs(want)
            row.append(f"{timed[name].per_call / ref.per_call:.2f} ({err:.0e})")
        rows.append(row)
    text = "\n".join(["# Hessian-vector products through e^A: hvp time / NumPy eigh time",
                      "", *common.machine_info(), "",
                      "Cell: ratio (relative difference of ⟨T, H T⟩ from linalgad funmh's).", "",
                      common.markdown_table(["n", "eigh ref", *libs], rows)])
    common.emit(text, args.out)


if __name__ == "__main__":
    main()
