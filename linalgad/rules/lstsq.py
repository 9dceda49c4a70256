"""lstsq, pinv, pinvh: least squares and the pseudo-inverse.   Derivation: docs/derivations/lstsq.md

Everything is one differentiable primitive, ``pinv_apply``: x = B⁺ y with
B = A (or Aᴴ), at constant rank, from a factorization of A computed once in
the forward pass (a cache, never differentiated).  With r = y − B x and
t = B⁺ᴴ x (Golub & Pereyra 1973):

    dx = B⁺(dy − dB x) + B⁺B⁺ᴴ dBᴴ r + (I − B⁺B) dBᴴ t
Reverse  w = B⁺ᴴ x̄,  ȳ = w,
         B̄ = −w xᴴ + r (B⁺ w)ᴴ + t (x̄ − B⁺B x̄)ᴴ
Forward  q = Ḃᴴ t,  ẋ = q + B⁺(ẏ − Ḃ x + B⁺ᴴ Ḃᴴ r − B q)

The r-terms vanish when B has full row rank (B B⁺ = I), the t-terms when it
has full column rank (B⁺B = I).  The derivative passes only apply B⁺ and
B⁺ᴴ (pinv_apply itself, so every order works) and B: triangular solves and
products with the stored QR, or products with the stored thin SVD.

lstsq:  x = A⁺ b.  Full rank: QR of A (tall) or of Aᴴ (wide) plus the
singular values of the small triangular factor (for s and the rank); rank
deficient: the thin SVD.  residues = ‖b − A x‖² per column (differentiable
ops on x); s has the gradient U diag(s̄) Vᴴ (the SVD vectors are computed in
the backward pass only if the loss uses s on the QR path).
pinv:   A⁺ = pinv_apply(A, I) from the thin SVD;  pinvh: from eigh of the
Hermitian matrix read from one triangle.
"""

from __future__ import annotations

import numpy as np

from .. import ops
from ..backend import LinAlgError, kernels_for, namespace_of
from ..registry import Domain, Rule
from ..tape import Primitive, Tracer
from ..testing import matrices as M
from . import _common as C
from .svd import _svd

__all__ = ["lstsq", "pinv", "pinvh", "RULES"]

_NoValue = object()


def _mh(x, xp):
    t = xp.swapaxes(x, -1, -2)
    return xp.conj(t) if t.dtype.kind == "c" else t


class PinvFactors:
    """A⁺ of a stack of matrices, from the forward pass's factorization (plain data).

    kind 'qr':  M = A (tall, m ≥ n) or Aᴴ (wide, ``wide``) = Q R with R
                nonsingular; M⁺ = R⁻¹ Qᴴ, so A⁺ = M⁺ (tall) or M⁺ᴴ (wide).
                F holds Q (Householder or formed); F None: Q was not kept
                (stacks), Qᴴ = R⁻ᴴ Mᴴ is applied through M (semi-normal).
    kind 'svd': A = U diag(s) Vh (thin); sinv = 1/s on the kept singular
                values, 0 on the others (ranks may differ across a stack).
    full_col: rank = n everywhere (A⁺A = I); full_row: rank = m (A A⁺ = I).
    Never differentiated: the derivative of A⁺ is expressed through A.
    """

    __slots__ = ("kind", "wide", "F", "R", "M", "U", "sinv", "Vh", "full_col", "full_row", "K",
                 "s")

    def __init__(self, kind, K, *, wide=False, F=None, R=None, M=None, U=None, sinv=None,
                 Vh=None, full_col=False, full_row=False, s=None):
        self.kind, self.K, self.wide, self.M = kind, K, wide, M
        self.F, self.R, self.U, self.sinv, self.Vh = F, R, U, sinv, Vh
        self.full_col, self.full_row = full_col, full_row
        self.s = s

    def singular_values(self):
        """The singular values of A (kind 'qr': of R), descending; computed once."""
        if self.s is None:
            self.s = _r_svdvals(self.K, self.R, "lstsq")
        return self.s

    def apply(self, y, adjoint):
        """A⁺ y, or A⁺ᴴ y when ``adjoint``; y (..., m, k) (resp. (..., n, k)), stacks broadcast."""
        K = self.K
        xp = K.xp
        if y.ndim == 1:                 # one right-hand side of one matrix
            return self.apply(y[:, None], adjoint)[:, 0]
        if self.kind == "svd":
            if adjoint:     # A⁺ᴴ = U S⁺ Vᴴ
                return xp.matmul(self.U, self.sinv[..., :, None] * xp.matmul(self.Vh, y))
            return xp.matmul(_mh(self.Vh, xp), self.sinv[..., :, None] *
                             xp.matmul(_mh(self.U, xp), y))
        F = self.F
        if adjoint == self.wide:        # M⁺ y = R⁻¹ (Qᴴ y)
            if F is None:               # Q not kept: Qᴴ y = R⁻ᴴ Mᴴ y (semi-normal equations)
                t = self._tri(xp.matmul(_mh(self.M, xp), y), 2)
            else:
                t = K.lstsq_qr_apply(F, y, True)
            return self._tri(t, 0)
        # M⁺ᴴ y = Q (R⁻ᴴ y)
        t = self._tri(y, 2)
        if F is None:                   # Q t = M R⁻¹ t
            return xp.matmul(self.M, self._tri(t, 0))
        return K.lstsq_qr_apply(F, t, False)

    def gram_pair(self, v):
        """(M⁺ᴴ v, M⁺M⁺ᴴ v) = (Q R⁻ᴴ v, R⁻¹ R⁻ᴴ v) for kind 'qr', sharing R⁻ᴴ v (QᴴQ = I):
        B⁺ᴴ x̄ and B⁺B⁺ᴴ x̄ of the VJP with one triangular solve and one Q fewer."""
        if v.ndim == 1:
            w, u = self.gram_pair(v[:, None])
            return w[:, 0], u[:, 0]
        t = self._tri(v, 2)
        u = self._tri(t, 0)
        if self.F is None:                      # Q t = M R⁻¹ t = M u
            return self.K.xp.matmul(self.M, u), u
        return self.K.lstsq_qr_apply(self.F, t, False), u

    def _tri(self, y, trans):
        K = self.K
        return C.broadcast_solve(self.R, y, lambda R_, y_: K.solve_triangular(
            R_, y_, lower=False, trans=trans, op="lstsq"))


