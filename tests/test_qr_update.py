"""qr_update, qr_insert, qr_delete, qr_multiply (linalgad/rules/qr_update.py).

References are SciPy's own functions: values compared with them, derivatives with central
differences of them along perturbations that keep Q orthonormal (Q(t) = expm(tW) Q, W skew)
and R upper triangular — the inputs SciPy's functions are defined on.
"""

import inspect

import numpy as np
import pytest
import scipy.linalg as sl

import linalgad as lad
from linalgad import linalg as la

NAMES = ("qr_update", "qr_insert", "qr_delete", "qr_multiply")
H = 1e-6


def _rng(seed=0):
    return np.random.default_rng(seed)


def _randn(rng, shape, cplx=False):
    x = rng.standard_normal(shape)
    return x + 1j * rng.standard_normal(shape) if cplx else x


def _inner(X, Y):
    return float(np.sum(np.conj(X) * Y).real)


def _mH(X):
    return np.conj(np.swapaxes(X, -1, -2))


class Curve:
    """Inputs along a curve that stays in SciPy's domain: Q(t) = expm(tW) Q (W skew-Hermitian:
    orthonormal columns for every t), R(t) = R + t triu(dR), vectors + t d."""

    def __init__(self, rng, Q, R, vecs, cplx):
        m = Q.shape[0]
        W = _randn(rng, (m, m), cplx)
        self.W = W - _mH(W)
        self.Q, self.R, self.vecs = Q, R, vecs
        self.dR = np.triu(_randn(rng, R.shape, cplx))
        self.dv = [_randn(rng, v.shape, cplx) for v in vecs]

    def at(self, t):
        return (sl.expm(t * self.W) @ self.Q, self.R + t * self.dR,
                *(v + t * d for v, d in zip(self.vecs, self.dv)))

    def direction(self):
        return (self.W @ self.Q, self.dR, *self.dv)


def _weights(rng, outs, cplx, drop_completion=True):
    Ws = [_randn(rng, o.shape, cplx) for o in outs]
    Q1, R1 = outs[0], outs[1]
    if drop_completion and Q1.shape[0] == Q1.shape[1] and Q1.shape[0] > R1.shape[1]:
        Ws[0][:, R1.shape[1]:] = 0          # the completion columns: not differentiable
    return Ws


def _compare_with_scipy_fd(f_scipy, f_lad, curve, Ws, transform=None, rtol=1e-6):
    """Reverse and forward directional derivatives of L = Σ <W, out> against central
    differences of SciPy's function along the curve."""
    tr = transform or (lambda outs, xp: outs)

    def L_scipy(t):
        return sum(_inner(w, o) for w, o in zip(Ws, tr(f_scipy(*curve.at(t)), np)))

    def L_lad(*xs):
        return sum(lad.sum(lad.real(np.conj(w) * o)) for w, o in zip(Ws, tr(f_lad(*xs), lad)))

    fd = (L_scipy(H) - L_scipy(-H)) / (2 * H)
    args, dirs = curve.at(0.0), curve.direction()
    grads = lad.grad(L_lad, argnums=tuple(range(len(args))))(*args)
    rev = sum(_inner(g, d) for g, d in zip(grads, dirs))
    _, fwd = lad.jvp(L_lad, args, dirs)
    scale = abs(fd) + 1e-8
    assert abs(rev - fd) < rtol * scale, (rev, fd)
    assert abs(fwd - fd) < rtol * scale, (fwd, fd)
    return grads


def _normalized(outs, xp):
    """Q1 D, Dᴴ R1 with D = diag(r_jj/|r_jj|): the gauge-invariant factors."""
    Q1, R1 = outs[0], outs[1]
    k = min(R1.shape)
    d = (np.diag if xp is np else lad.diagonal)(R1[:k, :k])
    s = d / abs(d)
    sc = np.conj(s) if xp is np else lad.conj(s)
    return Q1[:, :k] * s, R1[:k] * sc[:, None]


# -- signatures and values -------------------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_signature_is_scipys(name):
    assert inspect.signature(getattr(la, name)) == inspect.signature(getattr(sl, name))


