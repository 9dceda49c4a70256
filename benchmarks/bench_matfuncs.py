"""Matrix functions: forward+backward time over forward-only SciPy time, against peers.

    taskset -c 0 .venv-bench/bin/python benchmarks/bench_matfuncs.py [--quick] [--rules expm,...] [--out FILE]

For expm, expm_frechet (compute_expm=False), sqrtm and logm: the value and the
gradient of L = sum(W * f(A)) (every output entry touched), float64, divided by
the time of the forward-only SciPy call on the same input, for linalgad and each
peer that has a differentiable version.  Every library's gradient is checked once
against linalgad's.  Times are the minimum over interleaved repeats (each round calls
every library once), so the ratios inside one run are comparable on a noisy machine.
"""

import common  # noqa: F401  (first: pins threads and the core)

import argparse  # noqa: E402

import numpy as np  # noqa: E402
import scipy.linalg as sl  # noqa: E402

import linalgad as lad  # noqa: E402
from linalgad import linalg as la  # noqa: E402
import peers  # noqa: E402

SHAPES = [("64x64", (), 64), ("256x256", (), 256), ("1024x1024", (), 1024),
          ("10000x4x4", (10000,), 4), ("1000x32x32", (1000,), 32)]
QUICK = [("64x64", (), 64), ("256x256", (), 256), ("100x4x4", (100,), 4)]
SLOW_LIMIT = 20.0      # seconds per call above which a cell is skipped
# SciPy's logm (the reference) loops over a stack in Python at about 1 ms per small
# matrix (10 s a call for 10,000 of order 4): that stack is left out for every library.
# (linalgad's own logm runs a stack as one vectorised computation, linalgad._logm_stack.)
SKIP = {("logm", "10000x4x4")}


def inputs(rule, batch, n, rng):
    if rule in ("expm", "expm_frechet"):
        A = common.well_conditioned(rng, batch, n) / 3.0 * 0.8      # ‖A‖₂ <= 0.8
    else:                                                             # eigenvalues near [0.5, 2]
        A = np.eye(n) + 0.3 * rng.standard_normal(batch + (n, n)) / np.sqrt(n)
    E = rng.standard_normal(batch + (n, n))
    W = rng.standard_normal(batch + (n, n))
    return A, E, W


def reference(rule, A, E):
    if rule == "expm":
        return lambda: sl.expm(A)
    if rule == "expm_frechet":
        return lambda: sl.expm_frechet(A, E, compute_expm=False, check_finite=False)
    return lambda: getattr(sl, rule)(A)


def linalgad_run(rule, A, E, W, jit=False):
    wrap = lad.jit if jit else (lambda f: f)
    if rule == "expm_frechet":
        vg = wrap(lad.value_and_grad(
            lambda a, e: lad.sum(W * la.expm_frechet(a, e, compute_expm=False)), argnums=(0, 1)))
        return lambda: vg(A, E), lambda out: out[1][0]
    fun = getattr(la, rule)
    vg = wrap(lad.value_and_grad(lambda a: lad.sum(W * fun(a))))
    return lambda: vg(A), lambda out: out[1]


def jax_run(rule, A, E, W):
    jax = peers.load_jax()
    if jax is None or rule in ("sqrtm", "logm"):   # sqrtm: no derivative of schur; no logm
        return None
    jnp, jsl = jax.numpy, jax.scipy.linalg
    if rule == "expm":
        f = jax.jit(jax.value_and_grad(lambda a, w: jnp.sum(w * jsl.expm(a))))
        args = (A, W)
    else:
        f = jax.jit(jax.value_and_grad(
            lambda a, e, w: jnp.sum(w * jsl.expm_frechet(a, e, compute_expm=False)),
            argnums=(0, 1)))
        args = (A, E, W)
    if A.ndim > 2:                                  # jax's expm takes one matrix: vmap
        return None if rule == "expm_frechet" else _jax_batched(jax, jsl, A, W)
    dev = [jax.device_put(x) for x in args]
    unpack = (lambda o: np.asarray(o[1])) if rule == "expm" else (lambda o: np.asarray(o[1][0]))
    return lambda: jax.block_until_ready(f(*dev)), unpack


def _jax_batched(jax, jsl, A, W):
    jnp = jax.numpy
    f = jax.jit(jax.value_and_grad(lambda a, w: jnp.sum(w * jax.vmap(jsl.expm)(a))))
    a, w = jax.device_put(A), jax.device_put(W)
    return lambda: jax.block_until_ready(f(a, w)), lambda o: np.asarray(o[1])


def torch_run(rule, A, E, W):
    torch = peers.load_torch()
    if torch is None or rule != "expm":             # torch: matrix_exp only
        return None
    a = torch.tensor(A, requires_grad=True)
    w = torch.tensor(W)

    def run():
        a.grad = None
        v = (w * torch.linalg.matrix_exp(a)).sum()
        v.backward()
        return v.item(), a.grad
    return run, lambda o: o[1].numpy().copy()


