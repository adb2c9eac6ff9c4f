"""LoRAX's HTTP wire format in one module, shared by the simulator (server side) and the load harness
(client side), so both agree by construction.

Everything here mirrors predibase/lorax `router/src/{server,lib,validation,infer}.rs` (HEAD a7394ba3):
route paths, error types and statuses, validation messages, the JSON of GenerateResponse / StreamResponse /
OpenAI objects, SSE framing, and the `x-*` headers of `/generate`. The official `lorax-client` and `openai`
packages are the independent check (tests/sim/test_conformance_*.py).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

# --------------------------------------------------------------------------------------------------
# Routes (server.rs `run()`)
# --------------------------------------------------------------------------------------------------
ROUTE_COMPAT = "/"
ROUTE_GENERATE = "/generate"
ROUTE_GENERATE_STREAM = "/generate_stream"
ROUTE_COMPLETIONS = "/v1/completions"
ROUTE_CHAT = "/v1/chat/completions"
ROUTE_INVOCATIONS = "/invocations"
ROUTE_HEALTH = "/health"
ROUTE_PING = "/ping"
ROUTE_STARTUP = "/startup"
ROUTE_INFO = "/info"
ROUTE_METRICS = "/metrics"
ROUTE_TOKENIZE = "/tokenize"

GENERATION_ROUTES = (
    ROUTE_COMPAT,
    ROUTE_GENERATE,
    ROUTE_GENERATE_STREAM,
    ROUTE_COMPLETIONS,
    ROUTE_CHAT,
    ROUTE_INVOCATIONS,
)
STREAMING_ROUTES = (ROUTE_GENERATE_STREAM,)
OPENAI_ROUTES = (ROUTE_COMPLETIONS, ROUTE_CHAT)

# LoRAX's default --model-id.
DEFAULT_MODEL_ID = "mistralai/Mistral-7B-Instruct-v0.1"
# Adapter id LoRAX uses internally for "no adapter" (router/src/adapter.rs).
BASE_MODEL_ADAPTER_ID = "__base_model__"

# --------------------------------------------------------------------------------------------------
# Errors (infer.rs `InferError`, server.rs `impl From<InferError>`)
# --------------------------------------------------------------------------------------------------
ERROR_VALIDATION = "validation"
ERROR_GENERATION = "generation"
ERROR_OVERLOADED = "overloaded"
ERROR_INCOMPLETE = "incomplete_generation"
ERROR_TEMPLATE = "template_error"
ERROR_TOOL = "tool_error"
ERROR_HEALTHCHECK = "healthcheck"
ERROR_NO_TOKENIZER = "no fast tokenizer"

ERROR_STATUS: dict[str, int] = {
    ERROR_VALIDATION: 422,
    ERROR_TEMPLATE: 422,
    ERROR_TOOL: 422,
    "missing_template_variable": 422,
    ERROR_GENERATION: 424,
    ERROR_OVERLOADED: 429,
    ERROR_INCOMPLETE: 500,
    "embedding_failure": 500,
    "classification_failure": 500,
    ERROR_HEALTHCHECK: 503,
    ERROR_NO_TOKENIZER: 404,
}

# Message prefixes from `#[error(...)]` on InferError.
MSG_OVERLOADED = "Model is overloaded"
MSG_INCOMPLETE = "Incomplete generation"
VALIDATION_PREFIX = "Input validation error: "
GENERATION_PREFIX = "Request failed during generation: "
TEMPLATE_PREFIX = "Failed applying chat template to inputs: "

# Labels of `lorax_request_failure{err=...}` for each error type.
FAILURE_LABEL: dict[str, str] = {
    ERROR_VALIDATION: "validation",
    ERROR_GENERATION: "generation",
    ERROR_OVERLOADED: "overloaded",
    ERROR_INCOMPLETE: "incomplete",
    ERROR_TEMPLATE: "template",
    ERROR_TOOL: "template",
}


class LoraxError(Exception):
    """An error LoRAX reports as `{"error": message, "error_type": error_type}`."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message

    @property
    def status(self) -> int:
        return ERROR_STATUS.get(self.error_type, 500)

    def body(self) -> dict[str, str]:
        return error_body(self.message, self.error_type)


