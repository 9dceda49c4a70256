"""Matrix equations: Sylvester, continuous and discrete Lyapunov.   Derivation: docs/derivations/sylvester.md

Sylvester         A X + X B = C
  Differential    A dX + dX B = dC − dA X − X dB
  Reverse         Aᴴ Y + Y Bᴴ = X̄  (the adjoint equation),  C̄ = Y,  Ā = −Y Xᴴ,  B̄ = −Xᴴ Y
  Forward         A Ẋ + Ẋ B = Ċ − Ȧ X − X Ḃ
Stein             X − A X Aᴴ = Q        (solve_discrete_lyapunov: A X Aᴴ − X + Q = 0)
  Differential    dX − A dX Aᴴ = dQ + dA X Aᴴ + A X dAᴴ
  Reverse         Y − Aᴴ Y A = X̄,  Q̄ = Y,  Ā = Y A Xᴴ + Yᴴ A X
  Forward         Ẋ − A Ẋ Aᴴ = Q̇ + Ȧ X Aᴴ + A X Ȧᴴ

Every solve goes through the Schur forms A = Z_A T_A Z_Aᴴ (Bartels–Stewart):
computed once in the forward pass, kept as plain (never differentiated)
factor objects, and passed back into the same differentiable primitives by
the reverse and forward rules — the adjoint equations use the factors of Aᴴ,
which are the same arrays read conjugate-transposed (:attr:`SchurFactors.H`,
LAPACK trsyl's trana = 'C').  So the backward pass never refactors, and since
the derivative rules call the primitives again on (possibly traced) A, B, C,
derivatives of any order work.

``sylvester(A, B, C, fa=, fb=)`` and ``schur_factors(A)`` are the internal
interface other rules (sqrtm's derivative) build on.
"""

from __future__ import annotations

import numpy as np

from .. import ops
from ..backend import kernels_for
from ..registry import Domain, Rule
from ..tape import Primitive
from ..testing import matrices as M
from . import _common as C

__all__ = ["solve_sylvester", "solve_continuous_lyapunov", "solve_discrete_lyapunov",
           "solve_lyapunov",
           "sylvester", "stein", "schur_factors", "SchurFactors", "RULES"]


# -- the factor object ------------------------------------------------------------------

class SchurFactors:
    """The Schur form A = Z T Zᴴ of a plain stack (..., n, n); never differentiated.

    Real input keeps the real Schur form (T quasi-triangular with 2×2 blocks for
    complex-conjugate pairs; trsyl handles it); complex input the complex one (T
    upper triangular).  ``adjoint`` says the object stands for Aᴴ = Z Tᴴ Zᴴ;
    :attr:`H` flips it without recomputation.  The arrays are read by the kernel
    table's ``sylvester_schur`` / ``stein_schur`` only (on the GPU they stay on the
    host: see the sylvester section of linalgad/gpu/kernels.py).  The bilinear
    (Cayley) data the discrete-Lyapunov solver needs is computed at most once
    and shared between the object and its ``.H``.
    """

    __slots__ = ("T", "Z", "adjoint", "_shared")

    def __init__(self, T, Z, adjoint=False, _shared=None):
        self.T = T
        self.Z = Z
        self.adjoint = bool(adjoint)
        self._shared = {} if _shared is None else _shared

    @property
    def H(self):
        """The factors of Aᴴ (same arrays, used conjugate-transposed)."""
        return SchurFactors(self.T, self.Z, not self.adjoint, self._shared)

    @property
    def shape(self):
        return self.T.shape

    @property
    def dtype(self):
        return self.T.dtype

    def cayley(self, K, op):
        """((T + I)⁻¹, (T − I)(T + I)⁻¹), computed once (O(n³)) and cached."""
        data = self._shared.get("cayley")
        if data is None:
            data = self._shared["cayley"] = K.cayley(self.T, op)
        return data

    def __repr__(self):
        return f"SchurFactors(shape={self.T.shape}, dtype={self.T.dtype}, adjoint={self.adjoint})"


def schur_factors(A, op="schur"):
    """The Schur factors of the plain value of A (..., n, n) (a tracer's primal is used):
    values the rule computes for itself (under linalgad.jit, a step of the recording)."""
    return C.compute(lambda v: SchurFactors(*kernels_for(v).schur(v, op=op)), (A,),
                     name=f"{op}'s Schur factors")


