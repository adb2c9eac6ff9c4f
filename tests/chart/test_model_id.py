"""model.id: a Hugging Face Hub id (huggingface_hub validate_repo_id: at most 96 characters a part, no '--' or
'..') or an absolute local path, unless model.source is s3 (any S3 path: the chart does not read it). Both
sides of validate-runtime.yaml's rule.
Written against a survivor of `python3 bench/mutate.py chart-validate-runtime` (seed 17, docs/mutation.md)."""

from __future__ import annotations

from typing import Any

import helm_python as helm
import pytest
from chart_helpers import container, flag_values, render

REFUSED = "is neither a Hugging Face Hub id"
S3 = {"source": "s3"}
CASES: list[tuple[dict[str, Any], str, bool]] = [
    ({}, "org/" + "a" * 96, True),
    ({}, "org/" + "a" * 97, False),
    ({}, "a" * 96, True),
    ({}, "a" * 97, False),
    ({}, "org/a--b", False),
    ({}, "org/a..b", False),
    ({}, "org/a/b", False),
    ({}, "/models/mistral-7b", True),  # an absolute local path
    ({"source": "hub"}, "/models/mistral-7b", True),
    ({"source": "hub"}, "models/a--b", False),
    (S3, "s3://my-bucket/models/mistral--7b/", True),  # no Hub rule for an S3 model
    (S3, "my-bucket/models/a..b", True),
]


@pytest.mark.parametrize(("model", "model_id", "renders"), CASES, ids=[f"{c[0]}-{c[1][:24]}" for c in CASES])
def test_a_model_id_renders_or_is_refused_naming_the_key(
    model: dict[str, Any], model_id: str, renders: bool
) -> None:
    values = {"model": {**model, "id": model_id}, "serviceAccount": {"create": True}}
    if renders:
        assert flag_values(container(render(values))["args"], "--model-id") == [model_id]
        return
    with pytest.raises(helm.HelmReleaseError) as caught:
        render(values)
    assert f'model.id "{model_id}" {REFUSED}' in str(caught.value)
