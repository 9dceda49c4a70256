"""Algebraic Riccati equations, continuous and discrete.   Derivation: docs/derivations/riccati.md

CARE   Aᴴ X E + Eᴴ X A − (Eᴴ X B + S) R⁻¹ (Bᴴ X E + Sᴴ) + Q = 0
DARE   Aᴴ X A − Eᴴ X E − (Aᴴ X B + S) (R + Bᴴ X B)⁻¹ (Bᴴ X A + Sᴴ) + Q = 0
(E = I and S = 0 when not given), X the stabilizing Hermitian solution.

With the gain K = R⁻¹ (Bᴴ X E + Sᴴ) (CARE) or (R + Bᴴ X B)⁻¹ (Bᴴ X A + Sᴴ) (DARE), the
closed loop Acl = A − B K and Ã = E⁻¹ Acl, every first-order term of the equation in dX
collects into one linear operator (the terms through K cancel: the quadratic term is
stationary in K at K = G⁻¹ N, whatever X):
  Differential   CARE  Ãᴴ W + W Ã = −Ω          dX = E⁻ᴴ W E⁻¹
                 DARE  W − Ãᴴ W Ã = Ω
                 Ω = Φ + Φᴴ + dQ + Kᴴ dR K,   Φ = Pᴴ X (dA − dB K) + Φ_E − dS K
                 P = E (CARE), Acl (DARE);  Φ_E = dEᴴ X Acl (CARE), −Eᴴ X dE (DARE)
  Reverse        Ŷ = E⁻¹ herm(X̄) E⁻ᴴ;  CARE  Ã Z + Z Ãᴴ = Ŷ,  σ = −1
                                         DARE  Z − Ã Z Ãᴴ = Ŷ,  σ = +1
                 Ā = 2σ X P Z,  B̄ = −Ā Kᴴ,  Q̄ = σ Z,  R̄ = σ K Z Kᴴ,  S̄ = −2σ Z Kᴴ,
                 Ē = −2 X Acl Z (CARE), −2 X E Z (DARE)
  Forward        the differential with the tangents.

The stabilizing solution makes Ã stable (Hurwitz for CARE, inside the unit disc for
DARE), so both linear equations are uniquely solvable: they are the Lyapunov / Stein
equations of linalgad/rules/sylvester.py, solved with one Schur form of Ã computed when a
derivative first needs it (a plain call costs the forward solver alone: doubling, SciPy's
QZ solver where doubling does not converge cleanly) and shared by every derivative of
that call.  The rules are written with differentiable operations (the
sylvester / stein primitives, products, solves), so derivatives of any order work.

q and r enter through their Hermitian parts (SciPy requires them Hermitian): their
gradients are Hermitian, and a tangent's non-Hermitian part is dropped.
"""

from __future__ import annotations

import numpy as np

from .. import ops
from ..backend import kernels_for, namespace_of
from ..registry import Domain, Rule
from ..tape import Primitive
from ..testing import matrices as M
from . import _common as C
from .solve import _solve
from .sylvester import SchurFactors, _batch, stein, sylvester

__all__ = ["solve_continuous_are", "solve_discrete_are", "RULES"]

_OPS = {"care": "solve_continuous_are", "dare": "solve_discrete_are"}


def _herm(x):
    return (x + ops.mH(x)) * 0.5


def _unpack(extra, has_e, has_s):
    extra = list(extra)
    E = extra.pop(0) if has_e else None
    S = extra.pop(0) if has_s else None
    return E, S


def _are_forward(A, B, Q, R, *extra, kind, has_e, has_s, balanced):
    E, S = _unpack(extra, has_e, has_s)
    X = kernels_for(A, B, Q, R, *extra).riccati(kind, A, B, Q, R, E, S, balanced,
                                                op=_OPS[kind])
    return X, []


def _closed_loop(kind, A, B, R, X, E, S):
    """K, Acl = A − B K and Ã = E⁻¹ Acl (Acl without E), differentiable in everything."""
    XB = ops.matmul(X, B)
    if kind == "care":
        Mh = ops.mH(XB) if E is None else ops.matmul(ops.mH(XB), E)         # Bᴴ X E
        G = R
    else:
        Mh = ops.matmul(ops.mH(XB), A)                                        # Bᴴ X A
        G = R + ops.matmul(ops.mH(B), XB)
    if S is not None:
        Mh = Mh + ops.mH(S)
    K = _solve(G, Mh, kind="gen")
    Acl = A - ops.matmul(B, K)
    At = Acl if E is None else _solve(E, Acl, kind="gen")
    return K, Acl, At


