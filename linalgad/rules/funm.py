"""funm: a general matrix function F = f(A) from a scalar function.   Derivation: docs/derivations/funm.md

Forward values: scipy.linalg.funm's own steps (complex Schur form A = Z T Zᴴ, the Parlett
recurrence on T, SciPy's real/complex output rule and error estimate; ``backend.funm_schur``),
so F is SciPy's to rounding, in SciPy's dtype.  For a derivative the triangular factor is
diagonalized by back substitution (``backend.funm_eigvectors``: T X = X Λ, no second
factorization), W = Z X, A = W Λ W⁻¹, and with Φ the divided differences of f at the complex
eigenvalues (f'(λ) on the diagonal and at ties)

    L(A; E)   = W (Φ ∘ (W⁻¹ E W)) W⁻¹                 Ḟ = L(A; Ȧ)
    L*(A; G)  = W⁻ᴴ (Φ̄ ∘ (Wᴴ G W⁻ᴴ)) Wᴴ = L(A; Gᴴ)ᴴ     Ā = L(A; F̄ᴴ)ᴴ   (Φ symmetric)

(the real part where A, or F, is real).  L is a primitive of its own; its derivative along A
is the second map M(A; E, H) = W (B(Ẽ, H̃) + B(H̃, Ẽ)) W⁻¹, Ẽ = W⁻¹ E W, B(X, Y)ᵢⱼ =
Σₖ f[λᵢ, λₖ, λⱼ] Xᵢₖ Yₖⱼ with the second divided differences of f (f''/2 where three
eigenvalues coincide), so second derivatives are exact for diagonalizable A, repeated
eigenvalues included.  Third derivatives trace linalgad's eig (exact at distinct eigenvalues).
A defective or nearly defective A (the eigenvector basis X with κ₁(X) > n·ε^(-1/2)) has no
reliable eigenvector formula: its derivatives raise LinAlgError naming funm.
"""

from __future__ import annotations

import warnings

import numpy as np

from .. import ops, transforms
from ..backend import (LinAlgError, funm_eigvectors, funm_schur, namespace_of, near_slopes,
                       to_host)
from ..registry import Domain, Rule
from ..tape import Primitive, Tracer
from ..testing import matrices as M
from . import _common as C
from . import _spectral as S
from .funmh import (bilinear_primitive, elementwise_result, frechet_primitive,
                    second_tie_tolerance, tie_tolerance)
from .matfuncs import _finish, _gauss

__all__ = ["funm", "frechet_funm", "RULES"]

OP = "funm"


# -- f, f', f'' at the (complex) eigenvalues -----------------------------------------------------

def _checked(what, r, lam):
    """What func (or dfunc, or a derivative) returned at λ: λ's shape (a constant broadcast),
    in the complex dtype of λ's precision."""
    r = elementwise_result(OP, what, r, lam)
    v, lv = C.peek(r), C.peek(lam)
    ctype = np.result_type(lv.dtype, np.complex64)
    return r if v.dtype == ctype else ops.astype(r, ctype)


def _derivative(g, x, what, direction=1):
    try:
        xv = C.peek(x)
        return transforms.jvp(g, (x,), (namespace_of(xv).ones(xv.shape, xv.dtype) * direction,))
    except Exception as e:
        raise TypeError(f"{OP}: could not differentiate {what} ({type(e).__name__}: {e}); "
                        "write func with NumPy ufuncs or linalgad's functions, or pass dfunc, "
                        "its derivative") from e


def values_and_slopes(func, dfunc, lam):
    """(f(λ), f'(λ)): f' is ``dfunc`` or linalgad's forward derivative of func (holomorphic:
    the tangent of ones)."""
    if dfunc is not None:
        return _checked("func", func(lam), lam), _checked("dfunc", dfunc(lam), lam)
    f, df = _derivative(func, lam, "func")
    return _checked("func", f, lam), _checked("func's derivative", df, lam)


