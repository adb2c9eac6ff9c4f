"""Child processes that cannot outlive the process that started them (Linux).

A test session killed by SIGKILL (CI's timeout, an OOM kill, `kill -9`) runs no teardown, so servers it
started (etcd, kube-apiserver, ...) would keep their ports and memory. `die_with_parent` asks the kernel to
send the child SIGKILL when its parent dies (prctl(2) PR_SET_PDEATHSIG). The kernel ties the signal to the
*thread* that forked the child, so start such children only from a thread that lives as long as they must
(pytest's main thread, where session fixtures run).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import subprocess
import sys

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent(parent_pid: int) -> None:
    """`preexec_fn` body: SIGKILL this child when the parent dies; exit now if it is already gone.

    `parent_pid` is the starter's pid, read before the fork: if the parent died between fork and prctl, the
    child has been re-parented already and no signal would ever come.
    """
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        return  # not fatal: the ordinary teardown still stops the child
    if os.getppid() != parent_pid:
        os._exit(1)


def stop(proc: subprocess.Popen[bytes] | None, grace: float = 10) -> None:
    """SIGTERM a child that still runs, SIGKILL it after `grace` seconds, and reap it."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
