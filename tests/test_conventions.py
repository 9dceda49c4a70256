"""NumPy's and SciPy's conventions where an audit of user code found linalgad differing:
array-likes (lists, np.matrix), vecdot's axis, error classes, empty input, result types."""

import itertools
import warnings

import numpy as np
import pytest

import linalgad as lad
from linalgad import linalg as la

RNG = np.random.default_rng(0)
A = RNG.standard_normal((3, 3))
A = A @ A.T + 3 * np.eye(3)
b = RNG.standard_normal(3)
B = RNG.standard_normal((3, 3))

ARRAY_FUNCTIONS = {
    "solve": lambda a: la.solve(a, b), "inv": la.inv, "det": la.det,
    "slogdet": lambda a: la.slogdet(a)[1], "cholesky": la.cholesky,
    "qr": lambda a: la.qr(a)[1], "eigh": lambda a: la.eigh(a)[0], "svdvals": la.svdvals,
    "eigvals": la.eigvals, "lstsq": lambda a: la.lstsq(a, b)[0], "pinv": la.pinv,
    "pinvh": la.pinvh, "expm": la.expm, "sqrtm": la.sqrtm, "logm": la.logm, "cosm": la.cosm,
    "tanhm": la.tanhm, "fractional_matrix_power": lambda a: la.fractional_matrix_power(a, 0.5),
    "funmh": lambda a: la.funmh(a, np.exp), "generalized_funm": lambda a: la.generalized_funm(
        a, np.sqrt), "solve_sylvester": lambda a: la.solve_sylvester(a, a, B),
    "solve_continuous_lyapunov": lambda a: la.solve_continuous_lyapunov(a, B),
    "polar": lambda a: la.polar(a)[0], "norm": la.norm, "norm 2": lambda a: la.norm(a, 2),
    "norm nuc": lambda a: la.norm(a, "nuc"), "matrix_norm": la.matrix_norm,
    "vector_norm": la.vector_norm, "cond": la.cond,
    "matrix_power": lambda a: la.matrix_power(a, 3), "multi_dot": lambda a: la.multi_dot([a, a]),
    "multi_dot of 3": lambda a: la.multi_dot([a, a, a]), "trace": la.trace,
    "diagonal": la.diagonal, "matrix_transpose": la.matrix_transpose,
    "vecdot": lambda a: la.vecdot(a, a), "cross": lambda a: la.cross(a, a),
    "tensordot": lambda a: la.tensordot(a, a), "matmul": lambda a: la.matmul(a, a),
    "matrix_rank": la.matrix_rank, "expm_frechet": lambda a: la.expm_frechet(a, a)[1],
    "dot": lambda a: lad.dot(a, a),
}


@pytest.mark.parametrize("name", sorted(ARRAY_FUNCTIONS))
@pytest.mark.parametrize("kind", ["list", "matrix"])
def test_lists_and_matrix_subclasses_are_arrays(name, kind):
    """multi_dot and dot of lists multiplied elementwise (a list had shape ()); the norms,
    trace, vecdot, cross, tensordot failed on lists; np.matrix (whose * and ** are matrix
    products) broke pinv, the expm family, logm, the Sylvester solvers, funmh, polar."""
    f = ARRAY_FUNCTIONS[name]
    x = A.tolist() if kind == "list" else np.matrix(A)
    want, got = f(A), f(x)
    assert type(got) is not np.matrix or name == "dot"      # np.dot keeps np.matrix too
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-12, atol=1e-12)


def test_gradients_through_lists():
    W = A.tolist()
    g = lad.grad(lambda x: lad.sum(la.multi_dot([x, W])))(np.eye(3))
    np.testing.assert_allclose(g, np.ones((3, 3)) @ A.T)


