"""solve_circulant / circulant: SciPy's values, dtypes, axes, broadcasting and errors;
derivatives against independent dense references (linalgad's own solve and pinv of the
assembled circulant, NumPy's dense solve) and finite differences, at any order, including
singular='lstsq' with exactly zero eigenvalues."""

import inspect

import numpy as np
import pytest
import scipy.linalg

import linalgad as lad
from linalgad.rules import circulant as R
from linalgad.testing import check_grads

la = lad.linalg


def _rand(rng, shape, complex_=False):
    x = rng.standard_normal(shape)
    return x + 1j * rng.standard_normal(shape) if complex_ else x


def _c(rng, shape, complex_=False):
    """A well-conditioned c: a dominant c[0]."""
    c = _rand(rng, shape, complex_) / np.sqrt(shape[-1])
    c[..., 0] += 3
    return c


def _close(got, want, rtol=1e-12):
    assert got.shape == want.shape, (got.shape, want.shape)
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * max(abs(want).max(), 1e-300))


def test_signatures_match_scipy():
    assert inspect.signature(la.solve_circulant) == inspect.signature(
        scipy.linalg.solve_circulant)
    assert list(inspect.signature(la.circulant).parameters) == ["c"]


# -- values ----------------------------------------------------------------------------------

@pytest.mark.parametrize("n", [1, 2, 5, 64, 101])
@pytest.mark.parametrize("cc,bc", [(False, False), (True, False), (False, True), (True, True)])
def test_values_match_scipy(n, cc, bc):
    rng = np.random.default_rng(n)
    c = _c(rng, (n,), cc)
    for b in (_rand(rng, (n,), bc), _rand(rng, (n, 3), bc)):
        x = la.solve_circulant(c, b)
        want = scipy.linalg.solve_circulant(c, b)
        assert x.dtype == want.dtype
        _close(x, want)
        _close(x, np.linalg.solve(scipy.linalg.circulant(c), b), rtol=1e-10)
    np.testing.assert_array_equal(la.circulant(c), scipy.linalg.circulant(c))


def test_scipys_broadcasting_example_and_axes():
    c = np.array([[1.5, 2, 3, 0, 0], [1, 1, 4, 3, 2]])
    b = np.arange(15.0).reshape(-1, 5)
    for kw in ({"baxis": -1, "outaxis": -1}, {"baxis": -1}, {"baxis": -1, "outaxis": 1},
               {"baxis": 1, "outaxis": -2}):
        x = la.solve_circulant(c[:, np.newaxis, :], b, **kw)
        _close(x, scipy.linalg.solve_circulant(c[:, np.newaxis, :], b, **kw))
    rng = np.random.default_rng(3)
    cs = np.moveaxis(_c(rng, (2, 1, 6), True), -1, 0)            # (6, 2, 1): caxis=0
    bs = _rand(rng, (2, 6, 3))                                   # baxis=1: stacks (2, 3)
    for outaxis in (0, 1, 2, -1):
        kw = {"caxis": 0, "baxis": 1, "outaxis": outaxis}
        _close(la.solve_circulant(cs, bs, **kw), scipy.linalg.solve_circulant(cs, bs, **kw))
    # a 0-d c and b are vectors of one entry, as in SciPy
    _close(la.solve_circulant(2.0, 3.0), scipy.linalg.solve_circulant(2.0, 3.0))


def test_dtypes_follow_scipy():
    rng = np.random.default_rng(4)
    c, b = _c(rng, (8,)), _rand(rng, (8, 2))
    for ct, bt in ((np.float32, np.float32), (np.float32, np.float64), (np.complex64, np.float32),
                   (np.float32, np.complex64), (np.int64, np.int64), (np.float64, np.complex128)):
        cc = (c * 10).astype(ct) if ct is np.int64 else c.astype(ct)
        bb = (b * 10).astype(bt) if bt is np.int64 else b.astype(bt)
        x = la.solve_circulant(cc, bb)
        want = scipy.linalg.solve_circulant(cc, bb)
        assert x.dtype == want.dtype, (ct, bt, x.dtype, want.dtype)
        # SciPy transforms a float32 c in single precision even against a float64 b;
        # linalgad promotes first: compare with SciPy on the promoted inputs
        single = x.dtype in (np.float32, np.complex64)
        exact = scipy.linalg.solve_circulant(cc.astype(x.dtype), bb.astype(x.dtype))
        _close(x, exact, rtol=1e-5 if single else 1e-12)
        _close(x, want, rtol=1e-5)
    assert la.solve_circulant(c.astype(np.float32), b.astype(np.float32)).dtype == np.float32
    for ct in (np.int64, np.float32, np.complex64):
        cv = np.arange(1, 5).astype(ct)
        assert la.circulant(cv).dtype == scipy.linalg.circulant(cv).dtype == ct


