"""LAPACK on every matrix of a stack: one Python loop of direct C calls.

NumPy's stacked gufuncs loop in C but keep no LU factors; SciPy's f2py wrappers take
1-3 µs per call to check arguments, copy each right-hand side to Fortran order and
allocate the result.  For a stack of mid-size matrices (1,000 of order 32) that per-call
cost is most of the difference to a batched kernel.  Here the stack is one C-contiguous
array, copied once, and each matrix is handed to LAPACK by address: SciPy's own LAPACK,
through the C function pointers ``scipy.linalg.cython_lapack`` exports (its public
Cython API), called with ctypes (about 0.3-0.5 µs a call; ctypes releases the GIL).

Layout: a C-contiguous (B, n, n) array is, to Fortran, B matrices M[i] = a[i].T.  So
``getrf(a)`` factors Aᵀ of each C-ordered A — the factors linalgad's LU kernels keep —
and right-hand sides are passed as (B, k, n) arrays (Fortran (n, k) blocks).  BLAS
``trsm`` solves from the right instead, so a stack of triangular matrices and its
C-ordered right-hand sides are used as they are (see :func:`trsm`).

The functions are called without declared argument types, every argument a ctypes
object, and the loops reset two or three pointer objects per matrix: ctypes' own
argument conversion cost about 0.4 µs of the 0.9 µs a call took with declared types.

:func:`available` is False where SciPy does not export these functions with the
expected signatures; the callers then loop over SciPy's wrappers as before.
"""

from __future__ import annotations

import ctypes

import numpy as np

__all__ = ["addresses", "available", "band_available", "gbtrf", "gbtrs", "gees", "getrf", "getrs", "getri",
           "gttrf", "gttrs", "kernel_set", "openblas_core", "pbtrf", "pbtrs", "schur_available",
           "trsm", "trsyl", "trsm_available", "trsm_cost"]

_PREFIX = {np.dtype(np.float32): "s", np.dtype(np.float64): "d",
           np.dtype(np.complex64): "c", np.dtype(np.complex128): "z"}
_NARGS = {"getrf": 6, "getrs": 9, "getri": 7}
_BLAS_NARGS = {"trsm": 11}
# further routines loaded by name (linalgad._lapack_extreme); ``available`` does not ask
_OTHER_NARGS = {"gebrd": 11, "ormbr": 14, "unmbr": 14, "lasq1": 5, "gees": 15,
                "trsyl": 13, "gttrf": 7, "gttrs": 11, "gbtrf": 8, "gbtrs": 11, "pbtrf": 6,
                "pbtrs": 9}
_BAND = ("gttrf", "gttrs", "gbtrf", "gbtrs", "pbtrf", "pbtrs")
_FUNCS = {}


def _load(name, dtype):
    """The ctypes function for LAPACK's (or BLAS's) <prefix><name>, or None."""
    key = (name, dtype)
    if key in _FUNCS:
        return _FUNCS[key]
    fn = None
    try:
        from scipy.linalg import cython_blas, cython_lapack
        module, nargs = ((cython_blas, _BLAS_NARGS[name]) if name in _BLAS_NARGS
                         else (cython_lapack, _NARGS.get(name) or _OTHER_NARGS[name]))
        capsule = module.__pyx_capi__[_PREFIX[dtype] + name]
        get_name = ctypes.pythonapi.PyCapsule_GetName
        get_name.restype, get_name.argtypes = ctypes.c_char_p, [ctypes.py_object]
        signature = get_name(capsule).decode()
        params = signature[signature.index("(") + 1:signature.rindex(")")].split(",")
        # void f(pointer, ...): every argument a pointer, ints of C's int (LP64 LAPACK)
        if signature.startswith("void") and len(params) == nargs and all(
                p.strip().endswith("*") for p in params) and "long" not in signature:
            get_pointer = ctypes.pythonapi.PyCapsule_GetPointer
            get_pointer.restype = ctypes.c_void_p
            get_pointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
            address = get_pointer(capsule, signature.encode())
            # no declared argument types: every argument is passed as a ctypes object
            # (pointers), which skips the per-argument conversion ctypes would
            # otherwise run (about 0.9 µs a call with 11 converted arguments, 0.5 µs
            # without)
            fn = ctypes.CFUNCTYPE(None)(address)
    except Exception:          # no such export, or another layout: use the wrappers
        fn = None
    _FUNCS[key] = fn
    return fn


