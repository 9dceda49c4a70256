"""Algebraic Riccati equations: value+gradient cost, as a ratio to SciPy's forward solve.

    taskset -c 1 .venv-bench/bin/python benchmarks/bench_riccati.py [--quick] [--out F]

Loss L = sum(W * X), X = solve_continuous_are(a, b, q, r) or solve_discrete_are(a, b, q,
r) (W a fixed random real weight), its gradient taken w.r.t. a, b, q and r.  Inputs
(float64): a random with cond 4 (CARE: spectrum of either sign; DARE: scaled to spectral
norm 1.2, so the open loop is unstable), b n×(n/2) random, q and r symmetric positive
definite (cond 4).

No peer has a Riccati solver (JAX 0.10, PyTorch 2.13, autograd 1.9).  What a JAX user
would write instead is timed beside it: a fixed-count iteration unrolled under jax.jit
(`jax-iter`) — for the CARE the Newton iteration for the matrix sign function of the
Hamiltonian [[a, −b r⁻¹ bᵀ], [−q, −aᵀ]] (determinant-scaled, 2n×2n inverses) and X from
the least-squares solve [W₁₂; W₂₂ + I] X = −[W₁₁ + I; W₂₁]; for the DARE the structure-
preserving doubling algorithm (quadratic convergence, n×n solves).  The iteration counts
are fixed (ITERS) and enough on these inputs: the value and gradient are checked against
linalgad's (✗ where they disagree).  Each cell is (value+grad time) / (SciPy forward time
on the same inputs), libraries interleaved in one run, min over the repeats.
"""

import common  # noqa: F401  (first: pins threads and the core before numpy is imported)


import numpy as np  # noqa: E402
import scipy.linalg as sl  # noqa: E402

import peers  # noqa: E402

import linalgad as lad  # noqa: E402
from linalgad import linalg as la  # noqa: E402

SHAPES = [("16x16", (), 16), ("64x64", (), 64), ("256x256", (), 256),
          ("100x8x8", (100,), 8), ("100x32x32", (100,), 32)]
QUICK = {"64x64", "100x8x8"}
ITERS = {"care": 30, "dare": 12}
RTOL = 1e-6
NAMES = {"care": "solve_continuous_are", "dare": "solve_discrete_are"}


