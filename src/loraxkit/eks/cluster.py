"""A typed view of the parts of an eksctl ClusterConfig that the chart depends on.

Only what the cross-checks need is modelled: node groups (instance types, labels, taints, disk, tags),
Pod Identity associations and add-ons. Schema validity is checked separately (loraxkit.eks.schema).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from loraxkit.eks.instance_types import InstanceType, lookup

# eksctl's defaults when a node group leaves the field out.
DEFAULT_VOLUME_SIZE_GIB = 80
DEFAULT_AMI_FAMILY = "AmazonLinux2023"

INSTANCE_TYPE_LABEL = "node.kubernetes.io/instance-type"
NODEGROUP_LABEL = "eks.amazonaws.com/nodegroup"
ACCELERATOR_LABEL = "k8s.amazonaws.com/accelerator"


class ClusterConfigError(ValueError):
    """The ClusterConfig is not shaped the way the cross-checks can read."""


@dataclass(frozen=True)
class Taint:
    key: str
    value: str
    effect: str

    def __str__(self) -> str:
        return f"{self.key}={self.value}:{self.effect}"


@dataclass(frozen=True)
class NodeVariant:
    """One kind of node a group can start: a group with two instance types yields two variants."""

    group: NodeGroup
    instance: InstanceType
    labels: dict[str, str]

    def describe(self) -> str:
        return f"node group {self.group.name!r} ({self.instance.name})"


@dataclass(frozen=True)
class NodeGroup:
    name: str
    managed: bool
    instance_types: tuple[str, ...]
    labels: dict[str, str]
    taints: tuple[Taint, ...]
    volume_size_gib: int
    ami_family: str
    min_size: int
    desired_size: int
    max_size: int
    tags: dict[str, str]
    propagate_asg_tags: bool
    pre_bootstrap_commands: tuple[str, ...] = ()
    spot: bool = False  # managed groups: eks.amazonaws.com/capacityType=SPOT
    custom_ami: bool = False  # `ami` set: eksctl writes the user data, EKS's maxPods cap does not apply
    max_pods_per_node: int = 0  # eksctl's maxPodsPerNode; 0 = nodeadm's ENI-based figure
    node_repair: bool = False  # managed groups: nodeRepairConfig.enabled

    def instance(self, itype: str) -> InstanceType:
        try:
            return lookup(itype)
        except KeyError as exc:
            raise ClusterConfigError(f"node group {self.name!r}: {exc.args[0]}") from None

    def variants(self) -> list[NodeVariant]:
        """Labels a node really carries: the group's own plus those EKS sets on every node."""
        return [
            NodeVariant(
                self,
                self.instance(itype),
                {
                    **self.labels,
                    INSTANCE_TYPE_LABEL: itype,
                    NODEGROUP_LABEL: self.name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                },
            )
            for itype in self.instance_types
        ]


@dataclass(frozen=True)
class PodIdentity:
    namespace: str
    service_account: str
    statements: tuple[dict[str, Any], ...]
    policy_arns: tuple[str, ...]
    well_known: dict[str, bool]


@dataclass(frozen=True)
class Cluster:
    name: str
    region: str
    version: str
    node_groups: tuple[NodeGroup, ...]
    pod_identities: tuple[PodIdentity, ...]
    addons: dict[str, dict[str, Any]] = field(default_factory=dict)

    def variants(self) -> list[NodeVariant]:
        return [v for g in self.node_groups for v in g.variants()]

    def addon_config(self, name: str) -> dict[str, Any] | None:
        """The add-on's configurationValues as a dict ({} if unset); None when the add-on is absent."""
        addon = self.addons.get(name)
        if addon is None:
            return None
        raw = addon.get("configurationValues") or "{}"
        try:
            parsed = yaml.safe_load(raw)  # JSON is YAML; eksctl accepts both
        except yaml.YAMLError as exc:
            raise ClusterConfigError(f"addons[{name}].configurationValues is not JSON/YAML: {exc}") from exc
        return parsed if isinstance(parsed, dict) else {}


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, list):
        return value
    return [value]


