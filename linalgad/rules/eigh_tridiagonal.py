"""eigh_tridiagonal, eigvalsh_tridiagonal: T = V diag(w) Vᵀ for a real symmetric tridiagonal T
given by its diagonal d and off-diagonal e.   Derivation: docs/derivations/eigh_tridiagonal.md

T = diag(d) + diag(e, −1) + diag(e, 1), so dT = diag(dd) + diag(de, −1) + diag(de, 1), and
eigh's rule (eigh.md) read on the three diagonals gives the cotangents of d and e:

    Ā_h = V (diag(w̄) + F ∘ VᵀV̄) Vᵀ,   d̄ = diag(Ā_h),   ē_j = (Ā_h)_{j+1,j} + (Ā_h)_{j,j+1}

formed from the rows of V (diag(w̄) + F ∘ K) and V without the n × n product: O(n²) for
the values alone (d̄_j = Σ_i w̄_i V_ji², ē_j = 2 Σ_i w̄_i V_ji V_{j+1,i}), O(n³) with an
eigenvector cotangent (K).  Forward mode: Z = Vᵀ (Ṫ V), Ṫ V formed from the diagonals.
Clusters, the second-order warning and the GaugeWarning are eigh's (_spectral.py).
"""

from __future__ import annotations

import operator

import numpy as np

from .. import ops, transforms
from ..backend import kernels_for
from ..registry import Domain, Rule
from ..tape import Primitive, Tracer
from . import _common as C
from . import _spectral as S
from ._spectral import few_pays as _few_pays       # a module name: the tests switch it
from .banded import band_apply, band_of_product

__all__ = ["eigh_tridiagonal", "eigvalsh_tridiagonal", "RULES"]


def _forward(d, e):
    return kernels_for(d, e).eigh_tridiagonal(d, e)


def _band(d, e):
    """T's band storage (..., 3, n) in banded.md's layout (l = u = 1): the superdiagonal
    shifted right, the diagonal, the subdiagonal — differentiable in d and e."""
    v = C.peek(d)
    zero = C.namespace_of(v).zeros(v.shape[:-1] + (1,), dtype=v.dtype)
    return ops.stack([ops.concatenate([zero, e], axis=-1), d,
                      ops.concatenate([e, zero], axis=-1)], axis=-2)


def _diagonals_cotangent(L, V):
    """(d̄, ē) of dL = ⟨L Vᵀ, dT⟩: the diagonal of L Vᵀ, and the sums of its entries
    (j + 1, j) and (j, j + 1) — the band of the product, O(n k) a diagonal, never the
    product itself (banded.py's band_product)."""
    G = band_of_product(L, ops.mT(V), 1, 1)
    n = ops._shape(G)[-1]
    row = lambda r, cols: ops.getitem(G, (Ellipsis, r, cols))              # noqa: E731
    return row(1, slice(None)), row(2, slice(0, n - 1)) + row(0, slice(1, n))


def _tangent_product(V, d_dot, e_dot):
    """Ṫ V, from Ṫ's band (banded.py's band_matmul): O(n k)."""
    return band_apply(_band(d_dot, e_dot), V, 1, 1)


def _zeros_for(t, x, like):
    """A tangent t, or zeros shaped like x in like's dtype where it is None."""
    if t is not None:
        return t
    v = C.peek(like)
    return C.namespace_of(v).zeros(ops._shape(x), dtype=v.dtype)


def _tri_vjp(cts, needs, out, res, d, e):
    """d̄ = diag(L Vᵀ), ē_j = (L Vᵀ)_{j+1,j} + (L Vᵀ)_{j,j+1}, L = V (diag(w̄) + F ∘ VᵀV̄)."""
    w_bar, V_bar = cts
    w, V = out
    if w_bar is None and V_bar is None:
        return None, None
    L = S.hermitian_left_factor("eigh_tridiagonal", w, V, w_bar, V_bar)
    d_bar, e_bar = _diagonals_cotangent(L, V)
    return (ops.fit(d_bar, d) if needs[0] else None), (ops.fit(e_bar, e) if needs[1] else None)


def _tri_jvp(tangents, out, res, d, e):
    """Z = Vᵀ (Ṫ V), ẇ = diag(Z), V̇ = V (F ∘ Z)."""
    w, V = out
    Z = ops.matmul(ops.mT(V), _tangent_product(V, _zeros_for(tangents[0], d, w),
                                               _zeros_for(tangents[1], e, w)))
    return S.hermitian_tangents(w, V, Z)


_tri_eigh = Primitive("eigh_tridiagonal", _forward, _tri_vjp, _tri_jvp, multiple_results=True)


