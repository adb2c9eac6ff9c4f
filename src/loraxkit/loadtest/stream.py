"""The measured request path: read the response as it arrives and fill a RequestRecord.

Streams are read as they arrive (sockstamp.ReadLoop under Locust), never with
`iter_content(1024)`/`FastHttpSession.iter_lines`, which buffer 1 KiB and bunch tokens together. Each line
carries its arrival stamp, then is classified by `loraxkit.wire.parse_sse_line` (the same module the
simulator writes with). The stream is read to its end so the connection is reused.
"""

from __future__ import annotations

import json
import operator
import time
from collections.abc import Callable, Mapping
from typing import Any

from loraxkit import wire
from loraxkit.loadtest.metrics import CUT_AT_STOP, RequestRecord

# Client-side error types (LoRAX's own come from the server's `error_type`).
ERR_CONNECTION = "connection"
ERR_INCOMPLETE_STREAM = "incomplete_stream"
ERR_BAD_RESPONSE = "bad_response"
ERR_TIMEOUT = "timeout"
ERR_LOST_MID_STREAM = "lost_mid_stream"  # the connection failed inside the body: reset, EOF in a chunk
ERR_CANCELLED_AT_STOP = CUT_AT_STOP  # still in flight when the run stopped (the harness cut it)
ERR_STALLED = "stalled"  # cut at stop after nothing had arrived for --stall-timeout seconds

_TIMING_HEADERS = {
    wire.H_TIME_TO_FIRST_TOKEN: "time_to_first_token_ms",
    wire.H_TIME_PER_OUTPUT_TOKEN: "time_per_output_token_ms",
    wire.H_QUEUE_TIME: "queue_time_ms",
    wire.H_INFERENCE_TIME: "inference_time_ms",
    wire.H_VALIDATION_TIME: "validation_time_ms",
    wire.H_TOTAL_TIME: "total_time_ms",
}

_TOKEN = wire.EventKind.TOKEN
_FINAL = wire.EventKind.FINAL
_ERROR = wire.EventKind.ERROR
_is_token = wire.is_native_token_line


class SseRecorder:
    """Fills a RequestRecord from SSE lines (token stamps, server counts, in-stream errors) as they arrive."""

    __slots__ = ("_stamps", "finished", "record")

    def __init__(self, record: RequestRecord) -> None:
        self.record = record
        self._stamps = record.token_times
        self.finished = False

    def line(self, line: bytes, t: float) -> None:
        """One non-blank SSE line without its line end, `t` its arrival stamp."""
        if _is_token(line):  # nearly every line: no JSON parse
            self._stamps.append(t)
            return
        event = wire.parse_sse_line(line.decode("utf-8", "replace"))
        kind = event.kind
        if kind is _TOKEN:
            self._stamps.append(t)
        elif kind is _FINAL:
            self._stamps.append(t)  # LoRAX's final event carries the last token (empty text on EOS)
            self.finished = True
            record = self.record
            record.server_tokens = event.generated_tokens
            record.server_prompt_tokens = event.prompt_tokens
        elif kind is _ERROR and self.record.error_type is None:
            self.record.error_type = event.error_type or "unknown"
            self.record.error = (event.error or "")[:300]

    def end(self, at: float | None = None) -> None:
        """The body ended (at `at`, default now): a stream with no final event and no error is incomplete."""
        record = self.record
        record.end = at if at is not None else time.time()
        stamps = self._stamps
        record.merged_tokens = sum(map(operator.eq, stamps[1:], stamps[:-1]))  # shared a read's stamp
        if not self.finished and record.error_type is None:
            record.error_type = ERR_INCOMPLETE_STREAM
            record.error = f"stream ended after {len(self._stamps)} token events without a final event"


def read_sse(
    readline: Callable[[], bytes | bytearray], record: RequestRecord, arrival: Callable[[], float] = time.time
) -> None:
    """Consume an SSE body line by line into `record` (token stamps, server counts, in-stream errors).

    `readline` returns one line including its newline, or b"" at the end of the body; `arrival` gives the
    arrival time of the line just returned (the kernel's receive stamp, or the clock when read).
    """
    recorder = SseRecorder(record)
    while True:
        line = readline()
        if not line:
            break
        t = arrival()
        if len(line) >= 3:  # not the blank line that ends each event
            recorder.line(bytes(line).rstrip(b"\r\n"), t)
    recorder.end()


def read_generate(body: bytes, headers: Mapping[str, str], record: RequestRecord) -> None:
    """Fill `record` from a finished `/generate` response: details and LoRAX's `x-*` timing headers."""
    try:
        obj: Any = json.loads(body)
    except ValueError:
        record.error_type, record.error = ERR_BAD_RESPONSE, "response body is not JSON"
        return
    details = obj.get("details") if isinstance(obj, dict) else None
    if isinstance(details, dict):
        record.server_tokens = details.get("generated_tokens")
        record.server_prompt_tokens = details.get("prompt_tokens")
    timing: dict[str, float] = {}
    for header, key in _TIMING_HEADERS.items():
        value = headers.get(header)
        if value is not None:
            try:
                timing[key] = float(value)
            except ValueError:
                continue
    record.server_timing = timing or None
    if record.server_tokens is None and headers.get(wire.H_GENERATED_TOKENS):
        record.server_tokens = int(headers[wire.H_GENERATED_TOKENS])


def read_error_body(status: int, body: bytes | None, record: RequestRecord) -> None:
    """A non-200 answer: LoRAX's `{"error", "error_type"}` body, or axum's plain-text rejection."""
    record.status = status
    text = (body or b"").decode("utf-8", errors="replace")
    try:
        obj = json.loads(text)
    except ValueError:
        obj = None
    if isinstance(obj, dict) and "error" in obj:
        record.error_type = obj.get("error_type") or f"http_{status}"
        record.error = str(obj.get("error"))[:300]
    else:
        record.error_type = f"http_{status}"
        record.error = text[:300] or f"HTTP {status}"
