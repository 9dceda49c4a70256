"""ldl: SciPy's values, shapes, batching and errors exactly; derivatives (2×2 pivot blocks,
both forms, Hermitian and complex symmetric, stacks, second order) against finite differences
of SciPy's own ldl and against references that do not go through the rule (the inverse's
formulas for log|det| and a solve, the reconstruction identity)."""

import inspect
import warnings

import numpy as np
import pytest
import scipy.linalg as sl

import linalgad as lad
from linalgad.rules import ldl as R
from linalgad.testing import check_grads

la = lad.linalg
DTYPES = (np.float32, np.float64, np.complex64, np.complex128)


def _rand(rng, shape, cplx):
    x = rng.standard_normal(shape)
    return x + 1j * rng.standard_normal(shape) if cplx else x


def _dag(M, herm):
    return np.conj(np.swapaxes(M, -1, -2)) if herm else np.swapaxes(M, -1, -2)


def _full(T, lower, herm):
    """The matrix SciPy factorizes from one triangle of T (stacks)."""
    S = np.tril(T, -1) if lower else np.triu(T, 1)
    dg = np.diagonal(T, 0, -2, -1)
    return S + _dag(S, herm) + dg.real[..., None] * np.eye(T.shape[-1]) if herm else \
        S + _dag(S, herm) + dg[..., None] * np.eye(T.shape[-1])


def _fold(G, lower, herm):
    """Cotangent of the array from the cotangent G of the full matrix (_full's adjoint)."""
    F = G + _dag(G, herm)
    F = np.tril(F) if lower else np.triu(F)
    dg = np.diagonal(G, 0, -2, -1)
    return F - (dg.real if herm else dg)[..., None] * np.eye(G.shape[-1])


def _blocky(rng, n, cplx=False, herm=True):
    """Small diagonal, O(1) couplings: Bunch–Kaufman takes 2×2 pivots."""
    G = _rand(rng, (n, n), cplx)
    A = G + _dag(G, herm)
    A[np.diag_indices(n)] = 0.05 * rng.standard_normal(n)
    return A


def _sample(domain, n, batch, dtype, seed=0):
    dom = next(d for d in R.RULES[0].domains if d.name == domain)
    (A,), kw = dom.make(np.random.default_rng(seed), n, batch, dtype)
    return A, kw


# -- values ---------------------------------------------------------------------------------

def test_signature_is_scipys():
    assert inspect.signature(la.ldl) == inspect.signature(sl.ldl)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("lower", [True, False])
@pytest.mark.parametrize("hermitian", [True, False])
@pytest.mark.parametrize("n", [1, 2, 5, 8])
def test_values_equal_scipys(dtype, lower, hermitian, n):
    rng = np.random.default_rng(n)
    cplx = np.dtype(dtype).kind == "c"
    herm = hermitian or not cplx
    for A in (_rand(rng, (n, n), cplx), _blocky(rng, n, cplx, herm)):
        A = A.astype(dtype)
        if herm and cplx:
            A[np.diag_indices(n)] = A.diagonal().real
        got = la.ldl(A, lower=lower, hermitian=hermitian)
        want = sl.ldl(A, lower=lower, hermitian=hermitian)
        assert isinstance(got, tuple) and len(got) == 3
        for g, w in zip(got, want):
            assert g.shape == w.shape and g.dtype == w.dtype, (g.dtype, w.dtype)
            np.testing.assert_array_equal(g, w)


def test_some_samples_have_2x2_blocks_and_permutations():
    """The value test above is not vacuous: its matrices pivot and take 2×2 blocks."""
    rng = np.random.default_rng(0)
    blocks = perms = 0
    for n in (2, 5, 8):
        for lower in (True, False):
            _, d, perm = la.ldl(_blocky(rng, n), lower=lower)
            blocks += int((np.diagonal(d, -1) != 0).sum())
            perms += int(not np.array_equal(perm, np.arange(n)))
    assert blocks >= 6 and perms >= 3


def test_stacks_follow_scipys_batching():
    rng = np.random.default_rng(1)
    A = _rand(rng, (2, 3, 5, 5), True)
    for lower in (True, False):
        for hermitian in (True, False):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", np.exceptions.ComplexWarning)
                got = la.ldl(A, lower=lower, hermitian=hermitian)
                want = sl.ldl(A, lower=lower, hermitian=hermitian)
            for g, w in zip(got, want):
                assert g.shape == w.shape and g.dtype == w.dtype
                np.testing.assert_array_equal(g, w)
    lu, d, perm = la.ldl(A.real)
    assert perm.shape == (2, 3, 5) and perm.dtype == np.int64


