"""Transforms with JAX's names and meanings.

``vjp`` and ``jvp`` are the two primitives; everything else is built from
them: ``grad`` and ``value_and_grad`` pull back a cotangent of 1,
``jacrev``/``jacfwd`` pull back (push forward) a basis, ``hvp`` is
forward-over-reverse, and ``checkpoint`` trades recomputation for memory.
``jit`` records the kernels one call runs and replays them on later calls with
inputs of the same shapes and dtypes, without the Python of the rules and the tape.
Arguments and results may be arrays or nested tuples/lists/dicts of arrays.
"""

from __future__ import annotations

import functools
import operator
import os
import warnings

import numpy as np

from . import ops
from ._tree import tree_flatten, tree_unflatten
from .tape import (ForwardTrace, ForwardTracer, JitTrace, JitTracer, Primitive, Retrace,
                   ReverseTrace, Tracer, backward_pass, finish, peek)
from .tape import _snapshot

__all__ = ["vjp", "jvp", "grad", "value_and_grad", "jacrev", "jacfwd", "hvp",
           "checkpoint", "stop_gradient", "debug_nans", "jit"]


# -- NaN debugging ----------------------------------------------------------------

_DEBUG_NANS = [os.environ.get("LINALGAD_DEBUG_NANS", "") not in ("", "0", "false", "False")]


def debug_nans(enable=True):
    """Stop at the first rule whose cotangent is not finite, naming the rule.

    Also enabled by the environment variable LINALGAD_DEBUG_NANS=1.
    """
    _DEBUG_NANS[0] = bool(enable)


def _check_finite_cts(prim, cts):
    for i, g in enumerate(cts):
        if g is None:
            continue
        v = ops.asarray_value(g)
        if not np.all(np.isfinite(v)):
            raise FloatingPointError(
                f"debug_nans: the backward pass of {prim.name} produced a non-finite "
                f"cotangent for its argument {i}")


# -- input checking ---------------------------------------------------------------

def _as_input(x, what):
    """Validate a differentiable input; returns a float/complex array (or tracer)."""
    if type(x) is np.ndarray and x.dtype.kind in "fc":
        return x
    if isinstance(x, Tracer):
        return x
    if isinstance(x, (bool, np.bool_)):
        raise TypeError(f"{what}: boolean inputs cannot be differentiated")
    if isinstance(x, (int, float, complex, np.number)):
        x = np.asarray(x)
    if not hasattr(x, "dtype") or not hasattr(x, "shape"):
        x = np.asarray(x)
    if x.dtype.kind not in "fc":
        raise TypeError(
            f"{what}: inputs to differentiate must be floating point or complex, got dtype "
            f"{x.dtype} (an integer input has no gradient; pass e.g. x.astype(float))")
    return x


def _shape_dtype(x):
    return tuple(x.shape), np.dtype(x.dtype)


def _ct_like(ct, primal, what):
    """Check a user-supplied cotangent/tangent against its primal."""
    ct_arr = ct if isinstance(ct, Tracer) or hasattr(ct, "shape") else np.asarray(ct)
    pshape, pdtype = _shape_dtype(primal)
    if tuple(ct_arr.shape) != pshape:
        raise ValueError(f"{what} has shape {tuple(ct_arr.shape)} but the value it pairs with has "
                         f"shape {pshape}")
    cdtype = np.dtype(ct_arr.dtype)
    if cdtype.kind == "c" and pdtype.kind != "c":
        raise ValueError(f"{what} has complex dtype {cdtype} but the value it pairs with is real "
                         f"({pdtype})")
    if cdtype.kind not in "fc":
        raise ValueError(f"{what} has dtype {cdtype}; expected a floating dtype like {pdtype}")
    if cdtype != pdtype and not isinstance(ct, Tracer) and pdtype.kind in "fc":
        # computed in the value's precision: a float32 cotangent of a float64 output
        # must not pull the backward pass down to single precision
        ct_arr = ct_arr.astype(pdtype)
    return ct_arr


def _select(args, argnums, fname):
    n = len(args)
    if type(argnums) is int:
        if 0 <= argnums < n:
            return (argnums,), True
        nums, single = (argnums,), True
    elif isinstance(argnums, (int, np.integer)):
        nums, single = (operator.index(argnums),), True
    else:
        try:
            nums, single = tuple(operator.index(i) for i in argnums), False
        except TypeError:
            raise TypeError(f"{fname}: argnums must be an int or a tuple of ints, got "
                            f"{argnums!r}") from None
        if not nums:
            raise ValueError(f"{fname}: argnums {argnums!r} selects no argument")
    for i in nums:
        if not -n <= i < n:
            raise ValueError(f"{fname}: argnums {argnums} out of range for {n} "
                             "positional arguments")
    nums = tuple(i % n for i in nums)
    if len(set(nums)) != len(nums):
        raise ValueError(f"{fname}: argnums {argnums!r} names an argument twice")
    return nums, single


