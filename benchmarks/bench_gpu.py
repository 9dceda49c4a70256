"""The GPU (CuPy) benchmark: value+gradient of each rule on device arrays, as a ratio to
CuPy's forward-only time of the same operation on the same arrays; and, for every cell,
the gradient computed on the device against linalgad's on the CPU (the `gpu` tests check
order 3-4 matrices; this checks the sizes that are timed).

    PYTHONPATH=. python3 benchmarks/bench_gpu.py [--quick] [--rules solve,eigh] \
        [--shapes 64,1000x32] [--dtype float64] [--budget 240] [--out F]
    python3 benchmarks/bench_gpu.py --emulate --quick     # the script's own logic on the
                                                          # CPU (tests/_fake_cupy.py)

Columns: `linalgad` (eager value_and_grad), `linalgad-jit` (lad.jit of it: the recorded
kernels replayed), and `torch (cuda)` where a CUDA build of PyTorch is importable (the lent
device machines have none: CuPy, NumPy, SciPy, pytest, Hypothesis only).  Each call is
followed by a device synchronization; each library and the reference run once per round,
interleaved, minimum over the rounds.  `--budget` (seconds) stops starting new cells once
spent (the device time of a session is short): the table says which were not run.

With --emulate the timings are meaningless; it is a smoke test of this script (CI runs it).
"""

import common  # noqa: F401  (first: pins the host thread before numpy is imported)

import argparse  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

SHAPES = {"64": ((), 64), "256": ((), 256), "1024": ((), 1024),
          "10000x4": ((10000,), 4), "1000x32": ((1000,), 32)}
QUICK_SHAPES = ("64", "1000x32")
RTOL = {"float64": 1e-6, "float32": 2e-2}


def _spd(rng, batch, n):
    X = rng.standard_normal(batch + (n, n))
    return X @ np.swapaxes(X, -1, -2) / n + np.eye(n)


def _sym(rng, batch, n):
    X = rng.standard_normal(batch + (n, n))
    return (X + np.swapaxes(X, -1, -2)) / 2


