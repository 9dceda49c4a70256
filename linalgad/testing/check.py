"""Gradient checks: finite differences and the dot-product test.

``check_grads(f, args, modes=("fwd", "rev"), order=2)`` verifies, along a
random direction v and against a random output weight w:

* fwd: the JVP  J v  against finite differences: central differences
  D(h) = (f(x+hv) − f(x−hv)) / 2h at h and h/2, extrapolated (Richardson)
  to D(h/2) + (D(h/2) − D(h))/3, whose truncation error is O(h⁴);
* rev: the VJP  Jᵀw  through  <Jᵀw, v> = <w, J v>  with J v from finite
  differences;
* both: the dot-product identity <w, J v> = <Jᵀw, v> between the two modes,
  which holds to rounding error (no truncation error), so it is checked
  tightly in double precision (1e-10); in single precision rounding is as
  large as the finite-difference error and the same tolerance applies;
* order 2 (and more): the same checks applied to the derivative functions
  themselves (v ↦ J v and w ↦ Jᵀw as functions of the inputs), which covers
  reverse-over-reverse, forward-over-reverse (Hessian-vector products),
  reverse-over-forward and forward-over-forward.

Inner products that cancel (much smaller than their terms) are judged
against the size of their terms, Σ|aᵢbᵢ|/√N, not against their own value.
Finite differences are evaluated in double precision (float32 inputs are
promoted for the difference quotient only), so single-precision rules are
checked against an accurate reference at a single-precision tolerance.
Complex inputs get complex directions; the inner product is Re <a, b> =
Re sum(conj(a) b), matching the library's cotangent convention.
"""

from __future__ import annotations

import numpy as np

from ..backend import namespace_of

from .._tree import tree_flatten, tree_unflatten
from ..transforms import jvp, vjp

__all__ = ["check_grads", "check_vjp", "check_jvp", "grad_errors", "default_tolerance",
           "GradCheckError"]


class GradCheckError(AssertionError):
    """A derivative disagreed with finite differences or with the other mode."""


_SINGLE = (np.dtype(np.float32), np.dtype(np.complex64))


def default_tolerance(dtypes):
    """rtol for finite-difference comparisons given the inputs' dtypes."""
    if any(np.dtype(d) in _SINGLE for d in dtypes):
        return 2e-3
    return 1e-6


def _double(dtype):
    return np.dtype(np.complex128) if np.dtype(dtype).kind == "c" else np.dtype(np.float64)


def _random_like(rng, x):
    x = np.asarray(x)
    v = rng.standard_normal(x.shape)
    if x.dtype.kind == "c":
        v = v + 1j * rng.standard_normal(x.shape)
    return v.astype(x.dtype)


def _size(x):
    """The root-mean-square magnitude of x's entries (1 where that is 0 or not finite)."""
    x = np.asarray(x)
    if x.size == 0 or x.dtype.kind not in "fciub":
        return 1.0
    rms = float(np.sqrt(np.mean(np.abs(x.astype(_double(x.dtype)
                                               if x.dtype.kind in "fc" else np.float64)) ** 2)))
    return rms if np.isfinite(rms) and rms > 0 else 1.0


def _direction(rng, x):
    """A random direction for x, scaled to x's size: the step eps·v is then relative.

    An unscaled step of 1e-6 is larger than an input of size 1e-8 (the difference
    quotient then measures another function) and below rounding for one of size
    1e12; scaled, the check judges the same function at any units.
    """
    v = _random_like(rng, x)
    scale = _size(x)
    return v if scale == 1.0 or v.dtype.kind not in "fc" else (v * scale).astype(v.dtype)


def _weight(rng, out, factor):
    """A random cotangent for the output ``out``, scaled by ``factor``."""
    w = _random_like(rng, out)
    return w if factor == 1.0 or w.dtype.kind not in "fc" else (w * factor).astype(w.dtype)


