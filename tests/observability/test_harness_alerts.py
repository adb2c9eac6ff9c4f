"""The load-test report's alert section without a Prometheus: an unreachable server is reported, not dropped;
the section renders what was stored. (With a real Prometheus: test_e2e_prometheus.py.)"""

from __future__ import annotations

from loraxkit.loadtest import alerts
from loraxkit.loadtest.report import _sections
from loraxkit.sim.process import free_port


def test_unreachable_prometheus_is_written_into_the_report() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    entry = alerts.report_entry(url, 0.0, 10.0)
    assert entry["fired"] == [] and "cannot reach Prometheus at " + url in entry["error"]
    assert alerts.section(entry).startswith(f"Could not read alerts from {url}: cannot reach Prometheus")


def test_section_lists_alerts_with_their_times_into_the_run() -> None:
    entry = {
        "prometheus_url": "http://prom:9090",
        "start": 1000.0,
        "end": 1100.0,
        "fired": [
            {"alert": "LoraxOverloaded", "labels": {"severity": "warning", "service": "lorax"},
             "first_firing": 1030.0, "last_firing": 1060.0},
        ],
    }  # fmt: skip
    text = alerts.section(entry)
    assert "| LoraxOverloaded | warning | service=lorax | 30 | 60 |" in text
    assert alerts.markdown([]) == "No LoRAX alert fired during the run."


def test_report_has_the_section_only_when_asked() -> None:
    report = _minimal_report()
    assert "Alerts during the run" not in [title for title, _ in _sections(report, [])]
    report["alerts"] = {"prometheus_url": "http://prom:9090", "error": "cannot reach Prometheus", "fired": []}
    titles = dict(_sections(report, []))
    assert titles["Alerts during the run"].startswith("Could not read alerts from http://prom:9090")


def _minimal_report() -> dict:
    dist = {"p50": 1.0, "p90": 1.0, "p95": 1.0, "p99": 1.0, "mean": 1.0, "max": 1.0}
    group = {
        "requests": 1, "failed": 0, "error_rate": 0.0, "output_tokens_per_s": 1.0, "requests_per_s": 1.0,
        "token_count_mismatches": 0, "errors": {"by_status": {}, "by_error_type": {}},
        "ttft_ms": dist, "tpot_ms": dist, "itl_ms": dist, "e2e_ms": dist,
    }  # fmt: skip
    return {"overall": group, "by_adapter": {}, "by_route": {}, "definitions": {}}
