"""cholesky, cho_factor / cho_solve, logdet.   Derivation: docs/derivations/cholesky.md

cholesky   A = L Lᴴ, L lower with a positive diagonal, A read from one triangle.
           X = L⁻¹ dA L⁻ᴴ,  dL = L Φ(X),  Φ(X) = tril(X, −1) + ½ diag(X).
           Reverse: G = Φ(Lᴴ L̄), Ā_h = L⁻ᴴ ½(G + Gᴴ) L⁻¹ — two triangular
           solves and one product, no inverse — then projected onto the
           triangle that was read.  Upper (U = Lᴴ): the same with L = Uᴴ.
cho_solve  x = (L Lᴴ)⁻¹ b, one primitive: two triangular solves forward (the
           half-way y = L⁻¹ b kept), two backward (b̄ = A⁻¹ x̄ via u = L⁻¹ x̄),
           and the factor's cotangent as ONE projected product
           L̄ = −tril([b̄ x][y u]ᴴ); O(n² k), the factor reused.
logdet     ℓ = log det A = 2 Σ log Lᵢᵢ for Hermitian positive definite A.
           Reverse Ā_h = ℓ̄ A⁻¹ (from the forward factor), projected;
           forward ℓ̇ = Re tr(A⁻¹ Ȧ).
"""

from __future__ import annotations

import numpy as np

from .. import ops, transforms
from ..backend import kernels_for
from ..registry import Domain, Rule
from ..tape import Primitive, Tracer
from ..testing import matrices as M
from . import _common as C
from .solve import _solve
from .triangular import _trisolve, triangular_solve, trisolve_forward

__all__ = ["cholesky", "cho_factor", "cho_solve", "logdet", "RULES"]


def _phi(X):
    """Φ(X) = tril(X, −1) + ½ diag(X)."""
    d = ops.diagonal(X, 0, -2, -1)
    return ops.tril(X) - 0.5 * ops._embed_diagonal(d, shape=ops._shape(X), offset=0,
                                                    axis1=-2, axis2=-1)


def _hermitian(dtype):
    return np.dtype(dtype).kind == "c"


# -- cholesky -------------------------------------------------------------------------------

def cholesky_forward(A, *, lower=True):
    return kernels_for(A).cholesky(A, lower=lower, op="cholesky")


def _cotangent_composed(C_, C_bar, *, lower):
    """Ā_h = L⁻ᴴ ½(G + Gᴴ) L⁻¹, G = Φ(Lᴴ L̄), projected onto the triangle read — in
    differentiable operations: the definition, and what its derivatives trace."""
    if lower:
        L, L_bar = C_, C_bar
    else:
        L, L_bar = ops.mH(C_), ops.mH(C_bar)
    G = _phi(ops.matmul(ops.mH(L), L_bar))
    S = 0.5 * (G + ops.mH(G))
    if lower:
        Z = _trisolve(C_, S, lower=True, trans=2)                          # L⁻ᴴ S
        Ah = ops.mH(_trisolve(C_, ops.mH(Z), lower=True, trans=2))         # Z L⁻¹
    else:
        Z = _trisolve(C_, S, lower=False, trans=0)                         # U⁻¹ S = L⁻ᴴ S
        Ah = ops.mH(_trisolve(C_, ops.mH(Z), lower=False, trans=0))
    return C.triangle_cotangent(Ah, lower, _hermitian(ops._value(C_).dtype))


# The same map as one kernel call (BLAS trmm and two LAPACK solves for one matrix, a
# vectorised triangular inverse and batched products for a stack) — far fewer passes
# over memory than the composed form, whose derivatives it keeps.
_cotangent = transforms.fused(
    "cholesky_cotangent",
    lambda C_, C_bar, *, lower: kernels_for(C_, C_bar).cholesky_cotangent(C_, C_bar, lower),
    _cotangent_composed)


