"""Unit tests of the shared wire module (client-side SSE parser, parameter typing) and the GPU profiles."""

from __future__ import annotations

import dataclasses
import re

import pytest

from loraxkit import wire
from loraxkit.cli import build_parser
from loraxkit.sim.cli import config_from_args
from loraxkit.sim.profiles import PROFILES, WEIGHT_BYTES_8B, get_profile
from loraxkit.sim.tokens import Vocabulary, expected_token_ids


@pytest.mark.parametrize(
    ("line", "kind", "text"),
    [
        (b":", wire.EventKind.KEEP_ALIVE, ""),
        ("", wire.EventKind.BLANK, ""),
        ("data: [DONE]", wire.EventKind.DONE, ""),
        (
            'data: {"token":{"id":1,"text":" a","logprob":0,"special":false,"skipped":false},'
            '"generated_text":null,"details":null}',
            wire.EventKind.TOKEN,
            " a",
        ),
        (
            'data:{"choices":[{"index":0,"text":" b","logprobs":null,"finish_reason":null}]}',
            wire.EventKind.TOKEN,
            " b",
        ),
        (
            'data: {"choices":[{"index":0,"delta":{"role":"assistant","content":" c"},'
            '"finish_reason":null}]}',
            wire.EventKind.TOKEN,
            " c",
        ),
        ("event: ping", wire.EventKind.OTHER, ""),
    ],
)
def test_parse_sse_line_classifies_each_line(line: str | bytes, kind: wire.EventKind, text: str) -> None:
    parsed = wire.parse_sse_line(line)
    assert (parsed.kind, parsed.text) == (kind, text)


def test_parse_sse_line_final_and_error_events() -> None:
    final = wire.parse_sse_line(
        wire.sse_event(
            wire.stream_response(
                wire.token_json(5, " z", -0.1), " y z", wire.stream_details("length", 3, 2, None)
            )
        )
    )
    assert (final.kind, final.generated_text, final.generated_tokens, final.prompt_tokens) == (
        wire.EventKind.FINAL,
        " y z",
        2,
        3,
    )
    chat_final = wire.parse_sse_line(wire.sse_event(wire.chat_chunk(" q", "length", 4, 7)))
    assert (chat_final.kind, chat_final.generated_tokens, chat_final.finish_reason) == (
        wire.EventKind.FINAL,
        7,
        "length",
    )
    err = wire.parse_sse_line(wire.sse_error(wire.overloaded_error()))
    assert (err.kind, err.error, err.error_type) == (
        wire.EventKind.ERROR,
        "Model is overloaded",
        "overloaded",
    )


def test_eos_final_chunks_are_empty_as_in_lorax() -> None:
    assert wire.completion_chunk("</s>", "eos_token")["choices"][0]["text"] == ""
    assert wire.chat_chunk("</s>", "eos_token")["choices"][0]["delta"] == {}


def test_generate_params_are_typed_like_serde() -> None:
    params = wire.parse_generate_params({"max_new_tokens": 3, "temperature": 1, "unknown": "ignored"})
    assert (params.max_new_tokens, params.temperature) == (3, 1)
    with pytest.raises(wire.BodyRejection, match=r"parameters.top_k: invalid type: floating point `1.5`"):
        wire.parse_generate_params({"top_k": 1.5})
    assert wire.parse_generate_params({"stop": "x"}, lenient=True).stop == ["x"]
    assert wire.parse_generate_params({"ignore_eos": True}, lenient=True).ignore_eos_token is True
    assert wire.parse_generate_params({"ignore_eos": True}).ignore_eos_token is False


def test_openai_model_maps_to_adapter() -> None:
    _, params, stream = wire.parse_completion_body(
        {"model": "org/ad", "prompt": "p", "stream": True}, "base/m"
    )
    assert (params.adapter_id, stream, params.details) == ("org/ad", True, True)
    _, base, _ = wire.parse_completion_body({"model": "base/m", "prompt": "p"}, "base/m")
    assert base.adapter_id is None
    with pytest.raises(wire.BodyRejection, match="missing field `messages`"):
        wire.parse_chat_body({"model": "x"}, "base/m")


