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
* a stack of larger matrices: one LAPACK call per matrix, factors kept — for LU, on
  one C-ordered copy of the stack by address (``linalgad._lapack_stack``: SciPy's
  LAPACK through its Cython function pointers, without the f2py wrappers' per-call
  checks and copies); triangular solves of stacks of order >= ``STACK_TRSM_N`` the
  same way, by BLAS ``trsm`` on the matrices as they are (no copy of the stack).

Errors name the operation, the shapes and, in a stack, the index of the
failing matrix.
"""

from __future__ import annotations

import functools
import math
import sys

import numpy as np
from numpy.linalg import LinAlgError
from scipy.linalg import blas as _blas
from scipy.linalg import lapack as _lapack

from . import _lapack_extreme, _lapack_stack, _logm_stack
from ._cache import ArrayCache

__all__ = ["kernels_for", "namespace_of", "ComposedKernels", "CPUKernels", "LinAlgError",
           "check_finite", "batch_index"]

# Stacks of matrices at most this large use the vectorised elimination.
SMALL_N = 8
# The banded Cholesky's derivative recurrences (congruence_chain) on blocks of up to this
# order are solved as one triangular band system of their Kronecker form (b⁴ numbers a
# block; 5,000 blocks of order 2: 0.85 ms against cyclic reduction's 2.4, order 3: 2.7
# against 2.2); larger blocks by cyclic reduction.
CHAIN_KRONECKER_B = 2
CHAIN_CHUNK = 1 << 22       # numbers of band storage per tbtrs call (32 MB in float64)

# Stacks of banded matrices from this order on are factored by LAPACK's band routines
# matrix by matrix (direct calls, _lapack_stack); smaller ones by the vectorised dense LU /
# Cholesky of the stack (value and gradient, 4,000 rows in all, one thread, ms, dense /
# band, l = u = 1 and l = u = 2: order 8 0.83 / 1.29 and 0.86 / 1.30, 12 1.02 / 0.93 and
# 1.05 / 1.01, 16 0.95 / 0.76 and 1.03 / 0.88)
BAND_STACK_N = 12
# Stacks of triangular matrices at most this large are solved by blocks over the
# whole stack (batched matrix products), not by one LAPACK call per matrix.
BLOCKED_TRI_N = 128
# Stacks of triangular matrices from this order on are solved by one direct BLAS trsm
# call per matrix (from half of it when there are at least n right-hand sides).
STACK_TRSM_N = 32
# From this size on, the Cholesky cotangent's L⁻ᴴ S L⁻¹ is one sygst/hegst call (below
# it the blocked LAPACK routine's unblocked steps make it slower than two solves).
SANDWICH_GST_N = 256
# Stacks of Cholesky factors from this order on (up to BLOCKED_TRI_N) get the
# cotangent's L⁻ᴴ S L⁻¹ by two direct trsm calls per matrix, not the vectorised inverse.
CHOL_STACK_TRSM_N = 20
# inv of stacks of at least VECTOR_INV_BATCH matrices of order <= VECTOR_INV_N: the
# vectorised LU (below, or for larger orders, NumPy's per-matrix gesv is as fast)
VECTOR_INV_N = 6
VECTOR_INV_BATCH = 1000
# inv of stacks of order >= STACK_GETRI_N: getrf + getri by direct calls, not NumPy's
# per-matrix gesv with the identity (its trsm-bound solve): one thread, Intel Xeon, ms,
# SkylakeX / Haswell kernels: 1000 of order 32 13.8 / 14.7 against 19.5 / 15.8; 250 of
# 64 13.2 / 13.5 against 21.8 / 17.0; 100 of 128 28.8 / 31.4 against 45.1 / 34.8; at
# order 16 (4000) 18.5 / 18.0 against 20.8 / 16.4, so NumPy's stays below 32
STACK_GETRI_N = 32
# eig's cotangent for stacks of at least EIG_VECTOR_BATCH matrices of order <= EIG_VECTOR_N:
# vectorised over the stack laid out batch-last (_eig_cotangent_batch_last), blocks of
# EIG_VECTOR_BLOCK matrices at a time; above that order the batched products and solve.
# 10,000 real 4×4, one thread, the reverse pass with an eigenvector cotangent: 11.3 against
# 19.3 ms (blocks of 1024 / 2048 / 4096: 11.5 / 10.9 / 10.8 ms)
EIG_VECTOR_N = 4
EIG_VECTOR_BATCH = 256
EIG_VECTOR_BLOCK = 2048
# ... and for one matrix below this order, plain NumPy and one gesv call (from it the rule's
# real-arithmetic forms for real input and the composed ones cost what their flops cost)
EIG_ONE_MATRIX_N = 72
# Stacks of at least JACOBI_MIN_BATCH[n] real symmetric matrices of order n (the orders
# listed): eigh by vectorised Jacobi rotations (below, NumPy's per-matrix LAPACK call is
# faster; from order 5 on it is faster at any size).  Intel Xeon, one thread, 10,000 /
# 3,000 / 1,000 matrices, ms, Jacobi against NumPy: 4×4 13.3 / 4.0 / 2.2 against 15.3 /
# 4.7 / 1.6; 3×3 5.5 / 1.6 / 0.90 against 9.1 / 2.7 / 0.94; 2×2 1.9 / 0.66 / 0.25
# against 3.1 / 0.93 / 0.31
JACOBI_MIN_BATCH = {2: 1000, 3: 1000, 4: 3000}
# eigenvalues alone, against syevd without vectors: 4×4 7.9 / 2.6 / 1.3 against 9.8 /
# 2.9 / 1.0; 3×3 3.6 / 1.2 / 0.55 against 5.7 / 1.7 / 0.59; 2×2 1.4 / 0.44 / 0.22
# against 1.7 / 0.51 / 0.18
JACOBI_VALUES_MIN_BATCH = {2: 3000, 3: 1000, 4: 3000}
# svd of stacks of square real matrices of order 2-4 by one-sided Jacobi from these sizes
# (with vectors / singular values alone; measured crossovers against NumPy's gesdd)
JACOBI_SVD_MIN_BATCH = {2: 300, 3: 600, 4: 1500}
JACOBI_SVDVALS_MIN_BATCH = {2: 300, 3: 1000, 4: 3000}
# from this order on, the eigenvalue-only backward of eigh (V diag(w̄) Vᵀ) is a syrk:
# 0.38 vs 0.67 ms at n = 256, 20 vs 43 ms at 1024; at 64 the general product is faster
SYRK_N = 128
# from this order on, eigh's backward computes one triangle of its last product by row
# blocks (below it the smaller products lose what the skipped flops save)
TRIANGLE_PRODUCT_N = 256
# one matrix of at least this order: eigh (with vectors) by SciPy's syevd/heevd and the SVD
# by SciPy's gesdd instead of NumPy's; SciPy's OpenBLAS build is a little faster there
# (measured in one process, one thread: eigh 4.52 vs 4.58 ms at 256, 131.8 vs 136.3 ms at
# 1024; svd 8.75 vs 9.06 ms at 256, 315 vs 331 ms at 1024; a tie at 128)
SCIPY_EIGH_N = 256
SCIPY_SVD_N = 256
# From this order on, svd_extreme (the spectral norm, cond) reduces to bidiagonal form and
# computes the chosen singular vectors only: at 64, 0.47 ms for both ends against the thin
# SVD's 0.60; 6.7 against 14.2 ms at 256; 281 against 600 ms at 1024; at 32, 0.30 against
# 0.16 (Python's share of a dozen LAPACK calls and small arrays)
EXTREME_SVD_N = 48
# Below that order, a stack of at least EXTREME_STACK_BATCH matrices takes the values and
# inverse iteration for the ends' vectors (``_lapack_extreme.extreme_stack``) instead of
# the thin SVD, from order EXTREME_STACK_N for s₁ alone and EXTREME_STACK_BOTTOM_N when
# s_min is wanted (an inverse more; real matrices only: complex getrf, getri and Gram
# products cost more than the SVD saves, 179 against 174 ms for 1000 of order 32).  Time
# against the thin SVD's path, s₁ / both ends: 1000 of order 32 0.53 / 0.79, 16:
# 0.59 / 0.89, 8: 0.81 / 1.34; 100 of order 12 0.73 / 1.17, 24: 0.48 / 0.71; 16 of order
# 16 0.75 / 1.22; complex, 1000 of order 32: 0.67 (s₁); one matrix: 1.15-3.5 (the dozen
# stacked operations cost more than the SVD they save)
EXTREME_STACK_N = 12
EXTREME_STACK_BOTTOM_N = 20
EXTREME_STACK_BATCH = 32
# logm's triangular stage (``_logm_stack``) vectorised over a stack instead of SciPy's
# per-matrix loop, from these (order, batch) pairs: one operation per superdiagonal of
# each square root costs more than SciPy's compiled one-matrix loops for a single large
# matrix.  Measured (one thread), time of SciPy's loop / this: order 16: 2 matrices
# 0.90, 200 22; 32: 2 0.78, 4 1.52, 100 9.2; 64: 4 1.05, 8 1.70; 128: 4 0.97, 8 1.06,
# 16 1.17; 256: 8 0.40; 1000 of order 4: 159; one matrix 0.5-1.0 (order 4-16)
LOGM_STACK = ((32, 3), (64, 6), (128, 8))


def _logm_stack_pays(batch, n):
    return any(n <= order and batch >= count for order, count in LOGM_STACK)


def _is_cupy(x):
    mod = type(x).__module__
    return mod.startswith("cupy") and "cupy" in sys.modules


def namespace_of(*arrays):
    """numpy, or cupy when the arrays are CuPy arrays.  Mixing is an error."""
    gpu = cpu = False
    for a in arrays:
        if _is_cupy(a):      # first: an array type of CuPy's (or of tests' emulation of it)
            gpu = True
        elif isinstance(a, np.ndarray) or np.isscalar(a) or a is None:
            cpu = cpu or isinstance(a, np.ndarray)
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


class BandFactors:
    """Factors of a stack of banded matrices (band storage, ``band_factor``): ``kind``
    "gt" (LAPACK gttrf's tuple per matrix), "gb" (gbtrf's (lu, piv)), "pb" (pbtrf's
    Cholesky factor), "dense" (``data`` the factors of the assembled matrices) or "empty"."""

    __slots__ = ("kind", "data", "shape", "lower", "upper", "hermitian", "addresses")

    def __init__(self, kind, data, shape, lower, upper, hermitian, addresses=None):
        self.kind = kind
        self.data = data
        self.shape = shape          # the stack's (..., n, n)
        self.lower = lower
        self.upper = upper
        self.hermitian = hermitian
        self.addresses = addresses  # of the factor arrays, for the direct LAPACK calls


class LUFactors:
    """P A = L U of a stack of square matrices, in a table-private layout."""

    __slots__ = ("kind", "data", "piv", "shape", "swaps", "rdiag")

    def __init__(self, kind, data, piv, shape, swaps=None, rdiag=None):
        self.kind = kind      # "lapack" (list or single), "stack" (one (B, n, n) array of
        #                       Fortran factors of Aᵀ, 1-based int32 piv) or "vector"
        self.data = data
        self.piv = piv
        self.shape = shape    # shape of the factored stack, (..., n, n)
        self.swaps = swaps    # "vector": (n, B) row swapped with at each step
        self.rdiag = rdiag    # "vector": (n, B) reciprocals of U's diagonal


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


def _blas_fn(name, dtype):
    """A BLAS routine for dtype, looked up once."""
    key = ("blas", name, dtype.char)
    fn = _LAPACK.get(key)
    if fn is None:
        fn = _LAPACK[key] = _blas.get_blas_funcs((name,), dtype=dtype)[0]
    return fn


_QR_LWORK = {}


def _lapack_qr(A, complete):
    """One matrix's QR by LAPACK geqrf + orgqr (ungqr), called directly: about 1.5x faster
    than NumPy's path at n >= 256, Fortran-ordered factors that the BLAS calls of the
    reverse pass take as they are, and at n = 64 a fifth less than scipy.linalg.qr (its
    two workspace queries and np.triu, ~25 µs, are a cached size and a masked copy)."""
    m, n = A.shape
    dtype = A.dtype
    key = (dtype.char, m, n, complete)
    lwork = _QR_LWORK.get(key)
    geqrf = _lapack_fn("geqrf", dtype)
    orgqr = _lapack_fn("orgqr" if dtype.kind == "f" else "ungqr", dtype)
    if lwork is None:
        # the larger optimal workspace of the two calls (a query each, once per shape)
        w1 = geqrf(A, lwork=-1)[2][0]
        w2 = orgqr(np.zeros((m, min(m, n) if not complete else m), dtype, order="F"),
                   np.zeros(min(m, n), dtype), lwork=-1)[1][0]
        lwork = _QR_LWORK[key] = max(int(w1.real), int(w2.real), 1, m, n)
        if len(_QR_LWORK) > 256:
            _QR_LWORK.clear()
    qr, tau, _, info = geqrf(A, lwork=lwork)
    if info < 0:
        raise ValueError(f"qr: illegal value in argument {-info} of geqrf")
    # R first (a copy: orgqr overwrites the reflectors in place): m×n, or n×n when reduced
    R = np.array(qr if complete or m <= n else qr[:n], order="F")
    from .ops import _tri_mask
    np.copyto(R, 0, where=_tri_mask(R.shape[0], R.shape[1], -1, True))
    if m < n:
        basis = qr[:, :m]
    elif complete and m > n:
        basis = np.empty((m, m), dtype=dtype, order="F")
        basis[:, :n] = qr
    else:
        basis = qr
    Q, _, info = orgqr(basis, tau, lwork=lwork, overwrite_a=1)
    if info < 0:
        raise ValueError(f"qr: illegal value in argument {-info} of orgqr")
    return Q, R


_WEIGHTS = ArrayCache()


class _Weights:
    """A triangle-weight matrix and the key it is cached (and its variants) under."""

    __slots__ = ("key", "w")

    def __init__(self, key, w):
        self.key, self.w = key, w


def _tri_weights(n, lower, strict, diag):
    """n x n float weights: ``strict`` off the diagonal in the kept triangle, ``diag`` on
    it, 0 in the other triangle (one multiplication projects and scales); cached while
    small (linalgad/_cache.py)."""
    key = (n, lower, strict, diag)
    w = _WEIGHTS.get(key)
    if w is None:
        w = strict * (np.tri(n, k=-1) if lower else np.tri(n, k=-1).T)
        w[np.diag_indices(n)] = diag
        _WEIGHTS.put(key, w)
    return _Weights(key, w)


def _clear_triangle(x, upper, k):
    """Zero, in place, the entries of the C-ordered n × n matrix x with j − i ≥ k (upper)
    or i − j ≥ k (not upper).  A row loop for large n (a memset per row: a product with a
    0/1 mask reads and writes all n² entries, 5 ms at n = 1024), np.tri's mask below."""
    n = x.shape[-1]
    if n < 128:
        x *= np.tri(n, k=k - 1, dtype=bool) if upper else ~np.tri(n, k=-k, dtype=bool)
        return x
    if upper:
        for i in range(max(0, n - k)):
            x[i, i + k:] = 0
    else:
        for i in range(k, n):
            x[i, :i - k + 1] = 0
    return x


def _ldl_kernel_applies(lu, hermitian):
    """Whether ldl's fused kernels take the factor lu: one matrix of order ≥ 2 in a LAPACK
    dtype, real symmetric or complex Hermitian (sygst/hegst have no complex symmetric form)."""
    return (lu.ndim == 2 and lu.shape[-1] >= 2 and (hermitian or not np.iscomplexobj(lu))
            and lu.dtype in (np.float32, np.float64, np.complex64, np.complex128))


def _times_block_inverse(W, d, s, adjoint):
    """W D⁻¹ (W D⁻ᴴ with ``adjoint``), in place on the C-ordered n × n W, for the block
    diagonal D (ldl's d) with 2×2 blocks at (s, s + 1) and 1×1 blocks elsewhere: each
    column scaled by its 1×1 inverse, and each block's two columns mixed by the block's
    inverse [[t, −q], [−r, p]] / (p t − q r).  O(n²)."""
    dg = np.diagonal(d).copy()
    inv = 1 / np.where(dg == 0, 1, dg)                # 1×1 blocks (block columns replaced)
    Ws, Ws1 = W[:, s], W[:, s + 1]                    # copies (fancy index)
    X = np.multiply(W, np.conj(inv) if adjoint else inv, out=W)
    if s.size:
        p, t, q, r = dg[s], dg[s + 1], d[s, s + 1], d[s + 1, s]
        det = p * t - q * r
        a, b, c, e = t / det, -q / det, -r / det, p / det  # D⁻¹ on (s, s), (s, s+1), …
        if adjoint:
            a, b, c, e = np.conj(a), np.conj(c), np.conj(b), np.conj(e)
        X[:, s] = Ws * a + Ws1 * c
        X[:, s + 1] = Ws * b + Ws1 * e
    return X


def _fortran_stack(X, dtype=None):
    """A new C-ordered stack of the transposes of X's matrices (..., m, n) -> (..., n, m):
    what Fortran LAPACK, handed each matrix by address, reads as X's matrices themselves.
    Always a copy (of an F-ordered X the transpose is C-contiguous already: without the
    copy an in-place LAPACK call would overwrite the caller's array)."""
    return np.array(np.swapaxes(X, -1, -2), dtype=dtype, order="C")


def _mH(xp, x):
    t = xp.swapaxes(x, -1, -2)
    return xp.conj(t) if x.dtype.kind == "c" else t


def _weighted(xp, x, w, **kw):
    """x * w, w the _Weights of _tri_weights (moved to x's device when it is not NumPy);
    ``kw`` (order=, out=) as for np.multiply.

    The weights are used in x's real precision and, for NumPy, in x's memory order:
    NumPy multiplies a Fortran- by a C-ordered 256×256 array 6 to 40 times slower than
    two arrays of one order."""
    if xp is not np:
        return xp.multiply(x, _on_device(xp, w, x.real.dtype), **kw)
    fortran = x.ndim == 2 and x.flags.f_contiguous and not x.flags.c_contiguous
    return np.multiply(x, _variant(w, x.real.dtype, fortran), **kw)


# the weights in another dtype or memory order, or on a device: keyed by the weights' own
# key (an entry holds no reference to the array it was made from)
_VARIANTS = ArrayCache()
_DEVICE = ArrayCache()


def _on_device(xp, w, dtype):
    """The weights w on xp's (current) device in dtype, copied there once."""
    key = (w.key, np.dtype(dtype).char, xp.__name__, _device_id(xp))
    hit = _DEVICE.get(key)
    if hit is None:
        hit = _DEVICE.put(key, xp.asarray(w.w, dtype=dtype))
    return hit


def _device_id(xp):
    cuda = getattr(xp, "cuda", None)
    try:
        return cuda.Device().id
    except Exception:        # no device notion (an emulation) or no CUDA context yet
        return None


def _variant(w, dtype, fortran):
    """The weights w as an array in dtype (and Fortran order)."""
    if w.w.dtype == dtype and not fortran:
        return w.w
    key = (w.key, np.dtype(dtype).char, fortran)
    hit = _VARIANTS.get(key)
    if hit is None:
        hit = _VARIANTS.put(key, np.array(w.w, dtype=dtype, order="F" if fortran else "C"))
    return hit


def _mirror(xp, x, hermitian=True):
    """xᴴ (xᵀ for a complex symmetric map)."""
    return _mH(xp, x) if hermitian else xp.swapaxes(x, -1, -2)


def full_from_triangle(xp, x, lower, hermitian=True, scale=1.0):
    """scale times the Hermitian (complex symmetric when not ``hermitian``) matrix whose
    ``lower`` (else upper) triangle is x's: T + Tᴴ with T = x's triangle, its diagonal
    halved (so the diagonal comes out as Re xᵢᵢ, resp. xᵢᵢ); one weighted pass and one
    mirrored sum."""
    T = _weighted(xp, x, _tri_weights(x.shape[-1], lower, scale, 0.5 * scale))
    return T + _mirror(xp, T, hermitian)


def triangle_cotangent(xp, G, lower, hermitian=True):
    """The adjoint of :func:`full_from_triangle` (scale 1): the cotangent of the triangle
    read, tril(G + Gᴴ) with Re Gᵢᵢ on the diagonal (triu; Gᵀ and Gᵢᵢ when not Hermitian)."""
    S = G + _mirror(xp, G, hermitian)
    # in place: a second fresh array of a large stack costs its page faults, more than the pass
    return _weighted(xp, S, _tri_weights(G.shape[-1], lower, 1.0, 0.5), out=S)


# -- band storage (SciPy's solve_banded layout: ab[..., upper + i − j, j] = A[..., i, j]) ----
# Row r of ab holds the diagonal i − j = r − upper; entries whose row i would fall outside
# the matrix (the corners) are never read and come out zero.

def _band_rows(r, upper, n):
    """(d, j0, j1): the diagonal i − j = d held in row r, at the columns j0 ≤ j < j1."""
    d = r - upper
    return d, max(0, -d), min(n, n - d)


def dense_from_band(xp, ab, lower, upper):
    """The (..., n, n) matrices whose band ab holds, zero outside it."""
    n = ab.shape[-1]
    A = xp.zeros(ab.shape[:-2] + (n, n), dtype=ab.dtype)
    for r in range(lower + upper + 1):
        d, j0, j1 = _band_rows(r, upper, n)
        if j0 < j1:
            j = xp.arange(j0, j1)
            A[..., j + d, j] = ab[..., r, j0:j1]
    return A


def band_from_dense(xp, A, lower, upper):
    """The band storage (..., lower + upper + 1, n) of A's band (corners zero)."""
    n = A.shape[-1]
    ab = xp.zeros(A.shape[:-2] + (lower + upper + 1, n), dtype=A.dtype)
    for r in range(lower + upper + 1):
        d, j0, j1 = _band_rows(r, upper, n)
        if j0 < j1:
            ab[..., r, j0:j1] = xp.diagonal(A, -d, -2, -1)
    return ab


def band_product(xp, p, q, lower, upper):
    """The band of p q in band storage, p (..., n, k), q (..., k, n): G[..., r, j] =
    Σₖ p[..., j + r − upper, k] q[..., k, j], O(n k) a diagonal; the corners zero."""
    n = p.shape[-2]
    batch = np.broadcast_shapes(p.shape[:-2], q.shape[:-2])
    qt = xp.swapaxes(q, -1, -2)
    G = xp.zeros(batch + (lower + upper + 1, n), dtype=np.result_type(p.dtype, q.dtype))
    one = p.shape[-1] == 1          # one column: a product, not a contraction (einsum's
    for r in range(lower + upper + 1):          # setup is most of a short diagonal's time)
        d, j0, j1 = _band_rows(r, upper, n)
        if j0 >= j1:
            continue
        if one:
            G[..., r, j0:j1] = p[..., j0 + d:j1 + d, 0] * qt[..., j0:j1, 0]
        else:
            G[..., r, j0:j1] = xp.einsum("...jk,...jk->...j", p[..., j0 + d:j1 + d, :],
                                         qt[..., j0:j1, :])
    return G