def pinv_apply_forward(A, y, *, P, adjoint=False, value=None):
    """A⁺ y (A⁺ᴴ y); ``value``: the result, already computed by the caller's forward pass."""
    return P.apply(y, adjoint) if value is None else value


def _pieces(A, P, adjoint, o):
    """B⁺·, B⁺ᴴ·, B·, and B's full column / row rank, for B = A (or Aᴴ when adjoint);
    with ``o`` plain (first order), straight from the factors."""
    apply = P.apply if o.plain else (lambda v, adj: _pinv_apply(A, v, P=P, adjoint=adj))

    def Bp(v):
        return apply(v, adjoint)

    def BpH(v):
        return apply(v, not adjoint)

    def Bm(v):
        return o.matmul(o.mH(A) if adjoint else A, v)

    if adjoint:
        return Bp, BpH, Bm, P.full_row, P.full_col
    return Bp, BpH, Bm, P.full_col, P.full_row


def pinv_apply_vjp(x_bar, needs, x, res, A, y, *, P, adjoint=False, value=None):
    """w = B⁺ᴴ x̄, ȳ = w, B̄ = −w xᴴ + r (B⁺w)ᴴ + t (x̄ − B⁺B x̄)ᴴ."""
    return _pinv_apply_cotangents(x_bar, needs, x, A, y, P, adjoint)


def _pinv_apply_cotangents(x_bar, needs, x, A, y, P, adjoint, r=None, g=None):
    """pinv_apply's rule; ``r``: the residual y − Bx when the caller has it (first order);
    ``g``: a cotangent of y that reaches B as −g xᴴ (lstsq's residues), added to w."""
    o = C.ops_for(x_bar, x, A, y)
    Bp, BpH, Bm, full_col, full_row = _pieces(A, P, adjoint, o)
    BpBpH = None
    if o.plain and needs[0] and not full_row and P.kind == "qr" and adjoint == P.wide:
        w, BpBpH = P.gram_pair(x_bar)          # B⁺ = M⁺: B⁺B⁺ᴴ x̄ = R⁻¹R⁻ᴴ x̄
    else:
        w = BpH(x_bar)
    if g is not None:
        if BpBpH is None and not full_row:
            BpBpH = Bp(w)                      # B⁺w of the unchanged w
        w = w + g
    y_bar = ops.fit(w, y) if needs[1] else None
    A_bar = None
    if needs[0]:
        a_shape = ops._shape(A)
        G = -_outer(o, w, x, a_shape)
        if not full_row:
            if r is None:
                r = y - Bm(x)
            G = G + _outer(o, r, Bp(w) if BpBpH is None else BpBpH, a_shape)
        if not full_col:
            t = BpH(x)
            e = x_bar - Bp(Bm(x_bar))
            G = G + _outer(o, t, e, a_shape)
            if not full_row:
                # rank deficient: the dropped part B_s = B − B B⁺ B (0 at exact rank
                # deficiency) moves the kept singular subspaces to first order in B_s;
                # its terms make this rule's own derivative, the Hessian, that of the
                # truncated pseudo-inverse (lstsq.md §8)
                if r is None:
                    r = y - Bm(x)
                u1 = BpH(Bp(w) if BpBpH is None else BpBpH)       # B⁺ᴴB⁺B⁺ᴴ x̄
                G = G + _outer(o, u1, _adjoint_matmul(o, A, adjoint, r), a_shape)
                G = G + _outer(o, Bm(e), Bp(t), a_shape)          # B_s x̄ (B⁺B⁺ᴴx)ᴴ
        A_bar = ops.fit(o.mH(G) if adjoint else G, A)
    return A_bar, y_bar


def _adjoint_matmul(o, A, adjoint, v):
    """Bᴴ v for B = A (or Aᴴ when ``adjoint``)."""
    return o.matmul(A if adjoint else o.mH(A), v)


def _outer(o, u, v, a_shape=None):
    """u vᴴ: of (..., m, k) and (..., n, k) blocks, or of vectors (one right-hand side);
    for one matrix (``a_shape`` 2-D) and stacks u, v, summed over the stack in one
    product (C.fold_stack)."""
    if C.folds(a_shape, u) and C.folds(a_shape, v):
        return o.matmul(C.fold_stack(u), o.mH(C.fold_stack(v)))
    if len(ops._shape(u)) > 1:
        return o.matmul(u, o.mH(v))
    return (np.multiply.outer if o.plain else ops.outer)(u, o.conj(v))


