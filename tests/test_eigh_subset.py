"""eigh / eigvalsh with subset_by_index through LAPACK's subset driver (eigh.md, section 9).

The pairs are computed alone and differentiated without the others (a resolvent solve on
the complement per eigenvector): the values, gradients, forward mode and second order must
equal the full decomposition's, the driver must be the one used where it pays, and a range
whose ends tie with their neighbours must take the full decomposition.
"""

import warnings

import numpy as np
import pytest
import scipy.linalg

import linalgad as lad
from linalgad import linalg as la
from linalgad.backend import CPUKernels
from linalgad.rules import eigh as E
from linalgad.testing import check_grads


@pytest.fixture
def spy(monkeypatch):
    """Counts the subset kernel's calls; the thresholds lowered so small matrices take it."""
    calls = []
    original = CPUKernels.eigh_subset

    def counted(self, *args, **kw):
        calls.append(args[2:4])
        return original(self, *args, **kw)
    monkeypatch.setattr(CPUKernels, "eigh_subset", counted)
    monkeypatch.setattr(E, "_subset_pays", lambda n, k, vectors: True)
    return calls


def _hermitian(rng, n, batch=(), dtype=np.float64):
    A = rng.standard_normal(batch + (n, n))
    if np.dtype(dtype).kind == "c":
        A = A + 1j * rng.standard_normal(batch + (n, n))
    return (A + np.conj(np.swapaxes(A, -1, -2))).astype(dtype)


def _loss(sub, W, UPLO="L"):
    """Values and a phase-invariant function of the vectors: Σ w + Σ W ∘ |V|²."""
    def f(a):
        w, V = la.eigh(a, UPLO=UPLO, subset_by_index=sub)
        return lad.sum(w * w) + lad.sum(lad.real(V * lad.conj(V)) * W)
    return f


def _full(monkeypatch, fun, *args):
    with monkeypatch.context() as m:
        m.setattr(E, "_subset_pays", lambda n, k, vectors: False)
        return fun(*args)


@pytest.mark.parametrize("sub", [(0, 0), (3, 4), (9, 9), (0, 1)])
@pytest.mark.parametrize("dtype", [np.float64, np.complex128])
@pytest.mark.parametrize("batch", [(), (2,)])
def test_matches_scipy_and_the_full_decomposition(sub, dtype, batch, spy, monkeypatch):
    rng = np.random.default_rng(sub[0] * 7 + sub[1])
    n = 10
    A = _hermitian(rng, n, batch, dtype)
    w, V = la.eigh(A, subset_by_index=sub)
    assert spy, "the subset driver was not used"
    for i in np.ndindex(batch):
        ws, Vs = scipy.linalg.eigh(A[i], subset_by_index=sub)
        np.testing.assert_allclose(w[i], ws, atol=1e-12)
        np.testing.assert_allclose(np.abs(V[i]), np.abs(Vs), atol=1e-10)
    W = rng.standard_normal(batch + (n, sub[1] - sub[0] + 1))
    f = _loss(sub, W)
    g = lad.grad(f)(A)
    np.testing.assert_allclose(g, _full(monkeypatch, lad.grad(f), A), atol=1e-11)
    T = _hermitian(rng, n, batch, dtype)
    hv = lad.hvp(f, (A,), (T,))
    np.testing.assert_allclose(hv, _full(monkeypatch, lambda: lad.hvp(f, (A,), (T,))),
                               atol=1e-9)
    gv = lad.grad(lambda a: lad.sum(la.eigvalsh(a, subset_by_index=sub) ** 3))(A)
    np.testing.assert_allclose(gv, _full(monkeypatch, lad.grad(
        lambda a: lad.sum(la.eigvalsh(a, subset_by_index=sub) ** 3)), A), atol=1e-11)


