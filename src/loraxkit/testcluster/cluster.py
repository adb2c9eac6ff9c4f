"""What tests do with the loopback cluster: run the real helm CLI, add fake EKS nodes, read where the
scheduler put pods (or why it left them Pending), and clean namespaces up."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.dynamic import DynamicClient

from loraxkit import gotools
from loraxkit.eks.cluster import NODEGROUP_LABEL
from loraxkit.testcluster.controlplane import BUILD_COMMAND, ControlPlane


class ClusterTestError(AssertionError):
    """A cluster operation did not end as expected; the message says what the cluster showed."""


@dataclass(frozen=True)
class Placement:
    pod: str
    node: str | None  # None: Pending
    group: str | None  # eks.amazonaws.com/nodegroup of the node
    reason: str  # the scheduler's PodScheduled message when Pending


class LoopbackCluster:
    def __init__(self, plane: ControlPlane, helm_home: Path) -> None:
        self.plane = plane
        self.kubeconfig = plane.kubeconfig
        self.api = k8s_config.new_client_from_config(config_file=str(plane.kubeconfig))
        self.core = k8s.CoreV1Api(self.api)
        self.apps = k8s.AppsV1Api(self.api)
        self.helm_home = helm_home
        helm = gotools.bin_path("helm", "helm")
        if helm is None:
            raise ClusterTestError(f"helm is not built; run `{BUILD_COMMAND}`")
        self.helm_bin = str(helm)

    # -- helm --------------------------------------------------------------------------------------

    def helm_env(self) -> dict[str, str]:
        """The helm CLI's environment: this cluster, and Helm's own folders kept out of the user's home."""
        home = self.helm_home
        return {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "HELM_CACHE_HOME": str(home / "cache"),
            "HELM_CONFIG_HOME": str(home / "config"),
            "HELM_DATA_HOME": str(home / "data"),
        }

    def helm(self, *args: str, check: bool = True, timeout: float = 240) -> subprocess.CompletedProcess[str]:
        """`helm ARGS...` exactly as a user types it, run from the repository root."""
        result = subprocess.run(
            [self.helm_bin, *args],
            env=self.helm_env(),
            cwd=gotools.REPO,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise ClusterTestError(
                f"helm {' '.join(args)} exited {result.returncode}:\n"
                f"{result.stderr.strip()}\n{result.stdout[-2000:]}"
            )
        return result

    # -- nodes -------------------------------------------------------------------------------------

    def add_nodes(self, manifests: Iterable[dict[str, Any]], timeout: float = 120) -> list[str]:
        names = []
        nodes = DynamicClient(self.api).resources.get(api_version="v1", kind="Node")
        for manifest in manifests:
            nodes.create(body=manifest)  # untyped: the typed client wants nodeInfo fields KWOK fills later
            names.append(manifest["metadata"]["name"])
        self.wait(lambda: all(self.node_schedulable(n) for n in names), f"nodes {names} Ready", timeout)
        return names

    def node_schedulable(self, name: str) -> bool:
        """Ready (KWOK's heartbeat) and without the not-ready taint the node-lifecycle controller removes."""
        node = self.core.read_node(name)
        ready = any(c.type == "Ready" and c.status == "True" for c in node.status.conditions or [])
        startup_taints = [t for t in node.spec.taints or [] if t.key.startswith("node.kubernetes.io/")]
        return ready and not startup_taints

    def delete_nodes(self, names: Iterable[str]) -> None:
        for name in names:
            self.core.delete_node(name)

    # -- pods --------------------------------------------------------------------------------------

    def placements(self, namespace: str, selector: str = "") -> list[Placement]:
        groups = {
            n.metadata.name: (n.metadata.labels or {}).get(NODEGROUP_LABEL)
            for n in self.core.list_node().items
        }
        found = []
        for pod in self.core.list_namespaced_pod(namespace, label_selector=selector).items:
            if pod.metadata.deletion_timestamp is not None:
                continue
            node = pod.spec.node_name
            reason = ""
            for cond in pod.status.conditions or []:
                if cond.type == "PodScheduled" and cond.status != "True":
                    reason = cond.message or cond.reason or ""
            found.append(Placement(pod.metadata.name, node, groups.get(node) if node else None, reason))
        return sorted(found, key=lambda p: p.pod)

    def wait_pending(self, namespace: str, selector: str = "", timeout: float = 60) -> list[Placement]:
        """Wait until the scheduler has tried every pod (a Pending one carries its message); return them."""

        def decided() -> bool:
            pods = self.placements(namespace, selector)
            return bool(pods) and all(p.node or p.reason for p in pods)

        self.wait(decided, f"the scheduler's verdict on pods in {namespace}", timeout)
        return self.placements(namespace, selector)

    # -- namespaces --------------------------------------------------------------------------------

    def delete_namespace(self, namespace: str, timeout: float = 180) -> None:
        """Delete and wait until gone: KWOK completes pod deletions, the namespace controller the rest."""
        try:
            self.core.delete_namespace(namespace)
        except k8s.ApiException as exc:
            if exc.status != 404:
                raise
        self.wait(lambda: not self.exists_namespace(namespace), f"namespace {namespace} deleted", timeout)

    def exists_namespace(self, namespace: str) -> bool:
        return any(ns.metadata.name == namespace for ns in self.core.list_namespace().items)

    def events(self, namespace: str, limit: int = 30) -> str:
        items = self.core.list_namespaced_event(namespace).items
        items.sort(key=lambda e: str(e.last_timestamp or e.event_time or ""))
        return "\n".join(
            f"{e.type} {e.reason} {e.involved_object.kind}/{e.involved_object.name}: {e.message}"
            for e in items[-limit:]
        )

    @staticmethod
    def wait(ready: Callable[[], bool], what: str, timeout: float, interval: float = 0.5) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if ready():
                return
            if time.monotonic() > deadline:
                raise ClusterTestError(f"timed out after {timeout:.0f} s waiting for {what}")
            time.sleep(interval)
