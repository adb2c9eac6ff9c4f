"""The whole chart, every optional object on, is accepted by the API server with strict field validation
(unknown or duplicate fields are errors, not silently dropped), for every profile.

`helm install` (Helm 4.2.3) applies server-side with fieldValidation=Strict by default
(pkg/kube/client.go:348@v4.2.3); the `helm test` pod is a hook that only `helm test` creates, so it is
created here as a server-side dry run with fieldValidation=Strict.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from cluster_helpers import PROFILES, install, with_overrides
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import ApiException

from loraxkit.testcluster.cluster import LoopbackCluster

# Two sets: the chart refuses a ReadWriteOnce cache volume together with an autoscaler or a surge rollout.
OPTIONAL = {
    "serving": {
        "podDisruptionBudget": {"enabled": True},
        "autoscaling": {"enabled": True},
        "networkPolicy": {"enabled": True, "loadBalancerCidrs": ["10.0.0.0/16"]},
        "loadBalancer": {"enabled": True},
        "tests": {"enabled": True},
    },
    "model-cache-volume": {
        "modelCache": {"type": "persistentVolumeClaim"},
        "updateStrategy": {"type": "Recreate"},
    },
}
EXPECTED_KINDS = {
    "serving": {"PodDisruptionBudget", "HorizontalPodAutoscaler", "NetworkPolicy", "Service", "Deployment"},
    "model-cache-volume": {"PersistentVolumeClaim", "Deployment"},
}


def strict_dry_run(cluster: LoopbackCluster, manifest: dict[str, Any], namespace: str) -> None:
    """POST it as a server-side dry run with fieldValidation=Strict; raises ApiException if refused."""
    resource = DynamicClient(cluster.api).resources.get(
        api_version=manifest["apiVersion"], kind=manifest["kind"]
    )
    resource.create(
        body=manifest,
        namespace=namespace if resource.namespaced else None,
        dry_run="All",
        query_params=[("fieldValidation", "Strict")],
    )


def test_strict_dry_run_refuses_an_unknown_field(loopback_cluster: LoopbackCluster) -> None:
    """The check below can fail: a misspelt field is an error, not a dropped key."""
    config_map = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "dat": {"a": "b"}}
    with pytest.raises(ApiException, match=r'unknown field \\?"dat\\?"'):
        strict_dry_run(loopback_cluster, config_map, "default")


@pytest.mark.parametrize("optional", OPTIONAL)
@pytest.mark.parametrize("profile", PROFILES, ids=[p.stem for p in PROFILES])
def test_every_optional_object_is_accepted_strictly(
    loopback_cluster: LoopbackCluster, namespace: str, tmp_path: Path, profile: Path, optional: str
) -> None:
    values = with_overrides(profile, OPTIONAL[optional], tmp_path)
    install(loopback_cluster, values, wait=False)  # no --wait: no LB controller, no volume provisioner here
    status = yaml.safe_load(loopback_cluster.helm("status", "lorax", "-n", namespace, "-o", "json").stdout)
    assert status["info"]["status"] == "deployed", status["info"]
    manifest = loopback_cluster.helm("get", "manifest", "lorax", "-n", namespace).stdout
    stored = [d for d in yaml.safe_load_all(manifest) if d]
    assert EXPECTED_KINDS[optional] <= {d["kind"] for d in stored}
    dynamic = DynamicClient(loopback_cluster.api)
    for doc in stored:  # every object the release rendered is in the API server
        resource = dynamic.resources.get(api_version=doc["apiVersion"], kind=doc["kind"])
        resource.get(name=doc["metadata"]["name"], namespace=namespace if resource.namespaced else None)
    hooks = [
        d
        for d in yaml.safe_load_all(loopback_cluster.helm("get", "hooks", "lorax", "-n", namespace).stdout)
        if d
    ]
    if optional == "serving":
        assert any(d["kind"] == "Pod" for d in hooks), "no helm test pod rendered"
    for hook in hooks:
        strict_dry_run(loopback_cluster, hook, namespace)
