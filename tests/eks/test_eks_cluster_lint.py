"""What eksctl's schema cannot check: free strings, GPU group conventions, add-ons and IAM scope.

Each test breaks one thing in a copy of eks/cluster.yaml and expects the problem that names it.
"""

from __future__ import annotations

from typing import Any

import pytest
from eks_helpers import cluster_of, lorax_identity, node_group

from loraxkit.eks.lint import cluster_problems


def _problems(doc: dict[str, Any]) -> str:
    return "\n".join(cluster_problems(cluster_of(doc)))


def test_shipped_cluster_has_no_problems(cluster_doc: dict[str, Any]) -> None:
    assert cluster_problems(cluster_of(cluster_doc)) == []


@pytest.mark.parametrize("version", ["1.29", "1.50", "latest", ""])
def test_version_must_be_current(cluster_doc: dict[str, Any], version: str) -> None:
    cluster_doc["metadata"]["version"] = version
    assert "metadata.version" in _problems(cluster_doc)


@pytest.mark.parametrize("family", ["AmazonLinux2", "Ubuntu2204", "Bottlerocket"])
def test_ami_family_must_be_al2023(cluster_doc: dict[str, Any], family: str) -> None:
    node_group(cluster_doc, "gpu-g5")["amiFamily"] = family
    assert "amiFamily" in _problems(cluster_doc)


def test_taint_effect_must_be_a_kubernetes_effect(cluster_doc: dict[str, Any]) -> None:
    node_group(cluster_doc, "gpu-g6e")["taints"][0]["effect"] = "NoScheduleX"
    assert "effect 'NoScheduleX'" in _problems(cluster_doc)


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
    assert "resources/nvidia.com/gpu is '4'; set it to '8'" in _problems(cluster_doc)


def test_autoscaler_label_tag_follows_the_label(cluster_doc: dict[str, Any]) -> None:
    node_group(cluster_doc, "gpu-g5")["labels"]["k8s.amazonaws.com/accelerator"] = "nvidia-a10"
    assert "label/k8s.amazonaws.com/accelerator is 'nvidia-a10g'; set it to 'nvidia-a10'" in _problems(
        cluster_doc
    )


def test_autoscaler_taint_and_disk_tags_follow_the_group(cluster_doc: dict[str, Any]) -> None:
    group = node_group(cluster_doc, "gpu-g6e")
    group["taints"][0]["value"] = "present"
    group["volumeSize"] = 300
    problems = _problems(cluster_doc)
    assert "taint/nvidia.com/gpu is 'true:NoSchedule'; set it to 'present:NoSchedule'" in problems
    assert "resources/ephemeral-storage is '200Gi'; set it to '300Gi'" in problems


def test_managed_groups_must_propagate_tags_to_the_asg(cluster_doc: dict[str, Any]) -> None:
    del node_group(cluster_doc, "gpu-g5")["propagateASGTags"]
    assert "set propagateASGTags: true" in _problems(cluster_doc)


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
