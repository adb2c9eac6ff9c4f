"""Behaviour of a continuous-batching server: 429 at the limit, adapter load and eviction, the closed port
during start-up, deterministic outputs, TTFT rising with the queue (read from the trace, not wall clocks)."""

from __future__ import annotations

import itertools
import socket
import time

import httpx
import pytest
from sim_helpers import FAST, sim_state, wait_idle, wait_trace

from loraxkit import wire
from loraxkit.sim.process import SimulatorProcess
from loraxkit.sim.profiles import get_profile


def _open_stream(port: int, body: bytes) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(
        b"POST /generate_stream HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        b"content-length: %d\r\n\r\n%b" % (len(body), body)
    )
    received = b""
    while b"data:" not in received:
        received += s.recv(4096)
    return s


def test_overloaded_at_max_concurrent_requests_plain_and_in_stream() -> None:
    with SimulatorProcess(
        "--profile",
        "synthetic",
        "--decode-ms",
        "20",
        "--max-concurrent-requests",
        "2",
        "--log-level",
        "WARNING",
    ) as proc:
        held = [
            _open_stream(proc.port, b'{"inputs": "hold", "parameters": {"max_new_tokens": 1000}}')
            for _ in range(2)
        ]
        try:
            r = httpx.post(proc.base_url + "/generate", json={"inputs": "one more"})
            assert r.status_code == 429
            assert r.json() == {"error": "Model is overloaded", "error_type": "overloaded"}
            for route, body in (
                ("/generate_stream", {"inputs": "one more"}),
                (
                    "/v1/chat/completions",
                    {"model": "", "stream": True, "messages": [{"role": "user", "content": "x"}]},
                ),
            ):
                with httpx.stream("POST", proc.base_url + route, json=body) as s:
                    assert s.status_code == 200  # LoRAX reports it inside the stream
                    events = [wire.parse_sse_line(line) for line in s.iter_lines() if line]
                assert [(e.kind, e.error_type) for e in events] == [(wire.EventKind.ERROR, "overloaded")]
            # refused before a permit is asked for: validation, not overloaded, even at the limit
            for parameters in ({"best_of": 2, "do_sample": True}, {"decoder_input_details": True}):
                body = {"inputs": "x", "parameters": parameters}
                with httpx.stream("POST", proc.base_url + "/generate_stream", json=body) as s:
                    events = [wire.parse_sse_line(line) for line in s.iter_lines() if line]
                assert [(e.kind, e.error_type) for e in events] == [(wire.EventKind.ERROR, "validation")]
        finally:
            for s in held:
                s.close()
        assert wait_idle(proc.base_url)["in_flight"] == 0
        assert httpx.post(proc.base_url + "/generate", json={"inputs": "now"}).status_code == 200


def test_adapters_load_on_first_use_and_are_evicted_beyond_max_active(tmp_path: object) -> None:
    load_ms = 150
    with SimulatorProcess(
        "--profile",
        "synthetic",
        "--decode-ms",
        "2",
        "--max-active-adapters",
        "1",
        "--adapter-load-ms",
        str(load_ms),
        "--log-level",
        "WARNING",
        trace=True,
    ) as proc:

        def gen(adapter: str) -> None:
            r = httpx.post(
                proc.base_url + "/generate",
                timeout=30,
                json={"inputs": "hi", "parameters": {"adapter_id": adapter, "max_new_tokens": 3}},
            )
            assert r.status_code == 200

        for adapter in ("org/a", "org/a", "org/b", "org/a"):
            gen(adapter)
        state = sim_state(proc.base_url)
        assert state["adapter_loads"] == 3  # a, b (evicting a), a again (evicting b); the 2nd "a" was warm
        assert state["adapter_evictions"] == 2
        assert state["adapter_downloads"] == 2  # a and b; the offloaded a reloads from disk (loader.rs:236)
        assert state["active_adapters"] == ["org/a"]
        records = wait_trace(proc.trace_path, count=4)
        waits = [r["admitted"] - r["arrival"] for r in records]
        # a first use cannot be admitted before the download completes (less 1 ms of timer resolution)
        assert all(w >= load_ms / 1000 - 0.002 for w in (waits[0], waits[2])), waits
        # the reload of the offloaded a is no second download (adapter_downloads above), so it is not timed


def test_port_is_closed_during_the_startup_delay() -> None:
    with SimulatorProcess(*FAST, "--log-level", "INFO", "--startup-delay", "3", wait_ready=False) as proc:
        # wait until the tokenizer is loaded and the warm-up delay has begun, then knock
        deadline = time.monotonic() + 30
        while "warming up" not in proc.output() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "warming up for 3.0 s (port closed)" in proc.output()
        with pytest.raises(httpx.ConnectError):
            httpx.get(proc.base_url + "/health", timeout=1)
        proc.wait_healthy(timeout=30)
        assert httpx.get(proc.base_url + "/health").status_code == 200


