"""Window and percentile arithmetic against references computed from the raw samples."""

from __future__ import annotations

import math
import random
import threading

import numpy as np
import pytest

from nbserve._metrics import HISTORY_S, MetricsWindow, percentile
from nbserve.runtime.recorder import Recorder, RequestSample

NOW = 1_800_000_000.0


def samples(rng: random.Random, count: int, *, start: float, end: float) -> list[RequestSample]:
    return [
        RequestSample(rng.uniform(start, end), rng.lognormvariate(-4, 0.8), rng.randint(1, 8), rng.random() < 0.1)
        for _ in range(count)
    ]


@pytest.mark.parametrize("q", [0, 1, 25, 50, 90, 95, 99, 99.9, 100])
@pytest.mark.parametrize("size", [1, 2, 7, 100, 1001])
def test_percentile_matches_numpy(q: float, size: int) -> None:
    values = sorted(random.Random(size).expovariate(1.0) for _ in range(size))
    assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)), rel=1e-12)


def test_percentile_refuses_empty_input_and_bad_q() -> None:
    with pytest.raises(ValueError, match="no values"):
        percentile([], 50)
    with pytest.raises(ValueError, match=r"0\.\.100"):
        percentile([1.0], 101)


def test_stats_cover_exactly_the_window() -> None:
    rng = random.Random(1)
    window = MetricsWindow("embed", created_at=NOW - 1000)
    old = samples(rng, 500, start=NOW - 200, end=NOW - 60)  # before the window
    recent = samples(rng, 800, start=NOW - 60, end=NOW)
    future = samples(rng, 50, start=NOW + 0.001, end=NOW + 2)  # shipped, not yet in the window
    window.add("r1", old[:250] + recent[:400], now=NOW)
    window.add("r2", old[250:] + recent[400:] + future, now=NOW)

    stats = window.stats(60, now=NOW)

    inside = [s for s in recent if s.finished_at > NOW - 60]
    latencies_ms = [s.latency_s * 1000 for s in inside]
    assert stats.window_requests == len(inside)
    assert stats.requests == 1350  # totals count everything shipped
    assert stats.items == sum(s.items for s in old + recent + future)
    assert stats.errors == sum(s.failed for s in old + recent + future)
    assert stats.requests_per_s == pytest.approx(len(inside) / 60)
    assert stats.items_per_s == pytest.approx(sum(s.items for s in inside) / 60)
    assert stats.error_rate == pytest.approx(sum(s.failed for s in inside) / len(inside))
    for field, q in (("p50_ms", 50), ("p95_ms", 95), ("p99_ms", 99)):
        assert getattr(stats, field) == pytest.approx(float(np.percentile(latencies_ms, q)))
    assert stats.replicas_reporting == 2


def test_rows_off_the_wire_count_as_the_samples_they_came_from() -> None:
    # The collector hands a shipment over as it arrives: plain tuples in RequestSample's order.
    rng = random.Random(3)
    shipped = [*samples(rng, 300, start=NOW - 30, end=NOW), RequestSample(NOW - 1, 0.2, 1, False, 0.05, 4)]
    as_samples, as_rows = MetricsWindow("a", created_at=NOW - 100), MetricsWindow("b", created_at=NOW - 100)
    as_samples.add("r", shipped, now=NOW)
    as_rows.add("r", [tuple(s) for s in shipped], now=NOW)
    assert {**as_rows.stats(60, now=NOW).to_dict(), "name": "a"} == as_samples.stats(60, now=NOW).to_dict()
    assert as_rows.stats(60, now=NOW).requests == 301


def test_rates_of_a_young_endpoint_use_its_age_not_the_whole_window() -> None:
    window = MetricsWindow("young", created_at=NOW - 10)
    window.add("r", [RequestSample(NOW - 5 + i / 100, 0.01, 1, False) for i in range(100)], now=NOW)
    assert window.stats(60, now=NOW).requests_per_s == pytest.approx(10.0)


def test_empty_window_has_no_latency_and_no_rate() -> None:
    stats = MetricsWindow("idle", created_at=NOW - 100).stats(now=NOW)
    assert (stats.requests, stats.requests_per_s, stats.error_rate) == (0, 0.0, 0.0)
    assert stats.p50_ms is None and stats.batch_mean is None and stats.batch_max is None


