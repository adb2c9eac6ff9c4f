"""Steady-state selection, the self-check's arithmetic, the exit code and the terminal summary, on hand-made
records (no server)."""

from __future__ import annotations

from array import array

import numpy as np
import pytest

from loraxkit.loadtest.analysis import analyse, in_steady_state
from loraxkit.loadtest.metrics import RequestRecord, Slos, summarize
from loraxkit.loadtest.selfcheck import merged_bounds, self_check
from loraxkit.loadtest.slo import NO_RESULT_EXIT_CODE, SLO_EXIT_CODE, evaluate_run, exit_code
from loraxkit.loadtest.summary import terminal_summary


def rec(
    sent: float, stamps: list[float], first: bool = False, error_type: str | None = None
) -> RequestRecord:
    return RequestRecord(
        request_id=f"r{sent}",
        route="/generate_stream",
        adapter="a",
        sent=sent,
        status=200,
        error_type=error_type,
        token_times=array("d", stamps),
        first_on_connection=first,
        reads=len(stamps),
    )


def test_steady_state_leaves_out_the_warm_up_the_cool_down_and_each_connect() -> None:
    connect = rec(10.0, [10.5], first=True)  # its TTFT holds the TCP connect
    early, late = rec(1.0, [1.1]), rec(19.5, [19.6])
    steady = [rec(t, [t + 0.1, t + 0.12]) for t in (10.2, 12.0, 15.0)]
    assert [in_steady_state(r, 10.0, 19.0) for r in (connect, early, late)] == [False, False, False]
    assert all(in_steady_state(r, 10.0, 19.0) for r in steady)
    report = analyse([connect, early, late, *steady], Slos(), steady=(10.0, 19.0))
    assert report["steady"]["overall"]["requests"] == 3
    assert report["steady"]["left_out"] == {
        "before_warmup_end": 1,
        "after_cooldown_start": 1,
        "opened_a_connection": 1,
    }
    assert abs(report["steady"]["overall"]["ttft_ms"]["p99"] - 100.0) < 1e-6
    assert report["overall"]["ttft_ms"]["max"] == 500.0  # the whole run keeps the connect


def test_merged_stamps_and_their_error_bound() -> None:
    assert merged_bounds(np.array([1.0, 1.02, 1.04])) == (0, False, [])
    # events 1 and 2 were read together at 1.06: event 1 arrived somewhere in (1.02, 1.06]
    count, first, bounds = merged_bounds(np.array([1.0, 1.02, 1.06, 1.06, 1.08]))
    assert (count, first) == (1, False) and np.allclose(bounds, [0.04])
    count, first, _ = merged_bounds(np.array([2.0, 2.0, 2.02]))
    assert (count, first) == (1, True)


def test_self_check_verdicts_say_how_much() -> None:
    clean = [rec(0.0, [0.1, 0.12, 0.14])]
    check = self_check(clean, [0.0001] * 50)
    assert check["receive"]["merged_token_events"] == 0
    assert [v.split(":")[0] for v in check["verdicts"]] == ["receive side ok", "send side ok"]
    merged = [rec(0.0, [0.1, 0.14, 0.14])]
    busy = self_check(merged, [0.02] * 50)
    assert busy["receive"]["merged_token_events"] == 1
    assert busy["verdicts"][0].startswith("receive side UNRELIABLE") and "40.00 ms" in busy["verdicts"][0]
    assert busy["verdicts"][1].startswith("send side UNRELIABLE")


@pytest.mark.parametrize(
    ("first_merged", "verdict"), [(1, "receive side ok"), (2, "receive side UNRELIABLE")]
)
def test_first_tokens_merged_in_at_most_a_thousandth_of_requests_are_reported_but_reliable(
    first_merged: int, verdict: str
) -> None:
    # 1000 requests of 3 token events; only first tokens merge (1 of 3000 events is under 0.1 % either way)
    records = [rec(0.0, [0.1, 0.1, 0.12] if i < first_merged else [0.1, 0.11, 0.12]) for i in range(1000)]
    line = self_check(records, [0.0001] * 50)["verdicts"][0]
    assert line.startswith(verdict + ":")
    assert f"{first_merged} request(s) ({first_merged / 10:.3f}%) had their first token read together" in line
    assert "nan" not in line  # a first token has no earlier stamp: no ITL bound to print


def test_send_side_says_which_requests_the_kernel_timed() -> None:
    kernel = rec(1.0, [1.1, 1.12])
    kernel.sent_user = 0.998  # the Python stamp came 2 ms before the kernel's transmit stamp
    # Every request timed from the kernel: a busy event loop does not move the figures.
    check = self_check([kernel], [0.02] * 50)
    assert check["send"]["kernel_send_stamps"] == check["send"]["requests"] == 1
    assert check["send"]["python_send_delay_ms"]["p50"] == pytest.approx(2.0)
    assert check["verdicts"][1].startswith("send side ok: 1 of 1 requests timed from the kernel's")
    # One request timed from the Python stamp: late by up to the Python send delay measured beside it.
    mixed = self_check([kernel, rec(2.0, [2.1, 2.12])], [])
    verdict = mixed["verdicts"][1]
    assert verdict.startswith("send side UNRELIABLE") and "late by 2.00 ms" in verdict
    # A connect is not the send path: requests that opened their connection are not in the delay.
    opener = rec(3.0, [3.2], first=True)
    opener.sent_user = 2.9
    assert self_check([kernel, opener], [])["send"]["python_send_delay_ms"]["count"] == 1


def test_exit_code_no_result_and_error_ceiling() -> None:
    nothing = {"overall": summarize([rec(0.0, [], error_type="cancelled_at_stop")])}
    assert exit_code(nothing, []) == NO_RESULT_EXIT_CODE
    whole = summarize([rec(0.0, [0.1]), rec(0.0, [], error_type="lost_mid_stream")])
    results = evaluate_run({"max_error_rate": 0.01}, whole, whole=whole)
    assert exit_code({"overall": whole}, results) == SLO_EXIT_CODE
    # the harness's own cut at stop is counted but not in the error rate
    cut = summarize([rec(0.0, [0.1]), rec(0.0, [], error_type="cancelled_at_stop")])
    assert cut["failed"] == 1 and cut["cut_at_stop"] == 1 and cut["error_rate"] == 0.0
    assert exit_code({"overall": cut}, evaluate_run({"max_error_rate": 0.01}, cut, whole=cut)) == 0


def test_terminal_summary_shows_steady_and_whole_rows_and_the_verdict() -> None:
    records = [rec(10.0, [10.5], first=True), *(rec(t, [t + 0.1, t + 0.12]) for t in (11.0, 12.0))]
    report = analyse(records, Slos(), steady=(10.0, 20.0))
    report["self_check"] = self_check(records, [])
    results = evaluate_run(
        {"max_error_rate": 0.01, "slo_ttft_p99": 200.0}, report["steady"]["overall"], whole=report["overall"]
    )
    text = terminal_summary(report, results)
    rows = {tuple(line.split()[:3]) for line in text.splitlines()}
    assert ("ALL", "steady", "2") in rows and ("whole", "3", "0") in rows
    assert "ok: slo-ttft-p99 [overall] = 100.000" in text  # judged on the steady state (connect left out)
    assert "passed (exit 0)" in text and "receive side ok" in text
