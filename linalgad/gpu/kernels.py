"""CuPy kernels with the same methods as ``backend.CPUKernels``.

Same contract: plain CuPy arrays in and out, factorizations kept as opaque
objects that only this table's ``*_solve`` reads, errors that name the
operation and the index of the failing matrix in a stack.

cuSOLVER's getrf/potrf through ``cupyx.scipy.linalg`` take one matrix at a
time; stacks are factored matrix by matrix (a batched cuBLAS path is future
work, measured in benchmarks/ when a GPU is available).
"""

from __future__ import annotations

import contextlib
import functools
import warnings

import cupy
import cupyx
import numpy as np
from cupyx.scipy import linalg as _cxl

from .. import backend
from ..backend import (CPU, BandFactors, ComposedKernels, LinAlgError, LUFactors, _TRANS,
                       _complex_of, _minor_order, _perm_from_swaps, _where)

__all__ = ["GPU", "GPUKernels"]

# Banded matrices of order above this are factored on the host (LAPACK's band LU and
# Cholesky, O(n·l·(l + u))): CuPy has no band solver, and the assembled dense matrix takes
# n² memory (80 GB for a tridiagonal system of order 10⁵) and O(n³) time; the band and the
# right-hand sides cross the bus, O(n (l + u + k)), about the work itself.  Smaller ones (and
# stacks of them) are assembled on the device and factored by its dense LU / Cholesky.
BAND_DEVICE_N = 64


def _first_bad(mask):
    """Index of the first True in a device boolean array (host sync), or None."""
    if not bool(mask.any()):
        return None
    return int(cupy.flatnonzero(mask.ravel())[0])          # int() of a 0-d array: a sync


def _to_device(x):
    """Host results (arrays, tuples of them, named tuples) as device arrays."""
    if isinstance(x, np.ndarray):
        return cupy.asarray(x)
    if isinstance(x, tuple) and hasattr(x, "_fields"):
        return type(x)(*(_to_device(v) for v in x))
    if isinstance(x, (tuple, list)):
        return type(x)(_to_device(v) for v in x)
    return x


def _empty_on_host(method):
    """Empty input (an order-0 matrix, an empty stack) to the CPU table's method of the same
    name, results copied back: cuSOLVER rejects a leading dimension of 0, and the per-matrix
    loops stack nothing.  Copying empty arrays costs nothing."""
    name = method.__name__

    @functools.wraps(method)
    def run(self, *args, **kwargs):
        if any(isinstance(a, cupy.ndarray) and a.size == 0 for a in args):
            host = [cupy.asnumpy(a) if isinstance(a, cupy.ndarray) else a for a in args]
            return _to_device(getattr(CPU, name)(*host, **kwargs))
        return method(self, *args, **kwargs)
    return run


def _linalg_raise():
    """cupyx.errstate(linalg="raise"): CuPy ignores cuSOLVER's info unless asked."""
    errstate = getattr(cupyx, "errstate", None)
    return errstate(linalg="raise") if errstate is not None else contextlib.nullcontext()


def _device_or_none(name, A):
    """cupy.linalg.<name>(A), or None where CuPy has no such function (CuPy 13: no eig)
    or its cuSOLVER lacks the kernel (CuPy 14 below cuSOLVER 11.7 raises RuntimeError
    "geev is not available")."""
    fn = getattr(cupy.linalg, name, None)
    if fn is None:
        return None
    try:
        return fn(A)
    except (RuntimeError, NotImplementedError):
        return None


def _common(a, b):
    """a and b in their common dtype: cupyx's lu_solve and solve_triangular cast b to the
    factor's dtype (a complex b with real factors would lose its imaginary part)."""
    dtype = np.result_type(a.dtype, b.dtype)
    return a.astype(dtype, copy=False), b.astype(dtype, copy=False)