def error_body(message: str, error_type: str) -> dict[str, str]:
    return {"error": message, "error_type": error_type}


def validation_error(detail: str) -> LoraxError:
    return LoraxError(ERROR_VALIDATION, VALIDATION_PREFIX + detail)


def generation_error(detail: str) -> LoraxError:
    return LoraxError(ERROR_GENERATION, GENERATION_PREFIX + detail)


def overloaded_error() -> LoraxError:
    return LoraxError(ERROR_OVERLOADED, MSG_OVERLOADED)


def template_error(detail: str) -> LoraxError:
    return LoraxError(ERROR_TEMPLATE, TEMPLATE_PREFIX + detail)


class BodyRejection(Exception):
    """axum's `Json` extractor rejections: plain-text body, status 400/415/422 (never in-stream)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def json_syntax_rejection(detail: str) -> BodyRejection:
    return BodyRejection(400, f"Failed to parse the request body as JSON: {detail}")


def json_data_rejection(detail: str) -> BodyRejection:
    return BodyRejection(422, f"Failed to deserialize the JSON body into the target type: {detail}")


MISSING_JSON_CONTENT_TYPE = BodyRejection(415, "Expected request with `Content-Type: application/json`")
BODY_TOO_LARGE = BodyRejection(413, "Failed to buffer the request body: length limit exceeded")
# axum's DefaultBodyLimit.
MAX_BODY_BYTES = 2 * 1024 * 1024

# --------------------------------------------------------------------------------------------------
# Headers
# --------------------------------------------------------------------------------------------------
H_COMPUTE_TYPE = "x-compute-type"
H_COMPUTE_TIME = "x-compute-time"
H_COMPUTE_CHARACTERS = "x-compute-characters"
H_TOTAL_TIME = "x-total-time"
H_VALIDATION_TIME = "x-validation-time"
H_QUEUE_TIME = "x-queue-time"
H_INFERENCE_TIME = "x-inference-time"
H_TIME_PER_TOKEN = "x-time-per-token"
H_TIME_TO_FIRST_TOKEN = "x-time-to-first-token"
H_TIME_PER_OUTPUT_TOKEN = "x-time-per-output-token"
H_PROMPT_TOKENS = "x-prompt-tokens"
H_GENERATED_TOKENS = "x-generated-tokens"
H_SKIPPED_TOKENS = "x-skipped-tokens"
H_TOTAL_TOKENS = "x-total-tokens"
H_MODEL_ID = "x-model-id"
H_ADAPTER_ID = "x-adapter-id"
H_ADAPTER_SOURCE = "x-adapter-source"
H_ACCEL_BUFFERING = "X-Accel-Buffering"
H_REQUEST_ID = "x-request-id"  # not LoRAX's: the simulator's trace key (a client may send it)
COMPUTE_TYPE = "gpu+optimized"

# --------------------------------------------------------------------------------------------------
# Request parameters: serde typing (lib.rs GenerateParameters) and validation (validation.rs)
# --------------------------------------------------------------------------------------------------


class Kind(Enum):
    OPT_STR = "a string"
    OPT_U32 = "u32"
    OPT_USIZE = "usize"
    OPT_I32 = "i32"
    OPT_U64 = "u64"
    OPT_F32 = "f32"
    BOOL = "a boolean"
    OPT_BOOL = "an optional boolean"
    STR_LIST = "a sequence"
    OPT_OBJECT = "a map"


GENERATE_PARAMETER_KINDS: dict[str, Kind] = {
    "adapter_id": Kind.OPT_STR,
    "adapter_source": Kind.OPT_STR,
    "merged_adapters": Kind.OPT_OBJECT,
    "api_token": Kind.OPT_STR,
    "best_of": Kind.OPT_USIZE,
    "temperature": Kind.OPT_F32,
    "repetition_penalty": Kind.OPT_F32,
    "frequency_penalty": Kind.OPT_F32,
    "presence_penalty": Kind.OPT_F32,
    "top_k": Kind.OPT_I32,
    "top_p": Kind.OPT_F32,
    "typical_p": Kind.OPT_F32,
    "do_sample": Kind.BOOL,
    "max_new_tokens": Kind.OPT_U32,
    "ignore_eos_token": Kind.BOOL,
    "return_full_text": Kind.OPT_BOOL,
    "stop": Kind.STR_LIST,
    "truncate": Kind.OPT_USIZE,
    "watermark": Kind.BOOL,
    "details": Kind.BOOL,
    "decoder_input_details": Kind.BOOL,
    "return_k_alternatives": Kind.OPT_I32,
    "apply_chat_template": Kind.BOOL,
    "seed": Kind.OPT_U64,
    "response_format": Kind.OPT_OBJECT,
}

_INT_RANGES: dict[Kind, tuple[int, int]] = {
    Kind.OPT_U32: (0, 2**32 - 1),
    Kind.OPT_USIZE: (0, 2**64 - 1),
    Kind.OPT_U64: (0, 2**64 - 1),
    Kind.OPT_I32: (-(2**31), 2**31 - 1),
}


def _serde_type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean `{str(value).lower()}`"
    if isinstance(value, int):
        return f"integer `{value}`"
    if isinstance(value, float):
        return f"floating point `{value}`"
    if isinstance(value, str):
        return f"string {json.dumps(value)}"
    if isinstance(value, list):
        return "sequence"
    return "map"


def _check_kind(path: str, value: Any, kind: Kind) -> None:
    """Reject `value` the way serde_json would for a field of `kind` (message names the field)."""
    if value is None and kind not in (Kind.BOOL, Kind.STR_LIST):
        return
    bad = f"{path}: invalid type: {_serde_type_name(value)}, expected {kind.value}"
    if kind is Kind.BOOL or kind is Kind.OPT_BOOL:
        ok = isinstance(value, bool)
    elif kind is Kind.OPT_STR:
        ok = isinstance(value, str)
    elif kind is Kind.STR_LIST:
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return
        ok = False
    elif kind is Kind.OPT_F32:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif kind is Kind.OPT_OBJECT:
        ok = isinstance(value, dict)
    else:
        lo, hi = _INT_RANGES[kind]
        if isinstance(value, int) and not isinstance(value, bool):
            if not lo <= value <= hi:
                raise json_data_rejection(f"{path}: invalid value: integer `{value}`, expected {kind.value}")
            return
        ok = False
    if not ok:
        raise json_data_rejection(bad)


@dataclass(frozen=True)
class Limits:
    """The router limits validation checks against (launcher flags of the same names)."""

    max_input_length: int = 4095
    max_total_tokens: int = 4096
    max_stop_sequences: int = 4
    max_best_of: int = 2


@dataclass
class GenerateParams:
    """A typed, serde-checked GenerateParameters. Defaults are LoRAX's."""

    adapter_id: str | None = None
    adapter_source: str | None = None
    merged_adapters: dict[str, Any] | None = None
    api_token: str | None = None
    best_of: int | None = None
    temperature: float | None = None
    repetition_penalty: float | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    top_k: int | None = None
    top_p: float | None = None
    typical_p: float | None = None
    do_sample: bool = False
    max_new_tokens: int | None = None
    ignore_eos_token: bool = False
    return_full_text: bool | None = None
    stop: list[str] = field(default_factory=list)
    truncate: int | None = None
    watermark: bool = False
    details: bool = False
    decoder_input_details: bool = False
    return_k_alternatives: int | None = None
    apply_chat_template: bool = False
    seed: int | None = None
    response_format: dict[str, Any] | None = None


