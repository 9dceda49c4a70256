"""funmh: functions of Hermitian matrices, exact at repeated eigenvalues (funmh.md).

The registry tests (test_rules.py) cover the generic domains in both modes, every dtype
and batch shape, and second order.  Here: the inputs those cannot take — ties, near
ties and A = I, where the route through eigh's cotangents is wrong — checked against
scipy's exact Fréchet derivative of expm, and the function's arguments and errors.
"""

import math
import warnings
import zlib

import numpy as np
import pytest
import scipy.linalg as sl

import linalgad as lad
from linalgad import linalg as la
from linalgad.rules import funmh as FM


def _hermitian(a, lower=True):
    """The Hermitian matrix funmh (and eigh) reads from a's triangle."""
    t = np.tril(a, -1) if lower else np.triu(a, 1)
    d = np.diag(np.diagonal(a).real).astype(a.dtype)
    return t + np.conj(t).T + d


def _triangle_cotangent(G, lower=True):
    """The cotangent of the triangle read, from the full matrix's (the adjoint of _hermitian)."""
    S = G + np.conj(G).T
    S = np.tril(S, -1) if lower else np.triu(S, 1)
    return S + np.diag(np.diagonal(G).real).astype(G.dtype)


def _expm_gradient(A, G, lower=True):
    """The gradient of Re Σ G ∘ expm(A_h) on the triangle read (∂/∂Re + i ∂/∂Im): the
    cotangent of expm(A_h) is conj(G), and the adjoint of its Fréchet derivative is
    L(A_hᴴ, ·) = L(A_h, ·) for Hermitian A_h (scipy's expm_frechet, exact)."""
    Ah = _hermitian(A, lower)
    return _triangle_cotangent(sl.expm_frechet(Ah, np.conj(G), compute_expm=False), lower)


def _q(rng, n, dtype):
    q, _ = np.linalg.qr(rng.standard_normal((n, n)) + (
        1j * rng.standard_normal((n, n)) if np.dtype(dtype).kind == "c" else 0))
    return q.astype(dtype)


def _spectrum(rng, w, dtype):
    q = _q(rng, len(w), dtype)
    return ((q * np.asarray(w)) @ np.conj(q).T).astype(dtype)


SPECTRA = {
    "identity": [1.0, 1.0, 1.0, 1.0],
    "pair": [0.5, 0.5, 1.5, -1.0],
    "triple": [-0.3, 2.0, 2.0, 2.0],
    "near-tie": [0.7, 0.7 + 3e-10, 1.9, -0.4],        # inside δ = ε^(1/3)·max|w|
    "just-apart": [0.7, 0.7 + 1e-4, 1.9, -0.4],       # above δ: the quotient is kept
    "zero": [0.0, 0.0, 0.0, 0.0],
}


