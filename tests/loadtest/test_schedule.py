"""Open-loop schedules: rates, the split across workers, rate sweeps."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from loraxkit.loadtest.schedule import ScheduleError, WorkerSchedule, arrival_offsets


def test_poisson_rate_and_exponential_gaps() -> None:
    arrivals = list(itertools.islice(arrival_offsets([50.0], "poisson", None, seed=1), 5000))
    gaps = np.diff([0.0] + [a.offset for a in arrivals])
    assert abs(gaps.mean() - 1 / 50) < 0.001
    # exponential: std == mean (constant arrivals would have std 0)
    assert abs(gaps.std() / gaps.mean() - 1.0) < 0.05


def test_constant_rate_is_evenly_spaced() -> None:
    offsets = [a.offset for a in itertools.islice(arrival_offsets([4.0], "constant", None, 0), 8)]
    assert offsets == pytest.approx([0.25 * (i + 1) for i in range(8)])


def test_workers_split_the_global_schedule_exactly() -> None:
    def take(schedule: WorkerSchedule) -> list:
        out = []
        while (a := schedule.claim()) is not None:
            out.append(a)
        return out

    args = ([5.0, 10.0], "poisson", 2.0, 42)
    whole = list(arrival_offsets(*args))
    parts = [take(WorkerSchedule(*args, worker_index=k, worker_count=3, t0=0.0)) for k in range(3)]
    merged = sorted((a for part in parts for a in part), key=lambda a: a.index)
    assert merged == whole
    assert all(a.index % 3 == k for k, part in enumerate(parts) for a in part)


def test_rate_sweep_stages_have_their_rates() -> None:
    arrivals = list(arrival_offsets([20.0, 80.0], "constant", 5.0, 0))
    first = [a for a in arrivals if a.stage == 0]
    second = [a for a in arrivals if a.stage == 1]
    assert len(first) == 99 and len(second) == 399  # the arrival exactly at a stage end starts nothing
    assert all(a.offset < 5.0 for a in first) and all(5.0 <= a.offset < 10.0 for a in second)


@pytest.mark.parametrize(
    ("rates", "process", "stage", "match"),
    [
        ([0.0], "poisson", None, "--arrival-rate"),
        ([1.0], "bursty", None, "--arrival-process"),
        ([1.0, 2.0], "poisson", None, "--stage-time"),
    ],
)
def test_bad_schedules_name_the_option(rates: list, process: str, stage: float | None, match: str) -> None:
    with pytest.raises(ScheduleError, match=match):
        next(arrival_offsets(rates, process, stage, 0))


def test_a_rate_sweep_knows_how_many_arrivals_no_user_took_yet() -> None:
    # The rate sweep's drain waits until this reaches 0 on every process (with nothing in flight).
    args = ([5.0, 10.0], "poisson", 2.0, 42)
    schedule = WorkerSchedule(*args, worker_index=1, worker_count=2, t0=0.0)
    mine = sum(1 for a in arrival_offsets(*args) if a.index % 2 == 1)
    assert schedule.unclaimed == mine > 0
    schedule.claim()
    assert schedule.unclaimed == mine - 1
    while schedule.claim() is not None:
        pass
    assert schedule.unclaimed == 0
    # an endless schedule (one rate, no stage time) has no count
    assert WorkerSchedule([5.0], "poisson", None, 1, 0, 1, 0.0).unclaimed is None
