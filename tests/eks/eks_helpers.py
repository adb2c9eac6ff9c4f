"""Small helpers shared by the cluster tests (imported by name: tests/eks is on sys.path under pytest)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from loraxkit.eks.cluster import Cluster, load_cluster_doc, parse_cluster

REPO = Path(__file__).resolve().parents[2]
CLUSTER_YAML = REPO / "eks" / "cluster.yaml"


def shipped_doc() -> dict[str, Any]:
    return copy.deepcopy(load_cluster_doc(CLUSTER_YAML))


def node_group(doc: dict[str, Any], name: str) -> dict[str, Any]:
    return next(ng for ng in doc["managedNodeGroups"] if ng["name"] == name)


def lorax_identity(doc: dict[str, Any]) -> dict[str, Any]:
    return next(p for p in doc["iam"]["podIdentityAssociations"] if p["serviceAccountName"] == "lorax")


def cluster_of(doc: dict[str, Any]) -> Cluster:
    return parse_cluster(doc)


GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


def deployment(pod_spec: dict[str, Any], name: str = "lorax", namespace: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta,
        "spec": {"template": {"spec": pod_spec}},
    }


def gpu_pod(
    gpus: int = 1,
    accelerator: str = "nvidia-l40s",
    cpu: str = "4",
    memory: str = "24Gi",
    shm: str = "1Gi",
    cache: str = "50Gi",
) -> dict[str, Any]:
    """A pod spec shaped like the chart's: GPU limit, toleration, nodeSelector, shm and a cache."""
    return {
        "nodeSelector": {"k8s.amazonaws.com/accelerator": accelerator},
        "tolerations": [dict(GPU_TOLERATION)],
        "containers": [
            {
                "name": "lorax",
                "resources": {
                    "requests": {"cpu": cpu, "memory": memory, "nvidia.com/gpu": gpus},
                    "limits": {"memory": memory, "nvidia.com/gpu": gpus},
                },
            }
        ],
        "volumes": [
            {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": shm}},
            {"name": "model-cache", "emptyDir": {"sizeLimit": cache}},
        ],
    }


def s3_pod(bucket: str = "lorax-adapters-example", service_account: str = "lorax") -> dict[str, Any]:
    pod = gpu_pod()
    pod["serviceAccountName"] = service_account
    pod["containers"][0]["args"] = ["--adapter-source", "s3"]
    pod["containers"][0]["env"] = [{"name": "PREDIBASE_MODEL_BUCKET", "value": bucket}]
    return pod


def service_account(name: str = "lorax") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}}
