"""qz, ordqz: the generalized Schur (QZ) decomposition A = Q S Zᴴ, B = Q T Zᴴ.
Derivation: docs/derivations/qz.md

    ΩQ = Qᴴ dQ, ΩZ = Zᴴ dZ (skew-Hermitian),  CA = Qᴴ dA Z,  CB = Qᴴ dB Z
    dS = CA − ΩQ S + S ΩZ,   dT = CB − ΩQ T + T ΩZ,   dQ = Q ΩQ,   dZ = Z ΩZ
With LQ, LZ the strictly lower parts of ΩQ, ΩZ (Ω = L − Lᴴ off the diagonal) and
    F(LQ, LZ) = (PA(ΩQ S − S ΩZ), PB(ΩQ T − T ΩZ)),
PA = tril(·, −1) except the slot (k+1, k) of each 2×2 block k of a real form (AA's entry there
is free), PB = tril(·, −1) plus the entry (k, k+1) of each block (LAPACK keeps BB's block
diagonal), the structure of dS, dT is
    F(LQ, LZ) = (PA(CA), PB(CB))                   a column sweep (backend.qz_sweep)
and, for the complex form, Im diag dT = 0 (LAPACK's real diagonal of T) fixes ΩZ's diagonal
i δ, δ = −Im diag(CB − LQ T + T LZ) / diag T, with ΩQ's diagonal 0 (the gauge choice; the
common phases Q → Q D, Z → Z D stay free).
Forward   Ṡ, Ṫ as above (on S's and T's patterns),  Q̇ = Q ΩQ,  Ż = Z ΩZ
Reverse   GQ = Qᴴ Q̄ − S̄ Sᴴ − T̄ Tᴴ,  GZ = Zᴴ Z̄ + Sᴴ S̄ + Tᴴ T̄ (S̄, T̄ on the patterns),
          E = −i diag(Im diag GZ / diag T) (complex form; 0 for the real one),
          (YA, YB) = F⁻ᴴ(tril(GQ − GQᴴ, −1) − tril(E Tᴴ, −1), tril(GZ − GZᴴ, −1) + tril(Tᴴ E, −1)),
          Ā = Q (S̄ + YA) Zᴴ,  B̄ = Q (T̄ + E + YB) Zᴴ   (real parts for real inputs).
The sweep and its adjoint are one primitive pair whose own derivatives are sweeps, so every
order of derivative works.  A loss that depends on the common column phases (Im diag(GQ + GZ)
≠ 0), or on the free rotation of a 2×2 block whose BB entries have equal magnitude (B = I),
raises ValueError; (nearly) repeated or infinite generalized eigenvalues raise LinAlgError.
ordqz's alpha, beta: the diagonals, and at a 2×2 block LAPACK ?lag2's scaled pair, written
with differentiable ops.
"""

from __future__ import annotations

import numpy as np

from .. import ops
from ..backend import LinAlgError, namespace_of, qz_block_gauge, qz_blocks, qz_factor, qz_sweep
from ..backend import _where
from ..registry import Domain, Rule
from ..tape import Primitive
from ..testing import matrices as M
from . import _common as C
from . import _spectral as S_

__all__ = ["qz", "ordqz", "RULES"]

_SORTS = ("lhp", "rhp", "iuc", "ouc")


# -- the pattern of a generalized Schur form (plain constants read off S's value) -------------

class _Pattern:
    """The constraint pattern of a form (qz.md, sections 2 and 6): ``sub`` (..., n, n) 1.0 at
    the slot (k+1, k) of each 2×2 block k of a real form, ``sup`` 1.0 at (k, k+1) (None
    for a triangular form); PA keeps tril(·, −1) off the slots, PB keeps tril(·, −1) and the
    (k, k+1) entries; struct_s / struct_t the patterns of S and T; ``gauge`` (..., n) the
    blocks whose rotation is free (|t_kk| = |t_k+1,k+1|), ``tsign`` t_kk t_k+1,k+1's sign."""

    def __init__(self, S, T=None):
        Sv = C.value(S)
        xp = namespace_of(Sv)
        n = Sv.shape[-1]
        rdt = np.finfo(Sv.dtype).dtype
        self.n = n
        starts = qz_blocks(Sv)
        self.sub = self.sup = self.gauge = None
        if bool(starts.any()):
            k = xp.arange(n - 1)
            self.sub = xp.zeros(starts.shape[:-1] + (n, n), dtype=rdt)
            self.sub[..., k + 1, k] = starts[..., :-1]
            self.sup = xp.swapaxes(self.sub, -1, -2).copy()
            if T is not None:
                Tv = C.value(T)
                self.gauge = qz_block_gauge(Sv, Tv)
                t = xp.diagonal(Tv, 0, -2, -1)
                self.tsign = xp.sign(t[..., :-1] * t[..., 1:])
        self.upper = xp.triu(xp.ones((n, n), dtype=rdt))

    def PA(self, X):
        out = ops.tril(X, -1)
        return out if self.sub is None else out * (1 - self.sub)

    def PB(self, X):
        out = ops.tril(X, -1)
        return out if self.sup is None else out + X * self.sup

    def struct_s(self, X):
        return X * (self.upper if self.sub is None else self.upper + self.sub)

    def struct_t(self, X):
        return X * (self.upper if self.sup is None else self.upper - self.sup)


