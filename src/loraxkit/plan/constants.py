"""The engine constants that differ between LoRAX and its parent TGI, so one formula reproduces both.

Every other part of the warm-up accounting is shared (free memory after a warm-up at the prefill budget,
minus the reserved fractions, times a margin, in 16-token blocks of the model's dtype); see
`../shared/reference/lorax-memory.md` and the file:line cited per constant.
"""

from __future__ import annotations

from dataclasses import dataclass

from loraxkit.plan.launcher import launcher_defaults

LORAX = "https://github.com/predibase/lorax/blob/v0.12.1"
TGI = "https://github.com/huggingface/text-generation-inference/blob"


@dataclass(frozen=True)
class EngineConstants:
    name: str
    wiggle_room: float  # multiplies the free memory before it is cut into blocks
    default_adapter_fraction: float  # of the whole GPU, reserved for adapters
    graph_memory_subtracted: bool  # CUDA-graph memory taken out before sizing the KV cache
    warmup_decodes: bool  # the warm-up decodes to max_total_tokens (else one prefill step)
    block_size: int
    source: str
    # The warm-up asks for prompt log-probs; an out-of-place log-softmax keeps a second P x vocab copy.
    log_softmax_in_place: bool = True
    # Warm-up requests ask for max_total - input new tokens (their KV blocks are added back after sizing).
    warmup_max_new_to_total: bool = True
    # False: no inference; the KV cache for the user's --max-batch-total-tokens is allocated before the
    # warm-up prefill, which must fit beside it (TGI <= 0.9.3).
    infers_total: bool = True
    # False: the warm-up reports ANY exception as "Not enough memory ..." (TGI <= 1.1.0), so a user's
    # report of that message does not by itself show that memory ran out.
    warmup_error_means_oom: bool = True


LORAX_0_12_1 = EngineConstants(
    name="lorax-0.12.1",
    wiggle_room=0.95,  # server/lorax_server/utils/dist.py l.14 (MEMORY_WIGGLE_ROOM)
    default_adapter_fraction=launcher_defaults().adapter_memory_fraction,  # the chart's launcher contract
    graph_memory_subtracted=True,  # models/flash_causal_lm.py l.1320-1352 (only with --compile)
    warmup_decodes=True,  # models/flash_causal_lm.py l.1300
    block_size=16,  # utils/state.py l.34-38
    log_softmax_in_place=True,  # models/flash_causal_lm.py l.1776
    source=f"{LORAX}/server/lorax_server/models/flash_causal_lm.py#L1271-L1386",
)
# TGI v0.9.0-v0.9.3 (v0.9.3 = 5e6ddfd6): nothing inferred. The launcher's --max-batch-total-tokens (default
# 16000, launcher/src/main.rs l.187-188) is allocated as ceil(total / 16) + 10 blocks before the warm-up
# prefill runs (flash_causal_lm.py l.713-735); KV heads per shard = num_key_value_heads // shards
# (flash_llama.py l.72, flash_llama_modeling.py l.195-197). Any exception there, memory or not, is reported
# as "Not enough memory to handle N total tokens with M prefill tokens" (l.728-732: `except Exception`).
TGI_0_9 = EngineConstants(
    name="tgi-0.9",
    wiggle_room=1.0,
    default_adapter_fraction=0.0,
    graph_memory_subtracted=False,
    warmup_decodes=False,
    block_size=16,
    source=f"{TGI}/5e6ddfd6a4fecc394255d7109f87c420c98b4e15/server/text_generation_server/models/"
    "flash_causal_lm.py#L713-L735",
    warmup_max_new_to_total=False,  # router/client/src/client.rs l.130 at v0.9.3: max_new_tokens 2
    log_softmax_in_place=False,  # flash_causal_lm.py l.879 at v0.9.3
    infers_total=False,
    warmup_error_means_oom=False,
)
# The --max-batch-total-tokens TGI <= 0.9.3 used when the user gave none (launcher/src/main.rs l.187-188).
TGI_0_9_DEFAULT_TOTAL = 16_000
# TGI v0.9.4-v1.3: no margin, prefill-only warm-up (flash_causal_lm.py v1.0.0 l.714-768).
TGI_1_0 = EngineConstants(
    name="tgi-1.0",
    wiggle_room=1.0,
    default_adapter_fraction=0.0,
    graph_memory_subtracted=False,
    warmup_decodes=False,
    block_size=16,
    source=f"{TGI}/v1.0.0/server/text_generation_server/models/flash_causal_lm.py#L714-L768",
    warmup_max_new_to_total=False,  # router/client/src/client.rs l.129 at v1.0.0: max_new_tokens 2
    log_softmax_in_place=False,  # flash_causal_lm.py l.913 at v1.0.0
    # flash_causal_lm.py l.728 at v1.0.0: `except Exception`; only OutOfMemoryError from 96a982ad (v1.1.1).
    warmup_error_means_oom=False,
)
# TGI v1.4.5-v2.2 (and v3.0): a 0.95 margin; CUDA graphs are captured after the KV cache is sized.
TGI_2_0 = EngineConstants(
    name="tgi-2.0",
    wiggle_room=0.95,
    default_adapter_fraction=0.0,
    graph_memory_subtracted=False,
    warmup_decodes=False,
    block_size=16,
    source=f"{TGI}/v2.0.0/server/text_generation_server/models/flash_causal_lm.py#L779-L801",
    log_softmax_in_place=False,  # flash_causal_lm.py l.1052 at v2.0.0
)
# TGI v2.4.0/v2.4.1: TGI_WIGGLE_ROOM defaults to 0.90 (models/globals.py l.26); the launcher picks the
# flashinfer backend by default (launcher/src/main.rs l.132 at v2.4.0): BLOCK_SIZE 1 (globals.py l.34).
TGI_2_4 = EngineConstants(
    name="tgi-2.4",
    wiggle_room=0.90,
    default_adapter_fraction=0.0,
    graph_memory_subtracted=False,
    warmup_decodes=False,
    block_size=1,
    source=f"{TGI}/v2.4.1/server/text_generation_server/models/globals.py#L26",
    log_softmax_in_place=True,  # flash_causal_lm.py l.2046 at v2.4.0
)

ENGINES: dict[str, EngineConstants] = {e.name: e for e in (LORAX_0_12_1, TGI_0_9, TGI_1_0, TGI_2_0, TGI_2_4)}