def available(dtype):
    """Whether getrf, getrs and getri can be called directly for this dtype."""
    dtype = np.dtype(dtype)
    return dtype in _PREFIX and all(_load(name, dtype) is not None for name in _NARGS)


def trsm_available(dtype):
    """Whether BLAS trsm can be called directly for this dtype."""
    dtype = np.dtype(dtype)
    return dtype in _PREFIX and _load("trsm", dtype) is not None


_CORE = []


def kernel_set():
    """The kernel set of the OpenBLAS behind scipy.linalg's BLAS, lower case ('haswell',
    'skylakex', ...), or None where that BLAS is not a bundled OpenBLAS (or says nothing).

    OpenBLAS picks its kernels for the CPU when it loads (``OPENBLAS_CORETYPE`` overrides
    the choice); which direction of a small trsm is fast depends on that set
    (:func:`trsm_cost`)."""
    if not _CORE:
        _CORE.append(_find_kernel_set())
    return _CORE[0]


def _find_kernel_set():
    try:
        import scipy
    except ImportError:
        return None
    name = (openblas_core(scipy) or "").strip().lower()
    return name or None


def openblas_core(module):
    """The kernel set (``openblas_get_corename``, e.g. 'Haswell', 'SkylakeX') of the
    OpenBLAS a NumPy or SciPy wheel bundles (in ``<module>.libs``), or None."""
    import glob
    import os
    root = os.path.dirname(os.path.dirname(module.__file__))
    for lib in glob.glob(os.path.join(root, module.__name__ + ".libs", "*openblas*")):
        try:
            handle = ctypes.CDLL(lib)
        except OSError:
            continue
        for name in ("scipy_openblas_get_corename64_", "scipy_openblas_get_corename",
                     "openblas_get_corename64_", "openblas_get_corename"):
            fn = getattr(handle, name, None)
            if fn is not None:
                fn.restype, fn.argtypes = ctypes.c_char_p, []
                try:
                    return fn().decode()
                except Exception:
                    return None
    return None


# Time of one direct trsm over a stack, 1,000 triangular matrices of order 32 with 32
# right-hand sides, one thread, ms; one Intel Xeon (AVX-512) measured under both kernel
# sets (OPENBLAS_CORETYPE); a transposed copy of the right-hand sides costs 0.5 there.
# Keys: (right, slow), slow = lower == (op is ᵀ).  Under Haswell's kernels (also what an
# AMD EPYC with AVX2 ran in sessions 13-18, where the same ranking was measured) the left
# solves against the memory order are twice the others; under SkylakeX's every right
# solve is 1.8x a left one.
_TRSM_MS = {
    "haswell": {(False, False): 2.0, (False, True): 4.0, (True, False): 3.1, (True, True): 3.1},
    "skylakex": {(False, False): 2.9, (False, True): 3.0, (True, False): 5.5, (True, True): 5.5},
}
TRSM_COPY_MS = 0.5


def trsm_cost(dtype, right, lower, trans):
    """The relative time of :func:`trsm` on a real stack for the kernel set in use (the
    table above; the copy of the right-hand sides costs TRSM_COPY_MS on that scale), or
    None where nothing was measured: complex dtypes (ztrsm ranks its kernels otherwise),
    other kernel sets, other BLAS libraries.  ``right``, ``lower`` and ``trans`` (0 or 1)
    as :func:`trsm` takes them (C-ordered sides: ``right=False`` is BLAS's side 'R')."""
    if np.dtype(dtype).kind != "f":
        return None
    table = _TRSM_MS.get(kernel_set())
    return None if table is None else table[bool(right), lower == bool(trans)]


def _int(value):
    return ctypes.byref(ctypes.c_int(value))


_ptr = ctypes.c_void_p      # an address; the loops below reset one object's value per call