def test_argument_conversions_like_scipy():
    a = [[1, 2], [2, -3]]                                       # integers: float64
    for g, w in zip(la.ldl(a), sl.ldl(a)):
        assert g.dtype == w.dtype
        np.testing.assert_array_equal(g, w)
    for g, w in zip(la.ldl(np.array([4.0])), sl.ldl(np.array([4.0]))):  # atleast_2d
        np.testing.assert_array_equal(g, w)
    h = np.array([[2, 1], [1, -1]], dtype=np.float16)
    assert la.ldl(h)[0].dtype == np.float32
    # lower=0 (SciPy's docstring example): the upper form
    a = np.array([[2, -1, 3], [0, 2, 0], [0, 0, 1]])
    for g, w in zip(la.ldl(a, lower=0), sl.ldl(a, lower=0)):
        np.testing.assert_array_equal(g, w)


def test_only_the_referenced_triangle_is_read():
    rng = np.random.default_rng(2)
    A = _rand(rng, (4, 4), True)
    for lower in (True, False):
        junk = np.triu(_rand(rng, (4, 4), True), 1) if lower else \
            np.tril(_rand(rng, (4, 4), True), -1)
        for hermitian in (True, False):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", np.exceptions.ComplexWarning)
                a = la.ldl(A, lower=lower, hermitian=hermitian)
                b = la.ldl(A + junk, lower=lower, hermitian=hermitian)
            for x, y in zip(a, b):
                np.testing.assert_array_equal(x, y)


def test_imaginary_diagonal_warns_like_scipy():
    A = np.array([[1 + 1j, 2], [2, 3]])
    with pytest.warns(np.exceptions.ComplexWarning, match="imaginary parts of the diagonal"):
        la.ldl(A)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        la.ldl(A, hermitian=False)                              # complex symmetric: no warning


# -- errors and empty input -------------------------------------------------------------------

def test_errors_name_ldl():
    with pytest.raises(ValueError, match="ldl.*square"):
        la.ldl(np.ones((2, 3)))
    with pytest.raises(ValueError, match="ldl.*square"):
        la.ldl(np.ones((4, 2, 3)))
    with pytest.raises(ValueError, match="ldl.*square"):
        la.ldl(np.ones(3))
    with pytest.raises(ValueError, match="ldl"):
        la.ldl(np.array([[1.0, np.nan], [np.nan, 1.0]]))
    la.ldl(np.array([[1.0, np.nan], [np.nan, 1.0]]), check_finite=False)    # as SciPy


def test_singular_matrix_factors_like_scipy_and_its_derivative_raises():
    A = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 2.0]])   # a zero 1×1 pivot
    for g, w in zip(la.ldl(A), sl.ldl(A)):
        np.testing.assert_array_equal(g, w)

    def loss(a):
        lu, d, _ = la.ldl(a)
        return lad.sum(lu * lu) + lad.sum(d)

    with pytest.raises(np.linalg.LinAlgError, match="ldl.*zero 1×1 pivot at index 1"):
        lad.grad(loss)(A)
    with pytest.raises(np.linalg.LinAlgError, match="ldl.*undefined"):
        lad.jvp(loss, (A,), (np.ones_like(A),))
    stack = np.stack([np.eye(3), A])
    with pytest.raises(np.linalg.LinAlgError, match=r"ldl.*matrix \(1,\) of the stack"):
        lad.grad(loss)(stack)
    Z = np.zeros((2, 2))
    for g, w in zip(la.ldl(Z), sl.ldl(Z)):
        np.testing.assert_array_equal(g, w)
    with pytest.raises(np.linalg.LinAlgError, match="ldl"):
        lad.grad(loss)(Z)


@pytest.mark.parametrize("shape", [(0, 0), (2, 0, 0), (0, 3, 3)])
def test_empty_input(shape):
    A = np.zeros(shape)
    lu, d, perm = la.ldl(A)
    assert lu.shape == d.shape == shape and lu.dtype == d.dtype == np.float64
    assert perm.shape == shape[:-1] and perm.dtype == np.int64
    if shape[0] != 0 or len(shape) == 2:                       # SciPy raises for (0, 3, 3)
        want = sl.ldl(A)
        for g, w in zip((lu, d, perm), want):
            assert g.shape == w.shape and g.dtype == w.dtype

    def loss(a):
        lu, d, _ = la.ldl(a)
        return lad.sum(lu) + lad.sum(d)

    g = lad.grad(loss)(A)
    assert g.shape == shape and not g.any()
    _, t = lad.jvp(loss, (A,), (np.ones(shape),))
    assert t == 0


