"""Every deployment profile in values/ is what the planner computes from the command on its `# plan:` line."""

from __future__ import annotations

from pathlib import Path

import pytest
from plan_helpers import ACCEPTANCE, ACCEPTANCE_PROFILE, PROFILES

from loraxkit.plan.api import plan
from loraxkit.plan.cli import result_for_profile
from loraxkit.plan.values import differences, owned_values, update_text, values_text


@pytest.mark.parametrize("profile", PROFILES, ids=[p.stem for p in PROFILES])
def test_profile_agrees_with_the_planner(profile: Path) -> None:
    diffs = differences(result_for_profile(profile), profile.read_text())
    assert not diffs, f"{profile.name} disagrees; run `loraxkit plan --update {profile}`:\n" + "\n".join(
        diffs
    )


def test_a_changed_number_or_comment_is_a_disagreement() -> None:
    text = ACCEPTANCE_PROFILE.read_text()
    result = result_for_profile(ACCEPTANCE_PROFILE)
    assert differences(result, text.replace("maxActive: 24", "maxActive: 32")) == [
        "adapters.maxActive: planner 24, file 32"
    ]
    kv_line = next(line for line in text.splitlines() if line.startswith("#   KV cache"))
    assert differences(result, text.replace(kv_line, kv_line.replace("blocks", "block")))


def test_update_restores_a_drifted_profile_and_keeps_hand_written_keys() -> None:
    text = ACCEPTANCE_PROFILE.read_text()
    drifted = text.replace("maxActive: 24", "maxActive: 32").replace(
        "memoryFraction: 0.05", "memoryFraction: 0.2"
    )
    restored = update_text(result_for_profile(ACCEPTANCE_PROFILE), drifted)
    assert restored == text


def test_the_acceptance_command_writes_the_profiles_planned_part() -> None:
    """`loraxkit plan --model mistralai/Mistral-7B-Instruct-v0.1 --instance g6e.2xlarge --adapters 24x16`."""
    result = plan(ACCEPTANCE)
    assert not differences(result, values_text(result))
    assert not differences(result, ACCEPTANCE_PROFILE.read_text())
    assert owned_values(result)["server"]["cudaGraphs"] is True
