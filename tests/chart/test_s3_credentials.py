"""S3 in use with the namespace's default ServiceAccount: refused unless the pod carries AWS credentials of
its own (one of the variables boto3's credential chain reads), or runs as a bound ServiceAccount.
Both sides of validate-runtime.yaml's rule, one row per S3 source and per credential variable.
Written against a survivor of `python3 bench/mutate.py chart-validate-runtime` (seed 17, docs/mutation.md)."""

from __future__ import annotations

import re
from typing import Any

import helm_python as helm
import pytest
from chart_helpers import env_of, render

REFUSED = (
    "S3 is in use (model.source, adapters.source or adapters.preloadedSource is s3) but the pods would run"
)
S3_SOURCES = {
    "model": {"model": {"source": "s3", "id": "models/mistral-7b"}},
    "adapters": {"adapters": {"source": "s3"}},
    "preloaded": {"adapters": {"preloadedSource": "s3", "preloaded": ["a/b"], "s3": {"bucket": "adapters"}}},
}
# The variables the chart takes as "the pod has credentials of its own" (boto3's chain reads each).
CREDENTIAL_ENV = [
    "AWS_ACCESS_KEY_ID",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_PROFILE",
]


def _with_env(values: dict[str, Any], name: str) -> dict[str, Any]:
    return {**values, "server": {"extraEnv": [{"name": name, "value": "x"}]}}


@pytest.mark.parametrize("source", S3_SOURCES)
def test_s3_with_the_default_service_account_and_no_credentials_is_refused(source: str) -> None:
    with pytest.raises(helm.HelmReleaseError, match=re.escape(REFUSED)):
        render(S3_SOURCES[source])
    with pytest.raises(helm.HelmReleaseError, match=re.escape(REFUSED)):
        render(_with_env(S3_SOURCES[source], "AWS_REGION"))  # a region is no credential


@pytest.mark.parametrize("name", CREDENTIAL_ENV)
@pytest.mark.parametrize("source", S3_SOURCES)
def test_each_credential_variable_lets_s3_through_with_the_default_service_account(
    source: str, name: str
) -> None:
    assert name in env_of(render(_with_env(S3_SOURCES[source], name)))


@pytest.mark.parametrize(
    "account", [{"create": True}, {"create": False, "name": "adapters-reader"}], ids=["created", "existing"]
)
def test_a_service_account_other_than_the_default_lets_s3_through(account: dict[str, Any]) -> None:
    for values in S3_SOURCES.values():
        render({**values, "serviceAccount": account})


def test_a_source_other_than_s3_needs_no_credentials() -> None:
    render({"model": {"source": "hub"}, "adapters": {"source": "hub", "preloadedSource": "local"}})
    render(
        {
            "adapters": {"source": "s3", "preloadedSource": "hub", "preloaded": ["org/adapter"]},
            "serviceAccount": {"create": True},
        }
    )
    with pytest.raises(helm.HelmReleaseError, match=re.escape(REFUSED)):
        render(
            {
                "adapters": {
                    "source": "hub",
                    "preloadedSource": "s3",
                    "preloaded": ["a/b"],
                    "s3": {"bucket": "b"},
                }
            }
        )
