"""The simulator's routes: LoRAX's REST API on top of the batching engine, answering exactly as LoRAX's
router does (status codes, error bodies, in-stream errors under HTTP 200, SSE framing, `x-*` headers)."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import random
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
from loraxkit.sim.jsongen import sample
from loraxkit.sim.metrics import Registry, render_json
from loraxkit.sim.openapi import openapi_document, swagger_page
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
    logprob,
    timing_headers,
)
from loraxkit.sim.tokens import Vocabulary, expected_token_ids, natural_length, output_seed
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
    eager_prefill: bool = True
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
    alternatives: int = 0  # return_k_alternatives
    grammar: tuple[str, Any] | None = None  # ("tools", functions) or ("schema", schema): constrained output
    using_tools: bool = False  # chat: parse each answer into a tool call
    slots: int = 1  # concurrency permits held: one per sequence (best_of runs best_of generations)
    seqs: list[Sequence] = field(default_factory=list)  # every sequence of a best-of request
    seeds: dict[int, int | None] = field(default_factory=dict)  # id(sequence) → its reported seed
    seqs_done: int = 0

    def seed_of(self, seq: Sequence) -> int | None:
        return self.seeds.get(id(seq), self.seed)

    def on_token(self, seq: Sequence, index: int, last: bool) -> float:
        if last:
            assert self.sim is not None
            return self.sim.finish(self, seq)
        if self.stream:
            token_id = seq.token_ids[index]
            data = self.cache.get(token_id)
            if data is None:
                assert self.sim is not None
                data = self.sim.render.token_chunk(self.kind, token_id, self.alternatives)
                self.cache[token_id] = data
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
                eager_prefill=config.eager_prefill,
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
            ("GET", wire.ROUTE_DOCS): self.docs_redirect,
            ("GET", wire.ROUTE_DOCS + "/"): self.docs_page,
            ("GET", wire.ROUTE_OPENAPI): self.openapi,
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
        if req.method == "OPTIONS":
            # tower-http's CorsLayer answers every OPTIONS request itself, on any path (cors/mod.rs:679-690
            # @tower-http-0.6.1): 200, no body, no content-type
            conn.send(200, b"", None, wire.CORS_PREFLIGHT_HEADERS)
            return
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

    def docs_redirect(self, conn: Connection, req: Request) -> None:
        # utoipa-swagger-ui 6.0.0 src/axum.rs:48-53: `/docs` → axum `Redirect::to("/docs/")` (303)
        conn.send(303, b"", None, {"location": wire.ROUTE_DOCS + "/"})

    def docs_page(self, conn: Connection, req: Request) -> None:
        conn.send(200, swagger_page().encode(), "text/html")

    def openapi(self, conn: Connection, req: Request) -> None:
        self._send_json(conn, 200, openapi_document(self.config.model_id))

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
            return (NATIVE if stream else COMPAT_LIST), inputs, params, stream, None, None
        if route == wire.ROUTE_GENERATE:
            inputs, params, _ = wire.parse_generate_body(body, lenient=lenient)
            return NATIVE, inputs, params, False, None, None
        if route == wire.ROUTE_GENERATE_STREAM:
            inputs, params, _ = wire.parse_generate_body(body, lenient=lenient)
            return NATIVE, inputs, params, True, None, None
        if route == wire.ROUTE_COMPLETIONS:
            prompt, params, stream = wire.parse_completion_body(body, self.config.model_id, lenient=lenient)
            return COMPLETION, prompt, params, stream, None, None
        chat = wire.parse_chat_request(body, self.config.model_id, lenient=lenient)
        inputs = "\n".join(m.content for m in chat.messages)
        return CHAT, inputs, chat.params, chat.stream, chat.messages, chat

    def _response_headers(self, job: Job) -> dict[str, str]:
        headers = {wire.H_COMPUTE_TYPE: wire.COMPUTE_TYPE, wire.H_COMPUTE_CHARACTERS: str(len(job.inputs))}
        if job.stream:
            headers[wire.H_ACCEL_BUFFERING] = "no"
        headers[wire.H_MODEL_ID] = self.config.model_id
        # server.rs:831-843 / 1001-1013 @a7394ba3: every id of the (merged) adapter, joined by ","
        adapter_ids = wire.adapter_header_id(job.params)
        if adapter_ids:
            headers[wire.H_ADAPTER_ID] = adapter_ids
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
        chat = parsed[5]
        assert isinstance(chat, wire.ChatRequest)
        try:
            # `try_into_generate` runs before any streaming starts: its errors are plain 422s on every route
            plan = wire.plan_tools(chat)
        except wire.LoraxError as err:
            self._send_error(conn, err)
            return
        if plan.prompt_suffix is not None and messages:
            # infer.rs:109-129: the tools and the tool prompt go at the end of the last message
            last = messages[-1]
            messages = [*messages[:-1], wire.ChatMessageIn(last.role, last.content + plan.prompt_suffix)]
        parsed = (*parsed[:4], messages, plan.functions)  # from here on: the tool grammar's functions
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
        kind, inputs, params, stream, _, functions = parsed
        alternatives = params.return_k_alternatives or 0
        job = Job(
            kind=kind,
            stream=stream,
            conn=conn,
            params=params,
            inputs=inputs,
            arrival=req.arrival,
            headers={},
            seed=self._seed(params),
            sim=self,
            # alternatives make a token's event differ per request: such a job keeps its own chunk cache
            cache={} if alternatives > 0 else self.render.chunk_caches.get(kind, {}),
            alternatives=max(alternatives, 0),
        )
        if functions is not None:
            job.grammar, job.using_tools = ("tools", functions), True
        elif params.response_format is not None and params.response_format.get("schema") is not None:
            # validation.rs:369-373: a response_format's schema constrains the output (outlines)
            job.grammar = ("schema", params.response_format["schema"])
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

    @staticmethod
    def _seed(params: wire.GenerateParams) -> int | None:
        """The seed `details` reports: the request's, else a random one (validation.rs:360-369 @a7394ba3),
        shown only when the shard samples (`wire.samples`)."""
        if not wire.samples(params):
            return None
        return params.seed if params.seed is not None else uuid.uuid4().int & (2**64 - 1)

    def _admit(self, job: Job, route: str, req: Request, prompt_ids: list[int] | None) -> None:
        """Concurrency slot, validation and tokenization (LoRAX order), then hand over to the engine."""
        cfg, params = self.config, job.params
        # generate_stream_with_callback refuses these before it asks for a concurrency permit
        if job.stream and (params.best_of if params.best_of is not None else 1) != 1:
            raise wire.validation_error("`best_of` != 1 is not supported when streaming tokens")
        if job.stream and params.decoder_input_details:
            raise wire.validation_error(
                "`decoder_input_details` == true is not supported when streaming tokens"
            )
        if params.best_of is not None and params.best_of > 1 and not job.stream:
            # server.rs:689-694 → infer.rs:1000-1019: best_of generations, each with its own permit
            # (validate_best_of runs first, in validate_params below)
            job.slots = params.best_of if params.best_of <= cfg.limits.max_best_of else 1
        if self.in_flight + job.slots > cfg.max_concurrent_requests:
            raise wire.overloaded_error()
        self.in_flight += job.slots
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
        request_id = req.headers.get(wire.H_REQUEST_ID) or uuid.uuid4().hex
        for variant in range(job.slots):
            if variant:  # each generation of a best-of request is validated again (and counted)
                self.metrics.observe("lorax_request_input_length", float(len(ids)))
                self.metrics.observe("lorax_request_max_new_tokens", float(max_new))
            token_ids, finish = self._plan_output(job, max_new, variant)
            seq = Sequence(
                request_id=request_id,
                route=route,
                adapter_id=wire.adapter_key(params),
                input_length=len(ids),
                max_new_tokens=max_new,
                token_ids=token_ids,
                finish_reason=finish,
                sink=job,
                arrival=job.arrival,
                adapter_source=params.adapter_source or cfg.default_adapter_source,
            )
            job.seqs.append(seq)
            if variant:  # the extra generations sample with seeds of their own
                job.seeds[id(seq)] = self._seed(wire.GenerateParams(do_sample=True))
        job.seq = job.seqs[0]
        if job.stream:
            job.final_chunk = self.render.final_chunk(job, job.seq)
        job.conn.on_close = lambda: self._client_gone(job, job.seq)
        for seq in job.seqs:
            self.engine.submit(seq)

    def _plan_output(self, job: Job, max_new: int, variant: int = 0) -> tuple[list[int], str]:
        """The tokens this request will produce, then LoRAX's stopping rule applied to them."""
        params = job.params
        adapter = wire.adapter_header_id(params) or None
        eos = self.vocab.eos_id
        if job.grammar is not None:
            # grammar-constrained: the JSON text's tokens, then EOS (outlines allows nothing else after it)
            ids = [*self.vocab.encode(self._grammar_text(job, adapter, variant), False), eos]
            if params.ignore_eos_token and len(ids) < max_new:
                ids += [eos] * (max_new - len(ids))
        else:
            natural = natural_length(self.config.seed, adapter, job.inputs, variant)
            if params.max_new_tokens is None and not params.ignore_eos_token and natural < max_new:
                ids = [*expected_token_ids(self.vocab, self.config.seed, adapter, job.inputs, natural - 1,
                                           variant), eos]  # fmt: skip
            else:
                ids = expected_token_ids(self.vocab, self.config.seed, adapter, job.inputs, max_new, variant)
        return self._stopping(ids, max_new, params)

    def _stopping(self, ids: list[int], max_new: int, params: wire.GenerateParams) -> tuple[list[int], str]:
        """`StoppingCriteria.__call__` (server/lorax_server/utils/tokens.py:190-211 @a7394ba3), per token in
        this order: the length limit, then EOS (unless ignored), then the stop sequences on the text so far
        (`.*{stop}$`, tokens.py:151-158) — so a stop sequence on the last allowed token reports `length`."""
        eos = self.vocab.eos_id
        text = ""
        for i, tid in enumerate(ids):
            if i + 1 >= max_new:
                return ids[: i + 1], wire.FINISH_LENGTH
            if tid == eos and not params.ignore_eos_token:
                return ids[: i + 1], wire.FINISH_EOS
            if params.stop:
                text += self.vocab.token_text(tid)
                if any(s == "" or text.endswith(s) or text.endswith(s + "\n") for s in params.stop):
                    return ids[: i + 1], wire.FINISH_STOP
        return ids, wire.FINISH_LENGTH

    def _grammar_text(self, job: Job, adapter: str | None, variant: int) -> str:
        """The JSON a constrained answer holds: a tool call `{"function": {"_name": …, …}}` (the grammar of
        tool_grammar.rs:104-117 @a7394ba3: one of the allowed functions), or a value of the schema."""
        assert job.grammar is not None
        rng = random.Random(output_seed(self.config.seed, adapter, job.inputs, variant))
        kind, spec = job.grammar
        if kind == "tools":
            function = rng.choice(spec)["function"]
            value: Any = {"function": sample(wire.grammar_schema(function), rng)}
        else:
            value = sample(spec, rng)
        return json.dumps(value, ensure_ascii=True)

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
            self.in_flight -= job.slots

    def _client_gone(self, job: Job, seq: Sequence | None = None) -> None:
        if job.finished:
            return
        self.metrics.inc("lorax_request_failure", err="dropped")
        for other in job.seqs:
            self.engine.cancel(other)
        if seq is not None:
            seq.end = time.time()
            self._write_trace(seq.request_id, seq.route, job, seq, 200 if job.stream else 499, "dropped")
        self._release(job)

    # ------------------------------------------------------------------ Sink (engine callbacks)
    def seq_error(self, job: Job, seq: Sequence, err: wire.LoraxError) -> None:
        if job.finished:
            return
        self.metrics.inc("lorax_request_failure", err=wire.FAILURE_LABEL.get(err.error_type, "bad_request"))
        self._release(job)
        for other in job.seqs:  # best_of: try_join_all drops the other generations on the first error
            if other is not seq:
                self.engine.cancel(other)
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
        others: list[Sequence] | None = None
        if len(job.seqs) > 1:
            job.seqs_done += 1
            if job.seqs_done < len(job.seqs):
                return _now()  # best_of: the response waits for every generation
            seq, others = self._best_first(job.seqs)
        now = time.time()
        # `sent` is taken just before the bytes go to the socket (the trace contract), not after the write
        if job.stream:
            final = job.final_chunk or self.render.final_chunk(job, seq)
            self._release(job)
            sent = time.time()
            job.conn.end_stream(final)
        else:
            try:
                body = self.render.full_response(job, seq, now, others)
            except wire.LoraxError as err:  # a tool call that did not parse (e.g. cut by max_tokens)
                self._release(job)
                sent = time.time()
                self._send_error(job.conn, err)
                self.pump.defer(self._account, seq, job, sent, err)
                return sent
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

    @staticmethod
    def _best_first(seqs: list[Sequence]) -> tuple[Sequence, list[Sequence]]:
        """infer.rs:1021-1041 @a7394ba3: the sequence with the highest mean token logprob (the first on a
        tie) is the answer; the others follow in their original order."""
        best, best_score = 0, -math.inf
        for i, seq in enumerate(seqs):
            score = sum(logprob(t) for t in seq.token_ids) / max(len(seq.token_ids), 1)
            if score > best_score:
                best, best_score = i, score
        return seqs[best], [s for i, s in enumerate(seqs) if i != best]

    def _account(self, seq: Sequence, job: Job, end: float, err: wire.LoraxError | None = None) -> None:
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
        # Deferred: the engine has appended the last token's time by now. A chat answer whose tool call did
        # not parse counted as a success above (generate() succeeded) but reached the client as a 422.
        status, error_type = (err.status, err.error_type) if err is not None else (200, None)
        self._write_trace(seq.request_id, seq.route, job, seq, status, error_type, end_override=end)

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
                "adapter_id": wire.adapter_header_id(job.params) or None,
                "arrival": job.arrival,
                "admitted": seq.admitted if seq is not None else None,
                "first_token": token_times[0] if token_times else None,
                "token_times": token_times,
                "token_steps": list(seq.token_steps) if seq is not None else [],
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


# (kind, inputs, params, stream, chat messages, extra): `extra` is the ChatRequest as parsed, then the tool
# grammar's functions (None: no tool call) once `generation` has planned the tools.
Parsed = tuple[str, str, wire.GenerateParams, bool, list[wire.ChatMessageIn] | None, Any]
