"""expm, expm_frechet, sqrtm, logm: matrix functions.   Derivation: docs/derivations/matfuncs.md

expm          F = e^A              dF = L(A, dA)            (Fréchet derivative of exp)
  Reverse     Ā = L(Aᴴ, F̄)   (the adjoint of L(A, ·) is L(Aᴴ, ·))
  Forward     Ḟ = L(A, Ȧ)
L(A, E)       the (1,2) block of exp([[A, E], [0, A]]); linear in E.  Computed by
              differentiating the forward pass's Padé steps (products, one solve).
  Reverse     Ē = L(Aᴴ, L̄) = L(A, L̄ᴴ)ᴴ from A's Padé factors; Ā (a second Fréchet
              derivative): reverse mode through those steps, recomputed with
              differentiable ops (the derivative of the algorithm, as JAX does).
  Forward     L̇ = L(A, Ė) when only E moves; else forward mode through the steps.
              (Both equal the block rules [L(X, Ẋ)]₁₂ and Y = L(Xᴴ, [[0, L̄], [0, 0]]),
              Ā = Y₁₁ + Y₂₂, Ē = Y₁₂ of the derivation, at a quarter of the cost.)
sqrtm         X² = A               X dX + dX X = dA          (a Sylvester equation)
  Forward     X Ẋ + Ẋ X = Ȧ
  Reverse     Xᴴ Ā + Ā Xᴴ = X̄     (Schur factors of X computed once, reused as .H)
logm          e^F = A              dF = L_log(A, dA) = L_exp(F, ·)⁻¹(dA)
  Forward     Ḟ = L_log(A, Ȧ)
  Reverse     Ā = L_log(Aᴴ, F̄) = L_log(A, F̄ᴴ)ᴴ
L_log(A, E)   (1,2) block of log([[A, E], [0, A]]), evaluated in A's triangular Schur basis
              (the block [[T, F], [0, T]] is triangular: no second Schur decomposition);
              its derivatives by the same block identity as L above.

The Fréchet derivatives are primitives of their own, so every order is
available.  expm keeps its Padé factors (``linalgad/_pade.py``), so its
gradient is products and one solve with stored LU factors (no second Padé
evaluation), and L's own derivatives run through the same steps; L_log's
derivatives come from the block identity (each order doubles the matrix size of
the innermost call), on the triangular Schur form of A cached by logm's forward
pass.
"""

from __future__ import annotations

import numpy as np

from .. import ops, transforms
from ..backend import LinAlgError, kernels_for, namespace_of
from ..registry import Domain, Rule
from ..tape import Primitive
from ..testing import matrices as M
from . import _common as C
from .sylvester import SchurFactors, sylvester

__all__ = ["expm", "expm_frechet", "expm_cond", "sqrtm", "logm", "frechet_expm", "frechet_logm", "RULES"]


# -- 2×2 block matrices of (possibly traced) stacks ------------------------------------------

def _block(a11, a12, a21, a22):
    """[[a11, a12], [a21, a22]] (None: a zero block); equal (..., n, n) stacks."""
    present = [a for a in (a11, a12, a21, a22) if a is not None]
    dtype = np.result_type(*(ops.asarray_value(a).dtype for a in present))
    like = present[0]

    def z(a):
        return ops.zeros_like(like, dtype=dtype) if a is None else a
    top = ops.concatenate([z(a11), z(a12)], axis=-1)
    bottom = ops.concatenate([z(a21), z(a22)], axis=-1)
    return ops.concatenate([top, bottom], axis=-2)


def _part(X, i, j, n):
    return C.submatrix(X, slice(i * n, (i + 1) * n), slice(j * n, (j + 1) * n))


def _add(x, y):
    if x is None:
        return y
    return x if y is None else x + y


# -- L(A, E): the Fréchet derivative of expm --------------------------------------------------

def _factors(res, A):
    """The Padé factors of A's exponential: the forward pass's, or made now (a call that was
    given its value and so kept none)."""
    if res is not None:
        return res
    Av = ops.asarray_value(A)
    return kernels_for(Av).expm_staged(Av)[1]


def _staged(A, E):
    """(e^A, L(A, E), factors) on plain values: the Padé pass and its differentiated steps
    (``linalgad/_pade.py``); L in the common dtype."""
    K = kernels_for(A, E)
    dtype = np.result_type(A.dtype, E.dtype)
    eA, F = K.expm_staged(A)
    if F is None:               # empty matrices
        return eA, K.xp.zeros(A.shape, dtype=dtype), None
    # F is this call's own: the Fréchet steps are kept in it for the reverse pass
    L = K.expm_frechet_staged(F, A, E, keep=True)
    return eA, (L if L.dtype == dtype else L.astype(dtype)), F


def _frechet_impl(A, E, *, value=None):
    if value is not None:       # computed by the caller from its forward pass's factors
        return value, None
    _, L, F = _staged(A, E)
    return L, F


def _through_algorithm(F, A, E):
    """(a, e) ↦ L(a, e) recomputed with differentiable ops, F's degree, scalings and factors."""
    from .._pade import frechet_traced
    return lambda a, e: frechet_traced(F, a, e)


