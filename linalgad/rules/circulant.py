"""Circulant matrices: solve_circulant, circulant.   Derivation: docs/derivations/circulant.md

C = circulant(c) (first column c, C[i, j] = c[(i − j) mod n]) is diagonalised by the DFT:
C = F⁻¹ diag(λ) F with λ = fft(c).  C is linear in c and C(c) x = C(x) c (circular
convolution commutes), and Cᴴ = C(c̃) with c̃[k] = conj(c[(−k) mod n]) (λ̃ = conj(λ)).
Two primitives carry every rule, each with derivatives written through the two:

  convolution  y = C(a) x = ifft(fft(a) fft(x))     ā = C(x̃) ȳ,   x̄ = C(ã) ȳ
  solve        x = C(c)⁺ b = ifft(fft(b) / λ)       b̂ = C(c̃)⁺ x̄,  b̄ = b̂,  c̄ = −C(x̃) b̂
               forward: ẋ = C(c)⁺ (ḃ − C(ċ) x)

where C⁺ is the inverse, or with singular='lstsq' the pseudo-inverse that drops the modes
with |λ| ≤ tol (SciPy's rule); a dropped mode stays dropped under small perturbations, so
the formulas are the exact derivative of that map wherever no |λ| equals tol.  The
inverse spectrum λ⁺ (1/λ, 0 on the dropped modes) computed by the forward pass is kept and
reused by every later solve with C or Cᴴ (conj(λ⁺)): one multiplication each.  All O(n log n) a vector (rfft/irfft when
everything is real); the constructor circulant(c) is a strided copy whose adjoint folds
the diagonal sums of the cotangent.  At first order on plain arrays the solve's VJP runs as
one fused kernel (backend circulant_solve_vjp: the same formulas, four transforms with the
stack sum taken in Fourier space); traced, it is the composite above.
"""

from __future__ import annotations

import numpy as np

from .. import ops
from ..backend import (LinAlgError, batch_index, circulant_convolve,
                       circulant_inverse_spectrum, circulant_near_zero,
                       circulant_solve as _solve_kernel, circulant_solve_vjp,
                       circulant_spectrum, namespace_of, to_host, toeplitz_assemble,
                       toeplitz_diagonal_sums)
from ..registry import Domain, Rule
from ..tape import Primitive, Tracer
from . import _common as C

__all__ = ["solve_circulant", "circulant", "RULES"]


def _rev(v):
    """c̃: conj(v[..., (−k) mod n]), the first column of circulant(v)ᴴ (differentiable)."""
    n = C.peek(v).shape[-1]
    if n > 1:
        v = ops.concatenate([ops.getitem(v, (Ellipsis, slice(0, 1))),
                             ops.getitem(v, (Ellipsis, slice(None, 0, -1)))], axis=-1)
    return ops.conj(v) if C.peek(v).dtype.kind == "c" else v


# -- circular convolution: y = circulant(a) x ---------------------------------------------------

def _cconv_vjp(g, needs, out, res, a, x):
    a_bar = ops.fit(_cconv(_rev(x), g), a) if needs[0] else None
    x_bar = ops.fit(_cconv(_rev(a), g), x) if needs[1] else None
    return a_bar, x_bar


_cconv = Primitive("circulant_convolve",
                   lambda a, x: circulant_convolve(namespace_of(a, x), a, x),
                   _cconv_vjp, C.bilinear_jvp(lambda: _cconv))


# -- the solve: x = circulant(c)⁺ b -------------------------------------------------------------

def _singular_error(op, near, xp):
    bad = near.any(axis=-1)
    where = ""
    if bad.ndim:
        flat = int(xp.argmax(bad.reshape(-1)))
        idx = batch_index(bad.shape, flat)
        where = f" (matrix {idx if len(idx) > 1 else idx[0]} of the stack of shape {bad.shape})"
    return LinAlgError(f"{op}: near singular circulant matrix{where}: an eigenvalue fft(c)[k] "
                       "has |fft(c)[k]| <= tol; pass singular='lstsq' for the least-squares "
                       "solution")