def pinv_apply_jvp(tangents, x, res, A, y, *, P, adjoint=False, value=None):
    """ẋ = q + B⁺(ẏ − Ḃ x + B⁺ᴴ Ḃᴴ r − B q),  q = Ḃᴴ B⁺ᴴ x."""
    A_dot, y_dot = tangents
    Bp, BpH, Bm, full_col, full_row = _pieces(A, P, adjoint,
                                              C.ops_for(A_dot, y_dot, x, A, y))
    rhs, q = y_dot, None
    if A_dot is not None:
        B_dot = ops.mH(A_dot) if adjoint else A_dot
        BdH = ops.mH(B_dot)
        term = -ops.matmul(B_dot, x)
        if not full_row:
            term = term + BpH(ops.matmul(BdH, y - Bm(x)))
        if not full_col:
            q = ops.matmul(BdH, BpH(x))
            term = term - Bm(q)
        rhs = term if rhs is None else rhs + term
    out = Bp(rhs)
    if q is not None:
        out = out + q
    if A_dot is not None and not full_col and not full_row:
        # rank deficient: B⁺B⁺ᴴB⁺ Ḃ Bᴴr + (I − B⁺B) Bᴴ Ḃ B⁺B⁺ᴴx, the first-order terms of
        # the dropped part B_s (see _pinv_apply_cotangents)
        o = C.ops_for(A_dot, y_dot, x, A, y)
        r = y - Bm(x)
        out = out + Bp(BpH(Bp(ops.matmul(B_dot, _adjoint_matmul(o, A, adjoint, r)))))
        g = _adjoint_matmul(o, A, adjoint, ops.matmul(B_dot, Bp(BpH(x))))
        out = out + g - Bp(Bm(g))
    shape = ops._shape(x)
    return ops.broadcast_to(out, shape) if ops._shape(out) != shape else out


_pinv_apply = Primitive("pinv_apply", pinv_apply_forward, pinv_apply_vjp, pinv_apply_jvp)


# -- the solution and its residues together (lstsq at rank n, m > n) -------------------------
# ρ_j = ‖b_j − A x_j‖² with x = A⁺b.  At rank n, Aᴴr = 0 (r = b − Ax is orthogonal to A's
# range), so dρ_j = 2 Re r_jᴴ(db_j − dA x_j): the residues' cotangent reaches A and b through
# r and x alone, never through x's own derivative.  As one primitive with x, the solution's
# rule runs once and the residues add one outer product; composed from matmul, subtract and
# sum, the chain rule went through x and Aᴴ with terms that cancel to rounding.

def _rows_axis(y):
    return -1 if len(ops._shape(y)) == 1 else -2


def lstsq_solve_forward(A, y, *, P, value=None):
    """((x, ρ), r): x = A⁺y, r = y − Ax, ρ = Σ|r|² per column; y (m,) for one matrix
    (ρ then has shape (1,), as NumPy's residues) or (..., m, k) (ρ (..., k))."""
    x = P.apply(y, False) if value is None else value
    r = y - P.K.xp.matmul(A, x)
    rho = ops._sumsq(r, (_rows_axis(y),))
    if y.ndim == 1:
        rho = rho.reshape(1)
    return (x, rho), r


def _residual(o, r, x, A, y):
    """r at first order (the forward pass's); y − Ax, differentiable, at higher order."""
    return r if o.plain else y - ops.matmul(A, x)


def _rho_weights(o, rho_bar, y):
    """2ρ̄ shaped to scale r's columns."""
    w = 2 * rho_bar
    return w if len(ops._shape(y)) == 1 else o.expand_dims(w, -2)


def lstsq_solve_vjp(cts, needs, out, r, A, y, *, P, value=None):
    """x̄ by pinv_apply's rule; ρ̄ adds g = 2ρ̄r to ȳ and −g xᴴ to Ā (Aᴴr = 0)."""
    x_bar, rho_bar = cts
    x = out[0]
    o = C.ops_for(rho_bar, x_bar, x, A, y)
    if rho_bar is not None:
        r = _residual(o, r, x, A, y)
        g = _rho_weights(o, rho_bar, y) * r
    if x_bar is not None:           # one pass: w = A⁺ᴴx̄ + 2ρ̄r, Ā = −w xᴴ + r (A⁺A⁺ᴴx̄)ᴴ
        return _pinv_apply_cotangents(x_bar, needs, x, A, y, P, False, r=r if o.plain else
                                      None, g=None if rho_bar is None else g)
    if rho_bar is None:
        return None, None
    return (ops.fit(o.negative(_outer(o, g, x, ops._shape(A))), A) if needs[0] else None,
            ops.fit(g, y) if needs[1] else None)


def lstsq_solve_jvp(tangents, out, r, A, y, *, P, value=None):
    """ẋ by pinv_apply's rule; ρ̇ = 2 Re Σ conj(r)(ẏ − Ȧx) over the rows."""
    A_dot, y_dot = tangents
    x = out[0]
    x_dot = pinv_apply_jvp(tangents, x, None, A, y, P=P)
    o = C.ops_for(A_dot, y_dot, x, A, y)
    r = _residual(o, r, x, A, y)
    dr = y_dot
    if A_dot is not None:
        Ax = ops.matmul(A_dot, x)
        dr = ops.negative(Ax) if dr is None else dr - Ax
    prod = ops.conj(r) * dr
    rho_dot = 2 * ops.sum(ops.real(prod) if ops._is_complex(prod) else prod, axis=_rows_axis(y))
    if len(ops._shape(y)) == 1:
        rho_dot = ops.reshape(rho_dot, (1,))
    return x_dot, rho_dot


_lstsq_solve = Primitive("lstsq_solve", lstsq_solve_forward, lstsq_solve_vjp, lstsq_solve_jvp,
                         staged=True, multiple_results=True)


def _solve_with_residues(A, B, P, x0, vector, single):
    """(x, residues) through _lstsq_solve; a vector b with a stack of A goes through as
    (m, 1) and comes back as x (..., n) and residues (...) (SciPy's shapes)."""
    if vector and not single:
        x, rho = _lstsq_solve(A, ops.reshape(B, ops._shape(B) + (1,)), P=P, value=x0)
        return (ops.reshape(x, ops._shape(x)[:-1]), ops.reshape(rho, ops._shape(rho)[:-1]))
    return _lstsq_solve(A, B, P=P, value=x0)