def _frechet_jvp(tangents, L, res, A, E, *, value=None):
    """L̇ = L(A, Ė) when only E moves (from A's factors); else the derivative of the
    algorithm's steps in (Ȧ, Ė) — forward mode through them."""
    A_dot, E_dot = tangents
    F = _factors(res, A)
    if A_dot is None:
        return None if E_dot is None else _frechet_at(F, A, E_dot)
    if F is None:
        return ops.zeros_like(L)
    if E_dot is None:
        E_dot = ops.zeros_like(E)
    return transforms.jvp(_through_algorithm(F, A, E), (A, E), (A_dot, E_dot))[1]


def _frechet_vjp(L_bar, needs, L, res, A, E, *, value=None):
    """Ē = L(Aᴴ, L̄) = L(A, L̄ᴴ)ᴴ from A's factors; with Ā: reverse mode through the steps."""
    F = _factors(res, A)
    if not needs[0]:
        return None, ops.fit(_frechet_adjoint_at(F, A, L_bar), E)
    if F is None:
        return ops.zeros_like(A), (ops.zeros_like(E) if needs[1] else None)
    A_bar, E_bar = _frechet_grads(A, E, L_bar, F=F)
    return ops.fit(A_bar, A), (ops.fit(E_bar, E) if needs[1] else None)


def _frechet_grads_kernel(A, E, G, *, F):
    return kernels_for(A, E, G).expm_frechet_adjoint(F, A, E, G)


def _frechet_grads_traced(A, E, G, *, F):
    """(Ā, Ē) of Re⟨G, L(A, E)⟩: reverse mode through the algorithm's steps (the
    definition; derivatives of the rule's reverse pass trace it)."""
    _, pull = transforms.vjp(_through_algorithm(F, A, E), A, E)
    return tuple(pull(G))


# first order: the steps' reverse sweep written out on plain arrays (_pade.frechet_adjoint)
_frechet_grads = transforms.fused("expm_frechet_grads", _frechet_grads_kernel,
                                  _frechet_grads_traced, multiple_results=True)


_frechet = Primitive("expm_frechet", _frechet_impl, _frechet_vjp, _frechet_jvp,
                     staged=True)


def frechet_expm(A, E):
    """L(A, E) = d/dt expm(A + tE) at t = 0 for checked, equal (..., n, n) stacks (internal).

    Valid when: always (expm is entire); accuracy like SciPy's expm_frechet.
    """
    return _frechet(A, E)


# -- expm ---------------------------------------------------------------------------------------

def _expm_impl(A):
    return kernels_for(A).expm_staged(A, op="expm")


def _frechet_at(F, A, E):
    """L(A, E), differentiable, its value from A's factors F (products and one solve)."""
    return _frechet(A, E, value=_frechet_from(F, A, E))


def _frechet_adjoint_at(F, A, G):
    """L(Aᴴ, G) — the adjoint of L(A, ·) applied to G — differentiable, its value
    L(A, Gᴴ)ᴴ from A's factors F."""
    return _frechet(ops.mH(A), G, value=_frechet_from(F, A, G, adjoint=True))


def _frechet_from(res, A, E, adjoint=False):
    """L(A, E) (L(Aᴴ, E) = L(A, Eᴴ)ᴴ when ``adjoint``) on plain values, from the factors
    the forward pass kept; None when it kept none (an empty matrix)."""
    if res is None:
        return None
    Av, Ev = ops.asarray_value(A), ops.asarray_value(E)
    xp = namespace_of(Av, Ev)
    if adjoint:
        Ev = xp.conj(xp.swapaxes(Ev, -1, -2))
    L = kernels_for(Av, Ev).expm_frechet_staged(res, Av, Ev)
    if adjoint:
        L = xp.conj(xp.swapaxes(L, -1, -2))
    dtype = np.result_type(Av.dtype, Ev.dtype)
    return L if L.dtype == dtype else L.astype(dtype)


def _expm_vjp(F_bar, needs, F, res, A):
    """Ā = L(Aᴴ, F̄), evaluated as L(A, F̄ᴴ)ᴴ with the forward pass's Padé factors."""
    return (ops.fit(_frechet_adjoint_at(res, A, F_bar), A),)


def _expm_jvp(tangents, F, res, A):
    """Ḟ = L(A, Ȧ), with the forward pass's Padé factors."""
    (A_dot,) = tangents
    return _frechet_at(res, A, A_dot)


_expm = Primitive("expm", _expm_impl, _expm_vjp, _expm_jvp, staged=True)


def expm(A):
    """The matrix exponential e^A of a square matrix or stack (..., n, n), differentiable.

    scipy.linalg.expm's method: scaling and squaring with Padé approximants
    (Al-Mohy & Higham 2009), vectorised over stacks (one degree for the stack,
    a scaling per matrix); the result has A's shape and (inexact) dtype and
    agrees with SciPy's to rounding.  Raises LinAlgError for a non-square
    input and ValueError for infs or NaNs.  The derivative is the Fréchet
    derivative L(A, ·), computed from the factors the forward pass keeps
    (differentiated Padé steps, Al-Mohy & Higham's Alg. 6.4); the gradient is
    L(Aᴴ, Ḡ) = L(A, Ḡᴴ)ᴴ.

    Valid when: always (e^A is entire); the derivative's accuracy follows
    SciPy's expm_frechet, and both grow like e^‖A‖ for large norms.
    """
    op = "expm"
    return _exp_of(C.prepare(op, A, True))


