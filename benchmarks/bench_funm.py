"""funm (general matrix function from a scalar function): derivative cost, as a ratio to
SciPy's forward-only funm.

    taskset -c 1 python benchmarks/bench_funm.py [--quick] [--out F]

Loss L = sum(W * funm(A, np.exp)), A a random Gaussian matrix scaled by 1/√n (eigenvalues in
the unit disc, complex-conjugate pairs: a real result), float64.  Columns, each a ratio of time
to scipy.linalg.funm on the same input (SciPy 1.17 batches funm itself, a Python loop over the
stack):
- forward: la.funm alone (SciPy's steps: complex Schur form, the Parlett recurrence);
- value+grad: lad.value_and_grad of L (the same forward, plus the eigenvectors of the Schur
  factor by back substitution and W⁻¹, then Ā = L(A, Wᴴ)ᴴ = W⁻ᴴ(Φ̄ ∘ (Wᴴ W̄ W⁻ᴴ))Wᴴ: four
  products);
- value+grad jit: the same under lad.jit;
- jvp: lad.jvp of funm along one direction;
- hvp: lad.hvp of L (second order: the map of second divided differences, about ten products).
JAX and PyTorch have no general funm, so there are no peer columns.  One pinned core, one
thread, interleaved rounds, min over the rounds.
"""

import common  # noqa: F401  (first: pins threads and the core before numpy is imported)

import contextlib  # noqa: E402
import io  # noqa: E402

import numpy as np  # noqa: E402
import scipy.linalg as sl  # noqa: E402

import linalgad as lad  # noqa: E402
from linalgad import linalg as la  # noqa: E402

SHAPES = [("n=16", (), 16), ("n=64", (), 64), ("n=256", (), 256), ("n=1024", (), 1024),
          ("100 of n=32", (100,), 32), ("1000 of n=4", (1000,), 4)]
QUICK = {"n=16", "n=64", "n=256", "100 of n=32"}


def inputs(rng, batch, n):
    return rng.standard_normal(batch + (n, n)) / np.sqrt(n)


def scipy_forward(A):
    def run():
        with contextlib.redirect_stdout(io.StringIO()):     # its "may be inaccurate" notice
            return sl.funm(A, np.exp)
    return run


def runs_for(A, rng):
    W, V = rng.standard_normal((2,) + A.shape)

    def loss(a):
        return lad.sum(W * la.funm(a, np.exp))

    def fun(a):
        return la.funm(a, np.exp)
    vg = lad.value_and_grad(loss)
    vg_jit = lad.jit(lad.value_and_grad(loss))
    runs = {"scipy fwd": scipy_forward(A),
            "forward": lambda: la.funm(A, np.exp),
            "value+grad": lambda: vg(A),
            "value+grad jit": lambda: vg_jit(A),
            "jvp": lambda: lad.jvp(fun, (A,), (V,))}
    if A.shape[-1] <= 256:
        runs["hvp"] = lambda: lad.hvp(loss, (A,), (V,))
    return runs


def main():
    common.square_table(
        "General matrix function (funm)",
        "Time / SciPy's forward-only scipy.linalg.funm(A, np.exp) on the same input; L = "
        "sum(W * funm(A, np.exp)), A Gaussian / √n, float64, one pinned core, one thread, min "
        "over interleaved rounds (hvp: not timed at n = 1024).",
        SHAPES, QUICK, ["forward", "value+grad", "value+grad jit", "jvp", "hvp"], inputs,
        runs_for)


if __name__ == "__main__":
    main()
