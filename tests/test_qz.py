"""qz and ordqz (linalgad/rules/qz.py): SciPy's signatures and outputs, and derivatives
against finite differences of scipy.linalg.qz / ordqz themselves (the real form's column
signs aligned, the complex form through phase-invariant losses), both modes, second order,
stacks, dtypes, empty inputs, and the degenerate cases' errors."""

import inspect

import numpy as np
import pytest
import scipy.linalg as sl

import linalgad as lad
from linalgad import linalg as la
from linalgad.backend import LinAlgError, qz_sweep
from linalgad.rules import qz as R


def _pencil(seed, n=4, batch=(), dtype=np.float64, centered=False):
    rng = np.random.default_rng(seed)
    return R._pencil(rng, n, batch, dtype, centered=centered)[0]


def _cdir(rng, shape, dtype):
    d = rng.standard_normal(shape)
    if np.dtype(dtype).kind == "c":
        d = d + 1j * rng.standard_normal(shape)
    return d.astype(dtype)


def _inner(x, y):
    return float(np.sum(np.conj(x) * y).real)


# -- signatures and values ------------------------------------------------------------------

@pytest.mark.parametrize("name", ["qz", "ordqz"])
def test_signature_is_scipys(name):
    assert inspect.signature(getattr(la, name)) == inspect.signature(getattr(sl, name))


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.complex64, np.complex128])
@pytest.mark.parametrize("output", ["real", "complex"])
def test_qz_values_are_scipys(dtype, output):
    rng = np.random.default_rng(1)
    A, B = _cdir(rng, (5, 5), dtype), _cdir(rng, (5, 5), dtype)   # generic: 2x2 blocks too
    ours = la.qz(A, B, output=output)
    ref = sl.qz(A, B, output=output)
    for x, y in zip(ours, ref):
        assert x.dtype == y.dtype and x.shape == y.shape
        np.testing.assert_array_equal(x, y)
    AA, BB, Q, Z = ours
    tol = 1e-4 if np.dtype(dtype) in (np.float32, np.complex64) else 1e-12
    Zh = np.conj(np.swapaxes(Z, -1, -2))
    np.testing.assert_allclose(Q @ AA @ Zh, A, atol=tol * 10)
    np.testing.assert_allclose(Q @ BB @ Zh, B, atol=tol * 10)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.complex64, np.complex128])
@pytest.mark.parametrize("output", ["real", "complex"])
@pytest.mark.parametrize("sort", ["lhp", "rhp", "iuc", "ouc", lambda a, b: np.abs(a) < np.abs(b)])
def test_ordqz_values_are_scipys(dtype, output, sort):
    rng = np.random.default_rng(2)
    A, B = _cdir(rng, (5, 5), dtype), _cdir(rng, (5, 5), dtype)
    ours = la.ordqz(A, B, sort=sort, output=output)
    ref = sl.ordqz(A, B, sort=sort, output=output)
    assert len(ours) == 6
    for x, y in zip(ours, ref):
        assert x.dtype == y.dtype and x.shape == y.shape
        np.testing.assert_array_equal(x, y)


def test_int_input_and_stacks_broadcast_like_scipy():
    rng = np.random.default_rng(3)
    A = rng.integers(-5, 5, (2, 3, 4, 4))
    B = rng.integers(-5, 5, (3, 4, 4)) + 10 * np.eye(4, dtype=int)
    for ours, ref in ((la.qz(A, B), sl.qz(A, B)),
                      (la.ordqz(A, B, sort="iuc"), sl.ordqz(A, B, sort="iuc"))):
        for x, y in zip(ours, ref):
            assert x.dtype == y.dtype and x.shape == y.shape
            np.testing.assert_allclose(x, y, atol=1e-12)


def test_empty_inputs_give_empty_factors():
    for shape in [(0, 0), (2, 0, 0), (0, 3, 3)]:
        Z0 = np.zeros(shape)
        AA, BB, Q, Z = la.qz(Z0, Z0)
        assert AA.shape == BB.shape == Q.shape == Z.shape == shape
        out = la.ordqz(Z0, Z0)
        assert out[2].shape == out[3].shape == shape[:-1] and out[2].dtype == np.complex128
        g = lad.grad(lambda a, b: lad.sum(la.qz(a, b)[0]) + lad.sum(la.qz(a, b)[2]),
                     argnums=(0, 1))(Z0, Z0)
        assert g[0].shape == g[1].shape == shape


def test_errors_name_the_function():
    A = np.eye(3)
    with pytest.raises(ValueError, match="Use ordqz"):
        la.qz(A, A, sort="lhp")
    with pytest.raises(ValueError, match="qz"):
        la.qz(np.ones((3, 2)), np.ones((3, 2)))
    with pytest.raises(ValueError, match="ordqz"):
        la.ordqz(np.eye(3), np.eye(2))
    with pytest.raises(ValueError, match="qz"):
        la.qz(A, A, output="fancy")
    with pytest.raises(ValueError, match="ordqz"):
        la.ordqz(A, A, sort="nope")
    bad = A.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="qz"):
        la.qz(bad, A)
    with pytest.raises(ValueError):
        la.qz(np.zeros((2, 3, 3)), np.zeros((4, 3, 3)))


