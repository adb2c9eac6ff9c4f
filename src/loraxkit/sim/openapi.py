"""`/api-doc/openapi.json` and `/docs/`: the OpenAPI document LoRAX's router serves through utoipa, and a
Swagger UI page.

The document follows `ApiDoc` (server.rs:1388-1454 @a7394ba3): the same title, license, version (the
router's Cargo version, 0.1.0), tags, paths with their operation ids (the handler names), request bodies,
response statuses and content types, and the component schema names. The schemas' properties come from the
simulator's own field tables (`loraxkit.wire`), not from utoipa's derive, so examples and descriptions
differ: a client generator gets the same operations and models, not the same bytes.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from loraxkit import wire

_KIND_SCHEMA: dict[wire.Kind, dict[str, Any]] = {
    wire.Kind.OPT_STR: {"type": "string", "nullable": True},
    wire.Kind.OPT_U32: {"type": "integer", "format": "int32", "minimum": 0, "nullable": True},
    wire.Kind.OPT_USIZE: {"type": "integer", "minimum": 0, "nullable": True},
    wire.Kind.OPT_I32: {"type": "integer", "format": "int32", "nullable": True},
    wire.Kind.OPT_U64: {"type": "integer", "format": "int64", "minimum": 0, "nullable": True},
    wire.Kind.OPT_F32: {"type": "number", "format": "float", "nullable": True},
    wire.Kind.BOOL: {"type": "boolean"},
    wire.Kind.OPT_BOOL: {"type": "boolean", "nullable": True},
    wire.Kind.STR_LIST: {"type": "array", "items": {"type": "string"}},
    wire.Kind.OPT_OBJECT: {"type": "object", "nullable": True},
}
_REFS = {"merged_adapters": "AdapterParameters", "response_format": "ResponseFormat"}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(required: list[str], **props: Any) -> dict[str, Any]:
    return {"type": "object", "required": required, "properties": props}


def _schemas() -> dict[str, Any]:
    params = {
        k: (_ref(_REFS[k]) if k in _REFS else _KIND_SCHEMA[v])
        for k, v in wire.GENERATE_PARAMETER_KINDS.items()
    }
    string, integer, number = {"type": "string"}, {"type": "integer"}, {"type": "number", "format": "float"}
    nullable_int = {"type": "integer", "nullable": True}
    token = _obj(
        ["id", "text", "logprob", "special", "skipped"],
        id=integer,
        text=string,
        logprob={**number, "nullable": True},
        special={"type": "boolean"},
        alternative_tokens={"type": "array", "items": _ref("AlternativeToken"), "nullable": True},
        skipped={"type": "boolean"},
    )
    details_common = {
        "finish_reason": _ref("FinishReason"),
        "generated_tokens": integer,
        "seed": nullable_int,
        "prefill": {"type": "array", "items": _ref("PrefillToken")},
        "tokens": {"type": "array", "items": _ref("Token")},
    }
    message = _obj(["role"], role=string, content={"type": "string", "nullable": True})
    openai_request = {
        "model": string,
        "max_tokens": nullable_int,
        "temperature": {**number, "nullable": True},
        "top_p": {**number, "nullable": True},
        "n": nullable_int,
        "stream": {"type": "boolean", "nullable": True},
        "stop": {"type": "array", "items": string},
        "seed": nullable_int,
        "repetition_penalty": {**number, "nullable": True},
        "top_k": nullable_int,
        "ignore_eos_token": {"type": "boolean", "nullable": True},
        "adapter_source": {"type": "string", "nullable": True},
        "api_token": {"type": "string", "nullable": True},
    }
    usage = _obj(
        ["prompt_tokens", "total_tokens"],
        prompt_tokens=integer,
        total_tokens=integer,
        completion_tokens=nullable_int,
    )
    return {
        "Info": _obj(list(_INFO_FIELDS), **_INFO_FIELDS),
        "UsageInfo": usage,
        "ResponseFormat": _obj(
            ["type"], type=_ref("ResponseFormatType"), schema={"type": "object", "nullable": True}
        ),
        "ResponseFormatType": {"type": "string", "enum": ["text", "json_object", "json_schema"]},
        "OpenAiResponseFormat": _obj(
            ["type"],
            type=_ref("ResponseFormatType"),
            json_schema=_ref("JsonSchema"),
            schema={"type": "object", "nullable": True},
        ),
        "JsonSchema": _obj(
            ["name"],
            description={"type": "string", "nullable": True},
            name=string,
            schema={"type": "object", "nullable": True},
            strict={"type": "boolean", "nullable": True},
        ),
        "CompatGenerateRequest": _obj(
            ["inputs"],
            inputs=string,
            parameters=_ref("GenerateParameters"),
            stream={"type": "boolean", "default": False},
        ),
        "GenerateRequest": _obj(["inputs"], inputs=string, parameters=_ref("GenerateParameters")),
        "GenerateParameters": {"type": "object", "properties": params},
        "AdapterParameters": _obj(
            ["ids"],
            ids={"type": "array", "items": string},
            weights={"type": "array", "items": number},
            merge_strategy={"type": "string", "nullable": True, "enum": list(wire.MERGE_STRATEGIES)},
            density=number,
            majority_sign_method={
                "type": "string",
                "nullable": True,
                "enum": list(wire.MAJORITY_SIGN_METHODS),
            },
        ),
        "AlternativeToken": _obj(
            ["id", "text", "logprob"], id=integer, text=string, logprob={**number, "nullable": True}
        ),
        "PrefillToken": _obj(
            ["id", "text", "logprob"], id=integer, text=string, logprob={**number, "nullable": True}
        ),
        "Token": token,
        "SimpleToken": _obj(
            ["id", "text", "start", "stop"], id=integer, text=string, start=integer, stop=integer
        ),
        "TokenizeRequest": _obj(
            ["inputs"], inputs=string, add_special_tokens={"type": "boolean", "nullable": True}
        ),
        "TokenizeResponse": {"type": "array", "items": _ref("SimpleToken")},
        "GenerateResponse": _obj(["generated_text"], generated_text=string, details=_ref("Details")),
        "BestOfSequence": _obj(["generated_text", *details_common], generated_text=string, **details_common),
        "Details": _obj(
            ["finish_reason", "prompt_tokens", "skipped_tokens", *details_common],
            prompt_tokens=integer,
            skipped_tokens=integer,
            **details_common,
            best_of_sequences={"type": "array", "items": _ref("BestOfSequence"), "nullable": True},
        ),
        "FinishReason": {"type": "string", "enum": ["length", "eos_token", "stop_sequence"]},
        "StreamResponse": _obj(
            ["token"],
            token=_ref("Token"),
            generated_text={"type": "string", "nullable": True},
            details=_ref("StreamDetails"),
        ),
        "StreamDetails": _obj(
            ["finish_reason", "prompt_tokens", "generated_tokens"],
            finish_reason=_ref("FinishReason"),
            prompt_tokens=integer,
            generated_tokens=integer,
            seed=nullable_int,
        ),
        "ErrorResponse": _obj(["error", "error_type"], error=string, error_type=string),
        "ChatMessage": message,
        "LogProbs": _obj([], text_offset={"type": "array", "items": integer}),
        "CompletionRequest": _obj(
            ["model", "prompt"],
            prompt=string,
            **openai_request,
            best_of=nullable_int,
            logprobs=nullable_int,
            echo={"type": "boolean", "nullable": True},
        ),
        "CompletionResponse": _obj(
            ["id", "object", "created", "model", "choices", "usage"],
            id=string,
            object=string,
            created=integer,
            model=string,
            choices={"type": "array", "items": _ref("CompletionResponseChoice")},
            usage=_ref("UsageInfo"),
        ),
        "CompletionResponseChoice": _obj(
            ["index", "text"], index=integer, text=string, finish_reason=_ref("CompletionFinishReason")
        ),
        "CompletionStreamResponse": _obj(
            ["id", "object", "created", "model", "choices"],
            id=string,
            object=string,
            created=integer,
            model=string,
            choices={"type": "array", "items": _ref("CompletionResponseStreamChoice")},
            usage=_ref("UsageInfo"),
        ),
        "CompletionResponseStreamChoice": _obj(
            ["index", "text"], index=integer, text=string, finish_reason=_ref("CompletionFinishReason")
        ),
        "CompletionFinishReason": {
            "type": "string",
            "enum": ["stop", "length", "content_filter", "tool_calls"],
        },
        "ChatCompletionRequest": _obj(
            ["model", "messages"],
            messages={"type": "array", "items": _ref("ChatMessage")},
            **openai_request,
            response_format=_ref("OpenAiResponseFormat"),
            tools={"type": "array", "items": {"type": "object"}, "nullable": True},
            tool_choice={"nullable": True},
            tool_prompt={"type": "string", "nullable": True},
            guideline={"type": "string", "nullable": True},
        ),
        "ChatCompletionResponse": _obj(
            ["id", "object", "created", "model", "choices", "usage", "system_fingerprint"],
            id=string,
            object=string,
            created=integer,
            model=string,
            choices={"type": "array", "items": _ref("ChatCompletionResponseChoice")},
            usage=_ref("UsageInfo"),
            system_fingerprint=string,
        ),
        "ChatCompletionResponseChoice": _obj(
            ["index", "message"],
            index=integer,
            message=_ref("ChatMessage"),
            finish_reason=_ref("CompletionFinishReason"),
        ),
        "ChatCompletionStreamResponse": _obj(
            ["id", "object", "created", "model", "choices"],
            id=string,
            object=string,
            created=integer,
            model=string,
            choices={"type": "array", "items": _ref("ChatCompletionStreamResponseChoice")},
            usage=_ref("UsageInfo"),
        ),
        "ChatCompletionStreamResponseChoice": _obj(
            ["index", "delta"],
            index=integer,
            delta=_ref("ChatMessage"),
            finish_reason=_ref("CompletionFinishReason"),
        ),
    }


_INFO_FIELDS: dict[str, Any] = {
    "model_id": {"type": "string"},
    "model_sha": {"type": "string", "nullable": True},
    "model_dtype": {"type": "string"},
    "model_device_type": {"type": "string"},
    "model_pipeline_tag": {"type": "string", "nullable": True},
    "max_concurrent_requests": {"type": "integer"},
    "max_best_of": {"type": "integer"},
    "max_stop_sequences": {"type": "integer"},
    "max_input_length": {"type": "integer"},
    "max_total_tokens": {"type": "integer"},
    "waiting_served_ratio": {"type": "number", "format": "float"},
    "max_batch_total_tokens": {"type": "integer"},
    "max_waiting_tokens": {"type": "integer"},
    "validation_workers": {"type": "integer"},
    "eager_prefill": {"type": "boolean"},
    "version": {"type": "string"},
    "sha": {"type": "string", "nullable": True},
    "docker_label": {"type": "string", "nullable": True},
    "request_logger_url": {"type": "string", "nullable": True},
}
_ERRORS = (
    ("424", "Generation Error"),
    ("429", "Model is overloaded"),
    ("422", "Input validation error"),
    ("500", "Incomplete generation"),
)


def _json(name: str) -> dict[str, Any]:
    return {"application/json": {"schema": _ref(name)}}


def _generation_op(op: str, tag: str, request: str, ok: dict[str, Any], error_type: str) -> dict[str, Any]:
    responses: dict[str, Any] = {"200": {"description": "Generated Text", "content": ok}}
    for status, text in _ERRORS:
        responses[status] = {"description": text, "content": {error_type: {"schema": _ref("ErrorResponse")}}}
    return {
        "post": {
            "tags": [tag],
            "operationId": op,
            "requestBody": {"content": _json(request), "required": True},
            "responses": responses,
        }
    }


def _health_op(op: str, description: str) -> dict[str, Any]:
    return {
        "get": {
            "tags": ["LoRAX"],
            "operationId": op,
            "responses": {
                "200": {"description": description},
                "503": {"description": "LoRAX is down", "content": _json("ErrorResponse")},
            },
        }
    }


def _paths() -> dict[str, Any]:
    sse = "text/event-stream"
    return {
        "/health": _health_op("health", "Everything is working fine"),
        "/info": {
            "get": {
                "tags": ["LoRAX"],
                "operationId": "get_model_info",
                "responses": {"200": {"description": "Served model info", "content": _json("Info")}},
            }
        },
        "/": _generation_op(
            "compat_generate",
            "LoRAX",
            "CompatGenerateRequest",
            {**_json("GenerateResponse"), sse: {"schema": _ref("StreamResponse")}},
            "application/json",
        ),
        "/generate": _generation_op(
            "generate", "LoRAX", "GenerateRequest", _json("GenerateResponse"), "application/json"
        ),
        "/generate_stream": _generation_op(
            "generate_stream", "LoRAX", "GenerateRequest", {sse: {"schema": _ref("StreamResponse")}}, sse
        ),
        "/v1/completions": _generation_op(
            "completions_v1",
            "OpenAI Compatible",
            "CompletionRequest",
            {**_json("CompletionResponse"), sse: {"schema": _ref("CompletionStreamResponse")}},
            "application/json",
        ),
        "/v1/chat/completions": _generation_op(
            "chat_completions_v1",
            "OpenAI Compatible",
            "ChatCompletionRequest",
            {**_json("ChatCompletionResponse"), sse: {"schema": _ref("ChatCompletionStreamResponse")}},
            "application/json",
        ),
        "/tokenize": {
            "post": {
                "tags": ["Tokenization"],
                "operationId": "tokenize",
                "requestBody": {"content": _json("TokenizeRequest"), "required": True},
                "responses": {
                    "200": {"description": "Tokenized ids", "content": _json("TokenizeResponse")},
                    "404": {"description": "No tokenizer found", "content": _json("ErrorResponse")},
                },
            }
        },
        "/metrics": {
            "get": {
                "tags": ["LoRAX"],
                "operationId": "metrics",
                "parameters": [
                    {
                        "name": "format",
                        "in": "query",
                        "required": False,
                        "description": "Optional format parameter (prometheus|json)",
                        "schema": {"type": "string"},
                    }
                ],
                "responses": {
                    "200": {
                        "description": "Prometheus or JSON Metrics",
                        "content": {
                            "text/plain": {"schema": {"type": "string"}},
                            "application/json": {"schema": {"type": "object"}},
                        },
                    }
                },
            }
        },
    }


@lru_cache(maxsize=4)
def _document(model_id: str) -> dict[str, Any]:
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "LoRAX",
            "description": "LoRAX Webserver",
            "contact": {"name": "Predibase"},
            "license": {"name": "Apache 2.0", "url": "https://www.apache.org/licenses/LICENSE-2.0"},
            "version": "0.1.0",
        },
        "paths": _paths(),
        "components": {"schemas": _schemas()},
        "tags": [
            {"name": "LoRAX", "description": "LoRAX API"},
            {"name": "OpenAI Compatible", "description": "OpenAI compatible API"},
            {"name": "Tokenization", "description": "Tokenizer API"},
        ],
    }


def openapi_document(model_id: str) -> dict[str, Any]:
    """The `/api-doc/openapi.json` document."""
    return _document(model_id)


def swagger_page() -> str:
    """`/docs/`: LoRAX serves the Swagger UI bundle (utoipa-swagger-ui ships it); the simulator ships no
    JavaScript, so its page points at the document and names the routes."""
    ops = "".join(f"<li><code>{m.upper()} {p}</code></li>" for p, v in _paths().items() for m in v)
    return (
        '<!DOCTYPE html><html><head><meta charset="utf-8"><title>LoRAX simulator API</title></head><body>'
        "<h1>LoRAX API (loraxkit simulator)</h1>"
        f'<p>OpenAPI document: <a href="{wire.ROUTE_OPENAPI}">{wire.ROUTE_OPENAPI}</a></p><ul>{ops}</ul>'
        "</body></html>"
    )
