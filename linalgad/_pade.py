"""The matrix exponential by scaling and squaring, keeping what its Fréchet derivative reuses.

A kernel (plain arrays in and out, any array namespace: NumPy or CuPy), used
by both kernel tables through ``ComposedKernels.expm_staged``.  The algorithm
is Al-Mohy & Higham's (SIAM J. Matrix Anal. Appl. 31, 2009, Alg. 5.1, the
method of scipy.linalg.expm) with the exact 1-norms of A², A⁴, A⁶ and their
product bounds in place of norm estimates (‖A⁸‖ ≤ ‖A⁴‖², ‖A¹⁰‖ ≤ ‖A⁴‖‖A⁶‖;
bounds can only add squarings, never lose accuracy) and without the extra
ℓ-correction; its Fréchet derivative is the same authors' Algorithm 6.4
(Computing the Fréchet derivative of the matrix exponential, ibid. 30, 2009),
which differentiates every step of the forward pass:

    r_m(X) = (V − U)⁻¹ (V + U),  U = X·Σ b_{2j+1} X^{2j},  V = Σ b_{2j} X^{2j}
    d r_m   = (V − U)⁻¹ (dU + dV + (dU − dV) r_m)
    e^A     = r_m(2⁻ˢ A)^(2ˢ),  each squaring R ← R²,  dR ← R dR + dR R

The forward pass keeps the scaled powers, the LU factors of V − U and the
matrix before every squaring, so L(A, E) costs matrix products and one solve
with stored factors: no second Padé evaluation, no refactorization.

Stacks are vectorised: one Padé degree for the whole stack (the largest any
matrix needs), a scaling per matrix, and squarings applied only to the
matrices that still need them.  Single precision uses single-precision
thresholds (degrees 3, 5, 7; Higham 2005, Table 2.1).
"""

from __future__ import annotations

import numpy as np

# Padé coefficients b_0 … b_m of r_m(x) ≈ e^x (numerator; the denominator is r_m(−x)'s).
_B = {
    3: (120., 60., 12., 1.),
    5: (30240., 15120., 3360., 420., 30., 1.),
    7: (17297280., 8648640., 1995840., 277200., 25200., 1512., 56., 1.),
    9: (17643225600., 8821612800., 2075673600., 302702400., 30270240., 2162160., 110880.,
        3960., 90., 1.),
    13: (64764752532480000., 32382376266240000., 7771770303897600., 1187353796428800.,
         129060195264000., 10559470521600., 670442572800., 33522128640., 1323241920.,
         40840800., 960960., 16380., 182., 1.),
}
# θ_m: the largest α for which degree m (without scaling) has backward error ≤ unit roundoff.
_THETA = {
    8: ((3, 1.495585217958292e-2), (5, 2.539398330063230e-1), (7, 9.504178996162932e-1),
        (9, 2.097847961257068e0), (13, 5.371920351148152e0)),
    4: ((3, 4.258730016922831e-1), (5, 1.880152677804762e0), (7, 3.925724783138660e0)),
}


class ExpmFactors:
    """What the forward pass of e^A keeps (plain arrays, never differentiated)."""

    __slots__ = ("K", "m", "s", "scale", "pows", "W", "W1", "Z1", "lu", "R", "before")

    def __init__(self, **kw):
        for k, v in kw.items():
            setattr(self, k, v)


def _norm1(xp, X):
    return xp.abs(X).sum(axis=-2).max(axis=-1)


def _choose(xp, A4, A6, real_size):
    """Degree m (one for the stack) and scaling s (per matrix), Al-Mohy & Higham Alg. 5.1."""
    thetas = _THETA[8 if real_size >= 8 else 4]
    n4, n6 = _norm1(xp, A4), _norm1(xp, A6)
    d4, d6 = n4 ** 0.25, n6 ** (1 / 6)
    d8, d10 = d4, (n4 * n6) ** 0.1              # upper bounds of ‖A⁸‖^(1/8), ‖A¹⁰‖^(1/10)
    eta = {3: xp.maximum(d4, d6), 5: xp.maximum(d4, d6), 7: xp.maximum(d6, d8),
           9: xp.maximum(d6, d8)}
    for m, theta in thetas[:-1]:
        if float(eta[m].max()) <= theta:
            return m, xp.zeros(eta[m].shape, dtype=np.int64)
    m, theta = thetas[-1]
    if m == 13:
        alpha = xp.minimum(xp.maximum(d6, d8), xp.maximum(d8, d10))
    else:                                       # single precision: degree 7 with scaling
        alpha = xp.maximum(d6, d8)
    alpha = xp.maximum(alpha, np.finfo(np.float64).tiny)
    s = xp.ceil(xp.log2(alpha / theta))
    return m, xp.maximum(s, 0).astype(np.int64)


