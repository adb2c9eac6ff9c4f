"""Every figure the harness reports, on one run that mixes successes with a failed stream, a cancelled
stream, an HTTP 429, a one-token stream and a `/generate` request (no token events). Each expected value is
worked out by hand in the comments; stamps are multiples of 1/16 s so the arithmetic is exact.

    request  route             adapter sent     token events (s)              outcome
    A        /generate_stream  a       100.0    100.25 100.375 100.5 100.75   ok, 4 tokens
    B        /generate_stream  b       100.5    101.0                         ok, 1 token
    C        /generate         a       101.0    (body read at 101.75)         ok, 5 tokens
    D        /generate_stream  b       101.0    101.25 102.0                  in-stream generation error
    E        /generate_stream  a       101.25   101.5                         cancelled (stream cut)
    F        /generate_stream  a       101.5    (answered at 101.5625)        429 overloaded
"""

from __future__ import annotations

import math
from array import array
from typing import Any

import pytest

from loraxkit.loadtest.analysis import (
    analyse,
    in_steady_state,
    saturation_point,
    stage_table,
    steady_state,
    timeline,
    tokens_in_window,
)
from loraxkit.loadtest.metrics import RequestRecord, Slos, summarize
from loraxkit.loadtest.stages import Stage
from loraxkit.loadtest.stream import ERR_INCOMPLETE_STREAM

STREAM, GENERATE = "/generate_stream", "/generate"


def _record(
    rid: str,
    route: str,
    adapter: str,
    sent: float,
    stamps: list[float],
    end: float,
    server_tokens: int | None,
    status: int = 200,
    error_type: str | None = None,
) -> RequestRecord:
    return RequestRecord(
        request_id=rid,
        route=route,
        adapter=adapter,
        sent=sent,
        end=end,
        status=status,
        error_type=error_type,
        token_times=array("d", stamps),
        server_tokens=server_tokens,
    )


def _run() -> list[RequestRecord]:
    return [
        _record("A", STREAM, "a", 100.0, [100.25, 100.375, 100.5, 100.75], 100.75, 4),
        _record("B", STREAM, "b", 100.5, [101.0], 101.0, 1),
        _record("C", GENERATE, "a", 101.0, [], 101.75, 5),
        _record("D", STREAM, "b", 101.0, [101.25, 102.0], 102.0, None, error_type="generation"),
        _record("E", STREAM, "a", 101.25, [101.5], 101.5, None, error_type=ERR_INCOMPLETE_STREAM),
        _record("F", STREAM, "a", 101.5, [], 101.5625, None, status=429, error_type="overloaded"),
    ]


def test_counts_duration_and_throughput_count_successes_over_the_whole_window() -> None:
    s = summarize(_run())
    assert (s["requests"], s["succeeded"], s["failed"], s["error_rate"]) == (6, 3, 3, 0.5)
    # first send 100.0, last end 102.0 (D's last token: a failed request still occupies the window)
    assert s["duration_s"] == 2.0
    # A 4 + B 1 + C 5 tokens (D's and E's token events are not output of a successful request)
    assert s["output_tokens"] == 10
    assert s["output_tokens_per_s"] == 5.0
    assert s["requests_per_s"] == 1.5
    assert s["errors"] == {
        "by_status": {"200": 2, "429": 1},
        "by_error_type": {"generation": 1, ERR_INCOMPLETE_STREAM: 1, "overloaded": 1},
    }
    assert s["output_tokens_per_request"] == pytest.approx(
        {
            "count": 3,
            "mean": 10 / 3,
            "min": 1.0,
            "max": 5.0,
            "p50": 4.0,
            "p90": 4.8,
            "p95": 4.9,
            "p99": 4.98,
            "p99.9": 4.998,
        }
    )