def _elementwise_domain(A):
    """Whether A is a nonempty stack of matrices of order 1 whose every entry is where the
    rule is its scalar function's principal branch and differentiable: positive real
    entries or nonzero complex ones (0 is singular for both sqrt and log).  Anything else
    takes the rule's path and its errors (a negative real entry has no real root or
    logarithm).  sqrtm and logm of 100,000 matrices of order 1 took 700 and 2,000
    times NumPy's elementwise sqrt and log.  A decision on values: under jit one step
    of the recording, checked again on every replay (tape.compute)."""
    shape = ops._shape(A)
    if shape[-1] != 1 or 0 in shape:
        return False

    def inside(v):
        xp = namespace_of(v)
        return bool(xp.all(v != 0)) if v.dtype.kind == "c" else bool(xp.all(v > 0))
    return C.compute(inside, (A,), decide=lambda ok: ok, name="order-1 domain test")


def _exp_of(A):
    """expm's primitive on a prepared stack; for matrices of order 1 the elementwise
    exponential, the same map (e^[a] = [e^a], L(A, E) = e^a E) at exp's cost: 100,000
    matrices of order 1 took 100 times SciPy's time (its own elementwise path) through
    the Padé steps."""
    if ops._shape(A)[-1] == 1:
        return ops.exp(A)
    return _expm(A)


# -- cosm, sinm, tanm, coshm, sinhm, tanhm: SciPy's definitions through expm -------------------
#
# Each is a composition of expm (and, for tan and tanh, one solve), exactly as SciPy defines
# them, so values agree with SciPy's to rounding and the derivatives are those rules'
# chained (matfuncs.md, section 6): e.g. L_cos(A, E) = ½(L_exp(iA, iE) + L_exp(−iA, −iE)),
# and for X = C⁻¹S, dX = C⁻¹(dS − dC X).  A real A gives a real result (the real or
# imaginary part of one complex exponential, as SciPy).

def _cos_sin(A):
    """(cos A, sin A) of a prepared A: expm's primitive on iA (and on −iA for complex A)."""
    P = _exp_of(1j * A)
    if not ops._is_complex(A):
        return ops.real(P), ops.imag(P)
    N = _exp_of(-1j * A)
    return 0.5 * (P + N), -0.5j * (P - N)


def _cosh_sinh(A):
    """(cosh A, sinh A) of a prepared A."""
    P, N = _exp_of(A), _exp_of(-A)
    return 0.5 * (P + N), 0.5 * (P - N)


def _quotient(op, denominator, Cm, Sm):
    """C⁻¹ S (C and S commute: functions of one matrix), the solve named after ``op``."""
    from .solve import solve as _solve_public
    try:
        return _solve_public(Cm, Sm, check_finite=False)
    except LinAlgError as e:
        raise LinAlgError(f"{op}: the matrix's {denominator} is singular ({e})") from None


def cosm(A):
    """cos(A) (scipy.linalg.cosm), differentiable: Re e^{iA} for real A, else
    ½(e^{iA} + e^{−iA}).  (..., n, n), stacks included.

    Valid when: always (cos is entire); the derivative is expm's, whose accuracy
    follows ‖A‖ (matfuncs.md, sections 3 and 6).
    """
    return _cos_sin(C.prepare("cosm", A, True))[0]


def sinm(A):
    """sin(A) (scipy.linalg.sinm), differentiable: Im e^{iA} for real A, else
    −½i(e^{iA} − e^{−iA}).

    Valid when: always (sin is entire), as :func:`cosm`.
    """
    return _cos_sin(C.prepare("sinm", A, True))[1]


def tanm(A):
    """tan(A) = cos(A)⁻¹ sin(A) (scipy.linalg.tanm), differentiable.

    Valid when: cos(A) is nonsingular (no eigenvalue at π/2 + kπ; LinAlgError
    naming tanm where it is exactly singular); the derivative grows with
    cond(cos A).
    """
    return _quotient("tanm", "cos", *_cos_sin(C.prepare("tanm", A, True)))


def coshm(A):
    """cosh(A) = ½(e^A + e^{−A}) (scipy.linalg.coshm), differentiable.

    Valid when: always (cosh is entire), as :func:`cosm`.
    """
    return _cosh_sinh(C.prepare("coshm", A, True))[0]


def sinhm(A):
    """sinh(A) = ½(e^A − e^{−A}) (scipy.linalg.sinhm), differentiable.

    Valid when: always (sinh is entire), as :func:`cosm`.
    """
    return _cosh_sinh(C.prepare("sinhm", A, True))[1]


def tanhm(A):
    """tanh(A) = cosh(A)⁻¹ sinh(A) (scipy.linalg.tanhm), differentiable.

    Valid when: cosh(A) is nonsingular (no eigenvalue at i(π/2 + kπ); LinAlgError
    naming tanhm where it is exactly singular); the derivative grows with
    cond(cosh A).
    """
    return _quotient("tanhm", "cosh", *_cosh_sinh(C.prepare("tanhm", A, True)))


# -- expm_frechet (public) ---------------------------------------------------------------------

def _pair_impl(A, E):
    eA, L, F = _staged(A, E)
    return (eA, L), F


def _pair_vjp(cts, needs, out, res, A, E):
    F_bar, L_bar = cts
    A_bar = E_bar = None
    if L_bar is not None:
        A_bar, E_bar = _frechet_vjp(L_bar, needs, out[1], res, A, E)
    if F_bar is not None and needs[0]:
        A_bar = _add(A_bar, ops.fit(_frechet_adjoint_at(_factors(res, A), A, F_bar), A))
    return A_bar, E_bar