# -- the sweep pair: L = F⁻¹ R and Y = F⁻ᴴ K ------------------------------------------------
#   F(LQ, LZ) = (PA(ΩQ S − S ΩZ), PB(ΩQ T − T ΩZ)),  Ω = L − Lᴴ,  L strictly lower

def _sweep_impl(S, T, RA, RB, adjoint, op):
    pat = _Pattern(S)
    xp = namespace_of(S)
    return qz_sweep(pat.struct_s(S), xp.triu(T), RA, RB, adjoint, op)


def _zero_if_none(ct, like):
    return ops.zeros_like(like) if ct is None else ct


def _skew(L):
    return L - ops.mH(L)


def _pair_bar(pat, L, Y):
    """(S̄, T̄) = (struct_s(ΩQ Y_A − Y_A ΩZ), triu(ΩQ Y_B − Y_B ΩZ)), Ω = L − Lᴴ: the
    cotangents of S, T through −F⁻¹(dF(L)) (qz.md, section 4)."""
    OQ, OZ = _skew(L[0]), _skew(L[1])
    sb = ops.matmul(OQ, Y[0]) - ops.matmul(Y[0], OZ)
    tb = ops.matmul(OQ, Y[1]) - ops.matmul(Y[1], OZ)
    return pat.struct_s(sb), ops.triu(tb)


def _sweep_vjp(cts, needs, out, res, S, T, RA, RB, adjoint, op):
    pat = _Pattern(S)
    c1 = _zero_if_none(cts[0], out[0])
    c2 = _zero_if_none(cts[1], out[1])
    c1, c2 = (pat.PA(c1), pat.PB(c2)) if adjoint else (ops.tril(c1, -1), ops.tril(c2, -1))
    other = _sweep(S, T, c1, c2, adjoint=not adjoint, op=op)
    S_bar = T_bar = None
    if needs[0] or needs[1]:
        L, Y = (other, out) if adjoint else (out, other)
        S_bar, T_bar = _pair_bar(pat, L, Y)
        S_bar, T_bar = ops.fit(S_bar, S), ops.fit(T_bar, T)
    return (S_bar if needs[0] else None, T_bar if needs[1] else None,
            ops.fit(other[0], RA) if needs[2] else None,
            ops.fit(other[1], RB) if needs[3] else None)


def _sweep_jvp(tangents, out, res, S, T, RA, RB, adjoint, op):
    """L̇ = F⁻¹(Ṙ − (PA(ΩQ Ṡ − Ṡ ΩZ), PB(ΩQ Ṫ − Ṫ ΩZ)));
    Ẏ = F⁻ᴴ(K̇ − (tril(G_A − G_Aᴴ, −1), −tril(G_B − G_Bᴴ, −1))), G_A = Y_A Ṡᴴ + Y_B Ṫᴴ,
    G_B = Ṡᴴ Y_A + Ṫᴴ Y_B."""
    pat = _Pattern(S)
    Sd, Td, RAd, RBd = tangents
    r1 = ops.zeros_like(out[0]) if RAd is None else RAd
    r2 = ops.zeros_like(out[1]) if RBd is None else RBd
    if Sd is not None or Td is not None:
        Sd = ops.zeros_like(S) if Sd is None else pat.struct_s(Sd)
        Td = ops.zeros_like(T) if Td is None else ops.triu(Td)
        X1, X2 = out
        if adjoint:
            Sh, Th = ops.mH(Sd), ops.mH(Td)
            GA = ops.matmul(X1, Sh) + ops.matmul(X2, Th)
            GB = ops.matmul(Sh, X1) + ops.matmul(Th, X2)
            r1 = r1 - ops.tril(GA - ops.mH(GA), -1)
            r2 = r2 + ops.tril(GB - ops.mH(GB), -1)
        else:
            OQ, OZ = _skew(X1), _skew(X2)
            r1 = r1 - (ops.matmul(OQ, Sd) - ops.matmul(Sd, OZ))
            r2 = r2 - (ops.matmul(OQ, Td) - ops.matmul(Td, OZ))
    if adjoint:
        r1, r2 = ops.tril(r1, -1), ops.tril(r2, -1)
    else:
        r1, r2 = pat.PA(r1), pat.PB(r2)
    return _sweep(S, T, r1, r2, adjoint=adjoint, op=op)


_sweep = Primitive("qz_sweep", _sweep_impl, _sweep_vjp, _sweep_jvp, multiple_results=True)


# -- checks on the factors' values ------------------------------------------------------------

