"""End to end for the alerts that read kube-state-metrics: LoraxPodRestarting and LoraxPodNotReady.

The loopback control plane (etcd, kube-apiserver, controller-manager, scheduler, KWOK) runs the chart as a
user installs it (`helm install ... -f values/g6e-...yaml`, two replicas). KWOK plays the kubelet: its
`lorax-container-fault` Stage (loraxkit.testcluster.kwok_faults) makes one pod's `lorax` container restart
(restartCount rising) and the other's run without being ready. kube-state-metrics v2.18.0 (go/) watches the
API server and a real Prometheus scrapes it with the chart's rule file, windows scaled by 1/30 as in
test_e2e_prometheus.py (`increase(...[30m])` -> 60 s, `for: 35m` -> 70 s, `for: 1m` -> 2 s). Each alert
goes pending, then firing, on its pod only; it clears after recovery (ready again; no restart for a window).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from ksm_helpers import BUILD_COMMAND, KubeStateMetrics, ksm_binary
from prom_helpers import PROMETHEUS, PrometheusServer

from loraxkit.observability import rules
from loraxkit.observability.promapi import PromAPI
from loraxkit.testcluster.cluster import LoopbackCluster
from loraxkit.testcluster.kwok_faults import CONTAINER, set_lorax_fault

pytestmark = [
    pytest.mark.skipif(PROMETHEUS is None, reason="prometheus not installed (apt-get install prometheus)"),
    pytest.mark.timeout(900),
]

SCALE = 1 / 30  # as test_e2e_prometheus.py: 30 s production scrape -> 1 s here
REPO = Path(__file__).resolve().parents[2]
NAMESPACE = "lorax-pod-alerts"
G6E = REPO / "values" / "g6e-l40s-mistral-7b-instruct-bf16.yaml"
RESTARTING, NOT_READY = "LoraxPodRestarting", "LoraxPodNotReady"
RESTART_GAP_S = 5.0  # a crash loop: the container restarts twice, this far apart
PHASE_TIMEOUT_S = 240.0  # liveness bound per phase; not a speed assertion


@dataclass
class Timeline:
    pod: str
    alert: str
    injected: float = 0.0
    pending: float | None = None
    firing: float | None = None
    healed: float = 0.0
    cleared: float | None = None
    restart_counts: list[int] = field(default_factory=list)  # as the API server showed them
    ready_seen: list[bool] = field(default_factory=list)


@dataclass
class Run:
    api: PromAPI
    start: float
    end: float
    restarting: Timeline
    not_ready: Timeline
    for_s: dict[str, float]
    before: list[dict[str, str]]


def _lorax_status(cluster: LoopbackCluster, pod: str) -> tuple[int, bool]:
    status = cluster.core.read_namespaced_pod(pod, NAMESPACE).status
    found = [c for c in status.container_statuses or [] if c.name == CONTAINER]
    assert found, f"pod {pod} has no {CONTAINER} container status"
    return int(found[0].restart_count), bool(found[0].ready)


def _alert_state(api: PromAPI, alert: str, pod: str) -> str | None:
    for a in api.alerts():
        labels = a["labels"]
        if labels.get("alertname") == alert and labels.get("pod") == pod:
            return str(a["state"])
    return None


def _watch(api: PromAPI, timelines: list[Timeline], until: str) -> None:
    """Poll /api/v1/alerts every 0.5 s until each timeline reached `until` ("firing" or "cleared")."""
    deadline = time.monotonic() + PHASE_TIMEOUT_S
    while time.monotonic() < deadline:
        now = time.time()
        for tl in timelines:
            state = _alert_state(api, tl.alert, tl.pod)
            if until == "firing" and state is not None:
                tl.pending = tl.pending or now
                if state == "firing":
                    tl.firing = tl.firing or now
            if until == "cleared" and state is None:
                tl.cleared = tl.cleared or now
        if all((tl.firing if until == "firing" else tl.cleared) for tl in timelines):
            return
        time.sleep(0.5)


def _wait_for_series(api: PromAPI, pods: list[str]) -> None:
    """Prometheus holds a few samples of both pods' series (an increase needs the 0 before the restart)."""
    deadline = time.monotonic() + PHASE_TIMEOUT_S
    query = (
        f'count_over_time(kube_pod_container_status_restarts_total{{namespace="{NAMESPACE}",'
        f'container="{CONTAINER}"}}[1m]) >= 5'
    )
    while time.monotonic() < deadline:
        seen = {s.labels.get("pod") for s in api.query(query)}
        if seen >= set(pods):
            return
        time.sleep(0.5)
    raise AssertionError(f"Prometheus has no kube-state-metrics series for {pods} after {PHASE_TIMEOUT_S} s")


