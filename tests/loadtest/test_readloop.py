"""The ReadLoop: one greenlet reads every stream, each line stamped with the kernel's receive time.

The server side runs in an OS thread and records when each write started and returned; the client reads
with gevent in the test's thread. A kernel stamp lies inside its write (loopback stamps the bytes in the
sender's system call), however late the loop reads them: the tests block the whole gevent hub on purpose
to make the reads late, so a stamp taken at read time would fall outside the write.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from collections.abc import Iterator
from typing import Any

import gevent
import gevent.socket
import numpy as np
import pytest
from geventhttpclient.response import HTTPParseError, HTTPSocketResponse

from loraxkit import wire
from loraxkit.loadtest.metrics import RequestRecord
from loraxkit.loadtest.selfcheck import merged_events
from loraxkit.loadtest.sockstamp import ReadLoop, keep_kernel_timestamps_on
from loraxkit.loadtest.stream import SseRecorder
from loraxkit.loadtest.txstamp import TxStampedSocket, drain_tx_stamps, enable_tx_stamps

HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
LATE_S = 0.1  # how long the hub is blocked after each burst: every read is at least this late


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%b\r\n" % (len(data), data)


def token_event(i: int) -> bytes:
    return chunk(wire.sse_event(wire.stream_response(wire.token_json(i, f" t{i}", -0.5))))


def final_event(n: int) -> bytes:
    body = wire.stream_response(
        wire.token_json(n, "", -0.5), f"{n} tokens", wire.stream_details("length", 3, n, None)
    )
    return chunk(wire.sse_event(body)) + b"0\r\n\r\n"


@pytest.fixture(autouse=True)
def stamping_on() -> Iterator[None]:
    keeper = keep_kernel_timestamps_on()  # as the harness does at start: every packet is stamped
    time.sleep(0.05)
    yield
    keeper.close()


@contextlib.contextmanager
def connections(n: int) -> Iterator[tuple[list[gevent.socket.socket], list[socket.socket]]]:
    """n loopback TCP connections: (client gevent sockets, server stdlib sockets)."""
    with socket.create_server(("127.0.0.1", 0), backlog=n) as listener:
        clients, peers = [], []
        try:
            for _ in range(n):
                client = gevent.socket.create_connection(listener.getsockname())
                clients.append(client)
                peers.append(listener.accept()[0])
            yield clients, peers
        finally:
            for s in clients + peers:
                s.close()


def responses(clients: list[gevent.socket.socket], peers: list[socket.socket]) -> list[HTTPSocketResponse]:
    for peer in peers:
        peer.sendall(HEAD)
    return [HTTPSocketResponse(c) for c in clients]


def read_all(loop: ReadLoop, resps: list[HTTPSocketResponse], timeout: float = 20.0) -> list[Any]:
    """Read every response through the loop in its own greenlet; (record, stream) per response."""

    def one(resp: HTTPSocketResponse) -> tuple[RequestRecord, Any]:
        record = RequestRecord(
            request_id="r", route=wire.ROUTE_GENERATE_STREAM, adapter="a", sent=0.0, status=200
        )
        recorder = SseRecorder(record)
        # as a user does: the stamp of the header read, which a TxStampedSocket keeps (users._socket_of)
        stream = loop.read(resp, recorder.line, timeout, getattr(resp._sock, "rx_stamp", None))
        recorder.end(stream.ended_at)
        return record, stream

    return [g.get() for g in [gevent.spawn(one, r) for r in resps]]


def test_every_token_of_a_burst_is_stamped_inside_its_own_write_however_late_the_loop_reads() -> None:
    streams, tokens = 40, 3
    windows: list[list[tuple[float, float]]] = [[] for _ in range(streams)]
    wrote = [threading.Event() for _ in range(tokens + 1)]
    go = [threading.Event() for _ in range(tokens + 1)]
    loop = ReadLoop()
    with connections(streams) as (clients, peers):
        resps = responses(clients, peers)

        def server() -> None:
            for k in range(tokens + 1):
                go[k].wait(10)
                for s, peer in enumerate(peers):
                    data = token_event(k) if k < tokens else final_event(tokens + 1)
                    before = time.time()
                    peer.sendall(data)
                    windows[s].append((before, time.time()))
                wrote[k].set()

        thread = threading.Thread(target=server)
        thread.start()

        def read_by_loop(reads: int) -> None:
            """Wait (in gevent) until every stream is in the loop and has had `reads` reads."""
            while len(loop._streams) < streams or any(s.reads < reads for s in loop._streams.values()):
                gevent.sleep(0.005)

        def drive() -> None:
            for k in range(tokens + 1):
                read_by_loop(k + 1)  # burst k - 1 read (the headers' read counts one): none left waiting
                go[k].set()
                wrote[k].wait(10)  # blocks the hub: nothing is read while the burst arrives...
                time.sleep(LATE_S)  # ...nor for LATE_S after it

        driver = gevent.spawn(drive)
        results = read_all(loop, resps)
        driver.get()
        thread.join()
    loop.close()
    for s, (record, stream) in enumerate(results):
        assert record.ok, record.error
        assert record.server_tokens == tokens + 1
        stamps = list(record.token_times)
        assert len(stamps) == tokens + 1
        for stamp, (before, after) in zip(stamps, windows[s], strict=True):
            assert before <= stamp <= after  # the kernel's time, not the (>= 0.1 s later) read
        assert stream.lag_max >= LATE_S * 0.9  # the self-check sees how late the loop read
        assert stream.reads == 1 + tokens + 1  # one read per write: the headers', then each event's
        assert record.merged_tokens == 0


def test_two_events_waiting_in_one_socket_share_the_later_stamp_and_the_self_check_flags_it() -> None:
    loop = ReadLoop()
    sent_two, go_final = threading.Event(), threading.Event()
    with connections(1) as (clients, peers):
        (resp,) = responses(clients, peers)
        peer = peers[0]

        def server() -> None:
            peer.sendall(token_event(0))
            time.sleep(0.01)
            peer.sendall(token_event(1))  # both wait in the socket: the loop has not started
            sent_two.set()
            go_final.wait(10)
            peer.sendall(final_event(3))

        thread = threading.Thread(target=server)
        thread.start()
        sent_two.wait(10)

        def later() -> None:
            while not loop._streams or next(iter(loop._streams.values())).reads < 2:
                gevent.sleep(0.005)  # until the loop has read events 0 and 1
            go_final.set()

        gevent.spawn(later)
        ((record, _),) = read_all(loop, [resp])
        thread.join()
    loop.close()
    stamps = list(record.token_times)
    assert stamps[0] == stamps[1] < stamps[2]
    assert [i for i, _ in merged_events(np.frombuffer(record.token_times))] == [0]
    assert record.merged_tokens == 1  # saved with the record (--save-records)


def rst(peer: socket.socket) -> None:
    peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    peer.close()


@pytest.mark.parametrize(
    ("cut", "error"),
    [
        (lambda peer: peer.close(), ConnectionError),  # EOF inside the chunked body
        (rst, OSError),  # connection reset
        (lambda peer: peer.sendall(b"zz\r\nnot a chunk\r\n"), HTTPParseError),  # a malformed chunk
    ],
    ids=["eof", "reset", "malformed-chunk"],
)
def test_a_stream_that_fails_raises_in_its_reader_and_the_other_streams_go_on(cut: Any, error: type) -> None:
    loop = ReadLoop()
    with connections(2) as (clients, peers):
        resps = responses(clients, peers)
        for peer in peers:
            peer.sendall(token_event(0))

        def server() -> None:
            time.sleep(0.1)
            cut(peers[0])
            time.sleep(0.1)
            peers[1].sendall(token_event(1) + final_event(2))

        thread = threading.Thread(target=server)
        thread.start()
        failed = gevent.spawn(loop.read, resps[0], lambda *_: None, 10.0)
        ((record, _),) = read_all(loop, resps[1:])
        with pytest.raises(error):
            failed.get()
        thread.join()
    assert record.ok and len(record.token_times) == 3  # two token events and the final one
    assert resps[0]._sock is None  # released: the connection is closed, not reused
    assert not loop._streams
    loop.close()


def test_a_stream_with_nothing_more_to_read_times_out_and_its_connection_is_closed() -> None:
    loop = ReadLoop()
    with connections(1) as (clients, peers):
        (resp,) = responses(clients, peers)
        peers[0].sendall(token_event(0))
        lines: list[bytes] = []
        stream = loop.read(resp, lambda line, _: lines.append(line), 1.0)
        assert stream.timed_out
        assert len(lines) == 1
        assert resp._sock is None
        peers[0].settimeout(5.0)
        assert peers[0].recv(10) == b""  # the client closed its side
    assert not loop._streams
    loop.close()


def test_a_reader_killed_while_waiting_leaves_nothing_registered() -> None:
    loop = ReadLoop()
    with connections(1) as (clients, peers):
        (resp,) = responses(clients, peers)
        reader = gevent.spawn(loop.read, resp, lambda *_: None, 30.0)
        gevent.sleep(0.1)
        assert loop._streams  # waiting in the loop
        reader.kill()  # what Locust does to a user when the run stops
        assert not loop._streams
        assert resp._sock is None
    loop.close()


def test_a_transmit_stamp_left_on_the_error_queue_is_drained_by_the_loop() -> None:
    # A queued stamp makes the socket poll readable (EPOLLERR) with no data: without the drain the loop
    # would wake on it again and again.
    loop = ReadLoop()
    with connections(1) as (clients, peers):
        (resp,) = responses(clients, peers)
        raw = clients[0]._sock
        assert enable_tx_stamps(raw)
        raw.send(b"x")  # its stamp waits on the error queue (nobody drains it here)

        def server() -> None:
            time.sleep(0.2)
            peers[0].sendall(token_event(0) + final_event(1))

        thread = threading.Thread(target=server)
        thread.start()
        ((record, _),) = read_all(loop, [resp])
        thread.join()
        assert record.ok
        assert drain_tx_stamps(raw) == []
    loop.close()


def test_a_token_that_came_with_the_headers_gets_the_kernels_stamp_of_that_read() -> None:
    # The connection's socket keeps the receive stamp of geventhttpclient's header read (txstamp).
    loop = ReadLoop()
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = TxStampedSocket(socket.AF_INET, socket.SOCK_STREAM)
        client.connect(listener.getsockname())
        peer, _ = listener.accept()
        with client, peer:
            client.sendall(b"POST /generate_stream HTTP/1.1\r\n\r\n")  # switches receive stamps on
            before = time.time()
            peer.sendall(HEAD + token_event(0))  # headers and the first token in one write
            after = time.time()
            time.sleep(LATE_S)  # the user reads its headers late
            resp = HTTPSocketResponse(client)
            peer.sendall(final_event(2))
            ((record, _),) = read_all(loop, [resp])
    loop.close()
    assert record.ok
    assert before <= record.token_times[0] <= after


def test_catch_up_reads_what_has_arrived_without_the_hub_running_the_loop() -> None:
    # What a user does before its send: the loop's greenlet does not get to run in between.
    loop = ReadLoop()
    with connections(1) as (clients, peers):
        (resp,) = responses(clients, peers)
        lines: list[bytes] = []
        reader = gevent.spawn(loop.read, resp, lambda line, _: lines.append(line), 10.0)
        gevent.sleep(0.05)  # the stream is in the loop
        peers[0].sendall(token_event(0))
        time.sleep(0.05)  # arrived; no greenlet switch since
        loop.catch_up()
        assert len(lines) == 1 and lines[0].startswith(b'data:{"token"')
        peers[0].sendall(final_event(2))
        reader.get(timeout=10)
    assert len(lines) == 2
    loop.close()
