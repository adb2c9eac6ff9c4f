"""Shared by the cluster tests: profiles, the node group each is meant for, value overrides."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from loraxkit.chart.render import merge_values
from loraxkit.testcluster.cluster import LoopbackCluster, Placement

REPO = Path(__file__).resolve().parents[2]
PROFILES = sorted((REPO / "values").glob("*.yaml"))
CHART = "charts/lorax"


def intended_group(profile: Path) -> str:
    """values/g6e-l40s-... is meant for node group gpu-g6e (the file name's instance family)."""
    return "gpu-" + profile.name.split("-", 1)[0]


def with_overrides(profile: Path, overrides: dict[str, Any], folder: Path) -> Path:
    """One values file = the profile with `overrides` merged in (what `-f profile -f override` gives)."""
    merged = merge_values(yaml.safe_load(profile.read_text()), overrides)
    path = folder / profile.name
    path.write_text(yaml.safe_dump(merged, sort_keys=False))
    return path


def install(
    cluster: LoopbackCluster, values: Path, *extra: str, release: str = "lorax", wait: bool = True
) -> None:
    """The README's: helm install lorax charts/lorax -n lorax --create-namespace -f values/<p>.yaml."""
    args = ["install", release, CHART, "-n", "lorax", "--create-namespace", "-f", str(values), *extra]
    if wait:
        args += ["--wait", "--timeout", "3m"]
    cluster.helm(*args, timeout=240)


def eks_check_verdict(values: Path) -> tuple[bool, str]:
    """`loraxkit eks check --values FILE`: (the profile fits, warnings aside; its output)."""
    run = subprocess.run(
        [sys.executable, "-m", "loraxkit.cli", "eks", "check", "--values", str(values)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
    )
    line = next((ln for ln in run.stdout.splitlines() if ln.startswith(f"profile {values.name}:")), None)
    assert line is not None, (
        f"loraxkit eks check printed no verdict for {values.name}:\n{run.stdout}{run.stderr}"
    )
    verdict = line.split(":", 1)[1].strip()  # "ok", "ok, 2 warning(s)" or "3 problem(s)"
    return verdict.startswith("ok"), run.stdout


def describe(placements: list[Placement]) -> str:
    return "\n".join(f"{p.pod}: {p.node or 'Pending'} ({p.group or p.reason})" for p in placements)
