"""generalized_funm: U f(Σ) Vᴴ, f applied to the singular values.   Derivation: docs/derivations/generalized_funm.md

A = U Σ Vᴴ (thin SVD, k = min(m, n)), F = U diag(f(s)) Vᴴ: the generalized matrix
function of Hawkins and Ben-Israel (f(0) = 0 makes it independent of the null vectors).
With P = Uᴴ E V, its derivative is

    L(E) = U (Φ⁺ ∘ herm(P) + Φ⁻ ∘ skew(P)) Vᴴ
           + (I − UUᴴ) E V diag(c) Vᴴ       (m > k)
           + U diag(c) Uᴴ E (I − VVᴴ)       (n > k)

    Φ⁺ᵢⱼ = (fᵢ − fⱼ)/(sᵢ − sⱼ),  Φ⁻ᵢⱼ = (fᵢ + fⱼ)/(sᵢ + sⱼ),  cⱼ = fⱼ/sⱼ = Φ⁻ⱼⱼ,

each the mean of the two slopes (f'ᵢ + f'ⱼ)/2 where its denominator is within
δ = ε^(1/3)·max s of zero (Φ⁺: cancellation against the averaging error, as funmh),
or δ₀ = max(m, n)·ε·max s (Φ⁻ and c: a sum of nonnegative values, no cancellation;
only a value that is 0 to rounding takes the slope).  L is self-adjoint (Φ± real symmetric, herm and skew the
orthogonal projections): Ḟ = L(Ȧ), Ā = L(F̄).  No gap is divided by, so the gradient is
exact at repeated singular values (svd.md section 6, "the limit of the method": the
route through svd's cotangents cannot carry the in-cluster terms) and, with f(0) = 0,
at rank deficiency.  Its derivative along A (second order) is funmh's second
Daleckii–Krein map of the Hermitian dilation, exact at ties too (section 4).
"""

from __future__ import annotations

import warnings

import numpy as np

from .. import ops, transforms
from ..backend import kernels_for, namespace_of
from ..registry import Domain, Rule
from ..tape import Primitive, Tracer
from ..testing import matrices as M
from . import _common as C
from . import _spectral as S
from .funmh import (_real_values, _second_map_plain, bilinear_primitive, divided_differences,
                    frechet_primitive, tie_tolerance, values_and_slopes,
                    values_slopes_curvatures)
from .svd import _svd

__all__ = ["generalized_funm", "RULES"]

OP = "generalized_funm"


def zero_tolerance(dtype, m, n):
    """max(m, n)·ε: below this (relative to max s) a sum of singular values counts as 0
    (the rank tolerance of numpy.linalg.matrix_rank)."""
    return max(m, n) * float(np.finfo(dtype).eps)


def _zero_sums(s, m, n):
    """Concrete mask (..., k, k): sᵢ + sⱼ ≤ δ₀ = max(m, n)·ε·max s, per matrix."""
    top = s.max(axis=-1, keepdims=True)[..., None]
    return s[..., :, None] + s[..., None, :] <= top * zero_tolerance(s.dtype, m, n)


def coefficients(s, f, df, m, n):
    """(Φ⁺, Φ⁻) (..., k, k) in differentiable operations (the masks held fixed): Φ⁺ the
    divided differences of funmh (s ≥ 0, so its max|w| is max s), Φ⁻ the quotients of
    sums."""
    plus = divided_differences(s, f, df)
    small = C.compute(lambda v: _zero_sums(v, m, n), (s,),
                      name="generalized_funm's zero mask")             # replayed under jit
    mean = (ops.expand_dims(df, -1) + ops.expand_dims(df, -2)) * 0.5
    total = ops.expand_dims(s, -1) + ops.expand_dims(s, -2)
    minus = ops.where(small, mean, (ops.expand_dims(f, -1) + ops.expand_dims(f, -2))
                      / ops.where(small, 1.0, total))
    return plus, minus


