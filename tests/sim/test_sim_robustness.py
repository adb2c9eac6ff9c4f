"""Bad input and misbehaving clients: LoRAX's status codes and bodies, no crash, no leaked slot."""

from __future__ import annotations

import concurrent.futures
import json
import socket

import httpx
import pytest
from sim_helpers import sim_state, wait_idle

from loraxkit import wire
from loraxkit.sim.process import SimulatorProcess
from loraxkit.sim.tokens import Vocabulary


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        (b"{not json", 400, "Failed to parse the request body as JSON"),
        (b'{"inputs": 5}', 422, "inputs: invalid type: integer `5`, expected a string"),
        (b'{"parameters": {}}', 422, "missing field `inputs`"),
        (
            b'{"inputs": "x", "parameters": {"max_new_tokens": -1}}',
            422,
            "parameters.max_new_tokens: invalid value: integer `-1`, expected u32",
        ),
        (
            b'{"inputs": "x", "parameters": {"details": "yes"}}',
            422,
            'parameters.details: invalid type: string "yes", expected a boolean',
        ),
        (
            b'{"inputs": "x", "parameters": {"stop": null}}',
            422,
            "parameters.stop: invalid type: null, expected a sequence",
        ),
        (b"[1, 2]", 422, "expected struct GenerateRequest"),
        (b'{"inputs": "x", "parameters": {"temperature": NaN}}', 400, "NaN is not valid JSON"),
        (b"[" * 100_000, 400, "recursion limit exceeded"),
    ],
)
def test_body_rejections_are_plain_text_with_axum_status(
    sim: SimulatorProcess, body: bytes, status: int, needle: str
) -> None:
    for route in ("/generate", "/generate_stream"):  # body rejections are never in-stream
        r = httpx.post(sim.base_url + route, content=body, headers={"content-type": "application/json"})
        assert r.status_code == status
        assert r.headers["content-type"].startswith("text/plain")
        assert needle in r.text


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({"temperature": -1}, "`temperature` must be non-negative"),
        ({"top_p": 1.5}, "`top_p` must be > 0.0 and < 1.0"),
        ({"top_k": 0}, "`top_k` must be strictly positive"),
        ({"max_new_tokens": 0}, "`max_new_tokens` must be strictly positive"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "`stop` supports up to 4 stop sequences. Given: 5"),
        ({"truncate": 0}, "`truncate` must be strictly positive and less than 4095. Given: 0"),
        ({"repetition_penalty": 0}, "`repetition_penalty` must be strictly positive"),
    ],
)
def test_validation_errors_use_loraxs_messages_plain_and_in_stream(
    sim: SimulatorProcess, parameters: dict[str, object], message: str
) -> None:
    body = {"inputs": "hello", "parameters": parameters}
    r = httpx.post(sim.base_url + "/generate", json=body)
    assert r.status_code == 422
    assert r.json() == {"error": wire.VALIDATION_PREFIX + message, "error_type": "validation"}
    with httpx.stream("POST", sim.base_url + "/generate_stream", json=body) as s:
        assert s.status_code == 200
        events = [wire.parse_sse_line(line) for line in s.iter_lines() if line]
    assert [(e.kind, e.error, e.error_type) for e in events] == [
        (wire.EventKind.ERROR, wire.VALIDATION_PREFIX + message, "validation")
    ]


def test_empty_inputs_and_oversize_inputs(sim: SimulatorProcess) -> None:
    r = httpx.post(sim.base_url + "/generate", json={"inputs": "", "parameters": {"max_new_tokens": 3}})
    assert (r.status_code, r.json()["error"]) == (422, "Input validation error: `inputs` cannot be empty")
    long_prompt = " ".join(["word"] * 5000)  # <s> + 5000 tokens
    r = httpx.post(
        sim.base_url + "/generate", json={"inputs": long_prompt, "parameters": {"max_new_tokens": 3}}
    )
    assert r.status_code == 422
    assert (
        "`inputs` tokens + `max_new_tokens` must be <= 4096. Given: 5001 `inputs` tokens" in r.json()["error"]
    )
    r = httpx.post(sim.base_url + "/generate", json={"inputs": "x" * (3 * 1024 * 1024)})
    assert r.status_code == 413