def _pair_jvp(tangents, out, res, A, E):
    A_dot = tangents[0]
    F_dot = None if A_dot is None else _frechet_at(_factors(res, A), A, A_dot)
    return F_dot, _frechet_jvp(tangents, out[1], res, A, E)


_pair = Primitive("expm_frechet_pair", _pair_impl, _pair_vjp, _pair_jvp, multiple_results=True,
                  staged=True)


def expm_frechet(A, E, method=None, compute_expm=True, check_finite=True):
    """Fréchet derivative of the matrix exponential of A in the direction E, differentiable.

    scipy.linalg.expm_frechet: returns ``(expm_A, expm_frechet_AE)``, or only
    the Fréchet derivative when ``compute_expm`` is False.  A and E are square
    (..., n, n) stacks (broadcast against each other); results have their
    common inexact dtype.  ``method`` ('SPS' or 'blockEnlarge') is accepted:
    the value is the same mathematical object, computed by SciPy's SPS
    algorithm (Al-Mohy & Higham's Alg. 6.4: the Padé steps of expm,
    differentiated), vectorised over stacks.  Differentiable in A and E, to
    any order: the gradient in E is L(A, L̄ᴴ)ᴴ from A's Padé factors; in A it
    is the derivative of those steps (reverse or forward mode through them).
    ValueError for mismatched shapes, an unknown method, or infs/NaNs when
    ``check_finite``.

    Valid when: always (exp is entire); accuracy like SciPy's expm_frechet.
    """
    op = "expm_frechet"
    if method not in (None, "SPS", "blockEnlarge"):
        raise ValueError(f"{op}: unknown implementation {method!r}; use None, 'SPS' or "
                         "'blockEnlarge'")
    av, ev = C.square_matrix(op, A, "A"), C.square_matrix(op, E, "E")
    if av.shape[-1] != ev.shape[-1]:
        raise ValueError(f"{op}: expected A and E to be the same shape; got {av.shape} "
                         f"and {ev.shape}")
    dtype = C.result_dtype(op, av, ev)
    C.checked(op, ("A", "E"), (A, E), check_finite)
    A, E = C.promote(A, dtype), C.promote(E, dtype)
    if av.shape != ev.shape:
        shape = C.stacks(op, A=av.shape, E=ev.shape) + av.shape[-2:]
        A = ops.broadcast_to(A, shape) if av.shape != shape else A
        E = ops.broadcast_to(E, shape) if ev.shape != shape else E
    if compute_expm:
        return _pair(A, E)
    return _frechet(A, E)


# -- sqrtm ------------------------------------------------------------------------------------

def _singular_schur(T):
    """Does the (quasi-)triangular Schur form T have an eigenvalue 0 (to working precision)?

    1×1 blocks are eigenvalues; a real 2×2 block holds a complex pair, never 0.
    """
    xp = namespace_of(T)
    n = T.shape[-1]
    if T.size == 0:
        return False
    d = xp.abs(xp.diagonal(T, 0, -2, -1))
    if T.dtype.kind == "f" and n > 1:
        sub = xp.diagonal(T, -1, -2, -1) != 0
        block = xp.zeros(d.shape, dtype=bool)
        block[..., :-1] |= sub
        block[..., 1:] |= sub
        d = xp.where(block, xp.inf, d)
    tol = n * np.finfo(T.dtype).eps * xp.abs(T).max(axis=(-2, -1))[..., None]
    return bool((d <= tol).any())


def _sqrtm_impl(A):
    """SciPy's root alone; X's Schur factors, which the derivatives' Sylvester equations
    use, are computed when a derivative first needs them (``_root_factors``): a plain or
    forward-only call costs what SciPy's sqrtm does (it took twice that with the factors)."""
    return kernels_for(A).sqrtm(A, op="sqrtm"), []


def _schur_checked(X):
    f = SchurFactors(*kernels_for(X).schur(X, op="sqrtm"))
    return f, _singular_schur(f.T)


def _root_factors(X, res):
    """X's Schur factors, computed once per forward pass (kept in its residual list) and
    checked: a singular root has no derivative (under linalgad.jit the factors are a step
    of the recording, and the check a decision taken again on every replay)."""
    if not res:
        res.append(C.compute(_schur_checked, (X,), decide=lambda r: r[1],
                             name="sqrtm's Schur factors"))
    f, singular = res[0]
    if singular:
        raise LinAlgError("sqrtm: the matrix is singular, so its square root X is singular "
                          "and not differentiable there (X dX + dX X = dA has no unique "
                          "solution)")
    return f


def _sqrtm_vjp(X_bar, needs, X, res, A):
    """Xᴴ Ā + Ā Xᴴ = X̄ (X's Schur factors, read as .H)."""
    f = _root_factors(X, res)
    XH = ops.mH(X)
    return (ops.fit(sylvester(XH, XH, X_bar, fa=f.H, fb=f.H, op="sqrtm"), A),)


def _sqrtm_jvp(tangents, X, res, A):
    """X Ẋ + Ẋ X = Ȧ."""
    f = _root_factors(X, res)
    return sylvester(X, X, tangents[0], fa=f, fb=f, op="sqrtm")


_sqrtm = Primitive("sqrtm", _sqrtm_impl, _sqrtm_vjp, _sqrtm_jvp, staged=True)


