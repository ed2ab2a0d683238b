"""The sidebar's service in plain Python: the registry joined with what a backend runs now,
over the in-process backend (the same requests the monitor process answers for Ray)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

import nbserve
from nbserve._errors import (
    ClusterError,
    EndpointInUseError,
    EndpointNotFoundError,
    MonitorError,
    NbserveError,
)
from nbserve._registry import Registry, default_registry
from nbserve.backends import get_backend
from nbserve.server.handlers import status_of
from nbserve.server.live import InProcess
from nbserve.server.service import EndpointService

CELL = "def side(items):\n    return [x * 2 for x in items]\n"


@pytest.fixture
def service(tmp_path: Path) -> Iterator[EndpointService]:
    yield EndpointService(default_registry(), InProcess(get_backend("local")), tmp_path, backend="local")
    with contextlib.suppress(EndpointNotFoundError):
        nbserve.endpoint("side", backend="local").down()


class Unreachable:
    def request(self, payload: dict[str, Any]) -> dict[str, Any]:
        raise MonitorError("the nbserve monitor did not answer within 60 s")


def test_the_list_shows_live_endpoints_with_their_owner_and_figures(service: EndpointService) -> None:
    endpoint = nbserve.deploy(CELL, "side", backend="local")
    endpoint(3)
    listed = service.list()
    assert listed["problem"] is None
    (entry,) = [e for e in listed["endpoints"] if e["name"] == "side"]
    assert (entry["status"], entry["backend"], entry["checked"]) == ("running", "local", True)
    assert entry["replicas"] == {"running": 1, "target": 1}
    assert entry["url"] == endpoint.url
    assert entry["owner"]["state"] == "running"
    assert entry["figures"]["requests"] == 1
    assert service.get("side")["name"] == "side"


def test_delete_stops_the_endpoint_and_forgets_it(service: EndpointService) -> None:
    url = nbserve.deploy(CELL, "side", backend="local").url
    service.list()
    service.delete("side")
    assert requests.post(url, json={"input": 1}, timeout=10).status_code == 404
    assert [e for e in service.list()["endpoints"] if e["name"] == "side"] == []
    with pytest.raises(EndpointNotFoundError):
        service.delete("side")
    with pytest.raises(EndpointNotFoundError):
        service.get("side")


def test_an_entry_whose_deployment_is_gone_is_shown_gone_then_deleted(service: EndpointService) -> None:
    nbserve.deploy(CELL, "side", backend="local")
    service.list()
    get_backend("local")._delete("side", force=False)  # behind nbserve's back: the registry still has it
    assert service.get("side")["status"] == "gone"
    service.delete("side")  # the deployment is gone already: the entry is forgotten
    with pytest.raises(EndpointNotFoundError):
        service.get("side")


def test_an_unreachable_cluster_is_a_problem_not_a_failure(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "registry.sqlite3")
    registry.record(backend="ray", name="kept", url="http://127.0.0.1:8000/kept", status="running")
    listed = EndpointService(registry, Unreachable(), tmp_path).list()
    assert listed["problem"] == "the nbserve monitor did not answer within 60 s"
    assert [e["name"] for e in listed["endpoints"]] == ["kept"]


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (EndpointNotFoundError("no endpoint named 'x'"), 404),
        (EndpointInUseError("x", ["y"]), 409),
        (MonitorError("no answer"), 504),
        (ClusterError("cannot connect"), 503),
        (NbserveError("something else"), 502),
    ],
)
def test_errors_map_to_statuses_in_one_table(error: NbserveError, status: int) -> None:
    assert status_of(error) == status
