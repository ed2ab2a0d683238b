"""Modal's own figures, read into nbserve's shapes: ``EndpointStats`` and a log tail.

Plain functions over Modal's result types (``FunctionStats``, ``FunctionCurrentStats``,
``LogEntry``), so they are tested offline; the backend only fetches. Modal counts *inputs*:
the batched method gets one input per item, so on Modal a request is an item.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from nbserve._types import EndpointStats

if TYPE_CHECKING:
    from modal.types import FunctionCurrentStats, FunctionStats, LogEntry, StatsPercentileDistribution

__all__ = ["LATENCY_METRIC", "endpoint_stats", "log_text"]

# The per-input latency Modal reports, from the queue to the result (``modal function stats``).
LATENCY_METRIC = "End-to-end latency (s)"


def _percentile_ms(distribution: StatsPercentileDistribution | None, percentile: float) -> float | None:
    if distribution is None:
        return None
    for point in distribution.percentiles:
        if abs(point.percentile - percentile) < 1e-6:
            return point.value * 1000.0
    return None


def _finished(stats: FunctionStats) -> int:
    return stats.input_success_count + stats.input_failure_count + stats.input_timeout_count


def endpoint_stats(
    name: str,
    window_s: float,
    window: FunctionStats,
    lifetime: FunctionStats,
    current: FunctionCurrentStats,
    min_replicas: int,
) -> EndpointStats:
    """nbserve's figures from the batched method's statistics over the window and its lifetime."""
    finished = _finished(window)
    failed = window.input_failure_count + window.input_timeout_count
    elapsed = max((window.until - window.since).total_seconds(), 1e-9)
    latency = window.input_percentile_stats.get(LATENCY_METRIC)
    state = "running" if current.num_total_runners or min_replicas == 0 else "starting"
    return EndpointStats(
        name=name,
        window_s=window_s,
        state=state,
        replicas_running=current.num_total_runners,
        replicas_target=max(min_replicas, current.num_total_runners),
        replicas_starting=lifetime.container_creating_at_end_count,
        requests=_finished(lifetime),  # one Modal input per item: requests and items agree
        items=_finished(lifetime),
        errors=lifetime.input_failure_count + lifetime.input_timeout_count,
        window_requests=finished,
        requests_per_s=finished / elapsed,
        items_per_s=finished / elapsed,
        error_rate=failed / finished if finished else 0.0,
        p50_ms=_percentile_ms(latency, 50),
        p95_ms=_percentile_ms(latency, 95),
        p99_ms=_percentile_ms(latency, 99),
        replicas_reporting=current.num_total_runners,
    )


def log_text(entries: Iterable[LogEntry]) -> str:
    """Modal's log entries as the lines a terminal would show, oldest first, timestamped in UTC."""
    lines = []
    for entry in sorted(entries, key=lambda e: e.timestamp):
        stamp = entry.timestamp.strftime("%H:%M:%S")
        for line in entry.message.rstrip("\n").splitlines() or [""]:
            lines.append(f"{stamp} {entry.source:<6} {line}")
    return "\n".join(lines)
