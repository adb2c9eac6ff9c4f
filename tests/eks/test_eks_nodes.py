"""The node model: max pods, kube-reserved, eviction and labels as nodeadm, EKS and eksctl set them."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from eks_helpers import cluster_of, node_group

from loraxkit.eks.cluster import ClusterConfigError
from loraxkit.eks.instance_types import INSTANCE_TYPES, lookup
from loraxkit.eks.nodes import (
    ENI_LIMITS,
    GIB,
    MIB,
    cluster_nodes,
    group_nodes,
    kube_reserved_cpu_millis,
    kube_reserved_memory_bytes,
    max_pods,
    standard_max_pods,
)


# AWS's published ENI-based max pods (EKS user guide / eni-max-pods.txt), an independent check of the formula
# and of the ENI table copied from nodeadm's instance-info.jsonl.
@pytest.mark.parametrize(
    ("itype", "expected"),
    [
        ("m6i.large", 29),
        ("m6i.xlarge", 58),
        ("g5.2xlarge", 58),
        ("g6e.2xlarge", 58),
        ("p4d.24xlarge", 737),
        ("p5.48xlarge", 100),
        ("g5.12xlarge", 737),
    ],
)
def test_standard_max_pods_matches_aws_published_figures(itype: str, expected: int) -> None:
    assert standard_max_pods(itype) == expected


def test_every_instance_type_has_eni_figures() -> None:
    assert set(INSTANCE_TYPES) <= set(ENI_LIMITS)


def test_unknown_eni_figures_say_how_to_fix() -> None:
    with pytest.raises(ClusterConfigError, match=r"instance-info\.jsonl"):
        standard_max_pods("z9.huge")


def test_managed_groups_cap_max_pods_by_vcpus() -> None:
    # <30 vCPUs: 110; otherwise 250 (EKS writes the cap into a managed group's user data).
    assert max_pods(lookup("p4d.24xlarge"), managed=True) == 250  # ENI figure 737
    assert max_pods(lookup("p4d.24xlarge"), managed=False) == 737
    assert max_pods(lookup("p5.48xlarge"), managed=True) == 100  # the ENI figure is below the cap
    assert max_pods(lookup("g5.12xlarge"), managed=True) == 250  # 48 vCPUs
    assert max_pods(lookup("g6e.2xlarge"), managed=True) == 58
    assert max_pods(lookup("p4d.24xlarge"), managed=True, custom_ami=True) == 737
    assert max_pods(lookup("g6e.2xlarge"), managed=False, max_pods_per_node=20) == 20


@pytest.mark.parametrize(
    ("vcpus", "millis"),
    # 6% of core 1, 1% of core 2, 0.5% of cores 3-4, 0.25% above (nodeadm getCPUMillicoresToReserve)
    [(1, 60), (2, 70), (4, 80), (8, 90), (16, 110), (96, 310), (192, 550)],
)
def test_kube_reserved_cpu(vcpus: int, millis: int) -> None:
    assert kube_reserved_cpu_millis(vcpus) == millis


def test_kube_reserved_memory() -> None:
    assert kube_reserved_memory_bytes(58) == 893 * MIB
    assert kube_reserved_memory_bytes(110) == 1465 * MIB


def test_allocatable_is_capacity_minus_reserved_and_eviction(cluster_doc: dict[str, Any]) -> None:
    g6e = next(n for n in cluster_nodes(cluster_of(cluster_doc)) if n.group == "gpu-g6e")
    assert g6e.capacity.cpu_millis == 8000 and g6e.allocatable.cpu_millis == 7910
    assert g6e.allocatable.memory_bytes == 64 * GIB - 893 * MIB - 100 * MIB
    # root volume 200 GiB: kube-reserved 1 GiB and nodefs.available 10% (20 GiB)
    assert g6e.allocatable.ephemeral_bytes == 200 * GIB - 1 * GIB - 20 * GIB
    assert g6e.allocatable.pods == 58 and g6e.allocatable.gpus == 1
    p5 = next(n for n in cluster_nodes(cluster_of(cluster_doc)) if n.group == "gpu-p5")
    assert p5.allocatable.cpu_millis == 192000 - 550
    assert p5.allocatable.memory_bytes == 2048 * GIB - (11 * 100 + 255) * MIB - 100 * MIB


def test_memory_overhead_margin_lowers_capacity(cluster_doc: dict[str, Any]) -> None:
    cluster = cluster_of(cluster_doc)
    group = next(g for g in cluster.node_groups if g.name == "system")
    plain = group_nodes(group, cluster)[0]
    margin = group_nodes(group, cluster, Decimal("0.075"))[0]
    assert margin.capacity.memory_bytes == int(16 * GIB * Decimal("0.925"))
    lost = plain.capacity.memory_bytes - margin.capacity.memory_bytes
    assert plain.allocatable.memory_bytes - margin.allocatable.memory_bytes == lost


def test_labels_eks_eksctl_kubelet_and_nodeadm_set(cluster_doc: dict[str, Any]) -> None:
    node = next(n for n in cluster_nodes(cluster_of(cluster_doc)) if n.group == "gpu-g6e")
    expected = {
        "eks.amazonaws.com/nodegroup": "gpu-g6e",
        "eks.amazonaws.com/capacityType": "ON_DEMAND",
        "alpha.eksctl.io/nodegroup-name": "gpu-g6e",
        "alpha.eksctl.io/cluster-name": "lorax",
        "node.kubernetes.io/instance-type": "g6e.2xlarge",
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "topology.kubernetes.io/region": "us-east-1",
        "nvidia.com/gpu.present": "true",
        "k8s.amazonaws.com/accelerator": "nvidia-l40s",
        "role": "gpu",
    }
    assert expected.items() <= node.labels.items()
    assert "kubernetes.io/hostname" in node.aws_only_labels


def test_spot_and_self_managed_groups(cluster_doc: dict[str, Any]) -> None:
    node_group(cluster_doc, "gpu-g5")["spot"] = True
    del node_group(cluster_doc, "gpu-g5")["labels"]["nvidia.com/gpu.present"]  # nodeadm sets it anyway
    unmanaged = node_group(cluster_doc, "system")
    cluster_doc["managedNodeGroups"].remove(unmanaged)
    cluster_doc["nodeGroups"] = [unmanaged]
    nodes = {n.group: n for n in cluster_nodes(cluster_of(cluster_doc))}
    assert nodes["gpu-g5"].labels["eks.amazonaws.com/capacityType"] == "SPOT"
    assert nodes["gpu-g5"].labels["nvidia.com/gpu.present"] == "true"
    assert "eks.amazonaws.com/nodegroup" not in nodes["system"].labels
    assert "eks.amazonaws.com/capacityType" not in nodes["system"].labels
    assert nodes["system"].labels["alpha.eksctl.io/nodegroup-name"] == "system"
    assert "nvidia.com/gpu.present" not in nodes["system"].labels


def test_gpu_present_label_needs_kubernetes_1_35(cluster_doc: dict[str, Any]) -> None:
    cluster_doc["metadata"]["version"] = "1.34"
    for ng in cluster_doc["managedNodeGroups"]:
        ng.get("labels", {}).pop("nvidia.com/gpu.present", None)
    node = next(n for n in cluster_nodes(cluster_of(cluster_doc)) if n.group == "gpu-g6e")
    assert "nvidia.com/gpu.present" not in node.labels


def test_k8s_node_object(cluster_doc: dict[str, Any]) -> None:
    node = next(n for n in cluster_nodes(cluster_of(cluster_doc)) if n.group == "gpu-p4d")
    obj = node.to_k8s_node("ip-10-0-0-1.ec2.internal", zone="us-east-1a")
    assert obj["metadata"]["labels"]["kubernetes.io/hostname"] == "ip-10-0-0-1.ec2.internal"
    assert obj["metadata"]["labels"]["topology.kubernetes.io/zone"] == "us-east-1a"
    assert obj["spec"]["taints"] == [{"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}]
    assert obj["status"]["capacity"]["nvidia.com/gpu"] == "8"
    assert obj["status"]["allocatable"]["pods"] == "250"
    assert obj["status"]["allocatable"]["cpu"] == "95690m"
    system = next(n for n in cluster_nodes(cluster_of(cluster_doc)) if n.group == "system")
    assert "nvidia.com/gpu" not in system.to_k8s_node("n")["status"]["capacity"]
