"""Modal's statistics and log entries read into nbserve's figures, offline (Modal's own types)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from modal.types import (
    FunctionCurrentStats,
    FunctionStats,
    LogEntry,
    StatsPercentile,
    StatsPercentileDistribution,
)

from nbserve.backends.modal.figures import LATENCY_METRIC, endpoint_stats, log_text

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=timezone.utc)


def function_stats(
    span_s: float, success: int, failure: int = 0, timeout: int = 0, latency_s: dict[float, float] | None = None
) -> FunctionStats:
    distributions = {}
    if latency_s is not None:
        points = [StatsPercentile(p, v) for p, v in latency_s.items()]
        distributions[LATENCY_METRIC] = StatsPercentileDistribution("s", points)
    return FunctionStats(
        since=NOW - timedelta(seconds=span_s),
        until=NOW,
        input_success_count=success,
        input_failure_count=failure,
        input_timeout_count=timeout,
        input_running_at_end_count=0,
        input_percentile_stats=distributions,
        container_started_count=2,
        container_error_count=0,
        container_creating_at_end_count=1,
        container_percentile_stats={},
        container_total_count=2,
        variant_count=1,
        all_variants=False,
    )


def current(runners: int) -> FunctionCurrentStats:
    return FunctionCurrentStats(backlog=0, num_total_runners=runners, num_running_inputs=0, input_headroom=0)


def test_rates_errors_and_latency_come_from_the_window() -> None:
    window = function_stats(60, success=114, failure=4, timeout=2, latency_s={50: 0.012, 95: 0.030, 99: 0.2})
    lifetime = function_stats(3600, success=1000, failure=10, timeout=5)
    stats = endpoint_stats("embed", 60, window, lifetime, current(2), min_replicas=1)
    assert stats.window_requests == 120
    assert stats.requests_per_s == 2.0
    assert stats.items_per_s == 2.0
    assert stats.error_rate == 6 / 120
    assert (stats.p50_ms, stats.p95_ms, stats.p99_ms) == (12.0, 30.0, 200.0)
    assert (stats.requests, stats.items, stats.errors) == (1015, 1015, 15)
    assert (stats.replicas_running, stats.replicas_target, stats.replicas_starting) == (2, 2, 1)
    assert stats.state == "running"


def test_an_idle_window_has_no_latency_and_no_error_rate() -> None:
    stats = endpoint_stats(
        "embed", 60, function_stats(60, success=0), function_stats(3600, success=7), current(0), min_replicas=0
    )
    assert stats.window_requests == 0 and stats.error_rate == 0.0 and stats.p50_ms is None
    assert stats.requests == 7
    assert stats.state == "running"  # scaled to zero is Modal's normal idle state


def test_no_containers_while_replicas_are_wanted_is_starting() -> None:
    stats = endpoint_stats(
        "embed", 60, function_stats(60, success=0), function_stats(60, success=0), current(0), min_replicas=2
    )
    assert stats.state == "starting"
    assert stats.replicas_target == 2


def test_log_text_orders_entries_and_splits_lines() -> None:
    entries = [
        LogEntry("second\nthird\n", NOW + timedelta(seconds=5), "stderr", "ap-1", []),
        LogEntry("first\n", NOW, "stdout", "ap-1", []),
    ]
    assert log_text(entries).splitlines() == [
        "12:00:00 stdout first",
        "12:00:05 stderr second",
        "12:00:05 stderr third",
    ]
