"""Deterministic JSON values valid against a JSON schema: what a grammar-constrained LoRAX answer holds
(tool calls, `response_format`). LoRAX constrains the model with Outlines so that the output matches the
schema; the simulator has no model, so it draws a valid value from a seeded RNG instead.

Covered: type (or a list of types), const, enum, properties/required, items/minItems/maxItems, prefixItems,
string minLength/maxLength/format (date, date-time, time, email, uri, uuid), number/integer
minimum/maximum/exclusive bounds/multipleOf, anyOf/oneOf/allOf (first branch), local $ref (#/$defs/…,
#/definitions/…), additionalProperties (a schema or true: a few extra keys). Not covered: `pattern`,
`not`, `if/then/else`, `dependentSchemas` (the value ignores them; ASCII words only).
"""

from __future__ import annotations

import math
import random
from typing import Any

# Words of the values: plain ASCII, so the JSON text re-tokenizes to the same pieces and never needs
# byte-fallback tokens.
WORDS = (
    "alpha", "bravo", "river", "stone", "cloud", "green", "maple", "orbit", "pixel", "quartz",
    "delta", "ember", "fable", "harbor", "island", "jungle", "lemon", "meadow", "north", "ocean",
)  # fmt: skip
_FORMATS = {
    "date": "2024-05-17",
    "date-time": "2024-05-17T09:30:00Z",
    "time": "09:30:00",
    "email": "user@example.com",
    "uri": "https://example.com/item",
    "uuid": "0b9f4a52-7f1c-4c1e-9a43-6d2f1a0c5e11",
}
MAX_DEPTH = 8


def sample(schema: Any, rng: random.Random, root: Any = None, depth: int = 0) -> Any:
    """A value valid against `schema` (JSON-schema dict or bool), drawn from `rng`."""
    root = schema if root is None else root
    if schema is True or not isinstance(schema, dict):
        return _word(rng)
    if "$ref" in schema:
        return sample(_resolve(root, schema["$ref"]), rng, root, depth + 1)
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return rng.choice(schema["enum"])
    for key in ("anyOf", "oneOf", "allOf"):
        if isinstance(schema.get(key), list) and schema[key]:
            merged = {k: v for k, v in schema.items() if k != key}
            return sample({**merged, **schema[key][0]}, rng, root, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kinds = [k for k in kind if k != "null"] or ["null"]
        kind = rng.choice(kinds) if depth < MAX_DEPTH - 1 else kinds[-1]
    if kind is None:
        kind = "object" if "properties" in schema else "array" if "items" in schema else "string"
    return _BY_TYPE.get(kind, _string)(schema, rng, root, depth)


def _resolve(root: Any, ref: str) -> Any:
    if not ref.startswith("#/"):
        return {}
    node = root
    for part in ref[2:].split("/"):
        if not isinstance(node, dict) or part not in node:
            return {}
        node = node[part]
    return node


def _word(rng: random.Random) -> str:
    return rng.choice(WORDS)


def _object(schema: dict[str, Any], rng: random.Random, root: Any, depth: int) -> dict[str, Any]:
    props = schema.get("properties") if isinstance(schema.get("properties"), dict) else {}
    required = set(schema.get("required") or [])
    out: dict[str, Any] = {}
    for name, sub in props.items():
        if depth < MAX_DEPTH or name in required:
            out[name] = sample(sub, rng, root, depth + 1)
    for name in required:  # required names without a declared property
        if name not in out:
            out[name] = _word(rng)
    extra = schema.get("additionalProperties")
    if not props and extra not in (None, False) and depth < MAX_DEPTH:
        for i in range(rng.randint(1, 3)):
            out[f"{_word(rng)}_{i}"] = sample(extra if isinstance(extra, dict) else {}, rng, root, depth + 1)
    return out


def _array(schema: dict[str, Any], rng: random.Random, root: Any, depth: int) -> list[Any]:
    prefix = schema.get("prefixItems") if isinstance(schema.get("prefixItems"), list) else []
    lo = int(schema.get("minItems", 1 if depth < MAX_DEPTH else 0))
    hi = int(schema.get("maxItems", max(lo, 3)))
    count = max(len(prefix), rng.randint(lo, max(lo, min(hi, lo + 2))))
    count = min(count, hi) if "maxItems" in schema else count
    items = schema.get("items", {})
    out = [sample(prefix[i] if i < len(prefix) else items, rng, root, depth + 1) for i in range(count)]
    if schema.get("uniqueItems"):
        seen: list[Any] = []
        for v in out:
            if v not in seen:
                seen.append(v)
        out = seen
    return out


def _string(schema: dict[str, Any], rng: random.Random, root: Any, depth: int) -> str:
    fmt = schema.get("format")
    text = _FORMATS[fmt] if fmt in _FORMATS else " ".join(_word(rng) for _ in range(rng.randint(1, 3)))
    lo = int(schema.get("minLength", 0))
    hi = schema.get("maxLength")
    while len(text) < lo:
        text += _word(rng)
    if hi is not None:
        text = text[: int(hi)]
    return text


def _number(schema: dict[str, Any], rng: random.Random, root: Any, depth: int) -> float | int:
    integer = schema.get("type") == "integer" or (
        isinstance(schema.get("type"), list) and "integer" in schema["type"]
    )
    lo, hi = _bounds(schema, integer)
    step = schema.get("multipleOf")
    if isinstance(step, (int, float)) and step > 0:
        first, last = math.ceil(lo / step), math.floor(hi / step)
        value = step * rng.randint(first, max(first, last))
        return int(value) if integer else value
    if integer:
        return rng.randint(math.ceil(lo), math.floor(hi))
    return round(rng.uniform(lo, hi), 2) if hi - lo > 0.02 else lo


def _bounds(schema: dict[str, Any], integer: bool) -> tuple[float, float]:
    eps = 1 if integer else 0.01
    lo = schema.get("minimum", -math.inf)
    hi = schema.get("maximum", math.inf)
    if isinstance(schema.get("exclusiveMinimum"), (int, float)):
        lo = max(lo, schema["exclusiveMinimum"] + eps)
    if isinstance(schema.get("exclusiveMaximum"), (int, float)):
        hi = min(hi, schema["exclusiveMaximum"] - eps)
    if lo == -math.inf and hi == math.inf:
        lo, hi = 0, 100
    elif lo == -math.inf:
        lo = hi - 100
    elif hi == math.inf:
        hi = lo + 100
    return lo, max(lo, hi)


def _boolean(schema: dict[str, Any], rng: random.Random, root: Any, depth: int) -> bool:
    return rng.random() < 0.5


def _null(schema: dict[str, Any], rng: random.Random, root: Any, depth: int) -> None:
    return None


_BY_TYPE = {
    "object": _object,
    "array": _array,
    "string": _string,
    "number": _number,
    "integer": _number,
    "boolean": _boolean,
    "null": _null,
}