def test_content_type_unknown_route_and_wrong_method(sim: SimulatorProcess) -> None:
    r = httpx.post(
        sim.base_url + "/generate", content=b'{"inputs": "x"}', headers={"content-type": "text/plain"}
    )
    assert r.status_code == 415
    assert httpx.post(sim.base_url + "/nope", json={}).status_code == 404
    assert httpx.get(sim.base_url + "/generate").status_code == 405
    assert httpx.get(sim.base_url + "/health").status_code == 200


def test_garbage_bytes_get_400_and_the_server_keeps_serving(sim: SimulatorProcess) -> None:
    with socket.create_connection(("127.0.0.1", sim.port), timeout=5) as s:
        s.sendall(b"\x00\xff NOT HTTP \r\n\r\n")
        assert b" 400 " in s.recv(1024)
    assert httpx.get(sim.base_url + "/health").status_code == 200


def _post_all(base_url: str, bodies: list[dict[str, object]]) -> list[httpx.Response]:
    """POST all bodies to /generate at once (one thread each)."""
    with (
        httpx.Client(base_url=base_url, timeout=30) as client,
        concurrent.futures.ThreadPoolExecutor(max_workers=len(bodies)) as pool,
    ):
        return list(pool.map(lambda body: client.post("/generate", json=body), bodies))


def test_client_killed_mid_stream_and_flood_past_the_limit_leave_every_slot_free() -> None:
    with SimulatorProcess(
        "--profile",
        "synthetic",
        "--decode-ms",
        "20",
        "--prefill-ms",
        "1",
        "--max-concurrent-requests",
        "4",
        "--log-level",
        "WARNING",
    ) as proc:
        # clients that read the first event, then vanish (socket closed without reading the rest)
        body = b'{"inputs": "long story", "parameters": {"max_new_tokens": 500}}'
        request = (
            b"POST /generate_stream HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\n\r\n%b" % (len(body), body)
        )
        killed = []
        for _ in range(3):
            s = socket.create_connection(("127.0.0.1", proc.port), timeout=5)
            s.sendall(request)
            received = b""
            while b"data:" not in received:
                received += s.recv(4096)
            killed.append(s)
        assert sim_state(proc.base_url)["in_flight"] == 3
        for s in killed:
            s.close()
        # flood: 12 concurrent requests against 4 slots → some 429 `overloaded`
        results = _post_all(
            proc.base_url, [{"inputs": f"flood {i}", "parameters": {"max_new_tokens": 20}} for i in range(12)]
        )
        statuses = {r.status_code for r in results}
        assert statuses == {200, 429}
        overloaded = next(r for r in results if r.status_code == 429)
        assert overloaded.json() == {"error": "Model is overloaded", "error_type": "overloaded"}
        state = wait_idle(proc.base_url)
        assert (state["in_flight"], state["running"], state["waiting"]) == (0, 0, 0)
        metrics = httpx.get(proc.base_url + "/metrics").text
        assert 'lorax_request_failure{err="dropped"} 3' in metrics
        assert 'lorax_request_failure{err="overloaded"}' in metrics
        # every slot came back: the full limit of concurrent requests succeeds
        again = _post_all(
            proc.base_url, [{"inputs": f"again {i}", "parameters": {"max_new_tokens": 5}} for i in range(4)]
        )
        assert [r.status_code for r in again] == [200] * 4


def test_expect_100_continue_is_answered(sim: SimulatorProcess) -> None:
    body = b'{"inputs": "continue", "parameters": {"max_new_tokens": 2}}'
    with socket.create_connection(("127.0.0.1", sim.port), timeout=5) as s:
        s.sendall(
            b"POST /generate HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            b"expect: 100-continue\r\ncontent-length: %d\r\n\r\n" % len(body)
        )
        assert s.recv(1024).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        s.sendall(body)
        reply = b""
        while b"generated_text" not in reply:
            reply += s.recv(4096)
        assert reply.startswith(b"HTTP/1.1 200 OK")


