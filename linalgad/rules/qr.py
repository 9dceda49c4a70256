"""qr: A = Q R.   Derivation: docs/derivations/qr.md

m ≥ n (reduced): Q (m×n) with orthonormal columns, R (n×n) upper triangular
with a real diagonal (LAPACK's gauge, which fixes the phases of Q's columns).

    C = Qᴴ dA R⁻¹,  Ω = Qᴴ dQ = tril(C, −1) − tril(C, −1)ᴴ + i Im diag(C)
    dR = (C − Ω) R,  dQ = dA R⁻¹ − Q (C − Ω)
Reverse  M = R R̄ᴴ − Q̄ᴴ Q,  copyltu(M) = tril(M, −1) + tril(M, −1)ᴴ + Re diag(M),
         Ā = (Q̄ + Q copyltu(M)) R⁻ᴴ   (one triangular solve, m right-hand sides)
Wide (m < n): A = Q [R₁ R₂]: Q̄' = Q̄ + A₂ R̄₂ᴴ, Ā₂ = Q R̄₂, Ā₁ from the rule above.
'complete' with m > n: the last m − n columns of Q are any orthonormal
completion, not a function of A; a loss that depends on them raises in reverse
mode, and forward mode uses the convention Q̇₂ = −Q₁ (Q̇₁ᴴ Q₂).
"""

from __future__ import annotations

from collections import namedtuple

import numpy as np

from .. import ops, transforms
from ..backend import kernels_for
from ..registry import Domain, Rule
from ..tape import Primitive, Tracer
from . import _common as C
from .triangular import _trisolve

__all__ = ["qr", "rq", "QRResult", "RULES"]

QRResult = namedtuple("QRResult", ["Q", "R"])

_MODES = {"reduced": "reduced", "economic": "reduced", "complete": "complete",
          "full": "complete", "r": "r"}


def qr_forward(A, *, complete=False, given=None, op="qr"):
    """(Q, R); ``given``: the factors of this A already computed (pivoted QR's geqp3 gives
    those of A[:, P], whose derivative is this rule's)."""
    if given is not None:
        return given
    Q, R = kernels_for(A).qr(A, complete=complete)
    return Q, R


def _copyltu(Mx):
    low = ops.tril(Mx, -1)
    d = ops.diagonal(Mx, 0, -2, -1)
    if ops._is_complex(d):
        d = ops.real(d)
    return low + ops.mH(low) + ops._embed_diagonal(d, shape=ops._shape(Mx), offset=0,
                                                   axis1=-2, axis2=-1)


def _square_vjp(Q, R, Q_bar, R_bar):
    """Ā = (Q̄ + Q copyltu(M)) R⁻ᴴ, M = R R̄ᴴ − Q̄ᴴ Q (R square, n×n): one kernel call where
    the table has one, the composed form below otherwise and for derivatives."""
    return _square_cotangent(Q, R, Q_bar, R_bar)


def _completion_message(op, m, n):
    if op == "rq":      # rq(a) is the reflection of qr(J aᴴ J): columns of Q₁ are rows of Q
        return (f"rq(mode='full'): the loss depends on the first {m - n} rows of Q (a is "
                f"{n}x{m}), which are an arbitrary orthonormal completion, not a function "
                "of a; its gradient is not defined. Use mode='economic' or make the loss "
                f"depend on Q[..., {m - n}:, :] only.")
    return (f"qr(mode='complete'): the loss depends on the last m - n columns of Q (a is "
            f"{m}x{n}), which are an arbitrary orthonormal completion, not a function of a; "
            "its gradient is not defined. Use mode='reduced' or make the loss depend on "
            "Q[..., :, :n] only.")


def _square_cotangent_kernel(Q, R, Q_bar, R_bar):
    out = kernels_for(Q, R).qr_cotangent(Q, R, Q_bar, R_bar)
    return _square_composed(Q, R, Q_bar, R_bar) if out is None else out


