"""Fault injection in the simulator: each fault switched on at run time (`/sim/faults`) or at start
(`--faults`), and seen by a client, in the trace and in `/metrics` the way LoRAX shows it."""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from loraxkit.sim.process import SimulatorProcess
from loraxkit.sim.trace import read_trace

FAST = ("--profile", "synthetic", "--decode-ms", "2", "--prefill-ms", "1", "--adapter-load-ms", "20",
        "--log-level", "WARNING")  # fmt: skip


SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$")
LABEL = re.compile(r'(\w+)="([^"]*)"')


def sample(base_url: str, name: str, **labels: str) -> float:
    """One series' value from /metrics (0 when the series has not appeared yet, as LoRAX's). Parsed here:
    prometheus_client's parser renames counters to `*_total`, which LoRAX's exporter does not write."""
    text = httpx.get(base_url + "/metrics", timeout=10).text
    for line in text.splitlines():
        m = SAMPLE.match(line)
        if m and m.group(1) == name and labels.items() <= dict(LABEL.findall(m.group(2) or "")).items():
            return float(m.group(3))
    return 0.0


def set_faults(base_url: str, **settings: object) -> dict[str, object]:
    resp = httpx.post(base_url + "/sim/faults", json=settings, timeout=10)
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def generate(
    base_url: str, adapter: str | None = None, tokens: int = 8, timeout: float = 30
) -> httpx.Response:
    params: dict[str, object] = {"max_new_tokens": tokens}
    if adapter:
        params["adapter_id"] = adapter
    return httpx.post(
        base_url + "/generate", json={"inputs": "Hello there", "parameters": params}, timeout=timeout
    )


def stream_events(base_url: str, tokens: int = 8) -> tuple[int, list[dict[str, object]]]:
    body = {"inputs": "Hello there", "parameters": {"max_new_tokens": tokens}}
    events = []
    with httpx.stream("POST", base_url + "/generate_stream", json=body, timeout=30) as resp:
        for line in resp.iter_lines():
            if line.startswith("data:"):
                events.append(json.loads(line[5:]))
        return resp.status_code, events


@pytest.fixture(scope="module")
def shared_sim() -> Iterator[SimulatorProcess]:
    with SimulatorProcess(*FAST, trace=True) as proc:
        yield proc


@pytest.fixture
def sim(shared_sim: SimulatorProcess) -> Iterator[SimulatorProcess]:
    """The module's simulator, healed after each test (counters are compared as deltas)."""
    yield shared_sim
    httpx.delete(shared_sim.base_url + "/sim/faults", timeout=10)


class Trace:
    """The trace records written after this point."""

    def __init__(self, sim: SimulatorProcess) -> None:
        assert sim.trace_path is not None
        self.path = sim.trace_path
        self.skip = len(read_trace(self.path))

    def wait(self, count: int) -> list[dict[str, object]]:
        deadline = time.monotonic() + 10
        while len(records := read_trace(self.path)[self.skip :]) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(records) >= count, f"{len(records)} trace records, expected {count}"
        return records


def test_hang_stops_generation_while_health_stays_ok_and_recovers(sim: SimulatorProcess) -> None:
    trace, done = Trace(sim), sample(sim.base_url, "lorax_request_success")
    set_faults(sim.base_url, hang=True)
    result: dict[str, httpx.Response] = {}
    worker = threading.Thread(target=lambda: result.setdefault("r", generate(sim.base_url, tokens=5)))
    worker.start()
    time.sleep(1.0)
    assert "r" not in result, "a request finished while generation hangs"
    assert httpx.get(sim.base_url + "/health", timeout=5).status_code == 200  # lorax#779: /health still OK
    started = sample(sim.base_url, "lorax_batch_inference_count", method="prefill")
    finished = sample(sim.base_url, "lorax_batch_inference_success", method="prefill")
    assert started == finished + 1, (
        "the stuck step is counted as started and not as succeeded (infer.rs:1260)"
    )
    assert sample(sim.base_url, "lorax_request_success") == done
    assert httpx.get(sim.base_url + "/sim/state", timeout=5).json()["faults"]["hang"] is True
    httpx.delete(sim.base_url + "/sim/faults", timeout=5)
    worker.join(timeout=30)
    assert result["r"].status_code == 200
    assert sample(sim.base_url, "lorax_request_success") == done + 1
    record = trace.wait(1)[0]
    assert float(record["first_token"]) - float(record["arrival"]) >= 0.9, "the trace shows the stall"


def test_fail_ratio_ends_streams_with_an_in_stream_generation_error(sim: SimulatorProcess) -> None:
    trace, failed = Trace(sim), sample(sim.base_url, "lorax_request_failure", err="generation")
    set_faults(sim.base_url, fail_ratio=1.0, fail_after_tokens=2)
    status, events = stream_events(sim.base_url)
    assert status == 200, "LoRAX reports inference errors inside the stream, under HTTP 200"
    assert [("token" in e) for e in events] == [True, True, False]
    assert events[-1]["error_type"] == "generation"
    assert str(events[-1]["error"]).startswith("Request failed during generation: ")
    resp = generate(sim.base_url)
    assert resp.status_code == 424 and resp.json()["error_type"] == "generation"
    assert sample(sim.base_url, "lorax_request_failure", err="generation") == failed + 2
    assert {(r["error_type"], r["generated_tokens"]) for r in trace.wait(2)} == {("generation", 2)}