def _check_factors(f, v, name, op):
    if not isinstance(f, SchurFactors):
        raise TypeError(f"{op}: {name} must be a SchurFactors object (from schur_factors)")
    if f.shape[-1] != v.shape[-1]:
        raise ValueError(f"{op}: factors of shape {f.shape} do not match {name[1:]} of "
                         f"shape {v.shape}")


# -- Sylvester: A X + X B = C ------------------------------------------------------------

def _sylvester_forward(A, B, C_, *, fa, fb, op):
    K = kernels_for(A, B, C_)
    X = K.sylvester_schur(fa.T, fa.Z, fa.adjoint, fb.T, fb.Z, fb.adjoint, C_, op=op)
    dtype = np.result_type(A.dtype, B.dtype, C_.dtype)
    return X if X.dtype == dtype else X.astype(dtype)


def _sylvester_vjp(X_bar, needs, X, res, A, B, C_, *, fa, fb, op):
    """Aᴴ Y + Y Bᴴ = X̄ (same factors, read as .H);  C̄ = Y,  Ā = −Y Xᴴ,  B̄ = −Xᴴ Y."""
    Y = _sylvester(ops.mH(A), ops.mH(B), X_bar, fa=fa.H, fb=fb.H, op=op)
    XH = ops.mH(X) if (needs[0] or needs[1]) else None
    A_bar = ops.fit(-ops.matmul(Y, XH), A) if needs[0] else None
    B_bar = ops.fit(-ops.matmul(XH, Y), B) if needs[1] else None
    C_bar = ops.fit(Y, C_) if needs[2] else None
    return A_bar, B_bar, C_bar


def _sylvester_jvp(tangents, X, res, A, B, C_, *, fa, fb, op):
    """A Ẋ + Ẋ B = Ċ − Ȧ X − X Ḃ (same factors)."""
    A_dot, B_dot, C_dot = tangents
    rhs = C_dot
    if A_dot is not None:
        t = ops.matmul(A_dot, X)
        rhs = -t if rhs is None else rhs - t
    if B_dot is not None:
        t = ops.matmul(X, B_dot)
        rhs = -t if rhs is None else rhs - t
    if rhs is None:
        return None
    return _sylvester(A, B, rhs, fa=fa, fb=fb, op=op)


_sylvester = Primitive("sylvester", _sylvester_forward, _sylvester_vjp, _sylvester_jvp)


def sylvester(A, B, C, *, fa=None, fb=None, op="sylvester"):
    """X with A X + X B = C, differentiable in A, B and C (any order).

    A (..., n, n), B (..., m, m), C (..., n, m), stacks broadcast; arguments are
    taken as given (no dtype promotion or finiteness check: the internal
    building block).  ``fa`` / ``fb`` are :class:`SchurFactors` of A and B
    (from :func:`schur_factors`, or ``f.H`` for a conjugate transpose), reused
    when given and computed when not; they are caches, never differentiated.

    Valid when: A and −B have no common eigenvalue; the solution's sensitivity
    grows like 1/sep(A, −B).
    """
    if fa is None:
        fa = schur_factors(A, op)
    if fb is None:
        fb = fa if B is A else schur_factors(B, op)
    return _sylvester(A, B, C, fa=fa, fb=fb, op=op)


# -- Stein: X − A X Aᴴ = Q ----------------------------------------------------------------

def _stein_forward(A, Q, *, fa, op):
    K = kernels_for(A, Q)
    W, S = fa.cayley(K, op)
    X = K.stein_schur(W, S, fa.Z, fa.adjoint, Q, op=op)
    dtype = np.result_type(A.dtype, Q.dtype)
    return X if X.dtype == dtype else X.astype(dtype)


def _stein_vjp(X_bar, needs, X, res, A, Q, *, fa, op):
    """Y − Aᴴ Y A = X̄ (same factors, .H);  Q̄ = Y,  Ā = Y A Xᴴ + Yᴴ A X."""
    Y = _stein(ops.mH(A), X_bar, fa=fa.H, op=op)
    A_bar = None
    if needs[0]:
        A_bar = ops.fit(ops.matmul(ops.matmul(Y, A), ops.mH(X)) +
                        ops.matmul(ops.mH(Y), ops.matmul(A, X)), A)
    return A_bar, (ops.fit(Y, Q) if needs[1] else None)


