"""Every argument list the chart renders is one the pinned launcher accepts and starts with.

The container's args and env (plus the image's env and the HOSTNAME Kubernetes sets) go through the
contract's clap-faithful parser, then through the launcher's start-up checks, for the defaults, each profile
and an every-flag set (every value that renders a flag, and every flag server.extraArgs may carry).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml
from chart_helpers import CHART_DIR, PROFILES, container, find, render

from loraxkit.chart.launcher import (
    ArgSpec,
    ClapError,
    load_contract,
    parse_args,
    router_switches,
    shard_env,
    shard_reads,
    start_checks,
)
from loraxkit.chart.render import load_values

CONTRACT = load_contract()
SAMPLE = {"string": "x", "bool": "true", "usize": "1", "u16": "1", "u32": "1", "u64": "1", "f32": "0.5"}


def sample_args(spec: ArgSpec) -> list[str]:
    """A valid use of one argument (repeated ones twice)."""
    if spec.kind == "switch":
        return [spec.flag]
    value = spec.values[0] if spec.values else SAMPLE[spec.type]
    if spec.name == "backend":
        value = "flashinfer"
    return [spec.flag, value] * (2 if spec.kind == "repeated" else 1)


ALLOWED_EXTRA_ARGS = [
    arg for spec in CONTRACT.args.values() if spec.allowed_in_extra_args for arg in sample_args(spec)
]

EVERY_FLAG: dict[str, Any] = {
    "model": {"revision": "abc123", "source": "hub", "dtype": "bfloat16", "trustRemoteCode": True,
              "maxPositionEmbeddings": 32768},
    "gpu": {"count": 1},
    "server": {
        "jsonLogs": True, "sharded": False, "maxInputLength": 3000, "maxTotalTokens": 4000,
        "maxBatchPrefillTokens": 3050, "maxBatchTotalTokens": 64000, "maxConcurrentRequests": 64,
        "cudaGraphs": True, "eagerPrefill": True, "prefixCaching": True, "chunkedPrefill": True,
        "cudaMemoryFraction": 0.9, "extraArgs": ALLOWED_EXTRA_ARGS,
    },
    "adapters": {"source": "hub", "preloaded": ["org/a", "org/b"], "preloadedSource": "hub", "maxActive": 8,
                 "cycleTimeSeconds": 3, "memoryFraction": 0.2},
    "modelCache": {"type": "persistentVolumeClaim", "warmup": {"enabled": True},
                   "persistentVolumeClaim": {"accessModes": ["ReadWriteMany"]}},
}  # fmt: skip
QUANTIZED: dict[str, Any] = {"model": {"quantize": "gptq"}, "adapters": {"mergeWeights": True}}
SHARDED: dict[str, Any] = {"gpu": {"count": 2}, "server": {"sharded": True}}

CASES = [
    pytest.param([], {}, id="defaults"),
    pytest.param([], EVERY_FLAG, id="every-flag"),
    pytest.param([], QUANTIZED, id="quantized-merged"),
    pytest.param([], SHARDED, id="sharded"),
] + [pytest.param([p], {}, id=p.stem) for p in PROFILES]


def container_env(spec: dict[str, Any]) -> dict[str, str]:
    """The process env the launcher sees: image env, then the container's plain values, then HOSTNAME."""
    env = dict(CONTRACT.data["image"]["env"])
    env.update({e["name"]: e["value"] for e in spec.get("env", []) if "value" in e})
    env["HOSTNAME"] = "lorax-7d9c6b5f4-x2x9q"  # Kubernetes sets it to the pod name
    return env


@pytest.mark.parametrize(("files", "values"), CASES)
def test_rendered_arguments_start_the_launcher(files: list[Path], values: dict[str, Any]) -> None:
    docs = render(values, files)
    merged = load_values(files, values)
    spec = find(docs, "Deployment")["spec"]["template"]["spec"]
    pods = [container(docs), *spec.get("initContainers", [])]
    for c in pods:
        parsed = parse_args(c["args"], CONTRACT, env=container_env(c))
        port = merged.get("server", {}).get("port", 8080)
        assert parsed.given["port"] == "env" and parsed.get("port") == port
        assert parsed.given["hostname"] == "command line"  # never the pod name
        position = merged.get("model", {}).get("maxPositionEmbeddings")
        gpus = merged.get("gpu", {}).get("count", 1)
        assert start_checks(parsed, CONTRACT, max_position_embeddings=position, visible_devices=gpus) == []
        # Router and shards agree on prefix caching (the tri-state trap).
        reads = shard_reads(shard_env(parsed), CONTRACT)
        assert reads["PREFIX_CACHING"] == router_switches(parsed)["prefix-caching"]


