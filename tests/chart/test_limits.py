"""Both sides of every limit `templates/validate.yaml` enforces: values at the limit render, values just past
it fail with the message that names the key. The token rules mirror the LoRAX launcher's start-up checks
(launcher/src/main.rs @a7394ba3); the rest are combinations a schema cannot express."""

from __future__ import annotations

from typing import Any

import helm_python as helm
import pytest
from chart_helpers import SERVICE_MONITOR_API, find, render

PVC = "persistentVolumeClaim"


def _keda_ready(values: dict[str, Any]) -> dict[str, Any]:
    """KEDA's default query reads the chart's ServiceMonitor series: switch it on beside KEDA."""
    if (values.get("keda") or {}).get("enabled"):
        return {**values, "metrics": {"serviceMonitor": {"enabled": True}}}
    return values


def _render(values: dict[str, Any]) -> list[dict[str, Any]]:
    return render(_keda_ready(values), api_versions=[SERVICE_MONITOR_API])


def _refusal(values: dict[str, Any]) -> str:
    with pytest.raises(helm.HelmReleaseError) as caught:
        _render(values)
    return str(caught.value)


def _server(**server: Any) -> dict[str, Any]:
    return {"server": server}


# (rule, values at the limit: must render, values just past it, words the refusal must contain)
LIMITS: list[tuple[str, dict[str, Any], dict[str, Any], str]] = [
    (
        "input < total",
        _server(maxInputLength=4095, maxTotalTokens=4096),
        _server(maxInputLength=4096, maxTotalTokens=4096),
        "server.maxInputLength is 4096 and server.maxTotalTokens is 4096",
    ),
    (
        "prefill <= batch total",
        _server(maxBatchPrefillTokens=8192, maxBatchTotalTokens=8192),
        _server(maxBatchPrefillTokens=8193, maxBatchTotalTokens=8192),
        "server.maxBatchPrefillTokens is 8193 and server.maxBatchTotalTokens is 8192",
    ),
    (
        "total <= batch total",
        _server(maxTotalTokens=8192, maxBatchTotalTokens=8192),
        _server(maxTotalTokens=8193, maxBatchTotalTokens=8192),
        "server.maxTotalTokens is 8193 and server.maxBatchTotalTokens is 8192",
    ),
    (
        "prefill >= input",
        _server(maxInputLength=2000, maxBatchPrefillTokens=2000),
        _server(maxInputLength=2000, maxBatchPrefillTokens=1999),
        "server.maxBatchPrefillTokens is 1999, server.maxInputLength is 2000",
    ),
    (
        "sharded needs 2 GPUs",
        {"server": {"sharded": True}, "gpu": {"count": 2}},
        {"server": {"sharded": True}, "gpu": {"count": 1}},
        "server.sharded is true but gpu.count is 1",
    ),
    (
        "unsharded takes 1 GPU",
        {"server": {"sharded": False}, "gpu": {"count": 1}},
        {"server": {"sharded": False}, "gpu": {"count": 2}},
        "server.sharded is false but gpu.count is 2",
    ),
    (
        "cuda graphs sharded",
        {"server": {"cudaGraphs": True}, "gpu": {"count": 1}},
        {"server": {"cudaGraphs": True}, "gpu": {"count": 2}},
        "server.cudaGraphs is true with gpu.count 2, but LoRAX 0.12.1 refuses CUDA graphs",
    ),
    (
        "image tag of the contract",
        {"image": {"tag": "0.12.1"}},
        {"image": {"tag": "0.13.0"}},
        "image.tag is 0.13.0, but this chart's launcher contract",
    ),
    (
        "hpa min == max",
        {"autoscaling": {"enabled": True, "minReplicas": 3, "maxReplicas": 3}},
        {"autoscaling": {"enabled": True, "minReplicas": 4, "maxReplicas": 3}},
        "autoscaling.minReplicas is greater than autoscaling.maxReplicas",
    ),
    (
        "keda min == max",
        {
            "keda": {
                "enabled": True,
                "serverAddress": "http://p:9090",
                "minReplicaCount": 3,
                "maxReplicaCount": 3,
            }
        },
        {
            "keda": {
                "enabled": True,
                "serverAddress": "http://p:9090",
                "minReplicaCount": 4,
                "maxReplicaCount": 3,
            }
        },
        "keda.minReplicaCount is greater than keda.maxReplicaCount",
    ),
    (
        "keda min 1",
        {"keda": {"enabled": True, "serverAddress": "http://p:9090", "minReplicaCount": 1}},
        {"keda": {"enabled": True, "serverAddress": "http://p:9090", "minReplicaCount": 0}},
        "keda.minReplicaCount is 0",
    ),
    (
        "grace >= preStop + 90 s",
        {"terminationGracePeriodSeconds": 120, "preStopSleepSeconds": 30},
        {"terminationGracePeriodSeconds": 119, "preStopSleepSeconds": 30},
        "terminationGracePeriodSeconds (119) is shorter than preStopSleepSeconds (30) + the 90 s",
    ),
    (
        "pdb min below replicas",
        {"replicaCount": 3, "podDisruptionBudget": {"enabled": True, "minAvailable": 2}},
        {"replicaCount": 3, "podDisruptionBudget": {"enabled": True, "minAvailable": 3}},
        "podDisruptionBudget.minAvailable (3) is not below the replica count (3)",
    ),
    (
        "pdb percent rounds up",
        {"replicaCount": 2, "podDisruptionBudget": {"enabled": True, "minAvailable": "50%"}},
        {"replicaCount": 2, "podDisruptionBudget": {"enabled": True, "minAvailable": "51%"}},
        "podDisruptionBudget.minAvailable 51% of 2 replica(s) rounds up to 2",
    ),
    (
        "pdb min of the hpa",
        {
            "autoscaling": {"enabled": True, "minReplicas": 3},
            "podDisruptionBudget": {"enabled": True, "minAvailable": 2},
        },
        {
            "autoscaling": {"enabled": True, "minReplicas": 2},
            "replicaCount": 5,
            "podDisruptionBudget": {"enabled": True, "minAvailable": 2},
        },
        "podDisruptionBudget.minAvailable (2) is not below the replica count (2)",
    ),
    (
        "pdb min of keda",
        {
            "keda": {"enabled": True, "serverAddress": "http://p:9090", "minReplicaCount": 3},
            "podDisruptionBudget": {"enabled": True, "minAvailable": "66%"},
        },
        {
            "keda": {"enabled": True, "serverAddress": "http://p:9090", "minReplicaCount": 3},
            "replicaCount": 9,
            "podDisruptionBudget": {"enabled": True, "minAvailable": "67%"},
        },
        "podDisruptionBudget.minAvailable 67% of 3 replica(s) rounds up to 3",
    ),
    (
        "pdb max unavailable",
        {"podDisruptionBudget": {"enabled": True, "maxUnavailable": 1}},
        {"podDisruptionBudget": {"enabled": True, "maxUnavailable": 0}},
        "podDisruptionBudget.maxUnavailable is 0",
    ),
    (
        "pdb max unavailable %",
        {"podDisruptionBudget": {"enabled": True, "maxUnavailable": "1%"}},
        {"podDisruptionBudget": {"enabled": True, "maxUnavailable": "0%"}},
        "podDisruptionBudget.maxUnavailable is 0",
    ),
    (
        "lb port",
        {"loadBalancer": {"port": 80}},
        {"loadBalancer": {"port": 81}},
        "loadBalancer.port is set while loadBalancer.enabled is false",
    ),
    (
        "lb tls port",
        {"loadBalancer": {"tlsPort": 443}},
        {"loadBalancer": {"tlsPort": 8443}},
        "loadBalancer.tlsPort is set while loadBalancer.enabled is false",
    ),
    (
        "lb scheme",
        {"loadBalancer": {"scheme": "internal"}},
        {"loadBalancer": {"scheme": "internet-facing"}},
        "loadBalancer.scheme is set while loadBalancer.enabled is false",
    ),
    (
        "lb ranges",
        {"loadBalancer": {"enabled": True, "scheme": "internet-facing", "sourceRanges": ["0.0.0.0/1"]}},
        {
            "loadBalancer": {
                "enabled": True,
                "scheme": "internet-facing",
                "sourceRanges": ["10.0.0.0/8", "::/0"],
            }
        },
        "loadBalancer.sourceRanges contains ::/0",
    ),
    (
        "lb public",
        {
            "loadBalancer": {
                "enabled": True,
                "scheme": "internet-facing",
                "allowPublicWithoutSourceRanges": True,
            }
        },
        {"loadBalancer": {"enabled": True, "scheme": "internet-facing"}},
        "loadBalancer.scheme is internet-facing with no loadBalancer.sourceRanges",
    ),
    (
        "extra arg from values",
        {"server": {"extraArgs": ["--max-stop-sequences=6"]}},
        {"server": {"extraArgs": ["--max-input-length=10"]}},
        "--max-input-length is not taken from server.extraArgs: set server.maxInputLength instead",
    ),
    (
        "extra preloaded ids",
        {"adapters": {"preloaded": ["a/b"]}, "server": {"extraArgs": ["--speculative-tokens", "2"]}},
        {"server": {"extraArgs": ["--preloaded-adapter-ids", "c/d"]}},
        "--preloaded-adapter-ids is not taken from server.extraArgs: set adapters.preloaded instead",
    ),
    (
        "extra json-output",
        {"server": {"jsonLogs": False, "extraArgs": ["--validation-workers", "4"]}},
        {"server": {"jsonLogs": False, "extraArgs": ["--json-output"]}},
        "--json-output is not taken from server.extraArgs: set server.jsonLogs instead",
    ),
    (
        "extra port",
        {"server": {"extraArgs": ["--max-best-of", "3"]}},
        {"server": {"extraArgs": ["-p", "9000"]}},
        "-p (--port) is not taken from server.extraArgs",
    ),
]


