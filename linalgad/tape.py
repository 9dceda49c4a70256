"""The tape: traced values, primitives, the reverse sweep and the forward sweep.

How it works, in one paragraph.  A transform (``vjp``, ``jvp``) opens a
*trace* with a fresh, increasing level and wraps its inputs in tracers of that
trace.  Every differentiable operation is a :class:`Primitive`.  Calling one
looks at its arguments: if none is a tracer it runs its kernel on plain arrays
and returns plain arrays (no boxing cost).  Otherwise the trace with the
highest level among the arguments takes the call: it unwraps its own tracers
(whatever lies inside may be a tracer of an outer, lower-level trace), calls
the primitive again on those values, and wraps the result:

* a :class:`ReverseTrace` appends a :class:`Node` to its tape (the primitive,
  its inputs, outputs and the residuals its backward pass reuses), and
  :func:`backward_pass` later walks the tape in reverse, calling each rule's
  VJP;
* a :class:`ForwardTrace` computes the output tangent at once with the rule's
  JVP (dual numbers).

Rules' VJPs and JVPs are written with linalgad's own primitives, so when they
run on tracers of an outer trace they are themselves differentiated: this is
how grad-of-grad, jvp-of-grad (Hessian-vector products) and jacfwd-of-jacrev
compose.  Levels keep nested traces from confusing each other's
perturbations.

Nothing here is global except a counter that hands out levels: a trace is an
ordinary object referenced only by its tracers and by the transform call that
created it, so it is gone when the call returns or raises, and threads never
share one.
"""

from __future__ import annotations

import itertools

__all__ = ["Primitive", "Tracer", "ReverseTracer", "ForwardTracer",
           "ReverseTrace", "ForwardTrace", "new_level", "backward_pass"]

# itertools.count.__next__ is atomic under the GIL: levels are unique across
# threads, and increase with nesting inside one thread.
_levels = itertools.count(1)


def new_level():
    return next(_levels)


class Primitive:
    """One differentiable operation: a kernel and its derivative rules.

    impl(*args, **params)
        The forward computation on values.  Returns the output (a tuple of
        outputs when ``multiple_results``); when ``staged`` it returns
        ``(output, residuals)`` where residuals are plain, non-differentiated
        data the derivative rules reuse (factorizations, pivots).
    vjp(cts, needs, out, res, *args, **params)
        Reverse rule.  ``cts`` is the output cotangent (a tuple with None for
        zero entries when ``multiple_results``); ``needs[i]`` says whether
        argument i wants a cotangent.  Returns one cotangent per argument
        (None where not needed), each with the argument's shape, and real
        where the argument is real.
    jvp(tangents, out, res, *args, **params)
        Forward rule.  ``tangents[i]`` is None for a zero tangent.  Returns
        the output tangent (a tuple, entries may be None, when
        ``multiple_results``).

    VJPs and JVPs must be written with differentiable operations so that
    they can be traced for higher-order derivatives.
    """

    __slots__ = ("name", "impl", "vjp", "jvp", "staged", "multiple_results")

    def __init__(self, name, impl, vjp=None, jvp=None, *, staged=False,
                 multiple_results=False):
        self.name = name
        self.impl = impl
        self.vjp = vjp
        self.jvp = jvp
        self.staged = staged
        self.multiple_results = multiple_results

    def __repr__(self):
        return f"<Primitive {self.name}>"

    def __call__(self, *args, **params):
        top = _top_trace(args)
        if top is None:   # nothing traced: the kernel, directly
            if self.staged:
                return self.impl(*args, **params)[0]
            return self.impl(*args, **params)
        return top.process(self, args, params)[0]

    def bind_staged(self, args, params):
        """Call on possibly traced args; return (output, residuals)."""
        top = _top_trace(args)
        if top is None:
            if self.staged:
                return self.impl(*args, **params)
            return self.impl(*args, **params), None
        return top.process(self, args, params)


