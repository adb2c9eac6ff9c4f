"""A LoRAX-shaped SSE server (real sockets, in a thread) that fails on purpose: the stream is cut mid-way
or stalls after some tokens. Bytes come from the shared wire module, like the simulator's."""

from __future__ import annotations

import socket
import socketserver
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from loraxkit import wire

HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n"
    b"connection: keep-alive\r\n\r\n"
)
TOKENS_BEFORE_FAULT = 3
BURST_WRITES = 3


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%b\r\n" % (len(data), data)


def token_event(i: int) -> bytes:
    return wire.sse_event(wire.stream_response(wire.token_json(i, f"t{i}", -0.1)))


def final_event(n: int) -> bytes:
    details = wire.stream_details("length", 4, n, None)
    return wire.sse_event(wire.stream_response(wire.token_json(n, "", -0.1), "text", details))


class _Handler(socketserver.BaseRequestHandler):
    server: _Server

    def handle(self) -> None:
        sock: socket.socket = self.request
        buffered = b""
        while True:  # keep-alive: one request after another on this connection
            while b"\r\n\r\n" not in buffered:
                data = sock.recv(65536)
                if not data:
                    return
                buffered += data
            head, _, rest = buffered.partition(b"\r\n\r\n")
            length = next(
                (
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length")
                ),
                0,
            )
            while len(rest) < length:
                rest += sock.recv(65536)
            buffered = rest[length:]
            if head.startswith(b"GET"):
                sock.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                continue
            with self.server.lock:
                self.server.served += 1
                number = self.server.served
            if not self.serve(sock, number):
                return

    def serve(self, sock: socket.socket, number: int) -> bool:
        """One streamed request; False when the connection is gone."""
        mode = self.server.mode
        sock.sendall(HEAD)
        if mode == "burst":  # two token events of this stream in every write, as a client that fell behind
            for i in range(0, 2 * BURST_WRITES, 2):  # would find them in its socket
                sock.sendall(chunk(token_event(i)) + chunk(token_event(i + 1)))
                time.sleep(0.005)
            sock.sendall(chunk(final_event(2 * BURST_WRITES + 1)) + b"0\r\n\r\n")
            return True
        for i in range(TOKENS_BEFORE_FAULT):
            sock.sendall(chunk(token_event(i)))
        if mode == "cut" and number % 2 == 0:  # every other stream: half a chunk, then the connection closes
            sock.sendall(chunk(token_event(9))[:7])
            sock.shutdown(socket.SHUT_RDWR)
            return False
        if mode == "stall":
            self.server.release.wait()
            return False
        sock.sendall(chunk(final_event(TOKENS_BEFORE_FAULT + 1)) + b"0\r\n\r\n")
        return True


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, mode: str) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.mode = mode
        self.lock = threading.Lock()
        self.served = 0
        self.release = threading.Event()


@contextmanager
def faulty_server(mode: str) -> Iterator[str]:
    """`cut`: every other stream is cut after 3 tokens; `stall`: every stream stalls after 3 tokens;
    `burst`: complete streams whose token events come two per write."""
    server = _Server(mode)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.release.set()
        server.shutdown()
        server.server_close()
