"""The add-ons docs/eks.md installs with Helm, and what each pinned version needs from the other.

cluster-autoscaler: the image's minor must match the cluster's Kubernetes minor, and the chart's ClusterRole
must grant what that image lists and watches. From 1.35 the image handles Dynamic Resource Allocation objects
unconditionally (kubernetes/autoscaler cluster-autoscaler-1.35.2 cluster-autoscaler/config/flags/flags.go:231
`--enable-dynamic-resource-allocation` "locked to true", :301 exits when it is false) and starts informers for
resource.k8s.io ResourceClaims, ResourceSlices and DeviceClasses (simulator/dynamicresources/provider/
provider.go:35-37). Without RBAC for them its cache never syncs: the pod is Running and never scales. In 1.34
the flag defaults to false (cluster-autoscaler-1.34.2 flags.go:227).

The chart side is each chart tag's templates/clusterrole.yaml (charts/cluster-autoscaler before 9.52,
cluster-autoscaler/charts/cluster-autoscaler from 9.52 on): the first chart that grants resource.k8s.io is
9.54.0.

NVIDIA device plugin: NVIDIA/k8s-device-plugin v0.20.0 (1b826acc) deployments/helm/nvidia-device-plugin/
values.yaml `affinity`: a node runs the plugin when any of three labels says it has an NVIDIA GPU.
"""

from __future__ import annotations

from typing import Any

DRA_RESOURCES = frozenset({"resourceclaims", "resourceslices", "deviceclasses"})

# chart version -> (commit of its tag, appVersion, resource.k8s.io resources its ClusterRole grants)
CA_CHARTS: dict[str, tuple[str, str, frozenset[str]]] = {
    "9.50.1": ("6283c908", "1.33.0", frozenset()),
    "9.51.0": ("9befb31f", "1.33.0", frozenset()),
    "9.52.1": ("804e1898", "1.34.1", frozenset()),
    "9.53.0": ("a2db9eb7", "1.34.2", frozenset()),
    "9.54.0": ("d4a3ca1d", "1.35.0", DRA_RESOURCES),
    "9.55.1": ("4063e804", "1.35.0", DRA_RESOURCES),
    "9.59.0": ("5a0b98e4", "1.35.0", DRA_RESOURCES),
}
# image minor -> resource.k8s.io resources the image lists and watches by default
CA_IMAGE_NEEDS: dict[str, frozenset[str]] = {
    "1.33": frozenset(),
    "1.34": frozenset(),
    "1.35": DRA_RESOURCES,
}

# The NVIDIA device plugin chart's default node affinity (v0.20.0): required terms, ORed.
NVIDIA_PLUGIN_CHART_VERSION = "0.20.0"
NVIDIA_PLUGIN_AFFINITY: dict[str, Any] = {
    "nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [
                {
                    "matchExpressions": [
                        {
                            "key": "feature.node.kubernetes.io/pci-10de.present",
                            "operator": "In",
                            "values": ["true"],
                        }
                    ]
                },
                {
                    "matchExpressions": [
                        {
                            "key": "feature.node.kubernetes.io/cpu-model.vendor_id",
                            "operator": "In",
                            "values": ["NVIDIA"],
                        }
                    ]
                },
                {
                    "matchExpressions": [
                        {"key": "nvidia.com/gpu.present", "operator": "In", "values": ["true"]}
                    ]
                },
            ]
        }
    }
}
NVIDIA_PLUGIN_TOLERATIONS = [
    {"key": "CriticalAddonsOnly", "operator": "Exists"},
    {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
]


def eksctl_installs_nvidia_plugin(doc: dict[str, Any]) -> bool:
    """eksctl@v0.230.0 pkg/eks/tasks.go ClusterTasksForNodeGroups: `eksctl create cluster|nodegroup` installs
    its own NVIDIA device plugin (pkg/addons/assets/nvidia-device-plugin.yaml: a toleration, no node
    selection)
    unless --install-nvidia-plugin=false, when a group with an NVIDIA instance type runs AL2 or AL2023 (the
    default family). Bottlerocket groups never trigger it."""
    from loraxkit.eks.instance_types import INSTANCE_TYPES

    for kind in ("nodeGroups", "managedNodeGroups"):
        for ng in doc.get(kind) or []:
            family = ng.get("amiFamily") or "AmazonLinux2023"
            types = [ng.get("instanceType"), *(ng.get("instanceTypes") or [])]
            nvidia = any(t in INSTANCE_TYPES and INSTANCE_TYPES[t].gpu_count for t in types)
            if nvidia and family in ("AmazonLinux2", "AmazonLinux2023"):
                return True
    return False


def _minor(version: str) -> str:
    return ".".join(version.lstrip("v").split(".")[:2])


def autoscaler_pair_problems(chart: str, image_tag: str, cluster_version: str) -> list[str]:
    """Why this chart + image pair would not autoscale this cluster (empty when it would)."""
    if chart not in CA_CHARTS:
        return [
            f"cluster-autoscaler chart {chart} is not in loraxkit.eks.addons.CA_CHARTS; add its "
            "ClusterRole's resource.k8s.io grants from the chart's templates/clusterrole.yaml at that tag"
        ]
    minor = _minor(image_tag)
    problems = []
    if minor != _minor(cluster_version):
        problems.append(
            f"cluster-autoscaler image {image_tag} is {minor} but the cluster is {cluster_version}; use the "
            "image whose minor matches the cluster's"
        )
    needs = CA_IMAGE_NEEDS.get(minor)
    if needs is None:
        return [
            *problems,
            f"cluster-autoscaler image minor {minor} is not in loraxkit.eks.addons.CA_IMAGE_NEEDS",
        ]
    missing = needs - CA_CHARTS[chart][2]
    if missing:
        first = min((v for v, (_, _, grants) in CA_CHARTS.items() if needs <= grants), key=_version_key)
        problems.append(
            f"cluster-autoscaler chart {chart} grants no RBAC for resource.k8s.io {sorted(missing)}, which "
            f"image {image_tag} watches: its cache never syncs and it never scales; use chart {first}+"
        )
    return problems


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split("."))