def _check_form(S, T, op):
    """Raise where the generalized Schur form is not differentiable: (nearly) infinite or
    repeated generalized eigenvalues (a 2×2 block's pair computed from the block)."""
    Sv, Tv = C.value(S), C.value(T)
    xp = namespace_of(Sv)
    n = Sv.shape[-1]
    if not Sv.size:
        return
    eps = float(np.finfo(Sv.dtype).eps)
    tol = eps ** (2.0 / 3.0)
    # A and B scale separately ((c A, d B) has the eigenvalues (c/d) λ and the same Q, Z, and
    # is as differentiable): the tests below see S / max|S| and T / max|T|, per matrix
    ns = xp.abs(Sv).max(axis=(-2, -1), keepdims=True)
    nt = xp.abs(Tv).max(axis=(-2, -1), keepdims=True)
    Sv = Sv / xp.where(ns > 0, ns, 1)
    Tv = Tv / xp.where(nt > 0, nt, 1)
    s = xp.diagonal(Sv, 0, -2, -1)
    t = xp.diagonal(Tv, 0, -2, -1)
    batch = Sv.shape[:-2]

    def where(bad):                     # which matrix of a stack failed
        if not batch:
            return ""
        i = int(np.flatnonzero(np.asarray(bad.reshape(-1, bad.shape[-1]).any(axis=-1)))[0])
        return _where(op, batch, i)

    bad = xp.abs(t) <= tol
    if bool(bad.any()):
        raise LinAlgError(
            f"{op}: an infinite (or nearly infinite) generalized eigenvalue (a diagonal entry "
            "of BB is ~0 relative to max|BB|: B is singular): the normalization BB[k, k] >= 0 "
            f"is not differentiable there, and no derivative is returned{where(bad)}")
    if n < 2:
        return
    starts = qz_blocks(Sv)
    if bool(starts.any()):
        # a 2×2 block k: its pair λ, λ̄ (det(S_blk − λ T_blk) = 0, T_blk diagonal) as
        # (alpha, beta) = (λ t, t) at k and k+1
        k = xp.arange(n - 1)
        t1, t2 = t[..., :-1], t[..., 1:]
        s11, s22 = s[..., :-1], s[..., 1:]
        s12, s21 = Sv[..., k, k + 1], Sv[..., k + 1, k]
        qa = t1 * t2
        qb = -(s11 * t2 + s22 * t1)
        qc = s11 * s22 - s12 * s21
        blk = starts[..., :-1]
        qa_ = xp.where(blk, qa, 1)
        re = -qb / (2 * qa_)
        im = xp.sqrt(xp.abs(4 * qa_ * qc - qb * qb)) / (2 * xp.abs(qa_))
        s = s.astype(np.result_type(s.dtype, np.complex64))
        s[..., :-1] = xp.where(blk, (re + 1j * im) * t1, s[..., :-1])
        second = xp.zeros_like(starts)
        second[..., 1:] = blk
        lam2 = xp.zeros_like(s)
        lam2[..., 1:] = (re - 1j * im) * t2
        s = xp.where(second, lam2, s)
    size = xp.abs(s) + xp.abs(t)
    cross = xp.abs(s[..., :, None] * t[..., None, :] - t[..., :, None] * s[..., None, :])
    bound = tol * size[..., :, None] * size[..., None, :]
    off = ~xp.eye(n, dtype=bool)
    bad = (cross <= bound) & off
    if bool(bad.any()):
        raise LinAlgError(
            f"{op}: (nearly) repeated generalized eigenvalues: the generalized Schur form is "
            "not a differentiable function of (A, B) there (its restricted generalized "
            "Sylvester equation is singular), and no derivative is returned"
            f"{where(bad.reshape(bad.shape[:-2] + (-1,)))}")


def _terms_scale(pairs, xp):
    """Per matrix, the size of the terms G_Q, G_Z are summed from (max|X̄| max|X| over the
    (cotangent, factor) pairs): G_Q and G_Z may cancel to rounding (an eigenvalue loss on a
    diagonal pencil), and rounding must be judged against what cancelled, not against
    itself."""
    scale = 0.0
    for bar, x in pairs:
        if bar is None:
            continue
        b = C.value(bar)
        if not b.size:
            continue
        scale = xp.maximum(scale, S_._scale(b, xp) * S_._scale(C.value(x), xp))
    return scale


def _check_gauge(GQ, GZ, op, terms=0.0):
    Gq, Gz = C.value(GQ), C.value(GZ)
    if Gq.dtype.kind != "c" or not Gq.size:
        return
    xp = namespace_of(Gq)
    scale = xp.maximum(xp.maximum(S_._scale(Gq, xp), S_._scale(Gz, xp)), terms)
    S_.check_phase_diagonal(op, xp.diagonal(Gq + Gz, 0, -2, -1), scale,
                            "the generalized Schur vectors (Q → Q D, Z → Z D, AA → Dᴴ AA D, "
                            "BB → Dᴴ BB D for a diagonal D of phases)")


def _check_block_gauge(pat, GQ, GZ, op, terms=0.0):
    """A 2×2 block whose BB entries have equal magnitude leaves its rotation free (ΩQ, ΩZ
    at (k+1, k) along (1, sign(t_kk t_k+1,k+1))): the loss's derivative along it,
    g_Q + σ g_Z with g = G[k+1, k] − G[k, k+1], must be ~0 (ValueError otherwise)."""
    if pat.gauge is None or not bool(pat.gauge.any()):
        return
    Gq, Gz = C.value(GQ), C.value(GZ)
    xp = namespace_of(Gq)
    k = xp.arange(pat.n - 1)
    gq = Gq[..., k + 1, k] - Gq[..., k, k + 1]
    gz = Gz[..., k + 1, k] - Gz[..., k, k + 1]
    part = xp.abs(gq + pat.tsign * gz) * pat.gauge[..., :-1]
    scale = xp.maximum(xp.maximum(S_._scale(Gq, xp), S_._scale(Gz, xp)), terms)
    if bool((part > S_.rel_tol(Gq.dtype) * xp.asarray(scale)[..., None]).any()):
        raise ValueError(
            f"{op}: the loss depends on the rotation inside a 2×2 block of the real "
            "generalized Schur form whose BB entries have equal magnitude (|BB[k, k]| = "
            "|BB[k+1, k+1]|, e.g. B = I), which the standardization leaves free there, so "
            "its gradient is not defined. Use a loss invariant under it (the eigenvalues, "
            "Q[:, :k+2] Q[:, :k+2]ᵀ, Q AA Zᵀ) or output='complex'.")


