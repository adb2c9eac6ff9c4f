"""eksctl's own rules that need no AWS call, ported by hand for users without Go.

`loraxkit eks check` runs eksctl itself (go/eksctl-validate) when that tool is built; these rules are the
fallback, and tests/eks compare their verdict with eksctl's on every mutation of the mutation table where the
tool is built. Every rule cites where eksctl has it, at v0.230.0 (the module the Go tool pins; the schema's
commit 99984adb is 5 commits later and changes no rule ported here):

  V  = pkg/apis/eksctl.io/v1alpha5/validation.go
  D  = pkg/apis/eksctl.io/v1alpha5/defaults.go
  CF = pkg/ctl/cmdutils/configfile.go (NewCreateClusterLoader)
  PI = pkg/ctl/cmdutils/pod_identity_association.go

eksctl stops at its first error; this port reports every one it finds. Not ported (the Go tool runs them):
VPC/subnet/CIDR, IPv6, Outposts, Karpenter, Fargate, access entries, identity providers, secrets encryption,
volume options, SSH, instance selector, kubelet extra config, bottlerocket settings and the add-on rules.
"""

from __future__ import annotations

import re
from typing import Any

from loraxkit.eks.problems import Problem, error, warning

SRC = "eksctl (ported)"

# V: isSupportedAMIFamily / types.go NodeImageFamily* (the two deprecated Windows families are rejected apart)
SUPPORTED_AMI_FAMILIES = (
    "AmazonLinux2023",
    "AmazonLinux2",
    "UbuntuPro2604",
    "Ubuntu2604",
    "UbuntuPro2404",
    "Ubuntu2404",
    "UbuntuPro2204",
    "Ubuntu2204",
    "UbuntuPro2004",
    "Ubuntu2004",
    "Bottlerocket",
    "BottlerocketFips",
    "WindowsServer2019CoreContainer",
    "WindowsServer2019FullContainer",
    "WindowsServer2022CoreContainer",
    "WindowsServer2022FullContainer",
    "WindowsServer2025CoreContainer",
    "WindowsServer2025FullContainer",
)
GPU_DRIVER_FAMILIES = ("AmazonLinux2023", "AmazonLinux2", "Bottlerocket", "BottlerocketFips")
AL2_EOL = (1, 33)  # types.go AmazonLinux2EOLVersion
MIN_ZONES = 2  # vpc.go MinRequiredAvailabilityZones
DEFAULT_NODE_COUNT = 2  # types.go DefaultNodeCount
DEFAULT_MAX_SIZE = 1  # types.go DefaultMaxSize
POD_IDENTITY_AGENT = "eks-pod-identity-agent"
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")

# k8s.io/kubelet pkg/apis/well_known_labels.go (v0.34.1, eksctl's pin): labels a kubelet may set on itself,
# which V validateLabels lets through although their prefix is reserved.
KUBELET_LABELS = frozenset(
    {
        "kubernetes.io/hostname",
        "topology.kubernetes.io/zone",
        "topology.kubernetes.io/region",
        "failure-domain.beta.kubernetes.io/zone",
        "failure-domain.beta.kubernetes.io/region",
        "beta.kubernetes.io/instance-type",
        "node.kubernetes.io/instance-type",
        "kubernetes.io/os",
        "kubernetes.io/arch",
        "beta.kubernetes.io/os",
        "beta.kubernetes.io/arch",
    }
)
KUBELET_LABEL_NAMESPACES = ("kubelet.kubernetes.io", "node.kubernetes.io")

# apimachinery validation.IsQualifiedName / IsValidLabelValue
_NAME = r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_DNS1123_SUBDOMAIN = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"


def _is_qualified_name(key: str) -> bool:
    prefix, _, name = key.rpartition("/")
    if "/" in key and (not prefix or len(prefix) > 253 or not re.fullmatch(_DNS1123_SUBDOMAIN, prefix)):
        return False
    return 0 < len(name) <= 63 and re.fullmatch(_NAME, name) is not None


def _is_label_value(value: str) -> bool:
    return value == "" or (len(value) <= 63 and re.fullmatch(_NAME, value) is not None)


