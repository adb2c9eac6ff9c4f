"""Render helpers for the chart tests (a unique module name: sibling test folders have a conftest too)."""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from loraxkit.chart import render as _render
from loraxkit.chart.render import CHART_DIR

REPO = CHART_DIR.parents[1]
PROFILES = sorted((REPO / "values").glob("*.yaml"))
# Kubernetes minors the chart claims (Chart.yaml kubeVersion has an open upper bound; these are tested).
KUBE_MINORS = ["1.31", "1.32", "1.33", "1.34", "1.35"]
# The Capabilities entry the ServiceMonitor template checks (a live cluster lists group/version/Kind entries).
SERVICE_MONITOR_API = "monitoring.coreos.com/v1/ServiceMonitor"


def _memoized(function: Callable[..., Any]) -> Callable[..., Any]:
    """Render each (values, files, options) once per session: many tests read the same render. Failures are
    not cached (each test sees Helm's exception); every caller gets its own deep copy to change freely."""

    @functools.cache
    def cached(values_json: str, files: tuple[str, ...], options_json: str) -> Any:
        return function(json.loads(values_json), [Path(f) for f in files], **json.loads(options_json))

    @functools.wraps(function)
    def wrapper(values: Mapping[str, Any] | None = None, value_files: Any = (), **options: Any) -> Any:
        key = (json.dumps(values or {}, sort_keys=True), tuple(str(f) for f in value_files),
               json.dumps(options, sort_keys=True, default=str))  # fmt: skip
        return copy.deepcopy(cached(*key))

    return wrapper


render = _memoized(_render.render)
render_hooks = _memoized(_render.render_hooks)
render_templates = _memoized(_render.render_templates)

__all__ = [
    "CHART_DIR",
    "KUBE_MINORS",
    "PROFILES",
    "REPO",
    "SERVICE_MONITOR_API",
    "args_of",
    "container",
    "env_of",
    "find",
    "flag_values",
    "kinds",
    "render",
    "render_hooks",
    "render_templates",
]


def kinds(docs: list[dict[str, Any]]) -> list[str]:
    return [doc["kind"] for doc in docs]


def find(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    """The single object of `kind` (and `name`, when given); fails the test when absent or ambiguous."""
    matches = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(matches) == 1, f"expected one {kind} {name or ''}, got {len(matches)}: {kinds(docs)}"
    return matches[0]


def container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    spec = find(docs, "Deployment")["spec"]["template"]["spec"]
    return next(c for c in spec["containers"] if c["name"] == "lorax")


def args_of(values: Mapping[str, Any] | None = None, files: list[Path] | None = None) -> list[str]:
    return list(container(render(values, files or []))["args"])


def flag_values(args: list[str], flag: str) -> list[str]:
    """Every value passed after `flag` (a repeated flag gives several)."""
    return [args[i + 1] for i, arg in enumerate(args) if arg == flag]


def env_of(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container(docs)["env"]}
