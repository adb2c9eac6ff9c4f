"""Both sides of every limit the cross-check applies, on one node group (gpu-g5, g5.2xlarge: 8 vCPU, 32 GiB,
200 GiB root volume, 58 pods), with the limits worked out by hand below from nodeadm's rules:

* CPU allocatable: 8000m - kube-reserved (60 + 10 + 2*5 + 4*2.5 = 90m) = 7910m.
* memory allocatable: 32 GiB - kube-reserved (11 MiB * 58 pods + 255 MiB = 893 MiB) - eviction 100 MiB
  = 34359738368 - 936378368 - 104857600 = 33318502400 bytes.
* ephemeral allocatable: 200 GiB - 1 GiB kube-reserved - 10% eviction (21474836480) = 192199786496 bytes.

Errors (the pod stays Pending) at allocatable + 1 unit, nothing at allocatable. Warnings (risks the scheduler
does not see) one unit past their margin, none at it:

* CPU: within 125m of allocatable (aws-node 25m + kube-proxy 100m): warn above 7785m.
* memory: a real node has 7.5% less than nominal: warn above 33318502400 - int(0.075 * 34359738368)
  = 33318502400 - 2576980377 = 30741522023 bytes.
* memory request + /dev/shm above allocatable (33318502400).
* disk cache above ephemeral allocatable - 35 GiB (OS and image) = 192199786496 - 37580963840 = 144 GiB.
"""

from __future__ import annotations

from typing import Any

import pytest
from eks_helpers import cluster_of, deployment, gpu_pod, node_group

from loraxkit.eks.crosscheck import Finding, cross_check, pod_needs

CPU_ALLOCATABLE_M = 7910
MEMORY_ALLOCATABLE = 33318502400
EPHEMERAL_ALLOCATABLE = 192199786496
CPU_WARN_ABOVE_M = 7785
MEMORY_WARN_ABOVE = 30741522023
DISK_WARN_ABOVE = 144 * 2**30


def _g5_pod(**kwargs: Any) -> dict[str, Any]:
    kwargs.setdefault("memory", "24Gi")
    return gpu_pod(accelerator="nvidia-a10g", **kwargs)


def _findings(doc: dict[str, Any], pod: dict[str, Any]) -> list[Finding]:
    return cross_check([deployment(pod)], cluster_of(doc), namespace="lorax")


def _errors(findings: list[Finding]) -> list[str]:
    return [f.check for f in findings if f.severity == "error"]


def _warnings(findings: list[Finding]) -> list[str]:
    return [f.check for f in findings if f.severity == "warning"]


def _with_ephemeral(pod: dict[str, Any], value: int) -> dict[str, Any]:
    pod["containers"][0]["resources"]["requests"]["ephemeral-storage"] = str(value)
    return pod


# ------------------------------------------------------- errors: allocatable fits, one unit more does not
ERROR_LIMITS = [
    ("cpu", lambda d: _g5_pod(cpu=f"{CPU_ALLOCATABLE_M + d}m")),
    ("memory", lambda d: _g5_pod(memory=str(MEMORY_ALLOCATABLE + d))),
    ("disk", lambda d: _with_ephemeral(_g5_pod(cache="1Gi"), EPHEMERAL_ALLOCATABLE + d)),
    ("gpus", lambda d: _g5_pod(gpus=1 + d)),
]


@pytest.mark.parametrize(("check", "pod_with"), ERROR_LIMITS, ids=[c for c, _ in ERROR_LIMITS])
def test_a_request_of_exactly_allocatable_fits_and_one_unit_more_does_not(
    cluster_doc: dict[str, Any], check: str, pod_with: Any
) -> None:
    assert _errors(_findings(cluster_doc, pod_with(0))) == []
    assert _errors(_findings(cluster_doc, pod_with(1))) == [check]


def test_the_cpu_error_names_the_request_the_allocatable_and_the_reserve(cluster_doc: dict[str, Any]) -> None:
    (finding,) = _findings(cluster_doc, _g5_pod(cpu="7911m"))
    assert finding.message == (
        "requests 7.911 CPU but node group 'gpu-g5' (g5.2xlarge) has 7.91 allocatable "
        "(EKS kube-reserved 90m); lower resources.requests.cpu or pick a larger instance type"
    )
    assert finding.workload == "Deployment/lorax"


def test_the_memory_error_names_the_request_and_the_allocatable(cluster_doc: dict[str, Any]) -> None:
    (finding,) = [f for f in _findings(cluster_doc, _g5_pod(memory="32Gi")) if f.severity == "error"]
    assert finding.message == (
        "requests 32.0 GiB of memory but node group 'gpu-g5' (g5.2xlarge) has 31.0 GiB allocatable "
        "(kube-reserved 0.9 GiB for 58 pods, eviction 100 MiB); lower resources.requests.memory"
    )


# ------------------------------------------------------- warnings: quiet at the margin, one unit past warns
WARNING_LIMITS = [
    ("cpu", lambda d: _g5_pod(cpu=f"{CPU_WARN_ABOVE_M + d}m")),
    ("memory", lambda d: _g5_pod(memory=str(MEMORY_WARN_ABOVE + d), shm="1Mi")),
    # a 24 GiB request plus a /dev/shm that fills allocatable exactly
    ("memory", lambda d: _g5_pod(shm=str(MEMORY_ALLOCATABLE - 24 * 2**30 + d))),
    ("disk", lambda d: _g5_pod(cache=str(DISK_WARN_ABOVE + d))),
    ("disk", lambda d: _with_ephemeral(_g5_pod(cache="1Gi"), DISK_WARN_ABOVE + d)),
]


