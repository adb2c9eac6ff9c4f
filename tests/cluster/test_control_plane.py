"""The fixture itself: the version it serves, the nodes it made from eks/cluster.yaml, and teardown by pid."""

from __future__ import annotations

from pathlib import Path

import pytest
from kubernetes import client as k8s

from loraxkit.eks.cluster import load_cluster
from loraxkit.eks.nodes import cluster_nodes
from loraxkit.testcluster.cluster import LoopbackCluster
from loraxkit.testcluster.controlplane import KUBE_VERSION, ControlPlane
from loraxkit.testcluster.pytest_plugin import CLUSTER_FILE, NODES_PER_GROUP


def test_serves_kubernetes_1_35(loopback_cluster: LoopbackCluster) -> None:
    assert k8s.VersionApi(loopback_cluster.api).get_code().git_version == KUBE_VERSION


def test_nodes_are_the_eks_groups_with_their_gpus_ready(loopback_cluster: LoopbackCluster) -> None:
    nodes = loopback_cluster.core.list_node().items
    expected = {(n.group, n.allocatable.gpus) for n in cluster_nodes(load_cluster(CLUSTER_FILE))}
    assert len(nodes) == len(expected) * NODES_PER_GROUP
    seen = {
        (
            n.metadata.labels["eks.amazonaws.com/nodegroup"],
            int((n.status.allocatable or {}).get("nvidia.com/gpu", 0)),
        )
        for n in nodes
    }
    assert seen == expected
    assert all(loopback_cluster.node_schedulable(n.metadata.name) for n in nodes)


@pytest.mark.cluster  # a second control plane of its own; needs the tools like the fixture
def test_stop_ends_every_process_it_started(tmp_path: Path) -> None:
    plane = ControlPlane(tmp_path / "plane").start()
    procs = [p.popen for p in plane.processes]
    data = plane.etcd_data
    assert len(procs) == 5 and data is not None and data.exists()
    plane.stop()
    for popen in procs:  # stop() waited for each: exited and reaped, so the pid is gone
        assert popen.returncode is not None and not Path(f"/proc/{popen.pid}").exists(), popen.args[0]
    assert not data.exists(), "etcd's tmpfs data was left behind"
