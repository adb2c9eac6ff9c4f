"""The OpenAI request side of the wire format, both sides of each rule: `/v1/completions` and
`/v1/chat/completions` bodies (required fields, the model that means "no adapter", the fields `From<
CompletionRequest>` maps), chat messages, `response_format` (which schema each type takes), `tools` (serde's
checks of `Tool` and `FunctionDefinition`) and `tool_choice` (every string and externally tagged variant, and
the shapes no variant matches), plus the `--lenient` mapping of `stop: null` and `max_completion_tokens`.

Expected values come from predibase/lorax `router/src/{lib,server,adapter}.rs` @a7394ba3 (line numbers in the
comments) and serde's message format (`<path>: invalid type: <what>, expected <what>`, as axum's Json
extractor reports it with serde_path_to_error); the `--lenient` rows from docs/simulator.md's leniency table.
All in-process: no simulator, no timing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from loraxkit import wire
from loraxkit.wire import BodyRejection

PREFIX = "Failed to deserialize the JSON body into the target type: "
BASE = "org/base-model"  # the served model id (`--model-id`): unlike any adapter name below
HI = [{"role": "user", "content": "hi"}]


def _completion(lenient: bool = False, **fields: Any) -> tuple[str, wire.GenerateParams, bool]:
    return wire.parse_completion_body({"model": "me/adapter", "prompt": "p", **fields}, BASE, lenient=lenient)


def _chat(lenient: bool = False, **fields: Any) -> wire.ChatRequest:
    return wire.parse_chat_request({"model": "me/adapter", "messages": HI, **fields}, BASE, lenient=lenient)


def _completion_params(lenient: bool = False, **fields: Any) -> wire.GenerateParams:
    return _completion(lenient, **fields)[1]


def _chat_params(lenient: bool = False, **fields: Any) -> wire.GenerateParams:
    return _chat(lenient, **fields).params


PARSERS = {"completion": _completion_params, "chat": _chat_params}


def _refusal(call: Callable[[], Any]) -> str:
    """The text of the 422 serde rejection `call` raises, after axum's prefix."""
    with pytest.raises(BodyRejection) as caught:
        call()
    assert caught.value.status == 422
    text = str(caught.value)
    assert text.startswith(PREFIX)
    return text[len(PREFIX) :]


# ---------------------------------------------------------------------------- required fields and the model
# CompletionRequest (lib.rs:972-974) has `model: String, prompt: String`, ChatCompletionRequest
# (lib.rs:668-670) `model: String, messages: Vec<Message>`, none with a serde default: left out, serde names
# the missing field; given as another type, serde names the field and both types.
REQUIRED = [
    ("completion", {"prompt": "p"}, "missing field `model`"),
    ("completion", {"model": "m"}, "missing field `prompt`"),
    ("chat", {"messages": HI}, "missing field `model`"),
    ("completion", {"model": 3, "prompt": "p"}, "model: invalid type: integer `3`, expected a string"),
    ("completion", {"model": "m", "prompt": ["p"]}, "prompt: invalid type: sequence, expected a string"),
    ("completion", {"model": "m", "prompt": True}, "prompt: invalid type: boolean `true`, expected a string"),
    ("chat", {"model": {"id": "m"}, "messages": HI}, "model: invalid type: map, expected a string"),
]


@pytest.mark.parametrize(("route", "body", "message"), REQUIRED, ids=[r[2] for r in REQUIRED])
def test_a_required_field_left_out_or_of_another_type_is_refused_by_name(
    route: str, body: dict[str, Any], message: str
) -> None:
    parse = wire.parse_completion_body if route == "completion" else wire.parse_chat_body
    assert _refusal(lambda: parse(body, BASE)) == message
    fixed = {"model": "m", "prompt": "p"} if route == "completion" else {"model": "m", "messages": HI}
    assert parse(fixed, BASE) is not None  # both given as strings: accepted


@pytest.mark.parametrize(
    ("body", "kind"), [("p", 'string "p"'), (None, "null"), (7, "integer `7`"), (False, "boolean `false`")]
)
def test_a_completion_body_that_is_not_an_object_is_refused(body: Any, kind: str) -> None:
    # the whole body is a CompletionRequest struct: serde names no path, only the found and expected types
    # (no sequence row: serde_json reads a struct from a sequence of its fields, with its own message)
    assert _refusal(lambda: wire.parse_completion_body(body, BASE)) == (
        f"invalid type: {kind}, expected struct CompletionRequest"
    )


