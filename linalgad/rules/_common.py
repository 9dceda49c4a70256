"""Math and argument handling shared by the rule families (private).

* argument checks with NumPy/SciPy's exceptions and messages that name the
  function and the shapes;
* dtype promotion (integers and float16 go to float32/float64 like SciPy);
* structured matrices read from one triangle (:func:`from_triangle`) and the
  matching projection of cotangents (:func:`triangle_cotangent`);
* stacked solves that broadcast the matrix's and the right-hand side's stacks
  (:func:`broadcast_solve`);
* the inverse of a batch of row permutations (gathers are ``ops.permute_rows``).
"""

from __future__ import annotations

import math

import numpy as np

from .. import ops
from .. import backend as _backend
from ..backend import LinAlgError, check_finite as _check_finite, namespace_of
from ..tape import Primitive, Tracer, compute as _tape_compute, expose as _tape_expose, \
    guard as _tape_guard, recording as _tape_recording
from ..testing import matrices as M


def value(x):
    """The plain array inside x (x itself when it is plain), as an array, for its values.

    Under linalgad.jit a recording that reads a traced value is not replayed (the value
    would be stale): use :func:`peek` for shapes and dtypes, :func:`guard` for checks.
    """
    v = ops.asarray_value(x)
    if not hasattr(v, "shape"):
        v = np.asarray(v)
    return v


def peek(x):
    """The plain array inside x, as an array, for its shape, dtype and type only."""
    v = ops._peek(x)
    if not hasattr(v, "shape"):
        v = np.asarray(v)
    return v


guard = _tape_guard
compute = _tape_compute      # values a rule computes on for itself (factors, a rank): replayed
expose = _tape_expose
recording = _tape_recording


def array_arg(x):
    """An array argument as the rules take it: traced values and arrays as they are; a
    list, a Python number or an np.matrix (whose * and ** are matrix products) as a plain
    NumPy array."""
    if isinstance(x, Tracer) or (hasattr(x, "shape") and not isinstance(x, np.matrix)):
        return x
    return np.asarray(x)


def array_args(op, **named):
    """array_arg of each named argument, in order; ValueError naming ``op`` for a None."""
    for name, x in named.items():
        if x is None:
            raise ValueError(f"{op}: {name} must be an array, not None")
    return tuple(array_arg(x) for x in named.values())


def promote(x, dtype):
    """x (an array argument: ``array_arg``) cast (differentiably) to dtype; unchanged when
    it already has it."""
    x = array_arg(x)
    v = ops._peek(x)
    if v.dtype == dtype:
        return x
    return ops.astype(x, dtype)      # (a byte-swapped array too: ops.astype makes it native)


_LAPACK_DTYPES = frozenset(np.dtype(t) for t in (np.float32, np.float64, np.complex64,
                                                  np.complex128))


def result_dtype(op, *values):
    """The inexact dtype a LAPACK-backed op computes in: booleans and integers of any size
    in float64 (NumPy's linalg rule; np.result_type would give float32 for int8), float16
    in float32 (SciPy's; LAPACK has no half precision), then the common type."""
    dtypes = [v.dtype for v in values]
    if all(d == dtypes[0] for d in dtypes) and dtypes[0] in _LAPACK_DTYPES:
        return dtypes[0]
    lifted = [np.dtype(np.float64) if d.kind in "biu" else
              np.dtype(np.float32) if d == np.float16 else d for d in dtypes]
    dtype = np.result_type(*lifted)
    if dtype not in _LAPACK_DTYPES:
        raise TypeError(f"{op}: unsupported dtype {dtype}")
    return dtype


def square_matrix(op, a, name="a"):
    """a's plain array (for its shape and dtype); a must be (..., n, n)."""
    v = peek(a)
    if v.ndim < 2 or v.shape[-1] != v.shape[-2]:
        raise LinAlgError(f"{op}: {name} must be a square matrix or a stack of square "
                          f"matrices (..., n, n); got shape {v.shape}")
    return v


