"""End to end with a real Prometheus: it scrapes simulators on loopback while a bounded load drives them; each
fault injected into its own simulator makes its alert go pending, then firing, then clear after recovery; a
healthy simulator raises nothing; every dashboard panel's query returns data; the chart's KEDA query rises.

Windows are shortened by a parameter, not rewritten by hand: the rules are the chart's file passed through
`rules.scaled(SCALE)` (1/30: the production windows assume a 30 s scrape, this Prometheus scrapes and
evaluates every second), so `for: 3m` becomes 6 s and `rate(...[5m])` becomes `rate(...[10s])`. Production
uses the file as is. The scenarios run side by side (one simulator each): the module takes a few minutes.

Set LORAXKIT_OBSERVABILITY_DOCS=1 to also write docs/observability-dashboard.png and the measured timeline
docs/observability-e2e.json from this run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from prom_helpers import PROMETHEUS, PrometheusServer

from loraxkit.chart.render import render
from loraxkit.loadtest import alerts as harness_alerts
from loraxkit.observability import dashboard, rules
from loraxkit.observability.plot import grafana_to_promql, plot_panels
from loraxkit.observability.promapi import PromAPI
from loraxkit.sim.process import SimulatorProcess

pytestmark = [
    pytest.mark.skipif(PROMETHEUS is None, reason="prometheus not installed (apt-get install prometheus)"),
    pytest.mark.timeout(900),
]

SCALE = 1 / 30  # 30 s production scrape -> 1 s here
RATE_INTERVAL = "4s"  # what Grafana's $__rate_interval is at a 1 s scrape (4 x scrape interval)
WARMUP_S = 20.0  # healthy traffic before any fault: baselines for rates, and the quiet-before check
PHASE_TIMEOUT_S = 180.0  # liveness bound per phase (pending/firing, clearing); not a speed assertion
CLEAR_HOLD_S = 15.0  # an alert counts as cleared once it stayed inactive this long
HARD_STOP_S = 600.0  # the load stops by itself after this, whatever happens
REPO = Path(__file__).resolve().parents[2]
HARNESS_SECONDS = 75  # the load harness drives the "fail" simulator across its fault, then writes its report
FAST = ("--profile", "synthetic", "--decode-ms", "10", "--prefill-ms", "5", "--adapter-load-ms", "20",
        "--log-level", "WARNING")  # fmt: skip


def base(_worker: int, _n: int) -> str | None:
    return None


def half_broken(worker: int, n: int) -> str | None:
    # worker 0 asks for an adapter not loaded yet at every request (once loaded, an adapter stays loaded)
    return f"broken/sql-{n}" if worker == 0 else None


def fresh_slow_adapter(worker: int, n: int) -> str | None:
    return f"slow/w{worker}-{n}"  # every request needs an adapter load


@dataclass
class Scenario:
    name: str
    alerts: tuple[str, ...]
    fault: dict[str, Any] | None = None
    sim_args: tuple[str, ...] = ()
    workers: int = 2
    burst_workers: int = 0  # a burst of extra load is the fault (queue growth, 429s); healing stops it
    adapter: Callable[[int, int], str | None] = base
    tokens: int = 24
    burst_tokens: int = 24
    namespace: str = "e2e"
    service: str = ""
    restart_to_heal: bool = False

    def __post_init__(self) -> None:
        self.service = self.service or self.name


SCENARIOS = [
    Scenario("baseline", ()),
    Scenario("hang", ("LoraxGenerationHung",), {"hang": True}),
    Scenario("fail", ("LoraxHighFailureRatio",), {"fail_ratio": 0.5}),
    Scenario("adapter", ("LoraxAdapterLoadFailures",), {"adapter_fail": ["broken/*"]}, adapter=half_broken),
    Scenario("overload", ("LoraxOverloaded",), sim_args=("--max-concurrent-requests", "1"), workers=1,
             burst_workers=3),
    # The chart's KEDA query selects namespace "lorax", service "lorax" (release "lorax"): this simulator.
    Scenario("backlog", ("LoraxQueueBacklog",), workers=1, burst_workers=6, burst_tokens=400,
             sim_args=("--max-total-tokens", "512", "--max-input-length", "256",
                       "--max-batch-total-tokens", "528", "--max-batch-prefill-tokens", "256"),
             namespace="lorax", service="lorax"),
    # Burn-rate alerts weigh bad requests against all requests of the long window: light traffic before the
    # fault (one worker) and more during it keep the time to fire short.
    Scenario("slowdecode", ("LoraxTPOTBudgetBurnFast", "LoraxTPOTBudgetBurnSlow"), {"decode_factor": 20},
             workers=1, burst_workers=3),
    Scenario("slowadapter", ("LoraxQueueTimeBudgetBurnFast", "LoraxQueueTimeBudgetBurnSlow"),
             {"adapter_slow": ["slow/*"], "adapter_slow_ms": 3000}, workers=1, burst_workers=3,
             adapter=fresh_slow_adapter),
    Scenario("exit", ("LoraxDown",), {"exit_code": 1}, workers=1, restart_to_heal=True),
]  # fmt: skip


class Load:
    """Closed-loop workers: POST /generate until stopped (bounded: they stop by themselves at HARD_STOP_S)."""

    def __init__(
        self, url: Callable[[], str], workers: int, adapter: Callable[[int, int], str | None], tokens: int
    ):
        self.stop = threading.Event()
        self.sent = 0
        self._deadline = time.monotonic() + HARD_STOP_S
        self._threads = [
            threading.Thread(target=self._loop, args=(i, url, adapter, tokens), daemon=True)
            for i in range(workers)
        ]
        for t in self._threads:
            t.start()

    def _loop(
        self, worker: int, url: Callable[[], str], adapter: Callable[[int, int], str | None], tokens: int
    ) -> None:
        n = 0
        with httpx.Client(timeout=120) as client:
            while not self.stop.is_set() and time.monotonic() < self._deadline:
                params: dict[str, Any] = {"max_new_tokens": tokens}
                if (adapter_id := adapter(worker, n)) is not None:
                    params["adapter_id"] = adapter_id
                n += 1
                try:
                    resp = client.post(
                        url() + "/generate", json={"inputs": f"Tell me {n}", "parameters": params}
                    )
                except httpx.HTTPError:
                    self.stop.wait(0.2)  # the server is down (exit fault): retry like a client would
                    continue
                self.sent += 1
                if resp.status_code != 200:
                    self.stop.wait(0.05)  # failures come back at once: do not spin

    def close(self) -> None:
        self.stop.set()
        for t in self._threads:
            t.join(timeout=130)


@dataclass
class Timeline:
    scenario: str
    quiet_before: list[str] = field(default_factory=list)
    injected: float = 0.0
    pending: dict[str, float] = field(default_factory=dict)
    firing: dict[str, float] = field(default_factory=dict)
    healed: float = 0.0
    cleared: dict[str, float] = field(default_factory=dict)

    def as_row(self) -> dict[str, Any]:
        def rel(t: dict[str, float], since: float) -> dict[str, float]:
            return {k: round(v - since, 1) for k, v in t.items()}

        return {
            "scenario": self.scenario,
            "pending_after_s": rel(self.pending, self.injected),
            "firing_after_s": rel(self.firing, self.injected),
            "cleared_after_heal_s": rel(self.cleared, self.healed),
        }


@dataclass
class Run:
    api: PromAPI
    prom_url: str
    start: float
    end: float
    timelines: dict[str, Timeline]
    keda_query: str
    burst_started: float
    png: Path
    harness_report: Path
    harness_output: str


class Sim:
    """A scenario's simulator; healing an exit starts a new one on the same port (a container restart)."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.proc = SimulatorProcess(*FAST, *scenario.sim_args, startup_timeout=120)
        self.port = self.proc.port

    def url(self) -> str:
        return self.proc.base_url

    def restart(self) -> None:
        self.proc.__exit__(None, None, None)
        proc = SimulatorProcess(*FAST, *self.scenario.sim_args, startup_timeout=120)
        proc.port, proc.base_url = self.port, f"http://127.0.0.1:{self.port}"
        self.proc = proc.__enter__()


