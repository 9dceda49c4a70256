"""lstsq: value+gradient cost over the forward-only NumPy/SciPy time, linalgad and peers.

    taskset -c 0 .venv-bench/bin/python benchmarks/bench_lstsq.py [--quick] [--out FILE]
    taskset -c 0 .venv-bench/bin/python benchmarks/bench_lstsq.py --gradients

Shapes as /work/shared/PEERS.md: tall 2n×n full rank (cond <= 3) with a vector b,
n = 16, 64, 256, 1024; stacks 10000×8×4 and 1000×64×32 with b (B, m, 1).
Loss touching the solution and the residues: L = sum(x·W) + sum(|b − A x|²) (linalgad
takes the residues output of lstsq; peers form ‖b − A x‖², since not all return
residues).  Reference: scipy.linalg.lstsq (gelsd) for one matrix; for stacks the
faster of SciPy's batched lstsq and NumPy's stacked QR + solve.  Times: min over
interleaved repeats (every library timed in each round), float64, one core.

--gradients: what JAX and PyTorch return for rank-deficient lstsq and for pinv at
constant rank, against central finite differences (the table in
docs/derivations/lstsq.md).
"""

import common  # noqa: F401  (first: pins threads)

import argparse
import time

import numpy as np
import scipy.linalg

import peers
import linalgad as lad
from linalgad import linalg as la

SHAPES = [("32x16", (), 32, 16), ("128x64", (), 128, 64), ("512x256", (), 512, 256),
          ("2048x1024", (), 2048, 1024), ("10000x8x4", (10000,), 8, 4),
          ("1000x64x32", (1000,), 64, 32)]
QUICK = {"2048x1024"}
SLOW_LIMIT = 20.0     # seconds per call: skip the cell


def inputs(rng, batch, m, n):
    U, _ = np.linalg.qr(rng.standard_normal(batch + (m, n)))
    V, _ = np.linalg.qr(rng.standard_normal(batch + (n, n)))
    s = rng.uniform(1.0, 3.0, batch + (n,))
    A = np.ascontiguousarray((U * s[..., None, :]) @ np.swapaxes(V, -1, -2))
    b = rng.standard_normal(batch + (m, 1)) if batch else rng.standard_normal(m)
    W = rng.standard_normal(batch + (n, 1)) if batch else rng.standard_normal(n)
    return A, b, W


# -- the libraries: each returns run() -> (value, gA, gb) as NumPy --------------------------
def ours(A, b, W, jit=False):
    def loss(A, b):
        x, res, rank, s = la.lstsq(A, b)
        return lad.sum(x * W) + lad.sum(res)
    vg = lad.value_and_grad(loss, argnums=(0, 1))
    if jit:
        vg = lad.jit(vg)

    def run():
        v, (gA, gb) = vg(A, b)
        return v, gA, gb
    return run


def jax_lib(A, b, W, jit=True):
    jax = peers.load_jax()
    jnp = jax.numpy

    def one(A, b):
        return jnp.linalg.lstsq(A, b)[0]

    solve = jax.vmap(one) if A.ndim == 3 else one

    def loss(A, b):
        x = solve(A, b)
        r = b - (A @ x if b.ndim == A.ndim else A @ x)
        return jnp.sum(x * W) + jnp.sum(r * r)
    vg = jax.value_and_grad(loss, argnums=(0, 1))
    vg = jax.jit(vg) if jit else vg
    Aj, bj = jax.device_put(A), jax.device_put(b)

    def run():
        v, (gA, gb) = jax.block_until_ready(vg(Aj, bj))
        return float(v), np.asarray(gA), np.asarray(gb)
    return run


def torch_lib(A, b, W):
    torch = peers.load_torch()
    At = torch.tensor(A, requires_grad=True)
    bt = torch.tensor(b, requires_grad=True)
    Wt = torch.tensor(W)
    vec = b.ndim == 1

    def run():
        At.grad = bt.grad = None
        bb = bt[:, None] if vec else bt
        x = torch.linalg.lstsq(At, bb).solution
        r = bb - At @ x
        L = torch.sum(x * (Wt[:, None] if vec else Wt)) + torch.sum(r * r)
        L.backward()
        return float(L.detach()), At.grad.numpy(), bt.grad.numpy()
    return run