def _apply_leniency(params: dict[str, Any]) -> dict[str, Any]:
    """What popular clients send that LoRAX rejects or ignores, mapped to what they mean (--lenient)."""
    fixed = dict(params)
    if "stop" in fixed and fixed["stop"] is None:
        fixed.pop("stop")
    if isinstance(fixed.get("stop"), str):
        fixed["stop"] = [fixed["stop"]]
    if "ignore_eos" in fixed and "ignore_eos_token" not in fixed:
        fixed["ignore_eos_token"] = bool(fixed["ignore_eos"])
    for key, kind in GENERATE_PARAMETER_KINDS.items():
        if kind is Kind.BOOL and key in fixed and fixed[key] is None:
            fixed.pop(key)
    return fixed


def parse_generate_params(raw: Any, *, lenient: bool = False, path: str = "parameters") -> GenerateParams:
    """serde's view of `parameters`: unknown keys ignored, wrong types rejected (422, plain text)."""
    if raw is None:
        return GenerateParams()
    if not isinstance(raw, dict):
        raise json_data_rejection(
            f"{path}: invalid type: {_serde_type_name(raw)}, expected struct GenerateParameters"
        )
    if lenient:
        raw = _apply_leniency(raw)
    values: dict[str, Any] = {}
    for key, kind in GENERATE_PARAMETER_KINDS.items():
        if key not in raw:
            continue
        _check_kind(f"{path}.{key}", raw[key], kind)
        values[key] = raw[key]
    return GenerateParams(**values)