def test_vecdot_takes_the_axis_of_each_operand_before_broadcasting():
    shapes = [(3,), (3, 3), (2, 3), (3, 2), (1, 3), (2, 1, 3), (3, 1), (2, 3, 3)]
    for s1, s2 in itertools.product(shapes, shapes):
        for axis in (-2, -1, 0, 1, 2):
            x1, x2 = RNG.standard_normal(s1), RNG.standard_normal(s2)
            try:
                want = np.linalg.vecdot(x1, x2, axis=axis)
            except (ValueError, IndexError) as e:
                with pytest.raises(type(e) if not isinstance(e, ValueError) else ValueError):
                    la.vecdot(x1, x2, axis=axis)
                continue
            np.testing.assert_allclose(la.vecdot(x1, x2, axis=axis), want, rtol=1e-12)
    x1, x2 = np.arange(3.0), np.arange(9.0).reshape(3, 3)
    np.testing.assert_allclose(la.vecdot(x1, x2, axis=0), [15.0, 18.0, 21.0])
    g = lad.grad(lambda x: lad.sum(la.vecdot(x, x2, axis=0)))(x1)
    np.testing.assert_allclose(g, x2.sum(axis=1))


@pytest.mark.parametrize("a, assume_a", [(-np.eye(2), "pos"), (np.diag([1.0, 0.0]), "diagonal"),
                                         (np.triu(np.ones((2, 2))) - np.eye(2),
                                          "upper triangular")])
def test_inv_with_assume_a_raises_linalgerror(a, assume_a):
    with pytest.raises(np.linalg.LinAlgError, match="inv"):
        la.inv(a, assume_a=assume_a)


def test_sqrtm_of_a_positive_semidefinite_matrix_of_low_rank():
    """Rounding makes its zero eigenvalues slightly negative (ones((3, 3)): −6e-16), and
    SciPy's root then has an imaginary part of 1e-8: the real root, as SciPy's real part.
    A negative eigenvalue beyond rounding still raises."""
    rng = np.random.default_rng(1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for M in [np.ones((3, 3))] + [(lambda Y: Y @ Y.T)(rng.standard_normal((5, 2)))
                                      for _ in range(10)]:
            X = la.sqrtm(M)
            assert X.dtype == np.float64
            np.testing.assert_allclose(X @ X, M, atol=1e-12 * np.abs(M).max())
    with pytest.raises(np.linalg.LinAlgError, match="negative real eigenvalue"):
        la.sqrtm(np.diag([1.0, -1e-6, 2.0]))


def test_empty_matrix_rank_cond_and_vector_norms():
    for x in (np.zeros((0, 0)), np.zeros((0, 3)), np.zeros((2, 0, 0)), np.zeros((3, 0))):
        np.testing.assert_array_equal(la.matrix_rank(x), np.linalg.matrix_rank(x))
    np.testing.assert_array_equal(la.cond(np.zeros((0, 3, 3))), np.zeros(0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for ord in (np.inf, -1, -2, -0.5, 0, 1, 3):
            assert la.norm(np.zeros(0), ord) == np.linalg.norm(np.zeros(0), ord)
            np.testing.assert_array_equal(la.norm(np.zeros((0, 3)), ord, axis=0),
                                          np.linalg.norm(np.zeros((0, 3)), ord, axis=0))


def test_result_types_and_keywords():
    for ord in (None, 2, -2, "nuc", 1, "fro"):
        assert type(la.norm(A, ord)) is np.float64
    sign, logabs = la.slogdet(np.ones((3, 3)))
    assert type(sign) is np.float64 and type(logabs) is np.float64 and logabs == -np.inf
    with pytest.raises(ValueError, match="lapack_driver"):
        la.svd(A, lapack_driver="bad")
    la.svd(A, lapack_driver="gesvd")
    import scipy.linalg as sl
    for a in (A, np.stack([A, B])):
        assert la.lu_factor(a)[1].dtype == sl.lu_factor(a)[1].dtype == np.int32
    assert np.array_equal(la.lu_solve(la.lu_factor(A), b), sl.lu_solve(sl.lu_factor(A), b))
    t = la.tensordot(b, b, axes=1)
    assert type(t) is np.ndarray and t.shape == () and np.isclose(t, b @ b)
