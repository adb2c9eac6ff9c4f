# ruff: noqa: E501  (two tables of cases, one case per line group)
"""Each class of bad value the launcher, the API server or the runtime would reject is refused at render time,
naming the key and the fix; its nearest good neighbour still renders. docs/chart.md's acceptance table points
at these case ids."""

from __future__ import annotations

from typing import Any

import helm_python as helm
import pytest
from chart_helpers import render

SA = {"serviceAccount": {"create": True}}
LB_PUBLIC = {"enabled": True, "scheme": "internet-facing"}

# (id, bad values, text the message must contain, a good neighbour that renders)
LAUNCHER: list[tuple[str, dict[str, Any], str, dict[str, Any]]] = [
    ("tag-v-prefix", {"image": {"tag": "v0.12.1"}}, "image.tag=0.12.1", {"image": {"tag": "0.12.1"}}),
    # the moving-tag message, not the unknown-build one that also starts "image.tag is latest"
    ("tag-moving", {"image": {"tag": "latest"}}, "image.tag is latest, a moving tag", {}),
    ("tag-moving-main", {"image": {"tag": "main"}}, "image.tag is main, a moving tag", {}),
    ("tag-unknown", {"image": {"tag": "0.13.0"}}, "describes LoRAX 0.12.1 only", {}),
    ("one-limit-alone", {"server": {"maxInputLength": 8000}}, "server.maxTotalTokens is unset",
     {"server": {"maxInputLength": 8000, "maxTotalTokens": 8192, "maxBatchPrefillTokens": 8050}}),
    ("short-context-model", {"model": {"maxPositionEmbeddings": 2048}, "server": {"maxInputLength": 3000}},
     "model.maxPositionEmbeddings is 2048",
     {"model": {"maxPositionEmbeddings": 2048}, "server": {"maxInputLength": 2000}}),
    ("prefill-default-over-batch", {"server": {"maxBatchTotalTokens": 4100}}, "server.maxBatchPrefillTokens is unset",
     {"server": {"maxBatchTotalTokens": 4145}}),
    ("prefill-below-input", {"server": {"maxInputLength": 4000, "maxBatchPrefillTokens": 2048}},
     "server.maxBatchPrefillTokens is 2048", {"server": {"maxInputLength": 2000, "maxBatchPrefillTokens": 2048}}),
    ("chunking-without-flashinfer",
     {"server": {"maxInputLength": 4000, "maxBatchPrefillTokens": 2048, "chunkedPrefill": True}}, "FlashInfer",
     {"server": {"maxInputLength": 4000, "maxBatchPrefillTokens": 2048, "chunkedPrefill": True,
                 "extraArgs": ["--backend", "flashinfer"]}}),
    ("chunking-with-speculation",
     {"server": {"maxInputLength": 4000, "maxBatchPrefillTokens": 2048, "chunkedPrefill": True, "prefixCaching": True,
                 "extraArgs": ["--speculative-tokens", "3"]}}, "--speculative-tokens",
     {"server": {"maxInputLength": 4000, "maxBatchPrefillTokens": 2048, "chunkedPrefill": True, "prefixCaching": True,
                 "extraArgs": ["--speculative-tokens", "0"]}}),
    ("adapter-fraction-over-cuda", {"adapters": {"memoryFraction": 0.5}, "server": {"cudaMemoryFraction": 0.5}},
     "adapters.memoryFraction", {"adapters": {"memoryFraction": 0.2}, "server": {"cudaMemoryFraction": 0.5}}),
    ("compile-sharded", {"server": {"cudaGraphs": True}, "gpu": {"count": 2}}, "server.cudaGraphs",
     {"server": {"cudaGraphs": True}}),
    ("extra-one-item", {"server": {"extraArgs": ["--max-waiting-tokens 20"]}}, "two items",
     {"server": {"extraArgs": ["--max-waiting-tokens", "20"]}}),
    ("extra-later-build", {"server": {"extraArgs": ["--eager"]}}, "exists only in builds after 0.12.1", {}),
    ("extra-duplicate", {"server": {"extraArgs": ["--max-best-of", "2", "--max-best-of=3"]}}, "given twice",
     {"server": {"extraArgs": ["--max-best-of=3"]}}),
    ("extra-owned-flag", {"server": {"extraArgs": ["--compile"]}}, "set server.cudaGraphs instead",
     {"server": {"cudaGraphs": True}}),
    ("extra-bad-value", {"server": {"extraArgs": ["--max-waiting-tokens", "2.5"]}}, "--max-waiting-tokens",
     {"server": {"extraArgs": ["--max-waiting-tokens", "2"]}}),
    ("extra-switch-value", {"server": {"extraArgs": ["--disable-sgmv=false"]}}, "takes no value",
     {"server": {"extraArgs": ["--disable-sgmv"]}}),
    ("extra-exits-zero", {"server": {"extraArgs": ["--help"]}}, "exits 0", {}),
    ("validation-workers-zero", {"server": {"extraArgs": ["--validation-workers", "0"]}}, "--validation-workers",
     {"server": {"extraArgs": ["--validation-workers", "1"]}}),
    ("probe-route-missing", {"probes": {"deepCheck": {"enabled": True, "method": "httpGet"}}}, "/startup only exists",
     {"probes": {"deepCheck": {"enabled": True, "method": "exec"}}}),
    ("liveness-without-startup", {"probes": {"startup": {"enabled": False}}}, "probes.startup",
     {"probes": {"startup": {"enabled": False}, "liveness": {"enabled": False}}}),
    ("grace-below-drain", {"terminationGracePeriodSeconds": 60}, "at least 105", {"terminationGracePeriodSeconds": 105}),
    ("hostname-not-ip", {"server": {"hostname": "[::]"}}, "/server/hostname", {"server": {"hostname": "::"}}),
]  # fmt: skip

