"""Random test matrices as plain NumPy arrays (no Hypothesis needed).

Each ``random_*`` function takes a ``numpy.random.Generator`` and returns an
array of exactly the requested dtype, C-contiguous, shaped ``batch + (n, n)``
(or ``batch + (m, n)``).  Matrices are built in float64/complex128 and rounded
once; spectral promises (condition number, eigenvalue gaps) hold for the
stored, rounded matrix.  Complex dtypes give genuinely complex matrices;
"symmetric" means Hermitian and "orthogonal" unitary there.

These are what the Hypothesis strategies in
:mod:`linalgad.testing.strategies` draw from, and what ``python -m linalgad
check`` and the benchmarks use.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "DTYPES", "random_general", "random_spd", "random_symmetric",
    "random_orthogonal", "random_triangular", "random_tall", "random_wide",
    "random_rank_deficient", "random_repeated_eigh", "random_vector",
    "random_rhs",
]

DTYPES = tuple(np.dtype(t) for t in (np.float32, np.float64, np.complex64, np.complex128))

# ---------------------------------------------------------------------------
# Plain-NumPy building blocks (private)
# ---------------------------------------------------------------------------


def _check_dtype(dtype):
    dtype = np.dtype(dtype)
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be float32, float64, complex64 or complex128, got {dtype}")
    return dtype


def _finish(work, dtype):
    """Round a float64/complex128 work array to ``dtype``, C-contiguous."""
    return np.ascontiguousarray(work, dtype=dtype)


def _conj_t(a):
    """Conjugate transpose of the last two axes."""
    return np.conj(np.swapaxes(a, -1, -2))


def _hermitian_part(a):
    """(A + A^H) / 2: exactly symmetric/Hermitian, with an exactly real diagonal."""
    return (a + _conj_t(a)) / 2.0


def _gaussian(rng, shape, dtype):
    """Standard Gaussian entries; complex ones have E|z|^2 = 1."""
    if dtype.kind == "c":
        return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)) / np.sqrt(2.0)
    return rng.standard_normal(shape)


def _orthonormal_columns(rng, batch, m, k, dtype):
    """Haar-distributed m x k matrices with orthonormal columns (k <= m).

    QR of a Gaussian matrix, with the phase of diag(R) moved into Q so the
    distribution is Haar (Mezzadri 2007).
    """
    q, r = np.linalg.qr(_gaussian(rng, batch + (m, k), dtype))
    d = np.diagonal(r, axis1=-2, axis2=-1)
    magnitude = np.abs(d)
    phase = np.where(magnitude > 0, d / np.where(magnitude > 0, magnitude, 1.0), 1.0)
    return q * phase[..., None, :]


def _from_svd(u, s, v):
    """U diag(s) V^H for stacked factors."""
    return (u * s[..., None, :]) @ _conj_t(v)


def _rounding_margin(dtype, size):
    """A relative error bound (with room to spare) for rounding to ``dtype``."""
    return 4.0 * size * float(np.finfo(dtype).eps)


def _top_singular_value(cond, dtype, size):
    """Largest singular value to use so that cond(stored matrix) <= cond."""
    if not cond >= 1.0:
        raise ValueError(f"cond must be >= 1, got {cond}")
    return max(1.0, cond / (1.0 + _rounding_margin(dtype, size) * cond))


def _log_uniform(rng, high, shape):
    """Samples log-uniform in [1, high]."""
    return np.exp(rng.uniform(0.0, np.log(high), shape))


def _padded_gap(gap, count, dtype, n):
    """gap plus room for rounding to dtype, within the documented (count - 1) gap <= 2
    (a gap exactly at that limit is accepted, its room then cut to what fits)."""
    if gap < 0 or (count - 1) * gap > 2.0:
        raise ValueError(f"cannot fit {count} eigenvalues in [-1, 1] with gap {gap}")
    padded = gap + _rounding_margin(dtype, n)
    return min(padded, 2.0 / (count - 1)) if count > 1 else padded


def _spread_spectrum(rng, batch, count, gap):
    """Sorted values in [-1, 1], consecutive ones at least ``gap`` apart."""
    if gap < 0 or (count - 1) * gap > 2.0:
        raise ValueError(f"cannot fit {count} eigenvalues in [-1, 1] with gap {gap}")
    start = np.sort(rng.uniform(-1.0, 1.0 - (count - 1) * gap, batch + (count,)), axis=-1)
    return start + gap * np.arange(count)


# ---------------------------------------------------------------------------
# Public NumPy generators
# ---------------------------------------------------------------------------


def random_general(rng, n, batch=(), dtype=np.float64, cond=10.0):
    """General square matrices Q1 diag(s) Q2 with cond_2(A) <= ``cond``.

    Q1, Q2 are Haar orthogonal/unitary and the singular values s are
    log-uniform in [1, cond].
    """
    dtype, batch = _check_dtype(dtype), tuple(batch)
    top = _top_singular_value(cond, dtype, n)
    s = _log_uniform(rng, top, batch + (n,))
    q1 = _orthonormal_columns(rng, batch, n, n, dtype)
    q2 = _orthonormal_columns(rng, batch, n, n, dtype)
    return _finish(_from_svd(q1, s, q2), dtype)


def random_spd(rng, n, batch=(), dtype=np.float64, cond=10.0):
    """Symmetric (Hermitian) positive definite, eigenvalues in [1, ``cond``]."""
    dtype, batch = _check_dtype(dtype), tuple(batch)
    eigenvalues = _log_uniform(rng, _top_singular_value(cond, dtype, n), batch + (n,))
    q = _orthonormal_columns(rng, batch, n, n, dtype)
    return _finish(_hermitian_part(_from_svd(q, eigenvalues, q)), dtype)


def random_symmetric(rng, n, batch=(), dtype=np.float64, gap=0.1):
    """Symmetric (Hermitian) matrices with a spread spectrum.

    Eigenvalues lie in [-1, 1] (mixed signs: indefinite in general) and every
    two of them differ by at least ``gap * max|eigenvalue|``.  Needs
    ``(n - 1) * gap <= 2``.
    """
    dtype, batch = _check_dtype(dtype), tuple(batch)
    eigenvalues = _spread_spectrum(rng, batch, n, _padded_gap(gap, n, dtype, n))
    q = _orthonormal_columns(rng, batch, n, n, dtype)
    return _finish(_hermitian_part(_from_svd(q, eigenvalues, q)), dtype)


def random_orthogonal(rng, n, batch=(), dtype=np.float64):
    """Haar-distributed orthogonal (real) or unitary (complex) matrices."""
    dtype, batch = _check_dtype(dtype), tuple(batch)
    return _finish(_orthonormal_columns(rng, batch, n, n, dtype), dtype)


def random_triangular(rng, n, batch=(), dtype=np.float64, lower=True,
                      unit_diagonal=False, cond=10.0):
    """Lower (or upper) triangular T = D + N with cond_2(T) <= ``cond``.

    The diagonal D has magnitudes in [1, d] with d = min(2, sqrt(cond)) and
    random signs/phases (exactly 1 if ``unit_diagonal``); the strictly
    triangular part N has Frobenius norm at most rho = (cond - d) / (cond + 1)
    < 1 (entries of order 1/n).  Then ||T|| <= d + rho and
    ||T^-1|| <= 1 / (1 - rho), so cond_2(T) <= (d + rho) / (1 - rho) = cond.
    Entries outside the triangle are exactly zero.
    """
    dtype, batch = _check_dtype(dtype), tuple(batch)
    bound = _top_singular_value(cond, dtype, n)
    top_diagonal = 1.0 if unit_diagonal else min(2.0, np.sqrt(bound))
    rho = (bound - top_diagonal) / (bound + 1.0)
    keep = np.tril if lower else np.triu
    strict = keep(_gaussian(rng, batch + (n, n), dtype), -1 if lower else 1)
    norm = np.linalg.norm(strict, axis=(-2, -1), keepdims=True)
    scale = rho * rng.uniform(0.0, 1.0, batch + (1, 1)) / np.where(norm > 0, norm, 1.0)
    matrix = strict * scale
    index = np.arange(n)
    if unit_diagonal:
        matrix[..., index, index] = 1.0
    else:
        magnitude = rng.uniform(1.0, top_diagonal, batch + (n,))
        phase = _gaussian(rng, batch + (n,), dtype)
        matrix[..., index, index] = magnitude * phase / np.abs(phase)
    return _finish(matrix, dtype)


def random_tall(rng, m, n, batch=(), dtype=np.float64, cond=10.0):
    """m x n matrices, m >= n, singular values log-uniform in [1, ``cond``]."""
    if m < n:
        raise ValueError(f"random_tall needs m >= n, got m={m}, n={n}")
    dtype, batch = _check_dtype(dtype), tuple(batch)
    s = _log_uniform(rng, _top_singular_value(cond, dtype, m), batch + (n,))
    u = _orthonormal_columns(rng, batch, m, n, dtype)
    v = _orthonormal_columns(rng, batch, n, n, dtype)
    return _finish(_from_svd(u, s, v), dtype)


def random_wide(rng, m, n, batch=(), dtype=np.float64, cond=10.0):
    """m x n matrices, m <= n: the conjugate transpose of ``random_tall``."""
    if m > n:
        raise ValueError(f"random_wide needs m <= n, got m={m}, n={n}")
    return _finish(_conj_t(random_tall(rng, n, m, batch, dtype, cond)), np.dtype(dtype))


def random_rank_deficient(rng, m, n, rank, batch=(), dtype=np.float64, cond=10.0):
    """m x n matrices of rank ``rank`` < min(m, n), built as U_r diag(s) V_r^H.

    The ``rank`` nonzero singular values are log-uniform in [1, ``cond``]; the
    others are zero up to rounding to ``dtype`` (O(eps * cond)), so
    ``numpy.linalg.matrix_rank`` returns ``rank``.
    """
    if not 0 <= rank < min(m, n):
        raise ValueError(f"rank must satisfy 0 <= rank < min(m, n), got rank={rank}, m={m}, n={n}")
    dtype, batch = _check_dtype(dtype), tuple(batch)
    s = _log_uniform(rng, _top_singular_value(cond, dtype, max(m, n)), batch + (rank,))
    u = _orthonormal_columns(rng, batch, m, rank, dtype)
    v = _orthonormal_columns(rng, batch, n, rank, dtype)
    return _finish(_from_svd(u, s, v), dtype)


def random_repeated_eigh(rng, n, multiplicity, batch=(), dtype=np.float64, gap=0.1):
    """Symmetric (Hermitian) matrices with one eigenvalue repeated ``multiplicity`` times.

    Built as mu*I + Q diag(lambda - mu) Q^H, so the repeated eigenvalue mu
    contributes exact zeros (``multiplicity == n`` gives exactly mu*I).  The
    n - multiplicity + 1 distinct eigenvalues lie in [-1, 1] and differ by at
    least ``gap * max|eigenvalue|``.  Needs 2 <= multiplicity <= n.
    """
    if not 2 <= multiplicity <= n:
        raise ValueError(f"multiplicity must satisfy 2 <= multiplicity <= n, got {multiplicity}, n={n}")
    dtype, batch = _check_dtype(dtype), tuple(batch)
    distinct_count = n - multiplicity + 1
    distinct = _spread_spectrum(rng, batch, distinct_count,
                                _padded_gap(gap, distinct_count, dtype, n))
    chosen = int(rng.integers(distinct_count))
    mu = distinct[..., chosen]
    repeated = np.repeat(distinct[..., chosen:chosen + 1], multiplicity, axis=-1)
    eigenvalues = np.concatenate([repeated, np.delete(distinct, chosen, axis=-1)], axis=-1)
    q = _orthonormal_columns(rng, batch, n, n, dtype)
    shifted = _hermitian_part(_from_svd(q, eigenvalues - mu[..., None], q))
    return _finish(shifted + mu[..., None, None] * np.eye(n), dtype)


def random_vector(rng, n, batch=(), dtype=np.float64):
    """Standard Gaussian vectors of shape ``batch + (n,)``."""
    dtype, batch = _check_dtype(dtype), tuple(batch)
    return _finish(_gaussian(rng, batch + (n,), dtype), dtype)


def random_rhs(rng, n, k, batch=(), dtype=np.float64):
    """Standard Gaussian right-hand sides of shape ``batch + (n, k)``."""
    dtype, batch = _check_dtype(dtype), tuple(batch)
    return _finish(_gaussian(rng, batch + (n, k), dtype), dtype)
