"""The Modal backend up to the boundary of Modal's cloud, and live tests beyond it.

Offline: without credentials a deploy stops at once with how to set them, from the Python
API and from a real kernel. Live (marker ``modal``, run when MODAL_TOKEN_ID is set): deploy,
call by handle and HTTP, status, redeploy, down.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.support.helpers import wait_for
from tests.support.kernels import Kernel

CELL = 'def shout(items):\n    print("nbserve-live batch of", len(items))\n    return [x.upper() for x in items]\n'


def _no_credentials_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODAL_")}
    env["HOME"] = str(home)  # no ~/.modal.toml
    return env


def test_deploy_without_credentials_says_how_to_set_them(tmp_path: Path) -> None:
    script = textwrap.dedent(f"""
        import time, nbserve
        started = time.monotonic()
        try:
            nbserve.deploy({CELL!r}, "shout", backend="modal")
        except nbserve.CredentialsError as exc:
            print(f"{{time.monotonic() - started:.2f}}")
            print(exc)
    """)
    result = subprocess.run(
        [sys.executable, "-c", script], env=_no_credentials_env(tmp_path), capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    elapsed, message = result.stdout.split("\n", 1)
    assert float(elapsed) < 2.0
    assert "modal token new" in message and "MODAL_TOKEN_ID" in message and "MODAL_TOKEN_SECRET" in message


@pytest.fixture
def kernel_without_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Kernel]:
    for key in [k for k in os.environ if k.startswith("MODAL_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("HOME", str(tmp_path))
    kernel = Kernel()
    kernel.ok("%load_ext nbserve")
    yield kernel
    kernel.shutdown()


@pytest.mark.kernel
def test_magic_without_credentials_is_a_usage_error(kernel_without_credentials: Kernel) -> None:
    reply = kernel_without_credentials.run(f"%%serve shout --backend modal --gpu T4\n{CELL}")
    assert reply.ename == "UsageError"
    assert "modal token new" in reply.evalue
    fractional = kernel_without_credentials.run(f"%%serve shout --backend modal --gpu 0.25\n{CELL}")
    assert fractional.ename == "UsageError"
    assert "--gpu T4" in fractional.evalue  # suggests a GPU type instead of rounding
    assert "shout" not in kernel_without_credentials.ok("print(dir())").stdout


@pytest.mark.modal
def test_live_modal_deploy_call_status_down() -> None:
    import nbserve

    endpoint = nbserve.deploy(CELL, "nbserve_live_test", backend="modal", max_batch_size=4)
    try:
        assert endpoint("a") == "A"
        assert endpoint.map(["b", "c"], progress=False) == ["B", "C"]
        # Modal's proxy auth: no proxy token, no answer; with one (MODAL_PROXY_TOKEN_ID and
        # _SECRET, made in Modal's settings), the HTTP contract.
        assert requests.post(endpoint.url, json={"inputs": ["d", "e"]}, timeout=300).status_code == 401
        proxy = {
            "Modal-Key": os.environ.get("MODAL_PROXY_TOKEN_ID", ""),
            "Modal-Secret": os.environ.get("MODAL_PROXY_TOKEN_SECRET", ""),
        }
        if all(proxy.values()):
            response = requests.post(endpoint.url, json={"inputs": ["d", "e"]}, headers=proxy, timeout=300)
            assert response.json() == {"outputs": ["D", "E"]}
        assert endpoint.status().state == "running"
        # Modal's statistics and logs arrive with a delay: wait for them, with a deadline.
        wait_for(lambda: endpoint.stats(window_s=600).items >= 5, 180, "Modal's statistics to count 5 items")
        wait_for(lambda: "nbserve-live batch of" in endpoint.logs(), 180, "the handler's print in Modal's logs")
        started = time.monotonic()
        nbserve.deploy(CELL.replace("upper", "lower"), "nbserve_live_test", backend="modal", max_batch_size=4)
        assert endpoint("F") == "f", f"redeploy not serving after {time.monotonic() - started:.0f} s"
    finally:
        endpoint.down()
