"""The chart's PrometheusRule and Grafana dashboard ConfigMap: one copy of the rules (the PrometheusRule's
spec is the plain rules file users load directly), the dashboard JSON equal to what the code builds, objects
only where asked and, for the PrometheusRule, only where the API exists."""

from __future__ import annotations

import json
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
import yaml

from loraxkit.chart.render import render, render_templates
from loraxkit.observability import dashboard, rules

RULE_API = "monitoring.coreos.com/v1/PrometheusRule"
ON = {"metrics": {"prometheusRule": {"enabled": True, "labels": {"release": "kps"}}}}
DASH_ON = {"metrics": {"grafanaDashboard": {"enabled": True, "annotations": {"grafana_folder": "LoRAX"}}}}


def _of(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def test_prometheus_rule_spec_is_the_plain_rules_file() -> None:
    (rule,) = _of(render(ON, api_versions=[RULE_API]), "PrometheusRule")
    assert rule["spec"] == rules.load(), (
        "the PrometheusRule must wrap files/prometheus/lorax-rules.yaml as is"
    )
    assert rule["metadata"]["labels"]["release"] == "kps"
    assert rule["metadata"]["name"] == "lorax"


def test_prometheus_rule_needs_the_api_and_the_switch() -> None:
    assert _of(render(ON), "PrometheusRule") == []  # no monitoring.coreos.com/v1/PrometheusRule served
    assert _of(render(ON, api_versions=["monitoring.coreos.com/v1"]), "PrometheusRule") == []
    assert _of(render({}, api_versions=[RULE_API]), "PrometheusRule") == []


def test_notes_warn_when_the_rules_were_asked_for_but_the_api_is_missing() -> None:
    notes = render_templates(ON)["lorax/templates/NOTES.txt"]
    assert "metrics.prometheusRule.enabled is true but this cluster serves no" in notes
    assert "lorax-rules.yaml" in notes
    served = render_templates(ON, api_versions=[RULE_API])["lorax/templates/NOTES.txt"]
    assert "prometheusRule" not in served


def test_dashboard_configmap_carries_the_sidecar_label_and_the_generated_json() -> None:
    (cm,) = _of(render(DASH_ON), "ConfigMap")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cm["metadata"]["annotations"] == {"grafana_folder": "LoRAX"}
    assert json.loads(cm["data"]["lorax.json"]) == dashboard.build()
    kubernetes_validate.validate(cm, "1.31", strict=True)
    assert _of(render({}), "ConfigMap") == []


def test_dashboard_configmap_name_fits_a_dns_label_with_a_63_character_release_name() -> None:
    values = {"fullnameOverride": "a" * 63, **DASH_ON}
    (cm,) = _of(render(values), "ConfigMap")
    assert cm["metadata"]["name"] == "a" * 53 + "-dashboard"  # 63 characters


def test_dashboard_configmap_in_the_sidecars_namespace() -> None:
    values = {"metrics": {"grafanaDashboard": {"enabled": True, "namespace": "monitoring"}}}
    (cm,) = _of(render(values), "ConfigMap")
    assert cm["metadata"]["namespace"] == "monitoring"


def test_committed_dashboard_json_is_what_the_code_builds() -> None:
    current = dashboard.DASHBOARD_PATH.read_text(encoding="utf-8")
    assert current == dashboard.render(), "stale: run python -m loraxkit.observability.dashboard"
    assert dashboard.main(["--check"]) == 0


def test_dashboard_check_fails_on_a_stale_file(tmp_path: Any) -> None:
    stale = tmp_path / "d.json"
    stale.write_text(dashboard.render().replace("lorax_queue_length", "lorax_queue_size"), encoding="utf-8")
    assert dashboard.main(["--check", "--out", str(stale)]) == 1


def test_dashboard_has_the_panels_operators_read() -> None:
    titles = {p.title for p in dashboard.panels()}
    assert {"Requests by outcome", "Queue and running batch", "Time per output token", "Generated tokens/s",
            "Batch sizes", "Adapter loads failing", "GPU utilization"} <= titles  # fmt: skip
    model = dashboard.build()
    ids = [p["id"] for p in model["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"


@pytest.mark.parametrize(
    ("values", "key"),
    [
        ({"metrics": {"prometheusRule": {"enable": True}}}, "enable"),
        ({"metrics": {"grafanaDashboard": {"labels": None}}}, "labels"),
        ({"metrics": {"grafanaDashboard": {"namespace": "Not_A_Namespace"}}}, "namespace"),
        ({"metrics": {"prometheusRule": {"labels": {"release": 1}}}}, "release"),
    ],
)
def test_schema_refuses_bad_values_naming_the_key(values: dict[str, Any], key: str) -> None:
    with pytest.raises(helm.HelmValuesError, match=key):
        render(values)


def test_rules_file_is_plain_prometheus_yaml() -> None:
    text = rules.RULES_PATH.read_text(encoding="utf-8")
    assert (
        "{{ $labels" in text
    )  # alert templates survive: the chart reads the file with .Files.Get, untemplated
    assert yaml.safe_load(text)["groups"]
