"""Cross-check rendered chart manifests against the cluster they will run on.

For every workload the chart renders: some node must be selected by its nodeSelector / required node affinity,
it must tolerate that node's taints, and the pod's requests must fit the node's allocatable, exactly as
kube-scheduler decides (NodeAffinity, TaintToleration and NodeResourcesFit plugins). Nodes are EKS's, from
loraxkit.eks.nodes (nodeadm's kube-reserved, eviction and max pods; the labels EKS, eksctl and kubelet set).

A pod's requests are kube-scheduler's: k8s.io/component-helpers@v0.35.4 resource/helpers.go: PodRequests /
AggregateContainerRequests (the app containers' sum; init containers as a maximum, with restartable sidecar
init containers added to everything after them; pod-level requests when set; plus pod overhead), after the API
server's defaulting of a missing request to its limit (kubernetes pkg/apis/core/v1/defaults.go:
SetDefaults_Pod).
Volumes are NOT requests: a memory-backed emptyDir such as /dev/shm and a disk emptyDir's sizeLimit do not
enter NodeResourcesFit (k8s.io/kubernetes@v1.35.4 pkg/scheduler/framework/plugins/noderesources/fit.go:
computePodResourceRequest, fitsRequest). They can still get the pod OOM-killed or evicted at run time, so they
are warnings here, never errors.

Errors are what keeps a pod Pending (or a PVC unbound, or S3 denied); warnings are risks the scheduler does
not see. A workload that reads adapters from S3 must run as a ServiceAccount that a Pod Identity association
grants that bucket.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from kubernetes.utils import parse_quantity

from loraxkit.eks.cluster import Cluster
from loraxkit.eks.lint import bucket_grants
from loraxkit.eks.nodes import GIB, EksNode, cluster_nodes
from loraxkit.eks.problems import Severity
from loraxkit.eks.scheduling import selects_node, unknown_keys_used, untolerated_taints

EBS_MAX_VOLUME = Decimal(16384 * GIB)  # gp3 / io2 upper bound
EBS_ACCESS_MODES = ("ReadWriteOnce", "ReadWriteOncePod")
SYSTEM_HOST_PATHS = ("/dev", "/sys", "/proc", "/run", "/var/run", "/etc", "/var/log")
S3_BUCKET_ENV = "PREDIBASE_MODEL_BUCKET"
ADAPTER_SOURCE_FLAGS = ("--adapter-source", "--default-adapter-source")
ADAPTER_SOURCE_ENVS = ("ADAPTER_SOURCE", "DEFAULT_ADAPTER_SOURCE")
POD_TEMPLATE_KINDS = ("Deployment", "StatefulSet", "ReplicaSet", "Job")
POD_LEVEL_RESOURCES = ("cpu", "memory")  # component-helpers SupportedPodLevelResources (hugepages aside)
# Margins for warnings only (the scheduler never sees them):
# * a real node's memory capacity is MemTotal, below the nominal size; Karpenter estimates 7.5%
#   (its VM_MEMORY_OVERHEAD_PERCENT default);
# * every node runs aws-node (vpc-cni, requests 25m CPU) and kube-proxy (EKS add-on, requests 100m CPU)
#   besides the other DaemonSets, whose requests take from the same allocatable.
MEMORY_OVERHEAD_FRACTION = Decimal("0.075")
DAEMONSET_CPU_MILLIS = 125
# Root volume: the AL2023 OS takes ~5 GiB and the LoRAX image (~10 GB compressed) ~30 GiB once unpacked; the
# scheduler does not count them, kubelet evicts pods when the disk runs out.
ROOT_OS_AND_IMAGE = Decimal(35 * GIB)


@dataclass(frozen=True)
class Finding:
    check: str  # selection | tolerations | gpus | cpu | memory | disk | volume | identity
    workload: str
    message: str
    severity: Severity = "error"

    def __str__(self) -> str:
        return f"[{self.check}] {self.workload}: {self.message}"


@dataclass(frozen=True)
class Workload:
    kind: str
    name: str
    namespace: str
    pod_spec: dict[str, Any]
    claim_templates: tuple[dict[str, Any], ...]

    def describe(self) -> str:
        return f"{self.kind}/{self.name}"


@dataclass(frozen=True)
class PodNeeds:
    """What kube-scheduler counts (requests) and what it does not (volumes), in base units."""

    requests: dict[
        str, Decimal
    ]  # cpu (cores), memory (bytes), ephemeral-storage (bytes), nvidia.com/gpu, ...
    memory_volumes: Decimal = Decimal(0)  # memory-backed emptyDir sizeLimits (/dev/shm)
    disk_volumes: Decimal = Decimal(0)  # disk emptyDir sizeLimits
    host_paths: tuple[str, ...] = field(default_factory=tuple)

    def get(self, name: str) -> Decimal:
        return self.requests.get(name, Decimal(0))

    @property
    def gpus(self) -> int:
        return int(self.get("nvidia.com/gpu"))

    @property
    def cpu(self) -> Decimal:
        return self.get("cpu")

    @property
    def memory(self) -> Decimal:
        return self.get("memory")


def workloads(manifests: list[dict[str, Any]], namespace: str) -> list[Workload]:
    """Every pod-creating object the chart renders (DaemonSets are not placed, so they are skipped)."""
    found = []
    for doc in manifests:
        kind, meta, spec = doc.get("kind"), doc.get("metadata") or {}, doc.get("spec") or {}
        if kind in POD_TEMPLATE_KINDS:
            pod_spec = (spec.get("template") or {}).get("spec") or {}
        elif kind == "CronJob":
            pod_spec = (((spec.get("jobTemplate") or {}).get("spec") or {}).get("template") or {}).get(
                "spec"
            ) or {}
        elif kind == "Pod":
            pod_spec = spec
        else:
            continue
        ns = str(meta.get("namespace") or namespace)
        claims = tuple(spec.get("volumeClaimTemplates") or []) if kind == "StatefulSet" else ()
        found.append(Workload(str(kind), str(meta.get("name", "?")), ns, pod_spec, claims))
    return found


def _quantity(value: Any) -> Decimal:
    return Decimal(str(parse_quantity(str(value)))) if value not in (None, "") else Decimal(0)


def container_requests(container: dict[str, Any]) -> dict[str, Decimal]:
    """The container's requests after API defaulting: a resource with only a limit requests the limit."""
    resources = container.get("resources") or {}
    limits, requests = resources.get("limits") or {}, resources.get("requests") or {}
    merged = {**limits, **requests}
    return {str(k): _quantity(v) for k, v in merged.items()}


