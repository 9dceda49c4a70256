"""Linear maps whose structure is chosen from the value or from a seed: matrix_balance,
cdf2rdf, clarkson_woodruff_transform.   Derivation: docs/derivations/linear_maps.md

Each function makes a discrete choice first and then applies a fixed linear map; the
choice is locally constant (for almost every input), so the derivative is that map and its
adjoint is the reverse rule, at every order:

    matrix_balance   gebal's permutation p and power-of-two scaling s of A (piecewise
                     constant in A), then B = T⁻¹ A T = (A[p][:, p] · s_j / s_i)
                     B̄ ↦ Ā: the same scaling divided, scattered back by p
    cdf2rdf          which eigenvalues are complex (Im w ≠ 0), then
                     wr = diag(Re w) + diag(Im w on the pairs) Π,  vr = Re(v U)
                     with Π the pair swap and U SciPy's fixed 2 × 2 rotations
    clarkson_woodruff_transform
                     the sketch S (one ±1 per column, drawn from rng), then S A:
                     a signed segment sum of A's rows; the adjoint S̄ᵀ gathers rows

The choices are made on a host copy of the value with SciPy itself (so the result is
SciPy's to rounding, the random sketch included: the same rng gives the same S); the maps
are linalgad's own differentiable operations, so a traced input or a CuPy array takes the
same path.  The choices are not differentiable and have no gradient (T, scale and perm
are returned as constants).
"""

from __future__ import annotations

import numpy as np

from .. import ops
from ..backend import _like, namespace_of, to_host
from ..registry import Domain, Rule
from ..tape import Primitive
from . import _common as C

__all__ = ["matrix_balance", "cdf2rdf", "clarkson_woodruff_transform", "RULES"]


def _host_value(x):
    """The value of x (traced or plain, NumPy or CuPy) as a NumPy array."""
    return to_host(C.value(x))


# -- matrix_balance ----------------------------------------------------------------------------

def _scaled_similarity(A, s, p):
    """B = T⁻¹ A T for T = I[:, p] diag(s): rows and columns permuted by p, B_ij scaled by
    s_j / s_i.  s and p are (..., n) constants (NumPy); A is (..., n, n), traced or plain."""
    perm = _like(np.ascontiguousarray(p, dtype=np.intp), C.peek(A))
    X = ops.permute_rows(A, perm)
    X = ops.mT(ops.permute_rows(ops.mT(X), perm))
    dtype = C.peek(A).dtype
    ratio = (s[..., None, :] / s[..., :, None]).astype(np.zeros((), dtype).real.dtype)
    return ops.multiply(X, _like(ratio, C.peek(A)))


def matrix_balance(A, permute=True, scale=True, separate=False, overwrite_a=False):
    """scipy.linalg.matrix_balance, differentiable in A: B = T⁻¹ A T with gebal's
    permutation and power-of-two scaling T.

    Returns ``(B, T)``, or ``(B, (scale, perm))`` with ``separate=True``; stacks (..., n, n)
    balance matrix by matrix, as SciPy 1.17 does, and with ``separate=True`` give scale and
    perm of shape (..., n) (SciPy 1.17's batching returns one array (..., 2, n) there
    instead, which unpacks as the first matrix's pair).  T (and scale, perm) are what SciPy
    returns: constants, without gradient, because the balancing choice is piecewise
    constant in A (the scaling factors are powers of two chosen by comparisons of norms).
    Where the choice is fixed, B is linear in A and its derivative is the same similarity:
    dB = T⁻¹ dA T, and Ā = T⁻ᴴ B̄ Tᴴ, which for a permutation times a positive diagonal is
    the same permutation with the inverse scaling (linear_maps.md, section 3).  At an input
    where gebal's comparisons tie the map jumps (a different power of two); the derivative
    is that of the branch SciPy took.  Cost: gebal on a host copy (O(n²)), then a gather and
    a scaling; the gradient is the same.

    Valid when: gebal's choice is locally constant (almost every input; not where an
    off-diagonal entry is exactly zero along the direction of change, or a norm comparison
    ties).  ``overwrite_a`` is accepted for SciPy's signature; the input is never
    overwritten.
    Non-square input raises ValueError, non-finite values ValueError, both naming
    matrix_balance.
    """
    (A,) = C.array_args("matrix_balance", A=A)
    v = C.peek(A)
    if v.ndim < 2 or v.shape[-1] != v.shape[-2]:
        raise ValueError("matrix_balance: the data matrix for balancing should be square; "
                         f"got shape {v.shape}")
    dtype = C.result_dtype("matrix_balance", v)
    A = C.promote(A, dtype)
    host = _host_value(A)
    if not np.isfinite(host).all():
        raise ValueError("matrix_balance: array must not contain infs or NaNs")
    import scipy.linalg
    n = v.shape[-1]
    flat = host.reshape((int(np.prod(v.shape[:-2], dtype=np.int64)), n, n))
    s = np.ones((flat.shape[0], n))
    p = np.zeros((flat.shape[0], n), dtype=np.intp)
    for i, a in enumerate(flat):        # one matrix at a time: SciPy's batched separate=True
        _, (s[i], p[i]) = scipy.linalg.matrix_balance(   # stacks the (scale, perm) tuples
            a, permute=permute, scale=scale, separate=True)
    s, p = s.reshape(v.shape[:-1]), p.reshape(v.shape[:-1])
    B = _scaled_similarity(A, s, p)
    if separate:
        return B, (_like(s, v), _like(p, v))
    T = np.zeros(v.shape, dtype=np.float64)       # T = I[:, p] diag(s): T[p_j, j] = s_j
    if n:
        np.put_along_axis(T, p[..., None, :], s[..., None, :], axis=-2)
    return B, _like(T, v)


