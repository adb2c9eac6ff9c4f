"""Ground-truth trace: one JSON line per finished request, written and flushed when it ends.

Fields: request_id, route, adapter_id (null = base model), arrival, admitted, first_token, token_times,
end, status (HTTP status; 200 for streams even when an error went in-stream), error_type, prompt_tokens,
generated_tokens. Times are time.time() epoch seconds taken when the bytes were handed to the socket
(for non-streaming routes: when each token was generated; `end` when the response was written).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

# Records are encoded and flushed at most this long after the request ended, outside the token loop,
# so that finishing many requests in one step does not delay the tokens of the others.
FLUSH_DELAY_S = 0.05


class TraceWriter:
    """Appends records as JSON lines. With `defer`, each record is encoded as its own deferred work item
    (see sim/pump.py); encoded lines reach the file within FLUSH_DELAY_S."""

    def __init__(self, path: str | Path, defer: Callable[..., None] | None = None) -> None:
        self._file: IO[str] = open(path, "a", encoding="utf-8")  # noqa: SIM115 (lives as long as the server)
        self._defer = defer
        self._pending: list[str] = []
        self._scheduled = False

    def write(self, record: dict[str, Any]) -> None:
        if self._defer is not None:
            self._defer(self._encode, record)
        else:
            self._encode(record)

    def _encode(self, record: dict[str, Any]) -> None:
        self._pending.append(json.dumps(record, separators=(",", ":")) + "\n")
        if not self._scheduled:
            self._scheduled = True
            try:
                asyncio.get_running_loop().call_later(FLUSH_DELAY_S, self.flush)
            except RuntimeError:  # no loop (direct use): write now
                self.flush()

    def flush(self) -> None:
        self._scheduled = False
        lines, self._pending = self._pending, []
        if lines and not self._file.closed:
            self._file.write("".join(lines))
            self._file.flush()

    def close(self) -> None:
        self.flush()
        self._file.close()


def read_trace(path: str | Path) -> list[dict[str, Any]]:
    """All records of a trace file (for tests, the harness and benchmarks)."""
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
