"""The live suite: on a real cluster when asked for, otherwise on the loopback control plane.

Run it on a real cluster:  pytest tests/e2e --kubeconfig ~/.kube/config [--lorax-values values/<profile>.yaml]
or export KUBECONFIG and run `pytest tests/e2e -m e2e`. Name tests/e2e on the command line: pytest reads this
file's --lorax-* options only then. A KUBECONFIG that merely happens to be exported does not make a plain
`pytest` install a GPU release into that cluster: the run has to ask for the live suite.

Without that, the suite runs on the loopback Kubernetes control plane (loraxkit.testcluster): the release is
installed, scheduled onto a fake GPU node and made Running/Ready by KWOK; the checks that need a running
container (HTTP calls, `helm test`) skip with that reason, since no kubelet runs there.
"""

from __future__ import annotations

import os
from collections.abc import Generator
from typing import Any

import pytest
from live_release import DEFAULT_PROFILE

from loraxkit.testcluster import pytest_plugin as loopback

NO_CONTAINER = (
    "e2e on the loopback control plane: needs a running container (no kubelet there); "
    "run on a real cluster with --kubeconfig FILE"
)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("lorax-e2e", "LoRAX live-cluster suite (tests/e2e)")
    group.addoption(
        "--lorax-values",
        action="append",
        default=None,
        metavar="FILE",
        help=f"values file for the release, repeatable like helm -f (default: {DEFAULT_PROFILE.name})",
    )
    group.addoption(
        "--lorax-set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra value like helm --set, repeatable (e.g. gpu.count=1)",
    )
    group.addoption("--lorax-release", default="lorax-e2e", help="release name (default: lorax-e2e)")
    group.addoption(
        "--lorax-namespace", default="lorax-e2e", help="namespace, created if missing (default: lorax-e2e)"
    )
    group.addoption(
        "--lorax-adapter",
        default=None,
        metavar="ADAPTER_ID",
        help="adapter for the /generate-with-adapter test (default: the first adapters.preloaded)",
    )
    group.addoption(
        "--lorax-ready-timeout",
        type=int,
        default=2700,
        metavar="SECONDS",
        help="how long to wait for the Deployment: image pull + model download (default: 2700)",
    )
    group.addoption(
        "--lorax-keep", action="store_true", help="leave the release installed after the run (to debug it)"
    )


def _kubeconfig(config: pytest.Config) -> str:
    option = config.getoption("kubeconfig", default=None)  # pytest-helm-charts' --kubeconfig
    return option or os.environ.get("KUBECONFIG", "")


def e2e_skip_reason(config: pytest.Config) -> str | None:
    """Why the live suite cannot run on a real cluster, or None when it should (else: loopback)."""
    if not _kubeconfig(config):
        return "e2e: no cluster; pass --kubeconfig FILE (or export KUBECONFIG and add -m e2e) to run it"
    asked = bool(config.getoption("kubeconfig", default=None))
    markexpr = config.getoption("markexpr", default="") or ""
    if not asked and not ("e2e" in markexpr and "not e2e" not in markexpr):
        return (
            "e2e: KUBECONFIG is set but this run did not ask for the live suite; add -m e2e or --kubeconfig"
        )
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if e2e_skip_reason(config) is None:
        return
    for item in items:  # not asked for a real cluster: the suite needs the loopback control plane
        if item.get_closest_marker("e2e"):
            item.add_marker(loopback.MARKER)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    # Runs before any fixture of the test is set up; skipping from here folds the skips into one report line.
    if e2e_skip_reason(item.config) is None or not item.get_closest_marker("e2e"):
        return
    loopback.require_cluster()  # no tools and no Go: the plugin's one skip line
    if item.get_closest_marker("needs_container"):
        pytest.skip(NO_CONTAINER)


@pytest.fixture(scope="module")
def kube_config(request: pytest.FixtureRequest) -> str:
    """pytest-helm-charts' kubeconfig: the real cluster's when asked for, else the loopback plane's."""
    if e2e_skip_reason(request.config) is None:
        return _kubeconfig(request.config)
    return str(request.getfixturevalue(loopback.FIXTURE).kubeconfig)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Generator[None, Any, Any]:
    """Attach the LoRAX pods' logs and events to every failing live test."""
    report = yield
    release = getattr(item, "funcargs", {}).get("lorax_release")
    if report.when == "call" and report.failed and release is not None:
        report.sections.append(("LoRAX pods: logs and events", release.diagnostics()))
    return report
