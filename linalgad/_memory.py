"""Keep freed heap memory for reuse instead of handing it back to the OS (glibc only).

Why.  A gradient through a stack of small matrices (10,000 4×4, 1,000 32×32) makes a
handful of temporaries of one to ten MB and frees them before the next call.  glibc's
allocator then trims the top of the heap (or unmaps the blocks), and the next call's
temporaries fault fresh zeroed pages in again: at 10,000 4×4, ``det``'s value and
gradient took 4.2 ms with 1,800 page faults per call in a fresh process, 1.5 ms with
none once freed memory is kept (benchmarks/RESULTS.md, "Allocator").  JAX and PyTorch
avoid the same cost with their own caching allocators; NumPy allocates through malloc,
so the equivalent here is to tell malloc to keep what it frees.

What.  ``mallopt(M_MMAP_THRESHOLD, 32 MiB)`` serves blocks below 32 MiB from the heap
(the largest threshold glibc itself adapts to), and ``mallopt(M_TOP_PAD, 256 MiB)`` keeps
up to 256 MiB of freed memory at the top of the heap when it trims.  The process keeps at
most that much more resident memory after a peak; nothing else changes.  (64 MiB, the
amount until 2026-12-06, still left eig's value and gradient at 1,000 complex 32×32
stacks with 1,800 page faults a call, 4% of its time; it takes 160 MiB to have none.)

When.  Applied once at import on glibc systems, unless the environment opts out
(``LINALGAD_KEEP_FREED_MEMORY=0``) or already configures malloc (``MALLOC_TOP_PAD_``,
``MALLOC_TRIM_THRESHOLD_``, ``MALLOC_MMAP_THRESHOLD_``, or a ``glibc.malloc`` entry in
``GLIBC_TUNABLES``): the user's settings win.  ``LINALGAD_KEEP_FREED_MEMORY=<bytes>``
sets the amount.  :func:`keep_freed_memory` changes it at run time.
"""

from __future__ import annotations

import ctypes
import os
import platform

__all__ = ["keep_freed_memory"]

DEFAULT_KEEP = 256 << 20           # bytes of freed memory the heap keeps (M_TOP_PAD)
SMALL_BLOCK_LIMIT = 32 << 20       # blocks below this come from the heap (M_MMAP_THRESHOLD)
_GLIBC_TOP_PAD = 128 << 10         # glibc's own default M_TOP_PAD
_M_TOP_PAD, _M_MMAP_THRESHOLD = -2, -3
_USER_MALLOC_VARS = ("MALLOC_TOP_PAD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_")

# what linalgad last applied: None (nothing), else the number of bytes kept
state = {"kept": None, "reason": "not configured"}


def _mallopt():
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        return ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return None


def keep_freed_memory(nbytes=DEFAULT_KEEP):
    """Let the C allocator keep up to ``nbytes`` of freed heap memory for reuse.

    Large temporaries are then served from memory the process already has instead
    of freshly faulted pages, which makes gradients through stacks of small matrices
    up to 2.7× faster (see the module docstring).  ``nbytes=0`` restores glibc's
    default of returning freed memory to the OS promptly.  linalgad calls this with
    the default at import (opt out with ``LINALGAD_KEEP_FREED_MEMORY=0``).

    Returns True when applied, False where the C library is not glibc (other
    allocators keep their own caches; nothing to do).
    """
    nbytes = int(nbytes)
    if nbytes < 0:
        raise ValueError(f"keep_freed_memory: nbytes must be >= 0, got {nbytes}")
    mallopt = _mallopt()
    if mallopt is None:
        state.update(kept=None, reason="not glibc")
        return False
    if nbytes == 0:
        ok = mallopt(_M_TOP_PAD, _GLIBC_TOP_PAD)
    else:
        ok = mallopt(_M_MMAP_THRESHOLD, SMALL_BLOCK_LIMIT) and \
            mallopt(_M_TOP_PAD, min(nbytes, 2**31 - 1))
    state.update(kept=nbytes if ok else None,
                 reason="applied" if ok else "mallopt refused the setting")
    return bool(ok)


def configure_from_environment(environ=None):
    """The import-time policy (module docstring).  Returns what it did, as state."""
    env = os.environ if environ is None else environ
    setting = env.get("LINALGAD_KEEP_FREED_MEMORY", "").strip().lower()
    if setting in ("0", "no", "false", "off"):
        state.update(kept=None, reason="opted out (LINALGAD_KEEP_FREED_MEMORY)")
        return state
    if any(v in env for v in _USER_MALLOC_VARS) or \
            "glibc.malloc." in env.get("GLIBC_TUNABLES", ""):
        state.update(kept=None, reason="the environment configures malloc itself")
        return state
    nbytes = DEFAULT_KEEP
    if setting and setting not in ("1", "yes", "true", "on"):
        try:
            nbytes = int(setting)
        except ValueError:
            state.update(kept=None, reason=f"LINALGAD_KEEP_FREED_MEMORY={setting!r} is not "
                                           "a number of bytes; left alone")
            return state
    keep_freed_memory(nbytes)
    return state
