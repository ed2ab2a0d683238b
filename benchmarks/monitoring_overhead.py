"""What the live dashboard costs: served throughput with monitoring on and off, in one run.

    python benchmarks/monitoring_overhead.py [--rounds 3] [--seconds 10] [--connections 32]

The endpoint is a no-op handler, the worst case: every request's recording cost is a larger
share of a cheap request than of a model's. "off" deploys it with NBSERVE_METRICS=0 (the
replica records nothing) and runs no dashboard; "on" records every request and keeps a
dashboard poller running in this process, reading the figures every second as a notebook's
would. The two alternate within each round (the order flips every round), and wrk, a
compiled load generator, sends one item per request over keep-alive connections.
Uses its own ports (NBSERVE_RAY_PORT=6589, NBSERVE_HTTP_PORT=8189) unless they are set.

Throughput on a 2-core machine shared with other work moves by tens of percent between runs;
the CPU each process spends per request (from the kernel's accounting, wrk left out) shows
where the cost lies: the collector, the poller, or the replica.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
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
    result: WrkResult
    cpu_s: dict[str, float] = field(default_factory=dict)  # role -> CPU seconds during the load


def trial(monitoring: bool, seconds: float, connections: int) -> Trial:
    env = [] if monitoring else ["NBSERVE_METRICS=0"]
    endpoint = nbserve.deploy(NOOP_SOURCE, "noop_bench", cpus="1", max_batch_size="32", batch_wait_ms="5", env=env)
    dashboard = live_dashboard(endpoint, start=True) if monitoring else None
    try:
        auth = endpoint.headers()
        run_wrk(endpoint.url, body=1, connections=connections, duration_s=2, headers=auth)  # warm the proxy and routes
        account = CpuAccount()
        account.start()
        result = run_wrk(endpoint.url, body=1, connections=connections, duration_s=seconds, headers=auth)
        account.stop()
    finally:
        if dashboard is not None:
            dashboard.stop()
    if result.non_2xx or result.socket_errors:
        raise RuntimeError(f"errors under load, figures unusable:\n{result.output}")
    if dashboard is not None and dashboard.updates < seconds / 2:
        raise RuntimeError(f"the dashboard updated only {dashboard.updates} times in {seconds} s")
    return Trial(monitoring, result, account.seconds)


def figure_of(trials: list[Trial], monitoring: bool, field: str, unit: str = "") -> Figure:
    return Figure(unit, [getattr(t.result, field) for t in trials if t.monitoring == monitoring])


def report(trials: list[Trial], connections: int) -> str:
    lines = [
        f"No-op endpoint, one item per request, wrk -c{connections}; median (range) of {len(trials) // 2} runs each.",
        "",
        "| monitoring | requests/s | p50 ms | p99 ms |",
        "| --- | --- | --- | --- |",
    ]
    for monitoring in (False, True):
        cells = [str(figure_of(trials, monitoring, f)).strip() for f in ("requests_per_s", "p50_ms", "p99_ms")]
        lines.append(f"| {'on' if monitoring else 'off'} | {' | '.join(cells)} |")
    on, off = figure_of(trials, True, "requests_per_s").median, figure_of(trials, False, "requests_per_s").median
    lines += ["", f"throughput with monitoring / without: {on / off:.3f} (cost {1 - on / off:+.1%})", ""]
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
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    trials: list[Trial] = []
    started_cluster = cluster.embedded_status() is None
    try:
        for round_ in range(args.rounds):
            for monitoring in (False, True) if round_ % 2 == 0 else (True, False):
                trials.append(trial(monitoring, args.seconds, args.connections))
                print(
                    f"round {round_ + 1} monitoring {'on ' if monitoring else 'off'}: "
                    f"{trials[-1].result.requests_per_s:.1f} req/s, p50 {trials[-1].result.p50_ms:.1f} ms",
                    file=sys.stderr,
                )
    finally:
        nbserve.endpoint("noop_bench").down()
        if started_cluster:
            cluster.stop_embedded()
    print(report(trials, args.connections))


if __name__ == "__main__":
    main()
