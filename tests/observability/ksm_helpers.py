"""kube-state-metrics (go/kube-state-metrics) on 127.0.0.1, watching the loopback API server."""

from __future__ import annotations

import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

from loraxkit import gotools
from loraxkit.sim.process import free_port

BUILD_COMMAND = "loraxkit tools build kube-state-metrics"


def ksm_binary() -> Path | None:
    return gotools.bin_path("kube-state-metrics", "kube-state-metrics")


class KubeStateMetrics:
    """Pod metrics of `namespace` only (what the LoraxPod* alerts read), served on a free loopback port."""

    def __init__(self, kubeconfig: Path, namespace: str) -> None:
        binary = ksm_binary()
        assert binary is not None, f"kube-state-metrics is not built; run `{BUILD_COMMAND}`"
        self.port, telemetry = free_port(), free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.args = [
            str(binary),
            f"--kubeconfig={kubeconfig}",
            "--resources=pods",
            f"--namespaces={namespace}",
            "--host=127.0.0.1",
            f"--port={self.port}",
            "--telemetry-host=127.0.0.1",
            f"--telemetry-port={telemetry}",
        ]
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 (closed in __exit__)
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> KubeStateMetrics:
        self.proc = subprocess.Popen(self.args, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while not self._serving():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                output = self.output()
                self.__exit__(None, None, None)
                raise RuntimeError(f"kube-state-metrics did not start:\n{output[-3000:]}")
            time.sleep(0.2)
        return self

    def _serving(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://{self.address}/metrics", timeout=5) as response:
                return response.status == 200
        except (OSError, urllib.error.URLError):
            return False

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://{self.address}/metrics", timeout=10) as response:
            return str(response.read().decode())

    def output(self) -> str:
        self._log.seek(0)
        return self._log.read().decode(errors="replace")

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
