"""Fixtures: a running simulator (synthetic profile: fast fixed step times) shared by the sim tests."""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import pytest

from loraxkit.sim.process import SimulatorProcess

# lorax-client calls pydantic's deprecated .dict(); harmless here.
warnings.filterwarnings("ignore", category=DeprecationWarning, module="lorax")

FAST = ("--profile", "synthetic", "--decode-ms", "2", "--prefill-ms", "1", "--adapter-load-ms", "20",
        "--log-level", "WARNING")
UNLOADABLE = "broken/*"


@pytest.fixture(scope="session")
def sim() -> Iterator[SimulatorProcess]:
    """One simulator for the conformance and API tests (adapters matching broken/* cannot load)."""
    with SimulatorProcess(*FAST, "--unloadable-adapter", UNLOADABLE, trace=True) as proc:
        yield proc
