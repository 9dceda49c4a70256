"""Derivatives of every differentiable op in linalgad.ops.

One table (CASES) drives the gradient checks: each row is a function of traced
arrays, the inputs it is evaluated at, the ops it exercises and the dtypes it
runs in.  ``check_grads(..., order=2)`` compares the JVP and the VJP with
finite differences, runs the dot-product test, repeats all of that for the
derivative functions themselves (second order), and checks that tangents and
cotangents keep the dtypes of the values they pair with.

Points where an op is not differentiable (ties of max/min/maximum, abs and
norm at 0) are not valid for finite differences; their conventions are
checked against the expected values in separate tables below.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import numpy as np
import pytest

import linalgad as lad
from linalgad import ops
from linalgad.testing import check_grads

F32, F64, C128 = np.dtype(np.float32), np.dtype(np.float64), np.dtype(np.complex128)


# -- inputs -------------------------------------------------------------------------

@dataclass(frozen=True)
class Arg:
    """How to draw one argument of a case.

    kind: "any" (standard normal), "pos" (real part in [0.5, 2], off the
    branch cuts of log/sqrt/power), "away" (|x| in [0.5, 2], off the kinks of
    abs/sign and the poles of 1/x), "small" (|x| < 0.8: tan, log1p, arcsin, arccos).
    const: a constant closed over by the function rather than a traced input.
    """
    shape: tuple
    kind: str = "any"
    const: bool = False


def A(*shape, kind="any"):
    return Arg(tuple(shape), kind)


def K(*shape, kind="any"):
    return Arg(tuple(shape), kind, const=True)


def draw(rng, arg, dtype):
    dtype = np.dtype(dtype)
    cplx = dtype.kind == "c"
    shape = arg.shape
    if arg.kind == "any":
        x = rng.standard_normal(shape) + (1j * rng.standard_normal(shape) if cplx else 0)
    elif arg.kind == "pos":
        x = rng.uniform(0.5, 2.0, shape) + (1j * rng.uniform(-0.5, 0.5, shape) if cplx else 0)
    elif arg.kind == "away":
        r = rng.uniform(0.5, 2.0, shape)
        if cplx:
            x = r * np.exp(1j * rng.uniform(-np.pi, np.pi, shape))
        else:
            x = r * rng.choice([-1.0, 1.0], shape)
    elif arg.kind == "small":
        x = rng.uniform(-0.8, 0.8, shape) + (1j * rng.uniform(-0.4, 0.4, shape) if cplx else 0)
    else:
        raise ValueError(arg.kind)
    return np.asarray(x).astype(dtype)


# -- the table ------------------------------------------------------------------------

@dataclass
class Case:
    id: str
    fn: object
    args: tuple
    ops: tuple                      # names in ops.__all__ this case exercises
    cplx: bool = True               # also run with complex128 inputs
    f32: bool = False               # also run with float32 inputs
    marks: tuple = field(default=())


CASES = []


def case(id, fn, *args, ops=None, cplx=True, f32=False, marks=()):
    CASES.append(Case(id, fn, tuple(args), tuple(ops or (id.split("-")[0],)), cplx, f32,
                      tuple(marks)))


MASK34 = np.array([[True, False, True, True],
                   [False, False, True, False],
                   [True, True, False, True]])
MASK3 = np.array([True, False, True])
C34 = np.arange(12).reshape(3, 4) * (0.5 - 0.25j)

# binary arithmetic: both traced (same shape and broadcast), and a Python scalar
# or a constant array on either side
for name, f, kind in [("add", lambda x, y: x + y, "any"),
                      ("subtract", lambda x, y: x - y, "any"),
                      ("multiply", lambda x, y: x * y, "any"),
                      ("divide", lambda x, y: x / y, "away")]:
    case(f"{name}-both", f, A(3, 4), A(3, 4, kind=kind), f32=True)
    case(f"{name}-broadcast", f, A(3, 1), A(4, kind=kind))
    case(f"{name}-scalar-right", lambda x, f=f: f(x, 1.7), A(3, 4))
    case(f"{name}-scalar-left", lambda x, f=f: f(-1.3, x), A(3, 4, kind=kind), f32=True)
    case(f"{name}-const-right", f, A(3, 4), K(3, 4, kind=kind))
    case(f"{name}-const-left", f, K(2, 3, 4), A(3, 4, kind=kind))
case("add-named", lambda x, y: lad.add(x, y), A(2, 3), A(3))
case("subtract-named", lambda x, y: lad.subtract(x, y), A(2, 3), A(3))
case("multiply-named", lambda x, y: lad.multiply(x, y), A(2, 3), A(3))
case("divide-named", lambda x, y: lad.divide(x, y), A(2, 3), A(3, kind="away"))
case("power-both", lambda x, y: x ** y, A(3, 4, kind="pos"), A(3, 4), f32=True)
case("power-broadcast", lambda x, y: lad.power(x, y), A(3, 1, kind="pos"), A(4))
case("power-int-exponent", lambda x: x ** 3, A(3, 4))
case("power-negative-exponent", lambda x: x ** -2, A(3, 4, kind="away"))
case("power-scalar-right", lambda x: x ** 1.5, A(3, 4, kind="pos"), f32=True)
case("power-scalar-left", lambda x: 2.5 ** x, A(3, 4), f32=True)
case("power-two", lambda x: x ** 2, A(3, 4), f32=True)            # the square node
case("power-two-float", lambda x: lad.power(x, 2.0), A(2, 3))
case("power-half", lambda x: x ** 0.5, A(3, 4, kind="pos"), f32=True)     # the sqrt node
case("power-const-right", lambda x, c: x ** c, A(3, 4, kind="pos"), K(3, 4))
case("power-const-left", lambda c, x: c ** x, K(3, 4, kind="pos"), A(3, 4))
# a real traced input meeting a complex constant: complex output, real cotangent
case("add-real-input-complex-scalar", lambda x: x + (1 + 2j), A(3, 4), cplx=False)
case("subtract-real-input-complex-const", lambda x: C34 - x, A(3, 4), cplx=False)
case("multiply-real-input-complex-const", lambda x: x * (0.5 - 1j), A(3, 4), cplx=False)
case("where-real-input-complex-const", lambda x: lad.where(MASK34, x, 2j), A(3, 4), cplx=False)
case("concatenate-real-input-complex-const",
     lambda x: lad.concatenate([x, np.full((1, 4), 1j)]), A(3, 4), cplx=False)
case("negative", lambda x: -x, A(3, 4), f32=True)
case("negative-named", lambda x: lad.negative(x), A(3, 4))
case("positive", lambda x: ops.positive(x) * x, A(3, 4))
case("astype-to-complex", lambda x: ops.astype(x, np.complex128), A(3, 4), cplx=False)
case("astype-widen", lambda x: ops.astype(x, np.complex128), A(3, 4), cplx=False, f32=True)

# matmul
case("matmul-mm", lambda a, b: a @ b, A(3, 4), A(4, 2), f32=True)
case("matmul-mv", lambda a, b: a @ b, A(3, 4), A(4))
case("matmul-vm", lambda a, b: a @ b, A(4), A(4, 2))
case("matmul-vv", lambda a, b: a @ b, A(4), A(4))
case("matmul-batched-broadcast", lambda a, b: lad.matmul(a, b), A(2, 1, 3, 4), A(5, 4, 2))
case("matmul-batched-mv", lambda a, b: a @ b, A(2, 3, 4), A(4))
case("matmul-batched-vm", lambda a, b: a @ b, A(4), A(2, 4, 3))
case("matmul-const-right", lambda a, c: a @ c, A(3, 4), K(4, 2))
case("matmul-const-left", lambda c, a: c @ a, K(2, 3, 4), A(4, 2))
# a product with the operand's own transpose is recorded as the Gram product
case("matmul-gram-right", lambda a: a @ a.T, A(3, 4), f32=True)
case("matmul-gram-left", lambda a: lad.mT(a) @ a, A(2, 3, 4))
case("matmul-gram-in-chain", lambda a, b: (b @ lad.mT(a)) @ (a @ lad.mT(a)), A(3, 4), A(2, 4))
case("matmul-square", lambda a: a @ a, A(3, 3), f32=True)
# a transposed operand that is broadcast against the other's stack (its cotangent is made
# in its layout, then summed over the stack)
case("matmul-transposed-broadcast-left", lambda a, b: lad.mT(a) @ b, A(4, 3), A(2, 4, 5))
case("matmul-transposed-broadcast-right", lambda a, b: a @ lad.mT(b), A(2, 3, 4), A(5, 4))
case("matmul-square-batched", lambda a: lad.matmul(a, a) @ a, A(2, 3, 3))

# elementwise unary
for name, kind, f32 in [("abs", "away", True), ("exp", "any", True), ("expm1", "any", False),
                        ("log", "pos", True), ("log1p", "small", False),
                        ("sqrt", "pos", True), ("square", "any", False),
                        ("sin", "any", False), ("cos", "any", False), ("tan", "small", False),
                        ("tanh", "any", True), ("sinh", "any", False), ("cosh", "any", False),
                        ("arcsin", "small", False), ("arccos", "small", True)]:
    case(name, getattr(lad, name), A(3, 4, kind=kind), f32=f32)
case("sign", lambda x: lad.sign(x) * x, A(3, 4, kind="away"))

# reductions
for name in ("sum", "mean"):
    red = getattr(lad, name)
    for tag, kw in [("all", {}), ("axis1", dict(axis=1)), ("axis-neg", dict(axis=-1)),
                    ("axes-tuple", dict(axis=(0, 2))), ("axes-neg-tuple", dict(axis=(-1, 0))),
                    ("keepdims", dict(axis=(0, -1), keepdims=True)),
                    ("all-keepdims", dict(keepdims=True))]:
        case(f"{name}-{tag}", lambda x, red=red, kw=kw: red(x, **kw), A(2, 3, 4),
             f32=(tag == "axis1"))
for name in ("max", "min"):
    red = getattr(lad, name)
    for tag, kw in [("all", {}), ("axis0", dict(axis=0)), ("axis-neg", dict(axis=-1)),
                    ("axes-tuple", dict(axis=(0, 2))),
                    ("keepdims", dict(axis=1, keepdims=True)),
                    ("all-keepdims", dict(keepdims=True))]:
        case(f"{name}-{tag}", lambda x, red=red, kw=kw: red(x, **kw), A(2, 3, 4), cplx=False,
             f32=(tag == "axis0"))
for name in ("maximum", "minimum"):
    f = getattr(lad, name)
    case(f"{name}-both", f, A(3, 4), A(3, 4), cplx=False, f32=True)
    case(f"{name}-broadcast", f, A(3, 1), A(4), cplx=False)
    case(f"{name}-scalar", lambda x, f=f: f(x, 0.1), A(3, 4), cplx=False)
    case(f"{name}-const-left", f, K(4), A(3, 4), cplx=False)
case("where-both", lambda x, y: lad.where(MASK34, x, y), A(3, 4), A(3, 4), f32=True)
case("where-broadcast", lambda x, y: lad.where(MASK34, x, y), A(3, 1), A(4))
case("where-scalar", lambda x: lad.where(MASK34, x, 0.0), A(3, 4))
case("where-const", lambda x, c: lad.where(MASK34, c, x), A(3, 4), K(3, 4))

# shapes
case("reshape", lambda x: lad.reshape(x, (4, -1)), A(2, 3, 4), f32=True)
case("reshape-method", lambda x: x.reshape(-1, 2, 3), A(2, 3, 4), ops=("reshape",))
case("ravel", lad.ravel, A(2, 3, 4))
case("transpose-default", lad.transpose, A(2, 3, 4))
case("transpose-axes", lambda x: lad.transpose(x, (1, 0, 2)), A(2, 3, 4))
case("transpose-neg-axes", lambda x: lad.transpose(x, (-1, 0, 1)), A(2, 3, 4))
case("transpose-T", lambda x: x.T, A(3, 4), ops=("transpose",))
case("swapaxes", lambda x: lad.swapaxes(x, 0, -1), A(2, 3, 4))
case("moveaxis", lambda x: lad.moveaxis(x, 0, -1), A(2, 3, 4))
case("moveaxis-neg", lambda x: lad.moveaxis(x, -1, 1), A(2, 3, 4))
case("moveaxis-sequences", lambda x: lad.moveaxis(x, [0, -1], [-1, 1]), A(2, 3, 4, 5))
case("mT", lad.mT, A(2, 3, 4))
case("mT-property", lambda x: x.mT, A(3, 4), ops=("mT",))
case("mH", lad.mH, A(2, 3, 4))
case("expand_dims", lambda x: lad.expand_dims(x, 1), A(3, 4))
case("expand_dims-tuple", lambda x: lad.expand_dims(x, (0, -1)), A(3, 4))
case("squeeze", lad.squeeze, A(3, 1, 4, 1))
case("squeeze-axis", lambda x: lad.squeeze(x, -1), A(3, 1, 4, 1))
case("broadcast_to", lambda x: lad.broadcast_to(x, (2, 3, 4)), A(3, 1), f32=True)
case("broadcast_to-same", lambda x: lad.broadcast_to(x, (3, 4)) * x, A(3, 4),
     ops=("broadcast_to",))

# indexing
for tag, idx in [("int", 1), ("ints", (-1, 2)), ("slices", (slice(1, 3), slice(None, None, 2))),
                 ("neg-step", (slice(None, None, -1), slice(3, 0, -2))),
                 ("none-ellipsis", (None, Ellipsis, 1)), ("ellipsis-none", (Ellipsis, None)),
                 ("int-array-repeated", [0, 2, 0, 0]),
                 ("int-array-2d", np.array([[0, 1], [2, 0]])),
                 ("int-arrays-pairs-repeated", ([0, 2, 0], [1, 3, 1])),
                 ("slice-and-array", (slice(None), [3, 0, 3])),
                 ("bool-mask-2d", MASK34), ("bool-mask-rows", MASK3),
                 ("bool-mask-and-slice", (MASK3, slice(1, None)))]:
    case(f"getitem-{tag}", lambda x, idx=idx: x[idx], A(3, 4),
         f32=(tag in ("slices", "int-array-repeated")))

# diagonals and triangles
for tag, a, kw in [("offset0", A(4, 5), {}), ("offset-pos", A(4, 5), dict(offset=2)),
                   ("offset-neg", A(4, 5), dict(offset=-2)),
                   ("axes-0-2", A(3, 4, 5), dict(axis1=0, axis2=2)),
                   ("axes-2-0-offset", A(3, 4, 5), dict(offset=1, axis1=2, axis2=0)),
                   ("axes-last-two-neg", A(2, 3, 4), dict(offset=-1, axis1=-1, axis2=-2)),
                   ("axes-1-2", A(2, 3, 4), dict(axis1=1, axis2=2))]:
    case(f"diagonal-{tag}", lambda x, kw=kw: lad.diagonal(x, **kw), a)
for tag, a, k in [("vector-to-matrix", A(4), 0), ("vector-to-matrix-k-pos", A(3), 2),
                  ("vector-to-matrix-k-neg", A(3), -1), ("matrix-to-vector", A(4, 5), 0),
                  ("matrix-to-vector-k-pos", A(4, 5), 2),
                  ("matrix-to-vector-k-neg", A(4, 5), -1)]:
    case(f"diag-{tag}", lambda x, k=k: lad.diag(x, k), a)
case("trace", lad.trace, A(4, 4), f32=True)
case("trace-offset", lambda x: lad.trace(x, 1), A(3, 5))
case("trace-axes", lambda x: lad.trace(x, -1, 1, 2), A(2, 4, 3))
for name in ("tril", "triu"):
    f = getattr(lad, name)
    case(f"{name}", f, A(4, 4))
    case(f"{name}-k-pos", lambda x, f=f: f(x, 1), A(3, 5))
    case(f"{name}-k-neg-batched", lambda x, f=f: f(x, -1), A(2, 4, 3))

# row permutations (a permutation per matrix of a stack; x broadcast against it)
PERMS = np.array([[2, 0, 1], [1, 2, 0]])
case("permute_rows", lambda x: ops.permute_rows(x, PERMS), A(2, 3, 4), f32=True)
case("permute_rows-broadcast", lambda x: ops.permute_rows(x, PERMS), A(3, 2),
     ops=("permute_rows",))
case("permute_rows-one", lambda x: ops.permute_rows(x, PERMS[1]), A(2, 3, 2),
     ops=("permute_rows",))

# triangle-restricted products (the cotangents of triangular factors); the row-block
# path is exercised in test_fused_kernels.py
case("tri_matmul", lambda a, b: ops.tri_matmul(a, b, k=-1), A(2, 4, 3), A(3, 5))
case("tri_matmul-upper", lambda a, b: ops.tri_matmul(a, b, k=1, lower=False), A(4, 2), A(2, 4),
     ops=("tri_matmul",))
case("split_matmul", lambda p, q, r, s: ops.split_matmul(p, q, r, s, k=0),
     A(4, 2), A(2, 3), A(2, 4, 2), A(2, 3))

# joining
case("concatenate", lambda x, y: lad.concatenate([x, y]), A(2, 3), A(4, 3), f32=True)
case("concatenate-neg-axis", lambda x, y: lad.concatenate((x, y), axis=-1), A(2, 3, 1), A(2, 3, 2))
case("concatenate-axis-none", lambda x, y: lad.concatenate([x, y], axis=None), A(2, 3), A(4))
case("concatenate-const", lambda x, c: lad.concatenate([c, x, c], axis=1), A(2, 3), K(2, 2))
case("stack", lambda x, y: lad.stack([x, y]), A(2, 3), A(2, 3))
case("stack-neg-axis", lambda x, y, z: lad.stack([x, y, z], axis=-1), A(2, 3), A(2, 3), A(2, 3))
case("stack-neg-axis-middle", lambda x, y: lad.stack([x, y], axis=-2), A(2, 3), A(2, 3))

# complex parts
case("real", lad.real, A(3, 4))
case("real-property", lambda x: x.real, A(3, 4), ops=("real",))
case("imag", lambda x: lad.imag(x) + x, A(3, 4))
case("imag-property", lambda x: x.imag, A(3, 4), ops=("imag",), cplx=True)
case("conj", lad.conj, A(3, 4))
case("conj-times-self", lambda x: lad.conj(x) * x, A(3, 4))
case("conjugate-method", lambda x: x.conjugate() @ x.T, A(3, 4), ops=("conj",))

# products
case("outer", lad.outer, A(3), A(4), f32=True)
case("outer-flattens", lad.outer, A(2, 2), A(3))
case("dot-0d", lad.dot, A(), A(3))
case("dot-1d", lad.dot, A(4), A(4))
case("dot-2d-1d", lad.dot, A(3, 4), A(4))
case("dot-2d", lad.dot, A(3, 4), A(4, 2))
case("dot-nd-1d", lad.dot, A(2, 3, 4), A(4))
case("dot-1d-nd", lad.dot, A(3), A(2, 3, 4))
case("dot-nd-nd", lad.dot, A(2, 3, 4), A(5, 4, 2))
case("dot-method", lambda a, b: a.dot(b), A(3, 4), A(4, 2), ops=("dot",))
case("vdot", lad.vdot, A(4), A(4))
case("vdot-flattens", lad.vdot, A(2, 3), A(3, 2))
case("inner-1d", lad.inner, A(4), A(4))
case("inner-scalar", lad.inner, A(), A(2, 3))
case("inner-nd", lad.inner, A(2, 3, 4), A(5, 4))
case("inner-1d-2d", lad.inner, A(4), A(3, 4))
for tag, spec, shapes in [
        ("explicit", "ij,jk->ik", [(3, 4), (4, 2)]),
        ("implicit", "ij,jk", [(3, 4), (4, 2)]),
        ("implicit-transpose", "ji", [(3, 4)]),
        ("ellipsis-explicit", "...ij,...jk->...ik", [(2, 3, 4), (2, 4, 5)]),
        ("ellipsis-broadcast", "...ij,jk->...ik", [(2, 3, 4), (4, 5)]),
        ("ellipsis-implicit", "...ij,...jk", [(2, 3, 4), (4, 5)]),
        ("three-operands", "ij,jk,kl->il", [(2, 3), (3, 4), (4, 2)]),
        ("three-operands-ellipsis", "i...,ij,j->...", [(3, 2), (3, 4), (4,)]),
        ("sum-one-operand", "ij->i", [(3, 4)]),
        ("sum-all", "ij->", [(3, 4)]),
        ("full-contraction", "ij,jk->", [(3, 4), (4, 2)]),
        ("letter-only-in-one", "ijk,jl->il", [(2, 3, 4), (3, 5)]),
        ("outer-product", "i,j->ij", [(3,), (4,)]),
        ("dot", "i,i->", [(4,), (4,)])]:
    case(f"einsum-{tag}", lambda *xs, spec=spec: lad.einsum(spec, *xs),
         *[A(*s) for s in shapes], f32=(tag == "explicit"))

# norms
for tag, shape, kw in [("vector", (5,), {}), ("vector-ord1", (5,), dict(ord=1)),
                       ("vector-ord2", (5,), dict(ord=2)),
                       ("vector-ord-inf", (5,), dict(ord=np.inf)),
                       ("vector-ord-neg-inf", (5,), dict(ord=-np.inf)),
                       ("vector-ord3", (5,), dict(ord=3)),
                       ("fro", (3, 4), dict(ord="fro")),
                       ("flattened", (2, 3, 4), {}),
                       ("axis", (3, 4), dict(axis=1)),
                       ("axis-neg-ord1", (3, 4), dict(ord=1, axis=-2)),
                       ("axis-ord-inf", (3, 4), dict(ord=np.inf, axis=0)),
                       ("axis-ord3-keepdims", (3, 4), dict(ord=3, axis=1, keepdims=True)),
                       ("axes-pair-keepdims", (2, 3, 4), dict(axis=(0, 2), keepdims=True)),
                       ("axes-pair-fro", (2, 3, 4), dict(ord="fro", axis=(-1, 0)))]:
    kind = "away" if kw.get("ord") not in (None, 2, "fro") else "any"
    case(f"norm-{tag}", lambda x, kw=kw: lad.norm(x, **kw), A(*shape, kind=kind),
         f32=(tag in ("vector", "vector-ord1")))

CASE_IDS = [c.id for c in CASES]


def _params():
    for c in CASES:
        dtypes = [F64] + ([C128] if c.cplx else []) + ([F32] if c.f32 else [])
        for dt in dtypes:
            yield pytest.param(c, dt, id=f"{c.id}-{dt.name}", marks=c.marks)


def _bind(c, dtype):
    rng = np.random.default_rng(zlib.crc32(c.id.encode()))
    values = [draw(rng, a, dtype) for a in c.args]
    traced = [i for i, a in enumerate(c.args) if not a.const]

    def f(*xs):
        full = list(values)
        for i, x in zip(traced, xs):
            full[i] = x
        return c.fn(*full)

    return f, [values[i] for i in traced]


def test_case_ids_are_unique():
    assert len(set(CASE_IDS)) == len(CASE_IDS)


@pytest.mark.parametrize("c, dtype", list(_params()))
def test_grads(c, dtype):
    f, args = _bind(c, dtype)
    out = f(*args)                      # the op accepts these inputs on plain arrays
    assert np.all(np.isfinite(out))
    check_grads(f, args, order=2)


# every op in ops.__all__ is either in the table or explicitly not a
# differentiable array op
ALIASES = {"true_divide": "divide", "absolute": "abs", "amax": "max", "amin": "min",
           "conjugate": "conj", "matrix_transpose": "mT"}
NOT_IN_TABLE = {
    "zeros_like": "returns a constant", "ones_like": "returns a constant",
    "fit": "cotangent helper", "unbroadcast": "cotangent helper",
    "asarray_value": "strips tracers",
}


def test_table_covers_every_op():
    covered = {name for c in CASES for name in c.ops}
    for alias, target in ALIASES.items():
        assert getattr(ops, alias) is getattr(ops, target), alias
        if target in covered:
            covered.add(alias)
    covered.update(NOT_IN_TABLE)
    assert set(ops.__all__) - covered == set()
    assert covered - set(ops.__all__) == set()


# -- shapes and dtypes of gradients -----------------------------------------------------

def test_broadcast_add_gradients_have_input_shapes():
    a = np.arange(3.0).reshape(3, 1)
    b = np.arange(4.0).reshape(1, 4)
    ga, gb = lad.grad(lambda a, b: lad.sum((a + b) ** 2), argnums=(0, 1))(a, b)
    assert ga.shape == (3, 1) and gb.shape == (1, 4)
    np.testing.assert_allclose(ga, 2 * (a + b).sum(axis=1, keepdims=True))
    np.testing.assert_allclose(gb, 2 * (a + b).sum(axis=0, keepdims=True))


@pytest.mark.parametrize("loss, const_shape", [
    pytest.param(lambda x, c: lad.real(lad.sum(c * x)), (4,), id="real-of-complex-product"),
    pytest.param(lambda x, c: lad.sum(lad.abs(x + c) ** 2), (4,), id="abs-squared-of-shifted"),
    pytest.param(lambda x, c: lad.real(lad.vdot(c, lad.exp(1j * x))), (4,),
                 id="vdot-with-exp-ix"),
    pytest.param(lambda x, c: lad.norm(c @ x), (3, 4), id="norm-of-complex-matmul"),
])
def test_real_input_with_complex_constants_has_real_gradient(loss, const_shape):
    rng = np.random.default_rng(7)
    x = rng.standard_normal(4)
    c = rng.standard_normal(const_shape) + 1j * rng.standard_normal(const_shape)
    g = lad.grad(lambda x: loss(x, c))(x)
    assert type(g) is np.ndarray and g.dtype == np.float64 and g.shape == x.shape
    # against central differences of the real loss
    h = 1e-6
    fd = np.array([(loss(x + h * e, c) - loss(x - h * e, c)) / (2 * h) for e in np.eye(4)])
    np.testing.assert_allclose(g, np.real(fd), rtol=1e-6, atol=1e-8)


# -- conventions at non-differentiable points ---------------------------------------------
# Finite differences are not valid here: each row states the expected gradient.  The
# JVP along a direction v must agree with it (<grad, v>), so both modes use one convention.

W2 = np.array([1.0, 10.0])      # weights that tell the two rows (or columns) apart
X_TIES = np.array([[1.0, 3.0, 3.0],
                   [2.0, -1.0, 0.5]])
ZERO3 = np.zeros(3)

SUBGRADIENTS = [
    pytest.param(lambda x: lad.max(x), (np.array([[1.0, 3.0, 0.0], [3.0, 2.0, 3.0]]),),
                 (np.array([[0, 1, 0], [1, 0, 1]]) / 3,), id="max-all-three-way-tie"),
    pytest.param(lambda x: lad.sum(W2 * lad.max(x, axis=1)), (X_TIES,),
                 (np.array([[0, 0.5, 0.5], [10, 0, 0]]),), id="max-axis-tie-in-one-row"),
    pytest.param(lambda x: lad.sum(W2[:, None] * lad.max(x.T, axis=0, keepdims=True).T),
                 (X_TIES,), (np.array([[0, 0.5, 0.5], [10, 0, 0]]),),
                 id="max-keepdims-tie"),
    pytest.param(lambda x: lad.sum(W2 * lad.min(x, axis=-1)), (np.array([[2.0, 2.0], [5.0, 1.0]]),),
                 (np.array([[0.5, 0.5], [0, 10]]),), id="min-axis-tie"),
    pytest.param(lambda x: lad.min(x), (np.full((2, 2), 4.0),), (np.full((2, 2), 0.25),),
                 id="min-all-equal"),
    pytest.param(lambda x: lad.norm(x, ord=np.inf), (np.array([-2.0, 1.0, 2.0]),),
                 (np.array([-0.5, 0, 0.5]),), id="norm-inf-tie"),
    pytest.param(lambda x, y: lad.sum(lad.maximum(x, y)),
                 (np.array([1.0, 2.0, 3.0]), np.array([1.0, 0.0, 3.5])),
                 (np.array([0.5, 1, 0]), np.array([0.5, 0, 1])), id="maximum-ties"),
    pytest.param(lambda x, y: lad.sum(lad.minimum(x, y)),
                 (np.array([1.0, 2.0, 3.0]), np.array([1.0, 0.0, 3.5])),
                 (np.array([0.5, 0, 1]), np.array([0.5, 1, 0])), id="minimum-ties"),
    pytest.param(lambda x: lad.sum(lad.maximum(x, 0.0)), (np.array([-1.0, 0.0, 2.0]),),
                 (np.array([0, 0.5, 1]),), id="maximum-relu-at-zero"),
    pytest.param(lambda x, y: lad.sum(W2 * lad.maximum(x, y)),
                 (np.array([[2.0], [1.0]]), np.array([2.0, 1.0])),
                 (np.array([[10.5], [5.0]]), np.array([1.5, 5.0])), id="maximum-broadcast-ties"),
    pytest.param(lambda x: lad.sum(lad.abs(x)), (np.array([0.0, -1.0, 2.0]),),
                 (np.array([0.0, -1.0, 1.0]),), id="abs-at-zero"),
    pytest.param(lambda x: lad.sum(lad.abs(x)), (np.array([0j, 3 + 4j]),),
                 (np.array([0, (3 + 4j) / 5]),), id="abs-complex-at-zero"),
    pytest.param(lambda x: lad.sum(lad.real(lad.sign(x) * (1 - 2j))), (np.zeros(2, complex),),
                 (np.zeros(2, complex),), id="sign-complex-at-zero"),
    pytest.param(lambda x: lad.norm(x), (ZERO3,), (ZERO3,), id="norm-at-zero"),
    pytest.param(lambda x: lad.norm(x, ord=2), (ZERO3,), (ZERO3,), id="norm-ord2-at-zero"),
    pytest.param(lambda x: lad.norm(x, ord=1), (ZERO3,), (ZERO3,), id="norm-ord1-at-zero"),
    pytest.param(lambda x: lad.norm(x, ord=np.inf), (ZERO3,), (ZERO3,), id="norm-inf-at-zero"),
    pytest.param(lambda x: lad.norm(x, ord=-np.inf), (ZERO3,), (ZERO3,),
                 id="norm-neg-inf-at-zero"),
    pytest.param(lambda x: lad.norm(x, ord=3), (ZERO3,), (ZERO3,), id="norm-ord3-at-zero"),
    pytest.param(lambda x: lad.norm(x, "fro"), (np.zeros((2, 3)),), (np.zeros((2, 3)),),
                 id="norm-fro-at-zero"),
    pytest.param(lambda x: lad.norm(x), (np.zeros(3, complex),), (np.zeros(3, complex),),
                 id="norm-complex-at-zero"),
    pytest.param(lambda x: lad.sum(W2 * lad.norm(x, axis=1)),
                 (np.array([[0.0, 0.0], [3.0, 4.0]]),), (np.array([[0, 0], [6.0, 8.0]]),),
                 id="norm-axis-one-row-at-zero"),
]


@pytest.mark.parametrize("f, args, expected", SUBGRADIENTS)
def test_subgradient_convention(f, args, expected):
    argnums = tuple(range(len(args)))
    grads = lad.grad(f, argnums=argnums)(*args)
    for g, want, x in zip(grads, expected, args):
        assert g.dtype == x.dtype and g.shape == x.shape
        assert np.all(np.isfinite(g))
        np.testing.assert_allclose(g, want, rtol=1e-14, atol=1e-15)
    rng = np.random.default_rng(3)
    vs = tuple(rng.standard_normal(x.shape) + (1j * rng.standard_normal(x.shape)
                                               if x.dtype.kind == "c" else 0) for x in args)
    _, jv = lad.jvp(f, args, vs)
    want = sum(np.real(np.vdot(e, v)) for e, v in zip(expected, vs))
    assert np.isfinite(jv)
    np.testing.assert_allclose(jv, want, rtol=1e-13, atol=1e-15)


def test_lincomb_is_one_primitive_with_exact_derivatives():
    """Σ cᵢ xᵢ: values, broadcasting, complex and real mixed, both modes to second order."""
    rng = np.random.default_rng(11)
    x = rng.standard_normal((3, 4))
    y = rng.standard_normal((4,)) + 1j * rng.standard_normal((4,))
    z = rng.standard_normal((3, 4))
    got = lad.ops.lincomb((2.0, -0.5, 1.0), x, y, z)
    np.testing.assert_allclose(got, 2.0 * x - 0.5 * y + z)
    assert got.dtype == np.complex128
    check_grads(lambda a, b, c: lad.ops.lincomb((2.0, -0.5, 1.0), a, b, c), (x, y, z), order=2)
    f32 = lad.ops.lincomb((3.0,), x.astype(np.float32))
    assert f32.dtype == np.float32


@pytest.mark.parametrize("batch", [(), (3,)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.complex128])
def test_product_of_transposed_operands(batch, dtype):
    """The product's VJP makes the cotangent of a transposed operand (a = mT(b), b
    C-ordered: ``x @ x.T``) in that operand's layout; the values are the same
    whichever operand is transposed, and a real input's gradient comes back C-ordered."""
    rng = np.random.default_rng(7)

    def draw(*shape):
        x = rng.standard_normal(batch + shape)
        if np.dtype(dtype).kind == "c":
            x = x + 1j * rng.standard_normal(batch + shape)
        return x.astype(dtype)

    a, b, W = draw(4, 3), draw(4, 5), draw(3, 5)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    cases = {   # loss, closed-form gradient in a (the real-valued loss Re Σ W ∘ P)
        "aT @ b": (lambda a: lad.real(lad.sum(W * (lad.mT(a) @ b))),
                   lambda: np.conj(b @ np.swapaxes(W, -1, -2))),
        "bT @ a": (lambda a: lad.real(lad.sum(W2 * (lad.mT(b) @ a))),
                   lambda: np.conj(b @ W2)),
        "a @ aT": (lambda a: lad.real(lad.sum(Wsq * (a @ lad.mT(a)))),
                   lambda: np.conj((Wsq + np.swapaxes(Wsq, -1, -2)) @ a)),
    }
    W2, Wsq = draw(5, 3), draw(4, 4)
    for name, (loss, exact) in cases.items():
        for jitted in (False, True):
            grad = lad.grad(loss)
            g = (lad.jit(grad)(a) if jitted else grad(a))
            np.testing.assert_allclose(g, exact(), rtol=tol, atol=tol, err_msg=name)
            # real operands only: for complex ones the swapped product would need conj
            # copies, so their cotangents keep the layout of the product made
            assert g.flags.c_contiguous or np.dtype(dtype).kind == "c", name


