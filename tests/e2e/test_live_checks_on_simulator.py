"""The live suite's request path and assertions, run against the project's LoRAX simulator.

No cluster runs here, so the API-server port-forward is the one stand-in: it hands the HTTP client a TCP
socket to a local `loraxkit sim` instead of a forwarded stream. Everything above it (request encoding,
response and header parsing, the live tests' own assertions) runs as it would against a real pod.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import live_release
import pytest
import test_lorax_live as live
from live_release import DEFAULT_PROFILE, LoraxRelease, Settings

from loraxkit.sim.process import SimulatorProcess

KUBECONFIG = """apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
"""


class _LocalForward:
    """Stands in for kubernetes.stream.portforward: `.socket(port)` is a TCP connection to the simulator."""

    def __init__(self, sim_port: int) -> None:
        self._socket = socket.create_connection(("127.0.0.1", sim_port), timeout=30)

    def socket(self, port: int) -> socket.socket:
        return self._socket

    def close(self) -> None:
        self._socket.close()


@pytest.fixture(scope="module")
def simulated_release(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoraxRelease]:
    kubeconfig = tmp_path_factory.mktemp("kube") / "config"
    kubeconfig.write_text(KUBECONFIG)
    settings = Settings(
        kubeconfig=str(kubeconfig),
        value_files=(DEFAULT_PROFILE,),
        sets=(),
        release="lorax-e2e",
        namespace="lorax-e2e",
        adapter=None,
        ready_timeout=60,
        keep=False,
    )
    release = LoraxRelease(settings)
    with (
        SimulatorProcess("--profile", "synthetic", "--model-id", release.model_id) as sim,
        pytest.MonkeyPatch.context() as patch,
    ):
        patch.setattr(live_release, "portforward", lambda *args, **kwargs: _LocalForward(sim.port))
        patch.setattr(release, "ready_pod", lambda: "simulated-pod")
        yield release


def test_health(simulated_release: LoraxRelease) -> None:
    live.test_health_answers_200(simulated_release)


def test_info(simulated_release: LoraxRelease) -> None:
    live.test_info_names_the_configured_model(simulated_release)


def test_generate_base_model(simulated_release: LoraxRelease) -> None:
    live.test_generate_with_the_base_model(simulated_release)


def test_generate_adapter(simulated_release: LoraxRelease) -> None:
    live.test_generate_with_an_adapter(simulated_release)


def test_a_wrong_model_fails_the_info_check(simulated_release: LoraxRelease) -> None:
    original = simulated_release.effective_values["model"]["id"]
    simulated_release.effective_values["model"]["id"] = "someone/else"
    try:
        with pytest.raises(AssertionError):
            live.test_info_names_the_configured_model(simulated_release)
    finally:
        simulated_release.effective_values["model"]["id"] = original
