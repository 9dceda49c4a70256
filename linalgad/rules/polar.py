"""polar: A = U P (right) or P U (left).   Derivation: docs/derivations/polar.md

The unitary factor is U = W Vᴴ from the thin SVD A = W S Vᴴ (the same U for
both sides); the positive semidefinite factor is P = V S Vᴴ = (AᴴA)^{1/2}
(right) or W S Wᴴ = (AAᴴ)^{1/2} (left).

One primitive does the work, for m ≥ n and the right side (P small, n×n):

    M = Uᴴ dA,   Ω = Uᴴ dU = L⁻¹(M − Mᴴ),   L(Y) = P Y + Y P
    dP = M − Ω P,   dU = U Ω + (dA − U M) P⁻¹        (the last term only for m > n)
Reverse  K = UᴴŪ,  Z = K − P̄ P,
    Ā = U [P̄ + L⁻¹(Z − Zᴴ)] + (Ū − U K) P⁻¹          (the last term only for m > n)

L⁻¹ and P⁻¹ act in the eigenbasis of P (P = V S Vᴴ, kept from the forward
SVD): L⁻¹(Z) = V [(VᴴZV) ∘ 1/(s_i + s_j)] Vᴴ.  Only sums s_i + s_j appear, so
the rule is exact at repeated singular values.  Both are primitives with the
factors as a cache and their own derivative rules (in P and Z), so the
backward pass is differentiable to any order.

The other cases reduce to this one: the left factor of A is the right one of
Aᴴ (A = P U ⟺ Aᴴ = Uᴴ P), and the large, singular factor (right side with
m < n, left side with m > n) is P = UᴴA (right) or A Uᴴ (left), a
differentiable product with the unitary factor of the small case.
"""

from __future__ import annotations

import warnings

import numpy as np

from .. import ops
from ..backend import kernels_for, namespace_of
from ..registry import Domain, Rule
from ..tape import Primitive
from . import _common as C
from ._spectral import GaugeWarning

__all__ = ["polar", "RULES"]


# -- kernels on plain arrays -------------------------------------------------------------------

def _h(x):
    """xᴴ of a plain array (NumPy or CuPy)."""
    t = x.swapaxes(-1, -2)
    return t.conj() if x.dtype.kind == "c" else t


def _safe_reciprocal(xp, d):
    """1/d, with 0 where d is below the smallest normal number (rank deficiency)."""
    zero = d <= np.finfo(d.dtype).tiny
    return xp.where(zero, 0, 1 / xp.where(zero, 1, d)).astype(d.dtype, copy=False)


def _lyap_impl(P, Z, factors):
    """L⁻¹(Z): the solution of P Y + Y P = Z for Hermitian PSD P = V diag(s) Vᴴ."""
    V, s = factors
    xp = namespace_of(V)
    G = _safe_reciprocal(xp, s[..., :, None] + s[..., None, :])
    VH = _h(V)
    return V @ (((VH @ Z) @ V) * G) @ VH


def _rdiv_impl(Z, P, factors):
    """Z P⁻¹ for Hermitian PSD P = V diag(s) Vᴴ (1/s → 0 below the smallest normal)."""
    V, s = factors
    xp = namespace_of(V)
    return ((Z @ V) * _safe_reciprocal(xp, s)[..., None, :]) @ _h(V)


# -- L⁻¹ and P⁻¹ as differentiable primitives (in P and Z; the factors are a cache) ---------

def _lyap_vjp(Y_bar, needs, Y, res, P, Z, factors):
    """Z̄ = L⁻¹(Ȳ) (L is self-adjoint for Hermitian P),  P̄ = −(Z̄ Yᴴ + Yᴴ Z̄)."""
    Z_bar = _lyap(P, Y_bar, factors=factors)
    P_bar = None
    if needs[0]:
        YH = ops.mH(Y)
        P_bar = ops.fit(-(ops.matmul(Z_bar, YH) + ops.matmul(YH, Z_bar)), P)
    return P_bar, (ops.fit(Z_bar, Z) if needs[1] else None)