def _csolve_impl(c, b, *, op, singular, tol, factors, adjoint):
    """(x, λ⁺): λ⁺ the spectrum of c's (pseudo-)inverse (half for a real c; 0 on the modes
    dropped by singular='lstsq').  With ``factors`` (the λ⁺ of an earlier call) it is reused
    (conjugated when ``adjoint``: c is then that call's c̃) and nothing is re-decided."""
    xp = namespace_of(c, b)
    n = c.shape[-1]
    half = c.dtype.kind != "c"
    if factors is None:
        lam = circulant_spectrum(xp, c)
        near = circulant_near_zero(xp, lam, n, tol)
        if singular == "raise":
            if bool(near.any()):
                raise _singular_error(op, near, xp)
            rlam = circulant_inverse_spectrum(xp, lam, None)
        else:
            rlam = circulant_inverse_spectrum(xp, lam, near)
    else:
        rlam = xp.conj(factors) if adjoint else factors
    dtype = np.result_type(c.dtype, b.dtype)
    return _solve_kernel(xp, rlam, b, n, half, dtype), rlam


def _csolve_vjp(g, needs, x, res, c, b, *, op, singular, tol, factors, adjoint):
    if not any(isinstance(v, Tracer) for v in (g, x, c, b, res)):
        # first order on plain arrays: one fused pass (the same formulas, below)
        c_bar, b_hat = circulant_solve_vjp(namespace_of(g, x), res, c.dtype.kind != "c", x,
                                           g, c.shape[:-1], needs[0], needs[1])
        return (ops.fit(c_bar, c) if needs[0] else None,
                ops.fit(b_hat, b) if needs[1] else None)
    y = _csolve(_rev(c), g, op=op, singular=singular, tol=tol, factors=res, adjoint=True)
    c_bar = ops.fit(-_cconv(_rev(x), y), c) if needs[0] else None
    b_bar = ops.fit(y, b) if needs[1] else None
    return c_bar, b_bar


def _csolve_jvp(tangents, x, res, c, b, *, op, singular, tol, factors, adjoint):
    c_dot, b_dot = tangents
    rhs = b_dot
    if c_dot is not None:
        t = _cconv(c_dot, x)
        rhs = -t if rhs is None else rhs - t
    if rhs is None:
        return None
    return _csolve(c, rhs, op=op, singular=singular, tol=tol, factors=res, adjoint=False)


_csolve = Primitive("circulant_solve", _csolve_impl, _csolve_vjp, _csolve_jvp, staged=True)


# -- the constructor ------------------------------------------------------------------------------

def _assemble_impl(c):
    xp = namespace_of(c)
    n = c.shape[-1]
    if n == 0:
        return xp.zeros(c.shape + (0,), dtype=c.dtype)
    return toeplitz_assemble(xp, xp.concatenate([c[..., 1:], c], axis=-1), n, n)


def _fold_impl(G):
    """c̄[d] = Σᵢ G[i, (i − d) mod n], the adjoint of _assemble: the diagonal sums of G
    (s[n − 1 + d], d = i − j) with the two diagonals of each wrapped offset added."""
    xp = namespace_of(G)
    n = G.shape[-1]
    if n == 0:
        return xp.zeros(G.shape[:-1], dtype=G.dtype)
    s = toeplitz_diagonal_sums(xp, G)
    out = s[..., n - 1:].copy()
    out[..., 1:] += s[..., :n - 1]
    return out


_assemble, _fold = C.adjoint_pair("circulant_assemble", _assemble_impl,
                                  "circulant_fold", _fold_impl)


# -- arguments -------------------------------------------------------------------------------------

def _axis(op, name, ndim, axis, shape):
    if not isinstance(axis, (int, np.integer)) or isinstance(axis, bool):
        raise TypeError(f"{op}: {name} must be an integer; got {axis!r}")
    ax = axis + ndim if axis < 0 else axis
    if not 0 <= ax < ndim:
        raise ValueError(f"{op}: '{name}' entry is out of bounds: axis {axis} of an array of "
                         f"shape {shape}")
    return int(ax)


