"""Fixtures for the cluster tests: a fresh copy of eks/cluster.yaml per test, and eksctl's schema."""

from __future__ import annotations

from typing import Any

import pytest
from eks_helpers import shipped_doc

from loraxkit.eks.schema import SchemaUnavailable, load_eksctl_schema


@pytest.fixture
def cluster_doc() -> dict[str, Any]:
    """eks/cluster.yaml as shipped; each test gets its own copy to mutate."""
    return shipped_doc()


@pytest.fixture(scope="session")
def eksctl_schema() -> dict[str, Any]:
    try:
        return load_eksctl_schema()
    except SchemaUnavailable as exc:
        pytest.skip(str(exc))