def inputs(kind, rng, batch, n):
    from linalgad.testing import matrices as M
    m = max(1, n // 2)
    a = M.random_general(rng, n, batch, np.float64, cond=4.0)
    if kind == "dare":
        a = 1.2 * a / np.linalg.norm(a, 2, axis=(-2, -1))[..., None, None]
    b = M.random_general(rng, n, batch, np.float64)[..., :m].copy()
    q = M.random_spd(rng, n, batch, np.float64, cond=4.0)
    r = M.random_spd(rng, m, batch, np.float64, cond=4.0)
    return a, b, q, r


def scipy_forward(kind, args):
    fn = sl.solve_continuous_are if kind == "care" else sl.solve_discrete_are
    a, b, q, r = args
    if a.ndim == 2:
        return lambda: fn(a, b, q, r)
    return lambda: [fn(*(x[i] for x in args)) for i in range(a.shape[0])]


def linalgad_run(kind, args, W, jit=False):
    fn = getattr(la, NAMES[kind])
    vg = lad.value_and_grad(lambda *a: lad.sum(fn(*a) * W), argnums=(0, 1, 2, 3))
    if jit:
        vg = lad.jit(vg)
    return lambda: vg(*args)


def jax_iteration(kind, args, W):
    jax = peers.load_jax()
    if jax is None:
        return None
    jnp = jax.numpy

    def mT(x):
        return jnp.swapaxes(x, -1, -2)

    def care(a, b, q, r):
        n = a.shape[-1]
        G = b @ jnp.linalg.solve(r, mT(b))
        H = jnp.concatenate([jnp.concatenate([a, -G], -1),
                             jnp.concatenate([-q, -mT(a)], -1)], -2)
        Wk = H
        for _ in range(ITERS["care"]):
            inv = jnp.linalg.inv(Wk)
            c = jnp.abs(jnp.linalg.det(Wk)) ** (-1.0 / (2 * n))
            c = c[..., None, None] if c.ndim else c
            Wk = 0.5 * (c * Wk + inv / c)
        I = jnp.eye(n)
        lhs = jnp.concatenate([Wk[..., :n, n:], Wk[..., n:, n:] + I], -2)
        rhs = -jnp.concatenate([Wk[..., :n, :n] + I, Wk[..., n:, :n]], -2)
        lt = mT(lhs)
        return jnp.linalg.solve(lt @ lhs, lt @ rhs)

    def dare(a, b, q, r):
        n = a.shape[-1]
        I = jnp.eye(n)
        Ak, Gk, Hk = a, b @ jnp.linalg.solve(r, mT(b)), q
        for _ in range(ITERS["dare"]):
            Mi = I + Gk @ Hk
            AW = mT(jnp.linalg.solve(mT(Mi), mT(Ak)))        # A (I + G H)⁻¹
            Ak, Gk, Hk = (AW @ Ak, Gk + AW @ Gk @ mT(Ak),
                          Hk + mT(Ak) @ Hk @ jnp.linalg.solve(Mi, Ak))
        return (Hk + mT(Hk)) / 2

    f = care if kind == "care" else dare
    Wj = jnp.asarray(W)
    vg = jax.jit(jax.value_and_grad(lambda *x: jnp.sum(f(*x) * Wj), argnums=(0, 1, 2, 3)))
    jargs = [jnp.asarray(x) for x in args]
    return lambda: jax.block_until_ready(vg(*jargs))


def main():
    opts, rng, shapes = common.cell_options(SHAPES, QUICK, key=lambda s: s[0])
    rows, checks = [], []
    for kind in ("care", "dare"):
        for label, batch, n in shapes:
            args = inputs(kind, rng, batch, n)
            W = rng.standard_normal(batch + (n, n))
            runs = {"scipy fwd": scipy_forward(kind, args),
                    "linalgad": linalgad_run(kind, args, W),
                    "linalgad-jit": linalgad_run(kind, args, W, jit=True)}
            jx = jax_iteration(kind, args, W)
            agree = ""
            if jx is not None:
                runs["jax-iter"] = jx
                val, grads = runs["linalgad"]()
                jval, jgrads = jx()
                # q and r enter linalgad through their Hermitian parts: compare the
                # symmetric parts of the iteration's gradients there
                jgrads = [np.asarray(g) if i < 2 else
                          (np.asarray(g) + np.swapaxes(np.asarray(g), -1, -2)) / 2
                          for i, g in enumerate(jgrads)]
                err = common.rel_err([np.asarray(jval)] + jgrads,
                                     [np.asarray(val)] + [np.asarray(g) for g in grads])
                checks.append((NAMES[kind], label, err))
                agree = "" if err <= RTOL else " ✗"
            best = common.interleaved_min(runs, 3 if opts.quick else 7, warmup=True)
            ref = best["scipy fwd"]
            rows.append([NAMES[kind], label, common.fmt_time(ref),
                         f"{best['linalgad'] / ref:.2f}", f"{best['linalgad-jit'] / ref:.2f}",
                         f"{best['jax-iter'] / ref:.2f}{agree}" if jx is not None else "—"])
            print(rows[-1], flush=True)
    lines = ["# Algebraic Riccati equations (solve_continuous_are, solve_discrete_are)", "",
             "Value + gradient (w.r.t. a, b, q, r) of L = sum(W * X), as a ratio to SciPy's "
             "forward-only time on the same inputs (a loop of SciPy calls for stacks); "
             "float64, one pinned core, one thread, libraries interleaved in one run, min "
             "over 7 rounds.  No peer has a Riccati solver; `jax-iter` is the iteration a "
             "JAX user would unroll instead (sign function for the CARE, "
             f"{ITERS['care']} steps; doubling for the DARE, {ITERS['dare']} steps; see the "
             "script), jitted.  ✗ : its value or gradient disagrees with linalgad's "
             f"(rtol {RTOL}).", "",
             *common.machine_info(), "",
             common.markdown_table(["rule", "shape", "SciPy forward", "linalgad",
                                    "linalgad-jit", "jax-iter"], rows), "",
             "Agreement of jax-iter with linalgad (max relative error, value and gradients; "
             "the symmetric parts of its q and r gradients): "
             + ", ".join(f"{r} {lab} {e:.0e}" for r, lab, e in checks), ""]
    common.emit("\n".join(lines), opts.out)


if __name__ == "__main__":
    main()
