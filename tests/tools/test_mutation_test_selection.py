"""bench/mutate.py runs, for each mutant, only the tests that can see it. A changed default value of a
function is evaluated when the `def` runs (at import) but read by the calls: its tests are those that run
the function's body. (Found when wire's `token_json(special=False)` mutant ran only the tests that happened
to import wire.py first, and survived a test that calls token_json.)"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _mutate_py() -> ModuleType:
    spec = importlib.util.spec_from_file_location("loraxkit_bench_mutate", BENCH / "mutate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


SOURCE = """\
def f(
    x,
    flag=False,
):
    if x > 1:
        return flag
    return x
"""


def test_a_default_values_mutant_runs_the_tests_that_run_the_body_and_not_the_importers() -> None:
    mutate = _mutate_py()
    by_line = {m.line: m for m in mutate.pymutants.mutants(SOURCE) if m.before == "False"}
    default = by_line[3]
    # line 1 (the def) ran under test 0 at import; lines 5-7 (the body) under test 1 only
    lines = {1: {0}, 3: {0}, 5: {1}, 6: {1}, 7: {1}}
    tests, durations = ["imports", "calls"], [0.1, 0.1]
    assert mutate.candidate_tests(default, tests, durations, lines, {}) == ["calls"]
    body = next(m for m in mutate.pymutants.mutants(SOURCE) if m.line == 5 and m.operator == "comparison")
    assert mutate.candidate_tests(body, tests, durations, lines, {}) == ["calls"]


def test_a_discovery_config_of_the_same_file_uses_that_files_equivalents() -> None:
    # wire-inprocess mutates wire.py against fewer tests: a mutant judged equivalent for wire is equivalent
    # there too, and the judgement is written once
    mutate = _mutate_py()
    targets = mutate.load_targets()
    assert targets["wire-inprocess"].path == targets["wire"].path
    wire_judged = mutate.load_equivalent("wire")
    assert wire_judged and mutate.load_equivalent(targets["wire-inprocess"].equivalents) == wire_judged
    assert targets["sim-engine"].equivalents == "sim-engine"


def test_a_constant_a_listed_test_imports_is_exported_so_every_test_runs_for_its_mutants() -> None:
    # sim/engine.py's SPIN_S is read by no other module of the project, but tests/sim/test_engine_paths.py
    # imports it: its mutant must reach that test (it was given none before, and survived a test of its bound)
    mutate = _mutate_py()
    target = mutate.load_targets()["sim-engine"]
    spin = [m for m in mutate.make_mutants(target) if m.before == "0.0015"]
    assert spin and all(m.exported for m in spin)
    only_src = mutate.Target("x", target.path, [])
    assert not any(m.exported for m in mutate.make_mutants(only_src) if m.before == "0.0015")
