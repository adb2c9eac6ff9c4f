"""Servers the test run starts die with it, even when it is SIGKILLed and runs no teardown."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from loraxkit import gotools
from loraxkit.testcluster import controlplane


def _gone(pid: int, timeout: float = 30) -> bool:
    """True once `pid` no longer runs (a zombie of a dead parent is reaped by init quickly)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
        except OSError:
            return True
        if state == "Z":
            return True
        time.sleep(0.05)
    return False


def _run_parent(code: str) -> tuple[subprocess.Popen[str], int]:
    """Start a Python parent running `code`, which prints its child's pid; return both."""
    parent = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)], stdout=subprocess.PIPE, text=True
    )
    assert parent.stdout is not None
    line = parent.stdout.readline()
    assert line.strip().isdigit(), f"parent printed {line!r}"
    return parent, int(line)


def test_a_child_started_with_die_with_parent_is_killed_when_its_parent_is_sigkilled() -> None:
    parent, child = _run_parent(
        """
        import os, subprocess, time
        from loraxkit.childproc import die_with_parent
        me = os.getpid()
        proc = subprocess.Popen(["sleep", "300"], preexec_fn=lambda: die_with_parent(me))
        print(proc.pid, flush=True)
        time.sleep(300)
        """
    )
    assert not _gone(child, timeout=0.5), "the child should run while its parent does"
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    assert _gone(child), f"child {child} outlived its SIGKILLed parent"


def test_without_it_the_child_would_outlive_the_parent() -> None:
    """The control: without the prctl the child outlives its parent (so the test above can fail)."""
    parent, child = _run_parent(
        """
        import subprocess, time
        proc = subprocess.Popen(["sleep", "300"])
        print(proc.pid, flush=True)
        time.sleep(300)
        """
    )
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    try:
        assert not _gone(child, timeout=1.0)
    finally:
        os.kill(child, signal.SIGKILL)


@pytest.mark.skipif(
    gotools.bin_path("etcd", "etcd") is None, reason="etcd is not built: loraxkit tools build etcd"
)
def test_a_sigkilled_test_run_leaves_no_etcd_and_its_tmpfs_data_is_swept(tmp_path: Path) -> None:
    """The control plane's own spawn path: etcd dies with its starter, and the next start removes its data."""
    parent, child = _run_parent(
        f"""
        import time
        from pathlib import Path
        from loraxkit.testcluster.controlplane import ControlPlane
        plane = ControlPlane(Path({str(tmp_path)!r}))
        plane._start_etcd()
        print(plane.processes[0].popen.pid, flush=True)
        print(plane.etcd_data, flush=True)
        time.sleep(300)
        """
    )
    assert parent.stdout is not None
    data = Path(parent.stdout.readline().strip())
    assert data.is_dir()
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    assert _gone(child), f"etcd {child} outlived the SIGKILLed process that started it"
    fresh = controlplane._shm_dir("loraxkit-etcd-")
    try:
        assert not data.exists(), f"{data} (a dead run's etcd data) was not swept"
    finally:
        shutil.rmtree(fresh)