def _unstable(kind, T):
    """The index of the first matrix of a stack whose closed loop, with Schur form T, is not
    stable to working precision (an eigenvalue with Re λ ≥ −tol (CARE), |λ| ≥ 1 − tol
    (DARE)), or None.  LAPACK's real Schur form has a pair's 2×2 block standardized with
    equal diagonal entries a and b c < 0: Re λ = a there too, and |λ|² = a² − b c."""
    xp = namespace_of(T)
    n = T.shape[-1]
    if n == 0 or T.size == 0:
        return None
    d = xp.diagonal(T, 0, -2, -1)
    eps = np.finfo(T.real.dtype).eps
    scale = xp.abs(T).max(axis=(-2, -1))[..., None]
    if kind == "care":
        bad = d.real >= -100 * eps * scale
    else:
        mod2 = xp.abs(d) ** 2
        if T.dtype.kind != "c" and n > 1:
            sub = xp.diagonal(T, -1, -2, -1)
            sup = xp.diagonal(T, 1, -2, -1)
            bc = xp.zeros_like(mod2)
            bc[..., :-1] += sub * sup
            bc[..., 1:] += sub * sup
            mod2 = mod2 - bc
        bad = mod2 >= (1 - 100 * eps) ** 2
    bad = bad.reshape(-1, n).any(axis=-1)
    return int(xp.flatnonzero(bad)[0]) if bool(bad.any()) else None


def _factors(At, res, kind, op):
    """Ã's Schur factors, computed once per forward pass (kept in its residual list), and
    whether Ã is stable: SciPy can return a finite X whose closed loop sits on the boundary
    (an uncontrollable mode there), where no stabilizing solution exists and X has no
    derivative (under linalgad.jit, a decision taken again on every replay)."""
    if not res:
        def checked(v):
            f = SchurFactors(*kernels_for(v).schur(v, op=op))
            return f, _unstable(kind, f.T)
        res.append(C.compute(checked, (At,), decide=lambda r: r[1] is not None,
                             name=f"{op}'s closed-loop Schur factors"))
    f, bad = res[0]
    if bad is not None:
        shape = C.peek(At).shape[:-2]
        where = f" (matrix {np.unravel_index(bad, shape) if len(shape) > 1 else bad} of the " \
            "stack)" if shape else ""
        raise C.LinAlgError(
            f"{op}: the solution is not stabilizing: the closed loop e⁻¹(a − b K) has an "
            f"eigenvalue on or beyond the stability boundary{where}; no stabilizing solution "
            "exists (a mode that b cannot reach and q does not penalize, or one on the "
            "boundary), and X is not differentiable there")
    return f


def _congruence(E, Y, adjoint):
    """E⁻¹ Y E⁻ᴴ (adjoint=False) or E⁻ᴴ Y E⁻¹ (True) for a Hermitian Y; Y when E is None."""
    if E is None:
        return Y
    F = ops.mH(E) if adjoint else E
    return ops.mH(_solve(F, ops.mH(_solve(F, Y, kind="gen")), kind="gen"))


def _are_vjp(X_bar, needs, X, res, A, B, Q, R, *extra, kind, has_e, has_s, balanced):
    E, S = _unpack(extra, has_e, has_s)
    op = _OPS[kind]
    K, Acl, At = _closed_loop(kind, A, B, R, X, E, S)
    f = _factors(At, res, kind, op)
    Y = _congruence(E, _herm(X_bar), adjoint=False)
    if kind == "care":
        Z, sigma = sylvester(At, ops.mH(At), Y, fa=f, fb=f.H, op=op), -1.0
    else:
        Z, sigma = stein(At, Y, fa=f, op=op), 1.0
    Z = _herm(Z)
    Kh = ops.mH(K)
    need_a, need_b, need_q, need_r = needs[:4]
    need_e, need_s = _unpack(needs[4:], has_e, has_s)
    A_bar = B_bar = E_bar = S_bar = None
    if need_a or need_b:
        P = Acl if kind == "dare" else E                      # None: the identity
        XPZ = ops.matmul(X, Z if P is None else ops.matmul(P, Z))
        A_bar = (2.0 * sigma) * XPZ
        if need_b:
            B_bar = ops.fit(-ops.matmul(A_bar, Kh), B)
        A_bar = ops.fit(A_bar, A) if need_a else None
    if need_e:
        E_bar = ops.fit(-2.0 * ops.matmul(X, ops.matmul(Acl if kind == "care" else E, Z)), E)
    if need_s:
        S_bar = ops.fit((-2.0 * sigma) * ops.matmul(Z, Kh), S)
    Q_bar = ops.fit(sigma * Z, Q) if need_q else None
    R_bar = ops.fit(sigma * ops.matmul(K, ops.matmul(Z, Kh)), R) if need_r else None
    out = [A_bar, B_bar, Q_bar, R_bar]
    if has_e:
        out.append(E_bar)
    if has_s:
        out.append(S_bar)
    return tuple(out)


