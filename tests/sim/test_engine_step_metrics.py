"""The engine's per-step figures a seed-17 mutation sample found unread: LoRAX's batch metrics
(`lorax_batch_inference_count` / `_success` per method, `lorax_batch_current_max_tokens` = the running
batch's KV blocks x BLOCK_SIZE), the late-step threshold at exactly 2 ms, the write-spread percentiles, and
no adapter update while too few requests wait to form a batch. Values worked out by hand;
steps are driven one at a time and the clock is scripted, so no verdict depends on the machine's speed."""

from __future__ import annotations

import asyncio
import dataclasses
import time

import pytest
from sim_helpers import ScriptedClock, ready_base_engine

from loraxkit.sim.adapters import BASE, DOWNLOADED, READY
from loraxkit.sim.engine import BLOCK_SIZE, Engine, EngineConfig, Sequence, SpreadStats
from loraxkit.sim.faults import Faults, FaultSpec
from loraxkit.sim.metrics import Registry
from loraxkit.sim.profiles import get_profile
from loraxkit.wire import LoraxError


class _Sink:
    def on_token(self, seq: Sequence, index: int, last: bool) -> float:
        return time.time()

    def on_error(self, seq: Sequence, err: object) -> None:
        raise AssertionError(f"{seq.request_id} failed: {err}")


def _seq(name: str, prompt: int, new: int, queued: float) -> Sequence:
    seq = Sequence(request_id=name, route="/generate", adapter_id=None, input_length=prompt,
                   max_new_tokens=new, token_ids=[1] * new, finish_reason="length", sink=_Sink(),
                   arrival=0.0)  # fmt: skip
    seq.queued = queued
    return seq


def test_each_step_counts_once_per_method_and_the_batch_gauge_is_its_kv_blocks_in_tokens() -> None:
    # a: 5 + 10 - 1 = 14 tokens -> 1 block; b: 20 + 4 - 1 = 23 tokens -> 2 blocks (16 tokens each)
    engine = ready_base_engine()
    a, b = _seq("a", 5, 10, 0.0), _seq("b", 20, 4, 1.0)
    engine.queues.append(BASE, a)
    engine.queues.append(BASE, b)
    gauge = engine.metrics.gauges

    async def run() -> list[float]:
        seen = []
        await engine._prefill(engine._next_batch())  # token 0 of each
        seen.append(gauge["lorax_batch_current_max_tokens"][()])
        for _ in range(3):  # tokens 1-3: b is done after its 4th token
            await engine._decode()
        seen.append(gauge["lorax_batch_current_max_tokens"][()])
        while engine.running:  # a's tokens 4-9: 6 more decode steps
            await engine._decode()
        seen.append(gauge["lorax_batch_current_max_tokens"][()])
        return seen

    assert asyncio.run(run()) == [3 * BLOCK_SIZE, 1 * BLOCK_SIZE, 0]
    assert (a.generated, b.generated) == (10, 4)
    # the write spread measures decode steps only (a prefill's burst is not one): 3 steps writing to a and
    # b, then 6 writing to a alone
    spread = engine.spread.summary()
    assert (spread["steps"], spread["writes"]) == (9, 3 * 2 + 6 * 1)
    counts = {
        (name, method): engine.metrics.counter_value(f"lorax_batch_inference_{name}", method=method)
        for name in ("count", "success")
        for method in ("prefill", "decode")
    }
    assert counts == {("count", "prefill"): 1, ("success", "prefill"): 1, ("count", "decode"): 9,
                      ("success", "decode"): 9}  # fmt: skip


@pytest.mark.parametrize(("woke", "counted"), [(0.004, False), (0.0041, True)])
def test_a_step_exactly_two_milliseconds_late_is_not_counted_late(
    monkeypatch: pytest.MonkeyPatch, woke: float, counted: bool
) -> None:
    # a fresh engine's timeline starts at now (0.0): a 2 ms step ends at 0.002; waking at 0.004 is exactly
    # 2 ms late (0.004 - 0.002 == 0.002 in binary floating point: a power-of-two multiple), not past it
    import loraxkit.sim.engine as engine_module

    engine = ready_base_engine()
    monkeypatch.setattr(engine_module, "time", ScriptedClock([0.0, woke, woke]))
    asyncio.run(engine._sleep_step(0.002))
    assert engine.lateness_max == pytest.approx(woke - 0.002)
    assert engine.late_steps == (1 if counted else 0)


