"""What one live-dashboard poll costs, step by step, beside ``serve.status()`` in the same run.

    python benchmarks/dashboard_poll.py [--polls 200]

A no-op endpoint on the embedded cluster (its own ports, as every benchmark here), idle: the
poll's cost does not depend on traffic. Each step runs ``--polls`` times (at 40, two runs
minutes apart differed up to twofold on this machine; at 200, by under a tenth); the figures are CPU
milliseconds per call (``time.process_time``) in this process, which stands for the notebook's
kernel, and in Serve's controller (from the kernel's accounting of its process).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import psutil
import ray
from ray import serve
from ray.serve.context import _get_global_client

import nbserve
from benchmarks.common import NOOP_SOURCE, use_benchmark_cluster
from nbserve._dashboard.widget import Dashboard
from nbserve.backends.ray import cluster, collector

NAME = "noop_poll"


def cpu_per_call(fn: Callable[[], Any], calls: int, controller: psutil.Process) -> tuple[float, float]:
    """Milliseconds of CPU per call here and in the controller."""
    fn()  # the first call connects and warms caches
    theirs, ours = controller.cpu_times(), time.process_time()
    for _ in range(calls):
        fn()
    ours_ms = (time.process_time() - ours) * 1000 / calls
    after = controller.cpu_times()
    return ours_ms, ((after.user + after.system) - (theirs.user + theirs.system)) * 1000 / calls


def main() -> None:
    use_benchmark_cluster()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--polls", type=int, default=200)
    args = parser.parse_args()
    started_cluster = cluster.embedded_status() is None
    endpoint = nbserve.deploy(NOOP_SOURCE, NAME, cpus="0.5")
    try:
        backend: Any = endpoint._backend
        controller = psutil.Process(ray.get(_get_global_client()._controller.get_pid.remote()))
        dashboard = Dashboard(endpoint)
        steps: list[tuple[str, Callable[[], Any]]] = [
            ("anchor: `serve.status()`", serve.status),
            ("nbserve's read of the same status", backend._serve_view),
            ("asking the replica what it serves (`stats` asks once per version)", lambda: backend._describe(NAME)),
            ("the collector's figures (`stats`, 60 s)", lambda: collector.read_stats(NAME, 60)),
            ("the collector's series (180 s)", lambda: collector.read_series(NAME, 180, 5)),
            ("`Endpoint.stats()`: status, description, figures", endpoint.stats),
            ("one whole dashboard refresh", dashboard.refresh),
        ]
        lines = [
            f"One idle no-op endpoint; CPU per call, mean of {args.polls} calls each.",
            "",
            "| step | this process (kernel) | Serve's controller |",
            "| --- | --- | --- |",
        ]
        for label, fn in steps:
            ours, theirs = cpu_per_call(fn, args.polls, controller)
            lines.append(f"| {label} | {ours:.2f} ms | {theirs:.2f} ms |")
            print(lines[-1], file=sys.stderr)
    finally:
        endpoint.down()
        if started_cluster:
            cluster.stop_embedded()
    print("\n".join(lines))


if __name__ == "__main__":
    main()