def _restrict(fun, args, kwargs, argnums, fname):
    """fun as a function of the arguments chosen by ``argnums`` only.

    Returns (partial, chosen arguments, whether argnums was a single int).
    """
    nums, single = _select(args, argnums, fname)
    if not kwargs and len(nums) == len(args) and nums == tuple(range(len(args))):
        return fun, args, single          # every argument, in order: fun itself

    def partial(*xs):
        full = list(args)
        for i, x in zip(nums, xs):
            full[i] = x
        return fun(*full, **kwargs)
    return partial, tuple(args[i] for i in nums), single


# -- vjp ------------------------------------------------------------------------

class _Recording:
    """A forward pass recorded on a fresh reverse trace (what vjp keeps)."""

    __slots__ = ("trace", "leaves", "treedef", "in_nodes", "out", "out_def", "out_refs",
                 "out_vals", "aux")


def _record(fun, primals, has_aux, what):
    rec = _Recording()
    rec.trace = trace = ReverseTrace()
    leaves, rec.treedef = tree_flatten(primals)
    rec.leaves = leaves = [_as_input(x, what) for x in leaves]
    boxed = [trace.new_input(x) for x in leaves]
    rec.in_nodes = [b.node for b in boxed]
    result = fun(*tree_unflatten(rec.treedef, boxed))
    rec.aux = None
    if has_aux:
        if not (isinstance(result, tuple) and len(result) == 2):
            raise ValueError("has_aux=True requires fun to return a pair (output, aux)")
        result, aux = result
        rec.aux = _strip(aux, trace)
    out_leaves, rec.out_def = tree_flatten(result)
    rec.out_refs = out_refs = []
    rec.out_vals = out_vals = []
    for o in out_leaves:
        if isinstance(o, Tracer) and o._trace is trace:
            out_refs.append((o.node, o.index))
            out_vals.append(o.value)
        else:
            if not hasattr(o, "shape"):
                o = np.asarray(o)
            out_refs.append(None)
            out_vals.append(o)
    rec.out = tree_unflatten(rec.out_def, out_vals)
    finish(trace)              # a tracer of it that leaked out raises if used later
    return rec


def _pull(rec, ct_leaves):
    """Sweep the recording backwards from validated output cotangents."""
    refs, cts = [], []
    for ref, ct in zip(rec.out_refs, ct_leaves):
        if ref is not None:
            refs.append(ref)
            cts.append(ct)
    acc = backward_pass(rec.trace, refs, cts, _check_finite_cts if _DEBUG_NANS[0] else None)
    grads = []
    handed = set()
    for node, x in zip(rec.in_nodes, rec.leaves):
        g = acc[node.idx]
        if g is None:
            g = ops.zeros_like(x)
        elif ops._is_complex(g) and not ops._is_complex(x):
            g = ops.real(g)
        if g.__class__ is np.ndarray and (id(g) in handed or not g.flags.writeable):
            # each gradient its own writable array: a rule may hand one cotangent to two
            # arguments (add's) or a broadcast view (sum's), and a caller that updates one
            # in place must not change the other, nor fail
            g = g.copy()
        handed.add(id(g))
        grads.append(g)
    return tree_unflatten(rec.treedef, grads)


def vjp(fun, *primals, has_aux=False):
    """Evaluate ``fun(*primals)`` and return ``(out, vjp_fn)`` (plus aux).

    ``vjp_fn(out_bar)`` returns one cotangent per primal, shaped like it.
    ``out_bar`` must have the structure, shapes and dtypes of ``out``.
    """
    rec = _record(fun, primals, has_aux, "vjp")

    def vjp_fn(out_bar):
        ct_leaves, ct_def = tree_flatten(out_bar)
        if ct_def != rec.out_def:
            raise ValueError(f"vjp: the cotangent's structure {ct_def!r} does not match the "
                             f"output's {rec.out_def!r}")
        ct_leaves = [_ct_like(ct, val, "the cotangent passed to the vjp function")
                     for ct, val in zip(ct_leaves, rec.out_vals)]
        return _pull(rec, ct_leaves)

    if has_aux:
        return rec.out, vjp_fn, rec.aux
    return rec.out, vjp_fn


def _strip(tree, trace):
    """Remove this trace's boxes from an aux output."""
    leaves, d = tree_flatten(tree)
    return tree_unflatten(d, [x.value if isinstance(x, Tracer) and x._trace is trace else x
                              for x in leaves])


# -- jvp ------------------------------------------------------------------------

