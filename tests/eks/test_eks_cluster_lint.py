"""Checks beyond eksctl's own: GPU group conventions, autoscaler tags, add-ons and IAM scope.

Each test breaks one thing in a copy of eks/cluster.yaml and expects the problem that names it, at the right
severity: house conventions are warnings; errors are what will not work on EKS.
"""

from __future__ import annotations

from typing import Any

import pytest
from eks_helpers import cluster_of, lorax_identity, node_group

from loraxkit.eks.lint import cluster_problems
from loraxkit.eks.problems import errors


def _problems(doc: dict[str, Any]) -> str:
    return "\n".join(p.message for p in cluster_problems(cluster_of(doc)))


def _errors(doc: dict[str, Any]) -> str:
    return "\n".join(p.message for p in errors(cluster_problems(cluster_of(doc))))


def test_shipped_cluster_has_no_problems(cluster_doc: dict[str, Any]) -> None:
    assert cluster_problems(cluster_of(cluster_doc)) == []


@pytest.mark.parametrize("version", ["1.29", "1.50", "latest", ""])
def test_version_must_be_current(cluster_doc: dict[str, Any], version: str) -> None:
    cluster_doc["metadata"]["version"] = version
    assert "metadata.version" in _problems(cluster_doc)
    assert _errors(cluster_doc) == ""  # eksctl asks EKS which versions exist: only a warning here


@pytest.mark.parametrize("family", ["Ubuntu2204", "Ubuntu2404"])
def test_gpu_group_on_an_ami_without_driver_is_a_warning(cluster_doc: dict[str, Any], family: str) -> None:
    node_group(cluster_doc, "gpu-g5")["amiFamily"] = family
    assert "amiFamily" in _problems(cluster_doc) and _errors(cluster_doc) == ""


def test_bottlerocket_gpu_groups_are_fine(cluster_doc: dict[str, Any]) -> None:
    for name in ("gpu-g5", "gpu-p5"):
        node_group(cluster_doc, name)["amiFamily"] = "Bottlerocket"
    assert cluster_problems(cluster_of(cluster_doc)) == []


def test_gpu_group_needs_the_gpu_taint(cluster_doc: dict[str, Any]) -> None:
    node_group(cluster_doc, "gpu-g6e")["taints"][0]["key"] = "gpu"
    assert "add taint {key: nvidia.com/gpu" in _problems(cluster_doc)


def test_accelerator_label_must_match_the_instance_gpu(cluster_doc: dict[str, Any]) -> None:
    node_group(cluster_doc, "gpu-g5")["instanceType"] = "g6e.2xlarge"  # label still says nvidia-a10g
    assert "'nvidia-a10g' but g6e.2xlarge has 'nvidia-l40s'" in _problems(cluster_doc)


def test_accelerator_label_on_a_cpu_group_is_reported(cluster_doc: dict[str, Any]) -> None:
    node_group(cluster_doc, "gpu-g6e")["instanceType"] = "m6i.2xlarge"  # label still says nvidia-l40s
    assert "'nvidia-l40s' but ['m6i.2xlarge'] have no GPU" in _problems(cluster_doc)


def test_unknown_instance_type_is_reported(cluster_doc: dict[str, Any]) -> None:
    node_group(cluster_doc, "gpu-g5")["instanceType"] = "x9z.mega"
    assert "'x9z.mega' is not in loraxkit.eks.instance_types" in _problems(cluster_doc)


def test_gpu_group_scales_from_zero(cluster_doc: dict[str, Any]) -> None:
    node_group(cluster_doc, "gpu-p5")["minSize"] = 1
    assert "'gpu-p5': minSize is 1" in _problems(cluster_doc)


def test_autoscaler_gpu_tag_must_match_the_instance(cluster_doc: dict[str, Any]) -> None:
    node_group(cluster_doc, "gpu-p4d")["tags"][
        "k8s.io/cluster-autoscaler/node-template/resources/nvidia.com/gpu"
    ] = "4"
    assert "resources/nvidia.com/gpu is '4'; set it to '8'" in _errors(cluster_doc)


def test_autoscaler_label_tag_follows_the_label(cluster_doc: dict[str, Any]) -> None:
    node_group(cluster_doc, "gpu-g5")["labels"]["k8s.amazonaws.com/accelerator"] = "nvidia-a10"
    assert "label/k8s.amazonaws.com/accelerator is 'nvidia-a10g'; set it to 'nvidia-a10'" in _errors(
        cluster_doc
    )


