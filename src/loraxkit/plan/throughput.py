"""Decode speed and cost from the simulator's GPU profile (`loraxkit.sim.profiles`, the one source).

The profiles hold measured (H100, H200) or bandwidth-scaled step costs of an 8B bf16 model with rank-16 LoRA
on q/k/v/o. The planner scales a step to the planned model by the bytes a decode step reads per GPU:
the 8B step's weight-bound part (its batch-1, zero-context step) times this model's weight bytes per GPU
over the 8B's, and the KV part by this model's KV bytes per token per GPU over the 8B's. Not modelled:
tensor-parallel all-reduce time, dequantization cost of quantized kernels, MoE routing.
"""

from __future__ import annotations

from dataclasses import dataclass

from loraxkit.sim.profiles import KV_BYTES_PER_TOKEN, WEIGHT_BYTES_8B, Profile


@dataclass(frozen=True)
class Throughput:
    profile: str
    batch: int
    distinct_adapters: int
    step_ms: float
    single_stream_step_ms: float
    usd_per_hour: float | None

    @property
    def tokens_per_s(self) -> float:
        return self.batch * 1000 / self.step_ms

    @property
    def usd_per_million_output_tokens(self) -> float | None:
        if self.usd_per_hour is None:
            return None
        return self.usd_per_hour / (self.tokens_per_s * 3600) * 1e6


def decode_step_ms(
    profile: Profile, weight_bytes: int, kv_bytes_per_token: int, batch: int, adapters: int, context: int
) -> float:
    """One decode step of `batch` sequences holding `context` KV positions in total, scaled to the model."""
    weight_ratio = weight_bytes / WEIGHT_BYTES_8B
    kv_positions = int(context * kv_bytes_per_token / KV_BYTES_PER_TOKEN)
    weight_bound = profile.decode_step_ms(1, 0, 0)
    return profile.decode_step_ms(batch, adapters, kv_positions) + weight_bound * (weight_ratio - 1)


def estimate(
    profile: Profile,
    weight_bytes: int,
    kv_bytes_per_token: int,
    batch: int,
    adapters: int,
    mean_context: int,
    usd_per_hour: float | None,
) -> Throughput:
    distinct = min(adapters, batch)
    step = decode_step_ms(profile, weight_bytes, kv_bytes_per_token, batch, distinct, batch * mean_context)
    single = decode_step_ms(profile, weight_bytes, kv_bytes_per_token, 1, min(adapters, 1), mean_context)
    return Throughput(profile.name, batch, distinct, step, single, usd_per_hour)