def _matrix_balance_reference(A, **kw):
    import scipy.linalg
    return scipy.linalg.matrix_balance(A, **kw)


# -- cdf2rdf ------------------------------------------------------------------------------------

def _pairs(op, mask):
    """(j, k) index arrays (over the flattened stack) of the conjugate pairs SciPy forms:
    the complex entries of each row of ``mask`` (..., n) taken two by two in order."""
    if not (mask.sum(axis=-1) % 2 == 0).all():
        raise ValueError(f"{op}: expected complex-conjugate pairs of eigenvalues")
    flat = mask.reshape(-1, mask.shape[-1])
    rows, cols = np.nonzero(flat)
    return rows[0::2], cols[0::2], cols[1::2]


def cdf2rdf(w, v):
    """scipy.linalg.cdf2rdf, differentiable in w and v: the real block-diagonal form of a
    complex eigendecomposition (real wr, vr with vr wr vr⁻¹ = v diag(w) v⁻¹).

    ``w`` (..., n) are eigenvalues with each complex-conjugate pair adjacent (as
    numpy.linalg.eig returns them for a real matrix), ``v`` (..., n, n) the eigenvectors.
    wr holds Re w on its diagonal and, for each pair (j, k), wr[j, k] = Im w_j and
    wr[k, j] = Im w_k; and vr = Re(v U) with U = I except the 2 × 2
    blocks [[i/2, 1/2], [−i/2, 1/2]] on each pair, exactly SciPy's map (which reads w's and
    v's entries as they are: it does not assume the pair is conjugate).  Which entries are
    complex (Im w ≠ 0) is read from the value, so the map is fixed near any input and
    its derivative is the same map; the gradient is its adjoint (linear_maps.md, section
    3): w̄ = Re(diag W̄) + i (Π W̄ᵀ diagonal on the pairs), v̄ = V̄ Uᴴ.  Output dtypes are
    SciPy's: wr in w's real precision (an integer w: its integer dtype), vr in float64
    (SciPy's U is complex128); empty inputs give SciPy's empty outputs.

    Valid when: no entry of w changes between real and complex along the direction of
    change (SciPy's map jumps there).
    """
    w, v = C.array_args("cdf2rdf", w=w, v=v)
    wv, vv = C.peek(w), C.peek(v)
    if wv.ndim < 1:
        raise ValueError("cdf2rdf: expected w to be at least 1D")
    if vv.ndim < 2:
        raise ValueError("cdf2rdf: expected v to be at least 2D")
    if vv.ndim != wv.ndim + 1:
        raise ValueError("cdf2rdf: expected eigenvectors array to have exactly one dimension "
                         "more than eigenvalues array")
    n = wv.shape[-1]
    if vv.shape[-2] != vv.shape[-1]:
        raise ValueError("cdf2rdf: expected v to be a square matrix or stacked square "
                         "matrices: v.shape[-2] = v.shape[-1]")
    if vv.shape[-1] != n:
        raise ValueError("cdf2rdf: expected the same number of eigenvalues as eigenvectors")
    for name, x in (("w", wv), ("v", vv)):
        if x.dtype.kind not in "biufc":
            raise ValueError(f"cdf2rdf: {name} must be numeric; got dtype {x.dtype}")
    host_w = _host_value(w)
    if not (np.isfinite(host_w).all() and np.isfinite(_host_value(v)).all()):
        raise ValueError("cdf2rdf: array must not contain infs or NaNs")
    mask = np.iscomplex(host_w)
    batch = wv.shape[:-1]
    if n == 0 or 0 in batch:                      # nothing to pair: SciPy's empty outputs
        real = np.zeros((), wv.dtype).real.dtype
        return (_like(np.zeros(batch + (n, n), dtype=real), wv),
                _like(np.zeros(batch + (n, n), dtype=np.float64), vv))
    stack, j, k = _pairs("cdf2rdf", mask)
    nb = int(np.prod(batch, dtype=np.int64))
    real_dtype = np.zeros((), wv.dtype).real.dtype if wv.dtype.kind in "fc" else np.float64
    # Π: the swap of each pair (the identity elsewhere), and SciPy's U
    swap = np.broadcast_to(np.eye(n), (nb, n, n)).copy()
    swap[stack, j, j] = swap[stack, k, k] = 0
    swap[stack, j, k] = swap[stack, k, j] = 1
    U = np.broadcast_to(np.eye(n, dtype=np.complex128), (nb, n, n)).copy()
    U[stack, j, j] = 0.5j
    U[stack, j, k] = 0.5
    U[stack, k, j] = -0.5j
    U[stack, k, k] = 0.5
    on_pairs = mask.astype(real_dtype)
    swap = _like(swap.reshape(batch + (n, n)).astype(real_dtype), wv)
    U = _like(U.reshape(batch + (n, n)), vv)
    w_re, w_im = ops.real(w), ops.imag(w)
    if C.peek(w_re).dtype != real_dtype:
        w_re, w_im = ops.astype(w_re, real_dtype), ops.astype(w_im, real_dtype)

    def embed(d):
        return ops._embed_diagonal(d, shape=batch + (n, n), offset=0, axis1=-2, axis2=-1)

    wr = embed(w_re) + ops.matmul(embed(ops.multiply(w_im, _like(on_pairs, wv))), swap)
    vr = ops.real(ops.matmul(v, U))
    if wv.dtype.kind in "biu":                    # SciPy: wr in w's own (integer) dtype
        wr = ops.astype(wr, wv.dtype)
    return wr, vr


