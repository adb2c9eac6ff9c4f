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


def _term_matches(term: dict[str, Any], labels: dict[str, str]) -> bool:
    # matchFields only supports metadata.name, which no node group can promise: treat it as no match.
    if term.get("matchFields"):
        return False
    return all(_expression_matches(e, labels) for e in term.get("matchExpressions") or [])


def required_node_terms(pod_spec: dict[str, Any]) -> list[dict[str, Any]]:
    affinity = (pod_spec.get("affinity") or {}).get("nodeAffinity") or {}
    required = affinity.get("requiredDuringSchedulingIgnoredDuringExecution") or {}
    return list(required.get("nodeSelectorTerms") or [])


def selects_node(pod_spec: dict[str, Any], labels: dict[str, str]) -> bool:
    """True when the pod's nodeSelector and required node affinity both accept a node with these labels."""
    selector = {str(k): str(v) for k, v in (pod_spec.get("nodeSelector") or {}).items()}
    if any(labels.get(k) != v for k, v in selector.items()):
        return False
    terms = required_node_terms(pod_spec)
    return not terms or any(_term_matches(t, labels) for t in terms)  # terms are ORed


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
