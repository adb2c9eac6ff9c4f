"""The wire format's defaults and edges a first suite missed (found by a mutation sample, seed 17): the
launcher's default limits, which warper values count as sampling (and so report a seed), a `parameters: null`
body, a merge's `ids` type and LoRAX's externally tagged `tool_choice` object. All in-process, against
predibase/lorax @a7394ba3."""

from __future__ import annotations

from typing import Any

import pytest

from loraxkit import wire
from loraxkit.cli import build_parser
from loraxkit.wire import BodyRejection, GenerateParams, Limits, LoraxError

PREFIX = "Failed to deserialize the JSON body into the target type: "


def _validate_with(limits: Limits, **params: Any) -> None:
    wire.validate_params(
        "hi",
        GenerateParams(**params),
        streaming=False,
        max_best_of=limits.max_best_of,
        max_stop_sequences=limits.max_stop_sequences,
        max_input_length=limits.max_input_length,
    )


def test_the_default_limits_are_the_launchers_and_the_simulator_cli_uses_them() -> None:
    # launcher/src/main.rs:419-428 @a7394ba3: `--max-best-of` defaults to 2, `--max-stop-sequences` to 4
    defaults = Limits()
    _validate_with(defaults, stop=["a"] * 4)
    with pytest.raises(LoraxError, match=r"`stop` supports up to 4 stop sequences. Given: 5"):
        _validate_with(defaults, stop=["a"] * 5)
    _validate_with(defaults, best_of=2, do_sample=True)
    with pytest.raises(LoraxError, match=r"`best_of` must be > 0 and <= 2. Given: 3"):
        _validate_with(defaults, best_of=3, do_sample=True)
    args = build_parser().parse_args(["sim"])
    assert (args.max_stop_sequences, args.max_best_of) == (defaults.max_stop_sequences, defaults.max_best_of)
    assert (args.max_input_length, args.max_total_tokens) == (
        defaults.max_input_length,
        defaults.max_total_tokens,
    )


@pytest.mark.parametrize(
    ("temperature", "sampling"),
    [(None, False), (1.0, False), (0.0, False), (0.5, True), (1.5, True), (1.01, True)],
)
def test_a_temperature_of_one_or_zero_leaves_the_shard_greedy(
    temperature: float | None, sampling: bool
) -> None:
    # server/lorax_server/utils/tokens.py:313-335 @a7394ba3: the temperature warper is added only when the
    # temperature is neither 1.0 (no change) nor 0 (greedy); without a warper the shard does not sample
    assert wire.samples(GenerateParams(temperature=temperature)) is sampling


# (parameter, a value that leaves the shard greedy, the nearest value that samples): tokens.py:319-329
WARPER_EDGES = [("top_k", 0, 1), ("top_p", 1.0, 0.99), ("typical_p", 1.0, 0.99)]


@pytest.mark.parametrize(("name", "greedy", "sampling"), WARPER_EDGES, ids=[w[0] for w in WARPER_EDGES])
def test_a_warper_at_its_neutral_value_leaves_the_shard_greedy_and_one_step_off_samples(
    name: str, greedy: float, sampling: float
) -> None:
    assert wire.samples(GenerateParams(**{name: None})) is False
    assert wire.samples(GenerateParams(**{name: greedy})) is False
    assert wire.samples(GenerateParams(**{name: sampling})) is True


def test_parameters_null_is_refused_unless_lenient() -> None:
    # lib.rs:335 @a7394ba3 `#[serde(default = "default_parameters")]` covers a missing key, not null
    body = {"inputs": "x", "parameters": None}
    with pytest.raises(BodyRejection) as caught:
        wire.parse_generate_body(body)
    assert caught.value.status == 422
    assert str(caught.value) == PREFIX + "parameters: invalid type: null, expected struct GenerateParameters"
    inputs, params, stream = wire.parse_generate_body(body, lenient=True)
    assert (inputs, params, stream) == ("x", GenerateParams(), False)
    assert wire.parse_generate_body({"inputs": "x"})[1] == GenerateParams()  # the missing key: defaults


STREAM_FLAGS = [(None, True, False), (True, True, True), (False, True, False), (True, False, True)]


@pytest.mark.parametrize(("stream", "lenient", "streams"), STREAM_FLAGS)
def test_a_null_stream_means_no_stream_only_when_lenient(
    stream: bool | None, lenient: bool, streams: bool
) -> None:
    # `stream: bool` with serde's default (lib.rs @a7394ba3): missing is false, null is refused; --lenient
    # (the simulator's own mapping for popular clients) reads null as false and leaves true and false alone
    assert wire.parse_generate_body({"inputs": "x", "stream": stream}, lenient=lenient)[2] is streams
    with pytest.raises(BodyRejection) as caught:
        wire.parse_generate_body({"inputs": "x", "stream": None})
    assert str(caught.value) == PREFIX + "stream: invalid type: null, expected a boolean"


