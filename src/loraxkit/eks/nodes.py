"""The Kubernetes node each node group of eks/cluster.yaml starts: capacity, EKS allocatable, labels, taints.

This is what kube-scheduler sees for a node of the group, modelled from the components that write it:

* **Capacity**: the instance type's vCPUs, memory and GPUs (loraxkit.eks.instance_types), the root volume as
  ephemeral storage, and `pods` = max pods.
* **Max pods** (nodeadm, awslabs/amazon-eks-ami@81fec2e8 nodeadm/internal/kubelet/eni_max_pods.go:
  calculateStandardMaxPods): ENIs on the default network card x (IPv4 addresses per ENI - 1) + 2, with the ENI
  figures from nodeadm's embedded nodeadm/internal/kubelet/instance-info.jsonl. A managed node group without a
  custom AMI has its user data written by EKS, which caps maxPods at 110 below 30 vCPUs and 250 otherwise (EKS
  user guide, latest/ug/nodes/choosing-instance-type.adoc "How maxPods is determined", awsdocs commit
  3a23761). eksctl's `maxPodsPerNode` replaces the ENI figure (eksctl@99984adb
  pkg/nodebootstrap/al2023.go: (*AL2023).UserData).
* **kube-reserved** (nodeadm config.go: withDefaultReservedResources, getCPUMillicoresToReserve,
  getMemoryMebibytesToReserve): CPU 6% of the first core, 1% of the second, 0.5% of cores 3-4 and 0.25% of
  the rest (integer millicores, each range rounded down); memory 11 MiB x maxPods + 255 MiB; ephemeral-storage
  1 GiB. No system-reserved.
* **Eviction** (nodeadm config.go: defaultKubeletSubConfig, evictionHard): memory.available 100Mi,
  nodefs.available 10%.
  Allocatable = capacity - kube-reserved - eviction threshold (kubelet's node allocatable formula).
* **Bottlerocket** uses the same kube-reserved formulas and eviction thresholds (bottlerocket-os/bottlerocket
  sources/api/schnauzer/src/helpers.rs: kube_reserve_memory, kube_reserve_cpu, "taken from EKS'
  calculations"; read through code search, not pinned to a commit) and the same max-pods figure.
* **Labels**: the group's `labels`; eksctl's alpha.eksctl.io/cluster-name and alpha.eksctl.io/nodegroup-name
  (eksctl@99984adb pkg/apis/eksctl.io/v1alpha5/defaults.go: setDefaultNodeLabels); for managed groups EKS's
  eks.amazonaws.com/nodegroup and eks.amazonaws.com/capacityType (ON_DEMAND, or SPOT with `spot: true`), and
  eks.amazonaws.com/nodegroup-image / sourceLaunchTemplateId / sourceLaunchTemplateVersion whose values are
  only known in AWS; kubelet's kubernetes.io/os, kubernetes.io/arch, kubernetes.io/hostname and their beta.
  forms (kubernetes pkg/kubelet/kubelet_node_status.go: initialNode); the cloud controller's
  node.kubernetes.io/instance-type, topology.kubernetes.io/region and topology.kubernetes.io/zone (plus beta
  forms); nodeadm's nvidia.com/gpu.present=true on NVIDIA instances from Kubernetes 1.35 (nodeadm config.go:
  generateKubeletConfig, labels.go: NvidiaGPULabel).
* **Taints**: the group's taints (eksctl passes them to EKS for managed groups, `--register-with-taints` for
  self-managed ones).
* **nvidia.com/gpu**: the instance's GPU count, advertised only once the NVIDIA device plugin runs on the
  node.

Where this model and a real node differ: a real node's memory capacity is the kernel's MemTotal, a few per
cent below the instance's nominal memory (Karpenter estimates 7.5%: VM_MEMORY_OVERHEAD_PERCENT), and its
ephemeral-storage capacity is the root filesystem, slightly below volumeSize. `memory_overhead_fraction`
lets a caller subtract such a margin; cluster-autoscaler's own node templates use the nominal figures.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from loraxkit.eks.cluster import Cluster, ClusterConfigError, NodeGroup, Taint
from loraxkit.eks.instance_types import InstanceType

MIB = 2**20
GIB = 2**30

# nodeadm/internal/kubelet/instance-info.jsonl@81fec2e8: (defaultMaxENIs, ipv4AddressesPerInterface).
ENI_LIMITS: dict[str, tuple[int, int]] = {
    "g5.xlarge": (4, 15),
    "g5.2xlarge": (4, 15),
    "g5.4xlarge": (8, 30),
    "g5.8xlarge": (8, 30),
    "g5.12xlarge": (15, 50),
    "g5.16xlarge": (8, 30),
    "g5.24xlarge": (15, 50),
    "g5.48xlarge": (7, 50),
    "g6.xlarge": (4, 15),
    "g6.2xlarge": (4, 15),
    "g6.4xlarge": (8, 30),
    "g6.12xlarge": (8, 30),
    "g6e.xlarge": (4, 15),
    "g6e.2xlarge": (4, 15),
    "g6e.4xlarge": (8, 30),
    "g6e.8xlarge": (8, 30),
    "g6e.12xlarge": (10, 30),
    "g6e.16xlarge": (15, 50),
    "g6e.24xlarge": (10, 50),
    "g6e.48xlarge": (10, 50),
    "m6i.large": (3, 10),
    "m6i.xlarge": (4, 15),
    "m6i.2xlarge": (4, 15),
    "p4d.24xlarge": (15, 50),
    "p5.48xlarge": (2, 50),
}

# nodeadm config.go: defaultKubeletSubConfig (evictionHard) and withDefaultReservedResources.
EVICTION_MEMORY_BYTES = 100 * MIB
EVICTION_NODEFS_FRACTION = Decimal("0.10")
KUBE_RESERVED_EPHEMERAL_BYTES = 1 * GIB
# EKS managed node groups (no custom AMI): the cap EKS writes into the node's user data.
MNG_MAX_PODS_SMALL, MNG_MAX_PODS_LARGE, MNG_VCPU_THRESHOLD = 110, 250, 30

GPU_RESOURCE = "nvidia.com/gpu"
GPU_PRESENT_LABEL = "nvidia.com/gpu.present"
CAPACITY_TYPE_LABEL = "eks.amazonaws.com/capacityType"
EKS_NODEGROUP_LABEL = "eks.amazonaws.com/nodegroup"
EKSCTL_CLUSTER_LABEL = "alpha.eksctl.io/cluster-name"
EKSCTL_NODEGROUP_LABEL = "alpha.eksctl.io/nodegroup-name"
# Labels EKS or the cloud controller sets whose value is only known on AWS (the AMI, the launch template, the
# zone and the host name): a selector may name them, but no model can promise their value.
AWS_ONLY_LABELS = (
    "eks.amazonaws.com/nodegroup-image",
    "eks.amazonaws.com/sourceLaunchTemplateId",
    "eks.amazonaws.com/sourceLaunchTemplateVersion",
    "kubernetes.io/hostname",
    "topology.kubernetes.io/zone",
    "failure-domain.beta.kubernetes.io/zone",
    "topology.k8s.aws/zone-id",
)
BOTTLEROCKET_FAMILIES = ("Bottlerocket",)
AL2023_FAMILIES = ("AmazonLinux2023",)


@dataclass(frozen=True)
class Resources:
    """Node resources in base units: millicores, bytes, pod count, GPUs."""

    cpu_millis: int
    memory_bytes: int
    ephemeral_bytes: int
    pods: int
    gpus: int

    def to_k8s(self) -> dict[str, str]:
        """As a Node's status.capacity / status.allocatable (nvidia.com/gpu only when the node has GPUs)."""
        out = {
            "cpu": f"{self.cpu_millis}m",
            "memory": f"{self.memory_bytes // 1024}Ki",
            "ephemeral-storage": f"{self.ephemeral_bytes // 1024}Ki",
            "pods": str(self.pods),
        }
        if self.gpus:
            out[GPU_RESOURCE] = str(self.gpus)
        return out