class _Inner(float):
    """Re <a, b> summed over leaves, remembering the size of what it summed.

    ``typical`` = Σ|aᵢ||bᵢ| / √N is the size a random-direction inner product
    of these N terms has.  An inner product much smaller than that has
    cancelled, and its relative error would measure the cancellation, not the
    derivative: errors are taken relative to at least ``typical``.
    """

    typical = 0.0


def _inner(a_leaves, b_leaves):
    total, size, count = 0.0, 0.0, 0
    for a, b in zip(a_leaves, b_leaves):
        a = np.asarray(a, dtype=_double(np.asarray(a).dtype))
        b = np.asarray(b, dtype=_double(np.asarray(b).dtype))
        total += float(np.real(np.vdot(a, b)))
        size += float(np.abs(a).ravel() @ np.abs(b).ravel())
        count += a.size
    out = _Inner(total)
    out.typical = size / np.sqrt(max(count, 1))
    return out


def _rel(a, b, scale):
    """|a − b| relative to the larger of |a|, |b|, their inner products' typical size, scale."""
    typical = max(getattr(a, "typical", 0.0), getattr(b, "typical", 0.0))
    return abs(a - b) / max(abs(a), abs(b), typical, scale, 1e-300)


def _float_leaves(leaves):
    """Indices of output leaves that carry derivatives (floating/complex)."""
    return [i for i, o in enumerate(leaves) if np.asarray(o).dtype.kind in "fc"]


def _to_host(x):
    get = getattr(x, "get", None)
    return get() if callable(get) and not isinstance(x, np.ndarray) else np.asarray(x)