def matrix(op, a, name="a"):
    v = peek(a)
    if v.ndim < 2:
        raise LinAlgError(f"{op}: {name} must be a matrix or a stack of matrices (..., m, n); "
                          f"got shape {v.shape}")
    return v


def checked(op, names, arrays, check_finite):
    """check_finite's scan of the (traced or plain) arrays, which raises ValueError naming
    the argument; under linalgad.jit it is repeated on every replay."""
    if check_finite:
        for name, a in zip(names, arrays):
            guard(a, lambda v, name=name: _check_finite(op, name, v))


def boolean(op, value, name, error=ValueError, message="{name} must be a boolean; got {shown}"):
    """A boolean argument (a Python or NumPy bool, or the integers 0 and 1), as bool; else
    ``error`` with ``message`` (formatted with the name and the value shown)."""
    if isinstance(value, (bool, np.bool_)) or (
            isinstance(value, (int, np.integer)) and value in (0, 1)):
        return bool(value)
    shown = f"an array of shape {value.shape}" if hasattr(value, "shape") else repr(value)
    raise error(f"{op}: " + message.format(name=name, shown=shown))


def prepare(op, a, check_finite=True, square=True):
    """The one-matrix argument of ``op``: shape checked, finite-checked, in its LAPACK dtype."""
    av = square_matrix(op, a) if square else matrix(op, a)
    dtype = result_dtype(op, av)
    checked(op, ("a",), (a,), check_finite)
    return promote(a, dtype)


def submatrix(x, rows=slice(None), cols=slice(None)):
    """x[..., rows, cols], differentiable."""
    return ops.getitem(x, (Ellipsis, rows, cols))


# -- orthonormal completions (qr 'complete', svd full_matrices) -------------------------

def require_unused(bar, message):
    """Raise ValueError(message) if a cotangent of completion columns is not zero."""
    if bar is not None and bool((value(bar) != 0).any()):
        raise ValueError(message)


def completion_tangent(Q1, Q1_dot, Q2):
    """Tangent of the completion columns Q₂ of [Q₁ Q₂]: −Q₁ (Q̇₁ᴴ Q₂).

    The convention that keeps [Q₁ Q₂] unitary to first order without turning
    Q₂ inside its own span (qr.md, section 4).
    """
    return -ops.matmul(Q1, ops.matmul(ops.mH(Q1_dot), Q2))


def stacks(op, core=2, error=ValueError, **shapes):
    """The broadcast stack shape of the named arrays' shapes (each with ``core`` trailing
    core dimensions); ``error`` naming ``op`` and the first two shapes when they do not
    broadcast, e.g. stacks("qz", A=a.shape, B=b.shape)."""
    try:
        return np.broadcast_shapes(*(s[:len(s) - core] for s in shapes.values()))
    except ValueError:
        (n1, s1), (n2, s2) = list(shapes.items())[:2]
        raise error(f"{op}: the stacks of {n1} {s1} and {n2} {s2} do not broadcast") from None


def rhs_shape(op, a_shape, b_shape):
    """Is b a vector?  Validates b against a (..., n, n) like numpy.linalg.solve (NumPy 2)."""
    n = a_shape[-1]
    vector = len(b_shape) == 1
    if (vector and b_shape[0] != n) or (not vector and (len(b_shape) < 2 or b_shape[-2] != n)):
        raise ValueError(f"{op}: a has shape {a_shape} and b has shape {b_shape}; b must be "
                         f"({n},) or (..., {n}, k)")
    if not vector and a_shape[:-2] != b_shape[:-2]:
        stacks(op, a=a_shape, b=b_shape)
    return vector


