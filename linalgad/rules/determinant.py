"""det and slogdet.   Derivation: docs/derivations/determinant.md

det        y = det A (holomorphic),  dy = tr(adj(A) dA).
           Reverse Ā = ȳ adj(A)ᴴ;  forward ẏ = tr(adj(A) Ȧ).
           adj(A) = det(A) A⁻¹ from the forward LU factors; at an exactly
           singular matrix (a zero pivot) it is computed from the SVD instead,
           so the gradient at a rank n−1 matrix is the (finite) adjugate; the adjugate's
           own derivative (det's second) goes through the SVD at and near singular matrices.
slogdet    z = log det A,  dz = tr(A⁻¹ dA);  logabsdet = Re z, sign = e^{i Im z}.
           Reverse Ā = w A⁻ᴴ with w = ḡ − i Im(conj(s̄) sign);  forward
           logabsdet' = Re ż, sign' = i sign Im ż.  A⁻¹ comes from the forward
           LU factors (getri), no second factorization.

Both forward passes are one LU factorization; the derivative passes reuse it.
"""

from __future__ import annotations

from collections import namedtuple

import math

import numpy as np

from .. import ops, transforms
from ..backend import LinAlgError, kernels_for
from ..registry import Domain, Rule
from ..tape import Primitive, Tracer
from ..testing import matrices as M
from . import _common as C
from .inverse import inverse

__all__ = ["det", "slogdet", "SlogdetResult", "RULES"]

SlogdetResult = namedtuple("SlogdetResult", ["sign", "logabsdet"])


def _singular(logabs):
    """Did the forward pass meet an exactly zero pivot?  (Its log|det| is then -inf.)"""
    return bool((ops.asarray_value(logabs) == -np.inf).any())


# -- det --------------------------------------------------------------------------------

_RANGE = {}        # dtype -> (maxexp, minexp) of its precision, read once


