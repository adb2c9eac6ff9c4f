"""Open-loop arrivals: a seeded Poisson or constant-rate schedule that never waits for the server.

The schedule is global: arrival i has a fixed intended time t0 + offset_i. With W load processes, process k
sends arrivals i = k, k+W, k+2W, ... so the union over workers is exactly the global schedule. A request
leaves at its intended time if a user is free; if none is, it leaves late and the lag is recorded (and TTFT is
also reported from the intended time), instead of silently thinning the load (coordinated omission).
Several rates make a rate sweep: stage j runs at rates[j] for `stage_time` seconds.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from dataclasses import dataclass

ARRIVAL_PROCESSES = ("poisson", "constant")


class ScheduleError(ValueError):
    """Bad open-loop settings; the message names the option."""


@dataclass(frozen=True)
class Arrival:
    index: int
    offset: float  # seconds after t0
    stage: int


def arrival_offsets(
    rates: list[float], process: str, stage_time: float | None, seed: int
) -> Iterator[Arrival]:
    """Every arrival of the global schedule in order. Infinite when there is one rate and no stage time."""
    if process not in ARRIVAL_PROCESSES:
        raise ScheduleError(f"--arrival-process: {process!r} is not one of {', '.join(ARRIVAL_PROCESSES)}")
    if not rates or any(r <= 0 for r in rates):
        raise ScheduleError("--arrival-rate: give one or more positive rates in requests/s, e.g. 2 or 1,2,4")
    if len(rates) > 1 and not stage_time:
        raise ScheduleError("--stage-time: a rate sweep (several --arrival-rate values) needs a stage time")
    rng = random.Random(seed)
    index = 0
    stage_start = 0.0
    for stage, rate in enumerate(rates):
        t = stage_start
        end = stage_start + stage_time if stage_time else None
        for k in itertools.count(1):
            # constant: k/rate from the stage start (no float drift from repeated addition)
            t = t + rng.expovariate(rate) if process == "poisson" else stage_start + k / rate
            if end is not None and t >= end:
                break
            yield Arrival(index, t, stage)
            index += 1
        if end is None:
            return
        stage_start = end


class WorkerSchedule:
    """This process's share of the global schedule, handed out in order to whichever user is free."""

    def __init__(
        self,
        rates: list[float],
        process: str,
        stage_time: float | None,
        seed: int,
        worker_index: int,
        worker_count: int,
        t0: float,
    ) -> None:
        if not 0 <= worker_index < worker_count:
            raise ScheduleError(f"worker index {worker_index} is outside 0..{worker_count - 1}")
        self.t0 = t0
        mine = (
            a
            for a in arrival_offsets(rates, process, stage_time, seed)
            if a.index % worker_count == worker_index
        )
        self.total_time = stage_time * len(rates) if stage_time else None
        # A rate sweep's schedule is finite: known in full, so the run can tell when all of it was sent.
        self._finite = list(mine) if self.total_time is not None else None
        self._mine = iter(self._finite) if self._finite is not None else mine
        self._claimed = 0

    def claim(self) -> Arrival | None:
        """The next arrival for this process, or None when the schedule is over."""
        arrival = next(self._mine, None)
        self._claimed += arrival is not None
        return arrival

    @property
    def unclaimed(self) -> int | None:
        """Arrivals of this process no user has taken yet (None: an endless schedule)."""
        return None if self._finite is None else len(self._finite) - self._claimed