def _are_jvp(tangents, X, res, A, B, Q, R, *extra, kind, has_e, has_s, balanced):
    E, S = _unpack(extra, has_e, has_s)
    A_dot, B_dot, Q_dot, R_dot = tangents[:4]
    E_dot, S_dot = _unpack(tangents[4:], has_e, has_s)
    op = _OPS[kind]
    K, Acl, At = _closed_loop(kind, A, B, R, X, E, S)
    f = _factors(At, res, kind, op)
    Phi = None

    def add(t, u):
        return u if t is None else t + u

    D = A_dot
    if B_dot is not None:
        D = add(D, -ops.matmul(B_dot, K))
    if D is not None:
        P = Acl if kind == "dare" else E
        XD = ops.matmul(X, D)
        Phi = ops.matmul(ops.mH(P), XD) if P is not None else XD
    if E_dot is not None:
        Phi = add(Phi, ops.matmul(ops.mH(E_dot), ops.matmul(X, Acl)) if kind == "care" else
              -ops.matmul(ops.mH(E), ops.matmul(X, E_dot)))
    if S_dot is not None:
        Phi = add(Phi, -ops.matmul(S_dot, K))
    Omega = None if Phi is None else Phi + ops.mH(Phi)
    if Q_dot is not None:
        Omega = add(Omega, _herm(Q_dot))
    if R_dot is not None:
        Omega = add(Omega, ops.matmul(ops.mH(K), ops.matmul(_herm(R_dot), K)))
    if Omega is None:
        return None
    if kind == "care":
        W = sylvester(ops.mH(At), At, -Omega, fa=f.H, fb=f, op=op)
    else:
        W = stein(ops.mH(At), Omega, fa=f.H, op=op)
    return _herm(_congruence(E, W, adjoint=True))


_are = Primitive("riccati", _are_forward, _are_vjp, _are_jvp, staged=True)


# -- argument handling ---------------------------------------------------------------------

def _atleast_2d(x):
    v = C.peek(C.array_arg(x))
    x = C.array_arg(x)
    if v.ndim >= 2:
        return x
    return ops.reshape(x, (1, 1) if v.ndim == 0 else (1, v.shape[0]))


def _hermitian_check(op, name, v):
    """SciPy's test: ‖m − mᴴ‖₁ > 100 spacing(‖m‖₁), per matrix of a stack."""
    if v.size == 0:
        return
    xp = namespace_of(v)
    d = xp.abs(v - xp.conj(xp.swapaxes(v, -1, -2))).sum(axis=-2).max(axis=-1)
    size = xp.abs(v).sum(axis=-2).max(axis=-1)
    bad = d > 100 * xp.spacing(size)
    if bool(bad.any()):
        where = ""
        if bad.ndim:
            idx = np.unravel_index(int(xp.flatnonzero(bad.ravel())[0]), bad.shape)
            where = f" (matrix {idx if len(idx) > 1 else idx[0]} of the stack)"
        raise ValueError(f"{op}: {name} should be symmetric/hermitian{where}")