def expm_cond(A, check_finite=True):
    """scipy.linalg.expm_cond, differentiable: the relative condition number of the matrix
    exponential in the Frobenius norm, κ(A) = ‖K(A)‖₂ ‖A‖_F / ‖e^A‖_F, with K(A) the
    n² × n² matrix of the Fréchet derivative L(A, ·) (its columns L(A, eᵢeⱼᵀ)).

    K is formed as SciPy forms it, from n² Fréchet derivatives, here as one batched
    :func:`expm_frechet` call (the basis directions as a stack against the broadcast A), and
    ‖K‖₂ is its largest singular value, so κ is differentiable through expm_frechet's rule
    and the 2-norm's (the top singular value; where it is repeated, the 2-norm's documented
    subgradient, norms.md).  Like SciPy it computes in double precision (a float32 input
    gives a float64 κ; its gradient is float32).  Stacks (..., n, n) give κ of each matrix
    (...), as SciPy 1.17 batches.  Cost: O(n⁵), as SciPy's (n² Fréchet derivatives and an
    SVD of an n² × n² matrix); the gradient costs a few times that.

    Valid when: A ≠ 0 (‖A‖_F is not differentiable at 0) and K's largest singular value
    is simple (else the 2-norm's subgradient).  ValueError for a
    non-square or empty matrix, or non-finite values (whatever check_finite says, as SciPy:
    its flag does not skip the scan), naming expm_cond.
    """
    from .norms import matrix_norm
    op = "expm_cond"
    av = C.peek(C.array_arg(A))
    if av.ndim < 2 or av.shape[-1] != av.shape[-2]:
        raise ValueError(f"{op}: expected a square matrix or a stack of square matrices; "
                         f"got shape {av.shape}")
    n = av.shape[-1]
    if n == 0:
        raise ValueError(f"{op}: the condition number of an empty matrix is undefined "
                         "(SciPy raises too)")
    dtype = np.result_type(C.result_dtype(op, av), np.float64)     # double, as SciPy
    # always scanned, as SciPy does whatever check_finite says (its expm_frechet's norm
    # checks): a non-finite A is a ValueError naming expm_cond, not an SVD failure inside
    C.checked(op, ("A",), (A,), True)
    A = C.promote(A, dtype)
    xp = namespace_of(av)
    batch = av.shape[:-2]
    basis = xp.eye(n * n, dtype=dtype).reshape(n * n, n, n)       # e_i e_jᵀ, row-major
    Ab = ops.broadcast_to(ops.expand_dims(A, -3), batch + (n * n, n, n))
    L = expm_frechet(Ab, basis, compute_expm=False, check_finite=False)
    K = ops.reshape(L, batch + (n * n, n * n))     # SciPy's K up to a permutation of rows
    return (matrix_norm(K, ord=2) * matrix_norm(A, ord="fro")
            / matrix_norm(expm(A), ord="fro"))  # and columns: the same 2-norm


def expm_cond_reference(A):
    import scipy.linalg as sl
    return np.asarray(sl.expm_cond(A))


def sqrtm(A, disp=True, blocksize=64):
    """The principal square root X (X @ X = A) of a square matrix or stack, differentiable.

    scipy.linalg.sqrtm (blocked Schur method, Deadman, Higham & Ralha 2013); the
    result has A's shape and inexact dtype.  A real matrix with a negative real
    eigenvalue has no real principal square root: LinAlgError (SciPy would
    return a complex array; pass a complex matrix for the complex root).  A
    singular A gives SciPy's root (with its warning), but its derivative
    raises LinAlgError.  ``disp=False`` also returns SciPy's error estimate
    ‖X² − A‖²_F / ‖A‖_F (a plain float); ``blocksize`` is accepted and ignored
    (both are deprecated in SciPy 1.17).  ValueError for infs or NaNs.

    Valid when: A is nonsingular (and, if real, has no negative real
    eigenvalue).  The derivative solves X dX + dX X = dA, whose conditioning
    is 1/min|λᵢ(X) + λⱼ(X)|: large when A has eigenvalues near 0.
    """
    op = "sqrtm"
    A = C.prepare(op, A, True)
    X = ops.sqrt(A) if _elementwise_domain(A) else _sqrtm(A)
    if disp:
        return X
    xv, av = ops.asarray_value(X), ops.asarray_value(A)
    arg2 = float(np.linalg.norm(xv @ xv - av) ** 2 / np.linalg.norm(av))
    return X, arg2


# -- L_log(A, E): the Fréchet derivative of logm ------------------------------------------------

def _logm_frechet_impl(A, E, *, factors=None):
    K = kernels_for(A, E)
    T, Z = K.logm_schur(A, op="logm") if factors is None else factors
    real = A.dtype.kind == "f" and E.dtype.kind == "f"
    L = K.logm_frechet_schur(T, Z, E, real, op="logm")
    dtype = np.result_type(A.dtype, E.dtype)
    return L if L.dtype == dtype else L.astype(dtype)


def _block_factors(factors, E):
    """Triangular Schur factors of [[A, E], [0, A]] from those of A: [[T, ZᴴEZ], [0, T]], diag(Z, Z).

    Plain values (E's primal): a cache, never differentiated.
    """
    if factors is None:
        return None
    T, Z = factors
    Ev = ops.asarray_value(E)
    return kernels_for(Ev).logm_block_factors(T, Z, Ev)


