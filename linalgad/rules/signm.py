"""signm: the matrix sign function S = sign(A).   Derivation: docs/derivations/signm.md

signm         S = sign(A), S² = I, AS = SA (A with no eigenvalue on the imaginary axis)
  Forward     Ṡ = L(A, Ȧ)
  Reverse     Ā = L(Aᴴ, S̄) = L(A, S̄ᴴ)ᴴ   (sign has real coefficients: sign(Aᴴ) = sign(A)ᴴ)
L(A, E)       the Fréchet derivative: the (1,2) block of sign([[A, E], [0, A]]); linear in E;
              S L + L S = 0 and A L − L A = S E − E S.  Computed in A's Schur basis ordered
              by half planes, block-diagonalised by W = [[I, −X/2], [0, I]]: two triangular
              Sylvester solves (trsyl) and four products, from the forward pass's factors.
  Forward     L̇ = L(A, Ė) when only E moves; else [L(X, Ẋ)]₁₂, X = [[A, E], [0, A]],
              Ẋ = [[Ȧ, Ė], [0, Ȧ]]
  Reverse     Ē = L(A, L̄ᴴ)ᴴ when only E is wanted; else Y = L(X, [[0, 0], [L̄ᴴ, 0]])ᴴ,
              Ā = Y₁₁ + Y₂₂, Ē = Y₁₂

Forward values: the Schur method (Higham 2008, Alg. 5.5; ``backend.signm_schur``): the Schur
form ordered by half planes and one Sylvester solve, matrix by matrix (SciPy 1.17 loops over
a stack too); it agrees with SciPy's signm (Schur–Parlett, then a Newton refinement) to
SciPy's own accuracy (signm.md, section 6).  The Fréchet derivative is a primitive of its own
whose rules are Fréchet derivatives of the block matrix X (its ordered Schur form computed
when a second-order derivative first needs it), so every order is exact.
"""

from __future__ import annotations

import numpy as np

from .. import ops
from ..backend import namespace_of, signm_frechet_schur, signm_schur
from ..registry import Domain, Rule
from ..tape import Primitive
from ..testing import matrices as M
from . import _common as C
from .matfuncs import _finish, _gauss, block_frechet_jvp, block_frechet_vjp

__all__ = ["signm", "frechet_signm", "RULES"]

OP = "signm"


# -- L(A, E): the Fréchet derivative --------------------------------------------------------

def _frechet_impl(A, E, *, factors=None):
    if factors is None:         # a block matrix of a higher-order rule: its own Schur form
        factors = signm_schur(A, OP)[1]
    L = signm_frechet_schur(factors, E, OP)
    dtype = np.result_type(A.dtype, E.dtype)
    return L if L.dtype == dtype else L.astype(dtype)


def _frechet_jvp(tangents, L, res, A, E, *, factors=None):
    """L̇ = L(A, Ė) when only E moves; else the (1,2) block of L(X, Ẋ) (its own Schur form)."""
    return block_frechet_jvp(_frechet, tangents, A, E, factors)


def _frechet_vjp(L_bar, needs, L, res, A, E, *, factors=None):
    """Ē = L(A, L̄ᴴ)ᴴ; with Ā: Y = L(X, [[0, 0], [L̄ᴴ, 0]])ᴴ, Ā = Y₁₁ + Y₂₂, Ē = Y₁₂."""
    return block_frechet_vjp(_frechet, L_bar, needs, A, E, factors)


_frechet = Primitive("signm_frechet", _frechet_impl, _frechet_vjp, _frechet_jvp)


def frechet_signm(A, E, factors=None):
    """L(A, E) = d/dt sign(A + tE) at t = 0 for equal (..., n, n) stacks (internal; A and E
    taken as given).  ``factors``: A's ordered Schur factors (T, Z, sign(T), p) from
    signm's forward pass (a cache, never differentiated); computed when not given.

    Valid when: A has no eigenvalue on the imaginary axis; L grows like
    2/min |λᵢ − λⱼ| over eigenvalues in opposite half planes (at least 1/dist(λ, iℝ)).
    """
    return _frechet(A, E, factors=factors)