def _riccati(kind, a, b, q, r, e, s, balanced):
    op = _OPS[kind]
    args = {"a": a, "b": b, "q": q, "r": r, "e": e, "s": s}
    args = {k: (None if v is None else _atleast_2d(v)) for k, v in args.items()}
    vals = {k: C.peek(v) for k, v in args.items() if v is not None}
    for k in ("a", "q", "r", "e"):
        if k in vals and vals[k].shape[-1] != vals[k].shape[-2]:
            dim = "m" if k == "r" else "n"
            raise ValueError(f"{op}: {k} should be square (..., {dim}, {dim}); got shape "
                             f"{vals[k].shape}")
    n, m = vals["b"].shape[-2:]
    if m == 0:
        raise ValueError(f"{op}: b has no columns (shape {vals['b'].shape}): there is no input "
                         "to optimize over (SciPy fails there too)")
    if vals["a"].shape[-1] != n:
        raise ValueError(f"{op}: a and b should have the same number of rows; got a "
                         f"{vals['a'].shape} and b {vals['b'].shape}")
    for k in ("q", "e"):
        if k in vals and vals[k].shape[-1] != n:
            raise ValueError(f"{op}: a and {k} should have the same shape; got a "
                             f"{vals['a'].shape} and {k} {vals[k].shape}")
    if vals["r"].shape[-1] != m:
        raise ValueError(f"{op}: r should be (..., {m}, {m}), b having {m} columns; got r "
                         f"{vals['r'].shape} and b {vals['b'].shape}")
    if "s" in vals and vals["s"].shape[-2:] != (n, m):
        raise ValueError(f"{op}: b and s should have the same shape; got b "
                         f"{vals['b'].shape} and s {vals['s'].shape}")
    _batch(op, *vals.items())
    names = tuple(vals)
    dtype = C.result_dtype(op, *vals.values())
    C.checked(op, names, tuple(args[k] for k in names), True)
    x = {k: C.promote(args[k], dtype) for k in names}
    for k in ("q", "r"):            # in the argument's own precision, as SciPy checks
        C.guard(args[k], lambda v, k=k: _hermitian_check(op, k, v))
    extra = tuple(x[k] for k in ("e", "s") if k in x)
    return _are(x["a"], x["b"], x["q"], x["r"], *extra, kind=kind, has_e="e" in x,
                has_s="s" in x, balanced=bool(balanced))


def solve_continuous_are(a, b, q, r, e=None, s=None, balanced=True):
    """The stabilizing solution X of the continuous algebraic Riccati equation, differentiable.

    scipy.linalg.solve_continuous_are: X Hermitian with

        aᴴ X e + eᴴ X a − (eᴴ X b + s) r⁻¹ (bᴴ X e + sᴴ) + q = 0

    (e = I and s = 0 when not given), a, q, e (..., n, n), b, s (..., n, m), r
    (..., m, m), stacks broadcast; ``balanced`` as SciPy's, except with a
    non-diagonal e, where SciPy 1.17's balancing forms the solution with the
    unscaled e (a wrong X or a false LinAlgError): there the pencil is solved
    unbalanced.  The result has the
    inputs' common inexact dtype (SciPy computes in double precision; so does
    this, and float32 input gets a float32 result).  The forward pass is the
    structure-preserving doubling algorithm after a Cayley transform of the
    Hamiltonian, all matrices of a stack iterated together (5 to 15 times
    faster than SciPy's QZ solver, equal to its solution to rounding where
    SciPy's is accurate), with SciPy's solver for every matrix where doubling
    does not converge cleanly; the gradient with respect to every argument solves one
    Lyapunov equation in the closed loop Ã = e⁻¹(a − b K), K = r⁻¹(bᴴ X e + sᴴ)
    (the optimal feedback gain), with one Schur form of Ã shared by all of a
    call's derivatives; forward mode, batching and higher orders included.

    q and r must be Hermitian (ValueError otherwise, as SciPy); they enter
    through their Hermitian parts, so their gradients are Hermitian.  Raises
    ValueError for inconsistent shapes, infs or NaNs, a numerically singular r
    or e, and LinAlgError where SciPy finds no finite stabilizing solution,
    naming the matrix of a stack; where SciPy returns a finite X whose closed
    loop lies on the stability boundary (no stabilizing solution exists), the
    value is SciPy's and a derivative raises LinAlgError.

    Valid when: (a, b) is stabilizable and the equation has a stabilizing
    solution (Ã Hurwitz); the derivative's sensitivity grows like 1/sep(Ã,
    −Ãᴴ), large when a closed-loop eigenvalue nears the imaginary axis.
    """
    return _riccati("care", a, b, q, r, e, s, balanced)


def solve_discrete_are(a, b, q, r, e=None, s=None, balanced=True):
    """The stabilizing solution X of the discrete algebraic Riccati equation, differentiable.

    scipy.linalg.solve_discrete_are: X Hermitian with

        aᴴ X a − eᴴ X e − (aᴴ X b + s) (r + bᴴ X b)⁻¹ (bᴴ X a + sᴴ) + q = 0

    (e = I and s = 0 when not given), shapes, stacks, dtypes and errors as
    :func:`solve_continuous_are`, except that r may be singular (SciPy's DARE
    needs r + bᴴ X b nonsingular, not r).  The forward pass is the structure-
    preserving doubling algorithm, all matrices of a stack iterated together
    (5 to 12 steps of O(n³) products and solves; 8 to 20 times faster than
    SciPy's QZ solver, which takes every matrix where doubling does not
    converge cleanly: a singular r, a closed loop near the unit circle, a
    residual above rounding), equal to SciPy's solution to rounding where
    SciPy's is accurate.  The gradient solves one Stein (discrete
    Lyapunov) equation in the closed loop Ã = e⁻¹(a − b K), K = (r + bᴴ X b)⁻¹
    (bᴴ X a + sᴴ), with one Schur form of Ã shared by all of a call's
    derivatives.

    Valid when: the equation has a stabilizing solution (Ã's spectral radius
    below 1); sensitivity grows as closed-loop eigenvalues near the unit circle.
    """
    return _riccati("dare", a, b, q, r, e, s, balanced)


