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