RUNTIME: list[tuple[str, dict[str, Any], str, dict[str, Any]]] = [
    ("memory-limit-below-request", {"resources": {"requests": {"memory": "24Gi"}, "limits": {"memory": "16Gi"}}},
     "resources.limits.memory", {"resources": {"requests": {"memory": "16Gi"}, "limits": {"memory": "16Gi"}}}),
    ("cpu-limit-below-request", {"resources": {"requests": {"cpu": "4", "memory": "1Gi"},
                                               "limits": {"cpu": "3500m", "memory": "2Gi"}}},
     "resources.limits.cpu", {"resources": {"requests": {"cpu": "4", "memory": "1Gi"},
                                            "limits": {"cpu": "4000m", "memory": "2Gi"}}}),
    ("ephemeral-limit-below-cache", {"resources": {"limits": {"memory": "32Gi", "ephemeral-storage": "10Gi"}}},
     "modelCache.emptyDir.sizeLimit", {"resources": {"limits": {"memory": "32Gi", "ephemeral-storage": "60Gi"}}}),
    ("shm-over-memory-limit", {"shm": {"sizeLimit": "40Gi"}}, "shm.sizeLimit", {"shm": {"sizeLimit": "8Gi"}}),
    ("gpu-resource-name", {"gpu": {"resourceName": "nvidia.com/mig-1g.5gb"}}, "gpu.allowCustomResourceName",
     {"gpu": {"resourceName": "nvidia.com/mig-1g.5gb", "allowCustomResourceName": True}}),
    ("duplicate-volume", {"extraVolumes": [{"name": "shm", "emptyDir": {}}]}, "extraVolumes[0].name",
     {"extraVolumes": [{"name": "scratch", "emptyDir": {}}]}),
    ("duplicate-mount-path", {"extraVolumes": [{"name": "x", "emptyDir": {}}],
                              "extraVolumeMounts": [{"name": "x", "mountPath": "/data/"}]},
     "extraVolumeMounts[0].mountPath", {"extraVolumes": [{"name": "x", "emptyDir": {}}],
                                        "extraVolumeMounts": [{"name": "x", "mountPath": "/data/x"}]}),
    ("mount-unknown-volume", {"extraVolumeMounts": [{"name": "y", "mountPath": "/y"}]}, "extraVolumeMounts[0].name",
     {"extraVolumeMounts": [{"name": "shm", "mountPath": "/y"}]}),
    ("surge-and-unavailable-zero",
     {"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": "0%"}}},
     "maxUnavailable are both 0",
     {"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}}}),
    ("invalid-cidr", {"loadBalancer": {**LB_PUBLIC, "sourceRanges": ["10.0.0.0/33"]}},
     "/loadBalancer/sourceRanges/0", {"loadBalancer": {**LB_PUBLIC, "sourceRanges": ["10.0.0.0/16"]}}),
    ("ranges-whole-ipv4", {"loadBalancer": {**LB_PUBLIC, "sourceRanges": ["0.0.0.0/1", "128.0.0.0/1"]}},
     "loadBalancer.sourceRanges", {"loadBalancer": {**LB_PUBLIC, "sourceRanges": ["0.0.0.0/1", "128.0.0.0/2"]}}),
    ("ranges-whole-ipv6", {"loadBalancer": {**LB_PUBLIC, "sourceRanges": ["2000::/4", "3000::/4"]}},
     "loadBalancer.sourceRanges", {"loadBalancer": {**LB_PUBLIC, "sourceRanges": ["2000::/4", "3000::/5"]}}),
    ("policy-cidrs-whole-internet",
     {"networkPolicy": {"enabled": True, "loadBalancerCidrs": ["0.0.0.0/1", "128.0.0.0/1"]},
      "loadBalancer": {"enabled": True}}, "networkPolicy.loadBalancerCidrs",
     {"networkPolicy": {"enabled": True, "loadBalancerCidrs": ["10.0.0.0/8"]}, "loadBalancer": {"enabled": True}}),
    ("name-not-dns-1123", {"serviceAccount": {"create": True, "name": "Lorax_SA"}}, "/serviceAccount/name",
     {"serviceAccount": {"create": True, "name": "lorax-sa"}}),
    ("fullname-not-dns-1035", {"fullnameOverride": "1lorax"}, "/fullnameOverride", {"fullnameOverride": "lorax1"}),
    ("namespace-not-dns-1123", {"networkPolicy": {"enabled": True, "allowedNamespaces": ["Team_A"]}},
     "/networkPolicy/allowedNamespaces/0", {"networkPolicy": {"enabled": True, "allowedNamespaces": ["team-a"]}}),
    ("label-value", {"podLabels": {"tier": "has space"}}, "/podLabels/tier", {"podLabels": {"tier": "gpu"}}),
    ("extra-env-owned", {"server": {"extraEnv": [{"name": "PORT", "value": "1"}]}}, "server.port",
     {"server": {"extraEnv": [{"name": "NCCL_DEBUG", "value": "INFO"}]}}),
    ("extra-env-hf-token", {"hfToken": {"existingSecret": "hf"},
                            "server": {"extraEnv": [{"name": "HF_TOKEN", "value": "hf_x"}]}}, "HF_TOKEN",
     {"hfToken": {"existingSecret": "hf"}}),
    ("extra-env-launcher-arg", {"server": {"extraEnv": [{"name": "MAX_INPUT_LENGTH", "value": "100"}]}},
     "set server.maxInputLength", {"server": {"maxInputLength": 100}}),
    ("extra-env-hostname", {"server": {"extraEnv": [{"name": "HOSTNAME", "value": "::"}]}}, "server.hostname",
     {"server": {"hostname": "::"}}),
    ("extra-env-truthy-false", {"server": {"extraEnv": [{"name": "LORAX_USE_GLOBAL_HF_TOKEN", "value": "false"}]}},
     "turns it ON", {"server": {"extraEnv": [{"name": "LORAX_USE_GLOBAL_HF_TOKEN", "value": "1"}]}}),
    ("extra-env-duplicate", {"server": {"extraEnv": [{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]}},
     "server.extraEnv[1]", {"server": {"extraEnv": [{"name": "A", "value": "1"}]}}),
    ("scrape-timeout-over-interval",
     {"metrics": {"serviceMonitor": {"enabled": True, "interval": "10s", "scrapeTimeout": "1m"}}},
     "metrics.serviceMonitor.scrapeTimeout",
     {"metrics": {"serviceMonitor": {"enabled": True, "interval": "1m30s", "scrapeTimeout": "1m"}}}),
    ("keda-query-needs-servicemonitor", {"keda": {"enabled": True, "serverAddress": "http://p:9090"}},
     "metrics.serviceMonitor.enabled",
     {"keda": {"enabled": True, "serverAddress": "http://p:9090", "query": "sum(my_queue)"}}),
    ("s3-without-identity", {"adapters": {"source": "s3"}}, "serviceAccount.create",
     {"adapters": {"source": "s3"}, **SA}),
    ("adapter-not-hub-id", {"adapters": {"preloaded": ["org/a--b"]}}, "adapters.preloaded[0]",
     {"adapters": {"preloaded": ["org/a-b"]}}),
    ("adapter-not-s3-key", {"adapters": {"source": "s3", "preloaded": ["just-a-key"]}, **SA}, "adapters.s3.bucket",
     {"adapters": {"source": "s3", "preloaded": ["just-a-key"], "s3": {"bucket": "adapters"}}, **SA}),
    ("nlb-health-route-missing", {"loadBalancer": {"enabled": True, "healthCheck": {"path": "/ready"}}},
     "loadBalancer.healthCheck.path", {"loadBalancer": {"enabled": True, "healthCheck": {"path": "/ping"}}}),
    ("nlb-health-timeout", {"loadBalancer": {"enabled": True, "healthCheck": {"timeoutSeconds": 10}}},
     "loadBalancer.healthCheck.timeoutSeconds", {"loadBalancer": {"enabled": True, "healthCheck": {"timeoutSeconds": 9}}}),
    ("nlb-annotation-owned",
     {"loadBalancer": {"enabled": True, "annotations": {"service.beta.kubernetes.io/aws-load-balancer-target-group-attributes": "x=1"}}},
     "deregistrationDelaySeconds", {"loadBalancer": {"enabled": True, "deregistrationDelaySeconds": 30}}),
    ("model-not-hub-id", {"model": {"id": "https://huggingface.co/mistralai/Mistral-7B-v0.1"}}, "model.id",
     {"model": {"id": "mistralai/Mistral-7B-v0.1"}}),
]  # fmt: skip


def case_params(table: list[tuple[str, dict[str, Any], str, dict[str, Any]]]) -> list[Any]:
    return [pytest.param(values, text, good, id=case_id) for case_id, values, text, good in table]


@pytest.mark.parametrize(("values", "text", "good"), case_params(LAUNCHER) + case_params(RUNTIME))
def test_refused_naming_the_key_and_the_neighbour_renders(
    values: dict[str, Any], text: str, good: dict[str, Any]
) -> None:
    with pytest.raises((helm.HelmValuesError, helm.HelmReleaseError)) as error:
        render(values)
    assert text in str(error.value)
    assert render(good)


def test_release_name_that_breaks_the_service_name_is_refused() -> None:
    with pytest.raises(helm.HelmReleaseError, match="DNS-1035"):
        render(release="1abc")
    assert render(release="abc1")
