"""Kernels: plain arrays in, plain arrays out.  No knowledge of differentiation.

A rule asks ``kernels_for(A, b)`` for the kernel table of its inputs' array
type: :class:`CPUKernels` (NumPy/SciPy) here, or the CuPy table in
``linalgad.gpu`` for CuPy arrays (imported only when a CuPy array is seen, so
the library works without CuPy).  Both tables have the same methods; the rules
never branch on the device.

Factorizations are opaque objects that only their own table's ``*_solve``
reads, so a table is free to choose the fastest correct representation:

* a single matrix: LAPACK ``getrf``/``getrs`` (``potrf``/``potrs``) called
  directly, reusing the factors for every later solve (trans 'N', 'T', 'C');
* a stack of small matrices (n <= ``SMALL_N``): Gaussian elimination with
  partial pivoting vectorised across the stack (one NumPy operation handles
  every matrix of the stack at once), which is faster than a LAPACK call per
  matrix when matrices are tiny;
* a stack of larger matrices: one LAPACK call per matrix, factors kept.

Errors name the operation, the shapes and, in a stack, the index of the
failing matrix.
"""

from __future__ import annotations

import sys

import numpy as np
from numpy.linalg import LinAlgError
from scipy.linalg import lapack as _lapack

__all__ = ["kernels_for", "namespace_of", "CPUKernels", "LinAlgError",
           "check_finite", "batch_index"]

# Stacks of matrices at most this large use the vectorised elimination.
SMALL_N = 8


def _is_cupy(x):
    mod = type(x).__module__
    return mod.startswith("cupy") and "cupy" in sys.modules


def namespace_of(*arrays):
    """numpy, or cupy when the arrays are CuPy arrays.  Mixing is an error."""
    gpu = cpu = False
    for a in arrays:
        if isinstance(a, np.ndarray) or np.isscalar(a) or a is None:
            cpu = cpu or isinstance(a, np.ndarray)
        elif _is_cupy(a):
            gpu = True
        else:
            cpu = True
    if gpu and cpu:
        raise TypeError("linalgad: cannot mix CPU (NumPy) and GPU (CuPy) arrays in one "
                        "operation; move them to one device first (cupy.asarray / .get())")
    if gpu:
        import cupy
        return cupy
    return np


def kernels_for(*arrays):
    """The kernel table for the arrays' device."""
    for a in arrays:
        if type(a) is not np.ndarray:
            break
    else:
        return CPU
    xp = namespace_of(*arrays)
    if xp is np:
        return CPU
    from .gpu import kernels
    return kernels.GPU


def batch_index(batch_shape, flat_index):
    """Flat position in a stack -> NumPy index tuple (for error messages)."""
    if not batch_shape:
        return ()
    return tuple(int(i) for i in np.unravel_index(flat_index, batch_shape))


def _where(op, batch_shape, flat_index):
    if not batch_shape:
        return ""
    return f" (matrix {batch_index(batch_shape, flat_index)} of the stack of shape {batch_shape})"


def check_finite(op, name, a):
    """Raise ValueError if ``a`` has an inf or NaN, naming op and position."""
    if type(a) is np.ndarray:
        if a.dtype.kind in "fc" and _all_finite(a):
            return
        xp = np
    else:
        xp = namespace_of(a)
    if not hasattr(a, "ndim"):
        a = np.asarray(a)
    ok = xp.isfinite(a)
    if bool(ok.all()):
        return
    if a.ndim <= 2:
        raise ValueError(f"{op}: {name} contains infs or NaNs")
    bad = int(xp.flatnonzero(~ok.reshape(-1, *a.shape[-2:]).all(axis=(-2, -1)))[0])
    raise ValueError(f"{op}: {name} contains infs or NaNs{_where(op, a.shape[:-2], bad)}")


def _all_finite(a):
    """Fast finiteness test of a NumPy array.

    For large arrays a finite sum proves every entry finite (NaN and inf
    propagate) at a third of the cost of isfinite().all(); a sum that
    overflows on finite entries falls back to the exact test.
    """
    if a.size < 16384:
        return bool(np.isfinite(a).all())
    with np.errstate(over="ignore", invalid="ignore"):
        if np.isfinite(a.sum()):
            return True
    return bool(np.isfinite(a).all())


class LUFactors:
    """P A = L U of a stack of square matrices, in a table-private layout."""

    __slots__ = ("kind", "data", "piv", "shape")

    def __init__(self, kind, data, piv, shape):
        self.kind = kind      # "lapack" (list or single) or "vector" (batch-last arrays)
        self.data = data
        self.piv = piv
        self.shape = shape    # shape of the factored stack, (..., n, n)


