"""Memory: the embedded cluster idle, with one MiniLM replica, and the metrics collector after
minutes at the highest request rate this machine sustains (a no-op handler at 32 connections).

    python benchmarks/memory.py [--minutes 5] [-o docs/benchmarks.md]
    python benchmarks/memory.py --smoke -o /tmp/m.md   # proves it runs; figures mean nothing

Memory is the proportional set size (PSS) of each process: shared pages (Ray's libraries,
torch) are split among the processes that map them, so a sum is what the processes together
take from the machine. The anchors, in the same run: the hand-written Ray Serve app
(``anchor_app.py``) on a cluster of its own, and MiniLM loaded in a plain Python process.
Runs on the benchmarks' embedded cluster (ports 6589/8189 unless set) and writes its section
of docs/benchmarks.md, which ``suite.py`` keeps.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import psutil

import nbserve
from benchmarks.common import (
    NOOP_SOURCE,
    ROOT,
    TEXT,
    minilm_source,
    model_dir,
    use_benchmark_cluster,
    write_section,
)
from benchmarks.processes import embedded_processes, role
from benchmarks.suite import anchor_server
from benchmarks.wrk import run_wrk
from nbserve._metrics import MAX_SAMPLES
from nbserve.backends import get_backend
from nbserve.backends.ray import cluster

MB = 1024**2
# The README's bound on the collector's memory per endpoint, at MAX_SAMPLES request samples.
COLLECTOR_BOUND_MB = 64
SETTLE_S = 10.0  # after a start, for the processes' memory to settle


def pss(process: psutil.Process) -> int:
    try:
        return int(process.memory_full_info().pss)
    except (psutil.AccessDenied, AttributeError):
        return int(process.memory_info().rss)
    except psutil.NoSuchProcess:
        return 0


def by_role(processes: list[psutil.Process]) -> dict[str, int]:
    """PSS summed per role (several Ray workers may share one)."""
    totals: dict[str, int] = defaultdict(int)
    for process in processes:
        totals[role(process)] += pss(process)
    return dict(totals)


def tree(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def raw_model_pss() -> int:
    """PSS of a fresh Python process that loaded MiniLM and embedded one text."""
    code = (
        f"MODEL_DIR = {model_dir()!r}\n"
        + minilm_source()
        + f"embed([{TEXT!r}])\nimport psutil\nprint(psutil.Process().memory_full_info().pss)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    return int(done.stdout.strip().splitlines()[-1])


class CollectorWatch:
    """The collector's PSS every few seconds, in a thread, while a load runs."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> CollectorWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.wait(2.0):
            self.samples.append(pss(self.process))


def collector_pid() -> int:
    from ray._private import state

    rows = state.actors(actor_state_name="ALIVE").values()
    return next(int(row["Pid"]) for row in rows if row.get("ActorClassName") == "MetricsCollector")


def table(rows: dict[str, int]) -> list[str]:
    ordered = sorted(rows.items(), key=lambda kv: -kv[1])
    return [f"| {name} | {value / MB:.0f} MB |" for name, value in ordered]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=5.0, help="the collector's load")
    parser.add_argument("--smoke", action="store_true", help="a load of seconds: checks the script runs")
    parser.add_argument("-o", "--output", default=str(ROOT / "docs" / "benchmarks.md"))
    args = parser.parse_args()
    use_benchmark_cluster()
    load_s = 10.0 if args.smoke else args.minutes * 60

    print("the anchor: the hand-written app with MiniLM, on a cluster of its own", file=sys.stderr)
    raw = raw_model_pss()
    with anchor_server("minilm") as anchor_url:
        import requests

        requests.post(anchor_url, json={"input": TEXT}, timeout=120).raise_for_status()
        time.sleep(SETTLE_S)
        anchor_pid = next(p.pid for p in psutil.Process().children() if "anchor_app.py" in " ".join(p.cmdline()))
        anchor = by_role(tree(anchor_pid)[1:])  # the cluster, not the driver that deployed the app

    cluster.stop_embedded()
    try:
        print("nbserve: the embedded cluster idle, then with MiniLM", file=sys.stderr)
        get_backend("ray").connect()
        time.sleep(SETTLE_S)
        idle = by_role(embedded_processes())
        embed = nbserve.deploy(minilm_source(), "embed", namespace={"MODEL_DIR": model_dir()})
        embed(TEXT)
        time.sleep(SETTLE_S)
        with_model = by_role(embedded_processes())

        print(f"the collector under a no-op load at 32 connections for {load_s:g} s", file=sys.stderr)
        embed.down()
        noop = nbserve.deploy(NOOP_SOURCE, "noop", max_batch_size=32, batch_wait_ms=5.0)
        noop(1)
        pid = collector_pid()
        before = pss(psutil.Process(pid))
        with CollectorWatch(pid) as watch:
            load = run_wrk(noop.url, body=1, connections=32, duration_s=load_s, headers=noop.headers())
        after = pss(psutil.Process(pid))
        noop.down()
    finally:
        cluster.stop_embedded()

    replica = with_model.get("replica embed", 0)
    peak = max([before, after, *watch.samples])
    samples = min(load.requests, MAX_SAMPLES)
    growth = peak - before
    per_sample = growth / max(samples, 1)
    at_cap = per_sample * MAX_SAMPLES
    ours, theirs = sum(with_model.values()), sum(anchor.values())
    report = f"""## Memory (PSS: shared pages split among the processes that map them)

Written by `python benchmarks/memory.py`.{" **Smoke run: the figures mean nothing.**" if args.smoke else ""}

| figure | nbserve | anchor | ratio |
| --- | --- | --- | --- |
| the cluster with one MiniLM endpoint, all processes | {ours / MB:.0f} MB | {theirs / MB:.0f} MB (the hand-written \
app's cluster) | {ours / theirs:.2f}x |
| one MiniLM replica | {replica / MB:.0f} MB | {raw / MB:.0f} MB (MiniLM in a plain Python process) | \
{replica / raw:.2f}x |
| the embedded cluster idle (Serve and the collector, no endpoint) | {sum(idle.values()) / MB:.0f} MB | | |
| the collector, before the load and at its peak | {before / MB:.0f} MB, {peak / MB:.0f} MB | | |

The collector's load: {load.requests} requests in {load.duration_s:.0f} s ({load.requests_per_s:.0f} req/s,
no-op handler, 32 connections, wrk). It held about {samples} request samples at the end (at most
{MAX_SAMPLES} per endpoint, 5 minutes of history) and grew by {growth / MB:.1f} MB, about {per_sample:.0f} bytes a
sample: at the cap, {at_cap / MB:.0f} MB per endpoint, {"within" if at_cap <= COLLECTOR_BOUND_MB * MB else "**beyond**"}
the README's bound of {COLLECTOR_BOUND_MB} MB.

The idle cluster, by process:

| process | PSS |
| --- | --- |
{chr(10).join(table(idle))}

The anchor's cluster, by process:

| process | PSS |
| --- | --- |
{chr(10).join(table(anchor))}
"""
    write_section(Path(args.output), "memory", report)
    print(report)


if __name__ == "__main__":
    main()
