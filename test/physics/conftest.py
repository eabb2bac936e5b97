"""Fixtures of the physics tests: the batch builder and shared analytic backends (one per session)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # test/ for helpers_batches

import helpers_batches  # noqa: E402


@pytest.fixture(scope="session")
def make_batch():
    """``helpers_batches.make_batch``."""
    return helpers_batches.make_batch


@pytest.fixture(scope="session")
def analytic():
    """The analytic backend on the CPU (numba kernel; compiled or loaded from its cache once)."""
    from world_irp_ros.backends.analytic import AnalyticBackend

    return AnalyticBackend("cpu")


@pytest.fixture(scope="session")
def analytic_torch():
    """The analytic backend's torch engine on the CPU (the code path CUDA runs)."""
    from world_irp_ros.backends.analytic import AnalyticBackend

    return AnalyticBackend("cpu", engine="torch", warm=False)
