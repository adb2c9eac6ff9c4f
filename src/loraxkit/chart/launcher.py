"""The pinned LoRAX launcher's contract (charts/lorax/files/launcher-contract.yaml) and a clap-like parser.

The chart's templates read the same file, so the chart, the planner and the tests share one description of
`lorax-launcher`: its arguments, the defaults it derives, the environment it hands the shards and the checks
it runs at start. `parse_args` reads an argument list the way clap 4.5.21 does (the rules and their sources
are in the file's `clap` section); `start_checks` runs the launcher's start-up refusals on effective values.

    >>> contract = load_contract()
    >>> parsed = parse_args(["--model-id", "org/m", "--max-input-length", "8000"], contract)
    >>> start_checks(parsed, contract)[0].rule
    'input-below-total'
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

CONTRACT_PATH = Path(__file__).resolve().parents[3] / "charts" / "lorax" / "files" / "launcher-contract.yaml"

# Integer ranges of the clap value parsers (u16/u32: RangedI64ValueParser; u64/usize: unsigned FromStr).
_INT_MAX = {"u16": 2**16 - 1, "u32": 2**32 - 1, "u64": 2**64 - 1, "usize": 2**64 - 1}
_RUST_UINT = re.compile(r"\+?[0-9]+")
_RUST_INT = re.compile(r"[+-]?[0-9]+")
# Rust's f32 FromStr: optional sign, digits with an optional point and exponent, or inf/infinity/nan.
_RUST_FLOAT = re.compile(r"[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|inf|infinity|nan)", re.I)


@dataclass(frozen=True)
class ArgSpec:
    """One launcher argument, as the contract file describes it."""

    name: str
    env: str | None
    kind: str  # option | switch | repeated
    type: str  # string | bool | usize | u16 | u32 | u64 | f32 | enum
    default: Any
    source: str
    values: tuple[str, ...] = ()
    short: str | None = None
    value: str | None = None  # chart value that renders it
    extra_args: str = "allowed"  # "allowed", "refused" or "refused: <why>"
    derived: str | None = None

    @property
    def flag(self) -> str:
        return f"--{self.name}"

    @property
    def takes_value(self) -> bool:
        return self.kind != "switch"

    @property
    def allowed_in_extra_args(self) -> bool:
        return self.extra_args == "allowed"


@dataclass(frozen=True)
class Contract:
    """The whole contract file, with the arguments as `ArgSpec`s."""

    tag: str
    args: Mapping[str, ArgSpec]
    data: Mapping[str, Any]

    def by_short(self, letter: str) -> ArgSpec | None:
        return next((a for a in self.args.values() if a.short == letter), None)

    def by_env(self, name: str) -> ArgSpec | None:
        return next((a for a in self.args.values() if a.env == name), None)

    @property
    def position_cap(self) -> int:
        return int(self.data["defaults"]["maxPositionEmbeddings"]["cap"])

    @property
    def prefill_margin(self) -> int:
        return int(self.data["defaults"]["maxBatchPrefillTokens"]["add"])

    def truthy_shard_env(self) -> list[str]:
        """Variables the shards read as `bool(os.environ.get(...))`: any non-empty string is true."""
        return [name for name, spec in self.data["shardEnv"].items() if spec["read"] == "truthy"]


class ClapError(ValueError):
    """What clap would print before exiting non-zero (or, for --help/--version, exiting 0 without serving)."""

    def __init__(self, kind: str, arg: str, detail: str) -> None:
        super().__init__(f"{arg}: {detail}")
        self.kind = kind
        self.arg = arg
        self.detail = detail


@dataclass(frozen=True)
class Refusal:
    """A start-up check the launcher, router or a shard would fail."""

    rule: str
    when: str
    message: str
    source: str


@dataclass
class ParsedArgs:
    """Values by argument name, as clap would hand them to the launcher; `given` says where each came from."""

    values: dict[str, Any] = field(default_factory=dict)
    given: dict[str, str] = field(default_factory=dict)  # name -> "command line" | "env" | "default"

    def get(self, name: str) -> Any:
        return self.values.get(name)

    def explicit(self, name: str) -> bool:
        return self.given.get(name) in ("command line", "env")


def _spec(name: str, raw: Mapping[str, Any]) -> ArgSpec:
    return ArgSpec(
        name=name,
        env=raw.get("env"),
        kind=raw["kind"],
        type=raw["type"],
        default=raw.get("default"),
        source=raw["source"],
        values=tuple(raw.get("values") or ()),
        short=raw.get("short"),
        value=raw.get("value"),
        extra_args=str(raw.get("extraArgs", "allowed")),
        derived=raw.get("derived"),
    )


@cache
def _load(path: Path) -> Contract:
    data = yaml.safe_load(path.read_text())
    args = {name: _spec(name, raw) for name, raw in data["args"].items()}
    return Contract(tag=str(data["image"]["tag"]), args=args, data=data)


def load_contract(path: Path = CONTRACT_PATH) -> Contract:
    """Load (once per path) the contract file the chart ships."""
    return _load(Path(path).resolve())


def parse_value(spec: ArgSpec, raw: str) -> Any:
    """Convert one raw value the way the argument's clap value parser does, or raise ClapError."""
    bad = ClapError("invalid-value", spec.flag, f"invalid value '{raw}' for '{spec.flag}'")
    if spec.type == "string":
        return raw
    if spec.type == "bool":
        if raw not in ("true", "false"):
            raise ClapError(
                "invalid-value", spec.flag, f"invalid value '{raw}' (possible values: true, false)"
            )
        return raw == "true"
    if spec.type == "enum":
        if raw not in spec.values:
            raise ClapError(
                "invalid-value",
                spec.flag,
                f"invalid value '{raw}' (possible values: {', '.join(spec.values)})",
            )
        return raw
    if spec.type in ("u16", "u32"):
        if not _RUST_INT.fullmatch(raw) or not -(2**63) <= int(raw) < 2**63:
            raise bad
        if not 0 <= int(raw) <= _INT_MAX[spec.type]:
            raise ClapError("invalid-value", spec.flag, f"{raw} is not in 0..={_INT_MAX[spec.type]}")
        return int(raw)
    if spec.type in ("u64", "usize"):
        if not _RUST_UINT.fullmatch(raw) or int(raw) > _INT_MAX[spec.type]:
            raise bad
        return int(raw)
    if spec.type == "f32":
        if not _RUST_FLOAT.fullmatch(raw):
            raise bad
        return float(raw.lower().replace("infinity", "inf"))
    raise AssertionError(f"contract type {spec.type!r} of {spec.flag} is unknown")