# -- a few eigenvalues alone: O(n k) at first order ------------------------------------------
#
# eigvalsh_tridiagonal with select='i' of k ≪ n values needs only their k eigenvectors for
# the gradient (d̄ = V_S² w̄, ē = 2 V_S[:-1] V_S[1:] w̄) and for the forward mode (ẇ, the same
# sums with ḋ, ė): LAPACK's bisection and inverse iteration find them in O(n k), where every
# pair takes n² memory (80 GB at n = 10⁵).  Those two formulas are fused primitives: their
# kernels use the k vectors; their derivatives (second order) trace the same formulas through
# the full decomposition, which alone has the vectors' derivatives.

def _subset_values(d, e, lo, hi):
    """(w, V) of the pairs lo − 1 .. hi + 1 (the neighbours show a tie at the range's ends),
    and whether any two of them tie (then the full path's rule and its warning apply)."""
    n = d.shape[-1]
    a, b = S.few_window(lo, hi, n)
    w, V = kernels_for(d, e).eigh_tridiagonal(d, e, select_range=(a, b))
    xp = C.namespace_of(w)
    scale = xp.maximum(xp.abs(d).max(axis=-1), 2 * xp.abs(e).max(axis=-1) if n > 1 else 0)
    return S.few_trim(w, V, lo, hi, a, scale)


def _pairs(d, e, lo, hi, computed):
    """The kept vectors V_S: the subset's (``computed``, plain) in a kernel, the full
    decomposition's columns lo..hi in a reference (whose derivatives are the full rule's)."""
    if computed is not None:
        return computed[1]
    _, V = _tri_eigh(d, e)
    return ops.getitem(V, (Ellipsis, slice(None), slice(lo, hi + 1)))


def _values_cotangent_of(d, e, w_bar, *, lo, hi, computed):
    V = _pairs(d, e, lo, hi, computed)
    return _diagonals_cotangent(V * ops.expand_dims(w_bar, -2), V)


def _values_tangent_of(d, e, d_dot, e_dot, *, lo, hi, computed):
    V = _pairs(d, e, lo, hi, computed)
    return ops.sum(V * _tangent_product(V, d_dot, e_dot), axis=-2)


_values_cotangent = transforms.fused("tridiagonal_values_cotangent", _values_cotangent_of,
                                     S.with_full_pairs(_values_cotangent_of), multiple_results=True)
_values_tangent = transforms.fused("tridiagonal_values_tangent", _values_tangent_of,
                                   S.with_full_pairs(_values_tangent_of))


def _few_vjp(w_bar, needs, out, res, d, e, *, lo, hi, computed):
    d_bar, e_bar = _values_cotangent(d, e, w_bar, lo=lo, hi=hi, computed=computed)
    return (ops.fit(d_bar, d) if needs[0] else None), (ops.fit(e_bar, e) if needs[1] else None)


def _few_jvp(tangents, out, res, d, e, *, lo, hi, computed):
    return _values_tangent(d, e, _zeros_for(tangents[0], d, out),
                           _zeros_for(tangents[1], e, out), lo=lo, hi=hi, computed=computed)


_few_values = Primitive("eigvalsh_tridiagonal_few", lambda d, e, *, lo, hi, computed: computed[0],
                        _few_vjp, _few_jvp)


def _few(op, d, e, lo, hi):
    """w[lo..hi] from the k vectors alone, or None where every pair is taken (a tie)."""
    res = C.compute(lambda dv, ev: _subset_values(dv, ev, lo, hi), (d, e),
                    decide=lambda r: r[2], name=f"{op}'s few values")
    if res[2]:
        return None
    return _few_values(d, e, lo=lo, hi=hi, computed=res)


def _operands(op, d, e, check_finite):
    dv, ev = C.peek(d), C.peek(e)
    if dv.ndim < 1 or ev.ndim < 1:
        raise ValueError(f"{op}: d and e must be arrays (..., n) and (..., n − 1); got shapes "
                         f"{dv.shape} and {ev.shape}")
    for name, v in (("d", dv), ("e", ev)):
        if v.dtype.kind == "c":
            raise TypeError(f"{op}: {name} is complex; only real symmetric tridiagonal "
                            "matrices are supported (as in SciPy)")
    if dv.shape[-1] != ev.shape[-1] + 1:
        raise ValueError(f"{op}: d ({dv.shape[-1]}) must have one more element than e "
                         f"({ev.shape[-1]})")
    batch = C.stacks(op, core=1, d=dv.shape, e=ev.shape)
    dtype = C.result_dtype(op, dv, ev)
    C.checked(op, ("d", "e"), (d, e), check_finite)
    d, e = C.promote(d, dtype), C.promote(e, dtype)
    if dv.shape[:-1] != batch:
        d = ops.broadcast_to(d, batch + dv.shape[-1:])
    if ev.shape[:-1] != batch:
        e = ops.broadcast_to(e, batch + ev.shape[-1:])
    return d, e


