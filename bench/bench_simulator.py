"""How much streaming one simulator process sustains on one core, and how true its token timing stays.

Starts `loraxkit sim --profile synthetic` pinned to one core (fixed decode step, zero prefill cost, batch
budgets that never bind) and a closed-loop raw-socket client pinned to another core that keeps
`--streams` `/generate_stream` requests open at all times. Prints streamed tokens/s as counted by the client,
concurrent streams, the drift of the simulator's emitted inter-token gaps from the profile's step time,
and the per-step write spread (how long the simulator takes from the first to the last write of one step's
burst, and how late each token's write is after its step ended), read from its own trace and /sim/state.

    python3 bench/bench_simulator.py --streams 1000 --decode-ms 50 --seconds 30
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import shutil
import statistics
import sys
import time
from dataclasses import dataclass, field

from loraxkit.sim.process import SimulatorProcess
from loraxkit.sim.trace import read_trace


@dataclass
class Counters:
    tokens: int = 0
    finished: int = 0
    errors: int = 0
    open_streams: int = 0
    peak_open: int = 0
    window: list[tuple[float, int]] = field(default_factory=list)


class StreamClient(asyncio.Protocol):
    """One keep-alive connection issuing one streaming request after another; counts `data:` events."""

    def __init__(
        self, request: bytes, counters: Counters, stop_at: float, done: asyncio.Future[None]
    ) -> None:
        self.request = request
        self.counters = counters
        self.stop_at = stop_at
        self.done = done
        self.transport: asyncio.Transport | None = None
        self.tail = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self._send()

    def _send(self) -> None:
        assert self.transport is not None
        self.counters.open_streams += 1
        self.counters.peak_open = max(self.counters.peak_open, self.counters.open_streams)
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        buf = self.tail + data
        # events wholly inside the tail were counted with the previous segment
        self.counters.tokens += buf.count(b'data:{"token"') - self.tail.count(b'data:{"token"')
        if b"0\r\n\r\n" in buf[-7:]:  # end of the chunked response
            self.counters.open_streams -= 1
            self.counters.finished += 1
            if b'"error"' in buf:
                self.counters.errors += 1
            if time.monotonic() < self.stop_at:
                self._send()
            elif not self.done.done() and self.counters.open_streams == 0:
                self.done.set_result(None)
            self.tail = b""
            return
        self.tail = buf[-32:]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done() and self.counters.open_streams <= 0:
            self.done.set_result(None)


def _request(max_new_tokens: int, index: int) -> bytes:
    body = json.dumps(
        {
            "inputs": f"benchmark prompt {index}",
            "parameters": {"max_new_tokens": max_new_tokens, "adapter_id": f"adapter-{index % 8}"},
        }
    )
    return (
        f"POST /generate_stream HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\n\r\n{body}"
    ).encode()


async def drive(
    host: str, port: int, streams: int, max_new_tokens: int, seconds: float, ramp_s: float
) -> tuple[Counters, float, float]:
    loop = asyncio.get_running_loop()
    counters = Counters()
    done: asyncio.Future[None] = loop.create_future()
    stop_at = time.monotonic() + ramp_s + seconds
    transports = []
    for i in range(streams):
        t, _ = await loop.create_connection(
            lambda i=i: StreamClient(_request(max_new_tokens, i), counters, stop_at, done), host, port
        )
        transports.append(t)
        if ramp_s > 0:
            await asyncio.sleep(ramp_s / streams)
    # measure over the steady window only
    t0, tok0 = time.monotonic(), counters.tokens
    await asyncio.sleep(max(stop_at - time.monotonic(), 0))
    t1, tok1 = time.monotonic(), counters.tokens
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(done, timeout=max_new_tokens * 1.0 + 30)
    for t in transports:
        t.close()
    return counters, (tok1 - tok0) / (t1 - t0), t1 - t0


def cpu_seconds(pid: int) -> float:
    """User+system CPU time of a process so far (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def gap_drift(trace_path: str, decode_ms: float, since: float) -> dict[str, float]:
    """Inter-token gaps after the first token minus the profile's step time, in ms."""
    drifts: list[float] = []
    for rec in read_trace(trace_path):
        times = rec["token_times"]
        for a, b in itertools.pairwise(times[1:]):
            if a >= since:
                drifts.append((b - a) * 1000.0 - decode_ms)
    if not drifts:
        return {"samples": 0}
    drifts.sort()
    absd = sorted(abs(d) for d in drifts)

    def pct(values: list[float], p: float) -> float:
        return values[min(int(p * len(values)), len(values) - 1)]

    return {
        "samples": len(drifts),
        "p50_ms": pct(drifts, 0.5),
        "p99_ms": pct(drifts, 0.99),
        "p99_abs_ms": pct(absd, 0.99),
        "max_abs_ms": absd[-1],
        "mean_ms": statistics.fmean(drifts),
    }


def write_spread(trace_path: str, since: float) -> dict[str, float]:
    """Per decode step (tokens sharing a `token_steps` value): first-to-last write, in ms; and per token, how
    long after its step's end the write started (the simulator's share of a late token), in ms."""
    steps: dict[float, list[float]] = {}
    lags: list[float] = []
    for rec in read_trace(trace_path):
        pairs = list(zip(rec["token_times"], rec.get("token_steps") or [], strict=False))
        for t, step in pairs[1:]:  # decode steps only (a request's first token comes from a prefill)
            if step >= since:
                steps.setdefault(step, []).append(t)
                lags.append((t - step) * 1000.0)
    spreads = sorted((max(ts) - min(ts)) * 1000.0 for ts in steps.values() if len(ts) > 1)
    if not spreads:
        return {"steps": 0}
    lags.sort()
    sizes = [len(ts) for ts in steps.values()]

    def pct(values: list[float], p: float) -> float:
        return values[min(int(p * len(values)), len(values) - 1)]

    return {
        "steps": len(spreads),
        "writes_per_step_mean": statistics.fmean(sizes),
        "spread_p50_ms": pct(spreads, 0.5),
        "spread_p99_ms": pct(spreads, 0.99),
        "spread_max_ms": spreads[-1],
        "us_per_write_p50": 1000.0 * pct(spreads, 0.5) / max(statistics.median(sizes) - 1, 1),
        "write_lag_p50_ms": pct(lags, 0.5),
        "write_lag_p99_ms": pct(lags, 0.99),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--streams", type=int, default=1000, help="concurrent streams (default 1000)")
    ap.add_argument("--decode-ms", type=float, default=50.0, help="synthetic decode step (default 50)")
    ap.add_argument("--max-new-tokens", type=int, default=200, help="tokens per request (default 200)")
    ap.add_argument("--seconds", type=float, default=30.0, help="measured window (default 30)")
    ap.add_argument("--ramp", type=float, default=5.0, help="seconds to open all streams (default 5)")
    ap.add_argument("--server-cpu", type=int, default=0, help="core for the simulator (default 0)")
    ap.add_argument("--client-cpu", type=int, default=1, help="core for this client (default 1)")
    ap.add_argument("--keep-trace", metavar="PATH", help="copy the simulator's trace here for inspection")
    args = ap.parse_args()
    if args.client_cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.client_cpu})
    load_before = os.getloadavg()
    sim_args = (
        "--profile",
        "synthetic",
        "--decode-ms",
        str(args.decode_ms),
        "--prefill-ms",
        "0",
        "--max-concurrent-requests",
        str(args.streams + 64),
        "--log-level",
        "WARNING",
    )
    with SimulatorProcess(*sim_args, trace=True, cpu=args.server_cpu) as sim:
        try:
            import uvloop

            runner = uvloop.run
        except ImportError:
            runner = asyncio.run
        wall0 = time.time()
        assert sim.proc is not None
        cpu0 = cpu_seconds(sim.proc.pid)
        counters, tok_s, window = runner(
            drive("127.0.0.1", sim.port, args.streams, args.max_new_tokens, args.seconds, args.ramp)
        )
        server_cpu = (cpu_seconds(sim.proc.pid) - cpu0) / (time.time() - wall0)
        assert sim.trace_path is not None
        import httpx

        state = httpx.get(sim.base_url + "/sim/state", timeout=10).json()
        drift = gap_drift(sim.trace_path, args.decode_ms, since=wall0 + args.ramp)
        spread = write_spread(sim.trace_path, since=wall0 + args.ramp)
        if args.keep_trace:
            shutil.copy(sim.trace_path, args.keep_trace)
    ideal = args.streams * 1000.0 / args.decode_ms
    print(
        f"load average before: {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f} "
        f"(cores: {os.cpu_count()}, server cpu {args.server_cpu}, client cpu {args.client_cpu})"
    )
    print(
        f"streams: {args.streams} concurrent (peak open {counters.peak_open}), "
        f"decode step {args.decode_ms} ms, {args.max_new_tokens} tokens/request"
    )
    print(
        f"streamed tokens/s (client-counted, {window:.1f} s window): {tok_s:,.0f}  (ideal {ideal:,.0f}, "
        f"{100 * tok_s / ideal:.1f}%)"
    )
    print(f"simulator CPU: {100 * server_cpu:.0f}% of one core over the run (incl. ramp and drain)")
    print(f"requests finished: {counters.finished}, in-stream errors: {counters.errors}")
    print(
        f"simulator step timer lateness: p99 {state['lateness_p99_ms']} ms, "
        f"max {state['lateness_max_ms']} ms, {state['late_steps']} of {state['steps']} steps > 2 ms late"
    )
    print(
        "inter-token gap drift vs profile (ms, from the simulator's trace): "
        + ", ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in drift.items())
    )
    live = state["write_spread"]
    print(
        "per-step write spread, first to last write of a step (/sim/state, every step): "
        f"p50 {live['p50_ms']} ms, "
        f"p99 {live['p99_ms']} ms, max {live['max_ms']} ms over {live['steps']} steps"
    )
    print(
        "per-step write spread from the trace (steps after the ramp): "
        + ", ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in spread.items())
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
