"""schur (real Schur form): derivative cost, as a ratio to SciPy's forward-only schur.

    taskset -c 1 python benchmarks/bench_schur.py [--quick] [--out F]

Loss L = sum(W₁ * T) + sum(W₂ * Z), (T, Z) = schur(A), A a random Gaussian matrix scaled by
1/√n (real, distinct eigenvalues, complex pairs: 2×2 blocks), float64.  Columns, each a ratio
of time to scipy.linalg.schur on the same input (SciPy 1.17 batches schur by a Python loop):
- forward: la.schur alone (LAPACK dgees; a stack in one loop of direct calls);
- value+grad: lad.value_and_grad of L (forward, then the adjoint column sweep: n LAPACK
  trsyl calls, and three products);
- value+grad jit: the same under lad.jit;
- jvp: lad.jvp of schur along one direction (one sweep, three products);
- hvp: lad.hvp of L (forward over reverse: the sweeps' own derivatives, more sweeps).
JAX and PyTorch have no differentiable Schur decomposition, so there are no peer columns.
One pinned core, one thread, interleaved rounds, min over the rounds.
"""

import common  # noqa: F401  (first: pins threads and the core before numpy is imported)

import numpy as np  # noqa: E402
import scipy.linalg as sl  # noqa: E402

import linalgad as lad  # noqa: E402
from linalgad import linalg as la  # noqa: E402

SHAPES = [("n=16", (), 16), ("n=64", (), 64), ("n=256", (), 256), ("n=1024", (), 1024),
          ("100 of n=32", (100,), 32), ("1000 of n=4", (1000,), 4)]
QUICK = {"n=16", "n=64", "n=256", "100 of n=32"}


def inputs(rng, batch, n):
    return rng.standard_normal(batch + (n, n)) / np.sqrt(n)


def runs_for(A, rng):
    W1, W2, V = rng.standard_normal((3,) + A.shape)

    def loss(a):
        T, Z = la.schur(a)
        return lad.sum(W1 * T) + lad.sum(W2 * Z)
    vg = lad.value_and_grad(loss)
    vg_jit = lad.jit(lad.value_and_grad(loss))
    runs = {"scipy fwd": lambda: sl.schur(A),
            "forward": lambda: la.schur(A),
            "value+grad": lambda: vg(A),
            "value+grad jit": lambda: vg_jit(A),
            "jvp": lambda: lad.jvp(la.schur, (A,), (V,))}
    if A.shape[-1] <= 256:
        runs["hvp"] = lambda: lad.hvp(loss, (A,), (V,))
    return runs


def main():
    common.square_table(
        "Schur decomposition (schur, real form)",
        "Time / SciPy's forward-only scipy.linalg.schur on the same input; L = sum(W1 * T) + "
        "sum(W2 * Z), A Gaussian / √n, float64, one pinned core, one thread, min over "
        "interleaved rounds (hvp: not timed at n = 1024).",
        SHAPES, QUICK, ["forward", "value+grad", "value+grad jit", "jvp", "hvp"], inputs,
        runs_for)


if __name__ == "__main__":
    main()