# -- signm ----------------------------------------------------------------------------------

def _signm_impl(A):
    return signm_schur(A, OP)


def _signm_vjp(S_bar, needs, S, res, A):
    """Ā = L(Aᴴ, S̄) = L(A, S̄ᴴ)ᴴ from the forward pass's ordered Schur factors."""
    return (ops.fit(ops.mH(_frechet(A, ops.mH(S_bar), factors=res)), A),)


def _signm_jvp(tangents, S, res, A):
    """Ṡ = L(A, Ȧ)."""
    return _frechet(A, tangents[0], factors=res)


_signm = Primitive("signm", _signm_impl, _signm_vjp, _signm_jvp, staged=True)


def _errest(S):
    """SciPy's estimate after its Newton refinement: ‖P² − P‖₁ with P = (S² + S)/2 (the
    spectral projector's idempotency defect; (S² − I)/4 to first order), per matrix."""
    s = ops.asarray_value(S)
    xp = namespace_of(s)
    P = 0.5 * (s @ s + s)
    R = P @ P - P
    e = xp.abs(R).sum(axis=-2).max(axis=-1) if R.shape[-1] else xp.zeros(R.shape[:-2])
    return float(e) if e.ndim == 0 else e


def signm(A, disp=True):
    """The matrix sign function S = sign(A) of a square matrix or stack, differentiable.

    scipy.linalg.signm: S is the primary matrix function of sign(Re z), so S² = I, AS = SA
    and (I ± S)/2 project onto A's invariant subspaces of its eigenvalues in the right and
    left half planes.  Computed by the Schur method (the Schur form ordered by half planes
    and one Sylvester solve), matrix by matrix over stacks (..., n, n) (SciPy 1.17 batches
    signm); the result has A's shape and inexact dtype (real for real A; float32 kept — SciPy
    returns float64 for float32 input when its Newton refinement runs) and agrees with SciPy's to its accuracy (signm.md, section 6).  ``disp=False``
    also returns SciPy's error estimate ‖P² − P‖₁, P = (S² + S)/2 (a float, or an array
    over a stack; SciPy returns S alone there when its Schur-Parlett estimate is small,
    and deprecates disp).  An empty matrix or stack gives an empty result (SciPy raises).
    ValueError for a non-square input and for infs or NaNs.  On the GPU the Schur forms
    are computed on the host (CuPy has none).

    Valid when: A has no eigenvalue on the imaginary axis.  There the sign is undefined
    (SciPy builds its value with sign(0) := 0, which is not a sign: S² ≠ I): linalgad raises
    LinAlgError naming signm (and the matrix of a stack) for an eigenvalue with
    |Re λ| <= 100 ε ‖T‖_F, and where ε^1.5 ‖sign(T)‖_F² ≥ 1 (nothing left: nilpotent or
    strongly non-normal matrices whose axis eigenvalues rounding moved off it; not every
    such matrix is caught, signm.md §6).  Second
    derivatives are wrong where a tangent or cotangent is ~1e16 times A's size (signm.md §6).  Near the axis the sign is ill-conditioned: L(A, ·), the
    derivative, grows like 2/|λᵢ − λⱼ| over eigenvalues in opposite half planes, so at
    least like 1/dist(λ, iℝ).
    """
    S = _signm(C.prepare(OP, A, True))
    if disp:
        return S
    return S, _errest(S)


# -- reference (SciPy alone) and registry domains ------------------------------------------------

def signm_reference(A):
    """scipy.linalg.signm (batched in SciPy 1.17) in A's dtype."""
    import scipy.linalg as sl
    S = np.asarray(sl.signm(A))
    if S.dtype.kind == "c" and A.dtype.kind == "f":
        S = S.real
    return S.astype(A.dtype)


