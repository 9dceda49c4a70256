"""The CuPy kernel table's own logic, run on an emulated CuPy (``tests/_fake_cupy.py``).

No GPU was ever lent to this project's sessions, so ``pytest -m gpu`` has not run.
These tests run every registered GPU rule through ``linalgad.gpu.kernels.GPU`` with
NumPy standing in for CuPy: values and gradients must match the CPU table's, stay
"on the device", and no host array may leak into a device operation. They catch
mistakes in the GPU table's Python (wrong names, layouts, stacking, host/device
mixing), not CuPy's numerics — the real check remains ``pytest -m gpu`` on a device.
"""

import numpy as np
import pytest

import linalgad as lad
from linalgad._tree import tree_flatten

import _fake_cupy

# the cases the real GPU test runs (every rule, domain, dtype and batch shape of the registry)
from test_gpu import CASES  # noqa: E402


@pytest.fixture
def cupy(monkeypatch):
    return _fake_cupy.install(monkeypatch)


@pytest.mark.parametrize("rule,domain,dtype,batch", CASES)
def test_rule_through_the_gpu_table(cupy, rule, domain, dtype, batch):
    args, kwargs = domain.make(np.random.default_rng(0), 3, batch, dtype)
    dargs = tuple(cupy.asarray(a) for a in args)
    dkwargs = {k: cupy.asarray(v) if isinstance(v, np.ndarray) else v
               for k, v in kwargs.items()}

    def fun(*a):
        on_device = isinstance(a[0], cupy.ndarray) or isinstance(
            getattr(a[0], "value", None), cupy.ndarray)
        return rule.fun(*a, **(dkwargs if on_device else kwargs))

    out_cpu, _ = tree_flatten(fun(*args))
    out_dev, _ = tree_flatten(fun(*dargs))
    tol = 1e-4 if np.dtype(dtype) in (np.dtype(np.float32), np.dtype(np.complex64)) else 1e-9
    for c, d in zip(out_cpu, out_dev):
        assert isinstance(d, cupy.ndarray), type(d)
        np.testing.assert_allclose(cupy.asnumpy(d), c, rtol=tol, atol=tol)

    def loss(*a):
        return sum(lad.sum(lad.real(o)) for o in tree_flatten(fun(*a))[0])

    n = len(args)
    g_cpu = lad.grad(loss, argnums=tuple(range(n)))(*args)
    g_dev = lad.grad(loss, argnums=tuple(range(n)))(*dargs)
    for c, d in zip(g_cpu, g_dev):
        assert isinstance(d, cupy.ndarray), type(d)
        np.testing.assert_allclose(cupy.asnumpy(d), c, rtol=10 * tol, atol=10 * tol)


def test_emulation_rejects_host_arrays(cupy):
    x = cupy.asarray(np.ones(3))
    with pytest.raises(TypeError, match="host NumPy array"):
        x + np.ones(3)
    assert isinstance(x + 1.0, cupy.ndarray)


def test_check_command_on_the_gpu_table(cupy, capsys):
    """``python -m linalgad check --device gpu`` end to end (second order) on the emulation."""
    from linalgad.__main__ import main

    rc = main(["check", "--device", "gpu", "--rule", "solve", "--rule", "cholesky",
               "--rule", "eigh", "--rule", "svd", "--dtype", "float64", "--dtype",
               "complex64"])
    out = capsys.readouterr().out
    assert rc in (0, None), out
    assert "0 failed" in out and "device gpu" in out, out


def test_jit_through_the_gpu_table(cupy):
    from test_gpu import _jit_on
    _jit_on(cupy)


@pytest.mark.parametrize("spectrum", [(0.3, 0.9, 1.6, 2.2), (1.0, 1.0, 2.0, 3.0)])
def test_funmh_hessian_through_the_gpu_table(cupy, spectrum):
    """funmh's second derivative (the second Daleckii–Krein map, both of its paths:
    distinct eigenvalues by products, a tie by the entrywise sums) on device arrays."""
    from linalgad import linalg as la
    rng = np.random.default_rng(5)
    q, _ = np.linalg.qr(rng.standard_normal((4, 4)))
    A = (q * np.asarray(spectrum)) @ q.T
    G, T = rng.standard_normal((2, 4, 4))

    def loss(a, g):
        return lad.sum(g * la.funmh(a, np.exp))
    (h_cpu,) = lad.hvp(lambda a: loss(a, G), (A,), (T,))
    Gd = cupy.asarray(G)
    (h_dev,) = lad.hvp(lambda a: loss(a, Gd), (cupy.asarray(A),), (cupy.asarray(T),))
    assert isinstance(h_dev, cupy.ndarray), type(h_dev)
    np.testing.assert_allclose(cupy.asnumpy(h_dev), h_cpu, rtol=1e-10, atol=1e-10)


