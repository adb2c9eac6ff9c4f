"""Bad values fail, and the message names the key (schema errors) or the key and the fix (contradictions)."""

from __future__ import annotations

from typing import Any

import helm_python as helm
import pytest
from chart_helpers import render

RWO_PVC = {"type": "persistentVolumeClaim", "persistentVolumeClaim": {"accessModes": ["ReadWriteOnce"]}}
PROM = "http://prom:9090"


@pytest.mark.parametrize(
    ("values", "key"),
    [
        ({"model": {"quantize": "bogus"}}, "/model/quantize"),
        ({"model": {"quantize": "exl2"}}, "/model/quantize"),
        ({"model": {"dtype": "float32"}}, "/model/dtype"),
        ({"modelCache": {"type": "s3"}}, "/modelCache/type"),
        ({"loadBalancer": {"scheme": "public"}}, "/loadBalancer/scheme"),
        ({"adapters": {"source": "gcs"}}, "/adapters/source"),
        ({"gpu": {"count": "2"}}, "/gpu/count"),
        ({"gpu": {"count": 0}}, "/gpu/count"),
        ({"server": {"maxTotalTokens": "4k"}}, "/server/maxTotalTokens"),
        ({"server": {"cudaGraphs": "yes"}}, "/server/cudaGraphs"),
        ({"server": {"port": 80}}, "/server/port"),
        ({"adapters": {"preloaded": "org/a"}}, "/adapters/preloaded"),
        ({"modelCache": {"emptyDir": {"sizeLimit": "lots"}}}, "/modelCache/emptyDir/sizeLimit"),
        ({"bogus": 1}, "'bogus'"),
        ({"model": {"quantise": "gptq"}}, "'quantise'"),
        ({"probes": {"startup": {"failureTreshold": 10}}}, "'failureTreshold'"),
        ({"loadBalancer": {"certificateArn": "not-an-arn"}}, "/loadBalancer/certificateArn"),
    ],
)
def test_schema_rejects_and_names_the_key(values: dict[str, Any], key: str) -> None:
    with pytest.raises(helm.HelmValuesError) as error:
        render(values)
    assert key in str(error.value)


CONTRADICTIONS = [
    ({"model": {"dtype": "bfloat16", "quantize": "gptq"}}, "model.dtype"),
    ({"server": {"sharded": True}}, "server.sharded"),
    ({"server": {"sharded": False}, "gpu": {"count": 2}}, "server.sharded"),
    ({"adapters": {"preloaded": ["org/a"], "mergeWeights": True}}, "adapters.mergeWeights"),
    ({"server": {"cudaGraphs": True}, "gpu": {"count": 2}}, "server.cudaGraphs"),
    ({"server": {"maxInputLength": 4096, "maxTotalTokens": 4096}}, "server.maxInputLength"),
    ({"server": {"maxBatchPrefillTokens": 9000, "maxBatchTotalTokens": 8000}},
     "server.maxBatchPrefillTokens"),
    ({"server": {"maxTotalTokens": 9000, "maxBatchTotalTokens": 8000}}, "server.maxTotalTokens"),
    ({"server": {"maxInputLength": 4000, "maxBatchPrefillTokens": 2048}}, "server.maxBatchPrefillTokens"),
    ({"server": {"maxTotalTokens": 4096, "extraArgs": ["--max-total-tokens", "8192"]}}, "server.extraArgs"),
    ({"server": {"extraArgs": ["--num-shard=2"]}}, "--num-shard"),
    ({"server": {"extraArgs": ["--port", "9000"]}}, "server.port"),
    ({"hfToken": {"existingSecret": "hf", "value": "hf_x"}}, "hfToken.existingSecret"),
    ({"resources": {"limits": {"nvidia.com/gpu": 1}}}, "resources.limits.nvidia.com/gpu"),
    ({"resources": {"requests": {"nvidia.com/gpu": 1}}}, "resources.requests.nvidia.com/gpu"),
    ({"loadBalancer": {"sourceRanges": ["10.0.0.0/8"]}}, "loadBalancer.sourceRanges"),
    ({"loadBalancer": {"certificateArn": "arn:aws:acm:us-east-1:123456789012:certificate/x"}},
     "loadBalancer.certificateArn"),
    ({"loadBalancer": {"scheme": "internet-facing"}}, "loadBalancer.scheme"),
    ({"loadBalancer": {"annotations": {"a": "b"}}}, "loadBalancer.annotations"),
    ({"loadBalancer": {"port": 8080}}, "loadBalancer.port"),
    ({"loadBalancer": {"tlsPort": 8443}}, "loadBalancer.tlsPort"),
    ({"loadBalancer": {"enabled": True, "scheme": "internet-facing"}}, "loadBalancer.sourceRanges"),
    ({"loadBalancer": {"enabled": True, "scheme": "internet-facing", "sourceRanges": ["0.0.0.0/0"]}},
     "loadBalancer.sourceRanges"),
    ({"loadBalancer": {"enabled": True, "scheme": "internet-facing", "sourceRanges": ["10.0.0.0/8", "::/0"]}},
     "loadBalancer.sourceRanges"),
    ({"networkPolicy": {"enabled": True}, "loadBalancer": {"enabled": True}},
     "networkPolicy.loadBalancerCidrs"),
    ({"autoscaling": {"enabled": True}, "keda": {"enabled": True, "serverAddress": PROM}}, "keda.enabled"),
    ({"autoscaling": {"enabled": True, "minReplicas": 5, "maxReplicas": 2}}, "autoscaling.minReplicas"),
    ({"keda": {"enabled": True, "serverAddress": PROM, "minReplicaCount": 5, "maxReplicaCount": 2}},
     "keda.minReplicaCount"),
    ({"keda": {"enabled": True}}, "keda.serverAddress"),
    ({"keda": {"enabled": True, "serverAddress": PROM, "minReplicaCount": 0}}, "keda.minReplicaCount"),
    ({"modelCache": RWO_PVC, "replicaCount": 2, "updateStrategy": {"type": "Recreate"}}, "replicaCount is 2"),
    ({"modelCache": RWO_PVC, "autoscaling": {"enabled": True}, "updateStrategy": {"type": "Recreate"}},
     "autoscaling.enabled"),
    ({"modelCache": RWO_PVC, "keda": {"enabled": True, "serverAddress": PROM},
      "updateStrategy": {"type": "Recreate"}}, "keda.enabled"),
    ({"modelCache": RWO_PVC}, "maxSurge"),
    ({"modelCache": {"persistentVolumeClaim": {"existingClaim": "w"}}}, "modelCache.type"),
    ({"podDisruptionBudget": {"enabled": True, "minAvailable": 1}}, "podDisruptionBudget.minAvailable"),
    ({"podDisruptionBudget": {"enabled": True, "minAvailable": "100%"}}, "podDisruptionBudget.minAvailable"),
    ({"podDisruptionBudget": {"enabled": True, "minAvailable": "50%"}}, "podDisruptionBudget.minAvailable"),
    ({"replicaCount": 3, "podDisruptionBudget": {"enabled": True, "minAvailable": "70%"}},
     "podDisruptionBudget.minAvailable"),
    ({"podDisruptionBudget": {"enabled": True, "maxUnavailable": 0}}, "podDisruptionBudget.maxUnavailable"),
    ({"replicaCount": 3, "autoscaling": {"enabled": True, "minReplicas": 2},
      "podDisruptionBudget": {"enabled": True, "minAvailable": 2}}, "podDisruptionBudget.minAvailable"),
    ({"probes": {"deepCheck": {"enabled": True}, "liveness": {"enabled": False}}}, "probes.deepCheck"),
    ({"terminationGracePeriodSeconds": 10, "preStopSleepSeconds": 15}, "terminationGracePeriodSeconds"),
    ({"serviceAccount": {"annotations": {"eks.amazonaws.com/role-arn": "x"}}}, "serviceAccount.create"),
]  # fmt: skip


