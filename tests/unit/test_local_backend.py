"""The in-process backend (``--backend local``): the same interface, HTTP contract and figures
as a Ray endpoint, with the cell running in this process."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
import requests

import nbserve
from nbserve._errors import CommandError, EndpointNotFoundError, HandlerError, MapError, SetupFailedError, SpecError
from tests.support.helpers import GIVEN_UP_CELL, check_a_given_up_input_never_runs

ECHO = textwrap.dedent(
    """
    import os
    SEEN = []

    def echo(items):
        SEEN.append(len(items))
        for x in items:
            if x == "bad":
                raise ValueError(f"cannot handle {x!r}")
        return [{"item": x, "batch": len(items), "version": VERSION} for x in items]
    """
)


def test_calls_map_and_http_answer_like_a_ray_endpoint(local: Any) -> None:
    ep = local(ECHO, "lecho", namespace={"VERSION": 1}, max_batch_size=4)
    assert ep.backend == "local" and ep.url.startswith("http://127.0.0.1:") and ep.url.endswith("/lecho")
    assert ep("a")["item"] == "a"
    assert [o["item"] for o in ep.map(list("abcdefghij"), progress=False)] == list("abcdefghij")

    auth = ep.headers()
    single = requests.post(ep.url, json={"input": "b"}, headers=auth, timeout=10)
    assert single.status_code == 200 and single.json()["output"]["item"] == "b"
    many = requests.post(ep.url, json={"inputs": ["c", "bad", "d"]}, headers=auth, timeout=10)
    assert many.status_code == 500
    assert [o and o["item"] for o in many.json()["outputs"]] == ["c", None, "d"]
    assert many.json()["errors"][0]["index"] == 1
    assert requests.get(ep.url, headers=auth, timeout=10).json()["handler"] == "echo"
    malformed = requests.post(ep.url, data=b"{nope", headers=auth, timeout=10)
    assert (malformed.status_code, malformed.json()["error"]["type"]) == (400, "MalformedJSON")
    assert requests.put(ep.url, json={}, headers=auth, timeout=10).headers["Allow"] == "GET, POST"
    nothing = ep.url.replace("/lecho", "/nothing")
    assert requests.post(nothing, json={"input": 1}, headers=auth, timeout=10).status_code == 404

    status = ep.status()
    assert (status.state, status.replicas.running) == ("running", 1)


def test_map_keeps_order_sends_batch_sized_chunks_and_collects_failures(local: Any) -> None:
    ep = local(ECHO, "lmap", namespace={"VERSION": 1}, max_batch_size=3)
    inputs = ["a", "b", "bad", "c", "d", "e", "bad"]
    with pytest.raises(MapError) as raised:
        ep.map(inputs, progress=False)
    assert raised.value.failed == [2, 6]
    results = ep.map(inputs, progress=False, return_exceptions=True)
    assert [r["item"] if isinstance(r, dict) else "ERR" for r in results] == ["a", "b", "ERR", "c", "d", "e", "ERR"]
    assert isinstance(results[2], HandlerError) and "cannot handle 'bad'" in str(results[2])
    assert ep.map([], progress=False) == []
    with pytest.raises(CommandError, match="chunk_size must be at least 1"):
        ep.map(inputs, chunk_size=0)
    # Chunks are the batch size: the handler never saw more than 3 inputs at once.
    seen = nbserve.endpoint("lmap", backend="local").map(["x"] * 9, progress=False, chunk_size=3)
    assert {o["batch"] for o in seen} == {3}


def test_stats_count_every_caller(local: Any) -> None:
    ep = local(ECHO, "lstats", namespace={"VERSION": 1})
    for _ in range(3):
        ep("a")
    requests.post(ep.url, json={"inputs": ["a", "b"]}, headers=ep.headers(), timeout=10)
    requests.post(ep.url, data=b"", headers=ep.headers(), timeout=10)
    stats = ep.stats()
    assert (stats.requests, stats.items, stats.errors) == (5, 5, 1)
    assert stats.p50_ms is not None and stats.batch_max is not None
    assert sum(point.requests_per_s * point.step_s for point in ep.series(span_s=30, step_s=5)) == pytest.approx(5)


def test_a_rerun_reloads_and_a_failing_setup_keeps_the_running_version(local: Any) -> None:
    ep = local(ECHO, "lreload", namespace={"VERSION": 1})
    assert ep("a")["version"] == 1
    local(ECHO, "lreload", namespace={"VERSION": 2})
    assert ep("a")["version"] == 2
    with pytest.raises(SetupFailedError, match="ZeroDivisionError") as raised:
        local("1 / 0\n" + ECHO, "lreload", namespace={"VERSION": 3})
    assert "previous version of lreload is serving again" in str(raised.value)
    assert ep("a")["version"] == 2
    assert "reloaded" in ep.logs() and "deployed" in ep.logs()


def test_logs_hold_the_traceback_of_each_failed_input(local: Any) -> None:
    ep = local(ECHO, "llogs", namespace={"VERSION": 1})
    with pytest.raises(HandlerError):
        ep("bad")
    logs = ep.logs()
    assert "an input failed" in logs and "ValueError: cannot handle 'bad'" in logs and "<serve llogs>" in logs


def test_down_removes_the_route_and_the_name(local: Any) -> None:
    ep = local(ECHO, "ldown", namespace={"VERSION": 1})
    url = ep.url
    ep.down()
    assert requests.post(url, json={"input": "a"}, headers=ep.headers(), timeout=10).status_code == 404
    with pytest.raises(EndpointNotFoundError):
        nbserve.endpoint("ldown", backend="local")
    with pytest.raises(EndpointNotFoundError):
        ep("a")


def test_export_works_twice_from_the_public_name(local: Any, tmp_path: Path) -> None:
    """``nbserve.export`` once turned into its own subpackage after the first call."""
    local(ECHO, "lexport", namespace={"VERSION": 1})
    first = nbserve.export("lexport", "ray", tmp_path / "a", backend="local")
    second = nbserve.export("lexport", "kuberay", tmp_path / "b", backend="local")
    assert [p.name for p in first] == ["lexport_app.py"]
    assert [p.name for p in second] == ["lexport_app.py", "lexport_rayservice.yaml"]
    assert "VERSION" in first[0].read_text()


@pytest.mark.parametrize(
    ("flags", "flag"),
    [
        ({"replicas": "2"}, "--replicas"),
        ({"pip": ["numpy"]}, "--pip"),
        ({"env": ["A=1"]}, "--env"),
        ({"address": "ray://x:1"}, "--address"),
        ({"uses": "other"}, "--uses"),
    ],
)
def test_what_only_a_cluster_does_is_refused_with_the_fix(local: Any, flags: dict[str, Any], flag: str) -> None:
    with pytest.raises(SpecError, match="--backend ray") as raised:
        local(ECHO, "lrefused", namespace={"VERSION": 1}, **flags)
    assert raised.value.flag == flag


def test_an_input_whose_caller_gave_up_never_runs(local: Any, tmp_path: Path) -> None:
    check_a_given_up_input_never_runs(local(GIVEN_UP_CELL, "given_up", max_batch_size=1), tmp_path)
