"""docs/eks.md must agree with eks/cluster.yaml: node table and prices, install namespace, pinned charts."""

from __future__ import annotations

import re

from eks_helpers import REPO, cluster_of, lorax_identity, shipped_doc

from loraxkit.eks.cli import EKS_CONTROL_PLANE_USD_PER_HOUR, costs_table, hourly_at_desired

DOCS = (REPO / "docs" / "eks.md").read_text()


def _commands(prefix: str) -> list[str]:
    """Shell commands in the doc starting with `prefix`, continuation lines joined."""
    joined = re.sub(r"\\\n\s*", " ", DOCS)
    return [line.strip() for line in joined.splitlines() if line.strip().startswith(prefix)]


def test_node_table_is_the_one_the_cluster_file_gives() -> None:
    for row in costs_table(cluster_of(shipped_doc())):
        assert row in DOCS, f"docs/eks.md lacks (run `loraxkit eks costs`):\n{row}"


def test_hourly_total_matches() -> None:
    nodes = hourly_at_desired(cluster_of(shipped_doc()))
    assert f"${nodes + EKS_CONTROL_PLANE_USD_PER_HOUR:.2f}/h" in DOCS
    assert f"${nodes:.2f} nodes" in DOCS


def test_lorax_is_installed_where_pod_identity_points() -> None:
    identity = lorax_identity(shipped_doc())
    installs = _commands("helm install lorax charts/lorax")
    assert installs
    for command in installs:
        assert f"-n {identity['namespace']}" in command, command


def test_every_remote_chart_is_pinned() -> None:
    installs = [c for c in _commands("helm install") if "charts/lorax" not in c]
    assert len(installs) >= 4  # load balancer controller, cluster-autoscaler, Prometheus, KEDA
    for command in installs:
        assert re.search(r"--version \d+\.\d+\.\d+", command), command


def test_cluster_autoscaler_minor_matches_the_cluster() -> None:
    version = shipped_doc()["metadata"]["version"]
    tags = re.findall(r"image\.tag=v(\d+\.\d+)\.\d+", DOCS)
    assert tags == [version]
