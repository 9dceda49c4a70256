"""QR updates: qr_update, qr_insert, qr_delete, qr_multiply.
Derivation: docs/derivations/qr_update.md

Given a QR factorization A = Q R (Q full (M, M) or economic (M, N)), SciPy's Givens-rotation
updates return a QR factorization (Q1, R1) of a modified matrix A1:

    qr_update   A1 = Q R + U Vᴴ               (u, v vectors or (., p) blocks: rank p)
    qr_insert   A1 = A with rows / columns U inserted before row / column k
    qr_delete   A1 = A without rows / columns k, ..., k + p − 1

The rule forms A1 from the inputs with differentiable operations (A = Q triu(R)), so that
dA1 = dQ R + Q dR + dU Vᴴ + U dVᴴ (or the inserted / kept rows of dA), and treats (Q1, R1)
as a QR factorization of A1 whose diagonal phases are held fixed:

    Ω = Q1ᴴ dQ1 skew-Hermitian, dR1 R1⁻¹ upper triangular with a real diagonal
    (Im(conj(r_ii) dr_ii) = 0)

which is qr's rule (qr.md) with R's diagonal allowed to be complex: the forward pass is
SciPy's, the derivatives are qr_vjp / qr_jvp of linalgad.rules.qr on A1 (reduced, wide, and
'complete' when Q1 is square and tall), so every order of derivative works.

Real data: SciPy's signs are locally constant, and the rule is SciPy's exact derivative.
Complex data: SciPy's rotations (c real, r with the phase of the rotated entry) move the
phases of R1's diagonal smoothly with the input; that motion belongs to the algorithm, not
to the factorization, and is not differentiated.  Reverse mode raises ValueError for a loss
that depends on those phases (its derivative along Q1 → Q1 D, R1 → Dᴴ R1 is not zero);
forward mode returns the fixed-phase tangent (qr_update.md, section 6).

qr_multiply: Q R = a (qr's rule, pivoting included), then Q c or c Q (conjugated on request).
"""

from __future__ import annotations

import operator

import numpy as np

from .. import ops
from ..backend import namespace_of, qr_modify
from ..backend import qr_multiply as _qr_multiply_kernel
from ..registry import Domain, Rule
from ..tape import Primitive, Tracer
from ..testing import matrices as M
from . import _common as C
from . import _spectral as S
from .qr import _qr as _qr_primitive, qr as _qr, qr_jvp as _qr_jvp, qr_vjp as _qr_vjp

__all__ = ["qr_update", "qr_insert", "qr_delete", "qr_multiply", "RULES"]

_DERIVATION = "docs/derivations/qr_update.md"


# -- the factorization of A1, with SciPy's factors as its value ------------------------------

def _completion_message(op, m, n):
    return (f"{op}: the loss depends on the last {m - n} columns of Q1 (A1 is {m}x{n}), "
            "which are an arbitrary orthonormal completion (SciPy's rotations of Q's own "
            "completion), not a function of the inputs' product; its gradient is not defined. "
            f"Use an economic Q or make the loss depend on Q1[:, :{n}] only.")


def _phase_message(op):
    return (f"{op}: the loss depends on the phases of R1's diagonal (and of Q1's columns). "
            "SciPy's complex Givens rotations choose them by a smooth rule of the algorithm, "
            "not of the factorization, and linalgad does not differentiate it (qr_update.md, "
            "section 6). Make the loss invariant under Q1 -> Q1 D, R1 -> D^H R1 (D diagonal "
            "unitary): e.g. |R1|, Q1 @ R1, Q1 Q1^H, or the factors normalized to a positive "
            "diagonal, Q1 * s and conj(s)[:, None] * R1 with s = diag(R1) / |diag(R1)|.")


