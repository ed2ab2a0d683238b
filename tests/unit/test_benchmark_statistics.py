"""The statistics behind the monitoring goal's verdict: pairs of trials, the median's
confidence interval, and a verdict that says when the interval cannot decide."""

from __future__ import annotations

from benchmarks.monitoring_overhead import Trial, cost, median_interval, pair_ratios
from benchmarks.suite import interval_verdict
from benchmarks.wrk import WrkResult


def trial(monitoring: bool, pair: int, requests_per_s: float) -> Trial:
    result = WrkResult(int(requests_per_s), 1.0, requests_per_s, 1.0, 1.0, 1.0, 1.0, 0, 0, "")
    return Trial(monitoring, pair, result)


def test_the_median_interval_takes_the_order_statistics_of_a_95_percent_interval() -> None:
    # The textbook ranks: n=10 -> (2nd, 9th), n=12 -> (3rd, 10th), n=20 -> (6th, 15th).
    assert median_interval([float(v) for v in range(1, 11)]) == (2.0, 9.0)
    assert median_interval([float(v) for v in range(12, 0, -1)]) == (3.0, 10.0)
    assert median_interval([float(v) for v in range(1, 21)]) == (6.0, 15.0)
    # Too few values for 95 %: the whole range.
    assert median_interval([3.0, 1.0, 2.0]) == (1.0, 3.0)


def test_the_cost_is_read_pair_by_pair() -> None:
    # Throughput drifts between pairs; each pair's ratio is what counts. Ratios 0.90-1.10 have
    # the median 1.00 (no cost), while the medians of all "on" and all "off" trials pooled
    # (2,850 against 3,000 requests/s) would say 5 %.
    offs = [1000.0, 3000.0, 2000.0, 5000.0, 4000.0]
    ratios = [0.90, 0.95, 1.00, 1.05, 1.10]
    trials = []
    for pair, (off, ratio) in enumerate(zip(offs, ratios, strict=True)):
        trials += [trial(False, pair, off), trial(True, pair, off * ratio)]
    trials.append(trial(True, 5, 9000.0))  # a pair left unfinished counts for nothing
    assert sorted(pair_ratios(trials)) == ratios
    middle, low, high = cost(trials)
    assert abs(middle) < 1e-9
    assert (round(low, 9), round(high, 9)) == (-0.1, 0.1)  # five values: the whole range


def test_the_verdict_says_when_the_interval_spans_the_goal() -> None:
    assert interval_verdict(-0.02, 0.01, 0.03) == "met"
    assert interval_verdict(0.04, 0.09, 0.03) == "**not met**"
    assert "not resolved" in interval_verdict(-0.05, 0.06, 0.03)
