"""The wire format's type checks that only a simulator suite used to reach, in-process and table-driven: a
map field given something else, a merge's weights (numbers only; serde refuses booleans for f32), and the
adapter key a merge runs under (LoRAX compares merges by ids and every merge setting), which parameters
count as sampling for `best_of`, the lenient mapping, chat chunks and tools, and the chat output shapes."""

from __future__ import annotations

from typing import Any

import pytest

from loraxkit import wire
from loraxkit.wire import BodyRejection

PREFIX = "Failed to deserialize the JSON body into the target type: "


def _params(parameters: dict[str, Any]) -> wire.GenerateParams:
    return wire.parse_generate_body({"inputs": "x", "parameters": parameters})[1]


def _refusal(parameters: dict[str, Any]) -> str:
    with pytest.raises(BodyRejection) as caught:
        _params(parameters)
    assert caught.value.status == 422
    return str(caught.value)


# (parameters accepted, parameters refused, the refusal's text after serde's prefix); lib.rs:83-99, 526-553
KINDS = [
    (
        {"merged_adapters": {"ids": ["a"]}},
        {"merged_adapters": "x"},
        'parameters.merged_adapters: invalid type: string "x", expected a map',
    ),
    (
        {"response_format": {"type": "json_object"}},
        {"response_format": []},
        "parameters.response_format: invalid type: sequence, expected a map",
    ),
    (
        {"merged_adapters": {"ids": ["a", "b"], "weights": [1, 0.5]}},
        {"merged_adapters": {"ids": ["a", "b"], "weights": [1, True]}},
        "parameters.merged_adapters.weights[1]: invalid type: boolean `true`, expected f32",
    ),
    (
        {"merged_adapters": {"ids": ["a"], "weights": []}},
        {"merged_adapters": {"ids": ["a"], "weights": ["1"]}},
        'parameters.merged_adapters.weights[0]: invalid type: string "1", expected f32',
    ),
    (
        {"merged_adapters": {"ids": ["a"], "weights": [0.0]}},
        {"merged_adapters": {"ids": ["a"], "weights": "x"}},
        'parameters.merged_adapters.weights: invalid type: string "x", expected a sequence',
    ),
]


@pytest.mark.parametrize(("accepted", "refused", "message"), KINDS, ids=[k[2].split(":")[0] for k in KINDS])
def test_a_field_of_the_right_type_passes_and_one_of_another_type_is_refused(
    accepted: dict[str, Any], refused: dict[str, Any], message: str
) -> None:
    _params(accepted)
    assert _refusal(refused) == PREFIX + message


def test_a_merge_runs_under_its_ids_and_every_merge_setting() -> None:
    # infer.rs:301-312, lib.rs:127-162 @a7394ba3: one id compares by the id; a merge by all its settings
    def key(**merge: Any) -> str | None:
        return wire.adapter_key(_params({"merged_adapters": {"ids": ["a", "b"], **merge}}))

    plain = key(weights=[1, 0.5])
    assert plain == "a,b|[[1,0.5],null,0.0,null]"
    assert key(weights=[1, 0.5]) == plain
    assert key(weights=[0.5, 1]) != plain
    assert key(weights=[1, 0.5], merge_strategy="ties") != plain
    assert key(weights=[1, 0.5], density=0.5) != plain
    assert key(weights=[1, 0.5], majority_sign_method="total") != plain
    assert wire.adapter_key(_params({"merged_adapters": {"ids": ["a"], "weights": [2]}})) == "a"
    assert wire.adapter_key(_params({"adapter_id": "a"})) == "a"
    assert wire.adapter_key(_params({})) is None
    assert wire.adapter_header_id(_params({"merged_adapters": {"ids": ["a", "b"]}})) == "a,b"


@pytest.mark.parametrize(
    "sampling",
    [{"do_sample": True}, {"temperature": 0.7}, {"top_k": 5}, {"top_p": 0.9}, {"typical_p": 0.9}],
    ids=lambda p: next(iter(p)),
)
def test_best_of_above_one_needs_any_one_sampling_parameter(sampling: dict[str, Any]) -> None:
    # validation.rs @a7394ba3: best_of > 1 is refused unless do_sample or any warper parameter is set
    def validate(**params: Any) -> None:
        wire.validate_params("hi", wire.GenerateParams(best_of=2, **params), streaming=False, max_best_of=2,
                             max_stop_sequences=4, max_input_length=10)  # fmt: skip

    validate(**sampling)
    with pytest.raises(wire.LoraxError, match="you must use sampling when `best_of` is > 1"):
        validate()


def test_lenient_mode_maps_a_single_stop_string_and_ignore_eos_without_overriding_the_explicit_key() -> None:
    body = {"model": "m", "prompt": "p", "stop": "x"}
    assert wire.parse_completion_body(body, "m", lenient=True)[1].stop == ["x"]
    with pytest.raises(BodyRejection, match='stop: invalid type: string "x", expected a sequence'):
        wire.parse_completion_body(body, "m")  # LoRAX's own typing: a sequence of strings

    def ignore_eos(**extra: Any) -> bool:
        return wire.parse_completion_body({"model": "m", "prompt": "p", **extra}, "m", lenient=True)[
            1
        ].ignore_eos_token

    assert ignore_eos(ignore_eos=True) is True
    assert ignore_eos(ignore_eos=True, ignore_eos_token=False) is False  # LoRAX's key, given, wins
    assert ignore_eos() is False


