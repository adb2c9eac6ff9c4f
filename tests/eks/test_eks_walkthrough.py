"""The walkthrough in docs/eks.md: pinned add-on pairs that work together, the device plugin on GPU nodes
only, and the node figures it prints."""

from __future__ import annotations

import re

import pytest
from eks_helpers import REPO, cluster_of, shipped_doc

from loraxkit.eks.addons import (
    CA_CHARTS,
    NVIDIA_PLUGIN_AFFINITY,
    NVIDIA_PLUGIN_CHART_VERSION,
    NVIDIA_PLUGIN_TOLERATIONS,
    autoscaler_pair_problems,
    eksctl_installs_nvidia_plugin,
)
from loraxkit.eks.nodes import GIB, MIB, cluster_nodes
from loraxkit.eks.scheduling import selects_node, untolerated_taints

DOCS = (REPO / "docs" / "eks.md").read_text()
CLUSTER_VERSION = shipped_doc()["metadata"]["version"]


def _commands(prefix: str) -> list[str]:
    joined = re.sub(r"\\\n\s*", " ", DOCS)
    return [line.strip() for line in joined.splitlines() if line.strip().startswith(prefix)]


def _autoscaler_pin() -> tuple[str, str]:
    (command,) = _commands("helm install cluster-autoscaler")
    chart = re.search(r"--version (\S+)", command)
    image = re.search(r"image\.tag=(\S+)", command)
    assert chart and image, command
    return chart.group(1), image.group(1)


def test_autoscaler_chart_grants_what_its_image_watches() -> None:
    chart, image = _autoscaler_pin()
    assert autoscaler_pair_problems(chart, image, CLUSTER_VERSION) == []


@pytest.mark.parametrize(
    ("chart", "image", "needle"),
    [
        ("9.50.1", "v1.35.2", "grants no RBAC for resource.k8s.io"),  # the pair this guide used to pin
        ("9.53.0", "v1.35.0", "use chart 9.54.0+"),
        ("9.59.0", "v1.34.2", "is 1.34 but the cluster is 1.35"),
        ("9.99.0", "v1.35.2", "not in loraxkit.eks.addons.CA_CHARTS"),
    ],
)
def test_broken_autoscaler_pairs_are_named(chart: str, image: str, needle: str) -> None:
    assert needle in " ".join(autoscaler_pair_problems(chart, image, CLUSTER_VERSION))


def test_autoscaler_table_starts_granting_dra_at_9_54() -> None:
    key = lambda v: tuple(int(p) for p in v.split("."))  # noqa: E731
    granting = sorted((v for v, (_, _, grants) in CA_CHARTS.items() if grants), key=key)
    assert granting[0] == "9.54.0"
    for version, (commit, app, grants) in CA_CHARTS.items():
        assert bool(grants) == (key(version) >= key("9.54.0")), version
        row = f"| {version} | {commit} | {app} | {'yes' if grants else 'no'} |"
        assert row in DOCS, f"docs/eks.md lacks the chart row:\n{row}"


def test_eksctl_device_plugin_is_switched_off_wherever_eksctl_creates_nodes() -> None:
    assert eksctl_installs_nvidia_plugin(shipped_doc())  # AL2023 GPU groups: eksctl would install its own
    creates = _commands("eksctl create cluster") + _commands("eksctl create nodegroup")
    creates += [c.lstrip("# ").strip() for c in _commands("# ") if "eksctl create" in c]
    assert _commands("eksctl create cluster")
    for command in creates:
        assert "--install-nvidia-plugin=false" in command, command
    header = (REPO / "eks" / "cluster.yaml").read_text().split("apiVersion")[0]
    assert header.count("--install-nvidia-plugin=false") >= 2  # create cluster and create nodegroup


def test_bottlerocket_groups_get_no_eksctl_plugin() -> None:
    doc = shipped_doc()
    for group in doc["managedNodeGroups"]:
        group["amiFamily"] = "Bottlerocket"
    assert not eksctl_installs_nvidia_plugin(doc)


def test_nvidia_chart_is_pinned_and_runs_on_gpu_nodes_only() -> None:
    (command,) = _commands("helm install nvdp")
    assert f"--version {NVIDIA_PLUGIN_CHART_VERSION}" in command
    plugin = {"affinity": NVIDIA_PLUGIN_AFFINITY, "tolerations": NVIDIA_PLUGIN_TOLERATIONS}
    for node in cluster_nodes(cluster_of(shipped_doc())):
        runs = selects_node(plugin, node.labels) and not untolerated_taints(plugin, node.taints)
        assert runs == bool(node.capacity.gpus), node.describe()


def test_gpu_nodes_carry_the_plugin_label_even_without_the_group_label() -> None:
    doc = shipped_doc()
    for group in doc["managedNodeGroups"]:
        group.get("labels", {}).pop("nvidia.com/gpu.present", None)
    plugin = {"affinity": NVIDIA_PLUGIN_AFFINITY}
    gpu_nodes = [n for n in cluster_nodes(cluster_of(doc)) if n.capacity.gpus]
    assert gpu_nodes and all(selects_node(plugin, n.labels) for n in gpu_nodes)  # nodeadm sets it on 1.35


def test_node_monitoring_agent_is_installed() -> None:
    assert "eks-node-monitoring-agent" in {a["name"] for a in shipped_doc()["addons"]}


def test_allocatable_table_is_the_model() -> None:
    for node in cluster_nodes(cluster_of(shipped_doc())):
        a, r = node.allocatable, node.kube_reserved
        row = (
            f"| {node.instance_type} ({node.group}, {node.capacity.ephemeral_bytes // GIB} GiB) | {a.pods} "
            f"| {r.cpu_millis}m / {r.memory_bytes // MIB} MiB "
            f"| {a.cpu_millis / 1000:g} / {a.memory_bytes / GIB:.2f} GiB / {a.ephemeral_bytes // GIB} GiB |"
        )
        assert row in DOCS, f"docs/eks.md lacks:\n{row}"
