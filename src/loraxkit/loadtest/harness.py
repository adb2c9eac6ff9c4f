"""The Locust side of the harness: per-process run state, event wiring, worker -> master aggregation, report.

Roles: `local` (one process), `master` and `worker` (`--processes N` or `--master/--worker`). Workers keep raw
records and ship them with every stats report (`events.report_to_master`, incl. the final one on quit); the
master merges them (`events.worker_report`) and computes exact percentiles over all of them at the end.
Nothing is global: the state lives on the Locust Environment as `environment.loraxkit`.
"""

from __future__ import annotations

import gc
import inspect
import json
import logging
import socket
import sys
import uuid
from importlib.metadata import version
from pathlib import Path
from typing import Any

import gevent
import gevent.event
from locust import events as locust_events
from locust import runners as locust_runners
from locust.contrib.fasthttp import FastResponse
from locust.env import Environment
from locust.runners import STATE_INIT, STATE_STOPPED, MasterRunner, WorkerRunner

from loraxkit.loadtest import alerts
from loraxkit.loadtest.analysis import analyse
from loraxkit.loadtest.metrics import CUT_AT_STOP, RequestRecord, Slos, now, summarize
from loraxkit.loadtest.options import add_arguments, option_names, parse_rates, workload_from_options
from loraxkit.loadtest.poolcheck import install_pool_check
from loraxkit.loadtest.report import write_report
from loraxkit.loadtest.schedule import Arrival, ScheduleError, WorkerSchedule
from loraxkit.loadtest.scrape import Scrape
from loraxkit.loadtest.selfcheck import PROBE_INTERVAL_S, self_check
from loraxkit.loadtest.shapes import StagedShape
from loraxkit.loadtest.slo import configured_gates, evaluate_run, exit_code
from loraxkit.loadtest.sockstamp import (
    SUPPORTED,
    GeventHttpClientChanged,
    ReadLoop,
    check_geventhttpclient,
    keep_kernel_timestamps_on,
)
from loraxkit.loadtest.stages import ShapeError, Stage, stage_windows, user_stages
from loraxkit.loadtest.stream import ERR_STALLED
from loraxkit.loadtest.summary import terminal_summary
from loraxkit.loadtest.txstamp import TxStampsUnavailable, check_tx_stamps, install_tx_stamps
from loraxkit.loadtest.workload import PlannedRequest, Workload, WorkloadError

log = logging.getLogger("loraxkit.loadtest")
SETUP_MESSAGE = "loraxkit_setup"
FLUSH_MESSAGE = "loraxkit_flush"  # master -> workers: stop your users and send every record now
FINAL_MESSAGE = "loraxkit_final"  # worker -> master: the last records
HELLO_MESSAGE = "loraxkit_hello"  # master -> workers at each test start: answer when you can
READY_MESSAGE = "loraxkit_ready"  # worker -> master: answered once start-up loading is done
REPORT_KEY = "loraxkit"


