"""Observability for LoRAX: the Prometheus rules (one file, shipped by the chart) and the Grafana dashboard
built as code. See docs/observability.md."""
