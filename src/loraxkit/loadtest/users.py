"""Abstract Locust User classes, one per LoRAX API; `loadtest/` subclasses them so Locust can pick them.

Each User sends one request at a time (closed loop), or takes the next arrival of the open-loop schedule and
waits for its intended time. Locust's own stats row gets the E2E time (not the time to headers it would record
for a stream) and the output token count as the response length.

No request is lost: a transport failure inside a stream is a failed request (`lost_mid_stream`, with the
tokens received so far), a request cut off when the run stops is recorded (`cancelled_at_stop`, or `stalled`
when nothing had arrived for `--stall-timeout`), and a refused connection makes the user back off.
"""

from __future__ import annotations

import logging
import random
from http.client import HTTPException
from typing import Any, ClassVar

import gevent
from gevent import GreenletExit
from locust import FastHttpUser, task

from loraxkit import wire
from loraxkit.loadtest.apis import STREAMING, encode_body, request_body
from loraxkit.loadtest.backoff import JITTER, backoff_after
from loraxkit.loadtest.harness import Harness, harness_of
from loraxkit.loadtest.metrics import RequestRecord, now
from loraxkit.loadtest.stream import (
    ERR_CANCELLED_AT_STOP,
    ERR_CONNECTION,
    ERR_LOST_MID_STREAM,
    ERR_STALLED,
    ERR_TIMEOUT,
    SseRecorder,
    read_error_body,
    read_generate,
    read_sse,
)
from loraxkit.loadtest.txstamp import forget_sent_socket, sent_socket, tx_stamp_of
from loraxkit.loadtest.workload import PlannedRequest

ERR_CLIENT = "client_error"  # an exception in the harness itself (a bug): counted, logged with its traceback
_RESTARTS_CONNECTION = frozenset({ERR_CONNECTION, ERR_LOST_MID_STREAM, ERR_TIMEOUT, ERR_CLIENT})
log = logging.getLogger("loraxkit.loadtest")


def _think_time(user: FastHttpUser) -> float:
    options = user.environment.parsed_options
    return float(getattr(options, "think_time", 0.0) or 0.0) if options else 0.0


def _socket_of(resp: Any) -> Any:
    """The connection a response came on: geventhttpclient's response names it until it releases it (a body
    complete with the headers is released at once); then the socket this user last wrote on (txstamp)."""
    raw = getattr(resp, "_response", None)  # geventhttpclient's response (guarded at start-up)
    sock = getattr(raw, "_sock", None)
    return sock if sock is not None else sent_socket()