def test_power_two_and_half_are_square_and_sqrt(monkeypatch):
    """x ** 2 and x ** 0.5 (Python-number exponents, float or complex x) are recorded as
    the square and sqrt nodes, with NumPy's values and dtypes; other exponents, integer
    x and a traced exponent stay power."""
    calls = []
    vjp = ops._power.vjp
    monkeypatch.setattr(ops._power, "vjp", lambda *a, **k: calls.append(1) or vjp(*a, **k))
    rng = np.random.default_rng(5)
    for dtype in (np.float32, np.float64, np.complex64, np.complex128):
        x = (rng.uniform(0.5, 2, (3, 4)) + (0.3j if dtype in (np.complex64, np.complex128)
                                            else 0)).astype(dtype)
        for y, node in ((2, ops.square), (2.0, ops.square), (0.5, ops.sqrt)):
            r = ops.power(x, y)
            assert r.dtype == np.power(x, y).dtype == dtype
            np.testing.assert_allclose(r, np.power(x, y), rtol=4 * np.finfo(dtype).eps)
            calls.clear()
            g = lad.grad(lambda x: lad.sum(lad.real(x ** y)))(x)
            assert not calls, (dtype, y)
            d = 2 * x if y != 0.5 else 0.5 / np.sqrt(x)
            np.testing.assert_allclose(g, np.conj(d), rtol=8 * np.finfo(dtype).eps)
    x = rng.uniform(0.5, 2, (3, 4))
    for f in (lambda x: x ** 3, lambda x: x ** 1.5, lambda x: x ** np.float64(2),
              lambda x: lad.power(x, x)):
        calls.clear()
        lad.grad(lambda x: lad.sum(f(x)))(x)
        assert calls == [1]
    i = np.arange(4)
    assert ops.power(i, 2).dtype == np.power(i, 2).dtype and ops.power(i, 0.5).dtype == np.float64
    np.testing.assert_array_equal(ops.power(i, 2), i * i)


