"""Opt-in closed-loop shapes that step the user count through stages to find the saturation point.

These classes are never put in `loadtest/` (Locust would make any LoadTestShape found there take over every
run); the harness installs one on the master when `--shape step|sweep` is given. Each stage's start time is
recorded so the report can cut requests into stages.
"""

from __future__ import annotations

from dataclasses import dataclass

from locust import LoadTestShape

from loraxkit.loadtest.metrics import now

SHAPES = ("none", "step", "sweep")


class ShapeError(ValueError):
    """Bad shape settings; the message names the option."""


@dataclass(frozen=True)
class Stage:
    index: int
    users: int | None  # closed loop: user count
    rate: float | None  # open loop: arrival rate (req/s)
    duration: float


def user_stages(shape: str, sweep_users: str, step_users: int, steps: int, stage_time: float) -> list[Stage]:
    """The stage plan for `--shape`: `sweep` uses the explicit user list, `step` adds step_users each stage."""
    if stage_time <= 0:
        raise ShapeError("--stage-time: must be > 0 seconds")
    if shape == "sweep":
        try:
            users = [int(u) for u in sweep_users.split(",") if u.strip()]
        except ValueError:
            raise ShapeError(f"--sweep-users: {sweep_users!r} is not a comma list of user counts") from None
    elif shape == "step":
        if step_users < 1 or steps < 1:
            raise ShapeError("--step-users and --steps must be >= 1")
        users = [step_users * (i + 1) for i in range(steps)]
    else:
        raise ShapeError(f"--shape: {shape!r} is not one of {', '.join(SHAPES)}")
    if not users or any(u < 1 for u in users):
        raise ShapeError("--sweep-users: give positive user counts, e.g. 1,2,4,8")
    return [Stage(i, u, None, stage_time) for i, u in enumerate(users)]


class StagedShape(LoadTestShape):
    """Hold each stage's user count for its duration; stop after the last stage."""

    abstract = True  # never auto-discovered; installed by the harness

    def __init__(self, stages: list[Stage]) -> None:
        super().__init__()
        self.stages = stages
        self.started_at: float | None = None  # epoch of the shape's start; stage j starts at the sum before j

    def tick(self) -> tuple[int, float] | None:
        elapsed = self.get_run_time()
        if self.started_at is None:
            self.started_at = now() - elapsed
        boundary = 0.0
        for stage in self.stages:
            boundary += stage.duration
            if elapsed < boundary:
                users = stage.users or 1
                return users, float(users)  # spawn the whole stage at once
        return None


def stage_windows(stages: list[Stage], started_at: float) -> list[tuple[float, float]]:
    """[start, end) epoch window of each stage."""
    out, t = [], started_at
    for stage in stages:
        out.append((t, t + stage.duration))
        t += stage.duration
    return out
