"""What the live dashboard costs: served throughput with monitoring on and off, in one run.

    python benchmarks/monitoring_overhead.py [--pairs 12] [--seconds 3] [--connections 32]

The endpoint is a no-op handler, the worst case: every request's recording cost is a larger
share of a cheap request than of a model's. Two copies of it run side by side: "off" deployed
with NBSERVE_METRICS=0 (its replica records nothing), "on" recording every request. Trials
come in pairs, one of each, back to back (the order flips every pair); during an "on" trial a
dashboard poller runs in this process, reading the figures every second as a notebook's
would. wrk, a compiled load generator, sends one item per request over keep-alive
connections. Uses its own ports (NBSERVE_RAY_PORT=6589, NBSERVE_HTTP_PORT=8189) unless set.

Why pairs: throughput on a 2-core machine shared with other work drifts by tens of percent
over minutes, far more than the few percent measured here. Two endpoints that are both up
the whole time, short trials and the ratio within each pair cancel most of that drift; the
cost is one minus the median of the pairs' ratios, shown with a distribution-free 95 %
confidence interval of that median. The CPU each process spends per request (from the
kernel's accounting, wrk left out) shows where the cost lies: the collector, the poller, or
the replica.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from math import comb
from pathlib import Path
from statistics import median

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import nbserve
from benchmarks.common import NOOP_SOURCE, Figure, use_benchmark_cluster
from benchmarks.processes import CpuAccount
from benchmarks.wrk import WrkResult, run_wrk
from nbserve._dashboard.widget import live_dashboard
from nbserve.backends.ray import cluster


@dataclass
class Trial:
    monitoring: bool
    pair: int
    result: WrkResult
    cpu_s: dict[str, float] = field(default_factory=dict)  # role -> CPU seconds during the load


def _load(endpoint: nbserve.Endpoint, seconds: float, connections: int) -> tuple[WrkResult, dict[str, float]]:
    """wrk on ``endpoint``, and each role's CPU seconds meanwhile: the two endpoints' replicas
    count as the one under load and the idle one, whichever setting the trial has."""
    account = CpuAccount()
    account.start()
    result = run_wrk(endpoint.url, body=1, connections=connections, duration_s=seconds, headers=endpoint.headers())
    account.stop()
    if result.non_2xx or result.socket_errors:
        raise RuntimeError(f"errors under load, figures unusable:\n{result.output}")
    loaded = f"replica {endpoint.name}"
    cpu_s: dict[str, float] = {}
    for name, spent in account.seconds.items():
        if name.startswith("replica noop_"):
            name = "replica under load" if name == loaded else "the other, idle replica"
        cpu_s[name] = cpu_s.get(name, 0.0) + spent
    return result, cpu_s


def paired_trials(pairs: int, seconds: float, connections: int, log: Callable[[str], None] = print) -> list[Trial]:
    """``pairs`` pairs of trials of ``seconds`` each, monitoring off and on, the order
    flipping every pair; both endpoints are deployed first and deleted at the end."""
    flags = {"cpus": "0.5", "max_batch_size": "32", "batch_wait_ms": "5"}
    endpoints = {
        False: nbserve.deploy(NOOP_SOURCE, "noop_unmonitored", env=["NBSERVE_METRICS=0"], **flags),
        True: nbserve.deploy(NOOP_SOURCE, "noop_monitored", **flags),
    }
    trials: list[Trial] = []
    try:
        for endpoint in endpoints.values():  # warm the ingress's routes and each replica
            run_wrk(endpoint.url, body=1, connections=connections, duration_s=2, headers=endpoint.headers())
        for pair in range(pairs):
            for monitoring in (False, True) if pair % 2 == 0 else (True, False):
                dashboard = live_dashboard(endpoints[True], start=True) if monitoring else None
                try:
                    result, cpu_s = _load(endpoints[monitoring], seconds, connections)
                finally:
                    if dashboard is not None:
                        dashboard.stop()
                # It polls once a second, the first a second after it starts.
                if dashboard is not None and dashboard.updates < int(seconds) - 1:
                    raise RuntimeError(f"the dashboard updated only {dashboard.updates} times in {seconds:g} s")
                trials.append(Trial(monitoring, pair, result, cpu_s))
                log(
                    f"pair {pair + 1} monitoring {'on ' if monitoring else 'off'}: "
                    f"{result.requests_per_s:.1f} req/s, p50 {result.p50_ms:.1f} ms"
                )
    finally:
        for endpoint in endpoints.values():
            endpoint.down()
    return trials


def pair_ratios(trials: list[Trial]) -> list[float]:
    """Throughput with monitoring over throughput without, one ratio per pair."""
    by_pair: dict[int, dict[bool, float]] = {}
    for t in trials:
        by_pair.setdefault(t.pair, {})[t.monitoring] = t.result.requests_per_s
    return [rates[True] / rates[False] for rates in by_pair.values() if len(rates) == 2]


def median_interval(values: list[float], confidence: float = 0.95) -> tuple[float, float]:
    """A distribution-free confidence interval of the median: the order statistics ``k`` and
    ``n - k + 1`` with ``k`` the largest rank for which the binomial tails leave at least
    ``confidence`` between them (the whole range when there are too few values)."""
    ordered = sorted(values)
    n = len(ordered)
    k = 0
    while k + 1 <= n // 2 and 2 * sum(comb(n, i) for i in range(k + 1)) / 2**n <= 1 - confidence:
        k += 1
    return ordered[max(k - 1, 0)], ordered[n - max(k, 1)]


def cost(trials: list[Trial]) -> tuple[float, float, float]:
    """Monitoring's cost in throughput: one minus the median of the pairs' ratios, and the
    95 % confidence interval of that median (lowest cost first)."""
    ratios = pair_ratios(trials)
    low_ratio, high_ratio = median_interval(ratios)
    return 1 - median(ratios), 1 - high_ratio, 1 - low_ratio


def figure_of(trials: list[Trial], monitoring: bool, field: str, unit: str = "") -> Figure:
    return Figure(unit, [getattr(t.result, field) for t in trials if t.monitoring == monitoring])


def report(trials: list[Trial], connections: int) -> str:
    pairs = len(pair_ratios(trials))
    lines = [
        f"No-op endpoint, one item per request, wrk -c{connections}; median (range) of {pairs} trials each.",
        "",
        "| monitoring | requests/s | p50 ms | p99 ms |",
        "| --- | --- | --- | --- |",
    ]
    for monitoring in (False, True):
        cells = [str(figure_of(trials, monitoring, f)).strip() for f in ("requests_per_s", "p50_ms", "p99_ms")]
        lines.append(f"| {'on' if monitoring else 'off'} | {' | '.join(cells)} |")
    middle, low, high = cost(trials)
    lines += [
        "",
        f"cost in throughput, median of {pairs} pairs: {middle:+.1%} "
        f"(95 % interval of the median {low:+.1%} to {high:+.1%})",
        "",
    ]
    return "\n".join(lines + cpu_table(trials))


def cpu_per_request_ms(trials: list[Trial], monitoring: bool, role: str | None) -> float:
    """Median over the trials of one role's CPU per request (``None``: every process counted)."""
    return median(
        1000 * (sum(t.cpu_s.values()) if role is None else t.cpu_s.get(role, 0.0)) / max(t.result.requests, 1)
        for t in trials
        if t.monitoring == monitoring
    )


