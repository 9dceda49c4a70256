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

__all__ = ["kernels_for", "namespace_of", "ComposedKernels", "CPUKernels", "LinAlgError",
           "check_finite", "batch_index"]

# Stacks of matrices at most this large use the vectorised elimination.
SMALL_N = 8
# Stacks of triangular matrices at most this large are solved by blocks over the
# whole stack (batched matrix products), not by one LAPACK call per matrix.
BLOCKED_TRI_N = 128


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

    __slots__ = ("kind", "data", "piv", "shape", "swaps")

    def __init__(self, kind, data, piv, shape, swaps=None):
        self.kind = kind      # "lapack" (list or single) or "vector" (batch-last arrays)
        self.data = data
        self.piv = piv
        self.shape = shape    # shape of the factored stack, (..., n, n)
        self.swaps = swaps    # "vector": (n, B) row swapped with at each step


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


class ComposedKernels:
    """Kernels both tables build the same way from their own primitives.

    A device table subclasses this and supplies ``cholesky`` and
    ``solve_triangular``; what is composed from them is written once here.
    """

    def cho_factor(self, A, lower=True, op="cho_factor"):
        """Cholesky factors (the factor array itself, zeros in the other triangle)."""
        return CholFactors(self.cholesky(A, lower, op), lower, A.shape)

    def cho_solve(self, F, b):
        """A x = b with A = L Lᴴ (or Uᴴ U): two triangular solves with the stored factor."""
        c = F.data
        if F.lower:
            y = self.solve_triangular(c, b, lower=True, trans=0, op="cho_solve")
            return self.solve_triangular(c, y, lower=True, trans=2, op="cho_solve")
        y = self.solve_triangular(c, b, lower=False, trans=2, op="cho_solve")
        return self.solve_triangular(c, y, lower=False, trans=0, op="cho_solve")