_SELECT = {"a": "a", "all": "a", 0: "a", "v": "v", "value": "v", 1: "v", "i": "i",
           "index": "i", 2: "i"}


def eigh_tridiagonal(d, e, eigvals_only=False, select="a", select_range=None,
                     check_finite=True, tol=0.0, lapack_driver="auto"):
    """Eigenvalues and eigenvectors of a real symmetric tridiagonal matrix, differentiable in
    its diagonal ``d`` and off-diagonal ``e`` (scipy.linalg.eigh_tridiagonal).

    ``d`` (..., n) and ``e`` (..., n − 1), stacks broadcast.  Returns ``(w, v)``, w
    ascending, v (..., n, m) orthonormal, or w alone with ``eigvals_only=True``.
    ``select`` 'a' (all), 'i' (``select_range = (lo, hi)``, indices, inclusive) or 'v'
    (lo < w ≤ hi, the same number in every matrix of a stack, from each matrix's own
    first index) as in SciPy, whose argument checks both routes make; ``tol`` and
    ``lapack_driver`` are accepted (untraced calls pass them to SciPy).

    Traced, every pair is computed by LAPACK's stevd (divide and conquer: O(n²) to
    O(n³) work with the vectors, a third of the assembled matrix's syevd at n = 2000),
    and selections are slices of it; except a few eigenvalues alone by index
    (``eigvalsh_tridiagonal`` or ``eigvals_only=True`` with select='i', k ≤ n/8 from
    n = 64), found with their k vectors by bisection and inverse iteration: O(n k) for
    the value, the gradient and the forward mode (n = 10⁵, the largest eigenvalue and
    its gradient: 0.08 s and 9 MB, where every pair would take 80 GB), second order
    through the full decomposition.  The gradient of the eigenvalues alone is O(n²) —
    d̄_j = Σ_i w̄_i V_ji², ē_j = 2 Σ_i w̄_i V_ji V_{j+1,i} — the quadrature nodes of Golub
    and Welsch differentiated in the recurrence coefficients, for example; eigenvector
    cotangents cost O(n³) (eigh's rule on the three diagonals; eigh_tridiagonal.md).

    Valid when: as :func:`eigh` — a loss invariant under each eigenvector's sign; at
    (nearly) repeated eigenvalues (an unreduced tridiagonal matrix has none, but they can
    be as close as rounding: Wilkinson's W₂₁⁺ has pairs within 1e-14) losses that depend
    on a cluster's basis get a GaugeWarning, and so does a function of the matrix
    V f(w) Vᵀ, whose gradient there needs f's divided differences: write it as
    ``funmh`` of the assembled matrix, which has them.
    """
    return _decomposition("eigh_tridiagonal", d, e, eigvals_only, select, select_range,
                          check_finite, tol, lapack_driver)


def eigvalsh_tridiagonal(d, e, select="a", select_range=None, check_finite=True, tol=0.0,
                         lapack_driver="auto"):
    """The eigenvalues of a real symmetric tridiagonal matrix, ascending, differentiable
    (scipy.linalg.eigvalsh_tridiagonal); see :func:`eigh_tridiagonal`.  Untraced, only the
    eigenvalues are computed (SciPy's call); traced, the eigenvectors too, for the O(n²)
    gradient d̄_j = Σ_i w̄_i V_ji², ē_j = 2 Σ_i w̄_i V_ji V_{j+1,i}.

    Valid when: always for losses symmetric in the values of each cluster of (nearly)
    equal eigenvalues; one that singles out one of them gets a GaugeWarning and one of
    its subgradients (as :func:`eigvalsh`).
    """
    return _decomposition("eigvalsh_tridiagonal", d, e, True, select, select_range,
                          check_finite, tol, lapack_driver)


_DRIVERS = ("auto", "stemr", "sterf", "stebz", "stev", "stevd")


def _index_pair(op, select_range):
    try:
        return tuple(operator.index(i) for i in select_range)
    except TypeError:
        raise ValueError(f"{op}: select_range={select_range!r} must contain integers with "
                         "select='i'") from None


