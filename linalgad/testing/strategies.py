"""Random test matrices: plain-NumPy generators and Hypothesis strategies.

``random_*`` functions take a ``numpy.random.Generator`` and return arrays.
Strategies (``general``, ``spd``, ...) draw the shape parameters and one
integer seed, then call the matching ``random_*`` function with
``numpy.random.default_rng(seed)``: shrinking acts on sizes and the seed,
never on single entries.  Conventions shared by all of them:

* ``dtype`` is one of float32, float64, complex64, complex128.  Matrices are
  built in float64/complex128 and rounded once to ``dtype``; the result has
  exactly that dtype, is C-contiguous and has shape ``batch + (n, n)`` (or
  ``batch + (m, n)``).
* Complex dtypes give genuinely complex matrices (Gaussian real and imaginary
  parts); "symmetric" means Hermitian and "orthogonal" means unitary there.
* Spectral promises (condition number, eigenvalue gaps) hold for the stored,
  rounded matrix: the construction leaves a margin of a few ``n * eps(dtype)``
  for the rounding, so they hold whenever ``cond * n * eps(dtype)`` is small.
* In a strategy, ``n``, ``m``, ``k``, ``batch``, ``dtype``, ``cond`` and
  ``gap`` may each be a fixed value or a strategy for one.
"""

from __future__ import annotations

import numpy as np

try:
    from hypothesis import strategies as st
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "linalgad.testing.strategies needs Hypothesis, an optional dependency: "
        "pip install 'linalgad[test]'"
    ) from exc

from .matrices import (  # noqa: F401  (re-exported)
    DTYPES, random_general, random_rank_deficient, random_repeated_eigh, random_rhs,
    random_spd, random_symmetric, random_tall, random_orthogonal, random_triangular,
    random_vector, random_wide)
from .matrices import _check_dtype  # noqa: F401

__all__ = [
    "DTYPES", "random_general", "random_spd", "random_symmetric",
    "random_orthogonal", "random_triangular", "random_tall", "random_wide",
    "random_rank_deficient", "random_repeated_eigh", "random_vector",
    "random_rhs", "dtypes", "batch_shapes", "general", "spd", "symmetric",
    "orthogonal", "triangular", "tall_full_rank", "wide_full_rank",
    "rank_deficient", "repeated_eigenvalues", "vectors", "rhs", "square_system",
]

# ---------------------------------------------------------------------------
# Hypothesis strategies
# ---------------------------------------------------------------------------

_SEEDS = st.integers(0, 2**32 - 1)
_SIZES = st.integers(1, 6)
_EXTRA_ROWS = st.integers(0, 3)


def dtypes(include_real=True, include_complex=True):
    """Strategy for the supported dtypes (float32/64, complex64/128)."""
    kinds = ("f" if include_real else "") + ("c" if include_complex else "")
    return st.sampled_from([d for d in DTYPES if d.kind in kinds])


def batch_shapes(max_dims=2, max_side=3):
    """Strategy for batch shapes: tuples of 0..``max_dims`` sides in 1..``max_side``."""
    return st.lists(st.integers(1, max_side), max_size=max_dims).map(tuple)


def _draw(draw, value):
    """Draw from ``value`` if it is a strategy; otherwise return it as is."""
    return draw(value) if isinstance(value, st.SearchStrategy) else value


def _draw_setup(draw, batch, dtype):
    """Draw the batch shape and dtype, then the seed; return (rng, batch, dtype)."""
    batch = tuple(_draw(draw, batch))
    dtype = _check_dtype(_draw(draw, dtype))
    return np.random.default_rng(draw(_SEEDS)), batch, dtype


def _draw_sorted_pair(draw, small, large):
    """Draw a (small, large) pair of sizes; ``large=None`` means small + 0..3."""
    small = _draw(draw, small)
    large = small + draw(_EXTRA_ROWS) if large is None else _draw(draw, large)
    return min(small, large), max(small, large)


