"""Published launcher figures the planner is checked against (TGI, LoRAX's parent, and LoRAX users).

Each case is what a user pasted into a public issue: the model, GPU, shards, limits and version, and either
the `max_batch_total_tokens` the launcher inferred or the warm-up failure it reported. Where the thread leaves
a value out, the case says what was assumed. `tests/plan/test_plan_published.py` runs the planner on each;
`docs/plan.md` tabulates its error.

A reported "Not enough memory to handle N prefill tokens" is a memory failure only where the version's
warm-up raised it for out-of-memory alone (`EngineConstants.warmup_error_means_oom`): TGI up to v1.1.0
raised it for any exception, so those reports are listed with what the source shows, not scored.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, replace

from loraxkit.plan import activation
from loraxkit.plan.adapters import AdapterSpec
from loraxkit.plan.constants import TGI_0_9, TGI_1_0, TGI_2_0, TGI_2_4, EngineConstants
from loraxkit.plan.engine import Budget, Limits, PlanInput, PlanRefused, _budget, make_plan
from loraxkit.plan.gpus import for_gpu
from loraxkit.plan.models import BUILTIN, ModelConfig
from loraxkit.plan.quant import weight_format

OOM = -1  # the launcher reported "Not enough memory" at warm-up (a memory failure if the engine says so)


@dataclass(frozen=True)
class Case:
    key: str
    url: str
    version: str
    model: ModelConfig
    gpu: str
    shards: int
    limits: Limits
    engine: EngineConstants
    observed: int  # inferred max_batch_total_tokens, or OOM
    quantize: str | None = None
    bits: int = 4
    group_size: int = 128
    assumed: str = ""
    # TGI <= 0.9.3 did not infer: it allocated this many tokens of KV before its warm-up prefill.
    max_batch_total: int | None = None
    message: str = ""  # the warm-up error as the user pasted it
    evidence: str = ""  # what the engine's source says about that error

    @property
    def proven_oom(self) -> bool:
        """The report is a memory failure: the version raised its message for out-of-memory only."""
        return self.observed == OOM and self.engine.warmup_error_means_oom

    def with_engine(self, engine: EngineConstants) -> Case:
        return replace(self, engine=engine)

    def plan_input(self) -> PlanInput:
        return PlanInput(
            model=self.model,
            weights=weight_format(
                None if self.quantize else "float16", self.quantize, self.bits, self.group_size
            ),
            placement=for_gpu(self.gpu, self.shards),
            shards=self.shards,
            limits=self.limits,
            adapters=AdapterSpec(0, 16),
            adapter_fraction=self.engine.default_adapter_fraction,
            engine=self.engine,
            max_batch_total_tokens=self.max_batch_total,
        )


def _limits(max_input: int, max_total: int, max_prefill: int) -> Limits:
    return Limits(max_input, max_total, max_prefill, max_input, max_total - max_input)


_TGI = "https://github.com/huggingface/text-generation-inference"
# Launch logs pasted into READMEs (blobs at the commit read).
_CHAT_APP = (
    "https://github.com/Infinite-Limit-Data-Science/chat-app/blob/d437bdf12b31155d332b0f6b54db990f826087fb"
)
_HYPERPOD = "https://github.com/aws-samples/aws-do-hyperpod/blob/d33d69cf267a88d1f2b352eb262dd683971dcd17"
# A Mistral-7B with no sliding window (the #1831 user served 8,512-token contexts from a local copy; TGI 2.0
# did not refuse that): Mistral-7B-v0.1's shapes, which every Mistral-7B version shares but v0.3's vocabulary.
_MISTRAL_NO_WINDOW = replace(BUILTIN["mistralai/Mistral-7B-v0.1"], sliding_window=None)

CASES: tuple[Case, ...] = (
    Case(
        "tgi-1831-mistral7b-a100x1",
        f"{_TGI}/issues/1831",
        "TGI 2.0.0",
        _MISTRAL_NO_WINDOW,
        "a100-80gb",
        1,
        _limits(8000, 8512, 32768),
        TGI_2_0,
        425_472,
        assumed="Mistral-7B shapes (a local 'mistral7b-free' copy)",
    ),
    Case(
        "tgi-653-llama2-7b-a10g",
        f"{_TGI}/issues/653",
        "TGI main, 2023-07-19 (0.9.x)",
        BUILTIN["meta-llama/Llama-2-7b-hf"],
        "a10g",
        1,
        _limits(4095, 4096, 4096),
        TGI_1_0,
        16_224,
        assumed="v1.0 constants (the inference code landed on main before 0.9.4)",
    ),
    Case(
        "tgi-832-llama2-70b-a100x4",
        f"{_TGI}/issues/832",
        "TGI 1.0",
        BUILTIN["meta-llama/Llama-2-70b-chat-hf"],
        "a100-80gb",
        4,
        _limits(1024, 2048, 4096),
        TGI_1_0,
        406_560,
        assumed="limits not given: TGI 1.0's defaults (input 1024, total 2048, prefill 4096)",
    ),
    Case(
        "tgi-2744-llama31-70b-a100x2",
        f"{_TGI}/issues/2744",
        "TGI 2.4",
        BUILTIN["meta-llama/Llama-3.1-70B-Instruct"],
        "a100-80gb",
        2,
        _limits(9999, 10000, 10049),
        TGI_2_4,
        30_816,
        assumed="max input 9,999 from the logged prefill default 10,049 (= input + 50); total 10,000",
    ),
    Case(
        "tgi-2.2-llama31-8b-a10g-chatapp",
        # The README's launch log on a g5.2xlarge: "Default `max_input_tokens` to 4095",
        # "... `max_total_tokens` to 4096", "... `max_batch_prefill_tokens` to 4145", then
        # "router/src/server.rs:1651: Setting max batch total tokens to 19056"; nvidia-smi: "NVIDIA A10G".
        f"{_CHAT_APP}/README3-hf-tgi.md",
        "TGI 2.2.0, g5.2xlarge",
        BUILTIN["meta-llama/Llama-3.1-8B-Instruct"],
        "a10g",
        1,
        _limits(4095, 4096, 4145),
        TGI_2_0,
        19_056,
    ),
    Case(
        "tgi-2.0-mistral7b-v03-a10g-hyperpod",
        # JumpStart model huggingface-llm-mistral-7b-instruct-v3 on ml.g5.8xlarge (inference/jumpstart.yaml);
        # log: "router/src/main.rs:354: Setting max batch total tokens to 43808".
        f"{_HYPERPOD}/Container-Root/hyperpod/deployment/eks/demo/hero/README.md",
        "TGI 2.0.2-2.0.4 (router main.rs l.317/354), ml.g5.8xlarge",
        BUILTIN["mistralai/Mistral-7B-Instruct-v0.3"],
        "a10g",
        1,
        _limits(4095, 4096, 4145),
        TGI_2_0,
        43_808,
        assumed=(
            "limits not given (JumpStart's model spec sets them): TGI 2.0's defaults for a 32k model,"
            " input 4095, total 4096, prefill 4145 (launcher/src/main.rs l.1314-1324 at v2.0.2)"
        ),
    ),
    Case(
        "tgi-710-llama2-70b-a10g-x8",
        f"{_TGI}/issues/710",
        "TGI 0.9.3 (message format of 5e6ddfd6), g5.48xlarge",
        BUILTIN["meta-llama/Llama-2-70b-chat-hf"],
        "a10g",
        8,
        _limits(3072, 4096, 4096),
        TGI_0_9,
        OOM,
        max_batch_total=16_000,
        assumed="the model at /opt/ml/model is Llama-2-70b (the user asks for Llama2-70b values)",
        message="Not enough memory to handle 16000 total tokens with 2 prefill tokens",
        evidence=(
            "raised for any exception (flash_causal_lm.py l.728 at v0.9.3); '2 prefill tokens' is"
            " len(batch.input_ids) after generate_token replaced the 4,096 prompt ids with the 2 requests'"
            " next tokens (l.872), so the 4,096-token forward pass (l.779) and token choice (l.800)"
            " had succeeded"
        ),
    ),
    Case(
        "tgi-pr648-llama2-70b-gptq-a10g-x4",
        f"{_TGI}/pull/648",
        "TGI 0.9.3 + PR #648 (2023-07-19)",
        BUILTIN["meta-llama/Llama-2-70b-chat-hf"],
        "a10g",
        4,
        _limits(1024, 2048, 4096),
        TGI_0_9,
        OOM,
        quantize="gptq",
        group_size=-1,
        max_batch_total=16_000,
        assumed="TheBloke/Llama-2-70B-chat-GPTQ main branch: 4-bit, no groups; total tokens per request 2048",
        message="Not enough memory to handle 16000 total tokens with 4096 prefill tokens",
        evidence=(
            "raised for any exception (flash_causal_lm.py l.728 at v0.9.3, the PR's base); its GPTQ layer is"
            " the Triton kernel, which allocates only its output (utils/gptq/quant_linear.py l.207-211);"
            " exllama's scratch buffers came later (d5b5bc75, 2023-07-21)"
        ),
    ),
    Case(
        "tgi-2301-llama31-70b-h100x4",
        f"{_TGI}/issues/2301",
        "TGI 2.2.0",
        BUILTIN["meta-llama/Llama-3.1-70B-Instruct"],
        "h100",
        4,
        _limits(131072, 139264, 131122),
        TGI_2_0,
        OOM,
        assumed=(
            "H100 80GB (the thread says 4*H100); prefill 131,122 as logged (input + 50, the default); TGI 2.2"
            " ran a total above the 131,072 position limit, which the planner refuses too"
        ),
        message="Not enough memory to handle 131122 prefill tokens",
        evidence="raised for torch.cuda.OutOfMemoryError only (flash_causal_lm.py l.1102 at v2.2.0)",
    ),
)

# The cases with an inferred figure and every limit known: what the activation terms are fitted on.
CALIBRATION = tuple(c for c in CASES if c.observed != OOM and "limits not given" not in c.assumed)


def budget(case: Case) -> Budget:
    return _budget(case.plan_input(), 0.0)


def residual_bytes(case: Case) -> float:
    """Warm-up bytes the observed figure implies beyond the code-derived terms (logits, MLP layer, NCCL)."""
    b = budget(case)
    kv_free = (case.observed / b.block_size - b.warmup_kv_blocks) * b.bytes_per_block / b.wiggle_room
    used = b.usable - b.weights - b.warmup_kv_blocks * b.bytes_per_block - kv_free
    nccl = activation.NCCL_BYTES if case.shards > 1 else 0
    return used - b.warmup.logits_bytes - b.warmup.layer_bytes - nccl


def _hidden_bytes(case: Case) -> float:
    return case.limits.max_prefill * case.model.hidden_size * 2


def fit_activation(cases: tuple[Case, ...] = CALIBRATION) -> tuple[float, float]:
    """Least-squares (hidden copies, fixed bytes) of residual = fixed + copies x prefill x hidden x 2 B."""
    xs = [_hidden_bytes(c) for c in cases]
    ys = [residual_bytes(c) for c in cases]
    slope, intercept = statistics.linear_regression(xs, ys)
    return slope, intercept


@dataclass(frozen=True)
class Outcome:
    case: Case
    predicted: int | None  # max_batch_total_tokens, None when the planner says it does not fit
    verdict: str  # "fits" / "does not fit: <why>"
    refused: tuple[str, ...] = ()  # the flags the refusals name, e.g. "--max-batch-prefill-tokens"

    @property
    def error(self) -> float | None:
        if self.case.observed == OOM or self.predicted is None:
            return None
        return (self.predicted - self.case.observed) / self.case.observed

    @property
    def agrees(self) -> bool | None:
        """None where the report is not a proven memory failure (nothing to agree with)."""
        if self.case.observed == OOM:
            return self.predicted is None if self.case.proven_oom else None
        return self.predicted is not None


def run(case: Case, hidden_copies: float | None = None, fixed_bytes: float | None = None) -> Outcome:
    """Plan `case` (optionally with other activation constants, e.g. a leave-one-out fit)."""
    terms = (hidden_copies, fixed_bytes) if hidden_copies is not None and fixed_bytes is not None else None
    try:
        plan = make_plan(replace(case.plan_input(), activation_terms=terms))
    except PlanRefused as refused:
        why = "does not fit: " + "; ".join(r.reason for r in refused.refusals)
        return Outcome(case, None, why, tuple(r.field for r in refused.refusals))
    return Outcome(case, plan.max_batch_total_tokens, "fits")


def leave_one_out(case: Case) -> Outcome:
    """The planner on `case` with the activation terms fitted on the other calibration cases only."""
    others = tuple(c for c in CALIBRATION if c is not case)
    return run(case, *fit_activation(others)) if len(others) >= 2 else run(case)