def cholesky_vjp(C_bar, needs, C_, res, A, *, lower=True):
    """Ā_h = L⁻ᴴ ½(G + Gᴴ) L⁻¹, G = Φ(Lᴴ L̄); then onto the triangle read."""
    return (ops.fit(_cotangent(C_, C_bar, lower=lower), A),)


def cholesky_jvp(tangents, C_, res, A, *, lower=True):
    """L̇ = L Φ(L⁻¹ Ȧ_h L⁻ᴴ), Ȧ_h the Hermitian tangent assembled from the triangle read."""
    (A_dot,) = tangents
    Ah_dot = C.from_triangle(A_dot, lower, _hermitian(ops._value(A).dtype))
    if lower:
        Y = _trisolve(C_, Ah_dot, lower=True, trans=0)                      # L⁻¹ Ȧ
        X = ops.mH(_trisolve(C_, ops.mH(Y), lower=True, trans=0))           # Y L⁻ᴴ
        return ops.matmul(C_, _phi(X))
    Y = _trisolve(C_, Ah_dot, lower=False, trans=2)                         # U⁻ᴴ Ȧ
    X = ops.mH(_trisolve(C_, ops.mH(Y), lower=False, trans=2))
    return ops.mH(ops.matmul(ops.mH(C_), _phi(X)))


_cholesky = Primitive("cholesky", cholesky_forward, cholesky_vjp, cholesky_jvp)


def cholesky(a, lower=None, *, upper=None, overwrite_a=False, check_finite=True):
    """Cholesky factor of a Hermitian positive definite matrix, differentiable.

    NumPy's convention by default: the lower factor L with a = L Lᴴ, read from
    the lower triangle of ``a`` (numpy.linalg.cholesky).  ``upper=True``
    (NumPy 2) or ``lower=False`` (scipy.linalg.cholesky's keyword; note that
    SciPy's *default* is the upper factor) returns U = Lᴴ with a = Uᴴ U, read
    from the upper triangle.  The other triangle is never read and receives
    no gradient; the imaginary part of the diagonal is ignored.

    ``a`` is (..., n, n).  Raises LinAlgError for a matrix that is not
    positive definite, naming its index in a stack.  ``overwrite_a`` is
    accepted and ignored.

    Valid when: a is Hermitian positive definite.  The backward pass is two
    triangular solves and a matrix product (no inverse), O(n³).
    """
    if lower is not None and upper is not None and bool(lower) == bool(upper):
        raise ValueError(f"cholesky: lower={lower!r} and upper={upper!r} contradict")
    low = not upper if upper is not None else (True if lower is None else bool(lower))
    return _cholesky(C.prepare("cholesky", a, check_finite), lower=low)


def cho_factor(a, lower=False, overwrite_a=False, check_finite=True):
    """``(c, lower)`` as scipy.linalg.cho_factor, for use with :func:`cho_solve`.

    ``c`` is the Cholesky factor (upper by default, as SciPy) with zeros in
    the other triangle (SciPy leaves it arbitrary), differentiable; it reads
    one triangle of ``a`` like :func:`cholesky`.  Stacks (..., n, n) allowed.

    Valid when: a is Hermitian positive definite.
    """
    c = _cholesky(C.prepare("cho_factor", a, check_finite), lower=bool(lower))
    return c, bool(lower)


def cho_solve(c_and_lower, b, overwrite_b=False, check_finite=True):
    """Solve ``a x = b`` given ``(c, lower) = cho_factor(a)``, differentiable in c and b.

    scipy.linalg.cho_solve.  Only the triangle of ``c`` named by ``lower`` is
    read.  ``b`` is (n,) or (..., n, k), stacks broadcast.  Composed of two
    triangular solves with ``c``: the gradient w.r.t. the factor and b costs
    O(n² k) and reuses ``c``.  ``overwrite_b`` is accepted and ignored.

    Valid when: the diagonal of c has no zero.
    """
    op = "cho_solve"
    try:
        c, lower = c_and_lower
    except (TypeError, ValueError):
        raise TypeError("cho_solve: the first argument must be the pair (c, lower) "
                        "returned by cho_factor") from None
    cv = C.square_matrix(op, c, "c")
    bv = C.peek(b)
    C.rhs_shape(op, cv.shape, bv.shape)
    dtype = C.result_dtype(op, cv, bv)
    C.checked(op, ("c", "b"), (c, b), check_finite)
    c, b = C.promote(c, dtype), C.promote(b, dtype)
    lower = bool(lower)
    return C.on_columns(lambda b_: _chosolve(c, b_, lower=lower), b)


