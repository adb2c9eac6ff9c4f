"""`promtool check rules` and `promtool test rules` on the chart's rules file: every alert fires on the series
that mean trouble and stays quiet on healthy ones (and while its `for:` window has not passed).

Each case is one promtool unit test; the expected annotations are the rule's own texts except the templated
ones, which each case spells out (so a broken template fails too). Input series use LoRAX's names and
label values (predibase/lorax @a7394ba3) and kube-state-metrics' names.
"""

# ruff: noqa: E501  (the case table: series selectors read best on one line)
from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from loraxkit.observability import rules

PROMTOOL = shutil.which("promtool")
pytestmark = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool not installed (apt-get install prometheus)"
)

L = 'namespace="ml",service="lorax"'
ML = {"namespace": "ml", "service": "lorax"}
TPOT_LE = "0.09852612533569335"
QUEUE_LE = "2.5251168294042348"


@dataclass
class Case:
    id: str
    alert: str
    series: dict[str, str]
    eval_time: str
    firing: list[dict[str, str]] = field(default_factory=list)
    annotations: dict[str, str] = field(default_factory=dict)  # templated annotations, as they render
    interval: str = "30s"


def _alternating(a: int, b: int, n: int) -> str:
    return " ".join(str(a if i % 2 == 0 else b) for i in range(n))


def _slo(metric: str, le: str, good_per_step: float, total_per_step: float, steps: int) -> dict[str, str]:
    return {
        f'{metric}_bucket{{{L},le="{le}"}}': f"0+{good_per_step}x{steps}",
        f"{metric}_count{{{L}}}": f"0+{total_per_step}x{steps}",
    }


HUNG_SUMMARY = {"summary": "LoRAX ml/lorax has stopped generating"}
TPOT = "lorax_request_mean_time_per_token_duration"
QUEUE = "lorax_request_queue_duration"

