"""Plot the dashboard's panels from Prometheus's API with matplotlib: a picture of what Grafana would show,
where no Grafana runs (docs, CI artefacts).

    python -m loraxkit.observability.plot --prometheus-url http://127.0.0.1:9090 --minutes 10 --out panels.png
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

from loraxkit.observability.dashboard import PanelSpec, panels
from loraxkit.observability.promapi import PromAPI, Series


def grafana_to_promql(expr: str, rate_interval: str, namespace: str = ".*", service: str = ".*") -> str:
    """Fill in the dashboard's variables the way Grafana would (`All` = `.*`)."""
    return (
        expr.replace("$__rate_interval", rate_interval)
        .replace("$namespace", namespace)
        .replace("$service", service)
    )


def _legend(template: str, labels: dict[str, str]) -> str:
    out = template
    for key, value in labels.items():
        out = out.replace("{{" + key + "}}", value)
    return out


def panel_series(
    api: PromAPI, panel: PanelSpec, start: float, end: float, step: float, rate_interval: str
) -> list[tuple[str, Series]]:
    rows: list[tuple[str, Series]] = []
    for query in panel.queries:
        for series in api.query_range(grafana_to_promql(query.expr, rate_interval), start, end, step):
            rows.append((_legend(query.legend, series.labels), series))
    return rows


def plot_panels(
    api: PromAPI, start: float, end: float, out: Path, step: float = 2.0, rate_interval: str = "1m",
    include_gpu: bool = False, title: str = "LoRAX dashboard panels", marks: dict[str, float] | None = None,
) -> Path:  # fmt: skip
    """One PNG with a small plot per panel; `marks` draws labelled vertical lines (e.g. when faults began)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    chosen = [p for p in panels() if include_gpu or not p.gpu]
    cols = 4
    rows = math.ceil(len(chosen) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.2 * rows), squeeze=False)
    for ax, panel in zip(axes.flat, chosen, strict=False):
        data = panel_series(api, panel, start, end, step, rate_interval)
        for legend, series in data[:12]:
            xs = [t - start for t, _ in series.points]
            ys = [v for _, v in series.points]
            ax.plot(xs, ys, label=legend, linewidth=1.2)
        for label, at in (marks or {}).items():
            ax.axvline(at - start, color="grey", linestyle=":", linewidth=1)
            ax.text(at - start, 1.0, label, transform=ax.get_xaxis_transform(), fontsize=6, color="grey",
                    va="bottom")  # fmt: skip
        ax.set_xlim(0, end - start)
        ax.set_title(panel.title, fontsize=10)
        ax.set_xlabel("seconds", fontsize=8)
        ax.set_ylabel(panel.unit, fontsize=8)
        ax.tick_params(labelsize=7)
        if data:
            ax.legend(fontsize=6, loc="upper left", ncol=2 if len(data) > 6 else 1)
        else:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
    for ax in list(axes.flat)[len(chosen) :]:
        ax.axis("off")
    fig.suptitle(title, fontsize=12)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=80)
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m loraxkit.observability.plot",
        description="Plot every LoRAX dashboard panel's query from a Prometheus server into one PNG.",
    )
    parser.add_argument("--prometheus-url", required=True, help="e.g. http://127.0.0.1:9090")
    parser.add_argument("--minutes", type=float, default=15.0, help="how far back to plot (default 15)")
    parser.add_argument("--rate-interval", default="1m", help="what $__rate_interval becomes (default 1m)")
    parser.add_argument("--gpu", action="store_true", help="also plot the DCGM GPU panels")
    parser.add_argument("--out", type=Path, default=Path("lorax-panels.png"), help="PNG to write")
    args = parser.parse_args(argv)
    end = time.time()
    start = end - args.minutes * 60
    step = max(args.minutes * 60 / 300, 1.0)
    path = plot_panels(PromAPI(args.prometheus_url), start, end, args.out, step, args.rate_interval, args.gpu)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
