"""Bilevel ridge regression: tune the regularization strength by gradient descent.

Inner problem (closed form, one Cholesky solve):

    w(θ) = argmin_w ‖X w − y‖² + λ ‖w‖²  = (XᵀX + λ I)⁻¹ Xᵀy,     λ = exp(θ)

Outer problem: the validation error  L(θ) = mean((X_val w(θ) − y_val)²).
linalgad differentiates through the solve (implicit differentiation of
(XᵀX + λI) w = Xᵀy: dw = −(XᵀX + λI)⁻¹ dλ w), so dL/dθ is exact, and
lad.hvp gives d²L/dθ² (forward-over-reverse) for a Newton step.

We minimize L with SciPy's L-BFGS-B (jac=True), check the derivatives against
finite differences, polish with one Newton step, and compare with a grid search.
"""

import os
import sys

import numpy as np
from scipy.optimize import minimize

try:
    import linalgad as lad
except ImportError:  # running from a source checkout without `pip install -e .`
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))
    import linalgad as lad
from linalgad import linalg as la

# -- data: a noisy linear model with fewer samples than a good unregularized fit needs
rng = np.random.default_rng(0)
n_train, n_val, d, noise = 60, 200, 40, 1.5
w_true = rng.standard_normal(d) / np.sqrt(d)
X, X_val = rng.standard_normal((n_train, d)), rng.standard_normal((n_val, d))
y = X @ w_true + noise * rng.standard_normal(n_train)
y_val = X_val @ w_true + noise * rng.standard_normal(n_val)
XtX, Xty, I = X.T @ X, X.T @ y, np.eye(d)


def val_loss(theta):
    """Validation MSE of the ridge solution for λ = exp(θ); θ has shape (1,)."""
    w = la.solve(XtX + lad.exp(theta) * I, Xty, assume_a="pos")
    r = X_val @ w - y_val
    return lad.mean(r * r)


# the optimizer calls it with the same shapes every time: lad.jit records the kernels of the
# first call and replays them (X, X_val, y_val are constants of the recording, as in jax.jit)
value_and_grad = lad.jit(lad.value_and_grad(val_loss))


def fun(theta):  # what scipy.optimize.minimize(..., jac=True) wants: (float, ndarray)
    v, g = value_and_grad(np.asarray(theta, dtype=float))
    return float(v), np.asarray(g, dtype=float)


def hess(theta):  # d²L/dθ² as H·1 (θ is one-dimensional)
    return float(lad.hvp(val_loss, (theta,), (np.ones(1),), argnums=0)[0])


# -- 1. optimize θ = log λ with L-BFGS-B
res = minimize(fun, x0=np.zeros(1), jac=True, method="L-BFGS-B", bounds=[(-10.0, 10.0)],
               options={"gtol": 1e-10})
assert res.success, res.message
theta_opt = res.x.copy()
print(f"L-BFGS-B: θ* = {theta_opt[0]:.6f} (λ* = {np.exp(theta_opt[0]):.4f}), "
      f"val MSE {res.fun:.6f}, {res.nfev} evaluations")

# -- 2. derivatives against central finite differences (at a point away from the optimum)
t0, h = np.array([1.0]), 1e-5
g0, H0 = fun(t0)[1][0], hess(t0)
fd_g = (fun(t0 + h)[0] - fun(t0 - h)[0]) / (2 * h)
fd_H = (fun(t0 + h)[1][0] - fun(t0 - h)[1][0]) / (2 * h)
err_g, err_H = abs(g0 - fd_g) / abs(fd_g), abs(H0 - fd_H) / abs(fd_H)
print(f"at θ = 1: dL/dθ = {g0:.10f} (rel. err vs FD {err_g:.1e}), "
      f"d²L/dθ² = {H0:.10f} (rel. err vs FD of the gradient {err_H:.1e})")
assert err_g < 1e-6 and err_H < 1e-6

# -- 3. one Newton step from the L-BFGS-B point: θ ← θ − g / H
g_opt, H_opt = fun(theta_opt)[1][0], hess(theta_opt)
theta_newton = theta_opt - g_opt / H_opt
g_newton = fun(theta_newton)[1][0]
print(f"Newton step: |dL/dθ| {abs(g_opt):.1e} -> {abs(g_newton):.1e}, "
      f"d²L/dθ² = {H_opt:.4f} > 0 (a minimum), step {abs(theta_newton - theta_opt)[0]:.1e}")
assert H_opt > 0 and abs(g_newton) <= max(1e-3 * abs(g_opt), 1e-12)

# -- 4. brute force: the validation error on a grid of θ (plain NumPy, no linalgad)
grid = np.linspace(-6.0, 8.0, 1401)
step = grid[1] - grid[0]
grid_loss = [np.mean((X_val @ np.linalg.solve(XtX + np.exp(t) * I, Xty) - y_val) ** 2)
             for t in grid]
theta_grid = grid[int(np.argmin(grid_loss))]
print(f"grid search ({len(grid)} points, step {step:.3f}): θ = {theta_grid:.3f}, "
      f"val MSE {min(grid_loss):.6f};  |θ* − θ_grid| = {abs(theta_newton[0] - theta_grid):.4f}")
assert abs(theta_newton[0] - theta_grid) <= step and abs(theta_opt[0] - theta_grid) <= step
assert res.fun <= min(grid_loss) + 1e-12
assert "replayed" in " ".join(value_and_grad.explain().values())   # jit did replay
print("OK")