def _square_composed(Q, R, Q_bar, R_bar):
    """Ā = (Q̄ + Q copyltu(M)) R⁻ᴴ, M = R R̄ᴴ − Q̄ᴴ Q, in differentiable operations."""
    Mx = None
    if R_bar is not None:
        Mx = ops.matmul(R, ops.mH(R_bar))
    if Q_bar is not None:
        t = ops.matmul(ops.mH(Q_bar), Q)
        Mx = -t if Mx is None else Mx - t
    B = ops.matmul(Q, _copyltu(Mx))
    if Q_bar is not None:
        B = B + Q_bar
    return ops.mH(_trisolve(R, ops.mH(B), lower=False, trans=0, op="qr"))    # B R⁻ᴴ


def qr_vjp(cts, needs, out, res, A, *, complete=False, given=None, op="qr"):
    Q_bar, R_bar = cts
    Q, R = out
    m, n = ops._shape(A)[-2:]
    k = min(m, n)
    if complete and m > n:
        if Q_bar is not None:
            C.require_unused(C.submatrix(Q_bar, slice(None), slice(n, None)),
                             _completion_message(op, m, n))
            Q_bar = C.submatrix(Q_bar, slice(None), slice(0, n))
        Q = C.submatrix(Q, slice(None), slice(0, n))
        R = C.submatrix(R, slice(0, n))
        if R_bar is not None:
            R_bar = C.submatrix(R_bar, slice(0, n))
    if m >= n:
        return (ops.fit(_square_vjp(Q, R, Q_bar, R_bar), A),)
    # wide: A = Q [R₁ R₂], R₂ = Qᴴ A₂
    R1 = C.submatrix(R, slice(None), slice(0, k))
    A2 = C.submatrix(A, slice(None), slice(k, None))
    R1_bar = R2_bar = None
    if R_bar is not None:
        R1_bar = C.submatrix(R_bar, slice(None), slice(0, k))
        R2_bar = C.submatrix(R_bar, slice(None), slice(k, None))
        extra = ops.matmul(A2, ops.mH(R2_bar))
        Q_bar = extra if Q_bar is None else Q_bar + extra
        A2_bar = ops.matmul(Q, R2_bar)
    else:
        A2_bar = ops.zeros_like(A2)
    A1_bar = _square_vjp(Q, R1, Q_bar, R1_bar)
    return (ops.fit(ops.concatenate([A1_bar, A2_bar], axis=-1), A),)


_square_cotangent = transforms.fused("qr_cotangent", _square_cotangent_kernel, _square_composed)


def _square_jvp(Q, R, A_dot):
    """(Q̇, Ṙ) for R square: D = Ȧ R⁻¹, C = Qᴴ D, Ξ = C − Ω, Ṙ = Ξ R, Q̇ = D − Q Ξ."""
    D = ops.mH(_trisolve(R, ops.mH(A_dot), lower=False, trans=2, op="qr"))   # Ȧ R⁻¹
    Cm = ops.matmul(ops.mH(Q), D)
    low = ops.tril(Cm, -1)
    Xi = ops.triu(Cm) + ops.mH(low)                     # C − Ω, off the diagonal
    if ops._is_complex(Cm):
        d = ops.diagonal(Cm, 0, -2, -1)
        Xi = Xi - 1j * ops._embed_diagonal(ops.imag(d), shape=ops._shape(Cm), offset=0,
                                           axis1=-2, axis2=-1)
    return D - ops.matmul(Q, Xi), ops.matmul(Xi, R)


def qr_jvp(tangents, out, res, A, *, complete=False, given=None, op="qr"):
    (A_dot,) = tangents
    Q, R = out
    m, n = ops._shape(A)[-2:]
    k = min(m, n)
    if m >= n:
        Q1 = C.submatrix(Q, slice(None), slice(0, n)) if complete and m > n else Q
        R1 = C.submatrix(R, slice(0, n)) if complete and m > n else R
        Q1_dot, R1_dot = _square_jvp(Q1, R1, A_dot)
        if not (complete and m > n):
            return Q1_dot, R1_dot
        Q2 = C.submatrix(Q, slice(None), slice(n, None))
        Q2_dot = C.completion_tangent(Q1, Q1_dot, Q2)
        zeros = ops.zeros_like(C.submatrix(R, slice(n, None)))
        return (ops.concatenate([Q1_dot, Q2_dot], axis=-1),
                ops.concatenate([R1_dot, zeros], axis=-2))
    R1 = C.submatrix(R, slice(None), slice(0, k))
    A2 = C.submatrix(A, slice(None), slice(k, None))
    Q_dot, R1_dot = _square_jvp(Q, R1, C.submatrix(A_dot, slice(None), slice(0, k)))
    R2_dot = ops.matmul(ops.mH(Q_dot), A2) + \
        ops.matmul(ops.mH(Q), C.submatrix(A_dot, slice(None), slice(k, None)))
    return Q_dot, ops.concatenate([R1_dot, R2_dot], axis=-1)


