"""Per-request records and the exact latency maths.

Definitions (the same as vLLM `bench serve`, so figures compare across tools):
- TTFT  = time of the first token event - time the request was sent.
- ITL   = every gap between consecutive token events, pooled over all requests.
- TPOT  = (E2E - TTFT) / (N - 1), N = output tokens (the server's count when it sent one, else the stream's).
- E2E   = time of the last token event - time sent (streams); body read - time sent (`/generate`).
- Percentiles are exact, from raw samples (numpy linear interpolation), never Locust's rounded buckets.
All stamps are epoch seconds of the wall clock; token stamps are the kernel's receive time of the bytes
(see sockstamp.py), comparable with the simulator's `time.time()` trace on the same machine.
"""

from __future__ import annotations

import time
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

CUT_AT_STOP = "cancelled_at_stop"  # error_type of a request the harness cut off when the run stopped
PERCENTILES: tuple[float, ...] = (50.0, 90.0, 95.0, 99.0, 99.9)
BASE_MODEL_LABEL = "<base>"

# The wall clock (CLOCK_REALTIME, ns resolution): the clock of the kernel's receive stamps and of the
# simulator's trace. A step of the system clock during a run would corrupt that run's times.
now = time.time


@dataclass(slots=True)
class RequestRecord:
    """Everything measured about one request; `token_times` holds one epoch stamp per token event."""

    request_id: str
    route: str
    adapter: str | None
    sent: float
    worker: int = 0
    intended: float | None = None
    headers: float | None = None
    end: float | None = None
    status: int = 0
    error_type: str | None = None
    error: str | None = None
    token_times: array = field(default_factory=lambda: array("d"))
    server_tokens: int | None = None
    prompt_tokens: int | None = None
    server_prompt_tokens: int | None = None
    max_new_tokens: int | None = None
    server_timing: dict[str, float] | None = None
    user: int = -1  # the Locust user (per process) that sent it
    connection: str | None = None  # local address:port of the TCP connection that carried it
    first_on_connection: bool = False  # carried the connection's TCP connect (never steady state)
    response_id: str | None = None  # the server's id for the response, to join with its logs
    # Self-checks of the receive side (see sockstamp): reads, token events that shared one read's kernel
    # stamp with the token before them, and how late the read loop got to data the kernel already had.
    reads: int = 0
    merged_tokens: int = 0
    read_lag_max: float = 0.0
    read_lag_sum: float = 0.0
    # Send side (see txstamp): when `sent` is the kernel's transmit time of the request's last byte, the
    # Python stamp taken before the client call; None when `sent` is that Python stamp itself.
    sent_user: float | None = None

    @property
    def ok(self) -> bool:
        return self.status == 200 and self.error_type is None

    @property
    def adapter_label(self) -> str:
        return self.adapter if self.adapter else BASE_MODEL_LABEL

    @property
    def stream_tokens(self) -> int:
        return len(self.token_times)

    @property
    def output_tokens(self) -> int:
        """N for TPOT and throughput: the server's count when it sent one, else the token events seen."""
        return self.server_tokens if self.server_tokens is not None else self.stream_tokens

    @property
    def token_count_mismatch(self) -> bool:
        """True when the stream's token events disagree with the server's own count."""
        return (
            bool(self.token_times)
            and self.server_tokens is not None
            and (self.server_tokens != self.stream_tokens)
        )

    @property
    def ttft(self) -> float | None:
        return self.token_times[0] - self.sent if self.token_times else None

    @property
    def e2e(self) -> float | None:
        if self.token_times:
            return self.token_times[-1] - self.sent
        return self.end - self.sent if self.end is not None else None

    @property
    def tpot(self) -> float | None:
        n = self.output_tokens
        if len(self.token_times) < 2 or n < 2:
            return None
        return (self.token_times[-1] - self.token_times[0]) / (n - 1)

    @property
    def itls(self) -> np.ndarray:
        return np.diff(np.frombuffer(self.token_times, dtype=np.float64))

    @property
    def schedule_lag(self) -> float | None:
        """How late the request left against its open-loop schedule (None in closed loop)."""
        return self.sent - self.intended if self.intended is not None else None

    @property
    def ttft_from_schedule(self) -> float | None:
        """TTFT counted from the scheduled arrival: the coordinated-omission-free view."""
        if self.intended is None or not self.token_times:
            return None
        return self.token_times[0] - self.intended

    def to_wire(self) -> dict[str, Any]:
        """A msgpack/JSON-friendly dict (token stamps as raw float64 bytes, 8 bytes per token)."""
        out = {name: getattr(self, name) for name in _SCALAR_FIELDS}
        out["token_times"] = self.token_times.tobytes()
        return out

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> RequestRecord:
        stamps = array("d")
        stamps.frombytes(data["token_times"])
        fields = {name: data[name] for name in _SCALAR_FIELDS if name in data}
        return cls(token_times=stamps, **fields)