def parse_generate_body(body: Any, *, lenient: bool = False) -> tuple[str, GenerateParams, bool]:
    """`{inputs, parameters, stream}` (GenerateRequest / CompatGenerateRequest) → (inputs, params, stream)."""
    if not isinstance(body, dict):
        raise json_data_rejection(f"invalid type: {_serde_type_name(body)}, expected struct GenerateRequest")
    if "inputs" not in body:
        raise json_data_rejection("missing field `inputs`")
    _check_kind("inputs", body["inputs"], Kind.OPT_STR)
    if body["inputs"] is None:
        raise json_data_rejection("inputs: invalid type: null, expected a string")
    stream = body.get("stream", False)
    if lenient and stream is None:
        stream = False
    _check_kind("stream", stream, Kind.BOOL)
    return body["inputs"], parse_generate_params(body.get("parameters"), lenient=lenient), bool(stream)


def validate_params(
    inputs: str,
    params: GenerateParams,
    *,
    streaming: bool,
    max_best_of: int,
    max_stop_sequences: int,
    max_input_length: int,
) -> None:
    """Semantic checks, in validation.rs order, with its messages (raised as 422 `validation`)."""
    if streaming and (params.best_of or 1) != 1:
        raise validation_error("`best_of` != 1 is not supported when streaming tokens")
    if streaming and params.decoder_input_details:
        raise validation_error("`decoder_input_details` == true is not supported when streaming tokens")
    best_of = params.best_of if params.best_of is not None else 1
    if best_of != 1:
        if max_best_of == 1:
            raise validation_error("`best_of` != 1 is not allowed for this endpoint")
        if best_of == 0 or best_of > max_best_of:
            raise validation_error(f"`best_of` must be > 0 and <= {max_best_of}. Given: {best_of}")
    if params.merged_adapters is not None and params.adapter_id is not None:
        raise validation_error("at most one of `adapter_id` or `adapters` may be provided")
    sampling = (
        params.do_sample
        or params.temperature is not None
        or params.top_k is not None
        or params.top_p is not None
        or params.typical_p is not None
    )
    if best_of > 1 and not sampling:
        raise validation_error("you must use sampling when `best_of` is > 1")
    if params.temperature is not None and params.temperature < 0:
        raise validation_error("`temperature` must be non-negative")
    if params.repetition_penalty is not None and params.repetition_penalty <= 0:
        raise validation_error("`repetition_penalty` must be strictly positive")
    if params.frequency_penalty is not None and not -2.0 <= params.frequency_penalty <= 2.0:
        raise validation_error("`frequency_penalty` must be >= -2.0 and <= 2.0")
    if params.presence_penalty is not None and not -2.0 <= params.presence_penalty <= 2.0:
        raise validation_error("`presence_penalty` must be >= -2.0 and <= 2.0")
    if params.top_p is not None and (params.top_p <= 0.0 or params.top_p > 1.0):
        raise validation_error("`top_p` must be > 0.0 and < 1.0")
    if params.typical_p is not None and (params.typical_p <= 0.0 or params.typical_p >= 1.0):
        raise validation_error("`typical_p` must be > 0.0 and < 1.0")
    if params.top_k is not None and params.top_k <= 0:
        raise validation_error("`top_k` must be strictly positive")
    if params.return_k_alternatives is not None and params.return_k_alternatives <= 0:
        raise validation_error("`return_k_alternatives` must be strictly positive")
    if params.max_new_tokens is not None and params.max_new_tokens == 0:
        raise validation_error("`max_new_tokens` must be strictly positive")
    if len(params.stop) > max_stop_sequences:
        raise validation_error(
            f"`stop` supports up to {max_stop_sequences} stop sequences. Given: {len(params.stop)}"
        )
    if params.seed is not None and best_of > 1:
        raise validation_error("`seed` must not be set when `best_of` > 1")
    if not inputs:
        raise validation_error(EMPTY_INPUT_MESSAGE)
    if params.truncate is not None and (params.truncate == 0 or params.truncate > max_input_length):
        raise validation_error(
            f"`truncate` must be strictly positive and less than {max_input_length}. Given: {params.truncate}"
        )