def _diag_matrix(d):
    n = ops._shape(d)[-1]
    eye = namespace_of(C.peek(d)).eye(n, dtype=np.finfo(C.peek(d).dtype).dtype)
    return eye * ops.expand_dims(d, -2)


# -- qz -------------------------------------------------------------------------------------

def _qz_impl(A, B, complex_out, sort, op):
    AA, BB, Q, Z, alpha, beta = qz_factor(A, B, complex_out, sort, op)
    return (AA, BB, Q, Z), (alpha, beta)


def _qz_vjp(cts, needs, out, res, A, B, complex_out, sort, op):
    S_bar, T_bar, Q_bar, Z_bar = cts
    S, T, Q, Z = out
    if all(c is None for c in cts):
        return (None, None)
    _check_form(S, T, op)
    pat = _Pattern(S, T)
    terms = _terms_scale(((S_bar, S), (T_bar, T), (Q_bar, Q), (Z_bar, Z)),
                         namespace_of(C.value(S)))
    S_bar = ops.zeros_like(S) if S_bar is None else pat.struct_s(S_bar)
    T_bar = ops.zeros_like(T) if T_bar is None else pat.struct_t(T_bar)
    Sh, Th = ops.mH(S), ops.mH(T)
    GQ = -(ops.matmul(S_bar, Sh) + ops.matmul(T_bar, Th))
    GZ = ops.matmul(Sh, S_bar) + ops.matmul(Th, T_bar)
    if Q_bar is not None:
        GQ = GQ + ops.matmul(ops.mH(Q), Q_bar)
    if Z_bar is not None:
        GZ = GZ + ops.matmul(ops.mH(Z), Z_bar)
    KQ = ops.tril(GQ - ops.mH(GQ), -1)
    KZ = ops.tril(GZ - ops.mH(GZ), -1)
    if ops._is_complex(S):
        _check_gauge(GQ, GZ, op, terms)
        w = ops.imag(ops.diagonal(GZ, 0, -2, -1)) / ops.real(ops.diagonal(T, 0, -2, -1))
        E = -1j * ops.astype(_diag_matrix(w), C.peek(S).dtype)
        T_bar = T_bar + E
        KQ = KQ - ops.tril(ops.matmul(E, Th), -1)
        KZ = KZ + ops.tril(ops.matmul(Th, E), -1)
    else:
        _check_block_gauge(pat, GQ, GZ, op, terms)
    YA, YB = _sweep(S, T, KQ, KZ, adjoint=True, op=op)
    Zh = ops.mH(Z)
    A_bar = ops.fit(ops.matmul(ops.matmul(Q, S_bar + YA), Zh), A) if needs[0] else None
    B_bar = ops.fit(ops.matmul(ops.matmul(Q, T_bar + YB), Zh), B) if needs[1] else None
    return A_bar, B_bar


def _qz_jvp(tangents, out, res, A, B, complex_out, sort, op):
    A_dot, B_dot = tangents
    S, T, Q, Z = out
    _check_form(S, T, op)
    dt = C.peek(S).dtype
    Qh = ops.mH(Q)

    def congr(X):
        if X is None:
            return ops.zeros_like(S)
        if ops._is_complex(S) and not ops._is_complex(X):
            X = ops.astype(X, dt)
        return ops.matmul(ops.matmul(Qh, X), Z)

    CA, CB = congr(A_dot), congr(B_dot)
    pat = _Pattern(S, T)
    LQ, LZ = _sweep(S, T, pat.PA(CA), pat.PB(CB), adjoint=False, op=op)
    OQ = LQ - ops.mH(LQ)
    OZ = LZ - ops.mH(LZ)
    if ops._is_complex(S):
        dg = ops.diagonal(CB - ops.matmul(LQ, T) + ops.matmul(T, LZ), 0, -2, -1)
        delta = -ops.imag(dg) / ops.real(ops.diagonal(T, 0, -2, -1))
        OZ = OZ + 1j * ops.astype(_diag_matrix(delta), dt)
    S_dot = pat.struct_s(CA - ops.matmul(OQ, S) + ops.matmul(S, OZ))
    T_dot = pat.struct_t(CB - ops.matmul(OQ, T) + ops.matmul(T, OZ))
    return S_dot, T_dot, ops.matmul(Q, OQ), ops.matmul(Z, OZ)


_qz = Primitive("qz", _qz_impl, _qz_vjp, _qz_jvp, staged=True, multiple_results=True)


def _prepare(op, A, B, output, check_finite):
    if output not in ("real", "complex", "r", "c"):
        raise ValueError(f"{op}: argument must be 'real', or 'complex'")
    A, B = C.array_args(op, A=A, B=B)
    av, bv = C.peek(A), C.peek(B)
    for name, v in (("A", av), ("B", bv)):
        if v.ndim < 2 or v.shape[-1] != v.shape[-2]:
            raise ValueError(f"{op}: {name} must be a square matrix or a stack of square "
                             f"matrices (..., n, n); got shape {v.shape}")
    if av.shape[-1] != bv.shape[-1]:
        raise ValueError(f"{op}: Array dimensions must be equal for A {av.shape} and "
                         f"B {bv.shape}")
    C.stacks(op, A=av.shape, B=bv.shape)
    dtype = C.result_dtype(op, av, bv)
    A, B = C.promote(A, dtype), C.promote(B, dtype)
    C.checked(op, ("A", "B"), (A, B), check_finite)
    complex_out = output in ("complex", "c") or dtype.kind == "c"
    return A, B, complex_out