class _Plain:
    """The kernel's arithmetic: the device's own array functions (no differentiation)."""

    def __init__(self, K):
        self.K, self.xp = K, K.xp

    def mm(self, a, b):
        return self.xp.matmul(a, b)

    def scale(self, X, c):
        return X * c[..., None, None]

    def where(self, mask, a, b):
        return self.xp.where(mask[..., None, None], a, b)

    def eye(self, A):
        return self.xp.eye(A.shape[-1], dtype=A.dtype)

    def solve(self, lu, Q, b):
        return self.K.lu_solve(lu, b)

    def comb(self, terms, ident=0.0):
        """Σ cᵢ Xᵢ (+ ident·I)."""
        out = None
        for c, X in terms:
            term = X if c == 1.0 else X * c
            out = term if out is None else out + term
        return out + ident * self.eye(out) if ident else out


class _Traced(_Plain):
    """The same steps with linalgad's differentiable ops: A and E may be traced (``scale``,
    a product with a plain array, is the same code)."""

    def __init__(self, K):
        from . import ops
        from .rules.solve import _solve
        super().__init__(K)
        self.ops, self._solve = ops, _solve

    def mm(self, a, b):
        return self.ops.matmul(a, b)

    def where(self, mask, a, b):
        return self.ops.where(mask[..., None, None], a, b)

    def eye(self, A):
        v = self.ops.asarray_value(A)
        return self.K.xp.eye(v.shape[-1], dtype=v.dtype)

    def solve(self, lu, Q, b):          # differentiable in Q and b; the factors are Q's
        return self._solve(Q, b, kind="gen", factors=lu)

    def comb(self, terms, ident=0.0):
        """Σ cᵢ Xᵢ (+ ident·I) as one recorded primitive."""
        coefs = [c for c, _ in terms]
        arrays = [X for _, X in terms]
        if ident:
            coefs.append(ident)
            arrays.append(self.eye(arrays[0]))
        return self.ops.lincomb(coefs, *arrays)


def _mask(s, k):
    """Which matrices of the stack are still being squared at step k (None: all)."""
    return None if bool((s > k).all()) else (s > k)


def _powers(ar, A):
    A2 = ar.mm(A, A)
    A4 = ar.mm(A2, A2)
    return A2, A4, ar.mm(A4, A2)