def validate_lengths(input_length: int, max_new_tokens: int | None, limits: Limits) -> int:
    """Token-length checks (validation.rs `validate_input`); returns the effective max_new_tokens."""
    if max_new_tokens is not None and input_length + max_new_tokens > limits.max_total_tokens:
        raise validation_error(
            f"`inputs` tokens + `max_new_tokens` must be <= {limits.max_total_tokens}. "
            f"Given: {input_length} `inputs` tokens and {max_new_tokens} `max_new_tokens`"
        )
    if input_length > limits.max_input_length:
        raise validation_error(
            f"`inputs` must have less than {limits.max_input_length} tokens. Given: {input_length}"
        )
    if max_new_tokens is None:
        return max(limits.max_total_tokens - input_length, 1)
    return max_new_tokens


EMPTY_INPUT_MESSAGE = "`inputs` cannot be empty"

# --------------------------------------------------------------------------------------------------
# OpenAI request bodies (lib.rs CompletionRequest / ChatCompletionRequest) → generate parameters
# --------------------------------------------------------------------------------------------------
_OPENAI_COMMON_KINDS: dict[str, Kind] = {
    "max_tokens": Kind.OPT_I32,
    "temperature": Kind.OPT_F32,
    "top_p": Kind.OPT_F32,
    "n": Kind.OPT_I32,
    "stream": Kind.OPT_BOOL,
    "stop": Kind.STR_LIST,
    "presence_penalty": Kind.OPT_F32,
    "frequency_penalty": Kind.OPT_F32,
    "seed": Kind.OPT_U64,
    "repetition_penalty": Kind.OPT_F32,
    "top_k": Kind.OPT_I32,
    "ignore_eos_token": Kind.OPT_BOOL,
    "adapter_source": Kind.OPT_STR,
    "api_token": Kind.OPT_STR,
}


def _openai_lenient(body: dict[str, Any]) -> dict[str, Any]:
    fixed = dict(body)
    if "stop" in fixed and fixed["stop"] is None:
        fixed.pop("stop")
    if isinstance(fixed.get("stop"), str):
        fixed["stop"] = [fixed["stop"]]
    if fixed.get("max_tokens") is None and fixed.get("max_completion_tokens") is not None:
        fixed["max_tokens"] = fixed["max_completion_tokens"]
    if "ignore_eos" in fixed and fixed.get("ignore_eos_token") is None:
        fixed["ignore_eos_token"] = bool(fixed["ignore_eos"])
    return fixed


def _check_openai_common(body: dict[str, Any], required: tuple[tuple[str, Kind], ...]) -> None:
    for key, kind in required:
        if key not in body:
            raise json_data_rejection(f"missing field `{key}`")
        if body[key] is None:
            raise json_data_rejection(f"{key}: invalid type: null, expected {kind.value}")
        _check_kind(key, body[key], kind)
    for key, kind in _OPENAI_COMMON_KINDS.items():
        if key in body:
            _check_kind(key, body[key], kind)


def _adapter_from_model(model: str, base_model_id: str) -> str | None:
    # server.rs: the base model id means "no adapter"; lib.rs: "" means no adapter.
    if model in ("", base_model_id):
        return None
    return model


def _max_tokens(body: dict[str, Any]) -> int | None:
    value = body.get("max_tokens")
    if value is None:
        return None
    if value < 0:
        # `max_tokens.map(|x| x as u32)` wraps negatives to huge u32 values → length validation fails.
        return value % 2**32
    return value


