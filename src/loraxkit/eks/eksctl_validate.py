"""Run eksctl's own loading, defaulting and validation (the Go tool go/eksctl-validate) on a ClusterConfig.

The tool is built by `loraxkit tools build eksctl-validate` (loraxkit.gotools); LORAXKIT_EKSCTL_VALIDATE may
name a binary built by hand. Without it, `loraxkit eks check` falls back to loraxkit.eks.eksctl_rules.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TOOL = "eksctl-validate"
BINARY_ENV = "LORAXKIT_EKSCTL_VALIDATE"
BUILD_HINT = f"loraxkit tools build {TOOL}"


class EksctlValidateError(RuntimeError):
    """The tool ran but did not answer as documented."""


@dataclass(frozen=True)
class EksctlVerdict:
    accepted: bool
    stage: str  # where eksctl stopped: load | initialize | create ("" when accepted)
    error: str  # eksctl's own message
    warnings: tuple[str, ...]
    skipped: tuple[str, ...]  # what the tool cannot check without AWS
    config: dict[str, Any] = field(default_factory=dict)  # the defaulted ClusterConfig (with_config=True)


def validator_binary() -> Path | None:
    """The built tool, or None (no Go, not built yet, or gotools not installed)."""
    configured = os.environ.get(BINARY_ENV, "").strip()
    if configured:
        path = Path(configured)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise EksctlValidateError(
                f"{BINARY_ENV}={configured} is not an executable file; unset it or fix the path"
            )
        return path
    try:
        from loraxkit import gotools  # written by the Go tools work; absent in older trees
    except ImportError:
        return None
    return gotools.bin_path(TOOL, TOOL)


def run_eksctl_validate(cluster_file: Path, binary: Path, with_config: bool = False) -> EksctlVerdict:
    """eksctl's verdict on the file (exit 0 accepted, 1 rejected; anything else is an error)."""
    args = [str(binary), *(["--config"] if with_config else []), str(cluster_file)]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)
    if proc.returncode not in (0, 1):
        raise EksctlValidateError(
            f"{binary} exited {proc.returncode}: {proc.stderr.strip() or proc.stdout.strip()}"
        )
    try:
        out = json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        raise EksctlValidateError(f"{binary} printed no JSON ({exc}): {proc.stdout[:500]!r}") from exc
    if bool(out.get("accepted")) != (proc.returncode == 0):
        raise EksctlValidateError(
            f"{binary}: exit code {proc.returncode} disagrees with accepted={out.get('accepted')}"
        )
    return EksctlVerdict(
        accepted=bool(out["accepted"]),
        stage=str(out.get("stage", "")),
        error=str(out.get("error", "")),
        warnings=tuple(str(w) for w in out.get("warnings") or []),
        skipped=tuple(str(s) for s in out.get("skipped") or []),
        config=out.get("config") or {},
    )