@pytest.fixture(scope="module")
def run(loopback_cluster: LoopbackCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    if ksm_binary() is None:
        pytest.skip(f"kube-state-metrics not built: `{BUILD_COMMAND}` (needs Go)")
    tmp = tmp_path_factory.mktemp("e2e-pod-alerts")
    scaled = rules.scaled(SCALE)
    for_s = {a["alert"]: rules.seconds(a["for"]) for a in rules.alerts(scaled)}
    rule_file = rules.dump(scaled, tmp / "lorax-rules.scaled.yaml")
    cluster = loopback_cluster
    try:
        cluster.helm("install", "lorax", "charts/lorax", "-n", NAMESPACE, "--create-namespace", "-f",
                     str(G6E), "--set", "replicaCount=2", "--wait", "--timeout", "3m")  # fmt: skip
        pods = sorted(p.pod for p in cluster.placements(NAMESPACE, "app.kubernetes.io/instance=lorax"))
        assert len(pods) == 2, pods
        restarting, not_ready = Timeline(pods[0], RESTARTING), Timeline(pods[1], NOT_READY)
        with KubeStateMetrics(cluster.kubeconfig, NAMESPACE) as ksm:
            job = {"job_name": "kube-state-metrics", "honor_labels": True,  # as kube-prometheus-stack does
                   "static_configs": [{"targets": [ksm.address]}]}  # fmt: skip
            with PrometheusServer({}, [rule_file], extra_jobs=[job]) as prom:
                start = time.time()
                _wait_for_series(prom.api, pods)
                before = [a["labels"] for a in prom.api.alerts()]
                _inject_and_heal(cluster, prom.api, restarting, not_ready)
                end = time.time()
                for tl in (restarting, not_ready):
                    _print_timeline(prom.api, tl, start, end)
                yield Run(prom.api, start, end, restarting, not_ready, for_s, before)
    finally:
        cluster.helm("uninstall", "lorax", "-n", NAMESPACE, "--wait", "--timeout", "2m", check=False)
        cluster.delete_namespace(NAMESPACE)


def _inject_and_heal(
    cluster: LoopbackCluster, api: PromAPI, restarting: Timeline, not_ready: Timeline
) -> None:
    restarting.injected = not_ready.injected = time.time()
    set_lorax_fault(cluster.core, NAMESPACE, not_ready.pod, restarts=0, ready=False)
    set_lorax_fault(cluster.core, NAMESPACE, restarting.pod, restarts=1, ready=True)
    cluster.wait(lambda: _lorax_status(cluster, restarting.pod)[0] == 1, "KWOK: first restart", 60)
    restarting.restart_counts.append(_lorax_status(cluster, restarting.pod)[0])
    time.sleep(RESTART_GAP_S)
    set_lorax_fault(cluster.core, NAMESPACE, restarting.pod, restarts=2, ready=True)
    cluster.wait(lambda: _lorax_status(cluster, restarting.pod)[0] == 2, "KWOK: second restart", 60)
    restarting.restart_counts.append(_lorax_status(cluster, restarting.pod)[0])
    restarting.healed = time.time()  # the crash loop stops: no further restart from here
    cluster.wait(lambda: not _lorax_status(cluster, not_ready.pod)[1], "KWOK: lorax not ready", 60)
    not_ready.ready_seen.append(_lorax_status(cluster, not_ready.pod)[1])
    _watch(api, [restarting, not_ready], "firing")
    not_ready.healed = time.time()
    set_lorax_fault(cluster.core, NAMESPACE, not_ready.pod, restarts=0, ready=True)  # the probe passes again
    cluster.wait(lambda: _lorax_status(cluster, not_ready.pod)[1], "KWOK: lorax ready again", 60)
    not_ready.ready_seen.append(_lorax_status(cluster, not_ready.pod)[1])
    _watch(api, [restarting, not_ready], "cleared")


def _print_timeline(api: PromAPI, tl: Timeline, start: float, end: float) -> None:
    """The figures for docs/observability.md, from Prometheus's own ALERTS series (1 s resolution)."""

    def first(state: str) -> float | None:
        expr = f'ALERTS{{alertname="{tl.alert}", pod="{tl.pod}", alertstate="{state}"}}'
        points = sorted(t for s in api.query_range(expr, start, end, 1.0) for t, _ in s.points)
        return points[0] if points else None

    print(
        f"\n{tl.alert} on {tl.pod}: pending {_rel(first('pending'), tl.injected)} and firing "
        f"{_rel(first('firing'), tl.injected)} after the fault; cleared {_rel(tl.cleared, tl.healed)} "
        "after healing (poller)"
    )


def _rel(t: float | None, since: float) -> str:
    return "never" if t is None else f"{t - since:.1f} s"


def _samples(run: Run, alert: str, pod: str, state: str) -> list[float]:
    expr = f'ALERTS{{alertname="{alert}", pod="{pod}", alertstate="{state}"}}'
    return sorted(t for s in run.api.query_range(expr, run.start, run.end, 1.0) for t, _ in s.points)


def test_kwok_stage_drives_the_container_status(run: Run) -> None:
    assert run.restarting.restart_counts == [1, 2]  # restartCount rising, as the API server served it
    assert run.not_ready.ready_seen == [False, True]  # not ready, then ready again


def test_no_pod_alert_before_the_faults(run: Run) -> None:
    assert [a for a in run.before if a.get("alertname") in (RESTARTING, NOT_READY)] == []


@pytest.mark.parametrize("which", ["restarting", "not_ready"])
def test_pod_alert_goes_pending_then_firing_then_clears(run: Run, which: str) -> None:
    tl: Timeline = getattr(run, which)
    assert tl.firing is not None, f"{tl.alert} did not fire within {PHASE_TIMEOUT_S:.0f} s ({tl})"
    firing = [t for t in _samples(run, tl.alert, tl.pod, "firing") if t >= tl.injected]
    assert firing, f"{tl.alert}: Prometheus recorded no firing sample after the fault"
    pending = [t for t in _samples(run, tl.alert, tl.pod, "pending") if tl.injected - 1 <= t < firing[0]]
    assert pending, f"{tl.alert} was not pending between the fault and firing"
    # `for:` holds it pending that long (a lower bound: a slow machine only makes it later)
    assert firing[0] - pending[0] >= run.for_s[tl.alert] - 1.0, (pending[0], firing[0])
    assert tl.cleared is not None, f"{tl.alert} still active {PHASE_TIMEOUT_S:.0f} s after recovery"
    assert firing[-1] < tl.cleared + 2.0


def test_each_alert_names_only_its_own_pod(run: Run) -> None:
    assert _samples(run, RESTARTING, run.restarting.pod, "firing")
    assert _samples(run, NOT_READY, run.not_ready.pod, "firing")
    # the restarting pod stayed ready; the unready pod never restarted
    assert _samples(run, NOT_READY, run.restarting.pod, "pending") == []
    assert _samples(run, RESTARTING, run.not_ready.pod, "pending") == []
    assert _samples(run, RESTARTING, run.not_ready.pod, "firing") == []


def test_restart_alert_outlives_the_crash_loop_by_its_window(run: Run) -> None:
    # increase(...[30m]) scaled to 60 s: the alert stays until the last restart leaves the window
    window_s = 30 * 60 * SCALE
    assert run.restarting.firing is not None and run.restarting.cleared is not None
    assert run.restarting.cleared - run.restarting.healed >= window_s - 2.0