def jvp(fun, primals, tangents, has_aux=False):
    """Return ``(fun(*primals), J tangents)`` (and aux), forward mode."""
    if not isinstance(primals, (tuple, list)) or not isinstance(tangents, (tuple, list)):
        raise TypeError("jvp: primals and tangents must be tuples (or lists) of arguments")
    leaves, treedef = tree_flatten(tuple(primals))
    t_leaves, t_def = tree_flatten(tuple(tangents))
    if t_def != treedef:
        raise ValueError(f"jvp: tangents' structure {t_def!r} does not match primals' {treedef!r}")
    trace = ForwardTrace()
    boxed = []
    for x, t in zip(leaves, t_leaves):
        x = _as_input(x, "jvp")
        t = _ct_like(t, x, "the tangent passed to jvp")
        boxed.append(ForwardTracer(x, trace, t))
    result = fun(*tree_unflatten(treedef, boxed))
    if has_aux:
        if not (isinstance(result, tuple) and len(result) == 2):
            raise ValueError("has_aux=True requires fun to return a pair (output, aux)")
        result, aux = result
    out_leaves, out_def = tree_flatten(result)
    vals, tans = [], []
    for o in out_leaves:
        if isinstance(o, Tracer) and o._trace is trace:
            vals.append(o.value)
            t = o.tangent
            tans.append(t if ops._shape(t) == ops._shape(o.value)
                        else ops.broadcast_to(t, ops._shape(o.value)))
        else:
            o = o if hasattr(o, "shape") else np.asarray(o)
            vals.append(o)
            tans.append(ops.zeros_like(o))
    out = (tree_unflatten(out_def, vals), tree_unflatten(out_def, tans))
    if has_aux:
        out = out + (_strip(aux, trace),)
    finish(trace)
    return out


# -- grad family ----------------------------------------------------------------

_ONES = {}   # dtype -> read-only NumPy scalar 1: the seed cotangent of grad, made once


def _one(out):
    """The cotangent 1 of a scalar output (read-only: no rule may write into it)."""
    if type(out) is np.ndarray or isinstance(out, np.generic):
        one = _ONES.get(out.dtype)
        if one is None:
            one = np.ones((), dtype=out.dtype)
            one.flags.writeable = False
            _ONES[out.dtype] = one
        return one
    return ops.ones_like(out)


def value_and_grad(fun, argnums=0, has_aux=False):
    """Return a function computing ``(fun(*args), gradient)``.

    ``fun`` must return a real scalar (shape ``()``).  The gradient has the
    structure of ``args[argnums]`` (a tuple when argnums is a tuple).  For a
    complex input the gradient is ∂L/∂Re x + i ∂L/∂Im x, so ``x - step * g``
    descends.
    """

    @functools.wraps(fun)
    def value_and_grad_fun(*args, **kwargs):
        partial, chosen, single = _restrict(fun, args, kwargs, argnums, "grad")
        rec = _record(partial, chosen, has_aux, "grad")
        out = rec.out
        shape = getattr(out, "shape", None)
        if shape is None or tuple(shape) != ():
            raise ValueError(f"grad requires a scalar output (shape ()), but the function returned "
                             f"shape {shape if shape is not None else type(out).__name__}; use "
                             "jacrev or vjp for non-scalar outputs")
        kind = out.dtype.kind
        if kind != "f":
            if kind == "c":
                raise TypeError("grad requires a real output; the function returned dtype "
                                f"{out.dtype} (take .real or abs() of it, or use vjp)")
            raise TypeError(f"grad requires a floating output, got dtype {out.dtype}")
        grads = _pull(rec, [_one(out)])
        g = grads[0] if single else grads
        if has_aux:
            return (out, rec.aux), g
        return out, g

    return value_and_grad_fun


def grad(fun, argnums=0, has_aux=False):
    """Return a function computing the gradient of the scalar ``fun``."""
    vg = value_and_grad(fun, argnums, has_aux)

    @functools.wraps(fun)
    def grad_fun(*args, **kwargs):
        (out, g) = vg(*args, **kwargs)
        if has_aux:
            return g, out[1]
        return g

    return grad_fun


def _basis(x, what, role="inputs"):
    """Unit vectors spanning x's (real) entries, each shaped like x (from its shape and
    dtype alone: no value is read, so jit can replay a Jacobian).  ``role``: what x is
    to the function (jacfwd spans its inputs, jacrev its outputs)."""
    v = peek(x)
    if not hasattr(v, "dtype"):
        v = np.asarray(v)
    if np.dtype(v.dtype).kind == "c":
        raise TypeError(f"{what}: complex {role} are not supported (the Jacobian of a "
                        "non-holomorphic map is not a complex matrix); use jvp/vjp, or split "
                        "into real and imaginary parts")
    xp = ops._xp(v)
    eye = xp.eye(v.size, dtype=v.dtype)
    return [eye[i].reshape(v.shape) for i in range(v.size)]


def _jacobian_tree(out_leaves, out_def, in_leaves, in_def, block, single):
    """The Jacobian as JAX nests it: the output's structure, each output leaf holding the
    inputs' structure (a tuple over the arguments unless ``single``), each entry the
    block ``block(k, i)`` of output leaf k and input leaf i, shaped
    out_k.shape + in_i.shape."""
    per_out = []
    for k in range(len(out_leaves)):
        jt = tree_unflatten(in_def, [block(k, i) for i in range(len(in_leaves))])
        per_out.append(jt[0] if single else jt)
    return tree_unflatten(out_def, per_out)


def _empty_block(o, x):
    dtype = np.result_type(peek(o).dtype, peek(x).dtype)
    return np.zeros(tuple(ops._shape(o)) + tuple(ops._shape(x)), dtype=dtype)