def parse_completion_body(
    body: Any, base_model_id: str, *, lenient: bool = False
) -> tuple[str, GenerateParams, bool]:
    """CompletionRequest → (prompt, GenerateParams, stream), as `From<CompletionRequest>` maps it."""
    if not isinstance(body, dict):
        raise json_data_rejection(
            f"invalid type: {_serde_type_name(body)}, expected struct CompletionRequest"
        )
    if lenient:
        body = _openai_lenient(body)
    _check_openai_common(body, (("model", Kind.OPT_STR), ("prompt", Kind.OPT_STR)))
    for key, kind in (("best_of", Kind.OPT_I32), ("logprobs", Kind.OPT_I32), ("echo", Kind.OPT_BOOL)):
        if key in body:
            _check_kind(key, body[key], kind)
    params = GenerateParams(
        adapter_id=_adapter_from_model(body["model"], base_model_id),
        adapter_source=body.get("adapter_source"),
        api_token=body.get("api_token"),
        best_of=body.get("best_of"),
        temperature=body.get("temperature"),
        repetition_penalty=body.get("repetition_penalty"),
        frequency_penalty=body.get("frequency_penalty"),
        presence_penalty=body.get("presence_penalty"),
        top_k=body.get("top_k"),
        top_p=body.get("top_p"),
        do_sample=body.get("n") is not None,
        max_new_tokens=_max_tokens(body),
        ignore_eos_token=bool(body.get("ignore_eos_token") or False),
        return_full_text=body.get("echo"),
        stop=list(body.get("stop") or []),
        details=True,
        decoder_input_details=body.get("logprobs") is not None,
        seed=body.get("seed"),
    )
    return body["prompt"], params, bool(body.get("stream") or False)


@dataclass
class ChatMessageIn:
    role: str
    content: str


def _message_text(index: int, message: Any) -> ChatMessageIn:
    if not isinstance(message, dict):
        raise json_data_rejection(
            f"messages[{index}]: invalid type: {_serde_type_name(message)}, expected struct Message"
        )
    role = message.get("role")
    if not isinstance(role, str):
        raise json_data_rejection(f"messages[{index}].role: missing or invalid, expected a string")
    content = message.get("content")
    if content is None:
        return ChatMessageIn(role, "")
    if isinstance(content, str):
        return ChatMessageIn(role, content)
    if isinstance(content, list):
        # MessageChunk list: text chunks concatenated (image chunks are not modelled).
        parts = [c.get("text", "") for c in content if isinstance(c, dict) and c.get("type") == "text"]
        return ChatMessageIn(role, "".join(parts))
    raise json_data_rejection(
        f"messages[{index}].content: invalid type: {_serde_type_name(content)}, "
        "expected a string or a sequence of chunks"
    )


def parse_chat_body(
    body: Any, base_model_id: str, *, lenient: bool = False
) -> tuple[list[ChatMessageIn], GenerateParams, bool]:
    """ChatCompletionRequest → (messages, GenerateParams, stream), as `try_into_generate` maps it."""
    if not isinstance(body, dict):
        raise json_data_rejection(
            f"invalid type: {_serde_type_name(body)}, expected struct ChatCompletionRequest"
        )
    if lenient:
        body = _openai_lenient(body)
    _check_openai_common(body, (("model", Kind.OPT_STR),))
    if "messages" not in body:
        raise json_data_rejection("missing field `messages`")
    if not isinstance(body["messages"], list):
        raise json_data_rejection(
            f"messages: invalid type: {_serde_type_name(body['messages'])}, expected a sequence"
        )
    messages = [_message_text(i, m) for i, m in enumerate(body["messages"])]
    temperature = body.get("temperature")
    do_sample = not (temperature is not None and temperature == 0.0)
    if temperature is not None and temperature == 0.0:
        temperature = None
    n = body.get("n")
    params = GenerateParams(
        adapter_id=_adapter_from_model(body["model"], base_model_id),
        adapter_source=body.get("adapter_source"),
        api_token=body.get("api_token"),
        best_of=n,
        temperature=temperature,
        repetition_penalty=body.get("repetition_penalty"),
        frequency_penalty=body.get("frequency_penalty"),
        presence_penalty=body.get("presence_penalty"),
        top_k=body.get("top_k"),
        top_p=body.get("top_p"),
        do_sample=do_sample,
        max_new_tokens=_max_tokens(body),
        stop=list(body.get("stop") or []),
        details=True,
        seed=body.get("seed"),
        ignore_eos_token=bool(body.get("ignore_eos_token") or False),
    )
    return messages, params, bool(body.get("stream") or False)