def _lyap_jvp(tangents, Y, res, P, Z, factors):
    """Ẏ = L⁻¹(Ż − Ṗ Y − Y Ṗ)."""
    P_dot, Z_dot = tangents
    R = Z_dot
    if P_dot is not None:
        PY = ops.matmul(P_dot, Y) + ops.matmul(Y, P_dot)
        R = -PY if R is None else R - PY
    return _lyap(P, R, factors=factors)


_lyap = Primitive("polar_lyap", _lyap_impl, _lyap_vjp, _lyap_jvp)


def _rdiv_vjp(Y_bar, needs, Y, res, Z, P, factors):
    """Z̄ = Ȳ P⁻¹,  P̄ = −Yᴴ Z̄."""
    Z_bar = _rdiv(Y_bar, P, factors=factors)
    P_bar = ops.fit(-ops.matmul(ops.mH(Y), Z_bar), P) if needs[1] else None
    return (ops.fit(Z_bar, Z) if needs[0] else None), P_bar


def _rdiv_jvp(tangents, Y, res, Z, P, factors):
    """Ẏ = (Ż − Y Ṗ) P⁻¹."""
    Z_dot, P_dot = tangents
    R = Z_dot
    if P_dot is not None:
        YP = ops.matmul(Y, P_dot)
        R = -YP if R is None else R - YP
    return _rdiv(R, P, factors=factors)


_rdiv = Primitive("polar_rdiv", _rdiv_impl, _rdiv_vjp, _rdiv_jvp)


# -- the polar primitive: A (m ≥ n) = U P, P n×n -----------------------------------------------

def polar_forward(A):
    W, s, Vh = kernels_for(A).svd(A, full_matrices=False, op="polar")
    V = _h(Vh)
    U = W @ Vh
    P = (V * s[..., None, :]) @ Vh
    return (U, P), (V, s)


def _rank_deficient(s, shape):
    """Is some matrix of the stack numerically rank deficient (s_min ≤ max(m, n)·eps·s_max)?"""
    if s.shape[-1] == 0:
        return False
    eps = float(np.finfo(s.dtype).eps)
    return bool((s[..., -1] <= max(shape[-2:]) * eps * s[..., 0]).any())


def _warn_rank(shape):
    warnings.warn(
        f"polar: a {shape} is (numerically) rank deficient, so its unitary polar factor u is "
        "not unique (any completion of the null space is valid) and not differentiable; the "
        "derivative returned treats 1/(s_i + s_j) and 1/s_i below the smallest normal number "
        "as 0 (docs/derivations/polar.md, section 6). The factor p is unique; a loss through "
        "p only gets a subgradient.", GaugeWarning, stacklevel=5)


def polar_vjp(cts, needs, out, res, A):
    U_bar, P_bar = cts
    U, P = out
    V, s = res
    m, n = ops._shape(A)[-2:]
    if U_bar is not None and bool((C.value(U_bar) != 0).any()) and _rank_deficient(s, (m, n)):
        _warn_rank((m, n))
    K = ops.matmul(ops.mH(U), U_bar) if U_bar is not None else None
    Z = K
    if P_bar is not None:
        PP = ops.matmul(P_bar, P)
        Z = -PP if Z is None else Z - PP
    if Z is None:
        return (None,)
    M_bar = _lyap(P, Z - ops.mH(Z), factors=res)
    if P_bar is not None:
        M_bar = M_bar + P_bar
    A_bar = ops.matmul(U, M_bar)
    if m > n and U_bar is not None:
        A_bar = A_bar + _rdiv(U_bar - ops.matmul(U, K), P, factors=res)
    return (ops.fit(A_bar, A),)


