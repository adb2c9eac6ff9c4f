"""The `loraxkit` command: one entry point, one sub-command per concern."""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="loraxkit",
        description="LoRAX on Kubernetes: simulator, load-test demo and helpers.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    from loraxkit.sim.cli import register as register_sim; register_sim(subparsers)  # noqa: E702, I001
    from loraxkit.chart.values_doc import register as register_chart_docs; register_chart_docs(subparsers)  # noqa: E702, I001
    from loraxkit.chart.k8s_schema import register as register_k8s_schema; register_k8s_schema(subparsers)  # noqa: E702, I001
    from loraxkit.loadtest.demo import register as register_demo; register_demo(subparsers)  # noqa: E702, I001
    from loraxkit.loadtest.command import register as register_loadtest; register_loadtest(subparsers)  # noqa: E702, I001
    from loraxkit.eks.cli import register as register_eks; register_eks(subparsers)  # noqa: E702, I001
    from loraxkit.plan.cli import register as register_plan; register_plan(subparsers)  # noqa: E702, I001
    from loraxkit.gotools import register as register_tools; register_tools(subparsers)  # noqa: E702, I001
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
