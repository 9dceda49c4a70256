"""hessenberg: A = Q H Qᴴ.   Derivation: docs/derivations/hessenberg.md

H upper Hessenberg, Q unitary with Q e₁ = e₁ (LAPACK gehrd's reflectors leave the first row
and column alone) and, for complex A, a real subdiagonal of H (zlarfg's real β): the gauge
that makes (H, Q) a smooth function of A where H is unreduced.

    E = Qᴴ dA Q,  Ω = Qᴴ dQ (skew-Hermitian, first row and column zero, imaginary diagonal)
    dH = E + HΩ − ΩH,  dQ = QΩ
    Ω = K_H⁻¹ P_V(−E):  tril(dH, −2) = 0 and Im diag(dH, −1) = 0, solved column by column
        (an Arnoldi-like recurrence dividing by the subdiagonal h_{j+1,j}: hessenberg_omega)
Reverse  H̄ₚ = triu(H̄, −1) with a real subdiagonal,  M = QᴴQ̄ + HᴴH̄ₚ − H̄ₚHᴴ,
         Y = P_V K_H⁻ᴴ P_U(M)  (the adjoint sweep, j = n − 2, …, 0: hessenberg_omega_adjoint),
         Ā = Q (H̄ₚ − Y) Qᴴ
Forward  Ḣ = triu(E + HΩ − ΩH, −1) with a real subdiagonal,  Q̇ = QΩ

The two sweeps are primitives whose own derivatives are written with each other (like a
solve and its adjoint solve): ω = K_H⁻¹P_V(G) has ω̇ = K_H⁻¹P_V(Ġ − ḢΩ + ΩḢ), Ḡ = Sᴴ(Ω̄),
H̄ = YΩ − ΩY; so every order of derivative stays on the pair.
"""

from __future__ import annotations

import numpy as np

from .. import ops
from ..backend import (hessenberg_omega, hessenberg_omega_adjoint, hessenberg_reduce,
                       namespace_of)
from ..registry import Domain, Rule
from ..tape import Primitive, Tracer
from ..testing import matrices as M
from . import _common as C

__all__ = ["hessenberg", "RULES"]

OP = "hessenberg"


# -- the structure: Hessenberg with a real subdiagonal -------------------------------------------

def _project(X):
    """triu(X, −1), the imaginary part of the subdiagonal removed for complex X: the
    orthogonal projection onto the tangent space of H (Hessenberg, real subdiagonal)."""
    X = ops.triu(X, -1)
    if ops._is_complex(X):
        sub = ops.imag(ops.diagonal(X, -1, -2, -1))
        X = X - 1j * ops._embed_diagonal(sub, shape=ops._shape(X), offset=-1, axis1=-2,
                                         axis2=-1)
    return X


def _commutator(X, Y):
    """X Y − Y X."""
    return ops.matmul(X, Y) - ops.matmul(Y, X)


# -- Ω = K_H⁻¹ P_V(G) and its adjoint Y = P_V K_H⁻ᴴ P_U(M): a solve and its adjoint solve ---------

def _omega_impl(H, G):
    return hessenberg_omega(H, G, OP)


def _omega_adj_impl(H, Mx):
    return hessenberg_omega_adjoint(H, Mx, OP)


def _omega_jvp(tangents, Om, res, H, G):
    """K_H Ω = P_V G: K_H Ω̇ = P_V(Ġ − (ḢΩ − ΩḢ))."""
    H_dot, G_dot = tangents
    rhs = G_dot
    if H_dot is not None:
        t = _commutator(Om, H_dot)                  # ΩḢ − ḢΩ
        rhs = t if rhs is None else rhs + t
    return _omega(H, rhs)


def _omega_vjp(Om_bar, needs, Om, res, H, G):
    """Ḡ = Y = Sᴴ(Ω̄);  H̄ = YΩ − ΩY (from ω̇ = S(ΩḢ − ḢΩ))."""
    Y = _omega_adj(H, Om_bar)
    H_bar = ops.fit(_commutator(Y, Om), H) if needs[0] else None
    G_bar = ops.fit(Y, G) if needs[1] else None
    return H_bar, G_bar


