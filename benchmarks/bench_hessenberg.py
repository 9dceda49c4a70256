"""hessenberg (Hessenberg reduction): derivative cost, as a ratio to SciPy's forward-only
hessenberg.

    taskset -c 1 python benchmarks/bench_hessenberg.py [--quick] [--out F]

Loss L = sum(W * H) + sum(V * Q) with (H, Q) = hessenberg(A, calc_q=True), A a random
Gaussian matrix scaled by 1/√n, float64.  Columns, each a ratio of time to
scipy.linalg.hessenberg(A, calc_q=True) on the same input (SciPy 1.17 batches hessenberg
itself, a Python loop over the stack):
- forward: la.hessenberg(A, calc_q=True) alone (the same LAPACK gehrd + orghr calls);
- value+grad: lad.value_and_grad of L (forward, then Ā = Q (H̄ₚ − Y) Qᴴ: three products for
  M, the adjoint sweep for Y — n − 1 steps of matrix-vector work over the stack — and two
  products);
- value+grad jit: the same under lad.jit;
- jvp: lad.jvp of hessenberg(calc_q=True) along one direction (one forward sweep);
- hvp: lad.hvp of L (second order: a few more sweeps and products).
JAX and PyTorch have no Hessenberg reduction, so there are no peer columns.  One pinned
core, one thread, interleaved rounds, min over the rounds.
"""

import common  # noqa: F401  (first: pins threads and the core before numpy is imported)

import numpy as np  # noqa: E402
import scipy.linalg as sl  # noqa: E402

import linalgad as lad  # noqa: E402
from linalgad import linalg as la  # noqa: E402

SHAPES = [("n=16", (), 16), ("n=64", (), 64), ("n=256", (), 256), ("n=1024", (), 1024),
          ("100 of n=32", (100,), 32), ("1000 of n=4", (1000,), 4)]
QUICK = {"n=16", "n=64", "n=256", "100 of n=32", "1000 of n=4"}


def inputs(rng, batch, n):
    return rng.standard_normal(batch + (n, n)) / np.sqrt(n)


def runs_for(A, rng):
    W, V, D = rng.standard_normal((3,) + A.shape)

    def loss(a):
        H, Q = la.hessenberg(a, calc_q=True)
        return lad.sum(W * H) + lad.sum(V * Q)
    vg = lad.value_and_grad(loss)
    vg_jit = lad.jit(lad.value_and_grad(loss))
    runs = {"scipy fwd": lambda: sl.hessenberg(A, calc_q=True),
            "forward": lambda: la.hessenberg(A, calc_q=True),
            "value+grad": lambda: vg(A),
            "value+grad jit": lambda: vg_jit(A),
            "jvp": lambda: lad.jvp(lambda a: la.hessenberg(a, calc_q=True), (A,), (D,))}
    if A.shape[-1] <= 256:
        runs["hvp"] = lambda: lad.hvp(loss, (A,), (D,))
    return runs


def main():
    common.square_table(
        "Hessenberg reduction (hessenberg)",
        "Time / SciPy's forward-only scipy.linalg.hessenberg(A, calc_q=True) on the same "
        "input; L = sum(W * H) + sum(V * Q), A Gaussian / √n, float64, one pinned core, one "
        "thread, min over interleaved rounds (hvp: not timed at n = 1024).",
        SHAPES, QUICK, ["forward", "value+grad", "value+grad jit", "jvp", "hvp"], inputs,
        runs_for)


if __name__ == "__main__":
    main()
