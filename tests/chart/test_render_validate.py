"""Defaults and every profile render, lint clean and validate strictly for each claimed Kubernetes minor."""

from __future__ import annotations

from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
from chart_helpers import CHART_DIR, KUBE_MINORS, PROFILES, SERVICE_MONITOR_API, find, render, render_hooks

from loraxkit.chart.render import load_values

CRD_KINDS = {"ServiceMonitor", "ScaledObject"}

# Every optional object switched on at once, so the strict validation covers each template.
EVERYTHING_ON: dict[str, Any] = {
    "hfToken": {"value": "hf_dummy"},
    "serviceAccount": {
        "create": True,
        "name": "lorax",
        "annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/lorax"},
    },
    "modelCache": {
        "type": "persistentVolumeClaim",
        "persistentVolumeClaim": {"accessModes": ["ReadWriteMany"], "storageClassName": "efs-sc"},
        "warmup": {"enabled": True},
    },
    "loadBalancer": {
        "enabled": True,
        "sourceRanges": ["10.0.0.0/8"],
        "certificateArn": "arn:aws:acm:us-east-1:123456789012:certificate/abc",
    },
    "podDisruptionBudget": {"enabled": True},
    "keda": {"enabled": True, "serverAddress": "http://prometheus-operated.monitoring:9090"},
    "metrics": {"serviceMonitor": {"enabled": True}},
    "networkPolicy": {
        "enabled": True,
        "allowedNamespaces": ["gateway"],
        "allowedPods": [{"app": "client"}],
        "loadBalancerCidrs": ["10.0.0.0/16"],
    },
    "topologySpreadConstraints": [
        {"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "ScheduleAnyway"}
    ],
    "probes": {"deepCheck": {"enabled": True}},
    "priorityClassName": "gpu-serving",
    "adapters": {"preloaded": ["org/adapter-a", "org/adapter-b"]},
}

# What EVERYTHING_ON cannot hold at once (the HPA excludes KEDA): another cache kind, the HPA, a percent PDB.
THE_ALTERNATIVES: dict[str, Any] = {
    "hfToken": {"existingSecret": "hf-token"},
    "modelCache": {"type": "hostPath", "hostPath": {"path": "/mnt/nvme/lorax"}},
    "autoscaling": {"enabled": True, "minReplicas": 2},
    "podDisruptionBudget": {"enabled": True, "minAvailable": "50%"},
    "loadBalancer": {"enabled": True, "scheme": "internet-facing", "allowPublicWithoutSourceRanges": True},
    "networkPolicy": {"enabled": True, "loadBalancerCidrs": ["10.0.0.0/16"], "metricsNamespace": ""},
    "probes": {"deepCheck": {"enabled": True, "method": "httpGet", "path": "/health"}},
    "updateStrategy": {"type": "Recreate"},
    "preStopSleepSeconds": 0,
}

CASES = [
    pytest.param(([], {}), id="defaults"),
    pytest.param(([], EVERYTHING_ON), id="everything-on"),
    pytest.param(([], THE_ALTERNATIVES), id="the-alternatives"),
] + [pytest.param(([p], {}), id=p.stem) for p in PROFILES]


@pytest.fixture(scope="module", params=CASES)
def rendered(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    files, values = request.param
    docs = render(values, files, api_versions=[SERVICE_MONITOR_API])
    return docs + render_hooks(values, files)


def test_three_profiles_exist() -> None:
    names = [p.stem for p in PROFILES]
    assert (
        any("l40s" in n for n in names) and any("a10g" in n for n in names) and any("70b" in n for n in names)
    )


@pytest.mark.parametrize("minor", KUBE_MINORS)
def test_builtin_kinds_validate_strictly(rendered: list[dict[str, Any]], minor: str) -> None:
    builtin = [d for d in rendered if d["kind"] not in CRD_KINDS]
    assert builtin
    for doc in builtin:
        kubernetes_validate.validate(doc, minor, strict=True)


@pytest.mark.parametrize("case", CASES)
def test_lint_is_clean(case: Any) -> None:
    files, values = case
    report = helm.lint(str(CHART_DIR), load_values(files, values), strict=True)
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


def test_lint_reports_a_schema_violation() -> None:
    """The lint check above is meaningful: it does flag bad values."""
    report = helm.lint(str(CHART_DIR), {"gpu": {"count": "two"}}, strict=True)
    assert any(m["severity"] >= 2 for m in report["messages"])


def test_custom_resources_carry_the_fields_that_matter() -> None:
    docs = render(EVERYTHING_ON, api_versions=[SERVICE_MONITOR_API])
    scaled = find(docs, "ScaledObject")
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    assert scaled["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "lorax",
    }
    trigger = scaled["spec"]["triggers"][0]
    assert trigger["type"] == "prometheus"
    assert trigger["metadata"]["serverAddress"] == "http://prometheus-operated.monitoring:9090"
    assert "lorax_queue_length" in trigger["metadata"]["query"]
    assert 'namespace="lorax"' in trigger["metadata"]["query"]
    assert isinstance(trigger["metadata"]["threshold"], str)
    monitor = find(docs, "ServiceMonitor")
    service = find(docs, "Service", "lorax")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["lorax"]}
    endpoint = monitor["spec"]["endpoints"][0]
    assert endpoint["port"] in [p["name"] for p in service["spec"]["ports"]]
    assert endpoint["path"] == "/metrics"
    # Only the ClusterIP Service matches, so each pod is scraped once.
    lb = find(docs, "Service", "lorax-lb")
    assert not selector.items() <= lb["metadata"]["labels"].items()


def test_kube_version_below_the_claimed_range_is_refused() -> None:
    with pytest.raises(helm.HelmReleaseError, match="kubeVersion"):
        render(kube_version="v1.30.0")
    assert render(kube_version="v1.31.0")


@pytest.mark.parametrize("minor", KUBE_MINORS)
def test_lint_is_clean_for_each_claimed_kubernetes_minor(minor: str) -> None:
    report = helm.lint(str(CHART_DIR), {}, strict=True, kube_version=f"v{minor}.0")
    assert [m for m in report["messages"] if m["severity"] >= 2] == []