@pytest.mark.parametrize("spectrum", SPECTRA)
@pytest.mark.parametrize("dtype", [np.float64, np.complex128])
@pytest.mark.parametrize("lower", [True, False])
def test_expm_gradient_at_ties(spectrum, dtype, lower):
    """⟨G, funmh(A, exp)⟩: value and gradient equal scipy's expm and its exact adjoint
    Fréchet derivative, also where eigenvalues coincide."""
    rng = np.random.default_rng(zlib.crc32(f"{spectrum}-{lower}".encode()))
    A = _spectrum(rng, SPECTRA[spectrum], dtype)
    if spectrum == "identity":
        A = np.eye(4, dtype=dtype)
    A = A + (np.triu(rng.standard_normal((4, 4)), 1) if lower else
             np.tril(rng.standard_normal((4, 4)), -1))      # the triangle not read
    G = rng.standard_normal((4, 4)) + (1j * rng.standard_normal((4, 4))
                                       if dtype == np.complex128 else 0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")                      # no GaugeWarning: nothing is lost
        value, grad = lad.value_and_grad(
            lambda a: lad.real(lad.sum(G * la.funmh(a, np.exp, lower=lower))))(A)
    np.testing.assert_allclose(value, np.real(np.sum(G * sl.expm(_hermitian(A, lower)))),
                               rtol=1e-12)
    np.testing.assert_allclose(grad, _expm_gradient(A, G, lower), rtol=1e-9, atol=1e-9)


def test_identity_where_the_eigh_route_cannot_be_right():
    """At A = I with a zero-diagonal symmetric G, ⟨G, e^A⟩ written through eigh has the
    cotangents of the constant e⟨G, VVᵀ⟩ and gets 0 (eigh.md §6); funmh gets
    e(2 tril(G, −1) + diag(G))."""
    rng = np.random.default_rng(0)
    G = rng.standard_normal((4, 4))
    G = G + G.T
    np.fill_diagonal(G, 0)
    through_eigh = lad.grad(
        lambda a: lad.sum(G * (lambda w, V: (V * lad.exp(w)) @ lad.mT(V))(*la.eigh(a))))
    np.testing.assert_allclose(through_eigh(np.eye(4)), 0, atol=1e-12)
    g = lad.grad(lambda a: lad.sum(G * la.funmh(a, np.exp)))(np.eye(4))
    np.testing.assert_allclose(g, math.e * (2 * np.tril(G, -1) + np.diag(np.diag(G))),
                               rtol=1e-13)


def test_forward_mode_at_ties():
    """Ḟ = L(Ȧ_h) equals scipy's expm_frechet at a tie and at A = I."""
    rng = np.random.default_rng(1)
    for A in (_spectrum(rng, SPECTRA["pair"], np.float64), np.eye(4)):
        T = rng.standard_normal((4, 4))
        F, Fdot = lad.jvp(lambda a: la.funmh(a, np.exp), (A,), (T,))
        np.testing.assert_allclose(F, sl.expm(A), rtol=1e-13)
        np.testing.assert_allclose(Fdot, sl.expm_frechet(A, _hermitian(T),
                                                         compute_expm=False), rtol=1e-12)


def test_stack_mixes_ties_and_distinct_spectra():
    """The tie rule is decided per pair: a stack of I, a matrix with a pair and a
    generic one, in float32 and float64."""
    rng = np.random.default_rng(2)
    for dtype, tol in ((np.float64, 1e-10), (np.float32, 2e-5)):
        A = np.stack([np.eye(4), _spectrum(rng, SPECTRA["pair"], np.float64),
                      _spectrum(rng, [0.1, 0.9, -0.5, 1.3], np.float64)]).astype(dtype)
        G = rng.standard_normal((3, 4, 4)).astype(dtype)
        g = lad.grad(lambda a: lad.sum(G * la.funmh(a, np.exp)))(A)
        assert g.dtype == dtype
        want = np.stack([_expm_gradient(a.astype(np.float64), w.astype(np.float64))
                         for a, w in zip(A, G)])
        np.testing.assert_allclose(g, want, rtol=tol, atol=tol * 10)


def test_user_function_and_its_derivative():
    """func written with ufuncs is differentiated by linalgad; dfunc, when given, is used
    instead; both agree with finite differences of the loss at a tie."""
    rng = np.random.default_rng(3)
    A = _spectrum(rng, SPECTRA["pair"], np.float64)
    G = rng.standard_normal((4, 4))

    def f(w):
        return np.log1p(w * w)

    def loss(a, **kw):
        return lad.sum(G * la.funmh(a, f, **kw))

    g = lad.grad(loss)(A)
    g2 = lad.grad(lambda a: loss(a, dfunc=lambda w: 2 * w / (1 + w * w)))(A)
    np.testing.assert_allclose(g2, g, rtol=1e-12)
    h = 1e-6
    fd = np.zeros_like(A)
    for i in range(4):
        for j in range(i + 1):                      # the lower triangle is what is read
            E = np.zeros_like(A)
            E[i, j] = h

            def value(x):
                w, V = np.linalg.eigh(x)
                return np.sum(G * ((V * f(w)) @ V.T))
            fd[i, j] = (value(A + E) - value(A - E)) / (2 * h)
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-8)


def test_second_order_away_from_ties():
    """hvp (forward over reverse) against differences of the gradient."""
    rng = np.random.default_rng(4)
    A = _spectrum(rng, [0.2, 1.1, -0.7, 0.5], np.float64)
    G, T = rng.standard_normal((2, 4, 4))

    def loss(a):
        return lad.sum(G * la.funmh(a, np.sin))
    (h,) = lad.hvp(loss, (A,), (T,))
    grad = lad.grad(loss)
    fd = (grad(A + 1e-5 * T) - grad(A - 1e-5 * T)) / 2e-5
    np.testing.assert_allclose(h, fd, rtol=1e-6, atol=1e-8)


