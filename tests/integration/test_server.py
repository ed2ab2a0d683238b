"""The server extension's routes on a real Jupyter server, over a real Ray cluster and kernel."""

from __future__ import annotations

import json
import os
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from jupyter_client.manager import KernelManager
from tornado.httpclient import HTTPClientError

from nbserve.server import ROUTE
from tests.helpers import wait_for
from tests.kernels import Kernel

pytest_plugins = ["pytest_jupyter.jupyter_server"]
pytestmark = pytest.mark.integration

REAL_HOME = Path.home()  # before pytest-jupyter points HOME at a temporary folder
SLOW = {"request_timeout": 120}  # the first request starts the monitor, which connects to Ray


@pytest.fixture
def jp_home_dir() -> Path:
    # Ray's token lives in ~/.ray/auth_token: the monitor needs the real home to reach the cluster.
    return REAL_HOME


@pytest.fixture
def jp_server_config() -> dict[str, Any]:
    return {"ServerApp": {"jpserver_extensions": {"nbserve.server": True}, "allow_unauthenticated_access": False}}


@pytest.fixture
def jp_serverapp(jp_server_config: Any, jp_argv: Any, jp_configurable_serverapp: Any) -> Any:
    """The server, with the auth warnings its start raised (there must be none)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        app = jp_configurable_serverapp(config=jp_server_config, argv=jp_argv)
    # Other extensions (jupyter_server_terminals) may have their own warnings: only ours count.
    app.nbserve_auth_warnings = [
        str(w.message) for w in caught if "authenticat" in str(w.message) and ROUTE in str(w.message)
    ]
    return app


class ServerStyleKernel(Kernel):
    """A kernel started as Jupyter Server 2 starts one for a notebook: its connection file is
    ``kernel-ID.json`` and ``JPY_SESSION_NAME`` holds the notebook's path."""

    def __init__(self, runtime_dir: Path, notebook: Path) -> None:
        self.kernel_id = str(uuid.uuid4())
        self.manager = KernelManager(
            kernel_name="python3", connection_file=str(runtime_dir / f"kernel-{self.kernel_id}.json")
        )
        self.manager.start_kernel(env={**os.environ, "JPY_SESSION_NAME": str(notebook)})
        self.client = self.manager.client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=60)


@pytest.fixture
def owner_kernel(ray_cluster: Any, jp_root_dir: Path, tmp_path: Path) -> Iterator[ServerStyleKernel]:
    kernel = ServerStyleKernel(tmp_path, jp_root_dir / "owner.ipynb")
    yield kernel
    if kernel.manager.is_alive():
        kernel.shutdown()


async def _json(fetch: Any, *parts: str, **kwargs: Any) -> Any:
    response = await fetch(*parts, **SLOW, **kwargs)
    return json.loads(response.body)


async def test_routes_refuse_unauthenticated_requests(jp_fetch: Any, jp_serverapp: Any) -> None:
    assert jp_serverapp.nbserve_auth_warnings == []
    for method, path in (("GET", ROUTE), ("GET", f"{ROUTE}/x"), ("DELETE", f"{ROUTE}/x")):
        with pytest.raises(HTTPClientError) as refused:
            await jp_fetch(path, method=method, headers={"Authorization": "token wrong"})
        assert refused.value.code == 403, (method, path)


async def test_list_get_and_delete_an_endpoint_whose_kernel_is_gone(
    jp_fetch: Any, owner_kernel: ServerStyleKernel, ray_cluster: Any
) -> None:
    owner_kernel.ok("%load_ext nbserve")
    owner_kernel.ok("%%serve orphan --cpus 0.1\ndef orphan(items):\n    return [x * 2 for x in items]\n")
    url = owner_kernel.ok("orphan.url").data[-1]["text/plain"].strip("'")
    assert requests.post(url, json={"input": 21}, timeout=30).json() == {"output": 42}

    listed = await _json(jp_fetch, ROUTE)
    assert listed["problem"] is None
    mine = {e["name"]: e for e in listed["endpoints"]}["orphan"]
    assert (mine["status"], mine["replicas"], mine["url"]) == ("running", {"running": 1, "target": 1}, url)
    assert (mine["owner"]["notebook"], mine["owner"]["state"]) == ("owner.ipynb", "running")
    assert mine["owner"]["kernel_id"] == owner_kernel.kernel_id

    owner_kernel.shutdown()  # the kernel is gone; the endpoint serves on
    one = await _json(jp_fetch, ROUTE, "orphan")
    assert (one["status"], one["owner"]["state"]) == ("running", "exited")
    assert requests.post(url, json={"input": 1}, timeout=30).json() == {"output": 2}

    response = await jp_fetch(ROUTE, "orphan", method="DELETE", **SLOW)
    assert response.code == 204
    # The deployment itself is torn down, not just the entry.
    assert requests.post(url, json={"input": 1}, timeout=30).status_code == 404
    assert "orphan" not in {e["name"] for e in (await _json(jp_fetch, ROUTE))["endpoints"]}
    for method in ("GET", "DELETE"):
        with pytest.raises(HTTPClientError) as missing:
            await jp_fetch(ROUTE, "orphan", method=method, **SLOW)
        assert missing.value.code == 404


async def test_a_deployment_removed_behind_nbserves_back_shows_gone(jp_fetch: Any, deploy: Any) -> None:
    from nbserve.backends import get_backend

    deploy("def vanish(items):\n    return items\n", "vanish")
    assert {e["name"]: e["status"] for e in (await _json(jp_fetch, ROUTE))["endpoints"]}["vanish"] == "running"

    get_backend("ray").delete("vanish")  # the backend alone: no registry update
    entry = await _json(jp_fetch, ROUTE, "vanish")
    assert (entry["status"], entry["replicas"]["running"]) == ("gone", 0)
    wait_for(lambda: requests.post(entry["url"], json={"input": 1}, timeout=30).status_code == 404, 30, "404")