def _update_cases():
    for full in (True, False):
        for p in (None, 1, 2) if full else (None, 1, 4):
            yield "qr_update", full, (p,)
        for which, k, p in (("row", 0, None), ("row", 2, 2), ("row", -1, None), ("row", 6, 1),
                            ("col", 0, None), ("col", 2, 2), ("col", -2, None), ("col", 4, None)):
            yield "qr_insert", full, (which, k, p)
        for which, k, p in (("row", 0, 1), ("row", 2, 3), ("row", -2, 2), ("col", 0, 1),
                            ("col", 1, 2), ("col", -1, 1)):
            yield "qr_delete", full, (which, k, p)


def _call(mod, name, full, spec, Q, R, rng, cplx):
    m, n = Q.shape[0], R.shape[1]
    if name == "qr_update":
        (p,) = spec
        su, sv = ((m,), (n,)) if p is None else ((m, p), (n, p))
        u, v = _randn(rng, su, cplx), _randn(rng, sv, cplx)
        return (lambda Q, R, u, v: getattr(mod, name)(Q, R, u, v)), (u, v)
    if name == "qr_insert":
        which, k, p = spec
        if which == "row":
            shape = (n,) if p is None else (p, n)
        else:
            shape = (m,) if p is None else (m, p)
        u = _randn(rng, shape, cplx)
        return (lambda Q, R, u: getattr(mod, name)(Q, R, u, k, which)), (u,)
    which, k, p = spec
    return (lambda Q, R: getattr(mod, name)(Q, R, k, p, which)), ()


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.complex64, np.complex128])
def test_values_are_scipys(dtype):
    rng = _rng(1)
    cplx = np.dtype(dtype).kind == "c"
    for name, full, spec in _update_cases():
        A = _randn(rng, (6, 4), cplx).astype(dtype)
        Q, R = sl.qr(A, mode="full" if full else "economic")
        f_la, vecs = _call(la, name, full, spec, Q, R, rng, cplx)
        f_sl, _ = _call(sl, name, full, spec, Q, R, rng, cplx)
        vecs = tuple(v.astype(dtype) for v in vecs)
        got, want = f_la(Q, R, *vecs), f_sl(Q, R, *vecs)
        for g, w in zip(got, want):
            assert g.shape == w.shape and g.dtype == w.dtype == np.dtype(dtype)
            np.testing.assert_array_equal(g, w)           # SciPy's kernel, untouched


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.complex64, np.complex128])
def test_qr_multiply_values_are_scipys(dtype):
    rng = _rng(2)
    cplx = np.dtype(dtype).kind == "c"
    tol = 1e-5 if np.dtype(dtype) in (np.float32, np.complex64) else 1e-12
    for shape in ((6, 4), (4, 6), (4, 4)):
        a = _randn(rng, shape, cplx).astype(dtype)
        K = min(shape)
        for mode, cshape in (("left", (K,)), ("left", (K, 3)), ("right", (shape[0],)),
                             ("right", (2, shape[0]))):
            c = _randn(rng, cshape, cplx).astype(dtype)
            for conjugate in (False, True):
                for pivoting in (False, True):
                    want = sl.qr_multiply(a, c, mode, pivoting=pivoting, conjugate=conjugate)
                    got = la.qr_multiply(a, c, mode, pivoting=pivoting, conjugate=conjugate)
                    assert len(got) == len(want)
                    for g, w in zip(got, want):
                        assert g.shape == w.shape and g.dtype == w.dtype
                        np.testing.assert_allclose(g, w, rtol=tol, atol=tol)
                    # and under a transform (Q formed by linalgad's qr): the same values
                    traced = lad.jvp(lambda a: la.qr_multiply(a, c, mode, pivoting=pivoting,
                                                              conjugate=conjugate)[0],
                                     (a,), (np.zeros_like(a),))[0]
                    np.testing.assert_allclose(traced, want[0], rtol=tol, atol=tol)


# -- derivatives against SciPy's finite differences --------------------------------------------

@pytest.mark.parametrize("case", list(_update_cases()),
                         ids=lambda c: f"{c[0]}-{'full' if c[1] else 'economic'}-{c[2]}")