def _named(rule):
    """rule (a VJP or JVP) with a singular R reported under the caller's name: rq reaches
    qr's rule through the reflection, where R's diagonal entries are rq's in reverse."""
    def named(*args, op="qr", **params):
        if op == "qr":
            return rule(*args, op=op, **params)
        try:
            return rule(*args, op=op, **params)
        except np.linalg.LinAlgError as exc:
            if "singular" not in str(exc):
                raise
            raise np.linalg.LinAlgError(
                f"{op}: R is singular (a has deficient row rank), so the derivative of its "
                "RQ factorization is not defined") from None
    return named


_qr = Primitive("qr", qr_forward, _named(qr_vjp), _named(qr_jvp), multiple_results=True)


def qr(a, mode="reduced", *, pivoting=False, overwrite_a=False, lwork=None,
       check_finite=True):
    """QR decomposition ``a = Q @ R``, differentiable (numpy.linalg.qr).

    ``a`` is (..., m, n), k = min(m, n).  mode 'reduced' (SciPy: 'economic')
    returns Q (..., m, k), R (..., k, n); 'complete' (SciPy: 'full') returns
    Q (..., m, m), R (..., m, n); 'r' returns R (..., k, n) only.  R has a
    real diagonal (LAPACK's convention), not necessarily positive.

    With 'complete' and m > n the last m − n columns of Q are an arbitrary
    orthonormal completion: reverse mode raises ValueError for a loss that
    depends on them; forward mode gives them the tangent −Q₁(Q̇₁ᴴQ₂).

    ``pivoting=True`` (SciPy): column-pivoted QR (LAPACK geqp3), returning
    ``(Q, R, P)`` (``(R, P)`` for mode 'r') with ``a[..., :, P] = Q @ R`` and
    |diag R| non-increasing; P (int32, per matrix of a stack) is piecewise
    constant, and Q, R are differentiated as the QR of a[..., :, P] (qr.md,
    section 8), valid where the pivot order does not change.

    SciPy's keywords: ``check_finite`` as SciPy; ``overwrite_a`` and ``lwork``
    are accepted and ignored.

    Valid when: the leading min(m, n) columns of a are linearly independent
    (R's leading block nonsingular).  The backward pass is matrix products
    and one triangular solve.
    """
    op = "qr"
    if mode not in _MODES:
        raise ValueError(f"qr: mode={mode!r} is not supported; use 'reduced', 'complete' or "
                         "'r' (SciPy's 'economic' and 'full' are accepted)")
    mode = _MODES[mode]
    A = C.prepare(op, a, check_finite, square=False)
    complete = mode == "complete"
    if pivoting:
        # geqp3's factors and pivots are values the rule computes for itself (under
        # linalgad.jit, a step of the recording; P is returned as a value of it)
        Q0, R0, P = C.compute(lambda a_: kernels_for(a_).qr_pivoted(a_, complete), (A,),
                              name="qr's column pivoting")
        # the columns in pivot order, differentiably: a[..., :, P] = Q R
        A_perm = ops.mT(ops.permute_rows(ops.mT(A), P))
        Q, R = _qr(A_perm, complete=complete, given=(Q0, R0))
        P = C.expose(P, A)
        return (R, P) if mode == "r" else (Q, R, P)
    if mode == "r" and not isinstance(A, Tracer):
        # nothing to differentiate: R alone (forming Q as well took 1.5-1.9x the time)
        return kernels_for(A).qr_r(A)
    Q, R = _qr(A, complete=complete)
    if mode == "r":
        return R
    return QRResult(Q, R)


_RQ_MODES = ("full", "economic", "r")


def _reflect(X):
    """J Xᴴ J (J the exchange matrix): the conjugate transpose with rows and columns
    reversed, differentiable.  It maps an RQ factorization onto a QR one (qr.md, §9)."""
    return ops.getitem(ops.mH(X), (Ellipsis, slice(None, None, -1), slice(None, None, -1)))


