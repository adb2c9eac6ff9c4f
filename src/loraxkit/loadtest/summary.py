"""The table printed on the terminal when a run ends: per adapter, steady state beside the whole run."""

from __future__ import annotations

from typing import Any

from loraxkit.loadtest.slo import NO_RESULT_EXIT_CODE, SLO_EXIT_CODE, GateResult, exit_code

COLUMNS = (
    ("TTFT", "ttft_ms"),
    ("ITL", "itl_ms"),
    ("TPOT", "tpot_ms"),
    ("E2E", "e2e_ms"),
)
MAX_ROWS = 24  # adapters shown (the busiest); the report has all of them


def _ms(dist: dict[str, Any], key: str) -> str:
    value = dist.get(key)
    return "-" if value is None else f"{value:.1f}" if value >= 100 else f"{value:.2f}"


def _row(name: str, window: str, s: dict[str, Any]) -> list[str]:
    cells = [name, window, str(s["requests"]), str(s["failed"])]
    for _, key in COLUMNS:
        cells += [_ms(s[key], "p50"), _ms(s[key], "p99")]
    cells.append(f"{s['output_tokens_per_s']:.0f}")
    return cells


HEADER = [
    "adapter",
    "window",
    "requests",
    "failed",
    *(f"{label} {p}" for label, _ in COLUMNS for p in ("p50", "p99")),
    "tok/s",
]


def summary_rows(report: dict[str, Any]) -> list[list[str]]:
    whole = {"ALL": report["overall"], **report["by_adapter"]}
    steady = report.get("steady")
    steady_groups = {"ALL": steady["overall"], **steady["by_adapter"]} if steady else {}
    names = sorted(whole, key=lambda n: (n != "ALL", -whole[n]["requests"], n))[: MAX_ROWS + 1]
    rows = []
    for name in names:
        if name in steady_groups:
            rows.append(_row(name, "steady", steady_groups[name]))
        rows.append(_row(name if name not in steady_groups else "", "whole", whole[name]))
    return rows


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    fmt = [f"{c:<{w}}" if i < 2 else f"{c:>{w}}" for i, (c, w) in enumerate(zip(header, widths, strict=True))]
    lines = ["  ".join(fmt)]
    for r in rows:
        cells = zip(r, widths, strict=True)
        lines.append("  ".join(f"{c:<{w}}" if i < 2 else f"{c:>{w}}" for i, (c, w) in enumerate(cells)))
    return "\n".join(lines)


def terminal_summary(report: dict[str, Any], gates: list[GateResult]) -> str:
    """Everything a user needs at the end of a run, in plain text (ms unless said)."""
    overall = report["overall"]
    lines = ["", "[loraxkit] summary (latency in ms; steady state beside the whole run)"]
    steady = report.get("steady")
    if steady:
        left = steady["left_out"]
        lines.append(
            f"steady state: {steady['overall']['requests']} of {overall['requests']} requests; left out: "
            f"{left['before_warmup_end']} sent before the warm-up ended, {left['opened_a_connection']} that "
            f"opened a connection, {left['after_cooldown_start']} in the cool-down"
        )
    lines.append(_table(HEADER, summary_rows(report)))
    errors = overall["errors"]["by_error_type"]
    if errors:
        lines.append("failed requests (whole run): " + ", ".join(f"{k} {v}" for k, v in errors.items()))
    if overall.get("cut_at_stop"):
        lines.append(
            f"{overall['cut_at_stop']} request(s) were still in flight when the run stopped "
            "(cancelled_at_stop; not in the error rate; --stop-timeout lets them finish)"
        )
    for check in report.get("self_check", {}).get("verdicts", []):
        lines.append(f"self-check: {check}")
    for gate in gates:
        lines.append(f"gate {gate.describe()}")
    code = exit_code(report, gates)
    if code == NO_RESULT_EXIT_CODE:
        lines.append(f"FAILED (exit {code}): no request completed, the run measured nothing")
    elif code == SLO_EXIT_CODE:
        lines.append(f"FAILED (exit {code}): a gate was breached (above)")
    else:
        lines.append(f"passed (exit 0): error rate {overall['error_rate']:.2%}")
    return "\n".join(lines)