class CPUKernels(ComposedKernels):
    """NumPy/SciPy kernels."""

    xp = np
    name = "cpu"

    # -- LU ---------------------------------------------------------------
    def lu_factor(self, A, op="lu_factor", singular_ok=False):
        """Factors of a stack of square matrices, opaque; singular_ok keeps
        factors with an exactly zero pivot (for det/slogdet) instead of raising."""
        n = A.shape[-1]
        batch = A.shape[:-2]
        if batch and n <= SMALL_N:
            return _vector_lu_factor(A, op, singular_ok)
        # LAPACK wants Fortran order.  Aᵀ of a C-ordered A is a Fortran-ordered
        # view, so factor Aᵀ = P L U (no transposing copy: a quarter faster at
        # n = 1024) and let lu_solve map each op(A) onto an op of Aᵀ.
        getrf = _lapack_fn("getrf", A.dtype)
        if not batch:
            lu, piv, info = getrf(A.T)
            if info > 0 and not singular_ok:
                raise LinAlgError(f"{op}: matrix is singular (a zero pivot in its LU "
                                  f"factorization); shape {A.shape}")
            return LUFactors("lapack", lu, piv, A.shape)
        flat = A.reshape(-1, n, n)
        lus, pivs = [], []
        for i, a in enumerate(flat):
            lu, piv, info = getrf(a.T)
            if info > 0 and not singular_ok:
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
    # -- from LU factors --------------------------------------------------
    def lu_diagonal(self, F):
        """(diag(U) of shape (..., n), sign of the row permutation (...,))."""
        batch = F.shape[:-2]
        n = F.shape[-1]
        if F.kind == "vector":
            d = np.diagonal(F.data, 0, 0, 1)                         # (B, n)
            odd = np.count_nonzero(F.swaps != np.arange(n)[:, None], axis=0) % 2
        elif isinstance(F.data, list):
            d = np.stack([np.diagonal(lu) for lu in F.data])
            odd = np.count_nonzero(np.stack(F.piv) != np.arange(n), axis=-1) % 2
        else:
            d = np.diagonal(F.data)
            odd = np.count_nonzero(F.piv != np.arange(n)) % 2
        sign = (1 - 2 * np.asarray(odd)).astype(d.dtype)
        return d.reshape(batch + (n,)), sign.reshape(batch)

    def lu_inverse(self, F):
        """A⁻¹ from A's factors (LAPACK getri), no new factorization."""
        n = F.shape[-1]
        if F.kind == "vector":
            eye = np.broadcast_to(np.eye(n, dtype=F.data.dtype), F.shape)
            return _vector_lu_solve(F, eye, 0)
        single = not isinstance(F.data, list)
        lus, pivs = ([F.data], [F.piv]) if single else (F.data, F.piv)
        getri = _lapack_fn("getri", lus[0].dtype)
        lwork = _getri_lwork(lus[0].dtype, n)
        out = np.empty((len(lus), n, n), dtype=lus[0].dtype)
        for i, (lu, piv) in enumerate(zip(lus, pivs)):
            inv_t, info = getri(lu, piv, lwork=lwork)
            out[i] = inv_t.T          # the factors are of Aᵀ: getri gives A⁻ᵀ
        return out[0] if single else out.reshape(F.shape)

    def inv(self, A, op="inv"):
        if not A.shape[:-2]:
            return self.lu_inverse(self.lu_factor(A, op))
        try:
            return np.linalg.inv(A)
        except LinAlgError:
            _first_failure(np.linalg.inv, A, op, "matrix is singular")

    # -- LU as a result (lu_factor, lu) --------------------------------------
    def lu_packed(self, A, op="lu_factor"):
        """SciPy's packed LU of A (..., m, n): (lu, perm, piv) with A[perm] = L U.

        piv is LAPACK's (0-based) swap sequence, perm the row order it makes.
        """
        m, n = A.shape[-2:]
        k = min(m, n)
        batch = A.shape[:-2]
        if batch and m == n and n <= SMALL_N:
            F = _vector_lu_factor(A, op, singular_ok=True)
            lu = np.moveaxis(F.data, -1, 0).reshape(A.shape)
            piv = np.ascontiguousarray(F.swaps.T).reshape(batch + (n,))
        else:
            getrf = _lapack_fn("getrf", A.dtype)
            flat = A.reshape((-1, m, n))
            lu = np.empty(flat.shape, dtype=A.dtype)
            piv = np.empty((flat.shape[0], k), dtype=np.intp)
            for i, a in enumerate(flat):
                lu_i, piv_i, info = getrf(a)
                lu[i] = lu_i
                piv[i] = piv_i[:k]
            lu = lu.reshape(A.shape)
            piv = piv.reshape(batch + (k,))
        diag = np.diagonal(lu, 0, -2, -1)
        if (diag == 0).any():
            import warnings
            from scipy.linalg import LinAlgWarning
            bad = np.argwhere(diag == 0)[0]
            warnings.warn(f"{op}: diagonal number {int(bad[-1])} of U is exactly zero; "
                          f"singular matrix{_where(op, batch, np.ravel_multi_index(tuple(bad[:-1]), batch) if batch else 0)}",
                          LinAlgWarning, stacklevel=4)
        return lu, _perm_from_swaps(piv, m), piv

    def perm_from_swaps(self, piv, m):
        """Row order of LAPACK's swap sequence piv (..., k): A[perm] = L U."""
        return _perm_from_swaps(np.asarray(piv), m)

    # -- triangular ----------------------------------------------------------
    def solve_triangular(self, A, b, lower=False, trans=0, unit_diagonal=False,
                         op="solve_triangular"):
        """op(T) x = b with T one triangle of A; A (..., n, n), b (..., n, k) same stack."""
        trans = _TRANS[trans]
        n, k = b.shape[-2:]
        batch = A.shape[:-2]
        dtype = np.result_type(A.dtype, b.dtype)
        if batch and n <= SMALL_N:
            return _vector_tri_solve(A, b, lower, trans, unit_diagonal, op)
        if batch and n <= BLOCKED_TRI_N:
            return _blocked_tri_solve(A, b, lower, trans, unit_diagonal, op)
        trtrs = _lapack_fn("trtrs", dtype)
        # pass Aᵀ (a free Fortran-ordered view): its opposite triangle, op mapped
        conj = trans == 2 and dtype.kind == "c"
        t = 1 if trans == 0 else 0
        if conj:
            b = np.conj(b)
        flat_a = A.reshape((-1, n, n)).astype(dtype, copy=False)
        flat_b = b.reshape((-1, n, k))
        out = np.empty(flat_b.shape, dtype=dtype)
        for i in range(flat_a.shape[0]):
            x, info = trtrs(flat_a[i].T, flat_b[i], lower=not lower, trans=t,
                            unitdiag=unit_diagonal)
            if info > 0:
                raise LinAlgError(f"{op}: triangular matrix is singular (diagonal entry "
                                  f"{info - 1} is zero){_where(op, batch, i)}")
            out[i] = x
        out = out.reshape(b.shape)
        return np.conj(out) if conj else out

    # -- Cholesky as a result --------------------------------------------------
    def cholesky(self, A, lower=True, op="cholesky"):
        """The Cholesky factor read from one triangle of A; zeros in the other."""
        if A.shape[:-2]:
            try:
                return np.linalg.cholesky(A, upper=not lower)
            except LinAlgError:
                _first_failure(lambda a: np.linalg.cholesky(a, upper=not lower), A, op,
                               "matrix is not positive definite")
        potrf = _lapack_fn("potrf", A.dtype)
        # Aᵀ is a free Fortran view; for Hermitian A, its opposite factor is ours, transposed
        c, info = potrf(A.T, lower=not lower, clean=1)
        if info > 0:
            raise LinAlgError(f"{op}: matrix is not positive definite (leading minor of "
                              f"order {info} is not positive)")
        if info < 0:
            raise LinAlgError(f"{op}: LAPACK potrf rejected argument {-info}")
        return c.T

    # -- QR, SVD ----------------------------------------------------------------
    def qr(self, A, complete=False):
        return np.linalg.qr(A, mode="complete" if complete else "reduced")

    def svd(self, A, full_matrices=True, compute_uv=True, op="svd"):
        return _named(lambda a: np.linalg.svd(a, full_matrices=full_matrices,
                                              compute_uv=compute_uv),
                      A, op, "SVD did not converge")

    def eigh(self, A, lower=True, op="eigh"):
        return _named(lambda a: np.linalg.eigh(a, UPLO="L" if lower else "U"), A, op,
                      "eigenvalues did not converge")

    def eigvalsh(self, A, lower=True, op="eigvalsh"):
        return _named(lambda a: np.linalg.eigvalsh(a, UPLO="L" if lower else "U"), A, op,
                      "eigenvalues did not converge")

    def eig(self, A, op="eig"):
        """(w, V), always complex (NumPy returns real arrays when every eigenvalue is real)."""
        cdt = _complex_of(A.dtype)
        w, V = _named(np.linalg.eig, A, op, "eigenvalues did not converge")
        return w.astype(cdt, copy=False), V.astype(cdt, copy=False)

    def eigvals(self, A, op="eigvals"):
        w = _named(np.linalg.eigvals, A, op, "eigenvalues did not converge")
        return w.astype(_complex_of(A.dtype), copy=False)