def _top_trace(args):
    """The innermost (highest-level) trace among the arguments, or None."""
    top = None
    for a in args:
        if isinstance(a, Tracer):
            t = a._trace
            if top is None or t.level > top.level:
                top = t
    return top


class Tracer:
    """A value being differentiated.  Array operators are attached in _array_methods.py."""

    __slots__ = ("value", "_trace")
    __array_priority__ = 1000.0

    @property
    def shape(self):
        return self.value.shape

    @property
    def dtype(self):
        return self.value.dtype

    @property
    def ndim(self):
        return self.value.ndim

    @property
    def size(self):
        return self.value.size

    def __len__(self):
        return len(self.value)

    def __bool__(self):
        raise TypeError("the truth value of a traced array is not defined while "
                        "differentiating; branch on a plain value instead")

    def primal(self):
        """The innermost plain array (all traces removed)."""
        v = self.value
        while isinstance(v, Tracer):
            v = v.value
        return v

    def _concrete(self, kind):
        raise TypeError(
            f"{kind}() of a traced value would drop its derivative; keep it an array, or "
            "take linalgad.stop_gradient(x) (or x.primal()) if a constant is what you want")

    def __float__(self):
        self._concrete("float")

    def __complex__(self):
        self._concrete("complex")

    def __int__(self):
        self._concrete("int")

    def __index__(self):
        self._concrete("index")

    def __repr__(self):
        return f"{type(self).__name__}(level={self._trace.level}, {self.primal()!r})"


class ReverseTracer(Tracer):
    __slots__ = ("node", "index")

    def __init__(self, value, trace, node, index):
        self.value = value
        self._trace = trace
        self.node = node
        self.index = index


class ForwardTracer(Tracer):
    __slots__ = ("tangent",)

    def __init__(self, value, trace, tangent):
        self.value = value
        self._trace = trace
        self.tangent = tangent


def _run(prim, vals, params, inner):
    """(output, residuals) of prim on values one trace down.

    ``inner`` says whether a value is still a tracer of an outer trace, in
    which case that trace takes the call; otherwise the kernel runs.
    """
    if inner:
        return prim.bind_staged(vals, params)
    if prim.staged:
        return prim.impl(*vals, **params)
    return prim.impl(*vals, **params), None


class Node:
    """One recorded primitive application on a reverse tape."""

    __slots__ = ("prim", "args", "params", "out", "res", "parents", "needs", "idx")

    def __init__(self, prim, args, params, out, res, parents, needs, idx):
        self.prim = prim
        self.args = args        # values (inner level), tuple
        self.params = params
        self.out = out          # value(s) (inner level)
        self.res = res          # residuals, plain
        self.parents = parents  # tuple of (node, output index) or None
        self.needs = needs      # tuple of bool: which arguments want a cotangent
        self.idx = idx          # position on the tape


class ReverseTrace:
    """A tape of nodes in creation order; one per reverse transform call."""

    __slots__ = ("level", "nodes", "__weakref__")

    def __init__(self):
        self.level = new_level()
        self.nodes = []

    def new_input(self, value):
        node = Node(None, (), None, value, None, (), (), len(self.nodes))
        self.nodes.append(node)
        return ReverseTracer(value, self, node, None)

    def process(self, prim, args, params):
        if len(args) == 2:
            return self._process2(prim, args[0], args[1], params)
        vals = []
        parents = []
        needs = []
        inner = False         # does any value still hold a tracer of an outer trace?
        for a in args:
            if getattr(a, "_trace", None) is self:
                v = a.value
                vals.append(v)
                parents.append((a.node, a.index))
                needs.append(True)
            else:
                v = a
                vals.append(a)
                parents.append(None)
                needs.append(False)
            if not inner and isinstance(v, Tracer):
                inner = True
        return self._record(prim, tuple(vals), params, tuple(parents), tuple(needs), inner)

    def _process2(self, prim, a, b, params):
        """process() for the common two-argument case, without lists."""
        if a.__class__ is ReverseTracer and a._trace is self:
            va, pa, na = a.value, (a.node, a.index), True
        else:
            va, pa, na = a, None, False
        if b.__class__ is ReverseTracer and b._trace is self:
            vb, pb, nb = b.value, (b.node, b.index), True
        else:
            vb, pb, nb = b, None, False
        return self._record(prim, (va, vb), params, (pa, pb), (na, nb),
                            isinstance(va, Tracer) or isinstance(vb, Tracer))

    def _record(self, prim, vals, params, parents, needs, inner):
        """Run prim on the unwrapped values, append its node, box its outputs."""
        out, res = _run(prim, vals, params, inner)
        nodes = self.nodes
        node = Node(prim, vals, params, out, res, parents, needs, len(nodes))
        nodes.append(node)
        if prim.multiple_results:
            boxed = tuple(ReverseTracer(o, self, node, i) for i, o in enumerate(out))
        else:
            boxed = ReverseTracer(out, self, node, None)
        return boxed, res


