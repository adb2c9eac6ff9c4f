"""The batching rule of LoRAX's batching task (infer.rs), on the engine directly: when waiting requests
join a running batch, and the `lorax_batch_concat` reason it counts."""

from __future__ import annotations

from collections import deque

from loraxkit.sim.engine import Engine, EngineConfig, Sequence
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
    return Engine(get_profile("synthetic"), config, Registry(4095, 4096))


def test_waiting_requests_join_a_running_batch_by_ratio_or_after_max_waiting_tokens() -> None:
    engine = _engine()
    engine.running = [_seq(f"r{i}") for i in range(5)]
    engine._waiting_steps = 1
    engine.waiting = deque(_seq(f"w{i}") for i in range(5))
    assert engine._next_batch() == []  # 5 waiting < floor(5 running x 1.2) = 6
    engine.waiting.append(_seq("w5"))
    assert [s.request_id for s in engine._next_batch()] == [f"w{i}" for i in range(6)]
    assert engine.metrics.counter_value("lorax_batch_concat", reason="backpressure") == 1
    engine.waiting = deque([_seq("late")])
    engine._waiting_steps = 19
    assert engine._next_batch() == []  # a single request waits for 20 steps without a newcomer
    engine._waiting_steps = 20
    assert [s.request_id for s in engine._next_batch()] == ["late"]
    assert engine.metrics.counter_value("lorax_batch_concat", reason="wait_exceeded") == 1


def test_admission_stops_at_the_first_request_over_the_token_budget() -> None:
    engine = _engine(budget=45)  # each request needs 5 prompt + 10 new tokens
    engine.waiting = deque([_seq("a"), _seq("b"), _seq("big", new=100), _seq("c")])
    assert [s.request_id for s in engine._next_batch()] == ["a", "b"]  # FIFO: "c" waits behind "big"
    assert engine.metrics.counter_value("lorax_batch_concat", reason="backpressure") == 0  # nothing ran
