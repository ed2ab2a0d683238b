"""Drive an endpoint with wrk (Debian's ``wrk`` package) and read back what it measured.

wrk is a compiled load generator: it does not compete with the server for the GIL, and its
figures are an independent check of what nbserve's dashboard reports. One JSON body is
POSTed per request, the way a client of the endpoint's HTTP contract would.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["WrkResult", "run_wrk"]

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}
_SUMMARY = re.compile(r"(\d+) requests in ([\d.]+)(us|ms|s|m)")
_PERCENTILE = re.compile(r"^\s*(50|75|90|99)%\s+([\d.]+)(us|ms|s|m)\s*$", re.MULTILINE)
_NON_2XX = re.compile(r"Non-2xx or 3xx responses: (\d+)")
_SOCKET_ERRORS = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")


@dataclass(frozen=True)
class WrkResult:
    requests: int  # completed requests (wrk drops the ones in flight when it stops)
    duration_s: float
    requests_per_s: float
    p50_ms: float
    p75_ms: float
    p90_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: int
    output: str


def _lua_post(body: Any, headers: Mapping[str, str]) -> str:
    payload = json.dumps(json.dumps(body))  # a Lua string literal holding the JSON text
    lines = ['wrk.method = "POST"', f"wrk.body = {payload}", 'wrk.headers["Content-Type"] = "application/json"']
    lines += [f"wrk.headers[{json.dumps(name)}] = {json.dumps(value)}" for name, value in headers.items()]
    return "\n".join(lines) + "\n"


def parse_wrk(output: str) -> WrkResult:
    summary = _SUMMARY.search(output)
    if summary is None:
        raise ValueError(f"no request count in wrk's output:\n{output}")
    count, amount, unit = summary.groups()
    duration_s = float(amount) * _UNITS[unit] / 1000
    percentiles = {q: float(v) * _UNITS[u] for q, v, u in _PERCENTILE.findall(output)}
    if len(percentiles) != 4:
        raise ValueError(f"no latency distribution in wrk's output (run it with --latency):\n{output}")
    non_2xx = _NON_2XX.search(output)
    sockets = _SOCKET_ERRORS.search(output)
    return WrkResult(
        requests=int(count),
        duration_s=duration_s,
        requests_per_s=int(count) / duration_s,
        p50_ms=percentiles["50"],
        p75_ms=percentiles["75"],
        p90_ms=percentiles["90"],
        p99_ms=percentiles["99"],
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=sum(int(n) for n in sockets.groups()) if sockets else 0,
        output=output,
    )


def run_wrk(
    url: str,
    *,
    body: Any,
    connections: int,
    duration_s: float,
    threads: int = 1,
    headers: Mapping[str, str] | None = None,
) -> WrkResult:
    """POST ``{"input": body}`` to ``url`` over ``connections`` keep-alive connections, with
    ``headers`` (an endpoint's token) on every request. The script that carries them lives in
    a private temporary folder, deleted when wrk is done."""
    wrk = shutil.which("wrk")
    if wrk is None:
        raise RuntimeError("wrk is not installed: `apt-get install -y wrk` (the Makefile's install step does it)")
    with tempfile.TemporaryDirectory() as folder:
        script = Path(folder) / "post.lua"
        script.write_text(_lua_post({"input": body}, headers or {}))
        command = [
            wrk,
            f"-t{min(threads, connections)}",
            f"-c{connections}",
            f"-d{duration_s:g}s",
            "--timeout",
            "30s",
            "--latency",
            "-s",
            str(script),
            url,
        ]
        done = subprocess.run(command, capture_output=True, text=True, timeout=duration_s + 60, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    return parse_wrk(done.stdout)