def _cdf2rdf_reference(w, v):
    import scipy.linalg
    return scipy.linalg.cdf2rdf(w, v)


# -- clarkson_woodruff_transform ---------------------------------------------------------------

def _sketch_rows(n, sketch_size, rng):
    """(h, sign): column i of SciPy's sketch S has its one nonzero, sign[i], in row h[i].
    S is drawn by SciPy itself (applied to a sparse identity), so the same rng (or seed)
    gives the same S as scipy.linalg.clarkson_woodruff_transform on the data."""
    import scipy.linalg
    import scipy.sparse
    # rng arrives as SciPy's own decorator left it (see clarkson_woodruff_transform): a
    # Generator where the user passed rng=, else the raw positional / seed= / None value,
    # which SciPy reads the legacy way (check_random_state: an int seeds a RandomState,
    # None is NumPy's global RandomState).  Passed on by position, each is read as SciPy
    # reads it (a Generator is used as it is).
    S = scipy.linalg.clarkson_woodruff_transform(scipy.sparse.eye(n, format="csc"),
                                                 sketch_size, rng)
    S = scipy.sparse.coo_matrix(S)
    h = np.zeros(n, dtype=np.intp)
    sign = np.zeros(n, dtype=np.int8)
    h[S.col] = S.row
    sign[S.col] = np.rint(S.data).astype(np.int8)
    if n and not (np.abs(sign) == 1).all():       # SciPy's S: exactly one ±1 per column
        raise RuntimeError("clarkson_woodruff_transform: unexpected sketch from SciPy")
    return h, sign


class _Sketch:
    """S (k × n, S[h[i], i] = sign[i]) as a primitive parameter: its rows h, signs and k,
    compared by identity (jit replays the recorded object), and on the CPU its CSR matrix,
    built once and kept for the reverse pass."""

    def __init__(self, h, sign, k):
        self.h, self.sign, self.k = h, sign, k
        self._csr = None

    def csr(self):
        if self._csr is None:
            import scipy.sparse
            n = self.h.shape[0]
            self._csr = scipy.sparse.csr_matrix((self.sign, (self.h, np.arange(n))),
                                                shape=(self.k, n))
        return self._csr