# -- singular values kept from the forward pass (QR path) ------------------------------------

def svals_forward(A, *, s):
    return s


def svals_vjp(s_bar, needs, out, res, A, *, s):
    """Ā = U diag(s̄) Vᴴ; the singular vectors come from the svd rule (differentiable in A)."""
    U, _, Vh = _svd(A, full_matrices=False)
    return (ops.fit(ops.matmul(U * ops.expand_dims(s_bar, -2), Vh), A),)


def svals_jvp(tangents, out, res, A, *, s):
    """ṡ = Re diag(Uᴴ Ȧ V)."""
    (A_dot,) = tangents
    U, _, Vh = _svd(A, full_matrices=False)
    d = ops.sum(ops.conj(U) * ops.matmul(A_dot, ops.mH(Vh)), axis=-2)
    return ops.real(d) if ops._is_complex(d) else d


_svals = Primitive("lstsq_singular_values", svals_forward, svals_vjp, svals_jvp)


# -- factorizations ------------------------------------------------------------------------

def _real_dtype(dtype):
    return np.finfo(dtype).dtype


def _svd_factors(K, U, s, Vh, thr, m, n):
    xp = K.xp
    keep = s > thr
    sinv = xp.where(keep, 1 / xp.where(keep, s, 1), 0).astype(s.dtype)
    rank = xp.count_nonzero(keep, axis=-1)
    P = PinvFactors("svd", K, U=U, sinv=sinv, Vh=Vh, full_col=bool(xp.all(rank == n)),
                    full_row=bool(xp.all(rank == m)))
    return P, rank


def _r_svdvals(K, R, op):
    """Singular values of the triangular factor(s) R: eigvalsh(Rᴴ R) for a stack of small
    well-conditioned ones (checked), the SVD otherwise."""
    n = R.shape[-1]
    s = K.lstsq_svdvals_small(R) if R.ndim > 2 and n <= 64 else None
    if s is None:
        s = K.svd(R, full_matrices=False, compute_uv=False, op=op)
    return s


def _lstsq_factor(A, b, rcond, op, certify=False):
    """(P, rank, x) by QR when every matrix has rank min(m, n); (None,)*3 otherwise.

    b is (..., m, k).  A stack of tall matrices with b on the same stack: one
    stacked QR of [A b] in mode 'r' (R and Qᴴb, Q never formed) and x = R⁻¹Qᴴb;
    otherwise QR with Q kept (Householder for one matrix) and x = None (the
    primitive applies A⁺).  The rank is decided by R's singular values, kept in P;
    with ``certify`` (under linalgad.jit), first by the bound s_max/s_min <= ‖R‖_F‖R⁻¹‖_F
    (a tenth of their cost): when it shows every matrix far from rank deficient, the
    singular values are left to a step of their own, which a replay skips when the
    function does not use them.
    """
    K = kernels_for(A)
    xp = K.xp
    m, n = A.shape[-2:]
    wide = m < n
    batch = A.shape[:-2]
    Mx = _mh(A, xp) if wide else A
    x = F = None
    if batch and not wide and b.shape[:-2] == batch:
        R, c = K.lstsq_qr_r(A, b)
    else:
        F, R = K.lstsq_qr(Mx)
    k = min(m, n)
    s = None
    if certify and _far_from_deficient(K, R, rcond):
        # s_min >= 1/‖R⁻¹‖_F > rcond ‖R‖_F >= rcond s_max: full rank, as s would say
        rank = xp.full(batch, k, dtype=np.intp) if batch else k
    else:
        s = _r_svdvals(K, R, op)
        rank = xp.count_nonzero(s > rcond * s[..., :1], axis=-1)
        if not bool(xp.all(rank == k)):
            return None, None, None
    P = PinvFactors("qr", K, wide=wide, F=F, R=R, M=Mx, full_col=not wide, full_row=m <= n,
                    s=s)
    if F is None:
        x = P._tri(c, 0)
    return P, rank, x


def _far_from_deficient(K, R, rcond):
    """‖R‖_F ‖R⁻¹‖_F · rcond < 1 for every matrix (one matrix: a Python comparison)."""
    bound = K.triangular_cond_bound(R)
    return float(bound) * rcond < 1 if R.ndim == 2 else bool(K.xp.all(bound * rcond < 1))


def _qr_taken(factored):
    """What lstsq's Python reads from _lstsq_factor's result: whether QR sufficed."""
    return factored[0] is not None


def _rank_decided(single, with_rank=True):
    """What the Python reads from (P, rank): the full-rank flags, and one matrix's rank
    (returned as an int) — a stack's rank array is returned as a value (expose)."""
    if single and with_rank:
        return lambda r: (r[0].full_col, r[0].full_row, int(r[1]))
    return lambda r: (r[0].full_col, r[0].full_row)


def _rank_out(rank, single, args):
    """The rank as NumPy/SciPy return it: an int for one matrix (decided, so fixed for a
    recording), an integer array for a stack (a value of the recording under jit)."""
    if single:
        return int(rank)
    for a in args:
        if isinstance(a, Tracer):
            return C.expose(rank, a)
    return rank


def _rcond(rcond, dtype, default):
    eps = float(np.finfo(dtype).eps)
    if rcond is None:
        return default
    rcond = float(rcond)
    return eps if rcond < 0 else rcond


# -- lstsq ---------------------------------------------------------------------------------