_SCALAR_FIELDS: tuple[str, ...] = (
    "request_id",
    "route",
    "adapter",
    "sent",
    "worker",
    "intended",
    "headers",
    "end",
    "status",
    "error_type",
    "error",
    "server_tokens",
    "prompt_tokens",
    "server_prompt_tokens",
    "max_new_tokens",
    "server_timing",
    "user",
    "connection",
    "first_on_connection",
    "response_id",
    "reads",
    "merged_tokens",
    "read_lag_max",
    "read_lag_sum",
    "sent_user",
)


def distribution(samples: Iterable[float] | np.ndarray, scale: float = 1000.0) -> dict[str, float | int]:
    """Exact count/mean/min/max/percentiles of raw samples, scaled (seconds -> ms by default)."""
    values = np.asarray(list(samples) if not isinstance(samples, np.ndarray) else samples, dtype=np.float64)
    if values.size == 0:
        return {"count": 0}
    values = values * scale
    out: dict[str, float | int] = {
        "count": int(values.size),
        "mean": float(values.mean()),
        "min": float(values.min()),
        "max": float(values.max()),
    }
    for p, v in zip(PERCENTILES, np.percentile(values, PERCENTILES), strict=True):
        out[percentile_key(p)] = float(v)
    return out


def percentile_key(p: float) -> str:
    """50 -> 'p50', 99.9 -> 'p99.9'."""
    return f"p{p:g}"


@dataclass(frozen=True)
class Slos:
    """Per-request SLOs in seconds used for goodput (None = not checked)."""

    ttft: float | None = None
    tpot: float | None = None
    e2e: float | None = None

    def met_by(self, record: RequestRecord) -> bool:
        if not record.ok:
            return False
        checks = (
            ("ttft", self.ttft, record.ttft),
            ("tpot", self.tpot, record.tpot),
            ("e2e", self.e2e, record.e2e),
        )
        for name, limit, value in checks:
            if limit is None:
                continue
            # A request with one token has no TPOT: vLLM counts it as 0 for goodput, so do we.
            if value is None and name == "tpot":
                continue
            if value is None or value > limit:
                return False
        return True

    @property
    def any(self) -> bool:
        return any(v is not None for v in (self.ttft, self.tpot, self.e2e))


def window(records: Sequence[RequestRecord]) -> tuple[float, float] | None:
    """[first send, last end] over the records: the span throughput is divided by."""
    if not records:
        return None
    start = min(r.sent for r in records)
    ends = [r.token_times[-1] if r.token_times else (r.end or r.sent) for r in records]
    return start, max(max(ends), start)