def test_chat_content_chunks_become_one_text_with_images_as_markdown() -> None:
    # lib.rs:647-662 @a7394ba3: text chunks as they are, an image chunk as a markdown image of its URL
    content = [
        {"type": "text", "text": "a"},
        {"type": "image_url", "image_url": {"url": "https://x/y.png"}},
        {"type": "text", "text": "b"},
    ]
    body = {"model": "m", "messages": [{"role": "user", "content": content}]}
    (message,) = wire.parse_chat_body(body, "m")[0]
    assert (message.role, message.content) == ("user", "a![](https://x/y.png)b")


# ---------------------------------------------------------------- chat tools and chat output shapes
TOOL = {"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}


def _chat(**extra: Any) -> wire.ChatRequest:
    return wire.parse_chat_request(
        {"model": "m", "messages": [{"role": "user", "content": "hi"}], **extra}, "m"
    )


def test_the_tool_prompt_defaults_to_loraxs_and_a_given_one_replaces_it() -> None:
    assert _chat().tool_prompt == wire.default_tool_prompt()  # lib.rs:860-862
    assert _chat(tool_prompt="Use a tool.").tool_prompt == "Use a tool."


def test_tools_a_named_choice_an_unknown_name_and_an_empty_list() -> None:
    # tool_grammar.rs:20-61 @a7394ba3: a named function is the only one in the grammar; an unknown name is
    # refused; an empty list still appends the (empty) tools to the prompt, with no grammar
    named = wire.plan_tools(_chat(tools=[TOOL], tool_choice="weather"))
    assert named.functions is not None and [f["function"]["name"] for f in named.functions] == ["weather"]
    with pytest.raises(wire.LoraxError, match="Tool with name nowhere not found"):
        wire.plan_tools(_chat(tools=[TOOL], tool_choice="nowhere"))
    empty = wire.plan_tools(_chat(tools=[]))
    assert empty.functions is None and empty.prompt_suffix == f"\n---\n[]\n{wire.default_tool_prompt()}"
    auto = wire.plan_tools(_chat(tools=[TOOL]))
    assert auto.functions is not None and len(auto.functions) == 2  # the tool and LoRAX's "no tool" choice


def test_a_tool_call_choice_has_tool_calls_and_no_content_and_stream_chunks_are_choice_0() -> None:
    calls = [{"id": "0", "type": "function", "function": {"name": "weather", "arguments": {}}}]
    out = wire.chat_response("", "eos_token", 3, 2, "m", 0, "fp", choices=[(calls, None), (None, "text")])
    assert out["choices"][0]["message"] == {"role": "assistant", "tool_calls": calls}
    assert out["choices"][1]["message"] == {"role": "assistant", "content": "text"}
    assert [c["index"] for c in out["choices"]] == [0, 1]
    assert wire.chat_chunk("a")["choices"][0]["index"] == 0


# Fidelity fixes the mutation work found (predibase/lorax @a7394ba3, serde_json, serde_path_to_error)
MODEL = "base"
CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
COMPLETION = {"model": MODEL, "prompt": "hi"}


def _openai_refusal(route: str, extra: dict[str, Any]) -> str:
    parse = wire.parse_chat_request if route == "chat" else wire.parse_completion_body
    with pytest.raises(BodyRejection) as caught:
        parse({**(CHAT if route == "chat" else COMPLETION), **extra}, MODEL)
    assert caught.value.status == 422
    return str(caught.value).removeprefix(PREFIX)


def _openai_accepts(route: str, extra: dict[str, Any]) -> None:
    parse = wire.parse_chat_request if route == "chat" else wire.parse_completion_body
    parse({**(CHAT if route == "chat" else COMPLETION), **extra}, MODEL)


def test_an_optional_boolean_of_another_type_gets_bools_own_message() -> None:
    # Option<bool>: serde_json's deserialize_option hands a non-null value to bool's visitor
    assert _refusal({"return_full_text": "yes"}) == (
        PREFIX + 'parameters.return_full_text: invalid type: string "yes", expected a boolean'
    )
    assert _openai_refusal("chat", {"stream": 3}) == "stream: invalid type: integer `3`, expected a boolean"
    assert _openai_refusal("completion", {"echo": 1}) == "echo: invalid type: integer `1`, expected a boolean"


@pytest.mark.parametrize(("stop", "index", "kind"), [(["a", 1], 1, "integer `1`"), ([None], 0, "null"),
                                                     (["a", "b", ["c"]], 2, "sequence")])  # fmt: skip
def test_a_stop_lists_bad_element_is_named_by_its_index(stop: list[Any], index: int, kind: str) -> None:
    # Vec<String>: serde_path_to_error names the element, `stop[1]`
    expected = f"stop[{index}]: invalid type: {kind}, expected a string"
    assert _refusal({"stop": stop}) == PREFIX + "parameters." + expected
    assert _openai_refusal("completion", {"stop": stop}) == expected
    assert _params({"stop": ["a", "b"]}).stop == ["a", "b"]


@pytest.mark.parametrize("route", ["chat", "completion"])
def test_user_and_logit_bias_are_typed_though_lorax_ignores_them(route: str) -> None:
    # lib.rs:683-685 (chat) and 981-983 (completion): user: Option<String>,
    # logit_bias: Option<HashMap<String, f32>>
    _openai_accepts(route, {"user": "u-1", "logit_bias": {"50256": -100, "11": 0.5}})
    _openai_accepts(route, {"user": None, "logit_bias": None})
    assert _openai_refusal(route, {"user": 3}) == "user: invalid type: integer `3`, expected a string"
    assert _openai_refusal(route, {"logit_bias": []}) == "logit_bias: invalid type: sequence, expected a map"
    bias = "logit_bias.7: invalid type: "
    assert _openai_refusal(route, {"logit_bias": {"7": "x"}}) == bias + 'string "x", expected f32'
    assert _openai_refusal(route, {"logit_bias": {"7": None}}) == bias + "null, expected f32"


def test_a_completions_suffix_and_a_chats_guideline_are_strings() -> None:
    # lib.rs:976 (suffix: Option<String>), lib.rs:714-719 (guideline: Option<String>)
    _openai_accepts("completion", {"suffix": "end"})
    _openai_accepts("chat", {"guideline": "be brief"})
    assert _openai_refusal("completion", {"suffix": 1}) == (
        "suffix: invalid type: integer `1`, expected a string"
    )
    assert _openai_refusal("chat", {"guideline": []}) == (
        "guideline: invalid type: sequence, expected a string"
    )


@pytest.mark.parametrize(("text", "message"), [
    ('{"function": null}', "No _name found in generated text"),  # Value::get -> Some(Null), no `_name` in it
    ('{"function": 3}', "No _name found in generated text"),
    ('{"other": {}}', "No function found in generated text"),  # absent: None
    ("[1, 2]", "No function found in generated text"),  # Value::get on an array: None
])  # fmt: skip
def test_a_tool_call_text_without_a_usable_function_gets_loraxs_message(text: str, message: str) -> None:
    # server.rs:347-357 @a7394ba3
    with pytest.raises(wire.LoraxError) as caught:
        wire.tool_calls_from_text(text)
    assert caught.value.message == "Tool error: " + message  # InferError::ToolError's Display


def _message(message: Any) -> str:
    return wire.parse_chat_request({"model": MODEL, "messages": [message]}, MODEL).messages[0].content


CHUNK_OK = [
    ([{"type": "text", "text": "a"}, {"type": "text", "text": "b"}], "ab"),
    ([{"type": "image_url", "image_url": {"url": "http://x/i.png"}}], "![](http://x/i.png)"),
    # unknown keys are ignored (no deny_unknown_fields)
    ([{"type": "text", "text": "see ", "extra": 1},
      {"type": "image_url", "image_url": {"url": "u", "detail": "low"}}], "see ![](u)"),
    ([], ""),
]  # fmt: skip
CHUNK_BAD = [
    [{"type": "text"}],  # a text chunk without text
    [{"type": "text", "text": 1}],
    [{"type": "image_url"}],
    [{"type": "image_url", "image_url": {"url": 3}}],
    [{"type": "image_url", "image_url": "http://x"}],
    [{"type": "audio", "text": "a"}],  # no such variant
    [{"text": "a"}],  # no tag
    ["a"],
    [{"type": "text", "text": "ok"}, None],  # one bad chunk fails the whole sequence
]


@pytest.mark.parametrize(("content", "text"), CHUNK_OK)
def test_message_chunks_of_either_variant_become_one_text(content: list[Any], text: str) -> None:
    # lib.rs:590-596 (MessageChunk, tag = "type") and 647-662 (chunks joined, an image as a markdown image)
    assert _message({"role": "user", "content": content}) == text


@pytest.mark.parametrize("content", [*CHUNK_BAD, 3, {"type": "text", "text": "a"}, True])
def test_content_that_is_no_string_and_no_list_of_chunks_is_refused_as_serde_words_it(content: Any) -> None:
    # MessageContent is untagged (lib.rs:605-610): no variant matched, one message for every way
    assert _openai_refusal("chat", {"messages": [{"role": "user", "content": content}]}) == (
        "messages[0].content: " + wire.CONTENT_MISMATCH
    )


@pytest.mark.parametrize(("message", "error"), [
    ({"content": "hi"}, "messages[0]: missing field `role`"),
    ({"role": 3, "content": "hi"}, "messages[0].role: invalid type: integer `3`, expected a string"),
    ({"role": None, "content": "hi"}, "messages[0].role: invalid type: null, expected a string"),
])  # fmt: skip
def test_a_messages_role_is_a_required_string(message: dict[str, Any], error: str) -> None:
    assert _openai_refusal("chat", {"messages": [message]}) == error
