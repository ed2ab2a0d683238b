"""Pipelines: a cell deployed with --uses calls other endpoints by handle, each scaling alone."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

import nbserve
from nbserve._api import format_endpoints
from tests.support.helpers import GIVEN_UP_CELL, PollingClient, auth, check_a_given_up_input_never_runs, wait_for

pytestmark = pytest.mark.integration

# The inner step records the size of each batch it forms, so the test can see batching.
SQUARE = """
def square(items):
    return [{"value": x * x, "batch": len(items)} for x in items]
"""

# A sync handler blocks on .result(); calls into `square` still join its batches.
PLUS_ONE = """
def plus_one(items):
    pending = [square(x) for x in items]
    return [p.result()["value"] + 1 for p in pending]
"""

# An async handler awaits; map sends its whole batch to `plus_one` as one call.
REPORT = """
async def report(items):
    squares = await square.map(items)
    plus = await plus_one.map(items)
    return [f"{x}: {s['value']} then {p}" for x, s, p in zip(items, squares, plus)]
"""


def test_two_and_three_step_pipelines_answer_by_handle_and_http(deploy: Any) -> None:
    deploy(SQUARE, "square", batch_wait_ms=20)
    outer = deploy(PLUS_ONE, "plus_one", uses="square")
    assert outer(3) == 10
    assert requests.post(outer.url, json={"inputs": [1, 2]}, headers=auth(), timeout=60).json() == {"outputs": [2, 5]}

    top = deploy(REPORT, "report", uses="square,plus_one")
    assert top.map([2, 3], progress=False) == ["2: 4 then 5", "3: 9 then 10"]
    assert requests.post(top.url, json={"input": 4}, headers=auth(), timeout=60).json() == {"output": "4: 16 then 17"}

    listing = {info.name: info for info in nbserve.list_endpoints()}
    assert listing["report"].uses == ("square", "plus_one")
    assert "square,plus_one" in format_endpoints(listing.values())


def test_inner_step_batches_while_the_outer_step_is_called_concurrently(deploy: Any) -> None:
    deploy(SQUARE, "square_b", max_batch_size=16, batch_wait_ms=50)
    outer = deploy(
        # async: several calls of the outer step are in flight at once, so the inner one batches
        "async def probe(x):\n    return (await square_b(x))['batch']\n",
        "probe",
        uses="square_b",
        no_batch=True,
    )
    with ThreadPoolExecutor(24) as pool:
        sizes = list(
            pool.map(
                lambda i: requests.post(outer.url, json={"input": i}, headers=auth(), timeout=60).json()["output"],
                range(48),
            )
        )
    assert max(sizes) > 1, f"the inner step never batched: {sizes}"


def test_redeploying_the_inner_step_keeps_the_outer_step_serving(deploy: Any) -> None:
    version = "def inner(items):\n    return [{v!r} for _ in items]\n"
    deploy(version.format(v="v1"), "inner")
    outer = deploy("def outer(items):\n    return [inner(x).result() for x in items]\n", "outer", uses="inner")
    with PollingClient(outer.url, threads=2) as client:
        wait_for(lambda: len(client.answers) >= 5, 30, "the first answers")
        deploy(version.format(v="v2"), "inner")
        wait_for(lambda: client.answers[-1] == "v2", 30, "answers from the new inner step")
    assert client.failures == []
    assert "v1" in client.answers


def test_deleting_a_used_step_is_refused_unless_forced(deploy: Any) -> None:
    base = deploy(SQUARE, "square_d")
    deploy(PLUS_ONE.replace("square(", "square_d("), "user_d", uses="square_d")
    with pytest.raises(nbserve.EndpointInUseError, match="square_d is used by user_d"):
        base.down()
    assert base(2)["value"] == 4  # still serving
    base.down(force=True)
    assert "square_d" not in {i.name for i in nbserve.list_endpoints()}


def test_using_an_endpoint_that_is_not_deployed_is_refused(deploy: Any) -> None:
    with pytest.raises(nbserve.EndpointNotFoundError, match="missing_step is not deployed"):
        deploy("def f(xs):\n    return xs\n", "lonely", uses="missing_step")


def test_setup_code_can_call_a_used_endpoint(deploy: Any) -> None:
    deploy(SQUARE, "square_s")
    lookup = deploy(
        "TABLE = [row['value'] for row in square_s.map(range(5)).result()]\n"
        "def lookup(items):\n    return [TABLE[i] for i in items]\n",
        "lookup",
        uses="square_s",
    )
    assert lookup.map([4, 2], progress=False) == [16, 4]


def test_down_of_a_used_step_on_the_command_line(deploy: Any) -> None:
    import subprocess
    import sys

    deploy(SQUARE, "square_c")
    deploy("async def user_c(items):\n    return await square_c.map(items)\n", "user_c", uses="square_c")
    refused = subprocess.run(
        [sys.executable, "-m", "nbserve._cli", "down", "square_c"], capture_output=True, text=True, timeout=120
    )
    assert refused.returncode == 1
    assert "square_c is used by user_c" in refused.stderr
    forced = subprocess.run(
        [sys.executable, "-m", "nbserve._cli", "down", "square_c", "--force"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert forced.stdout.strip() == "deleted square_c"


# Relay one input to the used endpoint: sync handlers block on .result(), async ones await.
RELAYS = {
    "sync": "def relay_{kind}(x):\n    return {used}(x).result()\n",
    "async": "async def relay_{kind}(x):\n    return await {used}(x)\n",
}


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_call_whose_caller_gave_up_cancels_the_calls_it_made(deploy: Any, tmp_path: Path, kind: str) -> None:
    # The relay's input is queued in the used endpoint behind a 3 s batch when the relay's
    # caller gives up: Ray cancels the relay's request and its child, so the input never runs.
    # A sync handler's thread must run in its request's context for its call to be the child.
    used = deploy(GIVEN_UP_CELL, f"given_up_{kind}", max_batch_size=1)
    relay = deploy(
        RELAYS[kind].format(kind=kind, used=f"given_up_{kind}"), f"relay_{kind}", uses=f"given_up_{kind}", no_batch=True
    )
    check_a_given_up_input_never_runs(used, tmp_path, caller=relay)


# Records each batch it runs (2 s each); "seen" answers the record.
BATCHES_SEEN = """
import time
batches = []

def batches_seen(items):
    if items == ["seen"]:
        return [list(batches)]
    batches.append(list(items))
    time.sleep(2)
    return items
"""
FANS = {
    "sync": "def fan_{kind}(items):\n    return {used}.map(items).result()\n",
    "async": "async def fan_{kind}(items):\n    return await {used}.map(items)\n",
}


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_one_caller_giving_up_leaves_its_batch_calls_to_the_others(deploy: Any, kind: str) -> None:
    # A batch serves many requests, so its calls into another endpoint belong to none of them:
    # the first caller (whose request started the batcher) giving up must not cancel them.
    used = deploy(BATCHES_SEEN, f"batches_{kind}")
    fan = deploy(
        FANS[kind].format(kind=kind, used=f"batches_{kind}"),
        f"fan_{kind}",
        uses=f"batches_{kind}",
        max_batch_size=2,
        batch_wait_ms=2000,  # the batch forms when both inputs are in
    )
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(fan, "A", timeout=1.0)
        second = pool.submit(fan, "B", timeout=60)
        with pytest.raises(TimeoutError):
            first.result()
        assert second.result() == "B"
    assert used("seen", timeout=60) == [["A", "B"]], "the batch's call was cancelled with its first caller and re-run"
