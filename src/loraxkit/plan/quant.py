"""Weight formats: bytes per parameter of the quantized projections, and the dtype LoRAX budgets KV in.

Embeddings, the LM head, norms and biases stay 16-bit under every quantization LoRAX supports (its
quantized layers replace only the linear projections). The per-group overheads are each format's storage:
GPTQ/AWQ keep one fp16 scale and one packed zero point per group per output column (GPTQ also an int32
g_idx per input row, negligible here); EETQ is int8 per channel with one fp16 scale per output column;
FP8 is one byte with a per-tensor scale; HQQ keeps an fp16 scale and zero per group of 64.
"""

from __future__ import annotations

from dataclasses import dataclass

# LoRAX's --quantize values (launcher/src/main.rs Quantization enum at v0.12.1) the planner models.
QUANTIZE_CHOICES = ("gptq", "awq", "eetq", "fp8", "fp8-kv", "hqq-4bit", "hqq-3bit", "hqq-2bit")
DTYPE_CHOICES = ("bfloat16", "float16")
# lorax#722: reported broken in 0.12.x; the planner still sizes them but says so.
REPORTED_BROKEN = {"awq": "lorax#722 reports AWQ failing ('too many values to unpack') in 0.12"}


@dataclass(frozen=True)
class WeightFormat:
    name: str  # what goes to --quantize, or the dtype
    quantize: str | None
    dtype: str  # what the model runs in: LoRAX's self.dtype, which also sizes each KV block
    linear_bytes_per_param: float
    basis: str

    @property
    def dtype_bytes(self) -> int:
        return 2  # bfloat16 and float16; quantized models run in float16

    @property
    def kv_dtype_note(self) -> str:
        if self.quantize == "fp8-kv":
            return "fp8 KV cache, but LoRAX 0.12.1 budgets its blocks at 2 bytes (flash_causal_lm.py l.1347)"
        return f"{self.dtype}, 2 bytes"


def weight_format(
    dtype: str | None, quantize: str | None, bits: int = 4, group_size: int = 128
) -> WeightFormat:
    """The format for `--dtype`/`--quantize` (with GPTQ/AWQ `bits` and `group_size`)."""
    if quantize is None:
        chosen = dtype or "bfloat16"
        if chosen not in DTYPE_CHOICES:
            raise ValueError(f"--dtype {chosen!r}: choose one of {', '.join(DTYPE_CHOICES)}")
        return WeightFormat(chosen, None, chosen, 2.0, f"{chosen}: 2 bytes per parameter")
    if dtype is not None:
        raise ValueError(
            f"--dtype {dtype} with --quantize {quantize}: LoRAX runs quantized models in fp16; drop --dtype"
        )
    if quantize in ("gptq", "awq"):
        return _grouped(quantize, bits, group_size)
    if quantize == "eetq":
        return WeightFormat(
            "eetq", "eetq", "float16", 1.0, "EETQ int8 per channel: 1 B (+ fp16 scale/column)"
        )
    if quantize in ("fp8", "fp8-kv"):
        return WeightFormat(quantize, quantize, "float16", 1.0, "FP8 e4m3: 1 byte (+ per-tensor scale)")
    if quantize.startswith("hqq-"):
        hqq_bits = int(quantize.split("-")[1].removesuffix("bit"))
        per = hqq_bits / 8 + 4 / 64
        return WeightFormat(
            quantize, quantize, "float16", per,
            f"HQQ {hqq_bits}-bit, group 64: {hqq_bits}/8 B + fp16 scale and zero per 64 = {per:.3f} B",
        )  # fmt: skip
    raise ValueError(f"--quantize {quantize!r}: choose one of {', '.join(QUANTIZE_CHOICES)}")


def _grouped(quantize: str, bits: int, group_size: int) -> WeightFormat:
    if bits not in (2, 3, 4, 8):
        raise ValueError(f"--bits {bits}: GPTQ/AWQ checkpoints use 2, 3, 4 or 8 bits")
    if group_size < 1 and group_size != -1:
        raise ValueError(f"--group-size {group_size}: a positive group size, or -1 for one group per column")
    groups = 0.0 if group_size == -1 else 1 / group_size
    per = bits / 8 + groups * (2 + bits / 8)
    label = "per column" if group_size == -1 else f"group {group_size}"
    return WeightFormat(
        quantize, quantize, "float16", per,
        f"{quantize.upper()} {bits}-bit, {label}: {bits}/8 B + fp16 scale and packed zero per group"
        f" = {per:.4f} B",
    )  # fmt: skip
