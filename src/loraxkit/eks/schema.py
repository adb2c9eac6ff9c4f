"""Validate a ClusterConfig against eksctl's own JSON schema (never a copy kept in this project).

The schema comes from the LORAXKIT_EKSCTL_SCHEMA setting (a path to eksctl's schema.json), or, when that is
unset, from `eksctl utils schema` if eksctl is on the PATH.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema

SCHEMA_ENV = "LORAXKIT_EKSCTL_SCHEMA"


class SchemaUnavailable(LookupError):
    """Neither the setting nor an eksctl binary can provide the schema."""


def load_eksctl_schema(env: dict[str, str] | None = None) -> dict[str, Any]:
    """eksctl's ClusterConfig schema, from the setting or from `eksctl utils schema`."""
    env = dict(os.environ) if env is None else env
    configured = env.get(SCHEMA_ENV, "").strip()
    if configured:
        path = Path(configured)
        if not path.is_file():
            raise FileNotFoundError(
                f"{SCHEMA_ENV}={configured} is not a file; point it at eksctl's schema.json "
                "(`eksctl utils schema > eksctl-schema.json`)"
            )
        return json.loads(path.read_text())
    eksctl = shutil.which("eksctl", path=env.get("PATH"))
    if eksctl:
        out = subprocess.run(
            [eksctl, "utils", "schema"], capture_output=True, text=True, check=True, timeout=60
        )
        return json.loads(out.stdout)
    raise SchemaUnavailable(
        f"eksctl schema unavailable: set {SCHEMA_ENV} to eksctl's schema.json or put eksctl on the PATH"
    )


def schema_errors(doc: dict[str, Any], schema: dict[str, Any]) -> list[str]:
    """Every schema violation, each as '<json path>: <message>' (empty when valid)."""
    validator_cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft7Validator)
    validator = validator_cls(schema)
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))
    return [f"{e.json_path}: {e.message}" for e in errors]
