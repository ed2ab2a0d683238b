"""The metrics window alone, in this process: what a dashboard's poll and a replica's shipment
cost the collector, and the memory a sample holds, at the 300,000-sample cap.

    python benchmarks/metrics_window.py
    python benchmarks/metrics_window.py --module /tmp/old_metrics.py   # another version of
        # nbserve/_metrics.py, e.g. from `git show REV:nbserve/_metrics.py > /tmp/old_metrics.py`
        # (where the types it imports changed since, run this script in `git worktree add DIR REV`)

CPU time (``time.process_time``) of 1,000 samples a second for 300 s, shipped once a second
as the plain tuples Ray delivers; then 20 more seconds of a shipment and a dashboard's poll
(``stats(60)`` + ``series(180, 5)``) each second, as a watched endpoint under load has; and the
replica's part of a sample: recording it on the serving path, draining and serializing it.
"""

from __future__ import annotations

import argparse
import importlib.util
import random
import sys
import time
import tracemalloc
from pathlib import Path
from types import ModuleType

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import numpy  # noqa: F401 - imported before the count, as in a collector that has answered once

from nbserve.runtime.recorder import Recorder, RequestSample

NOW = 1_800_000_000.0


def load(path: str | None) -> ModuleType:
    if path is None:
        import nbserve._metrics

        return nbserve._metrics
    spec = importlib.util.spec_from_file_location("metrics_under_test", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--module", help="a _metrics.py file to measure instead of this checkout's")
    args = parser.parse_args()
    metrics = load(args.module)
    rng = random.Random(0)
    polls = 20
    shipments = [
        [tuple(RequestSample(NOW - 300 + s + rng.random(), rng.lognormvariate(-4, 0.8), 1, False)) for _ in range(1000)]
        for s in range(300 + polls)
    ]

    def ship(s: int) -> None:
        window.add("r", shipments[s], [(NOW - 300 + s + 0.5, 32)] * 30, now=NOW - 300 + s + 1)

    tracemalloc.start()
    window = metrics.MetricsWindow("x", created_at=NOW - 1000)
    started = time.process_time()
    for s in range(300):
        ship(s)
    add_ms = 1000 * (time.process_time() - started) / 300
    held, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    stats_s = series_s = 0.0
    for s in range(300, 300 + polls):
        ship(s)
        now = NOW - 300 + s + 1 - 0.3  # a poll reads up to what every replica has shipped
        started = time.process_time()
        window.stats(60, now=now)
        stats_s += time.process_time() - started
        started = time.process_time()
        window.series(180, 5, now=now)
        series_s += time.process_time() - started
    stats_ms, series_ms = 1000 * stats_s / polls, 1000 * series_s / polls
    print(
        f"{held / 300_000:.0f} B held per sample; a 1,000-sample shipment {add_ms:.2f} ms; a poll a second "
        f"under load: stats(60) {stats_ms:.1f} + series(180, 5) {series_ms:.1f} = {stats_ms + series_ms:.1f} ms of CPU"
    )
    record_us, ship_us = replica_side(200_000)
    print(f"in the replica, per request: {record_us:.2f} us to record, {ship_us:.2f} us to drain and serialize")


def replica_side(requests: int) -> tuple[float, float]:
    """CPU microseconds per request of a replica's part: ``Recorder.request`` on the serving
    path, then the shipping thread's drain and the pickling Ray does to send the rows."""
    from ray import cloudpickle

    recorder = Recorder()
    started = time.process_time()
    for _ in range(requests):
        recorder.request(time.perf_counter(), 1, False)
    record_us = 1e6 * (time.process_time() - started) / requests
    started = time.process_time()
    drained, _ = recorder.drain()
    cloudpickle.dumps([tuple(r) for r in drained])
    return record_us, 1e6 * (time.process_time() - started) / requests


if __name__ == "__main__":
    main()