def test_a_merges_ids_must_be_a_sequence() -> None:
    # AdapterParameters (lib.rs:83-99 @a7394ba3): `ids: Vec<String>`
    ok = wire.parse_generate_body({"inputs": "x", "parameters": {"merged_adapters": {"ids": ["a"]}}})[1]
    assert ok.merged_adapters == {"ids": ["a"]}
    with pytest.raises(BodyRejection) as caught:
        wire.parse_generate_body({"inputs": "x", "parameters": {"merged_adapters": {"ids": "a"}}})
    assert (
        str(caught.value)
        == PREFIX + 'parameters.merged_adapters.ids: invalid type: string "a", expected a sequence'
    )


def _chat(**extra: Any) -> wire.ChatRequest:
    return wire.parse_chat_request(
        {"model": "m", "messages": [{"role": "user", "content": "hi"}], **extra}, "m"
    )


TOOLS = [
    {"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}},
    {"type": "function", "function": {"name": "time", "parameters": {"type": "object"}}},
]


def test_a_tagged_function_choice_names_the_only_tool_in_the_grammar() -> None:
    # ToolType's externally tagged `{"Function": {"name": ...}}` names one tool, like the plain string does
    named = wire.plan_tools(_chat(tools=TOOLS, tool_choice={"Function": {"name": "time"}}))
    assert named.functions is not None and [f["function"]["name"] for f in named.functions] == ["time"]
    with pytest.raises(
        BodyRejection, match="data did not match any variant of untagged enum ToolTypeDeserializer"
    ):
        _chat(tools=TOOLS, tool_choice={"Function": {"name": 3}})


def test_chat_passes_ignore_eos_token_through_and_defaults_it_off() -> None:
    # ChatCompletionRequest.ignore_eos_token (lib.rs @a7394ba3): an Option<bool>, unset is false
    def ignore_eos(**extra: Any) -> bool:
        return wire.parse_chat_body(
            {"model": "m", "messages": [{"role": "user", "content": "hi"}], **extra}, "m"
        )[1].ignore_eos_token

    assert (ignore_eos(ignore_eos_token=True), ignore_eos(ignore_eos_token=False), ignore_eos()) == (
        True,
        False,
        False,
    )


def test_a_tools_grammar_schema_keeps_its_description_and_an_absent_one_is_empty() -> None:
    # tool_grammar.rs:63-102 @a7394ba3: `description: func.description.unwrap_or_default()`, `_name` first
    parameters = {"properties": {"city": {"type": "string"}}, "required": ["city"]}
    described = wire.grammar_schema(
        {"name": "weather", "description": "Today's weather", "parameters": parameters}
    )
    assert described == {
        "description": "Today's weather",
        "properties": {"_name": {"type": "string", "const": "weather"}, "city": {"type": "string"}},
        "required": ["_name", "city"],
    }
    assert wire.grammar_schema({"name": "time", "parameters": {}})["description"] == ""


# ---------------------------------------------------------------- output shapes and the stream reader
def test_generate_details_report_no_skipped_tokens() -> None:
    # lib.rs:459-475 @a7394ba3 `Details`; the simulator never skips tokens (skipped_tokens: 0)
    tokens = [{"id": 5, "text": "a", "logprob": -0.5, "special": False}]
    assert wire.generate_details("length", 3, tokens, None) == {
        "finish_reason": "length",
        "prompt_tokens": 3,
        "generated_tokens": 1,
        "skipped_tokens": 0,
        "seed": None,
        "prefill": [],
        "tokens": tokens,
    }


def test_stream_chunks_are_loraxs_fixed_shapes() -> None:
    # lib.rs:1320-1360 and 1435-1480 @a7394ba3: id and model "null", created 0, one choice of index 0
    assert wire.completion_chunk("a", "length", 3, 2) == {
        "id": "null",
        "object": "text_completion",
        "created": 0,
        "model": "null",
        "choices": [{"index": 0, "text": "a", "logprobs": None, "finish_reason": "length"}],
        "usage": {"prompt_tokens": 3, "total_tokens": 5, "completion_tokens": 2},
    }
    assert wire.chat_chunk("a") == {
        "id": "null",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "null",
        "choices": [{"index": 0, "delta": {"role": "assistant", "content": "a"}, "finish_reason": None}],
    }


@pytest.mark.parametrize("line", ["id:  [DONE]", 'id:  {"error": "x"}', 'id:  {"token": {"text": "a"}}'])
def test_a_line_of_another_sse_field_is_never_an_event_whatever_its_value(line: str) -> None:
    # only `data:` lines carry events; `id:` with a value that would parse as one is still "other"
    assert wire.parse_sse_line(line).kind is wire.EventKind.OTHER
    assert wire.parse_sse_line("data:" + line[5:]).kind is not wire.EventKind.OTHER


def test_an_openai_chunk_is_read_from_its_first_choice() -> None:
    line = 'data: {"choices": [{"index": 0, "text": "a", "finish_reason": null}, {"index": 1, "text": "b"}]}'
    assert wire.parse_sse_line(line) == wire.SseLine(wire.EventKind.TOKEN, text="a")


# AdapterParameters (lib.rs:83-99 @a7394ba3): `ids` required; the merge settings typed when given
MERGE_FIELDS = [
    ({"ids": ["a"]}, {}, "parameters.merged_adapters: missing field `ids`"),
    ({"ids": ["a"], "density": 0.5}, {"ids": ["a"], "density": "x"},
     'parameters.merged_adapters.density: invalid type: string "x", expected f32'),
    ({"ids": ["a"], "merge_strategy": "ties"}, {"ids": ["a"], "merge_strategy": 3},
     "parameters.merged_adapters.merge_strategy: invalid type: integer `3`, expected a string"),
    ({"ids": ["a"], "majority_sign_method": "total"}, {"ids": ["a"], "majority_sign_method": []},
     "parameters.merged_adapters.majority_sign_method: invalid type: sequence, expected a string"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("accepted", "refused", "message"), MERGE_FIELDS, ids=["ids", "density", "strategy", "sign"]
)
def test_a_merge_field_of_its_type_passes_and_another_type_is_refused(
    accepted: dict[str, Any], refused: dict[str, Any], message: str
) -> None:
    body: dict[str, Any] = {"inputs": "x", "parameters": {"merged_adapters": accepted}}
    assert wire.parse_generate_body(body)[1].merged_adapters == accepted
    body["parameters"]["merged_adapters"] = refused
    with pytest.raises(BodyRejection) as caught:
        wire.parse_generate_body(body)
    assert str(caught.value) == PREFIX + message


def test_a_merge_of_one_adapter_passes_and_a_merge_of_none_is_refused() -> None:
    # validation.rs:233-241 @a7394ba3: no ids is AdapterIdMissing, even with as many weights (none)
    def validate(merge: dict[str, Any]) -> None:
        wire.validate_params("hi", GenerateParams(merged_adapters=merge), streaming=False, max_best_of=2,
                             max_stop_sequences=4, max_input_length=10)  # fmt: skip

    validate({"ids": ["a"], "weights": [1.0]})
    with pytest.raises(LoraxError, match="at least one adapter ID must be provided when setting `adapters`"):
        validate({"ids": [], "weights": []})


NULL_REQUIRED = [
    (wire.parse_completion_body, {"model": None, "prompt": "p"},
     "model: invalid type: null, expected a string"),
    (wire.parse_completion_body, {"model": "m", "prompt": None},
     "prompt: invalid type: null, expected a string"),
    (wire.parse_chat_body, {"model": None, "messages": [{"role": "user", "content": "hi"}]},
     "model: invalid type: null, expected a string"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("parse", "body", "message"), NULL_REQUIRED, ids=["completion-model", "prompt", "chat-model"]
)
def test_a_required_openai_field_given_as_null_is_refused(
    parse: Any, body: dict[str, Any], message: str
) -> None:
    # CompletionRequest / ChatCompletionRequest (lib.rs @a7394ba3): `model: String`, `prompt: String`
    with pytest.raises(BodyRejection) as caught:
        parse(body, "m")
    assert str(caught.value) == PREFIX + message
    assert (
        parse({**body, **{k: "m" for k, v in body.items() if v is None}}, "m") is not None
    )  # given: accepted


@pytest.mark.parametrize("message", [{"role": "assistant", "content": None}, {"role": "assistant"}])
def test_a_chat_message_without_content_is_empty_text(message: dict[str, Any]) -> None:
    # `#[serde(default)] content: Option<MessageContent>` (lib.rs:599-608 @a7394ba3): null or missing is
    # accepted, not a refusal; the simulator renders it as empty text
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}, message]}
    messages = wire.parse_chat_body(body, "m")[0]
    assert [(m.role, m.content) for m in messages] == [("user", "hi"), ("assistant", "")]