def _omega_adj_jvp(tangents, Y, res, H, Mx):
    """K_Hᴴ Y = P_U M with K_Hᴴ Y = P_U(HᴴY − YHᴴ): Ẏ = Sᴴ(Ṁ − (ḢᴴY − YḢᴴ))."""
    H_dot, M_dot = tangents
    rhs = M_dot
    if H_dot is not None:
        t = _commutator(Y, ops.mH(H_dot))           # YḢᴴ − ḢᴴY
        rhs = t if rhs is None else rhs + t
    return _omega_adj(H, rhs)


def _omega_adj_vjp(Y_bar, needs, Y, res, H, Mx):
    """M̄ = Z = S(Ȳ);  H̄ = YZ − ZY (from Ẏ = Sᴴ(YḢᴴ − ḢᴴY))."""
    Z = _omega(H, Y_bar)
    H_bar = ops.fit(_commutator(Y, Z), H) if needs[0] else None
    M_bar = ops.fit(Z, Mx) if needs[1] else None
    return H_bar, M_bar


_omega = Primitive("hessenberg_omega", _omega_impl, _omega_vjp, _omega_jvp)
_omega_adj = Primitive("hessenberg_omega_adjoint", _omega_adj_impl, _omega_adj_vjp,
                       _omega_adj_jvp)


# -- the reduction --------------------------------------------------------------------------------

def _hess_impl(A):
    return hessenberg_reduce(A, True, OP)


def _hess_vjp(cts, needs, out, res, A):
    """Ā = Q (H̄ₚ − Y) Qᴴ, Y = Sᴴ(QᴴQ̄ + HᴴH̄ₚ − H̄ₚHᴴ)."""
    H_bar, Q_bar = cts
    H, Q = out
    Hb = None if H_bar is None else _project(H_bar)
    Mx = None
    if Q_bar is not None:
        Mx = ops.matmul(ops.mH(Q), Q_bar)
    if Hb is not None:
        t = _commutator(ops.mH(H), Hb)              # HᴴH̄ₚ − H̄ₚHᴴ
        Mx = t if Mx is None else Mx + t
    E_bar = -_omega_adj(H, Mx)
    if Hb is not None:
        E_bar = E_bar + Hb
    return (ops.fit(ops.matmul(Q, ops.matmul(E_bar, ops.mH(Q))), A),)


def _hess_jvp(tangents, out, res, A):
    """E = QᴴȦQ, Ω = S(−E): Ḣ = P(E + HΩ − ΩH), Q̇ = QΩ."""
    (A_dot,) = tangents
    H, Q = out
    E = ops.matmul(ops.mH(Q), ops.matmul(A_dot, Q))
    Om = _omega(H, -E)
    return _project(E + _commutator(H, Om)), ops.matmul(Q, Om)


_hess = Primitive("hessenberg", _hess_impl, _hess_vjp, _hess_jvp, multiple_results=True)


