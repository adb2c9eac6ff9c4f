"""GPU facts the planner needs beyond the instance table: the memory PyTorch sees, and the simulator profile.

LoRAX sizes everything from `torch.cuda.get_device_properties(...).total_memory` and `mem_get_info`
(flash_causal_lm.py l.1268, utils/import_utils.py l.13-17 at v0.12.1), which is less than the GB on the
datasheet and less than nvidia-smi's total. The figures below are what PyTorch printed in users' published
out-of-memory messages ("GPU 0 has a total capacity of N GiB"), each with its source. nvidia-smi totals:
modal-labs/modal-client#2797.
"""

from __future__ import annotations

from dataclasses import dataclass

from loraxkit.eks import instance_types
from loraxkit.sim.profiles import PROFILES, Profile

GIB = 1024**3


@dataclass(frozen=True)
class Gpu:
    model: str  # as the instance table names it
    torch_total_gib: float
    nvidia_smi_mib: int
    source: str
    sim_profile: str | None  # loraxkit.sim profile for this GPU, None when the simulator has none
    compute_capability: tuple[int, int] = (8, 0)  # NVIDIA's CUDA GPUs list (developer.nvidia.com/cuda-gpus)

    @property
    def total_bytes(self) -> int:
        return int(self.torch_total_gib * GIB)

    def profile(self) -> Profile | None:
        return PROFILES[self.sim_profile] if self.sim_profile else None


_SMI = "nvidia-smi totals: github.com/modal-labs/modal-client/pull/2797"
GPUS: dict[str, Gpu] = {
    g.model: g
    for g in (
        Gpu("NVIDIA L40S", 44.53, 46068,
            f"torch: github.com/Wan-Video/Wan2.1/issues/205 (L40S 48GB); {_SMI}", "l40s-8b-bf16", (8, 9)),
        Gpu("NVIDIA A10G", 21.99, 23028,
            f"torch: github.com/zai-org/CogVLM/issues/236 (A10, same 23,028 MiB board memory); {_SMI}",
            "a10g-8b-bf16", (8, 6)),
        # No published torch figure found for the L4: nvidia-smi's 22.49 GiB less the 0.5 GiB that torch
        # reports below nvidia-smi on the A10 (22.49 -> 21.99) and the L40S (44.99 -> 44.53).
        Gpu("NVIDIA L4", 21.99, 23034, f"torch: estimated from nvidia-smi (no published figure); {_SMI}",
            "l4-8b-bf16", (8, 9)),
        Gpu("NVIDIA A100", 39.39, 40960,
            "torch: github.com/huggingface/text-generation-inference/issues/1374 (A100 40GB); " + _SMI,
            None, (8, 0)),
        Gpu("NVIDIA A100 80GB", 79.14, 81920,
            f"torch: github.com/lianqi1008/Control-GIC/issues/6 (A100 80GB); {_SMI}", "a100-80gb-8b-bf16",
            (8, 0)),
        Gpu("NVIDIA H100", 79.11, 81559,
            f"torch: github.com/vllm-project/vllm/issues/27508 (H100 80GB); {_SMI}", "h100-8b-bf16", (9, 0)),
    )
}  # fmt: skip

# --gpu names a user can pass without an instance type.
GPU_ALIASES = {
    "l40s": "NVIDIA L40S", "a10g": "NVIDIA A10G", "l4": "NVIDIA L4", "a100-40gb": "NVIDIA A100",
    "a100-80gb": "NVIDIA A100 80GB", "h100": "NVIDIA H100",
}  # fmt: skip


@dataclass(frozen=True)
class Placement:
    """Where the model runs: a GPU type, how many of them, and the instance that holds them (if known)."""

    gpu: Gpu
    gpu_count: int
    instance: instance_types.InstanceType | None

    @property
    def usd_per_hour(self) -> float | None:
        return self.instance.usd_per_hour if self.instance else None


def for_instance(name: str) -> Placement:
    row = instance_types.lookup(name)
    if row.gpu_count == 0:
        raise ValueError(f"--instance {name}: a CPU-only type; pick a GPU type (g5, g6, g6e, p4d, p5)")
    return Placement(gpu_for_model(row.gpu_model), row.gpu_count, row)


def for_gpu(name: str, count: int) -> Placement:
    key = GPU_ALIASES.get(name.lower(), name)
    return Placement(gpu_for_model(key), count, None)


def gpu_for_model(model: str) -> Gpu:
    try:
        return GPUS[model]
    except KeyError:
        raise ValueError(
            f"GPU {model!r} has no memory figure in loraxkit.plan.gpus (known: {', '.join(GPU_ALIASES)}); "
            "add its torch-visible total with a source"
        ) from None