def _looks_like_flag(token: str) -> bool:
    """A token clap would read as a flag rather than as the previous option's value."""
    return token.startswith("--") or (token.startswith("-") and len(token) > 1)


class _Parser:
    def __init__(self, contract: Contract) -> None:
        self.contract = contract
        self.parsed = ParsedArgs()

    def store(self, spec: ArgSpec, value: Any, origin: str) -> None:
        seen = spec.name in self.parsed.values
        if spec.kind == "repeated":
            self.parsed.values.setdefault(spec.name, []).append(value)
        elif seen:
            raise ClapError(
                "repeated", spec.flag, f"the argument '{spec.flag}' cannot be used multiple times"
            )
        else:
            self.parsed.values[spec.name] = value
        self.parsed.given[spec.name] = origin

    def exit_early(self, spec: ArgSpec) -> None:
        if spec.name in ("help", "version"):
            raise ClapError("exits", spec.flag, f"'{spec.flag}' prints and exits 0: the server never starts")

    def long(self, token: str, rest: list[str]) -> None:
        name, eq, attached = token[2:].partition("=")
        spec = self.contract.args.get(name)
        if spec is None:
            raise ClapError("unknown", f"--{name}", f"unexpected argument '--{name}' found")
        self.exit_early(spec)
        if not spec.takes_value:
            if eq:
                raise ClapError(
                    "unexpected-value", spec.flag, f"unexpected value '{attached}' for '{spec.flag}'"
                )
            self.store(spec, True, "command line")
            return
        self.store(spec, parse_value(spec, self.value(spec, attached if eq else None, rest)), "command line")

    def short(self, token: str, rest: list[str]) -> None:
        spec = self.contract.by_short(token[1])
        if spec is None:
            raise ClapError("unknown", token[:2], f"unexpected argument '{token[:2]}' found")
        self.exit_early(spec)
        attached = token[2:]
        if not spec.takes_value:
            if attached:
                # Clustered short switches: the launcher's switches with a short name are -e, -h, -V only.
                self.store(spec, True, "command line")
                self.short("-" + attached, rest)
                return
            self.store(spec, True, "command line")
            return
        attached = attached[1:] if attached.startswith("=") else attached
        self.store(spec, parse_value(spec, self.value(spec, attached or None, rest)), "command line")

    def value(self, spec: ArgSpec, attached: str | None, rest: list[str]) -> str:
        if attached is not None:
            return attached
        nxt = rest[0] if rest else ""
        if _looks_like_flag(nxt) and not nxt.startswith("--") and self.contract.by_short(nxt[1]) is None:
            # clap reads `-1` as the short flag `1` (no negative numbers allowed): that error comes first.
            raise ClapError("unknown", nxt[:2], f"unexpected argument '{nxt[:2]}' found")
        if not rest or _looks_like_flag(nxt):
            raise ClapError(
                "value-required", spec.flag, f"a value is required for '{spec.flag}' but none was supplied"
            )
        return rest.pop(0)

    def run(self, argv: Sequence[str], env: Mapping[str, str]) -> ParsedArgs:
        rest = list(argv)
        while rest:
            token = rest.pop(0)
            if token == "--":
                if rest:
                    raise ClapError("positional", rest[0], f"unexpected argument '{rest[0]}' found")
                break
            if token.startswith("--"):
                self.long(token, rest)
            elif token.startswith("-") and len(token) > 1:
                self.short(token, rest)
            else:
                raise ClapError("positional", token, f"unexpected argument '{token}' found")
        for spec in self.contract.args.values():
            if spec.name in self.parsed.values:
                continue
            if spec.env and spec.env in env:
                # One value: no value_delimiter is configured, so a repeated argument gets a one-item list.
                value = parse_value(spec, env[spec.env])
                self.parsed.values[spec.name] = [value] if spec.kind == "repeated" else value
                self.parsed.given[spec.name] = "env"
            elif spec.default is not None:
                self.parsed.values[spec.name] = spec.default
                self.parsed.given[spec.name] = "default"
        return self.parsed


