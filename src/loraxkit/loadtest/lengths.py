"""Token-length distributions for prompts and outputs, written as short specs.

Spec forms (command line or YAML string): `256` (fixed), `uniform:128,512`, `normal:256,64[,min,max]`,
`exponential:256[,min,max]`. YAML may also use a mapping:
`{dist: normal, mean: 256, std: 64, min: 16, max: 1024}`.
Samples are integers clipped to [min, max] (min defaults to 1).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

KINDS = ("fixed", "uniform", "normal", "exponential")


class LengthSpecError(ValueError):
    """A length distribution that cannot be parsed; the message names the field and the accepted forms."""


@dataclass(frozen=True)
class LengthDist:
    kind: str
    a: float
    b: float = 0.0
    low: int = 1
    high: int | None = None

    def sample(self, rng: random.Random) -> int:
        match self.kind:
            case "fixed":
                value = self.a
            case "uniform":
                value = rng.randint(int(self.a), int(self.b))
            case "normal":
                value = rng.gauss(self.a, self.b)
            case _:
                value = rng.expovariate(1.0 / self.a)
        value = max(self.low, round(value))
        return min(value, self.high) if self.high is not None else value

    @property
    def mean(self) -> float:
        return {"fixed": self.a, "uniform": (self.a + self.b) / 2}.get(self.kind, self.a)

    def describe(self) -> str:
        bounds = f",{self.low},{self.high}" if self.high is not None else ""
        match self.kind:
            case "fixed":
                return str(int(self.a))
            case "uniform":
                return f"uniform:{int(self.a)},{int(self.b)}"
            case "normal":
                return f"normal:{self.a:g},{self.b:g}{bounds}"
            case _:
                return f"exponential:{self.a:g}{bounds}"


def parse_length(spec: Any, field: str) -> LengthDist:
    """Parse a spec (see module doc); `field` names the option or YAML key in error messages."""
    if isinstance(spec, bool):
        raise _error(field, spec)
    if isinstance(spec, int | float):
        return _checked(LengthDist("fixed", float(spec)), field, spec)
    if isinstance(spec, dict):
        return _from_mapping(spec, field)
    if not isinstance(spec, str):
        raise _error(field, spec)
    text = spec.strip()
    kind, _, rest = text.partition(":")
    if not rest:
        try:
            return _checked(LengthDist("fixed", float(int(text))), field, spec)
        except ValueError:
            raise _error(field, spec) from None
    try:
        nums = [float(x) for x in rest.split(",")]
    except ValueError:
        raise _error(field, spec) from None
    return _from_numbers(kind.strip().lower(), nums, field, spec)


def _from_numbers(kind: str, nums: list[float], field: str, spec: Any) -> LengthDist:
    arity = {"uniform": (2, 2), "normal": (2, 4), "exponential": (1, 3)}
    if kind not in arity or not arity[kind][0] <= len(nums) <= arity[kind][1]:
        raise _error(field, spec)
    if kind == "uniform":
        return _checked(LengthDist("uniform", nums[0], nums[1], low=1), field, spec)
    params = nums[:2] if kind == "normal" else nums[:1]
    bounds = nums[len(params) :]
    low = int(bounds[0]) if bounds else 1
    high = int(bounds[1]) if len(bounds) > 1 else None
    b = params[1] if kind == "normal" else 0.0
    return _checked(LengthDist(kind, params[0], b, low=low, high=high), field, spec)


def _from_mapping(spec: dict[str, Any], field: str) -> LengthDist:
    kind = str(spec.get("dist", "fixed")).lower()
    try:
        match kind:
            case "fixed":
                nums = [spec["value"]]
                return _checked(LengthDist("fixed", float(nums[0])), field, spec)
            case "uniform":
                return _from_numbers(kind, [float(spec["min"]), float(spec["max"])], field, spec)
            case "normal":
                nums = [float(spec["mean"]), float(spec["std"])]
            case "exponential":
                nums = [float(spec["mean"])]
            case _:
                raise _error(field, spec)
    except (KeyError, TypeError, ValueError):
        raise _error(field, spec) from None
    nums += [float(spec.get("min", 1))]
    if "max" in spec:
        nums.append(float(spec["max"]))
    return _from_numbers(kind, nums, field, spec)


def _checked(dist: LengthDist, field: str, spec: Any) -> LengthDist:
    positive = dist.a >= 1 and dist.low >= 1
    ordered = (dist.kind != "uniform" or dist.b >= dist.a) and (dist.high is None or dist.high >= dist.low)
    if not (positive and ordered and dist.b >= 0):
        raise LengthSpecError(
            f"{field}: {spec!r} is out of range: lengths must be >= 1 and ranges ordered (min <= max)"
        )
    return dist


def _error(field: str, spec: Any) -> LengthSpecError:
    return LengthSpecError(
        f"{field}: cannot read {spec!r} as a length distribution; use 256, uniform:128,512, "
        "normal:256,64[,min,max], exponential:256[,min,max], or a YAML mapping "
        "{dist: normal, mean: 256, std: 64, min: 16, max: 1024}"
    )
