"""Services, load balancer, optional objects (PDB, HPA, KEDA, ServiceMonitor, NetworkPolicy), test hook."""

from __future__ import annotations

import json
import shlex

from chart_helpers import SERVICE_MONITOR_API, find, kinds, render, render_hooks, render_templates

LB = "service.beta.kubernetes.io/aws-load-balancer-"


def test_cluster_ip_service_is_named_per_release() -> None:
    one = find(render(release="alpha"), "Service")
    two = find(render(release="beta"), "Service")
    assert one["metadata"]["name"] != two["metadata"]["name"]
    assert one["spec"]["type"] == "ClusterIP"
    assert one["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]
    pod_labels = find(render(release="alpha"), "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert one["spec"]["selector"].items() <= pod_labels.items()


def test_load_balancer_is_off_by_default_and_internal_nlb_when_on() -> None:
    assert kinds(render()).count("Service") == 1
    docs = render({"loadBalancer": {"enabled": True}})
    lb = find(docs, "Service", "lorax-lb")
    annotations = lb["metadata"]["annotations"]
    assert annotations[LB + "type"] == "external"
    assert annotations[LB + "nlb-target-type"] == "ip"
    assert annotations[LB + "scheme"] == "internal"
    assert LB + "ssl-cert" not in annotations
    assert lb["spec"]["type"] == "LoadBalancer"
    assert lb["spec"]["loadBalancerClass"] == "service.k8s.aws/nlb"
    assert [p["port"] for p in lb["spec"]["ports"]] == [80]


def test_load_balancer_tls_and_source_ranges() -> None:
    arn = "arn:aws:acm:us-east-1:123456789012:certificate/abc"
    lb = find(render({"loadBalancer": {
        "enabled": True, "scheme": "internet-facing", "sourceRanges": ["203.0.113.0/24"],
        "certificateArn": arn,
    }}), "Service", "lorax-lb")  # fmt: skip
    annotations = lb["metadata"]["annotations"]
    assert annotations[LB + "scheme"] == "internet-facing"
    assert annotations[LB + "ssl-cert"] == arn
    assert annotations[LB + "ssl-ports"] == "443"
    assert lb["spec"]["loadBalancerSourceRanges"] == ["203.0.113.0/24"]
    assert {p["name"]: p["port"] for p in lb["spec"]["ports"]} == {"http": 80, "https": 443}


def test_internet_facing_without_ranges_only_with_explicit_opt_in() -> None:
    values = {
        "loadBalancer": {"enabled": True, "scheme": "internet-facing", "allowPublicWithoutSourceRanges": True}
    }
    lb = find(render(values), "Service", "lorax-lb")
    assert "loadBalancerSourceRanges" not in lb["spec"]


def test_pod_disruption_budget() -> None:
    assert "PodDisruptionBudget" not in kinds(render())
    pdb = find(render({"podDisruptionBudget": {"enabled": True}}), "PodDisruptionBudget")
    assert pdb["spec"]["maxUnavailable"] == 1 and "minAvailable" not in pdb["spec"]
    pdb = find(render({"replicaCount": 3, "podDisruptionBudget": {"enabled": True, "minAvailable": 2}}),
               "PodDisruptionBudget")  # fmt: skip
    assert pdb["spec"]["minAvailable"] == 2 and "maxUnavailable" not in pdb["spec"]
    assert pdb["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] == "server"


def test_horizontal_pod_autoscaler() -> None:
    assert "HorizontalPodAutoscaler" not in kinds(render())
    hpa = find(render({"autoscaling": {"enabled": True, "minReplicas": 2, "maxReplicas": 6}}),
               "HorizontalPodAutoscaler")  # fmt: skip
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "lorax"}
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 6)
    assert hpa["spec"]["metrics"][0]["pods"]["metric"]["name"] == "lorax_queue_length"
    assert hpa["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 600


def test_keda_scaled_object_on_and_off() -> None:
    assert "ScaledObject" not in kinds(render())
    trigger = {"serverAddress": "http://prom:9090", "query": "sum(x)", "threshold": "3"}
    values = {"keda": {"enabled": True, **trigger, "minReplicaCount": 1, "maxReplicaCount": 5}}
    scaled = find(render(values), "ScaledObject")
    assert (scaled["spec"]["minReplicaCount"], scaled["spec"]["maxReplicaCount"]) == (1, 5)
    assert scaled["spec"]["triggers"][0]["metadata"] == trigger
    # The HPA KEDA creates scales down as slowly as the chart's own HPA.
    behavior = scaled["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    assert behavior["scaleDown"]["stabilizationWindowSeconds"] == 600


def test_service_monitor_only_where_the_api_exists() -> None:
    on = {"metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "kps"}}}}
    assert "ServiceMonitor" not in kinds(render(on))
    # The group version alone (e.g. only the PodMonitor CRD installed) is not enough: the kind must be served.
    assert "ServiceMonitor" not in kinds(render(on, api_versions=["monitoring.coreos.com/v1"]))
    assert "ServiceMonitor" not in kinds(render(api_versions=[SERVICE_MONITOR_API]))
    monitor = find(render(on, api_versions=[SERVICE_MONITOR_API]), "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "kps"
    notes = render_templates(on)["lorax/templates/NOTES.txt"]
    assert "so none was created" in notes
    assert (
        "so none was created"
        not in render_templates(on, api_versions=[SERVICE_MONITOR_API])["lorax/templates/NOTES.txt"]
    )


def test_network_policy_admits_only_the_listed_sources() -> None:
    assert "NetworkPolicy" not in kinds(render())
    values = {
        "networkPolicy": {"enabled": True, "allowedNamespaces": ["gateway"],
                          "allowedPods": [{"app": "client"}], "loadBalancerCidrs": ["10.0.0.0/16"],
                          "metricsNamespace": "monitoring"},
        "loadBalancer": {"enabled": True, "sourceRanges": ["203.0.113.0/24"]},
    }  # fmt: skip
    docs = render(values)
    policy = find(docs, "NetworkPolicy")
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    assert policy["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "server"
    sources = policy["spec"]["ingress"][0]["from"]
    test_pod = render_hooks(values)[0]
    pod_selectors = [s["podSelector"]["matchLabels"] for s in sources if "podSelector" in s]
    assert any(sel.items() <= test_pod["metadata"]["labels"].items() for sel in pod_selectors)
    assert {"app": "client"} in pod_selectors
    namespaces = [s["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
                  for s in sources if "namespaceSelector" in s]  # fmt: skip
    assert sorted(namespaces) == ["gateway", "monitoring"]
    cidrs = sorted(s["ipBlock"]["cidr"] for s in sources if "ipBlock" in s)
    assert cidrs == ["10.0.0.0/16", "203.0.113.0/24"]
    assert len(sources) == 6
    assert policy["spec"]["ingress"][0]["ports"] == [{"port": "http", "protocol": "TCP"}]


def test_helm_test_pod_generates_on_base_and_each_preloaded_adapter() -> None:
    s3 = {"source": "s3", "s3": {"bucket": "adapters"}}  # an S3 key may hold a quote
    values = {"adapters": {"preloaded": ["org/a", 'odd"name'], **s3}, "serviceAccount": {"create": True}}
    hooks = render_hooks(values)
    assert len(hooks) == 1
    pod = hooks[0]
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    assert pod["spec"]["restartPolicy"] == "Never"
    c = pod["spec"]["containers"][0]
    assert c["image"].startswith("curlimages/curl:") and not c["image"].endswith(":latest")
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    script, _argv0, url, *calls = c["command"][2:]
    assert "--fail-with-body" in script and '"error_type":' in script
    assert url == "http://lorax:80"
    triples = [(calls[i], json.loads(calls[i + 1]), calls[i + 2]) for i in range(0, len(calls), 3)]
    generate = [body for path, body, _ in triples if path == "/generate"]
    assert [p["parameters"].get("adapter_id") for p in generate] == [None, "org/a", 'odd"name']
    assert all(p["parameters"]["max_new_tokens"] == 8 for p in generate)
    routes = [path for path, _, _ in triples]
    assert {"/generate_stream", "/v1/completions", "/v1/chat/completions"} <= set(routes)
    chat = [body for path, body, _ in triples if path == "/v1/chat/completions"]
    assert [b["model"] for b in chat] == ["mistralai/Mistral-7B-Instruct-v0.1", "org/a", 'odd"name']
    assert all(b["stream"] is True for b in chat)
    markers = {path: want for path, _, want in triples}
    assert markers["/generate_stream"] == '"generated_text":"' and markers["/v1/chat/completions"] == "[DONE]"


def test_helm_test_pod_can_be_disabled_and_is_not_a_release_object() -> None:
    assert render_hooks({"tests": {"enabled": False}}) == []
    assert "Pod" not in kinds(render())


def test_notes_explain_how_to_reach_and_load_test() -> None:
    notes = render_templates({"loadBalancer": {"enabled": True}})["lorax/templates/NOTES.txt"]
    assert "lorax.lorax.svc.cluster.local:80" in notes
    assert "port-forward svc/lorax" in notes
    assert "get svc lorax-lb" in notes
    assert "locust -f loadtest/ --host" in notes
    assert "helm test lorax" in notes
    assert "--host http://localhost:8080" in render_templates()["lorax/templates/NOTES.txt"]
    arn = "arn:aws:acm:us-east-1:123456789012:certificate/abc"
    tls = render_templates({"loadBalancer": {"enabled": True, "certificateArn": arn}})
    assert "locust -f loadtest/ --host https://$LB:443" in tls["lorax/templates/NOTES.txt"]


def test_notes_commands_survive_quotes_in_ids() -> None:
    """An S3 key may hold quotes and `$(...)`: the printed curl command stays one safe, valid shell word."""
    adapter = """it's/"odd"$(id)`y`"""
    values = {
        "adapters": {"preloaded": [adapter], "source": "s3", "s3": {"bucket": "adapters"}},
        "serviceAccount": {"create": True},
    }
    notes = render_templates(values)["lorax/templates/NOTES.txt"]
    line = next(line for line in notes.splitlines() if "max_new_tokens" in line)
    words = shlex.split(line)
    body = json.loads(words[words.index("-d") + 1])
    assert body["parameters"]["adapter_id"] == adapter
    assert body["parameters"]["max_new_tokens"] == 32


def test_nlb_health_checks_and_deregistration_follow_the_drain() -> None:
    """The NLB checks LoRAX's /health and keeps a stopping pod's connections for preStop + the 90 s drain."""
    prefix = "service.beta.kubernetes.io/aws-load-balancer-"
    lb = find(render({"loadBalancer": {"enabled": True}, "preStopSleepSeconds": 20,
                      "terminationGracePeriodSeconds": 150}), "Service", "lorax-lb")  # fmt: skip
    annotations = lb["metadata"]["annotations"]
    assert annotations[prefix + "healthcheck-path"] == "/health"
    assert annotations[prefix + "healthcheck-port"] == "traffic-port"
    assert annotations[prefix + "healthcheck-protocol"] == "HTTP"
    assert annotations[prefix + "target-group-attributes"] == "deregistration_delay.timeout_seconds=110"
    lb = find(
        render({"loadBalancer": {"enabled": True, "deregistrationDelaySeconds": 30}}), "Service", "lorax-lb"
    )
    assert lb["metadata"]["annotations"][prefix + "target-group-attributes"].endswith("=30")


def test_notes_tell_how_to_enable_the_readiness_gate() -> None:
    notes = render_templates({"loadBalancer": {"enabled": True}})["lorax/templates/NOTES.txt"]
    assert "kubectl label namespace lorax elbv2.k8s.aws/pod-readiness-gate-inject=enabled" in notes
    off = {"loadBalancer": {"enabled": True, "podReadinessGate": False}}
    assert "pod-readiness-gate-inject" not in render_templates(off)["lorax/templates/NOTES.txt"]
