"""A real Prometheus for the end-to-end tests: loopback only, its own temporary storage, stopped on exit."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

from loraxkit.observability.promapi import PromAPI
from loraxkit.sim.process import free_port

PROMETHEUS = shutil.which("prometheus")


class PrometheusServer:
    """`prometheus` on 127.0.0.1 with the given scrape targets and rule files.

    `targets` maps a target address to the labels it gets (namespace/service, as a ServiceMonitor would).
    `extra_jobs` are further scrape configs as Prometheus reads them (e.g. kube-state-metrics')."""

    def __init__(
        self,
        targets: dict[str, dict[str, str]],
        rule_files: list[Path],
        interval: str = "1s",
        job: str = "lorax",
        extra_jobs: list[dict[str, Any]] | None = None,
    ) -> None:
        assert PROMETHEUS is not None
        self._dir = tempfile.TemporaryDirectory(prefix="loraxkit-prom-")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.api = PromAPI(self.url)
        config: dict[str, Any] = {
            "global": {
                "scrape_interval": interval,
                "evaluation_interval": interval,
                "scrape_timeout": interval,
            },
            "rule_files": [str(p) for p in rule_files],
            "scrape_configs": [
                {
                    "job_name": job,
                    "static_configs": [
                        {"targets": [addr], "labels": labels} for addr, labels in targets.items()
                    ],
                },
                *(extra_jobs or []),
            ],
        }
        self.config_path = Path(self._dir.name) / "prometheus.yml"
        self.config_path.write_text(yaml.safe_dump(config), encoding="utf-8")
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 (closed in __exit__)
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> PrometheusServer:
        assert PROMETHEUS is not None
        self.proc = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={self.config_path}",
                f"--storage.tsdb.path={Path(self._dir.name) / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while not self.api.ready():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.__exit__(None, None, None)
                raise RuntimeError(f"prometheus did not become ready:\n{self.output()}")
            time.sleep(0.2)
        return self

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
        self._dir.cleanup()
