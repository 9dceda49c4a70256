"""NumPy's own functions on traced values (``__array_ufunc__``, ``__array_function__``).

* A NumPy function linalgad supports gives the value NumPy gives and the
  derivative of the corresponding linalgad op.
* One it does not support raises a TypeError naming it; converting a traced
  value to an ndarray raises too: the derivative is never dropped silently.
* Comparisons give plain boolean arrays.
* On plain arrays, linalgad's ops are NumPy: plain arrays (or NumPy scalars)
  out, with NumPy's values and dtypes.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

import linalgad as lad
from linalgad import linalg as la
from linalgad import ops
from linalgad._array_methods import NUMPY_UFUNCS
from linalgad.tape import Tracer
from linalgad.testing import check_grads

RNG = np.random.default_rng(20240601)


def rand(*shape, dtype=np.float64, kind="any"):
    if kind == "pos":
        x = RNG.uniform(0.5, 2.0, shape)
    elif kind == "away":
        x = RNG.uniform(0.5, 2.0, shape) * RNG.choice([-1.0, 1.0], shape)
    elif kind == "small":                  # inside (−1, 1): arcsin, arccos
        x = RNG.uniform(-0.8, 0.8, shape)
    else:
        x = RNG.standard_normal(shape)
    if np.dtype(dtype).kind == "c":
        x = x + 0.3j * RNG.standard_normal(shape)
    return np.asarray(x, dtype=dtype)


def well_conditioned(n, dtype=np.float64):
    return rand(n, n, dtype=dtype) + 4 * np.eye(n)


X234 = rand(2, 3, 4)
Y234 = rand(2, 3, 4)
M34 = rand(3, 4)
N34 = rand(3, 4)
M43 = rand(4, 3)
SQ = rand(4, 4)
POS = rand(3, 4, kind="pos")
AWAY = rand(3, 4, kind="away")
Z34 = rand(3, 4, dtype=np.complex128)
Z43 = rand(4, 3, dtype=np.complex128)
V4 = rand(4)
SMALL = rand(3, 4, kind="small")
MASK = M34 > 0
CONST = rand(3, 4)
A4 = well_conditioned(4)
AZ4 = well_conditioned(4, np.complex128)
B42 = rand(4, 2)

# id, the NumPy call, the same computation written with linalgad, inputs
SAME_AS_LINALGAD = [
    ("sum-axis-keepdims", lambda x: np.sum(x, axis=1, keepdims=True),
     lambda x: lad.sum(x, axis=1, keepdims=True), (X234,)),
    ("sum-all", np.sum, lad.sum, (Z34,)),
    ("mean-axes", lambda x: np.mean(x, axis=(0, -1)), lambda x: lad.mean(x, axis=(0, -1)),
     (X234,)),
    ("exp", np.exp, lad.exp, (M34,)),
    ("exp-complex", np.exp, lad.exp, (Z34,)),
    ("log", np.log, lad.log, (POS,)),
    ("sqrt", np.sqrt, lad.sqrt, (POS,)),
    ("abs", np.abs, lad.abs, (AWAY,)),
    ("abs-complex", np.abs, lad.abs, (Z34,)),
    ("matmul", np.matmul, lad.matmul, (M34, M43)),
    ("matmul-complex-batched", np.matmul, lad.matmul, (X234, Z43)),
    ("matmul-ndarray-first", lambda x: np.matmul(CONST, x), lambda x: lad.matmul(CONST, x),
     (M43,)),
    ("ndarray-matmul-operator", lambda x: CONST @ x, lambda x: lad.matmul(CONST, x), (M43,)),
    ("ndarray-times-traced", lambda x: CONST * x, lambda x: lad.multiply(CONST, x), (M34,)),
    ("dot-2d", np.dot, lad.dot, (M34, M43)),
    ("dot-nd", np.dot, lad.dot, (X234, M43)),
    ("einsum-explicit", lambda a, b: np.einsum("...ij,jk->...ik", a, b),
     lambda a, b: lad.einsum("...ij,jk->...ik", a, b), (X234, M43)),
    ("einsum-implicit", lambda a, b: np.einsum("ij,kj", a, b),
     lambda a, b: lad.einsum("ij,kj", a, b), (M34, Z34)),
    ("transpose", np.transpose, lad.transpose, (X234,)),
    ("transpose-axes", lambda x: np.transpose(x, (1, 0, 2)),
     lambda x: lad.transpose(x, (1, 0, 2)), (X234,)),
    ("reshape", lambda x: np.reshape(x, (4, -1)), lambda x: lad.reshape(x, (4, -1)), (X234,)),
    ("where", lambda x, y: np.where(MASK, x, y), lambda x, y: lad.where(MASK, x, y),
     (M34, N34)),
    ("where-traced-condition-scalar", lambda x: np.where(x > 0, x, 0.0),
     lambda x: lad.where(M34 > 0, x, 0.0), (M34,)),
    ("concatenate", lambda x, y: np.concatenate([x, CONST, y], axis=-1),
     lambda x, y: lad.concatenate([x, CONST, y], axis=-1), (M34, N34)),
    ("stack", lambda x, y: np.stack((x, y), axis=-1), lambda x, y: lad.stack((x, y), axis=-1),
     (M34, N34)),
    ("trace", np.trace, lad.trace, (SQ,)),
    ("trace-offset-axes", lambda x: np.trace(x, offset=1, axis1=1, axis2=2),
     lambda x: lad.trace(x, 1, 1, 2), (X234,)),
    ("diagonal", lambda x: np.diagonal(x, offset=-1), lambda x: lad.diagonal(x, -1), (M43,)),
    ("diagonal-axes", lambda x: np.diagonal(x, 0, 2, 0), lambda x: lad.diagonal(x, 0, 2, 0),
     (X234,)),
    ("norm", np.linalg.norm, lad.norm, (X234,)),
    ("norm-ord1-axis", lambda x: np.linalg.norm(x, ord=1, axis=0),
     lambda x: lad.norm(x, ord=1, axis=0), (AWAY,)),
    ("norm-fro-complex", lambda x: np.linalg.norm(x, "fro"), lambda x: lad.norm(x, "fro"),
     (Z34,)),
    ("norm-inf", lambda x: np.linalg.norm(x, np.inf), lambda x: lad.norm(x, np.inf), (V4,)),
    ("real", np.real, lad.real, (Z34,)),
    ("imag", np.imag, lad.imag, (Z34,)),
    ("conj", np.conj, lad.conj, (Z34,)),
    ("conjugate", np.conjugate, lad.conj, (Z34,)),
    ("maximum", np.maximum, lad.maximum, (M34, N34)),
    ("maximum-scalar", lambda x: np.maximum(x, 0.25), lambda x: lad.maximum(x, 0.25), (M34,)),
    ("linalg-solve", np.linalg.solve, la.solve, (A4, B42)),
    ("linalg-solve-complex-vector", np.linalg.solve, la.solve, (AZ4, V4)),
]


def _cotangent(out):
    out = np.asarray(out)
    w = np.random.default_rng(1).standard_normal(out.shape)
    if out.dtype.kind == "c":
        w = w + 1j * np.random.default_rng(2).standard_normal(out.shape)
    return w.astype(out.dtype)


@pytest.mark.parametrize("np_f, lad_f, args", [pytest.param(*row[1:], id=row[0])
                                                for row in SAME_AS_LINALGAD])
def test_numpy_function_matches_linalgad_op(np_f, lad_f, args):
    seen = []

    def via_numpy(*xs):
        out = np_f(*xs)
        seen.append(type(out))
        return out

    out_np, pull_np = lad.vjp(via_numpy, *args)
    out_lad, pull_lad = lad.vjp(lad_f, *args)
    assert issubclass(seen[0], Tracer), "the NumPy function did not return a traced value"
    # the value is NumPy's
    expected = np_f(*args)
    np.testing.assert_allclose(out_np, expected, rtol=1e-13, atol=1e-14)
    assert np.asarray(out_np).dtype == np.asarray(expected).dtype
    # the derivative is linalgad's
    w = _cotangent(out_lad)
    for g_np, g_lad, x in zip(pull_np(w), pull_lad(w), args):
        assert g_np.dtype == x.dtype and g_np.shape == x.shape
        np.testing.assert_allclose(g_np, g_lad, rtol=1e-13, atol=1e-14)
        assert np.any(g_lad != 0)


# Every NumPy ufunc linalgad differentiates, applied to traced values: NumPy's
# value and a derivative that agrees with finite differences (to second order).
_UFUNC_IDS = sorted(NUMPY_UFUNCS, key=lambda u: u.__name__)


@pytest.mark.parametrize("ufunc", _UFUNC_IDS, ids=[u.__name__ for u in _UFUNC_IDS])
def test_numpy_ufunc_on_traced_values(ufunc):
    # inputs in [0.5, 1.4]: inside every ufunc's domain (log, sqrt, tan, power, divide);
    # arcsin and arccos: [−0.8, 0.8]
    low, high = (-0.8, 0.8) if ufunc in (np.arcsin, np.arccos) else (0.5, 1.4)
    args = [np.random.default_rng(i).uniform(low, high, (3, 3)) for i in range(ufunc.nin)]
    out, _ = lad.vjp(lambda *xs: ufunc(*xs), *args)
    np.testing.assert_array_equal(out, ufunc(*args))
    check_grads(lambda *xs: ufunc(*xs), args, order=2)


# -- what linalgad cannot differentiate ---------------------------------------------------

_BUF = np.empty(3)

UNSUPPORTED = [
    ("numpy.sort", lambda x: np.sort(x)),
    ("numpy.cumsum", lambda x: np.cumsum(x)),
    ("numpy.fft.fft", lambda x: np.fft.fft(x)),
    ("numpy.add.reduce", lambda x: np.add.reduce(x)),
    ("numpy.multiply.outer", lambda x: np.multiply.outer(x, x)),
    ("numpy.add.accumulate", lambda x: np.add.accumulate(x)),
    ("numpy.exp", lambda x: np.exp(x, out=_BUF)),
    ("numpy.multiply", lambda x: np.multiply(x, 2.0, out=_BUF)),
    ("numpy.sum", lambda x: np.sum(x, out=np.empty(()))),
]


@pytest.mark.parametrize("transform", ["grad", "jvp"])
@pytest.mark.parametrize("name, f", [pytest.param(n, f, id=n + ("-out" if i >= 6 else ""))
                                     for i, (n, f) in enumerate(UNSUPPORTED)])
def test_unsupported_numpy_function_raises_naming_it(name, f, transform):
    x = np.array([3.0, 1.0, 2.0])
    with pytest.raises(TypeError, match=re.escape(name) + r"\b"):
        if transform == "grad":
            lad.grad(lambda x: lad.sum(lad.real(f(x))))(x)
        else:
            lad.jvp(f, (x,), (np.ones(3),))
    f(x)    # the same call is fine on a plain array: it is the tracing that refuses


@pytest.mark.parametrize("convert", [np.asarray, np.array, np.ascontiguousarray],
                         ids=lambda f: f.__name__)
@pytest.mark.parametrize("transform", ["grad", "jvp"])
def test_converting_traced_value_to_ndarray_raises(convert, transform):
    x = np.arange(3.0)
    with pytest.raises(TypeError, match="derivative"):
        if transform == "grad":
            lad.grad(lambda x: lad.sum(convert(x)))(x)
        else:
            lad.jvp(convert, (x,), (np.ones(3),))


# -- comparisons -------------------------------------------------------------------------

COMPARISONS = [
    ("gt-scalar", lambda x, y: x > 0.1, lambda x, y: x > 0.1),
    ("scalar-lt", lambda x, y: 0.1 < x, lambda x, y: 0.1 < x),
    ("ge-traced", lambda x, y: x >= y, lambda x, y: x >= y),
    ("le-ndarray", lambda x, y: x <= CONST, lambda x, y: x <= CONST),
    ("ndarray-lt", lambda x, y: CONST < x, lambda x, y: CONST < x),
    ("eq-self", lambda x, y: x == x, lambda x, y: x == x),
    ("ne-traced", lambda x, y: x != y, lambda x, y: x != y),
    ("np-less", np.less, np.less),
    ("np-greater-equal", np.greater_equal, np.greater_equal),
    ("np-equal", np.equal, np.equal),
    ("np-isfinite", lambda x, y: np.isfinite(x), lambda x, y: np.isfinite(x)),
    ("np-signbit", lambda x, y: np.signbit(x), lambda x, y: np.signbit(x)),
]


@pytest.mark.parametrize("transform", ["grad", "jvp"])
@pytest.mark.parametrize("cmp, ref", [pytest.param(c, r, id=i) for i, c, r in COMPARISONS])
def test_comparisons_return_plain_booleans(cmp, ref, transform):
    x, y = M34, np.where(MASK, M34, N34)          # equal where MASK, so == and >= differ
    results = []

    def f(x, y):
        r = cmp(x, y)
        results.append(r)
        return lad.sum(lad.where(r, x, y))

    if transform == "grad":
        lad.grad(f, argnums=(0, 1))(x, y)
    else:
        lad.jvp(f, (x, y), (np.ones_like(x), np.ones_like(y)))
    (r,) = results
    assert type(r) is np.ndarray and r.dtype == np.bool_
    np.testing.assert_array_equal(r, ref(x, y))


# -- plain arrays: no tracing, NumPy's results ----------------------------------------------

# id, linalgad call, NumPy call, inputs, exact (else: equal to rounding)
PLAIN = [
    ("add", lad.add, np.add, (M34, N34), True),
    ("add-float32-scalar", lambda x: lad.add(x, 1.5), lambda x: x + 1.5,
     (M34.astype(np.float32),), True),
    ("subtract", lad.subtract, np.subtract, (M34, V4), True),
    ("multiply-int", lad.multiply, np.multiply, (np.arange(6).reshape(2, 3), np.arange(3)), True),
    ("divide", lad.divide, np.divide, (M34, AWAY), True),
    ("true_divide-int", lad.true_divide, np.true_divide, (np.arange(4), np.arange(1, 5)), True),
    ("power", lad.power, np.power, (POS, N34), True),
    ("negative", lad.negative, np.negative, (Z34,), True),
    ("matmul", lad.matmul, np.matmul, (X234, M43), True),
    ("abs-complex", lad.abs, np.abs, (Z34,), True),
    ("exp", lad.exp, np.exp, (M34,), True),
    ("expm1", lad.expm1, np.expm1, (M34,), True),
    ("log", lad.log, np.log, (POS,), True),
    ("log1p", lad.log1p, np.log1p, (POS,), True),
    ("sqrt-complex", lad.sqrt, np.sqrt, (Z34,), True),
    ("square", lad.square, np.square, (M34,), True),
    ("sin", lad.sin, np.sin, (M34,), True),
    ("cos", lad.cos, np.cos, (M34,), True),
    ("tan", lad.tan, np.tan, (M34,), True),
    ("tanh-float32", lad.tanh, np.tanh, (M34.astype(np.float32),), True),
    ("sinh", lad.sinh, np.sinh, (M34,), True),
    ("cosh", lad.cosh, np.cosh, (M34,), True),
    ("arcsin", lad.arcsin, np.arcsin, (SMALL,), True),
    ("arccos", lad.arccos, np.arccos, (SMALL,), True),
    ("sign", lad.sign, np.sign, (Z34,), True),
    ("sum-all", lad.sum, np.sum, (X234,), True),
    ("sum-axis", lambda x: lad.sum(x, axis=(0, 2), keepdims=True),
     lambda x: np.sum(x, axis=(0, 2), keepdims=True), (X234,), True),
    ("mean-axis", lambda x: lad.mean(x, axis=1), lambda x: np.mean(x, axis=1), (X234,), False),
    ("mean-all", lad.mean, np.mean, (X234,), False),
    ("max-axis", lambda x: lad.max(x, axis=-1), lambda x: np.max(x, axis=-1), (X234,), True),
    ("min-all", lad.min, np.min, (X234,), True),
    ("maximum", lad.maximum, np.maximum, (M34, N34), True),
    ("minimum", lad.minimum, np.minimum, (M34, V4), True),
    ("where", lambda x, y: lad.where(MASK, x, y), lambda x, y: np.where(MASK, x, y),
     (M34, Z34), True),
    ("reshape", lambda x: lad.reshape(x, (4, -1)), lambda x: np.reshape(x, (4, -1)), (X234,),
     True),
    ("ravel", lad.ravel, np.ravel, (X234,), True),
    ("transpose", lambda x: lad.transpose(x, (2, 0, 1)), lambda x: np.transpose(x, (2, 0, 1)),
     (X234,), True),
    ("swapaxes", lambda x: lad.swapaxes(x, 0, -1), lambda x: np.swapaxes(x, 0, -1), (X234,),
     True),
    ("moveaxis", lambda x: lad.moveaxis(x, -1, 0), lambda x: np.moveaxis(x, -1, 0), (X234,),
     True),
    ("moveaxis-sequences", lambda x: lad.moveaxis(x, (2, 0), (0, -1)),
     lambda x: np.moveaxis(x, (2, 0), (0, -1)), (X234,), True),
    ("mT", lad.mT, np.matrix_transpose, (X234,), True),
    ("mH", lad.mH, lambda x: np.conj(np.swapaxes(x, -1, -2)), (Z34,), True),
    ("expand_dims", lambda x: lad.expand_dims(x, (0, -1)),
     lambda x: np.expand_dims(x, (0, -1)), (M34,), True),
    ("squeeze", lad.squeeze, np.squeeze, (rand(3, 1, 4),), True),
    ("broadcast_to", lambda x: lad.broadcast_to(x, (2, 3, 4)),
     lambda x: np.broadcast_to(x, (2, 3, 4)), (V4,), True),
    ("getitem-advanced", lambda x: x[[0, 0, 2], 1:], lambda x: x[[0, 0, 2], 1:], (M34,), True),
    ("take_index-mask", lambda x: lad.take_index(x, MASK), lambda x: x[MASK], (M34,), True),
    ("diagonal", lambda x: lad.diagonal(x, 1, 2, 0), lambda x: np.diagonal(x, 1, 2, 0),
     (X234,), True),
    ("diag-vector", lambda x: lad.diag(x, -1), lambda x: np.diag(x, -1), (V4,), True),
    ("diag-matrix", lambda x: lad.diag(x, 1), lambda x: np.diag(x, 1), (M34,), True),
    ("trace", lad.trace, np.trace, (SQ,), False),
    ("tril", lambda x: lad.tril(x, -1), lambda x: np.tril(x, -1), (M34,), True),
    ("triu", lad.triu, np.triu, (X234,), True),
    ("tri_matmul", lambda a, b: ops.tri_matmul(a, b, k=-1),
     lambda a, b: np.tril(a @ b, -1), (X234, M43), True),
    ("split_matmul", lambda a, b: ops.split_matmul(a, b, M34, M43, k=1),
     lambda a, b: np.tril(a @ b) + np.triu(M34 @ M43, 1), (X234, M43), True),
    ("permute_rows", lambda x: ops.permute_rows(x, np.array([[2, 0, 1], [0, 2, 1]])),
     lambda x: np.stack([x[0][[2, 0, 1]], x[1][[0, 2, 1]]]), (X234,), True),
    ("concatenate", lambda x, y: lad.concatenate([x, y], axis=None),
     lambda x, y: np.concatenate([x, y], axis=None), (M34, V4), True),
    ("stack", lambda x, y: lad.stack([x, y], axis=-2), lambda x, y: np.stack([x, y], axis=-2),
     (M34, Z34), True),
    ("real", lad.real, np.real, (Z34,), True),
    ("imag", lad.imag, np.imag, (Z34,), True),
    ("conj", lad.conj, np.conj, (Z34,), True),
    ("outer", lad.outer, np.outer, (V4, M34), True),
    ("dot-nd", lad.dot, np.dot, (X234, M43), False),
    ("vdot", lad.vdot, np.vdot, (Z34, M34), False),
    ("inner", lad.inner, np.inner, (X234, M34), False),
    ("einsum", lambda a, b: lad.einsum("...ij,jk", a, b), lambda a, b: np.einsum("...ij,jk", a, b),
     (X234, M43), False),
    ("norm", lad.norm, np.linalg.norm, (X234,), False),
    ("norm-ord3-axis", lambda x: lad.norm(x, 3, axis=0), lambda x: np.linalg.norm(x, 3, axis=0),
     (Z34,), False),
    ("astype", lambda x: lad.astype(x, np.float32), lambda x: x.astype(np.float32), (M34,), True),
    ("zeros_like", lad.zeros_like, np.zeros_like, (Z34,), True),
    ("ones_like", lad.ones_like, np.ones_like, (M34.astype(np.float32),), True),
    ("solve", la.solve, np.linalg.solve, (A4, B42), False),
]


@pytest.mark.parametrize("lad_f, np_f, args, exact",
                         [pytest.param(*row[1:], id=row[0]) for row in PLAIN])
def test_plain_arrays_give_numpys_result(lad_f, np_f, args, exact):
    got = lad_f(*args)
    want = np_f(*args)
    assert not isinstance(got, Tracer)
    assert isinstance(got, (np.ndarray, np.generic))
    assert type(got) is type(want)
    assert got.dtype == want.dtype and got.shape == want.shape
    if exact:
        np.testing.assert_array_equal(got, want)
    else:
        np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-14)


def test_plain_table_covers_every_array_op():
    """Every op in ops.__all__ (except cotangent helpers) appears in PLAIN."""
    names = {row[0].split("-")[0] for row in PLAIN}
    names |= {"absolute", "amax", "amin", "conjugate", "matrix_transpose", "positive",
              "getitem"} & set(ops.__all__)
    helpers = {"fit", "unbroadcast", "asarray_value"}
    assert set(ops.__all__) - helpers - names == set()


def test_plain_positive_is_identity():
    assert ops.positive(M34) is M34
