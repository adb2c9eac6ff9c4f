"""Conformance through the official `lorax-client` (Client and AsyncClient) against a running simulator."""

from __future__ import annotations

import asyncio

import pytest
from lorax import AsyncClient, Client
from lorax.errors import GenerationError, ValidationError
from lorax.types import FinishReason

from loraxkit.sim.process import SimulatorProcess
from loraxkit.sim.tokens import Vocabulary, expected_token_ids


@pytest.fixture(scope="module")
def vocab() -> Vocabulary:
    return Vocabulary()


def test_generate_with_adapter_returns_the_adapters_deterministic_text(
    sim: SimulatorProcess, vocab: Vocabulary
) -> None:
    response = Client(sim.base_url).generate("What is LoRA?", adapter_id="acme/support-v1", max_new_tokens=12)
    expected = expected_token_ids(vocab, 0, "acme/support-v1", "What is LoRA?", 12)
    assert [t.id for t in response.details.tokens] == expected
    assert response.generated_text == "".join(vocab.token_text(t) for t in expected)
    assert response.details.generated_tokens == 12
    assert response.details.finish_reason == FinishReason.Length
    assert response.details.prompt_tokens == vocab.count("What is LoRA?")


def test_generate_stream_with_adapter_yields_one_event_per_token_then_the_final_text(
    sim: SimulatorProcess,
) -> None:
    client = Client(sim.base_url)
    events = list(client.generate_stream("Tell me a story", adapter_id="acme/story", max_new_tokens=9))
    assert len(events) == 9
    assert all(e.generated_text is None for e in events[:-1])
    final = events[-1]
    assert final.generated_text == "".join(e.token.text for e in events)
    assert final.details is not None and final.details.generated_tokens == 9
    plain = client.generate("Tell me a story", adapter_id="acme/story", max_new_tokens=9)
    assert plain.generated_text == final.generated_text


def test_different_adapters_give_different_text_for_the_same_prompt(sim: SimulatorProcess) -> None:
    client = Client(sim.base_url)
    a = client.generate("Same prompt", adapter_id="team/a", max_new_tokens=8).generated_text
    b = client.generate("Same prompt", adapter_id="team/b", max_new_tokens=8).generated_text
    base = client.generate("Same prompt", max_new_tokens=8).generated_text
    assert len({a, b, base}) == 3


def test_async_client_generate_and_stream(sim: SimulatorProcess) -> None:
    async def run() -> tuple[str, list[str], str]:
        client = AsyncClient(sim.base_url)
        response = await client.generate("Async hello", adapter_id="acme/async", max_new_tokens=6)
        texts = []
        final = ""
        async for event in client.generate_stream("Async hello", adapter_id="acme/async", max_new_tokens=6):
            texts.append(event.token.text)
            if event.generated_text is not None:
                final = event.generated_text
        return response.generated_text, texts, final

    text, tokens, final = asyncio.run(run())
    assert len(tokens) == 6
    assert final == "".join(tokens) == text


def test_unloadable_adapter_raises_generation_error_plain_and_in_stream(sim: SimulatorProcess) -> None:
    client = Client(sim.base_url)
    with pytest.raises(GenerationError, match="Request failed during generation"):
        client.generate("hi", adapter_id="broken/adapter", max_new_tokens=4)
    with pytest.raises(GenerationError, match="Request failed during generation"):
        list(client.generate_stream("hi", adapter_id="broken/adapter", max_new_tokens=4))


def test_server_side_validation_error_reaches_the_client(sim: SimulatorProcess) -> None:
    client = Client(sim.base_url)
    with pytest.raises(ValidationError, match="`inputs` tokens \\+ `max_new_tokens` must be <= 4096"):
        client.generate("hi", max_new_tokens=5000)
    with pytest.raises(ValidationError, match="`inputs` tokens \\+ `max_new_tokens` must be <= 4096"):
        list(client.generate_stream("hi", max_new_tokens=5000))
