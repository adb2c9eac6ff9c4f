"""The simulator's routes: LoRAX's REST API on top of the batching engine, answering exactly as LoRAX's
router does (status codes, error bodies, in-stream errors under HTTP 200, SSE framing, `x-*` headers)."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from loraxkit import wire
from loraxkit.sim.engine import Engine, EngineConfig, Sequence
from loraxkit.sim.faults import FAULTS_ROUTE, Faults, FaultSpec
from loraxkit.sim.faults import route as faults_route
from loraxkit.sim.http import Connection, Request, chunk
from loraxkit.sim.metrics import Registry, render_json
from loraxkit.sim.profiles import Profile
from loraxkit.sim.pump import Pump
from loraxkit.sim.render import (
    CHAT,
    COMPAT_LIST,
    COMPLETION,
    NATIVE,
    STARTUP,
    VERSION,
    Renderer,
    timing_headers,
)
from loraxkit.sim.tokens import Vocabulary, expected_token_ids, natural_length
from loraxkit.sim.trace import TraceWriter

log = logging.getLogger("loraxkit.sim")

DEFAULT_MODEL_ID = wire.DEFAULT_MODEL_ID
SIM_STATE_ROUTE = "/sim/state"  # simulator-only introspection (not a LoRAX route)
# Texts longer than this are tokenized on a worker thread (LoRAX tokenizes on its validation workers), so a
# huge prompt does not stall every other stream; shorter ones (a few ms at most) stay on the event loop.
INLINE_TOKENIZE_CHARS = 20_000
VALIDATION_WORKERS = 2  # LoRAX's --validation-workers default

T = TypeVar("T")


@dataclass
class SimConfig:
    profile: Profile
    host: str = "127.0.0.1"
    port: int = 8080
    seed: int = 0
    trace_path: str | None = None
    startup_delay_s: float = 0.0
    model_id: str = DEFAULT_MODEL_ID
    max_concurrent_requests: int = 1024
    max_active_adapters: int = 1024
    unloadable_adapters: tuple[str, ...] = ()
    lenient: bool = False
    limits: wire.Limits = field(default_factory=wire.Limits)
    max_batch_total_tokens: int | None = None
    max_batch_prefill_tokens: int | None = None
    max_waiting_tokens: int = 20
    waiting_served_ratio: float = 1.2
    adapter_load_ms: float | None = None
    adapter_cycle_s: float = 2.0
    step_jitter: float = 0.0
    keep_alive_s: float = wire.DEFAULT_KEEP_ALIVE_S
    drain_timeout_s: float = 30.0
    default_adapter_source: str = "hub"
    faults: FaultSpec | None = None  # fault injection at start (sim/faults.py)


@dataclass(eq=False, slots=True)
class Job:
    """What a request needs beyond the engine's Sequence: how to frame and account for its output.
    It is the Sequence's sink; its `on_token` is the per-token hot path (a cached chunk, one write)."""

    kind: str
    stream: bool
    conn: Connection
    params: wire.GenerateParams
    inputs: str
    arrival: float
    headers: dict[str, str]
    seed: int | None
    sim: Simulator | None = None
    seq: Sequence | None = None
    cache: dict[int, bytes] = field(default_factory=dict)
    slot_held: bool = False
    finished: bool = False
    idle_mark: int = -1
    prompt_ids: list[int] | None = None  # kept only when decoder_input_details asks for the prefill tokens
    final_chunk: bytes | None = None  # a stream's last event, built at admission

    def on_token(self, seq: Sequence, index: int, last: bool) -> float:
        if last:
            assert self.sim is not None
            return self.sim.finish(self, seq)
        if self.stream:
            token_id = seq.token_ids[index]
            data = self.cache.get(token_id)
            if data is None:
                assert self.sim is not None
                data = self.cache[token_id] = self.sim.render.token_chunk(self.kind, token_id)
            conn = self.conn
            handed = _now()  # the trace's stamp: when the bytes go to the socket, not after the write returns
            if not conn.closed:
                conn.transport.write(data)  # type: ignore[union-attr]
            return handed
        return _now()

    def on_error(self, seq: Sequence, err: wire.LoraxError) -> None:
        assert self.sim is not None
        self.sim.seq_error(self, seq, err)


