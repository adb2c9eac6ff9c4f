"""SLO gates: thresholds on exact percentiles and the error rate that turn a run into a non-zero exit code."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Gate option name -> (summary metric, percentile key). Values are milliseconds.
LATENCY_GATES: dict[str, tuple[str, str]] = {
    f"slo_{metric}_{p}": (f"{metric}_ms", p)
    for metric in ("ttft", "itl", "tpot", "e2e")
    for p in ("p50", "p90", "p95", "p99")
}
SLO_EXIT_CODE = 3
NO_RESULT_EXIT_CODE = 4  # no request completed: the run measured nothing
# The error-rate ceiling every run has unless the user sets another (--max-error-rate 1 accepts anything).
DEFAULT_MAX_ERROR_RATE = 0.01


@dataclass(frozen=True)
class GateResult:
    gate: str
    scope: str
    limit: float
    value: float | None
    passed: bool

    def describe(self) -> str:
        shown = "no samples" if self.value is None else f"{self.value:.3f}"
        verdict = "ok" if self.passed else "BREACHED"
        return f"{verdict}: {self.gate} [{self.scope}] = {shown} (limit {self.limit:g})"


def configured_gates(options: Any) -> dict[str, float]:
    """The gates set on the command line / config (option name -> limit)."""
    gates = {name: getattr(options, name, None) for name in LATENCY_GATES}
    gates["max_error_rate"] = getattr(options, "max_error_rate", None)
    return {k: float(v) for k, v in gates.items() if v is not None}


def evaluate(gates: dict[str, float], summary: dict[str, Any], scope: str = "overall") -> list[GateResult]:
    """Check one summary (see metrics.summarize) against every gate; missing samples fail a latency gate."""
    results = []
    for name, limit in gates.items():
        if name == "max_error_rate":
            value: float | None = float(summary.get("error_rate", 0.0))
            results.append(GateResult("max_error_rate", scope, limit, value, value <= limit))
            continue
        metric, key = LATENCY_GATES[name]
        dist = summary.get(metric, {})
        value = dist.get(key)
        results.append(
            GateResult(name.replace("_", "-"), scope, limit, value, value is not None and value <= limit)
        )
    return results


def evaluate_run(
    gates: dict[str, float],
    overall: dict[str, Any],
    per_adapter: dict[str, dict[str, Any]] | None = None,
    whole: dict[str, Any] | None = None,
    scope: str = "overall",
) -> list[GateResult]:
    """Gates on `overall` (the steady state by default), plus every adapter's when `per_adapter` is given.

    The error-rate gate judges `whole` (the whole run) when given: a failure is never windowed away.
    """
    latency = {k: v for k, v in gates.items() if k != "max_error_rate"}
    results = []
    if "max_error_rate" in gates:
        results.extend(evaluate({"max_error_rate": gates["max_error_rate"]}, whole or overall, "whole run"))
    results.extend(evaluate(latency, overall, scope))
    for adapter, summary in (per_adapter or {}).items():
        named = f"adapter {adapter}" + ("" if scope == "overall" else f" ({scope})")
        results.extend(evaluate(latency, summary, scope=named))
    return results


def exit_code(report: dict[str, Any], results: list[GateResult]) -> int:
    """0 only when some request completed and every gate (the default error-rate ceiling included) passed."""
    if not report["overall"]["succeeded"]:
        return NO_RESULT_EXIT_CODE
    return 0 if all(r.passed for r in results) else SLO_EXIT_CODE