def _stein_jvp(tangents, X, res, A, Q, *, fa, op):
    """Ẋ − A Ẋ Aᴴ = Q̇ + Ȧ X Aᴴ + A X Ȧᴴ."""
    A_dot, Q_dot = tangents
    rhs = Q_dot
    if A_dot is not None:
        t = ops.matmul(ops.matmul(A_dot, X), ops.mH(A)) + \
            ops.matmul(ops.matmul(A, X), ops.mH(A_dot))
        rhs = t if rhs is None else rhs + t
    if rhs is None:
        return None
    return _stein(A, rhs, fa=fa, op=op)


_stein = Primitive("stein", _stein_forward, _stein_vjp, _stein_jvp)


def stein(A, Q, *, fa=None, op="stein"):
    """X with X − A X Aᴴ = Q, differentiable in A and Q (any order); fa: factors of A.

    Valid when: no two eigenvalues of A satisfy λᵢ conj(λⱼ) = 1 (e.g. spectral
    radius < 1); sensitivity grows as that product approaches 1.
    """
    if fa is None:
        fa = schur_factors(A, op)
    return _stein(A, Q, fa=fa, op=op)


# -- argument handling ---------------------------------------------------------------------

def _batch(op, *named):
    try:
        return np.broadcast_shapes(*(v.shape[:-2] for _, v in named))
    except ValueError:
        shapes = ", ".join(f"{n} {v.shape}" for n, v in named)
        raise ValueError(f"{op}: the stacks of {shapes} do not broadcast") from None


def _prepare(op, arrays, names):
    values = [C.peek(a) for a in arrays]
    dtype = C.result_dtype(op, *values)
    C.checked(op, names, arrays, True)
    return [C.promote(a, dtype) for a in arrays], values


def solve_sylvester(a, b, q):
    """Solve the Sylvester equation ``a x + x b = q``, differentiable in a, b and q.

    scipy.linalg.solve_sylvester: a (..., M, M), b (..., N, N), q (..., M, N),
    stacks broadcast (SciPy 1.17 batches).  The result has the inputs' common
    inexact dtype (float32/complex64 stay single precision, as SciPy).
    Bartels–Stewart: Schur forms of a and b (LAPACK ?gees), then ?trsyl; the
    gradient solves the adjoint equation aᴴ y + y bᴴ = x̄ with the same Schur
    factors (no refactorization).

    Raises ValueError (a LinAlgError for non-square a or b) for incompatible
    shapes or infs/NaNs, and LinAlgError when a and −b share an eigenvalue
    (the equation is singular), naming the matrix of a stack.  (SciPy instead
    returns a perturbed solution there.)

    Valid when: a and −b have no common eigenvalue.  The solution and its
    gradient are sensitive like 1/sep(a, −b), which can be far smaller than the
    distance between the spectra for non-normal a or b.
    """
    op = "solve_sylvester"
    av = C.square_matrix(op, a, "a")
    bv = C.square_matrix(op, b, "b")
    qv = C.matrix(op, q, "q")
    if qv.shape[-2:] != (av.shape[-1], bv.shape[-1]):
        raise ValueError(f"{op}: q must have shape (..., {av.shape[-1]}, {bv.shape[-1]}) for a "
                         f"of shape {av.shape} and b of shape {bv.shape}; got {qv.shape}")
    _batch(op, ("a", av), ("b", bv), ("q", qv))
    (a, b, q), _ = _prepare(op, (a, b, q), ("a", "b", "q"))
    return sylvester(a, b, q, fa=schur_factors(a, op), fb=schur_factors(b, op), op=op)


