"""Checks beyond eksctl's: version, GPU group conventions, autoscaler tags, add-ons and IAM scope.

Each function returns a list of loraxkit.eks.problems.Problem. eksctl's own rules are elsewhere (the Go tool
go/eksctl-validate, or loraxkit.eks.eksctl_rules); what is here is either an error (something that will not
work on EKS: a wrong autoscaler tag, a missing add-on the chart needs) or a warning (a house convention).
Every message names the field and says what to change.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from loraxkit.eks.cluster import ACCELERATOR_LABEL, Cluster, NodeGroup, PodIdentity
from loraxkit.eks.instance_types import lookup
from loraxkit.eks.problems import Problem, error, warning

# EKS versions in standard support in 2026-11 (each gets ~14 months from its EKS release; 1.33 left in
# 2026-07). 1.35 is the newest that eksctl v0.230/0.231 (the schema snapshot this project validates against)
# knows; 1.36 needs a newer eksctl. Bump this tuple when EKS releases a version and eksctl learns it.
CURRENT_EKS_VERSIONS = ("1.34", "1.35", "1.36")
# AMI families whose GPU variant ships the NVIDIA driver and that eksctl supports for GPU groups.
GPU_AMI_FAMILIES = ("AmazonLinux2023", "Bottlerocket")

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
# Detects GPU faults (XID errors, NVML) and reports the NodeConditions managed-group auto-repair acts on.
NODE_MONITORING_ADDON = "eks-node-monitoring-agent"
S3_READ_ACTIONS = frozenset({"s3:GetObject", "s3:ListBucket"})
BROAD_S3_POLICIES = ("AmazonS3ReadOnlyAccess", "AmazonS3FullAccess")
HOUSE = "house"


def version_problems(cluster: Cluster) -> list[Problem]:
    if cluster.version in CURRENT_EKS_VERSIONS:
        return []
    # eksctl accepts any version EKS's DescribeClusterVersions lists (an AWS call): a warning, not an error.
    return [
        warning(
            HOUSE,
            f"metadata.version: {cluster.version!r} is not a current EKS version; use one of "
            f'{", ".join(CURRENT_EKS_VERSIONS)} (quote it: version: "1.35")',
        )
    ]


def node_group_problems(group: NodeGroup) -> list[Problem]:
    where = f"node group {group.name!r}"
    problems = []
    if _gpu_types(group) and group.ami_family not in GPU_AMI_FAMILIES:
        problems.append(
            warning(
                HOUSE,
                f"{where}: amiFamily {group.ami_family!r} on a GPU group; use AmazonLinux2023 (NVIDIA driver "
                "in the AMI) or Bottlerocket (driver and device plugin in the OS); Ubuntu ships no driver",
            )
        )
    for itype in group.instance_types:
        try:
            lookup(itype)
        except KeyError as exc:
            problems.append(error(HOUSE, f"{where}: {exc.args[0]}"))
    return problems


def _known(itype: str) -> bool:
    try:
        lookup(itype)
    except KeyError:
        return False  # reported by node_group_problems
    return True


def _gpu_types(group: NodeGroup) -> list[str]:
    return [t for t in group.instance_types if _known(t) and lookup(t).gpu_count]


def gpu_group_problems(group: NodeGroup) -> list[Problem]:
    """A GPU group should be tainted, labelled with its GPU model and able to scale from zero."""
    gpu_types = _gpu_types(group)
    if not gpu_types:
        label = group.labels.get(ACCELERATOR_LABEL)
        if label is not None and all(_known(t) for t in group.instance_types):
            return [
                warning(
                    HOUSE,
                    f"node group {group.name!r}: labels.{ACCELERATOR_LABEL} is {label!r} but "
                    f"{list(group.instance_types)} have no GPU; use a GPU instance type or drop the label",
                )
            ]
        return []
    where = f"GPU node group {group.name!r}"
    problems = []
    if not any((t.key, t.value, t.effect) == GPU_TAINT for t in group.taints):
        problems.append(
            warning(
                HOUSE,
                f'{where}: add taint {{key: nvidia.com/gpu, value: "true", effect: NoSchedule}} '
                "(the chart tolerates it; without it CPU pods fill the GPU nodes)",
            )
        )
    labels = {lookup(t).accelerator_label for t in gpu_types}
    if len(labels) > 1:
        problems.append(
            warning(
                HOUSE,
                f"{where}: instance types {gpu_types} have different GPUs ({sorted(labels)}); split it",
            )
        )
    elif group.labels.get(ACCELERATOR_LABEL) not in labels:
        problems.append(
            warning(
                HOUSE,
                f"{where}: labels.{ACCELERATOR_LABEL} is {group.labels.get(ACCELERATOR_LABEL)!r} but "
                f"{gpu_types[0]} has {labels.pop()!r}; profiles select GPUs by this label",
            )
        )
    if group.min_size != 0:
        problems.append(
            warning(HOUSE, f"{where}: minSize is {group.min_size}; use 0 so an idle GPU group costs nothing")
        )
    return problems + autoscaler_tag_problems(group)


def autoscaler_tag_problems(group: NodeGroup) -> list[Problem]:
    """cluster-autoscaler's view of an empty group, from kubernetes/autoscaler cluster-autoscaler-1.35.2
    cloudprovider/aws/aws_manager.go: buildNodeFromTemplate.

    It takes vCPUs, memory and nvidia.com/gpu from its own instance table (ec2_instance_types.go), so no GPU
    tag is needed. For a managed group it also reads the group's labels, taints and tags from EKS's
    DescribeNodegroup (eksctl's autoScaler policy grants eks:DescribeNodegroup, pkg/cfn/builder/statement.go:
    autoScalerStatements), so label and taint tags are optional there. A self-managed group has only its ASG
    tags. A tag that IS set wins over what CA derives (joinNodeLabelsChoosingUserValuesOverAPIValues), so a
    tag     that disagrees with the group misleads the autoscaler: an error.
    """
    where = f"GPU node group {group.name!r}"
    gpus = min(lookup(t).gpu_count for t in _gpu_types(group))
    expected = {f"{CA_TEMPLATE}/label/{k}": v for k, v in group.labels.items()}
    expected |= {f"{CA_TEMPLATE}/taint/{t.key}": f"{t.value}:{t.effect}" for t in group.taints}
    expected[f"{CA_TEMPLATE}/resources/nvidia.com/gpu"] = str(gpus)
    expected[f"{CA_TEMPLATE}/resources/ephemeral-storage"] = f"{group.volume_size_gib}Gi"
    problems = [
        error(
            "cluster-autoscaler",
            f"{where}: tags.{key} is {group.tags[key]!r}; set it to {value!r} or remove it "
            "(cluster-autoscaler "
            "trusts this tag over the group when it scales from zero)",
        )
        for key, value in expected.items()
        if key in group.tags and group.tags[key] != value
    ]
    if not group.managed:
        derived = (f"{CA_TEMPLATE}/resources/", "")  # resources come from CA's instance table
        problems += [
            warning(
                "cluster-autoscaler",
                f"{where}: self-managed group without tags.{key}: {value!r}; cluster-autoscaler only learns "
                "labels and taints of an empty self-managed group from its ASG tags",
            )
            for key, value in expected.items()
            if key not in group.tags and not key.startswith(derived[0])
        ]
    return problems


def system_group_problems(cluster: Cluster) -> list[Problem]:
    if any(not g.taints for g in cluster.node_groups):
        return []
    return [
        warning(
            HOUSE,
            "managedNodeGroups: add an untainted CPU node group; add-ons, Prometheus and load generators "
            "need one",
        )
    ]


def addon_problems(cluster: Cluster) -> list[Problem]:
    problems = [
        warning(HOUSE, f"addons: add {{name: {name}}} (the chart or this cluster relies on it)")
        for name in REQUIRED_ADDONS
        if name not in cluster.addons
    ]
    has_gpu = any(_gpu_types(g) for g in cluster.node_groups)
    repair = any(g.node_repair for g in cluster.node_groups)
    if has_gpu and repair and NODE_MONITORING_ADDON not in cluster.addons:
        problems.append(
            warning(
                HOUSE,
                f"addons: add {{name: {NODE_MONITORING_ADDON}}}; node auto-repair only sees GPU faults (XID "
                "errors, NVML failures) that the node monitoring agent reports",
            )
        )
    cni = cluster.addon_config("vpc-cni")
    if cni is not None and str(cni.get("enableNetworkPolicy", "false")).lower() != "true":
        problems.append(
            warning(
                HOUSE,
                'addons[vpc-cni].configurationValues: set \'{"enableNetworkPolicy": "true"}\'; otherwise the '
                "chart's NetworkPolicy is accepted and enforced by nothing",
            )
        )
    return problems


def _statement_problems(pia: PodIdentity, index: int, stmt: dict[str, Any]) -> list[Problem]:
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
            warning(
                HOUSE, f"{where}: only s3:GetObject and s3:ListBucket are needed; remove {sorted(s3_actions)}"
            )
        )
    for res in resources:
        bucket = str(res).removeprefix("arn:aws:s3:::").split("/")[0]
        if res == "*" or "*" in bucket or not bucket:
            problems.append(
                warning(
                    HOUSE, f"{where}: Resource {res!r} is not scoped to one bucket; name the adapter bucket"
                )
            )
    return problems


def pod_identity_problems(cluster: Cluster) -> list[Problem]:
    problems = []
    for pia in cluster.pod_identities:
        problems += [
            warning(
                HOUSE,
                f"iam.podIdentityAssociations ({pia.namespace}/{pia.service_account}): {arn} grants every "
                "bucket; use a permissionPolicy scoped to the adapter bucket",
            )
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


CHECKS: tuple[Callable[[Cluster], list[Problem]], ...] = (
    version_problems,
    lambda c: [p for g in c.node_groups for p in node_group_problems(g)],
    lambda c: [p for g in c.node_groups for p in gpu_group_problems(g)],
    system_group_problems,
    addon_problems,
    pod_identity_problems,
)


def cluster_problems(cluster: Cluster) -> list[Problem]:
    """Everything wrong with the cluster definition on its own (the chart is not involved)."""
    return [p for check in CHECKS for p in check(cluster)]
