"""polar, norms, cond, matrix_power, multi_dot: forward+backward over the NumPy/SciPy forward.

    taskset -c 1 .venv-bench/bin/python benchmarks/bench_norms.py [--quick] [--out FILE]

For each case: the loss sum(W_i * out_i) (touching every output), value and
gradient, for linalgad, JAX (jit), PyTorch and autograd where they have the
function; the ratio is (value+grad time) / (NumPy/SciPy forward time), all
measured in this run (ratios, not absolute times, compare across machines).
Each peer's gradient is checked once against linalgad's ("≠" marks a disagreement).
"""
import common  # noqa: F401  (first: pins threads and the core)
from common import fmt_time, machine_info, markdown_table, grads_agree

import argparse
import time

import numpy as np
import scipy.linalg

import linalgad as lad
from linalgad.rules import norms as N
from linalgad.rules.polar import polar
import peers

# name -> (numpy forward, linalgad fn, jax fn(jnp, jsl), torch fn, autograd fn(anp), batches?)
CASES = {
    "polar": (lambda a: scipy.linalg.polar(a) if a.ndim == 2 else [scipy.linalg.polar(x) for x in a],
              lambda a: polar(a), lambda jnp, jsl: (lambda a: jsl.polar(a, method="svd")), None, None, False),
    "norm fro": (lambda a: np.linalg.norm(a, "fro", axis=(-2, -1)),
                 lambda a: N.norm(a, "fro", axis=(-2, -1)),
                 lambda jnp, jsl: (lambda a: jnp.linalg.norm(a, "fro", axis=(-2, -1))),
                 lambda t: (lambda a: t.linalg.matrix_norm(a, "fro")),
                 lambda anp: (lambda a: anp.linalg.norm(a, "fro", axis=(a.ndim - 2, a.ndim - 1))), True),
    "norm nuc": (lambda a: np.linalg.norm(a, "nuc", axis=(-2, -1)),
                 lambda a: N.norm(a, "nuc", axis=(-2, -1)),
                 lambda jnp, jsl: (lambda a: jnp.linalg.norm(a, "nuc", axis=(-2, -1))),
                 lambda t: (lambda a: t.linalg.matrix_norm(a, "nuc")),
                 lambda anp: (lambda a: anp.linalg.norm(a, "nuc", axis=(a.ndim - 2, a.ndim - 1))), True),
    "norm 2": (lambda a: np.linalg.norm(a, 2, axis=(-2, -1)),
               lambda a: N.norm(a, 2, axis=(-2, -1)),
               lambda jnp, jsl: (lambda a: jnp.linalg.norm(a, 2, axis=(-2, -1))),
               lambda t: (lambda a: t.linalg.matrix_norm(a, 2)),
               lambda anp: (lambda a: anp.linalg.norm(a, 2, axis=(a.ndim - 2, a.ndim - 1))), True),
    "cond": (np.linalg.cond, N.cond, lambda jnp, jsl: jnp.linalg.cond,
             lambda t: t.linalg.cond, None, True),
    "matrix_power 5": (lambda a: np.linalg.matrix_power(a, 5), lambda a: N.matrix_power(a, 5),
                       lambda jnp, jsl: (lambda a: jnp.linalg.matrix_power(a, 5)),
                       lambda t: (lambda a: t.linalg.matrix_power(a, 5)),
                       lambda anp: (lambda a: anp.linalg.matrix_power(a, 5)), True),
    "multi_dot 3": (lambda a: np.linalg.multi_dot([a, a.T, a]),
                    lambda a: N.multi_dot([a, a.T, a]),
                    lambda jnp, jsl: (lambda a: jnp.linalg.multi_dot([a, a.T, a])),
                    lambda t: (lambda a: t.linalg.multi_dot([a, a.T, a])),
                    lambda anp: (lambda a: anp.linalg.multi_dot([a, a.T, a])), False),
}


def _flat(out):
    return list(out) if isinstance(out, (tuple, list)) else [out]


def _weights(rng, outs):
    return [rng.standard_normal(np.shape(o)) for o in outs]


