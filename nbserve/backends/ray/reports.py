"""What a replica tells the cluster's collector actor (``collector``): its request samples,
once a second, and which version of the cell it loaded.

Best effort, always: the collector is found by name and never created here (the deploying
kernel creates it), and a collector that is gone or restarting costs a second of samples,
never a request or a replica.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from typing import Any

import ray

from nbserve.runtime.recorder import FLUSH_INTERVAL_S, Recorder

__all__ = ["COLLECTOR_NAME", "METRICS_ENV", "NAMESPACE", "ReplicaMetrics", "find_collector", "report_load"]

# Versioned: a cluster that outlives an upgrade keeps its old collector, and the new
# replicas must not ship to it. Bump when the actor's methods change.
COLLECTOR_NAME = "nbserve_metrics_v5"
NAMESPACE = "nbserve"
# Set to 0 in a replica's environment (``--env NBSERVE_METRICS=0``) to record nothing: used
# to measure what monitoring costs.
METRICS_ENV = "NBSERVE_METRICS"
REPORT_TIMEOUT_S = 10.0
# A shipping replica looks the collector up again this often: a collector that was killed
# and made anew by a kernel is a new actor, which an old handle never reaches.
LOOKUP_INTERVAL_S = 10.0


def find_collector() -> Any:
    """The collector's handle, or ``None`` while there is none."""
    try:
        return ray.get_actor(COLLECTOR_NAME, namespace=NAMESPACE)
    except ValueError:
        return None


async def report_load(endpoint: str, version: float, replica: str, error: str | None) -> None:
    """This replica loaded ``version`` of the cell (``error`` None), or could not.

    A lost report only slows the deploy down: the kernel then asks the replicas which
    version they serve.
    """
    with contextlib.suppress(Exception):
        collector = find_collector()
        if collector is not None:
            ref = collector.report_load.remote(endpoint, version, replica, error)
            await asyncio.wait_for(asyncio.wrap_future(ref.future()), REPORT_TIMEOUT_S)


class ReplicaMetrics:
    """A replica's recorder and the thread that ships its samples to the collector."""

    def __init__(self, endpoint: str, created_at: float) -> None:
        self.enabled = os.environ.get(METRICS_ENV, "1") != "0"
        self.recorder: Recorder | None = Recorder() if self.enabled else None
        self._endpoint = endpoint
        self._created_at = created_at
        self._replica = f"{os.getpid()}-{id(self):x}"
        self._stop = threading.Event()
        self._collector: Any = None
        self._looked_up = 0.0
        if self.recorder is not None:
            threading.Thread(target=self._ship_forever, name="nbserve-metrics", daemon=True).start()

    def _ship_forever(self) -> None:
        while not self._stop.wait(FLUSH_INTERVAL_S):
            self.ship()

    def ship(self) -> None:
        if self.recorder is None:
            return
        requests, batches = self.recorder.drain()
        # An empty shipment still says the replica is alive (``replicas_reporting``).
        with contextlib.suppress(Exception):
            if self._collector is None or time.monotonic() - self._looked_up > LOOKUP_INTERVAL_S:
                self._collector, self._looked_up = find_collector(), time.monotonic()
            if self._collector is not None:
                self._collector.record.remote(
                    self._endpoint,
                    self._replica,
                    self._created_at,
                    [tuple(r) for r in requests],
                    batches,
                    self.recorder.streaming,
                )

    def stop(self) -> None:
        if self.recorder is not None and not self._stop.is_set():
            self._stop.set()
            self.ship()
