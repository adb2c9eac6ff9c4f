"""Write the run report: `report.json` for machines, `report.md` + `report.html` (with plots) for people."""

from __future__ import annotations

import base64
import html
import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from loraxkit.loadtest import alerts
from loraxkit.loadtest.slo import GateResult

LAG_WARNING_MS = 10.0
PLOTS = ("latency_by_adapter", "over_time", "saturation")
SMOOTHING_S = 5  # window of the over-time throughput's rolling mean


def write_report(report: dict[str, Any], out_dir: str | Path, gates: list[GateResult]) -> dict[str, Path]:
    """Write the three files (and the plot PNGs) into out_dir; returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    report = dict(report)
    report["slo"] = {"passed": all(g.passed for g in gates), "gates": [g.__dict__ for g in gates]}
    paths = {"json": out / "report.json", "markdown": out / "report.md", "html": out / "report.html"}
    paths["json"].write_text(json.dumps(_clean(report), indent=2, allow_nan=False) + "\n", encoding="utf-8")
    pngs = render_plots(report)
    for name, data in pngs.items():
        (out / f"{name}.png").write_bytes(data)
    paths["markdown"].write_text(markdown(report, gates, list(pngs)), encoding="utf-8")
    paths["html"].write_text(html_page(report, gates, pngs), encoding="utf-8")
    return paths


def _clean(value: Any) -> Any:
    """NaN/inf -> null so the JSON is strict."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def _ms(dist: dict[str, Any], key: str) -> str:
    value = dist.get(key)
    return "-" if value is None else f"{value:.1f}" if value >= 100 else f"{value:.2f}"


def latency_rows(groups: dict[str, dict[str, Any]]) -> list[list[str]]:
    rows = []
    for name, s in groups.items():
        rows.append(
            [
                name,
                str(s["requests"]),
                f"{s['error_rate']:.1%}",
                f"{s['output_tokens_per_s']:.1f}",
                *(_ms(s["ttft_ms"], k) for k in ("p50", "p95", "p99")),
                *(_ms(s["itl_ms"], k) for k in ("p50", "p95", "p99")),
                *(_ms(s["tpot_ms"], k) for k in ("p50", "p99")),
                *(_ms(s["e2e_ms"], k) for k in ("p50", "p99")),
            ]
        )
    return rows


LATENCY_HEADER = [
    "group",
    "requests",
    "errors",
    "out tok/s",
    "TTFT p50",
    "TTFT p95",
    "TTFT p99",
    "ITL p50",
    "ITL p95",
    "ITL p99",
    "TPOT p50",
    "TPOT p99",
    "E2E p50",
    "E2E p99",
]


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def stage_rows(report: dict[str, Any]) -> list[list[str]]:
    rows = []
    for row in report.get("stages", []):
        s = row["summary"]
        load = f"{row['users']} users" if row["users"] is not None else f"{row['rate']:g} req/s"
        rows.append(
            [
                str(row["stage"]),
                load,
                str(s["requests"]),
                f"{s['output_tokens_per_s']:.1f}",
                f"{s['requests_per_s']:.2f}",
                _ms(s["ttft_ms"], "p50"),
                _ms(s["ttft_ms"], "p95"),
                _ms(s["tpot_ms"], "p50"),
                f"{s['error_rate']:.1%}",
            ]
        )
    return rows


STAGE_HEADER = [
    "stage",
    "load",
    "requests",
    "out tok/s",
    "req/s",
    "TTFT p50",
    "TTFT p95",
    "TPOT p50",
    "errors",
]


METRICS_HEADER = ["series", "kind", "mean", "max", "rate /s", "mean duration (ms)", "samples"]


def _num(value: Any) -> str:
    return "-" if value is None else f"{value:.2f}"


def metrics_rows(series: dict[str, dict[str, Any]]) -> list[list[str]]:
    """Gauges: mean and max; counters: rate; histograms: rate of observations and their mean duration."""
    return [
        [
            k,
            v.get("kind", "?"),
            _num(v.get("mean")),
            _num(v.get("max")),
            _num(v.get("rate_per_s")),
            _num(v.get("mean_ms")),
            str(v["samples"]),
        ]
        for k, v in series.items()
    ]


