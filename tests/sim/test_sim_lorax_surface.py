"""The parts of LoRAX's API a first probe found the simulator got wrong: chat `n`, tools, merged adapters,
adapter sources, serde's strictness, `best_of: 0`, best-of sequences, alternative tokens, seeds, the stop
rule's order, CORS, `/docs` and the OpenAPI document. Each expectation cites the LoRAX router source it
comes from (predibase/lorax @a7394ba3, the commit docs/simulator.md models)."""

from __future__ import annotations

import json
import re

import httpx
import jsonschema
import openai
import pytest
from lorax import Client, MergedAdapters

from loraxkit import wire
from loraxkit.sim.process import SimulatorProcess
from loraxkit.sim.tokens import Vocabulary

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather of a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "minLength": 2},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "days": {"type": "integer", "minimum": 1, "maximum": 7},
            },
            "required": ["city", "unit"],
        },
    },
}
ALARM = {
    "type": "function",
    "function": {
        "name": "set_alarm",
        "parameters": {
            "type": "object",
            "properties": {"at": {"type": "string", "format": "time"}, "repeat": {"type": "boolean"}},
            "required": ["at"],
        },
    },
}
# tool_grammar.rs:34-48 @a7394ba3: the function LoRAX adds to every tool list
NO_TOOL = {
    "type": "function",
    "function": {
        "description": "Open ened response with no specific tool selected",
        "name": "no_tool",
        "parameters": {
            "type": "object",
            "properties": {"content": {"type": "string", "description": "The response content"}},
            "required": ["content"],
        },
    },
}
# lib.rs:860-862 @a7394ba3
TOOL_PROMPT = (
    "\nGiven the functions available, please respond with a JSON for a function call with its proper "
    "arguments that best answers the given prompt. Respond in the format {name: function name, parameters: "
    "dictionary of argument name and its value}.Do not use variables.\n"
)


@pytest.fixture(scope="module")
def client(sim: SimulatorProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=sim.base_url + "/v1", api_key="unused", max_retries=0)


@pytest.fixture(scope="module")
def vocab() -> Vocabulary:
    return Vocabulary()


def _chat(sim: SimulatorProcess, **body: object) -> httpx.Response:
    payload = {"model": "", "messages": [{"role": "user", "content": "weather in Paris?"}], **body}
    return httpx.post(sim.base_url + "/v1/chat/completions", json=payload, timeout=30)


def _generate(sim: SimulatorProcess, route: str = "/generate", **params: object) -> httpx.Response:
    return httpx.post(sim.base_url + route, json={"inputs": "surface", "parameters": params}, timeout=30)


def _stream_events(response: httpx.Response) -> list[dict[str, object]]:
    return [json.loads(line[5:]) for line in response.text.splitlines() if line.startswith("data:{")]


# ------------------------------------------------------------------------------------------- chat `n`
def test_chat_n_samples_best_of_sequences_one_choice_each(client: openai.OpenAI) -> None:
    # lib.rs:807-810,831: n → best_of, sampling unless temperature is 0; server.rs:323-336: the best text,
    # then best_of_sequences, one choice each (lib.rs:1371-1406)
    r = client.chat.completions.create(
        model="acme/a", messages=[{"role": "user", "content": "two ideas"}], n=2, max_tokens=6
    )
    assert [c.index for c in r.choices] == [0, 1]
    texts = [c.message.content for c in r.choices]
    assert texts[0] != texts[1] and all(texts)
    assert all(c.finish_reason == "length" for c in r.choices)
    again = client.chat.completions.create(
        model="acme/a", messages=[{"role": "user", "content": "two ideas"}], n=2, max_tokens=6
    )
    assert [c.message.content for c in again.choices] == texts  # deterministic like every answer
    one = client.chat.completions.create(
        model="acme/a", messages=[{"role": "user", "content": "two ideas"}], max_tokens=6
    )
    assert len(one.choices) == 1


