"""The live dashboard, read the way a front end reads it: widget state over the kernel's comm.

Load comes from outside the kernel (wrk, and plain HTTP clients), so the figures must
describe traffic the notebook never saw.
"""

from __future__ import annotations

import html
import queue
import re
import time
from typing import Any

import pytest
import requests

from benchmarks.wrk import run_wrk
from nbserve import _api as api
from tests.support.helpers import auth, wait_for
from tests.support.kernels import Kernel

pytestmark = [pytest.mark.integration, pytest.mark.kernel]

CELL = """%%serve kdash --cpus 0.1 --max-batch-size 8 --batch-wait-ms 2
import time
def kdash(items):
    # A small model's worth of work: the proxy's few ms in front of the replica, which
    # replica-side figures leave out, stay a small share of a request's time.
    time.sleep(0.05)
    return [x * 2 for x in items]
"""
_STAT = re.compile(r"data-stat='(\w+)'[^>]*>([^<]*)<")


def figures(html_text: str) -> dict[str, str]:
    """``data-stat`` key -> the text a user reads there."""
    return {key: html.unescape(value) for key, value in _STAT.findall(html_text)}


class CommReader:
    """The figures widget's state as a front end receives it: comm updates on IOPub."""

    def __init__(self, kernel: Kernel, model_id: str) -> None:
        self.kernel = kernel
        self.model_id = model_id
        self.updates = 0
        self.last: dict[str, str] = {}

    def read(self, timeout: float = 0.5) -> bool:
        """Take every IOPub message waiting; ``True`` if the widget was updated."""
        updated = False
        deadline = time.monotonic() + timeout
        while True:
            try:
                msg = self.kernel.client.get_iopub_msg(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                return updated
            content = msg["content"]
            if msg["msg_type"] == "comm_msg" and content.get("comm_id") == self.model_id:
                value = content["data"].get("state", {}).get("value")
                if value is not None:
                    self.last = figures(value)
                    self.updates += 1
                    updated = True

    def wait_until(self, check: Any, timeout: float, what: str) -> dict[str, str]:
        return wait_for(lambda: (self.read() or True) and check(self.last) and self.last, timeout, what, 0)


def _model_id(kernel: Kernel, part: str) -> str:
    code = f"from nbserve._dashboard.widget import _live\nprint(_live[('ray', '', 'kdash')].{part}.model_id)"
    return kernel.ok(code).stdout.strip()


def _requests_served(shown: dict[str, str]) -> int:
    return int(shown.get("requests", "0"))


def test_dashboard_state_follows_outside_load_and_stops_when_deleted(kernel: Kernel) -> None:
    deployed = kernel.ok(CELL)
    bundle = next(d for d in deployed.data if "application/vnd.jupyter.widget-view+json" in d)
    # Front ends without widgets get a readable summary of the same figures.
    assert figures(bundle["text/html"])["state"] == "running"
    assert "requests served (total)" in bundle["text/plain"]

    reader = CommReader(kernel, _model_id(kernel, "_figures"))
    url = kernel.ok("print(kdash.url)").stdout.strip()
    for i in range(40):
        assert requests.post(url, json={"input": i}, headers=auth(), timeout=30).json() == {"output": 2 * i}
    shown = reader.wait_until(lambda s: _requests_served(s) >= 40, 20, "40 requests on the dashboard")
    assert _requests_served(shown) == 40
    assert shown["replicas"] == "1/1"
    assert shown["error_rate"] == "0.0%"

    # A second replica appears on the dashboard once the cell is redeployed with two.
    kernel.ok(CELL.replace("--cpus 0.1", "--cpus 0.1 --replicas 2"))
    reader.model_id = _model_id(kernel, "_figures")  # the same dashboard, shown again
    reader.wait_until(lambda s: s.get("replicas") == "2/2", 30, "2 replicas on the dashboard")

    # Deleted from outside the kernel: the dashboard says so and its poller ends.
    api.endpoint("kdash").down()
    reader.wait_until(lambda s: s.get("replicas", "").startswith("0/"), 20, "the deletion on the dashboard")
    threads = "import threading\nprint(sorted(t.name for t in threading.enumerate()))"
    wait_for(lambda: "nbserve-dashboard" not in kernel.ok(threads).stdout, 10, "the poller thread to end")
    header = kernel.ok("print(_live.get(('ray', '', 'kdash')))").stdout.strip()
    assert header == "None"  # forgotten: a new deploy of kdash starts a fresh dashboard


def test_counts_and_latency_agree_with_wrk(kernel: Kernel) -> None:
    kernel.ok(CELL)
    url = kernel.ok("print(kdash.url)").stdout.strip()
    before = api.endpoint("kdash").stats().requests

    result = run_wrk(url, body=3, connections=1, duration_s=8, headers=auth())

    assert result.non_2xx == 0 and result.socket_errors == 0, result.output
    # wrk stops counting the request in flight when its time is up; the server still serves it.
    expected = result.requests
    stats = wait_for(
        lambda: (s := api.endpoint("kdash").stats()).requests - before >= expected and s,
        15,
        f"{expected} requests in the endpoint's stats",
    )
    served = stats.requests - before
    assert abs(served - expected) <= max(1, 0.01 * expected), (served, expected)
    assert stats.p50_ms is not None
    # Measured in the replica, the dashboard leaves out the ingress's share of a request's time:
    # a few ms behind Serve's proxy, under 1.5 ms behind HAProxy (2.6 % of this request here).
    assert abs(stats.p50_ms - result.p50_ms) <= 0.10 * result.p50_ms, (stats.p50_ms, result.p50_ms)
    # The plot's steps, from the collector: on the 5 s grid but the newest, and every request in one.
    series = wait_for(
        lambda: (
            (points := api.endpoint("kdash").series(60, 5))
            and round(sum(p.requests_per_s * p.step_s for p in points)) == served
            and points
        ),
        10,
        f"the plot's steps to hold the {served} requests",
    )
    assert all(p.t % 5 == 0 and p.step_s == 5 for p in series[:-1]) and 2.5 <= series[-1].step_s < 7.5, series
    print(f"wrk: {expected} requests, p50 {result.p50_ms:.1f} ms; dashboard: {served}, p50 {stats.p50_ms:.1f} ms")
