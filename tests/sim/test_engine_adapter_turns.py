"""The engine's adapter turns and batch admission, on the engine itself, with data that tells cases apart:
batches of several requests per adapter, more than one adapter waiting for the single slot, and budgets
met exactly. The rule is LoRAX's `--adapter-cycle-time-s`: once other adapters wait for a slot, an adapter
that has been active for the cycle time takes no new work, so its batch drains and it can be swapped out.

Timing never decides a verdict here: the end-to-end test compares the order things happened in, with a
wall-clock cap far above what a busy machine needs, so it passes beside two CPU burners."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import deque

from loraxkit.sim.engine import AdapterTable, Engine, EngineConfig, Sequence
from loraxkit.sim.metrics import Registry
from loraxkit.sim.profiles import get_profile
from loraxkit.wire import LoraxError


class _Sink:
    def on_token(self, seq: Sequence, index: int, last: bool) -> float:
        return time.time()

    def on_error(self, seq: Sequence, err: LoraxError) -> None:
        raise AssertionError(f"{seq.request_id} failed: {err.message}")


def _seq(name: str, adapter: str | None = None, prompt: int = 5, new: int = 10) -> Sequence:
    return Sequence(
        request_id=name,
        route="/generate",
        adapter_id=adapter,
        input_length=prompt,
        max_new_tokens=new,
        token_ids=[1] * new,
        finish_reason="length",
        sink=_Sink(),
        arrival=0.0,
    )


# ---------------------------------------------------------------- the adapter table, clock set by hand
def test_admission_closes_exactly_at_the_cycle_time_and_only_while_others_wait() -> None:
    table = AdapterTable(max_active=1, cycle_s=2.0)
    table.active["a"] = 100.0
    assert table.admitting(None, 500.0)  # the base model never waits
    assert not table.admitting("b", 100.0)  # not loaded
    assert table.admitting("a", 500.0)  # nobody waits: no turn ends
    table.pending.append("b")
    assert table.admitting("a", 101.999)
    assert not table.admitting("a", 102.0)  # active for exactly cycle_s


def test_a_load_starts_below_max_active_and_waits_in_line_at_it() -> None:
    table = AdapterTable(max_active=2, cycle_s=2.0)
    assert table.wants("a") and table.wants("b")  # two slots
    assert (table.loading, table.loads) == ({"a", "b"}, 2)
    assert not table.wants("a")  # already loading
    assert not table.wants("c") and not table.wants("d") and not table.wants("c")
    assert list(table.pending) == ["c", "d"]  # in order, once each
    table.loaded("a")
    assert not table.wants("a") and table.ready("a") and not table.ready("b")


def test_an_idle_adapter_is_offloaded_before_one_with_queued_work() -> None:
    table = AdapterTable(max_active=2, cycle_s=2.0)
    table.active.update({"busy": 0.0, "idle": 0.0})
    table.pending.extend(["x"])
    started = table.evict_for_pending(running=set(), waiting={"busy"}, now=100.0)
    assert started == ["x"] and list(table.active) == ["busy"] and list(table.pending) == []
    assert table.evictions == 1 and table.loads == 1


def test_a_queued_adapter_is_swapped_out_at_its_cycle_time_and_requeued() -> None:
    table = AdapterTable(max_active=1, cycle_s=2.0)
    table.active["a"] = 100.0
    table.pending.append("b")
    assert table.evict_for_pending(running=set(), waiting={"a"}, now=101.999) == []  # turn not over
    assert table.evict_for_pending(running={"a"}, waiting={"a"}, now=500.0) == []  # still running
    assert table.evict_for_pending(running=set(), waiting={"a"}, now=102.0) == ["b"]
    assert list(table.pending) == ["a"]  # its queued work reloads it later
    assert table.loading == {"b"} and "a" not in table.active


def test_several_waiting_adapters_load_into_every_free_slot_in_order() -> None:
    table = AdapterTable(max_active=3, cycle_s=2.0)
    table.active.update({"old": 0.0})
    table.pending.extend(["p", "q", "r"])
    # 2 free slots; then "old" (idle) makes room for the third
    assert table.evict_for_pending(running=set(), waiting=set(), now=1.0) == ["p", "q", "r"]
    assert table.loading == {"p", "q", "r"} and not table.active and table.evictions == 1


# ---------------------------------------------------------------- batch admission budgets, met exactly
def _engine(total: int, prefill: int, **config: object) -> Engine:
    cfg = EngineConfig(max_batch_total_tokens=total, max_batch_prefill_tokens=prefill, **config)  # type: ignore[arg-type]
    return Engine(get_profile("synthetic"), cfg, Registry(4095, 4096))


def test_a_request_that_fills_the_token_budget_exactly_is_admitted() -> None:
    engine = _engine(total=30, prefill=10**6)  # each request: 5 prompt + 10 new = 15
    engine.waiting = deque([_seq("a"), _seq("b"), _seq("c")])
    assert [s.request_id for s in engine._next_batch()] == ["a", "b"]
    engine = _engine(total=29, prefill=10**6)
    engine.waiting = deque([_seq("a"), _seq("b")])
    assert [s.request_id for s in engine._next_batch()] == ["a"]


def test_the_running_batch_uses_up_the_token_budget() -> None:
    engine = _engine(total=45, prefill=10**6)
    engine.running = [_seq("r1"), _seq("r2")]  # 30 of 45 in use
    engine._waiting_steps = 20  # no backpressure wait
    engine.waiting = deque([_seq("w1"), _seq("w2")])
    assert [s.request_id for s in engine._next_batch()] == ["w1"]


def test_a_prompt_that_fills_the_prefill_budget_exactly_is_admitted() -> None:
    engine = _engine(total=10**6, prefill=12)
    engine.waiting = deque([_seq("a", prompt=7), _seq("b", prompt=5), _seq("c", prompt=1)])
    assert [s.request_id for s in engine._next_batch()] == ["a", "b"]  # 7 + 5 = 12; "c" would be 13


def test_backpressure_needs_floor_of_running_times_ratio_new_requests() -> None:
    engine = _engine(total=10**6, prefill=10**6, waiting_served_ratio=1.5, max_waiting_tokens=3)
    engine.running = [_seq(f"r{i}") for i in range(3)]  # floor(3 x 1.5) = 4
    engine._waiting_steps = 2
    engine.waiting = deque(_seq(f"w{i}") for i in range(3))
    assert engine._next_batch() == []
    engine.waiting.append(_seq("w3"))
    assert len(engine._next_batch()) == 4
    engine.waiting = deque([_seq("late")])
    engine._waiting_steps = 3  # == max_waiting_tokens: the wait is over
    assert [s.request_id for s in engine._next_batch()] == ["late"]
    assert engine.metrics.counter_value("lorax_batch_concat", reason="wait_exceeded") == 1


def test_requests_of_an_adapter_at_the_end_of_its_turn_are_skipped_not_blocking() -> None:
    engine = _engine(total=10**6, prefill=10**6, max_active_adapters=1, adapter_cycle_s=2.0)
    engine.adapters.active["a"] = time.monotonic() - 10.0  # long past its turn
    engine.adapters.pending.append("b")  # and another adapter waits
    engine.waiting = deque([_seq("a1", "a"), _seq("base1"), _seq("a2", "a"), _seq("base2")])
    assert [s.request_id for s in engine._next_batch()] == ["base1", "base2"]
    assert [s.request_id for s in engine.waiting] == ["a1", "a2"]


# ---------------------------------------------------------------- end to end: no adapter starves
class _Finishes(_Sink):
    """Records the order requests finish in (the verdict never depends on how long anything took)."""

    def __init__(self) -> None:
        self.order: list[str] = []

    def on_token(self, seq: Sequence, index: int, last: bool) -> float:
        if last:
            self.order.append(seq.request_id)
        return time.time()


A_REQUESTS = 120


async def _sustained_load() -> tuple[list[str], Engine, int]:
    """One adapter slot; adapter a has 120 queued requests, which keep its batch full (several requests at
    once, staggered lengths, joining as soon as one finishes), while b and then c wait for the slot.
    Returns the order requests finished in, the engine, and the most a-requests seen in one batch."""
    profile = dataclasses.replace(get_profile("synthetic"), fixed_decode_ms=1.0, fixed_prefill_ms=1.0)
    # A budget for ~4 requests and no wait before joining: a's queued requests join its running batch as
    # soon as one finishes, so without turns a's batch would not empty until its queue does.
    config = EngineConfig(
        max_batch_total_tokens=60,
        max_batch_prefill_tokens=10**6,
        max_waiting_tokens=1,
        max_active_adapters=1,
        adapter_load_ms=2.0,
        adapter_cycle_s=0.05,
    )
    engine = Engine(profile, config, Registry(4095, 4096))
    sink = _Finishes()
    engine.start()
    lengths = [5, 8, 11, 6, 9, 12, 7, 10]
    seqs = [_seq(f"a{i}", "org/a", new=lengths[i % len(lengths)]) for i in range(A_REQUESTS)]
    seqs += [_seq("b", "org/b", new=8), _seq("c", "org/c", new=8)]
    for seq in seqs:
        seq.sink = sink
    for seq in seqs[:A_REQUESTS]:
        engine.submit(seq)
    deadline = time.monotonic() + 60.0  # a cap only: the verdict is the order requests finished in
    peak_a = 0
    while not engine.running and time.monotonic() < deadline:
        await asyncio.sleep(0.001)
    for seq in seqs[A_REQUESTS:]:  # a's first batch runs: now b and c ask for the one slot
        engine.submit(seq)
    while not all(s.done for s in seqs) and time.monotonic() < deadline:
        peak_a = max(peak_a, sum(1 for s in engine.running if s.adapter_id == "org/a"))
        await asyncio.sleep(0.001)
    await engine.stop()
    return sink.order, engine, peak_a


def test_waiting_adapters_get_turns_while_another_adapter_has_sustained_batches() -> None:
    order, engine, peak_a = asyncio.run(_sustained_load())
    assert len(order) == A_REQUESTS + 2, f"not every request finished: {len(order)}"
    a_before_b = order.index("b")
    # Without turns, b would wait for all 120 requests of a; with them it gets the slot after a's turn.
    assert a_before_b < A_REQUESTS / 2, f"b finished after {a_before_b} of a's requests: {order}"
    assert order.index("b") < order.index("c")  # waiting adapters load in the order they asked
    assert order[-1].startswith("a")  # and a gets its turn back afterwards
    assert peak_a >= 2  # a's batches held several requests at once
    assert engine.adapters.evictions >= 2 and engine.adapters.loads >= 4  # a, b, c, a again
