"""``%load_ext nbserve`` starts the embedded cluster and Serve in the background, silently, so the
first ``%%serve`` finds them warm; a cluster of this test's own, so the session's is not touched."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.helpers import own_cluster_env as own_cluster_env_for
from tests.support.helpers import wait_for
from tests.support.kernels import Kernel

pytestmark = [pytest.mark.integration, pytest.mark.kernel]


@pytest.fixture
def own_cluster_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    env = own_cluster_env_for(tmp_path / "home", NBSERVE_PRESTART="1")
    yield env
    subprocess.run([sys.executable, "-m", "nbserve", "cluster", "stop"], env=env, timeout=120)


def _cluster_running(env: dict[str, str]) -> bool:
    status = subprocess.run(
        [sys.executable, "-m", "nbserve", "cluster", "status"], env=env, capture_output=True, text=True, timeout=60
    )
    return status.returncode == 0 and "running" in status.stdout


def test_load_ext_starts_the_cluster_in_the_background_and_the_first_serve_uses_it(
    own_cluster_env: dict[str, str],
) -> None:
    env = own_cluster_env
    assert not _cluster_running(env)
    kernel = Kernel(env)
    try:
        loaded = kernel.ok("%load_ext nbserve")
        assert loaded.text.strip() == "", f"%load_ext printed: {loaded.text!r}"  # silent
        # The kernel is free at once (the start runs in a thread): it answers while Ray starts.
        assert kernel.ok("print(1 + 1)").stdout.strip() == "2"
        try:
            wait_for(lambda: _cluster_running(env), 120, "the cluster that %load_ext started, with no %%serve")
        except AssertionError as exc:  # say why: the prestart keeps its failure for %%serve
            kept = kernel.ok("from nbserve.backends import get_backend\nprint(repr(get_backend()._prestart_error))")
            raise AssertionError(f"{exc}; the prestart's failure: {kept.stdout.strip()}") from None
        started = time.monotonic()
        served = kernel.ok("%%serve warm --cpus 0.1\ndef warm(xs):\n    return xs\n")
        assert "starting the local Ray cluster" not in served.text  # it found the cluster running
        assert kernel.ok("print(warm(5))").stdout.strip() == "5"
        print(f"first %%serve after a prestart: {time.monotonic() - started:.1f} s")
    finally:
        kernel.shutdown()


def test_a_cell_right_after_load_ext_shares_the_starting_connection(own_cluster_env: dict[str, str]) -> None:
    """The prestart thread is still importing Ray when the cell asks for the cluster: both must
    get one backend (two would both call ray.init: "called ray.init twice"). Serve's HTTP proxies
    start beside the first replica; the deploy returns once they answer too."""
    kernel = Kernel(own_cluster_env)
    try:
        kernel.ok("%load_ext nbserve")
        kernel.ok("import torch")  # about a second: the prestart is mid-import when %%serve comes
        served = kernel.run("%%serve quick --cpus 0.1\ndef quick(xs):\n    return xs\n", timeout=240)
        assert served.status == "ok", served.text
        assert "SIGTERM handler" not in served.text  # Ray's note about the thread stays out of cells
        # At once, no retry.
        http = kernel.ok(
            "import requests\nfrom nbserve import _tokens\n"
            "_r = requests.post(quick.url, json={'input': 7}, timeout=30, "
            "headers={'Authorization': f'Bearer {_tokens.read_or_create()}'})\n"
            "print(_r.status_code, _r.text)"
        )
        assert http.stdout.strip() == '200 {"output":7}', http.stdout
        assert kernel.ok("print(quick(7))").stdout.strip() == "7"
    finally:
        kernel.shutdown()


FRESH_SERVE = """
import socket
from nbserve._config import embedded_settings
from nbserve.backends.ray import cluster, serve_start

def listening():
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", embedded_settings().http_port)) == 0

cluster.connect(None)
print("at connect:", listening())
serve_start.wait_for_ingress()
print("after the wait:", listening())
"""


def test_a_fresh_serve_does_not_hold_the_connection_until_its_proxies_answer(own_cluster_env: dict[str, str]) -> None:
    """Serve's controller starts with the connection and its HTTP proxies beside the first
    replica; the deploy's last step, ``wait_for_ingress``, waits for them."""
    shown = subprocess.run(
        [sys.executable, "-c", FRESH_SERVE], env=own_cluster_env, capture_output=True, text=True, timeout=240
    )
    assert shown.returncode == 0, shown.stderr[-3000:]
    # HAProxy's actor and Serve's fallback proxy are fresh Python workers: seconds from ready.
    assert "at connect: False" in shown.stdout, shown.stdout
    assert "after the wait: True" in shown.stdout, shown.stdout


def test_no_prestart_when_it_is_turned_off(own_cluster_env: dict[str, str]) -> None:
    env = {**own_cluster_env, "NBSERVE_PRESTART": "0"}
    kernel = Kernel(env)
    try:
        kernel.ok("%load_ext nbserve")
        kernel.ok("import time; time.sleep(5)")  # as long as a start would take to show
        assert not _cluster_running(env)
    finally:
        kernel.shutdown()
