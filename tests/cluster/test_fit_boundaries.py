"""At the edge of a node's allocatable, `loraxkit eks check` and kube-scheduler must give the same verdict.

The g6e profile's pod asks for exactly the allocatable CPU / memory / ephemeral storage of a g6e.2xlarge
node (as loraxkit.eks.nodes models it, which is also what the fake nodes carry), then 1 unit more.
NodeResourcesFit admits a request equal to what is free and refuses one unit above it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cluster_helpers import REPO, describe, eks_check_verdict, install, with_overrides
from kubernetes.utils import parse_quantity

from loraxkit.eks.cluster import load_cluster
from loraxkit.testcluster.cluster import LoopbackCluster
from loraxkit.testcluster.nodes import fake_nodes

G6E = REPO / "values" / "g6e-l40s-mistral-7b-instruct-bf16.yaml"


def _allocatable() -> dict[str, int]:
    node = next(
        n
        for n in fake_nodes(load_cluster(REPO / "eks" / "cluster.yaml"))
        if "gpu-g6e" in n["metadata"]["name"]
    )
    alloc = node["status"]["allocatable"]
    return {
        "cpu_millis": int(parse_quantity(alloc["cpu"]) * 1000),
        "memory_ki": int(parse_quantity(alloc["memory"]) // 1024),
        "ephemeral_ki": int(parse_quantity(alloc["ephemeral-storage"]) // 1024),
    }


def _case(name: str, over: int) -> tuple[dict[str, Any], str]:
    a = _allocatable()
    if name == "cpu":
        return {"resources": {"requests": {"cpu": f"{a['cpu_millis'] + over}m"}}}, "Insufficient cpu"
    if name == "memory":
        memory = f"{a['memory_ki'] + over}Ki"
        return {
            "resources": {"requests": {"memory": memory}, "limits": {"memory": memory}}
        }, "Insufficient memory"
    # the chart requests the emptyDir model cache's sizeLimit as ephemeral-storage
    size = f"{a['ephemeral_ki'] + over}Ki"
    return {"modelCache": {"emptyDir": {"sizeLimit": size}}}, "Insufficient ephemeral-storage"


@pytest.mark.parametrize("over", [0, 1], ids=["at-allocatable", "one-unit-over"])
@pytest.mark.parametrize("resource", ["cpu", "memory", "ephemeral-storage"])
def test_check_and_scheduler_agree_at_the_edge(
    loopback_cluster: LoopbackCluster, namespace: str, tmp_path: Path, resource: str, over: int
) -> None:
    overrides, reason = _case(resource, over)
    values = with_overrides(G6E, overrides, tmp_path)
    install(loopback_cluster, values, wait=False)
    placements = loopback_cluster.wait_pending(namespace, "app.kubernetes.io/instance=lorax")
    scheduled = all(p.node for p in placements)
    fits, output = eks_check_verdict(values)
    assert scheduled == (over == 0), describe(placements)
    if not scheduled:
        assert all(reason in p.reason for p in placements), describe(placements)
    assert fits == scheduled, f"kube-scheduler: {describe(placements)}\n`loraxkit eks check`:\n{output}"
