"""Line reader that stamps each SSE line with the kernel's receive time of the bytes that completed it.

A single-threaded client that gets one token event per stream at the same instant (LoRAX emits the whole
batch's tokens at each decode step) handles them one after another, so a user-space clock read after
`readline()` stamps the k-th stream of the burst k x (per-event cost) late: about 6 ms for 200 streams here.
With `SO_TIMESTAMPNS` (Linux) every `recvmsg` also returns when the kernel received the data, so the stamp
no longer depends on how busy the client is. Where the option or the control message is missing, the
user-space time is used instead.

It drives geventhttpclient's response parser (`feed`, `_body_buffer`, `message_complete`, `_sock`), the same
state its own `readline` uses, so chunked decoding and connection reuse stay geventhttpclient's. These are
private names: `check_geventhttpclient()` runs the reader over a socket pair at start-up and stops the run
with a message naming the installed version if they no longer behave as expected (pyproject pins the tested
range).
"""

from __future__ import annotations

import socket
import struct
import time
from typing import Any

import gevent

SUPPORTED = "geventhttpclient>=2.6.1,<2.7"  # the range tested with this reader (also pinned in pyproject)

SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # Linux value; Python does not export it
_TIMESPEC = struct.Struct("qq")
_ANC_SPACE = socket.CMSG_SPACE(_TIMESPEC.size)
_BLOCK = 65536


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


class StampedLineReader:
    """`readline()` over a geventhttpclient response; `stamp`: arrival time of the last line returned.

    Use as a context manager: while reading, the socket's own timeout is lifted (gevent would arm and
    cancel a timer on every wait, i.e. on every token) and one timer of `timeout` seconds covers the rest
    of the response instead; the socket's timeout is restored for the connection pool afterwards.
    """

    def __init__(self, response: Any, timeout: float | None = None) -> None:
        self._response = response
        self._timeout = timeout
        self.stamp = time.time()  # lines that came with the headers
        sock = response._sock
        self.kernel = sock is not None and enable_kernel_timestamps(sock)
        self._sock = sock
        self._saved_timeout: float | None = None
        self._timer: gevent.Timeout | None = None
        self.timed_out = False
        # self-check: how many reads, and how late the read loop got to bytes the kernel already had
        self.reads = 1  # the read that brought the headers (and maybe the first lines), stamped just above
        self.lag_max = 0.0
        self.lag_sum = 0.0

    def __enter__(self) -> StampedLineReader:
        if self._sock is not None:
            self._saved_timeout = self._sock.gettimeout()
            self._sock.settimeout(None)
        self._timer = gevent.Timeout(self._timeout or self._saved_timeout)
        self._timer.start()
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> bool:
        if self._timer is not None:
            self._timer.close()
        if self._sock is not None:
            self._sock.settimeout(self._saved_timeout)
        # Our own timer firing ends this response (the connection is closed, not reused); say so, quietly.
        self.timed_out = exc is not None and exc is self._timer
        return self.timed_out

    def readline(self) -> bytes:
        response = self._response
        buffer = response._body_buffer
        while True:
            end = buffer.find(b"\n")
            if end >= 0:
                line = bytes(buffer[: end + 1])
                del buffer[: end + 1]
                return line
            if response.message_complete:
                return b""
            sock = response._sock
            if sock is None:
                raise ConnectionError("connection closed before the response ended")
            try:
                data, ancdata, _, _ = sock.recvmsg(_BLOCK, _ANC_SPACE)
                read_at = time.time()
                stamp = kernel_time(ancdata) or read_at
                self.stamp = stamp
                self.reads += 1
                lag = read_at - stamp
                self.lag_sum += lag
                if lag > self.lag_max:
                    self.lag_max = lag
                response.feed(data)
                if not data and not response.message_complete:  # EOF inside the body
                    raise ConnectionError("connection closed before the response ended")
            except BaseException:
                response.release()
                raise


class GeventHttpClientChanged(RuntimeError):
    """geventhttpclient's private response internals no longer work as StampedLineReader needs."""


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%b\r\n" % (len(data), data)


_PROBE_HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"


def check_geventhttpclient(timeout: float = 5.0) -> None:
    """Read a chunked SSE response over a socket pair with StampedLineReader; raise GeventHttpClientChanged,
    naming the installed version and the supported range, if geventhttpclient's internals changed."""
    from importlib.metadata import version

    from geventhttpclient.response import HTTPSocketResponse

    installed = version("geventhttpclient")
    server, client = socket.socketpair()
    client.settimeout(timeout)  # a reader that no longer sees the end must not hang the start-up
    try:
        server.sendall(_PROBE_HEAD + _chunk(b"data:one\n\n"))
        response = HTTPSocketResponse(client)
        reader = StampedLineReader(response)
        first = reader.readline()
        server.sendall(_chunk(b"data:2\n") + b"0\r\n\r\n")  # the third readline reads it with recvmsg
        lines = [first, reader.readline(), reader.readline(), reader.readline()]
    except Exception as exc:  # AttributeError, TypeError, ...: the internals moved
        raise GeventHttpClientChanged(_changed(installed, f"{type(exc).__name__}: {exc}")) from exc
    finally:
        server.close()
        client.close()
    if lines != [b"data:one\n", b"\n", b"data:2\n", b""]:
        raise GeventHttpClientChanged(_changed(installed, f"read {lines!r}"))


def _changed(installed: str, detail: str) -> str:
    return (
        f"geventhttpclient {installed}: its response internals (_sock, _body_buffer, feed, message_complete) "
        f"no longer work with loraxkit's stream reader ({detail}). Install the tested range: "
        f"pip install '{SUPPORTED}'"
    )