def _check_phase(op, Q1, R1, Q_bar, R_bar, k):
    """ValueError unless dL/dθ_j = Im[(R1 R̄1ᴴ)_jj − (Q̄1ᴴ Q1)_jj] ≈ 0, j < k: the derivative of
    the loss along the gauge Q1 → Q1 diag(e^{iθ}), R1 → diag(e^{−iθ}) R1 (qr.md, section 6)."""
    R1v = C.value(R1)
    if R1v.dtype.kind != "c" or k == 0:
        return
    xp = namespace_of(R1v)
    g = None
    scale = 0.0
    if R_bar is not None:
        Rb = C.value(R_bar)[..., :k, :]
        g = xp.sum(R1v[..., :k, :] * xp.conj(Rb), axis=-1)
        scale += float(xp.linalg.norm(R1v)) * float(xp.linalg.norm(Rb))
    if Q_bar is not None:
        Qb = C.value(Q_bar)[..., :, :k]
        t = xp.sum(xp.conj(Qb) * C.value(Q1)[..., :, :k], axis=-2)
        g = -t if g is None else g - t
        scale += float(xp.linalg.norm(Qb))
    if g is None:
        return
    if float(xp.abs(g.imag).max()) > S.rel_tol(R1v.dtype) * scale:
        raise ValueError(_phase_message(op))


def _factors_impl(A1, *, given, complete, op):
    return given


def _factors_vjp(cts, needs, out, res, A1, *, given, complete, op):
    """Ā1 by qr's reverse rule, after the completion and phase checks (qr_update.md, §3)."""
    Q_bar, R_bar = cts
    Q1, R1 = out
    m, n = ops._shape(A1)[-2:]
    if complete and m > n and Q_bar is not None:
        C.require_unused(C.submatrix(Q_bar, slice(None), slice(n, None)),
                         _completion_message(op, m, n))
    _check_phase(op, Q1, R1, Q_bar, R_bar, min(m, n))
    return _qr_vjp(cts, needs, out, res, A1, complete=complete, op="qr")


def _factors_jvp(tangents, out, res, A1, *, given, complete, op):
    """(Q̇1, Ṙ1) by qr's forward rule (fixed diagonal phases; completion convention)."""
    return _qr_jvp(tangents, out, res, A1, complete=complete, op="qr")


_factors = Primitive("qr_update_factors", _factors_impl, _factors_vjp, _factors_jvp,
                     multiple_results=True)


def _traced(*xs):
    return any(isinstance(x, Tracer) for x in xs)


def _finish(op, A1, given, traced):
    """(Q1, R1): SciPy's factors, and on the tape the factorization of A1 they are."""
    Q1, R1 = given
    if not traced:
        return Q1, R1
    q = C.peek(Q1).shape
    m, n = q[-2], C.peek(R1).shape[-1]
    complete = q[-1] == q[-2] and m > n
    Q1, R1 = _factors(A1, given=(Q1, R1), complete=complete, op=op)
    return Q1, R1


# -- arguments ------------------------------------------------------------------------------

def _two_d(op, name, x):
    v = C.peek(x)
    if v.ndim != 2:
        raise ValueError(f"{op}: {name} must be 2-D, got shape {v.shape} (stacks are not "
                         "supported: SciPy 1.17 documents batch dimensions for this function "
                         "but fails on them)")
    return v


def _factor_shapes(op, Q, R):
    """(M, N, economic) of a QR factorization Q (M, M) R (M, N) or Q (M, N) R (N, N)."""
    q, r = _two_d(op, "Q", Q).shape, _two_d(op, "R", R).shape
    if q[0] == q[1] and r[0] == q[0]:
        return q[0], r[1], False
    if q[1] == r[0] == r[1] and q[0] > q[1]:
        return q[0], r[1], True
    raise ValueError(f"{op}: Q and R do not have compatible shapes. Expected (M,M) (M,N) or "
                     f"(M,N) (N,N) but found {q} {r} for Q and R respectively")


def _prepare(op, names, arrays, check_finite):
    """The arrays in their common LAPACK dtype (SciPy requires one dtype and raises otherwise;
    linalgad promotes), finite-checked."""
    dtype = C.result_dtype(op, *(C.peek(a) for a in arrays))
    C.checked(op, names, arrays, check_finite)
    return tuple(C.promote(a, dtype) for a in arrays)


