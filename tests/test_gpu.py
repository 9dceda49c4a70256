"""The CuPy path: every registered rule on CuPy arrays, against the CPU.

Marked ``gpu``: skipped (by conftest) unless CuPy imports and a CUDA device
is present.  Run on a GPU machine with ``python -m pytest -m gpu``.
"""

import numpy as np
import pytest

import linalgad as lad
from linalgad._tree import tree_flatten
from linalgad.registry import all_rules
from linalgad.testing import check_grads

pytestmark = pytest.mark.gpu

CASES = [pytest.param(rule, domain, dtype, batch,
                      id=f"{rule.name}-{domain.name}-{np.dtype(dtype).name}-"
                         f"{'x'.join(map(str, batch)) or 'single'}")
         for rule in all_rules() if "gpu" in rule.backends
         for domain in rule.domains
         for dtype in rule.dtypes if domain.applies_to(dtype)
         for batch in rule.batch_shapes]


def eigen_order(rule, outs):
    """eig's outputs (w, then |V|²-like matrices whose columns follow w) with the
    eigenvalues sorted: CuPy's eig does not promise NumPy's order (nor does NumPy)."""
    if rule.name not in ("eig", "eigvals", "eig-left-pencil"):
        return outs
    w = outs[0]
    key = np.lexsort((np.round(w.imag, 6), np.round(w.real, 6)), axis=-1)
    return [np.take_along_axis(w, key, axis=-1)] + [
        np.take_along_axis(m, key[..., None, :], axis=-1) for m in outs[1:]]


def _cupy():
    import cupy
    return cupy


@pytest.mark.parametrize("rule,domain,dtype,batch", CASES)
def test_rule_on_gpu_matches_cpu_and_finite_differences(rule, domain, dtype, batch):
    cp = _cupy()
    args, kwargs = domain.make(np.random.default_rng(0), 3, batch, dtype)
    gargs = tuple(cp.asarray(a) for a in args)
    gkwargs = {k: cp.asarray(v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}

    def fun(*a):
        on_gpu = isinstance(a[0], cp.ndarray) or isinstance(
            getattr(a[0], "primal", lambda: None)(), cp.ndarray)
        return rule.fun(*a, **(gkwargs if on_gpu else kwargs))

    out_cpu, _ = tree_flatten(fun(*args))
    out_gpu, _ = tree_flatten(fun(*gargs))
    tol = 1e-4 if np.dtype(dtype) in (np.dtype(np.float32), np.dtype(np.complex64)) else 1e-10
    for g in out_gpu:
        assert isinstance(g, cp.ndarray)
    for c, g in zip(eigen_order(rule, out_cpu), eigen_order(rule, [cp.asnumpy(g)
                                                                    for g in out_gpu])):
        np.testing.assert_allclose(g, c, rtol=tol, atol=tol)
    # gradients stay on the device and agree with the CPU's
    def loss(*a):
        return sum(lad.sum(lad.real(o)) for o in tree_flatten(fun(*a))[0])

    g_cpu = lad.grad(loss, argnums=tuple(range(len(args))))(*args)
    g_gpu = lad.grad(loss, argnums=tuple(range(len(args))))(*gargs)
    for c, g in zip(g_cpu, g_gpu):
        assert isinstance(g, cp.ndarray)
        np.testing.assert_allclose(cp.asnumpy(g), c, rtol=10 * tol, atol=10 * tol)
    check_grads(fun, gargs, modes=rule.modes, order=2, rtol=rule.tolerance(dtype))


def test_mixing_devices_is_a_clear_error():
    cp = _cupy()
    from linalgad import linalg as la
    with pytest.raises(TypeError, match="cannot mix CPU"):
        la.solve(cp.eye(3), np.ones(3))


def test_singular_on_gpu_names_the_index():
    cp = _cupy()
    from linalgad import linalg as la
    A = cp.stack([cp.eye(3), cp.zeros((3, 3))])
    with pytest.raises(np.linalg.LinAlgError, match=r"matrix \(1,\)"):
        la.solve(A, cp.ones((2, 3, 1)))


def _jit_on(xp):
    """jit(value_and_grad) of solve, slogdet and eigh on xp's arrays: replayed, equal to
    the eager result on new inputs, results on the inputs' device."""
    from linalgad import linalg as la
    rng = np.random.default_rng(7)

    def loss(a, b):
        w, V = la.eigh(a + a.T)
        x, residues, rank, s = la.lstsq(a[:, :3], b)        # the rank decided on replay too
        return (lad.sum(la.solve(a, b) ** 2) + la.slogdet(a)[1] + lad.sum(w * w)
                + lad.sum(x) + lad.sum(residues))
    f = lad.value_and_grad(loss, (0, 1))
    g = lad.jit(f)
    for seed in range(3):
        a = xp.asarray(rng.standard_normal((5, 5)) + 5 * np.eye(5))
        b = xp.asarray(rng.standard_normal((5, 2)))
        (v1, (ga1, gb1)), (v2, (ga2, gb2)) = g(a, b), f(a, b)
        for x, y in ((v1, v2), (ga1, ga2), (gb1, gb2)):
            assert type(x) is type(y)
            np.testing.assert_allclose(np.asarray(getattr(x, "get", lambda: x)()),
                                       np.asarray(getattr(y, "get", lambda: y)()), rtol=1e-12)
    assert "replayed" in list(g.explain().values())[0], g.explain()


def test_jit_on_gpu():
    _jit_on(_cupy())


@pytest.mark.parametrize("spectrum", [(0.3, 0.9, 1.6, 2.2), (1.0, 1.0, 2.0, 3.0)])
def test_funmh_hessian_on_gpu(spectrum):
    """funmh's exact second derivative (both paths of the second Daleckii–Krein map) on
    CuPy arrays, against the CPU."""
    cp = _cupy()
    from linalgad import linalg as la
    rng = np.random.default_rng(5)
    q, _ = np.linalg.qr(rng.standard_normal((4, 4)))
    A = (q * np.asarray(spectrum)) @ q.T
    G, T = rng.standard_normal((2, 4, 4))
    Gd = cp.asarray(G)
    (h_cpu,) = lad.hvp(lambda a: lad.sum(G * la.funmh(a, np.exp)), (A,), (T,))
    (h_gpu,) = lad.hvp(lambda a: lad.sum(Gd * la.funmh(a, np.exp)), (cp.asarray(A),),
                       (cp.asarray(T),))
    assert isinstance(h_gpu, cp.ndarray)
    np.testing.assert_allclose(cp.asnumpy(h_gpu), h_cpu, rtol=1e-10, atol=1e-10)