def getrf(a):
    """LU with partial pivoting of each Fortran matrix a[i].T, in place.

    a: C-contiguous (B, n, n), n >= 1.  Returns (piv, info): piv (B, n) int32, LAPACK's
    1-based row interchanges; info (B,) int32, > 0 where U has an exactly zero pivot.
    """
    B, n = a.shape[0], a.shape[-1]
    piv = np.empty((B, n), dtype=np.int32)
    info = np.zeros(B, dtype=np.int32)
    fn = _load("getrf", a.dtype)
    pn = _int(n)
    base, step = a.ctypes.data, a.strides[0]
    pbase, info_base = piv.ctypes.data, info.ctypes.data
    pa, pp, pi = _ptr(), _ptr(), _ptr()
    for i in range(B):
        pa.value, pp.value, pi.value = base + i * step, pbase + 4 * n * i, info_base + 4 * i
        fn(pn, pn, pa, pn, pp, pi)
    return piv, info


def getrs(lu, piv, bt, trans):
    """Solve op(M[i]) X = B[i] in place for the factors of getrf; op by ``trans`` 'N',
    'T' or 'C'.  bt: C-contiguous (B, k, n), the Fortran (n, k) right-hand sides."""
    B, n = lu.shape[0], lu.shape[-1]
    k = bt.shape[1]
    fn = _load("getrs", lu.dtype)
    code = ctypes.c_char(trans.encode())
    pt, pn, pk, info = ctypes.byref(code), _int(n), _int(k), _int(0)
    base, step = lu.ctypes.data, lu.strides[0]
    pbase = piv.ctypes.data
    bbase, bstep = bt.ctypes.data, bt.strides[0]
    pa, pp, pb = _ptr(), _ptr(), _ptr()
    for i in range(B):
        pa.value, pp.value, pb.value = base + i * step, pbase + 4 * n * i, bbase + i * bstep
        fn(pt, pn, pk, pa, pn, pp, pb, pn, info)
    return bt


def getri(lu, piv):
    """The inverse of each M[i] from its getrf factors, in place (so the C-ordered a[i]
    becomes (M[i]⁻¹)ᵀ = A[i]⁻¹ for the M = Aᵀ of getrf's layout)."""
    B, n = lu.shape[0], lu.shape[-1]
    fn = _load("getri", lu.dtype)
    lwork = max(1, 64 * n)
    work = np.empty(lwork, dtype=lu.dtype)
    pn, plw, info = _int(n), _int(lwork), _int(0)
    base, step = lu.ctypes.data, lu.strides[0]
    pbase, pw = piv.ctypes.data, _ptr(work.ctypes.data)
    pa, pp = _ptr(), _ptr()
    for i in range(B):
        pa.value, pp.value = base + i * step, pbase + 4 * n * i
        fn(pn, pa, pn, pp, pw, plw, info)
    return lu


_TRSM_OP = ("N", "T", "C")


def trsm(t, x, lower, trans, unit, right=False):
    """Solve op(T[i]) X[i] = X[i] (or, ``right``, X[i] op(T[i]) = X[i]) in place for a
    stack of C-ordered triangular matrices.

    t: C-contiguous (B, n, n), the triangle ``lower`` (or upper) read; x: C-contiguous
    (B, n, k) right-hand sides ((B, k, n) when ``right``), overwritten by the solutions;
    op by ``trans`` 0, 1, 2 (none, transpose, conjugate transpose).  The diagonal is not
    checked.

    To Fortran the C-ordered T[i] is M = T[i]ᵀ (the opposite triangle) and X[i] is the
    matrix X[i]ᵀ, so op(T) X = B is solved as Xᵀ op(T)ᵀ = Bᵀ (trsm from the right) and
    X op(T) = B as op(T)ᵀ Xᵀ = Bᵀ (from the left), with op(T)ᵀ = M, Mᵀ, Mᴴ for op = none,
    ᵀ, ᴴ (conj(T) = conj(Mᵀ) = Mᴴ).  No copies.
    """
    B, rows, cols = x.shape
    n = t.shape[-1]
    if x.size == 0:             # nothing to solve (and ldb = 0 would be illegal)
        return x
    k = rows if right else cols     # X[i]'s dimension other than n
    fn = _load("trsm", t.dtype)
    one = np.ones(1, dtype=t.dtype)
    codes = [ctypes.c_char(c.encode()) for c in ("L" if right else "R",
                                                 "U" if lower else "L",
                                                 _TRSM_OP[trans], "U" if unit else "N")]
    side, uplo, op, diag = (ctypes.byref(c) for c in codes)
    pn, pk = _int(n), _int(k)
    # Fortran dimensions of Xᵀ: (k, n) from the right, (n, k) from the left
    pm_, pn_, pld = (pn, pk, pn) if right else (pk, pn, pk)
    base, step = t.ctypes.data, t.strides[0]
    xbase, xstep = x.ctypes.data, x.strides[0]
    alpha, pa, px = _ptr(one.ctypes.data), _ptr(), _ptr()
    for i in range(B):
        pa.value, px.value = base + i * step, xbase + i * xstep
        fn(side, uplo, op, diag, pm_, pn_, alpha, pa, pn, px, pld)
    return x