def _index(op, name, k):
    if isinstance(k, (float, np.floating)) and float(k).is_integer():
        return int(k)                  # SciPy takes an integral float
    try:
        return operator.index(k)
    except TypeError:
        raise ValueError(f"{op}: {name!r} must be an integer, got {k!r}") from None


def _which(op, which):
    if which not in ("row", "col"):
        raise ValueError(f"{op}: 'which' must be either 'row' or 'col', got {which!r}")
    return which


def _column(x, ndim):
    """A vector (n,) as (n, 1); a block (n, p) as it is."""
    return ops.reshape(x, ops._shape(x) + (1,)) if ndim == 1 else x


def _product(Q, R):
    """A = Q triu(R): the matrix the factorization describes (R's lower entries unread)."""
    return ops.matmul(Q, ops.triu(R))


# -- qr_update --------------------------------------------------------------------------------

def qr_update(Q, R, u, v, overwrite_qruv=False, check_finite=True):
    """Rank-k QR update, differentiable (scipy.linalg.qr_update).

    If A = Q R (Q (M, M) and R (M, N), or economic Q (M, N) and R (N, N)), returns the QR
    factorization (Q1, R1) of A + u vᴴ (u vᵀ for real data), with u (M,) and v (N,), or
    u (M, p) and v (N, p) for a rank-p update; Q1, R1 have Q's and R's shapes.  The values
    are SciPy's (Givens rotations; R1's diagonal need not be real or positive).  2-D inputs
    only (SciPy 1.17 fails on stacks); inputs of different dtypes are promoted to one (SciPy
    raises).  ``overwrite_qruv`` is accepted and ignored.  CuPy inputs: SciPy's kernel on the
    host, the factors copied back (CuPy has no QR update; the derivatives run on the device).

    Derivatives: (Q1, R1) as a QR factorization of A1 = Q triu(R) + u vᴴ with R1's diagonal
    phases held fixed (qr_update.md): gradients reach Q, R, u and v.  Real data: SciPy's own
    derivative.  Complex data: reverse mode raises ValueError for a loss that depends on the
    phases SciPy's rotations give R1's diagonal; forward mode returns the fixed-phase tangent.
    A full tall Q1's last M − N columns are a completion: reverse mode raises for a loss on
    them, forward mode gives qr's completion tangent.

    Valid when: Q is orthonormal and R upper triangular (perturbations of Q that leave it
    orthonormal), and A1's leading min(M, N) columns are linearly independent.
    """
    op = "qr_update"
    Q, R, u, v = C.array_args(op, Q=Q, R=R, u=u, v=v)
    m, n, economic = _factor_shapes(op, Q, R)
    uv, vv = C.peek(u), C.peek(v)
    if uv.ndim != vv.ndim or uv.ndim not in (1, 2):
        raise ValueError(f"{op}: u and v must have the same number of dimensions, 1 or 2; got "
                         f"shapes {uv.shape} and {vv.shape}")
    if uv.shape[0] != m or vv.shape[0] != n or (uv.ndim == 2 and uv.shape[1] != vv.shape[1]):
        raise ValueError(f"{op}: u must be ({m},) or ({m}, p) and v ({n},) or ({n}, p) for Q "
                         f"{C.peek(Q).shape} and R {C.peek(R).shape}; got {uv.shape} and "
                         f"{vv.shape}")
    p = 1 if uv.ndim == 1 else uv.shape[1]
    limit = min(n, m - n) if m > n and not economic else min(m, n)
    if p > limit:
        # SciPy 1.17 hands LAPACK's ormqr an illegal argument there (ValueError after
        # xerbla's message on stdout)
        advice = (f"split it into updates of rank at most {limit}" if limit else
                  "there is no update of a matrix with no rows or columns")
        raise ValueError(f"{op}: a rank-{p} update of the {'economic' if economic else 'full'} "
                         f"factorization of a {m}x{n} matrix is not supported by SciPy 1.17 "
                         f"(rank at most {limit}); {advice}")
    Q, R, u, v = _prepare(op, ("Q", "R", "u", "v"), (Q, R, u, v), check_finite)
    given = C.compute(lambda *xs: qr_modify("qr_update", *xs, op=op), (Q, R, u, v),
                      name="qr_update's rotations")
    traced = _traced(Q, R, u, v)
    A1 = None
    if traced:
        A1 = _product(Q, R) + ops.matmul(_column(u, uv.ndim), ops.mH(_column(v, vv.ndim)))
    return _finish(op, A1, given, traced)


