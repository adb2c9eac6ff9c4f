"""A small HTTP/1.1 server on asyncio Protocols + httptools: the per-token path is one `transport.write`
of pre-built bytes, with no coroutine per token. Keep-alive and pipelined requests (one at a time per
connection), chunked responses for SSE, a body-size limit, and never an unhandled exception."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import formatdate
from http import HTTPStatus
from typing import cast

import httptools

from loraxkit.wire import CORS_HEADERS, MAX_BODY_BYTES

log = logging.getLogger("loraxkit.sim")


@dataclass
class Request:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    keep_alive: bool
    arrival: float = field(default_factory=time.time)
    too_large: bool = False


Handler = Callable[["Connection", Request], None]


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


_DATE_CACHE: list[object] = [0, ""]


def _http_date() -> str:
    now = int(time.time())
    if _DATE_CACHE[0] != now:
        _DATE_CACHE[0] = now
        _DATE_CACHE[1] = formatdate(now, usegmt=True)
    return str(_DATE_CACHE[1])


def chunk(data: bytes) -> bytes:
    """One HTTP/1.1 chunk of a chunked response."""
    return b"%x\r\n%b\r\n" % (len(data), data)


class Connection(asyncio.Protocol):
    """One client connection. The handler answers through `send` or `start_stream`/`write`/`end_stream`;
    `on_close` callbacks run if the client goes away mid-response."""

    def __init__(
        self, handler: Handler, connections: set[Connection], defer: Callable[..., None] | None = None
    ) -> None:
        self._handler = handler
        self._defer = defer
        self._connections = connections
        self.transport: asyncio.Transport | None = None
        self._parser = httptools.HttpRequestParser(self)
        self._pending: list[Request] = []
        self._busy = False
        self._keep_alive = True
        self.closed = False
        self.draining = False
        self.on_close: Callable[[], None] | None = None
        self._url = b""
        self._headers: dict[str, str] = {}
        self._body: list[bytes] = []
        self._body_size = 0
        self._too_large = False
        self._arrival = 0.0

    # ------------------------------------------------------------------ asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self._connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._connections.discard(self)
        callback, self.on_close = self.on_close, None
        if callback is not None:
            try:
                callback()
            except Exception:
                log.exception("on_close callback failed")

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._reject(400, b"upgrade not supported")
        except httptools.HttpParserError:
            self._reject(400, b"bad request")

    def _reject(self, status: int, body: bytes) -> None:
        if not self._busy:
            self.send(status, body, "text/plain; charset=utf-8", keep_alive=False)
        elif self.transport is not None:
            self.transport.close()

    # ------------------------------------------------------------------ httptools callbacks
    def on_message_begin(self) -> None:
        # A request arrives with its first bytes (the trace's `arrival`): a large or slow upload counts,
        # as it does in a client's TTFT.
        self._arrival = time.time()
        self._url = b""
        self._headers = {}
        self._body = []
        self._body_size = 0
        self._too_large = False

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        # hyper answers `Expect: 100-continue` (curl sends it for bodies over 1 KiB, then waits 1 s)
        if self._headers.get("expect", "").lower() == "100-continue" and self.transport is not None:
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        self._body_size += len(body)
        if self._body_size > MAX_BODY_BYTES:
            self._too_large = True
            self._body = []
        elif not self._too_large:
            self._body.append(body)

    def on_message_complete(self) -> None:
        url = httptools.parse_url(self._url)
        request = Request(
            method=self._parser.get_method().decode("latin-1"),
            path=(url.path or b"/").decode("utf-8", errors="replace"),
            query=(url.query or b"").decode("utf-8", errors="replace"),
            headers=self._headers,
            body=b"".join(self._body),
            keep_alive=self._parser.should_keep_alive(),
            too_large=self._too_large,
            arrival=self._arrival,
        )
        self._pending.append(request)
        if len(self._pending) > 8 and self.transport is not None:
            self.transport.pause_reading()  # a client pipelining too far ahead waits
        self._next()

    # ------------------------------------------------------------------ dispatch
    def _next(self) -> None:
        if self._busy or not self._pending or self.closed:
            if not self._pending and self.transport is not None and not self.closed:
                self.transport.resume_reading()
            return
        request = self._pending.pop(0)
        self._busy = True
        self._keep_alive = request.keep_alive
        if self._defer is not None:
            self._defer(self._dispatch, request)
        else:
            self._dispatch(request)

    def _dispatch(self, request: Request) -> None:
        if self.closed:
            self._busy = False
            return
        try:
            self._handler(self, request)
        except Exception:
            log.exception("handler failed for %s %s", request.method, request.path)
            if self._busy and not self._streaming:
                self.send(500, b"internal error", "text/plain; charset=utf-8")
            elif self._busy:
                self.end_stream()

    _streaming = False

    def _head(
        self, status: int, content_type: str | None, headers: dict[str, str] | None, length: int | None
    ) -> bytes:
        lines = [f"HTTP/1.1 {status} {_reason(status)}"]
        if content_type is not None:
            lines.append(f"content-type: {content_type}")
        if length is None:
            lines.append("transfer-encoding: chunked")
        else:
            lines.append(f"content-length: {length}")
        # LoRAX's CorsLayer wraps every route and the fallback: these go on every response (wire.py)
        merged = {**CORS_HEADERS, **headers} if headers else CORS_HEADERS
        lines.extend(f"{k}: {v}" for k, v in merged.items())
        lines.append(f"date: {_http_date()}")
        if not self._keep_alive or self.draining:
            lines.append("connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def send(
        self,
        status: int,
        body: bytes,
        content_type: str | None = "application/json",
        headers: dict[str, str] | None = None,
        keep_alive: bool | None = None,
    ) -> None:
        """A complete response with a body (content-length)."""
        if keep_alive is not None:
            self._keep_alive = keep_alive
        if self.transport is not None and not self.closed:
            self.transport.write(self._head(status, content_type, headers, len(body)) + body)
        self._finish()

    def start_stream(self, status: int, content_type: str, headers: dict[str, str] | None = None) -> None:
        self._streaming = True
        if self.transport is not None and not self.closed:
            self.transport.write(self._head(status, content_type, headers, None))

    def write(self, data: bytes) -> None:
        """One chunk of a streamed response (`data` must already be chunk-framed, see `chunk`)."""
        if self.transport is not None and not self.closed:
            self.transport.write(data)

    def end_stream(self, last: bytes = b"") -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(last + b"0\r\n\r\n")
        self._streaming = False
        self._finish()

    def drain(self) -> None:
        """Graceful shutdown: close now if idle, else right after the response in progress."""
        self.draining = True
        if not self._busy and not self._pending and self.transport is not None:
            self.transport.close()

    def _finish(self) -> None:
        self.on_close = None
        self._busy = False
        if (self.draining or not self._keep_alive) and self.transport is not None:
            self.transport.close()
            return
        if self._pending:
            asyncio.get_running_loop().call_soon(self._next)
        elif self.transport is not None and not self.closed:
            self.transport.resume_reading()