def test_the_write_spread_p99_is_below_the_max_with_200_steps_and_figures_keep_three_decimals() -> None:
    # 200 steps of 1..200 ms: p99 = sorted[int(0.99 x 200)] = sorted[198] = 199 ms, the max is 200 ms
    # (with 10 steps, as test_engine_paths has, p99 and max are the same step)
    spread = SpreadStats()
    for ms in range(200, 0, -1):
        spread.add(ms / 1000, 1)
    summary = spread.summary()
    assert (summary["p50_ms"], summary["p99_ms"], summary["max_ms"]) == (101.0, 199.0, 200.0)
    # microseconds, not finer: 1.23456 ms is shown as 1.235
    fine = SpreadStats()
    fine.add(0.00123456, 1)
    assert fine.summary()["p50_ms"] == fine.summary()["p99_ms"] == fine.summary()["max_ms"] == 1.235


class _Hooks(_Sink):
    """Runs a callable when a request's token with a given index is written."""

    def __init__(self) -> None:
        self.at: dict[tuple[str, int], object] = {}

    def on_token(self, seq: Sequence, index: int, last: bool) -> float:
        hook = self.at.pop((seq.request_id, index), None)
        if callable(hook):
            hook()
        return time.time()


def test_too_few_waiting_requests_beside_a_running_batch_leave_the_adapters_alone() -> None:
    # scheduler.rs:296-321 @a7394ba3: next_batch returns before update_adapters when fewer requests wait than
    # the minimum batch (5 running x 1.2 -> 6): a newcomer's downloaded adapter is not loaded then; once
    # max_waiting_tokens (20) steps have passed the minimum is gone and it loads and joins
    profile = dataclasses.replace(get_profile("synthetic"), fixed_decode_ms=1.0, fixed_prefill_ms=1.0)
    engine = Engine(profile, EngineConfig(10**6, 10**6, adapter_load_ms=0.0), Registry(4095, 4096))
    hooks = _Hooks()
    running = [Sequence(request_id=f"r{i}", route="/generate", adapter_id=None, input_length=5,
                        max_new_tokens=60, token_ids=[1] * 60, finish_reason="length", sink=hooks,
                        arrival=0.0) for i in range(5)]  # fmt: skip
    newcomer = Sequence(request_id="n", route="/generate", adapter_id="org/a", input_length=5,
                        max_new_tokens=2, token_ids=[1] * 2, finish_reason="length", sink=hooks,
                        arrival=0.0)  # fmt: skip
    seen: dict[int, str] = {}

    def status() -> str:
        return engine.queues.queues["org/a"].status

    hooks.at[("r0", 1)] = lambda: engine.submit(newcomer)
    for index in (10, 15):
        hooks.at[("r0", index)] = lambda index=index: seen.__setitem__(index, status())

    async def run() -> None:
        engine.start()
        for seq in running:
            engine.submit(seq)
        deadline = time.monotonic() + 60.0  # a hang guard only
        while not newcomer.done and time.monotonic() < deadline:
            await asyncio.sleep(0.001)
        await engine.stop()

    asyncio.run(run())
    assert seen == {10: "downloaded", 15: "downloaded"}
    assert newcomer.generated == 2


@pytest.mark.parametrize("jitter", [0.0, -0.5, -1.0])
def test_no_or_a_negative_jitter_leaves_every_step_its_length(jitter: float) -> None:
    # only a positive --step-jitter draws (the clip [1 - 2j, 1 + 2j] of a negative j would be empty)
    engine = Engine(
        get_profile("synthetic"), EngineConfig(10**6, 10**6, step_jitter=jitter), Registry(4095, 4096)
    )
    assert [engine._jitter(0.010) for _ in range(3)] == [0.010, 0.010, 0.010]


def test_a_step_catching_up_on_the_timeline_only_yields_once_and_never_waits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # the step's end (0.998 + 0.001) is already past when it starts (now = 1.0, within CATCH_UP_S of the
    # timeline): the engine yields to the loop once, with no delay, and does not count the step late
    import loraxkit.sim.engine as engine_module

    engine = ready_base_engine()
    engine._deadline = 0.998
    monkeypatch.setattr(engine_module, "time", ScriptedClock([1.0]))
    delays: list[float] = []
    real_sleep = asyncio.sleep

    async def recording_sleep(delay: float) -> None:
        delays.append(delay)
        await real_sleep(0)

    monkeypatch.setattr(engine_module.asyncio, "sleep", recording_sleep)
    asyncio.run(engine._sleep_step(0.001))
    assert delays == [0]
    assert engine.late_steps == 0


