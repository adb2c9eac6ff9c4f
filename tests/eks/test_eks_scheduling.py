"""Node selection and toleration rules, on hand-written pod specs."""

from __future__ import annotations

from loraxkit.eks.cluster import Taint
from loraxkit.eks.scheduling import selects_node, tolerates, untolerated_taints

GPU_TAINT = Taint("nvidia.com/gpu", "true", "NoSchedule")
NODE = {"k8s.amazonaws.com/accelerator": "nvidia-l40s", "node.kubernetes.io/instance-type": "g6e.2xlarge"}


def _affinity(*expressions: dict) -> dict:
    terms = [{"matchExpressions": list(expressions)}]
    return {
        "affinity": {
            "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}
        }
    }


def test_node_selector_must_match_every_label() -> None:
    assert selects_node({"nodeSelector": {"k8s.amazonaws.com/accelerator": "nvidia-l40s"}}, NODE)
    assert not selects_node({"nodeSelector": {"k8s.amazonaws.com/accelerator": "nvidia-a10g"}}, NODE)
    assert not selects_node({"nodeSelector": {"role": "gpu"}}, NODE)


def test_no_selection_accepts_any_node() -> None:
    assert selects_node({}, NODE)


def test_required_affinity_operators() -> None:
    itype = "node.kubernetes.io/instance-type"
    assert selects_node(
        _affinity({"key": itype, "operator": "In", "values": ["g6e.2xlarge", "g5.2xlarge"]}), NODE
    )
    assert not selects_node(_affinity({"key": itype, "operator": "In", "values": ["g5.2xlarge"]}), NODE)
    assert not selects_node(_affinity({"key": itype, "operator": "NotIn", "values": ["g6e.2xlarge"]}), NODE)
    assert selects_node(_affinity({"key": "k8s.amazonaws.com/accelerator", "operator": "Exists"}), NODE)
    assert not selects_node(_affinity({"key": "missing", "operator": "Exists"}), NODE)
    assert selects_node(_affinity({"key": "missing", "operator": "DoesNotExist"}), NODE)


def test_affinity_terms_are_ored_and_expressions_anded() -> None:
    pod = _affinity(
        {"key": "k8s.amazonaws.com/accelerator", "operator": "In", "values": ["nvidia-l40s"]},
        {"key": "missing", "operator": "Exists"},
    )
    assert not selects_node(pod, NODE)
    terms = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"
    ]
    terms.append({"matchExpressions": [{"key": "k8s.amazonaws.com/accelerator", "operator": "Exists"}]})
    assert selects_node(pod, NODE)


def test_toleration_matching() -> None:
    assert tolerates({"key": "nvidia.com/gpu", "operator": "Exists"}, GPU_TAINT)
    assert tolerates({"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}, GPU_TAINT)
    assert not tolerates({"key": "nvidia.com/gpu", "value": "false"}, GPU_TAINT)
    assert not tolerates({"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoExecute"}, GPU_TAINT)
    assert not tolerates({"key": "gpu", "operator": "Exists"}, GPU_TAINT)
    assert tolerates({"operator": "Exists"}, GPU_TAINT)


def test_prefer_no_schedule_does_not_block() -> None:
    soft = Taint("spot", "true", "PreferNoSchedule")
    assert untolerated_taints({}, [soft]) == []
    assert untolerated_taints({}, [GPU_TAINT]) == [GPU_TAINT]
