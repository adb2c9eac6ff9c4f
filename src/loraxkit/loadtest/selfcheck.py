"""The harness checks its own figures and says when, and by how much, they are unreliable.

Receive side. Each token is stamped with the kernel's receive time of the read that completed its line. The
kernel returns one stamp per read, so when the client falls behind (or the server writes several events of
one stream at once) every token waiting in the socket gets the time of the last one: their stamps merge. A
merged token's gap (ITL) is 0 and the gap before it is too long; its true arrival lies between the stamp
before it and the shared stamp, which bounds the error. How late the read loop got to bytes the kernel
already had (read lag) says how close the client is to merging.

Send side. A request is timed from the kernel's transmit stamp of its last byte (txstamp.py); the Python
stamp taken before the client call is kept, and their difference (the Python send path, preemption
included) is reported. A request without a kernel stamp is timed from the Python stamp, late by up to that
difference. A probe greenlet in each load process asks to wake every PROBE_INTERVAL_S and records how late it
woke: how late a scheduled send or a read could start (open-loop lag).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from loraxkit.loadtest.metrics import RequestRecord, distribution

PROBE_INTERVAL_S = 0.01
# Above this fraction of token events sharing a stamp (ITL), or of requests whose first token did (TTFT), the
# figures are unreliable. Below it the merged events can move no percentile up to p99.9.
MERGED_LIMIT = 0.001
LOOP_LAG_LIMIT_MS = 1.0  # event-loop lag p99 above this: sends and reads start late


def merged_events(stamps: np.ndarray) -> list[tuple[int, float]]:
    """(index, error bound in s) of each token event of one stream that shared its kernel stamp with the next.

    Its true arrival lies after the last earlier, different stamp (NaN when there is none: a merged first
    token) and at the shared stamp at the latest: the stamp is late by at most their difference.
    """
    if stamps.size < 2:
        return []
    merged = np.flatnonzero(np.diff(stamps) == 0.0)  # event i shares the stamp of event i + 1
    out = []
    for i in merged:
        before = stamps[:i][stamps[:i] < stamps[i]]
        out.append((int(i), float(stamps[i] - before[-1]) if before.size else float("nan")))
    return out


def merged_bounds(stamps: np.ndarray) -> tuple[int, bool, list[float]]:
    """(merged token events, first token merged, error bound of each merged event in s) of one stream."""
    events = merged_events(stamps)
    return len(events), bool(events and events[0][0] == 0), [bound for _, bound in events]


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


def send_check(records: Sequence[RequestRecord], loop_lags: Sequence[float]) -> dict[str, Any]:
    """How many requests are timed from the kernel's transmit stamp, how long the Python send path before it
    took (requests that reused their connection: the others also hold the connect), and the event-loop lag."""
    sent = [r for r in records if r.status]  # a response came: the request was written
    kernel = [r for r in sent if r.sent_user is not None]
    delays = [r.sent - r.sent_user for r in kernel if not r.first_on_connection and r.sent_user is not None]
    return {
        "requests": len(sent),
        "kernel_send_stamps": len(kernel),
        "python_send_delay_ms": distribution(delays),
        "probe_interval_ms": PROBE_INTERVAL_S * 1000.0,
        "event_loop_lag_ms": distribution(loop_lags),
    }


def send_verdict(send: dict[str, Any]) -> str | None:
    """Reliable when every request is timed from the kernel's transmit stamp; else judged by how late the
    Python stamp's requests can be (the measured Python send delay, or the event-loop lag without one)."""
    loop, delay = send["event_loop_lag_ms"], send["python_send_delay_ms"]
    total, kernel = send.get("requests", 0), send.get("kernel_send_stamps", 0)
    parts = []
    if total:
        parts.append(
            f"{kernel} of {total} requests timed from the kernel's transmit stamp of their last byte"
        )
    if delay.get("count"):
        parts.append(
            f"the Python stamp before it came {delay['p50']:.2f} ms (p50), {delay['p99']:.2f} ms (p99) "
            "earlier (left out of TTFT and E2E)"
        )
    if loop.get("count"):
        parts.append(
            f"event-loop lag p50 {loop['p50']:.2f} ms, p99 {loop['p99']:.2f} ms ({loop['count']} probes)"
        )
    if not parts:
        return None
    line = "; ".join(parts)
    python_stamped = total - kernel
    late = delay["p99"] if delay.get("count") else loop.get("p99", 0.0)
    if python_stamped and late > LOOP_LAG_LIMIT_MS:
        return (
            f"send side UNRELIABLE: {line}: {python_stamped} request(s) timed from the Python stamp can be "
            f"late by {late:.2f} ms (p99) in TTFT and E2E. Add load processes (--processes)"
        )
    if not total and late > LOOP_LAG_LIMIT_MS:
        return (
            f"send side UNRELIABLE: {line}: scheduled sends and reads start that late; open-loop lag and "
            "TTFT from the schedule show it. Add load processes (--processes)"
        )
    return f"send side ok: {line}"


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
        first = receive["requests_first_token_merged"]
        first_frac = first / receive["requests"] if receive.get("requests") else 0.0
        detail = _merged_detail(receive["merged_error_bound_ms"], first, first_frac)
        if frac > MERGED_LIMIT or first_frac > MERGED_LIMIT:
            out.append(
                f"receive side UNRELIABLE: {head}{detail}. Add load processes (--processes) or lower the load"
            )
        else:
            out.append(f"receive side ok: {head}{detail}")
    line = send_verdict(send)
    if line:
        out.append(line)
    return out


def _merged_detail(bound: dict[str, float], first: int, first_frac: float) -> str:
    """How far the merged events can be off: the ITL bound, and the requests whose first token merged."""
    out = ""
    if "p99" in bound:
        out += (
            f". Merged events have ITL 0 and the gap before them is too long by up to {bound['p99']:.2f} ms "
            f"(p99; max {bound['max']:.2f})"
        )
    if first:
        out += (
            f"; {first} request(s) ({first_frac:.3%}) had their first token read together with the next: "
            "their TTFT is late by up to the gap to that next token"
        )
    return out


def self_check(records: Sequence[RequestRecord], loop_lags: Sequence[float]) -> dict[str, Any]:
    receive, send = receive_check(records), send_check(records, loop_lags)
    return {"receive": receive, "send": send, "verdicts": verdicts(receive, send)}