def solve_continuous_lyapunov(a, q):
    """Solve the continuous Lyapunov equation ``a x + x aᴴ = q``, differentiable in a and q.

    scipy.linalg.solve_continuous_lyapunov: a, q (..., M, M), stacks broadcast;
    the result has the inputs' inexact dtype.  One Schur form of a serves both
    a and aᴴ, in the forward pass and in the gradient (the adjoint equation is
    aᴴ y + y a = x̄).  A Hermitian q gives a Hermitian x.

    Raises ValueError for non-square or mismatched shapes and infs/NaNs, and
    LinAlgError when λᵢ + conj(λⱼ) = 0 for eigenvalues of a (e.g. a purely
    imaginary eigenvalue), naming the matrix of a stack.  (SciPy warns and
    perturbs instead.)

    Valid when: no eigenvalue pair of a has λᵢ + conj(λⱼ) = 0 (true for a
    stable a); sensitivity grows like 1/sep(a, −aᴴ).
    """
    op = "solve_continuous_lyapunov"
    av = C.square_matrix(op, a, "a")
    qv = C.square_matrix(op, q, "q")
    if qv.shape[-1] != av.shape[-1]:
        raise ValueError(f"{op}: a and q must have the same matrix shape; got a {av.shape} "
                         f"and q {qv.shape}")
    _batch(op, ("a", av), ("q", qv))
    (a, q), _ = _prepare(op, (a, q), ("a", "q"))
    f = schur_factors(a, op)
    # f.H, a new object, derived in a step of its own (a is passed to find the recording)
    fh = C.compute(lambda a_, f_: f_.H, (a, f), name=f"{op}'s adjoint Schur factors")
    return _sylvester(a, ops.mH(a), q, fa=f, fb=fh, op=op)


_METHODS = ("direct", "bilinear")


def solve_discrete_lyapunov(a, q, method=None):
    """Solve the discrete Lyapunov equation ``a x aᴴ − x + q = 0``, differentiable in a and q.

    scipy.linalg.solve_discrete_lyapunov: a, q (..., M, M), stacks broadcast;
    the result has the inputs' inexact dtype (SciPy returns float64 for
    float32 input; here float32 stays float32, the library's convention).
    ``method`` 'direct' or 'bilinear' (or None) is accepted; both are computed
    by the same O(M³) Schur-based bilinear solver (SciPy's 'direct' forms an
    M²×M² Kronecker system, O(M⁶)); the solutions agree to rounding.  The
    gradient solves the adjoint equation aᴴ y a − y + x̄ = 0 with the same
    Schur factors and Cayley transform (no refactorization).

    Raises ValueError for an unknown method, non-square or mismatched shapes
    and infs/NaNs; LinAlgError when λᵢ conj(λⱼ) = 1 for eigenvalues of a (the
    equation is singular), naming the matrix of a stack.

    Valid when: no eigenvalue pair of a has λᵢ conj(λⱼ) = 1 (true when the
    spectral radius of a is below 1); sensitivity grows like the inverse
    distance of those products from 1.
    """
    op = "solve_discrete_lyapunov"
    if method is not None and (not isinstance(method, str) or method.lower() not in _METHODS):
        raise ValueError(f"{op}: unknown solver {method!r}; use 'direct' or 'bilinear'")
    av = C.square_matrix(op, a, "a")
    qv = C.square_matrix(op, q, "q")
    if qv.shape[-1] != av.shape[-1]:
        raise ValueError(f"{op}: a and q must have the same matrix shape; got a {av.shape} "
                         f"and q {qv.shape}")
    _batch(op, ("a", av), ("q", qv))
    (a, q), _ = _prepare(op, (a, q), ("a", "q"))
    return _stein(a, q, fa=schur_factors(a, op), op=op)


# -- registry ---------------------------------------------------------------------------------

def _ref_dtype(*arrays):
    return C.result_dtype("reference", *(np.asarray(a) for a in arrays))


def solve_sylvester_reference(a, b, q):
    import scipy.linalg
    return scipy.linalg.solve_sylvester(a, b, q).astype(_ref_dtype(a, b, q), copy=False)


solve_lyapunov = solve_continuous_lyapunov      # SciPy's older name for the same function


def solve_continuous_lyapunov_reference(a, q):
    import scipy.linalg
    return scipy.linalg.solve_continuous_lyapunov(a, q).astype(_ref_dtype(a, q), copy=False)


def solve_discrete_lyapunov_reference(a, q, method=None):
    import scipy.linalg
    return scipy.linalg.solve_discrete_lyapunov(a, q, method=method).astype(
        _ref_dtype(a, q), copy=False)


def _unit(rng, n, batch, dtype):
    """A random matrix with spectral norm 1 (so its spectrum lies in the unit disc)."""
    G = M.random_general(rng, n, batch, dtype).astype(np.result_type(dtype, np.float64))
    G = G / np.linalg.norm(G, 2, axis=(-2, -1))[..., None, None]
    return G