# -- derivatives against finite differences of SciPy ------------------------------------------

def _aligned_real(fn, ref0):
    """SciPy's real factors with their column signs aligned to ref0's (Q → Q Dq, Z → Z Dz,
    AA → Dq AA Dz, BB → Dq BB Dz)."""
    def f(A, B):
        out = list(fn(A, B))
        # Q's and Z's column signs separately: ordqz (?tgsen) leaves a 2×2 block of BB with
        # signed entries, and flips one of Q's columns alone under a 1e-8 perturbation
        Dq, Dz = (np.sign(np.diagonal(np.swapaxes(r, -1, -2) @ o, 0, -2, -1))[..., None, :]
                  for r, o in ((ref0[-2], out[-2]), (ref0[-1], out[-1])))
        out[0] = np.swapaxes(Dq, -1, -2) * out[0] * Dz
        out[1] = np.swapaxes(Dq, -1, -2) * out[1] * Dz
        out[-2], out[-1] = out[-2] * Dq, out[-1] * Dz
        # ordqz's alpha, beta: a 1×1 block's follow AA, BB's diagonals (Dq Dz = 1 there, as
        # BB[k, k] >= 0), a 2×2 block's are ?lag2's (sign invariant)
        return out
    return f


@pytest.mark.parametrize("batch", [(), (2,)])
@pytest.mark.parametrize("kind", ["qz", "ordqz"])
def test_real_form_every_output_matches_finite_differences(batch, kind):
    """Every entry of (AA, BB, Q, Z) (and alpha, beta), with random weights: the real form
    with real eigenvalues is smooth up to the columns' signs, which are aligned."""
    A, B = _pencil(10, 5, batch, centered=kind == "ordqz")
    call = (lambda a, b: sl.qz(a, b)) if kind == "qz" else (lambda a, b: sl.ordqz(a, b))
    ours = (lambda a, b: la.qz(a, b)) if kind == "qz" else (lambda a, b: la.ordqz(a, b))
    ref0 = call(A, B)
    rng = np.random.default_rng(11)
    W = [rng.standard_normal(np.shape(x)) for x in ref0]
    f = _aligned_real(call, ref0)

    def loss_ref(a, b):
        return sum(np.sum(np.real(x) * w) for x, w in zip(f(a, b), W))

    dA, dB = rng.standard_normal(A.shape), rng.standard_normal(B.shape)
    h = 1e-6
    fd = (loss_ref(A + h * dA, B + h * dB) - loss_ref(A - h * dA, B - h * dB)) / (2 * h)
    gA, gB = lad.grad(lambda a, b: sum(lad.sum(lad.real(x) * w) for x, w in zip(ours(a, b), W)),
                      argnums=(0, 1))(A, B)
    assert abs(_inner(gA, dA) + _inner(gB, dB) - fd) <= 1e-6 * max(1, abs(fd))
    # forward mode: each output's tangent entry by entry
    outs, tans = lad.jvp(lambda a, b: tuple(ours(a, b)), (A, B), (dA, dB))
    fp, fm = f(A + h * dA, B + h * dB), f(A - h * dA, B - h * dB)
    for t, p, m in zip(tans, fp, fm):
        np.testing.assert_allclose(t, (p - m) / (2 * h), atol=2e-6)


def _phase_invariant(AA, BB, Q, Z, xp_abs2, matmul, mH, diag, real):
    """|AA|², |BB|², diag AA / diag BB, diag AA itself (its cotangent moves Z's phases
    against Q's: Im diag(Zᴴ Z̄ + AAᴴ AĀ + ...) ≠ 0, which exercises the gauge choice), Q AA
    Zᴴ's real part, the projectors Q₁Q₁ᴴ, Z₂Z₂ᴴ."""
    return (xp_abs2(AA), xp_abs2(BB), diag(AA) / diag(BB), diag(AA),
            real(matmul(matmul(Q, AA), mH(Z))),
            real(matmul(Q[..., :, :2], mH(Q[..., :, :2]))),
            real(matmul(Z[..., :, 1:3], mH(Z[..., :, 1:3]))))