def _frechet_ref(A, E, *, func, dfunc, factors):
    """L(E) of the module docstring, in differentiable operations.  With A traced (the
    reference of the second-order map, differentiated: third order) the SVD is traced
    again; otherwise the forward pass's factors are used."""
    if isinstance(A, Tracer):
        U, s, Vh = _svd(A, full_matrices=False)
        if S.degenerate_pairs(s, relative=True, ordered=True) is not None:
            warnings.warn(
                f"{OP}: third derivatives at (nearly) repeated singular values miss "
                "in-cluster terms (they pass through svd's derivative; generalized_funm.md, "
                "section 6); first and second derivatives are exact there.",
                S.GaugeWarning, stacklevel=2)
    else:
        U, s, Vh = factors
    m, k = C.peek(U).shape[-2:]
    n = C.peek(Vh).shape[-1]
    f, df = values_and_slopes(func, dfunc, s, OP)
    plus, minus = coefficients(s, f, df, m, n)
    V = ops.mH(Vh)
    UhE = ops.matmul(ops.mH(U), E) if n > k else None
    EV = ops.matmul(E, V) if n <= k else None
    P = ops.matmul(UhE, V) if EV is None else ops.matmul(ops.mH(U), EV)
    Ph = ops.mH(P)
    X = (plus + minus) * 0.5 * P + (plus - minus) * 0.5 * Ph
    out = ops.matmul(ops.matmul(U, X), Vh)
    c = ops.diagonal(minus, 0, -2, -1)
    if m > k:        # (I − UUᴴ) E V diag(c) Vᴴ
        out = out + ops.matmul((EV - ops.matmul(U, P)) * ops.expand_dims(c, -2), Vh)
    if n > k:        # U diag(c) Uᴴ E (I − VVᴴ)
        out = out + ops.matmul(U, ops.expand_dims(c, -1) * (UhE - ops.matmul(P, Vh)))
    return out


def _frechet_kernel(A, E, *, func, dfunc, factors):
    """L(E) on plain arrays, from the forward factors (one kernel)."""
    U, s, Vh = factors
    f, df = values_and_slopes(func, dfunc, s, OP)
    return kernels_for(U).svd_frechet(U, s, Vh, f, df, E, tie_tolerance(s.dtype),
                                      zero_tolerance(s.dtype, U.shape[-2], Vh.shape[-1]))


# -- second order: through the Hermitian dilation --------------------------------------------
#
# F = [f₀(D)]₁₂ for D = [[0, A], [Aᴴ, 0]] and the odd extension f₀(x) = sign(x) f(|x|),
# f₀(0) = 0 (generalized_funm.md, section 4), so the derivative of L along A is funmh's
# second Daleckii–Krein map of D, its upper right block:
#     d/dt L(A + tH; E) = [S_D(D_E, D_H)]₁₂,     D_X = [[0, X], [Xᴴ, 0]],
# and, by funmh's adjoint identity (D_E is Hermitian), the cotangent of A for a cotangent
# Ȳ of L is X₁₂ + X₂₁ᴴ with X = S_D(D_E, [[0, Ȳ], [0, 0]]).

def _dilation(U, s, Vh, func, dfunc):
    """The eigendecomposition of D from the thin SVD, and f₀, f₀'' and the divided
    differences Φ_D at its eigenvalues, ascending: −s₁ … −s_k, |m − n| zeros, s_k … s₁
    (plain arrays).  Eigenvectors [uᵢ; ∓vᵢ]/√2, and [U⊥; 0] or [0; V⊥] for the zeros."""
    xp = namespace_of(U)
    m, k = U.shape[-2:]
    n = Vh.shape[-1]
    batch = U.shape[:-2]
    f, df, d2f = values_slopes_curvatures(func, dfunc, s, OP)
    plus, minus = coefficients(s, f, df, m, n)              # (..., k, k), s descending
    z = m + n - 2 * k
    r = 2.0 ** -0.5                                          # a Python float: keeps float32
    V = xp.conj(xp.swapaxes(Vh, -1, -2))
    zero_vectors = xp.zeros(batch + (m + n, z), dtype=U.dtype)
    if m > k:
        zero_vectors[..., :m, :] = xp.linalg.qr(U, mode="complete")[0][..., :, k:]
    elif n > k:
        zero_vectors[..., m:, :] = xp.linalg.qr(V, mode="complete")[0][..., :, k:]
    VD = xp.concatenate([xp.concatenate([U * r, -V * r], axis=-2), zero_vectors,
                         xp.concatenate([U[..., ::-1] * r, V[..., ::-1] * r], axis=-2)],
                        axis=-1)
    zeros = xp.zeros(batch + (z,), dtype=s.dtype)
    wD = xp.concatenate([-s, zeros, s[..., ::-1]], axis=-1)
    d2D = xp.concatenate([-d2f, zeros, d2f[..., ::-1]], axis=-1)
    N = m + n
    phi = xp.zeros(batch + (N, N), dtype=s.dtype)
    lo, hi = slice(0, k), slice(k + z, N)
    rev = (Ellipsis, slice(None, None, -1), slice(None, None, -1))
    phi[..., lo, lo] = plus                                  # f₀[−sᵢ, −sⱼ] = Φ⁺ᵢⱼ
    phi[..., hi, hi] = plus[rev]
    phi[..., lo, hi] = minus[..., :, ::-1]                   # f₀[−sᵢ, sⱼ] = Φ⁻ᵢⱼ
    phi[..., hi, lo] = minus[..., ::-1, :]
    c = xp.diagonal(minus, 0, -2, -1)                        # f₀[±sᵢ, 0] = fᵢ/sᵢ
    phi[..., lo, k:k + z] = c[..., :, None]
    phi[..., k:k + z, lo] = c[..., None, :]
    phi[..., hi, k:k + z] = c[..., ::-1, None]
    phi[..., k:k + z, hi] = c[..., None, ::-1]
    # f₀[0, 0] and f₀''(0) multiply only entries of the zero block of D_E and D_H, which
    # vanish: any finite value does (0)
    return wD, VD, phi, d2D


