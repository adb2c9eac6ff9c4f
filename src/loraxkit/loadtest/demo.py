"""`loraxkit demo`: the whole job on a bare machine, in about a minute.

It starts the LoRAX simulator (a GPU profile, on 127.0.0.1), runs `locust -f loadtest/ --headless` with a
multi-LoRA Zipf mix and a user sweep, writes the report, and checks the harness's timings against the
simulator's ground-truth trace.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from loraxkit.loadtest.analysis import in_steady_state
from loraxkit.loadtest.metrics import RequestRecord
from loraxkit.loadtest.tracecheck import compare, load_records

DEFAULT_LOCUSTFILE = Path(__file__).resolve().parents[3] / "loadtest"


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "demo",
        help="run a short multi-LoRA load test with a sweep against the local LoRAX simulator",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Start the LoRAX simulator, run `locust -f loadtest/` with a multi-LoRA mix and a user sweep,\n"
            "write the report (HTML, Markdown, JSON, Locust CSV/HTML) and check the measured TTFT/TPOT\n"
            "against the simulator's ground truth. Needs nothing else running.\n"
            "Example: loraxkit demo --out demo-report"
        ),
    )
    p.add_argument("--out", default="demo-report", help="report directory (default demo-report)")
    p.add_argument(
        "--profile",
        default="a10g-8b-bf16",
        help="simulator GPU profile (default a10g-8b-bf16: "
        "24 GB, so the KV budget saturates within the sweep); see `loraxkit sim --help`",
    )
    p.add_argument("--sweep-users", default="1,8,32,64,128", help="closed-loop user counts of the stages")
    p.add_argument("--stage-time", type=float, default=10.0, help="seconds per stage (default 10)")
    p.add_argument("--adapters", default="lora-{0..7}", help="adapter ids (default lora-{0..7})")
    p.add_argument("--mix", default="zipf", help="adapter mix: uniform, zipf (default) or weights")
    p.add_argument("--input-tokens", default="uniform:128,384", help="prompt length distribution")
    p.add_argument("--output-tokens", default="32", help="max_new_tokens distribution (default 32)")
    p.add_argument("--locustfile", default=str(DEFAULT_LOCUSTFILE), help="the loadtest/ directory to run")
    p.set_defaults(func=run_demo)


def locust_command(args: argparse.Namespace, host: str, out: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "locust",
        "-f",
        args.locustfile,
        "--host",
        host,
        "--headless",
        "--shape",
        "sweep",
        "--sweep-users",
        args.sweep_users,
        "--stage-time",
        str(args.stage_time),
        "--adapters",
        args.adapters,
        "--mix",
        args.mix,
        "--base-share",
        "0.1",
        "--input-tokens",
        args.input_tokens,
        "--output-tokens",
        args.output_tokens,
        "--report-dir",
        str(out),
        "--save-records",
        "--scrape-metrics",
        "--csv",
        str(out / "locust"),
        "--html",
        str(out / "locust.html"),
        "--progress-interval",
        str(max(2.0, args.stage_time / 2)),
        "--only-summary",
        # let the last stage's requests finish instead of being cut off
        "--stop-timeout",
        "30",
        "--stage-warmup",
        str(min(3.0, args.stage_time / 3)),
    ]


def run_demo(args: argparse.Namespace) -> int:
    from loraxkit.sim.process import SimulatorProcess

    locustfile = Path(args.locustfile)
    if not (locustfile / "locustfile.py").is_file():
        print(
            f"demo: --locustfile {locustfile} has no locustfile.py; run from a clone of lorax-kit or point "
            "--locustfile at its loadtest/ directory",
            file=sys.stderr,
        )
        return 2
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    trace = out / "simulator-trace.jsonl"
    trace.unlink(missing_ok=True)
    with SimulatorProcess("--profile", args.profile, trace=str(trace)) as sim:
        print(
            f"demo: simulator ({args.profile}) at {sim.base_url}; sweep {args.sweep_users} users, "
            f"{args.stage_time:g} s per stage",
            file=sys.stderr,
        )
        code = subprocess.call(locust_command(args, sim.base_url, out))
    return _check_against_trace(out, trace, code)


def steady_records(records: list[RequestRecord], report_path: Path) -> list[RequestRecord]:
    """The requests the report's steady state holds (see analysis.in_steady_state)."""
    if not report_path.is_file():
        return []
    steady = json.loads(report_path.read_text()).get("steady")
    if not steady:
        return []
    return [r for r in records if in_steady_state(r, steady["from"], steady["until"])]


def _check_against_trace(out: Path, trace: Path, code: int) -> int:
    records_path = out / "records.jsonl"
    if not records_path.is_file():
        print(f"demo: locust exited with {code} and wrote no records", file=sys.stderr)
        return code or 1
    from loraxkit.sim.trace import read_trace

    records, truth = load_records(records_path), read_trace(trace)
    check = compare(records, truth).summary()
    steady = compare(steady_records(records, out / "report.json"), truth).summary()
    check["steady_state"] = steady
    (out / "accuracy.json").write_text(json.dumps(check, indent=2) + "\n", encoding="utf-8")
    ttft, stamp = check["ttft_error_ms"], check["token_stamp_error_ms"]
    if ttft.get("count"):
        calm = steady["ttft_error_ms"]
        in_steady = (
            f"; steady state ({steady['matched']} requests): TTFT p50 {calm['p50']:.2f} ms "
            f"p99 {calm['p99']:.2f} ms"
            if calm.get("count")
            else ""
        )
        print(
            f"demo: {check['matched']} requests matched with the simulator's trace; client - server error, "
            f"whole run: TTFT p50 {ttft['p50']:.2f} ms p99 {ttft['p99']:.2f} ms, token stamps p50 "
            f"{stamp['p50']:.2f} ms p99 {stamp['p99']:.2f} ms{in_steady}",
            file=sys.stderr,
        )
    print(
        f"demo: report {out / 'report.html'} (also report.md, report.json, locust.html, accuracy.json)",
        file=sys.stderr,
    )
    return code
