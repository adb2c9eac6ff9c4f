"""The mutation table of docs/eks.md: changes to eks/cluster.yaml or a profile, and what really happens.

Each row was written from a rule of eksctl (file:function at v0.230.0) or of kube-scheduler / EKS (the source
in loraxkit.eks.nodes and loraxkit.eks.crosscheck), not from what `loraxkit eks check` does. Expected:
  "eksctl rejects"  `eksctl create cluster -f` stops before creating anything;
  "Pending"         eksctl creates the cluster, but the profile's pod never schedules;
  "works"           nothing fails: `loraxkit eks check` must not report an error.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eks_helpers import REPO, lorax_identity, node_group

G6E = REPO / "values" / "g6e-l40s-mistral-7b-instruct-bf16.yaml"
P5 = REPO / "values" / "p5-h100-llama3.1-70b-instruct-bf16.yaml"

Apply = Callable[[dict[str, Any]], dict[str, Any] | None]  # mutates the cluster doc; returns profile values


@dataclass(frozen=True)
class Mutation:
    id: str
    change: str
    expected: str
    why: str
    apply: Apply
    profile: Path = G6E


def _set(name: str, **fields: Any) -> Apply:
    def apply(doc: dict[str, Any]) -> None:
        node_group(doc, name).update(fields)

    return apply


def _values(values: dict[str, Any]) -> Apply:
    return lambda doc: values


def _doc(fn: Callable[[dict[str, Any]], Any]) -> Apply:
    def apply(doc: dict[str, Any]) -> None:
        fn(doc)

    return apply


def _label(name: str, key: str, value: str) -> Apply:
    return _doc(lambda doc: node_group(doc, name)["labels"].__setitem__(key, value))


def _gpu_groups(**fields: Any) -> Apply:
    return _doc(lambda doc: [g.update(fields) for g in doc["managedNodeGroups"] if g["name"] != "system"])


def _drop_gpu_tags(doc: dict[str, Any]) -> None:
    for group in doc["managedNodeGroups"]:
        group.get("tags", {}).pop("k8s.io/cluster-autoscaler/node-template/resources/nvidia.com/gpu", None)


def _rename(doc: dict[str, Any]) -> None:
    node_group(doc, "gpu-g5")["name"] = "gpu-g6e"


def _memory(size: str) -> dict[str, Any]:
    return {"resources": {"requests": {"memory": size}, "limits": {"memory": size}}}


def _p5_cpu(cpu: str) -> dict[str, Any]:
    return {"resources": {"requests": {"cpu": cpu}}}


MUTATIONS: tuple[Mutation, ...] = (
    # --- eksctl's own rejections ---
    Mutation(
        "E1",
        "gpu-g6e desiredCapacity 5 (maxSize 4)",
        "eksctl rejects",
        "validation.go ValidateManagedNodeGroup",
        _set("gpu-g6e", desiredCapacity=5),
    ),
    Mutation(
        "E2",
        "system minSize 3 (desiredCapacity 2)",
        "eksctl rejects",
        "validation.go ValidateManagedNodeGroup",
        _set("system", minSize=3),
    ),
    Mutation(
        "E3",
        "availabilityZones: [us-east-1a]",
        "eksctl rejects",
        "validation.go validateAvailabilityZones",
        _doc(lambda d: d.update(availabilityZones=["us-east-1a"])),
    ),
    Mutation(
        "E4",
        "gpu-g5 renamed gpu-g6e (two groups, one name)",
        "eksctl rejects",
        "validation.go ValidateClusterConfig (nameSet.checkUnique)",
        _doc(_rename),
    ),
    Mutation(
        "E5",
        "system label node-role.kubernetes.io/system",
        "eksctl rejects",
        "validation.go validateLabels (reserved prefixes)",
        _label("system", "node-role.kubernetes.io/system", "true"),
    ),
    Mutation(
        "E6",
        "lorax Pod Identity with roleARN and permissionPolicy",
        "eksctl rejects",
        "cmdutils/pod_identity_association.go validatePodIdentityAssociations",
        _doc(lambda d: lorax_identity(d).update(roleARN="arn:aws:iam::111122223333:role/lorax")),
    ),
    Mutation(
        "E7",
        "addons without eks-pod-identity-agent",
        "eksctl rejects",
        "cmdutils/configfile.go NewCreateClusterLoader (ErrPodIdentityAgentNotInstalled)",
        _doc(lambda d: d.update(addons=[a for a in d["addons"] if a["name"] != "eks-pod-identity-agent"])),
    ),
    Mutation(
        "E8",
        "gpu-g5 amiFamily AmazonLinux2 on 1.35",
        "eksctl rejects",
        "defaults.go SetManagedNodeGroupDefaults",
        _set("gpu-g5", amiFamily="AmazonLinux2"),
    ),
    Mutation(
        "E9",
        "gpu-g6e taint effect NoScheduleX",
        "eksctl rejects",
        "validation.go validateTaints (taints.Validate)",
        _doc(lambda d: node_group(d, "gpu-g6e")["taints"][0].update(effect="NoScheduleX")),
    ),
    Mutation(
        "E10",
        "gpu-p5 instanceMarketOptions without capacityReservation",
        "eksctl rejects",
        "validation.go validateNodeGroupBase",
        _set("gpu-p5", instanceMarketOptions={"marketType": "capacity-block"}),
    ),
    # --- pods that stay Pending ---
    Mutation(
        "P1",
        "p5 profile requests 191.5 CPU (192 vCPUs, 550m kube-reserved)",
        "Pending",
        "nodeadm getCPUMillicoresToReserve; NodeResourcesFit",
        _values(_p5_cpu("191.5")),
        P5,
    ),
    Mutation(
        "P2",
        "g6e profile asks for 2 GPUs",
        "Pending",
        "NodeResourcesFit (nvidia.com/gpu)",
        _values({"gpu": {"count": 2}, "server": {"cudaGraphs": False}}),
    ),
    Mutation(
        "P3",
        "gpu-g6e taint key nvidia.com/gpu-only",
        "Pending",
        "TaintToleration",
        _doc(lambda d: node_group(d, "gpu-g6e")["taints"][0].update(key="nvidia.com/gpu-only")),
    ),
    Mutation(
        "P4",
        "gpu-g6e accelerator label nvidia-l40 (profile selects nvidia-l40s)",
        "Pending",
        "NodeAffinity (nodeSelector)",
        _label("gpu-g6e", "k8s.amazonaws.com/accelerator", "nvidia-l40"),
    ),
    Mutation(
        "P5",
        "g6e profile requests 63.1Gi memory (64 GiB node, 63.03 allocatable)",
        "Pending",
        "nodeadm getMemoryMebibytesToReserve + evictionHard; NodeResourcesFit",
        _values(_memory("63.1Gi")),
    ),
    Mutation(
        "P6",
        "g6e model cache 185Gi (requested as ephemeral-storage; 179 GiB allocatable)",
        "Pending",
        "nodeadm kube-reserved 1Gi + nodefs.available 10%; NodeResourcesFit",
        _values({"modelCache": {"emptyDir": {"sizeLimit": "185Gi"}}}),
    ),
    Mutation(
        "P7",
        "g6e profile selects eks.amazonaws.com/capacityType: SPOT",
        "Pending",
        "EKS sets ON_DEMAND on on-demand managed nodes; NodeAffinity",
        _values({"nodeSelector": {"eks.amazonaws.com/capacityType": "SPOT"}}),
    ),
    # --- changes that work ---
    Mutation(
        "W1",
        "g6e profile selects eks.amazonaws.com/capacityType: ON_DEMAND",
        "works",
        "a label EKS sets on managed nodes",
        _values({"nodeSelector": {"eks.amazonaws.com/capacityType": "ON_DEMAND"}}),
    ),
    Mutation(
        "W2",
        "g6e profile selects alpha.eksctl.io/nodegroup-name: gpu-g6e",
        "works",
        "defaults.go setDefaultNodeLabels",
        _values({"nodeSelector": {"alpha.eksctl.io/nodegroup-name": "gpu-g6e"}}),
    ),
    Mutation(
        "W3",
        "every GPU group on Bottlerocket",
        "works",
        "Bottlerocket NVIDIA variants ship driver and device plugin",
        _gpu_groups(amiFamily="Bottlerocket"),
    ),
    Mutation(
        "W4",
        "autoscaler resources/nvidia.com/gpu tags removed",
        "works",
        "cluster-autoscaler aws_manager.go buildNodeFromTemplate (GPU from its instance table)",
        _doc(_drop_gpu_tags),
    ),
    Mutation(
        "W5",
        "g6e /dev/shm 48Gi (requests 20Gi, limit 60Gi)",
        "works",
        "scheduler counts requests only (component-helpers PodRequests)",
        _values({"shm": {"sizeLimit": "48Gi"}, "resources": {"limits": {"memory": "60Gi"}}}),
    ),
    Mutation(
        "W6", "p5 profile requests 191.4 CPU", "works", "191.45 allocatable", _values(_p5_cpu("191.4")), P5
    ),
    Mutation(
        "W7", "g6e profile requests 63Gi memory", "works", "63.03 GiB allocatable", _values(_memory("63Gi"))
    ),
    Mutation(
        "W8",
        "availabilityZones: three zones",
        "works",
        "validation.go validateAvailabilityZones",
        _doc(lambda d: d.update(availabilityZones=["us-east-1a", "us-east-1b", "us-east-1c"])),
    ),
    Mutation(
        "W9",
        "gpu-p5 on a Capacity Block (reservation ID + capacity-block)",
        "works",
        "validation.go validateNodeGroupBase",
        _set(
            "gpu-p5",
            capacityReservation={
                "capacityReservationTarget": {"capacityReservationID": "cr-0123456789abcdef0"}
            },
            instanceMarketOptions={"marketType": "capacity-block"},
        ),
    ),
    Mutation(
        "W10",
        "g6e model cache 170Gi (fits 179 allocatable)",
        "works",
        "NodeResourcesFit; the image on the same disk is a warning only",
        _values({"modelCache": {"emptyDir": {"sizeLimit": "170Gi"}}}),
    ),
)