def _steps(lower):
    """The two triangular solves: L⁻ᴴ(L⁻¹ b)  or  U⁻¹(U⁻ᴴ b)."""
    return (0, 2) if lower else (2, 0)


def chosolve_forward(c, b, *, lower):
    """x = (L Lᴴ)⁻¹ b; the residual is the half-way y = L⁻¹ b (U⁻ᴴ b) = Lᴴ x (U x)."""
    first, second = _steps(lower)
    y = trisolve_forward(c, b, lower=lower, trans=first, op="cho_solve")
    x = trisolve_forward(c, y, lower=lower, trans=second, op="cho_solve")
    return x, y


def _half(y, c, b, lower):
    """y as a differentiable function of (c, b) when they are traced, else the stored value."""
    if isinstance(c, Tracer) or isinstance(b, Tracer):
        return triangular_solve(c, b, lower=lower, trans=_steps(lower)[0], op="cho_solve")
    return y


def chosolve_vjp(x_bar, needs, x, y, c, b, *, lower):
    """u = L⁻¹ x̄, b̄ = L⁻ᴴ u;  L̄ = −tril(b̄ yᴴ + x uᴴ)   (U: u = U⁻ᴴ x̄, b̄ = U⁻¹ u,
    Ū = −triu(y b̄ᴴ + u xᴴ)): two triangular solves and ONE projected product."""
    if not (isinstance(c, Tracer) or isinstance(b, Tracer)):       # one plain matrix: fused
        fast = C.fitted_pair(kernels_for(c).cho_solve_cotangent(c, x_bar, x, y, lower,
                                                                 needs[0]), needs, c, b)
        if fast is not None:
            return fast
    first, second = _steps(lower)
    u = triangular_solve(c, x_bar, lower=lower, trans=first, op="cho_solve")
    b_bar = triangular_solve(c, u, lower=lower, trans=second, op="cho_solve")
    c_bar = None
    if needs[0]:
        yv = _half(y, c, b, lower)
        P = ops.concatenate([-b_bar, -x], axis=-1)
        Q = ops.concatenate([yv, u], axis=-1)
        if C.folds(ops._shape(c), P):           # one factor, a stack of right-hand sides
            P, Q = C.fold_stack(P), C.fold_stack(Q)
        c_bar = ops.fit(ops.tri_matmul(P, ops.mH(Q), lower=True) if lower
                        else ops.tri_matmul(Q, ops.mH(P), lower=False), c)
    return c_bar, (ops.fit(b_bar, b) if needs[1] else None)


def chosolve_jvp(tangents, x, y, c, b, *, lower):
    """With T the read triangle of ċ:  ẋ = A⁻¹(ḃ − T y) − L⁻ᴴ(Tᴴ x)  (lower),
    ẋ = A⁻¹(ḃ − Tᴴ y) − U⁻¹(T x)  (upper)."""
    c_dot, b_dot = tangents
    rhs, extra = b_dot, None
    if c_dot is not None:
        first, second = _steps(lower)
        T = ops.tril(c_dot) if lower else ops.triu(c_dot)
        yv = _half(y, c, b, lower)
        rhs_c = -ops.matmul(T if lower else ops.mH(T), yv)
        rhs = rhs_c if rhs is None else rhs + rhs_c
        extra = triangular_solve(c, ops.matmul(ops.mH(T) if lower else T, x), lower=lower,
                                 trans=second, op="cho_solve")
    out = _chosolve(c, rhs, lower=lower)
    out = out if extra is None else out - extra
    shape = ops._shape(x)
    return ops.broadcast_to(out, shape) if ops._shape(out) != shape else out