def cases(cp, xp, lad, la):
    """name -> (make inputs (rng, batch, n) -> tuple of NumPy arrays, CuPy forward on device
    arrays, linalgad loss of the arrays with its weights on ``xp`` (cupy for the device
    arrays, numpy for the CPU reference), stacks allowed)."""
    W = {}

    def wsum(key, out):
        """sum(out * weights): fixed random weights of out's shape, made once per shape."""
        shape = tuple(out.shape)
        if (key, shape) not in W:
            W[key, shape] = xp.asarray(np.random.default_rng(1).standard_normal(shape))
        return lad.sum(out * W[key, shape])          # the traced operand first

    def general(rng, batch, n):
        return (common.well_conditioned(rng, batch, n),)

    def with_rhs(rng, batch, n):
        return (common.well_conditioned(rng, batch, n), rng.standard_normal(batch + (n, 2)))

    def gauge_free(U, s, Vh):
        shape = tuple(s.shape[:-1]) + (1, s.shape[-1])
        if ("g", shape) not in W:
            W["g", shape] = xp.asarray(np.random.default_rng(2).standard_normal(shape))
        return wsum("c", s) + wsum("W", (U * W["g", shape]) @ Vh)

    return {
        "solve": (with_rhs, lambda A, b: cp.linalg.solve(A, b),
                  lambda A, b: wsum("W", la.solve(A, b, check_finite=False)), True),
        "inv": (general, lambda A: cp.linalg.inv(A),
                lambda A: wsum("W", la.inv(A, check_finite=False)), True),
        "slogdet": (general, lambda A: cp.linalg.slogdet(A),
                    lambda A: wsum("c", la.slogdet(A)[1]), True),
        "cholesky": (lambda rng, batch, n: (_spd(rng, batch, n),),
                     lambda A: cp.linalg.cholesky(A),
                     lambda A: wsum("W", la.cholesky(A, lower=True, check_finite=False)), True),
        "qr": (general, lambda A: cp.linalg.qr(A),
               lambda A: sum(wsum(k, x) for k, x in zip("QR", la.qr(A, check_finite=False))),
               False),
        "eigh": (lambda rng, batch, n: (_sym(rng, batch, n),), lambda A: cp.linalg.eigh(A),
                 lambda A: (lambda wv: gauge_free(wv[1], wv[0], lad.mT(wv[1])))(
                     la.eigh(A, check_finite=False)), True),
        "eigvalsh": (lambda rng, batch, n: (_sym(rng, batch, n),),
                     lambda A: cp.linalg.eigvalsh(A),
                     lambda A: wsum("c", la.eigvalsh(A, check_finite=False)), True),
        "svd": (general, lambda A: cp.linalg.svd(A, full_matrices=False),
                lambda A: gauge_free(*la.svd(A, full_matrices=False, check_finite=False)),
                True),
        "svdvals": (general, lambda A: cp.linalg.svd(A, compute_uv=False),
                    lambda A: wsum("c", la.svdvals(A, check_finite=False)), True),
        "lstsq": (lambda rng, batch, n: (rng.standard_normal((2 * n, n)),
                                         rng.standard_normal((2 * n, 2))),
                  lambda A, b: cp.linalg.lstsq(A, b, rcond=None),
                  lambda A, b: wsum("W", la.lstsq(A, b)[0]), False),
        "pinv": (general, lambda A: cp.linalg.pinv(A), lambda A: wsum("W", la.pinv(A)), False),
        "norm 2": (general, lambda A: cp.linalg.norm(A, 2, axis=(-2, -1)),
                   lambda A: wsum("c", la.norm(A, 2, axis=(-2, -1))), True),
        "norm nuc": (general, lambda A: cp.linalg.norm(A, "nuc", axis=(-2, -1)),
                     lambda A: wsum("c", la.norm(A, "nuc", axis=(-2, -1))), True),
        "cond": (general, lambda A: cp.linalg.cond(A) if hasattr(cp.linalg, "cond") else
                 (lambda s: s[..., 0] / s[..., -1])(cp.linalg.svd(A, compute_uv=False)),
                 lambda A: wsum("c", la.cond(A)), True),
        "expm": (lambda rng, batch, n: (common.well_conditioned(rng, batch, n) / n,),
                 _cupyx_expm(),
                 lambda A: wsum("W", la.expm(A)), True),
    }


def _cupyx_expm():
    """cupyx.scipy.linalg.expm where CuPy has it, else None (the cell is then not run)."""
    try:
        from cupyx.scipy.linalg import expm
        return expm
    except Exception:
        return None


def torch_fns(name, arrays):
    """(value and gradient on the device through PyTorch CUDA) or None."""
    try:
        import torch
        if not torch.cuda.is_available():
            return None
    except Exception:
        return None
    T = [torch.as_tensor(a, device="cuda") for a in arrays]
    W = torch.as_tensor(np.random.default_rng(1).standard_normal(1), device="cuda")
    ops = {"solve": lambda A, b: torch.linalg.solve(A, b),
           "inv": torch.linalg.inv, "slogdet": lambda A: torch.linalg.slogdet(A)[1],
           "cholesky": torch.linalg.cholesky, "eigvalsh": torch.linalg.eigvalsh,
           "svdvals": torch.linalg.svdvals, "pinv": torch.linalg.pinv,
           "norm 2": lambda A: torch.linalg.matrix_norm(A, 2),
           "norm nuc": lambda A: torch.linalg.matrix_norm(A, "nuc"),
           "cond": torch.linalg.cond, "expm": torch.linalg.matrix_exp}
    if name not in ops:
        return None

    def run():
        xs = [t.detach().requires_grad_(True) for t in T]
        (ops[name](*xs) * W).sum().backward()
        torch.cuda.synchronize()
        return xs[0].grad
    return run


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true")
    p.add_argument("--emulate", action="store_true",
                   help="run on tests/_fake_cupy.py's emulated CuPy (a smoke test)")
    p.add_argument("--rules")
    p.add_argument("--shapes")
    p.add_argument("--dtype", default="float64", choices=sorted(RTOL))
    p.add_argument("--budget", type=float, default=240.0, help="seconds; then stop")
    p.add_argument("--out")
    args = p.parse_args(argv)
    patch = None
    if args.emulate:
        import pytest
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                                        "tests"))
        import _fake_cupy
        patch = pytest.MonkeyPatch()
        _fake_cupy.install(patch)
    try:
        return run(args)
    finally:
        if patch is not None:
            patch.undo()


