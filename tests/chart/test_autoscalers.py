"""autoscaling (an HPA) and keda (a ScaledObject) both on are refused by their own message, with every other
requirement of each met, so no other refusal can stand in for it; each alone renders its one autoscaler.
Written against a survivor of `python3 bench/mutate.py chart-validate` (seed 18, docs/mutation.md): the older
table row matched "keda.enabled", which KEDA's default-query refusal also contains."""

from __future__ import annotations

import helm_python as helm
import pytest
from chart_helpers import kinds, render

HPA = {"autoscaling": {"enabled": True}}
KEDA = {"keda": {"enabled": True, "serverAddress": "http://prometheus:9090"},
        "metrics": {"serviceMonitor": {"enabled": True}}}  # fmt: skip


def test_an_hpa_and_keda_together_are_refused_as_two_autoscalers() -> None:
    with pytest.raises(
        helm.HelmReleaseError, match=r"autoscaling\.enabled and keda\.enabled are both true: two autoscalers"
    ):
        render({**HPA, **KEDA})


@pytest.mark.parametrize(("values", "kind"), [(HPA, "HorizontalPodAutoscaler"), (KEDA, "ScaledObject")])
def test_each_autoscaler_alone_renders(values: dict, kind: str) -> None:
    rendered = kinds(render(values))
    assert kind in rendered
    assert len({"HorizontalPodAutoscaler", "ScaledObject"} & set(rendered)) == 1
