"""linalgad.jit: record one call, replay the kernels on later calls.

Generated from the registry like test_rules.py: for every rule, domain and batch shape
(float64 and complex128, plus float32 on one matrix), a function computing the rule's
value, a VJP and a JVP is jitted, recorded on one input and called on a second one; the
result must equal the eager result on the second input.  The rules the benchmarks time
must be replayed, not merely fall back to eager.  The rest covers what makes a
recording unsafe to replay (values read into Python, residuals handed out), the checks
that must run again on every replay, the cache's keys, threads and nesting.
"""

import threading

import numpy as np
import pytest

import linalgad as lad
from linalgad import linalg as la, transforms
from linalgad._tree import tree_flatten
from linalgad.backend import LinAlgError
from linalgad.registry import all_rules

RULES = all_rules()


def _cases():
    for rule in RULES:
        for domain in rule.domains:
            for dtype in (np.float64, np.complex128, np.float32):
                if not domain.applies_to(dtype) or np.dtype(dtype) not in map(np.dtype,
                                                                               rule.dtypes):
                    continue
                batches = rule.batch_shapes if dtype != np.float32 else ((),)
                for batch in batches:
                    bid = "x".join(map(str, batch)) or "single"
                    yield pytest.param(rule, domain, dtype, batch,
                                       id=f"{rule.name}-{domain.name}-{np.dtype(dtype).name}-{bid}")


def _probe(x, seed):
    """A fixed array shaped like x (a constant of the jitted function: it depends on the
    shape and dtype only)."""
    rng = np.random.default_rng(seed)
    v = rng.standard_normal(x.shape)
    if x.dtype.kind == "c":
        v = v + 1j * rng.standard_normal(x.shape)
    return v.astype(x.dtype)


def _value_vjp_jvp(fun, modes):
    def both(*args):
        out, pull = lad.vjp(fun, *args)
        leaves, treedef = tree_flatten(out)
        cts = [_probe(o, 10 + i) for i, o in enumerate(leaves)]
        from linalgad._tree import tree_unflatten
        result = [out]
        if "rev" in modes:
            result.append(pull(tree_unflatten(treedef, cts)))
        if "fwd" in modes:
            tangents = tuple(_probe(a, 20 + i) for i, a in enumerate(args))
            result.append(lad.jvp(fun, args, tangents)[1])
        return tuple(result)
    return both


def _close(got, want, dtype):
    g, gd = tree_flatten(got)
    w, wd = tree_flatten(want)
    assert gd == wd
    tol = 1e-4 if np.dtype(dtype).itemsize <= 8 and np.dtype(dtype).kind == "f" or \
        np.dtype(dtype) == np.complex64 else 1e-12
    for a, b in zip(g, w):
        assert np.shape(a) == np.shape(b)
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


# the rules the benchmarks time: their value and gradient must be replayed.  (norm's 2 and
# −2 look for tied singular values and p-norms for zero vectors in Python: those run
# eagerly under jit, which test_replay_matches_eager checks is right.  lstsq and pinv
# decide the rank with tape.compute, re-checked on every replay.)
MUST_REPLAY = {"solve", "inv", "det", "slogdet", "cholesky", "cho_solve", "solve_triangular",
               "lu_solve", "qr", "logdet", "eigh", "eigvalsh", "svd", "svdvals", "eig",
               "eigvals", "expm", "norm", "matrix_power", "polar", "multi_dot", "logm",
               "sqrtm", "lstsq", "pinv", "pinvh", "cond", "lu", "qr-pivoting",
               "solve_sylvester", "solve_continuous_lyapunov", "solve_discrete_lyapunov"}


@pytest.mark.parametrize("rule,domain,dtype,batch", list(_cases()))
def test_replay_matches_eager(rule, domain, dtype, batch):
    rng0, rng1 = np.random.default_rng(0), np.random.default_rng(1)
    args0, kwargs = domain.make(rng0, 3, batch, dtype)
    args1, kwargs1 = domain.make(rng1, 3, batch, dtype)

    def fun(*a):
        return rule.fun(*a, **kwargs)
    both = _value_vjp_jvp(fun, rule.modes)
    jitted = lad.jit(both)
    _close(jitted(*args0), both(*args0), dtype)         # the recording call
    _close(jitted(*args1), both(*args1), dtype)         # replayed (or run eagerly)
    _close(jitted(*args0), both(*args0), dtype)
    status = list(jitted.explain().values())
    assert len(status) == 1
    if rule.name in MUST_REPLAY:
        vg = lad.jit(lad.value_and_grad(lambda *a: lad.sum(lad.real(
            lad.sum(lad.abs(tree_flatten(fun(*a))[0][0]))))))
        vg(*args0)
        assert "replayed" in list(vg.explain().values())[0], vg.explain()


# -- what a replay must not get wrong ----------------------------------------------

def _mat(n=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, n)) + n * np.eye(n)