@st.composite
def general(draw, *, n=_SIZES, batch=(), dtype=np.float64, cond=10.0):
    """Square matrices Q1 diag(s) Q2, s log-uniform in [1, cond]: cond_2(A) <= cond."""
    size, cond = _draw(draw, n), _draw(draw, cond)
    rng, batch, dtype = _draw_setup(draw, batch, dtype)
    return random_general(rng, size, batch, dtype, cond)


@st.composite
def spd(draw, *, n=_SIZES, batch=(), dtype=np.float64, cond=10.0):
    """Symmetric (Hermitian) positive definite, eigenvalues in [1, cond]."""
    size, cond = _draw(draw, n), _draw(draw, cond)
    rng, batch, dtype = _draw_setup(draw, batch, dtype)
    return random_spd(rng, size, batch, dtype, cond)


@st.composite
def symmetric(draw, *, n=_SIZES, batch=(), dtype=np.float64, gap=0.1):
    """Symmetric (Hermitian), eigenvalues in [-1, 1] pairwise >= gap * max|eigenvalue| apart.

    Distinct eigenvalues make eigenvector derivatives well defined.  Needs
    (n - 1) * gap <= 2 for every drawn n.
    """
    size, gap = _draw(draw, n), _draw(draw, gap)
    rng, batch, dtype = _draw_setup(draw, batch, dtype)
    return random_symmetric(rng, size, batch, dtype, gap)


@st.composite
def orthogonal(draw, *, n=_SIZES, batch=(), dtype=np.float64):
    """Haar orthogonal (real) / unitary (complex) matrices: Q^H Q = I."""
    size = _draw(draw, n)
    rng, batch, dtype = _draw_setup(draw, batch, dtype)
    return random_orthogonal(rng, size, batch, dtype)


@st.composite
def triangular(draw, *, n=_SIZES, batch=(), dtype=np.float64, lower=True,
               unit_diagonal=False, cond=10.0):
    """Lower (upper if not ``lower``) triangular with cond_2(T) <= cond.

    Diagonal magnitudes in [1, min(2, sqrt(cond))] (exactly 1 with
    ``unit_diagonal``); entries outside the triangle are exactly zero.  See
    ``random_triangular`` for the bound.
    """
    size, cond = _draw(draw, n), _draw(draw, cond)
    rng, batch, dtype = _draw_setup(draw, batch, dtype)
    return random_triangular(rng, size, batch, dtype, lower, unit_diagonal, cond)


@st.composite
def tall_full_rank(draw, *, m=None, n=st.integers(1, 5), batch=(), dtype=np.float64, cond=10.0):
    """m x n with m >= n, singular values in [1, cond] (full column rank, cond_2 <= cond).

    ``m=None`` draws m = n + 0..3; drawn sizes with m < n are swapped.
    """
    cols, rows = _draw_sorted_pair(draw, n, m)
    cond = _draw(draw, cond)
    rng, batch, dtype = _draw_setup(draw, batch, dtype)
    return random_tall(rng, rows, cols, batch, dtype, cond)


@st.composite
def wide_full_rank(draw, *, m=st.integers(1, 5), n=None, batch=(), dtype=np.float64, cond=10.0):
    """m x n with m <= n, singular values in [1, cond] (full row rank, cond_2 <= cond).

    ``n=None`` draws n = m + 0..3; drawn sizes with m > n are swapped.
    """
    rows, cols = _draw_sorted_pair(draw, m, n)
    cond = _draw(draw, cond)
    rng, batch, dtype = _draw_setup(draw, batch, dtype)
    return random_wide(rng, rows, cols, batch, dtype, cond)