@dataclass(frozen=True)
class EksNode:
    """One node of a node group with one instance type, as the scheduler sees it once it is Ready."""

    group: str
    instance_type: str
    managed: bool
    ami_family: str
    capacity: Resources
    kube_reserved: Resources  # cpu, memory, ephemeral-storage; pods/gpus are 0
    eviction_memory_bytes: int
    eviction_ephemeral_bytes: int
    allocatable: Resources
    labels: dict[str, str]
    taints: tuple[Taint, ...]
    aws_only_labels: tuple[str, ...] = field(default=AWS_ONLY_LABELS)
    instance_storage_gb: int = 0  # local NVMe (unmounted on AL2023 unless preBootstrapCommands mount it)
    pre_bootstrap_commands: tuple[str, ...] = ()

    def describe(self) -> str:
        return f"node group {self.group!r} ({self.instance_type})"

    def to_k8s_node(self, name: str, zone: str = "") -> dict[str, Any]:
        """A v1 Node object for a test control plane (KWOK): labels, taints, capacity, allocatable.

        `name` becomes kubernetes.io/hostname; `zone` (e.g. "us-east-1a") fills the zone labels, which only
        AWS knows for a real node. The Ready condition is left to whoever runs the node (KWOK sets it).
        """
        labels = dict(self.labels)
        labels["kubernetes.io/hostname"] = name
        if zone:
            labels["topology.kubernetes.io/zone"] = zone
            labels["failure-domain.beta.kubernetes.io/zone"] = zone
        return {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": name, "labels": labels},
            "spec": {"taints": [{"key": t.key, "value": t.value, "effect": t.effect} for t in self.taints]},
            "status": {
                "capacity": self.capacity.to_k8s(),
                "allocatable": self.allocatable.to_k8s(),
                "nodeInfo": {"architecture": labels["kubernetes.io/arch"], "operatingSystem": "linux"},
            },
        }


