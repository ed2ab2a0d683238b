"""Deploy real cells on a real local Ray cluster and talk to them by handle and over HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

import nbserve
from nbserve.runtime.wire import MAX_BODY_BYTES
from tests.support.helpers import GIVEN_UP_CELL, PollingClient, auth, check_a_given_up_input_never_runs, wait_for

pytestmark = pytest.mark.integration

ECHO = """
import os
def echo(items):
    return [{"item": x, "batch": len(items), "pid": os.getpid()} for x in items]
"""

FLAKY = """
def check(items):
    out = []
    for x in items:
        if x == "bad":
            raise ValueError(f"cannot handle {x!r}")
        out.append(x.upper())
    return out
"""


def post(url: str, payload: Any = None, **kwargs: Any) -> requests.Response:
    return requests.post(url, json=payload, timeout=60, headers=auth(), **kwargs)


def test_deploy_answers_by_handle_and_http(deploy: Any) -> None:
    ep = deploy(ECHO, "echo_basic")
    assert ep.url.startswith("http://127.0.0.1:")
    assert ep.url.endswith("/echo_basic")

    assert ep("a")["item"] == "a"
    single = post(ep.url, {"input": "b"})
    assert single.status_code == 200
    assert single.json()["output"]["item"] == "b"
    many = post(ep.url, {"inputs": ["c", "d", "e"]})
    assert many.status_code == 200
    assert [o["item"] for o in many.json()["outputs"]] == ["c", "d", "e"]

    described = requests.get(ep.url, headers=auth(), timeout=30).json()
    assert described["handler"] == "echo"
    assert described["batched"] is True

    status = ep.status()
    assert status.state == "running"
    assert status.replicas.running == 1


def test_the_status_nbserve_reads_is_what_serve_status_says(deploy: Any) -> None:
    # nbserve reads the controller's details itself (serve.status() validates them through
    # pydantic first, most of its cost): the same applications, deployments, replica states
    # and proxies, field by field.
    from ray import serve

    from nbserve.backends.ray import state
    from nbserve.backends.ray.backend import RayBackend

    deploy(ECHO, "echo_status", replicas=2)
    backend = RayBackend()

    def same() -> bool:
        theirs, ours = serve.status(), backend._serve_view()
        assert set(ours.applications) == set(theirs.applications) and "echo_status" in ours.applications
        for name, app in theirs.applications.items():
            mine = ours.applications[name]
            assert (mine.status, mine.message) == (str(app.status.value), app.message)
            assert mine.last_deployed_time_s == app.last_deployed_time_s
            assert set(mine.deployments) == set(app.deployments)
            for deployment_name, deployment in app.deployments.items():
                view = mine.deployments[deployment_name]
                assert (view.status, view.message) == (str(deployment.status.value), deployment.message)
                if view.replica_states != {
                    str(getattr(k, "value", k)): v for k, v in deployment.replica_states.items()
                }:
                    return False  # a replica changed state between the two reads: read again
        assert ours.proxies == {node: str(s.value) for node, s in theirs.proxies.items()}
        return True

    wait_for(same, 30, "a status read that matches serve.status()")
    counts = state.replica_counts(backend._serve_view().applications["echo_status"], 2)
    assert (counts.running, counts.starting) == (2, 0)


def test_a_replica_is_asked_what_it_serves_once_per_version(deploy: Any, monkeypatch: Any) -> None:
    # A live dashboard reads the endpoint's info every second; the replica's description (the
    # replica target, the handler) is kept while Serve shows the version settled, and read
    # again once another version is: here deployed through another backend, as by another kernel.
    from nbserve.backends.ray.backend import RayBackend

    deploy(ECHO, "echo_described")
    backend = RayBackend()
    asked: list[str] = []
    ask = backend._describe

    def counted(name: str, timeout_s: float = 10.0) -> Any:
        asked.append(name)
        return ask(name, timeout_s)

    monkeypatch.setattr(backend, "_describe", counted)

    def answered_without_asking() -> bool:
        before = len(asked)
        return backend.info("echo_described").handler == "echo" and len(asked) == before

    wait_for(answered_without_asking, 30, "an info read from the kept description")
    before = len(asked)
    for _ in range(5):
        assert backend.stats("echo_described").replicas_target == 1
    assert backend.deployed_cell("echo_described")[1].handler == "echo"
    assert len(asked) == before

    deploy(ECHO.replace("def echo(", "def echo2("), "echo_described", replicas=2)

    def new_version_seen() -> bool:
        info = backend.info("echo_described")
        return (info.handler, info.status.replicas.target) == ("echo2", 2)

    wait_for(new_version_seen, 60, "the new version's handler and replica target")
    assert len(asked) > before


def test_a_blocking_call_works_in_a_running_event_loop_and_gives_up_at_its_timeout(deploy: Any) -> None:
    # endpoint(x) blocks also on a thread whose event loop runs (a Jupyter cell's, where Serve
    # refuses to wait); past `timeout` it raises TimeoutError long before the handler ends,
    # and the endpoint serves on.
    ep = deploy("import time\ndef nap(xs):\n    time.sleep(max(xs))\n    return xs\n", "nap_blocking")

    async def in_a_running_loop(seconds: float, timeout: float | None = None) -> Any:
        return ep(seconds, timeout=timeout)

    assert asyncio.run(in_a_running_loop(0)) == 0
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        asyncio.run(in_a_running_loop(4, timeout=0.5))
    assert time.monotonic() - started < 3.5  # it did not wait for the 4-s handler
    assert ep(0, timeout=60) == 0


def test_an_input_whose_caller_gave_up_never_runs(deploy: Any, tmp_path: Path) -> None:
    # Awaiting Serve's response does not cancel it when the caller stops waiting: nbserve does.
    check_a_given_up_input_never_runs(deploy(GIVEN_UP_CELL, "given_up", max_batch_size=1), tmp_path)


def test_concurrent_requests_form_real_batches(deploy: Any) -> None:
    # 32 clients at once exceed the default queue (two batches); this test is about batching,
    # so it makes room for all of them (shedding has its own tests).
    ep = deploy(ECHO, "echo_batching", max_batch_size=8, batch_wait_ms=50, max_queued=32)

    def one(i: int) -> int:
        response = post(ep.url, {"input": i})
        assert response.status_code == 200, response.text
        return int(response.json()["output"]["batch"])

    with ThreadPoolExecutor(32) as pool:
        sizes = list(pool.map(one, range(96)))
    assert max(sizes) > 1, f"no batch formed: {sizes}"
    assert max(sizes) <= 8, f"a batch exceeded --max-batch-size 8: {sizes}"


def test_a_failing_item_fails_alone(deploy: Any) -> None:
    ep = deploy(FLAKY, "flaky", batch_wait_ms=50)

    # Concurrent single requests share batches; only the bad one may fail.
    inputs = ["a", "b", "bad", "c", "d", "e", "bad", "f"]
    with ThreadPoolExecutor(len(inputs)) as pool:
        responses = list(pool.map(lambda x: post(ep.url, {"input": x}), inputs))
    for item, response in zip(inputs, responses, strict=True):
        if item == "bad":
            assert response.status_code == 500
            error = response.json()["error"]
            assert error["exception"] == "ValueError"
            assert "cannot handle 'bad'" in error["message"]
        else:
            assert response.status_code == 200, response.text
            assert response.json() == {"output": item.upper()}

    mixed = post(ep.url, {"inputs": ["x", "bad", "y"]})
    assert mixed.status_code == 500
    body = mixed.json()
    assert body["outputs"] == ["X", None, "Y"]
    assert body["errors"] == [{"index": 1, "exception": "ValueError", "message": "cannot handle 'bad'"}]

    with pytest.raises(nbserve.HandlerError) as raised:
        ep("bad")
    assert raised.value.type_name == "ValueError"
    assert "<serve flaky>" in raised.value.remote_traceback

    # The replica keeps serving after all of that.
    assert ep("ok") == "OK"


def test_bad_requests_get_json_4xx(deploy: Any) -> None:
    ep = deploy(ECHO, "echo_errors")
    cases = [
        (dict(data=b"{not json"), 400, "MalformedJSON"),
        (dict(data=b""), 400, "EmptyBody"),
        (dict(json={"inputz": [1]}), 422, "MissingInput"),
        (dict(json=[1, 2]), 422, "WrongShape"),
        (dict(json={"inputs": "abc"}), 422, "WrongShape"),
    ]
    for kwargs, status, kind in cases:
        response = requests.post(ep.url, timeout=30, headers=auth(), **kwargs)
        assert response.status_code == status, (kwargs, response.text)
        assert response.json()["error"]["type"] == kind
        assert response.json()["error"]["message"]

    too_large = requests.post(ep.url, data=b"[" + b" " * (MAX_BODY_BYTES + 1) + b"]", headers=auth(), timeout=60)
    assert too_large.status_code == 413
    assert too_large.json()["error"]["type"] == "PayloadTooLarge"

    wrong_method = requests.put(ep.url, json={"input": 1}, headers=auth(), timeout=30)
    assert wrong_method.status_code == 405
    assert post(ep.url, {"input": 1}).status_code == 200


def test_map_keeps_order_sends_full_batches_and_reports_failures(deploy: Any) -> None:
    ep = deploy(ECHO, "echo_map", max_batch_size=16)
    results = ep.map(range(100), progress=False)
    assert [r["item"] for r in results] == list(range(100))
    assert [r["batch"] for r in results[:96]] == [16] * 96  # whole chunks run as one batch
    assert {r["batch"] for r in results[96:]} == {4}

    flaky = deploy(FLAKY, "flaky_map", max_batch_size=4)
    inputs = ["a", "bad", "b", "c", "d", "bad"]
    with pytest.raises(nbserve.MapError) as raised:
        flaky.map(inputs, progress=False)
    assert raised.value.failed == [1, 5]
    mixed = flaky.map(inputs, progress=False, return_exceptions=True)
    assert mixed[0] == "A" and mixed[2:5] == ["B", "C", "D"]
    assert isinstance(mixed[1], nbserve.HandlerError)


def test_unbatched_handler_gets_single_inputs(deploy: Any) -> None:
    source = "def double(x: int) -> int:\n    return 2 * x\n"
    ep = deploy(source, "double", no_batch=True)
    assert ep(21) == 42
    assert post(ep.url, {"inputs": [1, 2, 3]}).json() == {"outputs": [2, 4, 6]}
    assert ep.map([5, 6], progress=False) == [10, 12]


def test_env_and_notebook_values_reach_the_replica(deploy: Any) -> None:
    source = "import os\ndef where(items):\n    return [[os.environ['GREETING'], PREFIX + x] for x in items]\n"
    ep = nbserve.deploy(source, "env_probe", namespace={"PREFIX": ">"}, env=["GREETING=hello"], cpus=0.1)
    try:
        assert ep("x") == ["hello", ">x"]
    finally:
        ep.down()


def test_pip_packages_install_into_the_replicas_environment(deploy: Any) -> None:
    """--pip builds a runtime environment for the replicas; the kernel's packages stay as they are."""
    import importlib.metadata

    wanted = "1.15.0"
    with contextlib.suppress(importlib.metadata.PackageNotFoundError):
        assert importlib.metadata.version("six") != wanted  # the kernel's own, if any
    ep = deploy(
        "import six\ndef version(items):\n    return [six.__version__ for _ in items]\n",
        "pip_probe",
        pip=[f"six=={wanted}"],
    )
    assert ep("x") == wanted