@pytest.mark.parametrize(("values", "key"), CONTRADICTIONS)
def test_contradiction_fails_naming_the_key(values: dict[str, Any], key: str) -> None:
    with pytest.raises(helm.HelmReleaseError) as error:
        render(values)
    message = str(error.value)
    assert "templates/validate" in message
    assert key in message


def test_each_fix_the_messages_suggest_renders() -> None:
    """The neighbours of each contradiction are accepted, so the checks are not over-eager."""
    ok = [
        {"model": {"quantize": "gptq"}},
        {"server": {"sharded": True}, "gpu": {"count": 2}},
        {"server": {"cudaGraphs": True}, "gpu": {"count": 1}},
        {"server": {"maxInputLength": 4000, "maxBatchPrefillTokens": 2048, "chunkedPrefill": True,
                    "prefixCaching": True}},
        {"server": {"maxInputLength": 3072, "maxTotalTokens": 4096, "maxBatchPrefillTokens": 4096,
                    "maxBatchTotalTokens": 4096}},
        {"modelCache": RWO_PVC, "updateStrategy": {"type": "Recreate"}},
        {"modelCache": RWO_PVC, "updateStrategy": {"type": "RollingUpdate",
                                                   "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}}},
        {"modelCache": {"type": "persistentVolumeClaim",
                        "persistentVolumeClaim": {"accessModes": ["ReadWriteMany"]}}, "replicaCount": 3},
        {"replicaCount": 3, "podDisruptionBudget": {"enabled": True, "minAvailable": 2}},
        {"replicaCount": 3, "podDisruptionBudget": {"enabled": True, "minAvailable": "60%"}},
        {"podDisruptionBudget": {"enabled": True, "maxUnavailable": "10%"}},
        {"loadBalancer": {"enabled": True, "scheme": "internet-facing", "sourceRanges": ["198.51.100.0/24"]}},
        {"serviceAccount": {"create": True, "annotations": {"eks.amazonaws.com/role-arn": "x"}}},
        {"networkPolicy": {"enabled": True, "loadBalancerCidrs": ["10.0.0.0/16"]},
         "loadBalancer": {"enabled": True}},
        {"networkPolicy": {"enabled": True}},
        {"server": {"extraArgs": ["--max-waiting-tokens=20", "--cors-allow-origin", "a",
                                  "--cors-allow-origin", "b"]}},
        {"loadBalancer": {"enabled": True, "scheme": "internet-facing", "sourceRanges": ["0.0.0.0/0"],
                          "allowPublicWithoutSourceRanges": True}},
        {"loadBalancer": {"enabled": True, "sourceRanges": ["0.0.0.0/0"]}},
    ]  # fmt: skip
    for values in ok:
        assert render(values), values
