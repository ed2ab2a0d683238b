"""The embedded cluster's processes, named by their part in it, and what CPU each spends.

Shared by ``memory.py`` (memory per process) and ``monitoring_overhead.py`` (CPU per request).
"""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path

import psutil

from nbserve.backends.ray import cluster

__all__ = ["THIS_PROCESS", "CpuAccount", "embedded_processes", "role"]

# The role of the benchmark's own process (wrk aside): where a notebook's dashboard poller runs.
THIS_PROCESS = "this process (the dashboard's poller)"


def role(process: psutil.Process) -> str:
    """A process's part in the cluster: Ray's name for it (ray::ServeReplica:embed:..., raylet)."""
    try:
        name = process.name()
        cmdline = process.cmdline()
    except psutil.Error:
        return "gone"
    title = cmdline[0] if cmdline else name
    if title.startswith("ray::ServeReplica:"):
        return "replica " + title.split(":")[3]
    if title.startswith("ray::"):
        return title.removeprefix("ray::").split()[0].split(".")[0]  # an actor, whatever method it runs
    script = next((Path(arg).name for arg in cmdline if arg.endswith(".py")), None)  # Ray's Python daemons
    return script or (Path(title).name if "/" in title else name)


def embedded_processes() -> list[psutil.Process]:
    return cluster.cluster_processes(cluster.embedded_settings())


def _cpu_seconds(process: psutil.Process) -> float:
    try:
        times = process.cpu_times()
    except psutil.Error:
        return 0.0
    return float(times.user + times.system)


class CpuAccount:
    """CPU seconds each role spent between ``start()`` and ``stop()``.

    Processes are read at both ends, so one that started in between (a replica that Ray
    replaced) counts from zero and one that ended in between is missed: both are rare under a
    steady load, and ``unmatched`` names them.
    """

    def __init__(self) -> None:
        self._before: dict[int, tuple[str, float]] = {}
        self.seconds: dict[str, float] = {}
        self.unmatched: list[str] = []

    def _read(self) -> dict[int, tuple[str, float]]:
        read = {p.pid: (role(p), _cpu_seconds(p)) for p in embedded_processes()}
        read[os.getpid()] = (THIS_PROCESS, _cpu_seconds(psutil.Process()))
        return read

    def start(self) -> None:
        self._before = self._read()

    def stop(self) -> None:
        after = self._read()
        totals: dict[str, float] = defaultdict(float)
        for pid, (name, seconds) in after.items():
            before = self._before.get(pid)
            if before is None:
                self.unmatched.append(f"{name} (started)")
            totals[name] += seconds - (before[1] if before else 0.0)
        self.unmatched += [f"{name} (ended)" for pid, (name, _) in self._before.items() if pid not in after]
        self.seconds = dict(totals)