def solve_circulant(c, b, singular="raise", tol=None, caxis=-1, baxis=0, outaxis=0):
    """Solve circulant(c) x = b by division in Fourier space, differentiable in c and b (scipy.linalg.solve_circulant).

    x = ifft(fft(b) / fft(c)) along the vectors' axes: ``caxis`` of c holds the
    coefficients (the first column of the circulant), ``baxis`` of b the
    right-hand sides; the other axes of c and b are stacks that broadcast
    (NumPy's rules, after moving those axes last), and ``outaxis`` of the
    result holds the solutions.  A 1-D c against b (n, k) with the default
    axes solves for k columns, as solve(circulant(c), b).  The result is real
    when c and b are, in their common inexact dtype (float32 stays float32,
    integers become float64), as SciPy's.

    singular='raise' raises LinAlgError when an eigenvalue has
    |fft(c)[k]| <= tol (default tol = max|fft(c)| · n · eps(float64) for each
    circulant, SciPy's); singular='lstsq' sets those modes of the solution to
    zero: the minimum-norm least-squares solution (with a given tol, of the
    circulant with those eigenvalues dropped).  ``tol`` is a number, or (as SciPy) an
    array compared with |fft(c)| by broadcasting, with a last dimension of 1: one tol per
    circulant of c's stack (SciPy's per-mode tols are not supported).

    O(n log n) a vector (real FFTs for real input); the gradient is one more
    division by conj(fft(c)) (the forward pass's spectrum, kept) and one
    circular correlation, forward mode one convolution and one division: any
    order.

    Differs from SciPy: singular must be 'raise' or 'lstsq' (SciPy treats any
    other string as 'lstsq'), and singular='lstsq' with b of two or more
    dimensions works for every baxis (SciPy 1.17 builds its mask from b's
    unmoved shape: a wrong broadcast or mask unless baxis is -1).  An empty b
    gives an empty result shaped like b (SciPy's), without a gradient path.

    Valid when: no |fft(c)[k]| equals tol (the pseudo-inverse jumps there;
    elsewhere the derivative is exact, dropped modes contributing nothing).
    The solution's error grows like the condition number max|λ| / min|λ|
    over the kept eigenvalues.
    """
    op = "solve_circulant"
    if not isinstance(singular, str) or singular not in ("raise", "lstsq"):
        raise ValueError(f"{op}: singular must be 'raise' or 'lstsq'; got {singular!r}")
    if tol is not None:
        tv = to_host(C.value(tol))
        if tv.dtype.kind not in "biuf":
            raise ValueError(f"{op}: tol must be a real number or array; got {tol!r}")
        # SciPy compares |fft(c)| (c's stack, n) <= tol by broadcasting: an array whose last
        # dimension is 1 is one tol per circulant (per-mode tols are not supported: a real
        # c's half spectrum keeps one of each conjugate pair); kept hashable for the
        # primitive's parameters
        if tv.ndim and tv.shape[-1] != 1:
            raise ValueError(f"{op}: tol of shape {tv.shape} must have a last dimension of 1 "
                             "(one tol per circulant, compared with |fft(c)| along it)")
        tol = float(tv) if tv.ndim == 0 else (tv.shape, tuple(tv.astype(np.float64).ravel()))
    c, b = C.array_args(op, c=c, b=b)
    if C.peek(c).ndim == 0:
        c = ops.reshape(c, (1,))
    if C.peek(b).ndim == 0:
        b = ops.reshape(b, (1,))
    cv, bv = C.peek(c), C.peek(b)
    ca = _axis(op, "caxis", cv.ndim, caxis, cv.shape)
    ba = _axis(op, "baxis", bv.ndim, baxis, bv.shape)
    if cv.shape[ca] != bv.shape[ba]:
        raise ValueError(f"{op}: shapes of c {cv.shape} and b {bv.shape} are incompatible: "
                         f"c has {cv.shape[ca]} coefficients on axis {caxis}, b "
                         f"{bv.shape[ba]} entries on axis {baxis}")
    dtype = C.result_dtype(op, cv, bv)
    if bv.size == 0:                # SciPy's: an empty array shaped like b
        return namespace_of(bv).empty(bv.shape, dtype=dtype)
    cb = cv.shape[:ca] + cv.shape[ca + 1:]
    bb = bv.shape[:ba] + bv.shape[ba + 1:]
    try:
        batch = np.broadcast_shapes(cb, bb)
    except ValueError:
        raise ValueError(f"{op}: the stacks of c {cv.shape} (axis {caxis} aside: {cb}) and "
                         f"b {bv.shape} (axis {baxis} aside: {bb}) do not broadcast") from None
    out_ndim = len(batch) + 1
    oa = outaxis + out_ndim if isinstance(outaxis, (int, np.integer)) and outaxis < 0 \
        else outaxis
    if not isinstance(outaxis, (int, np.integer)) or isinstance(outaxis, bool):
        raise TypeError(f"{op}: outaxis must be an integer; got {outaxis!r}")
    if not 0 <= oa < out_ndim:
        raise np.exceptions.AxisError(
            f"{op}: outaxis {outaxis} is out of bounds for the result of {out_ndim} "
            f"dimensions (stack {batch} and the solutions' axis)")
    c, b = C.promote(c, dtype), C.promote(b, dtype)
    if ca != cv.ndim - 1:
        c = ops.moveaxis(c, ca, -1)
    if ba != bv.ndim - 1:
        b = ops.moveaxis(b, ba, -1)
    if isinstance(tol, tuple):
        try:
            if len(tol[0]) > len(cb) + 1:
                raise ValueError
            np.broadcast_shapes(tol[0], cb + (1,))
        except ValueError:
            raise ValueError(f"{op}: tol of shape {tol[0]} does not broadcast against c's "
                             f"stack {cb} (and a last dimension of 1)") from None
    x = _csolve(c, b, op=op, singular=singular, tol=tol, factors=None, adjoint=False)
    if oa != out_ndim - 1:
        x = ops.moveaxis(x, -1, int(oa))
    return x


