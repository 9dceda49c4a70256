"""signm (matrix sign function): derivative cost, as a ratio to SciPy's forward-only signm.

    taskset -c 1 python benchmarks/bench_signm.py [--quick] [--out F]

Loss L = sum(W * signm(A)), A a random Gaussian matrix scaled by 1/√n (eigenvalues in both
half planes), float64.  Columns, each a ratio of time to scipy.linalg.signm on the same input
(SciPy 1.17 batches signm itself, a Python loop over the stack):
- forward: la.signm alone (the Schur method: ordered Schur form, one Sylvester solve);
- value+grad: lad.value_and_grad of L (forward, then Ā = L(A, Wᴴ)ᴴ in the forward pass's
  Schur basis: two triangular Sylvester solves and a few products);
- value+grad jit: the same under lad.jit;
- jvp: lad.jvp of signm along one direction;
- hvp: lad.hvp of L (second order: the ordered Schur form of the 2n × 2n block matrix).
JAX and PyTorch have no matrix sign function, so there are no peer columns.  One pinned core,
one thread, interleaved rounds, min over the rounds.
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
            return sl.signm(A)
    return run


def runs_for(A, rng):
    W, V = rng.standard_normal((2,) + A.shape)

    def loss(a):
        return lad.sum(W * la.signm(a))
    vg = lad.value_and_grad(loss)
    vg_jit = lad.jit(lad.value_and_grad(loss))
    runs = {"scipy fwd": scipy_forward(A),
            "forward": lambda: la.signm(A),
            "value+grad": lambda: vg(A),
            "value+grad jit": lambda: vg_jit(A),
            "jvp": lambda: lad.jvp(la.signm, (A,), (V,))}
    if A.shape[-1] <= 256:
        runs["hvp"] = lambda: lad.hvp(loss, (A,), (V,))
    return runs


def main():
    common.square_table(
        "Matrix sign function (signm)",
        "Time / SciPy's forward-only scipy.linalg.signm on the same input; L = "
        "sum(W * signm(A)), A Gaussian / √n, float64, one pinned core, one thread, min "
        "over interleaved rounds (hvp: not timed at n = 1024).",
        SHAPES, QUICK, ["forward", "value+grad", "value+grad jit", "jvp", "hvp"], inputs,
        runs_for)


if __name__ == "__main__":
    main()
