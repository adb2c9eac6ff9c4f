"""When the trace's times are taken: `arrival` with the request's first bytes, each token just before its
bytes go to the socket. Checked by ordering against the client's own clock on the same machine (no timing
bounds)."""

from __future__ import annotations

import json
import socket
import struct
import time
import uuid

from sim_helpers import wait_trace

from loraxkit.sim.process import SimulatorProcess

SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # Linux value; Python does not export it
FLOAT_SLACK_S = 1e-6  # epoch seconds as floats round to ~0.25 us


def _connect(sim: SimulatorProcess) -> socket.socket:
    host, port = sim.base_url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=10)


def _request_head(rid: str, body: bytes) -> bytes:
    return (
        f"POST /generate_stream HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        f"x-request-id: {rid}\r\ncontent-length: {len(body)}\r\nconnection: close\r\n\r\n"
    ).encode()


def _body(tokens: int) -> bytes:
    params = {"max_new_tokens": tokens, "ignore_eos_token": True, "details": True}
    return json.dumps({"inputs": "Say something", "parameters": params}).encode()


def _read_all(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def test_arrival_is_stamped_when_the_first_bytes_come_not_when_the_body_completes() -> None:
    rid = f"upload-{uuid.uuid4().hex[:8]}"
    body = _body(2)
    sim_args = ("--profile", "synthetic", "--decode-ms", "2")
    with SimulatorProcess(*sim_args, trace=True) as sim, _connect(sim) as s:
        s.sendall(_request_head(rid, body) + body[:5])
        time.sleep(0.3)  # a slow upload: the rest of the body comes later
        rest_sent = time.time()
        s.sendall(body[5:])
        assert b"data:" in _read_all(s)
        record = next(r for r in wait_trace(sim.trace_path, request_ids={rid}) if r["request_id"] == rid)
    assert record["arrival"] < rest_sent, "arrival was stamped after the whole body was read"
    assert record["first_token"] > rest_sent


def _stamped_lines(sock: socket.socket) -> list[tuple[bytes, float]]:
    """Every received line with the kernel's receive time of the bytes that completed it."""
    space = socket.CMSG_SPACE(struct.calcsize("qq"))
    lines: list[tuple[bytes, float]] = []
    pending = b""
    while True:
        data, ancdata, _, _ = sock.recvmsg(65536, space)
        if not data:
            return lines
        stamp = time.time()
        for level, kind, raw in ancdata:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                sec, nsec = struct.unpack_from("qq", raw)
                stamp = sec + nsec * 1e-9
        pending += data
        *complete, pending = pending.split(b"\n")
        lines.extend((line, stamp) for line in complete)


def test_token_stamps_are_taken_before_the_bytes_reach_the_client() -> None:
    rid = f"stamps-{uuid.uuid4().hex[:8]}"
    body = _body(12)
    keeper = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # keeps kernel stamping switched on
    keeper.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    with keeper, SimulatorProcess("--profile", "synthetic", "--decode-ms", "20", trace=True) as sim:
        with _connect(sim) as s:
            s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            s.sendall(_request_head(rid, body) + body)
            received = [t for line, t in _stamped_lines(s) if line.startswith(b"data:")]
        record = next(r for r in wait_trace(sim.trace_path, request_ids={rid}) if r["request_id"] == rid)
    server = record["token_times"]
    assert len(received) == len(server) == 12
    # The server's stamp precedes the client's kernel receive of the same token's bytes, every time.
    early = [(c - s) * 1e6 for c, s in zip(received, server, strict=True) if c < s - FLOAT_SLACK_S]
    assert not early, f"client received tokens before the server's stamp (us): {early}"
