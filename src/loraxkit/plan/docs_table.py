"""The docs table of the planner against published figures: `python -m loraxkit.plan.docs_table`."""

from __future__ import annotations

from loraxkit.plan import activation, published


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x:+.1%}"


def _row(case: published.Case) -> str:
    full, loo = published.run(case), published.leave_one_out(case)
    lim = case.limits
    where = f"{case.shards} x {case.gpu}"
    limits = f"{lim.max_input:,} / {lim.max_total:,} / {lim.max_prefill:,}"
    if case.observed == published.OOM:
        cells = [f"warm-up error '{case.message}'", _oom_verdict(case, full), "", ""]
    else:
        planned = f"{full.predicted:,}" if full.predicted else full.verdict
        loo_cell = _pct(loo.error) if case in published.CALIBRATION else "not fitted"
        cells = [f"{case.observed:,}", planned, _pct(full.error), loo_cell]
    name = f"[{case.key}]({case.url})"
    return " | ".join(["", name, case.model.model_id, where, limits, f"{case.version}, `{case.engine.name}`",
                       *cells, case.assumed or "-", ""]).strip()  # fmt: skip


def _oom_verdict(case: published.Case, full: published.Outcome) -> str:
    if case.proven_oom and full.agrees:
        return f"agrees: does not fit (refuses {', '.join(full.refused)})"
    if case.proven_oom:
        return f"MISSES: plans {full.predicted:,} tokens"
    if full.predicted is None:
        return "does not fit (not scored: not a proven OOM)"
    left = published.budget(case).free_after_warmup / 1024**3
    return f"fits, {left:.1f} GiB/GPU left (not scored: not a proven OOM)"


def _errors() -> list[str]:
    """What the engine's source says about each reported warm-up error."""
    lines = ["", "Warm-up errors, read against the source of the version that raised them:", ""]
    for case in published.CASES:
        if case.observed == published.OOM:
            kind = "an out-of-memory error" if case.proven_oom else "NOT shown to be out of memory"
            lines.append(f"- `{case.key}` ({kind}): {case.evidence}.")
    return lines


def published_table() -> str:
    head = [
        "| case (source) | model | GPUs | input / total / prefill | version, constants | published "
        "| planner | error | leave-one-out | assumed |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    copies, fixed = published.fit_activation()
    foot = (
        f"\nFitted on {len(published.CALIBRATION)} cases: {copies:.2f} hidden-state copies per prefill token,"
        " "
        f"{fixed / 1024**2:.0f} MiB fixed (activation.py holds {activation.HIDDEN_COPIES}, "
        f"{activation.FIXED_BYTES // 1024**2} MiB)."
    )
    return "\n".join(head + [_row(c) for c in published.CASES] + _errors()) + "\n" + foot


if __name__ == "__main__":
    print(published_table())
