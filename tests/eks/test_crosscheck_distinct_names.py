"""The cross-check's identity, volume and workload rules on data that tells things apart: a namespace and a
ServiceAccount with different names (the shipped files use `lorax` for both, so a swap would go unseen),
policies missing one S3 action at a time, EBS sizes and access modes at their limits, every pod-creating
kind, and every way a pod says it reads adapters from S3."""

from __future__ import annotations

from typing import Any

import pytest
from eks_helpers import cluster_of, deployment, gpu_pod, lorax_identity, s3_pod, service_account

from loraxkit.eks.crosscheck import Finding, cross_check, s3_bucket_use, workloads

NS, SA, BUCKET = "ml-serving", "lorax-reader", "lorax-adapters-example"


def _identity(doc: dict[str, Any], namespace: str = NS, account: str = SA) -> dict[str, Any]:
    pia = lorax_identity(doc)
    pia["namespace"], pia["serviceAccountName"] = namespace, account
    return pia


def _check(doc: dict[str, Any], *manifests: dict[str, Any], namespace: str = NS) -> list[Finding]:
    return cross_check(list(manifests), cluster_of(doc), namespace=namespace)


def _identity_messages(findings: list[Finding]) -> list[str]:
    return [f.message for f in findings if f.check == "identity"]


def test_distinct_namespace_and_service_account_pass_when_both_match(cluster_doc: dict[str, Any]) -> None:
    _identity(cluster_doc)
    assert _check(cluster_doc, deployment(s3_pod(service_account=SA)), service_account(SA)) == []


def test_namespace_and_service_account_swapped_in_the_association_fail(cluster_doc: dict[str, Any]) -> None:
    _identity(cluster_doc, namespace=SA, account=NS)
    messages = _identity_messages(
        _check(cluster_doc, deployment(s3_pod(service_account=SA)), service_account(SA))
    )
    assert len(messages) == 1
    assert (
        f"reads S3 adapters as ServiceAccount {NS}/{SA} but no Pod Identity association names it"
        in messages[0]
    )
    assert f"{SA}/{NS}" in messages[0]  # the associations it has, so the swap is visible


def test_the_workloads_own_namespace_beats_the_install_namespace(cluster_doc: dict[str, Any]) -> None:
    _identity(cluster_doc, namespace="team-b")
    pod = deployment(s3_pod(service_account=SA), namespace="team-b")
    sa = service_account(SA)
    sa["metadata"]["namespace"] = "team-b"
    assert _check(cluster_doc, pod, sa) == []
    # installed elsewhere, the same workload still runs in team-b
    assert _check(cluster_doc, pod, sa, namespace="other") == []


def test_a_service_account_rendered_in_another_namespace_does_not_count(cluster_doc: dict[str, Any]) -> None:
    _identity(cluster_doc)
    sa = service_account(SA)
    sa["metadata"]["namespace"] = "elsewhere"
    messages = _identity_messages(_check(cluster_doc, deployment(s3_pod(service_account=SA)), sa))
    assert messages == [
        f"runs as ServiceAccount {NS}/{SA}, which the chart does not render; the association only works "
        "once that ServiceAccount exists"
    ]


def test_a_service_account_of_another_name_does_not_count(cluster_doc: dict[str, Any]) -> None:
    _identity(cluster_doc)
    messages = _identity_messages(
        _check(cluster_doc, deployment(s3_pod(service_account=SA)), service_account(NS))
    )
    assert len(messages) == 1 and "which the chart does not render" in messages[0]


def test_the_deprecated_service_account_field_is_read_too(cluster_doc: dict[str, Any]) -> None:
    _identity(cluster_doc)
    pod = s3_pod()
    del pod["serviceAccountName"]
    pod["serviceAccount"] = SA
    assert _check(cluster_doc, deployment(pod), service_account(SA)) == []


