"""Input dtypes LAPACK has no kernels for: booleans and integers of every size compute in
float64 (NumPy's linalg rule, which np.result_type does not follow: int8 with float32 is
float32 there), float16 in float32 (SciPy's rule; NumPy's linalg refuses float16).  Results
equal NumPy's/SciPy's on the float64 copy; a gradient has the input's own dtype."""

import numpy as np
import pytest
import scipy.linalg as sl

import linalgad as lad
from linalgad import linalg as la

A0 = np.array([[2, 1], [1, 3]])
ONES = np.ones(2)

# name -> (linalgad, NumPy/SciPy reference on float64 or None); each takes the matrix
FUNCTIONS = {
    "det": (la.det, np.linalg.det),
    "slogdet": (lambda a: la.slogdet(a)[1], lambda a: np.linalg.slogdet(a)[1]),
    "inv": (la.inv, np.linalg.inv),
    "solve": (lambda a: la.solve(a, ONES.astype(a.dtype)), lambda a: np.linalg.solve(a, ONES)),
    "solve_triangular": (lambda a: la.solve_triangular(a, ONES.astype(a.dtype), lower=True),
                         lambda a: sl.solve_triangular(a, ONES, lower=True)),
    "cholesky": (la.cholesky, np.linalg.cholesky),
    "cho_factor": (lambda a: np.triu(la.cho_factor(a)[0]),         # (the other triangle:
                   lambda a: np.triu(sl.cho_factor(a)[0])),        # unspecified)
    "lu_factor": (lambda a: la.lu_factor(a)[0], lambda a: sl.lu_factor(a)[0]),
    "qr": (lambda a: la.qr(a)[1], lambda a: np.linalg.qr(a)[1]),
    "eigh": (lambda a: la.eigh(a)[0], lambda a: np.linalg.eigh(a)[0]),
    "eigvalsh": (la.eigvalsh, np.linalg.eigvalsh),
    "svd": (lambda a: la.svd(a)[1], lambda a: np.linalg.svd(a)[1]),
    "eigvals": (la.eigvals, np.linalg.eigvals),
    "pinv": (la.pinv, np.linalg.pinv),
    "pinvh": (la.pinvh, sl.pinvh),
    "lstsq": (lambda a: la.lstsq(a, ONES.astype(a.dtype))[0],
              lambda a: np.linalg.lstsq(a, ONES)[0]),
    "expm": (la.expm, sl.expm),
    "sqrtm": (la.sqrtm, sl.sqrtm),
    "logm": (la.logm, sl.logm),
    "funmh": (lambda a: la.funmh(a, np.exp), sl.expm),
    "polar": (lambda a: la.polar(a)[1], lambda a: sl.polar(a)[1]),
    "solve_sylvester": (lambda a: la.solve_sylvester(a, a, a), lambda a: sl.solve_sylvester(a, a, a)),
    "norm 2": (lambda a: la.norm(a, 2), lambda a: np.linalg.norm(a, 2)),
    "cond": (la.cond, np.linalg.cond),
    "matrix_power": (lambda a: la.matrix_power(a, -2), lambda a: np.linalg.matrix_power(a, -2)),
}


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
@pytest.mark.parametrize("dtype", [np.bool_, np.int8, np.uint8, np.int16, np.int32, np.int64,
                                   np.float16])
def test_dtypes_without_lapack_kernels(name, dtype):
    ours, reference = FUNCTIONS[name]
    A = (np.eye(2) if dtype is np.bool_ else A0).astype(dtype)
    got = np.asarray(ours(A))
    want = np.asarray(reference(A.astype(np.float64)))
    real = np.float32 if dtype is np.float16 else np.float64
    complex_out = want.dtype.kind == "c" or name == "eigvals"     # (eigvals: always complex)
    assert got.dtype == (np.result_type(real, np.complex64) if complex_out else real)
    rtol = 1e-4 if dtype is np.float16 else 1e-12
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol)


@pytest.mark.parametrize("name", ["inv", "expm", "eigh", "solve"])
def test_gradient_of_a_half_precision_input(name):
    """Computed in float32 and returned as the input's float16, like any cast's gradient."""
    ours, _ = FUNCTIONS[name]
    A = A0.astype(np.float16)
    g = lad.grad(lambda a: lad.sum(ours(a)))(A)
    g32 = lad.grad(lambda a: lad.sum(ours(a)))(A.astype(np.float32))
    assert g.dtype == np.float16
    np.testing.assert_allclose(g, g32.astype(np.float16), rtol=1e-3)