class Harness:
    """Per-process state of one run, attached to the Locust environment as `environment.loraxkit`."""

    def __init__(self, environment: Environment) -> None:
        self.env = environment
        self.options = environment.parsed_options
        self.records: list[RequestRecord] = []
        self._unshipped: list[RequestRecord] = []
        self.workload: Workload | None = None
        self.worker_index, self.worker_count = 0, 1
        self.run_id = uuid.uuid4().hex[:8]
        self.t0 = 0.0
        self.schedule: WorkerSchedule | None = None
        self._next_index = 0
        self.in_flight = 0
        self.waiting = 0  # open loop: arrivals claimed by a user that waits for their time
        self.worker_in_flight: dict[str, int] = {}
        self.worker_pending: dict[str, int] = {}  # master: each worker's last pending() (see _drained)
        self.shape: StagedShape | None = None
        self.rate_stages: list[Stage] = []
        self.scrape: Scrape | None = None
        self._greenlets: list[gevent.Greenlet] = []
        self._finished = False
        self._flushed: set[str] = set()
        self._stamp_keeper: socket.socket | None = None  # open for the process's life: see sockstamp
        self.read_loop = ReadLoop()  # reads every stream of this process (sockstamp)
        self._users = 0
        self.loop_lags: list[float] = []  # event-loop lateness samples (s), see selfcheck
        self._unshipped_lags: list[float] = []
        self._ready: set[str] = set()  # master: workers that finished loading (READY_MESSAGE)
        self.loaded = gevent.event.Event()  # start-up loading (tokenizer) done in this process
        self.spawned_at: float | None = None  # the first "all users spawned" of this test
        self.stopped_at: float | None = None

    # ------------------------------------------------------------------ roles
    @property
    def role(self) -> str:
        runner = self.env.runner
        if isinstance(runner, MasterRunner):
            return "master"
        if isinstance(runner, WorkerRunner):
            return "worker"
        return "local"

    @property
    def sends_requests(self) -> bool:
        return self.role != "master"

    @property
    def open_loop(self) -> bool:
        return bool(parse_rates(self.options.arrival_rate))

    # ------------------------------------------------------------------ set-up
    def validate(self) -> None:
        """Fail fast on bad options, before any user starts (each error names the option)."""
        self.workload = workload_from_options(self.options)
        rates = parse_rates(self.options.arrival_rate)
        if rates and self.options.shape != "none":
            raise ShapeError("--shape and --arrival-rate are exclusive: a rate sweep is --arrival-rate 1,2,4")
        if len(rates) > 1:
            self.rate_stages = [Stage(i, None, r, self.options.stage_time) for i, r in enumerate(rates)]
        if self.options.shape != "none" and self.shape is None:  # the runner keeps the first instance
            o = self.options
            stages = user_stages(o.shape, o.sweep_users, o.step_users, o.steps, o.stage_time)
            self.shape = StagedShape(stages)

    def install_shape(self) -> None:
        if self.shape is not None and self.role != "worker":
            self.shape.runner = self.env.runner
            self.env.shape_class = self.shape

    def on_setup_message(self, environment: Environment, msg: Any, **_: Any) -> None:
        """Worker: the master's split of the request sequence and the shared schedule start."""
        data = msg.data
        runner = self.env.runner
        self.worker_count = int(data["worker_count"])
        self.worker_index = int(data["indices"].get(runner.client_id, 0))
        self.t0 = float(data["t0"])
        self.run_id = data["run_id"]

    def start(self) -> None:
        self.options = self.env.parsed_options  # the web UI / master may have changed them
        self.records.clear()
        self._unshipped.clear()
        self.loop_lags.clear()
        self._unshipped_lags.clear()
        self._finished = False
        self.spawned_at = self.stopped_at = None
        self.loaded.wait()
        previous = self.workload
        if self.role != "worker":
            self.validate()
            self._wait_for_workers()
            self.t0 = now() + (0.5 if self.role == "master" else 0.05)
            self.run_id = uuid.uuid4().hex[:8]  # request ids stay unique across tests of one session
        else:
            self.workload = workload_from_options(self.options)
        if self.sends_requests:
            self.workload.reuse_source(previous)  # the tokenizer loaded at init, when still the same
            load_source(self.workload)  # now, not inside the first timed request
            if self._stamp_keeper is None:
                self._stamp_keeper = keep_kernel_timestamps_on()
        if self.role == "master":
            self._send_setup()
        if self.sends_requests:
            self._next_index = self.worker_index
            rates = parse_rates(self.options.arrival_rate)
            if rates:
                stage_time = self.options.stage_time if len(rates) > 1 else None
                self.schedule = WorkerSchedule(
                    rates,
                    self.options.arrival_process,
                    stage_time,
                    self.workload.seed,
                    self.worker_index,
                    self.worker_count,
                    self.t0,
                )
            if not self.options.keep_gc:
                gc.collect()
                gc.freeze()  # start-up objects never need scanning again
                gc.set_threshold(100_000, 50, 100)
        if self.sends_requests:
            self._greenlets.append(gevent.spawn(self._loop_probe))
        if self.role != "worker":
            self._start_background()

    def on_hello_message(self, environment: Environment, msg: Any, **_: Any) -> None:
        """Worker: answer the master once start-up loading is done."""
        self.loaded.wait()
        self.env.runner.send_message(READY_MESSAGE, None)

    def on_ready_message(self, environment: Environment, msg: Any, **_: Any) -> None:
        self._ready.add(msg.node_id)

    def _wait_for_workers(self, limit: float = 60.0) -> None:
        """Master: wait until every worker has loaded its tokenizer (seconds on a busy machine), so the
        shared open-loop schedule does not start while a worker cannot send yet."""
        if self.role != "master":
            return
        runner = self.env.runner
        self._ready = set()
        # A worker handles messages only after its init (the tokenizer load) returns: its answer means ready.
        runner.send_message(HELLO_MESSAGE, None)
        deadline = now() + limit
        while now() < deadline and not {c.id for c in runner.clients.all} <= self._ready:
            gevent.sleep(0.05)

    def _send_setup(self) -> None:
        runner = self.env.runner
        ids = sorted(c.id for c in runner.clients.ready) or sorted(c.id for c in runner.clients.all)
        self.worker_count = max(1, len(ids))
        runner.send_message(
            SETUP_MESSAGE,
            {
                "worker_count": self.worker_count,
                "indices": {cid: i for i, cid in enumerate(ids)},
                "t0": self.t0,
                "run_id": self.run_id,
            },
        )

    def _start_background(self) -> None:
        if self.options.progress_interval and self.options.progress_interval > 0:
            self._greenlets.append(gevent.spawn(self._progress_loop))
        if self.options.scrape_metrics:
            url = self.options.metrics_url or (self.env.host or "").rstrip("/") + "/metrics"
            self.scrape = Scrape(url)
            self._greenlets.append(gevent.spawn(self._scrape_loop))
        if self.rate_stages:
            self._greenlets.append(gevent.spawn(self._end_rate_sweep))

    # ------------------------------------------------------------------ the request sequence
    def next_request(self) -> tuple[PlannedRequest, float | None] | None:
        """The next planned request and its intended start (open loop), or None when the schedule is over."""
        assert self.workload is not None
        if self.schedule is None:
            index = self._next_index
            self._next_index += self.worker_count
            return self.workload.request(index), None
        arrival: Arrival | None = self.schedule.claim()
        if arrival is None:
            return None
        return self.workload.request(arrival.index), self.t0 + arrival.offset

    def new_user_index(self) -> int:
        self._users += 1
        return self._users - 1

    def on_spawning_complete(self) -> None:
        if self.spawned_at is None:
            self.spawned_at = now()

    def steady_window(self) -> tuple[float, float] | None:
        """[start, until) of the steady state: --warmup after the last user was spawned, --cooldown before
        the stop."""
        if not self.records:
            return None
        first = min(r.sent for r in self.records)
        spawned = self.spawned_at if self.spawned_at is not None else first
        until = (self.stopped_at or now()) - float(self.options.cooldown or 0.0)
        return max(spawned, first) + float(self.options.warmup or 0.0), until

    def request_id(self, index: int) -> str:
        return f"{self.run_id}-{index}"

    def add(self, record: RequestRecord) -> None:
        self.records.append(record)
        if self.role == "worker":
            self._unshipped.append(record)

    # ------------------------------------------------------------------ worker -> master
    def on_report_to_master(self, client_id: str, data: dict[str, Any]) -> None:
        batch, self._unshipped = self._unshipped, []
        lags, self._unshipped_lags = self._unshipped_lags, []
        data[REPORT_KEY] = {
            "records": [r.to_wire() for r in batch],
            "loop_lags": lags,
            "in_flight": self.in_flight,
            "pending": self.pending(),
        }

    def on_worker_report(self, client_id: str, data: dict[str, Any]) -> None:
        payload = data.get(REPORT_KEY)
        if payload:
            self._ingest(client_id, payload)

    def _ingest(self, client_id: str, payload: dict[str, Any]) -> None:
        self.records.extend(RequestRecord.from_wire(r) for r in payload["records"])
        self.loop_lags.extend(payload.get("loop_lags", []))
        self.worker_in_flight[client_id] = payload["in_flight"]
        if "pending" in payload:
            self.worker_pending[client_id] = payload["pending"]

    def on_flush_message(self, environment: Environment, msg: Any, **_: Any) -> None:
        """Worker: let the users finish (Locust's --stop-timeout), then send everything left."""
        runner = self.env.runner
        if runner.state not in (STATE_STOPPED, STATE_INIT):
            runner.stop()
        batch, self._unshipped = self._unshipped, []
        lags, self._unshipped_lags = self._unshipped_lags, []
        final = {"records": [r.to_wire() for r in batch], "loop_lags": lags, "in_flight": 0}
        runner.send_message(FINAL_MESSAGE, final)

    def on_final_message(self, environment: Environment, msg: Any, **_: Any) -> None:
        self._ingest(msg.node_id, msg.data)
        self._flushed.add(msg.node_id)

    def collect_from_workers(self) -> None:
        """Master, when the test stops: Locust's quit waits only 0.5 s for the workers' last stats, less
        than users take to finish their streams; so ask every worker for its last records and wait."""
        if self.role != "master":
            return
        runner = self.env.runner
        expected = {c.id for c in runner.clients.all}
        self._flushed = set()
        runner.send_message(FLUSH_MESSAGE, None)
        deadline = now() + float(self.env.stop_timeout or 0) + 15.0
        while not expected <= self._flushed and now() < deadline:
            gevent.sleep(0.05)
        missing = expected - self._flushed
        if missing:
            log.warning(
                "loraxkit: no final records from %d worker(s); their last requests are missing", len(missing)
            )

    # ------------------------------------------------------------------ background greenlets
    def _progress_loop(self) -> None:
        interval = self.options.progress_interval
        seen = 0
        while True:
            gevent.sleep(interval)
            fresh = self.records[seen:]
            seen = len(self.records)
            s = summarize(fresh, duration=interval)
            ttft = s["ttft_ms"]
            line = (
                f"[loraxkit] {now() - self.t0:6.0f}s  done {seen} ({s['failed']} failed in the last "
                f"{interval:g}s)  {s['output_tokens_per_s']:.0f} tok/s  TTFT p50/p95 "
                f"{ttft.get('p50', float('nan')):.0f}/{ttft.get('p95', float('nan')):.0f} ms  "
                f"in flight {self._in_flight_total()}"
            )
            if "schedule_lag_ms" in s:
                line += f"  lag p99 {s['schedule_lag_ms']['p99']:.1f} ms"
            print(line, file=sys.stderr, flush=True)

    def _loop_probe(self) -> None:
        """Self-check of the send side: how late the event loop wakes a greenlet that asked for a time."""
        interval = PROBE_INTERVAL_S
        while True:
            due = now() + interval
            gevent.sleep(interval)
            lag = max(0.0, now() - due)
            self.loop_lags.append(lag)
            if self.role == "worker":
                self._unshipped_lags.append(lag)

    def _in_flight_total(self) -> int:
        return self.in_flight + sum(self.worker_in_flight.values())

    def pending(self) -> int:
        """Scheduled arrivals of this process not finished yet: in flight, waiting for their time, or not
        taken by a user yet. Once a rate sweep's schedule is over it only falls: 0 is final."""
        unclaimed = self.schedule.unclaimed if self.schedule is not None else 0
        return self.in_flight + self.waiting + (unclaimed or 0)

    def _pending_total(self) -> int | None:
        """Every process's pending(); None while a worker has not reported one yet."""
        total = self.pending() if self.sends_requests else 0
        if self.role != "master":
            return total
        for client in self.env.runner.clients.all:
            if client.id not in self.worker_pending:
                return None
            total += self.worker_pending[client.id]
        return total

    def _scrape_loop(self) -> None:
        # geventhttpclient (Locust's own client): httpx's pool needs select.epoll, which gevent removes.
        from geventhttpclient import HTTPClient

        assert self.scrape is not None
        client = HTTPClient.from_url(self.scrape.url, connection_timeout=5.0, network_timeout=5.0)
        try:
            while True:
                self.scrape.poll(client)
                gevent.sleep(self.options.scrape_interval)
        finally:
            client.close()

    def _end_rate_sweep(self) -> None:
        """Stop after the last stage once every scheduled arrival was sent and answered, on every process
        (or when --drain-time runs out: then say how many were not)."""
        total = sum(s.duration for s in self.rate_stages)
        gevent.sleep(max(0.0, self.t0 + total - now()))
        deadline = now() + self.options.drain_time
        self.worker_pending.clear()  # reports from before the schedule's end are not final
        pending = self._pending_total()
        while now() < deadline and pending != 0:
            gevent.sleep(0.2)
            pending = self._pending_total()
        if pending:
            log.warning(
                "loraxkit: --drain-time %gs ran out with %d scheduled request(s) not finished (cut or never "
                "sent); a longer --drain-time lets them finish",
                self.options.drain_time,
                pending,
            )
        if self.role == "master":
            gevent.sleep(3.5)  # one more worker report, carrying the last records
        self.env.runner.quit()

    # ------------------------------------------------------------------ the end
    def on_test_stop(self) -> None:
        """Each test's end (also every Stop in the web UI): gather the workers' records, write the report."""
        self.stopped_at = now()
        if self.role == "worker":
            self._stop_greenlets()
        self.collect_from_workers()
        self.finish()

    def finish(self) -> None:
        """Master/local: analyse every record, write the report, set the exit code from the SLO gates."""
        if self._finished or self.role == "worker" or self.workload is None:
            return
        self._finished = True
        self._stop_greenlets()
        report = self.build_report()
        results = self.judge(report)
        paths = write_report(report, self.options.report_dir, results)
        if self.options.save_records:
            self._save_records(Path(self.options.report_dir) / "records.jsonl")
        print(terminal_summary(report, results), file=sys.stderr, flush=True)
        print(f"[loraxkit] report: {paths['html']} {paths['markdown']} {paths['json']}", file=sys.stderr)
        self.env.process_exit_code = exit_code(report, results)

    def judge(self, report: dict[str, Any]) -> list[Any]:
        """Latency gates on the steady state (--gate-on whole: the whole run); errors on the whole run."""
        gates = configured_gates(self.options)
        steady = self.options.gate_on == "steady" and "steady" in report
        figures = report["steady"] if steady else report
        per_adapter = figures["by_adapter"] if self.options.slo_per_adapter else None
        scope = "steady state" if steady else "whole run"
        return evaluate_run(gates, figures["overall"], per_adapter, whole=report["overall"], scope=scope)

    def _stop_greenlets(self) -> None:
        for g in self._greenlets:
            g.kill(block=False)
        self._greenlets.clear()
        self.read_loop.close()

    def build_report(self) -> dict[str, Any]:
        assert self.workload is not None
        o = self.options
        slos = Slos(
            *(None if v is None else v / 1000.0 for v in (o.goodput_ttft, o.goodput_tpot, o.goodput_e2e))
        )
        stages, windows = self._stages()
        report = analyse(
            self.records, slos, stages, windows, o.stage_warmup, o.saturation_gain, self.steady_window()
        )
        runner = self.env.runner
        report.update(
            {
                "tool": "loraxkit loadtest",
                "run_id": self.run_id,
                "host": self.env.host,
                "mode": "open loop " + o.arrival_process if self.open_loop else "closed loop",
                "shape": o.shape,
                "processes": self.worker_count if self.role == "master" else 1,
                # recorded (never dropped): cut off by the harness, or stalled
                "cancelled_at_stop": sum(
                    1 for r in self.records if r.error_type in (CUT_AT_STOP, ERR_STALLED)
                ),
                "client_cpu_warning": bool(
                    getattr(runner, "cpu_warning_emitted", False)
                    or getattr(runner, "worker_cpu_warning_emitted", False)
                ),
                "workload": self.workload.describe(),
                "options": {name: getattr(o, name, None) for name in option_names()},
            }
        )
        if self.scrape is not None:
            report["server_metrics"] = self.scrape.summary()
        report["self_check"] = self_check(self.records, self.loop_lags)
        report["gates_judge"] = "the steady state" if o.gate_on == "steady" else "the whole run"
        report["started"] = min((r.sent for r in self.records), default=None)
        if getattr(o, "prometheus_url", ""):
            report["alerts"] = alerts.report_entry(o.prometheus_url, self.t0)
        return report

    def _stages(self) -> tuple[list[Stage] | None, list[tuple[float, float]] | None]:
        if self.shape is not None and self.shape.started_at is not None:
            return self.shape.stages, stage_windows(self.shape.stages, self.shape.started_at)
        if self.rate_stages:
            return self.rate_stages, stage_windows(self.rate_stages, self.t0)
        return None, None

    def _save_records(self, path: Path) -> None:
        with path.open("w", encoding="utf-8") as handle:
            for r in self.records:
                row = r.to_wire()
                row["token_times"] = list(r.token_times)
                handle.write(json.dumps(row) + "\n")


