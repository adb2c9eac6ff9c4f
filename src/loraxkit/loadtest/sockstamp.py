"""Streams read with each SSE line stamped by the kernel's receive time of the bytes that completed it.

A single-threaded client that gets one token event per stream at the same instant (LoRAX emits the whole
batch's tokens at each decode step) handles them one after another, so a user-space clock read after a read
stamps the k-th stream of the burst k x (per-event cost) late: about 6 ms for 200 streams here. With
`SO_TIMESTAMPNS` (Linux) every `recvmsg` also returns when the kernel received the data, so the stamp no
longer depends on how busy the client is, as long as each socket is read before its next token arrives
(else two token events share one read's stamp: the self-check counts that). Where the option or the control
message is missing, the user-space time is used instead.

`ReadLoop` drives geventhttpclient's response parser (`feed`, `_body_buffer`, `message_complete`, `_sock`,
`release`), the same state its own `readline` uses, so chunked decoding and connection reuse stay
geventhttpclient's. These are private names: `check_geventhttpclient()` runs the loop over a socket pair at
start-up and stops the run with a message naming the installed version if they no longer behave as expected
(pyproject pins the tested range).
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import time
from collections.abc import Callable
from typing import Any

import gevent
import gevent.event

SUPPORTED = "geventhttpclient>=2.6.1,<2.7"  # the range tested with this reader (also pinned in pyproject)

SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # Linux value; Python does not export it
_TIMESPEC = struct.Struct("qq")
_ANC_SPACE = socket.CMSG_SPACE(_TIMESPEC.size)
_BLOCK = 16384  # a token event is ~150 bytes; more than this waits for the next wake-up


def enable_kernel_timestamps(sock: Any) -> bool:
    """Ask the kernel to stamp received data on this socket; False where it is not supported."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        return True
    except (OSError, AttributeError):
        return False


def keep_kernel_timestamps_on() -> socket.socket:
    """A socket that holds receive timestamping on for as long as it is open.

    Linux turns stamping on for the whole stack asynchronously (a deferred work item) when the first socket
    asks for it, so the first packets after that may arrive unstamped. Asking once at start-up and keeping
    this socket open means every request's packets are stamped.
    """
    keeper = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    enable_kernel_timestamps(keeper)
    return keeper


def kernel_time(ancdata: list[tuple[int, int, bytes]]) -> float | None:
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= _TIMESPEC.size:
            sec, nsec = _TIMESPEC.unpack_from(data)
            return sec + nsec * 1e-9
    return None


class Stream:
    """One response being read by the ReadLoop, and the receive self-check figures of its reads."""

    __slots__ = ("done", "ended_at", "error", "lag_max", "lag_sum", "on_line", "raw", "reads", "response")

    def __init__(self, response: Any, on_line: Callable[[bytes, float], None]) -> None:
        self.response = response
        self.on_line = on_line
        self.raw: Any = None  # the stdlib socket under gevent's
        # self-check: how many reads, and how late the loop got to bytes the kernel already had
        self.reads = 1  # the read that brought the headers (and maybe the first lines), stamped at the start
        self.lag_max = 0.0
        self.lag_sum = 0.0
        self.done = gevent.event.Event()
        self.error: BaseException | None = None
        self.ended_at = 0.0

    def take_lines(self, stamp: float) -> None:
        """Hand every complete line in the body buffer to `on_line`, all stamped `stamp` (one read's)."""
        buffer = self.response._body_buffer
        last = buffer.rfind(b"\n")
        if last < 0:
            return
        chunk = bytes(buffer[: last + 1])
        del buffer[: last + 1]
        on_line = self.on_line
        for line in chunk.split(b"\n"):
            if len(line) > 1:  # not the blank line that ends each event (nor its "\r")
                on_line(line, stamp)

    @property
    def timed_out(self) -> bool:
        return not self.done.is_set()


def _epoll() -> Any:
    """The OS's epoll (gevent's monkey-patched `select` module has none: it would block the whole hub)."""
    from gevent.monkey import get_original

    return get_original("select", "epoll")()


