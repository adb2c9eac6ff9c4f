"""Cross-check rendered chart manifests against the cluster they will run on.

For every workload the chart renders: some node group must be selected by its nodeSelector / required node
affinity, it must tolerate that group's taints, and one of those nodes must hold its GPUs, CPU, memory
(including memory-backed emptyDirs such as /dev/shm) and its disk cache (disk emptyDir sizeLimit and
ephemeral-storage on the root volume, hostPath on instance store, PersistentVolumeClaims on EBS). A workload
that reads adapters from S3 must run as a ServiceAccount that a Pod Identity association grants that bucket.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from kubernetes.utils import parse_quantity

from loraxkit.eks.cluster import Cluster, NodeVariant
from loraxkit.eks.lint import bucket_grants
from loraxkit.eks.scheduling import selects_node, untolerated_taints

GIB = Decimal(2**30)
# What a node keeps for itself (EKS AL2023 bootstrap): kube-reserved memory is 255 MiB + 11 MiB per pod
# (110 pods at most), eviction threshold 100 MiB; kube-reserved CPU is under 0.1 core on these sizes. The
# DaemonSets (aws-node, kube-proxy, ebs-csi-node, pod-identity agent, device plugin) request
# ~0.3 core and ~0.5 GiB.
NODE_RESERVED_MEMORY = Decimal(255 + 11 * 110 + 100) * 2**20 + GIB / 2
NODE_RESERVED_CPU = Decimal("0.4")
# Root volume: kubelet evicts below 10% free; the AL2023 OS takes ~5 GiB and the LoRAX image (~10 GB
# compressed) ~30 GiB once pulled and unpacked. What is left holds emptyDir caches and container layers.
ROOT_EVICTION_FRACTION = Decimal("0.10")
ROOT_OS_AND_IMAGE = 35 * GIB
EBS_MAX_VOLUME = 16384 * GIB  # gp3 / io2 upper bound
EBS_ACCESS_MODES = ("ReadWriteOnce", "ReadWriteOncePod")
SYSTEM_HOST_PATHS = ("/dev", "/sys", "/proc", "/run", "/var/run", "/etc", "/var/log")
S3_BUCKET_ENV = "PREDIBASE_MODEL_BUCKET"
ADAPTER_SOURCE_FLAGS = ("--adapter-source", "--default-adapter-source")
ADAPTER_SOURCE_ENVS = ("ADAPTER_SOURCE", "DEFAULT_ADAPTER_SOURCE")
POD_TEMPLATE_KINDS = ("Deployment", "StatefulSet", "ReplicaSet", "Job")


@dataclass(frozen=True)
class Finding:
    check: str  # selection | tolerations | gpus | cpu | memory | disk | volume | identity
    workload: str
    message: str

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
    gpus: int
    cpu: Decimal
    memory: Decimal  # container requests plus memory-backed emptyDir sizeLimits
    root_disk: Decimal  # disk-backed emptyDir sizeLimits or ephemeral-storage requests, whichever is larger
    host_paths: tuple[str, ...]


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


def _resource(container: dict[str, Any], name: str) -> Decimal:
    resources = container.get("resources") or {}
    requests, limits = resources.get("requests") or {}, resources.get("limits") or {}
    # A request defaults to the limit when only the limit is set (always the case for nvidia.com/gpu).
    return _quantity(requests.get(name, limits.get(name)))


def _pod_resource(pod_spec: dict[str, Any], name: str) -> Decimal:
    """Effective pod request: the larger of the app containers' sum and the biggest init container."""
    app = sum((_resource(c, name) for c in pod_spec.get("containers") or []), Decimal(0))
    init = max((_resource(c, name) for c in pod_spec.get("initContainers") or []), default=Decimal(0))
    return max(app, init)


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
    return PodNeeds(
        gpus=int(_pod_resource(pod_spec, "nvidia.com/gpu")),
        cpu=_pod_resource(pod_spec, "cpu"),
        memory=_pod_resource(pod_spec, "memory") + memory_volumes,
        root_disk=max(disk_volumes, _pod_resource(pod_spec, "ephemeral-storage")),
        host_paths=tuple(host_paths),
    )