def test_value_read_into_python_is_not_replayed():
    def f(x):                       # the comparison reads x's values
        return lad.sum(lad.where(x > 0, x * x, -x))
    g = lad.jit(lad.grad(f))
    x = np.array([1.0, -2.0, 3.0])
    np.testing.assert_allclose(g(x), [2.0, -1.0, 6.0])
    np.testing.assert_allclose(g(-x), [-1.0, 4.0, -1.0])     # other signs, other branch
    assert "eager" in list(g.explain().values())[0]


def test_primal_is_not_replayed():
    def f(x):
        scale = float(np.max(x.primal()))
        return lad.sum(x * scale)
    g = lad.jit(lad.grad(f))
    np.testing.assert_allclose(g(np.array([1.0, 2.0])), [2.0, 2.0])
    np.testing.assert_allclose(g(np.array([1.0, 5.0])), [5.0, 5.0])
    assert "primal" in list(g.explain().values())[0]


def test_pivots_read_into_python_are_not_replayed():
    """lu_solve turns the pivots lu_factor returned into a permutation in Python: a
    replay would keep this call's."""
    def f(a, b):
        return lad.sum(la.lu_solve(la.lu_factor(a), b))
    g = lad.jit(lad.grad(f))
    a1 = np.array([[1.0, 2.0], [3.0, 4.0]])      # pivots on row 1
    a2 = np.array([[4.0, 3.0], [2.0, 1.0]])      # no row exchange
    b = np.array([1.0, 1.0])
    g(a1, b)
    np.testing.assert_allclose(g(a2, b), lad.grad(f)(a2, b))
    assert "eager" in list(g.explain().values())[0]          # lu_solve read the pivots


def test_lu_factor_is_replayed_and_returns_this_calls_pivots():
    f = lad.jit(lambda a: la.lu_factor(a))
    g = lad.jit(lad.grad(lambda a: lad.sum(la.lu_factor(a)[0] ** 2)))
    a1 = np.array([[1.0, 2.0], [3.0, 4.0]])
    a2 = np.array([[4.0, 3.0], [2.0, 1.0]])
    f(a1)
    g(a1)
    for got, want in zip(f(a2), la.lu_factor(a2)):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_allclose(g(a2), lad.grad(lambda a: lad.sum(la.lu_factor(a)[0] ** 2))(a2))
    assert "replayed" in list(f.explain().values())[0]
    assert "replayed" in list(g.explain().values())[0]
    P, L, U = lad.jit(la.lu)(a2)                     # lu builds P from the pivots in Python
    np.testing.assert_allclose(P @ L @ U, a2)


def test_works_where_eager_works():
    """What a plain array does and linalgad has no operation for runs on the value."""
    def f(x):
        r = np.linalg.matrix_rank(x)
        s = float(x[0, 0]) if bool(x[0, 0] > 0) else 0.0
        return lad.sum(x * x) * r + s + x.item(0) + len(x.tolist()) + np.asarray(x)[1, 1]
    j = lad.jit(f)
    for x in (np.eye(3), 2 * np.eye(3), -np.eye(3)):
        np.testing.assert_allclose(j(x), f(x))
    assert "eager" in list(j.explain().values())[0]


def test_lu_solve_with_given_pivots_is_replayed():
    a = _mat()
    lu, piv = la.lu_factor(a)
    b = np.ones((4, 2))
    f = lad.value_and_grad(lambda lu_, b_: lad.sum(la.lu_solve((lu_, piv), b_)), (0, 1))
    g = lad.jit(f)
    g(lu, b)
    lu2 = lu + 0.01
    _close(g(lu2, 2 * b), f(lu2, 2 * b), np.float64)
    assert "replayed" in list(g.explain().values())[0]


def test_stop_gradient_inside_is_replayed():
    f = lad.grad(lambda x: lad.sum(x * lad.stop_gradient(x)))
    g = lad.jit(f)
    x = np.array([1.0, 2.0])
    g(x)
    np.testing.assert_allclose(g(3 * x), [3.0, 6.0])
    assert "replayed" in list(g.explain().values())[0]


def test_checks_run_again_on_replay():
    f = lad.jit(lad.grad(lambda a: la.det(la.inv(a))))
    a = _mat()
    f(a)
    bad = a.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="infs or NaNs"):
        f(bad)
    with pytest.raises(LinAlgError, match="singular"):
        f(np.zeros((4, 4)))
    stack = np.stack([a, np.zeros((4, 4)), a])
    g = lad.jit(lad.grad(lambda s: lad.sum(la.solve(s, np.ones((3, 4, 1))))))
    g(np.stack([a, a, a]))
    with pytest.raises(LinAlgError, match=r"matrix \(1,\) of the stack"):
        g(stack)
    assert "replayed" in list(g.explain().values())[0]


