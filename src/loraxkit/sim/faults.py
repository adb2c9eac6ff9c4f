"""Fault injection: the ways LoRAX gets sick that `/health` does not show, switchable at start
(`loraxkit sim --faults JSON`) and at run time (`GET`/`POST`/`DELETE /sim/faults`, simulator-only routes).

Each fault moves LoRAX's own series the way LoRAX's router moves them (predibase/lorax @a7394ba3):

- `hang`: tokens stop, new requests queue, `/health` stays 200 (lorax#779).
  `lorax_batch_inference_count{method}` counts the stuck step and `..._success` stops (infer.rs:1303,1316).
  `lorax_queue_length` keeps its last value: LoRAX (and the simulator's engine) sets it only from the batching
  loop (scheduler.rs:295), which a hung step holds up; the alert does not rely on it.
- `fail_ratio` (+ `fail_after_tokens`): that share of requests ends with a `generation` error, inside the
  stream under HTTP 200 on streams, 424 otherwise; `lorax_request_failure{err="generation"}` (infer.rs:1653).
- `adapter_fail` (globs): requests for matching adapters get 424 `generation`;
  `lorax_request_failure{err="download_adapter"}` (loader.rs:133).
- `adapter_slow` (globs) + `adapter_slow_ms`: matching adapters take this long to load; their requests wait in
  the queue (`lorax_request_queue_duration`, the `x-queue-time` header).
- `decode_factor`: every decode step takes this many times longer (`lorax_batch_inference_duration{method=
  "decode"}`, `lorax_request_mean_time_per_token_duration`, the trace's token gaps).
- `exit_code` (+ `exit_after_s`): the process exits (LoRAX's launcher exits when a shard dies; Kubernetes
  restarts the pod); the scrape target goes down (`up == 0`).

LoRAX fails a whole batch when a shard's decode fails (infer.rs:1320-1326); `fail_ratio` fails a chosen share
of requests instead, so a failure ratio can be set exactly; the series and the in-stream error are LoRAX's.
"""

from __future__ import annotations

import asyncio
import fnmatch
import json
import logging
import os
import random
from dataclasses import dataclass, field, fields
from typing import Any

from loraxkit.sim.http import Connection, Request

log = logging.getLogger("loraxkit.sim.faults")

FAULTS_ROUTE = "/sim/faults"
FAIL_DETAIL = "Server error: simulated shard failure (fault fail_ratio)"


class FaultError(ValueError):
    """A fault setting that cannot be applied; the message names the field and what it accepts."""


