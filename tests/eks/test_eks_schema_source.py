"""Where the eksctl schema comes from, and the errors when it cannot be found."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loraxkit.eks.schema import SCHEMA_ENV, SchemaUnavailable, load_eksctl_schema


def test_setting_points_at_the_schema(tmp_path: Path) -> None:
    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps({"$ref": "#/definitions/ClusterConfig", "definitions": {}}))
    assert load_eksctl_schema({SCHEMA_ENV: str(schema), "PATH": ""})["$ref"] == "#/definitions/ClusterConfig"


def test_missing_schema_file_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=SCHEMA_ENV):
        load_eksctl_schema({SCHEMA_ENV: str(tmp_path / "nope.json"), "PATH": ""})


def test_no_setting_and_no_eksctl_is_unavailable() -> None:
    with pytest.raises(SchemaUnavailable, match=SCHEMA_ENV):
        load_eksctl_schema({"PATH": ""})


def test_eksctl_on_path_is_asked_for_its_schema(tmp_path: Path) -> None:
    # eksctl cannot run here; a stand-in that answers only `utils schema` proves the command we issue.
    fake = tmp_path / "eksctl"
    fake.write_text('#!/bin/sh\n[ "$1 $2" = "utils schema" ] && echo \'{"title": "from-eksctl"}\'\n')
    fake.chmod(0o755)
    assert load_eksctl_schema({"PATH": str(tmp_path)}) == {"title": "from-eksctl"}