@pytest.mark.parametrize("route", ["completion", "chat"])
@pytest.mark.parametrize(
    ("model", "adapter"), [(BASE, None), ("", None), ("me/adapter", "me/adapter"), (BASE + "-2", BASE + "-2")]
)
def test_the_served_model_id_and_the_empty_model_mean_the_base_model(
    route: str, model: str, adapter: str | None
) -> None:
    # server.rs:179-183 and 267-271 @a7394ba3: `model` equal to the served model id becomes ""; lib.rs:750-752
    # (chat) and adapter.rs:80-82 (every route): an empty adapter id is the base model. Any other name is an
    # adapter id, a name that only starts with the model id included.
    params = PARSERS[route](model=model)
    assert params.adapter_id == adapter


# The typed fields both OpenAI bodies share (CompletionRequest lib.rs:972-1000, ChatCompletionRequest
# lib.rs:668-720 @a7394ba3): each end of an integer's range passes, one past is serde's "invalid value"; a
# float field takes integers but not booleans; a string field takes nothing else.
I32_LOW, I32_HIGH = -(2**31), 2**31 - 1
I32_PAST = "invalid value: integer `2147483648`, expected i32"
COMMON_KINDS = [
    ("max_tokens", (I32_LOW, I32_HIGH), I32_HIGH + 1, "max_tokens: " + I32_PAST),
    ("max_tokens", (0,), I32_LOW - 1, "max_tokens: invalid value: integer `-2147483649`, expected i32"),
    ("n", (I32_LOW, I32_HIGH), I32_HIGH + 1, "n: " + I32_PAST),
    ("top_k", (I32_LOW, I32_HIGH), I32_LOW - 1, "top_k: invalid value: integer `-2147483649`, expected i32"),
    ("seed", (0, 2**64 - 1), -1, "seed: invalid value: integer `-1`, expected u64"),
    ("temperature", (1, 0.5, 0), True, "temperature: invalid type: boolean `true`, expected f32"),
    ("top_p", (1.0, 1), "0.9", 'top_p: invalid type: string "0.9", expected f32'),
    ("repetition_penalty", (1.2,), [1.2], "repetition_penalty: invalid type: sequence, expected f32"),
    ("adapter_source", ("hub", None), 3, "adapter_source: invalid type: integer `3`, expected a string"),
    ("api_token", ("t",), {"t": 1}, "api_token: invalid type: map, expected a string"),
]  # fmt: skip


@pytest.mark.parametrize("route", ["completion", "chat"])
@pytest.mark.parametrize(
    ("key", "accepted", "refused", "message"), COMMON_KINDS, ids=[k[3] for k in COMMON_KINDS]
)
def test_a_shared_openai_field_takes_its_whole_type_and_nothing_past_it(
    route: str, key: str, accepted: tuple[Any, ...], refused: Any, message: str
) -> None:
    parse = PARSERS[route]
    for value in accepted:
        parse(**{key: value})
    assert _refusal(lambda: parse(**{key: refused})) == message


# ---------------------------------------------------------------------------- From<CompletionRequest>
# lib.rs:1251-1285 @a7394ba3: (fields, the GenerateParams / stream they give)
COMPLETION_MAPPING = [
    ({}, {"do_sample": False, "details": True, "decoder_input_details": False, "return_full_text": None,
          "best_of": None, "stream": False}),
    ({"n": 1}, {"do_sample": True}),  # 1269: `do_sample: !req.n.is_none()`
    ({"n": 0}, {"do_sample": True}),  # any n, even 0, is `Some`
    ({"n": None}, {"do_sample": False}),
    ({"logprobs": 0}, {"decoder_input_details": True}),  # 1277: `req.logprobs.is_some()`, 0 included
    ({"logprobs": None}, {"decoder_input_details": False}),
    ({"echo": True}, {"return_full_text": True}),  # 1272
    ({"echo": False}, {"return_full_text": False}),
    ({"best_of": 2}, {"best_of": 2}),
    ({"stream": True}, {"stream": True}),  # 1283: `req.stream.unwrap_or(false)`
    ({"stream": False}, {"stream": False}),
    ({"stream": None}, {"stream": False}),
    ({"details": False, "decoder_input_details": True}, {"details": True, "decoder_input_details": False}),
]  # fmt: skip


