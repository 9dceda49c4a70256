"""Control co-design: tune a structure's dampers through the Riccati equation.

A chain of N masses joined by springs, with a damper of coefficient cᵢ = exp(θᵢ) at each
joint and one force actuator on the last mass.  For given dampers the optimal linear-
quadratic regulator has the cost-to-go xᵀ X x, X the stabilizing solution of the
continuous algebraic Riccati equation

    aᵀ X + X a − X b r⁻¹ bᵀ X + q = 0,       a = a(θ) (the dampers enter a),

so the expected optimal cost from random initial states is J(θ) = tr(X(θ) Σ₀).  Dampers
cost something to build: the design loss adds ρ Σ cᵢ.  linalgad differentiates through
the solver (one Lyapunov equation in the closed loop a − b r⁻¹ bᵀ X, whatever the number
of parameters), so L-BFGS-B gets exact gradients, and lad.hvp a Hessian-vector product.

We check the gradient and a Hessian-vector product against finite differences, optimize
the dampers, and compare with the best design that uses one damper value everywhere.
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

N = 8                                   # masses; the state is (positions, velocities)
k_spring, mass, rho = 1.0, 1.0, 0.05
# joint j (0 … N−1) links mass j−1 (the wall for j = 0) and mass j; D maps joint forces
D = np.eye(N) - np.eye(N, k=1)          # force on mass i: (joint i) − (joint i+1)
K = k_spring * D @ D.T                  # stiffness matrix
b = np.zeros((2 * N, 1))
b[-1, 0] = 1.0 / mass                   # the actuator pushes the last mass
q = np.diag(np.r_[np.ones(N), 0.1 * np.ones(N)])
r = np.array([[0.1]])
rng = np.random.default_rng(0)
G = rng.standard_normal((2 * N, 40))
sigma0 = G @ G.T / 40                   # covariance of the initial states
Z, I = np.zeros((N, N)), np.eye(N)


def design_loss(theta):
    """J(θ) = tr(X Σ₀) + ρ Σ exp(θ): expected optimal LQR cost plus the dampers' price."""
    c = lad.exp(theta)
    C = (D * c) @ D.T                   # damping matrix Σ cⱼ dⱼ dⱼᵀ
    a = lad.concatenate([lad.concatenate([Z, I], axis=1),
                         lad.concatenate([-K / mass, -C / mass], axis=1)], axis=0)
    X = la.solve_continuous_are(a, b, q, r)
    return lad.trace(X @ sigma0) + rho * lad.sum(c)


value_and_grad = lad.jit(lad.value_and_grad(design_loss))


def fun(theta):
    v, g = value_and_grad(np.asarray(theta, dtype=float))
    return float(v), np.asarray(g, dtype=float)


# -- 1. derivatives against central finite differences
t0 = np.log(0.3) + 0.2 * rng.standard_normal(N)
v = rng.standard_normal(N)
h = 1e-5
g0 = fun(t0)[1]
fd = (fun(t0 + h * v)[0] - fun(t0 - h * v)[0]) / (2 * h)
err_g = abs(g0 @ v - fd) / abs(fd)
Hv = np.asarray(lad.hvp(design_loss, (t0,), (v,), argnums=0))
fd_H = (fun(t0 + h * v)[1] - fun(t0 - h * v)[1]) / (2 * h)
err_H = np.abs(Hv - fd_H).max() / np.abs(fd_H).max()
print(f"gradient vs finite differences: rel. err {err_g:.1e}; "
      f"Hessian-vector product: {err_H:.1e}")
assert err_g < 1e-6 and err_H < 1e-5

# -- 2. the best uniform damper (a 1-D search), then every damper on its own
uniform = minimize(lambda s: fun(np.full(N, s[0]))[0], x0=[np.log(0.3)], method="Nelder-Mead",
                   options={"xatol": 1e-8, "fatol": 1e-12})
res = minimize(fun, x0=np.full(N, uniform.x[0]), jac=True, method="L-BFGS-B",
               bounds=[(-8.0, 4.0)] * N, options={"gtol": 1e-9, "ftol": 1e-15, "maxiter": 500})
assert res.success, res.message
c_opt = np.exp(res.x)
print(f"uniform dampers c = {np.exp(uniform.x[0]):.4f}: loss {uniform.fun:.6f}")
print(f"tuned dampers   c = {np.array2string(c_opt, precision=3)}: loss {res.fun:.6f} "
      f"({res.nfev} evaluations, |grad| {np.abs(res.jac).max():.1e})")
assert res.fun < uniform.fun - 1e-4              # the individual dampers do better
assert np.abs(res.jac[(res.x > -8 + 1e-6) & (res.x < 4 - 1e-6)]).max() < 1e-5