def test_gpu_benchmark_script_runs(tmp_path):
    """benchmarks/bench_gpu.py, the script a session lent a GPU runs, under the emulation:
    its cases build, time and compare (device against CPU gradients) without error.  A
    subprocess: the benchmark harness pins its process to one core when imported."""
    import os
    import subprocess
    import sys
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = tmp_path / "gpu.md"
    r = subprocess.run([sys.executable, os.path.join(root, "benchmarks", "bench_gpu.py"),
                        "--emulate", "--quick", "--shapes", "64", "--budget", "60",
                        "--out", str(out)], capture_output=True, text=True, timeout=600,
                       cwd=root)
    assert r.returncode == 0, r.stderr[-2000:]
    rows = [line for line in out.read_text().splitlines() if line.startswith("| ")][2:]
    assert len(rows) >= 14, out.read_text()
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert not cells[-1].startswith("fails") and "✗" not in cells[-1], row
        assert float(cells[3]) > 0 and float(cells[4]) > 0, row


def test_empty_input_through_the_gpu_table(cupy):
    """Order-0 matrices and empty stacks: cuSOLVER rejects a leading dimension of 0 and the
    per-matrix loops stacked nothing; the GPU table now answers them as the CPU's does."""
    from linalgad import linalg as la
    cases = {
        "solve": lambda a: la.solve(a, a[..., :1] if a.shape[-1] else a[..., :0]),
        "inv": la.inv, "det": la.det, "slogdet": lambda a: la.slogdet(a)[1],
        "cholesky": la.cholesky, "qr": lambda a: la.qr(a)[1], "svdvals": la.svdvals,
        "eigh": lambda a: la.eigh(a)[0], "eigvals": la.eigvals,
        "lu_factor": lambda a: la.lu_factor(a)[0], "matrix_power": lambda a: la.matrix_power(a, 3),
    }
    for shape in ((0, 0), (2, 0, 0), (0, 3, 3)):
        a = np.zeros(shape)
        for name, f in cases.items():
            want = f(a)
            got = f(cupy.asarray(a))
            assert isinstance(got, cupy.ndarray), (name, shape, type(got))
            assert got.shape == np.shape(want), (name, shape)
            g = lad.grad(lambda x: lad.sum(lad.real(f(x))))(cupy.asarray(a))
            assert g.shape == shape, (name, shape)


def test_gpu_table_promotes_and_names_the_failing_matrix(cupy, monkeypatch):
    """cupyx's lu_solve and solve_triangular cast b to the factor's dtype (a complex b with
    a real matrix lost its imaginary part); the index of a matrix that is not positive
    definite comes from cuSOLVER's info (asked for under cupyx.errstate), one matrix at a
    time; eig falls back to the host where CuPy's raises ("geev is not available")."""
    from linalgad import linalg as la
    rng = np.random.default_rng(3)
    A = rng.standard_normal((2, 4, 4)) + 4 * np.eye(4)
    b = rng.standard_normal((2, 4, 1)) + 1j * rng.standard_normal((2, 4, 1))
    for a, r in ((A, b), (A[0], b[0])):
        np.testing.assert_allclose(cupy.asnumpy(la.solve(cupy.asarray(a), cupy.asarray(r))),
                                   la.solve(a, r), rtol=1e-12)
        T = np.triu(a)
        np.testing.assert_allclose(
            cupy.asnumpy(la.solve_triangular(cupy.asarray(T), cupy.asarray(r))),
            la.solve_triangular(T, r), rtol=1e-12)
    S = np.stack([np.eye(3), np.eye(3), -np.eye(3)])
    with pytest.raises(np.linalg.LinAlgError, match=r"not positive definite.*matrix \(2,\)"):
        la.cholesky(cupy.asarray(S))

    def unavailable(a):
        raise RuntimeError("geev is not available")
    monkeypatch.setattr(cupy.linalg, "eig", unavailable, raising=False)
    monkeypatch.setattr(cupy.linalg, "eigvals", unavailable, raising=False)
    np.testing.assert_allclose(cupy.asnumpy(la.eigvals(cupy.asarray(A))), la.eigvals(A))
    w, V = la.eig(cupy.asarray(A))
    assert isinstance(w, cupy.ndarray) and isinstance(V, cupy.ndarray)


