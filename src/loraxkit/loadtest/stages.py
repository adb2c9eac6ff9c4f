"""Stage plans (users or arrival rate per stage) and their time windows; no Locust import here."""

from __future__ import annotations

from dataclasses import dataclass

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
    """The stage plan: `sweep` runs the explicit user list, `step` adds step_users per stage."""
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


def stage_windows(stages: list[Stage], started_at: float) -> list[tuple[float, float]]:
    """[start, end) epoch window of each stage."""
    out, t = [], started_at
    for stage in stages:
        out.append((t, t + stage.duration))
        t += stage.duration
    return out
