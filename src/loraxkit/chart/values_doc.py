"""Document the chart's values: read `# --` comments from values.yaml and types from values.schema.json.

`loraxkit chart-docs` rewrites the table between the markers in charts/lorax/README.md; `--check` only
reports whether it is up to date (for CI and the drift tests).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from loraxkit.chart.render import CHART_DIR

START = "<!-- values-table:start -->"
END = "<!-- values-table:end -->"


@dataclass(frozen=True)
class ValueDoc:
    key: str
    type: str
    default: str
    description: str


def is_own_object(schema: dict[str, Any]) -> bool:
    """The chart's own objects are closed (`additionalProperties: false`); the rest are leaves."""
    return schema.get("additionalProperties") is False and "properties" in schema


def schema_leaves(schema: dict[str, Any], prefix: str = "") -> dict[str, dict[str, Any]]:
    """Dotted key -> schema for every documented value (pass-through Kubernetes objects are leaves)."""
    leaves: dict[str, dict[str, Any]] = {}
    for name, sub in schema.get("properties", {}).items():
        key = f"{prefix}{name}"
        if is_own_object(sub):
            leaves.update(schema_leaves(sub, key + "."))
        else:
            leaves[key] = sub
    return leaves


def _key_nodes(
    node: yaml.Node, own: set[str], prefix: str = ""
) -> Iterator[tuple[str, yaml.Node, yaml.Node]]:
    if not isinstance(node, yaml.MappingNode):
        return
    for key_node, value_node in node.value:
        key = f"{prefix}{key_node.value}"
        yield key, key_node, value_node
        if key in own:
            yield from _key_nodes(value_node, own, key + ".")


def _comment_above(lines: list[str], line_no: int) -> str:
    """The `# --` comment block directly above a key (continuation lines joined)."""
    block: list[str] = []
    i = line_no - 1
    while i >= 0 and lines[i].strip().startswith("#"):
        block.insert(0, lines[i].strip().lstrip("#").strip())
        if lines[i].strip().startswith("# --"):
            return " ".join(b for b in block).removeprefix("--").strip()
        i -= 1
    return ""


def own_object_keys(schema: dict[str, Any], prefix: str = "") -> set[str]:
    keys: set[str] = set()
    for name, sub in schema.get("properties", {}).items():
        if is_own_object(sub):
            keys.add(prefix + name)
            keys |= own_object_keys(sub, f"{prefix}{name}.")
    return keys


def values_docs(chart_dir: Path = CHART_DIR) -> dict[str, ValueDoc]:
    """Every key declared in values.yaml (recursing into the chart's own objects) with its comment."""
    text = (chart_dir / "values.yaml").read_text()
    schema = json.loads((chart_dir / "values.schema.json").read_text())
    own = own_object_keys(schema)
    leaves = schema_leaves(schema)
    lines = text.splitlines()
    root = yaml.compose(text)
    data = yaml.safe_load(text)
    docs: dict[str, ValueDoc] = {}
    for key, key_node, _ in _key_nodes(root, own):
        if key in own:
            continue
        value: Any = data
        for part in key.split("."):
            value = value[part]
        sub = leaves.get(key, {})
        kind = sub.get("title") or sub.get("type", "")
        kind = " or ".join(kind) if isinstance(kind, list) else kind
        docs[key] = ValueDoc(key, kind, json.dumps(value), _comment_above(lines, key_node.start_mark.line))
    return docs


def render_table(docs: dict[str, ValueDoc]) -> str:
    rows = ["| Key | Type | Default | Description |", "|---|---|---|---|"]
    for doc in docs.values():
        description = doc.description.replace("|", "\\|")
        rows.append(f"| `{doc.key}` | {doc.type} | `{doc.default}` | {description} |")
    return "\n".join(rows)


def readme_with_table(readme: str, table: str) -> str:
    head, sep, rest = readme.partition(START)
    _, sep2, tail = rest.partition(END)
    if not sep or not sep2:
        raise ValueError(f"README lacks the markers {START} ... {END}; add them where the table belongs")
    return f"{head}{START}\n{table}\n{END}{tail}"


def run(args: argparse.Namespace) -> int:
    chart_dir = Path(args.chart)
    readme_path = chart_dir / "README.md"
    current = readme_path.read_text()
    wanted = readme_with_table(current, render_table(values_docs(chart_dir)))
    if args.check:
        if current != wanted:
            print(f"{readme_path}: values table is stale; run `loraxkit chart-docs`")
            return 1
        print(f"{readme_path}: values table is up to date")
        return 0
    readme_path.write_text(wanted)
    print(f"{readme_path}: values table written")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "chart-docs",
        help="regenerate the values table in charts/lorax/README.md from values.yaml comments",
        description="Rebuild the README values table from the `# --` comments in values.yaml and the "
        "types in values.schema.json. Use --check in CI to fail when the table is stale.",
    )
    parser.add_argument("--chart", default=str(CHART_DIR), help="chart directory (default: %(default)s)")
    parser.add_argument("--check", action="store_true", help="only check; exit 1 when the table is stale")
    parser.set_defaults(func=run)