def _named(fn, A, op, what):
    """fn(A); when LAPACK fails on the stack, a LinAlgError naming op and the failing matrix."""
    try:
        return fn(A)
    except LinAlgError:
        _first_failure(fn, A, op, what)


def _complex_of(dtype):
    return np.result_type(dtype, np.complex64)


_GETRI_LWORK = {}


def _getri_lwork(dtype, n):
    key = (np.dtype(dtype).char, n)
    w = _GETRI_LWORK.get(key)
    if w is None:
        work, info = _lapack_fn("getri_lwork", np.dtype(dtype))(n)
        w = _GETRI_LWORK[key] = max(1, int(1.01 * np.real(work)))
    return w


def _first_failure(fn, A, op, what):
    """fn failed on the stack A: find the first matrix it fails on and raise, naming it."""
    batch = A.shape[:-2]
    flat = A.reshape((-1,) + A.shape[-2:])
    for i, a in enumerate(flat):
        try:
            fn(a)
        except LinAlgError:
            raise LinAlgError(f"{op}: {what}{_where(op, batch, i)}") from None
    raise LinAlgError(f"{op}: {what}")


def _perm_from_swaps(piv, m):
    """Row order of LAPACK's swap sequence: A[perm] = L U.  piv (..., k) -> (..., m)."""
    batch = piv.shape[:-1]
    flat = piv.reshape(-1, piv.shape[-1])
    B = flat.shape[0]
    if B <= 8:
        # a few matrices: the swap sequence on plain lists (a NumPy call per swap
        # costs microseconds; this is 1 ms -> 0.1 ms at n = 1024)
        out = np.empty((B, m), dtype=np.intp)
        for r, row in enumerate(flat.tolist()):
            perm = list(range(m))
            for i, p in enumerate(row):
                perm[i], perm[p] = perm[p], perm[i]
            out[r] = perm
        return out.reshape(batch + (m,))
    perm = np.broadcast_to(np.arange(m), (B, m)).copy()
    rows = np.arange(B)
    for i in range(flat.shape[1]):
        p = flat[:, i]
        pi = perm[rows, i].copy()
        perm[rows, i] = perm[rows, p]
        perm[rows, p] = pi
    return perm.reshape(batch + (m,))