def test_failing_setup_is_reported_with_its_traceback_and_removed(deploy: Any) -> None:
    source = "import json\nconfig = json.loads('{}')\nweights = config['weights']\ndef f(xs):\n    return xs\n"
    started = time.monotonic()
    with pytest.raises(nbserve.SetupFailedError) as raised:
        deploy(source, "broken_setup")
    elapsed = time.monotonic() - started
    message = str(raised.value)
    assert "KeyError: 'weights'" in message
    assert "weights = config['weights']" in message
    assert 'File "<serve broken_setup>", line 3' in message
    assert "site-packages" not in message  # the user's frames only
    assert elapsed < 60, f"the failure took {elapsed:.0f} s to report"
    assert "broken_setup" not in {i.name for i in nbserve.list_endpoints()}


def test_resources_the_cluster_lacks_are_refused_quickly(deploy: Any) -> None:
    started = time.monotonic()
    with pytest.raises(nbserve.InsufficientResourcesError) as raised:
        deploy("def f(xs):\n    return xs\n", "wants_gpu", gpu="2")
    assert time.monotonic() - started < 10
    message = str(raised.value)
    assert "needs 0.1 CPU, 2 GPU" in message
    assert "no node of the local Ray cluster has that much" in message
    assert "1 GPU" in message.split("it has ", 1)[1].split(".")[0]  # what it has: the test cluster's one

    with pytest.raises(nbserve.InsufficientResourcesError, match="64 CPU"):
        deploy("def f(xs):\n    return xs\n", "wants_cpus", cpus=64)

    # Each replica fits, but not all of them: reported once replicas are seen waiting.
    with pytest.raises(nbserve.InsufficientResourcesError, match="cannot be placed"):
        deploy("def f(xs):\n    return xs\n", "too_many", cpus=1, replicas=3)
    names = {i.name for i in nbserve.list_endpoints()}
    assert not names & {"wants_gpu", "wants_cpus", "too_many"}