# ---------------------------------------------------------------------- event wiring
_INSTALLED: set[int] = set()


class _CheapStackInspect:
    """`inspect` for locust.runners whose stack() skips reading source files.

    Runner.stop() calls inspect.stack() only for a debug log line; with source context that walks
    sys.modules and realpath()s every file (getmodule's first call), blocking the event loop ~40 ms
    (measured here) while the streams still in flight are being timed. Without context: microseconds.
    """

    def __getattr__(self, name: str) -> Any:
        return getattr(inspect, name)

    @staticmethod
    def stack(context: int = 1) -> list[inspect.FrameInfo]:
        return inspect.stack(0)

    @staticmethod
    def getframeinfo(frame: Any, context: int = 1) -> inspect.Traceback:
        return inspect.getframeinfo(frame, 0)


def install(events: Any = locust_events) -> None:
    """Register the harness's listeners on Locust's events (idempotent)."""
    if id(events) in _INSTALLED:
        return
    _INSTALLED.add(id(events))
    locust_runners.inspect = _CheapStackInspect()  # type: ignore[attr-defined]
    events.init_command_line_parser.add_listener(add_arguments)
    events.init.add_listener(_on_init)
    events.test_start.add_listener(lambda environment, **_: harness_of(environment).start())
    events.test_stop.add_listener(lambda environment, **_: harness_of(environment).on_test_stop())

    events.quitting.add_listener(lambda environment, **_: harness_of(environment).finish())


