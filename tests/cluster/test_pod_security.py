"""Pod Security admission in enforce mode: which level the chart's pods pass, on the real API server.

Found: every profile's LoRAX pod passes `baseline` but not `restricted` (the image runs as root, so the chart
does not set runAsNonRoot); `podSecurityContext.runAsNonRoot=true` with a `runAsUser` reaches `restricted`.
The `helm test` pod passes `restricted` as it is. A hostPath model cache falls below `baseline`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cluster_helpers import CHART, PROFILES, REPO, install
from kubernetes import client as k8s
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import ApiException

from loraxkit.testcluster.cluster import LoopbackCluster

NON_ROOT = (
    "podSecurityContext.runAsNonRoot=true,podSecurityContext.runAsUser=1000,podSecurityContext.fsGroup=1000"
)
LEVELS = ("baseline", "restricted")


@pytest.fixture(scope="module")
def psa_namespaces(loopback_cluster: LoopbackCluster) -> Iterator[dict[str, str]]:
    names = {level: f"psa-{level}" for level in LEVELS}
    for level, name in names.items():
        labels = {
            "pod-security.kubernetes.io/enforce": level,
            "pod-security.kubernetes.io/enforce-version": "latest",
        }
        loopback_cluster.core.create_namespace(
            k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=name, labels=labels))
        )
    yield names
    for name in names.values():
        loopback_cluster.delete_namespace(name)


def rendered_pods(cluster: LoopbackCluster, profile: Path, *sets: str) -> dict[str, dict[str, Any]]:
    """`helm template` pods: "server" (the Deployment template) and "helm-test" (the test hook)."""
    args = ["template", "lorax", CHART, "-n", "lorax", "-f", str(profile)]
    for item in sets:
        args += ["--set", item]
    docs = [d for d in yaml.safe_load_all(cluster.helm(*args).stdout) if d]
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    template = deployment["spec"]["template"]
    server = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "lorax-server"},
        "spec": template["spec"],
    }
    pods = {"server": server}
    test_pod = next((d for d in docs if d["kind"] == "Pod"), None)
    if test_pod is not None:
        pods["helm-test"] = test_pod
    return pods


def admitted(cluster: LoopbackCluster, pod: dict[str, Any], namespace: str) -> str:
    """'' when Pod Security admits the pod (server-side dry run), else the API server's refusal."""
    # Pod Security judges the pod alone; the chart's ServiceAccount does not exist in these namespaces.
    spec = {k: v for k, v in pod["spec"].items() if k != "serviceAccountName"}
    body = {**pod, "metadata": {"name": pod["metadata"]["name"]}, "spec": spec}
    pods = DynamicClient(cluster.api).resources.get(api_version="v1", kind="Pod")
    try:
        pods.create(body=body, namespace=namespace, dry_run="All")
    except ApiException as exc:
        assert exc.status == 403, exc.body
        return str(exc.body)
    return ""


@pytest.mark.parametrize("profile", PROFILES, ids=[p.stem for p in PROFILES])
def test_levels_each_profile_passes(
    loopback_cluster: LoopbackCluster, psa_namespaces: dict[str, str], profile: Path
) -> None:
    pods = rendered_pods(loopback_cluster, profile)
    assert admitted(loopback_cluster, pods["server"], psa_namespaces["baseline"]) == ""
    refusal = admitted(loopback_cluster, pods["server"], psa_namespaces["restricted"])
    assert "runAsNonRoot != true" in refusal, refusal or "admitted: the docs and this test say it is not"
    assert admitted(loopback_cluster, pods["helm-test"], psa_namespaces["restricted"]) == ""
    non_root = rendered_pods(loopback_cluster, profile, NON_ROOT)
    assert admitted(loopback_cluster, non_root["server"], psa_namespaces["restricted"]) == ""


def test_host_path_cache_is_below_baseline(
    loopback_cluster: LoopbackCluster, psa_namespaces: dict[str, str]
) -> None:
    profile = REPO / "values" / "g6e-l40s-mistral-7b-instruct-bf16.yaml"
    pods = rendered_pods(loopback_cluster, profile, "modelCache.type=hostPath")
    assert "hostPath volumes" in admitted(loopback_cluster, pods["server"], psa_namespaces["baseline"])


def test_restricted_namespace_with_default_values_creates_no_pod(
    loopback_cluster: LoopbackCluster, namespace: str
) -> None:
    """What a user sees: the install succeeds, the ReplicaSet cannot create the pod (FailedCreate)."""
    labels = {"pod-security.kubernetes.io/enforce": "restricted"}
    loopback_cluster.core.create_namespace(
        k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=namespace, labels=labels))
    )
    profile = REPO / "values" / "g6e-l40s-mistral-7b-instruct-bf16.yaml"
    install(loopback_cluster, profile, wait=False)

    def refused() -> bool:
        return "violates PodSecurity" in loopback_cluster.events(namespace)

    loopback_cluster.wait(refused, "the ReplicaSet's FailedCreate event", 60)
    assert loopback_cluster.placements(namespace) == []
    loopback_cluster.helm("uninstall", "lorax", "-n", namespace)
    install(loopback_cluster, profile, "--set", NON_ROOT)  # --wait: Running and Ready under restricted
    assert [p.node for p in loopback_cluster.placements(namespace)] != [None]