def _statements(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The shipped association's statements (call before `_identity` renames it)."""
    return list(lorax_identity(doc)["permissionPolicy"]["Statement"])


@pytest.mark.parametrize(
    ("keep", "missing"),
    [
        ("ReadAdapterObjects", "['s3:ListBucket']"),  # ListBucket dropped: a missing key turns into a 403
        ("ListAdapterBucket", "['s3:GetObject']"),
    ],
)
def test_a_policy_missing_one_read_action_fails(cluster_doc: dict[str, Any], keep: str, missing: str) -> None:
    _identity(cluster_doc)["permissionPolicy"]["Statement"] = [
        s for s in _statements(cluster_doc) if s["Sid"] == keep
    ]
    messages = _identity_messages(
        _check(cluster_doc, deployment(s3_pod(service_account=SA)), service_account(SA))
    )
    assert messages == [
        f"reads bucket '{BUCKET}' but the {NS}/{SA} association does not grant {missing} on it; "
        "fix the bucket in the permissionPolicy"
    ]


def test_list_bucket_on_the_objects_arn_is_not_list_bucket_on_the_bucket(cluster_doc: dict[str, Any]) -> None:
    statements = _statements(cluster_doc)
    statements[0]["Resource"] = [f"arn:aws:s3:::{BUCKET}/*"]
    _identity(cluster_doc)["permissionPolicy"]["Statement"] = statements
    messages = _identity_messages(
        _check(cluster_doc, deployment(s3_pod(service_account=SA)), service_account(SA))
    )
    assert len(messages) == 1 and "['s3:ListBucket']" in messages[0]


def test_grants_of_two_associations_for_the_same_account_add_up(cluster_doc: dict[str, Any]) -> None:
    statements = _statements(cluster_doc)
    first = _identity(cluster_doc)
    first["permissionPolicy"]["Statement"] = statements[:1]
    second = {**first, "permissionPolicy": {"Version": "2012-10-17", "Statement": statements[1:]}}
    cluster_doc["iam"]["podIdentityAssociations"].append(second)
    assert _check(cluster_doc, deployment(s3_pod(service_account=SA)), service_account(SA)) == []


def test_a_deny_statement_grants_nothing(cluster_doc: dict[str, Any]) -> None:
    statements = _statements(cluster_doc)
    statements[1]["Effect"] = "Deny"
    _identity(cluster_doc)["permissionPolicy"]["Statement"] = statements
    messages = _identity_messages(
        _check(cluster_doc, deployment(s3_pod(service_account=SA)), service_account(SA))
    )
    assert len(messages) == 1 and "['s3:GetObject']" in messages[0]


# ---------------------------------------------------------------- how a pod says it reads S3
def _container(args: list[str] | None = None, env: dict[str, str] | None = None) -> dict[str, Any]:
    return {"name": "c", "args": args or [], "env": [{"name": k, "value": v} for k, v in (env or {}).items()]}


S3_USES = [
    ("flag and value", _container(["--adapter-source", "s3"]), (True, None)),
    ("flag=value", _container(["--adapter-source=s3"]), (True, None)),
    ("default flag", _container(["--default-adapter-source", "s3"]), (True, None)),
    ("env", _container(env={"ADAPTER_SOURCE": "s3"}), (True, None)),
    ("default env", _container(env={"DEFAULT_ADAPTER_SOURCE": "s3"}), (True, None)),
    ("bucket env", _container(env={"PREDIBASE_MODEL_BUCKET": "b1"}), (True, "b1")),
    ("s3 uri arg", _container(["--preloaded-adapter-ids", "s3://b2/x"]), (True, None)),
    ("hub", _container(["--adapter-source", "hub"]), (False, None)),
    ("flag without value", _container(["--adapter-source"]), (False, None)),
    ("other flag", _container(["--source", "s3"]), (False, None)),
    ("empty bucket env", _container(env={"PREDIBASE_MODEL_BUCKET": ""}), (False, None)),
]


@pytest.mark.parametrize(("case", "container", "expected"), S3_USES, ids=[c[0] for c in S3_USES])
def test_every_way_of_reading_s3_is_seen(
    case: str, container: dict[str, Any], expected: tuple[bool, Any]
) -> None:
    assert s3_bucket_use({"containers": [container]}) == expected
    assert s3_bucket_use({"containers": [_container()], "initContainers": [container]}) == expected


def test_a_pod_that_does_not_read_s3_needs_no_service_account(cluster_doc: dict[str, Any]) -> None:
    assert _check(cluster_doc, deployment(gpu_pod())) == []  # the namespace's default ServiceAccount


# ---------------------------------------------------------------- which objects are workloads
def test_every_pod_creating_kind_is_a_workload_in_its_namespace() -> None:
    pod = {"containers": [{"name": "c"}]}
    docs = [
        {"kind": "Deployment", "metadata": {"name": "d"}, "spec": {"template": {"spec": pod}}},
        {"kind": "StatefulSet", "metadata": {"name": "s", "namespace": "x"},
         "spec": {"template": {"spec": pod}, "volumeClaimTemplates": [{"metadata": {"name": "v"}}]}},
        {"kind": "ReplicaSet", "metadata": {"name": "r"}, "spec": {"template": {"spec": pod}}},
        {"kind": "Job", "metadata": {"name": "j"}, "spec": {"template": {"spec": pod}}},
        {"kind": "CronJob", "metadata": {"name": "c"},
         "spec": {"jobTemplate": {"spec": {"template": {"spec": pod}}}}},
        {"kind": "Pod", "metadata": {"name": "p"}, "spec": pod},
        {"kind": "DaemonSet", "metadata": {"name": "ds"}, "spec": {"template": {"spec": pod}}},
        {"kind": "Service", "metadata": {"name": "svc"}, "spec": {}},
    ]  # fmt: skip
    found = workloads(docs, "install-ns")
    assert [(w.kind, w.name, w.namespace) for w in found] == [
        ("Deployment", "d", "install-ns"),
        ("StatefulSet", "s", "x"),
        ("ReplicaSet", "r", "install-ns"),
        ("Job", "j", "install-ns"),
        ("CronJob", "c", "install-ns"),
        ("Pod", "p", "install-ns"),
    ]
    assert all(w.pod_spec == pod for w in found)
    assert found[1].claim_templates == ({"metadata": {"name": "v"}},)
    assert all(w.claim_templates == () for w in found if w.kind != "StatefulSet")


# ---------------------------------------------------------------- EBS claims at their limits
def _pvc(size: str = "100Gi", modes: tuple[str, ...] = ("ReadWriteOnce",), **spec: Any) -> dict[str, Any]:
    return {
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "lorax-cache"},
        "spec": {"accessModes": list(modes), "resources": {"requests": {"storage": size}}, **spec},
    }