def value_and_grad_fns(name, A, W):
    _, ours, jf, tf, af, _ = CASES[name]
    fns = {}

    def lad_loss(a):
        return sum(lad.sum(w * o) for w, o in zip(W, _flat(ours(a))))
    fns["linalgad"] = lambda: lad.value_and_grad(lad_loss)(A)[1]
    replayed = lad.jit(lad.value_and_grad(lad_loss))      # kernels recorded once, replayed
    fns["linalgad (jit)"] = lambda: replayed(A)[1]
    jax = peers.load_jax()
    if jax is not None and jf is not None:
        import jax.numpy as jnp
        import jax.scipy.linalg as jsl
        fj = jf(jnp, jsl)
        Wj = [jnp.asarray(w) for w in W]
        g = jax.jit(jax.grad(lambda a: sum(jnp.sum(w * o) for w, o in zip(Wj, _flat(fj(a))))))
        Aj = jnp.asarray(A)
        fns["jax (jit)"] = lambda: np.asarray(g(Aj).block_until_ready())
    torch = peers.load_torch()
    if torch is not None and tf is not None:
        ft = tf(torch)
        Wt = [torch.from_numpy(w) for w in W]

        def tgrad():
            a = torch.from_numpy(A).requires_grad_(True)
            loss = sum((w * o).sum() for w, o in zip(Wt, _flat(ft(a))))
            loss.backward()
            return a.grad.numpy()
        fns["torch"] = tgrad
    ag = peers.load_autograd()
    if ag is not None and af is not None:
        import autograd.numpy as anp
        f = af(anp)
        gfun = ag.grad(lambda a: sum(anp.sum(w * o) for w, o in zip(W, _flat(f(a)))))
        fns["autograd"] = lambda: gfun(A)
    return fns


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true")
    p.add_argument("--out")
    p.add_argument("--max-seconds", type=float, default=20.0, help="skip a peer cell slower than this")
    p.add_argument("--cases", help="comma-separated functions, e.g. 'norm 2,cond' (default: all)")
    p.add_argument("--shapes", help="comma-separated, e.g. '64,1000x32' (default: all)")
    args = p.parse_args()
    rounds, min_time = (3, 0.005) if args.quick else (7, 0.02)
    shapes = [(64,)] if args.quick else [(64,), (256,), (1024,), (10000, 4), (1000, 32)]
    if args.shapes:
        shapes = [tuple(int(d) for d in sh.split("x")) for sh in args.shapes.split(",")]
    cases = CASES if not args.cases else {c: CASES[c] for c in args.cases.split(",")}
    libs = ["linalgad", "linalgad (jit)", "jax (jit)", "torch", "autograd"]
    rows = []
    too_slow = set()                        # (case, library): slower than max_seconds once
    for name, case in cases.items():
        for sh in shapes:
            n = sh[-1]
            batch = sh[:-1]
            if batch and not case[5]:
                continue
            rng = np.random.default_rng(0)
            A = common.well_conditioned(rng, batch, n) if hasattr(common, "well_conditioned") else \
                rng.standard_normal(batch + (n, n))
            A = np.asarray(A, dtype=np.float64)
            if name.startswith("matrix_power") or name.startswith("multi_dot"):
                A = A / np.linalg.norm(A, 2, axis=(-2, -1), keepdims=True)
            label = f"{'×'.join(map(str, batch))}×{n}×{n}" if batch else f"n={n}"
            W = _weights(rng, _flat(CASES[name][1](A)))
            fns = value_and_grad_fns(name, A, W)
            ref = fns["linalgad"]()
            cells, timed = {}, {"ref": lambda: case[0](A)}
            for lib in libs:
                if lib not in fns:
                    cells[lib] = "—"
                    continue
                if (name, lib) in too_slow:       # larger shapes would only be slower
                    cells[lib] = "skipped (>20 s/call at a smaller size)"
                    continue
                t0 = time.perf_counter()
                try:
                    g = fns[lib]()
                except Exception as e:           # a peer that cannot differentiate it
                    cells[lib] = f"fails ({type(e).__name__})"
                    continue
                if time.perf_counter() - t0 > args.max_seconds:
                    too_slow.add((name, lib))
                    cells[lib] = "skipped (>20 s/call)"
                    continue
                mark = "" if lib == "linalgad" or grads_agree([g], [ref], 1e-6) else " ≠"
                if lib == "linalgad (jit)":
                    g = fns[lib]()              # the first call recorded; check a replay too
                    mark = "" if grads_agree([g], [ref], 1e-12) else " ≠"
                cells[lib] = mark
                timed[lib] = fns[lib]
            # every library and the forward once per round, minimum over the rounds
            best = common.interleaved_timings(timed, rounds, min_time)
            fwd = best["ref"].per_call
            cells = [f"{best[lib].per_call / fwd:.2f}×{cells[lib]}" if lib in best else cells[lib]
                     for lib in libs]
            rows.append([name, label, fmt_time(fwd)] + cells)
            print(rows[-1], flush=True)
    text = "\n".join(["# polar / norms / cond / matrix_power / multi_dot benchmark", "",
                      "Forward+backward (value and gradient of sum(W·out)) over the NumPy/SciPy "
                      "forward, float64, minimum over interleaved rounds (each round times the forward "
                      "and every library once, inner loops of >= 20 ms) in one run; "
                      "— = the library lacks the function (PyTorch and autograd have no polar; "
                      "autograd has no cond; JAX polar uses method='svd': its default qdwh has no reverse rule); ≠ = gradient disagrees with linalgad's (rtol 1e-6).",
                      "", *machine_info(), "",
                      markdown_table(["function", "shape", "NumPy/SciPy fwd"] + libs, rows), ""])
    print(text)
    if args.out:
        open(args.out, "w").write(text)


if __name__ == "__main__":
    main()
