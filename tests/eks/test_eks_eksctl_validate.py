"""go/eksctl-validate: eksctl's own loading, defaulting and validation of eks/cluster.yaml (no AWS call)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from eks_helpers import CLUSTER_YAML, cluster_of, node_group, shipped_doc

from loraxkit.eks.eksctl_validate import EksctlValidateError, run_eksctl_validate
from loraxkit.eks.nodes import cluster_nodes


def _write(tmp_path: Path, doc: dict) -> Path:
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def test_shipped_cluster_is_accepted(eksctl_binary: Path) -> None:
    verdict = run_eksctl_validate(CLUSTER_YAML, eksctl_binary)
    assert verdict.accepted and verdict.error == "" and verdict.stage == ""
    assert any("AWS" in s for s in verdict.skipped)


def test_rejection_carries_eksctls_message(eksctl_binary: Path, tmp_path: Path) -> None:
    doc = shipped_doc()
    node_group(doc, "gpu-g6e")["desiredCapacity"] = 5
    verdict = run_eksctl_validate(_write(tmp_path, doc), eksctl_binary)
    assert not verdict.accepted and verdict.stage == "initialize"
    assert "--nodes-max=4 and --nodes=5" in verdict.error


def test_unknown_field_is_rejected_at_load(eksctl_binary: Path, tmp_path: Path) -> None:
    doc = shipped_doc()
    node_group(doc, "gpu-g5")["instanceTyp"] = "g5.2xlarge"
    verdict = run_eksctl_validate(_write(tmp_path, doc), eksctl_binary)
    assert not verdict.accepted and verdict.stage == "load" and "instanceTyp" in verdict.error


def test_eksctl_warnings_are_reported(eksctl_binary: Path, tmp_path: Path) -> None:
    doc = shipped_doc()
    node_group(doc, "gpu-g5")["amiFamily"] = "Ubuntu2404"
    verdict = run_eksctl_validate(_write(tmp_path, doc), eksctl_binary)
    assert verdict.accepted
    assert any("GPU" in w or "NVIDIA" in w.upper() for w in verdict.warnings), verdict.warnings


def test_node_model_has_every_label_eksctl_defaults(eksctl_binary: Path) -> None:
    config = run_eksctl_validate(CLUSTER_YAML, eksctl_binary, with_config=True).config
    nodes = {n.group: n for n in cluster_nodes(cluster_of(shipped_doc()))}
    for group in config["managedNodeGroups"]:
        labels = group.get("labels") or {}
        assert "alpha.eksctl.io/nodegroup-name" in labels
        assert labels.items() <= nodes[group["name"]].labels.items(), group["name"]


def test_a_binary_that_prints_no_json_is_an_error(tmp_path: Path) -> None:
    fake = tmp_path / "fake"
    fake.write_text("#!/bin/sh\necho not json; exit 1\n")
    fake.chmod(0o755)
    with pytest.raises(EksctlValidateError, match="printed no JSON"):
        run_eksctl_validate(CLUSTER_YAML, fake)
