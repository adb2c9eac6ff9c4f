"""Fixtures for the cluster tests: a fresh copy of eks/cluster.yaml per test, and eksctl's own validator."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from eks_helpers import shipped_doc

from loraxkit.eks.eksctl_validate import BUILD_HINT, TOOL, validator_binary


@pytest.fixture
def cluster_doc() -> dict[str, Any]:
    """eks/cluster.yaml as shipped; each test gets its own copy to mutate."""
    return shipped_doc()


@pytest.fixture(scope="session")
def eksctl_binary() -> Path:
    """go/eksctl-validate, built once per machine when Go is there (a cold build takes minutes)."""
    binary = validator_binary()
    if binary is not None:
        return binary
    try:
        from loraxkit import gotools
    except ImportError:  # the Go tools module is not in this tree yet
        pytest.skip(f"go/eksctl-validate is not built and loraxkit.gotools is absent; `{BUILD_HINT}`")
    if gotools.go_binary() is None:
        pytest.skip(
            f"go/eksctl-validate is not built and there is no Go on PATH; install Go, then `{BUILD_HINT}`"
        )
    try:
        gotools.build(TOOL)
    except gotools.GoToolError as exc:
        pytest.fail(f"building go/eksctl-validate failed:\n{exc}", pytrace=False)
    binary = validator_binary()
    if binary is None:
        pytest.fail(
            "go/eksctl-validate was built but loraxkit.gotools.bin_path does not find it", pytrace=False
        )
    return binary