def rq(a, overwrite_a=False, lwork=None, mode="full", check_finite=True):
    """RQ decomposition ``a = R @ Q``, differentiable (scipy.linalg.rq).

    ``a`` is (..., M, N), K = min(M, N); stacks as SciPy 1.17.  mode 'full' (SciPy's
    default) returns R (..., M, N) and Q (..., N, N); 'economic' R (..., M, K) and Q
    (..., K, N); 'r' R only.  R is upper trapezoidal (R[i, j] = 0 for i > j + M − K... as
    LAPACK's gerqf: the last K columns hold the triangle) with a real diagonal, Q has
    orthonormal rows.  'raw' is not supported.

    With 'full' and M < N the first N − M rows of Q are an arbitrary orthonormal
    completion: reverse mode raises ValueError for a loss that depends on them; forward
    mode gives them the tangent of qr's completion convention.

    Computed as the reflection of a QR factorization: with J the exchange matrix,
    J aᴴ J = (J Qᴴ J)(J Rᴴ J) is a QR factorization, and LAPACK's geqrf on J aᴴ J gives
    gerqf's factors of ``a`` to rounding (the same Householder pivots), so values, signs
    and the completion agree with SciPy's; the derivative is qr's rule read through the
    reflection (qr.md, §9).  ``overwrite_a`` and ``lwork`` are accepted and ignored.

    Valid when: the trailing min(M, N) rows of a are linearly independent (R's triangle
    nonsingular).
    """
    op = "rq"
    if mode not in _RQ_MODES:
        raise ValueError(f"rq: mode={mode!r} is not supported; use 'full', 'economic' or 'r'")
    A = C.prepare(op, a, check_finite, square=False)
    B = _reflect(A)
    if mode != "r":
        Q1, R1 = _qr(B, complete=mode == "full", op=op)
        return _reflect(R1), _reflect(Q1)
    # 'r' is SciPy's full R, (M, N): the triangle of the reduced factor, after N − M zero
    # columns when M < N
    R1 = kernels_for(B).qr_r(B) if not isinstance(B, Tracer) else _qr(B, op=op)[1]
    n, m = C.peek(B).shape[-2:]
    if n > m:
        zeros = ops.zeros_like(C.submatrix(B, slice(m, None)))
        R1 = ops.concatenate([R1, zeros], axis=-2)
    return _reflect(R1)


# -- registry -------------------------------------------------------------------------------

def _qr_fun(a, mode="reduced"):
    out = qr(a, mode=mode)
    return out if mode == "r" else tuple(out)


_qr_fun.__doc__ = qr.__doc__


def _qr_complete_used(a):
    """'complete' on a tall matrix, loss on the determined part: Q[:, :n] and R."""
    Q, R = qr(a, mode="complete")
    n = ops._shape(a)[-1]
    return ops.getitem(Q, (Ellipsis, slice(None), slice(0, n))), R


_qr_complete_used.__doc__ = qr.__doc__


def qr_reference(a, mode="reduced"):
    out = np.linalg.qr(a, mode={"economic": "reduced", "full": "complete"}.get(mode, mode))
    return out if mode == "r" else tuple(out)


def qr_complete_used_reference(a):
    Q, R = np.linalg.qr(a, mode="complete")
    return Q[..., :, :a.shape[-1]], R


def _qr_pivoted_fun(a, mode="reduced"):
    out = qr(a, mode=mode, pivoting=True)
    return out[0] if mode == "r" else tuple(out[:2])      # P is an integer constant


_qr_pivoted_fun.__doc__ = qr.__doc__


def qr_pivoted_reference(a, mode="reduced"):
    import scipy.linalg

    def factor(i):
        return lambda ai: scipy.linalg.qr(ai, mode="economic", pivoting=True)[i]
    R = C.per_matrix(factor(1), a, cores=(2,))
    return R if mode == "r" else (C.per_matrix(factor(0), a, cores=(2,)), R)