@pytest.mark.parametrize("dtype,output", [(np.complex128, "real"), (np.float64, "complex")])
@pytest.mark.parametrize("batch", [(), (3,)])
def test_complex_form_phase_invariant_losses_match_finite_differences(dtype, output, batch):
    A, B = _pencil(20, 5, batch, dtype)
    rng = np.random.default_rng(21)

    def ref_parts(a, b):
        AA, BB, Q, Z = sl.qz(a, b, output=output)
        mH = lambda X: np.conj(np.swapaxes(X, -1, -2))
        return _phase_invariant(AA, BB, Q, Z, lambda X: np.abs(X) ** 2, np.matmul, mH,
                                lambda X: np.diagonal(X, 0, -2, -1), np.real)

    def parts(a, b):
        AA, BB, Q, Z = la.qz(a, b, output=output)
        return _phase_invariant(AA, BB, Q, Z, lambda X: lad.real(X * lad.conj(X)), lad.matmul,
                                lambda X: lad.conj(lad.swapaxes(X, -1, -2)),
                                lambda X: lad.diagonal(X, 0, -2, -1), lad.real)

    W = [rng.standard_normal(np.shape(x)) + (1j * rng.standard_normal(np.shape(x))
                                             if np.iscomplexobj(x) else 0)
         for x in ref_parts(A, B)]

    def loss(a, b):
        return sum(lad.sum(lad.real(lad.conj(w) * x) if np.iscomplexobj(w) else w * x)
                   for x, w in zip(parts(a, b), W))

    def loss_ref(a, b):
        return sum(np.sum(np.real(np.conj(w) * x)) for x, w in zip(ref_parts(a, b), W))

    dA, dB = _cdir(rng, A.shape, A.dtype), _cdir(rng, B.shape, B.dtype)
    h = 1e-6
    fd = (loss_ref(A + h * dA, B + h * dB) - loss_ref(A - h * dA, B - h * dB)) / (2 * h)
    gA, gB = lad.grad(loss, argnums=(0, 1))(A, B)
    assert gA.dtype == A.dtype
    assert abs(_inner(gA, dA) + _inner(gB, dB) - fd) <= 1e-6 * max(1, abs(fd))
    _, jv = lad.jvp(loss, (A, B), (dA, dB))
    assert abs(float(np.real(jv)) - fd) <= 1e-6 * max(1, abs(fd))


def test_complex_form_phase_dependent_loss_raises():
    A, B = _pencil(30, 4, (), np.complex128)
    with pytest.raises(ValueError, match="qz: the loss depends on the phase"):
        lad.grad(lambda a: lad.real(la.qz(a, B)[2][0, 0]))(A)
    with pytest.raises(ValueError, match="ordqz: the loss depends on the phase"):
        lad.grad(lambda a: lad.real(la.ordqz(a, B)[5][1, 1]))(A)
    # the same entry's modulus is invariant: no error, and it matches finite differences
    f = lambda a: lad.abs(la.qz(a, B)[2][0, 1]) ** 2
    g = lad.grad(f)(A)
    rng = np.random.default_rng(31)
    dA = _cdir(rng, A.shape, A.dtype)
    h = 1e-6
    fr = lambda a: abs(sl.qz(a, B)[2][0, 1]) ** 2
    fd = (fr(A + h * dA) - fr(A - h * dA)) / (2 * h)
    assert abs(_inner(g, dA) - fd) <= 1e-6 * max(1, abs(fd))


def test_the_sweep_is_the_dense_constraint_solve():
    """backend.qz_sweep against F assembled as a dense matrix on the strictly lower entries."""
    rng = np.random.default_rng(40)
    n = 4
    S = np.triu(rng.standard_normal((n, n)) + 1j * rng.standard_normal((n, n)))
    T = np.triu(rng.standard_normal((n, n)) + 1j * rng.standard_normal((n, n)))
    low = [(i, j) for i in range(n) for j in range(i)]

    def F(LQ, LZ):
        return np.tril(LQ @ S - S @ LZ, -1), np.tril(LQ @ T - T @ LZ, -1)

    m = len(low)
    Fm = np.zeros((2 * m, 2 * m), complex)
    for c in range(2 * m):
        E1, E2 = np.zeros((n, n), complex), np.zeros((n, n), complex)
        (E1 if c < m else E2)[low[c % m]] = 1
        a, b = F(E1, E2)
        Fm[:, c] = [a[p] for p in low] + [b[p] for p in low]
    RA = np.tril(rng.standard_normal((n, n)), -1) + 0j
    RB = np.tril(rng.standard_normal((n, n)), -1) + 0j
    rhs = np.array([RA[p] for p in low] + [RB[p] for p in low])
    x = np.linalg.solve(Fm, rhs)
    LQ, LZ = qz_sweep(S, T, RA, RB, False)
    np.testing.assert_allclose([LQ[p] for p in low] + [LZ[p] for p in low], x, atol=1e-12)
    y = np.linalg.solve(Fm.conj().T, rhs)
    YA, YB = qz_sweep(S, T, RA, RB, True)
    np.testing.assert_allclose([YA[p] for p in low] + [YB[p] for p in low], y, atol=1e-12)