# -- qr_insert --------------------------------------------------------------------------------

def qr_insert(Q, R, u, k, which="row", rcond=None, overwrite_qru=False, check_finite=True):
    """QR update on row or column insertions, differentiable (scipy.linalg.qr_insert).

    If A = Q R, returns the QR factorization (Q1, R1) of A with u inserted before row k
    (``which='row'``: u (N,) or (p, N)) or before column k (``which='col'``: u (M,) or
    (M, p)); k may be negative (counted from the end, as SciPy).  Full Q (M, M) or economic
    Q (M, N) as SciPy allows; ``rcond`` (economic column insertion: the smallest reciprocal
    condition number of [Q u/‖u‖] accepted, LinAlgError below it) as SciPy.  Values are
    SciPy's (on the host for CuPy inputs, as ``qr_update``); 2-D inputs only; ``overwrite_qru``
    is accepted and ignored.

    Derivatives: (Q1, R1) as a QR factorization of A1 = [A[:k]; u; A[k:]] (rows) or
    [A[:, :k] u A[:, k:]] (columns), A = Q triu(R), with R1's diagonal phases held fixed
    (qr_update.md); complex phases and completion columns as for ``qr_update``.

    Valid when: Q is orthonormal and R upper triangular, and A1's leading min(M1, N1) columns
    are linearly independent.
    """
    op = "qr_insert"
    Q, R, u = C.array_args(op, Q=Q, R=R, u=u)
    m, n, economic = _factor_shapes(op, Q, R)
    which = _which(op, which)
    k = _index(op, "k", k)
    uv = C.peek(u)
    if which == "row":
        if not (uv.ndim == 1 and uv.shape[0] == n) and not (uv.ndim == 2 and uv.shape[1] == n):
            raise ValueError(f"{op}: 'u' should be either ({n},) or (p,{n}) when inserting "
                             f"rows. Found {uv.shape}.")
        size, p = m, (1 if uv.ndim == 1 else uv.shape[0])
    else:
        if not (uv.ndim in (1, 2) and uv.shape[0] == m):
            raise ValueError(f"{op}: 'u' should be either ({m},) or ({m},p) when inserting "
                             f"columns. Found {uv.shape}.")
        size, p = n, (1 if uv.ndim == 1 else uv.shape[1])
    if not -size <= k <= size:
        raise ValueError(f"{op}: 'k' is out of bounds: {k} for {size} {which}s")
    kk = k + size if k < 0 else k
    Q, R, u = _prepare(op, ("Q", "R", "u"), (Q, R, u), check_finite)
    given = C.compute(lambda *xs: qr_modify("qr_insert", *xs, k, which=which, rcond=rcond,
                                            op=op), (Q, R, u), name="qr_insert's rotations")
    traced = _traced(Q, R, u)
    A1 = None
    if traced:
        A = _product(Q, R)
        if which == "row":
            U = ops.reshape(u, (1, n)) if uv.ndim == 1 else u
            A1 = ops.concatenate([C.submatrix(A, slice(0, kk)), U,
                                  C.submatrix(A, slice(kk, None))], axis=-2)
        else:
            U = _column(u, uv.ndim)
            A1 = ops.concatenate([C.submatrix(A, slice(None), slice(0, kk)), U,
                                  C.submatrix(A, slice(None), slice(kk, None))], axis=-1)
    return _finish(op, A1, given, traced)