def standard_max_pods(instance_type: str) -> int:
    """nodeadm's calculateStandardMaxPods: ENIs x (IPv4 per ENI - 1) + 2."""
    try:
        enis, ips = ENI_LIMITS[instance_type]
    except KeyError:
        raise ClusterConfigError(
            f"instance type {instance_type!r} has no ENI figures in loraxkit.eks.nodes.ENI_LIMITS; add its "
            "defaultMaxENIs and ipv4AddressesPerInterface from nodeadm's instance-info.jsonl"
        ) from None
    return enis * (ips - 1) + 2


def max_pods(
    instance: InstanceType, managed: bool, custom_ami: bool = False, max_pods_per_node: int = 0
) -> int:
    """The kubelet's maxPods on a node of this group."""
    pods = max_pods_per_node or standard_max_pods(instance.name)
    if managed and not custom_ami:
        cap = MNG_MAX_PODS_SMALL if instance.vcpus < MNG_VCPU_THRESHOLD else MNG_MAX_PODS_LARGE
        pods = min(pods, cap)
    return pods


def kube_reserved_cpu_millis(vcpus: int) -> int:
    """nodeadm getCPUMillicoresToReserve: 6% / 1% / 0.5% / 0.25% over the core ranges 0-1, 1-2, 2-4, 4+."""
    total = vcpus * 1000
    ranges = (0, 1000, 2000, 4000, total)
    per_ten_thousand = (600, 100, 50, 25)
    reserved = 0
    for i, share in enumerate(per_ten_thousand):
        start, end = ranges[i], ranges[i + 1]
        if total > start:
            reserved += (min(total, end) - start) * share // 10000
    return reserved


def kube_reserved_memory_bytes(pods: int) -> int:
    """nodeadm getMemoryMebibytesToReserve: 11 MiB per pod + 255 MiB."""
    return (11 * pods + 255) * MIB