def _pade_parts(ar, A, A2, A4, A6, m):
    """The degree-m Padé pieces of the (scaled) A: powers, W, W₁, Z₁, V and U = A W."""
    b = _B[m]
    W1 = Z1 = None
    if m == 13:
        W1 = ar.comb(((b[13], A6), (b[11], A4), (b[9], A2)))
        Z1 = ar.comb(((b[12], A6), (b[10], A4), (b[8], A2)))
        W = ar.comb(((1.0, ar.mm(A6, W1)), (b[7], A6), (b[5], A4), (b[3], A2)), ident=b[1])
        V = ar.comb(((1.0, ar.mm(A6, Z1)), (b[6], A6), (b[4], A4), (b[2], A2)), ident=b[0])
        pows = (A2, A4, A6)
    else:
        pows = (A2, A4, A6, ar.mm(A4, A4))[: (m - 1) // 2]
        W = ar.comb([(b[2 * j + 1], P) for j, P in enumerate(pows, start=1)], ident=b[1])
        V = ar.comb([(b[2 * j], P) for j, P in enumerate(pows, start=1)], ident=b[0])
    return pows, W, W1, Z1, V, ar.mm(A, W)


def _squarings(ar, R, s):
    """R^(2^s) per matrix; returns it and the list of matrices before each squaring."""
    before = []
    for k in range(int(s.max()) if s.size else 0):
        before.append(R)
        R2 = ar.mm(R, R)
        mask = _mask(s, k)
        R = R2 if mask is None else ar.where(mask, R2, R)
    return R, before


def _frechet_steps(ar, m, A, E, pows, W, W1, Z1, lu, Q, R0, before, s):
    """L(A, E) by differentiating each forward step (A, E already scaled by 2^-s)."""
    mm = ar.mm
    b = _B[m]
    if m == 13:
        A2, A4, A6 = pows
        M2 = mm(A, E) + mm(E, A)
        M4 = mm(A2, M2) + mm(M2, A2)
        M6 = mm(A4, M2) + mm(M4, A2)
        Lw = ar.comb(((1.0, mm(A6, ar.comb(((b[13], M6), (b[11], M4), (b[9], M2))))),
                      (1.0, mm(M6, W1)), (b[7], M6), (b[5], M4), (b[3], M2)))
        Lv = ar.comb(((1.0, mm(A6, ar.comb(((b[12], M6), (b[10], M4), (b[8], M2))))),
                      (1.0, mm(M6, Z1)), (b[6], M6), (b[4], M4), (b[2], M2)))
    else:
        M = mm(A, E) + mm(E, A)                     # d(A²)
        Ms = [M]
        for P in pows[:-1]:                         # d(A^{2j+2}) = d(A²)A^{2j} + A² d(A^{2j})
            Ms.append(mm(Ms[0], P) + mm(pows[0], Ms[-1]))
        Lw = ar.comb([(b[2 * j + 1], Mj) for j, Mj in enumerate(Ms, start=1)])
        Lv = ar.comb([(b[2 * j], Mj) for j, Mj in enumerate(Ms, start=1)])
    Lu = mm(A, Lw) + mm(E, W)
    L = ar.solve(lu, Q, Lu + Lv + mm(Lu - Lv, R0))
    for k, R in enumerate(before):
        L2 = mm(R, L) + mm(L, R)
        mask = _mask(s, k)
        L = L2 if mask is None else ar.where(mask, L2, L)
    return L


def expm_staged(K, A, op="expm"):
    """(e^A, ExpmFactors) for a stack (..., n, n) of matrices, in A's dtype."""
    xp = K.xp
    ar = _Plain(K)
    real = A.real.dtype if A.dtype.kind == "c" else A.dtype
    real_size = np.dtype(real).itemsize
    s0 = None
    norm = _norm1(xp, A)
    big = _THETA[8 if real_size >= 8 else 4][-1][1] * 2.0 ** 16
    if float(norm.max()) > big:                 # pre-scale so that the powers cannot overflow
        s0 = xp.maximum(xp.ceil(xp.log2(norm / big)), 0).astype(np.int64)
        A = ar.scale(A, (2.0 ** -s0).astype(real))
    A2, A4, A6 = _powers(ar, A)
    m, s = _choose(xp, A4, A6, real_size)
    if s.size and int(s.max()):
        sc = (2.0 ** -s).astype(real)
        sc2 = sc * sc
        A = ar.scale(A, sc)
        A2 = ar.scale(A2, sc2)
        A4 = ar.scale(ar.scale(A4, sc2), sc2)
        A6 = ar.scale(ar.scale(ar.scale(A6, sc2), sc2), sc2)
    if s0 is not None:
        s = s + s0
    scale = (2.0 ** -s).astype(real) if (s.size and int(s.max())) else None
    pows, W, W1, Z1, V, U = _pade_parts(ar, A, A2, A4, A6, m)
    lu = K.lu_factor(V - U, op=op)
    R0 = K.lu_solve(lu, U + V)
    R, before = _squarings(ar, R0, s)
    return R, ExpmFactors(K=K, m=m, s=s, scale=scale, pows=pows, W=W, W1=W1, Z1=Z1, lu=lu,
                          R=R0, before=before)


def expm_frechet_staged(F, A, E):
    """L(A, E) from the factors F of e^A (A: the same matrices the factors were made from).

    E: a stack like A (its dtype may be wider: complex E with real A); returns
    the Fréchet derivative in the common dtype.  Products and one solve.
    """
    ar = _Plain(F.K)
    if F.scale is not None:
        A, E = ar.scale(A, F.scale), ar.scale(E, F.scale)
    return _frechet_steps(ar, F.m, A, E, F.pows, F.W, F.W1, F.Z1, F.lu, None, F.R, F.before,
                          F.s)


def frechet_traced(F, A, E):
    """L(A, E) recomputed with linalgad's differentiable ops (A, E possibly traced).

    Every step of the forward pass and of its Fréchet derivative, with F's Padé
    degree and scalings (piecewise constant in A) and F's LU factors of V − U
    (for the solves' values; the solves are differentiated in V − U): reverse
    or forward mode through this is the derivative of the algorithm, i.e. the
    second Fréchet derivative of the approximant the forward pass used.
    """
    ar = _Traced(F.K)
    if F.scale is not None:
        A, E = ar.scale(A, F.scale), ar.scale(E, F.scale)
    pows, W, W1, Z1, V, U = _pade_parts(ar, A, *_powers(ar, A), F.m)
    Q = V - U
    R0 = ar.solve(F.lu, Q, U + V)
    _, before = _squarings(ar, R0, F.s)
    return _frechet_steps(ar, F.m, A, E, pows, W, W1, Z1, F.lu, Q, R0, before, F.s)


__all__ = ["ExpmFactors", "expm_staged", "expm_frechet_staged", "frechet_traced"]