# -- derivatives ----------------------------------------------------------------------------

def _domain_cases(dtypes):
    return [(d.name, t) for d in R.RULES[0].domains for t in dtypes if d.applies_to(t)]


@pytest.mark.parametrize("domain,dtype",
                         _domain_cases([np.float32, np.float64, np.complex64, np.complex128]))
def test_domains_have_a_stable_pivot_structure(domain, dtype):
    """At A ± h E for random E the structure does not change (h far above the finite
    differences' steps), so the checks below stay on one branch."""
    A, kw = _sample(domain, 5, (4,), dtype, seed=7)
    rng = np.random.default_rng(99)
    for a in A:
        assert R.stable_structure(a, kw.get("lower", True), kw.get("hermitian", True), rng,
                                  delta=1e-4, tries=10)
    if domain.startswith("blocks"):
        d = la.ldl(A, **kw)[1]
        assert (np.diagonal(d, -1, -2, -1) != 0).any(axis=-1).all()


@pytest.mark.parametrize("domain,dtype", _domain_cases([np.float64, np.complex128]))
@pytest.mark.parametrize("batch", [(), (2,)])
def test_derivatives_against_finite_differences(domain, dtype, batch):
    """VJP, JVP, the dot-product test and all second-order compositions at n = 5."""
    A, kw = _sample(domain, 5, batch, dtype, seed=3)
    with warnings.catch_warnings():                 # complex directions on the diagonal
        warnings.simplefilter("ignore", np.exceptions.ComplexWarning)
        check_grads(lambda a: la.ldl(a, **kw)[:2], (A,), order=2)


def test_a_2x2_block_case_by_hand():
    """A matrix whose factorization is one 2×2 pivot and one 1×1 pivot, with a permutation;
    each output's derivative alone against central differences of SciPy's ldl."""
    A = np.array([[0.01, 0.3, 2.0], [0.3, 4.0, 0.5], [2.0, 0.5, -0.02]])
    lu, d, perm = sl.ldl(A)
    assert (np.diagonal(d, -1) != 0).sum() == 1
    rng = np.random.default_rng(4)
    assert R.stable_structure(A, True, True, rng)
    V = np.tril(rng.standard_normal((3, 3)))
    h = 1e-6
    fd = [(p - m) / (2 * h) for p, m in zip(sl.ldl(A + h * V)[:2], sl.ldl(A - h * V)[:2])]
    _, (lu_dot, d_dot) = lad.jvp(lambda a: la.ldl(a)[:2], (A,), (V,))
    np.testing.assert_allclose(lu_dot, fd[0], atol=1e-7)
    np.testing.assert_allclose(d_dot, fd[1], atol=1e-7)
    W = rng.standard_normal((3, 3))
    for k in range(2):
        g = lad.grad(lambda a: lad.sum(W * la.ldl(a)[k]))(A)
        assert np.isclose(np.sum(g * V), np.sum(W * fd[k]), rtol=1e-7)
        assert not np.triu(g, 1).any()


@pytest.mark.parametrize("lower", [True, False])
@pytest.mark.parametrize("hermitian", [True, False])
def test_reconstruction_identity_of_the_tangents(lower, hermitian):
    """lu̇ d lu† + lu ḋ lu† + lu d lu̇† = Ȧ (the full matrix's tangent), with lu̇[perm] in the
    strictly block-triangular pattern and ḋ block diagonal: the defining equation,
    differentiated, checked without finite differences."""
    rng = np.random.default_rng(5)
    n = 6
    A = _blocky(rng, n, True, hermitian) + np.eye(n)
    V = _rand(rng, (n, n), True)
    if hermitian:
        V[np.diag_indices(n)] = V.diagonal().real
    lu, d, perm = la.ldl(A, lower=lower, hermitian=hermitian)
    _, (lu_dot, d_dot) = lad.jvp(lambda a: la.ldl(a, lower=lower, hermitian=hermitian)[:2],
                                 (A,), (V,))
    lhs = lu_dot @ d @ _dag(lu, hermitian) + lu @ d_dot @ _dag(lu, hermitian) + \
        lu @ d @ _dag(lu_dot, hermitian)
    np.testing.assert_allclose(lhs, _full(V, lower, hermitian), atol=1e-10)
    S, Bd = R._masks(np.diagonal(d, -1) != 0, n, lower, d.dtype)
    assert not (lu_dot[perm] * (1 - S)).any()
    assert not (d_dot * (1 - Bd)).any()


