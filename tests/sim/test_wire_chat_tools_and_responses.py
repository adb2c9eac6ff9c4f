"""The chat request mapping (ChatCompletionRequest → generate parameters), the tool plan and the reading of a
tool call from generated text, the JSON builders of LoRAX's responses and chunks, and the SSE line reader of
the load harness: both sides of each rule, in-process and table-driven, against predibase/lorax @a7394ba3
(and axum, whose SSE framing LoRAX uses). Expected values are written by hand from the cited source."""

from __future__ import annotations

from typing import Any

import pytest

from loraxkit import wire
from loraxkit.cli import build_parser
from loraxkit.wire import BodyRejection, EventKind, GenerateParams, LoraxError, SseLine

PREFIX = "Failed to deserialize the JSON body into the target type: "
HI = [{"role": "user", "content": "hi"}]


def _chat(**extra: Any) -> wire.ChatRequest:
    return wire.parse_chat_request({"model": "m", "messages": HI, **extra}, "m")


def _refusal(parse: Any, body: Any, **kw: Any) -> str:
    with pytest.raises(BodyRejection) as caught:
        parse(body, "m", **kw)
    assert caught.value.status == 422
    return str(caught.value)


# ---------------------------------------------------------------- the chat request and its parameters
# serde's own words for a body that is not the struct (ChatCompletionRequest, lib.rs:667-720 @a7394ba3)
NOT_A_STRUCT = [
    ([], "sequence"),
    ("hi", 'string "hi"'),
    (None, "null"),
    (3, "integer `3`"),
    (True, "boolean `true`"),
]


@pytest.mark.parametrize("parse", [wire.parse_chat_request, wire.parse_chat_body])
@pytest.mark.parametrize(("body", "kind"), NOT_A_STRUCT, ids=[k for _, k in NOT_A_STRUCT])
def test_a_chat_body_that_is_not_an_object_is_refused_naming_the_struct(
    parse: Any, body: Any, kind: str
) -> None:
    message = _refusal(parse, body)
    assert message == PREFIX + f"invalid type: {kind}, expected struct ChatCompletionRequest"
    assert parse({"model": "m", "messages": HI}, "m") is not None  # the object: accepted


@pytest.mark.parametrize("parse", [wire.parse_chat_request, wire.parse_chat_body])
def test_chat_messages_are_required(parse: Any) -> None:
    # `messages: Vec<Message>` has no serde default (lib.rs:670 @a7394ba3)
    assert _refusal(parse, {"model": "m"}) == PREFIX + "missing field `messages`"
    assert parse({"model": "m", "messages": []}, "m") is not None


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [("Use a tool.", "Use a tool."), (None, wire.default_tool_prompt()), ("", wire.default_tool_prompt())],
    ids=["given", "null", "empty"],
)
def test_a_tool_prompt_is_a_string_and_a_null_or_empty_one_is_the_default(
    prompt: str | None, expected: str
) -> None:
    # `tool_prompt: Option<String>` (lib.rs:714);
    # `.filter(|s| !s.is_empty()).unwrap_or_else(default_tool_prompt)` (lib.rs:802-804)
    assert _chat(tool_prompt=prompt).tool_prompt == expected
    assert _chat().tool_prompt == wire.default_tool_prompt()
    message = _refusal(wire.parse_chat_request, {"model": "m", "messages": HI, "tool_prompt": 3})
    assert message == PREFIX + "tool_prompt: invalid type: integer `3`, expected a string"


@pytest.mark.parametrize("parse", [wire.parse_chat_request, wire.parse_chat_body])
def test_loraxs_own_typing_is_the_default_and_lenient_mode_maps_what_clients_send(parse: Any) -> None:
    # `stop: Vec<String>` (lib.rs:676): one string is refused unless the simulator runs --lenient, which
    # reads it as a list of one and `max_completion_tokens` as `max_tokens`
    body = {"model": "m", "messages": HI, "stop": "x", "max_completion_tokens": 7}
    assert _refusal(parse, body) == PREFIX + 'stop: invalid type: string "x", expected a sequence'
    params = wire.parse_chat_request(body, "m", lenient=True).params
    assert (params.stop, params.max_new_tokens) == (["x"], 7)
    assert wire.parse_chat_body(body, "m", lenient=True)[1] == params