CPU = CPUKernels()


# -- Vectorised LU for stacks of tiny matrices --------------------------------
#
# Layout: the stack is moved to the last axis, (n, n, B), so every step of the
# elimination is a handful of NumPy operations over contiguous runs of B
# numbers.  Partial pivoting as in LAPACK's getrf (the row of largest
# magnitude in the current column); the multipliers are stored below the
# diagonal, U on and above it, and the row permutation as a (n, B) array
# ``perm`` with (P A)[i] = A[perm[i]].

def _vector_lu_factor(A, op, singular_ok=False):
    n = A.shape[-1]
    batch = A.shape[:-2]
    B = int(np.prod(batch))
    dtype = np.result_type(A.dtype, np.float32)
    a = np.moveaxis(A.reshape(B, n, n), 0, -1).astype(dtype, order="C", copy=True)  # (n, n, B)
    perm = np.broadcast_to(np.arange(n)[:, None], (n, B)).copy()
    swaps = perm.copy()
    cols = np.arange(B)
    # LAPACK's pivot order: largest |Re| + |Im| for complex (i?amax), |x| for real
    absval = (lambda x: np.abs(x.real) + np.abs(x.imag)) if dtype.kind == "c" else np.abs
    for k in range(n):
        if k < n - 1:
            p = k + np.argmax(absval(a[k:, k, :]), axis=0)       # (B,)
            swaps[k] = p
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
            if not singular_ok:
                i = int(np.flatnonzero(zero)[0])
                raise LinAlgError(f"{op}: matrix is singular (U[{k}, {k}] = 0 in its LU "
                                  f"factorization){_where(op, batch, i)}")
            # as LAPACK: a zero pivot means a zero column below it; skip its division
            pivot = np.where(zero, 1, pivot)
        if k < n - 1:
            a[k + 1:, k, :] /= pivot
            a[k + 1:, k + 1:, :] -= a[k + 1:, k, None, :] * a[k, None, k + 1:, :]
    # row j of matrix c of the stack, as a row of b.reshape(B * n, k): P b is a gather
    rows = (np.arange(B)[:, None] * n + perm.T).ravel()
    return LUFactors("vector", a, rows, A.shape, swaps)


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