@dataclass
class FaultSpec:
    """The settings; every field's default means "healthy"."""

    hang: bool = False
    fail_ratio: float = 0.0
    fail_after_tokens: int = 1
    adapter_fail: list[str] = field(default_factory=list)
    adapter_slow: list[str] = field(default_factory=list)
    adapter_slow_ms: float = 0.0
    decode_factor: float = 1.0
    exit_code: int | None = None
    exit_after_s: float = 0.0

    def as_json(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _number(name: str, value: Any, low: float, high: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FaultError(f"{name}: expected a number, got {json.dumps(value)}")
    if value < low or (high is not None and value > high):
        bounds = f">= {low}" if high is None else f"between {low} and {high}"
        raise FaultError(f"{name}: must be {bounds}, got {value}")
    return float(value)


def _globs(name: str, value: Any) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise FaultError(
            f'{name}: expected a list of adapter-id globs, e.g. ["acme/*"], got {json.dumps(value)}'
        )
    return list(value)


def parse(body: Any, base: FaultSpec | None = None) -> FaultSpec:
    """Apply a JSON object of settings on top of `base` (a fresh healthy spec when None)."""
    if not isinstance(body, dict):
        raise FaultError(f"expected a JSON object of fault settings, got {json.dumps(body)}")
    spec = FaultSpec(**(base or FaultSpec()).as_json())
    known = {f.name for f in fields(FaultSpec)}
    for key, value in body.items():
        if key not in known:
            raise FaultError(f"unknown fault {key!r}; known: {', '.join(sorted(known))}")
        if key == "hang":
            if not isinstance(value, bool):
                raise FaultError(f"hang: expected true or false, got {json.dumps(value)}")
            spec.hang = value
        elif key == "fail_ratio":
            spec.fail_ratio = _number(key, value, 0.0, 1.0)
        elif key == "fail_after_tokens":
            spec.fail_after_tokens = int(_number(key, value, 0))
        elif key in ("adapter_fail", "adapter_slow"):
            setattr(spec, key, _globs(key, value))
        elif key == "adapter_slow_ms":
            spec.adapter_slow_ms = _number(key, value, 0.0)
        elif key == "decode_factor":
            spec.decode_factor = _number(key, value, 0.01)
        elif key == "exit_code":
            spec.exit_code = None if value is None else int(_number(key, value, 0, 255))
        elif key == "exit_after_s":
            spec.exit_after_s = _number(key, value, 0.0)
    return spec


class Faults:
    """The live fault state the engine and the routes consult. Cheap when healthy: plain attribute reads."""

    def __init__(self, spec: FaultSpec | None = None, seed: int = 0) -> None:
        self.spec = FaultSpec()
        self._rng = random.Random(seed)
        self._unhung = asyncio.Event()
        self._unhung.set()
        self._exit_handle: asyncio.TimerHandle | None = None
        self.injected: dict[str, int] = {"fail_ratio": 0, "adapter_fail": 0}
        if spec is not None:
            self.apply(spec)

    # ------------------------------------------------------------------ settings
    def apply(self, spec: FaultSpec) -> None:
        before, self.spec = self.spec, spec
        if spec.hang:
            self._unhung.clear()
        else:
            self._unhung.set()
        exit_changed = (spec.exit_code, spec.exit_after_s) != (before.exit_code, before.exit_after_s)
        if spec.exit_code is not None and (exit_changed or self._exit_handle is None):
            self._schedule_exit(spec.exit_code, spec.exit_after_s)
        elif spec.exit_code is None and self._exit_handle is not None:
            self._exit_handle.cancel()
            self._exit_handle = None
        log.warning(
            "faults now %s", {k: v for k, v in spec.as_json().items() if v != getattr(FaultSpec(), k)}
        )

    def _schedule_exit(self, code: int, after_s: float) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # set at start, before the loop runs: exit once it does
            self.spec.exit_code = code
            return
        if self._exit_handle is not None:
            self._exit_handle.cancel()
        log.warning("fault exit: the process exits with code %d in %.1f s", code, after_s)
        self._exit_handle = loop.call_later(after_s, _exit_now, code)

    def start(self) -> None:
        """Called once the event loop runs: arms an exit set at start-up."""
        if self.spec.exit_code is not None and self._exit_handle is None:
            self._schedule_exit(self.spec.exit_code, self.spec.exit_after_s)

    # ------------------------------------------------------------------ engine hooks
    @property
    def hung(self) -> bool:
        return self.spec.hang

    async def wait_unhung(self) -> None:
        await self._unhung.wait()

    @property
    def decode_factor(self) -> float:
        return self.spec.decode_factor

    def adapter_fails(self, adapter_id: str) -> bool:
        return any(fnmatch.fnmatchcase(adapter_id, p) for p in self.spec.adapter_fail)

    def adapter_load_ms(self, adapter_id: str, normal_ms: float) -> float:
        if any(fnmatch.fnmatchcase(adapter_id, p) for p in self.spec.adapter_slow):
            return max(normal_ms, self.spec.adapter_slow_ms)
        return normal_ms

    def doom(self) -> int | None:
        """For a new request: the token index at which it fails (None = it does not)."""
        if self.spec.fail_ratio <= 0 or self._rng.random() >= self.spec.fail_ratio:
            return None
        return self.spec.fail_after_tokens


def _exit_now(code: int) -> None:
    log.error("fault exit: exiting with code %d", code)
    logging.shutdown()
    os._exit(code)


def route(faults: Faults, conn: Connection, req: Request) -> None:
    """GET shows the settings; POST applies a JSON object on top of them; DELETE heals everything."""
    if req.method == "GET":
        _send(conn, 200, faults.spec.as_json())
        return
    if req.method == "DELETE":
        faults.apply(FaultSpec())
        _send(conn, 200, faults.spec.as_json())
        return
    if req.method != "POST":
        conn.send(405, b"", "text/plain; charset=utf-8")
        return
    try:
        body = json.loads(req.body or b"{}")
        faults.apply(parse(body, faults.spec))
    except (ValueError, UnicodeDecodeError) as exc:  # FaultError is a ValueError, and so is bad JSON
        _send(conn, 400, {"error": f"{FAULTS_ROUTE}: {exc}", "error_type": "bad_request"})
        return
    _send(conn, 200, faults.spec.as_json())


def _send(conn: Connection, status: int, obj: Any) -> None:
    conn.send(status, json.dumps(obj).encode(), "application/json")
