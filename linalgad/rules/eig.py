"""eig, eigvals: A V = V diag(w) for general square A.   Derivation: docs/derivations/eig.md

Outputs are always complex (a dtype that depended on the values could not be
differentiated).  Eigenvectors have unit 2-norm, phase as LAPACK returns it.

    Z = V⁻¹ dA V,  dw = diag(Z),  C₀ = E ∘ Z,  E_ij = 1/(w_j − w_i) (i ≠ j)
    dV = V C₀ − V diag(Re diag(Vᴴ V C₀))            (keeps ‖v_i‖ = 1)
Reverse  K = Vᴴ V̄,  Y = K − VᴴV diag(Re diag K),  W = diag(w̄) + conj(E) ∘ Y,
         Ā = V⁻ᴴ W Vᴴ   (Re of it for real A)

Pairs with |w_i − w_j| ≤ eps^(2/3)·max|w| count as equal (E_ij = 0).  A loss that
depends on an eigenvector's phase raises ValueError; one that depends on the
basis inside a cluster of equal eigenvalues gets a GaugeWarning.
"""

from __future__ import annotations

from collections import namedtuple

import numpy as np

from .. import ops
from ..backend import (eig_conjugate_pairs, eig_real_adjoint_product, eig_real_middle,
                       kernels_for, namespace_of)
from ..registry import Domain, Rule
from ..tape import Primitive, Tracer
from ..testing import matrices as M
from . import _common as C
from . import _spectral as S
from .solve import _solve

__all__ = ["eig", "eigvals", "EigResult", "RULES"]

EigResult = namedtuple("EigResult", ["eigenvalues", "eigenvectors"])


def eig_forward(A):
    w, V = kernels_for(A).eig(A)
    return w, V


def eig_vjp(cts, needs, out, res, A):
    w_bar, V_bar = cts
    w, V = out
    if (w_bar is not None or V_bar is not None) and \
            not any(isinstance(x, Tracer) for x in (A, w, V, w_bar, V_bar)):
        # plain arrays at first order: the table's fused kernel where it has one (it
        # declines near-equal eigenvalues and a singular V, which the form below handles)
        fast = kernels_for(V).eig_cotangent(w, V, w_bar, V_bar, S.gap_tol(V.dtype),
                                            not ops._is_complex(A))
        if fast is not None:
            A_bar, kd, scale = fast
            if kd is not None:
                S.check_phase_diagonal("eig", kd, scale, "an eigenvector", w, w_bar)
            return (ops.fit(A_bar, A),)
    Wm = Y = None
    mask = S.degenerate_pairs(w)
    _check_diagonalizable(V, mask)
    # a real A at first order: the solve (and, for one matrix from order REAL_VECTORS_N,
    # the products) in real arithmetic (eig.md, section 5)
    p = _conjugate_pairs(A, w, V)
    Vr = _real_vectors(V, p) if p is not None and p.ndim == 1 and \
        p.shape[-1] >= REAL_VECTORS_N else None
    if V_bar is not None:
        # Y = K − VᴴV diag(d) with K = VᴴV̄ and d = Re diag(K), as one product:
        # Y = Vᴴ (V̄ − V diag(d)), diag(K) being column sums (eig.md, section 5)
        kd = ops.sum(ops.conj(V) * V_bar, axis=-2)
        d = ops.real(kd)
        Z = V_bar - V * ops.expand_dims(d, -2)
        Y = eig_real_adjoint_product(Vr, Z, p) if Vr is not None else ops.matmul(ops.mH(V), Z)
        # |Kᵢⱼ| ≤ |Yᵢⱼ| + |dⱼ| (unit columns): the scale of K, to a factor 2
        Yv, kv = C.value(Y), C.value(kd)
        xp = namespace_of(Yv)
        scale = xp.maximum(S._scale(Yv, xp), xp.abs(kv).max(axis=-1)) if Yv.size else 0.0
        S.check_phase_diagonal("eig", kd, scale, "an eigenvector", w, w_bar)
        Wm = ops.conj(S.inverse_gaps(w, mask)) * Y
    S.check_second_order("eig", w, (w_bar, V_bar))
    S.check_clusters("eig", mask, Y, w_bar, hermitian_part_free=False)
    if Wm is None and w_bar is None:
        return (None,)
    if p is not None and Wm is None:    # eigenvalues alone of a real A: a real solve
        return (ops.fit(_real_cotangent(V, w_bar, p), A),)
    if Vr is not None:
        return (ops.fit(_real_full_cotangent(Vr, w_bar, Wm, p), A),)
    Vh = ops.mH(V)
    # Ā = V⁻ᴴ (W Vᴴ), W = diag(w̄) + conj(E) ∘ Y: a solve with Vᴴ.  w̄'s first entry c is
    # split off first: V⁻ᴴ (c I) Vᴴ = c I holds V nowhere, so a derivative of this pass
    # sees V only through w̄ − c.  Where w̄ is uniform (a loss of tr A = Σ wᵢ) that part is
    # exactly zero and so is V's second-order cotangent; unsplit, it was two O(1) terms
    # cancelling to rounding, whose "phase part" the check below read as a phase-dependent
    # loss (eig.md, section 3)
    rhs = c = None
    if w_bar is not None:
        c = w_bar[..., :1]
        rhs = ops.expand_dims(w_bar - c, -1) * Vh
    if Wm is not None:
        rhs = ops.matmul(Wm, Vh) if rhs is None else ops.matmul(Wm, Vh) + rhs
    A_bar = _solve_with(Vh, rhs)
    if c is not None:
        Av = C.value(A_bar)
        A_bar = A_bar + ops.expand_dims(c, -1) * C.eye_like(Av.shape[-1], Av.dtype, Av)
    return (ops.fit(A_bar, A),)


