"""The harness's fast path (`wire.is_native_token_line`) agrees with the full parse on every kind of line.

It tells a native token event from its first and last bytes; the full parse (`parse_sse_line`) is the
reference. Token texts that contain the tail's own bytes (escaped in JSON) must not fool it.
"""

from __future__ import annotations

import pytest

from loraxkit import wire

TEXTS = [
    " the",
    "",
    '"',
    "\\",
    "ünï😀",
    "\n",
    ',"generated_text":null,"details":null}',  # the tail's bytes inside the text: escaped, so not the tail
    '","generated_text":"x","details":null}',
]


def line(payload: dict | str) -> bytes:
    return wire.sse_event(payload).rstrip(b"\n")


def token(text: str, **kw) -> bytes:
    return line(wire.stream_response(wire.token_json(7, text, -0.25, **kw)))


def lines() -> list[tuple[str, bytes]]:
    out = []
    for i, text in enumerate(TEXTS):
        out.append((f"token-{i}", token(text)))
        out.append((f"token-special-{i}", token(text, special=True)))
        out.append(
            (f"token-alternatives-{i}", token(text, alternative_tokens=[wire.token_json(3, text, -1.0)]))
        )
        details = wire.stream_details(wire.FINISH_LENGTH, 4, 2, None)
        out.append((f"final-{i}", line(wire.stream_response(wire.token_json(7, text, -0.1), text, details))))
        out.append(
            (f"final-empty-text-{i}", line(wire.stream_response(wire.token_json(7, text, -0.1), "", None)))
        )
        out.append((f"completion-{i}", line(wire.completion_chunk(text))))
        out.append((f"chat-{i}", line(wire.chat_chunk(text))))
    out.append(("error", line(wire.LoraxError("generation", "Request failed during generation").body())))
    out.append(("done", wire.DONE_EVENT.rstrip(b"\n")))
    out.append(("keep-alive", b":"))
    out.append(("crlf-token", token(" the") + b"\r"))  # another line end: parsed the slow way
    return out


@pytest.mark.parametrize(("name", "raw"), lines(), ids=[n for n, _ in lines()])
def test_the_fast_path_says_token_exactly_when_the_full_parse_does(name: str, raw: bytes) -> None:
    full = wire.parse_sse_line(raw.decode())
    fast = wire.is_native_token_line(raw)
    if fast:
        assert full.kind is wire.EventKind.TOKEN
    if name.startswith("token-"):
        assert fast, raw  # every token event the simulator writes takes the fast path
    if full.kind is not wire.EventKind.TOKEN:
        assert not fast


def test_a_token_events_own_bytes_are_what_the_simulator_writes() -> None:
    assert token(" the") == (
        b'data:{"token":{"id":7,"text":" the","logprob":-0.25,"special":false,"skipped":false},'
        b'"generated_text":null,"details":null}'
    )