# -- qr_delete --------------------------------------------------------------------------------

def qr_delete(Q, R, k, p=1, which="row", overwrite_qr=False, check_finite=True):
    """QR downdate on row or column deletions, differentiable (scipy.linalg.qr_delete).

    If A = Q R, returns the QR factorization (Q1, R1) of A without rows (``which='row'``) or
    columns (``'col'``) k, ..., k + p − 1; k may be negative (counted from the end).  Full or
    economic Q as SciPy allows.  Values are SciPy's (on the host for CuPy inputs, as
    ``qr_update``); 2-D inputs only; ``overwrite_qr`` is accepted and ignored.

    Derivatives: (Q1, R1) as a QR factorization of the kept rows / columns of A = Q triu(R)
    with R1's diagonal phases held fixed (qr_update.md); complex phases and completion columns
    as for ``qr_update``.

    Valid when: Q is orthonormal and R upper triangular, and A1's leading min(M1, N1) columns
    are linearly independent.
    """
    op = "qr_delete"
    Q, R = C.array_args(op, Q=Q, R=R)
    m, n, economic = _factor_shapes(op, Q, R)
    which = _which(op, which)
    k, p = _index(op, "k", k), _index(op, "p", p)
    size = m if which == "row" else n
    if not -size <= k < size:
        raise ValueError(f"{op}: 'k' is out of bounds: {k} for {size} {which}s")
    kk = k + size if k < 0 else k
    if p < 1 or kk + p > size:
        raise ValueError(f"{op}: 'p' is out of range: deleting {p} {which}(s) from {which} "
                         f"{kk} of {size}")
    Q, R = _prepare(op, ("Q", "R"), (Q, R), check_finite)
    given = C.compute(lambda *xs: qr_modify("qr_delete", *xs, k, p, which=which, op=op),
                      (Q, R), name="qr_delete's rotations")
    traced = _traced(Q, R)
    A1 = None
    if traced:
        A = _product(Q, R)
        if which == "row":
            A1 = ops.concatenate([C.submatrix(A, slice(0, kk)),
                                  C.submatrix(A, slice(kk + p, None))], axis=-2)
        else:
            A1 = ops.concatenate([C.submatrix(A, slice(None), slice(0, kk)),
                                  C.submatrix(A, slice(None), slice(kk + p, None))], axis=-1)
    return _finish(op, A1, given, traced)


# -- qr_multiply ------------------------------------------------------------------------------

