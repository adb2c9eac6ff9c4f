"""Render `charts/lorax` through the real Helm engine (helm-python-sdk), offline.

`render()` is the `helm template` equivalent: a client-side dry-run install, so Helm itself parses the
YAML, checks the chart's `kubeVersion` and orders the objects. `render_templates()` returns every template
(hooks such as the `helm test` pod and NOTES.txt included), keyed by template path.
Both accept `.Capabilities` overrides (`kube_version`, `api_versions`), which the SDK's Python wrappers do not
expose but its C ABI does.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import helm_python as helm
import yaml
from helm_python import _native

CHART_DIR = Path(__file__).resolve().parents[3] / "charts" / "lorax"
HOOK_ANNOTATION = "helm.sh/hook"


def merge_values(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge two values trees the way repeated `-f` files combine (maps merge, the rest replaces)."""
    merged: dict[str, Any] = dict(base)
    for key, value in override.items():
        current = merged.get(key)
        if isinstance(current, Mapping) and isinstance(value, Mapping):
            merged[key] = merge_values(current, value)
        else:
            merged[key] = value
    return merged


def load_values(value_files: Iterable[Path] = (), values: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Combine `-f` files in order, then `values`, as `helm install -f a -f b --set ...` does."""
    combined: dict[str, Any] = {}
    for path in value_files:
        combined = merge_values(combined, helm.values_from_yaml(Path(path).read_text()))
    if values:
        combined = merge_values(combined, values)
    return combined


def _options(namespace: str, kube_version: str | None, api_versions: Sequence[str]) -> dict[str, Any]:
    opts: dict[str, Any] = {"namespace": namespace}
    if kube_version:
        opts["kube_version"] = kube_version
    if api_versions:
        opts["api_versions"] = list(api_versions)
    return opts


def parse_manifest(text: str) -> list[dict[str, Any]]:
    """Split a multi-document manifest into objects, dropping empty documents."""
    return [doc for doc in yaml.safe_load_all(text) if doc]


def render(
    values: Mapping[str, Any] | None = None,
    value_files: Iterable[Path] = (),
    *,
    release: str = "lorax",
    namespace: str = "lorax",
    kube_version: str | None = None,
    api_versions: Sequence[str] = (),
    chart_dir: Path = CHART_DIR,
) -> list[dict[str, Any]]:
    """Return the release's objects (hooks excluded), exactly as `helm template` would produce them.

    Raises `helm.HelmValuesError` on a schema violation and `helm.HelmReleaseError` on a template `fail`,
    a YAML error or an unmet `kubeVersion`.
    """
    merged = load_values(value_files, values)
    with helm.Chart.load(str(chart_dir)) as chart, helm.Config(namespace=namespace) as cfg:
        chart.validate_schema(merged)
        opts = _options(namespace, kube_version, api_versions)
        opts["dry_run"] = "client"
        payload = _native.call_string(
            "helm_install",
            cfg._raw(),
            _native.HANDLE(0),
            chart._raw(),
            None,
            release,
            json.dumps(merged),
            json.dumps(opts),
        )
    return parse_manifest(json.loads(payload)["manifest"])


def render_templates(
    values: Mapping[str, Any] | None = None,
    value_files: Iterable[Path] = (),
    *,
    release: str = "lorax",
    namespace: str = "lorax",
    kube_version: str | None = None,
    api_versions: Sequence[str] = (),
    chart_dir: Path = CHART_DIR,
) -> dict[str, str]:
    """Return every rendered template (NOTES.txt and hooks included) keyed `lorax/templates/<file>`.

    Raises `helm.HelmValuesError` on a schema violation and `helm.HelmRenderError` on a template `fail`.
    """
    merged = load_values(value_files, values)
    with helm.Chart.load(str(chart_dir)) as chart:
        opts = _options(namespace, kube_version, api_versions)
        opts["name"] = release
        payload = _native.call_string(
            "helm_render",
            chart._raw(),
            json.dumps(merged),
            json.dumps(opts),
        )
    rendered: dict[str, str] = json.loads(payload)
    return rendered


def render_hooks(
    values: Mapping[str, Any] | None = None,
    value_files: Iterable[Path] = (),
    **kwargs: Any,
) -> list[dict[str, Any]]:
    """Return only the hook objects (for example the `helm test` pod), which a dry-run leaves out."""
    docs: list[dict[str, Any]] = []
    for name, text in render_templates(values, value_files, **kwargs).items():
        if name.endswith("NOTES.txt"):
            continue
        docs.extend(
            doc
            for doc in parse_manifest(text)
            if HOOK_ANNOTATION in (doc.get("metadata", {}).get("annotations") or {})
        )
    return docs
