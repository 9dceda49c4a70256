"""Empty inputs: a 0 x 0 matrix, a stack of them, 0 x n and m x 0 matrices, an empty stack.

Every public function returns what NumPy/SciPy return there (shapes, dtypes, values: det 1,
log|det| 0, the norms that are maxima or sums 0), or an empty result where they fail or have
no counterpart (scipy.linalg.logm of 0 x 0 raises; the empty logarithm is empty), and the
derivatives in both modes are empty arrays (or zeros, for an output such as det that is not
empty).  LAPACK itself rejects a leading dimension of 0, so no kernel may reach it with one:
its complaint ("illegal value", printed by xerbla) fails the test too.
"""

import numpy as np
import pytest
import scipy.linalg as sl

import linalgad as lad
from linalgad import linalg as la


def _pivots(shape):
    return np.zeros(shape[:-1], dtype=np.int32)


def _rhs(shape):
    return np.zeros(shape[:-1] + (2,))


# name -> (linalgad, reference or None, shapes it is checked on); each takes the matrix A
SQUARE = [(0, 0), (2, 0, 0), (0, 3, 3)]
ANY = SQUARE + [(0, 3), (3, 0), (2, 3, 0)]
CASES = {
    "solve": (lambda A: la.solve(A, _rhs(A.shape)), lambda A: np.linalg.solve(A, _rhs(A.shape)),
              SQUARE),
    "solve_triangular": (lambda A: la.solve_triangular(A, _rhs(A.shape), lower=True),
                         None, SQUARE),
    "inv": (la.inv, np.linalg.inv, SQUARE),
    "det": (la.det, np.linalg.det, SQUARE),
    "slogdet": (la.slogdet, np.linalg.slogdet, SQUARE),
    "logdet": (la.logdet, lambda A: np.linalg.slogdet(A)[1], SQUARE),
    "cholesky": (la.cholesky, np.linalg.cholesky, SQUARE),
    "cho_solve": (lambda A: la.cho_solve((A, True), _rhs(A.shape)), None, SQUARE),
    "lu_factor": (la.lu_factor, None, SQUARE),
    # (P is compared in test_lu_permutation_of_an_empty_matrix: SciPy's is 0 x 0 for m x 0)
    "lu": (lambda A: la.lu(A)[1:], lambda A: sl.lu(A)[1:] if A.ndim == 2 else None, ANY),
    "lu_solve": (lambda A: la.lu_solve((A, _pivots(A.shape)), _rhs(A.shape)), None, SQUARE),
    "qr": (la.qr, np.linalg.qr, ANY),
    "eigh": (la.eigh, np.linalg.eigh, SQUARE),
    "eigvalsh": (la.eigvalsh, np.linalg.eigvalsh, SQUARE),
    "eig": (la.eig, None, SQUARE),
    "eigvals": (la.eigvals, None, SQUARE),
    "svd": (la.svd, np.linalg.svd, ANY),
    "svdvals": (la.svdvals, lambda A: np.linalg.svd(A, compute_uv=False), ANY),
    "pinv": (la.pinv, np.linalg.pinv, ANY),
    "pinvh": (la.pinvh, None, SQUARE),
    "lstsq": (lambda A: la.lstsq(A, _rhs(A.shape))[0], None, [(0, 0), (0, 3), (3, 0)]),
    "expm": (la.expm, lambda A: sl.expm(A) if A.ndim == 2 else None, SQUARE),
    "sqrtm": (la.sqrtm, None, SQUARE),
    "logm": (la.logm, None, SQUARE),
    "funmh": (lambda A: la.funmh(A, np.exp), None, SQUARE),
    "generalized_funm": (lambda A: la.generalized_funm(A, np.tanh), None, ANY),
    "polar": (la.polar, None, [(0, 0), (3, 0)]),
    "solve_sylvester": (lambda A: la.solve_sylvester(A, A, A), None, SQUARE),
    "solve_continuous_lyapunov": (lambda A: la.solve_continuous_lyapunov(A, A), None, SQUARE),
    "solve_discrete_lyapunov": (lambda A: la.solve_discrete_lyapunov(A, A), None, SQUARE),
    "matrix_power": (lambda A: (la.matrix_power(A, 3), la.matrix_power(A, -2)),
                     lambda A: (np.linalg.matrix_power(A, 3), np.linalg.matrix_power(A, -2)),
                     SQUARE),
    "norms": (lambda A: tuple(la.norm(A, o, axis=(-2, -1))
                              for o in (None, "fro", "nuc", 2, 1, np.inf)),
              lambda A: tuple(np.linalg.norm(A, o, axis=(-2, -1))
                              for o in (None, "fro", "nuc", 2, 1, np.inf)), ANY),
}
PARAMS = [(name, shape) for name, (_, _, shapes) in CASES.items() for shape in shapes]