def test_signatures():
    calls = []

    def f(x, scale):
        calls.append(1)                 # runs on recording calls only
        return lad.sum(x * x) * scale
    g = lad.jit(lad.grad(f))
    x = np.arange(3.0)
    np.testing.assert_allclose(g(x, 2.0), 4 * x)
    np.testing.assert_allclose(g(x + 1, 2.0), 4 * (x + 1))
    assert len(calls) == 1
    np.testing.assert_allclose(g(x, 3.0), 6 * x)           # a Python number is a constant
    np.testing.assert_allclose(g(np.arange(4.0), 2.0), 4 * np.arange(4.0))       # a shape
    np.testing.assert_allclose(g(x.astype(np.float32), 2.0), 4 * x)             # a dtype
    y = np.arange(6.0).reshape(2, 3)
    np.testing.assert_allclose(g(y.T, 2.0), 4 * y.T)                            # an order
    np.testing.assert_allclose(g(y, 2.0), 4 * y)
    assert len(calls) == 6
    np.testing.assert_allclose(g(x, scale=2.0), 4 * x)      # keywords: another signature
    assert len(calls) == 7


def test_integer_arrays_are_constants_by_content():
    f = lad.jit(lad.grad(lambda x, idx: lad.sum(x[idx] ** 2)))
    x = np.arange(4.0)
    idx = np.array([0, 2])
    np.testing.assert_allclose(f(x, idx), [0, 0, 4, 0])
    idx[0] = 1                                  # the caller's array changes: a new key
    np.testing.assert_allclose(f(x, idx), [0, 2, 4, 0])


def test_nested_structures_and_aux():
    def loss(p):
        x = la.solve(p["A"], p["b"])
        return lad.sum(x * x), x
    f = lad.value_and_grad(loss, has_aux=True)
    g = lad.jit(f)
    p = {"A": _mat(3), "b": np.ones(3)}
    g(p)
    q = {"A": _mat(3, seed=4), "b": np.arange(3.0)}
    (v1, x1), g1 = g(q)
    (v2, x2), g2 = f(q)
    np.testing.assert_allclose(v1, v2)
    np.testing.assert_allclose(x1, x2)
    np.testing.assert_allclose(g1["A"], g2["A"])
    np.testing.assert_allclose(g1["b"], g2["b"])
    assert "replayed" in list(g.explain().values())[0]


def test_called_inside_a_transform_runs_eagerly():
    inner = lad.jit(lambda a: la.slogdet(a)[1])
    a = _mat()
    inner(a)
    np.testing.assert_allclose(lad.grad(inner)(a), np.linalg.inv(a).T, rtol=1e-12)


def test_higher_order_inside():
    f = lambda a: la.slogdet(a)[1]                           # noqa: E731
    h = lad.jit(lambda a, v: lad.hvp(f, (a,), (v,)))
    a, v = _mat(), _mat(seed=3)
    h(a, v)
    a2 = _mat(seed=5)
    np.testing.assert_allclose(h(a2, v), lad.hvp(f, (a2,), (v,)), rtol=1e-12)
    g2 = lad.jit(lad.grad(lambda a: lad.sum(lad.grad(f)(a) * v)))
    g2(a)
    np.testing.assert_allclose(g2(a2), lad.grad(lambda a: lad.sum(lad.grad(f)(a) * v))(a2),
                               rtol=1e-12)


