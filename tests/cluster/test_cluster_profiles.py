"""Every values/ profile, installed by the real helm CLI with the README's command and --wait, is placed by
the real kube-scheduler on the node group it is meant for; `loraxkit eks check` agrees that it fits."""

from __future__ import annotations

from pathlib import Path

import pytest
from cluster_helpers import PROFILES, describe, eks_check_verdict, install, intended_group

from loraxkit.testcluster.cluster import ClusterTestError, LoopbackCluster


@pytest.mark.parametrize("profile", PROFILES, ids=[p.stem for p in PROFILES])
def test_profile_installs_and_lands_on_its_node_group(
    loopback_cluster: LoopbackCluster, namespace: str, profile: Path
) -> None:
    try:
        install(loopback_cluster, profile.relative_to(profile.parents[1]))
    except ClusterTestError as exc:
        placements = loopback_cluster.placements(namespace)
        pytest.fail(f"{exc}\npods:\n{describe(placements)}\nevents:\n{loopback_cluster.events(namespace)}")
    placements = loopback_cluster.placements(namespace, "app.kubernetes.io/instance=lorax")
    assert placements, "the release created no pods"
    assert {p.group for p in placements} == {intended_group(profile)}, describe(placements)
    fits, output = eks_check_verdict(profile)
    assert fits, (
        f"the scheduler placed {profile.name} but `loraxkit eks check` says it does not fit:\n{output}"
    )