def circulant(c):
    """The circulant matrix with first column c, differentiable (scipy.linalg.circulant).

    C[i, j] = c[(i − j) mod n].  Leading dimensions of c are a stack (SciPy
    1.17's batching): c (..., n) gives (..., n, n), in c's dtype.  A strided
    copy, as SciPy's; its gradient sums the cotangent over each wrapped
    diagonal (c̄[d] = Σᵢ C̄[i, (i − d) mod n]).

    Valid when: always.
    """
    (c,) = C.array_args("circulant", c=c)
    if C.peek(c).ndim == 0:
        c = ops.reshape(c, (1,))
    return _assemble(c)


# -- registry ----------------------------------------------------------------------------------

def _random(rng, shape, dtype):
    x = rng.standard_normal(shape)
    if np.dtype(dtype).kind == "c":
        x = x + 1j * rng.standard_normal(shape)
    return x


def _well_conditioned(rng, shape, dtype):
    """c whose circulant is well conditioned: a dominant c[0] (every |λ| ≥ 3 − ‖c[1:]‖₁)."""
    n = shape[-1]
    c = _random(rng, shape, dtype) / max(n, 1)
    c[..., 0] += 3.0
    return c.astype(dtype)


def _with_zero_modes(rng, shape, dtype):
    """c with exactly zero eigenvalues (the mean mode, and for complex c every third mode)
    and the others of modulus in [1, 2]: the modes dropped by tol = 0.25 stay below it
    under the checks' finite-difference steps, the kept ones stay well above."""
    n = shape[-1]
    complex_ = np.dtype(dtype).kind == "c"
    lam = rng.uniform(1, 2, shape) * np.exp(2j * np.pi * rng.uniform(size=shape))
    if not complex_:                       # a real c: λ[n − k] = conj(λ[k]), λ[0] real
        k = np.arange(n)
        lam = np.where(k <= n - k, lam, np.conj(lam[..., (-k) % n]))
        lam[..., 0] = lam[..., 0].real
        if n % 2 == 0:
            lam[..., n // 2] = lam[..., n // 2].real
    zero = np.arange(n) % 3 == 0 if complex_ else np.arange(n) == 0
    lam = np.where(zero, 0, lam)
    c = np.fft.ifft(lam, axis=-1)
    return (c if complex_ else c.real).astype(dtype)


def _solve_domain(kind):
    def make(rng, n, batch, dtype):
        if kind == "vector":           # c stacks (batch, n) against one b (n,): x (n, batch)
            return (_well_conditioned(rng, batch + (n,), dtype),
                    _random(rng, (n,), dtype).astype(dtype)), {}
        if kind == "matrix":           # 1-D c (or a stack (batch, 1, n)) against b (n, 2)
            cshape = batch + (1, n) if batch else (n,)
            return (_well_conditioned(rng, cshape, dtype),
                    _random(rng, (n, 2), dtype).astype(dtype)), {}
        if kind == "axes":             # c (n, batch), b (batch, 2, n): x (batch, n, 2)
            c = np.moveaxis(_well_conditioned(rng, batch + (1, n), dtype), -1, 0)
            b = _random(rng, batch + (2, n), dtype).astype(dtype)
            return (c, b), {"caxis": 0, "baxis": -1, "outaxis": -2}
        if kind == "real_c":           # a real c against a complex b (a real c̄)
            real = np.float32 if np.dtype(dtype) == np.complex64 else np.float64
            return (_well_conditioned(rng, batch + (n,), real),
                    _random(rng, batch + (n,), dtype).astype(dtype)), \
                {"baxis": -1, "outaxis": -1}
        raise ValueError(kind)
    return make


def _lstsq_make(rng, n, batch, dtype):
    c = _with_zero_modes(rng, batch + (1, n), dtype)
    b = _random(rng, batch + (2, n), dtype).astype(dtype)
    return (c, b), {"singular": "lstsq", "tol": 0.25, "baxis": -1, "outaxis": -1}


def _solve_reference(c, b, singular="raise", tol=None, caxis=-1, baxis=0, outaxis=0):
    """SciPy's solve_circulant; with singular='lstsq' in the layout where SciPy's mask is
    right (vectors last), moved back after."""
    import scipy.linalg
    dtype = C.result_dtype("reference", np.asarray(c), np.asarray(b))
    if singular == "lstsq":
        x = scipy.linalg.solve_circulant(np.moveaxis(c, caxis, -1), np.moveaxis(b, baxis, -1),
                                         singular=singular, tol=tol, baxis=-1, outaxis=-1)
        x = np.moveaxis(x, -1, outaxis)
    else:
        x = scipy.linalg.solve_circulant(c, b, singular=singular, tol=tol, caxis=caxis,
                                         baxis=baxis, outaxis=outaxis)
    return np.asarray(x).astype(dtype, copy=False)


def _circulant_reference(c):
    import scipy.linalg
    return scipy.linalg.circulant(c)


_REFS = ("Davis, Circulant Matrices (1979)",
         "Golub & Van Loan, Matrix Computations, 4th ed., section 4.8 (circulant systems)",
         "Giles 2008")

RULES = (
    Rule(
        name="solve_circulant",
        fun=solve_circulant,
        primitive=_csolve,
        domains=(
            Domain("vector", _solve_domain("vector"),
                   "stacks of c (..., n) (dominant c[0]) against one b (n,): x (n, ...)"),
            Domain("matrix", _solve_domain("matrix"),
                   "c (n,) (stacks (..., 1, n)) against b (n, 2), SciPy's default axes"),
            Domain("axes", _solve_domain("axes"),
                   "caxis=0, baxis=-1, outaxis=-2: c (n, ..., 1), b (..., 2, n)"),
            Domain("real_c", _solve_domain("real_c"),
                   "a real c against a complex b (c̄ real)", complex_only=True),
            Domain("lstsq", _lstsq_make,
                   "singular='lstsq', tol=0.25: c with exactly zero eigenvalues (|λ| ≥ 1 "
                   "for the others), b (..., 2, n); the dropped modes stay dropped under "
                   "finite-difference steps"),
        ),
        derivation="docs/derivations/circulant.md",
        reference=_solve_reference,
        references=_REFS,
    ),
    Rule(
        name="circulant",
        fun=circulant,
        primitive=_assemble,
        domains=(
            Domain("vector", lambda rng, n, batch, dtype: (
                (_random(rng, batch + (n,), dtype).astype(dtype),), {}),
                "c (..., n): circulant matrices (..., n, n)"),
        ),
        derivation="docs/derivations/circulant.md",
        reference=_circulant_reference,
        references=_REFS,
    ),
)
