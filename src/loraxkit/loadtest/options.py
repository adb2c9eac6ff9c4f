"""Every harness option as a Locust custom argument (web UI, `locust.conf`, `LOCUST_*` env vars, CLI)."""

from __future__ import annotations

from typing import Any

import configargparse

from loraxkit.loadtest.prompts import BUILTIN_TOKENIZERS
from loraxkit.loadtest.schedule import ARRIVAL_PROCESSES
from loraxkit.loadtest.slo import DEFAULT_MAX_ERROR_RATE, LATENCY_GATES
from loraxkit.loadtest.stages import SHAPES
from loraxkit.loadtest.workload import (
    MIX_KINDS,
    Workload,
    WorkloadError,
    load_workload_file,
    workload_from_mapping,
)

# CLI option -> Workload field. Their parser default is None so a YAML file's value is not overridden.
WORKLOAD_OPTIONS: dict[str, str] = {
    "adapters": "adapters",
    "mix": "mix",
    "zipf_exponent": "zipf_exponent",
    "weights": "weights",
    "base_share": "base_share",
    "prompts": "prompts",
    "tokenizer": "tokenizer",
    "input_tokens": "input_tokens",
    "output_tokens": "output_tokens",
    "seed": "seed",
}


class _WithEnvVars:
    """Gives every option a LOCUST_<NAME> environment variable on Locust's (configargparse) parser."""

    def __init__(self, parser: Any) -> None:
        self.parser = parser
        self.env = isinstance(parser, configargparse.ArgumentParser)
        self.names: list[str] = []

    def add_argument(self, *flags: str, **kwargs: Any) -> Any:
        name = flags[0].lstrip("-")
        self.names.append(name.replace("-", "_"))
        if self.env:
            kwargs.setdefault("env_var", "LOCUST_" + name.upper().replace("-", "_"))
        return self.parser.add_argument(*flags, **kwargs)


def option_names() -> list[str]:
    """Attribute names of every harness option (for the report)."""
    import argparse

    collector = _WithEnvVars(argparse.ArgumentParser(add_help=False))
    _workload_arguments(collector)
    _load_arguments(collector)
    _report_arguments(collector)
    return collector.names


def add_arguments(parser: Any) -> None:
    """Register the options on Locust's parser (`events.init_command_line_parser`)."""
    parser = _WithEnvVars(parser)
    # Directly on the parser, not in argument groups: only LocustArgumentParser.add_argument marks an
    # option for the web UI.
    _workload_arguments(parser)
    _load_arguments(parser)
    _report_arguments(parser)


def _workload_arguments(g: Any) -> None:
    g.add_argument(
        "--workload",
        default="",
        help="YAML workload file (keys: adapters, mix, zipf_exponent, "
        "weights, base_share, prompts, tokenizer, input_tokens, output_tokens, ignore_eos, seed); "
        "options given on the command line win",
    )
    g.add_argument(
        "--adapters",
        default=None,
        help="adapter ids, comma separated; 'lora-{0..63}' expands to 64 ids (default adapter-{0..3})",
    )
    g.add_argument("--mix", default=None, choices=MIX_KINDS, help="adapter traffic mix (default uniform)")
    g.add_argument(
        "--zipf-exponent",
        type=float,
        default=None,
        help="Zipf exponent s for --mix zipf: adapter of rank r gets weight 1/r^s (default 1.1)",
    )
    g.add_argument(
        "--weights", default=None, help="for --mix weights: one weight per adapter, comma separated"
    )
    g.add_argument(
        "--base-share",
        type=float,
        default=None,
        help="fraction of requests sent to the base model, no adapter (default 0)",
    )
    g.add_argument(
        "--base-model-id",
        default="",
        help="the `model` sent for base-model requests on the "
        "OpenAI routes ('' or LoRAX's model id both mean the base model)",
    )
    g.add_argument(
        "--prompts",
        default=None,
        help="'synthetic' (default) or a JSONL file of ShareGPT-style "
        'conversations / {"prompt": ...} lines',
    )
    g.add_argument(
        "--tokenizer",
        default=None,
        help=f"token counting: one of {', '.join(BUILTIN_TOKENIZERS)} "
        "(default mistral-v1, LoRAX's default model) or a mistral-common tokenizer file",
    )
    g.add_argument(
        "--input-tokens",
        default=None,
        help="prompt length in tokens for synthetic prompts: 256, "
        "uniform:64,256 (default), normal:256,64[,min,max], exponential:256[,min,max]",
    )
    g.add_argument(
        "--output-tokens",
        default=None,
        help="max_new_tokens distribution, same forms as "
        "--input-tokens (default 128), or 'dataset' for the JSONL answers' lengths",
    )
    g.add_argument(
        "--respect-eos",
        action="store_true",
        default=False,
        help="let the model stop at EOS "
        "(default: ignore_eos_token=true, so every request generates exactly max_new_tokens)",
    )
    g.add_argument(
        "--seed", type=int, default=None, help="seed of the request sequence and arrivals (default 0)"
    )


