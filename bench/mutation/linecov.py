"""pytest plugin of the mutation tool (`-p linecov`): tells the line tracer which test runs (coverage run)
and records each test's duration and the tests that failed (every run), into $MUTATE_COV_OUT/tests.json."""

from __future__ import annotations

import json
import os
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from linetracer import ENV_OUT, epoch_map


class _Recorder:
    def __init__(self, out: Path) -> None:
        self.out = out
        self.tests: list[str] = []
        self.durations: list[float] = []
        self.failed: list[str] = []
        self._epoch = epoch_map(out)

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item) -> Iterator[None]:
        struct.pack_into("i", self._epoch, 0, len(self.tests))
        self.tests.append(item.nodeid)
        start = time.perf_counter()
        yield
        self.durations.append(time.perf_counter() - start)
        struct.pack_into("i", self._epoch, 0, -2)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.failed and report.nodeid not in self.failed:
            self.failed.append(report.nodeid)

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self.failed.append(f"collect:{report.nodeid}")

    def pytest_sessionfinish(self) -> None:
        data = {"tests": self.tests, "durations": self.durations, "failed": self.failed}
        (self.out / "tests.json").write_text(json.dumps(data))


def pytest_configure(config: pytest.Config) -> None:
    out = os.environ.get(ENV_OUT)
    if out:
        config.pluginmanager.register(_Recorder(Path(out)), "linecov-recorder")