class CholFactors:
    __slots__ = ("data", "lower", "shape")

    def __init__(self, data, lower, shape):
        self.data = data
        self.lower = lower
        self.shape = shape


_TRANS = {0: 0, 1: 1, 2: 2, "N": 0, "T": 1, "C": 2}

_LAPACK = {}


def _lapack_fn(name, dtype):
    """A LAPACK routine for dtype, looked up once (get_lapack_funcs is slow)."""
    key = (name, dtype.char)
    fn = _LAPACK.get(key)
    if fn is None:
        fn = _LAPACK[key] = _lapack.get_lapack_funcs((name,), dtype=dtype)[0]
    return fn


class CPUKernels:
    """NumPy/SciPy kernels."""

    xp = np
    name = "cpu"

    # -- LU ---------------------------------------------------------------
    def lu_factor(self, A, op="lu_factor"):
        n = A.shape[-1]
        batch = A.shape[:-2]
        if batch and n <= SMALL_N:
            return _vector_lu_factor(A, op)
        # LAPACK wants Fortran order.  Aᵀ of a C-ordered A is a Fortran-ordered
        # view, so factor Aᵀ = P L U (no transposing copy: a quarter faster at
        # n = 1024) and let lu_solve map each op(A) onto an op of Aᵀ.
        getrf = _lapack_fn("getrf", A.dtype)
        if not batch:
            lu, piv, info = getrf(A.T)
            if info > 0:
                raise LinAlgError(f"{op}: matrix is singular (a zero pivot in its LU "
                                  f"factorization); shape {A.shape}")
            return LUFactors("lapack", lu, piv, A.shape)
        flat = A.reshape(-1, n, n)
        lus, pivs = [], []
        for i, a in enumerate(flat):
            lu, piv, info = getrf(a.T)
            if info > 0:
                raise LinAlgError(f"{op}: matrix is singular (a zero pivot in its LU "
                                  f"factorization){_where(op, batch, i)}")
            lus.append(lu)
            pivs.append(piv)
        return LUFactors("lapack", lus, pivs, A.shape)

    def lu_solve(self, F, b, trans=0):
        """Solve op(A) x = b with A's factors; b: (..., n, k), same stack as A."""
        trans = _TRANS[trans]
        if F.kind == "vector":
            return _vector_lu_solve(F, b, trans)
        data = F.data
        getrs = _lapack_fn("getrs", np.result_type(data[0] if isinstance(data, list) else data, b))
        # the factors are of Aᵀ:  A = (Aᵀ)ᵀ,  Aᵀ itself,  Aᴴ = conj(Aᵀ)
        conj = trans == 2 and getrs.typecode in "cz"
        t = 1 if trans == 0 else 0
        if conj:
            b = np.conj(b)
        if not isinstance(data, list):
            x, info = getrs(data, F.piv, b, trans=t)
        else:
            n, k = b.shape[-2:]
            flat_b = b.reshape(-1, n, k)
            x = np.empty(flat_b.shape, dtype=np.result_type(data[0], b))
            for i, (lu, piv) in enumerate(zip(data, F.piv)):
                x[i], info = getrs(lu, piv, flat_b[i], trans=t)
            x = x.reshape(b.shape[:-2] + (n, k))
        return np.conj(x) if conj else x

    # -- Cholesky ---------------------------------------------------------
    def cho_factor(self, A, lower=True, op="cho_factor"):
        potrf = _lapack_fn("potrf", A.dtype)
        n = A.shape[-1]
        batch = A.shape[:-2]
        flat = A.reshape(-1, n, n)
        cs = []
        for i, a in enumerate(flat):
            c, info = potrf(a, lower=lower, clean=0)
            if info > 0:
                raise LinAlgError(f"{op}: matrix is not positive definite (leading minor of "
                                  f"order {info} is not positive){_where(op, batch, i)}")
            cs.append(c)
        data = cs[0] if not batch else cs
        return CholFactors(data, lower, A.shape)

    def cho_solve(self, F, b):
        data = F.data
        potrs = _lapack_fn("potrs", np.result_type(data[0] if isinstance(data, list) else data, b))
        if not isinstance(F.data, list):
            x, info = potrs(F.data, b, lower=F.lower)
            return x
        n, k = b.shape[-2:]
        flat_b = b.reshape(-1, n, k)
        out = np.empty(flat_b.shape, dtype=np.result_type(F.data[0], b))
        for i, c in enumerate(F.data):
            out[i], info = potrs(c, flat_b[i], lower=F.lower)
        return out.reshape(b.shape[:-2] + (n, k))