@pytest.mark.parametrize("lower", [True, False])
@pytest.mark.parametrize("hermitian", [True, False])
@pytest.mark.parametrize("batch", [(), (3,)])
def test_log_abs_det_through_ldl_equals_the_inverse_formula(lower, hermitian, batch):
    """log|det A| = log|det d|: its gradient through ldl (the d cotangent) is the folded
    A⁻ᴴ — computed here with NumPy's inverse, not with any rule."""
    rng = np.random.default_rng(6)
    cplx = True
    T = np.stack([_blocky(rng, 5, cplx, hermitian) for _ in range(int(np.prod(batch)))])
    T = T.reshape(batch + (5, 5)) + np.triu(_rand(rng, batch + (5, 5), cplx), 1)
    if hermitian:
        T = T - 1j * np.diagonal(T, 0, -2, -1).imag[..., None] * np.eye(5)

    def loss(t):
        d = la.ldl(t, lower=lower, hermitian=hermitian)[1]
        return lad.sum(la.slogdet(d)[1])

    Ah = _full(T, lower, hermitian)
    want = _fold(np.conj(np.swapaxes(np.linalg.inv(Ah), -1, -2)), lower, hermitian)
    np.testing.assert_allclose(lad.grad(loss)(T), want, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("lower", [True, False])
@pytest.mark.parametrize("hermitian", [True, False])
def test_solve_through_ldl_equals_the_solve_formula(lower, hermitian):
    """x = lu^{-†} d⁻¹ lu⁻¹ b = A⁻¹ b; the gradient of ‖x‖² through ldl (both factors'
    cotangents) against the closed form Ā = fold(−A⁻ᴴ x̄ xᴴ), x̄ = 2x, in NumPy."""
    rng = np.random.default_rng(8)
    n = 6
    A = _blocky(rng, n, True, hermitian)
    b = _rand(rng, (n, 2), True)

    def loss(a):
        lu, d, _ = la.ldl(a, lower=lower, hermitian=hermitian)
        luT = lad.swapaxes(lu, -1, -2)
        y = la.solve(lu, b)
        z = la.solve(d, y)
        x = la.solve(lad.conj(luT) if hermitian else luT, z)
        return lad.sum(lad.real(lad.conj(x) * x))

    Ah = _full(A, lower, hermitian)
    x = np.linalg.solve(Ah, b)
    want = _fold(-np.linalg.solve(Ah.conj().T, 2 * x) @ x.conj().T, lower, hermitian)
    np.testing.assert_allclose(lad.grad(loss)(A), want, rtol=1e-8, atol=1e-9)


def test_hessian_vector_product_against_differences_of_gradients():
    rng = np.random.default_rng(9)
    A = _blocky(rng, 5)
    W1, W2 = rng.standard_normal((2, 5, 5))
    V = np.tril(rng.standard_normal((5, 5)))

    def loss(a):
        lu, d, _ = la.ldl(a)
        return lad.sum(W1 * lu * lu) + lad.sum(W2 * d * d)

    hv = lad.hvp(loss, (A,), (V,))[0]
    h = 1e-5
    g = lad.grad(loss)
    np.testing.assert_allclose(hv, (g(A + h * V) - g(A - h * V)) / (2 * h), rtol=1e-5,
                               atol=1e-6 * abs(hv).max())


@pytest.mark.parametrize("dtype", [np.float32, np.complex64])
def test_single_precision_gradients(dtype):
    A, kw = _sample("blocks", 4, (2,), dtype, seed=11)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", np.exceptions.ComplexWarning)
        check_grads(lambda a: la.ldl(a, **kw)[:2], (A,), order=1, rtol=2e-2)
    g = lad.grad(lambda a: lad.sum(lad.real(la.ldl(a)[1])))(A)
    assert g.dtype == dtype


# -- linalgad.jit ---------------------------------------------------------------------------

def test_jit_replays_with_this_calls_pivots():
    """perm, the block structure and the derivative's masks are this call's on a replay
    (a recording with other pivots baked in would be wrong), and the singular-pivot check
    runs again."""
    rng = np.random.default_rng(12)
    a0 = _rand(rng, (3, 3), False) + 8 * np.eye(3)            # no pivoting, 1×1 blocks
    a1 = np.array([[0.01, 0.3, 2.0], [0.3, 4.0, 0.5], [2.0, 0.5, -0.02]])   # a 2×2 block
    assert not np.array_equal(la.ldl(a0)[2], la.ldl(a1)[2])
    assert (np.diagonal(la.ldl(a1)[1], -1) != 0).any()
    W = rng.standard_normal((3, 3))

    def loss(a):
        lu, d, _ = la.ldl(a)
        return lad.sum(W * lu) + lad.sum(W * d * d)

    f = lad.jit(lambda a: la.ldl(a))
    g = lad.jit(lad.value_and_grad(loss))
    f(a0)
    g(a0)
    for got, want in zip(f(a1), la.ldl(a1)):
        np.testing.assert_array_equal(got, want)
    v, gr = g(a1)
    v_, gr_ = lad.value_and_grad(loss)(a1)
    assert np.isclose(v, v_)
    np.testing.assert_allclose(gr, gr_, rtol=1e-12)
    assert "replayed" in list(f.explain().values())[0]
    assert "replayed" in list(g.explain().values())[0]
    with pytest.raises(np.linalg.LinAlgError, match="ldl"):
        g(np.diag([1.0, 0.0, 2.0]))
    # a 2×2 pivot block with a zero diagonal is not singular: no false alarm on a replay
    # recorded with 1×1 pivots
    a2 = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 2.0]])
    assert (np.diagonal(la.ldl(a2)[1], -1) != 0).any()
    for h in (g, lad.jit(lad.value_and_grad(loss))):
        h(a0)
        np.testing.assert_allclose(h(a2)[1], lad.grad(loss)(a2), rtol=1e-12)
    fj = lad.jit(lambda a, v: lad.jvp(lambda x: la.ldl(x)[:2], (a,), (v,))[1])
    V = np.tril(rng.standard_normal((3, 3)))
    fj(a0, V)
    for got, want in zip(fj(a2, V), lad.jvp(lambda x: la.ldl(x)[:2], (a2,), (V,))[1]):
        np.testing.assert_allclose(got, want, rtol=1e-12)


