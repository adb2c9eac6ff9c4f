"""The launcher contract file and its clap-faithful parser: each case is taken from the launcher's source
(launcher/src/main.rs@v0.12.1) or clap 4.5.21's parser, cited in charts/lorax/files/launcher-contract.yaml."""

from __future__ import annotations

import re

import pytest

from loraxkit.chart.launcher import (
    ClapError,
    effective_limits,
    load_contract,
    parse_args,
    router_switches,
    shard_env,
    shard_reads,
    start_checks,
)

CONTRACT = load_contract()
CITATION = re.compile(r"(launcher|router|server)/[\w/.]+:\d+")


def test_every_argument_is_described_and_cited() -> None:
    assert CONTRACT.tag == "0.12.1"
    # 63 fields of `struct Args` (main.rs:272-635) plus clap's --help/--version.
    assert len(CONTRACT.args) == 65
    for spec in CONTRACT.args.values():
        assert spec.kind in {"option", "switch", "repeated"}, spec.name
        assert spec.type in {"string", "bool", "usize", "u16", "u32", "u64", "f32", "enum"}, spec.name
        assert CITATION.search(spec.source), spec.name
        assert spec.type != "enum" or spec.values, spec.name
        assert spec.extra_args == "allowed" or spec.extra_args.startswith("refused"), spec.name
        if spec.kind == "switch":
            assert spec.type == "bool" and spec.default is False, spec.name
    for relation in CONTRACT.data["relations"]:
        assert CITATION.search(relation["source"]), relation["id"]
    for name, env in CONTRACT.data["shardEnv"].items():
        assert CITATION.search(env["readSource"]), name


@pytest.mark.parametrize(
    ("argv", "kind", "arg"),
    [
        (["--eager"], "unknown", "--eager"),  # only on main (launcher/src/main.rs@a7394ba3:359)
        (["--max-waiting-tokens 20"], "unknown", "--max-waiting-tokens 20"),  # one item = one argv token
        (["--max-input-len", "10"], "unknown", "--max-input-len"),  # no prefix inference
        (["--compile=true"], "unexpected-value", "--compile"),  # a switch takes no value
        (["--compile", "--compile"], "repeated", "--compile"),
        (["--max-total-tokens", "10", "--max-total-tokens=20"], "repeated", "--max-total-tokens"),
        (["--sharded", "yes"], "invalid-value", "--sharded"),  # Option<bool>: true|false only
        (["--sharded", "True"], "invalid-value", "--sharded"),
        (["--sharded"], "value-required", "--sharded"),
        (["--prefix-caching", "--json-output"], "value-required", "--prefix-caching"),
        (["--port", "70000"], "invalid-value", "--port"),  # u16
        (["--max-batch-prefill-tokens", "4294967296"], "invalid-value", "--max-batch-prefill-tokens"),  # u32
        (["--max-input-length", "1.5"], "invalid-value", "--max-input-length"),  # usize
        (["--max-input-length", "-1"], "unknown", "-1"),  # clap reads -1 as a short flag
        (["--max-input-length", " 10"], "invalid-value", "--max-input-length"),
        (["--quantize", "GPTQ"], "invalid-value", "--quantize"),  # value_enum is case-sensitive
        (["--quantize", "int8"], "invalid-value", "--quantize"),
        (["--dtype", "float32"], "invalid-value", "--dtype"),
        (["--backend", "flash"], "invalid-value", "--backend"),
        (["--cuda-memory-fraction", "half"], "invalid-value", "--cuda-memory-fraction"),
        (["mistralai/Mistral-7B-Instruct-v0.1"], "positional", "mistralai/Mistral-7B-Instruct-v0.1"),
        (["--", "--port"], "positional", "--port"),
        (["--help"], "exits", "--help"),
        (["-V"], "exits", "--version"),
        (["-x"], "unknown", "-x"),
    ],
)
def test_parser_refuses_what_clap_refuses(argv: list[str], kind: str, arg: str) -> None:
    with pytest.raises(ClapError) as error:
        parse_args(argv, CONTRACT)
    assert (error.value.kind, error.value.arg) == (kind, arg)


def test_parser_accepts_what_clap_accepts() -> None:
    parsed = parse_args(
        [
            "--model-id=org/model",
            "--max-input-length", "+100",
            "-p8080",
            "--preloaded-adapter-ids", "a/b",
            "--preloaded-adapter-ids=c/d",
            "--compile",
            "--sharded", "false",
            "--waiting-served-ratio", "1e0",
            "--revision=",
            "-e",
        ],
        CONTRACT,
    )  # fmt: skip
    assert parsed.get("model-id") == "org/model"
    assert parsed.get("max-input-length") == 100
    assert parsed.get("port") == 8080
    assert parsed.get("preloaded-adapter-ids") == ["a/b", "c/d"]
    assert parsed.get("compile") is True and parsed.get("sharded") is False
    assert parsed.get("waiting-served-ratio") == 1.0
    assert parsed.get("revision") == ""
    assert parsed.get("env") is True
    # Unset arguments carry clap's defaults.
    assert (
        parsed.get("max-concurrent-requests") == 128 and parsed.given["max-concurrent-requests"] == "default"
    )