def schur_available(dtype):
    """Whether gees and trsyl can be called directly for this dtype."""
    dtype = np.dtype(dtype)
    return dtype in _PREFIX and all(_load(name, dtype) is not None
                                    for name in ("gees", "trsyl"))


def gees(a):
    """The Schur form of each matrix of a stack, in place: a (B, n, n) holds, to Fortran,
    the matrices M[i] = a[i]ᵀ, and becomes their Schur forms Tᵢ (to Fortran; the C-ordered
    a[i] holds Tᵢᵀ); returns (vs, info) with vs (B, n, n) holding the Schur vectors Zᵢ
    the same way, M[i] = Zᵢ Tᵢ Zᵢᴴ, and info (B,) int32 (> 0: the QR algorithm did not
    converge).  Real input gives the real Schur form (2×2 blocks for complex pairs,
    LAPACK's standardized form, as SciPy's schur).  No sorting (``select`` is NULL)."""
    B, n = a.shape[0], a.shape[-1]
    real = a.dtype.kind == "f"
    fn = _load("gees", a.dtype)
    vs = np.empty_like(a)
    info = np.zeros(B, dtype=np.int32)
    lwork = max(1, 34 * n) if real else max(1, 33 * n)
    work = np.empty(lwork, dtype=a.dtype)
    w = np.empty((2 if real else 1, n), dtype=a.dtype)
    rwork = None if real else np.empty(max(1, n), dtype=np.finfo(a.dtype).dtype)
    codes = [ctypes.c_char(c) for c in (b"V", b"N")]
    jobvs, sort = (ctypes.byref(c) for c in codes)
    pn, plw = _int(n), _int(lwork)
    pa, pv, pi = _ptr(), _ptr(), _ptr()
    # the two signatures differ in the eigenvalues (wr, wi against w) and rwork alone
    values = tuple(_ptr(row.ctypes.data) for row in w)
    rw = () if real else (_ptr(rwork.ctypes.data),)
    args = ((jobvs, sort, ctypes.c_void_p(0), pn, pa, pn, _int(0)) + values
            + (pv, pn, _ptr(work.ctypes.data), plw) + rw + (_ptr(0), pi))
    base, step = a.ctypes.data, a.strides[0]
    vbase, vstep, ibase = vs.ctypes.data, vs.strides[0], info.ctypes.data
    for i in range(B):
        pa.value, pv.value, pi.value = base + i * step, vbase + i * vstep, ibase + 4 * i
        fn(*args)
    return vs, info