def test_second_order_matches_finite_differences_of_the_gradient():
    A, B = _pencil(50, 4)
    rng = np.random.default_rng(51)
    W = rng.standard_normal((4, 4))

    def loss(a, b):
        AA, BB, Q, Z = la.qz(a, b)
        return lad.sum(W * AA * AA) + lad.sum(lad.diagonal(AA) / lad.diagonal(BB)) + \
            lad.sum(lad.matmul(Q[:, :2], Q[:, :2].T) * W)

    V, U = rng.standard_normal((4, 4)), rng.standard_normal((4, 4))
    Hv = lad.hvp(loss, (A, B), (V, U))
    g = lad.grad(loss, argnums=(0, 1))
    h = 1e-5
    gp, gm = g(A + h * V, B + h * U), g(A - h * V, B - h * U)
    for hv, p, m in zip(Hv, gp, gm):
        np.testing.assert_allclose(hv, (p - m) / (2 * h), atol=1e-5 * (1 + np.abs(hv).max()))


@pytest.mark.parametrize("dtype,double", [(np.float32, np.float64), (np.complex64, np.complex128)])
def test_single_precision_derivative_is_the_double_ones(dtype, double):
    A, B = _pencil(60, 4, (), double)
    W = np.random.default_rng(61).standard_normal((4, 4))
    out = "complex" if np.dtype(dtype).kind == "c" else "real"

    def loss(a, b):
        AA, BB, Q, Z = la.qz(a, b, output=out)
        return lad.sum(W * lad.real(AA * lad.conj(AA))) + lad.sum(lad.real(
            lad.diagonal(AA) / lad.diagonal(BB)))

    g64 = lad.grad(loss, argnums=(0, 1))(A, B)
    g32 = lad.grad(loss, argnums=(0, 1))(A.astype(dtype), B.astype(dtype))
    for x, y in zip(g32, g64):
        assert x.dtype == dtype
        np.testing.assert_allclose(x, y, rtol=0, atol=2e-3 * np.abs(y).max())


# -- degenerate inputs -------------------------------------------------------------------------

def test_repeated_eigenvalue_raises_linalgerror():
    rng = np.random.default_rng(70)
    U = np.linalg.qr(rng.standard_normal((4, 4)))[0]
    V = np.linalg.qr(rng.standard_normal((4, 4)))[0]
    # a semisimple double eigenvalue 2 (no coupling between its two copies)
    Sd = np.triu(rng.standard_normal((4, 4)), 1) + np.diag([1.0, 2.0, 2.0, 3.0])
    Td = np.triu(rng.standard_normal((4, 4)), 1) + np.eye(4)
    Sd[1, 2], Td[1, 2] = 0.0, 0.0
    A, B = U @ Sd @ V, U @ Td @ V
    with pytest.raises(LinAlgError, match="qz: .*repeated generalized eigenvalues"):
        lad.grad(lambda a: lad.sum(lad.abs(la.qz(a, B, output="complex")[0]) ** 2))(A)
    with pytest.raises(LinAlgError, match="ordqz: .*repeated"):
        lad.jvp(lambda a: la.ordqz(a, B, output="complex")[0], (A,), (A,))


def test_infinite_eigenvalue_raises_linalgerror():
    rng = np.random.default_rng(71)
    A = rng.standard_normal((4, 4))
    B = rng.standard_normal((4, 4))
    B[:, 0] = 0                                     # singular B: an infinite eigenvalue
    with pytest.raises(LinAlgError, match="qz: an infinite"):
        lad.grad(lambda a, b: lad.sum(lad.abs(la.qz(a, b, output="complex")[0]) ** 2),
                 argnums=(0, 1))(A, B)


@pytest.mark.parametrize("kind", ["qz", "ordqz"])
@pytest.mark.parametrize("batch", [(), (3,)])
def test_real_two_by_two_blocks_every_output_matches_finite_differences(kind, batch):
    """Complex-conjugate pairs in the real form: LAPACK's standardized blocks (BB's block
    diagonal) are differentiated with the standardization kept; every output, ordqz's
    alpha, beta (?lag2's scaled values) included, against SciPy's own differences."""
    rng = np.random.default_rng(80)
    A, B = R._pairs(rng, 5, batch, np.float64, centered=kind == "ordqz")[0]
    call = (lambda a, b: sl.qz(a, b)) if kind == "qz" else (lambda a, b: sl.ordqz(a, b))
    ours = (lambda a, b: la.qz(a, b)) if kind == "qz" else (lambda a, b: la.ordqz(a, b))
    ref0 = call(A, B)
    assert np.all(np.count_nonzero(np.diagonal(ref0[0], -1, -2, -1), axis=-1) == 2)
    f = _aligned_real(call, ref0)
    dA, dB = rng.standard_normal(A.shape), rng.standard_normal(B.shape)
    h = 1e-6
    fp, fm = f(A + h * dA, B + h * dB), f(A - h * dA, B - h * dB)
    fd = [(p - m) / (2 * h) for p, m in zip(fp, fm)]
    _, tans = lad.jvp(lambda a, b: tuple(ours(a, b)), (A, B), (dA, dB))
    for t, d in zip(tans, fd):
        np.testing.assert_allclose(t, d, atol=2e-6 * (1 + np.abs(d).max()))
    W = [rng.standard_normal(np.shape(x)) for x in ref0]
    loss = lambda a, b: sum(lad.sum(lad.real(x) * w) for x, w in zip(ours(a, b), W))
    gA, gB = lad.grad(loss, argnums=(0, 1))(A, B)
    want = sum(np.sum(np.real(d) * w) for d, w in zip(fd, W))
    assert abs(_inner(gA, dA) + _inner(gB, dB) - want) <= 1e-6 * max(1, abs(want))


