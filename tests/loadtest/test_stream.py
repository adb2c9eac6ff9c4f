"""The response readers on bytes built with the shared wire module (no server needed)."""

from __future__ import annotations

import json
from collections.abc import Callable

from loraxkit import wire
from loraxkit.loadtest.metrics import RequestRecord
from loraxkit.loadtest.stream import ERR_INCOMPLETE_STREAM, read_error_body, read_generate, read_sse


def lines(*chunks: bytes) -> Callable[[], bytes]:
    """A readline over the concatenated chunks, like geventhttpclient's readline(b"\\n")."""
    buffered = b"".join(chunks).splitlines(keepends=True)
    return lambda: buffered.pop(0) if buffered else b""


def new_record() -> RequestRecord:
    return RequestRecord(request_id="x", route=wire.ROUTE_GENERATE_STREAM, adapter="a", sent=0.0, status=200)


def native_stream(n: int, details: bool = True) -> list[bytes]:
    events = [wire.sse_event(wire.stream_response(wire.token_json(i, f"t{i}", -0.1))) for i in range(n - 1)]
    final = wire.stream_response(
        wire.token_json(n, "", -0.1), "text", wire.stream_details("length", 5, n, None) if details else None
    )
    return [*events, wire.KEEP_ALIVE, wire.sse_event(final)]


def test_native_stream_counts_every_token_event_and_the_server_count() -> None:
    r = new_record()
    read_sse(lines(*native_stream(6)), r)
    assert r.stream_tokens == 6 and r.server_tokens == 6 and r.server_prompt_tokens == 5
    assert r.ok and not r.token_count_mismatch
    assert list(r.token_times) == sorted(r.token_times)


def test_openai_chat_stream_with_done() -> None:
    chunks = [wire.sse_event(wire.chat_chunk(f"w{i}")) for i in range(3)]
    chunks.append(wire.sse_event(wire.chat_chunk("", "length", prompt_tokens=4, completion_tokens=4)))
    chunks.append(wire.DONE_EVENT)
    r = new_record()
    read_sse(lines(*chunks), r)
    assert r.stream_tokens == 4 and r.server_tokens == 4 and r.ok


def test_in_stream_error_under_200_is_classified() -> None:
    r = new_record()
    read_sse(lines(wire.sse_error(wire.overloaded_error())), r)
    assert r.status == 200 and r.error_type == "overloaded" and r.error == "Model is overloaded"
    assert not r.ok


def test_error_after_some_tokens_keeps_the_error_type() -> None:
    r = new_record()
    head = native_stream(4)[:2]
    read_sse(lines(*head, wire.sse_error(wire.generation_error("adapter x failed"))), r)
    assert r.error_type == "generation" and r.stream_tokens == 2


def test_stream_cut_before_the_final_event_is_incomplete() -> None:
    r = new_record()
    read_sse(lines(*native_stream(5)[:3]), r)
    assert r.error_type == ERR_INCOMPLETE_STREAM and not r.ok


def test_mismatch_between_stream_and_details_is_flagged() -> None:
    chunks = native_stream(3)
    final = wire.stream_response(wire.token_json(9, "", -0.1), "t", wire.stream_details("length", 5, 7, None))
    r = new_record()
    read_sse(lines(*chunks[:-1], wire.sse_event(final)), r)
    assert r.token_count_mismatch and r.output_tokens == 7


def test_generate_reads_details_and_timing_headers() -> None:
    body = json.dumps(
        wire.generate_response("hi", wire.generate_details("length", 3, [{}] * 9, None))
    ).encode()
    headers = {
        wire.H_TIME_TO_FIRST_TOKEN: "12",
        wire.H_QUEUE_TIME: "3",
        wire.H_TOTAL_TIME: "100",
        wire.H_GENERATED_TOKENS: "9",
    }
    r = new_record()
    read_generate(body, headers, r)
    assert r.server_tokens == 9 and r.server_prompt_tokens == 3
    assert r.server_timing == {"time_to_first_token_ms": 12.0, "queue_time_ms": 3.0, "total_time_ms": 100.0}


def test_http_errors_keep_status_and_error_type() -> None:
    r = new_record()
    read_error_body(424, json.dumps(wire.generation_error("no adapter").body()).encode(), r)
    assert (r.status, r.error_type) == (424, "generation")
    plain = new_record()
    read_error_body(422, b"Failed to deserialize the JSON body", plain)
    assert (plain.status, plain.error_type) == (422, "http_422")