def test_real_derivatives_match_scipy(case):
    name, full, spec = case
    rng = _rng(3)
    A = rng.standard_normal((6, 4))
    Q, R = sl.qr(A, mode="full" if full else "economic")
    f_la, vecs = _call(la, name, full, spec, Q, R, rng, False)
    f_sl, _ = _call(sl, name, full, spec, Q, R, rng, False)
    curve = Curve(rng, Q, R, vecs, False)
    Ws = _weights(rng, f_sl(*curve.at(0.0)), False)
    _compare_with_scipy_fd(f_sl, f_la, curve, Ws)


def test_wide_update_insert_delete():
    rng = _rng(4)
    A = rng.standard_normal((3, 5))
    Q, R = sl.qr(A)
    for f_sl, f_la, vecs in (
            (sl.qr_update, la.qr_update, (rng.standard_normal(3), rng.standard_normal(5))),
            (lambda Q, R, u: sl.qr_insert(Q, R, u, 1, "col"),
             lambda Q, R, u: la.qr_insert(Q, R, u, 1, "col"), (rng.standard_normal((3, 2)),)),
            (lambda Q, R, u: sl.qr_insert(Q, R, u, 3, "row"),
             lambda Q, R, u: la.qr_insert(Q, R, u, 3, "row"), (rng.standard_normal(5),)),
            (lambda Q, R: sl.qr_delete(Q, R, 0, 1, "row"),
             lambda Q, R: la.qr_delete(Q, R, 0, 1, "row"), ())):
        curve = Curve(rng, Q, R, vecs, False)
        Ws = _weights(rng, f_sl(*curve.at(0.0)), False)
        _compare_with_scipy_fd(f_sl, f_la, curve, Ws)


@pytest.mark.parametrize("case", [c for c in _update_cases() if c[2][-1] not in (3, 4)],
                         ids=lambda c: f"{c[0]}-{'full' if c[1] else 'economic'}-{c[2]}")
def test_complex_gauge_invariant_derivatives_match_scipy(case):
    name, full, spec = case
    rng = _rng(5)
    A = _randn(rng, (6, 4), True)
    Q, R = sl.qr(A, mode="full" if full else "economic")
    f_la, vecs = _call(la, name, full, spec, Q, R, rng, True)
    f_sl, _ = _call(sl, name, full, spec, Q, R, rng, True)
    curve = Curve(rng, Q, R, vecs, True)
    Ws = [_randn(rng, o.shape, True) for o in _normalized(f_sl(*curve.at(0.0)), np)]
    _compare_with_scipy_fd(f_sl, f_la, curve, Ws, transform=_normalized)


def test_complex_phases_move_and_the_tangent_differs_by_a_gauge_term():
    rng = _rng(6)
    A = _randn(rng, (5, 3), True)
    Q, R = sl.qr(A, mode="economic")
    curve = Curve(rng, Q, R, (_randn(rng, 5, True), _randn(rng, 3, True)), True)
    Q1, R1 = sl.qr_update(*curve.at(0.0))
    ph = np.angle(np.diag(sl.qr_update(*curve.at(1e-4))[1])) - np.angle(np.diag(R1))
    assert np.abs(ph).max() > 1e-6          # SciPy's phases are not locally constant
    _, (tQ, tR) = lad.jvp(lambda *x: tuple(la.qr_update(*x)), curve.at(0.0), curve.direction())
    fQ, fR = [(p - m) / (2 * H) for p, m in zip(sl.qr_update(*curve.at(H)),
                                                 sl.qr_update(*curve.at(-H)))]
    Theta = np.diag(np.diag(_mH(Q1) @ (fQ - tQ)))
    assert np.abs(Theta.real).max() < 1e-6 and np.abs(Theta.imag).max() > 1e-4
    assert np.linalg.norm(fQ - tQ - Q1 @ Theta) < 1e-6 * np.linalg.norm(fQ)
    assert np.linalg.norm(fR - tR + Theta @ R1) < 1e-6 * np.linalg.norm(fR)
    # fixed phases: Im(conj(r_ii) dr_ii) = 0
    assert np.abs((np.conj(np.diag(R1)) * np.diag(tR)).imag).max() < 1e-12


