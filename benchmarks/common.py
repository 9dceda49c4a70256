"""Shared pieces of the benchmark harness: pinning, timing, shapes, machine info, tables.

Import this module FIRST in every benchmark script: it pins the process to one
core and one BLAS/OpenMP thread before NumPy (or any peer) is imported, since
thread pools read their sizes when their library is loaded.
"""

import os
import sys

# --- pinning: must happen before numpy / scipy / torch / jax are imported -------------
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
               "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")
for _var in THREAD_VARS:
    os.environ[_var] = "1"


def _pin_one_core():
    """Pin this process to one core (core 0, or the lowest one we may run on)."""
    try:
        allowed = os.sched_getaffinity(0)
        core = 0 if 0 in allowed else min(allowed)
        os.sched_setaffinity(0, {core})
        return core
    except (AttributeError, OSError):  # not Linux: leave it to taskset-like tools
        return None


PINNED_CORE = _pin_one_core()

if "numpy" in sys.modules:  # pragma: no cover - a misuse we want to be loud about
    print("warning: benchmarks/common.py imported after numpy; thread pinning may not apply",
          file=sys.stderr)

# linalgad itself: an installed (editable) copy wins; otherwise the repository checkout.
_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _REPO_ROOT not in sys.path:
    sys.path.append(_REPO_ROOT)

import gc  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from importlib import metadata  # noqa: E402

import numpy as np  # noqa: E402

SEED = 20261122

# (label, batch shape, n): unbatched n x n, then stacks of small matrices.
SHAPES = [
    ("16x16", (), 16),
    ("64x64", (), 64),
    ("256x256", (), 256),
    ("1024x1024", (), 1024),
    ("10000x4x4", (10000,), 4),
    ("1000x32x32", (1000,), 32),
]
QUICK_SKIP = {"1024x1024"}


# --- timing ------------------------------------------------------------------------------
class Timing:
    """Seconds per call (timeit: the median of `repeats` repeats of `inner` calls each;
    interleaved_timings: the minimum over interleaved rounds)."""

    def __init__(self, per_call, inner, repeats, spread):
        self.per_call, self.inner, self.repeats, self.spread = per_call, inner, repeats, spread

    def __repr__(self):
        return (f"Timing({fmt_time(self.per_call)}/call, inner={self.inner}, "
                f"repeats={self.repeats}, spread={self.spread:.0%})")


def timeit(fn, repeats=7, min_repeat_time=0.02, warmup=2):
    """Time fn() -> Timing: warm up, pick an inner loop count so that one repeat takes
    at least `min_repeat_time` seconds, then take the median of `repeats` repeats.

    The garbage collector stays on (tapes create cycles; collecting them is part of
    their real cost), but starts each measurement from a collected heap.
    """
    for _ in range(warmup):
        fn()
    clock = time.perf_counter

    def run(inner):
        t0 = clock()
        for _ in range(inner):
            fn()
        return clock() - t0

    inner = 1
    while True:
        t = run(inner)
        if t >= min_repeat_time:
            break
        # aim 20% over the target, grow at least 2x, at most 100x per step
        inner = max(2 * inner, min(100 * inner, int(inner * 1.2 * min_repeat_time / max(t, 1e-9))))
    gc.collect()
    samples = [run(inner) / inner for _ in range(repeats)]
    med = statistics.median(samples)
    spread = (max(samples) - min(samples)) / med if med > 0 else 0.0
    return Timing(med, inner, repeats, spread)


def interleaved_samples(fns, rounds, min_time=0.02, slow_limit=None, warmup=True,
                        inner=None):
    """{name: [seconds per call, one per round]}, every library in every round (inner loops
    of at least ``min_time`` s), so ratios inside one run are comparable on a noisy machine:
    a burst of load slows every library's sample of that round, not one library's cell.

    One untimed warm-up call (JIT compilation, caches) unless ``warmup`` is False, then one
    timed call that sets the inner count (it is the first sample); a function slower than
    ``slow_limit`` s per call is not repeated and its samples are None. ``inner``, a dict
    when given, receives each function's inner loop count.
    """
    inner, samples = ({} if inner is None else inner), {}
    for name, fn in fns.items():
        if warmup:
            fn()
        t0 = time.perf_counter()
        fn()
        t = time.perf_counter() - t0
        samples[name] = None if slow_limit is not None and t > slow_limit else [t]
        inner[name] = max(1, int(min_time / max(t, 1e-9)))
    gc.collect()
    for _ in range(rounds):
        for name, fn in fns.items():
            if samples[name] is None:
                continue
            t0 = time.perf_counter()
            for _ in range(inner[name]):
                fn()
            samples[name].append((time.perf_counter() - t0) / inner[name])
    return samples