_chosolve = Primitive("cho_solve", chosolve_forward, chosolve_vjp, chosolve_jvp, staged=True)


# -- logdet ---------------------------------------------------------------------------------

def logdet_forward(A, *, lower=True):
    K = kernels_for(A)
    F = K.cho_factor(A, lower=lower, op="logdet")
    d = K.xp.diagonal(F.data, 0, -2, -1).real
    return 2 * K.xp.sum(K.xp.log(d), axis=-1), F


def _inverse_composed(full, *, F):
    """A⁻¹ as the solve of A X = I with the stored factor (differentiable in A)."""
    n = ops._shape(full)[-1]
    return _solve(full, C.eye_like(n, ops._value(full).dtype, ops._value(full)), kind="pos",
                  factors=F)


# A⁻¹ straight from the factor (LAPACK potri: a third of the solve's work), with the
# derivatives of the solve above.
_inverse_from_factor = transforms.fused(
    "cho_inverse", lambda full, *, F: kernels_for(full).cho_inverse(F), _inverse_composed)


def _inverse_pd(A, F, lower):
    """A⁻¹ from the stored factor, differentiable in (the read triangle of) A."""
    full = C.from_triangle(A, lower, _hermitian(ops._value(A).dtype))
    return _inverse_from_factor(full, F=F)


def _logdet_cotangent_composed(A, l_bar, *, F, lower):
    """Ā_h = ℓ̄ A⁻¹, projected onto the triangle read: the definition (differentiable)."""
    Ah = _inverse_pd(A, F, lower) * C.per_matrix_scalar(l_bar)
    return C.triangle_cotangent(Ah, lower, _hermitian(ops._value(A).dtype))


def _logdet_cotangent_kernel(A, l_bar, *, F, lower):
    return kernels_for(A).logdet_cotangent(F, l_bar)


# At first order one kernel call: potri's triangle of A⁻¹, folded and scaled in place
# (the full inverse, its mirror and the triangle projection of the composed form are
# never formed).
_logdet_cotangent = transforms.fused("logdet_cotangent", _logdet_cotangent_kernel,
                                     _logdet_cotangent_composed)


def logdet_vjp(l_bar, needs, l, F, A, *, lower=True):
    """Ā_h = ℓ̄ A⁻¹, projected onto the triangle read."""
    return (ops.fit(_logdet_cotangent(A, l_bar, F=F, lower=lower), A),)


def logdet_jvp(tangents, l, F, A, *, lower=True):
    """ℓ̇ = Re tr(A⁻¹ Ȧ_h)."""
    (A_dot,) = tangents
    Ah_dot = C.from_triangle(A_dot, lower, _hermitian(ops._value(A).dtype))
    t = ops.sum(ops.mT(_inverse_pd(A, F, lower)) * Ah_dot, axis=(-2, -1))
    return ops.real(t) if ops._is_complex(t) else t


_logdet = Primitive("logdet", logdet_forward, logdet_vjp, logdet_jvp, staged=True)


def logdet(a, lower=True, check_finite=True):
    """log det(a) of a Hermitian positive definite matrix, through Cholesky.

    The common Gaussian-likelihood term.  ``a`` is (..., n, n), read from its
    lower (default) or upper triangle; the result is real, shape (...).  The
    gradient is a⁻¹ on the triangle read (off-diagonal entries doubled, as
    they stand for both triangles), computed from the forward factor.
    Raises LinAlgError for a matrix that is not positive definite (naming
    its index in a stack).

    Valid when: a is Hermitian positive definite.
    """
    return _logdet(C.prepare("logdet", a, check_finite), lower=bool(lower))


# -- registry -------------------------------------------------------------------------------