def _instance_types(ng: dict[str, Any], where: str) -> tuple[str, ...]:
    types = [*_as_list(ng.get("instanceType")), *_as_list(ng.get("instanceTypes"))]
    if not types:
        raise ClusterConfigError(
            f"{where}: set instanceType (or instanceTypes); the cross-checks need to know its GPUs and disk"
        )
    return tuple(str(t) for t in types)


def _taints(ng: dict[str, Any], where: str) -> tuple[Taint, ...]:
    raw = ng.get("taints") or []
    if isinstance(raw, dict):  # eksctl also accepts the map form {key: "value:Effect"}
        raw = [
            {"key": k, "value": str(v).split(":")[0], "effect": str(v).split(":")[-1]} for k, v in raw.items()
        ]
    taints = []
    for i, t in enumerate(raw):
        if "key" not in t or "effect" not in t:
            raise ClusterConfigError(f"{where}.taints[{i}]: needs key and effect (e.g. NoSchedule)")
        taints.append(Taint(str(t["key"]), str(t.get("value", "")), str(t["effect"])))
    return tuple(taints)


def _node_group(ng: dict[str, Any], managed: bool, index: int) -> NodeGroup:
    kind = "managedNodeGroups" if managed else "nodeGroups"
    where = f"{kind}[{index}] ({ng.get('name', '?')})"
    if not ng.get("name"):
        raise ClusterConfigError(f"{kind}[{index}]: every node group needs a name")
    return NodeGroup(
        name=str(ng["name"]),
        managed=managed,
        instance_types=_instance_types(ng, where),
        labels={str(k): str(v) for k, v in (ng.get("labels") or {}).items()},
        taints=_taints(ng, where),
        volume_size_gib=int(ng.get("volumeSize", DEFAULT_VOLUME_SIZE_GIB)),
        ami_family=str(ng.get("amiFamily", DEFAULT_AMI_FAMILY)),
        min_size=int(ng.get("minSize", 0)),
        desired_size=int(ng.get("desiredCapacity", ng.get("minSize", 0))),
        max_size=int(ng.get("maxSize", ng.get("desiredCapacity", 0))),
        tags={str(k): str(v) for k, v in (ng.get("tags") or {}).items()},
        propagate_asg_tags=bool(ng.get("propagateASGTags", False)),
        pre_bootstrap_commands=tuple(str(c) for c in ng.get("preBootstrapCommands") or []),
        spot=bool(ng.get("spot", False)),
        custom_ami=bool(ng.get("ami")),
        max_pods_per_node=int(ng.get("maxPodsPerNode") or 0),
        node_repair=bool((ng.get("nodeRepairConfig") or {}).get("enabled", False)),
    )


def _pod_identity(pia: dict[str, Any]) -> PodIdentity:
    policy = pia.get("permissionPolicy") or {}
    return PodIdentity(
        namespace=str(pia.get("namespace", "")),
        service_account=str(pia.get("serviceAccountName", "")),
        statements=tuple(_as_list(policy.get("Statement"))),
        policy_arns=tuple(str(a) for a in pia.get("permissionPolicyARNs") or []),
        well_known={str(k): bool(v) for k, v in (pia.get("wellKnownPolicies") or {}).items()},
    )


def parse_cluster(doc: dict[str, Any]) -> Cluster:
    meta = doc.get("metadata") or {}
    groups = [_node_group(ng, True, i) for i, ng in enumerate(doc.get("managedNodeGroups") or [])]
    groups += [_node_group(ng, False, i) for i, ng in enumerate(doc.get("nodeGroups") or [])]
    return Cluster(
        name=str(meta.get("name", "")),
        region=str(meta.get("region", "")),
        version=str(meta.get("version", "")),
        node_groups=tuple(groups),
        pod_identities=tuple(
            _pod_identity(p) for p in (doc.get("iam") or {}).get("podIdentityAssociations") or []
        ),
        addons={str(a.get("name")): a for a in doc.get("addons") or []},
    )


def load_cluster_doc(path: Path) -> dict[str, Any]:
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ClusterConfigError(f"{path} is not valid YAML; fix it and re-run: {exc}") from None
    if not isinstance(doc, dict):
        raise ClusterConfigError(
            f"{path}: expected an eksctl ClusterConfig mapping, got {type(doc).__name__}"
        )
    return doc


def load_cluster(path: Path) -> Cluster:
    return parse_cluster(load_cluster_doc(path))