def test_complex_phase_dependent_loss_raises_and_invariant_ones_do_not():
    rng = _rng(7)
    A = _randn(rng, (5, 3), True)
    Q, R = sl.qr(A)
    u, v = _randn(rng, 5, True), _randn(rng, 3, True)
    W = _randn(rng, (5, 3), True)
    with pytest.raises(ValueError, match="qr_update: the loss depends on the phases"):
        lad.grad(lambda u: lad.sum(lad.real(la.qr_update(Q, R, u, v)[0][:, :3] * W)))(u)
    with pytest.raises(ValueError, match="qr_delete: the loss depends on the phases"):
        lad.grad(lambda Q: lad.sum(lad.real(la.qr_delete(Q, R, 1, 1, "col")[1])))(Q)

    def f(u):     # |R1|² and Q1 R1 Wᴴ-type products: invariant
        Q1, R1 = la.qr_update(Q, R, u, v)
        return lad.sum(lad.abs(R1) ** 2) + lad.sum(lad.real((Q1[:, :3] @ R1[:3]) * W))
    g = lad.grad(f)(u)

    def f_np(u):
        Q1, R1 = sl.qr_update(Q, R, u, v)
        return np.sum(np.abs(R1) ** 2) + np.sum(np.real((Q1[:, :3] @ R1[:3]) * W))
    fd = np.array([(f_np(u + H * e) - f_np(u - H * e)) / (2 * H)
                   + 1j * (f_np(u + 1j * H * e) - f_np(u - 1j * H * e)) / (2 * H)
                   for e in np.eye(5)])
    assert np.linalg.norm(g - fd) < 1e-6 * np.linalg.norm(fd)


def test_completion_columns_raise_in_reverse_mode_only():
    rng = _rng(8)
    A = rng.standard_normal((6, 4))
    Q, R = sl.qr(A)
    u, v = rng.standard_normal(6), rng.standard_normal(4)
    with pytest.raises(ValueError, match=r"qr_update: the loss depends on the last 2 columns"):
        lad.grad(lambda u: lad.sum(la.qr_update(Q, R, u, v)[0] ** 3))(u)
    with pytest.raises(ValueError, match=r"qr_insert: the loss depends on the last 3 columns"):
        lad.grad(lambda Q: lad.sum(la.qr_insert(Q, R, v, 1)[0] ** 3))(Q)
    # the determined part is fine, and forward mode gives qr's completion convention
    lad.grad(lambda u: lad.sum(la.qr_update(Q, R, u, v)[0][:, :4] ** 3))(u)
    _, (tQ, _) = lad.jvp(lambda u: tuple(la.qr_update(Q, R, u, v)), (u,), (v[[0, 1, 2, 3, 0, 1]],))
    Q1 = sl.qr_update(Q, R, u, v)[0]
    assert np.allclose(tQ[:, 4:], -Q1[:, :4] @ (tQ[:, :4].T @ Q1[:, 4:]))


def test_qr_multiply_derivatives_match_scipy():
    for cplx in (False, True):
        rng = _rng(9)
        for shape, mode, cshape in (((6, 4), "right", (2, 6)), ((6, 4), "left", (4, 3)),
                                    ((4, 6), "right", (4,)), ((4, 6), "left", (4,))):
            for conjugate in (False, True):
                for pivoting in (False, True):
                    a = _randn(rng, shape, cplx) * 2.0 ** -np.arange(shape[1])
                    c = _randn(rng, cshape, cplx)
                    kw = dict(mode=mode, conjugate=conjugate, pivoting=pivoting)
                    Ws = [_randn(rng, o.shape, cplx) for o in sl.qr_multiply(a, c, **kw)[:2]]
                    da, dc = _randn(rng, a.shape, cplx), _randn(rng, c.shape, cplx)

                    def L_sl(t):
                        out = sl.qr_multiply(a + t * da, c + t * dc, **kw)
                        return sum(_inner(w, o) for w, o in zip(Ws, out))

                    def L_la(a, c):
                        out = la.qr_multiply(a, c, **kw)
                        return sum(lad.sum(lad.real(np.conj(w) * o)) for w, o in zip(Ws, out))
                    fd = (L_sl(H) - L_sl(-H)) / (2 * H)
                    ga, gc = lad.grad(L_la, argnums=(0, 1))(a, c)
                    assert abs(_inner(ga, da) + _inner(gc, dc) - fd) < 1e-6 * abs(fd)
                    _, fwd = lad.jvp(L_la, (a, c), (da, dc))
                    assert abs(fwd - fd) < 1e-6 * abs(fd)