def cpu_table(trials: list[Trial]) -> list[str]:
    """CPU per request of each process that spends at least 1 % of the total, on and off."""
    roles = sorted({r for t in trials for r in t.cpu_s}, key=lambda r: -cpu_per_request_ms(trials, True, r))
    total = cpu_per_request_ms(trials, True, None)
    lines = ["| process | CPU ms per request, on | off |", "| --- | --- | --- |"]
    for role in roles:
        on, off = cpu_per_request_ms(trials, True, role), cpu_per_request_ms(trials, False, role)
        if max(on, off) >= 0.01 * total:
            lines.append(f"| {role} | {on:.3f} | {off:.3f} |")
    on, off = total, cpu_per_request_ms(trials, False, None)
    lines += [
        f"| all counted | {on:.3f} | {off:.3f} |",
        "",
        f"CPU per request with monitoring / without: {on / off:.3f}",
    ]
    return lines


def main() -> None:
    use_benchmark_cluster()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=12)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    started_cluster = cluster.embedded_status() is None
    try:
        trials = paired_trials(args.pairs, args.seconds, args.connections, lambda line: print(line, file=sys.stderr))
    finally:
        if started_cluster:
            cluster.stop_embedded()
    print(report(trials, args.connections))


if __name__ == "__main__":
    main()