def test_block_sweep_is_the_dense_constraint_solve():
    """With 2×2 blocks the constraints change (qz.md, section 6): the slot (k+1, k) of AA is
    free and BB[k, k+1] = 0 is kept; the sweep (one ?tgsyl per column block) against the
    constraint map assembled densely, in both directions."""
    rng = np.random.default_rng(81)
    n = 6
    A, B = R._pairs(rng, n, (), np.float64)[0]
    S, T, Q, Z = sl.qz(A, B)
    st = np.flatnonzero(np.diagonal(S, -1) != 0)
    assert len(st) == 3
    low = [(i, j) for i in range(n) for j in range(i)]
    rows_a = [p for p in low if not (p[0] == p[1] + 1 and p[1] in st)]
    rows_b = low + [(k, k + 1) for k in st]

    def F(LQ, LZ):
        OQ, OZ = LQ - LQ.T, LZ - LZ.T
        a, b = OQ @ S - S @ OZ, OQ @ T - T @ OZ
        return np.array([a[p] for p in rows_a] + [b[p] for p in rows_b])

    m = len(low)
    Fm = np.zeros((2 * m, 2 * m))
    for c in range(2 * m):
        E1, E2 = np.zeros((n, n)), np.zeros((n, n))
        (E1 if c < m else E2)[low[c % m]] = 1
        Fm[:, c] = F(E1, E2)
    RA, RB = np.zeros((n, n)), np.zeros((n, n))
    for p in rows_a:
        RA[p] = rng.standard_normal()
    for p in rows_b:
        RB[p] = rng.standard_normal()
    LQ, LZ = qz_sweep(S, T, RA, RB, False)
    x = np.linalg.solve(Fm, np.array([RA[p] for p in rows_a] + [RB[p] for p in rows_b]))
    np.testing.assert_allclose([LQ[p] for p in low] + [LZ[p] for p in low], x, atol=1e-12)
    KQ, KZ = np.tril(rng.standard_normal((n, n)), -1), np.tril(rng.standard_normal((n, n)), -1)
    YA, YB = qz_sweep(S, T, KQ, KZ, True)
    y = np.linalg.solve(Fm.T, np.array([KQ[p] for p in low] + [KZ[p] for p in low]))
    np.testing.assert_allclose([YA[p] for p in rows_a] + [YB[p] for p in rows_b], y, atol=1e-12)
    assert not np.any(YA[st + 1, st])


def test_block_with_equal_bb_entries_is_a_gauge():
    """B = I: every 2×2 block's BB entries are equal, and the block's rotation is free.
    A loss invariant under it (trace of the block, Q AA Zᵀ, the eigenvalues) is
    differentiated and matches SciPy's differences; one that is not raises ValueError."""
    rng = np.random.default_rng(82)
    A = rng.standard_normal((4, 4))
    A[:2, :2] += [[0.0, 2.0], [-2.0, 0.0]]
    B = np.eye(4)
    S = sl.qz(A, B)[0]
    st = np.flatnonzero(np.diagonal(S, -1) != 0)
    assert len(st) >= 1
    k = int(st[0])

    def inv(a):
        AA, BB, Q, Z = la.qz(a, B)
        return AA[k, k] + AA[k + 1, k + 1] + lad.sum(lad.matmul(lad.matmul(Q, AA), Z.T) ** 2)

    def inv_ref(a):
        AA, BB, Q, Z = sl.qz(a, B)
        return AA[k, k] + AA[k + 1, k + 1] + np.sum((Q @ AA @ Z.T) ** 2)

    g = lad.grad(inv)(A)
    dA = rng.standard_normal(A.shape)
    h = 1e-6
    fd = (inv_ref(A + h * dA) - inv_ref(A - h * dA)) / (2 * h)
    assert abs(_inner(g, dA) - fd) <= 1e-6 * max(1, abs(fd))
    with pytest.raises(ValueError, match="qz: the loss depends on the rotation inside a 2×2"):
        lad.grad(lambda a: la.qz(a, B)[0][k, k])(A)