# -- real input: the solves in real arithmetic (eig.md, section 5) --------------------------
#
# LAPACK's real geev returns a real matrix Vr whose columns are v (a real eigenvalue) or,
# for a pair w = a ± ib (Im w > 0 first), Re v and Im v; NumPy's complex V = Vr P with
# P = [[1, 1], [i, −i]] on each pair's block and 1 elsewhere.  So
#     Re(V⁻ᴴ W Vᴴ) = Vr⁻ᵀ Re(P⁻ᴴ W Pᴴ) Vrᵀ,     P⁻ᴴ = ½ P on a pair's block,
# and for the eigenvalues' cotangent alone (W = diag(w̄)) the middle factor's real part
# is ½ Re(w̄ⱼ + w̄ₚ) on the diagonal and ½ Im(w̄ⱼ − w̄ₚ) at (j, p(j)), p the pairing (j ↔
# its partner; a real eigenvalue is its own): O(n²) row gathers, no product, and a real
# solve (a quarter of the complex one's work: 38 against 101 µs at n = 64).  With an
# eigenvector cotangent the complex path stays: transforming the full W costs more than
# the real solve saves on stacks (measured at 1000×32×32).
# Forward mode: V⁻¹ Ȧ V = P⁻¹ (Vr⁻¹ Ȧ Vr) P for real Ȧ (_real_similarity).
# With an eigenvector cotangent, one matrix from order REAL_VECTORS_N: Y = Vᴴ Z as
# Pᴴ (Vrᵀ Z) and Ā = Vr⁻ᵀ Re(P⁻ᴴ W Pᴴ) Vrᵀ, real products and a real solve at the price of
# O(n²) gathers (backend.eig_real_adjoint_product, _real_full_cotangent).  Measured, the reverse pass:
# 7.5 against 15.4 ms at n = 256, 1.57 against 2.39 ms at 128, 552 against 630 µs at 72,
# 523 against 513 µs at 64 (below, the gathers cost what the products save); slower on
# stacks (1000×32×32: 392 against 387 ms, 10000×4×4: 78 against 71 ms, value and gradient).

REAL_VECTORS_N = 72