def autograd_run(rule, A, E, W):
    ag = peers.load_autograd()
    if ag is None or rule == "expm_frechet" or A.ndim > 2:
        return None
    import autograd.numpy as anp
    import autograd.scipy.linalg as asl
    f = getattr(asl, rule, None)
    if f is None:
        return None
    try:                                            # does it have a gradient at all?
        ag.grad(lambda a: anp.sum(f(a)))(np.eye(2) + 0.1 * np.ones((2, 2)))
    except Exception:
        return None
    vg = ag.value_and_grad(lambda a: anp.sum(W * f(a)))
    return lambda: vg(A), lambda o: o[1]


PEERS = (("jax-jit", jax_run), ("torch", torch_run), ("autograd", autograd_run))
LIBS = ("linalgad", "linalgad-jit") + tuple(p for p, _ in PEERS)   # -jit: lad.jit(value_and_grad)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small shapes, few repeats")
    ap.add_argument("--out", default=None, help="markdown file to write")
    ap.add_argument("--rules", default="expm,expm_frechet,sqrtm,logm",
                    help="comma-separated subset (inputs are drawn in this order, so a "
                         "prefix of the default list sees the same inputs as a full run)")
    ap.add_argument("--shapes", default=None,
                    help="comma-separated subset of the shape labels, e.g. 64x64,1000x32x32")
    args = ap.parse_args()
    shapes = QUICK if args.quick else SHAPES
    if args.shapes:
        shapes = [s for s in shapes if s[0] in args.shapes.split(",")]
    rounds, min_time = (2, 0.005) if args.quick else (5, 0.05)
    out = args.out or ("benchmarks/results_matfuncs.quick.md" if args.quick
                       else "benchmarks/results_matfuncs.md")
    rng = np.random.default_rng(common.SEED)
    info = common.machine_info()
    rows, agree = [], []
    for rule in args.rules.split(","):
        for label, batch, n in shapes:
            if (rule, label) in SKIP:
                continue
            A, E, W = inputs(rule, batch, n, rng)
            fns, unpacks = {"ref": reference(rule, A, E)}, {}
            run, unpack = linalgad_run(rule, A, E, W)
            fns["linalgad"], unpacks["linalgad"] = run, unpack
            fns["linalgad-jit"], unpacks["linalgad-jit"] = linalgad_run(rule, A, E, W, jit=True)
            for name, make in PEERS:
                made = make(rule, A, E, W)
                if made is not None:
                    fns[name], unpacks[name] = made
            best = common.interleaved_min(fns, rounds, min_time, slow_limit=SLOW_LIMIT)
            g0 = unpacks["linalgad"](fns["linalgad"]())
            cells = []
            for lib in LIBS:
                if lib not in fns:
                    cells.append("—")
                    continue
                t = best[lib]
                if t is None or best["ref"] is None:
                    cells.append(f"skipped (> {SLOW_LIMIT:.0f} s/call)")
                    continue
                cell = f"{t / best['ref']:.2f}"
                if lib != "linalgad":
                    err = common.rel_err(unpacks[lib](fns[lib]()), g0)
                    mark = "" if err < 1e-6 else " ✗"
                    agree.append((rule, label, lib, f"{err:.1e}{mark}"))
                    cell += mark
                cells.append(cell)
            ref = "—" if best["ref"] is None else common.fmt_time(best["ref"])
            peer_ratios = [best[p] / best["ref"] for p in LIBS[2:] if p in fns and best.get(p)
                           and best["ref"]]
            rows.append([rule, label, ref] + cells +
                         [f"{min(peer_ratios):.2f}" if peer_ratios else "—"])
            print(rows[-1], flush=True)
    text = "\n".join([
        "# Matrix functions: forward+backward / forward-only SciPy (float64)",
        "",
        *info,
        "",
        f"Loss sum(W * f(A)); value and gradient (expm_frechet: in A and E, compute_expm=False) "
        f"over the SciPy forward call; min over {rounds} interleaved rounds.  — : the library "
        "has no differentiable version (jax: sqrtm's Schur has no derivative, no logm; "
        "torch: matrix_exp only; autograd: single matrices only, no expm_frechet).  ✗: "
        "gradient disagrees with linalgad's (rel. error > 1e-6).",
        "",
        common.markdown_table(["rule", "shape", "SciPy fwd"] + list(LIBS) + ["best peer"], rows),
        "",
        "Gradient agreement with linalgad (max relative error):",
        "",
        common.markdown_table(["rule", "shape", "library", "rel. error"], agree),
        "",
        "- logm 10000x4x4 is not timed: the reference, SciPy's logm, loops over a stack in "
        "Python (about 1 ms a matrix, 10 s a call).",
    ])
    common.emit(text, out)


if __name__ == "__main__":
    main()
