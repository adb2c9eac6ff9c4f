"""`plan()`: the whole planner in one call, from the user's choices to budget, speed, cost and values.

>>> request = Request("mistralai/Mistral-7B-Instruct-v0.1", instance="g6e.2xlarge", adapters="24x16")
>>> result = plan(request)
>>> result.plan.max_batch_total_tokens > 100_000
True
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field, fields

from loraxkit.plan import gpus, throughput
from loraxkit.plan.adapters import AdapterSpec, parse_adapters
from loraxkit.plan.constants import ENGINES, LORAX_0_12_1
from loraxkit.plan.engine import Plan, PlanInput, default_limits, make_plan, weights_per_gpu
from loraxkit.plan.models import ALL_LINEAR, ModelConfig, resolve
from loraxkit.plan.quant import weight_format


@dataclass(frozen=True)
class Request:
    """Everything a user chooses; the defaults are what `loraxkit plan` uses when a flag is left out."""

    model: str
    instance: str | None = None
    gpu: str | None = None
    gpus: int = 1
    dtype: str | None = None
    quantize: str | None = None
    bits: int = 4
    group_size: int = 128
    shards: int | None = None  # None: every GPU of the instance
    max_input_length: int | None = None
    max_total_tokens: int | None = None
    max_batch_prefill_tokens: int | None = None
    max_new_tokens: int = 1024
    typical_input: int = 1024
    typical_output: int = 512
    adapters: str = "0x16"
    target_modules: tuple[str, ...] = ALL_LINEAR
    adapter_bytes_per_param: int = 2
    adapter_memory_fraction: float | None = None
    cuda_graphs: str = "auto"  # auto: on with one shard (0.12.1 refuses them sharded)
    cuda_memory_fraction: float = 1.0
    engine: str = LORAX_0_12_1.name
    max_batch_total_tokens: int | None = None  # only --engine tgi-0.9, which does not infer it

    def command(self) -> str:
        """The `loraxkit plan` command line that reproduces this request (non-default flags only)."""
        parts = ["loraxkit", "plan"]
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name != "model" and value == f.default:
                continue
            flag = "--" + f.name.replace("_", "-")
            if isinstance(value, tuple):
                value = ",".join(value)
            parts += [flag, str(value)]
        return shlex.join(parts)


@dataclass(frozen=True)
class Result:
    request: Request
    model: ModelConfig
    placement: gpus.Placement
    plan: Plan
    speed: throughput.Throughput | None
    speed_note: str
    warnings: list[str] = field(default_factory=list)

    @property
    def inputs(self) -> PlanInput:
        return self.plan.inputs

    def sim_command(self) -> str:
        """`loraxkit sim` with this plan's limits, on the simulator profile of this GPU."""
        lim, p = self.inputs.limits, self.plan
        parts = ["loraxkit", "sim"]
        if self.placement.gpu.sim_profile:
            parts += ["--profile", self.placement.gpu.sim_profile]
        parts += [
            "--model-id", self.model.model_id,
            "--max-input-length", str(lim.max_input),
            "--max-total-tokens", str(lim.max_total),
            "--max-batch-prefill-tokens", str(lim.max_prefill),
            "--max-batch-total-tokens", str(p.max_batch_total_tokens),
            "--max-concurrent-requests", str(max_concurrent_requests(p)),
        ]  # fmt: skip
        if self.inputs.adapters.count:
            parts += ["--max-active-adapters", str(max(1, min(p.adapters_fit, self.inputs.adapters.count)))]
        return shlex.join(parts)


def max_concurrent_requests(p: Plan) -> int:
    """Admit twice what fits at the typical context (the rest queue), rounded up to a power of two."""
    want = max(2 * p.requests_at_typical, 1)
    return 1 << (want - 1).bit_length()


def _placement(req: Request) -> gpus.Placement:
    if req.instance:
        return gpus.for_instance(req.instance)
    if req.gpu:
        return gpus.for_gpu(req.gpu, req.gpus)
    raise ValueError("--instance or --gpu is required (e.g. --instance g6e.2xlarge, or --gpu l40s --gpus 1)")


def _cuda_graphs(req: Request, shards: int) -> bool:
    if req.cuda_graphs not in ("auto", "on", "off"):
        raise ValueError(f"--cuda-graphs {req.cuda_graphs!r}: choose auto, on or off")
    return shards == 1 if req.cuda_graphs == "auto" else req.cuda_graphs == "on"


def _dtype(req: Request, model: ModelConfig) -> str | None:
    """Unset: the checkpoint's own torch_dtype when bfloat16/float16 (the values file then pins it)."""
    if req.dtype or req.quantize:
        return req.dtype
    return model.torch_dtype if model.torch_dtype in ("bfloat16", "float16") else "bfloat16"


def plan_input(req: Request) -> tuple[ModelConfig, gpus.Placement, PlanInput]:
    model = resolve(req.model)
    placement = _placement(req)
    shards = req.shards or placement.gpu_count
    count, rank = parse_adapters(req.adapters)
    if req.engine not in ENGINES:
        raise ValueError(f"--engine {req.engine!r}: choose one of {', '.join(ENGINES)}")
    if req.max_batch_total_tokens is not None and ENGINES[req.engine].infers_total:
        raise ValueError(
            f"--max-batch-total-tokens: {req.engine} infers it at warm-up (the planner prints that value); "
            "the flag plans --engine tgi-0.9, which allocates exactly the given total. Drop the flag."
        )
    limits = default_limits(
        model, req.max_total_tokens, req.max_input_length, req.max_batch_prefill_tokens,
        req.typical_input, req.typical_output, req.max_new_tokens,
    )  # fmt: skip
    inp = PlanInput(
        model=model,
        weights=weight_format(_dtype(req, model), req.quantize, req.bits, req.group_size),
        placement=placement,
        shards=shards,
        limits=limits,
        adapters=AdapterSpec(count, rank, tuple(req.target_modules), req.adapter_bytes_per_param),
        adapter_fraction=req.adapter_memory_fraction,
        cuda_graphs=_cuda_graphs(req, shards),
        cuda_memory_fraction=req.cuda_memory_fraction,
        engine=ENGINES[req.engine],
        max_batch_total_tokens=req.max_batch_total_tokens,
    )
    return model, placement, inp


def plan(req: Request) -> Result:
    """Plan `req`; raises PlanRefused (every reason, each with its fix) or ValueError for bad input."""
    model, placement, inp = plan_input(req)
    p = make_plan(inp)
    profile = placement.gpu.profile()
    speed, note = None, f"no simulator profile for the {placement.gpu.model}: decode speed not predicted"
    if profile is not None:
        lim = inp.limits
        speed = throughput.estimate(
            profile,
            weights_per_gpu(model, inp.weights, inp.shards),
            model.kv_bytes_per_token(inp.weights.dtype_bytes, inp.shards),
            max(p.requests_at_typical, 1),
            inp.adapters.count,
            lim.typical_input + lim.typical_output // 2,
            placement.usd_per_hour,
        )
        note = (
            f"from simulator profile {profile.name} ({profile.source}), scaled to this model's bytes/GPU; "
            "not modelled: tensor-parallel all-reduce, quantized-kernel dequantization"
        )
    return Result(req, model, placement, p, speed, note, list(p.warnings))
