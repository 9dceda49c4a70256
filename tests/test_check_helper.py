"""The gradient checker itself: it must reject wrong derivatives (first and second
order, forward and reverse) and must not reject right ones whose random inner
products happen to cancel."""

import numpy as np
import pytest

import linalgad as lad
from linalgad import ops
from linalgad.tape import Primitive
from linalgad.testing import GradCheckError, check_grads


def _square(forward_factor=1.0, reverse_factor=1.0, transpose_bug=False, frozen=False):
    """F = A @ A with derivative rules that can be made wrong on purpose."""
    def impl(A):
        return A @ A

    def vjp(G, needs, F, res, A):
        Ac = lad.stop_gradient(A) if frozen else A      # frozen: right value, no 2nd order
        At = Ac if transpose_bug else ops.mH(Ac)
        return (reverse_factor * (ops.matmul(G, At) + ops.matmul(At, G)),)

    def jvp(tangents, F, res, A):
        (Ad,) = tangents
        Ac = lad.stop_gradient(A) if frozen else A
        return forward_factor * (ops.matmul(Ad, Ac) + ops.matmul(Ac, Ad))

    return Primitive("square_for_checker_test", impl, vjp, jvp)


A = np.random.default_rng(0).standard_normal((4, 4))


def test_right_rules_pass_at_second_order():
    check_grads(_square(), (A,), order=2)


@pytest.mark.parametrize("kw, mode", [
    (dict(reverse_factor=1 + 1e-4), "rev"),
    (dict(forward_factor=1 + 1e-4), "fwd"),
    (dict(transpose_bug=True), "rev"),
])
def test_wrong_first_derivative_is_caught(kw, mode):
    with pytest.raises(GradCheckError, match=mode):
        check_grads(_square(**kw), (A,), modes=(mode,), order=1)


def test_wrong_second_derivative_is_caught():
    prim = _square(frozen=True)          # first derivatives right, their derivatives zero
    check_grads(prim, (A,), order=1)
    with pytest.raises(GradCheckError):
        check_grads(prim, (A,), order=2)


def test_cancelled_inner_product_is_measured_against_its_terms():
    """<w, v> ≈ 0 by cancellation: an absolute difference at finite-difference noise
    (1e-10 of the terms) is small, not a relative error of 2e-6; an error at the
    terms' scale still counts in full."""
    from linalgad.testing.check import _inner, _rel
    w = [np.array([1.0, 1.0])]
    a = _inner(w, [np.array([1.0, -1.0 + 1e-4])])
    b = _inner(w, [np.array([1.0 + 2e-10, -1.0 + 1e-4])])
    assert abs(a - b) / abs(a) > 1e-6                  # the old measure would fail this
    assert _rel(a, b, 1e-9) < 1e-9
    c = _inner(w, [np.array([1.01, -1.0 + 1e-4])])     # a 1% error in one term
    assert _rel(a, c, 1e-9) > 1e-3
    bad = Primitive("scaled", lambda x: x * 2.0, lambda g, n, o, r, x: (g * 2.002,),
                    lambda t, o, r, x: t[0] * 2.0)
    with pytest.raises(GradCheckError):
        check_grads(bad, (np.array([0.3, -0.3, 0.3]),), modes=("rev",), order=1)


@pytest.mark.parametrize("scale", [1e-8, 1e-3, 1e4, 1e8])
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.complex128])
def test_units_do_not_change_the_verdict(scale, dtype):
    """The step is relative to each input's size and the error floor to the
    output's, so a right rule passes and a wrong one fails at any scale: with a
    fixed step of 1e-6 an input of size 1e-8 was differenced over a step 100
    times its size (a right rule failed), and with an absolute floor of 1e-9 the
    derivatives of F = A @ A at 1e-8 (size 1e-8) were never compared at all."""
    X = (scale * A).astype(dtype)
    if np.dtype(dtype).kind == "c":
        X = X + 1j * scale * np.random.default_rng(1).standard_normal(A.shape)
    check_grads(_square(), (X,), order=2)
    check_grads(lambda a: lad.linalg.inv(a), (X + 5 * scale * np.eye(4),), order=1)
    for kw, mode in [(dict(reverse_factor=1 + 1e-2), "rev"),
                     (dict(forward_factor=1 + 1e-2), "fwd"),
                     (dict(transpose_bug=True), "rev")]:
        with pytest.raises(GradCheckError, match=mode):
            check_grads(_square(**kw), (X,), modes=(mode,), order=1)


@pytest.mark.parametrize("ratio", [1.0, 1e6, 1e9])
def test_a_small_output_beside_a_large_one_is_checked(ratio):
    """Each output's cotangent weight is scaled to its own J v: with unit weights a
    wrong VJP of an output 1e6 times smaller than another added nothing to <w, J v>
    and passed the reverse-mode check."""
    X = A + 5 * np.eye(4)
    check_grads(lambda a: (ratio * _square()(a), _square()(a)), (X,), order=1)
    with pytest.raises(GradCheckError, match="rev"):
        check_grads(lambda a: (ratio * _square()(a), _square(reverse_factor=1 + 1e-2)(a)),
                    (X,), modes=("rev",), order=1)
