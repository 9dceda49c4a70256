"""The principal logarithm of every upper triangular matrix of a stack, vectorised.

The method is SciPy's ``logm`` (inverse scaling and squaring with Padé approximants,
Al-Mohy & Higham 2012, Algorithm 4.1, as ``scipy.linalg._matfuncs_inv_ssq._logm_triu``
implements it), with every step one NumPy operation over the stack instead of a Python
call per matrix:

1. square roots of the diagonal until every |tᵢᵢ^(1/2^s₀) − 1| ≤ θ₇, then s₀ square
   roots of T (Björck–Hammarling's recurrence, one superdiagonal at a time for the whole
   stack);
2. the Padé degree m and further square roots from αₚ = max(dₚ, dₚ₊₁) with
   dₚ = ‖(T − I)ᵖ‖₁^(1/p) — computed exactly, by products in single precision (SciPy
   estimates them with ``onenormest``, an underestimate that costs a Python loop per
   matrix and most of SciPy's time for small matrices; the exact norm can only ask for as
   many or more square roots and a higher degree, never fewer);
3. R = T^(1/2^s) − I with its diagonal and first superdiagonal recomputed by formulas
   without cancellation (Al-Mohy 2012; Higham & Lin 2011, eq. 5.5);
4. U = 2^s Σⱼ wⱼ (I + xⱼ R)⁻¹ R (Gauss–Legendre nodes on [0, 1]: the partial fraction
   form of the [m/m] Padé approximant of log(1 + x)), triangular solves, the matrices
   grouped by degree;
5. U's diagonal log tᵢᵢ and first superdiagonal (Higham 2008, eq. 11.28 with the
   unwinding number) recomputed exactly.

Single precision is computed in double (as SciPy does) and returned in double; the
caller rounds.  The input must be upper triangular with no zero on the diagonal (the
caller checks singularity), real only when its diagonal is positive.  Also here:
:func:`frechet_triangular`, the Fréchet derivative of the same computation (logm's
gradient on a stack), and :func:`complex_schur`, the complex Schur form of a stack of
real ones (what SciPy's ``rsf2csf`` does one matrix and one block at a time), which logm
needs for real matrices with complex eigenvalues.  Speed against SciPy's loop:
``backend.LOGM_STACK``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["logm_triangular"]

# Al-Mohy & Higham (2012), Table 2.1: the [m/m] Padé approximant of log(1 + x) is
# accurate to double precision for ‖X‖ ≤ θₘ
_THETA = (None, 1.59e-5, 2.31e-3, 1.94e-2, 6.21e-2, 1.28e-1, 2.06e-1, 2.88e-1, 3.67e-1,
          4.39e-1, 5.03e-1, 5.60e-1, 6.09e-1, 6.52e-1, 6.89e-1, 7.21e-1, 7.49e-1)


def logm_triangular(T, solve=None):
    """log T for a stack T (B, n, n) of upper triangular matrices (float64 or complex128
    after promotion).  ``solve(M, C, right)`` (M⁻¹ C, or C M⁻¹ when ``right``, for upper
    triangular stacks) may be passed in, as to :func:`frechet_triangular`; NumPy's solve
    serves otherwise."""
    T = np.asarray(T)
    T0 = np.array(T, dtype=_working_dtype(T))            # a copy: T itself is not changed
    B, n = T0.shape[0], T0.shape[-1]
    if B == 0 or n == 0:
        return T0
    solve = solve or _solve_upper
    idx = np.arange(n)
    d0 = np.diagonal(T0, 0, -2, -1).copy()
    t0 = T0[:, idx[:-1], idx[1:]]                      # the first superdiagonal (a copy)
    s, Ts = _scale(T0, d0)                             # (T0 is overwritten)
    m, s, Ts = _choose(Ts, s)
    principal = ((d0.real > 0) | (d0.imag != 0)).all(axis=-1)
    R = Ts
    R[:, idx, idx] -= 1
    rows = np.flatnonzero(principal)
    if rows.size:
        # R = T^(1/2^s) − I: its diagonal by Al-Mohy's (2012) product form of a^(1/2^s) − 1
        # and its first superdiagonal by Higham & Lin's (2011) eq. 5.5, without the
        # cancellation of subtracting 1 from entries near 1
        a, k = d0[rows], s[rows][:, None]
        R[rows[:, None], idx, idx] = _power_minus_one(a, k)
        if n > 1:
            R[rows[:, None], idx[:-1], idx[1:]] = _power_superdiagonal(
                a[:, :-1], a[:, 1:], t0[rows], np.exp2(-k.astype(float)))
    U = np.zeros_like(R)
    for degree in np.unique(m):
        group = np.flatnonzero(m == degree)
        U[group] = _pade(R[group], int(degree), solve)
    U *= np.exp2(s.astype(float))[:, None, None]
    if rows.size:
        # the diagonal log tᵢᵢ and the first superdiagonal (Higham 2008, eq. 11.28), exactly
        a = d0[rows]
        U[rows[:, None], idx, idx] = np.log(a)
        if n > 1:
            U[rows[:, None], idx[:-1], idx[1:]] = _log_superdiagonal(a[:, :-1], a[:, 1:],
                                                                     t0[rows])
    return U


def _working_dtype(T, *others):
    """float64 or complex128: complex when T or another array is, or when T (upper
    triangular) has a diagonal entry ≤ 0 (no real logarithm: complex, as SciPy's logm)."""
    work = np.result_type(T.dtype, *(x.dtype for x in others), np.float64)
    if work.kind == "f" and (np.diagonal(T, 0, -2, -1) <= 0).any():
        work = np.dtype(np.complex128)
    return work


def _nodes(m):
    """Gauss–Legendre nodes and weights of degree m on [0, 1]: the partial fractions of
    the [m/m] Padé approximant of log(1 + x) are Σⱼ wⱼ x / (1 + xⱼ x)."""
    x, w = np.polynomial.legendre.leggauss(m)
    return (x + 1) / 2, w / 2


def _solve_upper(M, C, right):
    if right:
        return np.swapaxes(np.linalg.solve(np.swapaxes(M, -1, -2), np.swapaxes(C, -1, -2)),
                           -1, -2)
    return np.linalg.solve(M, C)


def _scale(T, d, on_root=None):
    """(s₀, T^(1/2^s₀)): per matrix the number of square roots of the diagonal that bring
    every entry within θ₇ of 1, and that many square roots of T.  A zero on the diagonal
    (a singular matrix, which the callers reject first) would never get there."""
    s = np.zeros(T.shape[0], dtype=np.int64)
    dd = d.copy()
    far = np.abs(dd - 1).max(axis=-1) > _THETA[7]
    while far.any():
        dd[far] = np.sqrt(dd[far])
        s[far] += 1
        far = np.abs(dd - 1).max(axis=-1) > _THETA[7]
    for k in range(1, int(s.max(initial=0)) + 1):
        rows = np.flatnonzero(s >= k)
        T[rows] = sqrtm_triangular(T[rows])
        if on_root is not None:
            on_root(rows)
    return s, T


def _choose(T, s, on_root=None):
    """(m, s, T): the Padé degree per matrix and the further square roots the a-priori
    bounds ask for (Al-Mohy & Higham 2012, Algorithm 4.1, lines 8-34); the powers of
    T − I are reused until a square root changes T.  ``on_root`` as for :func:`_scale`."""
    B, n = T.shape[0], T.shape[-1]
    eye = np.eye(n)
    low = np.complex64 if T.dtype.kind == "c" else np.float32

    def minus_eye(M):
        # the powers only feed norms: single precision, unless a fifth power could overflow
        X = M - eye
        return X.astype(low) if np.abs(X).max(initial=0) < 1e6 else X
    m = np.zeros(B, dtype=np.int64)
    extra = np.zeros(B, dtype=np.int64)               # k: square roots taken for j1 = 7
    X = minus_eye(T)
    P3 = X @ X
    a2 = _root_norm(P3, 2)
    P3 = P3 @ X
    a2 = np.maximum(a2, _root_norm(P3, 3))
    m[a2 <= _THETA[2]] = 2
    m[a2 <= _THETA[1]] = 1
    open_ = np.flatnonzero(m == 0)
    X, P3 = X[open_], P3[open_]
    while open_.size:
        d3 = _root_norm(P3, 3)
        P4 = P3 @ X
        d4 = _root_norm(P4, 4)
        a3 = np.maximum(d3, d4)
        j1 = np.full(open_.size, 8)
        for i in (7, 6, 5, 4, 3):
            j1[a3 <= _THETA[i]] = i
        done = j1 <= 6
        m[open_[done]] = j1[done]
        again = (j1 == 7) & (a3 / 2 <= _THETA[5]) & (extra[open_] < 2)
        extra[open_[again]] += 1
        rest = ~done & ~again
        if rest.any():
            d5 = _root_norm(P4[rest] @ X[rest], 5)
            eta = np.minimum(a3[rest], np.maximum(d4[rest], d5))
            pick = np.where(eta <= _THETA[6], 6, np.where(eta <= _THETA[7], 7, 0))
            m[open_[rest]] = pick
            again[np.flatnonzero(rest)[pick == 0]] = True
        open_ = open_[again]
        if open_.size:
            T[open_] = sqrtm_triangular(T[open_])
            s[open_] += 1
            if on_root is not None:
                on_root(open_)
            X = minus_eye(T[open_])
            P3 = X @ X @ X
    return m, s, T


def _root_norm(P, p):
    """‖P‖₁^(1/p) per matrix (max column sum)."""
    return np.abs(P).sum(axis=-2).max(axis=-1) ** (1.0 / p)


def sqrtm_triangular(T):
    """The principal square root of each upper triangular matrix of a stack (B, n, n):
    rᵢᵢ = √tᵢᵢ, rᵢⱼ = (tᵢⱼ − Σ_{i<k<j} rᵢₖ rₖⱼ) / (rᵢᵢ + rⱼⱼ), one superdiagonal at a
    time for the whole stack: superdiagonal d needs only the ones below it.  The d − 1
    terms of each sum are read through two strided views of R (row i from column i + 1,
    column i + d from row i + 1; both step n + 1 elements from one sum to the next), so a
    root costs about n³/6 multiply-adds a matrix, as the column recurrence does."""
    B, n = T.shape[0], T.shape[-1]
    R = np.zeros((B, n, n), dtype=T.dtype)
    flat = R.reshape(B, n * n)
    tflat = np.ascontiguousarray(T).reshape(B, n * n)
    item = R.itemsize
    r = np.sqrt(tflat[:, ::n + 1])
    flat[:, ::n + 1] = r
    for d in range(1, n):
        t = tflat[:, d::n + 1][:, :n - d]             # superdiagonal d (a strided view)
        if d > 1:
            shape = (B, n - d, d - 1)
            row = np.lib.stride_tricks.as_strided(
                flat[:, 1:], shape, (n * n * item, (n + 1) * item, item), writeable=False)
            col = np.lib.stride_tricks.as_strided(
                flat[:, n + d:], shape, (n * n * item, (n + 1) * item, n * item),
                writeable=False)
            t = t - np.einsum("bik,bik->bi", row, col)
        flat[:, d::n + 1][:, :n - d] = t / (r[:, :n - d] + r[:, d:])
    return R


def _power_minus_one(a, k):
    """a^(1/2^k) − 1 elementwise (a (B, n), k (B, 1) ≥ 0) by Al-Mohy's (2012) Algorithm 2:
    (a − 1) / Πⱼ (1 + a^(1/2^j)), with one square root first for |arg a| ≥ π/2; for k = 1
    the same product, (a − 1) / (1 + √a), where SciPy subtracts (√a − 1 loses the digits
    of a − 1 near 1)."""
    a = np.asarray(a)
    k = np.broadcast_to(k, a.shape)
    out = np.empty_like(a)
    zero, one = k == 0, k == 1
    out[zero] = a[zero] - 1
    out[one] = (a[one] - 1) / (1 + np.sqrt(a[one]))        # (SciPy: √a − 1)
    many = k >= 2
    if many.any():
        x, kk = a[many], k[many].copy()
        turn = np.angle(x) >= np.pi / 2
        x = np.where(turn, np.sqrt(x), x)
        kk = kk - turn
        z0 = x - 1
        x = np.sqrt(x)
        r = 1 + x
        for j in range(1, int(kk.max())):
            live = j < kk
            x = np.where(live, np.sqrt(x), x)
            r = np.where(live, r * (1 + x), r)
        out[many] = z0 / r
    return out


def _unwinding(z):
    """The unwinding number ⌈(Im z − π) / 2π⌉ (Higham & Lin 2011, eq. 5.3)."""
    return np.ceil((np.imag(z) - np.pi) / (2 * np.pi))


def _pair_cases(l1, l2):
    """Masks (equal, far, near) of diagonal pairs for the 2×2 formulas: the divided
    difference directly where |l2 − l1| > |l1 + l2|/2, through arctanh where nearer."""
    same = l1 == l2
    far = ~same & (np.abs(l2 - l1) > np.abs(l1 + l2) / 2)
    return same, far, ~same & ~far


def _power_superdiagonal(l1, l2, t12, p):
    """(T^p)₁₂ of the 2×2 triangular [[l1, t12], [0, l2]], elementwise without cancellation
    (Higham & Lin 2011, eq. 5.5)."""
    out = np.empty(np.broadcast_shapes(l1.shape, t12.shape, p.shape), dtype=t12.dtype)
    p = np.broadcast_to(p, out.shape)
    same, far, near = _pair_cases(l1, l2)
    out[same] = t12[same] * p[same] * l1[same] ** (p[same] - 1)
    out[far] = t12[far] * (l2[far] ** p[far] - l1[far] ** p[far]) / (l2[far] - l1[far])
    if near.any():
        a, b, t, q = l1[near], l2[near], t12[near], p[near]
        la, lb = np.log(a), np.log(b)
        u = _unwinding(lb - la)
        w = q * np.arctanh((b - a) / (b + a))
        if np.iscomplexobj(out):
            w = w + q * np.pi * 1j * u
        out[near] = t * np.exp(q / 2 * (lb + la)) * 2 * np.sinh(w) / (b - a)
    return out


def _log_superdiagonal(l1, l2, t12):
    """(log T)₁₂ of the 2×2 triangular [[l1, t12], [0, l2]] (Higham 2008, eq. 11.28)."""
    out = np.empty(t12.shape, dtype=t12.dtype)
    same, far, near = _pair_cases(l1, l2)
    out[same] = t12[same] / l1[same]
    out[far] = t12[far] * (np.log(l2[far]) - np.log(l1[far])) / (l2[far] - l1[far])
    if near.any():
        a, b, t = l1[near], l2[near], t12[near]
        w = np.arctanh((b - a) / (b + a))
        if np.iscomplexobj(out):
            w = w + np.pi * 1j * _unwinding(np.log(b) - np.log(a))
        out[near] = t * 2 * w / (b - a)
    return out


def _pade(R, m, solve):
    """Σⱼ wⱼ (I + xⱼ R)⁻¹ R for a stack R (B, n, n): the [m/m] Padé approximant of
    log(I + R) in partial fractions (Gauss–Legendre nodes xⱼ and weights wⱼ on [0, 1])."""
    eye = np.eye(R.shape[-1], dtype=R.dtype)
    U = np.zeros_like(R)
    for xj, wj in zip(*_nodes(m)):
        U += solve(eye + xj * R, wj * R, False)
    return U


def complex_schur(T, Z):
    """The complex Schur form (Tc, Zc) of real Schur forms A = Z T Zᵀ of a stack (B, n, n)
    (T quasi-triangular: 2×2 blocks for complex pairs), every matrix at once: from the
    last row up, a unitary rotation G of rows and columns (m − 1, m) of each matrix with a
    block there, chosen so that G (block) Gᴴ is triangular (its first column is along an
    eigenvector of the block: (λ − t_mm, t_m,m−1) with λ = the eigenvalue of positive
    imaginary part); Tc = G T Gᴴ, Zc = Z Gᴴ.  SciPy's rsf2csf does the same per matrix
    and block in Python (order 32: 470 µs a matrix)."""
    cdt = np.result_type(T.dtype, np.complex64)
    Tc, Zc = T.astype(cdt), Z.astype(cdt)
    n = T.shape[-1]
    for m in range(n - 1, 0, -1):
        rows = np.flatnonzero(Tc[:, m, m - 1] != 0)
        if not rows.size:
            continue
        a, b = Tc[rows, m - 1, m - 1], Tc[rows, m - 1, m]
        c, d = Tc[rows, m, m - 1], Tc[rows, m, m]
        half = (a - d) / 2
        root = np.sqrt(half * half + b * c)
        root = np.where(root.imag < 0, -root, root)   # λ = (a + d)/2 + root, Im λ ≥ 0
        mu = half + root                               # λ − d
        r = np.hypot(np.abs(mu), np.abs(c))
        cs, sn = mu / r, c / r
        # G = [[conj(cs), sn], [−sn, cs]] on rows (m−1, m), Gᴴ on columns (m−1, m)
        top, bot = Tc[rows, m - 1, m - 1:], Tc[rows, m, m - 1:]
        Tc[rows, m - 1, m - 1:] = np.conj(cs)[:, None] * top + sn[:, None] * bot
        Tc[rows, m, m - 1:] = -sn[:, None] * top + cs[:, None] * bot
        for M, stop in ((Tc, m + 1), (Zc, n)):
            left, right = M[rows, :stop, m - 1], M[rows, :stop, m]
            M[rows, :stop, m - 1] = cs[:, None] * left + sn[:, None] * right
            M[rows, :stop, m] = -np.conj(sn)[:, None] * left + np.conj(cs)[:, None] * right
        Tc[rows, m, m - 1] = 0
    return Tc, Zc


def frechet_triangular(T, F, sylvester, solve):
    """L_log(T, F), the Fréchet derivative of log at each upper triangular T of a stack in
    the direction F (B, n, n), by differentiating the inverse scaling and squaring that
    :func:`logm_triangular` runs (Al-Mohy, Higham & Relton 2013): with the same number of
    square roots s and Padé degree m,

        Rₖ = Rₖ₋₁^(1/2),   Rₖ Fₖ + Fₖ Rₖ = Fₖ₋₁   (R₀ = T, F₀ = F: the derivative of a root),
        L = 2^s Σⱼ wⱼ (I + xⱼ X)⁻¹ F_s (I + xⱼ X)⁻¹,   X = R_s − I

    (the derivative of (I + xX)⁻¹ X is (I + xX)⁻¹ E (I + xX)⁻¹).  ``sylvester(R, C)``
    solves R Y + Y R = C and ``solve(M, C, right)`` M Y = C or Y M = C for upper triangular
    stacks.  About s triangular Sylvester solves and 2m triangular solves, where the
    logarithm of the block [[T, F], [0, T]] of order 2n costs about 8 logarithms of T."""
    T, F = np.asarray(T), np.asarray(F)
    work = _working_dtype(T, F)
    T0, X = np.array(T, dtype=work), np.array(F, dtype=work)
    B, n = T0.shape[0], T0.shape[-1]
    if B == 0 or n == 0:
        return X
    d0 = np.diagonal(T0, 0, -2, -1).copy()

    def differentiate(rows):              # each new root Rₖ of these rows: Fₖ from Fₖ₋₁
        X[rows] = sylvester(T0[rows], X[rows])
    # logm's own s and m, each root taken once: T0 is overwritten by them as they come
    s, R = _scale(T0, d0, differentiate)
    m, s, R = _choose(R, s, differentiate)
    idx = np.arange(n)
    R[:, idx, idx] -= 1      # (the cancellation here costs the value's diagonal digits, which
    L = np.zeros_like(X)     # logm recomputes; in (I + xR)⁻¹ it is an O(ε) perturbation)
    eye = np.eye(n, dtype=X.dtype)
    for degree in np.unique(m):
        group = np.flatnonzero(m == degree)
        for xj, wj in zip(*_nodes(int(degree))):
            M = eye + xj * R[group]
            L[group] += wj * solve(M, solve(M, X[group], False), True)
    L *= np.exp2(s.astype(float))[:, None, None]
    return L
