"""Circulant solves: value+gradient cost, as a ratio to SciPy's forward solve_circulant.

    taskset -c 1 .venv-bench/bin/python benchmarks/bench_circulant.py [--quick] [--out F]

Loss L = sum(W * x), x = solve_circulant(c, b) (W a fixed random weight), its gradient
w.r.t. c and b; c random with a dominant c[0], b one vector (a stack: c (s, n) against
b (s, n), baxis=-1); float64 real and complex128.  Columns:
- linalgad: solve_circulant's rule (FFTs; the backward pass one more division by conj(λ),
  the spectrum kept, and one circular correlation), eager and under lad.jit;
- linalgad-dense: la.solve(la.circulant(c), b), the dense route inside linalgad (to
  n = 1024).
Each cell is (value+grad time) / (SciPy forward time on the same inputs), interleaved in
one run, min over the rounds.
"""

import common  # noqa: F401  (first: pins threads and the core before numpy is imported)

import numpy as np  # noqa: E402
import scipy.linalg as sl  # noqa: E402

import linalgad as lad  # noqa: E402
from linalgad import linalg as la  # noqa: E402

SHAPES = [("n=64", (), 64), ("n=256", (), 256), ("n=1024", (), 1024), ("n=4096", (), 4096),
          ("n=65536", (), 65536), ("1000 of n=32", (1000,), 32), ("100 of n=1024", (100,), 1024)]
QUICK = {"n=64", "n=1024", "1000 of n=32"}
DENSE_MAX = 1024


def inputs(rng, batch, n, complex_):
    def draw(shape):
        x = rng.standard_normal(shape)
        return x + 1j * rng.standard_normal(shape) if complex_ else x
    c = draw(batch + (n,)) / np.sqrt(n)
    c[..., 0] += 3.0
    return c, draw(batch + (n,)), draw(batch + (n,))


def scipy_forward(c, b):
    return lambda: sl.solve_circulant(c, b, baxis=-1, outaxis=-1)


def linalgad_run(c, b, W, dense=False, jit=False):
    if dense:
        def f(c_, b_):
            return lad.sum(lad.real(W * la.solve(la.circulant(c_), b_[..., None])[..., 0]))
    else:
        def f(c_, b_):
            return lad.sum(lad.real(W * la.solve_circulant(c_, b_, baxis=-1, outaxis=-1)))
    vg = lad.value_and_grad(f, argnums=(0, 1))
    if jit:
        vg = lad.jit(vg)
    return lambda: vg(c, b)


def main():
    opts, rng, shapes = common.cell_options(SHAPES, QUICK, key=lambda s: s[0])
    rows, checks = [], []
    cols = ["linalgad", "linalgad-jit", "linalgad-dense"]
    for complex_ in (False, True):
        for label, batch, n in shapes:
            c, b, W = inputs(rng, batch, n, complex_)
            runs = {"scipy fwd": scipy_forward(c, b), "linalgad": linalgad_run(c, b, W),
                    "linalgad-jit": linalgad_run(c, b, W, jit=True)}
            if n * (np.prod(batch) if batch else 1) <= DENSE_MAX * 8 and n <= DENSE_MAX:
                runs["linalgad-dense"] = linalgad_run(c, b, W, dense=True)
            mine = runs["linalgad"]()
            for name in cols[1:]:
                if name in runs:
                    val, grads = runs[name]()
                    err = common.rel_err([np.asarray(val)] + [np.asarray(g) for g in grads],
                                         [np.asarray(mine[0])] + [np.asarray(g) for g in mine[1]])
                    checks.append((name, label, err))
            rows.append(common.ratio_cell(runs, 3 if opts.quick or n >= 4096 else 7,
                                          ("complex128 " if complex_ else "float64 ") + label,
                                          cols))
    common.ratio_report(
        "Circulant solves (solve_circulant)",
        "Value + gradient (w.r.t. c and b) of L = sum(Re(W * solve_circulant(c, b))), as a "
        "ratio to SciPy's forward-only solve_circulant on the same inputs (stacks in one "
        "call, baxis=-1); one vector a circulant, one pinned core, one thread, interleaved "
        "in one run, min over 7 rounds (3 from n = 4096).  `linalgad-dense` assembles the "
        f"matrix and solves it densely (— above n = {DENSE_MAX} or 8192 entries of c).",
        cols, rows, opts.out, checks)


if __name__ == "__main__":
    main()