def parse_args(
    argv: Sequence[str], contract: Contract | None = None, env: Mapping[str, str] | None = None
) -> ParsedArgs:
    """Parse `argv` (the container's args) like the launcher's clap parser, with `env` as the process env.

    Raises `ClapError` naming the argument where clap would exit before the launcher runs.
    """
    return _Parser(contract or load_contract()).run(argv, env or {})


@dataclass(frozen=True)
class Limits:
    """The token limits the launcher ends up with (None: decided at warm-up)."""

    max_position_embeddings: int
    max_input_length: int
    max_total_tokens: int
    max_batch_prefill_tokens: int
    max_batch_total_tokens: int | None


def effective_limits(
    parsed: ParsedArgs, contract: Contract | None = None, max_position_embeddings: int | None = None
) -> Limits:
    """Fill the limits the way the launcher does; `max_position_embeddings` is the model's (None: unknown)."""
    contract = contract or load_contract()
    cap = contract.position_cap
    position = (
        cap if max_position_embeddings is None or max_position_embeddings > cap else max_position_embeddings
    )
    max_input = parsed.get("max-input-length")
    max_input = position - 1 if max_input is None else max_input
    max_total = parsed.get("max-total-tokens")
    max_total = position if max_total is None else max_total
    prefill = parsed.get("max-batch-prefill-tokens")
    prefill = max_input + contract.prefill_margin if prefill is None else prefill
    return Limits(position, max_input, max_total, prefill, parsed.get("max-batch-total-tokens"))


def _relation(contract: Contract, rule: str, message: str) -> Refusal:
    spec = next(r for r in contract.data["relations"] if r["id"] == rule)
    return Refusal(rule=rule, when=spec["when"], message=message, source=spec["source"])


def num_shards(parsed: ParsedArgs, visible_devices: int | None) -> int | str:
    """The launcher's find_num_shards: a shard count, or the refusal message."""
    sharded, count = parsed.get("sharded"), parsed.get("num-shard")
    if sharded is True and count is None:
        if visible_devices is None:
            return "--num-shard and CUDA_VISIBLE_DEVICES/NVIDIA_VISIBLE_DEVICES are not set"
        if visible_devices <= 1:
            return f"`sharded` is true but only found {visible_devices} CUDA devices"
        return visible_devices
    if sharded is True and count <= 1:
        return "`sharded` is true but `num_shard` <= 1"
    if count is None:
        count = 1 if sharded is False else (visible_devices or 1)
    return count if count >= 1 else "`num_shard` cannot be < 1"