def test_threads():
    f = lad.value_and_grad(lambda a, b: lad.sum(la.solve(a, b)), (0, 1))
    g = lad.jit(f)
    g(_mat(8), np.ones((8, 2)))
    errors = []

    def work(seed):
        rng = np.random.default_rng(seed)
        for _ in range(50):
            a, b = _mat(8, seed=int(rng.integers(1000))), rng.standard_normal((8, 2))
            got, want = g(a, b), f(a, b)
            try:
                _close(got, want, np.float64)
            except AssertionError as e:
                errors.append(e)
    threads = [threading.Thread(target=work, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


def test_intermediates_are_freed():
    """A replay keeps no array past its last use (the eager backward pass frees as it
    goes; so does the program)."""
    import weakref
    seen = []
    real_inv = np.linalg.inv

    def f(a):
        return lad.sum(la.inv(a) @ a)
    g = lad.jit(lad.grad(f))
    a = _mat()
    g(a)
    try:
        def spy(x):
            r = real_inv(x)
            seen.append(weakref.ref(r) if isinstance(r, np.ndarray) and r.base is None
                        else None)
            return r
        np.linalg.inv = spy
        g(a)
    finally:
        np.linalg.inv = real_inv
    assert all(w is None or w() is None for w in seen)


# -- decisions on values (tape.compute): re-checked on every replay ------------------------

def _tall(seed, m=7, n=4, dup=None):
    a = np.random.default_rng(seed).standard_normal((m, n))
    if dup is not None:                     # column dup[1] := column dup[0]: rank n - 1
        a[:, dup[1]] = a[:, dup[0]]
    return a


def _lstsq_all(a, b, w):
    x, residues, rank, s = la.lstsq(a, b)
    return lad.sum(x * w) + lad.sum(residues) + lad.sum(s[..., :2]), rank


def _lstsq_vg():
    return lad.value_and_grad(_lstsq_all, argnums=(0, 1), has_aux=True)


def _same(got, want):
    g, gd = tree_flatten(got)
    w, wd = tree_flatten(want)
    assert gd == wd
    for x, y in zip(g, w):
        assert type(x) is type(y) or (np.ndim(x) and np.ndim(y)), (type(x), type(y))
        np.testing.assert_allclose(x, y, rtol=1e-10, atol=1e-12)


def test_rank_change_records_again():
    """lstsq decides the rank (QR or SVD, the flags, an int rank) in Python: recorded on a
    full-rank matrix, a replay on a rank-deficient one must not take the QR path."""
    vg = _lstsq_vg()
    j = lad.jit(vg)
    b, w = np.arange(7.0), np.ones(4)
    full, deficient = _tall(0), _tall(1, dup=(0, 2))
    _same(j(full, b, w), vg(full, b, w))
    _same(j(_tall(2), b, w), vg(_tall(2), b, w))
    status = list(j.explain().values())[0]
    assert status.startswith("replayed") and "again" not in status
    got = j(deficient, b, w)
    assert got[0][1] == 3 and type(got[0][1]) is int
    _same(got, vg(deficient, b, w))
    assert "recorded again 1×" in list(j.explain().values())[0]
    # another matrix of the same rank: the same decisions, replayed as recorded
    other = _tall(3, dup=(1, 3))
    _same(j(other, b, w), vg(other, b, w))
    assert "recorded again 1×" in list(j.explain().values())[0]
    _same(j(full, b, w), vg(full, b, w))                 # and back
    assert "recorded again 2×" in list(j.explain().values())[0]


def test_stack_ranks_are_values_of_the_recording():
    """A stack's rank array is returned as a value: a replay returns this call's ranks,
    also where the decisions (full rank somewhere or not) stay the same."""
    def f(a, b):
        x, _, rank, s = la.lstsq(a, b)
        return x, rank, s
    j = lad.jit(f)
    b = np.ones((3, 7, 2))
    first = np.stack([_tall(0, dup=(0, 1)), _tall(1), _tall(2)])
    second = np.stack([_tall(3), _tall(4, dup=(2, 3)), _tall(5, dup=(0, 3))])
    _same(j(first, b), f(first, b))
    got = j(second, b)
    np.testing.assert_array_equal(got[1], [4, 3, 3])
    _same(got, f(second, b))
    assert "recorded again" not in list(j.explain().values())[0]


def test_decisions_that_keep_changing_run_eagerly():
    from linalgad.transforms import JIT_MAX_RETRACES
    vg = _lstsq_vg()
    j = lad.jit(vg)
    b, w = np.arange(7.0), np.ones(4)
    for i in range(JIT_MAX_RETRACES + 3):
        a = _tall(i, dup=(0, 1)) if i % 2 else _tall(i)
        _same(j(a, b, w), vg(a, b, w))
    assert "eager: a decision on values" in list(j.explain().values())[0]


def test_pinv_rank_decisions():
    """pinv: the int rank of return_rank is decided (a new rank records again); without
    it only the full-rank flags are, and a new partial rank replays with its own 1/s."""
    def deficient(seed, r):
        rng = np.random.default_rng(seed)
        return rng.standard_normal((5, r)) @ rng.standard_normal((r, 5))
    p = lad.jit(lambda a: la.pinv(a, return_rank=True))
    p(deficient(0, 3))
    y, r = p(deficient(1, 2))
    assert r == 2 and type(r) is int
    np.testing.assert_allclose(y, np.linalg.pinv(deficient(1, 2), rcond=1e-12), atol=1e-10)
    assert "recorded again 1×" in list(p.explain().values())[0]
    g = lad.jit(lad.grad(lambda a: lad.sum(la.pinv(a) * np.arange(25.0).reshape(5, 5))))
    eager = lad.grad(lambda a: lad.sum(la.pinv(a) * np.arange(25.0).reshape(5, 5)))
    g(deficient(0, 3))
    np.testing.assert_allclose(g(deficient(1, 2)), eager(deficient(1, 2)), rtol=1e-9, atol=1e-9)
    assert list(g.explain().values())[0].startswith("replayed") and \
        "again" not in list(g.explain().values())[0]


def test_lstsq_rank_certificate_and_its_fallback():
    """Under jit lstsq decides full rank by the bound ‖R‖_F‖R⁻¹‖_F first; where the bound is
    too loose (cond near 1/rcond) the singular values decide, with the same decision: both
    replay one recording and equal eager, s included."""
    rng = np.random.default_rng(5)
    U, _ = np.linalg.qr(rng.standard_normal((9, 4)))
    V, _ = np.linalg.qr(rng.standard_normal((4, 4)))
    tight = (U * np.array([1.0, 1.0, 1.0, 2.6e-15])) @ V.T     # full rank, bound > 1/rcond
    easy = rng.standard_normal((9, 4))
    b = rng.standard_normal(9)

    def f(a, b):
        x, res, rank, s = la.lstsq(a, b)
        return lad.sum(x) + lad.sum(res) + lad.sum(s), rank
    g = lad.value_and_grad(f, argnums=(0, 1), has_aux=True)
    j = lad.jit(g)
    for a in (easy, tight, easy, tight):
        got, want = j(a, b), g(a, b)
        assert got[0][1] == want[0][1] == 4
        np.testing.assert_allclose(got[0][0], want[0][0], rtol=1e-9)
        for x, y in zip(got[1], want[1]):
            np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-6 * np.abs(y).max())
    assert "again" not in list(j.explain().values())[0]


def test_steps_nothing_reads_are_not_replayed():
    """Dead code: lstsq's singular values are a step of their own under jit; a function
    that ignores them does not pay for them, one that uses them gets this call's."""
    a = _tall(0)
    b = np.arange(7.0)
    x_only = lad.jit(lambda a, b: la.lstsq(a, b)[0])
    with_s = lad.jit(lambda a, b: la.lstsq(a, b)[3])
    x_only(a, b)
    with_s(a, b)
    steps = [int(list(f.explain().values())[0].split("(")[1].split()[0])
             for f in (x_only, with_s)]
    assert steps[0] < steps[1]
    a2 = _tall(1)
    np.testing.assert_allclose(x_only(a2, b), np.linalg.lstsq(a2, b, rcond=None)[0])
    np.testing.assert_allclose(with_s(a2, b), np.linalg.svd(a2, compute_uv=False))
    # a check runs on every replay even though it writes nothing
    bad = a2.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError):
        x_only(bad, b)


