"""Accuracy and capacity of one load-generator process on one core, against the simulator's ground truth.

For each concurrency level, the LoRAX simulator (synthetic profile: fixed decode step) runs pinned to one core
and one client runs pinned to another, closed loop, streaming `/generate_stream`:
- `harness`: `locust -f loadtest/ --headless` (this project's harness, one process);
- `httpx`: a plain asyncio + httpx client (one shared AsyncClient, `aiter_lines`): the usual hand-made tool;
- `guidellm` (only with --guidellm): GuideLLM from PyPI in its own virtualenv outside the repo (~6 GB).
Every token the client saw is matched (by `x-request-id`) with the simulator's trace, which stamps each token
when it is handed to the socket. Printed per row: streamed tokens/s, client CPU (% of its core and µs per
token, measured over the steady window only), and client-minus-server errors of TTFT, of each token's
arrival stamp, and of each inter-token gap (ITL), p50/p99 in ms; and the send side: from the send stamp to the
simulator reading the request, from the Python stamp before the client call and from the kernel's transmit
stamp of the request's last byte (the floor: what is left is loopback and the simulator's intake).
A second table puts the report's steady-state TTFT p99 beside the true p99 of the same requests, with the
self-check's verdict.

    python3 bench/bench_loadtest.py --levels 50,100,200,400 --seconds 12

Other processes on the machine share the cores: note the load (printed) next to the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from loraxkit import wire
from loraxkit.loadtest.metrics import RequestRecord, now
from loraxkit.loadtest.tracecheck import compare, load_records
from loraxkit.sim.process import SimulatorProcess
from loraxkit.sim.trace import read_trace

ROOT = Path(__file__).resolve().parents[1]
PROMPT = "Write a short story about a lighthouse keeper who collects shells"
GUIDELLM_VENV = Path.home() / ".cache" / "loraxkit-bench" / "guidellm-venv"


def pin(cpu: int) -> Any:
    return lambda: os.sched_setaffinity(0, {cpu})


# ---------------------------------------------------------------------- the plain asyncio + httpx client
async def httpx_client(url: str, concurrency: int, seconds: float, tokens: int, out: Path) -> None:
    import httpx

    records: list[RequestRecord] = []
    body = {
        "inputs": PROMPT,
        "parameters": {
            "max_new_tokens": tokens,
            "ignore_eos_token": True,
            "details": True,
            "adapter_id": "lora-0",
        },
    }
    stop_at = now() + seconds
    limits = httpx.Limits(max_connections=concurrency + 10, max_keepalive_connections=concurrency + 10)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60.0) as client:

        async def user(u: int) -> None:
            n = 0
            while now() < stop_at:
                rid = f"httpx-{u}-{n}"
                n += 1
                rec = RequestRecord(
                    request_id=rid, route=wire.ROUTE_GENERATE_STREAM, adapter="lora-0", sent=now()
                )
                async with client.stream(
                    "POST", wire.ROUTE_GENERATE_STREAM, json=body, headers={wire.H_REQUEST_ID: rid}
                ) as resp:
                    rec.status = resp.status_code
                    async for line in resp.aiter_lines():
                        t = now()
                        event = wire.parse_sse_line(line)
                        if event.kind in (wire.EventKind.TOKEN, wire.EventKind.FINAL):
                            rec.token_times.append(t)
                        if event.kind is wire.EventKind.FINAL:
                            rec.server_tokens = event.generated_tokens
                rec.end = now()
                records.append(rec)

        await asyncio.gather(*(user(u) for u in range(concurrency)))
    with out.open("w") as handle:
        for r in records:
            row = r.to_wire()
            row["token_times"] = list(r.token_times)
            handle.write(json.dumps(row) + "\n")


# ---------------------------------------------------------------------- one measured point
def cpu_seconds(proc: psutil.Process) -> float:
    total = 0.0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            continue
    return total


def client_command(
    client: str, url: str, concurrency: int, seconds: float, tokens: int, work: Path
) -> list[str]:
    if client in ("harness", "harness-userstamps"):
        extra = ["--user-space-stamps"] if client == "harness-userstamps" else []
        return [
            sys.executable,
            "-m",
            "locust",
            *extra,
            "-f",
            str(ROOT / "loadtest"),
            "--host",
            url,
            "--headless",
            "-u",
            str(concurrency),
            "-r",
            str(concurrency),
            "-t",
            f"{int(seconds)}s",
            "--stop-timeout",
            "10",
            "--adapters",
            "lora-0",
            "--input-tokens",
            "16",
            "--output-tokens",
            str(tokens),
            "--report-dir",
            str(work / "report"),
            "--save-records",
            "--only-summary",
            "--progress-interval",
            "0",
        ]
    if client == "httpx":
        return [
            sys.executable,
            __file__,
            "--run-httpx-client",
            url,
            str(concurrency),
            str(seconds),
            str(tokens),
            str(work / "records.jsonl"),
        ]
    raise ValueError(client)


def measure(
    client: str,
    sim: SimulatorProcess,
    concurrency: int,
    seconds: float,
    tokens: int,
    warmup: float,
    client_cpu: int,
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-loadtest-") as tmp:
        work = Path(tmp)
        cmd = client_command(client, sim.base_url, concurrency, seconds, tokens, work)
        proc = subprocess.Popen(
            cmd, preexec_fn=pin(client_cpu), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        ps = psutil.Process(proc.pid)
        time.sleep(3.0 + warmup)  # interpreter start-up, then ramp-up
        t0, c0 = now(), cpu_seconds(ps)
        time.sleep(max(1.0, seconds - warmup - 2.0))
        t1, c1 = now(), cpu_seconds(ps)
        _, err = proc.communicate(timeout=seconds + 120)
        records_path = work / ("records.jsonl" if client == "httpx" else "report/records.jsonl")
        if not records_path.is_file():
            raise RuntimeError(f"{client} wrote no records:\n{err[-2000:]}")
        records = load_records(records_path)
        report_path = work / "report" / "report.json"
        report = json.loads(report_path.read_text()) if report_path.is_file() else None
    trace = read_trace(sim.trace_path or "")
    point = summarize_point(client, concurrency, records, trace, (t0, t1), c1 - c0)
    if report is not None:
        point.update(steady_against_truth(report, records, trace))
    return point


def steady_against_truth(
    report: dict[str, Any], records: list[RequestRecord], trace: list[dict[str, Any]]
) -> dict[str, Any]:
    """The report's headline TTFT p99 (steady state, and whole run) beside the true p99 of the same requests:
    the simulator's own TTFT, first token handed to the socket - request read."""
    truth = {
        t["request_id"]: (t["first_token"] - t["arrival"]) * 1000.0 for t in trace if t.get("first_token")
    }
    steady = report.get("steady") or {}
    start, until = steady.get("from", float("inf")), steady.get("until", float("-inf"))
    mine = [r for r in records if r.ok and r.token_times]
    in_steady = [r for r in mine if start <= r.sent < until and not r.first_on_connection]

    def true_p99(rs: list[RequestRecord]) -> float:
        values = [truth[r.request_id] for r in rs if r.request_id in truth]
        return float(np.percentile(values, 99)) if values else float("nan")

    check = report.get("self_check", {}).get("verdicts", [])
    return {
        "steady_ttft_p99": (steady.get("overall") or {}).get("ttft_ms", {}).get("p99", float("nan")),
        "true_steady_ttft_p99": true_p99(in_steady),
        "whole_ttft_p99": report["overall"]["ttft_ms"].get("p99", float("nan")),
        "true_whole_ttft_p99": true_p99(mine),
        "steady_requests": len(in_steady),
        "self_check": "; ".join(v.split(":")[0] for v in check),
        "self_check_detail": check,
    }


