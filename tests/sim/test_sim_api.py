"""The rest of the API: /metrics names and types, /info, /tokenize, /startup, /health, `x-*` headers,
keep-alive lines, the `/` compat route, stop sequences, EOS, and the --lenient switch."""

from __future__ import annotations

import json
import re

import httpx
import pytest
from sim_helpers import FAST

from loraxkit import wire
from loraxkit.sim.process import SimulatorProcess
from loraxkit.sim.tokens import Vocabulary

# router/src/{server,infer,scheduler,validation}.rs: name → type, as LoRAX's exporter prints them
LORAX_TYPES = {
    "lorax_request_count": "counter",
    "lorax_request_success": "counter",
    "lorax_request_failure": "counter",
    "lorax_batch_inference_count": "counter",
    "lorax_batch_inference_success": "counter",
    "lorax_queue_length": "gauge",
    "lorax_batch_current_size": "gauge",
    "lorax_batch_current_max_tokens": "gauge",
    "lorax_request_duration": "histogram",
    "lorax_request_validation_duration": "histogram",
    "lorax_request_queue_duration": "histogram",
    "lorax_request_inference_duration": "histogram",
    "lorax_request_mean_time_per_token_duration": "histogram",
    "lorax_request_generated_tokens": "histogram",
    "lorax_request_input_length": "histogram",
    "lorax_request_max_new_tokens": "histogram",
    "lorax_batch_next_size": "histogram",
    "lorax_batch_inference_duration": "histogram",
}
# LoRAX series that appear only after their event (a batch joining a running one; a failed step)
LORAX_LATER_TYPES = {"lorax_batch_concat": "counter", "lorax_batch_inference_failure": "counter"}


def _types(text: str) -> dict[str, str]:
    return dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, flags=re.M))


def _value(text: str, series: str) -> float:
    match = re.search(rf"^{re.escape(series)} (\S+)$", text, flags=re.M)
    return float(match.group(1)) if match else 0.0


def test_metrics_have_loraxs_names_and_types_without_total_suffix(sim: SimulatorProcess) -> None:
    httpx.post(sim.base_url + "/generate", json={"inputs": "metrics", "parameters": {"max_new_tokens": 3}})
    httpx.post(sim.base_url + "/generate", json={"inputs": ""})  # a failure, so lorax_request_failure exists
    text = httpx.get(sim.base_url + "/metrics").text
    types = _types(text)
    assert {k: v for k, v in types.items() if k in LORAX_TYPES} == LORAX_TYPES
    assert types.items() <= (LORAX_TYPES | LORAX_LATER_TYPES).items()  # nothing LoRAX does not export
    assert "_total" not in text
    # duration histograms use LoRAX's 35 geometric buckets 0.0001 x 1.5^n, starting at 0.00015
    buckets = re.findall(r'^lorax_request_duration_bucket\{le="([^"]+)"\}', text, flags=re.M)
    assert len(buckets) == 36 and buckets[-1] == "+Inf"
    bound, rust_labels = 0.0001, []
    for _ in range(35):  # `value *= 1.5`, printed by Rust's shortest round-trip Display
        bound *= 1.5
        rust_labels.append(repr(bound))
    assert buckets[:35] == rust_labels
    assert float(buckets[0]) == pytest.approx(0.00015) and float(buckets[34]) == pytest.approx(
        0.0001 * 1.5**35
    )


def test_metrics_move_with_traffic(sim: SimulatorProcess) -> None:
    before = httpx.get(sim.base_url + "/metrics").text
    httpx.post(sim.base_url + "/generate", json={"inputs": "count me", "parameters": {"max_new_tokens": 4}})
    httpx.post(sim.base_url + "/generate", json={"inputs": "", "parameters": {"max_new_tokens": 4}})
    after = httpx.get(sim.base_url + "/metrics").text
    for series, delta in (
        ("lorax_request_count", 2),
        ("lorax_request_success", 1),
        ('lorax_request_failure{err="validation"}', 1),
        ("lorax_request_duration_count", 1),
        ("lorax_request_generated_tokens_count", 1),
    ):
        assert _value(after, series) - _value(before, series) == delta, series
    assert (
        _value(after, 'lorax_batch_inference_count{method="decode"}')
        >= _value(before, 'lorax_batch_inference_count{method="decode"}') + 3
    )
    as_json = httpx.get(sim.base_url + "/metrics", headers={"accept": "application/json"}).json()
    assert as_json["lorax_request_count"]["type"] == "counter"


