"""Security by default, on the real cluster: endpoints answer only their owner's token, and
nothing of the cluster is open to other hosts or to another user of this machine."""

from __future__ import annotations

import contextlib
import os
import pwd
import stat
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import psutil
import pytest
import requests

import nbserve
from nbserve import _tokens
from nbserve._config import embedded_settings
from nbserve.backends.ray import cluster
from tests.support.helpers import auth, run_cli, wait_for

pytestmark = pytest.mark.integration

CELL = "import os\ndef twice(items):\n    return [{'out': 2 * x, 'pid': os.getpid()} for x in items]\n"
LOOPBACK = {"127.0.0.1", "::1", "::ffff:127.0.0.1"}
INTRUDER = "nbserve-intruder"


def test_http_needs_the_clusters_token(deploy: Any) -> None:
    ep = deploy(CELL, "sec_token")
    missing = requests.post(ep.url, json={"input": 1}, timeout=30)
    assert missing.status_code == 401
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    assert "nbserve token" in missing.json()["error"]["message"]
    wrong = requests.post(ep.url, json={"input": 1}, headers={"Authorization": "Bearer not-it"}, timeout=30)
    assert wrong.status_code == 401
    assert requests.get(ep.url, timeout=30).status_code == 401
    right = requests.post(ep.url, json={"input": 1}, headers=auth(), timeout=30)
    assert right.status_code == 200 and right.json()["output"]["out"] == 2
    assert ep.headers() == auth()
    assert ep(2)["out"] == 4  # the notebook's own calls need nothing


def test_a_public_endpoint_is_open_on_loopback_and_says_so(deploy: Any) -> None:
    ep = deploy(CELL, "sec_public", public=True)
    assert requests.post(ep.url, json={"input": 1}, timeout=30).status_code == 200
    assert ep.public and "public" in ep.info().resources
    listing = run_cli("ls").stdout
    assert any("sec_public" in line and "public" in line for line in listing.splitlines())


def test_forged_cross_site_requests_are_refused(deploy: Any) -> None:
    """What a web page can make a browser send: a text/plain body, a foreign Origin or Host."""
    ep = deploy(CELL, "sec_csrf", public=True)  # no token to stop it: the other checks must
    forged = requests.post(
        ep.url, data='{"input": 1}', headers={"Content-Type": "text/plain", "Origin": "http://evil.example"}
    )
    assert (forged.status_code, forged.json()["error"]["type"]) == (403, "CrossSiteRequest")
    rebound = requests.post(ep.url, json={"input": 1}, headers={"Host": "evil.example"}, timeout=30)
    assert (rebound.status_code, rebound.json()["error"]["type"]) == (403, "ForbiddenHost")


def test_rotation_reaches_running_replicas_without_a_redeploy(deploy: Any) -> None:
    ep = deploy(CELL, "sec_rotate")
    old = auth()
    pid = requests.post(ep.url, json={"input": 1}, headers=old, timeout=30).json()["output"]["pid"]
    rotated = run_cli("token", "--rotate")
    assert rotated.returncode == 0, rotated.stderr
    new = {"Authorization": f"Bearer {rotated.stdout.strip()}"}
    assert new == auth() != old
    refused = lambda: requests.post(ep.url, json={"input": 1}, headers=old, timeout=30).status_code == 401  # noqa: E731
    wait_for(refused, 15, "the old token to be refused")
    answer = requests.post(ep.url, json={"input": 1}, headers=new, timeout=30).json()["output"]
    assert answer["pid"] == pid  # the same replica: no redeploy
    assert run_cli("token").stdout.strip() == rotated.stdout.strip()


def test_another_process_attaches_and_calls_without_handling_the_token(deploy: Any) -> None:
    deploy(CELL, "sec_attach")
    code = textwrap.dedent(
        """
        import nbserve, requests
        ep = nbserve.endpoint("sec_attach")
        over_http = requests.post(ep.url, json={"input": 6}, headers=ep.headers(), timeout=30)
        print(ep(5)["out"], over_http.json()["output"]["out"])
        """
    )
    ran = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180)
    assert ran.stdout.split() == ["10", "12"], ran.stderr[-2000:]


def listening_sockets(settings: Any) -> list[tuple[psutil.Process, str, int]]:
    found = []
    for process in cluster.cluster_processes(settings):
        try:
            connections = process.net_connections(kind="inet")
        except psutil.Error:
            continue
        found += [(process, c.laddr.ip, c.laddr.port) for c in connections if c.status == psutil.CONN_LISTEN]
    return found


