"""Compare what the harness measured with the simulator's ground-truth trace, request by request.

Matching is by request id (the harness sends `x-request-id`; the simulator's trace records it). Errors are
client minus server, in milliseconds:
- token stamp error: client receive time of token k - server hand-off time of token k (same machine clock);
- TTFT error: client TTFT - server TTFT (server TTFT = first token hand-off - request arrival). The
  simulator stamps `arrival` when its event loop reads the request's first bytes, so this also holds the
  client's connect/send time and how long the bytes waited for a busy simulator; the first token's own
  stamp error is reported apart;
- TPOT error: client TPOT - server TPOT (both (last - first) / (N - 1));
- send to read: the simulator's `arrival` - the client's send stamp (the kernel's transmit time of the
  request's last byte when it has one): TTFT error = send to read + first token's stamp error, exactly;
- Python send delay: the kernel's transmit stamp - the Python stamp taken before the client call (the part
  of the old TTFT error the kernel stamp removes).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from loraxkit.loadtest.metrics import RequestRecord, distribution


@dataclass
class TraceComparison:
    matched: int = 0
    unmatched_client: int = 0
    token_count_differences: int = 0
    ttft_error_ms: list[float] = field(default_factory=list)
    first_token_error_ms: list[float] = field(default_factory=list)
    tpot_error_ms: list[float] = field(default_factory=list)
    stamp_error_ms: list[float] = field(default_factory=list)
    itl_error_ms: list[float] = field(default_factory=list)
    send_to_read_ms: list[float] = field(default_factory=list)
    python_send_delay_ms: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "matched": self.matched,
            "unmatched_client": self.unmatched_client,
            "token_count_differences": self.token_count_differences,
            "ttft_error_ms": distribution(self.ttft_error_ms, scale=1.0),
            "first_token_error_ms": distribution(self.first_token_error_ms, scale=1.0),
            "tpot_error_ms": distribution(self.tpot_error_ms, scale=1.0),
            "token_stamp_error_ms": distribution(self.stamp_error_ms, scale=1.0),
            "itl_error_ms": distribution(self.itl_error_ms, scale=1.0),
            "send_to_read_ms": distribution(self.send_to_read_ms, scale=1.0),
            "python_send_delay_ms": distribution(self.python_send_delay_ms, scale=1.0),
        }


def load_records(path: str | Path) -> list[RequestRecord]:
    """Records from the harness's `records.jsonl` (`--save-records`)."""
    out = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            stamps = np.asarray(row.pop("token_times"), dtype=np.float64)
            row["token_times"] = stamps.tobytes()
            out.append(RequestRecord.from_wire(row))
    return out


def compare(records: Sequence[RequestRecord], trace: Iterable[dict[str, Any]]) -> TraceComparison:
    """Per-request comparison of successful streamed requests with the trace (see module doc)."""
    by_id = {t["request_id"]: t for t in trace}
    result = TraceComparison()
    for r in records:
        truth = by_id.get(r.request_id)
        if truth is None:
            result.unmatched_client += 1
            continue
        if not r.ok or not r.token_times or not truth.get("token_times"):
            continue
        result.matched += 1
        client = np.frombuffer(r.token_times, dtype=np.float64)
        server = np.asarray(truth["token_times"], dtype=np.float64)
        if client.size != server.size:
            result.token_count_differences += 1
            continue
        result.stamp_error_ms.extend(((client - server) * 1000.0).tolist())
        result.itl_error_ms.extend(((np.diff(client) - np.diff(server)) * 1000.0).tolist())
        result.first_token_error_ms.append((client[0] - server[0]) * 1000.0)
        server_ttft = server[0] - truth["arrival"]
        result.send_to_read_ms.append((truth["arrival"] - r.sent) * 1000.0)
        if r.sent_user is not None:
            result.python_send_delay_ms.append((r.sent - r.sent_user) * 1000.0)
        result.ttft_error_ms.append(((client[0] - r.sent) - server_ttft) * 1000.0)
        if client.size > 1:
            n = client.size - 1
            result.tpot_error_ms.append(((client[-1] - client[0]) - (server[-1] - server[0])) / n * 1000.0)
    return result
