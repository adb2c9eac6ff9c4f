"""LoRA adapters in LoRAX's budget: how big one is, and how many the reservation admits.

LoRAX v0.12.1 charges each adapter its safetensors size over the reservation (`adapter_memory_fraction` x
the whole GPU of shard 0; server/lorax_server/utils/adapter.py l.214-228, sharded_client.rs l.190-193
downloads on shard 0 only) and refuses an adapter larger than the reservation (l.221-225). The router
activates adapters while their summed cost stays <= 1.0 (router/src/queue.rs l.410-436), up to
`--max-active-adapters`. Sharding does not stretch the reservation: the cost is the whole file's bytes.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from loraxkit.plan.models import ALL_LINEAR, ModelConfig

_SPEC = re.compile(r"^(\d+)x(\d+)$")


@dataclass(frozen=True)
class AdapterSpec:
    count: int  # resident at once
    rank: int
    target_modules: tuple[str, ...] = ALL_LINEAR
    bytes_per_param: int = 2  # as stored in adapter_model.safetensors: 2 for fp16/bf16, 4 for fp32

    def params(self, model: ModelConfig) -> int:
        shapes = model.linear_shapes()
        unknown = [m for m in self.target_modules if m not in shapes]
        if unknown:
            raise ValueError(
                f"--target-modules {','.join(unknown)}: not a projection of this model; "
                f"choose from {','.join(shapes)}"
            )
        return model.num_layers * sum(self.rank * (shapes[m][0] + shapes[m][1]) for m in self.target_modules)

    def bytes(self, model: ModelConfig) -> int:
        return self.params(model) * self.bytes_per_param


def parse_adapters(text: str) -> tuple[int, int]:
    """`COUNTxRANK`, e.g. `24x16`: 24 rank-16 adapters resident at once."""
    match = _SPEC.match(text.strip())
    if not match or int(match.group(1)) < 0 or int(match.group(2)) < 1:
        raise ValueError(f"--adapters {text!r}: write COUNTxRANK, e.g. 24x16 (24 resident rank-16 adapters)")
    return int(match.group(1)), int(match.group(2))


def fraction_for(count: int, adapter_bytes: int, gpu_total_bytes: int) -> float:
    """The smallest --adapter-memory-fraction, in steps of 0.01, whose reservation holds `count` adapters."""
    if count == 0:
        return 0.0
    return math.ceil(count * adapter_bytes / gpu_total_bytes * 100 - 1e-9) / 100


def adapters_that_fit(fraction: float, adapter_bytes: int, gpu_total_bytes: int) -> int:
    return int(fraction * gpu_total_bytes // adapter_bytes)
