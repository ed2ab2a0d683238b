"""Serving metrics: the sliding windows every view reads.

Plain Python, no Ray: a replica appends one ``RequestSample`` per request and one batch size
per batch it formed to a ``Recorder`` (``nbserve.runtime.recorder``); the samples are shipped
to one ``MetricsWindow`` per endpoint, which answers ``EndpointStats`` (the figures) and
``series`` (points for a plot).

Why measure in the replica rather than read Ray Serve's own metrics: Serve exports its
metrics to Prometheus every 10 s (``metrics_report_interval_ms``) and needs a scraper, too
slow for a dashboard that updates every second, and it knows nothing of the batch sizes
the replica forms. Replica-side samples cover every caller alike (HTTP through the
proxy, handles from notebooks and other endpoints). The cost is a clock read and a deque
append per request. What they leave out is the proxy's own time in front of the replica.
"""

from __future__ import annotations

import math
import threading
import time
from bisect import bisect_right
from collections import deque
from collections.abc import Iterable, Sequence

from nbserve._types import EndpointStats, SeriesPoint
from nbserve.runtime.recorder import FLUSH_INTERVAL_S, RequestSample

__all__ = ["DEFAULT_WINDOW_S", "MetricsWindow", "percentile"]

DEFAULT_WINDOW_S = 60.0
# Samples older than this are dropped; the plot shows at most this much history.
HISTORY_S = 300.0
# At most this many request samples per endpoint (about 170 bytes each in the collector,
# benchmarks/memory.py; the README's bound is 64 MB): beyond ~1,000 requests/s
# sustained, the oldest history goes first. Totals are counted on arrival and stay exact.
MAX_SAMPLES = 300_000


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of already sorted values, interpolated linearly.

    The same definition as ``numpy.percentile``'s default, so figures can be checked against it.
    """
    if not sorted_values:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile q must be within 0..100, got {q}")
    rank = (len(sorted_values) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (rank - low)


class MetricsWindow:
    """All samples of one endpoint, from every replica, for ``HISTORY_S`` seconds.

    Thread-safe: replicas add while views read.
    """

    def __init__(self, name: str, *, created_at: float | None = None, totals: tuple[int, int, int] = (0, 0, 0)) -> None:
        """``totals`` (requests, items, errors) carry counts over from a window that went away."""
        self.name = name
        self.created_at = time.time() if created_at is None else created_at
        self._requests: deque[RequestSample] = deque()  # in arrival order, close to time order
        self._batches: deque[tuple[float, int]] = deque()
        self._reported: dict[str, float] = {}  # replica -> when it last shipped samples
        self._streaming: dict[str, int] = {}  # replica -> streams it had open when it last shipped
        self._totals = list(totals)  # requests, items, errors
        self._lock = threading.Lock()

    @property
    def totals(self) -> tuple[int, int, int]:
        """Requests, items and errors since the endpoint was first deployed."""
        with self._lock:
            return (self._totals[0], self._totals[1], self._totals[2])

    def add(
        self,
        replica: str,
        requests: Iterable[RequestSample],
        batches: Iterable[tuple[float, int]] = (),
        *,
        streaming: int = 0,
        now: float | None = None,
    ) -> None:
        """Samples from ``replica``, which has ``streaming`` streams open now."""
        now = time.time() if now is None else now
        with self._lock:
            self._reported[replica] = now
            self._streaming[replica] = streaming
            for sample in requests:
                sample = RequestSample(*sample)  # from the wire: a plain tuple
                self._requests.append(sample)
                self._totals[0] += 1
                self._totals[1] += sample.items
                self._totals[2] += int(sample.failed)
            self._batches.extend((t, int(size)) for t, size in batches)
            self._prune(now)

    def _prune(self, now: float) -> None:
        horizon = now - HISTORY_S
        while self._requests and (self._requests[0].finished_at < horizon or len(self._requests) > MAX_SAMPLES):
            self._requests.popleft()
        while self._batches and self._batches[0][0] < horizon:
            self._batches.popleft()
        for replica, seen in list(self._reported.items()):
            if seen < now - 10 * FLUSH_INTERVAL_S:
                del self._reported[replica]  # replaced or stopped
                self._streaming.pop(replica, None)

    def complete_until(self, now: float | None = None) -> float:
        """The latest time up to which every live replica has shipped its samples.

        A window that ends here holds every request that finished in it; one that ended at
        ``now`` would miss up to a flush interval of requests still on their way.
        """
        now = time.time() if now is None else now
        with self._lock:
            fresh = [t for t in self._reported.values() if t >= now - 3 * FLUSH_INTERVAL_S]
        return min(fresh, default=now)

    def stats(self, window_s: float = DEFAULT_WINDOW_S, *, now: float | None = None) -> EndpointStats:
        """Figures for requests that finished within ``window_s`` seconds before ``now``
        (default: ``complete_until()``)."""
        if window_s <= 0:
            raise ValueError(f"window_s must be positive, got {window_s}")
        now = self.complete_until() if now is None else now
        start = now - window_s
        with self._lock:
            recent = [s for s in self._requests if start < s.finished_at <= now]
            sizes = [size for t, size in self._batches if start < t <= now]
            totals = list(self._totals)
            reporting = len(self._reported)
            streaming = sum(self._streaming.values())
        # Right after a deploy the window reaches back before the endpoint existed.
        span = max(min(window_s, now - self.created_at), 1e-9)
        latencies = sorted(s.latency_s * 1000 for s in recent)
        failed = sum(s.failed for s in recent)
        streams = [s for s in recent if s.chunks]
        firsts = sorted(s.first_chunk_s * 1000 for s in streams if s.first_chunk_s is not None)
        return EndpointStats(
            name=self.name,
            window_s=window_s,
            requests=totals[0],
            items=totals[1],
            errors=totals[2],
            window_requests=len(recent),
            requests_per_s=len(recent) / span,
            items_per_s=sum(s.items for s in recent) / span,
            error_rate=failed / len(recent) if recent else 0.0,
            p50_ms=percentile(latencies, 50) if latencies else None,
            p95_ms=percentile(latencies, 95) if latencies else None,
            p99_ms=percentile(latencies, 99) if latencies else None,
            batch_mean=sum(sizes) / len(sizes) if sizes else None,
            batch_max=max(sizes) if sizes else None,
            replicas_reporting=reporting,
            window_streams=len(streams),
            streams_in_flight=streaming,
            first_chunk_p50_ms=percentile(firsts, 50) if firsts else None,
            first_chunk_p95_ms=percentile(firsts, 95) if firsts else None,
            chunks_per_s=sum(s.chunks for s in streams) / span,
            updated_at=now,
        )

    def series(self, span_s: float = 180.0, step_s: float = 5.0, *, now: float | None = None) -> list[SeriesPoint]:
        """Per-step throughput and latency percentiles over the last ``span_s`` seconds, oldest first."""
        if step_s <= 0 or span_s < step_s:
            raise ValueError(f"need 0 < step_s <= span_s, got step {step_s}, span {span_s}")
        now = self.complete_until() if now is None else now
        steps = int(span_s // step_s)
        edges = [now - (steps - i) * step_s for i in range(steps + 1)]  # edges[0] is the oldest
        buckets: list[list[float]] = [[] for _ in range(steps)]
        with self._lock:
            samples = [s for s in self._requests if edges[0] < s.finished_at <= now]
        for sample in samples:
            index = min(bisect_right(edges, sample.finished_at) - 1, steps - 1)
            if sample.finished_at == edges[index] and index > 0:
                index -= 1  # a sample on an edge belongs to the step it closes
            buckets[index].append(sample.latency_s * 1000)
        points = []
        for end, latencies in zip(edges[1:], buckets, strict=True):
            latencies.sort()
            points.append(
                SeriesPoint(
                    t=end,
                    requests_per_s=len(latencies) / step_s,
                    p50_ms=percentile(latencies, 50) if latencies else None,
                    p95_ms=percentile(latencies, 95) if latencies else None,
                    p99_ms=percentile(latencies, 99) if latencies else None,
                )
            )
        return points
