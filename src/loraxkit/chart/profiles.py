"""What each deployment profile in `values/` asks of a node, read from the chart as Helm renders it.

The EKS cluster config is cross-checked against these requirements (GPU label, count, disk, CPU, memory).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loraxkit.chart.render import CHART_DIR, render

PROFILES_DIR = CHART_DIR.parents[1] / "values"
ACCELERATOR_LABEL = "k8s.amazonaws.com/accelerator"
INSTANCE_TYPE_LABEL = "node.kubernetes.io/instance-type"
# GPU label values agreed with the cluster config: instance family -> accelerator label value.
ACCELERATORS = {"g6e": "nvidia-l40s", "g5": "nvidia-a10g", "p4d": "nvidia-a100", "p5": "nvidia-h100"}


@dataclass(frozen=True)
class ProfileNeeds:
    profile: str
    accelerator: str
    instance_type: str | None
    gpus: int
    cpu_request: str
    memory_request: str
    memory_limit: str | None
    cache_type: str
    cache_size: str | None
    service_account: str
    tolerations: list[dict[str, Any]]


def profiles() -> list[Path]:
    return sorted(PROFILES_DIR.glob("*.yaml"))


def needs(profile: Path) -> ProfileNeeds:
    """Render `profile` and read what its pod requires from the node it lands on."""
    docs = render(value_files=[profile])
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    spec = deployment["spec"]["template"]["spec"]
    server = next(c for c in spec["containers"] if c["name"] == "lorax")
    requests = server["resources"]["requests"]
    cache = next(v for v in spec["volumes"] if v["name"] == "model-cache")
    cache_type = next(k for k in cache if k != "name")
    cache_size = cache["emptyDir"].get("sizeLimit") if cache_type == "emptyDir" else None
    if cache_type == "persistentVolumeClaim":
        claim = next((d for d in docs if d["kind"] == "PersistentVolumeClaim"), None)
        cache_size = claim["spec"]["resources"]["requests"]["storage"] if claim else None
    selector = spec.get("nodeSelector", {})
    return ProfileNeeds(
        profile=profile.stem,
        accelerator=selector.get(ACCELERATOR_LABEL, ""),
        instance_type=selector.get(INSTANCE_TYPE_LABEL),
        gpus=int(requests["nvidia.com/gpu"]),
        cpu_request=str(requests["cpu"]),
        memory_request=str(requests["memory"]),
        memory_limit=server["resources"].get("limits", {}).get("memory"),
        cache_type=cache_type,
        cache_size=cache_size,
        service_account=spec["serviceAccountName"],
        tolerations=spec.get("tolerations", []),
    )
