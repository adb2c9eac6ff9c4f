"""The cluster<->pod cross-checks on hand-written pod specs shaped like the chart's.

Every check is shown passing on the shipped cluster and failing when either side changes.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from eks_helpers import cluster_of, deployment, gpu_pod, lorax_identity, node_group, s3_pod, service_account

from loraxkit.eks.crosscheck import Finding, cross_check, pod_needs


def _check(doc: dict[str, Any], *manifests: dict[str, Any]) -> list[Finding]:
    return cross_check(list(manifests), cluster_of(doc), namespace="lorax")


def _kinds(findings: list[Finding]) -> set[str]:
    """The checks that failed with an error (a pod that stays Pending, a claim that never binds)."""
    return {f.check for f in findings if f.severity == "error"}


def _warned(findings: list[Finding]) -> set[str]:
    return {f.check for f in findings if f.severity == "warning"}


def test_single_gpu_pod_lands_on_each_single_gpu_group(cluster_doc: dict[str, Any]) -> None:
    for accelerator in ("nvidia-l40s", "nvidia-a10g"):
        assert _check(cluster_doc, deployment(gpu_pod(accelerator=accelerator))) == []


def test_eight_gpu_pod_lands_on_the_multi_gpu_groups(cluster_doc: dict[str, Any]) -> None:
    for accelerator in ("nvidia-a100", "nvidia-h100"):
        pod = gpu_pod(gpus=8, accelerator=accelerator, cpu="32", memory="400Gi", shm="16Gi", cache="300Gi")
        assert _check(cluster_doc, deployment(pod)) == []


def test_changed_taint_key_breaks_the_toleration(cluster_doc: dict[str, Any]) -> None:
    node_group(cluster_doc, "gpu-g6e")["taints"][0]["key"] = "nvidia.com/gpu-dedicated"
    findings = _check(cluster_doc, deployment(gpu_pod()))
    assert _kinds(findings) == {"tolerations"}
    assert "nvidia.com/gpu-dedicated=true:NoSchedule" in findings[0].message


def test_pod_without_toleration_is_kept_off_gpu_nodes(cluster_doc: dict[str, Any]) -> None:
    pod = gpu_pod()
    del pod["tolerations"]
    assert _kinds(_check(cluster_doc, deployment(pod))) == {"tolerations"}


def test_changed_label_breaks_the_node_selection(cluster_doc: dict[str, Any]) -> None:
    node_group(cluster_doc, "gpu-g6e")["labels"]["k8s.amazonaws.com/accelerator"] = "l40s"
    findings = _check(cluster_doc, deployment(gpu_pod()))
    assert _kinds(findings) == {"selection"}


def test_instance_type_is_an_implicit_label(cluster_doc: dict[str, Any]) -> None:
    pod = gpu_pod()
    pod["nodeSelector"]["node.kubernetes.io/instance-type"] = "g6e.2xlarge"
    assert _check(cluster_doc, deployment(pod)) == []
    node_group(cluster_doc, "gpu-g6e")["instanceType"] = "g6e.4xlarge"
    assert _kinds(_check(cluster_doc, deployment(pod))) == {"selection"}


def test_more_gpus_than_the_group_has_fails(cluster_doc: dict[str, Any]) -> None:
    findings = _check(cluster_doc, deployment(gpu_pod(gpus=2)))
    assert _kinds(findings) == {"gpus"}
    assert "asks for 2 nvidia.com/gpu but node group 'gpu-g6e' (g6e.2xlarge) has 1" in findings[0].message


def test_smaller_instance_in_the_group_fails_the_gpu_check(cluster_doc: dict[str, Any]) -> None:
    pod = gpu_pod(gpus=8, accelerator="nvidia-a100", cpu="32", memory="400Gi", shm="16Gi", cache="300Gi")
    assert _check(cluster_doc, deployment(pod)) == []
    group = node_group(cluster_doc, "gpu-p4d")
    group["instanceType"] = "g6e.12xlarge"  # 4 GPUs; label left as is so selection still matches
    group["labels"]["k8s.amazonaws.com/accelerator"] = "nvidia-a100"
    assert "gpus" in _kinds(_check(cluster_doc, deployment(pod)))


def test_cpu_request_must_fit_the_instance(cluster_doc: dict[str, Any]) -> None:
    assert _kinds(_check(cluster_doc, deployment(gpu_pod(cpu="8")))) == {"cpu"}


def test_shm_is_not_a_memory_request(cluster_doc: dict[str, Any]) -> None:
    # kube-scheduler counts container requests only (component-helpers PodRequests): a pod asking 24 GiB on a
    # g5.2xlarge (32 GiB, ~30.8 allocatable) schedules whatever its /dev/shm; a big one is a warning.
    assert _check(cluster_doc, deployment(gpu_pod(accelerator="nvidia-a10g"))) == []
    findings = _check(cluster_doc, deployment(gpu_pod(accelerator="nvidia-a10g", shm="8Gi")))
    assert _kinds(findings) == set() and _warned(findings) == {"memory"}
    assert pod_needs(gpu_pod(shm="8Gi")).memory == pod_needs(gpu_pod(shm="1Gi")).memory


def test_memory_request_is_checked_against_eks_allocatable(cluster_doc: dict[str, Any]) -> None:
    # g5.2xlarge: 32 GiB nominal, minus kube-reserved 893 MiB (58 pods) and 100 MiB eviction = 31.03 GiB.
    assert _kinds(_check(cluster_doc, deployment(gpu_pod(accelerator="nvidia-a10g", memory="31Gi")))) == set()
    findings = _check(cluster_doc, deployment(gpu_pod(accelerator="nvidia-a10g", memory="31.1Gi")))
    assert _kinds(findings) == {"memory"}


def test_p5_cpu_request_against_al2023_kube_reserved(cluster_doc: dict[str, Any]) -> None:
    # p5.48xlarge: 192 cores, nodeadm reserves 550m, so 191.45 are allocatable (a flat 0.4 would say 191.6).
    pod = gpu_pod(gpus=8, accelerator="nvidia-h100", cpu="191.45", memory="400Gi", shm="16Gi", cache="300Gi")
    assert _kinds(_check(cluster_doc, deployment(pod))) == set()
    pod = gpu_pod(gpus=8, accelerator="nvidia-h100", cpu="191.5", memory="400Gi", shm="16Gi", cache="300Gi")
    findings = _check(cluster_doc, deployment(pod))
    assert _kinds(findings) == {"cpu"} and "191.45 allocatable" in findings[0].message


def test_disk_emptydir_is_a_warning_and_ephemeral_request_an_error(cluster_doc: dict[str, Any]) -> None:
    # 200 GiB root: 179 allocatable (1 GiB reserved, 10% eviction), ~144 after the OS and the image.
    assert _check(cluster_doc, deployment(gpu_pod(cache="140Gi"))) == []
    findings = _check(cluster_doc, deployment(gpu_pod(cache="150Gi")))
    assert _kinds(findings) == set() and _warned(findings) == {"disk"}
    pod = gpu_pod(cache="10Gi")
    pod["containers"][0]["resources"]["requests"]["ephemeral-storage"] = "180Gi"
    assert _kinds(_check(cluster_doc, deployment(pod))) == {"disk"}
    pod["containers"][0]["resources"]["requests"]["ephemeral-storage"] = "179Gi"
    assert _kinds(_check(cluster_doc, deployment(pod))) == set()


def test_requests_follow_the_scheduler(cluster_doc: dict[str, Any]) -> None:
    pod = gpu_pod(cpu="2")
    # limit only: the API server defaults the request to the limit
    pod["containers"].append({"name": "side", "resources": {"limits": {"cpu": "3"}}})
    assert pod_needs(pod).cpu == 5
    # a plain init container counts as a maximum, not a sum
    pod["initContainers"] = [{"name": "init", "resources": {"requests": {"cpu": "4"}}}]
    assert pod_needs(pod).cpu == 5
    pod["initContainers"][0]["resources"]["requests"]["cpu"] = "6"
    assert pod_needs(pod).cpu == 6
    # a restartable (sidecar) init container adds to everything after it
    pod["initContainers"].insert(
        0, {"name": "proxy", "restartPolicy": "Always", "resources": {"requests": {"cpu": "1"}}}
    )
    assert pod_needs(pod).cpu == 7  # max(5 + 1, 1 + 6)
    # pod-level requests replace the containers' sum; overhead is added
    pod["resources"] = {"requests": {"cpu": "3"}}
    pod["overhead"] = {"cpu": "250m"}
    assert pod_needs(pod).cpu == Decimal("3.25")


def test_selection_on_labels_eks_sets(cluster_doc: dict[str, Any]) -> None:
    for key, value in (
        ("eks.amazonaws.com/capacityType", "ON_DEMAND"),
        ("eks.amazonaws.com/nodegroup", "gpu-g6e"),
        ("alpha.eksctl.io/nodegroup-name", "gpu-g6e"),
        ("nvidia.com/gpu.present", "true"),
        ("topology.kubernetes.io/region", "us-east-1"),
    ):
        pod = gpu_pod()
        pod["nodeSelector"][key] = value
        assert _check(cluster_doc, deployment(pod)) == [], key
    pod = gpu_pod()
    pod["nodeSelector"]["eks.amazonaws.com/capacityType"] = "SPOT"
    assert _kinds(_check(cluster_doc, deployment(pod))) == {"selection"}


def test_selection_on_a_zone_is_assumed_and_warned(cluster_doc: dict[str, Any]) -> None:
    pod = gpu_pod()
    pod["nodeSelector"]["topology.kubernetes.io/zone"] = "us-east-1a"
    findings = _check(cluster_doc, deployment(pod))
    assert _kinds(findings) == set() and _warned(findings) == {"selection"}


def test_host_path_cache_must_be_the_mounted_instance_store(cluster_doc: dict[str, Any]) -> None:
    pod = gpu_pod()
    pod["volumes"][1] = {"name": "model-cache", "hostPath": {"path": "/mnt/lorax-cache"}}
    findings = _check(cluster_doc, deployment(pod))  # g6e.2xlarge has NVMe, but nothing mounts it there
    assert _warned(findings) == {"disk"} and "would fill the root volume" in findings[0].message
    assert _kinds(findings) == set()  # the pod schedules; the risk is a full root disk
    node_group(cluster_doc, "gpu-g6e")["preBootstrapCommands"] = [
        "mkfs.xfs /dev/nvme1n1 && mkdir -p /mnt/lorax-cache && mount /dev/nvme1n1 /mnt/lorax-cache"
    ]
    assert _check(cluster_doc, deployment(pod)) == []


def test_host_path_cache_needs_instance_store(cluster_doc: dict[str, Any]) -> None:
    pod = gpu_pod()
    pod["volumes"][1] = {"name": "model-cache", "hostPath": {"path": "/mnt/lorax-cache"}}
    pod["nodeSelector"] = {"role": "system"}
    resources = pod["containers"][0]["resources"]
    del resources["requests"]["nvidia.com/gpu"], resources["limits"]["nvidia.com/gpu"]
    resources["requests"].update(cpu="1", memory="2Gi")
    resources["limits"]["memory"] = "2Gi"
    findings = _check(cluster_doc, deployment(pod))
    assert _warned(findings) == {"disk"}
    assert "no instance store" in findings[0].message


def _pvc(storage_class: str | None = None, modes: tuple[str, ...] = ("ReadWriteOnce",), size: str = "100Gi"):
    spec: dict[str, Any] = {"accessModes": list(modes), "resources": {"requests": {"storage": size}}}
    if storage_class is not None:
        spec["storageClassName"] = storage_class
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "lorax-cache"},
        "spec": spec,
    }


def _pvc_pod() -> dict[str, Any]:
    pod = gpu_pod()
    pod["volumes"][1] = {"name": "model-cache", "persistentVolumeClaim": {"claimName": "lorax-cache"}}
    return pod


def test_pvc_without_class_needs_a_default_storage_class(cluster_doc: dict[str, Any]) -> None:
    assert _check(cluster_doc, deployment(_pvc_pod()), _pvc()) == []
    ebs = next(a for a in cluster_doc["addons"] if a["name"] == "aws-ebs-csi-driver")
    del ebs["configurationValues"]
    assert _kinds(_check(cluster_doc, deployment(_pvc_pod()), _pvc())) == {"volume"}
    assert _check(cluster_doc, deployment(_pvc_pod()), _pvc(storage_class="gp3-custom")) == []


def test_pvc_on_ebs_must_be_read_write_once(cluster_doc: dict[str, Any]) -> None:
    findings = _check(cluster_doc, deployment(_pvc_pod()), _pvc(modes=("ReadWriteMany",)))
    assert _kinds(findings) == {"volume"}


def test_pvc_larger_than_ebs_allows(cluster_doc: dict[str, Any]) -> None:
    assert _kinds(_check(cluster_doc, deployment(_pvc_pod()), _pvc(size="20Ti"))) == {"volume"}


def test_s3_pod_with_matching_pod_identity_passes(cluster_doc: dict[str, Any]) -> None:
    assert _check(cluster_doc, deployment(s3_pod()), service_account()) == []


def test_pod_identity_namespace_must_be_the_install_namespace(cluster_doc: dict[str, Any]) -> None:
    lorax_identity(cluster_doc)["namespace"] = "default"
    findings = _check(cluster_doc, deployment(s3_pod()), service_account())
    assert _kinds(findings) == {"identity"}
    assert "lorax/lorax but no Pod Identity association names it" in findings[0].message


def test_pod_identity_service_account_must_be_the_rendered_one(cluster_doc: dict[str, Any]) -> None:
    lorax_identity(cluster_doc)["serviceAccountName"] = "lorax-server"
    assert _kinds(_check(cluster_doc, deployment(s3_pod()), service_account())) == {"identity"}


def test_service_account_must_be_rendered(cluster_doc: dict[str, Any]) -> None:
    findings = _check(cluster_doc, deployment(s3_pod()))
    assert "which the chart does not render" in findings[0].message


def test_default_service_account_is_refused_for_s3(cluster_doc: dict[str, Any]) -> None:
    pod = s3_pod()
    del pod["serviceAccountName"]
    assert "default ServiceAccount" in _check(cluster_doc, deployment(pod))[0].message


def test_bucket_must_be_the_one_the_policy_grants(cluster_doc: dict[str, Any]) -> None:
    findings = _check(cluster_doc, deployment(s3_pod(bucket="other-bucket")), service_account())
    assert _kinds(findings) == {"identity"}
    assert "'other-bucket'" in findings[0].message


def test_pods_without_s3_need_no_identity(cluster_doc: dict[str, Any]) -> None:
    cluster_doc["iam"]["podIdentityAssociations"] = []
    assert _check(cluster_doc, deployment(gpu_pod())) == []