def _conjugate_pairs(A, w, V):
    """p, the partner of each eigenvalue (..., n) (p > j: the first of a pair, p < j: the
    second, p = j: real), for a real A whose plain (w, V) came from NumPy's eig (LAPACK's
    real geev: w_{j+1} = conj w_j exactly with Im w_j > 0, v_{j+1} = conj v_j by
    construction); None for complex A, other array types, any other layout, or a traced V
    (the complex forms then).  Vr is not invariant under the eigenvectors' phases, so a
    derivative of a pass that sees V move (by the rule's own phase convention) must
    differentiate the invariant complex form."""
    if ops._is_complex(A) or isinstance(V, Tracer):
        return None
    wv = C.value(w)
    if type(wv) is not np.ndarray or type(C.value(V)) is not np.ndarray or wv.shape[-1] == 0:
        return None
    return eig_conjugate_pairs(wv)


def _real_vectors(V, p):
    """LAPACK's real eigenvector matrix Vr from V = Vr P: Re v, and −Im v = Im of the
    first's vector on the second of a pair."""
    second = p < np.arange(p.shape[-1])
    return ops.where(second[..., None, :], -ops.imag(V), ops.real(V))


def _real_cotangent(V, w_bar, p):
    """Re(V⁻ᴴ diag(w̄) Vᴴ) for real A, in real arithmetic: Vr⁻ᵀ G with G = Re(P⁻ᴴ diag(w̄)
    Pᴴ) Vrᵀ, whose row j is ½ Re(w̄ⱼ + w̄ₚ) rⱼ + ½ Im(w̄ⱼ − w̄ₚ) rₚ (r the rows of Vrᵀ; the
    same formula on a pair's two rows and, p(j) = j, on a real eigenvalue's)."""
    Vrt = ops.mT(_real_vectors(V, p))
    wc = ops.expand_dims(w_bar, -1)
    wp = ops.permute_rows(wc, p)
    G = 0.5 * (ops.real(wc + wp) * Vrt + ops.imag(wc - wp) * ops.permute_rows(Vrt, p))
    return _solve_with(Vrt, G)


def _real_full_cotangent(Vr, w_bar, Wm, p):
    """Re(V⁻ᴴ W Vᴴ), W = diag(w̄) + Wm, for the plain V = Vr P of one real matrix (Vr:
    _real_vectors) in real arithmetic: Vr⁻ᵀ M Vrᵀ with M = Re(P⁻ᴴ W Pᴴ) (row and column gathers along the
    pairing), one real product and one real solve."""
    W = Wm
    if w_bar is not None:
        W = Wm.copy()
        idx = np.arange(W.shape[-1])
        W[idx, idx] += w_bar
    Vrt = Vr.T
    return _solve_with(Vrt, np.matmul(eig_real_middle(W, p), Vrt))


def _real_similarity(V, A_dot, p):
    """V⁻¹ Ȧ V for real A and Ȧ, as P⁻¹ (Vr⁻¹ Ȧ Vr) P: a real product and a real solve,
    then the pair blocks P⁻¹ = ½[[1, −i], [1, i]] on rows and P = [[1, 1], [i, −i]] on
    columns, O(n²) gathers along the pairing (forward mode's counterpart of
    _real_cotangent)."""
    Vr = _real_vectors(V, p)
    Y = _solve_with(Vr, ops.matmul(A_dot, Vr))
    idx = np.arange(p.shape[-1])
    first, second = p > idx, p < idx
    # rows: ½ (y_j − i y_p) on the first of a pair, ½ (y_p + i y_k) on the second
    a = np.where(first, 0.5, np.where(second, 0.5j, 1.0))[..., :, None]
    b = np.where(first, -0.5j, np.where(second, 0.5, 0.0))[..., :, None]
    X = a * Y + b * ops.permute_rows(Y, p)
    # columns: x_j + i x_p on the first, x_p − i x_k on the second
    e = np.where(second, -1j, 1.0 + 0j)[..., None, :]
    f = np.where(first, 1j, np.where(second, 1.0, 0.0))[..., None, :]
    Z = e * X + f * ops.mT(ops.permute_rows(ops.mT(X), p))
    return ops.astype(Z, C.value(V).dtype)


