"""`loraxkit eks check` against the mutation table (tests/eks/eks_mutations.py, stated in docs/eks.md).

Every eksctl rejection and every pod that would stay Pending is reported as an error; nothing that works is.
The eksctl rows are checked twice: with the rules ported to Python, and, where go/eksctl-validate is built,
against eksctl itself (the real verdict decides; the port must agree with it).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from eks_helpers import REPO, cluster_of, shipped_doc
from eks_mutations import MUTATIONS, Mutation

from loraxkit.chart.render import render, render_hooks
from loraxkit.eks.crosscheck import cross_check
from loraxkit.eks.eksctl_rules import eksctl_problems, zone_problems
from loraxkit.eks.eksctl_validate import run_eksctl_validate
from loraxkit.eks.lint import cluster_problems
from loraxkit.eks.problems import Problem, errors

DOCS = (REPO / "docs" / "eks.md").read_text()
IDS = [m.id for m in MUTATIONS]


def _mutated(mutation: Mutation) -> tuple[dict[str, Any], dict[str, Any] | None]:
    doc = shipped_doc()
    values = mutation.apply(doc)
    return doc, copy.deepcopy(values) if values else None


def _scheduler_errors(doc: dict[str, Any], mutation: Mutation, values: dict[str, Any] | None) -> list[str]:
    manifests = render(values, [mutation.profile], release="lorax", namespace="lorax")
    manifests += render_hooks(values, [mutation.profile], release="lorax", namespace="lorax")
    return [str(f) for f in cross_check(manifests, cluster_of(doc), "lorax") if f.severity == "error"]


def _check_errors(doc: dict[str, Any], mutation: Mutation, values: dict[str, Any] | None) -> list[Problem]:
    """Errors of `loraxkit eks check` with the ported eksctl rules (no Go tool)."""
    problems = eksctl_problems(doc) + zone_problems(doc) + cluster_problems(cluster_of(doc))
    problems += [Problem("error", "scheduler", e) for e in _scheduler_errors(doc, mutation, values)]
    return errors(problems)


@pytest.mark.parametrize("mutation", MUTATIONS, ids=IDS)
def test_check_flags_exactly_what_fails(mutation: Mutation) -> None:
    doc, values = _mutated(mutation)
    found = _check_errors(doc, mutation, values)
    if mutation.expected == "works":
        assert found == [], f"{mutation.id} works but is flagged: {found}"
    elif mutation.expected == "eksctl rejects":
        assert any(p.source.startswith("eksctl") for p in found), f"{mutation.id} missed: {found}"
    else:
        assert any(p.source == "scheduler" for p in found), f"{mutation.id} missed: {found}"


@pytest.mark.parametrize("profile", sorted((REPO / "values").glob("*.yaml")), ids=lambda p: p.stem)
def test_shipped_files_have_no_errors(profile: Path) -> None:
    unchanged = Mutation("S", "shipped", "works", "", lambda doc: None, profile)
    assert _check_errors(shipped_doc(), unchanged, None) == []


@pytest.mark.parametrize("mutation", MUTATIONS, ids=IDS)
def test_eksctl_itself_agrees(mutation: Mutation, eksctl_binary: Path, tmp_path: Path) -> None:
    doc, _ = _mutated(mutation)
    cluster_file = tmp_path / "cluster.yaml"
    cluster_file.write_text(yaml.safe_dump(doc, sort_keys=False))
    verdict = run_eksctl_validate(cluster_file, eksctl_binary)
    assert verdict.accepted == (mutation.expected != "eksctl rejects"), verdict.error
    ported = errors(eksctl_problems(doc))
    assert bool(ported) == (not verdict.accepted), f"port disagrees with eksctl ({verdict.error!r}): {ported}"


def test_shipped_cluster_is_accepted_by_eksctl(eksctl_binary: Path) -> None:
    verdict = run_eksctl_validate(REPO / "eks" / "cluster.yaml", eksctl_binary)
    assert verdict.accepted, verdict.error


@pytest.mark.parametrize("mutation", MUTATIONS, ids=IDS)
def test_docs_state_the_table(mutation: Mutation) -> None:
    row = f"| {mutation.id} | {mutation.change} | {mutation.expected} |"
    assert row in DOCS, f"docs/eks.md lacks the mutation row starting:\n{row}"
