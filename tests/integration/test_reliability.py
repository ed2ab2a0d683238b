"""Reliability on the real cluster: hung and crashing handlers, overload, a slow setup, two
deploys at once, the collector, the HTTP proxy and a replica dying under load."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import requests

import nbserve
from nbserve._config import embedded_settings
from nbserve._errors import DeployError, EndpointNotFoundError
from tests.support.helpers import auth, wait_for

pytestmark = pytest.mark.integration

HANGS = textwrap.dedent(
    """
    import os, time
    PID = os.getpid()

    def hangs(items):
        for x in items:
            while x == "hang" and not os.path.exists(RELEASE):
                time.sleep(0.05)
        return [[x, PID] for x in items]
    """
)
EXITS = "import sys\ndef exits(items):\n    if 'exit' in items:\n        sys.exit(2)\n    return items\n"
SLOW = "import time, os\ndef slow(items):\n    time.sleep(0.5)\n    return [os.getpid() for _ in items]\n"


def post(url: str, payload: Any) -> requests.Response:
    return requests.post(url, json=payload, headers=auth(), timeout=60)


def test_a_hung_handler_gets_a_504_then_its_replica_is_replaced(deploy: Any, tmp_path: Path) -> None:
    ep = deploy(HANGS, "rel_hangs", timeout=1, max_batch_size=2, namespace={"RELEASE": str(tmp_path / "go")})
    _, pid = ep("first")
    for _ in range(2):  # two calls stuck on their threads: the replica asks to be replaced
        answer = post(ep.url, {"input": "hang"})
        assert (answer.status_code, answer.json()["error"]["type"]) == (504, "Timeout")
        assert post(ep.url, {"input": "fine"}).json()["output"] == ["fine", pid]  # still answering
    wait_for(lambda: ep("after")[1] != pid, 120, "Serve to replace the replica with the stuck calls")
    (tmp_path / "go").touch()


def test_sys_exit_in_the_handler_fails_only_its_input(deploy: Any) -> None:
    ep = deploy(EXITS, "rel_exits", batch_wait_ms=50)
    answer = post(ep.url, {"inputs": ["a", "exit"]})
    assert answer.status_code == 500 and answer.json()["errors"][0]["exception"] == "SystemExit"
    assert post(ep.url, {"input": "b"}).json() == {"output": "b"}
    assert requests.get(ep.url, headers=auth(), timeout=30).status_code == 200


def test_overload_is_a_json_503_with_retry_after_through_serves_proxy(deploy: Any) -> None:
    ep = deploy(SLOW, "rel_slow", max_batch_size=1, max_queued=1)
    answers: list[requests.Response] = []
    threads = [threading.Thread(target=lambda: answers.append(post(ep.url, {"input": 1}))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    refused = [a for a in answers if a.status_code == 503]
    assert refused and sum(a.status_code == 200 for a in answers) >= 2, [a.status_code for a in answers]
    assert refused[0].json()["error"]["type"] == "Overloaded" and refused[0].headers["Retry-After"] == "1"
    assert ep.map(list(range(8)), chunk_size=1, max_in_flight=8, progress=False) == [ep("x")] * 8


def test_a_setup_that_hangs_is_called_off_at_its_limit(deploy: Any) -> None:
    started = time.monotonic()
    with pytest.raises(DeployError, match="setup") as failed:
        deploy("import time\ntime.sleep(300)\ndef late(xs):\n    return xs\n", "rel_late", setup_timeout=3)
    assert time.monotonic() - started < 100, "the deploy waited far past --setup-timeout 3"
    assert "3 s" in str(failed.value) or "--setup-timeout" in str(failed.value)
    with pytest.raises(EndpointNotFoundError):
        nbserve.endpoint("rel_late")  # nothing half-deployed


def test_two_deploys_of_one_name_run_one_after_the_other(ray_cluster: Any, tmp_path: Path) -> None:
    code = textwrap.dedent(
        """
        import sys, nbserve
        version = sys.argv[1]
        ep = nbserve.deploy(f"import time\\ntime.sleep(3)\\ndef twin(xs):\\n    return [{version!r}] * len(xs)\\n",
                            "rel_twin", cpus=0.1)
        print("served", ep(0))
        """
    )
    runs = [
        subprocess.Popen([sys.executable, "-c", code, v], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for v in ("one", "two")
    ]
    outputs = [run.communicate(timeout=300) for run in runs]
    assert all(run.returncode == 0 for run in runs), [err[-2000:] for _, err in outputs]
    waited = [i for i, (_, err) in enumerate(outputs) if "waiting: another deploy of rel_twin" in err]
    assert len(waited) == 1, [err[-1000:] for _, err in outputs]
    second = ("one", "two")[waited[0]]
    assert nbserve.endpoint("rel_twin")(0) == second  # the deploy that waited is the one that serves
    nbserve.endpoint("rel_twin").down()


def test_totals_survive_the_collector_restarting(deploy: Any) -> None:
    import ray

    from nbserve.backends.ray.reports import find_collector

    ep = deploy("def counted(xs):\n    return xs\n", "rel_counted")
    for x in range(5):
        ep(x)
    wait_for(lambda: ep.stats().requests == 5, 30, "the calls to be counted")
    ray.kill(find_collector(), no_restart=False)  # Ray restarts it, empty
    ep(5)
    wait_for(lambda: ep.stats().requests == 6, 60, "the counts to go on from 5")


def _ingress_actors() -> list[Any]:
    """What answers HTTP: the actor that runs HAProxy (the session cluster's ingress)."""
    from ray.util.state import list_actors

    assert embedded_settings().ingress == "haproxy"
    return list_actors(filters=[("class_name", "=", "HAProxyManager"), ("state", "=", "ALIVE")])


def test_the_ingress_actor_dying_under_load_fails_no_http_request(deploy: Any) -> None:
    """Its process killed outright, as the OOM killer does: HAProxy, in a session of its own,
    goes on serving while Serve starts the actor again, and the new HAProxy takes its sockets
    over."""
    import os
    import signal

    ep = deploy("def up(xs):\n    return xs\n", "rel_proxy")
    assert post(ep.url, {"input": 1}).status_code == 200
    failures: list[str] = []
    answered = [0]
    stop = threading.Event()

    def load() -> None:
        while not stop.is_set():
            try:
                answer = post(ep.url, {"input": 2})
                if answer.status_code == 200:
                    answered[0] += 1
                else:
                    failures.append(f"{answer.status_code} {answer.text[:200]}")
            except requests.RequestException as exc:
                failures.append(repr(exc)[:200])

    [actor] = _ingress_actors()
    threads = [threading.Thread(target=load) for _ in range(2)]
    for thread in threads:
        thread.start()
    try:
        wait_for(lambda: answered[0] >= 20, 60, "the load to run")
        os.kill(actor.pid, signal.SIGKILL)
        wait_for(lambda: "HTTP proxy" in ep.status().message, 15, "the outage in status()", interval=0.05)
        wait_for(
            lambda: (
                [a.actor_id for a in _ingress_actors()] not in ([], [actor.actor_id]) and ep.status().state == "running"
            ),
            60,
            "Serve to start the ingress actor again",
            interval=0.5,
        )
        seen = answered[0]
        wait_for(lambda: answered[0] >= seen + 20, 60, "requests through the new HAProxy")
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert failures == [], failures[:5]


def test_the_ingress_actor_killed_by_ray_is_noticed_and_http_answers_again_within_seconds(deploy: Any) -> None:
    """`ray.kill` ends the actor's child processes, HAProxy included: HTTP fails until Serve
    has started both again, and says "retry" meanwhile."""
    import ray

    ep = deploy("def up(xs):\n    return xs\n", "rel_proxy_kill")
    assert post(ep.url, {"input": 1}).status_code == 200
    [actor] = _ingress_actors()
    ray.kill(ray.get_actor(actor.name, namespace="serve"), no_restart=True)
    assert ep(2) == 2  # calls by handle do not go through the proxy
    wait_for(lambda: "HTTP proxy" in ep.status().message, 15, "the outage in status()")

    refusals: list[tuple[int, str]] = []  # what answered while it was not the endpoint

    def answers() -> bool:
        try:
            answer = post(ep.url, {"input": 3})
        except requests.ConnectionError:
            return False
        if answer.status_code != 200:
            refusals.append((answer.status_code, answer.headers.get("content-type", "")))
        return answer.status_code == 200

    # Serve notices within seconds (proxy health checks every second) and starts a new proxy
    # process; the bound is loose for a loaded CI machine, benchmarks/chaos.py measures it.
    wait_for(answers, 60, "HTTP to answer again", interval=0.02)
    # A new HAProxy knows no route until Serve's first update reaches it: it says "retry"
    # (503, JSON), never that the endpoint does not exist.
    assert all(status == 503 and "json" in kind for status, kind in refusals), refusals
    wait_for(lambda: ep.status().state == "running", 15, "the status to recover")


def test_calls_in_flight_on_a_dying_replica_are_re_run(deploy: Any) -> None:
    import ray
    from ray.util.state import list_actors

    ep = deploy(SLOW, "rel_dying", replicas=2, max_batch_size=4)
    failures: list[BaseException] = []
    answered = 0
    stop = threading.Event()

    def caller() -> None:
        nonlocal answered
        while not stop.is_set():
            try:
                ep(0)
                answered += 1
            except Exception as exc:  # noqa: BLE001 - every failure is the finding
                failures.append(exc)

    threads = [threading.Thread(target=caller) for _ in range(6)]
    for thread in threads:
        thread.start()
    wait_for(lambda: answered >= 12, 60, "load on both replicas")
    [victim, *_] = list_actors(
        filters=[("class_name", "=", "ServeReplica:rel_dying:nbserve_cell"), ("state", "=", "ALIVE")]
    )
    ray.kill(ray.get_actor(victim.name, namespace="serve"), no_restart=True)
    seen = answered
    wait_for(lambda: answered >= seen + 24, 120, "calls to go on after the kill")
    stop.set()
    for thread in threads:
        thread.join()
    assert failures == [], failures[:3]