def _labels(
    group: NodeGroup, instance: InstanceType, cluster_name: str, region: str, version: str
) -> dict[str, str]:
    labels = {
        # kubelet (initialNode) and the cloud controller manager
        "kubernetes.io/os": "linux",
        "beta.kubernetes.io/os": "linux",
        "kubernetes.io/arch": instance.arch,
        "beta.kubernetes.io/arch": instance.arch,
        "node.kubernetes.io/instance-type": instance.name,
        "beta.kubernetes.io/instance-type": instance.name,
    }
    if region:
        labels["topology.kubernetes.io/region"] = region
        labels["failure-domain.beta.kubernetes.io/region"] = region
    if instance.gpu_count and _version_at_least(version, (1, 35)) and group.ami_family in AL2023_FAMILIES:
        labels[GPU_PRESENT_LABEL] = "true"  # nodeadm, NVIDIA PCI device present
    labels[EKSCTL_CLUSTER_LABEL] = cluster_name
    labels[EKSCTL_NODEGROUP_LABEL] = group.name
    if group.managed:
        labels[EKS_NODEGROUP_LABEL] = group.name
        labels[CAPACITY_TYPE_LABEL] = "SPOT" if group.spot else "ON_DEMAND"
    labels.update(group.labels)  # the group's own (eksctl rejects reserved prefixes, so nothing clashes)
    return labels


def _version_at_least(version: str, floor: tuple[int, int]) -> bool:
    try:
        major, minor = (int(p) for p in version.split(".")[:2])
    except ValueError:
        return False
    return (major, minor) >= floor


def node_for(
    group: NodeGroup,
    instance: InstanceType,
    cluster_name: str = "",
    region: str = "",
    version: str = "",
    memory_overhead_fraction: Decimal = Decimal(0),
) -> EksNode:
    """The node a group starts with this instance type (see the module docstring for every source)."""
    pods = max_pods(instance, group.managed, group.custom_ami, group.max_pods_per_node)
    memory = int(Decimal(instance.memory_gib * GIB) * (1 - memory_overhead_fraction))
    disk = group.volume_size_gib * GIB
    capacity = Resources(instance.vcpus * 1000, memory, disk, pods, instance.gpu_count)
    reserved = Resources(
        kube_reserved_cpu_millis(instance.vcpus),
        kube_reserved_memory_bytes(pods),
        KUBE_RESERVED_EPHEMERAL_BYTES,
        0,
        0,
    )
    eviction_disk = int(Decimal(disk) * EVICTION_NODEFS_FRACTION)
    allocatable = Resources(
        capacity.cpu_millis - reserved.cpu_millis,
        capacity.memory_bytes - reserved.memory_bytes - EVICTION_MEMORY_BYTES,
        capacity.ephemeral_bytes - reserved.ephemeral_bytes - eviction_disk,
        pods,
        instance.gpu_count,
    )
    return EksNode(
        group=group.name,
        instance_type=instance.name,
        managed=group.managed,
        ami_family=group.ami_family,
        capacity=capacity,
        kube_reserved=reserved,
        eviction_memory_bytes=EVICTION_MEMORY_BYTES,
        eviction_ephemeral_bytes=eviction_disk,
        allocatable=allocatable,
        labels=_labels(group, instance, cluster_name, region, version),
        taints=group.taints,
        instance_storage_gb=instance.instance_storage_gb,
        pre_bootstrap_commands=group.pre_bootstrap_commands,
    )


def group_nodes(
    group: NodeGroup, cluster: Cluster, memory_overhead_fraction: Decimal = Decimal(0)
) -> list[EksNode]:
    """One EksNode per instance type of the group."""
    return [
        node_for(
            group, group.instance(t), cluster.name, cluster.region, cluster.version, memory_overhead_fraction
        )
        for t in group.instance_types
    ]


def cluster_nodes(cluster: Cluster, memory_overhead_fraction: Decimal = Decimal(0)) -> list[EksNode]:
    """Every kind of node the cluster can start, in file order."""
    return [n for g in cluster.node_groups for n in group_nodes(g, cluster, memory_overhead_fraction)]