def test_generate_has_loraxs_timing_and_token_headers(sim: SimulatorProcess) -> None:
    r = httpx.post(
        sim.base_url + "/generate",
        json={"inputs": "headers", "parameters": {"adapter_id": "h/a", "max_new_tokens": 5}},
    )
    h = r.headers
    # literal names from server.rs `generate()` (not wire's constants: the harness reads them through those)
    for name in (
        "x-total-time",
        "x-validation-time",
        "x-queue-time",
        "x-inference-time",
        "x-time-per-token",
        "x-time-to-first-token",
        "x-time-per-output-token",
        "x-compute-time",
    ):
        assert h[name].isdigit(), name  # integer milliseconds
    assert (h["x-generated-tokens"], h["x-skipped-tokens"]) == ("5", "0")
    assert int(h["x-total-tokens"]) == int(h["x-prompt-tokens"]) + 5
    assert h["x-compute-characters"] == str(len("headers"))
    assert (h["x-adapter-id"], h["x-adapter-source"], h["x-model-id"]) == (
        "h/a",
        "hub",
        wire.DEFAULT_MODEL_ID,
    )
    assert h["x-compute-type"] == "gpu+optimized"
    with httpx.stream("POST", sim.base_url + "/generate_stream", json={"inputs": "x"}) as s:
        assert s.headers["x-accel-buffering"] == "no" and "x-total-time" not in s.headers
        assert s.headers["content-type"] == "text/event-stream"


@pytest.mark.parametrize(
    ("route", "body", "done"),
    [
        ("/generate_stream", {"inputs": "raw", "parameters": {"max_new_tokens": 3, "details": True}}, False),
        ("/v1/completions", {"model": "", "prompt": "raw", "max_tokens": 3, "stream": True}, True),
        (
            "/v1/chat/completions",
            {"model": "", "messages": [{"role": "user", "content": "raw"}], "max_tokens": 3, "stream": True},
            True,
        ),
    ],
)
def test_sse_bytes_are_axums_framing(
    sim: SimulatorProcess, route: str, body: dict[str, object], done: bool
) -> None:
    """axum's `Event::json_data` writes `data:` + JSON + two newlines (no space, no `event:`), and
    `Event::data("[DONE]")` writes `data:[DONE]`; LoRAX ends OpenAI streams with it, native ones without."""
    with httpx.stream("POST", sim.base_url + route, json=body) as s:
        assert (s.status_code, s.headers["content-type"]) == (200, "text/event-stream")
        assert s.headers["cache-control"] == "no-cache"
        raw = b"".join(s.iter_raw())
    assert raw.endswith(b"\n\n")
    events = raw[:-2].split(b"\n\n")
    if done:
        assert events.pop() == b"data:[DONE]"
    assert len(events) == 3
    assert all(e.startswith(b"data:{") and b"\n" not in e for e in events)
    objs = [json.loads(e[len(b"data:") :]) for e in events]
    if route == "/generate_stream":
        assert [o["generated_text"] is None for o in objs] == [True, True, False]
        assert objs[-1]["details"]["generated_tokens"] == 3
    else:
        assert [o["choices"][0]["finish_reason"] for o in objs] == [None, None, "length"]


def test_decoder_input_details_returns_the_prompt_tokens(sim: SimulatorProcess) -> None:
    r = httpx.post(
        sim.base_url + "/generate",
        json={"inputs": "The capital", "parameters": {"max_new_tokens": 2, "decoder_input_details": True}},
    ).json()
    prefill = r["details"]["prefill"]
    assert [(t["id"], t["text"]) for t in prefill] == [(1, "<s>"), (415, "▁The"), (5565, "▁capital")]
    assert prefill[0]["logprob"] is None


def test_compat_route_returns_a_list_and_streams_on_request(sim: SimulatorProcess) -> None:
    body = {"inputs": "compat", "parameters": {"max_new_tokens": 3}}
    r = httpx.post(sim.base_url + "/", json=body)
    assert isinstance(r.json(), list) and len(r.json()) == 1
    with httpx.stream("POST", sim.base_url + "/", json={**body, "stream": True}) as s:
        kinds = [wire.parse_sse_line(line).kind for line in s.iter_lines() if line]
    assert kinds == [wire.EventKind.TOKEN, wire.EventKind.TOKEN, wire.EventKind.FINAL]


def test_info_health_ping_startup(sim: SimulatorProcess) -> None:
    info = httpx.get(sim.base_url + "/info").json()
    assert info["model_id"] == wire.DEFAULT_MODEL_ID
    assert (info["max_input_length"], info["max_total_tokens"], info["max_concurrent_requests"]) == (
        4095,
        4096,
        1024,
    )
    for route in ("/health", "/ping", "/", "/startup"):
        r = httpx.get(sim.base_url + route)
        assert (r.status_code, r.text) == (200, ""), route


def test_tokenize_gives_mistral_ids_and_offsets(sim: SimulatorProcess) -> None:
    r = httpx.post(sim.base_url + "/tokenize", json={"inputs": "The capital of France"})
    tokens = r.json()
    assert [t["id"] for t in tokens] == [1, 415, 5565, 302, 4843]
    assert [(t["text"], t["start"], t["stop"]) for t in tokens[1:3]] == [("▁The", 0, 3), ("▁capital", 3, 11)]
    no_bos = httpx.post(
        sim.base_url + "/tokenize", json={"inputs": "The", "add_special_tokens": False}
    ).json()
    assert [t["id"] for t in no_bos] == [415]