def test_single_precision_gradients():
    rng = _rng(10)
    A = rng.standard_normal((5, 3))
    Q, R = sl.qr(A)
    u, v = rng.standard_normal(5), rng.standard_normal(3)
    W = rng.standard_normal((5, 3))
    f = lambda u: lad.sum(la.qr_update(Q, R, u, v)[1] * W)
    g64 = lad.grad(f)(u)
    g32 = lad.grad(lambda u: lad.sum(la.qr_update(Q.astype(np.float32), R.astype(np.float32),
                                                   u, v.astype(np.float32))[1] * W))(
        u.astype(np.float32))
    assert g32.dtype == np.float32
    np.testing.assert_allclose(g32, g64, rtol=1e-3, atol=1e-4)


def test_second_order_matches_finite_differences_of_the_gradient():
    rng = _rng(11)
    A = rng.standard_normal((5, 3))
    Q, R = sl.qr(A)
    curve = Curve(rng, Q, R, (rng.standard_normal(5), rng.standard_normal(3)), False)
    WQ, WR = rng.standard_normal((5, 3)), rng.standard_normal((5, 3))

    def L(Q, R, u, v):
        Q1, R1 = la.qr_update(Q, R, u, v)
        return lad.sum(Q1[:, :3] ** 2 * WQ) + lad.sum(R1 ** 3 * WR)
    args, dirs = curve.at(0.0), curve.direction()
    Hv = lad.hvp(L, args, dirs)
    grad = lad.grad(L, argnums=(0, 1, 2, 3))
    fd = [(p - m) / (2e-5) for p, m in zip(grad(*curve.at(1e-5)), grad(*curve.at(-1e-5)))]
    # the curve is not a straight line in Q: its second-order term W² Q enters the
    # finite difference of the gradient only through O(h²), and hvp is the straight-line one
    for hv, f in zip(Hv, fd):
        assert np.linalg.norm(hv - f) < 1e-5 * np.linalg.norm(f) + 1e-8
    # and the gradient itself against SciPy (real, full Q, loss on the determined part)
    Ws = _weights(rng, sl.qr_update(*args), False)
    _compare_with_scipy_fd(sl.qr_update, la.qr_update, curve, Ws)


# -- arguments and errors ----------------------------------------------------------------------

def _both_raise(exc, f_sl, f_la, name):
    with pytest.raises(exc):
        f_sl()
    with pytest.raises(exc, match=name):
        f_la()


def test_shape_errors_are_scipys_exceptions_naming_the_function():
    rng = _rng(12)
    A = rng.standard_normal((6, 4))
    Q, R = sl.qr(A)
    Qe, Re = sl.qr(A, mode="economic")
    r = rng.standard_normal
    for mod_call, name in (
            (lambda m: m.qr_update(Q, R, r((6, 2)), r(4)), "qr_update"),
            (lambda m: m.qr_update(Q, R, r((6, 1)), r((4, 2))), "qr_update"),
            (lambda m: m.qr_update(Q, R[:3], r(6), r(4)), "qr_update"),
            (lambda m: m.qr_update(Q[:, :5], R[:5], r(6), r(4)), "qr_update"),
            (lambda m: m.qr_update(Q, R, r(5), r(4)), "qr_update"),
            (lambda m: m.qr_insert(Q, R, r(4), 2, which="x"), "qr_insert"),
            (lambda m: m.qr_insert(Q, R, r(5), 2), "qr_insert"),
            (lambda m: m.qr_insert(Q, R, r(4), 7), "qr_insert"),
            (lambda m: m.qr_insert(Q, R, r(5), 1, "col"), "qr_insert"),
            (lambda m: m.qr_delete(Q, R, 2, which="x"), "qr_delete"),
            (lambda m: m.qr_delete(Q, R, 7), "qr_delete"),
            (lambda m: m.qr_delete(Q, R, 2, 5), "qr_delete"),
            (lambda m: m.qr_delete(Q, R, 0, 0), "qr_delete"),
            (lambda m: m.qr_delete(Q, R, 1, 4, "col"), "qr_delete"),
            (lambda m: m.qr_multiply(A, r((3, 5))), "qr_multiply"),
            (lambda m: m.qr_multiply(A, r(6), "left"), "qr_multiply"),
            (lambda m: m.qr_multiply(A, r((3, 6)), mode="x"), "qr_multiply"),
            (lambda m: m.qr_update(Q, R, np.full(6, np.nan), r(4)), "qr_update"),
            (lambda m: m.qr_update(Q, R, r(6), r(4), np.nan), None)):
        if name is None:
            continue
        _both_raise(ValueError, lambda: mod_call(sl), lambda: mod_call(la), name)
    # where SciPy fails inside LAPACK (a rank-p update beyond its limit), a clear ValueError
    with pytest.raises(ValueError):
        sl.qr_update(Q, R, r((6, 3)), r((4, 3)))
    with pytest.raises(ValueError, match="qr_update: a rank-3 update of the full"):
        la.qr_update(Q, R, r((6, 3)), r((4, 3)))
    with pytest.raises(ValueError, match="qr_update: a rank-5 update of the economic"):
        la.qr_update(Qe, Re, r((6, 5)), r((4, 5)))
    with pytest.raises(ValueError, match="qr_update: Q must be 2-D"):
        la.qr_update(np.stack([Q, Q]), np.stack([R, R]), r((2, 6, 1)), r((2, 4, 1)))
    with pytest.raises(ValueError, match="qr_multiply: the batch shapes"):
        la.qr_multiply(r((2, 6, 4)), r((3, 3, 6)))
    # a column in span(Q): SciPy's LinAlgError, named
    with pytest.raises(np.linalg.LinAlgError, match="qr_insert: One of the columns"):
        la.qr_insert(Qe, Re, A[:, 0], 4, "col")
    with pytest.raises(np.linalg.LinAlgError):
        sl.qr_insert(Qe, Re, A[:, 0], 4, "col")


