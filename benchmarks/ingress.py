"""The ingresses Ray 2.60 offers, tried with nbserve: Serve's Python proxy against HAProxy in
front of replicas that serve HTTP themselves (``NBSERVE_INGRESS=haproxy``: Serve's
``RAY_SERVE_ENABLE_HA_PROXY=1``, which turns on its direct ingress), beside the hand-written
anchor on Ray's defaults.

    python benchmarks/ingress.py [--rounds 2] [--seconds 10] [-o docs/benchmarks.md]

For each ingress the benchmarks' embedded cluster (ports 6589/8189 unless set) is started with
that ingress, the no-op cell and the quickstart's MiniLM cell are deployed with nbserve's
default flags, and wrk posts one item per request at 1 and 32 connections. While they serve,
every TCP socket the cluster's processes listen on is listed: a port beyond loopback decides
whether an ingress can be nbserve's default (everything of the embedded cluster listens on
127.0.0.1 only, see the README's Security section). The anchor (``anchor_app.py``, Ray's
defaults) runs in the same run; each figure is the median of ``--rounds`` runs. The section it
writes in docs/benchmarks.md is kept when ``suite.py`` rewrites the file.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import psutil

import nbserve
from benchmarks.common import (
    BATCH,
    NOOP_SOURCE,
    ROOT,
    TEXT,
    Figure,
    machine,
    minilm_source,
    model_dir,
    use_benchmark_cluster,
    write_section,
)
from benchmarks.suite import anchor_server
from benchmarks.wrk import WrkResult, run_wrk
from nbserve._config import embedded_settings
from nbserve.backends.ray import cluster

CONNECTIONS = (1, 32)
MODELS = ("noop", "minilm")


@dataclass
class Ingress:
    name: str
    env: dict[str, str]
    # (handler, connections) -> its runs
    rps: dict[tuple[str, int], Figure] = field(default_factory=dict)
    p50: dict[tuple[str, int], Figure] = field(default_factory=dict)
    p99: dict[tuple[str, int], Figure] = field(default_factory=dict)
    open_beyond_loopback: set[str] = field(default_factory=set)
    failure: str = ""

    def add(self, model: str, connections: int, result: WrkResult) -> None:
        key = (model, connections)
        self.rps.setdefault(key, Figure("req/s")).values.append(result.requests_per_s)
        self.p50.setdefault(key, Figure("ms")).values.append(result.p50_ms)
        self.p99.setdefault(key, Figure("ms")).values.append(result.p99_ms)


@contextmanager
def cluster_with(env: dict[str, str]) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)  # nbserve's settings and `ray start` read this process's environment
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


def measure(model: str, url: str, headers: dict[str, str], seconds: float, into: Ingress) -> None:
    body = 1 if model == "noop" else TEXT
    run_wrk(url, body=body, connections=32, duration_s=2, headers=headers)  # warm
    for connections in CONNECTIONS:
        result = run_wrk(url, body=body, connections=connections, duration_s=seconds, threads=2, headers=headers)
        if result.non_2xx or result.socket_errors:
            raise RuntimeError(
                f"{model}: {result.non_2xx} non-2xx, {result.socket_errors} socket errors at c{connections}"
            )
        into.add(model, connections, result)


def deploy(model: str) -> nbserve.Endpoint:
    """nbserve's no-op cell or the quickstart's MiniLM cell, at default flags."""
    if model == "noop":
        return nbserve.deploy(NOOP_SOURCE, "noop", on_event=lambda event: None, max_batch_size=BATCH)
    namespace = {"MODEL_DIR": model_dir()}
    return nbserve.deploy(
        minilm_source(), "embed", namespace=namespace, on_event=lambda event: None, max_batch_size=BATCH
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("-o", "--output", default=str(ROOT / "docs" / "benchmarks.md"))
    args = parser.parse_args()
    use_benchmark_cluster()
    anchor = Ingress("anchor: hand-written Ray Serve app, Ray's defaults", {})
    ingresses = [
        Ingress("nbserve, Serve's proxy (`NBSERVE_INGRESS=proxy`)", {"NBSERVE_INGRESS": "proxy"}),
        Ingress("nbserve, HAProxy + direct ingress (`NBSERVE_INGRESS=haproxy`)", {"NBSERVE_INGRESS": "haproxy"}),
    ]
    for round_ in range(args.rounds):
        for model in MODELS:
            print(f"[ingress] round {round_ + 1}, {model}: anchor", file=sys.stderr, flush=True)
            with anchor_server(model) as url:
                measure(model, url, {}, args.seconds, anchor)
        for ingress in ingresses:
            if ingress.failure:
                continue
            print(f"[ingress] round {round_ + 1}: {ingress.name}", file=sys.stderr, flush=True)
            try:
                with cluster_with(ingress.env):
                    for model in MODELS:
                        ep = deploy(model)
                        ingress.open_beyond_loopback |= listening_beyond_loopback()
                        measure(model, ep.url, ep.headers(), args.seconds, ingress)
                        ep.down()
            except Exception as exc:  # noqa: BLE001 - an ingress that fails here is a finding, not a crash
                ingress.failure = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"

    rows = [
        "| ingress | handler | c1 req/s | c1 p50 | c32 req/s | c32 p99 | c1 p50 vs anchor | c32 req/s vs anchor |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for ingress in [anchor, *ingresses]:
        if ingress.failure:
            rows.append(f"| {ingress.name} | failed: {ingress.failure} | | | | | | |")
            continue
        for model in MODELS:
            one, many = (model, 1), (model, 32)
            p50_ratio = ingress.p50[one].median / anchor.p50[one].median
            rps_ratio = ingress.rps[many].median / anchor.rps[many].median
            rows.append(
                f"| {ingress.name} | {model} | {ingress.rps[one]} | {ingress.p50[one]} | {ingress.rps[many]} "
                f"| {ingress.p99[many]} | {p50_ratio:.2f}x | {rps_ratio:.2f}x |"
            )
    opened = [
        f"- {ingress.name}: {', '.join(sorted(ingress.open_beyond_loopback)) or 'nothing'}"
        for ingress in ingresses
        if not ingress.failure
    ]
    table, listeners = "\n".join(rows), "\n".join(opened)
    report = f"""## Ingress ({args.rounds} rounds of {args.seconds:g} s)

Written by `python benchmarks/ingress.py` on {machine()}. nbserve's no-op cell and the
quickstart's MiniLM cell at default flags (batch 32, 5 ms), one item per request from wrk; the
anchor is `anchor_app.py` on Ray's defaults, measured in the same run.

{table}

What the embedded cluster's processes listen on beyond loopback, read while serving (a
replica's port on `::` is its inter-deployment gRPC server, which Ray Serve binds to every
interface and which refuses calls without Ray's cluster token; see the README's Security):

{listeners}
"""
    write_section(Path(args.output), "ingress", report)
    print(report)


if __name__ == "__main__":
    main()