def start_checks(
    parsed: ParsedArgs,
    contract: Contract | None = None,
    *,
    max_position_embeddings: int | None = None,
    visible_devices: int | None = None,
) -> list[Refusal]:
    """Every start-up refusal the launcher (then router and shards) would hit, in the launcher's order."""
    contract = contract or load_contract()
    limits = effective_limits(parsed, contract, max_position_embeddings)
    found: list[Refusal] = []

    def refuse(rule: str, message: str) -> None:
        found.append(_relation(contract, rule, message))

    if limits.max_input_length >= limits.max_total_tokens:
        refuse(
            "input-below-total",
            f"`max_input_length` ({limits.max_input_length}) must be < `max_total_tokens` "
            f"({limits.max_total_tokens})",
        )
    if parsed.get("validation-workers") == 0:
        refuse("validation-workers-positive", "`validation_workers` must be > 0")
    shards = num_shards(parsed, visible_devices)
    if isinstance(shards, str):
        refuse("sharded-needs-shards", shards)
    batch = limits.max_batch_total_tokens
    if batch is not None and limits.max_batch_prefill_tokens > batch:
        refuse(
            "prefill-within-batch",
            f"`max_batch_prefill_tokens` must be <= `max_batch_total_tokens`. Given: "
            f"{limits.max_batch_prefill_tokens} and {batch}",
        )
    if batch is not None and limits.max_total_tokens > batch:
        refuse(
            "total-within-batch",
            f"`max_total_tokens` must be <= `max_batch_total_tokens`. Given: {limits.max_total_tokens} "
            f"and {batch}",
        )
    if parsed.get("ngrok") and not (parsed.get("ngrok-authtoken") and parsed.get("ngrok-edge")):
        refuse(
            "ngrok-needs-token-and-edge", "`ngrok-authtoken` and `ngrok-edge` must be set when using ngrok"
        )
    found.extend(_later_checks(parsed, contract, limits, shards))
    return found


def _later_checks(parsed: ParsedArgs, contract: Contract, limits: Limits, shards: int | str) -> list[Refusal]:
    """Refusals of the router (after warm-up) and the shards, on values known before the pod starts."""
    found: list[Refusal] = []
    reads = shard_reads(shard_env(parsed), contract)
    # model.py:90-105: chunking needs CHUNKED_PREFILL, no speculation, FlashInfer (prefix caching forces it).
    chunking = (
        reads["CHUNKED_PREFILL"]
        and not parsed.get("speculative-tokens")
        and (reads["FLASH_INFER"] or reads["PREFIX_CACHING"])
    )
    if limits.max_batch_prefill_tokens < limits.max_input_length and not chunking:
        found.append(
            _relation(
                contract,
                "prefill-covers-input",
                f"`max_batch_prefill_tokens` must be >= `max_input_length`. Given: "
                f"{limits.max_batch_prefill_tokens} and {limits.max_input_length}",
            )
        )
    if parsed.get("compile") and isinstance(shards, int) and shards > 1:
        found.append(
            _relation(
                contract,
                "compile-not-sharded",
                "Cannot enable `--compile` when sharding across multiple GPUs",
            )
        )
    cuda, adapter = parsed.get("cuda-memory-fraction"), parsed.get("adapter-memory-fraction")
    if not (0 < cuda <= 1) or not (0 <= adapter < cuda) or math.isnan(cuda + adapter):
        found.append(
            _relation(
                contract,
                "memory-fractions",
                f"cuda_memory_fraction {cuda} must be in (0, 1] and adapter_memory_fraction {adapter} "
                "in [0, cuda)",
            )
        )
    if parsed.get("dtype") is not None and parsed.get("quantize") is not None:
        found.append(_relation(contract, "dtype-or-quantize", "--dtype cannot be used with --quantize"))
    return found


def shard_env(parsed: ParsedArgs) -> dict[str, str]:
    """The launcher-written variables of the contract's `shardEnv` that depend on the arguments."""
    env: dict[str, str] = {}
    for name, flag in (("PREFIX_CACHING", "prefix-caching"), ("CHUNKED_PREFILL", "chunked-prefill")):
        if parsed.get(flag) is not None:
            env[name] = "true" if parsed.get(flag) else "false"
    if parsed.get("backend") == "flashinfer":
        env["FLASH_INFER"] = "1"
    if parsed.get("disable-sgmv"):
        env["DISABLE_SGMV"] = "1"
    return env


def shard_reads(env: Mapping[str, str], contract: Contract | None = None) -> dict[str, bool]:
    """How the shards read each truthiness variable: `bool(os.environ.get(NAME, ""))`."""
    contract = contract or load_contract()
    return {name: bool(env.get(name, "")) for name in contract.truthy_shard_env()}


def router_switches(parsed: ParsedArgs) -> dict[str, bool]:
    """The router's switches the launcher sets: only a `true` value reaches it (main.rs:1492-1498)."""
    return {
        "eager-prefill": bool(parsed.get("eager-prefill")),
        "prefix-caching": bool(parsed.get("prefix-caching")),
    }
