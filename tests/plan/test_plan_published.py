"""The planner against published launcher figures: the fitted warm-up terms are current, and the docs table
is what the planner computes today."""

from __future__ import annotations

import pytest
from plan_helpers import REPO

from loraxkit.plan import activation, published
from loraxkit.plan.constants import LORAX_0_12_1
from loraxkit.plan.docs_table import published_table


def test_fitted_terms_are_the_least_squares_fit_of_the_published_figures() -> None:
    copies, fixed = published.fit_activation()
    assert pytest.approx(copies, abs=0.01) == activation.HIDDEN_COPIES
    assert pytest.approx(fixed, abs=1024**2) == activation.FIXED_BYTES


@pytest.mark.parametrize("case", published.CALIBRATION, ids=lambda c: c.key)
def test_fitted_cases_are_reproduced_within_fifteen_percent(case: published.Case) -> None:
    outcome = published.run(case)
    assert outcome.error is not None and abs(outcome.error) < 0.15, outcome


def test_there_are_at_least_five_published_cases_with_sources() -> None:
    assert len(published.CASES) >= 5
    assert all(c.url.startswith("https://github.com/") and c.version for c in published.CASES)


def test_engine_constants_matter_for_the_published_cases() -> None:
    """LoRAX's constants (0.1 of the GPU for adapters, a decode-to-total warm-up) take memory TGI's do not."""
    for case in published.CALIBRATION:
        tgi, lorax = published.run(case), published.run(case.with_engine(LORAX_0_12_1))
        assert tgi.predicted is not None
        assert lorax.predicted is None or lorax.predicted < 0.95 * tgi.predicted, (case.key, lorax, tgi)
    # Llama-3.1-70B on 2 x A100 80GB ran under TGI 2.4; LoRAX's 7.9 GiB adapter reservation would not fit it.
    tight = next(c for c in published.CALIBRATION if c.engine.name == "tgi-2.4")
    assert published.run(tight.with_engine(LORAX_0_12_1)).predicted is None


def test_docs_table_is_current() -> None:
    text = (REPO / "docs" / "plan.md").read_text()
    assert published_table() in text, "docs/plan.md is stale: paste `python -m loraxkit.plan.docs_table`"
