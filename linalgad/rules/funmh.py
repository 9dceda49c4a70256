"""funmh: a function of a Hermitian matrix, f(A) = V diag(f(w)) Vᴴ.   Derivation: docs/derivations/funmh.md

A = V diag(w) Vᴴ (one triangle read, as eigh), f applied to the eigenvalues.  With
Φ the matrix of first divided differences of f at the eigenvalues,

    Φᵢⱼ = (f(wᵢ) − f(wⱼ)) / (wᵢ − wⱼ),   Φᵢⱼ = (f'(wᵢ) + f'(wⱼ))/2 where |wᵢ − wⱼ| ≤ δ

(the diagonal is f'(wᵢ)), the derivative is the Daleckii–Krein map

    L(E) = V (Φ ∘ (Vᴴ E V)) Vᴴ:   Ḟ = L(Ȧ_h),   Ā_h = L(F̄) (Φ real symmetric: L is
                                                 self-adjoint), then onto the triangle read.

No eigenvalue gap is divided by (the divided difference of f takes its place, with
f' at a tie), so the gradient is exact at repeated eigenvalues and at A = I, for every
loss of f(A): the cotangents of eigh cannot carry that term (eigh.md, section 6, "the
limit of the method"), this rule does.  δ = ε^(1/3)·max|w| balances the cancellation
in the quotient (≈ ε|f|/gap) against the averaging error (≈ |f'''|·gap²/12, the
trapezoidal rule's).
"""

from __future__ import annotations

import warnings

import numpy as np

from .. import ops, transforms
from .._array_methods import NUMPY_UFUNCS
from ..backend import kernels_for, namespace_of
from ..registry import Domain, Rule
from ..tape import Primitive, Tracer
from ..testing import matrices as M
from . import _common as C
from . import _spectral as S
from .eigh import _eigh

__all__ = ["funmh", "RULES"]


# -- f and f' at the eigenvalues ------------------------------------------------------------

def _real_values(op, what, r, w):
    """r (what func or dfunc returned for w) checked: real, w's shape, w's precision (a
    constant, such as the zero derivative of sign, is broadcast)."""
    v = C.peek(r)
    wv = C.peek(w)
    if v.ndim == 0 and wv.ndim:
        r = ops.broadcast_to(r, wv.shape)
        v = C.peek(r)
    if v.shape != wv.shape:
        raise ValueError(f"{op}: {what} must act elementwise on the eigenvalues, returning "
                         f"an array of their shape {wv.shape}; got shape {v.shape}")
    if v.dtype.kind == "c":
        raise TypeError(f"{op}: {what} must return real values at the (real) eigenvalues; "
                        f"got {v.dtype}")
    return r if v.dtype == wv.dtype else ops.astype(r, wv.dtype)


def values_and_slopes(func, dfunc, w, op="funmh"):
    """(f(w), f'(w)), differentiable in w when w is traced.  Without ``dfunc``, f' is
    linalgad's forward derivative of func (elementwise: the tangent of ones)."""
    if dfunc is not None:
        return (_real_values(op, "func", func(w), w),
                _real_values(op, "dfunc", dfunc(w), w))
    prim = NUMPY_UFUNCS.get(func) if isinstance(func, np.ufunc) and func.nin == 1 else None
    if isinstance(prim, Primitive) and not isinstance(w, Tracer):
        # a unary ufunc on plain values (first order): its primitive's own derivative,
        # without tracing a jvp (20 µs at n = 64)
        f = prim.impl(w)
        df = prim.jvp((namespace_of(w).ones(w.shape, w.dtype),), f, None, w)
        if df is None:                          # a zero derivative (sign)
            df = namespace_of(w).zeros(w.shape, w.dtype)
        return _real_values(op, "func", f, w), _real_values(op, "func's derivative", df, w)
    try:
        wv = C.peek(w)
        f, df = transforms.jvp(func, (w,), (namespace_of(wv).ones(wv.shape, wv.dtype),))
    except Exception as e:
        raise TypeError(f"{op}: could not differentiate func ({type(e).__name__}: {e}); write "
                        "it with NumPy ufuncs or linalgad's functions, or pass dfunc, its "
                        "derivative") from e
    return _real_values(op, "func", f, w), _real_values(op, "func's derivative", df, w)