def autograd_lib(A, b, W):
    autograd = peers.load_autograd()
    import autograd.numpy as anp

    def loss(A, b):
        x = anp.linalg.lstsq(A, b)[0]
        r = b - anp.dot(A, x)
        return anp.sum(x * W) + anp.sum(r * r)
    vg = autograd.value_and_grad(loss, argnum=(0, 1))

    def run():
        v, (gA, gb) = vg(A, b)
        return float(v), np.asarray(gA), np.asarray(gb)
    return run


def reference(A, b):
    if A.ndim == 2:
        return "scipy", lambda: scipy.linalg.lstsq(A, b)

    def qr_solve():
        Q, R = np.linalg.qr(A)
        return np.linalg.solve(R, np.swapaxes(Q, -1, -2) @ b)
    return None, (("scipy", lambda: scipy.linalg.lstsq(A, b)), ("numpy:qr+solve", qr_solve))


LIBS = [("linalgad", ours), ("linalgad-jit", lambda A, b, W: ours(A, b, W, True)),
        ("jax-jit", lambda A, b, W: jax_lib(A, b, W, True)),
        ("jax-eager", lambda A, b, W: jax_lib(A, b, W, False)), ("torch", torch_lib),
        ("autograd", autograd_lib)]
LOADERS = {"jax-jit": peers.load_jax, "jax-eager": peers.load_jax, "torch": peers.load_torch,
           "autograd": peers.load_autograd}


def bench(quick):
    rng = np.random.default_rng(common.SEED)
    rounds, min_time = (3, 0.005) if quick else (7, 0.05)
    header = ["shape", "reference (fwd only)"] + [name for name, _ in LIBS]
    rows, notes = [], []
    for label, batch, m, n in SHAPES:
        if quick and label in QUICK:
            continue
        A, b, W = inputs(rng, batch, m, n)
        ref_name, ref = reference(A, b)
        fns = {}
        if ref_name is None:
            for nm, fn in ref:
                fns["ref:" + nm] = fn
        else:
            fns["ref:" + ref_name] = ref
        check = {}
        for name, make in LIBS:
            loader = LOADERS.get(name)
            if loader is not None and loader() is None:
                check[name] = "not installed"
                continue
            try:
                run = make(A, b, W)
                t0 = time.perf_counter()
                out = run()
                if time.perf_counter() - t0 > SLOW_LIMIT:
                    check[name] = f"> {SLOW_LIMIT:.0f} s per call, skipped"
                    continue
            except Exception as e:        # the peer lacks the rule on this shape
                check[name] = f"fails: {type(e).__name__}: {str(e).splitlines()[0][:80]}"
                continue
            fns[name] = run
            check[name] = out
        times = common.interleaved_min(fns, rounds, min_time)
        refs = {k[4:]: v for k, v in times.items() if k.startswith("ref:")}
        rname = min(refs, key=refs.get)
        tref = refs[rname]
        base = check["linalgad"]
        row = [f"{label}", f"{common.fmt_time(tref)} ({rname})"]
        for name, _ in LIBS:
            c = check.get(name)
            if isinstance(c, str):
                row.append("—")
                notes.append(f"{label} {name}: {c}")
                continue
            err = common.rel_err(c[1:], (np.asarray(base[1]), np.asarray(base[2])))
            mark = "" if err < 1e-6 else " ✗"
            if mark:
                notes.append(f"{label} {name}: gradient differs from linalgad's, rel. err {err:.1e}")
            row.append(f"{times[name] / tref:.2f}{mark}")
        rows.append(row)
        print(row, flush=True)
    return header, rows, notes