def harness_of(environment: Environment) -> Harness:
    return environment.loraxkit  # type: ignore[attr-defined]


def _on_init(environment: Environment, runner: Any = None, **_: Any) -> None:
    harness = Harness(environment)
    environment.loraxkit = harness  # type: ignore[attr-defined]
    environment.events.spawning_complete.add_listener(lambda **_: harness.on_spawning_complete())
    if harness.role != "worker":
        try:
            harness.validate()
        except (WorkloadError, ShapeError, ScheduleError, ValueError) as exc:
            log.error("loraxkit: %s", exc)
            sys.exit(2)
        harness.install_shape()
    if isinstance(runner, WorkerRunner):  # before loading: the message loop runs while the tokenizer loads
        runner.register_message(SETUP_MESSAGE, harness.on_setup_message)
        # concurrent: stopping the users takes up to --stop-timeout; keep the message loop running
        runner.register_message(FLUSH_MESSAGE, harness.on_flush_message, concurrent=True)
        environment.events.report_to_master.add_listener(harness.on_report_to_master)
        runner.register_message(HELLO_MESSAGE, harness.on_hello_message, concurrent=True)
    if isinstance(runner, MasterRunner):
        environment.events.worker_report.add_listener(harness.on_worker_report)
        runner.register_message(FINAL_MESSAGE, harness.on_final_message)
        runner.register_message(READY_MESSAGE, harness.on_ready_message)
    if harness.sends_requests:
        _load_prompts_early(harness)
        try:
            check_stream_reader()  # it uses private internals: fail now, loudly, not on every request
        except GeventHttpClientChanged as exc:
            log.error("loraxkit: %s", exc)
            sys.exit(2)
    harness.loaded.set()
    _default_user_class(environment)


