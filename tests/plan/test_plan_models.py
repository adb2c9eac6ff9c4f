"""The model table's shapes add up to each model's published parameter count; config.json is read right."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loraxkit.plan.models import BUILTIN, UnknownModel, from_config_json, resolve


@pytest.mark.parametrize("model_id", sorted(BUILTIN))
def test_shapes_add_up_to_the_published_parameter_count(model_id: str) -> None:
    """A wrong hidden size, layer count, head count, FFN width or vocabulary moves the total by >0.5%."""
    model = BUILTIN[model_id]
    assert model.published_params
    assert abs(model.total_params - model.published_params) / model.published_params < 0.005, (
        f"{model_id}: shapes give {model.total_params / 1e9:.3f} B, the card says "
        f"{model.published_params / 1e9:.2f} B"
    )


def _config(tmp_path: Path, **fields: object) -> Path:
    base = {
        "model_type": "llama", "hidden_size": 2048, "num_hidden_layers": 4, "num_attention_heads": 16,
        "num_key_value_heads": 4, "intermediate_size": 5632, "vocab_size": 32000,
        "max_position_embeddings": 8192, "torch_dtype": "bfloat16",
    }  # fmt: skip
    path = tmp_path / "config.json"
    path.write_text(json.dumps(base | fields))
    return path


def test_config_json_gives_the_shapes_and_the_kv_size(tmp_path: Path) -> None:
    model = resolve(str(_config(tmp_path)))
    assert (model.hidden_size, model.num_layers, model.num_kv_heads, model.head_dim) == (2048, 4, 4, 128)
    # 4 layers x 4 KV heads x 128 x 2 (K and V) x 2 bytes
    assert model.kv_bytes_per_token(2) == 4 * 4 * 128 * 2 * 2
    assert model.kv_bytes_per_token(2, world_size=2) == 4 * 2 * 128 * 2 * 2
    assert resolve(str(tmp_path)).hidden_size == 2048  # a directory holding config.json works too


def test_sliding_window_counts_only_when_used(tmp_path: Path) -> None:
    assert from_config_json(_config(tmp_path, sliding_window=4096)).position_limit() == 4096
    qwen = _config(tmp_path, model_type="qwen2", sliding_window=4096, use_sliding_window=False)
    assert from_config_json(qwen).position_limit() == 8192
    assert from_config_json(qwen).qkv_bias


def test_missing_field_and_unknown_model_name_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"hidden_size": 1}))
    with pytest.raises(UnknownModel, match="num_hidden_layers"):
        from_config_json(path)
    with pytest.raises(UnknownModel, match=r"--model 'nobody/none'.*config\.json"):
        resolve("nobody/none")


def test_mistral_v01_has_its_sliding_window_and_v02_has_none() -> None:
    assert BUILTIN["mistralai/Mistral-7B-Instruct-v0.1"].position_limit() == 4096
    assert BUILTIN["mistralai/Mistral-7B-Instruct-v0.2"].position_limit() == 32768
