"""eks/cluster.yaml against eksctl's own schema (LORAXKIT_EKSCTL_SCHEMA or `eksctl utils schema`).

Without either, the whole module skips with one line.
"""

from __future__ import annotations

from typing import Any

import pytest
from eks_helpers import node_group

from loraxkit.eks.schema import SchemaUnavailable, load_eksctl_schema, schema_errors

try:
    SCHEMA = load_eksctl_schema()
except SchemaUnavailable as exc:
    pytest.skip(str(exc), allow_module_level=True)


def test_shipped_cluster_is_valid(cluster_doc: dict[str, Any]) -> None:
    assert schema_errors(cluster_doc, SCHEMA) == []


def test_misspelled_field_is_rejected(cluster_doc: dict[str, Any]) -> None:
    node_group(cluster_doc, "gpu-g6e")["instanceTypez"] = ["g6e.xlarge"]
    errors = schema_errors(cluster_doc, SCHEMA)
    assert any("instanceTypez" in e for e in errors), errors


def test_wrong_type_is_rejected(cluster_doc: dict[str, Any]) -> None:
    node_group(cluster_doc, "gpu-g5")["volumeSize"] = "200"
    errors = schema_errors(cluster_doc, SCHEMA)
    assert any("volumeSize" in e and "integer" in e for e in errors), errors


def test_unknown_ami_family_is_rejected(cluster_doc: dict[str, Any]) -> None:
    node_group(cluster_doc, "gpu-g5")["amiFamily"] = "AmazonLinux2024"
    assert any("amiFamily" in e for e in schema_errors(cluster_doc, SCHEMA))


def test_schema_leaves_taint_effect_free(cluster_doc: dict[str, Any]) -> None:
    # Why lint.py asserts the effect itself: eksctl's schema accepts any string here.
    node_group(cluster_doc, "gpu-g6e")["taints"][0]["effect"] = "NoScheduleX"
    assert schema_errors(cluster_doc, SCHEMA) == []