def _sketch_impl(X, *, sketch):
    """S X for X (..., n, d): on the CPU a CSR product (about 7× NumPy's add.at along the
    rows, which a stack would take), the stack's columns side by side; on a device a
    signed scatter-add of X's rows."""
    xp = namespace_of(X)
    n, d = X.shape[-2], X.shape[-1]
    batch = X.shape[:-2]
    if X.size == 0 or sketch.k == 0:
        return xp.zeros(batch + (sketch.k, d), dtype=X.dtype)
    if xp is np:
        Xc = np.moveaxis(X, -2, 0).reshape(n, -1)               # (n, batch · d)
        Y = np.asarray(sketch.csr() @ Xc).reshape((sketch.k,) + batch + (d,))
        return np.moveaxis(Y, 0, -2).astype(X.dtype, copy=False)
    import cupyx
    out = xp.zeros(batch + (sketch.k, d), dtype=X.dtype)
    cupyx.scatter_add(out, (Ellipsis, sketch.h, slice(None)), X * sketch.sign[:, None])
    return out


def _gather_impl(Y, *, sketch):
    """Sᵀ Y for Y (..., k, d): row i is sign[i] · Y[h[i]]."""
    xp = namespace_of(Y)
    return xp.take(Y, sketch.h, axis=-2) * sketch.sign[:, None]


# S and Sᵀ, each the other's reverse rule and each its own forward rule: every order
_sketch = Primitive("cwt_sketch", _sketch_impl,
                    lambda g, needs, out, res, X, sketch: (ops.fit(_gather(g, sketch=sketch),
                                                                   X),),
                    lambda t, out, res, X, sketch: _sketch(t[0], sketch=sketch))
_gather = Primitive("cwt_gather", _gather_impl,
                    lambda g, needs, out, res, Y, sketch: (ops.fit(_sketch(g, sketch=sketch),
                                                                   Y),),
                    lambda t, out, res, Y, sketch: _gather(t[0], sketch=sketch))


def _transition_to_rng(old_name, position_num):
    """SciPy's own decorator for the rng/seed transition, so that every way of passing the
    random state (rng= keyword, by position, seed= keyword, not at all) means what it
    means to SciPy.  Should a later SciPy drop the transition, the function takes rng
    alone (keyword or position), as SciPy's own will then."""
    try:
        from scipy._lib._util import _transition_to_rng as transition
    except ImportError:                                     # pragma: no cover
        return lambda fun: fun
    return transition(old_name, position_num=position_num, replace_doc=False)


@_transition_to_rng("seed", 2)
def clarkson_woodruff_transform(input_matrix, sketch_size, rng=None):
    """scipy.linalg.clarkson_woodruff_transform, differentiable in the input: S A with
    SciPy's random sketch S (sketch_size × n, one ±1 per column).

    ``input_matrix`` is (..., n, d); a stack is sketched with one S, as SciPy does.  The
    random state is read exactly as SciPy 1.17 reads it, through SciPy's own decorator:
    ``rng=`` (keyword) goes through numpy.random.default_rng; a value passed by position,
    as ``seed=`` or not at all goes through check_random_state (an int seeds a
    RandomState, a RandomState or Generator is drawn from, None draws from NumPy's global
    RandomState); both ``rng`` and ``seed`` is SciPy's TypeError.  So the same call gives
    SciPy's S, and leaves a passed generator in the state SciPy leaves it; the result is
    SciPy's.  Under :func:`linalgad.jit` the sketch is drawn at the recording call only
    (the draw reads no traced value): replays reuse that S, where SciPy would draw anew
    from a shared generator or from None.  S A is a signed segment sum of A's rows: no
    dense S is formed (O(n d) work); the derivative is S itself and the gradient Sᵀ Ā is
    a gather of Ā's rows, signed (linear_maps.md, section 3).  The output dtype is SciPy's
    (S holds integers: a float32 input gives float64, an integer input an integer output).
    Sparse input matrices are not supported (pass a dense array).

    Valid when: always (a fixed linear map, given the rng).
    """
    (A,) = C.array_args("clarkson_woodruff_transform", input_matrix=input_matrix)
    v = C.peek(A)
    if v.ndim < 2:
        raise ValueError("clarkson_woodruff_transform: input_matrix must be a matrix or a "
                         f"stack of matrices (..., n, d); got shape {v.shape}")
    if v.dtype.kind not in "biufc":
        raise ValueError("clarkson_woodruff_transform: input_matrix must be numeric; got "
                         f"dtype {v.dtype}")
    if not isinstance(sketch_size, (int, np.integer)):
        raise TypeError("clarkson_woodruff_transform: sketch_size must be an integer; got "
                        f"{sketch_size!r}")
    k = int(sketch_size)
    n, d = v.shape[-2], v.shape[-1]
    if k < 0 or (k == 0 and n > 0):                 # SciPy: ValueError('high <= 0')
        raise ValueError("clarkson_woodruff_transform: sketch_size must be a positive "
                         "integer (nonnegative for a matrix without rows); got "
                         f"{sketch_size!r}")
    h, sign = _sketch_rows(n, k, rng)
    dtype = np.result_type(np.int64, v.dtype)
    if v.dtype != dtype:
        A = ops.astype(A, dtype)
    return _sketch(A, sketch=_Sketch(_like(h, v), _like(sign.astype(dtype), v), k))


