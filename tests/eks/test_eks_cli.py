"""`loraxkit eks check` and `loraxkit eks costs`, run through the real command entry point."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from eks_helpers import CLUSTER_YAML, node_group, shipped_doc

from loraxkit.cli import main

G5_PROFILE = CLUSTER_YAML.parents[1] / "values" / "g5-a10g-mistral-7b-instruct-gptq.yaml"
G6E_PROFILE = CLUSTER_YAML.parents[1] / "values" / "g6e-l40s-mistral-7b-instruct-bf16.yaml"


def test_check_passes_on_the_shipped_files(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eks", "check"]) == 0
    out = capsys.readouterr().out
    assert "cluster: 0 error(s)" in out and "profile g6e-l40s-mistral-7b-instruct-bf16.yaml: ok" in out
    assert "errors:" not in out
    # the zone advice is a warning: printed apart, and the command still passes
    assert "warnings:\n" in out and "describe-instance-type-offerings" in out.split("warnings:\n")[1]


def test_profile_verdict_line_is_ok_even_with_warnings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    profile = tmp_path / "big-shm.yaml"
    values = yaml.safe_load(G6E_PROFILE.read_text())
    values["shm"] = {"sizeLimit": "48Gi"}  # request + shm above what the node holds: a warning, not an error
    values["resources"]["limits"]["memory"] = "60Gi"  # the chart refuses a /dev/shm above the memory limit
    profile.write_text(yaml.safe_dump(values))
    assert main(["eks", "check", "--values", str(profile)]) == 0
    lines = capsys.readouterr().out.splitlines()
    verdict = next(line for line in lines if line.startswith("profile big-shm.yaml:"))
    assert verdict == "profile big-shm.yaml: ok"
    assert any("/dev/shm" in line for line in lines)


def test_eksctl_rejection_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = shipped_doc()
    node_group(doc, "gpu-g6e")["desiredCapacity"] = 5  # maxSize 4
    broken = tmp_path / "cluster.yaml"
    broken.write_text(yaml.safe_dump(doc))
    assert main(["eks", "check", "--cluster", str(broken), "--values", str(G5_PROFILE)]) == 1
    out = capsys.readouterr().out
    errors_part = out.split("errors:\n")[1].split("warnings:\n")[0]
    # eksctl's own words when the Go tool is built, the ported rule's otherwise
    assert "[eksctl" in errors_part and ("maxSize 4" in errors_part or "--nodes-max=4" in errors_part)


def test_check_fails_and_names_the_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = shipped_doc()
    node_group(doc, "gpu-g5")["taints"][0]["key"] = "gpu"
    broken = tmp_path / "cluster.yaml"
    broken.write_text(yaml.safe_dump(doc))
    assert main(["eks", "check", "--cluster", str(broken), "--values", str(G5_PROFILE)]) == 1
    out = capsys.readouterr().out
    errors_part, warnings_part = out.split("errors:\n")[1].split("warnings:\n")
    assert "add taint {key: nvidia.com/gpu" in warnings_part  # a house convention
    assert "[tolerations] Deployment/lorax" in errors_part  # the pod would stay Pending


def test_check_reports_an_unknown_instance_type(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = shipped_doc()
    node_group(doc, "gpu-g5")["instanceType"] = "g7.mega"
    broken = tmp_path / "cluster.yaml"
    broken.write_text(yaml.safe_dump(doc))
    assert main(["eks", "check", "--cluster", str(broken), "--values", str(G5_PROFILE)]) == 1
    assert "'g7.mega' is not in loraxkit.eks.instance_types" in capsys.readouterr().out


def test_check_reports_a_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eks", "check", "--cluster", str(tmp_path / "nope.yaml")]) == 1
    assert "error:" in capsys.readouterr().out


def test_costs_prints_every_node_group(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eks", "costs"]) == 0
    out = capsys.readouterr().out
    for name in ("system", "gpu-g6e", "gpu-g5", "gpu-p4d", "gpu-p5"):
        assert f"| {name} |" in out
    assert "| g6e.2xlarge | 1 x NVIDIA L40S |" in out and "check the aws pricing page" in out.lower()


def test_check_reports_invalid_yaml(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = tmp_path / "cluster.yaml"
    broken.write_text("managedNodeGroups: [\n")
    assert main(["eks", "check", "--cluster", str(broken)]) == 1
    assert f"error: {broken} is not valid YAML" in capsys.readouterr().out


def test_check_reports_a_profile_the_chart_rejects(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    profile = tmp_path / "bad-profile.yaml"
    profile.write_text("gpu:\n  count: many\n")
    assert main(["eks", "check", "--values", str(profile), "--values", str(tmp_path / "missing.yaml")]) == 1
    out = capsys.readouterr().out
    assert "bad-profile.yaml: the chart cannot render it" in out and "/gpu/count" in out
    assert "missing.yaml: the chart cannot render it" in out
