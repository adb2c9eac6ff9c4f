"""Fixtures for the cluster tests: a fresh copy of eks/cluster.yaml per test."""

from __future__ import annotations

from typing import Any

import pytest
from eks_helpers import shipped_doc


@pytest.fixture
def cluster_doc() -> dict[str, Any]:
    """eks/cluster.yaml as shipped; each test gets its own copy to mutate."""
    return shipped_doc()
