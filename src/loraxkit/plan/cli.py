"""`loraxkit plan`: model, GPU, quantization, adapters -> LoRAX's memory budget, speed, cost, values."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from loraxkit.plan.api import Request, Result, plan
from loraxkit.plan.constants import ENGINES
from loraxkit.plan.engine import PlanRefused
from loraxkit.plan.models import ALL_LINEAR, BUILTIN
from loraxkit.plan.quant import DTYPE_CHOICES, QUANTIZE_CHOICES
from loraxkit.plan.values import comment_block, differences, plan_command, summary, update_text, values_text

EPILOG = """\
examples:
  loraxkit plan --model mistralai/Mistral-7B-Instruct-v0.1 --instance g6e.2xlarge --adapters 24x16 \\
      --values-out my-values.yaml
  loraxkit plan --model ./Qwen2.5-14B/config.json --gpu a100-80gb --gpus 2 --quantize fp8
  loraxkit plan --check values/*.yaml        # does every profile still match the planner?
  loraxkit plan --update values/g5-a10g-mistral-7b-instruct-gptq.yaml

The warm-up peak is an ESTIMATE (docs/plan.md gives its basis and spread); everything else is LoRAX
v0.12.1's own arithmetic. Exit status: 0 fits, 1 does not fit (each reason printed with its fix), 2 bad
input, 3 a --check found a difference.
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help=f"a config.json (or its directory) or a built-in id: {', '.join(BUILTIN)}")
    where = p.add_argument_group("hardware")
    where.add_argument(
        "--instance", help="EC2 instance type from loraxkit.eks.instance_types, e.g. g6e.2xlarge"
    )
    where.add_argument(
        "--gpu", help="GPU type without an instance: l40s, a10g, l4, a100-40gb, a100-80gb, h100"
    )
    where.add_argument("--gpus", type=int, default=1, help="GPUs with --gpu (default 1)")
    where.add_argument(
        "--shards", type=int, help="tensor-parallel shards (default: every GPU of the instance)"
    )
    weights = p.add_argument_group("weights")
    weights.add_argument(
        "--dtype",
        choices=DTYPE_CHOICES,
        help="unquantized dtype (default: the config's torch_dtype, else bfloat16)",
    )
    weights.add_argument("--quantize", choices=QUANTIZE_CHOICES, help="LoRAX --quantize (runs in float16)")
    weights.add_argument("--bits", type=int, default=4, help="GPTQ/AWQ bits (default 4)")
    weights.add_argument(
        "--group-size", type=int, default=128, help="GPTQ/AWQ group size, -1 none (default 128)"
    )
    lim = p.add_argument_group("context")
    lim.add_argument(
        "--max-total-tokens", type=int, help="prompt + output per request (default LoRAX's 4096 cap)"
    )
    lim.add_argument("--max-input-length", type=int, help="longest prompt (default total - --max-new-tokens)")
    lim.add_argument(
        "--max-new-tokens", type=int, default=1024, help="output reserve for the default input limit"
    )
    lim.add_argument(
        "--max-batch-prefill-tokens", type=int, help="warm-up prefill (default input + 50, LoRAX's)"
    )
    lim.add_argument("--typical-input", type=int, default=1024, help="typical prompt tokens (default 1024)")
    lim.add_argument("--typical-output", type=int, default=512, help="typical output tokens (default 512)")
    ad = p.add_argument_group("adapters")
    ad.add_argument(
        "--adapters", default="0x16", help="COUNTxRANK resident at once, e.g. 24x16 (default none)"
    )
    ad.add_argument(
        "--target-modules",
        default=",".join(ALL_LINEAR),
        help="comma-separated LoRA projections (default all seven linear ones: the largest adapter)",
    )
    ad.add_argument(
        "--adapter-bytes-per-param", type=int, default=2, help="2 for fp16/bf16 files, 4 for fp32"
    )
    ad.add_argument(
        "--adapter-memory-fraction",
        type=float,
        help="fix the reservation (default: the smallest multiple of 0.01 that holds the adapters; "
        "LoRAX's 0.1 without adapters)",
    )
    run = p.add_argument_group("engine")
    run.add_argument(
        "--cuda-graphs", choices=("auto", "on", "off"), default="auto", help="auto: on with 1 shard"
    )
    run.add_argument("--cuda-memory-fraction", type=float, default=1.0, help="LoRAX --cuda-memory-fraction")
    run.add_argument("--engine", choices=sorted(ENGINES), default="lorax-0.12.1", help="accounting constants")
    run.add_argument(
        "--max-batch-total-tokens",
        type=int,
        help="with --engine tgi-0.9 only (TGI <= 0.9.3 allocates exactly this KV; default its 16000); "
        "later engines infer it",
    )
    out = p.add_argument_group("output")
    out.add_argument("--values-out", type=Path, help="write a charts/lorax values file here")
    out.add_argument("--json", action="store_true", help="print the plan as JSON instead of the text budget")
    out.add_argument(
        "--check", nargs="+", type=Path, metavar="FILE", help="compare profiles with the planner"
    )
    out.add_argument("--update", nargs="+", type=Path, metavar="FILE", help="rewrite profiles' planned parts")


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "plan",
        help="size a LoRAX deployment: memory budget, requests, adapters, speed, cost and a values file",
        description=__doc__,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(p)
    p.set_defaults(func=main)


def request_from_args(args: argparse.Namespace) -> Request:
    if not args.model:
        raise ValueError("--model is required (a built-in id or a config.json path)")
    return Request(
        model=args.model, instance=args.instance, gpu=args.gpu, gpus=args.gpus, dtype=args.dtype,
        quantize=args.quantize, bits=args.bits, group_size=args.group_size, shards=args.shards,
        max_input_length=args.max_input_length, max_total_tokens=args.max_total_tokens,
        max_batch_prefill_tokens=args.max_batch_prefill_tokens, max_new_tokens=args.max_new_tokens,
        typical_input=args.typical_input, typical_output=args.typical_output, adapters=args.adapters,
        target_modules=tuple(m for m in args.target_modules.split(",") if m),
        adapter_bytes_per_param=args.adapter_bytes_per_param,
        adapter_memory_fraction=args.adapter_memory_fraction, cuda_graphs=args.cuda_graphs,
        cuda_memory_fraction=args.cuda_memory_fraction, engine=args.engine,
        max_batch_total_tokens=args.max_batch_total_tokens,
    )  # fmt: skip


def request_from_argv(argv: list[str]) -> Request:
    parser = argparse.ArgumentParser(prog="loraxkit plan", add_help=False)
    add_arguments(parser)
    return request_from_args(parser.parse_args(argv))


def result_for_profile(path: Path) -> Result:
    return plan(request_from_argv(plan_command(path.read_text(), path)))


def report(result: Result) -> str:
    lines = [line.removeprefix("# ").removeprefix("#") for line in comment_block(result)[1:-1]]
    lines += [f"warning: {w}" for w in result.warnings]
    return "\n".join(lines)


def _profiles(args: argparse.Namespace) -> int:
    status = 0
    for path in args.check or []:
        diffs = differences(result_for_profile(path), path.read_text())
        print(f"{path}: {'matches the planner' if not diffs else 'DIFFERS'}")
        for d in diffs:
            print(f"  {d}")
        status = 3 if diffs else status
    for path in args.update or []:
        path.write_text(update_text(result_for_profile(path), path.read_text()))
        print(f"{path}: updated from its plan command")
    return status


def main(args: argparse.Namespace) -> int:
    try:
        if args.check or args.update:
            return _profiles(args)
        result = plan(request_from_args(args))
    except PlanRefused as refused:
        print(str(refused), file=sys.stderr)
        return 1
    except (ValueError, KeyError) as bad:
        print(f"loraxkit plan: {bad}", file=sys.stderr)
        return 2
    print(json.dumps(summary(result), indent=2) if args.json else report(result))
    if args.values_out:
        args.values_out.write_text(values_text(result))
        print(f"wrote {args.values_out}")
    return 0