def _steps(jitted):
    return int(list(jitted.explain().values())[0].split("(")[1].split()[0])


def test_constant_cotangents_are_folded():
    """The reverse pass of sum(W * f(a)) with W fixed starts from W: the VJPs of the sum
    and the product read constants only (their vjp_reads), so the recording computes
    them once and replays no step for them.  A cotangent that depends on the inputs (W
    an argument, or a loss quadratic in f(a)) is replayed as before, and every variant
    gives this call's gradient."""
    rng = np.random.default_rng(0)
    W = rng.standard_normal((5, 5))
    V = rng.standard_normal((3, 5))

    def f(a):
        return la.inv(a) @ a.T

    losses = {
        "fixed W": lambda a: lad.sum(W * f(a)),
        "fixed W, matmul and reshape": lambda a: lad.sum(lad.reshape(V @ f(a), (15,)))
        - 2.0 * lad.sum(lad.real(f(a) * W)),
        "quadratic": lambda a: lad.sum(f(a) * f(a)),
    }
    a1 = rng.standard_normal((5, 5)) + 5 * np.eye(5)
    a2 = rng.standard_normal((5, 5)) + 5 * np.eye(5)
    for name, loss in losses.items():
        g = lad.jit(lad.value_and_grad(loss))
        g(a1)
        got = g(a2)
        want = lad.value_and_grad(loss)(a2)
        np.testing.assert_allclose(got[0], want[0], rtol=1e-13, err_msg=name)
        np.testing.assert_allclose(got[1], want[1], rtol=1e-12, err_msg=name)
    # W as an argument: its cotangent is a value of the call, replayed as steps
    fixed = lad.jit(lad.value_and_grad(losses["fixed W"]))
    moving = lad.jit(lad.value_and_grad(lambda a, w: lad.sum(w * f(a))))
    fixed(a1)
    moving(a1, W)
    # the sum's VJP folds in both (it reads the seed only); the product's only for fixed W,
    # whose sum(W * f(a)) is also one step (the product read by the sum alone:
    # transforms._fuse_inner_products; with W moving the product's VJP step reads it too)
    assert _steps(fixed) == _steps(moving) - 2
    np.testing.assert_allclose(moving(a2, 2 * W)[1], 2 * fixed(a2)[1], rtol=1e-12)
    # a folded cotangent is shared by every replay: read-only, so that a rule writing
    # into its cotangent in place fails instead of changing later calls
    # a gradient that is a folded constant (a loss linear in the input) is handed out as
    # a fresh writable array on every call, as eagerly
    linear = lad.jit(lad.grad(lambda a: lad.sum(W * a)))
    g1, g2 = linear(a1), linear(a2)
    np.testing.assert_array_equal(g1, W)
    assert g1 is not g2 and g1.flags.writeable
    g1 *= 2.0
    np.testing.assert_array_equal(linear(a1), W)
    # a caller's own array that a VJP passes through (the cotangent of a sum handed to a
    # pullback) is not frozen: it stays the caller's, writable; the result is a copy (of
    # it as recorded, like every constant), so that writing into one changes neither
    mine = rng.standard_normal((5, 5))
    through = lad.jit(lambda a: lad.vjp(lambda x: x + 1.0, a)[1](mine)[0])
    through(a1)
    out = through(a2)
    assert out is not mine and mine.flags.writeable
    np.testing.assert_array_equal(out, mine)
    from linalgad.tape import Primitive

    def scaling_in_place(g, needs, out, res, x):
        g *= 2.0                  # what no rule may do to its cotangent
        return (g,)

    double = Primitive("double", lambda x: 2.0 * x, scaling_in_place, None)
    writer = lad.jit(lad.value_and_grad(lambda a: lad.sum(W * double(a))))
    with pytest.raises(ValueError, match="read-only"):
        writer(a1)


