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
from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

from loraxkit.sim.adapters import BASE, DOWNLOADED, READY, AdapterQueues
from loraxkit.sim.faults import FAIL_DETAIL, Faults
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
    fail_at: int | None = None  # fault injection: the token index at which this request fails
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
    eager_prefill: bool = True  # LoRAX's --eager-prefill (default true on HEAD)


# router/src/block_allocator.rs @a7394ba3: the KV cache is max_batch_total_tokens / BLOCK_SIZE blocks, block
# 0 reserved for health checks (SimpleAllocator::new); a request holds ceil((input + max_new_tokens - 1) /
# BLOCK_SIZE) blocks (scheduler.rs:370-374, speculate 0) from admission until it ends. BLOCK_SIZE is 16 with
# the default fa2 backend (server/lorax_server/utils/state.py:34-38; 1 with flashinfer).
BLOCK_SIZE = 16


def kv_blocks(input_length: int, max_new_tokens: int) -> int:
    return -(-(input_length + max_new_tokens - 1) // BLOCK_SIZE)


def kv_capacity_blocks(max_batch_total_tokens: int) -> int:
    return max_batch_total_tokens // BLOCK_SIZE - 1


class Engine:
    def __init__(
        self, profile: Profile, config: EngineConfig, metrics: Registry, faults: Faults | None = None
    ) -> None:
        self.faults = faults or Faults()
        self.profile = profile
        self.config = config
        self.metrics = metrics
        self.queues = AdapterQueues(config.max_active_adapters, config.adapter_cycle_s)
        self.running: list[Sequence] = []
        self.prefilling = 0  # sequences in the prefill step under way (neither waiting nor running)
        self.free_blocks = kv_capacity_blocks(config.max_batch_total_tokens)
        self._blocks: dict[int, int] = {}  # id(sequence) → KV blocks it holds
        self._loader: deque[tuple[str, str]] = deque()  # (download|load|offload, adapter): one at a time
        self._loader_busy = False
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

    @property
    def waiting(self) -> list[Sequence]:
        """Every queued request, over all adapter queues."""
        return self.queues.entries()

    def submit(self, seq: Sequence) -> None:
        seq.queued = time.time()
        seq.fail_at = self.faults.doom()
        key = seq.adapter_id or BASE
        if key not in self.queues.queues:
            # LoRAX keys adapter queues by index (adapter.rs:62-66 @a7394ba3): the first request's source
            # is the one the download uses; later requests join that queue whatever source they name
            self._sources[key] = seq.adapter_source
        if self.queues.append(key, seq):
            self._request_adapter(key)
        # no lorax_queue_length here: LoRAX sets it only in next_batch (scheduler.rs:294-295 @a7394ba3)
        self._wake.set()

    def cancel(self, seq: Sequence) -> None:
        """The client went away: drop the sequence at the next step boundary."""
        seq.cancelled = True

    # ------------------------------------------------------------------ adapters
    def _unloadable(self, adapter_id: str) -> bool:
        return self.faults.adapter_fails(adapter_id) or any(
            fnmatch.fnmatchcase(adapter_id, pattern) for pattern in self.config.unloadable_adapters
        )

    def _request_adapter(self, adapter_id: str) -> None:
        """A new adapter queue: its download joins the loader's queue (scheduler.rs:231-244)."""
        self._loader_push("download", adapter_id)

    def _loader_push(self, kind: str, adapter_id: str) -> None:
        self._loader.append((kind, adapter_id))
        self._loader_next()

    def _loader_next(self) -> None:
        """loader.rs:118-282: one background task runs the commands in order, each to completion."""
        if self._loader_busy or not self._loader:
            return
        kind, adapter_id = self._loader.popleft()
        self._loader_busy = True
        if kind == "download":
            self._start_load(adapter_id)
        else:  # loading onto / offloading from the GPU: not timed (the weights are on local disk by then)
            asyncio.get_running_loop().call_soon(self._loader_done, kind, adapter_id)

    def _start_load(self, adapter_id: str) -> None:
        loop = asyncio.get_running_loop()
        if adapter_id == BASE or self._source_error(adapter_id) is not None:
            # nothing to download for the base model (adapter.py:199-202); a bad source is refused by the
            # router's client before any download (client.rs:251-270 @a7394ba3)
            loop.call_soon(self._load_done, adapter_id)
            return
        load_ms = self.faults.adapter_load_ms(adapter_id, self.config.adapter_load_ms)
        loop.call_later(load_ms / 1000.0, self._load_done, adapter_id)

    def _source_error(self, adapter_id: str) -> LoraxError | None:
        return adapter_source_error(self._sources.get(adapter_id, "hub"), adapter_id.split("|")[0])

    def _load_error(self, adapter_id: str) -> LoraxError | None:
        if adapter_id == BASE:
            return None
        err = self._source_error(adapter_id)
        if err is None and any(self._unloadable(part) for part in adapter_id.split("|")[0].split(",")):
            err = generation_error(
                f"Server error: failed to download or load adapter {adapter_id.split('|')[0]!r} "
                "(simulated: it matches --unloadable-adapter)"
            )
        return err

    def _load_done(self, adapter_id: str) -> None:
        self._loader_done("download", adapter_id)

    def _loader_done(self, kind: str, adapter_id: str) -> None:
        self._loader_busy = False
        if kind == "download":
            err = self._load_error(adapter_id)
            if err is not None:
                # loader.rs:161-171 → 258-281: the adapter errors, its queue is terminated and every waiting
                # request gets the error; the next request starts over (with its own source)
                self._sources.pop(adapter_id, None)
                self.metrics.inc("lorax_request_failure", err="download_adapter")
                for seq in self.queues.terminate(adapter_id):
                    self._fail(seq, err)
            else:
                self.queues.downloaded_ok(adapter_id)
        elif kind == "load":
            self.queues.set_status(adapter_id, READY)
        else:
            self.queues.set_status(adapter_id, DOWNLOADED)
        self._wake.set()
        self._loader_next()

    def _update_adapters(self) -> None:
        """scheduler.rs:533-559: offload and load adapters before a batch is formed."""
        in_use = {s.adapter_id or BASE for s in self.running}
        offload, load = self.queues.update(in_use)
        for adapter_id in offload:
            self._loader_push("offload", adapter_id)
        for adapter_id in load:
            self._loader_push("load", adapter_id)

    # ------------------------------------------------------------------ scheduling
    def _drop_cancelled(self) -> None:
        if any(s.cancelled for s in self.running):
            self._retire([s for s in self.running if s.cancelled])
            self.running = [s for s in self.running if not s.cancelled]
        self.queues.drop_cancelled()

    def _retire(self, seqs: list[Sequence]) -> None:
        """Finished or dropped sequences give their KV blocks back (BlockAllocation's Drop)."""
        for seq in seqs:
            self.free_blocks += self._blocks.pop(id(seq), 0)

    def _min_size(self) -> int | None:
        """infer.rs:1107-1120: while a batch runs, a new one must hold floor(batch x waiting_served_ratio)
        requests, unless no one joined for max_waiting_tokens steps; with nothing running, any size."""
        if not self.running or self._waiting_steps >= self.config.max_waiting_tokens:
            return None
        return math.floor(len(self.running) * self.config.waiting_served_ratio)

    def _next_batch(self, min_size: int | None = None) -> list[Sequence]:
        """scheduler.rs:281-529 `next_batch`: requests in `next_entry` order while their prompt fits the
        prefill budget and their KV blocks fit the free blocks; the first that does not fit stays first.
        `lorax_queue_length` is the queue's size as next_batch starts, before it takes any request
        (scheduler.rs:294-295): LoRAX sets it nowhere else, so it keeps that value until the next call."""
        self.metrics.set("lorax_queue_length", self.queues.size)
        if self.queues.size == 0 or (min_size is not None and self.queues.size < min_size):
            return []
        self._update_adapters()
        prefill_budget = self.config.max_batch_prefill_tokens
        free = self.free_blocks
        chosen: list[tuple[str, Sequence, int]] = []
        now = time.monotonic()
        while (key := self.queues.next_key(now)) is not None:
            seq = self.queues.pop(key)
            if seq.cancelled:
                continue
            need = kv_blocks(seq.input_length, seq.max_new_tokens)
            if need > free or seq.input_length > prefill_budget:
                self.queues.push_front(key, seq)
                break
            free -= need
            prefill_budget -= seq.input_length
            chosen.append((key, seq, need))
        if not chosen or (min_size is not None and len(chosen) < min_size):
            for key, seq, _ in reversed(chosen):
                self.queues.push_front(key, seq)
            return []
        self.free_blocks = free
        for _, seq, need in chosen:
            self._blocks[id(seq)] = need
        if self.running:  # joins the running batch (infer.rs:1139-1149 counts why it was let in)
            reason = "backpressure" if min_size is not None else "wait_exceeded"
            self.metrics.inc("lorax_batch_concat", reason=reason)
        return [seq for _, seq, _ in chosen]

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
        """infer.rs:1051-1243 `batching_task`: form a batch, prefill it, then per step try to add a new
        batch (eagerly: again with the same minimum size until none forms) and decode."""
        while True:
            self._drop_cancelled()
            if not self.running:
                new = self._next_batch(None)
                if new:
                    await self._prefill(new)
                    continue
                self._wake.clear()
                self._deadline = 0.0
                if self.queues.pending:  # queued work waits for an adapter slot: re-check after a cycle
                    # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancel that lands
                    # as the wake-up arrives (CPython gh-86296), and stop() then waits forever
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(self.queues.cycle_s):
                            await self._wake.wait()
                else:
                    await self._wake.wait()
                continue
            min_size = self._min_size()
            while self.running and (new := self._next_batch(min_size)):
                await self._prefill(new)
                if not self.config.eager_prefill:
                    break
            if self.running:
                await self._decode()

    def _adapters_in(self, seqs: list[Sequence]) -> int:
        return len({s.adapter_id for s in seqs if s.adapter_id is not None})

    async def _prefill(self, new: list[Sequence]) -> None:
        now = time.time()
        for seq in new:
            seq.admitted = now
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
        self._emit_all([seq for seq in new if not seq.cancelled], measure=False)
        self._retire([s for s in new if s.done or s.cancelled])
        self.running.extend(s for s in new if not s.done and not s.cancelled)
        self._set_batch_gauges()

    async def _decode(self) -> None:
        batch = self.running
        context = sum(s.input_length + s.generated for s in batch)
        seconds = (
            self._jitter(self.profile.decode_step_ms(len(batch), self._adapters_in(batch), context) / 1000.0)
            * self.faults.decode_factor
        )
        await self._timed_step("decode", seconds)
        self._waiting_steps += 1
        self._emit_all([seq for seq in batch if not seq.cancelled and not seq.done])
        self._retire([s for s in self.running if s.done or s.cancelled])
        self.running = [s for s in self.running if not s.done and not s.cancelled]
        self._set_batch_gauges()

    async def _timed_step(self, method: str, seconds: float) -> None:
        self.metrics.inc("lorax_batch_inference_count", method=method)
        if self.faults.hung:  # a stuck shard call: counted as started, never succeeds until healed
            await self.faults.wait_unhung()
        await self._sleep_step(seconds)
        self.steps += 1
        self.metrics.inc("lorax_batch_inference_success", method=method)
        self.metrics.observe("lorax_batch_inference_duration", seconds, method=method)

    def _set_batch_gauges(self) -> None:
        self.metrics.set("lorax_batch_current_size", len(self.running))
        # the shard's CachedBatch.max_tokens: the batch's KV blocks x BLOCK_SIZE (flash_causal_lm.py:158)
        blocks = sum(self._blocks.get(id(s), 0) for s in self.running)
        self.metrics.set("lorax_batch_current_max_tokens", blocks * BLOCK_SIZE)

    def _emit_all(self, seqs: list[Sequence], measure: bool = True) -> None:
        """One step's burst: a token to every sequence, then, for a decode step (the whole running batch's
        burst), the write spread (the first write's stamp to the return of the last write)."""
        if not seqs:
            return
        first = None
        for seq in seqs:
            sent = self._emit(seq)
            if first is None:
                first = sent
        if measure and first is not None:
            self.spread.add(time.time() - first, len(seqs))

    def _emit(self, seq: Sequence) -> float | None:
        index = seq.generated
        if seq.fail_at is not None and index >= seq.fail_at:
            self._fail(seq, generation_error(FAIL_DETAIL))
            return None
        last = index + 1 >= len(seq.token_ids)
        try:
            sent = seq.sink.on_token(seq, index, last)
        except Exception as exc:  # a sink failure must never stop the batch (_fail marks the sequence done)
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
            "waiting": self.queues.size,
            "prefilling": self.prefilling,
            "running": len(self.running),
            "kv_free_blocks": self.free_blocks,
            **self.queues.state(),
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
