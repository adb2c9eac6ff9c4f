"""No request is lost and a failed run never exits 0: a stream cut mid-way, a stalled server, a server killed
mid-run. Each is checked against what the server side says happened, never against wall-clock figures."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from faulty_server import BURST_WRITES, TOKENS_BEFORE_FAULT, faulty_server

from loraxkit.loadtest.backoff import JITTER, backoff_after
from loraxkit.loadtest.slo import NO_RESULT_EXIT_CODE, SLO_EXIT_CODE
from loraxkit.loadtest.tracecheck import load_records
from loraxkit.sim.process import SimulatorProcess

LOADTEST_DIR = Path(__file__).resolve().parents[2] / "loadtest"


def test_a_stream_cut_mid_way_is_a_failed_request_with_its_tokens(locust_run: Any) -> None:
    with faulty_server("cut") as url:
        run = locust_run(url, "-u", "2", "-r", "2", "-t", "2s", "--stop-timeout", "5", "--output-tokens", "8")
    assert "Traceback" not in run.output
    records = run.records
    lost = [r for r in records if r.error_type == "lost_mid_stream"]
    done = [r for r in records if r.ok]
    assert lost and done, run.output[-3000:]
    assert len(lost) + len(done) == len(records) == run.report["overall"]["requests"]
    # the server cut every other stream after 3 token events: each kept exactly those
    assert all(r.stream_tokens == TOKENS_BEFORE_FAULT and r.status == 200 for r in lost)
    assert all(r.stream_tokens == TOKENS_BEFORE_FAULT + 1 for r in done)
    assert run.report["overall"]["errors"]["by_error_type"]["lost_mid_stream"] == len(lost)
    assert run.returncode == SLO_EXIT_CODE, run.output[-3000:]  # ~50 % errors, default ceiling 1 %
    assert "BREACHED: max_error_rate" in run.output and "lost_mid_stream" in run.output


def test_a_stalled_server_is_reported_and_exits_non_zero(locust_run: Any) -> None:
    with faulty_server("stall") as url:
        run = locust_run(
            url,
            "-u",
            "2",
            "-r",
            "2",
            "-t",
            "1s",
            "--stop-timeout",
            "1",
            "--stall-timeout",
            "0.5",
            "--max-error-rate",
            "1",  # even when the user accepts any error rate
        )
    assert "Traceback" not in run.output
    records = run.records
    assert len(records) == 2, run.output[-3000:]  # one stalled request per user, none dropped
    assert all(r.error_type == "stalled" and r.stream_tokens == TOKENS_BEFORE_FAULT for r in records)
    assert run.report["cancelled_at_stop"] == 2
    assert run.returncode == NO_RESULT_EXIT_CODE
    assert "no request completed" in run.output


def test_a_server_killed_mid_run_fails_the_run_and_users_back_off(tmp_path: Path) -> None:
    out = tmp_path / "report"
    with SimulatorProcess("--profile", "synthetic", "--decode-ms", "10", trace=True) as sim:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "locust",
                "-f",
                str(LOADTEST_DIR),
                "--host",
                sim.base_url,
                "--headless",
                "-u",
                "4",
                "-r",
                "4",
                "-t",
                "5s",
                "--output-tokens",
                "30",
                "--report-dir",
                str(out),
                "--save-records",
                "--only-summary",
                "--progress-interval",
                "0",
                "--slo-ttft-p99",
                "100000",  # a latency gate that passes must not hide the failures
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        try:
            trace = Path(sim.trace_path)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and _lines(trace) < 8:  # some requests done, others mid-stream
                time.sleep(0.05)
            sim.proc.kill()
            sim.proc.wait()
            served = _lines(trace)
            output, _ = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    assert served >= 8
    assert "Traceback" not in output
    records = load_records(out / "records.jsonl")
    report = json.loads((out / "report.json").read_text())
    by_type = report["overall"]["errors"]["by_error_type"]
    ok = [r for r in records if r.ok]
    assert len(ok) == served  # every request the server finished is a success, and only those
    lost = [r for r in records if r.error_type == "lost_mid_stream"]
    assert lost and all(0 < r.stream_tokens < 30 for r in lost if r.stream_tokens), by_type
    assert by_type.get("connection", 0) >= 4
    assert proc.returncode == SLO_EXIT_CODE, output[-3000:]
    assert "BREACHED: max_error_rate" in output
    _assert_backed_off(records)


def _lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def _assert_backed_off(records: list[Any]) -> None:
    """After each refused connection a user waits at least the next back-off step less its jitter."""
    by_user: dict[int, list[float]] = defaultdict(list)
    for r in sorted(records, key=lambda r: r.sent):
        if r.error_type == "connection":
            by_user[r.user].append(r.sent)
    assert by_user
    for sends in by_user.values():
        step = 0.0
        for before, after in itertools.pairwise(sends):
            step = backoff_after(step)
            assert after - before >= (1 - JITTER) * step, (sends, step)


def test_the_self_check_reports_token_events_that_share_one_read(locust_run: Any) -> None:
    with faulty_server("burst") as url:
        run = locust_run(url, "-u", "2", "-r", "2", "-t", "1s", "--stop-timeout", "5", "--output-tokens", "8")
    ok = [r for r in run.records if r.ok]
    assert ok, run.output[-3000:]
    receive = run.report["self_check"]["receive"]
    # the server wrote token events 2k and 2k+1 together: the first of each pair shares the second's stamp
    # (more when the client read several writes at once)
    assert receive["merged_token_events"] >= BURST_WRITES * len(ok)
    assert receive["requests_first_token_merged"] == len(ok)
    assert "receive side UNRELIABLE" in run.output
    assert "receive side UNRELIABLE" in (run.report_dir / "report.md").read_text()
