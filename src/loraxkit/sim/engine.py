"""The continuous-batching scheduler: a waiting queue, prefill and decode steps timed by a profile, token
budgets per batch and per prefill, adapter loading on first use and eviction beyond max active adapters.

It follows LoRAX's router (`router/src/infer.rs` batching task, TGI lineage): a new batch is prefilled when
the waiting queue holds at least `batch_size x waiting_served_ratio` admissible entries or no new entry was
onboarded for `max_waiting_tokens` decode steps; the running batch pauses while a new batch prefills, then
both decode together. One timer per step serves the whole batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import math
import random
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Protocol

from loraxkit.sim.metrics import Registry
from loraxkit.sim.profiles import Profile
from loraxkit.wire import LoraxError, adapter_source_error, generation_error

# How far the event loop may lag the simulated GPU timeline before the timeline is reset to "now".
CATCH_UP_S = 0.25
# Wake this long before a step's deadline and yield to the loop until it passes (timer resolution is 1 ms).
SPIN_S = 0.0015


class Sink(Protocol):
    """Where a sequence's output goes (an HTTP response); returns the time.time() the bytes left."""

    def on_token(self, seq: Sequence, index: int, last: bool) -> float: ...

    def on_error(self, seq: Sequence, err: LoraxError) -> None: ...


@dataclass(eq=False, slots=True)
class Sequence:
    """One generation request inside the engine. `token_ids` is the whole output, fixed at submit time."""

    request_id: str
    route: str
    adapter_id: str | None
    input_length: int
    max_new_tokens: int
    token_ids: list[int]
    finish_reason: str
    sink: Sink
    arrival: float
    queued: float = 0.0
    admitted: float | None = None
    first_token: float | None = None
    end: float | None = None
    token_times: list[float] = field(default_factory=list)
    generated: int = 0
    cancelled: bool = False
    done: bool = False
    error_type: str | None = None
    adapter_source: str = "hub"  # where the adapter loads from, if this request is the one that loads it
    # the simulated GPU step's end (epoch seconds) of each token: token_times[i] - token_steps[i] is how
    # late the bytes went out after their step ended (the event loop's lag plus the place in the burst)
    token_steps: list[float] = field(default_factory=list)


@dataclass
class EngineConfig:
    max_batch_total_tokens: int
    max_batch_prefill_tokens: int
    max_waiting_tokens: int = 20
    waiting_served_ratio: float = 1.2
    max_active_adapters: int = 1024
    adapter_load_ms: float = 800.0
    adapter_cycle_s: float = 2.0
    unloadable_adapters: tuple[str, ...] = ()
    step_jitter: float = 0.0
    seed: int = 0


class AdapterTable:
    """Which adapters are on the GPU, which are loading, which wait for a slot.

    Beyond `max_active`, the least recently used adapter with nothing queued or running is offloaded first;
    failing that, one with only queued work that has been active for `cycle_s` (LoRAX's
    `--adapter-cycle-time-s`) is swapped out so that other adapters get a turn (its work waits to reload)."""

    def __init__(self, max_active: int, cycle_s: float = 2.0) -> None:
        self.max_active = max_active
        self.cycle_s = cycle_s
        self.active: OrderedDict[str, float] = OrderedDict()  # adapter → monotonic time it became active
        self.loading: set[str] = set()
        self.pending: deque[str] = deque()
        self.loads = 0
        self.evictions = 0

    def ready(self, adapter_id: str | None) -> bool:
        return adapter_id is None or adapter_id in self.active

    def touch(self, adapter_id: str) -> None:
        self.active.move_to_end(adapter_id)

    def admitting(self, adapter_id: str | None, now: float) -> bool:
        """Loaded and not at the end of its turn: once other adapters wait for a slot, an adapter active for
        `cycle_s` takes no new work, so its running work drains and it can be swapped out."""
        if adapter_id is None:
            return True
        since = self.active.get(adapter_id)
        if since is None:
            return False
        return not (self.pending and now - since >= self.cycle_s)

    def wants(self, adapter_id: str) -> bool:
        """Returns True if a load should start now; otherwise the adapter is active, loading or queued."""
        if adapter_id in self.active or adapter_id in self.loading:
            return False
        if len(self.active) + len(self.loading) < self.max_active:
            self.loading.add(adapter_id)
            self.loads += 1
            return True
        if adapter_id not in self.pending:
            self.pending.append(adapter_id)
        return False

    def _victim(self, running: set[str], waiting: set[str], now: float) -> tuple[str | None, bool]:
        """(adapter to offload, whether its queued work must reload it later)."""
        for adapter_id in self.active:
            if adapter_id not in running and adapter_id not in waiting:
                return adapter_id, False
        for adapter_id, since in self.active.items():
            if adapter_id not in running and now - since >= self.cycle_s:
                return adapter_id, True
        return None, False

    def evict_for_pending(self, running: set[str], waiting: set[str], now: float) -> list[str]:
        """Offload adapters so pending ones can load. Returns the adapters whose load starts now."""
        to_load: list[str] = []
        for _ in range(len(self.pending)):
            if len(self.active) + len(self.loading) >= self.max_active:
                victim, requeue = self._victim(running, waiting, now)
                if victim is None:
                    break
                del self.active[victim]
                self.evictions += 1
                if requeue:
                    self.pending.append(victim)
            adapter_id = self.pending.popleft()
            self.loading.add(adapter_id)
            self.loads += 1
            to_load.append(adapter_id)
        return to_load

    def loaded(self, adapter_id: str) -> None:
        self.loading.discard(adapter_id)
        self.active[adapter_id] = time.monotonic()

    def failed(self, adapter_id: str) -> None:
        self.loading.discard(adapter_id)


