"""The workload: which adapter each request uses, its prompt and its output length, reproducible from a seed.

Request i is a pure function of (workload, seed, i): every worker process derives the same request for
the same index, so a seeded run sends the same sequence however it is split across workers.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from loraxkit.loadtest.lengths import LengthDist, parse_length
from loraxkit.loadtest.prompts import JsonlPrompts, Prompt, SyntheticPrompts

MIX_KINDS = ("uniform", "zipf", "weights")
_RANGE = re.compile(r"^(?P<prefix>.*)\{(?P<lo>\d+)\.\.(?P<hi>\d+)\}(?P<suffix>.*)$")


class WorkloadError(ValueError):
    """Bad workload input; the message names the option/YAML key and how to fix it."""


@dataclass(frozen=True)
class PlannedRequest:
    index: int
    adapter: str | None  # None = the base model
    prompt: Prompt
    max_new_tokens: int
    ignore_eos: bool


@dataclass
class Workload:
    """Everything that decides the request sequence. Field names are the YAML keys."""

    adapters: list[str] = field(default_factory=lambda: [f"adapter-{i}" for i in range(4)])
    mix: str = "uniform"  # uniform | zipf | weights
    zipf_exponent: float = 1.1
    weights: list[float] | None = None
    base_share: float = 0.0  # fraction of requests sent to the base model
    prompts: str = "synthetic"  # "synthetic" or a JSONL path
    tokenizer: str = "mistral-v1"
    input_tokens: Any = "uniform:64,256"
    output_tokens: Any = "128"  # a length spec, or "dataset" for the JSONL answers' lengths
    ignore_eos: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        self.adapters = expand_adapters(self.adapters)
        self._validate()
        self._input = parse_length(self.input_tokens, "input_tokens")
        self._output: LengthDist | None = (
            None if self.output_tokens == "dataset" else parse_length(self.output_tokens, "output_tokens")
        )
        self._cum_weights = _cumulative(self.adapter_weights())
        self._source: SyntheticPrompts | JsonlPrompts | None = None

    def _validate(self) -> None:
        if self.mix not in MIX_KINDS:
            raise WorkloadError(f"mix: {self.mix!r} is not one of {', '.join(MIX_KINDS)}")
        if not 0.0 <= self.base_share <= 1.0:
            raise WorkloadError(f"base_share: {self.base_share} must be between 0 and 1 (a fraction)")
        if not self.adapters and self.base_share < 1.0:
            raise WorkloadError(
                "adapters: empty; list adapter ids, or set base_share: 1 for base-model-only load"
            )
        if self.mix == "zipf" and self.zipf_exponent <= 0:
            raise WorkloadError(f"zipf_exponent: {self.zipf_exponent} must be > 0")
        if self.mix == "weights":
            if not self.weights or len(self.weights) != len(self.adapters):
                raise WorkloadError(
                    f"weights: mix 'weights' needs one weight per adapter ({len(self.adapters)} adapters, "
                    f"{len(self.weights or [])} weights)"
                )
            if any(w < 0 for w in self.weights) or sum(self.weights) <= 0:
                raise WorkloadError("weights: must be >= 0 with a positive sum")
        if self.output_tokens == "dataset" and self.prompts == "synthetic":
            raise WorkloadError(
                "output_tokens: 'dataset' needs prompts from a JSONL file (prompts: path.jsonl)"
            )

    def adapter_weights(self) -> list[float]:
        """Normalised request share of each adapter (the base-model share comes on top)."""
        n = len(self.adapters)
        if n == 0:
            return []
        if self.mix == "uniform":
            raw = [1.0] * n
        elif self.mix == "zipf":
            raw = [1.0 / (rank**self.zipf_exponent) for rank in range(1, n + 1)]
        else:
            raw = [float(w) for w in self.weights or []]
        total = sum(raw)
        return [w / total for w in raw]

    def expected_shares(self) -> dict[str | None, float]:
        shares: dict[str | None, float] = {
            a: w * (1.0 - self.base_share) for a, w in zip(self.adapters, self.adapter_weights(), strict=True)
        }
        if self.base_share > 0:
            shares[None] = self.base_share
        return shares

    @property
    def source(self) -> SyntheticPrompts | JsonlPrompts:
        if self._source is None:
            if self.prompts == "synthetic":
                self._source = SyntheticPrompts(self.tokenizer)
            else:
                self._source = JsonlPrompts(self.prompts, self.tokenizer)
        return self._source

    def reuse_source(self, other: Workload | None) -> None:
        """Take `other`'s loaded prompts and tokenizer when they are the same files (tests of one session)."""
        if (
            other is not None
            and other._source is not None
            and self._source is None
            and (other.prompts, other.tokenizer) == (self.prompts, self.tokenizer)
        ):
            self._source = other._source

    def request(self, index: int) -> PlannedRequest:
        """Request number `index` of this seeded sequence."""
        rng = random.Random(self.seed * 1_000_003 + index)
        adapter = self._pick_adapter(rng)
        source = self.source
        if isinstance(source, SyntheticPrompts):
            prompt = source.make(self._input.sample(rng), rng)
        else:
            prompt = source.make(index, rng)
        dataset_length = prompt.reference_output_tokens or 1
        max_new = dataset_length if self._output is None else self._output.sample(rng)
        return PlannedRequest(index, adapter, prompt, max_new, self.ignore_eos)

    def _pick_adapter(self, rng: random.Random) -> str | None:
        if self.base_share > 0 and rng.random() < self.base_share:
            return None
        return self.adapters[_bisect(self._cum_weights, rng.random())]

    def describe(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["shares"] = {("<base>" if k is None else k): v for k, v in self.expected_shares().items()}
        return out


def expand_adapters(spec: list[str] | str) -> list[str]:
    """`a,b,c` or a list; `lora-{0..63}` expands to lora-0 ... lora-63."""
    items = [s.strip() for s in spec.split(",")] if isinstance(spec, str) else [str(s).strip() for s in spec]
    out: list[str] = []
    for item in items:
        if not item:
            continue
        match = _RANGE.match(item)
        if match:
            lo, hi = int(match["lo"]), int(match["hi"])
            if hi < lo:
                raise WorkloadError(f"adapters: range {item!r} runs backwards; write {{low..high}}")
            out.extend(f"{match['prefix']}{i}{match['suffix']}" for i in range(lo, hi + 1))
        else:
            out.append(item)
    return out


def load_workload_file(path: str | Path, overrides: dict[str, Any] | None = None) -> Workload:
    """Read a workload YAML file (keys = Workload fields); `overrides` win over the file."""
    p = Path(path)
    if not p.is_file():
        raise WorkloadError(f"workload file: {str(path)!r} does not exist")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise WorkloadError(f"workload file {p}: not valid YAML ({exc})") from None
    if not isinstance(data, dict):
        raise WorkloadError(f"workload file {p}: the top level must be a mapping of workload keys")
    data.update(overrides or {})
    return workload_from_mapping(data, str(p))


def workload_from_mapping(data: dict[str, Any], where: str = "workload") -> Workload:
    known = {f.name for f in fields(Workload)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise WorkloadError(
            f"{where}: unknown key(s) {', '.join(unknown)}; valid keys: {', '.join(sorted(known))}"
        )
    try:
        return Workload(**data)
    except TypeError as exc:
        raise WorkloadError(f"{where}: {exc}") from None


def _cumulative(weights: list[float]) -> list[float]:
    total, out = 0.0, []
    for w in weights:
        total += w
        out.append(total)
    return out


def _bisect(cum: list[float], x: float) -> int:
    import bisect

    return min(bisect.bisect_right(cum, x * cum[-1]), len(cum) - 1)