@pytest.mark.parametrize("dtype", [np.float64, np.complex128])
def test_derivatives_against_finite_differences(dtype, spy):
    rng = np.random.default_rng(3)
    A = _hermitian(rng, 8, (), dtype)
    W = rng.standard_normal((8, 2))
    check_grads(_loss((2, 3), W), (A,), order=2)
    check_grads(lambda a: la.eigvalsh(a, subset_by_index=(7, 7)), (A,), order=2)
    junk = np.tril(rng.standard_normal((8, 8)), -1)          # not read: zero gradient
    check_grads(_loss((0, 1), W, UPLO="U"), (np.triu(A) + junk,), order=1)
    assert spy


def test_float32(spy, monkeypatch):
    rng = np.random.default_rng(4)
    A = _hermitian(rng, 12).astype(np.float32)
    W = rng.standard_normal((12, 2)).astype(np.float32)
    g = lad.grad(_loss((5, 6), W))(A)
    assert g.dtype == np.float32 and spy
    want = _full(monkeypatch, lad.grad(_loss((5, 6), W)), A.astype(np.float64))
    np.testing.assert_allclose(g, want, rtol=2e-3, atol=2e-3 * np.abs(want).max())


def test_split_cluster_takes_the_full_decomposition(spy):
    """A range whose end ties with the next eigenvalue: the subset's vectors are not a
    function of the matrix; the full decomposition's rule (and its GaugeWarning) apply."""
    rng = np.random.default_rng(5)
    Q = np.linalg.qr(rng.standard_normal((9, 9)))[0]
    A = (Q * np.array([1.0, 2, 2, 3, 4, 5, 6, 7, 8])) @ Q.T
    w = la.eigvalsh(A, subset_by_index=(0, 1))
    assert spy                             # the values were looked at ...
    np.testing.assert_allclose(w, [1, 2], atol=1e-12)
    with pytest.warns(lad.GaugeWarning):   # ... and the full rule differentiates
        g = lad.grad(lambda a: lad.sum(la.eigvalsh(a, subset_by_index=(0, 1))))(A)
    np.testing.assert_allclose(np.trace(g), 2, atol=1e-12)
    with warnings.catch_warnings():
        warnings.simplefilter("error")     # a range not splitting it: no warning
        g = lad.grad(lambda a: lad.sum(la.eigvalsh(a, subset_by_index=(0, 2))))(A)


def test_phase_dependent_loss_raises(spy):
    rng = np.random.default_rng(6)
    A = _hermitian(rng, 8, (), np.complex128)
    with pytest.raises(ValueError, match="phase"):
        lad.grad(lambda a: lad.sum(lad.real(la.eigh(a, subset_by_index=(0, 1))[1])))(A)


def test_jit_decides_the_split_again(spy):
    rng = np.random.default_rng(7)
    Q = np.linalg.qr(rng.standard_normal((9, 9)))[0]
    f = lad.jit(lad.value_and_grad(lambda a: lad.sum(la.eigvalsh(a, subset_by_index=(0, 1)))))
    for d in ([1.0, 2.5, 3, 4, 5, 6, 7, 8, 9], [1.0, 2, 2, 4, 5, 6, 7, 8, 9],
              [0.5, 2.5, 3, 4, 5, 6, 7, 8, 9]):
        A = (Q * np.array(d)) @ Q.T
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", lad.GaugeWarning)
            v, g = f(A)
        np.testing.assert_allclose(v, d[0] + d[1], atol=1e-12)
        P = Q[:, :2] @ Q[:, :2].T              # the lower triangle read: its cotangent
        if d[1] != d[2]:
            np.testing.assert_allclose(g, np.tril(2 * P, -1) + np.diag(np.diag(P)),
                                       atol=1e-10)