@pytest.mark.parametrize(
    ("fields", "expected"), COMPLETION_MAPPING, ids=[str(m[0]) for m in COMPLETION_MAPPING]
)
def test_a_completion_body_maps_to_generate_parameters_as_lorax_maps_it(
    fields: dict[str, Any], expected: dict[str, Any]
) -> None:
    # `details: true` always (1276); `details`/`decoder_input_details` are not CompletionRequest fields, so
    # serde ignores them (the last row)
    prompt, params, stream = _completion(**fields)
    got = {**{k: getattr(params, k) for k in expected if k != "stream"}, "stream": stream}
    assert prompt == "p"
    assert got == {"stream": False, **expected}


# CompletionRequest's own typed fields (lib.rs:972-1000): `best_of: Option<i32>`, `logprobs: Option<i32>`,
# `echo: Option<bool>`; the accepted value beside each refused one.
COMPLETION_KINDS = [
    ("best_of", 2**31 - 1, "2", 'best_of: invalid type: string "2", expected i32'),
    ("best_of", -(2**31), 2**31, "best_of: invalid value: integer `2147483648`, expected i32"),
    ("logprobs", 5, 1.5, "logprobs: invalid type: floating point `1.5`, expected i32"),
    ("logprobs", None, [1], "logprobs: invalid type: sequence, expected i32"),
]


@pytest.mark.parametrize(
    ("key", "ok", "bad", "message"), COMPLETION_KINDS, ids=[k[3] for k in COMPLETION_KINDS]
)
def test_completion_only_fields_are_typed_like_loraxs_struct(
    key: str, ok: Any, bad: Any, message: str
) -> None:
    _completion(**{key: ok})
    assert _refusal(lambda: _completion(**{key: bad})) == message


def test_a_completion_echo_that_is_not_a_boolean_is_refused_by_name() -> None:
    # `echo: Option<bool>` (lib.rs:981). Only the path and the found type are asserted: serde's expected
    # text for Option<bool> is bool's "a boolean" (see the report of this session), wire.py says otherwise
    _completion(echo=True)
    _completion(echo=None)
    assert _refusal(lambda: _completion(echo="yes")).startswith('echo: invalid type: string "yes", expected ')


# ---------------------------------------------------------------------------- --lenient
# docs/simulator.md "Leniency switch": `stop: null` → no stop sequences; `max_completion_tokens` alone → used
# as `max_tokens`; an explicit `max_tokens` wins. Without --lenient LoRAX's typing: `#[serde(default)] stop:
# Vec<String>` refuses null (lib.rs:675-676, 984-985) and `max_completion_tokens` is an unknown key, ignored.
@pytest.mark.parametrize("route", ["completion", "chat"])
def test_lenient_drops_a_null_stop_that_loraxs_typing_refuses(route: str) -> None:
    parse = PARSERS[route]
    assert parse(lenient=True, stop=None).stop == []
    assert parse(lenient=True, stop=["a", "b"]).stop == ["a", "b"]
    assert _refusal(lambda: parse(stop=None)) == "stop: invalid type: null, expected a sequence"
    assert parse().stop == []


MAX_COMPLETION = [
    ({"max_completion_tokens": 7}, None, 7),
    ({"max_tokens": None, "max_completion_tokens": 7}, None, 7),
    ({"max_tokens": 3, "max_completion_tokens": 7}, 3, 3),
    ({"max_tokens": 3}, 3, 3),
    ({"max_completion_tokens": None}, None, None),
]


@pytest.mark.parametrize("route", ["completion", "chat"])
@pytest.mark.parametrize(
    ("fields", "strict", "lenient"), MAX_COMPLETION, ids=[str(m[0]) for m in MAX_COMPLETION]
)
def test_lenient_takes_max_completion_tokens_only_when_max_tokens_is_not_given(
    route: str, fields: dict[str, Any], strict: int | None, lenient: int | None
) -> None:
    parse = PARSERS[route]
    assert parse(**fields).max_new_tokens == strict
    assert parse(lenient=True, **fields).max_new_tokens == lenient