def qz(A, B, output="real", lwork=None, sort=None, overwrite_a=False, overwrite_b=False,
       check_finite=True):
    """QZ (generalized Schur) decomposition A = Q AA Zᴴ, B = Q BB Zᴴ, differentiable.

    scipy.linalg.qz's signature and outputs ``(AA, BB, Q, Z)``: for real input and
    output='real' (default) the real form (AA quasi upper triangular with 1×1 and 2×2 blocks,
    BB upper triangular, its 2×2 diagonal blocks diagonal with positive entries; Q, Z
    orthogonal); complex input or output='complex' the complex form (AA, BB upper
    triangular, BB's diagonal real and nonnegative; Q, Z unitary).  ``sort`` must be None
    (SciPy's ValueError: use ordqz); ``lwork``, ``overwrite_a``, ``overwrite_b`` are accepted
    and ignored.  Integers compute in float64, float32/complex64 stay single precision.
    Stacks (..., n, n) of A and B broadcast and are factored matrix by matrix (SciPy 1.17
    batches qz too); an empty matrix or stack gives empty factors (SciPy fails on both).
    ValueError for non-square or mismatched inputs, infs or NaNs (check_finite) and a bad
    ``output``.  On the GPU the factors are computed on the host (CuPy has no QZ).

    Valid when: the generalized eigenvalues are distinct and finite (LinAlgError naming qz
    otherwise: the form is not differentiable there), i.e. for pencils with well separated
    eigenvalues and B well conditioned.  A nearly defective pair is not caught: LAPACK
    splits it by about √ε, above the tie test, and gradients through Q, Z or one of its
    eigenvalues are then of order 1/√ε (symmetric functions of the pair stay accurate;
    qz.md, section 6).  The complex form's common column phases are a
    gauge (Q → Q D, Z → Z D, AA → Dᴴ AA D, BB → Dᴴ BB D) that LAPACK fixes by no smooth
    rule: the derivative holds Q's phases fixed (Im diag QᴴdQ = 0; Z's follow from BB's
    real diagonal), and a loss that depends on them raises ValueError; |AA|², |BB|²,
    diag AA / diag BB, Q AA Zᴴ, Q[:, :k] Q[:, :k]ᴴ are invariant.  The real form is smooth
    near a generic pencil up to the columns' signs (Q → Q D, Z → Z D, D = ±1), its 2×2
    blocks (complex-conjugate pairs) included: the derivative keeps LAPACK's
    standardization (BB's block diagonal).  Where a block's two BB entries have equal
    magnitude (e.g. B = I) the block's rotation is free, and a loss that depends on it
    raises ValueError (the block's trace, its invariant subspace, Q AA Zᵀ are invariant).
    """
    if sort is not None:
        raise ValueError("The 'sort' input of qz() has to be None and will be removed in a "
                         "future release. Use ordqz instead.")
    A, B, complex_out = _prepare("qz", A, B, output, check_finite)
    (AA, BB, Q, Z), _ = _qz.bind_staged((A, B), {"complex_out": complex_out, "sort": None,
                                                 "op": "qz"})
    return AA, BB, Q, Z


def ordqz(A, B, sort="lhp", output="real", overwrite_a=False, overwrite_b=False,
          check_finite=True):
    """QZ decomposition with reordering, differentiable: scipy.linalg.ordqz's signature and
    outputs ``(AA, BB, alpha, beta, Q, Z)``.

    ``sort`` is one of SciPy's 'lhp', 'rhp', 'iuc', 'ouc' or a callable of (alpha, beta)
    (SciPy's conventions, infinite eigenvalues included); the selected eigenvalues are moved
    to the top left.  alpha (complex) and beta (real for the real form, complex with zero
    imaginary part for the complex one) are SciPy's: for a 1×1 block (and the complex form)
    alpha_k = AA[k, k], beta_k = BB[k, k], differentiated as such; for a 2×2 block of the
    real form they are LAPACK ?lag2's (the pair λ, λ̄ times one safe scaling factor, a
    max/min expression of the block's norms), written with differentiable ops (piecewise
    smooth; SciPy's values bit for bit).  (?tgsen may leave a block of BB with negative
    entries, unlike qz.)  Stacks, dtypes, empty inputs, errors and the GPU as :func:`qz`.

    Valid when: as :func:`qz`; in addition the reordering is locally constant (an
    eigenvalue exactly on the selection's border is not differentiable), so the derivative
    at the reordered form is qz's rule.
    """
    if not callable(sort) and not (isinstance(sort, str) and sort in _SORTS):
        raise ValueError("ordqz: sort parameter must be None, a callable, or one of "
                         "('lhp','rhp','iuc','ouc')")      # (SciPy's words; None raises too)
    A, B, complex_out = _prepare("ordqz", A, B, output, check_finite)
    (AA, BB, Q, Z), (alpha, beta) = _qz.bind_staged(
        (A, B), {"complex_out": complex_out, "sort": sort, "op": "ordqz"})
    if C.value(AA).dtype.kind == "c":
        return AA, BB, ops.diagonal(AA, 0, -2, -1), ops.diagonal(BB, 0, -2, -1), Q, Z
    alpha_v, beta_v = C.value(alpha), C.value(beta)
    starts = qz_blocks(C.value(AA))
    if not bool(starts.any()):
        return (AA, BB, ops.astype(ops.diagonal(AA, 0, -2, -1), alpha_v.dtype),
                ops.diagonal(BB, 0, -2, -1), Q, Z)
    alpha, beta = _block_alpha_beta(AA, BB, starts, alpha_v, beta_v)
    return AA, BB, alpha, beta, Q, Z


