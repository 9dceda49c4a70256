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

Below order 48 those dozen calls cost more than the SVD they save; :func:`extreme_stack`
takes a whole stack of small matrices instead, by inverse iteration on Gram matrices
(see the section before it).
"""

from __future__ import annotations

import ctypes

import numpy as np

from . import _lapack_stack as _ls

__all__ = ["available", "extreme", "extreme_stack", "tied_mask", "tie_weights"]

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


# -- stacks of small matrices: inverse iteration at the known values ------------------------
#
# Below order EXTREME_SVD_N the dozen LAPACK calls above cost more than the thin SVD they
# save.  A stack of such matrices is instead handled whole, given its values, with a few
# stacked operations and one LAPACK loop per factorization (``linalgad._lapack_stack``):
#
# * s₁'s pair: inverse iteration on the Gram matrix G = AᴴA (or AAᴴ, the smaller),
#   shifted just above its top eigenvalue s₁².  Forming G squares the singular values but
#   not the top pair's sensitivity: G's error, O(k ε s₁²), over the gap s₁² − s₂² is about
#   k ε s₁/(2(s₁ − s₂)), the bound the SVD's own vectors have.
# * s_min's pair (square A): the same on X = A⁻¹ (getrf, getri), whose top pair is
#   (v_min, u_min) with value 1/s_min.  The computed inverse is A⁻¹ + A⁻¹ E A⁻¹ with
#   ‖E‖ = O(ε ‖A‖); in X's singular basis that error's entries are E_ij/(s_i s_j), which
#   moves X's top pair by about ε s₁/(s_{k−1} − s_k): the SVD's bound again, not ε κ.
#
# Inverse iteration with the shift δ = 4 k ε (relative) above the top eigenvalue λ₁ of G
# shrinks the other components by about ρ = 2δλ₁/(λ₁ − λ₂) a step (λ₂ the next eigenvalue,
# known from the values).  The steps go on until ρ times the last step's change (about the
# previous iterate's error) is below ε, so the iterate is converged, not merely within the
# perturbation bound: at most _MAX_STEPS, two in the common case.  A pair is then accepted
# only if its residual in A itself, max(‖A v − s u‖, ‖Aᴴu − s v‖), is at most 8 k ε s₁
# (LAPACK's SVD meets a few ε s₁) — the net for a start vector nearly orthogonal to the pair.
# A matrix that does not converge, fails that test, ties at the end or has s_min ≤ 4 k ε s₁
# is left to the caller (the thin SVD).  Single precision is iterated in double.
#
# Measured against a 40-digit SVD (mpmath) of 16 × 16 matrices with a near pair at both
# ends (relative gap 1e-6 / 1e-8): u₁v₁ᴴ off by 1e-12 / 2e-10 here against LAPACK's
# 4e-11 / 4e-9, u_k v_kᴴ by 4e-11 / 3e-9 against 1e-10 / 3e-9; in single precision (gap
# 1e-3) 7e-9 against LAPACK's 1.5e-8.

_MAX_STEPS = 6
_RESIDUAL_FACTOR = 8
_STARTS = {}


def _start(k, dtype, count):
    """A fixed start vector for inverse iteration, every entry nonzero and unstructured
    (a matrix whose pair is orthogonal to it fails the residual test), as count rows of a
    C-contiguous (count, 1, k) array: getrs's Fortran (k, 1) right-hand sides."""
    key = (k, dtype)
    if key not in _STARTS:
        i = np.arange(k)
        _STARTS[key] = (np.cos(2.399963 * i + 0.5) + 1.5).astype(dtype)   # golden angle
    x = np.empty((count, 1, k), dtype=dtype)
    x[...] = _STARTS[key]
    return x


def _unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _mH(x):
    # backend._mH's NumPy case; this module sits below backend (which imports it) and
    # depends on _lapack_stack alone
    x = np.swapaxes(x, -1, -2)
    return np.conj(x) if x.dtype.kind == "c" else x


