"""`loraxkit eks`: check eks/cluster.yaml (eksctl schema, chart profiles) and print node-group costs."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from loraxkit.eks.cluster import Cluster, ClusterConfigError, load_cluster_doc, parse_cluster
from loraxkit.eks.eksctl_rules import eksctl_problems, zone_problems
from loraxkit.eks.eksctl_validate import (
    BINARY_ENV,
    BUILD_HINT,
    EksctlValidateError,
    run_eksctl_validate,
    validator_binary,
)
from loraxkit.eks.instance_types import PRICE_REGION, PRICES_AS_OF, lookup
from loraxkit.eks.lint import cluster_problems
from loraxkit.eks.problems import Problem, error, errors, warning, warnings
from loraxkit.eks.schema import SCHEMA_ENV, SchemaUnavailable, load_eksctl_schema, schema_errors

REPO = Path(__file__).resolve().parents[3]
DEFAULT_CLUSTER = REPO / "eks" / "cluster.yaml"
DEFAULT_VALUES_DIR = REPO / "values"
EKS_CONTROL_PLANE_USD_PER_HOUR = 0.10  # standard support; extended support is $0.60


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "eks",
        help="check eks/cluster.yaml against eksctl's schema and the chart; print node-group costs",
        description="Work with the EKS cluster definition (eks/cluster.yaml).",
    )
    commands = parser.add_subparsers(dest="eks_command", metavar="SUBCOMMAND", required=True)

    check = commands.add_parser(
        "check",
        help="validate the cluster file and cross-check it with values/ profiles",
        description=(
            "Validate the cluster file against eksctl's schema (from $" + SCHEMA_ENV + " or `eksctl utils "
            "schema`; skipped with a note when neither exists) and eksctl's own loading, defaulting and "
            "validation (the Go tool go/eksctl-validate, built by `"
            + BUILD_HINT
            + "`, or $"
            + BINARY_ENV
            + "; without it, eksctl's rules as ported to Python). Then check what eksctl does not (zones, "
            "version, GPU labels and taints, autoscaler tags, add-ons, S3 scope), render each profile with "
            "the chart and check that its pods schedule on EKS's nodes as kube-scheduler decides: selection, "
            "tolerations, and requests against allocatable (nodeadm's kube-reserved, eviction and max pods). "
            "Errors (eksctl rejects the file, a pod stays Pending, S3 is denied) exit 1; warnings (house "
            "conventions, risks the scheduler does not see) are printed apart and exit 0."
        ),
    )
    check.add_argument("--cluster", type=Path, default=DEFAULT_CLUSTER, help="eksctl ClusterConfig file")
    check.add_argument(
        "--values",
        type=Path,
        action="append",
        metavar="FILE",
        help="profile to cross-check (repeatable; default: every values/*.yaml)",
    )
    check.add_argument("--namespace", default="lorax", help="namespace you install the chart into")
    check.add_argument("--release", default="lorax", help="release name you install the chart as")
    check.set_defaults(func=run_check)

    costs = commands.add_parser(
        "costs",
        help="print each node group's instance type, hardware and on-demand price",
        description=(
            f"Print a Markdown table of the node groups with AWS's published {PRICE_REGION} on-demand price "
            f"(as of {PRICES_AS_OF}; check the AWS pricing page before you rely on it)."
        ),
    )
    costs.add_argument("--cluster", type=Path, default=DEFAULT_CLUSTER, help="eksctl ClusterConfig file")
    costs.set_defaults(func=run_costs)


def _schema_report(cluster_file: Path) -> list[Problem]:
    try:
        schema = load_eksctl_schema()
    except SchemaUnavailable as exc:
        print(f"schema: skipped ({exc})")
        return []
    errs = schema_errors(load_cluster_doc(cluster_file), schema)
    print(f"schema: {'ok' if not errs else f'{len(errs)} error(s)'}")
    return [error("eksctl schema", e) for e in errs]


def _eksctl_report(cluster_file: Path, doc: dict[str, Any]) -> list[Problem]:
    """eksctl itself when the Go tool is built; its rules ported to Python otherwise."""
    try:
        binary = validator_binary()
        verdict = run_eksctl_validate(cluster_file, binary) if binary else None
    except EksctlValidateError as exc:
        print(f"eksctl: cannot run ({exc})")
        return [error("eksctl", str(exc))]
    if verdict is None:
        ported = eksctl_problems(doc)
        print(
            f"eksctl: rules ported to Python ({len(errors(ported))} error(s)); "
            f"`{BUILD_HINT}` runs eksctl's own"
        )
        return ported
    print(f"eksctl: {'accepted' if verdict.accepted else 'rejected'} (eksctl's own validation, no AWS call)")
    problems = [warning("eksctl", w) for w in verdict.warnings]
    if not verdict.accepted:
        problems.insert(
            0, error("eksctl", f"{verdict.error} (eksctl stops at its first error; fix and re-run)")
        )
    return problems


def _profile_report(
    cluster: Cluster, profiles: Sequence[Path], release: str, namespace: str
) -> list[Problem]:
    # Imported here: rendering needs helm-python-sdk (the `test` extra), the other sub-commands do not.
    from helm_python import HelmError

    from loraxkit.chart.render import render, render_hooks
    from loraxkit.eks.crosscheck import cross_check

    problems: list[Problem] = []
    for profile in profiles:
        try:
            # The release's objects plus its hooks: the `helm test` pod has to be scheduled too.
            manifests = render(None, [profile], release=release, namespace=namespace)
            manifests += render_hooks(None, [profile], release=release, namespace=namespace)
        except (OSError, HelmError) as exc:
            print(f"profile {profile.name}: cannot render")
            problems.append(
                error("chart", f"{profile}: the chart cannot render it; fix the values file: {exc}")
            )
            continue
        try:
            findings = cross_check(manifests, cluster, namespace)
        except ClusterConfigError as exc:
            return [
                error("cluster", str(exc))
            ]  # a cluster-side error, the same for every profile: report it once
        found = [Problem(f.severity, "scheduler", f"{profile.name}: {f}") for f in findings]
        # "profile NAME: ok" exactly when it schedules (tests/cluster parse it); warnings on their own line
        n_err, n_warn = len(errors(found)), len(warnings(found))
        print(f"profile {profile.name}: {'ok' if not n_err else f'{n_err} error(s)'}")
        if n_warn:
            print(f"  {n_warn} warning(s), listed below")
        problems += found
    return problems


def run_check(args: argparse.Namespace) -> int:
    try:
        doc = load_cluster_doc(args.cluster)
        problems = _schema_report(args.cluster) + _eksctl_report(args.cluster, doc)
        cluster = parse_cluster(doc)
    except (OSError, ClusterConfigError) as exc:
        print(f"error: {exc}")
        return 1
    lint = cluster_problems(cluster) + zone_problems(doc)
    print(f"cluster: {len(errors(lint))} error(s), {len(warnings(lint))} warning(s)")
    profiles = args.values or sorted(DEFAULT_VALUES_DIR.glob("*.yaml"))
    problems += lint + _profile_report(cluster, profiles, args.release, args.namespace)
    for title, group in (("errors", errors(problems)), ("warnings", warnings(problems))):
        if group:
            print(f"{title}:")
            for problem in group:
                print(f"  - {problem}")
    return 1 if errors(problems) else 0


def costs_table(cluster: Cluster) -> list[str]:
    rows = [
        "| Node group | Instance type | GPUs | GPU memory | vCPU / RAM | Root volume | Instance store "
        "| Nodes (min/desired/max) | On-demand $/h per node |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for group in cluster.node_groups:
        for itype in group.instance_types:
            inst = lookup(itype)
            gpus = f"{inst.gpu_count} x {inst.gpu_model}" if inst.gpu_count else "-"
            gpu_mem = f"{inst.gpu_memory_gib} GB each" if inst.gpu_count else "-"
            store = f"{inst.instance_storage_gb} GB NVMe" if inst.instance_storage_gb else "-"
            rows.append(
                f"| {group.name} | {itype} | {gpus} | {gpu_mem} | {inst.vcpus} / {inst.memory_gib} GiB "
                f"| {group.volume_size_gib} GiB | {store} "
                f"| {group.min_size}/{group.desired_size}/{group.max_size} | ${inst.usd_per_hour:.3f} |"
            )
    return rows


def hourly_at_desired(cluster: Cluster) -> float:
    """On-demand $/h of the nodes at their desired sizes (first instance type of each group)."""
    return sum(g.desired_size * lookup(g.instance_types[0]).usd_per_hour for g in cluster.node_groups)


def run_costs(args: argparse.Namespace) -> int:
    try:
        doc = load_cluster_doc(args.cluster)
        cluster = parse_cluster(doc)
    except (OSError, ClusterConfigError) as exc:
        print(f"error: {exc}")
        return 1
    for row in costs_table(cluster):
        print(row)
    nodes, plane = hourly_at_desired(cluster), EKS_CONTROL_PLANE_USD_PER_HOUR
    print(
        f"\nAt the desired sizes: ${nodes:.2f}/h for nodes + ${plane:.2f}/h control plane = "
        f"${nodes + plane:.2f}/h (NAT gateway, load balancer, EBS volumes and traffic are extra)."
    )
    print(
        f"Prices: AWS {PRICE_REGION} on-demand Linux, as of {PRICES_AS_OF}; EKS control plane "
        f"${EKS_CONTROL_PLANE_USD_PER_HOUR:.2f}/h. Check the AWS pricing page before you rely on them."
    )
    return 0