def _dilate(X, lower_left=True):
    """[[0, X], [Xᴴ, 0]] (or [[0, X], [0, 0]]), plain arrays."""
    xp = namespace_of(X)
    m, n = X.shape[-2:]
    D = xp.zeros(X.shape[:-2] + (m + n, m + n), dtype=X.dtype)
    D[..., :m, m:] = X
    if lower_left:
        D[..., m:, :m] = xp.conj(xp.swapaxes(X, -1, -2))
    return D


def _second_kernel(A, E, X, *, func, dfunc, factors, adjoint):
    """adjoint=False: [S_D(D_E, D_X)]₁₂, the derivative of L(E) along X;  adjoint=True:
    Y₁₂ + Y₂₁ᴴ with Y = S_D(D_E, [[0, X], [0, 0]]), the cotangent of A for a cotangent X
    of L(E).  On the forward factors."""
    U, s, Vh = factors
    m = U.shape[-2]
    wD, VD, phi, d2D = _dilation(U, s, Vh, func, dfunc)
    N, z = wD.shape[-1], wD.shape[-1] - 2 * s.shape[-1]
    skip = None
    if z > 1:          # the zero block's entries land in the (1, 1) or (2, 2) block: unread
        skip = namespace_of(U).zeros((N, N), dtype=bool)
        k = s.shape[-1]
        skip[k:k + z, k:k + z] = True
    Y = _second_map_plain(wD, VD, phi, d2D, _dilate(E), _dilate(X, lower_left=not adjoint),
                          skip)
    if not adjoint:
        return Y[..., :m, m:]
    xp = namespace_of(Y)
    return Y[..., :m, m:] + xp.conj(xp.swapaxes(Y[..., m:, :m], -1, -2))


def _second_ref(A, E, X, *, func, dfunc, factors, adjoint):
    """The same by differentiating L's definition through svd's rules (its derivatives:
    third order, exact away from repeated singular values)."""
    def first(a):
        return _frechet_ref(a, E, func=func, dfunc=dfunc, factors=factors)
    if not adjoint:
        return transforms.jvp(first, (A,), (X,))[1]
    return transforms.vjp(first, A)[1](X)[0]


def _second_adjoints(Z, A, E, X, *, adjoint, **params):
    """For a cotangent Z.  With T_E(X) = [S_D(D_E, D_X)]₁₂ (adjoint=False; symmetric,
    T_E(X) = T_X(E)) and G(E, Y) = T_E*(Y) (adjoint=True): Ē, X̄ of T are G(X, Z), G(E, Z);
    Ē, Ȳ of G are G(Z, Y) and T_E(Z)."""
    if not adjoint:
        return (_second(A, X, Z, adjoint=True, **params),
                _second(A, E, Z, adjoint=True, **params))
    return (_second(A, Z, X, adjoint=True, **params),
            _second(A, E, Z, adjoint=False, **params))


_second = bilinear_primitive("generalized_funm_second_frechet", _second_kernel, _second_ref,
                             _second_adjoints)


_frechet = frechet_primitive(
    "generalized_funm_frechet", _frechet_kernel,
    lambda A, E, A_dot, **params: _second(A, E, A_dot, adjoint=False, **params),
    lambda A, E, Y, **params: _second(A, E, Y, adjoint=True, **params))


def generalized_funm_forward(A, *, func, dfunc):
    K = kernels_for(A)
    U, s, Vh = K.svd(A, full_matrices=False, compute_uv=True, op=OP)
    fs = _real_values(OP, "func", func(s), s)
    return K.xp.matmul(U * fs[..., None, :].astype(U.dtype, copy=False), Vh), (U, s, Vh)


def generalized_funm_vjp(F_bar, needs, F, res, A, *, func, dfunc):
    """Ā = L(F̄): the map is self-adjoint."""
    return (ops.fit(_frechet(A, F_bar, func=func, dfunc=dfunc, factors=res), A),)


def generalized_funm_jvp(tangents, F, res, A, *, func, dfunc):
    return _frechet(A, tangents[0], func=func, dfunc=dfunc, factors=res)


_generalized_funm = Primitive("generalized_funm", generalized_funm_forward, generalized_funm_vjp,
                              generalized_funm_jvp, staged=True)