def _pivoting_domain(m, n, **kw):
    """rect_domain's matrices with columns of well-separated norms (ratio 2), in shuffled
    order: pivoting reorders them, and a finite-difference step cannot change the order."""
    base = C.rect_domain(m, n, **kw)

    def make(rng, _n, batch, dtype):
        (A,), kwargs = base(rng, _n, batch, dtype)
        A = (A * 2.0 ** -np.arange(n))[..., rng.permutation(n)]
        return (np.ascontiguousarray(A, dtype=dtype),), kwargs
    return make


def _rq_fun(a, mode="economic"):
    out = rq(a, mode=mode)
    return out if mode == "r" else tuple(out)


_rq_fun.__doc__ = rq.__doc__


def _rq_full_used(a):
    """'full' on a wide matrix, loss on the determined part: R and Q[N − M:]."""
    R, Q = rq(a, mode="full")
    m, n = ops._shape(a)[-2:]
    return R, ops.getitem(Q, (Ellipsis, slice(n - m, None), slice(None)))


_rq_full_used.__doc__ = rq.__doc__


def rq_reference(a, mode="economic"):
    import scipy.linalg
    out = scipy.linalg.rq(a, mode=mode)
    return out if mode == "r" else tuple(out)


def rq_full_used_reference(a):
    import scipy.linalg
    R, Q = scipy.linalg.rq(a, mode="full")
    return R, Q[..., a.shape[-1] - a.shape[-2]:, :]


RULES = (
    Rule(
        name="qr",
        fun=_qr_fun,
        primitive=_qr,
        domains=(
            Domain("square", C.rect_domain(3, 3), "3×3, reduced"),
            Domain("tall", C.rect_domain(5, 3), "5×3, reduced"),
            Domain("wide", C.rect_domain(3, 5), "3×5"),
            Domain("r-tall", C.rect_domain(5, 3, mode="r"), "mode 'r'"),
            Domain("complete-wide", C.rect_domain(3, 5, mode="complete"), "'complete', wide"),
        ),
        derivation="docs/derivations/qr.md",
        reference=qr_reference,
        references=("Walter & Lehmann 2018", "Liao et al. 2019"),
    ),
    Rule(
        name="qr-pivoting",
        fun=_qr_pivoted_fun,
        primitive=_qr,
        domains=(
            Domain("tall", _pivoting_domain(5, 3), "5×3, column norms 1, ½, ¼ shuffled"),
            Domain("square", _pivoting_domain(4, 4), "4×4"),
            Domain("wide", _pivoting_domain(3, 5), "3×5"),
            Domain("r-tall", _pivoting_domain(5, 3, mode="r"), "mode 'r'"),
        ),
        derivation="docs/derivations/qr.md",
        reference=qr_pivoted_reference,
        references=("Businger & Golub 1965 (column pivoting)", "Walter & Lehmann 2018"),
    ),
    Rule(
        name="rq",
        fun=_rq_fun,
        primitive=_qr,
        domains=(
            Domain("square", C.rect_domain(3, 3), "3×3, economic"),
            Domain("tall", C.rect_domain(5, 3), "5×3, economic"),
            Domain("wide", C.rect_domain(3, 5), "3×5, economic"),
            Domain("full-tall", C.rect_domain(5, 3, mode="full"), "'full', 5×3"),
            Domain("r-wide", C.rect_domain(3, 5, mode="r"), "mode 'r', 3×5 (zero columns)"),
        ),
        derivation="docs/derivations/qr.md",
        reference=rq_reference,
        references=("LAPACK gerqf", "Walter & Lehmann 2018"),
    ),
    Rule(
        name="rq-full-wide",
        fun=_rq_full_used,
        primitive=_qr,
        domains=(Domain("wide", C.rect_domain(3, 5), "3×5 'full', loss on R and Q[2:]"),),
        derivation="docs/derivations/qr.md",
        reference=rq_full_used_reference,
        modes=("rev", "fwd"),
        references=("LAPACK gerqf",),
    ),
    Rule(
        name="qr-complete-tall",
        fun=_qr_complete_used,
        primitive=_qr,
        domains=(Domain("tall", C.rect_domain(5, 3), "5×3 'complete', loss on Q[:, :n] and R"),),
        derivation="docs/derivations/qr.md",
        reference=qr_complete_used_reference,
        modes=("rev", "fwd"),
        references=("Walter & Lehmann 2018",),
    ),
)
