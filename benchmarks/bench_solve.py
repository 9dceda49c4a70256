"""solve: value+gradient cost of linalgad and its peers, as a ratio to NumPy/SciPy's forward.

    taskset -c 0 .venv-bench/bin/python benchmarks/bench_solve.py [--quick] [--peers ...] [--out F]

Loss: L(A, b) = sum(solve(A, b) * W), gradient w.r.t. (A, b). b and W are n x 8 (stacked
like A for the batched shapes). Each cell is (value+grad time) / (forward-only reference
time), all measured in this one run, on one pinned core with one thread.
"""

import common  # noqa: F401  (first: pins threads and the core before numpy is imported)

import argparse  # noqa: E402
import sys  # noqa: E402
import traceback  # noqa: E402

import numpy as np  # noqa: E402
import scipy.linalg  # noqa: E402

import peers  # noqa: E402

K = 8  # right-hand sides
# linalgad eager, and linalgad.jit(value_and_grad(...)) (replayed kernels: the
# counterpart of jax.jit; see benchmarks/README.md)
LIBS = ("linalgad", "linalgad-jit") + peers.PEER_NAMES


# --- linalgad, through its public API only ----------------------------------------------
def load_linalgad():
    """(lad, la) or None, with the reason in LINALGAD_MISSING."""
    global LINALGAD_MISSING
    try:
        import linalgad as lad
        from linalgad import linalg as la
        lad.value_and_grad, lad.sum, la.solve  # noqa: B018  (fail here if not there yet)
        return lad, la
    except Exception as e:  # not importable yet, or the API is not complete
        LINALGAD_MISSING = f"{type(e).__name__}: {e}"
        return None


LINALGAD_MISSING = None


def linalgad_solve(A, b, W, jit=False):
    lad, la = load_linalgad()

    def loss(A, b):
        return lad.sum(la.solve(A, b, check_finite=False) * W)

    vg = lad.value_and_grad(loss, argnums=(0, 1))
    if jit:
        vg = lad.jit(vg)

    def run():
        return vg(A, b)

    def unpack(out):
        val, (gA, gb) = out
        return float(np.asarray(val)), np.asarray(gA), np.asarray(gb)

    return run, unpack


# --- reference ---------------------------------------------------------------------------
def reference(A, b, batched, timer):
    """Fastest forward-only solve: (Timing, label)."""
    cands = {"numpy": lambda: np.linalg.solve(A, b)}
    if not batched:
        cands["scipy"] = lambda: scipy.linalg.solve(A, b, check_finite=False)
    timed = {name: common.timeit(fn, **timer) for name, fn in cands.items()}
    best = min(timed, key=lambda name: timed[name].per_call)
    return timed[best], best


def exact(A, b, W):
    """value, A_bar, b_bar from the closed form: b_bar = A^-T W, A_bar = -b_bar x^T."""
    x = np.linalg.solve(A, b)
    b_bar = np.linalg.solve(np.swapaxes(A, -1, -2), W)
    return float(np.sum(x * W)), -b_bar @ np.swapaxes(x, -1, -2), b_bar


def agrees(got, want):
    return all(np.allclose(g, w, rtol=1e-7, atol=1e-9 * max(1.0, np.max(np.abs(w))))
               for g, w in zip(got, want))