# (chat fields accepted, the same with a required field left out, the refusal): JsonSchema and
# FunctionDefinition (lib.rs @a7394ba3) have `name` and `parameters` without serde defaults
CHAT_REQUIRED = [
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}},
     {"response_format": {"type": "json_schema", "json_schema": {"schema": {"type": "object"}}}},
     "response_format.json_schema: missing field `name`"),
    ({"tools": [{"type": "function", "function": {"name": "w", "parameters": {}}}]},
     {"tools": [{"type": "function", "function": {"parameters": {}}}]},
     "tools[0].function: missing field `name`"),
    ({"tools": [{"type": "function", "function": {"name": "w", "parameters": {}}}]},
     {"tools": [{"type": "function", "function": {"name": "w"}}]},
     "tools[0].function: missing field `parameters`"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("accepted", "refused", "message"), CHAT_REQUIRED, ids=["schema-name", "fn-name", "fn-params"]
)
def test_a_chat_field_with_its_required_keys_passes_and_without_one_is_refused(
    accepted: dict[str, Any], refused: dict[str, Any], message: str
) -> None:
    _chat(**accepted)
    with pytest.raises(BodyRejection) as caught:
        _chat(**refused)
    assert str(caught.value) == PREFIX + message


@pytest.mark.parametrize(
    ("messages", "kind"), [("hi", 'string "hi"'), ({}, "map"), ({"role": "user", "content": "x"}, "map")]
)
def test_chat_messages_must_be_a_sequence(messages: Any, kind: str) -> None:
    # ChatCompletionRequest.messages: Vec<Message> (lib.rs @a7394ba3); a string or one message is refused
    with pytest.raises(BodyRejection) as caught:
        wire.parse_chat_body({"model": "m", "messages": messages}, "m")
    assert str(caught.value) == PREFIX + f"messages: invalid type: {kind}, expected a sequence"
    assert wire.parse_chat_body({"model": "m", "messages": []}, "m")[0] == []


