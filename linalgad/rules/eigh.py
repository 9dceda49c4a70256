"""eigh, eigvalsh: A = V diag(w) Vᴴ for Hermitian A.   Derivation: docs/derivations/eigh.md

One triangle of the input is read (lower by default), as LAPACK does.

    Z = Vᴴ dA V,   dw = Re diag(Z),   dV = V (F ∘ Z),   F_ij = 1/(w_j − w_i) (i ≠ j)
Reverse  K = Vᴴ V̄,  Ā_h = V (diag(w̄) + F ∘ K) Vᴴ,  then the triangle projection
Forward  ẇ = Re diag(Z), V̇ = V (F ∘ Z), Z = Vᴴ Ȧ_h V

Pairs with |w_i − w_j| ≤ eps^(2/3)·max|w| count as equal: F_ij = 0 there (the
rotation inside the cluster is held fixed), which is exact for losses that
depend on a cluster through symmetric functions of its values and through its
subspace.  A loss that depends on an eigenvector's phase raises ValueError; one
that depends on the basis inside a cluster gets a GaugeWarning (_spectral.py).
"""

from __future__ import annotations

from collections import namedtuple

import numpy as np

from .. import ops, transforms
from ..backend import kernels_for
from ..registry import Domain, Rule
from ..tape import Primitive, Tracer
from ..testing import matrices as M
from . import _common as C
from . import _spectral as S

__all__ = ["eigh", "eigvalsh", "EighResult", "RULES"]

EighResult = namedtuple("EighResult", ["eigenvalues", "eigenvectors"])


def eigh_forward(A, *, lower=True):
    w, V = kernels_for(A).eigh(A, lower=lower)
    return w, V


def _cotangent_composed(w, V, w_bar, V_bar, *, lower):
    """Ā from (w̄, V̄): Ā_h = V (diag(w̄) + F ∘ VᴴV̄) Vᴴ onto the triangle read, gap terms
    dropped (and the loss checked) inside clusters — in differentiable operations: the
    definition, and what derivatives of the rule trace."""
    Wm = K = None
    mask = S.degenerate_pairs(w, ordered=True)
    if V_bar is not None:
        K = ops.matmul(ops.mH(V), V_bar)
        S.check_phase("eigh", K, "an eigenvector")
        Wm = S.inverse_gaps(w, mask) * K
    S.check_clusters("eigh", mask, K, w_bar)
    # Ā_h = (V (F ∘ K) + V diag(w̄)) Vᴴ: two products, the diagonal as a scaling
    left = V * ops.expand_dims(w_bar, -2) if w_bar is not None else None
    if Wm is not None:
        left = ops.matmul(V, Wm) if left is None else ops.matmul(V, Wm) + left
    Ah_bar = ops.matmul(left, ops.mH(V))
    return C.triangle_cotangent(Ah_bar, lower, hermitian=True)


def _cotangent_kernel(w, V, w_bar, V_bar, *, lower):
    """One kernel call in the common case (real, no cluster: nothing to check or drop)."""
    if V.dtype.kind == "f" and S.degenerate_pairs(w, ordered=True) is None:
        return kernels_for(V).eigh_cotangent(w, V, w_bar, V_bar, lower)
    return _cotangent_composed(w, V, w_bar, V_bar, lower=lower)


_cotangent = transforms.fused("eigh_cotangent", _cotangent_kernel, _cotangent_composed)


def eigh_vjp(cts, needs, out, res, A, *, lower=True):
    w_bar, V_bar = cts
    w, V = out
    if w_bar is None and V_bar is None:
        return (None,)
    return (ops.fit(_cotangent(w, V, w_bar, V_bar, lower=lower), A),)


def eigh_jvp(tangents, out, res, A, *, lower=True):
    (A_dot,) = tangents
    w, V = out
    Ah_dot = C.from_triangle(A_dot, lower, hermitian=True)
    Z = ops.matmul(ops.mH(V), ops.matmul(Ah_dot, V))
    d = ops.diagonal(Z, 0, -2, -1)
    w_dot = ops.real(d) if ops._is_complex(d) else d
    V_dot = ops.matmul(V, S.inverse_gaps(w, S.degenerate_pairs(w, ordered=True)) * Z)
    return w_dot, V_dot


_eigh = Primitive("eigh", eigh_forward, eigh_vjp, eigh_jvp, multiple_results=True)


def _lower(op, UPLO, lower):
    if lower is not None:
        return bool(lower)
    if UPLO not in ("L", "U", "l", "u"):
        raise ValueError(f"{op}: UPLO must be 'L' or 'U', got {UPLO!r}")
    return UPLO in ("L", "l")


