"""Back-off after a failed connection (refused port, DNS, connect timeout): a closed port must not turn
into thousands of failures a second. The delay doubles from the first value up to the cap; users add +-20 %
jitter so they do not retry in lock step; the next answer resets it."""

from __future__ import annotations

BACKOFF_FIRST_S = 0.1
BACKOFF_CAP_S = 5.0
JITTER = 0.2


def backoff_after(previous: float) -> float:
    """The next back-off delay (before jitter) after a failed connection."""
    return BACKOFF_FIRST_S if previous <= 0 else min(previous * 2.0, BACKOFF_CAP_S)
