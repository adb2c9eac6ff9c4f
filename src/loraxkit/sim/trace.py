"""Ground-truth trace: one JSON line per finished request, written and flushed when it ends.

Fields: request_id, route, adapter_id (null = base model), arrival, admitted, first_token, token_times,
end, status (HTTP status; 200 for streams even when an error went in-stream), error_type, prompt_tokens,
generated_tokens. Times are time.time() epoch seconds taken when the bytes were handed to the socket
(for non-streaming routes: when each token was generated; `end` when the response was written).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import IO, Any


class TraceWriter:
    def __init__(self, path: str | Path) -> None:
        self._file: IO[str] = open(path, "a", encoding="utf-8")  # noqa: SIM115 (lives as long as the server)

    def write(self, record: dict[str, Any]) -> None:
        self._file.write(json.dumps(record, separators=(",", ":")) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def read_trace(path: str | Path) -> list[dict[str, Any]]:
    """All records of a trace file (for tests, the harness and benchmarks)."""
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
