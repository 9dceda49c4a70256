"""matrix_balance, cdf2rdf, clarkson_woodruff_transform, expm_cond: derivative cost, as a ratio
to SciPy's forward-only function on the same input.

    taskset -c 1 python benchmarks/bench_linear_maps.py [--quick] [--out F]

Loss L = sum(W * f(x)) (for matrix_balance: of B; for cdf2rdf: of wr and vr; expm_cond: the
scalar itself), float64.  Columns, each a ratio of time to SciPy's function on the same input:
- forward: linalgad's function alone (SciPy's choice on a host copy, then the map);
- value+grad: lad.value_and_grad of L; value+grad jit: the same under lad.jit;
- jvp: lad.jvp along one direction.
No peer has these functions, so there are no peer columns.  One pinned core, one thread,
interleaved rounds, min over the rounds.
"""

import common  # noqa: F401  (first: pins threads and the core before numpy is imported)

import numpy as np  # noqa: E402
import scipy.linalg as sl  # noqa: E402

import linalgad as lad  # noqa: E402
from linalgad import linalg as la  # noqa: E402

COLS = ["forward", "value+grad", "value+grad jit", "jvp"]


def balance_case(rng, n):
    A = rng.standard_normal((n, n)) * (2.0 ** rng.integers(-8, 9, (n, 1)))
    W, V = rng.standard_normal((2, n, n))

    def loss(a):
        return lad.sum(W * la.matrix_balance(a)[0])
    return {"scipy fwd": lambda: sl.matrix_balance(A),
            "forward": lambda: la.matrix_balance(A),
            "value+grad": lambda: lad.value_and_grad(loss)(A),
            "value+grad jit": (lambda f: lambda: f(A))(lad.jit(lad.value_and_grad(loss))),
            "jvp": lambda: lad.jvp(lambda a: la.matrix_balance(a)[0], (A,), (V,))}


def cdf2rdf_case(rng, n):
    w, v = np.linalg.eig(rng.standard_normal((n, n)))
    W1, W2 = rng.standard_normal((2, n, n))
    dw, dv = w * 0 + 1, v * 0 + 1

    def loss(a, b):
        wr, vr = la.cdf2rdf(a, b)
        return lad.sum(W1 * wr) + lad.sum(W2 * vr)
    vg = lad.value_and_grad(loss, argnums=(0, 1))
    vg_jit = lad.jit(lad.value_and_grad(loss, argnums=(0, 1)))
    return {"scipy fwd": lambda: sl.cdf2rdf(w, v),
            "forward": lambda: la.cdf2rdf(w, v),
            "value+grad": lambda: vg(w, v),
            "value+grad jit": lambda: vg_jit(w, v),
            "jvp": lambda: lad.jvp(la.cdf2rdf, (w, v), (dw, dv))}


def cwt_case(rng, n, d, k):
    A = rng.standard_normal((n, d))
    W = rng.standard_normal((k, d))

    def loss(a):
        return lad.sum(W * la.clarkson_woodruff_transform(a, k, rng=3))
    vg_jit = lad.jit(lad.value_and_grad(loss))
    return {"scipy fwd": lambda: sl.clarkson_woodruff_transform(A, k, rng=3),
            "forward": lambda: la.clarkson_woodruff_transform(A, k, rng=3),
            "value+grad": lambda: lad.value_and_grad(loss)(A),
            "value+grad jit": lambda: vg_jit(A),
            "jvp": lambda: lad.jvp(lambda a: la.clarkson_woodruff_transform(a, k, rng=3),
                                   (A,), (A,))}


def expm_cond_case(rng, n):
    A = 0.5 * rng.standard_normal((n, n))
    V = rng.standard_normal((n, n))
    vg_jit = lad.jit(lad.value_and_grad(la.expm_cond))
    return {"scipy fwd": lambda: sl.expm_cond(A),
            "forward": lambda: la.expm_cond(A),
            "value+grad": lambda: lad.value_and_grad(la.expm_cond)(A),
            "value+grad jit": lambda: vg_jit(A),
            "jvp": lambda: lad.jvp(la.expm_cond, (A,), (V,))}


CELLS = [("matrix_balance n=64", lambda rng: balance_case(rng, 64)),
         ("matrix_balance n=256", lambda rng: balance_case(rng, 256)),
         ("matrix_balance n=1024", lambda rng: balance_case(rng, 1024)),
         ("cdf2rdf n=64", lambda rng: cdf2rdf_case(rng, 64)),
         ("cdf2rdf n=256", lambda rng: cdf2rdf_case(rng, 256)),
         ("clarkson_woodruff 10⁴×32 → 256", lambda rng: cwt_case(rng, 10_000, 32, 256)),
         ("clarkson_woodruff 10⁵×64 → 1024", lambda rng: cwt_case(rng, 100_000, 64, 1024)),
         ("expm_cond n=4", lambda rng: expm_cond_case(rng, 4)),
         ("expm_cond n=10", lambda rng: expm_cond_case(rng, 10))]
QUICK = {"matrix_balance n=256", "cdf2rdf n=64", "clarkson_woodruff 10⁴×32 → 256",
         "expm_cond n=4"}


def main():
    opts, rng, chosen = common.cell_options(CELLS, QUICK, key=lambda c: c[0])
    rows = [common.ratio_cell(make(rng), 3 if opts.quick else 5, label, COLS)
            for label, make in chosen]
    common.ratio_report(
        "Linear maps chosen from the value or a seed, and expm_cond",
        "Time / SciPy's forward-only function on the same input; L = sum(W * f(x)), float64, "
        "one pinned core, one thread, min over interleaved rounds.", COLS, rows, opts.out)


if __name__ == "__main__":
    main()
