"""/dev/shm is memory-backed and counts against the container's memory limit: a shm.sizeLimit equal to
resources.limits.memory renders, one Mi more is refused naming both keys (in any unit the two are written in).
Written against a survivor of `python3 bench/mutate.py chart-validate-runtime` (seed 18, docs/mutation.md)."""

from __future__ import annotations

import helm_python as helm
import pytest
from chart_helpers import render


def _values(shm: str, memory: str) -> dict:
    # above the chart's default memory request (24Gi), which a limit may not be under
    return {"shm": {"sizeLimit": shm}, "resources": {"limits": {"memory": memory}}}


@pytest.mark.parametrize(("shm", "memory"), [("32Gi", "32Gi"), ("32768Mi", "32Gi"), ("32Gi", "34359738368")])
def test_a_shm_size_equal_to_the_memory_limit_renders(shm: str, memory: str) -> None:
    render(_values(shm, memory))


@pytest.mark.parametrize(
    ("shm", "memory"), [("32769Mi", "32Gi"), ("32Gi", "32767Mi"), ("32Gi", "34359738367")]
)
def test_a_shm_size_one_step_over_the_memory_limit_is_refused(shm: str, memory: str) -> None:
    with pytest.raises(helm.HelmReleaseError) as caught:
        render(_values(shm, memory))
    assert f"shm.sizeLimit ({shm}) is larger than resources.limits.memory ({memory})" in str(caught.value)