def test_batch_sizes_in_the_window() -> None:
    window = MetricsWindow("b", created_at=NOW - 1000)
    window.add("r", [], [(NOW - 100, 64), (NOW - 30, 4), (NOW - 20, 32), (NOW - 1, 12)], now=NOW)
    stats = window.stats(60, now=NOW)
    assert stats.batch_mean == pytest.approx((4 + 32 + 12) / 3)
    assert stats.batch_max == 32


def test_samples_older_than_the_history_are_dropped_but_still_counted() -> None:
    window = MetricsWindow("h", created_at=NOW - 1000)
    window.add("r", [RequestSample(NOW - HISTORY_S - 1, 0.01, 1, False)], now=NOW - 10)
    window.add("r", [RequestSample(NOW, 0.01, 1, False)], now=NOW)
    assert window.stats(HISTORY_S + 100, now=NOW).window_requests == 1
    assert window.stats(now=NOW).requests == 2


def test_series_buckets_match_a_direct_count() -> None:
    rng = random.Random(7)
    window = MetricsWindow("s", created_at=NOW - 1000)
    raw = samples(rng, 3000, start=NOW - 200, end=NOW)
    raw.append(RequestSample(NOW - 15.0, 0.5, 1, False))  # exactly on an edge: closes the step it ends
    window.add("r", raw, now=NOW)

    points = window.series(span_s=60, step_s=5, now=NOW)

    assert len(points) == 12
    assert [p.t for p in points] == [NOW - 55 + 5 * i for i in range(12)]
    for point in points:
        in_step = sorted(s.latency_s * 1000 for s in raw if point.t - 5 < s.finished_at <= point.t)
        assert point.requests_per_s == pytest.approx(len(in_step) / 5)
        assert point.p95_ms == pytest.approx(float(np.percentile(in_step, 95)))
    assert sum(p.requests_per_s * 5 for p in points) == len([s for s in raw if s.finished_at > NOW - 60])


@pytest.mark.parametrize(("offset", "running"), [(0.0, 5.0), (3.5, 3.5), (1.0, 6.0), (2.5, 2.5)])
def test_series_steps_lie_on_a_grid_and_the_newest_runs_to_now(offset: float, running: float) -> None:
    """Between edges the newest point covers the step still running; under half a step long,
    it takes in the step before it."""
    rng = random.Random(11)
    window = MetricsWindow("g", created_at=NOW - 1000)
    now = NOW + offset
    raw = samples(rng, 2000, start=now - 100, end=now)
    window.add("r", raw, now=now)

    points = window.series(span_s=60, step_s=5, now=now)

    assert len(points) == 12
    assert points[-1].t == now and points[-1].step_s == pytest.approx(running)
    edges = [p.t for p in points[:-1]]
    assert all(t % 5 == 0 and p.step_s == 5 for t, p in zip(edges, points, strict=False))
    assert edges == [points[-1].t - running - 5 * (10 - i) for i in range(11)]
    for point in points:
        in_step = sorted(s.latency_s * 1000 for s in raw if point.t - point.step_s < s.finished_at <= point.t)
        assert point.requests_per_s * point.step_s == pytest.approx(len(in_step))
        assert point.p50_ms == pytest.approx(float(np.percentile(in_step, 50)))
    covered = points[0].t - points[0].step_s
    assert sum(p.requests_per_s * p.step_s for p in points) == pytest.approx(
        len([s for s in raw if s.finished_at > covered])
    )


def test_polls_a_second_apart_recompute_only_the_running_step(monkeypatch: pytest.MonkeyPatch) -> None:
    window = MetricsWindow("c", created_at=NOW - 1000)
    window.add("r", samples(random.Random(2), 3000, start=NOW - 200, end=NOW), now=NOW)
    selected: list[tuple[float, float]] = []
    select = window._select
    monkeypatch.setattr(window, "_select", lambda start, end: selected.append((start, end)) or select(start, end))

    window.series(180, 5, now=NOW + 0.2)
    assert len(selected) == 36  # nothing kept yet: every step
    selected.clear()
    window.series(180, 5, now=NOW + 1.2)
    assert selected == [(NOW - 5, NOW + 1.2)]  # the same grid: only the running step
    selected.clear()
    window.series(180, 5, now=NOW + 5.6)
    assert selected == [(NOW - 5, NOW), (NOW, NOW + 5.6)]  # a step ended: it, then the running one