def test_stop_sequences_and_natural_eos(sim: SimulatorProcess) -> None:
    vocab = Vocabulary()
    full = httpx.post(
        sim.base_url + "/generate",
        json={"inputs": "stop test", "parameters": {"max_new_tokens": 10, "details": True}},
    ).json()
    third_word = full["details"]["tokens"][2]["text"]
    cut = httpx.post(
        sim.base_url + "/generate",
        json={
            "inputs": "stop test",
            "parameters": {"max_new_tokens": 10, "details": True, "stop": [third_word]},
        },
    ).json()
    assert cut["details"]["finish_reason"] == "stop_sequence"
    assert cut["generated_text"] == "".join(t["text"] for t in full["details"]["tokens"][:3])
    # no max_new_tokens: the answer ends with EOS at its natural length (32..256 tokens)
    natural = httpx.post(
        sim.base_url + "/generate", json={"inputs": "eos", "parameters": {"details": True}}
    ).json()
    assert natural["details"]["finish_reason"] == "eos_token"
    assert natural["details"]["tokens"][-1]["id"] == vocab.eos_id
    assert natural["details"]["tokens"][-1]["special"] is True
    assert 32 <= natural["details"]["generated_tokens"] <= 256


def test_keep_alive_comment_lines_on_an_idle_stream() -> None:
    # the adapter takes 1.5 s to load; with a 0.2 s keep-alive the stream carries `:` lines meanwhile
    with SimulatorProcess(*FAST, "--adapter-load-ms", "1500", "--keep-alive", "0.2") as proc:
        body = {"inputs": "slow", "parameters": {"adapter_id": "slow/one", "max_new_tokens": 2}}
        with httpx.stream("POST", proc.base_url + "/generate_stream", json=body) as s:
            raw = b"".join(s.iter_raw())
    assert raw.startswith(b":\n\n")  # axum's KeepAlive::default(): an empty comment
    kinds = [wire.parse_sse_line(line).kind for line in raw.split(b"\n") if line]
    assert kinds[0] == wire.EventKind.KEEP_ALIVE
    assert kinds[-2:] == [wire.EventKind.TOKEN, wire.EventKind.FINAL]


def test_lenient_switch_accepts_what_popular_clients_send() -> None:
    body = {"inputs": "lenient", "parameters": {"max_new_tokens": 3, "stop": None}}
    chat = {
        "model": "",
        "messages": [{"role": "user", "content": "x"}],
        "max_completion_tokens": 4,
        "stop": None,
    }
    limits = ("--max-input-length", "300", "--max-total-tokens", "400")  # ignore_eos → up to 400 tokens
    with SimulatorProcess(*FAST, *limits) as strict, SimulatorProcess(*FAST, *limits, "--lenient") as lenient:
        assert httpx.post(strict.base_url + "/generate", json=body).status_code == 422
        assert httpx.post(lenient.base_url + "/generate", json=body).status_code == 200
        assert httpx.post(strict.base_url + "/v1/chat/completions", json=chat).status_code == 422
        r = httpx.post(lenient.base_url + "/v1/chat/completions", json=chat)
        assert r.json()["usage"]["completion_tokens"] == 4  # max_completion_tokens honoured
        ignore = {"inputs": "x", "parameters": {"ignore_eos": True, "details": True}}
        strict_tokens = httpx.post(strict.base_url + "/generate", json=ignore).json()["details"][
            "finish_reason"
        ]
        lenient_r = httpx.post(lenient.base_url + "/generate", json=ignore).json()["details"]["finish_reason"]
        assert (strict_tokens, lenient_r) == ("eos_token", "length")  # LoRAX ignores `ignore_eos`


def test_chat_template_errors_are_422_even_on_streams(sim: SimulatorProcess) -> None:
    body = {"model": "", "messages": [{"role": "assistant", "content": "I speak first"}], "stream": True}
    r = httpx.post(sim.base_url + "/v1/chat/completions", json=body)
    assert r.status_code == 422
    assert r.json()["error_type"] == "template_error"
    assert r.json()["error"].startswith("Failed applying chat template to inputs: ")


def test_startup_fails_with_500_while_overloaded() -> None:
    with SimulatorProcess(*FAST, "--max-concurrent-requests", "1", "--decode-ms", "20") as proc:
        body = {"inputs": "hold", "parameters": {"max_new_tokens": 200}}
        with httpx.stream("POST", proc.base_url + "/generate_stream", json=body) as s:
            lines = s.iter_lines()  # keep the iterator: dropping it would close the stream
            assert next(lines).startswith("data:")  # the one slot is taken
            r = httpx.get(proc.base_url + "/startup")
            assert r.status_code == 500
            assert r.json() == {"error": "Model is overloaded", "error_type": "overloaded"}
        assert httpx.get(proc.base_url + "/startup", timeout=10).status_code == 200
