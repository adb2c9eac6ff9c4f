"""`loraxkit loadtest`: `locust -f loadtest/` with the harness's options listed in `--help`.

Locust prints its `--help` before it loads a locustfile, so the harness's custom options never appear there;
this command lists them and passes everything else through to Locust unchanged.
"""

from __future__ import annotations

import argparse
import os
import sys

from loraxkit.loadtest.demo import DEFAULT_LOCUSTFILE
from loraxkit.loadtest.options import add_arguments


def options_help() -> str:
    parser = argparse.ArgumentParser(prog="locust -f loadtest/", add_help=False)
    add_arguments(parser)
    return parser.format_help()


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "loadtest",
        help="run the multi-LoRA load test (locust -f loadtest/); --help lists the harness options",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "The load test is `locust -f loadtest/ ARGS...`; Locust takes the harness options below as well\n"
            "as its own (they also work in locust.conf and as LOCUST_<OPTION> environment variables), but\n"
            "its --help cannot list them: this command does. `loraxkit loadtest -- ARGS...` runs Locust.\n"
            "User classes: GenerateStreamUser (default), GenerateUser, ChatUser, CompletionsUser.\n"
            "Example: locust -f loadtest/ --host http://127.0.0.1:8080 --headless -u 32 -r 32 -t 60s \\\n"
            "           --adapters 'lora-{0..15}' --mix zipf --slo-ttft-p95 500 --report-dir out\n"
            "Docs: docs/loadtest.md"
        ),
        epilog=options_help(),
    )
    p.add_argument("locust_args", nargs=argparse.REMAINDER, help="after --: all arguments")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    passed = [a for a in args.locust_args if a != "--"] if args.locust_args else []
    if not passed:
        print(options_help())
        return 0
    if not (DEFAULT_LOCUSTFILE / "locustfile.py").is_file():
        print(f"loadtest: {DEFAULT_LOCUSTFILE} not found; run from a clone of lorax-kit", file=sys.stderr)
        return 2
    cmd = [sys.executable, "-m", "locust", "-f", str(DEFAULT_LOCUSTFILE), *passed]
    os.execv(sys.executable, cmd)
    return 0  # not reached