def _add(total: dict[str, Decimal], more: dict[str, Decimal]) -> None:
    for name, value in more.items():
        total[name] = total.get(name, Decimal(0)) + value


def _max_into(total: dict[str, Decimal], other: dict[str, Decimal]) -> None:
    for name, value in other.items():
        total[name] = max(total.get(name, Decimal(0)), value)


def pod_requests(pod_spec: dict[str, Any]) -> dict[str, Decimal]:
    """component-helpers PodRequests (AggregateContainerRequests with sidecars, pod-level, overhead)."""
    reqs: dict[str, Decimal] = {}
    for container in pod_spec.get("containers") or []:
        _add(reqs, container_requests(container))
    sidecars: dict[str, Decimal] = {}
    init_max: dict[str, Decimal] = {}
    for container in pod_spec.get("initContainers") or []:
        own = container_requests(container)
        if container.get("restartPolicy") == "Always":  # a sidecar runs beside everything after it
            _add(reqs, own)
            _add(sidecars, own)
            use = dict(sidecars)
        else:
            use = dict(own)
            _add(use, sidecars)
        _max_into(init_max, use)
    _max_into(reqs, init_max)
    pod_level = ((pod_spec.get("resources") or {}).get("requests")) or {}
    for name in POD_LEVEL_RESOURCES:
        if name in pod_level:
            reqs[name] = _quantity(pod_level[name])
    _add(reqs, {str(k): _quantity(v) for k, v in (pod_spec.get("overhead") or {}).items()})
    return {k: v for k, v in reqs.items() if v}


def pod_needs(pod_spec: dict[str, Any]) -> PodNeeds:
    memory_volumes, disk_volumes, host_paths = Decimal(0), Decimal(0), []
    for vol in pod_spec.get("volumes") or []:
        if "emptyDir" in vol:
            empty_dir = vol.get("emptyDir") or {}
            size = _quantity(empty_dir.get("sizeLimit"))
            if empty_dir.get("medium") == "Memory":
                memory_volumes += size
            else:
                disk_volumes += size
        elif "hostPath" in vol:
            path = str((vol.get("hostPath") or {}).get("path", ""))
            if not path.startswith(SYSTEM_HOST_PATHS):
                host_paths.append(path)
    return PodNeeds(pod_requests(pod_spec), memory_volumes, disk_volumes, tuple(host_paths))


def _gib(value: Decimal | int) -> str:
    return f"{Decimal(value) / GIB:.1f} GiB"