def summarize_point(
    client: str,
    concurrency: int,
    records: list[RequestRecord],
    trace: list[dict[str, Any]],
    window: tuple[float, float],
    cpu: float,
) -> dict[str, Any]:
    t0, t1 = window
    inside = [r for r in records if r.token_times and t0 <= r.token_times[0] and r.token_times[-1] <= t1]
    check = compare(inside, trace)
    stamps = np.concatenate([np.frombuffer(r.token_times) for r in records if r.token_times])
    tokens = int(np.count_nonzero((stamps >= t0) & (stamps < t1)))
    span = t1 - t0

    def p(values: list[float], q: float) -> float:
        return float(np.percentile(values, q)) if values else float("nan")

    return {
        "client": client,
        "concurrency": concurrency,
        "tokens_per_s": tokens / span,
        "cpu_pct": 100.0 * cpu / span,
        "cpu_us_per_token": 1e6 * cpu / tokens if tokens else float("nan"),
        "matched_requests": check.matched,
        "ttft_err_p50": p(check.ttft_error_ms, 50),
        "ttft_err_p99": p(check.ttft_error_ms, 99),
        "first_err_p50": p(check.first_token_error_ms, 50),
        "first_err_p99": p(check.first_token_error_ms, 99),
        "stamp_err_p50": p(check.stamp_error_ms, 50),
        "stamp_err_p99": p(check.stamp_error_ms, 99),
        "itl_err_p99": p([abs(e) for e in check.itl_error_ms], 99),
        **send_side(inside, trace),
    }


