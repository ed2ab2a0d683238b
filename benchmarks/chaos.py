"""Faults under a steady load, and hostile input: what an endpoint answers when things break.

    python benchmarks/chaos.py [--rate 40] [--hostile 5000] [-o docs/reliability.md]

On the benchmarks' embedded cluster (ports 6589/8189 unless set), an endpoint of two replicas
(a handler that takes 20 ms a batch) serves a steady open-loop load: HTTP requests and calls by
handle (``NAME(x)``), each at ``--rate`` per second. One fault at a time is injected while the
load runs: a replica killed, the HTTP proxy's process killed, the metrics collector killed, a handler call
that hangs. For each: requests sent, failed, and the seconds until every request succeeded
again. Then overload: wrk -c500 against the endpoint while a probe sends one request at a time,
compared with the probe's latency without the flood. Then hostile input: ``--hostile`` requests
of more than twenty kinds, counting statuses and answers that are not JSON.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import signal
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import requests

import nbserve
from benchmarks.common import ROOT, sections_of, use_benchmark_cluster
from benchmarks.wrk import run_wrk
from nbserve._config import embedded_settings
from nbserve._errors import NbserveError
from nbserve.backends.ray import cluster

CELL = """
import os, sys, time

class Unprintable(Exception):
    def __str__(self):
        raise RuntimeError("no message")

def chaos(items):
    time.sleep(0.02)
    out = []
    for x in items:
        while x == "hang" and not os.path.exists(RELEASE):
            time.sleep(0.05)
        if x == "raise":
            raise ValueError("asked to raise")
        if x == "exit":
            sys.exit(1)
        if x == "unprintable":
            raise Unprintable()
        out.append({"huge": 10**5000} if x == "huge" else ("\\ud800" if x == "surrogate" else x))
    return out
