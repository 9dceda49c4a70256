"""Quickstart: exact gradients and Hessian-vector products through a batched complex solve.

For a stack of complex systems A x = b and fixed weights W, take the real loss

    L(A, b) = Re Σ conj(W) ⊙ x,        x = A⁻¹ b      (Re <W, x>, summed over the batch)

Differentiating A x = b gives A dx = db − dA x, so dL = Re <W, A⁻¹(db − dA x)>
= Re <b̄, db> + Re <Ā, dA> with

    b̄ = A⁻ᴴ W,        Ā = −b̄ xᴴ.

Differentiating those along a direction (V, w) gives the Hessian-vector product D(·):

    D(b̄) = −A⁻ᴴ Vᴴ b̄,    D(Ā) = −D(b̄) xᴴ − b̄ D(x)ᴴ,    D(x) = A⁻¹ (w − V x).

Gradients use PyTorch's complex convention X̄ = ∂L/∂Re X + i ∂L/∂Im X, so
dL = Re tr(X̄ᴴ dX) and ``X -= step * X̄`` descends.
"""

import os
import sys

import numpy as np

try:
    import linalgad as lad
except ImportError:  # running from a source checkout without `pip install -e .`
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))
    import linalgad as lad
from linalgad import linalg as la
from linalgad.testing import check_grads

rng = np.random.default_rng(0)


def crandn(*shape):
    return rng.standard_normal(shape) + 1j * rng.standard_normal(shape)


batch, n, k = 5, 4, 2
A = crandn(batch, n, n) + 3 * n * np.eye(n)       # a stack of well-conditioned matrices
b, W = crandn(batch, n, k), crandn(batch, n, k)


# --- the README's ten lines ------------------------------------------------------
def loss(A, b):
    x = la.solve(A, b)
    return lad.real(lad.sum(lad.conj(W) * x))


value, (gA, gb) = lad.value_and_grad(loss, argnums=(0, 1))(A, b)
V, w = crandn(batch, n, n), crandn(batch, n, k)
HA, Hb = lad.hvp(loss, (A, b), (V, w))            # forward-over-reverse
checks = check_grads(loss, (A, b), order=2)       # fwd, rev, 2nd order vs finite differences
# ----------------------------------------------------------------------------------


def mH(M):
    return np.conj(np.swapaxes(M, -1, -2))


x = np.linalg.solve(A, b)
b_bar = np.linalg.solve(mH(A), W)                 # b̄ = A⁻ᴴ W
A_bar = -b_bar @ mH(x)                            # Ā = −b̄ xᴴ
b_bar_dot = -np.linalg.solve(mH(A), mH(V) @ b_bar)
x_dot = np.linalg.solve(A, w - V @ x)
A_bar_dot = -b_bar_dot @ mH(x) - b_bar @ mH(x_dot)


def relerr(got, want):
    return np.max(np.abs(got - want)) / np.max(np.abs(want))


err_value = abs(value - np.real(np.vdot(W, x))) / abs(value)
err_grad = max(relerr(gA, A_bar), relerr(gb, b_bar))
err_hvp = max(relerr(HA, A_bar_dot), relerr(Hb, b_bar_dot))
print(f"L(A, b) = {float(value):.6f}   (batch of {batch} complex {n}x{n} systems, {k} rhs)")
print(f"max rel. error, value        vs NumPy:       {err_value:.2e}")
print(f"max rel. error, gradient     vs closed form: {err_grad:.2e}")
print(f"max rel. error, Hessian·vec  vs closed form: {err_hvp:.2e}")
worst = max(checks, key=lambda c: c[1] / c[2])
print(f"check_grads: {len(checks)} checks passed (order 2, fwd + rev); "
      f"worst {worst[1]:.1e} (tol {worst[2]:.0e}) in {worst[0]!r}")

assert err_value < 1e-10 and err_grad < 1e-10 and err_hvp < 1e-10