def _load_arguments(g: Any) -> None:
    g.add_argument(
        "--arrival-rate",
        default="",
        help="open loop: requests/s for the whole run (all "
        "workers together); several values (1,2,4) make a rate sweep of --stage-time each. "
        "-u is then the pool of users that carry requests (make it large, and -r = -u)",
    )
    g.add_argument(
        "--arrival-process",
        default="poisson",
        choices=ARRIVAL_PROCESSES,
        help="open-loop inter-arrival times: poisson (exponential gaps) or constant",
    )
    g.add_argument(
        "--shape",
        default="none",
        choices=SHAPES,
        help="closed-loop stages that find the "
        "saturation point: 'sweep' runs --sweep-users, 'step' adds --step-users per stage; "
        "'none' keeps plain -u/-r/-t",
    )
    g.add_argument("--sweep-users", default="1,2,4,8,16,32", help="user counts of the sweep stages")
    g.add_argument("--step-users", type=int, default=4, help="users added per stage with --shape step")
    g.add_argument("--steps", type=int, default=5, help="number of stages with --shape step")
    g.add_argument("--stage-time", type=float, default=20.0, help="seconds per stage (shapes, rate sweeps)")
    g.add_argument(
        "--stage-warmup",
        type=float,
        default=2.0,
        help="seconds at the start of each stage left out of that stage's figures",
    )
    g.add_argument(
        "--saturation-gain",
        type=float,
        default=0.10,
        help="a stage is the saturation point when "
        "the next stage adds less than this fraction of output tokens/s",
    )
    g.add_argument(
        "--think-time",
        type=float,
        default=0.0,
        help="closed loop: seconds a user waits between requests (default 0)",
    )
    g.add_argument(
        "--request-timeout",
        type=float,
        default=300.0,
        help="seconds before a request is abandoned (connection + whole stream)",
    )
    g.add_argument(
        "--stall-timeout",
        type=float,
        default=10.0,
        help="a request still in flight when the run stops that received nothing for this many seconds "
        "is a failure of its own class, 'stalled' (others are 'cancelled_at_stop')",
    )
    g.add_argument(
        "--warmup",
        type=float,
        default=0.0,
        help="steady state starts this many seconds after the last user was spawned (default 0); every "
        "connection's first request (it carries the TCP connect) is left out too",
    )
    g.add_argument(
        "--cooldown",
        type=float,
        default=0.0,
        help="steady state ends this many seconds before the run stops (default 0)",
    )
    g.add_argument(
        "--preconnect",
        action="store_true",
        default=False,
        help="open each user's connection (GET /health) before its first timed request, so that request "
        "counts in the steady state too",
    )
    g.add_argument(
        "--drain-time",
        type=float,
        default=30.0,
        help="open-loop rate sweeps: seconds to wait for in-flight requests after the schedule ends",
    )
    g.add_argument(
        "--user-space-stamps",
        action="store_true",
        default=False,
        help="stamp token events with the clock when Python reads them instead of the kernel's receive "
        "time (SO_TIMESTAMPNS); only for comparing the two",
    )
    g.add_argument(
        "--keep-gc",
        action="store_true",
        default=False,
        help="leave Python's garbage collector "
        "as it is (by default it is frozen and tuned during the run: its pauses show up as "
        "latency)",
    )