def jacrev(fun, argnums=0, has_aux=False):
    """Jacobian by reverse mode: one VJP per output entry.

    The block for an output leaf o and an input leaf x has shape
    ``o.shape + x.shape``; inputs and outputs may be nested tuples, lists and
    dicts of arrays, nested in the result as JAX nests them (the output's
    structure outside, the input's inside).
    """

    @functools.wraps(fun)
    def jac_fun(*args, **kwargs):
        partial, chosen, single = _restrict(fun, args, kwargs, argnums, "jacrev")
        res = vjp(partial, *chosen, has_aux=has_aux)
        out, vjp_fn = res[0], res[1]
        out_leaves, out_def = tree_flatten(out)
        in_leaves, in_def = tree_flatten(tuple(chosen))
        rows = []        # rows[k][e]: the input leaves' cotangents for entry e of output k
        for k, o in enumerate(out_leaves):
            per_entry = []
            for e in _basis(o, "jacrev", "outputs"):
                ct = [e if j == k else ops.zeros_like(other)
                      for j, other in enumerate(out_leaves)]
                per_entry.append(tree_flatten(vjp_fn(tree_unflatten(out_def, ct)))[0])
            rows.append(per_entry)

        def block(k, i):
            o, x = out_leaves[k], in_leaves[i]
            if not rows[k]:
                return _empty_block(o, x)
            J = ops.stack([r[i] for r in rows[k]], axis=0)
            return ops.reshape(J, tuple(ops._shape(o)) + tuple(ops._shape(x)))

        J = _jacobian_tree(out_leaves, out_def, in_leaves, in_def, block, single)
        return (J, res[2]) if has_aux else J

    return jac_fun


def jacfwd(fun, argnums=0, has_aux=False):
    """Jacobian by forward mode: one JVP per input entry.

    Shapes and nesting as :func:`jacrev`'s.
    """

    @functools.wraps(fun)
    def jac_fun(*args, **kwargs):
        partial, chosen, single = _restrict(fun, args, kwargs, argnums, "jacfwd")
        in_leaves, in_def = tree_flatten(tuple(chosen))
        cols = []        # cols[i][e]: the output leaves' tangents for entry e of input i
        aux = out = None
        for i, x in enumerate(in_leaves):
            per_entry = []
            for e in _basis(x, "jacfwd"):
                t = [e if j == i else ops.zeros_like(other) for j, other in enumerate(in_leaves)]
                res = jvp(partial, chosen, tree_unflatten(in_def, t), has_aux=has_aux)
                out, tangent = res[0], res[1]
                if has_aux:
                    aux = res[2]
                per_entry.append(tree_flatten(tangent)[0])
            cols.append(per_entry)
        if out is None:        # no input has an entry: the value alone
            out = partial(*chosen)
            if has_aux:
                out, aux = out
        out_leaves, out_def = tree_flatten(out)

        def block(k, i):
            o, x = out_leaves[k], in_leaves[i]
            if not cols[i]:
                return _empty_block(o, x)
            J = ops.stack([c[k] for c in cols[i]], axis=-1)
            return ops.reshape(J, tuple(ops._shape(o)) + tuple(ops._shape(x)))

        J = _jacobian_tree(out_leaves, out_def, in_leaves, in_def, block, single)
        return (J, aux) if has_aux else J

    return jac_fun


def hvp(fun, primals, tangents, argnums=None):
    """Hessian-vector product H v of a scalar ``fun``, forward-over-reverse.

    ``primals`` and ``tangents`` are tuples of the arguments and of the
    directions.  By default every argument is differentiated and the result
    is a tuple mirroring ``primals`` (like a VJP function's result); with an
    int ``argnums`` it is the single array H v for that argument.
    """
    primals = tuple(primals)
    tangents = tuple(tangents)
    if argnums is None:
        argnums = tuple(range(len(primals)))
    g = grad(fun, argnums=argnums)
    return jvp(g, primals, tangents)[1]


# -- stop_gradient ----------------------------------------------------------------

def stop_gradient(x):
    """The value of x, treated as a constant by every transform."""
    leaves, d = tree_flatten(x)
    return tree_unflatten(d, [_constant_of(v) for v in leaves])


def _constant_of(x):
    # every trace removed but a jit recording's, which is a value and not a derivative
    while isinstance(x, Tracer) and x.__class__ is not JitTracer:
        x = x.value
    return x


# -- checkpoint -------------------------------------------------------------------

def checkpoint(fun):
    """Wrap ``fun`` so its intermediates are recomputed, not stored, for the backward pass.

    The wrapped function records one node on the tape holding only its
    inputs and outputs; its VJP runs ``fun`` again under a fresh trace.
    Gradients are identical; the memory a reverse pass keeps alive drops to
    the segment's inputs and outputs.  Keyword arguments and nested
    containers of arrays are differentiated like positional ones.  A ``fun``
    that closes over a value being differentiated (rather than taking it as
    an argument) cannot be recomputed on its own: it runs un-checkpointed,
    with exact gradients, and a warning says so.
    """

    @functools.wraps(fun)
    def checkpointed(*args, **kwargs):
        leaves, in_def = tree_flatten((args, kwargs))
        if not any(isinstance(x, Tracer) for x in leaves):
            return fun(*args, **kwargs)       # nothing of its own to differentiate
        out_def_box = []

        def flat_fun(*flat):
            a, kw = tree_unflatten(in_def, flat)
            o_leaves, o_def = tree_flatten(fun(*a, **kw))
            if not out_def_box:
                out_def_box.append(o_def)
            return tuple(o_leaves)

        name = getattr(fun, "__name__", "fun")
        try:
            outs = _checkpoint_primitive(flat_fun, name)(*leaves)
        except _ClosesOver:
            warnings.warn(f"checkpoint: {name} closes over a value being differentiated; it "
                          "runs without checkpointing (pass that value as an argument)",
                          stacklevel=2)
            return fun(*args, **kwargs)
        return tree_unflatten(out_def_box[0], list(outs))

    return checkpointed