def _check_rhs(op, a_shape, b_shape):
    m = a_shape[-2]
    vector = len(b_shape) == 1
    if len(b_shape) == 0 or (vector and b_shape[0] != m) or (not vector and b_shape[-2] != m):
        raise LinAlgError(f"{op}: incompatible dimensions: a has shape {a_shape} and b has "
                          f"shape {b_shape}; b must be ({m},) or (..., {m}, k) (the number of "
                          "rows of a)")
    if not vector:
        C.stacks(op, error=LinAlgError, a=a_shape, b=b_shape)
    return vector


def lstsq(a, b, rcond=None, *, cond=None, overwrite_a=False, overwrite_b=False,
          check_finite=True, lapack_driver=None):
    """Least-squares solution of ``a @ x ≈ b``, differentiable (numpy.linalg.lstsq, scipy.linalg.lstsq).

    ``a`` is (..., m, n); ``b`` is (m,) or (..., m, k) (stacks broadcast, as
    SciPy 1.17 batches).  Returns ``(x, residues, rank, s)`` as NumPy/SciPy:
    x (..., n[, k]) is the minimum-norm least-squares solution A⁺ b;
    residues are the squared 2-norms of the columns of b − a x when every
    matrix has rank n and m > n (shape (k,), (1,) for a vector b and a
    single a as NumPy, (...,) for a stack with a vector b as SciPy), else an
    empty array; rank is an int (an integer array for a stack); s are the
    singular values of a, descending.  Singular values ≤ rcond·s[0] count as
    zero: ``rcond`` (NumPy, default eps·max(m, n)) or SciPy's ``cond``
    (default eps when given as None through SciPy, here: pass it
    explicitly); a negative value means eps.  ``lapack_driver`` is checked
    ('gelsd', 'gelss', 'gelsy'); with 'gelsy' s is None and residues empty,
    as SciPy.  ``overwrite_*`` are accepted and ignored.  Incompatible shapes
    raise LinAlgError (a ValueError) naming lstsq.  Empty matrices (m or n
    zero) give NumPy's results: x = 0, rank 0, empty s, residues ‖b‖² when
    m > n.

    Full rank uses QR (of a when m ≥ n, of aᴴ when m < n) plus the singular
    values of the triangular factor; otherwise the thin SVD.  The backward
    pass reuses that factorization: triangular solves and products, O(mnk).

    Valid when: the numerical rank (count of s > rcond·s[0]) is constant
    near a — the gradient is that of the constant-rank map a ↦ a⁺ b (Golub &
    Pereyra); at a rank change lstsq is not differentiable (not even
    continuous).  The rank has no gradient; the gradient of s is
    U diag(s̄) Vᴴ (a zero singular value has none: |·| at 0).
    """
    op = "lstsq"
    if rcond is not None and cond is not None:
        raise TypeError("lstsq: give rcond (NumPy) or cond (SciPy), not both")
    if lapack_driver not in (None, "gelsd", "gelss", "gelsy"):
        raise ValueError(f'lstsq: LAPACK driver "{lapack_driver}" is not found')
    del overwrite_a, overwrite_b
    av = C.matrix(op, a)
    bv = C.peek(b)
    vector = _check_rhs(op, av.shape, bv.shape)
    dtype = C.result_dtype(op, av, bv)
    C.checked(op, ("a", "b"), (a, b), check_finite)
    A, B = C.promote(a, dtype), C.promote(b, dtype)
    Av = C.peek(A)
    m, n = Av.shape[-2:]
    eps = float(np.finfo(dtype).eps)
    rc = _rcond(cond if cond is not None else rcond, dtype, eps * max(m, n))
    if m == 0 or n == 0:
        return _lstsq_empty(A, B, vector, lapack_driver)
    single = not Av.shape[:-2]
    # the factorization and the rank are values the rule computes on for itself: under
    # linalgad.jit they are recomputed on every replay, which re-checks the branch taken
    certify = C.recording(A, B)
    P, rank, x0 = C.compute(
        lambda Av_, Bv_: _lstsq_factor(Av_, Bv_[..., None] if vector else Bv_, rc, op,
                                       certify),
        (A, B), decide=_qr_taken, name="lstsq's rank (QR)")
    if P is not None:
        s = P.singular_values() if not certify else C.compute(
            lambda A_, P_: P_.singular_values(), (A, P), name="lstsq's singular values")
        s_out = _svals(A, s=s) if isinstance(A, Tracer) else s
    else:
        K = kernels_for(Av)
        if isinstance(A, Tracer):
            U, s_out, Vh = _svd(A, full_matrices=False)
        else:
            U, s_out, Vh = K.svd(Av, full_matrices=False, compute_uv=True, op=op)
        P, rank = C.compute(
            lambda U_, s_, Vh_: _svd_factors(K, U_, s_, Vh_, rc * s_[..., :1], m, n),
            (U, s_out, Vh), decide=_rank_decided(single), name="lstsq's rank (SVD)")
    if m > n and P.full_col and lapack_driver != "gelsy":    # residues: rank n, m > n
        x, residues = _solve_with_residues(A, B, P, x0, vector, single)
    else:
        if vector and single:         # b (m,): the primitive takes it as it is
            x = _pinv_apply(A, B, P=P, adjoint=False, value=x0)
        else:
            x = C.on_columns(lambda b_: _pinv_apply(A, b_, P=P, adjoint=False, value=x0), B)
        batch = np.broadcast_shapes(Av.shape[:-2], bv.shape[:-2]) if not vector else \
            Av.shape[:-2]
        residues = namespace_of(Av).empty(batch + (0,), dtype=_real_dtype(dtype))
    rank_out = _rank_out(rank, single, (A, B))
    if lapack_driver == "gelsy":
        s_out = None
    return x, residues, rank_out, s_out


