"""From raw records to the report's numbers: per adapter, per route, per stage, over time, saturation."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from loraxkit.loadtest.metrics import RequestRecord, Slos, group_by, summarize
from loraxkit.loadtest.stages import Stage

DEFINITIONS = {
    "ttft": "time of the first token event (the kernel's receive time) - time the request was sent (the "
    "kernel's transmit time of its last byte; the Python stamp where the kernel gave none), per request",
    "itl": "every gap between consecutive token events, pooled over all successful requests",
    "tpot": "(E2E - TTFT) / (N - 1) per request with N >= 2; N = server's token count, else the stream's",
    "e2e": "time of the last token event (streams) or of the full body (/generate) - time sent",
    "output_tokens_per_s": "output tokens of successful requests / (last end - first send)",
    "goodput": "successful requests meeting every per-request goodput SLO (TTFT, TPOT, E2E) / duration",
    "schedule_lag": "open loop only: actual send time - scheduled arrival time",
    "ttft_from_schedule": "open loop only: first token - scheduled arrival (includes client-side wait)",
    "percentiles": "exact, from raw samples, numpy linear interpolation (as vLLM bench serve)",
    "steady_state": "requests sent from --warmup seconds after the last user was spawned until --cooldown "
    "seconds before the stop, leaving out each connection's first request (it carries the TCP connect)",
    "error_rate": "failed / requests over the whole run, not counting requests the harness cut off at stop "
    "(cancelled_at_stop, listed apart)",
    "saturation": "the first stage after which the next stage adds less than the saturation gain "
    "in output tokens/s",
}


def analyse(
    records: Sequence[RequestRecord],
    slos: Slos,
    stages: list[Stage] | None = None,
    windows: list[tuple[float, float]] | None = None,
    stage_warmup: float = 0.0,
    saturation_gain: float = 0.1,
    steady: tuple[float, float] | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "definitions": DEFINITIONS,
        "overall": summarize(records, slos),
        "by_adapter": {
            k: summarize(v, slos) for k, v in group_by(records, lambda r: r.adapter_label).items()
        },
        "by_route": {k: summarize(v, slos) for k, v in group_by(records, lambda r: r.route).items()},
        "timeline": timeline(records),
    }
    if steady is not None:
        out["steady"] = steady_state(records, slos, *steady)
    if stages and windows:
        out["stages"] = stage_table(records, stages, windows, slos, stage_warmup)
        out["saturation"] = saturation_point(out["stages"], saturation_gain)
    return out


def in_steady_state(record: RequestRecord, start: float, until: float) -> bool:
    """Sent inside [start, until) on a connection it did not have to open (its TTFT would hold the TCP
    connect and, while users spawn, the cost of starting them all at once)."""
    return start <= record.sent < until and not record.first_on_connection


def steady_state(
    records: Sequence[RequestRecord], slos: Slos, start: float, until: float
) -> dict[str, Any]:
    """The steady-state figures, with what was left out and why (see in_steady_state)."""
    inside = [r for r in records if in_steady_state(r, start, until)]
    early = sum(1 for r in records if r.sent < start)
    late = sum(1 for r in records if r.sent >= until)
    connect = sum(1 for r in records if start <= r.sent < until and r.first_on_connection)
    return {
        "from": start,
        "until": until,
        "left_out": {
            "before_warmup_end": early,
            "after_cooldown_start": late,
            "opened_a_connection": connect,
        },
        "overall": summarize(inside, slos),
        "by_adapter": {k: summarize(v, slos) for k, v in group_by(inside, lambda r: r.adapter_label).items()},
        "by_route": {k: summarize(v, slos) for k, v in group_by(inside, lambda r: r.route).items()},
    }


def tokens_in_window(records: Sequence[RequestRecord], start: float, end: float) -> int:
    """Token events stamped inside [start, end); /generate requests count all tokens at their end."""
    total = 0
    for r in records:
        if not r.ok:
            continue
        if r.token_times:
            stamps = np.frombuffer(r.token_times, dtype=np.float64)
            total += int(np.count_nonzero((stamps >= start) & (stamps < end)))
        elif r.end is not None and start <= r.end < end:
            total += r.output_tokens
    return total


def stage_table(
    records: Sequence[RequestRecord],
    stages: list[Stage],
    windows: list[tuple[float, float]],
    slos: Slos,
    warmup: float,
) -> list[dict[str, Any]]:
    rows = []
    for stage, (start, end) in zip(stages, windows, strict=True):
        measured_from = min(start + warmup, end)
        # open loop: a request belongs to the stage whose rate scheduled it (a late send is lag, reported)
        inside = [r for r in records if measured_from <= _due(r) < end]
        span = max(end - measured_from, 1e-9)
        summary = summarize(inside, slos, duration=span)
        summary["output_tokens_per_s"] = tokens_in_window(records, measured_from, end) / span
        rows.append(
            {
                "stage": stage.index,
                "users": stage.users,
                "rate": stage.rate,
                "window": [start, end],
                "measured_from": measured_from,
                "summary": summary,
            }
        )
    return rows


def _due(record: RequestRecord) -> float:
    return record.intended if record.intended is not None else record.sent


def saturation_point(rows: list[dict[str, Any]], gain: float) -> dict[str, Any]:
    """The knee: first stage whose successor adds < `gain` (fraction) output tokens/s."""
    throughput = [row["summary"]["output_tokens_per_s"] for row in rows]
    result: dict[str, Any] = {"rule": f"next stage adds < {gain:.0%} output tokens/s", "stage": None}
    for i in range(len(rows) - 1):
        if throughput[i] > 0 and throughput[i + 1] < throughput[i] * (1.0 + gain):
            result.update(_knee(rows[i]))
            return result
    result["note"] = "throughput still rising at the last stage: not saturated; extend the sweep"
    return result


def _knee(row: dict[str, Any]) -> dict[str, Any]:
    summary = row["summary"]
    return {
        "stage": row["stage"],
        "users": row["users"],
        "rate": row["rate"],
        "output_tokens_per_s": summary["output_tokens_per_s"],
        "ttft_p95_ms": summary["ttft_ms"].get("p95"),
        "tpot_p50_ms": summary["tpot_ms"].get("p50"),
    }


def timeline(records: Sequence[RequestRecord], bucket: float = 1.0) -> dict[str, list[float]]:
    """Per-second output tokens/s, finished requests and TTFT p50/p95 of requests sent in that second."""
    if not records:
        return {"t": [], "tokens_per_s": [], "requests_per_s": [], "ttft_p50_ms": [], "ttft_p95_ms": []}
    t0 = min(r.sent for r in records)
    ok = [r for r in records if r.ok]
    last = max([r.token_times[-1] for r in ok if r.token_times] + [r.end or r.sent for r in records])
    n = max(1, math.ceil((last - t0) / bucket))
    tokens = np.zeros(n)
    done = np.zeros(n)
    ttfts: list[list[float]] = [[] for _ in range(n)]
    for r in ok:
        if r.token_times:
            idx = ((np.frombuffer(r.token_times, dtype=np.float64) - t0) / bucket).astype(int)
            np.add.at(tokens, np.clip(idx, 0, n - 1), 1)
        elif r.end is not None:
            tokens[min(int((r.end - t0) / bucket), n - 1)] += r.output_tokens
        end = r.token_times[-1] if r.token_times else (r.end or r.sent)
        done[min(int((end - t0) / bucket), n - 1)] += 1
        if r.ttft is not None:
            ttfts[min(int((r.sent - t0) / bucket), n - 1)].append(r.ttft * 1000.0)
    p50 = [float(np.percentile(v, 50)) if v else float("nan") for v in ttfts]
    p95 = [float(np.percentile(v, 95)) if v else float("nan") for v in ttfts]
    return {
        "t": [i * bucket for i in range(n)],
        "tokens_per_s": list(tokens / bucket),
        "requests_per_s": list(done / bucket),
        "ttft_p50_ms": p50,
        "ttft_p95_ms": p95,
    }
