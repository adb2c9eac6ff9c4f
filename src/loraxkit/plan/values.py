"""The planner's part of a `charts/lorax` values file: the keys it decides and the arithmetic behind them.

A generated file holds a comment block (between BEGIN and END, with the `loraxkit plan` command that made
it on its `# plan:` line) and the keys the planner owns. A deployment profile in `values/` holds the same
block and keys plus hand-written keys the planner does not decide (preloaded adapters, cache, resources,
probes, isolation). `check_profile` re-runs the profile's command and lists every difference;
`update_profile` rewrites the block and the owned keys in place, leaving every other line alone.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import yaml

from loraxkit.eks.instance_types import INSTANCE_TYPES
from loraxkit.plan.api import Result, max_concurrent_requests
from loraxkit.plan.engine import Plan
from loraxkit.sim.profiles import H100_BATCH

BEGIN = "# ---- loraxkit plan: generated; change the command below and run `loraxkit plan --update FILE` ----"
END = "# ---- end of loraxkit plan ----"
PLAN_PREFIX = "# plan: "
ACCELERATOR_LABEL = "k8s.amazonaws.com/accelerator"
GIB = 1024**3
MEASURED_BATCH = max(H100_BATCH)  # the largest batch the simulator profiles were measured at


def accelerator_label(result: Result) -> str | None:
    """The node label value of this GPU, from the instance table (None: no instance type carries it)."""
    if result.placement.instance:
        return result.placement.instance.accelerator_label
    model = result.placement.gpu.model
    return next((t.accelerator_label for t in INSTANCE_TYPES.values() if t.gpu_model == model), None)


def owned_values(result: Result) -> dict[str, Any]:
    """The values the planner decides, as a nested dict in the chart's shape."""
    inp, p = result.inputs, result.plan
    model: dict[str, Any] = {"id": result.model.model_id}
    if inp.weights.quantize:
        model["quantize"] = inp.weights.quantize
    else:
        model["dtype"] = inp.weights.dtype
    server: dict[str, Any] = {}
    if inp.shards > 1:
        server["sharded"] = True
    server |= {
        "maxInputLength": inp.limits.max_input,
        "maxTotalTokens": inp.limits.max_total,
        "maxBatchPrefillTokens": inp.limits.max_prefill,
        "maxConcurrentRequests": max_concurrent_requests(p),
        "cudaGraphs": inp.cuda_graphs,
    }
    out: dict[str, Any] = {"model": model, "gpu": {"count": inp.shards}, "server": server}
    if inp.adapters.count or result.request.adapter_memory_fraction is not None:
        out["adapters"] = {"memoryFraction": p.adapter_fraction}
        if inp.adapters.count:
            out["adapters"]["maxActive"] = max(1, min(p.adapters_fit, inp.adapters.count))
    label = accelerator_label(result)
    if label:
        out["nodeSelector"] = {ACCELERATOR_LABEL: label}
    return out


def _row(label: str, what: str, sign: str, amount: float) -> str:
    return f"#   {label:<9} {what:<66} {sign} {amount:6.2f} GiB"


def _total_line(p: Plan) -> str:
    if p.budget.fixed_total is not None:  # TGI <= 0.9.3: nothing inferred, the user's value is allocated
        engine = p.inputs.engine.name
        return f"# max-batch-total-tokens {p.max_batch_total_tokens:,}: allocated as given ({engine})."
    return f"# max-batch-total-tokens LoRAX would infer: {p.max_batch_total_tokens:,} (left to its warm-up)."