def test_jit_replays_the_tie_decision():
    """Under jit the tie mask is computed on every replay: a recording made at a generic
    matrix gives the exact gradient at A = I."""
    rng = np.random.default_rng(5)
    G = rng.standard_normal((4, 4))
    vg = lad.value_and_grad(lambda a: lad.sum(G * la.funmh(a, np.exp)))
    jv = lad.jit(vg)
    for A in (_spectrum(rng, [0.2, 1.1, -0.7, 0.5], np.float64), np.eye(4),
              _spectrum(rng, SPECTRA["triple"], np.float64)):
        v, g = jv(A)
        np.testing.assert_allclose(g, _expm_gradient(A, G), rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(v, vg(A)[0], rtol=1e-14)


def test_arguments_and_errors():
    A = np.diag([1.0, 2.0, 3.0])
    np.testing.assert_allclose(la.funmh(A, np.sqrt), np.diag(np.sqrt([1.0, 2.0, 3.0])))
    np.testing.assert_allclose(la.funmh(np.triu(A + 1.0), np.exp, lower=False),
                               sl.expm(np.triu(A + 1.0) + np.triu(A + 1.0, 1).T))
    with pytest.raises(TypeError, match="funmh: func must be callable"):
        la.funmh(A, 2.0)
    with pytest.raises(TypeError, match="funmh: dfunc must be callable"):
        la.funmh(A, np.exp, 1.0)
    with pytest.raises(TypeError, match="funmh: func must return real values"):
        la.funmh(A, lambda w: np.exp(1j * w))
    with pytest.raises(ValueError, match="funmh: func must act elementwise"):
        la.funmh(A, lambda w: w[..., :2])
    with pytest.raises(np.linalg.LinAlgError, match="funmh"):
        la.funmh(np.ones((2, 3)), np.exp)
    with pytest.raises(ValueError, match="funmh"):
        la.funmh(np.array([[1.0, np.nan], [0.0, 1.0]]), np.exp)
    # a function linalgad cannot differentiate: the value works, the gradient asks for dfunc
    erf = np.vectorize(math.erf, otypes=[float])
    np.testing.assert_allclose(la.funmh(A, erf), np.diag([math.erf(x) for x in (1, 2, 3)]))
    with pytest.raises(TypeError, match="pass dfunc"):
        lad.grad(lambda a: la.trace(la.funmh(a, erf)))(A)
    g = lad.grad(lambda a: la.trace(la.funmh(
        a, erf, lambda w: 2 / math.sqrt(math.pi) * np.exp(-w * w))))(A)
    np.testing.assert_allclose(g, np.diag(2 / math.sqrt(math.pi) * np.exp(-np.diag(A) ** 2)),
                               rtol=1e-13)


def test_tie_tolerance_is_eps_to_the_third():
    assert FM.tie_tolerance(np.float64) == pytest.approx(np.finfo(np.float64).eps ** (1 / 3))
    w = np.array([1.0, 1.0 + 1e-7, 2.0])              # 1e-7 < δ = 6e-6 · 2
    near = FM._near_pairs(w, np.exp(w), np.exp(w))
    assert near[0, 1] and near[1, 0] and not near[0, 2] and near.diagonal().all()


def test_ties_are_judged_on_the_scale_f_varies_near_them():
    """log at eigenvalues 0.006 and 0.01 of a matrix whose largest is 1000: within
    ε^(1/3)·max|w| of each other, but log varies on a scale of 0.01 there, and the mean of
    its slopes is 1% off the divided difference (first derivatives were 1.1e-2 off; the
    quotient is accurate to 1e-13 here).  Against the Daleckii–Krein formula with the
    divided differences log(wᵢ/wⱼ)/(wᵢ − wⱼ) (accurate here), and against logm's Fréchet
    derivative (another algorithm: the inverse scaling and squaring's)."""
    w = np.array([0.006, 0.01, 1.0, 1000.0])
    Q = np.linalg.qr(np.random.default_rng(0).standard_normal((4, 4)))[0]
    A = (Q * w) @ Q.T
    A = (A + A.T) / 2
    E = np.random.default_rng(1).standard_normal((4, 4))
    E = E + E.T
    near = FM._near_pairs(w, np.log(w), 1 / w)
    assert not near[0, 1] and near.diagonal().all()
    ev, V = np.linalg.eigh(A)
    with np.errstate(divide="ignore", invalid="ignore"):
        dd = np.log(ev[:, None] / ev[None, :]) / (ev[:, None] - ev[None, :])
    dd[np.diag_indices(4)] = 1 / ev
    want = V @ (dd * (V.T @ E @ V)) @ V.T
    np.testing.assert_allclose(lad.jvp(la.logm, (A,), (E,))[1], want, rtol=0,
                               atol=1e-11 * np.abs(want).max())
    _, L = lad.jvp(lambda X: la.funmh(X, lad.log), (A,), (E,))
    np.testing.assert_allclose(L, want, rtol=0, atol=1e-11 * np.abs(want).max())
    s = np.array([1000.0, 1.0, 0.01, 0.006])
    B = (Q * s) @ np.linalg.qr(np.random.default_rng(2).standard_normal((4, 4)))[0].T
    U, _, Vh = np.linalg.svd(B)
    F = np.random.default_rng(3).standard_normal((4, 4))
    _, L = lad.jvp(lambda X: la.generalized_funm(X, lad.sqrt), (B,), (F,))
    P = U.T @ F @ Vh.T
    sq = np.sqrt(s)
    plus = np.where(np.eye(4) > 0, 0.5 / sq[:, None] + 0 * sq, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        plus = np.where(np.eye(4) > 0, plus, (sq[:, None] - sq) / (s[:, None] - s))
    minus = (sq[:, None] + sq) / (s[:, None] + s)
    X = 0.5 * (plus + minus) * P + 0.5 * (plus - minus) * P.T
    want = U @ X @ Vh
    np.testing.assert_allclose(L, want, rtol=0, atol=1e-11 * np.abs(want).max())


def test_ufunc_slopes_match_the_traced_derivative():
    """A unary ufunc's f' comes from its primitive directly (no traced jvp) on plain
    values; it must equal what differentiating func by jvp gives."""
    from linalgad import transforms
    from linalgad._array_methods import NUMPY_UFUNCS
    w = np.array([0.3, -0.7, 1.2, 0.05])
    for u in NUMPY_UFUNCS:
        if not (isinstance(u, np.ufunc) and u.nin == 1):
            continue
        x = np.abs(w) if u in (np.log, np.sqrt, np.log1p) else w
        f, df = FM.values_and_slopes(u, None, x)
        f2, df2 = transforms.jvp(lambda v: u(v) + 0 * v, (x,), (np.ones_like(x),))
        np.testing.assert_allclose(f, f2, rtol=1e-15, err_msg=u.__name__)
        np.testing.assert_allclose(df, df2, rtol=1e-15, atol=0, err_msg=u.__name__)
        assert df.shape == x.shape and df.dtype == x.dtype


def test_eighs_gauge_warning_points_to_funmh():
    """A matrix function written through eigh at a tie gets a GaugeWarning that names
    the rule which differentiates it exactly."""
    rng = np.random.default_rng(6)
    A = _spectrum(rng, SPECTRA["pair"], np.float64)
    G = rng.standard_normal((4, 4))
    with pytest.warns(la.GaugeWarning, match=r"funmh\(a, f\)"):
        lad.grad(lambda a: lad.sum(G * (lambda w, V: (V * lad.exp(w)) @ lad.mT(V))(
            *la.eigh(a))))(A)


def _second_expm(A, E, H):
    """D² exp(A)[E, H], exact: the (1, 3) blocks of exp of the block upper triangular
    [[A, E, 0], [0, A, H], [0, 0, A]] and of the same with E and H swapped (each is
    Σₖ f[λᵢ, λₖ, λⱼ] Ẽᵢₖ H̃ₖⱼ in the eigenbasis; scipy's expm, no eigendecomposition)."""
    n = A.shape[0]
    Z = np.zeros_like(A, dtype=np.result_type(A, E, H))

    def corner(X, Y):
        return sl.expm(np.block([[A, X, Z], [Z, A, Y], [Z, Z, A]]))[:n, 2 * n:]
    return corner(E, H) + corner(H, E)


def _expm_hvp(A, G, T, lower=True):
    """d/dt of _expm_gradient(A + tT, G): the triangle's share of D² exp(A_h)[conj G, T_h]."""
    return _triangle_cotangent(_second_expm(_hermitian(A, lower), np.conj(G),
                                            _hermitian(T, lower)), lower)


@pytest.mark.parametrize("spectrum", SPECTRA)
@pytest.mark.parametrize("dtype", [np.float64, np.complex128])
@pytest.mark.parametrize("lower", [True, False])
def test_hessian_at_ties_is_exact(spectrum, dtype, lower):
    """hvp of ⟨G, funmh(A, exp)⟩ (forward over reverse) equals the exact second Fréchet
    derivative of expm, where eigenvalues coincide too, with no warning: the second
    divided differences f[λ, λ, μ] and f''(λ)/2 take the place of eigh's gap terms."""
    rng = np.random.default_rng(zlib.crc32(f"{spectrum}-{lower}-hvp".encode()))
    A = np.eye(4, dtype=dtype) if spectrum == "identity" else _spectrum(
        rng, SPECTRA[spectrum], dtype)
    cplx = 1j if dtype == np.complex128 else 0
    G, T = (rng.standard_normal((4, 4)) + cplx * rng.standard_normal((4, 4))
            for _ in range(2))
    if cplx:                                  # a Hermitian input's diagonal is real
        T = T - 1j * np.diag(np.diagonal(T).imag)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        (h,) = lad.hvp(lambda a: lad.real(lad.sum(G * la.funmh(a, np.exp, lower=lower))),
                       (A,), (T.astype(dtype),))
    # just apart (gap 1e-4): triples inside ε^(1/4) take the mean of f''/2, whose error
    # is of order ε^(1/2) (funmh.md §6); elsewhere exact to rounding
    tol = 2e-7 if spectrum == "just-apart" else 1e-9
    np.testing.assert_allclose(h, _expm_hvp(A, G, T, lower), rtol=tol, atol=tol)


def test_hessian_through_eigvalsh_misses_what_funmh_keeps():
    """Σ exp(wᵢ) = tr e^A: its Hessian at A = I is e·T_h on the triangle; through
    eigvalsh the in-cluster curvature is lost (and said with a GaugeWarning), through
    funmh it is exact."""
    rng = np.random.default_rng(11)
    T = rng.standard_normal((4, 4))
    want = math.e * _triangle_cotangent(_hermitian(T))
    with pytest.warns(la.GaugeWarning, match="second derivatives"):
        (h,) = lad.hvp(lambda a: lad.sum(lad.exp(la.eigvalsh(a))), (np.eye(4),), (T,))
    assert np.abs(h - want).max() > 0.1 * np.abs(want).max()
    (h,) = lad.hvp(lambda a: lad.sum(lad.diagonal(la.funmh(a, np.exp), 0, -2, -1)),
                   (np.eye(4),), (T,))
    np.testing.assert_allclose(h, want, rtol=1e-12)


def test_reverse_over_reverse_at_a_tie():
    """grad of ⟨T, ∇L⟩ (the VJP of the first-order map along A) equals the hvp: the
    Hessian is symmetric; at a pair and at A = I."""
    rng = np.random.default_rng(12)
    G, T = rng.standard_normal((2, 4, 4))
    G = G + G.T                               # L(A) for the symmetric A the triangle gives

    def loss(a):
        return lad.sum(G * la.funmh(a, np.exp))
    for A in (np.eye(4), _spectrum(rng, SPECTRA["pair"], np.float64)):
        rr = lad.grad(lambda a: lad.sum(np.tril(T) * lad.grad(loss)(a)))(A)
        np.testing.assert_allclose(rr, _expm_hvp(A, G, np.tril(T)), rtol=1e-9, atol=1e-9)


def test_hessian_of_a_stack_in_both_precisions():
    """A stack mixing I, a triple and a generic spectrum; sqrt of SPD matrices against
    differences of the (exact) gradient, in float64 and float32."""
    rng = np.random.default_rng(13)
    A = np.stack([np.eye(4), _spectrum(rng, [0.5, 2.0, 2.0, 2.0], np.float64),
                  _spectrum(rng, [0.3, 0.9, 1.4, 2.2], np.float64)])
    G, T = rng.standard_normal((2, 3, 4, 4))

    def loss(a):
        return lad.sum(G.astype(a.dtype) * la.funmh(a, np.sqrt))
    grad = lad.grad(loss)
    h = 1e-4
    fd = (grad(A + h * T) - grad(A - h * T)) / (2 * h)
    (hv,) = lad.hvp(loss, (A,), (T,))
    np.testing.assert_allclose(hv, fd, rtol=1e-6, atol=1e-7)
    (hv32,) = lad.hvp(loss, (A.astype(np.float32),), (T.astype(np.float32),))
    assert hv32.dtype == np.float32
    np.testing.assert_allclose(hv32, fd, rtol=2e-3, atol=2e-3)


def test_second_order_with_dfunc():
    """With dfunc given, f'' is linalgad's derivative of dfunc; a dfunc linalgad cannot
    differentiate is named at second order (first order still works)."""
    rng = np.random.default_rng(14)
    A = _spectrum(rng, SPECTRA["pair"], np.float64)
    G, T = rng.standard_normal((2, 4, 4))

    def loss(a, dfunc):
        return lad.sum(G * la.funmh(a, np.sin, dfunc))
    (h,) = lad.hvp(lambda a: loss(a, np.cos), (A,), (T,))
    (h0,) = lad.hvp(lambda a: loss(a, None), (A,), (T,))
    np.testing.assert_allclose(h, h0, rtol=1e-12)
    opaque = np.vectorize(math.cos)
    lad.grad(lambda a: loss(a, opaque))(A)
    with pytest.raises(TypeError, match="dfunc"):
        lad.hvp(lambda a: loss(a, opaque), (A,), (T,))


@pytest.mark.parametrize("rule", [la.funmh, la.generalized_funm], ids=lambda f: f.__name__)
def test_third_order_at_a_tie_warns(rule):
    """Third derivatives pass through eigh (svd) at a tie (funmh.md and
    generalized_funm.md §6): a GaugeWarning there; none away from ties (eigenvalues, and
    so singular values, distinct), and none for first and second order at a tie."""
    rng = np.random.default_rng(8)
    G, T = rng.standard_normal((2, 4, 4))

    def loss(a):
        return lad.sum(G * rule(a, np.sin))

    def third(a):
        return lad.hvp(lambda x: lad.sum(T * lad.hvp(loss, (x,), (T,))[0]), (a,), (T,))
    with pytest.warns(la.GaugeWarning, match="third derivatives"):
        third(np.eye(4))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        third(_spectrum(rng, [0.2, 1.1, -0.7, 0.5], np.float64))
        lad.hvp(loss, (np.eye(4),), (T,))
        lad.grad(loss)(np.eye(4))


def test_second_tie_tolerance_is_eps_to_the_quarter():
    assert FM.second_tie_tolerance(np.float64) == pytest.approx(2.0 ** -13, rel=1e-12)
    assert FM.second_tie_tolerance(np.float32) == pytest.approx(2.0 ** -5.75, rel=1e-6)


@pytest.mark.parametrize("dtype", [np.float64, np.complex128])
def test_second_map_kernel_matches_its_definition(dtype):
    """The kernel's evaluation of the second map (products for every pair of separated
    eigenvalues and inside tight clusters, the stable triple sums only for loose chains)
    against the definition's (the triple sums for every entry)."""
    rng = np.random.default_rng(15)
    # I, a pair, a near tie (tight clusters: products), a loose chain (steps 2e-4 within
    # ε^(1/4)·2 = 2.4e-4, spread 4e-4 beyond it: the entrywise sums), distinct
    spectra = ([1.0] * 5, [0.5, 0.5, 1.5, -1.0, 2.0], [0.7, 0.7 + 5e-5, 1.9, -0.4, 1.1],
               [1.0, 1.0002, 1.0004, -0.5, 2.0], [0.3, 0.9, 1.4, 2.2, -0.8])
    A = np.stack([_spectrum(rng, sorted(s), dtype) for s in spectra])
    w, V = np.linalg.eigh(A)
    f, df, d2f = FM.values_slopes_curvatures(np.sin, None, w)
    phi = FM.divided_differences(w, f, df)
    cplx = 1j if np.dtype(dtype).kind == "c" else 0
    P, Q = (rng.standard_normal(A.shape) + cplx * rng.standard_normal(A.shape)
            for _ in range(2))
    got = FM._second_map_plain(w, V, phi, d2f, P, Q)
    want = FM._second_map(w, V, phi, d2f, P, Q)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12 * np.abs(want).max())


def test_hessian_of_a_symmetric_function_of_singular_values():
    """Σ log sᵢ = tr funmh(aᵀa, ½ log): exact Hessians at repeated singular values (the
    route svd's GaugeWarning points to), where the one through svdvals is not."""
    rng = np.random.default_rng(16)
    for s in ([2.0, 1.0, 1.0], [1.0, 1.0, 1.0]):
        U = np.linalg.qr(rng.standard_normal((4, 4)))[0][:, :3]
        V = np.linalg.qr(rng.standard_normal((3, 3)))[0]
        A = (U * s) @ V.T
        T = rng.standard_normal(A.shape)

        def loss(a):
            return lad.sum(lad.diagonal(la.funmh(lad.mT(a) @ a, lambda lam: 0.5 * np.log(lam)),
                                        0, -2, -1))
        np.testing.assert_allclose(loss(A), np.sum(np.log(s)), atol=1e-14)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            (hv,) = lad.hvp(loss, (A,), (T,))
        grad = lad.grad(loss)
        fd = (grad(A + 1e-6 * T) - grad(A - 1e-6 * T)) / 2e-6
        np.testing.assert_allclose(hv, fd, rtol=1e-7, atol=1e-8)
        with pytest.warns(la.GaugeWarning, match=r"funmh\(aᴴa"):
            lad.hvp(lambda a: lad.sum(lad.log(la.svdvals(a))), (A,), (T,))


def test_jit_of_the_hessian_across_ties():
    """A jitted hvp recorded at distinct eigenvalues replays exactly at a pair, at I and
    back (the second map decides its paths on every call, inside its kernel)."""
    rng = np.random.default_rng(17)
    G, T = rng.standard_normal((2, 4, 4))

    def loss(a):
        return lad.sum(G * la.funmh(a, np.exp))
    hvp = lad.jit(lambda a: lad.hvp(loss, (a,), (T,))[0])
    for A in (_spectrum(rng, [0.1, 0.9, 1.7, 2.5], np.float64),
              _spectrum(rng, SPECTRA["pair"], np.float64), np.eye(4),
              _spectrum(rng, [0.3, 1.2, 1.9, -0.6], np.float64)):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            got = hvp(A)
        np.testing.assert_allclose(got, _expm_hvp(A, G, T), rtol=1e-9, atol=1e-9)


def test_second_ties_are_judged_on_the_scale_f_varies_near_them():
    """The Hessian-vector product of <W, funmh(A, log)> at eigenvalues 0.006, 0.01, 1, 1000
    took the three-way mean of f''/2 for triples within ε^(1/4)·max|w| = 1.2e-1 (1.5% off);
    the same function written with logm (exact there, through its own Fréchet derivative)
    is the reference: both read the lower triangle of T."""
    w = np.array([0.006, 0.01, 1.0, 1000.0])
    Q = np.linalg.qr(np.random.default_rng(0).standard_normal((4, 4)))[0]
    A = (Q * w) @ Q.T
    A = (A + A.T) / 2
    rng = np.random.default_rng(4)
    W, D = rng.standard_normal((4, 4)), rng.standard_normal((4, 4))
    her = lambda T: lad.tril(T) + lad.mT(lad.tril(T, -1))
    got = lad.hvp(lambda T: lad.sum(W * la.funmh(T, lad.log)), (A,), (D,))[0]
    want = lad.hvp(lambda T: lad.sum(W * la.logm(her(T))), (A,), (D,))[0]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-9 * np.abs(want).max())
