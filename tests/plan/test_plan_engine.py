"""The engine follows LoRAX v0.12.1's warm-up formula term by term, and the TGI constants switch it."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
from plan_helpers import request

from loraxkit.plan import api
from loraxkit.plan.constants import LORAX_0_12_1, TGI_1_0, TGI_2_0
from loraxkit.plan.engine import make_plan
from loraxkit.plan.quant import weight_format


def _inputs(**changes: object):
    return api.plan_input(request(**changes))[2]


def test_max_batch_total_tokens_is_loraxs_formula() -> None:
    """blocks = floor(free x 0.95 / block bytes) + warm-up blocks; free = (1 - fraction) x total - used."""
    inp = _inputs()
    b = make_plan(inp).budget
    m = inp.model
    bytes_per_block = m.num_layers * 16 * m.num_kv_heads * m.head_dim * 2 * 2
    assert b.bytes_per_block == bytes_per_block
    warm_requests = math.ceil(inp.limits.max_prefill / inp.limits.max_input)
    warm_blocks = warm_requests * math.ceil(inp.limits.max_total / 16)
    used = b.weights + b.warmup.peak_bytes + warm_blocks * bytes_per_block
    free = b.total * (1.0 - 0.05) - used - b.graphs
    assert b.max_batch_total_tokens == (int(free * 0.95 // bytes_per_block) + warm_blocks) * 16


def test_adapter_reservation_comes_out_of_the_whole_gpu() -> None:
    small = make_plan(replace(_inputs(), adapter_fraction=0.05)).budget
    large = make_plan(replace(_inputs(), adapter_fraction=0.15)).budget
    lost = (large.adapter_reservation - small.adapter_reservation) * 0.95 / small.bytes_per_block
    assert large.adapter_reservation == int(0.15 * large.total)
    assert small.num_blocks - large.num_blocks == pytest.approx(lost, abs=1)


def test_graph_memory_only_with_compile_and_only_in_loraxs_accounting() -> None:
    on = make_plan(_inputs(cuda_graphs="on")).budget
    off = make_plan(_inputs(cuda_graphs="off")).budget
    assert off.graphs == 0 < on.graphs
    assert 3e9 <= on.graphs <= 10e9  # LoRAX docs: 3-10 GB
    tgi = make_plan(replace(_inputs(cuda_graphs="on"), engine=TGI_2_0)).budget
    assert tgi.graphs == 0  # TGI captures graphs after sizing the KV cache


def test_engine_constants_switch_the_margin() -> None:
    lorax = make_plan(replace(_inputs(), engine=LORAX_0_12_1, adapter_fraction=0.0)).budget
    tgi = make_plan(replace(_inputs(), engine=TGI_1_0, adapter_fraction=0.0)).budget
    assert lorax.wiggle_room == 0.95 and tgi.wiggle_room == 1.0
    assert tgi.num_blocks > lorax.num_blocks


def test_quantization_shrinks_weights_but_kv_stays_two_bytes() -> None:
    bf16 = make_plan(_inputs()).budget
    gptq = make_plan(_inputs(quantize="gptq")).budget
    fp8 = make_plan(_inputs(quantize="fp8")).budget
    assert gptq.weights < fp8.weights < bf16.weights
    # LoRAX budgets KV at the model dtype (2 bytes) whatever the weights (flash_causal_lm.py l.1347).
    assert fp8.bytes_per_block == gptq.bytes_per_block == bf16.bytes_per_block
    assert weight_format(None, "gptq", 4, 128).linear_bytes_per_param == pytest.approx(0.5 + (2 + 0.5) / 128)


def test_sharding_splits_weights_and_kv_heads() -> None:
    one = make_plan(
        _inputs(model="meta-llama/Llama-3.1-70B-Instruct", instance="p5.48xlarge", shards=8)
    ).budget
    four = make_plan(
        _inputs(model="meta-llama/Llama-3.1-70B-Instruct", instance="p5.48xlarge", shards=4)
    ).budget
    assert four.weights == pytest.approx(2 * one.weights, rel=1e-6)
    assert four.bytes_per_block == 2 * one.bytes_per_block


def test_requests_that_fit_count_whole_blocks() -> None:
    p = make_plan(_inputs())
    assert p.requests_at_max == p.budget.num_blocks // math.ceil(4096 / 16)
    assert p.requests_at_typical == p.budget.num_blocks // math.ceil(1536 / 16)
    assert p.requests_at_typical > p.requests_at_max


def test_adapters_fit_by_loraxs_cost_rule() -> None:
    p = make_plan(_inputs())
    # rank 16 on all 7 projections of Mistral-7B: 16 x (in + out) per projection x 32 layers x 2 bytes
    per_layer = 16 * (2 * (4096 + 4096) + 2 * (4096 + 1024) + 3 * (4096 + 14336))
    assert p.adapter_bytes == per_layer * 32 * 2
    assert p.adapters_fit == int(p.adapter_fraction * p.budget.total // p.adapter_bytes) >= 24
    assert p.adapter_fraction == 0.05  # the smallest multiple of 0.01 holding 24
    assert (p.adapter_fraction - 0.01) * p.budget.total < 24 * p.adapter_bytes


def test_sharding_does_not_stretch_the_adapter_reservation() -> None:
    """LoRAX charges the whole adapter file against one GPU's reservation (utils/adapter.py l.214-228)."""
    seventy = dict(model="meta-llama/Llama-3.1-70B-Instruct", adapters="8x16", adapter_memory_fraction=0.05)
    p = make_plan(_inputs(instance="p4d.24xlarge", **seventy))
    assert p.adapters_fit == int(0.05 * p.budget.total // p.adapter_bytes) == 5  # not 8 x 5


SEVENTY_ON_A10G = dict(
    model="meta-llama/Llama-2-70b-chat-hf", instance=None, gpu="a10g", gpus=8, dtype="float16",
    adapters="0x16", cuda_graphs="off", max_input_length=3072, max_total_tokens=4096,
    max_batch_prefill_tokens=4096,
)  # fmt: skip


def test_tgi_0_9_allocates_the_given_total_before_its_warmup_and_infers_nothing() -> None:
    """TGI v0.9.3 flash_causal_lm.py l.713-735: CacheManager(ceil(total / 16) + 10 blocks), then prefill."""
    b = make_plan(_inputs(**SEVENTY_ON_A10G, engine="tgi-0.9")).budget
    assert b.max_batch_total_tokens == 16_000  # the v0.9.3 launcher's default (main.rs l.187-188)
    assert b.num_blocks == b.kv_blocks_at_warmup == math.ceil(16_000 / 16) + 10
    kv = b.num_blocks * b.bytes_per_block
    assert b.free_after_warmup == b.usable - b.weights - b.warmup.peak_bytes - kv
    # blocks hold KV heads per shard (8 // 8 = 1), not attention heads (flash_llama.py l.72 at v0.9.3)
    assert b.bytes_per_block == 80 * 16 * 1 * 128 * 2 * 2
    more = make_plan(_inputs(**SEVENTY_ON_A10G, engine="tgi-0.9", max_batch_total_tokens=40_000)).budget
    assert more.max_batch_total_tokens == 40_000
    lost = (more.num_blocks - b.num_blocks) * b.bytes_per_block
    assert b.free_after_warmup - more.free_after_warmup == lost
    inferred = make_plan(_inputs(**SEVENTY_ON_A10G, engine="tgi-1.0")).budget
    assert inferred.fixed_total is None and inferred.max_batch_total_tokens > 16_000
