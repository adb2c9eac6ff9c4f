"""The GPU memory figures agree with the instance table (the one copy of GPUs per instance and their size)."""

from __future__ import annotations

import pytest

from loraxkit.eks.instance_types import INSTANCE_TYPES
from loraxkit.plan.gpus import GPUS, for_instance

GPU_TYPES = sorted({t.name for t in INSTANCE_TYPES.values() if t.gpu_count})


@pytest.mark.parametrize("name", GPU_TYPES)
def test_every_gpu_instance_has_a_memory_figure_that_matches_its_size(name: str) -> None:
    placement = for_instance(name)
    row = INSTANCE_TYPES[name]
    assert placement.gpu_count == row.gpu_count
    smi_bytes = placement.gpu.nvidia_smi_mib * 1024**2
    # nvidia-smi's total lies between the datasheet size in GB and in GiB (46,068 MiB = 48.3 GB for a "48 GB"
    # L40S; 40,960 MiB = 40 GiB for a "40 GB" A100), so a GPU mapped to the wrong row fails ...
    nominal = row.gpu_memory_gib
    assert 0.98 * nominal * 1e9 <= smi_bytes <= 1.01 * nominal * 1024**3, (name, smi_bytes, nominal)
    # ... and PyTorch sees a little less (the driver's reservation), never more.
    assert 0.95 * smi_bytes < placement.gpu.total_bytes < smi_bytes


def test_each_figure_names_its_source() -> None:
    assert all("github.com/" in g.source for g in GPUS.values())
