"""The launcher facts the planner uses, read from the chart's launcher contract (issue 8's data file).

Until that contract lands, these are the same facts with their source lines at v0.12.1; `launcher_defaults`
is the one place the planner reads them, so switching to the contract is one edit here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LauncherDefaults:
    max_position_cap: int  # launcher/src/main.rs l.1610: max_position capped at 4096
    prefill_over_input: int  # l.1659: max_batch_prefill_tokens = max_input_length + 50
    adapter_memory_fraction: float  # l.527
    max_concurrent_requests: int  # 128 at 0.12.1
    compile_flag: str  # CUDA graphs are opt-in on 0.12.1


def launcher_defaults() -> LauncherDefaults:
    return LauncherDefaults(
        max_position_cap=4096,
        prefill_over_input=50,
        adapter_memory_fraction=0.1,
        max_concurrent_requests=128,
        compile_flag="--compile",
    )