class LoraxUser(FastHttpUser):
    """Base class: set `route`; mark the class Locust runs when none is named with `default_class = True`."""

    abstract = True
    route: ClassVar[str] = wire.ROUTE_GENERATE_STREAM
    default_class: ClassVar[bool] = False
    wait_time = _think_time
    network_timeout = 300.0
    connection_timeout = 30.0

    def __init__(self, environment: Any) -> None:
        options = environment.parsed_options
        if options is not None and getattr(options, "request_timeout", None):
            self.network_timeout = float(options.request_timeout)  # read by FastHttpUser.__init__
        super().__init__(environment)
        self.index = harness_of(environment).new_user_index()
        self._backoff = 0.0
        self._jitter = random.Random(self.index)
        self._socket: Any = None  # the connection the last request used (identity only)
        self._connection: str | None = None
        self._new_connection = True  # the next request opens a connection (its TTFT holds the connect)

    def on_start(self) -> None:
        if harness_of(self.environment).options.preconnect:
            self._preconnect()

    def _preconnect(self) -> None:
        """Open this user's connection before its first timed request (`--preconnect`): GET /health."""
        with self.client.request("GET", wire.ROUTE_HEALTH, name="(preconnect)", catch_response=True) as r:
            if r.status_code:
                self._new_connection = False
                r.success()

    @task
    def one_request(self) -> None:
        harness = harness_of(self.environment)
        planned = harness.next_request()
        if planned is None:  # open-loop schedule finished: idle until the run stops
            gevent.sleep(1.0)
            return
        request, intended = planned
        if intended is not None:
            delay = intended - now()
            if delay > 0:
                harness.waiting += 1  # claimed, not sent yet: the rate sweep's drain waits for it too
                try:
                    gevent.sleep(delay)
                finally:
                    harness.waiting -= 1
        record = self.new_record(harness, request, intended)
        harness.read_loop.catch_up()  # before a send: other streams' tokens are not left waiting (sockstamp)
        harness.in_flight += 1
        try:
            self.send(harness, request, record)
        except GreenletExit:  # Locust stopping this user mid-request: recorded, never dropped
            self._cut_at_stop(record, harness.options.stall_timeout)
            harness.add(record)
            raise
        except Exception as exc:  # anything unforeseen: a counted failure with its traceback logged
            log.exception("loraxkit: request %s failed in the client", record.request_id)
            record.end = now()
            record.error_type, record.error = ERR_CLIENT, f"{type(exc).__name__}: {exc}"[:300]
        finally:
            harness.in_flight -= 1
        harness.add(record)
        self._after(record)

    def new_record(self, harness: Harness, req: PlannedRequest, intended: float | None) -> RequestRecord:
        return RequestRecord(
            request_id=harness.request_id(req.index),
            route=self.route,
            adapter=req.adapter,
            sent=0.0,
            worker=harness.worker_index,
            intended=intended,
            prompt_tokens=req.prompt.tokens,
            max_new_tokens=req.max_new_tokens,
            user=self.index,
            first_on_connection=self._new_connection,
        )

    def send(self, harness: Harness, req: PlannedRequest, record: RequestRecord) -> None:
        streaming = self.route in STREAMING
        body = encode_body(request_body(self.route, req, harness.options.base_model_id))
        rid = record.request_id
        headers = {"Content-Type": "application/json", "Accept-Encoding": "identity", wire.H_REQUEST_ID: rid}
        name = self.route if harness.options.stats_by == "route" else f"{self.route} [{record.adapter_label}]"
        forget_sent_socket()
        record.sent = now()
        with self.client.request(
            "POST", self.route, data=body, headers=headers, stream=streaming, catch_response=True, name=name
        ) as resp:
            record.headers = now()
            self._take_tx_stamp(resp, record)
            record.response_id = (resp.headers or {}).get(wire.H_REQUEST_ID) if resp.status_code else None
            options = harness.options
            self._read(resp, record, streaming, not options.user_space_stamps, options.request_timeout)
            self._settle(resp, record)

    @staticmethod
    def _take_tx_stamp(resp: Any, record: RequestRecord) -> None:
        """Measure from the kernel's transmit time of the request's last byte when the connection has it
        (txstamp.py): the Python stamp before the client call is kept as `sent_user`."""
        tx = tx_stamp_of(_socket_of(resp))
        if tx is not None and tx >= record.sent:  # the write came after the Python stamp, never before
            record.sent_user, record.sent = record.sent, tx

    def _read(
        self, resp: Any, record: RequestRecord, streaming: bool, kernel_stamps: bool, timeout: float
    ) -> None:
        status = resp.status_code or 0
        if status:
            self._note_connection(_socket_of(resp), record)
        if status == 0:
            record.error_type, record.error = ERR_CONNECTION, str(getattr(resp, "error", ""))[:300]
            record.end = now()
        elif status != 200:
            try:
                body = resp.content
            except (OSError, HTTPException):  # the error body itself was cut: the status still counts
                body = None
            read_error_body(status, body, record)
            record.end = now()
        elif streaming:
            record.status = 200
            try:
                self._read_stream(resp, record, kernel_stamps, timeout)
            except (OSError, HTTPException) as exc:  # reset, EOF inside the chunked body, ...
                record.end = now()
                record.error_type = ERR_LOST_MID_STREAM
                record.error = (
                    f"connection lost after {record.stream_tokens} token events: {type(exc).__name__}: {exc}"
                )[:300]
        else:
            record.status = 200
            record.end = record.headers
            read_generate(resp.content or b"", resp.headers or {}, record)

    def _read_stream(self, resp: Any, record: RequestRecord, kernel_stamps: bool, timeout: float) -> None:
        raw = resp._response  # geventhttpclient's response object (guarded at start-up: harness)
        sock = _socket_of(resp)
        if not kernel_stamps:
            read_sse(lambda: raw.readline(b"\n"), record)
            return
        recorder = SseRecorder(record)
        head_stamp = getattr(sock, "rx_stamp", None)
        stream = harness_of(self.environment).read_loop.read(raw, recorder.line, timeout, head_stamp)
        record.reads, record.read_lag_max, record.read_lag_sum = stream.reads, stream.lag_max, stream.lag_sum
        if stream.timed_out:
            record.error_type, record.error = ERR_TIMEOUT, f"no complete response in {timeout:g} s"
            record.end = now()
        else:
            recorder.end(stream.ended_at)

    def _note_connection(self, sock: Any, record: RequestRecord) -> None:
        """Which TCP connection carried the request, and whether it was opened for it."""
        if sock is None:
            return
        if sock is not self._socket:
            # a new socket: opened for this request, unless it is the one --preconnect opened
            record.first_on_connection = self._socket is not None or self._new_connection
            self._socket = sock
            try:
                host, port = sock.getsockname()[:2]
                self._connection = f"{host}:{port}"
            except OSError:
                self._connection = None
        record.connection = self._connection

    def _after(self, record: RequestRecord) -> None:
        """Pace the next request: back off after a failed connection; note when the next one reconnects."""
        self._new_connection = record.error_type in _RESTARTS_CONNECTION
        if record.error_type == ERR_CONNECTION:
            self._backoff = backoff_after(self._backoff)
            gevent.sleep(self._backoff * self._jitter.uniform(1 - JITTER, 1 + JITTER))
        else:
            self._backoff = 0.0

    @staticmethod
    def _cut_at_stop(record: RequestRecord, stall_timeout: float) -> None:
        """A request still in flight when the run stopped: `stalled` when nothing had arrived for
        stall_timeout seconds (a failure), else `cancelled_at_stop` (counted, not the server's fault)."""
        record.end = now()
        last = record.token_times[-1] if record.token_times else (record.headers or record.sent)
        quiet = record.end - last if record.sent else 0.0
        stalled = record.sent > 0 and quiet >= stall_timeout
        record.error_type = ERR_STALLED if stalled else ERR_CANCELLED_AT_STOP
        record.error = (
            f"still in flight when the run stopped, {record.end - record.sent:.1f} s after it was sent, "
            f"{record.stream_tokens} token events, nothing received for {quiet:.1f} s"
        )

    @staticmethod
    def _settle(resp: Any, record: RequestRecord) -> None:
        """Locust's stats row: E2E as response time, tokens as length, LoRAX's error_type as failure."""
        e2e = record.e2e
        if e2e is not None:
            resp.request_meta["response_time"] = e2e * 1000.0
        resp.request_meta["response_length"] = record.output_tokens
        if record.ok:
            resp.success()
        else:
            # One Locust failure row per (status, error_type); the messages are in our report.
            resp.failure(f"HTTP {record.status} {record.error_type}")