def _leaves(x):
    if isinstance(x, (tuple, list)):
        return [y for item in x for y in _leaves(item)]
    return [x]


def _loss(fun):
    def loss(A):
        total = 0.0
        for out in _leaves(fun(A)):
            if np.dtype(out.dtype).kind in "fc":
                total = total + lad.sum(lad.real(out))
        return total
    return loss


@pytest.mark.parametrize("name,shape", PARAMS)
def test_empty_input(name, shape, capfd):
    ours, reference, _ = CASES[name]
    A = np.zeros(shape)
    got = _leaves(ours(A))
    want = reference(A) if reference is not None else None
    if want is not None:
        want = _leaves(want)
        assert len(got) == len(want)
        for g, w in zip(got, want):
            g, w = np.asarray(g), np.asarray(w)
            assert g.shape == w.shape and g.dtype == w.dtype, (g.shape, g.dtype, w.shape, w.dtype)
            np.testing.assert_array_equal(g, w)
    for g in got:
        assert np.all(np.isfinite(np.asarray(g)))
    # reverse mode: an empty cotangent of A's shape; forward mode: zero tangents
    loss = _loss(ours)
    value, grad = lad.value_and_grad(loss)(A)
    assert grad.shape == A.shape and grad.dtype == A.dtype
    _, tangent = lad.jvp(loss, (A,), (np.zeros_like(A),))
    assert np.asarray(tangent) == 0
    # and a second order: the Hessian-vector product is empty too
    assert lad.hvp(loss, (A,), (np.zeros_like(A),))[0].shape == A.shape
    captured = capfd.readouterr()          # (LAPACK's xerbla writes to stdout)
    assert "illegal value" not in captured.out + captured.err


def test_empty_jit_replay():
    """A recorded call on 0 x 0 replays (and a 1 x 1 one is recorded anew)."""
    f = lad.jit(lad.value_and_grad(lambda A: lad.sum(la.inv(A)) + la.slogdet(A)[1]))
    for _ in range(2):
        value, grad = f(np.zeros((0, 0)))
        assert value == 0 and grad.shape == (0, 0)
    value, grad = f(np.array([[2.0]]))
    assert np.isclose(value, 0.5 + np.log(2.0)) and np.allclose(grad, -0.25 + 0.5)


def test_rectangular_with_a_nonempty_argument():
    """Where one argument has entries, its derivative is not trivial: lstsq with a 3 x 0
    matrix leaves all of b as the residual, whose gradient in b is 2b."""
    b = np.array([1.0, -2.0, 0.5])
    A = np.zeros((3, 0))
    gA, gb = lad.grad(lambda A, b: lad.sum(la.lstsq(A, b)[1]), argnums=(0, 1))(A, b)
    assert gA.shape == (3, 0)
    np.testing.assert_allclose(gb, 2 * b)


def test_lu_permutation_of_an_empty_matrix():
    """A = P L U with L m x 0 and U 0 x n: P is the identity of order m (SciPy 1.17 returns
    a 0 x 0 P for a 3 x 0 matrix, which cannot multiply L; linalgad keeps P m x m)."""
    for shape in [(3, 0), (0, 3), (2, 3, 0)]:
        P, L, U = la.lu(np.zeros(shape))
        m = shape[-2]
        np.testing.assert_array_equal(P, np.broadcast_to(np.eye(m), shape[:-2] + (m, m)))
        assert (P @ L @ U).shape == shape


def test_one_empty_matrix_against_a_stack_and_empty_left_eigenvectors():
    """A 0 × 0 matrix against a stack of right-hand sides folded the stack with
    reshape(0, -1) (ambiguous: ValueError), and eig(left=True) of 0 × 0 took an argmax of
    nothing; NumPy and SciPy return empty results."""
    a0, b0 = np.zeros((0, 0)), np.zeros((2, 0, 2))
    assert la.solve(a0, b0).shape == np.linalg.solve(a0, b0).shape == (2, 0, 2)
    assert la.solve_triangular(a0, b0).shape == sl.solve_triangular(a0, b0).shape
    ga, gb = lad.grad(lambda a, b: lad.sum(la.solve(a, b)), argnums=(0, 1))(a0, b0)
    assert ga.shape == (0, 0) and gb.shape == (2, 0, 2)
    for b in (None, a0):
        got, want = la.eig(a0, b, left=True), sl.eig(a0, b, left=True)
        assert [x.shape for x in got] == [x.shape for x in want]
