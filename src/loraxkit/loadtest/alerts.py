"""The report's "Alerts during the run" section: which Prometheus alerts fired between the run's start and
end, read from the server's own `ALERTS` series (`--prometheus-url`, the Prometheus that scrapes LoRAX: the
chart's rules, docs/observability.md).

An unreachable Prometheus is written into the report and logged, never dropped silently.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from loraxkit.observability.promapi import PromAPI, PrometheusError

log = logging.getLogger("loraxkit.loadtest")

DEFAULT_MATCH = "Lorax.*"  # the chart's alerts; other alerts of a shared Prometheus stay out of the report
MAX_POINTS = 1000


@dataclass(frozen=True)
class FiredAlert:
    name: str
    labels: dict[str, str]
    first: float  # unix time of the first sample seen firing
    last: float

    @property
    def severity(self) -> str:
        return self.labels.get("severity", "")


def fired_alerts(url: str, start: float, end: float, match: str = DEFAULT_MATCH) -> list[FiredAlert]:
    """Alerts named like `match` (a regex) that were firing at any evaluation between start and end."""
    step = max(1.0, (end - start) / MAX_POINTS)
    series = PromAPI(url).query_range(
        f'ALERTS{{alertname=~"{match}", alertstate="firing"}}', start, end, step
    )
    fired = []
    for s in series:
        labels = {k: v for k, v in s.labels.items() if k not in ("__name__", "alertname", "alertstate")}
        times = [t for t, _ in s.points]
        fired.append(FiredAlert(s.labels["alertname"], labels, min(times), max(times)))
    return sorted(fired, key=lambda a: (a.first, a.name))


def report_entry(url: str, start: float, end: float | None = None) -> dict[str, Any]:
    """What the report stores: the alerts, or the error that kept them from being read."""
    end = time.time() if end is None else end
    try:
        fired = fired_alerts(url, start, end)
    except PrometheusError as exc:
        log.error("alerts during the run: %s", exc)
        return {"prometheus_url": url, "error": str(exc), "fired": []}
    return {
        "prometheus_url": url,
        "start": start,
        "end": end,
        "fired": [
            {"alert": a.name, "labels": a.labels, "first_firing": a.first, "last_firing": a.last}
            for a in fired
        ],
    }


def markdown(fired: list[FiredAlert], start: float | None = None) -> str:
    if not fired:
        return "No LoRAX alert fired during the run."
    t0 = start if start is not None else min(a.first for a in fired)
    rows = [
        "| alert | severity | labels | first firing (s into the run) | last firing (s) |",
        "|---|---|---|---|---|",
    ]
    for a in fired:
        labels = ", ".join(f"{k}={v}" for k, v in sorted(a.labels.items()) if k != "severity")
        rows.append(f"| {a.name} | {a.severity} | {labels} | {a.first - t0:.0f} | {a.last - t0:.0f} |")
    return "\n".join(rows)


def section(entry: dict[str, Any]) -> str:
    """The report section from a stored `report_entry`."""
    if entry.get("error"):
        return f"Could not read alerts from {entry['prometheus_url']}: {entry['error']}"
    fired = [FiredAlert(f["alert"], f["labels"], f["first_firing"], f["last_firing"]) for f in entry["fired"]]
    return f"From {entry['prometheus_url']}:\n\n" + markdown(fired, entry.get("start"))
