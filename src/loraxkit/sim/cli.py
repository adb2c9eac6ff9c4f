"""`loraxkit sim`: the LoRAX API simulator command."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from typing import TYPE_CHECKING

from loraxkit.sim.engine import BLOCK_SIZE, kv_blocks, kv_capacity_blocks
from loraxkit.sim.profiles import DEFAULT_PROFILE, PROFILES, Profile, get_profile
from loraxkit.wire import DEFAULT_KEEP_ALIVE_S, DEFAULT_MODEL_ID, Limits

if TYPE_CHECKING:
    from loraxkit.sim.app import SimConfig
    from loraxkit.sim.faults import FaultSpec


def _profiles_help() -> str:
    return "\n".join(f"  {p.name:<20} {p.description}" for p in PROFILES.values())


def _jitter_fraction(text: str) -> float:
    """A step's factor is drawn from N(1, j) and clipped to [1 - 2j, 1 + 2j]: a negative j has an empty clip
    and j >= 0.5 allows steps of no time at all, so both are refused rather than ignored or distorted."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r} (a fraction such as 0.05)") from None
    if not 0.0 <= value < 0.5:
        raise argparse.ArgumentTypeError(f"{text} is outside 0 to below 0.5 (0.05 jitters steps by 5%)")
    return value


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "sim",
        help="run the LoRAX API simulator (no GPU needed)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Serve LoRAX's REST API (/generate, /generate_stream, /, /v1/completions,\n"
            "/v1/chat/completions, /health, /info, /metrics, /startup, /ping, /tokenize)\n"
            "from a simulated continuous-batching GPU.\n"
            "Example: loraxkit sim --port 8080 --profile l40s-8b-bf16 --trace /tmp/trace.jsonl\n\n"
            "profiles:\n" + _profiles_help()
        ),
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="port to bind (default 8080)")
    p.add_argument(
        "--profile",
        default=DEFAULT_PROFILE,
        choices=sorted(PROFILES),
        metavar="NAME",
        help=f"performance profile (default {DEFAULT_PROFILE}; listed above)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed for generated text and step jitter (default 0)")
    p.add_argument("--trace", metavar="PATH", help="append one JSON line per finished request to PATH")
    p.add_argument(
        "--startup-delay",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="keep the port closed this long before serving, like LoRAX's warm-up",
    )
    p.add_argument("--model-id", default=DEFAULT_MODEL_ID, help="model id reported by /info and x-model-id")
    p.add_argument(
        "--max-concurrent-requests",
        type=int,
        default=1024,
        metavar="N",
        help="requests in flight before 429 `overloaded` (LoRAX default 1024)",
    )
    p.add_argument(
        "--max-active-adapters",
        type=int,
        default=1024,
        metavar="N",
        help="adapters loaded at once; idle ones are evicted beyond this (default 1024)",
    )
    p.add_argument(
        "--unloadable-adapter",
        action="append",
        default=[],
        metavar="GLOB",
        help="adapter ids matching GLOB fail to load: 424 `generation` (in-stream on streams)",
    )
    p.add_argument(
        "--adapter-load-ms",
        type=float,
        metavar="MS",
        help="time to download an adapter on first use (default: the profile's); adapters download one at "
        "a time, as LoRAX's single loader task runs them; a reload after an offload is from local disk "
        "and not timed",
    )
    p.add_argument(
        "--adapter-cycle-time",
        type=float,
        default=2.0,
        metavar="SECONDS",
        help="when adapters wait for a slot, the adapter active longest is swapped out once it is active "
        "this long and none of its requests runs (its queued ones wait for it to return); until then "
        "adapters active for less get their requests served first (LoRAX --adapter-cycle-time-s, "
        "default 2; LoRAX takes whole seconds)",
    )
    p.add_argument(
        "--eager-prefill",
        choices=("true", "false"),
        default="true",
        help="while a batch runs, keep adding new batches before the next decode step as long as one "
        "forms (LoRAX --eager-prefill, default true)",
    )
    p.add_argument(
        "--max-input-length", type=int, default=4095, metavar="N", help="LoRAX limit (default 4095)"
    )
    p.add_argument(
        "--max-total-tokens", type=int, default=4096, metavar="N", help="LoRAX limit (default 4096)"
    )
    p.add_argument("--max-stop-sequences", type=int, default=4, metavar="N", help="LoRAX limit (default 4)")
    p.add_argument("--max-best-of", type=int, default=2, metavar="N", help="LoRAX limit (default 2)")
    p.add_argument(
        "--max-batch-total-tokens",
        type=int,
        metavar="N",
        help="KV token budget of the running batch (default: the profile's GPU memory)",
    )
    p.add_argument(
        "--max-batch-prefill-tokens",
        type=int,
        metavar="N",
        help="prompt tokens per prefill step (default: the profile's)",
    )
    p.add_argument(
        "--max-waiting-tokens",
        type=int,
        default=20,
        metavar="N",
        help="decode steps before a small new batch is forced in (LoRAX default 20)",
    )
    p.add_argument(
        "--waiting-served-ratio",
        type=float,
        default=1.2,
        metavar="R",
        help="waiting/running ratio that triggers a new prefill (LoRAX default 1.2)",
    )
    p.add_argument(
        "--decode-ms",
        type=float,
        metavar="MS",
        help="synthetic profile: fixed time per decode step (default 20)",
    )
    p.add_argument(
        "--prefill-ms",
        type=float,
        metavar="MS",
        help="synthetic profile: fixed time per prefill step (default 5)",
    )
    p.add_argument(
        "--step-jitter",
        type=_jitter_fraction,
        default=0.0,
        metavar="FRACTION",
        help="Gaussian jitter of step times, e.g. 0.05 (seeded; default 0; from 0 to below 0.5)",
    )
    p.add_argument(
        "--keep-alive",
        type=float,
        default=DEFAULT_KEEP_ALIVE_S,
        metavar="SECONDS",
        help="send a `:` keep-alive line on streams idle this long (axum default 15)",
    )
    p.add_argument(
        "--drain-timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="on SIGTERM, stop accepting and let requests in flight finish for up to this long (default 30)",
    )
    p.add_argument(
        "--lenient",
        action="store_true",
        help="accept what popular clients send and LoRAX rejects or ignores: `stop: null`, a string "
        "`stop`, `ignore_eos`, `max_completion_tokens`, a missing JSON content-type",
    )
    p.add_argument(
        "--faults",
        metavar="JSON",
        help="inject faults from the start, e.g. '{\"decode_factor\": 4}' or '{\"hang\": true}'; the same "
        "object POST /sim/faults takes at run time (keys: hang, fail_ratio, fail_after_tokens, adapter_fail, "
        "adapter_slow, adapter_slow_ms, decode_factor, exit_code, exit_after_s; docs/observability.md)",
    )
    p.add_argument(
        "--log-level",
        default="INFO",
        type=str.upper,
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        help="logging level (default INFO)",
    )
    p.set_defaults(func=run_sim)


