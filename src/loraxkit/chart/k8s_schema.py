"""Give every Kubernetes-typed chart value Kubernetes' own schema, generated from its OpenAPI.

`loraxkit chart-k8s-schema` rewrites the Kubernetes part of `charts/lorax/values.schema.json`: the values
listed in `KUBE_TYPED` point (`$ref`) at definitions copied, with everything they reference, from the
strict JSON schema that kubernetes-validate ships for the oldest Kubernetes minor the chart supports (it is
generated from Kubernetes' OpenAPI). So `tolerations[0].opertor` or `resources.limits.memory: lots` fail
`helm install` with the value's path instead of being dropped or refused by the API server.
`--check` (and tests/chart/test_k8s_schema.py) fail when the file drifts from a fresh generation.
"""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path
from typing import Any

import kubernetes_validate

from loraxkit.chart.render import CHART_DIR

# Oldest minor of Chart.yaml's kubeVersion (>=1.31): valid there means valid in every later minor we test.
KUBE_MINOR = "1.31"
CORE = "io.k8s.api.core.v1."
# Value path -> (shape, definition). Shapes: object, array (items of), labels / annotations (maps of strings).
KUBE_TYPED: dict[str, tuple[str, str]] = {
    "resources": ("object", CORE + "ResourceRequirements"),
    "modelCache.warmup.resources": ("object", CORE + "ResourceRequirements"),
    "tolerations": ("array", CORE + "Toleration"),
    "affinity": ("object", CORE + "Affinity"),
    "nodeSelector": ("labels", ""),
    "securityContext": ("object", CORE + "SecurityContext"),
    "podSecurityContext": ("object", CORE + "PodSecurityContext"),
    "server.extraEnv": ("array", CORE + "EnvVar"),
    "extraVolumes": ("array", CORE + "Volume"),
    "extraVolumeMounts": ("array", CORE + "VolumeMount"),
    "topologySpreadConstraints": ("array", CORE + "TopologySpreadConstraint"),
    "imagePullSecrets": ("array", CORE + "LocalObjectReference"),
    "updateStrategy": ("object", "io.k8s.api.apps.v1.DeploymentStrategy"),
    "autoscaling.metrics": ("array", "io.k8s.api.autoscaling.v2.MetricSpec"),
    "autoscaling.behavior": ("object", "io.k8s.api.autoscaling.v2.HorizontalPodAutoscalerBehavior"),
    "podAnnotations": ("annotations", ""),
    "podLabels": ("labels", ""),
    "commonLabels": ("labels", ""),
    "serviceAccount.annotations": ("annotations", ""),
    "service.annotations": ("annotations", ""),
    "loadBalancer.annotations": ("annotations", ""),
    "metrics.serviceMonitor.labels": ("labels", ""),
    "metrics.prometheusRule.labels": ("labels", ""),
    "metrics.grafanaDashboard.labels": ("labels", ""),
    "metrics.grafanaDashboard.annotations": ("annotations", ""),
}
# What Kubernetes' OpenAPI leaves out but its API server enforces, added on top (each with its source):
# a quantity must parse (k8s.io/apimachinery pkg/api/resource/quantity.go ParseQuantity: sign, digits,
# optional decimal part, then a binary/decimal SI suffix or an exponent), and a toleration's operator and
# effect are closed sets (pkg/apis/core/validation/validation.go validateTolerations), env names follow
# IsEnvVarName in 1.31 (validateEnvVarName), volume names are DNS-1123 labels (validateVolumes), a topology
# spread constraint has maxSkew >= 1 and a closed whenUnsatisfiable (validateTopologySpreadConstraints).
QUANTITY_PATTERN = r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)(Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E|[eE][+-]?[0-9]+)?$"
OVERLAYS: dict[str, dict[str, Any]] = {
    "io.k8s.apimachinery.pkg.api.resource.Quantity": {
        "oneOf": [{"type": "string", "pattern": QUANTITY_PATTERN}, {"type": "number"}]
    },
}
PROPERTY_OVERLAYS: dict[tuple[str, str], dict[str, Any]] = {
    (CORE + "Toleration", "operator"): {"enum": ["Exists", "Equal", "", None]},
    (CORE + "Toleration", "effect"): {"enum": ["NoSchedule", "PreferNoSchedule", "NoExecute", "", None]},
    (CORE + "EnvVar", "name"): {"pattern": r"^[-._a-zA-Z][-._a-zA-Z0-9]*$"},
    (CORE + "Volume", "name"): {"pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "maxLength": 63},
    (CORE + "VolumeMount", "name"): {"pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "maxLength": 63},
    (CORE + "TopologySpreadConstraint", "maxSkew"): {"minimum": 1},
    (CORE + "TopologySpreadConstraint", "whenUnsatisfiable"): {"enum": ["DoNotSchedule", "ScheduleAnyway"]},
}
# Label and annotation syntax the API server checks (k8s.io/apimachinery pkg/util/validation/validation.go:
# IsQualifiedName for keys, IsValidLabelValue for label values); OpenAPI types them as plain strings.
QUALIFIED_NAME = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
LABEL_VALUE = r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$"
MAPS = {
    "labels": {
        "type": "object",
        "propertyNames": {"pattern": QUALIFIED_NAME},
        "additionalProperties": {"type": "string", "pattern": LABEL_VALUE},
    },
    "annotations": {
        "type": "object",
        "propertyNames": {"pattern": QUALIFIED_NAME},
        "additionalProperties": {"type": "string"},
    },
}


def definitions_file(minor: str = KUBE_MINOR) -> Path:
    root = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
    return root / f"v{minor}.0-local-strict" / "_definitions.json"


def _refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"].rsplit("/", 1)[-1]} if "$ref" in node else set()
        for value in node.values():
            found |= _refs(value)
        return found
    if isinstance(node, list):
        return set().union(*(_refs(v) for v in node)) if node else set()
    return set()


def _clean(node: Any) -> Any:
    """Drop descriptions (size) and point refs at draft-07 `definitions`."""
    if isinstance(node, dict):
        out = {k: _clean(v) for k, v in node.items() if k != "description"}
        if "$ref" in out:
            out["$ref"] = "#/definitions/" + out["$ref"].rsplit("/", 1)[-1]
        return out
    if isinstance(node, list):
        return [_clean(v) for v in node]
    return node


def kube_definitions(minor: str = KUBE_MINOR) -> dict[str, Any]:
    """The definitions the Kubernetes-typed values need, closed under `$ref`, with the overlays applied."""
    source = json.loads(definitions_file(minor).read_text())["$defs"]
    wanted = {name for _, name in KUBE_TYPED.values() if name}
    todo = list(wanted)
    while todo:
        for ref in _refs(source[todo.pop()]):
            if ref not in wanted:
                wanted.add(ref)
                todo.append(ref)
    defs = {name: _clean(source[name]) for name in sorted(wanted)}
    for name, replacement in OVERLAYS.items():
        if name in defs:
            defs[name] = copy.deepcopy(replacement)
    for (name, prop), extra in PROPERTY_OVERLAYS.items():
        defs[name]["properties"][prop].update(extra)
    return defs


def value_schema(shape: str, definition: str) -> dict[str, Any]:
    kind = definition.rsplit(".", 2)
    title = f"Kubernetes {kind[-1]} ({kind[-3]}/{kind[-2]})" if definition else f"{shape} (map of strings)"
    if shape in MAPS:
        return {"title": title, **MAPS[shape]}
    ref = {"$ref": f"#/definitions/{definition}"}
    if shape == "array":
        return {"title": f"list of {title}", "type": "array", "items": ref}
    return {"title": title, "allOf": [ref]}


def with_kube_schema(schema: dict[str, Any], minor: str = KUBE_MINOR) -> dict[str, Any]:
    """`schema` with every Kubernetes-typed value pointed at freshly generated Kubernetes definitions."""
    out = copy.deepcopy(schema)
    for path, (shape, definition) in KUBE_TYPED.items():
        node = out
        *parents, leaf = path.split(".")
        for part in parents:
            node = node["properties"][part]
        node["properties"][leaf] = value_schema(shape, definition)
    out["definitions"] = kube_definitions(minor)
    return out


def schema_path(chart_dir: Path = CHART_DIR) -> Path:
    return chart_dir / "values.schema.json"


def dump(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2) + "\n"


def run(args: argparse.Namespace) -> int:
    path = schema_path(Path(args.chart))
    current = path.read_text()
    wanted = dump(with_kube_schema(json.loads(current), args.minor))
    if args.check:
        if current != wanted:
            print(f"{path}: Kubernetes definitions are stale; run `loraxkit chart-k8s-schema`")
            return 1
        print(f"{path}: Kubernetes definitions match Kubernetes {args.minor}")
        return 0
    path.write_text(wanted)
    print(f"{path}: Kubernetes {args.minor} definitions written for {len(KUBE_TYPED)} values")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "chart-k8s-schema",
        help="regenerate the Kubernetes part of charts/lorax/values.schema.json from Kubernetes' OpenAPI",
        description="Point every Kubernetes-typed chart value (resources, tolerations, affinity, extraEnv, "
        "volumes, ...) at Kubernetes' own schema for the oldest supported minor, taken from the strict JSON "
        "schema kubernetes-validate ships. Use --check in CI to fail when the file is stale.",
    )
    parser.add_argument("--chart", default=str(CHART_DIR), help="chart directory (default: %(default)s)")
    parser.add_argument("--minor", default=KUBE_MINOR, help="Kubernetes minor (default: %(default)s)")
    parser.add_argument("--check", action="store_true", help="only check; exit 1 when the file is stale")
    parser.set_defaults(func=run)
