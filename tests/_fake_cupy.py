"""An emulated CuPy on the CPU, for running the CuPy kernel table without a GPU.

``install(monkeypatch)`` puts modules named ``cupy``, ``cupy.linalg``, ``cupy.cuda``,
``cupyx`` and ``cupyx.scipy.linalg`` into ``sys.modules`` for one test. Their arrays
are :class:`DeviceArray`, a NumPy subclass whose type lives in a module called ``cupy``,
so ``linalgad.backend.kernels_for`` sends them to ``linalgad.gpu.kernels.GPU`` exactly as
it would real CuPy arrays. Every function is NumPy's (or SciPy's) with device arrays
in and out, and — like CuPy — an operation that mixes a device array with a host NumPy
array raises TypeError, so a host array leaking into device code is caught.

From the shell: ``python tests/_fake_cupy.py check --device gpu`` runs linalgad's command
line under the emulation.

What this cannot show: CuPy-specific behaviour (its kernels, cuSOLVER's numerics,
functions CuPy lacks or implements with other signatures). It runs the GPU table's own
Python logic; the real check is ``pytest -m gpu`` on a device.
"""

import contextlib
import sys
import types

import numpy as np
import scipy.linalg


class DeviceArray(np.ndarray):
    """A NumPy array that stands for a CuPy one."""

    def get(self):
        return np.array(self)

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        if any(_foreign(x) for x in inputs):
            return NotImplemented        # as CuPy: let e.g. a linalgad Tracer handle it
        _no_host(inputs + tuple(kwargs.get("out", ())), ufunc.__name__)
        inputs = tuple(_host(x) for x in inputs)
        if "out" in kwargs:
            kwargs["out"] = tuple(_host(o) for o in kwargs["out"])
        return wrap(getattr(ufunc, method)(*inputs, **kwargs))

    def __array_function__(self, func, types, args, kwargs):
        # CuPy implements NumPy's functions for its arrays (np.tril(x) runs cupy.tril)
        args, kwargs = _unwrap_args(args, kwargs, func.__name__)
        return wrap(func(*args, **kwargs))

    def __setitem__(self, key, value):
        _no_host((value,), "__setitem__")
        np.ndarray.__setitem__(self, key, _host(value))


DeviceArray.__module__ = "cupy._core.core"


def _foreign(x):
    """An operand with its own ufunc override (not an array or scalar of ours)."""
    return (not isinstance(x, (np.ndarray, np.generic, int, float, complex, bool))
            and hasattr(type(x), "__array_ufunc__"))


def _host(x):
    return x.view(np.ndarray) if isinstance(x, DeviceArray) else x


def _no_host(values, what):
    for x in values:
        if type(x) is np.ndarray and x.ndim > 0:
            raise TypeError(f"emulated CuPy: a host NumPy array in a device operation ({what})")


def wrap(res):
    if isinstance(res, DeviceArray):
        return res
    if isinstance(res, np.ndarray):
        return res.view(DeviceArray)
    if isinstance(res, np.generic):
        return np.asarray(res).view(DeviceArray)
    if isinstance(res, tuple) and hasattr(res, "_fields"):
        return type(res)(*(wrap(r) for r in res))
    if isinstance(res, (tuple, list)):
        return type(res)(wrap(r) for r in res)
    return res


def _unwrap_args(args, kwargs, what):
    _no_host(tuple(args) + tuple(kwargs.values()), what)
    unwrap = lambda x: (type(x)(_host(v) for v in x) if isinstance(x, (tuple, list))  # noqa: E731
                        else _host(x))
    return [unwrap(a) for a in args], {k: unwrap(v) for k, v in kwargs.items()}


def _device_fn(fn, name):
    def call(*args, **kwargs):
        args, kwargs = _unwrap_args(args, kwargs, name)
        return wrap(fn(*args, **kwargs))
    call.__name__ = name
    return call


class _Namespace(types.ModuleType):
    """A module whose functions are ``source``'s on device arrays."""

    def __init__(self, name, source, **extra):
        super().__init__(name)
        self._source = source
        for k, v in extra.items():
            setattr(self, k, v)

    def __getattr__(self, name):
        value = getattr(self._source, name)
        if callable(value) and not isinstance(value, type):
            value = _device_fn(value, name)
        setattr(self, name, value)
        return value


def _asarray(x, dtype=None, order=None):
    if isinstance(x, DeviceArray) and (dtype is None or x.dtype == dtype):
        return x
    return np.asarray(_host(x), dtype=dtype, order=order).view(DeviceArray)


def _scatter_add(out, idx, g):
    np.add.at(_host(out), idx, _host(g))


def install(monkeypatch):
    """Install the emulation for one test (monkeypatch undoes it)."""
    stream = types.SimpleNamespace(synchronize=lambda: None)
    cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=lambda: 1),
                                 get_current_stream=lambda: stream)
    linalg = _Namespace("cupy.linalg", np.linalg)
    # cupy.lib.stride_tricks.as_strided: a device view sharing the array's memory
    lib = types.SimpleNamespace(stride_tricks=_Namespace("cupy.lib.stride_tricks",
                                                         np.lib.stride_tricks))
    cupy = _Namespace("cupy", np, ndarray=DeviceArray, asarray=_asarray, array=_asarray,
                      asnumpy=lambda x: np.array(_host(x)), linalg=linalg, cuda=cuda, lib=lib)
    sp_linalg = _Namespace("cupyx.scipy.linalg", scipy.linalg)
    cupyx = types.ModuleType("cupyx")
    cupyx.scatter_add = _scatter_add
    cupyx.errstate = lambda **kw: contextlib.nullcontext()
    cupyx.scipy = types.ModuleType("cupyx.scipy")
    cupyx.scipy.linalg = sp_linalg
    for name, mod in (("cupy", cupy), ("cupy.linalg", linalg), ("cupyx", cupyx),
                      ("cupyx.scipy", cupyx.scipy), ("cupyx.scipy.linalg", sp_linalg)):
        monkeypatch.setitem(sys.modules, name, mod)
    # the GPU table binds ``cupy`` at import: import it afresh under the emulation
    for name in [m for m in sys.modules if m.startswith("linalgad.gpu.")]:
        monkeypatch.delitem(sys.modules, name)
    import linalgad.gpu
    monkeypatch.delattr(linalgad.gpu, "kernels", raising=False)
    return cupy


if __name__ == "__main__":
    # python tests/_fake_cupy.py check --device gpu [...]: linalgad's command line with the
    # emulation installed (for the whole registry at order 2, ~3.5 min on one core)
    import pytest

    patch = pytest.MonkeyPatch()
    install(patch)
    from linalgad.__main__ import main
    try:
        sys.exit(main(sys.argv[1:]))
    finally:
        patch.undo()
