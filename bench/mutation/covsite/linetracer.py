"""The line tracer of a coverage run, loaded into every Python process by `sitecustomize` (no pytest here).

The tests' process writes the index of the running test into a 4-byte shared file (`linecov.py`); this
tracer reads it on each line of the target module and appends "test-index line" to a per-process file the
first time it sees a pair. Negative indexes mean import / collection / between tests.
"""

from __future__ import annotations

import mmap
import os
import struct
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

ENV_TARGET = "MUTATE_COV_TARGET"  # absolute path of the module to trace
ENV_OUT = "MUTATE_COV_OUT"  # folder for the pair files, the epoch file and tests.json
EPOCH_FILE = "epoch.bin"


def epoch_map(out: Path) -> mmap.mmap:
    path = out / EPOCH_FILE
    if not path.exists():
        path.write_bytes(struct.pack("i", -1))
    with open(path, "r+b") as f:
        return mmap.mmap(f.fileno(), 4)


def start_tracer() -> None:
    """Install the tracer in this process when the environment names a target (no-op otherwise)."""
    target, out = os.environ.get(ENV_TARGET), os.environ.get(ENV_OUT)
    if not target or not out or not target.endswith(".py"):
        return
    epoch = epoch_map(Path(out))
    pairs = open(Path(out) / f"pairs-{os.getpid()}.txt", "a", buffering=1)  # noqa: SIM115 (process-long)
    seen: set[tuple[int, int]] = set()

    def local(frame: FrameType, event: str, arg: Any) -> Any:
        if event == "line":
            key = (struct.unpack_from("i", epoch, 0)[0], frame.f_lineno)
            if key not in seen:
                seen.add(key)
                pairs.write(f"{key[0]} {key[1]}\n")
        return local

    def global_trace(frame: FrameType, event: str, arg: Any) -> Any:
        if frame.f_code.co_filename == target:
            return local
        return None

    sys.settrace(global_trace)
    threading.settrace(global_trace)