CASES = [
    # --- generation hung: work in the batch, steps stop succeeding at 5m
    Case("hung-fires", "LoraxGenerationHung",
         {f"lorax_batch_current_size{{{L}}}": "4x40",
          f'lorax_batch_inference_success{{{L},method="decode"}}': "0+100x10 1000x30"},
         "11m", [ML], HUNG_SUMMARY),
    Case("hung-pending-not-yet-firing", "LoraxGenerationHung",
         {f"lorax_batch_current_size{{{L}}}": "4x40",
          f'lorax_batch_inference_success{{{L},method="decode"}}': "0+100x10 1000x30"},
         "8m"),
    Case("hung-first-step-never-finished", "LoraxGenerationHung",
         {f"lorax_queue_length{{{L}}}": "3x40", f"lorax_request_count{{{L}}}": "0+3x40",
          f'lorax_batch_inference_count{{{L},method="prefill"}}': "1x40"}, "5m", [ML], HUNG_SUMMARY),
    Case("hung-quiet-while-steps-succeed", "LoraxGenerationHung",
         {f"lorax_batch_current_size{{{L}}}": "4x40",
          f'lorax_batch_inference_success{{{L},method="decode"}}': "0+100x40"}, "15m"),
    Case("hung-quiet-when-idle", "LoraxGenerationHung",
         {f"lorax_batch_current_size{{{L}}}": "0x40", f"lorax_queue_length{{{L}}}": "0x40",
          f"lorax_request_count{{{L}}}": "50x40",
          f'lorax_batch_inference_success{{{L},method="decode"}}': "1000x40"}, "15m"),
    # --- failure ratio: 10% generation errors vs client errors that do not count
    Case("failure-ratio-fires", "LoraxHighFailureRatio",
         {f"lorax_request_count{{{L}}}": "0+60x30", f'lorax_request_failure{{{L},err="generation"}}': "0+6x30"},
         "11m", [ML], {"summary": "10% of LoRAX requests fail in ml/lorax"}),
    Case("failure-ratio-quiet-on-client-errors", "LoraxHighFailureRatio",
         {f"lorax_request_count{{{L}}}": "0+60x30",
          f'lorax_request_failure{{{L},err="validation"}}': "0+30x30",
          f'lorax_request_failure{{{L},err="dropped"}}': "0+10x30",
          f'lorax_request_failure{{{L},err="generation"}}': "0+1x30"}, "11m"),
    # --- adapter load failures (loader.rs download_adapter / load_adapter)
    Case("adapter-failures-fire", "LoraxAdapterLoadFailures",
         {f'lorax_request_failure{{{L},err="download_adapter"}}': "0x10 1+1x30"}, "8m", [ML],
         {"summary": "LoRAX cannot load adapters in ml/lorax"}),
    Case("adapter-load-errors-fire", "LoraxAdapterLoadFailures",
         {f'lorax_request_failure{{{L},err="load_adapter"}}': "0x10 1+1x30"}, "8m", [ML],
         {"summary": "LoRAX cannot load adapters in ml/lorax"}),
    Case("adapter-failures-quiet-on-other-errors", "LoraxAdapterLoadFailures",
         {f'lorax_request_failure{{{L},err="generation"}}': "0+5x30",
          f'lorax_request_failure{{{L},err="download_adapter"}}': "0x30"}, "8m"),
    Case("adapter-failures-resolve-once-they-stop", "LoraxAdapterLoadFailures",
         {f'lorax_request_failure{{{L},err="download_adapter"}}': "0x10 1x30"}, "14m"),
    # --- queue never drains
    Case("queue-backlog-fires", "LoraxQueueBacklog", {f"lorax_queue_length{{{L}}}": "5x40"}, "11m", [ML],
         {"summary": "LoRAX queue in ml/lorax has not drained for 15 minutes",
          "description": "At least 5 requests have waited at every moment of the last 5 minutes: demand exceeds "
          "capacity."}),
    Case("queue-backlog-quiet-when-it-drains", "LoraxQueueBacklog",
         {f"lorax_queue_length{{{L}}}": _alternating(5, 0, 40)}, "15m"),
    Case("queue-backlog-pending-before-10m", "LoraxQueueBacklog", {f"lorax_queue_length{{{L}}}": "5x40"}, "9m"),
    # --- 429 overloaded
    Case("overloaded-fires", "LoraxOverloaded",
         {f"lorax_request_count{{{L}}}": "0+60x30", f'lorax_request_failure{{{L},err="overloaded"}}': "0+3x30"},
         "11m", [ML], {"summary": "LoRAX ml/lorax refuses 5% of requests with 429"}),
    Case("overloaded-quiet-below-1pct", "LoraxOverloaded",
         {f"lorax_request_count{{{L}}}": "0+60x30", f'lorax_request_failure{{{L},err="overloaded"}}': "0+0.3x30"},
         "11m"),
    # --- latency SLO burn (99%): all requests slow -> fast burn; 10% slow -> slow burn only; all fast -> none
    Case("tpot-fast-burn-fires", "LoraxTPOTBudgetBurnFast", _slo(TPOT, TPOT_LE, 10, 60, 40), "10m", [ML],
         {"summary": "LoRAX ml/lorax burns its time-per-token budget 14x too fast"}, "1m"),
    Case("tpot-fast-burn-quiet-at-10pct", "LoraxTPOTBudgetBurnFast", _slo(TPOT, TPOT_LE, 54, 60, 40), "30m",
         interval="1m"),
    Case("tpot-slow-burn-fires-at-10pct", "LoraxTPOTBudgetBurnSlow", _slo(TPOT, TPOT_LE, 54, 60, 40), "30m",
         [ML], {"summary": "LoRAX ml/lorax burns its time-per-token budget 6x too fast"}, "1m"),
    Case("tpot-slow-burn-quiet-within-slo", "LoraxTPOTBudgetBurnSlow", _slo(TPOT, TPOT_LE, 60, 60, 40), "30m",
         interval="1m"),
    Case("queue-fast-burn-fires", "LoraxQueueTimeBudgetBurnFast", _slo(QUEUE, QUEUE_LE, 10, 60, 40), "10m",
         [ML], {"summary": "LoRAX ml/lorax burns its queue-time budget 14x too fast"}, "1m"),
    Case("queue-fast-burn-quiet-at-10pct", "LoraxQueueTimeBudgetBurnFast", _slo(QUEUE, QUEUE_LE, 54, 60, 40),
         "30m", interval="1m"),
    Case("queue-slow-burn-fires-at-10pct", "LoraxQueueTimeBudgetBurnSlow", _slo(QUEUE, QUEUE_LE, 54, 60, 40),
         "30m", [ML], {"summary": "LoRAX ml/lorax burns its queue-time budget 6x too fast"}, "1m"),
    Case("queue-slow-burn-quiet-within-slo", "LoraxQueueTimeBudgetBurnSlow", _slo(QUEUE, QUEUE_LE, 60, 60, 40),
         "30m", interval="1m"),
    # --- a target that was up and went away; one that never came up (warming up) does not fire
    Case("down-fires", "LoraxDown", {'up{job="lorax",instance="10.0.0.7:8080"}': "1x10 0x20"}, "11m",
         [{"job": "lorax", "instance": "10.0.0.7:8080"}],
         {"summary": "LoRAX target 10.0.0.7:8080 (lorax) is down"}),
    Case("down-quiet-while-warming-up", "LoraxDown", {'up{job="lorax",instance="10.0.0.7:8080"}': "0x30"}, "14m"),
    Case("down-quiet-for-other-jobs", "LoraxDown", {'up{job="node",instance="10.0.0.7:9100"}': "1x10 0x20"}, "14m"),
    # --- kube-state-metrics
    Case("restart-fires", "LoraxPodRestarting",
         {'kube_pod_container_status_restarts_total{namespace="ml",pod="lorax-7d9f",container="lorax"}': "0x10 1x30"},
         "7m", [{"namespace": "ml", "pod": "lorax-7d9f", "container": "lorax"}],
         {"summary": "LoRAX pod ml/lorax-7d9f restarted"}),
    Case("restart-quiet-for-other-containers", "LoraxPodRestarting",
         {'kube_pod_container_status_restarts_total{namespace="ml",pod="lorax-7d9f",container="proxy"}': "0x10 1x30",
          'kube_pod_container_status_restarts_total{namespace="ml",pod="lorax-7d9f",container="lorax"}': "0x40"},
         "7m"),
    Case("not-ready-fires-after-startup-budget", "LoraxPodNotReady",
         {'kube_pod_container_status_ready{namespace="ml",pod="lorax-7d9f",container="lorax"}': "0x90",
          'kube_pod_status_phase{namespace="ml",pod="lorax-7d9f",phase="Running"}': "1x90"},
         "36m", [{"namespace": "ml", "pod": "lorax-7d9f", "container": "lorax"}],
         {"summary": "LoRAX pod ml/lorax-7d9f has not been ready for 35 minutes"}),
    Case("not-ready-quiet-within-startup-budget", "LoraxPodNotReady",
         {'kube_pod_container_status_ready{namespace="ml",pod="lorax-7d9f",container="lorax"}': "0x90",
          'kube_pod_status_phase{namespace="ml",pod="lorax-7d9f",phase="Running"}': "1x90"}, "25m"),
    Case("not-ready-quiet-once-ready", "LoraxPodNotReady",
         {'kube_pod_container_status_ready{namespace="ml",pod="lorax-7d9f",container="lorax"}': "0x20 1x70",
          'kube_pod_status_phase{namespace="ml",pod="lorax-7d9f",phase="Running"}': "1x90"}, "40m"),
]  # fmt: skip