def test_chat_n_is_refused_where_loraxs_best_of_rules_refuse_it(sim: SimulatorProcess) -> None:
    # validation.rs:250-261 BestOfSampling: temperature 0 turns sampling off (lib.rs:807-810)
    r = _chat(sim, n=2, temperature=0, max_tokens=4)
    assert r.status_code == 422 and r.json()["error"].endswith("you must use sampling when `best_of` is > 1")
    # infer.rs:1007 → validation.rs:414-421 (max_best_of 2)
    r = _chat(sim, n=3, max_tokens=4)
    assert r.status_code == 422 and "`best_of` must be > 0 and <= 2. Given: 3" in r.json()["error"]
    # validation.rs:360-369 BestOfSeed
    r = _chat(sim, n=2, seed=7, max_tokens=4)
    assert r.status_code == 422 and "`seed` must not be set when `best_of` > 1" in r.json()["error"]
    # server.rs:1031-1036: a stream with best_of != 1 is an in-stream validation error under 200
    r = _chat(sim, n=2, stream=True, max_tokens=4)
    assert r.status_code == 200
    assert _stream_events(r) == [
        {
            "error": "Input validation error: `best_of` != 1 is not supported when streaming tokens",
            "error_type": "validation",
        }
    ]
    # n = 0 → best_of Some(0): not > 1, so the plain path (server.rs:689-697): one choice
    r = _chat(sim, n=0, max_tokens=4)
    assert r.status_code == 200 and len(r.json()["choices"]) == 1


# ------------------------------------------------------------------------------------------- best_of
def test_generate_best_of_lists_the_other_sequences_with_their_seeds(sim: SimulatorProcess) -> None:
    r = _generate(sim, best_of=2, do_sample=True, max_new_tokens=5, details=True)
    assert r.status_code == 200
    details = r.json()["details"]
    # lib.rs:459-475: best_of_sequences after tokens; lib.rs:445-457 BestOfSequence fields
    others = details["best_of_sequences"]
    assert len(others) == 1
    assert list(others[0]) == [
        "generated_text",
        "finish_reason",
        "generated_tokens",
        "seed",
        "prefill",
        "tokens",
    ]
    assert isinstance(details["seed"], int) and isinstance(others[0]["seed"], int)
    assert others[0]["generated_text"] != r.json()["generated_text"]

    def mean(tokens: list[dict[str, float]]) -> float:
        return sum(t["logprob"] for t in tokens) / len(tokens)

    # infer.rs:1021-1041: the answer is the sequence with the highest mean logprob
    assert mean(details["tokens"]) >= mean(others[0]["tokens"])
    # without best_of > 1 the field is left out (skip_serializing_if)
    assert "best_of_sequences" not in _generate(sim, max_new_tokens=2, details=True).json()["details"]
    # lorax-client reads it
    response = Client(sim.base_url).generate("surface", best_of=2, do_sample=True, max_new_tokens=5)
    assert response.details.best_of_sequences is not None and len(response.details.best_of_sequences) == 1


def test_best_of_zero_takes_the_plain_path_but_not_on_a_stream(sim: SimulatorProcess) -> None:
    # server.rs:689-697: only `Some(best_of) if best_of > 1` goes best-of; validation.rs:250 unwrap_or(1)
    r = _generate(sim, best_of=0, max_new_tokens=3)
    assert r.status_code == 200 and r.json()["generated_text"]
    # server.rs:1031-1036: `best_of.unwrap_or(1) != 1` on streams
    r = _generate(sim, "/generate_stream", best_of=0, max_new_tokens=3)
    assert _stream_events(r)[0]["error_type"] == "validation"
    assert "`best_of` != 1 is not supported when streaming tokens" in str(_stream_events(r)[0]["error"])


