"""Every request answered, whatever the handler does: hangs, exits, hostile input, overload.

On the in-process backend, whose runtime (time limits, the bounded queue, per-input failures,
the HTTP contract) is the one a Ray replica runs.
"""

from __future__ import annotations

import contextlib
import json
import textwrap
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

import nbserve
from nbserve._errors import EndpointNotFoundError, EndpointOverloadedError, EndpointTimeoutError, HandlerError
from tests.support.helpers import wait_for

HANGS = textwrap.dedent(
    """
    import os, time

    def hangs(items):  # a batch, or one input with --no-batch
        batch = items if isinstance(items, list) else [items]
        for x in batch:
            while x == "hang" and not os.path.exists(RELEASE):  # hangs until the test is over
                time.sleep(0.02)
            if x == "slow":
                time.sleep(0.4)  # within --timeout, but long enough to delay the next call
        outputs = [x.upper() for x in batch]
        return outputs if isinstance(items, list) else outputs[0]
    """
)
ASYNC_HANGS = textwrap.dedent(
    """
    import asyncio

    async def ahangs(items):
        if "hang" in items:
            await asyncio.sleep(3600)
        return items
    """
)
EXITS = textwrap.dedent(
    """
    import sys

    class Unprintable(Exception):
        def __str__(self):
            raise RuntimeError("no message")

    class Custom(BaseException):
        pass

    def exits(items):
        for x in items:
            if x == "exit":
                sys.exit(3)
            if x == "interrupt":
                raise KeyboardInterrupt
            if x == "custom":
                raise Custom("a BaseException of the cell's own")
            if x == "unprintable":
                raise Unprintable()
        return [{"huge": 10**5000} if x == "huge" else ("\\ud800" if x == "surrogate" else x) for x in items]
    """
)
SLOW = "import time\ndef slow(items):\n    time.sleep(0.3)\n    return items\n"


@pytest.fixture
def local(tmp_path: Path) -> Iterator[Any]:
    made: list[str] = []
    release = tmp_path / "release"

    def deploy(source: str, name: str, **flags: Any) -> nbserve.Endpoint:
        made.append(name)
        return nbserve.deploy(source, name, backend="local", namespace={"RELEASE": str(release)}, **flags)

    yield deploy
    release.touch()  # lets the hung handler calls end, so no thread outlives the test
    for name in made:
        with contextlib.suppress(EndpointNotFoundError):
            nbserve.endpoint(name, backend="local").down()


def post(ep: nbserve.Endpoint, payload: Any = None, **kwargs: Any) -> requests.Response:
    kwargs.setdefault("headers", ep.headers())
    if payload is not None:
        kwargs["json"] = payload
    return requests.post(ep.url, timeout=30, **kwargs)


@pytest.mark.parametrize("flags", [{"max_batch_size": 4, "batch_wait_ms": 1}, {"no_batch": True}])
def test_a_hung_sync_handler_times_out_alone_and_the_endpoint_keeps_answering(local: Any, flags: Any) -> None:
    ep = local(HANGS, "hangs", timeout=0.5, **flags)
    started = time.monotonic()
    hung = post(ep, {"input": "hang"})
    assert (hung.status_code, hung.json()["error"]["type"]) == (504, "Timeout")
    assert time.monotonic() - started < 5
    assert post(ep, {"input": "ok"}).json() == {"output": "OK"}  # the stuck call holds nothing
    with pytest.raises(EndpointTimeoutError, match=r"--timeout 0\.5"):
        ep("hang")
    assert ep("after") == "AFTER"
    # Two calls are stuck on their threads now: the replica says it should be replaced.
    status = ep.status()
    assert status.state == "unhealthy" and "never returned" in status.message


def test_a_hung_call_that_started_late_is_still_given_up_at_its_time(local: Any) -> None:
    """A call queued behind a slow one starts late; when its request's time is up it has run
    for less than --timeout, yet it is the one holding the worker: it must be given up."""
    ep = local(HANGS, "late", timeout=0.6, no_batch=True)
    with ThreadPoolExecutor(2) as pool:
        slow = pool.submit(post, ep, {"input": "slow"})
        time.sleep(0.1)  # "hang" waits 0.3 s behind "slow", then runs 0.3 s of its 0.6 s
        hung = pool.submit(post, ep, {"input": "hang"})
        assert slow.result().json() == {"output": "SLOW"}
        assert hung.result().status_code == 504
    assert post(ep, {"input": "ok"}).json() == {"output": "OK"}  # not stuck behind the hung call


