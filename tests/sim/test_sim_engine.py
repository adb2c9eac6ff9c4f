"""The batching rule of LoRAX's batching task (infer.rs), on the engine directly: when waiting requests
join a running batch, and the `lorax_batch_concat` reason it counts."""

from __future__ import annotations

from loraxkit.sim.adapters import BASE, READY, AdapterQueue, AdapterQueues
from loraxkit.sim.engine import Engine, EngineConfig, Sequence, kv_blocks, kv_capacity_blocks
from loraxkit.sim.metrics import Registry
from loraxkit.sim.profiles import get_profile
from loraxkit.wire import LoraxError


class _NoSink:
    def on_token(self, seq: Sequence, index: int, last: bool) -> float:
        return 0.0

    def on_error(self, seq: Sequence, err: LoraxError) -> None:
        pass


def _seq(name: str, prompt: int = 5, new: int = 10) -> Sequence:
    return Sequence(
        request_id=name,
        route="/generate",
        adapter_id=None,
        input_length=prompt,
        max_new_tokens=new,
        token_ids=[1] * new,
        finish_reason="length",
        sink=_NoSink(),
        arrival=0.0,
    )


def _engine(budget: int = 10**6) -> Engine:
    config = EngineConfig(
        max_batch_total_tokens=budget,
        max_batch_prefill_tokens=10**6,
        max_waiting_tokens=20,
        waiting_served_ratio=1.2,
    )
    engine = Engine(get_profile("synthetic"), config, Registry(4095, 4096))
    # the base model's queue, downloaded and loaded (what the engine's loader does on the first request)
    engine.queues.queues[BASE] = AdapterQueue(BASE, status=READY, downloaded=True)
    engine.queues.active.append(BASE)
    engine.queues.tracked.add(BASE)
    return engine


def _queue(engine: Engine, *seqs: Sequence) -> None:
    for i, seq in enumerate(seqs):
        seq.queued = float(i)
        engine.queues.append(BASE, seq)


def test_waiting_requests_join_a_running_batch_by_ratio_or_after_max_waiting_tokens() -> None:
    # infer.rs:1107-1120,1139-1149 @a7394ba3
    engine = _engine()
    engine.running = [_seq(f"r{i}") for i in range(5)]
    engine._waiting_steps = 1
    _queue(engine, *(_seq(f"w{i}") for i in range(5)))
    assert engine._next_batch(engine._min_size()) == []  # 5 waiting < floor(5 running x 1.2) = 6
    _queue(engine, _seq("w5"))
    assert [s.request_id for s in engine._next_batch(engine._min_size())] == [f"w{i}" for i in range(6)]
    assert engine.metrics.counter_value("lorax_batch_concat", reason="backpressure") == 1
    _queue(engine, _seq("late"))
    engine._waiting_steps = 19
    assert (
        engine._next_batch(engine._min_size()) == []
    )  # a single request waits for 20 steps without a newcomer
    engine._waiting_steps = 20
    assert [s.request_id for s in engine._next_batch(engine._min_size())] == ["late"]
    assert engine.metrics.counter_value("lorax_batch_concat", reason="wait_exceeded") == 1


def test_admission_stops_at_the_first_request_over_the_kv_blocks() -> None:
    # block_allocator.rs: 64 tokens = 4 blocks of 16, one reserved; a request holds
    # ceil((5 + 10 - 1) / 16) = 1 block, "big" ceil((5 + 100 - 1) / 16) = 7 (scheduler.rs:370-392)
    engine = _engine(budget=64)
    _queue(engine, _seq("a"), _seq("b"), _seq("big", new=100), _seq("c"))
    assert [s.request_id for s in engine._next_batch()] == ["a", "b"]  # FIFO: "c" waits behind "big"
    assert engine.free_blocks == 1
    assert engine.metrics.counter_value("lorax_batch_concat", reason="backpressure") == 0  # nothing ran
    assert [s.request_id for s in engine.waiting] == ["big", "c"]
    engine._retire([engine.waiting[0]])  # a sequence that holds no blocks gives none back
    assert engine.free_blocks == 1


def test_kv_blocks_round_up_to_sixteen_tokens_and_keep_one_in_reserve() -> None:
    assert kv_blocks(1, 16) == 1 and kv_blocks(1, 17) == 2 and kv_blocks(16, 16) == 2
    assert kv_capacity_blocks(4096) == 255 and kv_capacity_blocks(47) == 1


def test_adapter_queues_follow_loraxs_activation_order_and_cycle() -> None:
    # queue.rs:316-421: idle adapters leave for pending ones; the front one past the cycle time is swapped
    q = AdapterQueues(max_active=2, cycle_s=1.0)
    for key in ("a", "b", "c"):
        q.append(key, _seq(key))
        q.downloaded_ok(key)
    assert q.update(set(), now=0.0) == ([], ["a", "b"])
    for key in ("a", "b"):
        q.set_status(key, READY)
    # a and b busy (queued work), c pending: nothing moves before a's turn is over
    assert q.update(set(), now=0.5) == ([], [])
    # a (the front) is past its turn and not running: swapped out, c in
    assert q.update({"b"}, now=1.5) == (["a"], ["c"])
    assert list(q.pending) == ["a"] and list(q.active) == ["b", "c"]
    # an idle active adapter leaves first when someone is pending
    q.pop("b")
    assert q.update({"c"}, now=1.6) == (["b"], ["a"])


def test_next_entry_prefers_adapters_within_their_turn() -> None:
    # queue.rs:284-315: the oldest request among loaded adapters, preferring those active < cycle time
    q = AdapterQueues(max_active=2, cycle_s=1.0)
    old, new = _seq("old"), _seq("new")
    old.queued, new.queued = 1.0, 2.0
    q.append("a", old)
    q.append("b", new)
    for key in ("a", "b"):
        q.downloaded_ok(key)
    q.update(set(), now=0.0)
    q.queues["b"].activation_ts = 5.0
    for key in ("a", "b"):
        q.set_status(key, READY)
    assert q.next_key(now=0.5) == "a"  # both within their turn: the oldest request
    assert q.next_key(now=5.5) == "b"  # a is past its turn, b is not: b first, although younger
    q.pop("b")
    assert q.next_key(now=5.5) == "a"  # past its turn, but the only one with work
