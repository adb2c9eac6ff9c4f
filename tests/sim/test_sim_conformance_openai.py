"""Conformance through the official `openai` package: completions and chat, streaming and not;
`model` picks the adapter; `[DONE]` ends the stream (the package stops iterating only on it)."""

from __future__ import annotations

import httpx
import openai
import pytest

from loraxkit import wire
from loraxkit.sim.process import SimulatorProcess


@pytest.fixture(scope="module")
def client(sim: SimulatorProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=sim.base_url + "/v1", api_key="unused", max_retries=0)


def _native_text(sim: SimulatorProcess, prompt: str, adapter: str | None, n: int) -> str:
    params: dict[str, object] = {"max_new_tokens": n}
    if adapter:
        params["adapter_id"] = adapter
    r = httpx.post(sim.base_url + "/generate", json={"inputs": prompt, "parameters": params})
    return str(r.json()["generated_text"])


def test_completion_uses_the_model_as_adapter(client: openai.OpenAI, sim: SimulatorProcess) -> None:
    r = client.completions.create(model="acme/sql", prompt="SELECT", max_tokens=7)
    assert r.choices[0].text == _native_text(sim, "SELECT", "acme/sql", 7)
    assert r.choices[0].finish_reason == "length"
    assert r.usage is not None and r.usage.completion_tokens == 7
    assert r.object == "text_completion"


def test_completion_with_the_base_model_id_means_no_adapter(
    client: openai.OpenAI, sim: SimulatorProcess
) -> None:
    r = client.completions.create(model=wire.DEFAULT_MODEL_ID, prompt="Base?", max_tokens=5)
    assert r.choices[0].text == _native_text(sim, "Base?", None, 5)


def test_completion_stream_ends_with_done_and_usage(client: openai.OpenAI) -> None:
    chunks = list(client.completions.create(model="acme/sql", prompt="SELECT", max_tokens=7, stream=True))
    assert len(chunks) == 7
    assert [c.choices[0].finish_reason for c in chunks] == [None] * 6 + ["length"]
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 7
    # LoRAX sends usage on every completions chunk, with completion_tokens 0 until the last
    assert chunks[0].usage is not None and chunks[0].usage.completion_tokens == 0
    streamed = "".join(c.choices[0].text for c in chunks)
    plain = client.completions.create(model="acme/sql", prompt="SELECT", max_tokens=7).choices[0].text
    assert streamed == plain


def test_chat_and_chat_stream_agree(client: openai.OpenAI, sim: SimulatorProcess) -> None:
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi there"}]
    r = client.chat.completions.create(model="acme/chat", messages=messages, max_tokens=6)  # type: ignore[arg-type]
    info = httpx.get(sim.base_url + "/info").json()
    assert r.system_fingerprint == f"{info['version']}-{info['docker_label']}"  # as server.rs builds it
    assert r.choices[0].message.role == "assistant"
    assert r.choices[0].finish_reason == "length"
    assert r.usage is not None and r.usage.completion_tokens == 6
    chunks = list(
        client.chat.completions.create(
            model="acme/chat",
            messages=messages,  # type: ignore[arg-type]
            max_tokens=6,
            stream=True,
        )
    )
    assert len(chunks) == 6
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == r.choices[0].message.content
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 6
    assert chunks[0].usage is None  # chat chunks carry usage only on the final one


def test_chat_prompt_tokens_use_the_mistral_instruct_template(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(
        model="", messages=[{"role": "user", "content": "hi there"}], max_tokens=1
    )
    # <s> [INST] hi there [/INST] → Mistral-7B v0.1 ids
    # [1, 733, 16289, 28793, 12014, 736, 733, 28748, 16289, 28793]
    assert r.usage is not None and r.usage.prompt_tokens == 10


def test_chat_stream_raw_wire_ends_with_done(sim: SimulatorProcess) -> None:
    body = {
        "model": "acme/chat",
        "messages": [{"role": "user", "content": "x"}],
        "max_tokens": 3,
        "stream": True,
    }
    with httpx.stream("POST", sim.base_url + "/v1/chat/completions", json=body) as r:
        lines = [line for line in r.iter_lines() if line]
    kinds = [wire.parse_sse_line(line).kind for line in lines]
    assert kinds == [wire.EventKind.TOKEN, wire.EventKind.TOKEN, wire.EventKind.FINAL, wire.EventKind.DONE]


def test_unloadable_adapter_is_an_in_stream_error_the_package_raises(
    client: openai.OpenAI, sim: SimulatorProcess
) -> None:
    # LoRAX answers 200 and sends `data:{"error":…}`; the openai package turns that event into APIError
    with pytest.raises(openai.APIError) as completion_err:
        list(client.completions.create(model="broken/sql", prompt="x", max_tokens=3, stream=True))
    with pytest.raises(openai.APIError) as chat_err:
        list(
            client.chat.completions.create(
                model="broken/chat", messages=[{"role": "user", "content": "x"}], max_tokens=3, stream=True
            )
        )
    for err in (completion_err.value, chat_err.value):
        assert str(err.body).startswith("Request failed during generation: ")
    plain = httpx.post(sim.base_url + "/v1/completions", json={"model": "broken/sql", "prompt": "x"})
    assert (plain.status_code, plain.json()["error_type"]) == (424, "generation")
