"""ldl (Bunch–Kaufman LDLᴴ): derivative cost, as a ratio to SciPy's forward-only ldl.

    taskset -c 1 python benchmarks/bench_ldl.py [--quick] [--out F]

Loss L = sum(W1 * lu) + sum(W2 * d) of (lu, d, perm) = ldl(A), A real symmetric indefinite
(random, so Bunch–Kaufman pivots and takes 2×2 blocks), float64.  Columns, each a ratio of
time to SciPy's scipy.linalg.ldl on the same input (a loop for the stack, as SciPy 1.17
batches):
- value+grad: lad.value_and_grad of L (forward, then the reverse rule: one product and two
  triangular solves);
- value+grad jit: the same under lad.jit;
- jvp: lad.jvp of (lu, d) along one direction (two solves and one product);
- forward: la.ldl alone (SciPy's function per matrix, plus the primitive's bookkeeping).
No peer has a differentiable LDLᴴ with pivoting (JAX has none; PyTorch's ldl_factor has no
derivative), so there are no peer columns.  One pinned core, one thread, interleaved
rounds, min over the rounds.
"""

import common  # noqa: F401  (first: pins threads and the core before numpy is imported)

import numpy as np  # noqa: E402
import scipy.linalg as sl  # noqa: E402

import linalgad as lad  # noqa: E402
from linalgad import linalg as la  # noqa: E402

SHAPES = [("n=64", (), 64), ("n=256", (), 256), ("n=1024", (), 1024),
          ("100 of n=32", (100,), 32), ("1000 of n=4", (1000,), 4)]
QUICK = {"n=64", "n=256", "100 of n=32"}


def inputs(rng, batch, n):
    G = rng.standard_normal(batch + (n, n))
    return G + np.swapaxes(G, -1, -2)


def scipy_forward(A):
    if A.ndim == 2:
        return lambda: sl.ldl(A)
    return lambda: sl.ldl(A)               # SciPy's own loop over the stack


def runs_for(A, rng):
    W1, W2 = rng.standard_normal((2,) + A.shape)
    V = np.tril(rng.standard_normal(A.shape))

    def loss(a):
        lu, d, _ = la.ldl(a)
        return lad.sum(W1 * lu) + lad.sum(W2 * d)
    vg = lad.value_and_grad(loss)
    vg_jit = lad.jit(lad.value_and_grad(loss))
    f = lambda a: la.ldl(a)[:2]
    return {"scipy fwd": scipy_forward(A),
            "forward": lambda: la.ldl(A),
            "value+grad": lambda: vg(A),
            "value+grad jit": lambda: vg_jit(A),
            "jvp": lambda: lad.jvp(f, (A,), (V,))}


def main():
    common.square_table(
        "LDLᴴ (ldl)",
        "Time / SciPy's forward-only scipy.linalg.ldl on the same input; L = sum(W1*lu) + "
        "sum(W2*d), A random real symmetric indefinite, float64, one pinned core, one "
        "thread, min over interleaved rounds.",
        SHAPES, QUICK, ["forward", "value+grad", "value+grad jit", "jvp"], inputs, runs_for)


if __name__ == "__main__":
    main()