def tie_tolerance(dtype):
    """ε^(1/3) of dtype's precision: below this (relative to max|w|) a divided difference
    is taken as the mean of the two slopes."""
    return float(np.finfo(dtype).eps) ** (1.0 / 3.0)


def _near_pairs(w):
    """Concrete mask (..., n, n): |wᵢ − wⱼ| ≤ ε^(1/3)·max|w| (the diagonal included)."""
    xp = namespace_of(w)
    scale = xp.abs(w).max(axis=-1, keepdims=True)[..., None] * tie_tolerance(w.dtype)
    return xp.abs(w[..., :, None] - w[..., None, :]) <= scale


def divided_differences(w, f, df):
    """Φ (..., n, n): the first divided differences of f at w (f' where values nearly
    coincide), in differentiable operations."""
    near = C.compute(_near_pairs, (w,), name="funmh's tie mask")   # replayed under jit
    gap = ops.expand_dims(w, -1) - ops.expand_dims(w, -2)
    quotient = (ops.expand_dims(f, -1) - ops.expand_dims(f, -2)) / ops.where(near, 1.0, gap)
    mean = (ops.expand_dims(df, -1) + ops.expand_dims(df, -2)) * 0.5
    return ops.where(near, mean, quotient)


# -- the Daleckii–Krein map -----------------------------------------------------------------

def _frechet_ref(A, E, *, func, dfunc, lower, factors):
    """L(E) = V (Φ ∘ (Vᴴ E V)) Vᴴ for f at the Hermitian matrix read from A's triangle.

    With A traced (a derivative of this map: second order of funmh) the decomposition
    is traced again; otherwise the forward pass's factors (w, V) are used."""
    if isinstance(A, Tracer):
        w, V = _eigh(A, lower=lower)
        if S.degenerate_pairs(w, ordered=True) is not None:
            warnings.warn(
                "funmh: second derivatives at (nearly) repeated eigenvalues miss the "
                "in-cluster curvature term (the second divided differences of f are not "
                "formed; funmh.md, section 6); first derivatives are exact there.",
                S.GaugeWarning, stacklevel=2)
    else:
        w, V = factors
    f, df = values_and_slopes(func, dfunc, w)
    Vh = ops.mH(V)
    Z = ops.matmul(Vh, ops.matmul(E, V))
    return ops.matmul(ops.matmul(V, divided_differences(w, f, df) * Z), Vh)


def _frechet_kernel(A, E, *, func, dfunc, lower, factors):
    """First order: the same map on plain arrays, from the forward factors (one kernel)."""
    w, V = factors
    f, df = values_and_slopes(func, dfunc, w)
    return kernels_for(V).hermitian_frechet(w, V, f, df, E, tie_tolerance(w.dtype))


# derivatives of the map (second order of funmh) trace the reference, the decomposition
# traced again
_frechet = transforms.fused("funmh_frechet", _frechet_kernel, _frechet_ref)


# -- the primitive ----------------------------------------------------------------------------

def funmh_forward(A, *, func, dfunc, lower):
    K = kernels_for(A)
    w, V = K.eigh(A, lower=lower, op="funmh")
    fw = _real_values("funmh", "func", func(w), w)
    xp = K.xp
    F = xp.matmul(V * fw[..., None, :].astype(V.dtype, copy=False),
                  xp.conj(xp.swapaxes(V, -1, -2)))
    return F, (w, V)


def funmh_vjp(F_bar, needs, F, res, A, *, func, dfunc, lower):
    """Ā = the triangle's share of L(F̄) (L self-adjoint: Φ is real and symmetric)."""
    Ah_bar = _frechet(A, F_bar, func=func, dfunc=dfunc, lower=lower, factors=res)
    return (ops.fit(C.triangle_cotangent(Ah_bar, lower, hermitian=True), A),)


def funmh_jvp(tangents, F, res, A, *, func, dfunc, lower):
    (A_dot,) = tangents
    Ah_dot = C.from_triangle(A_dot, lower, hermitian=True)
    return _frechet(A, Ah_dot, func=func, dfunc=dfunc, lower=lower, factors=res)