def _lstsq_empty(A, B, vector, lapack_driver):
    """m = 0 or n = 0, as NumPy: x = 0 (n rows), rank 0, s empty; residues ‖b‖² per column
    when m > n (so b itself is the residual: differentiable in b), else empty."""
    Av, Bv = C.peek(A), C.peek(B)
    xp = namespace_of(Av)
    m, n = Av.shape[-2:]
    batch = Av.shape[:-2] if vector else np.broadcast_shapes(Av.shape[:-2], Bv.shape[:-2])
    tail = () if vector else (Bv.shape[-1],)
    x = xp.zeros(batch + (n,) + tail, dtype=Av.dtype)
    residues = _residues(B if m > n else None, vector, batch, Bv, Av.dtype, xp, lapack_driver)
    rank = 0 if not Av.shape[:-2] else xp.zeros(Av.shape[:-2], dtype=np.int64)
    s = None if lapack_driver == "gelsy" else xp.empty(Av.shape[:-2] + (0,),
                                                        dtype=_real_dtype(Av.dtype))
    return x, residues, rank, s


def _residues(r, vector, batch, bv, dtype, xp, lapack_driver):
    """‖r‖² per column in NumPy's/SciPy's shapes ((1,) for one matrix and a vector b,
    (...,) for a stack and a vector b, (..., k) for matrix b), differentiable in r;
    an empty (..., 0) array when there are none (r None, or 'gelsy')."""
    if r is None or lapack_driver == "gelsy":
        return xp.empty(batch + (0,), dtype=_real_dtype(dtype))
    r2 = ops.real(r * ops.conj(r)) if ops._is_complex(r) else r * r
    want = (1,) if vector and not batch else batch + (() if vector else (bv.shape[-1],))
    residues = ops.sum(r2, axis=-1 if vector else -2, keepdims=want == (1,) and
                       len(ops._shape(r2)) == 1)
    if ops._shape(residues) == ():
        residues = ops.reshape(residues, (1,))
    if ops._shape(residues) != want:            # b alone is the residual (n = 0): broadcast
        residues = ops.broadcast_to(residues, want)
    return residues


# -- pinv, pinvh -----------------------------------------------------------------------------

def _identity_apply(A, P, m, dtype, xp):
    """A⁺ = A⁺ I_m, or for a tall A (m > n) (A⁺ᴴ I_n)ᴴ: applied to I_m, the pseudo-inverse
    of a 100000 × 3 matrix built an identity of order 100000 (and its backward m × m
    products: a MemoryError); the adjoint applied to I_n has nothing larger than A."""
    n = ops._shape(A)[-1]
    if m > n:
        return ops.mH(_pinv_apply(A, xp.eye(n, dtype=dtype), P=P, adjoint=True))
    return _pinv_apply(A, xp.eye(m, dtype=dtype), P=P, adjoint=False)


def pinv(a, rcond=None, hermitian=False, *, rtol=_NoValue, atol=None, return_rank=False,
         check_finite=True):
    """Moore–Penrose pseudo-inverse, differentiable (numpy.linalg.pinv, scipy.linalg.pinv).

    ``a`` is (..., m, n); returns (..., n, m) (and the rank with SciPy's
    ``return_rank=True``: an int, or an integer array for a stack).
    Singular values s ≤ cutoff are dropped, as NumPy/SciPy decide it:
    NumPy ``rcond`` (default 1e-15) or ``rtol`` give cutoff = rtol·max(s)
    (``rtol=None``: max(m, n)·eps); SciPy's ``atol`` gives cutoff =
    atol + rtol·max(s) with rtol defaulting to max(m, n)·eps.
    ``hermitian=True`` (NumPy) reads the lower triangle as a Hermitian matrix
    (eigh), like NumPy.

    Valid when: the rank (count of s > cutoff) is constant near a.  The
    gradient is then the full constant-rank derivative (Golub & Pereyra
    1973) dA⁺ = −A⁺dA A⁺ + A⁺A⁺ᴴ dAᴴ (I − AA⁺) + (I − A⁺A) dAᴴ A⁺ᴴ A⁺, not
    only its first term; at a rank change a ↦ a⁺ is discontinuous and has no
    derivative.  At a rank-deficient a the rule also carries the first-order effect
    of the dropped part a − a a⁺ a, so second derivatives are those of the truncated
    map computed where the dropped singular values are 0 (to rounding); where they are
    nonzero but below the cutoff the Hessian is off by O(s_drop / s_kept), and third
    derivatives at rank deficiency are not exact (lstsq.md §8).
    """
    op = "pinv"
    if rcond is not None and rtol is not _NoValue:
        raise ValueError("pinv: `rtol` and `rcond` can't be both set.")
    A = C.prepare(op, a, check_finite, square=bool(hermitian))
    Av = C.peek(A)
    m, n = Av.shape[-2:]
    eps = float(np.finfo(Av.dtype).eps)
    if atol is not None:                   # SciPy's semantics
        atol_, rtol_ = float(atol), (max(m, n) * eps if rtol in (None, _NoValue) else float(rtol))
    else:
        atol_ = 0.0
        if rcond is not None:
            rtol_ = float(rcond)
        elif rtol is _NoValue:
            rtol_ = 1e-15
        elif rtol is None:
            rtol_ = max(m, n) * eps
        else:
            rtol_ = float(rtol)
    if atol_ < 0 or rtol_ < 0:
        raise ValueError("pinv: atol and rtol values must be positive.")
    if hermitian:
        return _pinv_hermitian(op, A, True, atol_, rtol_, return_rank)
    K = kernels_for(Av)
    single = not Av.shape[:-2]

    def factor(Av_):
        U, s, Vh = K.svd(Av_, full_matrices=False, compute_uv=True, op=op)
        smax = s.max(axis=-1, keepdims=True, initial=0.0) if K.xp is np else \
            (s[..., :1] if s.shape[-1] else s)
        return _svd_factors(K, U, s, Vh, atol_ + rtol_ * smax, m, n)

    P, rank = C.compute(factor, (A,), decide=_rank_decided(single, return_rank),
                        name="pinv's rank")
    Y = _identity_apply(A, P, m, Av.dtype, K.xp)
    return (Y, _rank_out(rank, single, (A,))) if return_rank else Y