def comment_block(result: Result) -> list[str]:
    """The budget, limits, adapters, speed and cost, as comment lines (the arithmetic a reader can redo)."""
    inp, p, b, m = result.inputs, result.plan, result.plan.budget, result.model
    gpu, eng, lim = result.placement.gpu, inp.engine, inp.limits
    where = result.placement.instance.name if result.placement.instance else f"{inp.shards} x {gpu.model}"
    kv_kib = m.kv_bytes_per_token(inp.weights.dtype_bytes, inp.shards) // 1024
    left = max(b.free_after_warmup, 0) / GIB
    graphs = "CUDA graphs (--compile): ESTIMATE, LoRAX docs say 3-10 GB"
    kv_heads = m.kv_heads_per_shard(inp.shards)
    lines = [
        BEGIN,
        PLAN_PREFIX + result.request.command(),
        f"# {m.model_id} ({inp.weights.name}) on {inp.shards} x {gpu.model} ({where}), engine {eng.name}.",
        "# COMPUTED, NOT YET RUN ON THIS HARDWARE: LoRAX's warm-up accounting, warm-up peak estimated;",
        "# measure (the launcher logs 'Setting max batch total tokens to N') before relying on it.",
        f"# Memory per GPU ({gpu.torch_total_gib} GiB visible to PyTorch, {gpu.nvidia_smi_mib:,} MiB"
        " nvidia-smi):",
        _row("weights", _weights_what(result), "=", b.weights / GIB),
        _row("warm-up", f"peak of a {lim.max_prefill:,}-token prefill (ESTIMATE, docs/plan.md)", "~",
             b.warmup.peak_bytes / GIB),
        _row("graphs", graphs, "~", b.graphs / GIB) if b.graphs else _row("graphs", "none", "=", 0.0),
        _row("adapters", f"adapters.memoryFraction {p.adapter_fraction} x {gpu.torch_total_gib} GiB", "=",
             b.adapter_reservation / GIB),
        _row("margin", f"{1 - eng.wiggle_room:.0%} of the {left:.2f} GiB left (wiggle room"
             f" {eng.wiggle_room})", "=", b.margin / GIB),
        _row("KV cache", f"{b.num_blocks:,} blocks x {b.block_size} tokens x {kv_kib} KiB per token", "=",
             b.kv_bytes / GIB),
        f"# KV per token per GPU = {m.num_layers} layers x {kv_heads} KV heads x {m.head_dim} x 2 (K,V) x "
        f"{inp.weights.dtype_bytes} B ({inp.weights.kv_dtype_note}).",
        _total_line(p),
        f"# Requests whose KV fits at once: {p.requests_at_max:,} at the full {lim.max_total:,}-token"
        " context,",
        f"# {p.requests_at_typical:,} at a typical {lim.typical_input:,} in + {lim.typical_output:,} out.",
    ]  # fmt: skip
    if inp.adapters.count:
        lines.append(
            f"# Adapters: rank {inp.adapters.rank} on {len(inp.adapters.target_modules)} projections = "
            f"{p.adapter_bytes / 1e6:,.1f} MB each; the reservation holds {p.adapters_fit} "
            f"({inp.adapters.count} asked to be resident)."
        )
    lines += _speed_lines(result)
    how = "" if result.placement.gpu.sim_profile else " (no simulator profile for this GPU: its default)"
    lines += [f"# Try it without a GPU{how}:", f"#   {result.sim_command()}"]
    lines.append(END)
    return lines


def _weights_what(result: Result) -> str:
    m, w, shards = result.model, result.inputs.weights, result.inputs.shards
    per = f" / {shards} shards" if shards > 1 else ""
    if w.quantize is None:
        return f"{m.total_params / 1e9:.2f} B params x 2 B ({w.dtype}){per}"
    rest = (m.total_params - m.linear_params) / 1e9
    linear = f"{m.linear_params / 1e9:.2f} B x {w.linear_bytes_per_param:.3f} B ({w.name})"
    return f"{linear} + {rest:.2f} B x 2 B{per}"


def _speed_lines(result: Result) -> list[str]:
    s = result.speed
    if s is None:
        return [f"# Decode speed: {result.speed_note}."]
    cost = (
        f"; ${s.usd_per_hour:.3f}/h on demand = ${s.usd_per_million_output_tokens:.2f} per M output tokens"
        if s.usd_per_million_output_tokens is not None
        else ""
    )
    return [
        f"# Decode (simulator profile {s.profile}, scaled to this model): {s.step_ms:.1f} ms per step",
        f"# at batch {s.batch} with {s.distinct_adapters} distinct adapters = {s.tokens_per_s:,.0f} output"
        f" tokens/s{' (batch beyond the 256 measured: extrapolated)' if s.batch > MEASURED_BATCH else ''}",
        f"# {cost.removeprefix('; ')}; one stream alone: {s.single_stream_step_ms:.1f} ms per token.",
    ]


def values_text(result: Result) -> str:
    """A complete values file: the comment block and the owned keys."""
    body = yaml.safe_dump(owned_values(result), sort_keys=False, default_flow_style=False)
    return "\n".join(comment_block(result)) + "\n\n" + body


# --- profiles: check and update in place -------------------------------------------------------------


def plan_command(text: str, path: Path | str = "profile") -> list[str]:
    """The argv after `loraxkit plan` on the file's `# plan:` line."""
    for line in text.splitlines():
        if line.startswith(PLAN_PREFIX):
            argv = shlex.split(line.removeprefix(PLAN_PREFIX))
            if argv[:2] != ["loraxkit", "plan"]:
                break
            return argv[2:]
    raise ValueError(f"{path}: no '{PLAN_PREFIX}loraxkit plan ...' line; the planner cannot check it")


