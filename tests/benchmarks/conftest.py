"""Fixtures shared by the benchmark tests."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def ray_session():
    """One small local Ray session for every Ray test: 2 CPUs, no dashboard, started once, so the tests stay quick."""
    ray = pytest.importorskip("ray", reason="the ray backend is an optional extra (pip install 'dus[ray]')")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()
