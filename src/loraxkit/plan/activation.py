"""The warm-up peak that LoRAX's free-memory reading counts as used: an ESTIMATE, not a measurement.

LoRAX (like TGI) does not compute activation memory: it runs a warm-up batch of `max_batch_prefill_tokens`
prompt tokens and reads `mem_get_info`; whatever the PyTorch caching allocator kept from that peak is gone
from the KV cache. The planner estimates the peak of a flash-attention prefill of P tokens per GPU (world
size W, model dtype 2 bytes) from the tensors the code allocates, plus two fitted terms:

* logits (read from the code): the warm-up asks for prompt log-probs (router/client/src/client.rs l.188
  `prefill_logprobs: true` at v0.12.1), so the LM head runs on all P tokens: P x vocab x 2 B; sharded, the
  per-shard slice and the all-gathered full-vocabulary output both exist (layers/tensor_parallel.py
  l.60-73); an out-of-place log-softmax (TGI <= 2.0) keeps one more P x vocab copy;
* one decoder layer's MLP (read from the code): gate/up output, activation and product, 4 x P x
  intermediate / W, plus residual and hidden states, 2 x P x hidden, 2 B each;
* fitted: `HIDDEN_COPIES` more P x hidden x 2 B tensors (norm outputs, rotary q/k, attention output,
  allocator rounding of the layer's blocks, which the caching allocator keeps separate from the logits'
  larger segments) and a constant `FIXED_BYTES` (CUDA context, cuBLAS/flash workspaces); both fitted by least
  squares to the published launcher figures with known limits (`published.fit_activation`, checked by a
  test; docs/plan.md gives each case's leave-one-out error);
* NCCL's communicator buffers when sharded (`NCCL_BYTES`, an assumption: no published figure isolates it).
"""

from __future__ import annotations

from dataclasses import dataclass

from loraxkit.plan.models import ModelConfig

MIB = 1024**2
# Fitted on published.CALIBRATION (tests/plan/test_plan_published.py refits and compares).
HIDDEN_COPIES = 9.72
FIXED_BYTES = 1221 * MIB
NCCL_BYTES = 400 * MIB


@dataclass(frozen=True)
class ActivationEstimate:
    prefill_tokens: int
    logits_bytes: int
    layer_bytes: int
    fitted_bytes: int
    overhead_bytes: int  # fixed + NCCL: present even for a 1-token warm-up

    @property
    def peak_bytes(self) -> int:
        return self.logits_bytes + self.layer_bytes + self.fitted_bytes + self.overhead_bytes

    @property
    def basis(self) -> str:
        gib = 1024**3
        return (
            f"estimate for a {self.prefill_tokens:,}-token warm-up prefill:"
            f" logits {self.logits_bytes / gib:.2f}"
            f" + MLP layer {self.layer_bytes / gib:.2f} + fitted {self.fitted_bytes / gib:.2f}"
            f" + fixed {self.overhead_bytes / gib:.2f} GiB"
        )


def estimate(
    model: ModelConfig,
    prefill_tokens: int,
    world_size: int,
    log_softmax_in_place: bool = True,
    dtype_bytes: int = 2,
    terms: tuple[float, float] | None = None,
) -> ActivationEstimate:
    """`terms` overrides the fitted (hidden copies, fixed bytes), e.g. for a leave-one-out check."""
    hidden_copies, fixed_bytes = terms or (HIDDEN_COPIES, FIXED_BYTES)
    p, w = prefill_tokens, world_size
    full = p * model.vocab_size * dtype_bytes
    logits = full + (full // w if w > 1 else 0) + (0 if log_softmax_in_place else full)
    layer = p * dtype_bytes * (2 * model.hidden_size + 4 * model.intermediate_size // w)
    fitted = int(hidden_copies * p * model.hidden_size * dtype_bytes)
    overhead = int(fixed_bytes) + (NCCL_BYTES if w > 1 else 0)
    return ActivationEstimate(p, logits, layer, fitted, overhead)