def test_outputs_are_deterministic_per_seed_adapter_and_prompt(sim: SimulatorProcess) -> None:
    body = {"inputs": "Deterministic?", "parameters": {"adapter_id": "x/y", "max_new_tokens": 10}}
    first = httpx.post(sim.base_url + "/generate", json=body).json()["generated_text"]
    assert httpx.post(sim.base_url + "/generate", json=body).json()["generated_text"] == first
    with SimulatorProcess(*FAST) as same_seed, SimulatorProcess(*FAST, "--seed", "7") as other_seed:
        assert httpx.post(same_seed.base_url + "/generate", json=body).json()["generated_text"] == first
        assert httpx.post(other_seed.base_url + "/generate", json=body).json()["generated_text"] != first


def _send_all_at_once(port: int, bodies: list[bytes], request_ids: list[str]) -> list[bytes]:
    """Open every connection first, then send all requests back to back, then read all replies."""
    socks = [socket.create_connection(("127.0.0.1", port), timeout=30) for _ in bodies]
    for s, body, rid in zip(socks, bodies, request_ids, strict=True):
        s.sendall(
            b"POST /generate HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\nconnection: close\r\n"
            b"x-request-id: %b\r\ncontent-length: %d\r\n\r\n%b" % (rid.encode(), len(body), body)
        )
    replies = []
    for s in socks:
        data = b""
        while chunk := s.recv(65536):
            data += chunk
        s.close()
        replies.append(data)
    return replies


def test_ttft_rises_as_the_queue_grows_when_the_batch_budget_binds() -> None:
    decode_ms, new_tokens, n = 5, 20, 8
    # each request holds ceil((~5 prompt + 20 new - 1) / 16) = 2 KV blocks of 16 tokens; an 80-token budget
    # is 5 blocks less the reserved one (block_allocator.rs @a7394ba3): two requests at a time
    with SimulatorProcess(
        "--profile",
        "synthetic",
        "--decode-ms",
        str(decode_ms),
        "--prefill-ms",
        "1",
        "--max-batch-total-tokens",
        "80",
        "--max-input-length",
        "30",
        "--max-total-tokens",
        "60",
        "--log-level",
        "WARNING",
        trace=True,
    ) as proc:
        bodies = [
            b'{"inputs": "queue %d", "parameters": {"max_new_tokens": %d}}' % (i, new_tokens)
            for i in range(n)
        ]
        replies = _send_all_at_once(proc.port, bodies, [f"q{i}" for i in range(n)])
        assert all(r.startswith(b"HTTP/1.1 200") for r in replies)
        records = sorted(wait_trace(proc.trace_path, count=n), key=lambda r: r["admitted"])  # type: ignore[arg-type,return-value]
    assert {r["request_id"] for r in records} == {f"q{i}" for i in range(n)}
    assert len({round(r["admitted"], 4) for r in records}) >= n // 2  # at most two requests per batch
    ttft = [r["first_token"] - r["arrival"] for r in records]
    spread = max(r["arrival"] for r in records) - min(r["arrival"] for r in records)
    # the last pair is admitted only after three pairs each held the whole budget for 19 decode steps
    assert ttft[-1] >= 3 * (new_tokens - 1) * decode_ms / 1000 - spread - 0.002  # 1 ms timer resolution
    assert ttft[-1] > ttft[0]
    for r in records:
        assert r["first_token"] == r["token_times"][0]
        assert len(r["token_times"]) == r["generated_tokens"] == new_tokens
        assert r["arrival"] <= r["admitted"] <= r["first_token"] <= r["end"]


def test_inconsistent_budgets_are_refused_at_start_with_the_fix() -> None:
    message = r"--max-batch-total-tokens \(100\) must be >= --max-total-tokens"
    refused = pytest.raises(RuntimeError, match=message)
    with refused, SimulatorProcess(*FAST, "--max-batch-total-tokens", "100"):
        pass