def send_side(records: list[RequestRecord], trace: list[dict[str, Any]]) -> dict[str, Any]:
    """Send stamp -> the simulator reading the request (its trace's `arrival`), per request, p50/p99 ms.

    `sent` is the kernel's transmit stamp of the request's last byte where the client has one (the harness);
    from it to the simulator's read is the floor no client can go below: loopback delivery and how long the
    simulator's event loop took to read the request (raw sockets included). The same from the Python stamp
    taken before the client call (`sent_user`) is what the harness measured before it used the kernel's
    stamp: their difference is the Python send path."""
    arrival = {t["request_id"]: t["arrival"] for t in trace}
    mine = [r for r in records if r.request_id in arrival and not r.first_on_connection]
    kernel = [(arrival[r.request_id] - r.sent) * 1000.0 for r in mine if r.sent_user is not None]
    python = [
        (arrival[r.request_id] - (r.sent_user if r.sent_user is not None else r.sent)) * 1000.0 for r in mine
    ]

    def p(values: list[float], q: float) -> float:
        return float(np.percentile(values, q)) if values else float("nan")

    return {
        "send_requests": len(mine),
        "kernel_sent": len(kernel),
        "send_err_p50": p(python, 50),
        "send_err_p99": p(python, 99),
        "send_floor_p50": p(kernel, 50),
        "send_floor_p99": p(kernel, 99),
    }


# ---------------------------------------------------------------------- GuideLLM (optional)
def ensure_guidellm() -> Path:
    """GuideLLM in its own virtualenv outside the repo (it pulls ~6 GB: PyTorch, transformers), plus
    sentencepiece, which transformers needs to read the local tokenizer below."""
    python = GUIDELLM_VENV / "bin" / "python"
    if not (GUIDELLM_VENV / "bin" / "guidellm").exists():
        GUIDELLM_VENV.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "venv", str(GUIDELLM_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "guidellm", "sentencepiece"], check=True)
    return GUIDELLM_VENV / "bin" / "guidellm"


def local_mistral_tokenizer() -> str:
    """A Hugging Face tokenizer directory for GuideLLM's synthetic prompts, made offline from the
    SentencePiece model of Mistral-7B v0.1 that mistral-common ships in its PyPI package (the simulator's
    tokenizer), so GuideLLM needs no Hub access and counts the same tokens as the simulator."""
    import mistral_common

    target = GUIDELLM_VENV.parent / "mistral-v1-tokenizer"
    if (target / "tokenizer_config.json").is_file():
        return str(target)
    model = Path(mistral_common.__file__).parent / "data" / "tokenizer.model.v1"
    with tempfile.TemporaryDirectory(prefix="spm-") as src:
        (Path(src) / "tokenizer.model").write_bytes(model.read_bytes())
        script = (
            "import sys; from transformers import LlamaTokenizer; "
            "LlamaTokenizer.from_pretrained(sys.argv[1]).save_pretrained(sys.argv[2])"
        )
        subprocess.run([str(GUIDELLM_VENV / "bin" / "python"), "-c", script, src, str(target)], check=True)
    return str(target)


