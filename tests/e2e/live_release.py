"""A LoRAX release on a live cluster: install with helm-python-sdk, talk to a pod over a port-forward made
with the official kubernetes client, collect logs and events, uninstall.
"""

from __future__ import annotations

import http.client
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.stream import portforward

from loraxkit.chart.render import CHART_DIR, load_values, merge_values, render

REPO = Path(__file__).resolve().parents[2]
DEFAULT_PROFILE = REPO / "values" / "g6e-l40s-mistral-7b-instruct-bf16.yaml"
LOG_TAIL_LINES = 200
EVENTS_SHOWN = 40


@dataclass(frozen=True)
class Settings:
    """What the run asked for (tests/e2e/conftest.py options)."""

    kubeconfig: str
    value_files: tuple[Path, ...]
    sets: tuple[str, ...]
    release: str
    namespace: str
    adapter: str | None
    ready_timeout: int
    keep: bool

    @classmethod
    def from_pytest(cls, config: pytest.Config, kubeconfig: str) -> Settings:
        files = config.getoption("lorax_values", default=None) or [str(DEFAULT_PROFILE)]
        return cls(
            kubeconfig=kubeconfig,
            value_files=tuple(Path(f) for f in files),
            sets=tuple(config.getoption("lorax_set", default=None) or []),
            release=config.getoption("lorax_release", default=None) or "lorax-e2e",
            namespace=config.getoption("lorax_namespace", default=None) or "lorax-e2e",
            adapter=config.getoption("lorax_adapter", default=None),
            ready_timeout=int(config.getoption("lorax_ready_timeout", default=None) or 2700),
            keep=bool(config.getoption("lorax_keep", default=False)),
        )

    def values(self) -> dict[str, Any]:
        """The -f files then the --set strings, combined as `helm install -f ... --set ...` would."""
        combined = load_values(self.value_files)
        for item in self.sets:
            combined = merge_values(combined, helm.parse_set_string(item))
        return combined


@dataclass(frozen=True)
class HttpResult:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class LoraxRelease:
    """An installed release and the objects it rendered."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.values = settings.values()
        with helm.Chart.load(str(CHART_DIR)) as chart:
            self.effective_values = chart.merge_values(self.values)
        manifests = render(self.values, release=settings.release, namespace=settings.namespace)
        deployment = next(d for d in manifests if d["kind"] == "Deployment")
        self.deployment = str(deployment["metadata"]["name"])
        self.selector = ",".join(f"{k}={v}" for k, v in deployment["spec"]["selector"]["matchLabels"].items())
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        self.port = int(next(p["containerPort"] for p in container["ports"] if p.get("name") == "http"))
        self.core = k8s.CoreV1Api(k8s_config.new_client_from_config(config_file=settings.kubeconfig))
        self.helm = helm.Config(kubeconfig_path=settings.kubeconfig, namespace=settings.namespace)

    @property
    def model_id(self) -> str:
        return str(self.effective_values["model"]["id"])

    @property
    def adapter(self) -> str | None:
        preloaded = (self.effective_values.get("adapters") or {}).get("preloaded") or []
        return self.settings.adapter or (str(preloaded[0]) if preloaded else None)

    def install(self) -> None:
        # No Helm wait: the Deployment is awaited with pytest-helm-charts' helper, which reports what it saw.
        self.helm.install(
            str(CHART_DIR),
            self.settings.release,
            self.values,
            namespace=self.settings.namespace,
            create_namespace=True,
            timeout=300,
        )

    def uninstall(self) -> None:
        self.helm.uninstall(self.settings.release, ignore_not_found=True, timeout=600)

    def run_helm_test(self, timeout: int = 900) -> dict[str, Any]:
        return dict(self.helm.test(self.settings.release, timeout=timeout, logs=True))

    def pods(self) -> list[k8s.V1Pod]:
        return list(
            self.core.list_namespaced_pod(self.settings.namespace, label_selector=self.selector).items
        )

    def ready_pod(self) -> str:
        for pod in self.pods():
            conditions = pod.status.conditions or []
            if any(c.type == "Ready" and c.status == "True" for c in conditions):
                return str(pod.metadata.name)
        raise AssertionError(f"no Ready pod matches {self.selector} in {self.settings.namespace}")

    def request(self, method: str, path: str, body: Any = None, timeout: float = 300) -> HttpResult:
        """One HTTP request to a Ready LoRAX pod through a fresh API-server port-forward."""
        forward = portforward(
            self.core.connect_get_namespaced_pod_portforward,
            self.ready_pod(),
            self.settings.namespace,
            ports=str(self.port),
        )
        try:
            conn = http.client.HTTPConnection("localhost", self.port, timeout=timeout)
            conn.sock = forward.socket(self.port)  # the forwarded stream replaces a TCP connect
            conn.sock.settimeout(timeout)
            payload = None if body is None else json.dumps(body).encode()
            conn.request(
                method,
                path,
                body=payload,
                headers={"Content-Type": "application/json", "Connection": "close"},
            )
            response = conn.getresponse()
            return HttpResult(
                response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
            )
        finally:
            forward.close()

    def diagnostics(self) -> str:
        """Logs of every container of the release's pods, then the namespace's latest events."""
        lines: list[str] = []
        ns = self.settings.namespace
        try:
            for pod in self.pods():
                spec = pod.spec
                for container in [*(spec.init_containers or []), *spec.containers]:
                    lines.append(f"--- {pod.metadata.name}/{container.name} (phase {pod.status.phase})")
                    try:
                        lines.append(
                            self.core.read_namespaced_pod_log(
                                pod.metadata.name, ns, container=container.name, tail_lines=LOG_TAIL_LINES
                            )
                        )
                    except k8s.ApiException as exc:
                        lines.append(f"(no log: {exc.reason})")
            events = sorted(
                self.core.list_namespaced_event(ns).items,
                key=lambda e: str(e.last_timestamp or e.event_time or ""),
            )
            lines.append(f"--- last {EVENTS_SHOWN} events in {ns}")
            lines += [
                f"{e.type} {e.reason} {e.involved_object.kind}/{e.involved_object.name}: {e.message}"
                for e in events[-EVENTS_SHOWN:]
            ]
        except Exception as exc:  # diagnostics must never hide the original failure
            lines.append(f"(could not collect diagnostics: {exc!r})")
        return "\n".join(lines)