def _spd_nonsym(rng, n, batch, dtype):
    # positive definite in the triangle read, noise in the other: only one triangle counts
    A = M.random_spd(rng, n, batch, dtype)
    noise = M.random_general(rng, n, batch, dtype)
    return (A + 0.3 * np.triu(noise, 1)).astype(dtype)


def _domain(**kw):
    def make(rng, n, batch, dtype):
        A = _spd_nonsym(rng, n, batch, dtype)
        if kw.get("lower") is False or kw.get("upper"):
            A = np.swapaxes(A, -1, -2).copy()      # noise below, the upper triangle is read
        return (A,), kw
    return make


def _cho_solve_domain(lower):
    def make(rng, n, batch, dtype):
        S = M.random_spd(rng, n, batch, dtype)
        c = np.linalg.cholesky(S, upper=not lower)
        c = c + 0.3 * (np.triu(M.random_general(rng, n, batch, dtype), 1) if lower else
                       np.tril(M.random_general(rng, n, batch, dtype), -1))
        return (c.astype(dtype), M.random_rhs(rng, n, 2, batch, dtype)), {"lower": lower}
    return make


def _cho_solve_fun(c, b, lower):
    return cho_solve((c, lower), b)


_cho_solve_fun.__doc__ = cho_solve.__doc__


def cholesky_reference(a, lower=None, upper=None):
    up = bool(upper) if upper is not None else (lower is False)
    return np.linalg.cholesky(a, upper=up)


def cho_solve_reference(c, b, lower):
    import scipy.linalg
    return C.per_matrix(lambda ci, bi: scipy.linalg.cho_solve((ci, lower), bi), c, b,
                        cores=(2, 2))


def logdet_reference(a, lower=True):
    c = np.linalg.cholesky(a, upper=not lower)
    return 2 * np.sum(np.log(np.diagonal(c, 0, -2, -1).real), axis=-1)


def _cho_factor_fun(a, lower=False):
    return cho_factor(a, lower=lower)[0]


_cho_factor_fun.__doc__ = cho_factor.__doc__


RULES = (
    Rule(
        name="cholesky",
        fun=cholesky,
        primitive=_cholesky,
        domains=(
            Domain("lower", _domain(), "positive definite in the lower triangle, noise above"),
            Domain("upper", _domain(upper=True), "upper=True (NumPy 2): the upper triangle"),
            Domain("scipy-upper", _domain(lower=False), "lower=False (SciPy's keyword)"),
        ),
        derivation="docs/derivations/cholesky.md",
        reference=cholesky_reference,
        references=("Murray 2016, Differentiation of the Cholesky decomposition",),
    ),
    Rule(
        name="cho_factor",
        fun=_cho_factor_fun,
        primitive=_cholesky,
        domains=(
            Domain("upper", _domain(lower=False), "SciPy's default: the upper factor"),
            Domain("lower", _domain(lower=True), "lower=True"),
        ),
        derivation="docs/derivations/cholesky.md",
        reference=lambda a, lower=False: np.linalg.cholesky(a, upper=not lower),
        references=("Murray 2016",),
    ),
    Rule(
        name="cho_solve",
        fun=_cho_solve_fun,
        primitive=_chosolve,
        domains=(
            Domain("lower", _cho_solve_domain(True), "(c, True): lower factor, noise above"),
            Domain("upper", _cho_solve_domain(False), "(c, False): upper factor, noise below"),
        ),
        derivation="docs/derivations/cholesky.md",
        reference=cho_solve_reference,
        references=("Murray 2016",),
    ),
    Rule(
        name="logdet",
        fun=logdet,
        primitive=_logdet,
        domains=(
            Domain("lower", _domain(), "positive definite in the lower triangle, noise above"),
            Domain("upper", _domain(lower=False), "read from the upper triangle"),
        ),
        derivation="docs/derivations/cholesky.md",
        reference=logdet_reference,
        references=("Murray 2016",),
    ),
)
