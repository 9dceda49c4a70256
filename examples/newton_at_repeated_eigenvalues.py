"""Newton's method started at A = I, where every eigenvalue is repeated.

Find the symmetric A with e^A = C (so A = log C) by minimizing

    L(A) = tr e^A − ⟨C, A⟩,       ∇L = e^A − C,       ∇²L = the Fréchet derivative of exp,

from A = I.  Newton needs the Hessian at I, a matrix with one eigenvalue of multiplicity
n: written as Σ exp(wᵢ) through eigvalsh its gradient is exact there but its Hessian is
not — the in-cluster curvature is not in eigvalsh's cotangents, so the off-diagonal
directions get none and the Hessian at I is singular (linalgad warns) — while
tr(funmh(A, exp)) has the exact Hessian (the second divided differences of exp;
docs/derivations/funmh.md, section 4) and Newton converges quadratically.  Run: python examples/newton_at_repeated_eigenvalues.py
"""

import warnings

import numpy as np
import scipy.linalg

import linalgad as lad
from linalgad import linalg as la

n = 4
rng = np.random.default_rng(0)
X = rng.standard_normal((n, n))
C = X @ X.T / n + np.eye(n)                       # symmetric positive definite
weights = 2 * np.tril(C, -1) + np.diag(np.diag(C))  # ⟨C, A⟩ on the lower triangle read
lower = np.tril_indices(n)


def loss_funmh(a):
    return lad.sum(lad.diagonal(la.funmh(a, np.exp), 0, -2, -1)) - lad.sum(weights * a)


def loss_eigvalsh(a):
    return lad.sum(lad.exp(la.eigvalsh(a))) - lad.sum(weights * a)


def newton(loss, steps=8):
    """Newton on the lower triangle's n(n+1)/2 entries; the Hessian by forward over reverse."""
    A = np.eye(n)
    grad = lad.grad(loss)
    hess = lad.jacfwd(grad)
    errors = []
    for _ in range(steps):
        g = grad(A)[lower]
        H = hess(A)[lower[0], lower[1]][:, lower[0], lower[1]]
        A = A.copy()
        A[lower] -= np.linalg.solve(H, g)
        errors.append(np.abs(np.tril(A) - np.tril(scipy.linalg.logm(C))).max())
    return errors


if __name__ == "__main__":
    exact = newton(loss_funmh)
    print("Newton for e^A = C from A = I: max |A_k - log C| after each step (funmh)")
    for k, e in enumerate(exact, 1):
        print(f"  step {k}: {e:.3e}")
    assert exact[-1] < 1e-12, exact
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        H = lad.jacfwd(lad.grad(loss_eigvalsh))(np.eye(n))
    H = H[lower[0], lower[1]][:, lower[0], lower[1]]
    print(f"through eigvalsh the Hessian at I has rank {np.linalg.matrix_rank(H)} of "
          f"{len(lower[0])} (GaugeWarning: {bool(caught)}): no Newton step can be taken")