def test_stack_mixing_blocks_and_real_eigenvalues():
    """A stack whose matrices have 2×2 blocks or none: the block sweep runs matrix by
    matrix; hvp (second order) against differences of the gradient too."""
    rng = np.random.default_rng(90)
    A1, B1 = R._pencil(rng, 4, (), np.float64)[0]
    A2, B2 = R._pairs(rng, 4, (), np.float64)[0]
    A, B = np.stack([A1, A2]), np.stack([B1, B2])
    ref0 = sl.qz(A, B)
    f = _aligned_real(lambda a, b: sl.qz(a, b), ref0)
    dA, dB = rng.standard_normal(A.shape), rng.standard_normal(B.shape)
    h = 1e-6
    fd = [(p - m) / (2 * h) for p, m in zip(f(A + h * dA, B + h * dB), f(A - h * dA, B - h * dB))]
    _, tans = lad.jvp(lambda a, b: tuple(la.qz(a, b)), (A, B), (dA, dB))
    for t, d in zip(tans, fd):
        np.testing.assert_allclose(t, d, atol=2e-6 * (1 + np.abs(d).max()))
    W = rng.standard_normal(A.shape)

    def loss(a, b):
        AA, BB, Q, Z = la.qz(a, b)
        return lad.sum(W * AA * AA) + lad.sum(W * Q * Q)

    Hv = lad.hvp(loss, (A, B), (dA, dB))
    g = lad.grad(loss, argnums=(0, 1))
    h = 1e-5
    gp, gm = g(A + h * dA, B + h * dB), g(A - h * dA, B - h * dB)
    for hv, p, m in zip(Hv, gp, gm):
        np.testing.assert_allclose(hv, (p - m) / (2 * h), atol=1e-5 * (1 + np.abs(hv).max()))


# -- review: adversarial cases ------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["qz", "ordqz"])
def test_stacks_broadcast_when_b_has_the_larger_batch(kind):
    """A (4, 4) with B (3, 4, 4), and A (2, 1, 4, 4) with B (3, 4, 4): the stacks broadcast as
    in SciPy (which batches qz), values and gradient shapes."""
    rng = np.random.default_rng(100)
    for sa, sb in [((4, 4), (3, 4, 4)), ((2, 1, 4, 4), (3, 4, 4))]:
        A, B = rng.standard_normal(sa), rng.standard_normal(sb) + 3 * np.eye(4)
        ours, ref = getattr(la, kind)(A, B), getattr(sl, kind)(A, B)
        for x, y in zip(ours, ref):
            assert x.shape == y.shape and x.dtype == y.dtype
            np.testing.assert_allclose(x, y, atol=1e-12)
        gA, gB = lad.grad(lambda a, b: lad.sum(getattr(la, kind)(a, b)[0] ** 2),
                          argnums=(0, 1))(A, B)
        assert gA.shape == sa and gB.shape == sb
        # the gradient against finite differences (|AA|² is invariant under the signs)
        dA, dB = rng.standard_normal(sa), rng.standard_normal(sb)
        f = lambda a, b: np.sum(getattr(sl, kind)(a, b)[0] ** 2)
        h = 1e-6
        fd = (f(A + h * dA, B + h * dB) - f(A - h * dA, B - h * dB)) / (2 * h)
        assert abs(_inner(gA, dA) + _inner(gB, dB) - fd) <= 1e-6 * max(1, abs(fd))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("Bkind", ["I", "-I", "orthogonal"])
def test_gauge_block_invariant_loss_in_single_precision(dtype, Bkind):
    """B = I (or orthogonal) in float32: BB's block entries are 1 up to float32 rounding
    (1.0000002 vs 1.0), which is the gauge, not a 2e-7 gap with a 5e6 times larger
    rotation; an invariant loss (|Q AA Zᵀ|², the block's deflating subspace Q₁Q₁ᵀ) must get
    the double derivative (it was off by 20%, silently)."""
    rng = np.random.default_rng(82)
    A = rng.standard_normal((4, 4))
    A[:2, :2] += [[0.0, 2.0], [-2.0, 0.0]]
    B = {"I": np.eye(4), "-I": -np.eye(4),
         "orthogonal": np.linalg.qr(rng.standard_normal((4, 4)))[0]}[Bkind]
    W = rng.standard_normal((4, 4))
    S = sl.qz(A.astype(dtype), B.astype(dtype))[0]
    st = np.flatnonzero(np.diagonal(S, -1))
    assert len(st) >= 1
    e = int(st[0]) + 2        # Q[:, :e] ends with the first block: invariant under its rotation
    assert np.array_equal(st, np.flatnonzero(np.diagonal(sl.qz(A, B)[0], -1)))

    def loss(a, b):
        AA, BB, Q, Z = la.qz(a, b)
        P = lad.matmul(Q[:, :e], Q[:, :e].T)
        return lad.sum(lad.matmul(lad.matmul(Q, AA), Z.T) ** 2) + lad.sum(P * W)

    def ref(a, b):
        AA, BB, Q, Z = sl.qz(a, b)
        return np.sum((Q @ AA @ Z.T) ** 2) + np.sum(Q[:, :e] @ Q[:, :e].T * W)

    g = lad.grad(loss, argnums=(0, 1))(A.astype(dtype), B.astype(dtype))
    dA, dB = rng.standard_normal((4, 4)), rng.standard_normal((4, 4))
    h = 1e-6
    fd = (ref(A + h * dA, B + h * dB) - ref(A - h * dA, B - h * dB)) / (2 * h)
    got = _inner(g[0], dA) + _inner(g[1], dB)
    tol = 1e-3 if dtype == np.float32 else 1e-6
    assert abs(got - fd) <= tol * max(1, abs(fd)), (got, fd)


