"""LoRAX's HTTP wire format in one module, shared by the simulator (server side) and the load harness
(client side), so both agree by construction.

Everything here mirrors predibase/lorax `router/src/{server,lib,validation,infer}.rs` (HEAD a7394ba3):
route paths, error types and statuses, validation messages, the JSON of GenerateResponse / StreamResponse /
OpenAI objects, SSE framing, and the `x-*` headers of `/generate`. The official `lorax-client` and `openai`
packages are the independent check (tests/sim/test_conformance_*.py).
"""

from __future__ import annotations

import json
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
# utoipa-swagger-ui 6.0 (server.rs:1620 @a7394ba3): `/docs` redirects to `/docs/` (the Swagger UI page),
# `/api-doc/openapi.json` is the live OpenAPI document.
ROUTE_DOCS = "/docs"
ROUTE_OPENAPI = "/api-doc/openapi.json"

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
TOOL_PREFIX = "Tool error: "  # infer.rs:1726 @a7394ba3

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


def tool_error(detail: str) -> LoraxError:
    return LoraxError(ERROR_TOOL, TOOL_PREFIX + detail)


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

# tower-http 0.6.1 CorsLayer as server.rs:1552-1573 @a7394ba3 builds it with the launcher's defaults (origin
# any, methods GET+POST, header content-type, no credentials, nothing exposed): every response gets
# `access-control-allow-origin: *` and `vary` (cors/mod.rs:672-674, vary.rs: the preflight request headers,
# joined by ", "); any OPTIONS request is answered there as a preflight, 200 with an empty body, plus the
# allowed methods (joined by ",") and headers (cors/mod.rs:679-690, 766-775).
CORS_HEADERS: dict[str, str] = {
    "vary": "origin, access-control-request-method, access-control-request-headers",
    "access-control-allow-origin": "*",
}
CORS_PREFLIGHT_HEADERS: dict[str, str] = {
    **CORS_HEADERS,
    "access-control-allow-methods": "GET,POST",
    "access-control-allow-headers": "content-type",
}

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
    # Option<T> hands a non-null value to T's own visitor (serde_json de.rs deserialize_option): an optional
    # boolean's message is bool's
    expected = Kind.BOOL.value if kind is Kind.OPT_BOOL else kind.value
    bad = f"{path}: invalid type: {_serde_type_name(value)}, expected {expected}"
    if kind is Kind.BOOL or kind is Kind.OPT_BOOL:
        ok = isinstance(value, bool)
    elif kind is Kind.OPT_STR:
        ok = isinstance(value, str)
    elif kind is Kind.STR_LIST:
        if isinstance(value, list):
            for i, item in enumerate(value):
                if not isinstance(item, str):  # Vec<String>: the element is named by its index
                    raise json_data_rejection(
                        f"{path}[{i}]: invalid type: {_serde_type_name(item)}, expected a string"
                    )
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
    if values.get("merged_adapters") is not None:
        _check_merged_adapters(f"{path}.merged_adapters", values["merged_adapters"])
    if values.get("response_format") is not None:
        values["response_format"] = _response_format(f"{path}.response_format", values["response_format"])
    return GenerateParams(**values)


# lib.rs:526-533 @a7394ba3: `ResponseFormatType` variants with their serde aliases.
RESPONSE_FORMAT_TYPES = {
    "Text": "text",
    "text": "text",
    "JsonObject": "json_object",
    "json_object": "json_object",
    "JsonSchema": "json_schema",
    "json_schema": "json_schema",
}
_RESPONSE_FORMAT_EXPECTED = "expected one of `Text`, `JsonObject`, `JsonSchema`"


def _format_type(path: str, raw: dict[str, Any]) -> str:
    if "type" not in raw:
        raise json_data_rejection(f"{path}: missing field `type`")
    kind = raw["type"]
    if not isinstance(kind, str):
        raise json_data_rejection(
            f"{path}.type: invalid type: {_serde_type_name(kind)}, {_RESPONSE_FORMAT_EXPECTED}"
        )
    if kind not in RESPONSE_FORMAT_TYPES:
        raise json_data_rejection(f"{path}.type: unknown variant `{kind}`, {_RESPONSE_FORMAT_EXPECTED}")
    return RESPONSE_FORMAT_TYPES[kind]