def _is_kubernetes_namespace(namespace: str) -> bool:
    return any(namespace == d or namespace.endswith("." + d) for d in ("kubernetes.io", "k8s.io"))


def _is_kubelet_label(key: str) -> bool:
    namespace = key.split("/")[0] if "/" in key else ""
    return key in KUBELET_LABELS or any(
        namespace == ns or namespace.endswith("." + ns) for ns in KUBELET_LABEL_NAMESPACES
    )


def label_problems(labels: dict[str, Any], path: str) -> list[Problem]:
    """V validateLabels (called from ValidateNodeGroup and ValidateManagedNodeGroup)."""
    problems, reserved = [], []
    for key, value in labels.items():
        key, value = str(key), str(value)
        if key.count("/") > 1:
            problems.append(
                error(SRC, f"{path}.labels: node label key {key!r} can only use one '/' separator")
            )
        elif not _is_qualified_name(key):
            problems.append(error(SRC, f"{path}.labels: label {key!r} is not a valid label key"))
        elif not _is_label_value(value):
            problems.append(error(SRC, f"{path}.labels: label {key!r} has invalid value {value!r}"))
        elif "/" in key and _is_kubernetes_namespace(key.split("/")[0]) and not _is_kubelet_label(key):
            reserved.append(key)
    if reserved:
        problems.append(
            error(
                SRC,
                f"{path}.labels: {sorted(reserved)} are disallowed as they have reserved prefixes "
                "[kubernetes.io/, k8s.io/]; use your own prefix (e.g. example.com/role), or for EKS's own "
                "labels rely on EKS to set them",
            )
        )
    return problems


def taint_problems(taints: Any, path: str) -> list[Problem]:
    """V validateTaints -> k8s.io/kubernetes pkg/util/taints Validate: key, value and effect."""
    if isinstance(taints, dict):
        taints = [
            {"key": k, "value": str(v).split(":")[0], "effect": str(v).split(":")[-1]}
            for k, v in taints.items()
        ]
    problems = []
    for i, taint in enumerate(taints or []):
        key, value, effect = (
            str(taint.get("key", "")),
            str(taint.get("value", "")),
            str(taint.get("effect", "")),
        )
        where = f"{path}.taints[{i}]"
        if not _is_qualified_name(key):
            problems.append(error(SRC, f"{where}: invalid taint key {key!r}"))
        if not _is_label_value(value):
            problems.append(error(SRC, f"{where}: invalid taint value {value!r}"))
        if effect not in TAINT_EFFECTS:
            problems.append(
                error(SRC, f"{where}: invalid taint effect {effect!r}; use one of {TAINT_EFFECTS}")
            )
    return problems


def _version(doc: dict[str, Any]) -> tuple[int, int] | None:
    try:
        major, minor = (int(p) for p in str((doc.get("metadata") or {}).get("version", "")).split(".")[:2])
    except ValueError:
        return None
    return major, minor


def scaling_problems(ng: dict[str, Any], path: str) -> list[Problem]:
    """V ValidateManagedNodeGroup: minSize/desiredCapacity/maxSize, with its defaulting of the unset ones."""
    desired, low, high = ng.get("desiredCapacity"), ng.get("minSize"), ng.get("maxSize")
    if low is None:
        low = DEFAULT_NODE_COUNT if desired is None else desired
    elif desired is not None and desired < low:
        return [
            error(SRC, f"{path}: desiredCapacity {desired} is below minSize {low}; raise desiredCapacity")
        ]
    if high is None:
        high = (low if desired is None else desired) or DEFAULT_MAX_SIZE
    elif desired is not None and desired > high:
        return [error(SRC, f"{path}: desiredCapacity {desired} is above maxSize {high}; raise maxSize")]
    elif high < low:
        return [error(SRC, f"{path}: maxSize {high} is below minSize {low}")]
    return []