def _active(api: PromAPI, service: str) -> dict[str, str]:
    return {
        a["labels"]["alertname"]: a["state"] for a in api.alerts() if a["labels"].get("service") == service
    }


def _start_harness(host: str, prom_url: str, out: Path) -> subprocess.Popen[str]:
    """The project's Locust harness, headless, bounded (-t), reporting the alerts from this Prometheus."""
    cmd = [sys.executable, "-m", "locust", "-f", str(REPO / "loadtest"), "--host", host, "--headless",
           "-u", "2", "-r", "2", "-t", f"{HARNESS_SECONDS}s", "--stop-timeout", "10", "--base-share", "1",
           "--input-tokens", "32", "--output-tokens", "24", "--report-dir", str(out), "--only-summary",
           "--progress-interval", "0", "--prometheus-url", prom_url]  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    pipe, merged = subprocess.PIPE, subprocess.STDOUT
    return subprocess.Popen(cmd, cwd=out, stdout=pipe, stderr=merged, text=True, start_new_session=True)


def _drive(scn: Scenario, sim: Sim, load: Load, api: PromAPI, burst: list[Load]) -> Timeline:
    tl = Timeline(scn.name)
    # firing before the fault fails the test; pending blips are tolerated (a starved machine misses scrapes)
    tl.quiet_before = sorted(name for name, state in _active(api, scn.service).items() if state == "firing")
    tl.injected = time.time()
    if scn.fault is not None:
        httpx.post(sim.url() + "/sim/faults", json=scn.fault, timeout=10).raise_for_status()
    if scn.burst_workers:
        burst.append(Load(sim.url, scn.burst_workers, scn.adapter, scn.burst_tokens))
    deadline = time.monotonic() + PHASE_TIMEOUT_S
    while time.monotonic() < deadline and set(tl.firing) != set(scn.alerts):
        now = time.time()
        for name, state in _active(api, scn.service).items():
            if name in scn.alerts:
                tl.pending.setdefault(name, now)
                if state == "firing":
                    tl.firing.setdefault(name, now)
        time.sleep(0.5)
    tl.healed = time.time()
    if scn.restart_to_heal:
        sim.restart()
    elif scn.fault is not None:
        httpx.delete(sim.url() + "/sim/faults", timeout=10).raise_for_status()
    for b in burst:
        b.stop.set()
    deadline = time.monotonic() + PHASE_TIMEOUT_S
    # Cleared = the start of an inactive stretch that lasted CLEAR_HOLD_S: requests queued during the fault
    # finish after healing and can make a burn-rate alert go pending/firing once more on a loaded machine.
    while time.monotonic() < deadline:
        active, now = _active(api, scn.service), time.time()
        for name in tl.firing:
            if name in active:
                tl.cleared.pop(name, None)
            else:
                tl.cleared.setdefault(name, now)
        if set(tl.cleared) == set(tl.firing) and all(now - t >= CLEAR_HOLD_S for t in tl.cleared.values()):
            break
        time.sleep(0.5)
    return tl


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    tmp = tmp_path_factory.mktemp("e2e-prom")
    scaled = rules.dump(rules.scaled(SCALE), tmp / "lorax-rules.scaled.yaml")
    sims = {s.name: Sim(s) for s in SCENARIOS}
    targets = {
        f"127.0.0.1:{sim.port}": {"namespace": s.namespace, "service": s.service}
        for s, sim in ((s, sims[s.name]) for s in SCENARIOS)
    }
    chart_values = {
        "keda": {"enabled": True, "serverAddress": "http://prometheus:9090"},
        "metrics": {"serviceMonitor": {"enabled": True}},  # the default KEDA query reads what it scrapes
    }
    docs = render(chart_values, namespace="lorax", api_versions=["monitoring.coreos.com/v1/ServiceMonitor"])
    keda = next(d for d in docs if d["kind"] == "ScaledObject")
    keda_query = keda["spec"]["triggers"][0]["metadata"]["query"]
    loads: list[Load] = []
    bursts: dict[str, list[Load]] = {s.name: [] for s in SCENARIOS}
    with PrometheusServer(targets, [scaled]) as prom, ThreadPoolExecutor(len(SCENARIOS)) as pool:
        try:
            list(pool.map(lambda sim: sim.proc.__enter__(), sims.values()))
            start = time.time()
            harness = _start_harness(sims["fail"].url(), prom.url, tmp / "harness-report")
            for s in SCENARIOS:
                loads.append(Load(sims[s.name].url, s.workers, s.adapter, s.tokens))
            time.sleep(WARMUP_S)
            burst_started = time.time()
            futures = {
                s.name: pool.submit(_drive, s, sims[s.name], loads[i], prom.api, bursts[s.name])
                for i, s in enumerate(SCENARIOS)
                if s.alerts
            }
            timelines = {name: f.result() for name, f in futures.items()}
            try:
                harness_output, _ = harness.communicate(timeout=HARNESS_SECONDS + 120)
            except subprocess.TimeoutExpired:
                os.killpg(harness.pid, 9)
                harness_output, _ = harness.communicate()
            time.sleep(3)  # the healthy tail: recovery shows in the panels too
            end = time.time()
        finally:
            for load in loads + [b for bs in bursts.values() for b in bs]:
                load.stop.set()
            for load in loads + [b for bs in bursts.values() for b in bs]:
                load.close()
            for sim in sims.values():
                sim.proc.__exit__(None, None, None)
        title = "LoRAX dashboard panels, from the end-to-end test's Prometheus (faults injected)"
        marks = {"faults injected": burst_started}
        png = plot_panels(prom.api, start, end, tmp / "panels.png", 2.0, RATE_INTERVAL, title=title,
                          marks=marks)  # fmt: skip
        if os.environ.get("LORAXKIT_OBSERVABILITY_DOCS"):
            (REPO / "docs" / "observability-dashboard.png").write_bytes(png.read_bytes())
            rows = [timelines[s.name].as_row() for s in SCENARIOS if s.alerts]
            (REPO / "docs" / "observability-e2e.json").write_text(json.dumps(rows, indent=1) + "\n")
        yield Run(prom.api, prom.url, start, end, timelines, keda_query, burst_started, png,
                  tmp / "harness-report", harness_output)  # fmt: skip


