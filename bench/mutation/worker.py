"""A fork server for mutant runs: imports pytest and its plugins once, then forks one child per request
that runs `pytest.main` on a fresh import of the project (which it never imports itself).

Protocol: one JSON object per stdin line {"args": [...], "env": {...}, "timeout": s, "log": path};
answers one JSON line {"rc": int | null, "seconds": float, "timed_out": bool}.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time


def _preload() -> None:
    import pytest  # noqa: F401
    from _pytest.config import get_config

    # Imports every pytest11 entry-point plugin (pytest-helm-charts pulls in pykube/requests: ~1 s).
    get_config().pluginmanager.load_setuptools_entrypoints("pytest11")
    for name in ("yaml", "httpx", "jsonschema"):
        __import__(name)


def _child(args: list[str], env: dict[str, str], log: str) -> None:
    os.setpgrp()  # its own group: a timed-out run and every process it started end together
    os.environ.update(env)
    sys.dont_write_bytecode = True  # a mutant of the same size in the same second must not reuse a .pyc
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115
    sys.stderr = sys.stdout
    for path in reversed(env.get("PYTHONPATH", "").split(os.pathsep)):
        if path:
            sys.path.insert(0, path)
    import pytest

    try:
        rc = int(pytest.main(args))
    except BaseException:
        rc = 3
    sys.stdout.flush()
    os._exit(rc)


def _run(request: dict) -> dict:
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:
        _child(request["args"], request["env"], request["log"])
    deadline = start + float(request["timeout"])
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return {
                "rc": os.waitstatus_to_exitcode(status),
                "seconds": time.monotonic() - start,
                "timed_out": False,
            }
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return {"rc": None, "seconds": time.monotonic() - start, "timed_out": True}
        time.sleep(0.02)


def main() -> None:
    _preload()
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        if line.strip():
            print(json.dumps(_run(json.loads(line))), flush=True)


if __name__ == "__main__":
    main()
