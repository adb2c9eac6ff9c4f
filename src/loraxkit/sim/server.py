"""Run the simulator: warm up (tokenizer, start-up delay) with the port closed, then bind and serve."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal

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
    server = await loop.create_server(
        lambda: Connection(sim.handle, sim.connections, sim.pump.defer),
        config.host,
        config.port,
        reuse_address=True,
        backlog=4096,
    )
    sim.start()
    # Move start-up objects (tokenizer, vocabulary) out of the collector's view and collect young objects
    # less often: full collections over them caused 10-20 ms stalls of the token loop.
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
    finally:
        server.close()
        for conn in list(sim.connections):
            if conn.transport is not None:
                conn.transport.close()
        await sim.stop()


def run(config: SimConfig) -> int:
    try:
        import uvloop
    except ImportError:  # uvloop is optional; the stdlib loop is ~2x slower per token
        uvloop = None
    if uvloop is not None:
        uvloop.run(serve(config))
    else:
        asyncio.run(serve(config))
    return 0
