"""qz (generalized Schur decomposition): derivative cost, as a ratio to SciPy's forward-only qz.

    taskset -c 1 python benchmarks/bench_qz.py [--quick] [--out F]

Loss L = sum(W * AA²) + sum(V * Q²) (invariant under the real form's column signs), (A, B) a
pencil U (S₀, T₀) V with U, V random orthogonal, distinct real generalized eigenvalues at least
0.5 apart and B well conditioned (the rule's registry domain), float64, output='real'.
Columns, each a ratio of time to scipy.linalg.qz on the same input (SciPy 1.17 batches qz
itself, a Python loop over the stack):
- forward: la.qz alone (SciPy's qz per matrix);
- value+grad: lad.value_and_grad of L in A and B (forward, then the adjoint column sweep of
  the restricted generalized Sylvester equation and a few products);
- value+grad jit: the same under lad.jit;
- jvp: lad.jvp of qz along one direction (dA, dB);
- hvp: lad.hvp of L (second order: sweeps of sweeps).
JAX and PyTorch have no QZ decomposition, so there are no peer columns.  One pinned core, one
thread, interleaved rounds, min over the rounds.
"""

import common  # noqa: F401  (first: pins threads and the core before numpy is imported)

import numpy as np  # noqa: E402
import scipy.linalg as sl  # noqa: E402

import linalgad as lad  # noqa: E402
from linalgad import linalg as la  # noqa: E402
from linalgad.rules.qz import _pencil  # noqa: E402

# no n = 1024: SciPy's qz alone takes ~20 s there on one core (measured), so the table's
# interleaved rounds would take many minutes
SHAPES = [("n=16", (), 16), ("n=64", (), 64), ("n=256", (), 256),
          ("100 of n=32", (100,), 32), ("1000 of n=4", (1000,), 4)]
QUICK = {"n=16", "n=64", "n=256", "100 of n=32"}


def inputs(rng, batch, n):
    return _pencil(rng, n, batch, np.float64)[0]


def runs_for(AB, rng):
    A, B = AB
    W, V, dA, dB = rng.standard_normal((4,) + A.shape)

    def loss(a, b):
        AA, BB, Q, Z = la.qz(a, b)
        return lad.sum(W * AA * AA) + lad.sum(V * Q * Q)
    vg = lad.value_and_grad(loss, argnums=(0, 1))
    vg_jit = lad.jit(lad.value_and_grad(loss, argnums=(0, 1)))
    runs = {"scipy fwd": lambda: sl.qz(A, B),
            "forward": lambda: la.qz(A, B),
            "value+grad": lambda: vg(A, B),
            "value+grad jit": lambda: vg_jit(A, B),
            "jvp": lambda: lad.jvp(la.qz, (A, B), (dA, dB))}
    runs["hvp"] = lambda: lad.hvp(loss, (A, B), (dA, dB))
    return runs


def main():
    common.square_table(
        "Generalized Schur decomposition (qz)",
        "Time / SciPy's forward-only scipy.linalg.qz on the same input; L = sum(W * AA²) + "
        "sum(V * Q²), (A, B) with distinct real generalized eigenvalues and B well "
        "conditioned, output='real', float64, one pinned core, one thread, min over "
        "interleaved rounds.",
        SHAPES, QUICK, ["forward", "value+grad", "value+grad jit", "jvp", "hvp"], inputs,
        runs_for)


if __name__ == "__main__":
    main()
