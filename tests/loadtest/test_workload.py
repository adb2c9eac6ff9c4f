"""The workload generator: adapter mixes, lengths, prompts in real tokens, seeds, YAML and JSONL input."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import pytest

from loraxkit.loadtest.lengths import LengthSpecError, parse_length
from loraxkit.loadtest.prompts import (
    JsonlPrompts,
    PromptSourceError,
    SyntheticPrompts,
    count_tokens,
    load_tokenizer,
)
from loraxkit.loadtest.workload import Workload, WorkloadError, expand_adapters, load_workload_file

N = 4000


def shares(w: Workload, n: int = N) -> Counter:
    return Counter(w.request(i).adapter for i in range(n))


def test_uniform_mix_spreads_evenly() -> None:
    counts = shares(Workload(adapters=["a", "b", "c", "d"], input_tokens=4, output_tokens=4))
    assert set(counts) == {"a", "b", "c", "d"}
    for c in counts.values():
        assert abs(c / N - 0.25) < 0.03


def test_zipf_mix_follows_rank_weights() -> None:
    w = Workload(adapters=[f"l{i}" for i in range(5)], mix="zipf", zipf_exponent=1.5, input_tokens=4)
    expected = [1 / r**1.5 for r in range(1, 6)]
    total = sum(expected)
    counts = shares(w)
    for i, e in enumerate(expected):
        assert abs(counts[f"l{i}"] / N - e / total) < 0.03
    assert counts["l0"] > counts["l1"] > counts["l4"]


def test_explicit_weights_and_base_share() -> None:
    w = Workload(adapters=["x", "y"], mix="weights", weights=[3, 1], base_share=0.2, input_tokens=4)
    counts = shares(w)
    assert abs(counts[None] / N - 0.2) < 0.03
    assert abs(counts["x"] / N - 0.6) < 0.03
    assert abs(counts["y"] / N - 0.2) < 0.03
    assert w.expected_shares() == pytest.approx({"x": 0.6, "y": 0.2, None: 0.2})


def test_seed_makes_the_sequence_reproducible() -> None:
    def seq(seed: int) -> list[tuple]:
        w = Workload(adapters="a,b,c", seed=seed, input_tokens="uniform:5,50", output_tokens="uniform:1,99")
        return [(r.adapter, r.prompt.text, r.max_new_tokens) for r in map(w.request, range(50))]

    assert seq(7) == seq(7)
    assert seq(7) != seq(8)


def test_synthetic_prompts_have_exact_token_counts() -> None:
    source = SyntheticPrompts("mistral-v1")
    tok = load_tokenizer("mistral-v1")
    rng = random.Random(3)
    for n in (1, 7, 64, 333, 1024):
        prompt = source.make(n, rng)
        assert prompt.tokens == n
        assert count_tokens(tok, prompt.text) == n


def test_a_local_tokenizer_file_counts_the_prompts(tmp_path: Path) -> None:
    import mistral_common

    # A user's own tokenizer file: here the Tekken file mistral-common ships, copied out of the package.
    shipped = Path(mistral_common.__file__).parent / "data" / "tekken_240911.json"
    local = tmp_path / "tekken.json"
    local.write_bytes(shipped.read_bytes())
    source = SyntheticPrompts(str(local))
    tekken, v1 = load_tokenizer(str(local)), load_tokenizer("mistral-v1")
    rng = random.Random(5)
    prompts = [source.make(n, rng) for n in (16, 200)]
    assert [count_tokens(tekken, p.text) for p in prompts] == [16, 200]
    assert [count_tokens(v1, p.text) for p in prompts] != [16, 200]  # the file, not the default, was used
    (tmp_path / "broken.json").write_text("{}")
    with pytest.raises(PromptSourceError, match="tokenizer: cannot load"):
        load_tokenizer(str(tmp_path / "broken.json"))
    with pytest.raises(PromptSourceError, match="neither a built-in"):
        load_tokenizer(str(tmp_path / "missing.model"))


def test_input_and_output_length_distributions() -> None:
    w = Workload(adapters=["a"], input_tokens="uniform:10,20", output_tokens="normal:50,5,40,60")
    reqs = [w.request(i) for i in range(300)]
    assert {r.prompt.tokens for r in reqs} <= set(range(10, 21))
    assert len({r.prompt.tokens for r in reqs}) > 5
    assert all(40 <= r.max_new_tokens <= 60 for r in reqs)
    assert abs(sum(r.max_new_tokens for r in reqs) / 300 - 50) < 1.5
    assert all(r.ignore_eos for r in reqs)


@pytest.mark.parametrize(
    ("spec", "kind"),
    [
        ("256", "fixed"),
        (12, "fixed"),
        ("uniform:1,9", "uniform"),
        ("normal:100,10,1,200", "normal"),
        ("exponential:30", "exponential"),
        ({"dist": "normal", "mean": 9, "std": 1}, "normal"),
    ],
)
def test_length_specs_parse(spec: object, kind: str) -> None:
    assert parse_length(spec, "input_tokens").kind == kind


@pytest.mark.parametrize(
    "spec", ["", "abc", "uniform:9,1", "normal:1", "gamma:3,4", "0", True, {"dist": "uniform", "min": 1}]
)
def test_bad_length_specs_name_the_field(spec: object) -> None:
    with pytest.raises(LengthSpecError, match="output_tokens"):
        parse_length(spec, "output_tokens")


def test_adapter_ranges_expand() -> None:
    assert expand_adapters("lora-{0..2},base-x") == ["lora-0", "lora-1", "lora-2", "base-x"]
    with pytest.raises(WorkloadError, match="adapters"):
        expand_adapters("a-{5..1}")


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"mix": "pareto"}, "mix"),
        ({"base_share": 1.5}, "base_share"),
        ({"mix": "weights", "weights": [1.0]}, "weights"),
        ({"adapters": []}, "adapters"),
        ({"output_tokens": "dataset"}, "output_tokens"),
    ],
)
def test_bad_workload_names_the_key(kwargs: dict, key: str) -> None:
    with pytest.raises(WorkloadError, match=key):
        Workload(**kwargs)


def test_yaml_file_with_command_line_override(tmp_path: Path) -> None:
    path = tmp_path / "w.yaml"
    path.write_text("adapters: ['a', 'b']\nmix: zipf\nzipf_exponent: 2.0\nbase_share: 0.5\nseed: 4\n")
    w = load_workload_file(path, {"seed": 9})
    assert (w.adapters, w.mix, w.zipf_exponent, w.base_share, w.seed) == (["a", "b"], "zipf", 2.0, 0.5, 9)


def test_yaml_unknown_key_is_named(tmp_path: Path) -> None:
    path = tmp_path / "w.yaml"
    path.write_text("adapterz: [a]\n")
    with pytest.raises(WorkloadError, match="adapterz"):
        load_workload_file(path)


def test_sharegpt_jsonl_prompts_and_dataset_output_lengths(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    rows = [
        {
            "conversations": [
                {"from": "human", "value": "What is LoRA?"},
                {"from": "gpt", "value": "Low-rank adaptation of large language models."},
            ]
        },
        {"messages": [{"role": "user", "content": "Hi there"}, {"role": "assistant", "content": "Hello!"}]},
        {"prompt": "Count to three.", "output_tokens": 17},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    source = JsonlPrompts(path)
    tok = load_tokenizer("mistral-v1")
    assert [p.text for p in source.prompts] == ["What is LoRA?", "Hi there", "Count to three."]
    assert source.prompts[0].tokens == count_tokens(tok, "What is LoRA?")
    assert source.prompts[0].reference_output_tokens == count_tokens(
        tok, rows[0]["conversations"][1]["value"]
    )
    assert source.prompts[2].reference_output_tokens == 17
    w = Workload(adapters=["a"], prompts=str(path), output_tokens="dataset")
    by_text = {p.text: p.reference_output_tokens for p in source.prompts}
    for i in range(20):
        r = w.request(i)
        assert r.max_new_tokens == by_text[r.prompt.text]


def test_bad_jsonl_line_is_located(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text('{"prompt": "ok"}\n{"turns": []}\n')
    with pytest.raises(PromptSourceError, match=r"p\.jsonl:2"):
        JsonlPrompts(path)
