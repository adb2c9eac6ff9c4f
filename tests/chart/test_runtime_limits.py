"""Both sides of the limits `templates/validate-runtime.yaml` enforces (what the API server, the kubelet or
the shards would refuse later): a value at the limit renders, one step past it is refused naming the key.
Written against the survivors of `python3 bench/mutate.py chart-validate-runtime` (docs/mutation.md)."""

from __future__ import annotations

from typing import Any

import helm_python as helm
import pytest
from chart_helpers import container, render

PVC = "persistentVolumeClaim"
SHARED_CACHE = {"type": PVC, PVC: {"accessModes": ["ReadWriteMany"], "storageClassName": "efs-sc"}}


def _refusal(values: dict[str, Any]) -> str:
    with pytest.raises(helm.HelmReleaseError) as caught:
        render(values)
    return str(caught.value)


# ------------------------------------------------------------------ ephemeral-storage: limit against request
def test_an_ephemeral_limit_equal_to_the_users_own_request_renders_and_one_below_is_refused() -> None:
    # the user's request (10Gi) is the one compared, not the emptyDir cache size (50Gi by default)
    at = {"resources": {"requests": {"ephemeral-storage": "10Gi"}, "limits": {"ephemeral-storage": "10Gi"}}}
    resources = container(render(at))["resources"]
    assert resources["requests"]["ephemeral-storage"] == resources["limits"]["ephemeral-storage"] == "10Gi"
    below = {"resources": {"requests": {"ephemeral-storage": "10Gi"}, "limits": {"ephemeral-storage": "9Gi"}}}
    expected = "resources.limits.ephemeral-storage (9Gi) is below resources.requests.ephemeral-storage (10Gi)"
    assert expected in _refusal(below)


def test_the_cache_size_is_the_ephemeral_request_only_for_an_emptydir_cache() -> None:
    # a claim-backed cache requests no node disk: a small ephemeral limit is fine
    values = {"modelCache": SHARED_CACHE, "resources": {"limits": {"ephemeral-storage": "1Gi"}}}
    assert "ephemeral-storage" not in container(render(values))["resources"].get("requests", {})
    # an emptyDir cache of 50Gi is requested as ephemeral-storage: a 50Gi limit holds it, 49Gi does not
    render({"resources": {"limits": {"ephemeral-storage": "50Gi"}}})
    message = _refusal({"resources": {"limits": {"ephemeral-storage": "49Gi"}}})
    assert "modelCache.emptyDir.sizeLimit (50Gi, requested as ephemeral-storage)" in message


# ------------------------------------------------------------------ volumes and mounts the pod already has
SCRATCH = {"name": "scratch", "emptyDir": {}}


@pytest.mark.parametrize("name", ["shm", "model-cache"])
def test_each_of_the_charts_own_volume_names_is_refused_for_an_extra_volume(name: str) -> None:
    message = _refusal({"extraVolumes": [{"name": name, "emptyDir": {}}]})
    assert f'extraVolumes[0].name "{name}" is already a volume of the pod (the chart\'s own shm or' in message
    render({"extraVolumes": [{"name": name + "-2", "emptyDir": {}}]})


def test_an_extra_volume_named_twice_is_refused_as_an_earlier_item() -> None:
    message = _refusal({"extraVolumes": [SCRATCH, SCRATCH]})
    assert (
        'extraVolumes[1].name "scratch" is already a volume of the pod (an earlier extraVolumes item)'
        in message
    )


@pytest.mark.parametrize("path", ["/data", "/dev/shm", "/data/", "/dev/shm/"])
def test_each_of_the_charts_own_mount_paths_is_refused_for_an_extra_mount(path: str) -> None:
    values = {"extraVolumes": [SCRATCH], "extraVolumeMounts": [{"name": "scratch", "mountPath": path}]}
    message = _refusal(values)
    assert (
        f'extraVolumeMounts[0].mountPath "{path}" is already mounted (the chart mounts the model cache'
        in message
    )
    below = {"extraVolumes": [SCRATCH], "extraVolumeMounts": [{"name": "scratch", "mountPath": path + "x"}]}
    render(below)


def test_two_extra_mounts_at_one_path_are_refused_as_an_earlier_item() -> None:
    mount = {"name": "scratch", "mountPath": "/scratch"}
    message = _refusal(
        {"extraVolumes": [SCRATCH], "extraVolumeMounts": [mount, {**mount, "mountPath": "/scratch/"}]}
    )
    assert (
        'extraVolumeMounts[1].mountPath "/scratch/" is already mounted (by an earlier extraVolumeMounts item)'
        in (message)
    )


@pytest.mark.parametrize("name", ["shm", "model-cache", "scratch"])
def test_a_mount_of_any_volume_the_pod_has_renders(name: str) -> None:
    render({"extraVolumes": [SCRATCH], "extraVolumeMounts": [{"name": name, "mountPath": "/mnt/x"}]})
