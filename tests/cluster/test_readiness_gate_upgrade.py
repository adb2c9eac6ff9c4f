"""validate.yaml's readiness-gate check on `helm upgrade`, against a live API server.

With loadBalancer.podReadinessGate the AWS Load Balancer Controller must inject a readiness gate into the pods
a rollout starts, which it does only in a namespace labelled elbv2.k8s.aws/pod-readiness-gate-inject=enabled.
The chart's check `lookup`s the namespace, and `lookup` answers only against a live cluster (`helm template`
gets nothing), so only an install and an upgrade here show the check fires on an upgrade, only on an upgrade,
and only while the label is missing (mutation survivor L176 of docs/mutation.md).
"""

from __future__ import annotations

import pytest
from cluster_helpers import CHART, REPO, install

from loraxkit.testcluster.cluster import ClusterTestError, LoopbackCluster

G6E = REPO / "values" / "g6e-l40s-mistral-7b-instruct-bf16.yaml"
LABEL = "elbv2.k8s.aws/pod-readiness-gate-inject"
# An NLB Service with the readiness gate (the chart's default for loadBalancer.podReadinessGate).
NLB = ("--set", "loadBalancer.enabled=true")


def _upgrade(cluster: LoopbackCluster, *extra: str) -> None:
    # No --wait: a LoadBalancer Service gets no address without the AWS controller, and only the render
    # (where the check runs) matters here.
    cluster.helm("upgrade", "lorax", CHART, "-n", "lorax", "-f", str(G6E), *NLB, *extra)


def _label(cluster: LoopbackCluster, namespace: str, value: str | None) -> None:
    cluster.core.patch_namespace(namespace, {"metadata": {"labels": {LABEL: value}}})


def test_an_upgrade_is_refused_while_the_namespace_lacks_the_readiness_gate_label(
    loopback_cluster: LoopbackCluster, namespace: str
) -> None:
    # An install into an existing unlabelled namespace is not refused: no pod of the release serves yet.
    loopback_cluster.core.create_namespace({"metadata": {"name": namespace}})
    install(loopback_cluster, G6E, *NLB, wait=False)
    with pytest.raises(ClusterTestError) as refused:
        _upgrade(loopback_cluster)
    message = str(refused.value)
    assert f"loadBalancer.podReadinessGate is true but namespace {namespace} lacks the label" in message
    assert f"kubectl label namespace {namespace} {LABEL}=enabled" in message
    _label(loopback_cluster, namespace, "disabled")  # any other value is not the controller's "enabled"
    with pytest.raises(ClusterTestError, match="lacks the label"):
        _upgrade(loopback_cluster)


def test_an_upgrade_passes_once_the_namespace_is_labelled_or_the_gate_is_off(
    loopback_cluster: LoopbackCluster, namespace: str
) -> None:
    install(loopback_cluster, G6E, *NLB, wait=False)
    _upgrade(loopback_cluster, "--set", "loadBalancer.podReadinessGate=false")  # the gap accepted
    _label(loopback_cluster, namespace, "enabled")
    _upgrade(loopback_cluster)
    history = loopback_cluster.helm("history", "lorax", "-n", namespace, "-o", "json").stdout
    assert history.count('"status":"deployed"') == 1 and history.count('"revision":3') == 1, history