def _response_format(path: str, raw: dict[str, Any]) -> dict[str, Any]:
    """`ResponseFormat {type, schema}` (lib.rs:536-543 @a7394ba3): `type` required; a missing `schema`
    defaults to the arbitrary-JSON-object schema even for `text` (validation.rs:369-373 then constrains the
    output to it); an explicit `"schema": null` means no grammar. Returned normalised: {type, schema}."""
    kind = _format_type(path, raw)
    schema = raw["schema"] if "schema" in raw else default_json_schema()
    return {"type": kind, "schema": schema}


def default_json_schema() -> dict[str, Any]:
    """lib.rs:545-553 @a7394ba3."""
    return {
        "additionalProperties": {"type": ["object", "string", "integer", "number", "boolean", "null"]},
        "title": "ArbitraryJsonModel",
        "type": "object",
    }


_MERGED_KINDS: dict[str, Kind] = {
    "weights": Kind.STR_LIST,  # checked as f32 below
    "merge_strategy": Kind.OPT_STR,
    "density": Kind.OPT_F32,
    "majority_sign_method": Kind.OPT_STR,
}
# router's generate.proto `MergeStrategy` / `MajoritySignMethod` (names upper-cased by lib.rs:104-118).
MERGE_STRATEGIES = ("linear", "ties", "dare_linear", "dare_ties")
MAJORITY_SIGN_METHODS = ("total", "frequency")


def _check_merged_adapters(path: str, raw: dict[str, Any]) -> None:
    """`AdapterParameters` (lib.rs:83-99 @a7394ba3): `ids` required (a sequence of strings), `weights` a
    sequence of numbers (default []), `density` a number (default 0.0, not nullable), the two names
    optional strings."""
    if "ids" not in raw:
        raise json_data_rejection(f"{path}: missing field `ids`")
    _check_kind(f"{path}.ids", raw["ids"], Kind.STR_LIST)
    if "weights" in raw:
        weights = raw["weights"]
        if not isinstance(weights, list):
            raise json_data_rejection(
                f"{path}.weights: invalid type: {_serde_type_name(weights)}, expected a sequence"
            )
        for i, w in enumerate(weights):
            if not (isinstance(w, (int, float)) and not isinstance(w, bool)):
                raise json_data_rejection(
                    f"{path}.weights[{i}]: invalid type: {_serde_type_name(w)}, expected f32"
                )
    if "density" in raw and raw["density"] is None:
        raise json_data_rejection(f"{path}.density: invalid type: null, expected f32")
    for key in ("merge_strategy", "density", "majority_sign_method"):
        if key in raw:
            _check_kind(f"{path}.{key}", raw[key], _MERGED_KINDS[key])


def merged_adapter_ids(params: GenerateParams) -> list[str]:
    """The adapter ids of a request: `merged_adapters.ids`, else `[adapter_id]`, else [] (base model)."""
    if params.merged_adapters is not None:
        return [str(i) for i in params.merged_adapters.get("ids") or []]
    return [params.adapter_id] if params.adapter_id else []


def adapter_key(params: GenerateParams) -> str | None:
    """The adapter a request runs on, as one key (None = base model). LoRAX indexes adapters by their
    `AdapterParameters` (infer.rs:301-312, lib.rs:127-162 @a7394ba3): one id compares by the id alone; a
    merge by ids, weights, strategy, density and sign method. The key is the ids joined by "," (what
    `x-adapter-id` shows), plus the merge settings when there are several ids."""
    ids = merged_adapter_ids(params)
    if not ids:
        return None
    if len(ids) == 1:
        return ids[0]
    m = params.merged_adapters or {}
    settings = dumps([m.get("weights") or [], m.get("merge_strategy"), m.get("density") or 0.0,
                      m.get("majority_sign_method")])  # fmt: skip
    return ",".join(ids) + "|" + settings


