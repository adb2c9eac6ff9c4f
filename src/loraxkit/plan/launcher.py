"""The launcher facts the planner uses, read from the chart's launcher contract.

`charts/lorax/files/launcher-contract.yaml` (through `loraxkit.chart.launcher`) is the project's one
description of the pinned `lorax-launcher`: the chart's templates, its tests and this planner all read it, so
an image bump that changes a default changes the planner too.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from loraxkit.chart.launcher import load_contract


@dataclass(frozen=True)
class LauncherDefaults:
    tag: str
    max_position_cap: int  # max_position_embeddings above this (or unknown) becomes this
    prefill_over_input: int  # max_batch_prefill_tokens = max_input_length + this
    adapter_memory_fraction: float
    max_concurrent_requests: int
    compile_not_sharded: str  # the shard's refusal of CUDA graphs with more than one shard, and its source
    memory_fractions: str  # the rule on --cuda-memory-fraction and --adapter-memory-fraction, and its source


@cache
def launcher_defaults() -> LauncherDefaults:
    contract = load_contract()
    rules = {r["id"]: r for r in contract.data["relations"]}
    compile_rule, fractions = rules["compile-not-sharded"], rules["memory-fractions"]
    return LauncherDefaults(
        tag=contract.tag,
        max_position_cap=contract.position_cap,
        prefill_over_input=contract.prefill_margin,
        adapter_memory_fraction=float(contract.args["adapter-memory-fraction"].default),
        max_concurrent_requests=int(contract.args["max-concurrent-requests"].default),
        compile_not_sharded=f"'{compile_rule['message']}' ({compile_rule['source']} at v{contract.tag})",
        memory_fractions=f"{fractions['rule']} ({fractions['source']} at v{contract.tag})",
    )