# ------------------------------------------------------------------------------------------- seed
@pytest.mark.parametrize(
    ("params", "sampled"),
    [
        ({}, False),
        ({"temperature": 1.0}, False),  # temperature 1 is no warper (tokens.py:313-316)
        ({"top_p": 1.0}, False),  # top_p < 1 only
        ({"temperature": 0.5}, True),  # a warper forces sampling (tokens.py:313-328)
        ({"top_k": 5}, True),
        ({"typical_p": 0.5}, True),
        ({"do_sample": True}, True),
    ],
)
def test_details_seed_is_a_number_exactly_when_the_shard_samples(
    sim: SimulatorProcess, params: dict[str, object], sampled: bool
) -> None:
    # flash_causal_lm.py:2044: `seed if do_sample else None`, do_sample widened by the warpers
    # (server/lorax_server/utils/tokens.py:313-335); validation.rs:360-369 draws a seed when none is given
    details = _generate(sim, max_new_tokens=2, details=True, **params).json()["details"]
    assert isinstance(details["seed"], int) if sampled else details["seed"] is None
    stream = _generate(sim, "/generate_stream", max_new_tokens=2, details=True, **params)
    final = _stream_events(stream)[-1]["details"]
    assert isinstance(final, dict) and (isinstance(final["seed"], int) if sampled else final["seed"] is None)
    if sampled:
        given = _generate(sim, max_new_tokens=2, details=True, seed=42, **params).json()["details"]
        assert given["seed"] == 42


# ------------------------------------------------------------------------------------------- alternatives
def test_return_k_alternatives_lists_the_top_tokens_per_token(sim: SimulatorProcess) -> None:
    r = _generate(sim, max_new_tokens=3, details=True, return_k_alternatives=3).json()
    for token in r["details"]["tokens"]:
        alternatives = token["alternative_tokens"]
        # flash_causal_lm.py:1701-1704,1980-2000: the step's log-softmax sorted descending, top k; the greedy
        # choice is the most likely
        assert len(alternatives) == 3 and alternatives[0]["id"] == token["id"]
        logprobs = [a["logprob"] for a in alternatives]
        assert logprobs == sorted(logprobs, reverse=True)
        assert list(token) == ["id", "text", "logprob", "special", "alternative_tokens", "skipped"]
    plain = _generate(sim, max_new_tokens=2, details=True).json()["details"]["tokens"][0]
    assert "alternative_tokens" not in plain  # lib.rs:414-416 skip_serializing_if
    events = _stream_events(_generate(sim, "/generate_stream", max_new_tokens=2, return_k_alternatives=2))
    assert all(len(e["token"]["alternative_tokens"]) == 2 for e in events)  # type: ignore[index]
    response = Client(sim.base_url).generate("surface", max_new_tokens=2, return_k_alternatives=2)
    assert len(response.details.tokens[0].alternative_tokens or []) == 2


# ------------------------------------------------------------------------------------------- stop rule
def test_a_stop_sequence_on_the_last_allowed_token_reports_length(sim: SimulatorProcess) -> None:
    tokens = _generate(sim, max_new_tokens=4, details=True).json()["details"]["tokens"]
    stop = tokens[2]["text"].strip()
    # tokens.py:190-211: the length check runs before the stop sequences
    third = _generate(sim, max_new_tokens=3, details=True, stop=[stop]).json()
    assert third["details"]["finish_reason"] == "length" and third["details"]["generated_tokens"] == 3
    fourth = _generate(sim, max_new_tokens=4, details=True, stop=[stop]).json()
    assert (
        fourth["details"]["finish_reason"] == "stop_sequence" and fourth["details"]["generated_tokens"] == 3
    )