def _pvc_pod() -> dict[str, Any]:
    pod = gpu_pod()
    pod["volumes"][1] = {"name": "model-cache", "persistentVolumeClaim": {"claimName": "lorax-cache"}}
    return pod


def _volume_messages(doc: dict[str, Any], *manifests: dict[str, Any]) -> list[str]:
    return [f.message for f in _check(doc, *manifests) if f.check == "volume"]


@pytest.mark.parametrize(
    "modes", [("ReadWriteOnce",), ("ReadWriteOncePod",), ("ReadWriteOnce", "ReadWriteOncePod")]
)
def test_ebs_takes_both_single_node_access_modes(cluster_doc: dict[str, Any], modes: tuple[str, ...]) -> None:
    assert _volume_messages(cluster_doc, deployment(_pvc_pod()), _pvc(modes=modes)) == []


@pytest.mark.parametrize("mode", ["ReadWriteMany", "ReadOnlyMany"])
def test_ebs_refuses_multi_node_access_modes(cluster_doc: dict[str, Any], mode: str) -> None:
    messages = _volume_messages(cluster_doc, deployment(_pvc_pod()), _pvc(modes=("ReadWriteOnce", mode)))
    assert len(messages) == 1 and f"wants ['{mode}']" in messages[0]


def test_an_ebs_volume_of_exactly_16_tib_passes_and_one_byte_more_fails(cluster_doc: dict[str, Any]) -> None:
    assert _volume_messages(cluster_doc, deployment(_pvc_pod()), _pvc(size="16Ti")) == []
    messages = _volume_messages(cluster_doc, deployment(_pvc_pod()), _pvc(size=str(16 * 2**40 + 1)))
    assert len(messages) == 1 and "EBS volumes stop at 16384.0 GiB" in messages[0]


def test_a_named_or_empty_storage_class_is_left_to_the_user(cluster_doc: dict[str, Any]) -> None:
    for storage_class in ("", "efs-sc"):
        pvc = _pvc(size="20Ti", modes=("ReadWriteMany",), storageClassName=storage_class)
        assert _volume_messages(cluster_doc, deployment(_pvc_pod()), pvc) == []


def test_a_claim_the_chart_does_not_render_is_not_checked(cluster_doc: dict[str, Any]) -> None:
    pod = _pvc_pod()
    pod["volumes"][1]["persistentVolumeClaim"]["claimName"] = "users-own-claim"
    assert _volume_messages(cluster_doc, deployment(pod), _pvc(size="20Ti")) == []


def test_statefulset_claim_templates_are_checked(cluster_doc: dict[str, Any]) -> None:
    statefulset = deployment(gpu_pod())
    statefulset["kind"] = "StatefulSet"
    statefulset["spec"]["volumeClaimTemplates"] = [_pvc(modes=("ReadWriteMany",))]
    messages = _volume_messages(cluster_doc, statefulset)
    assert len(messages) == 1 and "wants ['ReadWriteMany']" in messages[0]


def test_a_null_storage_class_is_the_default_class_and_is_checked(cluster_doc: dict[str, Any]) -> None:
    # storageClassName: null (unlike "") asks for the cluster's default class, i.e. EBS here
    pvc = _pvc(modes=("ReadWriteMany",), storageClassName=None)
    assert _volume_messages(cluster_doc, deployment(_pvc_pod()), pvc) == [
        "PVC lorax-cache wants ['ReadWriteMany']; the default (EBS) StorageClass only offers ReadWriteOnce; "
        "use EFS/FSx or ReadWriteOnce"
    ]


def test_the_volume_messages_name_the_claim(cluster_doc: dict[str, Any]) -> None:
    messages = _volume_messages(cluster_doc, deployment(_pvc_pod()), _pvc(size=str(16 * 2**40 + 1)))
    assert messages == ["PVC lorax-cache asks 16384.0 GiB; EBS volumes stop at 16384.0 GiB"]
