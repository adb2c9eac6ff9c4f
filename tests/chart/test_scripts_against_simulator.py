"""The scripts the chart ships (the deep liveness check, the helm-test hook) run for real against the
project's LoRAX simulator on 127.0.0.1: they pass on good answers and fail on error responses."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
from chart_helpers import container, render, render_hooks

from loraxkit.sim.process import SimulatorProcess, free_port

GOOD = ["org/adapter-a", "org/adapter-b"]
BAD = "broken/adapter"


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorProcess]:
    with SimulatorProcess(
        "--profile", "synthetic", "--decode-ms", "1", "--prefill-ms", "1", "--adapter-load-ms", "1",
        "--unloadable-adapter", "broken/*",
    ) as process:  # fmt: skip
        yield process


def deep_check_script(timeout_seconds: int = 20) -> str:
    values = {"probes": {"deepCheck": {"enabled": True, "timeoutSeconds": timeout_seconds}}}
    command = container(render(values))["livenessProbe"]["exec"]["command"]
    assert command[:2] == ["python", "-c"]
    return command[2]


def run_deep_check(port: int) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PORT": str(port)}
    return subprocess.run([sys.executable, "-c", deep_check_script()], env=env, capture_output=True,
                          text=True, timeout=60, check=False)  # fmt: skip


def run_test_hook(base_url: str, preloaded: list[str]) -> subprocess.CompletedProcess[str]:
    pod = render_hooks({"adapters": {"preloaded": preloaded}, "tests": {"timeoutSeconds": 20}})[0]
    command = pod["spec"]["containers"][0]["command"]
    assert command[:2] == ["/bin/sh", "-c"]
    script, argv0, url, *calls = command[2:]
    assert url == "http://lorax:80"
    local = [command[0], "-c", script, argv0, base_url, *calls]
    return subprocess.run(local, capture_output=True, text=True, timeout=120, check=False)


def test_deep_check_passes_when_generation_works(sim: SimulatorProcess) -> None:
    result = run_deep_check(sim.port)
    assert result.returncode == 0, result.stderr


def test_deep_check_fails_when_nothing_answers() -> None:
    assert run_deep_check(free_port()).returncode != 0


def test_helm_test_hook_passes_for_base_and_each_adapter(sim: SimulatorProcess) -> None:
    result = run_test_hook(sim.base_url, GOOD)
    assert result.returncode == 0, result.stdout + result.stderr
    # /generate and streamed OpenAI chat on the base model and each adapter, plus /generate_stream and
    # /v1/completions on the base model.
    assert result.stdout.count("OK:") == 2 * (1 + len(GOOD)) + 2
    for route in ("/generate_stream", "/v1/completions", "/v1/chat/completions"):
        assert f"POST {sim.base_url}{route}" in result.stdout


def test_helm_test_hook_fails_on_an_adapter_error_response(sim: SimulatorProcess) -> None:
    result = run_test_hook(sim.base_url, [GOOD[0], BAD])
    assert result.returncode != 0
    assert result.stdout.count("OK:") == 2
    assert "FAILED" in result.stdout


def test_helm_test_hook_fails_on_an_error_inside_a_stream(sim: SimulatorProcess) -> None:
    """Streams answer 200 and carry errors as an event; the chat call on the broken adapter must fail."""
    pod = render_hooks({"adapters": {"preloaded": [BAD]}, "tests": {"timeoutSeconds": 20}})[0]
    script, argv0, _url, *calls = pod["spec"]["containers"][0]["command"][2:]
    chat = [calls[i : i + 3] for i in range(0, len(calls), 3) if calls[i] == "/v1/chat/completions"][-1]
    result = subprocess.run(["/bin/sh", "-c", script, argv0, sim.base_url, *chat], capture_output=True,
                            text=True, timeout=120, check=False)  # fmt: skip
    assert result.returncode != 0, result.stdout
    assert "FAILED" in result.stdout
