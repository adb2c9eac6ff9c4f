"""The scheduler's rules for node selection and taints, applied to a pod spec and a node's labels.

Implements nodeSelector, required node affinity (In, NotIn, Exists, DoesNotExist, Gt, Lt) and toleration
matching as the Kubernetes scheduler does, so a cross-check can tell where a rendered pod may land.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from loraxkit.eks.cluster import Taint

BLOCKING_EFFECTS = ("NoSchedule", "NoExecute")


def _expression_matches(expr: dict[str, Any], labels: dict[str, str]) -> bool:
    key, op, values = (
        expr.get("key", ""),
        expr.get("operator", ""),
        [str(v) for v in expr.get("values") or []],
    )
    present = key in labels
    if op == "In":
        return present and labels[key] in values
    if op == "NotIn":
        return not present or labels[key] not in values
    if op == "Exists":
        return present
    if op == "DoesNotExist":
        return not present
    if op in ("Gt", "Lt") and present and len(values) == 1:
        try:
            have, want = int(labels[key]), int(values[0])
        except ValueError:
            return False
        return have > want if op == "Gt" else have < want
    return False


def _term_matches(term: dict[str, Any], labels: dict[str, str], unknown: Iterable[str] = ()) -> bool:
    # matchFields only supports metadata.name, which no node group can promise: treat it as no match.
    if term.get("matchFields"):
        return False
    unknown = set(unknown) - set(labels)
    return all(
        e.get("key") in unknown or _expression_matches(e, labels) for e in term.get("matchExpressions") or []
    )


def required_node_terms(pod_spec: dict[str, Any]) -> list[dict[str, Any]]:
    affinity = (pod_spec.get("affinity") or {}).get("nodeAffinity") or {}
    required = affinity.get("requiredDuringSchedulingIgnoredDuringExecution") or {}
    return list(required.get("nodeSelectorTerms") or [])


def selects_node(pod_spec: dict[str, Any], labels: dict[str, str], unknown: Iterable[str] = ()) -> bool:
    """True when the pod's nodeSelector and required node affinity both accept a node with these labels.

    `unknown` names labels the node carries with a value no model knows (its zone, its host name): a
    requirement on one of them is assumed to hold, since only AWS could say otherwise.
    """
    unknown = set(unknown) - set(labels)
    selector = {str(k): str(v) for k, v in (pod_spec.get("nodeSelector") or {}).items()}
    if any(k not in unknown and labels.get(k) != v for k, v in selector.items()):
        return False
    terms = required_node_terms(pod_spec)
    return not terms or any(_term_matches(t, labels, unknown) for t in terms)  # terms are ORed


def unknown_keys_used(pod_spec: dict[str, Any], labels: dict[str, str], unknown: Iterable[str]) -> set[str]:
    """The label keys with AWS-only values that the pod's selection names."""
    keys = set(pod_spec.get("nodeSelector") or {})
    for term in required_node_terms(pod_spec):
        keys |= {str(e.get("key")) for e in term.get("matchExpressions") or []}
    return keys & (set(unknown) - set(labels))


def tolerates(toleration: dict[str, Any], taint: Taint) -> bool:
    effect = toleration.get("effect") or ""
    if effect and effect != taint.effect:
        return False
    key = toleration.get("key") or ""
    operator = toleration.get("operator") or "Equal"
    if not key:
        return operator == "Exists"  # an empty key with Exists tolerates every taint
    if key != taint.key:
        return False
    return operator == "Exists" or str(toleration.get("value") or "") == taint.value


def untolerated_taints(pod_spec: dict[str, Any], taints: Iterable[Taint]) -> list[Taint]:
    """Taints that keep this pod off the node (PreferNoSchedule only discourages, so it is not counted)."""
    tolerations = pod_spec.get("tolerations") or []
    return [
        t
        for t in taints
        if t.effect in BLOCKING_EFFECTS and not any(tolerates(tol, t) for tol in tolerations)
    ]