def test_environment_fills_absent_arguments_only() -> None:
    """`env` on every field (main.rs:280-634): Kubernetes' HOSTNAME (the pod name) becomes --hostname."""
    parsed = parse_args(["--port", "8080"], CONTRACT, env={"PORT": "80", "HOSTNAME": "lorax-6b9f-abcde"})
    assert parsed.get("port") == 8080
    assert parsed.get("hostname") == "lorax-6b9f-abcde" and parsed.given["hostname"] == "env"
    with pytest.raises(ClapError, match="--max-input-length"):
        parse_args([], CONTRACT, env={"MAX_INPUT_LENGTH": "lots"})


def test_defaults_follow_the_4096_cap_and_prefill_margin() -> None:
    """main.rs:1610-1664: limits derive from min(max_position_embeddings, 4096); prefill = input + 50."""
    limits = effective_limits(parse_args([], CONTRACT), CONTRACT)
    assert (limits.max_input_length, limits.max_total_tokens, limits.max_batch_prefill_tokens) == (
        4095,
        4096,
        4145,
    )
    limits = effective_limits(parse_args([], CONTRACT), CONTRACT, max_position_embeddings=131072)
    assert limits.max_total_tokens == 4096
    limits = effective_limits(parse_args([], CONTRACT), CONTRACT, max_position_embeddings=2048)
    assert (limits.max_input_length, limits.max_total_tokens) == (2047, 2048)
    limits = effective_limits(parse_args(["--max-input-length", "1000"], CONTRACT), CONTRACT)
    assert limits.max_batch_prefill_tokens == 1050


@pytest.mark.parametrize(
    ("argv", "rule", "kwargs"),
    [
        (["--max-input-length", "8000"], "input-below-total", {}),  # the total defaults to 4096
        (["--max-input-length", "3000"], "input-below-total", {"max_position_embeddings": 2048}),
        (["--max-total-tokens", "4096", "--max-input-length", "4096"], "input-below-total", {}),
        (["--validation-workers", "0"], "validation-workers-positive", {}),
        (["--sharded", "true", "--num-shard", "1"], "sharded-needs-shards", {}),
        (["--sharded", "true"], "sharded-needs-shards", {"visible_devices": 1}),
        (["--num-shard", "0"], "sharded-needs-shards", {}),
        (["--max-batch-total-tokens", "4100"], "prefill-within-batch", {}),  # prefill defaults to 4145
        (["--max-batch-prefill-tokens", "100", "--max-input-length", "50",
          "--max-batch-total-tokens", "1000"],
         "total-within-batch", {}),
        (["--ngrok"], "ngrok-needs-token-and-edge", {}),
        (["--max-batch-prefill-tokens", "1000"], "prefill-covers-input", {}),
        (["--compile", "--num-shard", "2"], "compile-not-sharded", {}),
        (["--cuda-memory-fraction", "1.5"], "memory-fractions", {}),
        (["--cuda-memory-fraction", "0.1"], "memory-fractions", {}),  # adapters take 0.1: nothing left
        (["--dtype", "float16", "--quantize", "gptq"], "dtype-or-quantize", {}),
    ],
)  # fmt: skip
def test_start_checks_mirror_the_launcher(argv: list[str], rule: str, kwargs: dict) -> None:
    refusals = start_checks(parse_args(argv, CONTRACT), CONTRACT, **kwargs)
    assert [r.rule for r in refusals] == [rule]
    assert CITATION.search(refusals[0].source)


def test_defaults_start_and_chunked_prefill_lifts_the_prefill_rule() -> None:
    assert start_checks(parse_args([], CONTRACT), CONTRACT) == []
    argv = ["--max-batch-prefill-tokens", "1000", "--chunked-prefill", "true", "--backend", "flashinfer"]
    assert start_checks(parse_args(argv, CONTRACT), CONTRACT) == []
    # model.py:90-105: without FlashInfer, or with speculation, the shards turn chunking off again.
    for extra in ([], ["--speculative-tokens", "2", "--prefix-caching", "true"]):
        checks = start_checks(parse_args(argv[:4] + extra, CONTRACT), CONTRACT)
        assert [r.rule for r in checks] == ["prefill-covers-input"], extra


def test_a_false_tri_state_turns_the_shard_feature_on() -> None:
    """The trap: PREFIX_CACHING=false is a non-empty string: the shards enable it, the router does not."""
    parsed = parse_args(["--prefix-caching", "false", "--chunked-prefill", "false"], CONTRACT)
    reads = shard_reads(shard_env(parsed), CONTRACT)
    assert reads["PREFIX_CACHING"] is True and reads["CHUNKED_PREFILL"] is True
    assert router_switches(parsed)["prefix-caching"] is False
    # `false` also lifts the router's prefill >= input rule, because the shards report chunking.
    argv = ["--max-batch-prefill-tokens", "1000", "--chunked-prefill", "false", "--backend", "flashinfer"]
    assert start_checks(parse_args(argv, CONTRACT), CONTRACT) == []
    unset = shard_reads(shard_env(parse_args([], CONTRACT)), CONTRACT)
    assert not any(unset.values())
