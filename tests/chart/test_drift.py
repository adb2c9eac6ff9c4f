"""values.yaml, values.schema.json and the README values table stay in step."""

from __future__ import annotations

import json
import re
from pathlib import Path

import helm_python as helm
import jsonschema
import yaml
from chart_helpers import CHART_DIR

from loraxkit.chart.k8s_schema import KUBE_TYPED
from loraxkit.chart.values_doc import (
    END,
    START,
    own_object_keys,
    readme_with_table,
    render_table,
    schema_leaves,
    values_docs,
)

SCHEMA = json.loads((CHART_DIR / "values.schema.json").read_text())
HELM_ONLY = {"global"}  # Helm's own key; the schema allows it, values.yaml never declares it


def values_leaves(values: dict, own: set[str], prefix: str = "") -> set[str]:
    keys: set[str] = set()
    for name, value in values.items():
        key = prefix + name
        if key in own:
            assert isinstance(value, dict), f"{key} must be a map in values.yaml"
            keys |= values_leaves(value, own, key + ".")
        else:
            keys.add(key)
    return keys


def readme_keys(readme: Path) -> set[str]:
    table = readme.read_text().partition(START)[2].partition(END)[0]
    return set(re.findall(r"^\| `([^`]+)` \|", table, flags=re.MULTILINE))


def test_values_yaml_and_schema_declare_the_same_keys() -> None:
    declared = values_leaves(yaml.safe_load((CHART_DIR / "values.yaml").read_text()), own_object_keys(SCHEMA))
    assert declared == set(schema_leaves(SCHEMA)) - HELM_ONLY


def test_readme_table_lists_every_schema_key() -> None:
    assert readme_keys(CHART_DIR / "README.md") == set(schema_leaves(SCHEMA)) - HELM_ONLY


def test_every_value_has_a_comment_where_it_is_declared() -> None:
    undocumented = [doc.key for doc in values_docs().values() if not doc.description]
    assert undocumented == []


def test_readme_table_is_generated_from_the_current_values() -> None:
    readme = (CHART_DIR / "README.md").read_text()
    assert readme == readme_with_table(readme, render_table(values_docs())), "run `loraxkit chart-docs`"


def map_keys(values: dict, prefix: str = "") -> set[str]:
    """Dotted key of every map in values.yaml, not descending into Kubernetes-typed values."""
    keys: set[str] = set()
    for name, value in values.items():
        key = prefix + name
        if isinstance(value, dict):
            keys.add(key)
            if key not in KUBE_TYPED:
                keys |= map_keys(value, key + ".")
    return keys


def test_defaults_satisfy_the_schema_and_every_own_object_is_closed() -> None:
    """Every map in values.yaml is the chart's own (closed: a typo is an error) or Kubernetes-typed."""
    with helm.Chart.load(str(CHART_DIR)) as chart:
        chart.validate_schema(chart.values)
    assert SCHEMA["additionalProperties"] is False
    own = map_keys(yaml.safe_load((CHART_DIR / "values.yaml").read_text())) - set(KUBE_TYPED)
    assert own == own_object_keys(SCHEMA), "a chart-own map is open in values.schema.json (or vice versa)"


def test_drift_checks_notice_a_missing_key(tmp_path: Path) -> None:
    """The comparison above is real: a key missing from values.yaml shows up as a difference."""
    values = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    del values["server"]["maxTotalTokens"]
    declared = values_leaves(values, own_object_keys(SCHEMA))
    assert set(schema_leaves(SCHEMA)) - HELM_ONLY - declared == {"server.maxTotalTokens"}


def test_schema_is_a_valid_draft_07_schema() -> None:
    assert SCHEMA["$schema"] == "http://json-schema.org/draft-07/schema#"
    jsonschema.Draft7Validator.check_schema(SCHEMA)
