"""Shared constants and helpers of the simulator tests."""

from __future__ import annotations

import dataclasses
import socket
import time

import httpx

from loraxkit.sim.adapters import BASE, READY, AdapterQueue
from loraxkit.sim.engine import Engine, EngineConfig
from loraxkit.sim.metrics import Registry
from loraxkit.sim.profiles import get_profile
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


def send_now(
    port: int, bodies: list[bytes], request_ids: list[str], path: str = "/generate"
) -> list[socket.socket]:
    """Open one connection per body, then send every request back to back (so they arrive within the same
    event-loop turn); read the replies later with `read_replies`."""
    socks = [socket.create_connection(("127.0.0.1", port), timeout=60) for _ in bodies]
    for s, body, rid in zip(socks, bodies, request_ids, strict=True):
        s.sendall(
            b"POST %b HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\nconnection: close\r\n"
            b"x-request-id: %b\r\ncontent-length: %d\r\n\r\n%b"
            % (path.encode(), rid.encode(), len(body), body)
        )
    return socks


def read_replies(socks: list[socket.socket]) -> list[bytes]:
    replies = []
    for s in socks:
        data = b""
        while chunk := s.recv(65536):
            data += chunk
        s.close()
        replies.append(data)
    return replies


def wait_state(base_url: str, key: str, value: object, timeout: float = 30.0) -> dict[str, object]:
    """Poll /sim/state until `key` reaches `value` (or the timeout passes); returns the state."""
    deadline = time.monotonic() + timeout
    state = sim_state(base_url)
    while state[key] != value and time.monotonic() < deadline:
        time.sleep(0.005)
        state = sim_state(base_url)
    return state


def metric(text: str, series: str) -> float:
    """One sample of a Prometheus text page (0 when absent)."""
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


class ScriptedClock:
    """The engine's view of time.monotonic(), read from a script; everything else of `time` as it is."""

    def __init__(self, readings: list[float]) -> None:
        self.readings = readings

    def monotonic(self) -> float:
        return self.readings.pop(0) if len(self.readings) > 1 else self.readings[0]

    def time(self) -> float:
        return time.time()


def ready_base_engine() -> Engine:
    """An in-process engine (1 ms steps) whose base model is downloaded and active: nothing to load."""
    profile = dataclasses.replace(get_profile("synthetic"), fixed_decode_ms=1.0, fixed_prefill_ms=1.0)
    engine = Engine(profile, EngineConfig(10**6, 10**6), Registry(4095, 4096))
    engine.queues.queues[BASE] = AdapterQueue(BASE, status=READY, downloaded=True)
    engine.queues.active.append(BASE)
    engine.queues.tracked.add(BASE)
    return engine