def trsyl(ta, tb, c, trana, tranb):
    """Solve op(A) Y + Y op(B) = scale·C for each matrix of a stack, in place: to Fortran
    ta (B, m, m), tb (B, n, n) and c (B, n, m) hold the upper (quasi-)triangular Schur
    forms A, B and the m × n right-hand side C (C-ordered arrays of their transposes);
    op by 'N', 'T' or 'C'.  c becomes Y; returns (scale (B,), info (B,) int32; info 1:
    A and −B have (nearly) common eigenvalues, LAPACK perturbed them)."""
    Bn, m, n = ta.shape[0], ta.shape[-1], tb.shape[-1]
    fn = _load("trsyl", c.dtype)
    scale = np.ones(Bn, dtype=np.finfo(c.dtype).dtype)
    info = np.zeros(Bn, dtype=np.int32)
    codes = [ctypes.c_char(x.encode()) for x in (trana, tranb)]
    pta, ptb = (ctypes.byref(x) for x in codes)
    sign, pm, pn = _int(1), _int(m), _int(n)
    abase, astep = ta.ctypes.data, ta.strides[0]
    bbase, bstep = tb.ctypes.data, tb.strides[0]
    cbase, cstep = c.ctypes.data, c.strides[0]
    sbase, ssize, ibase = scale.ctypes.data, scale.itemsize, info.ctypes.data
    pa, pb, pc, ps, pi = _ptr(), _ptr(), _ptr(), _ptr(), _ptr()
    for i in range(Bn):
        pa.value, pb.value, pc.value = abase + i * astep, bbase + i * bstep, cbase + i * cstep
        ps.value, pi.value = sbase + i * ssize, ibase + 4 * i
        fn(pta, ptb, sign, pm, pn, pa, pm, pb, pn, pc, pm, ps, pi)
    return scale, info


# -- banded matrices (band storage; linalgad.rules.banded) ------------------------------------
# A C-contiguous (B, n, ldab) array is, to Fortran, B band arrays of shape (ldab, n): the
# transposes of the C-ordered (ldab, n) band storage SciPy and linalgad use.

def band_available(dtype):
    """Whether the band factorizations and solves can be called directly for this dtype."""
    dtype = np.dtype(dtype)
    return dtype in _PREFIX and all(_load(name, dtype) is not None for name in _BAND)


def gttrf(dl, d, du):
    """LU with partial pivoting of each tridiagonal matrix of a stack, in place: dl, du
    (B, n − 1) and d (B, n) C-contiguous, n >= 2.  Returns (du2 (B, n − 2), ipiv (B, n)
    int32, info (B,) int32: > 0 where U has an exactly zero pivot)."""
    B, n = d.shape
    du2 = np.zeros((B, max(n - 2, 1)), dtype=d.dtype)
    ipiv = np.empty((B, n), dtype=np.int32)
    info = np.zeros(B, dtype=np.int32)
    fn = _load("gttrf", d.dtype)
    pn = _int(n)
    (b1, s1), (b2, s2), (b3, s3), (b4, s4), (b5, s5) = (
        (x.ctypes.data, x.strides[0]) for x in (dl, d, du, du2, ipiv))
    b6 = info.ctypes.data
    p1, p2, p3, p4, p5, p6 = (_ptr() for _ in range(6))
    for i in range(B):
        p1.value, p2.value, p3.value = b1 + i * s1, b2 + i * s2, b3 + i * s3
        p4.value, p5.value, p6.value = b4 + i * s4, b5 + i * s5, b6 + 4 * i
        fn(pn, p1, p2, p3, p4, p5, p6)
    return du2, ipiv, info


def addresses(*arrays):
    """(address, stride of the first axis) of each array: what the loops below step through.
    Factors are solved with many times; their addresses are taken once (``ctypes.data``
    costs about a microsecond, a tridiagonal solve of order 1,000 about five)."""
    return tuple((x.ctypes.data, x.strides[0]) for x in arrays)


def gttrs(dl, d, du, du2, ipiv, bt, trans, factor_addresses=None):
    """Solve op(A[i]) X = B[i] in place with gttrf's factors; bt C-contiguous (B, k, n)
    (the Fortran (n, k) right-hand sides); op by ``trans`` 'N', 'T' or 'C';
    ``factor_addresses``: :func:`addresses` of (dl, d, du, du2, ipiv), taken beforehand."""
    B, n = d.shape
    k = bt.shape[1]
    if bt.size == 0:
        return bt
    fn = _load("gttrs", d.dtype)
    code = ctypes.c_char(trans.encode())
    pt, pn, pk, info = ctypes.byref(code), _int(n), _int(k), _int(0)
    (b1, s1), (b2, s2), (b3, s3), (b4, s4), (b5, s5) = (
        factor_addresses or addresses(dl, d, du, du2, ipiv))
    b6, s6 = bt.ctypes.data, bt.strides[0]
    p1, p2, p3, p4, p5, p6 = (_ptr() for _ in range(6))
    for i in range(B):
        p1.value, p2.value, p3.value = b1 + i * s1, b2 + i * s2, b3 + i * s3
        p4.value, p5.value, p6.value = b4 + i * s4, b5 + i * s5, b6 + i * s6
        fn(pt, pn, pk, p1, p2, p3, p4, p5, p6, pn, info)
    return bt


