"""Mutation testing, one module at a time: how many small wrong changes to the code make a test fail.

    python3 bench/mutate.py --list                 # the modules configured in bench/mutate.toml
    python3 bench/mutate.py wire                   # mutate src/loraxkit/wire.py, run its tests per mutant
    python3 bench/mutate.py wire --show 17         # the diff of mutant 17 and the tests it would run
    python3 bench/mutate.py chart-validate --jobs 2

What it does, per module named in bench/mutate.toml:
1. copies the work tree (tracked and untracked files, uncommitted edits included) to a scratch folder,
   so nothing in your checkout is ever modified;
2. runs the module's tests once with a line tracer in every Python process they start (the simulator
   and Locust are subprocesses), which must pass, and learns which test runs which line;
3. makes every mutant (see bench/mutation/pymutants.py and tplmutants.py for the operators) and, for each,
   runs only the tests that run the mutated lines (Helm templates: every configured test), most-killing
   and fastest first, stopping at the first failure (a fork server keeps pytest's start-up at ~0.1 s);
4. prints each mutant's fate and the score: killed / (mutants - equivalent), with the survivors listed.
   Mutants judged equivalent (no test could tell them apart) are listed, with why, in
   bench/mutation/equivalent.toml; results are written to build/mutation/<module>.json.

A mutant no test runs "survives" (uncovered). A mutant that hangs past its timeout counts as killed.
Not part of CI or `pytest`: it takes minutes per module. The machine may be shared: the figures are
counts, not timings, so load changes only how long it takes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

from mutation import pymutants, tplmutants  # noqa: E402

CONFIG = HERE / "mutate.toml"
EQUIVALENT = HERE / "mutation" / "equivalent.toml"
RESULTS = REPO / "build" / "mutation"
PLUGIN_DIR = HERE / "mutation"
COVSITE = PLUGIN_DIR / "covsite"


@dataclass
class Target:
    name: str
    path: str
    tests: list[str]
    pytest_args: list[str] = field(default_factory=list)
    judged_as: str = ""  # the module whose equivalent.toml entries apply (default: its own name)

    @property
    def equivalents(self) -> str:
        return self.judged_as or self.name

    @property
    def is_python(self) -> bool:
        return self.path.endswith(".py")


@dataclass
class Outcome:
    id: int
    line: int
    operator: str
    before: str
    after: str
    status: str  # killed | survived | uncovered | timeout | equivalent
    killed_by: str | None = None
    tests_run: int = 0
    seconds: float = 0.0
    reason: str | None = None
    context: str = ""


def load_targets() -> dict[str, Target]:
    data = tomllib.loads(CONFIG.read_text())
    return {
        name: Target(
            name,
            t["path"],
            list(t["tests"]),
            list(t.get("pytest_args", [])),
            judged_as=t.get("judged_as", ""),
        )
        for name, t in data["module"].items()
    }


def load_equivalent(name: str) -> dict[str, str]:
    """{"operator | before | after | line": why it is equivalent} for one module ("line" may be empty)."""
    if not EQUIVALENT.exists():
        return {}
    data = tomllib.loads(EQUIVALENT.read_text())
    return {
        f"{e['operator']} | {e['before']} | {e['after']} | {e.get('line', '')}": e["why"]
        for e in data.get(name, [])
    }


def judge(m: Any, equivalent: dict[str, str]) -> str | None:
    """Why mutant `m` is equivalent, if an entry names it (by its line's text, or on any line)."""
    key = f"{m.operator} | {m.before} | {m.after} | "
    return equivalent.get(key + getattr(m, "context", "")) or equivalent.get(key)


def make_copy(dest: Path) -> None:
    """Tracked and untracked (not ignored) files of the work tree, as they are on disk now."""
    listed = (
        subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=REPO,
            check=True,
            capture_output=True,
        )
        .stdout.decode()
        .split("\0")
    )
    for rel in filter(None, listed):
        src = REPO / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)