@pytest.mark.parametrize("name", [n for n in sorted(PROFILES) if not PROFILES[n].synthetic])
def test_no_profile_beats_the_memory_bandwidth_bound(name: str) -> None:
    """Every step reads the bf16 weights once (and a decode step the batch's KV cache) from HBM: at the
    datasheet bandwidth that takes at least (weights + KV bytes) / bandwidth."""
    p = get_profile(name)
    bytes_per_s = p.bandwidth_tbs * 1e12
    for batch in (1, 3, 16, 64, 256, 1000):
        for context in (1, 512, 4096, 32768):
            kv_bytes = batch * context * 32 * 8 * 128 * 2 * 2  # layers x KV heads x head dim x (K, V) x bf16
            bound_ms = (WEIGHT_BYTES_8B + kv_bytes) / bytes_per_s * 1e3
            for adapters in (0, 1, 64):
                assert p.decode_step_ms(batch, adapters, batch * context) >= bound_ms, (
                    batch,
                    context,
                    adapters,
                )
    for tokens in (1, 100, 2048, 20000):
        assert p.prefill_step_ms(tokens) >= WEIGHT_BYTES_8B / bytes_per_s * 1e3, tokens
    p.check_roofline()


def test_a_profile_faster_than_its_gpu_is_refused() -> None:
    too_fast = dataclasses.replace(get_profile("l40s-8b-bf16"), decode_scale=1.0)  # H100 speed on an L40S
    with pytest.raises(
        ValueError, match=r"l40s-8b-bf16: decode step .* faster than the memory-bandwidth bound"
    ):
        too_fast.check_roofline()


@pytest.mark.parametrize("name", [n for n in sorted(PROFILES) if not PROFILES[n].synthetic])
def test_decode_step_grows_with_batch_adapters_and_context(name: str) -> None:
    p = get_profile(name)
    assert (
        p.decode_step_ms(1, 0, 1024)
        < p.decode_step_ms(64, 0, 64 * 1024)
        < p.decode_step_ms(256, 0, 256 * 1024)
    )
    assert p.decode_step_ms(64, 0, 65536) < p.decode_step_ms(64, 1, 65536) < p.decode_step_ms(64, 64, 65536)
    assert p.decode_step_ms(16, 0, 16 * 1024) < p.decode_step_ms(16, 0, 16 * 4096)
    assert p.prefill_step_ms(128) < p.prefill_step_ms(2048)


def test_measured_h100_points_are_reproduced() -> None:
    h100 = get_profile("h100-8b-bf16")
    assert h100.decode_step_ms(64, 0, 64 * 1024) == pytest.approx(9.618, abs=0.01)
    assert h100.decode_step_ms(64, 0, 64 * 4096) == pytest.approx(17.895, abs=0.01)
    assert h100.decode_step_ms(64, 1, 64 * 1024) == pytest.approx(11.281, abs=0.01)
    assert h100.decode_step_ms(64, 64, 64 * 1024) == pytest.approx(12.29, abs=0.01)
    assert h100.prefill_step_ms(2048) == pytest.approx(51.514, abs=0.01)


def test_slower_gpus_are_slower() -> None:
    order = [
        "h200-8b-bf16",
        "h100-8b-bf16",
        "a100-80gb-8b-bf16",
        "l40s-8b-bf16",
        "a10g-8b-bf16",
        "l4-8b-bf16",
    ]
    steps = [get_profile(n).decode_step_ms(32, 4, 32 * 1024) for n in order]
    assert steps == sorted(steps)
    with pytest.raises(ValueError, match="unknown profile 'nope'; choose one of"):
        get_profile("nope")


def test_generated_text_retokenizes_to_the_same_token_count() -> None:
    vocab = Vocabulary()
    for prompt in ("a", "b", "What is LoRA?"):
        ids = expected_token_ids(vocab, 0, "org/x", prompt, 40)
        text = "".join(vocab.token_text(t) for t in ids)
        assert vocab.encode(text.lstrip(), add_special_tokens=False) == ids


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--keep-alive", "0"], "--keep-alive and --adapter-cycle-time must be > 0"),
        (
            ["--max-concurrent-requests", "0"],
            "--max-concurrent-requests and --max-active-adapters must be >= 1",
        ),
        (["--max-input-length", "4096"], "--max-input-length must be < --max-total-tokens"),
        (["--decode-ms", "5"], "--decode-ms/--prefill-ms only apply to --profile synthetic"),
    ],
)
def test_sim_options_that_cannot_work_are_refused_with_the_fix(argv: list[str], message: str) -> None:
    args = build_parser().parse_args(["sim", *argv])
    with pytest.raises(SystemExit, match=re.escape(message)):
        config_from_args(args)