def test_keywords_integral_k_and_promotion():
    rng = _rng(13)
    A = rng.standard_normal((6, 4))
    Q, R = sl.qr(A)
    u = rng.standard_normal(4)
    got = la.qr_insert(Q, R, u, 2.0, which="row", rcond=None, overwrite_qru=True,
                       check_finite=False)
    want = sl.qr_insert(Q, R, u, 2.0)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)
    w = rng.standard_normal(6)
    Q32 = Q.astype(np.float32)
    Q1, R1 = la.qr_update(Q32, R, w, u)                   # mixed dtypes: SciPy raises
    assert Q1.dtype == R1.dtype == np.float64
    np.testing.assert_allclose(Q1 @ R1, Q32.astype(np.float64) @ R + np.outer(w, u), atol=1e-6)
    CQ, _ = la.qr_multiply(A, rng.standard_normal((2, 6)) + 1j)        # complex, not dropped
    assert CQ.dtype == np.complex128 and np.abs(CQ.imag).max() > 0
    Ql, Rl = la.qr_update(Q.tolist(), R.tolist(), [1.0] * 6, [1.0] * 4)  # lists are arrays
    np.testing.assert_allclose(Rl, sl.qr_update(Q, R, np.ones(6), np.ones(4))[1], atol=1e-14)


def test_lower_triangle_of_R_is_not_read():
    rng = _rng(14)
    A = rng.standard_normal((5, 3))
    Q, R = sl.qr(A)
    u, v = rng.standard_normal(5), rng.standard_normal(3)
    g = lad.grad(lambda R: lad.sum(la.qr_update(Q, R, u, v)[1] ** 2), )(R)
    assert np.all(np.tril(g, -1) == 0)


def test_empty_deletion():
    rng = _rng(15)
    Q, R = sl.qr(rng.standard_normal((6, 4)))
    for g, w in zip(la.qr_delete(Q, R, 0, 4, "col"), sl.qr_delete(Q, R, 0, 4, "col")):
        assert g.shape == w.shape == g.shape
    g = lad.grad(lambda R: lad.sum(la.qr_delete(Q, R, 0, 4, "col")[1]))(R)
    assert g.shape == R.shape and np.all(g == 0)