def _gib(value: Decimal) -> str:
    return f"{value / GIB:.1f} GiB"


def root_disk_available(variant: NodeVariant) -> Decimal:
    size = variant.group.volume_size_gib * GIB
    return size * (1 - ROOT_EVICTION_FRACTION) - ROOT_OS_AND_IMAGE


def fit_problems(needs: PodNeeds, variant: NodeVariant) -> list[tuple[str, str]]:
    """(check, message) for each resource the node cannot supply."""
    inst, where = variant.instance, variant.describe()
    problems = []
    if needs.gpus > inst.gpu_count:
        problems.append(
            (
                "gpus",
                f"asks for {needs.gpus} nvidia.com/gpu but {where} has {inst.gpu_count}; "
                "lower the GPU limit (and --num-shard) or target a group with more GPUs",
            )
        )
    cpu_free = inst.vcpus - NODE_RESERVED_CPU
    if needs.cpu > cpu_free:
        problems.append(
            (
                "cpu",
                f"requests {needs.cpu} CPU but {where} has ~{cpu_free} allocatable; "
                "lower resources.requests.cpu or pick a larger instance type",
            )
        )
    memory_free = inst.memory_gib * GIB - NODE_RESERVED_MEMORY
    if needs.memory > memory_free:
        problems.append(
            (
                "memory",
                f"needs {_gib(needs.memory)} of memory (requests + memory-backed emptyDir "
                f"such as /dev/shm) but {where} has ~{_gib(memory_free)} allocatable",
            )
        )
    disk_free = root_disk_available(variant)
    if needs.root_disk > disk_free:
        problems.append(
            (
                "disk",
                f"needs {_gib(needs.root_disk)} of node disk for its cache but {where}'s "
                f"{variant.group.volume_size_gib} GiB root volume leaves ~{_gib(disk_free)} after the "
                "OS, the LoRAX image and kubelet's 10% eviction margin; raise volumeSize or shrink "
                "the cache sizeLimit",
            )
        )
    problems += [("disk", message) for message in host_path_problems(needs.host_paths, variant)]
    return problems


def host_path_problems(paths: tuple[str, ...], variant: NodeVariant) -> list[str]:
    """A hostPath cache belongs on instance-store NVMe, which AL2023 leaves unformatted and unmounted: the
    group's preBootstrapCommands must mount it at that path, or the cache silently fills the root volume."""
    where = variant.describe()
    if paths and variant.instance.instance_storage_gb == 0:
        return [
            f"mounts hostPath {list(paths)} as a cache but {where} has no instance store; use an "
            "emptyDir or a PVC, or an instance type with local NVMe"
        ]
    return [
        f"mounts hostPath {path} as a cache but {where} does not mount its instance store there (no "
        "preBootstrapCommands mention it), so the cache would fill the root volume; mount the NVMe at that "
        "path in preBootstrapCommands or use an emptyDir"
        for path in paths
        if not any(path in command for command in variant.group.pre_bootstrap_commands)
    ]


def placement_findings(workload: Workload, cluster: Cluster) -> list[Finding]:
    spec, name = workload.pod_spec, workload.describe()
    selected = [v for v in cluster.variants() if selects_node(spec, v.labels)]
    if not selected:
        offered = {g.name: g.labels for g in cluster.node_groups}
        return [
            Finding(
                "selection",
                name,
                f"nodeSelector {spec.get('nodeSelector') or {}} and node affinity "
                f"match no node group; the groups carry {offered}",
            )
        ]
    placeable = [v for v in selected if not untolerated_taints(spec, v.group.taints)]
    if not placeable:
        blocked = {v.group.name: [str(t) for t in untolerated_taints(spec, v.group.taints)] for v in selected}
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
    per_variant = [fit_problems(needs, v) for v in placeable]
    if any(not problems for problems in per_variant):
        return []
    unique = dict.fromkeys(p for problems in per_variant for p in problems)
    return [Finding(check, name, message) for check, message in unique]


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
