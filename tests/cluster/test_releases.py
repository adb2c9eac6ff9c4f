"""Two releases side by side in one namespace, and `helm uninstall` leaving nothing behind but what the
values keep on purpose (the model-cache claim with modelCache.persistentVolumeClaim.keep)."""

from __future__ import annotations

from cluster_helpers import REPO, describe, install
from kubernetes.dynamic import DynamicClient

from loraxkit.testcluster.cluster import LoopbackCluster

G6E = REPO / "values" / "g6e-l40s-mistral-7b-instruct-bf16.yaml"
# Objects every namespace has whatever is installed in it.
NAMESPACE_DEFAULTS = {("ConfigMap", "kube-root-ca.crt"), ("ServiceAccount", "default")}
EVERY_OPTIONAL = [
    "--set",
    "podDisruptionBudget.enabled=true,networkPolicy.enabled=true,networkPolicy.loadBalancerCidrs={10.0.0.0/16},"
    "loadBalancer.enabled=true,modelCache.type=persistentVolumeClaim,updateStrategy.type=Recreate,"
    "updateStrategy.rollingUpdate=null",
]


def namespace_objects(cluster: LoopbackCluster, namespace: str | None) -> set[tuple[str, str]]:
    """(kind, name) of every object in the namespace (None: cluster-scoped), over every listable resource."""
    found = set()
    dynamic = DynamicClient(cluster.api)
    for resource in dynamic.resources.search(namespaced=namespace is not None):
        if "list" not in (resource.verbs or []) or "/" in resource.name or resource.kind.endswith("List"):
            continue
        if resource.kind in ("Event",) or resource.group == "events.k8s.io":
            continue  # the record of what happened, garbage-collected by TTL
        for item in resource.get(namespace=namespace).items:
            found.add((resource.kind, item.metadata.name))
    return found


def test_two_releases_share_a_namespace(loopback_cluster: LoopbackCluster, namespace: str) -> None:
    install(loopback_cluster, G6E, release="lorax")
    install(loopback_cluster, G6E, release="lorax-b")
    a = loopback_cluster.placements(namespace, "app.kubernetes.io/instance=lorax")
    b = loopback_cluster.placements(namespace, "app.kubernetes.io/instance=lorax-b")
    assert len(a) == 1 and len(b) == 1 and a[0].node and b[0].node, describe(a + b)
    assert a[0].node != b[0].node  # one GPU each: the second release took the group's other node
    loopback_cluster.helm("uninstall", "lorax-b", "-n", namespace, "--wait")
    assert [p.pod for p in loopback_cluster.placements(namespace, "app.kubernetes.io/instance=lorax")] == [
        a[0].pod
    ]
    assert not any(name.startswith("lorax-b") for _, name in namespace_objects(loopback_cluster, namespace))


def test_uninstall_leaves_only_the_kept_cache_claim(
    loopback_cluster: LoopbackCluster, namespace: str
) -> None:
    before = namespace_objects(loopback_cluster, None)  # cluster-scoped objects
    install(loopback_cluster, G6E, *EVERY_OPTIONAL, wait=False)
    installed = namespace_objects(loopback_cluster, namespace)
    assert {"PersistentVolumeClaim", "NetworkPolicy", "PodDisruptionBudget", "Deployment"} <= {
        k for k, _ in installed
    }
    loopback_cluster.helm("uninstall", "lorax", "-n", namespace, "--wait", "--timeout", "2m")
    left = namespace_objects(loopback_cluster, namespace) - NAMESPACE_DEFAULTS
    assert left == {("PersistentVolumeClaim", "lorax-cache")}, left
    assert namespace_objects(loopback_cluster, None) - {("Namespace", namespace)} == before
