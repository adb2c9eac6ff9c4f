"""The planner's engine: LoRAX's own warm-up accounting, per GPU, from model, weights, GPU and limits.

LoRAX v0.12.1 (server/lorax_server/models/flash_causal_lm.py `warmup`, l.1271-1386) sizes the KV cache as:

    free       = max(0, mem_get_info_free - (1 - (CUDA_MEMORY_FRACTION - ADAPTER_MEMORY_FRACTION)) x total)
    free      -= graph_cache_memory                                    (with --compile, one GPU only)
    num_blocks = floor(free x MEMORY_WIGGLE_ROOM / bytes_per_block) + warm-up batch blocks
    max_batch_total_tokens = num_blocks x BLOCK_SIZE

with bytes_per_block = layers x 16 x KV heads per shard x head dim x 2 x dtype bytes, and mem_get_info_free
taken after a warm-up that prefilled `max_batch_prefill_tokens` and decoded to `max_total_tokens`. The
planner replaces the one thing it cannot read on this machine, the warm-up peak, with an estimate
(`activation.py`), and says so wherever it prints it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from loraxkit.plan import activation
from loraxkit.plan.adapters import AdapterSpec, adapters_that_fit, fraction_for
from loraxkit.plan.constants import LORAX_0_12_1, TGI_0_9_DEFAULT_TOTAL, EngineConstants
from loraxkit.plan.gpus import Placement
from loraxkit.plan.launcher import launcher_defaults
from loraxkit.plan.models import ModelConfig
from loraxkit.plan.quant import WeightFormat

GB = 1e9


@dataclass(frozen=True)
class Limits:
    max_input: int
    max_total: int
    max_prefill: int
    typical_input: int
    typical_output: int

    @property
    def typical_total(self) -> int:
        return self.typical_input + self.typical_output


@dataclass(frozen=True)
class PlanInput:
    model: ModelConfig
    weights: WeightFormat
    placement: Placement
    shards: int
    limits: Limits
    adapters: AdapterSpec
    adapter_fraction: float | None = None  # None: the smallest that holds adapters.count
    cuda_graphs: bool = False
    cuda_memory_fraction: float = 1.0
    engine: EngineConstants = LORAX_0_12_1
    activation_terms: tuple[float, float] | None = None  # None: activation.py's fitted constants
    # The user's --max-batch-total-tokens; read only by an engine that does not infer it (tgi-0.9), which
    # allocates exactly this KV before its warm-up (None there: that launcher's default, 16000).
    max_batch_total_tokens: int | None = None


@dataclass(frozen=True)
class Refusal:
    field: str
    reason: str
    fix: str

    def __str__(self) -> str:
        return f"{self.field}: {self.reason} Fix: {self.fix}"


class PlanRefused(ValueError):
    def __init__(self, refusals: list[Refusal]) -> None:
        self.refusals = refusals
        super().__init__("does not fit / refused:\n" + "\n".join(f"  - {r}" for r in refusals))


@dataclass(frozen=True)
class Budget:
    """One GPU's memory, the way LoRAX's warm-up divides it (bytes)."""

    total: int
    usable: int  # total x CUDA_MEMORY_FRACTION
    weights: int
    warmup: activation.ActivationEstimate
    graphs: int
    adapter_reservation: int
    warmup_kv_blocks: int
    bytes_per_block: int
    wiggle_room: float
    block_size: int
    # Engines that do not infer (TGI <= 0.9.3): the user's total, allocated before the warm-up.
    fixed_total: int | None = None

    @property
    def kv_blocks_at_warmup(self) -> int:
        """KV blocks allocated while the warm-up runs: the warm-up batch's, or (TGI <= 0.9.3) the user's
        whole --max-batch-total-tokens plus 10 blocks (flash_causal_lm.py l.720 at v0.9.3)."""
        if self.fixed_total is None:
            return self.warmup_kv_blocks
        return math.ceil(self.fixed_total / self.block_size) + 10

    @property
    def free_after_warmup(self) -> int:
        """What LoRAX's `free_memory` holds before the margin: usable minus everything counted as used."""
        used = self.weights + self.warmup.peak_bytes + self.kv_blocks_at_warmup * self.bytes_per_block
        return self.usable - self.adapter_reservation - used - self.graphs

    @property
    def margin(self) -> int:
        if self.fixed_total is not None:
            return 0
        return int(max(self.free_after_warmup, 0) * (1 - self.wiggle_room))

    @property
    def num_blocks(self) -> int:
        if self.fixed_total is not None:
            return self.kv_blocks_at_warmup
        free = max(self.free_after_warmup, 0)
        return int((free * self.wiggle_room) // self.bytes_per_block) + self.warmup_kv_blocks

    @property
    def max_batch_total_tokens(self) -> int:
        if self.fixed_total is not None:
            return self.fixed_total  # the router batches to the user's value (router/src/main.rs)
        return self.num_blocks * self.block_size

    @property
    def kv_bytes(self) -> int:
        return self.num_blocks * self.bytes_per_block


@dataclass(frozen=True)
class Plan:
    inputs: PlanInput
    budget: Budget
    adapter_bytes: int
    adapter_fraction: float
    adapters_fit: int
    warnings: list[str] = field(default_factory=list)

    @property
    def max_batch_total_tokens(self) -> int:
        return self.budget.max_batch_total_tokens

    def requests_at(self, tokens_per_request: int) -> int:
        """Requests whose KV fits at once, each holding `tokens_per_request` positions in whole blocks."""
        block = self.budget.block_size
        return self.budget.num_blocks // math.ceil(tokens_per_request / block)

    @property
    def requests_at_max(self) -> int:
        return self.requests_at(self.inputs.limits.max_total)

    @property
    def requests_at_typical(self) -> int:
        return self.requests_at(self.inputs.limits.typical_total)


def weights_per_gpu(model: ModelConfig, weights: WeightFormat, shards: int) -> int:
    """Every tensor is split over the shards (LoRAX shards embeddings and the LM head too)."""
    linear = model.linear_params * weights.linear_bytes_per_param
    sixteen_bit = (model.embedding_params + model.other_params) * 2
    return int((linear + sixteen_bit) / shards)


def graph_memory_estimate(weight_bytes: int) -> int:
    """ESTIMATE. LoRAX measures it at warm-up (utils/graph.py l.498-553); its docs give '3-10GB depending on
    model size' (docs/guides/cuda_graphs.md l.15). Scaled from 3 GB at a 7B model's 14.5 GB of weights."""
    return int(min(max(3 * GB * weight_bytes / (14.5 * GB), 3 * GB), 10 * GB))


def refusals(inp: PlanInput) -> list[Refusal]:
    """Configurations LoRAX would refuse or could not run, each with its source and the fix."""
    found: list[Refusal] = []
    m, w, lim = inp.model, inp.shards, inp.limits
    gpus = inp.placement.gpu_count
    if w < 1 or w > gpus:
        found.append(Refusal("--shards", f"{w} shards on {gpus} GPU(s).", f"use 1..{gpus} shards"))
    if w > 1 and (m.num_heads % w or (m.num_kv_heads > 1 and m.num_kv_heads % w)):
        divisors = [d for d in range(1, gpus + 1) if m.num_heads % d == 0 and m.num_kv_heads % d == 0]
        found.append(
            Refusal(
                "--shards",
                f"{w} shards do not divide the model's {m.num_heads} attention / {m.num_kv_heads} KV heads "
                f"(LoRAX shards heads evenly: flash_llama_modeling.py l.249-255 at v0.12.1).",
                f"use --shards {' or '.join(map(str, divisors))}",
            )
        )
    limit = m.position_limit()
    if lim.max_total > limit:
        what = (
            f"its {m.sliding_window:,}-token sliding window"
            if m.sliding_window and m.sliding_window < m.max_position_embeddings
            else f"its position limit (max_position_embeddings {m.max_position_embeddings:,})"
        )
        found.append(
            Refusal(
                "--max-total-tokens",
                f"{lim.max_total:,} is beyond {what} for {m.model_id}.",
                f"use --max-total-tokens <= {limit:,}",
            )
        )
    if not 0 < lim.max_input < lim.max_total:
        found.append(Refusal("--max-input-length", "must be > 0 and < --max-total-tokens.", "lower it"))
    if lim.max_prefill < lim.max_input:
        found.append(
            Refusal(
                "--max-batch-prefill-tokens",
                f"{lim.max_prefill:,} < --max-input-length {lim.max_input:,} (router/src/main.rs l.435).",
                f"use --max-batch-prefill-tokens >= {lim.max_input}",
            )
        )
    quantize = inp.weights.quantize or ""
    if quantize.startswith("fp8") and inp.placement.gpu.compute_capability < (8, 9):
        cap = ".".join(map(str, inp.placement.gpu.compute_capability))
        found.append(
            Refusal(
                "--quantize",
                f"{quantize} on the {inp.placement.gpu.model} (compute capability {cap}): LoRAX 0.12.1 raises"
                " "
                "'FP8 quantization is only supported on hardware that supports FP8' below 8.9 "
                "(flash_causal_lm.py l.1080-1081).",
                "use an L4, L40S or H100, or --quantize gptq/eetq",
            )
        )
    if quantize == "fp8-kv":
        found.append(
            Refusal(
                "--quantize",
                "fp8-kv needs LoRAX's FlashInfer backend (flash_causal_lm.py l.1083-1085), whose 1-token KV "
                "blocks this planner does not model.",
                "use --quantize fp8 (fp8 weights, 16-bit KV cache)",
            )
        )
    if inp.cuda_graphs and w > 1:
        found.append(
            Refusal(
                "--cuda-graphs",
                f"CUDA graphs with {w} shards: the shard refuses them at warm-up, "
                f"{launcher_defaults().compile_not_sharded}.",
                "use --cuda-graphs off, or one shard",
            )
        )
    return found


def make_plan(inp: PlanInput) -> Plan:
    """Plan one deployment, or raise PlanRefused with every reason it cannot run."""
    found = refusals(inp)
    if any(r.field == "--shards" for r in found):
        raise PlanRefused(found)  # the budget below needs a valid world size
    m, gpu = inp.model, inp.placement.gpu
    total = gpu.total_bytes
    adapter_bytes = inp.adapters.bytes(m) if inp.adapters.count or inp.adapter_fraction else 0
    if inp.adapter_fraction is None:
        fraction = (
            fraction_for(inp.adapters.count, adapter_bytes, total)
            if inp.adapters.count
            else inp.engine.default_adapter_fraction
        )
    else:
        fraction = inp.adapter_fraction
    # A zero fraction means no reservation and no limit (adapter.py l.215, l.229-231): nothing to refuse.
    if not 0 < inp.cuda_memory_fraction <= 1 or fraction >= inp.cuda_memory_fraction:
        found.append(
            Refusal(
                "--adapter-memory-fraction",
                f"{fraction} with --cuda-memory-fraction {inp.cuda_memory_fraction} leaves no KV cache: "
                f"{launcher_defaults().memory_fractions}.",
                "keep 0 < cuda fraction <= 1 and the adapter fraction below it",
            )
        )
        raise PlanRefused(found)
    if adapter_bytes and 0 < fraction * total < adapter_bytes:
        found.append(
            Refusal(
                "--adapter-memory-fraction",
                f"the reservation ({fraction} x {total / 1024**3:.2f} GiB"
                f" = {fraction * total / 1024**2:,.0f} MiB)"
                " "
                f"is smaller than one rank-{inp.adapters.rank} adapter ({adapter_bytes / 1024**2:,.0f} MiB): "
                "LoRAX refuses to load it (server/lorax_server/utils/adapter.py l.221-225 at v0.12.1).",
                f"use --adapter-memory-fraction >= {fraction_for(1, adapter_bytes, total)}",
            )
        )
    budget = _budget(inp, fraction)
    if not inp.engine.infers_total:
        found.extend(_fixed_total_limits(inp))
    found.extend(_memory_refusals(inp, budget))
    if found:
        raise PlanRefused(found)
    limited = adapter_bytes and fraction
    fit = adapters_that_fit(fraction, adapter_bytes, total) if limited else inp.adapters.count
    warnings = _warnings(inp, fit)
    return Plan(inp, budget, adapter_bytes, fraction, fit, warnings)


def _budget(inp: PlanInput, adapter_fraction: float) -> Budget:
    m, w, lim, eng = inp.model, inp.shards, inp.limits, inp.engine
    total = inp.placement.gpu.total_bytes
    weights = weights_per_gpu(m, inp.weights, w)
    bytes_per_block = m.kv_bytes_per_token(inp.weights.dtype_bytes, w) * eng.block_size
    requests = math.ceil(lim.max_prefill / lim.max_input)
    per_request = lim.max_total if eng.warmup_max_new_to_total else lim.max_input + 2
    warm_blocks = requests * math.ceil(per_request / eng.block_size)
    graphs = graph_memory_estimate(weights) if inp.cuda_graphs and eng.graph_memory_subtracted else 0
    fixed = None if eng.infers_total else inp.max_batch_total_tokens or TGI_0_9_DEFAULT_TOTAL
    return Budget(
        total=total,
        usable=int(total * inp.cuda_memory_fraction),
        weights=weights,
        warmup=activation.estimate(
            m, lim.max_prefill, w, eng.log_softmax_in_place, inp.weights.dtype_bytes, inp.activation_terms
        ),
        graphs=graphs,
        adapter_reservation=int(adapter_fraction * total),
        warmup_kv_blocks=warm_blocks,
        bytes_per_block=bytes_per_block,
        wiggle_room=eng.wiggle_room,
        block_size=eng.block_size,
        fixed_total=fixed,
    )


def _memory_refusals(inp: PlanInput, b: Budget) -> list[Refusal]:
    gib = 1024**3
    per_gpu = f"{b.total / gib:.2f} GiB per GPU"
    if b.weights + b.warmup.overhead_bytes + b.adapter_reservation > b.usable:
        room = b.usable - b.warmup.overhead_bytes - b.adapter_reservation
        need = math.ceil(b.weights * inp.shards / room)
        return [
            Refusal(
                "--model",
                f"{inp.model.model_id} ({inp.weights.name}) needs {b.weights / gib:.1f} GiB of weights"
                " per GPU"
                f" on "
                f"{inp.shards} shard(s); with the adapter reservation that exceeds {per_gpu}.",
                f"use >= {need} GPUs (--shards), a quantization (--quantize), or a larger GPU",
            )
        ]
    if b.free_after_warmup < 0 and b.fixed_total is not None:
        return [_fixed_total_refusal(inp, b)]
    if b.free_after_warmup < 0:
        return [
            Refusal(
                "--max-batch-prefill-tokens",
                "the warm-up would run out of memory ('Not enough memory to handle "
                f"{inp.limits.max_prefill} "
                f"prefill tokens'): weights {b.weights / gib:.1f} GiB + warm-up peak "
                f"{b.warmup.peak_bytes / gib:.1f} GiB (estimated) + the warm-up batch's KV "
                f"({b.warmup_kv_blocks * b.bytes_per_block / gib:.1f} GiB: it decodes to --max-total-tokens)"
                f" + adapters {b.adapter_reservation / gib:.1f} GiB + graphs {b.graphs / gib:.1f} GiB exceed"
                f" {per_gpu}.",
                "lower --max-batch-prefill-tokens, --max-input-length or --max-total-tokens, the adapter"
                " fraction, or add GPUs",
            )
        ]
    # Unreachable with LoRAX's decode-to-total warm-up (its batch holds a full request); TGI 1.0 can get here.
    # (A given total, tgi-0.9, is checked against the limits by its launcher: _fixed_total_limits.)
    if b.fixed_total is None and b.max_batch_total_tokens < inp.limits.max_total:
        return [
            Refusal(
                "--max-total-tokens",
                f"{inp.engine.name} would infer max_batch_total_tokens = {b.max_batch_total_tokens:,}, less"
                f" than one request of --max-total-tokens {inp.limits.max_total:,}.",
                "lower --max-total-tokens or the adapter fraction, or add GPUs",
            )
        ]
    return []


def _fixed_total_refusal(inp: PlanInput, b: Budget) -> Refusal:
    """TGI <= 0.9.3 allocates the user's whole KV cache, then prefills the warm-up batch beside it."""
    gib = 1024**3
    kv = b.kv_blocks_at_warmup * b.bytes_per_block / gib
    return Refusal(
        "--max-batch-total-tokens",
        f"{inp.engine.name} allocates the KV cache for all {b.fixed_total:,} tokens before the warm-up "
        f"({b.kv_blocks_at_warmup:,} blocks, {kv:.1f} GiB), then "
        f"prefills {inp.limits.max_prefill:,} tokens beside it: weights {b.weights / gib:.1f} GiB + warm-up "
        f"peak {b.warmup.peak_bytes / gib:.1f} GiB (estimated) exceed {b.total / gib:.2f} GiB per GPU "
        f"('Not enough memory to handle {b.fixed_total} total tokens with {inp.limits.max_prefill} prefill "
        "tokens', flash_causal_lm.py l.713-735 at TGI v0.9.3).",
        "lower --max-batch-total-tokens or --max-batch-prefill-tokens, or add GPUs",
    )


def _fixed_total_limits(inp: PlanInput) -> list[Refusal]:
    """TGI <= 0.9.3's launcher checks the user's total against the other limits (main.rs l.1039-1048)."""
    total = inp.max_batch_total_tokens or TGI_0_9_DEFAULT_TOTAL
    lim = inp.limits
    checked = (("--max-batch-prefill-tokens", lim.max_prefill), ("--max-total-tokens", lim.max_total))
    return [
        Refusal(flag, f"{value:,} > --max-batch-total-tokens {total:,} (TGI v0.9.3 launcher/src/main.rs "
                f"l.1039-1048).", f"raise --max-batch-total-tokens to >= {value}")
        for flag, value in checked
        if value > total
    ]  # fmt: skip


def plan_fraction_is_zero(inp: PlanInput) -> bool:
    return inp.adapter_fraction == 0


def _warnings(inp: PlanInput, fit: int) -> list[str]:
    out = []
    if inp.adapters.count and fit < inp.adapters.count:
        out.append(
            f"the reservation holds {fit} rank-{inp.adapters.rank} adapters, not {inp.adapters.count}:"
            " the router "
            "keeps the rest queued until an active one is offloaded (router/src/queue.rs l.418-436)"
        )
    if inp.adapters.count and plan_fraction_is_zero(inp):
        out.append(
            "adapter memory fraction 0: LoRAX reserves nothing and loads adapters unchecked "
            "(utils/adapter.py l.229-231); their memory comes out of the KV margin and can run out"
        )
    if inp.weights.quantize in ("awq",):
        out.append("lorax#722 reports AWQ broken in LoRAX 0.12 ('too many values to unpack')")
    return out


def default_limits(
    model: ModelConfig,
    max_total: int | None,
    max_input: int | None,
    max_prefill: int | None,
    typical_input: int,
    typical_output: int,
    max_output: int = 1024,
) -> Limits:
    """Fill unset limits: total = LoRAX's default (min(position limit, 4096), also inside any sliding window),
    input = total - `max_output`, prefill = LoRAX's default (input + 50)."""
    defaults = launcher_defaults()
    total = max_total or min(model.position_limit(), defaults.max_position_cap)
    inp = max_input or max(total - max_output, 1)
    prefill = max_prefill or inp + defaults.prefill_over_input
    return Limits(inp, total, prefill, typical_input, typical_output)