def _block(lines: list[str]) -> tuple[int, int] | None:
    try:
        start = lines.index(BEGIN)
        return start, lines.index(END, start)
    except ValueError:
        return None


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat |= _flatten(value, f"{prefix}{key}.")
        else:
            flat[prefix + key] = value
    return flat


def differences(result: Result, text: str) -> list[str]:
    """Every way the file disagrees with the planner's block and owned keys (empty: they agree)."""
    lines = text.splitlines()
    found = _block(lines)
    diffs: list[str] = []
    expected = comment_block(result)
    if found is None:
        diffs.append("no loraxkit plan block")
    elif lines[found[0] : found[1] + 1] != expected:
        for want, got in zip(expected, lines[found[0] : found[1] + 1], strict=False):
            if want != got:
                diffs.append(f"comment differs:\n    planner: {want}\n    file:    {got}")
                break
        else:
            diffs.append("comment block length differs")
    actual = _flatten(yaml.safe_load(text) or {})
    for key, want in _flatten(owned_values(result)).items():
        if actual.get(key) != want:
            diffs.append(f"{key}: planner {want!r}, file {actual.get(key)!r}")
    return diffs


def _yaml_scalar(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()


def _set_key(lines: list[str], path: list[str], value: Any) -> None:
    """Set `a.b: value` in a block-style YAML file without touching other lines (adds it when missing)."""
    indent, start, end = 0, 0, len(lines)
    for depth, key in enumerate(path):
        last = depth == len(path) - 1
        pad = " " * indent
        hit = next(
            (
                i for i in range(start, end)
                if lines[i].startswith(f"{pad}{key}:") and not lines[i].startswith(pad + " ")
            ),
            None,
        )  # fmt: skip
        if hit is None:
            text = f"{pad}{key}: {_yaml_scalar(value)}" if last else f"{pad}{key}:"
            lines.insert(start if depth else end, text)
            hit = start if depth else end
            if last:
                return
        if last:
            comment = lines[hit].split(" #", 1)[1] if " #" in lines[hit] else None
            lines[hit] = f"{pad}{key}: {_yaml_scalar(value)}" + (f"  #{comment}" if comment else "")
            return
        start, indent = hit + 1, indent + 2
        end = next(
            (i for i in range(start, len(lines)) if lines[i].strip() and not lines[i].startswith(" " * indent)
             and not lines[i].lstrip().startswith("#")),
            len(lines),
        )  # fmt: skip


def update_text(result: Result, text: str) -> str:
    lines = text.splitlines()
    block = comment_block(result)
    found = _block(lines)
    if found is None:
        lines[0:0] = [*block, "#"]
    else:
        lines[found[0] : found[1] + 1] = block
    for key, value in _flatten(owned_values(result)).items():
        _set_key(
            lines,
            key.split(".") if not key.startswith("nodeSelector.") else ["nodeSelector", key[13:]],
            value,
        )
    return "\n".join(lines) + "\n"


def summary(result: Result) -> dict[str, Any]:
    """The plan as plain data (`loraxkit plan --json`): every figure the comment block prints."""
    inp, p, b, s = result.inputs, result.plan, result.plan.budget, result.speed
    gib = lambda n: round(n / GIB, 3)  # noqa: E731
    return {
        "command": result.request.command(),
        "model": result.model.model_id,
        "gpu": result.placement.gpu.model,
        "shards": inp.shards,
        "engine": inp.engine.name,
        "budget_gib_per_gpu": {
            "total": gib(b.total),
            "weights": gib(b.weights),
            "warmup_estimate": gib(b.warmup.peak_bytes),
            "graphs_estimate": gib(b.graphs),
            "adapters": gib(b.adapter_reservation),
            "margin": gib(b.margin),
            "kv_cache": gib(b.kv_bytes),
        },
        "warmup_basis": b.warmup.basis,
        "max_batch_total_tokens": p.max_batch_total_tokens,
        "requests_at_max_context": p.requests_at_max,
        "requests_at_typical_context": p.requests_at_typical,
        "adapter_bytes": p.adapter_bytes,
        "adapter_memory_fraction": p.adapter_fraction,
        "adapters_that_fit": p.adapters_fit,
        "decode": None
        if s is None
        else {
            "profile": s.profile,
            "batch": s.batch,
            "step_ms": round(s.step_ms, 2),
            "tokens_per_s": round(s.tokens_per_s, 1),
            "single_stream_ms": round(s.single_stream_step_ms, 2),
            "usd_per_hour": s.usd_per_hour,
            "usd_per_million_output_tokens": s.usd_per_million_output_tokens,
        },
        "decode_note": result.speed_note,
        "values": owned_values(result),
        "sim_command": result.sim_command(),
        "warnings": result.warnings,
    }
