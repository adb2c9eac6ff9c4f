"""Address ranges that add up to the whole internet are refused, for loadBalancer.sourceRanges and
networkPolicy.loadBalancerCidrs; ranges that miss one address at either end of IPv4, or one /16 at either end
of IPv6's public 2000::/3, are not the whole internet and render. Both sides of validate-runtime.yaml's rule
at each bound (the ranges come from Python's ipaddress, not from the chart's arithmetic).
Written against a survivor of `python3 bench/mutate.py chart-validate-runtime` (seed 18, docs/mutation.md)."""

from __future__ import annotations

import ipaddress
from typing import Any

import helm_python as helm
import pytest
from chart_helpers import render


def _all_but(whole: str, hole: str) -> list[str]:
    """The CIDRs covering `whole` except `hole` (ipaddress.address_exclude: one network per prefix length)."""
    return [str(n) for n in ipaddress.ip_network(whole).address_exclude(ipaddress.ip_network(hole))]


HOLES = {
    "ipv4-first-address": ("0.0.0.0/0", "0.0.0.0/32"),
    "ipv4-last-address": ("0.0.0.0/0", "255.255.255.255/32"),
    "ipv6-first-16": ("2000::/3", "2000::/16"),
    "ipv6-last-16": ("2000::/3", "3fff::/16"),
}


def _values(key: str, cidrs: list[str]) -> dict[str, Any]:
    if key == "loadBalancer.sourceRanges":
        return {"loadBalancer": {"enabled": True, "scheme": "internet-facing", "sourceRanges": cidrs}}
    return {"loadBalancer": {"enabled": True}, "networkPolicy": {"enabled": True, "loadBalancerCidrs": cidrs}}


@pytest.mark.parametrize("key", ["loadBalancer.sourceRanges", "networkPolicy.loadBalancerCidrs"])
@pytest.mark.parametrize("hole", HOLES)
def test_ranges_missing_one_block_at_an_end_render_and_with_it_are_refused(hole: str, key: str) -> None:
    whole, missing = HOLES[hole]
    ranges = _all_but(whole, missing)
    render(_values(key, ranges))
    with pytest.raises(helm.HelmReleaseError, match=f"{key}.* add up to the whole internet"):
        render(_values(key, [*ranges, missing]))