def test_lstsq_values():
    # SciPy's own example: a singular circulant, its least-squares solution
    c, b = np.array([1.0, 1, 0, 0]), np.array([1.0, 2, 3, 4])
    _close(la.solve_circulant(c, b, singular="lstsq"),
           scipy.linalg.solve_circulant(c, b, singular="lstsq"))
    _close(la.solve_circulant(c, b, singular="lstsq"), np.array([0.25, 1.25, 2.25, 1.25]))
    rng = np.random.default_rng(5)
    for complex_ in (False, True):
        c = R._with_zero_modes(rng, (3, 9), np.complex128 if complex_ else np.float64)
        B = _rand(rng, (3, 9, 2), complex_)
        for tol in (None, 0.25):
            x = la.solve_circulant(c[:, None, :], B, singular="lstsq", tol=tol, baxis=-2,
                                   outaxis=-2)
            for i in range(3):
                pinv = np.linalg.pinv(scipy.linalg.circulant(c[i]), rcond=1e-10)
                _close(x[i], pinv @ B[i], rtol=1e-10)
            # SciPy's mask is right with the vectors last
            want = scipy.linalg.solve_circulant(c[:, None, :], np.swapaxes(B, -1, -2),
                                                singular="lstsq", tol=tol, baxis=-1, outaxis=-1)
            _close(x, np.swapaxes(want, -1, -2), rtol=1e-10)
    # a given tol drops eigenvalues that are small but not zero; the rest are divided
    c = np.fft.ifft([3.0, 0.1, 2.0, 0.1]).real
    x = la.solve_circulant(c, b, singular="lstsq", tol=0.5)
    _close(x, scipy.linalg.solve_circulant(c, b, singular="lstsq", tol=0.5))
    _close(x, scipy.linalg.pinv(scipy.linalg.circulant(c), atol=0.5, rtol=0) @ b, rtol=1e-10)
    # 2-D b with SciPy's default baxis=0: SciPy 1.17's mask fails there, linalgad solves
    B = rng.standard_normal((4, 3))
    _close(la.solve_circulant(np.array([1.0, 1, 0, 0]), B, singular="lstsq"),
           np.linalg.pinv(scipy.linalg.circulant([1.0, 1, 0, 0])) @ B, rtol=1e-10)


def test_circulant_stacks_scalars_and_empty():
    rng = np.random.default_rng(6)
    for shape in ((5,), (2, 3, 4), (0, 3), (2, 0), (0,), (1,)):
        c = rng.standard_normal(shape)
        got, want = la.circulant(c), scipy.linalg.circulant(c)
        assert got.shape == want.shape
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(la.circulant(5.0), scipy.linalg.circulant(5.0))
    np.testing.assert_array_equal(la.circulant([1, 2, 3]), scipy.linalg.circulant([1, 2, 3]))


# -- errors and empty input ------------------------------------------------------------------

def test_errors():
    with pytest.raises(np.linalg.LinAlgError, match="solve_circulant: near singular"):
        la.solve_circulant([1.0, 1, 0, 0], [1.0, 2, 3, 4])
    with pytest.raises(np.linalg.LinAlgError, match=r"matrix 1 of the stack"):
        la.solve_circulant([[3.0, 1, 0, 0], [1.0, 1, 0, 0]], [1.0, 2, 3, 4])
    with pytest.raises(np.linalg.LinAlgError, match="solve_circulant"):
        la.solve_circulant(np.zeros(3), np.ones(3))
    with pytest.raises(np.linalg.LinAlgError):                   # a tol above every |λ|
        la.solve_circulant([3.0, 1, 0], [1.0, 2, 3], tol=10)
    with pytest.raises(ValueError, match="solve_circulant: shapes of c"):
        la.solve_circulant(np.ones(3), np.ones(4))
    with pytest.raises(ValueError, match="'baxis' entry is out of bounds"):
        la.solve_circulant(np.ones(3), np.ones(3), baxis=1)
    with pytest.raises(ValueError, match="'caxis' entry is out of bounds"):
        la.solve_circulant(np.ones(3), np.ones(3), caxis=-2)
    with pytest.raises(np.exceptions.AxisError, match="outaxis"):
        la.solve_circulant([3.0, 1, 0], np.ones(3), outaxis=1)
    with pytest.raises(ValueError, match="do not broadcast"):
        la.solve_circulant(_c(np.random.default_rng(0), (3, 4)), np.ones((2, 4)), baxis=-1)
    with pytest.raises(ValueError, match="singular must be"):
        la.solve_circulant([3.0, 1, 0], np.ones(3), singular="nope")
    with pytest.raises(ValueError, match=r"tol of shape \(3,\) must have a last dimension of 1"):
        la.solve_circulant([3.0, 1, 0], np.ones(3), tol=np.ones(3))
    with pytest.raises(ValueError, match="solve_circulant"):
        la.solve_circulant(None, np.ones(3))


