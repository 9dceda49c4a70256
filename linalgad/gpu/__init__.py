"""The CuPy backend.

Imported only when a CuPy array reaches a rule (``backend.kernels_for``), so
linalgad works without CuPy installed.  Install with
``pip install 'linalgad[cuda12]'`` or ``'linalgad[cuda13]'``.
"""


def available():
    """True when CuPy imports and sees at least one CUDA device."""
    try:
        import cupy
        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False
