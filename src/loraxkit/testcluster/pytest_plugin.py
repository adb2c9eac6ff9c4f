"""pytest wiring for the loopback cluster (loaded by tests/conftest.py).

* After collection, if any selected test uses the cluster and a binary is missing, build the tools
  with Go (outside any test, so the 300 s per-test timeout does not apply; a warm cache costs nothing).
* Without Go, every cluster test skips with ONE line naming the build command.
* `loopback_cluster` (session): one control plane for the whole run, with fake nodes from
  eks/cluster.yaml, torn down by pid at the end.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator

import pytest

from loraxkit import gotools
from loraxkit.eks.cluster import load_cluster
from loraxkit.testcluster.cluster import LoopbackCluster
from loraxkit.testcluster.controlplane import BUILD_COMMAND, TOOLS, ControlPlane, missing_binaries
from loraxkit.testcluster.nodes import fake_nodes

FIXTURE = "loopback_cluster"
MARKER = "cluster"  # for tests that reach the cluster other than through the fixture's name (tests/e2e)
CLUSTER_FILE = gotools.REPO / "eks" / "cluster.yaml"
# Two nodes per group: room for two releases, and a group that can be filled on purpose.
NODES_PER_GROUP = 2
_state: dict[str, str] = {}  # per session: "skip" or "error" -> message (set once after collection)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{MARKER}: runs against the loopback Kubernetes control plane")
    config.addinivalue_line(
        "markers", "needs_container: needs a running container (skipped on the loopback plane)"
    )


def _uses_cluster(item: pytest.Item) -> bool:
    return FIXTURE in getattr(item, "fixturenames", ()) or item.get_closest_marker(MARKER) is not None


def require_cluster() -> None:
    """Skip (no tools, no Go) or fail (the build failed) the current test; one report line for all."""
    if "skip" in _state:
        pytest.skip(_state["skip"])
    if "error" in _state:
        pytest.fail(_state["error"], pytrace=False)


def pytest_collection_finish(session: pytest.Session) -> None:
    _state.clear()
    if not any(_uses_cluster(item) for item in session.items) or not missing_binaries():
        return
    if gotools.go_binary() is None:
        _state["skip"] = (
            f"cluster: Kubernetes tools not built and no Go on PATH; install Go >= 1.26, "
            f"then `{BUILD_COMMAND}`"
        )
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    started = time.monotonic()
    if reporter is not None:
        reporter.write_line(
            f"cluster tests: building {', '.join(TOOLS)} with Go (cold: minutes; once per machine)"
        )
    try:
        gotools.build_all(TOOLS, echo=reporter is None)
    except gotools.GoToolError as exc:
        _state["error"] = f"building the cluster tools failed:\n{exc}"
        return
    if reporter is not None:
        reporter.write_line(f"cluster tests: tools built in {time.monotonic() - started:.0f} s")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    if _uses_cluster(item):
        require_cluster()


@pytest.fixture(scope="session")
def loopback_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoopbackCluster]:
    workdir = tmp_path_factory.mktemp("control-plane")
    plane = ControlPlane(workdir)
    plane.start()
    try:
        cluster = LoopbackCluster(plane, workdir / "helm")
        nodes = fake_nodes(load_cluster(CLUSTER_FILE), per_group=NODES_PER_GROUP)
        cluster.add_nodes(nodes)
        plane.timings["nodes_ready_s"] = time.monotonic() - plane.started_at
        if os.environ.get("LORAXKIT_CLUSTER_TIMINGS"):
            print(f"\ncontrol plane timings: {plane.timings}", file=sys.stderr)
        yield cluster
    except BaseException:
        sys.stderr.write(f"\ncontrol-plane logs ({workdir}):\n{plane.logs()}\n")
        raise
    finally:
        plane.stop()
