"""The allocator setting linalgad applies at import (linalgad/_memory.py)."""

import platform
import resource

import numpy as np
import pytest

import linalgad as lad
from linalgad import _memory

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


class Recorder:
    def __init__(self):
        self.calls = []

    def __call__(self, param, value):
        self.calls.append((param, value))
        return 1


@pytest.fixture
def recorder(monkeypatch):
    rec = Recorder()
    monkeypatch.setattr(_memory, "_mallopt", lambda: rec)
    saved = dict(_memory.state)
    yield rec
    _memory.state.clear()
    _memory.state.update(saved)


def test_default_keeps_256_mib_and_serves_blocks_below_32_mib_from_the_heap(recorder):
    state = _memory.configure_from_environment({})
    assert recorder.calls == [(-3, 32 << 20), (-2, 256 << 20)]
    assert state["kept"] == 256 << 20 and state["reason"] == "applied"


@pytest.mark.parametrize("value", ["0", "no", "off", "False"])
def test_opt_out(recorder, value):
    state = _memory.configure_from_environment({"LINALGAD_KEEP_FREED_MEMORY": value})
    assert recorder.calls == [] and state["kept"] is None and "opted out" in state["reason"]


@pytest.mark.parametrize("env", [{"MALLOC_TOP_PAD_": "1000"}, {"MALLOC_TRIM_THRESHOLD_": "1"},
                                 {"MALLOC_MMAP_THRESHOLD_": "1"},
                                 {"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=1"}])
def test_the_users_malloc_settings_win(recorder, env):
    state = _memory.configure_from_environment(env)
    assert recorder.calls == [] and "configures malloc" in state["reason"]


def test_amount_from_the_environment_and_bad_values(recorder):
    _memory.configure_from_environment({"LINALGAD_KEEP_FREED_MEMORY": "1048576"})
    assert recorder.calls[-1] == (-2, 1 << 20)
    n = len(recorder.calls)
    state = _memory.configure_from_environment({"LINALGAD_KEEP_FREED_MEMORY": "lots"})
    assert len(recorder.calls) == n and "not a number" in state["reason"]
    with pytest.raises(ValueError, match="nbytes must be >= 0"):
        lad.keep_freed_memory(-1)


def test_without_glibc_nothing_is_called(monkeypatch):
    monkeypatch.setattr(_memory, "_mallopt", lambda: None)
    saved = dict(_memory.state)
    try:
        assert lad.keep_freed_memory() is False and _memory.state["reason"] == "not glibc"
    finally:
        _memory.state.update(saved)


def _faults_per_round(rounds=8):
    """Minor page faults per round of the pattern that costs: several multi-MB
    temporaries alive together, all freed before the next round."""
    def one_round():
        arrays = [np.ones(3 << 17) for _ in range(4)]      # 4 × 3 MiB, touched
        return sum(float(a[-1]) for a in arrays)
    one_round()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(rounds):
        one_round()
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / rounds


@pytest.mark.skipif(not GLIBC, reason="glibc's mallopt only")
def test_kept_memory_removes_the_page_faults_of_repeated_temporaries():
    """The effect itself, measured: with glibc's prompt trimming every round faults its
    12 MiB in again (about 3,000 pages); with freed memory kept, next to none."""
    saved = dict(_memory.state)
    try:
        assert lad.keep_freed_memory(0) is True
        trimmed = _faults_per_round()
        assert lad.keep_freed_memory() is True
        kept = _faults_per_round()
    finally:
        if saved["kept"]:
            lad.keep_freed_memory(saved["kept"])
        _memory.state.update(saved)
    assert trimmed > 1000, trimmed
    assert kept < 50, kept


def test_constant_array_caches_are_bounded_in_bytes():
    """Triangle weights, their dtype/order variants and triangle masks are kept for reuse;
    bounded by count, a loop over growing orders (a GP on a growing data set) held
    hundreds of MB, and the variants kept evicted weights alive.  Now each cache keeps at
    most ArrayCache.limit bytes and no array above item_limit."""
    import numpy as np
    from linalgad import backend, ops
    caches = (backend._WEIGHTS, backend._VARIANTS, ops._TRI_MASKS)
    for n in range(64, 1100, 24):
        x = np.asfortranarray(np.ones((n, n), dtype=np.float32))
        for lower in (True, False):
            w = backend._tri_weights(n, lower, 2.0, 1.0)
            y = backend._weighted(np, x, w)
            np.testing.assert_array_equal(np.diagonal(y), 1.0)
            assert y[-1, 0] == (2.0 if lower else 0.0)
            ops._tri_mask(n, n, -1, lower)
        for c in caches:
            assert c.nbytes <= c.limit
            assert all(v.nbytes <= c.item_limit for v in c._data.values())
    assert all(not isinstance(v, tuple) for v in backend._VARIANTS._data.values())