class _ClosesOver(Exception):
    """A checkpointed function's kernel returned a traced value: it used one it closes over."""


def _checkpoint_primitive(flat_fun, name):
    def kernel(*flat):
        outs = flat_fun(*flat)
        if any(isinstance(o, Tracer) for o in outs):
            raise _ClosesOver(name)
        return outs
    return _traced_rule_primitive(f"checkpoint({name})", kernel, flat_fun,
                                  multiple_results=True)


def fused(name, kernel, reference, multiple_results=False):
    """A primitive whose value is ``kernel(*args, **params)`` and whose derivatives are
    those of ``reference(*args, **params)``.

    ``reference`` computes the same function with differentiable operations: it is
    the definition (the one a derivation document derives and the tests compare
    against); ``kernel`` is a fused fast path on plain arrays for it.  Under a
    first-order transform only the kernel runs; a derivative of the primitive
    (second order, or forward mode over it) is taken by tracing ``reference``,
    like :func:`checkpoint` re-traces its function.  ``multiple_results``: both
    return a tuple of arrays.
    """
    return _traced_rule_primitive(name, kernel, reference, multiple_results=multiple_results)


def _moving(ref, args, params, positions):
    """ref as a function of the arguments at ``positions`` only, the others fixed."""
    def part(*xs):
        full = list(args)
        for i, x in zip(positions, xs):
            full[i] = x
        return ref(*full, **params)
    return part


def _traced_rule_primitive(name, impl, ref, multiple_results):
    """Primitive(impl) whose VJP and JVP are those of the traced function ``ref``."""

    def traced_vjp(cts, needs, out, res, *args, **params):
        diff = [i for i, n in enumerate(needs) if n]
        _, pull = vjp(_moving(ref, args, params, diff), *[args[i] for i in diff])
        if multiple_results:
            cts = tuple(c if c is not None else ops.zeros_like(o) for c, o in zip(cts, out))
        grads = pull(cts)
        result = [None] * len(args)
        for i, g in zip(diff, grads):
            result[i] = g
        return tuple(result)

    def traced_jvp(tangents, out, res, *args, **params):
        moving = [i for i, t in enumerate(tangents) if t is not None]
        if not moving:
            return (None,) * len(out) if multiple_results else None
        t_out = jvp(_moving(ref, args, params, moving), tuple(args[i] for i in moving),
                    tuple(tangents[i] for i in moving))[1]
        return tuple(t_out) if multiple_results else t_out

    traced_vjp.__name__ = f"{name}_vjp"
    traced_jvp.__name__ = f"{name}_jvp"
    return Primitive(name, impl, traced_vjp, traced_jvp, multiple_results=multiple_results)


# -- jit --------------------------------------------------------------------------

JIT_CACHE_SIZE = 64      # recordings kept per jitted function (the oldest go first)
JIT_MAX_RETRACES = 8     # re-recordings on changed decisions before a signature runs eagerly
JIT_CONSTANT_WARN = 8    # recordings of one array signature with other constants: warn once
_ndarray = np.ndarray


class _Program:
    """A recording replayed: its steps compiled into one Python function of the input
    arrays (``fn``), which frees each intermediate after its last use."""

    __slots__ = ("fn", "nsteps", "retraces", "source")

    def __init__(self, trace, input_slots, out_def, outs):
        self.retraces = 0       # how often a changed decision had this signature recorded again
        keep = {s for is_slot, s in outs if is_slot}
        # dead code: a step whose results nothing reads (an output of lstsq the function
        # ignores, a cotangent no input needs) is not replayed; checks and recorded
        # decisions always are
        live = set(keep)
        steps = []
        for i in range(len(trace.steps) - 1, -1, -1):
            step = trace.steps[i]
            if step[2] and i not in trace.effects and live.isdisjoint(step[2]):
                continue
            live.update(step[1])
            steps.append(step)
        steps.reverse()
        steps = _fuse_inner_products(steps, keep)
        last = {}
        for i, (_, reads, writes) in enumerate(steps):
            for s in writes:
                last.setdefault(s, i)          # written and never read: dead at once
            for s in reads:
                last[s] = i
        dead = [[] for _ in steps]
        for s, i in last.items():
            if s not in keep:
                dead[i].append(s)
        self.nsteps = len(steps)
        self.fn, self.source = _compile(trace.template, tuple(input_slots), steps, dead,
                                        out_def, outs)