def _device_name(cp):
    try:
        props = cp.cuda.runtime.getDeviceProperties(0)
        name = props["name"]
        return name.decode() if isinstance(name, bytes) else str(name)
    except Exception:
        return "emulated (tests/_fake_cupy.py): timings meaningless"


def run(args):
    import cupy as cp
    import linalgad as lad
    from linalgad import linalg as la

    stream = cp.cuda.get_current_stream()
    table = cases(cp, cp, lad, la)
    cpu_losses = {name: c[2] for name, c in cases(cp, np, lad, la).items()}
    names = args.rules.split(",") if args.rules else list(table)
    shapes = (args.shapes.split(",") if args.shapes else
              QUICK_SHAPES if args.quick else list(SHAPES))
    rounds, min_time = (3, 0.005) if args.quick else (7, 0.02)
    dtype = np.dtype(args.dtype)
    start = time.perf_counter()
    rows = []
    for name in names:
        make, forward, loss, stacks = table[name]
        for label in shapes:
            batch, n = SHAPES[label]
            cell = [name, label]
            if batch and not stacks:
                continue
            if forward is None:
                rows.append(cell + ["—"] * 5 + ["CuPy lacks the forward"])
                continue
            if time.perf_counter() - start > args.budget:
                rows.append(cell + ["—"] * 5 + ["not run: --budget spent"])
                continue
            host = [a.astype(dtype) for a in make(np.random.default_rng(0), batch, n)]
            dev = [cp.asarray(a) for a in host]
            argnums = tuple(range(len(dev)))
            vg = lad.value_and_grad(loss, argnums=argnums)
            jvg = lad.jit(vg)

            def synced(f, *a):
                def call():
                    out = f(*a)
                    stream.synchronize()
                    return out
                return call
            fns = {"ref": synced(forward, *dev), "linalgad": synced(vg, *dev),
                   "linalgad-jit": synced(jvg, *dev)}
            tf = torch_fns(name, host)
            if tf is not None:
                fns["torch (cuda)"] = tf
            note = ""
            try:
                _, g_dev = vg(*dev)
                _, g_cpu = lad.value_and_grad(cpu_losses[name], argnums=argnums)(*host)
                worst = max(float(np.max(np.abs(cp.asnumpy(d) - c))) /
                            max(1e-300, float(np.max(np.abs(c))))
                            for d, c in zip(g_dev, g_cpu))
                note = f"{worst:.0e}" + ("" if worst <= RTOL[args.dtype] else " ✗")
                best = common.interleaved_timings(fns, rounds, min_time)
            except Exception as e:           # report it in the table and go on
                rows.append(cell + ["—"] * 5 + [f"fails: {type(e).__name__}: {e}"[:120]])
                continue
            ref = best["ref"].per_call
            cell.append(common.fmt_time(ref))
            for lib in ("linalgad", "linalgad-jit", "torch (cuda)"):
                cell.append(f"{best[lib].per_call / ref:.2f}" if lib in best else "—")
            cell.append(common.fmt_time(best["linalgad-jit"].per_call))
            cell.append(note)
            rows.append(cell)
            print(cell, flush=True)
    header = ["rule", "shape", "CuPy fwd", "linalgad", "linalgad-jit", "torch (cuda)",
              "linalgad-jit time", "device vs CPU gradient (max rel.)"]
    text = "\n".join([
        "# GPU: value+gradient time / CuPy's forward-only time", "",
        f"dtype {dtype}; each call synchronized; minimum over {rounds} interleaved rounds; "
        f"the last column compares the gradient computed on the device with linalgad's on "
        f"the CPU (✗ above {RTOL[args.dtype]:g}).", "",
        f"- device: {_device_name(cp)}; CuPy {getattr(cp, '__version__', '?')}",
        *common.machine_info(), "",
        common.markdown_table(header, rows), ""])
    common.emit(text, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
