"""QR updates: derivative cost, as a ratio to SciPy's forward-only function on the same input.

    taskset -c 1 python benchmarks/bench_qr_update.py [--quick] [--out F]

A = Q R of a random square n × n matrix (float64); the loss is L = sum(WQ * Q1) + sum(WR * R1)
(real data: SciPy's signs are locally constant, and a square Q1 has no completion columns).
Rows: qr_update (rank 1) at n = 16, 64, 256, 1024; a "stack" of 100 matrices of n = 32 (SciPy
1.17 fails on stacks, and so both sides loop in Python); qr_insert (a row), qr_delete (a
column) and qr_multiply (c of 8 rows, mode 'right') at n = 256.  Columns, each a ratio of
time to SciPy's own function (scipy.linalg.qr_update, ...) on the same input:
- forward: linalgad's function alone (SciPy's kernel: the ratio is the wrapper's overhead);
- value+grad: lad.value_and_grad of L over every input (forms A1 = Q triu(R) + u vᴴ, O(n³),
  then qr's reverse rule on A1: O(n³) against the forward pass's O(n²) Givens rotations);
- value+grad jit: the same under lad.jit;
- jvp: lad.jvp of the function along one direction of every input;
- hvp: lad.hvp of L (not timed at n = 1024).
JAX and PyTorch have no QR update, so there are no peer columns.  One pinned core, one thread,
interleaved rounds, min over the rounds.
"""

import common  # noqa: F401  (first: pins threads and the core before numpy is imported)

import numpy as np  # noqa: E402
import scipy.linalg as sl  # noqa: E402

import linalgad as lad  # noqa: E402
from linalgad import linalg as la  # noqa: E402

COLS = ["forward", "value+grad", "value+grad jit", "jvp", "hvp"]
# (label, function, n, stack)
CELLS = [("qr_update n=16", "qr_update", 16, 1), ("qr_update n=64", "qr_update", 64, 1),
         ("qr_update n=256", "qr_update", 256, 1), ("qr_update n=1024", "qr_update", 1024, 1),
         ("qr_update 100 of n=32", "qr_update", 32, 100),
         ("qr_insert row n=256", "qr_insert", 256, 1),
         ("qr_delete col n=256", "qr_delete", 256, 1),
         ("qr_multiply n=256", "qr_multiply", 256, 1)]
QUICK = {"qr_update n=16", "qr_update n=64", "qr_update n=256", "qr_update 100 of n=32",
         "qr_insert row n=256", "qr_delete col n=256", "qr_multiply n=256"}


def functions(name):
    """(SciPy's function, linalgad's) of the differentiated arguments."""
    if name == "qr_update":
        return sl.qr_update, la.qr_update
    if name == "qr_insert":
        return (lambda Q, R, u: sl.qr_insert(Q, R, u, 3, "row"),
                lambda Q, R, u: la.qr_insert(Q, R, u, 3, "row"))
    if name == "qr_delete":
        return (lambda Q, R: sl.qr_delete(Q, R, 3, 1, "col"),
                lambda Q, R: la.qr_delete(Q, R, 3, 1, "col"))
    return sl.qr_multiply, la.qr_multiply


def arguments(rng, name, n):
    A = rng.standard_normal((n, n))
    if name == "qr_multiply":
        return (A, rng.standard_normal((8, n)))
    Q, R = sl.qr(A)
    if name == "qr_update":
        return (Q, R, rng.standard_normal(n), rng.standard_normal(n))
    if name == "qr_insert":
        return (Q, R, rng.standard_normal(n))
    return (Q, R)


def runs_for(name, n, stack, rng):
    f_sl, f_la = functions(name)
    sets = [arguments(rng, name, n) for _ in range(stack)]
    outs = f_sl(*sets[0])
    Ws = [rng.standard_normal(o.shape) for o in outs[:2]]
    if name != "qr_multiply" and outs[0].shape[0] > outs[1].shape[1]:
        Ws[0][:, outs[1].shape[1]:] = 0         # a tall Q1's completion columns
    dirs = [tuple(rng.standard_normal(np.shape(x)) for x in args) for args in sets]
    argnums = tuple(range(len(sets[0])))

    def loss(*args):
        out = f_la(*args)
        return lad.sum(Ws[0] * out[0]) + lad.sum(Ws[1] * out[1])
    vg = lad.value_and_grad(loss, argnums=argnums)
    vg_jit = lad.jit(lad.value_and_grad(loss, argnums=argnums))

    def each(fn):
        return lambda: [fn(args, d) for args, d in zip(sets, dirs)]
    runs = {"scipy fwd": each(lambda a, d: f_sl(*a)),
            "forward": each(lambda a, d: f_la(*a)),
            "value+grad": each(lambda a, d: vg(*a)),
            "value+grad jit": each(lambda a, d: vg_jit(*a)),
            "jvp": each(lambda a, d: lad.jvp(lambda *x: tuple(f_la(*x)[:2]), a, d))}
    if n <= 256:
        runs["hvp"] = each(lambda a, d: lad.hvp(loss, a, d))
    return runs


def main():
    opts, rng, chosen = common.cell_options(CELLS, QUICK, key=lambda c: c[0])
    rows = [common.ratio_cell(runs_for(name, n, stack, rng),
                              3 if opts.quick or n >= 1024 else 7, label, COLS)
            for label, name, n, stack in chosen]
    common.ratio_report(
        "QR updates (qr_update, qr_insert, qr_delete, qr_multiply)",
        "Time / SciPy's forward-only function on the same input; L = sum(WQ * Q1) + "
        "sum(WR * R1), square float64 factorizations, rank-1 update, one pinned core, one "
        "thread, min over interleaved rounds (hvp: not timed at n = 1024).  The derivatives "
        "are O(n³) (qr's rule on A1) against SciPy's O(n²) rotations, so the ratios grow "
        "with n.",
        COLS, rows, opts.out)


if __name__ == "__main__":
    main()
