"""Every object the chart renders keeps a valid name when the names run long: at most 63 characters (the API
refuses a 64-character Service name: DNS-1035 label), a DNS label (no trailing "-" left by truncation), its
suffix kept (`-lb`, `-cache`, `-hf-token`, `-test`, `-dashboard`) so objects never collide, and every
reference to it (claimName, secretKeyRef, serviceAccountName, scaleTargetRef) renamed with it."""

from __future__ import annotations

import re
from typing import Any

import helm_python as helm
import pytest
import yaml
from chart_helpers import CHART_DIR, SERVICE_MONITOR_API, find, render, render_hooks

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
PVC = "persistentVolumeClaim"

# Every optional object on (the HPA and KEDA exclude each other: two value sets cover both).
ALL_OBJECTS: dict[str, Any] = {
    "hfToken": {"value": "hf_dummy"},
    "serviceAccount": {"create": True},
    "modelCache": {"type": PVC, PVC: {"accessModes": ["ReadWriteMany"], "storageClassName": "efs-sc"}},
    "loadBalancer": {"enabled": True, "sourceRanges": ["10.0.0.0/8"]},
    "podDisruptionBudget": {"enabled": True},
    "keda": {"enabled": True, "serverAddress": "http://prometheus-operated.monitoring:9090"},
    "metrics": {
        "serviceMonitor": {"enabled": True},
        "prometheusRule": {"enabled": True},
        "grafanaDashboard": {"enabled": True},
    },
    "networkPolicy": {"enabled": True, "loadBalancerCidrs": ["10.0.0.0/16"]},
}
WITH_HPA = {**ALL_OBJECTS, "keda": {"enabled": False}, "autoscaling": {"enabled": True}}
SUFFIXES = {
    ("Service", "lb"),
    ("PersistentVolumeClaim", "cache"),
    ("Secret", "hf-token"),
    ("Pod", "test"),
    ("ConfigMap", "dashboard"),
}
PROMETHEUS_RULE_API = "monitoring.coreos.com/v1/PrometheusRule"
# 53 is Helm's longest release name, 63 the schema's longest name override; a name cut where a "-" falls
# must not end in "-".
HYPHEN_AT_CUT = "b" * 59 + "-ccc"  # with "-lb": cut to 60 = "bbb...b-" -> "bbb...b-lb"


def _objects(values: dict[str, Any], release: str) -> list[dict[str, Any]]:
    docs = render(values, release=release, api_versions=[SERVICE_MONITOR_API, PROMETHEUS_RULE_API])
    return docs + render_hooks(values, release=release)


def _name(doc: dict[str, Any]) -> str:
    return str(doc["metadata"]["name"])


CASES = [
    pytest.param({"fullnameOverride": "f" * 63}, "lorax", "f" * 63, id="fullname-63"),
    pytest.param({"fullnameOverride": HYPHEN_AT_CUT}, "lorax", HYPHEN_AT_CUT, id="hyphen-at-cut"),
    pytest.param({}, "r" * 53, "r" * 53 + "-lorax", id="release-53"),
    pytest.param({"nameOverride": "n" * 63}, "rel", ("rel-" + "n" * 63)[:63], id="name-63"),
    # "rel-" + the override cut at 63 ends in its "-": trimmed
    pytest.param({"nameOverride": "n" * 58 + "-nnnn"}, "rel", "rel-" + "n" * 58, id="name-hyphen-at-cut"),
    pytest.param({}, "my-lorax-prod", "my-lorax-prod", id="release-holds-chart-name"),
]


@pytest.mark.parametrize("extra", [ALL_OBJECTS, WITH_HPA], ids=["keda", "hpa"])
@pytest.mark.parametrize(("values", "release", "fullname"), CASES)
def test_every_object_name_is_a_dns_label_of_at_most_63(
    values: dict[str, Any], release: str, fullname: str, extra: dict[str, Any]
) -> None:
    objects = _objects({**extra, **values}, release)
    kinds = {d["kind"] for d in objects}
    assert {"Deployment", "Service", "ServiceAccount", "Secret", "PersistentVolumeClaim", "Pod"} <= kinds
    assert {"PodDisruptionBudget", "ServiceMonitor", "NetworkPolicy", "PrometheusRule", "ConfigMap"} <= kinds
    assert ("ScaledObject" if extra is ALL_OBJECTS else "HorizontalPodAutoscaler") in kinds
    for doc in objects:
        name = _name(doc)
        assert len(name) <= 63 and DNS_LABEL.match(name), f"{doc['kind']} name {name!r} ({len(name)})"
        for key, value in doc["metadata"].get("labels", {}).items():
            assert len(str(value)) <= 63, f"{doc['kind']} label {key}={value!r}"
    names = [(d["kind"], _name(d)) for d in objects]
    assert len(names) == len(set(names)), f"two objects share a name: {names}"
    base = fullname[:63].rstrip("-")
    for doc in objects:
        suffix = next((s for k, s in SUFFIXES if k == doc["kind"] and _name(doc).endswith("-" + s)), None)
        if suffix is None:
            assert _name(doc) == base, f"{doc['kind']} is not named after the release"
        else:
            # the base name cut just enough for "-suffix" to fit, and a cut "-" dropped
            room = 62 - len(suffix)
            assert _name(doc) == base[:room].rstrip("-") + "-" + suffix


@pytest.mark.parametrize("key", ["fullnameOverride", "nameOverride"])
def test_name_overrides_take_63_characters_and_the_schema_refuses_64(key: str) -> None:
    render({key: "o" * 63})
    with pytest.raises(helm.HelmValuesError, match=f"/{key}"):
        render({key: "o" * 64})