def test_empty():
    for c, b, kw in ((np.zeros(0), np.zeros(0), {}), (np.ones((2, 0)), np.ones((3, 0)),
                                                     {"baxis": -1}),
                     (np.ones(3), np.ones((3, 0)), {}),
                     (np.ones(3, np.float32), np.ones((3, 0), np.float32), {})):
        x = la.solve_circulant(c, b, **kw)
        want = scipy.linalg.solve_circulant(c, b, **kw)
        assert x.shape == want.shape and x.dtype == want.dtype
        gc, gb = lad.grad(lambda c, b: lad.sum(la.solve_circulant(c, b, **kw)),
                          argnums=(0, 1))(c, b)
        assert gc.shape == c.shape and gb.shape == b.shape and not np.any(gc)
    # an empty stack of c against a vector b
    c, b = np.ones((0, 3)), np.arange(3.0)
    x = la.solve_circulant(c, b)
    assert x.shape == scipy.linalg.solve_circulant(c, b).shape == (3, 0)
    g = lad.grad(lambda c: lad.sum(la.circulant(c)))(np.ones((2, 0)))
    assert g.shape == (2, 0)


# -- derivatives -----------------------------------------------------------------------------

def _dense(c, b):
    """The independent reference: linalgad's dense solve of the assembled circulant."""
    return la.solve(la.circulant(c), b)


@pytest.mark.parametrize("n", [1, 6, 65])
@pytest.mark.parametrize("complex_", [False, True])
def test_gradients_match_the_dense_solve(n, complex_):
    rng = np.random.default_rng(7 + n)
    c, B, W = _c(rng, (n,), complex_), _rand(rng, (n, 3), complex_), _rand(rng, (n, 3), complex_)

    def loss(solver):
        return lambda c, B: lad.sum(lad.real(lad.conj(W) * solver(c, B)) ** 2)

    got = lad.grad(loss(la.solve_circulant), argnums=(0, 1))(c, B)
    want = lad.grad(loss(_dense), argnums=(0, 1))(c, B)
    for g, w in zip(got, want):
        assert g.dtype == w.dtype
        _close(g, w, rtol=1e-9)
    # the same cotangents from NumPy's dense solve and the formulas of circulant.md
    C = scipy.linalg.circulant(c)
    X = np.linalg.solve(C, B)
    Xbar = 2 * np.real(np.conj(W) * X) * W
    Bh = np.linalg.solve(C.conj().T, Xbar)
    Abar = -Bh @ X.conj().T                                        # the dense rule
    cbar = np.array([sum(Abar[i, (i - d) % n] for i in range(n)) for d in range(n)])
    _close(got[0], cbar if complex_ else cbar.real, rtol=1e-9)
    _close(got[1], Bh if complex_ else Bh.real, rtol=1e-9)
    # forward mode
    cd, Bd = _rand(rng, (n,), complex_), _rand(rng, (n, 3), complex_)
    _, Xd = lad.jvp(la.solve_circulant, (c, B), (cd, Bd))
    _, Xd_dense = lad.jvp(_dense, (c, B), (cd, Bd))
    _close(Xd, Xd_dense, rtol=1e-9)
    _close(Xd, np.linalg.solve(C, Bd - scipy.linalg.circulant(cd) @ X), rtol=1e-9)


def test_second_order_matches_the_dense_solve():
    rng = np.random.default_rng(8)
    n = 12
    c, b = _c(rng, (n,)), rng.standard_normal(n)
    dirs = (rng.standard_normal(n), rng.standard_normal(n))

    def loss(solver):
        return lambda c, b: lad.sum(lad.sin(solver(c, b)))

    got = lad.hvp(loss(la.solve_circulant), (c, b), dirs)
    want = lad.hvp(loss(_dense), (c, b), dirs)
    for g, w in zip(got, want):
        _close(g, w, rtol=1e-9)
    J = lad.jacfwd(lambda c: la.solve_circulant(c, b))(c)
    _close(J, lad.jacrev(lambda c: _dense(c, b))(c), rtol=1e-9)


