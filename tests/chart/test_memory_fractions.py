"""The adapter memory fraction must stay below the CUDA fraction (the KV cache gets cuda - adapter,
server/lorax_server/models/flash_causal_lm.py:1351), with LoRAX's defaults (0.1 and 1.0) standing in for an
unset value on either side: both sides of the rule for each.
Written against a survivor of `python3 bench/mutate.py chart-validate` (seed 18, docs/mutation.md)."""

from __future__ import annotations

from typing import Any

import helm_python as helm
import pytest
from chart_helpers import render

REFUSED = "is not below server.cudaMemoryFraction"


def _values(adapter: float | None, cuda: float | None) -> dict[str, Any]:
    return {"adapters": {"memoryFraction": adapter}, "server": {"cudaMemoryFraction": cuda}}


@pytest.mark.parametrize(
    ("adapter", "cuda", "shown"),
    [(None, 0.1, "(0.1, default 0.1) is not below server.cudaMemoryFraction (0.1, default 1.0)"),
     (1.0, None, "(1, default 0.1) is not below server.cudaMemoryFraction (1, default 1.0)"),
     (0.5, 0.5, "(0.5, default 0.1) is not below server.cudaMemoryFraction (0.5, default 1.0)")],
    ids=["adapter-default", "cuda-default", "both-set"],
)  # fmt: skip
def test_an_adapter_fraction_equal_to_the_cuda_fraction_is_refused(
    adapter: float | None, cuda: float | None, shown: str
) -> None:
    with pytest.raises(helm.HelmReleaseError) as caught:
        render(_values(adapter, cuda))
    assert f"adapters.memoryFraction {shown}" in str(caught.value)


@pytest.mark.parametrize(
    ("adapter", "cuda"), [(None, 0.11), (0.99, None), (0.49, 0.5), (0.0, None)],
    ids=["adapter-default", "cuda-default", "both-set", "no-adapter-memory"],
)  # fmt: skip
def test_an_adapter_fraction_just_below_the_cuda_fraction_renders(
    adapter: float | None, cuda: float | None
) -> None:
    render(_values(adapter, cuda))