class ReadLoop:
    """Reads every stream of this process in one greenlet, each read stamped with the kernel's receive time.

    A user greenlet that reads its own stream costs, per token, two `recvmsg` calls (the first finds nothing
    and raises EAGAIN) and two greenlet switches: ~50 µs of Python here, so a decode step's burst of a few
    hundred token events took one core longer than the step and some sockets were read a step late (their
    token events then share a stamp). Here a user hands its response to the loop and sleeps until it ends
    (one switch per request); the loop waits on one epoll set and reads each ready socket once per wake-up.
    """

    def __init__(self) -> None:
        self._epoll = _epoll()
        self._streams: dict[int, Stream] = {}
        self._greenlet: gevent.Greenlet | None = None
        buffer = bytearray(_BLOCK)  # every read lands here: no allocation per read
        self._into, self._view = [buffer], memoryview(buffer)

    def read(
        self,
        response: Any,
        on_line: Callable[[bytes, float], None],
        timeout: float | None,
        head_stamp: float | None = None,
    ) -> Stream:
        """Feed the rest of `response`'s body to `on_line` line by line, with each line's arrival stamp;
        return when the body ended or `timeout` s passed (`Stream.timed_out`). `head_stamp` is the kernel's
        stamp of the read that brought the headers (txstamp's `rx_stamp`), for lines that came with them.
        A transport failure or a malformed body raises here (OSError, ConnectionError, HTTPParseError); the
        connection is then closed, not reused."""
        stream = Stream(response, on_line)
        try:
            stream.take_lines(head_stamp or time.time())  # lines that came with the headers
            if response.message_complete:
                stream.done.set()
                stream.ended_at = time.time()
                return stream
            sock = response._sock
            if sock is None:
                raise ConnectionError("connection closed before the response ended")
            stream.raw = raw = getattr(sock, "_sock", sock)
            enable_kernel_timestamps(raw)
            fd = raw.fileno()
            self._streams[fd] = stream
            self._epoll.register(fd, select.EPOLLIN)
            try:
                self._ensure_running()
                stream.done.wait(timeout if timeout is not None else sock.gettimeout())
            finally:
                self._forget(fd, stream)
            if stream.error is not None:
                raise stream.error
        except BaseException:
            response.release()  # an unfinished body: the connection is closed, never reused
            raise
        if stream.timed_out:
            response.release()
        return stream

    def catch_up(self) -> None:
        """Read what has arrived, from the calling greenlet. When many streams end in one decode step (LoRAX
        admits requests together, so they end together), their users each send a new request in one run of
        the hub's callbacks, without the hub polling in between: each calls this before its send, so the other
        streams' sockets are still read within a fraction of a step. Safe from any greenlet: the loop's own
        greenlet never switches away while reading."""
        if self._streams:
            self._read_ready()

    def close(self) -> None:
        """Stop the loop's greenlet (a next read starts it again)."""
        if self._greenlet is not None:
            self._greenlet.kill(block=False)
            self._greenlet = None

    def _ensure_running(self) -> None:
        if self._greenlet is None or self._greenlet.dead:
            self._greenlet = gevent.spawn(self._run)

    def _forget(self, fd: int, stream: Stream) -> None:
        if self._streams.get(fd) is stream:
            del self._streams[fd]
            with contextlib.suppress(OSError, ValueError):
                self._epoll.unregister(fd)

    def _finish(self, fd: int, stream: Stream, error: BaseException | None) -> None:
        stream.ended_at = time.time()
        stream.error = error
        self._forget(fd, stream)
        stream.done.set()

    def _run(self) -> None:
        hub = gevent.get_hub()
        watcher = hub.loop.io(self._epoll.fileno(), 1)
        read_ready = self._read_ready
        while True:
            hub.wait(watcher)
            read_ready()

    def _read_ready(self) -> None:
        streams, pump = self._streams, self._pump
        for fd, events in self._epoll.poll(0):
            stream = streams.get(fd)
            if stream is not None:
                pump(fd, stream, events)

    def _pump(self, fd: int, stream: Stream, events: int) -> None:
        raw = stream.raw
        if events & select.EPOLLERR:  # a late transmit stamp on the error queue (see txstamp): rare
            from loraxkit.loadtest.txstamp import drain_tx_stamps

            drain_tx_stamps(raw)
        try:
            size, ancdata, _, _ = raw.recvmsg_into(self._into, _ANC_SPACE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:  # reset, ...
            self._finish(fd, stream, exc)
            return
        read_at = time.time()
        stamp = kernel_time(ancdata) or read_at
        stream.reads += 1
        lag = read_at - stamp
        stream.lag_sum += lag
        if lag > stream.lag_max:
            stream.lag_max = lag
        response = stream.response
        try:
            if not size:
                raise ConnectionError("connection closed before the response ended")
            response.feed(bytes(self._view[:size]))  # the parser takes read-only bytes
            stream.take_lines(stamp)
        except Exception as exc:  # EOF inside the body, a malformed chunk, or the line handler's own bug
            self._finish(fd, stream, exc)
            return
        if response.message_complete:
            self._finish(fd, stream, None)


class GeventHttpClientChanged(RuntimeError):
    """geventhttpclient's private response internals no longer work as the ReadLoop needs."""


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%b\r\n" % (len(data), data)


_PROBE_HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"


def check_geventhttpclient(timeout: float = 5.0) -> None:
    """Read a chunked SSE response over a socket pair with the ReadLoop; raise GeventHttpClientChanged,
    naming the installed version and the supported range, if geventhttpclient's internals changed."""
    from importlib.metadata import version

    from geventhttpclient.response import HTTPSocketResponse

    installed = version("geventhttpclient")
    server, client = socket.socketpair()
    client.settimeout(timeout)  # a reader that no longer sees the end must not hang the start-up
    loop = ReadLoop()
    lines: list[bytes] = []
    try:
        server.sendall(_PROBE_HEAD + _chunk(b"data:one\n\n"))
        response = HTTPSocketResponse(client)
        server.sendall(_chunk(b"data:2\n") + b"0\r\n\r\n")  # the loop's recvmsg reads it
        stream = loop.read(response, lambda line, _: lines.append(line), timeout)
        timed_out = stream.timed_out
    except Exception as exc:  # AttributeError, TypeError, ...: the internals moved
        raise GeventHttpClientChanged(_changed(installed, f"{type(exc).__name__}: {exc}")) from exc
    finally:
        loop.close()
        server.close()
        client.close()
    if timed_out or lines != [b"data:one", b"data:2"]:
        detail = f"read {lines!r}" + (", no end" if timed_out else "")
        raise GeventHttpClientChanged(_changed(installed, detail))


def _changed(installed: str, detail: str) -> str:
    return (
        f"geventhttpclient {installed}: its response internals (_sock, _body_buffer, feed, message_complete) "
        f"no longer work with loraxkit's stream reader ({detail}). Install the tested range: "
        f"pip install '{SUPPORTED}'"
    )
