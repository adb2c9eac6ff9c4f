"""`loraxkit eks`: check eks/cluster.yaml (eksctl schema, chart profiles) and print node-group costs."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from loraxkit.eks.cluster import Cluster, ClusterConfigError, load_cluster, load_cluster_doc, parse_cluster
from loraxkit.eks.instance_types import PRICE_REGION, PRICES_AS_OF, lookup
from loraxkit.eks.lint import cluster_problems
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
            "schema`; skipped with a note when neither exists), check what the schema cannot (version, AMI "
            "family, taints, GPU labels, autoscaler tags, add-ons, S3 scope), then render each profile with "
            "the chart and check that its pod lands on a node group: selection, tolerations, GPUs, CPU, "
            "memory, disk and the Pod Identity ServiceAccount. Exit code 1 when anything is wrong."
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


def _schema_report(cluster_file: Path) -> list[str]:
    try:
        schema = load_eksctl_schema()
    except SchemaUnavailable as exc:
        print(f"schema: skipped ({exc})")
        return []
    errors = schema_errors(load_cluster_doc(cluster_file), schema)
    print(f"schema: {'ok' if not errors else f'{len(errors)} error(s)'}")
    return [f"schema {e}" for e in errors]


def _profile_report(cluster: Cluster, profiles: Sequence[Path], release: str, namespace: str) -> list[str]:
    # Imported here: rendering needs helm-python-sdk (the `test` extra), the other sub-commands do not.
    from helm_python import HelmError

    from loraxkit.chart.render import render, render_hooks
    from loraxkit.eks.crosscheck import cross_check

    problems = []
    for profile in profiles:
        try:
            # The release's objects plus its hooks: the `helm test` pod has to be scheduled too.
            manifests = render(None, [profile], release=release, namespace=namespace)
            manifests += render_hooks(None, [profile], release=release, namespace=namespace)
        except (OSError, HelmError) as exc:
            print(f"profile {profile.name}: cannot render")
            problems.append(f"{profile}: the chart cannot render it; fix the values file: {exc}")
            continue
        try:
            findings = cross_check(manifests, cluster, namespace)
        except ClusterConfigError as exc:
            return [str(exc)]  # a cluster-side error, the same for every profile: report it once
        print(f"profile {profile.name}: {'ok' if not findings else f'{len(findings)} problem(s)'}")
        problems += [f"{profile.name}: {f}" for f in findings]
    return problems


def run_check(args: argparse.Namespace) -> int:
    try:
        problems = _schema_report(args.cluster)
        cluster = load_cluster(args.cluster)
    except (OSError, ClusterConfigError) as exc:
        print(f"error: {exc}")
        return 1
    lint = cluster_problems(cluster)
    print(f"cluster: {'ok' if not lint else f'{len(lint)} problem(s)'}")
    profiles = args.values or sorted(DEFAULT_VALUES_DIR.glob("*.yaml"))
    problems += lint + _profile_report(cluster, profiles, args.release, args.namespace)
    for problem in problems:
        print(f"  - {problem}")
    return 1 if problems else 0


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
