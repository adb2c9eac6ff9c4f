"""Fake Node objects for the loopback control plane, from eks/cluster.yaml.

The node a group starts (capacity, EKS allocatable, labels, taints, `nvidia.com/gpu`) comes from
loraxkit.eks.nodes; this module only names the nodes and hands them to KWOK (annotation
kwok.x-k8s.io/node=fake), which keeps them Ready and runs their pods' lifecycle.
"""

from __future__ import annotations

from typing import Any

from loraxkit.eks.cluster import Cluster
from loraxkit.eks.nodes import EksNode, cluster_nodes
from loraxkit.testcluster.controlplane import FAKE_NODE_ANNOTATION, KUBE_VERSION

ZONES = ("us-east-1a", "us-east-1b", "us-east-1c")


def fake_node(node: EksNode, index: int) -> dict[str, Any]:
    name = f"{node.group}-{node.instance_type.replace('.', '-')}-{index}"
    manifest = node.to_k8s_node(name, zone=ZONES[index % len(ZONES)])
    manifest["metadata"]["annotations"] = {FAKE_NODE_ANNOTATION: "fake"}
    manifest["metadata"]["labels"]["type"] = "kwok"  # KWOK's convention: `kubectl get nodes -L type`
    manifest["status"]["nodeInfo"]["kubeletVersion"] = KUBE_VERSION
    return manifest


def fake_nodes(cluster: Cluster, per_group: int = 1) -> list[dict[str, Any]]:
    """`per_group` nodes of every kind of node the cluster can start (one kind per group and type)."""
    return [fake_node(node, i) for node in cluster_nodes(cluster) for i in range(per_group)]
