"""The launcher caps max_position_embeddings at 4096 (launcher/src/main.rs:1609-1664): below the cap the
model's own value is used, at and above it the cap, and the refusal that derives the input length from it
says which. Both sides of validate.yaml's comparison, read off a refusal that quotes it (a prefill budget of
100 tokens, below any derived input length).
Written against a survivor of `python3 bench/mutate.py chart-validate` (seed 18, docs/mutation.md)."""

from __future__ import annotations

import helm_python as helm
import pytest
from chart_helpers import render


@pytest.mark.parametrize(
    ("position", "derived"),
    [(4095, "= 4094 (model.maxPositionEmbeddings is 4095;"),
     (4096, "= 4095 (model.maxPositionEmbeddings 4096 is capped at 4096;"),
     (4097, "= 4095 (model.maxPositionEmbeddings 4097 is capped at 4096;")],
)  # fmt: skip
def test_the_derived_input_length_uses_the_model_value_below_the_cap_and_the_cap_from_it(
    position: int, derived: str
) -> None:
    with pytest.raises(helm.HelmReleaseError) as caught:
        render({"model": {"maxPositionEmbeddings": position}, "server": {"maxBatchPrefillTokens": 100}})
    assert (
        f"server.maxInputLength is unset, so the launcher uses max_position_embeddings - 1 {derived}"
        in str(caught.value)
    )
