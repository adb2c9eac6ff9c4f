"""The engine's paths the simulator suites used to be the only ones to reach, in-process: the base model's
slot and its download, the loader's one-command-at-a-time rule, cancellation while waiting and while
running, the step clock and its lateness figures, and the write-spread summary.

Timing never decides a verdict: tests compare the order things happened in, or the event loop's own
clock (which `call_later` is scheduled on), or a gap made on purpose far larger than any machine's noise,
so they pass beside two CPU burners."""

from __future__ import annotations

import asyncio
import dataclasses
import random
import time

import pytest
from sim_helpers import ScriptedClock

from loraxkit.sim.adapters import BASE, READY, AdapterQueue
from loraxkit.sim.engine import BLOCK_SIZE, SPIN_S, Engine, EngineConfig, Sequence, SpreadStats, _p99
from loraxkit.sim.faults import Faults, FaultSpec
from loraxkit.sim.metrics import Registry
from loraxkit.sim.profiles import get_profile
from loraxkit.wire import LoraxError

CAP_S = 60.0  # a cap only, far above what a busy machine needs: no verdict depends on it


class _Log:
    """Records every token and error in the order they happened: (request, token index) or (request, type)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, int | str]] = []
        self.on_first: dict[str, object] = {}  # request → callable run when its first token is written
        self.at: dict[tuple[str, int], object] = {}  # (request, token index) → callable run at that token

    def on_token(self, seq: Sequence, index: int, last: bool) -> float:
        self.events.append((seq.request_id, index))
        hook = self.on_first.pop(seq.request_id, None) if index == 0 else None
        if callable(hook):
            hook()
        hook = self.at.pop((seq.request_id, index), None)
        if callable(hook):
            hook()
        return time.time()

    def on_error(self, seq: Sequence, err: LoraxError) -> None:
        self.events.append((seq.request_id, err.error_type))

    def position(self, rid: str, index: int) -> int:
        return self.events.index((rid, index))


def _seq(name: str, sink: _Log, adapter: str | None = None, prompt: int = 5, new: int = 10) -> Sequence:
    return Sequence(
        request_id=name,
        route="/generate",
        adapter_id=adapter,
        input_length=prompt,
        max_new_tokens=new,
        token_ids=[1] * new,
        finish_reason="length",
        sink=sink,
        arrival=0.0,
    )


def _engine(**config: object) -> Engine:
    """An engine on a 1 ms-per-step profile; `config` overrides EngineConfig's defaults (LoRAX's)."""
    profile = dataclasses.replace(get_profile("synthetic"), fixed_decode_ms=1.0, fixed_prefill_ms=1.0)
    settings: dict[str, object] = {"max_batch_total_tokens": 10**6, "max_batch_prefill_tokens": 10**6}
    settings.update(config)
    return Engine(profile, EngineConfig(**settings), Registry(4095, 4096))  # type: ignore[arg-type]


async def _until(done: object, engine: Engine) -> None:
    deadline = time.monotonic() + CAP_S
    while not done() and time.monotonic() < deadline:  # type: ignore[operator]
        await asyncio.sleep(0.001)
    await engine.stop()


# ---------------------------------------------------------------- waiting rule, with LoRAX's defaults
def test_a_newcomer_beside_a_running_batch_joins_after_exactly_max_waiting_tokens_steps() -> None:
    # infer.rs:1107-1120 @a7394ba3 with the launcher's default --max-waiting-tokens 20: a prefill sets
    # waiting_tokens = 1, each decode step adds 1; one newcomer (< floor(5 x 1.2) = 6) joins only when it
    # reaches 20, i.e. after the 19th decode step: the running requests have 1 + 19 = 20 tokens by then.
    sink = _Log()
    engine = _engine()
    assert engine.config.max_waiting_tokens == 20
    running = [_seq(f"r{i}", sink, new=100) for i in range(5)]
    newcomer = _seq("n", sink, new=3)
    sink.on_first["r0"] = lambda: engine.submit(newcomer)  # arrives right after the first prefill

    async def run() -> None:
        engine.start()
        for seq in running:
            engine.submit(seq)
        await _until(lambda: newcomer.done, engine)

    asyncio.run(run())
    first = sink.position("n", 0)
    assert sink.position("r0", 19) < first < sink.position("r0", 20), sink.events[:130]
    assert engine.metrics.counter_value("lorax_batch_concat", reason="wait_exceeded") == 1
    assert engine.metrics.counter_value("lorax_batch_concat", reason="backpressure") == 0


@pytest.mark.parametrize(("arriving", "joins_at_once"), [(6, True), (5, False)])
def test_newcomers_join_at_once_when_they_reach_the_default_waiting_served_ratio(
    arriving: int, joins_at_once: bool
) -> None:
    # the launcher's default --waiting-served-ratio 1.2: beside 5 running requests, floor(5 x 1.2) = 6
    # newcomers join at the next step; 5 wait for max_waiting_tokens steps
    sink = _Log()
    engine = _engine()
    assert engine.config.waiting_served_ratio == 1.2
    running = [_seq(f"r{i}", sink, new=100) for i in range(5)]
    newcomers = [_seq(f"n{i}", sink, new=3) for i in range(arriving)]

    def arrive() -> None:
        for seq in newcomers:
            engine.submit(seq)

    sink.on_first["r0"] = arrive

    async def run() -> None:
        engine.start()
        for seq in running:
            engine.submit(seq)
        await _until(lambda: all(s.done for s in newcomers), engine)

    asyncio.run(run())
    joined_at_once = sink.position("n0", 0) < sink.position("r0", 1)
    assert joined_at_once is joins_at_once, sink.events[:40]
    reason = "backpressure" if joins_at_once else "wait_exceeded"
    assert engine.metrics.counter_value("lorax_batch_concat", reason=reason) == 1


# ---------------------------------------------------------------- the base model and the loader
def test_the_base_model_is_served_without_waiting_for_an_adapter_download() -> None:
    # adapter.py:199-202: nothing to download for the base model. The download time is 10 minutes here:
    # a base request that waited for it would not finish within the test's cap.
    sink = _Log()
    engine = _engine(adapter_load_ms=600_000.0)
    seq = _seq("base", sink, new=4)

    async def run() -> None:
        engine.start()
        engine.submit(seq)
        await _until(lambda: seq.done, engine)

    asyncio.run(run())
    assert [e for e in sink.events if e[0] == "base"] == [("base", i) for i in range(4)]
    assert engine.state()["base_model_active"] is True


def test_the_loader_downloads_one_adapter_at_a_time_in_the_order_asked() -> None:
    # loader.rs:118-282 @a7394ba3: one background task runs the commands in order, each to completion, so
    # b's download starts when a's ends: on the loop's clock (call_later's), b is ready >= 50 ms after a.
    sink = _Log()
    engine = _engine(adapter_load_ms=50.0)
    seqs = [_seq("a", sink, "org/a", new=2), _seq("b", sink, "org/b", new=2)]
    ready_at: dict[str, float] = {}

    async def run() -> None:
        loop = asyncio.get_running_loop()
        downloaded_ok = engine.queues.downloaded_ok

        def record(key: str) -> None:
            ready_at[key] = loop.time()
            downloaded_ok(key)

        engine.queues.downloaded_ok = record  # type: ignore[method-assign]
        engine.start()
        for seq in seqs:
            engine.submit(seq)
        assert list(engine._loader) == [("download", "org/b")]  # queued behind a's download
        await _until(lambda: all(s.done for s in seqs), engine)

    asyncio.run(run())
    assert list(ready_at) == ["org/a", "org/b"]
    # asyncio may run a timer up to its clock resolution early; 2 ms covers it
    assert ready_at["org/b"] - ready_at["org/a"] >= 0.050 - 0.002
    assert all(s.error_type is None for s in seqs)


def test_a_running_base_batch_keeps_the_only_slot_until_it_ends() -> None:
    # scheduler.rs:533-559: an adapter whose requests run is never offloaded, even past its cycle time. One
    # slot, a 50 ms cycle (the 200-step base request outlasts it): the adapter's request must wait until
    # the base request's last token.
    sink = _Log()
    engine = _engine(max_active_adapters=1, adapter_cycle_s=0.05, adapter_load_ms=1.0)
    base = _seq("base", sink, new=200)
    adapter = _seq("a", sink, "org/a", new=3)
    sink.on_first["base"] = lambda: engine.submit(adapter)

    async def run() -> None:
        engine.start()
        engine.submit(base)
        await _until(lambda: adapter.done, engine)

    asyncio.run(run())
    assert sink.position("base", 199) < sink.position("a", 0), sink.events[-10:]


def test_a_running_adapter_batch_keeps_the_only_slot_until_it_ends() -> None:
    # the same rule for an adapter's batch (and a base request waiting for the slot)
    sink = _Log()
    engine = _engine(max_active_adapters=1, adapter_cycle_s=0.05, adapter_load_ms=1.0)
    first = _seq("a", sink, "org/a", new=200)
    second = _seq("b", sink, "org/b", new=3)
    base = _seq("base", sink, new=3)

    def arrive() -> None:
        engine.submit(second)
        engine.submit(base)

    sink.on_first["a"] = arrive

    async def run() -> None:
        engine.start()
        engine.submit(first)
        await _until(lambda: second.done and base.done, engine)

    asyncio.run(run())
    assert sink.position("a", 199) < sink.position("b", 0), sink.events[-10:]
    assert sink.position("a", 199) < sink.position("base", 0), sink.events[-10:]


# ---------------------------------------------------------------- cancellation
def _ready_engine(**config: object) -> Engine:
    """An engine whose base-model queue is downloaded and loaded (what the loader does on a first request)."""
    engine = _engine(**config)
    engine.queues.queues[BASE] = AdapterQueue(BASE, status=READY, downloaded=True)
    engine.queues.active.append(BASE)
    engine.queues.tracked.add(BASE)
    return engine


def test_a_request_cancelled_while_waiting_leaves_the_queue_at_the_next_step() -> None:
    sink = _Log()
    engine = _ready_engine()
    kept, gone = _seq("kept", sink), _seq("gone", sink)
    for seq in (gone, kept):
        engine.queues.append(BASE, seq)
    engine.cancel(gone)
    engine._drop_cancelled()
    assert engine.state()["waiting"] == 1
    assert [s.request_id for s in engine.waiting] == ["kept"]


def test_a_batch_short_of_the_minimum_size_after_the_kv_check_is_not_formed() -> None:
    # 5 running: a joining batch needs floor(5 x 1.2) = 6. Six wait, but the fourth does not fit the free
    # KV blocks, so only 3 could be taken: no batch, and all six wait in their order.
    sink = _Log()
    engine = _ready_engine(max_batch_total_tokens=5 * BLOCK_SIZE)  # 4 blocks free
    engine.running = [_seq(f"r{i}", sink) for i in range(5)]
    engine._waiting_steps = 1
    waiting = [_seq(f"w{i}", sink, new=100 if i == 3 else 10) for i in range(6)]
    for i, seq in enumerate(waiting):
        seq.queued = float(i)
        engine.queues.append(BASE, seq)
    assert engine._next_batch(engine._min_size()) == []
    assert [s.request_id for s in engine.waiting] == [f"w{i}" for i in range(6)]
    assert engine.free_blocks == 4


def test_a_request_cancelled_during_a_decode_step_gets_no_further_token_and_frees_its_blocks() -> None:
    # The client goes away while a step runs (the cancel lands during the step's sleep): the step's burst
    # skips it, and its KV blocks go back.
    sink = _Log()
    engine = _engine()
    stays, leaves = _seq("stays", sink, new=10), _seq("leaves", sink, new=10)
    capacity = engine.free_blocks

    def leave_during_next_step() -> None:
        asyncio.get_running_loop().call_soon(engine.cancel, leaves)

    sink.on_first["leaves"] = leave_during_next_step  # written at the prefill; cancelled in decode step 1
    gauge: list[float] = []
    # at decode step 2's burst: the batch size the engine reported after step 1 (leaves was dropped then)
    sink.at[("stays", 2)] = lambda: gauge.append(engine.metrics.gauges["lorax_batch_current_size"][()])

    async def run() -> None:
        engine.start()
        engine.submit(stays)
        engine.submit(leaves)
        await _until(lambda: stays.done, engine)

    asyncio.run(run())
    assert [e for e in sink.events if e[0] == "leaves"] == [("leaves", 0)]
    assert [e for e in sink.events if e[0] == "stays"] == [("stays", i) for i in range(10)]
    assert stays.first_token == stays.token_times[0] and leaves.first_token == leaves.token_times[0]
    assert engine.free_blocks == capacity and engine.running == []
    assert gauge == [1]


# ---------------------------------------------------------------- the step clock
def test_step_jitter_draws_from_the_seeded_gauss_and_is_clipped_to_two_sigmas() -> None:
    engine = _engine(step_jitter=0.3, seed=7)
    drawn = [engine._jitter(0.010) for _ in range(400)]
    rng = random.Random(7)
    expected = [0.010 * min(max(rng.gauss(1.0, 0.3), 0.4), 1.6) for _ in range(400)]
    assert drawn == pytest.approx(expected)
    assert min(drawn) == pytest.approx(0.004) and max(drawn) == pytest.approx(0.016)  # both clips reached
    assert _engine(step_jitter=0.0)._jitter(0.010) == 0.010


def test_a_step_ends_at_its_deadline_and_a_starved_step_shows_in_the_lateness_figures() -> None:
    engine = _engine()
    late_before: list[int] = []

    async def run() -> tuple[float, float, float]:
        before = time.monotonic()
        await engine._sleep_step(0.020)
        after = time.monotonic()
        deadline = engine._deadline
        late_before.append(engine.late_steps)  # the first step may be late on a busy machine
        # the loop is blocked for 80 ms during a 10 ms step: the step wakes >= 70 ms late. The timeline
        # restarts from now (as after an idle spell), so a late first step cannot make this one catch up.
        engine._deadline = 0.0
        asyncio.get_running_loop().call_soon(time.sleep, 0.080)
        await engine._sleep_step(0.010)
        return before, deadline, after

    before, deadline, after = asyncio.run(run())
    assert before + 0.020 <= deadline <= after  # slept to its deadline, not past it before waking
    state = engine.state()
    assert state["lateness_max_ms"] >= 70 and state["lateness_p99_ms"] >= 70
    assert state["late_steps"] == late_before[0] + 1  # the starved step, counted once


# ---------------------------------------------------------------- the write-spread and lateness summaries
def test_the_write_spread_summary_against_hand_computed_percentiles() -> None:
    spread = SpreadStats()
    assert spread.summary() == {
        "steps": 0,
        "writes": 0,
        "p50_ms": 0.0,
        "p99_ms": 0.0,
        "max_ms": 0.0,
        "max_step_writes": 0,
    }
    # ten steps of 1..10 ms (given out of order), step k written to k requests
    for ms in (3, 1, 4, 10, 5, 9, 2, 6, 8, 7):
        spread.add(ms / 1000, ms)
    # p50 = sorted[int(0.5 x 10)] = sorted[5] = 6 ms; p99 = sorted[min(int(9.9), 9)] = 10 ms
    assert spread.summary() == {
        "steps": 10,
        "writes": 55,
        "p50_ms": 6.0,
        "p99_ms": 10.0,
        "max_ms": 10.0,
        "max_step_writes": 10,
    }


def test_the_lateness_p99_against_hand_computed_values() -> None:
    assert _p99([]) == 0.0
    values = [float(v) for v in range(200, 0, -1)]  # 1..200: p99 = sorted[int(0.99 x 200)] = sorted[198]
    assert _p99(values) == 199.0
    assert _p99([5.0]) == 5.0


# ---------------------------------------------------------------- introspection and failed downloads
def test_a_fresh_engine_reports_nothing_under_way_and_a_prefill_reports_its_batch() -> None:
    sink = _Log()
    engine = _engine()
    fresh = engine.state()
    assert (fresh["waiting"], fresh["prefilling"], fresh["running"]) == (0, 0, 0)
    assert (fresh["steps"], fresh["late_steps"], fresh["lateness_max_ms"]) == (0, 0, 0.0)
    seen: list[object] = []
    seqs = [_seq(f"s{i}", sink, new=2) for i in range(3)]
    sink.on_first["s0"] = lambda: seen.append(engine.state()["prefilling"])  # written after the step

    async def run() -> None:
        engine.start()
        for seq in seqs:
            engine.submit(seq)
        while engine.prefilling == 0 and not seqs[0].done:  # catch the prefill step under way
            await asyncio.sleep(0)
        seen.insert(0, engine.state()["prefilling"])
        await _until(lambda: all(s.done for s in seqs), engine)

    asyncio.run(run())
    assert seen == [3, 0]  # 3 during the step; none once its tokens go out (they are running then)
    assert engine.state()["prefilling"] == 0 and engine.state()["steps"] == 2  # one prefill, one decode


@pytest.mark.parametrize(
    ("adapter", "source", "faults", "unloadable", "message"),
    [
        ("org/a", "gcs", None, (), "Invalid source 'gcs' when downloading adapter 'org/a'"),
        ("org/a", "hub", FaultSpec(adapter_fail=["org/*"]), (), "failed to download or load adapter 'org/a'"),
        ("org/a", "hub", None, ("org/*",), "failed to download or load adapter 'org/a'"),
    ],
    ids=["bad-source", "fault-adapter-fail", "unloadable-adapter"],
)
def test_a_failed_download_fails_every_waiting_request_and_the_next_one_starts_over(
    adapter: str, source: str, faults: FaultSpec | None, unloadable: tuple[str, ...], message: str
) -> None:
    # loader.rs:161-171 -> 258-281 @a7394ba3: the adapter errors, its queue is terminated, each waiting
    # request gets the error; another adapter is not affected
    messages: dict[str, str] = {}

    class _Errors(_Log):
        def on_error(self, seq: Sequence, err: LoraxError) -> None:
            super().on_error(seq, err)
            messages[seq.request_id] = err.message

    sink = _Errors()
    engine = _engine(adapter_load_ms=1.0, unloadable_adapters=unloadable)
    if faults is not None:
        engine.faults = Faults(faults)
    doomed = [_seq(f"a{i}", sink, adapter, new=2) for i in range(2)]
    for seq in doomed:
        seq.adapter_source = source
    fine = _seq("b", sink, "other/b", new=2)

    async def run() -> None:
        engine.start()
        for seq in (*doomed, fine):
            engine.submit(seq)
        await _until(lambda: all(s.done for s in (*doomed, fine)), engine)

    asyncio.run(run())
    assert [(s.request_id, s.error_type) for s in doomed] == [("a0", "generation"), ("a1", "generation")]
    assert all(message in messages[s.request_id] for s in doomed), messages
    assert fine.error_type is None and fine.generated == 2
    assert engine.metrics.counter_value("lorax_request_failure", err="download_adapter") == 1
    assert adapter not in engine.queues.queues  # the next request starts a new download


def test_later_requests_join_the_queue_with_the_first_requests_source() -> None:
    # adapter.rs:62-66 @a7394ba3: queues are keyed by adapter; the first request's source is downloaded
    sink = _Log()
    engine = _engine(adapter_load_ms=1.0)
    first, second = _seq("first", sink, "org/a", new=2), _seq("second", sink, "org/a", new=2)
    second.adapter_source = "gcs"  # would fail on its own

    async def run() -> None:
        engine.start()
        engine.submit(first)
        engine.submit(second)
        await _until(lambda: first.done and second.done, engine)

    asyncio.run(run())
    assert (first.error_type, second.error_type) == (None, None)


def _load_errors(adapter: str, source: str = "hub", load_ms: float = 0.0, **config: object) -> list[str]:
    """The error messages one request for `adapter` (from `source`) ends with."""
    errors: list[str] = []
    sink = _Log()
    sink.on_error = lambda seq, err: errors.append(err.message)  # type: ignore[method-assign]
    engine = _engine(adapter_load_ms=load_ms, **config)
    seq = _seq("m", sink, adapter, new=2)
    seq.adapter_source = source

    async def run() -> None:
        engine.start()
        engine.submit(seq)
        await _until(lambda: seq.done, engine)

    asyncio.run(run())
    return errors


BAD_SOURCE = "Request failed during generation: Server error: Invalid source 'gcs' when downloading adapter "


def test_a_bad_source_is_refused_before_any_download() -> None:
    # router/client/src/client.rs:251-270 @a7394ba3: the router's client refuses the source before
    # downloading; the download takes 10 minutes here, so a refusal that waited for it would not come
    # within the test's cap
    assert _load_errors("org/a", source="gcs", load_ms=600_000.0) == [BAD_SOURCE + "'org/a'"]


def test_a_bad_source_for_a_merge_names_the_merged_ids_not_the_merge_settings() -> None:
    # a merge's queue key is "ids|settings" (wire.adapter_key); LoRAX's message names the ids joined by ","
    # (router/client/src/client.rs:262-266 @a7394ba3: `adapter_parameters.adapter_ids.join(",")`)
    merge = 'org/a,org/b|[[0.5,0.5],"linear",0.0,null]'
    assert _load_errors(merge, source="gcs", load_ms=600_000.0) == [BAD_SOURCE + "'org/a,org/b'"]


def test_a_merge_with_an_unloadable_part_fails_naming_its_ids() -> None:
    # the merged ids are before "|" in the queue key; any one of them that cannot load fails the merge
    merge = 'org/a,org/b|[[0.5,0.5],"linear",0.0,null]'
    assert _load_errors(merge, unloadable_adapters=("org/b",)) == [
        "Request failed during generation: Server error: failed to download or load adapter 'org/a,org/b' "
        "(simulated: it matches --unloadable-adapter)"
    ]


def test_a_bad_source_is_the_error_even_for_an_unloadable_adapter() -> None:
    # the router's client refuses the source before any download (router/client/src/client.rs:262-266
    # @a7394ba3), so the download's own failure never happens
    assert _load_errors("org/a", source="gcs", unloadable_adapters=("org/a",)) == [BAD_SOURCE + "'org/a'"]


@pytest.mark.parametrize(("new_tokens", "admitted"), [(124, True), (125, False)])
def test_kv_blocks_exactly_filling_the_free_ones_are_admitted(new_tokens: int, admitted: bool) -> None:
    # 9 x 16 tokens = 9 blocks, block 0 reserved: 8 free. 5 + 124 - 1 = 128 tokens = 8 blocks fit exactly
    # (block_allocator.rs:186 @a7394ba3 refuses only `required_blocks > free_blocks.len()`); 129 do not
    sink = _Log()
    engine = _ready_engine(max_batch_total_tokens=9 * BLOCK_SIZE)
    engine.queues.append(BASE, _seq("r", sink, new=new_tokens))
    batch = engine._next_batch()
    assert [s.request_id for s in batch] == (["r"] if admitted else [])
    assert engine.free_blocks == (0 if admitted else 8)


def test_a_running_request_cancelled_between_steps_leaves_at_the_step_boundary_with_its_blocks() -> None:
    # cancelled while another batch prefilled (the running batch waits then): the next step boundary
    # drops it and gives its KV blocks back before the next decode counts it in the batch
    sink = _Log()
    engine = _ready_engine(max_batch_total_tokens=9 * BLOCK_SIZE)  # 8 blocks free
    stays, leaves = _seq("stays", sink, new=20), _seq("leaves", sink, new=40)  # 2 and 3 blocks
    for i, seq in enumerate((stays, leaves)):
        seq.queued = float(i)
        engine.queues.append(BASE, seq)
    engine.running = engine._next_batch()
    assert engine.free_blocks == 3
    engine.cancel(leaves)
    engine._drop_cancelled()
    assert engine.running == [stays] and engine.state()["running"] == 1
    assert engine.free_blocks == 6


# ---------------------------------------------------------------- forming a batch: budgets and leftovers
def test_the_prefill_budget_takes_prompts_up_to_it_and_stops_at_the_first_past_it() -> None:
    # scheduler.rs next_batch: prompts 6 + 4 fill a 10-token budget exactly; the next (1 token) waits
    sink = _Log()
    engine = _ready_engine(max_batch_prefill_tokens=10)
    for i, prompt in enumerate((6, 4, 1)):
        seq = _seq(f"p{prompt}", sink, prompt=prompt)
        seq.queued = float(i)
        engine.queues.append(BASE, seq)
    assert [s.request_id for s in engine._next_batch()] == ["p6", "p4"]
    assert [s.request_id for s in engine.waiting] == ["p1"]
    alone = _ready_engine(max_batch_prefill_tokens=10)
    alone.queues.append(BASE, _seq("p11", sink, prompt=11))  # one token past the budget: never admitted
    assert alone._next_batch() == [] and [s.request_id for s in alone.waiting] == ["p11"]


def test_a_cancelled_request_still_queued_is_skipped_and_dropped_when_a_batch_forms() -> None:
    sink = _Log()
    engine = _ready_engine()
    gone, kept = _seq("gone", sink, prompt=7), _seq("kept", sink, prompt=3)
    for i, seq in enumerate((gone, kept)):
        seq.queued = float(i)
        engine.queues.append(BASE, seq)
    engine.cancel(gone)  # after the step boundary's drop: still in the queue
    assert [s.request_id for s in engine._next_batch()] == ["kept"]
    assert engine.waiting == [] and engine.state()["waiting"] == 0


def test_a_request_that_does_not_fit_after_max_waiting_tokens_is_no_batch_and_no_concat() -> None:
    # the wait is over (min size None) but the first request needs more KV blocks than are free: nothing
    # joins, so nothing is counted as joining
    sink = _Log()
    engine = _ready_engine(max_batch_total_tokens=3 * BLOCK_SIZE)  # 2 blocks free
    engine.running = [_seq("r", sink)]
    engine._waiting_steps = engine.config.max_waiting_tokens
    engine.queues.append(BASE, _seq("big", sink, new=100))  # 7 blocks
    assert engine._min_size() is None
    assert engine._next_batch(engine._min_size()) == []
    assert engine.metrics.counter_value("lorax_batch_concat", reason="wait_exceeded") == 0
    assert engine.free_blocks == 2


def test_an_adapter_whose_only_request_was_cancelled_is_not_loaded() -> None:
    # one slot held by a's long request; b's only request is cancelled while it waits. Nobody waits for
    # b, so when a ends b is not loaded (an empty queue forms no batch and moves no adapter)
    sink = _Log()
    engine = _engine(max_active_adapters=1, adapter_load_ms=1.0, max_waiting_tokens=2)
    first = _seq("a", sink, "org/a", new=40)
    other = _seq("b", sink, "org/b", new=2)

    def arrive_and_leave() -> None:
        engine.submit(other)
        engine.cancel(other)

    sink.on_first["a"] = arrive_and_leave

    async def run() -> None:
        engine.start()
        engine.submit(first)
        await _until(lambda: first.done, engine)

    asyncio.run(run())
    state = engine.state()
    assert state["adapter_loads"] == 1 and state["active_adapters"] == ["org/a"], state
    assert [e for e in sink.events if e[0] == "b"] == []


def test_a_step_catching_up_on_the_timeline_is_not_counted_late() -> None:
    # the previous step ended 100 ms ago on the GPU timeline (< CATCH_UP_S): the next 10 ms step ended
    # 90 ms ago, so it returns at once; its lateness belongs to the step that overran, not to this one
    engine = _engine()

    async def run() -> float:
        engine._deadline = time.monotonic() - 0.100
        before = engine._deadline
        await engine._sleep_step(0.010)
        return before

    before = asyncio.run(run())
    assert engine._deadline == pytest.approx(before + 0.010)
    state = engine.state()
    assert (state["late_steps"], state["lateness_max_ms"], state["lateness_p99_ms"]) == (0, 0.0, 0.0)


def test_a_steps_timer_is_set_early_by_the_spin_margin_never_past_its_deadline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # the loop's timers have 1 ms resolution: the engine sets the timer SPIN_S before the step's end and
    # yields until the end passes, so a step never oversleeps because of the timer. What the engine asks
    # the loop for is recorded (the verdict does not depend on how long anything took).
    real_sleep = asyncio.sleep
    asked: list[float] = []

    async def recording_sleep(seconds: float) -> None:
        asked.append(seconds)
        await real_sleep(seconds)

    monkeypatch.setattr(asyncio, "sleep", recording_sleep)
    engine = _engine()

    async def run() -> float:
        now = time.monotonic()
        await engine._sleep_step(0.050)
        return engine._deadline - now

    span = asyncio.run(run())
    timers = [s for s in asked if s > 0]
    assert len(timers) == 1 and timers[0] <= span - SPIN_S
    assert timers[0] >= 0.050 - SPIN_S - 0.040  # set from the step's length, not from zero
    assert time.monotonic() >= engine._deadline


def test_work_waiting_for_a_busy_slot_is_rechecked_after_a_cycle_without_any_new_arrival() -> None:
    # one slot: a's request can never fit the KV cache, so a holds the slot with queued work and nothing
    # runs. Once a has been active for the cycle time (50 ms), b's request takes the slot: the idle engine
    # re-checks after a cycle on its own, without a new request to wake it.
    sink = _Log()
    engine = _engine(
        max_active_adapters=1,
        adapter_cycle_s=0.05,
        adapter_load_ms=1.0,
        max_batch_total_tokens=3 * BLOCK_SIZE,
    )
    stuck = _seq("a", sink, "org/a", new=100)  # 7 blocks; 2 exist
    served = _seq("b", sink, "org/b", new=2)

    async def run() -> None:
        engine.start()
        engine.submit(stuck)
        engine.submit(served)
        await _until(lambda: served.done, engine)

    asyncio.run(run())
    assert [e for e in sink.events if e[0] == "b"] == [("b", 0), ("b", 1)]
    assert not stuck.done


@pytest.mark.parametrize("eager", [True, False])
def test_eager_prefill_lets_a_second_batch_join_before_the_next_decode(eager: bool) -> None:
    # infer.rs:1139-1149 @a7394ba3 with --eager-prefill: after a batch joins, the engine tries again with
    # the same minimum size (floor(5 x 1.2) = 6) before decoding; without it, it decodes first and the
    # minimum grows with the batch (floor(11 x 1.2) = 13), so the second six wait
    sink = _Log()
    engine = _engine(eager_prefill=eager)
    running = [_seq(f"r{i}", sink, new=100) for i in range(5)]
    first = [_seq(f"n{i}", sink, new=50) for i in range(6)]
    second = [_seq(f"m{i}", sink, new=3) for i in range(6)]
    sink.on_first["r0"] = lambda: [engine.submit(s) for s in first]
    sink.on_first["n0"] = lambda: [engine.submit(s) for s in second]

    async def run() -> None:
        engine.start()
        for seq in running:
            engine.submit(seq)
        await _until(lambda: all(s.done for s in second), engine)

    asyncio.run(run())
    assert sink.position("n0", 0) < sink.position("r0", 1)  # the first six join at once either way
    assert (sink.position("m0", 0) < sink.position("r0", 1)) is eager, sink.events[:60]


def test_one_token_requests_and_requests_cancelled_during_their_prefill_give_their_blocks_back() -> None:
    # a one-token request ends at its prefill; one cancelled while its prefill runs gets no token: neither
    # joins the running batch and both return their KV blocks at once
    sink: _Log = _Log()
    engine = _engine()
    capacity = engine.free_blocks
    one_token = [_seq(f"o{i}", sink, new=1) for i in range(3)]
    leaves = _seq("leaves", sink, new=50)
    stays = _seq("stays", sink, new=50)
    seqs = [*one_token, leaves, stays]
    after_prefill: list[tuple[int, int, float]] = []

    def during_prefill() -> None:
        engine.cancel(leaves)

    def at_second_token() -> None:
        gauge = engine.metrics.gauges["lorax_batch_current_size"][()]  # as the prefill step left it
        after_prefill.append((len(engine.running), engine.free_blocks, gauge))

    class _Hooks(_Log):
        def on_token(self, seq: Sequence, index: int, last: bool) -> float:
            if seq.request_id == "stays" and index == 1:
                at_second_token()
            return super().on_token(seq, index, last)

    sink = _Hooks()
    for seq in seqs:
        seq.sink = sink

    async def run() -> None:
        engine.start()
        for seq in seqs:
            engine.submit(seq)
        while engine.prefilling == 0:
            await asyncio.sleep(0)
        during_prefill()
        await _until(lambda: stays.done, engine)

    asyncio.run(run())
    assert [e for e in sink.events if e[0] == "leaves"] == []
    assert all(s.generated == 1 and s.done for s in one_token)
    # at stays' second token (the first decode step) only stays runs and holds its own blocks
    assert after_prefill == [(1, capacity - 4, 1)]  # ceil((5 + 50 - 1) / 16) = 4 blocks; a batch of 1
    assert engine.free_blocks == capacity


def test_a_batchs_distinct_adapters_leave_out_the_base_model() -> None:
    # the profile's step time grows with the distinct adapters in the batch; base-model requests add none
    sink = _Log()
    engine = _engine()
    batch = [
        _seq("b0", sink),
        _seq("b1", sink),
        _seq("a0", sink, "a"),
        _seq("a1", sink, "a"),
        _seq("c", sink, "c"),
    ]
    assert engine._adapters_in(batch) == 2
    assert engine._adapters_in(batch[:2]) == 0


def test_a_zero_length_step_on_a_fresh_timeline_is_never_late() -> None:
    # a step of 0 s starting now ends now: it returns at once and records no lateness
    engine = _engine()
    asyncio.run(engine._sleep_step(0.0))
    assert engine.lateness_max == 0.0 and engine.late_steps == 0
    assert engine.state()["lateness_p99_ms"] == 0.0 and engine._lateness == []


def test_stop_ends_the_engine_even_when_a_wake_up_arrives_with_the_cancel() -> None:
    # the engine idles in its timed re-check (an adapter's download runs); a wake-up and stop()'s cancel
    # land in the same loop iteration. Python 3.11's wait_for swallowed such a cancel (CPython gh-86296)
    # and stop() waited forever; the 10 s cap only turns that hang into a failure.
    sink = _Log()
    engine = _engine(adapter_load_ms=600_000.0)
    seq = _seq("a", sink, "org/a", new=2)

    async def run() -> None:
        engine.start()
        engine.submit(seq)
        while not engine.queues.pending or engine._wake.is_set():
            await asyncio.sleep(0.001)
        await asyncio.sleep(0.01)  # the engine is in its timed wait now
        engine._wake.set()
        stopping = asyncio.ensure_future(engine.stop())
        done, _ = await asyncio.wait({stopping}, timeout=10.0)  # does not cancel anything itself
        stopped.append(bool(done))
        if not done:  # the hang: end the engine for good so the test can report it
            assert engine._task is not None
            engine._task.cancel()
            await stopping

    stopped: list[bool] = []
    asyncio.run(run())
    assert stopped == [True]
    assert engine._task is not None and engine._task.cancelled()


@pytest.mark.parametrize(("late_ms", "counted"), [(2.125, True), (1.5, False)])
def test_a_step_is_counted_late_only_past_two_milliseconds(
    monkeypatch: pytest.MonkeyPatch, late_ms: float, counted: bool
) -> None:
    # the engine's clock is scripted (the event loop keeps the real one): a 10 ms step starting at 100.0
    # s ends at 100.010; the engine wakes at 100.010 + late_ms
    import loraxkit.sim.engine as engine_module

    engine = _engine()
    woke = 100.010 + late_ms / 1000
    monkeypatch.setattr(engine_module, "time", ScriptedClock([100.0, woke, woke]))
    asyncio.run(engine._sleep_step(0.010))
    assert engine.lateness_max == pytest.approx(late_ms / 1000)
    assert engine.late_steps == (1 if counted else 0)
    state = engine.state()  # to the microsecond
    assert (state["lateness_max_ms"], state["lateness_p99_ms"]) == (late_ms, late_ms)


def test_each_prefill_records_its_batch_size() -> None:
    sink = _Log()
    engine = _ready_engine()
    for i, name in enumerate(("a", "b", "c")):
        seq = _seq(name, sink, new=1)
        seq.queued = float(i)
        engine.queues.append(BASE, seq)

    async def run() -> None:
        await engine._prefill(engine._next_batch())
        engine.queues.append(BASE, _seq("d", sink, new=1))
        await engine._prefill(engine._next_batch())

    asyncio.run(run())
    sizes = engine.metrics.histograms["lorax_batch_next_size"][()]
    assert (sizes.count, sizes.total) == (2, 4.0)  # a batch of 3, then one of 1
