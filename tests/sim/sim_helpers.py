"""Shared constants and helpers of the simulator tests."""

from __future__ import annotations

import time

import httpx

from loraxkit.sim.trace import read_trace

# Synthetic profile with fast fixed step times: tests exercise behaviour, not GPU speed.
FAST = (
    "--profile",
    "synthetic",
    "--decode-ms",
    "2",
    "--prefill-ms",
    "1",
    "--adapter-load-ms",
    "20",
    "--log-level",
    "WARNING",
)
UNLOADABLE = "broken/*"


def sim_state(base_url: str) -> dict[str, object]:
    """The simulator-only introspection route (slots in flight, queue, adapters)."""
    return dict(httpx.get(base_url + "/sim/state").json())


def wait_idle(base_url: str, timeout: float = 5.0) -> dict[str, object]:
    """Poll until no request is in flight, being tokenized, waiting, in a prefill or running (or the timeout
    passes); returns the state."""
    deadline = time.monotonic() + timeout
    state = sim_state(base_url)
    while time.monotonic() < deadline and any(
        state[key] for key in ("in_flight", "tokenizing", "waiting", "prefilling", "running")
    ):
        time.sleep(0.05)
        state = sim_state(base_url)
    return state


def wait_trace(
    path: str | None, count: int = 0, request_ids: set[str] | None = None, timeout: float = 15.0
) -> list[dict[str, object]]:
    """The trace's records once it holds `count` of them and every id in `request_ids` (records reach the
    file shortly after their requests end, outside the token loop); the records so far after `timeout`."""
    assert path is not None
    deadline = time.monotonic() + timeout
    while True:
        records = read_trace(path)
        ids = {r["request_id"] for r in records}
        if (len(records) >= count and (request_ids or set()) <= ids) or time.monotonic() > deadline:
            return records
        time.sleep(0.05)