def _solve_with(M_, B):
    try:
        return _solve(M_, B, kind="gen")
    except C.LinAlgError:
        raise C.LinAlgError("eig: the eigenvectors are linearly dependent (V is singular): "
                            "the matrix is defective or nearly so, and its eigenvalues are "
                            "not differentiable there") from None


def _check_diagonalizable(V, mask):
    """Equal eigenvalues with (nearly) parallel eigenvectors: a Jordan block, not a cluster."""
    if mask is None:
        return
    Vv = C.value(V)
    xp = namespace_of(Vv)
    cos = xp.abs(xp.matmul(xp.conj(xp.swapaxes(Vv, -1, -2)), Vv))
    if bool((cos[mask] > 1 - S.values_tol(Vv.dtype)).any()):
        raise C.LinAlgError(
            "eig: equal eigenvalues with (nearly) parallel eigenvectors: the matrix is "
            "defective (a Jordan block) or nearly so; its eigenvalues are not differentiable "
            "there and no gradient through eig is returned. A symmetric function of them "
            "(a trace of a matrix function) is smooth: differentiate it without eig.")


def eig_jvp(tangents, out, res, A):
    (A_dot,) = tangents
    w, V = out
    mask = S.degenerate_pairs(w)
    _check_diagonalizable(V, mask)
    p = None if ops._is_complex(A_dot) else _conjugate_pairs(A, w, V)
    if p is not None:
        Z = _real_similarity(V, A_dot, p)                       # V⁻¹ Ȧ V, real solve
    else:
        if not ops._is_complex(A_dot):
            A_dot = ops.astype(A_dot, C.value(V).dtype)
        Z = _solve_with(V, ops.matmul(A_dot, V))              # V⁻¹ Ȧ V
    w_dot = ops.diagonal(Z, 0, -2, -1)
    T = ops.matmul(V, S.inverse_gaps(w, mask) * Z)             # V C₀
    d = ops.real(ops.sum(ops.conj(V) * T, axis=-2))
    return w_dot, T - V * ops.expand_dims(d, -2)


_eig = Primitive("eig", eig_forward, eig_vjp, eig_jvp, multiple_results=True)


def eig(a, b=None, left=False, right=True, overwrite_a=False, overwrite_b=False,
        check_finite=True, homogeneous_eigvals=False):
    """Eigenvalues and right eigenvectors of a general square matrix, differentiable.

    numpy.linalg.eig's conventions, except that both outputs are **always
    complex** (complex64 for float32/complex64 input, complex128 otherwise);
    NumPy returns real arrays when every eigenvalue happens to be real, a type
    that depends on the values.  Returns ``EigResult(eigenvalues,
    eigenvectors)``; eigenvectors have unit 2-norm, their phase as LAPACK
    chooses it.  The gradient of a real input is real.

    SciPy's signature too: ``b`` (nonsingular) poses the generalized problem
    a v = w b v, solved — and differentiated, into a and b — as the standard
    problem of b⁻¹ a (the eigenvalues and vectors of the pencil; SciPy's QZ
    also handles a singular b, with infinite eigenvalues, which this does not:
    LinAlgError); ``left=True`` adds the left eigenvectors u (uᴴ a = w uᴴ, uᴴ b
    for the pencil), the columns of V⁻ᴴ with unit 2-norm and their largest
    entry real and positive (LAPACK's are real there too, of either sign), so
    SciPy's tuples (w, vl, vr), (w, vl) or, ``right=False``, w alone come back;
    ``homogeneous_eigvals=True`` returns w as (..., 2, n) pairs (w, 1).
    ``overwrite_a``/``overwrite_b`` are accepted (nothing is overwritten).

    Valid when: the eigenvalues the loss depends on through eigenvectors are
    distinct and A is diagonalizable (V invertible; the backward pass solves
    with Vᴴ, and its accuracy degrades with κ(V) and 1/gap); the loss is
    invariant under each eigenvector's phase (reverse mode raises ValueError
    otherwise).  Symmetric functions of a cluster of equal eigenvalues of a
    diagonalizable A (sum f(w)) are exact there; a loss that depends on the
    basis of such a cluster gets a ``GaugeWarning``, and so do second derivatives
    within eps^(1/3) of a tie, which miss the in-cluster curvature.
    """
    A, B = _pencil("eig", a, b, check_finite)
    if not (left or right) and not isinstance(A, Tracer):
        return _homogeneous(kernels_for(A).eigvals(A), homogeneous_eigvals)
    w, V = _eig(A)
    wh = _homogeneous(w, homogeneous_eigvals)
    if not left:
        return EigResult(wh, V) if right else wh
    # the pencil's: uᴴ a = w uᴴ b, so u = b⁻ᴴ y for the left vectors y of b⁻¹ a: (b V)⁻ᴴ
    U = _left_vectors(V if B is None else ops.matmul(B, V))
    return (wh, U, V) if right else (wh, U)