# -- ordqz's alpha, beta of a real form with 2×2 blocks -----------------------------------------

def _block_alpha_beta(AA, BB, starts, alpha_v, beta_v):
    """alpha, beta of a real form with 2×2 blocks (qz.md, section 6): a 1×1 block's are
    AA[k, k], BB[k, k]; a block's are LAPACK ?lag2's (called by ?tgsen on the block) —
    the pair λ, λ̄ (Im λ > 0) of det(S_b − λ T_b) = 0 and one scale for both,
        β = s_A b / w,   s_A = 1 / max(|a11| + |a21|, |a12| + |a22|),   b = max(|t11|, |t22|),
        w = min(1, max(|Re λ'| + |Im λ'|, c₅) / 2),   λ' = λ s_A b,
        c₅ = min(1, s_A b) if s_A <= 1 or b <= 1 else 1,
    α = λ β (?lag2's safe-range terms, which act only near under/overflow, left out).  Written
    with differentiable ops; the values are then moved onto SciPy's own bit for bit (a
    constant correction of rounding size)."""
    xp = namespace_of(alpha_v)
    rdt = np.finfo(alpha_v.dtype).dtype
    d, e = ops.diagonal(AA, 0, -2, -1), ops.diagonal(BB, 0, -2, -1)
    sup, sub = ops.diagonal(AA, 1, -2, -1), ops.diagonal(AA, -1, -2, -1)
    first = (slice(None, -1),)
    second = (slice(1, None),)
    a11, a22 = ops.getitem(d, (Ellipsis,) + first), ops.getitem(d, (Ellipsis,) + second)
    t1, t2 = ops.getitem(e, (Ellipsis,) + first), ops.getitem(e, (Ellipsis,) + second)
    blk = starts[..., :-1]
    one = xp.ones(blk.shape, dtype=rdt)
    anorm = ops.where(blk, ops.maximum(ops.abs(a11) + ops.abs(sub), ops.abs(sup) + ops.abs(a22)),
                      one)
    sa = 1 / anorm
    bsize = ops.where(blk, ops.maximum(ops.abs(t1), ops.abs(t2)), one)
    sab = sa * bsize
    # λ' = λ s_A b, the pair of the block scaled as ?lag2 scales it (A_b s_A, T_b / b): the
    # quadratic's coefficients are O(1) then (unscaled, t1 t2 and a11 a22 over/underflowed
    # at |A|, |B| ~ 1e±20 in single precision, 1e±150 in double, and alpha, beta were NaN)
    # (outside the blocks: ones, so that no product there over/underflows into a NaN cotangent)
    a11, a22, sup, sub = (ops.where(blk, x * sa, one) for x in (a11, a22, sup, sub))
    t1, t2 = (ops.where(blk, x / bsize, one) for x in (t1, t2))
    qa = ops.where(blk, t1 * t2, one)
    qb = -(a11 * t2 + a22 * t1)
    qc = a11 * a22 - sup * sub
    disc = ops.where(blk, 4 * qa * qc - qb * qb, one)
    re = -qb / (2 * qa)
    im = ops.sqrt(disc) / (2 * ops.abs(qa))
    wabs = ops.abs(re) + im
    small = (C.value(sa) <= 1) | (C.value(bsize) <= 1)
    c5 = ops.where(small, ops.minimum(one, sab), one)
    wsize = ops.minimum(one, 0.5 * ops.maximum(wabs, c5))
    beta_b = sab / wsize
    cdt = alpha_v.dtype
    lam = ops.astype(re, cdt) + 1j * ops.astype(im, cdt)      # λ'
    alpha_b = lam / ops.astype(wsize, cdt)                     # λ β = λ' / w
    pad = xp.zeros(blk.shape[:-1] + (1,), dtype=bool)
    is_first = xp.concatenate([blk, pad], axis=-1)
    is_second = xp.concatenate([pad, blk], axis=-1)
    zc = ops.zeros_like(ops.getitem(alpha_b, (Ellipsis, slice(0, 1))))
    zr = ops.zeros_like(ops.getitem(beta_b, (Ellipsis, slice(0, 1))))
    alpha = ops.where(is_first, ops.concatenate([alpha_b, zc], axis=-1),
                      ops.where(is_second, ops.concatenate([zc, ops.conj(alpha_b)], axis=-1),
                                ops.astype(d, cdt)))
    beta = ops.where(is_first, ops.concatenate([beta_b, zr], axis=-1),
                     ops.where(is_second, ops.concatenate([zr, beta_b], axis=-1), e))
    # SciPy's values exactly: x + (v − x) is v when x is v up to rounding (Sterbenz)
    inblk = is_first | is_second
    alpha = alpha + xp.where(inblk, alpha_v - C.value(alpha), 0)
    beta = beta + xp.where(inblk, beta_v - C.value(beta), 0)
    return alpha, beta


