"""Shared test configuration.

Hypothesis profiles: "ci" (bounded examples, no deadline, derandomized: the
same examples every run, so CI never flakes) is used when CI is set in the
environment; "dev" otherwise; "thorough" on demand
(HYPOTHESIS_PROFILE=thorough).

GPU tests carry the ``gpu`` marker and skip cleanly when CuPy or a CUDA
device is absent.
"""

import os

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("ci", max_examples=15, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=25, deadline=None)
settings.register_profile("thorough", max_examples=300, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE",
                                     "ci" if os.environ.get("CI") else "dev"))


def _gpu_available():
    try:
        from linalgad.gpu import available
        return available()
    except Exception:
        return False


def pytest_collection_modifyitems(config, items):
    if _gpu_available():
        return
    skip = pytest.mark.skip(reason="needs CuPy and a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