@pytest.mark.parametrize(
    ("check", "pod_with"),
    WARNING_LIMITS,
    ids=["cpu", "memory", "memory-and-shm", "disk-cache", "disk-request"],
)
def test_a_request_at_its_margin_is_quiet_and_one_unit_past_warns(
    cluster_doc: dict[str, Any], check: str, pod_with: Any
) -> None:
    assert _findings(cluster_doc, pod_with(0)) == []
    findings = _findings(cluster_doc, pod_with(1))
    assert (_errors(findings), _warnings(findings)) == ([], [check])


def test_the_warning_messages_name_the_margins(cluster_doc: dict[str, Any]) -> None:
    (cpu,) = _findings(cluster_doc, _g5_pod(cpu="7786m"))
    assert "requests 7.786 CPU, within 125m of node group 'gpu-g5' (g5.2xlarge)'s allocatable" in cpu.message
    (memory,) = _findings(cluster_doc, _g5_pod(memory="30Gi", shm="1Mi"))
    # the margin shown is allocatable minus the real-node estimate: int(0.075 * 32 GiB) = 2.4 GiB
    assert memory.message.startswith("requests 30.0 GiB, within 2.4 GiB of node group 'gpu-g5'")
    (disk,) = _findings(cluster_doc, _g5_pod(cache="150Gi"))
    assert "200.0 GiB root volume leaves ~144.0 GiB after the OS" in disk.message


def test_a_disk_warning_takes_the_larger_of_the_cache_and_the_request(cluster_doc: dict[str, Any]) -> None:
    # a small cache does not hide a large ephemeral request, nor a small request a large cache
    assert _warnings(_findings(cluster_doc, _with_ephemeral(_g5_pod(cache="1Gi"), 150 * 2**30))) == ["disk"]
    assert _warnings(_findings(cluster_doc, _with_ephemeral(_g5_pod(cache="150Gi"), 2**30))) == ["disk"]


def test_a_warning_is_dropped_when_another_fitting_group_is_free_of_it(cluster_doc: dict[str, Any]) -> None:
    # 7.786 CPU warns on a g5.2xlarge alone; a second group of g5.4xlarge (16 vCPU) holds it with room
    bigger = {**node_group(cluster_doc, "gpu-g5"), "name": "gpu-g5-big", "instanceType": "g5.4xlarge"}
    cluster_doc["managedNodeGroups"].append(bigger)
    assert _findings(cluster_doc, _g5_pod(cpu="7786m")) == []


def test_requests_are_summed_over_containers_at_the_limit(cluster_doc: dict[str, Any]) -> None:
    # two containers of 3955m each add up to exactly 7910m: fits; 3955m + 3956m does not
    for second, errors in (("3955m", []), ("3956m", ["cpu"])):
        pod = _g5_pod(cpu="3955m")
        pod["containers"].append({"name": "side", "resources": {"requests": {"cpu": second}}})
        assert _errors(_findings(cluster_doc, pod)) == errors


def test_a_shm_of_exactly_allocatable_beside_no_memory_request_is_quiet_and_one_byte_more_warns(
    cluster_doc: dict[str, Any],
) -> None:
    # a missing memory request counts as 0, so the /dev/shm alone meets the limit
    def pod(shm: int) -> dict[str, Any]:
        spec = _g5_pod(shm=str(shm))
        for part in ("requests", "limits"):
            del spec["containers"][0]["resources"][part]["memory"]
        return spec

    assert _findings(cluster_doc, pod(MEMORY_ALLOCATABLE)) == []
    assert _warnings(_findings(cluster_doc, pod(MEMORY_ALLOCATABLE + 1))) == ["memory"]


def test_an_emptydir_without_a_size_limit_adds_nothing(cluster_doc: dict[str, Any]) -> None:
    # nothing bounds it, so neither the scheduler nor this check can count it: 0 bytes, not 1
    pod = _g5_pod(memory=str(MEMORY_ALLOCATABLE))
    for volume in pod["volumes"]:
        volume["emptyDir"].pop("sizeLimit")
    needs = pod_needs(pod)
    assert (needs.memory_volumes, needs.disk_volumes) == (0, 0)
    # a request of exactly allocatable fits; the one warning is the real-node margin, not "request + shm"
    (finding,) = _findings(cluster_doc, pod)
    assert (finding.severity, finding.check) == ("warning", "memory")
    assert "a real node's memory is a few per cent below nominal" in finding.message


def test_a_resource_no_node_offers_is_an_error_but_hugepages_are_left_to_the_node_config(
    cluster_doc: dict[str, Any],
) -> None:
    pod = _g5_pod()
    pod["containers"][0]["resources"]["requests"]["vpc.amazonaws.com/efa"] = "1"
    (finding,) = _findings(cluster_doc, pod)
    assert (finding.severity, finding.check) == ("error", "resources")
    assert (
        finding.message
        == "requests 1 vpc.amazonaws.com/efa, which no node of node group 'gpu-g5' (g5.2xlarge) offers"
    )
    # hugepages are reserved by the node's kernel settings (preBootstrapCommands), which the model cannot read
    pod = _g5_pod()
    pod["containers"][0]["resources"]["requests"]["hugepages-2Mi"] = "1Gi"
    assert _findings(cluster_doc, pod) == []