def interleaved_min(fns, rounds, min_time=0.02, slow_limit=None, warmup=True):
    """{name: min seconds per call} over interleaved_samples (None where too slow)."""
    return {name: None if s is None else min(s)
            for name, s in interleaved_samples(fns, rounds, min_time, slow_limit,
                                               warmup).items()}


def interleaved_timings(fns, rounds, min_time=0.02):
    """{name: Timing} with per_call the minimum over interleaved rounds and spread
    (median − min)/min of the rounds: how far a typical round sat above the best one."""
    out, inner = {}, {}
    for name, s in interleaved_samples(fns, rounds, min_time, inner=inner).items():
        best, med = min(s[1:] or s), statistics.median(s[1:] or s)
        out[name] = Timing(best, inner[name], len(s) - 1,
                           (med - best) / best if best > 0 else 0.0)
    return out


def time_cell(refs, runs, rounds, min_time=0.02):
    """One table cell: the references (NumPy/SciPy forwards) and the libraries' runs, all
    in the same interleaved rounds.  Returns (fastest reference's name, its Timing,
    {library: Timing})."""
    timed = interleaved_timings({**{("ref", k): f for k, f in refs.items()},
                                 **{("lib", k): f for k, f in runs.items()}}, rounds, min_time)
    ref_name = min(refs, key=lambda k: timed["ref", k].per_call)
    return ref_name, timed["ref", ref_name], {k: timed["lib", k] for k in runs}


def timer_settings(quick):
    """Repeat settings: the real rule (>= 7 repeats of >= 20 ms) or a smoke-run one."""
    return dict(repeats=3, min_repeat_time=0.005, warmup=1) if quick else \
        dict(repeats=7, min_repeat_time=0.02, warmup=2)


def fmt_time(seconds):
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} µs"
    if seconds < 1.0:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.2f} s"


# --- inputs ------------------------------------------------------------------------------
def well_conditioned(rng, batch, n, cond=3.0):
    """float64 matrices U diag(s) V^T with s in [1, cond]: condition number <= cond."""
    U, _ = np.linalg.qr(rng.standard_normal(batch + (n, n)))
    V, _ = np.linalg.qr(rng.standard_normal(batch + (n, n)))
    s = rng.uniform(1.0, cond, size=batch + (n,))
    return np.ascontiguousarray((U * s[..., None, :]) @ np.swapaxes(V, -1, -2))


# --- machine and versions --------------------------------------------------------------
def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _blas_of(module):
    try:
        deps = module.show_config(mode="dicts")["Build Dependencies"]
        blas = deps.get("blas", {})
        text = f"{blas.get('name', '?')} {blas.get('version', '')}".strip()
    except Exception:  # older versions or unusual builds
        return "?"
    core = _openblas_core(module)
    return f"{text}, {core} kernels" if core else text


def _openblas_core(module):
    """The kernel set a wheel's bundled OpenBLAS runs (openblas_get_corename), or None.

    OpenBLAS picks kernels for the CPU at load time unless OPENBLAS_CORETYPE names a set;
    on a CPU with AVX-512, Haswell's (AVX2) kernels run matrix products at about half the
    speed (machine_info prints the variable: the tables' GEMM-bound cells depend on it),
    and linalgad picks the direction of its stack trsm calls by it.
    """
    from linalgad._lapack_stack import openblas_core
    return openblas_core(module)