def test_fail_ratio_fails_about_that_share(sim: SimulatorProcess) -> None:
    before = sample(sim.base_url, "lorax_request_failure", err="generation")
    set_faults(sim.base_url, fail_ratio=0.3)
    statuses = [generate(sim.base_url, tokens=3).status_code for _ in range(200)]
    failed = statuses.count(424)
    assert failed + statuses.count(200) == 200
    assert 40 <= failed <= 80, f"{failed}/200 failed with fail_ratio 0.3"
    assert sample(sim.base_url, "lorax_request_failure", err="generation") == before + failed


def test_named_adapters_fail_to_load_others_do_not(sim: SimulatorProcess) -> None:
    before = sample(sim.base_url, "lorax_request_failure", err="download_adapter")
    set_faults(sim.base_url, adapter_fail=["acme/*"])
    bad = generate(sim.base_url, adapter="acme/sql")
    assert bad.status_code == 424 and bad.json()["error_type"] == "generation"
    assert generate(sim.base_url, adapter="other/sql").status_code == 200
    assert sample(sim.base_url, "lorax_request_failure", err="download_adapter") == before + 1


def test_named_adapters_load_slowly_and_their_requests_wait_in_the_queue(sim: SimulatorProcess) -> None:
    queued = sample(sim.base_url, "lorax_request_queue_duration_sum")
    set_faults(sim.base_url, adapter_slow=["slow/*"], adapter_slow_ms=1500)
    slow = generate(sim.base_url, adapter="slow/a")
    fast = generate(sim.base_url, adapter="quick/a")
    assert slow.status_code == fast.status_code == 200
    assert int(slow.headers["x-queue-time"]) >= 1400, slow.headers
    assert int(fast.headers["x-queue-time"]) < 1000, fast.headers
    assert sample(sim.base_url, "lorax_request_queue_duration_sum") - queued >= 1.4


def test_decode_factor_slows_every_decode_step(sim: SimulatorProcess) -> None:
    generate(sim.base_url, tokens=20)
    before_n = sample(sim.base_url, "lorax_batch_inference_duration_count", method="decode")
    before_s = sample(sim.base_url, "lorax_batch_inference_duration_sum", method="decode")
    set_faults(sim.base_url, decode_factor=5)
    trace = Trace(sim)
    generate(sim.base_url, tokens=20)
    n = sample(sim.base_url, "lorax_batch_inference_duration_count", method="decode") - before_n
    s = sample(sim.base_url, "lorax_batch_inference_duration_sum", method="decode") - before_s
    assert before_s / before_n == pytest.approx(0.002, rel=0.01)
    assert s / n == pytest.approx(0.010, rel=0.01), "a decode step takes 5 x 2 ms"
    slow = trace.wait(1)[-1]["token_times"]
    gaps = sorted(b - a for a, b in itertools.pairwise(slow))
    assert gaps[len(gaps) // 2] >= 0.009, "the trace's token gaps show the slower decode"


def test_exit_at_run_time_ends_the_process_with_the_code() -> None:
    with SimulatorProcess(*FAST) as proc:
        set_faults(proc.base_url, exit_code=3, exit_after_s=0.2)
        assert proc.proc is not None
        assert proc.proc.wait(timeout=15) == 3
        with pytest.raises(httpx.TransportError):
            httpx.get(proc.base_url + "/health", timeout=2)


def test_faults_set_at_start() -> None:
    with SimulatorProcess(*FAST, "--faults", '{"decode_factor": 3, "adapter_fail": "x/*"}') as proc:
        spec = httpx.get(proc.base_url + "/sim/faults", timeout=5).json()
        assert spec["decode_factor"] == 3 and spec["adapter_fail"] == ["x/*"]
        assert generate(proc.base_url, adapter="x/y").status_code == 424


def test_exit_set_at_start() -> None:
    proc = SimulatorProcess(*FAST, "--faults", '{"exit_code": 4, "exit_after_s": 0.5}', wait_ready=False)
    with proc:
        assert proc.proc is not None
        assert proc.proc.wait(timeout=60) == 4


@pytest.mark.parametrize(
    ("body", "names"),
    [
        ({"fail_ratio": 2}, "fail_ratio: must be between 0.0 and 1.0"),
        ({"hang": "yes"}, "hang: expected true or false"),
        ({"bogus": 1}, "unknown fault 'bogus'; known: adapter_fail"),
        ({"adapter_fail": [1]}, "adapter_fail: expected a list of adapter-id globs"),
        ([1], "expected a JSON object"),
    ],
)
def test_bad_settings_are_refused_naming_the_field(sim: SimulatorProcess, body: object, names: str) -> None:
    resp = httpx.post(sim.base_url + "/sim/faults", json=body, timeout=5)
    assert resp.status_code == 400
    assert names in resp.json()["error"]
    assert httpx.get(sim.base_url + "/sim/faults", timeout=5).json()["fail_ratio"] == 0.0  # unchanged


def test_bad_start_setting_exits_with_a_message() -> None:
    cmd = [sys.executable, "-m", "loraxkit.cli", "sim", "--faults", '{"decode_factor": 0}']
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode != 0
    assert "--faults: decode_factor: must be >= 0.01" in result.stderr