class ForwardTrace:
    """Dual numbers: tangents are carried along with values."""

    __slots__ = ("level", "__weakref__")

    def __init__(self):
        self.level = new_level()

    def process(self, prim, args, params):
        vals = []
        tans = []
        inner = False
        for a in args:
            if isinstance(a, Tracer) and a._trace is self:
                v = a.value
                tans.append(a.tangent)
            else:
                v = a
                tans.append(None)
            vals.append(v)
            if not inner and isinstance(v, Tracer):
                inner = True
        vals = tuple(vals)
        out, res = _run(prim, vals, params, inner)
        if prim.jvp is None:
            raise NotImplementedError(f"forward mode is not defined for {prim.name}")
        out_t = prim.jvp(tuple(tans), out, res, *vals, **params)
        if prim.multiple_results:
            boxed = tuple(o if t is None else ForwardTracer(o, self, t)
                          for o, t in zip(out, out_t))
        elif out_t is None:
            boxed = out
        else:
            boxed = ForwardTracer(out, self, out_t)
        return boxed, res


def backward_pass(trace, out_refs, out_cts, check_finite=None):
    """Sweep the tape of ``trace`` backwards.

    out_refs: list of (node, output index) for the outputs being pulled back;
    out_cts: their cotangents (None for zero).  Returns the dict mapping the
    tape position of each input node to its accumulated cotangent.
    """
    nodes = trace.nodes
    cts = [None] * len(nodes)
    start = -1
    for (node, index), ct in zip(out_refs, out_cts):
        if ct is None:
            continue
        _accumulate(cts, node, index, ct)
        if node.idx > start:
            start = node.idx
    for pos in range(start, -1, -1):
        ct = cts[pos]
        if ct is None:
            continue
        node = nodes[pos]
        prim = node.prim
        if prim is None:          # an input: leave its cotangent in place
            continue
        cts[pos] = None           # free memory as we go
        if prim.multiple_results:
            if all(c is None for c in ct):
                continue
            ct = tuple(ct)
        vjp = prim.vjp
        if vjp is None:
            raise NotImplementedError(f"reverse mode is not defined for {prim.name}")
        in_cts = vjp(ct, node.needs, node.out, node.res, *node.args, **node.params)
        if check_finite is not None:
            check_finite(prim, in_cts)
        for parent, g in zip(node.parents, in_cts):
            if parent is None or g is None:
                continue
            pnode, index = parent
            if index is None:
                ppos = pnode.idx
                prev = cts[ppos]
                cts[ppos] = g if prev is None else prev + g
            else:
                _accumulate(cts, pnode, index, g)
    return cts


def _accumulate(cts, node, index, g):
    pos = node.idx
    if index is None:
        prev = cts[pos]
        cts[pos] = g if prev is None else prev + g
    else:
        slot = cts[pos]
        if slot is None:
            slot = cts[pos] = [None] * len(node.out)
        prev = slot[index]
        slot[index] = g if prev is None else prev + g