@pytest.mark.parametrize("seed", range(3))
def test_kept_steps_follow_late_shipments_and_the_horizon(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """A poll a second, shipments that land in steps already computed (a replica that ships
    late) and a history shorter than the plot, so the horizon passes through kept steps:
    every point still matches the plain computation over what the window holds."""
    monkeypatch.setattr("nbserve._metrics.HISTORY_S", 40.0)
    rng = random.Random(seed)
    window = MetricsWindow("k", created_at=NOW - 1000)
    raw: list[RequestSample] = []
    for second in range(80):
        now = NOW + second + rng.random()
        shipped = samples(rng, rng.randint(0, 120), start=now - 1, end=now)
        shipped += samples(rng, rng.randint(0, 5), start=now - 20, end=now - 1)  # late
        window.add(f"r{second % 3}", shipped, now=now)
        raw += shipped
        held = [s for s in raw if s.finished_at >= now - 40]  # the horizon
        for point in window.series(60, 5, now=now):
            inside = [s.latency_s * 1000 for s in held if point.t - point.step_s < s.finished_at <= point.t]
            assert point.requests_per_s * point.step_s == pytest.approx(len(inside)), (second, point)
            if inside:
                assert point.p99_ms == pytest.approx(float(np.percentile(inside, 99)))


def test_a_kept_step_the_cap_cuts_into_is_computed_again(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("nbserve._metrics.MAX_SAMPLES", 1000)
    window = MetricsWindow("cap", created_at=NOW - 100)

    def in_old_step(now: float) -> float:  # requests in the step (NOW - 20, NOW - 15]
        return {p.t: p.requests_per_s * p.step_s for p in window.series(30, 5, now=now)}[NOW - 15]

    window.add("r", [RequestSample(NOW - 18 + i / 1000, 0.01, 1, False) for i in range(900)], now=NOW - 17)
    assert in_old_step(NOW - 2) == 900
    window.add("r", [RequestSample(NOW - 1 + i / 1000, 0.01, 1, False) for i in range(500)], now=NOW)
    assert in_old_step(NOW + 0.1) == 500  # the cap took its 400 oldest


def test_bad_window_arguments_are_refused() -> None:
    window = MetricsWindow("x")
    with pytest.raises(ValueError, match="positive"):
        window.stats(0)
    with pytest.raises(ValueError, match="step_s"):
        window.series(span_s=1, step_s=5)


def test_recorder_loses_nothing_under_concurrent_appends_and_drains() -> None:
    recorder = Recorder()
    drained: list[RequestSample] = []
    done = threading.Event()

    def drain_until_done() -> None:
        while not done.is_set():
            drained.extend(recorder.drain()[0])
        drained.extend(recorder.drain()[0])

    flusher = threading.Thread(target=drain_until_done)
    flusher.start()
    writers = [
        threading.Thread(target=lambda: [recorder.request(0.0, 1, False) for _ in range(20_000)]) for _ in range(4)
    ]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()
    done.set()
    flusher.join()
    assert len(drained) == 80_000


def test_windows_end_where_every_live_replica_has_shipped() -> None:
    window = MetricsWindow("lag", created_at=NOW - 100)
    window.add("fast", [RequestSample(NOW - 0.2, 0.01, 1, False)], now=NOW)
    window.add("slow", [RequestSample(NOW - 1.5, 0.01, 1, False)], now=NOW - 0.8)
    window.add("gone", [], now=NOW - 60)  # stopped long ago: does not hold the window back
    assert window.complete_until(NOW) == NOW - 0.8
    # The fast replica's newest request is not counted until the slow one has caught up.
    assert window.stats(60, now=window.complete_until(NOW)).window_requests == 1
    window.add("slow", [], now=NOW + 0.1)
    assert window.stats(60, now=window.complete_until(NOW + 0.1)).window_requests == 2


def test_history_is_capped_but_totals_stay_exact(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("nbserve._metrics.MAX_SAMPLES", 100)
    window = MetricsWindow("busy", created_at=NOW - 100)
    window.add("r", [RequestSample(NOW - 10 + i / 1000, 0.01, 1, False) for i in range(250)], now=NOW)
    stats = window.stats(60, now=NOW)
    assert stats.requests == 250 and stats.window_requests == 100  # the newest 100 kept


def reference_stats(raw: list[RequestSample], batches: list[tuple[float, int]], start: float, end: float) -> dict:
    """The figures computed the plain way, from every sample in (start, end]."""
    inside = [s for s in raw if start < s.finished_at <= end]
    streams = [s for s in inside if s.chunks]
    firsts = [s.first_chunk_s * 1000 for s in streams if s.first_chunk_s is not None]
    sizes = [size for t, size in batches if start < t <= end]
    latencies = [s.latency_s * 1000 for s in inside]
    return {
        "window_requests": len(inside),
        "items": sum(s.items for s in inside),
        "failed": sum(s.failed for s in inside),
        "p": [float(np.percentile(latencies, q)) for q in (50, 95, 99)] if latencies else [None] * 3,
        "streams": len(streams),
        "chunks": sum(s.chunks for s in streams),
        "first_p50": float(np.percentile(firsts, 50)) if firsts else None,
        "batch_mean": sum(sizes) / len(sizes) if sizes else None,
        "batch_max": max(sizes) if sizes else None,
    }


@pytest.mark.parametrize("seed", range(5))
def test_windows_at_any_edges_match_the_plain_computation(seed: int) -> None:
    """Samples are kept per second; windows that start and end inside a second still count exactly."""
    rng = random.Random(seed)
    window = MetricsWindow("w", created_at=NOW - 1000)
    raw: list[RequestSample] = []
    batches: list[tuple[float, int]] = []
    for k in range(6):  # shipments out of order across seconds, as from several replicas
        shipped = [
            RequestSample(t, rng.lognormvariate(-4, 1), rng.randint(1, 4), rng.random() < 0.2, *stream)
            for t in (rng.uniform(NOW - 120, NOW + 1) for _ in range(400))
            for stream in [(rng.uniform(0.001, 0.05), rng.randint(1, 9)) if rng.random() < 0.3 else (None, 0)]
        ]
        shipped += [RequestSample(float(math.floor(NOW - 30 - k)), 0.02, 1, False)]  # on a second's edge
        formed = [(rng.uniform(NOW - 120, NOW), rng.randint(1, 32)) for _ in range(50)]
        window.add(f"r{k % 2}", shipped, formed, now=NOW)
        raw += shipped
        batches += formed
    for _ in range(20):
        end = NOW - rng.uniform(0, 5)
        span = rng.choice([0.3, 1.0, 7.5, 60.0, 119.2])
        stats = window.stats(span, now=end)
        want = reference_stats(raw, batches, end - span, end)
        assert stats.window_requests == want["window_requests"]
        assert stats.items_per_s * span == pytest.approx(want["items"])
        assert stats.error_rate * stats.window_requests == pytest.approx(want["failed"])
        assert [stats.p50_ms, stats.p95_ms, stats.p99_ms] == pytest.approx(want["p"])
        assert (stats.window_streams, stats.chunks_per_s * span) == (want["streams"], pytest.approx(want["chunks"]))
        assert stats.first_chunk_p50_ms == pytest.approx(want["first_p50"])
        assert (stats.batch_mean, stats.batch_max) == (pytest.approx(want["batch_mean"]), want["batch_max"])
    end = NOW - rng.uniform(0, 1)
    for point in window.series(span_s=100, step_s=2.5, now=end):
        want = reference_stats(raw, batches, point.t - point.step_s, point.t)
        assert point.requests_per_s * point.step_s == pytest.approx(want["window_requests"])
        assert [point.p50_ms, point.p95_ms, point.p99_ms] == pytest.approx(want["p"])


def test_the_cap_cuts_through_a_second_and_keeps_its_newest(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("nbserve._metrics.MAX_SAMPLES", 1000)
    rng = random.Random(3)
    window = MetricsWindow("cut", created_at=NOW - 100)
    raw = [RequestSample(rng.uniform(NOW - 3, NOW), rng.random(), 1, False) for _ in range(1500)]
    window.add("r", raw, now=NOW)
    kept = sorted(raw, key=lambda s: s.finished_at)[-1000:]
    stats = window.stats(60, now=NOW)
    assert stats.window_requests == 1000 and stats.requests == 1500
    assert stats.p95_ms == pytest.approx(float(np.percentile([s.latency_s * 1000 for s in kept], 95)))
    window.add("r", [RequestSample(NOW + 0.5, 0.01, 1, False)], now=NOW + 1)
    assert window.stats(60, now=NOW + 1).window_requests == 1000  # the oldest went, not the new one