def run_env(copy_dir: Path, out: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {
        "PYTHONPATH": os.pathsep.join([str(copy_dir / "src"), str(PLUGIN_DIR), str(COVSITE)]),
        "PYTHONDONTWRITEBYTECODE": "1",  # a mutant of the same size in the same second must not reuse a .pyc
        "MUTATE_COV_OUT": str(out),
    }
    env.update(extra or {})
    return env


def existing_tests(target: Target) -> list[str]:
    """The configured test paths that exist (a listed file may not be written yet on an older branch)."""
    present = [t for t in target.tests if (REPO / t.split("::")[0]).exists()]
    for t in sorted(set(target.tests) - set(present)):
        print(f"  note: {t} does not exist here; skipped", flush=True)
    return present


def pytest_args(target: Target, tests: list[str], stop_first: bool) -> list[str]:
    args = ["-q", "-p", "no:cacheprovider", "-p", "linecov", "-o", "addopts=", *target.pytest_args]
    return [*args, *(["-x"] if stop_first else []), *tests]


def coverage_run(
    target: Target, copy_dir: Path, work: Path
) -> tuple[list[str], list[float], dict[int, set[int]]]:
    """Run the tests once, unmutated, tracing the target; returns tests, durations and line -> tests."""
    out = work / "coverage"
    out.mkdir()
    env = dict(os.environ)
    env.update(run_env(copy_dir, out, {"MUTATE_COV_TARGET": str(copy_dir / target.path)}))
    log = work / "coverage.log"
    cmd = [sys.executable, "-m", "pytest", *pytest_args(target, existing_tests(target), stop_first=False)]
    with log.open("w") as f:
        rc = subprocess.run(cmd, cwd=copy_dir, env=env, stdout=f, stderr=subprocess.STDOUT).returncode
    info = json.loads((out / "tests.json").read_text()) if (out / "tests.json").exists() else {}
    if rc != 0:
        tail = "\n".join(log.read_text().splitlines()[-30:])
        sys.exit(
            f"the tests of {target.name} fail on the unmutated code (pytest exit {rc}); fix that first:\n"
            f"{tail}\nfailed: {info.get('failed')}"
        )
    lines: dict[int, set[int]] = {}
    for pairs in out.glob("pairs-*.txt"):
        for row in pairs.read_text().splitlines():
            test, _, line = row.partition(" ")
            if line:
                lines.setdefault(int(line), set()).add(int(test))
    return info["tests"], info["durations"], lines


class Worker:
    """One fork server (bench/mutation/worker.py) working in its own copy of the tree."""

    def __init__(self, copy_dir: Path) -> None:
        self.copy_dir = copy_dir
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(PLUGIN_DIR)])
        self.proc = subprocess.Popen(
            [sys.executable, str(PLUGIN_DIR / "worker.py")],
            cwd=copy_dir,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        ready = self.proc.stdout.readline()
        if not ready:
            sys.exit("the mutation worker did not start")

    def run(self, args: list[str], env: dict[str, str], timeout: float, log: Path) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        request = {"args": args, "env": env, "timeout": timeout, "log": str(log)}
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        return dict(json.loads(self.proc.stdout.readline()))

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.wait(timeout=30)


def candidate_tests(
    mutant: Any,
    tests: list[str],
    durations: list[float],
    lines: dict[int, set[int]] | None,
    kills: dict[str, int],
) -> list[str]:
    """The tests to run for a mutant, most-killing then fastest first."""
    everything = set(range(len(tests)))
    if lines is None or mutant.exported:  # a template, or a name other modules read
        return _ordered(everything, tests, durations, kills)
    if mutant.module_level:  # only tests that run a line reading the mutated name can see it
        chosen = {i for line in mutant.use_lines for i in lines.get(line, set()) if i >= 0}
    else:
        hits = {i for line in range(mutant.line, mutant.end_line + 1) for i in lines.get(line, set())}
        chosen = {i for i in hits if i >= 0} or (everything if hits else set())
    return _ordered(chosen, tests, durations, kills)


def _ordered(chosen: set[int], tests: list[str], durations: list[float], kills: dict[str, int]) -> list[str]:
    order = sorted(chosen, key=lambda i: (-kills.get(tests[i], 0), durations[i]))
    return [tests[i] for i in order]


def importers_text(target: Target) -> str:
    """The other Python code that could read the module's names (for module-level mutants): the project's
    modules and the target's own test files (a test that imports a constant sees its mutant directly)."""
    own = (REPO / target.path).resolve()
    files = [*(REPO / "src").rglob("*.py"), *(REPO / "loadtest").rglob("*.py")]
    for test in target.tests:
        path = REPO / test.split("::")[0]
        files.extend(path.rglob("*.py") if path.is_dir() else [path] if path.suffix == ".py" else [])
    return "\n".join(p.read_text() for p in files if p.resolve() != own and p.exists())


def make_mutants(target: Target) -> list[Any]:
    source = (REPO / target.path).read_text()
    if target.is_python:
        return pymutants.mutants(source, importers_text(target))
    return tplmutants.mutants(source)


def run_mutants(
    target: Target, selected: list[int] | None, jobs: int, verbose: bool, on_outcome: Any = None
) -> tuple[list[Outcome], float]:
    source_path = REPO / target.path
    source = source_path.read_text()
    module = pymutants if target.is_python else tplmutants
    all_mutants = make_mutants(target)
    equivalent = load_equivalent(target.equivalents)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f"mutate-{target.name}-") as tmp:
        work = Path(tmp)
        copies = []
        for j in range(max(1, jobs)):
            copy_dir = work / f"tree{j}"
            make_copy(copy_dir)
            copies.append(copy_dir)
        print(
            f"{target.name}: {len(all_mutants)} mutants of {target.path}; coverage run of "
            f"{len(target.tests)} test path(s)...",
            flush=True,
        )
        tests, durations, lines = coverage_run(target, copies[0], work)
        print(f"  {len(tests)} tests pass unmutated in {sum(durations):.1f} s", flush=True)
        line_map = lines if target.is_python else None
        workers = [Worker(c) for c in copies]
        kills: dict[str, int] = {}
        outcomes: list[Outcome] = []
        todo = [(i, m) for i, m in enumerate(all_mutants) if selected is None or i in selected]
        try:
            outcomes = _dispatch(
                target,
                todo,
                workers,
                source,
                module,
                tests,
                durations,
                line_map,
                kills,
                equivalent,
                work,
                verbose,
                on_outcome,
            )
        finally:
            for w in workers:
                w.close()
    return outcomes, time.monotonic() - started


