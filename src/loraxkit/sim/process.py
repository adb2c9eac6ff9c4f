"""`SimulatorProcess`: run `loraxkit sim` as a subprocess on a free 127.0.0.1 port for tests and demos.

with SimulatorProcess("--profile", "synthetic", trace=True) as sim:
    httpx.post(sim.base_url + "/generate", json={...})
    records = read_trace(sim.trace_path)
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

import httpx

from loraxkit import childproc


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class SimulatorProcess:
    """Start the simulator, wait until `/health` answers, terminate it on exit.

    `args` are extra `loraxkit sim` arguments; `trace=True` writes a trace to a temporary file
    (`.trace_path`); `cpu` pins the process to one core (benchmarks)."""

    def __init__(
        self,
        *args: str,
        trace: bool | str = False,
        cpu: int | None = None,
        startup_timeout: float = 60.0,
        wait_ready: bool = True,
    ) -> None:
        self.args = list(args)
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self._tmpdir: tempfile.TemporaryDirectory[str] | None = None
        self.trace_path: str | None = None
        if trace:
            if isinstance(trace, str):
                self.trace_path = trace
            else:
                self._tmpdir = tempfile.TemporaryDirectory(prefix="loraxkit-sim-")
                self.trace_path = str(Path(self._tmpdir.name) / "trace.jsonl")
        self.cpu = cpu
        self.startup_timeout = startup_timeout
        self.wait_ready = wait_ready
        self.proc: subprocess.Popen[bytes] | None = None
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 (closed in __exit__)

    def command(self) -> list[str]:
        cmd = [
            sys.executable,
            "-m",
            "loraxkit.cli",
            "sim",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            *self.args,
        ]
        if self.trace_path:
            cmd += ["--trace", self.trace_path]
        return cmd

    def __enter__(self) -> SimulatorProcess:
        preexec = None
        if self.cpu is not None:
            cpu = self.cpu

            def preexec() -> None:
                os.sched_setaffinity(0, {cpu})

        self.proc = subprocess.Popen(
            self.command(), stdout=self._log, stderr=subprocess.STDOUT, preexec_fn=preexec
        )
        if self.wait_ready:
            try:
                self.wait_healthy(self.startup_timeout)
            except BaseException:
                self.__exit__(None, None, None)
                raise
        return self

    def wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"simulator exited with {self.proc.returncode}:\n{self.output()}")
            try:
                if httpx.get(self.base_url + "/health", timeout=1.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"simulator not healthy after {timeout} s:\n{self.output()}")

    def output(self) -> str:
        self._log.seek(0)
        return self._log.read().decode(errors="replace")

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        childproc.stop(self.proc, grace=10)
        self._log.close()
        if self._tmpdir is not None:
            self._tmpdir.cleanup()