def test_trace_records_errors_with_their_status_and_the_clients_request_id(sim: SimulatorProcess) -> None:
    body = {"inputs": "trace me", "parameters": {"adapter_id": "broken/x", "max_new_tokens": 2}}
    plain = httpx.post(sim.base_url + "/generate", json=body, headers={"x-request-id": "t-plain"})
    assert plain.status_code == 424
    assert "x-model-id" not in plain.headers  # LoRAX's generate() fails before it builds its headers
    with httpx.stream(
        "POST", sim.base_url + "/generate_stream", json=body, headers={"x-request-id": "t-stream"}
    ) as s:
        assert [wire.parse_sse_line(x).error_type for x in s.iter_lines() if x] == ["generation"]
    ok = httpx.post(sim.base_url + "/generate", json={"inputs": "fine"}, headers={"x-request-id": "t-ok"})
    assert ok.status_code == 200
    wanted = {"t-plain", "t-stream", "t-ok"}
    records = {r["request_id"]: r for r in wait_trace(sim.trace_path, request_ids=wanted)}
    assert (records["t-plain"]["status"], records["t-plain"]["error_type"]) == (424, "generation")
    assert (records["t-stream"]["status"], records["t-stream"]["error_type"]) == (200, "generation")
    assert records["t-plain"]["adapter_id"] == "broken/x" and records["t-plain"]["token_times"] == []
    good = records["t-ok"]
    assert (good["status"], good["error_type"], good["adapter_id"]) == (200, None, None)
    assert (
        good["generated_tokens"] == len(good["token_times"]) and good["first_token"] == good["token_times"][0]
    )


def test_a_gpu_profile_times_steps_from_its_measurements() -> None:
    profile = get_profile("l4-8b-bf16")  # the slowest profile: 73 ms per decode step at batch 1
    with SimulatorProcess("--profile", profile.name, "--adapter-load-ms", "10", trace=True) as proc:
        for adapter in (None, "org/lora"):
            params: dict[str, object] = {"max_new_tokens": 4}
            if adapter:
                params["adapter_id"] = adapter
            assert httpx.post(
                proc.base_url + "/generate", json={"inputs": "gpu", "parameters": params}
            ).is_success
        base, lora = wait_trace(proc.trace_path, count=2)
    for record, adapters in ((base, 0), (lora, 1)):
        prompt = record["prompt_tokens"]
        # Judged on the simulated GPU timeline the trace records (`token_steps`: each token's step end), not
        # on wall-clock gaps between writes: on a busy machine a late write is followed by a short gap, as
        # the next step started when the GPU finished the previous one, not when the CPU wrote the token.
        steps = record["token_steps"]
        assert len(steps) == len(record["token_times"]) == 4
        for i, (a, b) in enumerate(itertools.pairwise(steps)):
            # each decode step lasts the profile's step time (longer only if the timeline was reset)
            assert b - a >= profile.decode_step_ms(1, adapters, prompt + i + 1) / 1000 - 1e-6
        # no token is written before its step ends
        assert all(t >= s for t, s in zip(record["token_times"], steps, strict=True))
        # the prefill step ends no earlier than the profile's prefill time after admission (1 ms: the two
        # clocks the simulator reads, time.time and time.monotonic, are compared here)
        assert steps[0] - record["admitted"] >= profile.prefill_step_ms(prompt, adapters) / 1000 - 0.001
    # a LoRA step costs more than a base step on the same GPU
    assert profile.decode_step_ms(1, 1, 10) > profile.decode_step_ms(1, 0, 10)


def test_adapters_take_turns_when_more_are_busy_than_can_be_active() -> None:
    # one adapter slot, a KV budget of 4 blocks that holds one request (3 blocks) at a time, a 0.1 s turn
    with SimulatorProcess(
        "--profile", "synthetic", "--decode-ms", "5", "--prefill-ms", "1", "--adapter-load-ms", "10",
        "--max-active-adapters", "1", "--adapter-cycle-time", "0.1", "--max-input-length", "30",
        "--max-total-tokens", "60", "--max-batch-total-tokens", "80", "--log-level", "WARNING", trace=True,
    ) as proc:  # fmt: skip
        bodies = [b'{"inputs": "a %d", "parameters": {"adapter_id": "org/a", "max_new_tokens": 40}}' % i
                  for i in range(6)]  # fmt: skip
        bodies.append(b'{"inputs": "b", "parameters": {"adapter_id": "org/b", "max_new_tokens": 40}}')
        ids = [f"a{i}" for i in range(6)] + ["b"]
        replies = _send_all_at_once(proc.port, bodies, ids)
        assert all(r.startswith(b"HTTP/1.1 200") for r in replies)
        state = sim_state(proc.base_url)
        ends = {r["request_id"]: r["end"] for r in wait_trace(proc.trace_path, count=7)}
    # without turns, b would wait for all six requests of a (~0.6 s); with them it runs in between
    assert ends["b"] < max(ends[f"a{i}"] for i in range(6))
    assert state["adapter_evictions"] >= 2 and state["adapter_loads"] >= 3  # a, b, a again
