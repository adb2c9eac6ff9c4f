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