@pytest.mark.parametrize("dtype", [np.complex64, np.complex128])
@pytest.mark.parametrize("pencil", ["diagonal", "normal", "near-diagonal"])
def test_eigenvalue_loss_is_no_phase_false_alarm(dtype, pencil):
    """diag AA / diag BB is phase invariant: on a diagonal or normal pencil with B = I its
    G_Q, G_Z cancel to rounding, which must not count as a phase dependence (complex64
    raised ValueError)."""
    rng = np.random.default_rng(5)
    n = 4
    D = np.diag(np.arange(1, n + 1) + 1j * np.arange(n))
    U = np.linalg.qr(rng.standard_normal((n, n)) + 1j * rng.standard_normal((n, n)))[0]
    A, B = {"diagonal": (D, np.eye(n)), "normal": (U @ D @ U.conj().T, np.eye(n)),
            "near-diagonal": (D + 1e-6 * rng.standard_normal((n, n)),
                              np.eye(n) + 1e-6 * rng.standard_normal((n, n)))}[pencil]
    A, B = A.astype(dtype), B.astype(dtype)
    w = rng.standard_normal(2) + 1j * rng.standard_normal(2)

    # a symmetric function of the eigenvalues (SciPy's order may change under the differences)
    def loss(a, b):
        AA, BB, Q, Z = la.qz(a, b)
        lam = lad.diagonal(AA) / lad.diagonal(BB)
        return lad.sum(lad.real(lam * lam * w[0] + lam * lam * lam * w[1]))

    gA, gB = lad.grad(loss, argnums=(0, 1))(A, B)
    # against the eigenvalues' derivative by finite differences of SciPy (double)
    A2, B2 = A.astype(np.complex128), B.astype(np.complex128)

    def ref(a, b):
        AA, BB, Q, Z = sl.qz(a, b)
        lam = np.diag(AA) / np.diag(BB)
        return np.sum(np.real(lam ** 2 * w[0] + lam ** 3 * w[1]))

    dA, dB = _cdir(rng, (n, n), np.complex128), _cdir(rng, (n, n), np.complex128)
    h = 1e-6
    fd = (ref(A2 + h * dA, B2 + h * dB) - ref(A2 - h * dA, B2 - h * dB)) / (2 * h)
    tol = 1e-3 if dtype == np.complex64 else 1e-6
    assert abs(_inner(gA, dA) + _inner(gB, dB) - fd) <= tol * max(1, abs(fd))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("scale_a,scale_b", [(1e6, 1.0), (1e12, 1.0), (1e-12, 1.0),
                                             (1.0, 1e-12), (1e-30, 1e30)])
def test_thresholds_do_not_depend_on_the_scales_of_a_and_b(dtype, scale_a, scale_b):
    """(c A, d B) has the eigenvalues (c/d) λ and the same Q, Z: a well separated pencil with
    B well conditioned stays differentiable whatever c and d (it was refused as 'infinite' or
    'repeated' eigenvalues once c/d was far from 1: the tests mixed A's and B's scales)."""
    if dtype == np.float32 and max(scale_a, scale_b, 1 / scale_a, 1 / scale_b) > 1e12:
        pytest.skip("outside float32's range")
    A, B = _pencil(110, 4)
    c, d = scale_a, scale_b
    a, b = (c * A).astype(dtype), (d * B).astype(dtype)

    def loss(x):                    # a symmetric function of μ = (d/c) λ: order and signs free
        AA, BB, Q, Z = la.qz(x, b)
        mu = lad.diagonal(AA) / lad.diagonal(BB) * (d / c)
        return lad.sum(mu ** 2 + mu ** 3)

    g = lad.grad(loss)(a)
    rng = np.random.default_rng(111)
    dA = rng.standard_normal((4, 4))
    h = 1e-6

    def f(x):                       # μ of (A + h dA, B), in double
        AA, BB, Q, Z = sl.qz(x, B)
        mu = np.diag(AA) / np.diag(BB)
        return np.sum(mu ** 2 + mu ** 3)

    fd = (f(A + h * dA) - f(A - h * dA)) / (2 * h)
    tol = 1e-3 if dtype == np.float32 else 1e-6
    assert abs(_inner(g, dA) * c - fd) <= tol * max(1, abs(fd))

@pytest.mark.parametrize("dtype,scale", [(np.float32, 1e12), (np.float32, 1e-20),
                                         (np.float64, 1e150), (np.float64, 1e-150)])