def _signs(rng, batch, n):
    """±1 per eigenvalue, both signs present in every matrix of order >= 2."""
    s = np.where(rng.uniform(size=tuple(batch) + (n,)) < 0.5, -1.0, 1.0)
    if n >= 2:
        s[..., 0], s[..., 1] = 1.0, -1.0
    return s


def _similar(rng, T, batch, dtype, offdiag):
    """Q (T + N) Qᴴ with N strictly upper (non-normal), Q orthogonal / unitary."""
    n = T.shape[-1]
    N = np.triu(_gauss(rng, tuple(batch) + (n, n), dtype), 1) * offdiag / np.sqrt(n)
    complex_ = np.dtype(dtype).kind == "c"
    Q = M.random_orthogonal(rng, n, batch, np.complex128 if complex_ else np.float64)
    return _finish(Q @ (T + N) @ np.conj(np.swapaxes(Q, -1, -2)), dtype)


def _mixed(rng, n, batch, dtype):
    """Real eigenvalues ±[0.5, 2], both half planes, non-normal."""
    d = rng.uniform(0.5, 2.0, tuple(batch) + (n,)) * _signs(rng, batch, n)
    return (_similar(rng, d[..., None, :] * np.eye(n), batch, dtype, 0.8),), {}


def _complex(rng, n, batch, dtype):
    """Complex eigenvalues, real parts ±[0.5, 2], imaginary parts in [−1.5, 1.5]."""
    d = rng.uniform(0.5, 2.0, tuple(batch) + (n,)) * _signs(rng, batch, n) \
        + 1.5j * rng.uniform(-1, 1, tuple(batch) + (n,))
    return (_similar(rng, d[..., None, :] * np.eye(n), batch, dtype, 0.8),), {}


def _complex_pairs(rng, n, batch, dtype):
    """Real matrices with complex-conjugate eigenvalue pairs a ± ib, |a| in [0.5, 1.5],
    b in [0.4, 1.2], in both half planes (2×2 real Schur blocks; a last real eigenvalue
    for odd n)."""
    T = np.zeros(tuple(batch) + (n, n))
    s = _signs(rng, batch, (n + 1) // 2)
    for j, i in enumerate(range(0, n - 1, 2)):
        a = rng.uniform(0.5, 1.5, batch) * s[..., j]
        b = rng.uniform(0.4, 1.2, batch)
        T[..., i, i] = T[..., i + 1, i + 1] = a
        T[..., i, i + 1], T[..., i + 1, i] = b, -b
    if n % 2:
        T[..., n - 1, n - 1] = rng.uniform(0.5, 1.5, batch) * s[..., -1]
    N = np.triu(rng.standard_normal(tuple(batch) + (n, n)), 2) * 0.5
    Q = M.random_orthogonal(rng, n, batch, np.float64)
    return (_finish(Q @ (T + N) @ np.swapaxes(Q, -1, -2), dtype),), {}


RULES = (
    Rule(
        name="signm",
        fun=signm,
        primitive=_signm,
        domains=(
            Domain("mixed", _mixed, "non-normal, real eigenvalues in ±[0.5, 2], both half "
                   "planes"),
            Domain("complex", _complex, "non-normal complex, eigenvalues with real part in "
                   "±[0.5, 2] (both half planes) and imaginary part in [-1.5, 1.5]",
                   complex_only=True),
            Domain("complex_pairs", _complex_pairs, "real, complex-conjugate eigenvalue pairs "
                   "a ± ib off the axis in both half planes (real Schur 2x2 blocks)",
                   real_only=True),
        ),
        derivation="docs/derivations/signm.md",
        reference=signm_reference,
        references=("Kenney & Laub 1991 (SIMAX 12)", "Kenney & Laub 1992 (SIMAX 13)",
                    "Higham 2008, Functions of Matrices, ch. 5 and eq. (3.16)",
                    "Roberts 1980 (Int. J. Control 32)"),
    ),
)