def _cwt_reference(A, sketch_size, rng=None):
    import scipy.linalg
    return scipy.linalg.clarkson_woodruff_transform(A, sketch_size, rng=rng)


# -- registry -----------------------------------------------------------------------------------

def _random(rng, shape, dtype):
    x = rng.standard_normal(shape)
    if np.dtype(dtype).kind == "c":
        x = x + 1j * rng.standard_normal(shape)
    return x.astype(dtype)


def _graded(rng, n, batch, dtype):
    """A matrix whose rows and columns differ in scale by up to 2⁶ (balancing scales them;
    a wider grading would let the check's difference step, relative to the matrix's
    root-mean-square size, cross one of gebal's power-of-two comparisons).  No zeros: gebal permutes only where entries are exactly zero, which a
    difference step in a generic direction would change (the permuting branch is tested
    along directions that keep the zeros, tests/test_linear_maps.py)."""
    A = _random(rng, batch + (n, n), dtype)
    grade = 2.0 ** rng.integers(-3, 4, size=batch + (n, 1))
    A = A * grade / np.swapaxes(grade, -1, -2)
    return (A.astype(dtype),), {}


def _eigen_pairs(rng, n, batch, dtype):
    """(w, v) as numpy.linalg.eig returns them for a real matrix with only complex pairs:
    even size, every eigenvalue complex (no real eigenvalue whose imaginary part a
    difference step could make nonzero)."""
    m = 2 * max(1, n // 2)
    real = np.zeros((), dtype).real.dtype
    blocks = []
    for _ in range(m // 2):
        a, b = rng.uniform(-1, 1), rng.uniform(0.5, 2)
        blocks.append(np.array([[a, b], [-b, a]]))
    D = np.zeros((m, m))
    for i, blk in enumerate(blocks):
        D[2 * i:2 * i + 2, 2 * i:2 * i + 2] = blk
    X = rng.standard_normal(batch + (m, m)) + 2 * np.eye(m)
    A = X @ D @ np.linalg.inv(X)
    w, V = np.linalg.eig(A)
    if np.dtype(dtype).kind == "c":
        return (w.astype(dtype), V.astype(dtype)), {}
    # real dtypes: real eigenvalues (a diagonalizable real matrix), the trivial branch
    w, V = np.linalg.eigh(A + np.swapaxes(A, -1, -2))
    return (w.astype(real), V.astype(real)), {}


def _sketch_input(rng, n, batch, dtype):
    return (_random(rng, batch + (n + 3, 2), dtype),), {"sketch_size": 3, "rng": 7}


_DERIVATION = "docs/derivations/linear_maps.md"
_REFS = ("SciPy 1.17 scipy.linalg.matrix_balance, cdf2rdf, clarkson_woodruff_transform "
         "(the maps matched)",
         "Giles 2008 (linear maps: the adjoint is the reverse rule)",
         "Clarkson and Woodruff 2013, Low rank approximation and regression in input "
         "sparsity time (the sketch)")

RULES = (
    Rule(name="matrix_balance", fun=matrix_balance, primitive=ops._permute_rows,
         domains=(Domain("graded", _graded, "rows/columns scaled by powers of two (gebal "
                         "scales them)"),),
         derivation=_DERIVATION, reference=_matrix_balance_reference, references=_REFS,
         loss=lambda out: out[0]),
    Rule(name="cdf2rdf", fun=cdf2rdf, primitive=ops._matmul,
         domains=(Domain("eig_pairs", _eigen_pairs, "numpy.linalg.eig of a real matrix with "
                         "complex pairs only (real dtypes: a real spectrum)"),),
         derivation=_DERIVATION, reference=_cdf2rdf_reference, references=_REFS),
    Rule(name="clarkson_woodruff_transform", fun=clarkson_woodruff_transform,
         primitive=_sketch,
         domains=(Domain("tall", _sketch_input, "(n + 3) × 2 data, sketch size 3, rng 7"),),
         derivation=_DERIVATION, reference=_cwt_reference, references=_REFS),
)