def test_latency_distributions_leave_out_every_failed_request() -> None:
    s = summarize(_run())
    # TTFT: A 250 ms, B 500 ms (C has no token events; D 250 ms and E 250 ms failed)
    assert s["ttft_ms"] == pytest.approx(
        {
            "count": 2,
            "mean": 375.0,
            "min": 250.0,
            "max": 500.0,
            "p50": 375.0,
            "p90": 475.0,
            "p95": 487.5,
            "p99": 497.5,
            "p99.9": 499.75,
        }
    )
    # ITL: A's gaps 125, 125, 250 only (D's 750 ms gap is from a failed request)
    assert s["itl_ms"]["count"] == 3
    assert (s["itl_ms"]["mean"], s["itl_ms"]["max"], s["itl_ms"]["p50"]) == pytest.approx(
        (500 / 3, 250.0, 125.0)
    )
    # TPOT: A only, (750 - 250) / (4 - 1); B has one token, C no stream
    assert s["tpot_ms"]["count"] == 1
    assert s["tpot_ms"]["p50"] == pytest.approx(500 / 3)
    # E2E: A 750, B 500, C 750 (the /generate body read - sent)
    assert s["e2e_ms"] == pytest.approx(
        {
            "count": 3,
            "mean": 2000 / 3,
            "min": 500.0,
            "max": 750.0,
            "p50": 750.0,
            "p90": 750.0,
            "p95": 750.0,
            "p99": 750.0,
            "p99.9": 750.0,
        }
    )


# (SLOs, requests meeting them): failed requests never count; a one-token stream and a /generate request
# have no TPOT and pass a TPOT SLO (vLLM counts it as 0); a value equal to the SLO meets it.
GOODPUT = [
    (Slos(tpot=0.1), 2),  # B, C (A's TPOT is 0.1667 s)
    (Slos(tpot=0.5 / 3 + 1e-9), 3),  # A's TPOT just inside
    (Slos(e2e=0.75), 3),  # A 0.75 and C 0.75 at the limit, B 0.5
    (Slos(e2e=0.75 - 1e-9), 1),  # only B
    (Slos(ttft=0.25), 1),  # A at the limit; B 0.5 over; C has no TTFT to meet a TTFT SLO
    (Slos(ttft=0.5, tpot=0.1), 1),  # B only: A fails TPOT, C has no TTFT
    (Slos(tpot=0.1, e2e=0.6), 1),  # B (E2E 0.5); C has no TPOT but still fails E2E 0.75
    (Slos(ttft=10.0, tpot=10.0, e2e=10.0), 2),  # A, B: C has no TTFT; no failure counts
]


@pytest.mark.parametrize(("slos", "good"), GOODPUT)
def test_goodput_counts_successes_meeting_every_slo(slos: Slos, good: int) -> None:
    s = summarize(_run(), slos)
    assert s["goodput"] == {"requests_meeting_slos": good, "fraction": good / 6, "requests_per_s": good / 2.0}


def test_no_slo_means_no_goodput_figure() -> None:
    assert "goodput" not in summarize(_run(), Slos())


def test_per_adapter_and_per_route_groups_have_their_own_windows() -> None:
    out = analyse(_run(), Slos(tpot=0.1))
    a, b = out["by_adapter"]["a"], out["by_adapter"]["b"]
    # a: A, C, E, F sent from 100.0, last end 101.75 (C); 4 + 5 tokens
    assert (a["requests"], a["succeeded"], a["duration_s"], a["output_tokens"]) == (4, 2, 1.75, 9)
    assert a["output_tokens_per_s"] == pytest.approx(9 / 1.75)
    assert a["goodput"]["requests_meeting_slos"] == 1  # C
    # b: B, D sent from 100.5, last end 102.0 (D); 1 token
    assert (b["requests"], b["succeeded"], b["duration_s"], b["output_tokens"]) == (2, 1, 1.5, 1)
    assert b["goodput"]["requests_meeting_slos"] == 1  # B, one token
    generate = out["by_route"][GENERATE]
    assert (generate["requests"], generate["output_tokens"], generate["duration_s"]) == (1, 5, 0.75)
    assert generate["ttft_ms"] == {"count": 0}
    assert out["by_route"][STREAM]["requests"] == 5