def band_blocks_shape(u, n):
    """(b, M): the blocks of a lower band of order n with u subdiagonals
    (banded_cholesky.md §2) have order b = max(min(u, n), 1), M = ⌈n / b⌉ of them."""
    b = max(min(u, n), 1)                  # (u ≥ n: one block, the whole matrix)
    return b, -(-n // b)


def band_block_pad(u, n):
    """The (b, b) identity patch at the rows past n of the last diagonal block (D of the
    padded matrix diag(A, I) is invertible), or None when n is a multiple of b."""
    b, M = band_blocks_shape(u, n)
    extra = M * b - n
    if not extra:
        return None
    pad = np.zeros((b, b))
    pad[np.arange(b - extra, b), np.arange(b - extra, b)] = 1.0
    return pad


def band_block_map(u, n):
    """Index maps between the lower form and the blocks, for blocks past BLOCK_SLICES_B:
    (band, block) such that the lower form's entry band[t] (a flat index into (u + 1, n),
    inside the matrix) is entry block[t] of the flat (M, 2, b, b) blocks — [m, 0] the
    diagonal block D[m] (rows and columns m b, ..., m b + b − 1), [m, 1] the block C[m]
    below it.  O(n u) numbers: built per call, not kept."""
    b, M = band_blocks_shape(u, n)
    s, j = np.indices((u + 1, n))
    inside = (j + s < n).ravel()
    s, j = s.ravel()[inside], j.ravel()[inside]
    m, c = np.divmod(j, b)
    which, r = np.divmod(j + s - m * b, b)             # j + s − m b < 2 b since s ≤ b
    band = (s * n + j).astype(np.intp)
    block = (((m * 2 + which) * b + r) * b + c).astype(np.intp)
    return band, block


def _zero_corners(xp, lb, n):
    """Zero the entries of the lower forms lb (..., u + 1, ≥ n) at columns j + s ≥ n."""
    for s in range(1, lb.shape[-2]):
        lb[..., s, max(n - s, 0):] = 0
    return lb


def band_to_blocks(xp, tb):
    """(..., M, 2, b, b) blocks of the lower forms tb (..., u + 1, n), zero off the band."""
    u, n = tb.shape[-2] - 1, tb.shape[-1]
    b, M = band_blocks_shape(u, n)
    batch = tb.shape[:-2]
    if b > BLOCK_SLICES_B:                  # a gather through the index map
        band, block = band_block_map(u, n)
        out = xp.zeros(batch + (M * 2 * b * b,), dtype=tb.dtype)
        if band.size:
            out[..., block] = tb.reshape(batch + (-1,))[..., band]
        return out.reshape(batch + (M, 2, b, b))
    lb = xp.zeros(batch + (u + 1, M * b), dtype=tb.dtype)
    lb[..., :n] = tb
    lb = _zero_corners(xp, lb, n).reshape(batch + (u + 1, M, b))
    out = xp.zeros(batch + (M, 2, b, b), dtype=tb.dtype)
    for r in range(b):
        for c in range(b):
            if r >= c:                      # D[m][r, c] = L[m b + r, m b + c]
                out[..., 0, r, c] = lb[..., r - c, :, c]
            if b + r - c <= u:              # C[m][r, c] = L[(m + 1) b + r, m b + c]
                out[..., 1, r, c] = lb[..., b + r - c, :, c]
    return out


def band_from_blocks(xp, X, u, n):
    """The lower forms (..., u + 1, n) of the bands that blocks X (..., M, 2, b, b) hold
    (entries off the band dropped): band_to_blocks' adjoint."""
    b, M = band_blocks_shape(u, n)
    batch = X.shape[:-4]
    if b > BLOCK_SLICES_B:
        band, block = band_block_map(u, n)
        out = xp.zeros(batch + ((u + 1) * n,), dtype=X.dtype)
        if band.size:
            out[..., band] = X.reshape(batch + (-1,))[..., block]
        return out.reshape(batch + (u + 1, n))
    lb = xp.zeros(batch + (u + 1, M, b), dtype=X.dtype)
    for r in range(b):
        for c in range(b):
            if r >= c:
                lb[..., r - c, :, c] = X[..., 0, r, c]
            if b + r - c <= u:
                lb[..., b + r - c, :, c] = X[..., 1, r, c]
    lb = lb.reshape(batch + (u + 1, M * b))[..., :n]
    return xp.ascontiguousarray(_zero_corners(xp, lb, n))


# Every eigenpair of a Hermitian band with more off-diagonals than this comes from the
# assembled matrix's eigh (syevd): SciPy's eig_banded (sbevd) forms the n × n reduction
# matrix and back-transforms with it, and at n = 2,000 took 1.4 times syevd's time for
# u = 8 (value and gradient 26 against 18 times SciPy's values alone), 0.73 for u = 2.
EIG_BANDED_DENSE_U = 4

# Stacks of triangular blocks of up to this order are inverted by substitution with one
# batched operation per entry (b² steps); larger ones by the triangular solve.
BLOCK_INVERSE_B = 16

# Blocks of up to this order move between band storage and blocks by one strided copy per
# block entry (5,000 of order 2: 40 µs against the index map's 160); larger ones through
# the index map.
BLOCK_SLICES_B = 8


# Stacks of blocks of up to this order are multiplied as b broadcast products over the
# whole stack (_BlockAlgebra; 5,000 of order 2: 29 µs a product against np.matmul's 137).
SMALL_MATMUL_B = 2


def _band_inverse_iteration(ab, select_range, steps=3):
    """(w, V) of the eigenpairs lo..hi of the Hermitian band matrix whose upper form ab
    (u + 1, n) holds: the values by bisection (SciPy's eigvals_banded, O(n u²)), each vector
    by inverse iteration with the band LU of A − w I (gbtrf / gbtrs, O(n u²)), reorthogonal-
    ized within close groups — O(n (u² + k) k) time and O(n (u + k)) memory, where LAPACK's
    sbevx forms the n × n reduction matrix (3.2 GB at n = 20,000).  None where a residual
    ‖A v − w v‖ stays above 10 n ε ‖A‖ (the caller's driver then decides)."""
    from scipy.linalg import eigvals_banded
    u, n = ab.shape[0] - 1, ab.shape[1]
    if u > n - 1:                                  # rows of corners only
        ab, u = ab[u - (n - 1):], n - 1
    ab = ab.copy()
    for r in range(u):                             # the corners: not A's, not in ‖A‖
        ab[r, :u - r] = 0
    lo, hi = select_range
    w = eigvals_banded(ab, select="i", select_range=(lo, hi), check_finite=False)
    dtype = ab.dtype
    # the general band storage gbtrf wants: kl = ku = u, u rows of fill-in on top;
    # gb[u + r, j] = ab[r, j] (rows i ≤ j), gb[2u + d, j] = conj(ab[u − d, j + d]) (i > j)
    gb = np.zeros((3 * u + 1, n), dtype=dtype)
    gb[u:2 * u + 1] = ab
    gb[2 * u] = ab[u].real
    for d in range(1, u + 1):
        gb[2 * u + d, :n - d] = np.conj(ab[u - d, d:])
    norm = float(np.abs(gb[u:]).sum(axis=0).max()) or 1.0
    eps = np.finfo(dtype).eps
    gbtrf, gbtrs = _lapack.get_lapack_funcs(("gbtrf", "gbtrs"), dtype=dtype)
    V = np.empty((n, len(w)), dtype=dtype)
    rng = np.random.default_rng(n)
    for i, wi in enumerate(w):
        shifted = gb.copy()
        shifted[2 * u] -= wi
        lu, piv, info = gbtrf(shifted, u, u)
        if info > 0:                                   # exactly singular: nudge the shift
            shifted[2 * u] -= eps * norm
            lu, piv, info = gbtrf(shifted, u, u)
        if info != 0:
            return None
        x = rng.standard_normal(n).astype(dtype)
        close = [j for j in range(i) if abs(w[j] - wi) <= 1e-3 * norm]
        for _ in range(steps):
            x, info = gbtrs(lu, u, u, x[:, None], piv)
            x = x[:, 0]
            for j in close:                            # inside a group: stay orthogonal
                x -= V[:, j] * np.vdot(V[:, j], x)
            x /= np.linalg.norm(x)
        V[:, i] = x
    # the residuals, from the band: A V − V diag(w)
    R = band_matmul(np, gb[u:], V, u, u) - V * w
    if not np.all(np.linalg.norm(R, axis=0) <= 10 * n * eps * norm):
        return None
    return w, V


def _chain_backward(xp, K, Q):
    """X[m] = Q[m] + K[m]ᴴ X[m + 1] K[m] (m = M − 1, ..., 0, X[M] = 0) on (..., M, b, b)
    by cyclic reduction: the pairs (2i, 2i + 1) compose to X[2i] = Q′[i] + K′[i]ᴴ X[2i + 2]
    K′[i] with Q′ = Q[2i] + K[2i]ᴴ Q[2i + 1] K[2i], K′ = K[2i + 1] K[2i] — the same
    recurrence on half as many blocks — and then X[2i + 1] = Q[2i + 1] + K[2i + 1]ᴴ X[2i + 2]
    K[2i + 1].  The same sums as stepping block by block, associated in log₂ M batched levels
    (one step per block costs a few µs of interpreter time: 8 ms for 2,500 blocks of order
    4, against 1.8)."""
    M = Q.shape[-3]
    if M == 1:
        return Q.copy()
    h = M // 2
    Ke, Ko = K[..., 0:2 * h:2, :, :], K[..., 1:2 * h:2, :, :]
    Qo = Q[..., 1::2, :, :]
    Keh = xp.conj(xp.swapaxes(Ke, -1, -2))
    Q2 = Q[..., 0::2, :, :].copy()
    Q2[..., :h, :, :] += Keh @ Qo @ Ke
    K2 = xp.zeros_like(Q2)
    K2[..., :h, :, :] = Ko @ Ke
    Xe = _chain_backward(xp, K2, Q2)
    X = xp.empty_like(Q)
    X[..., 0::2, :, :] = Xe
    nxt = xp.zeros_like(Qo)                        # X[2i + 2] (zero past the end)
    nxt[..., :Xe.shape[-3] - 1, :, :] = Xe[..., 1:, :, :]
    X[..., 1::2, :, :] = Qo + xp.conj(xp.swapaxes(Ko, -1, -2)) @ nxt @ Ko
    return X


class _BlockAlgebra:
    """Products of stacks of b × b blocks in one of two layouts: (..., M, b, b) with
    ``xp.matmul``, or — for tiny blocks, where matmul's per-block overhead dominates —
    (b, b, ..., M), each product b broadcast multiplications over whole stacks."""

    def __init__(self, xp, b, soa):
        self.xp, self.b, self.soa = xp, b, soa

    def enter(self, Y):                     # from (..., M, b, b)
        if not self.soa:
            return Y
        nd = Y.ndim                        # (transpose: moveaxis's checks cost more here)
        return self.xp.ascontiguousarray(Y.transpose((nd - 2, nd - 1) + tuple(range(nd - 2))))

    def leave(self, Y):                     # to (..., M, b, b)
        if not self.soa:
            return Y
        nd = Y.ndim
        return self.xp.ascontiguousarray(Y.transpose(tuple(range(2, nd)) + (0, 1)))

    def h(self, Y):
        return self.xp.conj(self.xp.swapaxes(Y, 0, 1) if self.soa else
                            self.xp.swapaxes(Y, -1, -2))

    def mm(self, A, B):
        if not self.soa:
            return A @ B
        out = A[:, 0, None] * B[None, 0]
        for k in range(1, self.b):
            out += A[:, k, None] * B[None, k]
        return out

    def nxt(self, Y):
        """Y[m + 1] at m, zero at the last block."""
        out = self.xp.zeros_like(Y)
        if self.soa:
            out[..., :-1] = Y[..., 1:]
        else:
            out[..., :-1, :, :] = Y[..., 1:, :, :]
        return out

    def phi(self, Y):
        """Φ(Y) = tril(Y, −1) + ½ diag(Y), a new array."""
        if not self.soa:
            out = self.xp.tril(Y)
            i = self.xp.arange(self.b)
            out[..., i, i] *= 0.5
            return out
        out = Y.copy()
        for i in range(self.b):
            out[i, i] *= 0.5
            for j in range(i + 1, self.b):
                out[i, j] = 0
        return out

    def lower_inverse(self, D, kernels):
        """The blocks' inverses (D lower triangular), by the kernels' batched substitution
        (in the (..., b, b) layout it takes)."""
        return self.enter(kernels.lower_block_inverse(self.leave(D)))


def band_matmul(xp, ab, X, lower, upper, trans=0):
    """op(A) X for the matrices A whose band ab holds (op: A, Aᵀ, Aᴴ for trans 0, 1, 2),
    X (..., n, k): O(n k) a diagonal; the corners are not read."""
    n = X.shape[-2]
    batch = np.broadcast_shapes(ab.shape[:-2], X.shape[:-2])
    Y = xp.zeros(batch + X.shape[-2:], dtype=np.result_type(ab.dtype, X.dtype))
    a = xp.conj(ab) if trans == 2 and ab.dtype.kind == "c" else ab
    for r in range(lower + upper + 1):
        d, j0, j1 = _band_rows(r, upper, n)
        if j0 >= j1:
            continue
        col = a[..., r, j0:j1, None]
        if trans == 0:          # Y[j + d] += A[j + d, j] X[j]
            Y[..., j0 + d:j1 + d, :] += col * X[..., j0:j1, :]
        else:                   # Y[j] += A[j + d, j] X[j + d]
            Y[..., j0:j1, :] += col * X[..., j0 + d:j1 + d, :]
    return Y


# -- Toeplitz matrices (linalgad/rules/toeplitz.py) ------------------------------------------
# An m×n Toeplitz matrix is held by its m + n − 1 diagonals v (SciPy's order: the first row
# reversed without its first entry, then the first column): T[i, j] = v[n − 1 + i − j].
# Products and the diagonal sums of outer products are convolutions of length m + n − 1,
# computed by FFT (no wrap-around at that length, padded to a fast one), or, for
# small ones, through the assembled matrices (FFT's setup costs more than the O(m n) products
# there).  The switch counts the assembled entries of the whole stack; measured (session 27,
# one core, k = 1): the product through the matrix is faster up to about 8,000 entries (one
# matrix of order 64: 66 against 67 µs; 100 of order 8: 15 against 53 µs), the correlation
# (a scatter into an m × (m + n − 1) array and column sums) up to about 2,000 (one of order
# 32: 19 against 19 µs; order 64: 157 against 71 µs; 100 of order 8: 132 against 68 µs).

TOEPLITZ_DENSE_PRODUCT = 8192
TOEPLITZ_DENSE_CORRELATE = 2048     # entries of the scatter array, m (m + n − 1) a matrix


def _stack_count(*shapes):
    return math.prod(np.broadcast_shapes(*shapes))


def _fast_length(N):
    """The FFT length used for a convolution of length N: scipy.fft's next fast (11-smooth)
    length ≥ N (any length ≥ N leaves the result free of wrap-around; a prime N costs several
    times more)."""
    from scipy.fft import next_fast_len
    return next_fast_len(N)


def _fft_pair(xp, real):
    return (xp.fft.rfft, xp.fft.irfft) if real else (xp.fft.fft, xp.fft.ifft)


def _as_strided(xp):
    if xp is np:
        return np.lib.stride_tricks.as_strided
    return xp.lib.stride_tricks.as_strided


def toeplitz_assemble(xp, v, m, n):
    """The m×n Toeplitz matrices of diagonals v (..., m + n − 1): T[i, j] = w[m − 1 − i + j]
    for w = v reversed, a strided view of w copied out (no index array)."""
    w = xp.ascontiguousarray(v[..., ::-1])
    base = w[..., m - 1:]
    step = w.strides[-1]
    view = _as_strided(xp)(base, shape=base.shape[:-1] + (m, n),
                           strides=base.strides[:-1] + (-step, step))
    return view.copy()


def toeplitz_diagonal_sums(xp, G):
    """s (..., m + n − 1) with s[n − 1 + i − j] = Σ G[..., i, j] over each diagonal, the
    adjoint of toeplitz_assemble: row i reversed into columns i … i + n − 1 of an
    m × (m + n − 1) array (a strided view), then the column sums."""
    m, n = G.shape[-2:]
    if m > n:
        # the diagonals of Gᵀ are G's reversed: scratch min(m, n) × (m + n − 1), at most
        # twice |G| (a tall G's m × (m + n − 1) was ~m² for a few columns: review 50)
        return toeplitz_diagonal_sums(xp, xp.swapaxes(G, -1, -2))[..., ::-1]
    Z = xp.zeros(G.shape[:-2] + (m, m + n - 1), dtype=G.dtype)
    row, step = Z.strides[-2:]
    _as_strided(xp)(Z, shape=G.shape, strides=Z.strides[:-2] + (row + step, step))[...] = \
        G[..., ::-1]
    return Z.sum(axis=-2)


def toeplitz_matmul(xp, v, X):
    """T(v) X for the Toeplitz matrices of diagonals v (..., m + n − 1) and X (..., n, k)."""
    n = X.shape[-2]
    N = v.shape[-1]
    m = N - n + 1
    dtype = np.result_type(v.dtype, X.dtype)
    if m * n * _stack_count(v.shape[:-1], X.shape[:-2]) <= TOEPLITZ_DENSE_PRODUCT:
        return xp.matmul(toeplitz_assemble(xp, v, m, n), X).astype(dtype, copy=False)
    fwd, inv = _fft_pair(xp, dtype.kind != "c")
    L = _fast_length(N)
    V = fwd(v, L, axis=-1)[..., :, None]
    Y = inv(V * fwd(X, L, axis=-2), L, axis=-2)
    return Y[..., n - 1:N, :].astype(dtype, copy=False)


def toeplitz_correlate(xp, Y, X):
    """The diagonal sums of Σₖ Y[:, k] X[:, k]ᴴ, Y (..., m, k), X (..., n, k): s (..., m + n − 1)
    with s[n − 1 + i − j] = Σₖ Y[i, k] conj(X[j, k]) summed over each diagonal — the
    Toeplitz part of an outer product, adjoint to toeplitz_matmul in v."""
    m, n = Y.shape[-2], X.shape[-2]
    N = m + n - 1
    dtype = np.result_type(Y.dtype, X.dtype)
    if m * N * _stack_count(Y.shape[:-2], X.shape[:-2]) <= TOEPLITZ_DENSE_CORRELATE:
        P = xp.matmul(Y, xp.conj(xp.swapaxes(X, -1, -2)))            # (..., m, n)
        return toeplitz_diagonal_sums(xp, P).astype(dtype, copy=False)
    fwd, inv = _fft_pair(xp, dtype.kind != "c")
    L = _fast_length(N)
    Xr = xp.conj(X[..., ::-1, :])
    F = (fwd(Y, L, axis=-2) * fwd(Xr, L, axis=-2)).sum(axis=-1)
    return inv(F, L, axis=-1)[..., :N].astype(dtype, copy=False)


# -- algebraic Riccati equations by doubling (linalgad/rules/riccati.py) ------------------------

# A matrix not converged after this many steps is left to SciPy's solver: doubling
# converges quadratically, like ρ^(2^k) for the (transformed) closed loop's spectral radius
# ρ, in 5–8 steps on well-posed problems; 16 steps means ρ > 1 − 5·10⁻⁴ — near the boundary,
# where the transformed problem loses accuracy (a CARE whose spectrum spans 10⁵ took 21
# steps and lost 10⁻⁹) — or a critical problem, where doubling converges only linearly and
# A_k's collapse to zero under rounding says nothing (29 steps to an X on the boundary,
# where SciPy raises).
RICCATI_DOUBLING_MAXIT = 16


def _riccati_reduce(xp, A, B, Q, R, E, S):
    """The standard form's (â, G, q′): a ← a − b r⁻¹ sᴴ, q ← q − s r⁻¹ sᴴ, then â = e⁻¹ a and
    G = e⁻¹ b r⁻¹ bᴴ e⁻ᴴ; the standard equation's solution Y gives X = e⁻ᴴ Y e⁻¹."""
    mH = functools.partial(_mH, xp)
    G = B @ xp.linalg.solve(R, mH(B))
    A0, Q0 = A, Q
    if S is not None:
        RiSh = xp.linalg.solve(R, mH(S))
        A0 = A - B @ RiSh
        Q0 = Q - S @ RiSh
    if E is not None:
        A0 = xp.linalg.solve(E, A0)
        G = xp.linalg.solve(E, mH(xp.linalg.solve(E, mH(G))))
    return A0, (G + mH(G)) / 2, (Q0 + mH(Q0)) / 2


def _doubling(xp, A0, G0, H0, maxit):
    """The structure-preserving doubling iteration for X = A₀ᴴ X (I + G₀ X)⁻¹ A₀ + H₀: with
    W = I + G H, A ← A W⁻¹ A, G ← G + A W⁻¹ G Aᴴ, H ← H + Aᴴ H W⁻¹ A (about 17 n³ flops a
    step); H → X quadratically while A_k, which behaves like Φ^(2^k) for the closed loop Φ,
    vanishes.  Returns (H, converged, A_k has vanished)."""
    mH = functools.partial(_mH, xp)
    n = A0.shape[-1]
    eye = xp.eye(n, dtype=A0.dtype)
    Ak, Gk, Hk = A0, G0, H0
    done = xp.zeros(A0.shape[:-2], dtype=bool)
    for _ in range(maxit):
        W = eye + Gk @ Hk
        WAG = xp.linalg.solve(W, xp.concatenate([Ak, Gk], axis=-1))     # one LU for both
        WA, WG = WAG[..., :n], WAG[..., n:]
        Hn = Hk + mH(Ak) @ Hk @ WA
        Gk = Gk + Ak @ WG @ mH(Ak)
        Ak = Ak @ WA
        Hn, Gk = (Hn + mH(Hn)) / 2, (Gk + mH(Gk)) / 2
        with np.errstate(invalid="ignore"):
            step = xp.abs(Hn - Hk).max(axis=(-2, -1))
            size = xp.abs(Hn).max(axis=(-2, -1))
            done = step <= 8 * n * np.finfo(A0.real.dtype).eps * size
        Hk = Hn
        if not bool((~done & xp.isfinite(step)).any()):     # all converged or diverged
            break
    with np.errstate(invalid="ignore"):
        vanished = xp.abs(Ak).max(axis=(-2, -1)) <= 1e-8 * (1 + xp.abs(A0).max(axis=(-2, -1)))
    return Hk, done, vanished


def _cayley_fixed_point(xp, A0, G0, H0):
    """The CARE âᴴ Y + Y â − Y G Y + q = 0 as the fixed point Y = Aᴴ Y (I + G Y)⁻¹ A + H:
    the Cayley transform C = (𝓗 − γI)⁻¹ (𝓗 + γI) of the Hamiltonian 𝓗 = [[â, −G], [−q, −âᴴ]]
    written as L C = M (riccati_doubling's docstring)."""
    mH = functools.partial(_mH, xp)
    n = A0.shape[-1]
    Hm = xp.concatenate([xp.concatenate([A0, -G0], axis=-1),
                         xp.concatenate([-H0, -mH(A0)], axis=-1)], axis=-2)
    gamma = xp.sqrt((xp.abs(Hm) ** 2).sum(axis=(-2, -1)) / (2 * n))[..., None, None]
    I2 = xp.eye(2 * n, dtype=Hm.dtype)
    Cm = xp.linalg.solve(Hm - gamma * I2, Hm + gamma * I2)
    C11, C12, C21, C22 = Cm[..., :n, :n], Cm[..., :n, n:], Cm[..., n:, :n], Cm[..., n:, n:]
    H = -xp.linalg.solve(C22, C21)
    G = -mH(xp.linalg.solve(mH(C22), mH(C12)))
    A = C11 + G @ C21
    return A, (G + mH(G)) / 2, (H + mH(H)) / 2


def riccati_doubling(xp, kind, A, B, Q, R, E=None, S=None, maxit=None):
    """(X, ok): the stabilizing solution of the CARE (kind 'care') or DARE ('dare') for a
    stack by the structure-preserving doubling algorithm (Chu, Fan, Lin & Wang 2004; Chu,
    Fan & Lin 2005 for the CARE), all matrices iterated together, and a mask of the matrices
    where it converged, A_k vanished (X is the stabilizing solution) and the equation's
    relative residual is at rounding level; the caller solves the others another way.
    Inputs in the working precision, broadcast to one stack.

    Both reduce to the standard equation in Y = eᴴ X e (``_riccati_reduce``).  The DARE's is
    already the fixed point X = âᴴ X (I + G X)⁻¹ â + q′ the iteration solves.  The CARE's,
    âᴴ Y + Y â − Y G Y + q′ = 0, has [I; Y] spanning the stable invariant subspace of the
    Hamiltonian H = [[â, −G], [−q′, −âᴴ]]; its Cayley transform C = (H − γI)⁻¹ (H + γI)
    maps that subspace's eigenvalues λ to (λ + γ)/(λ − γ), inside the unit disc, and
    L C = M with M = [[A₀, 0], [−H₀, I]], L = [[I, G₀], [0, A₀ᴴ]] gives the fixed point's
    data A₀ = C₁₁ − C₁₂ C₂₂⁻¹ C₂₁, G₀ = −C₁₂ C₂₂⁻¹, H₀ = −C₂₂⁻¹ C₂₁ (γ = ‖H‖_F / √(2n), the
    spectrum's rough scale: the step count grows only like log log of how close
    |λ + γ|/|λ − γ| comes to 1)."""
    maxit = RICCATI_DOUBLING_MAXIT if maxit is None else maxit
    mH = functools.partial(_mH, xp)
    n = A.shape[-1]
    batch = A.shape[:-2]
    failed = None, None                 # (X, ok): nothing accepted
    try:
        with np.errstate(all="ignore"):     # a declined matrix may overflow on the way
            A0, G0, H0 = _riccati_reduce(xp, A, B, Q, R, E, S)
            if kind == "care":
                A0, G0, H0 = _cayley_fixed_point(xp, A0, G0, H0)
            Y, done, vanished = _doubling(xp, A0, G0, H0, maxit)
    except LinAlgError:                 # a singular r, e, H − γI, C₂₂ or W in the stack:
        if len(batch) == 0 or math.prod(batch) == 1:        # each matrix on its own
            return failed
        X = xp.zeros(batch + (n, n), dtype=A.dtype)
        ok = xp.zeros(batch, dtype=bool)
        for idx in np.ndindex(*batch):
            Xi, oki = riccati_doubling(xp, kind, *(None if x is None else x[idx]
                                                   for x in (A, B, Q, R, E, S)), maxit=maxit)
            if oki is not None and bool(oki):
                X[idx], ok[idx] = Xi, True
        return X, ok
    with np.errstate(all="ignore"):
        try:
            X = Y if E is None else xp.linalg.solve(mH(E), mH(xp.linalg.solve(mH(E), Y)))
            X = (X + mH(X)) / 2
            # the residual of the equation as given, relative to the size of its terms
            En = xp.eye(n, dtype=A.dtype) if E is None else E
            XB = X @ B
            if kind == "care":
                M = mH(En) @ XB + (0 if S is None else S)
                quad = M @ xp.linalg.solve(R, mH(M))
                lin1 = mH(A) @ X @ En
                lin2 = mH(lin1)
            else:
                M = mH(A) @ XB + (0 if S is None else S)
                quad = M @ xp.linalg.solve(R + mH(B) @ XB, mH(M))
                lin1 = mH(A) @ X @ A
                lin2 = -(mH(En) @ X @ En)
        except LinAlgError:
            return failed
        res = xp.abs(lin1 + lin2 - quad + Q).max(axis=(-2, -1))
        scale = (xp.abs(lin1).max(axis=(-2, -1)) + xp.abs(lin2).max(axis=(-2, -1)) +
                 xp.abs(quad).max(axis=(-2, -1)) + xp.abs(Q).max(axis=(-2, -1)))
        ok = done & vanished & xp.isfinite(res) & (res <= 64 * n * np.finfo(
            A.real.dtype).eps * scale)
    return X, ok


def _chol_sandwich_rhs(xp, X):
    """S = ½(Φ(X) + Φ(X)ᴴ), Φ(X) = tril(X, −1) + ½ diag(X): ½X below the diagonal,
    its conjugate mirror above, ½ Re Xᵢᵢ on it."""
    return full_from_triangle(xp, X, True, scale=0.5)


def _fold_triangle(xp, Ah, lower, out=None):
    """The cotangent of the triangle a Hermitian solver reads, from the Hermitian Ā:
    2 tril(Ā, −1) + Re diag(Ā) (triu for the upper triangle); ``out=Ah`` works in place."""
    out = _weighted(xp, Ah, _tri_weights(Ah.shape[-1], lower, 2.0, 1.0), out=out)
    if out.dtype.kind == "c":
        _set_diagonal(xp, out, xp.diagonal(out, 0, -2, -1).real)
    return out


def _set_diagonal(xp, X, v):
    """X[..., i, i] = v in place: one strided assignment for a C-ordered NumPy matrix
    (a quarter of the index arrays' cost at order 64), fancy indexing otherwise."""
    k = X.shape[-1]
    if X.ndim == 2 and type(X) is np.ndarray and X.flags.c_contiguous and X.shape[0] == k:
        X.reshape(-1)[::k + 1] = v
    else:
        idx = xp.arange(k)
        X[..., idx, idx] = v


def _eigh_core(xp, w, V, w_bar, V_bar):
    """M = diag(w̄) + F ∘ VᴴV̄ (w̄ = 0 when None), Fᵢⱼ = 1/(wⱼ − wᵢ): Ā_h = V M Vᴴ."""
    D = w[..., None, :] - w[..., :, None]
    _set_diagonal(xp, D, 1)
    M = xp.matmul(_mH(xp, V), V_bar)
    M /= D
    _set_diagonal(xp, M, 0 if w_bar is None else w_bar)
    return M


def _rows_and_columns(xp, s):
    """(s_j, s_i): s (..., k) as the (..., k, k) matrices with s along every row and down
    every column.  Materialised for a stack (fresh, writable arrays), broadcast views for
    one matrix (where the broadcast passes are cheap)."""
    if s.ndim == 1:
        return s[None, :], s[:, None]
    k = s.shape[-1]
    return xp.repeat(s[..., None, :], k, axis=-2), xp.repeat(s[..., :, None], k, axis=-1)


def _triangle_product(P, Q, lower):
    """tril(P Q) (triu when not ``lower``) for square n x n NumPy matrices, by row blocks
    that skip most of the other triangle: about (1 + 1/b)/2 of the product's flops with b
    blocks (0.46 vs 0.58 ms at n = 256, 22 vs 34 ms at 1024). The other triangle is
    zero except inside the diagonal blocks, where it holds entries of P Q."""
    n = P.shape[0]
    X = np.zeros((n, n), dtype=np.result_type(P, Q))
    edges = np.linspace(0, n, (4 if n < 512 else 8) + 1).astype(int)
    for r0, r1 in zip(edges[:-1], edges[1:]):
        if lower:
            np.matmul(P[r0:r1], Q[:, :r1], out=X[r0:r1, :r1])
        else:
            np.matmul(P[r0:r1], Q[:, r0:], out=X[r0:r1, r0:])
    return X


def _eigenvalue_cotangent_syrk(V, w_bar, lower):
    """Ā of w = eigvalsh(A) on the triangle read, for one real matrix: V diag(w̄) Vᵀ folded,
    by one symmetric rank-n update instead of a general product (half the flops).

    V is orthogonal, so V diag(w̄) Vᵀ = V diag(w̄ − m) Vᵀ + m I with m = min w̄: the
    shifted weights are non-negative, and the product is syrk of V diag(√(w̄ − m)),
    which computes one triangle only.  (A constant w̄, as for a trace, comes out as
    exactly m I.)  The error is that of the product, O(n ε max|w̄|) per entry.
    """
    n = V.shape[-1]
    m = w_bar.min()
    Vs = V * np.sqrt(w_bar - m)
    syrk = _blas_fn("syrk", V.dtype)
    c = np.zeros((n, n), dtype=V.dtype, order="F")   # syrk leaves the other triangle alone
    if Vs.flags.c_contiguous:
        # Vsᵀ is a Fortran view: ask for the opposite triangle of the Fortran result,
        # whose transpose (a C-ordered view) holds the one wanted
        X = syrk(1.0, Vs.T, c=c, trans=1, lower=not lower, overwrite_c=1).T
    else:
        X = syrk(1.0, Vs, c=c, trans=0, lower=lower, overwrite_c=1)
    idx = np.arange(n)
    X[idx, idx] += m
    return _fold_triangle(np, X, lower, out=X)


def _square_safe_scale(xp, s):
    """None when every matrix's largest singular value lies where sᵢ² neither overflows
    nor underflows (the common case: one reduction, one test), else a power of two per
    matrix (1 where no scaling is needed) bringing it to [1/2, 1).  Kernels that form
    (sⱼ − sᵢ)(sⱼ + sᵢ) got NaN at 1e-200·A and silent zeros at 1e160·A in double, at
    1e±20 in single precision."""
    if s.size == 0:
        return None
    info = np.finfo(s.dtype)
    top = s.max(axis=-1)
    lo, hi = float(info.tiny) ** 0.5 * 2.0 ** 8, float(info.max) ** 0.5 * 2.0 ** -8
    if bool(((top >= lo) & (top <= hi) | (top == 0)).all()):
        return None
    with np.errstate(divide="ignore"):
        e = xp.where(top > 0, xp.floor(xp.log2(xp.where(top > 0, top, 1))) + 1, 0)
    return xp.exp2(e).astype(s.dtype)


def pair_scale(xp, x, f, df):
    """(..., k, k): the scale on which f varies near each pair of points,
    (|fᵢ| + |fⱼ| + |xᵢf'ᵢ| + |xⱼf'ⱼ|) / |(f'ᵢ + f'ⱼ)/2| — the rounding of f at a point known
    to working precision over the pair's mean slope (inf where that slope is 0).  The
    first divided differences of funmh.md §6 take a pair as tied within ε^(1/3) of it; the
    second ones (f', f'') within ε^(1/4)."""
    size = xp.abs(f) + xp.abs(x * df)
    slope = xp.abs(df[..., :, None] + df[..., None, :])
    slope *= 0.5
    with np.errstate(divide="ignore", invalid="ignore"):
        return xp.where(slope > 0, (size[..., :, None] + size[..., None, :])
                        / xp.where(slope > 0, slope, 1), xp.inf)


def near_slopes(xp, x, f, df, tol):
    """Concrete mask (..., k, k) of the pairs whose divided difference is taken as the mean
    of the slopes (the diagonal included; funmh.md section 6): those where the quotient's
    cancellation, about ε(|fᵢ| + |fⱼ| + |xᵢf'ᵢ| + |xⱼf'ⱼ|)/|xᵢ − xⱼ|, would exceed
    tol² = ε^(2/3) of the slope: within tol of ``pair_scale`` and of max|x|.  The pair's own
    scale matters: log at eigenvalues 0.006 and 0.01 of a matrix whose largest is 1000
    varies on a scale of 0.01, and the mean of its slopes there is 1% off."""
    gap = xp.abs(x[..., :, None] - x[..., None, :])
    top = xp.abs(x).max(axis=-1)[..., None, None]
    return gap <= tol * xp.minimum(top, pair_scale(xp, x, f, df))


def _divided_differences(xp, x, f, df, tol):
    """Φ (..., k, k): Φᵢⱼ = (fᵢ − fⱼ)/(xᵢ − xⱼ), the mean of the slopes (f'ᵢ + f'ⱼ)/2 where
    ``near_slopes`` says so, the diagonal included (funmh.md section 6)."""
    near = near_slopes(xp, x, f, df, tol)
    phi = f[..., :, None] - f[..., None, :]
    phi /= xp.where(near, 1, x[..., :, None] - x[..., None, :])
    mean = df[..., :, None] + df[..., None, :]
    mean *= 0.5
    return xp.where(near, mean, phi), mean


class ComposedKernels:
    """Kernels both tables build the same way from their own primitives.

    A device table subclasses this and supplies ``cholesky`` and
    ``solve_triangular``; what is composed from them is written once here.
    """

    def cho_factor(self, A, lower=True, op="cho_factor"):
        """Cholesky factors (the factor array itself, zeros in the other triangle)."""
        return CholFactors(self.cholesky(A, lower, op), lower, A.shape)

    def triangular_cond_bound(self, R):
        """‖R‖_F ‖R⁻¹‖_F per matrix of a stack of upper-triangular R (..., n, n): an upper
        bound on the 2-norm condition number s_max / s_min (inf or nan when R is
        singular), for a tenth of the cost of R's singular values."""
        from .ops import _sumsq
        with np.errstate(all="ignore"):
            Ri = self.upper_inverse(R)
            if Ri is None:
                return self.xp.full(R.shape[:-2], self.xp.inf)
            return self.xp.sqrt(_sumsq(R, (-2, -1)) * _sumsq(Ri, (-2, -1)))

    def upper_inverse(self, R):
        """R⁻¹ (or its transpose: same norms) of upper-triangular R, None when singular;
        here by a solve with the identity."""
        eye = self.xp.broadcast_to(self.xp.eye(R.shape[-1], dtype=R.dtype), R.shape)
        try:
            return self.solve_triangular(R, eye, lower=False, op="lstsq")
        except LinAlgError:
            return None

    def eigh_tridiagonal(self, d, e, select_range=None, op="eigh_tridiagonal"):
        """(w, V): the eigenpairs of the real symmetric tridiagonal matrices with diagonals
        d (..., n) and off-diagonals e (..., n − 1) — every pair, or those with indices
        ``select_range = (lo, hi)``.  Here: the assembled matrices' eigh, sliced (a device
        has no tridiagonal driver); the CPU table uses LAPACK's."""
        xp = self.xp
        n = d.shape[-1]
        T = xp.zeros(d.shape + (n,), dtype=d.dtype)
        i = xp.arange(n)
        T[..., i, i] = d
        if n > 1:
            T[..., i[1:], i[:-1]] = e
            T[..., i[:-1], i[1:]] = e
        w, V = self.eigh(T, lower=True, op=op)
        if select_range is None:
            return w, V
        lo, hi = select_range
        return w[..., lo:hi + 1], V[..., lo:hi + 1]

    def eig_banded(self, ab, select_range=None, op="eig_banded", few=False):
        """(w, V): every eigenpair of the Hermitian band matrices whose upper form ab
        (..., u + 1, n) holds (diagonal real), or those with indices ``select_range = (lo,
        hi)`` (``few``: the caller decided they are few: their vectors alone).  Here: the
        assembled matrices' eigh, sliced (a device has no band eigensolver); the CPU table
        uses LAPACK's band reduction."""
        u = ab.shape[-2] - 1
        w, V = self.eigh(dense_from_band(self.xp, ab, 0, u), lower=False, op=op)
        if select_range is None:
            return w, V
        lo, hi = select_range
        return w[..., lo:hi + 1], V[..., lo:hi + 1]

    # whether eigh_subset computes the pairs alone (else eigh's rule takes the full path)
    subset_driver = False

    def eigh_subset(self, A, lower, first, last, op="eigh"):
        """(w, V) of the eigenpairs first..last (ascending, inclusive) of each Hermitian
        matrix of the stack, one triangle read.  Here: the full decomposition, sliced (a
        device has no subset driver); the CPU table uses LAPACK's syevr/heevr."""
        w, V = self.eigh(A, lower=lower, op=op)
        return w[..., first:last + 1], V[..., first:last + 1]

    def band_factor(self, ab, lower, upper, hermitian=False, op="solve_banded"):
        """Factors of the banded matrices of ab (..., lower + upper + 1, n) (band storage);
        ``hermitian``: positive definite, read from the rows 0..upper (its upper triangle).
        Here: the assembled matrices' LU or Cholesky factorization (a device has no band
        solver); the CPU table uses LAPACK's band factorizations."""
        A = dense_from_band(self.xp, ab, lower, upper)
        F = self.cho_factor(A, lower=False, op=op) if hermitian else self.lu_factor(A, op=op)
        return BandFactors("dense", F, A.shape, lower, upper, hermitian)

    def band_solve(self, F, b, trans=0):
        """x of op(A) x = b for the factors of ``band_factor`` (b: (..., n, k), A's stack)."""
        if not F.hermitian:
            return self.lu_solve(F.data, b, trans)
        # A is Hermitian: op(A) is A (trans 0, 2) or conj(A) (trans 1)
        if trans == 1:
            return self.xp.conj(self.cho_solve(F.data, self.xp.conj(b)))
        return self.cho_solve(F.data, b)

    def band_cholesky(self, tb, op="cholesky_banded"):
        """The lower bands (..., u + 1, n) of the Cholesky factors L (A = L Lᴴ) of the
        Hermitian positive definite matrices whose lower triangles tb holds in the lower
        form (tb[s, j] = A[j + s, j]).  Here: the assembled matrices' Cholesky (a device
        has no band Cholesky); the CPU table calls LAPACK's pbtrf once for the stack."""
        xp = self.xp
        u = tb.shape[-2] - 1
        L = self.cholesky(dense_from_band(xp, tb, u, 0), lower=True, op=op)
        return band_from_dense(xp, L, u, 0)

    def band_trsolve(self, lb, b, trans=0, op="cho_solve_banded"):
        """x of op(L) x = b for the lower triangular band matrices L whose lower form lb
        (..., u + 1, n) holds, b (..., n, k) of the same stack.  Here: assembled."""
        xp = self.xp
        u, n = lb.shape[-2] - 1, lb.shape[-1]
        if lb.size:
            zero = (lb[..., 0, :] == 0).reshape(-1, n)
            if bool(zero.any()):
                i = int(xp.argmax(zero.any(axis=-1)))
                j = int(xp.argmax(zero[i]))
                raise LinAlgError(f"{op}: the factor is singular (its diagonal entry {j} is "
                                  f"zero){_where(op, lb.shape[:-2], i)}")
        L = dense_from_band(xp, lb, u, 0)
        return self.solve_triangular(L, b, lower=True, trans=trans, op=op)

    def lower_block_inverse(self, D):
        """The inverses of a stack (..., b, b) of lower triangular blocks (zeros above the
        diagonal).  Blocks up to order BLOCK_INVERSE_B: substitution column by column,
        each step one batched operation over the stack; larger ones: the triangular solve
        against I."""
        xp = self.xp
        b = D.shape[-1]
        if b > BLOCK_INVERSE_B:
            eye = xp.broadcast_to(xp.eye(b, dtype=D.dtype), D.shape)
            return self.solve_triangular(D, eye, lower=True, op="cholesky_banded")
        Di = xp.zeros_like(D)
        d = D[..., xp.arange(b), xp.arange(b)]
        for j in range(b):
            Di[..., j, j] = 1 / d[..., j]
            for i in range(j + 1, b):        # row i of D times column j of D⁻¹ is 0
                acc = (D[..., i, j:i] * Di[..., j:i, j]).sum(axis=-1)
                Di[..., i, j] = -acc / d[..., i]
        return Di

    def band_cholesky_cotangent(self, L, L_bar):
        """The cotangent of the lower triangle read by the banded Cholesky, given the
        factor's lower band L and its cotangent L̄ (banded_cholesky.md §3): the composed
        rule of ``rules.banded_cholesky._cotangent_composed`` in one call, on plain
        arrays (the same block products, without a traced operation each)."""
        xp = self.xp
        u, n = L.shape[-2] - 1, L.shape[-1]
        if n == 0 or L.size == 0:
            return xp.zeros(L.shape, dtype=xp.result_type(L, L_bar))
        L_bar = L_bar.astype(xp.result_type(L, L_bar), copy=False)
        L = L.astype(L_bar.dtype, copy=False)
        b, M = band_blocks_shape(u, n)
        pad = band_block_pad(u, n)
        X = band_to_blocks(xp, L)
        if pad is not None:
            X[..., M - 1, 0, :, :] += xp.asarray(pad, dtype=X.dtype)
        Xb = band_to_blocks(xp, L_bar)
        B = _BlockAlgebra(xp, b, soa=b <= SMALL_MATMUL_B)
        D, Cb, Db, Cbb = (B.enter(Y[..., w, :, :]) for Y in (X, Xb) for w in (0, 1))
        Di = B.lower_inverse(D, self)
        mm, h, nxt = B.mm, B.h, B.nxt
        Sd = B.phi(mm(h(D), Db) + mm(h(Cb), Cbb))
        Sd = Sd + h(Sd)
        K = mm(Cb, Di)
        E = mm(Cbb, Di)                     # D[m+1]⁻ᴴ (D[m+1]ᴴ C̄[m]) D[m]⁻¹
        KE = mm(h(K), E)
        Q = mm(mm(h(Di), Sd), Di) - KE - h(KE)
        Xd = B.enter(self.congruence_chain(B.leave(K), B.leave(Q), forward=False))
        Xl = E - mm(nxt(Xd), K)
        out = band_from_blocks(xp, xp.stack([B.leave(B.phi(Xd)), B.leave(Xl)], axis=-3), u, n)
        if out.dtype.kind == "c":
            out[..., 0, :] = out[..., 0, :].real
        return out

    def congruence_chain(self, K, Q, forward):
        """The matrix recurrences of the banded Cholesky's derivatives (banded_cholesky.md
        §3) on stacks (..., M, b, b):

        forward=False   X[m] = Q[m] + K[m]ᴴ X[m + 1] K[m],  m = M − 1, ..., 0  (X[M] = 0)
        forward=True    Y[m + 1] = Q[m + 1] + K[m] Y[m] K[m]ᴴ,  Y[0] = Q[0]

        each other's adjoints; K[M − 1] is not read.  Here: cyclic reduction (see
        ``_chain_backward``), log₂ M batched levels; the forward recurrence is the backward
        one in reversed order, with K[M − 2 − m]ᴴ for K[m]."""
        xp = self.xp
        K, Q = xp.broadcast_arrays(K, Q)
        dtype = xp.result_type(K, Q)
        K, Q = K.astype(dtype, copy=False), Q.astype(dtype, copy=False)
        M = Q.shape[-3]
        if M == 0:
            return xp.array(Q, copy=True)
        if not forward:
            return _chain_backward(xp, K, Q)
        Kt = xp.zeros_like(K)
        Kt[..., :M - 1, :, :] = xp.flip(xp.conj(xp.swapaxes(K[..., :M - 1, :, :], -1, -2)),
                                        axis=-3)
        return xp.flip(_chain_backward(xp, Kt, xp.flip(Q, axis=-3)), axis=-3).copy()

    def expm_staged(self, A, op="expm"):
        """(e^A, factors) for a stack (..., n, n): scaling and squaring, vectorised over
        the stack, keeping what ``expm_frechet_staged`` reuses (``linalgad._pade``)."""
        if A.size == 0:
            return A.copy(), None
        from ._pade import expm_staged
        return expm_staged(self, A, op)

    def expm_frechet_staged(self, F, A, E, keep=False):
        """L(A, E) from ``expm_staged``'s factors of the same A: products and one solve
        (``keep``: the steps kept in F for ``expm_frechet_adjoint``)."""
        from ._pade import expm_frechet_staged
        return expm_frechet_staged(F, A, E, keep=keep)

    def expm_frechet_adjoint(self, F, A, E, G):
        """(Ā, Ē) of Re⟨G, L(A, E)⟩ from the factors F of e^A: the reverse sweep of the
        Fréchet steps (``linalgad._pade.frechet_adjoint``)."""
        from ._pade import frechet_adjoint
        return frechet_adjoint(F, A, E, G)

    def cholesky_cotangent(self, C, C_bar, lower):
        """Ā's cotangent on the triangle cholesky read, from the factor C and its cotangent.

        With L = C (lower) or Cᴴ (upper) and L̄ likewise: X = Lᴴ L̄, S = ½(Φ(X) + Φ(X)ᴴ),
        Ā = L⁻ᴴ S L⁻¹ (two triangular solves), folded onto the triangle
        (``docs/derivations/cholesky.md`` §2; the rule's composed form is the reference).
        """
        xp = self.xp
        dtype = np.result_type(C.dtype, C_bar.dtype)
        L, Lb = (C, C_bar) if lower else (_mH(xp, C), _mH(xp, C_bar))
        S = _chol_sandwich_rhs(xp, xp.matmul(_mH(xp, L), Lb).astype(dtype, copy=False))
        t = 2 if lower else 0                                 # op(C) = Lᴴ either way
        Z = self.solve_triangular(C, S, lower=lower, trans=t, op="cholesky")        # L⁻ᴴ S
        Ah = self.solve_triangular(C, _mH(xp, Z), lower=lower, trans=t, op="cholesky")
        return _fold_triangle(xp, Ah, lower)

    def lu_cotangent(self, lu, lu_bar, perm):
        """Ā of lu_factor from the packed factor's cotangent, or None where this table has
        no fused kernel for the shape (the rule then evaluates its composed form)."""
        return None

    def qr_cotangent(self, Q, R, Q_bar, R_bar):
        """Ā of the reduced QR (R square) from (Q̄, R̄), either may be None; or None where
        this table has no fused kernel for the shape (the rule evaluates its composed form)."""
        return None

    def ldl_cotangent(self, lu, d, lu_bar, d_bar, perm, blocks, lower, hermitian):
        """Ā of ldl from (l̄u, d̄); or None where this table has no fused kernel (the rule
        evaluates its composed form)."""
        return None

    def ldl_tangent(self, lu, d, A_dot, perm, blocks, lower, hermitian):
        """(l̇u, ḋ) of ldl along Ȧ; or None where this table has no fused kernel (the rule
        evaluates its composed form)."""
        return None

    def cho_solve_cotangent(self, c, x_bar, x, y, lower, need_c=True):
        """(c̄, b̄) of x = cho_solve((c, lower), b) for one matrix, y its half-way solve
        (cholesky.md): two triangular solves and one product; or None where this table
        has no fused kernel (the rule evaluates its composed form)."""
        return None

    def lu_solve_cotangent(self, lu, perm, x_bar, x, y, need_lu=True):
        """(lū, b̄) of x = lu_solve((lu, piv), b) (op = none) for one matrix, perm the row
        order (A[perm] = L U) and y = L⁻¹ P b the half-way solve; or None where this table
        has no fused kernel (the rule evaluates its composed form)."""
        return None

    def eig_cotangent(self, w, V, w_bar, V_bar, tol, real):
        """(Ā, kd, scale) of eig from (w̄, V̄) (either may be None) where no two eigenvalues
        of a matrix are within tol·max|w| (eig.md): Ā = V⁻ᴴ (diag(w̄) + conj(E) ∘ Y) Vᴴ
        (its real part when ``real``), kd = diag(VᴴV̄) and scale a per-matrix bound of
        |VᴴV̄| for the rule's phase check (both None without V̄); or None where this table
        has no fused kernel, or some eigenvalues are that close, or V is singular (the
        rule evaluates its composed form, which checks and raises)."""
        return None

    def eigh_cotangent(self, w, V, w_bar, V_bar, lower):
        """Ā of eigh (on the triangle read) from (w̄, V̄), either may be None, for
        eigenvalues without near-coincidences (the rule checks):
        V (diag(w̄) + F ∘ VᴴV̄) Vᴴ, Fᵢⱼ = 1/(wⱼ − wᵢ), folded onto the triangle."""
        xp = self.xp
        dtype = np.result_type(V.dtype, *(x.dtype for x in (w_bar, V_bar) if x is not None))
        M = None if V_bar is None else _eigh_core(xp, w, V, w_bar, V_bar)
        left = V * w_bar[..., None, :] if M is None else xp.matmul(V, M)
        X = xp.matmul(left, _mH(xp, V)).astype(dtype, copy=False)
        if M is None and dtype.kind == "f":
            # V diag(w̄) Vᵀ is symmetric: fold its triangle (one pass, in place)
            return _fold_triangle(xp, X, lower, out=X)
        return triangle_cotangent(xp, X, lower)                       # not Hermitian

    def hermitian_frechet(self, w, V, f, df, E, tol):
        """The Daleckii–Krein map of a function of a Hermitian matrix A = V diag(w) Vᴴ:
        V (Φ ∘ (Vᴴ E V)) Vᴴ with Φᵢⱼ = (fᵢ − fⱼ)/(wᵢ − wⱼ), and (f'ᵢ + f'ⱼ)/2 where
        ``near_slopes`` says (within tol·max|w| and tol of f's own scale near the pair;
        the diagonal included); w ascending, f and df: f and f' at w."""
        xp = self.xp
        bound = tol * xp.abs(w).max(axis=-1, keepdims=True)
        # w ascending (eigh's order): a pair off the diagonal is near only if some
        # neighbours are, an O(n) test that spares the common case the masks
        if w.shape[-1] > 1 and bool((w[..., 1:] - w[..., :-1] <= bound).any()):
            phi = _divided_differences(xp, w, f, df, tol)[0]
        else:
            gap = w[..., :, None] - w[..., None, :]
            _set_diagonal(xp, gap, 1)
            phi = f[..., :, None] - f[..., None, :]
            phi /= gap
            _set_diagonal(xp, phi, df)
        Vh = _mH(xp, V)
        Z = xp.matmul(xp.matmul(Vh, E), V)
        Z *= phi.astype(Z.dtype, copy=False)
        return xp.matmul(xp.matmul(V, Z), Vh)

    def svd_frechet(self, U, s, Vh, f, df, E, tol, zero_tol):
        """The derivative of the generalized matrix function U diag(f(s)) Vᴴ along E
        (generalized_funm.md): U (Φ⁺ ∘ herm(P) + Φ⁻ ∘ skew(P)) Vᴴ, P = Uᴴ E V, plus the
        terms of the extra rows (m > k) or columns (n > k) with cⱼ = fⱼ/sⱼ; each
        quotient the mean of the slopes where its denominator is within tol·max s of 0
        (Φ⁺) or zero_tol·max s (Φ⁻ and c)."""
        xp = self.xp
        m, k = U.shape[-2:]
        n = Vh.shape[-1]
        c = _square_safe_scale(xp, s)
        if c is not None:
            # every coefficient is a quotient of degree −1 in s (f and f' held): L at s is
            # L at s/c (with the slopes c·f') over c, where sᵢ² − sⱼ² is representable
            out = self.svd_frechet(U, s / c[..., None], Vh, f, df * c[..., None], E, tol,
                                   zero_tol)
            out /= c[..., None, None].astype(out.dtype)
            return out
        top = s.max(axis=-1, keepdims=True)
        bound, zero = top * tol, top * zero_tol
        # s descending (the SVD's order): a near pair shows between neighbours, a small
        # sum at the last value; without either, ½(Φ⁺ ± Φ⁻) in closed form (a third of
        # the passes): a = (fᵢsᵢ − fⱼsⱼ)/(sᵢ² − sⱼ²), b = (fᵢsⱼ − fⱼsᵢ)/(sᵢ² − sⱼ²)
        if k < 2 or (not bool((s[..., :-1] - s[..., 1:] <= bound).any())
                     and bool((2 * s[..., -1:] > zero).all())):
            s2 = s * s
            D = s2[..., :, None] - s2[..., None, :]
            _set_diagonal(xp, D, 1)
            fs = f * s
            a = fs[..., :, None] - fs[..., None, :]
            a /= D
            O = f[..., :, None] * s[..., None, :]
            b = O - xp.swapaxes(O, -1, -2)
            b /= D
            c = f / s
            _set_diagonal(xp, a, 0.5 * (df + c))
            _set_diagonal(xp, b, 0.5 * (df - c))
        else:
            plus, mean = _divided_differences(xp, s, f, df, tol)
            total = s[..., :, None] + s[..., None, :]
            small = total <= zero[..., None]
            minus = f[..., :, None] + f[..., None, :]
            minus /= xp.where(small, 1, total)
            minus = xp.where(small, mean, minus)
            a, b = plus + minus, plus - minus
            a *= 0.5
            b *= 0.5
            c = xp.diagonal(minus, 0, -2, -1)
        V, Uh = _mH(xp, Vh), _mH(xp, U)
        if n > k:
            UhE = xp.matmul(Uh, E)
            P = xp.matmul(UhE, V)
        else:
            EV = xp.matmul(E, V)
            P = xp.matmul(Uh, EV)
        X = a.astype(P.dtype, copy=False) * P
        X += b.astype(P.dtype, copy=False) * _mH(xp, P)
        c = c.astype(P.dtype, copy=False)
        if m > k:
            # U X Vᴴ + (E V − U P) diag(c) Vᴴ = (U (X − P diag(c)) + E V diag(c)) Vᴴ
            X -= P * c[..., None, :]
            return xp.matmul(xp.matmul(U, X) + EV * c[..., None, :], Vh)
        if n > k:
            # U X Vᴴ + U diag(c) (Uᴴ E − P Vᴴ) = U ((X − diag(c) P) Vᴴ + diag(c) Uᴴ E)
            X -= c[..., :, None] * P
            return xp.matmul(U, xp.matmul(X, Vh) + c[..., :, None] * UhE)
        return xp.matmul(xp.matmul(U, X), Vh)

    def svd_extreme(self, A, ends, tol):
        """The extreme singular values of a stack A (..., m, n) and their derivatives.

        ``ends``: a tuple of "top" (s₁) and "bottom" (s_min).  Returns (values, Ms): per
        end, the value (...) and M (..., m, n), the mean of u_i v_iᴴ over the values tied
        with it (within ``tol`` relative): ∂s/∂A where the value is simple, the minimum-
        norm subgradient at a tie.  Here from the thin SVD, M from the tied columns only.
        """
        xp = self.xp
        U, s, Vh = self.svd(A, full_matrices=False, compute_uv=True, op="svd")
        k = s.shape[-1]
        values, Ms = [], []
        for end in ends:
            idx = 0 if end == "top" else k - 1
            w, count = _lapack_extreme.tie_weights(xp, s, idx, tol)
            # only the columns some matrix ties with the end: mostly the end's own
            reach = int(count.max()) if count.size else 1      # (an empty stack)
            cols = slice(0, reach) if end == "top" else slice(k - reach, k)
            Uw = U[..., :, cols] * w[..., None, cols].astype(U.dtype)
            values.append(s[..., idx])
            Ms.append(xp.matmul(Uw, Vh[..., cols, :]))
        return tuple(values), tuple(Ms)

    def svd_cotangent(self, U, s, Vh, U_bar, s_bar, Vh_bar):
        """Ā of the thin SVD of a real matrix from (Ū, s̄, V̄h), any two may be None,
        for singular values without near-coincidences and, where the 1/s term is needed,
        without zeros (the rule checks):

            Ā = U X Vᵀ (+ the terms of the extra rows or columns),
            X = diag(s̄) + E ∘ (Jₐ diag(s) + diag(s) Kₐ),  E_ij = 1/((s_j − s_i)(s_j + s_i)),

        Jₐ = J − Jᵀ, Kₐ = K − Kᵀ with J = UᵀŪ, K = VᵀV̄: the rule's two gap terms
        sym(Gp∘(J+K)) + skew(Gm∘(J−K)) summed into one (svd.md, section 3)."""
        xp = self.xp
        m, k = U.shape[-2:]
        n = Vh.shape[-1]
        if U_bar is None and Vh_bar is None:
            return xp.matmul(U * s_bar[..., None, :], Vh)          # svdvals: U diag(s̄) Vᵀ
        c = _square_safe_scale(xp, s)
        if c is not None:
            # Ā(s; Ū, s̄, V̄) = Ā(s/c; Ū/c, s̄, V̄/c): the gap terms scale as 1/s, the
            # others not at all, and (s_j − s_i)(s_j + s_i) stays representable
            return self.svd_cotangent(
                U, s / c[..., None], Vh, None if U_bar is None else U_bar / c[..., None, None],
                s_bar, None if Vh_bar is None else Vh_bar / c[..., None, None])
        J = None if U_bar is None else xp.matmul(_mH(xp, U), U_bar)             # UᵀŪ
        K = None if Vh_bar is None else xp.matmul(Vh, _mH(xp, Vh_bar))          # VᵀV̄
        # s along the rows (s_j) and down the columns (s_i), each read by two or three
        # passes below: for a stack, materialised once (NumPy's broadcast operations over
        # short rows cost two to three plain passes each; 1000 of order 32: the gap
        # matrix 3.9 → 1.5 ms)
        s_j, s_i = _rows_and_columns(xp, s)
        X = None
        if J is not None:
            X = J - xp.swapaxes(J, -1, -2)
            X *= s_j
        if K is not None:
            Y = K - xp.swapaxes(K, -1, -2)
            Y *= s_i
            X = Y if X is None else xp.add(X, Y, out=X)
        D = s_j - s_i
        D *= xp.add(s_j, s_i, out=s_j) if s.ndim > 1 else s_j + s_i    # (s_j read last)
        _set_diagonal(xp, D, 1)
        X /= D
        _set_diagonal(xp, X, 0 if s_bar is None else s_bar)
        if m > k and U_bar is not None:
            # Ā = [U (X − J S⁻¹) + Ū S⁻¹] Vᵀ
            inv = 1 / s[..., None, :]
            X -= J * inv
            return xp.matmul(xp.matmul(U, X) + U_bar * inv, Vh)
        if n > k and Vh_bar is not None:
            # Ā = U [(X − S⁻¹ Kᵀ) Vᵀ + S⁻¹ V̄ᵀ]
            inv = 1 / s[..., :, None]
            X -= xp.swapaxes(K, -1, -2) * inv
            return xp.matmul(U, xp.matmul(X, Vh) + Vh_bar * inv)
        return xp.matmul(xp.matmul(U, X), Vh)

    def cho_inverse(self, F, full=True):
        """A⁻¹ from the Cholesky factors of A (the full Hermitian matrix; with
        ``full=False`` only the factor's triangle of it need be valid)."""
        n = F.shape[-1]
        return self.cho_solve(F, self.xp.broadcast_to(
            self.xp.eye(n, dtype=F.data.dtype), F.shape))

    def lu_inverse_h(self, F, scale):
        """scale · A⁻ᴴ (scale (...) per matrix) from A's LU factors: slogdet's cotangent."""
        return _mH(self.xp, self.lu_inverse(F)) * self.xp.asarray(scale)[..., None, None]

    def logdet_cotangent(self, F, l_bar):
        """Ā of logdet on the triangle read, ℓ̄ (2 tril(A⁻¹, −1) + Re diag A⁻¹), from the
        factor (cholesky.md): one fold of the inverse's triangle, scaled per matrix."""
        X = self.cho_inverse(F, full=False)
        X = _fold_triangle(self.xp, X, F.lower, out=X)
        X *= l_bar[..., None, None]
        return X

    def cho_solve(self, F, b):
        """A x = b with A = L Lᴴ (or Uᴴ U): two triangular solves with the stored factor."""
        c = F.data
        if F.lower:
            y = self.solve_triangular(c, b, lower=True, trans=0, op="cho_solve")
            return self.solve_triangular(c, y, lower=True, trans=2, op="cho_solve")
        y = self.solve_triangular(c, b, lower=False, trans=2, op="cho_solve")
        return self.solve_triangular(c, y, lower=False, trans=0, op="cho_solve")


    # -- riccati family (linalgad/rules/riccati.py) ------------------------------------------

    def riccati(self, kind, A, B, Q, R, E, S, balanced, op="riccati"):
        """The stabilizing solution of the CARE (kind 'care') or DARE ('dare') per matrix of
        the broadcast stacks, in double precision (SciPy's), cast to the inputs' dtype: the
        doubling algorithm for the whole stack in this table's arrays (``riccati_doubling``:
        a fraction of SciPy's QZ, the DARE at n = 256 in 49 against 1580 ms, the CARE in 261
        against 4040), and the table's ``_riccati_declined`` for the matrices it declines.
        q and r were checked Hermitian in their own precision (the rule); their Hermitian
        parts pass SciPy's check again in double precision."""
        xp = self.xp
        given = [x for x in (A, B, Q, R, E, S) if x is not None]
        dtype = np.result_type(*(x.dtype for x in given))
        batch = np.broadcast_shapes(*(x.shape[:-2] for x in given))
        n = A.shape[-1]
        if math.prod(batch + (n, n)) == 0:
            return xp.empty(batch + (n, n), dtype=dtype)
        work = np.result_type(dtype, np.float64)
        full = [None if x is None else xp.broadcast_to(x, batch + x.shape[-2:]).astype(work)
                for x in (A, B, Q, R, E, S)]
        full[2], full[3] = ((x + _mH(xp, x)) / 2 for x in full[2:4])
        X, ok = riccati_doubling(xp, kind, *full)
        if ok is None or not bool(ok.all()):
            X = self._riccati_declined(kind, full, X, ok, balanced, op)
        return X.astype(dtype, copy=False)


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
        if (batch and n <= SMALL_N) or n == 0:      # (LAPACK rejects order 0: lda = 0)
            return _vector_lu_factor(A, op, singular_ok)
        # LAPACK wants Fortran order.  Aᵀ of a C-ordered A is a Fortran-ordered
        # view, so factor Aᵀ = P L U (no transposing copy: a quarter faster at
        # n = 1024) and let lu_solve map each op(A) onto an op of Aᵀ.
        getrf = _lapack_fn("getrf", A.dtype)
        upper = _upper_lu(A)
        if upper is not None:
            # A upper triangular: Aᵀ = (Aᵀ D⁻¹) D without row exchanges.  Partial pivoting
            # of Aᵀ would exchange its rows where A's off-diagonal entries outgrow the
            # diagonal, and lose the exact back substitution that factoring A itself (as
            # NumPy and SciPy do) gets: solve of an upper triangular matrix of order 20
            # with entries 100 was 100% off, expm of one of order 6 1e-7 (backend.md)
            if not batch:
                return LUFactors("lapack", upper[0].T, np.arange(n, dtype=np.int32), A.shape)
            if _lapack_stack.available(A.dtype):
                piv = np.broadcast_to(np.arange(1, n + 1, dtype=np.int32), upper.shape[:2])
                return LUFactors("stack", upper, np.ascontiguousarray(piv), A.shape)
            return LUFactors("lapack", [u.T for u in upper],
                             [np.arange(n, dtype=np.int32)] * len(upper), A.shape)
        if not batch:
            lu, piv, info = getrf(A.T)
            if info > 0 and not singular_ok:
                raise LinAlgError(f"{op}: matrix is singular (a zero pivot in its LU "
                                  f"factorization); shape {A.shape}")
            return LUFactors("lapack", lu, piv, A.shape)
        if n and _lapack_stack.available(A.dtype):
            # the whole stack in one C-ordered copy (Aᵀ of each matrix, to Fortran), and
            # one direct LAPACK call per matrix (linalgad._lapack_stack)
            lu = np.array(A.reshape(-1, n, n), order="C", copy=True)
            piv, info = _lapack_stack.getrf(lu)
            if not singular_ok and info.any():
                i = int(np.flatnonzero(info)[0])
                raise LinAlgError(f"{op}: matrix is singular (a zero pivot in its LU "
                                  f"factorization){_where(op, batch, i)}")
            return LUFactors("stack", lu, piv, A.shape)
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
        if F.kind == "stack":
            return _stack_lu_solve(F, b, trans)
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
            flat_b = b.reshape(len(data), n, k)           # (k may be 0: no -1)
            x = np.empty(flat_b.shape, dtype=np.result_type(data[0], b))
            for i, (lu, piv) in enumerate(zip(data, F.piv)):
                x[i], info = getrs(lu, piv, flat_b[i], trans=t)
            x = x.reshape(b.shape[:-2] + (n, k))
        return np.conj(x) if conj else x

    # -- banded -----------------------------------------------------------
    def band_factor(self, ab, lower, upper, hermitian=False, op="solve_banded"):
        """One matrix (or a stack of order >= BAND_STACK_N): LAPACK's O(n·l·(l + u)) band
        factorizations, called directly matrix by matrix (``_lapack_stack``) — gttrf for
        l = u = 1, pbtrf for a Hermitian positive definite band, else gbtrf.  Stacks of
        smaller matrices and orders below 3: the vectorised dense factorizations."""
        n = ab.shape[-1]
        batch = ab.shape[:-2]
        count = math.prod(batch)
        shape = batch + (n, n)
        if n == 0 or count == 0:
            return BandFactors("empty", None, shape, lower, upper, hermitian)
        if (n < 3 or (count > 1 and n < BAND_STACK_N)
                or not _lapack_stack.band_available(ab.dtype)):
            return super().band_factor(ab, lower, upper, hermitian, op)
        flat = ab.reshape((count,) + ab.shape[-2:])
        if hermitian:           # to Fortran: the upper form, (u + 1, n) per matrix
            c = np.array(np.swapaxes(flat[:, :upper + 1, :], 1, 2), order="C")    # a copy
            info = _lapack_stack.pbtrf(c, upper)
            self._band_failure(op, batch, info, "is not positive definite (leading minor "
                                                "of order {} is not positive)")
            return BandFactors("pb", c, shape, lower, upper, True)
        if lower == upper == 1:
            dl, d, du = (np.array(x, order="C") for x in      # copies: factored in place
                         (flat[:, 2, :-1], flat[:, 1], flat[:, 0, 1:]))
            du2, piv, info = _lapack_stack.gttrf(dl, d, du)
            self._band_failure(op, batch, info, "is singular (U[{0}, {0}] = 0 in its LU "
                                                "factorization)", shift=1)
            data = (dl, d, du, du2, piv)
            return BandFactors("gt", data, shape, 1, 1, False, _lapack_stack.addresses(*data))
        work = np.zeros((count, n, 2 * lower + upper + 1), dtype=ab.dtype)
        work[:, :, lower:] = np.swapaxes(flat, 1, 2)      # kl rows of fill-in above
        piv, info = _lapack_stack.gbtrf(work, lower, upper)
        self._band_failure(op, batch, info, "is singular (U[{0}, {0}] = 0 in its LU "
                                            "factorization)", shift=1)
        return BandFactors("gb", (work, piv), shape, lower, upper, False)

    @staticmethod
    def _band_failure(op, batch, info, what, shift=0):
        bad = np.flatnonzero(info)
        if bad.size:
            i = int(bad[0])
            raise LinAlgError(f"{op}: matrix {what.format(int(info[i]) - shift)}"
                              f"{_where(op, batch, i)}")

    def band_solve(self, F, b, trans=0):
        if F.kind == "dense":
            return super().band_solve(F, b, trans)
        if F.kind == "empty":
            return b.copy()
        dtype = F.data[0].dtype if F.kind != "pb" else F.data.dtype
        if b.dtype.kind == "c" and dtype.kind == "f":      # real factors: two real solves
            return (self.band_solve(F, np.ascontiguousarray(b.real), trans)
                    + 1j * self.band_solve(F, np.ascontiguousarray(b.imag), trans))
        n, k = b.shape[-2:]
        # to Fortran: the (n, k) right-hand sides as a C-ordered (B, k, n) stack
        count = math.prod(F.shape[:-2])
        bt = np.array(np.swapaxes(b.reshape((count, n, k)), 1, 2), dtype=dtype, order="C")
        t = "NTC"[_TRANS[trans]]
        if F.kind == "pb":
            # A is Hermitian: op(A) is A (N, C) or conj(A) (T), solved as A conj(x) = conj(b)
            if t == "T" and dtype.kind == "c":
                np.conj(bt, out=bt)
            _lapack_stack.pbtrs(F.data, F.upper, bt)
            if t == "T" and dtype.kind == "c":
                np.conj(bt, out=bt)
        elif F.kind == "gt":
            _lapack_stack.gttrs(*F.data, bt, t, factor_addresses=F.addresses)
        else:
            _lapack_stack.gbtrs(F.data[0], F.lower, F.upper, F.data[1], bt, t)
        return np.swapaxes(bt, 1, 2).reshape(b.shape)

    # -- banded Cholesky (linalgad.rules.banded_cholesky) -----------------
    @staticmethod
    def _band_stack(tb, dtype=None):
        """A stack of lower forms (B, u + 1, n) side by side as ONE lower form (u + 1, B n)
        of the block diagonal matrix, the corners (the couplings between neighbours)
        zeroed: a band routine on it treats the matrices one after the other, in one call."""
        u1, n = tb.shape[-2:]
        count = math.prod(tb.shape[:-2])
        ab = np.empty((u1, count, n), dtype=dtype or tb.dtype)
        ab[...] = tb.reshape(count, u1, n).transpose(1, 0, 2)
        _zero_corners(np, ab.transpose(1, 0, 2), n)          # (a view: zeroed in ab)
        return ab.reshape(u1, count * n)

    def band_cholesky(self, tb, op="cholesky_banded"):
        """LAPACK's pbtrf once, on the whole stack as one block diagonal band matrix
        (``_band_stack``): O(n u²) a matrix, no per-matrix call.  The corners of the result
        are zero."""
        u1, n = tb.shape[-2:]
        batch = tb.shape[:-2]
        count = math.prod(batch)
        if n == 0 or count == 0:
            return np.zeros(tb.shape, dtype=tb.dtype)
        pbtrf = _lapack.get_lapack_funcs("pbtrf", dtype=tb.dtype)
        c, info = pbtrf(self._band_stack(tb), lower=1, overwrite_ab=1)
        if info > 0:
            i, order = divmod(info - 1, n)
            raise LinAlgError(f"{op}: matrix is not positive definite (leading minor of "
                              f"order {order + 1} is not positive){_where(op, batch, i)}")
        if info < 0:                                               # pragma: no cover
            raise ValueError(f"{op}: LAPACK pbtrf: illegal argument {-info}")
        return np.ascontiguousarray(c.reshape(u1, count, n).transpose(1, 0, 2)).reshape(
            tb.shape)

    def band_trsolve(self, lb, b, trans=0, op="cho_solve_banded"):
        """LAPACK's tbtrs once for the stack (``_band_stack``)."""
        u1, n = lb.shape[-2:]
        k = b.shape[-1]
        count = math.prod(lb.shape[:-2])
        if n == 0 or count == 0 or k == 0:
            return np.zeros(b.shape, dtype=np.result_type(lb, b))
        if b.dtype.kind == "c" and lb.dtype.kind == "f":     # real factors: two real solves
            return (self.band_trsolve(lb, np.ascontiguousarray(b.real), trans, op)
                    + 1j * self.band_trsolve(lb, np.ascontiguousarray(b.imag), trans, op))
        dtype = np.result_type(lb, b)
        tbtrs = _lapack.get_lapack_funcs("tbtrs", dtype=dtype)
        t = "NTC"[_TRANS[trans]]
        x, info = tbtrs(self._band_stack(lb, dtype), np.array(b, dtype=dtype).reshape(
            count * n, k), uplo="L", trans=t, diag="N", overwrite_b=1)    # (a copy)
        if info > 0:
            i, j = divmod(info - 1, n)
            raise LinAlgError(f"{op}: the factor is singular (its diagonal entry {j} is "
                              f"zero){_where(op, lb.shape[:-2], i)}")
        return x.reshape(b.shape)

    def congruence_chain(self, K, Q, forward):
        """Blocks of order up to CHAIN_KRONECKER_B: the recurrence written as a unit upper
        (lower, forward=True) triangular band system in the entries of the X[m],
        x[m] − (K[m]ᴴ ⊗ K[m]ᵀ) x[m + 1] = q[m], solved by LAPACK's tbtrs (its 'C' form is
        the forward recurrence) for the whole stack, in chunks of CHAIN_CHUNK numbers of
        band storage; larger blocks: cyclic reduction."""
        b = K.shape[-1]
        M = Q.shape[-3]
        if b > CHAIN_KRONECKER_B or M < 2:
            return super().congruence_chain(K, Q, forward)
        K, Q = np.broadcast_arrays(K, Q)
        dtype = np.result_type(K, Q)
        s = b * b
        count = math.prod(Q.shape[:-3]) * M
        # K[m] by entry, (b, b, count); K[M − 1] of each matrix zeroed (no coupling)
        Ks = np.zeros((b, b, count // M, M), dtype=dtype)
        Kf = K.reshape(count // M, M, b, b)
        Ks[..., :-1] = Kf[:, :-1].transpose(2, 3, 0, 1)
        Ks = Ks.reshape(b, b, count)
        Kc = np.conj(Ks)
        q = np.array(Q, dtype=dtype).reshape(count, s)           # row-major vec of each Q[m]
        kd = 2 * s - 1
        chunk = max(2, CHAIN_CHUNK // (2 * s * s))
        tbtrs = _lapack.get_lapack_funcs("tbtrs", dtype=dtype)
        t = ("C" if dtype.kind == "c" else "T") if forward else "N"
        starts = list(range(0, count, chunk))
        x = np.empty_like(q)
        for c0 in (starts if forward else reversed(starts)):
            c1 = min(c0 + chunk, count)
            rhs = q[c0:c1].copy()
            # the coupling to the chunk solved before, moved to the right-hand side
            if forward and c0 > 0:
                rhs[0] += self._kron_apply(Ks[..., c0 - 1], Kc[..., c0 - 1], x[c0 - 1],
                                           b, adjoint=True)
            if not forward and c1 < count:
                rhs[-1] += self._kron_apply(Ks[..., c1 - 1], Kc[..., c1 - 1], x[c1],
                                            b, adjoint=False)
            nb = c1 - c0
            ab = np.zeros((kd + 1, nb, s), dtype=dtype)
            ab[kd] = 1
            for i in range(b):
                for j in range(b):
                    for k in range(b):
                        for l in range(b):      # noqa: E741
                            # A[(i, j), (k, l)] = conj(K[k, i]) K[l, j], the entry
                            # (m s + p, (m + 1) s + q) of the matrix (a strided copy each:
                            # one view per p with a negative stride was 2-5x slower)
                            p, qq = i * b + j, k * b + l
                            ab[s - 1 + p - qq, 1:, qq] = -(Kc[k, i, c0:c1 - 1]
                                                           * Ks[l, j, c0:c1 - 1])
            xc, info = tbtrs(ab.reshape(kd + 1, nb * s), rhs.reshape(nb * s, 1), uplo="U",
                             trans=t, diag="U", overwrite_b=1)
            x[c0:c1] = xc.reshape(nb, s)
        return x.reshape(Q.shape)

    @staticmethod
    def _kron_apply(Ks, Kc, v, b, adjoint):
        """(Kᴴ ⊗ Kᵀ) v (adjoint: its conjugate transpose K ⊗ conj(K)) for one block K given
        by entry (Ks, Kc = conj(Ks)), v a row-major vec: vec(Kᴴ V K) or vec(K V Kᴴ)."""
        K = Ks.T.T                                              # (b, b)
        V = v.reshape(b, b)
        out = K @ V @ np.conj(K).T if adjoint else np.conj(K).T @ V @ K
        return out.reshape(b * b)

    # -- Cholesky ---------------------------------------------------------
    # -- from LU factors --------------------------------------------------
    def lu_diagonal(self, F):
        """(diag(U) of shape (..., n), sign of the row permutation (...,))."""
        batch = F.shape[:-2]
        n = F.shape[-1]
        if F.kind == "vector":
            d = np.diagonal(F.data, 0, 0, 1)                         # (B, n)
            # the parity of the swaps, row by row (count_nonzero along the strided axis
            # took 72 µs for 10,000 of order 4, this 10)
            odd = np.zeros(F.swaps.shape[1:], dtype=bool)
            for k in range(n):
                odd ^= F.swaps[k] != k
        elif F.kind == "stack":                                      # LAPACK's 1-based piv
            d = np.diagonal(F.data, 0, -2, -1)
            odd = np.count_nonzero(F.piv != np.arange(1, n + 1), axis=-1) % 2
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
            return _vector_inverse(F, 0)
        if F.kind == "stack":       # in the C-ordered stack, getri's (Aᵀ)⁻¹ reads as A⁻¹
            return _lapack_stack.getri(F.data.copy(), F.piv).reshape(F.shape)
        # the factors are of Aᵀ: getri gives A⁻ᵀ (Fortran-ordered), whose .T is A⁻¹ as a
        # C-ordered view
        if not isinstance(F.data, list):
            return _inverse_transposed(F.data, F.piv).T
        out = np.empty((len(F.data), n, n), dtype=F.data[0].dtype)
        for i, (lu, piv) in enumerate(zip(F.data, F.piv)):
            out[i] = _inverse_transposed(lu, piv).T
        return out.reshape(F.shape)

    def lu_inverse_h(self, F, scale):
        """scale · A⁻ᴴ from the factors.  One matrix: the factors are of Aᵀ, so getri
        returns A⁻ᵀ, which is A⁻ᴴ (conjugated), scaled in place with no transpose at all.
        Stacks: the inverse, then one vectorised pass (per-matrix steps cost more there);
        vectorised factors: the solve Aᴴ X = scale·I itself."""
        if F.kind == "vector":
            return _vector_inverse(F, 2, scale)
        if F.kind != "lapack" or isinstance(F.data, list):
            return super().lu_inverse_h(F, scale)
        scale = np.asarray(scale)
        inv_t = _inverse_transposed(F.data, F.piv)
        if inv_t.dtype.kind == "c":
            np.conjugate(inv_t, out=inv_t)
        dtype = np.result_type(inv_t.dtype, scale.dtype)
        return np.multiply(inv_t, scale, out=inv_t if inv_t.dtype == dtype else None)

    def inv(self, A, op="inv"):
        n = A.shape[-1]
        if n == 0:
            return np.empty(A.shape, dtype=A.dtype)
        batch = A.shape[:-2]
        if (not batch or (n <= VECTOR_INV_N and A.size // (n * n) >= VECTOR_INV_BATCH)
                or (n >= STACK_GETRI_N and _lapack_stack.available(A.dtype))
                or _triangular(A, lower=True)):     # NumPy's pivoting: lu_factor's note
            # one matrix: getrf + getri; a large stack of tiny ones: the vectorised LU and
            # its solve with the identity (10,000 4×4: 1.0 ms against NumPy's 2.3); a stack
            # of order >= STACK_GETRI_N: getrf + getri by direct calls
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
        if k == 0:              # nothing to factor (and LAPACK rejects lda = 0)
            piv = np.empty(batch + (0,), dtype=np.intp)
            return np.array(A), np.broadcast_to(np.arange(m), batch + (m,)).copy(), piv
        if batch and m == n and n <= SMALL_N:
            F = _vector_lu_factor(A, op, singular_ok=True)
            lu = np.moveaxis(F.data, -1, 0).reshape(A.shape)
            piv = np.ascontiguousarray(F.swaps.T).reshape(batch + (n,))
        elif not batch:
            # one matrix: LAPACK's Fortran-ordered factor as it is, as SciPy returns it
            # (copying it to C order would cost as much as a quarter of getrf at n = 256)
            lu, piv, info = _lapack_fn("getrf", A.dtype)(A)
            piv = piv[:k].astype(np.intp)
        elif m == n and n and _lapack_stack.available(A.dtype):
            # the stack copied once with each matrix in Fortran order, getrf on each in
            # place; the factors come back as the (Fortran-ordered) view SciPy's are
            work = _fortran_stack(A.reshape(-1, n, n))
            piv1, info = _lapack_stack.getrf(work)
            lu = np.swapaxes(work, -1, -2).reshape(A.shape)
            piv = (piv1 - 1).astype(np.intp).reshape(batch + (n,))
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
        if A.shape[-1] == 0:        # order 0 (LAPACK rejects lda = 0): nothing to solve
            return np.empty(b.shape, dtype=np.result_type(A.dtype, b.dtype))
        if A.ndim == 2 and b.ndim == 2 and A.dtype == b.dtype and A.dtype.kind == "f":
            # the common call (one real matrix, matching dtypes), with nothing to decide
            x, info = _trtrs_one(A, b, lower, 1 if _TRANS[trans] else 0, unit_diagonal)
            if info > 0:
                raise LinAlgError(f"{op}: triangular matrix is singular (diagonal entry "
                                  f"{info - 1} is zero)")
            return x
        trans = _TRANS[trans]
        n, k = b.shape[-2:]
        batch = A.shape[:-2]
        dtype = np.result_type(A.dtype, b.dtype)
        if batch and n <= SMALL_N:
            return _vector_tri_solve(A, b, lower, trans, unit_diagonal, op)
        if batch and _stack_trsm_pays(n, k) and _lapack_stack.trsm_available(dtype):
            return _stack_tri_solve(A, b, lower, trans, unit_diagonal, op)
        if batch and n <= BLOCKED_TRI_N:
            return _blocked_tri_solve(A, b, lower, trans, unit_diagonal, op)
        trtrs = _lapack_fn("trtrs", dtype)
        # pass Aᵀ (a free Fortran-ordered view): its opposite triangle, op mapped
        conj = trans == 2 and dtype.kind == "c"
        t = 1 if trans == 0 else 0
        if conj:
            b = np.conj(b)

        def solve_one(a, rhs, i=0):
            x, info = trtrs(a.T, rhs, lower=not lower, trans=t, unitdiag=unit_diagonal)
            if info > 0:
                raise LinAlgError(f"{op}: triangular matrix is singular (diagonal entry "
                                  f"{info - 1} is zero){_where(op, batch, i)}")
            return x

        if not batch:               # one matrix: LAPACK's own (Fortran-ordered) result
            out = solve_one(A.astype(dtype, copy=False), b)
        else:
            flat_a = A.reshape((-1, n, n)).astype(dtype, copy=False)
            flat_b = b.reshape((flat_a.shape[0], n, k))
            out = np.empty(flat_b.shape, dtype=dtype)
            for i in range(flat_a.shape[0]):
                out[i] = solve_one(flat_a[i], flat_b[i], i)
            out = out.reshape(b.shape)
        return np.conj(out) if conj else out

    def cholesky_cotangent(self, C, C_bar, lower):
        """ComposedKernels.cholesky_cotangent with the work shaped for the CPU: one matrix
        by BLAS trmm (Lᴴ L̄, half a general product's work) and two LAPACK solves; a
        stack of small matrices through one vectorised triangular inverse and batched
        products (the stack's triangular solves would be substitutions)."""
        dtype = np.result_type(C.dtype, C_bar.dtype)
        n = C.shape[-1]
        if C.ndim == 2:
            return self._cholesky_cotangent_one(C.astype(dtype, copy=False),
                                                C_bar.astype(dtype, copy=False), lower)
        if n <= SMALL_N:    # tiny matrices: the vectorised substitutions beat products
            return super().cholesky_cotangent(C, C_bar, lower)
        if n > BLOCKED_TRI_N:
            Cs = C.reshape(-1, n, n).astype(dtype, copy=False)
            Bs = C_bar.reshape(-1, n, n).astype(dtype, copy=False)
            out = np.empty(Cs.shape, dtype=dtype)
            for i in range(Cs.shape[0]):
                out[i] = self._cholesky_cotangent_one(Cs[i], Bs[i], lower)
            return out.reshape(C.shape)
        L, Lb = (C, C_bar) if lower else (_mH(np, C), _mH(np, C_bar))
        S = _chol_sandwich_rhs(np, np.matmul(_mH(np, L), Lb).astype(dtype, copy=False))
        if n >= CHOL_STACK_TRSM_N and _lapack_stack.trsm_available(dtype):
            # L⁻ᴴ S L⁻¹ by two trsm calls per matrix, in place on S: 1000 of order 32
            # 10.2 against 14-16 ms for the vectorised inverse and two batched
            # products (order 16: 16.6 against 12.8 ms, so the inverse stays below)
            T = np.ascontiguousarray(C.reshape((-1, n, n)), dtype=dtype)
            # lower C = L: L⁻ᴴ (S) then (·) L⁻¹; upper C = U = Lᴴ: U⁻¹ (S) then (·) U⁻ᴴ
            # (S is a fresh array: both solves may work in place, on S or on Sᵀ)
            Ah = _stack_trsm(T, S.reshape(T.shape), lower, 2 if lower else 0, False,
                             inplace=True)
            Ah = _stack_trsm(T, Ah, lower, 0 if lower else 2, False, right=True,
                             inplace=True).reshape(C.shape)
            return _fold_triangle(np, Ah, lower, out=Ah)
        Li = _tri_inverse(L.astype(dtype, copy=False))                 # L⁻¹, lower
        Ah = np.matmul(_mH(np, Li), S)
        Ah = np.matmul(Ah, Li, out=S)
        return _fold_triangle(np, Ah, lower, out=Ah)

    def cho_inverse(self, F, full=True):
        """A⁻¹ = L⁻ᴴ L⁻¹ from the factor: LAPACK potri for one matrix (a third of the work
        of solving with the identity; ``full=False`` returns its triangle as potri leaves
        it, the other one unspecified); a stack of small matrices through the vectorised
        triangular inverse and one batched product."""
        c, lower = F.data, F.lower
        n = c.shape[-1]
        if n == 0:
            return np.empty(c.shape, dtype=c.dtype)
        if c.ndim > 2 and n <= SMALL_N:
            return super().cho_inverse(F)
        if c.ndim == 2 and not full:
            inv, info = _lapack_fn("potri", c.dtype)(c, lower=lower)
            if info != 0:
                raise LinAlgError(f"cholesky inverse: LAPACK potri returned {info}")
            return inv
        if c.ndim == 2 or n > BLOCKED_TRI_N:
            potri = _lapack_fn("potri", c.dtype)
            flat = c.reshape(-1, n, n)
            out = np.empty(flat.shape, dtype=c.dtype)
            for i in range(flat.shape[0]):
                inv, info = potri(flat[i], lower=lower)      # A⁻¹ in the factor's triangle
                if info != 0:
                    raise LinAlgError(f"cholesky inverse: LAPACK potri returned {info}")
                if lower:
                    out[i] = np.tril(inv) + _mH(np, np.tril(inv, -1))
                else:
                    out[i] = np.triu(inv) + _mH(np, np.triu(inv, 1))
            return out.reshape(c.shape)
        L = c if lower else _mH(np, c)
        Li = _tri_inverse(L)
        return np.matmul(_mH(np, Li), Li)

    def lu_cotangent(self, lu, lu_bar, perm):
        """One square matrix: M̄ = L⁻ᴴ [tril(Lᴴ L̄, −1) + triu(Ū Uᴴ)] U⁻ᴴ with BLAS on the
        packed factor (trmm with the unit lower triangle and with the upper one, two
        trsm: 4n³ flops where general products take 6n³), then Ā[perm] = M̄."""
        n = lu.shape[-1]
        if lu.shape[-2] != n:
            return None
        if lu.ndim > 2:
            return self._lu_cotangent_stack(lu, lu_bar, perm) if n <= BLOCKED_TRI_N else None
        dtype = np.result_type(lu.dtype, lu_bar.dtype)
        if not np.diagonal(lu).all():
            return None          # singular U: the composed form's solves raise, naming it
        a = np.asfortranarray(lu, dtype=dtype)
        trmm, trsm = _blas_fn("trmm", dtype), _blas_fn("trsm", dtype)
        below, upper = _tri_weights(n, True, 1.0, 0.0), _tri_weights(n, False, 1.0, 1.0)
        if dtype.kind == "f":
            # transposed, so that every elementwise step runs on C-ordered arrays (NumPy's
            # mixed-order ones are several times slower) and BLAS sees free Fortran views:
            # X̄ᵀ = (L̄ᵀ L)∘· + (U Ūᵀ)∘·,  M̄ᵀ = U⁻¹ X̄ᵀ L⁻¹
            g = np.ascontiguousarray(lu_bar, dtype=dtype)
            R = trmm(1.0, a, _weighted(np, g, below).T, side=1, lower=1, diag=1,
                     overwrite_b=1)                                        # (Lᵀ L̄)ᵀ
            X = R.T
            _weighted(np, X, below, out=X)                                 # tril(·, −1)
            S = trmm(1.0, a, _weighted(np, g, upper).T, side=0, lower=0,
                     overwrite_b=1).T                                      # Ū Uᵀ
            X += _weighted(np, S, upper, out=S)                            # + triu(·)
            R = trsm(1.0, a, R, side=0, lower=0, overwrite_b=1)            # U⁻¹ X̄ᵀ
            R = trsm(1.0, a, R, side=1, lower=1, diag=1, overwrite_b=1)    # · L⁻¹ = M̄ᵀ
            out = np.empty((n, n), dtype=dtype)
            out[perm] = R.T
            return out
        g = lu_bar.astype(dtype, copy=False)
        # complex: Lᴴ and Uᴴ need conjugate transposes, which only the untransposed
        # operands give BLAS for free; every operand is made in Fortran order and
        # overwritten in place
        X = trmm(1.0, a, _weighted(np, g, below, order="F"), side=0, lower=1, trans_a=2,
                 diag=1, overwrite_b=1)                                    # Lᴴ L̄
        _weighted(np, X, below, out=X)                                     # tril(·, −1)
        Y = trmm(1.0, a, _weighted(np, g, upper, order="F"), side=1, lower=0, trans_a=2,
                 overwrite_b=1)                                            # Ū Uᴴ
        X += _weighted(np, Y, upper, out=Y)                                # + triu(·)
        X = trsm(1.0, a, X, side=0, lower=1, trans_a=2, diag=1, overwrite_b=1)   # L⁻ᴴ ·
        X = trsm(1.0, a, X, side=1, lower=0, trans_a=2, overwrite_b=1)           # · U⁻ᴴ
        out = np.empty((n, n), dtype=dtype)
        out[perm] = X
        return out

    def _lu_cotangent_stack(self, lu, lu_bar, perm):
        """A stack of square factors (n <= BLOCKED_TRI_N): the same map with every step
        batched — X̄ = tril(Lᴴ L̄, −1) + triu(Ū Uᴴ) as one split product, the two
        triangular solves of the stack table (substitution, or blocks), one scatter of
        the rows — instead of some twenty recorded operations over the whole stack."""
        from .ops import _split_product, _tri_mask
        n = lu.shape[-1]
        if not np.diagonal(lu, 0, -2, -1).all():
            return None          # singular U: the composed form's solves raise, naming it
        dtype = np.result_type(lu.dtype, lu_bar.dtype)
        lu = lu.astype(dtype, copy=False)
        strict, upper = _tri_mask(n, n, -1, True), _tri_mask(n, n, 0, False)
        L = np.where(strict, lu, np.eye(n, dtype=dtype))               # unit lower
        U = np.where(upper, lu, np.zeros((), dtype=dtype))
        g = lu_bar.astype(dtype, copy=False)
        Lb = np.where(strict, g, np.zeros((), dtype=dtype))
        Ub = np.where(upper, g, np.zeros((), dtype=dtype))
        X = _split_product((_mH(np, L), Lb), (Ub, _mH(np, U)), 0)
        Y = self.solve_triangular(lu, X, lower=True, trans=2, unit_diagonal=True,
                                  op="lu_factor")                       # L⁻ᴴ X̄
        B = Y.size // (n * n)                                           # Ā[perm] = M̄
        rows = (np.broadcast_to(perm, Y.shape[:-1]).reshape(B, n)        # (rows of a 2-D
                + n * np.arange(B)[:, None]).reshape(-1)                # view)
        if _stack_trsm_pays(n, n) and _lapack_stack.trsm_available(dtype):
            # M̄ = Y U⁻ᴴ acts on rows, so Ā = (Pᵀ Y) U⁻ᴴ: the row scatter first (a fresh
            # array), then one trsm per matrix from the right on it, in place
            Z = _scatter_rows(Y.reshape(B * n, n), rows).reshape(Y.shape)
            return _stack_tri_solve_right(lu, Z, False, 2)
        M = _mH(np, self.solve_triangular(lu, _mH(np, Y), lower=False, op="lu_factor"))
        return _scatter_rows(M.reshape(B * n, n), rows).reshape(M.shape)

    def qr_cotangent(self, Q, R, Q_bar, R_bar):
        """One matrix: Ā = (Q̄ + Q copyltu(M)) R⁻ᴴ, M = R R̄ᴴ − Q̄ᴴ Q, with BLAS — trmm for
        R R̄ᴴ, gemm accumulating −Q̄ᴴ Q and Q̄ + Q (·) in place, one trsm from the right.
        A stack: batched products, copyltu in one select, and one trsm per matrix from
        the right on the product's own array (_qr_cotangent_stack)."""
        if Q.ndim != 2:
            return self._qr_cotangent_stack(Q, R, Q_bar, R_bar)
        if not np.diagonal(R).all():
            return None          # rank-deficient: the composed form's solve raises, naming it
        n = R.shape[-1]
        dtype = np.result_type(*(x.dtype for x in (Q, R, Q_bar, R_bar) if x is not None))
        t = 2 if dtype.kind == "c" else 1
        gemm, trmm, trsm = (_blas_fn(f, dtype) for f in ("gemm", "trmm", "trsm"))
        # Fortran operands (SciPy's factors are) so that f2py copies nothing; B starts as
        # Q̄'s one copy, read by the first product before the second overwrites it
        Rf = np.asfortranarray(R, dtype=dtype)
        Qf = np.asfortranarray(Q, dtype=dtype)
        if R_bar is not None:
            M = trmm(1.0, Rf, np.array(_mH(np, R_bar), dtype=dtype, order="F"), side=0,
                     lower=0, overwrite_b=1)                                  # R R̄ᴴ
        else:
            M = np.zeros((n, n), dtype=dtype, order="F")
        if Q_bar is not None:
            B = np.array(Q_bar, dtype=dtype, order="F")
            M = gemm(-1.0, B, Qf, beta=1.0, c=M, trans_a=t, overwrite_c=1)   # − Q̄ᴴ Q
        else:
            B = np.zeros(Q.shape, dtype=dtype, order="F")
        # Q copyltu(M): copyltu(M) is the Hermitian matrix whose lower triangle is M's with
        # a real diagonal — exactly what symm/hemm read from M (the rest is never touched)
        hemm = _blas_fn("hemm" if dtype.kind == "c" else "symm", dtype)
        B = hemm(1.0, M, Qf, beta=1.0, c=B, side=1, lower=1, overwrite_c=1)  # Q̄ + Q copyltu(M)
        return trsm(1.0, Rf, B, side=1, lower=0, trans_a=t, overwrite_b=1)   # · R⁻ᴴ

    def cho_solve_cotangent(self, c, x_bar, x, y, lower, need_c=True):
        """One small real matrix: u = L⁻¹ x̄ and b̄ = L⁻ᵀ u by _trtrs_one (the one-matrix
        triangular solve),
        c̄ = −tril(b̄ yᵀ + x uᵀ) as one gemm of the joined columns with α = −1 and one
        weighting (U: u = U⁻ᵀ x̄, b̄ = U⁻¹ u, c̄ = −triu(y b̄ᵀ + u xᵀ)).  The composed form's
        ops cost their dispatch on top: n = 64 with 8 right-hand sides, 25.7 against
        17.1 µs.  Where _fused_one_matrix declines, or c is singular (the composed form
        raises): None."""
        if not _fused_one_matrix(c, x_bar, x, y):
            return None
        first, second = (0, 1) if lower else (1, 0)
        u, info = _trtrs_one(c, x_bar, lower, first)
        if info == 0:
            b_bar, info = _trtrs_one(c, u, lower, second)
        if info != 0:
            return None                # a zero on the diagonal: the composed form raises
        if not need_c:
            return None, b_bar
        left, right = (b_bar, x), (y, u)
        if not lower:
            left, right = right, left
        G = _blas_fn("gemm", c.dtype)(-1.0, np.hstack(left), np.hstack(right), trans_b=1)
        return _weighted(np, G, _tri_weights(c.shape[-1], lower, 1.0, 1.0), out=G), b_bar

    def eig_cotangent(self, w, V, w_bar, V_bar, tol, real):
        """One matrix of order 2..EIG_ONE_MATRIX_N - 1: NumPy and one LAPACK gesv
        (_eig_cotangent_one).  Stacks of at least EIG_VECTOR_BATCH matrices of order
        2..EIG_VECTOR_N: every step one NumPy operation over a block of the stack laid
        out batch-last (_eig_cotangent_batch_last).  NumPy's batched products and solve of complex 4×4
        matrices cost about 230 and 510 ns a matrix, mostly dispatch (see the
        constants for the measured gain)."""
        n = V.shape[-1]
        if type(V) is not np.ndarray or V.dtype.kind != "c" or n < 2:
            return None
        dtype = np.result_type(V.dtype, *(x.dtype for x in (w_bar, V_bar) if x is not None))
        if V.ndim == 2:
            done = _eig_cotangent_one(w, V, w_bar, V_bar, tol, real, dtype) \
                if n < EIG_ONE_MATRIX_N else None
            return None if done is None or done[0] is None else done     # singular V
        if not (n <= EIG_VECTOR_N and V.size // (n * n) >= EIG_VECTOR_BATCH):
            return None
        batch = V.shape[:-2]
        B = V.size // (n * n)
        flat = [None if x is None else x.reshape((B,) + x.shape[len(batch):])
                for x in (w, V, w_bar, V_bar)]
        out = np.empty((B, n, n), dtype=np.finfo(dtype).dtype if real else dtype)
        kd = scale = None
        if V_bar is not None:
            kd, scale = np.empty((B, n), dtype), np.empty(B, np.finfo(dtype).dtype)
        for c in range(0, B, EIG_VECTOR_BLOCK):
            part = slice(c, c + EIG_VECTOR_BLOCK)
            done = _eig_cotangent_batch_last(
                *(None if x is None else x[part] for x in flat), tol, dtype, real)
            if done is None:
                return None                     # a near pair or a singular V: composed
            X, kd_b, scale_b = done
            m = X.shape[-1]
            np.copyto(out[part].reshape(m, n * n), X.reshape(n * n, m).T)
            if kd is not None:
                np.copyto(kd[part], kd_b.T)
                scale[part] = scale_b
        return (out.reshape(V.shape), None if kd is None else kd.reshape(batch + (n,)),
                None if scale is None else scale.reshape(batch))

    def lu_solve_cotangent(self, lu, perm, x_bar, x, y, need_lu=True):
        """One small real matrix: u = U⁻ᵀ x̄, v = L⁻ᵀ u by _trtrs_one,
        b̄ = Pᵀ v, and lū = −tril(v yᵀ, −1) − triu(u xᵀ) as two gemm with α = −1 joined
        by weights (lu.md).  n = 64 with 8 right-hand sides: 34 against 20 µs.  Where
        _fused_one_matrix declines, or U is singular (the composed form raises): None."""
        if not _fused_one_matrix(lu, x_bar, x, y):
            return None
        n = lu.shape[-1]
        u, info = _trtrs_one(lu, x_bar, False, 1)
        if info == 0:
            v, info = _trtrs_one(lu, u, True, 1, True)
        if info != 0:
            return None                # a zero on the diagonal: the composed form raises
        b_bar = np.take(v, np.argsort(perm), axis=0)
        if not need_lu:
            return None, b_bar
        gemm = _blas_fn("gemm", lu.dtype)
        G = gemm(-1.0, u, x, trans_b=1)                                  # −u xᵀ
        _weighted(np, G, _tri_weights(n, False, 1.0, 1.0), out=G)       # triu
        H = gemm(-1.0, v, y, trans_b=1)                                  # −v yᵀ
        G += _weighted(np, H, _tri_weights(n, True, 1.0, 0.0), out=H)   # + tril(·, −1)
        return G, b_bar

    def _qr_cotangent_stack(self, Q, R, Q_bar, R_bar):
        """The stack form of qr_cotangent where direct trsm calls pay (else None: the
        composed form).  Ā = (Q̄ + Q copyltu(M)) R⁻ᴴ, every step over the whole stack
        but the last, which solves X Rᴴ = B in place matrix by matrix (no transposes)."""
        m, n = Q.shape[-2:]
        dtype = np.result_type(*(x.dtype for x in (Q, R, Q_bar, R_bar) if x is not None))
        if (not _stack_trsm_pays(n, m) or not _lapack_stack.trsm_available(dtype)
                or not np.diagonal(R, 0, -2, -1).all()):
            return None       # (a zero on R's diagonal: the composed form raises, naming it)
        M = None
        if R_bar is not None:
            M = np.matmul(R, _mH(np, R_bar))                                   # R R̄ᴴ
        if Q_bar is not None:
            t = np.matmul(_mH(np, Q_bar), Q)
            M = np.negative(t, out=t) if M is None else np.subtract(M, t, out=t)
        # copyltu(M) = tril(M, −1) + tril(M, −1)ᴴ + Re diag(M): the Hermitian matrix read
        # from M's lower triangle
        B = np.matmul(Q, full_from_triangle(np, M, True)).astype(dtype, copy=False)
        if Q_bar is not None:
            B += Q_bar
        return _stack_tri_solve_right(R, np.ascontiguousarray(B), False, 2)   # B R⁻ᴴ

    def _cholesky_cotangent_one(self, C, C_bar, lower):
        dtype = C.dtype
        # X = Lᴴ L̄: lower, L = C, trmm with op(C) = Cᴴ; upper, Lᴴ L̄ = C C̄ᴴ, op = none
        trmm = _blas_fn("trmm", dtype)
        if dtype.kind == "f":       # the factor as its free Fortran view Cᵀ (no copy)
            X = (trmm(1.0, C.T, C_bar, side=0, lower=0, trans_a=0) if lower      # Lᵀ L̄
                 else trmm(1.0, C.T, C_bar.T, side=0, lower=1, trans_a=1))       # U C̄ᵀ
        elif lower:
            X = trmm(1.0, C, C_bar, side=0, lower=1, trans_a=2)
        else:
            X = trmm(1.0, C, _mH(np, C_bar), side=0, lower=0, trans_a=0)
        S = _chol_sandwich_rhs(np, X)
        if C.shape[-1] >= SANDWICH_GST_N:
            # L⁻ᴴ S L⁻¹ by LAPACK sygst/hegst (half the work of two solves: S and the
            # result are Hermitian).  It computes inv(Uᴴ) S inv(U) for an upper U, or
            # inv(L) S inv(Lᴴ) for a lower L; reversing rows and columns (J·J) turns
            # our factor into the other triangle and the product into the one we need.
            gst = _lapack_fn("hegst" if dtype.kind == "c" else "sygst", dtype)
            R, info = gst(S[::-1, ::-1], C[::-1, ::-1], itype=1, lower=0 if lower else 1)
            if info != 0:
                raise LinAlgError(f"cholesky: LAPACK sygst/hegst returned {info}")
            return _fold_triangle(np, R[::-1, ::-1], lower)
        if dtype.kind == "f":
            # real: two BLAS trsm on the free Fortran view Cᵀ, the second from the right,
            # S passed as Sᵀ (= S): no copies, no transposes (44 → 36 µs at n = 64)
            trsm = _blas_fn("trsm", dtype)
            if lower:           # Z = L⁻ᵀ S (Cᵀ = Lᵀ upper), Ā_h = Z L⁻¹
                Z = trsm(1.0, C.T, S.T, side=0, lower=0, trans_a=0)
                Ah = trsm(1.0, C.T, Z, side=1, lower=0, trans_a=1, overwrite_b=1)
            else:               # Z = U⁻¹ S (Cᵀ = Uᵀ lower), Ā_h = Z U⁻ᵀ
                Z = trsm(1.0, C.T, S.T, side=0, lower=1, trans_a=1)
                Ah = trsm(1.0, C.T, Z, side=1, lower=1, trans_a=0, overwrite_b=1)
            return _fold_triangle(np, Ah, lower, out=Ah)
        t = 2 if lower else 0
        Z = self.solve_triangular(C, S, lower=lower, trans=t, op="cholesky")        # L⁻ᴴ S
        Ah = self.solve_triangular(C, _mH(np, Z), lower=lower, trans=t, op="cholesky")
        return _fold_triangle(np, Ah, lower)

    # -- Cholesky as a result --------------------------------------------------
    def cholesky(self, A, lower=True, op="cholesky"):
        """The Cholesky factor read from one triangle of A; zeros in the other."""
        if A.shape[:-2]:
            try:
                return np.linalg.cholesky(A, upper=not lower)
            except LinAlgError:
                _first_failure(lambda a: np.linalg.cholesky(a, upper=not lower), A, op,
                               "matrix is not positive definite",
                               detail=lambda a: _minor_order(a, lower))
        potrf = _lapack_fn("potrf", A.dtype)
        # Aᵀ is a free Fortran view; for Hermitian A, its opposite factor is ours, transposed
        c, info = potrf(A.T, lower=not lower, clean=1)
        if info > 0:
            raise LinAlgError(f"{op}: matrix is not positive definite (leading minor of "
                              f"order {info} is not positive)")
        if info < 0:
            raise LinAlgError(f"{op}: LAPACK potrf rejected argument {-info}")
        return c.T

    def eigh_cotangent(self, w, V, w_bar, V_bar, lower):
        if (V_bar is None and V.ndim == 2 and V.shape[-1] >= SYRK_N and V.dtype.kind == "f"
                and w_bar.dtype.kind == "f"):
            return _eigenvalue_cotangent_syrk(V, w_bar.astype(V.dtype, copy=False), lower)
        if (V_bar is not None and V.ndim == 2 and V.shape[-1] >= TRIANGLE_PRODUCT_N
                and V.dtype.kind == "f" and V_bar.dtype == V.dtype
                and (w_bar is None or w_bar.dtype == V.dtype)):
            # the fold reads one triangle of the symmetric Ā_h = V sym(M) Vᵀ (the
            # antisymmetric part of M does not count): its last product by row blocks
            M = _eigh_core(np, w, V, w_bar, V_bar)
            S = M + M.T
            S *= 0.5
            X = _triangle_product(V @ S, V.T, lower)
            return _fold_triangle(np, X, lower, out=X)
        return super().eigh_cotangent(w, V, w_bar, V_bar, lower)

    def svd_cotangent(self, U, s, Vh, U_bar, s_bar, Vh_bar):
        return _by_blocks(super().svd_cotangent, U, s, Vh, U_bar, s_bar, Vh_bar)

    def hermitian_frechet(self, w, V, f, df, E, tol):
        if V.dtype.kind == "c" or E.dtype.kind == "c":
            return _by_blocks(super().hermitian_frechet, w, V, f, df, E, tol)
        return super().hermitian_frechet(w, V, f, df, E, tol)

    def svd_frechet(self, U, s, Vh, f, df, E, tol, zero_tol):
        return _by_blocks(super().svd_frechet, U, s, Vh, f, df, E, tol, zero_tol)

    # -- QR, SVD ----------------------------------------------------------------
    def qr(self, A, complete=False):
        if A.ndim == 2 and A.size and A.dtype.char in "fdFD":
            return _lapack_qr(A, complete)
        return np.linalg.qr(A, mode="complete" if complete else "reduced")

    def qr_r(self, A):
        """R alone (..., k, n) of the reduced QR (LAPACK geqrf, Q never formed)."""
        return np.linalg.qr(A, mode="r")

    def qr_pivoted(self, A, complete=False):
        """(Q, R, P) with A[..., :, P] = Q R, LAPACK geqp3 per matrix (P: int32, (..., n))."""
        from scipy.linalg import qr
        mode = "full" if complete else "economic"
        if A.ndim == 2:
            return qr(A, mode=mode, pivoting=True, check_finite=False)
        flat = A.reshape((-1,) + A.shape[-2:])
        qs, rs, ps = zip(*(qr(a, mode=mode, pivoting=True, check_finite=False)
                           for a in flat))
        batch = A.shape[:-2]
        return tuple(np.stack(x).reshape(batch + x[0].shape) for x in (qs, rs, ps))

    def svd(self, A, full_matrices=True, compute_uv=True, op="svd"):
        if _jacobi_stack(A, JACOBI_SVD_MIN_BATCH if compute_uv else JACOBI_SVDVALS_MIN_BATCH):
            return _jacobi_svd(A, vectors=compute_uv)
        if A.ndim == 2 and min(A.shape) >= SCIPY_SVD_N:
            from scipy.linalg import svd
            return _named(lambda a: svd(a, full_matrices=full_matrices, compute_uv=compute_uv,
                                        check_finite=False, lapack_driver="gesdd"),
                          A, op, "SVD did not converge")
        return _named(lambda a: np.linalg.svd(a, full_matrices=full_matrices,
                                              compute_uv=compute_uv),
                      A, op, "SVD did not converge")

    def svd_extreme(self, A, ends, tol):
        """Matrices of order >= EXTREME_SVD_N: the bidiagonal reduction, the values and
        the chosen singular vectors only (``linalgad._lapack_extreme``: about the cost
        of the values, half the thin SVD's); stacks of smaller ones: the values and
        inverse iteration (``_svd_extreme_stack``); the thin SVD where neither answers."""
        m, n = A.shape[-2:]
        top, bottom = "top" in ends, "bottom" in ends
        if min(m, n) < EXTREME_SVD_N:
            if (min(m, n) >= (EXTREME_STACK_BOTTOM_N if bottom else EXTREME_STACK_N)
                    and A.size // (m * n) >= EXTREME_STACK_BATCH
                    and (not bottom or m == n and A.dtype.kind == "f")
                    and _lapack_stack.available(A.dtype)):
                return self._svd_extreme_stack(A, ends, tol)
            return super().svd_extreme(A, ends, tol)
        if not _lapack_extreme.available(A.dtype):
            return super().svd_extreme(A, ends, tol)
        flat = A.reshape((-1, m, n))
        found = []
        for a in flat:
            r = _lapack_extreme.extreme(a, top, bottom, tol)
            if r is None:
                return super().svd_extreme(A, ends, tol)
            found.append(r)
        batch = A.shape[:-2]
        values, Ms = [], []
        for end in ends:
            j = 1 if end == "top" else 2
            values.append(np.array([r[0][0 if end == "top" else -1] for r in found])
                          .reshape(batch))
            Ms.append(np.stack([r[j] for r in found]).reshape(A.shape))
        return tuple(values), tuple(Ms)

    def _svd_extreme_stack(self, A, ends, tol):
        """A stack of small matrices: the values, then inverse iteration for the ends'
        pairs (``_lapack_extreme.extreme_stack``); the thin SVD for the matrices it
        declines (a tie at an end, s_min near 0, a residual above the SVD's)."""
        m, n = A.shape[-2:]
        batch = A.shape[:-2]
        flat = np.ascontiguousarray(A.reshape((-1, m, n)))
        s = self.svd(flat, compute_uv=False, op="svd")
        Mt, Mb, ok = _lapack_extreme.extreme_stack(flat, s, "top" in ends, "bottom" in ends,
                                                   tol)
        Ms = {"top": Mt, "bottom": Mb}
        if not ok.all():
            bad = np.flatnonzero(~ok)
            _, again = super().svd_extreme(flat[bad], ends, tol)
            for end, M in zip(ends, again):
                Ms[end][bad] = M
        values = tuple(s[:, 0 if end == "top" else -1].reshape(batch) for end in ends)
        return values, tuple(Ms[end].reshape(A.shape) for end in ends)

    def eigh(self, A, lower=True, op="eigh"):
        if _jacobi_stack(A, JACOBI_MIN_BATCH):
            return _jacobi_eigh(A, lower)
        if A.ndim == 2 and A.shape[-1] >= SCIPY_EIGH_N:
            from scipy.linalg import eigh
            return _named(lambda a: eigh(a, lower=lower, driver="evd", check_finite=False),
                          A, op, "eigenvalues did not converge")
        return _named(lambda a: np.linalg.eigh(a, UPLO="L" if lower else "U"), A, op,
                      "eigenvalues did not converge")

    subset_driver = True

    def eig_banded(self, ab, select_range=None, op="eig_banded", few=False):
        """SciPy's eig_banded matrix by matrix: LAPACK's band reduction to tridiagonal form
        and divide and conquer (sbevd / hbevd), or for the pairs lo..hi bisection and
        inverse iteration (sbevx / hbevx); ``few``: the values by bisection and the vectors
        by inverse iteration on the band (``_band_inverse_iteration``)."""
        from scipy.linalg import eig_banded
        n = ab.shape[-1]
        if select_range is None and ab.shape[-2] - 1 > EIG_BANDED_DENSE_U:
            return super().eig_banded(ab, op=op)
        k = n if select_range is None else select_range[1] - select_range[0] + 1
        rdtype = np.finfo(ab.dtype).dtype
        if ab.size == 0 or n == 0:
            return (np.zeros(ab.shape[:-2] + (k,), rdtype),
                    np.zeros(ab.shape[:-2] + (n, k), ab.dtype))
        flat = ab.reshape((-1,) + ab.shape[-2:])
        w = np.empty((len(flat), k), dtype=rdtype)
        V = np.empty((len(flat), n, k), dtype=ab.dtype)
        for i, a in enumerate(flat):
            try:
                pairs = None
                if select_range is not None and few:
                    pairs = _band_inverse_iteration(a, select_range)
                if pairs is None:
                    pairs = eig_banded(a, check_finite=False) if select_range is None else \
                        eig_banded(a, check_finite=False, select="i", select_range=select_range)
                w[i], V[i] = pairs
            except LinAlgError as err:
                raise LinAlgError(f"{op}: {err}{_where(op, ab.shape[:-2], i)}") from None
        return w.reshape(ab.shape[:-2] + (k,)), V.reshape(ab.shape[:-2] + (n, k))

    def eigh_tridiagonal(self, d, e, select_range=None, op="eigh_tridiagonal"):
        """SciPy's calls matrix by matrix: every pair by LAPACK's divide and conquer on the
        tridiagonal (stevd: 0.30 s at n = 2000, where the assembled matrix's syevd takes
        1.06 s), or the pairs lo..hi by bisection and inverse iteration (stebz, stein: O(n k)
        memory and, for few pairs, O(n k) work)."""
        from scipy.linalg import eigh_tridiagonal
        n = d.shape[-1]
        k = n if select_range is None else select_range[1] - select_range[0] + 1
        if d.size == 0:
            return np.zeros(d.shape[:-1] + (k,), d.dtype), np.zeros(d.shape + (k,), d.dtype)
        select = "a" if select_range is None else "i"
        flat_d = d.reshape(-1, n)
        flat_e = e.reshape(len(flat_d), n - 1)          # (n − 1 may be 0: no −1)
        w = np.empty((len(flat_d), k), dtype=d.dtype)
        V = np.empty((len(flat_d), n, k), dtype=d.dtype)
        for i in range(len(flat_d)):
            try:
                w[i], V[i] = eigh_tridiagonal(flat_d[i], flat_e[i], select=select,
                                              select_range=select_range, check_finite=False)
            except LinAlgError:
                raise LinAlgError(f"{op}: eigenvalues did not converge"
                                  f"{_where(op, d.shape[:-1], i)}") from None
        return w.reshape(d.shape[:-1] + (k,)), V.reshape(d.shape + (k,))

    def eigh_subset(self, A, lower, first, last, op="eigh"):
        """LAPACK's syevr/heevr with an index range, matrix by matrix: the tridiagonal
        reduction, then only the wanted eigenvalues (bisection) and vectors (MRRR) and
        their back-transformation — about half of syevd's time for a few pairs (n = 1000:
        57-65 against 139 ms for up to 20 pairs; 2000: 0.53 against 1.06 s)."""
        from scipy.linalg import eigh
        n = A.shape[-1]
        k = last - first + 1
        flat = A.reshape((-1, n, n))
        w = np.empty((len(flat), k), dtype=np.finfo(A.dtype).dtype)
        V = np.empty((len(flat), n, k), dtype=A.dtype)
        for i, a in enumerate(flat):
            try:
                w[i], V[i] = eigh(a, lower=lower, subset_by_index=(first, last),
                                  driver="evr", check_finite=False)
            except LinAlgError:
                raise LinAlgError(f"{op}: eigenvalues did not converge"
                                  f"{_where(op, A.shape[:-2], i)}") from None
        return w.reshape(A.shape[:-2] + (k,)), V.reshape(A.shape[:-2] + (n, k))

    def eigvalsh(self, A, lower=True, op="eigvalsh"):
        if _jacobi_stack(A, JACOBI_VALUES_MIN_BATCH):
            return _jacobi_eigh(A, lower, vectors=False)
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

    # -- lstsq family (linalgad/rules/lstsq.py) ----------------------------------------
    def lstsq_qr(self, M):
        """QR of a tall stack M (..., m, n), m >= n, for least squares: (F, R).

        F is opaque (read by :meth:`lstsq_qr_apply`); R (..., n, n) is upper
        triangular.  One matrix: LAPACK geqrf, Q kept as Householder
        reflectors (Q is never formed; applied by ormqr/unmqr).  A stack:
        NumPy's stacked QR with Q formed (no per-matrix Python loop).
        """
        m, n = M.shape[-2:]
        if M.shape[:-2]:
            Q, R = np.linalg.qr(M, mode="reduced")
            return ("explicit", Q), R
        geqrf = _lapack_fn("geqrf", M.dtype)
        h, tau, work, info = geqrf(M, lwork=max(1, 64 * n))
        from .ops import _tri_mask
        R = np.where(_tri_mask(n, n, 0, False), h[:n], 0)   # np.triu: 3.7 µs at n = 16
        return ("householder", h, tau), R

    def lstsq_qr_r(self, M, b):
        """(R, Qᴴ b) of a tall stack M = Q R (same stack as b), Q never formed.

        One stacked QR of the augmented [M b] in mode 'r': its leading n×n
        block is R and the next k columns' top n rows are Qᴴ b.
        """
        n = M.shape[-1]
        Raug = np.linalg.qr(np.concatenate([M, b.astype(M.dtype, copy=False)], axis=-1),
                            mode="r")
        return Raug[..., :n, :n], Raug[..., :n, n:]        # NumPy's mode 'r' is triu already

    def upper_inverse(self, R):
        """LAPACK trtri (one matrix) or the vectorised halving inverse of the stack's
        transposes, (R⁻¹)ᵀ (non-finite where R is singular)."""
        if R.ndim == 2:
            Ri, info = _lapack_fn("trtri", R.dtype)(R, lower=0)
            return None if info != 0 else Ri
        return _tri_inverse(np.swapaxes(R, -1, -2))

    def lstsq_svdvals_small(self, R, max_cond=None):
        """Singular values of a stack of small triangular R from eigvalsh(Rᴴ R), or None.

        Accurate to about cond(R)²·eps relative (the SVD: cond(R)·eps), so
        used only when every matrix has cond(R) <= max_cond (32 in double,
        8 in single precision: at most ~1e3·eps, resp. ~64·eps), checked on
        the result; None otherwise (the caller then takes the SVD of R).
        Half the cost of the stacked gesdd for n <= 64.
        """
        if max_cond is None:
            max_cond = 32.0 if np.finfo(R.dtype).eps < 1e-10 else 8.0
        RH = np.swapaxes(R, -1, -2)
        if R.dtype.kind == "c":
            RH = np.conj(RH)
        lam = np.linalg.eigvalsh(RH @ R)[..., ::-1]
        top = lam[..., :1]
        if not bool(np.all(lam[..., -1:] * max_cond ** 2 >= top)) or not bool(np.all(top > 0)):
            return None
        return np.sqrt(lam)

    def lstsq_qr_apply(self, F, y, adjoint):
        """Qᴴ y (adjoint; y (..., m, k) -> (..., n, k)) or Q y ((..., n, k) -> (..., m, k))."""
        if F[0] == "explicit":
            Q = F[1]
            if adjoint:
                return np.matmul(np.conj(np.swapaxes(Q, -1, -2)) if Q.dtype.kind == "c"
                                 else np.swapaxes(Q, -1, -2), y)
            return np.matmul(Q, y)
        _, h, tau = F
        m, n = h.shape
        fn = _lapack_fn("unmqr" if h.dtype.kind == "c" else "ormqr", h.dtype)
        batch = y.shape[:-2]
        k = y.shape[-1]
        # a stack of right-hand sides against one matrix: fold the stack into columns
        cols = np.moveaxis(y, -2, 0).reshape(y.shape[-2], -1) if batch else y
        kk = cols.shape[1]
        if adjoint:
            c = np.array(cols, dtype=h.dtype, order="F")
            out = fn("L", "C" if h.dtype.kind == "c" else "T", h, tau, c,
                     max(1, 64 * kk), overwrite_c=1)[0][:n]
        else:
            c = np.zeros((m, kk), dtype=h.dtype, order="F")
            c[:n] = cols
            out = fn("L", "N", h, tau, c, max(1, 64 * kk), overwrite_c=1)[0]
        if batch:
            out = np.moveaxis(out.reshape((out.shape[0],) + batch + (k,)), 0, -2)
        return out

    # -- matfuncs family (linalgad/rules/matfuncs.py) ----------------------------------------
    # expm and its Fréchet derivative: ComposedKernels.expm_staged / expm_frechet_staged.
    # SciPy 1.17 batches sqrtm and logm by a loop over the stack.  Results come back in the
    # input's dtype (SciPy returns float64/complex128 for float32 sqrtm and logm).  logm's
    # factors are an upper *triangular* Schur form (T, Z): real when A is real with a real
    # spectrum, complex otherwise.

    @staticmethod
    def _frechet_block(xp, A, E):
        """The block [[A, sE], [0, A]] and the scale s (‖sE‖₁ = ‖A‖₁ per matrix: accuracy)."""
        n = A.shape[-1]
        na = xp.abs(A).sum(axis=-2).max(axis=-1)
        ne = xp.abs(E).sum(axis=-2).max(axis=-1)
        s = xp.where(ne > 0, xp.where(na > 0, na, 1) / xp.where(ne > 0, ne, 1), 1)
        dtype = np.result_type(A.dtype, E.dtype)
        X = xp.zeros(A.shape[:-2] + (2 * n, 2 * n), dtype=dtype)
        X[..., :n, :n] = A
        X[..., n:, n:] = A
        X[..., :n, n:] = E * s[..., None, None].astype(E.real.dtype)
        return X, s

    def sqrtm(self, A, op="sqrtm"):
        """The principal square root (SciPy's blocked Schur method); real A must have a real one."""
        from scipy.linalg import sqrtm
        if A.size == 0:
            return A.copy()
        X = sqrtm(A)
        if A.dtype.kind == "f" and X.dtype.kind == "c":
            # an imaginary part at the level of √(nε)·max|X| is the root of a zero eigenvalue
            # that rounding made slightly negative (a positive semidefinite matrix of low
            # rank: ones((3, 3)) has eigenvalues 3, −6e-16, −2e-17 and SciPy's root an
            # imaginary part of 7e-9); a negative eigenvalue beyond rounding has a larger one
            n = A.shape[-1]
            imag = np.abs(X.imag).reshape(-1, n * n).max(axis=-1)
            size = np.abs(X).reshape(-1, n * n).max(axis=-1)
            bad = imag > np.sqrt(n * np.finfo(A.dtype).eps) * size
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise LinAlgError(
                    f"{op}: the real matrix has a negative real eigenvalue, so it has no real "
                    f"principal square root{_where(op, A.shape[:-2], i)}; pass a complex "
                    "matrix for the complex one")
            X = X.real
        return X if X.dtype == A.dtype else X.astype(A.dtype)

    def logm_schur(self, A, op="logm"):
        """Upper triangular Schur factors (T, Z) of A = Z T Zᴴ for logm, checked.

        LinAlgError when a matrix is singular (to working precision) or, for real A,
        has a negative real eigenvalue (no real logarithm), naming it in a stack.
        """
        n, batch = A.shape[-1], A.shape[:-2]
        T, Z = (x.reshape(-1, n, n) for x in self.schur(A, op))     # (errors name A's index)
        if A.dtype.kind == "f" and n > 1 and (np.diagonal(T, -1, -2, -1) != 0).any():
            # complex eigenvalues in some matrix: the whole stack in the complex Schur form
            T, Z = self.schur_complex(T, Z)
        d = np.diagonal(T, 0, -2, -1)
        tol = n * np.finfo(A.dtype).eps * np.abs(T).max(axis=(-2, -1))[:, None]
        singular = (np.abs(d) <= tol).any(axis=-1)
        if singular.any():
            i = int(np.flatnonzero(singular)[0])
            raise LinAlgError(f"{op}: the matrix is singular (to working precision), so it has "
                              f"no logarithm{_where(op, batch, i)}")
        if A.dtype.kind == "f":
            negative = ((d.real < 0) & (np.abs(d.imag) <= tol)).any(axis=-1)
            if negative.any():
                i = int(np.flatnonzero(negative)[0])
                raise LinAlgError(
                    f"{op}: the real matrix has a negative real eigenvalue, so it has no real "
                    f"logarithm{_where(op, batch, i)}; pass a complex matrix for the "
                    "principal complex one")
        return T.reshape(A.shape), Z.reshape(A.shape)

    @staticmethod
    def _logm_triangular(T, op):
        """logm of each upper triangular matrix of a flat stack (SciPy's inverse scaling
        and squaring Schur–Padé method, Al-Mohy & Higham 2012, without logm's O(n³)
        a-posteriori error estimate)."""
        out = np.empty(T.shape, dtype=_complex_of(T.dtype) if T.dtype.kind == "c"
                       else T.dtype)
        if _logm_stack_pays(*T.shape[:2]):
            # the same method, one NumPy operation per step for the whole stack
            # (linalgad._logm_stack: 15 times faster for 200 matrices of order 16)
            out[...] = _logm_stack.logm_triangular(T, CPU._upper_solve)
        else:
            try:
                from scipy.linalg._matfuncs_inv_ssq import _logm
            except ImportError:           # the private entry point moved: the public one
                from scipy.linalg import logm as _logm
            for i in range(T.shape[0]):
                U = _logm(T[i])
                if U.dtype.kind == "c" and out.dtype.kind == "f":
                    U = U.real
                out[i] = U
        if not np.isfinite(out).all():
            raise LinAlgError(f"{op}: the inverse scaling and squaring algorithm failed")
        return out

    def logm_from_schur(self, T, Z, real, op="logm"):
        """Z logm(T) Zᴴ per matrix; its real part when ``real``."""
        n = T.shape[-1]
        U = self._logm_triangular(T.reshape(-1, n, n), op).reshape(T.shape)
        L = Z @ U @ _mH(np, Z)
        return L.real if real and L.dtype.kind == "c" else L

    def logm_frechet_schur(self, T, Z, E, real, op="logm"):
        """L_log(A, E) from A's triangular Schur factors: Z · logm([[T, sF], [0, T]])₁₂ · Zᴴ / s.

        F = Zᴴ E Z; the block is upper triangular, so logm skips its Schur form; s
        makes ‖sF‖₁ = ‖T‖₁.  Real part when ``real`` (A and E real).
        """
        n = T.shape[-1]
        E = np.broadcast_to(E, T.shape[:-2] + E.shape[-2:]) if E.ndim < T.ndim else E
        F = _mH(np, Z) @ E @ Z
        count = int(np.prod(F.shape[:-2], dtype=np.intp))
        if _logm_stack_pays(count, n):
            # a stack: the derivative of the inverse scaling and squaring itself (square
            # roots' Sylvester equations, the Padé approximant's solves), not the logm of
            # the 2n block (1000 of order 32: 0.25 against 1.3 s)
            L = _logm_stack.frechet_triangular(
                np.broadcast_to(T, F.shape).reshape(-1, n, n), F.reshape(-1, n, n),
                self._root_sylvester, self._upper_solve).reshape(F.shape)
            L = Z @ L @ _mH(np, Z)
            return L.real if real and L.dtype.kind == "c" else L
        X, s = self._frechet_block(np, np.broadcast_to(T, F.shape), F)
        U = self._logm_triangular(X.reshape(-1, 2 * n, 2 * n), op).reshape(X.shape)
        L = Z @ U[..., :n, n:] @ _mH(np, Z) / s[..., None, None].astype(U.real.dtype)
        return L.real if real and L.dtype.kind == "c" else L

    def _root_sylvester(self, R, C):
        """Y with R Y + Y R = C for a stack of upper triangular R (a square root's
        Fréchet derivative; R and C of one dtype)."""
        return self._trsyl_stack(R, False, R, False, C, "logm",
                                 "a square root's Sylvester equation has no solution")

    def _upper_solve(self, M, C, right):
        """M⁻¹ C, or C M⁻¹ when ``right`` (as Mᵀ Yᵀ = Cᵀ), for stacks of upper triangular M."""
        if not right:
            return self.solve_triangular(M, C, lower=False, op="logm")
        Yt = self.solve_triangular(M, np.swapaxes(C, -1, -2), lower=False, trans=1, op="logm")
        return np.swapaxes(Yt, -1, -2)

    def logm_block_factors(self, T, Z, E):
        """Triangular Schur factors of [[A, E], [0, A]] from A's: [[T, ZᴴEZ], [0, T]], diag(Z, Z)."""
        F = _mH(np, Z) @ E @ Z
        n = T.shape[-1]
        batch = np.broadcast_shapes(T.shape[:-2], F.shape[:-2])
        TX = np.zeros(batch + (2 * n, 2 * n), dtype=np.result_type(T.dtype, F.dtype))
        TX[..., :n, :n] = T
        TX[..., n:, n:] = T
        TX[..., :n, n:] = F
        ZX = np.zeros(batch + (2 * n, 2 * n), dtype=Z.dtype)
        ZX[..., :n, :n] = Z
        ZX[..., n:, n:] = Z
        return TX, ZX

    # -- sylvester family (linalgad/rules/sylvester.py) ----------------------------------------
    # Schur forms A = Z T Zᴴ are plain (T, Z) stacks: the real Schur form (T quasi-triangular,
    # 2×2 blocks for complex pairs) for real input, the complex one (T triangular) for
    # complex input.  A flag ``t`` (True: the factors stand for Aᴴ = Z Tᴴ Zᴴ) selects
    # LAPACK trsyl's trana/tranb = 'C' ('C' means 'T' for the real routines), so the
    # factors of A serve Aᴴ without recomputation.

    def schur(self, A, op="schur"):
        """(T, Z) with A = Z T Zᴴ for a stack (..., n, n); LAPACK ?gees per matrix: for a
        stack, called directly in one loop (``_lapack_stack.gees``; SciPy's wrapper costs
        about 8 µs a call: 10,000 of order 4 in 30 against 108 ms)."""
        n = A.shape[-1]
        batch = A.shape[:-2]
        if n == 0 or A.size == 0:
            return A.copy(), np.broadcast_to(np.eye(n, dtype=A.dtype), A.shape).copy()
        if batch and A.dtype.char in "fdFD" and _lapack_stack.schur_available(A.dtype):
            a = _fortran_stack(A.reshape(-1, n, n))          # Fortran sees A itself
            vs, info = _lapack_stack.gees(a)
            if info.any():
                i = int(np.flatnonzero(info)[0])
                raise LinAlgError(f"{op}: the Schur decomposition did not converge"
                                  f"{_where(op, batch, i)}")
            return tuple(np.ascontiguousarray(np.swapaxes(x, -1, -2)).reshape(A.shape)
                         for x in (a, vs))
        gees = _lapack_fn("gees", A.dtype)
        select = (lambda x, y: 0) if A.dtype.kind == "f" else (lambda x: 0)
        lwork = max(34 * n, 1)
        flat = A.reshape(-1, n, n)
        T = np.empty(flat.shape, dtype=A.dtype)
        Z = np.empty(flat.shape, dtype=A.dtype)
        for i in range(flat.shape[0]):
            out = gees(select, flat[i], lwork=lwork)
            if out[-1] != 0:
                raise LinAlgError(f"{op}: the Schur decomposition did not converge"
                                  f"{_where(op, batch, i)}")
            T[i], Z[i] = out[0], out[-3]
        return T.reshape(A.shape), Z.reshape(A.shape)

    def schur_complex(self, T, Z):
        """The complex Schur form of a real one; complex input unchanged.  A stack at once
        (``_logm_stack.complex_schur``: 2.4 against 43 ms for 200 of order 16, 97 against
        441 for 1000 of order 32), one matrix by SciPy's rsf2csf (0.2 against 0.3 ms at
        order 16)."""
        if T.dtype.kind == "c":
            return T, Z
        from scipy.linalg import rsf2csf
        n = T.shape[-1]
        cdt = _complex_of(T.dtype)
        fT, fZ = T.reshape(-1, n, n), Z.reshape(-1, n, n)
        if fT.shape[0] > 1:
            Tc, Zc = _logm_stack.complex_schur(fT, fZ)
            return Tc.reshape(T.shape), Zc.reshape(Z.shape)
        Tc = np.empty(fT.shape, dtype=cdt)
        Zc = np.empty(fT.shape, dtype=cdt)
        for i in range(fT.shape[0]):
            Tc[i], Zc[i] = rsf2csf(fT[i], fZ[i], check_finite=False)
        return Tc.reshape(T.shape), Zc.reshape(Z.shape)

    def cayley(self, T, op="solve_discrete_lyapunov"):
        """(W, S) = ((T + I)⁻¹, (T − I)(T + I)⁻¹ = I − 2W) of a (quasi-)triangular stack.

        The bilinear transform that turns X − A X Aᴴ = Q into a continuous
        equation in the same Schur basis.  LinAlgError when A has the eigenvalue −1.
        """
        n = T.shape[-1]
        eye = np.eye(n, dtype=T.dtype)
        W = _named(np.linalg.inv, T + eye, op,
                   "the matrix has the eigenvalue -1, so the equation is singular")
        return W, eye - 2 * W

    def _trsyl_stack(self, Ta, ta, Tb, tb, F, op, what):
        """Y with op(Ta) Y + Y op(Tb) = F per matrix of the broadcast stacks (LAPACK ?trsyl)."""
        m, n = F.shape[-2:]
        batch = np.broadcast_shapes(Ta.shape[:-2], Tb.shape[:-2], F.shape[:-2])
        F = np.broadcast_to(F, batch + (m, n))
        if F.size == 0:
            return np.zeros(batch + (m, n), dtype=F.dtype)

        def index(shape):
            count = int(np.prod(shape, dtype=np.intp))
            return np.broadcast_to(np.arange(count).reshape(shape), batch).ravel()
        ia, ib = index(Ta.shape[:-2]), index(Tb.shape[:-2])
        fTa, fTb = Ta.reshape(-1, m, m), Tb.reshape(-1, n, n)
        fF = F.reshape(-1, m, n)
        trana, tranb = ("C" if ta else "N"), ("C" if tb else "N")
        if len(batch) and F.dtype.char in "fdFD" and Ta.dtype == Tb.dtype == F.dtype and \
                _lapack_stack.schur_available(F.dtype):
            # one loop of direct calls (``_lapack_stack.trsyl``), which overwrites c
            c = _fortran_stack(fF)
            scale, info = _lapack_stack.trsyl(_fortran_stack(fTa)[ia], _fortran_stack(fTb)[ib],
                                              c, trana, tranb)
            if info.any():
                i = int(np.flatnonzero(info)[0])
                raise LinAlgError(f"{op}: {what}{_where(op, batch, i)}")
            Y = np.swapaxes(c, -1, -2)
            if (scale != 1).any():
                Y = Y / scale[:, None, None]
            return np.ascontiguousarray(Y).reshape(batch + (m, n))
        Y = np.empty(fF.shape, dtype=F.dtype)
        trsyl = _lapack_fn("trsyl", F.dtype)
        for i in range(fF.shape[0]):
            y, scale, info = trsyl(fTa[ia[i]], fTb[ib[i]], fF[i], trana=trana, tranb=tranb)
            if info != 0:
                raise LinAlgError(f"{op}: {what}{_where(op, batch, i)}")
            Y[i] = y if scale == 1 else y / scale
        return Y.reshape(batch + (m, n))

    def sylvester_schur(self, Ta, Za, ta, Tb, Zb, tb, C, op="sylvester"):
        """X with op(A) X + X op(B) = C from the Schur forms of A (..., m, m), B (..., n, n).

        op(A) is A, or Aᴴ when ``ta`` (likewise B, ``tb``); the stacks broadcast.
        F = Zaᴴ C Zb, trsyl solves op(Ta) Y + Y op(Tb) = F (its ``scale`` divided
        out), X = Za Y Zbᴴ.  Real factors with a complex C solve the real and the
        imaginary part; a real and a complex factor meet in the complex Schur form.
        LinAlgError when op(A) and −op(B) share an eigenvalue (to working precision).
        """
        dtype = np.result_type(Ta.dtype, Tb.dtype, C.dtype)
        if dtype.kind == "c" and Ta.dtype.kind == "f" and Tb.dtype.kind == "f":
            re = self.sylvester_schur(Ta, Za, ta, Tb, Zb, tb, np.ascontiguousarray(C.real), op)
            im = self.sylvester_schur(Ta, Za, ta, Tb, Zb, tb, np.ascontiguousarray(C.imag), op)
            X = np.empty(re.shape, dtype=dtype)
            X.real, X.imag = re, im
            return X
        if dtype.kind == "c":
            Ta, Za = self.schur_complex(Ta, Za)
            Tb, Zb = self.schur_complex(Tb, Zb)
        Ta, Za, Tb, Zb, C = (x.astype(dtype, copy=False) for x in (Ta, Za, Tb, Zb, C))
        mH = functools.partial(_mH, np)
        F = mH(Za) @ C @ Zb
        pair = "a and -aᴴ" if "lyapunov" in op else "a and -b"    # Lyapunov: b = aᴴ
        Y = self._trsyl_stack(Ta, ta, Tb, tb, F, op,
                              f"the equation is singular: {pair} have a common (or, to "
                              "working precision, nearly common) eigenvalue")
        return Za @ Y @ mH(Zb)

    def stein_schur(self, W, S, Z, t, C, op="solve_discrete_lyapunov"):
        """X with X − op(A) X op(A)ᴴ = C, from A = Z T Zᴴ and (W, S) = cayley(T).

        op(A) is A, or Aᴴ when ``t``.  In the Schur basis, F = Zᴴ C Z, the bilinear
        transform G = −2 op(W) F op(W)ᴴ turns Y − op(T) Y op(T)ᴴ = F into
        op(S) Y + Y op(S)ᴴ = G (trsyl), and X = Z Y Zᴴ.  LinAlgError when
        λᵢ conj(λⱼ) = 1 for eigenvalues of A (the equation is singular).
        """
        dtype = np.result_type(S.dtype, C.dtype)
        if dtype.kind == "c" and S.dtype.kind == "f":
            re = self.stein_schur(W, S, Z, t, np.ascontiguousarray(C.real), op)
            im = self.stein_schur(W, S, Z, t, np.ascontiguousarray(C.imag), op)
            X = np.empty(re.shape, dtype=dtype)
            X.real, X.imag = re, im
            return X
        W, S, Z, C = (x.astype(dtype, copy=False) for x in (W, S, Z, C))
        mH = functools.partial(_mH, np)
        opW = mH(W) if t else W
        G = (-2 * opW) @ (mH(Z) @ C @ Z) @ mH(opW)
        Y = self._trsyl_stack(S, t, S, not t, G, op,
                              "the equation is singular: a has eigenvalues with "
                              "lambda_i * conj(lambda_j) = 1 (to working precision)")
        return Z @ Y @ mH(Z)

    # -- Toeplitz systems (linalgad/rules/toeplitz.py) ----------------------------------------

    def toeplitz_solve(self, v, B, op="solve_toeplitz"):
        """X with T(v) X = B per matrix of the broadcast stacks, v (..., 2n − 1) the
        diagonals, B (..., n, k): SciPy's Levinson recursion (O(n²) a column, in double
        precision), the result in the inputs' dtype.  Levinson needs every leading
        principal minor nonsingular: LinAlgError naming ``op`` and the matrix otherwise."""
        try:
            from scipy.linalg._solve_toeplitz import levinson
        except ImportError:                     # a private module: SciPy's public route
            import scipy.linalg

            def levinson(vals, b):
                n = b.shape[0]
                return scipy.linalg.solve_toeplitz((vals[n - 1:], vals[n - 1::-1]), b), None
        n, k = B.shape[-2:]
        dtype = np.result_type(v.dtype, B.dtype)
        batch = np.broadcast_shapes(v.shape[:-1], B.shape[:-2])
        X = np.empty(batch + (n, k), dtype=dtype)
        if X.size == 0:
            return X
        work = np.result_type(dtype, np.float64)
        vb = np.broadcast_to(v, batch + v.shape[-1:]).astype(work, copy=False)
        Bb = np.broadcast_to(B, batch + (n, k)).astype(work, copy=False)
        for idx in np.ndindex(*batch):
            vals = np.ascontiguousarray(vb[idx])
            for j in range(k):
                try:
                    X[idx + (slice(None), j)] = levinson(vals, np.ascontiguousarray(Bb[idx + (
                        slice(None), j)]))[0]
                except LinAlgError:
                    where = f" (matrix {idx if len(idx) > 1 else idx[0]} of the stack)" \
                        if idx else ""
                    raise LinAlgError(
                        f"{op}: a leading principal minor of the Toeplitz matrix is singular"
                        f"{where}; Levinson's recursion (SciPy's solver) needs all of them "
                        "nonsingular — use solve(toeplitz(c, r), b) for a general matrix"
                    ) from None
        return X

    # -- LDLᴴ / Bunch–Kaufman (linalgad/rules/ldl.py) ------------------------------------------

    def ldl(self, A, lower=True, hermitian=True, op="ldl"):
        """(lu, d, perm, blocks) of scipy.linalg.ldl per matrix of the stack A (..., n, n):
        SciPy's own function (LAPACK sytrf / hetrf and its post-processing), so the values
        are SciPy's exactly; a loop over the stack, as SciPy 1.17 batches.  ``perm`` (...,
        n) int64 brings lu to triangular form (lu[perm]); ``blocks`` (..., n − 1) bool
        marks the 2×2 pivot blocks of d (entries i, i + 1), read off d's nonzero
        subdiagonal (a 2×2 pivot's off-diagonal entry is its column's largest, never 0).
        No error for a singular d (SciPy returns it): the rule's derivatives say so."""
        import warnings

        import scipy.linalg
        n = A.shape[-1]
        batch = A.shape[:-2]
        lu = np.empty(A.shape, dtype=A.dtype)
        d = np.zeros(A.shape, dtype=A.dtype)
        perm = np.empty(batch + (n,), dtype=np.int64)
        if A.size:
            for idx in np.ndindex(*batch):
                with warnings.catch_warnings():     # the imaginary diagonal: warned by the rule
                    warnings.simplefilter("ignore", np.exceptions.ComplexWarning)
                    lu[idx], d[idx], perm[idx] = scipy.linalg.ldl(
                        A[idx], lower=lower, hermitian=hermitian, check_finite=False)
        blocks = np.diagonal(d, -1, -2, -1) != 0
        return lu, d, perm, blocks

    def ldl_cotangent(self, lu, d, lu_bar, d_bar, perm, blocks, lower, hermitian):
        """Ā of ldl (ldl.md, section 5) for one real symmetric or complex Hermitian matrix
        of order ≥ 2, or None (a stack, a complex symmetric factorization: the composed
        form).  With L = lu[perm] and X = l̄u[perm]:

            W = S ∘ (Lᴴ X)                       one trmm (L unit triangular)
            M̄ = W D⁻ᴴ + Bd ∘ d̄                   O(n²): D⁻¹ is block diagonal
            G = L⁻ᴴ (M̄ + M̄ᴴ) L⁻¹                 one sygst / hegst (itype 1)
            Ā = the triangle read of G[q][:, q], its diagonal halved (q = perm⁻¹)

        Ā depends on B̄ = L⁻ᴴ M̄ L⁻¹ only through B̄ + B̄ᴴ (the triangle fold), so the two
        triangular solves of the composed form become one congruence of a Hermitian
        matrix, which LAPACK's sygst does in half their flops.  sygst reads one triangle
        of M̄ + M̄ᴴ, and M̄ is block-triangular, so M̄ itself (its diagonal doubled, its
        2×2 blocks' other entries added) serves.  sygst takes the lower factor F of
        inv(F) H inv(Fᴴ): Lᴴ itself for lower=False, and for lower=True Lᴴ reversed
        (J Lᴴ J, J the order reversal), the reversal folded into the final gather.  The
        C-ordered arrays are handed to BLAS and LAPACK as the Fortran transposes they are
        (no copies but the one reversal)."""
        from scipy.linalg import blas, lapack
        if not _ldl_kernel_applies(lu, hermitian):
            return None
        n, dtype, cplx = lu.shape[-1], lu.dtype, np.iscomplexobj(lu)
        L = lu.take(perm, axis=0)
        X = np.asarray(lu_bar, dtype=dtype).take(perm, axis=0)
        trmm = blas.get_blas_funcs("trmm", (L,))
        # (Lᴴ X)ᵀ = Xᵀ conj(L): X.T and L.T are Fortran views of Xᵀ and Lᵀ
        if cplx:
            X = np.conj(X, out=X)
        Wt = trmm(1.0, L.T, X.T, side=1, lower=not lower, trans_a=1, diag=1,
                  overwrite_b=True)
        W = Wt.T                                                    # C-ordered Lᴴ X (conj)
        if cplx:
            W = np.conj(W, out=W)
        _clear_triangle(W, lower, 0)                                # strictly lower/upper
        s = np.flatnonzero(blocks)                                  # 2×2 blocks at (s, s+1)
        if lower:
            W[s + 1, s] = 0
        else:
            W[s, s + 1] = 0
        # D⁻¹: 1/dⱼⱼ on the diagonal, each 2×2 block's inverse on its three entries
        M = _times_block_inverse(W, d, s, adjoint=True)              # W D⁻ᴴ
        i = np.arange(n)
        M[i, i] = 2 * (d_bar[i, i].real if cplx else d_bar[i, i])  # M̄ + M̄ᴴ's diagonal
        if lower:        # the kept triangle of M̄ + M̄ᴴ: the other entry of each block added
            M[s + 1, s] += d_bar[s + 1, s] + np.conj(d_bar[s, s + 1])
        else:
            M[s, s + 1] += d_bar[s, s + 1] + np.conj(d_bar[s + 1, s])
        sygst = lapack.get_lapack_funcs("hegst" if cplx else "sygst", (M,))
        q = np.empty(n, dtype=np.intp)
        q[perm] = i
        if lower:
            # a = Zᵀ with Z = J M J: its lower triangle is that of J (M̄ + M̄ᴴ) J; F = (J L J)ᵀ
            Z = np.ascontiguousarray(M[::-1, ::-1])
            F = np.ascontiguousarray(L[::-1, ::-1])
            if cplx:
                Z, F = np.conj(Z, out=Z), np.conj(F, out=F)
            c, info = sygst(Z.T, F.T, itype=1, lower=1, overwrite_a=True)
            q = n - 1 - q
        else:
            Lt = np.conj(L) if cplx else L
            c, info = sygst(np.conj(M).T if cplx else M.T, Lt.T, itype=1, lower=1,
                            overwrite_a=True)
        if info != 0:
            return None
        V = _clear_triangle(c.T, False, 1)                          # its upper triangle
        if cplx:
            V = np.conj(V, out=V)
        G = V + V.conj().T                                          # 2 (B̄ + B̄ᴴ) on the diagonal
        A_bar = _clear_triangle(G[np.ix_(q, q)], lower, 1)
        A_bar[i, i] *= 0.25
        return A_bar

    def ldl_tangent(self, lu, d, A_dot, perm, blocks, lower, hermitian):
        """(l̇u, ḋ) of ldl along Ȧ (ldl.md, section 5) for one real symmetric or complex
        Hermitian matrix of order ≥ 2, or None (the composed form).  With L = lu[perm]:

            M = L⁻¹ Ḃ L⁻ᴴ, Ḃ = Ȧ's Hermitian matrix permuted     one sygst / hegst
            ḋ = Bd ∘ M,   L̇ = L ((S ∘ M) D⁻¹)                     O(n²), then one trmm

        sygst with uplo 'U' and the factor U = Lᴴ computes inv(Uᴴ) Ḃ inv(U) = L⁻¹ Ḃ L⁻ᴴ for a
        lower L; an upper L (lower=False) is reversed first (J L J is lower), the reversal
        undone on M.  The C-ordered arrays are handed over as the Fortran transposes they
        are."""
        from scipy.linalg import blas, lapack
        if not _ldl_kernel_applies(lu, hermitian):
            return None
        n, dtype, cplx = lu.shape[-1], lu.dtype, np.iscomplexobj(lu)
        L = lu.take(perm, axis=0)
        B = full_from_triangle(np, np.asarray(A_dot, dtype=dtype), lower)[np.ix_(perm, perm)]
        J = slice(None, None, -1)
        if lower:
            F, Z = L, B                       # a Fortran view of Xᵀ is the C-ordered X
        else:
            F = np.ascontiguousarray(L[J, J])
            Z = np.ascontiguousarray(B[J, J])
        if cplx:                              # Fortran U = Fᴴ and Ḃ: the conjugates' views
            F, Z = np.conj(F), np.conj(Z)
        sygst = lapack.get_lapack_funcs("hegst" if cplx else "sygst", (Z,))
        c, info = sygst(Z.T, F.T, itype=1, lower=0, overwrite_a=True)
        if info != 0:
            return None
        Mt = c.T                              # C-ordered; its lower triangle holds the result
        if cplx:
            Mt = np.conj(Mt, out=Mt)
        if not lower:
            Mt = Mt[J, J]                     # M itself: its upper triangle holds it
        s = np.flatnonzero(blocks)
        i = np.arange(n)
        d_dot = np.zeros((n, n), dtype=dtype)
        d_dot[i, i] = Mt[i, i].real if cplx else Mt[i, i]
        if lower:
            below = Mt[s + 1, s]
            d_dot[s + 1, s], d_dot[s, s + 1] = below, np.conj(below)
        else:
            above = Mt[s, s + 1]
            d_dot[s, s + 1], d_dot[s + 1, s] = above, np.conj(above)
        W = np.array(Mt, order="C")
        _clear_triangle(W, lower, 0)                                # strictly lower/upper
        if lower:
            W[s + 1, s] = 0
        else:
            W[s, s + 1] = 0
        X = _times_block_inverse(W, d, s, adjoint=False)             # (S ∘ M) D⁻¹
        trmm = blas.get_blas_funcs("trmm", (L,))
        # (L X)ᵀ = Xᵀ Lᵀ: X.T and L.T are Fortran views of Xᵀ and Lᵀ
        LXt = trmm(1.0, L.T, X.T, side=1, lower=not lower, trans_a=0, diag=1,
                   overwrite_b=True)
        q_inv = np.empty(n, dtype=np.intp)
        q_inv[perm] = i
        return LXt.T.take(q_inv, axis=0), d_dot

    # -- riccati family (linalgad/rules/riccati.py) ------------------------------------------

    def _riccati_declined(self, kind, full, X, ok, balanced, op):
        """X with the matrices doubling declined (``ok`` False, or None: all) solved by
        SciPy's solver (the QZ method on the extended pencil), one by one.  SciPy's
        ValueError (a singular r or e) and LinAlgError (no finite stabilizing solution)
        are raised naming ``op`` and the matrix of the stack."""
        import scipy.linalg
        fn = scipy.linalg.solve_continuous_are if kind == "care" else \
            scipy.linalg.solve_discrete_are
        batch = full[0].shape[:-2]
        if ok is None:
            X, ok = np.empty_like(full[2]), np.zeros(batch, dtype=bool)
        for idx in np.ndindex(*batch):
            if ok[idx]:
                continue
            a, b, q, r, e, s = (None if x is None else x[idx] for x in full)
            # SciPy 1.17 balances the pencil, e's block included, and then forms the
            # solution's basis with the unscaled e: a wrong X or a false LinAlgError for a
            # non-diagonal e (its _solvers.py, CARE and DARE alike).  Unbalanced there.
            bal = balanced and (e is None or not np.any(e - np.diag(np.diagonal(e))))
            try:
                X[idx] = fn(a, b, q, r, e, s, balanced=bal)
            except (ValueError, LinAlgError) as err:
                where = f" (matrix {idx if len(idx) > 1 else idx[0]} of the stack)" if idx \
                    else ""
                msg = str(err).rstrip(".")
                if isinstance(err, LinAlgError):
                    msg += (": the equation has no stabilizing solution that SciPy's solver "
                            "can find ((a, b) not stabilizable, or a closed-loop eigenvalue "
                            "on the stability boundary)")
                raise type(err)(f"{op}: {msg}{where}") from None
        return X




    # -- cossin (linalgad/rules/cossin.py) -----------------------------------------------------

    def cossin(self, X, p, q, swap_sign=False, compute_u=True, compute_vh=True, op="cossin"):
        """(u1, u2, theta, v1h, v2h) of the CS decomposition of a stack (..., m, m) whose
        X11 is p×q: LAPACK ?orcsd / ?uncsd per matrix, through scipy.linalg.cossin
        (separate=True), so the values are SciPy's; a factor not computed is (..., 0, 0)."""
        import scipy.linalg
        m = X.shape[-1]
        batch = X.shape[:-2]
        flat = X.reshape((-1, m, m))
        outs = []
        for i, x in enumerate(flat):
            try:
                (u1, u2), th, (v1h, v2h) = scipy.linalg.cossin(
                    x, p=p, q=q, separate=True, swap_sign=swap_sign, compute_u=compute_u,
                    compute_vh=compute_vh)
            except (ValueError, LinAlgError) as err:
                raise type(err)(f"{op}: {err}{_where(op, batch, i)}") from None
            outs.append((u1, u2, th, v1h, v2h))
        res = []
        for j in range(5):
            parts = [o[j] for o in outs]
            res.append(np.stack(parts).reshape(batch + parts[0].shape))
        return tuple(res)


def _named(fn, A, op, what):
    """fn(A); when LAPACK fails on the stack, a LinAlgError naming op and the failing matrix."""
    try:
        return fn(A)
    except LinAlgError:
        _first_failure(fn, A, op, what)


def _complex_of(dtype):
    return np.result_type(dtype, np.complex64)


_GETRI_LWORK = {}


def _stack_lu_solve(F, b, trans):
    """lu_solve with "stack" factors (Aᵀ's, from _lapack_stack.getrf): the right-hand
    sides copied once to Fortran blocks, one getrs per matrix, read back as a view."""
    lu = F.data
    n, k = b.shape[-2:]
    dtype = np.result_type(lu.dtype, b.dtype)
    if dtype != lu.dtype:                   # real factors, complex right-hand sides
        lu = lu.astype(dtype)
    # A x = b is (Aᵀ)ᵀ x = b; Aᵀ x = b itself; Aᴴ x = b is Aᵀ conj(x) = conj(b)
    conj = trans == 2 and dtype.kind == "c"
    bt = _fortran_stack(b.reshape(lu.shape[0], n, k), dtype)
    if conj:
        np.conjugate(bt, out=bt)
    _lapack_stack.getrs(lu, F.piv, bt, "T" if trans == 0 else "N")
    x = np.swapaxes(bt, -1, -2)
    if conj:
        np.conjugate(x, out=x)
    return x.reshape(b.shape[:-2] + (n, k))


def _scatter_rows(X, rows):
    """out with out[rows] = X (X 2-D, rows a permutation of its rows), as a gather by the
    inverse permutation: np.take is 4-10× faster than a scatter for short rows."""
    inv = np.empty_like(rows)
    inv[rows] = np.arange(rows.size)
    return np.take(X, inv, axis=0)


def _inverse_transposed(lu, piv):
    """LAPACK getri on the factors of one matrix M: M⁻¹, Fortran-ordered.  linalgad's LU
    factors are of Aᵀ (the free Fortran view of a C-ordered A), so this is A⁻ᵀ."""
    getri = _lapack_fn("getri", lu.dtype)
    return getri(lu, piv, lwork=_getri_lwork(lu.dtype, lu.shape[-1]))[0]


def _getri_lwork(dtype, n):
    key = (np.dtype(dtype).char, n)
    w = _GETRI_LWORK.get(key)
    if w is None:
        work, info = _lapack_fn("getri_lwork", np.dtype(dtype))(n)
        w = _GETRI_LWORK[key] = max(1, int(1.01 * np.real(work)))
    return w


def _first_failure(fn, A, op, what, detail=None):
    """fn failed on the stack A: find the first matrix it fails on and raise, naming it
    (and ``detail(a)`` of it, when given)."""
    batch = A.shape[:-2]
    flat = A.reshape((-1,) + A.shape[-2:])
    for i, a in enumerate(flat):
        try:
            fn(a)
        except LinAlgError:
            extra = detail(a) if detail is not None else ""
            raise LinAlgError(f"{op}: {what}{extra}{_where(op, batch, i)}") from None
    raise LinAlgError(f"{op}: {what}")


def _minor_order(a, lower):
    """" (leading minor of order k is not positive)" for the matrix a whose Cholesky factor
    (read from the triangle ``lower`` names) does not exist: LAPACK potrf's info."""
    c, info = _lapack_fn("potrf", a.dtype)(a.T, lower=not lower, clean=1)
    return f" (leading minor of order {info} is not positive)" if info > 0 else ""


def _perm_from_swaps(piv, m):
    """Row order of LAPACK's swap sequence: A[perm] = L U.  piv (..., k) -> (..., m)."""
    batch = piv.shape[:-1]
    if piv.shape[-1] == 0 or 0 in batch:    # no swaps (order 0), or no matrices
        return np.broadcast_to(np.arange(m), batch + (m,)).copy()
    flat = piv.reshape(-1, piv.shape[-1])
    B = flat.shape[0]
    if B <= 8:
        # a few matrices: LAPACK laswp applies the swap sequence to the row indices
        # (2.6 µs at n = 1024; a NumPy call per swap costs microseconds each, and the
        # same loop on Python lists 54 µs)
        out = np.empty((B, m), dtype=np.intp)
        laswp = _lapack_fn("laswp", np.dtype(np.float64))
        rows = np.arange(m, dtype=np.float64)[:, None]     # exact: m < 2⁵³
        for r in range(B):
            out[r] = laswp(rows, flat[r].astype(np.int32, copy=False))[:, 0]
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

# Kernels of many elementwise passes over a stack (svd's cotangent, the Fréchet maps of
# funmh and generalized_funm) run at memory speed once its arrays outgrow the L2 cache;
# _by_blocks runs them over blocks of the stack of about this many bytes per operand
_BLOCK_BYTES = 1 << 18
# and only for stacks whose largest operand has at least this many bytes
_BLOCKED_STACK_BYTES = 1 << 21


def _by_blocks(kernel, *args):
    """kernel(*args) for a stack, evaluated block by block of its matrices where the stack
    is large (its operands past _BLOCKED_STACK_BYTES): the same numbers (every matrix is
    computed alone), with each block's passes in cache.  1000 of order 32, one thread
    (ms, whole stack -> blocks): svd's fused cotangent (real stacks) 17.8 -> 13.6,
    svd_frechet 19.6 -> 16.7 (complex 60.2 -> 44.4), the complex hermitian_frechet
    42.1 -> 30.7.  The real hermitian_frechet, eigh's cotangent (few passes) and the LU,
    QR and Cholesky cotangents (trsm- and product-bound) gained nothing and are left
    whole.

    Every array argument must carry the stack's batch shape in front (else the kernel
    runs once on everything); other arguments pass as they are.  The kernel returns an
    array or a tuple of arrays with the batch shape in front, or None (then so does this,
    and the caller falls back)."""
    arrays = [a for a in args if isinstance(a, np.ndarray)]
    big = max(arrays, key=lambda a: a.nbytes) if arrays else None
    if big is None or big.ndim < 3 or big.nbytes < _BLOCKED_STACK_BYTES:
        return kernel(*args)
    batch = big.shape[:-2]
    nb = len(batch)
    B = big.size // (big.shape[-1] * big.shape[-2])
    step = max(1, _BLOCK_BYTES // max(1, big.nbytes // B))
    if B < 2 * step or any(a.shape[:nb] != batch for a in arrays):
        return kernel(*args)
    flat = [a.reshape((B,) + a.shape[nb:]) if isinstance(a, np.ndarray) else a
            for a in args]
    out = None
    for i in range(0, B, step):
        part = kernel(*(a[i:i + step] if isinstance(a, np.ndarray) else a for a in flat))
        if part is None:
            return None
        parts = part if type(part) is tuple else (part,)
        if out is None:
            out = tuple(np.empty((B,) + p.shape[1:], dtype=p.dtype) for p in parts)
        for o, p in zip(out, parts):
            o[i:i + step] = p
    out = tuple(o.reshape(batch + o.shape[1:]) for o in out)
    return out if type(part) is tuple else out[0]


# bytes of input each pass of _batch_last copies: a block that stays in a core's L2
_BATCH_LAST_BLOCK = 1 << 19


def _batch_last(x, dtype):
    """x (B, ...) as a new C-contiguous (..., B) array of ``dtype`` (the layout of the
    vectorised kernels below).  NumPy copies a transpose row by row of the output, reading
    the input with a stride of one matrix; once the stack outgrows the cache every output
    row streams it again from memory.  So the copy runs over blocks of matrices whose
    input fits in L2: 10,000 of 4×8, 1.5 -> 0.45 ms."""
    B = x.shape[0]
    out = np.empty(x.shape[1:] + (B,), dtype=dtype)
    if B == 0:
        return out
    flat_in, flat_out = x.reshape(B, -1), out.reshape(-1, B)
    step = max(1, _BATCH_LAST_BLOCK // max(1, flat_in.shape[1] * x.itemsize))
    for c in range(0, B, step):
        np.copyto(flat_out[:, c:c + step], flat_in[c:c + step].T, casting="unsafe")
    return out


def _batch_first(y):
    """y (..., B) as a new C-contiguous (B, ...) array: the inverse of _batch_last's
    layout, by the same cache-sized blocks of matrices."""
    B = y.shape[-1]
    out = np.empty((B,) + y.shape[:-1], dtype=y.dtype)
    if B == 0:
        return out
    flat_in, flat_out = y.reshape(-1, B), out.reshape(B, -1)
    step = max(1, _BATCH_LAST_BLOCK // max(1, flat_in.shape[0] * y.itemsize))
    for c in range(0, B, step):
        np.copyto(flat_out[c:c + step], flat_in[:, c:c + step].T)
    return out


def _triangular(A, lower):
    """Whether every matrix of the stack A (..., n, n), n >= 2, is lower (upper)
    triangular with a nonzero diagonal.  A dense matrix answers at its corner and first
    column (row); the full test runs only where those are zero."""
    n = A.shape[-1]
    if n < 2 or A.size == 0:
        return False
    if A.ndim == 2:                                 # a scalar read (a 0-d .any(): 2 µs)
        if A[0, -1] if lower else A[-1, 0]:
            return False
    elif A[..., 0, -1].any() if lower else A[..., -1, 0].any():
        return False
    edge = A[..., 0, 1:] if lower else A[..., 1:, 0]
    if edge.any() or (np.triu(A, 1) if lower else np.tril(A, -1)).any():
        return False
    return bool(np.diagonal(A, 0, -2, -1).all())   # singular: LAPACK's handling (or error)


def _upper_lu(A):
    """For a stack of upper triangular matrices with a nonzero diagonal, the packed
    factors of each Aᵀ = L U without row exchanges (L = Aᵀ D⁻¹, U = D), as getrf
    would leave them in Fortran order, here C-ordered (B, n, n); otherwise None.  A dense
    matrix answers at its corner; the full test runs only where corners are zero."""
    n = A.shape[-1]
    if A.dtype.kind not in "fc" or not _triangular(A, lower=False):
        return None
    d = np.diagonal(A, 0, -2, -1)
    P = A.reshape(-1, n, n) * (1 / d.reshape(-1, n))[:, :, None]   # getf2 scales by 1/pivot
    idx = np.arange(n)
    P[:, idx, idx] = d.reshape(-1, n)
    return P


def _vector_lu_factor(A, op, singular_ok=False):
    n = A.shape[-1]
    batch = A.shape[:-2]
    B = int(np.prod(batch))
    dtype = np.result_type(A.dtype, np.float32)
    # every matrix lower triangular: eliminate without row exchanges (exact, as for
    # upper triangular ones, which partial pivoting never exchanges; see lu_factor)
    lower = _triangular(A, lower=True)
    a = _batch_last(A.reshape(B, n, n), dtype)                                  # (n, n, B)
    perm, swaps, rdiag = _lu_batch_last(a, op, batch, singular_ok, exchange=not lower)
    # row j of matrix c of the stack, as a row of b.reshape(B * n, k): P b is a gather
    rows = (np.arange(B)[:, None] * n + perm.T).ravel()
    return LUFactors("vector", a, rows, A.shape, swaps, rdiag)


def _lu_batch_last(a, op, batch, singular_ok=False, need_perm=True, exchange=True):
    """P A = L U of every matrix of a stack laid out batch-last, a (n, n, B), in place
    (L's multipliers below the diagonal, U on and above it), each step one operation over
    the whole stack (``exchange=False``: no row exchanges).  Returns (perm, swaps, rdiag),
    each (n, B): the row order (row i of P A is row perm[i] of A), the row exchanged
    with at each step (LAPACK's ipiv, 0-based) and the reciprocals of U's diagonal.  An exactly zero pivot raises LinAlgError naming
    the matrix (``op``, ``batch`` its stack's shape), or, with ``singular_ok``, is kept
    (its reciprocal inf) and its column left unscaled, as LAPACK does.  ``need_perm=False``
    skips the row order (perm None).  a may have more columns than rows, (n, n + k, B):
    the elimination then carries them along (L⁻¹ P R for an augmented [A | R])."""
    n, B = a.shape[0], a.shape[-1]
    swaps = np.broadcast_to(np.arange(n)[:, None], (n, B)).copy()
    perm = swaps.copy() if need_perm else None
    # the same memory as integers of the element's size (complex128: two int64 each)
    reps = max(1, a.itemsize // 8)
    bits = a.view(np.dtype(f"i{a.itemsize // reps}"))
    # LAPACK's pivot order: largest |Re| + |Im| for complex (i?amax), |x| for real
    absval = (lambda x: np.abs(x.real) + np.abs(x.imag)) if a.dtype.kind == "c" else np.abs
    for k in range(n):
        if k < n - 1 and exchange:
            # the pivot row p (B,): the first largest magnitude in column k, by a running
            # maximum over the rows (argmax along the strided axis 0 takes 4x as long;
            # np.where and np.maximum, 8x less than copyto's masked path)
            col = absval(a[k:, k, :])
            best = col[0]
            p = np.full(B, k, dtype=np.intp)
            for i in range(1, n - k):
                p = np.where(col[i] > best, k + i, p)
                best = np.maximum(best, col[i])
            swaps[k] = p
            # exchange rows k and p of every matrix: per candidate row i, an in-place
            # swap of the bits where p = i, t = (a_k ^ a_i) & mask, a_k ^= t, a_i ^= t
            # (exact for any values; half the time of two selects and their copies, and
            # cheaper than gathering and scattering the swapped matrices by index)
            rows = np.arange(k + 1, n)
            here = p == rows[:, None]                             # (n - k - 1, B)
            moved = here.any(axis=1)
            masks = np.negative(here, dtype=bits.dtype)           # all ones where p = i
            if reps > 1:
                masks = np.repeat(masks, reps, axis=1)
            if perm is not None:
                perm_masks = np.negative(here, dtype=perm.dtype)
            for j, i in enumerate(rows):
                if moved[j]:
                    _swap_where(bits[k], bits[i], masks[j])
                    if perm is not None:
                        _swap_where(perm[k], perm[i], perm_masks[j])
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
            a[k + 1:, k, :] *= 1 / pivot              # LAPACK's getf2 too scales by 1/pivot
            a[k + 1:, k + 1:, :] -= a[k + 1:, k, None, :] * a[k, None, k + 1:, :]
    with np.errstate(divide="ignore", invalid="ignore"):   # a zero pivot (singular_ok): inf
        rdiag = 1 / np.diagonal(a, 0, 0, 1).T                            # (n, B)
    return perm, swaps, rdiag


def _swap_where(x, y, mask):
    """Exchange x and y (integer arrays, the bits of the values) in place where mask
    (broadcast over x's leading axes) is all ones; untouched where it is 0."""
    t = np.bitwise_xor(x, y)
    t &= mask
    x ^= t
    y ^= t


def _lu_substitute_batch_last(a, rdiag, y, trans, lower=True):
    """y <- (L U)⁻¹ y (trans 0), (L U)⁻ᵀ y (1) or (L U)⁻ᴴ y (2), in place, for factors
    and right-hand sides laid out batch-last: a (n, n, B) from _lu_batch_last (or its
    first n columns), rdiag its reciprocal diagonal, y (n, k, B), each row of every
    system one contiguous (k, B) block.  The row permutation is the caller's (P b before
    trans 0, Pᵀ after 1 and 2).  ``lower=False`` (trans 0): y is L⁻¹ P b already (the
    elimination of an augmented [A | b]); only U's back substitution runs."""
    n, k, B = y.shape
    tmp = np.empty((k, B), dtype=y.dtype)
    if trans == 2 and a.dtype.kind == "c":
        a, rdiag = a.conj(), rdiag.conj()
    if trans == 0:
        # L (U x) = b: L unit lower, then U
        for i in range(1, n if lower else 0):
            yi = y[i]
            for j in range(i):
                np.multiply(a[i, j], y[j], out=tmp)
                yi -= tmp
        for i in range(n - 1, -1, -1):
            yi = y[i]
            for j in range(i + 1, n):
                np.multiply(a[i, j], y[j], out=tmp)
                yi -= tmp
            yi *= rdiag[i]                  # a third of a division's time
        return y
    # Uᵀ (Lᵀ x) = b (conjugated factors for 'C')
    for i in range(n):
        yi = y[i]
        for j in range(i):
            np.multiply(a[j, i], y[j], out=tmp)
            yi -= tmp
        yi *= rdiag[i]
    for i in range(n - 2, -1, -1):
        yi = y[i]
        for j in range(i + 1, n):
            np.multiply(a[j, i], y[j], out=tmp)
            yi -= tmp
    return y


def _vector_lu_solve(F, b, trans):
    """Solve with vectorised factors; every operation runs over the whole stack.

    The right-hand sides are laid out (n, k, B) so that row i of every
    system is one contiguous (k, B) block, updated in place.  The row
    permutation is one gather (or scatter) of whole rows of b.
    """
    a, rows, rdiag = F.data, F.piv, F.rdiag
    n, B = a.shape[0], a.shape[-1]
    k = b.shape[-1]
    dtype = np.result_type(a.dtype, b.dtype)
    b_rows = b.reshape(B * n, k)
    if trans == 0:
        # P A = L U:  A x = b  <=>  L (U x) = P b
        pb = np.take(b_rows, rows, axis=0).reshape(B, n, k)     # (take: 10× b_rows[rows])
        y = _lu_substitute_batch_last(a, rdiag, _batch_last(pb, dtype), 0)     # (n, k, B)
        return _batch_first(y).reshape(b.shape[:-2] + (n, k))
    # Aᵀ x = b  <=>  Uᵀ (Lᵀ (P x)) = b   (conjugated factors for 'C')
    y = _lu_substitute_batch_last(a, rdiag, _batch_last(b.reshape(B, n, k), dtype), trans)
    x = _scatter_rows(_batch_first(y).reshape(B * n, k), rows)            # x = Pᵀ y
    return x.reshape(b.shape[:-2] + (n, k))


def _eig_cotangent_batch_last(w, V, w_bar, V_bar, tol, dtype, real):
    """eig's cotangent (ComposedKernels.eig_cotangent) of a stack (B, n, n), computed
    batch-last: (X, kd, scale) with X (n, n, B) = V⁻ᴴ W Vᴴ (a view; its real part
    where ``real``), kd (n, B), scale (B,); None if two eigenvalues of a matrix are
    within tol·max|w| or V has a zero pivot.

        K = VᴴV̄,  d = Re diag K,  Y = Vᴴ (V̄ − V diag d),  W = diag(w̄) + conj(E) ∘ Y,
        Eᵢⱼ = 1/(wⱼ − wᵢ),  X = V⁻ᴴ (W Vᴴ)              (eig.md, sections 3 and 5)

    The products are n broadcast multiply-adds of (n, n, B) arrays; the solve is the
    vectorised elimination of [Vᴴ | W Vᴴ] and U's back substitution.  For real matrices
    whose eigenvalues come in LAPACK's layout and an eigenvalue cotangent alone, in real
    arithmetic (_eig_cotangent_real_pairs)."""
    n, B = V.shape[-1], V.shape[0]
    wl = _batch_last(w, dtype)                                                  # (n, B)
    # the gaps: decline (the rule's composed form checks clusters) where any is small
    delta = np.abs(wl).max(axis=0)
    delta *= tol
    E = None if V_bar is None else np.zeros((n, n, B), dtype)
    for i in range(n - 1):
        D = wl[i + 1:] - wl[i]                                  # w_j − w_i, j > i
        if (np.abs(D) <= delta).any():
            return None
        if E is not None:
            Ec = np.conjugate(np.reciprocal(D, out=D), out=D)   # conj E_ij; E_ji = −E_ij
            E[i, i + 1:] = Ec
            np.negative(Ec, out=E[i + 1:, i])
    if real and V_bar is None:
        p = eig_conjugate_pairs(wl.T)             # (B, n), a view of batch-last memory
        if p is not None:
            idx = np.arange(n)[:, None]
            return _eig_cotangent_real_pairs(wl, V, w_bar, p.T > idx, p.T < idx)
    Vc = _batch_last(V, dtype)                                                  # (n, n, B)
    np.conjugate(Vc, out=Vc)                                                    # conj V
    kd = scale = None
    # the system Vᴴ X = R, augmented: [Vᴴ | R] (n, 2n, B); its elimination with row
    # exchanges (_lu_batch_last) leaves U and L⁻¹ P R, and a back substitution finishes
    aug = np.empty((n, 2 * n, B), dtype)
    np.copyto(aug[:, :n], Vc.transpose(1, 0, 2))
    R = aug[:, n:]
    if V_bar is None:
        # W Vᴴ = diag(w̄) Vᴴ: row i of Vᴴ (the conjugate of column i of V) times w̄ᵢ
        np.multiply(_batch_last(w_bar, dtype)[:, None, :], aug[:, :n], out=R)
    else:
        Vb = _batch_last(V_bar, dtype)
        K = np.multiply(Vc, Vb)
        kd = K.sum(axis=0)                                      # diag(Vᴴ V̄), (n, B)
        Z = np.multiply(Vc, kd.real)
        np.conjugate(Z, out=Z)                                  # V diag(d)
        np.subtract(Vb, Z, out=Z)
        Y = np.multiply(Vc[0, :, None, :], Z[0, None, :, :])    # Yᵢⱼ = Σₖ conj(Vₖᵢ) Zₖⱼ
        for k in range(1, n):
            Y += np.multiply(Vc[k, :, None, :], Z[k, None, :, :], out=K)
        scale = _max_abs(Y, kd)
        Wm = np.multiply(E, Y, out=Y)
        if w_bar is not None:
            idx = np.arange(n)
            Wm[idx, idx] = _batch_last(w_bar, dtype)
        np.multiply(Wm[:, 0, None, :], Vc[None, :, 0, :], out=R)  # Rᵢⱼ = Σₖ Wᵢₖ conj(Vⱼₖ)
        for k in range(1, n):
            R += np.multiply(Wm[:, k, None, :], Vc[None, :, k, :], out=K)
    X = _solve_augmented(aug)
    return None if X is None else ((X.real if real else X), kd, scale)


def _max_abs(Y, kd):
    """max(max |Y|, max |kd|) per matrix, Y (n, n, B) and kd (n, B) complex: the squared
    moduli's maximum, one square root per matrix (np.abs of complex is a hypot)."""
    y = Y.view(Y.real.dtype)                                  # (n, n, 2B): Re, Im
    m = np.multiply(y, y)
    m2 = m[..., 0::2] + m[..., 1::2]
    top = m2.max(axis=(0, 1))
    np.maximum(top, (kd.real ** 2 + kd.imag ** 2).max(axis=0), out=top)
    return np.sqrt(top, out=top)


def eig_pair_coefficients(p, kind, dtype):
    """(self, partner) coefficients (n,) of eig's pair transforms for a real matrix, p
    the pairing (eig.md, section 5; rules.eig._conjugate_pairs): ``kind="PH"``: the rows
    of Pᴴ X (x_j − i x_p on the first of a pair, i x_j + x_p on the second); ``"P-H"``:
    the rows of P⁻ᴴ X = ½ P X (½(x_j + x_p), ½ i (x_p − x_j)); ``"cols PH"``: the
    columns of X Pᴴ (x_j + x_p, i x_j − i x_p).  A real eigenvalue's row or column is
    kept: (1, 0)."""
    idx = np.arange(p.shape[-1])
    first, second = p > idx, p < idx
    if kind == "PH":
        pair = np.where(second, 1j, 1.0), np.where(first, -1j, np.where(second, 1.0, 0.0))
    elif kind == "P-H":
        pair = (np.where(first, 0.5, np.where(second, -0.5j, 1.0)),
                np.where(first, 0.5, np.where(second, 0.5j, 0.0)))
    else:
        pair = np.where(second, 1j, 1.0), np.where(first, 1.0, np.where(second, -1j, 0.0))
    return tuple(c.astype(dtype) for c in pair)


def _eig_cotangent_one(w, V, w_bar, V_bar, tol, real, dtype):
    """eig's cotangent (ComposedKernels.eig_cotangent) of one matrix in plain NumPy and
    one LAPACK gesv: the formulas of _eig_cotangent_batch_last, and for a real matrix in
    LAPACK's pair layout the real-arithmetic forms of eig.md section 5
    (eig_real_adjoint_product and eig_real_middle, shared with the rule's composed
    forms; the eigenvalue-only G of rules.eig._real_cotangent): a real solve, and real
    products, for a third of the complex path's flops.  The rule's
    composed form spends about as much again on dispatch and on testing the gaps twice."""
    n = V.shape[-1]
    V = V.astype(dtype, copy=False)
    D = w[None, :] - w[:, None]                                    # w_j − w_i
    mag = D.real * D.real + D.imag * D.imag
    np.fill_diagonal(mag, np.inf)
    top = np.abs(w).max() * tol
    if (mag <= top * top).any():
        return None                                    # a near pair: the composed form
    kd = scale = None
    p = eig_conjugate_pairs(w) if real else None                   # the partners
    if p is not None:
        Vrt = np.where((p < np.arange(n))[:, None], -V.imag.T, V.real.T)   # Vrᵀ
    else:
        Vh = np.conjugate(V).T                                      # Fortran-ordered
    if V_bar is None:
        if p is None:
            return _gesv(Vh, w_bar[:, None] * Vh), kd, scale
        # G = Re(P⁻ᴴ diag(w̄) Pᴴ) Vrᵀ: row j is ½ Re(w̄ⱼ + w̄ₚ) rⱼ + ½ Im(w̄ⱼ − w̄ₚ) rₚ
        wp = w_bar[p]
        G = (0.5 * (w_bar + wp).real)[:, None] * Vrt
        G += (0.5 * (w_bar - wp).imag)[:, None] * Vrt[p]
        return _gesv(Vrt, G), kd, scale
    kd = np.einsum("ij,ij->j", np.conjugate(V), V_bar)             # diag(Vᴴ V̄)
    Z = V_bar - V * kd.real
    Y = Vh @ Z if p is None else eig_real_adjoint_product(Vrt.T, Z, p)
    scale = np.maximum(np.abs(Y).max(), np.abs(kd).max())
    np.fill_diagonal(D, 1)
    Wm = np.conjugate(np.reciprocal(D, out=D), out=D)              # conj E
    Wm *= Y
    np.fill_diagonal(Wm, 0 if w_bar is None else w_bar)
    if p is None:
        X = _gesv(Vh, Wm @ Vh)
        return (X.real if real and X is not None else X), kd, scale
    return _gesv(Vrt, eig_real_middle(Wm, p) @ Vrt), kd, scale      # Vr⁻ᵀ M Vrᵀ


def _gesv(M, B):
    """M⁻¹ B by LAPACK gesv, M overwritten when it is Fortran-ordered; None if singular."""
    gesv = _lapack_fn("gesv", np.result_type(M, B))
    _, _, X, info = gesv(M, B, overwrite_a=1, overwrite_b=1)
    return None if info > 0 else X


def _solve_augmented(aug):
    """X from the augmented systems [A | R] (n, n + k, B), eliminated in place: A⁻¹ R as
    a view of aug (n, k, B); None if some A has a zero pivot."""
    n = aug.shape[0]
    try:
        _, _, rdiag = _lu_batch_last(aug, "eig", (aug.shape[-1],), need_perm=False)
    except LinAlgError:
        return None
    return _lu_substitute_batch_last(aug, rdiag, aug[:, n:], 0, lower=False)


def eig_conjugate_pairs(w):
    """p (..., n), the partner of each eigenvalue of w (..., n) (p > j: the first of a
    conjugate pair, p < j: the second, p = j: real), for eigenvalues of real matrices in
    LAPACK's real geev layout (a pair adjacent, exactly conjugate, Im > 0 first; NumPy's V
    then has v_{j+1} = conj v_j); None for any other layout (the complex forms then)."""
    first, second = w.imag > 0, w.imag < 0
    if second[..., 0].any() or first[..., -1].any() or \
            (second[..., 1:] != first[..., :-1]).any() or \
            (first[..., :-1] & (w[..., 1:] != np.conjugate(w[..., :-1]))).any():
        return None
    return np.arange(w.shape[-1]) + first.astype(np.intp) - second.astype(np.intp)


def eig_real_adjoint_product(Vr, Z, p):
    """Vᴴ Z for the plain V = Vr P of one real matrix (Vr LAPACK's real eigenvectors, p
    the pairing: eig.md section 5) and a complex Z: Pᴴ (Vrᵀ Z), the product real (Z's real
    and imaginary parts are the interleaved columns of its float view: one real product
    of twice the width, half the complex product's work), Pᴴ by row gathers."""
    Zc = np.ascontiguousarray(Z)
    X = np.matmul(Vr.T, Zc.view(Vr.dtype)).view(Zc.dtype)
    a, b = eig_pair_coefficients(p, "PH", X.dtype)
    return a[:, None] * X + b[:, None] * X[p]


def eig_real_middle(W, p):
    """M = Re(P⁻ᴴ W Pᴴ) for one real matrix's pairing p (eig.md section 5: Re(V⁻ᴴ W Vᴴ) =
    Vr⁻ᵀ M Vrᵀ), by row and column gathers along the pairing."""
    a, b = eig_pair_coefficients(p, "P-H", W.dtype)
    R = a[:, None] * W + b[:, None] * W[p]
    e, f = eig_pair_coefficients(p, "cols PH", W.dtype)
    return (R * e + R[:, p] * f).real


def _partner(X, first, second):
    """X (n, ..., B), batch-last, with each row j replaced by its conjugate partner's:
    j + 1 where first[j], j − 1 where second[j], itself for a real eigenvalue (the flags
    (n, B))."""
    shape = (first.shape[0],) + (1,) * (X.ndim - 2) + (first.shape[-1],)
    f, s = first.reshape(shape), second.reshape(shape)
    P = X.copy()
    P[:-1] = np.where(f[:-1], X[1:], X[:-1])
    P[1:] = np.where(s[1:], X[:-1], P[1:])
    return P


def _eig_cotangent_real_pairs(wl, V, w_bar, first, second):
    """_eig_cotangent_batch_last for real matrices and an eigenvalue cotangent alone, in
    real arithmetic (eig.md, section 5; rules.eig._real_cotangent for one matrix): with
    NumPy's V = Vr P (LAPACK's real Vr: Re v, and on a pair's second Im v of its first),

        Ā = Re(V⁻ᴴ diag(w̄) Vᴴ) = Vr⁻ᵀ G,   Gⱼ = ½ Re(w̄ⱼ + w̄ₚ) rⱼ + ½ Im(w̄ⱼ − w̄ₚ) rₚ,

    r the rows of Vrᵀ and p the pairing (_partner): a real solve instead of a complex
    one.  (With an eigenvector cotangent the same factorization needs the pair
    transforms on both sides of W; measured, their selects cost more than the complex
    products and solve they replace: 15 against 11 ms for 10,000 of 4×4.)"""
    n, B = wl.shape
    rdt = wl.real.dtype
    aug = np.empty((n, 2 * n, B), rdt)
    Vt = aug[:, :n]                                     # rows of Vrᵀ: Re v, −Im v (second)
    np.copyto(Vt, _batch_last(np.swapaxes(V.real, -1, -2), rdt))
    Vt[1:] = np.where(second[1:, None, :],
                      np.negative(_batch_last(np.swapaxes(V.imag[..., 1:], -1, -2), rdt)),
                      Vt[1:])
    wb = _batch_last(w_bar, wl.dtype)
    wp = _partner(wb, first, second)
    a, c = (wb + wp).real * 0.5, (wb - wp).imag * 0.5
    G = aug[:, n:]
    Vtp = _partner(Vt, first, second)
    np.multiply(a[:, None, :], Vt, out=G)
    G += np.multiply(c[:, None, :], Vtp, out=Vtp)
    X = _solve_augmented(aug)
    return None if X is None else (X, None, None)


def _vector_inverse(F, trans, scale=None):
    """op(A)⁻¹ (trans 0: A⁻¹, 1: A⁻ᵀ, 2: A⁻ᴴ), times ``scale`` (...) per matrix when given,
    from vectorised factors: the right-hand side scale·I (for trans 0 its row permutation
    P, which is where perm = column) built batch-last directly, the substitution, and one
    copy back to the stack's layout (with Pᵀ on the rows for trans 1, 2).  Against the
    solve with a broadcast identity, the gather and the transposing copy of the identity,
    and a pass for the scale, are saved: 10,000 of 4×4, two alternating runs, A⁻¹
    0.88–1.01 → 0.79–0.89 ms, w·A⁻ᴴ (slogdet's cotangent) 1.03–1.11 → 0.84–0.91 ms."""
    a, rows, rdiag = F.data, F.piv, F.rdiag
    n, B = a.shape[0], a.shape[-1]
    dtype = a.dtype if scale is None else np.result_type(a.dtype, np.asarray(scale).dtype)
    s = 1 if scale is None else np.broadcast_to(np.asarray(scale), F.shape[:-2]).reshape(B)
    if trans == 0:
        perm = np.ascontiguousarray((rows.reshape(B, n) % n).T)      # (n, B)
        y = np.empty((n, n, B), dtype)
        np.equal(perm[:, None, :], np.arange(n)[None, :, None], out=y)
        if scale is not None:
            y *= s
    else:
        y = np.zeros((n, n, B), dtype)
        idx = np.arange(n)
        y[idx, idx] = s
    if dtype != a.dtype:
        a, rdiag = a.astype(dtype), rdiag.astype(dtype)
    _lu_substitute_batch_last(a, rdiag, y, trans)
    x = _batch_first(y)                                                 # (B, n, n)
    if trans != 0:
        return _scatter_rows(x.reshape(B * n, n), rows).reshape(F.shape)  # x = Pᵀ y
    return x.reshape(F.shape)


def _jacobi_stack(A, min_batch):
    """Whether A is a stack of at least min_batch[n] finite real square matrices of an
    order n that min_batch lists: the cases the vectorised Jacobi kernels beat LAPACK."""
    n = A.shape[-1]
    return (A.ndim > 2 and A.dtype.kind == "f" and A.shape[-2] == n and n in min_batch
            and A.size // (n * n) >= min_batch[n] and _all_finite(A))


class _Rotations:
    """Plane (Jacobi) rotations over a stack laid out batch-last, every step one NumPy
    operation over all B matrices; shared by :func:`_jacobi_eigh` and :func:`_jacobi_svd`.
    Works in double precision (float32 input too: the rotations accumulate rounding, so
    they run in double and the result is rounded once); ``v`` accumulates the rotations
    (the eigen- or right singular vectors) when ``vectors``."""

    dtype = np.dtype(np.float64)

    def __init__(self, n, B, vectors):
        self.t1 = np.empty((n, B), self.dtype)
        self.t2 = np.empty((n, B), self.dtype)
        self.v = None
        if vectors:
            self.v = np.zeros((n, n, B), self.dtype)
            for i in range(n):
                self.v[i, i] = 1

    @staticmethod
    def scaled(S):
        """S (B, n, n) divided by each matrix's largest entry, batch-last (n, n, B), and
        the scales (1 for a zero matrix)."""
        m = np.abs(S).max(axis=(-2, -1))
        m[m == 0] = 1
        return np.moveaxis(S / m[:, None, None], 0, -1).copy(), m

    @staticmethod
    def angle(num, den):
        """(c, s, t) of the rotation with tan 2θ = 2·den / num, i.e. t = tan θ the smaller
        root of t² + 2ζt − 1 = 0, ζ = num / (2 den); the identity where den = 0."""
        zeta = num / (2 * den)                               # ±inf or nan where den = 0
        # √(1 + ζ²) as a square root, not np.hypot (7× its cost); past |ζ| ~ 1e154
        # the square overflows and t = 0 where it would be below 1e-154: a rotation of that
        # size changes nothing above the stopping tolerance
        r = np.multiply(zeta, zeta)
        r += 1
        np.sqrt(r, out=r)
        r += np.abs(zeta)
        t = np.copysign(np.reciprocal(r, out=r), zeta)
        t[den == 0] = 0
        c = np.multiply(t, t)
        c += 1
        np.sqrt(c, out=c)
        np.reciprocal(c, out=c)
        return c, t * c, t

    def rotate(self, xp, xq, c, s):
        """(xp, xq) <- (c xp − s xq, s xp + c xq), in place; xp, xq (n, B) or (B,)."""
        t1, t2 = (self.t1, self.t2) if xp.ndim == 2 else (self.t1[0], self.t2[0])
        np.multiply(s, xp, out=t1)
        np.multiply(s, xq, out=t2)
        xp *= c
        xp -= t2
        xq *= c
        xq += t1

    def rotate_vectors(self, p, q, c, s):
        if self.v is not None:
            self.rotate(self.v[:, p], self.v[:, q], c, s)

    def vectors(self, order):
        """The accumulated vectors (B, n, n), columns in ``order`` (B, n)."""
        return np.take_along_axis(np.moveaxis(self.v, -1, 0), order[:, None, :], -1)


def _jacobi_eigh(A, lower, vectors=True):
    """(w, V) of a large stack of tiny real symmetric matrices (JACOBI_MIN_BATCH), read from
    one triangle, by cyclic Jacobi rotations vectorised across the stack (:class:`_Rotations`):
    1.15–1.7× faster than NumPy's per-matrix LAPACK call for 10,000 matrices of order 2–4
    (see JACOBI_MIN_BATCH).  Each rotation updates the 2×2 block in closed form and the
    other entries of rows and columns p, q once (symmetric storage kept by mirroring).
    Each matrix is scaled by its largest entry; sweeps stop when the off-diagonal part is
    below eps·‖A‖ in every matrix (2–5 sweeps: Jacobi converges quadratically, clusters
    included), at most 30.  Eigenvalues ascending, as LAPACK's; backward stable like it
    (Demmel–Veselić: more accurate for graded matrices)."""
    shape = A.shape
    n = shape[-1]
    B = A.size // (n * n)
    R = _Rotations(n, B, vectors)
    a, m = R.scaled(full_from_triangle(np, A.reshape(B, n, n).astype(R.dtype, copy=False),
                                       lower))                         # (n, n, B), |a| <= 1
    tol = np.finfo(R.dtype).eps ** 2 * np.einsum("ijb,ijb->b", a, a)
    iu = np.triu_indices(n, 1)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for sweep in range(30):
            for p in range(n - 1):
                for q in range(p + 1, n):
                    apq = a[p, q]
                    c, s, t = R.angle(a[q, q] - a[p, p], apq)
                    # Jᵀ a J on the symmetric a: the 2×2 block becomes diag(a_pp − t a_pq,
                    # a_qq + t a_pq) (Rutishauser's form), and for every other k the pair
                    # (a_kp, a_kq) rotates, mirrored into rows p and q: a third of the
                    # work of rotating two rows and two columns
                    ta = np.multiply(t, apq, out=t)
                    a[p, p] -= ta
                    a[q, q] += ta
                    a[p, q] = 0
                    a[q, p] = 0
                    for k in range(n):
                        if k != p and k != q:
                            R.rotate(a[k, p], a[k, q], c, s)
                            a[p, k] = a[k, p]
                            a[q, k] = a[k, q]
                    R.rotate_vectors(p, q, c, s)
            off = 2 * np.einsum("kb,kb->b", a[iu], a[iu])    # the off-diagonal part, summed
            if bool(np.all(off <= tol)):                     # directly (a difference cancels)
                break
    w = np.diagonal(a, 0, 0, 1)                                  # (B, n)
    order = np.argsort(w, axis=-1)
    w = (np.take_along_axis(w, order, -1) * m[:, None]).reshape(shape[:-1])
    w = w.astype(A.dtype, copy=False)
    if not vectors:
        return w
    return w, np.ascontiguousarray(R.vectors(order), dtype=A.dtype).reshape(shape)


def _jacobi_svd(A, vectors=True):
    """SVD of a large stack of tiny real square matrices (JACOBI_SVD_MIN_BATCH) by one-sided
    (Hestenes) Jacobi rotations of the columns, vectorised across the stack like
    :func:`_jacobi_eigh`: 1.9–3.8× faster than NumPy's per-matrix gesdd for 10,000
    matrices of order 4–2.  Returns (U, s, Vh) with s descending, or s alone.  The columns
    are rotated until every pair is orthogonal to 8 eps; singular values come out as column
    norms, to high relative accuracy.  U is the normalised columns, orthonormal to about
    eps·σ₁/σₙ: matrices with σₙ < σ₁/1000 (rank deficient ones included) are redone by
    LAPACK when U is wanted."""
    shape = A.shape
    n = shape[-1]
    B = A.size // (n * n)
    R = _Rotations(n, B, vectors)
    flat = A.reshape(B, n, n).astype(R.dtype, copy=False)
    g, m = R.scaled(flat)                                             # (rows, cols, B)
    tol = 8 * np.finfo(R.dtype).eps
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for sweep in range(30):
            worst = np.zeros(B, R.dtype)
            for p in range(n - 1):
                for q in range(p + 1, n):
                    gp, gq = g[:, p], g[:, q]
                    al = np.einsum("ib,ib->b", gp, gp)
                    be = np.einsum("ib,ib->b", gq, gq)
                    ga = np.einsum("ib,ib->b", gp, gq)
                    rel = np.abs(ga) / np.sqrt(al * be)
                    rel[~np.isfinite(rel)] = 0                 # a zero column: nothing to do
                    np.maximum(worst, rel, out=worst)
                    c, s, _ = R.angle(be - al, ga)
                    R.rotate(gp, gq, c, s)
                    R.rotate_vectors(p, q, c, s)
            if bool(np.all(worst <= tol)):
                break
    sig = np.sqrt(np.einsum("ijb,ijb->jb", g, g))                  # (cols, B)
    order = np.argsort(-sig, axis=0).T                              # (B, n), descending
    s_out = np.take_along_axis(sig.T, order, -1) * m[:, None]
    if not vectors:
        return s_out.reshape(shape[:-1]).astype(A.dtype, copy=False)
    U = np.moveaxis(g / np.where(sig == 0, 1, sig)[None], -1, 0)     # (B, rows, cols)
    U = np.take_along_axis(U, order[:, None, :], -1)
    Vh = np.swapaxes(R.vectors(order), -1, -2)
    redo = np.flatnonzero(~(s_out[:, -1] * 1000 > s_out[:, 0]))     # zero matrices too
    if redo.size:
        U[redo], s_out[redo], Vh[redo] = np.linalg.svd(flat[redo])
    return (np.ascontiguousarray(U, dtype=A.dtype).reshape(shape),
            s_out.astype(A.dtype).reshape(shape[:-1]),
            np.ascontiguousarray(Vh, dtype=A.dtype).reshape(shape))


def check_diagonal(d, batch, op, what="triangular matrix"):
    """Raise LinAlgError naming the matrix of the stack (of shape ``batch``) whose diagonal
    d (..., n) has a zero: a singular triangular (or diagonal) matrix.  Any backend."""
    zero = d == 0
    if bool(zero.any()):
        xp = namespace_of(d)
        i, j = divmod(int(xp.flatnonzero(zero.reshape(-1))[0]), d.shape[-1])
        raise LinAlgError(f"{op}: {what} is singular (diagonal entry {j} is "
                          f"zero){_where(op, batch, i)}")


def _vector_tri_solve(A, b, lower, trans, unit, op, check=True):
    """Triangular solves over a stack of tiny matrices, batch-last like the LU above."""
    n, k = b.shape[-2:]
    batch = A.shape[:-2]
    B = int(np.prod(batch))
    dtype = np.result_type(A.dtype, b.dtype)
    At = A.reshape(B, n, n)
    if trans:
        At = np.swapaxes(At, -1, -2)
        lower = not lower
    T = _batch_last(At, dtype)                                           # (n, n, B)
    if trans == 2 and dtype.kind == "c":
        np.conjugate(T, out=T)
    if check and not unit:
        check_diagonal(np.diagonal(T, 0, 0, 1), batch, op)              # (B, n)
    y = _batch_last(b.reshape(B, n, k), dtype)                           # (n, k, B)
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


def _tri_inverse_leaf(T):
    """Inverse of a stack (B, n, n) of small lower-triangular matrices by substitution,
    vectorised across the stack (batch-last): row i of T⁻¹ from the rows above it."""
    B, n, _ = T.shape
    Tb = np.moveaxis(T, 0, -1)                                       # (n, n, B) view
    d = 1.0 / np.diagonal(Tb, 0, 0, 1).T                             # (n, B)
    X = np.zeros((n, n, B), dtype=np.result_type(T.dtype, d.dtype))
    X[0, 0] = d[0]
    for i in range(1, n):
        X[i, :i] = np.einsum("jb,jcb->cb", Tb[i, :i], X[:i, :i]) * -d[i]
        X[i, i] = d[i]
    return np.moveaxis(X, -1, 0)


def _tri_inverse(T, leaf=SMALL_N):
    """Inverse of a stack of nonsingular lower-triangular matrices (..., n, n), by
    halving: inv([[A, 0], [C, D]]) = [[A⁻¹, 0], [−D⁻¹ C A⁻¹, D⁻¹]] with batched products
    and vectorised leaves, no per-matrix Python loop (the diagonal is not checked)."""
    shape = T.shape
    n = shape[-1]
    T = T.reshape((-1, n, n))
    if n <= leaf:
        return _tri_inverse_leaf(T).reshape(shape)
    m = n // 2
    out = np.zeros(T.shape, dtype=T.dtype)
    Ai = _tri_inverse(T[:, :m, :m], leaf)
    Di = _tri_inverse(T[:, m:, m:], leaf)
    out[:, :m, :m] = Ai
    out[:, m:, m:] = Di
    low = out[:, m:, :m]
    np.matmul(Di, T[:, m:, :m] @ Ai, out=low)
    np.negative(low, out=low)
    return out.reshape(shape)


def _trtrs_one(A, b, lower, trans, unit=False):
    """op(T) x = b for T the ``lower`` triangle of one real matrix A (trans 0 or 1), by
    LAPACK trtrs on A's free Fortran form: A itself when Fortran-ordered (SciPy's and
    linalgad's LU and Cholesky factors), else the view Aᵀ (opposite triangle, opposite op)
    — never a copy (f2py copied a Fortran-ordered A passed as Aᵀ: 7.7 ms for a 0.48 ms
    solve at n = 1024).  (x, info), info > 0 where the diagonal has a zero."""
    trtrs = _lapack_fn("trtrs", A.dtype)
    if A.flags.f_contiguous and not A.flags.c_contiguous:
        return trtrs(A, b, lower=lower, trans=trans, unitdiag=unit)
    return trtrs(A.T, b, lower=not lower, trans=1 - trans, unitdiag=unit)


def _fused_one_matrix(a, x_bar, *others):
    """Whether a solve cotangent of one matrix runs as a fused kernel: a square real a,
    2-D right-hand sides with columns (LAPACK rejects lda = 0), every operand a plain NumPy
    array of a's dtype (stacks, complex, mixed dtypes and traced values take the composed
    form), and the n × 2k × n product below ops.TRI_PRODUCT_WORK — past it the composed
    form's triangle product by row blocks is faster (cho_solve at n = 256 with 8
    right-hand sides: 3.85 against 3.50 times the forward)."""
    from .ops import TRI_PRODUCT_WORK
    if not all(type(v) is np.ndarray and v.dtype == a.dtype for v in (a, x_bar) + others):
        return False
    n = a.shape[-1]
    return (a.ndim == 2 and a.shape[0] == n and a.dtype.char in "fd" and x_bar.ndim == 2
            and x_bar.size != 0 and n * n * 2 * x_bar.shape[-1] < TRI_PRODUCT_WORK)


def _stack_trsm_pays(n, k):
    """Whether one direct BLAS trsm call per matrix beats the blocked solve over the stack
    (measured, k right-hand sides, one thread: 1000 of order 32 with k = 8 1.3 against
    1.9 ms; at order 16 only once k >= n; below that the batched blocks win)."""
    return n >= STACK_TRSM_N or (n >= STACK_TRSM_N // 2 and k >= n)


def _trsm_operand(A, dtype, lower, trans):
    """(T, lower, trans): the stack A (..., n, n) as _lapack_stack.trsm reads it, a
    C-contiguous (B, n, n) array of ``dtype`` — the transposes' C-contiguous view as it is
    (opposite triangle, ᵀ toggled), else a copy — and op(T) the same operator as op(A)."""
    n = A.shape[-1]
    if trans == 2 and dtype.kind != "c":
        trans = 1
    T = A.reshape((-1, n, n))
    if not (T.flags.c_contiguous and T.dtype == dtype):
        Tt = np.swapaxes(T, -1, -2)
        if Tt.flags.c_contiguous and T.dtype == dtype and trans != 2:
            return Tt, not lower, 1 - trans                 # op(T) = op'(Tᵀ), no copy
        T = np.ascontiguousarray(T, dtype=dtype)
    return T, lower, trans


def _stack_tri_solve(A, b, lower, trans, unit, op):
    """Triangular solves over a stack, one BLAS trsm call per matrix by address
    (linalgad._lapack_stack.trsm); the diagonal is checked here, as trtrs would.  The
    right-hand sides are copied once, in the direction the kernel set solves faster
    (:func:`_stack_trsm`)."""
    n, k = b.shape[-2:]
    T, lower, trans = _trsm_operand(A, np.result_type(A.dtype, b.dtype), lower, trans)
    if not unit:
        check_diagonal(np.diagonal(T, 0, -2, -1), A.shape[:-2], op)
    x = _stack_trsm(T, b.reshape((T.shape[0], n, k)), lower, trans, unit)
    return x.reshape(b.shape[:-2] + (n, k))


def _stack_tri_solve_right(A, X, lower, trans):
    """X op(T) = X for X a C-contiguous stack (..., m, n) of A's stack and dtype (solved
    in place, or as the transposed system on a copy: use the result), T the nonsingular
    triangle ``lower`` of each A; one trsm per matrix.  (A row operation: the caller may
    permute X's rows before or after.)"""
    T, lower, trans = _trsm_operand(A, X.dtype, lower, trans)
    x = _stack_trsm(T, X.reshape((T.shape[0],) + X.shape[-2:]), lower, trans, False,
                    right=True, inplace=True)
    return x.reshape(X.shape)


def _stack_trsm(T, b, lower, trans, unit, right=False, inplace=False):
    """op(T) X = B (``right``: X op(T) = B) for T, lower, trans as _trsm_operand returns
    them and b the (B, n, k) ((B, k, n)) right-hand sides: the solution, a new array (or
    a transposed view of one), or b itself where ``inplace`` allows overwriting it.

    A real system may be solved as the transposed one, op(T)ᵀ Xᵀ = Bᵀ (op(T)ᵀ is T with
    the other op), on Bᵀ: OpenBLAS's small trsm kernels are up to twice as fast in one
    direction, and which one depends on the kernel set (_lapack_stack.trsm_cost).  The
    cheaper form is taken, counting the copy each needs (none for b, or for bᵀ, where it
    is C-contiguous and may be overwritten); where nothing was measured, the direct one."""
    trans = 1 if trans == 2 and T.dtype.kind != "c" else trans

    def copy_cost(x):
        free = inplace and x.flags.c_contiguous and x.dtype == T.dtype
        return 0.0 if free else _lapack_stack.TRSM_COPY_MS

    direct = _lapack_stack.trsm_cost(T.dtype, right, lower, trans)
    if direct is not None:
        bt = np.swapaxes(b, -1, -2)
        flipped = _lapack_stack.trsm_cost(T.dtype, not right, lower, 1 - trans)
        if flipped + copy_cost(bt) < direct + copy_cost(b):
            xt = bt if copy_cost(bt) == 0.0 else np.array(bt, dtype=T.dtype, order="C")
            _lapack_stack.trsm(T, xt, lower, 1 - trans, unit, right=not right)
            return np.swapaxes(xt, -1, -2)
    x = b if copy_cost(b) == 0.0 else np.array(b, dtype=T.dtype, order="C")
    _lapack_stack.trsm(T, x, lower, trans, unit, right=right)
    return x


def _blocked_tri_solve(A, b, lower, trans, unit, op):
    """Triangular solves over a stack by recursive halving: the off-diagonal updates
    are batched matrix products, the diagonal blocks (n <= SMALL_N) are solved by
    the vectorised substitution.  No per-matrix Python loop."""
    n, k = b.shape[-2:]
    batch = A.shape[:-2]
    dtype = np.result_type(A.dtype, b.dtype)
    if not unit:
        check_diagonal(np.diagonal(A, 0, -2, -1), batch, op)
    T = A.reshape((-1, n, n))
    if trans:
        T = np.swapaxes(T, -1, -2)
        if trans == 2 and dtype.kind == "c":
            T = T.conj()
        lower = not lower
    T = T.astype(dtype, copy=False)
    x = np.array(b.reshape((T.shape[0], n, k)), dtype=dtype)  # solved in place, by blocks

    def leaf(lo, hi):
        # the inverse of a small diagonal block by vectorised substitution, then one
        # batched product (what blocked batched trsm kernels do)
        if unit:
            eye = np.broadcast_to(np.eye(hi - lo, dtype=dtype), (T.shape[0], hi - lo, hi - lo))
            inv = _vector_tri_solve(T[:, lo:hi, lo:hi], eye, lower, 0, unit, op, check=False)
        elif lower:
            inv = _tri_inverse_leaf(T[:, lo:hi, lo:hi])
        else:     # inv(U) = inv(Uᵀ)ᵀ, Uᵀ lower
            inv = np.swapaxes(_tri_inverse_leaf(np.swapaxes(T[:, lo:hi, lo:hi], -1, -2)),
                              -1, -2)
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


# -- circulant matrices (linalgad/rules/circulant.py) -----------------------------------------
# circulant(c)[i, j] = c[(i − j) mod n] is diagonalised by the DFT: its eigenvalues are
# λ = fft(c).  For a real c only the half spectrum rfft(c) (n // 2 + 1 entries) is kept: the
# other half is its conjugate mirror.  Module functions of the array namespace xp (NumPy or
# CuPy): the same code runs on both.

def circulant_spectrum(xp, c):
    """The eigenvalues of circulant(c) along the last axis: rfft(c) (the half spectrum) for a
    real c, fft(c) for a complex one."""
    return xp.fft.fft(c, axis=-1) if c.dtype.kind == "c" else xp.fft.rfft(c, axis=-1)


def circulant_near_zero(xp, lam, n, tol):
    """SciPy's singularity rule: |λ| ≤ tol, tol defaulting to max|λ| · n · eps(float64) for
    each matrix (np.linalg.matrix_rank's).  A boolean array shaped like lam."""
    a = xp.abs(lam)
    if tol is None:
        tol = a.max(axis=-1, keepdims=True) * (n * np.finfo(np.float64).eps)
    elif isinstance(tol, tuple):        # (shape, values): one tol per circulant of the stack
        shape, values = tol
        tol = xp.asarray(np.asarray(values, dtype=np.float64).reshape(shape))
    return a <= tol


def _circulant_full(xp, half, n):
    """The full spectrum of a real vector from its half (rfft): X[n − k] = conj(X[k])."""
    tail = half[..., 1:(n + 1) // 2][..., ::-1]
    return xp.concatenate([half, xp.conj(tail) if half.dtype.kind == "c" else tail], axis=-1)


def circulant_inverse_spectrum(xp, lam, zero):
    """λ⁺: 1/λ, and 0 on the dropped modes where ``zero`` is True (None: none) — the
    spectrum of the (pseudo-)inverse, kept so that every solve with C or Cᴴ is one
    multiplication (a complex division costs several times more)."""
    if zero is None:
        return 1 / lam
    return xp.where(zero, 0, 1 / xp.where(zero, 1, lam))


def circulant_solve(xp, rlam, b, n, half, dtype):
    """x = ifft(fft(b) · λ⁺) along the last axis, broadcasting rlam's and b's stacks.
    ``half``: rlam is the half spectrum of a real c; a real b then stays in the real
    transforms (rfft/irfft)."""
    if half and b.dtype.kind != "c":
        x = xp.fft.irfft(xp.fft.rfft(b, axis=-1) * rlam, n, axis=-1)
    else:
        if half:
            rlam = _circulant_full(xp, rlam, n)
        x = xp.fft.ifft(xp.fft.fft(b, axis=-1) * rlam, axis=-1)
    if dtype.kind != "c":
        x = x.real
    return x.astype(dtype, copy=False)


def circulant_convolve(xp, a, x):
    """circulant(a) @ x along the last axis: the circular convolution ifft(fft(a) fft(x)),
    broadcasting the stacks (real transforms for real inputs)."""
    n = x.shape[-1]
    dtype = np.result_type(a.dtype, x.dtype)
    if dtype.kind != "c":
        y = xp.fft.irfft(xp.fft.rfft(a, axis=-1) * xp.fft.rfft(x, axis=-1), n, axis=-1)
    else:
        y = xp.fft.ifft(xp.fft.fft(a, axis=-1) * xp.fft.fft(x, axis=-1), axis=-1)
    return y.astype(dtype, copy=False)


def circulant_solve_vjp(xp, rlam, half, x, g, c_batch, need_c, need_b):
    """The solve's cotangents in one pass, for plain arrays: with Q = F x̄ · conj(λ⁺),
    b̂ = F⁻¹ Q and c̄ = −F⁻¹(conj(F x) Q) summed over the stack dims that c was broadcast
    along (``c_batch``: c's stack shape), in Fourier space before the one inverse transform.  The same formulas as the rule's composite VJP (circulant.md),
    with the spectrum reused: four transforms where the composite takes five."""
    n = x.shape[-1]
    if half and x.dtype.kind != "c" and g.dtype.kind != "c":
        fwd, inv = xp.fft.rfft, (lambda q: xp.fft.irfft(q, n, axis=-1))
    else:
        if half:
            rlam = _circulant_full(xp, rlam, n)
        fwd, inv = xp.fft.fft, (lambda q: xp.fft.ifft(q, axis=-1))
    Q = fwd(g, axis=-1)
    Q *= xp.conj(rlam)
    b_hat = inv(Q) if need_b else None
    c_bar = None
    if need_c:
        P = xp.conj(fwd(x, axis=-1))
        P *= Q
        lead = P.ndim - 1 - len(c_batch)
        axes = tuple(range(lead)) + tuple(lead + i for i, s in enumerate(c_batch)
                                          if s == 1 and P.shape[lead + i] != 1)
        if axes:
            P = P.sum(axis=axes, keepdims=True)
        if lead:
            P = P.reshape(P.shape[lead:])
        c_bar = -inv(P)
    return c_bar, b_hat



# -- the matrix sign function (linalgad/rules/signm.py) ---------------------------------------
# The Schur method (Higham 2008, Alg. 5.5): A = Z T Zᴴ with the eigenvalues of the right half
# plane first (LAPACK gees + trsen: SciPy's schur(sort='rhp'); the real Schur form for real A),
# T = [[T₁₁, T₁₂], [0, T₂₂]], sign(T) = [[I, X], [0, −I]] with T₁₁X − XT₂₂ = 2T₁₂ (trsyl).  The
# Fréchet derivative in the same basis, block-diagonalised by W = [[I, −X/2], [0, I]]: two more
# trsyl solves (signm.md, sections 1 and 2).  Matrix by matrix on the host; a GPU array makes a
# documented round trip (CuPy has no Schur decomposition), the factors stay on the host.

def to_host(x):
    """x as a NumPy array (a CuPy array copied to the host; anything else through asarray)."""
    xp = namespace_of(x)
    return np.asarray(x) if xp is np else xp.asnumpy(x)


def _like(x, ref):
    """x (a NumPy array) on ref's device."""
    xp = namespace_of(ref)
    return x if xp is np else xp.asarray(x)


def _sign_sylvester(a, b, c, op):
    """X with a X − X b = c for (quasi-)upper triangular a, b (LAPACK ?trsyl, isgn = −1); a
    complex c with real a, b as its real and imaginary parts."""
    if a.dtype.kind == "f" and c.dtype.kind == "c":
        return _sign_sylvester(a, b, c.real, op) + 1j * _sign_sylvester(a, b, c.imag, op)
    dtype = np.result_type(a.dtype, c.dtype)
    trsyl = _lapack_fn("trsyl", dtype)
    x, scale, info = trsyl(a.astype(dtype, copy=False), b.astype(dtype, copy=False),
                           c.astype(dtype), isgn=-1)
    if info < 0:
        raise LinAlgError(f"{op}: illegal argument {-info} to trsyl")
    if info == 1:
        raise LinAlgError(f"{op}: the Sylvester equation of the sign was perturbed by LAPACK "
                          "(eigenvalues in opposite half planes too close, or the matrix "
                          "too badly scaled): the sign is not determined to working precision")
    return x / scale if scale != 1 else x


def _sign_scale(a):
    """A power of two c with max |c a| ≈ 1 (the largest entry: ‖a‖_F itself under- or
    overflows there): sign(c A) = sign(A) exactly, and LAPACK's trsyl clamps denominators
    below ~1e-292 (a matrix scaled by 1e-295 lost every digit)."""
    nrm = float(np.abs(a).max(initial=0.0))
    if not np.isfinite(nrm) or nrm == 0.0:
        return 1.0
    return float(2.0 ** -np.round(np.log2(nrm)))


def signm_schur(A, op="signm"):
    """(S, (T, Z, ST, p)) for a stack A (..., n, n): S = sign(A) by the Schur method, with the
    ordered Schur factors T, Z (A = Z T Zᴴ, the p eigenvalues of the right half plane first),
    ST = sign(T) = [[I, X], [0, −I]] and p (...,) kept on the host for
    ``signm_frechet_schur``.  LinAlgError naming ``op`` (and the matrix of a stack) for an
    eigenvalue with |Re λ| <= 10 n ε max|λ|: on the imaginary axis to working precision."""
    import scipy.linalg
    a_host = to_host(A)
    n = A.shape[-1]
    batch = A.shape[:-2]
    if a_host.size == 0:
        z = np.zeros(a_host.shape, dtype=a_host.dtype)
        return _like(z.copy(), A), (z, z, z, np.zeros(batch, dtype=np.int64), np.ones(batch))
    real = a_host.dtype.kind == "f"
    flat = a_host.reshape(-1, n, n)
    T = np.empty_like(flat)
    Z = np.empty_like(flat)
    ST = np.zeros_like(flat)
    p = np.empty(len(flat), dtype=np.int64)
    eps = float(np.finfo(a_host.dtype).eps)
    scales = np.empty(len(flat))
    for i, a in enumerate(flat):
        c = scales[i] = _sign_scale(a)
        try:
            t, z, k = scipy.linalg.schur(a * c if c != 1.0 else a,
                                         output="real" if real else "complex", sort="rhp",
                                         check_finite=False)
        except (LinAlgError, ValueError) as e:
            raise LinAlgError(f"{op}: the Schur form could not be ordered by half planes "
                              f"({e}){_where(op, batch, i)}") from None
        re = np.diagonal(t).real            # real parts (a 2×2 block's diagonal is its own)
        # the eigenvalues' backward-error scale is ε ‖T‖_F (a 2×2 block's imaginary part
        # counts: a pair on the axis has a zero diagonal there), with no growth in n
        tol = 100 * eps * float(np.linalg.norm(t))
        j = int(np.argmin(np.abs(re)))
        if abs(re[j]) <= tol:
            raise LinAlgError(
                f"{op}: the matrix has an eigenvalue on the imaginary axis (Re λ = "
                f"{re[j] / c:.2e}, within {tol / c:.1e} of 0){_where(op, batch, i)}: the sign "
                "function is undefined there (SciPy returns a value with its sign(0) = 0 "
                "convention, which is not a matrix sign: S² ≠ I)")
        st = ST[i]
        st[np.arange(k), np.arange(k)] = 1
        st[np.arange(k, n), np.arange(k, n)] = -1
        if 0 < k < n:
            st[:k, k:] = _sign_sylvester(t[:k, :k], t[k:, k:], 2 * t[:k, k:], op)
        # a posteriori: the sign's relative condition is about ‖S‖², so where ε‖S‖_F² is
        # far past 1 (here 1/√ε) nothing is left (eigenvalues on the axis in exact
        # arithmetic that rounding moved off it: a rotated nilpotent 4×4 gives 1e25).  The
        # Schur method often does far better than that bound (8e-8 measured at ε‖S‖² = 2.4),
        # so the bar is set well past it
        snorm2 = float(np.linalg.norm(st)) ** 2
        if eps ** 1.5 * snorm2 >= 1.0:
            raise LinAlgError(
                f"{op}: the sign is not determined{_where(op, batch, i)}: ‖sign(T)‖_F² = "
                f"{snorm2:.1e}, so its condition ε‖S‖² is {eps * snorm2:.0e}: eigenvalues lie "
                "on or too near the imaginary axis for this precision (a nilpotent or "
                "strongly non-normal matrix)")
        T[i], Z[i], p[i] = t, z, k
    S = Z @ ST @ _mH(np, Z)
    shape = a_host.shape
    factors = (T.reshape(shape), Z.reshape(shape), ST.reshape(shape), p.reshape(batch),
               scales.reshape(batch))
    return _like(S.reshape(shape), A), factors


def signm_frechet_schur(factors, E, op="signm"):
    """L(A, E) from ``signm_schur``'s factors of A, for E (..., n, n) of A's stack: with
    Ẽ = ZᴴEZ, Y = −X/2, Ê₁₂ = Ẽ₁₁Y + Ẽ₁₂ − Y Ẽ₂₁ Y − Y Ẽ₂₂, T₁₁L₁₂ − L₁₂T₂₂ = 2Ê₁₂,
    T₂₂L₂₁ − L₂₁T₁₁ = −2Ẽ₂₁ and L = Z [[Y L₂₁, L₁₂ − Y L₂₁ Y], [L₂₁, −L₂₁ Y]] Zᴴ."""
    T, Z, ST, p, scales = factors           # T: the Schur form of c A; L(A, E) = L(cA, cE)
    e_host = to_host(E)
    n = T.shape[-1]
    dtype = np.result_type(T.dtype, e_host.dtype)
    if e_host.size == 0:
        return _like(np.zeros(e_host.shape, dtype=dtype), E)
    Et = (_mH(np, Z) @ e_host @ Z).reshape(-1, n, n)
    Et = Et * scales.reshape(-1)[:, None, None].astype(Et.real.dtype)
    out = np.zeros(Et.shape, dtype=dtype)
    Tf, STf, pf = T.reshape(-1, n, n), ST.reshape(-1, n, n), p.reshape(-1)
    for i in range(len(Et)):
        k = int(pf[i])
        if k == 0 or k == n:
            continue
        t, e = Tf[i], Et[i]
        Y = -0.5 * STf[i][:k, k:]
        E11, E12, E21, E22 = e[:k, :k], e[:k, k:], e[k:, :k], e[k:, k:]
        Eh12 = E11 @ Y + E12 - Y @ (E21 @ Y) - Y @ E22
        L12 = _sign_sylvester(t[:k, :k], t[k:, k:], 2 * Eh12, op)
        L21 = _sign_sylvester(t[k:, k:], t[:k, :k], -2 * E21, op)
        YL21 = Y @ L21
        o = out[i]
        o[:k, :k] = YL21
        o[:k, k:] = L12 - YL21 @ Y
        o[k:, :k] = L21
        o[k:, k:] = -(L21 @ Y)
    L = Z @ out.reshape(e_host.shape) @ _mH(np, Z)
    return _like(L.astype(dtype, copy=False), E)


# -- funm: SciPy's Schur–Parlett values and the eigenvectors of the triangular factor ----------
# scipy.linalg.funm's own steps (schur, rsf2csf, the Parlett recurrence, _maybe_real, its error
# estimate), matrix by matrix on the host (SciPy 1.17 loops over a stack too); a GPU array makes
# a documented round trip (CuPy has no Schur decomposition).  ``funm_eigvectors`` diagonalizes
# the triangular factor by back substitution (no second factorization): A = W Λ W⁻¹, W = Z X.

def _funm_parlett(F, T, n, minden):
    """The Parlett recurrence of Golub & Van Loan, Alg. 11.1.1 (scipy.linalg.funm's
    ``_funm_loops``, used when SciPy's compiled one cannot be imported)."""
    for p in range(1, n):
        for i in range(1, n - p + 1):
            j = i + p
            s = T[i - 1, j - 1] * (F[j - 1, j - 1] - F[i - 1, i - 1])
            ksl = slice(i, j - 1)
            val = T[i - 1, ksl] @ F[ksl, j - 1] - F[i - 1, ksl] @ T[ksl, j - 1]
            s = s + val
            den = T[j - 1, j - 1] - T[i - 1, i - 1]
            if den != 0.0:
                s = s / den
            F[i - 1, j - 1] = s
            minden = min(minden, abs(den))
    return F, minden


def funm_schur(A, func, op="funm", disp=False):
    """(F, err, T, Z) for a stack A (..., n, n): F = func(A) by scipy.linalg.funm's steps
    (its values and its real/complex output rule), err its error estimate per matrix (a host
    array), T, Z the complex Schur factors A = Z T Zᴴ (host).  ``disp``: print SciPy's notice
    for an estimate above 1000 tol, as SciPy does."""
    import scipy.linalg
    try:
        from scipy.linalg._linalg_pythran import _funm_loops
    except ImportError:                                      # pragma: no cover
        _funm_loops = _funm_parlett
    a = to_host(A)
    n = a.shape[-1]
    batch = a.shape[:-2]
    ctype = np.result_type(a.dtype, np.complex64)
    if a.size == 0:
        z = np.zeros(a.shape, dtype=ctype)
        return _like(np.zeros(a.shape, a.dtype), A), np.zeros(batch, np.finfo(a.dtype).dtype), z, z
    flat = a.reshape(-1, n, n)
    Fs, errs = [], []
    Ts = np.empty(flat.shape, dtype=ctype)
    Zs = np.empty(flat.shape, dtype=ctype)
    single = np.finfo(a.dtype).dtype == np.float32
    for m, x in enumerate(flat):
        T, Z = scipy.linalg.schur(x, check_finite=False)
        T, Z = scipy.linalg.rsf2csf(T, Z, check_finite=False)
        F = np.diag(np.asarray(func(np.diag(T)))).astype(T.dtype.char)
        minden = abs(T[0, 0])
        F, minden = _funm_loops(F, T, n, minden)
        F = Z @ F @ np.conj(Z.T)
        if x.dtype.kind == "f" and F.dtype.kind == "c":      # SciPy's _maybe_real
            tol = np.finfo(np.float32).eps * 1e3 if F.dtype == np.complex64 \
                else np.finfo(np.float64).eps * 1e6
            if np.allclose(F.imag, 0.0, atol=tol):
                F = F.real
        tol = np.finfo(np.float32 if F.dtype.char in "fF" else np.float64).eps
        if minden == 0.0:
            minden = tol
        err = min(1, max(tol, (tol / minden) * scipy.linalg.norm(np.triu(T, 1), 1)))
        if np.prod(np.ravel(np.logical_not(np.isfinite(F))), axis=0):
            err = np.inf
        if disp and err > 1000 * tol:
            print(f"{op} result may be inaccurate, approximate err =", err)
        Fs.append(F)
        errs.append(err)
        Ts[m], Zs[m] = T, Z
    dtype = np.result_type(*[f.dtype for f in Fs])
    F = np.stack([f.astype(dtype, copy=False) for f in Fs]).reshape(a.shape)
    edtype = np.finfo(dtype).dtype
    return (_like(F, A), np.asarray(errs, dtype=edtype).reshape(batch),
            Ts.reshape(a.shape), Zs.reshape(a.shape))


def funm_eigvectors(T, Z, ref):
    """(λ, W, W⁻¹, κ) from complex Schur factors (host, (..., n, n)): T X = X Λ with X unit
    upper triangular by back substitution (row i from the rows below it: Xᵢⱼ = Σₖ₌ᵢ₊₁ʲ Tᵢₖ Xₖⱼ
    / (λⱼ − λᵢ); a gap below ε·max|λ| is replaced by that floor, as LAPACK's trevc does),
    columns scaled to unit norm, W = Z X and W⁻¹ = X⁻¹ Zᴴ (a triangular solve); κ (...,) the
    1-norm condition number of X (= of W's basis, Z being unitary), on the host.  λ, W, W⁻¹
    on ref's device."""
    import scipy.linalg
    n = T.shape[-1]
    batch = T.shape[:-2]
    Tf = T.reshape(-1, n, n)
    B = Tf.shape[0]
    lam = np.diagonal(Tf, 0, -2, -1).copy()
    X = np.zeros_like(Tf)
    idx = np.arange(n)
    X[:, idx, idx] = 1
    eps = float(np.finfo(T.dtype).eps)
    top = np.abs(lam).max(axis=-1, initial=0.0)[:, None]
    floor = np.maximum(eps * top, np.finfo(T.dtype).tiny)
    for i in range(n - 2, -1, -1):
        num = np.matmul(Tf[:, i:i + 1, i + 1:], X[:, i + 1:, i + 1:])[:, 0]
        den = lam[:, i + 1:] - lam[:, i:i + 1]
        small = np.abs(den) < floor
        den = np.where(small, floor.astype(den.dtype) * np.where(den == 0, 1, den / np.where(
            den == 0, 1, np.abs(den))), den)
        X[:, i, i + 1:] = num / den
    X /= np.linalg.norm(X, axis=-2, keepdims=True)
    Xinv = np.empty_like(X)
    kappa = np.empty(B)
    eye = np.eye(n, dtype=X.dtype)
    for m in range(B):
        Xinv[m] = scipy.linalg.solve_triangular(X[m], eye, check_finite=False)
        kappa[m] = (np.abs(X[m]).sum(axis=0).max() * np.abs(Xinv[m]).sum(axis=0).max()
                    if n else 1.0)
    with np.errstate(invalid="ignore", over="ignore"):
        kappa = np.where(np.isfinite(kappa), kappa, np.inf)
    W = np.matmul(Z.reshape(-1, n, n), X)
    Winv = np.matmul(Xinv, np.conj(np.swapaxes(Z.reshape(-1, n, n), -1, -2)))
    return (_like(lam.reshape(batch + (n,)), ref), _like(W.reshape(T.shape), ref),
            _like(Winv.reshape(T.shape), ref), kappa.reshape(batch))


# -- QR updates (linalgad/rules/qr_update.py) ----------------------------------------------
# SciPy's Givens-rotation updates (scipy.linalg.qr_update / qr_insert / qr_delete, O(n²) per
# rank-one change) on one matrix.  CuPy has none of them: a CuPy input makes a documented host
# round trip (O(n²) transfers around O(n²) host work, so the values, signs and phases are
# SciPy's exactly); the derivatives' products and solves run on the device.

def qr_modify(kind, Q, R, *args, op=None, **kw):
    """(Q1, R1) = scipy.linalg.<kind>(Q, R, *args, **kw) (kind: 'qr_update', 'qr_insert',
    'qr_delete'), inputs of one dtype, on Q's device; SciPy's errors prefixed with ``op``."""
    import scipy.linalg
    fn = getattr(scipy.linalg, kind)
    host = [to_host(x) if hasattr(x, "shape") else x for x in (Q, R) + args]
    try:
        Q1, R1 = fn(*host, check_finite=False, **kw)
    except LinAlgError as e:
        raise LinAlgError(f"{op or kind}: {e}") from None
    except ValueError as e:
        raise ValueError(f"{op or kind}: {e}") from None
    return _like(Q1, Q), _like(R1, Q)


def qr_multiply(a, c, mode="right", pivoting=False, conjugate=False):
    """scipy.linalg.qr_multiply(a, c, ...) (geqrf/geqp3 and ormqr/unmqr: Q is never formed)
    for NumPy arrays of one dtype; None for device arrays (the rule composes qr and a product
    there, on the device)."""
    if namespace_of(a, c) is not np:
        return None
    import scipy.linalg
    return scipy.linalg.qr_multiply(a, c, mode=mode, pivoting=pivoting, conjugate=conjugate)


# -- hessenberg (linalgad/rules/hessenberg.py) ---------------------------------------------

_GEHRD_LWORK = {}


def _gehrd_lwork(name, dtype, n):
    """The optimal workspace of gehrd / orghr (unghr) for order n, queried once."""
    key = (name, dtype.char, n)
    lw = _GEHRD_LWORK.get(key)
    if lw is None:
        query = _lapack_fn(name + "_lwork", dtype)
        out = query(n, lo=0, hi=n - 1)
        lw = _GEHRD_LWORK[key] = max(1, int(np.real(out[0])))
    return lw


def hessenberg_reduce(A, calc_q=True, op="hessenberg"):
    """H, or (H, Q), of a stack A (..., n, n), n >= 1: A = Q H Qᴴ, H upper Hessenberg, Q e₁ =
    e₁ — SciPy's hessenberg (LAPACK gehrd with lo = 0, hi = n − 1, H = triu(·, −1), Q from
    orghr/unghr), matrix by matrix; the same values as scipy.linalg.hessenberg for n >= 3
    (it calls gebal without permuting or scaling first, which changes nothing).  A CuPy
    array goes through the host (CuPy has no Hessenberg reduction)."""
    a_host = to_host(A)
    n = a_host.shape[-1]
    batch = a_host.shape[:-2]
    dtype = a_host.dtype
    flat = a_host.reshape(-1, n, n)
    H = np.empty(flat.shape, dtype=dtype)
    Q = np.empty(flat.shape, dtype=dtype) if calc_q else None
    gehrd = _lapack_fn("gehrd", dtype)
    lwork = _gehrd_lwork("gehrd", dtype, n)
    if calc_q:
        orghr = _lapack_fn("unghr" if dtype.kind == "c" else "orghr", dtype)
        qwork = _gehrd_lwork("unghr" if dtype.kind == "c" else "orghr", dtype, n)
    for i, a in enumerate(flat):
        hq, tau, info = gehrd(np.array(a, order="F"), lo=0, hi=n - 1, lwork=lwork,
                              overwrite_a=1)
        if info < 0:                                # an argument error: a bug, not the input
            raise ValueError(f"{op}: LAPACK gehrd reported illegal argument {-info}"
                             f"{_where(op, batch, i)}")
        H[i] = np.triu(hq, -1)
        if calc_q:
            q, info = orghr(a=hq, tau=tau, lo=0, hi=n - 1, lwork=qwork, overwrite_a=1)
            if info < 0:
                raise ValueError(f"{op}: LAPACK orghr reported illegal argument {-info}"
                                 f"{_where(op, batch, i)}")
            Q[i] = q
    H = _like(H.reshape(a_host.shape), A)
    return (H, _like(Q.reshape(a_host.shape), A)) if calc_q else H


def hessenberg_subdiagonal_check(H, op="hessenberg"):
    """LinAlgError naming ``op`` (and the matrix of a stack) when a subdiagonal entry of the
    Hessenberg matrix H (..., n, n) is (almost) zero: |h_{j+1,j}| <= n ε ‖H[1:, :]‖_F (or
    Re h_{j+1,j} for complex H, whose subdiagonal is real), where the reduction is not
    differentiable (hessenberg.md, section 6).  The first row is left out of the scale: H's
    rows 1: (and Q) depend on A's rows 1: alone (gehrd's reflectors mix rows 1: from the
    left, and act on each row by itself from the right), so a huge first row does not make
    the subdiagonal less accurate.  Reads only the subdiagonal and the norms on the host."""
    xp = namespace_of(H)
    n = H.shape[-1]
    if n < 3 or H.size == 0:
        return
    sub = to_host(xp.diagonal(H, -1, -2, -1)).reshape(-1, n - 1)
    sub = np.abs(sub.real)
    scale = to_host(xp.sqrt(xp.sum(xp.abs(H[..., 1:, :]) ** 2, axis=(-2, -1)))).reshape(-1)
    tol = n * float(np.finfo(H.dtype).eps) * scale
    bad = sub <= tol[:, None]
    if not bad.any():
        return
    i, j = (int(k) for k in np.argwhere(bad)[0])
    raise LinAlgError(
        f"{op}: the derivative is not defined: the Hessenberg form has a (numerically) zero "
        f"subdiagonal entry |H[{j + 1}, {j}]| = {sub[i, j]:.2e} <= {tol[i]:.1e} = "
        f"n·eps·‖H[1:, :]‖_F"
        f"{_where(op, H.shape[:-2], i)}; the reduction of a matrix that is (nearly) reduced "
        "is not a differentiable function of it (Q and H jump with the signs LAPACK picks "
        "for nearly-zero reflectors)")


def hessenberg_omega(H, G, op="hessenberg"):
    """Ω = K_H⁻¹ P_V(G) (hessenberg.md, section 2): the skew-Hermitian Ω with zero first row
    and column, and for complex data an imaginary diagonal, such that HΩ − ΩH agrees with G
    below the subdiagonal (tril(·, −2)) and, complex, in the imaginary part of the
    subdiagonal.  The Arnoldi-like recurrence: column j of the constraint gives column j + 1
    of Ω, one matrix-vector product per step over the whole stack: O(n³) for H, G (..., n, n),
    H upper Hessenberg with a nonzero (real part of the) subdiagonal."""
    hessenberg_subdiagonal_check(H, op)
    xp = namespace_of(H, G)
    dtype = np.result_type(H.dtype, G.dtype)
    n = H.shape[-1]
    Om = xp.zeros(H.shape, dtype=dtype)
    cplx = dtype.kind == "c"
    for j in range(n - 1):
        h = H[..., j + 1, j]
        # (HΩ)[j+1:, j] (H's rows from j+1 are zero left of column j) − Ω[j+1:, :j+1] H[:j+1, j]
        v = xp.matmul(H[..., j + 1:, j:], Om[..., j:, j:j + 1])[..., 0]
        if j > 0:
            v = v - xp.matmul(Om[..., j + 1:, :j + 1], H[..., :j + 1, j:j + 1])[..., 0]
        v = v - G[..., j + 1:, j]
        if cplx:
            Om[..., j + 1, j + 1] = 1j * (v[..., 0].imag / h.real)
        low = v[..., 1:] / h[..., None]
        Om[..., j + 2:, j + 1] = low
        Om[..., j + 1, j + 2:] = -xp.conj(low)
    return Om


def hessenberg_omega_adjoint(H, M, op="hessenberg"):
    """Y = P_V K_H⁻ᴴ P_U(M) (hessenberg.md, section 3): Y below the diagonal (tril(·, −2) and,
    complex, an imaginary subdiagonal) with P_U(HᴴY − YHᴴ) = P_U(M), P_U the skew-Hermitian
    part without the first row and column.  The adjoint sweep of ``hessenberg_omega``:
    column j + 1 of the equation gives column j of Y, for j = n − 2, …, 0; O(n³)."""
    hessenberg_subdiagonal_check(H, op)
    xp = namespace_of(H, M)
    dtype = np.result_type(H.dtype, M.dtype)
    n = H.shape[-1]
    # Yt = Yᵀ: Y's columns are Yt's contiguous rows, so both products of a step are a
    # contiguous row vector times a block of rows (BLAS gemv; a strided vector is not)
    Yt = xp.zeros(H.shape, dtype=dtype)
    cplx = dtype.kind == "c"
    Hc = xp.conj(H)
    R = M - xp.conj(xp.swapaxes(M, -1, -2))         # twice the skew-Hermitian part
    for j in range(n - 2, -1, -1):
        h = H[..., j + 1, j]
        # (Hᴴ Y)[j+1:, j+1] = (Y[j+2:, j+1]ᵀ conj(H)[j+2:, j+1:])ᵀ (Y's column j+1 lives in
        # rows j+2:)
        hy = xp.matmul(Yt[..., j + 1:j + 2, j + 2:], Hc[..., j + 2:, j + 1:])[..., 0, :]
        low = hy[..., 1:] - R[..., j + 2:, j + 1]
        if j + 1 < n - 1:       # Y[j+2:, j+1:] conj(H[j+1, j+1:])ᵀ
            low = low - xp.matmul(Hc[..., j + 1:j + 2, j + 1:], Yt[..., j + 1:, j + 2:])[..., 0, :]
        Yt[..., j, j + 2:] = low / xp.conj(h)[..., None]
        if cplx:
            Yt[..., j, j + 1] = 1j * ((hy[..., 0].imag - M[..., j + 1, j + 1].imag) / h.real)
    return xp.ascontiguousarray(xp.swapaxes(Yt, -1, -2))


# -- schur (linalgad/rules/schur.py) ---------------------------------------------------------
# The Schur factors of a stack and the column sweeps of the restricted Sylvester equation
# its derivatives solve (schur.md, sections 2-5).  NumPy arrays are worked on directly; a
# CuPy array makes a documented host round trip (CuPy has no Schur decomposition and no
# trsyl): O(n²) transfers around O(n³) host work.

SCHUR_GAUGE_TOL = float(np.finfo(np.float64).eps) ** (2.0 / 3.0)    # (float64's; see below)


def schur_blocks(T):
    """(starts, gauge) of a real Schur form stack T (..., n, n), plain and on T's device:
    starts (..., n) True at the first index k of each 2×2 block (T[k+1, k] ≠ 0), gauge
    (..., n) True where that block is (nearly) normal, |b + c| <= eps^(2/3) (|b| + |c|)
    with b = T[k, k+1], c = T[k+1, k] and eps T's own precision (float32: 2.4e-5; the
    block of an orthogonal float32 matrix has |b + c| ~ 1e-7, rounding): its rotation is a
    gauge.  All False for complex T."""
    xp = namespace_of(T)
    n = T.shape[-1]
    starts = xp.zeros(T.shape[:-1], dtype=bool)
    if T.dtype.kind == "c" or n < 2:
        return starts, starts.copy()
    c = xp.diagonal(T, -1, -2, -1)
    b = xp.diagonal(T, 1, -2, -1)
    starts[..., :-1] = c != 0
    gauge = xp.zeros_like(starts)
    tol = float(np.finfo(T.dtype).eps) ** (2.0 / 3.0)
    normal = xp.abs(b + c) <= tol * (xp.abs(b) + xp.abs(c))
    gauge[..., :-1] = starts[..., :-1] & normal
    return starts, gauge


def schur_factor(A, complex_out, sort, op="schur"):
    """(T, Z, sdim) with A = Z T Zᴴ per matrix of a stack: the real Schur form (LAPACK's
    standardized 2×2 blocks) for real A unless ``complex_out``, else the complex one; sdim
    (an int, an int array over a stack) the number of eigenvalues ``sort`` selected (SciPy's
    strings or callable; None: no sorting and sdim None)."""
    if namespace_of(A) is not np:
        T, Z, sdim = schur_factor(to_host(A), complex_out, sort, op)
        return _like(T, A), _like(Z, A), sdim
    if complex_out and A.dtype.kind == "f":
        A = A.astype(_complex_of(A.dtype))
    n, batch = A.shape[-1], A.shape[:-2]
    if sort is None:
        T, Z = CPU.schur(A, op)
        return T, Z, None
    if A.size == 0:
        return A.copy(), np.broadcast_to(np.eye(n, dtype=A.dtype), A.shape).copy(), \
            (np.zeros(batch, dtype=int) if batch else 0)
    import scipy.linalg
    flat = A.reshape(-1, n, n)
    T, Z = np.empty_like(flat), np.empty_like(flat)
    sdim = np.empty(flat.shape[0], dtype=int)
    for i in range(flat.shape[0]):
        try:
            T[i], Z[i], sdim[i] = scipy.linalg.schur(flat[i], sort=sort, check_finite=False)
        except LinAlgError as e:
            raise LinAlgError(f"{op}: {e}{_where(op, batch, i)}") from None
    return T.reshape(A.shape), Z.reshape(A.shape), (sdim.reshape(batch) if batch else int(sdim[0]))


def _schur_trsyl_direct(T0, trans):
    """solve(j, w, rhs) -> (X, scale, info): LAPACK ?trsyl for T₂₂ X − X B = rhs (op = ᴴ on
    both for trans 'C'), T₂₂ = T0[j+w:, j+w:] and B = T0[j:j+w, j:j+w] read in place from
    one Fortran-ordered copy of T0 (leading dimension n): SciPy's wrapper copies T₂₂ on
    every call, O(n²) per column (most of the sweep's time at n = 1024)."""
    import ctypes
    n = T0.shape[-1]
    Tf = np.ascontiguousarray(T0.T)          # to Fortran: T0 itself, leading dimension n
    fn = _lapack_stack._load("trsyl", Tf.dtype)
    size = Tf.itemsize
    base = Tf.ctypes.data
    code = ctypes.c_char(trans.encode())
    pt = ctypes.byref(code)
    sign, ld = ctypes.byref(ctypes.c_int(-1)), ctypes.byref(ctypes.c_int(n))
    scale = np.ones(1, dtype=np.finfo(Tf.dtype).dtype)
    info = np.zeros(1, dtype=np.int32)
    ps, pi = ctypes.c_void_p(scale.ctypes.data), ctypes.c_void_p(info.ctypes.data)

    def solve(j, w, rhs):
        m = n - j - w
        c = np.asfortranarray(rhs, dtype=Tf.dtype)
        scale[0], info[0] = 1, 0
        pm, pw = ctypes.byref(ctypes.c_int(m)), ctypes.byref(ctypes.c_int(w))
        fn(pt, pt, sign, pm, pw, ctypes.c_void_p(base + (j + w) * (n + 1) * size), ld,
           ctypes.c_void_p(base + j * (n + 1) * size), ld, ctypes.c_void_p(c.ctypes.data),
           pm, ps, pi)
        return c, float(scale[0]), int(info[0])
    solve.keep = (Tf, scale, info, code)     # alive while solve is
    return solve


def schur_sweep(T, R, adjoint, op="schur"):
    """The restricted Sylvester solve of a Schur form's derivative (schur.md, section 2).

    With Ω = L − Lᴴ (L strictly lower) and P the map that keeps the strictly lower part of
    a matrix X but puts X_kk − X_{k+1,k+1} at position (k+1, k) of each 2×2 block k of T:
      adjoint=False   L with P(T Ω − Ω T) = tril(R, −1), columns left to right;
      adjoint=True    Y (strictly lower) with tril(N − Nᴴ, −1) = tril(R, −1), N = Tᴴ W − W Tᴴ,
                      W = Pᴴ Y: the adjoint equation, columns right to left.
    One LAPACK trsyl per column (block) and matrix: a single column solves
    (T₂₂ − t_jj) x = r, a 2×2 block's two columns T₂₂ X − X B = R; T₂₂ the trailing Schur
    form.  The rotation inside a (nearly) normal block (schur_blocks' gauge) is set to 0.
    LinAlgError for (nearly) repeated eigenvalues (trsyl's info)."""
    if namespace_of(T) is not np:
        return _like(schur_sweep(to_host(T), to_host(R), adjoint, op), T)
    if T.dtype.kind == "f" and R.dtype.kind == "c":
        return schur_sweep(T, np.ascontiguousarray(R.real), adjoint, op) + \
            1j * schur_sweep(T, np.ascontiguousarray(R.imag), adjoint, op)
    dtype = np.result_type(T.dtype, R.dtype)
    n, batch = T.shape[-1], np.broadcast_shapes(T.shape[:-2], R.shape[:-2])
    T = np.broadcast_to(T, batch + (n, n)).reshape(-1, n, n).astype(dtype, copy=False)
    R = np.broadcast_to(R, batch + (n, n)).reshape(-1, n, n).astype(dtype, copy=False)
    out = np.zeros_like(R)
    if n < 2 or out.size == 0:
        return out.reshape(batch + (n, n))
    starts, gauge = schur_blocks(T)
    second = np.zeros_like(starts)
    second[:, 1:] = starts[:, :-1]
    k = np.arange(n - 1)
    bc = 2 * (T[:, k, k + 1] + T[:, k + 1, k])                     # the blocks' pivots
    safe = np.where(starts[:, :-1] & ~gauge[:, :-1], bc, 1)
    what = ("the eigenvalues are (nearly) repeated, so the Schur form is not "
            "differentiable there")

    one = T.shape[0] == 1
    trans = "C" if adjoint else "N"
    if one:
        direct = _schur_trsyl_direct(T[0], trans) if _lapack_stack.schur_available(
            np.dtype(dtype)) else None
        trsyl1 = _lapack_fn("trsyl", np.dtype(dtype))

    def solve(rows, j, w, rhs):
        if one:     # one matrix: LAPACK on T's trailing block in place (no copy of it)
            if direct is not None:
                x, scale, info = direct(j, w, rhs[0])
            else:   # SciPy's wrapper (it copies the block)
                x, scale, info = trsyl1(T[0, j + w:, j + w:], T[0, j:j + w, j:j + w], rhs[0],
                                        trana=trans, tranb=trans, isgn=-1)
            if info != 0:
                raise LinAlgError(f"{op}: {what}")
            return (x if scale == 1 else x / scale)[None]
        Ta = T[rows, j + w:, j + w:]
        Tb = -T[rows, j:j + w, j:j + w]
        try:
            return CPU._trsyl_stack(Ta, adjoint, Tb, adjoint, np.ascontiguousarray(rhs), op, what)
        except LinAlgError:
            raise LinAlgError(f"{op}: {what}") from None

    if one:
        # one matrix: its column blocks by basic slicing (no stack bookkeeping per step)
        T0, R0, X0 = T[0], R[0], out[0]
        W0 = np.zeros_like(R0) if adjoint else None
        st = starts[0].tolist()
        widths = []
        j = 0
        while j < n:
            widths.append((j, 2 if st[j] else 1))
            j += 2 if st[j] else 1
        if adjoint:
            for j, w in widths:
                if w == 2 and not gauge[0, j]:
                    y = R0[j + 1, j] / bc[0, j]
                    X0[j + 1, j] = y
                    W0[j, j], W0[j + 1, j + 1] = y, -y
            Tc = np.conj(T0)
            for j, w in reversed(widths):
                if j + w >= n:
                    continue
                rhs = R0[j + w:, j:j + w] + W0[j + w:, j + w:] @ Tc[j:j + w, j + w:].T
                if w == 2:
                    rhs = rhs - Tc[j:j + 2, j + 2:].T * np.diagonal(W0[j:j + 2, j:j + 2])
                X = solve(None, j, w, rhs[None])[0]
                X0[j + w:, j:j + w] = X
                W0[j + w:, j:j + w] = X
            return out.reshape(batch + (n, n))
        for j, w in widths:
            if j + w < n:
                rhs = R0[j + w:, j:j + w] + X0[j + w:, :j] @ T0[:j, j:j + w]
                X0[j + w:, j:j + w] = solve(None, j, w, rhs[None])[0]
    if not adjoint and not one:
        L = out
        for j in range(n - 1):
            for w, sel in ((1, ~starts[:, j] & ~second[:, j]), (2, starts[:, j])):
                if j + w >= n or not sel.any():
                    continue
                rows = np.flatnonzero(sel)
                rhs = R[rows, j + w:, j:j + w] + \
                    np.matmul(L[rows, j + w:, :j], T[rows, :j, j:j + w])
                L[rows, j + w:, j:j + w] = solve(rows, j, w, rhs)
    if not adjoint:
        L = out
        if starts.any():
            # the rotation ω inside each block, from its diagonal equation:
            # 2 (b + c) ω = R[k+1, k] − (D_k − D_{k+1}), D = diag(T Ω₀ − Ω₀ T) without ω
            Om = L - np.swapaxes(L, -1, -2)
            D = np.sum(T * np.swapaxes(Om, -1, -2), axis=-1) - \
                np.sum(Om * np.swapaxes(T, -1, -2), axis=-1)
            omega = (R[:, k + 1, k] - (D[:, :-1] - D[:, 1:])) / safe
            blk = starts[:, :-1]
            L[:, k + 1, k] = np.where(blk, np.where(gauge[:, :-1], 0, omega), L[:, k + 1, k])
        return L.reshape(batch + (n, n))
    Y = out
    W = np.zeros_like(R)
    if starts.any():
        y = np.where(starts[:, :-1] & ~gauge[:, :-1], R[:, k + 1, k] / safe, 0)
        Y[:, k + 1, k] = y
        W[:, k, k] += y
        W[:, k + 1, k + 1] -= y
    Tc = np.conj(T)
    for j in range(n - 2, -1, -1):
        for w, sel in ((1, ~starts[:, j] & ~second[:, j]), (2, starts[:, j])):
            if j + w >= n or not sel.any():
                continue
            rows = np.flatnonzero(sel)
            rhs = R[rows, j + w:, j:j + w] + \
                np.matmul(W[rows, j + w:, j + w:], np.swapaxes(Tc[rows, j:j + w, j + w:], -1, -2))
            if w == 2:      # (Tᴴ W)'s terms of the block's own diagonal ±y
                d = W[rows, j:j + 2, j:j + 2].diagonal(0, -2, -1)
                rhs = rhs - np.swapaxes(Tc[rows, j:j + 2, j + 2:], -1, -2) * d[:, None, :]
            X = solve(rows, j, w, rhs)
            Y[rows, j + w:, j:j + w] = X
            W[rows, j + w:, j:j + w] = X
    return Y.reshape(batch + (n, n))


# -- qz, ordqz (linalgad/rules/qz.py) --------------------------------------------------------
# The generalized Schur factors of a stack and the column sweeps of the restricted generalized
# Sylvester equation their derivatives solve (qz.md, sections 2-5).  NumPy arrays are worked
# on directly; a CuPy array makes a documented host round trip (CuPy has no QZ algorithm):
# O(n²) transfers around O(n³) host work.

def qz_factor(A, B, complex_out, sort, op="qz"):
    """(AA, BB, Q, Z, alpha, beta) with A = Q AA Zᴴ, B = Q BB Zᴴ per matrix of a stack, by
    scipy.linalg.qz (``sort`` None: alpha, beta None) or scipy.linalg.ordqz (``sort`` one of
    SciPy's strings or a callable).  Empty matrices and stacks give empty factors (identity
    Q, Z); LinAlgError naming ``op`` and the matrix of a stack where LAPACK fails."""
    if namespace_of(A) is not np:
        out = qz_factor(to_host(A), to_host(B), complex_out, sort, op)
        return tuple(None if x is None else _like(x, A) for x in out)
    import scipy.linalg
    out_kind = "complex" if complex_out else "real"
    n, batch = A.shape[-1], np.broadcast_shapes(A.shape[:-2], B.shape[:-2])
    dtype = np.result_type(A.dtype, B.dtype)
    if complex_out and dtype.kind == "f":
        dtype = np.dtype(_complex_of(dtype))
    A = np.broadcast_to(A, batch + (n, n)).astype(dtype, copy=False)
    B = np.broadcast_to(B, batch + (n, n)).astype(dtype, copy=False)
    cdt = np.dtype(_complex_of(dtype))
    if A.size == 0:
        eye = np.broadcast_to(np.eye(n, dtype=dtype), A.shape).copy()
        ab = None if sort is None else (np.zeros(batch + (n,), cdt),
                                        np.zeros(batch + (n,), cdt if dtype.kind == "c" else dtype))
        return (A.copy(), B.copy(), eye, eye.copy()) + ((None, None) if ab is None else ab)
    fa, fb = A.reshape(-1, n, n), B.reshape(-1, n, n)
    outs = [np.empty_like(fa) for _ in range(4)]
    if sort is not None:
        al = np.empty(fa.shape[:2], dtype=cdt)
        be = np.empty(fa.shape[:2], dtype=cdt if dtype.kind == "c" else dtype)
    for i in range(fa.shape[0]):
        try:
            if sort is None:
                r = scipy.linalg.qz(fa[i], fb[i], output=out_kind, check_finite=False)
            else:
                r = scipy.linalg.ordqz(fa[i], fb[i], sort=sort, output=out_kind,
                                       check_finite=False)
                al[i], be[i] = r[2], r[3]
                r = (r[0], r[1], r[4], r[5])
        except LinAlgError as e:
            raise LinAlgError(f"{op}: {e}{_where(op, batch, i)}") from None
        except ValueError as e:         # ?tgsen's failed reordering (SciPy's ValueError)
            raise ValueError(f"{op}: {e}{_where(op, batch, i)}") from None
        for o, x in zip(outs, r):
            o[i] = x
    res = tuple(o.reshape(A.shape) for o in outs)
    if sort is None:
        return res + (None, None)
    return res + (al.reshape(batch + (n,)), be.reshape(batch + (n,)))


def qz_blocks(S):
    """(..., n) True at the first index k of each 2×2 block (S[k+1, k] ≠ 0) of a real
    generalized Schur form stack S; all False for a complex one."""
    xp = namespace_of(S)
    n = S.shape[-1]
    starts = xp.zeros(S.shape[:-1], dtype=bool)
    if S.dtype.kind == "c" or n < 2:
        return starts
    starts[..., :-1] = xp.diagonal(S, -1, -2, -1) != 0
    return starts


def _qz_pow2(X):
    """Per matrix (..., 1, 1), the power of two nearest max|X| (1 for a zero matrix)."""
    m = np.abs(X).max(axis=(-2, -1), keepdims=True)
    m = np.where((m > 0) & np.isfinite(m), m, 1)
    return np.exp2(np.round(np.log2(m))).astype(np.finfo(X.dtype).dtype)


def qz_sweep(S, T, RA, RB, adjoint, op="qz", _form_dtype=None):
    """The restricted generalized Sylvester solve of a QZ form's derivative (qz.md, section 2).

    S, T (..., n, n) upper triangular; with LQ, LZ strictly lower and
        F(LQ, LZ) = (tril(LQ S − S LZ, −1), tril(LQ T − T LZ, −1)),
      adjoint=False   (LQ, LZ) = F⁻¹(tril RA, tril RB): columns left to right; column j
                      solves s x − S₂₂ y = rA, t x − T₂₂ y = rB (s = S_jj, t = T_jj,
                      S₂₂ = S[j+1:, j+1:]) by one triangular solve with
                      M = s T₂₂ − t S₂₂:  M y = t rA − s rB,
                      x = (s̄ (rA + S₂₂ y) + t̄ (rB + T₂₂ y)) / (|s|² + |t|²);
      adjoint=True    (YA, YB) = F⁻ᴴ(tril RA, tril RB): the adjoint of that sweep, columns
                      right to left, one solve with Mᴴ per column.
    n steps of O(n²) work each (one triangular solve and one matrix-vector product per
    matrix, vectorized over a stack).  LinAlgError for an exactly repeated eigenvalue."""
    if namespace_of(S) is not np:
        out = qz_sweep(to_host(S), to_host(T), to_host(RA), to_host(RB), adjoint, op)
        return tuple(_like(x, S) for x in out)
    if S.dtype.kind == "f" and (RA.dtype.kind == "c" or RB.dtype.kind == "c"):
        re = qz_sweep(S, T, np.ascontiguousarray(RA.real), np.ascontiguousarray(RB.real),
                      adjoint, op)
        im = qz_sweep(S, T, np.ascontiguousarray(RA.imag), np.ascontiguousarray(RB.imag),
                      adjoint, op)
        return re[0] + 1j * im[0], re[1] + 1j * im[1]
    dtype = np.result_type(S.dtype, T.dtype, RA.dtype, RB.dtype)
    form_dtype = S.dtype if _form_dtype is None else _form_dtype   # for the gauge tolerance
    n = S.shape[-1]
    batch = np.broadcast_shapes(S.shape[:-2], T.shape[:-2], RA.shape[:-2], RB.shape[:-2])
    S, T, RA, RB = (np.broadcast_to(x, batch + (n, n)).astype(dtype, copy=False)
                    for x in (S, T, RA, RB))
    X1, X2 = np.zeros(batch + (n, n), dtype), np.zeros(batch + (n, n), dtype)
    if n < 2 or X1.size == 0:
        return X1, X2
    # A and B scale separately: with S = α S', T = β T' (α, β powers of two, exact),
    # F = (α F'_A, β F'_B), so F⁻¹(R) = F'⁻¹(R_A/α, R_B/β) and F⁻ᴴ(K) = (Y'_A/α, Y'_B/β).
    # Unscaled, max|S| / max|T| = 1e-20 made ?tgsyl report close eigenvalues (qz.md, sec. 6)
    al, be = _qz_pow2(S), _qz_pow2(T)
    if bool(np.any(al != 1)) or bool(np.any(be != 1)):
        if adjoint:
            Y1, Y2 = qz_sweep(S / al, T / be, RA, RB, adjoint, op, form_dtype)
            return Y1 / al, Y2 / be
        return qz_sweep(S / al, T / be, RA / al, RB / be, adjoint, op, form_dtype)
    if dtype.kind == "f" and bool(qz_blocks(S).any()):
        # a real form with 2×2 blocks: matrix by matrix, one ?tgsyl per column block
        flat = [x.reshape(-1, n, n) for x in (S, T, RA, RB, X1, X2)]
        for i in range(flat[0].shape[0]):
            try:
                flat[4][i], flat[5][i] = _qz_sweep_blocks(*(x[i] for x in flat[:4]), adjoint, op,
                                                          form_dtype)
            except LinAlgError as e:
                raise LinAlgError(f"{e}{_where(op, batch, i)}") from None
        return X1, X2
    cj = np.conj if dtype.kind == "c" else (lambda x: x)
    s_all = np.diagonal(S, 0, -2, -1)
    t_all = np.diagonal(T, 0, -2, -1)
    nu_all = np.abs(s_all) ** 2 + np.abs(t_all) ** 2

    def tsolve(M, b, trans):
        try:
            return CPU.solve_triangular(M, b[..., None], lower=False, trans=trans, op=op)[..., 0]
        except LinAlgError:
            raise LinAlgError(f"{op}: the generalized eigenvalues are repeated, so the "
                              "generalized Schur form is not differentiable there") from None

    def col(j):
        s, t = s_all[..., j, None, None], t_all[..., j, None, None]
        S22, T22 = S[..., j + 1:, j + 1:], T[..., j + 1:, j + 1:]
        return s[..., 0], t[..., 0], nu_all[..., j, None], S22, T22, s * T22 - t * S22

    if not batch:
        return _qz_sweep_one(S, T, RA, RB, adjoint, op, cj)

    if not adjoint:
        for j in range(n - 1):
            s, t, nu, S22, T22, M = col(j)
            rA = RA[..., j + 1:, j] - np.einsum("...ik,...k->...i", X1[..., j + 1:, :j], S[..., :j, j])
            rB = RB[..., j + 1:, j] - np.einsum("...ik,...k->...i", X1[..., j + 1:, :j], T[..., :j, j])
            y = tsolve(M, t * rA - s * rB, 0)
            u = rA + np.einsum("...ik,...k->...i", S22, y)
            v = rB + np.einsum("...ik,...k->...i", T22, y)
            X1[..., j + 1:, j] = (cj(s) * u + cj(t) * v) / nu
            X2[..., j + 1:, j] = y
        return X1, X2
    GQ, GZ = np.tril(RA, -1), np.tril(RB, -1)      # the running cotangents of LQ, LZ
    for j in range(n - 2, -1, -1):
        s, t, nu, S22, T22, M = col(j)
        xb, yb = GQ[..., j + 1:, j], GZ[..., j + 1:, j]
        ub = s * xb / nu
        vb = t * xb / nu
        yt = yb + np.einsum("...ki,...k->...i", cj(S22), ub) + \
            np.einsum("...ki,...k->...i", cj(T22), vb)
        w = tsolve(M, yt, 2 if dtype.kind == "c" else 1)
        ra = ub + cj(t) * w
        rb = vb - cj(s) * w
        X1[..., j + 1:, j] = ra
        X2[..., j + 1:, j] = rb
        if j:
            GQ[..., j + 1:, :j] -= ra[..., :, None] * cj(S[..., None, :j, j]) + \
                rb[..., :, None] * cj(T[..., None, :j, j])
    return X1, X2


def qz_gauge_tol(dtype):
    """eps^(2/3) of the form's precision: BB's block entries closer than that (relative) are
    equal up to rounding (B = I in float32 gives 1.0000002 and 1.0)."""
    return float(np.finfo(dtype).eps) ** (2.0 / 3.0)


def qz_block_gauge(S, T, dtype=None):
    """(..., n) True at the first index k of each 2×2 block of a real generalized Schur form
    whose BB entries have (nearly) equal magnitude, ||t_kk| − |t_k+1,k+1|| <= eps^(2/3)
    (|t_kk| + |t_k+1,k+1|), eps that of ``dtype`` (S's by default): the standardization (BB's
    block diagonal) then leaves the block's rotation free (a gauge, qz.md section 6)."""
    xp = namespace_of(S)
    starts = qz_blocks(S)
    if not bool(starts.any()):
        return starts
    tol = qz_gauge_tol(S.dtype if dtype is None else dtype)
    t = xp.abs(xp.diagonal(T, 0, -2, -1))
    g = xp.zeros_like(starts)
    g[..., :-1] = starts[..., :-1] & (xp.abs(t[..., :-1] - t[..., 1:]) <=
                                      tol * (t[..., :-1] + t[..., 1:]))
    return g


def _qz_sweep_blocks(S, T, RA, RB, adjoint, op, gauge_dtype=None):
    """qz_sweep for one real generalized Schur form (S, T) with 2×2 blocks (qz.md, section
    6): per column block J (width w) one LAPACK ?tgsyl solve of X S_JJ − S₂₂ Y = r_A,
    X T_JJ − T₂₂ Y = r_B (trans='T' for the adjoint), and at a block k the rotations
    (θQ, θZ) = (LQ[k+1, k], LZ[k+1, k]) from BB's standardization: the (k+1, k) entry of
    tril and the (k, k+1) entry of ΩQ T − T ΩZ equal RB's (the slot (k+1, k) of RA is
    unused).  A gauge block (qz_block_gauge) takes the minimum-norm rotation."""
    from scipy.linalg import lapack
    n = S.shape[-1]
    tgsyl = getattr(lapack, ("s" if S.dtype == np.float32 else "d") + "tgsyl")
    starts = qz_blocks(S)
    gauge = qz_block_gauge(S, T, gauge_dtype)
    blocks = []
    j = 0
    while j < n:
        w = 2 if starts[j] else 1
        blocks.append((j, w))
        j += w
    what = ("the generalized eigenvalues are (nearly) repeated, so the generalized Schur "
            "form is not differentiable there")

    def sylv(j, w, c, f, trans):
        S22, T22 = S[j + w:, j + w:], T[j + w:, j + w:]
        r, l_, scale, dif, info = tgsyl(S22, S[j:j + w, j:j + w], c, T22, T[j:j + w, j:j + w],
                                        f, trans=trans)
        if info != 0:
            raise LinAlgError(f"{op}: {what}")
        return r / scale, l_ / scale

    def theta_solve(k, b1, b2):
        t1, t2 = T[k, k], T[k + 1, k + 1]
        Th = np.array([[t1, -t2], [-t2, t1]])
        if gauge[k]:
            # the minimum-norm solution: Θ (1, σ) ≈ 0 (the free rotation, σ = sign(t1 t2)),
            # Θ (1, −σ) = (t1 + σ t2) (1, −σ); the null direction is dropped exactly (a
            # pseudo-inverse would keep its rounding-size eigenvalue t1 − σ t2, and divide
            # by it)
            sg = 1.0 if t1 * t2 >= 0 else -1.0
            c = (b1 - sg * b2) / (2 * (t1 + sg * t2))
            return c, -sg * c
        return np.linalg.solve(Th, np.array([b1, b2]))

    LQ, LZ = np.zeros_like(RA), np.zeros_like(RA)
    if not adjoint:
        for j, w in blocks:
            J = slice(j, j + w)
            if j + w < n:
                rA = RA[j + w:, J] - LQ[j + w:, :j] @ S[:j, J]
                rB = RB[j + w:, J] - LQ[j + w:, :j] @ T[:j, J]
                Y, X = sylv(j, w, -rA, -rB, "N")
                LQ[j + w:, J], LZ[j + w:, J] = X, Y
            if w == 2:
                k = j
                b1 = RB[k + 1, k] - LQ[k + 1, :k] @ T[:k, k] + T[k + 1, k + 2:] @ LZ[k + 2:, k]
                b2 = RB[k, k + 1] - LQ[k, :k] @ T[:k, k + 1] + T[k, k + 2:] @ LZ[k + 2:, k + 1]
                LQ[k + 1, k], LZ[k + 1, k] = theta_solve(k, b1, b2)
        return LQ, LZ
    # adjoint: the reverse of the sweep above; GQ, GZ the running cotangents of LQ, LZ
    GQ, GZ = np.tril(RA, -1), np.tril(RB, -1)
    YA, YB = LQ, LZ
    for j, w in reversed(blocks):
        J = slice(j, j + w)
        if w == 2:
            k = j
            bb1, bb2 = theta_solve(k, GQ[k + 1, k], GZ[k + 1, k])      # Θ is symmetric
            YB[k + 1, k], YB[k, k + 1] = bb1, bb2
            GQ[k + 1, :k] -= bb1 * T[:k, k]
            GQ[k, :k] -= bb2 * T[:k, k + 1]
            GZ[k + 2:, k] += bb1 * T[k + 1, k + 2:]
            GZ[k + 2:, k + 1] += bb2 * T[k, k + 2:]
        if j + w < n:
            Xb, Yb = GQ[j + w:, J], GZ[j + w:, J]
            # the adjoint of (X, Y) -> (X S_JJ − S22 Y, X T_JJ − T22 Y): U S_JJᵀ + V T_JJᵀ = X̄,
            # S22ᵀ U + T22ᵀ V = −Ȳ: tgsyl's transposed system with C = −Ȳ, F = −X̄
            U, V = sylv(j, w, -Yb, -Xb, "T")
            YA[j + w:, J], YB[j + w:, J] = U, V
            GQ[j + w:, :j] -= U @ S[:j, J].T + V @ T[:j, J].T
    return YA, YB


def _qz_sweep_one(S, T, RA, RB, adjoint, op, cj):
    """qz_sweep's triangular case for one matrix: the same steps with 2-D slices, products
    by BLAS gemv and one LAPACK trtrs per column (no stack bookkeeping per step)."""
    n = S.shape[-1]
    X1, X2 = np.zeros_like(RA), np.zeros_like(RA)
    sd, td = np.diagonal(S).copy(), np.diagonal(T).copy()
    cplx = S.dtype.kind == "c"
    trtrs = _lapack_fn("trtrs", S.dtype)

    def solve(M, b, trans):
        x, info = trtrs(M, b, lower=0, trans=trans)
        if info > 0:
            raise LinAlgError(f"{op}: the generalized eigenvalues are repeated, so the "
                              "generalized Schur form is not differentiable there")
        return x

    if not adjoint:
        for j in range(n - 1):
            s, t = sd[j], td[j]
            S22, T22 = S[j + 1:, j + 1:], T[j + 1:, j + 1:]
            Lp = X1[j + 1:, :j]
            rA = RA[j + 1:, j] - Lp @ S[:j, j]
            rB = RB[j + 1:, j] - Lp @ T[:j, j]
            y = solve(s * T22 - t * S22, t * rA - s * rB, 0)
            nu = abs(s) ** 2 + abs(t) ** 2
            X1[j + 1:, j] = (cj(s) * (rA + S22 @ y) + cj(t) * (rB + T22 @ y)) / nu
            X2[j + 1:, j] = y
        return X1, X2
    GQ, GZ = np.tril(RA, -1), np.tril(RB, -1)
    for j in range(n - 2, -1, -1):
        s, t = sd[j], td[j]
        S22, T22 = S[j + 1:, j + 1:], T[j + 1:, j + 1:]
        nu = abs(s) ** 2 + abs(t) ** 2
        xb, yb = GQ[j + 1:, j], GZ[j + 1:, j]
        ub, vb = (s / nu) * xb, (t / nu) * xb
        yt = yb + cj(S22).T @ ub + cj(T22).T @ vb
        w = solve(s * T22 - t * S22, yt, 2 if cplx else 1)
        ra, rb = ub + cj(t) * w, vb - cj(s) * w
        X1[j + 1:, j], X2[j + 1:, j] = ra, rb
        if j:
            GQ[j + 1:, :j] -= np.outer(ra, cj(S[:j, j])) + np.outer(rb, cj(T[:j, j]))
    return X1, X2
