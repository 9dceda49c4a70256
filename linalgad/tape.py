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

A third kind of trace, :class:`JitTrace`, serves :func:`linalgad.jit`: it sits below
every other trace of a call, computes on real values like the others, and writes down
each kernel it runs (and, at first order, each rule's VJP or JVP as one step) as a
straight-line program over numbered slots, which later calls replay on new arrays.
Anything that would make a replay differ from an eager call — a traced value read into
Python (``ops._value``, ``primal()``, a residual handed to a caller and read there) —
marks the recording as not replayable; shapes and dtypes are read with :func:`peek`, checks
that must run on every call with :func:`guard`, and the values a rule computes on for itself
(a factorization it keeps, a rank it branches on) with :func:`compute`, whose recorded
decisions a replay re-checks (when they differ, the call is recorded again).

Nothing here is global except a counter that hands out levels: a trace is an
ordinary object referenced only by its tracers and by the transform call that
created it, so it is gone when the call returns or raises, and threads never
share one.
"""

from __future__ import annotations

import contextlib
import itertools

import numpy as np

__all__ = ["Primitive", "Tracer", "ReverseTracer", "ForwardTracer", "JitTracer",
           "ReverseTrace", "ForwardTrace", "JitTrace", "Retrace", "new_level", "backward_pass", "finish",
           "compute", "recording"]

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

    vjp_reads(needs), optional
        The positions of the arguments whose values the VJP reads, besides the
        cotangent (a tuple); of the others, and of ``out`` and ``res``, it reads
        shapes and dtypes only.  Declared by the elementwise and shape primitives,
        it lets a :func:`linalgad.jit` recording fold a VJP whose cotangent and read
        arguments are all constants into a constant: the reverse pass of a loss
        ``sum(W * f(x))`` with a fixed W starts from W, replayed as no step.

    VJPs and JVPs must be written with differentiable operations so that
    they can be traced for higher-order derivatives.
    """

    __slots__ = ("name", "impl", "vjp", "jvp", "staged", "multiple_results", "vjp_reads")

    def __init__(self, name, impl, vjp=None, jvp=None, *, staged=False,
                 multiple_results=False, vjp_reads=None):
        self.name = name
        self.impl = impl
        self.vjp = vjp
        self.jvp = jvp
        self.staged = staged
        self.multiple_results = multiple_results
        self.vjp_reads = vjp_reads

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
        """Call on possibly traced args; return (output, residuals).

        The residuals come back to the caller as plain data; under :func:`linalgad.jit` they
        come back as values of the recording (:func:`expose`: a tuple part by part), so a
        replay hands out the new call's, and reading them into Python marks the recording.
        """
        out, res = self._bind(args, params)
        if res is not None:
            like = out[0] if self.multiple_results else out
            res = tuple(expose(r, like) for r in res) if type(res) is tuple else \
                expose(res, like)
        return out, res

    def _bind(self, args, params):
        """bind_staged for the tape itself (the residuals stay on the tape)."""
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
        _escape(self, "a traced value was read (primal())")
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
        return f"{type(self).__name__}(level={self._trace.level}, {peek(self)!r})"


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
        return prim._bind(vals, params)
    if prim.staged:
        return prim.impl(*vals, **params)
    return prim.impl(*vals, **params), None


class Node:
    """One recorded primitive application on a reverse tape."""

    __slots__ = ("prim", "args", "params", "out", "res", "parents", "needs", "idx", "unit")

    def __init__(self, prim, args, params, out, res, parents, needs, idx, unit=None):
        self.prim = prim
        self.args = args        # values (inner level), tuple
        self.params = params
        self.out = out          # value(s) (inner level)
        self.res = res          # residuals, plain
        self.parents = parents  # tuple of (node, output index) or None
        self.needs = needs      # tuple of bool: which arguments want a cotangent
        self.idx = idx          # position on the tape
        self.unit = unit        # the JitTrace the values live on, when that is all they hold


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
        node = Node(prim, vals, params, out, res, parents, needs, len(nodes),
                    _jit_below(vals) if inner else None)
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
        tans = tuple(tans)
        unit = _jit_below(vals) if inner else None
        if unit is not None and _no_entries(tans, _given(tans)):
            out_t = _zero_tangents(prim, out)
        elif unit is not None and unit.owns(tans):
            out_t = unit.call(prim.jvp, (tans, out, res) + vals, params, prim.name)
        else:
            try:
                out_t = prim.jvp(tans, out, res, *vals, **params)
            except Exception:
                if not _no_entries(tans, _given(tans)):
                    raise
                out_t = _zero_tangents(prim, out)
        if prim.multiple_results:
            boxed = tuple(o if t is None else ForwardTracer(o, self, t)
                          for o, t in zip(out, out_t))
        elif out_t is None:
            boxed = out
        else:
            boxed = ForwardTracer(out, self, out_t)
        return boxed, res


# -- recording for replay (linalgad.jit) ------------------------------------------

class JitTracer(Tracer):
    """A value of a call that :func:`linalgad.jit` is recording; ``slot`` names it in the
    program being recorded."""

    __slots__ = ("slot",)

    def __init__(self, value, trace, slot):
        self.value = value
        self._trace = trace
        self.slot = slot


_STATIC = (type(None), bool, int, float, complex, str, bytes, slice, type(Ellipsis), np.dtype,
           type, np.generic)


class JitTrace:
    """One call of a :func:`linalgad.jit` function, run eagerly on real values while the
    kernels it runs are written down as a straight-line program.

    It is always the innermost trace: the transforms inside the call stack their traces
    on top of it, and every kernel of every level lands here.  A step is one primitive's
    kernel, or, at first order, one rule's whole VJP or JVP called on plain arrays (so its
    fused kernels are replayed as they run eagerly).  The program holds the slots
    (inputs, constants, outputs and residuals of every step) and the steps; ``escaped``
    records the first thing that makes a replay unsafe (a value or a residual read into
    Python, an unknown object among a kernel's parameters), in which case
    the function is run eagerly instead.
    """

    __slots__ = ("level", "steps", "template", "ids", "keep", "escaped", "effects",
                 "folded", "__weakref__")

    def __init__(self):
        self.level = new_level()
        self.steps = []        # (what the step does, slots read, slots written): see
        #                        linalgad.transforms._compile for how one is replayed
        self.effects = set()   # steps replayed even when nothing reads their results
        self.template = []     # the slots: constants in place, None for computed values
        self.ids = {}          # id(object) -> slot, for constants and residuals
        self.keep = []         # those objects, alive while recording (ids stay unique)
        self.escaped = None
        self.folded = set()    # ids of the cotangents folded into constants (kept alive)

    def escape(self, why):
        if self.escaped is None:
            self.escaped = why

    @contextlib.contextmanager
    def failing(self, name):
        """A kernel that raises while recording marks the recording: the function may
        catch the error (a ``try``/``except`` falling back to another computation, a
        ``check_finite`` guard, a warning made an error), and the path it then takes was
        chosen by the values, which a replay would not choose again."""
        try:
            yield
        except BaseException as e:
            self.escape(f"{name} raised {type(e).__name__} while recording")
            raise

    def _slot(self, value=None):
        self.template.append(value)
        return len(self.template) - 1

    def new_input(self, value):
        return JitTracer(value, self, self._slot())

    def _residual(self, x):
        """The slot of a residual (a value some step computes), or None."""
        s = self.ids.get(id(x))
        return s if s is not None and self.template[s] is None else None

    def _arg_slot(self, x, name):
        """The slot of an argument: its tracer's, a residual's, or a constant's own."""
        if x.__class__ is JitTracer and x._trace is self:
            return x.slot
        s = self.ids.get(id(x))
        if s is not None:
            return s
        if isinstance(x, _STATIC):
            return self._slot(x)
        if isinstance(x, Tracer):
            self.escape(f"a value of another trace reached {name}")
        elif not (hasattr(x, "shape") or _static_param(x)):
            self.escape(f"an argument of {name} ({type(x).__name__}) is not a constant")
        s = self.ids[id(x)] = self._slot(_snapshot(x))
        self.keep.append(x)           # alive while recording: its id stays unique
        return s

    def _params(self, name, params):
        """[(key, slot)] for the parameters bound to residuals (filled in on replay); a
        tuple holding residuals is (key, (tuple, slots)), rebuilt on replay."""
        dyn = []
        for k, v in params.items():
            s = self._residual(v)
            if s is not None:
                dyn.append((k, s))
            elif (type(v) is tuple or type(v) is list) and any(
                    not isinstance(e, _STATIC) and self._residual(e) is not None for e in v):
                dyn.append((k, (type(v), tuple(self._arg_slot(e, name) for e in v))))
            elif not _static_param(v):
                self.escape(f"parameter {k}={type(v).__name__} of {name} is not a constant")
        return tuple(dyn)

    def _record(self, fn, args, params, name, out):
        """Append the step fn(*args, **params) writing its result to the slots ``out``."""
        refs = tuple((type(a), tuple(self._arg_slot(e, name) for e in a))
                     if (type(a) is tuple or type(a) is list) and self._residual(a) is None
                     and not _all_static(a)
                     else self._arg_slot(a, name) for a in args)
        dyn = self._params(name, params)
        reads = [s for r in refs for s in ((r,) if type(r) is int else r[1])]
        for _, s in dyn:
            reads.extend((s,) if type(s) is int else s[1])
        if dyn:
            keys = {k for k, _ in dyn}
            params = {k: v if k in keys else _snapshot(v) for k, v in params.items()}
        else:
            params = {k: _snapshot(v) for k, v in params.items()}
        self.steps.append((("call", fn, refs, params, dyn, out), tuple(reads),
                           tuple(_flat_slots(out))))

    def process(self, prim, args, params):
        vals = tuple(a.value if a.__class__ is JitTracer and a._trace is self else a
                     for a in args)
        inner = any(isinstance(v, Tracer) for v in vals)
        if inner:
            # a value of an enclosing transform (jit called inside grad, its function
            # closing over the outer tracer): that transform takes the call, and the
            # recording, which cannot replay it, is run eagerly from now on
            self.escape(f"a value of an enclosing transform reached {prim.name}")
        with self.failing(prim.name):
            out, res = _run(prim, vals, params, inner)
        if prim.multiple_results:
            outs = tuple(self._slot() for _ in out)
            boxed = tuple(JitTracer(o, self, s) for o, s in zip(out, outs))
        else:
            outs = self._slot()
            boxed = JitTracer(out, self, outs)
        if prim.staged:       # the kernel returns (output, residuals)
            res_slot = self._slot()
            self._record(prim.impl, args, params, prim.name, (outs, res_slot))
            self._res(res, res_slot)
        else:
            self._record(prim.impl, args, params, prim.name, outs)
        return boxed, res

    def _res(self, res, slot):
        """Register a residual (and, for a tuple, its parts) as computed by the step."""
        if res is None:
            return
        self.ids[id(res)] = slot
        self.keep.append(res)
        if type(res) is tuple:
            for i, r in enumerate(res):
                if r is not None and not isinstance(r, _STATIC) and id(r) not in self.ids:
                    s = self.ids[id(r)] = self._slot()
                    self.keep.append(r)
                    self.steps.append((("item", slot, i, s), (slot,), (s,)))

    def constant(self, x):
        """Is x a constant of the recording (not traced, not a step's result)?"""
        if x is None or isinstance(x, _STATIC):
            return True
        return not isinstance(x, Tracer) and self._residual(x) is None

    def folds(self, ct, node):
        """Can the VJP of ``node`` (which declares vjp_reads) run now, its result a
        constant: are the cotangent, the arguments it reads and its parameters all
        constants?"""
        if node.prim.multiple_results or not self.constant(ct):
            return False
        args = node.args
        if not all(self.constant(args[i]) for i in node.prim.vjp_reads(node.needs)):
            return False
        return all(all(self.constant(e) for e in v) if type(v) is tuple or type(v) is list
                   else self.constant(v) for v in node.params.values())

    def fold(self, cts, given):
        """A VJP's cotangents that are constants of the recording: the NumPy arrays it
        made are set read-only (every replay shares them, so a rule writing into its
        cotangent in place must fail, not corrupt them) and remembered, so that one
        returned by the function is copied on each call.  An array the VJP passed through
        (one of ``given``: its cotangent or an argument, possibly the caller's own array)
        is left as it is, as an eager call leaves it."""
        for c in cts:
            if c.__class__ is np.ndarray and not any(c is g for g in given):
                c.flags.writeable = False
                self.folded.add(id(c))
                self.keep.append(c)     # alive while recording: its id stays unique
        return cts

    def owns(self, x):
        """Does x (a value, or a tuple of them) hold no tracer but this trace's?"""
        if type(x) is tuple or type(x) is list:
            return all(self.owns(e) for e in x)
        return not isinstance(x, Tracer) or (x.__class__ is JitTracer and x._trace is self)

    def call(self, fn, args, params, name):
        """fn(*args, **params) on plain values, recorded as one step; returns its result
        with the arrays boxed (a tuple result stays a tuple)."""
        plain = [type(a)(_unbox(e) for e in a) if type(a) is tuple or type(a) is list
                 else _unbox(a) for a in args]
        with self.failing(name):
            result = fn(*plain, **params)
        if type(result) is tuple or type(result) is list:
            out = tuple(None if r is None else self._slot() for r in result)
            boxed = type(result)(None if r is None else JitTracer(r, self, s)
                                 for r, s in zip(result, out))
        else:
            out = None if result is None else self._slot()
            boxed = None if result is None else JitTracer(result, self, out)
        self._record(fn, args, params, name, out)
        return boxed

    def guard(self, x, check):
        """Run check(value of x) now and on every replay (input checks that raise)."""
        self._record(check, (x,), {}, "a check", None)
        with self.failing("a check"):
            check(x.value)

    def compute(self, fn, args, decide, name):
        """fn(*values of args) now, as a step of the program; its result a residual."""
        with self.failing(name):
            result = fn(*[_unbox(a) for a in args])
        step = fn if decide is None else _checked_decision(fn, decide, decide(result), name)
        slot = self._slot()
        self._record(step, args, {}, name, slot)
        if decide is not None:
            self.effects.add(len(self.steps) - 1)
        self._res(result, slot)
        return result


def _leaked(name):
    raise ValueError(
        f"{name} was applied to a traced value of a transform that has already "
        "returned (saved in a list or a global inside grad, vjp, jvp or jit and used "
        "after it): such a value carries no derivative any more. Return it as an output "
        "(or as aux with has_aux=True), or take linalgad.stop_gradient of it inside.")


class FinishedReverseTrace(ReverseTrace):
    """A ReverseTrace whose forward pass has returned: its tape is read by the backward
    pass, and a tracer of it that leaked out of the transform raises when used (JAX's
    UnexpectedTracerError).  ``finish`` swaps the class: no cost on the hot path."""

    __slots__ = ()

    def process(self, prim, args, params):
        _leaked(prim.name)

    def _process2(self, prim, a, b, params):
        _leaked(prim.name)


class FinishedForwardTrace(ForwardTrace):
    __slots__ = ()

    def process(self, prim, args, params):
        _leaked(prim.name)


class FinishedJitTrace(JitTrace):
    __slots__ = ()

    def process(self, prim, args, params):
        _leaked(prim.name)

    def call(self, fn, args, params, name):
        _leaked(name)

    def compute(self, fn, args, decide, name):
        _leaked(name)

    def guard(self, x, check):
        _leaked("a check")


_FINISHED = {ReverseTrace: FinishedReverseTrace, ForwardTrace: FinishedForwardTrace,
             JitTrace: FinishedJitTrace}


def finish(trace):
    """Mark a transform's trace as returned (see FinishedReverseTrace)."""
    cls = _FINISHED.get(trace.__class__)
    if cls is not None:
        trace.__class__ = cls


def _checked_decision(fn, decide, recorded, name):
    """fn, raising Retrace when its result decides otherwise than ``recorded``."""
    def step(*values):
        r = fn(*values)
        now = decide(r)
        if now != recorded:
            raise Retrace(f"{name} decided {now!r} on this call, {recorded!r} when recorded")
        return r
    return step


def _all_static(a):
    """A tuple of constants only (a VJP's ``needs``): one constant slot, not one per item."""
    return type(a) is tuple and all(e is None or type(e) in _SCALARS for e in a)


_SCALARS = {bool, int, float, complex, str}


def _unbox(x):
    return x.value if x.__class__ is JitTracer else x


# Empty inputs (a 0 × 0 matrix, an empty stack).  Where every input a rule differentiates
# has no entries, its cotangents are empty arrays and its output tangents zeros, whatever the
# rule: its kernels need not handle order 0 (LAPACK rejects it).  The sweeps give these
# directly where a rule fails on them (a test after the failure, which costs the common case
# nothing) and before recording a step for linalgad.jit.

def _no_entries(args, used):
    """Whether every argument used (``used``: flags, at least one) is an array with no
    entries."""
    found = False
    for a, u in zip(args, used):
        if u:
            if 0 not in getattr(a, "shape", (1,)):
                return False
            found = True
    return found


def _given(tangents):
    return [t is not None for t in tangents]


def _empty_cotangents(node):
    return tuple(_zeros_of(a) if need else None for a, need in zip(node.args, node.needs))


def _zero_tangents(prim, out):
    if prim.multiple_results:
        return tuple(_zeros_of(o, inexact=True) for o in out)
    return _zeros_of(out, inexact=True)


def _zeros_of(x, inexact=False):
    """Plain zeros of x's shape and dtype (x's array type); None for a non-float x when
    ``inexact`` (an output with no tangent, such as pivots)."""
    while isinstance(x, Tracer):
        x = x.value
    if x is None or (inexact and np.dtype(x.dtype).kind not in "fc"):
        return None
    return np.zeros_like(x)


def _snapshot(x):
    """A constant of a recording as it is now: a private copy of a writable array (one the
    function closes over, which the caller may write into later), so that a replay's values
    and its folded gradients come from the same array, as at the recording call."""
    if x.__class__ is np.ndarray:
        return x.copy() if x.flags.writeable else x
    if hasattr(x, "__cuda_array_interface__") and hasattr(x, "copy"):
        return x.copy()
    return x


def _static_param(v):
    if isinstance(v, _STATIC):
        return True
    if callable(v):     # code; but a closure or a bound method could carry stale data
        owner = getattr(v, "__self__", None)
        return not getattr(v, "__closure__", None) and (
            owner is None or isinstance(owner, (type, type(np))))
    if type(v) is tuple or type(v) is list:
        return all(_static_param(e) for e in v)
    if type(v) is dict:
        return all(_static_param(e) for e in v.values())
    return isinstance(v, np.ndarray)


def _flat_slots(out):
    """The slots an output spec writes (a slot, None, or a nested tuple of them)."""
    if type(out) is int:
        yield out
    elif out is not None:
        for o in out:
            yield from _flat_slots(o)


def _jit_below(vals):
    """The JitTrace the values live on, when they are plain or its tracers only."""
    unit = None
    for v in vals:
        if v.__class__ is JitTracer:
            if unit is None:
                unit = v._trace
            elif v._trace is not unit:
                return None
        elif isinstance(v, Tracer):
            return None
    return unit


def _escape(x, why):
    """Mark the recording under x (if any) as not replayable."""
    while isinstance(x, Tracer):
        if x.__class__ is JitTracer:
            x._trace.escape(why)
            return
        x = x.value


def expose(part, like):
    """A residual (or a part of one) that a rule hands to its caller, as a value of the
    jit recording under ``like`` (so a replay returns the new one, and reading it into
    Python marks the recording), or as it is when there is no recording."""
    v = like
    while isinstance(v, Tracer):
        if v.__class__ is JitTracer:
            trace = v._trace
            s = trace.ids.get(id(part))
            if s is None or trace.template[s] is not None:
                trace.escape("a residual was returned to Python")
                return part
            return JitTracer(part, trace, s)
        v = v.value
    return part


def recording(*xs):
    """Whether any of xs is, or holds, a value of a linalgad.jit recording (a rule may then
    lay its work out in separate steps, so that the replay skips what nothing reads)."""
    for x in xs:
        while isinstance(x, Tracer):
            if x.__class__ is JitTracer:
                return True
            x = x.value
    return False


def peek(x):
    """The plain array inside x, for its shape, dtype or type only (never its values:
    under linalgad.jit those would not be replayed; read values with ops._value)."""
    while isinstance(x, Tracer):
        x = x.value
    return x


def guard(x, check):
    """check(the plain value of x), now and, under linalgad.jit, on every replay."""
    v = x
    while isinstance(v, Tracer):
        if v.__class__ is JitTracer:
            v._trace.guard(v, check)
            return
        v = v.value
    check(v)


class Retrace(Exception):
    """Raised inside a replay whose :func:`compute` decided otherwise than when it was
    recorded (a rank, a branch); linalgad.jit then records the call again."""


def compute(fn, args, decide=None, name="a computation"):
    """fn(*the plain values of args): work on values that no derivative passes through.

    It is how a rule computes what it hands its primitives as parameters (lstsq's and
    pinv's factorization) and the Python decisions it takes on values (a rank, which
    branch): plain values, never differentiated; under linalgad.jit one step of the
    recording, run again on every replay, its result (and each part of a tuple result)
    a residual of the recording (a primitive's parameter; :func:`expose` hands it to the
    user).  ``decide(result)``, hashable, is everything the caller's Python reads from
    the result; a replay whose result decides otherwise stops and the call is recorded
    again, so no Python branch is taken on stale values.  ``fn`` must depend on its
    arguments and on constants only.  The recording is found through the arguments: pass
    at least one value of the call (a traced array) even when ``fn`` reads only an earlier
    compute's result (as ``solve_continuous_lyapunov`` passes ``a`` with its factors);
    arguments that are all plain make a constant, computed once.
    """
    trace = None
    peeled = []
    for a in args:
        while isinstance(a, Tracer) and a.__class__ is not JitTracer:
            a = a.value
        if a.__class__ is JitTracer:
            if trace is None:
                trace = a._trace
            elif a._trace is not trace:
                trace.escape(f"{name} read values of two recordings")
        peeled.append(a)
    if trace is None:
        return fn(*peeled)
    return trace.compute(fn, peeled, decide, name)


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
        unit = node.unit
        if unit is not None and _no_entries(node.args, node.needs):
            in_cts = _empty_cotangents(node)
        elif unit is not None and unit.owns(ct):
            if prim.vjp_reads is not None and unit.folds(ct, node):
                # everything the rule reads is a constant of the recording: its result
                # is one too (computed now, never replayed)
                args = [_unbox(a) for a in node.args]
                in_cts = unit.fold(vjp(ct, node.needs, _unbox(node.out), node.res, *args,
                                       **node.params), [ct] + args)
            else:
                # first order on a recording for linalgad.jit: the rule runs as one step
                # on plain arrays (its fused kernels included) and is replayed as one
                in_cts = unit.call(vjp, (ct, node.needs, node.out, node.res) + node.args,
                                   node.params, prim.name)
        else:
            try:
                in_cts = vjp(ct, node.needs, node.out, node.res, *node.args, **node.params)
            except Exception:
                # (tested only here, where it costs nothing when the rule succeeds)
                if not _no_entries(node.args, node.needs):
                    raise
                in_cts = _empty_cotangents(node)
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
