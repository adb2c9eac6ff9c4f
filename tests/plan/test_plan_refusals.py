"""Every refusal a user will hit: named field, the reason with its source, and the fix."""

from __future__ import annotations

import pytest
from plan_helpers import request

from loraxkit.plan.api import plan
from loraxkit.plan.engine import PlanRefused


def _refusals(**changes: object) -> dict[str, str]:
    with pytest.raises(PlanRefused) as refused:
        plan(request(**changes))
    return {r.field: f"{r.reason} Fix: {r.fix}" for r in refused.value.refusals}


def test_model_too_large_for_the_gpu_set() -> None:
    found = _refusals(model="meta-llama/Llama-3.1-70B-Instruct", instance="g6e.2xlarge", adapters="0x16")
    assert "131.4 GiB of weights per GPU" in found["--model"]
    assert "use >= 4 GPUs" in found["--model"]
    plan(request(model="meta-llama/Llama-3.1-70B-Instruct", instance="g6e.12xlarge", adapters="0x16"))


def test_shards_that_do_not_divide_the_kv_heads() -> None:
    found = _refusals(model="Qwen/Qwen2.5-7B-Instruct", instance="g6e.48xlarge", shards=7, cuda_graphs="off")
    assert "4 KV heads" in found["--shards"] and "flash_llama_modeling.py" in found["--shards"]
    assert "use --shards 1 or 2 or 4" in found["--shards"]
    plan(request(model="Qwen/Qwen2.5-7B-Instruct", instance="g6e.48xlarge", shards=4, cuda_graphs="off"))


def test_context_beyond_the_position_limit() -> None:
    found = _refusals(model="meta-llama/Llama-2-7b-chat-hf", max_total_tokens=8192)
    assert "position limit" in found["--max-total-tokens"] and "<= 4,096" in found["--max-total-tokens"]


def test_context_beyond_mistral_v01s_sliding_window() -> None:
    found = _refusals(max_total_tokens=8192)
    assert "4,096-token sliding window" in found["--max-total-tokens"]
    plan(request(model="mistralai/Mistral-7B-Instruct-v0.2", max_total_tokens=8192))  # v0.2 has none


def test_cuda_graphs_with_shards_on_0_12_1() -> None:
    found = _refusals(instance="g6e.12xlarge", cuda_graphs="on")
    assert "Cannot enable `--compile` when sharding" in found["--cuda-graphs"]
    assert plan(request(instance="g6e.12xlarge")).inputs.cuda_graphs is False  # auto turns them off


def test_adapter_reservation_smaller_than_one_adapter() -> None:
    found = _refusals(adapters="4x64", adapter_memory_fraction=0.005)
    assert "smaller than one rank-64 adapter" in found["--adapter-memory-fraction"]
    assert "adapter.py l.221-225" in found["--adapter-memory-fraction"]
    assert "use --adapter-memory-fraction >= 0.01" in found["--adapter-memory-fraction"]


def test_warmup_that_cannot_fit_its_prefill() -> None:
    """Llama-3.1-8B on one A10G: the weights fit, the warm-up of a 16k-token prefill does not (its logits
    alone are 16,384 x 128,256 x 2 B = 3.9 GiB)."""
    big = dict(model="meta-llama/Llama-3.1-8B-Instruct", instance="g5.2xlarge", cuda_graphs="off")
    found = _refusals(**big, max_total_tokens=16384, max_input_length=16000, max_batch_prefill_tokens=16384)
    assert "Not enough memory to handle 16384 prefill tokens" in found["--max-batch-prefill-tokens"]
    plan(request(**big, max_total_tokens=4096))


def test_every_reason_at_once() -> None:
    found = _refusals(instance="g6e.12xlarge", cuda_graphs="on", max_total_tokens=8192)
    assert {"--cuda-graphs", "--max-total-tokens"} <= set(found)


def test_fp8_needs_an_fp8_gpu_and_fp8_kv_is_not_modelled() -> None:
    found = _refusals(instance="g5.2xlarge", quantize="fp8", cuda_graphs="off")
    assert "compute capability 8.6" in found["--quantize"]
    plan(request(instance="g6e.2xlarge", quantize="fp8"))  # L40S: 8.9
    assert "FlashInfer" in _refusals(quantize="fp8-kv")["--quantize"]


def test_memory_fractions_that_leave_no_kv_cache() -> None:
    found = _refusals(adapter_memory_fraction=0.5, cuda_memory_fraction=0.5)
    assert "adapter_memory_fraction < cuda_memory_fraction" in found["--adapter-memory-fraction"]
    assert "dist.py" in found["--adapter-memory-fraction"]  # the contract's source


def test_kv_cache_smaller_than_one_full_length_request() -> None:
    """Llama-3.1-8B on one A10G: LoRAX's warm-up allocates KV for its two requests decoding to 64k tokens
    (2 x 8 GiB) first, so it runs out of memory; TGI 1.0's (2 new tokens) passes and infers too few tokens."""
    long = dict(
        model="meta-llama/Llama-3.1-8B-Instruct", instance="g5.2xlarge", adapters="0x16", cuda_graphs="off",
        max_total_tokens=65536, max_input_length=1024,
    )  # fmt: skip
    assert "the warm-up batch's KV (16.0 GiB" in _refusals(**long)["--max-batch-prefill-tokens"]
    found = _refusals(**long, engine="tgi-1.0")
    assert "less than one request of --max-total-tokens 65,536" in found["--max-total-tokens"]


def test_tgi_0_9_total_that_does_not_fit_beside_its_warmup() -> None:
    from test_plan_engine import SEVENTY_ON_A10G

    found = _refusals(**SEVENTY_ON_A10G, engine="tgi-0.9", max_batch_total_tokens=100_000)
    assert "allocates the KV cache for all 100,000 tokens" in found["--max-batch-total-tokens"]
    assert "16000" not in found["--max-batch-total-tokens"]
    plan(request(**SEVENTY_ON_A10G, engine="tgi-0.9", max_batch_total_tokens=16_000))


def test_tgi_0_9_total_below_one_request_or_the_prefill() -> None:
    from test_plan_engine import SEVENTY_ON_A10G

    found = _refusals(**SEVENTY_ON_A10G, engine="tgi-0.9", max_batch_total_tokens=4000)
    assert "4,096 > --max-batch-total-tokens 4,000" in found["--max-total-tokens"]
    assert "4,096 > --max-batch-total-tokens 4,000" in found["--max-batch-prefill-tokens"]


def test_max_batch_total_tokens_only_for_the_engine_that_does_not_infer_it() -> None:
    with pytest.raises(ValueError, match="infers it at warm-up"):
        plan(request(max_batch_total_tokens=16_000))