def test_stacks_and_axes_match_per_pair_dense_solves():
    rng = np.random.default_rng(9)
    n = 7
    c = np.moveaxis(_c(rng, (2, 1, n), True), -1, 0)             # (n, 2, 1), caxis=0
    B = _rand(rng, (3, n), True)                                 # baxis=-1: stack (3,)
    kw = {"caxis": 0, "baxis": -1, "outaxis": 1}                 # x (2, n, 3)
    W = _rand(rng, (2, n, 3), True)
    f = lambda c, B: lad.sum(lad.real(lad.conj(W) * la.solve_circulant(c, B, **kw)))
    gc, gB = lad.grad(f, argnums=(0, 1))(c, B)

    def dense(c, B):
        cols = [[_dense(c[:, i, 0], B[j]) for j in range(3)] for i in range(2)]
        return lad.stack([lad.stack(row, axis=-1) for row in cols], axis=0)

    x = la.solve_circulant(c, B, **kw)
    _close(x, dense(c, B), rtol=1e-10)
    fd = lambda c, B: lad.sum(lad.real(lad.conj(W) * dense(c, B)))
    hc, hB = lad.grad(fd, argnums=(0, 1))(c, B)
    _close(gc, hc, rtol=1e-9)
    _close(gB, hB, rtol=1e-9)
    check_grads(lambda c, B: la.solve_circulant(c, B, **kw), (c, B), order=2)


@pytest.mark.parametrize("complex_", [False, True])
def test_lstsq_gradients_match_the_dense_pseudo_inverse(complex_):
    """singular='lstsq' with exactly zero eigenvalues: the derivative equals linalgad's
    constant-rank derivative of pinv of the assembled circulant (whose extra terms vanish
    on circulant directions), with the default tol as with a given one."""
    rng = np.random.default_rng(10)
    n = 9
    dtype = np.complex128 if complex_ else np.float64
    c = R._with_zero_modes(rng, (n,), dtype)
    B, W = _rand(rng, (n, 2), complex_), _rand(rng, (n, 2), complex_)
    for tol in (None, 0.25):
        f = lambda c, B: lad.sum(lad.real(lad.conj(W) * la.solve_circulant(
            c, B, singular="lstsq", tol=tol)) ** 2)
        g = lambda c, B: lad.sum(lad.real(lad.conj(W) * (la.pinv(la.circulant(c)) @ B)) ** 2)
        for got, want in zip(lad.grad(f, argnums=(0, 1))(c, B), lad.grad(g, argnums=(0, 1))(c, B)):
            _close(got, want, rtol=1e-8)
        cd, Bd = _rand(rng, (n,), complex_), _rand(rng, (n, 2), complex_)
        sol = lambda c, B: la.solve_circulant(c, B, singular="lstsq", tol=tol)
        _close(lad.jvp(sol, (c, B), (cd, Bd))[1],
               lad.jvp(lambda c, B: la.pinv(la.circulant(c)) @ B, (c, B), (cd, Bd))[1],
               rtol=1e-8)
    # second order: Hessian-vector products through the composite VJP, against the dense
    # pseudo-inverse's
    dirs = (_rand(rng, (n,), complex_), _rand(rng, (n, 2), complex_))
    hv = lad.hvp(lambda c, B: lad.sum(lad.real(lad.sin(la.solve_circulant(
        c, B, singular="lstsq", tol=0.25)))), (c, B), dirs)
    hw = lad.hvp(lambda c, B: lad.sum(lad.real(lad.sin(la.pinv(la.circulant(c)) @ B))),
                 (c, B), dirs)
    for got, want in zip(hv, hw):
        _close(got, want, rtol=1e-8)
    # with a tol far from every |λ|, finite differences hold the dropped set: any order
    check_grads(lambda c, B: la.solve_circulant(c, B, singular="lstsq", tol=0.25), (c, B),
                order=2)
    # the dropped modes get no cotangent: c̄ lies in the span of the kept modes
    gc = lad.grad(lambda c: lad.sum(lad.real(la.solve_circulant(
        c, B[:, 0], singular="lstsq", tol=0.25)) ** 2))(c)
    dropped = np.abs(np.fft.fft(c)) <= 0.25
    assert dropped.any() and np.allclose(np.fft.fft(gc)[dropped], 0, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.complex64])