def broadcast_solve(A, b, apply):
    """Solve per matrix with ``apply(A, b)`` (equal stacks), broadcasting the stacks.

    One matrix against a stack of right-hand sides folds the stack into columns
    (one factorization serves them all).
    """
    a_batch, b_batch = A.shape[:-2], b.shape[:-2]
    if a_batch == b_batch:
        return apply(A, b)
    xp = namespace_of(A, b)
    n, k = b.shape[-2:]
    batch = np.broadcast_shapes(a_batch, b_batch)
    if not a_batch:
        cols = xp.moveaxis(xp.broadcast_to(b, batch + (n, k)), -2, 0).reshape(
            n, math.prod(batch) * k)                # (n, -1) is ambiguous at n = 0
        x = apply(A, cols)
        return xp.moveaxis(x.reshape((n,) + batch + (k,)), 0, -2)
    return apply(xp.broadcast_to(A, batch + A.shape[-2:]), xp.broadcast_to(b, batch + (n, k)))


def on_columns(solve_fn, b):
    """solve_fn on b as (..., n, k); a vector b (n,) goes through as (n, 1) and back."""
    shape = ops._shape(b)
    if len(shape) != 1:
        return solve_fn(b)
    x = solve_fn(ops.reshape(b, shape + (1,)))
    return ops.reshape(x, ops._shape(x)[:-1])


# -- the math every "op(A) x = b" rule shares ---------------------------------------------

def op(M_, trans):
    """op(M) for trans 0 (M), 1 (Mᵀ), 2 (Mᴴ)."""
    if trans == 0:
        return M_
    return ops.mT(M_) if trans == 1 else ops.mH(M_)


def adjoint_rhs(solve_op, x_bar, trans):
    """b̄ = op(A)⁻ᴴ x̄, given solve_op(rhs, t) that solves op_t(A) y = rhs.

    op(A)ᴴ is Aᴴ (trans 0), A (trans 2), or conj(A) for trans 1, solved as
    A conj(y) = conj(x̄).
    """
    if trans == 1:
        return ops.conj(solve_op(ops.conj(x_bar), 0))
    return solve_op(x_bar, 2 if trans == 0 else 0)


def cotangent_factors(b_bar, x, trans):
    """(p, q, negate): Ā of op(A) x = b is p q (−p q when ``negate``), the outer
    product −b̄ xᴴ, −conj(x) b̄ᵀ or −x b̄ᴴ for op = I, ᵀ, ᴴ.  The minus sign goes on the
    smaller side: the n×k factor when k ≤ n, else the n×n product."""
    n, k = ops._shape(x)[-2:]
    negate = k > n
    o = ops_for(b_bar, x)
    nb = b_bar if negate else o.negative(b_bar)
    if trans == 0:
        return nb, o.mH(x), negate
    if trans == 2:
        return x, o.mH(nb), negate
    return o.conj(x), o.mT(nb), negate


ops_for = ops.ops_for


def fold_stack(x):
    """(..., n, k) -> (n, prod(...)·k): a stack of column blocks side by side, so that
    Σ over the stack of p qᴴ is one product fold(p) fold(q)ᴴ (one matrix's cotangent
    from a stack of right-hand sides: a batched product and a sum over (B, n, n) took
    6-10 times the product of the folded factors, n = 64 against 1,000 columns)."""
    shape = ops._shape(x)
    return ops.reshape(ops.moveaxis(x, -2, 0), (shape[-2], math.prod(shape[:-2]) * shape[-1]))


def _fold_factors(p, q):
    """(p, q) of a stack of products p q, p (..., n, k) and q (..., k, m), as one product's
    factors (n, Σk) and (Σk, m)."""
    return fold_stack(p), ops.mT(fold_stack(ops.mT(q)))


def folds(a_shape, x):
    """Whether the cotangent of one matrix (a_shape 2-D) comes from a stack x (..., n, k)."""
    return a_shape is not None and len(a_shape) == 2 and len(ops._shape(x)) > 2