class GPUKernels(ComposedKernels):
    xp = cupy
    name = "gpu"

    def lu_factor(self, A, op="lu_factor", singular_ok=False):
        n = A.shape[-1]
        batch = A.shape[:-2]
        if A.size == 0:                         # nothing to factor (see lu_solve)
            return LUFactors("empty", A.dtype, None, A.shape)
        flat = A.reshape(-1, n, n)
        lus, pivs = [], []
        for a in flat:
            with warnings.catch_warnings():     # "Diagonal number %d is exactly zero":
                warnings.simplefilter("ignore", RuntimeWarning)     # raised (or kept) below
                lu, piv = _cxl.lu_factor(a, check_finite=False)
            lus.append(lu)
            pivs.append(piv)
        diag = cupy.stack([cupy.diagonal(lu) for lu in lus])
        bad = None if singular_ok else _first_bad((diag == 0).any(axis=-1))
        if bad is not None:
            raise LinAlgError(f"{op}: matrix is singular (a zero pivot in its LU "
                              f"factorization){_where(op, batch, bad)}")
        if not batch:
            return LUFactors("cusolver", lus[0], pivs[0], A.shape)
        return LUFactors("cusolver", lus, pivs, A.shape)

    def band_factor(self, ab, lower, upper, hermitian=False, op="solve_banded"):
        if ab.shape[-1] <= BAND_DEVICE_N:
            return super().band_factor(ab, lower, upper, hermitian, op)
        F = CPU.band_factor(cupy.asnumpy(ab), lower, upper, hermitian, op)
        return BandFactors("host", F, F.shape, lower, upper, hermitian)

    def band_solve(self, F, b, trans=0):
        if F.kind != "host":
            return super().band_solve(F, b, trans)
        return cupy.asarray(CPU.band_solve(F.data, cupy.asnumpy(b), trans))

    # The banded Cholesky (rules/banded_cholesky.py): the band and its factor cross the bus,
    # O(n u), about the work itself (a device has no band Cholesky or triangular band
    # solve); the derivatives' recurrence runs on the device by cyclic reduction.
    def band_cholesky(self, tb, op="cholesky_banded"):
        if tb.shape[-1] <= BAND_DEVICE_N:
            return super().band_cholesky(tb, op)
        return cupy.asarray(CPU.band_cholesky(cupy.asnumpy(tb), op))

    def lower_block_inverse(self, D):
        if D.shape[-1] <= backend.BLOCK_INVERSE_B:
            return super().lower_block_inverse(D)
        return cupy.linalg.inv(D)          # batched getrf/getri: one call for the stack

    def band_trsolve(self, lb, b, trans=0, op="cho_solve_banded"):
        if lb.shape[-1] <= BAND_DEVICE_N:
            return super().band_trsolve(lb, b, trans, op)
        return cupy.asarray(CPU.band_trsolve(cupy.asnumpy(lb), cupy.asnumpy(b), trans, op))

    def lu_solve(self, F, b, trans=0):
        trans = _TRANS[trans]
        if F.kind == "empty" or b.size == 0:
            dtype = np.result_type(_lu_dtype(F), b.dtype)
            return cupy.zeros(b.shape, dtype=dtype)
        if not isinstance(F.data, list):
            lu, b = _common(F.data, b)
            return _cxl.lu_solve((lu, F.piv), b, trans=trans, check_finite=False)
        n, k = b.shape[-2:]
        flat_b = b.reshape(len(F.data), n, k)               # (k may be 0: no -1)
        xs = []
        for lu, piv, bi in zip(F.data, F.piv, flat_b):
            lu, bi = _common(lu, bi)
            xs.append(_cxl.lu_solve((lu, piv), bi, trans=trans, check_finite=False))
        out = cupy.stack(xs)
        return out.reshape(b.shape[:-2] + (n, k))

    # -- from LU factors --------------------------------------------------------
    def lu_diagonal(self, F):
        n = F.shape[-1]
        if F.kind == "empty":
            return (cupy.zeros(F.shape[:-1], dtype=F.data),
                    cupy.ones(F.shape[:-2], dtype=F.data))
        lus = F.data if isinstance(F.data, list) else [F.data]
        pivs = F.piv if isinstance(F.piv, list) else [F.piv]
        d = cupy.stack([cupy.diagonal(lu) for lu in lus])
        odd = cupy.stack([cupy.count_nonzero(p != cupy.arange(n)) % 2 for p in pivs])
        sign = (1 - 2 * odd).astype(d.dtype)
        return d.reshape(F.shape[:-2] + (n,)), sign.reshape(F.shape[:-2])

    def lu_inverse(self, F):
        n = F.shape[-1]
        eye = cupy.broadcast_to(cupy.eye(n, dtype=_lu_dtype(F)), F.shape)
        return self.lu_solve(F, cupy.ascontiguousarray(eye), 0)

    def inv(self, A, op="inv"):
        F = self.lu_factor(A, op)
        return self.lu_inverse(F)

    def lu_packed(self, A, op="lu_factor"):
        m, n = A.shape[-2:]
        k = min(m, n)
        batch = A.shape[:-2]
        if A.size == 0:
            return (A.copy(), cupy.ascontiguousarray(cupy.broadcast_to(cupy.arange(m),
                                                                       batch + (m,))),
                    cupy.zeros(batch + (k,), dtype=np.int32))
        flat = A.reshape((-1, m, n))
        lus, pivs = [], []
        for a in flat:
            lu, piv = _cxl.lu_factor(a, check_finite=False)
            lus.append(lu)
            pivs.append(piv[:k])
        lu = cupy.stack(lus).reshape(A.shape)
        piv = cupy.stack(pivs).reshape(batch + (k,))
        return lu, self.perm_from_swaps(piv, m), piv

    def perm_from_swaps(self, piv, m):
        return cupy.asarray(_perm_from_swaps(cupy.asnumpy(piv), m))

    # -- triangular, Cholesky, QR, SVD ----------------------------------------------
    @_empty_on_host
    def solve_triangular(self, A, b, lower=False, trans=0, unit_diagonal=False,
                         op="solve_triangular"):
        trans = _TRANS[trans]
        A, b = _common(A, b)
        n, k = b.shape[-2:]
        batch = A.shape[:-2]
        if not unit_diagonal:
            d = cupy.diagonal(A, 0, -2, -1).reshape(-1, n)
            bad = _first_bad((d == 0).any(axis=-1))
            if bad is not None:
                raise LinAlgError(f"{op}: triangular matrix is singular (a zero on the "
                                  f"diagonal){_where(op, batch, bad)}")
        if not batch:
            return _cxl.solve_triangular(A, b, trans=trans, lower=lower,
                                         unit_diagonal=unit_diagonal, check_finite=False)
        fa = A.reshape(-1, n, n)
        fb = b.reshape(fa.shape[0], n, k)
        out = cupy.stack([_cxl.solve_triangular(a, x, trans=trans, lower=lower,
                                                unit_diagonal=unit_diagonal,
                                                check_finite=False) for a, x in zip(fa, fb)])
        return out.reshape(b.shape)

    @_empty_on_host
    def cholesky(self, A, lower=True, op="cholesky"):
        # cupy reads the lower triangle; for the upper one factor conj(A)ᵀ's lower part
        src = A if lower else cupy.conj(cupy.swapaxes(A, -1, -2))
        bad = None
        try:
            with _linalg_raise():
                L = cupy.linalg.cholesky(src)
        except LinAlgError:
            # cuSOLVER's info said "not positive definite"; which matrix: one at a time
            flat = src.reshape((-1,) + src.shape[-2:])
            bad = 0
            for i, a in enumerate(flat):
                try:
                    with _linalg_raise():
                        cupy.linalg.cholesky(a)
                except LinAlgError:
                    bad = i
                    break
        if bad is None:     # and where CuPy could not be asked: what potrf leaves behind
            diag = cupy.diagonal(L, 0, -2, -1).reshape(-1, A.shape[-1])
            bad = _first_bad(~cupy.isfinite(diag).all(axis=-1) | (diag.real <= 0).any(axis=-1))
        if bad is not None:
            # the leading minor, as the CPU table says it: LAPACK's potrf on the host
            a = cupy.asnumpy(src.reshape((-1,) + src.shape[-2:])[bad])
            raise LinAlgError(f"{op}: matrix is not positive definite"
                              f"{_minor_order(a, True)}{_where(op, A.shape[:-2], bad)}")
        return L if lower else cupy.conj(cupy.swapaxes(L, -1, -2))

    @_empty_on_host
    def qr_pivoted(self, A, complete=False):
        """cuSOLVER has no column-pivoted QR: LAPACK geqp3 on the host, results copied
        back (a documented host round-trip, like eig)."""
        return tuple(cupy.asarray(x) for x in CPU.qr_pivoted(cupy.asnumpy(A), complete))

    @_empty_on_host
    def qr(self, A, complete=False):
        mode = "complete" if complete else "reduced"
        if A.ndim == 2:
            return cupy.linalg.qr(A, mode=mode)
        flat = A.reshape((-1,) + A.shape[-2:])
        qs, rs = zip(*(cupy.linalg.qr(a, mode=mode) for a in flat))
        Q, R = cupy.stack(qs), cupy.stack(rs)
        return (Q.reshape(A.shape[:-2] + Q.shape[-2:]), R.reshape(A.shape[:-2] + R.shape[-2:]))

    @_empty_on_host
    def qr_r(self, A):
        if A.ndim == 2:
            return cupy.linalg.qr(A, mode="r")
        flat = A.reshape((-1,) + A.shape[-2:])
        R = cupy.stack([cupy.linalg.qr(a, mode="r") for a in flat])
        return R.reshape(A.shape[:-2] + R.shape[-2:])

    @_empty_on_host
    def svd(self, A, full_matrices=True, compute_uv=True, op="svd"):
        return cupy.linalg.svd(A, full_matrices=full_matrices, compute_uv=compute_uv)

    @_empty_on_host
    def eigh(self, A, lower=True, op="eigh"):
        return cupy.linalg.eigh(A, UPLO="L" if lower else "U")

    @_empty_on_host
    def eigvalsh(self, A, lower=True, op="eigvalsh"):
        return cupy.linalg.eigvalsh(A, UPLO="L" if lower else "U")

    @_empty_on_host
    def eig(self, A, op="eig"):
        """(w, V), complex.  cupy.linalg.eig (CuPy >= 14 with cuSOLVER's Xgeev) where it
        runs; otherwise a composed kernel: LAPACK geev on the host, results copied back.
        CuPy does not promise NumPy's order of the eigenvalues (neither does NumPy)."""
        cdt = _complex_of(A.dtype)
        res = _device_or_none("eig", A)
        if res is not None:
            w, V = res
        else:
            w, V = np.linalg.eig(cupy.asnumpy(A))
            w, V = cupy.asarray(w), cupy.asarray(V)
        return w.astype(cdt, copy=False), V.astype(cdt, copy=False)

    @_empty_on_host
    def eigvals(self, A, op="eigvals"):
        cdt = _complex_of(A.dtype)
        w = _device_or_none("eigvals", A)
        if w is None:
            w = cupy.asarray(np.linalg.eigvals(cupy.asnumpy(A)))
        return w.astype(cdt, copy=False)

    # -- lstsq family (linalgad/rules/lstsq.py) ----------------------------------------
    def lstsq_qr(self, M):
        """QR of a tall stack M (..., m, n) for least squares: (F, R), Q formed
        (cuSOLVER geqrf + orgqr through cupy.linalg.qr, matrix by matrix)."""
        Q, R = self.qr(M, complete=False)
        return ("explicit", Q), R

    @_empty_on_host
    def lstsq_qr_r(self, M, b):
        """(R, Qᴴ b) from the R factor of the augmented [M b] (Q never formed)."""
        n = M.shape[-1]
        aug = cupy.concatenate([M, b.astype(M.dtype, copy=False)], axis=-1)
        flat = aug.reshape((-1,) + aug.shape[-2:])
        Raug = cupy.stack([cupy.linalg.qr(a, mode="r") for a in flat])
        Raug = Raug.reshape(aug.shape[:-2] + Raug.shape[-2:])
        return cupy.triu(Raug[..., :n, :n]), Raug[..., :n, n:]

    def lstsq_svdvals_small(self, R, max_cond=None):
        """Singular values from eigvalsh(Rᴴ R) when every cond(R) <= max_cond, else None
        (max_cond 32 in double, 8 in single precision, as the CPU table)."""
        if max_cond is None:
            max_cond = 32.0 if np.finfo(R.dtype).eps < 1e-10 else 8.0
        RH = cupy.conj(cupy.swapaxes(R, -1, -2))
        lam = cupy.linalg.eigvalsh(RH @ R)[..., ::-1]
        top = lam[..., :1]
        if not bool(cupy.all(lam[..., -1:] * max_cond ** 2 >= top)) or \
                not bool(cupy.all(top > 0)):
            return None
        return cupy.sqrt(lam)

    def lstsq_qr_apply(self, F, y, adjoint):
        """Qᴴ y (adjoint) or Q y, with the formed Q."""
        Q = F[1]
        if adjoint:
            return cupy.matmul(cupy.conj(cupy.swapaxes(Q, -1, -2)), y)
        return cupy.matmul(Q, y)

    # -- matfuncs family (linalgad/rules/matfuncs.py) ----------------------------------------
    # expm and L(A, E): the composed, stack-vectorised Padé kernel (ComposedKernels.
    # expm_staged / expm_frechet_staged: batched products on the device, LU per matrix).
    # sqrtm and logm: documented host round-trips, like the
    # sylvester section: CuPy has no Schur decomposition, and a Schur-free composition
    # (Denman–Beavers / Newton iterations for sqrtm, eigendecomposition for logm) is not
    # stable for non-normal matrices.  logm's triangular Schur factors stay on the host
    # (only these kernels read them); each derivative copies its direction to the host and
    # the result back: O(n²) transfers around O(n³) host work.

    def sqrtm(self, A, op="sqrtm"):
        return cupy.asarray(CPU.sqrtm(cupy.asnumpy(A), op))

    def logm_schur(self, A, op="logm"):
        return CPU.logm_schur(cupy.asnumpy(A), op)          # host factors

    def logm_from_schur(self, T, Z, real, op="logm"):
        return cupy.asarray(CPU.logm_from_schur(T, Z, real, op))

    def logm_frechet_schur(self, T, Z, E, real, op="logm"):
        return cupy.asarray(CPU.logm_frechet_schur(T, Z, cupy.asnumpy(E), real, op))

    def logm_block_factors(self, T, Z, E):
        return CPU.logm_block_factors(T, Z, cupy.asnumpy(E))

    # -- sylvester family (linalgad/rules/sylvester.py) ----------------------------------------
    # Composed kernels with a documented host round-trip (like ``eig`` without Xgeev):
    # CuPy has neither a Schur decomposition nor a triangular Sylvester solver (trsyl),
    # and the Schur form has no reasonable composition from cuSOLVER's kernels (a
    # Hessenberg QR iteration is sequential; an eigendecomposition is not a stable
    # substitute for non-normal matrices).  So the Schur forms are computed by LAPACK
    # ?gees on the host and KEPT ON THE HOST (the factor objects are opaque and only
    # these kernels read them), and each solve copies its right-hand side to the host,
    # runs the CPU kernel (basis changes + ?trsyl) and copies the solution back:
    # O(n²) transfers per solve around O(n³) host work.  The differentiable rules
    # (linalgad/rules/sylvester.py) are unchanged: only these kernels differ.

    def schur(self, A, op="schur"):
        return CPU.schur(cupy.asnumpy(A), op)

    def schur_complex(self, T, Z):
        return CPU.schur_complex(T, Z)

    def cayley(self, T, op="solve_discrete_lyapunov"):
        return CPU.cayley(T, op)

    def sylvester_schur(self, Ta, Za, ta, Tb, Zb, tb, C, op="sylvester"):
        return cupy.asarray(CPU.sylvester_schur(Ta, Za, ta, Tb, Zb, tb, cupy.asnumpy(C), op))

    def stein_schur(self, W, S, Z, t, C, op="solve_discrete_lyapunov"):
        return cupy.asarray(CPU.stein_schur(W, S, Z, t, cupy.asnumpy(C), op))

    # -- Toeplitz systems (linalgad/rules/toeplitz.py) ----------------------------------------
    # Levinson's recursion is sequential (n steps of O(n) work): a documented host round-trip
    # (O(n k) transfers around O(n² k) host work).  The products and diagonal sums the
    # derivatives use are FFTs on the device (backend.toeplitz_matmul / toeplitz_correlate).

    def toeplitz_solve(self, v, B, op="solve_toeplitz"):
        return cupy.asarray(CPU.toeplitz_solve(cupy.asnumpy(v), cupy.asnumpy(B), op))

    # -- LDLᴴ / Bunch–Kaufman (linalgad/rules/ldl.py) -------------------------------------------
    # CuPy and cuSOLVER have no symmetric-indefinite factorization (sytrf): a documented host
    # round-trip (O(n²) transfers around O(n³) host work), so the values are SciPy's exactly.
    # The derivatives' triangular solves and products run on the device.

    def ldl(self, A, lower=True, hermitian=True, op="ldl"):
        return tuple(cupy.asarray(x) for x in CPU.ldl(cupy.asnumpy(A), lower, hermitian, op))

    # -- riccati family (linalgad/rules/riccati.py) ------------------------------------------
    # The doubling algorithm (ComposedKernels.riccati: batched products and solves) runs on
    # the device for the whole stack, in double precision; the matrices it declines go to
    # SciPy's QZ solver on the host (CuPy has no QZ), the others stay as computed.  The derivatives
    # are Lyapunov / Stein solves in the closed loop: the sylvester section's kernels above
    # (on the host), with the products around them on the device.

    def _riccati_declined(self, kind, full, X, ok, balanced, op="riccati"):
        """A matrix the device iteration declined (rare): the host kernel finishes the
        stack, and its errors name the matrix by its place in the stack."""
        host = [None if x is None else cupy.asnumpy(x) for x in full]
        Xh = cupy.asnumpy(X) if ok is not None else None
        okh = cupy.asnumpy(ok) if ok is not None else None
        return cupy.asarray(CPU._riccati_declined(kind, host, Xh, okh, balanced, op))


    # -- cossin (linalgad/rules/cossin.py) ----------------------------------------------------
    # CuPy has no CS decomposition: a host round trip through SciPy's LAPACK (O(m²) transfers
    # around O(m³) host work); the derivatives' products run on the device.

    def cossin(self, X, p, q, swap_sign=False, compute_u=True, compute_vh=True, op="cossin"):
        return tuple(cupy.asarray(x) for x in CPU.cossin(cupy.asnumpy(X), p, q, swap_sign,
                                                          compute_u, compute_vh, op))


def _lu_dtype(F):
    if F.kind == "empty":
        return F.data                   # the factored matrices' dtype
    return (F.data[0] if isinstance(F.data, list) else F.data).dtype


GPU = GPUKernels()