def test_timeline_buckets_tokens_finishes_and_ttft_percentiles() -> None:
    t = timeline(_run())
    assert t["t"] == [0.0, 1.0]  # first send 100.0, last end 102.0
    # tokens: A's 4 events in second 0; B's event (101.0) and C's 5 tokens at its end (101.75) in second 1
    assert t["tokens_per_s"] == [4.0, 6.0]
    assert t["requests_per_s"] == [1.0, 2.0]  # A ends in 0; B and C in 1 (failures are not finishes)
    # TTFT of requests sent in second 0: A 250, B 500 -> p50 375, p95 250 + 0.95 * 250
    assert t["ttft_p50_ms"][0] == 375.0
    assert t["ttft_p95_ms"][0] == pytest.approx(487.5)
    assert math.isnan(t["ttft_p50_ms"][1]) and math.isnan(t["ttft_p95_ms"][1])


def test_timeline_with_half_second_buckets() -> None:
    t = timeline(_run(), bucket=0.5)
    assert t["t"] == [0.0, 0.5, 1.0, 1.5]
    # A: 100.25, 100.375 in bucket 0; 100.5, 100.75 in bucket 1; B 101.0 in 2; C's 5 at 101.75 in 3
    assert t["tokens_per_s"] == [4.0, 4.0, 2.0, 10.0]
    assert t["requests_per_s"] == [0.0, 2.0, 2.0, 2.0]


def test_tokens_in_window_counts_generate_tokens_at_the_end_and_no_failed_tokens() -> None:
    run = _run()
    assert tokens_in_window(run, 100.0, 101.0) == 4  # A; B's 101.0 is the next window's (half-open)
    assert tokens_in_window(run, 101.0, 102.0) == 6  # B 1 + C 5; D and E left out
    assert tokens_in_window(run, 101.0, 101.75) == 1  # C's body arrives at 101.75: not inside
    assert tokens_in_window(run, 100.25, 100.5) == 2  # 100.25 and 100.375


def _stages() -> tuple[list[Stage], list[tuple[float, float]]]:
    return [Stage(0, 4, None, 1.0), Stage(1, 8, None, 1.0)], [(100.0, 101.0), (101.0, 102.0)]


def test_stage_rows_count_requests_sent_in_the_stage_and_tokens_stamped_in_it() -> None:
    stages, windows = _stages()
    rows = stage_table(_run(), stages, windows, Slos(tpot=0.1), warmup=0.0)
    first, second = rows[0]["summary"], rows[1]["summary"]
    assert (rows[0]["users"], rows[1]["users"], rows[1]["window"]) == (4, 8, [101.0, 102.0])
    assert (first["requests"], first["succeeded"], first["duration_s"]) == (2, 2, 1.0)  # A, B
    assert first["output_tokens_per_s"] == 4.0  # A's events; B's token lands in the next stage
    assert (second["requests"], second["succeeded"], second["failed"]) == (4, 1, 3)  # C, D, E, F
    assert second["output_tokens_per_s"] == 6.0
    assert first["goodput"]["requests_meeting_slos"] == 1  # B (A's TPOT is over)
    assert second["goodput"]["requests_meeting_slos"] == 1  # C


def test_stage_warmup_moves_the_window_start() -> None:
    stages, windows = _stages()
    rows = stage_table(_run(), stages, windows, Slos(), warmup=0.25)
    assert rows[0]["measured_from"] == 100.25
    assert rows[0]["summary"]["requests"] == 1  # B only (A was sent at 100.0)
    assert rows[0]["summary"]["output_tokens_per_s"] == pytest.approx(
        4 / 0.75
    )  # A's 4 events in [100.25, 101)
    long_warmup = stage_table(_run(), stages, windows, Slos(), warmup=5.0)
    assert long_warmup[0]["measured_from"] == 101.0  # never past the stage's end