def node_group_problems(
    ng: dict[str, Any], path: str, managed: bool, version: tuple[int, int] | None
) -> list[Problem]:
    problems = label_problems(ng.get("labels") or {}, path) + taint_problems(ng.get("taints"), path)
    family = str(ng.get("amiFamily") or "")
    if family and family not in SUPPORTED_AMI_FAMILIES:
        problems.append(
            error(SRC, f"{path}.amiFamily: AMI Family {family} is not supported (V validateNodeGroupBase)")
        )
    if managed and not ng.get("ami") and family == "AmazonLinux2" and version and version >= AL2_EOL:
        problems.append(
            error(
                SRC,
                f"{path}.amiFamily: AmazonLinux2 is not supported from Kubernetes 1.33 (D "
                "SetManagedNodeGroupDefaults); use AmazonLinux2023 or Bottlerocket",
            )
        )
    if ng.get("instanceMarketOptions") and not ng.get("capacityReservation"):
        problems.append(
            error(SRC, f"{path}: instanceMarketOptions cannot be set without capacityReservation")
        )
    reservation = ng.get("capacityReservation") or {}
    if reservation.get("capacityReservationPreference") and reservation.get("capacityReservationTarget"):
        problems.append(
            error(
                SRC,
                f"{path}.capacityReservation: only one of capacityReservationPreference or "
                "capacityReservationTarget may be specified",
            )
        )
    market = (ng.get("instanceMarketOptions") or {}).get("marketType")
    if reservation and market and market != "capacity-block":
        problems.append(
            error(SRC, f"{path}.instanceMarketOptions.marketType: only 'capacity-block' is accepted")
        )
    if (ng.get("maxPodsPerNode") or 0) < 0:
        problems.append(error(SRC, f"{path}.maxPodsPerNode cannot be negative"))
    if ng.get("availabilityZones") and ng.get("subnets"):
        problems.append(error(SRC, f"{path}: only one of subnets or availabilityZones should be set"))
    gpu = _looks_nvidia(ng)
    if gpu and family and family not in GPU_DRIVER_FAMILIES:
        problems.append(
            warning(
                SRC,
                f"{path}: {family} does not ship NVIDIA drivers; eksctl warns (V GPUDriversWarning) "
                "and GPUs stay unusable until you install them",
            )
        )
    if managed:
        problems += scaling_problems(ng, path)
    return problems


def _looks_nvidia(ng: dict[str, Any]) -> bool:
    """eksctl's instanceutils.IsNvidiaInstanceType, for the NVIDIA families this project may use."""
    types = [ng.get("instanceType"), *(ng.get("instanceTypes") or [])]
    return any(
        str(t).split(".")[0] in ("g4dn", "g5", "g6", "g6e", "gr6", "p3", "p4d", "p4de", "p5", "p5e", "p5en")
        for t in types
        if t
    )


def pod_identity_problems(doc: dict[str, Any]) -> list[Problem]:
    """PI validatePodIdentityAssociations (isCreate) and CF's pod identity agent requirement."""
    problems = []
    associations = (doc.get("iam") or {}).get("podIdentityAssociations") or []
    for i, pia in enumerate(associations):
        path = f"iam.podIdentityAssociations[{i}]"
        if not pia.get("namespace"):
            problems.append(error(SRC, f"{path}.namespace must be set"))
        if not pia.get("serviceAccountName"):
            problems.append(error(SRC, f"{path}.serviceAccountName must be set"))
        policies = {
            "permissionPolicy": bool(pia.get("permissionPolicy")),
            "permissionPolicyARNs": bool(pia.get("permissionPolicyARNs")),
            "wellKnownPolicies": any((pia.get("wellKnownPolicies") or {}).values()),
        }
        if not pia.get("roleARN") and not any(policies.values()):
            problems.append(
                error(
                    SRC,
                    f"{path}: set one of roleARN, permissionPolicy, permissionPolicyARNs, wellKnownPolicies",
                )
            )
        if pia.get("roleARN"):
            problems += [
                error(
                    SRC, f"{path}.{name} cannot be specified when {path}.roleARN is set; keep one of the two"
                )
                for name, present in policies.items()
                if present
            ]
        if pia.get("permissionPolicyName") and not pia.get("permissionPolicy"):
            problems.append(error(SRC, f"{path}: permissionPolicyName requires permissionPolicy to be set"))
    addons = doc.get("addons") or []
    auto_apply = bool((doc.get("addonsConfig") or {}).get("autoApplyPodIdentityAssociations"))
    wants_agent = bool(associations) or any(
        auto_apply or a.get("useDefaultPodIdentityAssociations") or a.get("podIdentityAssociations")
        for a in addons
    )
    auto_mode = bool((doc.get("autoModeConfig") or {}).get("enabled"))
    if wants_agent and not auto_mode and not any(a.get("name") == POD_IDENTITY_AGENT for a in addons):
        problems.append(
            error(
                SRC,
                f"addons: Pod Identity associations need the {POD_IDENTITY_AGENT!r} addon; add "
                f"{{name: {POD_IDENTITY_AGENT}}}",
            )
        )
    return problems