def _profile_from_args(args: argparse.Namespace) -> Profile:
    profile = get_profile(args.profile)
    if (args.decode_ms is not None or args.prefill_ms is not None) and not profile.synthetic:
        raise SystemExit(f"--decode-ms/--prefill-ms only apply to --profile synthetic, not {profile.name}")
    if (args.decode_ms is not None and args.decode_ms <= 0) or (
        args.prefill_ms is not None and args.prefill_ms < 0
    ):
        raise SystemExit("--decode-ms must be > 0 and --prefill-ms >= 0 (milliseconds per step)")
    if args.decode_ms is not None:
        profile = dataclasses.replace(profile, fixed_decode_ms=args.decode_ms)
    if args.prefill_ms is not None:
        profile = dataclasses.replace(profile, fixed_prefill_ms=args.prefill_ms)
    return profile


def config_from_args(args: argparse.Namespace) -> SimConfig:
    from loraxkit.sim.app import SimConfig  # heavy imports (tokenizer) only when the simulator runs

    if args.max_input_length >= args.max_total_tokens:
        raise SystemExit(
            "--max-input-length must be < --max-total-tokens "
            f"(got {args.max_input_length} >= {args.max_total_tokens})"
        )
    if args.max_concurrent_requests < 1 or args.max_active_adapters < 1:
        raise SystemExit("--max-concurrent-requests and --max-active-adapters must be >= 1")
    if args.keep_alive <= 0 or args.adapter_cycle_time <= 0:
        raise SystemExit("--keep-alive and --adapter-cycle-time must be > 0 (seconds)")
    # LoRAX's launcher refuses these combinations at start-up, with the same advice.
    if args.max_batch_prefill_tokens is not None and args.max_batch_prefill_tokens < args.max_input_length:
        raise SystemExit(
            f"--max-batch-prefill-tokens ({args.max_batch_prefill_tokens}) must be >= --max-input-length "
            f"({args.max_input_length}): lower --max-input-length or raise --max-batch-prefill-tokens"
        )
    if args.max_batch_total_tokens is not None and args.max_batch_total_tokens < args.max_total_tokens:
        raise SystemExit(
            f"--max-batch-total-tokens ({args.max_batch_total_tokens}) must be >= --max-total-tokens "
            f"({args.max_total_tokens}): lower --max-total-tokens or raise --max-batch-total-tokens"
        )
    if args.max_batch_total_tokens is not None:
        # LoRAX's KV cache holds max_batch_total_tokens / 16 blocks less one reserved; a request of
        # max_total_tokens that needs more would wait for ever (block_allocator.rs, scheduler.rs:370-374)
        have, need = kv_capacity_blocks(args.max_batch_total_tokens), kv_blocks(args.max_total_tokens, 0)
        if have < need:
            raise SystemExit(
                f"--max-batch-total-tokens ({args.max_batch_total_tokens}) holds {have} KV blocks of "
                f"{BLOCK_SIZE} tokens (one is reserved), but a request of --max-total-tokens "
                f"({args.max_total_tokens}) needs {need}: LoRAX would never schedule it; raise "
                f"--max-batch-total-tokens to at least {(need + 1) * BLOCK_SIZE}"
            )
    if args.trace:
        try:
            with open(args.trace, "a", encoding="utf-8"):
                pass
        except OSError as exc:
            raise SystemExit(
                f"--trace {args.trace}: cannot write ({exc.strerror}); pick a writable path"
            ) from None
    return SimConfig(
        faults=_faults_from_args(args.faults),
        profile=_profile_from_args(args),
        host=args.host,
        port=args.port,
        seed=args.seed,
        trace_path=args.trace,
        startup_delay_s=args.startup_delay,
        model_id=args.model_id,
        max_concurrent_requests=args.max_concurrent_requests,
        max_active_adapters=args.max_active_adapters,
        unloadable_adapters=tuple(args.unloadable_adapter),
        lenient=args.lenient,
        limits=Limits(
            max_input_length=args.max_input_length,
            max_total_tokens=args.max_total_tokens,
            max_stop_sequences=args.max_stop_sequences,
            max_best_of=args.max_best_of,
        ),
        max_batch_total_tokens=args.max_batch_total_tokens,
        max_batch_prefill_tokens=args.max_batch_prefill_tokens,
        max_waiting_tokens=args.max_waiting_tokens,
        waiting_served_ratio=args.waiting_served_ratio,
        adapter_load_ms=args.adapter_load_ms,
        adapter_cycle_s=args.adapter_cycle_time,
        step_jitter=args.step_jitter,
        eager_prefill=args.eager_prefill == "true",
        keep_alive_s=args.keep_alive,
        drain_timeout_s=args.drain_timeout,
    )


def _faults_from_args(text: str | None) -> FaultSpec | None:
    from loraxkit.sim.faults import FaultError, parse

    if text is None:
        return None
    try:
        return parse(json.loads(text))
    except json.JSONDecodeError as exc:
        raise SystemExit(f"--faults: not JSON ({exc}); e.g. --faults '{{\"decode_factor\": 4}}'") from None
    except FaultError as exc:
        raise SystemExit(f"--faults: {exc}") from None


def run_sim(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    config = config_from_args(args)
    from loraxkit.sim.server import run

    return run(config)