def test_redeploy_rolls_out_without_failed_requests(deploy: Any) -> None:
    version = "VERSION = {v!r}\ndef version(items):\n    return [VERSION for _ in items]\n"
    ep = deploy(version.format(v="v1"), "rolling")
    with PollingClient(ep.url) as client:
        wait_for(lambda: len(client.answers) >= 5, 30, "the first answers")
        deploy(version.format(v="v2"), "rolling")
        wait_for(lambda: client.answers[-1] == "v2", 30, "the new version's answers")
        count_after = len(client.answers)
        wait_for(lambda: len(client.answers) >= count_after + 5, 30, "more answers after the update")
    assert client.failures == []
    assert "v1" in client.answers
    assert client.answers[-5:] == ["v2"] * 5


def test_failed_redeploy_keeps_the_previous_version_serving(deploy: Any) -> None:
    ep = deploy("def answer(items):\n    return [1 for _ in items]\n", "keeps_serving")
    with pytest.raises(nbserve.SetupFailedError, match="serving again"):
        deploy("raise ImportError('no such model')\ndef answer(items):\n    return items\n", "keeps_serving")
    assert ep("x") == 1
    assert post(ep.url, {"input": "x"}).json() == {"output": 1}


def test_down_stops_the_url(deploy: Any) -> None:
    ep = deploy(ECHO, "goes_down")
    assert post(ep.url, {"input": 1}).status_code == 200
    ep.down()
    assert post(ep.url, {"input": 1}).status_code == 404
    assert "goes_down" not in {i.name for i in nbserve.list_endpoints()}
    with pytest.raises(nbserve.EndpointNotFoundError):
        nbserve.endpoint("goes_down")


def test_explicit_address_deploys_to_that_cluster_unchanged(ray_cluster: Any) -> None:
    ep = nbserve.deploy("def same(xs):\n    return xs\n", "by_address", address=ray_cluster.address, cpus=0.1)
    try:
        assert ep.url == f"{ray_cluster.http_url}/by_address"
        assert ep([1, 2]) == [1, 2]
        # The embedded default sees the same endpoint: it is the same cluster.
        assert "by_address" in {i.name for i in nbserve.list_endpoints()}
    finally:
        ep.down()


def test_logs_show_what_the_cell_printed(deploy: Any) -> None:
    source = "print('setup says hello')\ndef loud(items):\n    print('handling', len(items))\n    return items\n"
    ep = deploy(source, "loud")
    ep("x")
    logs = wait_for(lambda: (text := ep.logs()) and "handling 1" in text and text, 30, "the replica's output")
    assert "setup says hello" in logs