class Engine:
    def __init__(self, profile: Profile, config: EngineConfig, metrics: Registry) -> None:
        self.profile = profile
        self.config = config
        self.metrics = metrics
        self.waiting: deque[Sequence] = deque()
        self.running: list[Sequence] = []
        self.prefilling = 0  # sequences in the prefill step under way (neither waiting nor running)
        self.adapters = AdapterTable(config.max_active_adapters, config.adapter_cycle_s)
        self._rng = random.Random(config.seed)
        self._wake = asyncio.Event()
        self._waiting_steps = 0
        self._deadline = 0.0
        self._task: asyncio.Task[None] | None = None
        self.steps = 0
        self.late_steps = 0  # steps whose wake-up came > 2 ms after their deadline (CPU starvation)
        self.lateness_max = 0.0
        self._lateness: list[float] = []
        self._sources: dict[str, str] = {}  # adapter → the source its queue was created with
        # per step that emitted tokens: seconds from the first to the last write of the step's burst
        self.spread = SpreadStats()
        self._step_end = 0.0  # epoch time of the current step's simulated end (see token_steps)
        self._epoch_offset = time.time() - time.monotonic()

    # ------------------------------------------------------------------ public
    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def submit(self, seq: Sequence) -> None:
        seq.queued = time.time()
        self.waiting.append(seq)
        if seq.adapter_id is not None:
            # LoRAX keys adapter queues by index (adapter.rs:62-66 @a7394ba3): the first request's source
            # is the one the download uses; later requests join that queue whatever source they name
            self._sources.setdefault(seq.adapter_id, seq.adapter_source)
            self._request_adapter(seq.adapter_id)
        self.metrics.set("lorax_queue_length", len(self.waiting))
        self._wake.set()

    def cancel(self, seq: Sequence) -> None:
        """The client went away: drop the sequence at the next step boundary."""
        seq.cancelled = True

    # ------------------------------------------------------------------ adapters
    def _unloadable(self, adapter_id: str) -> bool:
        return any(fnmatch.fnmatchcase(adapter_id, pattern) for pattern in self.config.unloadable_adapters)

    def _request_adapter(self, adapter_id: str) -> None:
        if self.adapters.ready(adapter_id):
            return
        if self.adapters.wants(adapter_id):
            self._start_load(adapter_id)

    def _start_load(self, adapter_id: str) -> None:
        loop = asyncio.get_running_loop()
        if self._source_error(adapter_id) is not None:
            # the router's client refuses the source before any download (client.rs:251-270 @a7394ba3)
            loop.call_soon(self._load_done, adapter_id)
            return
        loop.call_later(self.config.adapter_load_ms / 1000.0, self._load_done, adapter_id)

    def _source_error(self, adapter_id: str) -> LoraxError | None:
        return adapter_source_error(self._sources.get(adapter_id, "hub"), adapter_id.split("|")[0])

    def _load_error(self, adapter_id: str) -> LoraxError | None:
        err = self._source_error(adapter_id)
        if err is None and any(self._unloadable(part) for part in adapter_id.split("|")[0].split(",")):
            err = generation_error(
                f"Server error: failed to download or load adapter {adapter_id.split('|')[0]!r} "
                "(simulated: it matches --unloadable-adapter)"
            )
        return err

    def _load_done(self, adapter_id: str) -> None:
        err = self._load_error(adapter_id)
        if err is not None:
            self.adapters.failed(adapter_id)
            # loader.rs:162-170: the queue is terminated, so the next request starts over with its source
            self._sources.pop(adapter_id, None)
            self.metrics.inc("lorax_request_failure", err="download_adapter")
            for seq in [s for s in self.waiting if s.adapter_id == adapter_id]:
                self.waiting.remove(seq)
                self._fail(seq, err)
            self.metrics.set("lorax_queue_length", len(self.waiting))
        else:
            self.adapters.loaded(adapter_id)
        self._wake.set()

    def _service_adapters(self) -> None:
        if not self.adapters.pending:
            return
        running = {s.adapter_id for s in self.running if s.adapter_id is not None}
        waiting = {s.adapter_id for s in self.waiting if s.adapter_id is not None and not s.cancelled}
        for adapter_id in self.adapters.evict_for_pending(running, waiting, time.monotonic()):
            self._start_load(adapter_id)

    # ------------------------------------------------------------------ scheduling
    def _drop_cancelled(self) -> None:
        if any(s.cancelled for s in self.running):
            self.running = [s for s in self.running if not s.cancelled]
        if any(s.cancelled for s in self.waiting):
            self.waiting = deque(s for s in self.waiting if not s.cancelled)
            self.metrics.set("lorax_queue_length", len(self.waiting))

    def _next_batch(self) -> list[Sequence]:
        if not self.waiting:
            return []
        batch_size = len(self.running)
        backpressure = batch_size > 0 and self._waiting_steps < self.config.max_waiting_tokens
        min_size = math.floor(batch_size * self.config.waiting_served_ratio) if backpressure else 1
        token_budget = self.config.max_batch_total_tokens - sum(
            s.input_length + s.max_new_tokens for s in self.running
        )
        prefill_budget = self.config.max_batch_prefill_tokens
        chosen: list[Sequence] = []
        now = time.monotonic()
        for seq in self.waiting:
            if not self.adapters.admitting(seq.adapter_id, now):
                continue
            need = seq.input_length + seq.max_new_tokens
            if seq.input_length > prefill_budget or need > token_budget:
                break
            prefill_budget -= seq.input_length
            token_budget -= need
            chosen.append(seq)
        if len(chosen) < max(min_size, 1):
            return []
        chosen_ids = {id(s) for s in chosen}
        self.waiting = deque(s for s in self.waiting if id(s) not in chosen_ids)
        self.metrics.set("lorax_queue_length", len(self.waiting))
        if batch_size:  # joins the running batch (infer.rs counts why it was let in)
            self.metrics.inc("lorax_batch_concat", reason="backpressure" if backpressure else "wait_exceeded")
        return chosen

    def _jitter(self, seconds: float) -> float:
        if self.config.step_jitter <= 0:
            return seconds
        factor = self._rng.gauss(1.0, self.config.step_jitter)
        return seconds * min(
            max(factor, 1.0 - 2 * self.config.step_jitter), 1.0 + 2 * self.config.step_jitter
        )

    async def _sleep_step(self, seconds: float) -> None:
        """Sleep one step on the GPU's own timeline: a late wake-up is absorbed by the next step.

        Event-loop timers have 1 ms resolution, so the timer is set SPIN_S early and the last stretch is
        spent yielding to the loop (I/O keeps being served) until the deadline passes."""
        now = time.monotonic()
        # The GPU runs on while the CPU writes tokens: the next step starts at the previous step's end,
        # unless the event loop fell more than CATCH_UP_S behind (then the timeline restarts from now).
        start = self._deadline if now - self._deadline < CATCH_UP_S else now
        deadline = self._deadline = start + seconds
        self._step_end = deadline + self._epoch_offset
        delay = deadline - now
        if delay <= 0:
            await asyncio.sleep(0)  # catching up: the step's end has passed; still let I/O run between steps
            return
        if delay > SPIN_S:
            await asyncio.sleep(delay - SPIN_S)
        while time.monotonic() < deadline:
            await asyncio.sleep(0)
        late = time.monotonic() - deadline
        self.lateness_max = max(self.lateness_max, late)
        if late > 0.002:
            self.late_steps += 1
        if len(self._lateness) < 100_000:
            self._lateness.append(late)

    async def _run(self) -> None:
        while True:
            self._drop_cancelled()
            self._service_adapters()
            new = self._next_batch()
            if new:
                await self._prefill(new)
            elif self.running:
                await self._decode()
            else:
                self._wake.clear()
                self._deadline = 0.0
                if self.adapters.pending:  # queued work waits for an adapter slot: re-check after a cycle
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), self.adapters.cycle_s)
                else:
                    await self._wake.wait()

    def _adapters_in(self, seqs: list[Sequence]) -> int:
        return len({s.adapter_id for s in seqs if s.adapter_id is not None})

    async def _prefill(self, new: list[Sequence]) -> None:
        now = time.time()
        for seq in new:
            seq.admitted = now
            if seq.adapter_id is not None:
                self.adapters.touch(seq.adapter_id)
        self.metrics.observe("lorax_batch_next_size", float(len(new)))
        seconds = self._jitter(
            self.profile.prefill_step_ms(sum(s.input_length for s in new), self._adapters_in(new)) / 1000.0
        )
        self.prefilling = len(new)
        try:
            await self._timed_step("prefill", seconds)
        finally:
            self.prefilling = 0
        self._waiting_steps = 1  # infer.rs: waiting_tokens = 1 after a prefill, +1 per decode step
        self._emit_all([seq for seq in new if not seq.cancelled])
        self.running.extend(s for s in new if not s.done and not s.cancelled)
        self._set_batch_gauges()

    async def _decode(self) -> None:
        batch = self.running
        context = sum(s.input_length + s.generated for s in batch)
        seconds = self._jitter(
            self.profile.decode_step_ms(len(batch), self._adapters_in(batch), context) / 1000.0
        )
        await self._timed_step("decode", seconds)
        self._waiting_steps += 1
        self._emit_all([seq for seq in batch if not seq.cancelled and not seq.done])
        self.running = [s for s in self.running if not s.done and not s.cancelled]
        self._set_batch_gauges()

    async def _timed_step(self, method: str, seconds: float) -> None:
        self.metrics.inc("lorax_batch_inference_count", method=method)
        await self._sleep_step(seconds)
        self.steps += 1
        self.metrics.inc("lorax_batch_inference_success", method=method)
        self.metrics.observe("lorax_batch_inference_duration", seconds, method=method)

    def _set_batch_gauges(self) -> None:
        self.metrics.set("lorax_batch_current_size", len(self.running))
        self.metrics.set(
            "lorax_batch_current_max_tokens", sum(s.input_length + s.max_new_tokens for s in self.running)
        )

    def _emit_all(self, seqs: list[Sequence]) -> None:
        """One step's burst: a token to every sequence, then the write spread (the first write's stamp to
        the return of the last write) into the step statistics."""
        if not seqs:
            return
        first = None
        for seq in seqs:
            sent = self._emit(seq)
            if first is None:
                first = sent
        if first is not None:
            self.spread.add(time.time() - first, len(seqs))

    def _emit(self, seq: Sequence) -> float | None:
        index = seq.generated
        last = index + 1 >= len(seq.token_ids)
        try:
            sent = seq.sink.on_token(seq, index, last)
        except Exception as exc:  # a sink failure must never stop the batch
            seq.done = True
            self._fail(seq, LoraxError("incomplete_generation", f"Incomplete generation ({exc})"))
            return None
        seq.generated += 1
        seq.token_times.append(sent)
        seq.token_steps.append(self._step_end)
        if index == 0:
            seq.first_token = sent
        if last:
            seq.done = True
            seq.end = sent
        return sent

    def _fail(self, seq: Sequence, err: LoraxError) -> None:
        seq.done = True
        seq.error_type = err.error_type
        seq.end = time.time()
        seq.sink.on_error(seq, err)

    # ------------------------------------------------------------------ introspection
    def state(self) -> dict[str, object]:
        return {
            "waiting": len(self.waiting),
            "prefilling": self.prefilling,
            "running": len(self.running),
            "active_adapters": list(self.adapters.active),
            "loading_adapters": sorted(self.adapters.loading),
            "pending_adapters": list(self.adapters.pending),
            "adapter_loads": self.adapters.loads,
            "adapter_evictions": self.adapters.evictions,
            "steps": self.steps,
            "late_steps": self.late_steps,
            "lateness_max_ms": round(self.lateness_max * 1000, 3),
            "lateness_p99_ms": round(_p99(self._lateness) * 1000, 3),
            "write_spread": self.spread.summary(),
        }


class SpreadStats:
    """Per-step write spread: how long one step's burst of token writes takes, first write to last.
    Kept for the last 100,000 steps (p50/p99 over those), with the batch size of the widest step."""

    LIMIT = 100_000

    def __init__(self) -> None:
        self.values: deque[float] = deque(maxlen=self.LIMIT)
        self.steps = 0
        self.max = 0.0
        self.max_writes = 0
        self.writes = 0

    def add(self, seconds: float, writes: int) -> None:
        self.values.append(seconds)
        self.steps += 1
        self.writes += writes
        if seconds > self.max:
            self.max, self.max_writes = seconds, writes

    def summary(self) -> dict[str, float | int]:
        ordered = sorted(self.values)

        def pct(q: float) -> float:
            return round(ordered[min(int(q * len(ordered)), len(ordered) - 1)] * 1000, 3) if ordered else 0.0

        return {
            "steps": self.steps,
            "writes": self.writes,
            "p50_ms": pct(0.5),
            "p99_ms": pct(0.99),
            "max_ms": round(self.max * 1000, 3),
            "max_step_writes": self.max_writes,
        }


def _p99(values: list[float]) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(int(0.99 * len(ordered)), len(ordered) - 1)]
