"""Performance profiles: how long a prefill or a decode step takes on a given GPU for an 8B bf16 model.

Source: measured step costs of a Llama-3.1-8B-shaped decoder on one H100 80GB HBM3 and one H200
(rank-16 LoRA on q/k/v/o, SGMV-style; CUDA-graph decode; see docs/simulator.md "Profiles"). Other GPUs are
scaled from the H100 figures by datasheet memory bandwidth (decode) and dense bf16 tensor throughput
(prefill), keeping the H100's measured efficiency. No step of any profile may be faster than its GPU's
memory-bandwidth bound: reading the weights once, plus the KV cache of the batch in a decode step, at full
datasheet bandwidth (`Profile.check_roofline`, run for every profile when this module loads).
"""

from __future__ import annotations

import bisect
import itertools
import math
from dataclasses import dataclass, field

# Bytes read per decode step regardless of batch: the bf16 weights of Llama-3.1-8B (8.03 G params).
WEIGHT_BYTES_8B = 16.06e9
# KV cache per token of context: 32 layers x 8 KV heads x 128 dims x 2 (K,V) x 2 bytes (same for Mistral-7B).
KV_BYTES_PER_TOKEN = 131072

# H100 80GB HBM3 measurements, context C = 1024 (gpu-calibration/h100-80gb-hbm3.jsonl).
H100_BATCH = (1, 4, 16, 32, 64, 128, 256)
H100_BASE_MS = (6.572, 6.796, 7.37, 8.041, 9.618, 12.995, 19.702)
H100_LORA1_MS = (7.997, 8.436, 8.92, 9.67, 11.281, 14.74, 21.621)
H200_BASE_MS = (4.98, 5.28, 5.63, 6.16, 7.23, 10.69, 15.31)
H200_LORA1_MS = (6.40, 6.80, 7.20, 7.82, 8.90, 12.42, 17.17)
# Extra ms per extra position of KV read, from the C=4096 vs C=1024 rows (B=16 and B=64 agree).
H100_KV_MS_PER_TOKEN = (17.895 - 9.618) / (64 * 3072)
H200_KV_MS_PER_TOKEN = (12.80 - 7.23) / (64 * 3072)
# Each doubling of distinct adapters in a batch adds this much
# (B=64: D=64 vs D=1 is +1.0 ms over 6 doublings).
H100_LORA_PER_DOUBLING_MS = (12.29 - 11.281) / 6
H200_LORA_PER_DOUBLING_MS = (9.87 - 8.90) / 6
# Prefill of one sequence of T tokens.
PREFILL_T = (128, 512, 2048, 8192)
H100_PREFILL_MS = (8.711, 13.739, 51.514, 232.876)
H200_PREFILL_MS = (7.2, 13.7, 52.4, 232.2)

# Where check_roofline looks: batch sizes and context lengths per sequence.
ROOFLINE_BATCHES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
ROOFLINE_CONTEXTS = (1, 16, 128, 1024, 4096, 32768)

H100_BANDWIDTH_TBS = 3.35
H100_BF16_DENSE_TFLOPS = 989.0


def _interp(xs: tuple[float, ...], ys: tuple[float, ...], x: float) -> float:
    """Piecewise-linear, extrapolating linearly past both ends."""
    if x <= xs[0]:
        i = 0
    elif x >= xs[-1]:
        i = len(xs) - 2
    else:
        i = bisect.bisect_right(xs, x) - 1
    x0, x1, y0, y1 = xs[i], xs[i + 1], ys[i], ys[i + 1]
    return y0 + (y1 - y0) * (x - x0) / (x1 - x0)


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    source: str
    bandwidth_tbs: float
    base_ms: tuple[float, ...] = H100_BASE_MS
    lora1_ms: tuple[float, ...] = H100_LORA1_MS
    kv_ms_per_token: float = H100_KV_MS_PER_TOKEN
    lora_per_doubling_ms: float = H100_LORA_PER_DOUBLING_MS
    prefill_ms: tuple[float, ...] = H100_PREFILL_MS
    decode_scale: float = 1.0
    prefill_scale: float = 1.0
    # Router limits this GPU would get from LoRAX's warm-up (KV memory) and launcher defaults.
    max_batch_total_tokens: int = 100_000
    # None: LoRAX's launcher default, max_input_length + 50.
    max_batch_prefill_tokens: int | None = None
    adapter_load_ms: float = 800.0
    # Synthetic profiles: fixed costs, no batch dependence.
    fixed_decode_ms: float | None = None
    fixed_prefill_ms: float | None = None
    memory_gb: float = 80.0
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def synthetic(self) -> bool:
        return self.fixed_decode_ms is not None

    def decode_step_ms(self, batch: int, distinct_adapters: int, context_tokens: int) -> float:
        """One decode step for `batch` sequences holding `context_tokens` KV positions in total."""
        if self.fixed_decode_ms is not None:
            return self.fixed_decode_ms
        b = max(batch, 1)
        base_at_1024 = _interp(H100_BATCH, self.base_ms, b)
        weights_and_compute = base_at_1024 - self.kv_ms_per_token * b * 1024
        ms = weights_and_compute + self.kv_ms_per_token * context_tokens
        if distinct_adapters > 0:
            ms += _interp(H100_BATCH, self.lora1_ms, b) - base_at_1024
            ms += self.lora_per_doubling_ms * math.log2(distinct_adapters)
        return ms * self.decode_scale

    def prefill_step_ms(self, tokens: int, distinct_adapters: int = 0) -> float:
        """A prefill of `tokens` prompt tokens in total (compute-bound, so batching does not amortise it)."""
        if self.fixed_prefill_ms is not None:
            return self.fixed_prefill_ms
        ms = _interp(PREFILL_T, self.prefill_ms, max(tokens, 1))
        ms = max(ms, self.prefill_ms[0] * tokens / PREFILL_T[0]) if tokens < PREFILL_T[0] else ms
        if distinct_adapters > 0:
            ms += (self.lora1_ms[0] - self.base_ms[0]) + self.lora_per_doubling_ms * math.log2(
                distinct_adapters
            )
        return ms * self.prefill_scale

    def roofline_ms(self, context_tokens: int = 0) -> float:
        """Reading the weights once, and `context_tokens` KV positions, at full datasheet bandwidth: no step
        can be faster."""
        if self.synthetic:
            return 0.0
        return (WEIGHT_BYTES_8B + KV_BYTES_PER_TOKEN * context_tokens) / (self.bandwidth_tbs * 1e12) * 1e3

    def check_roofline(self) -> None:
        """Raise ValueError if any decode step (batch 1-1024, 0-256 distinct adapters, 1-32k context per
        sequence) or prefill (1-32k tokens) beats the memory-bandwidth bound."""
        if self.synthetic:
            return
        for batch, context, adapters in itertools.product(ROOFLINE_BATCHES, ROOFLINE_CONTEXTS, (0, 1, 256)):
            step, bound = (
                self.decode_step_ms(batch, adapters, batch * context),
                self.roofline_ms(batch * context),
            )
            if step < bound:
                raise ValueError(
                    f"profile {self.name}: decode step at batch {batch}, {context} context, {adapters} "
                    f"adapters takes {step:.2f} ms, faster than the memory-bandwidth bound {bound:.2f} ms"
                )
        for tokens in ROOFLINE_CONTEXTS:
            step, bound = self.prefill_step_ms(tokens), self.roofline_ms()
            if step < bound:
                raise ValueError(
                    f"profile {self.name}: prefill of {tokens} tokens takes {step:.2f} ms, faster than the "
                    f"memory-bandwidth bound {bound:.2f} ms"
                )