def qr_multiply(a, c, mode="right", pivoting=False, conjugate=False, overwrite_a=False,
                overwrite_c=False):
    """QR decomposition of a and a product with Q, differentiable (scipy.linalg.qr_multiply).

    With a = Q R (economic: Q (M, K), R (K, N), K = min(M, N)), returns (Q c, R) for
    ``mode='left'`` (c (K,) or (K, k); a vector gives (M,)) or (c Q, R) for ``mode='right'``
    (c (M,) or (k, M); a vector gives (K,)), with conj(Q) in place of Q when ``conjugate``;
    ``pivoting=True`` returns (CQ, R, P) with a[:, P] = Q R (P int32, piecewise constant,
    not differentiated).  Values: SciPy's own qr_multiply for NumPy arrays (Householder
    reflectors, Q never formed); on the GPU qr and a product on the device.  Stacks as
    SciPy 1.17: a (..., M, N) and c (..., K, k) / (..., k, M) (or a vector, the same for
    every matrix) with broadcast leading dimensions, R (and P) repeated over c's; an empty
    stack gives empty results (SciPy raises).  A real a with a complex c gives a complex
    result (SciPy drops the imaginary part with a ComplexWarning).  ``overwrite_a``,
    ``overwrite_c`` are accepted and ignored.

    Derivatives: qr's rule (qr.md; pivoting: the QR of a[:, P]) and the product's, so
    gradients reach a and c, to every order.

    Valid when: a's leading K columns (a[:, P]'s with pivoting) are linearly independent.
    """
    op = "qr_multiply"
    a, c = C.array_args(op, a=a, c=c)
    if mode not in ("left", "right"):
        raise ValueError(f"{op}: Mode argument can only be 'left' or 'right' but not {mode!r}")
    pivoting = C.boolean(op, pivoting, "pivoting")
    conjugate = C.boolean(op, conjugate, "conjugate")
    av, cv = C.peek(a), C.peek(c)
    if av.ndim < 2 or cv.ndim < 1:
        raise ValueError(f"{op}: a must be (..., M, N) and c (..., K, k), (..., k, M) or a "
                         f"vector; got shapes {av.shape} and {cv.shape}")
    # SciPy 1.17 batches a (core 2-D) and c (core 2-D, or 1-D for a vector), broadcasting
    # the leading dimensions; R and P take the broadcast batch shape too
    m, n = av.shape[-2:]
    kq = min(m, n)
    core = cv.shape[-2:] if cv.ndim >= 2 else cv.shape
    try:
        batch = np.broadcast_shapes(av.shape[:-2], cv.shape[:-2] if cv.ndim >= 2 else ())
    except ValueError:
        raise ValueError(f"{op}: the batch shapes of a {av.shape[:-2]} and c "
                         f"{cv.shape[:-2]} do not broadcast") from None
    if mode == "left":
        shown = core if len(core) == 2 else (core[0], 1)
        if core[0] != kq:
            raise ValueError(f"{op}: Array shapes are not compatible for Q @ c operation: "
                             f"{(m, kq)} vs {shown}")
    else:
        shown = core if len(core) == 2 else (1, core[0])
        if core[-1] != m:
            raise ValueError(f"{op}: Array shapes are not compatible for c @ Q operation: "
                             f"{shown} vs {(m, kq)}")
    a, c = _prepare(op, ("a", "c"), (a, c), True)
    if not _traced(a, c) and int(np.prod(batch)) != 0:     # SciPy refuses empty batches
        out = _qr_multiply_kernel(a, c, mode, pivoting, conjugate)
        if out is not None:
            return out
    res = _qr(a, mode="economic", pivoting=pivoting)
    Qf, R = res[0], res[1]
    if conjugate:
        Qf = ops.conj(Qf)
    CQ = ops.matmul(Qf, c) if mode == "left" else ops.matmul(c, Qf)
    if batch != av.shape[:-2]:                  # c's batch is wider: R (and P) repeated
        R = ops.broadcast_to(R, batch + (kq, n))
        if pivoting:
            P = C.peek(res[2])
            res = res[:2] + (namespace_of(P).ascontiguousarray(
                namespace_of(P).broadcast_to(P, batch + (n,))),)
    return (CQ, R, res[2]) if pivoting else (CQ, R)


# -- registry ---------------------------------------------------------------------------------

def _normalize(Q1, R1, xp_ops=ops):
    """The factors normalized to a positive diagonal, Q1[:, :K] D and Dᴴ R1[:K] with
    D = diag(r_jj / |r_jj|), K = min(M1, N1) (a tall full Q1's completion columns dropped):
    invariant under the phase gauge, so the registry's checks compare them with SciPy's (and
    its finite differences) in every dtype, complex included (qr_update.md, section 6)."""
    m, n = xp_ops._shape(R1)[-2:] if xp_ops is ops else R1.shape[-2:]
    k = min(m, n)
    if xp_ops is ops:
        d = ops.diagonal(C.submatrix(R1, slice(0, k), slice(0, k)), 0, -2, -1)
        s = d / ops.abs(d)
        Qn = C.submatrix(Q1, slice(None), slice(0, k)) * s[None, :]
        Rn = C.submatrix(R1, slice(0, k)) * ops.conj(s)[:, None]
        return Qn, Rn
    d = np.diagonal(R1[:k, :k])
    s = d / np.abs(d)
    return Q1[:, :k] * s[None, :], R1[:k] * np.conj(s)[:, None]