# -- registry ---------------------------------------------------------------------------------

def _care_fun(a, b, q, r, *es, **kw):
    # solve_continuous_are of the Hermitian parts of q and r (checks perturb them freely)
    return solve_continuous_are(a, b, _herm(q), _herm(r), *es, **kw)


def _dare_fun(a, b, q, r, *es, **kw):
    # solve_discrete_are of the Hermitian parts of q and r
    return solve_discrete_are(a, b, _herm(q), _herm(r), *es, **kw)


# the registry's functions are documented by the public ones
_care_fun.__doc__ = solve_continuous_are.__doc__
_dare_fun.__doc__ = solve_discrete_are.__doc__


def _reference(kind):
    def ref(a, b, q, r, e=None, s=None, balanced=True):
        import scipy.linalg
        fn = scipy.linalg.solve_continuous_are if kind == "care" else \
            scipy.linalg.solve_discrete_are
        h = lambda x: (x + np.conj(np.swapaxes(x, -1, -2))) / 2
        dtype = C.result_dtype("reference", *(np.asarray(x) for x in (a, b, q, r, e, s)
                                              if x is not None))
        if e is not None and np.any(e - np.einsum("...ii->...i", e)[..., None] * np.eye(
                e.shape[-1])):
            balanced = False        # SciPy's balancing with a non-diagonal e (the kernel's note)
        return np.asarray(fn(a, b, h(q), h(r), e, s, balanced)).astype(dtype, copy=False)
    ref.__name__ = f"{_OPS[kind]}_reference"
    return ref


def _inputs(rng, n, batch, dtype, kind, generalized=False):
    m = max(1, n // 2)
    a = M.random_general(rng, n, batch, dtype, cond=4.0)
    if kind == "dare":
        a = a * 0.8
    b = M.random_general(rng, n, batch, dtype)[..., :m].copy()
    q = M.random_spd(rng, n, batch, dtype, cond=4.0)
    r = M.random_spd(rng, m, batch, dtype, cond=4.0)
    args = [a, b, q, r]
    if generalized:
        e = np.eye(n) + 0.2 * M.random_general(rng, n, batch, dtype, cond=2.0)
        s = 0.2 * M.random_general(rng, n, batch, dtype, cond=2.0)[..., :m]
        args += [np.ascontiguousarray(e.astype(dtype)), np.ascontiguousarray(s.astype(dtype))]
    return tuple(np.ascontiguousarray(x) for x in args)


def _domain(kind, generalized=False, balanced=True):
    def make(rng, n, batch, dtype):
        return _inputs(rng, n, batch, dtype, kind, generalized), \
            ({} if balanced else {"balanced": False})
    return make


_REFS = ("Laub 1979, A Schur method for solving algebraic Riccati equations",
         "Kao & Hennequin 2020, Automatic differentiation of Sylvester, Lyapunov, and "
         "algebraic Riccati equations (arXiv:2011.11430)",
         "Arnold & Laub 1984, Generalized eigenproblem algorithms and software for "
         "algebraic Riccati equations")


def _rule(kind, fun):
    label = "Hurwitz" if kind == "care" else "Schur-stable"
    return Rule(
        name=_OPS[kind],
        fun=fun,
        primitive=_are,
        domains=(
            Domain("standard", _domain(kind),
                   f"random a (cond 4), b (n×n/2), q, r Hermitian positive definite: a "
                   f"{label} closed loop"),
            Domain("generalized", _domain(kind, generalized=True),
                   "e = I + 0.2·random, s = 0.2·random (the generalized equation)"),
            Domain("unbalanced", _domain(kind, balanced=False), "balanced=False"),
        ),
        derivation="docs/derivations/riccati.md",
        reference=_reference(kind),
        references=_REFS,
    )


RULES = (_rule("care", _care_fun), _rule("dare", _dare_fun))
