"""Two releases of one profile in one namespace share no object name and select only their own pods."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from chart_helpers import PROFILES, SERVICE_MONITOR_API, render, render_hooks
from test_render_validate import EVERYTHING_ON


def objects(files: list[Path], values: dict[str, Any], release: str) -> list[dict[str, Any]]:
    docs = render(values, files, release=release, namespace="shared", api_versions=[SERVICE_MONITOR_API])
    return docs + render_hooks(values, files, release=release, namespace="shared")


def names(docs: list[dict[str, Any]]) -> set[tuple[str, str]]:
    return {(doc["kind"], doc["metadata"]["name"]) for doc in docs}


CASES = [pytest.param([p], {}, id=p.stem) for p in PROFILES] + [
    pytest.param([], {}, id="defaults"),
    pytest.param([], {k: v for k, v in EVERYTHING_ON.items() if k != "serviceAccount"}, id="everything-on"),
]


@pytest.mark.parametrize(("files", "values"), CASES)
def test_two_releases_share_no_object_name(files: list[Path], values: dict[str, Any]) -> None:
    first, second = objects(files, values, "team-a"), objects(files, values, "team-b")
    assert len(names(first)) == len(first)  # no duplicate inside one release either
    assert names(first) & names(second) == set()
    # Each release's pods run under its own ServiceAccount when the chart creates one.
    if not any(d["kind"] == "ServiceAccount" for d in first):
        return
    accounts = [
        {d["spec"]["template"]["spec"]["serviceAccountName"] for d in docs if d["kind"] == "Deployment"}
        for docs in (first, second)
    ]
    assert accounts[0].isdisjoint(accounts[1])


@pytest.mark.parametrize(("files", "values"), CASES)
def test_every_selector_is_scoped_to_its_release(files: list[Path], values: dict[str, Any]) -> None:
    for doc in objects(files, values, "team-a"):
        spec = doc.get("spec") or {}
        selector = spec.get("selector") or {}
        labels = selector.get("matchLabels", selector)
        if doc["kind"] in {"Service", "Deployment", "PodDisruptionBudget", "ServiceMonitor"}:
            assert labels.get("app.kubernetes.io/instance") == "team-a", doc["kind"]
        if doc["kind"] == "NetworkPolicy":
            assert spec["podSelector"]["matchLabels"]["app.kubernetes.io/instance"] == "team-a"


def test_the_default_release_keeps_the_pod_identity_name() -> None:
    """`helm install lorax -n lorax -f <profile>` still renders the ServiceAccount the EKS pair names."""
    for profile in PROFILES:
        docs = render(value_files=[profile], release="lorax", namespace="lorax")
        account = next(d for d in docs if d["kind"] == "ServiceAccount")
        assert account["metadata"]["name"] == "lorax", profile.name