"""


@dataclass
class Load:
    """An open-loop load: one request every 1/rate seconds, on its own thread, whatever the last did."""

    send: Callable[[], str | None]  # None when the request succeeded, else what went wrong
    rate: float
    sent: int = 0
    failed: int = 0
    failures: list[float] = field(default_factory=list)  # when each failure happened
    kinds: collections.Counter[str] = field(default_factory=collections.Counter)  # what each failure was
    _stop: threading.Event = field(default_factory=threading.Event)

    def _one(self) -> None:
        try:
            failure = self.send()
        except Exception as exc:  # noqa: BLE001 - any failure counts
            failure = type(exc).__name__
        if failure:
            self.failed += 1
            self.failures.append(time.monotonic())
            self.kinds[failure] += 1

    def run(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            self.sent += 1
            threading.Thread(target=self._one, daemon=True).start()
            next_at += 1 / self.rate
            time.sleep(max(0.0, next_at - time.monotonic()))

    @contextmanager
    def running(self) -> Iterator[Load]:
        thread = threading.Thread(target=self.run, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            thread.join()
            time.sleep(2)  # the last requests come back


@dataclass
class FaultRow:
    fault: str
    path: str
    held_rps: float
    sent: int
    failed: int
    recovery_s: float | None
    kinds: str = ""  # what the failures were, e.g. "HTTP 500 (3)"


def http_sender(endpoint: nbserve.Endpoint) -> Callable[[], str | None]:
    session = requests.Session()
    headers = endpoint.headers()

    def send() -> str | None:
        status = session.post(endpoint.url, json={"input": 1}, headers=headers, timeout=30).status_code
        return None if status == 200 else f"HTTP {status}"

    return send


def handle_sender(endpoint: nbserve.Endpoint) -> Callable[[], str | None]:
    return lambda: None if endpoint(1) == 1 else "a wrong answer"


def hang_one(endpoint: nbserve.Endpoint) -> None:
    """A request whose handler call never returns (it is answered 504 after --timeout)."""
    threading.Thread(
        target=requests.post,
        args=(endpoint.url,),
        kwargs={"json": {"input": "hang"}, "headers": endpoint.headers(), "timeout": 60},
        daemon=True,
    ).start()


def kill_replica(name: str) -> None:
    import ray
    from ray.util.state import list_actors

    alive = list_actors(filters=[("class_name", "=", f"ServeReplica:{name}:nbserve_cell"), ("state", "=", "ALIVE")])
    ray.kill(ray.get_actor(alive[0].name, namespace="serve"), no_restart=True)


def kill_proxy() -> None:
    """Kill the process of what answers HTTP outright (SIGKILL, as the OOM killer does): Serve's
    proxy, or with the HAProxy ingress the actor that runs HAProxy. HAProxy, in a session of
    its own, outlives it (nbserve/backends/ray/haproxy.py)."""
    from ray.util.state import list_actors

    proxy_class = "HAProxyManager" if embedded_settings().ingress == "haproxy" else "ProxyActor"
    [proxy] = list_actors(filters=[("class_name", "=", proxy_class), ("state", "=", "ALIVE")])
    os.kill(proxy.pid, signal.SIGKILL)


def kill_collector() -> None:
    import ray

    from nbserve.backends.ray.reports import find_collector

    ray.kill(find_collector(), no_restart=False)


def fault_run(
    endpoint: nbserve.Endpoint, name: str, inject: Callable[[], None], rate: float, log: Callable[[str], None]
) -> list[FaultRow]:
    rows = []
    loads = {"HTTP": Load(http_sender(endpoint), rate), "handle": Load(handle_sender(endpoint), rate)}
    with loads["HTTP"].running(), loads["handle"].running():
        time.sleep(5)
        injected = time.monotonic()
        inject()
        time.sleep(25)
    for path, load in loads.items():
        late = [t - injected for t in load.failures if t >= injected]
        recovery = max(late) if late else None
        kinds = ", ".join(f"{kind} ({count})" for kind, count in load.kinds.most_common())
        rows.append(FaultRow(name, path, rate, load.sent, load.failed, recovery, kinds))
        log(f"  {name} / {path}: {load.failed} of {load.sent} failed {kinds}")
    wait_for_replicas(endpoint, 2)
    return rows


def wait_for_replicas(endpoint: nbserve.Endpoint, count: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = endpoint.status()
        if status.replicas.running >= count and status.state == "running":
            return
        time.sleep(0.5)
    raise RuntimeError(f"{endpoint.name} did not come back to {count} running replicas")


def latency_ms(endpoint: nbserve.Endpoint, count: int) -> tuple[list[float], int, int]:
    """A probe's latencies (one request at a time), how many times it was turned away (503), and
    how many connections were closed on it without an answer."""
    session = requests.Session()
    headers = endpoint.headers()
    latencies, refused, dropped = [], 0, 0
    for _ in range(count):
        started = time.perf_counter()
        try:
            answer = session.post(endpoint.url, json={"input": 1}, headers=headers, timeout=60)
        except requests.ConnectionError:
            dropped += 1
            session = requests.Session()
            continue
        if answer.status_code == 503:
            refused += 1
        else:
            latencies.append((time.perf_counter() - started) * 1000)
        time.sleep(0.05)
    return latencies, refused, dropped


def overload(endpoint: nbserve.Endpoint, seconds: float, log: Callable[[str], None]) -> dict[str, Any]:
    calm, _, _ = latency_ms(endpoint, 40)
    result: dict[str, Any] = {}

    def flood() -> None:
        result["wrk"] = run_wrk(
            endpoint.url, body=1, connections=500, duration_s=seconds, headers=endpoint.headers(), threads=2
        )

    flooding = threading.Thread(target=flood)
    flooding.start()
    time.sleep(2)
    loaded, refused, dropped = latency_ms(endpoint, int((seconds - 4) / 0.1))
    flooding.join()
    wrk = result["wrk"]
    figures = {
        "calm_p50_ms": statistics.median(calm),
        "loaded_p50_ms": statistics.median(loaded) if loaded else None,
        "loaded_p99_ms": sorted(loaded)[int(len(loaded) * 0.99) - 1] if loaded else None,
        "probe_answered": len(loaded),
        "probe_refused": refused,
        "probe_dropped": dropped,
        "wrk_requests_per_s": wrk.requests_per_s,
        "wrk_non_2xx": wrk.non_2xx,
        "wrk_requests": wrk.requests,
    }
    log(f"  overload: {figures}")
    return figures


def hostile_kinds(token: str, host: str) -> list[tuple[str, Callable[[requests.Session, str], requests.Response]]]:
    auth = {"Authorization": f"Bearer {token}"}

    def post(body: Any, headers: dict[str, str] | None = None) -> Callable[[requests.Session, str], requests.Response]:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        return lambda s, url: s.post(url, data=data, headers={**auth, **(headers or {})}, timeout=60)

    def method(name: str) -> Callable[[requests.Session, str], requests.Response]:
        return lambda s, url: s.request(name, url, headers=auth, timeout=60)

    return [
        ("malformed JSON", post(b"{not json")),
        ("empty body", post(b"")),
        ("body not UTF-8", post(b"\xff\xfe\x00{")),
        ("JSON nested 3000 deep", post(b"[" * 3000 + b"]" * 3000)),
        ("integer of 5000 digits", post(b'{"input": ' + b"7" * 5000 + b"}")),
        ("lone surrogate input", post(b'{"input": "\\ud800"}')),
        ("a JSON array", post([1, 2])),
        ("a JSON string", post("text")),
        ("null", post(None)),
        ("no input key", post({"inputz": 1})),
        ("both keys", post({"input": 1, "inputs": [1]})),
        ("inputs not a list", post({"inputs": "abc"})),
        ("10,001 inputs", post({"inputs": [1] * 10_001})),
        ("text/plain body", post({"input": 1}, {"Content-Type": "text/plain"})),
        ("PUT", method("PUT")),
        ("DELETE", method("DELETE")),
        ("no token", lambda s, url: s.post(url, json={"input": 1}, timeout=60)),
        (
            "a wrong token",
            lambda s, url: s.post(url, json={"input": 1}, headers={"Authorization": "Bearer x"}, timeout=60),
        ),
        ("foreign Host", post({"input": 1}, {"Host": "evil.example"})),
        ("cross-site Origin", post({"input": 1}, {"Origin": "http://evil.example"})),
        ("handler raises", post({"input": "raise"})),
        ("handler calls sys.exit", post({"input": "exit"})),
        ("exception with a broken __str__", post({"input": "unprintable"})),
        ("output not JSON (10**5000)", post({"inputs": ["ok", "huge"]})),
        ("lone surrogate output", post({"input": "surrogate"})),
        ("a good request", post({"input": "fine"})),
    ]


# Statuses the contract gives each kind: 5xx only where the handler itself failed.
EXPECTED_5XX = {
    "handler raises",
    "handler calls sys.exit",
    "exception with a broken __str__",
    "output not JSON (10**5000)",
}


def hostile(endpoint: nbserve.Endpoint, total: int, log: Callable[[str], None]) -> dict[str, collections.Counter[int]]:
    kinds = hostile_kinds(endpoint.headers()["Authorization"].split()[1], endpoint.url)
    session = requests.Session()
    statuses: dict[str, collections.Counter[int]] = {name: collections.Counter() for name, _ in kinds}
    not_json: collections.Counter[str] = collections.Counter()
    rng = random.Random(7)
    for _ in range(total):
        name, send = kinds[rng.randrange(len(kinds))]
        answer = send(session, endpoint.url)
        statuses[name][answer.status_code] += 1
        try:
            answer.json()
        except ValueError:
            not_json[name] += 1
    log(f"  hostile: {sum(not_json.values())} answers not JSON")
    statuses["(not JSON)"] = collections.Counter({0: sum(not_json.values())})
    return statuses


def render(rows: list[FaultRow], over: dict[str, Any], statuses: dict[str, collections.Counter[int]], args: Any) -> str:
    not_json = statuses.pop("(not JSON)")[0]
    unexpected = sum(
        c for name, counter in statuses.items() for s, c in counter.items() if s >= 500 and name not in EXPECTED_5XX
    )
    ratio = over["loaded_p50_ms"] / over["calm_p50_ms"] if over["loaded_p50_ms"] else None
    lines = [
        "# Reliability",
        "",
        "Produced by `python benchmarks/chaos.py` (see its docstring); the README's Reliability section "
        "promises what these figures show.",
        "",
        f"Ingress: `NBSERVE_INGRESS={embedded_settings().ingress}`.",
        "",
        "## Faults under a steady load",
        "",
        f"An endpoint of two replicas (a handler of 20 ms a batch), an open-loop load of {args.rate:g} HTTP "
        f"requests/s and {args.rate:g} calls/s by handle; each fault injected 5 s into a 30 s run.",
        "",
        "| fault | path | load held (req/s) | sent | failed (what) | last failure after the fault |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        recovery = f"{row.recovery_s:.1f} s" if row.recovery_s is not None else "none"
        failed = f"{row.failed} ({row.kinds})" if row.kinds else str(row.failed)
        lines.append(f"| {row.fault} | {row.path} | {row.held_rps:g} | {row.sent} | {failed} | {recovery} |")
    lines += [
        "",
        "## Overload: wrk -c500",
        "",
        "A probe sends one request at a time, first alone, then while wrk holds 500 connections open.",
        "",
        "| | figure |",
        "| --- | --- |",
        f"| probe p50 alone | {over['calm_p50_ms']:.1f} ms |",
        f"| probe p50 under wrk -c500 | {over['loaded_p50_ms']:.1f} ms ({ratio:.1f} x) |"
        if ratio is not None
        else "| probe p50 under wrk -c500 | (no answer) |",
        f"| probe p99 under wrk -c500 | {over['loaded_p99_ms']:.1f} ms |" if over["loaded_p99_ms"] else "",
        f"| probe answered / turned away (503) / connection closed unanswered | {over['probe_answered']} / "
        f"{over['probe_refused']} / {over['probe_dropped']} |",
        f"| wrk: requests/s; not 2xx | {over['wrk_requests_per_s']:.0f}; "
        f"{over['wrk_non_2xx']} of {over['wrk_requests']} |",
        "",
        "## Hostile input",
        "",
        f"{sum(sum(c.values()) for c in statuses.values())} requests of {len(statuses)} kinds, in random order: "
        f"**{not_json} answers that are not JSON, {unexpected} unexpected 5xx** (a 500 is expected only where the "
        "handler itself failed).",
        "",
        "| kind | statuses (count) |",
        "| --- | --- |",
    ]
    for name, counter in statuses.items():
        shown = ", ".join(f"{status} ({count})" for status, count in sorted(counter.items()))
        lines.append(f"| {name} | {shown} |")
    lines.append("")
    return "\n".join(line for line in lines if line is not None)


def main() -> None:
    use_benchmark_cluster()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=40.0)
    parser.add_argument("--hostile", type=int, default=5000)
    parser.add_argument("--overload-seconds", type=float, default=15.0)
    parser.add_argument("-o", "--output", default=str(ROOT / "docs" / "reliability.md"))
    args = parser.parse_args()

    def log(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    release = Path(f"/tmp/nbserve-chaos-release-{os.getpid()}")
    endpoint = nbserve.deploy(
        CELL, "chaos", replicas=2, cpus=0.5, max_batch_size=8, timeout=5, namespace={"RELEASE": str(release)}
    )
    rows: list[FaultRow] = []
    try:
        for name, inject in (
            ("a replica killed", lambda: kill_replica("chaos")),
            ("the HTTP proxy's process killed (SIGKILL)", kill_proxy),
            ("the metrics collector killed", kill_collector),
            ("a handler call hangs (--timeout 5)", lambda: hang_one(endpoint)),
        ):
            log(name)
            rows += fault_run(endpoint, name, inject, args.rate, log)
        log("overload")
        over = overload(endpoint, args.overload_seconds, log)
        log("hostile input")
        statuses = hostile(endpoint, args.hostile, log)
    finally:
        release.touch()
        with suppress(NbserveError):
            endpoint.down()
        cluster.stop_embedded()
        release.unlink(missing_ok=True)
    report = render(rows, over, statuses, args)
    output = Path(args.output)
    kept = sections_of(output.read_text()) if output.exists() else ""  # what other runs wrote
    output.write_text(report + ("\n" + kept if kept else ""))
    print(report)


if __name__ == "__main__":
    main()