def test_the_queue_gauge_moves_only_when_a_batch_is_formed_and_counts_the_queue_before_it() -> None:
    # scheduler.rs:294-295 @a7394ba3: next_batch sets lorax_queue_length to the queue's length before it takes
    # any request, and nothing else sets it, so arrivals leave it alone and it reads stale until the next call
    engine = ready_base_engine()
    queue_gauge = engine.metrics.gauges.setdefault("lorax_queue_length", {})
    for name in ("a", "b", "c"):
        engine.submit(_seq(name, 5, 10, 0.0))
    assert queue_gauge.get(()) is None  # three arrivals, no batch yet
    assert len(engine._next_batch()) == 3
    assert queue_gauge[()] == 3  # the count before the batch took all three
    engine.submit(_seq("d", 5, 10, 0.0))
    engine.submit(_seq("e", 5, 10, 0.0))
    assert queue_gauge[()] == 3  # still the last batch's figure
    assert engine._next_batch(min_size=3) == []  # too few waiting to join: no batch, but the gauge is read
    assert queue_gauge[()] == 2


class _Recorder:
    """Records tokens and errors; raises (as a broken HTTP writer would) at the (request, index) given."""

    def __init__(self, raise_at: tuple[str, int] | None = None) -> None:
        self.raise_at = raise_at
        self.events: list[tuple[str, int | str]] = []

    def on_token(self, seq: Sequence, index: int, last: bool) -> float:
        if (seq.request_id, index) == self.raise_at:
            raise OSError("broken pipe")
        self.events.append((seq.request_id, index))
        return time.time()

    def on_error(self, seq: Sequence, err: LoraxError) -> None:
        self.events.append((seq.request_id, err.error_type))


def _queued(engine: Engine, sink: _Recorder, *names: str, new: int = 3) -> list[Sequence]:
    seqs = [Sequence(request_id=name, route="/generate", adapter_id=None, input_length=5, max_new_tokens=new,
                     token_ids=[1] * new, finish_reason="length", sink=sink, arrival=0.0)
            for name in names]  # fmt: skip
    for i, seq in enumerate(seqs):
        seq.queued = float(i)
        engine.queues.append(BASE, seq)
    return seqs


async def _drain(engine: Engine) -> None:
    await engine._prefill(engine._next_batch())
    while engine.running:
        await engine._decode()


def _step_times(engine: Engine, prompt: int = 5, new: int = 2) -> list[tuple[str, float]]:
    """(method, seconds) of each step one request takes, recorded instead of slept."""
    steps: list[tuple[str, float]] = []

    async def record(method: str, seconds: float) -> None:
        steps.append((method, seconds))

    engine._timed_step = record  # type: ignore[method-assign]
    (seq,) = _queued(engine, _Recorder(), "r", new=new)
    seq.input_length = prompt
    asyncio.run(_drain(engine))
    return steps


def test_a_sink_that_fails_ends_its_request_with_incomplete_generation_and_the_batch_goes_on() -> None:
    engine, sink = ready_base_engine(), _Recorder(raise_at=("bad", 1))
    bad, _ = _queued(engine, sink, "bad", "good")
    asyncio.run(_drain(engine))
    assert [e for e in sink.events if e[0] == "bad"] == [("bad", 0), ("bad", "incomplete_generation")]
    assert [e for e in sink.events if e[0] == "good"] == [("good", 0), ("good", 1), ("good", 2)]
    assert (bad.done, bad.generated, bad.error_type) == (True, 1, "incomplete_generation")


@pytest.mark.parametrize("fail_at", [0, 2])
def test_a_doomed_request_writes_exactly_fail_at_tokens_then_its_error(fail_at: int) -> None:
    # faults.fail_after_tokens N: N tokens are written, the (N+1)-th is the generation error
    engine, sink = ready_base_engine(), _Recorder()
    (seq,) = _queued(engine, sink, "r", new=5)
    seq.fail_at = fail_at
    asyncio.run(_drain(engine))
    assert sink.events == [*(("r", i) for i in range(fail_at)), ("r", "generation")]


def test_a_decode_step_lasts_the_profiles_milliseconds_in_seconds() -> None:
    profile = dataclasses.replace(get_profile("synthetic"), fixed_decode_ms=7.0, fixed_prefill_ms=3.0)
    engine = Engine(profile, EngineConfig(10**6, 10**6), Registry(4095, 4096))
    ready = ready_base_engine()
    engine.queues = ready.queues
    steps = _step_times(engine)
    assert steps == [("prefill", pytest.approx(0.003)), ("decode", pytest.approx(0.007))]


def test_each_token_records_the_end_of_the_step_that_made_it() -> None:
    # token_steps[i] is the simulated step end of token i (the trace's `token_steps`): one per token, and each
    # step ends after the one before it on the engine's timeline
    engine = ready_base_engine()
    (seq,) = _queued(engine, _Recorder(), "r", new=4)
    asyncio.run(_drain(engine))
    assert len(seq.token_steps) == seq.generated == 4
    assert all(a < b for a, b in zip(seq.token_steps, seq.token_steps[1:], strict=False))