def adapter_header_id(params: GenerateParams) -> str:
    """`x-adapter-id`: the ids joined by "," (server.rs:831-839 @a7394ba3); "" for the base model."""
    return ",".join(i for i in merged_adapter_ids(params) if i != BASE_MODEL_ADAPTER_ID)


# router/client/src/client.rs:251-270 @a7394ba3: the source is looked up in the proto's AdapterSource enum
# after upper-casing; anything else fails the download.
ADAPTER_SOURCES = ("HUB", "S3", "LOCAL", "PBASE")


def adapter_source_error(source: str, ids: str) -> LoraxError | None:
    """The download error LoRAX reports for a source outside hub/s3/local/pbase (any case), else None;
    `ids` is the adapter ids joined by ","."""
    if source.upper() in ADAPTER_SOURCES:
        return None
    return generation_error(f"Server error: Invalid source '{source}' when downloading adapter '{ids}'")


def samples(params: GenerateParams) -> bool:
    """Whether the shard samples (and so reports `details.seed`): `do_sample`, or any warper the router's
    defaults leave active (server/lorax_server/utils/tokens.py:313-335 @a7394ba3: temperature not 1 or 0,
    top_k != 0, top_p < 1, typical_p < 1; flash_causal_lm.py:2044 reports `seed if do_sample else None`)."""
    t = params.temperature
    return (
        params.do_sample
        or (t is not None and t != 1.0 and t != 0)
        or (params.top_k is not None and params.top_k != 0)
        or (params.top_p is not None and params.top_p < 1.0)
        or (params.typical_p is not None and params.typical_p < 1.0)
    )


def parse_generate_body(body: Any, *, lenient: bool = False) -> tuple[str, GenerateParams, bool]:
    """`{inputs, parameters, stream}` (GenerateRequest / CompatGenerateRequest) → (inputs, params, stream)."""
    if not isinstance(body, dict):
        raise json_data_rejection(f"invalid type: {_serde_type_name(body)}, expected struct GenerateRequest")
    if "inputs" not in body:
        raise json_data_rejection("missing field `inputs`")
    if "parameters" in body and body["parameters"] is None and not lenient:
        # `#[serde(default = "default_parameters")]` (lib.rs:335) applies to a missing key, not to null
        raise json_data_rejection("parameters: invalid type: null, expected struct GenerateParameters")
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
    """Semantic checks, in LoRAX's order (raised as 422 `validation`): the streaming checks of
    server.rs:1031-1041, `validate_best_of` for best_of > 1 (server.rs:689-694 → infer.rs:1007, before
    any generation), then validation.rs:236-417 @a7394ba3. `best_of: 0` takes the plain path on
    `/generate` (only `Some(n) if n > 1` goes best-of), so it is accepted there."""
    if streaming and (params.best_of if params.best_of is not None else 1) != 1:
        raise validation_error("`best_of` != 1 is not supported when streaming tokens")
    if streaming and params.decoder_input_details:
        raise validation_error("`decoder_input_details` == true is not supported when streaming tokens")
    best_of = params.best_of if params.best_of is not None else 1
    if best_of > 1:
        if max_best_of == 1:
            raise validation_error("`best_of` != 1 is not allowed for this endpoint")
        if best_of > max_best_of:
            raise validation_error(f"`best_of` must be > 0 and <= {max_best_of}. Given: {best_of}")
    if params.merged_adapters is not None and params.adapter_id is not None:
        raise validation_error("at most one of `adapter_id` or `adapters` may be provided")
    if params.merged_adapters is not None:
        ids = params.merged_adapters.get("ids") or []
        if len(ids) < 1:
            raise validation_error("at least one adapter ID must be provided when setting `adapters`")
        if len(ids) != len(params.merged_adapters.get("weights") or []):
            raise validation_error("number of adapter IDs must match number of adapter weights")
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
        return limits.max_total_tokens - input_length  # >= 1: input <= max_input_length < max_total_tokens
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
    "user": Kind.OPT_STR,  # lib.rs:685 and 983 @a7394ba3 (unused by LoRAX, but typed)
    "logit_bias": Kind.OPT_OBJECT,  # Option<HashMap<String, f32>> (lib.rs:683, 981); values checked below
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
    for token, bias in (body.get("logit_bias") or {}).items():
        _check_kind(f"logit_bias.{token}", bias, Kind.OPT_F32)
        if bias is None:  # HashMap<String, f32>: the value is not optional
            raise json_data_rejection(f"logit_bias.{token}: invalid type: null, expected f32")


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
    completion_kinds = (("best_of", Kind.OPT_I32), ("logprobs", Kind.OPT_I32), ("echo", Kind.OPT_BOOL),
                        ("suffix", Kind.OPT_STR))  # fmt: skip  # suffix: lib.rs:976, typed though unused
    for key, kind in completion_kinds:
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