def pivot_product(xp, d):
    """Π dᵢ over the last axis, without over- or underflow on the way: the plain product
    where no partial product can leave the normal range (one test from the stack's max|d|
    and min|d|), else mantissas and exponents separately (frexp).  block_diag(1e-200·B₁,
    1e200·B₂) has a determinant of 90, but its pivots' running product underflowed to 0
    (and its gradient with it); NumPy's det (through slogdet) returns 90."""
    n = d.shape[-1]
    if n < 2 or d.size == 0:
        return xp.prod(d, axis=-1)
    a = xp.abs(d)
    rng = _RANGE.get(a.dtype)
    if rng is None:
        info = np.finfo(a.dtype)
        rng = _RANGE[a.dtype] = (int(info.maxexp) - 2, int(info.minexp) + 2)
    # one test for the whole stack (a reduction over all of it is 30x faster than one
    # per matrix over a short last axis): |partial products| lie in [lo^n, hi^n]
    hi, lo = float(a.max()), float(a.min())
    if lo == 0:
        lo = float(xp.where(a > 0, a, 1).min())
    if (hi <= 1 or n * math.log2(hi) < rng[0]) and (lo >= 1 or n * math.log2(lo) > rng[1]):
        return xp.prod(d, axis=-1)
    with np.errstate(all="ignore"):
        m, e = xp.frexp(a)
        unit = xp.where(a > 0, d / xp.where(a > 0, a, 1), 0) if d.dtype.kind == "c" \
            else xp.sign(d)
        m = m * unit
        exponent = e.sum(axis=-1)
        step = max(1, -rng[1] // 2)                      # 0.5^step stays normal
        q = None
        for k0 in range(0, n, step):
            part = xp.prod(m[..., k0:k0 + step], axis=-1)
            q = part if q is None else q * part
            qe = xp.frexp(xp.abs(q))[1]
            q = q * xp.exp2(-qe).astype(a.dtype)        # exact: a power of two, q ≠ 0 normal
            exponent = exponent + qe
        if q.dtype.kind == "c":
            scaled = xp.ldexp(q.real, exponent) + 1j * xp.ldexp(q.imag, exponent)
        else:
            scaled = xp.ldexp(q, exponent)
        return scaled.astype(d.dtype)


def det_forward(A):
    K = kernels_for(A)
    F = K.lu_factor(A, op="det", singular_ok=True)
    d, perm_sign = K.lu_diagonal(F)
    return perm_sign * pivot_product(K.xp, d), F


def det_vjp(y_bar, needs, y, F, A):
    """Ā = ȳ adj(A)ᴴ."""
    return (ops.fit(_det_cotangent(A, y_bar, F=F), A),)


def _det_cotangent_composed(A, y_bar, *, F):
    """Ā = ȳ adj(A)ᴴ: the definition, in differentiable operations (the adjugate is
    finite at a singular A)."""
    return ops.mH(_adjugate(A, factors=F)) * C.per_matrix_scalar(y_bar)


def _det_cotangent_kernel(A, y_bar, *, F):
    """Nonsingular: adj(A)ᴴ = conj(det) A⁻ᴴ, one kernel call (``lu_inverse_h``)."""
    K = kernels_for(A)
    d, perm_sign = K.lu_diagonal(F)
    if bool((d == 0).any()):
        return _det_cotangent_composed(A, y_bar, F=F)
    det = perm_sign * pivot_product(K.xp, d)
    return K.lu_inverse_h(F, y_bar * K.xp.conj(det))


_det_cotangent = transforms.fused("det_cotangent", _det_cotangent_kernel,
                                  _det_cotangent_composed)


def det_jvp(tangents, y, F, A):
    """ẏ = tr(adj(A) Ȧ) = Σᵢⱼ adj(A)ⱼᵢ Ȧᵢⱼ."""
    (A_dot,) = tangents
    return ops.sum(ops.mT(_adjugate(A, factors=F)) * A_dot, axis=(-2, -1))


_det = Primitive("det", det_forward, det_vjp, det_jvp, staged=True)


# -- the adjugate (first derivative of det), itself differentiable -------------------------

def adjugate_forward(A, *, factors):
    """adj(A): det(A) A⁻¹ from LU factors; through the SVD where a pivot is exactly zero."""
    K = kernels_for(A)
    xp = K.xp
    d, perm_sign = K.lu_diagonal(factors)
    det = perm_sign * pivot_product(xp, d)
    zero = (d == 0).any(axis=-1)
    if not bool(zero.any()):
        return det[..., None, None] * K.lu_inverse(factors)
    n = A.shape[-1]
    flat_zero = zero.reshape(-1)
    flat_A = A.reshape((-1, n, n))
    out = xp.empty(flat_A.shape, dtype=A.dtype)
    ok = ~flat_zero
    if bool(ok.any()):
        with np.errstate(divide="ignore", invalid="ignore"):
            inv_all = K.lu_inverse(factors).reshape(flat_A.shape)
        out[ok] = det.reshape(-1)[ok][:, None, None] * inv_all[ok]
    out[flat_zero] = _adjugate_svd(K, flat_A[flat_zero])
    return out.reshape(A.shape)


def _outer_products(xp, s):
    """(Π_{l<i} s_l, Π_{l>i} s_l) for each i of the last axis: cumulative products, no
    division (s may hold zeros)."""
    one = xp.ones(s.shape[:-1] + (1,), dtype=s.dtype)
    before = xp.cumprod(xp.concatenate([one, s[..., :-1]], axis=-1), axis=-1)
    after = xp.flip(xp.cumprod(xp.concatenate([one, xp.flip(s[..., 1:], -1)], axis=-1),
                               axis=-1), -1)
    return before, after


def _adjugate_svd(K, A):
    """adj(A) = det(U) det(Vᴴ) V diag(∏_{j≠i} s_j) Uᴴ for A = U S Vᴴ: exact at any rank."""
    xp = K.xp
    U, s, Vh = K.svd(A)
    # products of all singular values but one, without dividing (s may be zero)
    before, after = _outer_products(xp, s)
    adj_s = (before * after).astype(A.dtype)
    phase = xp.linalg.det(U) * xp.linalg.det(Vh)
    V = xp.conj(xp.swapaxes(Vh, -1, -2))
    UH = xp.conj(xp.swapaxes(U, -1, -2))
    return phase[..., None, None] * ((V * adj_s[..., None, :]) @ UH)


# -- the adjugate's derivative at and near singular matrices (determinant.md, section 6) ----
#
# The nonsingular formulas below contain A⁻¹, whose two terms cancel to the size of the
# result near rank n − 1 (accuracy ~ κ(A) u), and do not exist at a zero pivot.  The SVD
# form holds at every A: with A = U S Vᴴ, c = det(U) det(Vᴴ) and P_ik = Π_{l≠i,k} s_l,
#     d adj = c V G(Uᴴ dA V) Uᴴ,   G(F)_ii = Σ_{k≠i} P_ik F_kk,   G(F)_ij = −P_ij F_ij,
# and G is self-adjoint, so the reverse form is Ā = U G(conj(c) Vᴴ Ȳ U) Vᴴ.  It is used where
# an LU pivot is zero or κ₁(A) > u^(−1/2), measured with the inverse the nonsingular
# formula needs anyway (the SVD's cost is only paid there).  Being
# linear in its direction, its derivatives in the direction are itself; in A (a third
# derivative of det) it raises.

def _pair_products(xp, s):
    """P (..., n, n): P_ik = Π_{l≠i,k} s_l off the diagonal, 0 on it — products only (s may
    hold zeros): prefix · (product strictly between) · suffix."""
    n = s.shape[-1]
    pre, suf = _outer_products(xp, s)
    later = xp.arange(n)[None, :] > xp.arange(n)[:, None]                   # l > i
    between = xp.cumprod(xp.where(later, s[..., None, :], 1), axis=-1)       # Π_{i<l≤k}
    between = xp.concatenate([xp.ones(s.shape + (1,), dtype=s.dtype), between[..., :-1]],
                             axis=-1)                                       # Π_{i<l<k}
    upper = xp.where(later, pre[..., :, None] * between * suf[..., None, :], 0)
    return upper + xp.swapaxes(upper, -1, -2)


def _adjugate_linear_impl(A, X, *, reverse):
    K = kernels_for(A, X)
    xp = K.xp
    U, s, Vh = K.svd(A)
    P = _pair_products(xp, s).astype(A.dtype)
    c = xp.linalg.det(U) * xp.linalg.det(Vh)
    UH = xp.conj(xp.swapaxes(U, -1, -2))
    V = xp.conj(xp.swapaxes(Vh, -1, -2))
    if reverse:
        F = xp.conj(c)[..., None, None] * (Vh @ X @ U)
    else:
        F = UH @ X @ V
    dF = xp.diagonal(F, 0, -2, -1)
    G = -P * F
    idx = xp.arange(F.shape[-1])
    G[..., idx, idx] = (P @ dF[..., None])[..., 0]
    out = U @ G @ Vh if reverse else c[..., None, None] * (V @ G @ UH)
    return out.astype(np.result_type(A.dtype, X.dtype), copy=False)


def _adjugate_linear_vjp(g, needs, out, res, A, X, *, reverse):
    # of order ≤ 2 the adjugate is constant or linear in A: this map does not depend on A
    if needs[0] and C.peek(A).shape[-1] > 2:
        raise LinAlgError("det: third derivatives at or near a singular matrix (κ₁(A) > "
                          "u^(-1/3)) are not implemented; first and second derivatives are")
    return None, ops.fit(_adjugate_linear(A, g, reverse=not reverse), X)


def _adjugate_linear_jvp(tangents, out, res, A, X, *, reverse):
    A_dot, X_dot = tangents
    if A_dot is not None and C.peek(A).shape[-1] > 2:
        raise LinAlgError("det: third derivatives at or near a singular matrix (κ₁(A) > "
                          "u^(-1/3)) are not implemented; first and second derivatives are")
    return None if X_dot is None else _adjugate_linear(A, X_dot, reverse=reverse)


_adjugate_linear = Primitive("adjugate_derivative_svd", _adjugate_linear_impl,
                             _adjugate_linear_vjp, _adjugate_linear_jvp)


def _zero_pivot(A, factors):
    """Does some matrix of the stack have an exactly zero LU pivot?  (Decided on the
    factors; under linalgad.jit again on every replay.)"""
    def decide(v):
        d, _ = kernels_for(v).lu_diagonal(factors)
        return bool((d == 0).any())
    return C.compute(decide, (A,), decide=lambda r: r, name="det's zero-pivot test")


def _ill_conditioned(A, Ainv, power):
    """κ₁(A) = ‖A‖₁ ‖A⁻¹‖₁ > u^(−power) (or not finite) for some matrix of the stack, from
    the inverse the nonsingular formula needs anyway: there its two terms cancel to the size
    of the result, losing about κ u (a second derivative; power ½) or κ² u (a third one,
    when this rule is itself differentiated; power ⅓: at κ = 3·10⁷ a third derivative was
    off by 8·10⁻³ through the nonsingular formula)."""
    def decide(a, ai):
        xp = kernels_for(a).xp
        with np.errstate(all="ignore"):
            k = xp.abs(a).sum(axis=-2).max(axis=-1) * xp.abs(ai).sum(axis=-2).max(axis=-1)
        eps = np.finfo(a.real.dtype).eps
        return bool((~(k <= eps ** -power)).any())
    return C.compute(decide, (A, Ainv), decide=lambda r: r, name="det's condition test")


def _adjugate_inverse(A, factors, *others):
    """A⁻¹ for the nonsingular formulas, or None where the SVD form must be used (whose own
    derivative in A raises): the threshold is tighter when this rule is being traced for a
    third derivative (A or the direction a tracer)."""
    if _zero_pivot(A, factors):
        return None
    Ainv = inverse(A, factors=factors)
    traced = any(isinstance(x, Tracer) for x in (A,) + others)
    return None if _ill_conditioned(A, Ainv, 1 / 3 if traced else 1 / 2) else Ainv


def adjugate_vjp(Y_bar, needs, Y, res, A, *, factors):
    """d adj = adj tr(A⁻¹dA) − A⁻¹ dA adj  =>  Ā = A⁻ᴴ (conj(α) I − Ȳ Yᴴ), α = <Ȳ, Y>."""
    Ainv = _adjugate_inverse(A, factors, Y_bar)
    if Ainv is None:
        return (ops.fit(_adjugate_linear(A, Y_bar, reverse=True), A),)
    AinvH = ops.mH(Ainv)
    alpha = ops.sum(ops.conj(Y_bar) * Y, axis=(-2, -1))
    a = C.per_matrix_scalar(ops.conj(alpha))
    return (ops.fit(a * AinvH - ops.matmul(AinvH, ops.matmul(Y_bar, ops.mH(Y))), A),)


def adjugate_jvp(tangents, Y, res, A, *, factors):
    """Ẏ = Y tr(A⁻¹Ȧ) − A⁻¹ Ȧ Y."""
    (A_dot,) = tangents
    Ainv = _adjugate_inverse(A, factors, A_dot)
    if Ainv is None:
        return _adjugate_linear(A, A_dot, reverse=False)
    tr = ops.sum(ops.mT(Ainv) * A_dot, axis=(-2, -1))
    return Y * C.per_matrix_scalar(tr) - \
        ops.matmul(Ainv, ops.matmul(A_dot, Y))


_adjugate = Primitive("adjugate", adjugate_forward, adjugate_vjp, adjugate_jvp)


# -- slogdet ------------------------------------------------------------------------------

def slogdet_forward(A):
    K = kernels_for(A)
    xp = K.xp
    F = K.lu_factor(A, op="slogdet", singular_ok=True)
    d, perm_sign = K.lu_diagonal(F)
    # log|det| = log|Π dᵢ| from the product where it is a normal number (its rounding, a
    # few ulps, is the sum of logs' too), one log per matrix instead of n: 10,000 of order
    # 4, 0.57 -> 0.1 ms; where the product over- or underflows (large n) or is 0, the sum
    # of the logs of |dᵢ|, and the signs of the dᵢ
    with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
        p = xp.prod(d, axis=-1)
        absp = xp.abs(p)
        info = np.finfo(absp.dtype)
        normal = (absp >= info.tiny) & (absp <= info.max)
        logabs = xp.log(absp)
        sign = perm_sign * (p / absp if p.dtype.kind == "c" else xp.sign(p))
        if not bool(normal.all()):
            absd = xp.abs(d)
            logabs = xp.where(normal, logabs, xp.sum(xp.log(absd), axis=-1))
            unit = d / absd if d.dtype.kind == "c" else xp.sign(d)
            sign = xp.where(normal, sign, perm_sign * xp.prod(unit, axis=-1))
            zero = (absd == 0).any(axis=-1)
            sign = xp.where(zero, 0, sign)
    sign = sign.astype(A.dtype)
    return (sign, logabs), F


def _w(s_bar, g_bar, sign, like):
    """w = ḡ − i Im(conj(s̄) sign): the coefficient of tr(A⁻¹ dA) in dL."""
    w = g_bar
    if s_bar is not None and ops._is_complex(like):
        t = -1j * ops.imag(ops.conj(s_bar) * sign)
        w = t if w is None else w + t
    return w


def slogdet_vjp(cts, needs, out, F, A):
    s_bar, g_bar = cts
    sign, logabs = out
    w = _w(s_bar, g_bar, sign, A)
    if w is None:          # real input, cotangent on the (piecewise constant) sign only
        return (ops.zeros_like(A),)
    if _singular(logabs):
        raise LinAlgError("slogdet: the gradient of log|det(a)| at a singular matrix is "
                          "infinite")
    return (ops.fit(_slogdet_cotangent(A, w, F=F), A),)


def _slogdet_cotangent_composed(A, w, *, F):
    """Ā = w A⁻ᴴ (w per matrix): the definition, in differentiable operations."""
    return ops.mH(inverse(A, factors=F)) * C.per_matrix_scalar(w)


# At first order one kernel call: getri on the stored factors (of Aᵀ) gives A⁻ᵀ, which is
# A⁻ᴴ up to a conjugation, scaled in the same pass (no transposed copy, no mH view to
# read across, no separate scaling pass).
_slogdet_cotangent = transforms.fused(
    "slogdet_cotangent", lambda A, w, *, F: kernels_for(A).lu_inverse_h(F, w),
    _slogdet_cotangent_composed)


def slogdet_jvp(tangents, out, F, A):
    (A_dot,) = tangents
    sign, logabs = out
    if _singular(logabs):
        raise LinAlgError("slogdet: the derivative of log|det(a)| at a singular matrix is "
                          "infinite")
    z_dot = ops.sum(ops.mT(inverse(A, factors=F)) * A_dot, axis=(-2, -1))  # tr(A⁻¹Ȧ)
    if not ops._is_complex(z_dot):
        return None, z_dot
    return 1j * sign * ops.imag(z_dot), ops.real(z_dot)


_slogdet = Primitive("slogdet", slogdet_forward, slogdet_vjp, slogdet_jvp, staged=True,
                     multiple_results=True)


# -- public -------------------------------------------------------------------------------

def det(a, overwrite_a=False, check_finite=True):
    """Determinant of a square matrix (or of each matrix of a stack), differentiable.

    numpy.linalg.det / scipy.linalg.det: ``a`` is (..., n, n), the result has
    shape (...).  The gradient is ȳ·adj(a)ᴴ, the adjugate: finite at singular
    matrices too (at rank n−1 it is the rank-one matrix of the null vectors;
    at rank ≤ n−2 it is zero).  It is computed from the forward LU factors as
    det(a)·a⁻¹, or from an SVD when a pivot is exactly zero.  For large n,
    det over/underflows: use slogdet.  ``overwrite_a`` is accepted and ignored.

    Valid when: always for the value and first derivative; second derivatives
    need a nonsingular a (LinAlgError otherwise).
    """
    op = "det"
    return _det(C.prepare(op, a, check_finite))


def slogdet(a, *, check_finite=True):
    """Sign and natural log of |det(a)|, differentiable: ``(sign, logabsdet)``.

    numpy.linalg.slogdet: ``a`` is (..., n, n); ``sign`` has a's dtype (a unit
    complex number for complex input, ±1 for real), ``logabsdet`` is real.
    ``check_finite=False`` skips the input scan for infs/NaNs (as in SciPy's functions).
    A singular matrix gives (0, -inf), as NumPy.  The backward pass reuses the
    forward LU factors (getri), it does not factor again.  Real input: sign is
    piecewise constant, its cotangent is ignored.

    Valid when: a is nonsingular (at a singular matrix the derivative of
    log|det| is infinite and the derivative passes raise LinAlgError).
    """
    op = "slogdet"
    sign, logabs = _slogdet(C.prepare(op, a, check_finite))
    # one matrix, plain: NumPy scalars, as numpy's (the singular branch made 0-d arrays)
    return SlogdetResult(*(x[()] if type(x) is np.ndarray and x.ndim == 0 else x
                           for x in (sign, logabs)))


# -- registry -------------------------------------------------------------------------------

def det_reference(a):
    return np.linalg.det(a)


def slogdet_reference(a):
    return tuple(np.linalg.slogdet(a))


def _general(rng, n, batch, dtype):
    return (M.random_general(rng, n, batch, dtype),), {}


def _spd(rng, n, batch, dtype):
    return (M.random_spd(rng, n, batch, dtype),), {}


RULES = (
    Rule(
        name="det",
        fun=det,
        primitive=_det,
        domains=(
            Domain("general", _general, "well-conditioned general matrices"),
            Domain("spd", _spd, "positive definite"),
        ),
        derivation="docs/derivations/determinant.md",
        reference=det_reference,
        references=("Giles 2008", "Magnus & Neudecker, Matrix Differential Calculus"),
    ),
    Rule(
        name="slogdet",
        fun=slogdet,
        primitive=_slogdet,
        domains=(
            Domain("general", _general, "well-conditioned general matrices"),
            Domain("spd", _spd, "positive definite"),
        ),
        derivation="docs/derivations/determinant.md",
        reference=slogdet_reference,
        rtol={"float32": 2e-2, "float64": 1e-5},
        tolerance_note="complex sign = a product of n unit numbers: its rounding noise "
                       "(~n·eps) over the 2h of central differences is ~1e-6 relative at h=1e-6",
        references=("Giles 2008",),
    ),
)