def _check_diagonal(d, batch, op):
    """Raise naming the matrix of the stack whose triangular factor has a zero on d."""
    zero = d == 0
    if zero.any():
        i, j = np.argwhere(zero.reshape(-1, d.shape[-1]))[0]
        raise LinAlgError(f"{op}: triangular matrix is singular (diagonal entry {j} is "
                          f"zero){_where(op, batch, i)}")


def _vector_tri_solve(A, b, lower, trans, unit, op, check=True):
    """Triangular solves over a stack of tiny matrices, batch-last like the LU above."""
    n, k = b.shape[-2:]
    batch = A.shape[:-2]
    B = int(np.prod(batch))
    dtype = np.result_type(A.dtype, b.dtype)
    T = np.moveaxis(A.reshape(B, n, n), 0, -1)                           # (n, n, B)
    if trans:
        T = np.swapaxes(T, 0, 1)
        if trans == 2 and dtype.kind == "c":
            T = T.conj()
        lower = not lower
    T = np.ascontiguousarray(T, dtype=dtype)
    if check and not unit:
        _check_diagonal(np.diagonal(T, 0, 0, 1), batch, op)              # (B, n)
    y = np.moveaxis(b.reshape(B, n, k), 0, -1).astype(dtype, order="C")  # (n, k, B)
    tmp = np.empty((k, B), dtype=dtype)
    order = range(n) if lower else range(n - 1, -1, -1)
    for i in order:
        yi = y[i]
        others = range(i) if lower else range(i + 1, n)
        for j in others:
            np.multiply(T[i, j], y[j], out=tmp)
            yi -= tmp
        if not unit:
            yi /= T[i, i]
    return np.moveaxis(y, -1, 0).reshape(batch + (n, k))


def _blocked_tri_solve(A, b, lower, trans, unit, op):
    """Triangular solves over a stack by recursive halving: the off-diagonal updates
    are batched matrix products, the diagonal blocks (n <= SMALL_N) are solved by
    the vectorised substitution.  No per-matrix Python loop."""
    n, k = b.shape[-2:]
    batch = A.shape[:-2]
    dtype = np.result_type(A.dtype, b.dtype)
    if not unit:
        _check_diagonal(np.diagonal(A, 0, -2, -1), batch, op)
    T = A.reshape((-1, n, n))
    if trans:
        T = np.swapaxes(T, -1, -2)
        if trans == 2 and dtype.kind == "c":
            T = T.conj()
        lower = not lower
    T = T.astype(dtype, copy=False)
    x = np.array(b.reshape((-1, n, k)), dtype=dtype)          # solved in place, by blocks

    def leaf(lo, hi):
        # the inverse of a small diagonal block by vectorised substitution, then one
        # batched product (what blocked batched trsm kernels do)
        eye = np.broadcast_to(np.eye(hi - lo, dtype=dtype), (T.shape[0], hi - lo, hi - lo))
        inv = _vector_tri_solve(T[:, lo:hi, lo:hi], eye, lower, 0, unit, op, check=False)
        x[:, lo:hi] = inv @ x[:, lo:hi]

    def solve(lo, hi):
        if hi - lo <= SMALL_N:
            leaf(lo, hi)
            return
        mid = (lo + hi) // 2
        if lower:
            solve(lo, mid)
            x[:, mid:hi] -= T[:, mid:hi, lo:mid] @ x[:, lo:mid]
            solve(mid, hi)
        else:
            solve(mid, hi)
            x[:, lo:mid] -= T[:, lo:mid, mid:hi] @ x[:, mid:hi]
            solve(lo, mid)

    solve(0, n)
    return x.reshape(b.shape[:-2] + (n, k))