def test_a_hung_async_handler_is_cancelled(local: Any) -> None:
    ep = local(ASYNC_HANGS, "ahangs", timeout=0.3)
    assert post(ep, {"input": "hang"}).status_code == 504
    assert ep("fine") == "fine"
    assert ep.status().state == "running"  # a cancelled coroutine holds no thread


@pytest.mark.parametrize("bad", ["exit", "interrupt", "custom", "unprintable"])
def test_base_exceptions_fail_only_their_input(local: Any, bad: str) -> None:
    ep = local(EXITS, "exits", batch_wait_ms=20)
    answer = post(ep, {"inputs": ["a", bad, "b"]})
    assert answer.status_code == 500
    body = answer.json()
    assert body["outputs"] == ["a", None, "b"]
    assert body["errors"][0]["index"] == 1
    assert ep("c") == "c"  # the replica keeps serving
    with pytest.raises(HandlerError):
        ep(bad)


def test_outputs_json_cannot_carry_fail_alone_and_odd_text_is_escaped(local: Any) -> None:
    ep = local(EXITS, "exits_out", batch_wait_ms=20)
    answer = post(ep, {"inputs": ["a", "huge", "surrogate"]})
    assert answer.status_code == 500
    body = answer.json()
    assert body["outputs"] == ["a", None, "\ud800"]  # a lone surrogate, as JSON's \\u escape
    assert body["errors"][0]["exception"] == "OutputNotSerializable"
    assert json.loads(post(ep, {"input": "\ud800"}).content)["output"] == "\ud800"


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        (b"[" * 3000 + b"]" * 3000, 400, "nested too deeply"),
        (b'{"input": ' + b"9" * 5000 + b"}", 400, "cannot be read"),
        (b'{"input": "\\ud800"}', 200, ""),
        (b"\xff\xfe{}", 400, "not UTF-8"),
    ],
)
def test_hostile_bodies_get_json_answers(local: Any, body: bytes, status: int, fragment: str) -> None:
    ep = local(EXITS, "exits_in")
    answer = post(ep, data=body)
    assert answer.status_code == status
    assert answer.headers["Content-Type"].startswith("application/json")
    assert fragment in json.dumps(answer.json())


def test_overload_is_turned_away_at_once_and_map_loses_nothing(local: Any) -> None:
    ep = local(SLOW, "slow", max_batch_size=1, max_queued=1)
    answers: list[requests.Response] = []
    threads = [threading.Thread(target=lambda: answers.append(post(ep, {"input": 1}))) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    statuses = sorted(a.status_code for a in answers)
    assert statuses.count(200) >= 2 and 503 in statuses, statuses
    refused = next(a for a in answers if a.status_code == 503)
    assert refused.headers["Retry-After"] == "1"
    assert refused.json()["error"]["type"] == "Overloaded" and "--max-queued 1" in refused.json()["error"]["message"]

    errors: list[BaseException] = []

    def call() -> None:
        try:
            ep(2)
        except EndpointOverloadedError as exc:
            errors.append(exc)

    callers = [threading.Thread(target=call) for _ in range(6)]
    for thread in callers:
        thread.start()
    for thread in callers:
        thread.join()
    assert errors and errors[0].retry_after_s == 1.0
    assert ep.map(list(range(12)), chunk_size=1, max_in_flight=12, progress=False) == list(range(12))


def test_one_request_larger_than_the_queue_runs_when_nothing_else_waits(local: Any) -> None:
    """A pipeline's setup maps its whole corpus in one call: it must not be refused forever."""
    ep = local("def ident(xs):\n    return xs\n", "whole", max_batch_size=2, max_queued=1)
    assert ep.map(list(range(50)), chunk_size=50, progress=False) == list(range(50))
    assert post(ep, {"inputs": list(range(20))}).json() == {"outputs": list(range(20))}


def test_a_cell_health_function_is_its_health_check(local: Any, tmp_path: Path) -> None:
    sick = tmp_path / "sick"
    source = (
        f"import os\ndef health():\n    return not os.path.exists({str(sick)!r})\n\n"
        "def well(items):\n    return items\n"
    )
    ep = local(source, "well")
    assert ep.status().state == "running"
    sick.touch()
    status = ep.status()
    assert status.state == "unhealthy" and "health() returned False" in status.message
    wait_for(lambda: ep(1) == 1, 5, "the endpoint to answer still")  # serving goes on; Ray would replace it
