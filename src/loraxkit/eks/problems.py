"""A problem `loraxkit eks check` reports, kept apart by severity.

* error: eksctl rejects the file, or a pod would stay Pending / cannot work. `loraxkit eks check` exits 1.
* warning: a house convention or a risk the scheduler does not see (the command still exits 0).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Problem:
    severity: Severity
    source: str  # who says so: eksctl | eksctl (ported) | scheduler | house | aws
    message: str

    def __str__(self) -> str:
        return f"[{self.source}] {self.message}"


def error(source: str, message: str) -> Problem:
    return Problem("error", source, message)


def warning(source: str, message: str) -> Problem:
    return Problem("warning", source, message)


def errors(problems: list[Problem]) -> list[Problem]:
    return [p for p in problems if p.severity == "error"]


def warnings(problems: list[Problem]) -> list[Problem]:
    return [p for p in problems if p.severity == "warning"]