# --------------------------------------------------------------------------------------------------
# Response JSON builders
# --------------------------------------------------------------------------------------------------
FINISH_LENGTH = "length"
FINISH_EOS = "eos_token"
FINISH_STOP = "stop_sequence"
# lib.rs `From<FinishReason> for CompletionFinishReason` (stop_sequence maps to content_filter there).
OPENAI_FINISH = {FINISH_LENGTH: "length", FINISH_EOS: "stop", FINISH_STOP: "content_filter"}


def dumps(obj: Any) -> str:
    """Compact JSON like serde_json (no spaces, non-ASCII kept)."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def token_json(token_id: int, text: str, logprob: float, special: bool = False) -> dict[str, Any]:
    return {"id": token_id, "text": text, "logprob": logprob, "special": special, "skipped": False}


def stream_response(
    token: dict[str, Any], generated_text: str | None = None, details: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {"token": token, "generated_text": generated_text, "details": details}


def stream_details(
    finish_reason: str, prompt_tokens: int, generated_tokens: int, seed: int | None
) -> dict[str, Any]:
    return {
        "finish_reason": finish_reason,
        "prompt_tokens": prompt_tokens,
        "generated_tokens": generated_tokens,
        "seed": seed,
    }


def generate_details(
    finish_reason: str,
    prompt_tokens: int,
    tokens: list[dict[str, Any]],
    seed: int | None,
    prefill: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    return {
        "finish_reason": finish_reason,
        "prompt_tokens": prompt_tokens,
        "generated_tokens": len(tokens),
        "skipped_tokens": 0,
        "seed": seed,
        "prefill": prefill or [],
        "tokens": tokens,
    }


def generate_response(generated_text: str, details: dict[str, Any] | None) -> dict[str, Any]:
    out: dict[str, Any] = {"generated_text": generated_text}
    if details is not None:
        out["details"] = details
    return out


def usage(prompt_tokens: int, completion_tokens: int | None) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt_tokens,
        "total_tokens": prompt_tokens + (completion_tokens or 0),
        "completion_tokens": completion_tokens,
    }


def completion_response(
    text: str, finish_reason: str, prompt_tokens: int, completion_tokens: int
) -> dict[str, Any]:
    return {
        "id": "null",
        "object": "text_completion",
        "created": 0,
        "model": "null",
        "choices": [
            {"index": 0, "text": text, "logprobs": None, "finish_reason": OPENAI_FINISH[finish_reason]}
        ],
        "usage": usage(prompt_tokens, completion_tokens),
    }


def completion_chunk(
    text: str, finish_reason: str | None = None, prompt_tokens: int = 0, completion_tokens: int = 0
) -> dict[str, Any]:
    openai_finish = OPENAI_FINISH[finish_reason] if finish_reason else None
    return {
        "id": "null",
        "object": "text_completion",
        "created": 0,
        "model": "null",
        "choices": [
            {
                "index": 0,
                "text": "" if openai_finish == "stop" else text,
                "logprobs": None,
                "finish_reason": openai_finish,
            }
        ],
        "usage": usage(prompt_tokens, completion_tokens),
    }


def chat_response(
    content: str,
    finish_reason: str,
    prompt_tokens: int,
    completion_tokens: int,
    model: str,
    created: int,
    system_fingerprint: str,
) -> dict[str, Any]:
    return {
        "id": "null",
        "object": "text_completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": OPENAI_FINISH[finish_reason],
            }
        ],
        "usage": usage(prompt_tokens, completion_tokens),
        "system_fingerprint": system_fingerprint,
    }


def chat_chunk(
    text: str, finish_reason: str | None = None, prompt_tokens: int = 0, completion_tokens: int | None = None
) -> dict[str, Any]:
    openai_finish = OPENAI_FINISH[finish_reason] if finish_reason else None
    is_stop = openai_finish == "stop"
    delta: dict[str, Any] = {} if is_stop else {"role": "assistant", "content": text}
    chunk: dict[str, Any] = {
        "id": "null",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "null",
        "choices": [{"index": 0, "delta": delta, "finish_reason": openai_finish}],
    }
    if completion_tokens is not None:
        chunk["usage"] = usage(prompt_tokens, completion_tokens)
    return chunk


# --------------------------------------------------------------------------------------------------
# SSE framing (axum `Sse` + `KeepAlive::default()`)
# --------------------------------------------------------------------------------------------------
# axum writes `data:` with no space before the value (`Event::json_data`, and `Event::data` for a value
# that does not start with a space): `data:{"token":...}`, `data:[DONE]`. KeepAlive::default() is `:\n\n`.
KEEP_ALIVE = b":\n\n"
DONE_EVENT = b"data:[DONE]\n\n"
DEFAULT_KEEP_ALIVE_S = 15.0


def sse_event(payload: dict[str, Any] | str) -> bytes:
    """One SSE event: `data:<json>\\n\\n` (a single line: JSON never holds a raw newline)."""
    data = payload if isinstance(payload, str) else dumps(payload)
    return b"data:" + data.encode() + b"\n\n"


def sse_error(err: LoraxError) -> bytes:
    return sse_event(err.body())


# --------------------------------------------------------------------------------------------------
# Client side: classify one received SSE line (used by the load harness)
# --------------------------------------------------------------------------------------------------


class EventKind(Enum):
    TOKEN = "token"
    FINAL = "final"
    ERROR = "error"
    KEEP_ALIVE = "keep_alive"
    DONE = "done"
    BLANK = "blank"
    OTHER = "other"


@dataclass
class SseLine:
    """What one SSE line carried. `text` is the token text (native) or chunk text/delta (OpenAI)."""

    kind: EventKind
    text: str = ""
    generated_text: str | None = None
    generated_tokens: int | None = None
    prompt_tokens: int | None = None
    finish_reason: str | None = None
    error: str | None = None
    error_type: str | None = None


_BLANK = SseLine(EventKind.BLANK)
_KEEP = SseLine(EventKind.KEEP_ALIVE)
_DONE = SseLine(EventKind.DONE)


def parse_sse_line(line: str | bytes) -> SseLine:
    """Classify one line of a LoRAX SSE stream (native or OpenAI-compatible)."""
    if isinstance(line, bytes):
        line = line.decode("utf-8", errors="replace")
    line = line.rstrip("\r\n")
    if not line:
        return _BLANK
    if line.startswith(":"):
        return _KEEP
    if not line.startswith("data:"):
        return SseLine(EventKind.OTHER)
    data = line[5:].lstrip(" ")
    if data == "[DONE]":
        return _DONE
    try:
        obj = json.loads(data)
    except ValueError:
        return SseLine(EventKind.OTHER)
    if not isinstance(obj, dict):
        return SseLine(EventKind.OTHER)
    if "error" in obj and "token" not in obj and "choices" not in obj:
        return SseLine(EventKind.ERROR, error=str(obj.get("error")), error_type=obj.get("error_type"))
    if "token" in obj:
        return _parse_native(obj)
    if "choices" in obj:
        return _parse_openai(obj)
    return SseLine(EventKind.OTHER)


def _parse_native(obj: dict[str, Any]) -> SseLine:
    token = obj.get("token") or {}
    text = token.get("text", "") if isinstance(token, dict) else ""
    generated = obj.get("generated_text")
    if generated is None:
        return SseLine(EventKind.TOKEN, text=text)
    details = obj.get("details") or {}
    return SseLine(
        EventKind.FINAL,
        text=text,
        generated_text=generated,
        generated_tokens=details.get("generated_tokens"),
        prompt_tokens=details.get("prompt_tokens"),
        finish_reason=details.get("finish_reason"),
    )


def _parse_openai(obj: dict[str, Any]) -> SseLine:
    choices = obj.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    delta = choice.get("delta")
    text = ((delta or {}).get("content") or "") if "delta" in choice else (choice.get("text") or "")
    finish = choice.get("finish_reason")
    if finish is None:
        return SseLine(EventKind.TOKEN, text=text)
    use = obj.get("usage") or {}
    return SseLine(
        EventKind.FINAL,
        text=text,
        generated_tokens=use.get("completion_tokens"),
        prompt_tokens=use.get("prompt_tokens"),
        finish_reason=finish,
    )


def is_finite_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