def _require_holomorphic(func, lam, df, real_input):
    """ValueError naming funm where func is not complex-differentiable at the eigenvalues
    that a perturbation moves in the complex plane (all of them for a complex A, the non-real
    ones for a real A): there f's derivative along i must be i times its derivative along 1
    (np.abs, np.conj, np.real are not; the C-linear formula would be silently wrong)."""
    lv, d1 = (np.asarray(to_host(C.peek(v))) for v in (lam, df))
    _, di = _derivative(func, lam, "func", 1j)
    di = np.asarray(to_host(C.peek(_checked("func's derivative", di, lam))))
    moves = np.isfinite(d1) & np.isfinite(di)
    if real_input:
        moves &= lv.imag != 0
    tol = float(np.finfo(lv.dtype).eps) ** 0.5
    bad = moves & ~(np.abs(di - 1j * d1) <= tol * (np.abs(d1) + np.abs(di)))
    if bad.any():
        k = np.flatnonzero(bad.ravel())[0]
        raise ValueError(
            f"{OP}: func is not holomorphic at the eigenvalue {complex(lv.ravel()[k]):.4g} of A "
            f"(its derivative along i, {complex(di.ravel()[k]):.4g}, is not i times its "
            f"derivative along 1, {complex(d1.ravel()[k]):.4g}); the derivative of funm is "
            "defined only for a complex-differentiable f at complex eigenvalues (np.abs, "
            "np.conj, np.real are not; funm.md, section 6)")


def values_slopes_curvatures(func, dfunc, lam):
    """(f(λ), f'(λ), f''(λ)): f'' the forward derivative of f' (of dfunc when given)."""
    f = _checked("func", func(lam), lam)
    slope = dfunc if dfunc is not None else (lambda x: _derivative(func, x, "func")[1])
    df, d2f = _derivative(slope, lam, "dfunc" if dfunc is not None else "func twice")
    return (f, _checked("func's derivative", df, lam),
            _checked("func's second derivative", d2f, lam))


def _near(lam, f, df):
    """Concrete mask (..., n, n) of the pairs whose divided difference is the mean of the
    slopes: |λᵢ − λⱼ| within ε^(1/3) of max|λ| and of the scale on which f varies (funmh's
    rule, with complex distances)."""
    return near_slopes(namespace_of(lam), lam, f, df, tie_tolerance(lam.dtype))


def divided_differences(lam, f, df):
    """Φ (..., n, n), in differentiable operations (the tie mask held fixed)."""
    near = C.compute(_near, (lam, f, df), name="funm's tie mask")
    gap = ops.expand_dims(lam, -1) - ops.expand_dims(lam, -2)
    quotient = (ops.expand_dims(f, -1) - ops.expand_dims(f, -2)) / ops.where(near, 1.0, gap)
    mean = (ops.expand_dims(df, -1) + ops.expand_dims(df, -2)) * 0.5
    return ops.where(near, mean, quotient)


