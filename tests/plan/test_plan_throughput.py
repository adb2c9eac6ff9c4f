"""Speed comes from the simulator's profile, scaled by the bytes a decode step reads."""

from __future__ import annotations

import pytest
from plan_helpers import request

from loraxkit.plan.api import plan
from loraxkit.plan.throughput import decode_step_ms
from loraxkit.sim.profiles import KV_BYTES_PER_TOKEN, PROFILES, WEIGHT_BYTES_8B


def test_an_8b_shaped_model_gets_the_profiles_own_step() -> None:
    profile = PROFILES["l40s-8b-bf16"]
    ours = decode_step_ms(profile, WEIGHT_BYTES_8B, KV_BYTES_PER_TOKEN, 64, 8, 64 * 1536)
    assert ours == pytest.approx(profile.decode_step_ms(64, 8, 64 * 1536))


def test_more_bytes_per_gpu_is_slower_and_quantized_weights_are_faster() -> None:
    profile = PROFILES["a10g-8b-bf16"]
    base = decode_step_ms(profile, WEIGHT_BYTES_8B, KV_BYTES_PER_TOKEN, 16, 1, 16 * 1024)
    assert decode_step_ms(profile, 2 * WEIGHT_BYTES_8B, KV_BYTES_PER_TOKEN, 16, 1, 16 * 1024) > base
    assert decode_step_ms(profile, WEIGHT_BYTES_8B // 4, KV_BYTES_PER_TOKEN, 16, 1, 16 * 1024) < base


def test_cost_per_million_tokens_is_the_hourly_price_over_tokens_per_hour() -> None:
    result = plan(request())
    speed = result.speed
    assert speed is not None and result.placement.instance is not None
    assert speed.usd_per_hour == result.placement.instance.usd_per_hour
    assert speed.tokens_per_s == pytest.approx(speed.batch * 1000 / speed.step_ms)
    assert speed.usd_per_million_output_tokens == pytest.approx(
        speed.usd_per_hour / (speed.tokens_per_s * 3.6e-3)
    )
    assert speed.batch == result.plan.requests_at_typical


def test_a_gpu_without_a_profile_says_so() -> None:
    result = plan(
        request(model="meta-llama/Llama-3.1-70B-Instruct", instance="p4d.24xlarge", adapters="8x16")
    )
    assert result.speed is None and "no simulator profile" in result.speed_note