def measure_guidellm(level: int, args: argparse.Namespace) -> dict[str, Any]:
    """GuideLLM sends no request ids and keeps only aggregates, so its reported TTFT percentiles are set
    against the trace's over the same run (not request by request). Its simulator runs with --lenient:
    GuideLLM sends `stop: null`, which LoRAX (and the strict simulator) reject."""
    exe = ensure_guidellm()
    with (
        SimulatorProcess(*simulator_args(args), "--lenient", trace=True, cpu=args.server_cpu) as sim,
        tempfile.TemporaryDirectory(prefix="bench-guidellm-") as tmp,
    ):
        out = Path(tmp) / "guidellm.json"
        start = time.time()
        # GuideLLM 0.8's `run` CLI (kind=... arguments); completions, because LoRAX's chat route ignores the
        # `max_completion_tokens` GuideLLM sends there.
        cmd = [
            str(exe),
            "run",
            "--backend",
            f"kind=openai_http,target={sim.base_url},model=lora-0,request_format=/v1/completions",
            "--profile",
            f"kind=concurrent,streams={level}",
            "--constraint",
            f"kind=max_duration,seconds={args.seconds}",
            "--tokenizer",
            f"kind=huggingface_auto,model={args.guidellm_processor or local_mistral_tokenizer()}",
            "--data",
            f"kind=synthetic_text,prompt_tokens=16,output_tokens={args.tokens}",
            "--output",
            f"kind=json,path={out}",
            "--disable-console-interactive",
        ]
        proc = subprocess.run(cmd, preexec_fn=pin(args.client_cpu), capture_output=True, text=True)
        trace = [t for t in read_trace(sim.trace_path or "") if t["arrival"] >= start and t["token_times"]]
        if proc.returncode != 0 or not out.is_file() or not trace:
            return {"client": "guidellm", "concurrency": level, "error": proc.stderr[-500:]}
        reported = _find(json.loads(out.read_text()), "time_to_first_token_ms") or {}
    truth = [(t["first_token"] - t["arrival"]) * 1000 for t in trace]
    ok = reported.get("successful", reported)
    return {
        "client": "guidellm",
        "concurrency": level,
        "reported_ttft_p50": ok.get("median"),
        "reported_ttft_p99": (ok.get("percentiles") or {}).get("p99"),
        "truth_ttft_p50": float(np.percentile(truth, 50)),
        "truth_ttft_p99": float(np.percentile(truth, 99)),
    }


def _find(obj: Any, key: str) -> Any:
    """The first value under `key` anywhere in a JSON document (GuideLLM's layout varies by version)."""
    if isinstance(obj, dict):
        if key in obj:
            return obj[key]
        obj = list(obj.values())
    if isinstance(obj, list):
        for item in obj:
            found = _find(item, key)
            if found is not None:
                return found
    return None


def simulator_args(args: argparse.Namespace) -> list[str]:
    return [
        "--profile",
        "synthetic",
        "--decode-ms",
        str(args.decode_ms),
        "--prefill-ms",
        "5",
        "--log-level",
        "WARNING",
    ]


# ---------------------------------------------------------------------- main
def print_rows(rows: list[dict[str, Any]]) -> None:
    header = (
        "client",
        "conc",
        "tok/s",
        "cpu%",
        "us/tok",
        "TTFT err p50/p99",
        "1st-token err p50/p99",
        "stamp err p50/p99",
        "ITL err p99",
        "send->read p50/p99: Python stamp | kernel TX (floor)",
        "matched",
    )
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for r in rows:
        if "tokens_per_s" not in r:
            print(f"| {r['client']} | {r['concurrency']} | {json.dumps(r)[:200]} |")
            continue
        print(
            f"| {r['client']} | {r['concurrency']} | {r['tokens_per_s']:.0f} | {r['cpu_pct']:.0f} | "
            f"{r['cpu_us_per_token']:.1f} | {r['ttft_err_p50']:.2f}/{r['ttft_err_p99']:.2f} | "
            f"{r['first_err_p50']:.2f}/{r['first_err_p99']:.2f} | "
            f"{r['stamp_err_p50']:.2f}/{r['stamp_err_p99']:.2f} | {r['itl_err_p99']:.2f} | "
            f"{send_cell(r)} | {r['matched_requests']} |"
        )


def send_cell(r: dict[str, Any]) -> str:
    python = f"{r['send_err_p50']:.2f}/{r['send_err_p99']:.2f}"
    if not r.get("kernel_sent"):
        return f"{python} | (no kernel stamps)"
    return f"{python} | {r['send_floor_p50']:.2f}/{r['send_floor_p99']:.2f} ({r['kernel_sent']} requests)"