def _rows(*throughput: float) -> list[dict[str, Any]]:
    return [
        {"stage": i, "users": i + 1, "rate": None,
         "summary": {"output_tokens_per_s": tps, "ttft_ms": {"p95": 10.0 * i}, "tpot_ms": {"p50": 1.0 * i}}}
        for i, tps in enumerate(throughput)
    ]  # fmt: skip


def test_saturation_gain_at_the_limit_is_still_rising() -> None:
    # 64 -> 80 is exactly +25% (binary-exact numbers): not "less than 25%", so not saturated there.
    assert saturation_point(_rows(64.0, 80.0, 84.0), 0.25)["stage"] == 1
    assert saturation_point(_rows(64.0, 79.9), 0.25)["stage"] == 0
    rising = saturation_point(_rows(64.0, 80.0), 0.25)
    assert rising["stage"] is None and "not saturated" in rising["note"]
    assert rising["rule"] == "next stage adds < 25% output tokens/s"


def test_saturation_knee_reports_that_stage_figures() -> None:
    knee = saturation_point(_rows(0.0, 50.0, 100.0, 101.0, 90.0), 0.1)
    # stage 0 has no throughput (nothing to compare); stage 2's successor adds 1%
    assert knee == {
        "rule": "next stage adds < 10% output tokens/s",
        "stage": 2,
        "users": 3,
        "rate": None,
        "output_tokens_per_s": 100.0,
        "ttft_p95_ms": 20.0,
        "tpot_p50_ms": 2.0,
    }


def test_saturation_of_the_mixed_run() -> None:
    stages, windows = _stages()
    out = analyse(_run(), Slos(), stages, windows, saturation_gain=0.5)
    assert [r["summary"]["output_tokens_per_s"] for r in out["stages"]] == [4.0, 6.0]
    assert out["saturation"]["stage"] is None  # 6 is exactly +50%
    knee = analyse(_run(), Slos(), stages, windows, saturation_gain=0.51)["saturation"]
    assert (knee["stage"], knee["output_tokens_per_s"]) == (0, 4.0)
    assert knee["ttft_p95_ms"] == pytest.approx(487.5)  # A 250, B 500
    assert knee["tpot_p50_ms"] == pytest.approx(500 / 3)  # A only


def test_a_failed_request_first_in_line_hides_no_later_tokens() -> None:
    run = _run()
    run.insert(0, run.pop(3))  # D (failed) first
    assert tokens_in_window(run, 101.0, 102.0) == 6
    assert tokens_in_window(run, 101.75, 102.0) == 5  # C's body read at exactly the window's start counts


def test_a_success_without_an_end_stamp_counts_no_tokens() -> None:
    record = _record("G", GENERATE, "a", 100.0, [], 100.5, 7)
    record.end = None  # e.g. a record read back from a worker without its end
    assert tokens_in_window([record], 0.0, 1000.0) == 0


def test_the_stage_table_needs_one_window_per_stage() -> None:
    stages, windows = _stages()
    with pytest.raises(ValueError):
        stage_table(_run(), stages, windows[:1], Slos(), warmup=0.0)


def test_stages_are_analysed_only_with_their_windows() -> None:
    stages, windows = _stages()
    assert "stages" not in analyse(_run(), Slos(), stages, None)
    assert "stages" not in analyse(_run(), Slos(), [], windows)
    assert "saturation" not in analyse(_run(), Slos(), None, windows)
    out = analyse(_run(), Slos(), stages, windows)
    assert out["saturation"]["rule"] == "next stage adds < 10% output tokens/s"  # the default gain


def test_saturation_with_tiny_throughput() -> None:
    # below one token/s still counts as throughput: 0.5 -> 0.5 adds nothing
    assert saturation_point(_rows(0.5, 0.5), 0.1)["stage"] == 0


