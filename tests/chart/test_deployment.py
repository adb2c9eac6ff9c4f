"""Deployment behaviour: launcher flags, GPUs/shards/shm, probes, cache, token, S3, scheduling, security."""

from __future__ import annotations

from typing import Any

import pytest
from chart_helpers import args_of, container, env_of, find, flag_values, render

LAUNCHER_DEFAULT_FLAGS = [
    "--revision", "--source", "--dtype", "--quantize", "--adapter-source", "--preloaded-adapter-source",
    "--max-input-length", "--max-total-tokens", "--max-batch-prefill-tokens", "--max-batch-total-tokens",
    "--max-concurrent-requests", "--max-active-adapters", "--adapter-cycle-time-s",
    "--adapter-memory-fraction",
    "--cuda-memory-fraction", "--sharded", "--eager-prefill", "--prefix-caching", "--chunked-prefill",
    "--compile", "--trust-remote-code", "--merge-adapter-weights", "--preloaded-adapter-ids",
]  # fmt: skip


def pod_spec(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return find(docs, "Deployment")["spec"]["template"]["spec"]


def test_defaults_render_only_required_flags_and_keep_json_logs() -> None:
    args = args_of()
    assert args[0] == "--json-output"
    assert flag_values(args, "--model-id") == ["mistralai/Mistral-7B-Instruct-v0.1"]
    assert flag_values(args, "--num-shard") == ["1"]
    # Kubernetes sets HOSTNAME (the launcher's --hostname env) to the pod name, which is no address to bind.
    assert flag_values(args, "--hostname") == ["0.0.0.0"]
    for flag in LAUNCHER_DEFAULT_FLAGS:
        assert flag not in args, f"{flag} rendered although its value is unset"


def test_json_logs_can_be_turned_off() -> None:
    assert "--json-output" not in args_of({"server": {"jsonLogs": False}})


@pytest.mark.parametrize(
    ("values", "flag", "expected"),
    [
        ({"model": {"revision": "abc123"}}, "--revision", ["abc123"]),
        ({"model": {"source": "s3"}, "serviceAccount": {"create": True}}, "--source", ["s3"]),
        ({"model": {"dtype": "bfloat16"}}, "--dtype", ["bfloat16"]),
        ({"model": {"quantize": "gptq"}}, "--quantize", ["gptq"]),
        ({"server": {"maxInputLength": 3072}}, "--max-input-length", ["3072"]),
        ({"server": {"maxTotalTokens": 4096}}, "--max-total-tokens", ["4096"]),
        ({"server": {"maxBatchPrefillTokens": 4096}}, "--max-batch-prefill-tokens", ["4096"]),
        ({"server": {"maxBatchTotalTokens": 1000000}}, "--max-batch-total-tokens", ["1000000"]),
        ({"server": {"maxConcurrentRequests": 256}}, "--max-concurrent-requests", ["256"]),
        ({"server": {"eagerPrefill": True}}, "--eager-prefill", ["true"]),
        ({"server": {"prefixCaching": True}}, "--prefix-caching", ["true"]),
        ({"server": {"chunkedPrefill": True}}, "--chunked-prefill", ["true"]),
        ({"server": {"cudaMemoryFraction": 0.9}}, "--cuda-memory-fraction", ["0.9"]),
        ({"adapters": {"source": "s3"}, "serviceAccount": {"create": True}}, "--adapter-source", ["s3"]),
        ({"adapters": {"preloadedSource": "hub"}}, "--preloaded-adapter-source", ["hub"]),
        ({"adapters": {"maxActive": 32}}, "--max-active-adapters", ["32"]),
        ({"adapters": {"cycleTimeSeconds": 5}}, "--adapter-cycle-time-s", ["5"]),
        ({"adapters": {"memoryFraction": 0.05}}, "--adapter-memory-fraction", ["0.05"]),
        ({"adapters": {"preloaded": ["a/one", "b/two", "c/three"]}}, "--preloaded-adapter-ids",
         ["a/one", "b/two", "c/three"]),
        ({"gpu": {"count": 4}, "server": {"sharded": True}}, "--sharded", ["true"]),
    ],
)  # fmt: skip
def test_each_value_renders_its_flag(values: dict[str, Any], flag: str, expected: list[str]) -> None:
    assert flag_values(args_of(values), flag) == expected


@pytest.mark.parametrize("key", ["sharded", "eagerPrefill", "prefixCaching", "chunkedPrefill"])
def test_tri_state_false_renders_no_flag(key: str) -> None:
    """0.12.1 hands `--prefix-caching false` to the shards as PREFIX_CACHING=false, read as true."""
    flag = "--" + "".join("-" + ch.lower() if ch.isupper() else ch for ch in key)
    assert flag not in args_of({"server": {key: False}})


@pytest.mark.parametrize(
    ("values", "flag"),
    [
        ({"server": {"cudaGraphs": True}}, "--compile"),
        ({"model": {"trustRemoteCode": True}}, "--trust-remote-code"),
        ({"adapters": {"mergeWeights": True}}, "--merge-adapter-weights"),
    ],
)
def test_switches_render_as_bare_flags(values: dict[str, Any], flag: str) -> None:
    args = args_of(values)
    assert flag in args
    assert flag not in args_of()


def test_extra_args_and_env_are_appended() -> None:
    values = {
        "server": {
            "extraArgs": ["--max-waiting-tokens", "20"],
            "extraEnv": [{"name": "NCCL_DEBUG", "value": "INFO"}],
            "logLevel": "debug",
        }
    }
    docs = render(values)
    assert container(docs)["args"][-2:] == ["--max-waiting-tokens", "20"]
    env = env_of(docs)
    assert env["NCCL_DEBUG"]["value"] == "INFO"
    assert env["LOG_LEVEL"]["value"] == "debug"


@pytest.mark.parametrize("gpus", [1, 2, 8])
def test_gpus_shards_and_shm_agree(gpus: int) -> None:
    docs = render({"gpu": {"count": gpus}, "shm": {"sizeLimit": "8Gi"}})
    res = container(docs)["resources"]
    assert res["requests"]["nvidia.com/gpu"] == gpus
    assert res["limits"]["nvidia.com/gpu"] == gpus
    assert flag_values(container(docs)["args"], "--num-shard") == [str(gpus)]
    shm = next(v for v in pod_spec(docs)["volumes"] if v["name"] == "shm")
    assert shm["emptyDir"] == {"medium": "Memory", "sizeLimit": "8Gi"}
    assert {"name": "shm", "mountPath": "/dev/shm"} in container(docs)["volumeMounts"]


def test_pod_is_never_best_effort_and_emptydir_cache_is_requested() -> None:
    res = container(render())["resources"]
    assert res["requests"]["cpu"] and res["requests"]["memory"]
    assert res["requests"]["ephemeral-storage"] == "50Gi"


def test_startup_budget_covers_thirty_minutes_and_probes_use_health() -> None:
    c = container(render())
    startup = c["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 1800
    assert startup["httpGet"] == {"path": "/health", "port": "http"}
    assert c["readinessProbe"]["httpGet"]["path"] == "/health"
    liveness = c["livenessProbe"]
    assert liveness["periodSeconds"] * liveness["failureThreshold"] >= 120
    assert render({"probes": {"startup": {"failureThreshold": 360}}}) != render()
    assert (
        container(render({"probes": {"startup": {"failureThreshold": 360}}}))["startupProbe"][
            "failureThreshold"
        ]
        == 360
    )


def test_probes_can_be_disabled() -> None:
    c = container(render({"probes": {"readiness": {"enabled": False}, "liveness": {"enabled": False}}}))
    assert "readinessProbe" not in c and "livenessProbe" not in c and "startupProbe" in c


def test_deep_check_exec_runs_a_real_generation() -> None:
    probe = container(render({"probes": {"deepCheck": {"enabled": True, "timeoutSeconds": 90}}}))[
        "livenessProbe"
    ]
    command = probe["exec"]["command"]
    assert command[:2] == ["python", "-c"]
    assert "/generate" in command[2] and '"max_new_tokens": 1' in command[2]
    assert "timeout=85" in command[2]
    assert probe["timeoutSeconds"] == 90
    compile(command[2], "<deep-check>", "exec")  # the script the probe runs is valid Python


def test_deep_check_http_renders_the_given_route() -> None:
    """httpGet is for builds serving /startup; 0.12.1 does not (validate.yaml refuses it, test_negative)."""
    values = {"probes": {"deepCheck": {"enabled": True, "method": "httpGet", "path": "/health"}}}
    probe = container(render(values))["livenessProbe"]
    assert probe["httpGet"] == {"path": "/health", "port": "http"}
    assert probe["timeoutSeconds"] == 60


def test_port_moves_off_80_so_no_capability_is_needed() -> None:
    docs = render()
    c = container(docs)
    assert env_of(docs)["PORT"]["value"] == "8080"
    assert c["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    sc = c["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert pod_spec(docs)["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}


def test_graceful_termination_and_no_service_links() -> None:
    docs = render({"terminationGracePeriodSeconds": 200, "preStopSleepSeconds": 20})
    spec = pod_spec(docs)
    assert spec["terminationGracePeriodSeconds"] == 200
    assert spec["enableServiceLinks"] is False
    # The kubelet's sleep action, not `exec sleep`: it works whatever binaries the image has.
    assert container(docs)["lifecycle"] == {"preStop": {"sleep": {"seconds": 20}}}
    assert "lifecycle" not in container(render({"preStopSleepSeconds": 0}))


def test_default_grace_outlasts_the_prestop_pause_and_the_launchers_drain() -> None:
    """After SIGTERM the 0.12.1 launcher gives the router up to 90 s to finish in-flight requests."""
    spec = pod_spec(render())
    pause = container(render())["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert spec["terminationGracePeriodSeconds"] >= pause + 90


def test_image_is_pinned_and_digest_wins() -> None:
    assert container(render())["image"] == "ghcr.io/predibase/lorax:0.12.1"
    digest = "sha256:" + "a" * 64
    assert container(render({"image": {"digest": digest}}))["image"] == f"ghcr.io/predibase/lorax@{digest}"


class TestModelCache:
    def volume(self, docs: list[dict[str, Any]]) -> dict[str, Any]:
        return next(v for v in pod_spec(docs)["volumes"] if v["name"] == "model-cache")

    def test_default_is_a_sized_emptydir_at_data(self) -> None:
        docs = render()
        assert self.volume(docs) == {"name": "model-cache", "emptyDir": {"sizeLimit": "50Gi"}}
        assert {"name": "model-cache", "mountPath": "/data"} in container(docs)["volumeMounts"]
        assert env_of(docs)["HUGGINGFACE_HUB_CACHE"]["value"] == "/data"

    def test_chart_created_claim(self) -> None:
        pvc_values = {"storageClassName": "gp3", "size": "200Gi"}
        docs = render({"modelCache": {"type": "persistentVolumeClaim", "persistentVolumeClaim": pvc_values},
                       "updateStrategy": {"type": "Recreate"}})  # fmt: skip
        pvc = find(docs, "PersistentVolumeClaim")
        assert pvc["metadata"]["name"] == "lorax-cache"
        assert pvc["spec"]["storageClassName"] == "gp3"
        assert pvc["spec"]["resources"]["requests"]["storage"] == "200Gi"
        assert pvc["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
        assert self.volume(docs)["persistentVolumeClaim"] == {"claimName": "lorax-cache"}
        assert "ephemeral-storage" not in container(docs)["resources"]["requests"]

    def test_existing_claim_creates_nothing(self) -> None:
        docs = render({"modelCache": {"type": "persistentVolumeClaim",
                                      "persistentVolumeClaim": {"existingClaim": "weights"}},
                       "updateStrategy": {"type": "Recreate"}})  # fmt: skip
        assert "PersistentVolumeClaim" not in [d["kind"] for d in docs]
        assert self.volume(docs)["persistentVolumeClaim"] == {"claimName": "weights"}

    def test_host_path_for_instance_store(self) -> None:
        docs = render({"modelCache": {"type": "hostPath", "hostPath": {"path": "/mnt/nvme/lorax"}}})
        assert self.volume(docs)["hostPath"] == {"path": "/mnt/nvme/lorax", "type": "DirectoryOrCreate"}

    def test_warmup_init_container_downloads_with_the_same_args(self) -> None:
        docs = render({"modelCache": {"warmup": {"enabled": True}}, "model": {"revision": "v1"}})
        init = pod_spec(docs)["initContainers"][0]
        assert init["image"] == container(docs)["image"]
        assert init["args"] == [*container(docs)["args"], "--download-only"]
        assert {"name": "model-cache", "mountPath": "/data"} in init["volumeMounts"]
        assert "initContainers" not in pod_spec(render())


class TestHuggingFaceToken:
    def test_existing_secret_is_referenced_by_key(self) -> None:
        docs = render({"hfToken": {"existingSecret": "hf", "key": "token"}})
        env = env_of(docs)
        for name in ("HUGGING_FACE_HUB_TOKEN", "HF_TOKEN"):
            assert env[name]["valueFrom"] == {"secretKeyRef": {"name": "hf", "key": "token"}}
            assert "value" not in env[name]
        assert "Secret" not in [d["kind"] for d in docs]

    def test_value_becomes_a_chart_secret_never_a_plain_env(self) -> None:
        docs = render({"hfToken": {"value": "hf_secret_value"}})
        secret = find(docs, "Secret")
        assert secret["metadata"]["name"] == "lorax-hf-token"
        assert "HF_TOKEN" in secret["data"]
        env = env_of(docs)
        assert env["HF_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "lorax-hf-token", "key": "HF_TOKEN"}
        assert "hf_secret_value" not in str(find(docs, "Deployment"))

    def test_no_token_no_env(self) -> None:
        assert "HF_TOKEN" not in env_of(render())


def test_s3_adapter_environment_and_service_account() -> None:
    values = {
        "adapters": {"source": "s3", "s3": {"bucket": "my-adapters", "region": "us-west-2",
                                            "endpointUrl": "https://s3.us-west-2.amazonaws.com"}},
        "serviceAccount": {"create": True, "name": "lorax"},
    }  # fmt: skip
    docs = render(values)
    env = env_of(docs)
    assert env["PREDIBASE_MODEL_BUCKET"]["value"] == "my-adapters"
    assert env["AWS_REGION"]["value"] == env["AWS_DEFAULT_REGION"]["value"] == "us-west-2"
    assert env["S3_ENDPOINT_URL"]["value"] == "https://s3.us-west-2.amazonaws.com"
    sa = find(docs, "ServiceAccount")
    assert sa["metadata"]["name"] == "lorax"
    assert "annotations" not in sa["metadata"]  # EKS Pod Identity needs none
    assert pod_spec(docs)["serviceAccountName"] == "lorax"
    assert pod_spec(docs)["automountServiceAccountToken"] is False


def test_irsa_annotation_and_default_service_account() -> None:
    role = {"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/lorax"}
    sa = find(render({"serviceAccount": {"create": True, "annotations": role}}), "ServiceAccount")
    assert sa["metadata"]["annotations"] == role
    assert sa["metadata"]["name"] == "lorax"
    assert pod_spec(render())["serviceAccountName"] == "default"
    assert "ServiceAccount" not in [d["kind"] for d in render()]


class TestScheduling:
    def test_default_tolerates_the_gpu_taint(self) -> None:
        assert pod_spec(render())["tolerations"] == [
            {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
        ]

    def test_node_selector_affinity_priority_runtime(self) -> None:
        affinity = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "node.kubernetes.io/instance-type", "operator": "In",
                                   "values": ["g6e.xlarge"]}]}]}}}  # fmt: skip
        spec = pod_spec(render({
            "nodeSelector": {"k8s.amazonaws.com/accelerator": "nvidia-l40s"}, "affinity": affinity,
            "priorityClassName": "gpu-serving", "runtimeClassName": "nvidia",
        }))  # fmt: skip
        assert spec["nodeSelector"] == {"k8s.amazonaws.com/accelerator": "nvidia-l40s"}
        assert spec["affinity"] == affinity
        assert spec["priorityClassName"] == "gpu-serving"
        assert spec["runtimeClassName"] == "nvidia"
        defaults = pod_spec(render())
        assert "runtimeClassName" not in defaults and "priorityClassName" not in defaults

    def test_topology_spread_gets_the_selector_labels(self) -> None:
        constraint = {"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
                      "whenUnsatisfiable": "ScheduleAnyway"}  # fmt: skip
        docs = render({"topologySpreadConstraints": [constraint]})
        rendered = pod_spec(docs)["topologySpreadConstraints"][0]
        selector = find(docs, "Deployment")["spec"]["selector"]["matchLabels"]
        assert rendered["labelSelector"] == {"matchLabels": selector}
        own = {**constraint, "labelSelector": {"matchLabels": {"x": "y"}}}
        assert pod_spec(render({"topologySpreadConstraints": [own]}))["topologySpreadConstraints"][0] == own


def test_replicas_are_left_to_an_enabled_autoscaler() -> None:
    assert find(render({"replicaCount": 2}), "Deployment")["spec"]["replicas"] == 2
    hpa_docs = render({"autoscaling": {"enabled": True}})
    assert "replicas" not in find(hpa_docs, "Deployment")["spec"]
    keda = {
        "keda": {"enabled": True, "serverAddress": "http://prom:9090"},
        "metrics": {"serviceMonitor": {"enabled": True}},
    }
    assert "replicas" not in find(render(keda), "Deployment")["spec"]


def test_labels_and_names_follow_the_release() -> None:
    docs = render(release="chat")
    deployment = find(docs, "Deployment")
    assert deployment["metadata"]["name"] == "chat-lorax"
    labels = deployment["metadata"]["labels"]
    assert labels["app.kubernetes.io/instance"] == "chat"
    assert labels["app.kubernetes.io/name"] == "lorax"
    assert labels["app.kubernetes.io/managed-by"] == "Helm"
    assert labels["app.kubernetes.io/version"] == "0.12.1"
    long_docs = render({"nameOverride": "n" * 40}, release="r" * 40)
    assert find(long_docs, "Deployment")["metadata"]["name"] == ("r" * 40 + "-" + "n" * 40)[:63]
    assert len(find(long_docs, "Service", name=None)["metadata"]["name"]) <= 63
    assert (
        find(render({"nameOverride": "llm"}, release="chat"), "Deployment")["metadata"]["name"] == "chat-llm"
    )


def test_update_strategy_recreate_drops_the_default_rolling_update() -> None:
    assert find(render(), "Deployment")["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
    }
    strategy = find(render({"updateStrategy": {"type": "Recreate"}}), "Deployment")["spec"]["strategy"]
    assert strategy == {"type": "Recreate"}
