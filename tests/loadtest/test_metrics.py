"""The metric maths on hand-made records whose answers are computed here by hand."""

from __future__ import annotations

from array import array

import numpy as np
import pytest

from loraxkit.loadtest.metrics import RequestRecord, Slos, distribution, error_breakdown, summarize


def record(
    sent: float,
    stamps: list[float],
    server_tokens: int | None = None,
    status: int = 200,
    error_type: str | None = None,
    adapter: str | None = "a",
    intended: float | None = None,
) -> RequestRecord:
    return RequestRecord(
        request_id=f"r{sent}",
        route="/generate_stream",
        adapter=adapter,
        sent=sent,
        intended=intended,
        status=status,
        error_type=error_type,
        token_times=array("d", stamps),
        server_tokens=server_tokens,
        end=stamps[-1] if stamps else sent,
    )


def test_ttft_e2e_tpot_of_one_request() -> None:
    r = record(10.0, [10.1, 10.12, 10.15, 10.2], server_tokens=4)
    assert r.ttft == pytest.approx(0.1)
    assert r.e2e == pytest.approx(0.2)
    assert r.tpot == pytest.approx((0.2 - 0.1) / 3)  # (E2E - TTFT) / (N - 1)
    assert list(r.itls) == pytest.approx([0.02, 0.03, 0.05])


def test_tpot_uses_server_count_and_flags_mismatch() -> None:
    r = record(0.0, [1.0, 2.0, 3.0], server_tokens=5)
    assert r.output_tokens == 5
    assert r.tpot == pytest.approx(2.0 / 4)
    assert r.token_count_mismatch
    assert not record(0.0, [1.0, 2.0], server_tokens=2).token_count_mismatch


def test_single_token_request_has_no_tpot() -> None:
    assert record(0.0, [0.5], server_tokens=1).tpot is None


def test_itl_pools_every_gap_of_every_request() -> None:
    records = [record(0.0, [0.1, 0.2, 0.4]), record(1.0, [1.5, 1.6])]
    s = summarize(records)
    # gaps: 0.1, 0.2, 0.1 -> pooled (not per-request means)
    assert s["itl_ms"]["count"] == 3
    assert s["itl_ms"]["mean"] == pytest.approx(400.0 / 3)
    assert s["itl_ms"]["max"] == pytest.approx(200.0)


def test_percentiles_are_exact_linear_interpolation() -> None:
    values = [float(v) for v in range(1, 101)]  # seconds
    d = distribution(values)
    assert d["p50"] == pytest.approx(50.5 * 1000)
    assert d["p99"] == pytest.approx(np.percentile(values, 99) * 1000)
    assert d["p99.9"] == pytest.approx(99.901 * 1000)
    assert d["min"] == 1000.0 and d["max"] == 100000.0 and d["count"] == 100


def test_summary_throughput_and_errors() -> None:
    ok1 = record(0.0, [0.5, 1.0], server_tokens=2)
    ok2 = record(0.0, [1.0, 2.0], server_tokens=2)
    overloaded = record(0.5, [], status=429, error_type="overloaded")
    in_stream = record(0.6, [], status=200, error_type="generation")
    s = summarize([ok1, ok2, overloaded, in_stream])
    assert s["requests"] == 4 and s["succeeded"] == 2 and s["error_rate"] == 0.5
    assert s["duration_s"] == pytest.approx(2.0)
    assert s["output_tokens_per_s"] == pytest.approx(4 / 2.0)
    assert s["errors"] == {
        "by_status": {"200": 1, "429": 1},
        "by_error_type": {"generation": 1, "overloaded": 1},
    }
    assert s["ttft_ms"]["count"] == 2


def test_goodput_counts_requests_meeting_every_slo() -> None:
    fast = record(0.0, [0.05, 0.06, 0.07], server_tokens=3)  # TTFT 50 ms, TPOT 10 ms
    slow_first = record(0.0, [0.5, 0.51, 0.52], server_tokens=3)  # TTFT 500 ms
    slow_decode = record(0.0, [0.05, 0.15, 0.25], server_tokens=3)  # TPOT 100 ms
    failed = record(0.0, [], status=429, error_type="overloaded")
    slos = Slos(ttft=0.1, tpot=0.02)
    assert [slos.met_by(r) for r in (fast, slow_first, slow_decode, failed)] == [True, False, False, False]
    s = summarize([fast, slow_first, slow_decode, failed], slos)
    assert s["goodput"]["requests_meeting_slos"] == 1
    assert s["goodput"]["fraction"] == 0.25


def test_open_loop_lag_and_ttft_from_schedule() -> None:
    r = record(10.2, [10.5, 10.6], intended=10.0)
    assert r.schedule_lag == pytest.approx(0.2)
    assert r.ttft_from_schedule == pytest.approx(0.5)
    s = summarize([r])
    assert s["schedule_lag_ms"]["p50"] == pytest.approx(200.0)
    assert "schedule_lag_ms" not in summarize([record(0.0, [0.1])])


def test_error_breakdown_ignores_successes() -> None:
    assert error_breakdown([record(0.0, [0.1])]) == {"by_status": {}, "by_error_type": {}}


def test_wire_round_trip_keeps_every_field() -> None:
    r = record(1.0, [1.25, 1.5], server_tokens=2, intended=0.9)
    r.server_timing = {"queue_time_ms": 3.0}
    back = RequestRecord.from_wire(r.to_wire())
    assert back == r


def test_generate_timing_headers_and_client_overhead() -> None:
    r = record(0.0, [])
    r.end = 0.105
    r.server_timing = {"total_time_ms": 100.0, "queue_time_ms": 7.0}
    s = summarize([r])
    assert s["server_timing_ms"]["queue_time_ms"]["p50"] == 7.0
    assert s["client_overhead_ms"]["p50"] == pytest.approx(5.0)
    assert "server_timing_ms" not in summarize([record(0.0, [0.1])])