def _factored(a, full):
    """a = Q R, differentiable (reduced or complete)."""
    return _qr(a, mode="complete" if full else "reduced")


def _update_fun(a, u, v, full=True):
    Q, R = _factored(a, full)
    return _normalize(*qr_update(Q, R, u, v))


def _insert_fun(a, u, k=1, which="row", full=True):
    Q, R = _factored(a, full)
    return _normalize(*qr_insert(Q, R, u, k, which=which))


def _delete_fun(a, k=1, p=1, which="row", full=True):
    Q, R = _factored(a, full)
    return _normalize(*qr_delete(Q, R, k, p, which=which))


def _multiply_fun(a, c, mode="right", conjugate=False, pivoting=False):
    return tuple(qr_multiply(a, c, mode=mode, conjugate=conjugate, pivoting=pivoting)[:2])


_update_fun.__doc__ = qr_update.__doc__
_insert_fun.__doc__ = qr_insert.__doc__
_delete_fun.__doc__ = qr_delete.__doc__
_multiply_fun.__doc__ = qr_multiply.__doc__


def _scipy_factored(a, full):
    import scipy.linalg
    return scipy.linalg.qr(a, mode="full" if full else "economic")


def update_reference(a, u, v, full=True):
    import scipy.linalg
    return _normalize(*scipy.linalg.qr_update(*_scipy_factored(a, full), u, v), xp_ops=np)


def insert_reference(a, u, k=1, which="row", full=True):
    import scipy.linalg
    return _normalize(*scipy.linalg.qr_insert(*_scipy_factored(a, full), u, k, which=which),
                      xp_ops=np)


def delete_reference(a, k=1, p=1, which="row", full=True):
    import scipy.linalg
    return _normalize(*scipy.linalg.qr_delete(*_scipy_factored(a, full), k, p, which=which),
                      xp_ops=np)


def multiply_reference(a, c, mode="right", conjugate=False, pivoting=False):
    import scipy.linalg
    return tuple(scipy.linalg.qr_multiply(a, c, mode=mode, conjugate=conjugate,
                                          pivoting=pivoting)[:2])


def _matrix(rng, m, n, dtype):
    """A well-conditioned m×n matrix (a slice of a random square one of condition ≤ 10)."""
    return np.ascontiguousarray(M.random_general(rng, max(m, n), (), dtype)[:m, :n])


def _vec(rng, shape, dtype):
    x = rng.standard_normal(shape)
    if np.dtype(dtype).kind == "c":
        x = x + 1j * rng.standard_normal(shape)
    return np.ascontiguousarray(0.5 * x, dtype=dtype)


def _update_domain(m, n, p=None, full=True):
    def make(rng, _n, batch, dtype):
        su, sv = ((m,), (n,)) if p is None else ((m, p), (n, p))
        return (_matrix(rng, m, n, dtype), _vec(rng, su, dtype), _vec(rng, sv, dtype)), \
            {"full": full}
    return make


def _insert_domain(m, n, k, which, p=None, full=True):
    def make(rng, _n, batch, dtype):
        if which == "row":
            shape = (n,) if p is None else (p, n)
        else:
            shape = (m,) if p is None else (m, p)
        return (_matrix(rng, m, n, dtype), _vec(rng, shape, dtype)), \
            {"k": k, "which": which, "full": full}
    return make


def _delete_domain(m, n, k, p, which, full=True):
    def make(rng, _n, batch, dtype):
        return (_matrix(rng, m, n, dtype),), {"k": k, "p": p, "which": which, "full": full}
    return make


def _multiply_domain(m, n, mode, cshape, conjugate=False, pivoting=False):
    def make(rng, _n, batch, dtype):
        a = _matrix(rng, m, n, dtype)
        if pivoting:        # well-separated column norms: the pivot order is stable
            a = np.ascontiguousarray((a * 2.0 ** -np.arange(n))[:, rng.permutation(n)])
        return (a, _vec(rng, cshape, dtype)), {"mode": mode, "conjugate": conjugate,
                                                "pivoting": pivoting}
    return make