def _pinv_hermitian(op, A, lower, atol_, rtol_, return_rank):
    H = C.from_triangle(A, lower=lower, hermitian=True)
    Av = C.peek(A)
    K = kernels_for(Av)
    xp = K.xp
    n = Av.shape[-1]
    single = not Av.shape[:-2]

    def factor(Av_):
        w, V = K.eigh(Av_, lower=lower, op=op)
        aw = xp.abs(w)
        smax = aw.max(axis=-1, keepdims=True) if n else aw
        keep = aw > atol_ + rtol_ * smax
        sinv = xp.where(keep, 1 / xp.where(keep, w, 1), 0).astype(w.dtype)
        rank = xp.count_nonzero(keep, axis=-1)
        full = bool(xp.all(rank == n))
        P = PinvFactors("svd", K, U=V, sinv=sinv, Vh=_mh(V, xp), full_col=full,
                        full_row=full)
        return P, rank

    P, rank = C.compute(factor, (A,), decide=_rank_decided(single, return_rank),
                        name=f"{op}'s rank")
    Y = _identity_apply(H, P, n, Av.dtype, xp)
    return (Y, _rank_out(rank, single, (A,))) if return_rank else Y


def pinvh(a, atol=None, rtol=None, lower=True, return_rank=False, check_finite=True):
    """Pseudo-inverse of a Hermitian (real symmetric) matrix, differentiable (scipy.linalg.pinvh).

    Reads only the lower (``lower=True``) or upper triangle of ``a``
    (..., n, n), like eigh; only that triangle gets gradient (the diagonal's
    imaginary part is ignored).  Eigenvalues with |λ| ≤ atol + rtol·max|λ|
    are dropped (atol default 0, rtol default n·eps), as SciPy.  Returns the
    (..., n, n) pseudo-inverse, and the rank with ``return_rank=True``.
    Non-square input raises LinAlgError.

    Valid when: the rank is constant near a; then the gradient is the
    constant-rank derivative of the pseudo-inverse (Golub & Pereyra 1973)
    restricted to Hermitian perturbations of the read triangle.
    """
    op = "pinvh"
    A = C.prepare(op, a, check_finite, square=True)
    n = C.peek(A).shape[-1]
    eps = float(np.finfo(C.peek(A).dtype).eps)
    atol_ = 0.0 if atol is None else float(atol)
    rtol_ = n * eps if rtol is None else float(rtol)
    if atol_ < 0 or rtol_ < 0:
        raise ValueError("pinvh: atol and rtol values must be positive.")
    return _pinv_hermitian(op, A, bool(lower), atol_, rtol_, return_rank)


# -- registry --------------------------------------------------------------------------------

def _lstsq_fun(a, b, **kw):
    x, residues, rank, s = lstsq(a, b, **kw)
    return x, residues, s


_lstsq_fun.__doc__ = lstsq.__doc__


def _lstsq_deficient_fun(a, b, rcond=1e-4, rank=2):
    """lstsq at constant rank; the loss uses the nonzero singular values only."""
    x, residues, _, s = lstsq(a, b, rcond)
    return x, residues, ops.getitem(s, (Ellipsis, slice(0, rank)))


_lstsq_deficient_fun.__doc__ = lstsq.__doc__


def _np_lstsq(a, b, rcond=None):
    """numpy.linalg.lstsq (2-D) or scipy.linalg.lstsq (stacks, NumPy's default cutoff)."""
    import scipy.linalg
    m, n = a.shape[-2:]
    if rcond is None:
        rcond = np.finfo(np.result_type(a, b)).eps * max(m, n)
    if a.ndim == 2 and b.ndim <= 2:
        return np.linalg.lstsq(a, b, rcond=rcond)
    x, res, rank, s = scipy.linalg.lstsq(a, b, cond=rcond)
    # SciPy's empty residues carry x's (complex) dtype; NumPy's, which we follow, are real
    return x, np.real(res).astype(s.dtype), rank, s


def lstsq_reference(a, b, **kw):
    x, res, rank, s = _np_lstsq(a, b, **kw)
    return x, res, s


def lstsq_deficient_reference(a, b, rcond=1e-4, rank=2):
    x, res, _, s = _np_lstsq(a, b, rcond)
    return x, res, s[..., :rank]


def _ls_domain(m, n, vector=False, k=2):
    def make(rng, _n, batch, dtype):
        if m >= n:
            A = M.random_tall(rng, m, n, batch, dtype, cond=3.0)
        else:
            A = M.random_wide(rng, m, n, batch, dtype, cond=3.0)
        b = M.random_vector(rng, m, (), dtype) if vector else M.random_rhs(rng, m, k, batch, dtype)
        return (A, b), {}
    return make


def _deficient(m, n, rank):
    """m×n of the given rank with nonzero singular values spread over [1, 3], gaps ≥ 2/rank:
    the second derivatives of s (and so the registry's order-2 checks) carry 1/(s_i − s_j)."""
    def make(rng, _n, batch, dtype):
        U = M.random_orthogonal(rng, m, batch, dtype)[..., :rank]
        V = M.random_orthogonal(rng, n, batch, dtype)[..., :rank]
        s = np.linspace(3.0, 1.0, rank).astype(np.finfo(dtype).dtype)
        A = (U * s) @ np.conj(np.swapaxes(V, -1, -2))
        return np.ascontiguousarray(A.astype(dtype))
    return make