# ------------------------------------------------------------------------------------------- serde
@pytest.mark.parametrize(
    ("body", "needle"),
    [
        # lib.rs:335: `default` applies to a missing key; null is a type error
        (
            {"inputs": "x", "parameters": None},
            "parameters: invalid type: null, expected struct GenerateParameters",
        ),
        # lib.rs:526-543: `type` is required and one of the ResponseFormatType variants (or their aliases)
        ({"inputs": "x", "parameters": {"response_format": {"schema": {}}}}, "missing field `type`"),
        ({"inputs": "x", "parameters": {"response_format": {"type": "xml"}}}, "unknown variant `xml`"),
        # lib.rs:83-99: AdapterParameters.ids has no default
        ({"inputs": "x", "parameters": {"merged_adapters": {"weights": [1.0]}}}, "missing field `ids`"),
        (
            {"inputs": "x", "parameters": {"merged_adapters": {"ids": ["a"], "density": None}}},
            "merged_adapters.density: invalid type: null, expected f32",
        ),
    ],
)
def test_serde_rejections_are_plain_text_422s(
    sim: SimulatorProcess, body: dict[str, object], needle: str
) -> None:
    for route in ("/generate", "/generate_stream"):
        r = httpx.post(sim.base_url + route, json=body)
        assert r.status_code == 422 and needle in r.text
        assert r.headers["content-type"].startswith("text/plain")


def test_response_format_constrains_the_answer_to_its_schema(sim: SimulatorProcess) -> None:
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
        "required": ["name", "age"],
    }
    # validation.rs:369-373: the schema goes to the shard, whose outlines processor constrains the output
    r = _generate(
        sim, response_format={"type": "json_object", "schema": schema}, max_new_tokens=200, details=True
    )
    jsonschema.validate(json.loads(r.json()["generated_text"]), schema)
    assert r.json()["details"]["finish_reason"] == "eos_token"
    # `text` keeps the default schema (lib.rs:540-553): still a JSON object
    r = _generate(sim, response_format={"type": "text"}, max_new_tokens=200)
    assert isinstance(json.loads(r.json()["generated_text"]), dict)


# ------------------------------------------------------------------------------------------- tools
def test_tools_with_response_format_and_unknown_tool_choice_are_tool_errors(sim: SimulatorProcess) -> None:
    fmt = {"type": "json_object"}
    # server.rs:430-434, before streaming starts: a plain 422 even with stream: true
    for stream in (False, True):
        r = _chat(sim, tools=[WEATHER], response_format=fmt, stream=stream)
        assert r.status_code == 422
        assert r.json() == {
            "error": "Tool error: Response format and tools are mutually exclusive",
            "error_type": "tool_error",
        }
    # lib.rs:896-906: any string but "none"/"auto" names a function, so OpenAI's "required" is looked up
    # as a tool (tool_grammar.rs:13-19)
    r = _chat(sim, tools=[WEATHER], tool_choice="required")
    assert r.status_code == 422 and r.json()["error"] == "Tool error: Tool with name required not found"
    # OpenAI's object form matches no variant of the untagged ToolTypeDeserializer (lib.rs:888-893)
    r = _chat(sim, tools=[WEATHER], tool_choice={"type": "function", "function": {"name": "get_weather"}})
    assert r.status_code == 422 and "untagged enum ToolTypeDeserializer" in r.text
    # lib.rs:945-951: FunctionDefinition.parameters has no default
    bare = {"type": "function", "function": {"name": "f"}}
    r = _chat(sim, tools=[bare])
    assert r.status_code == 422 and "tools[0].function: missing field `parameters`" in r.text


def test_a_named_tool_is_called_with_arguments_valid_against_its_schema(
    client: openai.OpenAI, sim: SimulatorProcess
) -> None:
    calls = []
    for choice in ("get_weather", {"Function": {"name": "get_weather"}}):
        r = _chat(sim, tools=[WEATHER, ALARM], tool_choice=choice)
        assert r.status_code == 200
        message = r.json()["choices"][0]["message"]
        # lib.rs:1049-1057 + 1378-1383: tool_calls and no content; server.rs:378-389: id "0", the name, the
        # arguments as a JSON string without `_name`
        assert "content" not in message and message["role"] == "assistant"
        (call,) = message["tool_calls"]
        assert call["id"] == "0" and call["type"] == "function"
        assert call["function"]["name"] == "get_weather" and call["function"]["description"] is None
        arguments = json.loads(call["function"]["arguments"])
        jsonschema.validate(arguments, WEATHER["function"]["parameters"])  # type: ignore[index]
        calls.append(call)
    assert calls[0] == calls[1]  # deterministic
    # the official package reads it
    r2 = client.chat.completions.create(
        model="",
        messages=[{"role": "user", "content": "weather in Paris?"}],
        tools=[WEATHER],  # type: ignore[list-item]
        tool_choice="get_weather",  # type: ignore[arg-type]
    )
    tool_call = r2.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert r2.choices[0].message.content is None and tool_call.function.name == "get_weather"  # type: ignore[union-attr]
    assert r2.choices[0].finish_reason == "stop"  # the grammar ends with EOS (lib.rs:1482-1489)


