"""Checks eksctl's schema cannot make: free-string fields, GPU group conventions, add-ons and IAM scope.

Each function returns a list of problems; an empty list means the cluster definition is fine.
Every message names the field and says what to change.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from loraxkit.eks.cluster import ACCELERATOR_LABEL, Cluster, NodeGroup, PodIdentity
from loraxkit.eks.instance_types import lookup

# EKS versions in standard support in 2026-11 (each gets ~14 months from its EKS release; 1.33 left in
# 2026-07). 1.35 is the newest that eksctl v0.231 (the schema snapshot this project validates against) knows;
# 1.36 needs a newer eksctl. Bump this tuple when EKS releases a version and eksctl learns it.
CURRENT_EKS_VERSIONS = ("1.34", "1.35", "1.36")
AL2023_FAMILY = ("AmazonLinux2023",)
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")

GPU_TAINT_KEY = "nvidia.com/gpu"
GPU_TAINT = (GPU_TAINT_KEY, "true", "NoSchedule")
CA_TEMPLATE = "k8s.io/cluster-autoscaler/node-template"

REQUIRED_ADDONS = (
    "vpc-cni",
    "coredns",
    "kube-proxy",
    "eks-pod-identity-agent",
    "aws-ebs-csi-driver",
    "metrics-server",
)
S3_READ_ACTIONS = frozenset({"s3:GetObject", "s3:ListBucket"})
BROAD_S3_POLICIES = ("AmazonS3ReadOnlyAccess", "AmazonS3FullAccess")


def version_problems(cluster: Cluster) -> list[str]:
    if cluster.version in CURRENT_EKS_VERSIONS:
        return []
    return [
        f"metadata.version: {cluster.version!r} is not a current EKS version; use one of "
        f'{", ".join(CURRENT_EKS_VERSIONS)} (quote it: version: "1.35")'
    ]


def node_group_problems(group: NodeGroup) -> list[str]:
    where = f"node group {group.name!r}"
    problems = []
    if group.ami_family not in AL2023_FAMILY:
        problems.append(
            f"{where}: amiFamily {group.ami_family!r} is not AmazonLinux2023; AL2 is rejected "
            "from EKS 1.33 on "
            "and Ubuntu AMIs ship no NVIDIA driver"
        )
    problems += [
        f"{where}: taint {t.key} has effect {t.effect!r}; use one of {', '.join(TAINT_EFFECTS)}"
        for t in group.taints
        if t.effect not in TAINT_EFFECTS
    ]
    for itype in group.instance_types:
        try:
            lookup(itype)
        except KeyError as exc:
            problems.append(f"{where}: {exc.args[0]}")
    return problems


def _known(itype: str) -> bool:
    try:
        lookup(itype)
    except KeyError:
        return False  # reported by node_group_problems
    return True


def _gpu_types(group: NodeGroup) -> list[str]:
    return [t for t in group.instance_types if _known(t) and lookup(t).gpu_count]


def gpu_group_problems(group: NodeGroup) -> list[str]:
    """A GPU group must be tainted, labelled with its GPU model and able to scale from zero."""
    gpu_types = _gpu_types(group)
    if not gpu_types:
        label = group.labels.get(ACCELERATOR_LABEL)
        if label is not None and all(_known(t) for t in group.instance_types):
            return [
                f"node group {group.name!r}: labels.{ACCELERATOR_LABEL} is {label!r} but "
                f"{list(group.instance_types)} have no GPU; use a GPU instance type or drop the label"
            ]
        return []
    where = f"GPU node group {group.name!r}"
    problems = []
    if not any((t.key, t.value, t.effect) == GPU_TAINT for t in group.taints):
        problems.append(
            f'{where}: add taint {{key: nvidia.com/gpu, value: "true", effect: NoSchedule}} '
            "(the chart tolerates it; without it CPU pods fill the GPU nodes)"
        )
    labels = {lookup(t).accelerator_label for t in gpu_types}
    if len(labels) > 1:
        problems.append(
            f"{where}: instance types {gpu_types} have different GPUs ({sorted(labels)}); split the group"
        )
    elif group.labels.get(ACCELERATOR_LABEL) not in labels:
        problems.append(
            f"{where}: labels.{ACCELERATOR_LABEL} is {group.labels.get(ACCELERATOR_LABEL)!r} but "
            f"{gpu_types[0]} has {labels.pop()!r}; profiles select GPUs by this label"
        )
    if group.min_size != 0:
        problems.append(f"{where}: minSize is {group.min_size}; use 0 so an idle GPU group costs nothing")
    return problems + autoscaler_tag_problems(group)


def autoscaler_tag_problems(group: NodeGroup) -> list[str]:
    """cluster-autoscaler can only scale a group up from zero nodes if its tags describe the node."""
    where = f"GPU node group {group.name!r}"
    gpus = min(lookup(t).gpu_count for t in _gpu_types(group))
    expected = {f"{CA_TEMPLATE}/label/{k}": v for k, v in group.labels.items()}
    expected |= {f"{CA_TEMPLATE}/taint/{t.key}": f"{t.value}:{t.effect}" for t in group.taints}
    expected[f"{CA_TEMPLATE}/resources/nvidia.com/gpu"] = str(gpus)
    expected[f"{CA_TEMPLATE}/resources/ephemeral-storage"] = f"{group.volume_size_gib}Gi"
    problems = [
        f"{where}: tags.{key} is {group.tags.get(key)!r}; set it to {value!r} so cluster-autoscaler "
        "can scale "
        "the group from zero"
        for key, value in expected.items()
        if group.tags.get(key) != value
    ]
    if group.managed and not group.propagate_asg_tags:
        problems.append(
            f"{where}: set propagateASGTags: true; managed node group tags do not reach "
            "the Auto Scaling group "
            "otherwise, and cluster-autoscaler reads them there"
        )
    return problems


def system_group_problems(cluster: Cluster) -> list[str]:
    if any(not g.taints for g in cluster.node_groups):
        return []
    return [
        "managedNodeGroups: add an untainted CPU node group; add-ons, Prometheus and load generators need one"
    ]


def addon_problems(cluster: Cluster) -> list[str]:
    problems = [
        f"addons: add {{name: {name}}} (the chart or this cluster relies on it)"
        for name in REQUIRED_ADDONS
        if name not in cluster.addons
    ]
    cni = cluster.addon_config("vpc-cni")
    if cni is not None and str(cni.get("enableNetworkPolicy", "false")).lower() != "true":
        problems.append(
            'addons[vpc-cni].configurationValues: set \'{"enableNetworkPolicy": "true"}\'; otherwise the '
            "chart's "
            "NetworkPolicy is accepted and enforced by nothing"
        )
    return problems


def _statement_problems(pia: PodIdentity, index: int, stmt: dict[str, Any]) -> list[str]:
    where = f"iam.podIdentityAssociations ({pia.namespace}/{pia.service_account}) Statement[{index}]"
    actions = stmt.get("Action", [])
    actions = [actions] if isinstance(actions, str) else list(actions)
    resources = stmt.get("Resource", [])
    resources = [resources] if isinstance(resources, str) else list(resources)
    s3_actions = [a for a in actions if str(a).startswith("s3:")]
    if not s3_actions or stmt.get("Effect") != "Allow":
        return []
    problems = []
    if set(s3_actions) - S3_READ_ACTIONS:
        problems.append(
            f"{where}: only s3:GetObject and s3:ListBucket are needed; remove {sorted(s3_actions)}"
        )
    for res in resources:
        bucket = str(res).removeprefix("arn:aws:s3:::").split("/")[0]
        if res == "*" or "*" in bucket or not bucket:
            problems.append(f"{where}: Resource {res!r} is not scoped to one bucket; name the adapter bucket")
    return problems


def pod_identity_problems(cluster: Cluster) -> list[str]:
    problems = []
    if cluster.pod_identities and "eks-pod-identity-agent" not in cluster.addons:
        problems.append("addons: iam.podIdentityAssociations need {name: eks-pod-identity-agent}")
    for pia in cluster.pod_identities:
        problems += [
            f"iam.podIdentityAssociations ({pia.namespace}/{pia.service_account}): {arn} grants every "
            "bucket; "
            "use a permissionPolicy scoped to the adapter bucket"
            for arn in pia.policy_arns
            if arn.rsplit("/", 1)[-1] in BROAD_S3_POLICIES
        ]
        for i, stmt in enumerate(pia.statements):
            problems += _statement_problems(pia, i, stmt)
    return problems


def bucket_grants(pia: PodIdentity) -> dict[str, set[str]]:
    """bucket name -> the S3 read actions this association allows on that bucket."""
    grants: dict[str, set[str]] = {}
    for stmt in pia.statements:
        if stmt.get("Effect") != "Allow":
            continue
        actions = stmt.get("Action", [])
        actions = {actions} if isinstance(actions, str) else set(actions)
        resources = stmt.get("Resource", [])
        for res in [resources] if isinstance(resources, str) else resources:
            arn = str(res).removeprefix("arn:aws:s3:::")
            bucket, _, rest = arn.partition("/")
            for action in actions:
                if action == "s3:ListBucket" and not rest:
                    grants.setdefault(bucket, set()).add(action)
                if action == "s3:GetObject" and rest == "*":
                    grants.setdefault(bucket, set()).add(action)
    return grants


CHECKS: tuple[Callable[[Cluster], list[str]], ...] = (
    version_problems,
    lambda c: [p for g in c.node_groups for p in node_group_problems(g)],
    lambda c: [p for g in c.node_groups for p in gpu_group_problems(g)],
    system_group_problems,
    addon_problems,
    pod_identity_problems,
)


def cluster_problems(cluster: Cluster) -> list[str]:
    """Everything wrong with the cluster definition on its own (the chart is not involved)."""
    return [p for check in CHECKS for p in check(cluster)]