def test_a_traced_value_answers_cupys_elementwise_hook():
    """CuPy's ufuncs ask their arguments for __cupy_override_elementwise_kernel__ before
    rejecting what they cannot read (cupy.multiply(device_array, x) with x traced): the
    NumPy ufunc of the same name then runs linalgad's rule."""
    import types
    W = np.arange(6.0).reshape(2, 3)
    x0 = np.ones((2, 3))
    for name, want in (("cupy_multiply", W), ("cupy_true_divide", -W / x0 ** 2),
                       ("cupy_subtract", -np.ones((2, 3)))):
        kernel = types.SimpleNamespace(name=name)
        g = lad.grad(lambda x: lad.sum(x.__cupy_override_elementwise_kernel__(kernel, W, x)))(x0)
        np.testing.assert_allclose(g, want)
    with pytest.raises(TypeError, match="cupy_nosuch"):
        lad.grad(lambda x: lad.sum(x.__cupy_override_elementwise_kernel__(
            types.SimpleNamespace(name="cupy_nosuch"), W, x)))(x0)


@pytest.mark.parametrize("n", [12, 200])
def test_band_solves_through_the_gpu_table(cupy, n):
    """Small orders assembled and factored on the device; large ones on the host (LAPACK's
    band factors: the dense matrix would take n² device memory), the band products on the
    device either way; values, gradients and the hermitian form as the CPU's."""
    from linalgad import linalg as la
    from linalgad.backend import band_from_dense
    rng = np.random.default_rng(9)
    ab = rng.standard_normal((2, 4, n)) + 1j * rng.standard_normal((2, 4, n))
    ab[:, 2] += 8
    b = rng.standard_normal((2, n, 3))
    S = rng.standard_normal((n, n))
    S = np.where(abs(np.subtract.outer(np.arange(n), np.arange(n))) <= 2, S + S.T, 0)
    abh = band_from_dense(np, S + 20 * np.eye(n), 0, 2)
    cases = (lambda a, r: la.solve_banded((1, 2), a, r), (ab, b)), \
        (lambda a, r: la.solveh_banded(a, r), (abh, b[0]))
    for f, args in cases:
        dargs = tuple(cupy.asarray(x) for x in args)
        got = f(*dargs)
        assert isinstance(got, cupy.ndarray)
        np.testing.assert_allclose(cupy.asnumpy(got), f(*args), rtol=1e-12)
        loss = lambda *a: lad.sum(lad.real(f(*a)))                       # noqa: E731
        for c, d in zip(lad.grad(loss, argnums=(0, 1))(*args),
                        lad.grad(loss, argnums=(0, 1))(*dargs)):
            assert isinstance(d, cupy.ndarray)
            np.testing.assert_allclose(cupy.asnumpy(d), c, rtol=1e-11, atol=1e-13)


def test_riccati_doubling_on_the_device_and_the_host_for_what_it_declines(cupy, monkeypatch):
    """The Riccati forward pass iterates the doubling algorithm on the device for the whole
    stack; when it declines a matrix, the host kernel solves the stack (SciPy's QZ where
    doubling declines there too), and its errors name the matrix by its place."""
    import scipy.linalg
    from linalgad import linalg as la
    from linalgad.rules import riccati as R
    calls = []
    real = scipy.linalg.solve_continuous_are
    monkeypatch.setattr(scipy.linalg, "solve_continuous_are",
                        lambda *a, **k: calls.append(1) or real(*a, **k))
    rng = np.random.default_rng(10)
    a, b, q, r = R._inputs(rng, 4, (3,), np.float64, "care")
    X = la.solve_continuous_are(*(cupy.asarray(x) for x in (a, b, q, r)))
    assert isinstance(X, cupy.ndarray) and calls == []
    np.testing.assert_allclose(cupy.asnumpy(X), la.solve_continuous_are(a, b, q, r),
                               rtol=1e-12)
    # matrix 1 with a mode b cannot reach on the imaginary axis: doubling declines it, SciPy
    # returns its (non-stabilizing) X, and the others are as on the CPU
    a2 = a.copy()
    a2[1] = np.diag([0.0, -1.0, -2.0, -3.0])
    b2 = b.copy()
    b2[1] = 0.0
    b2[1, 1:, :] = 1.0
    q2 = q.copy()
    q2[1] = np.diag([0.0, 1.0, 1.0, 1.0])
    X2 = la.solve_continuous_are(*(cupy.asarray(x) for x in (a2, b2, q2, r)))
    assert len(calls) >= 1
    np.testing.assert_allclose(cupy.asnumpy(X2), la.solve_continuous_are(a2, b2, q2, r),
                               rtol=1e-12, atol=1e-12)
    # an unstabilizable matrix 2: SciPy's error, naming it
    a3 = a.copy()
    a3[2] = np.diag([1.0, -1.0, -2.0, -3.0])
    b3 = b.copy()
    b3[2] = 0.0
    b3[2, 1:, :] = 1.0
    with pytest.raises(np.linalg.LinAlgError, match=r"solve_continuous_are: .*\(matrix 2 of"):
        la.solve_continuous_are(*(cupy.asarray(x) for x in (a3, b3, q, r)))