def test_auto_picks_a_tool_or_no_tool_and_none_answers_in_text(sim: SimulatorProcess) -> None:
    seen = set()
    for i in range(8):
        body = {"messages": [{"role": "user", "content": f"question {i}"}], "tools": [WEATHER, ALARM]}
        message = _chat(sim, **body).json()["choices"][0]["message"]
        if "tool_calls" in message:
            name = message["tool_calls"][0]["function"]["name"]
            schema = (WEATHER if name == "get_weather" else ALARM)["function"]["parameters"]
            jsonschema.validate(json.loads(message["tool_calls"][0]["function"]["arguments"]), schema)
            seen.add(name)
        else:  # no_tool: its `content` argument is the message (server.rs:364-376)
            assert isinstance(message["content"], str) and message["content"]
            seen.add("no_tool")
    assert len(seen) >= 2  # tool_grammar.rs:55-60: OneOf lets the grammar take any tool, no_tool included
    r = _chat(sim, tools=[WEATHER], tool_choice="none", max_tokens=5)
    message = r.json()["choices"][0]["message"]
    assert "tool_calls" not in message and len(message["content"].split()) == 5  # plain text (grammar None)


def test_tools_are_appended_to_the_last_message_of_the_prompt(
    sim: SimulatorProcess, vocab: Vocabulary
) -> None:
    # infer.rs:109-129: the template has no `tools` variable, so "\n---\n<tools JSON>\n<tool prompt>" (the
    # tools with no_tool appended, serde_json compact, tool_grammar.rs:50) ends the last message
    r = _chat(sim, tools=[WEATHER], tool_choice="none", max_tokens=1)
    suffix = "\n---\n" + json.dumps([WEATHER, NO_TOOL], separators=(",", ":")) + "\n" + TOOL_PROMPT
    expected = vocab.chat_prompt_ids([wire.ChatMessageIn("user", "weather in Paris?" + suffix)])
    assert r.json()["usage"]["prompt_tokens"] == len(expected)


def test_a_tool_call_cut_by_max_tokens_is_a_tool_error(sim: SimulatorProcess) -> None:
    # server.rs:341-346: the generated text must parse as JSON
    r = _chat(sim, tools=[WEATHER], tool_choice="get_weather", max_tokens=3)
    assert r.status_code == 422 and r.json()["error_type"] == "tool_error"
    assert r.json()["error"].startswith("Tool error: Failed to parse generated text")


def test_a_tool_stream_carries_the_grammar_text_as_content(sim: SimulatorProcess) -> None:
    # lib.rs:1466-1474: tool calls are not streamed as tool_calls; the deltas are the raw JSON text
    r = _chat(sim, tools=[WEATHER], tool_choice="get_weather", stream=True)
    deltas = [c["choices"][0]["delta"].get("content") or "" for c in _stream_events(r)]  # type: ignore[index,union-attr]
    value = json.loads("".join(deltas))
    assert value["function"]["_name"] == "get_weather"


