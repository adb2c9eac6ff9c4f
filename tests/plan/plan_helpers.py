"""Builders for the planner tests."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from loraxkit.plan.api import Request

REPO = Path(__file__).resolve().parents[2]
PROFILES = sorted((REPO / "values").glob("*.yaml"))
ACCEPTANCE = Request("mistralai/Mistral-7B-Instruct-v0.1", instance="g6e.2xlarge", adapters="24x16")
ACCEPTANCE_PROFILE = REPO / "values" / "g6e-l40s-mistral-7b-instruct-bf16.yaml"


def request(**changes: object) -> Request:
    return replace(ACCEPTANCE, **changes)  # type: ignore[arg-type]
