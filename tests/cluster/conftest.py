"""Cluster journeys on the loopback control plane (fixtures from loraxkit.testcluster.pytest_plugin)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from loraxkit.testcluster.cluster import LoopbackCluster


@pytest.fixture
def namespace(loopback_cluster: LoopbackCluster) -> Iterator[str]:
    """`lorax`, the README's namespace; every release in it is uninstalled and the namespace deleted after."""
    name = "lorax"
    yield name
    listed = loopback_cluster.helm("list", "-n", name, "-q", check=False).stdout.split()
    for release in listed:
        loopback_cluster.helm("uninstall", release, "-n", name, "--wait", "--timeout", "2m", check=False)
    loopback_cluster.delete_namespace(name)
