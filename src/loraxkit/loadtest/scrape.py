"""Optional sampling of the server's Prometheus `/metrics` during a run (queue length, batch size, ...).

Parsed with `prometheus_client`'s text parser. Gauges are kept as time series; for histograms only `_sum` and
`_count` are kept, so the report can show mean queue/inference time over the run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from prometheus_client.parser import text_string_to_metric_families

from loraxkit.loadtest.metrics import now

DEFAULT_SERIES = (
    "lorax_queue_length",
    "lorax_batch_current_size",
    "lorax_batch_current_max_tokens",
    "lorax_request_queue_duration",
    "lorax_request_inference_duration",
    "lorax_request_count",
    "lorax_request_failure",
)


@dataclass
class Scrape:
    """Samples of selected metric series: name (with labels) -> list of (epoch, value)."""

    url: str
    samples: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    kinds: dict[str, str] = field(default_factory=dict)  # series key -> gauge | counter | histogram | ...
    errors: int = 0
    last_error: str | None = None

    def add_text(self, text: str, at: float, wanted: tuple[str, ...] = DEFAULT_SERIES) -> None:
        for family in text_string_to_metric_families(text):
            if family.name not in wanted and not any(w.startswith(family.name) for w in wanted):
                continue
            for sample in family.samples:
                if family.type == "histogram" and not sample.name.endswith(("_sum", "_count")):
                    continue
                if family.type == "counter" and sample.name.endswith("_created"):
                    continue
                # a counter under its family name (the parser adds `_total` to the sample's)
                name = family.name if family.type == "counter" else sample.name
                key = name + _labels(sample.labels)
                self.kinds[key] = family.type
                self.samples.setdefault(key, []).append((at, float(sample.value)))

    def poll(self, client: Any) -> None:
        """One sample through a geventhttpclient HTTPClient made for this URL."""
        try:
            response = client.get(_path(self.url))
            body = response.read()
            if response.status_code != 200:
                raise ValueError(f"HTTP {response.status_code} from {self.url}")
            self.add_text(body.decode("utf-8", errors="replace"), now())
        except (OSError, ValueError) as exc:
            self.errors += 1
            self.last_error = str(exc)[:200]

    def summary(self) -> dict[str, Any]:
        """Gauges as mean/max/last; counters as rates over the run; histograms as the mean duration of the
        events observed during the run (d sum / d count) and their rate. A mean of a running counter means
        nothing, so none is shown."""
        out: dict[str, Any] = {"url": self.url, "polls_failed": self.errors, "series": {}}
        if self.last_error:
            out["last_error"] = self.last_error
        for key, points in sorted(self.samples.items()):
            kind = self.kinds.get(key, "unknown")
            if kind == "histogram":
                continue  # below, from _sum and _count together
            values = [v for _, v in points]
            row: dict[str, Any] = {"kind": kind, "samples": len(values), "last": values[-1]}
            if kind == "counter":
                row["rate_per_s"] = _rate(points)
            else:
                row.update(min=min(values), max=max(values), mean=sum(values) / len(values))
            out["series"][key] = row
        for key in sorted(self.kinds):
            base, brace, labels = key.partition("{")
            if self.kinds[key] != "histogram" or not base.endswith("_count"):
                continue
            name = base.removesuffix("_count") + brace + labels
            count = self.samples[key]
            total = self.samples.get(base.removesuffix("_count") + "_sum" + brace + labels)
            row = {"kind": "histogram", "samples": len(count), "rate_per_s": _rate(count)}
            if total and count[-1][1] > count[0][1]:
                row["mean_ms"] = 1000.0 * (total[-1][1] - total[0][1]) / (count[-1][1] - count[0][1])
            out["series"][name] = row
        return out


def _rate(points: list[tuple[float, float]]) -> float | None:
    """Per-second increase between the first and last sample (a counter reset gives None)."""
    (t0, v0), (t1, v1) = points[0], points[-1]
    if t1 <= t0 or v1 < v0:
        return None
    return (v1 - v0) / (t1 - t0)


def _path(url: str) -> str:
    parts = urlsplit(url)
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


def _labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"
