"""LoRAX's Prometheus series, rendered as its exporter (`metrics-exporter-prometheus` 0.12) renders them.

Rendered from a small typed registry instead of prometheus_client because that library appends `_total` to
counters and LoRAX's exporter does not: `lorax_request_count 3`, not `lorax_request_count_total 3`.
Series appear only after their first observation, as with LoRAX.
"""

from __future__ import annotations

import bisect
import contextlib
from dataclasses import dataclass, field
from typing import Any

LabelKey = tuple[tuple[str, str], ...]

SUMMARY_QUANTILES = (0.0, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0)


def _duration_buckets() -> tuple[float, ...]:
    """server.rs run(): every metric ending in "duration" gets 35 buckets, `value *= 1.5` from 0.0001.
    Multiplied step by step as there: 0.0001 * 1.5**n differs in the last bit for 26 of them, and the
    exporter prints each bound in full (`le="0.0011390624999999999"`)."""
    buckets, value = [], 0.0001
    for _ in range(35):
        value *= 1.5
        buckets.append(value)
    return tuple(buckets)


DURATION_BUCKETS = _duration_buckets()


def _fmt(value: float) -> str:
    if value == float("inf"):
        return "+Inf"
    if float(value).is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(float(value))


def _labels(key: LabelKey, extra: tuple[tuple[str, str], ...] = ()) -> str:
    pairs = key + extra
    if not pairs:
        return ""
    return "{" + ",".join(f'{k}="{v}"' for k, v in pairs) + "}"


@dataclass
class _Histogram:
    buckets: tuple[float, ...]
    counts: list[int]
    total: float = 0.0
    count: int = 0

    def observe(self, value: float) -> None:
        i = bisect.bisect_left(self.buckets, value)
        if i < len(self.counts):
            self.counts[i] += 1
        self.total += value
        self.count += 1


@dataclass
class _Summary:
    values: list[float] = field(default_factory=list)

    def observe(self, value: float) -> None:
        self.values.append(value)
        if len(self.values) > 10_000:  # bounded memory; quantiles over the recent window
            del self.values[:5_000]


class Registry:
    """Counters, gauges, histograms and summaries keyed by (name, labels)."""

    def __init__(self, max_input_length: int, max_total_tokens: int) -> None:
        self.counters: dict[str, dict[LabelKey, float]] = {}
        self.gauges: dict[str, dict[LabelKey, float]] = {}
        self.histograms: dict[str, dict[LabelKey, _Histogram]] = {}
        self.summaries: dict[str, dict[LabelKey, _Summary]] = {}
        hundredths = [(max_total_tokens / 100) * (x + 1) for x in range(100)]
        self._buckets: dict[str, tuple[float, ...]] = {
            "lorax_request_input_length": tuple((max_input_length / 100) * (x + 1) for x in range(100)),
            "lorax_request_generated_tokens": tuple(hundredths),
            "lorax_request_max_new_tokens": tuple(hundredths),
            "lorax_batch_next_size": tuple(float(x + 1) for x in range(1024)),
        }

    def inc(self, name: str, value: float = 1.0, **labels: str) -> None:
        series = self.counters.setdefault(name, {})
        key = tuple(sorted(labels.items()))
        series[key] = series.get(key, 0.0) + value

    def set(self, name: str, value: float, **labels: str) -> None:
        self.gauges.setdefault(name, {})[tuple(sorted(labels.items()))] = value

    def observe(self, name: str, value: float, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        buckets = DURATION_BUCKETS if name.endswith("duration") else self._buckets.get(name)
        if buckets is None:
            self.summaries.setdefault(name, {}).setdefault(key, _Summary()).observe(value)
            return
        series = self.histograms.setdefault(name, {})
        if key not in series:
            series[key] = _Histogram(buckets, [0] * len(buckets))
        series[key].observe(value)

    def counter_value(self, name: str, **labels: str) -> float:
        return self.counters.get(name, {}).get(tuple(sorted(labels.items())), 0.0)

    def render(self) -> str:
        out: list[str] = []
        for name in sorted(self.counters):
            out.append(f"# TYPE {name} counter")
            out.extend(f"{name}{_labels(k)} {_fmt(v)}" for k, v in sorted(self.counters[name].items()))
            out.append("")
        for name in sorted(self.gauges):
            out.append(f"# TYPE {name} gauge")
            out.extend(f"{name}{_labels(k)} {_fmt(v)}" for k, v in sorted(self.gauges[name].items()))
            out.append("")
        for name in sorted(self.histograms):
            out.append(f"# TYPE {name} histogram")
            for key, hist in sorted(self.histograms[name].items()):
                running = 0
                for bound, n in zip(hist.buckets, hist.counts, strict=True):
                    running += n
                    out.append(f"{name}_bucket{_labels(key, (('le', _fmt(bound)),))} {running}")
                out.append(f"{name}_bucket{_labels(key, (('le', '+Inf'),))} {hist.count}")
                out.append(f"{name}_sum{_labels(key)} {_fmt(hist.total)}")
                out.append(f"{name}_count{_labels(key)} {hist.count}")
            out.append("")
        for name in sorted(self.summaries):
            out.append(f"# TYPE {name} summary")
            for key, summ in sorted(self.summaries[name].items()):
                ordered = sorted(summ.values)
                for q in SUMMARY_QUANTILES:
                    value = ordered[min(int(q * len(ordered)), len(ordered) - 1)] if ordered else 0.0
                    out.append(f"{name}{_labels(key, (('quantile', _fmt(q)),))} {_fmt(value)}")
                out.append(f"{name}_sum{_labels(key)} {_fmt(sum(ordered))}")
                out.append(f"{name}_count{_labels(key)} {len(ordered)}")
            out.append("")
        return "\n".join(out) + ("\n" if out else "")


def render_json(text: str) -> dict[str, Any]:
    """server.rs `parse_text_to_metrics`: {name: {type, data: [{key, value}]}}."""
    families: dict[str, Any] = {}
    current = ""
    for line in text.splitlines():
        if not line:
            continue
        if line.startswith("# TYPE "):
            parts = line.split()
            current = parts[2]
            families[current] = {"type": parts[3], "data": []}
            continue
        if current in families:
            name, _, value = line.rpartition(" ")
            with contextlib.suppress(ValueError):
                key = (
                    name
                    if "{" in name
                    else ("sum" if name.endswith("_sum") else ("count" if name.endswith("_count") else ""))
                )
                families[current]["data"].append({"key": key, "value": float(value)})
    return families