# Families whose on-demand capacity is offered in few zones of a region (and often needs a reservation).
SCARCE_FAMILIES = ("p4d", "p4de", "p5", "p5e", "p5en", "p6")


def _instance_types(doc: dict[str, Any]) -> list[str]:
    types = []
    for kind in ("nodeGroups", "managedNodeGroups"):
        for ng in doc.get(kind) or []:
            types += [str(t) for t in [ng.get("instanceType"), *(ng.get("instanceTypes") or [])] if t]
    return list(dict.fromkeys(types))


def zone_problems(doc: dict[str, Any]) -> list[Problem]:
    """What eksctl decides with AWS calls, so no offline tool can run it: zone selection.

    With availabilityZones unset, eksctl@v0.230.0 pkg/az/az.go GetAvailabilityZones keeps only the region's
    zones that offer EVERY instance type of the file (FilterBasedOnAvailability) and fails below 2; in
    us-east-1 it then picks 2 of them at random (randomSelectionOfZones). One scarce type pins every group to
    its zones.
    """
    if doc.get("availabilityZones") or (doc.get("vpc") or {}).get("subnets"):
        return []
    types = _instance_types(doc)
    scarce = [t for t in types if t.split(".")[0] in SCARCE_FAMILIES]
    if not scarce:
        return []
    region = (doc.get("metadata") or {}).get("region", "REGION")
    return [
        warning(
            "eksctl (needs AWS)",
            f"availabilityZones is unset, so eksctl keeps only the zones of {region} that offer every "
            f"instance type in the file ({', '.join(types)}), pinning every group to "
            f"the zones where {' and '.join(scarce)} are offered, and fails if fewer than 2 remain. List "
            "offerings with "
            "`aws ec2 describe-instance-type-offerings --location-type availability-zone --filters "
            f"Name=instance-type,Values={','.join(types)} --region {region} --output table`, then set "
            "availabilityZones (3 zones for the VPC) and each scarce group's own availabilityZones "
            "(docs/eks.md, 'Zones')",
        )
    ]


def eksctl_problems(doc: dict[str, Any]) -> list[Problem]:
    """Every ported eksctl rejection (errors) and warning for this ClusterConfig document."""
    meta = doc.get("metadata") or {}
    problems = [
        error(SRC, f"metadata.{k} must be set (CF Load)") for k in ("name", "region") if not meta.get(k)
    ]
    zones = doc.get("availabilityZones") or []
    if 0 < len(zones) < MIN_ZONES:
        problems.append(
            error(
                SRC,
                f"availabilityZones: only {len(zones)} zone(s) specified {zones}, {MIN_ZONES} are required "
                "(V validateAvailabilityZones)",
            )
        )
    if zones and (doc.get("vpc") or {}).get("subnets"):
        problems.append(error(SRC, "vpc.subnets and availabilityZones cannot be set at the same time (CF)"))
    version, seen = _version(doc), set()
    for kind, managed in (("nodeGroups", False), ("managedNodeGroups", True)):
        for i, ng in enumerate(doc.get(kind) or []):
            path = f"{kind}[{i}]"
            name = str(ng.get("name") or "")
            if not name:
                problems.append(error(SRC, f"{path}.name must be set"))
            elif name in seen:
                problems.append(
                    error(
                        SRC,
                        f"{path}.name {name!r} is not unique; node group names must be unique across "
                        "nodeGroups and managedNodeGroups (V ValidateClusterConfig)",
                    )
                )
            seen.add(name)
            problems += node_group_problems(ng, path, managed, version)
    return problems + pod_identity_problems(doc)