def hessenberg(a, calc_q=False, overwrite_a=False, check_finite=True):
    """Hessenberg form ``a = Q @ H @ Q^H``, differentiable (scipy.linalg.hessenberg).

    ``a`` is (..., n, n) (stacks as SciPy 1.17).  Returns H, or ``(H, Q)`` with
    ``calc_q=True``: H upper Hessenberg (zero below the first subdiagonal), Q
    unitary/orthogonal with first row and column e₁.  The values are SciPy's
    (LAPACK gehrd/orghr, the same calls): for complex a the subdiagonal of H is real.
    For n <= 2 the matrix is already Hessenberg: H = a and Q = I, as SciPy (whose Q is
    then float64 whatever a's dtype; here Q has a's inexact dtype, and an integer a gives
    a float64 H where SciPy returns a itself).  An empty matrix or stack gives empty H
    and Q (SciPy 1.17 raises for a stack with no matrices).  Integer and boolean a are
    reduced in float64 (linalgad's rule, NumPy's; SciPy picks float32 for those of up to
    16 bits), float16 in float32.  ``overwrite_a`` is accepted and ignored;
    ``check_finite`` as SciPy.  ValueError (naming hessenberg) for a non-square input and
    for infs or NaNs.

    Derivatives (reverse and forward, every order) in O(n³): the gauge above (Q e₁ = e₁,
    a real subdiagonal) makes (H, Q) a smooth function of a where H is unreduced, so
    the derivative is that of SciPy's own output (hessenberg.md).  On the GPU the
    reduction runs on the host (CuPy has none); the derivative sweeps on the device.

    Valid when: every subdiagonal entry of H is nonzero (a is unreduced).  Derivatives
    divide by them: a derivative at an H with |H[j+1, j]| <= n ε ‖H[1:, :]‖_F raises
    LinAlgError naming hessenberg (and the matrix of a stack); there the reduction is
    not differentiable (its reflectors' signs jump).  Values are never refused.  H and
    Q also jump where LAPACK's sign choice flips (the real part of a reflector's
    leading entry crossing zero); between those points they are smooth.  An a that is
    already upper Hessenberg (unreduced) is such a point: SciPy returns (a, I) but flips
    subdiagonal signs at every nearby matrix; the derivative returned is that of the
    branch through the returned value (hessenberg.md, section 6).
    """
    (a,) = C.array_args(OP, a=a)
    v = C.peek(a)
    if v.ndim < 2 or v.shape[-1] != v.shape[-2]:
        raise ValueError(f"{OP}: expected a square matrix or a stack of square matrices "
                         f"(..., n, n); got shape {v.shape}")
    dtype = C.result_dtype(OP, v)
    C.checked(OP, ("a",), (a,), check_finite)
    A = C.promote(a, dtype)
    n = v.shape[-1]
    if n <= 2:      # already Hessenberg: H = a, Q = I (SciPy's shortcut; no gauge to fix)
        H = A if isinstance(A, Tracer) else (A.copy() if A is a else A)
        if not calc_q:
            return H
        xp = namespace_of(C.peek(A))
        Q = xp.broadcast_to(xp.eye(n, dtype=dtype), v.shape).copy()
        return H, Q
    if not calc_q and not isinstance(A, Tracer):
        return hessenberg_reduce(A, False, OP)
    H, Q = _hess(A)
    return (H, Q) if calc_q else H


# -- reference (SciPy alone) and registry domains ------------------------------------------------

def hessenberg_reference(a, calc_q=False):
    """scipy.linalg.hessenberg (batched in SciPy 1.17), in a's dtype (SciPy's Q for n <= 2 is
    float64)."""
    import scipy.linalg as sl
    out = sl.hessenberg(a, calc_q=calc_q)
    if calc_q:
        return np.asarray(out[0]).astype(a.dtype), np.asarray(out[1]).astype(a.dtype)
    return np.asarray(out).astype(a.dtype)


def _fun(a, calc_q=False):
    out = hessenberg(a, calc_q=calc_q)
    return tuple(out) if calc_q else out


_fun.__doc__ = hessenberg.__doc__


def _general(size=None, calc_q=False):
    """A well-conditioned random matrix (testing.matrices.random_general: Haar factors,
    singular values in [1, 10]); its Hessenberg form is unreduced with probability 1."""
    def make(rng, n, batch, dtype):
        return (M.random_general(rng, size or n, batch, dtype),), {"calc_q": calc_q}
    return make


RULES = (
    Rule(
        name="hessenberg",
        fun=_fun,
        primitive=_hess,
        domains=(
            Domain("h", _general(), "Gaussian / √n, H only"),
            Domain("hq", _general(calc_q=True), "Gaussian / √n, (H, Q)"),
            Domain("hq-5", _general(5, calc_q=True), "5×5 Gaussian / √5, (H, Q)"),
            Domain("small", _general(2, calc_q=True), "2×2: H = a, Q = I (SciPy's shortcut)"),
        ),
        derivation="docs/derivations/hessenberg.md",
        reference=hessenberg_reference,
        references=("Golub & Van Loan, Matrix Computations, 4th ed., 7.4.2-7.4.3 (the "
                    "implicit Q theorem)", "LAPACK gehrd, zlarfg (real β)", "Giles 2008",
                    "Walter & Lehmann 2018"),
    ),
)