def block_frechet_jvp(frechet, tangents, A, E, factors, block_factors=None):
    """The tangent of L = frechet(A, E) for a primary matrix function f with real
    coefficients: L̇ = L(A, Ė) when only E moves; else the (1,2) block of L(X, Ẋ),
    X = [[A, E], [0, A]] (whose f holds L in that block).  ``block_factors``: X's
    factors, where they follow from A's (None: frechet computes them)."""
    A_dot, E_dot = tangents
    if A_dot is None:
        return None if E_dot is None else frechet(A, E_dot, factors=factors)
    n = ops._shape(A)[-1]
    X = _block(A, E, None, A)
    X_dot = _block(A_dot, E_dot, None, A_dot)
    return _part(frechet(X, X_dot, factors=block_factors), 0, 1, n)


def block_frechet_vjp(frechet, L_bar, needs, A, E, factors, block_factors=None):
    """Ē = L(A, L̄ᴴ)ᴴ; with Ā: Y = L(X, [[0, 0], [L̄ᴴ, 0]])ᴴ, Ā = Y₁₁ + Y₂₂, Ē = Y₁₂."""
    if not needs[0]:
        return None, ops.fit(ops.mH(frechet(A, ops.mH(L_bar), factors=factors)), E)
    n = ops._shape(A)[-1]
    X = _block(A, E, None, A)
    G = _block(None, None, ops.mH(L_bar), None)
    Y = ops.mH(frechet(X, G, factors=block_factors))
    A_bar = ops.fit(_part(Y, 0, 0, n) + _part(Y, 1, 1, n), A)
    E_bar = ops.fit(_part(Y, 0, 1, n), E) if needs[1] else None
    return A_bar, E_bar


def _logm_frechet_jvp(tangents, L, res, A, E, *, factors=None):
    return block_frechet_jvp(_logm_frechet, tangents, A, E, factors,
                             _block_factors(factors, E) if tangents[0] is not None else None)


def _logm_frechet_vjp(L_bar, needs, L, res, A, E, *, factors=None):
    return block_frechet_vjp(_logm_frechet, L_bar, needs, A, E, factors,
                             _block_factors(factors, E) if needs[0] else None)


_logm_frechet = Primitive("logm_frechet", _logm_frechet_impl, _logm_frechet_vjp,
                          _logm_frechet_jvp)


def frechet_logm(A, E, factors=None):
    """L_log(A, E) = d/dt logm(A + tE) at t = 0 for checked, equal stacks (internal).

    ``factors``: A's triangular Schur factors (T, Z) (a cache, never differentiated).

    Valid when: A is nonsingular with no eigenvalue on the closed negative real axis.
    """
    return _logm_frechet(A, E, factors=factors)


# -- logm -------------------------------------------------------------------------------------

def _logm_impl(A):
    if A.shape[-1] == 0:            # nothing to factor: the empty logarithm
        return A.copy(), (A, A)
    K = kernels_for(A)
    T, Z = K.logm_schur(A, op="logm")
    L = K.logm_from_schur(T, Z, A.dtype.kind == "f", op="logm")
    return (L if L.dtype == A.dtype else L.astype(A.dtype)), (T, Z)


def _logm_vjp(F_bar, needs, F, res, A):
    """Ā = L_log(Aᴴ, F̄) = L_log(A, F̄ᴴ)ᴴ (A's cached Schur factors)."""
    return (ops.fit(ops.mH(_logm_frechet(A, ops.mH(F_bar), factors=res)), A),)


def _logm_jvp(tangents, F, res, A):
    """Ḟ = L_log(A, Ȧ)."""
    return _logm_frechet(A, tangents[0], factors=res)


_logm = Primitive("logm", _logm_impl, _logm_vjp, _logm_jvp, staged=True)


def logm(A, disp=True):
    """The principal matrix logarithm F (e^F = A) of a square matrix or stack, differentiable.

    scipy.linalg.logm (inverse scaling and squaring, Al-Mohy & Higham 2012),
    evaluated in A's triangular Schur form; the result has A's shape and
    inexact dtype.  LinAlgError for a singular matrix, and for a real matrix
    with a negative real eigenvalue (it has no real logarithm: SciPy would
    return a complex array; pass a complex matrix for the principal complex
    one); a stack names the failing matrix.  ValueError for infs or NaNs.
    ``disp=False`` also returns SciPy's error estimate ‖e^F − A‖₁/‖A‖₁ (a
    plain float).

    Valid when: A is nonsingular with no eigenvalue on the negative real axis
    (the branch cut: a complex A with such an eigenvalue gets SciPy's value,
    but the logarithm is not differentiable there).  The derivative
    L_log(A, ·) = L_exp(F, ·)⁻¹ grows like 1/min|λᵢ(A)| and like
    1/|λᵢ − λⱼ| · |log λᵢ − log λⱼ| between eigenvalues.
    """
    op = "logm"
    A = C.prepare(op, A, True)
    F = ops.log(A) if _elementwise_domain(A) else _logm(A)
    if disp:
        return F
    from scipy.linalg import expm as _sexpm
    fv, av = ops.asarray_value(F), ops.asarray_value(A)
    errest = float(np.linalg.norm(_sexpm(fv) - av, 1) / np.linalg.norm(av, 1)) \
        if fv.ndim == 2 else float("nan")
    return F, errest