def test_helm_takes_a_53_character_release_name_and_refuses_54() -> None:
    render({}, release="r" * 53)
    with pytest.raises(helm.HelmReleaseError, match="invalid release name"):
        render({}, release="r" * 54)


def test_helm_refuses_a_release_name_ending_in_a_hyphen() -> None:
    # so the release-name branch of lorax.fullname never has a "-" to trim (equivalent.toml)
    render({}, release="my-lorax")
    with pytest.raises(helm.HelmReleaseError, match="invalid release name"):
        render({}, release="my-lorax-")


def test_a_name_that_fits_uses_all_63_characters() -> None:
    objects = _objects({**ALL_OBJECTS, "fullnameOverride": "x" * 63}, "lorax")
    assert {len(_name(d)) for d in objects} == {63}
    lb = find(objects, "Service", "x" * 60 + "-lb")
    assert lb["spec"]["type"] == "LoadBalancer"


def test_references_follow_the_renamed_objects() -> None:
    objects = _objects({**ALL_OBJECTS, "fullnameOverride": "y" * 63}, "lorax")
    deployment = find(objects, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == _name(find(objects, "ServiceAccount"))
    claims = [v[PVC]["claimName"] for v in pod["volumes"] if PVC in v]
    assert claims == [_name(find(objects, "PersistentVolumeClaim"))]
    env = {e["name"]: e for c in pod["containers"] for e in c.get("env", [])}
    secret = _name(find(objects, "Secret"))
    assert env["HF_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == secret
    assert env["HUGGING_FACE_HUB_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == secret
    assert find(objects, "ScaledObject")["spec"]["scaleTargetRef"]["name"] == _name(deployment)
    hpa = find(_objects({**WITH_HPA, "fullnameOverride": "y" * 63}, "lorax"), "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == _name(deployment)
    test_pod = find(objects, "Pod")
    service = find(objects, "Service", "y" * 63)
    assert service["metadata"]["name"] in str(test_pod["spec"])  # the test pod calls the main Service


def test_an_existing_secret_or_claim_is_used_by_its_own_name() -> None:
    values = {
        "hfToken": {"existingSecret": "s" * 63},
        "modelCache": {"type": PVC, PVC: {"existingClaim": "c" * 63}},
        "updateStrategy": {"type": "Recreate"},
        "fullnameOverride": "z" * 63,
    }
    objects = _objects(values, "lorax")
    assert not [d for d in objects if d["kind"] in ("Secret", "PersistentVolumeClaim")]
    pod = find(objects, "Deployment")["spec"]["template"]["spec"]
    assert [v[PVC]["claimName"] for v in pod["volumes"] if PVC in v] == ["c" * 63]
    env = {e["name"]: e for c in pod["containers"] for e in c.get("env", [])}
    assert env["HF_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "s" * 63


def test_a_service_account_not_created_is_named_as_given_or_default() -> None:
    pod = find(render({"serviceAccount": {"create": False}}), "Deployment")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "default"
    named = find(render({"serviceAccount": {"create": False, "name": "ops-sa"}}), "Deployment")
    assert named["spec"]["template"]["spec"]["serviceAccountName"] == "ops-sa"
    created = render({"serviceAccount": {"create": True, "name": "ops-sa"}})
    assert _name(find(created, "ServiceAccount")) == "ops-sa"


def test_a_63_character_name_override_is_the_name_label_whole() -> None:
    objects = _objects({**ALL_OBJECTS, "nameOverride": "n" * 63}, "rel")
    for doc in objects:
        assert doc["metadata"]["labels"]["app.kubernetes.io/name"] == "n" * 63, doc["kind"]
    selector = find(objects, "Deployment")["spec"]["selector"]["matchLabels"]
    assert (selector["app.kubernetes.io/name"], selector["app.kubernetes.io/instance"]) == ("n" * 63, "rel")


def test_name_overrides_that_are_not_dns_labels_are_refused_by_the_schema() -> None:
    # a label value and an object name start with an alphanumeric character (a trailing '-' is trimmed by
    # the helpers: test_a_name_override_ending_in_a_hyphen_loses_it), are lower case and at most 63 long
    for key, value in (
        ("nameOverride", "-my-model"),
        ("fullnameOverride", "a" * 64),
        ("nameOverride", "My"),
    ):
        with pytest.raises(helm.HelmValuesError, match=f"/{key}"):
            render({key: value})
    render({"nameOverride": "my-model", "fullnameOverride": "a" * 62 + "b"})


def test_a_name_override_ending_in_a_hyphen_loses_it() -> None:
    # the schema lets a trailing '-' through; the helpers trim it, so no label value or name ends in '-'
    overrides = {"nameOverride": "my-model-", "fullnameOverride": "a" * 62 + "-"}
    objects = _objects({**ALL_OBJECTS, **overrides}, "rel")
    for doc in objects:
        assert doc["metadata"]["labels"]["app.kubernetes.io/name"] == "my-model", doc["kind"]
        assert not _name(doc).endswith("-"), doc["kind"]
    assert _name(find(objects, "Deployment")) == "a" * 62


def test_every_object_carries_the_chart_label_name_dash_version() -> None:
    chart = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())
    expected = f"{chart['name']}-{chart['version']}"
    assert "+" not in expected and len(expected) < 62  # the replace and cut never apply (equivalent.toml)
    for doc in _objects(ALL_OBJECTS, "lorax"):
        if doc["kind"] != "Pod":  # the helm test pod carries its selector labels only
            assert doc["metadata"]["labels"]["helm.sh/chart"] == expected, doc["kind"]