def _cores(millis: int) -> str:
    return f"{Decimal(millis) / 1000:g}"


def fit_problems(needs: PodNeeds, node: EksNode) -> list[tuple[str, str]]:
    """(check, message) for each request the node's allocatable cannot hold: NodeResourcesFit's
    "Insufficient <resource>" on an empty node."""
    alloc, where, problems = node.allocatable, node.describe(), []
    if needs.gpus > alloc.gpus:
        problems.append(
            (
                "gpus",
                f"asks for {needs.gpus} nvidia.com/gpu but {where} has {alloc.gpus}; "
                "lower the GPU limit (and --num-shard) or target a group with more GPUs",
            )
        )
    if needs.cpu * 1000 > alloc.cpu_millis:
        problems.append(
            (
                "cpu",
                f"requests {needs.cpu} CPU but {where} has {_cores(alloc.cpu_millis)} allocatable (EKS "
                f"kube-reserved {node.kube_reserved.cpu_millis}m); lower resources.requests.cpu or pick a "
                "larger instance type",
            )
        )
    if needs.memory > alloc.memory_bytes:
        problems.append(
            (
                "memory",
                f"requests {_gib(needs.memory)} of memory but {where} has {_gib(alloc.memory_bytes)} "
                f"allocatable (kube-reserved {_gib(node.kube_reserved.memory_bytes)} for "
                f"{alloc.pods} pods, eviction 100 MiB); lower resources.requests.memory",
            )
        )
    if needs.get("ephemeral-storage") > alloc.ephemeral_bytes:
        problems.append(
            (
                "disk",
                f"requests {_gib(needs.get('ephemeral-storage'))} of ephemeral-storage but {where}'s "
                f"{_gib(node.capacity.ephemeral_bytes)} root volume has {_gib(alloc.ephemeral_bytes)} "
                "allocatable (kube-reserved 1 GiB, eviction 10%); raise volumeSize or lower the request",
            )
        )
    known = {"cpu", "memory", "ephemeral-storage", "nvidia.com/gpu", "pods"}
    problems += [
        ("resources", f"requests {value} {name}, which no node of {where} offers")
        for name, value in needs.requests.items()
        if name not in known and not name.startswith("hugepages-")
    ]
    return problems


def margin_warnings(needs: PodNeeds, node: EksNode) -> list[tuple[str, str]]:
    """Risks on a node the pod fits: what the scheduler does not count, or counts only on a real node."""
    alloc, where, warnings = node.allocatable, node.describe(), []
    memory_real = alloc.memory_bytes - int(node.capacity.memory_bytes * MEMORY_OVERHEAD_FRACTION)
    if needs.memory > memory_real:
        warnings.append(
            (
                "memory",
                f"requests {_gib(needs.memory)}, within {_gib(alloc.memory_bytes - memory_real)} of "
                f"{where}'s "
                "allocatable; a real node's memory is a few per cent below nominal, so it may not fit",
            )
        )
    if needs.memory + needs.memory_volumes > alloc.memory_bytes and needs.memory_volumes:
        warnings.append(
            (
                "memory",
                f"memory request {_gib(needs.memory)} plus memory-backed emptyDir (/dev/shm) "
                f"{_gib(needs.memory_volumes)} exceed {where}'s {_gib(alloc.memory_bytes)} allocatable; the "
                "scheduler does not count /dev/shm, but a full one can get the pod evicted or OOM-killed",
            )
        )
    if needs.cpu * 1000 > alloc.cpu_millis - DAEMONSET_CPU_MILLIS:
        warnings.append(
            (
                "cpu",
                f"requests {needs.cpu} CPU, within {DAEMONSET_CPU_MILLIS}m of {where}'s allocatable; "
                "aws-node "
                "and kube-proxy alone request that much on every node",
            )
        )
    disk = max(needs.disk_volumes, needs.get("ephemeral-storage"))
    disk_free = Decimal(alloc.ephemeral_bytes) - ROOT_OS_AND_IMAGE
    if disk > disk_free:
        warnings.append(
            (
                "disk",
                f"needs {_gib(disk)} of node disk for its cache but {where}'s "
                f"{_gib(node.capacity.ephemeral_bytes)} root volume leaves ~{_gib(disk_free)} after the OS, "
                "the LoRAX image and kubelet's reserve; raise volumeSize or shrink the cache sizeLimit (the "
                "scheduler does not count an emptyDir, kubelet evicts the pod when it overflows)",
            )
        )
    warnings += [("disk", message) for message in host_path_problems(needs.host_paths, node)]
    return warnings


