"""Tape overhead per traced primitive on tiny arrays.

    taskset -c 0 .venv-bench/bin/python benchmarks/bench_overhead.py [--quick] [--peers ...] [--out F]

f(x): 1000 times `x = x * 1.0001 + 0.0` on a 2x2 float64 array, loss = sum of the final x.
One value+grad call records 2000 primitives (a multiply and an add per step); the table
shows the time of one call divided by 2000. Plain NumPy runs the same loop forward only,
without differentiation: the floor that every tape adds its overhead to.
"""

import common  # noqa: F401  (first: pins threads and the core before numpy is imported)

import argparse  # noqa: E402
import sys  # noqa: E402

import numpy as np  # noqa: E402

import peers  # noqa: E402

STEPS = 1000
PRIMITIVES = 2 * STEPS
LIBS = ("linalgad", "torch", "autograd", "jax-eager", "numpy")


def make_linalgad(x0):
    import linalgad as lad

    def f(x):
        for _ in range(STEPS):
            x = x * 1.0001 + 0.0
        return lad.sum(x)

    vg = lad.value_and_grad(f)
    return lambda: vg(x0)


def make_torch(x0):
    torch = peers.load_torch()
    x = torch.tensor(x0, requires_grad=True)

    def run():
        x.grad = None
        y = x
        for _ in range(STEPS):
            y = y * 1.0001 + 0.0
        L = torch.sum(y)
        L.backward()
        return L.detach(), x.grad

    return run


def make_autograd(x0):
    autograd = peers.load_autograd()
    import autograd.numpy as anp

    def f(x):
        for _ in range(STEPS):
            x = x * 1.0001 + 0.0
        return anp.sum(x)

    vg = autograd.value_and_grad(f)
    return lambda: vg(x0)


def make_jax_eager(x0):
    jax = peers.load_jax()
    jnp = jax.numpy

    def f(x):
        for _ in range(STEPS):
            x = x * 1.0001 + 0.0
        return jnp.sum(x)

    vg = jax.value_and_grad(f)
    xj = jax.device_put(x0)
    return lambda: jax.block_until_ready(vg(xj))


def make_numpy(x0):
    def run():
        x = x0
        for _ in range(STEPS):
            x = x * 1.0001 + 0.0
        return np.sum(x)

    return run


FACTORIES = {
    "linalgad": (lambda: _linalgad_ok(), make_linalgad),
    "torch": (peers.load_torch, make_torch),
    "autograd": (peers.load_autograd, make_autograd),
    "jax-eager": (peers.load_jax, make_jax_eager),
    "numpy": (lambda: True, make_numpy),
}


def _linalgad_ok():
    try:
        import linalgad as lad
        return callable(lad.value_and_grad) and callable(lad.sum)
    except Exception:
        return False


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smoke run: fewer, shorter repeats")
    ap.add_argument("--peers", default=",".join(LIBS),
                    help=f"comma-separated subset of {','.join(LIBS)} (default: all)")
    ap.add_argument("--out", help="also write the markdown table to this file")
    args = ap.parse_args(argv)
    wanted = [p.strip() for p in args.peers.split(",") if p.strip()]
    if set(wanted) - set(LIBS):
        ap.error(f"unknown peers {sorted(set(wanted) - set(LIBS))}; choose from {','.join(LIBS)}")

    x0 = np.random.default_rng(common.SEED).standard_normal((2, 2))
    timer = common.timer_settings(args.quick)
    rows, notes = [], []
    for name in wanted:
        available, factory = FACTORIES[name]
        if not available():
            rows.append([name, "—", "—"])
            notes.append(f"- {name}: not installed / not importable")
            continue
        # JAX eager takes ~0.5 s per call here: a few single-call repeats are enough.
        t_kw = dict(timer, repeats=3, warmup=1) if name == "jax-eager" else timer
        try:
            t = common.timeit(factory(x0), **t_kw)
        except Exception as e:
            rows.append([name, "error", "error"])
            notes.append(f"- {name}: {type(e).__name__}: {e}")
            continue
        print(f"  {name:>9}: {t}", file=sys.stderr, flush=True)
        what = "forward only" if name == "numpy" else "value+grad"
        rows.append([f"{name} ({what})", f"{t.per_call / PRIMITIVES * 1e6:.2f} µs",
                     common.fmt_time(t.per_call)])

    mode = " (QUICK smoke run; not for reporting)" if args.quick else ""
    text = "\n".join([
        f"# Tape overhead per primitive{mode}",
        "",
        f"value+grad of {STEPS} x `x = x * 1.0001 + 0.0` on a 2x2 float64 array "
        f"(loss = sum(x)), time per call / {PRIMITIVES} primitives; one thread, one pinned core.",
        "",
        *common.machine_info(),
        "",
        common.markdown_table(["library", "per primitive", "per call"], rows),
        *([""] + notes if notes else []),
    ])
    common.emit(text, args.out)


if __name__ == "__main__":
    main()