def test_square_product_is_recorded_once(monkeypatch):
    """x @ x (the same traced x on both sides) is one node whose VJP sums its two
    products in place; x @ y with y another array of the same values is not."""
    calls = []
    vjp = ops._square.vjp
    monkeypatch.setattr(ops._square, "vjp", lambda *a, **k: calls.append(1) or vjp(*a, **k))
    rng = np.random.default_rng(4)
    x, W = rng.standard_normal((2, 3, 3)), rng.standard_normal((2, 3, 3))
    xh = np.swapaxes(x, -1, -2)
    for loss, squares in [(lambda x: lad.sum(W * (x @ x)), 1),
                          (lambda x: lad.sum(W * (x @ (x + 0.0))), 0),
                          (lambda x: lad.sum(W * ((y := x @ x) @ y)), 2),
                          (lambda x: lad.sum(W * ((x @ x) @ (x @ x))), 2)]:
        calls.clear()
        lad.grad(loss)(x)
        assert len(calls) == squares
    np.testing.assert_allclose(lad.grad(lambda x: lad.sum(W * (x @ x)))(x), W @ xh + xh @ W,
                               rtol=1e-12)


def test_gram_product_is_recorded_once(monkeypatch):
    """x @ x.T and mT(x) @ x (x traced, its transpose taken on the same tape) go through
    the Gram primitive's one-product VJP; a product with another array's transpose, or
    with a transpose that is not of the last two axes, does not."""
    calls = []
    vjp = ops._gram.vjp
    monkeypatch.setattr(ops._gram, "vjp", lambda *a, **k: calls.append(1) or vjp(*a, **k))
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 4))
    W = rng.standard_normal((2, 3, 3))
    for loss, grams in [
            (lambda x: lad.sum(W * (x @ lad.mT(x))), 1),
            (lambda x: lad.sum(W[..., :1, :1] * (lad.mT(x) @ x)), 1),
            (lambda x: lad.sum(W * (x @ lad.mT(x * 1.0))), 0),
            (lambda x: lad.sum(W * (x @ lad.mT(lad.stop_gradient(x)))), 0),
            (lambda x: lad.sum(x[0] @ lad.transpose(x, (0, 2, 1))[1]), 0)]:
        calls.clear()
        lad.grad(loss)(x)
        assert len(calls) == grams
    # the closed form: d/dx Σ W ∘ (x xᵀ) = (W + Wᵀ) x
    np.testing.assert_allclose(lad.grad(lambda x: lad.sum(W * (x @ lad.mT(x))))(x),
                               (W + np.swapaxes(W, -1, -2)) @ x, rtol=1e-12)