def error_breakdown(records: Iterable[RequestRecord]) -> dict[str, dict[str, int]]:
    """Failed requests split by HTTP status and by error_type (in-stream errors have status 200)."""
    by_status: dict[str, int] = {}
    by_type: dict[str, int] = {}
    for r in records:
        if r.ok:
            continue
        by_status[str(r.status)] = by_status.get(str(r.status), 0) + 1
        key = r.error_type or "unknown"
        by_type[key] = by_type.get(key, 0) + 1
    return {"by_status": dict(sorted(by_status.items())), "by_error_type": dict(sorted(by_type.items()))}


def summarize(
    records: Sequence[RequestRecord], slos: Slos | None = None, duration: float | None = None
) -> dict[str, Any]:
    """Exact metrics for one group of requests (one adapter, one stage, or everything)."""
    span = window(records)
    if duration is None:
        duration = (span[1] - span[0]) if span else 0.0
    ok = [r for r in records if r.ok]
    out_tokens = sum(r.output_tokens for r in ok)
    gaps = [r.itls for r in ok if len(r.token_times) > 1]
    itl = np.concatenate(gaps) if gaps else np.empty(0)
    cut = sum(1 for r in records if r.error_type == CUT_AT_STOP)
    judged = len(records) - cut
    summary: dict[str, Any] = {
        "requests": len(records),
        "succeeded": len(ok),
        "failed": len(records) - len(ok),
        "cut_at_stop": cut,
        # the harness's own cut at stop is counted and shown, but is not the server's error
        "error_rate": (judged - len(ok)) / judged if judged else 0.0,
        "errors": error_breakdown(records),
        "duration_s": duration,
        "output_tokens": out_tokens,
        "output_tokens_per_s": out_tokens / duration if duration > 0 else 0.0,
        "requests_per_s": len(ok) / duration if duration > 0 else 0.0,
        "token_count_mismatches": sum(1 for r in ok if r.token_count_mismatch),
        "ttft_ms": distribution(_present(r.ttft for r in ok)),
        "tpot_ms": distribution(_present(r.tpot for r in ok)),
        "itl_ms": distribution(itl),
        "e2e_ms": distribution(_present(r.e2e for r in ok)),
        "output_tokens_per_request": distribution(_present(r.output_tokens for r in ok), scale=1.0),
    }
    summary.update(server_timing_summary(ok))
    lags = list(_present(r.schedule_lag for r in records))
    if lags:
        summary["schedule_lag_ms"] = distribution(lags)
        summary["ttft_from_schedule_ms"] = distribution(_present(r.ttft_from_schedule for r in ok))
    if slos is not None and slos.any:
        good = sum(1 for r in records if slos.met_by(r))
        summary["goodput"] = {
            "requests_meeting_slos": good,
            "fraction": good / len(records) if records else 0.0,
            "requests_per_s": good / duration if duration > 0 else 0.0,
        }
    return summary


def server_timing_summary(ok: Sequence[RequestRecord]) -> dict[str, Any]:
    """`/generate`: LoRAX's own `x-*` timings, and client E2E minus `x-total-time` (client + network)."""
    timed = [r for r in ok if r.server_timing]
    if not timed:
        return {}
    keys = sorted({k for r in timed for k in r.server_timing or {}})
    out: dict[str, Any] = {
        "server_timing_ms": {
            k: distribution([r.server_timing[k] for r in timed if k in r.server_timing], scale=1.0)
            for k in keys
        }
    }
    overhead = [
        r.e2e * 1000.0 - r.server_timing["total_time_ms"]
        for r in timed
        if r.e2e is not None and "total_time_ms" in r.server_timing
    ]
    if overhead:
        out["client_overhead_ms"] = distribution(overhead, scale=1.0)
    return out


def _present(values: Iterable[float | int | None]) -> list[float]:
    return [float(v) for v in values if v is not None]


def group_by(records: Iterable[RequestRecord], key: Any) -> dict[str, list[RequestRecord]]:
    groups: dict[str, list[RequestRecord]] = {}
    for r in records:
        groups.setdefault(key(r), []).append(r)
    return dict(sorted(groups.items()))