# -- gradients at rank deficiency -------------------------------------------------------------
def fd_grad(f, A, h=1e-6):
    G = np.zeros_like(A)
    for idx in np.ndindex(A.shape):
        E = np.zeros_like(A)
        E[idx] = h
        G[idx] = (f(A + E) - f(A - E)) / (2 * h)
    return G


def gradients():
    rng = np.random.default_rng(1)
    U, _ = np.linalg.qr(rng.standard_normal((4, 2)))
    V, _ = np.linalg.qr(rng.standard_normal((3, 2)))
    A = (U * np.array([2.0, 1.0])) @ V.T                  # 4×3, rank 2
    b = rng.standard_normal(4)
    Wx = rng.standard_normal(3)
    Wp = rng.standard_normal((3, 4))
    cut = 1e-3          # above the O(h) singular value a finite-difference step creates

    def np_lstsq(M):
        return np.sum(np.linalg.lstsq(M, b, rcond=cut)[0] * Wx)

    def np_pinv(M):
        return np.sum(np.linalg.pinv(M, rtol=cut) * Wp)
    truth = {"lstsq": fd_grad(np_lstsq, A), "pinv": fd_grad(np_pinv, A)}
    got = {}
    got[("linalgad", "lstsq")] = lad.grad(lambda M: lad.sum(la.lstsq(M, b, cut)[0] * Wx))(A)
    got[("linalgad", "pinv")] = lad.grad(lambda M: lad.sum(la.pinv(M, rtol=cut) * Wp))(A)
    jax = peers.load_jax()
    if jax is not None:
        jnp = jax.numpy
        got[("jax", "lstsq")] = np.asarray(jax.grad(
            lambda M: jnp.sum(jnp.linalg.lstsq(M, b, rcond=cut)[0] * Wx))(A))
        got[("jax", "pinv")] = np.asarray(jax.grad(
            lambda M: jnp.sum(jnp.linalg.pinv(M, rtol=cut) * Wp))(A))
    torch = peers.load_torch()
    if torch is not None:
        for drv in ("gelsd", "gelsy"):
            At = torch.tensor(A, requires_grad=True)
            x = torch.linalg.lstsq(At, torch.tensor(b)[:, None], rcond=cut, driver=drv).solution
            try:
                torch.sum(x[:, 0] * torch.tensor(Wx)).backward()
                got[(f"torch ({drv})", "lstsq")] = At.grad.numpy()
            except Exception as e:
                got[(f"torch ({drv})", "lstsq")] = f"{type(e).__name__}"
        At = torch.tensor(A, requires_grad=True)
        torch.sum(torch.linalg.pinv(At, rtol=cut) * torch.tensor(Wp)).backward()
        got[("torch", "pinv")] = At.grad.numpy()
    rows = []
    for (lib, op), g in got.items():
        if isinstance(g, str):
            rows.append([lib, op, g])
            continue
        err = np.linalg.norm(g - truth[op]) / np.linalg.norm(truth[op])
        rows.append([lib, op, f"{err:.1e}"])
    print(common.markdown_table(["library", "op", "rel. error vs finite differences"], rows))
    print(f"A 4×3 of rank 2 (singular values 2, 1, 0), cutoff {cut} (held constant); "
          f"L = <W, x> for lstsq, <W, pinv(A)> for pinv")
    for line in common.machine_info():
        print(line)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true")
    p.add_argument("--out", default=None)
    p.add_argument("--gradients", action="store_true")
    args = p.parse_args()
    if args.gradients:
        return gradients()
    header, rows, notes = bench(args.quick)
    text = ["# lstsq: value+gradient over forward-only NumPy/SciPy (float64, one core)", "",
            "Ratio = (forward+backward time of L = sum(x·W) + sum residues) / (reference "
            "forward-only time); min over interleaved repeats in one run. Tall 2n×n, cond <= 3, "
            "vector b (stacks: b (B, m, 1)).", "",
            common.markdown_table(header, rows), ""]
    if notes:
        text += ["Notes:", ""] + [f"- {n}" for n in notes] + [""]
    text += common.machine_info()
    common.emit("\n".join(text), args.out)


if __name__ == "__main__":
    main()