def _alert_samples(run: Run, alert: str, service: str, state: str) -> list[float]:
    series = run.api.query_range(
        f'ALERTS{{alertname="{alert}", service="{service}", alertstate="{state}"}}', run.start, run.end, 1.0
    )
    return sorted(t for s in series for t, _ in s.points)


@pytest.mark.parametrize("scenario", [s for s in SCENARIOS if s.alerts], ids=lambda s: s.name)
def test_fault_alert_goes_pending_then_firing_then_clears(run: Run, scenario: Scenario) -> None:
    tl = run.timelines[scenario.name]
    assert tl.quiet_before == [], f"alerts firing on {scenario.service} before the fault: {tl.quiet_before}"
    for alert in scenario.alerts:
        assert alert in tl.firing, f"{alert} did not fire within {PHASE_TIMEOUT_S:.0f} s of the fault ({tl})"
        firing = [t for t in _alert_samples(run, alert, scenario.service, "firing") if t >= tl.injected]
        assert firing, f"{alert}: Prometheus recorded no firing sample after the fault"
        pending = _alert_samples(run, alert, scenario.service, "pending")
        pending = [t for t in pending if tl.injected - 1 <= t < firing[0]]
        assert pending, f"{alert} was not pending between the fault and firing"
        assert alert in tl.cleared, f"{alert} still active {PHASE_TIMEOUT_S:.0f} s after recovery"
        assert firing[-1] < tl.cleared[alert] + 2.0