def test_the_state_shows_lateness_in_milliseconds_to_three_decimals() -> None:
    engine = ready_base_engine()
    engine.lateness_max = 0.00123456
    engine._lateness = [0.00123456]
    state = engine.state()
    assert (state["lateness_max_ms"], state["lateness_p99_ms"]) == (1.235, 1.235)


def _lagging(monkeypatch: pytest.MonkeyPatch, lag: float) -> Engine:
    """An engine whose last step ended `lag` seconds before the loop's next reading of the clock."""
    import loraxkit.sim.engine as engine_module

    engine = ready_base_engine()
    engine._deadline = 1.0
    monkeypatch.setattr(engine_module, "time", ScriptedClock([1.0 + lag, 5.0, 5.0]))
    return engine


@pytest.mark.parametrize(("lag", "start"), [(0.2499, 1.0), (0.25, 1.25), (0.3, 1.3)])
def test_a_loop_lagging_the_timeline_by_catch_up_s_or_more_restarts_it_from_now(
    monkeypatch: pytest.MonkeyPatch, lag: float, start: float
) -> None:
    # under CATCH_UP_S (0.25 s) behind, the next step starts at the previous one's end (the GPU ran on); at
    # 0.25 s or more the timeline restarts from now
    engine = _lagging(monkeypatch, lag)
    asyncio.run(engine._sleep_step(0.010))
    assert engine._deadline == pytest.approx(start + 0.010)


def test_step_ends_and_token_stamps_are_epoch_seconds() -> None:
    # token_steps are compared with token_times (time.time()) in the trace: both must be epoch seconds
    engine = ready_base_engine()
    (seq,) = _queued(engine, _Recorder(), "r", new=3)
    asyncio.run(_drain(engine))
    assert all(abs(step - sent) < 60.0 for step, sent in zip(seq.token_steps, seq.token_times, strict=True))


def test_the_engine_uses_the_faults_it_is_given() -> None:
    # a decode_factor fault slows each decode step by that factor (the simulator passes its live Faults)
    faults = Faults(FaultSpec(decode_factor=3.0))
    profile = dataclasses.replace(get_profile("synthetic"), fixed_decode_ms=2.0, fixed_prefill_ms=1.0)
    engine = Engine(profile, EngineConfig(10**6, 10**6), Registry(4095, 4096), faults=faults)
    engine.queues = ready_base_engine().queues
    steps = _step_times(engine)
    assert engine.faults is faults
    assert steps == [("prefill", pytest.approx(0.001)), ("decode", pytest.approx(0.006))]


def test_stop_ends_a_started_engine_and_is_harmless_on_one_never_started() -> None:
    async def run() -> tuple[bool, bool]:
        await ready_base_engine().stop()  # never started: nothing to cancel
        engine = ready_base_engine()
        engine.start()
        await asyncio.sleep(0)
        await engine.stop()
        assert engine._task is not None
        return engine._task.done(), engine._task.cancelled()

    assert asyncio.run(run()) == (True, True)


def test_an_idle_loader_with_nothing_queued_does_nothing() -> None:
    # _loader_done calls _loader_next after every command: with none left it must simply return
    engine = ready_base_engine()
    engine._loader_next()
    assert not engine._loader_busy and not engine._loader


def test_an_idle_adapter_is_offloaded_to_downloaded_as_a_waiting_one_is_loaded() -> None:
    # scheduler.rs:533-559 / queue.rs: with a request pending, an active adapter with no queued request leaves
    # its slot (offload: the weights stay on disk, status downloaded) and the pending one loads (ready)
    engine = ready_base_engine()
    engine.queues.max_active = 1
    waiting = Sequence(request_id="w", route="/generate", adapter_id="org/b", input_length=5,
                       max_new_tokens=2, token_ids=[1, 1], finish_reason="length", sink=_Recorder(),
                       arrival=0.0)  # fmt: skip
    waiting.queued = 0.0
    engine.queues.append("org/b", waiting)
    engine.queues.downloaded_ok("org/b")
    engine.queues.set_status("org/b", DOWNLOADED)

    async def run() -> None:
        engine._update_adapters()
        for _ in range(10):  # offload and load are call_soon callbacks, one after the other
            await asyncio.sleep(0)

    asyncio.run(run())
    assert (engine.queues.queues[BASE].status, engine.queues.queues["org/b"].status) == (DOWNLOADED, READY)


