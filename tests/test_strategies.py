"""Each strategy in linalgad.testing.strategies produces what its docstring promises."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from linalgad.testing import strategies as ls

SETTINGS = settings(max_examples=25, deadline=None)
ANY_DTYPE = ls.dtypes()
ANY_BATCH = ls.batch_shapes()
COND_TOLERANCE = 1 + 1e-6
REPO_ROOT = Path(__file__).resolve().parents[1]


def wide(a):
    """The array in float64/complex128, so checks do not add float32 errors."""
    return a.astype(np.complex128 if a.dtype.kind == "c" else np.float64)


def conj_t(a):
    return np.conj(np.swapaxes(a, -1, -2))


def eps(a):
    return float(np.finfo(a.dtype).eps)


def check_layout(a, shape, dtype):
    assert a.shape == shape
    assert a.dtype == np.dtype(dtype)
    assert a.flags.c_contiguous


def check_complex(a, dtype, applies=True):
    """Complex dtypes give imaginary parts above rounding noise (where the structure allows)."""
    if np.dtype(dtype).kind == "c" and applies and a.size:
        assert np.max(np.abs(a.imag)) > 10 * eps(a) * np.max(np.abs(a))


def check_hermitian(a):
    assert np.array_equal(a, conj_t(a)), "not exactly symmetric/Hermitian"


def min_relative_gap(eigenvalues):
    """min_{i != j} |w_i - w_j| / max|w| over the last axis (sorted input)."""
    return np.min(np.diff(eigenvalues, axis=-1), axis=-1) / np.max(np.abs(eigenvalues), axis=-1)


@SETTINGS
@given(st.data(), st.integers(1, 6), ANY_BATCH, ANY_DTYPE, st.sampled_from([1.5, 10.0, 1e3]))
def test_general(data, n, batch, dtype, cond):
    a = data.draw(ls.general(n=n, batch=batch, dtype=dtype, cond=cond))
    check_layout(a, batch + (n, n), dtype)
    assert np.all(np.linalg.cond(wide(a)) <= cond * COND_TOLERANCE)
    check_complex(a, dtype)


@SETTINGS
@given(st.data(), st.integers(1, 6), ANY_BATCH, ANY_DTYPE, st.sampled_from([1.5, 10.0, 1e3]))
def test_spd(data, n, batch, dtype, cond):
    a = data.draw(ls.spd(n=n, batch=batch, dtype=dtype, cond=cond))
    check_layout(a, batch + (n, n), dtype)
    check_hermitian(a)
    w = np.linalg.eigvalsh(wide(a))
    assert np.all(w > 0)
    assert np.all(w[..., -1] / w[..., 0] <= cond * COND_TOLERANCE)
    np.linalg.cholesky(a)  # positive definite in its own precision too
    check_complex(a, dtype, applies=n >= 2)


@SETTINGS
@given(st.data(), st.integers(2, 6), ANY_BATCH, ANY_DTYPE, st.sampled_from([0.05, 0.1, 0.3]))
def test_symmetric_spread_spectrum(data, n, batch, dtype, gap):
    a = data.draw(ls.symmetric(n=n, batch=batch, dtype=dtype, gap=gap))
    check_layout(a, batch + (n, n), dtype)
    check_hermitian(a)
    w = np.linalg.eigvalsh(wide(a))
    assert np.all(np.abs(w) <= 1 + 1e-6)
    assert np.all(min_relative_gap(w) >= gap * (1 - 1e-9))
    check_complex(a, dtype)


@SETTINGS
@given(ls.orthogonal(batch=ANY_BATCH, dtype=ANY_DTYPE))
def test_orthogonal(q):
    n = q.shape[-1]
    check_layout(q, q.shape[:-2] + (n, n), q.dtype)
    identity = np.broadcast_to(np.eye(n), q.shape)
    tolerance = 10 * n * eps(q)
    np.testing.assert_allclose(conj_t(wide(q)) @ wide(q), identity, atol=tolerance)
    np.testing.assert_allclose(wide(q) @ conj_t(wide(q)), identity, atol=tolerance)
    check_complex(q, q.dtype)


@SETTINGS
@given(st.data(), st.integers(1, 6), ANY_BATCH, ANY_DTYPE, st.booleans(), st.booleans(),
       st.sampled_from([1.2, 10.0, 100.0]))
def test_triangular(data, n, batch, dtype, lower, unit_diagonal, cond):
    t = data.draw(ls.triangular(n=n, batch=batch, dtype=dtype, lower=lower,
                                unit_diagonal=unit_diagonal, cond=cond))
    check_layout(t, batch + (n, n), dtype)
    keep = np.tril if lower else np.triu
    assert np.array_equal(t, keep(t)), "entries outside the triangle are not zero"
    diagonal = np.abs(np.diagonal(t, axis1=-2, axis2=-1))
    if unit_diagonal:
        assert np.all(np.diagonal(t, axis1=-2, axis2=-1) == 1)
    else:
        assert np.all((diagonal >= 1 - 1e-6) & (diagonal <= 2 + 1e-6))
    assert np.all(np.linalg.cond(wide(t)) <= cond * COND_TOLERANCE)
    check_complex(t, dtype, applies=not (unit_diagonal and n == 1))


@SETTINGS
@given(ls.tall_full_rank(batch=ANY_BATCH, dtype=ANY_DTYPE, cond=20.0))
def test_tall_full_rank(a):
    m, n = a.shape[-2:]
    assert m >= n
    check_layout(a, a.shape, a.dtype)
    s = np.linalg.svd(wide(a), compute_uv=False)
    assert np.all(s[..., -1] >= 1 - 1e-5) and np.all(s[..., 0] <= 20.0 * (1 + 1e-5))
    assert np.all(np.linalg.cond(wide(a)) <= 20.0 * COND_TOLERANCE)
    check_complex(a, a.dtype)


@SETTINGS
@given(ls.wide_full_rank(batch=ANY_BATCH, dtype=ANY_DTYPE))
def test_wide_full_rank(a):
    m, n = a.shape[-2:]
    assert m <= n
    check_layout(a, a.shape, a.dtype)
    assert np.all(np.linalg.cond(wide(a)) <= 10.0 * COND_TOLERANCE)
    assert np.all(np.linalg.matrix_rank(a) == m)
    check_complex(a, a.dtype)


def test_tall_and_wide_fixed_sizes():
    rng = np.random.default_rng(0)
    assert ls.random_tall(rng, 5, 3).shape == (5, 3)
    assert ls.random_wide(rng, 3, 5, (2,), np.complex64).shape == (2, 3, 5)
    with pytest.raises(ValueError):
        ls.random_tall(rng, 2, 3)


@SETTINGS
@given(st.data(), st.integers(2, 6), st.integers(2, 6), ANY_BATCH, ANY_DTYPE)
def test_rank_deficient(data, m, n, batch, dtype):
    rank = data.draw(st.integers(0, min(m, n) - 1))
    a = data.draw(ls.rank_deficient(m=m, n=n, rank=rank, batch=batch, dtype=dtype))
    check_layout(a, batch + (m, n), dtype)
    assert np.all(np.linalg.matrix_rank(a) == rank)
    s = np.linalg.svd(wide(a), compute_uv=False)
    if rank:
        assert np.all(s[..., rank - 1] >= 1 - 1e-5) and np.all(s[..., 0] <= 10 * (1 + 1e-5))
    assert np.all(s[..., rank:] <= 100 * max(m, n) * eps(a))
    check_complex(a, dtype, applies=rank > 0)


@SETTINGS
@given(ls.rank_deficient(dtype=ANY_DTYPE))
def test_rank_deficient_default_rank(a):
    assert 1 <= np.linalg.matrix_rank(a) < min(a.shape)


@SETTINGS
@given(st.data(), st.integers(2, 4), st.integers(0, 3), ANY_BATCH, ANY_DTYPE)
def test_repeated_eigenvalues(data, multiplicity, extra, batch, dtype):
    n = multiplicity + extra
    a = data.draw(ls.repeated_eigenvalues(n=n, multiplicity=multiplicity, batch=batch,
                                          dtype=dtype, gap=0.2))
    check_layout(a, batch + (n, n), dtype)
    check_hermitian(a)
    w = np.linalg.eigvalsh(wide(a)).reshape(-1, n)
    tight = 100 * n * eps(a)
    for eigenvalues in w:
        scale = np.max(np.abs(eigenvalues))
        clusters = np.split(eigenvalues, np.nonzero(np.diff(eigenvalues) > tight * scale)[0] + 1)
        sizes = sorted(len(cluster) for cluster in clusters)
        assert sizes == [1] * extra + [multiplicity]
        centers = np.array([cluster.mean() for cluster in clusters])
        assert np.all(np.diff(centers) >= 0.2 * scale * (1 - 1e-6))
    check_complex(a, dtype, applies=extra > 0)


def test_full_multiplicity_is_exactly_scalar():
    a = ls.random_repeated_eigh(np.random.default_rng(1), 4, 4, (2,), np.complex128)
    mu = a[..., 0, 0]
    assert np.array_equal(a, mu[:, None, None] * np.eye(4))


@SETTINGS
@given(st.data(), st.integers(1, 6), st.integers(1, 3), ANY_BATCH, ANY_DTYPE)
def test_vectors_and_rhs(data, n, k, batch, dtype):
    v = data.draw(ls.vectors(n=n, batch=batch, dtype=dtype))
    b = data.draw(ls.rhs(n=n, k=k, batch=batch, dtype=dtype))
    check_layout(v, batch + (n,), dtype)
    check_layout(b, batch + (n, k), dtype)
    check_complex(np.concatenate([v.ravel(), b.ravel()]), dtype)


@SETTINGS
@given(ls.square_system(batch=ANY_BATCH, dtype=ANY_DTYPE))
def test_square_system(system):
    a, b = system
    n = a.shape[-1]
    assert a.shape[-2:] == (n, n) and a.dtype == b.dtype
    assert b.shape == (n,) or b.shape[-2] == n
    batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2] if b.ndim > 1 else ())
    x = np.linalg.solve(a, b)
    assert x.shape == batch + b.shape[-(min(b.ndim, 2)):]
    assert np.all(np.linalg.cond(wide(a)) <= 10.0 * COND_TOLERANCE)


@SETTINGS
@given(ls.square_system(n=3, batch=(2, 3), vector_rhs=False))
def test_square_system_matrix_rhs(system):
    a, b = system
    assert b.ndim >= 2 and b.shape[-2] == 3
    np.broadcast_shapes(a.shape[:-2], b.shape[:-2], (2, 3))


@SETTINGS
@given(ls.general(n=st.integers(1, 3), batch=ls.batch_shapes(max_dims=1),
                  dtype=ls.dtypes(include_complex=False), cond=st.floats(1.0, 50.0)))
def test_parameters_accept_strategies(a):
    assert a.dtype.kind == "f" and 1 <= a.shape[-1] <= 3


DEFAULT_STRATEGIES = [
    ls.general(), ls.spd(), ls.symmetric(), ls.orthogonal(), ls.triangular(),
    ls.tall_full_rank(), ls.wide_full_rank(), ls.rank_deficient(),
    ls.repeated_eigenvalues(), ls.vectors(), ls.rhs(),
]


@pytest.mark.parametrize("strategy", DEFAULT_STRATEGIES, ids=repr)
def test_defaults_give_unbatched_float64(strategy):
    @settings(max_examples=10, deadline=None)
    @given(strategy)
    def check(a):
        assert a.dtype == np.float64 and a.flags.c_contiguous and a.ndim in (1, 2)
        assert np.all(np.isfinite(a))

    check()


def test_generators_are_reproducible():
    first = ls.random_general(np.random.default_rng(7), 4, (3,), np.complex64)
    second = ls.random_general(np.random.default_rng(7), 4, (3,), np.complex64)
    assert np.array_equal(first, second)


def test_invalid_arguments_raise():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="dtype"):
        ls.random_general(rng, 3, dtype=np.int64)
    with pytest.raises(ValueError, match="cond"):
        ls.random_spd(rng, 3, cond=0.5)
    with pytest.raises(ValueError, match="gap"):
        ls.random_symmetric(rng, 6, gap=0.5)
    with pytest.raises(ValueError, match="rank"):
        ls.random_rank_deficient(rng, 3, 4, 3)
    with pytest.raises(ValueError, match="multiplicity"):
        ls.random_repeated_eigh(rng, 3, 4)


def test_missing_hypothesis_gives_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "hypothesis", None)
    spec = importlib.util.spec_from_file_location("_strategies_without_hypothesis", ls.__file__)
    with pytest.raises(ImportError, match=r"pip install 'linalgad\[test\]'"):
        spec.loader.exec_module(importlib.util.module_from_spec(spec))


def test_importing_linalgad_does_not_import_hypothesis():
    code = "import sys, linalgad; assert 'hypothesis' not in sys.modules, 'hypothesis imported'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO_ROOT)


@SETTINGS
@given(st.data())
def test_one_fixed_shape_parameter_constrains_the_others(data):
    """repeated_eigenvalues(n=3) drew multiplicity 4 and rank_deficient(rank=2) drew
    2 × 2 shapes: the user's property failed on the strategy's own ValueError."""
    for n in (2, 3):
        a = data.draw(ls.repeated_eigenvalues(n=n))
        assert a.shape == (n, n)
        w = np.linalg.eigvalsh(a)
        assert np.min(np.abs(w[:, None] - w[None, :]) + np.eye(n)) < 1e-10   # a repeat
    b = data.draw(ls.rank_deficient(rank=2))
    assert min(b.shape) >= 3 and np.linalg.matrix_rank(b) == 2


def test_the_documented_gap_limit_is_accepted():
    from linalgad.testing import matrices as M
    rng = np.random.default_rng(0)
    w = np.linalg.eigvalsh(M.random_symmetric(rng, 3, gap=1.0))
    assert np.diff(w).min() > 1 - 1e-12 and np.abs(w).max() < 1 + 1e-12
    w = np.linalg.eigvalsh(M.random_repeated_eigh(rng, 3, 2, gap=2.0))
    np.testing.assert_allclose(np.abs(w), 1, atol=1e-12)
    with pytest.raises(ValueError, match="gap 1.5$"):
        M.random_symmetric(rng, 3, gap=1.5)