def test_every_chat_field_maps_to_the_generate_parameter_lorax_gives_it() -> None:
    # try_into_generate (lib.rs:749-852 @a7394ba3): the model names the adapter, n is best_of, details on,
    # the rest passed through; fields chat has no key for keep GenerateParameters' defaults
    body = {
        "model": "adapter-1",
        "messages": HI,
        "temperature": 0.5,
        "top_p": 0.9,
        "n": 2,
        "max_tokens": 12,
        "stop": ["a", "b"],
        "stream": True,
        "presence_penalty": 0.1,
        "frequency_penalty": 0.2,
        "seed": 42,
        "repetition_penalty": 1.1,
        "top_k": 5,
        "ignore_eos_token": True,
        "adapter_source": "hub",
        "api_token": "t",
    }
    req = wire.parse_chat_request(body, "base")
    assert req.params == GenerateParams(
        adapter_id="adapter-1",
        adapter_source="hub",
        api_token="t",
        best_of=2,
        temperature=0.5,
        repetition_penalty=1.1,
        frequency_penalty=0.2,
        presence_penalty=0.1,
        top_k=5,
        top_p=0.9,
        do_sample=True,
        max_new_tokens=12,
        stop=["a", "b"],
        details=True,
        seed=42,
        ignore_eos_token=True,
    )
    assert req.stream is True
    assert (req.tools, req.tool_choice, req.response_format) == (None, None, None)


def test_a_bare_chat_request_gets_loraxs_defaults() -> None:
    # lib.rs:807-853: no temperature samples (`other => (true, other)`), details always on, stop empty,
    # `stream.unwrap_or(false)`
    req = _chat()
    assert req.params == GenerateParams(do_sample=True, details=True)
    assert req.stream is False


@pytest.mark.parametrize(("stream", "streams"), [(True, True), (False, False), (None, False)])
def test_chat_streams_only_when_asked(stream: bool | None, streams: bool) -> None:
    # `stream: Option<bool>` (lib.rs:677), `stream.unwrap_or(false)` (:853): null is accepted as false
    assert _chat(stream=stream).stream is streams


@pytest.mark.parametrize(
    ("n", "best_of"),
    [(None, None), (1, 1), (2, 2), (2**31 - 1, 2**31 - 1), (-1, 2**64 - 1), (-(2**31), 2**64 - 2**31)],
)
def test_n_becomes_best_of_as_rust_casts_an_i32_to_usize(n: int | None, best_of: int | None) -> None:
    # `n: Option<i32>` (lib.rs:673), `best_of: n.map(|x| x as usize)` (:831): a negative i32 sign-extends
    # to a 64-bit usize, so validation later refuses it as above max_best_of
    assert _chat(n=n).params.best_of == best_of


GREEDY = [(0, False, None), (0.0, False, None), (0.5, True, 0.5), (None, True, None)]


@pytest.mark.parametrize(("temperature", "do_sample", "kept"), GREEDY)
def test_only_a_temperature_of_zero_makes_chat_greedy(
    temperature: float | None, do_sample: bool, kept: float | None
) -> None:
    # lib.rs:807-810: `Some(t) if t == 0.0 => (false, None)`, `other => (true, other)`
    params = _chat(temperature=temperature).params
    assert (params.do_sample, params.temperature) == (do_sample, kept)