def generalized_funm(a, func, dfunc=None, *, check_finite=True):
    """U diag(f(s)) Vᴴ for a matrix A = U diag(s) Vᴴ (thin SVD), differentiable.

    The generalized matrix function (Hawkins & Ben-Israel 1973; Arrigo, Benzi & Fenu
    2016) of ``a`` (..., m, n), any shape: f acts on the singular values.
    ``func`` maps them (an array (..., k), k = min(m, n), nonnegative) to real values
    of the same shape, elementwise: a NumPy ufunc (``np.tanh``, ``np.sin``) or a
    function written with NumPy's ufuncs or linalgad's functions, which linalgad
    differentiates for f'; ``dfunc``, f's derivative, only where it cannot.  f = 1
    gives the polar factor U Vᴴ, f(s) = s gives A itself, f(s) = 1/s (on full-rank
    A) the pseudo-inverse's transpose conjugate.

    The derivative (generalized_funm.md) uses the divided differences of f and the
    quotients (f(sᵢ) + f(sⱼ))/(sᵢ + sⱼ), never a gap: unlike the same matrix written
    through :func:`svd` (``(U * f(s)) @ Vh``), whose gradient at a repeated singular
    value misses the in-cluster terms, it is exact at repeated singular values, A = I
    included.

    Valid when: f is differentiable at the singular values, and f(0) = 0 where A is
    rank deficient (otherwise F depends on the singular vectors LAPACK picks for the
    zero values, as U Vᴴ does; the derivative uses f(s)/s → f'(0) at s → 0, so
    ``func`` should be accurate near 0 — ``np.expm1``, not ``np.exp(s) - 1``).  Second
    derivatives are exact too, at repeated singular values included: funmh's second
    Daleckii–Krein map of the Hermitian dilation [[0, A], [Aᴴ, 0]] (generalized_funm.md,
    section 4).  Third derivatives at a repeated singular value pass through svd's and
    say so with a ``GaugeWarning``.  Cost: one thin SVD and one product forward; four
    products per first derivative; a second derivative works on the dilation, of order
    m + n (ten products, or the entrywise sums where its eigenvalues tie).
    """
    if not callable(func):
        raise TypeError(f"{OP}: func must be callable; got {type(func).__name__}")
    if dfunc is not None and not callable(dfunc):
        raise TypeError(f"{OP}: dfunc must be callable or None; got {type(dfunc).__name__}")
    A = C.prepare(OP, a, check_finite, square=False)
    return _generalized_funm(A, func=func, dfunc=dfunc)


# -- registry -------------------------------------------------------------------------------

def generalized_funm_reference(a, func, dfunc=None):
    """U diag(f(s)) Vᴴ from numpy.linalg.svd (func evaluated on plain arrays)."""
    U, s, Vh = np.linalg.svd(a, full_matrices=False)
    return (U * np.asarray(func(s))[..., None, :]) @ Vh


def _soft_sign(s):
    """s/(1 + s): f(0) = 0, not odd, not a polynomial; written with ufuncs."""
    return s / (1.0 + s)


def _general(m, n, func):
    def make(rng, _n, batch, dtype):
        A = M.random_general(rng, max(m, n), batch, dtype, cond=3.0)[..., :m, :n]
        return (np.ascontiguousarray(A),), {"func": func}
    return make


def _repeated_values(m, n, func):
    def make(rng, _n, batch, dtype):
        """Singular values (2, 1, 1, …): a repeated one, where every derivative, second
        order included, is exact (generalized_funm.md, sections 2 and 4)."""
        k = min(m, n)
        s = np.array([2.0] + [1.0] * (k - 1))
        U = M.random_orthogonal(rng, m, batch, dtype)[..., :, :k]
        V = M.random_orthogonal(rng, n, batch, dtype)[..., :, :k]
        A = (U * s.astype(U.real.dtype)) @ np.conj(np.swapaxes(V, -1, -2))
        return (np.ascontiguousarray(A.astype(dtype)),), {"func": func}
    return make


RULES = (
    Rule(
        name="generalized_funm",
        fun=generalized_funm,
        primitive=_generalized_funm,
        domains=(
            Domain("tanh-square", _general(4, 4, np.tanh), "a square matrix, f = tanh"),
            Domain("soft-tall", _general(5, 3, _soft_sign), "tall 5×3, f(s) = s/(1 + s)"),
            Domain("sin-wide", _general(3, 5, np.sin), "wide 3×5, f = sin"),
            Domain("tanh-repeated-tall", _repeated_values(5, 3, np.tanh),
                   "tall 5×3 with singular values (2, 1, 1), f = tanh"),
        ),
        derivation="docs/derivations/generalized_funm.md",
        reference=generalized_funm_reference,
        references=("Hawkins & Ben-Israel 1973", "Arrigo, Benzi & Fenu 2016",
                    "Noferini 2017"),
    ),
)
