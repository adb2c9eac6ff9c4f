"""The rollout budget check applies to RollingUpdate only: a Recreate strategy renders without the
rollingUpdate block (the API server rejects one), whatever budget a values file left there; a RollingUpdate
with both budgets 0 is refused (apps/validation ValidateRollingUpdateDeployment).
Written against a survivor of `python3 bench/mutate.py chart-validate-runtime` (seed 18, docs/mutation.md)."""

from __future__ import annotations

import helm_python as helm
import pytest
from chart_helpers import find, render

ZEROS = {"maxSurge": 0, "maxUnavailable": 0}


def test_recreate_renders_without_the_rolling_update_block_even_with_a_zero_budget_left_in_values() -> None:
    docs = render({"updateStrategy": {"type": "Recreate", "rollingUpdate": ZEROS}})
    assert find(docs, "Deployment")["spec"]["strategy"] == {"type": "Recreate"}


def test_a_rolling_update_with_both_budgets_zero_is_refused_and_one_of_one_renders() -> None:
    with pytest.raises(helm.HelmReleaseError, match="maxSurge and maxUnavailable are both 0"):
        render({"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": ZEROS}})
    docs = render(
        {"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {**ZEROS, "maxUnavailable": 1}}}
    )
    assert find(docs, "Deployment")["spec"]["strategy"]["rollingUpdate"] == {
        "maxSurge": 0,
        "maxUnavailable": 1,
    }