def _sections(report: dict[str, Any], gates: list[GateResult]) -> list[tuple[str, str]]:
    """(title, markdown body) pairs shared by the Markdown and HTML renderings."""
    overall = report["overall"]
    lines = [
        f"- target: `{report.get('host')}` routes: {', '.join(report.get('by_route', {}))}",
        f"- mode: {report.get('mode')}; load processes: {report.get('processes', 1)}",
        f"- requests: {overall['requests']} ({overall['failed']} failed, "
        f"error rate {overall['error_rate']:.2%})",
        f"- output tokens/s: {overall['output_tokens_per_s']:.1f}; "
        f"requests/s: {overall['requests_per_s']:.2f}",
        f"- token-count mismatches (stream vs server): {overall['token_count_mismatches']}",
    ]
    if "goodput" in overall:
        g = overall["goodput"]
        lines.append(
            f"- goodput: {g['requests_per_s']:.2f} req/s ({g['fraction']:.1%} of requests meet the SLOs)"
        )
    if "schedule_lag_ms" in overall:
        lag = overall["schedule_lag_ms"]
        lines.append(
            f"- open-loop schedule lag: p50 {_ms(lag, 'p50')} ms, p99 {_ms(lag, 'p99')} ms, "
            f"max {_ms(lag, 'max')} ms"
        )
        if (lag.get("p99") or 0.0) > LAG_WARNING_MS:
            lines.append(
                f"- WARNING: requests left more than {LAG_WARNING_MS:g} ms behind schedule (p99): the "
                "client could not keep the arrival rate; add users (-u) or load processes (--processes)"
            )
    if report.get("client_cpu_warning"):
        lines.append("- WARNING: a load process went over 90 % CPU; add load processes (--processes)")
    if report.get("cancelled_at_stop"):
        lines.append(
            f"- requests still in flight when the run stopped: {report['cancelled_at_stop']} (recorded as "
            f"failed: cancelled_at_stop {overall.get('cut_at_stop', 0)}, not in the error rate; the rest "
            "stalled); --stop-timeout lets them finish"
        )
    sections = [("Summary", "\n".join(lines))]
    errors = overall["errors"]
    if errors["by_status"]:
        body = _md_table(["HTTP status", "count"], [[k, str(v)] for k, v in errors["by_status"].items()])
        body += "\n\n" + _md_table(
            ["error_type", "count"], [[k, str(v)] for k, v in errors["by_error_type"].items()]
        )
        sections.append(("Errors (in-stream errors arrive under HTTP 200)", body))
    steady = report.get("steady")
    if steady:
        left = steady["left_out"]
        sections.append(
            (
                "Steady state: latency per adapter (ms)",
                f"Requests sent from {steady['from'] - report.get('started', steady['from']):.1f} s to "
                f"{steady['until'] - report.get('started', steady['from']):.1f} s after the first request, "
                f"not opening a connection: {steady['overall']['requests']} of {overall['requests']}. Left "
                f"out: {left['before_warmup_end']} before the warm-up ended, {left['opened_a_connection']} "
                f"that opened a connection, {left['after_cooldown_start']} in the cool-down. Latency gates "
                f"judge {report.get('gates_judge', 'these')}.\n\n"
                + _md_table(LATENCY_HEADER, latency_rows({"ALL": steady["overall"], **steady["by_adapter"]})),
            )
        )
    sections.append(
        (
            "Whole run: latency per adapter (ms)",
            _md_table(LATENCY_HEADER, latency_rows({"ALL": overall, **report["by_adapter"]})),
        )
    )
    if len(report.get("by_route", {})) > 1:
        sections.append(
            ("Latency per route (ms)", _md_table(LATENCY_HEADER, latency_rows(report["by_route"])))
        )
    if "server_timing_ms" in overall:
        rows = [
            [k, _ms(v, "p50"), _ms(v, "p95"), _ms(v, "p99")] for k, v in overall["server_timing_ms"].items()
        ]
        if "client_overhead_ms" in overall:
            o = overall["client_overhead_ms"]
            rows.append(["client E2E - x-total-time", _ms(o, "p50"), _ms(o, "p95"), _ms(o, "p99")])
        sections.append(
            ("LoRAX timing headers on /generate (ms)", _md_table(["header", "p50", "p95", "p99"], rows))
        )
    if report.get("stages"):
        sat = report.get("saturation", {})
        knee = (
            f"saturation at stage {sat['stage']} ({sat.get('users') or sat.get('rate')}): "
            f"{sat['output_tokens_per_s']:.1f} tok/s"
            if sat.get("stage") is not None
            else sat.get("note", "")
        )
        sections.append(
            (
                "Stages and saturation",
                _md_table(STAGE_HEADER, stage_rows(report)) + f"\n\n{knee} (rule: {sat.get('rule', '')})",
            )
        )
    if report.get("server_metrics"):
        series = report["server_metrics"].get("series", {})
        sections.append(("Server /metrics during the run", _md_table(METRICS_HEADER, metrics_rows(series))))
    check = report.get("self_check")
    if check:
        sections.append(("Self-check of the measurement", "\n".join(f"- {v}" for v in check["verdicts"])))
    if report.get("alerts"):
        sections.append(("Alerts during the run", alerts.section(report["alerts"])))
    if gates:
        sections.append(("SLO gates", "\n".join(f"- {g.describe()}" for g in gates)))
    sections.append(("Definitions", "\n".join(f"- **{k}**: {v}" for k, v in report["definitions"].items())))
    return sections