def _sum_of_product(x, y):
    """Σ x·y over every axis, as ``sum(multiply(x, y))`` computes it: for two C-ordered
    NumPy arrays of one shape and float or complex dtype one BLAS dot (no conjugation),
    without the product array; otherwise the two steps."""
    if (x.__class__ is _ndarray and y.__class__ is _ndarray and x.shape == y.shape
            and x.dtype == y.dtype and x.dtype.kind in "fc" and x.flags.c_contiguous
            and y.flags.c_contiguous):
        return np.dot(x.reshape(-1), y.reshape(-1))
    return ops._sum_impl(np.multiply(x, y))


def _fuse_inner_products(steps, keep):
    """The replay's one rewrite: a product x·y read only by a sum over every axis (the
    loss ⟨W, f(A)⟩ written as sum(W * f(A))) becomes one step, :func:`_sum_of_product`:
    one read of x and y where the product array cost a write and two reads (1000 of
    32×32: 0.85 → 0.34 ms)."""
    readers = {}
    for _, reads, _ in steps:
        for s in reads:
            readers[s] = readers.get(s, 0) + 1
    made_by = {}
    for i, ((kind, *data), _, writes) in enumerate(steps):
        if kind == "call" and data[0] is np.multiply and type(data[4]) is int:
            made_by[data[4]] = i
    fused, dropped = {}, set()
    for j, ((kind, *data), _, _) in enumerate(steps):
        if kind != "call" or data[0] is not ops._sum_impl:
            continue
        _, refs, params, dyn, out = data
        if (len(refs) != 1 or type(refs[0]) is not int or dyn or type(out) is not int
                or params.get("axis") is not None or params.get("keepdims")):
            continue
        m = refs[0]
        i = made_by.get(m)
        if i is None or readers.get(m) != 1 or m in keep:
            continue
        _, mrefs, mparams, mdyn, _ = steps[i][0][1:]
        if len(mrefs) != 2 or not all(type(r) is int for r in mrefs) or mparams or mdyn:
            continue
        fused[i] = (("call", _sum_of_product, mrefs, {}, (), out), tuple(mrefs), (out,))
        dropped.add(j)
    if not fused:
        return steps
    return [fused.get(i, step) for i, step in enumerate(steps) if i not in dropped]


def _compile(template, inputs, steps, dead, out_def, outs):
    """The replay as the source of one function: slot s is the local ``s<s>`` (an input is
    a parameter), a constant a global of the function, each step one call, and ``del``
    after an intermediate's last use.  Straight-line code has none of an interpreter
    loop's per-step cost (the slot list, the argument getters, a closure per step)."""
    computed = set(inputs)
    for _, _, writes in steps:
        computed.update(writes)
    ns = {"_unflatten": tree_unflatten, "_out_def": out_def, "_own": _own, "_copy": _copy}

    def ref(s):
        if s in computed:
            return f"s{s}"
        name = f"k{s}"
        ns[name] = template[s]
        return name

    def arg(r):
        if type(r) is int:
            return ref(r)
        kind, slots = r
        items = ", ".join(ref(x) for x in slots)
        return f"[{items}]" if kind is list else f"({items}{',' if len(slots) == 1 else ''})"

    def unpack(spec, value, lines, tag):
        for j, o in enumerate(spec):
            if type(o) is int:
                lines.append(f"    s{o} = {value}[{j}]")
            elif o is not None:
                name = f"{tag}_{j}"
                lines.append(f"    {name} = {value}[{j}]")
                unpack(o, name, lines, name)

    lines = [f"def replay({', '.join(f's{x}' for x in inputs)}):"]
    for i, ((kind, *data), _, _) in enumerate(steps):
        if kind == "item":
            src, index, dst = data
            lines.append(f"    s{dst} = {ref(src)}[{index}]")
        else:
            fn, refs, params, dyn, out = data
            ns[f"f{i}"] = fn
            args = [arg(r) for r in refs]
            dynamic = {k for k, _ in dyn}
            fixed = {k: v for k, v in params.items() if k not in dynamic}
            if fixed:
                ns[f"p{i}"] = fixed
                args.append(f"**p{i}")
            args.extend(f"{k}={arg(x)}" for k, x in dyn)
            call = f"f{i}({', '.join(args)})"
            if out is None:
                lines.append(f"    {call}")
            elif type(out) is int:
                lines.append(f"    s{out} = {call}")
            else:
                lines.append(f"    t{i} = {call}")
                unpack(out, f"t{i}", lines, f"t{i}")
        gone = [f"s{d}" for d in dead[i] if d in computed]
        if gone:
            lines.append(f"    del {', '.join(gone)}")
    results = []
    handed = set()
    for j, (is_slot, v) in enumerate(outs):
        if is_slot:
            # each result its own writable array, as an eager call's: a slot handed out
            # twice (one cotangent for two arguments) or a read-only view is copied
            if v in handed or v not in computed or v in inputs:
                results.append(ref(v) if v in inputs else f"_copy({ref(v)})")
            else:
                results.append(f"_own({ref(v)})")
            handed.add(v)
        elif isinstance(v, _Fresh):
            # an array constant (a folded cotangent is read-only and shared by every
            # replay): a fresh writable copy per call, as an eager call returns
            ns[f"o{j}"] = v.value
            results.append(f"o{j}.copy()")
        else:
            ns[f"o{j}"] = v
            results.append(f"o{j}")
    lines.append(f"    return _unflatten(_out_def, [{', '.join(results)}])")
    source = "\n".join(lines) + "\n"
    exec(compile(source, "<linalgad.jit replay>", "exec"), ns)
    return ns["replay"], source


