"""The cluster's collector: one detached actor that holds every endpoint's metrics window
and which version of its cell each replica loaded.

Replicas ship their samples to it once a second (``reports``); kernels, the CLI and the
Jupyter server read figures from it. A replica that loads a version of the cell reports
the outcome here, so the deploying kernel learns about every replica, not only the one a
handle call would reach. Being detached, the actor outlives the kernels that deployed the
endpoints, like the endpoints themselves; it costs no CPU reservation.

Ray restarts it if it dies; each endpoint's totals (requests, items, errors) are kept in the
cluster's key-value store as they change, so a restarted collector counts on from them.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from typing import Any

import ray
from ray.exceptions import RayActorError
from ray.experimental import internal_kv

from nbserve._metrics import DEFAULT_WINDOW_S, MetricsWindow
from nbserve._types import EndpointStats, SeriesPoint
from nbserve.backends.ray.reports import COLLECTOR_NAME, NAMESPACE, find_collector

__all__ = ["clear_loads", "ensure_collector", "forget", "load_reports", "read_series", "read_stats"]

# Versions of a cell whose load reports are kept per endpoint (a deploy waits on the newest).
KEPT_VERSIONS = 8
# How long a reader waits for a collector that Ray is restarting.
RESTART_WAIT_S = 15.0


TOTALS_PREFIX = "totals:"


# Ray restarts it if it dies, and sends it again what replicas shipped meanwhile
# (max_task_retries): a restart loses no sample.
@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1)
class MetricsCollector:
    def __init__(self) -> None:
        self._windows: dict[str, MetricsWindow] = {}
        for key in internal_kv._internal_kv_list(TOTALS_PREFIX, namespace=NAMESPACE):
            kept = json.loads(internal_kv._internal_kv_get(key, namespace=NAMESPACE) or b"null")
            if kept is not None:
                endpoint = key.decode().removeprefix(TOTALS_PREFIX)
                totals = (int(kept["totals"][0]), int(kept["totals"][1]), int(kept["totals"][2]))
                self._windows[endpoint] = MetricsWindow(endpoint, created_at=kept["created_at"], totals=totals)
        self._forgotten: dict[str, float] = {}  # endpoint -> when it was deleted
        # endpoint -> version (its deployed_at) -> replica -> None when loaded, else the error
        self._loads: dict[str, dict[float, dict[str, str | None]]] = {}

    def record(
        self,
        endpoint: str,
        replica: str,
        created_at: float,
        requests: list[tuple[Any, ...]],
        batches: list[tuple[float, int]],
        streaming: int = 0,
    ) -> None:
        if created_at <= self._forgotten.get(endpoint, 0.0):
            return  # the last shipment of a deleted endpoint's replica
        window = self._windows.get(endpoint)
        if window is None:
            window = self._windows[endpoint] = MetricsWindow(endpoint, created_at=created_at)
        window.add(replica, requests, batches, streaming=streaming)  # rows in RequestSample's order
        if requests:
            kept = {"created_at": window.created_at, "totals": window.totals}
            internal_kv._internal_kv_put(TOTALS_PREFIX + endpoint, json.dumps(kept), namespace=NAMESPACE)

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
        internal_kv._internal_kv_del(TOTALS_PREFIX + endpoint, namespace=NAMESPACE)
        self._loads.pop(endpoint, None)
        self._forgotten[endpoint] = time.time()


def ensure_collector() -> Any:
    """The collector's handle, created if there is none (by a kernel: replicas never create it)."""
    return MetricsCollector.options(  # type: ignore[attr-defined]
        name=COLLECTOR_NAME, namespace=NAMESPACE, lifetime="detached", get_if_exists=True
    ).remote()


def _ask(call: Callable[[Any], Any], default: Any) -> Any:
    """A question to the collector, waiting out a restart of it (Ray brings it back in seconds)."""
    deadline = time.monotonic() + RESTART_WAIT_S
    while True:
        collector = find_collector()
        if collector is None:
            return default
        try:
            return ray.get(call(collector), timeout=10)
        except RayActorError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def read_stats(endpoint: str, window_s: float = DEFAULT_WINDOW_S) -> EndpointStats | None:
    stats: EndpointStats | None = _ask(lambda c: c.stats.remote(endpoint, window_s), None)
    return stats


def read_series(endpoint: str, span_s: float, step_s: float) -> list[SeriesPoint]:
    series: list[SeriesPoint] = _ask(lambda c: c.series.remote(endpoint, span_s, step_s), [])
    return series


def forget(endpoint: str) -> None:
    collector = find_collector()
    if collector is not None:
        with contextlib.suppress(Exception):
            ray.get(collector.forget.remote(endpoint), timeout=10)


def load_reports(endpoint: str, version: float) -> dict[str, str | None]:
    """Replica -> ``None`` (loaded) or the setup error, for one version of an endpoint's cell."""
    collector = find_collector()
    if collector is None:
        return {}
    reports: dict[str, str | None] = ray.get(collector.load_reports.remote(endpoint, version), timeout=10)
    return reports


def clear_loads(endpoint: str, version: float) -> None:
    """Before a deploy of ``version``: drop earlier reports of it (a rollback deploys it again)."""
    collector = find_collector()
    if collector is not None:
        ray.get(collector.clear_loads.remote(endpoint, version), timeout=10)