def test_healthy_simulator_fires_no_alert(run: Run) -> None:
    # Pending blips are tolerated: on a starved machine a scrape can miss and the 1 s-scaled windows notice.
    series = run.api.query_range('ALERTS{service="baseline", alertstate="firing"}', run.start, run.end, 1.0)
    assert series == [], [s.labels for s in series]
    # ... though it was scraped and served the whole time
    served = run.api.query(
        f'increase(lorax_request_success{{service="baseline"}}[{int(run.end - run.start)}s])'
    )
    assert served and served[0].points[0][1] > 50


def test_every_dashboard_panel_query_returns_data(run: Run) -> None:
    empty = []
    for panel in dashboard.panels():
        for query in panel.queries:
            expr = grafana_to_promql(query.expr, RATE_INTERVAL)
            result = run.api.query_range(expr, run.start, run.end, 2.0)
            if panel.gpu:
                assert result == [], "no DCGM exporter runs here"  # the query is valid PromQL all the same
            elif query.absent_in_sim:
                continue
            elif not any(v == v for s in result for _, v in s.points):  # NaN-only counts as no data
                empty.append(f"{panel.title}: {expr}")
    assert empty == [], "panel queries without data:\n" + "\n".join(empty)


def test_keda_scaledobject_query_rises_under_load(run: Run) -> None:
    assert run.keda_query == 'sum(lorax_queue_length{namespace="lorax",service="lorax"})'
    series = run.api.query_range(run.keda_query, run.start, run.end, 1.0)
    assert series, "the chart's KEDA query returns nothing"
    before = [v for t, v in series[0].points if t < run.burst_started]
    during = [v for t, v in series[0].points if run.burst_started + 5 < t < run.timelines["backlog"].healed]
    assert before and max(before) <= 1.0, before
    assert during and max(during) >= 5.0, f"queue under the burst: {during}"  # the chart's default threshold


def test_harness_alert_section_lists_what_fired(run: Run) -> None:
    fired = harness_alerts.fired_alerts(run.prom_url, run.start, run.end)
    names = {(a.name, a.labels.get("service")) for a in fired}
    for scenario in SCENARIOS:
        for alert in scenario.alerts:
            assert (alert, scenario.service) in names
    assert not any(service == "baseline" for _, service in names)
    text = harness_alerts.markdown(fired)
    assert "LoraxGenerationHung" in text and "| alert |" in text


def test_load_harness_report_shows_the_alert_that_fired_during_its_run(run: Run) -> None:
    report_json = run.harness_report / "report.json"
    assert report_json.exists(), run.harness_output[-3000:]
    entry = json.loads(report_json.read_text())["alerts"]
    assert entry["prometheus_url"] == run.prom_url and "error" not in entry
    fired = {(a["alert"], a["labels"].get("service")) for a in entry["fired"]}
    assert ("LoraxHighFailureRatio", "fail") in fired, entry
    markdown = (run.harness_report / "report.md").read_text()
    assert "## Alerts during the run" in markdown and "| LoraxHighFailureRatio | critical |" in markdown


def test_dashboard_picture_is_drawn_from_the_run(run: Run) -> None:
    assert run.png.stat().st_size > 20_000