def test_ordqz_block_alpha_beta_at_extreme_scales(dtype, scale):
    """?lag2's alpha, beta of a 2×2 block at |A|, |B| ~ scale: SciPy's values bit for bit (the
    quadratic's unscaled coefficients t1 t2, a11 a22 overflowed: alpha, beta were NaN at 1e12
    in single precision), and a finite derivative that matches SciPy's differences."""
    rng = np.random.default_rng(120)
    A0, B0 = R._pairs(rng, 5, (), np.float64, centered=True)[0]
    a, b = (scale * A0).astype(dtype), (scale * B0).astype(dtype)
    for x, y in zip(la.ordqz(a, b), sl.ordqz(a, b)):
        assert x.dtype == y.dtype
        np.testing.assert_array_equal(x, y)

    def loss(x, y):
        _, _, al, be, _, _ = la.ordqz(x, y)
        lam = al / be
        return lad.sum(lad.real(lam) ** 2 + lad.imag(lam) ** 3) + lad.sum(be * be)

    def ref(x, y):
        _, _, al, be, _, _ = sl.ordqz(x, y)
        lam = al / be
        return np.sum(lam.real ** 2 + lam.imag ** 3) + np.sum(be * be)

    gA, gB = lad.grad(loss, argnums=(0, 1))(a, b)
    dA, dB = rng.standard_normal((5, 5)), rng.standard_normal((5, 5))
    h = 1e-6
    A2, B2 = scale * A0, scale * B0
    fd = (ref(A2 + h * scale * dA, B2 + h * scale * dB) -
          ref(A2 - h * scale * dA, B2 - h * scale * dB)) / (2 * h)
    got = (_inner(gA, dA) + _inner(gB, dB)) * scale
    tol = 1e-3 if dtype == np.float32 else 1e-6
    assert np.isfinite(got) and abs(got - fd) <= tol * max(1, abs(fd)), (got, fd)


@pytest.mark.parametrize("pencil", ["blocks", "real"])
@pytest.mark.parametrize("scale_a,scale_b", [(1e-20, 1.0), (1.0, 1e-50), (1e-150, 1e150)])
def test_sweep_does_not_depend_on_the_scales_of_a_and_b(pencil, scale_a, scale_b):
    """Q of (c A, d B) is Q of (A, B): its derivative (Q⁴, free of the signs) must not be
    refused ('repeated eigenvalues': ?tgsyl's check on the unscaled block sweep fired at
    max|AA| / max|BB| = 1e-20)."""
    rng = np.random.default_rng(121)
    make = R._pairs if pencil == "blocks" else R._pencil
    A, B = make(rng, 4, (), np.float64)[0]
    g = lad.grad(lambda x: lad.sum(la.qz(x, scale_b * B)[2] ** 4))(scale_a * A)
    dA = rng.standard_normal((4, 4))
    h = 1e-6
    f = lambda x: np.sum(sl.qz(x, B)[2] ** 4)
    fd = (f(A + h * dA) - f(A - h * dA)) / (2 * h)
    assert abs(_inner(g, dA) * scale_a - fd) <= 1e-6 * max(1, abs(fd))


@pytest.mark.parametrize("dtype", [np.float32, np.complex64])
def test_gauge_dependent_losses_still_raise_in_single_precision(dtype):
    """The single-precision tolerances (block gauge eps^(2/3) of float32, the phase test's
    scale) must not hide a real dependence: AA[k, k] at B = I (real form), Re Q[0, 0]
    (complex form) raise ValueError naming qz."""
    rng = np.random.default_rng(82)
    A = rng.standard_normal((4, 4))
    A[:2, :2] += [[0.0, 2.0], [-2.0, 0.0]]
    if np.dtype(dtype).kind == "c":
        A = A + 1j * rng.standard_normal((4, 4))
        with pytest.raises(ValueError, match="qz: the loss depends on the phase"):
            lad.grad(lambda a: lad.real(la.qz(a, np.eye(4, dtype=dtype))[2][0, 0]))(
                A.astype(dtype))
        return
    a, b = A.astype(dtype), np.eye(4, dtype=dtype)
    k = int(np.flatnonzero(np.diagonal(sl.qz(a, b)[0], -1))[0])
    with pytest.raises(ValueError, match="qz: the loss depends on the rotation inside a 2×2"):
        lad.grad(lambda x: la.qz(x, b)[0][k, k])(a)


def test_degenerate_matrix_of_a_stack_is_named():
    """DESIGN: in a batch, the error says which matrix failed."""
    A, B = _pencil(130, 3, (3,))
    B = B.copy()
    B[1, :, 0] = 0                                  # matrix 1: an infinite eigenvalue
    with pytest.raises(LinAlgError, match=r"qz: an infinite.*matrix \(?1"):
        lad.grad(lambda a: lad.sum(lad.abs(la.qz(a, B)[0]) ** 2))(A)
    A2, B2 = _pencil(131, 3, (3,))
    A2, B2 = A2.copy(), B2.copy()
    A2[2] = B2[2] * 2.0                             # matrix 2: A = 2 B, a triple eigenvalue 2
    with pytest.raises(LinAlgError, match=r"qz: \(nearly\) repeated.*matrix \(?2"):
        lad.grad(lambda a: lad.sum(lad.abs(la.qz(a, B2)[0]) ** 2))(A2)
