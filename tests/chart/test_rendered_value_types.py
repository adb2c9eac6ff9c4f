"""Values that reach the pod spec keep the type the API server needs, at the edges the schema lets through.

Helm reads numbers from values files as float64 and prints a float64 of a million or more in exponent form
("1e+06"), which the API server refuses for an int32 field; a string value that looks like a number, a bool or
null changes type unless quoted. An empty image.tag is the chart's appVersion, as validate.yaml reads it.
Written against survivors of `python3 bench/mutate.py chart-helpers` (docs/mutation.md)."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from chart_helpers import CHART_DIR, container, env_of, find, render

APP_VERSION = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())["appVersion"]
MILLION = 1_000_000  # int32, no maximum in the schema or Kubernetes (probe timings are int32)
TIMINGS = ["initialDelaySeconds", "periodSeconds", "timeoutSeconds", "failureThreshold"]


@pytest.mark.parametrize("probe", ["startup", "readiness", "liveness"])
def test_probe_timings_of_a_million_render_as_integers(probe: str) -> None:
    values = {"probes": {probe: dict.fromkeys(TIMINGS, MILLION)}}
    rendered = container(render(values))[f"{probe}Probe"]
    for key in TIMINGS:
        assert rendered[key] == MILLION and isinstance(rendered[key], int), (key, rendered[key])


S3 = {"source": "s3", "s3": {"bucket": "adapters"}}
# (env name, values that set it to the text): every string the chart passes on as an env value
STRING_ENV = [
    ("PREDIBASE_MODEL_BUCKET", lambda text: {"adapters": {"source": "s3", "s3": {"bucket": text}}}),
    ("S3_ENDPOINT_URL", lambda text: {"adapters": {**S3, "s3": {"bucket": "adapters", "endpointUrl": text}}}),
    ("LOG_LEVEL", lambda text: {"server": {"logLevel": text}}),  # "off" is a tracing level, YAML 1.1's false
]


@pytest.mark.parametrize("text", ["1234", "true", "off", "null", "1e10"])
@pytest.mark.parametrize(("env", "values"), STRING_ENV, ids=[e for e, _ in STRING_ENV])
def test_an_env_value_that_reads_as_another_type_is_still_a_string(env: str, values: Any, text: str) -> None:
    rendered = env_of(render({**values(text), "serviceAccount": {"create": True}}))
    assert rendered[env]["value"] == text


def test_an_empty_image_tag_is_the_charts_app_version() -> None:
    docs = render({"image": {"tag": ""}})
    assert container(docs)["image"] == f"ghcr.io/predibase/lorax:{APP_VERSION}"
    labels = find(docs, "Deployment")["metadata"]["labels"]
    assert labels["app.kubernetes.io/version"] == APP_VERSION


@pytest.mark.parametrize("probe", ["startup", "readiness", "liveness"])
def test_an_initial_delay_of_zero_renders_as_zero(probe: str) -> None:
    # Sprig's default treats 0 as empty: the fallback must be 0 itself, or 0 would render as something else
    rendered = container(render({"probes": {probe: {"initialDelaySeconds": 0}}}))[f"{probe}Probe"]
    assert rendered["initialDelaySeconds"] == 0