# ---------------------------------------------------------------------------- chat messages
# `messages: Vec<Message>`, `Message {role: String, #[serde(default)] content: Option<MessageContent>}` with
# MessageContent an untagged enum of a string or a sequence of chunks (lib.rs:598-615 @a7394ba3).
def _messages(*messages: Any) -> list[wire.ChatMessageIn]:
    return wire.parse_chat_body({"model": "m", "messages": list(messages)}, BASE)[0]


@pytest.mark.parametrize(
    ("message", "kind"), [("hi", 'string "hi"'), (3, "integer `3`"), (None, "null"), (True, "boolean `true`")]
)
def test_a_message_that_is_not_an_object_is_refused_naming_its_index(message: Any, kind: str) -> None:
    # (no sequence here: serde_json reads a struct from a sequence of its fields in order, so LoRAX takes
    # `["user"]` as a message; see the report)
    assert (
        _refusal(lambda: _messages(HI[0], message))
        == f"messages[1]: invalid type: {kind}, expected struct Message"
    )


@pytest.mark.parametrize(
    "message", [{"content": "x"}, {"role": 3, "content": "x"}, {"role": None, "content": "x"}]
)
def test_a_message_without_a_string_role_is_refused_naming_its_index(message: dict[str, Any]) -> None:
    # serde: `messages[1]: missing field `role`` / `messages[1].role: invalid type: ..., expected a string`;
    # only the part both forms share is asserted (wire.py words it as one message: see the report)
    assert _refusal(lambda: _messages(HI[0], message)).startswith("messages[1]")
    assert [(m.role, m.content) for m in _messages({"role": "tool", "content": "x"})] == [("tool", "x")]


@pytest.mark.parametrize("content", [3, True, {"type": "text", "text": "x"}, 1.5])
def test_content_neither_a_string_nor_a_chunk_sequence_is_refused_naming_the_field(content: Any) -> None:
    # serde's untagged MessageContent: `messages[1].content: data did not match any variant of untagged enum
    # MessageContent`; the field path is what both share (wire.py's tail differs: see the report)
    assert _refusal(lambda: _messages(HI[0], {"role": "user", "content": content})).startswith(
        "messages[1].content: "
    )


def test_an_image_chunk_alone_is_a_markdown_image_and_text_chunks_join_without_a_separator() -> None:
    # lib.rs:647-662 @a7394ba3 (`From<Message> for TextMessage`)
    image = {"type": "image_url", "image_url": {"url": "https://x/y.png"}}
    assert _messages({"role": "user", "content": [image]})[0].content == "![](https://x/y.png)"
    text = [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]
    assert _messages({"role": "user", "content": text})[0].content == "ab"
    assert _messages({"role": "user", "content": []})[0].content == ""


# ---------------------------------------------------------------------------- response_format
S_TOP = {"type": "object", "title": "top-level schema"}
S_NESTED = {"type": "object", "title": "json_schema.schema"}
DEFAULT = wire.default_json_schema()

# lib.rs:757-800 @a7394ba3: `text` → no grammar; `json_object` → the non-standard top-level `schema`, else the
# arbitrary-JSON schema (the field's serde default, lib.rs:574-575, or null); `json_schema` →
# `json_schema.schema`, else the arbitrary-JSON schema; neither type reads the other's schema field.
RESPONSE_FORMATS = [
    ({"type": "text"}, None),
    ({"type": "Text", "schema": S_TOP, "json_schema": {"name": "n", "schema": S_NESTED}}, None),
    ({"type": "json_object"}, {"type": "json_object", "schema": DEFAULT}),
    ({"type": "json_object", "schema": S_TOP}, {"type": "json_object", "schema": S_TOP}),
    ({"type": "json_object", "schema": None}, {"type": "json_object", "schema": DEFAULT}),
    ({"type": "JsonObject", "json_schema": {"name": "n", "schema": S_NESTED}},
     {"type": "json_object", "schema": DEFAULT}),
    ({"type": "json_object", "schema": S_TOP, "json_schema": {"name": "n", "schema": S_NESTED}},
     {"type": "json_object", "schema": S_TOP}),
    ({"type": "json_schema"}, {"type": "json_schema", "schema": DEFAULT}),
    ({"type": "json_schema", "json_schema": None}, {"type": "json_schema", "schema": DEFAULT}),
    ({"type": "json_schema", "json_schema": {"name": "n"}}, {"type": "json_schema", "schema": DEFAULT}),
    ({"type": "json_schema", "json_schema": {"name": "n", "schema": None}},
     {"type": "json_schema", "schema": DEFAULT}),
    ({"type": "json_schema", "schema": S_TOP}, {"type": "json_schema", "schema": DEFAULT}),
    ({"type": "JsonSchema", "schema": S_TOP, "json_schema": {"name": "n", "schema": S_NESTED}},
     {"type": "json_schema", "schema": S_NESTED}),
]  # fmt: skip