def test_sigterm_drains_requests_in_flight_then_exits() -> None:
    with SimulatorProcess("--profile", "synthetic", "--decode-ms", "20", "--log-level", "WARNING") as proc:
        body = {"inputs": "drain", "parameters": {"max_new_tokens": 40}}
        with httpx.stream("POST", proc.base_url + "/generate_stream", json=body, timeout=30) as s:
            lines = s.iter_lines()
            first = next(line for line in lines if line)
            assert proc.proc is not None
            proc.proc.terminate()  # mid-stream: 39 tokens (~0.8 s) still to come
            rest = [wire.parse_sse_line(line) for line in lines if line]
        assert wire.parse_sse_line(first).kind == wire.EventKind.TOKEN
        assert len(rest) == 39 and rest[-1].kind == wire.EventKind.FINAL
        assert proc.proc.wait(timeout=10) == 0


def test_huge_prompts_are_tokenized_off_the_event_loop_correctly(sim: SimulatorProcess) -> None:
    # over INLINE_TOKENIZE_CHARS: tokenized on a validation worker thread, with the same answers
    vocab = Vocabulary()
    text = "Tokenize me on a worker thread, please. " * 1000  # 40,000 chars, ~9,000 tokens
    tokens = httpx.post(sim.base_url + "/tokenize", json={"inputs": text}).json()
    assert [t["id"] for t in tokens] == vocab.encode(text)
    assert tokens[-1]["stop"] == len(text)
    n = len(vocab.encode(text))
    body = {"inputs": text, "parameters": {"max_new_tokens": 3}}
    r = httpx.post(sim.base_url + "/generate", json=body)
    assert r.json()["error"].endswith(f"Given: {n} `inputs` tokens and 3 `max_new_tokens`")
    with httpx.stream("POST", sim.base_url + "/generate_stream", json=body) as s:
        events = [wire.parse_sse_line(line) for line in s.iter_lines() if line]
    assert [(e.kind, e.error_type) for e in events] == [(wire.EventKind.ERROR, "validation")]
    chat = {"model": "", "messages": [{"role": "user", "content": text}], "max_tokens": 3}
    assert httpx.post(sim.base_url + "/v1/chat/completions", json=chat).status_code == 422
    bad_role = {"model": "", "messages": [{"role": "tool", "content": text}]}
    assert (
        httpx.post(sim.base_url + "/v1/chat/completions", json=bad_role).json()["error_type"]
        == "template_error"
    )
    assert wait_idle(sim.base_url)["in_flight"] == 0


def test_client_gone_while_its_huge_prompt_is_tokenized_frees_the_slot() -> None:
    # limits that admit the huge prompt, and an answer that would run for hours if it were ever started
    limits = ("--max-input-length", "450000", "--max-total-tokens", "1000000")
    with SimulatorProcess(
        "--profile", "synthetic", *limits, "--max-concurrent-requests", "1", "--log-level", "WARNING"
    ) as proc:
        text = "word " * 400_000  # 2,000,000 chars: about a second of tokenizing
        body = json.dumps({"inputs": text, "parameters": {"max_new_tokens": 500_000}}).encode()
        with socket.create_connection(("127.0.0.1", proc.port), timeout=5) as s:
            s.sendall(
                b"POST /generate_stream HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                b"content-length: %d\r\n\r\n%b" % (len(body), body)
            )
            assert s.recv(4096).startswith(b"HTTP/1.1 200 OK")  # headers go out before tokenizing
        state = wait_idle(proc.base_url, timeout=30)
        assert [state[k] for k in ("in_flight", "tokenizing", "waiting", "prefilling", "running")] == [0] * 5
        assert httpx.post(proc.base_url + "/generate", json={"inputs": "next"}).status_code == 200
        assert 'lorax_request_failure{err="dropped"} 1' in httpx.get(proc.base_url + "/metrics").text


def test_truncate_does_not_relax_length_validation_as_in_loraxs_router(sim: SimulatorProcess) -> None:
    # validation.rs tokenizes the whole prompt (the tokenizer worker ignores `truncate`); the shard truncates
    long_prompt = " ".join(["word"] * 5000)
    r = httpx.post(
        sim.base_url + "/generate",
        json={"inputs": long_prompt, "parameters": {"max_new_tokens": 3, "truncate": 100}},
    )
    assert r.status_code == 422 and "Given: 5001 `inputs` tokens" in r.json()["error"]
    r = httpx.post(
        sim.base_url + "/generate",
        json={
            "inputs": "one two three four",
            "parameters": {"max_new_tokens": 2, "truncate": 2, "details": True},
        },
    )
    assert r.json()["details"]["prompt_tokens"] == 2
