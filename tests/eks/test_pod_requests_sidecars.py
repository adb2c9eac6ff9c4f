"""A sidecar's requests in the cross-check's fit, on the g5.2xlarge node group of test_crosscheck_limits
(7910m allocatable CPU): kube-scheduler adds a restartable init container (restartPolicy Always) to the
app containers' sum, not only to the init containers after it (k8s.io/component-helpers@v0.35.4
resource/helpers.go AggregateContainerRequests), so a sidecar alone can push a pod past a node."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from eks_helpers import cluster_of, deployment, gpu_pod

from loraxkit.eks.crosscheck import cross_check, pod_needs

CPU_ALLOCATABLE_M = 7910


def _pod_with_sidecar(app_m: int, sidecar_m: int) -> dict[str, Any]:
    pod = gpu_pod(accelerator="nvidia-a10g", cpu=f"{app_m}m")
    pod["initContainers"] = [
        {"name": "proxy", "restartPolicy": "Always", "resources": {"requests": {"cpu": f"{sidecar_m}m"}}},
        {"name": "init", "resources": {"requests": {"cpu": "100m"}}},  # a plain init: sidecar + 100m < app
    ]
    return pod


def test_a_sidecar_adds_to_the_app_containers_even_when_no_init_container_dominates() -> None:
    # max(app 5000m + sidecar 1000m, sidecar 1000m + init 100m) = 6000m
    assert pod_needs(_pod_with_sidecar(5000, 1000)).cpu == Decimal(6)


def test_a_pod_whose_sidecar_fills_the_node_exactly_fits_and_one_millicore_more_does_not(
    cluster_doc: dict[str, Any],
) -> None:
    def errors(sidecar_m: int) -> list[str]:
        pod = _pod_with_sidecar(CPU_ALLOCATABLE_M - 500, sidecar_m)
        findings = cross_check([deployment(pod)], cluster_of(cluster_doc), namespace="lorax")
        return [f.check for f in findings if f.severity == "error"]

    assert errors(500) == []
    assert errors(501) == ["cpu"]