class _Checker:
    def __init__(self, fun, args, modes, rtol, atol, eps, rng, fd_double, errors, floor):
        self.fun = fun
        self.args = tuple(args)
        self.modes = tuple(modes)
        self.rtol = rtol
        self.atol = atol
        self.floor = floor
        self.eps = eps
        self.rng = rng
        self.fd_double = fd_double
        self.errors = errors

    # f on flat leaves -> flat output leaves
    def _call_flat(self, x_leaves, treedef):
        out = self.fun(*tree_unflatten(treedef, list(x_leaves)))
        leaves, _ = tree_flatten(out)
        return leaves

    def _fd_jvp(self, x_leaves, v_leaves, treedef):
        h = self.eps
        if self.fd_double:
            xs = [np.asarray(_to_host(x), dtype=_double(np.asarray(_to_host(x)).dtype))
                  for x in x_leaves]
            vs = [np.asarray(_to_host(v), dtype=_double(np.asarray(_to_host(v)).dtype))
                  for v in v_leaves]
            xs = [_like_device(x0, x) for x0, x in zip(x_leaves, xs)]
            vs = [_like_device(x0, v) for x0, v in zip(x_leaves, vs)]
        else:
            xs, vs = list(x_leaves), list(v_leaves)
        def central(step):
            plus = self._call_flat([x + step * v for x, v in zip(xs, vs)], self.treedef)
            minus = self._call_flat([x - step * v for x, v in zip(xs, vs)], self.treedef)
            return [(_to_host(p) - _to_host(m)) / (2 * step) for p, m in zip(plus, minus)]
        # Richardson extrapolation of two central differences: truncation error O(h⁴)
        # instead of O(h²), so strongly curved maps (nearly repeated singular values,
        # second derivatives) are not misjudged; rounding error stays O(eps/h).
        wide, narrow = central(h), central(h / 2)
        return [n + (n - w) / 3 for w, n in zip(wide, narrow)]

    def run(self, order, label):
        x_leaves, self.treedef = tree_flatten(self.args)
        x_leaves = [np.asarray(x) if not hasattr(x, "shape") else x for x in x_leaves]
        v_leaves = [_like_device(x, _direction(self.rng, _to_host(x))) for x in x_leaves]
        v_tree = tree_unflatten(self.treedef, v_leaves)

        out, pull = vjp(self.fun, *self.args)
        out_leaves, out_def = tree_flatten(out)
        float_idx = _float_leaves([_to_host(o) for o in out_leaves])
        fd = self._fd_jvp(x_leaves, v_leaves, self.treedef)
        # output weights that make each output's share of <w, J v> alike: with unit
        # weights an output 1e6 times smaller than another added nothing, and a wrong
        # rule for it passed the reverse-mode check.  The largest keeps unit weights;
        # none is raised above its floor (atol, or floor·|output|: a J v of rounding
        # noise is not amplified into the judged quantity)
        sizes = {i: max(_size(fd[i]) if np.any(fd[i]) else 0.0,
                        self.atol if self.atol is not None
                        else self.floor * _size(_to_host(out_leaves[i])))
                 for i in float_idx}
        top = max(sizes.values(), default=1.0)
        w_leaves = [_like_device(o, _weight(self.rng, _to_host(o), top / sizes[i]))
                    if i in float_idx else np.zeros_like(_to_host(o), dtype=np.float64)
                    for i, o in enumerate(out_leaves)]
        w_tree = tree_unflatten(out_def, w_leaves)

        fd_w = _inner([_to_host(w_leaves[i]) for i in float_idx], [fd[i] for i in float_idx])
        # The floor below which a difference is not judged: atol if given, else a small
        # multiple of the output's own size (J v along a direction scaled to x has f's
        # units; the difference quotient's rounding error is about u·|f| / (eps·|x|)).
        if self.atol is not None:
            leaf_floor = {i: self.atol for i in float_idx}
            scale = self.atol
        else:
            hosts = {i: _to_host(out_leaves[i]) for i in float_idx}
            leaf_floor = {i: self.floor * float(np.linalg.norm(
                np.asarray(hosts[i], dtype=_double(hosts[i].dtype)).ravel()))
                for i in float_idx}
            sized = _inner([np.abs(_to_host(w_leaves[i])) for i in float_idx],
                           [np.abs(hosts[i]) for i in float_idx])
            scale = self.floor * sized.typical

        if "fwd" in self.modes:
            _, t = jvp(self.fun, self.args, v_tree)
            t_leaves, _ = tree_flatten(t)
            for i in float_idx:
                got, want = _to_host(t_leaves[i]), fd[i]
                err = float(np.linalg.norm((got - want).ravel())) / max(
                    float(np.linalg.norm(want.ravel())), float(np.linalg.norm(got.ravel())),
                    leaf_floor[i], 1e-300)
                self._record(f"{label}fwd (J v vs finite differences), output {i}", err,
                             self.rtol)
                if got.dtype != _to_host(out_leaves[i]).dtype:
                    raise GradCheckError(f"{label}fwd: tangent dtype {got.dtype} differs from the "
                                         f"output's {_to_host(out_leaves[i]).dtype}")
            jv_w = _inner([_to_host(w_leaves[i]) for i in float_idx],
                          [_to_host(t_leaves[i]) for i in float_idx])
        if "rev" in self.modes:
            ct = pull(w_tree)
            ct_leaves, _ = tree_flatten(ct)
            for x, g in zip(x_leaves, ct_leaves):
                gx, xx = _to_host(g), _to_host(x)
                if gx.shape != xx.shape:
                    raise GradCheckError(f"{label}rev: cotangent shape {gx.shape} differs from "
                                         f"the input's {xx.shape}")
                if gx.dtype != xx.dtype:
                    raise GradCheckError(f"{label}rev: cotangent dtype {gx.dtype} differs from "
                                         f"the input's {xx.dtype}")
            wj_v = _inner([_to_host(g) for g in ct_leaves], [_to_host(v) for v in v_leaves])
            self._record(f"{label}rev (<J^T w, v> vs finite differences)",
                         _rel(wj_v, fd_w, scale), self.rtol)
        if "fwd" in self.modes and "rev" in self.modes:
            dtypes = [_to_host(x).dtype for x in x_leaves]
            # both sides are computed in the inputs' precision: rounding only, which in
            # single precision is as large as the finite-difference error (FD is in double)
            exact = self.rtol if any(d in _SINGLE for d in dtypes) else 1e-10
            self._record(f"{label}dot-product test <w, J v> = <J^T w, v>",
                         _rel(jv_w, wj_v, scale), exact)

        if order > 1:
            if "rev" in self.modes:
                def pullback(*xs):
                    return vjp(self.fun, *xs)[1](w_tree)
                _Checker(pullback, self.args, self.modes, self.rtol, self.atol, self.eps,
                         self.rng, self.fd_double, self.errors, self.floor).run(
                             order - 1, label + "rev→")
            if "fwd" in self.modes:
                def pushforward(*xs):
                    return jvp(self.fun, xs, v_tree)[1]
                _Checker(pushforward, self.args, self.modes, self.rtol, self.atol, self.eps,
                         self.rng, self.fd_double, self.errors, self.floor).run(
                             order - 1, label + "fwd→")

    def _record(self, what, err, tol):
        self.errors.append((what, float(err), float(tol)))


