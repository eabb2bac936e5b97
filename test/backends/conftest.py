"""Fixtures of the backend tests: the batch builder of ``test/helpers_batches.py``."""
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
