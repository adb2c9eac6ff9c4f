"""A record's receive-side fields (reads, read lag, merged tokens, whether it opened its connection) when the
harness never set them: a request refused before any byte was read, a `/generate` answer or a stream read
with Python's clock (`--python-clock`). They are written to records.jsonl (`--save-records`) and decide what
the receive self-check and the steady-state window count, so their unset values are figures a user reads."""

from __future__ import annotations

import json
from array import array
from pathlib import Path

from loraxkit.loadtest.analysis import steady_state
from loraxkit.loadtest.metrics import RequestRecord, Slos
from loraxkit.loadtest.selfcheck import receive_check
from loraxkit.loadtest.tracecheck import load_records


def _saved_and_loaded(record: RequestRecord, tmp_path: Path) -> RequestRecord:
    """The record as `--save-records` writes it (harness._save_records) and tracecheck reads it back."""
    path = tmp_path / "records.jsonl"
    row = record.to_wire()
    row["token_times"] = list(record.token_times)
    path.write_text(json.dumps(row) + "\n", encoding="utf-8")
    (loaded,) = load_records(path)
    return loaded


def test_a_request_never_read_saves_zero_reads_lag_and_merged_tokens(tmp_path: Path) -> None:
    refused = RequestRecord(request_id="r", route="/generate_stream", adapter=None, sent=1.0)
    refused.error_type = "connection"
    row = refused.to_wire()
    assert (row["reads"], row["merged_tokens"], row["read_lag_max"], row["read_lag_sum"]) == (0, 0, 0.0, 0.0)
    assert row["first_on_connection"] is False
    loaded = _saved_and_loaded(refused, tmp_path)
    assert (loaded.reads, loaded.merged_tokens, loaded.read_lag_max, loaded.read_lag_sum) == (0, 0, 0.0, 0.0)
    assert loaded.first_on_connection is False


def test_the_receive_check_counts_only_streams_read_with_kernel_stamps() -> None:
    # one stream read with kernel stamps (3 reads, the 2nd and 3rd token shared a read), one read with
    # Python's clock and one /generate answer (neither sets the read fields), one refused request
    stamped = RequestRecord(request_id="k", route="/generate_stream", adapter=None, sent=1.0, status=200)
    stamped.token_times = array("d", [2.0, 2.5, 2.5, 3.0])
    stamped.reads, stamped.read_lag_max, stamped.read_lag_sum = 3, 0.004, 0.006
    python_clock = RequestRecord(request_id="p", route="/generate_stream", adapter=None, sent=1.0, status=200)
    python_clock.token_times = array("d", [2.0, 2.0, 2.1])
    generate = RequestRecord(request_id="g", route="/generate", adapter=None, sent=1.0, status=200, end=2.0)
    refused = RequestRecord(request_id="r", route="/generate_stream", adapter=None, sent=1.0)
    check = receive_check([stamped, python_clock, generate, refused])
    assert check["requests"] == 1 and check["token_events"] == 4 and check["reads"] == 3
    assert check["merged_token_events"] == 1  # 2.5, 2.5: one event shares the next one's stamp
    assert check["read_lag_mean_ms"] == 1000.0 * 0.006 / 3
    assert check["read_lag_max_ms"]["count"] == 1 and check["read_lag_max_ms"]["max"] == 4.0
    assert receive_check([python_clock, generate, refused]) == {"kernel_stamps": False}


def test_a_request_whose_connection_was_not_seen_counts_in_the_steady_state() -> None:
    # users.py marks first_on_connection only when it saw the socket open; a record it never marked (no
    # socket seen) is steady-state material, not a connection opener
    unmarked = RequestRecord(request_id="u", route="/generate", adapter=None, sent=5.0, status=200, end=6.0)
    opener = RequestRecord(request_id="o", route="/generate", adapter=None, sent=5.0, status=200, end=6.0)
    opener.first_on_connection = True
    steady = steady_state([unmarked, opener], Slos(), start=0.0, until=10.0)
    assert steady["left_out"]["opened_a_connection"] == 1
    assert steady["overall"]["requests"] == 1


def test_a_connection_opener_is_left_out_once_under_its_own_reason() -> None:
    # [5, 10): an opener sent before the window counts as warm-up, one sent exactly at its end as
    # cool-down, one exactly at its start as an opener; each is left out once
    def opener(sent: float) -> RequestRecord:
        r = RequestRecord(request_id=f"o{sent}", route="/generate", adapter=None, sent=sent, status=200)
        r.end, r.first_on_connection = sent + 0.5, True
        return r

    plain = RequestRecord(request_id="p", route="/generate", adapter=None, sent=7.0, status=200, end=7.5)
    steady = steady_state([opener(4.0), opener(5.0), opener(10.0), plain], Slos(), start=5.0, until=10.0)
    assert steady["left_out"] == {"before_warmup_end": 1, "after_cooldown_start": 1, "opened_a_connection": 1}
    assert steady["overall"]["requests"] == 1