def _phi_plain(lam, f, df):
    xp = namespace_of(lam)
    near = _near(lam, f, df)
    gap = lam[..., :, None] - lam[..., None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        q = (f[..., :, None] - f[..., None, :]) / xp.where(near, 1, gap)
    return xp.where(near, (df[..., :, None] + df[..., None, :]) * 0.5, q)


# -- the factors --------------------------------------------------------------------------------

def _defective_check(kappa, dtype, n):
    """LinAlgError naming funm where the eigenvector basis is too ill-conditioned: κ₁(X) >
    n·ε^(-1/2), so that κ₂(X) >= κ₁(X)/n exceeds ε^(-1/2) (half the digits lost)."""
    kappa = np.asarray(kappa)
    limit = max(n, 1) * float(np.finfo(dtype).eps) ** -0.5
    bad = ~(kappa <= limit)
    if bad.any():
        k = int(np.flatnonzero(bad.ravel())[0])
        where = "" if kappa.ndim == 0 else \
            f" (matrix {tuple(int(i) for i in np.unravel_index(k, kappa.shape))} of the stack)"
        raise LinAlgError(
            f"{OP}: the matrix is defective or nearly defective{where}: its eigenvector basis "
            f"has condition number {kappa.ravel()[k]:.2e} > n·ε^(-1/2) = {limit:.1e}, and the "
            "derivative, formed in that basis, would be unreliable (funm.md, section 6); "
            "scipy.linalg.funm's value is inaccurate there too")


def _unpack(factors):
    lam, W, Winv, kappa = factors
    _defective_check(kappa, W.dtype, W.shape[-1])
    return lam, W, Winv


# -- L(A; E): the Fréchet derivative -------------------------------------------------------------

def _frechet_impl(A, E, *, func, dfunc, factors):
    """W (Φ ∘ (W⁻¹ E W)) W⁻¹ on plain values (complex)."""
    lam, W, Winv = _unpack(factors)
    xp = namespace_of(W)
    f, df = (C.peek(v) for v in values_and_slopes(func, dfunc, lam))
    if dfunc is None:
        _require_holomorphic(func, lam, df, C.peek(A).dtype.kind != "c")
    phi = _phi_plain(lam, f, df)
    Et = xp.matmul(Winv, xp.matmul(E, W))
    return xp.matmul(W, xp.matmul(phi * Et, Winv))


def _along_a_adjoint(A, E, Y, **params):
    """Ā = M(A; E, Ȳᴴ)ᴴ (funm.md, section 4); Ē = L(A; Ȳᴴ)ᴴ (frechet_primitive's
    non-self-adjoint case)."""
    return ops.mH(_second(A, E, ops.mH(Y), **params))


def _along_a(A, E, A_dot, **params):
    """L̇ along A: M(A; E, Ȧ) (_second, defined below)."""
    return _second(A, E, A_dot, **params)


_frechet = frechet_primitive("funm_frechet", _frechet_impl, _along_a, _along_a_adjoint,
                             self_adjoint=False)


def frechet_funm(A, E, func, dfunc=None, factors=None):
    """L(A; E) = d/dt f(A + tE) at t = 0 (complex), for equal (..., n, n) stacks (internal;
    A and E taken as given).  ``factors``: (λ, W, W⁻¹, κ) of ``backend.funm_eigvectors``
    (a cache, never differentiated); computed from A's Schur form when not given."""
    if factors is None:
        _, _, T, Z = funm_schur(ops.asarray_value(A), func, OP)
        factors = funm_eigvectors(T, Z, ops.asarray_value(A))
    return _frechet(A, E, func=func, dfunc=dfunc, factors=factors)


# -- M(A; P, Q): the second map --------------------------------------------------------------------

def _triple_plain(xp, lam, phi, d2f, bound, b, i, k, j):
    """f[λᵢ, λₖ, λⱼ] over index arrays (b the matrix): (f''ᵢ + f''ₖ + f''ⱼ)/6 where the three
    lie within ``bound``; else the quotient over the widest of the three pairs."""
    li, lk, lj = lam[b, i], lam[b, k], lam[b, j]
    dik, dkj, dij = abs(li - lk), abs(lk - lj), abs(li - lj)
    close = xp.maximum(xp.maximum(dik, dkj), dij) <= bound[b]
    one = xp.ones((), dtype=lam.dtype)
    by_ij = (phi[b, i, k] - phi[b, k, j]) / xp.where(close | (dij == 0), one, li - lj)
    by_ik = (phi[b, i, j] - phi[b, j, k]) / xp.where(close | (dik == 0), one, li - lk)
    by_kj = (phi[b, k, i] - phi[b, i, j]) / xp.where(close | (dkj == 0), one, lk - lj)
    q = xp.where((dij >= dik) & (dij >= dkj), by_ij, xp.where(dik >= dkj, by_ik, by_kj))
    return xp.where(close, (d2f[b, i] + d2f[b, k] + d2f[b, j]) * (1.0 / 6.0), q)


def _second_bound(xp, lam):
    """ε^(1/4)·max|λ| per matrix (B,): three eigenvalues within it take the mean of f''/2."""
    return xp.abs(lam).max(axis=-1) * second_tie_tolerance(lam.dtype)


def _second_kernel(A, P, Q, *, func, dfunc, factors):
    """W (B(P̃, Q̃) + B(Q̃, P̃)) W⁻¹ on plain values: pairs (i, j) farther apart than the bound
    by products, f[λᵢ, λₖ, λⱼ] = (Φᵢₖ − Φₖⱼ)/(λᵢ − λⱼ) for every k; the others (the diagonal,
    ties) entry by entry over k."""
    lam, W, Winv = _unpack(factors)
    xp = namespace_of(W)
    f, df, d2f = (C.peek(v) for v in values_slopes_curvatures(func, dfunc, lam))
    phi = _phi_plain(lam, f, df)
    Pt = xp.matmul(Winv, xp.matmul(P, W))
    Qt = xp.matmul(Winv, xp.matmul(Q, W))
    PP, QQ = phi * Pt, phi * Qt
    R = (xp.matmul(PP, Qt) - xp.matmul(Pt, QQ)) + (xp.matmul(QQ, Pt) - xp.matmul(Qt, PP))
    gap = lam[..., :, None] - lam[..., None, :]
    n = lam.shape[-1]
    shape = R.shape
    Bn = int(np.prod(shape[:-2]))
    lf = lam.reshape(Bn, n)
    bound = _second_bound(xp, lf)
    near = xp.abs(gap).reshape(Bn, n, n) <= bound[:, None, None]
    R = R.reshape(Bn, n, n) / xp.where(near, 1, gap.reshape(Bn, n, n))
    pf, df2 = phi.reshape(Bn, n, n), d2f.reshape(Bn, n)
    Pf, Qf = Pt.reshape(Bn, n, n), Qt.reshape(Bn, n, n)
    b_all, i_all, j_all = xp.nonzero(near)
    k = xp.arange(n)[None, :]
    step = max(1, (1 << 20) // max(n, 1))
    for s0 in range(0, int(b_all.shape[0]), step):
        b, i, j = (x[s0:s0 + step, None] for x in (b_all, i_all, j_all))
        g = _triple_plain(xp, lf, pf, df2, bound, b, i, k, j)
        terms = g * (Pf[b, i, k] * Qf[b, k, j] + Qf[b, i, k] * Pf[b, k, j])
        R[b[:, 0], i[:, 0], j[:, 0]] = terms.sum(axis=-1)
    return xp.matmul(W, xp.matmul(R.reshape(shape), Winv))


def _triple(lam, phi, d2f, bound, i, k, j):
    """``_triple_plain`` in differentiable operations (masks held fixed), i, k, j index arrays
    broadcasting to (n, c, n)."""
    def masks(lv):
        d = [np.abs(lv[..., a] - lv[..., b]) for a, b in ((i, k), (k, j), (i, j))]
        dik, dkj, dij = d
        close = np.maximum(np.maximum(dik, dkj), dij) <= bound[..., None, None, None]
        w_ij = (dij >= dik) & (dij >= dkj)
        w_ik = ~w_ij & (dik >= dkj)
        return close, w_ij, w_ik, w_ij | w_ik
    close, w_ij, w_ik, either = C.compute(lambda lv: masks(np.asarray(to_host(lv))),
                                          (lam,), name="funm's near triples")
    g = lambda x, *ix: ops.getitem(x, (Ellipsis,) + ix)   # noqa: E731
    li, lk, lj = g(lam, i), g(lam, k), g(lam, j)
    # the widest pair's quotient: (a, c) = (i, j), (i, k) or (k, j), b the third
    num = ops.where(w_ij, g(phi, i, k) - g(phi, k, j),
                    ops.where(w_ik, g(phi, i, j) - g(phi, j, k), g(phi, k, i) - g(phi, i, j)))
    den = ops.where(w_ij, li - lj, ops.where(w_ik, li - lk, lk - lj))
    q = num / ops.where(close, 1.0, den)
    return ops.where(close, (g(d2f, i) + g(d2f, k) + g(d2f, j)) * (1.0 / 6.0), q)


def _second_ref(A, P, Q, *, func, dfunc, factors):
    """The second map with A's eigendecomposition traced again (linalgad's eig): its
    derivatives are third order of funm, exact at distinct eigenvalues."""
    from .eig import eig
    from .inverse import inv
    lam, W = eig(A)
    lam = ops.astype(lam, np.result_type(C.peek(lam).dtype, np.complex64))
    lv = np.asarray(to_host(C.peek(lam)))
    if lv.shape[-1] > 1:
        gap = np.where(np.eye(lv.shape[-1], dtype=bool), np.inf,
                       np.abs(lv[..., :, None] - lv[..., None, :]))
        if (gap <= _second_bound(np, lv)[..., None, None]).any():
            warnings.warn(
                "funm: third derivatives at (nearly) repeated eigenvalues pass through eig's "
                "derivative and miss in-cluster terms (funm.md, section 6); first and second "
                "derivatives are exact there.", S.GaugeWarning, stacklevel=2)
    Winv = inv(W)
    f, df, d2f = values_slopes_curvatures(func, dfunc, lam)
    phi = divided_differences(lam, f, df)
    bound = C.compute(lambda lv: _second_bound(namespace_of(lv), lv), (lam,),
                      name="funm's second bound")
    Pt = ops.matmul(Winv, ops.matmul(P, W))
    Qt = ops.matmul(Winv, ops.matmul(Q, W))
    n = ops._shape(Pt)[-1]
    ar = np.arange(n)
    X = (ops.expand_dims(Pt, -1) * ops.expand_dims(Qt, -3)
         + ops.expand_dims(Qt, -1) * ops.expand_dims(Pt, -3))        # (..., i, k, j)
    g3 = _triple(lam, phi, d2f, bound, ar[:, None, None], ar[None, :, None],
                 ar[None, None, :])
    R = ops.sum(g3 * X, axis=-2)
    return ops.matmul(W, ops.matmul(R, Winv))


# ⟨Z, M(P, Q)⟩ = ⟨M(Zᴴ, Q)ᴴ, P⟩ = ⟨M(P, Zᴴ)ᴴ, Q⟩ (funm.md, section 4)
_second = bilinear_primitive(
    "funm_second_frechet", _second_kernel, _second_ref,
    lambda Z, A, P, Q, **params: (ops.mH(_second(A, ops.mH(Z), Q, **params)),
                                  ops.mH(_second(A, P, ops.mH(Z), **params))))


# -- the primitive ---------------------------------------------------------------------------------

def _funm_impl(A, *, func, dfunc):
    F, err, T, Z = funm_schur(A, func, OP)
    return (F, err), funm_eigvectors(T, Z, A)


def _as_output(L, F):
    """A tangent of F in F's dtype (its real part where F is real)."""
    return ops.fit(L, F)


def _funm_vjp(cts, needs, out, res, A, *, func, dfunc):
    """Ā = L(A; F̄ᴴ)ᴴ (its real part for a real A)."""
    F_bar = cts[0]
    if F_bar is None:
        return (None,)
    return (ops.fit(ops.mH(_frechet(A, ops.mH(F_bar), func=func, dfunc=dfunc, factors=res)),
                    A),)


def _funm_jvp(tangents, out, res, A, *, func, dfunc):
    """Ḟ = L(A; Ȧ); the error estimate is not differentiated."""
    L = _frechet(A, tangents[0], func=func, dfunc=dfunc, factors=res)
    return _as_output(L, out[0]), None


_funm = Primitive("funm", _funm_impl, _funm_vjp, _funm_jvp, staged=True, multiple_results=True)


def funm(A, func, disp=True, *, dfunc=None):
    """f(A) for a square matrix (or stack) A and a scalar function f, differentiable.

    scipy.linalg.funm: ``func`` is applied to the eigenvalues (an array, real or complex),
    elementwise (vectorized), and extended to A by the Schur–Parlett method; linalgad runs
    SciPy's own steps, so the value is SciPy's, in SciPy's dtype (real for a real A whose
    result has negligible imaginary part, e.g. ``np.exp``; complex otherwise, e.g.
    ``np.sqrt`` of a matrix with a negative eigenvalue).  ``disp=True`` prints SciPy's
    notice when the error estimate exceeds 1000 ε and returns F; ``disp=False`` returns
    ``(F, errest)`` without printing (errest a NumPy float, or an array over a stack).
    Stacks (..., n, n) are computed matrix by matrix (SciPy 1.17 batches funm too); an
    empty matrix gives an empty result (SciPy raises IndexError).  ValueError naming funm
    for a non-square input or infs and NaNs, TypeError for a non-callable func.  On the GPU
    the Schur forms are computed on the host (CuPy has none).

    Derivatives: f must be holomorphic at the eigenvalues (a power series with complex
    coefficients, e.g. exp, sin, log and sqrt off their branch cuts); a func that linalgad
    finds non-holomorphic there (np.abs, np.conj, np.real at complex eigenvalues, or at any
    eigenvalue of a complex A) raises ValueError naming funm.  f' (and f'' for
    second order) come from differentiating func with linalgad (write it with NumPy ufuncs
    or linalgad's functions), or from ``dfunc`` (keyword only; a linalgad extension).  The
    derivative is the Daleckii–Krein formula W (Φ ∘ (W⁻¹ dA W)) W⁻¹ in the eigenvector
    basis W of the Schur factor (funm.md), exact at repeated eigenvalues of a
    diagonalizable A; second derivatives use the second divided differences of f (exact
    there too); third derivatives trace eig (exact at distinct eigenvalues; at repeated ones
    they miss in-cluster terms and say so with a ``GaugeWarning``).

    Valid when: A is diagonalizable with a well-conditioned eigenvector basis.  For a
    defective or nearly defective A (κ₁ of the basis above n·ε^(-1/2)) the derivatives
    raise LinAlgError naming funm (SciPy's value, which its error estimate flags, is
    returned as SciPy returns it).
    """
    if not callable(func):
        raise TypeError(f"{OP}: func must be callable; got {type(func).__name__}")
    if dfunc is not None and not callable(dfunc):
        raise TypeError(f"{OP}: dfunc must be callable or None; got {type(dfunc).__name__}")
    A = C.prepare(OP, A, True)
    if isinstance(A, Tracer):
        F, err = _funm(A, func=func, dfunc=dfunc)
        err = transforms.stop_gradient(err)     # a constant (under jit: a replayed value)
        if disp:
            dtype = C.peek(F).dtype
            C.guard(err, lambda e: _notice(to_host(e), dtype))     # printed on every replay
            return F
        if isinstance(err, Tracer):
            return F, err
    else:
        F, err, _, _ = funm_schur(A, func, OP, disp=bool(disp))
        if disp:
            return F
    e = to_host(err)
    return F, (e[()] if np.ndim(e) == 0 else e)


def _notice(err, dtype):
    tol = float(np.finfo(dtype).eps)
    for e in np.ravel(err):
        if e > 1000 * tol:
            print(f"{OP} result may be inaccurate, approximate err =", e)


# -- reference (SciPy alone) and registry domains ------------------------------------------------

def funm_reference(A, func, dfunc=None):
    """scipy.linalg.funm (batched in SciPy 1.17), its notice silenced."""
    import contextlib
    import io
    import scipy.linalg as sl
    with contextlib.redirect_stdout(io.StringIO()):
        return np.asarray(sl.funm(A, func))


def _log1p_shift(w):
    """log(1 + w/4 + 1): log1p on a disc where it is analytic for the domains below
    (|λ| <= 2.5 keeps 1 + λ/4 + 1 off the branch cut), written with ufuncs."""
    return np.log1p(w * 0.25 + 1.0)


def _separated(rng, n, batch, dtype, imag):
    """P (D + N) P⁻¹: eigenvalues spread in [−2, 2] (plus i·[−imag, imag] for complex), at
    least 0.3 apart, a well-conditioned P, N strictly upper: non-normal, diagonalizable."""
    b = tuple(batch)
    base = np.linspace(-2.0, 2.0, n) if n > 1 else np.zeros(1)
    d = base + rng.uniform(-0.05, 0.05, b + (n,))
    if imag:
        d = d + 1j * imag * rng.uniform(-1, 1, b + (n,))
    N = np.triu(_gauss(rng, b + (n, n), np.complex128 if imag else np.float64), 1) * 0.3
    P = M.random_orthogonal(rng, n, batch, np.complex128 if imag else np.float64) \
        + 0.3 * _gauss(rng, b + (n, n), np.complex128 if imag else np.float64) / np.sqrt(n)
    A = P @ (d[..., None, :] * np.eye(n) + N) @ np.linalg.inv(P)
    return _finish(A, dtype)


def _general(func):
    def make(rng, n, batch, dtype):
        imag = 1.0 if np.dtype(dtype).kind == "c" else 0.0
        return (_separated(rng, n, batch, dtype, imag),), {"func": func}
    return make


def _conjugate_pairs(func):
    def make(rng, n, batch, dtype):
        """Real matrices with complex-conjugate eigenvalue pairs a ± ib (b in [0.4, 1.2])."""
        b_ = tuple(batch)
        T = np.zeros(b_ + (n, n))
        for i in range(0, n - 1, 2):
            a = -1.5 + 3.0 * i / max(n - 1, 1) + rng.uniform(-0.05, 0.05, b_)
            b = rng.uniform(0.4, 1.2, b_)
            T[..., i, i] = T[..., i + 1, i + 1] = a
            T[..., i, i + 1], T[..., i + 1, i] = b, -b
        if n % 2:
            T[..., n - 1, n - 1] = 1.8
        N = np.triu(rng.standard_normal(b_ + (n, n)), 2) * 0.3
        Q = M.random_orthogonal(rng, n, batch, np.float64)
        return (_finish(Q @ (T + N) @ np.swapaxes(Q, -1, -2), dtype),), {"func": func}
    return make


RULES = (
    Rule(
        name="funm",
        fun=funm,
        primitive=_funm,
        domains=(
            Domain("exp", _general(np.exp), "exp of a non-normal matrix, eigenvalues spread "
                   "in [-2, 2] (complex: plus i[-1, 1]), well separated"),
            Domain("log1p", _general(_log1p_shift), "log1p(λ/4 + 1), analytic on the "
                   "spectrum, non-normal"),
            Domain("exp-conjugate-pairs", _conjugate_pairs(np.exp),
                   "real, complex-conjugate eigenvalue pairs: a real result and gradient",
                   real_only=True),
        ),
        derivation="docs/derivations/funm.md",
        reference=funm_reference,
        references=("Daleckii & Krein 1965", "Higham 2008, Functions of Matrices, §3.2 "
                    "and Thm 3.11", "Golub & Van Loan 2013, Alg. 9.1.1",
                    "Davies & Higham 2003 (Schur–Parlett)"),
    ),
)