def _dispatch(
    target: Target,
    todo: list[tuple[int, Any]],
    workers: list[Worker],
    source: str,
    module: Any,
    tests: list[str],
    durations: list[float],
    lines: dict[int, set[int]] | None,
    kills: dict[str, int],
    equivalent: dict[str, str],
    work: Path,
    verbose: bool,
    on_outcome: Any = None,
) -> list[Outcome]:
    """Run mutants on the workers (threads: each waits on its own fork server)."""
    import threading

    outcomes: list[Outcome] = []
    lock = threading.Lock()
    queue = list(todo)

    def loop(worker: Worker) -> None:
        while True:
            with lock:
                if not queue:
                    return
                index, mutant = queue.pop(0)
                chosen = candidate_tests(mutant, tests, durations, lines, kills)
            outcome = _one(
                target, index, mutant, worker, source, module, chosen, tests, durations, equivalent, work
            )
            with lock:
                if outcome.killed_by:
                    kills[outcome.killed_by] = kills.get(outcome.killed_by, 0) + 1
                outcomes.append(outcome)
                _print_outcome(outcome, verbose)
                if on_outcome is not None:
                    on_outcome(sorted(outcomes, key=lambda o: o.id))

    threads = [threading.Thread(target=loop, args=(w,)) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sorted(outcomes, key=lambda o: o.id)


def _one(
    target: Target,
    index: int,
    mutant: Any,
    worker: Worker,
    source: str,
    module: Any,
    chosen: list[str],
    tests: list[str],
    durations: list[float],
    equivalent: dict[str, str],
    work: Path,
) -> Outcome:
    outcome = Outcome(
        index,
        mutant.line,
        mutant.operator,
        mutant.before,
        mutant.after,
        "survived",
        context=getattr(mutant, "context", ""),
    )
    why = judge(mutant, equivalent)
    if not chosen:
        outcome.status = "uncovered"
    else:
        out = work / f"m{index}"
        out.mkdir()
        path = worker.copy_dir / target.path
        path.write_text(module.apply(source, mutant))
        try:
            budget = sum(durations[tests.index(t)] for t in chosen)
            result = worker.run(
                pytest_args(target, chosen, stop_first=True),
                run_env(worker.copy_dir, out),
                30 + 4 * budget,
                out / "log.txt",
            )
        finally:
            path.write_text(source)
        info = json.loads((out / "tests.json").read_text()) if (out / "tests.json").exists() else {}
        outcome.seconds = round(result["seconds"], 2)
        outcome.tests_run = len(info.get("tests", []))
        if result["timed_out"]:
            outcome.status = "timeout"
        elif result["rc"] != 0:
            outcome.status = "killed"
            failed = info.get("failed") or [f"pytest exit {result['rc']}"]
            outcome.killed_by = failed[0]
    if why is not None and outcome.status in ("survived", "uncovered"):
        outcome.status, outcome.reason = "equivalent", why
    return outcome


def _print_outcome(o: Outcome, verbose: bool) -> None:
    if o.status in ("killed", "timeout") and not verbose:
        return
    detail = f" by {o.killed_by}" if o.killed_by else ""
    detail += f" ({o.reason})" if o.reason else ""
    print(
        f"  #{o.id:<4} L{o.line:<4} {o.status.upper():<10} {o.operator}: {o.before!r} -> {o.after!r}"
        f"{detail} [{o.tests_run} tests, {o.seconds:.1f} s]",
        flush=True,
    )


def score(outcomes: list[Outcome]) -> dict[str, Any]:
    counts: dict[str, int] = {}
    for o in outcomes:
        counts[o.status] = counts.get(o.status, 0) + 1
    killed = counts.get("killed", 0) + counts.get("timeout", 0)
    judged = len(outcomes) - counts.get("equivalent", 0)
    return {"mutants": len(outcomes), **counts, "score": killed / judged if judged else 1.0}


def show(target: Target, index: int) -> None:
    import difflib

    source = (REPO / target.path).read_text()
    module = pymutants if target.is_python else tplmutants
    mutant = make_mutants(target)[index]
    print(f"#{index} line {mutant.line} {mutant.operator}: {mutant.before!r} -> {mutant.after!r}")
    if target.is_python:  # diff the re-printed original against the mutant so only the change shows
        import ast

        source = ast.unparse(ast.parse(source)) + "\n"
    mutated = module.apply(REPO.joinpath(target.path).read_text(), mutant)
    sys.stdout.writelines(
        difflib.unified_diff(
            source.splitlines(True),
            mutated.splitlines(True),
            target.path,
            f"{target.path} (mutant {index})",
            n=2,
        )
    )


def report() -> None:
    """Markdown: the score per module and every surviving mutant, from the saved results."""
    print("| module | file | mutants | killed | survived | equivalent | score (non-equivalent killed) |")
    print("|---|---|---|---|---|---|---|")
    saved = [json.loads(p.read_text()) for p in sorted(RESULTS.glob("*.json"))]
    targets = load_targets()
    for data in saved:  # judgements added to equivalent.toml since the run apply too
        target = targets.get(data["module"])
        equivalent = load_equivalent(target.equivalents if target else data["module"])
        outcomes = [Outcome(**m) for m in data["mutants"]]
        for o in outcomes:
            why = judge(o, equivalent)
            if why is not None and o.status in ("survived", "uncovered"):
                o.status, o.reason = "equivalent", why
        data["summary_sample_of"] = data["summary"].get("sample_of")
        data["summary_partial"] = data["summary"].get("partial")
        data["mutants"], data["summary"] = [asdict(o) for o in outcomes], score(outcomes)
    for data in saved:
        s = data["summary"]
        killed = s.get("killed", 0) + s.get("timeout", 0)
        alive = s.get("survived", 0) + s.get("uncovered", 0)
        sampled = f" (a sample of {data['summary_sample_of']})" if data.get("summary_sample_of") else ""
        sampled += f" (stopped: {data['summary_partial']})" if data.get("summary_partial") else ""
        print(
            f"| {data['module']} | `{data['path']}` | {s['mutants']}{sampled} | {killed} | {alive} | "
            f"{s.get('equivalent', 0)} | {s['score']:.0%} |"
        )
    for data in saved:
        rows = [m for m in data["mutants"] if m["status"] in ("survived", "uncovered", "equivalent")]
        if rows:
            print(f"\n#### {data['module']}\n")
            for m in rows:
                why = m["reason"] or ("no test runs it" if m["status"] == "uncovered" else "NOT YET KILLED")
                print(f"- L{m['line']} {m['operator']}: `{m['before']}` → `{m['after']}` — {why}")


def judged_unrun(target: Target, only: list[int] | None) -> list[Outcome]:
    """--skip-judged: the selected mutants equivalent.toml judges equivalent, as outcomes, not run."""
    equivalent, skipped = load_equivalent(target.equivalents), []
    for i, m in enumerate(make_mutants(target)):
        why = judge(m, equivalent) if only is None or i in only else None
        if why is not None:
            o = Outcome(i, m.line, m.operator, m.before, m.after, "equivalent", reason=f"{why} (not run)")
            o.context = getattr(m, "context", "")
            skipped.append(o)
    return skipped


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Mutate one module (Python or Helm template) of lorax-kit and report how many mutants "
        "its tests kill. Modules and their tests are configured in bench/mutate.toml.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("What it does", 1)[1].join(["What it does", ""]) if __doc__ else None,
    )
    parser.add_argument("module", nargs="?", help="a module name from bench/mutate.toml (see --list)")
    parser.add_argument("--list", action="store_true", help="list the configured modules and exit")
    parser.add_argument(
        "--report",
        action="store_true",
        help="print the saved results of every module (build/mutation/) as Markdown and exit",
    )
    parser.add_argument("--mutants", action="store_true", help="list the module's mutants, run nothing")
    parser.add_argument("--show", type=int, metavar="ID", help="print the diff of mutant ID and exit")
    parser.add_argument("--only", type=int, nargs="+", metavar="ID", help="run only these mutant ids")
    parser.add_argument(
        "--sample",
        type=int,
        metavar="N",
        help="run a random sample of N mutants (fixed --seed): an estimate when a full run is "
        "too slow for the machine; the saved result says it is a sample",
    )
    parser.add_argument("--seed", type=int, default=15, help="seed of --sample (default 15)")
    parser.add_argument("--jobs", type=int, default=1, help="mutants run at once (default 1; 2 cores here)")
    parser.add_argument("--verbose", action="store_true", help="also print each killed mutant")
    parser.add_argument(
        "--skip-judged",
        action="store_true",
        help="do not run mutants bench/mutation/equivalent.toml already judges equivalent (they count as "
        "equivalent unrun: a template survivor runs every test, minutes on a busy machine); a full run "
        "without it also shows every judgement still holds",
    )
    args = parser.parse_args(argv)
    targets = load_targets()
    if args.report:
        report()
        return 0
    if args.list or not args.module:
        for t in targets.values():
            print(f"{t.name:<18} {t.path}  <- {' '.join(t.tests)}")
        return 0 if args.list else 2
    if args.module not in targets:
        parser.error(f"unknown module {args.module!r}; configured: {', '.join(targets)} (bench/mutate.toml)")
    target = targets[args.module]
    if args.show is not None:
        show(target, args.show)
        return 0
    if args.mutants:
        for i, m in enumerate(make_mutants(target)):
            print(f"#{i:<4} L{m.line:<4} {m.operator}: {m.before!r} -> {m.after!r}")
        return 0
    only = args.only
    if args.sample:
        total = len(make_mutants(target))
        only = sorted(random.Random(args.seed).sample(range(total), min(args.sample, total)))
        print(f"{target.name}: a sample of {len(only)} of {total} mutants (seed {args.seed})", flush=True)
    digest = hashlib.sha256((REPO / target.path).read_bytes()).hexdigest()[:16]
    RESULTS.mkdir(parents=True, exist_ok=True)
    result_file = RESULTS / f"{target.name}.json"
    saved = json.loads(result_file.read_text()) if result_file.exists() else {}
    merge = bool(args.only) and not args.sample and saved.get("source_sha256") == digest
    planned = len(only) if only else len(make_mutants(target))
    skipped = judged_unrun(target, only) if args.skip_judged else []
    if skipped:
        wanted = set(only) if only is not None else set(range(len(make_mutants(target))))
        only = sorted(wanted - {o.id for o in skipped})
    started = time.monotonic()

    def save(outcomes: list[Outcome], final: bool) -> dict[str, Any]:
        """Written after every mutant, so an interrupted run still leaves what it measured."""
        outcomes = sorted([*skipped, *outcomes], key=lambda o: o.id)
        if merge:  # re-run of some mutants: merged into the full run of this same source
            rerun = {o.id for o in outcomes}
            kept = [Outcome(**m) for m in saved["mutants"] if m["id"] not in rerun]
            outcomes = sorted([*kept, *outcomes], key=lambda o: o.id)
        summary = score(outcomes)
        if args.sample:
            summary["sample_of"] = len(make_mutants(target))
        elif merge and saved["summary"].get("sample_of"):  # some mutants of a sample re-run: still a sample
            summary["sample_of"] = saved["summary"]["sample_of"]
        if not final:
            summary["partial"] = f"{len(outcomes)} of {planned} planned mutants run"
        elif merge and saved["summary"].get("partial"):  # re-runs inside a stopped run: it stays stopped
            summary["partial"] = saved["summary"]["partial"]
        data = {
            "module": target.name,
            "path": target.path,
            "source_sha256": digest,
            "summary": summary,
            "seconds": time.monotonic() - started,
            "mutants": [asdict(o) for o in outcomes],
        }
        result_file.write_text(json.dumps(data, indent=1))
        return summary

    outcomes, seconds = run_mutants(target, only, args.jobs, args.verbose, lambda o: save(o, final=False))
    summary = save(outcomes, final=True)
    print(f"{target.name}: {summary}  ({seconds:.0f} s; load {os.getloadavg()[0]:.1f}; {result_file})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
