"""EC2 instance types the cluster's node groups may use: GPUs, memory, local disk and on-demand price.

Figures are AWS's published specifications (EC2 "Accelerated computing" and "General purpose" instance type
pages) and us-east-1 Linux on-demand prices, as known on the dates below. They were not re-fetched from AWS
on this machine (it cannot reach aws.amazon.com): check the AWS pricing page before you rely on a price.
"""

from __future__ import annotations

from dataclasses import dataclass

SPECS_AS_OF = "2025-10"
PRICES_AS_OF = "2025-10"
PRICE_REGION = "us-east-1"


@dataclass(frozen=True)
class InstanceType:
    name: str
    vcpus: int
    memory_gib: int
    gpu_count: int
    gpu_model: str  # "" for CPU-only types
    gpu_memory_gib: int  # per GPU
    instance_storage_gb: int  # local NVMe, decimal GB as AWS publishes it; 0 = EBS only
    accelerator_label: str  # value of k8s.amazonaws.com/accelerator; "" for CPU-only types
    usd_per_hour: float  # on-demand, Linux, PRICE_REGION, PRICES_AS_OF
    arch: str = "amd64"  # kubernetes.io/arch of the node; every type in the table is x86_64

    @property
    def total_gpu_memory_gib(self) -> int:
        return self.gpu_count * self.gpu_memory_gib


def _family(
    model: str, gpu_gib: int, label: str, rows: list[tuple[str, int, int, int, int, float]]
) -> list[InstanceType]:
    """rows: (name, vcpus, memory GiB, GPUs, instance storage GB, USD/hour)."""
    return [InstanceType(n, v, m, g, model, gpu_gib, s, label, p) for n, v, m, g, s, p in rows]


_TYPES: list[InstanceType] = [
    # g6e: NVIDIA L40S 48 GB
    *_family(
        "NVIDIA L40S",
        48,
        "nvidia-l40s",
        [
            ("g6e.xlarge", 4, 32, 1, 250, 1.861),
            ("g6e.2xlarge", 8, 64, 1, 450, 2.242),
            ("g6e.4xlarge", 16, 128, 1, 600, 3.004),
            ("g6e.8xlarge", 32, 256, 1, 900, 4.529),
            ("g6e.16xlarge", 64, 512, 1, 1900, 7.577),
            ("g6e.12xlarge", 48, 384, 4, 3800, 10.493),
            ("g6e.24xlarge", 96, 768, 4, 3800, 15.066),
            ("g6e.48xlarge", 192, 1536, 8, 7600, 30.131),
        ],
    ),
    # g5: NVIDIA A10G 24 GB
    *_family(
        "NVIDIA A10G",
        24,
        "nvidia-a10g",
        [
            ("g5.xlarge", 4, 16, 1, 250, 1.006),
            ("g5.2xlarge", 8, 32, 1, 450, 1.212),
            ("g5.4xlarge", 16, 64, 1, 600, 1.624),
            ("g5.8xlarge", 32, 128, 1, 900, 2.448),
            ("g5.16xlarge", 64, 256, 1, 1900, 4.096),
            ("g5.12xlarge", 48, 192, 4, 3800, 5.672),
            ("g5.24xlarge", 96, 384, 4, 3800, 8.144),
            ("g5.48xlarge", 192, 768, 8, 7600, 16.288),
        ],
    ),
    # g6: NVIDIA L4 24 GB
    *_family(
        "NVIDIA L4",
        24,
        "nvidia-l4",
        [
            ("g6.xlarge", 4, 16, 1, 250, 0.805),
            ("g6.2xlarge", 8, 32, 1, 450, 0.978),
            ("g6.4xlarge", 16, 64, 1, 600, 1.323),
            ("g6.12xlarge", 48, 192, 4, 3760, 4.602),
        ],
    ),
    # p4d: 8x NVIDIA A100 40 GB (price after AWS's June 2025 P4d cut, approximate)
    *_family("NVIDIA A100", 40, "nvidia-a100", [("p4d.24xlarge", 96, 1152, 8, 8000, 21.96)]),
    # p5: 8x NVIDIA H100 80 GB (price after AWS's June 2025 P5 cut, approximate)
    *_family("NVIDIA H100", 80, "nvidia-h100", [("p5.48xlarge", 192, 2048, 8, 30720, 55.04)]),
    # CPU node group (add-ons, Prometheus, load generators)
    *_family(
        "",
        0,
        "",
        [
            ("m6i.large", 2, 8, 0, 0, 0.096),
            ("m6i.xlarge", 4, 16, 0, 0, 0.192),
            ("m6i.2xlarge", 8, 32, 0, 0, 0.384),
        ],
    ),
]

INSTANCE_TYPES: dict[str, InstanceType] = {t.name: t for t in _TYPES}


def lookup(name: str) -> InstanceType:
    """The table row for `name`, or a KeyError that says how to fix it."""
    try:
        return INSTANCE_TYPES[name]
    except KeyError:
        known = ", ".join(sorted(INSTANCE_TYPES))
        raise KeyError(
            f"instance type {name!r} is not in loraxkit.eks.instance_types (known: {known}); "
            "add a row with its GPU count, GPU memory and instance storage from AWS's published specs"
        ) from None