def solve_cotangent(b_bar, x, trans, project=None, a_shape=None):
    """Ā of op(A) x = b (cotangent_factors' product).

    ``project=(lower, k)``: only tril(·, k) (triu) of it, by ops.tri_matmul.  ``a_shape``
    of one matrix with x a stack: the stack summed inside one product (fold_stack).
    """
    p, q, negate = cotangent_factors(b_bar, x, trans)
    if folds(a_shape, x):
        p, q = _fold_factors(p, q)
    if project is None:
        G = ops.matmul(p, q)
    else:
        G = ops.tri_matmul(p, q, k=project[1], lower=project[0])
    if negate:
        return np.negative(G, out=G) if type(G) is np.ndarray else -G
    return G


def fitted_pair(pair, needs, a, b):
    """(ā, b̄) of a fused kernel's pair, each fitted to its input where ``needs`` asks for it
    (None for the other); None where the kernel declined (pair None)."""
    if pair is None:
        return None
    return (ops.fit(pair[0], a) if needs[0] else None,
            ops.fit(pair[1], b) if needs[1] else None)


def split_cotangent(lower, upper, trans, a_shape=None):
    """tril(Ā₁, −1) + triu(Ā₂) in one array, Ā₁ and Ā₂ the solve cotangents of the
    (b̄, x) pairs ``lower`` and ``upper`` (the two triangles of one packed LU factor);
    ``a_shape`` as for solve_cotangent."""
    p, q, negate = cotangent_factors(*lower, trans)
    r, s, _ = cotangent_factors(*upper, trans)
    if folds(a_shape, p):
        (p, q), (r, s) = _fold_factors(p, q), _fold_factors(r, s)
    G = ops.split_matmul(p, q, r, s, k=0)
    return -G if negate else G


def per_matrix_scalar(x):
    """A stack of scalars (...) as (..., 1, 1), to scale a stack of matrices."""
    return ops.expand_dims(ops.expand_dims(x, -1), -1)


def per_matrix(fn, *arrays, cores):
    """fn applied matrix by matrix over the broadcast stack (for NumPy/SciPy references).

    ``cores[i]`` is the number of trailing core dimensions of ``arrays[i]``.
    """
    batch = np.broadcast_shapes(*(a.shape[:a.ndim - c] for a, c in zip(arrays, cores)))
    flat = [np.broadcast_to(a, batch + a.shape[a.ndim - c:]).reshape((-1,) + a.shape[a.ndim - c:])
            for a, c in zip(arrays, cores)]
    out = np.stack([fn(*xs) for xs in zip(*flat)])
    return out.reshape(batch + out.shape[1:])


# -- structured matrices ---------------------------------------------------------------

def _triangle_impl(x, lower, hermitian, to_full):
    """to_full: the matrix read from one triangle of x; else: the adjoint map (a cotangent)."""
    xp = namespace_of(x)
    if to_full:
        return _backend.full_from_triangle(xp, x, lower, hermitian)
    return _backend.triangle_cotangent(xp, x, lower, hermitian)


# The two maps are linear and adjoint (w.r.t. <X, Y> = Re tr(XᴴY)): each one's reverse
# rule is the other, its forward rule itself.
_triangle = Primitive(
    "triangle", _triangle_impl,
    lambda ct, needs, out, res, x, lower, hermitian, to_full:
        (ops.fit(_triangle(ct, lower=lower, hermitian=hermitian, to_full=not to_full), x),),
    lambda t, out, res, x, lower, hermitian, to_full:
        _triangle(t[0], lower=lower, hermitian=hermitian, to_full=to_full))


def from_triangle(A, lower, hermitian):
    """The full symmetric (Hermitian) matrix a solver sees from one triangle of A.

    tril(A, −1) + tril(A, −1)ᴴ + Re diag(A) (ᵀ and diag(A) for complex symmetric).
    """
    return _triangle(A, lower=bool(lower), hermitian=bool(hermitian), to_full=True)