# ------------------------------------------------------------------------------------------- merged adapters
@pytest.mark.parametrize(
    ("merged", "extra", "message"),
    [
        ({"ids": [], "weights": []}, {}, "at least one adapter ID must be provided when setting `adapters`"),
        (
            {"ids": ["a", "b"], "weights": [1.0]},
            {},
            "number of adapter IDs must match number of adapter weights",
        ),
        (
            {"ids": ["a"], "weights": [1.0]},
            {"adapter_id": "a"},
            "at most one of `adapter_id` or `adapters` may be provided",
        ),
    ],
)
def test_merged_adapter_mistakes_are_validation_errors(
    sim: SimulatorProcess, merged: dict[str, object], extra: dict[str, object], message: str
) -> None:
    # validation.rs:236-248
    r = _generate(sim, merged_adapters=merged, max_new_tokens=2, **extra)
    assert r.status_code == 422 and r.json()["error"] == "Input validation error: " + message


def test_a_merged_adapter_answers_with_every_id_in_x_adapter_id(sim: SimulatorProcess) -> None:
    merged = {"ids": ["org/a", "org/b"], "weights": [0.5, 0.5], "merge_strategy": "ties", "density": 0.5}
    r = _generate(sim, merged_adapters=merged, max_new_tokens=3)
    # server.rs:831-843: the ids joined by ",", and the request's source (else the default, hub)
    assert r.status_code == 200
    assert r.headers["x-adapter-id"] == "org/a,org/b" and r.headers["x-adapter-source"] == "hub"
    s = _generate(sim, "/generate_stream", merged_adapters=merged, adapter_source="s3", max_new_tokens=2)
    assert s.headers["x-adapter-id"] == "org/a,org/b" and s.headers["x-adapter-source"] == "s3"
    # lorax-client sends `merged_adapters`
    client = Client(sim.base_url)
    response = client.generate(
        "surface",
        merged_adapters=MergedAdapters(
            ids=["org/a", "org/b"], weights=[0.5, 0.5], merge_strategy="ties", density=0.5
        ),
        max_new_tokens=3,
    )
    assert response.generated_text == r.json()["generated_text"]
    plain = _generate(sim, max_new_tokens=2)
    assert "x-adapter-id" not in plain.headers  # base model: no adapter headers (server.rs:840)


# ------------------------------------------------------------------------------------------- adapter_source
def test_an_unknown_adapter_source_fails_the_download_with_424(sim: SimulatorProcess) -> None:
    def failures() -> float:
        text = httpx.get(sim.base_url + "/metrics").text
        match = re.search(r'^lorax_request_failure\{err="download_adapter"\} (\S+)$', text, flags=re.M)
        return float(match.group(1)) if match else 0.0

    before = failures()
    # router/client/src/client.rs:251-270: upper-cased, looked up in AdapterSource; loader.rs:161-171 →
    # 258-271: every waiting request gets the GenerationError
    r = _generate(sim, adapter_id="org/src-x", adapter_source="gcs", max_new_tokens=2)
    assert r.status_code == 424
    assert r.json() == {
        "error": "Request failed during generation: Server error: Invalid source 'gcs' when "
        "downloading adapter 'org/src-x'",
        "error_type": "generation",
    }
    assert failures() == before + 1
    s = _generate(sim, "/generate_stream", adapter_id="org/src-y", adapter_source="gcs", max_new_tokens=2)
    assert s.status_code == 200 and _stream_events(s)[0]["error_type"] == "generation"
    # (lorax-client refuses such a source itself, lorax/types.py `valid_adapter_source`; a raw body reaches
    # the server, and the client maps the 424 to its GenerationError as for any failed load)
    # the case does not matter, and the base model's queue exists already (its source is never used)
    assert _generate(sim, adapter_id="org/src-x", adapter_source="S3", max_new_tokens=2).status_code == 200
    assert _generate(sim, adapter_source="gcs", max_new_tokens=2).status_code == 200