def _top_pairs(X, value, second, live, eps):
    """(u, v, ok) of each X (B, p, q): its top singular pair, for its two largest
    singular values ``value`` and ``second`` (B,), by inverse iteration on its Gram
    matrix shifted just above value²; ok where it converged (see above) with no zero
    pivot.  ``live``: the matrices whose convergence is waited for; ``eps``: the relative
    accuracy of the values, and the one the pair is converged to."""
    B, p, q = X.shape
    k = min(p, q)
    G = np.matmul(_mH(X), X) if p >= q else np.matmul(X, _mH(X))          # (B, k, k)
    top2 = value * value
    shift = 4 * k * eps
    idx = np.arange(k)
    G[:, idx, idx] -= (top2 * (1 + shift))[:, None]
    ratio = 2 * shift * top2 / (top2 - second * second)       # inf or < 0 at a tie
    ok = live.copy()
    piv, info = _ls.getrf(G)                   # factors of Gᵀ: solve with trans "T"
    ok &= (info == 0) & (ratio >= 0) & (ratio < 0.5)
    x = _start(k, X.dtype, B)
    prev = None
    converged = np.zeros(B, dtype=bool)
    for _ in range(_MAX_STEPS):
        _ls.getrs(G, piv, x, "T")
        x = _unit(x)
        if prev is not None:
            c = np.einsum("bij,bij->b", prev.conj(), x)
            d = np.linalg.norm(x[:, 0] - c[:, None] * prev[:, 0], axis=-1)
            converged = ratio * d <= eps
            if converged[ok].all():
                break
        prev = x.copy()                        # getrs overwrites x
    ok &= converged
    x = x[:, 0]
    if p >= q:
        v = x
        u = _unit(np.matmul(X, v[..., None])[..., 0])
    else:
        u = x
        v = _unit(np.matmul(_mH(X), u[..., None])[..., 0])
    return u, v, ok


def _residual_ok(A, u, v, s, top, eps):
    """max(‖A v − s u‖, ‖Aᴴu − s v‖) ≤ 8 k ε s₁ per matrix (finite values only)."""
    k = min(A.shape[-2:])
    r1 = np.matmul(A, v[..., None])[..., 0] - s[:, None] * u
    r2 = np.matmul(_mH(A), u[..., None])[..., 0] - s[:, None] * v
    r = np.maximum(np.linalg.norm(r1, axis=-1), np.linalg.norm(r2, axis=-1))
    return r <= _RESIDUAL_FACTOR * k * eps * top


def _outer(u, v):
    return u[..., :, None] * np.conj(v[..., None, :])


def extreme_stack(A, s, top, bottom, tol):
    """(M_top, M_bottom, ok) of a stack A (B, m, n) of small matrices with singular
    values s (B, k), descending: M_top (when ``top``) u₁v₁ᴴ and M_bottom
    (when ``bottom``; A square) u_min v_minᴴ, each (B, m, n); ok (B,): where both are
    accurate (see above) and neither end is tied (within ``tol`` relative).  The caller
    takes the thin SVD of the matrices that are not ok; their M rows are garbage.
    """
    B, m, n = A.shape
    k = min(m, n)
    dtype = A.dtype
    eps = np.finfo(dtype).eps
    # single precision is iterated in double: the Gram matrix's rounding then stays far
    # below the values' own, and the pairs come out as accurate as LAPACK's (whose
    # single-precision vectors, at a near pair, beat the Gram matrix's bound k ε/gap)
    A = A.astype(np.promote_types(dtype, np.float64), copy=False)
    s = s.astype(A.real.dtype, copy=False)
    s1 = s[:, 0]
    with np.errstate(all="ignore"):
        ok = np.isfinite(s1) & (s1 > 0)
        Mt = Mb = None
        if top:
            ok &= tied_mask(np, s, 0, tol).sum(axis=-1) == 1
            u, v, conv = _top_pairs(A, s1, s[:, 1], ok, eps)
            ok &= conv & _residual_ok(A, u, v, s1, s1, eps)
            Mt = _outer(u, v).astype(dtype, copy=False)
        if bottom:
            sk = s[:, -1]
            ok &= (tied_mask(np, s, k - 1, tol).sum(axis=-1) == 1) & \
                (sk > 4 * k * eps * s1)
            X = np.array(A, order="C")
            piv, info = _ls.getrf(X)             # Aᵀ's factors; getri then gives A⁻¹
            ok &= info == 0
            X[~ok] = np.eye(k, dtype=A.dtype)    # keeps getri off exactly singular factors
            piv[~ok] = np.arange(1, k + 1, dtype=piv.dtype)
            _ls.getri(X, piv)
            # X's top pair is (v_min, u_min), its value 1/s_min
            vb, ub, conv = _top_pairs(X, np.where(ok, 1 / sk, 1), np.where(ok, 1 / s[:, -2], 0),
                                      ok, eps)
            ok &= conv & _residual_ok(A, ub, vb, sk, s1, eps)
            Mb = _outer(ub, vb).astype(dtype, copy=False)
    return Mt, Mb, ok