CPU = CPUKernels()


# -- Vectorised LU for stacks of tiny matrices --------------------------------
#
# Layout: the stack is moved to the last axis, (n, n, B), so every step of the
# elimination is a handful of NumPy operations over contiguous runs of B
# numbers.  Partial pivoting as in LAPACK's getrf (the row of largest
# magnitude in the current column); the multipliers are stored below the
# diagonal, U on and above it, and the row permutation as a (n, B) array
# ``perm`` with (P A)[i] = A[perm[i]].

def _vector_lu_factor(A, op):
    n = A.shape[-1]
    batch = A.shape[:-2]
    B = int(np.prod(batch))
    dtype = np.result_type(A.dtype, np.float32)
    a = np.moveaxis(A.reshape(B, n, n), 0, -1).astype(dtype, order="C", copy=True)  # (n, n, B)
    perm = np.broadcast_to(np.arange(n)[:, None], (n, B)).copy()
    cols = np.arange(B)
    absval = np.abs
    for k in range(n):
        if k < n - 1:
            p = k + np.argmax(absval(a[k:, k, :]), axis=0)       # (B,)
            swap = p != k
            if swap.any():
                idx = cols[swap]
                pk = p[swap]
                row_k = a[k, :, idx].copy()
                a[k, :, idx] = a[pk, :, idx]
                a[pk, :, idx] = row_k
                perm_k = perm[k, idx].copy()
                perm[k, idx] = perm[pk, idx]
                perm[pk, idx] = perm_k
        pivot = a[k, k, :]
        zero = pivot == 0
        if zero.any():
            i = int(np.flatnonzero(zero)[0])
            raise LinAlgError(f"{op}: matrix is singular (U[{k}, {k}] = 0 in its LU "
                              f"factorization){_where(op, batch, i)}")
        if k < n - 1:
            a[k + 1:, k, :] /= pivot
            a[k + 1:, k + 1:, :] -= a[k + 1:, k, None, :] * a[k, None, k + 1:, :]
    # row j of matrix c of the stack, as a row of b.reshape(B * n, k): P b is a gather
    rows = (np.arange(B)[:, None] * n + perm.T).ravel()
    return LUFactors("vector", a, rows, A.shape)


def _vector_lu_solve(F, b, trans):
    """Solve with vectorised factors; every operation runs over the whole stack.

    The right-hand sides are laid out (n, k, B) so that row i of every
    system is one contiguous (k, B) block, updated in place.  The row
    permutation is one gather (or scatter) of whole rows of b.
    """
    a, rows = F.data, F.piv
    n, B = a.shape[0], a.shape[-1]
    k = b.shape[-1]
    dtype = np.result_type(a.dtype, b.dtype)
    b_rows = b.reshape(B * n, k)
    tmp = np.empty((k, B), dtype=dtype)
    if trans == 2 and a.dtype.kind == "c":
        a = a.conj()
    if trans == 0:
        # P A = L U:  A x = b  <=>  L (U x) = P b
        pb = b_rows[rows].reshape(B, n, k)
        y = np.moveaxis(pb, 0, -1).astype(dtype, order="C")             # (n, k, B)
        for i in range(1, n):
            yi = y[i]
            for j in range(i):
                np.multiply(a[i, j], y[j], out=tmp)
                yi -= tmp
        for i in range(n - 1, -1, -1):
            yi = y[i]
            for j in range(i + 1, n):
                np.multiply(a[i, j], y[j], out=tmp)
                yi -= tmp
            yi /= a[i, i]
        return np.moveaxis(y, -1, 0).reshape(b.shape[:-2] + (n, k))
    # Aᵀ x = b  <=>  Uᵀ (Lᵀ (P x)) = b   (conjugated factors for 'C')
    y = np.moveaxis(b.reshape(B, n, k), 0, -1).astype(dtype, order="C")
    for i in range(n):
        yi = y[i]
        for j in range(i):
            np.multiply(a[j, i], y[j], out=tmp)
            yi -= tmp
        yi /= a[i, i]
    for i in range(n - 2, -1, -1):
        yi = y[i]
        for j in range(i + 1, n):
            np.multiply(a[j, i], y[j], out=tmp)
            yi -= tmp
    x = np.empty((B * n, k), dtype=dtype)
    x[rows] = np.moveaxis(y, -1, 0).reshape(B * n, k)                  # x = Pᵀ y
    return x.reshape(b.shape[:-2] + (n, k))
