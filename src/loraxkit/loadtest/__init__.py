"""The multi-LoRA load harness: library code behind `locust -f loadtest/` and `loraxkit demo`.

Modules: `workload` (adapter mix, prompts, lengths, seeded plan), `metrics` (per-request records and the exact
TTFT/ITL/TPOT/E2E maths), `stream` (the request path that reads SSE lines as they arrive), `schedule`
(open-loop arrivals), `shapes` (opt-in step and sweep shapes), `collector` (raw records from workers to the
master), `scrape` (`/metrics` sampling), `report` (JSON, Markdown and HTML), `slo` (exit-code gates), `demo`.
"""
