"""Offline checks of the live suite's wiring: how it skips, and what it would install and call.

These run in CI (no e2e marker); the live tests themselves need a cluster.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from live_release import DEFAULT_PROFILE, REPO, LoraxRelease, Settings

LIVE_SUITE = Path(__file__).with_name("test_lorax_live.py")
KUBECONFIG = """apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
"""


def _run_live_suite(
    *args: str, kubeconfig: str | None = None, without_tools: Path | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    if kubeconfig:
        env["KUBECONFIG"] = kubeconfig
    if without_tools is not None:  # a user without Go and without built tools
        env["LORAXKIT_TOOLS_CACHE"] = str(without_tools)
        env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + "/usr/bin:/bin"
    return subprocess.run(
        [sys.executable, "-m", "pytest", str(LIVE_SUITE), "-q", "-rs", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _skip_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("SKIPPED")]


def test_without_a_cluster_or_tools_the_suite_skips_with_one_line(tmp_path: Path) -> None:
    run = _run_live_suite(without_tools=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "6 skipped" in run.stdout and "error" not in run.stdout.lower(), run.stdout
    lines = _skip_lines(run.stdout)
    assert len(lines) == 1 and "loraxkit tools build" in lines[0], run.stdout


def test_an_exported_kubeconfig_alone_does_not_install(tmp_path: Path) -> None:
    # Not asked for the live suite: the loopback control plane, never the exported cluster (127.0.0.1:1 here).
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(KUBECONFIG)
    run = _run_live_suite(kubeconfig=str(kubeconfig), without_tools=tmp_path / "tools")
    lines = _skip_lines(run.stdout)
    assert run.returncode == 0 and len(lines) == 1 and "loraxkit tools build" in lines[0], run.stdout
    assert "127.0.0.1:1" not in run.stdout


def test_asking_for_the_suite_runs_it(tmp_path: Path) -> None:
    # The kubeconfig points at a closed local port: the suite must try (and fail to reach) the cluster.
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(KUBECONFIG)
    run = _run_live_suite("-x", "--kubeconfig", str(kubeconfig))
    assert run.returncode != 0 and "skipped" not in run.stdout, run.stdout
    assert "127.0.0.1" in run.stdout


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(KUBECONFIG)
    return Settings(
        kubeconfig=str(kubeconfig),
        value_files=(DEFAULT_PROFILE,),
        sets=("gpu.count=1", "server.maxConcurrentRequests=64"),
        release="lorax-e2e",
        namespace="lorax-e2e",
        adapter=None,
        ready_timeout=60,
        keep=False,
    )


def test_values_combine_files_then_sets(settings: Settings) -> None:
    values = settings.values()
    assert values["server"]["maxConcurrentRequests"] == 64  # from --lorax-set
    assert values["server"]["maxTotalTokens"] == 4096  # from the profile
    assert values["nodeSelector"] == {"k8s.amazonaws.com/accelerator": "nvidia-l40s"}


def test_release_targets_what_the_chart_renders(settings: Settings) -> None:
    release = LoraxRelease(settings)  # renders the real chart; does not contact the cluster
    assert release.deployment == "lorax-e2e"
    assert "app.kubernetes.io/instance=lorax-e2e" in release.selector
    assert release.port == 8080
    assert release.model_id == "mistralai/Mistral-7B-Instruct-v0.1"
    assert release.adapter == "vineetsharma/qlora-adapter-Mistral-7B-Instruct-v0.1-gsm8k"