def triangle_cotangent(G, lower, hermitian=True):
    """Cotangent of the triangle read by :func:`from_triangle`, from that of the full matrix.

    tril(G + Gᴴ) − Re diag(G) (Gᵀ and diag(G) for complex symmetric): the
    off-diagonal entries appear twice in the full matrix, the diagonal once.
    The adjoint of :func:`from_triangle`.
    """
    return _triangle(G, lower=bool(lower), hermitian=bool(hermitian), to_full=False)


def rect_domain(m, n, **kw):
    """Registry domain: a well-conditioned m×n matrix.  Tall: a slice of a random square
    one (its singular values interlace, so cond ≤ 10); wide: [B₁ B₂] with B₁ a random
    well-conditioned m×m block, since LU and QR of a wide matrix need B₁ invertible and
    their derivatives grow with ‖B₁⁻¹‖ (a slice leaves it uncontrolled)."""
    def make(rng, _n, batch, dtype):
        A = M.random_general(rng, max(m, n), batch, dtype)[..., :m, :n]
        if m < n:
            A = np.concatenate([M.random_general(rng, m, batch, dtype), A[..., m:]], axis=-1)
        return (np.ascontiguousarray(A),), dict(kw)
    return make


def eye_like(n, dtype, like, m=None):
    xp = namespace_of(like)
    return xp.eye(n, m, dtype=dtype)


# -- banded matrices -------------------------------------------------------------------------

def bandwidth(a):
    """(lower, upper) bandwidth of the nonzeros of a plain (..., n, n) stack: the union of
    its matrices' bands (SciPy's assume_a='banded' detects each matrix's own)."""
    xp = namespace_of(a)
    if a.size == 0:
        return 0, 0
    if xp is np and a.ndim == 2:
        import scipy.linalg                 # its compiled scan: a third of the one below
        lower, upper = scipy.linalg.bandwidth(a)
        return int(lower), int(upper)
    nz = (a != 0).reshape((-1,) + a.shape[-2:]).any(axis=0)
    i, j = xp.nonzero(nz)
    if not i.size:
        return 0, 0
    d = i - j
    return max(int(d.max()), 0), max(int(-d.min()), 0)


def band(a, lower, upper):
    """a with the entries outside the band (lower sub-, upper superdiagonals) zeroed,
    differentiable: those entries get no gradient."""
    return ops.tril(ops.triu(a, -lower), upper)


# -- row permutations ---------------------------------------------------------------------

def inverse_permutation(perm):
    xp = namespace_of(perm)
    return xp.argsort(perm, axis=-1)


def bilinear_jvp(resolve):
    """The forward rule of a bilinear primitive f(a, b): f(ȧ, b) + f(a, ḃ).  ``resolve``
    returns f (called at use, since f is the primitive this rule is part of)."""
    def jvp(tangents, out, res, a, b):
        f = resolve()
        a_dot, b_dot = tangents
        t = None if a_dot is None else f(a_dot, b)
        if b_dot is not None:
            u = f(a, b_dot)
            t = u if t is None else t + u
        return t
    return jvp


def adjoint_pair(name, impl, adj_name, adj_impl, shape_params=None):
    """Primitives (f, fᴴ) for a linear map f and its adjoint: each is the other's reverse
    rule and its own forward rule, so every order of derivative stays on the pair.
    ``shape_params(G)``: f's keyword parameters read off the value G of fᴴ's argument (its
    shape), e.g. the m × n of a Toeplitz matrix assembled from its diagonals."""
    params_of = shape_params or (lambda G: {})
    f = Primitive(name, impl,
                  lambda g, needs, out, res, v, **p: (ops.fit(fh(g), v),),
                  lambda t, out, res, v, **p: f(t[0], **p))
    fh = Primitive(adj_name, adj_impl,
                   lambda g, needs, out, res, G: (ops.fit(f(g, **params_of(peek(G))), G),),
                   lambda t, out, res, G: fh(t[0]))
    return f, fh


def matrix_shape(G):
    """f's m × n parameters from a matrix argument of its adjoint (adjoint_pair)."""
    return {"m": G.shape[-2], "n": G.shape[-1]}