def _ls_deficient_domain(m, n, rank, vector=False):
    def make(rng, _n, batch, dtype):
        A = _deficient(m, n, rank)(rng, _n, batch, dtype)
        b = M.random_vector(rng, m, (), dtype) if vector else M.random_rhs(rng, m, 2, batch, dtype)
        return (A, b), {"rcond": 1e-4}     # the rounding zeros (~eps·cond) count as zero in
    return make                              # float32 and in the float64 finite differences


def _pinv_domain(m, n, rank=None, **kw):
    def make(rng, _n, batch, dtype):
        if rank is not None:
            A = _deficient(m, n, rank)(rng, _n, batch, dtype)
            kw2 = dict(kw, rtol=1e-4)          # rounding zeros (~eps·cond) dropped in float32 too
            return (A,), kw2
        if m >= n:
            return (M.random_tall(rng, m, n, batch, dtype, cond=3.0),), dict(kw)
        return (M.random_wide(rng, m, n, batch, dtype, cond=3.0),), dict(kw)
    return make


def pinv_reference(a, **kw):
    if "rtol" in kw or "atol" in kw:
        import scipy.linalg
        if a.ndim == 2:
            return scipy.linalg.pinv(a, **kw)
        return np.linalg.pinv(a, rtol=kw.get("rtol"))
    return np.linalg.pinv(a)


def _hermitian(rng, n, batch, dtype, rank=None):
    """Hermitian with eigenvalues ±(1..2) (alternating signs) and n − rank zeros."""
    rank = n if rank is None else rank
    U = M.random_orthogonal(rng, n, batch, dtype).astype(np.result_type(dtype, np.float64))
    U = U[..., :, :rank]
    sign = np.where(np.arange(rank) % 2 == 0, 1.0, -1.0)
    H = (U * (sign * np.linspace(1.0, 2.0, rank))) @ np.conj(np.swapaxes(U, -1, -2))
    return np.ascontiguousarray(H.astype(dtype))


def _pinvh_domain(rank=None, perturb=True, **kw):
    def make(rng, n, batch, dtype):
        H = _hermitian(rng, n, batch, dtype, rank)
        if perturb:    # junk in the triangle that is not read: it must get no gradient
            lower = kw.get("lower", True)
            junk = M.random_general(rng, n, batch, dtype)
            H = H + (np.triu(junk, 1) if lower else np.tril(junk, -1))
        kw2 = dict(kw)
        if rank is not None:
            kw2["rtol"] = 1e-4
        return (np.ascontiguousarray(H.astype(dtype)),), kw2
    return make


def pinvh_reference(a, **kw):
    import scipy.linalg
    return C.per_matrix(lambda x: scipy.linalg.pinvh(x, **kw), a, cores=(2,))


_LS_DOMAINS = (
    Domain("tall", _ls_domain(5, 3), "5×3 full column rank, b 5×2 (residues returned)"),
    Domain("tall-vector", _ls_domain(4, 3, vector=True), "4×3, b a vector (broadcast)"),
    Domain("square", _ls_domain(3, 3), "3×3 nonsingular"),
    Domain("wide", _ls_domain(3, 5), "3×5 full row rank: minimum-norm solution"),
    Domain("wide-vector", _ls_domain(2, 4, vector=True), "2×4, b a vector"),
)

RULES = (
    Rule(
        name="lstsq",
        fun=_lstsq_fun,
        primitive=_pinv_apply,
        domains=_LS_DOMAINS,
        derivation="docs/derivations/lstsq.md",
        reference=lstsq_reference,
        references=("Golub & Pereyra 1973", "Giles 2008"),
    ),
    Rule(
        name="lstsq-rank-deficient",
        fun=_lstsq_deficient_fun,
        primitive=_pinv_apply,
        domains=(
            Domain("tall-rank2", _ls_deficient_domain(4, 3, 2), "4×3 of rank 2, b 4×2"),
            Domain("wide-rank2", _ls_deficient_domain(3, 5, 2, vector=True),
                   "3×5 of rank 2, b a vector"),
        ),
        derivation="docs/derivations/lstsq.md",
        reference=lstsq_deficient_reference,
        references=("Golub & Pereyra 1973",),
    ),
    Rule(
        name="pinv",
        fun=pinv,
        primitive=_pinv_apply,
        domains=(
            Domain("square", _pinv_domain(3, 3), "3×3 nonsingular"),
            Domain("tall", _pinv_domain(5, 3), "5×3 full column rank"),
            Domain("wide", _pinv_domain(3, 5), "3×5 full row rank"),
            Domain("rank-deficient", _pinv_domain(4, 3, rank=2), "4×3 of rank 2 (rtol=1e-4)"),
            Domain("rank-deficient-wide", _pinv_domain(3, 4, rank=2),
                   "3×4 of rank 2 (rtol=1e-4)"),
        ),
        derivation="docs/derivations/lstsq.md",
        reference=pinv_reference,
        references=("Golub & Pereyra 1973",),
    ),
    Rule(
        name="pinvh",
        fun=pinvh,
        primitive=_pinv_apply,
        domains=(
            Domain("hermitian", _pinvh_domain(), "Hermitian, full rank, junk in the upper triangle"),
            Domain("hermitian-upper", _pinvh_domain(lower=False), "upper triangle read"),
            Domain("rank-deficient", _pinvh_domain(rank=2),
                   "Hermitian of rank 2 (eigenvalues ±1..2 and 0), rtol=1e-4"),
        ),
        derivation="docs/derivations/lstsq.md",
        reference=pinvh_reference,
        references=("Golub & Pereyra 1973",),
    ),
)
