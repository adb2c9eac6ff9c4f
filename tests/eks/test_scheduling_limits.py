"""Both sides of each node-selection and toleration rule kube-scheduler applies (NodeAffinity's Gt/Lt at
the label's value, a missing label under each operator, AWS-only labels, empty toleration fields)."""

from __future__ import annotations

from typing import Any

import pytest

from loraxkit.eks.cluster import Taint
from loraxkit.eks.scheduling import selects_node, tolerates, unknown_keys_used, untolerated_taints

ZONE = "topology.kubernetes.io/zone"
NODE = {"gpus": "4", "k8s.amazonaws.com/accelerator": "nvidia-l40s"}


def _terms(*terms: list[dict[str, Any]]) -> dict[str, Any]:
    node_terms = [{"matchExpressions": expressions} for expressions in terms]
    required = {"nodeSelectorTerms": node_terms}
    return {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": required}}}


def _expr(key: str, operator: str, *values: str) -> list[dict[str, Any]]:
    return [{"key": key, "operator": operator, **({"values": list(values)} if values else {})}]


# (operator, values, label value or None for a node without the label, selected?)
EXPRESSIONS = [
    ("Gt", ["3"], "4", True),
    ("Gt", ["4"], "4", False),  # strictly greater: equal is not
    ("Lt", ["5"], "4", True),
    ("Lt", ["4"], "4", False),
    ("Gt", ["3"], None, False),
    ("Lt", ["5"], None, False),
    ("Gt", ["3"], "four", False),  # a label that is not an integer never compares
    ("Gt", ["x"], "4", False),
    ("Gt", ["3", "2"], "4", False),  # Gt and Lt take exactly one value
    ("In", ["4"], "4", True),
    ("In", ["4"], None, False),
    ("NotIn", ["4"], "4", False),
    ("NotIn", ["4"], "5", True),
    ("NotIn", ["4"], None, True),  # a node without the label is not in the set
    ("Exists", [], "4", True),
    ("Exists", [], None, False),
    ("DoesNotExist", [], None, True),
    ("DoesNotExist", [], "4", False),
    ("Bogus", [], "4", False),
    ("Bogus", ["5"], "4", False),  # an unknown operator with one value is not compared like Gt or Lt
    ("Bogus", ["3"], "4", False),
]


@pytest.mark.parametrize(("operator", "values", "label", "selected"), EXPRESSIONS)
def test_each_operator_on_both_sides_of_its_rule(
    operator: str, values: list[str], label: str | None, selected: bool
) -> None:
    labels = {} if label is None else {"gpus": label}
    assert selects_node(_terms(_expr("gpus", operator, *values)), labels) is selected


def test_a_term_with_match_fields_never_matches_but_another_term_still_can() -> None:
    by_name = {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["node-1"]}]}
    pod = _terms()
    pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"] = [
        by_name
    ]
    assert not selects_node(pod, NODE)
    pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"
    ].append({"matchExpressions": _expr("gpus", "Exists")})
    assert selects_node(pod, NODE)


def test_an_empty_term_list_selects_every_node() -> None:
    assert selects_node(_terms(), NODE)
    assert selects_node({"affinity": {"nodeAffinity": {}}}, NODE)


def test_aws_only_labels_are_assumed_to_match_unless_the_node_has_them() -> None:
    on_zone = {"nodeSelector": {ZONE: "us-east-1a"}}
    assert selects_node(on_zone, NODE, unknown=[ZONE])
    assert not selects_node(on_zone, NODE)  # not declared unknown: the node lacks it
    assert not selects_node(on_zone, {**NODE, ZONE: "us-east-1b"}, unknown=[ZONE])  # known: compared
    term = _terms(_expr(ZONE, "In", "us-east-1a"))
    assert selects_node(term, NODE, unknown=[ZONE])
    assert not selects_node(term, NODE)
    # another expression in the same term is still checked
    both = _terms(_expr(ZONE, "In", "us-east-1a") + _expr("gpus", "Gt", "4"))
    assert not selects_node(both, NODE, unknown=[ZONE])


def test_unknown_keys_used_are_those_the_selection_names_and_the_node_lacks() -> None:
    pod = {"nodeSelector": {ZONE: "us-east-1a"}, **_terms(_expr("kubernetes.io/hostname", "Exists"))}
    unknown = [ZONE, "kubernetes.io/hostname", "unused"]
    assert unknown_keys_used(pod, NODE, unknown) == {ZONE, "kubernetes.io/hostname"}
    assert unknown_keys_used(pod, {**NODE, ZONE: "us-east-1a"}, unknown) == {"kubernetes.io/hostname"}
    assert unknown_keys_used({}, NODE, unknown) == set()


GPU = Taint("nvidia.com/gpu", "true", "NoSchedule")
EVICT = Taint("nvidia.com/gpu", "true", "NoExecute")
BARE = Taint("dedicated", "", "NoSchedule")

# (toleration, taint, tolerated?)
TOLERATIONS = [
    ({"key": "nvidia.com/gpu", "operator": "Exists"}, EVICT, True),  # no effect: every effect
    ({"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}, EVICT, False),
    ({"key": "nvidia.com/gpu", "value": "true"}, GPU, True),  # operator defaults to Equal
    (
        {"key": "nvidia.com/gpu", "operator": "Equal", "value": "True"},
        GPU,
        False,
    ),  # values are case-sensitive
    ({"key": "nvidia.com/gpu", "operator": "Equal"}, GPU, False),  # an empty value is not "true"
    ({"key": "dedicated", "operator": "Equal"}, BARE, True),  # ... but matches an empty one
    ({"operator": "Exists"}, EVICT, True),  # empty key with Exists: every taint
    ({"operator": "Equal", "value": "true"}, GPU, False),  # empty key needs Exists
    ({"operator": "Exists", "effect": "NoExecute"}, GPU, False),
]


@pytest.mark.parametrize(("toleration", "taint", "tolerated"), TOLERATIONS)
def test_each_toleration_field_on_both_sides(
    toleration: dict[str, Any], taint: Taint, tolerated: bool
) -> None:
    assert tolerates(toleration, taint) is tolerated
    assert untolerated_taints({"tolerations": [toleration]}, [taint]) == ([] if tolerated else [taint])


def test_no_execute_blocks_like_no_schedule_and_each_taint_needs_its_own_toleration() -> None:
    spec = {"tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]}
    assert untolerated_taints(spec, [GPU, EVICT, BARE]) == [EVICT, BARE]
    assert untolerated_taints({}, [Taint("spot", "true", "PreferNoSchedule"), EVICT]) == [EVICT]
