"""The extreme singular values of a matrix and their derivatives, at the cost of the values.

The spectral norm ‖A‖₂ = s₁, its reciprocal-side twin s_min and cond = s₁/s_min need,
for their gradient, the singular vectors of the extreme values only: ∂s₁/∂A = u₁v₁ᴴ.
The thin SVD with all vectors costs about twice the values alone (gesdd, at n = 256:
14 ms against 6.3).  Here, per matrix:

1. ``gebrd`` reduces G (A, or Aᵀ when A is wide, so that G is tall) to an upper
   bidiagonal B = Qᴴ G P (real even for complex G): the cost of the values.
2. ``lasq1`` gives B's singular values, to high relative accuracy (as gesdd's).
3. The singular pairs of B for the chosen values are eigenvectors of the
   Golub-Kahan-Tridiagonal matrix T (order 2q, zero diagonal, off-diagonal
   d₁, e₁, d₂, …, d_q): T [v₁, u₁, v₂, u₂, …] = s [v₁, u₁, …] when B v = s u and
   Bᵀ u = s v.  ``stevx`` finds them by index (bisection and inverse iteration, O(q)
   per vector): T's eigenvalues are ±s, so s₁ is the largest and s_min the q+1-th.
4. ``ormbr``/``unmbr`` map them back: u = Q u_B, v = P v_B (O(pq) per vector).

Every routine is SciPy's own LAPACK, called by address through ctypes
(``linalgad._lapack_stack``).  :func:`extreme` returns None where it cannot answer
accurately; the caller then takes the full SVD.
"""

from __future__ import annotations

import ctypes

import numpy as np

from . import _lapack_stack as _ls

__all__ = ["available", "extreme", "tied_mask", "tie_weights"]

_REAL = {np.dtype(np.float32): np.dtype(np.float32), np.dtype(np.float64): np.dtype(np.float64),
         np.dtype(np.complex64): np.dtype(np.float32),
         np.dtype(np.complex128): np.dtype(np.float64)}


def _fns(dtype):
    real = _REAL[dtype]
    mbr = "unmbr" if dtype.kind == "c" else "ormbr"
    return _ls._load("gebrd", dtype), _ls._load(mbr, dtype), _ls._load("lasq1", real)


def _stein(real):
    from scipy.linalg import lapack
    return lapack.sstein if real == np.float32 else lapack.dstein


def available(dtype):
    """Whether gebrd, ormbr/unmbr and lasq1 can be called directly for this dtype."""
    dtype = np.dtype(dtype)
    return dtype in _REAL and all(f is not None for f in _fns(dtype))


def _int(v):
    return ctypes.byref(ctypes.c_int(v))


def _char(c):
    return ctypes.byref(ctypes.c_char(c.encode()))


def _p(a):
    return ctypes.c_void_p(a.__array_interface__["data"][0])   # a.ctypes: 3 µs a call


def tied_mask(xp, s, idx, tol):
    """Which singular values (descending, (..., k)) are tied with s[..., idx]: within
    ``tol`` relative.  The one test of a tie at an end (this kernel, the thin-SVD
    kernel, and the rules' cluster weights)."""
    ref = s[..., idx:idx + 1]
    return xp.abs(s - ref) <= tol * xp.maximum(s, ref)


def tie_weights(xp, s, idx, tol):
    """(w, count): weights 1/k on the k values tied with s[..., idx] (0 elsewhere; the
    cluster mean the extreme-value derivatives take at a tie) and k per matrix (..., 1)."""
    tied = tied_mask(xp, s, idx, tol)
    count = tied.sum(axis=-1, keepdims=True)
    return (tied / count).astype(s.dtype), count


def _tied(s, idx, tol):
    """Indices of the values tied with s[idx] (s descending), as a contiguous range."""
    where = np.flatnonzero(tied_mask(np, s, idx, tol))
    return int(where[0]), int(where[-1]) + 1