@pytest.mark.parametrize("n", [2, 7, 150])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.complex64, np.complex128])
@pytest.mark.parametrize("lower", [True, False])
def test_fused_cotangent_kernel_equals_the_composed_form(n, dtype, lower, monkeypatch):
    """CPUKernels.ldl_cotangent (one sygst/hegst for the two triangular solves) against the
    composed definition, on indefinite matrices with 2×2 pivot blocks, and it is used."""
    from linalgad.backend import CPUKernels
    rng = np.random.default_rng(n)
    A = rng.standard_normal((n, n)) + (1j * rng.standard_normal((n, n)) if
                                        np.dtype(dtype).kind == "c" else 0)
    A = (A + A.conj().T).astype(dtype)
    _, d, _ = sl.ldl(A, lower=lower)
    if n > 2:
        assert (np.diagonal(d, -1) != 0).any()          # 2×2 blocks present
    W1, W2 = (rng.standard_normal((n, n)).astype(dtype) for _ in range(2))

    def loss(a):
        lu, d, _ = la.ldl(a, lower=lower)
        return lad.sum(lad.real(W1 * lu)) + lad.sum(lad.real(W2 * d))
    returned = []
    real = CPUKernels.ldl_cotangent
    monkeypatch.setattr(CPUKernels, "ldl_cotangent",
                        lambda self, *a: returned.append(real(self, *a)) or returned[-1])
    fused = lad.grad(loss)(A)
    assert returned and returned[-1] is not None        # the kernel ran, not its fallback
    monkeypatch.setattr(CPUKernels, "ldl_cotangent", lambda self, *a: None)
    composed = lad.grad(loss)(A)
    tol = 2e-4 if np.dtype(dtype) in (np.dtype(np.float32), np.dtype(np.complex64)) else 1e-11
    np.testing.assert_allclose(fused, composed, rtol=tol, atol=tol * np.abs(composed).max())