@pytest.mark.parametrize(
    ("response_format", "expected"), RESPONSE_FORMATS, ids=[str(r[0]) for r in RESPONSE_FORMATS]
)
def test_each_response_format_type_takes_its_own_schema_or_the_arbitrary_json_one(
    response_format: dict[str, Any], expected: dict[str, Any] | None
) -> None:
    req = _chat(response_format=response_format)
    assert req.response_format == expected
    assert req.params.response_format == expected


# JsonSchema {description: Option<String>, name: String, schema: Option<Value>, strict: Option<bool>}
# (lib.rs:555-564 @a7394ba3), checked even when the type is `text` (serde reads the whole struct first). No
# sequence row: serde_json reads a struct from a sequence too, with its own invalid-length message.
JSON_SCHEMA_REFUSALS = [
    ("x", 'response_format.json_schema: invalid type: string "x", expected struct JsonSchema'),
    (3, "response_format.json_schema: invalid type: integer `3`, expected struct JsonSchema"),
    ({"name": 3}, "response_format.json_schema.name: invalid type: integer `3`, expected a string"),
    ({"name": ["n"]}, "response_format.json_schema.name: invalid type: sequence, expected a string"),
    ({"name": None}, "response_format.json_schema.name: invalid type: null, expected a string"),
]


@pytest.mark.parametrize("kind", ["json_schema", "text"])
@pytest.mark.parametrize(
    ("json_schema", "message"), JSON_SCHEMA_REFUSALS, ids=[r[1] for r in JSON_SCHEMA_REFUSALS]
)
def test_a_json_schema_of_the_wrong_shape_is_refused_by_name(
    kind: str, json_schema: Any, message: str
) -> None:
    assert _refusal(lambda: _chat(response_format={"type": kind, "json_schema": json_schema})) == message
    _chat(response_format={"type": kind, "json_schema": {"name": "n"}})  # the name alone: accepted


# ---------------------------------------------------------------------------- tools
FUNCTION = {"name": "weather", "parameters": {"type": "object"}}
TOOL = {"type": "function", "function": FUNCTION}

# `tools: Option<Vec<Tool>>`, `Tool {type: String, function: FunctionDefinition}`, `FunctionDefinition
# {#[serde(default)] description: Option<String>, name: String, parameters: Value}` (lib.rs:945-969 @a7394ba3)
TOOL_REFUSALS = [
    ("x", 'tools: invalid type: string "x", expected a sequence'),
    (TOOL, "tools: invalid type: map, expected a sequence"),
    (["x"], 'tools[0]: invalid type: string "x", expected struct Tool'),
    ([TOOL, 3], "tools[1]: invalid type: integer `3`, expected struct Tool"),
    ([TOOL, None], "tools[1]: invalid type: null, expected struct Tool"),
    ([{"function": FUNCTION}], "tools[0]: missing field `type`"),
    ([TOOL, {"type": "function"}], "tools[1]: missing field `function`"),
    ([{"type": 3, "function": FUNCTION}], "tools[0].type: invalid type: integer `3`, expected a string"),
    ([{"type": None, "function": FUNCTION}], "tools[0].type: invalid type: null, expected a string"),
    ([{"type": "function", "function": "f"}],
     'tools[0].function: invalid type: string "f", expected struct FunctionDefinition'),
    ([{"type": "function", "function": None}],
     "tools[0].function: invalid type: null, expected struct FunctionDefinition"),
    ([{"type": "function", "function": {**FUNCTION, "name": 3}}],
     "tools[0].function.name: invalid type: integer `3`, expected a string"),
    ([{"type": "function", "function": {**FUNCTION, "name": None}}],
     "tools[0].function.name: invalid type: null, expected a string"),
    ([{"type": "function", "function": {**FUNCTION, "description": 3}}],
     "tools[0].function.description: invalid type: integer `3`, expected a string"),
    ([{"type": "function", "function": {**FUNCTION, "description": ["d"]}}],
     "tools[0].function.description: invalid type: sequence, expected a string"),
]  # fmt: skip