@pytest.mark.parametrize("cplx", [False, True])
def test_economic_inputs_whose_result_is_square_or_wide(cplx):
    """SciPy returns a full square Q1 there; derivatives against its finite differences."""
    rng = _rng(16)
    A = _randn(rng, (6, 4), cplx)
    Q, R = sl.qr(A, mode="economic")
    for f_sl, f_la, vecs, shapes in (
            (lambda Q, R: sl.qr_delete(Q, R, 1, 3, "row"),
             lambda Q, R: la.qr_delete(Q, R, 1, 3, "row"), (), ((3, 3), (3, 4))),
            (lambda Q, R: sl.qr_delete(Q, R, 0, 2, "row"),
             lambda Q, R: la.qr_delete(Q, R, 0, 2, "row"), (), ((4, 4), (4, 4))),
            (lambda Q, R, u: sl.qr_insert(Q, R, u, 1, "col"),
             lambda Q, R, u: la.qr_insert(Q, R, u, 1, "col"), (_randn(rng, (6, 3), cplx),),
             ((6, 6), (6, 7)))):
        curve = Curve(rng, Q, R, vecs, cplx)
        out = f_sl(*curve.at(0.0))
        assert tuple(o.shape for o in out) == shapes
        assert tuple(o.shape for o in f_la(*curve.at(0.0))) == shapes
        if cplx:
            Ws = [_randn(rng, o.shape, True) for o in _normalized(out, np)]
            _compare_with_scipy_fd(f_sl, f_la, curve, Ws, transform=_normalized)
        else:
            _compare_with_scipy_fd(f_sl, f_la, curve, _weights(rng, out, False))


@pytest.mark.parametrize("mode, ashape, cshape", [
    ("right", (2, 5, 3), (2, 4, 5)), ("left", (2, 5, 3), (2, 3, 4)),
    ("right", (2, 5, 3), (5,)), ("left", (3, 4), (2, 3, 2)), ("right", (2, 3, 5), (4, 3)),
    ("left", (2, 1, 4, 4), (3, 4, 2))])
@pytest.mark.parametrize("pivoting", [False, True])
def test_qr_multiply_stacks_match_scipy_batched(mode, ashape, cshape, pivoting):
    """SciPy 1.17 batches qr_multiply over a and c (broadcast leading dimensions; R and P
    repeated over c's): the same values and shapes, and gradients against differences of
    SciPy's batched function."""
    rng = np.random.default_rng(50)
    a, c = rng.standard_normal(ashape), rng.standard_normal(cshape)
    ref = sl.qr_multiply(a, c, mode=mode, pivoting=pivoting)
    out = la.qr_multiply(a, c, mode=mode, pivoting=pivoting)
    assert len(out) == len(ref)
    for x, y in zip(out, ref):
        assert x.shape == y.shape and x.dtype == y.dtype
        np.testing.assert_allclose(x, y, rtol=1e-12, atol=1e-12)
    G, H = rng.standard_normal(ref[0].shape), rng.standard_normal(ref[1].shape)
    da, dc = rng.standard_normal(a.shape), rng.standard_normal(c.shape)

    def loss(a, c):
        CQ, R = la.qr_multiply(a, c, mode=mode, pivoting=pivoting)[:2]
        return lad.sum(G * CQ) + lad.sum(H * R)
    ga, gc = lad.grad(loss, argnums=(0, 1))(a, c)
    assert ga.shape == a.shape and gc.shape == c.shape
    f = lambda t: sum(np.sum(W * X) for W, X in zip(               # noqa: E731
        (G, H), sl.qr_multiply(a + t * da, c + t * dc, mode=mode, pivoting=pivoting)))
    h = 1e-6
    fd = (f(h) - f(-h)) / (2 * h)
    assert abs(np.sum(ga * da) + np.sum(gc * dc) - fd) <= 1e-7 * max(1.0, abs(fd))
    _, t = lad.jvp(lambda a, c: la.qr_multiply(a, c, mode=mode, pivoting=pivoting)[0],
                   (a, c), (da, dc))
    ref_t = (sl.qr_multiply(a + h * da, c + h * dc, mode=mode, pivoting=pivoting)[0]
             - sl.qr_multiply(a - h * da, c - h * dc, mode=mode, pivoting=pivoting)[0]) / (2 * h)
    np.testing.assert_allclose(t, ref_t, rtol=1e-6, atol=1e-7)


def test_qr_multiply_empty_stack():
    out = la.qr_multiply(np.zeros((0, 5, 3)), np.zeros((0, 2, 5)))
    assert [x.shape for x in out] == [(0, 2, 3), (0, 3, 3)]