def test_response_format_and_tools_each_pass_alone_and_are_refused_together() -> None:
    # server.rs:428-434 @a7394ba3 (prepare_chat_input): the two are mutually exclusive
    response_format = {"type": "json_object"}
    tools = [{"type": "function", "function": {"name": "w", "parameters": {}}}]
    assert wire.plan_tools(_chat(response_format=response_format)).functions is None
    assert wire.plan_tools(_chat(tools=tools)).functions is not None
    with pytest.raises(LoraxError, match="Response format and tools are mutually exclusive"):
        wire.plan_tools(_chat(response_format=response_format, tools=tools))


def test_generated_text_naming_no_tool_is_content_and_any_other_name_a_call() -> None:
    # server.rs:340-392 @a7394ba3: `_name` "no_tool" answers in text (its `content`), any other is a call
    assert wire.tool_calls_from_text('{"function": {"_name": "no_tool", "content": "Hi."}}') == (None, "Hi.")
    with pytest.raises(LoraxError, match="No `content` found in generated text"):
        wire.tool_calls_from_text('{"function": {"_name": "no_tool"}}')
    calls, content = wire.tool_calls_from_text('{"function": {"_name": "w", "city": "Oslo"}}')
    assert content is None and calls == [
        {
            "id": "0",
            "type": "function",
            "function": {"description": None, "name": "w", "arguments": '{"city":"Oslo"}'},
        }
    ]


def test_token_best_of_and_mid_stream_chunk_defaults() -> None:
    # lib.rs:405-419 @a7394ba3: a token is not special unless said; BestOfSequence (:445-457) with no
    # prefill has []; a completion chunk before the last has no details: usage 0/0/0 (lib.rs:1322-1328)
    assert wire.token_json(5, "a", -0.5) == {
        "id": 5,
        "text": "a",
        "logprob": -0.5,
        "special": False,
        "skipped": False,
    }
    assert wire.best_of_sequence("ab", "length", [], None)["prefill"] == []
    assert wire.completion_chunk("a")["usage"] == {
        "prompt_tokens": 0,
        "total_tokens": 0,
        "completion_tokens": 0,
    }
    assert wire.completion_chunk("a")["choices"][0]["finish_reason"] is None


def test_only_an_object_with_error_and_neither_token_nor_choices_is_an_error_event() -> None:
    token = 'data: {"token": {"id": 1, "text": "a"}, "generated_text": null, "error": null}'
    assert wire.parse_sse_line(token) == wire.SseLine(wire.EventKind.TOKEN, text="a")
    chunk = 'data: {"choices": [{"text": "a", "finish_reason": null}], "error": null}'
    assert wire.parse_sse_line(chunk) == wire.SseLine(wire.EventKind.TOKEN, text="a")
    error = wire.parse_sse_line('data: {"error": "boom", "error_type": "generation"}')
    assert (error.kind, error.error, error.error_type) == (wire.EventKind.ERROR, "boom", "generation")


def test_a_chat_response_format_that_is_not_an_object_is_refused() -> None:
    # ChatCompletionRequest.response_format: Option<OpenAiResponseFormat>, a struct (lib.rs @a7394ba3)
    with pytest.raises(BodyRejection) as caught:
        _chat(response_format="json")
    assert str(caught.value) == (
        PREFIX + 'response_format: invalid type: string "json", expected struct OpenAiResponseFormat'
    )
    assert _chat(response_format=None).response_format is None