def test_timeline_of_nothing_and_of_one_instant_failure() -> None:
    assert timeline([]) == {
        "t": [],
        "tokens_per_s": [],
        "requests_per_s": [],
        "ttft_p50_ms": [],
        "ttft_p95_ms": [],
    }
    refused = _record("F", STREAM, "a", 50.0, [], 50.0, None, status=429, error_type="overloaded")
    t = timeline([refused])
    assert (t["t"], t["tokens_per_s"], t["requests_per_s"]) == ([0.0], [0.0], [0.0])  # one empty bucket
    refused.end = None  # a connection that never got an answer: its send time closes the span
    assert timeline([refused, *_run()])["t"] == [float(i) for i in range(52)]


def test_timeline_spans_the_last_token_even_without_an_end_stamp() -> None:
    a = _run()[0]
    a.end = None
    t = timeline([a])  # sent 100.0, last token 100.75: one bucket holding all 4 tokens
    assert (t["t"], t["tokens_per_s"]) == ([0.0], [4.0])
    a.token_times.append(101.5)
    assert timeline([a])["tokens_per_s"] == [4.0, 1.0]


def test_generate_tokens_land_in_the_bucket_of_their_body_read() -> None:
    a = _run()[0]  # stream: 100.25 100.375 | 100.5 | 100.75 (the span's end) in quarter-second buckets
    early = _record("G", GENERATE, "a", 100.0, [], 100.25, 3)  # body read at 100.25: bucket 1
    late = _record("H", GENERATE, "b", 100.0, [], 100.75, 5)  # at the span's very end: the last bucket
    t = timeline([a, early, late], bucket=0.25)
    assert t["t"] == [0.0, 0.25, 0.5]
    assert t["tokens_per_s"] == [0.0, (2 + 3) / 0.25, (2 + 5) / 0.25]
    assert t["requests_per_s"] == [0.0, 1 / 0.25, 2 / 0.25]
    late.end = None  # no end stamp: it finishes (with no tokens placed) at its send time
    t = timeline([a, early, late], bucket=0.25)
    assert t["requests_per_s"] == [1 / 0.25, 1 / 0.25, 1 / 0.25]
    assert t["tokens_per_s"] == [0.0, (2 + 3) / 0.25, 2 / 0.25]


def test_timeline_ttft_is_grouped_by_the_second_a_request_was_sent() -> None:
    a = _run()[0]  # sent 100.0, TTFT 250 ms
    k = _record("K", STREAM, "b", 100.625, [100.75, 100.875], 100.875, 2)  # sent in the 2nd half-second
    t = timeline([a, k], bucket=0.5)
    assert t["t"] == [0.0, 0.5]
    assert (t["ttft_p50_ms"], t["ttft_p95_ms"]) == ([250.0, 125.0], [250.0, 125.0])


def test_steady_state_window_is_half_open_and_leaves_out_connection_openers() -> None:
    run = _run()  # sent: A 100.0, B 100.5, C 101.0, D 101.0, E 101.25, F 101.5
    run[1].first_on_connection = True  # B opened its TCP connection
    assert in_steady_state(run[0], 100.0, 101.0)  # sent exactly at the start: inside
    assert not in_steady_state(run[2], 100.0, 101.0)  # sent exactly at the end: outside
    assert not in_steady_state(run[1], 100.0, 101.0)  # inside, but it carried the connect
    out = steady_state(run, Slos(), 100.0, 101.0)
    assert out["left_out"] == {"before_warmup_end": 0, "after_cooldown_start": 4, "opened_a_connection": 1}
    later = steady_state(run, Slos(), 100.5, 101.25)
    # B at the start (but an opener), C and D inside, E exactly at the end; A before
    assert later["left_out"] == {"before_warmup_end": 1, "after_cooldown_start": 2, "opened_a_connection": 1}
    assert later["overall"]["requests"] == 2 and set(later["by_adapter"]) == {"a", "b"}
