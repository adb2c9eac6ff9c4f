"""Stage tables, saturation, SLO gates, the written report and the /metrics parser, on hand-made data."""

from __future__ import annotations

import json
from array import array
from pathlib import Path
from types import SimpleNamespace

import pytest

from loraxkit.loadtest.analysis import analyse, saturation_point, tokens_in_window
from loraxkit.loadtest.metrics import RequestRecord, Slos, summarize
from loraxkit.loadtest.report import rolling_mean, write_report
from loraxkit.loadtest.scrape import Scrape
from loraxkit.loadtest.slo import configured_gates, evaluate, evaluate_run
from loraxkit.loadtest.stages import Stage, stage_windows


def rec(
    sent: float, stamps: list[float], adapter: str = "a", status: int = 200, error_type: str | None = None
) -> RequestRecord:
    return RequestRecord(
        request_id=f"{adapter}{sent}",
        route="/generate_stream",
        adapter=adapter,
        sent=sent,
        status=status,
        error_type=error_type,
        token_times=array("d", stamps),
        server_tokens=len(stamps),
        end=stamps[-1] if stamps else sent,
    )


def test_tokens_in_window_counts_stamps_inside_only() -> None:
    records = [rec(0.0, [0.5, 1.5, 2.5]), rec(0.0, [1.2, 1.9]), rec(0.0, [1.1], status=429, error_type="x")]
    assert tokens_in_window(records, 1.0, 2.0) == 3


def row(tps: float) -> dict:
    return {
        "stage": 0,
        "users": 1,
        "rate": None,
        "summary": {"output_tokens_per_s": tps, "ttft_ms": {"p95": 1.0}, "tpot_ms": {"p50": 1.0}},
    }


def test_saturation_is_the_first_stage_the_next_one_barely_improves() -> None:
    rows = [row(100), row(190), row(200), row(205)]
    for i, r in enumerate(rows):
        r["stage"], r["users"] = i, 2**i
    sat = saturation_point(rows, 0.10)
    assert (sat["stage"], sat["users"], sat["output_tokens_per_s"]) == (1, 2, 190)
    assert saturation_point(rows[:2], 0.10)["stage"] is None


def test_stage_table_uses_each_window_minus_warmup() -> None:
    stages = [Stage(0, 1, None, 10.0), Stage(1, 2, None, 10.0)]
    windows = stage_windows(stages, 100.0)
    assert windows == [(100.0, 110.0), (110.0, 120.0)]
    records = [rec(101.0, [101.5]), rec(105.0, [105.5, 106.0]), rec(112.0, [113.0, 113.1, 113.2])]
    out = analyse(records, Slos(), stages, windows, stage_warmup=2.0)
    first, second = out["stages"]
    assert first["summary"]["requests"] == 1  # the request sent at 101 s is in the warm-up
    assert second["summary"]["requests"] == 1
    assert first["summary"]["output_tokens_per_s"] == pytest.approx(2 / 8.0)
    assert second["summary"]["output_tokens_per_s"] == pytest.approx(3 / 8.0)


def test_gates_pass_and_breach() -> None:
    summary = summarize([rec(0.0, [0.1, 0.2]), rec(0.0, [], status=429, error_type="overloaded")])
    options = SimpleNamespace(slo_ttft_p95=150.0, slo_itl_p99=50.0, max_error_rate=0.1)
    gates = configured_gates(options)
    assert gates == {"slo_ttft_p95": 150.0, "slo_itl_p99": 50.0, "max_error_rate": 0.1}
    results = {g.gate: g.passed for g in evaluate(gates, summary)}
    assert results == {"slo-ttft-p95": True, "slo-itl-p99": False, "max_error_rate": False}


def test_per_adapter_gates_catch_one_slow_adapter() -> None:
    fast, slow = summarize([rec(0.0, [0.01])]), summarize([rec(0.0, [0.5])])
    overall = summarize([rec(0.0, [0.01])] * 20 + [rec(0.0, [0.5])])
    results = evaluate_run({"slo_ttft_p50": 100.0}, overall, {"fast": fast, "slow": slow})
    assert [(g.scope, g.passed) for g in results] == [
        ("overall", True),
        ("adapter fast", True),
        ("adapter slow", False),
    ]


