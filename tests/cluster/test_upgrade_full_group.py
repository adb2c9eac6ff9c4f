"""`helm upgrade` of the image when the GPU node group is full (both g6e nodes' single GPU in use).

The chart accepts only the LoRAX build its launcher contract describes (image.tag 0.12.1), so the upgrade
pins that build by digest instead: a new pod template, the same rollout as a new tag.

What each update strategy does there, on the real Deployment controller and scheduler:
* the chart's default, RollingUpdate maxSurge 1 / maxUnavailable 0: the surge pod stays Pending
  ("Insufficient nvidia.com/gpu") and the old pods keep serving; the rollout waits for a free GPU (on EKS,
  cluster-autoscaler adds a node while the group is below maxSize);
* maxSurge 0 / maxUnavailable 1: it replaces one pod at a time and completes on the full group;
* Recreate: it stops every old pod first and completes, with no pod serving meanwhile.
"""

from __future__ import annotations

from cluster_helpers import CHART, REPO, describe, install

from loraxkit.testcluster.cluster import LoopbackCluster

G6E = REPO / "values" / "g6e-l40s-mistral-7b-instruct-bf16.yaml"
SELECTOR = "app.kubernetes.io/instance=lorax"
FULL = ("--set", "replicaCount=2")  # two g6e nodes with one GPU each
DIGEST = "sha256:" + "ab" * 32


def _upgrade(cluster: LoopbackCluster, *extra: str, wait: bool) -> None:
    args = [
        "upgrade",
        "lorax",
        CHART,
        "-n",
        "lorax",
        "-f",
        str(G6E),
        *FULL,
        "--set",
        f"image.digest={DIGEST}",
        *extra,
    ]
    cluster.helm(*(args + (["--wait", "--timeout", "3m"] if wait else [])), timeout=240)


def _images(cluster: LoopbackCluster, namespace: str) -> dict[str, str]:
    pods = cluster.core.list_namespaced_pod(namespace, label_selector=SELECTOR).items
    return {
        p.metadata.name: p.spec.containers[0].image for p in pods if p.metadata.deletion_timestamp is None
    }


def _ready(cluster: LoopbackCluster, namespace: str) -> int:
    deployment = cluster.apps.read_namespaced_deployment("lorax", namespace)
    return int(deployment.status.ready_replicas or 0)


def test_default_strategy_keeps_old_pods_serving_and_surge_pod_pending(
    loopback_cluster: LoopbackCluster, namespace: str
) -> None:
    install(loopback_cluster, G6E, *FULL)
    _upgrade(loopback_cluster, wait=False)

    def surge_pending() -> bool:
        return any(p.reason for p in loopback_cluster.placements(namespace, SELECTOR))

    loopback_cluster.wait(surge_pending, "the surge pod's scheduling verdict", 60)
    placements = loopback_cluster.placements(namespace, SELECTOR)
    pending = [p for p in placements if p.node is None]
    assert len(pending) == 1 and "Insufficient nvidia.com/gpu" in pending[0].reason, describe(placements)
    images = _images(loopback_cluster, namespace)
    assert images[pending[0].pod].endswith(DIGEST)
    old = [name for name, image in images.items() if image.endswith(":0.12.1")]
    assert len(old) == 2 and _ready(loopback_cluster, namespace) == 2, "the old pods must keep serving"


def test_max_unavailable_one_completes_on_a_full_group(
    loopback_cluster: LoopbackCluster, namespace: str
) -> None:
    install(loopback_cluster, G6E, *FULL)
    _upgrade(
        loopback_cluster,
        "--set",
        "updateStrategy.rollingUpdate.maxSurge=0,updateStrategy.rollingUpdate.maxUnavailable=1",
        wait=True,
    )
    images = _images(loopback_cluster, namespace)
    assert len(images) == 2 and all(i.endswith(DIGEST) for i in images.values()), images
    assert _ready(loopback_cluster, namespace) == 2


def test_recreate_completes_on_a_full_group(loopback_cluster: LoopbackCluster, namespace: str) -> None:
    install(loopback_cluster, G6E, *FULL)
    _upgrade(
        loopback_cluster, "--set", "updateStrategy.type=Recreate,updateStrategy.rollingUpdate=null", wait=True
    )
    images = _images(loopback_cluster, namespace)
    assert len(images) == 2 and all(i.endswith(DIGEST) for i in images.values()), images
