"""The harness checks its own figures and says when, and by how much, they are unreliable.

Receive side. Each token is stamped with the kernel's receive time of the read that completed its line. The
kernel returns one stamp per read, so when the client falls behind (or the server writes several events of
one stream at once) every token waiting in the socket gets the time of the last one: their stamps merge. A
merged token's gap (ITL) is 0 and the gap before it is too long; its true arrival lies between the stamp
before it and the shared stamp, which bounds the error. How late the read loop got to bytes the kernel
already had (read lag) says how close the client is to merging.

Send side. A request is stamped as sent right before the client call, with no greenlet switch before the
write (poolcheck.py); what can still delay it is the event loop itself. A probe greenlet in each load process
asks to wake every PROBE_INTERVAL_S and records how late it woke: how late a scheduled send or a read could
start.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from loraxkit.loadtest.metrics import RequestRecord, distribution

PROBE_INTERVAL_S = 0.01
MERGED_LIMIT = 0.001  # above this fraction of token events sharing a stamp, ITL figures are unreliable
LOOP_LAG_LIMIT_MS = 1.0  # event-loop lag p99 above this: sends and reads start late


def merged_bounds(stamps: np.ndarray) -> tuple[int, bool, list[float]]:
    """(merged token events, first token merged, error bound of each merged event in s) of one stream."""
    if stamps.size < 2:
        return 0, False, []
    gaps = np.diff(stamps)
    merged = np.flatnonzero(gaps == 0.0)  # event i shares the stamp of event i + 1
    if merged.size == 0:
        return 0, False, []
    bounds = []
    for i in merged:
        before = stamps[:i][stamps[:i] < stamps[i]]
        bounds.append(float(stamps[i] - before[-1]) if before.size else float("nan"))
    return int(merged.size), bool(merged[0] == 0), bounds


def receive_check(records: Sequence[RequestRecord]) -> dict[str, Any]:
    stamped = [r for r in records if r.reads and r.token_times]
    if not stamped:
        return {"kernel_stamps": False}
    tokens = merged = first_merged = 0
    bounds: list[float] = []
    for r in stamped:
        n, first, b = merged_bounds(np.frombuffer(r.token_times, dtype=np.float64))
        tokens += len(r.token_times)
        merged += n
        first_merged += first
        bounds.extend(x for x in b if x == x)
    reads = sum(r.reads for r in stamped)
    return {
        "kernel_stamps": True,
        "requests": len(stamped),
        "token_events": tokens,
        "reads": reads,
        "merged_token_events": merged,
        "merged_fraction": merged / tokens if tokens else 0.0,
        "requests_first_token_merged": first_merged,
        "merged_error_bound_ms": distribution(bounds),
        "read_lag_mean_ms": 1000.0 * sum(r.read_lag_sum for r in stamped) / reads if reads else 0.0,
        "read_lag_max_ms": distribution([r.read_lag_max for r in stamped]),
    }


def send_check(loop_lags: Sequence[float]) -> dict[str, Any]:
    return {"probe_interval_ms": PROBE_INTERVAL_S * 1000.0, "event_loop_lag_ms": distribution(loop_lags)}


def verdicts(receive: dict[str, Any], send: dict[str, Any]) -> list[str]:
    """One line per side: reliable or not, and by how much."""
    out = []
    if not receive.get("kernel_stamps"):
        out.append("receive side: no kernel stamps (user-space stamps or no streams): no merge check")
    else:
        lag = receive["read_lag_max_ms"]
        frac = receive["merged_fraction"]
        head = (
            f"{receive['merged_token_events']} of {receive['token_events']} token events ({frac:.3%}) shared "
            f"a kernel stamp with the next; read loop behind the kernel by "
            f"{receive['read_lag_mean_ms']:.2f} ms mean, {lag.get('p99', 0.0):.2f} ms p99 of each "
            "request's worst"
        )
        if frac > MERGED_LIMIT or receive["requests_first_token_merged"]:
            bound = receive["merged_error_bound_ms"]
            p99, most = bound.get("p99", float("nan")), bound.get("max", float("nan"))
            out.append(
                f"receive side UNRELIABLE: {head}. Merged events have ITL 0 and the gap before them is too "
                f"long by up to {p99:.2f} ms (p99; max {most:.2f}); "
                f"{receive['requests_first_token_merged']} request(s) had their first token merged "
                "(TTFT late by up to that much). Add load processes (--processes) or lower the load"
            )
        else:
            out.append(f"receive side ok: {head}")
    loop = send["event_loop_lag_ms"]
    if loop.get("count"):
        line = (
            f"event-loop lag p50 {loop['p50']:.2f} ms, p99 {loop['p99']:.2f} ms, max {loop['max']:.2f} ms "
            f"({loop['count']} probes)"
        )
        if loop["p99"] > LOOP_LAG_LIMIT_MS:
            out.append(
                f"send side UNRELIABLE: {line}: scheduled sends and reads start that late; open-loop "
                "lag and TTFT from the schedule show it. Add load processes (--processes)"
            )
        else:
            out.append(f"send side ok: {line}")
    return out


def self_check(records: Sequence[RequestRecord], loop_lags: Sequence[float]) -> dict[str, Any]:
    receive, send = receive_check(records), send_check(loop_lags)
    return {"receive": receive, "send": send, "verdicts": verdicts(receive, send)}
