"""What the cross-check claims to catch, tried on the real scheduler: each case stays Pending with the
scheduler's own reason, and `loraxkit eks check` flags the same values file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cluster_helpers import REPO, describe, eks_check_verdict, install, with_overrides

from loraxkit.testcluster.cluster import LoopbackCluster

G6E = REPO / "values" / "g6e-l40s-mistral-7b-instruct-bf16.yaml"
P4D = REPO / "values" / "p4d-a100-llama3.1-70b-instruct-bf16.yaml"
# (profile, values merged into it, what kube-scheduler says about the Pending pod)
CASES: dict[str, tuple[Path, dict[str, Any], str]] = {
    # cudaGraphs off: the chart refuses CUDA graphs with more than one GPU on LoRAX 0.12
    "one-gpu-too-many": (
        G6E,
        {"gpu": {"count": 2}, "server": {"cudaGraphs": False}},
        "Insufficient nvidia.com/gpu",
    ),
    "nine-gpus-on-an-8-gpu-node": (P4D, {"gpu": {"count": 9}}, "Insufficient nvidia.com/gpu"),
    "toleration-removed": (G6E, {"tolerations": []}, "untolerated taint"),
    "selector-typo": (
        G6E,
        {"nodeSelector": {"k8s.amazonaws.com/accelerator": "nvidia-l40"}},
        "didn't match Pod's node affinity/selector",
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_scheduler_leaves_it_pending_and_the_check_agrees(
    loopback_cluster: LoopbackCluster, namespace: str, tmp_path: Path, case: str
) -> None:
    profile, overrides, reason = CASES[case]
    values = with_overrides(profile, overrides, tmp_path)
    install(loopback_cluster, values, wait=False)
    placements = loopback_cluster.wait_pending(namespace, "app.kubernetes.io/instance=lorax")
    assert all(p.node is None for p in placements), f"the scheduler placed it:\n{describe(placements)}"
    assert all(reason in p.reason for p in placements), describe(placements)
    fits, output = eks_check_verdict(values)
    assert not fits, f"kube-scheduler: {placements[0].reason}\n`loraxkit eks check` says it fits:\n{output}"
