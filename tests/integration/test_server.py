"""The server extension's routes on a real Jupyter server, over a real Ray cluster and kernel."""

from __future__ import annotations

import json
import os
import time
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
from tests.support.helpers import auth, wait_for
from tests.support.kernels import Kernel

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
    assert requests.post(url, json={"input": 21}, headers=auth(), timeout=30).json() == {"output": 42}

    listed = await _json(jp_fetch, ROUTE)
    assert listed["problem"] is None
    mine = {e["name"]: e for e in listed["endpoints"]}["orphan"]
    assert (mine["status"], mine["replicas"], mine["url"]) == ("running", {"running": 1, "target": 1}, url)
    assert (mine["owner"]["notebook"], mine["owner"]["state"]) == ("owner.ipynb", "running")
    assert mine["owner"]["kernel_id"] == owner_kernel.kernel_id

    owner_kernel.shutdown()  # the kernel is gone; the endpoint serves on
    one = await _json(jp_fetch, ROUTE, "orphan")
    assert (one["status"], one["owner"]["state"]) == ("running", "exited")
    assert requests.post(url, json={"input": 1}, headers=auth(), timeout=30).json() == {"output": 2}

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
    from ray import serve

    deploy("def vanish(items):\n    return items\n", "vanish")
    assert {e["name"]: e["status"] for e in (await _json(jp_fetch, ROUTE))["endpoints"]}["vanish"] == "running"

    serve.delete("vanish")  # behind nbserve's back: the registry still has it
    entry = await _json(jp_fetch, ROUTE, "vanish")
    assert (entry["status"], entry["replicas"]["running"]) == ("gone", 0)
    wait_for(lambda: requests.post(entry["url"], json={"input": 1}, timeout=30).status_code == 404, 30, "404")


PROXY = "nbserve/endpoints"


async def test_the_jupyter_route_answers_for_the_endpoint(jp_fetch: Any, jp_base_url: str, deploy: Any) -> None:
    """Where only the Jupyter server's port is reachable, its route is the endpoint."""
    deploy("def relay(items):\n    return [x * 3 if isinstance(x, int) else x / 0 for x in items]\n", "relay")
    listed = {e["name"]: e for e in (await _json(jp_fetch, ROUTE))["endpoints"]}["relay"]
    assert listed["jupyter_url"] == f"{jp_base_url}{PROXY}/relay"
    assert (await _json(jp_fetch, PROXY, "relay"))["handler"] == "relay"
    answer = await _json(jp_fetch, PROXY, "relay", method="POST", body=json.dumps({"input": 2}))
    assert answer == {"output": 6}
    with pytest.raises(HTTPClientError) as failed:
        await jp_fetch(PROXY, "relay", method="POST", body=json.dumps({"inputs": [1, "x"]}), **SLOW)
    assert failed.value.code == 500
    assert json.loads(failed.value.response.body)["outputs"] == [3, None]
    with pytest.raises(HTTPClientError) as missing:
        await jp_fetch(PROXY, "nowhere", **SLOW)
    assert missing.value.code == 404


async def test_the_jupyter_route_relays_a_stream_chunk_by_chunk(
    jp_serverapp: Any, jp_base_url: str, http_server_client: Any, deploy: Any
) -> None:
    deploy("import time\ndef drip(x):\n    yield 'a'\n    time.sleep(1.0)\n    yield 'b'\n", "drip", no_batch=True)
    arrivals: list[tuple[float, bytes]] = []
    started = time.monotonic()
    token = jp_serverapp.identity_provider.token
    await http_server_client.fetch(
        f"{jp_base_url}{PROXY}/drip",
        method="POST",
        body=json.dumps({"input": 0, "stream": True}),
        headers={"Authorization": f"token {token}"},
        streaming_callback=lambda chunk: arrivals.append((time.monotonic() - started, chunk)),
        **SLOW,
    )
    assert (
        b"".join(c for _, c in arrivals) == b'data: {"output":"a"}\n\ndata: {"output":"b"}\n\nevent: end\ndata: {}\n\n'
    )
    first = next(t for t, chunk in arrivals if b'"a"' in chunk)
    assert first < arrivals[-1][0] - 0.8  # the first chunk came through before the handler went on


async def test_the_jupyter_route_needs_jupyters_own_credentials(
    jp_serverapp: Any, jp_base_url: str, http_server_client: Any, deploy: Any
) -> None:
    deploy("def relay2(items):\n    return items\n", "relay2")
    path = f"{jp_base_url}{PROXY}/relay2"
    body = json.dumps({"input": 1})

    async def fetch(url: str, **kwargs: Any) -> Any:
        return await http_server_client.fetch(url, raise_error=False, follow_redirects=False, **SLOW, **kwargs)

    assert (await fetch(path, method="POST", body=body)).code == 403
    assert (await fetch(path, method="POST", body=body, headers={"Authorization": "token wrong"})).code == 403
    assert (await fetch(path)).code in (302, 403)  # a browser is sent to the login page
    # The browser's session: logged in once (the token in the URL), then the cookie alone.
    login = await fetch(f"{path}?token={jp_serverapp.identity_provider.token}")
    assert login.code == 200
    cookie = "; ".join(c.split(";", 1)[0] for c in login.headers.get_list("Set-Cookie"))
    assert (await fetch(path, headers={"Cookie": cookie})).code == 200  # GET: the API docs in a tab
    forged = await fetch(path, method="POST", body=body, headers={"Cookie": cookie})
    assert forged.code == 403  # POST with the cookie and no XSRF token: what another page could send
