"""Live smoke test of the chart on a real cluster (opt-in; see tests/e2e/conftest.py for how to run it).

Installs the chart with helm-python-sdk, waits for the Deployment with pytest-helm-charts, calls /health,
/info and /generate (base model and an adapter) through a port-forward, runs the chart's `helm test` hook and
uninstalls. Failing tests carry the LoRAX pods' logs and the namespace's events.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import helm_python as helm
import pytest
from live_release import LoraxRelease, Settings
from pytest_helm_charts.k8s.deployment import wait_for_deployments_to_run
from pytest_helm_charts.k8s.namespace import ensure_namespace_exists

pytestmark = pytest.mark.e2e

PROMPT = "[INST] Natalia sold clips to 48 of her friends in April. How many clips did she sell? [/INST]"
MAX_NEW_TOKENS = 16


@pytest.fixture(scope="module")
def lorax_release(pytestconfig: pytest.Config, kube_cluster: Any) -> Iterator[LoraxRelease]:
    settings = Settings.from_pytest(pytestconfig, kube_cluster.kube_config_path)
    ensure_namespace_exists(kube_cluster.kube_client, settings.namespace)
    release = LoraxRelease(settings)
    try:
        # Inside the try: a half-applied install leaves a failed release that would block the next run.
        release.install()
        try:
            wait_for_deployments_to_run(
                kube_cluster.kube_client, [release.deployment], settings.namespace, settings.ready_timeout
            )
        except Exception as exc:
            pytest.fail(
                f"Deployment {settings.namespace}/{release.deployment} not running after "
                f"{settings.ready_timeout}s ({exc!r})\n{release.diagnostics()}"
            )
        yield release
    finally:
        if not settings.keep:
            release.uninstall()


def _generate(release: LoraxRelease, adapter: str | None = None) -> tuple[Any, dict[str, str]]:
    parameters: dict[str, Any] = {"max_new_tokens": MAX_NEW_TOKENS, "details": True}
    if adapter:
        parameters["adapter_id"] = adapter
    result = release.request("POST", "/generate", {"inputs": PROMPT, "parameters": parameters})
    assert result.status == 200, f"/generate answered {result.status}: {result.body[:500]!r}"
    return result.json(), result.headers


def test_release_runs_on_the_node_group_it_selects(lorax_release: LoraxRelease) -> None:
    """Scheduled onto a node carrying every label of the values' nodeSelector, Running and Ready."""
    selector = lorax_release.effective_values.get("nodeSelector") or {}
    pods = lorax_release.pods()
    assert pods, "the release has no pod"
    for pod in pods:
        node = lorax_release.core.read_node(pod.spec.node_name)
        assert selector.items() <= (node.metadata.labels or {}).items(), (pod.spec.node_name, selector)
        assert any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


@pytest.mark.needs_container
def test_health_answers_200(lorax_release: LoraxRelease) -> None:
    result = lorax_release.request("GET", "/health")
    assert result.status == 200, result.body[:500]


@pytest.mark.needs_container
def test_info_names_the_configured_model(lorax_release: LoraxRelease) -> None:
    info = lorax_release.request("GET", "/info").json()
    assert info["model_id"] == lorax_release.model_id


@pytest.mark.needs_container
def test_generate_with_the_base_model(lorax_release: LoraxRelease) -> None:
    body, headers = _generate(lorax_release)
    assert isinstance(body["generated_text"], str)
    assert body["details"]["generated_tokens"] >= 1
    assert "x-adapter-id" not in headers


@pytest.mark.needs_container
def test_generate_with_an_adapter(lorax_release: LoraxRelease) -> None:
    adapter = lorax_release.adapter
    if adapter is None:
        pytest.fail("the values preload no adapter; pass --lorax-adapter <hub id> to test one")
    body, headers = _generate(lorax_release, adapter)
    assert body["details"]["generated_tokens"] >= 1
    assert headers.get("x-adapter-id") == adapter


@pytest.mark.needs_container
def test_helm_test_hook_passes(lorax_release: LoraxRelease) -> None:
    try:
        lorax_release.run_helm_test()
    except helm.HelmReleaseError as exc:
        pytest.fail(f"helm test {lorax_release.settings.release} failed: {exc}")
