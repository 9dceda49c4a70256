"""Matrix-product speed of this environment's BLAS against XLA's, one thread, pinned core.

    taskset -c 1 .venv-bench/bin/python benchmarks/bench_gemm.py [--jax]
    env -u OPENBLAS_CORETYPE taskset -c 1 .venv-bench/bin/python benchmarks/bench_gemm.py

linalgad's reverse passes are mostly matrix products, so this one number explains most of
the gap to JAX in the GEMM-bound cells of the rule benchmarks (RESULTS.md, "What the
remaining misses are made of").  Prints NumPy's float64 `a @ b` at 64, 256, 1024 and a
stack of 1000 32×32 products, the OpenBLAS kernel set in use and OPENBLAS_CORETYPE; with
--jax also the same products under jax.jit (x64).
"""

import os
import sys

import common  # noqa: F401  (pins threads before numpy is imported)
import numpy as np

SIZES = (64, 256, 1024)


def main():
    rng = np.random.default_rng(0)
    shapes = [(n, n) for n in SIZES] + [(1000, 32, 32)]
    arrays = [(rng.standard_normal(shape), rng.standard_normal(shape)) for shape in shapes]
    names = ["64", "256", "1024", "1000x32x32"]
    print(f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE')}, NumPy's OpenBLAS "
          f"kernels: {common._openblas_core(np)}")
    for name, (a, b) in zip(names, arrays):
        print(f"numpy   {name:>11}: {common.timeit(lambda: a @ b).per_call * 1e6:10.1f} µs")
    if "--jax" in sys.argv:
        import jax
        import jax.numpy as jnp
        jax.config.update("jax_enable_x64", True)
        mm = jax.jit(lambda x, y: x @ y)
        for name, (a, b) in zip(names, arrays):
            x, y = jnp.asarray(a), jnp.asarray(b)
            t = common.timeit(lambda: mm(x, y).block_until_ready()).per_call
            print(f"jax-jit {name:>11}: {t * 1e6:10.1f} µs")


if __name__ == "__main__":
    main()