def _version(dist):
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def repo_commit():
    """Short commit of the checkout, '+dirty' when it has uncommitted changes; or None."""
    import subprocess
    try:
        git = ["git", "-C", _REPO_ROOT]
        rev = subprocess.run(git + ["rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(git + ["status", "--porcelain", "--", "linalgad"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return (rev + ("+dirty" if dirty else "")) or None
    except (OSError, subprocess.SubprocessError):
        return None


def machine_info():
    """Markdown lines describing the machine, the pinning and the versions."""
    import scipy
    try:
        affinity = sorted(os.sched_getaffinity(0))
    except AttributeError:
        affinity = "?"
    peers = []
    for dist in ("linalgad", "jax", "jaxlib", "torch", "autograd"):
        v = _version(dist)
        peers.append(f"{dist} {v}" if v else f"{dist} (not installed)")
    return [
        f"- machine: {cpu_model()}, {os.cpu_count()} logical CPUs, "
        f"Python {platform.python_version()}, {platform.system()} {platform.release()}",
        f"- pinning: process affinity {affinity}, "
        + ", ".join(f"{v}={os.environ.get(v)}" for v in THREAD_VARS[:3])
        + f", OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE')}",
        f"- numpy {np.__version__} ({_blas_of(np)}), scipy {scipy.__version__} ({_blas_of(scipy)})",
        "- peers: " + ", ".join(peers) + f"; checkout {repo_commit() or '?'}",
        f"- date: {time.strftime('%Y-%m-%d %H:%M %Z')}",
    ]


# --- output ------------------------------------------------------------------------------
def cell_options(cells, quick, key=lambda cell: cell):
    """The scripts' command line (``--quick``, ``--out``), the seeded generator and the
    cells to time: those whose key is in ``quick`` under --quick, else all of them."""
    import argparse
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default=None)
    opts = ap.parse_args()
    chosen = [c for c in cells if key(c) in quick] if opts.quick else list(cells)
    return opts, np.random.default_rng(SEED), chosen


def ratio_cell(runs, rounds, label, cols, ref="scipy fwd"):
    """One table row: the interleaved minimum of each run over ``rounds``, as the label, the
    reference's time and each column's ratio to it ("—" for a column not timed)."""
    best = interleaved_min(runs, rounds, warmup=True)
    base = best[ref]
    row = [label, fmt_time(base)] + [f"{best[k] / base:.2f}" if k in best else "—"
                                     for k in cols]
    print(row, flush=True)
    return row


def square_table(title, intro, shapes, quick, cols, inputs, runs_for, big=1024):
    """The whole script for a one-matrix function: ``shapes`` (label, batch, n), the
    ``quick`` labels, one ``ratio_cell`` per shape (3 rounds from n = big, else 7) with
    ``runs_for(inputs(rng, batch, n), rng)`` and the report."""
    opts, rng, chosen = cell_options(shapes, quick, key=lambda s: s[0])
    rows = [ratio_cell(runs_for(inputs(rng, batch, n), rng),
                       3 if opts.quick or n >= big else 7, label, cols)
            for label, batch, n in chosen]
    ratio_report(title, intro, cols, rows, opts.out)


def ratio_report(title, intro, cols, rows, out, checks=None):
    """Emit a ratio table (``ratio_cell`` rows) with the machine's header and, optionally,
    the agreement line (``checks``: (library, label, max relative error))."""
    lines = [f"# {title}", "", intro, "", *machine_info(), "",
             markdown_table(["shape", "SciPy forward"] + cols, rows), ""]
    if checks is not None:
        lines += ["Agreement with linalgad (max relative error, value and gradients): " +
                  ", ".join(f"{k} {lab} {e:.0e}" for k, lab, e in checks), ""]
    emit("\n".join(lines), out)


def markdown_table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def emit(text, out=None):
    """Print `text`; also write it to the file `out` when given."""
    print(text)
    if out:
        with open(out, "w") as f:
            f.write(text + "\n")


# --- gradient agreement and report pieces shared by the rule benchmarks ---------------
def rel_err(got, want):
    """max |got - want| / max |want| over all gradients (inf on a shape mismatch)."""
    worst = 0.0
    for g, w in zip(got, want):
        g = np.asarray(g)
        if g.shape != w.shape:
            return np.inf
        scale = max(1e-300, np.max(np.abs(w)))
        worst = max(worst, float(np.max(np.abs(g - w))) / scale)
    return worst


def grads_agree(got, want, rtol):
    """Same shapes, finite, and allclose at rtol (absolute floor 1e-8 of the scale)."""
    return len(got) == len(want) and all(
        np.asarray(g).shape == w.shape and np.all(np.isfinite(g))
        and np.allclose(g, w, rtol=rtol, atol=1e-8 * max(1.0, np.max(np.abs(w))))
        for g, w in zip(got, want))


def agreement_rows(rules, libs, agreement):
    """Per rule and library: worst error over the shapes (✓, † after a convention change),
    the shapes where it disagrees (✗) or could not be compared (n/c)."""
    rows = []
    for rule in rules:
        row = [rule]
        for name in libs:
            res = agreement.get((rule, name))
            if not res:
                row.append("—")
                continue
            bad = [lab for lab, st, _ in res if st == "wrong"]
            nc = [lab for lab, st, _ in res if st == "n/c"]
            errs = [e for _, st, e in res if st in ("ok", "conv")]
            conv = any(st == "conv" for _, st, _ in res)
            parts = []
            if errs:
                parts.append(f"✓{'†' if conv else ''} {max(errs):.0e}")
            if bad:
                parts.append("✗ " + ", ".join(bad))
            if nc:
                parts.append("n/c " + ", ".join(nc))
            row.append("; ".join(parts))
        rows.append(row)
    return rows


def note_lines(notes, all_shapes):
    """notes: {(rule or None, text): {library: [shape labels]}} -> markdown bullet lines."""
    lines = []
    for (rule, text), where in notes.items():
        who = ", ".join(name + ("" if not labs or labs == all_shapes else f" ({', '.join(labs)})")
                        for name, labs in where.items())
        lines.append(f"- {rule + ': ' if rule else ''}{who}: {text}")
    return lines