def test_an_error_on_replay_is_decided_eagerly():
    """A kernel that raises on replay hands the call to eager, which may catch it: cond of a
    singular matrix is inf, and a try/except in the function sees the error as eagerly."""
    cond = lad.jit(lambda a: la.cond(a, "fro"))
    cond(_mat(3))
    assert cond(np.ones((3, 3))) == np.inf
    np.testing.assert_allclose(cond(_mat(3, 1)), la.cond(_mat(3, 1), "fro"))
    assert "replayed" in list(cond.explain().values())[0]

    def guarded(a, b):
        try:
            return lad.sum(la.solve(a, b))
        except LinAlgError:
            return lad.sum(b)
    g = lad.jit(lad.grad(guarded, argnums=1))
    g(_mat(3), np.ones(3))
    np.testing.assert_array_equal(g(np.zeros((3, 3)), np.ones(3)), np.ones(3))
    f = lad.jit(la.inv)
    f(_mat(3))
    with pytest.raises(LinAlgError, match="singular"):     # and an uncaught one still raises
        f(np.zeros((3, 3)))


def test_norm_ties_and_zeros_are_decided_on_replay():
    """norm's 2-norm averages a tied largest singular value inside its rule (svd_extreme:
    no decision in Python, so a replay at a tie needs no new recording); its p-norms and
    cond guard a zero: decisions re-checked on replay, so a zero records again."""
    g2 = lad.jit(lad.grad(lambda a: la.norm(a, 2)))
    eager2 = lad.grad(lambda a: la.norm(a, 2))
    g2(_mat(4))
    tied = np.diag([2.0, 2.0, 1.0, 0.5])
    np.testing.assert_allclose(g2(tied), eager2(tied))
    np.testing.assert_allclose(g2(tied), np.diag([0.5, 0.5, 0.0, 0.0]))
    assert "recorded again" not in list(g2.explain().values())[0]
    rng = np.random.default_rng(3)                   # order 64: the bidiagonal kernel
    Q, R = (np.linalg.qr(rng.standard_normal((64, 64)))[0] for _ in range(2))
    big = (Q * np.r_[2.0, 2.0, np.linspace(1.5, 0.5, 62)]) @ R.T
    g64 = lad.jit(lad.grad(lambda a: la.norm(a, 2)))
    g64(_mat(64))
    np.testing.assert_allclose(g64(big), Q[:, :2] @ R[:, :2].T / 2, atol=1e-12)
    assert "recorded again" not in list(g64.explain().values())[0]
    g3 = lad.jit(lad.grad(lambda x: lad.sum(la.norm(x, 3, axis=-1))))
    x = np.random.default_rng(0).standard_normal((3, 4))
    g3(x)
    x[1] = 0.0
    np.testing.assert_array_equal(g3(x)[1], 0.0)
    c = lad.jit(la.cond)
    c(_mat(3))
    assert c(np.zeros((3, 3))) == np.inf


@pytest.mark.parametrize("form", [{}, {"p_indices": True}, {"permute_l": True}])
def test_lu_returns_this_calls_permutation(form):
    """lu's P (or p, or P L) comes from the pivots: a replay returns the new call's."""
    f = lad.jit(lambda a: la.lu(a, **form))
    a0 = np.array([[1.0, 2.0, 0.0], [3.0, 1.0, 1.0], [0.0, 1.0, 4.0]])
    a1 = a0[[2, 0, 1]] + 0.01                       # other pivots
    f(a0)
    for got, want in zip(f(a1), la.lu(a1, **form)):
        np.testing.assert_array_equal(got, want)
    assert "replayed" in list(f.explain().values())[0]


def test_pivoted_qr_returns_this_calls_pivots():
    """geqp3's factors reach the qr primitive as a tuple parameter of residuals: rebuilt
    from the new call's on replay (a tuple of them baked in would return stale Q, R)."""
    f = lad.jit(lambda a: la.qr(a, pivoting=True))
    f(np.diag([1.0, 2.0, 3.0, 4.0])[:, ::-1] + 0.01)
    for seed in range(3):
        a = np.random.default_rng(seed).random((5, 4))
        for got, want in zip(f(a), la.qr(a, pivoting=True)):
            np.testing.assert_array_equal(got, want)
    assert "again" not in list(f.explain().values())[0]


def test_compute_without_a_recording_is_a_call():
    from linalgad.tape import compute
    calls = []
    assert compute(lambda x: calls.append(1) or x * 2, (np.ones(2),),
                   decide=lambda r: calls.append(2))[0] == 2
    assert calls == [1]                       # no recording: decide is never needed