def gbtrf(ab, kl, ku):
    """LU with partial pivoting of each band matrix of a stack, in place: ab C-contiguous
    (B, n, 2 kl + ku + 1), to Fortran the band arrays with kl rows for the fill-in above
    the band.  Returns (ipiv (B, n) int32, info (B,) int32)."""
    B, n, ld = ab.shape
    ipiv = np.empty((B, n), dtype=np.int32)
    info = np.zeros(B, dtype=np.int32)
    fn = _load("gbtrf", ab.dtype)
    pn, pkl, pku, pld = _int(n), _int(kl), _int(ku), _int(ld)
    base, step, pbase, ibase = ab.ctypes.data, ab.strides[0], ipiv.ctypes.data, info.ctypes.data
    pa, pp, pi = _ptr(), _ptr(), _ptr()
    for i in range(B):
        pa.value, pp.value, pi.value = base + i * step, pbase + 4 * n * i, ibase + 4 * i
        fn(pn, pn, pkl, pku, pa, pld, pp, pi)
    return ipiv, info


def gbtrs(ab, kl, ku, ipiv, bt, trans):
    """Solve op(A[i]) X = B[i] in place with gbtrf's factors (bt as for :func:`gttrs`)."""
    B, n, ld = ab.shape
    k = bt.shape[1]
    if bt.size == 0:
        return bt
    fn = _load("gbtrs", ab.dtype)
    code = ctypes.c_char(trans.encode())
    pt, pn, pkl, pku, pk, pld, info = (ctypes.byref(code), _int(n), _int(kl), _int(ku),
                                       _int(k), _int(ld), _int(0))
    base, step, pbase = ab.ctypes.data, ab.strides[0], ipiv.ctypes.data
    bbase, bstep = bt.ctypes.data, bt.strides[0]
    pa, pp, pb = _ptr(), _ptr(), _ptr()
    for i in range(B):
        pa.value, pp.value, pb.value = base + i * step, pbase + 4 * n * i, bbase + i * bstep
        fn(pt, pn, pkl, pku, pk, pa, pld, pp, pb, pn, info)
    return bt


def pbtrf(ab, kd):
    """Cholesky of each Hermitian positive definite band matrix of a stack, in place: ab
    C-contiguous (B, n, kd + 1), to Fortran the upper form (ab[kd + i − j, j] = A[i, j],
    i <= j).  Returns info (B,) int32 (> 0: the leading minor of that order is not
    positive definite)."""
    B, n, ld = ab.shape
    info = np.zeros(B, dtype=np.int32)
    fn = _load("pbtrf", ab.dtype)
    code = ctypes.c_char(b"U")
    pu, pn, pkd, pld = ctypes.byref(code), _int(n), _int(kd), _int(ld)
    base, step, ibase = ab.ctypes.data, ab.strides[0], info.ctypes.data
    pa, pi = _ptr(), _ptr()
    for i in range(B):
        pa.value, pi.value = base + i * step, ibase + 4 * i
        fn(pu, pn, pkd, pa, pld, pi)
    return info


def pbtrs(ab, kd, bt):
    """Solve A[i] X = B[i] in place with pbtrf's factors (bt as for :func:`gttrs`)."""
    B, n, ld = ab.shape
    k = bt.shape[1]
    if bt.size == 0:
        return bt
    fn = _load("pbtrs", ab.dtype)
    code = ctypes.c_char(b"U")
    pu, pn, pkd, pk, pld, info = (ctypes.byref(code), _int(n), _int(kd), _int(k), _int(ld),
                                  _int(0))
    base, step, bbase, bstep = ab.ctypes.data, ab.strides[0], bt.ctypes.data, bt.strides[0]
    pa, pb = _ptr(), _ptr()
    for i in range(B):
        pa.value, pb.value = base + i * step, bbase + i * bstep
        fn(pu, pn, pkd, pk, pa, pld, pb, pn, info)
    return bt