@st.composite
def rank_deficient(draw, *, m=None, n=None, rank=None,
                   batch=(), dtype=np.float64, cond=10.0):
    """m x n of exact rank r < min(m, n); nonzero singular values in [1, cond].

    ``m=None``, ``n=None`` draw from 2..6 (from r + 1 up where ``rank`` is given);
    ``rank=None`` draws r from 1..min(m, n) - 1.  The other singular values are zero
    up to rounding, and ``numpy.linalg.matrix_rank`` returns r.
    """
    fixed = None if rank is None else _draw(draw, rank)
    lo = 2 if fixed is None else max(2, fixed + 1)
    rows = draw(st.integers(lo, max(6, lo))) if m is None else _draw(draw, m)
    cols = draw(st.integers(lo, max(6, lo))) if n is None else _draw(draw, n)
    top = min(rows, cols) - 1
    rank = draw(st.integers(min(1, top), top)) if fixed is None else fixed
    cond = _draw(draw, cond)
    rng, batch, dtype = _draw_setup(draw, batch, dtype)
    return random_rank_deficient(rng, rows, cols, rank, batch, dtype, cond)


@st.composite
def repeated_eigenvalues(draw, *, n=None, multiplicity=None, batch=(),
                         dtype=np.float64, gap=0.1):
    """Symmetric (Hermitian) with one eigenvalue repeated exactly ``multiplicity`` times.

    ``multiplicity=None`` draws it from 2..4 (at most n where ``n`` is given);
    ``n=None`` draws n = multiplicity + 0..3.  The distinct eigenvalues lie
    in [-1, 1], pairwise >= gap * max|eigenvalue| apart.  See
    ``random_repeated_eigh``.
    """
    if n is None:
        count = draw(st.integers(2, 4)) if multiplicity is None else _draw(draw, multiplicity)
        size = count + draw(_EXTRA_ROWS)
    else:
        size = _draw(draw, n)
        count = (draw(st.integers(2, max(2, min(4, size)))) if multiplicity is None
                 else _draw(draw, multiplicity))
    gap = _draw(draw, gap)
    rng, batch, dtype = _draw_setup(draw, batch, dtype)
    return random_repeated_eigh(rng, size, count, batch, dtype, gap)


@st.composite
def vectors(draw, *, n=_SIZES, batch=(), dtype=np.float64):
    """Standard Gaussian vectors of shape batch + (n,)."""
    size = _draw(draw, n)
    rng, batch, dtype = _draw_setup(draw, batch, dtype)
    return random_vector(rng, size, batch, dtype)


@st.composite
def rhs(draw, *, n=_SIZES, k=st.integers(1, 3), batch=(), dtype=np.float64):
    """Standard Gaussian right-hand sides of shape batch + (n, k)."""
    size, columns = _draw(draw, n), _draw(draw, k)
    rng, batch, dtype = _draw_setup(draw, batch, dtype)
    return random_rhs(rng, size, columns, batch, dtype)


@st.composite
def _broadcast_partner(draw, shape):
    """A shape that broadcasts to ``shape``: leading sides dropped, some set to 1."""
    kept = shape[draw(st.integers(0, len(shape))):]
    ones = draw(st.lists(st.booleans(), min_size=len(kept), max_size=len(kept)))
    return tuple(1 if one else side for side, one in zip(kept, ones))


@st.composite
def square_system(draw, *, n=_SIZES, k=st.integers(1, 3), batch=(), dtype=np.float64,
                  cond=10.0, vector_rhs=None):
    """Pairs (A, b) for ``solve(A, b)`` in NumPy's conventions.

    A is ``general`` (cond_2 <= cond) with shape batch_A + (n, n).  b is either
    a 1-D vector of shape (n,) (``vector_rhs=True``) or a stack of shape
    batch_b + (n, k) (``vector_rhs=False``); ``None`` draws which.  batch_A and
    batch_b each broadcast to ``batch`` (sides dropped or set to 1), so the
    solution has shape broadcast(batch_A, batch_b) + (n,) or + (n, k).
    """
    size, columns, cond = _draw(draw, n), _draw(draw, k), _draw(draw, cond)
    as_vector = draw(st.booleans()) if vector_rhs is None else vector_rhs
    rng, full_batch, dtype = _draw_setup(draw, batch, dtype)
    a = random_general(rng, size, draw(_broadcast_partner(full_batch)), dtype, cond)
    if as_vector:
        return a, random_vector(rng, size, (), dtype)
    return a, random_rhs(rng, size, columns, draw(_broadcast_partner(full_batch)), dtype)