def _unit_test(case: Case, rule: dict[str, Any]) -> dict[str, Any]:
    static = {k: v for k, v in rule.get("annotations", {}).items() if "{{" not in v}
    exp = [
        {
            "exp_labels": {**labels, "severity": rule["labels"]["severity"]},
            "exp_annotations": {**static, **case.annotations},
        }
        for labels in case.firing
    ]
    return {
        "rule_files": [str(rules.RULES_PATH)],
        "evaluation_interval": case.interval,
        "tests": [
            {
                "name": case.id,
                "interval": case.interval,
                "input_series": [{"series": s, "values": v} for s, v in case.series.items()],
                "alert_rule_test": [
                    {"eval_time": case.eval_time, "alertname": case.alert, "exp_alerts": exp}
                ],
            }
        ],
    }


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=120, check=False)


def test_rules_file_passes_promtool_check() -> None:
    result = _promtool("check", "rules", str(rules.RULES_PATH))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_has_a_firing_and_a_quiet_case() -> None:
    names = {r["alert"] for r in rules.alerts()}
    firing = {c.alert for c in CASES if c.firing}
    quiet = {c.alert for c in CASES if not c.firing}
    assert names - firing == set(), f"alerts without a firing promtool case: {sorted(names - firing)}"
    assert names - quiet == set(), f"alerts without a quiet promtool case: {sorted(names - quiet)}"


def test_every_alert_has_severity_summary_and_runbook() -> None:
    for rule in rules.alerts():
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        assert {"summary", "description", "runbook"} <= set(rule["annotations"]), rule["alert"]
        assert (
            f"docs/observability.md#{rule['alert'].lower().removesuffix('fast').removesuffix('slow')}"
            in (rule["annotations"]["runbook"])
        ), rule["alert"]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_promtool_unit(case: Case, tmp_path: Path) -> None:
    rule = next(r for r in rules.alerts() if r["alert"] == case.alert)
    path = tmp_path / f"{case.id}.test.yaml"
    path.write_text(yaml.safe_dump(_unit_test(case, rule), sort_keys=False), encoding="utf-8")
    result = _promtool("test", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_scaled_rules_are_valid_and_shorter(tmp_path: Path) -> None:
    data = rules.scaled(1 / 30)
    path = rules.dump(data, tmp_path / "scaled.yaml")
    result = _promtool("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    hung = next(r for r in rules.alerts(data) if r["alert"] == "LoraxGenerationHung")
    assert hung["for"] == "6s" and "[4s]" in hung["expr"] and "[2m]" not in hung["expr"]
