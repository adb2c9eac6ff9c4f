"""The acceptance command's values file installs: Helm renders it through the chart with the planned flags."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
from plan_helpers import ACCEPTANCE_PROFILE, PROFILES

from loraxkit.chart.launcher import parse_args, start_checks
from loraxkit.chart.render import render
from loraxkit.cli import build_parser, main
from loraxkit.plan.api import plan
from loraxkit.plan.cli import result_for_profile

COMMAND = "plan --model mistralai/Mistral-7B-Instruct-v0.1 --instance g6e.2xlarge --adapters 24x16"


def _args(docs: list[dict]) -> list[str]:
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    server = next(c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "lorax")
    return list(server["args"])


def _flag(args: list[str], flag: str) -> str | None:
    return args[args.index(flag) + 1] if flag in args else None


def test_acceptance_command_prints_the_budget_and_writes_values_that_render(tmp_path: Path, capsys) -> None:
    out = tmp_path / "values.yaml"
    assert main([*shlex.split(COMMAND), "--values-out", str(out)]) == 0
    printed = capsys.readouterr().out
    for part in ("weights", "warm-up", "adapters", "margin", "KV cache", "max-batch-total-tokens"):
        assert part in printed
    args = _args(render(value_files=[out]))
    result = result_for_profile(ACCEPTANCE_PROFILE)
    inp = result.inputs
    assert _flag(args, "--model-id") == "mistralai/Mistral-7B-Instruct-v0.1"
    assert _flag(args, "--max-input-length") == str(inp.limits.max_input)
    assert _flag(args, "--max-total-tokens") == str(inp.limits.max_total)
    assert _flag(args, "--max-batch-prefill-tokens") == str(inp.limits.max_prefill)
    assert _flag(args, "--adapter-memory-fraction") == str(result.plan.adapter_fraction)
    assert _flag(args, "--max-active-adapters") == "24"
    assert "--compile" in args
    assert "--max-batch-total-tokens" not in args  # left to LoRAX's warm-up
    # The launcher contract: clap would accept the list and the launcher's start checks pass.
    parsed = parse_args(args)
    assert (
        start_checks(parsed, max_position_embeddings=result.model.max_position_embeddings, visible_devices=1)
        == []
    )
    # The profile renders the same planned flags.
    profile_args = _args(render(value_files=[ACCEPTANCE_PROFILE]))
    planned = ("--max-input-length", "--max-total-tokens", "--max-batch-prefill-tokens")
    planned += ("--adapter-memory-fraction", "--max-active-adapters", "--max-concurrent-requests")
    for flag in planned:
        assert _flag(args, flag) == _flag(profile_args, flag), flag


def test_sim_command_is_one_the_simulator_accepts() -> None:
    result = plan(result_for_profile(ACCEPTANCE_PROFILE).request)
    argv = shlex.split(result.sim_command())[1:]
    parsed = build_parser().parse_args(argv)
    assert parsed.profile == "l40s-8b-bf16"
    assert parsed.max_batch_total_tokens == result.plan.max_batch_total_tokens
    assert parsed.max_active_adapters == 24


def test_refused_plan_exits_1_and_bad_input_exits_2(capsys) -> None:
    assert main(["plan", "--model", "meta-llama/Llama-3.1-70B-Instruct", "--instance", "g6e.2xlarge"]) == 1
    assert "Fix:" in capsys.readouterr().err
    assert main(["plan", "--model", "nobody/none", "--instance", "g6e.2xlarge"]) == 2
    assert main(["plan", "--model", "mistralai/Mistral-7B-v0.1", "--instance", "m6i.large"]) == 2


def test_check_exits_3_on_a_drifted_profile(tmp_path: Path) -> None:
    drifted = tmp_path / ACCEPTANCE_PROFILE.name
    drifted.write_text(ACCEPTANCE_PROFILE.read_text().replace("maxActive: 24", "maxActive: 25"))
    assert main(["plan", "--check", str(ACCEPTANCE_PROFILE)]) == 0
    assert main(["plan", "--check", str(drifted)]) == 3


def test_a_local_config_and_a_bare_gpu_plan_too(tmp_path: Path) -> None:
    """--model path/config.json takes the model id from the config; --gpu without an instance has no price."""
    import json

    config = {
        "_name_or_path": "acme/tiny-llama", "hidden_size": 2048, "num_hidden_layers": 16,
        "num_attention_heads": 16, "num_key_value_heads": 4, "intermediate_size": 5632, "vocab_size": 32000,
        "max_position_embeddings": 4096, "torch_dtype": "bfloat16",
    }  # fmt: skip
    (tmp_path / "config.json").write_text(json.dumps(config))
    out = tmp_path / "values.yaml"
    assert main(["plan", "--model", str(tmp_path), "--gpu", "a100-80gb", "--values-out", str(out)]) == 0
    docs = render(value_files=[out])
    assert _flag(_args(docs), "--model-id") == "acme/tiny-llama"


def test_json_output_carries_the_same_figures(capsys) -> None:
    import json

    assert main([*shlex.split(COMMAND), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    result = plan(result_for_profile(ACCEPTANCE_PROFILE).request)
    assert data["max_batch_total_tokens"] == result.plan.max_batch_total_tokens
    assert data["values"]["adapters"]["maxActive"] == 24
    assert data["decode"]["profile"] == "l40s-8b-bf16"


@pytest.mark.parametrize("profile", PROFILES, ids=[p.stem for p in PROFILES])
def test_every_planned_profile_passes_the_launcher_contract(profile: Path) -> None:
    result = result_for_profile(profile)
    parsed = parse_args(_args(render(value_files=[profile])))
    checks = start_checks(
        parsed,
        max_position_embeddings=result.model.max_position_embeddings,
        visible_devices=result.inputs.shards,
    )
    assert checks == [], checks
