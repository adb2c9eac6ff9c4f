"""Abstract Locust User classes, one per LoRAX API; `loadtest/` subclasses them so Locust can pick them.

Each User sends one request at a time (closed loop), or takes the next arrival of the open-loop schedule and
waits for its intended time. Locust's own stats row gets the E2E time (not the time to headers it would record
for a stream) and the output token count as the response length.
"""

from __future__ import annotations

from typing import Any, ClassVar

import gevent
from gevent import GreenletExit
from locust import FastHttpUser, task

from loraxkit import wire
from loraxkit.loadtest.apis import STREAMING, encode_body, request_body
from loraxkit.loadtest.harness import Harness, harness_of
from loraxkit.loadtest.metrics import RequestRecord, now
from loraxkit.loadtest.sockstamp import StampedLineReader
from loraxkit.loadtest.stream import ERR_CONNECTION, ERR_TIMEOUT, read_error_body, read_generate, read_sse
from loraxkit.loadtest.workload import PlannedRequest


def _think_time(user: FastHttpUser) -> float:
    options = user.environment.parsed_options
    return float(getattr(options, "think_time", 0.0) or 0.0) if options else 0.0


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
                gevent.sleep(delay)
        harness.in_flight += 1
        try:
            record = self.send(harness, request, intended)
        except GreenletExit:  # Locust stopping this user mid-request
            harness.cancelled += 1
            raise
        finally:
            harness.in_flight -= 1
        harness.add(record)

    def send(self, harness: Harness, req: PlannedRequest, intended: float | None) -> RequestRecord:
        streaming = self.route in STREAMING
        body = encode_body(request_body(self.route, req, harness.options.base_model_id))
        rid = harness.request_id(req.index)
        record = RequestRecord(
            request_id=rid,
            route=self.route,
            adapter=req.adapter,
            sent=0.0,
            worker=harness.worker_index,
            intended=intended,
            prompt_tokens=req.prompt.tokens,
            max_new_tokens=req.max_new_tokens,
        )
        headers = {"Content-Type": "application/json", "Accept-Encoding": "identity", wire.H_REQUEST_ID: rid}
        name = self.route if harness.options.stats_by == "route" else f"{self.route} [{record.adapter_label}]"
        record.sent = now()
        with self.client.request(
            "POST", self.route, data=body, headers=headers, stream=streaming, catch_response=True, name=name
        ) as resp:
            record.headers = now()
            options = harness.options
            self._read(resp, record, streaming, not options.user_space_stamps, options.request_timeout)
            self._settle(resp, record)
        return record

    @staticmethod
    def _read(resp: Any, record: RequestRecord, streaming: bool, kernel_stamps: bool, timeout: float) -> None:
        status = resp.status_code or 0
        if status == 0:
            record.error_type, record.error = ERR_CONNECTION, str(getattr(resp, "error", ""))[:300]
            record.end = now()
        elif status != 200:
            read_error_body(status, resp.content, record)
            record.end = now()
        elif streaming:
            record.status = 200
            if kernel_stamps:
                # geventhttpclient's response object; one timer for the whole stream
                with StampedLineReader(resp._response, timeout) as reader:
                    read_sse(reader.readline, record, lambda: reader.stamp)
                if reader.timed_out:
                    record.error_type, record.error = ERR_TIMEOUT, f"no complete response in {timeout:g} s"
                    record.end = now()
            else:
                raw = resp._response
                read_sse(lambda: raw.readline(b"\n"), record)
        else:
            record.status = 200
            record.end = record.headers
            read_generate(resp.content or b"", resp.headers or {}, record)

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