def host_path_problems(paths: tuple[str, ...], node: EksNode) -> list[str]:
    """A hostPath cache belongs on instance-store NVMe, which AL2023 leaves unformatted and unmounted: the
    group's preBootstrapCommands must mount it at that path, or the cache silently fills the root volume."""
    where = node.describe()
    if paths and node.instance_storage_gb == 0:
        return [
            f"mounts hostPath {list(paths)} as a cache but {where} has no instance store; use an "
            "emptyDir or a PVC, or an instance type with local NVMe"
        ]
    return [
        f"mounts hostPath {path} as a cache but {where} does not mount its instance store there (no "
        "preBootstrapCommands mention it), so the cache would fill the root volume; mount the NVMe at that "
        "path in preBootstrapCommands or use an emptyDir"
        for path in paths
        if not any(path in command for command in node.pre_bootstrap_commands)
    ]


def placement_findings(workload: Workload, cluster: Cluster) -> list[Finding]:
    spec, name = workload.pod_spec, workload.describe()
    nodes = cluster_nodes(cluster)
    selected = [n for n in nodes if selects_node(spec, n.labels, unknown=n.aws_only_labels)]
    if not selected:
        offered = {g.name: g.labels for g in cluster.node_groups}
        return [
            Finding(
                "selection",
                name,
                f"nodeSelector {spec.get('nodeSelector') or {}} and node affinity "
                f"match no node group; the groups carry {offered} besides the labels EKS sets",
            )
        ]
    placeable = [n for n in selected if not untolerated_taints(spec, n.taints)]
    if not placeable:
        blocked = {n.group: [str(t) for t in untolerated_taints(spec, n.taints)] for n in selected}
        return [
            Finding(
                "tolerations",
                name,
                f"selects {sorted(blocked)} but does not tolerate their taints "
                f"{blocked}; add a toleration (e.g. key nvidia.com/gpu, operator Exists, "
                "effect NoSchedule)",
            )
        ]
    needs = pod_needs(spec)
    per_node = [fit_problems(needs, n) for n in placeable]
    fitting = [n for n, problems in zip(placeable, per_node, strict=True) if not problems]
    if not fitting:
        unique = dict.fromkeys(p for problems in per_node for p in problems)
        return [Finding(check, name, message) for check, message in unique]
    findings = []
    unknown = sorted({k for n in fitting for k in unknown_keys_used(spec, n.labels, n.aws_only_labels)})
    if unknown:
        findings.append(
            Finding(
                "selection",
                name,
                f"selects on {unknown}, whose values only AWS knows (zone, host name, AMI); assumed to match",
                "warning",
            )
        )
    per_fit = [margin_warnings(needs, n) for n in fitting]
    if all(per_fit):  # warn only when no fitting node is free of risk
        unique = dict.fromkeys(p for problems in per_fit for p in problems)
        findings += [Finding(check, name, message, "warning") for check, message in unique]
    return findings