def markdown(report: dict[str, Any], gates: list[GateResult], plots: list[str]) -> str:
    parts = ["# LoRAX load test report", ""]
    for title, body in _sections(report, gates):
        parts += [f"## {title}", "", body, ""]
    if plots:
        parts += ["## Plots", ""] + [f"![{name}]({name}.png)" for name in plots] + [""]
    return "\n".join(parts)


def html_page(report: dict[str, Any], gates: list[GateResult], pngs: dict[str, bytes]) -> str:
    body = ["<h1>LoRAX load test report</h1>"]
    for title, text in _sections(report, gates):
        body.append(f"<h2>{html.escape(title)}</h2>")
        body.append(_md_to_html(text))
    for name, data in pngs.items():
        encoded = base64.b64encode(data).decode()
        body.append(
            f'<h2>{html.escape(name.replace("_", " "))}</h2><img alt="{name}" '
            f'src="data:image/png;base64,{encoded}">'
        )
    style = (
        "body{font-family:sans-serif;max-width:1200px;margin:auto}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}img{max-width:100%}"
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>LoRAX load test</title>"
        f"<style>{style}</style></head><body>{''.join(body)}</body></html>\n"
    )


def _md_to_html(text: str) -> str:
    """Just enough Markdown (tables and bullet lists) for the sections above."""
    out, table = [], []
    for line in [*text.splitlines(), ""]:
        if line.startswith("|"):
            if not line.startswith("|---"):
                table.append([html.escape(c.strip()) for c in line.strip("|").split("|")])
            continue
        if table:
            head, *rows = table
            out.append(
                "<table><tr>"
                + "".join(f"<th>{c}</th>" for c in head)
                + "</tr>"
                + "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
                + "</table>"
            )
            table = []
        if line.startswith("- "):
            out.append(f"<li>{html.escape(line[2:]).replace('**', '')}</li>")
        elif line:
            out.append(f"<p>{html.escape(line)}</p>")
    return "\n".join(out)


