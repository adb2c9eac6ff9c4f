"""server.extraEnv setting a variable lorax-launcher reads as an argument: the refusal says what to do
instead, read from the launcher contract (charts/lorax/files/launcher-contract.yaml); a row per kind.
Written against a survivor of `python3 bench/mutate.py chart-validate-runtime` (seed 17, docs/mutation.md)."""

from __future__ import annotations

import helm_python as helm
import pytest
from chart_helpers import render

CASES = [
    # allowed in server.extraArgs, no chart value: move it there
    (
        "MAX_WAITING_TOKENS",
        "max-waiting-tokens",
        "put --max-waiting-tokens in server.extraArgs, where the chart checks it",
    ),
    # refused in extraArgs without a reason, rendered from a chart value: set the value
    ("MAX_INPUT_LENGTH", "max-input-length", "set server.maxInputLength"),
    # refused with a reason: the reason, even where a chart value exists (download-only has one)
    ("NGROK", "ngrok", "a public tunnel bypasses the chart's Services and NetworkPolicy"),
    ("DOWNLOAD_ONLY", "download-only", "the launcher would exit 0 after the download"),
]


@pytest.mark.parametrize(("env", "arg", "instead"), CASES, ids=[c[0] for c in CASES])
def test_a_launcher_variable_in_extra_env_is_refused_with_what_to_do_instead(
    env: str, arg: str, instead: str
) -> None:
    with pytest.raises(helm.HelmReleaseError) as caught:
        render({"server": {"extraEnv": [{"name": env, "value": "1"}]}})
    message = str(caught.value)
    assert f"server.extraEnv[0] sets {env}, which lorax-launcher reads as --{arg}" in message
    assert f"bypassing the chart's checks: {instead}" in message
    assert "%!" not in message  # no Go format error from a missing value