def eigvals(a, b=None, overwrite_a=False, check_finite=True, homogeneous_eigvals=False):
    """Eigenvalues of a general square matrix, always complex, differentiable (numpy.linalg.eigvals).

    Untraced, only the eigenvalues are computed; traced, the eigenvectors are
    kept for the backward pass Ā = V⁻ᴴ diag(w̄) Vᴴ.  SciPy's ``b`` (the
    eigenvalues of the pencil a v = w b v, through b⁻¹ a) and
    ``homogeneous_eigvals`` as in :func:`eig`.

    Valid when: A is diagonalizable and the loss is a symmetric function of
    each cluster of equal eigenvalues (a loss that singles out one of several
    equal eigenvalues gets a GaugeWarning); at a defective eigenvalue (Jordan
    block) the eigenvalues are not differentiable and V is singular: the
    backward solve raises LinAlgError.
    """
    A, _ = _pencil("eigvals", a, b, check_finite)
    if not isinstance(A, Tracer):
        return _homogeneous(kernels_for(A).eigvals(A), homogeneous_eigvals)
    return _homogeneous(_eig(A)[0], homogeneous_eigvals)


def _pencil(op, a, b, check_finite):
    """(a, None), or (b⁻¹ a, b) for the generalized problem (a differentiable solve:
    gradients reach b)."""
    A = C.prepare(op, a, check_finite)
    if b is None:
        return A, None
    av, bv = C.peek(A), C.square_matrix(op, b, "b")
    if bv.shape[-1] != av.shape[-1]:
        raise ValueError(f"{op}: a has shape {av.shape} and b has shape {bv.shape}; they must "
                         "be (..., n, n) with the same n")
    C.checked(op, ("b",), (b,), check_finite)
    from .solve import solve as _solve_public     # the solve rule, with its checks and errors
    try:
        return _solve_public(b, A, check_finite=False), b
    except C.LinAlgError as e:
        raise C.LinAlgError(f"{op}: b is singular; the generalized problem is solved as the "
                            f"standard one of b⁻¹ a, which needs a nonsingular b ({e})") from None


def _homogeneous(w, homogeneous):
    """w, or SciPy's homogeneous form: the pairs (w, 1) as (..., 2, n)."""
    if not homogeneous:
        return w
    return ops.stack([w, ops.ones_like(w)], axis=-2)


def _left_vectors(V):
    """The left eigenvectors: V⁻ᴴ's columns (V the right ones; b V for a pencil), unit
    2-norm, the entry of largest modulus real and positive (a phase fixed by the vector
    itself, so a loss of them is invariant under the right eigenvectors' phases, and
    differentiable where that entry is unique)."""
    from .inverse import inv
    U = ops.mH(inv(V, check_finite=False))
    U = U / ops.expand_dims(ops.norm(U, None, axis=-2), -2)
    Uv = C.value(U)
    xp = namespace_of(Uv)
    n = Uv.shape[-1]
    if n == 0:
        return U
    k = xp.argmax(xp.abs(Uv), axis=-2)                                      # (..., n)
    pick = (k[..., None, :] == xp.arange(n)[:, None]).astype(Uv.real.dtype)  # one-hot rows
    top = ops.sum(U * pick, axis=-2, keepdims=True)                         # (..., 1, n)
    return U * (ops.conj(top) / ops.abs(top))