def extreme(A, top, bottom, tol):
    """(s, M_top, M_bottom) of one matrix A (m, n), or None.

    s: all singular values, descending (real, A's precision).  M_top (when ``top``) is
    the mean of u_i v_iᴴ over the values tied with s₁ (within ``tol`` relative): the
    derivative of s₁ where it is simple, the minimum-norm subgradient at a tie; M_bottom
    the same for s_min.  None where the answer would not be accurate: an exactly zero
    matrix, s_min tiny against s₁ (±s_min of T then coalesce around 0) when ``bottom``,
    or a routine reporting failure.
    """
    dtype = A.dtype
    real = _REAL[dtype]
    gebrd, mbr, lasq1 = _fns(dtype)
    m, n = A.shape
    wide = m < n
    G = np.array(A.T if wide else A, dtype=dtype, order="F", copy=True)   # tall, p × q
    p, q = G.shape
    if q == 0:
        return None
    d = np.empty(q, dtype=real)
    e = np.zeros(q, dtype=real)              # q − 1 used (lasq1 wants room for q)
    tauq = np.empty(q, dtype=dtype)
    taup = np.empty(q, dtype=dtype)
    lwork = max(1, 64 * (p + q))
    work = np.empty(lwork, dtype=dtype)
    info = ctypes.c_int(0)
    pinfo = ctypes.byref(info)
    gebrd(_int(p), _int(q), _p(G), _int(p), _p(d), _p(e), _p(tauq), _p(taup), _p(work),
          _int(lwork), pinfo)
    if info.value != 0:
        return None
    s = d.copy()
    ee = e.copy()
    lwork_q = np.empty(max(1, 4 * q), dtype=real)
    lasq1(_int(q), _p(s), _p(ee), _p(lwork_q), pinfo)
    if info.value != 0:
        return None
    if not s[0] > 0 or not np.isfinite(s[0]):
        return None
    if bottom and not s[-1] > 4 * q * np.finfo(real).eps * s[0]:
        return None
    # T's off-diagonal: d₁, e₁, d₂, e₂, …, d_q (its eigenvalues are ±s)
    off = np.empty(max(2 * q - 1, 1), dtype=real)
    off[0::2] = d
    off[1::2] = e[:q - 1]
    N = 2 * q
    if not np.all(off != 0):         # T splits into blocks: leave it to the full SVD
        return None
    stein = _stein(real)
    diag = np.zeros(N, dtype=real)
    block = np.ones(N, dtype=np.int32)
    split = np.full(N, N, dtype=np.int32)
    ranges = [(_tied(s, idx, tol) if want else None)
              for want, idx in ((top, 0), (bottom, q - 1))]
    J = sorted({j for r in ranges if r is not None for j in range(*r)})    # value indices
    k = len(J)
    # inverse iteration at the known values (ascending), one block (T unreduced), for
    # every vector wanted at once: the ends' clusters, merged where they overlap
    z, info_ = stein(diag, off, s[J][::-1].copy(), block, split)
    if info_ != 0:
        return None
    z = z[:, ::-1].T                                 # (k, N): row i is value s[J[i]]
    vB = z[:, 0::2]                                  # (k, q): rows are vectors
    uB = z[:, 1::2]
    vB = vB / np.linalg.norm(vB, axis=1, keepdims=True)
    uB = uB / np.linalg.norm(uB, axis=1, keepdims=True)
    # back to G: u = Q u_B (p), v = P v_B (q); Fortran (p, k) and (q, k) blocks
    cu = np.zeros((k, p), dtype=dtype)
    cu[:, :q] = uB
    cv = np.array(vB, dtype=dtype)
    lw = max(1, 64 * k)
    mwork = np.empty(lw, dtype=dtype)
    mbr(_char("Q"), _char("L"), _char("N"), _int(p), _int(k), _int(q), _p(G), _int(p),
        _p(tauq), _p(cu), _int(p), _p(mwork), _int(lw), pinfo)
    if info.value != 0:
        return None
    mbr(_char("P"), _char("L"), _char("N"), _int(q), _int(k), _int(p), _p(G), _int(p),
        _p(taup), _p(cv), _int(q), _p(mwork), _int(lw), pinfo)
    if info.value != 0:
        return None
    # G = A: u, v are A's; G = Aᵀ = conj(V) S conj(U)ᴴ: A's u = conj(v_G), v = conj(u_G)
    U, V = (np.conj(cv), np.conj(cu)) if wide else (cu, cv)          # (k, m), (k, n)
    out = []
    for r in ranges:
        if r is None:
            out.append(None)
            continue
        rows = slice(J.index(r[0]), J.index(r[0]) + r[1] - r[0])
        out.append((U[rows].T / (r[1] - r[0])) @ np.conj(V[rows]))
    return s, out[0], out[1]