def print_steady(rows: list[dict[str, Any]]) -> None:
    """The acceptance table: the report's steady-state TTFT p99 beside the true p99 of the same requests."""
    print(
        "| client | streams | steady requests | reported steady TTFT p99 | true p99 (same requests) | "
        "difference | whole-run p99 reported / true | send->read p50/p99: Python stamp / kernel TX | "
        "self-check |"
    )
    print("|---|---:|---:|---:|---:|---:|---|---|---|")
    for r in rows:
        if "steady_ttft_p99" not in r:
            continue
        diff = r["steady_ttft_p99"] - r["true_steady_ttft_p99"]
        print(
            f"| {r['client']} | {r['concurrency']} | {r['steady_requests']} | {r['steady_ttft_p99']:.2f} | "
            f"{r['true_steady_ttft_p99']:.2f} | {diff:+.2f} | {r['whole_ttft_p99']:.2f} / "
            f"{r['true_whole_ttft_p99']:.2f} | {send_cell(r).replace(' | ', ' / ')} | {r['self_check']} |"
        )
    for r in rows:
        for line in r.get("self_check_detail", []):
            print(f"  {r['client']} {r['concurrency']}: {line}")


def crossing(rows: list[dict[str, Any]], client: str, limit_ms: float = 2.0) -> str:
    """The first level at which any p99 error the goal names (TTFT, ITL, token stamp, first token) passes."""
    keys = ("ttft_err_p99", "itl_err_p99", "stamp_err_p99", "first_err_p99")
    mine = [r for r in rows if r["client"] == client and r.get("matched_requests")]
    if not mine:
        return "no request started and ended inside a measured window: run longer (--seconds)"
    for r in mine:
        over = [k.removesuffix("_err_p99") for k in keys if abs(r[k]) > limit_ms]
        if over:
            rate = f"{r['tokens_per_s']:.0f} tokens/s ({r['concurrency']} streams)"
            return f"p99 error passes {limit_ms:g} ms at {rate}: {', '.join(over)}"
    top = max((r["tokens_per_s"] for r in mine), default=0.0)
    return f"p99 error stays <= {limit_ms:g} ms up to {top:.0f} tokens/s (highest level run)"


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--run-httpx-client":
        url, conc, secs, toks, out = sys.argv[2:7]
        asyncio.run(httpx_client(url, int(conc), float(secs), int(toks), Path(out)))
        return 0
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--levels", default="50,100,200,400", help="concurrent streams per point")
    parser.add_argument("--seconds", type=float, default=12.0, help="length of each point")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds left out at the start of a point")
    parser.add_argument("--tokens", type=int, default=64, help="max_new_tokens per request")
    parser.add_argument("--decode-ms", type=float, default=20.0, help="simulator's fixed decode step")
    parser.add_argument(
        "--clients",
        default="harness,harness-userstamps,httpx",
        help="clients: harness, harness-userstamps (the harness with --user-space-stamps), httpx",
    )
    parser.add_argument(
        "--guidellm",
        action="store_true",
        help=f"also run GuideLLM (creates a ~6 GB venv in {GUIDELLM_VENV}; needs its tokenizer reachable)",
    )
    parser.add_argument(
        "--guidellm-processor",
        default="",
        help="tokenizer GuideLLM uses for its synthetic data (a local path or Hub id); default: Mistral-7B "
        "v0.1's, built offline from the copy mistral-common ships",
    )
    parser.add_argument("--server-cpu", type=int, default=0)
    parser.add_argument("--client-cpu", type=int, default=1)
    parser.add_argument("--json", default="", help="also write the rows to this JSON file")
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()}; cores: {os.cpu_count()}", flush=True)
    rows: list[dict[str, Any]] = []
    for level in (int(x) for x in args.levels.split(",")):
        for client in args.clients.split(","):
            with SimulatorProcess(*simulator_args(args), trace=True, cpu=args.server_cpu) as sim:
                rows.append(
                    measure(client, sim, level, args.seconds, args.tokens, args.warmup, args.client_cpu)
                )
            print_rows(rows[-1:])
            sys.stdout.flush()
        if args.guidellm:
            rows.append(measure_guidellm(level, args))
            print_rows(rows[-1:])
    print()
    print_rows(rows)
    print()
    print_steady(rows)
    for client in args.clients.split(","):
        print(f"{client}: {crossing(rows, client)}")
    print(f"load average after: {os.getloadavg()}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
