"""Each HTTP probe's path is checked against the GET routes the pinned LoRAX router serves (validate.yaml,
routes from files/launcher-contract.yaml): a served route renders, any other path is refused naming the
probe's own key. Written against a `chart-validate` survivor (docs/mutation.md)."""

from __future__ import annotations

from typing import Any

import helm_python as helm
import pytest
from chart_helpers import render

ON = {"startup": {"enabled": True}, "liveness": {"enabled": True}}
PROBES: dict[str, dict[str, Any]] = {
    "probes.startup.path": {"startup": {"path": "PATH"}},
    "probes.readiness.path": {"readiness": {"enabled": True, "path": "PATH"}},
    "probes.liveness.path": {**ON, "liveness": {"enabled": True, "path": "PATH"}},
    "probes.deepCheck.path": {**ON, "deepCheck": {"enabled": True, "method": "httpGet", "path": "PATH"}},
}


def _values(key: str, path: str) -> dict[str, Any]:
    probes = {name: {**spec} for name, spec in PROBES[key].items()}
    for spec in probes.values():
        if spec.get("path") == "PATH":
            spec["path"] = path
    return {"probes": probes}


@pytest.mark.parametrize("key", sorted(PROBES))
def test_a_served_route_renders_and_an_unserved_one_is_refused_naming_the_probe(key: str) -> None:
    render(_values(key, "/health"))
    render(_values(key, "/ping"))
    with pytest.raises(helm.HelmReleaseError) as caught:
        render(_values(key, "/healthz"))
    assert f"{key} is /healthz, but the LoRAX 0.12.1 router serves GET only on /, /health, /info" in str(
        caught.value
    )


def test_a_disabled_probe_is_not_checked() -> None:
    render({"probes": {"readiness": {"enabled": False, "path": "/healthz"}}})


@pytest.mark.parametrize(
    "probes",
    [
        {"liveness": {"enabled": False, "path": "/healthz"}},  # off: no probe uses the path
        # the deep check is the liveness probe then (exec): liveness.path is not used
        {
            **ON,
            "liveness": {"enabled": True, "path": "/healthz"},
            "deepCheck": {"enabled": True, "method": "exec"},
        },
    ],
    ids=["liveness-off", "replaced-by-deep-check"],
)
def test_an_unused_liveness_path_is_not_checked(probes: dict[str, Any]) -> None:
    render({"probes": probes})


def test_only_a_startup_path_gets_the_startup_route_hint() -> None:
    hint = "/startup only exists in builds after 0.12.1; use probes.deepCheck.method=exec"
    for path, hinted in (("/startup", True), ("/healthz", False)):
        with pytest.raises(helm.HelmReleaseError) as caught:
            render(_values("probes.readiness.path", path))
        assert (hint in str(caught.value)) is hinted, path