_ONE = ((),)        # SciPy 1.17 fails on stacks: 2-D only

RULES = (
    Rule(
        name="qr_update",
        fun=_update_fun,
        primitive=_factors,
        domains=(
            Domain("tall-full", _update_domain(5, 3), "5×3, full Q, rank 1"),
            Domain("tall-economic", _update_domain(5, 3, full=False), "economic Q, rank 1"),
            Domain("square-rank2", _update_domain(4, 4, p=2), "4×4, rank 2"),
            Domain("wide", _update_domain(3, 5), "3×5, rank 1"),
            Domain("economic-rank2", _update_domain(5, 3, p=2, full=False), "economic, rank 2"),
        ),
        derivation=_DERIVATION,
        reference=update_reference,
        batch_shapes=_ONE,
        references=("Golub & Van Loan, §12.5", "Walter & Lehmann 2018"),
    ),
    Rule(
        name="qr_insert",
        fun=_insert_fun,
        primitive=_factors,
        domains=(
            Domain("row-full", _insert_domain(5, 3, 2, "row"), "5×3, a row before row 2"),
            Domain("rows-economic", _insert_domain(4, 3, -1, "row", p=2, full=False),
                   "economic, 2 rows before the last"),
            Domain("col-full", _insert_domain(5, 3, 1, "col"), "5×3, a column before col 1"),
            Domain("cols-wide", _insert_domain(3, 2, 0, "col", p=2), "3×2 + 2 columns: wide"),
            Domain("col-economic", _insert_domain(5, 3, 3, "col", full=False),
                   "economic, a column at the end"),
        ),
        derivation=_DERIVATION,
        reference=insert_reference,
        batch_shapes=_ONE,
        references=("Golub & Van Loan, §12.5", "Walter & Lehmann 2018"),
    ),
    Rule(
        name="qr_delete",
        fun=_delete_fun,
        primitive=_factors,
        domains=(
            Domain("row-full", _delete_domain(5, 3, 1, 1, "row"), "5×3, row 1"),
            Domain("rows-economic", _delete_domain(6, 3, -3, 2, "row", full=False),
                   "economic, 2 rows from the third last"),
            Domain("rows-to-wide", _delete_domain(4, 3, 0, 2, "row"), "4×3 − 2 rows: wide"),
            Domain("col-full", _delete_domain(5, 3, 1, 1, "col"), "5×3, column 1"),
            Domain("cols-economic", _delete_domain(5, 4, 0, 2, "col", full=False),
                   "economic, columns 0 and 1"),
        ),
        derivation=_DERIVATION,
        reference=delete_reference,
        batch_shapes=_ONE,
        references=("Golub & Van Loan, §12.5", "Walter & Lehmann 2018"),
    ),
    Rule(
        name="qr_multiply",
        fun=_multiply_fun,
        primitive=_qr_primitive,
        domains=(
            Domain("right-tall", _multiply_domain(5, 3, "right", (2, 5)), "c (2, 5) @ Q"),
            Domain("left-tall", _multiply_domain(5, 3, "left", (3, 2)), "Q @ c (3, 2)"),
            Domain("right-wide-vector", _multiply_domain(3, 5, "right", (3,)), "c (3,) @ Q"),
            Domain("left-conjugate", _multiply_domain(4, 4, "left", (4,), conjugate=True),
                   "conj(Q) @ c"),
            Domain("right-pivoting", _multiply_domain(5, 3, "right", (2, 5), pivoting=True),
                   "pivoted, c @ Q"),
        ),
        derivation=_DERIVATION,
        reference=multiply_reference,
        batch_shapes=_ONE,
        references=("LAPACK ormqr/unmqr", "Walter & Lehmann 2018"),
    ),
)