def fractional_matrix_power(A, t):
    """A^t for real t (scipy.linalg.fractional_matrix_power), differentiable in A.

    An integer t is :func:`linalgad.linalg.matrix_power`; otherwise
    e^{t log A} through :func:`logm` and :func:`expm` (the principal power; the
    derivative is their rules' chain, matfuncs.md section 3).  A real A with a
    negative real eigenvalue has no real power: it is taken as complex and the
    result is complex, as SciPy's.  The result keeps A's precision (SciPy
    returns float64 for float32 input).  (..., n, n), stacks included.

    Valid when: A is nonsingular (SciPy also takes a singular A for t > 0,
    where the derivative is unbounded; linalgad raises LinAlgError naming
    fractional_matrix_power) and has no eigenvalue on the negative real axis
    if complex (the branch cut, as :func:`logm`).
    """
    op = "fractional_matrix_power"
    t = float(t)
    if t == int(t):
        from .norms import matrix_power
        return matrix_power(C.prepare(op, A, True), int(t))
    A = C.prepare(op, A, True)                  # (checked once: the primitives follow)
    try:
        L = _logm(A)
    except LinAlgError as e:
        text = str(e)
        if "no real logarithm" in text:
            # the principal power of a real matrix with a negative eigenvalue is complex
            L = _logm(C.promote(A, np.result_type(C.peek(A).dtype, np.complex64)))
        else:
            raise LinAlgError(text.replace("logm:", f"{op}:", 1)) from None
    return _exp_of(t * L)


# -- references (SciPy alone), results in the input's dtype -------------------------------------

def _as(x, dtype):
    x = np.asarray(x)
    if x.dtype.kind == "c" and np.dtype(dtype).kind == "f":
        x = x.real
    return x.astype(dtype)


def expm_reference(A):
    import scipy.linalg as sl
    return _as(sl.expm(A), A.dtype)


def expm_frechet_reference(A, E, method=None, compute_expm=True):
    import scipy.linalg as sl
    dtype = np.result_type(A.dtype, E.dtype)
    if compute_expm:
        F, L = sl.expm_frechet(A, E, method=method)
        return _as(F, dtype), _as(L, dtype)
    return _as(sl.expm_frechet(A, E, method=method, compute_expm=False), dtype)


def sqrtm_reference(A):
    import scipy.linalg as sl
    return _as(sl.sqrtm(A), A.dtype)


def logm_reference(A):
    import warnings

    import scipy.linalg as sl
    with warnings.catch_warnings():     # SciPy's float32 error estimate is float64-strict
        warnings.simplefilter("ignore", RuntimeWarning)
        return _as(sl.logm(A), A.dtype)


# -- registry domains -----------------------------------------------------------------------

def _finish(x, dtype):
    return np.ascontiguousarray(x, dtype=dtype)


def _gauss(rng, shape, dtype):
    if np.dtype(dtype).kind == "c":
        return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)) / np.sqrt(2)
    return rng.standard_normal(shape)


def _nonnormal(rng, n, batch, dtype, lo, hi, offdiag, imag=0.0):
    """Q (D + N) Qᴴ: eigenvalues D in [lo, hi] (+ i·imag·u for complex), N strictly upper."""
    shape = tuple(batch) + (n, n)
    d = rng.uniform(lo, hi, tuple(batch) + (n,))
    if np.dtype(dtype).kind == "c" and imag:
        d = d + 1j * imag * rng.uniform(-1, 1, d.shape)
    N = np.triu(_gauss(rng, shape, dtype), 1) * offdiag / np.sqrt(n)
    T = N + d[..., None, :] * np.eye(n)
    Q = M.random_orthogonal(rng, n, batch, np.complex128 if np.dtype(dtype).kind == "c"
                            else np.float64)
    return _finish(Q @ T @ np.conj(np.swapaxes(Q, -1, -2)), dtype)


def _expm_general(rng, n, batch, dtype):
    # ‖A‖₂ <= 1.2: e^A stays O(1) and float32 finite differences stay accurate
    return (_finish(M.random_general(rng, n, batch, np.dtype(dtype), cond=4.0) * 0.3, dtype),), {}


def _expm_symmetric(rng, n, batch, dtype):
    return (M.random_symmetric(rng, n, batch, dtype),), {}


def _expm_nonnormal(rng, n, batch, dtype):
    return (_nonnormal(rng, n, batch, dtype, -1.0, 1.0, 1.5, imag=1.0),), {}


def _frechet_domain(compute_expm):
    def make(rng, n, batch, dtype):
        A = _finish(M.random_general(rng, n, batch, np.dtype(dtype), cond=4.0) * 0.3, dtype)
        E = _finish(_gauss(rng, tuple(batch) + (n, n), dtype), dtype)
        return (A, E), {"compute_expm": compute_expm}
    return make


def _positive_spd(rng, n, batch, dtype):
    # eigenvalues in [0.5, 2]
    return (_finish(M.random_spd(rng, n, batch, np.dtype(dtype), cond=4.0) * 0.5, dtype),), {}


def _positive_nonnormal(rng, n, batch, dtype):
    return (_nonnormal(rng, n, batch, dtype, 0.6, 2.0, 0.6, imag=0.5),), {}


def _positive_complex_pairs(rng, n, batch, dtype):
    # real matrices with complex-conjugate eigenvalue pairs (real Schur 2×2 blocks)
    shape = tuple(batch) + (n, n)
    R = 1.2 * np.eye(n) + 0.35 * _gauss(rng, shape, np.float64)
    R = R - 0.35 * np.swapaxes(R, -1, -2) + 0.35 * np.eye(n)
    return (_finish(R, dtype),), {}


