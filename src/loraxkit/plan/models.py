"""Model shapes the planner needs: from a local Hugging Face `config.json`, or from a built-in table.

The table's facts are the `config.json` fields of each model as published on the Hub
(https://huggingface.co/<id>/blob/main/config.json) and the parameter count its model card shows (the Hub's
safetensors total). They were not re-fetched on this machine (it cannot reach huggingface.co): check the
config before you rely on a row. `tests/plan` recomputes each parameter count from the shapes, so a typo in
a shape fails a test.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

# The projections LoRAX can put a LoRA on for Llama/Mistral/Qwen2-style models.
ALL_LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class ModelConfig:
    model_id: str
    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    intermediate_size: int
    vocab_size: int
    max_position_embeddings: int
    sliding_window: int | None = None
    tie_word_embeddings: bool = False
    qkv_bias: bool = False
    torch_dtype: str = "bfloat16"
    published_params: float | None = None  # model card figure, for the cross-check
    source: str = ""

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    def linear_shapes(self) -> dict[str, tuple[int, int]]:
        """(in, out) of each projection of one decoder layer."""
        h, hd = self.hidden_size, self.head_dim
        return {
            "q_proj": (h, self.num_heads * hd),
            "k_proj": (h, self.num_kv_heads * hd),
            "v_proj": (h, self.num_kv_heads * hd),
            "o_proj": (self.num_heads * hd, h),
            "gate_proj": (h, self.intermediate_size),
            "up_proj": (h, self.intermediate_size),
            "down_proj": (self.intermediate_size, h),
        }

    @property
    def linear_params(self) -> int:
        """Parameters of every quantizable projection (all layers), biases excluded."""
        return self.num_layers * sum(i * o for i, o in self.linear_shapes().values())

    @property
    def embedding_params(self) -> int:
        """Token embedding plus the LM head (counted once when tied); both stay 16-bit when quantized."""
        per = self.vocab_size * self.hidden_size
        return per if self.tie_word_embeddings else 2 * per

    @property
    def other_params(self) -> int:
        """Norms (two per layer plus the final one) and q/k/v biases: small, always 16-bit."""
        norms = (2 * self.num_layers + 1) * self.hidden_size
        bias = (
            self.num_layers * (self.num_heads + 2 * self.num_kv_heads) * self.head_dim if self.qkv_bias else 0
        )
        return norms + bias

    @property
    def total_params(self) -> int:
        return self.linear_params + self.embedding_params + self.other_params

    def kv_bytes_per_token(self, dtype_bytes: int, world_size: int = 1) -> int:
        """KV cache per token per GPU: layers x KV heads per shard x head dim x 2 (K and V) x dtype bytes."""
        return self.num_layers * self.kv_heads_per_shard(world_size) * self.head_dim * 2 * dtype_bytes

    def kv_heads_per_shard(self, world_size: int) -> int:
        # LoRAX v0.12.1 flash_causal_lm.py l.1144: kv_heads // world_size when kv_heads > 1.
        return self.num_kv_heads // world_size if self.num_kv_heads > 1 else self.num_kv_heads

    def position_limit(self) -> int:
        """Longest context the model attends to correctly: its position limit, or its sliding window."""
        return min(self.max_position_embeddings, self.sliding_window or self.max_position_embeddings)


def _hub(model_id: str) -> str:
    return f"https://huggingface.co/{model_id}/blob/main/config.json"


def _row(model_id: str, params_b: float, card: str, **shape: Any) -> ModelConfig:
    return ModelConfig(
        model_id=model_id,
        published_params=params_b * 1e9,
        source=f"{_hub(model_id)} (shapes); {card} (parameter count)",
        **shape,
    )


_MISTRAL_V01 = dict(
    hidden_size=4096, num_layers=32, num_heads=32, num_kv_heads=8, intermediate_size=14336,
    vocab_size=32000, max_position_embeddings=32768, sliding_window=4096,
)  # fmt: skip
_LLAMA31_8B = dict(
    hidden_size=4096, num_layers=32, num_heads=32, num_kv_heads=8, intermediate_size=14336,
    vocab_size=128256, max_position_embeddings=131072,
)  # fmt: skip
_LLAMA31_70B = dict(
    hidden_size=8192, num_layers=80, num_heads=64, num_kv_heads=8, intermediate_size=28672,
    vocab_size=128256, max_position_embeddings=131072,
)  # fmt: skip
_LLAMA2_7B = dict(
    hidden_size=4096, num_layers=32, num_heads=32, num_kv_heads=32, intermediate_size=11008,
    vocab_size=32000, max_position_embeddings=4096, torch_dtype="float16",
)  # fmt: skip
_LLAMA2_13B = dict(
    hidden_size=5120, num_layers=40, num_heads=40, num_kv_heads=40, intermediate_size=13824,
    vocab_size=32000, max_position_embeddings=4096, torch_dtype="float16",
)  # fmt: skip
_LLAMA2_70B = dict(
    hidden_size=8192, num_layers=80, num_heads=64, num_kv_heads=8, intermediate_size=28672,
    vocab_size=32000, max_position_embeddings=4096, torch_dtype="float16",
)  # fmt: skip
_QWEN25_7B = dict(
    hidden_size=3584, num_layers=28, num_heads=28, num_kv_heads=4, intermediate_size=18944,
    vocab_size=152064, max_position_embeddings=32768, qkv_bias=True,
)  # fmt: skip
_QWEN25_14B = dict(
    hidden_size=5120, num_layers=48, num_heads=40, num_kv_heads=8, intermediate_size=13824,
    vocab_size=152064, max_position_embeddings=32768, qkv_bias=True,
)  # fmt: skip

_CARD = "model card, safetensors total"
BUILTIN: dict[str, ModelConfig] = {
    m.model_id: m
    for m in (
        _row("mistralai/Mistral-7B-v0.1", 7.24, _CARD, **_MISTRAL_V01),
        _row("mistralai/Mistral-7B-Instruct-v0.1", 7.24, _CARD, **_MISTRAL_V01),
        _row(
            "mistralai/Mistral-7B-Instruct-v0.2",
            7.24,
            _CARD,
            **{**_MISTRAL_V01, "sliding_window": None},
        ),
        # v0.3: the v0.2 shapes with a 32,768-token vocabulary (config.json vocab_size 32768, sliding_window
        # null); model card: 7.25B parameters.
        _row(
            "mistralai/Mistral-7B-Instruct-v0.3",
            7.25,
            _CARD,
            **{**_MISTRAL_V01, "sliding_window": None, "vocab_size": 32768},
        ),
        _row("meta-llama/Llama-3.1-8B", 8.03, _CARD, **_LLAMA31_8B),
        _row("meta-llama/Llama-3.1-8B-Instruct", 8.03, _CARD, **_LLAMA31_8B),
        _row("meta-llama/Llama-3.1-70B-Instruct", 70.6, _CARD, **_LLAMA31_70B),
        _row("meta-llama/Llama-2-7b-hf", 6.74, _CARD, **_LLAMA2_7B),
        _row("meta-llama/Llama-2-7b-chat-hf", 6.74, _CARD, **_LLAMA2_7B),
        _row("meta-llama/Llama-2-13b-chat-hf", 13.0, _CARD, **_LLAMA2_13B),
        _row("meta-llama/Llama-2-70b-chat-hf", 69.0, _CARD, **_LLAMA2_70B),
        _row("Qwen/Qwen2.5-7B-Instruct", 7.62, _CARD, **_QWEN25_7B),
        _row("Qwen/Qwen2.5-14B-Instruct", 14.8, _CARD, **_QWEN25_14B),
    )
}

# Quantized repositories whose config is their base model's (the quantization is a planner input).
ALIASES = {
    "TheBloke/Mistral-7B-Instruct-v0.1-GPTQ": "mistralai/Mistral-7B-Instruct-v0.1",
    "TheBloke/Mistral-7B-Instruct-v0.1-AWQ": "mistralai/Mistral-7B-Instruct-v0.1",
    "TheBloke/Llama-2-70B-chat-GPTQ": "meta-llama/Llama-2-70b-chat-hf",
    "meta-llama/Meta-Llama-3.1-8B-Instruct": "meta-llama/Llama-3.1-8B-Instruct",
    "meta-llama/Meta-Llama-3.1-70B-Instruct": "meta-llama/Llama-3.1-70B-Instruct",
}


class UnknownModel(ValueError):
    pass


def from_config_json(path: Path, model_id: str | None = None) -> ModelConfig:
    """Read the fields the planner needs from a Hugging Face `config.json` (Llama/Mistral/Qwen2 style)."""
    raw = json.loads(Path(path).read_text())
    try:
        hidden = int(raw["hidden_size"])
        heads = int(raw["num_attention_heads"])
        return ModelConfig(
            model_id=model_id or str(raw.get("_name_or_path") or Path(path).parent.name),
            hidden_size=hidden,
            num_layers=int(raw["num_hidden_layers"]),
            num_heads=heads,
            num_kv_heads=int(raw.get("num_key_value_heads") or heads),
            intermediate_size=int(raw["intermediate_size"]),
            vocab_size=int(raw["vocab_size"]),
            max_position_embeddings=int(raw["max_position_embeddings"]),
            sliding_window=_sliding_window(raw),
            tie_word_embeddings=bool(raw.get("tie_word_embeddings", False)),
            qkv_bias=bool(raw.get("attention_bias", False)) or raw.get("model_type") == "qwen2",
            torch_dtype=str(raw.get("torch_dtype") or "float16"),
            source=str(path),
        )
    except KeyError as missing:
        raise UnknownModel(
            f"{path}: config.json has no {missing} field; the planner reads Llama/Mistral/Qwen2-style "
            "configs (hidden_size, num_hidden_layers, num_attention_heads, intermediate_size, vocab_size, "
            "max_position_embeddings)"
        ) from None


def _sliding_window(raw: dict[str, Any]) -> int | None:
    window = raw.get("sliding_window")
    if window is None or raw.get("use_sliding_window") is False:
        return None
    return int(window)


def resolve(model: str) -> ModelConfig:
    """A built-in model id, an alias of one, or a path to a `config.json` (or a directory holding one)."""
    path = Path(model)
    if path.is_dir():
        path = path / "config.json"
    if path.suffix == ".json" and path.is_file():
        return from_config_json(path)
    base = ALIASES.get(model, model)
    if base in BUILTIN:
        found = BUILTIN[base]
        return found if base == model else replace(found, model_id=model)
    known = ", ".join(sorted([*BUILTIN, *ALIASES]))
    raise UnknownModel(
        f"--model {model!r} is neither a config.json path nor a built-in model ({known}); "
        "download the model's config.json and pass its path"
    )