@pytest.mark.parametrize(("rule", "at_limit", "past_limit", "words"), LIMITS, ids=[r[0] for r in LIMITS])
def test_a_value_at_the_limit_renders_and_one_past_it_fails(
    rule: str, at_limit: dict[str, Any], past_limit: dict[str, Any], words: str
) -> None:
    _render(at_limit)
    assert words in _refusal(past_limit)


# A single-node (ReadWriteOnce / ReadWriteOncePod) cache volume and every way a second pod could need it.
SECOND_POD = [
    ({"replicaCount": 2}, "replicaCount is 2"),
    ({"autoscaling": {"enabled": True}}, "autoscaling.enabled is true"),
    ({"keda": {"enabled": True, "serverAddress": "http://p:9090"}}, "keda.enabled is true"),
    (
        {"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}},
        "updateStrategy is a RollingUpdate with maxSurge 1",
    ),
    (
        {"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "1%"}}},
        "updateStrategy is a RollingUpdate with maxSurge 1%",
    ),
    # no rollingUpdate: the API server defaults maxSurge to 25% (kubernetes v1.35.4
    # pkg/apis/apps/v1/defaults.go:35, SetDefaults_Deployment), and the message says so
    (
        {"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": None}},
        "updateStrategy is a RollingUpdate with maxSurge 25%:",
    ),
]
ONE_POD = [
    {"updateStrategy": {"type": "Recreate"}},
    {"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}}},
    {"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "0%", "maxUnavailable": 1}}},
]


def _cache(mode: str, **extra: Any) -> dict[str, Any]:
    return {"modelCache": {"type": PVC, PVC: {"accessModes": [mode]}}, **extra}


@pytest.mark.parametrize("mode", ["ReadWriteOnce", "ReadWriteOncePod"])
@pytest.mark.parametrize(("values", "why"), SECOND_POD, ids=[w[:24] for _, w in SECOND_POD])
def test_a_single_node_cache_refuses_a_second_pod(mode: str, values: dict[str, Any], why: str) -> None:
    message = _refusal(_cache(mode, **values))
    assert f"modelCache.persistentVolumeClaim.accessModes is ReadWriteOnce but {why}" in message


@pytest.mark.parametrize("mode", ["ReadWriteOnce", "ReadWriteOncePod"])
@pytest.mark.parametrize("values", ONE_POD, ids=["recreate", "surge-0", "surge-0%"])
def test_a_single_node_cache_takes_one_pod_at_a_time(mode: str, values: dict[str, Any]) -> None:
    docs = render(_cache(mode, **values))
    assert find(docs, "PersistentVolumeClaim")["spec"]["accessModes"] == [mode]


def test_a_shared_cache_takes_any_number_of_pods() -> None:
    render(_cache("ReadWriteMany", replicaCount=3, autoscaling={"enabled": True, "minReplicas": 3}))


def test_the_rwo_rule_reads_the_cache_kind_not_leftover_access_modes() -> None:
    # an emptyDir cache with the (unused) claim settings left at ReadWriteOnce is not a single-node volume
    render(
        {"modelCache": {"type": "emptyDir", PVC: {"accessModes": ["ReadWriteOncePod"]}}, "replicaCount": 2}
    )
    assert "existingClaim is set but modelCache.type is hostPath" in _refusal(
        {"modelCache": {"type": "hostPath", PVC: {"existingClaim": "mine"}}}
    )
    docs = render(
        {"modelCache": {"type": PVC, PVC: {"existingClaim": "mine"}}, "updateStrategy": {"type": "Recreate"}}
    )
    claim = [v for v in find(docs, "Deployment")["spec"]["template"]["spec"]["volumes"] if PVC in v]
    assert claim[0][PVC]["claimName"] == "mine"
    assert [d for d in docs if d["kind"] == "PersistentVolumeClaim"] == []


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("sourceRanges", ["10.0.0.0/8"]),
        ("certificateArn", "arn:aws:acm:us-east-1:123456789012:certificate/abc"),
        ("annotations", {"service.beta.kubernetes.io/aws-load-balancer-name": "x"}),
        ("allowPublicWithoutSourceRanges", True),
    ],
)
def test_each_load_balancer_setting_without_the_load_balancer_is_named(key: str, value: Any) -> None:
    message = _refusal({"loadBalancer": {"enabled": False, key: value}})
    assert f"loadBalancer.{key} is set while loadBalancer.enabled is false" in message
    assert f"remove loadBalancer.{key}." in message


def test_a_rolling_update_without_max_surge_surges_by_kubernetes_default() -> None:
    # maxSurge unset (null removes the chart's default of 1): Kubernetes surges by 25%
    values = _cache(
        "ReadWriteOnce", updateStrategy={"type": "RollingUpdate", "rollingUpdate": {"maxSurge": None}}
    )
    assert "updateStrategy is a RollingUpdate with maxSurge 25%" in _refusal(values)


def test_a_percentage_budget_of_zero_replicas_is_refused_as_a_percentage() -> None:
    values = {"replicaCount": 0, "podDisruptionBudget": {"enabled": True, "minAvailable": "50%"}}
    assert "podDisruptionBudget.minAvailable 50% of 0 replica(s) rounds up to 0" in _refusal(values)


def test_the_deep_check_needs_the_liveness_probe_and_nothing_else_does() -> None:
    render({"probes": {"liveness": {"enabled": False}, "deepCheck": {"enabled": False}}})
    render({"probes": {"liveness": {"enabled": True}, "deepCheck": {"enabled": True}}})
    message = _refusal({"probes": {"liveness": {"enabled": False}, "deepCheck": {"enabled": True}}})
    assert "probes.deepCheck.enabled is true but probes.liveness.enabled is false" in message
