"""Helpers for the browser tests: the JupyterLab server handle and the ``Lab`` page wrapper."""

from __future__ import annotations

import re
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
import requests

CHROMIUM = "/usr/bin/chromium"
# A name for this machine that is not a loopback name: a browser that opens JupyterLab by it
# behaves as a remote one (Binder, JupyterHub), which must reach endpoints through Jupyter.
REMOTE_HOST = "nbserve-remote.test"
CHROMIUM_ARGS = [
    "--no-sandbox",  # tests run as root
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"
# Settings for the test server only: no news or update checks (they pop up a toast that
# covers the page, and would try to reach the internet).
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false", "checkForUpdates": False},
}


def redact(text: str, token: str) -> str:
    """Server logs carry the token in URLs: never show it in full."""
    return text.replace(token, token[:4] + "…") if token else text


@dataclass
class LabServer:
    url: str  # http://127.0.0.1:PORT/ (no token)
    token: str
    root: Path
    log: Path
    process: subprocess.Popen[bytes]

    def api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """An authenticated REST call on the server (``path`` below the base URL)."""
        headers = {"Authorization": f"token {self.token}", **kwargs.pop("headers", {})}
        return requests.request(method, self.url + path.lstrip("/"), headers=headers, timeout=30, **kwargs)

    def log_tail(self, lines: int = 60) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return redact("\n".join(text.splitlines()[-lines:]), self.token)


def wait_until_up(server: LabServer, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"jupyter lab exited with {server.process.returncode}:\n{server.log_tail()}")
        try:
            if server.api("GET", "api/status").status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.2)  # polling interval of a deadline-bound wait, not a fixed pause
    raise RuntimeError(f"jupyter lab did not answer within {timeout} s:\n{server.log_tail()}")


@dataclass
class Lab:
    """One JupyterLab page, with helpers that wait on conditions (each with a deadline)."""

    page: Any  # playwright.sync_api.Page
    server: LabServer
    console_errors: list[str] = field(default_factory=list)

    # -- waiting ------------------------------------------------------------------------
    def wait_js(self, expression: str, timeout: float, what: str, arg: Any = None) -> Any:
        """Wait until the JS ``expression`` (a function of ``arg``) is truthy; return its value."""
        from playwright.sync_api import TimeoutError as PlaywrightTimeout

        try:
            handle = self.page.wait_for_function(expression, arg=arg, timeout=timeout * 1000, polling=100)
        except PlaywrightTimeout:
            raise AssertionError(
                f"timed out after {timeout} s waiting for {what}\n"
                f"browser console errors: {self.console_errors[-10:]}\nserver log:\n{self.server.log_tail(30)}"
            ) from None
        return handle.json_value()

    def execute(self, command: str, args: dict[str, Any] | None = None) -> Any:
        """Run a JupyterLab command and return its JSON-able result (if any)."""
        return self.page.evaluate(
            "async ([id, args]) => { const r = await window.jupyterapp.commands.execute(id, args);"
            " try { return JSON.parse(JSON.stringify(r ?? null)); } catch { return null; } }",
            [command, args or {}],
        )

    def screenshot(self, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', name)}.png"
        self.page.screenshot(path=str(path))
        return path

    # -- notebooks ----------------------------------------------------------------------
    def write_notebook(self, name: str, cells: list[str]) -> str:
        """Write a notebook of code ``cells`` into the server's root; return its path there."""
        notebook = nbformat.v4.new_notebook()
        notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        notebook.cells = [nbformat.v4.new_code_cell(source) for source in cells]
        nbformat.write(notebook, self.server.root / name)
        return name

    def open_notebook(self, path: str, timeout: float = 60) -> None:
        """Open ``path`` and wait until it is the current widget and its kernel is idle."""
        self.execute("docmanager:open", {"path": path, "factory": "Notebook"})
        self.wait_js(
            """(path) => {
                const w = window.jupyterapp.shell.currentWidget;
                const kernel = w && w.context && w.context.path === path && w.sessionContext.session?.kernel;
                return kernel && kernel.connectionStatus === 'connected' && kernel.status === 'idle';
            }""",
            timeout,
            f"notebook {path} to open with an idle kernel",
            arg=path,
        )

    def run_all_cells(self, timeout: float = 180) -> list[dict[str, Any]]:
        """Run every cell of the current notebook; wait until all ran and the kernel is idle.

        Returns the outputs of each code cell (as nbformat dicts). A cell that raised fails
        the test with its error.
        """
        self.execute("notebook:run-all-cells")
        self.wait_js(
            """() => {
                const w = window.jupyterapp.shell.currentWidget;
                const cells = w.content.widgets.filter(c => c.model.type === 'code');
                const kernel = w.sessionContext.session?.kernel;
                return kernel && kernel.status === 'idle' &&
                    cells.every(c => c.model.executionCount !== null && !c.node.classList.contains('jp-mod-pending'));
            }""",
            timeout,
            "every cell to run",
        )
        outputs: list[dict[str, Any]] = self.page.evaluate(
            """() => window.jupyterapp.shell.currentWidget.content.widgets
                .filter(c => c.model.type === 'code').map(c => c.model.outputs.toJSON())"""
        )
        errors = [o for cell in outputs for o in cell if o.get("output_type") == "error"]
        assert not errors, f"a cell raised: {errors[0].get('ename')}: {errors[0].get('evalue')}"
        return outputs