# serde's message for an untagged enum none of whose variants matched (MessageContent, lib.rs:605-610)
CONTENT_MISMATCH = "data did not match any variant of untagged enum MessageContent"


def _chunk_text(chunk: Any) -> str | None:
    """One MessageChunk as text (lib.rs:647-662 @a7394ba3), or None when it is not one: the enum is
    internally tagged (lib.rs:590-596): a `text` chunk needs a string `text`, an `image_url` chunk an
    `image_url` object with a string `url` (shown as a markdown image)."""
    if not isinstance(chunk, dict):
        return None
    if chunk.get("type") == "text" and isinstance(chunk.get("text"), str):
        return chunk["text"]
    image = chunk.get("image_url") if chunk.get("type") == "image_url" else None
    if isinstance(image, dict) and isinstance(image.get("url"), str):
        return f"![]({image['url']})"
    return None


def _message_text(index: int, message: Any) -> ChatMessageIn:
    if not isinstance(message, dict):
        raise json_data_rejection(
            f"messages[{index}]: invalid type: {_serde_type_name(message)}, expected struct Message"
        )
    if "role" not in message:
        raise json_data_rejection(f"messages[{index}]: missing field `role`")
    role = message["role"]
    if not isinstance(role, str):
        raise json_data_rejection(
            f"messages[{index}].role: invalid type: {_serde_type_name(role)}, expected a string"
        )
    content = message.get("content")
    if content is None:
        return ChatMessageIn(role, "")
    if isinstance(content, str):
        return ChatMessageIn(role, content)
    texts = [_chunk_text(c) for c in content] if isinstance(content, list) else [None]
    if any(t is None for t in texts):  # untagged: a bad chunk fails the sequence variant too
        raise json_data_rejection(f"messages[{index}].content: {CONTENT_MISMATCH}")
    return ChatMessageIn(role, "".join(t for t in texts if t is not None))


@dataclass
class ChatRequest:
    """A parsed ChatCompletionRequest: the messages, the generate parameters `try_into_generate` maps it to
    (lib.rs:723-857 @a7394ba3), and the tool settings."""

    messages: list[ChatMessageIn]
    params: GenerateParams
    stream: bool
    tools: list[dict[str, Any]] | None = None
    tool_choice: tuple[str, str | None] | None = None  # ("auto"|"none"|"function", name); None = not given
    tool_prompt: str = ""
    response_format: dict[str, Any] | None = None  # after the OpenAI → LoRAX mapping; None = no grammar


def default_tool_prompt() -> str:
    """lib.rs:860-862 @a7394ba3."""
    return (
        "\nGiven the functions available, please respond with a JSON for a function call with its proper "
        "arguments that best answers the given prompt. Respond in the format {name: function name, "
        "parameters: dictionary of argument name and its value}.Do not use variables.\n"
    )


