"""Run `locust -f loadtest/ --headless` as a user would, against the LoRAX simulator."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from loraxkit.loadtest.metrics import RequestRecord
from loraxkit.loadtest.tracecheck import load_records
from loraxkit.sim.process import free_port

LOADTEST_DIR = Path(__file__).resolve().parents[2] / "loadtest"


@dataclass
class LocustRun:
    returncode: int
    output: str
    report_dir: Path

    @property
    def report(self) -> dict[str, Any]:
        return json.loads((self.report_dir / "report.json").read_text())

    @property
    def records(self) -> list[RequestRecord]:
        return load_records(self.report_dir / "records.jsonl")


def run_locust(host: str, out: Path, *args: str, timeout: float = 120.0) -> LocustRun:
    if "--processes" in args:  # not Locust's fixed 5557: other runs on this machine may hold it
        port = str(free_port())
        args = (*args, "--master-bind-port", port, "--master-port", port)
    cmd = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(LOADTEST_DIR),
        "--host",
        host,
        "--headless",
        "--report-dir",
        str(out),
        "--save-records",
        "--only-summary",
        "--progress-interval",
        "0",
        *args,
    ]
    # Own session: on a timeout the whole group goes, including --processes workers.
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=out.parent,
        start_new_session=True,
    )
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        raise AssertionError(f"locust did not finish in {timeout} s:\n{output[-3000:]}") from None
    return LocustRun(proc.returncode, output, out)


@pytest.fixture
def locust_run(tmp_path: Path):
    def _run(host: str, *args: str, name: str = "report", timeout: float = 120.0) -> LocustRun:
        return run_locust(host, tmp_path / name, *args, timeout=timeout)

    return _run
