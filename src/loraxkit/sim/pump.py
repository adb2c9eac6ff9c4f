"""Deferred work, one item per event-loop iteration.

The token loop of a decode step must start on time. Request parsing and trace encoding arrive in bursts
(hundreds of requests finish, and are re-sent, in the same step); run inline they would hold the loop for
tens of milliseconds. Queued here, each item runs in its own loop iteration, so a due step timer waits for
at most one item, not for the whole burst.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from typing import Any

log = logging.getLogger("loraxkit.sim")


class Pump:
    def __init__(self) -> None:
        self._items: deque[tuple[Callable[..., Any], tuple[Any, ...]]] = deque()
        self._scheduled = False

    def __len__(self) -> int:
        return len(self._items)

    def defer(self, fn: Callable[..., Any], *args: Any) -> None:
        self._items.append((fn, args))
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._run_one)

    def _run_one(self) -> None:
        fn, args = self._items.popleft()
        try:
            fn(*args)
        except Exception:  # deferred work must never stop the pump
            log.exception("deferred work failed")
        if self._items:
            asyncio.get_running_loop().call_soon(self._run_one)
        else:
            self._scheduled = False

    def drain(self) -> None:
        """Run everything still queued (shutdown)."""
        while self._items:
            fn, args = self._items.popleft()
            try:
                fn(*args)
            except Exception:
                log.exception("deferred work failed")