# --- main --------------------------------------------------------------------------------
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: fewer, shorter repeats; skip n=1024")
    ap.add_argument("--peers", default=",".join(LIBS),
                    help=f"comma-separated subset of {','.join(LIBS)} (default: all)")
    ap.add_argument("--shapes", default=None,
                    help="comma-separated subset of shape labels, e.g. 16x16,10000x4x4")
    ap.add_argument("--out", help="also write the markdown table to this file")
    ap.add_argument("-v", "--verbose", action="store_true", help="print tracebacks of errors")
    args = ap.parse_args(argv)

    wanted = [p.strip() for p in args.peers.split(",") if p.strip()]
    unknown = set(wanted) - set(LIBS)
    if unknown:
        ap.error(f"unknown peers {sorted(unknown)}; choose from {','.join(LIBS)}")
    libs = {}
    if "linalgad" in wanted and load_linalgad() is not None:
        libs["linalgad"] = linalgad_solve
    if "linalgad-jit" in wanted and load_linalgad() is not None:
        libs["linalgad-jit"] = lambda A, b, W: linalgad_solve(A, b, W, jit=True)
    libs.update(peers.available([p for p in peers.PEER_NAMES if p in wanted]))

    shapes = common.SHAPES
    if args.shapes:
        keep = set(args.shapes.split(","))
        shapes = [s for s in shapes if s[0] in keep]
    elif args.quick:
        shapes = [s for s in shapes if s[0] not in common.QUICK_SKIP]
    timer = common.timer_settings(args.quick)
    rng = np.random.default_rng(common.SEED)

    rows, abs_rows, notes = [], [], []
    for label, batch, n in shapes:
        A = common.well_conditioned(rng, batch, n)
        b = rng.standard_normal(batch + (n, K))
        W = rng.standard_normal(batch + (n, K))
        want = exact(A, b, W)
        ref, ref_name = reference(A, b, bool(batch), timer)
        cells, abs_cells, ratios = {}, {}, {}
        for name, factory in libs.items():
            try:
                run, unpack = factory(A, b, W)
                # the checked result stays alive while timing: a held array keeps glibc
                # from trimming the heap after each call, so every call would otherwise
                # fault in fresh pages (benchmarks/README.md, "Allocator trap")
                held = unpack(run())
                ok = agrees(held, want)
                t = common.timeit(run, **timer)
                del held
            except Exception as e:
                cells[name] = abs_cells[name] = "error"
                notes.append(f"- {name} {label}: {type(e).__name__}: {e}")
                if args.verbose:
                    traceback.print_exc()
                continue
            ratios[name] = t.per_call / ref.per_call
            mark = "" if ok else " (wrong!)"
            if not ok:
                notes.append(f"- {name} {label}: value/gradient disagree with the closed form")
            cells[name] = f"{ratios[name]:.2f}{mark}"
            abs_cells[name] = common.fmt_time(t.per_call)
            print(f"  {label:>11} {name:>9}: {t}", file=sys.stderr, flush=True)
        peer_ratios = {k: v for k, v in ratios.items() if k in peers.PEER_NAMES}
        best = f"**{min(peer_ratios.values()):.2f}**" if peer_ratios else "—"
        rows.append([label, f"{common.fmt_time(ref.per_call)} ({ref_name})"]
                    + [cells.get(name, "—") for name in LIBS] + [best])
        abs_rows.append([label, common.fmt_time(ref.per_call)]
                        + [abs_cells.get(name, "—") for name in LIBS])

    if "linalgad" in wanted and "linalgad" not in libs:
        notes.append(f"- linalgad not measured: {LINALGAD_MISSING}")
    for name in peers.PEER_NAMES:
        if name in wanted and name not in libs:
            notes.append(f"- {name}: not installed")

    mode = " (QUICK smoke run: 3 repeats of >= 5 ms; not for reporting)" if args.quick else ""
    text = "\n".join([
        f"# solve: value+grad time / forward-only reference time{mode}",
        "",
        "L(A, b) = sum(solve(A, b) * W), gradient w.r.t. (A, b); b is n x 8; float64; "
        "condition number <= 3. Reference: fastest of numpy.linalg.solve and "
        "scipy.linalg.solve(check_finite=False) (numpy only for stacks); linalgad's solve "
        "with check_finite=False too. "
        "Median of repeats after warm-up, one thread, one pinned core, all in one run.",
        "",
        *common.machine_info(),
        "",
        common.markdown_table(["shape", "fwd ref"] + list(LIBS) + ["best peer"], rows),
        "",
        "Absolute value+grad time per call:",
        "",
        common.markdown_table(["shape", "fwd ref"] + list(LIBS), abs_rows),
        *([""] + notes if notes else []),
    ])
    common.emit(text, args.out)


if __name__ == "__main__":
    main()