def test_autoscaler_taint_and_disk_tags_follow_the_group(cluster_doc: dict[str, Any]) -> None:
    group = node_group(cluster_doc, "gpu-g6e")
    group["taints"][0]["value"] = "present"
    group["volumeSize"] = 300
    problems = _errors(cluster_doc)
    assert "taint/nvidia.com/gpu is 'true:NoSchedule'; set it to 'present:NoSchedule'" in problems
    assert "resources/ephemeral-storage is '200Gi'; set it to '300Gi'" in problems


def test_managed_groups_need_no_autoscaler_tags(cluster_doc: dict[str, Any]) -> None:
    # cluster-autoscaler derives GPUs from its instance table and labels/taints from DescribeNodegroup.
    for group in cluster_doc["managedNodeGroups"]:
        group.pop("tags", None)
        group.pop("propagateASGTags", None)
    assert cluster_problems(cluster_of(cluster_doc)) == []


def test_self_managed_gpu_group_without_tags_is_warned(cluster_doc: dict[str, Any]) -> None:
    group = node_group(cluster_doc, "gpu-g5")
    cluster_doc["managedNodeGroups"].remove(group)
    group.pop("tags")
    for key in ("propagateASGTags", "nodeRepairConfig"):
        group.pop(key)
    cluster_doc["nodeGroups"] = [group]
    problems = cluster_problems(cluster_of(cluster_doc))
    assert problems and not errors(problems)
    assert "self-managed group without tags.k8s.io/cluster-autoscaler/node-template/label/role" in _problems(
        cluster_doc
    )
    assert "resources/nvidia.com/gpu" not in _problems(cluster_doc)  # CA's instance table has the GPU count


def test_node_monitoring_agent_is_needed_for_gpu_auto_repair(cluster_doc: dict[str, Any]) -> None:
    cluster_doc["addons"] = [a for a in cluster_doc["addons"] if a["name"] != "eks-node-monitoring-agent"]
    assert "eks-node-monitoring-agent" in _problems(cluster_doc)


def test_an_untainted_cpu_group_is_required(cluster_doc: dict[str, Any]) -> None:
    node_group(cluster_doc, "system")["taints"] = [{"key": "dedicated", "value": "x", "effect": "NoSchedule"}]
    assert "add an untainted CPU node group" in _problems(cluster_doc)


@pytest.mark.parametrize(
    "addon", ["vpc-cni", "eks-pod-identity-agent", "aws-ebs-csi-driver", "metrics-server"]
)
def test_required_addons(cluster_doc: dict[str, Any], addon: str) -> None:
    cluster_doc["addons"] = [a for a in cluster_doc["addons"] if a["name"] != addon]
    assert f"add {{name: {addon}}}" in _problems(cluster_doc)


def test_network_policy_enforcement_must_be_on(cluster_doc: dict[str, Any]) -> None:
    next(a for a in cluster_doc["addons"] if a["name"] == "vpc-cni")["configurationValues"] = "{}"
    assert "enableNetworkPolicy" in _problems(cluster_doc)


def test_adapter_policy_must_not_grant_every_bucket(cluster_doc: dict[str, Any]) -> None:
    lorax_identity(cluster_doc)["permissionPolicyARNs"] = ["arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess"]
    assert "AmazonS3ReadOnlyAccess grants every bucket" in _problems(cluster_doc)


@pytest.mark.parametrize("resource", ["*", "arn:aws:s3:::*", "arn:aws:s3:::*/*"])
def test_adapter_policy_resource_names_one_bucket(cluster_doc: dict[str, Any], resource: str) -> None:
    lorax_identity(cluster_doc)["permissionPolicy"]["Statement"][1]["Resource"] = [resource]
    assert "is not scoped to one bucket" in _problems(cluster_doc)


def test_adapter_policy_is_read_only(cluster_doc: dict[str, Any]) -> None:
    lorax_identity(cluster_doc)["permissionPolicy"]["Statement"][1]["Action"] = [
        "s3:GetObject",
        "s3:PutObject",
    ]
    assert "only s3:GetObject and s3:ListBucket are needed" in _problems(cluster_doc)
