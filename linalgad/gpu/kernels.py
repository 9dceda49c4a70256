"""CuPy kernels with the same methods as ``backend.CPUKernels``.

Same contract: plain CuPy arrays in and out, factorizations kept as opaque
objects that only this table's ``*_solve`` reads, errors that name the
operation and the index of the failing matrix in a stack.

cuSOLVER's getrf/potrf through ``cupyx.scipy.linalg`` take one matrix at a
time; stacks are factored matrix by matrix (a batched cuBLAS path is future
work, measured in benchmarks/ when a GPU is available).
"""

from __future__ import annotations

import cupy
from cupyx.scipy import linalg as _cxl

from ..backend import CholFactors, LinAlgError, LUFactors, _TRANS, _where

__all__ = ["GPU", "GPUKernels"]


def _first_bad(mask):
    """Index of the first True in a device boolean array (host sync), or None."""
    if not bool(mask.any()):
        return None
    return int(cupy.flatnonzero(mask.ravel())[0].get())


class GPUKernels:
    xp = cupy
    name = "gpu"

    def lu_factor(self, A, op="lu_factor"):
        n = A.shape[-1]
        batch = A.shape[:-2]
        flat = A.reshape(-1, n, n)
        lus, pivs = [], []
        for a in flat:
            lu, piv = _cxl.lu_factor(a, check_finite=False)
            lus.append(lu)
            pivs.append(piv)
        diag = cupy.stack([cupy.diagonal(lu) for lu in lus])
        bad = _first_bad((diag == 0).any(axis=-1))
        if bad is not None:
            raise LinAlgError(f"{op}: matrix is singular (a zero pivot in its LU "
                              f"factorization){_where(op, batch, bad)}")
        if not batch:
            return LUFactors("cusolver", lus[0], pivs[0], A.shape)
        return LUFactors("cusolver", lus, pivs, A.shape)

    def lu_solve(self, F, b, trans=0):
        trans = _TRANS[trans]
        if not isinstance(F.data, list):
            return _cxl.lu_solve((F.data, F.piv), b, trans=trans, check_finite=False)
        n, k = b.shape[-2:]
        flat_b = b.reshape(-1, n, k)
        out = cupy.stack([_cxl.lu_solve((lu, piv), bi, trans=trans, check_finite=False)
                          for lu, piv, bi in zip(F.data, F.piv, flat_b)])
        return out.reshape(b.shape[:-2] + (n, k))

    def cho_factor(self, A, lower=True, op="cho_factor"):
        L = cupy.linalg.cholesky(A)          # batched; lower factor
        diag = cupy.diagonal(L, axis1=-2, axis2=-1)
        bad = _first_bad(~cupy.isfinite(diag).all(axis=-1) | (diag.real <= 0).any(axis=-1))
        if bad is not None:
            raise LinAlgError(f"{op}: matrix is not positive definite"
                              f"{_where(op, A.shape[:-2], bad)}")
        return CholFactors(L, True, A.shape)

    def cho_solve(self, F, b):
        L = F.data
        n, k = b.shape[-2:]
        if L.ndim == 2:
            y = _cxl.solve_triangular(L, b, lower=True, check_finite=False)
            return _cxl.solve_triangular(L, y, lower=True, trans="C", check_finite=False)
        Ls = L.reshape(-1, n, n)
        bs = b.reshape(-1, n, k)
        out = []
        for Li, bi in zip(Ls, bs):
            y = _cxl.solve_triangular(Li, bi, lower=True, check_finite=False)
            out.append(_cxl.solve_triangular(Li, y, lower=True, trans="C", check_finite=False))
        return cupy.stack(out).reshape(b.shape[:-2] + (n, k))


GPU = GPUKernels()