def test_report_files_are_written_and_json_is_strict(tmp_path: Path) -> None:
    records = [
        rec(0.0, [0.1, 0.2, 0.3]),
        rec(0.5, [0.7, 0.8], adapter="b"),
        rec(3.5, [], status=424, error_type="generation"),
    ]
    report = analyse(records, Slos(ttft=0.5))
    report.update({"host": "http://x", "mode": "closed loop"})
    gates = evaluate({"slo_ttft_p50": 1.0}, report["overall"])
    paths = write_report(report, tmp_path, gates)
    data = json.loads(paths["json"].read_text())  # allow_nan=False when written: NaN became null
    assert data["slo"]["passed"] is False
    assert data["overall"]["errors"]["by_status"] == {"424": 1}
    md = paths["markdown"].read_text()
    assert "BREACHED" in md and "| b |" in md and "424" in md
    assert "data:image/png;base64," in paths["html"].read_text()
    assert (tmp_path / "latency_by_adapter.png").stat().st_size > 1000


METRICS_TEXT = """# TYPE lorax_queue_length gauge
lorax_queue_length 3
# TYPE lorax_batch_current_size gauge
lorax_batch_current_size 12
# TYPE lorax_request_queue_duration histogram
lorax_request_queue_duration_bucket{le="0.1"} 4
lorax_request_queue_duration_bucket{le="+Inf"} 5
lorax_request_queue_duration_sum 0.5
lorax_request_queue_duration_count 5
# TYPE lorax_request_count counter
lorax_request_count 100
# TYPE lorax_unrelated gauge
lorax_unrelated 7
"""


def test_scrape_shows_gauges_counter_rates_and_histogram_mean_durations() -> None:
    scrape = Scrape("http://x/metrics")
    scrape.add_text(METRICS_TEXT, at=1.0)
    scrape.add_text(
        METRICS_TEXT.replace("queue_length 3", "queue_length 5")
        .replace("_sum 0.5", "_sum 1.5")
        .replace("_count 5", "_count 10")
        .replace("request_count 100", "request_count 140"),
        at=3.0,
    )
    series = scrape.summary()["series"]
    assert series["lorax_queue_length"]["max"] == 5.0
    assert series["lorax_batch_current_size"]["mean"] == 12.0
    assert "lorax_unrelated" not in series
    histogram_parts = [k for k in series if "bucket" in k or k.endswith("_sum")]
    assert not histogram_parts
    # a counter is a rate, never a mean of its running total: 40 more requests in 2 s
    assert series["lorax_request_count"]["rate_per_s"] == pytest.approx(20.0)
    assert "mean" not in series["lorax_request_count"]
    # a histogram: 5 observations in 2 s that took 1.0 s together
    queue = series["lorax_request_queue_duration"]
    assert queue["mean_ms"] == pytest.approx(200.0) and queue["rate_per_s"] == pytest.approx(2.5)


def test_step_and_sweep_stage_plans() -> None:
    from loraxkit.loadtest.stages import ShapeError, user_stages

    assert [s.users for s in user_stages("step", "", 8, 3, 10.0)] == [8, 16, 24]
    assert [s.users for s in user_stages("sweep", "1,4,16", 0, 0, 5.0)] == [1, 4, 16]
    with pytest.raises(ShapeError, match="--sweep-users"):
        user_stages("sweep", "1,x", 0, 0, 5.0)
    with pytest.raises(ShapeError, match="--stage-time"):
        user_stages("sweep", "1,2", 0, 0, 0.0)


def test_command_line_overrides_the_workload_file(tmp_path: Path) -> None:
    from loraxkit.loadtest.options import parse_rates, workload_from_options

    path = tmp_path / "w.yaml"
    path.write_text("adapters: [a, b, c]\nmix: weights\nweights: [1, 1, 1]\nseed: 1\n")
    options = SimpleNamespace(
        workload=str(path),
        adapters=None,
        mix=None,
        zipf_exponent=None,
        weights="3,2,1",
        base_share=0.5,
        prompts=None,
        tokenizer=None,
        input_tokens="8",
        output_tokens=None,
        seed=None,
        respect_eos=True,
    )
    w = workload_from_options(options)
    assert (w.adapters, w.weights, w.base_share, w.seed, w.ignore_eos) == (
        ["a", "b", "c"],
        [3.0, 2.0, 1.0],
        0.5,
        1,
        False,
    )
    assert parse_rates("") == [] and parse_rates("1,2.5") == [1.0, 2.5]


def test_over_time_smoothing_is_a_trailing_mean() -> None:
    assert rolling_mean([1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 3) == [1.0, 1.5, 2.0, 3.0, 4.0, 5.0]
    assert rolling_mean([0.0, 600.0] * 3, 2) == [0.0, 300.0, 300.0, 300.0, 300.0, 300.0]
