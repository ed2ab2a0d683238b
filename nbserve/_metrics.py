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

How the window keeps them: in one bucket per wall-clock second, as columns of machine numbers
(``array``), and answers with numpy over the buckets a question touches. A dashboard polls
``stats`` and ``series`` every second; read as Python objects, 300,000 samples cost the
collector 150-250 ms of CPU per poll, ~25 ms this way (``benchmarks/metrics_window.py``). numpy is imported
where it is used, so ``import nbserve`` (and ``%load_ext``) stays light.

How ``series`` stays cheap: its steps lie on a fixed grid (multiples of the step), so a step
that has ended is computed once and kept until samples land in it; a poll recomputes only the
step still running. Recomputing all 36 steps of a 3-minute plot was most of a poll's cost.
"""

from __future__ import annotations

import math
import threading
import time
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from nbserve._types import EndpointStats, SeriesPoint
from nbserve.runtime.recorder import FLUSH_INTERVAL_S, RequestSample

if TYPE_CHECKING:
    import numpy as np

__all__ = ["DEFAULT_WINDOW_S", "MetricsWindow", "percentile"]

DEFAULT_WINDOW_S = 60.0
# Samples older than this are dropped; the plot shows at most this much history.
HISTORY_S = 300.0
# Finished series steps are kept for this many step sizes, the most recently asked.
KEPT_STEP_SIZES = 4
# At most this many request samples per endpoint (41 bytes of columns each, ~48 with the
# buckets: benchmarks/metrics_window.py; the README's bound is 64 MB): beyond ~1,000 requests/s
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


# A request sample's columns, in RequestSample's order, and their array type codes.
_COLUMNS = {"finished": "d", "latency": "d", "items": "q", "failed": "B", "first_chunk": "d", "chunks": "q"}
_DTYPES = {"d": "float64", "q": "int64", "B": "uint8"}


class _Second:
    """The samples that finished, and the batches formed, within one wall-clock second."""

    __slots__ = ("batch_at", "batch_size", "chunks", "failed", "finished", "first_chunk", "items", "latency")

    finished: array[float]
    latency: array[float]  # seconds
    items: array[int]
    failed: array[int]
    first_chunk: array[float]  # seconds; NaN for a plain answer
    chunks: array[int]

    def __init__(self) -> None:
        for name, typecode in _COLUMNS.items():  # one column per field, of _COLUMNS' type
            setattr(self, name, array(typecode))
        self.batch_at = array("d")
        self.batch_size = array("q")

    def __len__(self) -> int:
        return len(self.finished)

    def extend(self, columns: dict[str, np.ndarray]) -> None:
        """Append samples given as one numpy array per column (``_COLUMNS``, of its dtype)."""
        for name in _COLUMNS:
            getattr(self, name).frombytes(columns[name].tobytes())

    def keep_newest(self, count: int) -> None:
        """Drop all but the ``count`` samples that finished last (the cap's cut through a second)."""
        import numpy as np

        kept = np.sort(np.argsort(np.asarray(self.finished), kind="stable")[len(self) - count :])
        for name in _COLUMNS:
            column = getattr(self, name)
            setattr(self, name, array(column.typecode, np.asarray(column)[kept].tobytes()))


@dataclass
class _Selection:
    """The columns of every sample that finished in one span, as numpy arrays."""

    latency_ms: np.ndarray
    items: np.ndarray
    failed: np.ndarray
    first_chunk_ms: np.ndarray
    chunks: np.ndarray
    batch_sizes: np.ndarray

    def percentiles(self, values: np.ndarray | None = None) -> tuple[float | None, float | None, float | None]:
        """p50, p95, p99 of ``values`` (default: the latencies), by ``percentile``'s definition."""
        import numpy as np

        values = self.latency_ms if values is None else values
        if not len(values):
            return None, None, None
        p50, p95, p99 = (float(v) for v in np.percentile(values, [50, 95, 99]))
        return p50, p95, p99


class MetricsWindow:
    """All samples of one endpoint, from every replica, for ``HISTORY_S`` seconds.

    Thread-safe: replicas add while views read.
    """

    def __init__(self, name: str, *, created_at: float | None = None, totals: tuple[int, int, int] = (0, 0, 0)) -> None:
        """``totals`` (requests, items, errors) carry counts over from a window that went away."""
        self.name = name
        self.created_at = time.time() if created_at is None else created_at
        self._seconds: dict[int, _Second] = {}  # floor(finished_at) -> its second
        self._count = 0  # request samples held
        self._horizon = -math.inf  # nothing older is kept: the oldest second is cut here
        self._reported: dict[str, float] = {}  # replica -> when it last shipped samples
        self._streaming: dict[str, int] = {}  # replica -> streams it had open when it last shipped
        self._totals = list(totals)  # requests, items, errors
        # step size -> grid index i -> the point of step ((i - 1) * step, i * step]
        self._steps: dict[float, dict[int, SeriesPoint]] = {}
        self._lock = threading.Lock()

    @property
    def totals(self) -> tuple[int, int, int]:
        """Requests, items and errors since the endpoint was first deployed."""
        with self._lock:
            return (self._totals[0], self._totals[1], self._totals[2])

    def add(
        self,
        replica: str,
        requests: Iterable[RequestSample] | Iterable[tuple[Any, ...]],
        batches: Iterable[tuple[float, int]] = (),
        *,
        streaming: int = 0,
        now: float | None = None,
    ) -> None:
        """Samples from ``replica``, which has ``streaming`` streams open now; ``requests`` may be
        plain tuples in ``RequestSample``'s order (as they come off the wire)."""
        now = time.time() if now is None else now
        with self._lock:
            self._reported[replica] = now
            self._streaming[replica] = streaming
            self._add_requests(requests)
            for at, size in batches:
                if at >= self._horizon:
                    second = self._second(at)
                    second.batch_at.append(at)
                    second.batch_size.append(int(size))
            self._prune(now)

    def _add_requests(self, requests: Iterable[RequestSample] | Iterable[tuple[Any, ...]]) -> None:
        """Count and keep a shipment, column by column: at thousands of samples a second, a
        Python loop per sample was the collector's largest cost after the polls."""
        import numpy as np

        raw = list(zip(*requests, strict=True))  # from the wire: plain tuples, in RequestSample's order
        if not raw:
            return
        # A plain answer's first chunk, None, becomes NaN.
        columns = {
            name: np.array(values, dtype=_DTYPES[typecode])
            for (name, typecode), values in zip(_COLUMNS.items(), raw, strict=True)
        }
        self._totals[0] += len(columns["finished"])
        self._totals[1] += int(columns["items"].sum())
        self._totals[2] += int(columns["failed"].sum())
        keys = np.floor(columns["finished"]).astype(np.int64)
        kept = columns["finished"] >= self._horizon
        for key in np.unique(keys[kept]).tolist():
            at = kept & (keys == key)
            self._second(key).extend({name: column[at] for name, column in columns.items()})
            self._count += int(at.sum())
            self._forget_steps(key)

    def _second(self, at: float) -> _Second:
        key = math.floor(at)
        second = self._seconds.get(key)
        if second is None:
            second = self._seconds[key] = _Second()
        return second

    def _prune(self, now: float) -> None:
        self._horizon = max(self._horizon, now - HISTORY_S)
        for key in [key for key in self._seconds if key + 1 <= self._horizon]:
            self._count -= len(self._seconds.pop(key))
        for points in self._steps.values():  # steps the horizon cuts into lose samples
            for index in [index for index, point in points.items() if point.t - point.step_s < self._horizon]:
                del points[index]
        while self._count > MAX_SAMPLES:  # the oldest history goes first
            oldest = min(key for key, second in self._seconds.items() if len(second))
            second, excess = self._seconds[oldest], self._count - MAX_SAMPLES
            if len(second) <= excess:
                del self._seconds[oldest]
                self._count -= len(second)
            else:
                second.keep_newest(len(second) - excess)
                self._count -= excess
            self._forget_steps(oldest)
        for replica, seen in list(self._reported.items()):
            if seen < now - 10 * FLUSH_INTERVAL_S:
                del self._reported[replica]  # replaced or stopped
                self._streaming.pop(replica, None)

    def _forget_steps(self, key: int) -> None:
        """Drop the kept series steps that second ``key`` falls in: its samples changed."""
        for step_s, points in self._steps.items():
            # A sample at t is in step ceil(t / step); one either side against rounding.
            for index in range(math.ceil(key / step_s) - 1, math.ceil((key + 1) / step_s) + 2):
                points.pop(index, None)

    def _select(self, start: float, end: float) -> _Selection:
        """Every sample and batch in ``(start, end]``; call with the lock held.

        Only the seconds the span touches are read, and only the two at its ends are filtered.
        """
        import numpy as np

        seconds = [self._seconds[key] for key in sorted(self._seconds) if start - 1 < key <= end]

        def column(name: str, dtype: type) -> np.ndarray:
            parts: list[np.ndarray] = [np.frombuffer(getattr(second, name), dtype=dtype) for second in seconds]
            return np.concatenate(parts) if parts else np.empty(0, dtype=dtype)

        def inside(at: np.ndarray) -> np.ndarray:
            return (at > start) & (at <= end) & (at >= self._horizon)

        keep, batch_keep = inside(column("finished", np.float64)), inside(column("batch_at", np.float64))
        return _Selection(
            latency_ms=column("latency", np.float64)[keep] * 1000,
            items=column("items", np.int64)[keep],
            failed=column("failed", np.uint8)[keep],
            first_chunk_ms=column("first_chunk", np.float64)[keep] * 1000,
            chunks=column("chunks", np.int64)[keep],
            batch_sizes=column("batch_size", np.int64)[batch_keep],
        )

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
        with self._lock:
            recent = self._select(now - window_s, now)
            totals = list(self._totals)
            reporting = len(self._reported)
            streaming = sum(self._streaming.values())
        # Right after a deploy the window reaches back before the endpoint existed.
        span = max(min(window_s, now - self.created_at), 1e-9)
        count = len(recent.latency_ms)
        streams = recent.chunks > 0
        firsts = recent.first_chunk_ms[streams]
        p50, p95, p99 = recent.percentiles()
        first_p50, first_p95, _ = recent.percentiles(firsts[firsts == firsts])  # NaN: no first chunk
        sizes = recent.batch_sizes
        return EndpointStats(
            name=self.name,
            window_s=window_s,
            requests=totals[0],
            items=totals[1],
            errors=totals[2],
            window_requests=count,
            requests_per_s=count / span,
            items_per_s=int(recent.items.sum()) / span,
            error_rate=int(recent.failed.sum()) / count if count else 0.0,
            p50_ms=p50,
            p95_ms=p95,
            p99_ms=p99,
            batch_mean=float(sizes.mean()) if len(sizes) else None,
            batch_max=int(sizes.max()) if len(sizes) else None,
            replicas_reporting=reporting,
            window_streams=int(streams.sum()),
            streams_in_flight=streaming,
            first_chunk_p50_ms=first_p50,
            first_chunk_p95_ms=first_p95,
            chunks_per_s=int(recent.chunks.sum()) / span,
            updated_at=now,
        )

    def series(self, span_s: float = 180.0, step_s: float = 5.0, *, now: float | None = None) -> list[SeriesPoint]:
        """Throughput and latency percentiles over about the last ``span_s`` seconds, oldest first.

        ``span_s // step_s`` points: steps of ``step_s`` on a grid of its multiples, then the
        step still running, from the grid's last edge to ``now``. That one is half a step to
        one and a half long (under half, it takes in the step before it, so a poll just after
        an edge does not plot a rate from a few requests). Each point's ``step_s`` is its own
        length, over which ``requests_per_s`` counts.
        """
        if step_s <= 0 or span_s < step_s:
            raise ValueError(f"need 0 < step_s <= span_s, got step {step_s}, span {span_s}")
        now = self.complete_until() if now is None else now
        steps = int(span_s // step_s)
        last = math.ceil(now / step_s) - 1  # the newest grid edge before now: last * step_s < now
        if now - last * step_s < step_s / 2:
            last -= 1
        with self._lock:
            points = self._steps.pop(step_s, {})
            self._steps[step_s] = points  # the most recently asked size goes last
            while len(self._steps) > KEPT_STEP_SIZES:
                del self._steps[next(iter(self._steps))]
            wanted = range(last - steps + 2, last + 1)
            for index in [index for index in points if index not in wanted]:
                del points[index]
            for index in wanted:
                if index not in points:
                    points[index] = self._point((index - 1) * step_s, index * step_s)
            return [points[index] for index in wanted] + [self._point(last * step_s, now)]

    def _point(self, start: float, end: float) -> SeriesPoint:
        """The series point of ``(start, end]``; call with the lock held."""
        selection = self._select(start, end)
        p50, p95, p99 = selection.percentiles()
        step_s = end - start
        return SeriesPoint(
            t=end, requests_per_s=len(selection.latency_ms) / step_s, p50_ms=p50, p95_ms=p95, p99_ms=p99, step_s=step_s
        )