def test_float32(dtype):
    rng = np.random.default_rng(11)
    n = 16
    c = _c(rng, (n,), dtype == np.complex64).astype(dtype)
    b = _rand(rng, (n, 2), dtype == np.complex64).astype(dtype)
    x = la.solve_circulant(c, b)
    assert x.dtype == dtype
    wide = np.complex128 if dtype == np.complex64 else np.float64
    _close(x, scipy.linalg.solve_circulant(c.astype(wide), b.astype(wide)).astype(dtype),
           rtol=1e-5)
    f = lambda c, b: lad.sum(lad.real(la.solve_circulant(c, b)) ** 2)
    gc, gb = lad.grad(f, argnums=(0, 1))(c, b)
    assert gc.dtype == gb.dtype == dtype
    hc, hb = lad.grad(f, argnums=(0, 1))(c.astype(np.complex128 if dtype == np.complex64
                                                  else np.float64), b.astype(np.complex128))
    _close(gc, hc.astype(dtype), rtol=1e-4)
    check_grads(la.solve_circulant, (c, b), order=2)


def test_circulant_constructor_derivatives():
    rng = np.random.default_rng(12)
    c = _rand(rng, (2, 5), True)
    W = _rand(rng, (2, 5, 5), True)
    g = lad.grad(lambda c: lad.sum(lad.real(lad.conj(W) * la.circulant(c))))(c)
    want = np.array([[sum(W[k, i, (i - d) % 5] for i in range(5)) for d in range(5)]
                     for k in range(2)])
    _close(g, want)
    check_grads(la.circulant, (c,), order=2)
    check_grads(la.circulant, (rng.standard_normal(6),), order=2)


@pytest.mark.parametrize("singular", ["raise", "lstsq"])
@pytest.mark.parametrize("kind", ["real", "complex", "real c, complex b", "complex c, real b"])
def test_fused_first_order_vjp_equals_the_composite(monkeypatch, kind, singular):
    """The first-order VJP on plain arrays is one fused kernel; traced (higher order) it is
    the composite of the primitives.  Forced down the composite path (every value "is a
    tracer"), the cotangents must agree, stacks broadcast both ways."""
    rng = np.random.default_rng(13)
    n = 10
    cc, bc = {"real": (0, 0), "complex": (1, 1), "real c, complex b": (0, 1),
              "complex c, real b": (1, 0)}[kind]
    c = (R._with_zero_modes(rng, (2, 1, n), np.complex128 if cc else np.float64)
         if singular == "lstsq" else _c(rng, (2, 1, n), cc))
    B = _rand(rng, (3, n), bc)
    W = _rand(rng, (2, 3, n), True)
    f = lambda c, B: lad.sum(lad.real(lad.conj(W) * la.solve_circulant(
        c, B, singular=singular, tol=0.25 if singular == "lstsq" else None, baxis=-1,
        outaxis=-1)))
    fused = lad.grad(f, argnums=(0, 1))(c, B)
    monkeypatch.setattr(R, "Tracer", object)
    composite = lad.grad(f, argnums=(0, 1))(c, B)
    for g, w in zip(fused, composite):
        assert g.dtype == w.dtype and g.shape == w.shape
        _close(g, w, rtol=1e-10)


def test_tol_array_one_per_circulant():
    """SciPy compares |fft(c)| <= tol by broadcasting: a tol of shape (k, 1) is one per
    circulant of the stack (review 47 found it refused)."""
    import scipy.linalg
    c = np.array([[1.0, 1, 0, 0], [2, 0, 0, 1]])
    b = np.ones((2, 4))
    W = np.random.default_rng(0).standard_normal((2, 4))
    tol = np.array([[0.5], [3.5]])
    kw = dict(singular="lstsq", tol=tol, baxis=-1, outaxis=-1)
    want = scipy.linalg.solve_circulant(c, b, **kw)
    np.testing.assert_allclose(lad.linalg.solve_circulant(c, b, **kw), want, atol=1e-14)
    g = lad.grad(lambda c: lad.sum(W * lad.linalg.solve_circulant(c, b, **kw)))(c)
    h = 1e-6
    G = np.zeros_like(c)
    for idx in np.ndindex(c.shape):
        E = np.zeros_like(c)
        E[idx] = h
        G[idx] = (np.sum(W * scipy.linalg.solve_circulant(c + E, b, **kw))
                  - np.sum(W * scipy.linalg.solve_circulant(c - E, b, **kw))) / (2 * h)
    np.testing.assert_allclose(g, G, atol=1e-8)
    for bad in (np.array([0.5, 3.5]), np.array([[0.5], [0.5], [0.5]])):
        with pytest.raises(ValueError, match="solve_circulant: tol"):
            lad.linalg.solve_circulant(c, b, singular="lstsq", tol=bad, baxis=-1, outaxis=-1)
