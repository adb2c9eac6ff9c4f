"""The chart's Prometheus rules file as data: alert names, every query, a copy with shortened windows.

The file `charts/lorax/files/prometheus/lorax-rules.yaml` is the only copy of the rules: Prometheus loads it
directly, the chart's PrometheusRule wraps it, and the tests read it here. Its windows assume a 30 s scrape;
`scaled()` divides every duration (range selectors, subquery ranges, `for:`) so an end-to-end test with a 1 s
scrape can watch an alert go pending, fire and resolve in seconds with the same expressions.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import yaml

RULES_PATH = (
    Path(__file__).resolve().parents[3] / "charts" / "lorax" / "files" / "prometheus" / "lorax-rules.yaml"
)

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"(\d+)(ms|s|m|h|d)")
_RANGE = re.compile(r"\[(\w+)(?::(\w*))?\]")  # a range `[5m]` or a subquery `[1h:1m]` / `[1h:]`


def load(path: Path = RULES_PATH) -> dict[str, Any]:
    with open(path, encoding="utf-8") as fh:
        data = yaml.safe_load(fh)
    if not isinstance(data, dict) or not isinstance(data.get("groups"), list):
        raise ValueError(f"{path}: a Prometheus rules file needs a top-level `groups:` list")
    return data


def seconds(duration: str) -> float:
    """A Prometheus duration (`1h30m`, `5m`, `500ms`) in seconds."""
    parts = _DURATION.findall(duration)
    if not parts or "".join(n + u for n, u in parts) != duration:
        raise ValueError(f"not a Prometheus duration: {duration!r}")
    return sum(int(n) * _UNITS[u] for n, u in parts)


def _fmt(secs: float) -> str:
    ms = round(secs * 1000)
    if ms % 1000:
        return f"{ms}ms"
    return f"{ms // 1000}s"


def alerts(data: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    data = data or load()
    return [r for g in data["groups"] for r in g["rules"] if "alert" in r]


def recordings(data: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    data = data or load()
    return [r for g in data["groups"] for r in g["rules"] if "record" in r]


def scaled(factor: float, data: dict[str, Any] | None = None, minimum_s: float = 1.0) -> dict[str, Any]:
    """The rules with every window and `for:` multiplied by `factor` (e.g. 1/30 for a 1 s scrape instead of
    30 s); no window gets shorter than `minimum_s`. Expressions are otherwise untouched."""
    out = copy.deepcopy(data or load())

    def shrink(duration: str) -> str:
        return _fmt(max(seconds(duration) * factor, minimum_s))

    def shrink_range(m: re.Match[str]) -> str:
        window, step = m.group(1), m.group(2)
        if step is None:
            return f"[{shrink(window)}]"
        return f"[{shrink(window)}:{shrink(step) if step else ''}]"

    for group in out["groups"]:
        if "interval" in group:
            group["interval"] = shrink(group["interval"])
        for rule in group["rules"]:
            rule["expr"] = _RANGE.sub(shrink_range, str(rule["expr"]))
            if "for" in rule:
                rule["for"] = shrink(rule["for"])
    return out


def dump(data: dict[str, Any], path: Path) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False, width=200), encoding="utf-8")
    return path