# ---------------------------------------------------------------- the tool plan (server.rs:421-463)
WEATHER = {"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}
NO_TOOL_JSON = (
    '{"type":"function","function":{"description":"Open ened response with no specific tool selected",'
    '"name":"no_tool","parameters":{"type":"object","properties":{"content":{"type":"string",'
    '"description":"The response content"}},"required":["content"]}}}'
)
WEATHER_JSON = (
    '{"type":"function","function":{"description":null,"name":"weather","parameters":{"type":"object"}}}'
)


def _suffix(tools_json: str) -> str:
    # infer.rs:113-116 @a7394ba3: the default tool template appends `\n---\n{tools JSON}\n{tool_prompt}`;
    # serde_json with `preserve_order` (router/Cargo.toml:40) keeps each object's key order
    return f"\n---\n{tools_json}\nP"


def test_a_chat_without_tools_or_format_has_no_tool_text_and_no_grammar() -> None:
    # server.rs:460-462: neither set, the messages go through the template as they are
    assert wire.plan_tools(_chat()) == wire.ToolPlan(None, None)
    assert wire.plan_tools(_chat(response_format={"type": "text"})) == wire.ToolPlan(None, None)


def test_tool_choice_none_shows_the_tools_but_sets_no_grammar() -> None:
    # tool_grammar.rs:52,60: `NoTool => return Ok((tools, None))`: the tools (no_tool appended) are in the
    # prompt, the answer is free text
    plan = wire.plan_tools(_chat(tools=[WEATHER], tool_choice="none", tool_prompt="P"))
    assert plan == wire.ToolPlan(_suffix(f"[{WEATHER_JSON},{NO_TOOL_JSON}]"), None)


def test_no_tool_choice_allows_every_tool_and_no_tool() -> None:
    # tool_grammar.rs:30,59: no choice is OneOf, every tool plus no_tool in the grammar
    plan = wire.plan_tools(_chat(tools=[WEATHER], tool_prompt="P"))
    assert plan.prompt_suffix == _suffix(f"[{WEATHER_JSON},{NO_TOOL_JSON}]")
    assert plan.functions is not None
    assert [wire.dumps(f) for f in plan.functions] == [WEATHER_JSON, NO_TOOL_JSON]


def test_an_empty_tool_list_is_shown_as_is_and_sets_no_grammar() -> None:
    # tool_grammar.rs:26-28: no tools, no no_tool and no grammar; the template still appends the list
    assert wire.plan_tools(_chat(tools=[], tool_prompt="P")) == wire.ToolPlan(_suffix("[]"), None)


def test_a_named_tool_is_the_first_of_that_name_and_no_tool_can_be_named() -> None:
    # tool_grammar.rs:13-19,57: `find` gives the first tool of the name; no_tool is in the list by then
    first = {"type": "function", "function": {"name": "weather", "parameters": {"n": 1}}}
    second = {"type": "function", "function": {"name": "weather", "parameters": {"n": 2}}}
    plan = wire.plan_tools(_chat(tools=[first, second], tool_choice="weather"))
    assert plan.functions is not None
    assert [f["function"]["parameters"] for f in plan.functions] == [{"n": 1}]
    named = wire.plan_tools(_chat(tools=[WEATHER], tool_choice="no_tool")).functions
    assert named is not None and [wire.dumps(f) for f in named] == [NO_TOOL_JSON]
    with pytest.raises(LoraxError) as caught:
        wire.plan_tools(_chat(tools=[WEATHER], tool_choice="time"))
    assert (caught.value.status, caught.value.error_type) == (422, "tool_error")
    assert caught.value.message == "Tool error: Tool with name time not found"


# ---------------------------------------------------------------- a tool call read from generated text
# chat_completions_v1 (server.rs:340-392 @a7394ba3): (text, LoRAX's ToolError detail)
NOT_A_CALL = [
    ('{"name": "weather"}', "No function found in generated text"),
    ("[1]", "No function found in generated text"),  # Value::get on a non-object: None
    ('"function"', "No function found in generated text"),
    ('{"function": {"city": "Oslo"}}', "No _name found in generated text"),
    ('{"function": {"_name": 3}}', "No _name found in generated text"),  # `.and_then(Value::as_str)`
    ('{"function": ["_name"]}', "No _name found in generated text"),
]


@pytest.mark.parametrize(("text", "detail"), NOT_A_CALL, ids=[t for t, _ in NOT_A_CALL])
def test_generated_text_without_a_named_function_is_a_tool_error(text: str, detail: str) -> None:
    with pytest.raises(LoraxError) as caught:
        wire.tool_calls_from_text(text)
    assert (caught.value.status, caught.value.error_type) == (422, "tool_error")
    assert caught.value.message == "Tool error: " + detail


def test_generated_text_that_is_not_json_is_a_tool_error_quoting_it() -> None:
    # server.rs:341-346: "Failed to parse generated text: {serde error} {text:?}"; Rust's `{:?}` of an ASCII
    # string is the JSON string. (The parser's own error text is Python's, not serde_json's: not compared.)
    with pytest.raises(LoraxError) as caught:
        wire.tool_calls_from_text("not json")
    assert (caught.value.status, caught.value.error_type) == (422, "tool_error")
    assert caught.value.message.startswith("Tool error: Failed to parse generated text: ")
    assert caught.value.message.endswith(' "not json"')


def test_a_calls_arguments_are_compact_json_in_their_order_with_non_ascii_kept() -> None:
    # server.rs:378: `serde_json::to_string(&arguments)` (compact, UTF-8 as is, preserve_order)
    calls, content = wire.tool_calls_from_text(
        '{"function": {"_name": "weather", "city": "Zürich", "a": [1, 2]}}'
    )
    assert content is None and calls is not None
    assert calls[0]["function"]["arguments"] == '{"city":"Zürich","a":[1,2]}'
    assert wire.dumps({"k": "é", "l": [None, True]}) == '{"k":"é","l":[null,true]}'


# ---------------------------------------------------------------- response and chunk builders (lib.rs)
def test_a_token_with_alternatives_lists_them_between_special_and_skipped() -> None:
    # Token (lib.rs:405-419): alternative_tokens skipped only when None
    alternative = {"id": 3, "text": "b", "logprob": -1.5}
    token = wire.token_json(5, "a", -0.5, True, [alternative])
    assert wire.dumps(token) == (
        '{"id":5,"text":"a","logprob":-0.5,"special":true,'
        '"alternative_tokens":[{"id":3,"text":"b","logprob":-1.5}],"skipped":false}'
    )
    assert "alternative_tokens" in wire.token_json(5, "a", -0.5, alternative_tokens=[])
    assert "alternative_tokens" not in wire.token_json(5, "a", -0.5)


PREFILL = [{"id": 1, "text": "<s>", "logprob": None}]
TOKEN = {"id": 5, "text": "a", "logprob": -0.5, "special": False, "skipped": False}


def test_details_carry_the_prefill_and_best_of_sequences_when_given() -> None:
    # Details (lib.rs:459-475): prefill a Vec (empty when none), best_of_sequences skipped only when None
    best = wire.best_of_sequence("b", "eos_token", [TOKEN], 7, PREFILL)
    assert wire.dumps(best) == (
        '{"generated_text":"b","finish_reason":"eos_token","generated_tokens":1,"seed":7,'
        '"prefill":[{"id":1,"text":"<s>","logprob":null}],"tokens":[' + wire.dumps(TOKEN) + "]}"
    )
    details = wire.generate_details("length", 3, [TOKEN], 7, PREFILL, [best])
    assert wire.dumps(details) == (
        '{"finish_reason":"length","prompt_tokens":3,"generated_tokens":1,"skipped_tokens":0,"seed":7,'
        '"prefill":[{"id":1,"text":"<s>","logprob":null}],"tokens":[' + wire.dumps(TOKEN) + "],"
        '"best_of_sequences":[' + wire.dumps(best) + "]}"
    )
    assert wire.generate_details("length", 3, [], None, None, [])["best_of_sequences"] == []
    assert "best_of_sequences" not in wire.generate_details("length", 3, [], None)


@pytest.mark.parametrize(
    ("finish", "openai"), [("length", "length"), ("eos_token", "stop"), ("stop_sequence", "content_filter")]
)
def test_a_completion_response_is_loraxs_fixed_shape(finish: str, openai: str) -> None:
    # From<GenerateResponse> for CompletionResponse (lib.rs:1288-1318), UsageInfo (:519-523), the finish
    # reason mapped by From<FinishReason> (:1482-1490)
    assert wire.dumps(wire.completion_response("hi", finish, 3, 2)) == (
        '{"id":"null","object":"text_completion","created":0,"model":"null","choices":[{"index":0,'
        f'"text":"hi","logprobs":null,"finish_reason":"{openai}"}}],'
        '"usage":{"prompt_tokens":3,"total_tokens":5,"completion_tokens":2}}'
    )


def test_a_chat_chunk_counts_only_the_tokens_it_is_given() -> None:
    # ChatCompletionStreamResponse (lib.rs:1435-1449): usage only when there is a generated count; a count
    # not given is 0, as completion_chunk's are
    assert wire.chat_chunk("a", "length", completion_tokens=2)["usage"] == {
        "prompt_tokens": 0,
        "total_tokens": 2,
        "completion_tokens": 2,
    }
    assert wire.chat_chunk("a", "length", 3, 2)["usage"] == {
        "prompt_tokens": 3,
        "total_tokens": 5,
        "completion_tokens": 2,
    }
    assert "usage" not in wire.chat_chunk("a", "length", 3)


def test_an_idle_stream_is_kept_alive_at_axums_default_interval() -> None:
    # server.rs:215,306 @a7394ba3 `KeepAlive::default()`; axum's KeepAlive::new(): `:\n\n` every
    # `Duration::from_secs(15)` (axum/src/response/sse.rs @017e3c62, unchanged in LoRAX's axum 0.7.7)
    assert (wire.KEEP_ALIVE, wire.DEFAULT_KEEP_ALIVE_S) == (b":\n\n", 15.0)
    assert build_parser().parse_args(["sim"]).keep_alive == 15.0


# ---------------------------------------------------------------- the harness's SSE line reader
def _token(text: str) -> SseLine:
    return SseLine(EventKind.TOKEN, text=text)


def _final(text: str, finish: str) -> SseLine:
    # every final event below reports 3 prompt and 2 generated tokens
    return SseLine(EventKind.FINAL, text=text, generated_tokens=2, prompt_tokens=3, finish_reason=finish)


# (line as received, what it carries): SSE comments and blank lines (WHATWG HTML "event stream
# interpretation"), axum's `data:` framing, LoRAX's native and OpenAI events
READ = [
    ("", SseLine(EventKind.BLANK)),
    ("\r\n", SseLine(EventKind.BLANK)),
    (b"\n", SseLine(EventKind.BLANK)),
    (":", SseLine(EventKind.KEEP_ALIVE)),
    (": ping\r\n", SseLine(EventKind.KEEP_ALIVE)),
    (b":\n", SseLine(EventKind.KEEP_ALIVE)),
    (b"data:[DONE]\n", SseLine(EventKind.DONE)),
    (b'data:{"token":{"id":1,"text":"\xc3\xa9"},"generated_text":null,"details":null}', _token("é")),
    ("data:3", SseLine(EventKind.OTHER)),
    ("data:null", SseLine(EventKind.OTHER)),
    ('data:"token"', SseLine(EventKind.OTHER)),
    ('data:["error"]', SseLine(EventKind.OTHER)),
    ('data:{"id":1,"generated_text":null,"details":null}', SseLine(EventKind.OTHER)),
    ('data:{"error_type":"x"}', SseLine(EventKind.OTHER)),
    ('data:{"choices":[{"text":"a","finish_reason":null},"b"]}', SseLine(EventKind.TOKEN, text="a")),
    ('data:{"choices":[{"delta":{"role":"assistant","content":"a"},"finish_reason":null}]}', _token("a")),
    ('data:{"choices":[{"delta":null,"finish_reason":null}]}', SseLine(EventKind.TOKEN, text="")),
    ('data:{"choices":[{"delta":{},"finish_reason":"stop"}],'
     '"usage":{"prompt_tokens":3,"total_tokens":5,"completion_tokens":2}}', _final("", "stop")),
]  # fmt: skip


@pytest.mark.parametrize(("raw", "read"), READ, ids=[str(r)[:40] for r, _ in READ])
def test_each_kind_of_sse_line_is_read_as_what_it_carries(raw: str | bytes, read: SseLine) -> None:
    assert wire.parse_sse_line(raw) == read


@pytest.mark.parametrize("choices", ["[]", "null"])
def test_a_chunk_without_choices_is_read_as_no_text_not_a_crash(choices: str) -> None:
    read = wire.parse_sse_line('data:{"choices":' + choices + "}")
    assert (read.text, read.finish_reason) == ("", None)


@pytest.mark.parametrize(
    ("chunk", "read"),
    [
        (wire.chat_chunk("a"), SseLine(EventKind.TOKEN, text="a")),
        (wire.chat_chunk("b", "length", 3, 2), _final("b", "length")),
        (wire.chat_chunk("", "eos_token", 3, 2), _final("", "stop")),
    ],
    ids=["token", "length", "eos"],
)
def test_the_reader_reads_the_chat_chunks_the_simulator_writes(chunk: dict[str, Any], read: SseLine) -> None:
    assert wire.parse_sse_line(wire.sse_event(chunk)) == read


def test_the_fast_path_needs_the_token_head_as_well_as_the_tail() -> None:
    # an object ending like a token event but without `{"token":` first is not one (the full parse agrees)
    line = b'data:{"id":1,"generated_text":null,"details":null}'
    assert wire.parse_sse_line(line).kind is EventKind.OTHER
    assert wire.is_native_token_line(line) is False
    token = b'data:{"token":{"id":1,"text":"a"},"generated_text":null,"details":null}'
    assert wire.is_native_token_line(token) is True
