"""Warm start of the loopback control plane (tools already built): seconds to a ready API server, to every
component healthy, and to the fake EKS nodes Ready and untainted; memory of each process once up.

    python3 bench/bench_control_plane.py --runs 3

Prints one line per run and the median. The machine's load average is printed beside the figures: the
numbers in docs/cluster.md were taken on a shared 2-core machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from loraxkit.eks.cluster import load_cluster
from loraxkit.testcluster.cluster import LoopbackCluster
from loraxkit.testcluster.controlplane import BUILD_COMMAND, ControlPlane, missing_binaries
from loraxkit.testcluster.nodes import fake_nodes
from loraxkit.testcluster.pytest_plugin import CLUSTER_FILE, NODES_PER_GROUP


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def one_run() -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench-cp-") as tmp:
        plane = ControlPlane(Path(tmp))
        plane.start()
        try:
            cluster = LoopbackCluster(plane, Path(tmp) / "helm")
            cluster.add_nodes(fake_nodes(load_cluster(CLUSTER_FILE), per_group=NODES_PER_GROUP))
            figures = {
                **plane.timings,
                "nodes_ready_s": time.monotonic() - plane.started_at,
                **{f"rss_{p.name}_mib": rss_mib(p.popen.pid) for p in plane.processes},
            }
        finally:
            plane.stop()
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="control-plane starts to time (default 3)")
    args = parser.parse_args()
    missing = missing_binaries()
    if missing:
        print(f"not built: {', '.join(missing)}; run `{BUILD_COMMAND}`", file=sys.stderr)
        return 1
    runs = []
    for i in range(args.runs):
        figures = one_run()
        runs.append(figures)
        load = " ".join(f"{x:.1f}" for x in os.getloadavg())
        print(f"run {i + 1}: " + ", ".join(f"{k}={v:.1f}" for k, v in figures.items()) + f"  (load {load})")
    for key in runs[0]:
        print(f"median {key}: {statistics.median(r[key] for r in runs):.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