def _shifted(rng, n, batch, dtype, shift, nonnormal=0.0):
    """shift·I + (unit-norm matrix) [+ a strictly upper triangular push]: spectrum in a
    unit disc around ``shift``."""
    A = shift * np.eye(n) + _unit(rng, n, batch, dtype)
    if nonnormal:
        A = A + nonnormal * np.triu(_unit(rng, n, batch, dtype), 1)
    return np.ascontiguousarray(A.astype(dtype))


def _rhs(rng, m, n, batch, dtype):
    return M.random_general(rng, max(m, n), batch, dtype)[..., :m, :n].copy()


def _sylvester_domain(m_extra=0, nonnormal=0.0, broadcast=False):
    def make(rng, n, batch, dtype):
        m = n + m_extra
        a = _shifted(rng, n, () if broadcast else batch, dtype, 2.0, nonnormal)
        b = _shifted(rng, m, batch, dtype, 2.0, nonnormal)
        q = _rhs(rng, n, m, batch, dtype)
        return (a, b, q), {}
    return make


def _clyap_domain(hermitian_q=False, nonnormal=0.0):
    def make(rng, n, batch, dtype):
        a = _shifted(rng, n, batch, dtype, -2.0, nonnormal)
        q = M.random_spd(rng, n, batch, dtype) if hermitian_q else _rhs(rng, n, n, batch, dtype)
        return (a, q), {}
    return make


def _dlyap_domain(hermitian_q=False, method=None, radius=0.7):
    def make(rng, n, batch, dtype):
        a = np.ascontiguousarray((radius * _unit(rng, n, batch, dtype)).astype(dtype))
        q = M.random_spd(rng, n, batch, dtype) if hermitian_q else _rhs(rng, n, n, batch, dtype)
        return (a, q), ({} if method is None else {"method": method})
    return make


_REFS = ("Bartels & Stewart 1972, Algorithm 432: Solution of the matrix equation AX + XB = C",
         "Kao & Hennequin 2020, Automatic differentiation of Sylvester, Lyapunov, and "
         "algebraic Riccati equations (arXiv:2011.11430)",
         "Giles 2008")

RULES = (
    Rule(
        name="solve_sylvester",
        fun=solve_sylvester,
        primitive=_sylvester,
        domains=(
            Domain("separated", _sylvester_domain(),
                   "spectra of a and b in unit discs around 2: a and -b far apart"),
            Domain("rectangular", _sylvester_domain(m_extra=1),
                   "a n×n, b (n+1)×(n+1), q n×(n+1)"),
            Domain("nonnormal", _sylvester_domain(nonnormal=3.0),
                   "a and b with a strong strictly upper triangular part"),
            Domain("broadcast", _sylvester_domain(broadcast=True),
                   "one a against stacks of b and q"),
        ),
        derivation="docs/derivations/sylvester.md",
        reference=solve_sylvester_reference,
        references=_REFS,
    ),
    Rule(
        name="solve_continuous_lyapunov",
        fun=solve_continuous_lyapunov,
        primitive=_sylvester,
        domains=(
            Domain("stable", _clyap_domain(), "a with spectrum in a unit disc around -2, "
                   "general q"),
            Domain("hermitian-q", _clyap_domain(hermitian_q=True),
                   "stable a, Hermitian positive definite q"),
            Domain("nonnormal", _clyap_domain(nonnormal=3.0), "stable non-normal a"),
        ),
        derivation="docs/derivations/sylvester.md",
        reference=solve_continuous_lyapunov_reference,
        references=_REFS,
    ),
    Rule(
        name="solve_discrete_lyapunov",
        fun=solve_discrete_lyapunov,
        primitive=_stein,
        domains=(
            Domain("contractive", _dlyap_domain(), "spectral norm of a 0.7, general q"),
            Domain("hermitian-q", _dlyap_domain(hermitian_q=True, method="bilinear"),
                   "spectral norm of a 0.7, Hermitian positive definite q, method='bilinear'"),
            Domain("direct", _dlyap_domain(method="direct"), "method='direct'"),
        ),
        derivation="docs/derivations/sylvester.md",
        reference=solve_discrete_lyapunov_reference,
        references=_REFS,
    ),
)