@pytest.mark.parametrize("n", [2, 7, 150])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.complex64, np.complex128])
@pytest.mark.parametrize("lower", [True, False])
def test_fused_tangent_kernel_equals_the_composed_form(n, dtype, lower, monkeypatch):
    """CPUKernels.ldl_tangent (one sygst/hegst, one trmm) against the composed definition,
    and it is used (it returns the tangents, not None)."""
    from linalgad.backend import CPUKernels
    rng = np.random.default_rng(n + 1)
    cplx = np.dtype(dtype).kind == "c"
    A = rng.standard_normal((n, n)) + (1j * rng.standard_normal((n, n)) if cplx else 0)
    A = (A + A.conj().T).astype(dtype)
    E = (rng.standard_normal((n, n)) + (1j * rng.standard_normal((n, n)) if cplx else 0)
         ).astype(dtype)
    _, d, _ = sl.ldl(A, lower=lower)
    if n > 2:
        assert (np.diagonal(d, -1) != 0).any()          # 2×2 blocks present
    returned = []
    real = CPUKernels.ldl_tangent
    monkeypatch.setattr(CPUKernels, "ldl_tangent",
                        lambda self, *a: returned.append(real(self, *a)) or returned[-1])
    fused = lad.jvp(lambda a: la.ldl(a, lower=lower)[:2], (A,), (E,))[1]
    assert returned and returned[-1] is not None
    monkeypatch.setattr(CPUKernels, "ldl_tangent", lambda self, *a: None)
    composed = lad.jvp(lambda a: la.ldl(a, lower=lower)[:2], (A,), (E,))[1]
    tol = 2e-4 if np.dtype(dtype) in (np.dtype(np.float32), np.dtype(np.complex64)) else 1e-11
    for f, c in zip(fused, composed):
        np.testing.assert_allclose(f, c, rtol=tol, atol=tol * np.abs(c).max())


@pytest.mark.parametrize("dtype", [np.float64, np.complex128, np.float32])
@pytest.mark.parametrize("lower", [True, False])
def test_fused_cotangent_on_views_partial_cotangents_and_many_blocks(dtype, lower,
                                                                      monkeypatch):
    """The fused kernel against the composed definition where its index bookkeeping could
    slip: nearly every pivot a 2×2 block, Fortran-ordered and transposed-view inputs, a
    cotangent for lu only or for d only (the other zero); and, in double precision, against
    central differences of SciPy's own ldl."""
    from linalgad.backend import CPUKernels
    rng = np.random.default_rng(21)
    cplx = np.dtype(dtype).kind == "c"
    n = 40
    A = _blocky(rng, n, cplx).astype(dtype)
    _, d, _ = sl.ldl(A, lower=lower)
    assert (np.diagonal(d, -1) != 0).sum() >= 6                    # many 2×2 blocks
    W1, W2 = (_rand(rng, (n, n), cplx).astype(dtype) for _ in range(2))
    real = CPUKernels.ldl_cotangent
    tol = 2e-3 if dtype == np.float32 else 1e-11
    for which in ("both", "lu", "d"):
        def loss(a):
            lu, dd, _ = la.ldl(a, lower=lower)
            out = 0.0
            if which != "d":
                out = out + lad.sum(lad.real(np.conj(W1) * lu))
            if which != "lu":
                out = out + lad.sum(lad.real(np.conj(W2) * dd))
            return out
        for view in (A, np.asfortranarray(A), np.ascontiguousarray(A.T).T):
            used = []
            monkeypatch.setattr(CPUKernels, "ldl_cotangent",
                                lambda self, *a: used.append(real(self, *a)) or used[-1])
            fused = lad.grad(loss)(view)
            assert used and used[-1] is not None
            monkeypatch.setattr(CPUKernels, "ldl_cotangent", lambda self, *a: None)
            composed = lad.grad(loss)(view)
            np.testing.assert_allclose(fused, composed, rtol=tol,
                                       atol=tol * np.abs(composed).max())
        if dtype == np.float32:
            continue
        monkeypatch.setattr(CPUKernels, "ldl_cotangent", real)
        g = lad.grad(loss)(A)
        E = _rand(rng, (n, n), cplx)
        E[np.diag_indices(n)] = E.diagonal().real                  # a Hermitian diagonal

        def ref(t):
            lu, dd, _ = sl.ldl(A + t * E, lower=lower)
            out = 0.0
            if which != "d":
                out += np.sum(np.real(np.conj(W1) * lu))
            if which != "lu":
                out += np.sum(np.real(np.conj(W2) * dd))
            return out
        fd = (ref(1e-6) - ref(-1e-6)) / 2e-6
        assert abs(np.vdot(g, E).real - fd) < 1e-6 * max(1.0, abs(fd))
