"""The matrix exponential by scaling and squaring, keeping what its Fréchet derivative reuses.

A kernel (plain arrays in and out, any array namespace: NumPy or CuPy), used
by both kernel tables through ``ComposedKernels.expm_staged``.  The algorithm
is Al-Mohy & Higham's (SIAM J. Matrix Anal. Appl. 31, 2009, Alg. 5.1, the
method of scipy.linalg.expm) with the exact 1-norms of A², A⁴, A⁶ (and A⁸ where
the bound ‖A⁸‖ ≤ ‖A⁴‖² would add squarings) in place of norm estimates, without the
extra ℓ-correction, and with enough squarings for the Fréchet derivative as well
(``_frechet_squarings``, matfuncs.md §5); its Fréchet derivative is the same
authors' Algorithm 6.4
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

import math

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

    __slots__ = ("K", "m", "s", "scale", "pows", "W", "W1", "Z1", "lu", "R", "before",
                 "frechet")

    def __init__(self, **kw):
        self.frechet = None     # the intermediates of L(A, E) for the one E it was made with
        for k, v in kw.items():
            setattr(self, k, v)


def _norm1(xp, X):
    if X.ndim == 2:
        return xp.abs(X).sum(axis=0).max()
    return xp.einsum("...ij->...j", xp.abs(X)).max(axis=-1)     # a stack: 2x the sum's speed


# 1/|c_m|, c_m the leading coefficient of e^x − r_m(x) = c_m x^(2m+1) + …:
# |c_m| = (m!)² / ((2m)! (2m+1)!)
_C_RECIP = {3: 100800., 5: 10059033600., 7: 4487938430976000., 9: 5914384781877411840000.,
            13: 113250775606021113483283660800000000.}


def _log2(x):
    return math.log2(x) if x > 0 else -math.inf


def _power_bounds(xp, norms, top):
    """log2 of bounds p(a) ≥ ‖Aᵃ‖₁, a = 0 … top, from exact norms {k: ‖Aᵏ‖₁} (of A, A²,
    A⁴, A⁶, and A⁸ where it was computed) by submultiplicativity: the best product of
    those norms whose powers sum to a."""
    one = getattr(norms[1], "ndim", 0) == 0 and xp is np
    with np.errstate(divide="ignore"):
        logs = [(k, _log2(float(v)) if one else xp.log2(v)) for k, v in sorted(norms.items())]
    least = min if one else xp.minimum       # one matrix: Python floats, 1 µs, not 50
    p = [0.0 if one else xp.zeros_like(logs[0][1])]
    for a in range(1, top + 1):
        best = None
        for part, lg in logs:
            if part <= a:
                c = p[a - part] + lg
                best = c if best is None else least(best, c)
        p.append(best)
    return p


def _frechet_squarings(xp, norms, m, u):
    """The squarings degree m needs for its Fréchet derivative (per matrix, may be ≤ 0).

    Differentiating r_m(A) gives L_exp(A, E) up to Σ_{a+b=2m} c_m Aᵃ E Aᵇ + …: the terms
    of the Padé error's derivative.  The forward criterion bounds the powers Aᵏ; for a
    non-normal A (a nilpotent part) those can vanish while Aᵃ and Aᵇ do not — r_3 of a
    nilpotent A of order 4 is e^A exactly, its derivative 4% off — so the split products
    are bounded too, ‖Aᵃ‖‖Aᵇ‖ ≤ p(a) p(b), and each squaring divides them by 2^(2m).
    Allowed: 2²⁰u relative to ‖E‖ in double precision (2¹⁰u in single).  The bound is
    worst-case in E and through ‖A‖₁, which for a dense normal matrix is ~√n times its
    spectral radius: random and well-conditioned matrices reach 2⁸u with the forward
    pass's own choice (a threshold of 2⁷u took degree 9 for 7 at n = 64, 40% more time),
    the strictly triangular failures 2⁵⁶u and more, where it overestimates the actual
    error about 10⁵ times."""
    allowed = u * 2.0 ** (20 if u < 2.0 ** -30 else 10)
    scale = np.log2((2 * m + 1) / _C_RECIP[m]) - np.log2(allowed)
    # first with A and A² alone, p(a) ≤ ‖A‖^(a mod 2) ‖A²‖^⌊a/2⌋: the worst split is
    # max(‖A²‖ᵐ, ‖A‖²‖A²‖ᵐ⁻¹); where that passes (every matrix at the benchmarks' norms)
    # the product table is not needed (15 µs for one matrix)
    one = getattr(norms[1], "ndim", 0) == 0 and xp is np
    if one:
        l1, l2 = (_log2(float(norms[k])) for k in (1, 2))
        quick = (m - 1) * l2 + max(l2, 2 * l1) + scale
        if quick <= 0:
            return quick / (2 * m)
    else:
        with np.errstate(divide="ignore"):
            l1, l2 = xp.log2(norms[1]), xp.log2(norms[2])
        quick = (m - 1) * l2 + xp.maximum(l2, 2 * l1) + scale
        if float(xp.max(quick)) <= 0:
            return quick / (2 * m)
    p = _power_bounds(xp, norms, 2 * m)
    if type(p[0]) is float:
        worst = max(p[a] + p[2 * m - a] for a in range(m + 1))
    else:
        worst = p[m] + p[m]
        for a in range(m):
            worst = xp.maximum(worst, p[a] + p[2 * m - a])
    excess = (worst + scale) / (2 * m)
    if type(excess) is float:
        return math.ceil(excess) if math.isfinite(excess) else excess
    return xp.ceil(excess)


def _at_most_zero(xp, x):
    return x <= 0 if type(x) is float or type(x) is int else float(xp.max(x)) <= 0


def _choose(xp, A, A2, A4, A6, real_size, n1=None):
    """Degree m (one for the stack) and scaling s (per matrix): Al-Mohy & Higham's
    Alg. 5.1 with exact norms of A², A⁴, A⁶ (and of A⁸ where its bound would add
    squarings), and enough squarings for the Fréchet derivative that the backward pass
    differentiates from these factors (:func:`_frechet_squarings`)."""
    single = real_size < 8
    thetas = _THETA[4 if single else 8]
    u = 2.0 ** (-24 if single else -53)
    n1 = _norm1(xp, A) if n1 is None else n1
    n4, n6 = _norm1(xp, A4), _norm1(xp, A6)
    norms = {1: n1, 4: n4, 6: n6}

    def with_a2():                          # ‖A²‖ only where something reads it
        if 2 not in norms:
            norms[2] = _norm1(xp, A2)
        return norms

    def frechet(m):
        return _frechet_squarings(xp, with_a2(), m, u)

    d4, d6 = n4 ** 0.25, n6 ** (1 / 6)
    d8, d10 = d4, (n4 * n6) ** 0.1              # upper bounds of ‖A⁸‖^(1/8), ‖A¹⁰‖^(1/10)
    eta = {3: xp.maximum(d4, d6), 5: xp.maximum(d4, d6), 7: xp.maximum(d6, d8),
           9: xp.maximum(d6, d8)}
    for m, theta in thetas[:-1]:
        if float(eta[m].max()) <= theta and _at_most_zero(xp, frechet(m)):
            return m, xp.zeros(n1.shape, dtype=np.int64)
    m, theta = thetas[-1]

    def scaling(d8, d10):
        if m == 13:
            alpha = xp.minimum(xp.maximum(d6, d8), xp.maximum(d8, d10))
        else:                                   # single precision: degree 7 with scaling
            alpha = xp.maximum(d6, d8)
        alpha = xp.maximum(alpha, np.finfo(np.float64).tiny)
        return xp.maximum(xp.ceil(xp.log2(alpha / theta)), 0)

    s = scaling(d8, d10)
    if float(s.max()) > 0:
        # ‖A⁸‖ ≤ ‖A⁴‖² can be far above ‖A⁸‖ (a nilpotent part: A⁸ = 0 at order 8), and
        # squarings the bound asks for in vain lose accuracy (10 of them took e^A of a
        # strictly triangular matrix of order 8 from 1e-15 to 1e+1): the exact norm, one
        # product, where the bound would scale
        n8 = norms[8] = _norm1(xp, xp.matmul(A4, A4))
        s = scaling(n8 ** 0.125, xp.minimum(d10, (n8 * with_a2()[2]) ** 0.1))
    s = xp.maximum(s, frechet(m))
    return m, s.astype(np.int64)


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


def _frechet_steps(ar, m, A, E, pows, W, W1, Z1, lu, Q, R0, before, s, keep=None):
    """L(A, E) by differentiating each forward step (A, E already scaled by 2^-s).

    ``keep``: a dict that receives the intermediates :func:`frechet_adjoint` reads."""
    mm = ar.mm
    b = _B[m]
    if m == 13:
        A2, A4, A6 = pows
        M2 = mm(A, E) + mm(E, A)
        M4 = mm(A2, M2) + mm(M2, A2)
        M6 = mm(A4, M2) + mm(M4, A2)
        Y1 = ar.comb(((b[13], M6), (b[11], M4), (b[9], M2)))
        Y2 = ar.comb(((b[12], M6), (b[10], M4), (b[8], M2)))
        Lw = ar.comb(((1.0, mm(A6, Y1)), (1.0, mm(M6, W1)), (b[7], M6), (b[5], M4),
                      (b[3], M2)))
        Lv = ar.comb(((1.0, mm(A6, Y2)), (1.0, mm(M6, Z1)), (b[6], M6), (b[4], M4),
                      (b[2], M2)))
        Ms = (M2, M4, M6, Y1, Y2)
    else:
        M = mm(A, E) + mm(E, A)                     # d(A²)
        Ms = [M]
        for P in pows[:-1]:                         # d(A^{2j+2}) = d(A²)A^{2j} + A² d(A^{2j})
            Ms.append(mm(Ms[0], P) + mm(pows[0], Ms[-1]))
        Lw = ar.comb([(b[2 * j + 1], Mj) for j, Mj in enumerate(Ms, start=1)])
        Lv = ar.comb([(b[2 * j], Mj) for j, Mj in enumerate(Ms, start=1)])
    Lu = mm(A, Lw) + mm(E, W)
    L = ar.solve(lu, Q, Lu + Lv + mm(Lu - Lv, R0))
    Ls = []
    for k, R in enumerate(before):
        Ls.append(L)
        L2 = mm(R, L) + mm(L, R)
        mask = _mask(s, k)
        L = L2 if mask is None else ar.where(mask, L2, L)
    if keep is not None:
        keep.update(Ms=Ms, Lw=Lw, Lv=Lv, Lu=Lu, L0=Ls[0] if Ls else L, Ls=Ls)
    return L


def frechet_adjoint(F, A, E, G):
    """(Ā, Ē): the gradients of Re⟨G, L(A, E)⟩ with respect to A and E, where L is the
    algorithm's Fréchet derivative (what :func:`frechet_traced` computes): the reverse
    sweep of its steps written out, on plain arrays (matfuncs.md, section 5).

    It reads the Fréchet steps' intermediates (kept by the forward pass in ``F.frechet``,
    or recomputed once), then runs each step backwards: for a product P = X Y,
    X̄ += P̄ Yᴴ and Ȳ += Xᴴ P̄; for the solve X = Q⁻¹ T, T̄ = Q⁻ᴴ X̄ and Q̄ −= T̄ Xᴴ (one solve with the stored factors); the
    squarings and the Padé powers likewise.  About 40 products and two solves for degree
    13, where reverse mode through :func:`frechet_traced` costs the same products plus
    its recorded forward pass and the tape.
    """
    from .backend import _mH
    ar = _Plain(F.K)
    xp, mm, K = ar.xp, ar.mm, F.K

    def H(X):
        return _mH(xp, X)

    def add(X, Y):
        return Y if X is None else (X if Y is None else X + Y)

    if F.scale is not None:
        A, E = ar.scale(A, F.scale), ar.scale(E, F.scale)
    dtype = np.result_type(A.dtype, E.dtype, G.dtype)
    A, E, G = (x.astype(dtype, copy=False) for x in (A, E, G))
    m, b, pows, W, W1, Z1, s = F.m, _B[F.m], F.pows, F.W, F.W1, F.Z1, F.s
    kept = F.frechet
    if kept is None:            # not kept by the forward pass: the steps again
        kept = {}
        _frechet_steps(ar, m, A, E, pows, W, W1, Z1, F.lu, None, F.R, F.before, s,
                       keep=kept)

    # the squarings, last first: L_{k+1} = R_k L_k + L_k R_k and R_{k+1} = R_k²
    Lbar, Rbar = G, None
    for k in range(len(F.before) - 1, -1, -1):
        R, L = F.before[k], kept["Ls"][k]
        RH, LH = H(R), H(L)
        Lk = mm(RH, Lbar) + mm(Lbar, RH)
        Rk = mm(Lbar, LH) + mm(LH, Lbar)
        if Rbar is not None:
            Rk += mm(RH, Rbar) + mm(Rbar, RH)
        mask = _mask(s, k)
        if mask is not None:            # matrices no longer squared pass their adjoints on
            Lk = ar.where(mask, Lk, Lbar)
            Rk = ar.where(mask, Rk, Rbar if Rbar is not None else xp.zeros_like(Rk))
        Lbar, Rbar = Lk, Rk

    # L₀ = Q⁻¹ T, T = Lu + Lv + (Lu − Lv) R₀;  R₀ = Q⁻¹ (U + V);  Q = V − U
    R0 = F.R
    Tbar = K.lu_solve(F.lu, Lbar, trans=2)
    Qbar = -mm(Tbar, H(kept["L0"]))
    R0bar = add(mm(H(kept["Lu"] - kept["Lv"]), Tbar), Rbar)
    TR = mm(Tbar, H(R0))
    Lubar, Lvbar = Tbar + TR, Tbar - TR
    Sbar = K.lu_solve(F.lu, R0bar, trans=2)
    Qbar -= mm(Sbar, H(R0))
    Ubar, Vbar = Sbar - Qbar, Sbar + Qbar

    # Lu = A Lw + E W;  U = A W
    AH, EH = H(A), H(E)
    Lwbar = mm(AH, Lubar)
    Abar = mm(Lubar, H(kept["Lw"])) + mm(Ubar, H(W))
    Ebar = mm(Lubar, H(W))
    Wbar = mm(EH, Lubar) + mm(AH, Ubar)
    if m == 13:
        A2, A4, A6 = pows
        M2, M4, M6, Y1, Y2 = kept["Ms"]
        A6H = H(A6)
        # Lw = A6 Y1 + M6 W1 + b7 M6 + b5 M4 + b3 M2  (Lv: Y2, Z1, b6, b4, b2);
        # Y1 = b13 M6 + b11 M4 + b9 M2  (Y2: b12, b10, b8)
        Y1bar, Y2bar = mm(A6H, Lwbar), mm(A6H, Lvbar)
        M6H = H(M6)
        W1bar = mm(M6H, Lwbar) + mm(A6H, Wbar)
        Z1bar = mm(M6H, Lvbar) + mm(A6H, Vbar)
        M6bar = ar.comb(((1.0, mm(Lwbar, H(W1))), (1.0, mm(Lvbar, H(Z1))), (b[7], Lwbar),
                         (b[6], Lvbar), (b[13], Y1bar), (b[12], Y2bar)))
        M4bar = ar.comb(((b[5], Lwbar), (b[4], Lvbar), (b[11], Y1bar), (b[10], Y2bar)))
        M2bar = ar.comb(((b[3], Lwbar), (b[2], Lvbar), (b[9], Y1bar), (b[8], Y2bar)))
        # W = A6 W1 + b7 A6 + b5 A4 + b3 A2 + b1 I  (V: Z1, b6, b4, b2, b0);
        # W1 = b13 A6 + b11 A4 + b9 A2  (Z1: b12, b10, b8)
        A6bar = ar.comb(((1.0, mm(Lwbar, H(Y1))), (1.0, mm(Lvbar, H(Y2))),
                         (1.0, mm(Wbar, H(W1))), (1.0, mm(Vbar, H(Z1))), (b[7], Wbar),
                         (b[6], Vbar), (b[13], W1bar), (b[12], Z1bar)))
        A4bar = ar.comb(((b[5], Wbar), (b[4], Vbar), (b[11], W1bar), (b[10], Z1bar)))
        A2bar = ar.comb(((b[3], Wbar), (b[2], Vbar), (b[9], W1bar), (b[8], Z1bar)))
        # M6 = A4 M2 + M4 A2;  M4 = A2 M2 + M2 A2
        A2H, M2H = H(A2), H(M2)
        A4bar += mm(M6bar, M2H)
        A2bar += mm(H(M4), M6bar)
        M2bar += mm(H(A4), M6bar)
        M4bar += mm(M6bar, A2H)
        A2bar += mm(M4bar, M2H) + mm(M2H, M4bar)
        M2bar += mm(A2H, M4bar) + mm(M4bar, A2H)
    else:
        Ms = kept["Ms"]
        p = len(pows)
        # Lw = Σ_j b_{2j+1} M_j,  Lv = Σ_j b_{2j} M_j;  W, V the same sums of the powers
        Msbar = [ar.comb(((b[2 * j + 1], Lwbar), (b[2 * j], Lvbar))) for j in range(1, p + 1)]
        Pbar = [ar.comb(((b[2 * j + 1], Wbar), (b[2 * j], Vbar))) for j in range(1, p + 1)]
        A2H = H(pows[0])
        for j in range(p - 1, 0, -1):       # M_j = M_0 P_{j−1} + A2 M_{j−1}
            g = Msbar[j]
            Msbar[0] = Msbar[0] + mm(g, H(pows[j - 1]))
            Pbar[j - 1] = Pbar[j - 1] + mm(H(Ms[0]), g)
            Pbar[0] = Pbar[0] + mm(g, H(Ms[j - 1]))
            Msbar[j - 1] = Msbar[j - 1] + mm(A2H, g)
        M2bar = Msbar[0]
        A2bar, A4bar, A6bar = Pbar[0], (Pbar[1] if p > 1 else None), \
            (Pbar[2] if p > 2 else None)
        if p > 3:                           # A8 = A4 A4 (degree 9)
            A4H = H(pows[1])
            A4bar = A4bar + mm(Pbar[3], A4H) + mm(A4H, Pbar[3])
    # the powers: A6 = A4 A2, A4 = A2 A2, A2 = A A (the traced pass recomputes them all)
    A2, A4 = pows[0], (pows[1] if len(pows) > 1 else None)
    A2H = H(A2)
    if A6bar is not None:
        A4bar = add(A4bar, mm(A6bar, A2H))
        A2bar = A2bar + mm(H(A4), A6bar)
    if A4bar is not None:
        A2bar = A2bar + mm(A4bar, A2H) + mm(A2H, A4bar)
    Abar = Abar + mm(A2bar, AH) + mm(AH, A2bar)
    # M2 = A E + E A
    Abar = Abar + mm(M2bar, EH) + mm(EH, M2bar)
    Ebar = Ebar + mm(AH, M2bar) + mm(M2bar, AH)
    if F.scale is not None:
        Abar, Ebar = ar.scale(Abar, F.scale), ar.scale(Ebar, F.scale)
    return Abar, Ebar


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
    m, s = _choose(xp, A, A2, A4, A6, real_size, None if s0 is not None else norm)
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


def expm_frechet_staged(F, A, E, keep=False):
    """L(A, E) from the factors F of e^A (A: the same matrices the factors were made from).

    E: a stack like A (its dtype may be wider: complex E with real A); returns
    the Fréchet derivative in the common dtype.  Products and one solve.  ``keep``:
    store the steps' intermediates in ``F.frechet`` for :func:`frechet_adjoint` (F then
    belongs to this E: the caller made F for this one call).
    """
    ar = _Plain(F.K)
    if F.scale is not None:
        A, E = ar.scale(A, F.scale), ar.scale(E, F.scale)
    kept = {} if keep else None
    L = _frechet_steps(ar, F.m, A, E, F.pows, F.W, F.W1, F.Z1, F.lu, None, F.R, F.before,
                       F.s, keep=kept)
    if keep:
        F.frechet = kept
    return L


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


__all__ = ["ExpmFactors", "expm_staged", "expm_frechet_staged", "frechet_traced",
           "frechet_adjoint"]