def _own(x):
    """x, or a copy of it where it is a read-only NumPy array (a broadcast view)."""
    return x if x.__class__ is not np.ndarray or x.flags.writeable else x.copy()


def _copy(x):
    copy = getattr(x, "copy", None)
    return copy() if copy is not None else x


class _Fresh:
    """A result of the recording that is a folded constant: copied on every replay."""

    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value


class _Eager:
    """A signature whose recording cannot be replayed: the reason, kept for explain()."""

    __slots__ = ("why",)

    def __init__(self, why):
        self.why = why


def _is_array(x):
    return isinstance(x, np.ndarray) or (hasattr(x, "__cuda_array_interface__")
                                         and hasattr(x, "dtype"))


def _is_input(x):
    """A float or complex array: a replayed input (anything else is a constant)."""
    return _is_array(x) and x.dtype.kind in "fc"


def _leaf_key(x):
    """(key part, kind): kind 'array' for a replayed input, 'static' for a constant."""
    if _is_input(x):
        device = getattr(getattr(x, "device", None), "id", None)
        return (type(x), x.shape, x.dtype, x.strides, device), "array"
    if _is_array(x):
        # integer and boolean arrays (pivots, indices) are constants, keyed by content
        data = (x if isinstance(x, np.ndarray) else x.get()).tobytes()
        return (type(x), x.shape, x.dtype, data), "static"
    try:
        hash(x)
    except TypeError:
        return None, None
    return (type(x), x), "static"


