"""Matrix equations: value+gradient cost of linalgad and its peers, as a ratio to SciPy's forward.

    taskset -c 1 .venv-bench/bin/python benchmarks/bench_sylvester.py [--quick] [--out F]

Loss L = sum(W * X) (W a fixed random real weight, so every entry of X is touched), its
gradient taken w.r.t. every matrix argument:

    solve_sylvester            X = solve_sylvester(a, b, q)       grads (a, b, q)
    solve_continuous_lyapunov  X = solve_continuous_lyapunov(a, q) grads (a, q)
    solve_discrete_lyapunov    X = solve_discrete_lyapunov(a, q)   grads (a, q)

Inputs (float64): a, b = 2I + G/‖G‖₂ (spectra in unit discs around 2: a and −b well
separated); continuous: a = −2I − G/‖G‖₂ (stable); discrete: a = 0.7 G/‖G‖₂ (spectral
radius <= 0.7, SciPy's automatic method: 'direct' below n = 10, 'bilinear' above).

Each cell is (value+grad time) / (SciPy forward time on the same inputs), every library
timed in the same run, interleaved, min over the repeats. Peers:
- HIPS autograd: solve_sylvester has a VJP (unbatched only; its backward redoes both Schur
  decompositions); its solve_continuous_lyapunov / solve_discrete_lyapunov have no VJP.
  The continuous equation is also timed as autograd's solve_sylvester(a, aᵀ, q) (marked).
- JAX 0.10: jax.scipy.linalg.solve_sylvester exists but is not differentiable w.r.t. a, b
  (no differentiation rule for schur; method='eigen' refuses eigenvector derivatives);
  no Lyapunov solvers.  PyTorch: no matrix-equation solvers.
Gradients of each peer are checked once against linalgad's (relative error, max-norm).
"""

import common  # noqa: F401  (first: pins threads and the core before numpy is imported)


import numpy as np  # noqa: E402
import scipy.linalg as sl  # noqa: E402

import peers  # noqa: E402

import linalgad as lad  # noqa: E402
from linalgad import linalg as la  # noqa: E402

RULES = ("solve_sylvester", "solve_continuous_lyapunov", "solve_discrete_lyapunov")
SHAPES = [s for s in common.SHAPES if s[0] != "16x16"]
QUICK = {"64x64", "1000x32x32"}
RTOL = 1e-6


def unit(rng, batch, n):
    G = rng.standard_normal(batch + (n, n))
    return G / np.linalg.norm(G, 2, axis=(-2, -1))[..., None, None]


def inputs(rule, rng, batch, n):
    q = rng.standard_normal(batch + (n, n))
    if rule == "solve_sylvester":
        return (2 * np.eye(n) + unit(rng, batch, n), 2 * np.eye(n) + unit(rng, batch, n), q)
    if rule == "solve_continuous_lyapunov":
        return (-2 * np.eye(n) - unit(rng, batch, n), q)
    return (0.7 * unit(rng, batch, n), q)


def linalgad_run(rule, args, W):
    fn = getattr(la, rule)
    vg = lad.value_and_grad(lambda *a: lad.sum(fn(*a) * W), argnums=tuple(range(len(args))))
    return lambda: vg(*args)[1]


def autograd_run(rule, args, W):
    ag = peers.load_autograd()
    if ag is None:
        return None, "autograd not installed"
    import autograd.numpy as anp
    import autograd.scipy.linalg as asl
    if rule == "solve_discrete_lyapunov":
        return None, "autograd's solve_discrete_lyapunov has no VJP"
    if args[0].ndim > 2:
        return None, "autograd's solve_sylvester is unbatched"
    if rule == "solve_sylvester":
        fn = asl.solve_sylvester
    elif rule == "solve_continuous_lyapunov":
        def fn(a, q):  # its own solve_continuous_lyapunov has no VJP
            return asl.solve_sylvester(a, anp.transpose(a), q)
    g = ag.grad(lambda *a: anp.sum(fn(*a) * W), argnum=tuple(range(len(args))))
    return (lambda: g(*args)), None


def main():
    opts, rng, shapes = common.cell_options(SHAPES, QUICK, key=lambda s: s[0])
    rows, notes, checks = [], [], []
    for rule in RULES:
        for label, batch, n in shapes:
            args = inputs(rule, rng, batch, n)
            W = rng.standard_normal(batch + (n, n))
            runs = {"scipy fwd": (lambda f=getattr(sl, rule): f(*args)),
                    "linalgad": linalgad_run(rule, args, W)}
            ag, why = autograd_run(rule, args, W)
            if ag is not None:
                runs["autograd"] = ag
            elif (rule, why) not in notes:
                notes.append((rule, why))
            if ag is not None:          # gradient agreement, once per cell
                mine, theirs = runs["linalgad"](), ag()
                err = common.rel_err(theirs, [np.asarray(g) for g in mine])
                checks.append((rule, label, err))
            big = n >= 1024
            best = common.interleaved_min(runs, 3 if big or opts.quick else 7, warmup=False)
            ref = best["scipy fwd"]
            rows.append([rule, label, common.fmt_time(ref),
                         f"{best['linalgad'] / ref:.2f}",
                         (f"{best['autograd'] / ref:.2f}"
                          + ("" if common.grads_agree(ag(), runs['linalgad'](), RTOL) else " ✗")
                          + (" ‡" if rule == "solve_continuous_lyapunov" else ""))
                         if ag is not None else "—"])
            print(rows[-1], flush=True)
    lines = ["# Matrix equations (solve_sylvester, solve_continuous_lyapunov, "
             "solve_discrete_lyapunov)", "",
             "Value + gradient (w.r.t. every matrix argument) of L = sum(W * X), as a ratio to "
             "SciPy's forward-only time on the same inputs; float64, one pinned core, one "
             "thread, libraries interleaved in one run, min over repeats (3 at n = 1024, else "
             "7).  — : the peer lacks it.  ✗ : gradient disagrees with linalgad's "
             f"(rtol {RTOL}).  ‡ : autograd computed as solve_sylvester(a, aᵀ, q).", "",
             *common.machine_info(), "",
             common.markdown_table(["rule", "shape", "SciPy forward", "linalgad fwd+grad",
                                    "autograd fwd+grad"], rows), "",
             "Peers lacking the rule: JAX 0.10 (jax.scipy.linalg.solve_sylvester is not "
             "differentiable w.r.t. a, b: no rule for schur; no Lyapunov solvers), PyTorch "
             "2.13 (no matrix-equation solvers).",
             *[f"- {rule}: {why}" for rule, why in notes], "",
             "Gradient agreement with linalgad (max relative error): " +
             ", ".join(f"{r} {lab} {e:.0e}" for r, lab, e in checks), ""]
    common.emit("\n".join(lines), opts.out)


if __name__ == "__main__":
    main()