def test_a_step_ends_when_the_clock_reaches_its_deadline_exactly(monkeypatch: pytest.MonkeyPatch) -> None:
    # the spin loop waits while now < deadline: a reading equal to the deadline ends the step, not late
    import loraxkit.sim.engine as engine_module

    engine = ready_base_engine()
    monkeypatch.setattr(engine_module, "time", ScriptedClock([0.0, 0.002]))

    async def step() -> None:
        await asyncio.wait_for(engine._sleep_step(0.002), timeout=30.0)  # a hang guard only

    asyncio.run(step())
    assert (engine.lateness_max, engine.late_steps) == (0.0, 0)


def test_the_lateness_record_stops_at_100000_steps() -> None:
    # a memory bound for long runs: the p99 is read from the first 100,000 steps
    engine = ready_base_engine()
    engine._lateness = [0.0] * 99_998
    for _ in range(4):
        engine._deadline = 0.0  # far behind: each step starts from now, so none is already over
        asyncio.run(engine._sleep_step(0.0001))  # under SPIN_S: no timer, a short spin
    assert len(engine._lateness) == 100_000


def test_a_decode_step_is_timed_for_the_batchs_context_so_far() -> None:
    # a GPU profile's decode step grows with the KV positions held: each sequence's prompt plus what it
    # generated so far (100 + 1 at the first decode step, 100 + 2 at the second)
    profile = get_profile("h100-8b-bf16")
    engine = Engine(profile, EngineConfig(10**6, 10**6), Registry(4095, 4096))
    engine.queues = ready_base_engine().queues
    decodes = [seconds for method, seconds in _step_times(engine, prompt=100, new=3) if method == "decode"]
    expected = [profile.decode_step_ms(1, 0, 100 + generated) / 1000.0 for generated in (1, 2)]
    assert decodes == pytest.approx(expected, rel=1e-9)


def test_a_step_is_observed_in_the_inference_duration_histogram_with_its_method() -> None:
    # infer.rs: lorax_batch_inference_duration{method} observes each successful step's time
    engine = ready_base_engine()
    asyncio.run(engine._timed_step("decode", 0.0001))
    series = engine.metrics.histograms["lorax_batch_inference_duration"][(("method", "decode"),)]
    assert (sum(series.counts), series.total) == (1, 0.0001)


def test_a_hung_step_is_counted_as_started_and_succeeds_only_once_healed() -> None:
    # faults `hang`: the shard call never returns (count +1, no success, no step) until the fault is cleared
    faults = Faults(FaultSpec(hang=True))
    profile = dataclasses.replace(get_profile("synthetic"), fixed_decode_ms=1.0, fixed_prefill_ms=1.0)
    engine = Engine(profile, EngineConfig(10**6, 10**6), Registry(4095, 4096), faults=faults)

    def seen() -> tuple[float, float, int]:
        value = engine.metrics.counter_value
        count = value("lorax_batch_inference_count", method="decode")
        return count, value("lorax_batch_inference_success", method="decode"), engine.steps

    async def run() -> list[tuple[float, float, int]]:
        step = asyncio.create_task(engine._timed_step("decode", 0.0001))
        for _ in range(20):
            await asyncio.sleep(0)
        during = seen()
        faults.apply(FaultSpec())
        await asyncio.wait_for(step, timeout=30.0)  # a hang guard only
        return [during, seen()]

    assert asyncio.run(run()) == [(1, 0, 0), (1, 1, 1)]


def test_the_write_spread_is_the_seconds_from_the_bursts_first_write() -> None:
    # a decode step's burst to two sequences on this machine: microseconds to milliseconds, never the
    # epoch time a wrong sign would give
    engine = ready_base_engine()
    _queued(engine, _Recorder(), "a", "b", new=3)
    asyncio.run(_drain(engine))
    summary = engine.spread.summary()
    assert summary["steps"] == 2 and 0.0 <= summary["max_ms"] < 60_000.0


def test_the_write_spread_keeps_the_last_100000_steps() -> None:
    spread = SpreadStats()
    for i in range(100_001):
        spread.add(i / 1e6, 1)
    assert len(spread.values) == 100_000 and spread.values[0] == 1 / 1e6  # step 0 dropped, step 1 kept
    assert spread.steps == 100_001  # the counts cover every step


def test_the_widest_step_is_the_first_to_reach_the_maximum() -> None:
    spread = SpreadStats()
    for seconds, writes in ((0.002, 5), (0.002, 9), (0.001, 20)):
        spread.add(seconds, writes)
    assert (spread.summary()["max_ms"], spread.summary()["max_step_writes"]) == (2.0, 5)
