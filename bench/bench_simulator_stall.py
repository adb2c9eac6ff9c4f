"""How long one huge request holds up every other stream of a simulator.

Starts `loraxkit sim --profile synthetic --decode-ms 5`, opens one long `/generate_stream`, then sends
near-2-MiB prompts (just under axum's body limit) to `/generate`, `/v1/chat/completions` and `/tokenize`
while it runs. Prints the longest gap between the stream's tokens (from the simulator's own trace) against
the 5 ms step, and how long each huge request took.

    python3 bench/bench_simulator_stall.py
"""

from __future__ import annotations

import argparse
import itertools
import os
import threading
import time

import httpx

from loraxkit.sim.process import SimulatorProcess
from loraxkit.sim.trace import read_trace

DECODE_MS = 5.0


def _huge_requests(base_url: str, chars: int) -> list[tuple[str, int, float, float]]:
    text = ("The quick brown fox jumps over the lazy dog. " * (chars // 45 + 1))[:chars]
    requests = [
        ("/generate", {"inputs": text, "parameters": {"max_new_tokens": 5}}),
        ("/v1/chat/completions", {"model": "", "messages": [{"role": "user", "content": text}]}),
        ("/tokenize", {"inputs": text}),
    ]
    results = []
    with httpx.Client(base_url=base_url, timeout=60) as client:
        for route, body in requests:
            start = time.time()
            status = client.post(route, json=body).status_code
            results.append((route, status, start, time.time()))
            time.sleep(0.2)  # let the stream settle between requests
    return results


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--chars", type=int, default=2_000_000, help="prompt length in characters")
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    sim_args = ("--profile", "synthetic", "--decode-ms", str(DECODE_MS), "--log-level", "WARNING")
    with SimulatorProcess(*sim_args, trace=True) as sim:
        body = {"inputs": "steady", "parameters": {"max_new_tokens": 2000}}
        done = threading.Event()

        def stream() -> None:
            with httpx.stream("POST", sim.base_url + "/generate_stream", json=body, timeout=60) as s:
                for _ in s.iter_raw():
                    pass
            done.set()

        reader = threading.Thread(target=stream)
        reader.start()
        time.sleep(0.5)
        results = _huge_requests(sim.base_url, args.chars)
        reader.join(timeout=60)
        time.sleep(0.2)  # trace records are flushed within 50 ms
        records = read_trace(sim.trace_path)  # type: ignore[arg-type]
    steady = next(r for r in records if r["route"] == "/generate_stream")
    pairs = list(itertools.pairwise(steady["token_times"]))
    print(f"other stream: {len(pairs) + 1} tokens, one every {DECODE_MS} ms")
    for route, status, start, end in results:
        during = [b - a for a, b in pairs if b >= start and a <= end]
        print(
            f"{route:<22} {args.chars:,} chars -> HTTP {status} in {(end - start) * 1000:.0f} ms; "
            f"longest gap of the other stream meanwhile {max(during, default=0) * 1000:.1f} ms"
        )
    print(f"longest gap overall {max(b - a for a, b in pairs) * 1000:.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