def _report_arguments(g: Any) -> None:
    g.add_argument(
        "--report-dir",
        default="loadtest-report",
        help="where report.json, report.md, report.html and plots are written",
    )
    g.add_argument(
        "--save-records",
        action="store_true",
        default=False,
        help="also write records.jsonl: one line per request with every token timestamp",
    )
    g.add_argument(
        "--scrape-metrics",
        action="store_true",
        default=False,
        help="sample the server's /metrics during the run (queue length, batch size) into the report",
    )
    g.add_argument("--metrics-url", default="", help="Prometheus endpoint to sample (default <host>/metrics)")
    g.add_argument(
        "--prometheus-url",
        default="",
        help="Prometheus server scraping LoRAX (e.g. http://127.0.0.1:9090): the report lists the LoRAX "
        "alerts that fired during the run",
    )
    g.add_argument("--scrape-interval", type=float, default=2.0, help="seconds between /metrics samples")
    g.add_argument(
        "--progress-interval", type=float, default=10.0, help="seconds between progress lines (0 = none)"
    )
    g.add_argument(
        "--stats-by",
        default="adapter",
        choices=("adapter", "route"),
        help="name Locust's own stats rows per adapter ('/generate_stream [lora-3]') or per route",
    )
    for name in LATENCY_GATES:
        metric, p = name.split("_")[1:]
        g.add_argument(
            "--" + name.replace("_", "-"),
            type=float,
            default=None,
            help=f"SLO gate: fail the run (exit code 3) when {metric.upper()} {p} exceeds this (ms)",
        )
    g.add_argument(
        "--max-error-rate",
        type=float,
        default=DEFAULT_MAX_ERROR_RATE,
        help="fail the run (exit code 3) when the fraction of failed requests over the whole run exceeds "
        f"this (default {DEFAULT_MAX_ERROR_RATE:g}; requests the harness cut off at stop do not count); "
        "set 1 to accept any error rate",
    )
    g.add_argument(
        "--gate-on",
        default="steady",
        choices=("steady", "whole"),
        help="which figures the latency gates judge: the steady state (default) or the whole run",
    )
    g.add_argument(
        "--slo-per-adapter",
        action="store_true",
        default=False,
        help="apply the SLO gates to every adapter separately as well as overall",
    )
    g.add_argument("--goodput-ttft", type=float, default=None, help="goodput: per-request TTFT limit (ms)")
    g.add_argument("--goodput-tpot", type=float, default=None, help="goodput: per-request TPOT limit (ms)")
    g.add_argument("--goodput-e2e", type=float, default=None, help="goodput: per-request E2E limit (ms)")


def workload_from_options(options: Any) -> Workload:
    """The Workload from --workload (if any) with command-line values on top."""
    overrides: dict[str, Any] = {}
    for option, key in WORKLOAD_OPTIONS.items():
        value = getattr(options, option, None)
        if value is None or value == "":
            continue
        if key == "weights":
            try:
                value = [float(w) for w in str(value).split(",")]
            except ValueError:
                raise WorkloadError(f"--weights: {value!r} is not a comma list of numbers") from None
        overrides[key] = value
    if getattr(options, "respect_eos", False):
        overrides["ignore_eos"] = False
    path = getattr(options, "workload", "")
    if path:
        return load_workload_file(path, overrides)
    return workload_from_mapping(overrides, "command line")


def parse_rates(text: str) -> list[float]:
    """`--arrival-rate` as a list of rates ([] = closed loop)."""
    if not text or not str(text).strip():
        return []
    try:
        return [float(r) for r in str(text).split(",") if r.strip()]
    except ValueError:
        raise WorkloadError(f"--arrival-rate: {text!r} is not a number or a comma list of numbers") from None