def eigh(a, UPLO="L", *, lower=None, eigvals_only=False, check_finite=True, b=None,
         subset_by_index=None):
    """Eigenvalues and eigenvectors of a Hermitian matrix, differentiable (numpy.linalg.eigh).

    ``a`` is (..., n, n); only one triangle is read: the lower one unless
    ``UPLO='U'`` (NumPy) or ``lower=False`` (SciPy).  Returns
    ``EighResult(eigenvalues, eigenvectors)``: w ascending and real, V unitary
    with w's matrices' columns as eigenvectors.  ``eigvals_only=True``
    returns w (like :func:`eigvalsh`); ``subset_by_index=(lo, hi)`` keeps the
    eigenpairs lo..hi (inclusive, SciPy), differentiated through the full
    decomposition.  The generalized problem (``b``) is not supported.

    Valid when: the loss is invariant under the sign (real) or phase
    (complex) of each eigenvector -- a phase-dependent loss raises ValueError
    in reverse mode.  At (nearly) repeated eigenvalues, |w_i − w_j| ≤
    eps^(2/3)·max|w|, the gradient is exact for losses that depend on a cluster
    only through symmetric functions of its eigenvalues and through its
    eigenspace (sum f(w), traces of matrix functions, A = I); a loss that
    depends on the basis inside the cluster gets a ``GaugeWarning``.
    Second derivatives (Hessian-vector products) at an exactly repeated
    eigenvalue are finite but miss the in-cluster curvature term (eigh.md,
    section 6).  The backward pass is three matrix products; nothing is
    refactored.
    """
    op = "eigh"
    if b is not None:
        raise NotImplementedError("eigh: the generalized problem (b) is not supported yet; "
                                  "reduce it with cholesky: eigh(inv(L) a inv(L)ᴴ)")
    lo = _lower(op, UPLO, lower)
    A = C.prepare(op, a, check_finite)
    if eigvals_only and not isinstance(A, Tracer) and subset_by_index is None:
        return kernels_for(A).eigvalsh(A, lower=lo)
    w, V = _eigh(A, lower=lo)
    if subset_by_index is not None:
        first, last = (int(i) for i in subset_by_index)
        n = C.value(A).shape[-1]
        if not 0 <= first <= last < n:
            raise ValueError(f"eigh: subset_by_index={tuple(subset_by_index)} is not within "
                             f"[0, {n - 1}]")
        w = ops.getitem(w, (Ellipsis, slice(first, last + 1)))
        V = ops.getitem(V, (Ellipsis, slice(None), slice(first, last + 1)))
    return w if eigvals_only else EighResult(w, V)


def eigvalsh(a, UPLO="L", *, lower=None, check_finite=True):
    """Eigenvalues of a Hermitian matrix, ascending, differentiable (numpy.linalg.eigvalsh).

    Reads one triangle like :func:`eigh`.  Untraced, only the eigenvalues are
    computed; traced, the eigenvectors are kept for the backward pass
    Ā = V diag(w̄) Vᴴ (projected onto the triangle read).

    Valid when: always for losses symmetric in the eigenvalues of each
    cluster of equal ones (sum f(w), a norm, a log-determinant); a loss that
    singles out one of several equal eigenvalues (e.g. w[-1] at a tie) is not
    differentiable there, gets a GaugeWarning and one of its subgradients.
    """
    op = "eigvalsh"
    lo = _lower(op, UPLO, lower)
    A = C.prepare(op, a, check_finite)
    if not isinstance(A, Tracer):
        return kernels_for(A).eigvalsh(A, lower=lo)
    return _eigh(A, lower=lo)[0]


# -- registry -------------------------------------------------------------------------------

def _eigh_fun(a, UPLO="L"):
    """w and Σ c_i v_i v_iᴴ: invariant under each eigenvector's sign/phase."""
    w, V = eigh(a, UPLO=UPLO)
    c = S.gauge_weights(ops._shape(V)[-1], V)
    return w, ops.matmul(V * c, ops.mH(V))


_eigh_fun.__doc__ = eigh.__doc__


def eigh_reference(a, UPLO="L"):
    w, V = np.linalg.eigh(a, UPLO=UPLO)
    return w, (V * S.gauge_weights(a.shape[-1], w)) @ np.conj(np.swapaxes(V, -1, -2))


def _sym(rng, n, batch, dtype):
    return (M.random_symmetric(rng, n, batch, dtype),), {}


def _sym_raw_upper(rng, n, batch, dtype):
    """Upper triangle read; the lower one holds unrelated data (must get zero gradient)."""
    A = M.random_symmetric(rng, n, batch, dtype)
    junk = M.random_general(rng, n, batch, dtype)
    return (np.ascontiguousarray(np.triu(A) + np.tril(junk, -1)),), {"UPLO": "U"}


_DOMAINS = (
    Domain("hermitian", _sym, "spread spectrum, lower triangle read"),
    Domain("upper", _sym_raw_upper, "UPLO='U', other triangle unrelated"),
)

RULES = (
    Rule(
        name="eigh",
        fun=_eigh_fun,
        primitive=_eigh,
        domains=_DOMAINS,
        derivation="docs/derivations/eigh.md",
        reference=eigh_reference,
        references=("Giles 2008", "Magnus & Neudecker 1999"),
    ),
    Rule(
        name="eigvalsh",
        fun=eigvalsh,
        primitive=_eigh,
        domains=_DOMAINS,
        derivation="docs/derivations/eigh.md",
        reference=lambda a, UPLO="L": np.linalg.eigvalsh(a, UPLO=UPLO),
        references=("Giles 2008",),
    ),
)