class Simulator:
    def __init__(self, config: SimConfig, vocab: Vocabulary | None = None) -> None:
        self.config = config
        self.vocab = vocab or Vocabulary()
        profile = config.profile
        self.metrics = Registry(config.limits.max_input_length, config.limits.max_total_tokens)
        self.faults = Faults(config.faults, config.seed)
        self.engine = Engine(
            profile,
            EngineConfig(
                max_batch_total_tokens=config.max_batch_total_tokens or profile.max_batch_total_tokens,
                max_batch_prefill_tokens=config.max_batch_prefill_tokens
                or profile.max_batch_prefill_tokens
                or config.limits.max_input_length + 50,
                max_waiting_tokens=config.max_waiting_tokens,
                waiting_served_ratio=config.waiting_served_ratio,
                max_active_adapters=config.max_active_adapters,
                adapter_load_ms=config.adapter_load_ms
                if config.adapter_load_ms is not None
                else profile.adapter_load_ms,
                adapter_cycle_s=config.adapter_cycle_s,
                unloadable_adapters=config.unloadable_adapters,
                step_jitter=config.step_jitter,
                seed=config.seed,
            ),
            self.metrics,
            self.faults,
        )
        self.pump = Pump()
        self.trace = TraceWriter(config.trace_path, self.pump.defer) if config.trace_path else None
        self.in_flight = 0
        self.connections: set[Connection] = set()
        self.render = Renderer(self.vocab, config.model_id, self.docker_label)
        self._jobs: dict[int, Job] = {}
        self._keepalive_handle: asyncio.TimerHandle | None = None
        self._validation_pool = ThreadPoolExecutor(VALIDATION_WORKERS, thread_name_prefix="validation")
        self.tokenizing = 0  # texts on the validation workers
        self._routes = {
            ("POST", wire.ROUTE_COMPAT): lambda c, r: self.generation(c, r, wire.ROUTE_COMPAT),
            ("POST", wire.ROUTE_INVOCATIONS): lambda c, r: self.generation(c, r, wire.ROUTE_INVOCATIONS),
            ("POST", wire.ROUTE_GENERATE): lambda c, r: self.generation(c, r, wire.ROUTE_GENERATE),
            ("POST", wire.ROUTE_GENERATE_STREAM): lambda c, r: self.generation(
                c, r, wire.ROUTE_GENERATE_STREAM
            ),
            ("POST", wire.ROUTE_COMPLETIONS): lambda c, r: self.generation(c, r, wire.ROUTE_COMPLETIONS),
            ("POST", wire.ROUTE_CHAT): lambda c, r: self.generation(c, r, wire.ROUTE_CHAT),
            ("GET", wire.ROUTE_COMPAT): self.health,
            ("GET", wire.ROUTE_HEALTH): self.health,
            ("GET", wire.ROUTE_PING): self.health,
            ("GET", wire.ROUTE_STARTUP): self.startup,
            ("GET", wire.ROUTE_INFO): self.info,
            ("GET", wire.ROUTE_METRICS): self.metrics_route,
            ("POST", wire.ROUTE_TOKENIZE): self.tokenize,
            ("GET", SIM_STATE_ROUTE): self.sim_state,
            **{(m, FAULTS_ROUTE): self._faults_route for m in ("GET", "POST", "DELETE")},
        }
        self._known_paths = {path for _, path in self._routes}

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self.engine.start()
        self.faults.start()
        self._schedule_keepalive()

    async def stop(self) -> None:
        if self._keepalive_handle is not None:
            self._keepalive_handle.cancel()
        await self.engine.stop()
        self._validation_pool.shutdown(wait=False, cancel_futures=True)
        self.pump.drain()
        if self.trace is not None:
            self.trace.close()

    def _schedule_keepalive(self) -> None:
        loop = asyncio.get_running_loop()
        self._keepalive_handle = loop.call_later(self.config.keep_alive_s, self._keepalive_tick)

    def _keepalive_tick(self) -> None:
        # A stream that sent nothing since the previous tick gets a `:` comment line (axum KeepAlive).
        for job in list(self._jobs.values()):
            if not job.stream or job.finished:
                continue
            sent = job.seq.generated if job.seq is not None else 0
            if sent == job.idle_mark:
                job.conn.write(chunk(wire.KEEP_ALIVE))
            job.idle_mark = sent
        self._schedule_keepalive()

    # ------------------------------------------------------------------ dispatch
    def handle(self, conn: Connection, req: Request) -> None:
        route = self._routes.get((req.method, req.path))
        if route is not None:
            route(conn, req)
        elif req.path in self._known_paths:
            conn.send(405, b"", "text/plain; charset=utf-8")
        else:
            conn.send(404, b"", "text/plain; charset=utf-8")

    def _send_json(
        self, conn: Connection, status: int, obj: Any, headers: dict[str, str] | None = None
    ) -> None:
        conn.send(status, wire.dumps(obj).encode(), "application/json", headers)

    def _send_error(
        self, conn: Connection, err: wire.LoraxError, headers: dict[str, str] | None = None
    ) -> None:
        self._send_json(conn, err.status, err.body(), headers)

    # ------------------------------------------------------------------ simple routes
    def health(self, conn: Connection, req: Request) -> None:
        conn.send(200, b"", "text/plain; charset=utf-8")

    @property
    def docker_label(self) -> str:
        return f"loraxkit-sim:{self.config.profile.name}"

    def info(self, conn: Connection, req: Request) -> None:
        self._send_json(conn, 200, self.info_json())

    def info_json(self) -> dict[str, Any]:
        cfg, limits = self.config, self.config.limits
        return {
            "model_id": cfg.model_id,
            "model_sha": None,
            "model_dtype": "torch.bfloat16",
            "model_device_type": "cuda",
            "model_pipeline_tag": "text-generation",
            "max_concurrent_requests": cfg.max_concurrent_requests,
            "max_best_of": limits.max_best_of,
            "max_stop_sequences": limits.max_stop_sequences,
            "max_input_length": limits.max_input_length,
            "max_total_tokens": limits.max_total_tokens,
            "waiting_served_ratio": cfg.waiting_served_ratio,
            "max_batch_total_tokens": self.engine.config.max_batch_total_tokens,
            "max_waiting_tokens": cfg.max_waiting_tokens,
            "validation_workers": 2,
            "eager_prefill": True,
            "version": VERSION,
            "sha": None,
            "docker_label": self.docker_label,
            "request_logger_url": None,
        }

    def metrics_route(self, conn: Connection, req: Request) -> None:
        text = self.metrics.render()
        want_json = "format=json" in req.query.lower() or "application/json" in req.headers.get("accept", "")
        if want_json:
            self._send_json(conn, 200, render_json(text))
        else:
            conn.send(200, text.encode(), "text/plain; charset=utf-8")

    def sim_state(self, conn: Connection, req: Request) -> None:
        state = {
            "in_flight": self.in_flight,
            "tokenizing": self.tokenizing,
            "max_concurrent_requests": self.config.max_concurrent_requests,
            "open_streams": sum(1 for j in self._jobs.values() if j.stream),
            "connections": len(self.connections),
            **self.engine.state(),
            "faults": self.faults.spec.as_json(),
        }
        self._send_json(conn, 200, state)

    def _faults_route(self, conn: Connection, req: Request) -> None:
        faults_route(self.faults, conn, req)

    def tokenize(self, conn: Connection, req: Request) -> None:
        try:
            body = self._json_body(req)
            if not isinstance(body, dict) or "inputs" not in body:
                raise wire.json_data_rejection("missing field `inputs`")
            if not isinstance(body["inputs"], str):
                raise wire.json_data_rejection("inputs: invalid type, expected a string")
            add_special = body.get("add_special_tokens")
            if add_special is not None and not isinstance(add_special, bool):
                raise wire.json_data_rejection("add_special_tokens: invalid type, expected a boolean")
        except wire.BodyRejection as rej:
            conn.send(rej.status, rej.message.encode(), "text/plain; charset=utf-8")
            return
        text: str = body["inputs"]
        self._tokenize_then(len(text), lambda: self.vocab.spans_json(text, add_special is not False),
                            lambda get: self._send_tokenized(conn, get))  # fmt: skip

    def _send_tokenized(self, conn: Connection, get: Callable[[], bytes]) -> None:
        try:
            body = get()
        except Exception:
            log.exception("tokenize failed")
            conn.send(500, b"tokenizer error", "text/plain; charset=utf-8")
            return
        conn.send(200, body, "application/json")

    def _tokenize_then(
        self, size: int, work: Callable[[], T], then: Callable[[Callable[[], T]], None]
    ) -> None:
        """Run `then(get)` on the event loop, where `get()` returns `work()`'s result or raises its error.
        Short texts run `work` inline; long ones on a validation worker thread (sentencepiece releases the
        GIL while it encodes)."""
        if size <= INLINE_TOKENIZE_CHARS:
            then(work)
            return
        self.tokenizing += 1
        future = asyncio.get_running_loop().run_in_executor(self._validation_pool, work)
        future.add_done_callback(lambda done: self._tokenize_done(then, done))

    def _tokenize_done(self, then: Callable[[Callable[[], T]], None], done: asyncio.Future[T]) -> None:
        self.tokenizing -= 1
        then(done.result)

    def startup(self, conn: Connection, req: Request) -> None:
        """`/startup` runs a real 1-token generation ("Who?") through the queue, as LoRAX does."""
        params = wire.GenerateParams(max_new_tokens=1)
        job = Job(
            kind=STARTUP,
            stream=False,
            conn=conn,
            params=params,
            inputs="Who?",
            arrival=req.arrival,
            headers={},
            seed=None,
            sim=self,
        )
        try:
            self._admit(job, wire.ROUTE_STARTUP, req, prompt_ids=None)
        except wire.LoraxError as err:
            self._reject(job, wire.ROUTE_STARTUP, req, err)  # 500 with LoRAX's error body, slot released

    # ------------------------------------------------------------------ generation
    def _json_body(self, req: Request) -> Any:
        if req.too_large:
            raise wire.BODY_TOO_LARGE
        ctype = req.headers.get("content-type", "")
        if "json" not in ctype.lower() and not self.config.lenient:
            raise wire.MISSING_JSON_CONTENT_TYPE
        try:
            return json.loads(req.body, parse_constant=_not_json)
        except (ValueError, UnicodeDecodeError) as exc:
            raise wire.json_syntax_rejection(str(exc)) from None
        except RecursionError:  # serde_json stops at depth 128 the same way
            raise wire.json_syntax_rejection("recursion limit exceeded") from None

    def _parse(self, route: str, body: Any) -> Parsed:
        lenient = self.config.lenient
        if route in (wire.ROUTE_COMPAT, wire.ROUTE_INVOCATIONS):
            inputs, params, stream = wire.parse_generate_body(body, lenient=lenient)
            return (NATIVE if stream else COMPAT_LIST), inputs, params, stream, None
        if route == wire.ROUTE_GENERATE:
            inputs, params, _ = wire.parse_generate_body(body, lenient=lenient)
            return NATIVE, inputs, params, False, None
        if route == wire.ROUTE_GENERATE_STREAM:
            inputs, params, _ = wire.parse_generate_body(body, lenient=lenient)
            return NATIVE, inputs, params, True, None
        if route == wire.ROUTE_COMPLETIONS:
            prompt, params, stream = wire.parse_completion_body(body, self.config.model_id, lenient=lenient)
            return COMPLETION, prompt, params, stream, None
        messages, params, stream = wire.parse_chat_body(body, self.config.model_id, lenient=lenient)
        return CHAT, "\n".join(m.content for m in messages), params, stream, messages

    def _response_headers(self, job: Job) -> dict[str, str]:
        headers = {wire.H_COMPUTE_TYPE: wire.COMPUTE_TYPE, wire.H_COMPUTE_CHARACTERS: str(len(job.inputs))}
        if job.stream:
            headers[wire.H_ACCEL_BUFFERING] = "no"
        headers[wire.H_MODEL_ID] = self.config.model_id
        if job.params.adapter_id:
            headers[wire.H_ADAPTER_ID] = job.params.adapter_id
            headers[wire.H_ADAPTER_SOURCE] = job.params.adapter_source or self.config.default_adapter_source
        return headers

    def generation(self, conn: Connection, req: Request, route: str) -> None:
        try:
            body = self._json_body(req)
            parsed = self._parse(route, body)
        except wire.BodyRejection as rej:
            conn.send(rej.status, rej.message.encode(), "text/plain; charset=utf-8")
            return
        messages = parsed[4]
        if messages is None:
            self._start(conn, req, route, parsed, None)
            return
        size = sum(len(m.content) for m in messages)
        self._tokenize_then(size, lambda: self.vocab.chat_prompt_ids(messages),
                            lambda get: self._templated(conn, req, route, parsed, get))  # fmt: skip

    def _templated(
        self, conn: Connection, req: Request, route: str, parsed: Parsed, get: Callable[[], list[int]]
    ) -> None:
        if conn.closed:
            return  # gone before the request was counted or held a slot
        try:
            prompt_ids = get()
        except wire.LoraxError as err:
            # chat template errors: returned before any streaming starts and before LoRAX counts the request
            self._send_error(conn, err)
            return
        except Exception:
            log.exception("chat template failed")
            self._send_error(conn, wire.LoraxError(wire.ERROR_INCOMPLETE, wire.MSG_INCOMPLETE))
            return
        self._start(conn, req, route, parsed, prompt_ids)

    def _start(
        self, conn: Connection, req: Request, route: str, parsed: Parsed, prompt_ids: list[int] | None
    ) -> None:
        kind, inputs, params, stream, _ = parsed
        seed = params.seed
        if seed is None and params.do_sample:
            seed = uuid.uuid4().int & (2**64 - 1)
        job = Job(
            kind=kind,
            stream=stream,
            conn=conn,
            params=params,
            inputs=inputs,
            arrival=req.arrival,
            headers={},
            seed=seed if params.do_sample else None,
            sim=self,
            cache=self.render.chunk_caches.get(kind, {}),
        )
        job.headers = self._response_headers(job)
        self.metrics.inc("lorax_request_count")
        if stream:
            conn.start_stream(200, "text/event-stream", {"cache-control": "no-cache", **job.headers})
        try:
            self._admit(job, route, req, prompt_ids)
        except wire.LoraxError as err:
            self._reject(job, route, req, err)
        except Exception:  # a bug must not leak the slot or leave the client hanging
            log.exception("request failed")
            self._reject(job, route, req, wire.LoraxError(wire.ERROR_INCOMPLETE, wire.MSG_INCOMPLETE))

    def _admit(self, job: Job, route: str, req: Request, prompt_ids: list[int] | None) -> None:
        """Concurrency slot, validation and tokenization (LoRAX order), then hand over to the engine."""
        cfg, params = self.config, job.params
        # generate_stream_with_callback refuses these before it asks for a concurrency permit
        if job.stream and (params.best_of or 1) != 1:
            raise wire.validation_error("`best_of` != 1 is not supported when streaming tokens")
        if job.stream and params.decoder_input_details:
            raise wire.validation_error(
                "`decoder_input_details` == true is not supported when streaming tokens"
            )
        if self.in_flight >= cfg.max_concurrent_requests:
            raise wire.overloaded_error()
        self.in_flight += 1
        job.slot_held = True
        self._jobs[id(job)] = job
        job.conn.on_close = lambda: self._client_gone(job)
        wire.validate_params(
            job.inputs,
            params,
            streaming=job.stream,
            max_best_of=cfg.limits.max_best_of,
            max_stop_sequences=cfg.limits.max_stop_sequences,
            max_input_length=cfg.limits.max_input_length,
        )
        if prompt_ids is not None:
            self._tokenized(job, route, req, lambda: prompt_ids)
        else:
            self._tokenize_then(len(job.inputs), lambda: self.vocab.encode(job.inputs),
                                lambda get: self._tokenized(job, route, req, get))  # fmt: skip

    def _tokenized(self, job: Job, route: str, req: Request, get: Callable[[], list[int]]) -> None:
        if job.finished:
            return  # the client went away while its prompt was tokenized; its slot is already free
        try:
            self._enqueue(job, route, req, get())
        except wire.LoraxError as err:
            self._reject(job, route, req, err)
        except Exception:  # a bug must not leak the slot or leave the client hanging
            log.exception("request failed")
            self._reject(job, route, req, wire.LoraxError(wire.ERROR_INCOMPLETE, wire.MSG_INCOMPLETE))

    def _enqueue(self, job: Job, route: str, req: Request, ids: list[int]) -> None:
        """Length validation on the tokenized prompt, the planned output, then the engine's queue."""
        cfg, params = self.config, job.params
        if params.decoder_input_details:
            job.prompt_ids = ids
        # LoRAX's router validates the whole prompt (its tokenizer worker ignores `truncate`); the shard
        # then keeps the last `truncate` tokens.
        max_new = wire.validate_lengths(len(ids), params.max_new_tokens, cfg.limits)
        self.metrics.observe("lorax_request_input_length", float(len(ids)))
        self.metrics.observe("lorax_request_max_new_tokens", float(max_new))
        if params.truncate is not None:
            ids = self.vocab.truncate_left(ids, params.truncate)
        token_ids, finish = self._plan_output(job, max_new)
        seq = Sequence(
            request_id=req.headers.get(wire.H_REQUEST_ID) or uuid.uuid4().hex,
            route=route,
            adapter_id=params.adapter_id or None,
            input_length=len(ids),
            max_new_tokens=max_new,
            token_ids=token_ids,
            finish_reason=finish,
            sink=job,
            arrival=job.arrival,
        )
        job.seq = seq
        if job.stream:
            job.final_chunk = self.render.final_chunk(job, seq)
        job.conn.on_close = lambda: self._client_gone(job, seq)
        self.engine.submit(seq)

    def _plan_output(self, job: Job, max_new: int) -> tuple[list[int], str]:
        """The tokens this request will produce: fixed length if max_new_tokens was given (or EOS ignored),
        else a natural EOS-terminated length; then cut at the first stop sequence."""
        params, adapter = job.params, job.params.adapter_id or None
        natural = natural_length(self.config.seed, adapter, job.inputs)
        if params.max_new_tokens is None and not params.ignore_eos_token and natural < max_new:
            ids = expected_token_ids(self.vocab, self.config.seed, adapter, job.inputs, natural - 1)
            return [*ids, self.vocab.eos_id], wire.FINISH_EOS
        ids = expected_token_ids(self.vocab, self.config.seed, adapter, job.inputs, max_new)
        if params.stop:
            text = ""
            for i, tid in enumerate(ids):
                text += self.vocab.token_text(tid)
                if any(text.endswith(s) for s in params.stop if s):
                    return ids[: i + 1], wire.FINISH_STOP
        return ids, wire.FINISH_LENGTH

    def _reject(self, job: Job, route: str, req: Request, err: wire.LoraxError) -> None:
        self.metrics.inc("lorax_request_failure", err=wire.FAILURE_LABEL.get(err.error_type, "bad_request"))
        self._release(job)
        status = 200 if job.stream else err.status
        if job.stream:
            job.conn.end_stream(chunk(wire.sse_error(err)))
        elif job.kind == STARTUP:
            self._send_json(job.conn, 500, err.body())
        else:
            self._send_error(job.conn, err)
        self._write_trace(
            req.headers.get(wire.H_REQUEST_ID) or uuid.uuid4().hex, route, job, None, status, err.error_type
        )

    def _release(self, job: Job) -> None:
        job.finished = True
        self._jobs.pop(id(job), None)
        if job.slot_held:
            job.slot_held = False
            self.in_flight -= 1

    def _client_gone(self, job: Job, seq: Sequence | None = None) -> None:
        if job.finished:
            return
        self.metrics.inc("lorax_request_failure", err="dropped")
        if seq is not None:
            self.engine.cancel(seq)
            seq.end = time.time()
            self._write_trace(seq.request_id, seq.route, job, seq, 200 if job.stream else 499, "dropped")
        self._release(job)

    # ------------------------------------------------------------------ Sink (engine callbacks)
    def seq_error(self, job: Job, seq: Sequence, err: wire.LoraxError) -> None:
        if job.finished:
            return
        self.metrics.inc("lorax_request_failure", err=wire.FAILURE_LABEL.get(err.error_type, "bad_request"))
        self._release(job)
        if job.stream:
            job.conn.end_stream(chunk(wire.sse_error(err)))
        else:
            # an error response carries no x-* headers: LoRAX's generate() returns before building them
            self._send_json(job.conn, 500 if job.kind == STARTUP else err.status, err.body())
        self._write_trace(
            seq.request_id, seq.route, job, seq, 200 if job.stream else err.status, err.error_type
        )

    def finish(self, job: Job, seq: Sequence) -> float:
        """The last token: write the final event (stream) or the whole response, then account for it."""
        if job.finished:  # the client went away
            return _now()
        now = time.time()
        # `sent` is taken just before the bytes go to the socket (the trace contract), not after the write
        if job.stream:
            final = job.final_chunk or self.render.final_chunk(job, seq)
            self._release(job)
            sent = time.time()
            job.conn.end_stream(final)
        else:
            body = self.render.full_response(job, seq, now)
            self._release(job)
            if job.kind == STARTUP:
                sent = time.time()
                job.conn.send(200, b"", "text/plain; charset=utf-8")
            else:
                encoded = wire.dumps(body).encode()
                headers = {**job.headers, **timing_headers(seq, now)}
                sent = time.time()
                job.conn.send(200, encoded, "application/json", headers)
        self.pump.defer(self._account, seq, job, sent)
        return sent

    def _account(self, seq: Sequence, job: Job, end: float) -> None:
        admitted = seq.admitted or seq.queued
        inference = end - admitted
        m = self.metrics
        m.inc("lorax_request_success")
        m.observe("lorax_request_duration", end - seq.arrival)
        m.observe("lorax_request_validation_duration", seq.queued - seq.arrival)
        m.observe("lorax_request_queue_duration", admitted - seq.queued)
        m.observe("lorax_request_inference_duration", inference)
        m.observe("lorax_request_mean_time_per_token_duration", inference / max(len(seq.token_ids), 1))
        m.observe("lorax_request_generated_tokens", float(len(seq.token_ids)))
        seq.end = end
        # Deferred: the engine has appended the last token's time by now.
        self._write_trace(seq.request_id, seq.route, job, seq, 200, None, end_override=end)

    def _write_trace(
        self,
        request_id: str,
        route: str,
        job: Job,
        seq: Sequence | None,
        status: int,
        error_type: str | None,
        end_override: float | None = None,
    ) -> None:
        if self.trace is None or job.kind == STARTUP:
            return
        token_times = list(seq.token_times) if seq is not None else []
        self.trace.write(
            {
                "request_id": request_id,
                "route": route,
                "adapter_id": job.params.adapter_id or None,
                "arrival": job.arrival,
                "admitted": seq.admitted if seq is not None else None,
                "first_token": token_times[0] if token_times else None,
                "token_times": token_times,
                "end": end_override if end_override is not None else time.time(),
                "status": status,
                "error_type": error_type,
                "prompt_tokens": seq.input_length if seq is not None else None,
                "generated_tokens": len(token_times),
            }
        )


_now = time.time


def _not_json(constant: str) -> Any:
    # Python's json accepts NaN and Infinity; serde_json (and JSON) do not
    raise ValueError(f"{constant} is not valid JSON")


Parsed = tuple[str, str, wire.GenerateParams, bool, list[wire.ChatMessageIn] | None]
