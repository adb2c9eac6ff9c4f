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
        seen = f"warm-up OOM at {case.required_total:,} tokens" if case.required_total else "warm-up OOM"
        verdict = "agrees: does not fit" if full.agrees else f"MISSES: plans {full.predicted:,} tokens"
        cells = [seen, verdict, "", ""]
    else:
        planned = f"{full.predicted:,}" if full.predicted else full.verdict
        loo_cell = _pct(loo.error) if case in published.CALIBRATION else "not fitted"
        cells = [f"{case.observed:,}", planned, _pct(full.error), loo_cell]
    name = f"[{case.key}]({case.url})"
    return " | ".join(["", name, case.model.model_id, where, limits, f"{case.version}, `{case.engine.name}`",
                       *cells, case.assumed or "-", ""]).strip()  # fmt: skip


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
    return "\n".join(head + [_row(c) for c in published.CASES]) + "\n" + foot


if __name__ == "__main__":
    print(published_table())
