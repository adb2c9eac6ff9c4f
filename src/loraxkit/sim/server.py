"""Run the simulator: warm up (tokenizer, start-up delay) with the port closed, then bind and serve."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import time

from loraxkit.sim.app import SimConfig, Simulator
from loraxkit.sim.http import Connection
from loraxkit.sim.tokens import Vocabulary

log = logging.getLogger("loraxkit.sim")


async def serve(config: SimConfig, ready: asyncio.Event | None = None) -> None:
    """Serve until SIGTERM/SIGINT. Like LoRAX's router, the port stays closed until warm-up is done."""
    vocab = Vocabulary()
    _ = vocab.word_ids  # build the generation vocabulary before binding
    if config.startup_delay_s > 0:
        log.info("warming up for %.1f s (port closed)", config.startup_delay_s)
        await asyncio.sleep(config.startup_delay_s)
    sim = Simulator(config, vocab)
    loop = asyncio.get_running_loop()
    try:
        server = await loop.create_server(
            lambda: Connection(sim.handle, sim.connections, sim.pump.defer),
            config.host,
            config.port,
            reuse_address=True,
            backlog=4096,
        )
    except OSError as exc:
        raise SystemExit(
            f"cannot listen on {config.host}:{config.port} ({exc.strerror}): choose another --port"
        ) from None
    sim.start()
    # Move start-up objects (tokenizer, vocabulary) out of the collector's view and collect young objects
    # less often, so that collections inside a step's token loop stay short.
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    log.info(
        "LoRAX simulator (profile %s) listening on http://%s:%d",
        config.profile.name,
        config.host,
        config.port,
    )
    if ready is not None:
        ready.set()
    try:
        await stop.wait()
        await drain(server, sim, config.drain_timeout_s)
    finally:
        server.close()
        for conn in list(sim.connections):
            if conn.transport is not None:
                conn.transport.close()
        await sim.stop()


async def drain(server: asyncio.AbstractServer, sim: Simulator, timeout_s: float) -> None:
    """Like axum's graceful shutdown: stop accepting, close idle connections, let requests in flight
    finish (up to `timeout_s`; LoRAX's launcher kills the router after 90 s)."""
    server.close()
    for conn in list(sim.connections):
        conn.drain()
    deadline = time.monotonic() + timeout_s
    if sim.in_flight:
        log.info("draining %d requests in flight (up to %.0f s)", sim.in_flight, timeout_s)
    while sim.in_flight and time.monotonic() < deadline:
        await asyncio.sleep(0.05)


def run(config: SimConfig) -> int:
    try:
        import uvloop
    except ImportError:  # uvloop is optional (no Windows wheels); the stdlib loop works too
        uvloop = None
    if uvloop is not None:
        uvloop.run(serve(config))
    else:
        asyncio.run(serve(config))
    return 0
