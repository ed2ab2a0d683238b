"""Autoscaling seen from outside: replica counts that move under a ``%serve bench`` load, in the
backend and in the dashboard widget, with no request failing while replicas come and go."""

from __future__ import annotations

import threading
import time

import pytest
import requests

import nbserve
from tests.support.helpers import wait_for
from tests.support.kernels import Kernel

pytestmark = pytest.mark.integration

SLOW_ECHO = "import time\ndef {name}(items):\n    time.sleep(0.05)\n    return items\n"


class ReplicaWatch:
    """(seconds since start, running, target) of an endpoint, twice a second, in a thread."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.started = time.monotonic()
        self.samples: list[tuple[float, int, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> ReplicaWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        endpoint = nbserve.endpoint(self.name)
        while not self._stop.wait(0.5):
            replicas = endpoint.status().replicas
            self.samples.append((time.monotonic() - self.started, replicas.running, replicas.target))

    def first_time(self, running: int) -> float | None:
        return next((t for t, seen, _ in self.samples if seen >= running), None)


def test_replicas_scale_up_under_load_and_back_down_without_a_failed_request(kernel: Kernel) -> None:
    # --max-queued 32: one replica holds all 24 clients' requests (none is turned away) while
    # the autoscaler, seeing 24 ongoing against a target of 2, adds replicas.
    kernel.ok(
        "%%serve auto --replicas 1:3 --cpus 0.5 --max-batch-size 4 --max-queued 32 --target-ongoing 2 "
        "--scaledown-window 5\n" + SLOW_ECHO.format(name="auto")
    )
    assert nbserve.endpoint("auto").status().replicas.running == 1
    with ReplicaWatch("auto") as watch:
        # Serve scales up after its upscale delay (30 s by default); the load outlasts it.
        kernel.ok("%serve bench auto --payload 1 -c 24 -d 60", timeout=240)
        load_ended = time.monotonic() - watch.started
        result = kernel.ok("print(_bench.sent, _bench.ok, dict(_bench.failures))").stdout.split(maxsplit=2)
        wait_for(lambda: watch.samples and watch.samples[-1][1] == 1, 180, "the replicas to scale back down to 1")
    sent, ok, failures = int(result[0]), int(result[1]), result[2].strip()
    assert sent > 0 and ok == sent and failures == "{}", f"requests failed while replicas changed: {result}"
    up = watch.first_time(3)
    assert up is not None and up < load_ended, f"never 3 replicas under load: {watch.samples}"
    down = next(t for t, running, _ in watch.samples if t > load_ended and running == 1)
    print(f"3 replicas serving {up:.0f} s after the load began; back to 1 {down - load_ended:.0f} s after it ended")

    # The dashboard of the cell saw the same: its replica history rose to 3 and fell to 1.
    seen = kernel.ok(
        "from nbserve._dashboard.widget import live_dashboard\n"
        "d = live_dashboard(auto)\n"
        "d.refresh()\n"
        "print(max(s[1] for s in d.replica_samples), d.replica_samples[-1][1], len(d.replica_samples))"
    ).stdout.split()
    assert seen[:2] == ["3", "1"], f"the dashboard's replica history: {seen}"


def test_an_endpoint_scales_to_zero_and_answers_the_first_request_after(kernel: Kernel) -> None:
    kernel.ok("%%serve zero --replicas 0:2 --cpus 0.25 --scaledown-window 2\n" + SLOW_ECHO.format(name="zero"))
    endpoint = nbserve.endpoint("zero")
    assert endpoint("a") == "a"  # from zero (or one) replicas: answered, not failed
    wait_for(lambda: endpoint.status().replicas.running == 0, 180, "the idle endpoint to scale to zero")
    started = time.monotonic()
    answer = requests.post(endpoint.url, json={"input": "b"}, headers=endpoint.headers(), timeout=120)
    cold = time.monotonic() - started
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"output": "b"}
    assert endpoint("c") == "c"
    print(f"first request at zero replicas answered in {cold:.1f} s")