_POSITIVE = (
    Domain("spd", _positive_spd, "symmetric / Hermitian positive definite, eigenvalues in "
           "[0.5, 2]"),
    Domain("nonnormal", _positive_nonnormal, "non-normal, eigenvalues with real part in "
           "[0.6, 2] (complex ones off the real axis for complex dtypes)"),
    Domain("complex_pairs", _positive_complex_pairs, "real, eigenvalues in complex-conjugate "
           "pairs in the right half plane (real Schur 2x2 blocks)", real_only=True),
)


def _fractional_domain(t):
    def make(rng, n, batch, dtype):
        (A,), _ = _positive_spd(rng, n, batch, dtype) if t < 0 else \
            _positive_nonnormal(rng, n, batch, dtype)
        return (A,), {"t": t}
    return make


def _trig_rule(fun, reference):
    return Rule(
        name=fun.__name__,
        fun=fun,
        primitive=_expm,
        domains=(Domain("general", _expm_general,
                        "well-conditioned general matrices, ‖A‖₂ <= 1.2 (cos A and cosh A "
                        "nonsingular: |Re λ|, |Im λ| < π/2)"),),
        derivation="docs/derivations/matfuncs.md",
        reference=reference,
        batch_shapes=((), (3,)),
        references=("Higham 2008, Functions of Matrices, ch. 12",),
    )


def _scipy_matfunc(name):
    """SciPy's function of that name, matrix by matrix, in a's dtype (real for the
    fractional powers' positive-spectrum domains)."""
    def reference(a, **kw):
        import scipy.linalg
        f = getattr(scipy.linalg, name)
        return C.per_matrix(lambda x: f(x, **kw), a, cores=(2,)).astype(a.dtype)
    return reference


RULES = (
    Rule(
        name="expm",
        fun=expm,
        primitive=_expm,
        domains=(
            Domain("general", _expm_general, "well-conditioned general matrices, ‖A‖₂ <= 1.2"),
            Domain("symmetric", _expm_symmetric, "symmetric / Hermitian (normal), "
                   "eigenvalues in [-1, 1]"),
            Domain("nonnormal", _expm_nonnormal, "strongly non-normal (large strictly upper "
                   "part in a random basis), eigenvalues with real part in [-1, 1]"),
        ),
        derivation="docs/derivations/matfuncs.md",
        reference=expm_reference,
        references=("Al-Mohy & Higham 2009 (SIMAX 30)", "Najfeld & Havel 1995",
                    "Higham 2008, Functions of Matrices, ch. 3 and 10"),
    ),
    Rule(
        name="expm_frechet",
        fun=expm_frechet,
        primitive=_frechet,
        domains=(
            Domain("pair", _frechet_domain(True), "A general with ‖A‖₂ <= 1.2, E Gaussian; "
                   "returns (expm(A), L(A, E))"),
            Domain("derivative_only", _frechet_domain(False), "as 'pair', compute_expm=False"),
        ),
        derivation="docs/derivations/matfuncs.md",
        reference=expm_frechet_reference,
        references=("Al-Mohy & Higham 2009 (SIMAX 30, Fréchet derivative)",
                    "Higham 2008, Functions of Matrices, eq. (3.16)"),
    ),
    Rule(
        name="expm_cond",
        fun=expm_cond,
        primitive=_frechet,
        domains=(Domain("general", _expm_general, "well-conditioned general matrices, "
                        "‖A‖₂ <= 1.2 (a distinct top singular value of K)"),),
        derivation="docs/derivations/matfuncs.md",
        reference=expm_cond_reference,
        references=("Higham 2008, Functions of Matrices, section 3.4 (the Kronecker form)",
                    "Al-Mohy & Higham 2009 (SIMAX 30, Fréchet derivative)"),
    ),
    Rule(
        name="sqrtm",
        fun=sqrtm,
        primitive=_sqrtm,
        domains=_POSITIVE,
        derivation="docs/derivations/matfuncs.md",
        reference=sqrtm_reference,
        references=("Deadman, Higham & Ralha 2013", "Higham 1987",
                    "Higham 2008, Functions of Matrices, ch. 6"),
    ),
    Rule(
        name="logm",
        fun=logm,
        primitive=_logm,
        domains=_POSITIVE,
        derivation="docs/derivations/matfuncs.md",
        reference=logm_reference,
        references=("Al-Mohy & Higham 2012 (SISC 34)", "Al-Mohy, Higham & Relton 2013",
                    "Higham 2008, Functions of Matrices, ch. 11 and eq. (3.16)"),
    ),
    Rule(
        name="fractional_matrix_power",
        fun=fractional_matrix_power,
        primitive=_logm,
        domains=(
            Domain("t=0.37-nonnormal", _fractional_domain(0.37), "non-normal, eigenvalues with "
                   "real part in [0.6, 2]; t = 0.37"),
            Domain("t=-0.5-spd", _fractional_domain(-0.5), "positive definite, eigenvalues in "
                   "[0.5, 2]; t = −1/2 (whitening)"),
        ),
        derivation="docs/derivations/matfuncs.md",
        reference=_scipy_matfunc("fractional_matrix_power"),
        batch_shapes=((), (3,)),
        references=("Higham & Lin 2011 (SIMAX 32)", "Higham 2008, Functions of Matrices"),
    ),
) + tuple(_trig_rule(f, _scipy_matfunc(f.__name__))
        for f in (cosm, sinm, tanm, coshm, sinhm, tanhm))
