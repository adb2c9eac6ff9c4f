"""Every values/ profile, rendered by the real Helm engine, against eks/cluster.yaml.

A profile passes when its pod selects a node group, tolerates that group's taints, fits its GPUs, CPU, memory
and disk, and reads S3 through a ServiceAccount that a Pod Identity association names. The mutation tests
change one side (the cluster copy or the profile's values) and expect the matching check to fail.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from eks_helpers import REPO, cluster_of, lorax_identity, node_group

from loraxkit.chart.render import render, render_hooks
from loraxkit.eks.crosscheck import Finding, cross_check

NAMESPACE = "lorax"  # docs/eks.md: helm install lorax charts/lorax -n lorax
PROFILES = sorted((REPO / "values").glob("*.yaml"))
G6E = REPO / "values" / "g6e-l40s-mistral-7b-instruct-bf16.yaml"
P4D = REPO / "values" / "p4d-a100-llama3.1-70b-instruct-bf16.yaml"


def _findings(
    doc: dict[str, Any], profile: Path, values: dict[str, Any] | None = None, namespace: str = NAMESPACE
) -> list[Finding]:
    # The release's objects plus its hooks: the `helm test` pod has to be scheduled too.
    manifests = render(values, [profile], release="lorax", namespace=namespace)
    manifests += render_hooks(values, [profile], release="lorax", namespace=namespace)
    return cross_check(manifests, cluster_of(doc), namespace)


def _kinds(findings: list[Finding]) -> set[str]:
    """Checks failed with an error: what keeps a pod Pending (or S3 denied)."""
    return {f.check for f in findings if f.severity == "error"}


def test_there_are_profiles_to_check() -> None:
    assert PROFILES, "values/ has no profiles"
    assert G6E in PROFILES and P4D in PROFILES


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.stem)
def test_profile_lands_on_the_cluster(cluster_doc: dict[str, Any], profile: Path) -> None:
    findings = _findings(cluster_doc, profile)
    assert findings == [], "\n".join(map(str, findings))


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.stem)
def test_changed_taint_key_fails_every_profile(cluster_doc: dict[str, Any], profile: Path) -> None:
    for group in cluster_doc["managedNodeGroups"]:
        for taint in group.get("taints", []):
            taint["key"] = "nvidia.com/gpu-only"
    assert _kinds(_findings(cluster_doc, profile)) == {"tolerations"}


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.stem)
def test_relabelled_gpu_groups_fail_every_profile(cluster_doc: dict[str, Any], profile: Path) -> None:
    for group in cluster_doc["managedNodeGroups"]:
        labels = group.get("labels", {})
        if "k8s.amazonaws.com/accelerator" in labels:
            labels["k8s.amazonaws.com/accelerator"] += "-renamed"
    assert _kinds(_findings(cluster_doc, profile)) == {"selection"}


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.stem)
def test_one_gpu_more_than_the_group_has_fails_every_profile(
    cluster_doc: dict[str, Any], profile: Path
) -> None:
    count = int(yaml.safe_load(profile.read_text())["gpu"]["count"])
    # Sharded without CUDA graphs: the chart refuses graphs when sharded (LoRAX 0.12.1 does).
    values = {"gpu": {"count": count + 1}, "server": {"sharded": True, "cudaGraphs": False}}
    assert _kinds(_findings(cluster_doc, profile, values)) == {"gpus"}


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.stem)
def test_cache_larger_than_any_root_volume_fails_every_profile(
    cluster_doc: dict[str, Any], profile: Path
) -> None:
    values = {"modelCache": {"type": "emptyDir", "emptyDir": {"sizeLimit": "2000Gi"}}}
    assert _kinds(_findings(cluster_doc, profile, values)) == {"disk"}


def test_profile_without_the_gpu_toleration_fails(cluster_doc: dict[str, Any]) -> None:
    assert _kinds(_findings(cluster_doc, G6E, {"tolerations": []})) == {"tolerations"}


def test_profile_asking_more_gpus_than_its_group_fails(cluster_doc: dict[str, Any]) -> None:
    # cudaGraphs off: the chart refuses CUDA graphs when sharded (LoRAX 0.12.1 does).
    findings = _findings(cluster_doc, G6E, {"gpu": {"count": 2}, "server": {"cudaGraphs": False}})
    assert _kinds(findings) == {"gpus"}
    assert "asks for 2 nvidia.com/gpu" in findings[0].message


def test_group_with_fewer_gpus_than_the_profile_fails(cluster_doc: dict[str, Any]) -> None:
    group = node_group(cluster_doc, "gpu-p4d")
    group["instanceType"] = "g5.12xlarge"  # 4 GPUs, and the profile pins p4d.24xlarge
    assert _kinds(_findings(cluster_doc, P4D)) == {"selection"}
    pinned = {
        "nodeSelector": {
            "k8s.amazonaws.com/accelerator": "nvidia-a100",
            "node.kubernetes.io/instance-type": "g5.12xlarge",
        }
    }
    assert "gpus" in _kinds(_findings(cluster_doc, P4D, pinned))


def test_relabelled_group_fails_the_profile_selecting_it(cluster_doc: dict[str, Any]) -> None:
    node_group(cluster_doc, "gpu-g6e")["labels"]["k8s.amazonaws.com/accelerator"] = "nvidia-l40"
    assert _kinds(_findings(cluster_doc, G6E)) == {"selection"}


def test_cache_larger_than_the_root_volume_fails(cluster_doc: dict[str, Any]) -> None:
    node_group(cluster_doc, "gpu-p4d")["volumeSize"] = 300  # the profile's emptyDir is 300Gi
    assert _kinds(_findings(cluster_doc, P4D)) == {"disk"}


def test_shm_is_not_counted_by_the_scheduler(cluster_doc: dict[str, Any]) -> None:
    # g6e.2xlarge has 64 GiB; the profile requests 20 GiB. A 48 GiB /dev/shm does not stop the scheduler (it
    # counts requests only), so it is a warning, never an error. (The limit is raised too: the chart itself
    # refuses a /dev/shm larger than the memory limit.)
    values = {"shm": {"sizeLimit": "48Gi"}, "resources": {"limits": {"memory": "60Gi"}}}
    findings = _findings(cluster_doc, G6E, values)
    assert _kinds(findings) == set()
    assert {(f.check, f.severity) for f in findings} == {("memory", "warning")}


def test_pod_identity_must_name_the_chart_namespace(cluster_doc: dict[str, Any]) -> None:
    lorax_identity(cluster_doc)["namespace"] = "inference"
    assert _kinds(_findings(cluster_doc, P4D)) == {"identity"}


def test_pod_identity_must_name_the_chart_service_account(cluster_doc: dict[str, Any]) -> None:
    assert _kinds(_findings(cluster_doc, P4D, {"serviceAccount": {"name": "lorax-s3"}})) == {"identity"}


def test_installing_into_another_namespace_breaks_pod_identity(cluster_doc: dict[str, Any]) -> None:
    assert _kinds(_findings(cluster_doc, P4D, namespace="default")) == {"identity"}


def test_s3_bucket_must_be_granted(cluster_doc: dict[str, Any]) -> None:
    values = {"adapters": {"source": "s3", "s3": {"bucket": "lorax-adapters-example"}}}
    assert _findings(cluster_doc, G6E, values) == []
    values["adapters"]["s3"]["bucket"] = "someone-elses-bucket"
    assert _kinds(_findings(cluster_doc, G6E, values)) == {"identity"}


def test_helm_test_pod_needs_an_untainted_node(cluster_doc: dict[str, Any]) -> None:
    node_group(cluster_doc, "system")["taints"] = [
        {"key": "dedicated", "value": "addons", "effect": "NoSchedule"}
    ]
    findings = _findings(cluster_doc, G6E)
    assert [(f.check, f.workload) for f in findings] == [("tolerations", "Pod/lorax-test")]
