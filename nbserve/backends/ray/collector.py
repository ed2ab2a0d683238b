"""The cluster's collector: one detached actor that holds every endpoint's metrics window
and which version of its cell each replica loaded.

Replicas ship their samples to it once a second (``ReplicaMetrics``); kernels, the CLI and
the Jupyter server read figures from it. A replica that loads a version of the cell reports
the outcome here, so the deploying kernel learns about every replica, not only the one a
handle call would reach. Being detached, the actor outlives the kernels that deployed the
endpoints, like the endpoints themselves; it costs no CPU reservation.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from typing import Any

import ray

from nbserve.metrics import (
    DEFAULT_WINDOW_S,
    FLUSH_INTERVAL_S,
    EndpointStats,
    MetricsWindow,
    Recorder,
    RequestSample,
    SeriesPoint,
)

__all__ = [
    "COLLECTOR_NAME",
    "NAMESPACE",
    "ReplicaMetrics",
    "clear_loads",
    "get_collector",
    "load_reports",
    "report_load",
]

# Versioned: a cluster that outlives an upgrade keeps its old collector, and the new
# replicas must not ship to it. Bump when the actor's methods change.
COLLECTOR_NAME = "nbserve_metrics_v2"
NAMESPACE = "nbserve"
# Set to 0 in a replica's environment (``--env NBSERVE_METRICS=0``) to record nothing: used
# to measure what monitoring costs.
METRICS_ENV = "NBSERVE_METRICS"
# Versions of a cell whose load reports are kept per endpoint (a deploy waits on the newest).
KEPT_VERSIONS = 8
REPORT_TIMEOUT_S = 10.0


@ray.remote(num_cpus=0, max_restarts=-1)
class MetricsCollector:
    def __init__(self) -> None:
        self._windows: dict[str, MetricsWindow] = {}
        self._forgotten: dict[str, float] = {}  # endpoint -> when it was deleted
        # endpoint -> version (its deployed_at) -> replica -> None when loaded, else the error
        self._loads: dict[str, dict[float, dict[str, str | None]]] = {}

    def record(
        self,
        endpoint: str,
        replica: str,
        created_at: float,
        requests: list[tuple[float, float, int, bool]],
        batches: list[tuple[float, int]],
    ) -> None:
        if created_at <= self._forgotten.get(endpoint, 0.0):
            return  # the last shipment of a deleted endpoint's replica
        window = self._windows.get(endpoint)
        if window is None:
            window = self._windows[endpoint] = MetricsWindow(endpoint, created_at=created_at)
        window.add(replica, (RequestSample(*r) for r in requests), batches)

    def stats(self, endpoint: str, window_s: float) -> EndpointStats | None:
        window = self._windows.get(endpoint)
        return window.stats(window_s) if window else None

    def series(self, endpoint: str, span_s: float, step_s: float) -> list[SeriesPoint]:
        window = self._windows.get(endpoint)
        return window.series(span_s, step_s) if window else []

    def report_load(self, endpoint: str, version: float, replica: str, error: str | None) -> None:
        versions = self._loads.setdefault(endpoint, {})
        versions.setdefault(version, {})[replica] = error
        for old in sorted(versions)[:-KEPT_VERSIONS]:
            del versions[old]

    def load_reports(self, endpoint: str, version: float) -> dict[str, str | None]:
        return dict(self._loads.get(endpoint, {}).get(version, {}))

    def clear_loads(self, endpoint: str, version: float) -> None:
        self._loads.get(endpoint, {}).pop(version, None)

    def forget(self, endpoint: str) -> None:
        self._windows.pop(endpoint, None)
        self._loads.pop(endpoint, None)
        self._forgotten[endpoint] = time.time()


def get_collector(create: bool = False) -> Any:
    """The collector's handle; ``None`` when it does not exist and ``create`` is false."""
    if create:
        return MetricsCollector.options(  # type: ignore[attr-defined]
            name=COLLECTOR_NAME, namespace=NAMESPACE, lifetime="detached", get_if_exists=True
        ).remote()
    try:
        return ray.get_actor(COLLECTOR_NAME, namespace=NAMESPACE)
    except ValueError:
        return None


def read_stats(endpoint: str, window_s: float = DEFAULT_WINDOW_S) -> EndpointStats | None:
    collector = get_collector()
    if collector is None:
        return None
    stats: EndpointStats | None = ray.get(collector.stats.remote(endpoint, window_s), timeout=10)
    return stats


def read_series(endpoint: str, span_s: float, step_s: float) -> list[SeriesPoint]:
    collector = get_collector()
    if collector is None:
        return []
    series: list[SeriesPoint] = ray.get(collector.series.remote(endpoint, span_s, step_s), timeout=10)
    return series


def forget(endpoint: str) -> None:
    collector = get_collector()
    if collector is not None:
        with contextlib.suppress(Exception):
            ray.get(collector.forget.remote(endpoint), timeout=10)


async def report_load(endpoint: str, version: float, replica: str, error: str | None) -> None:
    """From a replica: it loaded ``version`` of the cell (``error`` None) or could not.

    Best effort: a collector that is gone must not fail the replica (the deploying kernel
    then asks the replicas which version they serve).
    """
    with contextlib.suppress(Exception):
        ref = get_collector(create=True).report_load.remote(endpoint, version, replica, error)
        await asyncio.wait_for(asyncio.wrap_future(ref.future()), REPORT_TIMEOUT_S)


def load_reports(endpoint: str, version: float) -> dict[str, str | None]:
    """Replica -> ``None`` (loaded) or the setup error, for one version of an endpoint's cell."""
    collector = get_collector()
    if collector is None:
        return {}
    reports: dict[str, str | None] = ray.get(collector.load_reports.remote(endpoint, version), timeout=10)
    return reports


def clear_loads(endpoint: str, version: float) -> None:
    """Before a deploy of ``version``: drop earlier reports of it (a rollback deploys it again)."""
    collector = get_collector()
    if collector is not None:
        ray.get(collector.clear_loads.remote(endpoint, version), timeout=10)


class ReplicaMetrics:
    """A replica's recorder and the thread that ships its samples to the collector."""

    def __init__(self, endpoint: str, created_at: float) -> None:
        self.enabled = os.environ.get(METRICS_ENV, "1") != "0"
        self.recorder = Recorder()
        self._endpoint = endpoint
        self._created_at = created_at
        self._replica = f"{os.getpid()}-{id(self):x}"
        self._stop = threading.Event()
        if self.enabled:
            self._collector = get_collector(create=True)
            threading.Thread(target=self._ship_forever, name="nbserve-metrics", daemon=True).start()

    def _ship_forever(self) -> None:
        while not self._stop.wait(FLUSH_INTERVAL_S):
            self.ship()

    def ship(self) -> None:
        requests, batches = self.recorder.drain()
        # An empty shipment still says the replica is alive (``replicas_reporting``).
        with contextlib.suppress(Exception):  # a restarting collector loses a second, not the replica
            self._collector.record.remote(
                self._endpoint, self._replica, self._created_at, [tuple(r) for r in requests], batches
            )

    def stop(self) -> None:
        if self.enabled and not self._stop.is_set():
            self._stop.set()
            self.ship()
