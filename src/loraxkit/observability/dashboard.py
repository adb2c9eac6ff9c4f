"""The LoRAX Grafana dashboard, built as code with grafana-foundation-sdk and written to the chart
(`charts/lorax/files/grafana/lorax-dashboard.json`, shipped as a sidecar ConfigMap).

    python -m loraxkit.observability.dashboard            # rewrite the chart's JSON
    python -m loraxkit.observability.dashboard --check    # exit 1 when the JSON is stale

Queries use LoRAX's raw series (predibase/lorax @a7394ba3, router/src/server.rs, infer.rs, scheduler.rs), not
the recording rules, so the dashboard works without the rules loaded. LoRAX has no time-to-first-token
series: the TTFT panel shows its two parts, time in the queue and the prefill step. GPU panels read DCGM
exporter series (`DCGM_FI_DEV_*`, dcgm-exporter's default counters) and stay empty where no exporter runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders.common import VizLegendOptions
from grafana_foundation_sdk.builders.dashboard import Dashboard as DashboardBuilder
from grafana_foundation_sdk.builders.dashboard import DatasourceVariable, QueryVariable, Row
from grafana_foundation_sdk.builders.prometheus import Dataquery
from grafana_foundation_sdk.builders.timeseries import Panel as Timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.common import LegendDisplayMode, LegendPlacement
from grafana_foundation_sdk.models.dashboard import DataSourceRef, VariableRefresh

DASHBOARD_PATH = (
    Path(__file__).resolve().parents[3] / "charts" / "lorax" / "files" / "grafana" / "lorax-dashboard.json"
)
UID = "loraxkit-lorax"
DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")
SEL = 'namespace=~"$namespace", service=~"$service"'
GPU_SEL = 'namespace=~"$namespace", container="lorax"'  # dcgm-exporter's pod mapping labels
RATE = "$__rate_interval"


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str
    absent_in_sim: str = ""  # why the simulator never produces this series (the end-to-end test skips it)


@dataclass(frozen=True)
class PanelSpec:
    title: str
    unit: str
    description: str
    queries: tuple[Query, ...]
    gpu: bool = False  # DCGM exporter series: empty without a GPU node


def _quantiles(metric: str, extra: str = "", qs: tuple[float, ...] = (0.5, 0.9, 0.99)) -> tuple[Query, ...]:
    sel = f"{SEL}{extra}"
    return tuple(
        Query(
            f"histogram_quantile({q}, sum by (le) (rate({metric}_bucket{{{sel}}}[{RATE}])))",
            f"p{round(q * 100)}",
        )
        for q in qs
    )


ROWS: tuple[tuple[str, tuple[PanelSpec, ...]], ...] = (
    (
        "Traffic",
        (
            PanelSpec(
                "Requests by outcome",
                "reqps",
                "Finished requests per second: successes, and failures by LoRAX's `err` label "
                "(overloaded = 429, generation = 424/in-stream, validation = 422, dropped = client gone).",
                (
                    Query(f"sum(rate(lorax_request_success{{{SEL}}}[{RATE}]))", "success"),
                    Query(f"sum by (err) (rate(lorax_request_failure{{{SEL}}}[{RATE}]))", "{{err}}"),
                ),
            ),
            PanelSpec(
                "Queue and running batch",
                "short",
                "Requests waiting (lorax_queue_length, what KEDA scales on) and in the running batch.",
                (
                    Query(f"sum by (service) (lorax_queue_length{{{SEL}}})", "waiting {{service}}"),
                    Query(f"sum by (service) (lorax_batch_current_size{{{SEL}}})", "running {{service}}"),
                ),
            ),
            PanelSpec(
                "Generated tokens/s",
                "short",
                "Output tokens per second, counted when requests finish (lorax_request_generated_tokens).",
                (Query(f"sum(rate(lorax_request_generated_tokens_sum{{{SEL}}}[{RATE}]))", "tokens/s"),),
            ),
            PanelSpec(
                "Alerts firing",
                "short",
                "LoRAX alerts from the chart's rules that are firing now.",
                (
                    Query(
                        'sum by (alertname) (ALERTS{alertname=~"Lorax.*", alertstate="firing"})',
                        "{{alertname}}",
                    ),
                ),
            ),
        ),
    ),
    (
        "Latency",
        (
            PanelSpec(
                "Time to first token: queue + prefill",
                "s",
                "LoRAX has no TTFT series; a request's first token comes after its time in the queue and one "
                "prefill step.",
                (
                    *_quantiles("lorax_request_queue_duration", qs=(0.5, 0.99)),
                    Query(
                        "histogram_quantile(0.99, sum by (le) (rate(lorax_batch_inference_duration_bucket"
                        f'{{{SEL}, method="prefill"}}[{RATE}])))',
                        "prefill step p99",
                    ),
                ),
            ),
            PanelSpec(
                "Time per output token",
                "s",
                "lorax_request_mean_time_per_token_duration: a request's inference time over its tokens.",
                _quantiles("lorax_request_mean_time_per_token_duration"),
            ),
            PanelSpec(
                "End-to-end request duration",
                "s",
                "lorax_request_duration: validation + queue + inference, per finished request.",
                _quantiles("lorax_request_duration"),
            ),
            PanelSpec(
                "Batch step duration",
                "s",
                "One prefill or decode step of the whole batch (lorax_batch_inference_duration).",
                tuple(
                    Query(
                        f"histogram_quantile({q}, sum by (le, method) "
                        f"(rate(lorax_batch_inference_duration_bucket{{{SEL}}}[{RATE}])))",
                        f"{{{{method}}}} p{round(q * 100)}",
                    )
                    for q in (0.5, 0.99)
                ),
            ),
        ),
    ),
    (
        "Batching and adapters",
        (
            PanelSpec(
                "Batch sizes",
                "short",
                "Requests let into each new batch (lorax_batch_next_size) and the tokens the running batch "
                "reserves (lorax_batch_current_max_tokens, right axis scale differs).",
                (
                    *_quantiles("lorax_batch_next_size", qs=(0.5, 0.99)),
                    Query(f"sum(lorax_batch_current_max_tokens{{{SEL}}}) / 1000", "reserved k-tokens"),
                ),
            ),
            PanelSpec(
                "Batch steps/s by method",
                "ops",
                "Prefill and decode steps started and failed (lorax_batch_inference_count / _failure).",
                (
                    Query(
                        f"sum by (method) (rate(lorax_batch_inference_count{{{SEL}}}[{RATE}]))", "{{method}}"
                    ),
                    Query(
                        f"sum by (method) (rate(lorax_batch_inference_failure{{{SEL}}}[{RATE}]))",
                        "{{method}} failed",
                        absent_in_sim="the simulator fails requests, never a whole batch step",
                    ),
                ),
            ),
            PanelSpec(
                "Adapter loads failing",
                "reqps",
                "Adapter download/load/offload failures (loader.rs). LoRAX exports no gauge of loaded "
                "adapters; adapter loads show as queue time above.",
                (
                    Query(
                        "sum by (err) (rate(lorax_request_failure"
                        f'{{{SEL}, err=~"download_adapter|load_adapter|offload_adapter"}}[{RATE}]))',
                        "{{err}}",
                    ),
                ),
            ),
            PanelSpec(
                "Why batches were joined",
                "ops",
                "lorax_batch_concat by reason: backpressure (queue big enough) or wait_exceeded.",
                (Query(f"sum by (reason) (rate(lorax_batch_concat{{{SEL}}}[{RATE}]))", "{{reason}}"),),
            ),
        ),
    ),
    (
        "GPU (DCGM exporter)",
        (
            PanelSpec(
                "GPU utilization",
                "percent",
                "DCGM_FI_DEV_GPU_UTIL per GPU of the LoRAX pods.",
                (Query(f"avg by (pod, gpu) (DCGM_FI_DEV_GPU_UTIL{{{GPU_SEL}}})", "{{pod}} gpu{{gpu}}"),),
                gpu=True,
            ),
            PanelSpec(
                "GPU memory used",
                "decmbytes",
                "DCGM_FI_DEV_FB_USED (MiB): LoRAX reserves most of it for the KV cache at warm-up.",
                (Query(f"sum by (pod, gpu) (DCGM_FI_DEV_FB_USED{{{GPU_SEL}}})", "{{pod}} gpu{{gpu}}"),),
                gpu=True,
            ),
            PanelSpec(
                "GPU power",
                "watt",
                "DCGM_FI_DEV_POWER_USAGE per GPU.",
                (Query(f"sum by (pod, gpu) (DCGM_FI_DEV_POWER_USAGE{{{GPU_SEL}}})", "{{pod}} gpu{{gpu}}"),),
                gpu=True,
            ),
            PanelSpec(
                "GPU temperature",
                "celsius",
                "DCGM_FI_DEV_GPU_TEMP per GPU.",
                (Query(f"max by (pod, gpu) (DCGM_FI_DEV_GPU_TEMP{{{GPU_SEL}}})", "{{pod}} gpu{{gpu}}"),),
                gpu=True,
            ),
        ),
    ),
)


def panels() -> list[PanelSpec]:
    return [panel for _, row in ROWS for panel in row]


def _panel(spec: PanelSpec, panel_id: int) -> Timeseries:
    panel = (
        Timeseries()
        .id(panel_id)
        .title(spec.title)
        .description(spec.description)
        .unit(spec.unit)
        .datasource(DATASOURCE)
        .span(6)
        .height(8)
        .legend(
            VizLegendOptions()
            .show_legend(True)
            .display_mode(LegendDisplayMode.LIST)
            .placement(LegendPlacement.BOTTOM)
        )
    )
    for i, query in enumerate(spec.queries):
        panel = panel.with_target(
            Dataquery()
            .expr(query.expr)
            .legend_format(query.legend)
            .ref_id(chr(ord("A") + i))
            .datasource(DATASOURCE)
        )
    return panel


def build() -> dict[str, Any]:
    """The dashboard as Grafana's JSON model."""
    builder = (
        DashboardBuilder("LoRAX")
        .uid(UID)
        .description("LoRAX multi-LoRA inference: traffic, latency, batching, adapters, GPUs (lorax-kit).")
        .tags(["lorax", "llm", "lorax-kit"])
        .refresh("30s")
        .time("now-1h", "now")
        .timezone("browser")
        .with_variable(DatasourceVariable("datasource").label("Prometheus").type("prometheus"))
        .with_variable(
            QueryVariable("namespace")
            .label("Namespace")
            .datasource(DATASOURCE)
            .query("label_values(lorax_request_count, namespace)")
            .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
            .multi(True)
            .include_all(True)
            .all_value(".*")
        )
        .with_variable(
            QueryVariable("service")
            .label("Service")
            .datasource(DATASOURCE)
            .query('label_values(lorax_request_count{namespace=~"$namespace"}, service)')
            .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
            .multi(True)
            .include_all(True)
            .all_value(".*")
        )
    )
    panel_id = 0
    for title, row in ROWS:
        panel_id += 1
        builder = builder.with_row(Row(title).id(panel_id))
        for spec in row:
            panel_id += 1
            builder = builder.with_panel(_panel(spec, panel_id))
    return json.loads(json.dumps(builder.build(), cls=JSONEncoder))


def render() -> str:
    return json.dumps(build(), indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m loraxkit.observability.dashboard",
        description="Write the LoRAX Grafana dashboard JSON the chart ships (grafana-foundation-sdk).",
    )
    parser.add_argument("--out", type=Path, default=DASHBOARD_PATH, help="output file (default: the chart's)")
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 when the file is stale")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = args.out.read_text(encoding="utf-8") if args.out.exists() else ""
        if current != text:
            print(f"{args.out} is stale: run python -m loraxkit.observability.dashboard", file=sys.stderr)
            return 1
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {args.out} ({len(panels())} panels)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
