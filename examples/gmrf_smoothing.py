"""Fit a Gaussian Markov random field's hyperparameters by maximum likelihood: gradients
through banded Cholesky factors.

The model, on n = 50,000 equally spaced points: a latent signal x with the precision of a
Matérn field of smoothness 3/2 (the SPDE construction: L the second-difference matrix
with Neumann ends, (κ²I + L) x white noise of precision τ), observed with noise,

    x ~ N(0, Q⁻¹),  Q = τ (κ²I + L)² = τ (κ⁴I + 2κ²L + L²)  (pentadiagonal),
    y = x + N(0, σ²I).

The marginal likelihood of (τ, κ, σ²) needs log det and solves with the n × n covariance
Q⁻¹ + σ²I, which is dense.  Its precision form is banded: with P = Q + σ⁻²I,

    −2 log p(y) = yᵀy/σ² − yᵀP⁻¹y/σ⁴ − log det Q + log det P + n log σ² + n log 2π.

Both log-determinants come from linalgad's `cholesky_banded` (LAPACK's pbtrf) and the
solve from `cho_solve_banded`; the gradient with respect to (log τ, log κ, log σ²) goes
through the factors at O(n) (the band of P⁻¹, never the dense inverse: 20 GB here).
L-BFGS-B fits all three, and the posterior mean σ⁻² P⁻¹ y is the smoothed signal.

The script checks the likelihood against a dense computation on the first 400 points, the
gradient against central differences, and that the fit recovers σ and the signal.
"""

import os
import sys
import time

import numpy as np
import scipy.linalg
import scipy.sparse
from scipy.optimize import minimize

try:
    import linalgad as lad
except ImportError:  # running from a source checkout without `pip install -e .`
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))
    import linalgad as lad
from linalgad import linalg as la


def bands(n):
    """I, L and L² in upper band storage (3, n): row 2 the diagonal, row 1 the first
    superdiagonal (ab[1, j] = A[j − 1, j]), row 0 the second; and L as a sparse matrix."""
    main = np.full(n, 2.0)
    main[[0, -1]] = 1.0
    L = scipy.sparse.diags([-np.ones(n - 1), main, -np.ones(n - 1)], [-1, 0, 1], format="csr")
    out = []
    for A in (scipy.sparse.identity(n, format="csr"), L, L @ L):
        ab = np.zeros((3, n))
        for s in range(3):
            ab[2 - s, s:] = A.diagonal(s)
        out.append(ab)
    return out, L


def precision_band(theta, I, L, L2):
    """Q(τ, κ) = τ (κ⁴I + 2κ²L + L²) in upper band storage, θ = (log τ, log κ, ·)."""
    tau, k2 = lad.exp(theta[0]), lad.exp(2 * theta[1])
    return tau * (k2 * k2 * I + 2 * k2 * L + L2)


def neg_log_likelihood(theta, y, I, L, L2):
    """−log p(y | τ, κ, σ²), θ = (log τ, log κ, log σ²): two banded Cholesky factors."""
    n = y.shape[0]
    s2 = lad.exp(theta[2])
    Q = precision_band(theta, I, L, L2)
    cQ = la.cholesky_banded(Q)
    cP = la.cholesky_banded(Q + I / s2)
    logdet_Q = 2 * lad.sum(lad.log(cQ[2]))
    logdet_P = 2 * lad.sum(lad.log(cP[2]))
    Piy = la.cho_solve_banded((cP, False), y)
    quad = lad.sum(y * y) / s2 - lad.sum(y * Piy) / s2 ** 2
    return 0.5 * (quad - logdet_Q + logdet_P + n * lad.log(s2) + n * np.log(2 * np.pi))


def dense_neg_log_likelihood(theta, y, L):
    """The same from the dense covariance Q⁻¹ + σ²I (small n only)."""
    n = y.shape[0]
    tau, kappa, s2 = np.exp(theta)
    A = kappa ** 2 * np.eye(n) + L.toarray()
    S = np.linalg.inv(tau * A @ A) + s2 * np.eye(n)
    sign, logdet = np.linalg.slogdet(S)
    return 0.5 * (y @ np.linalg.solve(S, y) + logdet + n * np.log(2 * np.pi))


def main():
    rng = np.random.default_rng(1)
    n = 50_000
    kappa_true, s2_true = 0.02, 0.3 ** 2
    tau_true = 1 / (4 * kappa_true ** 3)            # marginal variance about 1
    theta_true = np.log([tau_true, kappa_true, s2_true])
    (I, L, L2), Lsp = bands(n)
    # x = U⁻¹ z with Q = Uᵀ U: a draw from N(0, Q⁻¹)
    U = scipy.linalg.cholesky_banded(np.asarray(precision_band(theta_true, I, L, L2)))
    x = scipy.linalg.solve_banded((0, 2), U, rng.standard_normal(n))
    y = x + np.sqrt(s2_true) * rng.standard_normal(n)

    # the likelihood against the dense covariance on the first 400 points
    theta0 = theta_true + np.array([1.0, -0.5, 1.0])
    (I4, L4, L24), Lsp4 = bands(400)
    got = neg_log_likelihood(theta0, y[:400], I4, L4, L24)
    want = dense_neg_log_likelihood(theta0, y[:400], Lsp4)
    assert abs(got - want) < 1e-8 * abs(want), (got, want)

    f = lad.value_and_grad(lambda t: neg_log_likelihood(t, y, I, L, L2))
    value, grad = f(theta0)
    # (log det Q at condition 10⁸ carries rounding that a smaller step would amplify)
    h = 1e-3
    fd = [(f(theta0 + h * e)[0] - f(theta0 - h * e)[0]) / (2 * h) for e in np.eye(3)]
    assert np.allclose(grad, fd, rtol=1e-4), (grad, fd)

    start = time.perf_counter()
    fit = minimize(lambda t: tuple(np.asarray(v) for v in f(t)), theta0, jac=True,
                   method="L-BFGS-B")
    elapsed = time.perf_counter() - start
    tau, kappa, s2 = np.exp(fit.x)
    print(f"n = {n:,}: fitted tau = {tau:.4g} (true {tau_true:.4g}), kappa = {kappa:.4g} "
          f"(true {kappa_true:.4g}), sigma = {np.sqrt(s2):.4g} (true {np.sqrt(s2_true):.4g})")
    print(f"  {fit.nfev} evaluations in {elapsed:.2f} s, {1e3 * elapsed / fit.nfev:.1f} ms per "
          "value and gradient")
    assert fit.success and abs(np.sqrt(s2 / s2_true) - 1) < 0.05
    assert abs(np.log(kappa / kappa_true)) < np.log(1.5)

    # the smoothed signal, σ⁻² P⁻¹ y, is closer to x than the data are
    cP = la.cholesky_banded(np.asarray(precision_band(fit.x, I, L, L2)) + I / s2)
    smooth = la.cho_solve_banded((cP, False), y) / s2
    rms = lambda v: np.sqrt(np.mean(v ** 2))                  # noqa: E731
    print(f"  rms error of the smoothed signal {rms(smooth - x):.4f}, of the data "
          f"{rms(y - x):.4f}")
    assert rms(smooth - x) < 0.5 * rms(y - x)


if __name__ == "__main__":
    main()