def render_plots(report: dict[str, Any]) -> dict[str, bytes]:
    """PNG plots (matplotlib, headless Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pngs: dict[str, bytes] = {}
    if report["by_adapter"]:
        pngs["latency_by_adapter"] = _plot_latency(plt, report["by_adapter"])
    if report["timeline"]["t"]:
        pngs["over_time"] = _plot_timeline(plt, report["timeline"])
    if report.get("stages"):
        pngs["saturation"] = _plot_saturation(plt, report["stages"], report.get("saturation", {}))
    return pngs


def _png(plt: Any, fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return buf.getvalue()


def _plot_latency(plt: Any, groups: dict[str, dict[str, Any]]) -> bytes:
    names = list(groups)[:40]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    for ax, metric in zip(axes, ("ttft_ms", "tpot_ms"), strict=True):
        width = 0.27
        for j, p in enumerate(("p50", "p95", "p99")):
            values = [groups[n][metric].get(p) or 0.0 for n in names]
            ax.bar([i + (j - 1) * width for i in range(len(names))], values, width, label=p)
        ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=7)
        ax.set_ylabel(f"{metric.split('_')[0].upper()} (ms)")
        ax.legend()
    fig.suptitle("Latency percentiles per adapter")
    return _png(plt, fig)


def rolling_mean(values: list[float], window: int) -> list[float]:
    """Mean of each value with the up to `window - 1` before it (decode steps and prefills alias with
    one-second buckets, so the raw series zig-zags)."""
    sums = np.cumsum(np.asarray(values, dtype=np.float64))
    out = []
    for i in range(len(values)):
        lo = max(0, i - window + 1)
        out.append(float(sums[i] - (sums[lo - 1] if lo else 0.0)) / (i - lo + 1))
    return out


def _plot_timeline(plt: Any, tl: dict[str, list[float]]) -> bytes:
    fig, ax1 = plt.subplots(figsize=(12, 4))
    ax1.plot(tl["t"], tl["tokens_per_s"], color="tab:blue", alpha=0.3, linewidth=1, label="output tokens/s")
    ax1.plot(
        tl["t"],
        rolling_mean(tl["tokens_per_s"], SMOOTHING_S),
        color="tab:blue",
        linewidth=2,
        label=f"output tokens/s, {SMOOTHING_S} s mean",
    )
    ax1.set_xlabel("seconds since start")
    ax1.set_ylabel("output tokens/s", color="tab:blue")
    ax2 = ax1.twinx()
    # markers: seconds in which no request was sent have no TTFT (closed loop at saturation)
    ax2.plot(tl["t"], tl["ttft_p50_ms"], ".-", color="tab:red", label="TTFT p50")
    ax2.plot(tl["t"], tl["ttft_p95_ms"], ".-", color="tab:orange", label="TTFT p95")
    ax2.set_ylabel("TTFT of requests sent that second (ms)", color="tab:red")
    lines = ax1.get_legend_handles_labels()
    more = ax2.get_legend_handles_labels()
    ax2.legend(lines[0] + more[0], lines[1] + more[1], loc="upper left", fontsize=8)
    fig.suptitle("Throughput and TTFT over time")
    return _png(plt, fig)


def _plot_saturation(plt: Any, stages: list[dict[str, Any]], sat: dict[str, Any]) -> bytes:
    x = [row["users"] if row["users"] is not None else row["rate"] for row in stages]
    label = "users" if stages[0]["users"] is not None else "arrival rate (req/s)"
    fig, ax1 = plt.subplots(figsize=(8, 4))
    ax1.plot(x, [row["summary"]["output_tokens_per_s"] for row in stages], "o-", color="tab:blue")
    ax1.set_xlabel(label)
    ax1.set_ylabel("output tokens/s", color="tab:blue")
    ax2 = ax1.twinx()
    ax2.plot(x, [row["summary"]["ttft_ms"].get("p95") or 0.0 for row in stages], "s--", color="tab:red")
    ax2.set_ylabel("TTFT p95 (ms)", color="tab:red")
    if sat.get("stage") is not None:
        ax1.axvline(x[sat["stage"]], color="grey", linestyle=":")
    fig.suptitle("Saturation curve")
    return _png(plt, fig)
