"""Browser fixtures: a real JupyterLab server driven by Debian's Chromium through Playwright.

- ``lab_server`` (session): ``jupyter lab`` on 127.0.0.1, a free port, a random token and a
  temporary root folder. It inherits this session's ``NBSERVE_*`` variables (set by the root
  conftest), so its kernels deploy onto the test cluster and share the test registry.
- ``browser`` (per test): headless Chromium. Playwright cannot download its own browsers here,
  so it drives ``/usr/bin/chromium`` (``apt-get install chromium``; ``make install`` does it).
- ``lab`` (per test): a fresh page on JupyterLab, wrapped in ``Lab`` with helpers to write,
  open and run notebooks and to wait on conditions with deadlines. A screenshot of the page
  at the end of every test lands in ``test-artifacts/browser/``.

The app is exposed as ``window.jupyterapp`` (``--LabApp.expose_app_in_browser``), so tests
drive JupyterLab through its commands rather than through fragile clicks where they can.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.helpers import free_port
from tests.support.lab import CHROMIUM, CHROMIUM_ARGS, LAB_SETTINGS, REMOTE_HOST, Lab, LabServer, wait_until_up


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/browser/" in item.nodeid.replace(os.sep, "/"):
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def lab_server() -> Iterator[LabServer]:
    base = Path(tempfile.mkdtemp(prefix="nbserve-lab-"))
    root, settings = base / "root", base / "settings"
    root.mkdir()
    for name, values in LAB_SETTINGS.items():
        path = settings / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    port, token = free_port(), secrets.token_hex(24)
    env = {
        **os.environ,
        # Keep the user's own Jupyter config and runtime files out of the test server; the
        # environment's config (sys.prefix/etc/jupyter, where the extension enables itself)
        # is still read.
        "JUPYTER_CONFIG_DIR": str(base / "config"),
        "JUPYTER_RUNTIME_DIR": str(base / "runtime"),
    }
    log = base / "server.log"
    command = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--ServerApp.root_dir={root}",
        f"--LabApp.user_settings_dir={settings}",
        f"--LabApp.workspaces_dir={base / 'workspaces'}",
        "--LabApp.expose_app_in_browser=True",
        # The remote-browser test opens Lab by another name of this machine (still on loopback).
        f"--ServerApp.local_hostnames=['localhost', '{REMOTE_HOST}']",
    ]
    if os.geteuid() == 0:
        command.append("--allow-root")  # CI and fresh machines here run as root
    with log.open("wb") as out:
        # The token goes through the environment so that it never shows in `ps`.
        process = subprocess.Popen(
            command, env={**env, "JUPYTER_TOKEN": token}, stdout=out, stderr=subprocess.STDOUT, cwd=root
        )
    server = LabServer(url=f"http://127.0.0.1:{port}/", token=token, root=root, log=log, process=process)
    try:
        wait_until_up(server, timeout=90)
        yield server
    finally:
        process.terminate()  # SIGTERM: the server shuts its kernels down first
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# Per test, not per session: Playwright's sync API keeps an asyncio loop running in the main
# thread while it is open, which breaks the event-loop fixtures of later tests (pytest-jupyter).
@contextlib.contextmanager
def chromium(*extra_args: str) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make install` (it runs `apt-get install -y chromium`)")
    with sync_playwright() as playwright:
        args = [*CHROMIUM_ARGS, *extra_args]
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=args, headless=True)
        try:
            yield browser
        finally:
            browser.close()


@contextlib.contextmanager
def lab_page(browser: Any, server: LabServer, name: str, origin: str | None = None) -> Iterator[Lab]:
    """JupyterLab in a fresh page, opened at ``origin`` (default: the server's own URL)."""
    context = browser.new_context(viewport={"width": 1440, "height": 900}, record_video_dir=None)
    page = context.new_page()
    page.set_default_timeout(30_000)
    lab = Lab(page=page, server=server)
    page.on("console", lambda m: lab.console_errors.append(m.text) if m.type == "error" else None)
    page.goto(f"{origin or server.url}lab?token={server.token}")
    lab.wait_js(
        "() => window.jupyterapp && window.jupyterapp.started && document.querySelector('#jp-main-dock-panel')",
        60,
        "JupyterLab to start",
    )
    page.evaluate("() => window.jupyterapp.restored")
    try:
        yield lab
    finally:
        try:
            lab.screenshot(f"{name}-end")
        finally:
            context.close()
            # Kernels of this test go with it; the endpoints they deployed are the test's own business.
            for session in server.api("GET", "api/sessions").json():
                server.api("DELETE", f"api/sessions/{session['id']}")


@pytest.fixture
def lab(lab_server: LabServer, request: pytest.FixtureRequest) -> Iterator[Lab]:
    with chromium() as browser, lab_page(browser, lab_server, request.node.name) as page:
        yield page


@pytest.fixture
def remote_lab(lab_server: LabServer, request: pytest.FixtureRequest) -> Iterator[Lab]:
    """JupyterLab as a browser on another machine sees it: opened by a name that is not a
    loopback name (``REMOTE_HOST``, which this Chromium alone resolves to 127.0.0.1)."""
    port = lab_server.url.rstrip("/").rsplit(":", 1)[1]
    with (
        chromium(f"--host-resolver-rules=MAP {REMOTE_HOST} 127.0.0.1") as browser,
        lab_page(browser, lab_server, request.node.name, f"http://{REMOTE_HOST}:{port}/") as page,
    ):
        yield page
