"""Small helpers shared by the tests: waits with deadlines, the CLI, HTTP clients, samples."""

from __future__ import annotations

import contextlib
import contextvars
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import requests

from nbserve import _tokens
from nbserve._types import EndpointInfo, EndpointStatus, ReplicaCounts

_SAMPLE_INFO = EndpointInfo(
    name="embed",
    backend="ray",
    url="http://127.0.0.1:8000/embed",
    handler="embed",
    batched=True,
    max_batch_size=32,
    resources="0.25 GPU · 1 CPU · batch 32 / 5 ms · replicas 1:4",
    deployed_at=0.0,
    status=EndpointStatus("embed", "running", ReplicaCounts(2, 4)),
)


def endpoint_info(**changes: Any) -> EndpointInfo:
    """A running endpoint's description, as a backend gives it, with ``changes`` applied."""
    return replace(_SAMPLE_INFO, **changes)


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """``nbserve ARGS...`` in a process of its own, as a user types it."""
    return subprocess.run([sys.executable, "-m", "nbserve._cli", *args], capture_output=True, text=True, timeout=120)


def auth() -> dict[str, str]:
    """The headers an HTTP call of the test cluster's endpoints needs: its token (this user's)."""
    return {"Authorization": f"Bearer {_tokens.read_or_create()}"}


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def free_port_range(count: int) -> int:
    """The first of ``count`` consecutive loopback ports that nothing listens on right now (the
    embedded cluster takes the GCS port and the ten after it, fourteen with the HAProxy
    ingress). They lie within 20000-28999: above the ports Ray gives its workers (10002-19999;
    `ray start` refuses a GCS port there) and below the kernel's ephemeral range."""
    for _ in range(200):
        base = 20000 + free_port() % 90 * 100
        try:
            with contextlib.ExitStack() as held:
                for port in range(base, base + count):
                    sock = held.enter_context(socket.socket())
                    sock.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
    raise RuntimeError(f"no {count} consecutive free ports found on loopback")


def wait_for(condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.1) -> Any:
    """Poll ``condition`` until it returns something truthy, or fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


class PollingClient:
    """Threads that POST ``{"input": 0}`` to ``url`` until stopped, keeping every answer and
    every failure (a status other than 200, or a connection error), in order."""

    def __init__(self, url: str, threads: int = 3) -> None:
        self.url = url
        self.headers = auth()
        self.answers: list[Any] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._poll, daemon=True) for _ in range(threads)]

    def _poll(self) -> None:
        while not self._stop.is_set():
            try:
                response = requests.post(self.url, json={"input": 0}, headers=self.headers, timeout=60)
            except requests.RequestException as exc:
                self.failures.append(repr(exc))
                continue
            if response.status_code == 200:
                self.answers.append(response.json()["output"])
            else:
                self.failures.append(f"{response.status_code} {response.text}")

    def __enter__(self) -> PollingClient:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()


def own_cluster_env(home: Path, **extra: str) -> dict[str, str]:
    """This process's environment for an embedded cluster of a test's own: free ports (the GCS
    port with room for the fourteen after it) and ``home`` as NBSERVE_HOME, so the session's
    cluster is never touched; stop it with ``nbserve cluster stop`` in this environment."""
    return {
        **os.environ,
        "NBSERVE_RAY_PORT": str(free_port_range(15)),
        "NBSERVE_HTTP_PORT": str(free_port()),
        "NBSERVE_HOME": str(home),
        **extra,
    }


# A request's tag, set by a test's caller and read by a handler, as Serve's request context is.
REQUEST_TAG: contextvars.ContextVar[str] = contextvars.ContextVar("nbserve_test_request_tag", default="none")


# Records every input it runs; "slow:PATH" touches PATH, then takes 3 s; "seen" answers the record.
GIVEN_UP_CELL = """
import pathlib, time
seen = []

def record(items):
    out = []
    for x in items:
        if x == "seen":
            out.append(list(seen))
            continue
        seen.append(x)
        if x.startswith("slow:"):
            pathlib.Path(x[5:]).touch()
            time.sleep(3)
        out.append(x)
    return out
"""


def check_a_given_up_input_never_runs(endpoint: Any, tmp_path: Path, caller: Any = None) -> None:
    """An input queued behind a slow batch, whose caller stops waiting (its timeout), is
    dropped where it waits rather than run later for nobody; the endpoint serves on.
    ``endpoint`` serves ``GIVEN_UP_CELL`` with batches of one; ``caller`` (by default the
    endpoint itself) is what the given-up input is sent to: a relay in a pipeline."""
    caller = caller or endpoint
    started = tmp_path / "slow-started"
    with ThreadPoolExecutor(1) as pool:
        slow = pool.submit(endpoint, f"slow:{started}")
        wait_for(started.exists, 60, "the slow input to start")
        with pytest.raises(TimeoutError):
            caller("given up", timeout=0.5)
        assert slow.result(timeout=60) == f"slow:{started}"
    seen = endpoint("seen", timeout=60)
    assert "given up" not in seen, f"the endpoint ran an input its caller had given up on: {seen}"
    assert seen[-1] == f"slow:{started}"
    assert caller("after", timeout=60) == "after"