def polar_jvp(tangents, out, res, A):
    (A_dot,) = tangents
    U, P = out
    V, s = res
    m, n = ops._shape(A)[-2:]
    if _rank_deficient(s, (m, n)):
        _warn_rank((m, n))
    M = ops.matmul(ops.mH(U), A_dot)
    Om = _lyap(P, M - ops.mH(M), factors=res)
    P_dot = M - ops.matmul(Om, P)
    U_dot = ops.matmul(U, Om)
    if m > n:
        U_dot = U_dot + _rdiv(A_dot - ops.matmul(U, M), P, factors=res)
    return U_dot, P_dot


_polar = Primitive("polar", polar_forward, polar_vjp, polar_jvp, staged=True,
                   multiple_results=True)


def polar(a, side="right", *, check_finite=True):
    """Polar decomposition ``a = u @ p`` (right) or ``a = p @ u`` (left), differentiable.

    scipy.linalg.polar: ``a`` is (..., m, n) (stacks are decomposed matrix by
    matrix).  Returns ``(u, p)``: u (..., m, n) has orthonormal columns (m ≥ n)
    or rows (m < n); p is Hermitian positive semidefinite, (..., n, n) for
    side='right' (p = (aᴴa)^{1/2}) and (..., m, m) for side='left'
    (p = (aaᴴ)^{1/2}).  Computed from the thin SVD a = w s vᴴ: u = w vᴴ.
    Raises ValueError for a ``side`` other than 'right'/'left', for infs or
    NaNs (``check_finite``) and for fewer than 2 dimensions.

    Valid when: a has full rank min(m, n).  The derivative is exact at
    repeated singular values (only the sums s_i + s_j appear, never the gaps).
    At a rank-deficient a the unitary factor u is not unique; the reverse pass
    then warns (GaugeWarning) for a loss that depends on u (forward mode warns
    always), and returns the derivative with 1/(s_i + s_j), 1/s_i below the
    smallest normal number taken as 0; p is unique and a loss through p only
    gets a finite subgradient.  The backward pass costs 7 (square) to 10
    (tall) matrix products, reusing the forward SVD.
    """
    op = "polar"
    if side not in ("right", "left"):
        raise ValueError(f"{op}: `side` must be either 'right' or 'left'; got {side!r}")
    v = C.peek(a)
    if v.ndim < 2:
        raise ValueError(f"{op}: `a` must be a 2-D array (or a stack of them); got shape "
                         f"{v.shape}")
    A = C.prepare(op, a, check_finite, square=False)
    m, n = v.shape[-2:]
    if side == "right":
        if m >= n:
            return _polar(A)
        Ut, _ = _polar(ops.mH(A))
        U = ops.mH(Ut)
        return U, ops.matmul(ops.mH(U), A)
    if m <= n:
        Ut, P = _polar(ops.mH(A))
        return ops.mH(Ut), P
    U, _ = _polar(A)
    return U, ops.matmul(A, ops.mH(U))


def polar_reference(a, side="right"):
    import scipy.linalg
    flat = a.reshape((-1,) + a.shape[-2:])
    pairs = [scipy.linalg.polar(x, side=side) for x in flat]
    return tuple(np.stack([p[i] for p in pairs]).reshape(a.shape[:-2] + pairs[0][i].shape)
                 for i in range(2))


RULES = (
    Rule(
        name="polar",
        fun=polar,
        primitive=_polar,
        domains=(
            Domain("square-right", C.rect_domain(3, 3, side="right"), "3×3, a = u p"),
            Domain("tall-right", C.rect_domain(4, 3, side="right"), "4×3, a = u p"),
            Domain("wide-right", C.rect_domain(2, 3, side="right"),
                   "2×3, a = u p with the 3×3 singular p = uᴴa"),
            Domain("square-left", C.rect_domain(3, 3, side="left"), "3×3, a = p u"),
            Domain("tall-left", C.rect_domain(4, 3, side="left"),
                   "4×3, a = p u with the 4×4 singular p = a uᴴ"),
        ),
        derivation="docs/derivations/polar.md",
        reference=polar_reference,
        references=("Higham 1986", "Higham, Functions of Matrices 2008, ch. 8"),
    ),
)