def test_every_allowed_extra_flag_is_in_the_every_flag_set() -> None:
    """The every-flag sets cover each flag extraArgs may carry and each flag a value renders."""
    args = [arg for values in (EVERY_FLAG, QUANTIZED, SHARDED) for arg in container(render(values))["args"]]
    used = {a[2:] for a in args if a.startswith("--")}
    rendered_by_values = {name for name, spec in CONTRACT.args.items() if spec.value and spec.value != "null"}
    expected = {name for name, spec in CONTRACT.args.items() if spec.allowed_in_extra_args}
    expected |= rendered_by_values - {"port", "download-only"}  # PORT is an env value; warm-up adds the last
    assert expected <= used, sorted(expected - used)


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        (["--max-waiting-tokens 20"], "server.extraArgs[0]"),
        (["--eager"], "--eager"),
        (["--max-best-of", "2", "--max-best-of", "3"], "--max-best-of"),
        (["--max-waiting-tokens", "1.5"], "--max-waiting-tokens"),
        (["--disable-sgmv=false"], "--disable-sgmv"),
        (["--backend", "FlashInfer"], "--backend"),
        (["--cors-allow-credentials", "yes"], "--cors-allow-credentials"),
        (["--compile-max-rank"], "--compile-max-rank"),
        (["--watermark-gamma", "-0.5"], "-0"),
        (["serve"], "serve"),
        (["--version"], "--version"),
    ],
)
def test_chart_refuses_what_the_parser_refuses(extra: list[str], named: str) -> None:
    """The template walk (_launcher.tpl) and the Python parser agree, and the chart names the item."""
    args = container(render())["args"]
    with pytest.raises(ClapError):
        parse_args(args + extra, CONTRACT)
    with pytest.raises(helm.HelmReleaseError) as error:
        render({"server": {"extraArgs": extra}})
    assert named in str(error.value)


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        (["--sharded=true"], "set server.sharded instead"),
        (["--compile"], "set server.cudaGraphs instead"),
        (["--max-input-length", "100"], "set server.maxInputLength instead"),
        (["--preloaded-adapter-ids", "org/x"], "set adapters.preloaded instead"),
        (["--predibase-api-token", "pb_x"], "PREDIBASE_API_TOKEN through server.extraEnv"),
        (["--download-only"], "modelCache.warmup.enabled"),
        (["--ngrok"], "public tunnel"),
        (["--hostname", "::"], "set server.hostname instead"),
    ],
)
def test_flags_the_chart_owns_are_refused_in_extra_args(extra: list[str], named: str) -> None:
    """clap would take these, but the value (or a safer path) is the chart's: the message says which."""
    parse_args(extra, CONTRACT)
    with pytest.raises(helm.HelmReleaseError) as error:
        render({"server": {"extraArgs": extra}})
    assert named in str(error.value)


def test_profiles_pin_nothing_the_contract_does_not_know() -> None:
    """Profiles set only values (no extraArgs the planner could not reason about)."""
    for profile in PROFILES:
        values = yaml.safe_load(profile.read_text())
        assert not values.get("server", {}).get("extraArgs"), profile.name


SCHEMA = json.loads((CHART_DIR / "values.schema.json").read_text())
INT_MAX = {"u16": 2**16 - 1, "u32": 2**32 - 1}


def schema_node(key: str) -> dict[str, Any]:
    node = SCHEMA
    for part in key.split("."):
        node = node["properties"][part]
    return node


def test_schema_agrees_with_the_contract() -> None:
    """Enums and ranges in values.schema.json are the contract's (the shard's list where stricter)."""
    checked = 0
    for spec in CONTRACT.args.values():
        if not spec.value or spec.value == "null" or spec.value in ("modelCache.warmup.enabled", "gpu.count"):
            continue
        node = schema_node(spec.value)
        checked += 1
        if spec.type == "enum" or spec.values:
            allowed = set(CONTRACT.data["args"][spec.name].get("serverValues") or spec.values)
            assert set(node["enum"]) - {None} <= allowed, spec.value
        if spec.type in INT_MAX:
            assert node.get("maximum", INT_MAX[spec.type] + 1) <= INT_MAX[spec.type], spec.value
        if spec.type == "bool" and spec.kind == "option":
            assert set(node["type"]) == {"boolean", "null"}, spec.value
    assert checked >= 20