def _claims(workload: Workload, manifests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    pvcs = {
        str((d.get("metadata") or {}).get("name")): d
        for d in manifests
        if d.get("kind") == "PersistentVolumeClaim"
    }
    names = [
        str((v.get("persistentVolumeClaim") or {}).get("claimName"))
        for v in workload.pod_spec.get("volumes") or []
        if "persistentVolumeClaim" in v
    ]
    # A claim the chart does not render (an existing claim) is the user's; only rendered ones are checked.
    return [pvcs[n] for n in names if n in pvcs] + list(workload.claim_templates)


def volume_findings(workload: Workload, manifests: list[dict[str, Any]], cluster: Cluster) -> list[Finding]:
    findings, name = [], workload.describe()
    ebs = cluster.addon_config("aws-ebs-csi-driver")
    default_sc = bool(((ebs or {}).get("defaultStorageClass") or {}).get("enabled"))
    for pvc in _claims(workload, manifests):
        spec, pvc_name = pvc.get("spec") or {}, (pvc.get("metadata") or {}).get("name")
        if "storageClassName" in spec and spec["storageClassName"] is not None:
            continue  # a named class (or "" for static binding) is the user's choice, not ours to size
        if not default_sc:
            findings.append(
                Finding(
                    "volume",
                    name,
                    f"PVC {pvc_name} has no storageClassName and the cluster "
                    "creates no default StorageClass; enable the aws-ebs-csi-driver add-on with "
                    'configurationValues \'{"defaultStorageClass": {"enabled": true}}\'',
                )
            )
            continue
        size = _quantity(((spec.get("resources") or {}).get("requests") or {}).get("storage"))
        if size > EBS_MAX_VOLUME:
            findings.append(
                Finding(
                    "volume",
                    name,
                    f"PVC {pvc_name} asks {_gib(size)}; EBS volumes stop at {_gib(EBS_MAX_VOLUME)}",
                )
            )
        bad_modes = [m for m in spec.get("accessModes") or [] if m not in EBS_ACCESS_MODES]
        if bad_modes:
            findings.append(
                Finding(
                    "volume",
                    name,
                    f"PVC {pvc_name} wants {bad_modes}; the default (EBS) "
                    "StorageClass only offers ReadWriteOnce; use EFS/FSx or ReadWriteOnce",
                )
            )
    return findings


def _env(container: dict[str, Any]) -> dict[str, str]:
    return {str(e.get("name")): str(e.get("value", "")) for e in container.get("env") or []}


def _arg_value(args: list[str], flags: tuple[str, ...]) -> str | None:
    for i, arg in enumerate(args):
        for flag in flags:
            if arg == flag and i + 1 < len(args):
                return args[i + 1]
            if arg.startswith(flag + "="):
                return arg.split("=", 1)[1]
    return None


def s3_bucket_use(pod_spec: dict[str, Any]) -> tuple[bool, str | None]:
    """(reads adapters from S3?, the bucket if the pod names it)."""
    uses, bucket = False, None
    for container in [*(pod_spec.get("containers") or []), *(pod_spec.get("initContainers") or [])]:
        env = _env(container)
        args = [str(a) for a in [*(container.get("command") or []), *(container.get("args") or [])]]
        if env.get(S3_BUCKET_ENV):
            uses, bucket = True, env[S3_BUCKET_ENV]
        if _arg_value(args, ADAPTER_SOURCE_FLAGS) == "s3" or any(
            env.get(k) == "s3" for k in ADAPTER_SOURCE_ENVS
        ):
            uses = True
        if any(v.startswith("s3://") for v in [*env.values(), *args]):
            uses = True
    return uses, bucket


def identity_findings(workload: Workload, manifests: list[dict[str, Any]], cluster: Cluster) -> list[Finding]:
    uses_s3, bucket = s3_bucket_use(workload.pod_spec)
    if not uses_s3:
        return []
    name, ns = workload.describe(), workload.namespace
    sa = str(
        workload.pod_spec.get("serviceAccountName") or workload.pod_spec.get("serviceAccount") or "default"
    )
    if sa == "default":
        return [
            Finding(
                "identity",
                name,
                "reads S3 adapters as the namespace's default ServiceAccount; render a "
                "dedicated ServiceAccount so the Pod Identity association grants only this workload",
            )
        ]
    matches = [p for p in cluster.pod_identities if (p.namespace, p.service_account) == (ns, sa)]
    if not matches:
        have = [f"{p.namespace}/{p.service_account}" for p in cluster.pod_identities]
        return [
            Finding(
                "identity",
                name,
                f"reads S3 adapters as ServiceAccount {ns}/{sa} but no Pod Identity "
                f"association names it (associations: {have}); fix iam.podIdentityAssociations "
                "namespace/serviceAccountName or the chart's serviceAccount.name / install namespace",
            )
        ]
    findings = []
    rendered = {
        ((d.get("metadata") or {}).get("name"), (d.get("metadata") or {}).get("namespace") or ns)
        for d in manifests
        if d.get("kind") == "ServiceAccount"
    }
    if (sa, ns) not in rendered:
        findings.append(
            Finding(
                "identity",
                name,
                f"runs as ServiceAccount {ns}/{sa}, which the chart does not "
                "render; the association only works once that ServiceAccount exists",
            )
        )
    if bucket:
        granted = set().union(*(bucket_grants(p).get(bucket, set()) for p in matches))
        missing = sorted({"s3:GetObject", "s3:ListBucket"} - granted)
        if missing:
            findings.append(
                Finding(
                    "identity",
                    name,
                    f"reads bucket {bucket!r} but the {ns}/{sa} association "
                    f"does not grant {missing} on it; fix the bucket in the permissionPolicy",
                )
            )
    return findings


def cross_check(manifests: list[dict[str, Any]], cluster: Cluster, namespace: str) -> list[Finding]:
    """Every way the rendered chart and the cluster disagree (empty when the chart will land and run)."""
    findings: list[Finding] = []
    for workload in workloads(manifests, namespace):
        findings += placement_findings(workload, cluster)
        findings += volume_findings(workload, manifests, cluster)
        findings += identity_findings(workload, manifests, cluster)
    return findings