def test_the_driver_is_chosen_by_size(monkeypatch):
    calls = []
    original = CPUKernels.eigh_subset
    monkeypatch.setattr(CPUKernels, "eigh_subset",
                        lambda self, *a, **k: calls.append(1) or original(self, *a, **k))
    rng = np.random.default_rng(8)
    big, small = _hermitian(rng, 200), _hermitian(rng, 40)
    la.eigvalsh(big, subset_by_index=(0, 9))       # 10 of 200 values: the driver
    assert len(calls) == 1
    la.eigh(big, subset_by_index=(0, 3))            # 4 vectors of order 200: the driver
    assert len(calls) == 2
    la.eigh(big, subset_by_index=(0, 7))            # 8 vectors: the full decomposition
    la.eigvalsh(small, subset_by_index=(0, 0))      # order 40: the full decomposition
    la.eigvalsh(big, subset_by_index=(0, 99))       # half of the values: the full one
    assert len(calls) == 2


def _spectrum(rng, d):
    Q = np.linalg.qr(rng.standard_normal((len(d), len(d))))[0]
    A = (Q * np.asarray(d)) @ Q.T
    return (A + A.T) / 2


def _both_paths(monkeypatch, f, A):
    """(gradient, warning categories) of f at A by the subset path and by the full one."""
    out = []
    for pays in (True, False):
        with monkeypatch.context() as m, warnings.catch_warnings(record=True) as ws:
            m.setattr(E, "_subset_pays", lambda n, k, vectors, pays=pays: pays)
            warnings.simplefilter("always")
            g = lad.grad(f)(A)
        out.append((g, sorted({w.category.__name__ for w in ws})))
    return out


def test_ties_are_judged_on_the_whole_spectrums_scale(monkeypatch):
    """A gap of 2e-10 at the bottom of a spectrum reaching 100 is a tie (ε^(2/3)·max|w|
    = 3.7e-9): the subset path judged it on the kept values' scale and differentiated the
    1/gap terms (|g| 8e8, no warning) where the full path holds the basis and warns."""
    rng = np.random.default_rng(2)
    A = _spectrum(rng, np.r_[1e-10, 3e-10, np.linspace(5, 100, 126)])
    W = rng.standard_normal((128, 2))
    (gs, ws), (gf, wf) = _both_paths(
        monkeypatch, lambda a: lad.sum(la.eigh(a, subset_by_index=(0, 1))[1] ** 2 * W), A)
    assert ws == wf == ["GaugeWarning"]
    # (the cluster's basis is fixed only to ε‖A‖/gap ≈ 1e-4, differently by syevr and syevd)
    np.testing.assert_allclose(gs, gf, atol=1e-3 * np.abs(gf).max())


@pytest.mark.parametrize("scale", [1.0, 1e150, 1e160])
def test_a_split_cluster_is_found_at_any_scale(scale, monkeypatch):
    """The spectrum's scale overflowed above 1e154 (a Frobenius norm squared): the tie at the
    range's end went unnoticed and a nearly singular resolvent gave 1e14 times the gradient."""
    rng = np.random.default_rng(5)
    A = _spectrum(rng, scale * np.array([1.0, 2, 2, 3, 4, 5, 6, 7, 8]))
    W = rng.standard_normal((9, 2))
    (gs, ws), (gf, wf) = _both_paths(
        monkeypatch, lambda a: lad.sum(la.eigh(a, subset_by_index=(0, 1))[1] ** 2 * W), A)
    assert ws == wf == ["GaugeWarning"]
    # the loss depends on the repeated pair's basis, which each driver chooses its own way:
    # the same size of gradient, not the same entries
    assert 0.5 < np.linalg.norm(gs) / np.linalg.norm(gf) < 2
    with np.errstate(all="raise"), monkeypatch.context() as m:
        m.setattr(E, "_subset_pays", lambda n, k, vectors: True)
        la.eigvalsh(A, subset_by_index=(4, 5))