def load_source(workload: Workload) -> None:
    """Load the tokenizer and prompts in a thread: seconds of work on a busy machine, during which a
    worker's heartbeats to the master must go on (else the master drops it as missing)."""
    gevent.get_hub().threadpool.spawn(lambda: workload.source).get()


def _load_prompts_early(harness: Harness) -> None:
    """Load the tokenizer and prompts at start-up: inside the test it would eat into Locust's --run-time."""
    try:
        if harness.workload is None:
            harness.workload = workload_from_options(harness.options)
        load_source(harness.workload)
    except (WorkloadError, ValueError, OSError):
        harness.workload = None  # a worker's own options may be incomplete: the master's come at start
    # gevent's loop caches its clock: after seconds of blocking work, a timer armed next (Locust's
    # --run-time) would count from the stale time and fire that much early.
    gevent.get_hub().loop.update_now()


def check_stream_reader() -> None:
    """geventhttpclient's response internals work with our reader, and Locust still exposes that response;
    then the pool's liveness check is replaced by one that does not switch greenlets (see poolcheck)."""
    check_geventhttpclient()
    try:
        install_pool_check()
    except AttributeError as exc:
        raise GeventHttpClientChanged(
            f"geventhttpclient {version('geventhttpclient')}: {exc}; install the tested range: "
            f"pip install '{SUPPORTED}'"
        ) from exc
    try:
        install_tx_stamps()
        if not check_tx_stamps():
            log.warning("loraxkit: the kernel gives no transmit stamps here: requests are timed from Python")
    except TxStampsUnavailable as exc:
        raise GeventHttpClientChanged(
            f"geventhttpclient {version('geventhttpclient')} / gevent {version('gevent')}: {exc}; install "
            f"the tested range: pip install '{SUPPORTED}'"
        ) from exc
    if not callable(getattr(getattr(locust_runners, "inspect", None), "stack", None)):
        raise GeventHttpClientChanged(  # install() replaces locust.runners.inspect (see _CheapStackInspect)
            f"locust {version('locust')}: locust.runners no longer uses `inspect`; install the tested "
            "range: pip install 'locust>=2.47,<2.48'"
        )
    if not hasattr(FastResponse, "_response"):  # how users.py reaches geventhttpclient's response
        raise GeventHttpClientChanged(
            f"locust {version('locust')}: FastResponse no longer has `_response` (geventhttpclient's "
            "response object the stream reader needs); install the tested range: "
            "pip install 'locust>=2.47,<2.48'"
        )


def _default_user_class(environment: Environment) -> None:
    """With no User class named on the command line, run only the classes marked `default_class`."""
    options = environment.parsed_options
    if options is None or options.user_classes or getattr(options, "class_picker", False):
        return
    defaults = [u for u in environment.user_classes if getattr(u, "default_class", False)]
    if defaults:
        environment.user_classes[:] = defaults


__all__ = ["Harness", "harness_of", "install"]