def _decomposition(op, d, e, eigvals_only, select, select_range, check_finite, tol,
                   lapack_driver):
    kind = _SELECT.get(select.lower() if isinstance(select, str) else select)
    if kind is None:
        raise ValueError(f"{op}: select must be 'a', 'v' or 'i'; got {select!r}")
    # SciPy's argument checks, on both routes (a traced call would otherwise accept what
    # the untraced one refuses)
    if not isinstance(lapack_driver, str):
        raise TypeError(f"{op}: lapack_driver must be str")
    if lapack_driver not in _DRIVERS:
        raise ValueError(f"{op}: lapack_driver must be one of {_DRIVERS}, got "
                         f"{lapack_driver!r}")
    if lapack_driver in ("sterf", "stev", "stevd") and kind != "a":
        raise ValueError(f"{op}: {lapack_driver} can only be used when select == 'a'")
    if lapack_driver == "sterf" and not eigvals_only:
        raise ValueError(f"{op}: sterf can only be used when eigvals_only is True")
    if kind != "a":
        if select_range is None or len(select_range) != 2:
            raise ValueError(f"{op}: select_range must be a pair with select={select!r}")
        if kind == "i":
            _index_pair(op, select_range)
        elif not float(select_range[0]) < float(select_range[1]):
            raise ValueError(f"{op}: select_range={tuple(select_range)} must be an "
                             "increasing pair")
    d, e = _operands(op, d, e, check_finite)
    if not isinstance(d, Tracer) and not isinstance(e, Tracer) and \
            C.namespace_of(C.peek(d), C.peek(e)) is np:
        import scipy.linalg                   # untraced: SciPy's own call, as asked
        return scipy.linalg.eigh_tridiagonal(d, e, eigvals_only=eigvals_only, select=select,
                                             select_range=select_range, check_finite=False,
                                             tol=tol, lapack_driver=lapack_driver)
    n = ops._shape(d)[-1]
    if kind == "i" and eigvals_only:
        lo, hi = _index_pair(op, select_range)
        if 0 <= lo <= hi < n and _few_pays(n, hi - lo + 1):
            w = _few(op, d, e, lo, hi)
            if w is not None:
                return w
    w, V = _tri_eigh(d, e)
    if kind == "i":
        lo, hi = _index_pair(op, select_range)
        if not 0 <= lo <= hi < n:
            raise ValueError(f"{op}: select_range={tuple(select_range)} is not within "
                             f"[0, {n - 1}]")
        keep = slice(lo, hi + 1)
    elif kind == "v":
        from .eigh import by_value
        w, V = by_value(op, w, V, select_range, "select_range")
        return w if eigvals_only else (w, V)
    else:
        keep = slice(None)
    if kind != "a":
        w = ops.getitem(w, (Ellipsis, keep))
        V = ops.getitem(V, (Ellipsis, slice(None), keep))
    return w if eigvals_only else (w, V)


# -- registry -------------------------------------------------------------------------------

def _fun(d, e):
    """w and Σ c_i v_i v_iᵀ: invariant under each eigenvector's sign."""
    w, V = eigh_tridiagonal(d, e)
    c = S.gauge_weights(ops._shape(V)[-1], V)
    return w, ops.matmul(V * c, ops.mT(V))


_fun.__doc__ = eigh_tridiagonal.__doc__


def _domain(rng, n, batch, dtype):
    """A spread spectrum: d on a ramp, e of order one (well separated eigenvalues)."""
    d = np.linspace(-2.0, 2.0, n) * n + 0.3 * rng.standard_normal(batch + (n,))
    e = 0.5 + 0.3 * rng.standard_normal(batch + (max(n - 1, 0),))
    return (d.astype(dtype), e.astype(dtype)), {}


def _reference(d, e):
    import scipy.linalg
    w, V = scipy.linalg.eigh_tridiagonal(d, e)
    c = S.gauge_weights(w.shape[-1], w)
    return w, (V * c) @ np.swapaxes(V, -1, -2)


def _values_reference(d, e):
    import scipy.linalg
    return scipy.linalg.eigvalsh_tridiagonal(d, e)


RULES = (
    Rule(
        name="eigh_tridiagonal",
        fun=_fun,
        primitive=_tri_eigh,
        domains=(Domain("spread", _domain, "d on a ramp, e of order one"),),
        derivation="docs/derivations/eigh_tridiagonal.md",
        reference=_reference,
        dtypes=(np.float32, np.float64),
        references=("Giles 2008", "Golub & Welsch 1969"),
    ),
    Rule(
        name="eigvalsh_tridiagonal",
        fun=eigvalsh_tridiagonal,
        primitive=_tri_eigh,
        domains=(Domain("spread", _domain, "d on a ramp, e of order one"),),
        derivation="docs/derivations/eigh_tridiagonal.md",
        reference=_values_reference,
        dtypes=(np.float32, np.float64),
    ),
)