# -- registry -------------------------------------------------------------------------------

def _sq(X):
    return ops.real(X * ops.conj(X)) if ops._is_complex(X) else X * X


def _invariant(AA, BB, Q, Z):
    """Outputs of a QZ form that do not depend on its free choices (the columns' signs of the
    real form, the common phases of the complex one): |AA|², |BB|² entrywise, the
    eigenvalues diag AA / diag BB, and the projectors Q[:, :k] Q[:, :k]ᴴ, Z[:, :k] Z[:, :k]ᴴ
    (real parts), k = n // 2 (none for n = 1: the projector would be the constant 1)."""
    n = ops._shape(AA)[-1]
    lam = ops.diagonal(AA, 0, -2, -1) / ops.diagonal(BB, 0, -2, -1)
    if ops._is_complex(AA):
        lam = ops.real(lam) + ops.imag(lam)
    if n < 2:
        return _sq(AA), _sq(BB), lam
    k = slice(0, n // 2)
    Q1, Z1 = ops.getitem(Q, (Ellipsis, k)), ops.getitem(Z, (Ellipsis, k))
    PQ, PZ = ops.matmul(Q1, ops.mH(Q1)), ops.matmul(Z1, ops.mH(Z1))
    if ops._is_complex(AA):
        PQ, PZ = ops.real(PQ), ops.real(PZ)
    return _sq(AA), _sq(BB), lam, PQ, PZ


def _invariant_ref(AA, BB, Q, Z):
    n = AA.shape[-1]
    lam = np.diagonal(AA, 0, -2, -1) / np.diagonal(BB, 0, -2, -1)
    out = (np.abs(AA) ** 2, np.abs(BB) ** 2, lam.real + lam.imag)
    if n < 2:
        return out
    k = n // 2
    PQ = Q[..., :k] @ np.conj(np.swapaxes(Q[..., :k], -1, -2))
    PZ = Z[..., :k] @ np.conj(np.swapaxes(Z[..., :k], -1, -2))
    return out + (PQ.real, PZ.real)


def _qz_fun(a, b):
    return _invariant(*qz(a, b))


def _qz_complex_fun(a, b):
    return _invariant(*qz(a, b, output="complex"))


def _ordqz_outputs(a, b, output):
    AA, BB, alpha, beta, Q, Z = ordqz(a, b, sort="lhp", output=output)
    lam = alpha / beta
    return _invariant(AA, BB, Q, Z) + (ops.real(lam) + ops.imag(lam), _sq(beta))


def _ordqz_fun(a, b):
    return _ordqz_outputs(a, b, "real")


def _ordqz_complex_fun(a, b):
    return _ordqz_outputs(a, b, "complex")


_qz_fun.__doc__ = _qz_complex_fun.__doc__ = qz.__doc__
_ordqz_fun.__doc__ = _ordqz_complex_fun.__doc__ = ordqz.__doc__


def _ref(kind):
    import scipy.linalg as sl

    def reference(a, b):
        if kind.startswith("ordqz"):
            AA, BB, alpha, beta, Q, Z = sl.ordqz(a, b, sort="lhp", output=(
                "complex" if kind.endswith("complex") else "real"))
            lam = alpha / beta
            extra = (lam.real + lam.imag, np.abs(beta) ** 2)
            return tuple(np.asarray(x) for x in _invariant_ref(AA, BB, Q, Z) + extra)
        out = sl.qz(a, b, output="complex" if kind == "complex" else "real")
        return tuple(np.asarray(x) for x in _invariant_ref(*out))
    return reference


def _pencil(rng, n, batch, dtype, centered=False):
    """(A, B) = (U Sd V, U Td V) with U, V orthogonal (unitary), Td upper triangular with
    diagonal in [1, 2] (B well conditioned) and Sd upper triangular with Sd_kk / Td_kk at
    least 0.5 apart (real for real dtypes: real generalized eigenvalues), the strict upper
    parts Gaussian × 0.4 min(1, 2/√n) (non-normal, yet well conditioned eigenvalues at large
    n); ``centered``: eigenvalues in both half planes, |Re λ| >= 0.25."""
    batch = tuple(batch)
    complex_ = np.dtype(dtype).kind == "c"
    lam = np.arange(n) + rng.uniform(0, 0.5, batch + (n,))
    lam = lam - (n - 0.5) / 2 if centered else lam + 1.0
    if centered:
        lam = np.where(np.abs(lam) < 0.25, np.sign(lam + 1e-9) * 0.25, lam)
    lam = rng.permutation(lam, axis=-1) if lam.ndim else lam
    t = rng.uniform(1.0, 2.0, batch + (n,))
    if complex_:
        lam = lam + 1j * rng.uniform(-1, 1, batch + (n,))

    def upper():
        X = rng.standard_normal(batch + (n, n))
        if complex_:
            X = X + 1j * rng.standard_normal(batch + (n, n))
        return np.triu(X, 1) * (0.4 * min(1.0, 2.0 / np.sqrt(max(n, 1))))

    eye = np.eye(n)
    Td = t[..., None, :] * eye + upper()
    Sd = (lam * t)[..., None, :] * eye + upper()
    cdt = np.complex128 if complex_ else np.float64
    U = M.random_orthogonal(rng, n, batch, cdt)
    V = M.random_orthogonal(rng, n, batch, cdt)
    A, B = U @ Sd @ V, U @ Td @ V
    if not complex_:
        A, B = A.real, B.real
    return (np.ascontiguousarray(A.astype(dtype)), np.ascontiguousarray(B.astype(dtype))), {}


def _pairs(rng, n, batch, dtype, centered=False):
    """A real pencil with complex-conjugate pairs μ ± iν (real parts 1.5 apart, ν in
    [0.5, 1]) in 2×2 blocks whose BB entries differ (t₁ in [1, 1.4], t₂ in [1.8, 2.2]: no
    gauge), a real eigenvalue for odd n, non-normal upper parts, B well conditioned;
    ``centered``: in both half planes."""
    batch = tuple(batch)
    Sd, Td = np.zeros(batch + (n, n)), np.zeros(batch + (n, n))
    shift = 0.75 - 1.5 * (n // 4) if centered else 0.0     # centered: |Re λ| >= 0.55
    for j, i in enumerate(range(0, n - 1, 2)):
        t1, t2 = rng.uniform(1.0, 1.4, batch), rng.uniform(1.8, 2.2, batch)
        mu = 1.5 * j + rng.uniform(-0.2, 0.2, batch) + shift
        nu1, nu2 = rng.uniform(0.5, 1.0, batch), rng.uniform(0.5, 1.0, batch)
        Td[..., i, i], Td[..., i + 1, i + 1] = t1, t2
        Sd[..., i, i], Sd[..., i, i + 1] = t1 * mu, t1 * nu1
        Sd[..., i + 1, i], Sd[..., i + 1, i + 1] = -t2 * nu2, t2 * mu
    if n % 2:
        Td[..., n - 1, n - 1] = rng.uniform(1.0, 2.0, batch)
        last = -1.5 * (n // 4) - 0.75 if centered else 1.5 * (n // 2) + 0.7
        Sd[..., n - 1, n - 1] = Td[..., n - 1, n - 1] * last
    scale = 0.4 * min(1.0, 2.0 / np.sqrt(max(n, 1)))
    Sd = Sd + np.triu(rng.standard_normal(batch + (n, n)), 2) * scale
    Td = Td + np.triu(rng.standard_normal(batch + (n, n)), 2) * scale
    U = M.random_orthogonal(rng, n, batch, np.float64)
    V = M.random_orthogonal(rng, n, batch, np.float64)
    return (np.ascontiguousarray((U @ Sd @ V).astype(dtype)),
            np.ascontiguousarray((U @ Td @ V).astype(dtype))), {}


def _centered(rng, n, batch, dtype):
    return _pencil(rng, n, batch, dtype, centered=True)


def _centered_pairs(rng, n, batch, dtype):
    return _pairs(rng, n, batch, dtype, centered=True)


_DOMAINS = (Domain("separated-pencil", _pencil, "distinct finite generalized eigenvalues "
                   "(real for real dtypes) at least 0.5 apart, B well conditioned"),
            Domain("conjugate-pairs", _pairs, "real pencils with complex-conjugate pairs in "
                   "2x2 blocks (BB's block entries distinct), B well conditioned",
                   real_only=True))
_SORTED = (Domain("both-half-planes", _centered, "distinct finite generalized eigenvalues "
                  "at least 0.5 apart in both half planes, B well conditioned"),
           Domain("conjugate-pairs-both-half-planes", _centered_pairs, "real pencils with "
                  "complex-conjugate pairs in 2x2 blocks in both half planes, B well "
                  "conditioned", real_only=True))

_TOL = {"float32": 3e-2, "float64": 1e-6}
_NOTE = ("central differences; double precision only: the generated checks difference the "
         "double-promoted input, and the QZ algorithm's eigenvalue order (the branch of the "
         "form) can differ between a single precision input and its double promotion. "
         "Single precision values and derivatives are checked in tests/test_qz.py against "
         "SciPy and against the double derivative")
_DOUBLE = (np.float64, np.complex128)
_REFS = ("Moler & Stewart 1973", "Golub & Van Loan 2013, §7.7", "Kågström 1994")

RULES = (
    Rule(name="qz", fun=_qz_fun, primitive=_qz, domains=_DOMAINS, dtypes=_DOUBLE,
         derivation="docs/derivations/qz.md", reference=_ref("real"), rtol=_TOL,
         tolerance_note=_NOTE, references=_REFS),
    Rule(name="qz-complex", fun=_qz_complex_fun, primitive=_qz, domains=_DOMAINS,
         dtypes=(np.float64,), derivation="docs/derivations/qz.md", reference=_ref("complex"),
         rtol=_TOL, tolerance_note=_NOTE, references=_REFS),
    Rule(name="ordqz", fun=_ordqz_fun, primitive=_qz, domains=_SORTED, dtypes=_DOUBLE,
         derivation="docs/derivations/qz.md", reference=_ref("ordqz"), rtol=_TOL,
         tolerance_note=_NOTE, references=_REFS),
    Rule(name="ordqz-complex", fun=_ordqz_complex_fun, primitive=_qz, domains=_SORTED,
         dtypes=(np.float64,), derivation="docs/derivations/qz.md",
         reference=_ref("ordqz-complex"), rtol=_TOL, tolerance_note=_NOTE, references=_REFS),
)
