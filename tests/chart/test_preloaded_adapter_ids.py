"""adapters.preloaded ids each source could resolve, both sides of every rule validate-runtime.yaml mirrors:
the S3 path and bucket rules of LoRAX (server/lorax_server/utils/sources/s3.py:26-48, bucket names 3-63
characters), Hugging Face Hub ids (huggingface_hub validate_repo_id: at most 96 characters a part, no '--' or
'..'), absolute local paths, and no whitespace anywhere.
Written against a survivor of `python3 bench/mutate.py chart-validate-runtime` (seed 17, docs/mutation.md)."""

from __future__ import annotations

from typing import Any

import helm_python as helm
import pytest
from chart_helpers import container, flag_values, render

S3_PATH = "is no S3 adapter path"
S3_ID = "is no S3 adapter id"
HUB = "is no Hugging Face Hub id"
LOCAL = "is no absolute path"
SPACE = "contains whitespace"

# (source, id, the refusal's phrase or None when it renders), s3 ids without adapters.s3.bucket
CASES = [
    ("s3", "s3://abc/k", None),  # a bucket of 3 characters, the shortest
    ("s3", "s3://ab/k", S3_PATH),
    ("s3", "s3://" + "b" * 63 + "/k", None),  # 63, the longest
    ("s3", "s3://" + "b" * 64 + "/k", S3_PATH),
    ("s3", "s3://my.bucket-1/dir/adapter", None),
    ("s3", "s3://My-Bucket/k", S3_PATH),  # upper case
    ("s3", "s3://-bucket/k", S3_PATH),  # starts with '-'
    ("s3", "s3://my-bucket", S3_PATH),  # no key
    ("s3", "s3://my-bucket/dir/", S3_PATH),  # a folder, not a key
    ("s3", "my-bucket/key", None),  # <bucket>/<key> without the scheme
    ("s3", "just-a-key", S3_ID),
    ("s3", "My_Bucket/key", S3_ID),
    ("hub", "a" * 96, None),
    ("hub", "a" * 97, HUB),
    ("hub", "org/" + "a" * 96, None),
    ("hub", "org/" + "a" * 97, HUB),
    ("hub", "org/a.b_c-d", None),
    ("hub", "org/a--b", HUB),
    ("hub", "org/a..b", HUB),
    ("hub", "org/a/b", HUB),
    ("local", "/adapters/a", None),
    ("local", "adapters/a", LOCAL),
    ("local", "/adapters/a b", SPACE),
    ("hub", "org/a b", SPACE),
]


def _values(source: str, adapter: str, **adapters: Any) -> dict[str, Any]:
    return {
        "adapters": {"preloadedSource": source, "preloaded": [adapter], **adapters},
        "serviceAccount": {"create": True},  # S3 needs an identity (tests/chart/test_s3_credentials.py)
    }


@pytest.mark.parametrize(("source", "adapter", "problem"), CASES, ids=[f"{c[0]}-{c[1][:24]}" for c in CASES])
def test_a_preloaded_id_renders_or_is_refused_naming_what_is_wrong(
    source: str, adapter: str, problem: str | None
) -> None:
    if problem is None:
        args = container(render(_values(source, adapter)))["args"]
        assert flag_values(args, "--preloaded-adapter-ids") == [adapter]
        return
    with pytest.raises(helm.HelmReleaseError) as caught:
        render(_values(source, adapter))
    message = str(caught.value)
    assert f'adapters.preloaded[0] "{adapter}" {problem}' in message
    assert f"adapters.preloadedSource (now {source})" in message


def test_a_bare_key_is_an_s3_id_once_adapters_s3_bucket_is_set() -> None:
    render(_values("s3", "just-a-key", s3={"bucket": "adapters"}))
    # the bucket names where keys live; an s3:// path still needs a valid bucket of its own
    with pytest.raises(helm.HelmReleaseError, match=S3_PATH):
        render(_values("s3", "s3://ab/k", s3={"bucket": "adapters"}))
