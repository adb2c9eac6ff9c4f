"""Adapter queues as LoRAX's router keeps them (predibase/lorax @a7394ba3, router/src/queue.rs,
scheduler.rs, loader.rs): one FIFO queue per adapter — the base model is one too, `__base_model__`, and
takes an active slot like any adapter — a pending list and an active list (in activation order), and one
loader that runs downloads, loads and offloads one at a time.

- A request for an adapter with no queue creates the queue and queues a download (queue.rs:193-222,
  scheduler.rs:231-244); an untracked adapter goes to the back of `pending`.
- Before each batch is formed (scheduler.rs:299-309 → 533-559, queue.rs:316-421): active adapters that are
  idle (empty queue, not in the running batch) leave while as many adapters are pending; then the front
  active adapter, if not in the running batch, active longer than the cycle time and someone is pending,
  moves to the back of `pending` (offloaded, its queued requests wait); then pending adapters whose download
  has finished become active (and are loaded) while there are free slots, in order — a pending adapter
  still downloading blocks the ones behind it.
- The next request comes from the active, loaded adapter whose oldest request is the oldest, preferring
  adapters active for less than the cycle time (queue.rs:284-315, 424-437).
- A failed download errors the adapter: its queue is terminated and every request in it gets the error
  (loader.rs:161-171, 258-281).
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

BASE = "__base_model__"  # router/src/adapter.rs:10

DOWNLOADING, DOWNLOADED, READY, ERRORED = "downloading", "downloaded", "ready", "errored"


@dataclass
class AdapterQueue:
    key: str
    entries: deque[Any] = field(default_factory=deque)
    status: str = DOWNLOADING
    downloaded: bool = False  # LoRAX: `cost` is set (queue.rs:367-371 gates activation on it)
    activation_ts: float = 0.0


class AdapterQueues:
    """The per-adapter queues and the active/pending lists. Entries are any objects with `queued`
    (their arrival in the queue) and `cancelled`; the engine owns the loader and the timing."""

    def __init__(self, max_active: int, cycle_s: float) -> None:
        self.max_active = max_active
        self.cycle_s = cycle_s
        self.queues: dict[str, AdapterQueue] = {}
        self.pending: deque[str] = deque()
        self.active: deque[str] = deque()
        self.tracked: set[str] = set()
        self.size = 0  # queued entries over every queue
        self.downloads = 0
        self.loads = 0
        self.evictions = 0  # offloads

    # ------------------------------------------------------------------ queue.rs `append`
    def append(self, key: str, entry: Any) -> bool:
        """Queue `entry`; returns True if the adapter's queue is new (its download must start)."""
        new = key not in self.queues
        if new:
            self.queues[key] = AdapterQueue(key)
            self.downloads += 1
        if key not in self.tracked:
            self.tracked.add(key)
            self.pending.append(key)
        self.queues[key].entries.append(entry)
        self.size += 1
        return new

    def push_front(self, key: str, entry: Any) -> None:
        self.queues[key].entries.appendleft(entry)
        self.size += 1

    def pop(self, key: str) -> Any:
        self.size -= 1
        return self.queues[key].entries.popleft()

    def drop_cancelled(self) -> None:
        for queue in self.queues.values():
            if any(e.cancelled for e in queue.entries):
                queue.entries = deque(e for e in queue.entries if not e.cancelled)
        self.size = sum(len(q.entries) for q in self.queues.values())

    def entries(self) -> list[Any]:
        return [e for q in self.queues.values() for e in q.entries]

    # ------------------------------------------------------------------ queue.rs `update_adapters`
    def update(self, in_use: set[str], now: float | None = None) -> tuple[list[str], list[str]]:
        """(adapters to offload, adapters to load) before a batch is formed."""
        now = time.monotonic() if now is None else now
        offload: list[str] = []
        load: list[str] = []
        remove: set[str] = set()
        for key in self.active:
            if key in in_use or len(self.pending) <= len(remove):
                continue
            if not self.queues[key].entries:
                remove.add(key)
                offload.append(key)
        if remove:
            self.active = deque(k for k in self.active if k not in remove)
            self.tracked -= remove
        if self.active:
            key = self.active[0]
            if key not in in_use and now - self.queues[key].activation_ts > self.cycle_s and self.pending:
                self.active.popleft()
                self.pending.append(key)
                offload.append(key)
        while len(self.active) < self.max_active and self.pending:
            queue = self.queues[self.pending[0]]
            if not queue.downloaded:
                break
            key = self.pending.popleft()
            queue.activation_ts = now
            load.append(key)
            self.active.append(key)
        self.evictions += sum(1 for k in offload if k != BASE)
        self.loads += sum(1 for k in load if k != BASE)
        return offload, load

    # ------------------------------------------------------------------ queue.rs `next_entry`
    def next_key(self, now: float | None = None) -> str | None:
        """The adapter whose request is next: among active, loaded adapters with queued requests, the one
        whose oldest request is oldest, preferring adapters active for less than the cycle time."""
        now = time.monotonic() if now is None else now
        oldest: tuple[float, str] | None = None
        within: tuple[float, str] | None = None
        for key in self.active:
            queue = self.queues[key]
            if not queue.entries or queue.status != READY:
                continue
            ts = queue.entries[0].queued
            if oldest is None or ts < oldest[0]:
                oldest = (ts, key)
            if (within is None or ts < within[0]) and now - queue.activation_ts < self.cycle_s:
                within = (ts, key)
        chosen = within or oldest
        return chosen[1] if chosen else None

    # ------------------------------------------------------------------ loader.rs outcomes
    def downloaded_ok(self, key: str) -> None:
        queue = self.queues.get(key)
        if queue is not None:
            queue.downloaded = True
            queue.status = DOWNLOADED

    def set_status(self, key: str, status: str) -> None:
        queue = self.queues.get(key)
        if queue is not None:
            queue.status = status

    def terminate(self, key: str) -> list[Any]:
        """An errored adapter: drop its queue and untrack it; returns the requests that were waiting."""
        queue = self.queues.pop(key, None)
        self.active = deque(k for k in self.active if k != key)
        self.pending = deque(k for k in self.pending if k != key)
        self.tracked.discard(key)
        if queue is None:
            return []
        self.size -= len(queue.entries)
        return list(queue.entries)

    def ready(self, key: str) -> bool:
        queue = self.queues.get(key)
        return queue is not None and queue.status == READY and key in self.active

    def state(self) -> dict[str, object]:
        return {
            "active_adapters": [k for k in self.active if k != BASE],
            "base_model_active": BASE in self.active,
            "pending_adapters": [k for k in self.pending if k != BASE],
            "loading_adapters": sorted(
                k for k, q in self.queues.items() if k != BASE and q.status in (DOWNLOADING, DOWNLOADED)
            ),
            "adapter_downloads": self.downloads - (1 if BASE in self.queues else 0),
            "adapter_loads": self.loads,
            "adapter_evictions": self.evictions,
        }