def test_phase_test_measures_the_whole_cotangent(monkeypatch):
    """|⟨u, v₀⟩|² with u nearly orthogonal to v₀: V̄ lies almost all in the complement, so
    VᴴV̄ restricted to the kept vector is rounding; judged on its own size it looked like a
    phase dependence (ValueError) where the full rule returns the gradient."""
    rng = np.random.default_rng(11)
    n = 64
    G = rng.standard_normal((n, n)) + 1j * rng.standard_normal((n, n))
    A = G + G.conj().T
    v = np.linalg.eigh(A)[1][:, 0]
    u = rng.standard_normal(n) + 1j * rng.standard_normal(n)
    u -= v * (v.conj() @ u)
    u += 1e-9 * v

    def f(a):
        z = lad.sum(np.conj(u) * la.eigh(a, subset_by_index=(0, 0))[1][:, 0])
        return lad.real(z * lad.conj(z))
    (gs, ws), (gf, wf) = _both_paths(monkeypatch, f, A)
    assert ws == wf == []
    # (a gradient of 1e-10 from a cancellation: each path's rounding shows at 1e-5 of it)
    np.testing.assert_allclose(gs, gf, atol=1e-4 * np.abs(gf).max())


@pytest.mark.parametrize("dtype", [np.float64, np.complex128])
@pytest.mark.parametrize("batch", [(), (2,)])
def test_subset_by_value_takes_the_subset_driver(dtype, batch, spy, monkeypatch):
    """subset_by_value: the indices from the values alone, then the pairs by index (it took
    the full decomposition); values, vectors, gradients and second order as the full path,
    and SciPy's selection (low < w ≤ high)."""
    rng = np.random.default_rng(21)
    n = 10
    A = _hermitian(rng, n, batch, dtype)
    if batch:                           # the same spectrum in both matrices (a rotation)
        Q = np.linalg.qr(_hermitian(rng, n, (), dtype))[0]
        A[1] = Q @ A[0] @ np.conj(Q.T)
    w0 = np.linalg.eigvalsh(A.reshape(-1, n, n)[0])
    lo, hi = (w0[3] + w0[4]) / 2, (w0[5] + w0[6]) / 2          # the pairs 4 and 5
    w, V = la.eigh(A, subset_by_value=(lo, hi))
    assert spy, "the subset driver was not used"
    for i in np.ndindex(batch):
        ws, Vs = scipy.linalg.eigh(A[i], subset_by_value=(lo, hi))
        np.testing.assert_allclose(w[i], ws, atol=1e-12)
        np.testing.assert_allclose(np.abs(V[i]), np.abs(Vs), atol=1e-10)
    W = rng.standard_normal(w.shape[:-1] + (n, 2))

    def f(a):
        ww, VV = la.eigh(a, subset_by_value=(lo, hi))
        return lad.sum(ww * ww) + lad.sum(lad.real(VV * lad.conj(VV)) * W)
    g = lad.grad(f)(A)
    np.testing.assert_allclose(g, _full(monkeypatch, lad.grad(f), A), atol=1e-11)
    T = _hermitian(rng, n, batch, dtype)
    np.testing.assert_allclose(lad.hvp(f, (A,), (T,)),
                               _full(monkeypatch, lambda: lad.hvp(f, (A,), (T,))), atol=1e-9)
    gv = lad.grad(lambda a: lad.sum(la.eigvalsh(a, subset_by_value=(lo, hi)) ** 3))(A)
    np.testing.assert_allclose(gv, _full(monkeypatch, lad.grad(
        lambda a: lad.sum(la.eigvalsh(a, subset_by_value=(lo, hi)) ** 3)), A), atol=1e-11)


def test_subset_by_value_at_different_indices_in_a_stack_takes_the_full_path(spy):
    rng = np.random.default_rng(22)
    A = _hermitian(rng, 10, (2,))
    A[1] += 5 * np.eye(10)
    w_all = np.linalg.eigvalsh(A)
    lo, hi = w_all[0, 4] - 1e-9, w_all[0, 4] + 1e-9          # one value of matrix 0 ...
    if not ((w_all[1] > lo) & (w_all[1] <= hi)).any():
        with pytest.raises(ValueError, match="different numbers of eigenpairs"):
            la.eigh(A, subset_by_value=(lo, hi))
    lo, hi = -100.0, 100.0                                     # ... and all of both
    w = la.eigvalsh(A, subset_by_value=(lo, hi))
    np.testing.assert_allclose(w, w_all, atol=1e-12)