def test_the_document_runs():
    """docs/jit.md's example runs and its claim holds."""
    import pathlib
    import re
    text = (pathlib.Path(__file__).resolve().parents[1] / "docs" / "jit.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert blocks
    for block in blocks:
        scope = {}
        exec(compile(block, "docs/jit.md", "exec"), scope)
        assert "replayed" in " ".join(scope["vg"].explain().values())


def test_sum_of_a_product_is_one_step():
    """sum(x * y) over every axis, the product read by nothing else, is replayed as one
    dot: the same value (no conjugation for complex), one step fewer; a product read
    again or a sum over some axes keep the two steps; operands that broadcast take the
    two operations inside the one step."""
    rng = np.random.default_rng(7)
    for dtype in (np.float32, np.float64, np.complex128):
        W = rng.standard_normal((4, 3, 3)).astype(dtype)
        a = (rng.standard_normal((4, 3, 3)) + 3 * np.eye(3)).astype(dtype)
        if np.dtype(dtype).kind == "c":
            W = W + 1j * rng.standard_normal((4, 3, 3))
            a = a + 0.5j * rng.standard_normal((4, 3, 3))
        cases = {
            "fused": (lambda a: lad.real(lad.sum(W * la.inv(a))), 1),
            "product read twice": (lambda a: (lambda p: lad.real(lad.sum(p) + lad.sum(p * p)))(
                W * la.inv(a)), 0),
            "some axes": (lambda a: lad.real(lad.sum(lad.sum(W * la.inv(a), axis=(-2, -1)))),
                          0),
            # one step too, which falls back to the product and the sum at run time
            "broadcast": (lambda a: lad.real(lad.sum(W[0] * la.inv(a))), 1),
        }
        for name, (loss, saved) in cases.items():
            got = lad.jit(lad.value_and_grad(loss))
            got(a)
            v, g = got(a)
            want = lad.value_and_grad(loss)(a)
            tol = 1e-5 if dtype == np.float32 else 1e-13
            np.testing.assert_allclose(v, want[0], rtol=tol, err_msg=name)
            np.testing.assert_allclose(g, want[1], rtol=tol * 10, err_msg=name)
            program = list(got.clear.__self__.values())[-1]
            fused = any(f is transforms._sum_of_product for f in program.fn.__globals__.values())
            assert fused == bool(saved), (name, dtype, program.source)


# -- what a user does with a jitted function's results and closures (session 24's audit)

def test_an_error_the_function_catches_makes_the_signature_eager():
    """A kernel that raised while recording, caught by the function, chose the path by the
    values: replaying the except branch on a positive definite matrix would be wrong."""
    def f(A):
        try:
            return lad.sum(la.cholesky(A))
        except np.linalg.LinAlgError:
            return lad.sum(A) * 0.0
    j = lad.jit(f)
    assert j(-np.eye(3)) == 0.0
    assert j(4 * np.eye(3)) == pytest.approx(6.0)
    assert "raised LinAlgError" in next(iter(j.explain().values()))
    g = lad.jit(lad.grad(f))
    np.testing.assert_array_equal(g(-np.eye(3)), np.zeros((3, 3)))
    np.testing.assert_allclose(g(4 * np.eye(3)), lad.grad(f)(4 * np.eye(3)))


def test_a_caught_check_finite_error_makes_the_signature_eager():
    def f(A):
        try:
            return lad.sum(la.solve(A, np.ones(2)))
        except ValueError:
            return A[1, 1] * 10.0
    j = lad.jit(f)
    bad = np.eye(2)
    bad[0, 0] = np.nan
    assert j(bad) == 10.0
    assert j(2 * np.eye(2)) == pytest.approx(1.0)
    assert "raised ValueError" in next(iter(j.explain().values()))


def test_results_are_arrays_of_their_own():
    """Constant results (an unused argument's zero gradient) and a cotangent handed to two
    arguments come back as separate writable arrays on every call, as eagerly."""
    x = np.ones(3)
    g = lad.jit(lad.grad(lambda w, b: lad.sum(w ** 2), argnums=(0, 1)))
    for _ in range(3):
        _, gb = g(x, x)
        gb += 0.1                       # weight decay, in place
    np.testing.assert_array_equal(g(x, x)[1], np.zeros(3))
    W = np.array([1.0, 2.0, 3.0])
    both = lad.grad(lambda x, y: lad.sum(W * (x + y)), argnums=(0, 1))
    for fn in (both, lad.jit(both), lad.jit(both)):
        gx, gy = fn(x, x)
        assert gx is not gy
        gx[0] = 100.0
        np.testing.assert_array_equal(gy, W)
    for fn in (lad.grad(lambda x: lad.sum(x)), lad.jit(lad.grad(lambda x: lad.sum(x)))):
        for _ in range(2):
            gs = fn(x)
            gs += 1.0                   # writable, not a broadcast view
            np.testing.assert_array_equal(fn(x), np.ones(3))


def test_closed_over_arrays_are_taken_as_they_were_recorded():
    """Writing into a closed-over array after recording reaches neither the replay's value
    nor its (folded) gradient: the two stay consistent, as jax.jit's constants."""
    W = np.ones(3)
    x = np.array([1.0, 2.0, 3.0])
    vg = lad.jit(lad.value_and_grad(lambda x: lad.sum(W * x)))
    vg(x)
    W[:] = 5.0
    value, grad = vg(x)
    assert value == pytest.approx(6.0)
    np.testing.assert_array_equal(grad, np.ones(3))
    R = np.ones(3)
    R.flags.writeable = False           # read-only: used as it is, not copied
    assert lad.jit(lambda x: lad.sum(R * x))(x) == pytest.approx(6.0)


def test_named_tuple_classes_are_different_signatures():
    from collections import namedtuple
    P = namedtuple("P", "w b")
    Q = namedtuple("Q", "b w")
    loss = lambda p: lad.sum(p.w ** 2) + lad.sum(p.b)
    h = lad.jit(lad.value_and_grad(loss))
    h(P(w=np.ones(2), b=np.ones(2)))
    q = Q(b=np.zeros(2), w=3 * np.ones(2))
    value, grad = h(q)
    assert value == pytest.approx(18.0)
    assert type(grad) is Q
    np.testing.assert_array_equal(grad.w, [6.0, 6.0])
    with pytest.raises(AttributeError):
        h((np.ones(2), np.ones(2)))


def test_returning_a_function_raises():
    jv = lad.jit(lambda A: lad.vjp(lambda A: lad.sum(A ** 3), A))
    with pytest.raises(TypeError, match="not an array"):
        jv(np.ones(2))


def test_closing_over_an_enclosing_transforms_value():
    def outer(y):
        inner = lad.jit(lambda x: lad.sum(la.inv(lad.diag(y) + lad.diag(x))))
        return inner(np.ones(3)) + lad.sum(lad.jit(
            lambda x: lad.einsum("i,i->", x, y))(np.ones(3)))
    y = np.array([1.0, 2.0, 3.0])
    np.testing.assert_allclose(lad.grad(outer)(y), -1 / (y + 1) ** 2 + 1)


def test_jacobians_replay():
    A = np.random.default_rng(0).standard_normal((3, 3)) + 3 * np.eye(3)
    for jac in (lad.jacrev, lad.jacfwd):
        j = lad.jit(jac(la.inv))
        j(A)
        np.testing.assert_allclose(j(2 * A), jac(la.inv)(2 * A))
        assert next(iter(j.explain().values())).startswith("replayed")


def test_debug_nans_runs_jitted_functions_eagerly():
    f = lad.jit(lad.grad(lambda x: lad.sum(lad.sqrt(x))))
    f(np.ones(2))
    try:
        lad.debug_nans(True)
        with pytest.raises(FloatingPointError):
            f(np.zeros(2))
    finally:
        lad.debug_nans(False)
    f(np.ones(2))
    assert next(iter(f.explain().values())).startswith("replayed")


def test_tracer_item_and_astype():
    assert lad.grad(lambda x: lad.sum(x.astype(np.float32) ** 2))(np.ones(2)).dtype == np.float64
    with pytest.raises(TypeError, match="item"):
        lad.grad(lambda x: x.sum().item())(np.ones(2))
    j = lad.jit(lambda x: x.sum().item())
    assert j(np.ones(2)) == 2.0 and j(2 * np.ones(2)) == 4.0


def test_changing_python_numbers_are_recorded_again_and_say_so():
    """A Python float argument is a constant of a recording (jax.jit would trace it): a
    step size that changes every call recorded every call, silently, each recording
    kept.  After JIT_CONSTANT_WARN of them a RuntimeWarning says so; as a 0-d float array
    the same value is a replayed input."""
    import warnings as w_
    loss = lambda x, lam: lad.sum(la.solve(x + lam * np.eye(3), np.ones(3)))  # noqa: E731
    x = 2 * np.eye(3) + 0.1 * np.arange(9.0).reshape(3, 3)
    f = lad.jit(lad.value_and_grad(loss))
    with w_.catch_warnings(record=True) as caught:
        w_.simplefilter("always")
        for i in range(lad.transforms.JIT_CONSTANT_WARN + 3):
            f(x, 0.1 * i)
    assert [str(m.message) for m in caught if m.category is RuntimeWarning and
            "np.asarray" in str(m.message)] and len(caught) == 1
    g = lad.jit(lad.value_and_grad(loss))
    with w_.catch_warnings():
        w_.simplefilter("error")
        for i in range(12):
            v, gx = g(x, np.asarray(0.1 * i))
    v0, g0 = lad.value_and_grad(loss)(x, 1.1)
    np.testing.assert_allclose(v, v0, rtol=1e-14)
    np.testing.assert_allclose(gx, g0, rtol=1e-13)
    (only,) = g.explain().values()          # one signature, replayed
    assert only.startswith("replayed")
