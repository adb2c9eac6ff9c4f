"""The opt-in closed-loop shape that steps the user count through stages to find the saturation point.

It is never put in `loadtest/` (Locust would make any LoadTestShape found there take over every run); the
harness installs it on the master when `--shape step|sweep` is given, and records when it started so the
report can cut requests into stages.
"""

from __future__ import annotations

from locust import LoadTestShape

from loraxkit.loadtest.metrics import now
from loraxkit.loadtest.stages import Stage


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