_funmh = Primitive("funmh", funmh_forward, funmh_vjp, funmh_jvp, staged=True)


def funmh(a, func, dfunc=None, *, lower=True, check_finite=True):
    """f(A) for a Hermitian (real symmetric) matrix A, differentiable: V diag(f(w)) Vᴴ.

    ``a`` is (..., n, n); one triangle is read (the lower unless ``lower=False``), as
    :func:`eigh` reads it.  ``func`` maps the real eigenvalues (an array (..., n)) to
    real values of the same shape, elementwise: a NumPy ufunc (``np.exp``, ``np.sqrt``,
    ``np.log``), or any function of them written with NumPy's ufuncs or linalgad's
    functions (``lambda w: np.log1p(w * w)``), which linalgad differentiates for f'.
    ``dfunc``, f's derivative, is needed only where linalgad cannot differentiate
    ``func`` (second derivatives then differentiate ``dfunc``).  The result has a's
    dtype and is Hermitian.  scipy.linalg.funm computes the same for a general matrix
    by the Schur–Parlett method, without derivatives.

    The derivative is the Daleckii–Krein formula, V (Φ ∘ (Vᴴ dA V)) Vᴴ with Φ the
    divided differences of f at the eigenvalues (funmh.md).  Unlike a matrix function
    written through :func:`eigh` (``(V * f(w)) @ V.conj().T``), whose gradient at a
    repeated eigenvalue misses the in-cluster terms f'(λ)(Vᴴ F̄ V)ᵢⱼ, this gradient is
    exact at repeated eigenvalues and at A = I, for every loss.

    Valid when: f is differentiable at the eigenvalues (e.g. w > 0 for sqrt and log).
    Second derivatives are exact away from repeated eigenvalues; at a repeated one
    they pass through eigh's derivative, which drops the in-cluster curvature term,
    and say so with a ``GaugeWarning`` (funmh.md, section 6).  Cost: one eigh, then one product forward, four per
    derivative.
    """
    if not callable(func):
        raise TypeError(f"funmh: func must be callable; got {type(func).__name__}")
    if dfunc is not None and not callable(dfunc):
        raise TypeError(f"funmh: dfunc must be callable or None; got {type(dfunc).__name__}")
    A = C.prepare("funmh", a, check_finite)
    return _funmh(A, func=func, dfunc=dfunc, lower=bool(lower))


# -- registry -------------------------------------------------------------------------------

def _soft(w):
    """A smooth function that is not a polynomial (log(1 + e^w)), written with ufuncs."""
    return np.log1p(np.exp(w))


def funmh_reference(a, func, dfunc=None, lower=True):
    """V diag(f(w)) Vᴴ from numpy.linalg.eigh (func evaluated on plain arrays)."""
    w, V = np.linalg.eigh(a, UPLO="L" if lower else "U")
    return (V * np.asarray(func(w))[..., None, :]) @ np.conj(np.swapaxes(V, -1, -2))


def _hermitian(func, lower=True):
    def make(rng, n, batch, dtype):
        A = M.random_symmetric(rng, n, batch, dtype)
        if not lower:     # the triangle not read holds unrelated data (zero gradient)
            A = A + np.tril(M.random_general(rng, n, batch, dtype), -1)
        return (A.astype(dtype),), {"func": func, "lower": lower}
    return make


def _spd(func):
    def make(rng, n, batch, dtype):
        return (M.random_spd(rng, n, batch, dtype, cond=3.0),), {"func": func}
    return make


RULES = (
    Rule(
        name="funmh",
        fun=funmh,
        primitive=_funmh,
        domains=(
            Domain("exp", _hermitian(np.exp), "exp of a spread spectrum, lower triangle"),
            Domain("softplus-upper", _hermitian(_soft, lower=False),
                   "log(1 + e^w), upper triangle read, the other unrelated"),
            Domain("sqrt-spd", _spd(np.sqrt), "the square root of an SPD matrix"),
        ),
        derivation="docs/derivations/funmh.md",
        reference=funmh_reference,
        references=("Daleckii & Krein 1965", "Higham 2008, Functions of Matrices, §3.2",
                    "Bhatia 1997, Matrix Analysis, §V.3"),
    ),
)