def jit(fun):
    """``fun`` recorded once per input signature and replayed after.

    The first call with given argument shapes, dtypes and constants runs ``fun``
    eagerly (its result is the eager result) while linalgad writes down every
    kernel it runs: the rules' factorizations and solves, the transforms' backward
    passes (at first order, each rule's VJP as one step with its fused kernels), the
    tape's accumulations.  Later calls with arguments of the same signature run
    that list of kernels on the new arrays, without the rules' argument handling,
    the tape or the transforms' Python: ``jit(value_and_grad(loss))`` at n = 16
    takes about half the time of the eager call.

    What a signature is: the structure of the arguments, and for every leaf a
    float or complex array's type, shape, dtype and memory order (its values
    change freely between calls); the value of anything else (Python numbers,
    strings, integer and boolean arrays such as pivots), which is baked in.
    Arrays the function closes over are baked in too, as in ``jax.jit``, as they
    are at the recording call (a private copy of each writable one): writing into
    one afterwards reaches neither a replay's values nor its gradients, so pass
    values that change as arguments.
    Side effects of ``fun`` (printing,
    appending to a list) happen on recording calls only.

    Correctness does not rest on the function being "jittable": a recording
    that read a traced value into Python (a comparison, ``float(x)``, a rule that
    branches on values, ``lu_solve`` reading ``lu_factor``'s pivots) is
    detected and that signature runs eagerly from then on; ``explain()`` on the
    returned function says why.  Rules that decide something on values for
    themselves (lstsq's and pinv's numerical rank) record that decision: a replay
    on which it comes out otherwise (a new rank) stops and records the call again,
    and a signature whose decisions keep changing runs eagerly.  Kernels re-check
    what they check eagerly (singular matrices, ``check_finite``) on every replay,
    and their own choices (a Jacobi kernel for a stack, LAPACK for a badly
    conditioned matrix) are made again on the new values.  A replay that raises
    (a singular matrix, say) is not the last word: that call runs eagerly, which
    raises the same error, or returns what the function makes of it (``cond``
    of a singular matrix is inf; a ``try``/``except`` in the function catches it).  Called with traced arguments (inside ``grad`` of
    something else), the function runs eagerly and is differentiated as usual.
    """
    cache = {}
    constants_seen = {}       # array-only signature -> recordings with other constants

    @functools.wraps(fun)
    def jitted(*args, **kwargs):
        if _DEBUG_NANS[0]:
            # debugging: every call eager, so that the check runs in each rule's reverse
            # pass (a replay has none) and no recording outlives the switch
            return fun(*args, **kwargs)
        if not kwargs:
            # the common call, positional float arrays only: keyed by (shape, dtype, strides)
            key = []
            for x in args:
                if type(x) is not _ndarray or x.dtype.kind not in "fc":
                    break
                key.append((x.shape, x.dtype, x.strides))
            else:
                key = tuple(key)
                return _use(key, cache.get(key), args, args, kwargs)
        leaves, treedef = tree_flatten((args, kwargs))
        parts = [treedef.exact]
        arrays = []
        static = False
        for x in leaves:
            if isinstance(x, Tracer):
                return fun(*args, **kwargs)           # inside another transform
            k, kind = _leaf_key(x)
            if kind is None:
                return fun(*args, **kwargs)           # an unhashable constant
            parts.append(k)
            if kind == "array":
                arrays.append(x)
            else:
                static = True
        key = tuple(parts)
        entry = cache.get(key)
        if entry is None and static:
            _count_constants(key, parts, leaves)
        return _use(key, entry, arrays, args, kwargs)

    def _count_constants(key, parts, leaves):
        """A recording for constants (Python numbers, integer arrays) not seen with these
        array shapes: after JIT_CONSTANT_WARN of them, say once that such a value is
        baked in (jax.jit traces Python floats; this does not)."""
        dynamic = tuple(p for p, x in zip(parts[1:], leaves) if _is_input(x))
        count = constants_seen[dynamic] = constants_seen.get(dynamic, 0) + 1
        if count == JIT_CONSTANT_WARN:
            warnings.warn(
                f"jit: {getattr(fun, '__name__', fun)!r} has been recorded {count} times for "
                "new values of its Python-number or integer-array arguments, which are "
                "constants of a recording (each new value records the call again and is "
                "kept, up to JIT_CACHE_SIZE recordings); pass a value that changes as a "
                "float array, e.g. np.asarray(step), to have it replayed",
                RuntimeWarning, stacklevel=3)

    def _use(key, entry, arrays, args, kwargs):
        """The call by its cache entry: the replay (on the arrays), a first call that
        records, or the function itself (a signature that runs eagerly)."""
        if entry.__class__ is _Program:
            try:
                return entry.fn(*arrays)
            except Retrace:
                return _again(key, entry, args, kwargs)
            except Exception:
                return fun(*args, **kwargs)     # eager decides (see the docstring)
        if entry is None:
            return _first_call(key, args, kwargs)
        return fun(*args, **kwargs)

    def _first_call(key, args, kwargs):
        leaves, treedef = tree_flatten((args, kwargs))
        result, entry = _record_call(fun, leaves, treedef)
        if len(cache) >= JIT_CACHE_SIZE:
            try:
                cache.pop(next(iter(cache)), None)
            except (StopIteration, RuntimeError):     # another thread got there first
                pass
        cache[key] = entry
        return result

    def _again(key, old, args, kwargs):
        """A replay stopped on a changed decision (tape.compute): record this call again;
        a signature whose decisions keep changing runs eagerly from then on."""
        leaves, treedef = tree_flatten((args, kwargs))
        result, entry = _record_call(fun, leaves, treedef)
        if entry.__class__ is _Program:
            entry.retraces = old.retraces + 1
            if entry.retraces > JIT_MAX_RETRACES:
                entry = _Eager(f"a decision on values (a rank, a branch) changed on "
                               f"{entry.retraces} replays")
        cache[key] = entry
        return result

    def _describe(v):
        if v.__class__ is not _Program:
            return f"eager: {v.why}"
        again = f", recorded again {v.retraces}×" if v.retraces else ""
        return f"replayed ({v.nsteps} steps{again})"

    def explain():
        """{signature: 'replayed (k steps)' or 'eager: <reason>'} for the signatures seen."""
        return {k: _describe(v) for k, v in cache.items()}

    jitted.explain = explain
    jitted.clear = cache.clear
    return jitted


def _record_call(fun, leaves, treedef):
    """Run fun once on a JitTrace: (its result, the _Program or an _Eager)."""
    trace = JitTrace()
    boxed, slots = [], []
    for x in leaves:
        if _is_input(x):
            b = trace.new_input(x)
            slots.append(b.slot)
            boxed.append(b)
        elif _is_array(x):
            boxed.append(x.copy())         # baked in: a private copy the caller cannot change
        else:
            boxed.append(x)
    args, kwargs = tree_unflatten(treedef, boxed)
    result = fun(*args, **kwargs)
    out_leaves, out_def = tree_flatten(result)
    outs, values = [], []
    for o in out_leaves:
        if o.__class__ is JitTracer and o._trace is trace:
            outs.append((True, o.slot))
            values.append(o.value)
        elif _is_array(o):
            # a constant (a folded cotangent, the zero gradient of an unused argument, an
            # array the function returns as it is): a fresh copy on every call, as each
            # eager call makes its own, so that writing into one result reaches no other
            outs.append((False, _Fresh(_snapshot(o))))
            values.append(o.copy())
        else:
            if isinstance(o, Tracer):
                trace.escape(f"the function returned a traced value ({type(o).__name__})")
                o = ops._peek(o)
            elif callable(o):
                raise TypeError(f"jit: the function returned {o!r}, which is not an array; "
                                "a jitted function returns arrays, numbers and containers "
                                "of them (call vjp's pullback inside the jitted function)")
            outs.append((False, o))
            values.append(o)
    if trace.escaped is not None:
        entry = _Eager(trace.escaped)
    else:
        entry = _Program(trace, slots, out_def, outs)
    finish(trace)
    return tree_unflatten(out_def, values), entry
