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
limit of the method"), this rule does.  Second derivatives are exact there too: the
derivative of L along A is the second Daleckii–Krein map, with the second divided
differences of f (section 4).  δ = ε^(1/3)·max|w| balances the cancellation
in the quotient (≈ ε|f|/gap) against the averaging error (≈ |f'''|·gap²/12, the
trapezoidal rule's).
"""

from __future__ import annotations

import functools
import warnings

import numpy as np

from .. import ops, transforms
from .._array_methods import NUMPY_UFUNCS
from ..backend import kernels_for, namespace_of, near_slopes, pair_scale
from ..registry import Domain, Rule
from ..tape import Primitive, Tracer
from ..testing import matrices as M
from . import _common as C
from . import _spectral as S
from .eigh import _eigh

__all__ = ["funmh", "RULES"]


# -- f and f' at the eigenvalues ------------------------------------------------------------

def elementwise_result(op, what, r, w):
    """r (what func, dfunc or a derivative returned for the eigenvalues w) in w's shape: a
    constant (such as the zero derivative of sign) broadcast, any other shape refused."""
    v = C.peek(r)
    wv = C.peek(w)
    if v.ndim == 0 and wv.ndim:
        r = ops.broadcast_to(r, wv.shape)
        v = C.peek(r)
    if v.shape != wv.shape:
        raise ValueError(f"{op}: {what} must act elementwise on the eigenvalues, returning "
                         f"an array of their shape {wv.shape}; got shape {v.shape}")
    return r


def _real_values(op, what, r, w):
    """r (what func or dfunc returned for w) checked: real, w's shape, w's precision."""
    r = elementwise_result(op, what, r, w)
    v, wv = C.peek(r), C.peek(w)
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
    """ε^(1/3) of dtype's precision: below this (relative to max|w| and to the scale on
    which f varies near the pair: ``backend.near_slopes``) a divided difference is taken
    as the mean of the two slopes."""
    return float(np.finfo(dtype).eps) ** (1.0 / 3.0)


def _near_pairs(w, f, df):
    """Concrete mask (..., n, n) of the pairs taken as tied (the diagonal included)."""
    return near_slopes(namespace_of(w), w, f, df, tie_tolerance(w.dtype))


def divided_differences(w, f, df):
    """Φ (..., n, n): the first divided differences of f at w (f' where values nearly
    coincide), in differentiable operations."""
    near = C.compute(_near_pairs, (w, f, df), name="funmh's tie mask")   # replayed under jit
    gap = ops.expand_dims(w, -1) - ops.expand_dims(w, -2)
    quotient = (ops.expand_dims(f, -1) - ops.expand_dims(f, -2)) / ops.where(near, 1.0, gap)
    mean = (ops.expand_dims(df, -1) + ops.expand_dims(df, -2)) * 0.5
    return ops.where(near, mean, quotient)


# -- the Daleckii–Krein map and its derivative -------------------------------------------------
#
# The first-order map L(A; E) = V (Φ ∘ (Vᴴ E V)) Vᴴ is a primitive of its own, so that its
# derivative along A is the second Daleckii–Krein map (funmh.md, section 4) instead of a
# trace through eigh, whose cotangents lose the in-cluster terms at repeated eigenvalues:
#
#     d/dt L(A + tH; E) = V (B(Ẽ, H̃) + B(H̃, Ẽ)) Vᴴ,   X̃ = Vᴴ X V,
#     B(X, Y)ᵢⱼ = Σₖ f[wᵢ, wₖ, wⱼ] Xᵢₖ Yₖⱼ,
#
# f[·,·,·] the second divided differences of f.  L is self-adjoint in E; the adjoint of the
# A-derivative is the same bilinear map with Eᴴ: Ā_h = V (B(Ẽᴴ, Ỹ) + B(Ỹ, Ẽᴴ)) Vᴴ.

def values_slopes_curvatures(func, dfunc, w, op="funmh"):
    """(f(w), f'(w), f''(w)), differentiable in w when w is traced: f'' is linalgad's
    forward derivative of f' (of ``dfunc`` when given, else of func's own derivative)."""
    wv = C.peek(w)
    ones = namespace_of(wv).ones(wv.shape, wv.dtype)
    f = _real_values(op, "func", func(w), w)
    slope = dfunc if dfunc is not None else (
        lambda x: transforms.jvp(func, (x,), (ones,))[1])
    try:
        df, d2f = transforms.jvp(slope, (w,), (ones,))
    except Exception as e:
        what = "dfunc" if dfunc is not None else "func twice"
        raise TypeError(f"{op}: second derivatives need f'', and linalgad could not "
                        f"differentiate {what} ({type(e).__name__}: {e}); write it with "
                        "NumPy ufuncs or linalgad's functions") from e
    return (f, _real_values(op, "func's derivative", df, w),
            _real_values(op, "func's second derivative", d2f, w))


def second_tie_tolerance(dtype):
    """ε^(1/4): three eigenvalues within this (relative to max|w|) take the mean of f''/2
    as their second divided difference (the quotient's cancellation, about ε/spread²,
    meets the error of that mean, about f⁽⁴⁾·spread²)."""
    return float(np.finfo(dtype).eps) ** 0.25


def second_near_bound(xp, w, df, d2f):
    """The spread (..., n, n) of a pair (lo, hi) below which a triple spanning it takes the
    mean of f''/2 as its second divided difference: ε^(1/4)·max|w|, and ε^(1/4) times the
    scale on which f' varies near the pair (``backend.pair_scale`` of f'; log at
    eigenvalues 0.006 and 0.01 of a matrix whose largest is 1000 varies on a scale of
    0.01 there, and the mean of f''/2 put funmh(A, log)'s Hessian 1.5% off).  ``df`` None:
    the first bound alone (..., 1, 1)."""
    cap = xp.abs(w).max(axis=-1)[..., None, None]
    if df is not None:
        cap = xp.minimum(cap, pair_scale(xp, w, df, d2f))
    return cap * second_tie_tolerance(w.dtype)


def _near_triples(w, df=None, d2f=None, *, lo, hi):
    """Concrete mask (..., *lo.shape): the three values within ``second_near_bound`` of
    the pair (lo, hi) they span."""
    xp = namespace_of(w)
    bound = second_near_bound(xp, w, df, d2f)
    bound = xp.broadcast_to(bound, bound.shape[:-2] + (w.shape[-1],) * 2)
    return (w[..., hi] - w[..., lo]) <= bound[..., lo, hi]


def _second_dd(w, phi, d2f, i, k, j, df=None):
    """f[wᵢ, wₖ, wⱼ] over index arrays i, k, j (broadcasting), w ascending: the quotient
    over the widest of the three pairs, (Φ[mid, hi] − Φ[lo, mid]) / (w_hi − w_lo), or
    (f''ᵢ + f''ₖ + f''ⱼ)/6 where the three lie within ``second_near_bound``."""
    lo = np.minimum(np.minimum(i, k), j)
    hi = np.maximum(np.maximum(i, k), j)
    mid = i + k + j - lo - hi
    near = C.compute(functools.partial(_near_triples, lo=lo, hi=hi),
                     (w,) if df is None else (w, df, d2f), name="funmh's near triples")
    spread = ops.getitem(w, (Ellipsis, hi)) - ops.getitem(w, (Ellipsis, lo))
    quotient = ((ops.getitem(phi, (Ellipsis, mid, hi)) - ops.getitem(phi, (Ellipsis, lo, mid)))
                / ops.where(near, 1.0, spread))
    curvature = (ops.getitem(d2f, (Ellipsis, i)) + ops.getitem(d2f, (Ellipsis, k))
                 + ops.getitem(d2f, (Ellipsis, j))) * (1.0 / 6.0)
    return ops.where(near, curvature, quotient)


def _second_map(w, V, phi, d2f, P, Q, df=None):
    """V (B(P̃, Q̃) + B(Q̃, P̃)) Vᴴ, the definition, in differentiable operations (the
    reference that third order differentiates): every entry Σₖ f[wᵢ, wₖ, wⱼ] (P̃ᵢₖ Q̃ₖⱼ +
    Q̃ᵢₖ P̃ₖⱼ) by the stable triple formula, the sum over k in chunks of about 2²⁰ entries
    of the (..., n, c, n) tensor (O(n³) elementwise; the kernel, `_second_map_plain`,
    evaluates the same sums by products)."""
    Vh = ops.mH(V)
    Pt = ops.matmul(Vh, ops.matmul(P, V))
    Qt = ops.matmul(Vh, ops.matmul(Q, V))
    shape = ops._shape(Pt)
    n = shape[-1]
    step = max(1, min(n, (1 << 20) // max(1, n * n * int(np.prod(shape[:-2])))))
    R = None
    for k0 in range(0, n, step):
        ks = np.arange(k0, min(n, k0 + step))
        f3 = _second_dd(w, phi, d2f, np.arange(n)[:, None, None], ks[None, :, None],
                        np.arange(n)[None, None, :], df)               # (..., n, c, n)
        cols, rows = (Ellipsis, slice(None), ks), (Ellipsis, ks, slice(None))
        X = (ops.expand_dims(ops.getitem(Pt, cols), -1)
             * ops.expand_dims(ops.getitem(Qt, rows), -3)
             + ops.expand_dims(ops.getitem(Qt, cols), -1)
             * ops.expand_dims(ops.getitem(Pt, rows), -3))
        term = ops.sum(f3 * X, axis=-2)
        R = term if R is None else R + term
    return ops.matmul(V, ops.matmul(R, Vh))


def _second_map_plain(w, V, phi, d2f, P, Q, skip=None, df=None):
    """The sums of `_second_map` on plain arrays (the kernel): every entry (i, j) whose
    eigenvalues are more than ε^(1/4)·max|w| apart by the products of the fast path,
    since f[wᵢ, wₖ, wⱼ] = (Φᵢₖ − Φₖⱼ)/(wᵢ − wⱼ) for every k then, ties among the other
    eigenvalues included; pairs inside a tight cluster (spread within the bound) by
    products too (below); the rest (pairs in a loose chain of near eigenvalues) by the
    stable triple formula, summed over k in chunks (c²·n gathers for a chain of c, not
    n³).  ``skip`` (n, n), optional: entries the caller does not read,
    left 0 (the block of generalized_funm's dilation between its |m − n| structural
    zero eigenvalues)."""
    xp = namespace_of(V)
    Vh = xp.conj(xp.swapaxes(V, -1, -2))
    Pt = xp.matmul(Vh, xp.matmul(P, V))
    Qt = xp.matmul(Vh, xp.matmul(Q, V))
    PP, QQ = phi * Pt, phi * Qt
    R = (xp.matmul(PP, Qt) - xp.matmul(Pt, QQ)) + (xp.matmul(QQ, Pt) - xp.matmul(Qt, PP))
    gap = w[..., :, None] - w[..., None, :]
    n = w.shape[-1]
    top = xp.broadcast_to(second_near_bound(xp, w, df, d2f), gap.shape)   # (..., n, n)
    near = xp.abs(gap) <= top
    R /= xp.where(near, 1, gap)
    neighbours = xp.diagonal(top, 1, -2, -1)                             # (..., n − 1)
    if n > 1 and bool((w[..., 1:] - w[..., :-1] <= neighbours).any()):
        # tight clusters (runs of eigenvalues, each within the bound of the next, whose
        # whole spread is within it too): inside one every triple is near, the mean of
        # f''/2; for k outside, f[wᵢ, wₖ, wⱼ] = (Φₖᵢ − Φᵢⱼ)/(wₖ − wⱼ), a quotient over a
        # far pair: products again (A = I at n = 256: 0.9 s by the sums, 30 ms so)
        starts = xp.concatenate([xp.ones(w.shape[:-1] + (1,), dtype=bool),
                                 w[..., 1:] - w[..., :-1] > neighbours], axis=-1)
        cid = xp.cumsum(starts, axis=-1)
        same = cid[..., :, None] == cid[..., None, :]
        span = (xp.where(same, w[..., None, :], -xp.inf).max(axis=-1)
                - xp.where(same, w[..., None, :], xp.inf).min(axis=-1))
        # the whole run within the least bound of its pairs: every triple in it is near
        least = xp.where(same, top, xp.inf).min(axis=-1)
        least = xp.where(same, least[..., None, :], xp.inf).min(axis=-1)
        tight = same & (span <= least)[..., :, None]
        far = xp.where(same, 0, 1 / xp.where(same, 1, gap))             # [k, j]
        inside = same.astype(w.dtype)
        d = d2f * (1.0 / 6.0)
        C2 = None
        for X, Y in ((Pt, Qt), (Qt, Pt)):
            XG = xp.matmul(X, far * Y)
            XN = xp.matmul(X, inside * Y)
            term = (xp.matmul(phi * X, far * Y) - phi * XG
                    + d[..., :, None] * XN + xp.matmul(X * d[..., None, :], inside * Y)
                    + XN * d[..., None, :])
            C2 = term if C2 is None else C2 + term
        R = xp.where(tight, C2, R)
        near = near & ~tight
    shape = R.shape
    B = int(np.prod(shape[:-2]))
    Rf = R.reshape(B, n, n)
    wf, pf, df = w.reshape(B, n), phi.reshape(B, n, n), d2f.reshape(B, n)
    Pf, Qf = Pt.reshape(B, n, n), Qt.reshape(B, n, n)
    bound = top.reshape(B, n, n)
    wanted = near if skip is None else near & ~skip
    b_all, i_all, j_all = xp.nonzero(wanted.reshape(B, n, n))
    if skip is not None:
        Rf[:, skip] = 0
    k = xp.arange(n)[None, :]
    step = max(1, (1 << 20) // n)
    for s0 in range(0, int(b_all.shape[0]), step):
        b, i, j = (x[s0:s0 + step, None] for x in (b_all, i_all, j_all))
        lo = xp.minimum(xp.minimum(i, k), j)
        hi = xp.maximum(xp.maximum(i, k), j)
        mid = i + k + j - lo - hi
        spread = wf[b, hi] - wf[b, lo]
        close = spread <= bound[b, lo, hi]
        f3 = xp.where(close, (df[b, i] + df[b, k] + df[b, j]) * (1.0 / 6.0),
                      (pf[b, mid, hi] - pf[b, lo, mid]) / xp.where(close, 1, spread))
        terms = f3 * (Pf[b, i, k] * Qf[b, k, j] + Qf[b, i, k] * Pf[b, k, j])
        Rf[b[:, 0], i[:, 0], j[:, 0]] = terms.sum(axis=-1)
    return xp.matmul(V, xp.matmul(Rf.reshape(shape), Vh))


def _second_kernel(A, P, Q, *, func, dfunc, lower, factors):
    """The second map on plain arrays, from the forward pass's factors."""
    w, V = factors
    f, df, d2f = values_slopes_curvatures(func, dfunc, w)
    return _second_map_plain(w, V, divided_differences(w, f, df), d2f, P, Q, df=df)


def _second_ref(A, P, Q, *, func, dfunc, lower, factors):
    """The same with the decomposition traced again (its derivatives: third order of
    funmh, exact away from repeated eigenvalues)."""
    w, V = _eigh(A, lower=lower)
    if S.degenerate_pairs(w, ordered=True) is not None:
        warnings.warn(
            "funmh: third derivatives at (nearly) repeated eigenvalues miss in-cluster "
            "terms (they pass through eigh's derivative; funmh.md, section 6); first and "
            "second derivatives are exact there.", S.GaugeWarning, stacklevel=2)
    f, df, d2f = values_slopes_curvatures(func, dfunc, w)
    return _second_map(w, V, divided_differences(w, f, df), d2f, P, Q, df=df)


def bilinear_primitive(name, kernel, reference, adjoints):
    """The primitive of a second map M(A; P, Q), linear in P and in Q: its derivatives
    in P and Q are M itself again (the kernel: exact, and no decomposition traced), with
    ``adjoints(Z, A, P, Q, **params)`` → (P̄, Q̄) for a cotangent Z (built from M); only
    its derivative along A (third order) traces ``reference(A, P, Q, **params)``."""
    def along_a(A, P, Q, params):
        return lambda a: reference(a, P, Q, **params)

    def vjp(Z, needs, out, res, A, P, Q, **params):
        A_bar = None
        if needs[0]:
            A_bar = ops.fit(transforms.vjp(along_a(A, P, Q, params), A)[1](Z)[0], A)
        P_bar, Q_bar = adjoints(Z, A, P, Q, **params)
        return (A_bar, ops.fit(P_bar, P) if needs[1] else None,
                ops.fit(Q_bar, Q) if needs[2] else None)

    def jvp(tangents, out, res, A, P, Q, **params):
        A_dot, P_dot, Q_dot = tangents
        parts = [prim(A, P_dot, Q, **params) if P_dot is not None else None,
                 prim(A, P, Q_dot, **params) if Q_dot is not None else None,
                 transforms.jvp(along_a(A, P, Q, params), (A,), (A_dot,))[1]
                 if A_dot is not None else None]
        parts = [p for p in parts if p is not None]
        return None if not parts else functools.reduce(lambda x, y: x + y, parts)

    vjp.__name__, jvp.__name__ = f"{name}_vjp", f"{name}_jvp"
    prim = Primitive(name, kernel, vjp, jvp)
    return prim


# S(P, Q) is symmetric, and ⟨Z, S(P, Q)⟩ = ⟨S(Pᴴ, Z), Q⟩ (section 4): P̄ = S(Qᴴ, Z), Q̄ = S(Pᴴ, Z)
_second = bilinear_primitive(
    "funmh_second_frechet", _second_kernel, _second_ref,
    lambda Z, A, P, Q, **params: (_second(A, ops.mH(Q), Z, **params),
                                  _second(A, ops.mH(P), Z, **params)))


def _frechet_impl(A, E, *, func, dfunc, lower, factors):
    """L(A; E) on plain arrays from the forward factors (one kernel)."""
    w, V = factors
    f, df = values_and_slopes(func, dfunc, w)
    return kernels_for(V).hermitian_frechet(w, V, f, df, E, tie_tolerance(w.dtype))


def frechet_primitive(name, impl, along_a, along_a_adjoint, self_adjoint=True):
    """The primitive of a Fréchet map L(A; E) (funmh's, generalized_funm's and funm's):
    linear in E, so its derivative in E is L itself, and so is its adjoint where L is
    self-adjoint; otherwise (``self_adjoint=False``, funm's) the adjoint is L(A; Ȳᴴ)ᴴ.
    Along A, ``along_a(A, E, Ȧ, **params)`` and its adjoint ``along_a_adjoint(A, E, Ȳ,
    **params)`` (the cotangent of A for a cotangent Ȳ of L)."""
    def vjp(Y, needs, out, res, A, E, **params):
        A_bar = ops.fit(along_a_adjoint(A, E, Y, **params), A) if needs[0] else None
        E_bar = None
        if needs[1]:
            E_bar = prim(A, Y, **params) if self_adjoint else \
                ops.mH(prim(A, ops.mH(Y), **params))
            E_bar = ops.fit(E_bar, E)
        return A_bar, E_bar

    def jvp(tangents, out, res, A, E, **params):
        A_dot, E_dot = tangents
        t = None if E_dot is None else prim(A, E_dot, **params)
        if A_dot is not None:
            s = along_a(A, E, A_dot, **params)
            t = s if t is None else t + s
        return t

    vjp.__name__, jvp.__name__ = f"{name}_vjp", f"{name}_jvp"
    prim = Primitive(name, impl, vjp, jvp)
    return prim


def _along_a(A, E, A_dot, **params):
    """V (B(Ẽ, H̃) + B(H̃, Ẽ)) Vᴴ with H = Ȧ read from its triangle."""
    return _second(A, E, C.from_triangle(A_dot, params["lower"], hermitian=True), **params)


def _along_a_adjoint(A, E, Y, **params):
    """The triangle's share of V (B(Ẽᴴ, Ỹ) + B(Ỹ, Ẽᴴ)) Vᴴ."""
    return C.triangle_cotangent(_second(A, ops.mH(E), Y, **params), params["lower"],
                                hermitian=True)


_frechet = frechet_primitive("funmh_frechet", _frechet_impl, _along_a, _along_a_adjoint)


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

    Second derivatives are exact too, at repeated eigenvalues included: the
    derivative of the Daleckii–Krein map along A is formed from the second divided
    differences of f (f''/2 inside a cluster; funmh.md, section 4), not traced
    through eigh.  Third derivatives at a repeated eigenvalue pass through eigh and
    say so with a ``GaugeWarning``.

    Valid when: f is differentiable at the eigenvalues (e.g. w > 0 for sqrt and log;
    twice for second derivatives).  Cost: one eigh, then one product forward, four
    per first derivative; a second derivative adds six products and an O(n³)
    elementwise contraction.
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


def _repeated(func):
    def make(rng, n, batch, dtype):
        """One eigenvalue twice (exact zeros in Q diag(λ − μ) Qᴴ + μI): every derivative,
        second order included, is exact there (funmh.md, sections 2 and 4).  Scaled by 8,
        so that the finite differences' steps split the pair well inside the tie
        threshold ε^(1/3)·max|w| (at a split near it, differences of first derivatives
        amplify their rounding, ε/gap, by 1/step)."""
        A = M.random_repeated_eigh(rng, n, 2, batch, dtype) * 8
        return (A.astype(dtype),), {"func": func}
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
            Domain("sin-repeated", _repeated(np.sin), "a repeated eigenvalue, f = sin"),
        ),
        derivation="docs/derivations/funmh.md",
        reference=funmh_reference,
        references=("Daleckii & Krein 1965", "Higham 2008, Functions of Matrices, §3.2",
                    "Bhatia 1997, Matrix Analysis, §V.3"),
    ),
)
