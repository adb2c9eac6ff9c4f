"""RequestRecord's derived values at their edges, on records shaped like the ones the harness makes
(users.py / stream.py): a connection that never answered, a non-200 answer, `/generate` (no token events),
a stream whose server sent no count."""

from __future__ import annotations

from array import array

from loraxkit.loadtest.metrics import RequestRecord, Slos, distribution, error_breakdown, summarize, window


def _record(stamps: list[float], **fields: object) -> RequestRecord:
    record = RequestRecord(request_id="r", route="/generate_stream", adapter="a", sent=1.0)
    record.token_times = array("d", stamps)
    for name, value in fields.items():
        setattr(record, name, value)
    return record


def test_a_connection_that_never_answered_counts_under_status_0() -> None:
    # users.py leaves the status unset when no response came back and names the error
    record = RequestRecord(request_id="r", route="/generate", adapter=None, sent=1.0)
    record.error_type = "connection"
    assert not record.ok
    assert error_breakdown([record]) == {"by_status": {"0": 1}, "by_error_type": {"connection": 1}}
    assert record.adapter_label == "<base>"


def test_a_non_200_answer_is_never_ok_even_without_an_error_type() -> None:
    assert not _record([], status=500).ok
    assert not _record([2.0], status=204).ok
    assert _record([2.0], status=200).ok
    assert not _record([2.0], status=200, error_type="generation").ok


def test_token_counts_disagree_only_when_both_sides_counted() -> None:
    assert not _record([], status=200, server_tokens=5, end=2.0).token_count_mismatch  # /generate
    assert not _record([2.0, 2.5], status=200, server_tokens=None).token_count_mismatch  # no server count
    assert not _record([2.0, 2.5], status=200, server_tokens=2).token_count_mismatch
    assert _record([2.0, 2.5], status=200, server_tokens=3).token_count_mismatch
    records = [
        _record([], status=200, server_tokens=5, end=2.0),
        _record([2.0, 2.5], status=200, server_tokens=None),
        _record([2.0, 2.5], status=200, server_tokens=3),
        _record([2.0, 2.5], status=200, server_tokens=9, error_type="generation"),  # failed: not counted
    ]
    assert summarize(records)["token_count_mismatches"] == 1


def test_a_streams_e2e_ends_at_its_last_token_not_when_reading_stopped() -> None:
    stream = _record([1.5, 3.0], status=200, server_tokens=2, end=5.0)  # the [DONE] read came later
    assert (stream.ttft, stream.e2e, stream.tpot) == (0.5, 2.0, 1.5)
    generate = _record([], status=200, server_tokens=2, end=5.0)
    assert (generate.ttft, generate.e2e, generate.tpot) == (None, 4.0, None)
    assert _record([]).e2e is None  # no answer, no end


def test_one_token_event_has_no_tpot_whatever_the_server_counted() -> None:
    assert _record([2.0], status=200, server_tokens=2).tpot is None
    assert _record([2.0, 2.5], status=200, server_tokens=1).tpot is None
    assert _record([2.0, 2.5], status=200, server_tokens=2).tpot == 0.5


def test_ttft_from_schedule_needs_a_schedule_and_a_token() -> None:
    assert _record([2.0], status=200).ttft_from_schedule is None  # closed loop
    assert _record([], status=200, intended=0.5, end=2.0).ttft_from_schedule is None  # /generate
    assert _record([2.0], status=200, intended=0.5).ttft_from_schedule == 1.5
    assert _record([2.0], status=200, intended=0.5).schedule_lag == 0.5


def test_a_distribution_takes_any_iterable_of_samples() -> None:
    expected = {"count": 2, "mean": 1500.0, "min": 1000.0, "max": 2000.0}
    for samples in ([1.0, 2.0], (s for s in (1.0, 2.0)), {1.0: None, 2.0: None}.keys()):
        d = distribution(samples)
        assert {k: d[k] for k in expected} == expected
    assert distribution(x for x in ()) == {"count": 0}


def test_a_failure_without_an_error_type_or_an_end_still_counts() -> None:
    unanswered = _record([], status=500)  # no error_type, no end stamp
    assert error_breakdown([unanswered]) == {"by_status": {"500": 1}, "by_error_type": {"unknown": 1}}
    assert window([unanswered]) == (1.0, 1.0)
    assert window([unanswered, _record([3.0], status=200)]) == (1.0, 3.0)
    assert summarize([unanswered])["failed"] == 1


def test_the_summary_of_nothing_is_zeros_not_errors() -> None:
    s = summarize([], Slos(ttft=1.0))
    assert (s["requests"], s["failed"], s["error_rate"], s["duration_s"]) == (0, 0, 0.0, 0.0)
    assert (s["output_tokens_per_s"], s["requests_per_s"], s["token_count_mismatches"]) == (0.0, 0.0, 0)
    assert s["goodput"] == {"requests_meeting_slos": 0, "fraction": 0.0, "requests_per_s": 0.0}
    assert s["ttft_ms"] == s["itl_ms"] == {"count": 0}


def test_rates_over_a_zero_and_a_sub_second_span() -> None:
    instant = _record([], status=200, server_tokens=4, end=1.0)  # answered in the second it was sent
    s = summarize([instant], Slos(e2e=1.0))
    assert (s["duration_s"], s["output_tokens_per_s"], s["requests_per_s"]) == (0.0, 0.0, 0.0)
    assert s["goodput"] == {"requests_meeting_slos": 1, "fraction": 1.0, "requests_per_s": 0.0}
    half = _record([], status=200, server_tokens=4, end=1.5)
    s = summarize([half], Slos(e2e=1.0))
    assert (s["duration_s"], s["output_tokens_per_s"], s["requests_per_s"]) == (0.5, 8.0, 2.0)
    assert s["goodput"]["requests_per_s"] == 2.0


def test_one_token_requests_alone_have_no_inter_token_gaps() -> None:
    s = summarize([_record([2.0], status=200, server_tokens=1), _record([3.0], status=200, server_tokens=1)])
    assert s["itl_ms"] == {"count": 0} and s["tpot_ms"] == {"count": 0}
    assert s["ttft_ms"]["count"] == 2


def test_client_overhead_needs_both_an_e2e_and_the_servers_total_time() -> None:
    timed = _record([], status=200, server_tokens=1, end=1.25, server_timing={"total_time_ms": 200.0})
    untotalled = _record([], status=200, server_tokens=1, end=1.5, server_timing={"queue_time_ms": 3.0})
    unended = _record([], status=200, server_tokens=1, server_timing={"total_time_ms": 100.0})
    s = summarize([timed, untotalled, unended])
    assert s["client_overhead_ms"]["count"] == 1
    assert s["client_overhead_ms"]["p50"] == 50.0  # 250 ms E2E - 200 ms in the server
    assert s["server_timing_ms"]["total_time_ms"]["count"] == 2
    assert s["server_timing_ms"]["queue_time_ms"]["count"] == 1
    assert "client_overhead_ms" not in summarize([untotalled, unended])
