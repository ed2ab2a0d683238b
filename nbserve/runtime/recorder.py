"""The serving side of the metrics: one sample per request and one size per batch formed.

A streamed answer is one request too, whose sample also says when its first chunk left and
how many chunks it sent; the streams open right now are a gauge shipped with every drain.

A replica appends to a ``Recorder`` on its serving path and ships what it drained to
wherever the endpoint's figures are kept (``nbserve._metrics.MetricsWindow``). The cost per
request is a clock read and a deque append.
"""

from __future__ import annotations

import time
from collections import deque
from typing import NamedTuple

__all__ = ["FLUSH_INTERVAL_S", "Recorder", "RequestSample"]

# Replicas ship their samples this often; a window counts a replica silent for longer as gone.
FLUSH_INTERVAL_S = 1.0


class RequestSample(NamedTuple):
    """One request as a replica served it."""

    finished_at: float  # wall-clock seconds (time.time()), comparable across the cluster's nodes
    latency_s: float
    items: int  # inputs in the request (1, or the length of {"inputs": [...]} / a map chunk)
    failed: bool  # an error answer: a 4xx, or a handler error for any of its items
    first_chunk_s: float | None = None  # a stream's time to its first chunk
    chunks: int = 0  # chunks a stream sent (0 for a plain answer)


class Recorder:
    """Cheap appends from the serving path, drained by whoever ships them.

    ``deque.append`` and ``popleft`` are atomic, so the serving loop never takes a lock.
    """

    def __init__(self) -> None:
        self._requests: deque[RequestSample] = deque()
        self._batches: deque[tuple[float, int]] = deque()
        self.streaming = 0  # streams open now

    def request(
        self, started: float, items: int, failed: bool, first_chunk_s: float | None = None, chunks: int = 0
    ) -> None:
        """Record a request that began at ``started`` (``time.perf_counter()``) and ends now."""
        latency = time.perf_counter() - started
        self._requests.append(RequestSample(time.time(), latency, items, failed, first_chunk_s, chunks))

    def batch(self, size: int) -> None:
        self._batches.append((time.time(), size))

    def drain(self) -> tuple[list[RequestSample], list[tuple[float, int]]]:
        requests = [self._requests.popleft() for _ in range(len(self._requests))]
        batches = [self._batches.popleft() for _ in range(len(self._batches))]
        return requests, batches
