"""Each deployment profile keeps the contract with the cluster config and explains its numbers."""

from __future__ import annotations

from pathlib import Path

import pytest
from chart_helpers import PROFILES, args_of, find, flag_values, render

from loraxkit.chart.profiles import ACCELERATORS, needs

GPU_TAINT = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


@pytest.mark.parametrize("profile", PROFILES, ids=[p.stem for p in PROFILES])
def test_profile_selects_its_gpu_and_states_its_cache(profile: Path) -> None:
    family = profile.stem.split("-")[0]
    need = needs(profile)
    assert need.accelerator == ACCELERATORS[family], "nodeSelector must name the family's GPU label value"
    assert GPU_TAINT in need.tolerations
    assert need.cache_size, "the model cache size must be explicit"
    assert flag_values(args_of(files=[profile]), "--num-shard") == [str(need.gpus)]
    if need.instance_type:
        assert need.instance_type.startswith(family + ".")


@pytest.mark.parametrize("profile", PROFILES, ids=[p.stem for p in PROFILES])
def test_profile_says_it_is_computed_and_why(profile: Path) -> None:
    text = profile.read_text()
    assert "COMPUTED, NOT YET RUN" in text
    for topic in ("KV", "context", "GiB"):
        assert topic in text, f"{profile.name} does not explain its {topic} numbers"


@pytest.mark.parametrize("profile", PROFILES, ids=[p.stem for p in PROFILES])
def test_profiles_reading_s3_use_the_pod_identity_service_account(profile: Path) -> None:
    text = profile.read_text()
    if "s3" in text.lower():
        assert needs(profile).service_account == "lorax"


def test_quantized_profile_avoids_the_broken_quantizations() -> None:
    """lorax#722: AWQ and bitsandbytes are reported broken in 0.12; no profile may use them."""
    for profile in PROFILES:
        quantize = flag_values(args_of(files=[profile]), "--quantize")
        assert not any(q == "awq" or q.startswith("bitsandbytes") for q in quantize), profile.name
    assert any(flag_values(args_of(files=[p]), "--quantize") for p in PROFILES)


def test_the_70b_profiles_are_sharded_over_eight_gpus() -> None:
    big = [p for p in PROFILES if "70b" in p.stem]
    assert big
    for profile in big:
        assert needs(profile).gpus == 8
        assert flag_values(args_of(files=[profile]), "--sharded") == ["true"]


@pytest.mark.parametrize("profile", PROFILES, ids=[p.stem for p in PROFILES])
def test_profile_grace_covers_the_prestop_pause_and_the_launchers_drain(profile: Path) -> None:
    """The 0.12.1 launcher gives the router up to 90 s after SIGTERM; a shorter grace kills it mid-drain."""
    docs = render(value_files=[profile])
    spec = find(docs, "Deployment")["spec"]["template"]["spec"]
    pause = spec["containers"][0]["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert spec["terminationGracePeriodSeconds"] >= pause + 90