def _like_device(ref, x):
    """Put the NumPy array x on ref's device (CuPy arrays stay on the GPU)."""
    xp = namespace_of(ref)
    return x if xp is np else xp.asarray(x)


def grad_errors(fun, args, modes=("fwd", "rev"), order=1, rtol=None, atol=None, eps=None,
                seed=0, fd_double=True):
    """Measure every check; return a list of (description, error, tolerance)."""
    args = tuple(args)
    leaves, _ = tree_flatten(args)
    dtypes = [np.asarray(_to_host(x)).dtype for x in leaves]
    if rtol is None:
        rtol = default_tolerance(dtypes)
    floor = 1e-9 if not any(d in _SINGLE for d in dtypes) else 1e-5
    if eps is None:
        eps = 1e-6 if fd_double or not any(d in _SINGLE for d in dtypes) else 1e-3
    errors = []
    rng = np.random.default_rng(seed)
    _Checker(fun, args, modes, rtol, atol, eps, rng, fd_double, errors, floor).run(order, "")
    return errors


def check_grads(fun, args, modes=("fwd", "rev"), order=2, rtol=None, atol=None, eps=None,
                seed=0, fd_double=True):
    """Check derivatives of ``fun`` at ``args``; raise GradCheckError on failure.

    fun      function of positional arrays (or nested tuples/lists/dicts of
             arrays) returning an array or a nested structure of arrays
    modes    which of "fwd" (JVP) and "rev" (VJP) to check
    order    1 checks first derivatives; 2 also checks the derivatives of the
             derivative functions (all four compositions of the modes)
    rtol     relative tolerance against finite differences (default 1e-6 in
             double precision, 2e-3 when any input is single precision)
    atol     absolute floor of the error's denominator (default: 1e-9 times the
             size of the output, 1e-5 in single precision — relative, so that a
             function is judged alike in any units)
    eps      relative finite-difference step (default 1e-6, in double precision):
             each input moves by eps times a random direction scaled to that
             input's root-mean-square size; the estimate extrapolates central
             differences at eps and eps/2 (Richardson), accurate to O(eps⁴) plus
             rounding
    fd_double  evaluate finite differences on inputs promoted to double
    """
    errors = grad_errors(fun, args, modes, order, rtol, atol, eps, seed, fd_double)
    failed = [(w, e, t) for w, e, t in errors if not (e <= t)]
    if failed:
        lines = "\n".join(f"  {w}: relative error {e:.3g} > {t:.1g}" for w, e, t in failed)
        raise GradCheckError(f"derivative check failed:\n{lines}")
    return errors


def check_vjp(fun, args, **kwargs):
    """First-order reverse-mode check (see check_grads)."""
    kwargs.setdefault("order", 1)
    return check_grads(fun, args, modes=("rev",), **kwargs)


def check_jvp(fun, args, **kwargs):
    """First-order forward-mode check (see check_grads)."""
    kwargs.setdefault("order", 1)
    return check_grads(fun, args, modes=("fwd",), **kwargs)
