"""The cluster's metrics collector: one detached actor that holds every endpoint's window.

Replicas ship their samples to it once a second (``ReplicaMetrics``); kernels, the CLI and
the Jupyter server read figures from it. Being detached, it outlives the kernels that
deployed the endpoints, like the endpoints themselves; it costs no CPU reservation.
"""

from __future__ import annotations

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

__all__ = ["COLLECTOR_NAME", "NAMESPACE", "ReplicaMetrics", "get_collector"]

# Versioned: a cluster that outlives an upgrade keeps its old collector, and the new
# replicas must not ship to it. Bump when the actor's methods change.
COLLECTOR_NAME = "nbserve_metrics_v1"
NAMESPACE = "nbserve"
# Set to 0 in a replica's environment (``--env NBSERVE_METRICS=0``) to record nothing: used
# to measure what monitoring costs.
METRICS_ENV = "NBSERVE_METRICS"


@ray.remote(num_cpus=0, max_restarts=-1)
class MetricsCollector:
    def __init__(self) -> None:
        self._windows: dict[str, MetricsWindow] = {}
        self._forgotten: dict[str, float] = {}  # endpoint -> when it was deleted

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

    def forget(self, endpoint: str) -> None:
        self._windows.pop(endpoint, None)
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
