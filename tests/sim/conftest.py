"""Fixtures: a running simulator (synthetic profile: fast fixed step times) shared by the sim tests."""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import pytest
from sim_helpers import FAST, UNLOADABLE

from loraxkit.sim.process import SimulatorProcess

# lorax-client calls pydantic's deprecated .dict(); harmless here.
warnings.filterwarnings("ignore", category=DeprecationWarning, module="lorax")


@pytest.fixture(scope="session")
def sim() -> Iterator[SimulatorProcess]:
    """One simulator for the conformance and API tests (adapters matching broken/* cannot load)."""
    with SimulatorProcess(*FAST, "--unloadable-adapter", UNLOADABLE, trace=True) as proc:
        yield proc