def _chat_response_format(raw: Any) -> dict[str, Any] | None:
    """`OpenAiResponseFormat` (lib.rs:567-576) mapped as lib.rs:752-800 @a7394ba3 does: `text` → no grammar;
    `json_object` → its non-standard `schema`, else the arbitrary-JSON schema; `json_schema` →
    `json_schema.schema`, else the arbitrary-JSON schema."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise json_data_rejection(
            f"response_format: invalid type: {_serde_type_name(raw)}, expected struct OpenAiResponseFormat"
        )
    kind = _format_type("response_format", raw)
    json_schema = raw.get("json_schema")
    if json_schema is not None:
        if not isinstance(json_schema, dict):
            raise json_data_rejection(
                f"response_format.json_schema: invalid type: {_serde_type_name(json_schema)}, "
                "expected struct JsonSchema"
            )
        if "name" not in json_schema:
            raise json_data_rejection("response_format.json_schema: missing field `name`")
        _check_kind("response_format.json_schema.name", json_schema["name"], Kind.OPT_STR)
        if json_schema["name"] is None:
            raise json_data_rejection(
                "response_format.json_schema.name: invalid type: null, expected a string"
            )
    if kind == "text":
        return None
    schema = raw.get("schema") if kind == "json_object" else (json_schema or {}).get("schema")
    return {"type": kind, "schema": schema if schema is not None else default_json_schema()}


def _chat_tools(raw: Any) -> list[dict[str, Any]] | None:
    """`tools: Option<Vec<Tool>>`, `Tool {type, function: FunctionDefinition {description?, name,
    parameters}}` (lib.rs:945-969 @a7394ba3): `parameters` is required (any JSON value, null included)."""
    if raw is None:
        return None
    if not isinstance(raw, list):
        raise json_data_rejection(f"tools: invalid type: {_serde_type_name(raw)}, expected a sequence")
    tools = []
    for i, tool in enumerate(raw):
        path = f"tools[{i}]"
        if not isinstance(tool, dict):
            raise json_data_rejection(f"{path}: invalid type: {_serde_type_name(tool)}, expected struct Tool")
        for key in ("type", "function"):
            if key not in tool:
                raise json_data_rejection(f"{path}: missing field `{key}`")
        if not isinstance(tool["type"], str):
            kind = _serde_type_name(tool["type"])
            raise json_data_rejection(f"{path}.type: invalid type: {kind}, expected a string")
        fn = tool["function"]
        if not isinstance(fn, dict):
            raise json_data_rejection(
                f"{path}.function: invalid type: {_serde_type_name(fn)}, expected struct FunctionDefinition"
            )
        for key in ("name", "parameters"):
            if key not in fn:
                raise json_data_rejection(f"{path}.function: missing field `{key}`")
        if not isinstance(fn["name"], str):
            raise json_data_rejection(
                f"{path}.function.name: invalid type: {_serde_type_name(fn['name'])}, expected a string"
            )
        _check_kind(f"{path}.function.description", fn.get("description"), Kind.OPT_STR)
        tools.append(
            {
                "type": tool["type"],
                "function": {
                    "description": fn.get("description"),
                    "name": fn["name"],
                    "parameters": fn["parameters"],
                },
            }
        )
    return tools


def _tool_choice(raw: Any) -> tuple[str, str | None] | None:
    """`ToolChoice` (lib.rs:885-909 @a7394ba3): null → not given; the strings "none" and "auto"; any other
    string names a function (so OpenAI's "required" looks for a tool named `required`); an externally
    tagged `ToolType` object ({"Function": {"name": …}}, {"OneOf": null}, {"NoTool": null}). OpenAI's
    {"type": "function", "function": {...}} matches no variant of the untagged enum: a 422."""
    if raw is None:
        return None
    if isinstance(raw, str):
        if raw == "none":
            return ("none", None)
        if raw == "auto":
            return ("auto", None)
        return ("function", raw)
    if isinstance(raw, dict) and len(raw) == 1:
        (tag, value), = raw.items()
        if tag == "OneOf" and value is None:
            return ("auto", None)
        if tag == "NoTool" and value is None:
            return ("none", None)
        if tag == "Function" and isinstance(value, dict) and isinstance(value.get("name"), str):
            return ("function", value["name"])
    raise json_data_rejection(
        "tool_choice: data did not match any variant of untagged enum ToolTypeDeserializer"
    )


def parse_chat_request(body: Any, base_model_id: str, *, lenient: bool = False) -> ChatRequest:
    """ChatCompletionRequest → ChatRequest, as `try_into_generate` maps it (lib.rs:723-857 @a7394ba3)."""
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
    tools = _chat_tools(body.get("tools"))
    tool_choice = _tool_choice(body.get("tool_choice"))
    _check_kind("tool_prompt", body.get("tool_prompt"), Kind.OPT_STR)
    _check_kind("guideline", body.get("guideline"), Kind.OPT_STR)  # lib.rs:714-719
    response_format = _chat_response_format(body.get("response_format"))
    temperature = body.get("temperature")
    # lib.rs:807-810: greedy only when temperature is 0
    do_sample = not (temperature is not None and temperature == 0.0)
    if temperature is not None and temperature == 0.0:
        temperature = None
    n = body.get("n")
    params = GenerateParams(
        adapter_id=_adapter_from_model(body["model"], base_model_id),
        adapter_source=body.get("adapter_source"),
        api_token=body.get("api_token"),
        best_of=None if n is None else n % 2**64,  # lib.rs:831 `n.map(|x| x as usize)`
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
        response_format=response_format,
    )
    tool_prompt = body.get("tool_prompt") or default_tool_prompt()
    return ChatRequest(
        messages, params, bool(body.get("stream") or False), tools, tool_choice, tool_prompt, response_format
    )


def parse_chat_body(
    body: Any, base_model_id: str, *, lenient: bool = False
) -> tuple[list[ChatMessageIn], GenerateParams, bool]:
    """ChatCompletionRequest → (messages, GenerateParams, stream) (see `parse_chat_request`)."""
    req = parse_chat_request(body, base_model_id, lenient=lenient)
    return req.messages, req.params, req.stream


# --------------------------------------------------------------------------------------------------
# Tools (tool_grammar.rs and server.rs `prepare_chat_input` / `chat_completions_v1` @a7394ba3)
# --------------------------------------------------------------------------------------------------
NO_TOOL = "no_tool"


def _no_tool() -> dict[str, Any]:
    """tool_grammar.rs:33-49: the function LoRAX adds so that the model may answer in text."""
    return {
        "type": "function",
        "function": {
            "description": "Open ened response with no specific tool selected",
            "name": NO_TOOL,
            "parameters": {
                "type": "object",
                "properties": {"content": {"type": "string", "description": "The response content"}},
                "required": ["content"],
            },
        },
    }


@dataclass
class ToolPlan:
    """What LoRAX does with a chat request's tools: the text appended to the last message, and the
    functions the output grammar allows (None: no grammar, the answer is plain text)."""

    prompt_suffix: str | None
    functions: list[dict[str, Any]] | None


def plan_tools(req: ChatRequest) -> ToolPlan:
    """`prepare_chat_input` (server.rs:421-463) + `ToolGrammar::apply` (tool_grammar.rs:20-61) + the default
    tool template (infer.rs:109-129: the tools JSON and the tool prompt appended to the last message, as
    the Mistral v0.1 template has no `tools` variable)."""
    if req.response_format is not None and req.tools is not None:
        raise tool_error("Response format and tools are mutually exclusive")
    if req.response_format is not None or req.tools is None:
        return ToolPlan(None, None)
    tools = list(req.tools)
    if not tools:
        return ToolPlan(f"\n---\n{dumps(tools)}\n{req.tool_prompt}", None)
    tools.append(_no_tool())
    suffix = f"\n---\n{dumps(tools)}\n{req.tool_prompt}"
    kind, name = req.tool_choice or ("auto", None)
    if kind == "none":
        return ToolPlan(suffix, None)
    if kind == "function":
        chosen = [t for t in tools if t["function"]["name"] == name]
        if not chosen:
            raise tool_error(f"Tool with name {name} not found")
        return ToolPlan(suffix, chosen[:1])
    return ToolPlan(suffix, tools)


def grammar_schema(function: dict[str, Any]) -> dict[str, Any]:
    """The per-function object schema of tool_grammar.rs:63-102: `_name` (const) first, then the function's
    properties; `_name` plus the function's `required`."""
    params = function.get("parameters")
    properties: dict[str, Any] = {"_name": {"type": "string", "const": function["name"]}}
    required: list[Any] = ["_name"]
    if isinstance(params, dict):
        if isinstance(params.get("properties"), dict):
            properties.update(params["properties"])
        if isinstance(params.get("required"), list):
            required.extend(params["required"])
    return {"description": function.get("description") or "", "properties": properties, "required": required}


def tool_calls_from_text(text: str) -> tuple[list[dict[str, Any]] | None, str | None]:
    """(tool_calls, content) of one generated text, as chat_completions_v1 reads it (server.rs:340-392)."""
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise tool_error(f"Failed to parse generated text: {exc} {json.dumps(text)}") from None
    if not isinstance(value, dict) or "function" not in value:  # Value::get: None only when absent
        raise tool_error("No function found in generated text")
    function = value["function"]
    name = function.get("_name") if isinstance(function, dict) else None
    if not isinstance(name, str):
        raise tool_error("No _name found in generated text")
    arguments = {k: v for k, v in function.items() if k != "_name"}
    if name == NO_TOOL:
        content = arguments.get("content")
        if not isinstance(content, str):
            raise tool_error("No `content` found in generated text")
        return None, content
    call = {
        "id": "0",
        "type": "function",
        "function": {"description": None, "name": name, "arguments": dumps(arguments)},
    }
    return [call], None


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


def token_json(
    token_id: int,
    text: str,
    logprob: float,
    special: bool = False,
    alternative_tokens: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """lib.rs:405-419 @a7394ba3: `alternative_tokens` is left out when None (skip_serializing_if)."""
    out: dict[str, Any] = {"id": token_id, "text": text, "logprob": logprob, "special": special}
    if alternative_tokens is not None:
        out["alternative_tokens"] = alternative_tokens
    out["skipped"] = False
    return out


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
    best_of_sequences: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """lib.rs:459-475 @a7394ba3: `best_of_sequences` is left out when None."""
    out: dict[str, Any] = {
        "finish_reason": finish_reason,
        "prompt_tokens": prompt_tokens,
        "generated_tokens": len(tokens),
        "skipped_tokens": 0,
        "seed": seed,
        "prefill": prefill or [],
        "tokens": tokens,
    }
    if best_of_sequences is not None:
        out["best_of_sequences"] = best_of_sequences
    return out


def best_of_sequence(
    generated_text: str,
    finish_reason: str,
    tokens: list[dict[str, Any]],
    seed: int | None,
    prefill: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """`BestOfSequence` (lib.rs:445-457 @a7394ba3), field order as declared."""
    return {
        "generated_text": generated_text,
        "finish_reason": finish_reason,
        "generated_tokens": len(tokens),
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
    choices: list[tuple[list[dict[str, Any]] | None, str | None]] | None = None,
) -> dict[str, Any]:
    """`ChatCompletionResponse::new` (lib.rs:1362-1433 @a7394ba3): one choice per (tool_calls, content)
    pair — the best sequence first, then `best_of_sequences` — all with the best sequence's finish reason
    and usage; a tool call's message has `tool_calls` and no `content` (ChatMessage skips None fields)."""
    pairs = choices if choices is not None else [(None, content)]
    out_choices = []
    for index, (tool_calls, text) in enumerate(pairs):
        message: dict[str, Any] = {"role": "assistant"}
        if text is not None:
            message["content"] = text
        elif tool_calls is not None:
            message["tool_calls"] = tool_calls
        finish = OPENAI_FINISH[finish_reason]
        out_choices.append({"index": index, "message": message, "finish_reason": finish})
    return {
        "id": "null",
        "object": "text_completion",
        "created": created,
        "model": model,
        "choices": out_choices,
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


# A native token event as LoRAX writes it: `StreamResponse` (lib.rs @a7394ba3) serialized in field order,
# `generated_text` and `details` null on every event but the last.
_NATIVE_TOKEN_HEAD = b'data:{"token":'
_NATIVE_TOKEN_TAIL = b',"generated_text":null,"details":null}'


def is_native_token_line(line: bytes) -> bool:
    """True for a native stream's token event, told from its first and last bytes (no JSON parse): the
    harness's fast path. The tail's top-level `generated_text` null is what makes it a token, not the final
    event (see `parse_sse_line`); anything else, e.g. "\r\n" line ends, returns False: parse it instead."""
    return line.startswith(_NATIVE_TOKEN_HEAD) and line.endswith(_NATIVE_TOKEN_TAIL)


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