def _kv_capacity_tokens(memory_gb: float) -> int:
    # LoRAX: memory_wiggle_room 0.9, adapter_memory_fraction 0.1, weights 16 GB; the rest holds KV.
    free = memory_gb * 1e9 * 0.9 - WEIGHT_BYTES_8B - memory_gb * 1e9 * 0.1
    return int(free / KV_BYTES_PER_TOKEN)


def _scaled(name: str, gpu: str, bandwidth_tbs: float, tflops: float, memory_gb: float) -> Profile:
    return Profile(
        name=name,
        description=f"{gpu}, 8B model in bf16 (scaled from H100 measurements)",
        source=(
            f"H100 measurements scaled by datasheet bandwidth {bandwidth_tbs} TB/s (decode) and dense bf16 "
            f"{tflops:g} TFLOP/s (prefill), H100: {H100_BANDWIDTH_TBS} TB/s, {H100_BF16_DENSE_TFLOPS:g}"
        ),
        bandwidth_tbs=bandwidth_tbs,
        decode_scale=H100_BANDWIDTH_TBS / bandwidth_tbs,
        prefill_scale=H100_BF16_DENSE_TFLOPS / tflops,
        max_batch_total_tokens=_kv_capacity_tokens(memory_gb),
        memory_gb=memory_gb,
    )


PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile(
            name="h100-8b-bf16",
            description="H100 80GB HBM3 (p5), 8B model in bf16 (measured)",
            source="measured: gpu-calibration/h100-80gb-hbm3.jsonl (Llama-3.1-8B shapes, rank-16 LoRA)",
            bandwidth_tbs=H100_BANDWIDTH_TBS,
            max_batch_total_tokens=_kv_capacity_tokens(80),
        ),
        Profile(
            name="h200-8b-bf16",
            description="H200 141GB (p5e/p5en), 8B model in bf16 (measured)",
            source="measured: gpu-calibration/h200.jsonl (Llama-3.1-8B shapes, rank-16 LoRA)",
            bandwidth_tbs=4.8,
            base_ms=H200_BASE_MS,
            lora1_ms=H200_LORA1_MS,
            kv_ms_per_token=H200_KV_MS_PER_TOKEN,
            lora_per_doubling_ms=H200_LORA_PER_DOUBLING_MS,
            prefill_ms=H200_PREFILL_MS,
            max_batch_total_tokens=_kv_capacity_tokens(141),
            memory_gb=141,
        ),
        _scaled("a100-80gb-8b-bf16", "A100 80GB SXM (p4de)", 2.039, 312, 80),
        _scaled("l40s-8b-bf16", "L40S 48GB (g6e)", 0.864, 362, 48),
        _scaled("a10g-8b-bf16", "A10G 24GB (g5)", 0.600, 125, 24),
        _scaled("l4-8b-bf16", "L4 24GB (g6)", 0.300, 121, 24),
        Profile(
            name="synthetic",
            description="fixed per-token decode time and prefill time; batch budgets that never bind",
            source="none: set by --decode-ms / --prefill-ms (for tests and benchmarks)",
            bandwidth_tbs=1.0,
            fixed_decode_ms=20.0,
            fixed_prefill_ms=5.0,
            max_batch_total_tokens=2**31 - 1,
            max_batch_prefill_tokens=2**31 - 1,
            adapter_load_ms=50.0,
        ),
    )
}


def _check_profiles() -> None:
    for profile in PROFILES.values():
        profile.check_roofline()


_check_profiles()  # a profile faster than its GPU's memory bandwidth allows must not load

DEFAULT_PROFILE = "h100-8b-bf16"


def get_profile(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown profile {name!r}; choose one of: {', '.join(PROFILES)}") from None
