"""Kernels run over blocks of a large stack (backend._by_blocks): the same numbers as one
pass over the whole stack, for every kernel that is wired to it, and the helper's own
contract (tuples, None, arguments it cannot split).

The thresholds are lowered so that small stacks are split, several blocks and a
remainder, with the block size down to one matrix.
"""

import numpy as np
import pytest

import linalgad as lad
from linalgad import backend, linalg as la
from linalgad.testing import matrices as M


def _whole(monkeypatch):
    monkeypatch.setattr(backend, "_BLOCKED_STACK_BYTES", 1 << 62)


def _blocks(monkeypatch, matrices):
    """Split every stack of more than two matrices into blocks of ``matrices`` (float64
    of order 5: 200 bytes each)."""
    monkeypatch.setattr(backend, "_BLOCKED_STACK_BYTES", 1)
    monkeypatch.setattr(backend, "_BLOCK_BYTES", 200 * matrices)


def _losses(dtype):
    rng = np.random.default_rng(21)
    G = M.random_general(rng, 5, batch=(7,), dtype=dtype)
    c = rng.standard_normal((7, 5))

    def svd(A):
        U, s, Vh = la.svd(A, full_matrices=False)
        return lad.sum(c * s) + lad.sum(lad.real(G * (U @ Vh)))

    def eigh(A):
        w, V = la.eigh(A)
        return lad.sum(c * w) + lad.sum(lad.abs(V * G) ** 2)

    def funmh(A):
        return lad.sum(lad.real(G * la.funmh(A, np.exp)))

    def gfunm(A):
        return lad.sum(lad.real(G * la.generalized_funm(A, np.tanh)))

    # (loss, whether its kernels go by blocks for this dtype: svd's fused cotangent is
    # real only; funmh's Fréchet map goes by blocks for complex stacks; eigh never, a
    # control)
    real = np.dtype(dtype).kind == "f"
    return [(svd, real), (eigh, False), (funmh, not real), (gfunm, True)]


@pytest.mark.parametrize("dtype", [np.float64, np.complex128])
@pytest.mark.parametrize("matrices", [1, 3])
def test_gradients_by_blocks_equal_the_whole_stack(dtype, matrices, monkeypatch):
    rng = np.random.default_rng(20)
    A = M.random_general(rng, 5, batch=(7,), dtype=dtype)
    H = M.random_symmetric(rng, 5, batch=(7,), dtype=dtype)   # Hermitian: eigh, funmh
    T = M.random_general(rng, 5, batch=(7,), dtype=dtype)
    for loss, blocked in _losses(dtype):
        A = H if loss.__name__ in ("eigh", "funmh") else A
        _whole(monkeypatch)
        v0, g0 = lad.value_and_grad(loss)(A)
        h0 = lad.hvp(loss, (A,), (T,))                # the Fréchet maps at second order
        _blocks(monkeypatch, matrices)
        calls = []
        by_blocks = backend._by_blocks

        def spy(kernel, *args):
            calls.append(kernel)
            return by_blocks(kernel, *args)

        monkeypatch.setattr(backend, "_by_blocks", spy)
        v1, g1 = lad.value_and_grad(loss)(A)
        h1 = lad.hvp(loss, (A,), (T,))
        monkeypatch.setattr(backend, "_by_blocks", by_blocks)
        assert bool(calls) == blocked, loss.__name__    # the blocked kernel did run
        np.testing.assert_array_equal(v1, v0)
        np.testing.assert_allclose(g1, g0, rtol=1e-13, atol=1e-13)
        np.testing.assert_allclose(h1, h0, rtol=1e-12, atol=1e-12)


def test_by_blocks_contract(monkeypatch):
    _blocks(monkeypatch, 2)
    rng = np.random.default_rng(22)
    X = rng.standard_normal((3, 5, 5, 5))               # a (3, 5) stack: 15 matrices
    v = rng.standard_normal((3, 5, 5))
    seen = []

    def kernel(x, y, scale, none):
        seen.append(x.shape[0])
        assert none is None and scale == 2.0
        return x * scale + y[..., None], x.sum(axis=-1)

    a, b = backend._by_blocks(kernel, X, v, 2.0, None)
    assert seen == [2] * 7 + [1]                        # blocks of 2 and the remainder
    np.testing.assert_array_equal(a, X * 2.0 + v[..., None])
    np.testing.assert_array_equal(b, X.sum(axis=-1))
    # one array result
    out = backend._by_blocks(lambda x: x + 1, X)
    np.testing.assert_array_equal(out, X + 1)
    # a block whose kernel declines: the whole call declines (the caller falls back)
    assert backend._by_blocks(lambda x: None if x[0, 0, 0] > 9 else x, X + 10) is None
    # an argument without the stack's batch in front: one call on everything
    seen.clear()
    backend._by_blocks(kernel, X, np.zeros((1, 5, 5)), 2.0, None)
    assert seen == [3]
