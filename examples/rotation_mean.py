"""The Karcher (geodesic) mean of noisy rotations, through logm of a stack.

Given rotations R₁ … R_N ∈ SO(3), their Karcher mean minimizes the sum of squared
geodesic distances

    F(X) = ½ Σᵢ ‖log(Rᵢᵀ X)‖²_F,        X ∈ SO(3).

We parametrize X = X₀ exp([ω]ₓ) around a starting point X₀ ([ω]ₓ the skew matrix of
ω ∈ ℝ³), so the problem is unconstrained in ω, and let SciPy's BFGS minimize it with
linalgad's exact gradient (jac=True).  linalgad computes logm of the whole stack of N
matrices at once (`la.logm` on an (N, 3, 3) array: SciPy's own logm loops over them in
Python), and its gradient through the Fréchet derivative of the logarithm.

Checks, independent of linalgad's gradient:
  * the gradient agrees with finite differences (lad.testing.check_grads);
  * at the answer, the first-order condition of the Karcher mean holds: Σᵢ log(Xᵀ Rᵢ) = 0,
    evaluated with SciPy's logm matrix by matrix;
  * the mean is closer to the true rotation than the projected arithmetic mean.
"""

import os
import sys
import time

import numpy as np
import scipy.linalg as sl
from scipy.optimize import minimize

try:
    import linalgad as lad
except ImportError:  # running from a source checkout without `pip install -e .`
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))
    import linalgad as lad
from linalgad import linalg as la


def skew(w):
    """[w]ₓ for w (..., 3), as a NumPy array or a traced value."""
    z = 0.0 * w[..., 0]
    rows = [lad.stack([z, -w[..., 2], w[..., 1]], axis=-1),
            lad.stack([w[..., 2], z, -w[..., 0]], axis=-1),
            lad.stack([-w[..., 1], w[..., 0], z], axis=-1)]
    return lad.stack(rows, axis=-2)


def angle(R):
    """The rotation angle of R (or of each matrix of a stack)."""
    return np.arccos(np.clip((np.trace(R, axis1=-2, axis2=-1) - 1) / 2, -1.0, 1.0))


# -- data: N rotations scattered around a true one by random rotations of about 0.4 rad
rng = np.random.default_rng(3)
N = 400
X_true = sl.expm(np.asarray(skew(rng.standard_normal(3))))
R = X_true @ sl.expm(np.asarray(skew(0.4 * rng.standard_normal((N, 3)))))
RT = np.swapaxes(R, -1, -2)

# a starting point: the arithmetic mean projected back onto SO(3) (its polar factor)
X0 = la.polar(R.mean(axis=0))[0]


def cost(w):
    """F(X₀ exp([ω]ₓ)) for ω of shape (3,)."""
    X = X0 @ la.expm(skew(w))
    L = la.logm(RT @ X)                                   # (N, 3, 3): one stacked logm
    return 0.5 * lad.sum(L * L)


value_and_grad = lad.value_and_grad(cost)


def fun(w):  # what scipy.optimize.minimize(..., jac=True) wants: (float, ndarray)
    v, g = value_and_grad(np.asarray(w, dtype=float))
    return float(v), np.asarray(g, dtype=float)


# -- 1. the gradient against finite differences, at a point away from the optimum
lad.testing.check_grads(cost, (np.array([0.1, -0.2, 0.05]),), modes=("rev",), order=1)

# -- 2. minimize
t0 = time.perf_counter()
res = minimize(fun, x0=np.zeros(3), jac=True, method="BFGS", options={"gtol": 1e-10})
elapsed = time.perf_counter() - t0
assert res.success, res.message
X_mean = X0 @ sl.expm(np.asarray(skew(res.x)))
print(f"BFGS: {res.nit} iterations, {res.nfev} evaluations of F and its gradient over "
      f"{N} rotations in {elapsed:.2f} s; F = {res.fun:.6f}")

# -- 3. the Karcher condition Σ log(Xᵀ Rᵢ) = 0, with SciPy's logm, one matrix at a time
t0 = time.perf_counter()
residual = sum(sl.logm(X_mean.T @ Ri) for Ri in R)
scipy_time = time.perf_counter() - t0
t0 = time.perf_counter()
la.logm(np.swapaxes(X_mean, -1, -2) @ R)
stack_time = time.perf_counter() - t0
print(f"Karcher condition: |Σ log(Xᵀ Rᵢ)| = {np.abs(residual).max():.1e}  "
      f"(SciPy's logm of the {N} matrices: {scipy_time * 1e3:.0f} ms; "
      f"linalgad's stacked logm: {stack_time * 1e3:.1f} ms)")
assert np.abs(residual).max() < 1e-8 * N

# -- 4. better than the projected arithmetic mean
err_mean, err_chordal = angle(X_true.T @ X_mean), angle(X_true.T @ X0)
print(f"angle to the true rotation: Karcher mean {err_mean:.4f} rad, "
      f"projected arithmetic mean {err_chordal:.4f} rad")
assert err_mean < 0.05 and np.allclose(X_mean.T @ X_mean, np.eye(3), atol=1e-12)
print("OK")