# ------------------------------------------------------------------------------------------- CORS, docs
def test_cors_preflight_and_vary_as_tower_http_answers(sim: SimulatorProcess) -> None:
    # server.rs:1552-1573 + tower-http 0.6.1 cors/mod.rs:663-705,742-775, vary.rs
    pre = httpx.options(
        sim.base_url + "/generate",
        headers={"origin": "https://app.example", "access-control-request-method": "POST"},
    )
    assert pre.status_code == 200 and pre.content == b"" and "content-type" not in pre.headers
    assert pre.headers["access-control-allow-origin"] == "*"
    assert pre.headers["access-control-allow-methods"] == "GET,POST"
    assert pre.headers["access-control-allow-headers"] == "content-type"
    assert pre.headers["vary"] == "origin, access-control-request-method, access-control-request-headers"
    for r in (
        httpx.get(sim.base_url + "/info"),
        httpx.get(sim.base_url + "/nope"),
        _generate(sim, max_new_tokens=1),
    ):
        assert r.headers["vary"] == "origin, access-control-request-method, access-control-request-headers"
        assert r.headers["access-control-allow-origin"] == "*"
        assert "access-control-allow-methods" not in r.headers  # preflight only


def test_docs_and_the_openapi_document(sim: SimulatorProcess) -> None:
    # utoipa-swagger-ui 6.0.0 src/axum.rs:48-53 (server.rs:1620): /docs redirects to /docs/
    r = httpx.get(sim.base_url + "/docs")
    assert r.status_code == 303 and r.headers["location"] == "/docs/"
    assert httpx.get(sim.base_url + "/docs/").headers["content-type"].startswith("text/html")
    doc = httpx.get(sim.base_url + "/api-doc/openapi.json").json()
    # server.rs:1388-1454 ApiDoc: the paths, their handlers as operation ids, the schema names
    ops = {
        (path, method): op["operationId"]
        for path, item in doc["paths"].items()
        for method, op in item.items()
    }
    assert ops == {
        ("/health", "get"): "health",
        ("/info", "get"): "get_model_info",
        ("/", "post"): "compat_generate",
        ("/generate", "post"): "generate",
        ("/generate_stream", "post"): "generate_stream",
        ("/v1/completions", "post"): "completions_v1",
        ("/v1/chat/completions", "post"): "chat_completions_v1",
        ("/tokenize", "post"): "tokenize",
        ("/metrics", "get"): "metrics",
    }
    names = {
        "Info",
        "UsageInfo",
        "ResponseFormat",
        "ResponseFormatType",
        "OpenAiResponseFormat",
        "JsonSchema",
        "CompatGenerateRequest",
        "GenerateRequest",
        "GenerateParameters",
        "AdapterParameters",
        "AlternativeToken",
        "PrefillToken",
        "Token",
        "SimpleToken",
        "TokenizeRequest",
        "TokenizeResponse",
        "GenerateResponse",
        "BestOfSequence",
        "Details",
        "FinishReason",
        "StreamResponse",
        "StreamDetails",
        "ErrorResponse",
        "ChatMessage",
        "LogProbs",
        "CompletionRequest",
        "CompletionResponse",
        "CompletionResponseChoice",
        "CompletionStreamResponse",
        "CompletionResponseStreamChoice",
        "CompletionFinishReason",
        "ChatCompletionRequest",
        "ChatCompletionResponse",
        "ChatCompletionResponseChoice",
        "ChatCompletionStreamResponse",
        "ChatCompletionStreamResponseChoice",
    }
    assert set(doc["components"]["schemas"]) == names
    assert doc["info"]["title"] == "LoRAX" and doc["info"]["version"] == "0.1.0"
    # every reference resolves
    refs = set(re.findall(r'"#/components/schemas/([^"]+)"', json.dumps(doc)))
    assert refs <= names


def test_image_chunks_become_markdown_images_in_the_prompt(sim: SimulatorProcess, vocab: Vocabulary) -> None:
    # lib.rs:647-662: MessageChunk::ImageUrl → "![](url)" in the templated text
    content = [{"type": "text", "text": "look "}, {"type": "image_url", "image_url": {"url": "http://x/y.png"}}]
    r = _chat(sim, messages=[{"role": "user", "content": content}], max_tokens=1)
    expected = vocab.chat_prompt_ids([wire.ChatMessageIn("user", "look ![](http://x/y.png)")])
    assert r.json()["usage"]["prompt_tokens"] == len(expected)
