"""The ingresses Ray 2.60 offers, tried with nbserve: Serve's Python proxy (nbserve's default)
against HAProxy in front of replicas that serve HTTP themselves (``RAY_SERVE_ENABLE_HA_PROXY=1``,
which turns on Serve's direct ingress), beside the hand-written anchor on Ray's defaults.

    python benchmarks/ingress.py [--rounds 2] [--seconds 10] [-o docs/benchmarks.md]

For each ingress the benchmarks' embedded cluster (ports 6589/8189 unless set) is started with
that ingress's settings, the no-op cell is deployed with nbserve's default flags, and wrk posts
one item per request at 1 and 32 connections. Before the load, every TCP socket the cluster's
processes listen on is listed: a port beyond loopback is what decides whether an ingress can
be nbserve's default (everything of the embedded cluster listens on 127.0.0.1 only, see the
README's Security section). The anchor (``anchor_app.py``, Ray's defaults) runs in the same
run; each figure is the median of ``--rounds`` runs. The section it writes in
docs/benchmarks.md is kept when ``suite.py`` rewrites the file.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import psutil

import nbserve
from benchmarks.common import BATCH, NOOP_SOURCE, ROOT, Figure, machine, use_benchmark_cluster, write_section
from benchmarks.suite import anchor_server
from benchmarks.wrk import run_wrk
from nbserve._config import embedded_settings
from nbserve.backends.ray import cluster

CONNECTIONS = (1, 32)


@dataclass
class Ingress:
    name: str
    env: dict[str, str]
    rps: dict[int, Figure] = field(default_factory=lambda: {c: Figure("req/s") for c in CONNECTIONS})
    p50: dict[int, Figure] = field(default_factory=lambda: {c: Figure("ms") for c in CONNECTIONS})
    p99: dict[int, Figure] = field(default_factory=lambda: {c: Figure("ms") for c in CONNECTIONS})
    open_beyond_loopback: set[str] = field(default_factory=set)
    failure: str = ""


def haproxy_env(folder: Path) -> dict[str, str]:
    """HAProxy mode, with its files in a private folder and its two ports out of Ray's way."""
    settings = embedded_settings()
    return {
        "RAY_SERVE_ENABLE_HA_PROXY": "1",
        "RAY_SERVE_HAPROXY_CONFIG_FILE_LOC": str(folder / "haproxy.cfg"),
        "RAY_SERVE_HAPROXY_SOCKET_PATH": str(folder / "a.sock"),
        "RAY_SERVE_HAPROXY_METRICS_SOCKET_PATH": str(folder / "m.sock"),
        "RAY_SERVE_HAPROXY_SERVER_STATE_BASE": str(folder),
        "RAY_SERVE_HAPROXY_SERVER_STATE_FILE": str(folder / "server-state"),
        "RAY_SERVE_HAPROXY_STATS_PORT": str(settings.http_port + 1),
        "RAY_SERVE_HAPROXY_METRICS_PORT": str(settings.http_port + 2),
    }


@contextmanager
def cluster_with(env: dict[str, str]) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)  # `ray start` takes this process's environment
    try:
        cluster.start_embedded()
        yield
    finally:
        cluster.stop_embedded()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def listening_beyond_loopback() -> set[str]:
    """``process name: address:port`` for every TCP listener of the cluster not on loopback."""
    found = set()
    for proc in cluster.cluster_processes(embedded_settings()):
        try:
            connections = proc.net_connections(kind="tcp")
            name = proc.name()
        except psutil.Error:
            continue
        for conn in connections:
            ip = conn.laddr.ip.removeprefix("::ffff:")  # an IPv4 address on a dual-stack socket
            if conn.status == psutil.CONN_LISTEN and not ip.startswith("127.") and ip != "::1":
                found.add(f"{name}: {conn.laddr.ip}:{conn.laddr.port}")
    return found


def measure(url: str, headers: dict[str, str], seconds: float, into: Ingress) -> None:
    run_wrk(url, body=1, connections=32, duration_s=2, headers=headers)  # warm
    for connections in CONNECTIONS:
        result = run_wrk(url, body=1, connections=connections, duration_s=seconds, threads=2, headers=headers)
        if result.non_2xx or result.socket_errors:
            raise RuntimeError(f"{result.non_2xx} non-2xx, {result.socket_errors} socket errors at c{connections}")
        into.rps[connections].values.append(result.requests_per_s)
        into.p50[connections].values.append(result.p50_ms)
        into.p99[connections].values.append(result.p99_ms)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("-o", "--output", default=str(ROOT / "docs" / "benchmarks.md"))
    args = parser.parse_args()
    use_benchmark_cluster()
    # Short: HAProxy's socket paths (this folder, Ray's node id, a name) must fit 97 bytes.
    folder = Path(tempfile.mkdtemp(prefix="nbh-", dir="/tmp"))
    anchor = Ingress("anchor: hand-written Ray Serve app, Ray's defaults", {})
    ingresses = [
        Ingress("nbserve, Serve's proxy (the default)", {}),
        Ingress("nbserve, HAProxy + direct ingress", haproxy_env(folder)),
    ]
    for round_ in range(args.rounds):
        print(f"[ingress] round {round_ + 1}: anchor", file=sys.stderr, flush=True)
        with anchor_server("noop") as url:
            measure(url, {}, args.seconds, anchor)
        for ingress in ingresses:
            if ingress.failure:
                continue
            print(f"[ingress] round {round_ + 1}: {ingress.name}", file=sys.stderr, flush=True)
            try:
                with cluster_with(ingress.env):
                    ep = nbserve.deploy(NOOP_SOURCE, "noop", on_event=lambda e: None, max_batch_size=BATCH)
                    ingress.open_beyond_loopback |= listening_beyond_loopback()
                    measure(ep.url, ep.headers(), args.seconds, ingress)
            except Exception as exc:  # noqa: BLE001 - an ingress that fails here is a finding, not a crash
                ingress.failure = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"

    rows = [
        "| ingress | c1 req/s | c1 p50 | c32 req/s | c32 p99 | c32 vs anchor | listening beyond loopback |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for ingress in [anchor, *ingresses]:
        if ingress.failure:
            rows.append(f"| {ingress.name} | failed: {ingress.failure} | | | | | |")
            continue
        ratio = ingress.rps[32].median / anchor.rps[32].median
        opened = ", ".join(sorted(ingress.open_beyond_loopback)) or "nothing"
        opened = "(not checked)" if ingress is anchor else opened
        rows.append(
            f"| {ingress.name} | {ingress.rps[1]} | {ingress.p50[1]} | {ingress.rps[32]} | {ingress.p99[32]} "
            f"| {ratio:.2f}x | {opened} |"
        )
    table = "\n".join(rows)
    report = f"""## Ingress (no-op handler, {args.rounds} rounds of {args.seconds:g} s)

Written by `python benchmarks/ingress.py` on {machine()}. The no-op cell with nbserve's
default flags, one item per request from wrk; the anchor is `anchor_app.py` on Ray's defaults.

{table}
"""
    write_section(Path(args.output), "ingress", report)
    print(report)


if __name__ == "__main__":
    main()
