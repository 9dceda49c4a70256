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
backward pass is differentiable to any order.  At first order the reverse pass is
one fused kernel that reads the same formula in the right singular basis (six
products for a square A; polar.md, end of section 4).

The other cases reduce to this one: the left factor of A is the right one of
Aᴴ (A = P U ⟺ Aᴴ = Uᴴ P), and the large, singular factor (right side with
m < n, left side with m > n) is P = UᴴA (right) or A Uᴴ (left), a
differentiable product with the unitary factor of the small case.
"""

from __future__ import annotations

import warnings

import numpy as np

from .. import ops, transforms
from ..backend import kernels_for, namespace_of
from ..registry import Domain, Rule
from ..tape import Primitive
from ..testing import matrices as M
from . import _common as C
from ._spectral import GaugeWarning

__all__ = ["polar", "orthogonal_procrustes", "RULES"]


# -- kernels on plain arrays -------------------------------------------------------------------

def _h(x):
    """xᴴ of a plain array (NumPy or CuPy)."""
    t = x.swapaxes(-1, -2)
    return t.conj() if x.dtype.kind == "c" else t


def _safe_reciprocal(xp, d):
    """1/d, with 0 where d is below the smallest normal number (rank deficiency)."""
    tiny = np.finfo(d.dtype).tiny
    if d.size and bool(d.min() > tiny):       # full rank: no guard needed (one reduction)
        return 1 / d
    zero = d <= tiny
    return xp.where(zero, 0, 1 / xp.where(zero, 1, d)).astype(d.dtype, copy=False)


def _lyap_impl(P, Z, factors):
    """L⁻¹(Z): the solution of P Y + Y P = Z for Hermitian PSD P = V diag(s) Vᴴ."""
    V, s = factors[:2]
    xp = namespace_of(V)
    G = _safe_reciprocal(xp, s[..., :, None] + s[..., None, :])
    VH = _h(V)
    return V @ (((VH @ Z) @ V) * G) @ VH


def _rdiv_impl(Z, P, factors):
    """Z P⁻¹ for Hermitian PSD P = V diag(s) Vᴴ (1/s → 0 below the smallest normal)."""
    V, s = factors[:2]
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
    """(U, P) and the factors (V, s, W) of the thin SVD A = W S Vᴴ the rules reuse."""
    W, s, Vh = kernels_for(A).svd(A, full_matrices=False, op="polar")
    V = _h(Vh)
    U = W @ Vh
    if A.dtype.kind == "f":
        # P = Y Yᵀ with Y = V S^½: NumPy's syrk for a product with its own transpose (half
        # the flops), and P comes out exactly symmetric
        Y = V * namespace_of(s).sqrt(s)[..., None, :]
        P = Y @ _h(Y)
    else:
        P = (V * s[..., None, :]) @ Vh
    return (U, P), (V, s, W)


def _rank_deficient(s, shape):
    """Is some matrix of the stack numerically rank deficient (s_min ≤ max(m, n)·eps·s_max)?"""
    if s.shape[-1] == 0:
        return False
    tol = max(shape[-2:]) * _EPS[s.dtype.char]
    if s.ndim == 1:                         # one matrix: two numbers
        return bool(s[-1] <= tol * s[0])
    return bool((s[..., -1] <= tol * s[..., 0]).any())


_EPS = {c: float(np.finfo(c).eps) for c in "fd"}


def _warn_rank(shape):
    warnings.warn(
        f"polar: a {shape} is (numerically) rank deficient, so its unitary polar factor u is "
        "not unique (any completion of the null space is valid) and not differentiable; the "
        "derivative returned treats 1/(s_i + s_j) and 1/s_i below the smallest normal number "
        "as 0 (docs/derivations/polar.md, section 6). The factor p is unique; a loss through "
        "p only gets a subgradient.", GaugeWarning, stacklevel=5)


def _cotangent_composed(U, P, U_bar, P_bar, *, factors):
    """Ā = U [P̄ + L⁻¹(Z − Zᴴ)] + (Ū − U K) P⁻¹ (tall only), K = UᴴŪ, Z = K − P̄ P, in
    differentiable operations: the definition, and what derivatives of the rule trace."""
    m, n = ops._shape(U)[-2:]
    K = ops.matmul(ops.mH(U), U_bar) if U_bar is not None else None
    Z = K
    if P_bar is not None:
        PP = ops.matmul(P_bar, P)
        Z = -PP if Z is None else Z - PP
    M_bar = _lyap(P, Z - ops.mH(Z), factors=factors)
    if P_bar is not None:
        M_bar = M_bar + P_bar
    A_bar = ops.matmul(U, M_bar)
    if m > n and U_bar is not None:
        A_bar = A_bar + _rdiv(U_bar - ops.matmul(U, K), P, factors=factors)
    return A_bar


def _cotangent_kernel(U, P, U_bar, P_bar, *, factors):
    """The same on plain arrays, in the right singular basis (A = W S Vᴴ, U = W Vᴴ):

        U L⁻¹(X) = W [(VᴴXV) ∘ G] Vᴴ,   VᴴZV = VᴴKV − T S,   VᴴKV = (WᴴŪ) V,
        U P̄ = W T Vᴴ,   (Ū − U K) P⁻¹ = (ŪV − W VᴴKV) S⁻¹ Vᴴ,   T = VᴴP̄V,

    (P V = V S, U K = W WᴴŪ), so Ā = [W (Y − VᴴKV S⁻¹) + ŪV S⁻¹] Vᴴ with
    Y = [(VᴴXV) ∘ G] + T (the S⁻¹ terms tall only): six products for a square A
    (seven with the two primitives), seven for a tall one (ten)."""
    V, s, W = factors
    xp = namespace_of(V)
    m, n = U.shape[-2:]
    Vh = _h(V)
    Y = KV = T = None
    if U_bar is not None:
        KV = (_h(W) @ U_bar) @ V                            # Vᴴ K V, K = Uᴴ Ū
        Y = KV
    if P_bar is not None:
        T = (Vh @ P_bar) @ V                                # Vᴴ P̄ V
        Y = -T * s[..., None, :] if Y is None else Y - T * s[..., None, :]
    Y = (Y - _h(Y)) * _safe_reciprocal(xp, s[..., :, None] + s[..., None, :])
    if T is not None:
        Y += T
    if m > n and U_bar is not None:                         # the tall term
        d = _safe_reciprocal(xp, s)[..., None, :]
        Y -= KV * d
        return (W @ Y + (U_bar @ V) * d) @ Vh
    return W @ (Y @ Vh)


_cotangent = transforms.fused("polar_cotangent", _cotangent_kernel, _cotangent_composed)


def polar_vjp(cts, needs, out, res, A):
    U_bar, P_bar = cts
    U, P = out
    s = res[1]
    m, n = ops._shape(A)[-2:]
    if U_bar is not None and _rank_deficient(s, (m, n)) and bool((C.value(U_bar) != 0).any()):
        _warn_rank((m, n))
    if U_bar is None and P_bar is None:
        return (None,)
    return (ops.fit(_cotangent(U, P, U_bar, P_bar, factors=res), A),)


def polar_jvp(tangents, out, res, A):
    (A_dot,) = tangents
    U, P = out
    s = res[1]
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
    gets a finite subgradient.  The backward pass costs 6 (square) to 7
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


def orthogonal_procrustes(A, B, check_finite=True):
    """The unitary R minimizing ‖A R − B‖_F, and the scale Σσ(Aᴴ B), differentiable in A
    and B (scipy.linalg.orthogonal_procrustes).

    ``A`` and ``B`` are (..., m, n), the stacks broadcast (as SciPy 1.17's), each pair
    solved on its own.  R = u vᴴ from the SVD Aᴴ B = u s vᴴ is the unitary polar
    factor of Aᴴ B, and scale = Σ s its nuclear norm = tr of the polar factor p: both
    through :func:`polar`, whose backward pass reuses the forward SVD (polar.md, §9).
    Returns ``(R, scale)``, R (..., n, n), scale (...,) real.

    Valid when: Aᴴ B has full rank n (else R is not unique: a loss that depends on R warns,
    as :func:`polar` does; scale's gradient is a subgradient there).
    """
    op = "orthogonal_procrustes"
    av, bv = C.peek(A), C.peek(B)
    if av.ndim < 2 or bv.ndim < 2:
        raise ValueError(f"{op}: A and B must be 2-D arrays (or stacks of them); got shapes "
                         f"{av.shape} and {bv.shape}")
    if av.shape[-2:] != bv.shape[-2:]:
        raise ValueError(f"{op}: the shapes of A and B differ ({av.shape} vs {bv.shape})")
    batch = C.stacks(op, A=av.shape, B=bv.shape)
    dtype = C.result_dtype(op, av, bv)
    C.checked(op, ("A", "B"), (A, B), check_finite)
    A, B = C.promote(A, dtype), C.promote(B, dtype)
    if av.shape[:-2] != batch:
        A = ops.broadcast_to(A, batch + av.shape[-2:])
    if bv.shape[:-2] != batch:
        B = ops.broadcast_to(B, batch + bv.shape[-2:])
    R, P = polar(ops.matmul(ops.mH(A), B), check_finite=False)
    scale = ops.trace(P, axis1=-2, axis2=-1)
    return R, (ops.real(scale) if ops._is_complex(scale) else scale)


def orthogonal_procrustes_reference(A, B):
    import scipy.linalg
    batch = np.broadcast_shapes(A.shape[:-2], B.shape[:-2])
    A, B = np.broadcast_to(A, batch + A.shape[-2:]), np.broadcast_to(B, batch + B.shape[-2:])
    pairs = [scipy.linalg.orthogonal_procrustes(a, b) for a, b in
             zip(A.reshape((-1,) + A.shape[-2:]), B.reshape((-1,) + B.shape[-2:]))]
    n = A.shape[-1]
    return (np.stack([p[0] for p in pairs]).reshape(batch + (n, n)),
            np.array([p[1] for p in pairs]).reshape(batch))


def _procrustes_domain(m, n):
    def make(rng, _n, batch, dtype):
        A = M.random_general(rng, max(m, n), batch, dtype)[..., :m, :n]
        Q = np.linalg.qr(M.random_general(rng, n, batch, dtype))[0]
        B = A @ Q + 0.1 * M.random_general(rng, max(m, n), batch, dtype)[..., :m, :n]
        return (np.ascontiguousarray(A).astype(dtype), B.astype(dtype)), {}
    return make


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
    Rule(
        name="orthogonal_procrustes",
        fun=orthogonal_procrustes,
        primitive=_polar,
        domains=(
            Domain("square", _procrustes_domain(3, 3), "3×3, B a rotated A plus noise"),
            Domain("tall", _procrustes_domain(5, 3), "5×3"),
        ),
        derivation="docs/derivations/polar.md",
        reference=orthogonal_procrustes_reference,
        references=("Schönemann 1966, A generalized solution of the orthogonal Procrustes "
                    "problem",),
    ),
)
