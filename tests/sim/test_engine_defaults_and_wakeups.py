"""Engine paths a seed-17 mutation sample found untested: the engine's defaults are the launcher's (and the
simulator CLI's), a request for an adapter whose queue is already there wakes an idle engine, and the base
model never fails to load.

Timing never decides a verdict (the cap is a hang guard): they pass beside two CPU burners."""

from __future__ import annotations

import asyncio
import dataclasses
import time

import pytest
from sim_helpers import ready_base_engine

from loraxkit.cli import build_parser
from loraxkit.sim.engine import SPIN_S, Engine, EngineConfig, Sequence
from loraxkit.sim.metrics import Registry
from loraxkit.sim.profiles import Profile, get_profile

CAP_S = 60.0  # a hang guard, far above what a busy machine needs


def test_the_engines_defaults_are_the_launchers_and_the_simulator_cli_passes_the_same() -> None:
    # launcher/src/main.rs @a7394ba3: --waiting-served-ratio 1.2 (:460), --max-waiting-tokens 20 (:507),
    # --eager-prefill true (:513), --max-active-adapters 1024 (:533), --adapter-cycle-time-s 2 (:537)
    defaults = EngineConfig(max_batch_total_tokens=1, max_batch_prefill_tokens=1)
    launcher = (1.2, 20, True, 1024, 2.0)
    assert (
        defaults.waiting_served_ratio,
        defaults.max_waiting_tokens,
        defaults.eager_prefill,
        defaults.max_active_adapters,
        defaults.adapter_cycle_s,
    ) == launcher
    args = build_parser().parse_args(["sim"])
    assert (
        args.waiting_served_ratio,
        args.max_waiting_tokens,
        args.eager_prefill == "true",
        args.max_active_adapters,
        args.adapter_cycle_time,
    ) == launcher


class _Tokens:
    def __init__(self) -> None:
        self.events: list[tuple[str, int]] = []

    def on_token(self, seq: Sequence, index: int, last: bool) -> float:
        self.events.append((seq.request_id, index))
        return time.time()

    def on_error(self, seq: Sequence, err: object) -> None:
        raise AssertionError(f"{seq.request_id} failed: {err}")


def test_a_request_whose_queue_exists_wakes_an_idle_engine() -> None:
    # The base model's queue is downloaded and active: a new request neither creates a queue nor asks the
    # loader for anything, so only submit() itself can wake the engine that sleeps with nothing to do
    # (nothing is pending, so it does not re-check after a cycle either).
    engine = ready_base_engine()
    sink = _Tokens()
    seq = Sequence(request_id="late", route="/generate", adapter_id=None, input_length=5, max_new_tokens=3,
                   token_ids=[1] * 3, finish_reason="length", sink=sink, arrival=0.0)  # fmt: skip

    async def run() -> None:
        engine.start()
        for _ in range(20):  # let the engine find nothing to do and go to sleep
            await asyncio.sleep(0)
        assert not engine.queues.pending and not engine.running
        engine.submit(seq)
        deadline = time.monotonic() + CAP_S
        while not seq.done and time.monotonic() < deadline:
            await asyncio.sleep(0.001)
        await engine.stop()

    asyncio.run(run())
    assert sink.events == [("late", 0), ("late", 1), ("late", 2)]


class _Outcomes(_Tokens):
    def __init__(self) -> None:
        super().__init__()
        self.errors: dict[str, str] = {}

    def on_error(self, seq: Sequence, err: object) -> None:
        self.errors[seq.request_id] = str(getattr(err, "error_type", err))


def test_an_unloadable_pattern_matching_everything_never_fails_the_base_model() -> None:
    # adapter.py:199-202 @a7394ba3: the base model is never downloaded, so `--unloadable-adapter '*'` fails
    # every adapter and never the base model (whose queue key, __base_model__, the pattern also matches)
    profile = dataclasses.replace(get_profile("synthetic"), fixed_decode_ms=1.0, fixed_prefill_ms=1.0)
    engine = Engine(profile, EngineConfig(10**6, 10**6, adapter_load_ms=1.0, unloadable_adapters=("*",)),
                    Registry(4095, 4096))  # fmt: skip
    sink = _Outcomes()

    def seq(name: str, adapter: str | None) -> Sequence:
        return Sequence(request_id=name, route="/generate", adapter_id=adapter, input_length=5,
                        max_new_tokens=2, token_ids=[1] * 2, finish_reason="length", sink=sink,
                        arrival=0.0)  # fmt: skip

    base, adapted = seq("base", None), seq("adapted", "org/a")

    async def run() -> None:
        engine.start()
        engine.submit(base)
        engine.submit(adapted)
        deadline = time.monotonic() + CAP_S
        while not (base.done and adapted.done) and time.monotonic() < deadline:
            await asyncio.sleep(0.001)
        await engine.stop()

    asyncio.run(run())
    assert sink.events == [("base", 0), ("base", 1)]
    assert sink.errors == {"adapted": "generation"}


@pytest.mark.parametrize(("given", "kept"), [("0", 0.0), ("0.05", 0.05), ("0.4999", 0.4999)])
def test_step_jitter_accepts_fractions_from_zero_to_below_one_half(given: str, kept: float) -> None:
    assert build_parser().parse_args(["sim", "--step-jitter", given]).step_jitter == kept


OUTSIDE = "outside 0 to below 0.5"


@pytest.mark.parametrize(("given", "says"), [("-0.01", OUTSIDE), ("0.5", OUTSIDE), ("five", "not a number")])
def test_step_jitter_refuses_what_would_be_ignored_or_allow_zero_length_steps(
    given: str, says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["sim", "--step-jitter", given])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--step-jitter" in err and says in err


def test_the_engines_default_download_time_is_the_profiles_default() -> None:
    # an engine built without the simulator's CLI (as the in-process tests build it) downloads adapters in
    # the documented default time (docs/simulator.md: `--adapter-load-ms`, profile default 800 ms)
    profile_default = {f.name: f.default for f in dataclasses.fields(Profile)}["adapter_load_ms"]
    config = EngineConfig(max_batch_total_tokens=1, max_batch_prefill_tokens=1)
    assert config.adapter_load_ms == profile_default
    assert profile_default == 800.0


def test_the_step_timer_spins_at_least_the_selectors_millisecond_rounding_and_at_most_two_ms() -> None:
    # asyncio's epoll selector rounds a timeout up to whole milliseconds (CPython Lib/selectors.py,
    # EpollSelector.select: math.ceil(timeout * 1e3) * 1e-3), so a timer set under 1 ms early can fire past
    # the step's end; every millisecond of margin beyond that is spent spinning on a core the harness needs.
    assert 0.001 <= SPIN_S <= 0.002


def test_the_engines_default_seed_is_the_simulators() -> None:
    config = EngineConfig(max_batch_total_tokens=1, max_batch_prefill_tokens=1)
    assert config.seed == build_parser().parse_args(["sim"]).seed == 0