def test_every_port_of_the_cluster_listens_on_loopback(deploy: Any) -> None:
    """Except each replica's inter-deployment gRPC port, which Ray Serve binds to [::] with no
    setting (ray/serve/_private/replica.py); it refuses every call without Ray's own token."""
    import grpc

    deploy(CELL, "sec_ports")
    sockets = listening_sockets(embedded_settings())
    assert len(sockets) >= 12
    wide = [(p, ip, port) for p, ip, port in sockets if ip not in LOOPBACK]
    for process, _, port in wide:
        assert "ServeReplica" in " ".join(process.cmdline()) or process.name().startswith("ray::ServeReplica"), (
            f"{process.name()} listens on {port} beyond loopback"
        )
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            call = channel.unary_unary("/ray.serve.ASGIService/HandleRequest")
            with pytest.raises(grpc.RpcError) as refused:
                call(b"", timeout=10)
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    settings = embedded_settings()
    body = requests.get(f"http://127.0.0.1:{settings.dashboard_metrics_port}/metrics", timeout=30).text
    assert "sec_ports" not in body  # Ray's own counters only: no endpoint is named there
    # No exporter at all, and no autoscaler monitor (and so none of its metrics) on one node.
    assert not any(port == settings.metrics_export_port for _, _, port in sockets)
    assert not any(port == settings.autoscaler_metrics_port for _, _, port in sockets)
    commands = []
    for process in cluster.cluster_processes(settings):
        with contextlib.suppress(psutil.Error):  # one that ended meanwhile
            commands.append(" ".join(process.cmdline()))
    assert commands and not [c for c in commands if "monitor.py" in c]  # log_monitor.py too


def test_state_files_are_private(ray_cluster: Any) -> None:
    settings = embedded_settings()
    nbserve.deploy(CELL, "sec_files", cpus=0.1).down()  # writes the registry and the token

    def mode(path: Path) -> int:
        return stat.S_IMODE(path.stat().st_mode)

    assert mode(settings.home) == 0o700
    assert mode(_tokens.token_path()) == 0o600
    assert mode(settings.home / "registry.sqlite3") == 0o600
    assert mode(settings.state_file) == 0o600
    assert mode(settings.private_root) == 0o700  # Ray's own temp folder (0777) is inside
    ray_token = cluster.ray_token_file()
    assert ray_token is not None and mode(ray_token) == 0o600


def test_another_user_of_this_machine_can_neither_read_nor_call(deploy: Any) -> None:
    if os.getuid() != 0:
        pytest.skip("creating a second local user needs root (CI runs as root)")
    ep = deploy(CELL, "sec_intruder")
    try:
        pwd.getpwnam(INTRUDER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", INTRUDER], check=True)
    settings = embedded_settings()
    secrets = [_tokens.token_path(), settings.home / "registry.sqlite3", settings.state_file]
    ray_token = cluster.ray_token_file()
    assert ray_token is not None
    script = textwrap.dedent(
        f"""
        import os, sys, urllib.error, urllib.request
        for path in {[str(p) for p in [*secrets, ray_token]]!r}:
            try:
                open(path).read()
                print("READ", path)
            except OSError:
                print("denied", path)
        try:
            os.listdir({str(settings.private_root)!r})
            print("LISTED")
        except OSError:
            print("denied listing")
        for url in ({ep.url!r}, {f"http://127.0.0.1:{settings.dashboard_port}/api/serve/applications/"!r}):
            request = urllib.request.Request(url, data=b'{{"input": 1}}' if url.endswith("intruder") else None)
            try:
                urllib.request.urlopen(request, timeout=30)
                print("ANSWERED", url)
            except urllib.error.HTTPError as error:
                print("refused", error.code)
        """
    )
    ran = subprocess.run(
        ["runuser", "-u", INTRUDER, "--", "/usr/bin/python3", "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        cwd="/",
    )
    lines = ran.stdout.split("\n")
    assert ran.returncode == 0, ran.stderr
    assert [line for line in lines if line.startswith(("READ", "LISTED", "ANSWERED"))] == [], ran.stdout
    assert lines.count("refused 401") == 2, ran.stdout
    assert sum(line.startswith("denied") for line in lines) == len(secrets) + 2


def test_a_named_cluster_keeps_its_token_in_the_cluster(deploy: Any, ray_cluster: Any) -> None:
    """With --address every kernel that reaches the cluster finds the token there."""
    deploy(CELL, "sec_named")
    named = nbserve.endpoint("sec_named", address=ray_cluster.address)
    assert named.headers() == auth()  # read from the cluster, not from this user's file
    printed = run_cli("token", "--address", ray_cluster.address)
    assert printed.returncode == 0 and named.headers() == {"Authorization": f"Bearer {printed.stdout.strip()}"}
