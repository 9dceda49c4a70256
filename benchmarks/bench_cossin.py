"""cossin (cosine–sine decomposition): derivative cost, as a ratio to SciPy's forward-only cossin.

    taskset -c 1 python benchmarks/bench_cossin.py [--quick] [--out F]

X a random orthogonal n×n matrix (QR of a Gaussian one), p = q = n/2, float64.  Loss
L = sum(w * theta) + sum(W * (u1 @ v1h)) (θ and the rotations' pairing U1 V1ᴴ, the polar
factor of X11: gauge-free).  Columns, each a ratio of time to scipy.linalg.cossin(X, p, q)
on the same input (SciPy 1.17 batches cossin itself, a Python loop over the stack):
- forward: la.cossin alone (the same LAPACK ?orcsd through SciPy, plus the block assembly);
- value+grad: lad.value_and_grad of L (forward, then the adjoint of the tangent map of
  cossin.md section 4: W = skew(Vᴴ Xᴴ Ẋ V), an elementwise solve, U A and B Vᴴ; traced once);
- value+grad jit: the same under lad.jit;
- jvp: lad.jvp of (θ, u1 @ v1h) along one direction;
- hvp: lad.hvp of L (forward over reverse).
JAX and PyTorch have no CS decomposition, so there are no peer columns.  One pinned core,
one thread, interleaved rounds, min over the rounds.
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
    return np.linalg.qr(rng.standard_normal(batch + (n, n)))[0]


def runs_for(X, rng):
    n = X.shape[-1]
    p = n // 2
    w = rng.standard_normal(X.shape[:-2] + (p,))
    W = rng.standard_normal(X.shape[:-2] + (p, p))
    V = X @ (lambda K: K - np.swapaxes(K, -1, -2))(rng.standard_normal(X.shape))  # tangent

    def parts(x):
        (u1, u2), th, (v1h, v2h) = la.cossin(x, p, p, separate=True)
        return th, u1 @ v1h

    def loss(x):
        th, P = parts(x)
        return lad.sum(w * th) + lad.sum(W * P)
    vg = lad.value_and_grad(loss)
    vg_jit = lad.jit(lad.value_and_grad(loss))
    runs = {"scipy fwd": lambda: sl.cossin(X, p=p, q=p),
            "forward": lambda: la.cossin(X, p, p),
            "value+grad": lambda: vg(X),
            "value+grad jit": lambda: vg_jit(X),
            "jvp": lambda: lad.jvp(parts, (X,), (V,))}
    if n <= 256:
        runs["hvp"] = lambda: lad.hvp(loss, (X,), (V,))
    return runs


def main():
    common.square_table(
        "Cosine–sine decomposition (cossin)",
        "Time / SciPy's forward-only scipy.linalg.cossin(X, p, q) on the same input; X random "
        "orthogonal, p = q = n/2, L = sum(w * theta) + sum(W * (u1 @ v1h)), float64, one "
        "pinned core, one thread, min over interleaved rounds (hvp: not timed at n = 1024).",
        SHAPES, QUICK, ["forward", "value+grad", "value+grad jit", "jvp", "hvp"], inputs,
        runs_for)


if __name__ == "__main__":
    main()
