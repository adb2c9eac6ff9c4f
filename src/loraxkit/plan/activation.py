"""The warm-up peak that LoRAX's free-memory reading counts as used: an ESTIMATE, not a measurement.

LoRAX (like TGI) does not compute activation memory: it runs a warm-up batch of `max_batch_prefill_tokens`
prompt tokens and reads `mem_get_info`; whatever the PyTorch caching allocator kept from that peak is gone
from the KV cache. The planner estimates the peak from the tensors a flash-attention prefill of P tokens
holds at once, per GPU (world size W, model dtype 2 bytes):

* logits: the warm-up asks for prompt log-probs (router/client/src/client.rs l.188 `prefill_logprobs: true`
  at v0.12.1), so the LM head runs on all P tokens and its logits are all-gathered to the full vocabulary
  V on every shard: P x V x 2 B, plus the float32 log-softmax over them, P x V x 4 B;
* a decoder layer: residual and hidden states (2 x P x hidden) and the MLP's gate/up output and activation
  (3 x P x intermediate / W), 2 B each;
* the larger of the two (the allocator reuses the layer's freed blocks for the logits), plus a fixed
  non-PyTorch overhead: CUDA context, cuBLAS/flash workspaces and allocator rounding, one constant
  calibrated on the published TGI figures in `published.py` (docs/plan.md gives its spread), and NCCL's
  buffers when sharded.
"""

from __future__ import annotations

from dataclasses import dataclass

from loraxkit.plan.models import ModelConfig

MIB = 1024**2
# Calibrated: the median residual of the published figures (docs/plan.md, "Activation estimate").
NON_TORCH_BYTES = 900 * MIB
# NCCL communicator buffers per GPU when sharded (4 MiB buffers x channels x peers, rounded up).
NCCL_BYTES = 400 * MIB


@dataclass(frozen=True)
class ActivationEstimate:
    prefill_tokens: int
    logits_bytes: int
    layer_bytes: int
    overhead_bytes: int

    @property
    def peak_bytes(self) -> int:
        return max(self.logits_bytes, self.layer_bytes) + self.overhead_bytes

    @property
    def basis(self) -> str:
        part = "logits" if self.logits_bytes >= self.layer_bytes else "one decoder layer"
        return (
            f"estimate: {part} of a {self.prefill_tokens:,}-token warm-up prefill "
            f"({_gib(max(self.logits_bytes, self.layer_bytes))}) + non-PyTorch overhead "
            f"({_gib(self.overhead_bytes)})"
        )


def _gib(n: float) -> str:
    return f"{n / 1024**3:.2f} GiB"


def estimate(
    model: ModelConfig, prefill_tokens: int, world_size: int, dtype_bytes: int = 2
) -> ActivationEstimate:
    p = prefill_tokens
    logits = p * model.vocab_size * (dtype_bytes + 4)
    layer = p * dtype_bytes * (2 * model.hidden_size + 3 * model.intermediate_size // world_size)
    overhead = NON_TORCH_BYTES + (NCCL_BYTES if world_size > 1 else 0)
    return ActivationEstimate(p, logits, layer, overhead)