# -- registry -------------------------------------------------------------------------------

def _eig_fun(a):
    """w and |V|² entrywise: invariant under each eigenvector's phase, not its scale."""
    w, V = eig(a)
    return w, ops.real(V * ops.conj(V))


_eig_fun.__doc__ = eig.__doc__


def eig_reference(a):
    w, V = np.linalg.eig(a)
    cdt = np.result_type(a.dtype, np.complex64)
    return w.astype(cdt), np.abs(V.astype(cdt)) ** 2


def _eig_pencil_fun(a, b):
    """SciPy's eig(a, b, left=True): w, |U|² and |V|² (each vector's phase dropped)."""
    w, U, V = eig(a, b, left=True)
    return w, ops.real(U * ops.conj(U)), ops.real(V * ops.conj(V))


_eig_pencil_fun.__doc__ = eig.__doc__


def eig_pencil_reference(a, b):
    """NumPy alone: the eigenpairs of b⁻¹ a and the unit columns of (b V)⁻ᴴ."""
    cdt = np.result_type(a.dtype, np.complex64)
    w, V = np.linalg.eig(np.linalg.solve(b, a))
    V = V.astype(cdt)
    U = np.conj(np.swapaxes(np.linalg.inv(b @ V), -1, -2))
    U = U / np.linalg.norm(U, axis=-2, keepdims=True)
    return w.astype(cdt), np.abs(U) ** 2, np.abs(V) ** 2


def _general(rng, n, batch, dtype):
    return (M.random_general(rng, n, batch, dtype),), {}


def _pencil_domain(rng, n, batch, dtype):
    """a general, b well conditioned (cond <= 3): the pencil of b⁻¹ a."""
    return (M.random_general(rng, n, batch, dtype),
            M.random_general(rng, n, batch, dtype, cond=3.0)), {}


def _real_pair(rng, n, batch, dtype):
    """Real input with a complex-conjugate pair: a rotation block, similarity-transformed."""
    X = M.random_general(rng, n, batch, np.float64, cond=3.0)
    D = np.zeros(batch + (n, n))
    D[..., 0, 0], D[..., 0, 1], D[..., 1, 0], D[..., 1, 1] = 1.0, 2.0, -2.0, 1.0
    for i in range(2, n):
        D[..., i, i] = 3.0 + i
    return (np.ascontiguousarray((X @ D @ np.linalg.inv(X)).astype(dtype)),), {}


_DOMAINS = (
    Domain("general", _general, "random general (well conditioned)"),
    Domain("conjugate-pair", _real_pair, "real, with a complex-conjugate pair", real_only=True),
)

RULES = (
    Rule(
        name="eig",
        fun=_eig_fun,
        primitive=_eig,
        domains=_DOMAINS,
        derivation="docs/derivations/eig.md",
        reference=eig_reference,
        rtol={"float32": 3e-2, "float64": 1e-6},
        tolerance_note="central differences; float32 eigenvectors carry κ(V)·eps/gap errors",
        references=("Giles 2008", "Magnus 1985", "Boeddeker et al. 2017"),
    ),
    Rule(
        name="eig-left-pencil",
        fun=_eig_pencil_fun,
        primitive=_eig,
        domains=(Domain("pencil", _pencil_domain, "a general, b well conditioned"),),
        derivation="docs/derivations/eig.md",
        reference=eig_pencil_reference,
        rtol={"float32": 3e-2, "float64": 1e-6},
        tolerance_note="central differences; float32 eigenvectors carry κ(V)·eps/gap errors",
        references=("Giles 2008", "Magnus 1985"),
    ),
    Rule(
        name="eigvals",
        fun=eigvals,
        primitive=_eig,
        domains=_DOMAINS,
        derivation="docs/derivations/eig.md",
        reference=lambda a: np.linalg.eigvals(a).astype(np.result_type(a.dtype, np.complex64)),
        references=("Giles 2008",),
    ),
)