@pytest.mark.parametrize(("tools", "message"), TOOL_REFUSALS, ids=[r[1] for r in TOOL_REFUSALS])
def test_tools_of_the_wrong_shape_are_refused_naming_the_field(tools: Any, message: str) -> None:
    assert _refusal(lambda: _chat(tools=tools)) == message


def test_tools_accept_any_type_string_a_null_description_and_any_parameters() -> None:
    tools = [
        {"type": "function", "function": {**FUNCTION, "description": "Weather now."}},
        {"type": "retrieval", "function": {"name": "t", "description": None, "parameters": None}},
        {"type": "function", "function": {"name": "u", "parameters": [1, "x"]}, "extra": 1},
    ]
    assert _chat(tools=tools).tools == [
        {"type": "function", "function": {"description": "Weather now.", **FUNCTION}},
        {"type": "retrieval", "function": {"description": None, "name": "t", "parameters": None}},
        {"type": "function", "function": {"description": None, "name": "u", "parameters": [1, "x"]}},
    ]
    assert _chat(tools=None).tools is None
    assert _chat().tools is None


# ---------------------------------------------------------------------------- tool_choice
# `ToolChoice` deserialises through the untagged `ToolTypeDeserializer {Null, String(String),
# ToolType(ToolType)}` (lib.rs:884-909 @a7394ba3): null → not given; "none" → NoTool, "auto" → OneOf, any
# other string names a function; else the externally tagged `ToolType {OneOf, NoTool, Function(FunctionName
# {name: String})}` (lib.rs:864-881): a map of exactly one known variant, the unit variants with a null value.
TOOL_CHOICES = [
    (None, None),
    ("none", ("none", None)),
    ("auto", ("auto", None)),
    ("required", ("function", "required")),
    ("OneOf", ("function", "OneOf")),
    ("None", ("function", "None")),
    ("", ("function", "")),
    ({"OneOf": None}, ("auto", None)),
    ({"NoTool": None}, ("none", None)),
    ({"Function": {"name": "weather"}}, ("function", "weather")),
    ({"Function": {"name": "weather", "description": "x"}}, ("function", "weather")),
]


@pytest.mark.parametrize(("choice", "expected"), TOOL_CHOICES, ids=[str(c[0]) for c in TOOL_CHOICES])
def test_each_tool_choice_string_and_variant_reads_as_lorax_reads_it(
    choice: Any, expected: tuple[str, str | None] | None
) -> None:
    assert _chat(tools=[TOOL], tool_choice=choice).tool_choice == expected


UNMATCHED_TOOL_CHOICES = [
    3,
    True,
    1.5,
    ["auto"],
    [{"OneOf": None}],
    {"OneOf": None, "NoTool": None},  # two variants at once
    {"type": "function", "function": {"name": "weather"}},  # OpenAI's form: not LoRAX's
    {"OneOf": 1},  # a unit variant takes only null
    {"OneOf": "x"},
    {"NoTool": 1},
    {"NoTool": {"name": "weather"}},
    {"Function": None},
    {"Function": "weather"},
    {"Function": ["weather"]},
    {"Function": {}},
    {"Auto": None},  # not a variant name
    {"function": {"name": "weather"}},
    {"Tool": {"name": "weather"}},
]


@pytest.mark.parametrize("choice", UNMATCHED_TOOL_CHOICES, ids=[str(c) for c in UNMATCHED_TOOL_CHOICES])
def test_a_tool_choice_no_variant_matches_is_refused(choice: Any) -> None:
    assert _refusal(lambda: _chat(tools=[TOOL], tool_choice=choice)) == (
        "tool_choice: data did not match any variant of untagged enum ToolTypeDeserializer"
    )
