"""The Jupyter server this kernel runs under, as far as the kernel can tell.

A kernel that Jupyter started carries ``JPY_PARENT_PID`` (the server's process); the server
lists itself in Jupyter's runtime folder with its URL, base URL included. That is enough to
name an endpoint's route on it (``<server url>nbserve/endpoints/NAME``). A kernel started
otherwise (a script, a test's own kernel manager) knows no server.

The URL is the one the server knows itself by: behind JupyterHub or Binder, a browser reaches
it at the hub's public address instead, under the same path.
"""

from __future__ import annotations

import functools
import os

from nbserve._config import JUPYTER_ROUTE

__all__ = ["jupyter_endpoint_url", "server_url"]


@functools.cache
def server_url() -> str | None:
    """The URL (with its base URL, ending in ``/``) of the Jupyter server that started this kernel."""
    parent = os.environ.get("JPY_PARENT_PID")
    if not parent:
        return None
    try:
        from jupyter_server.serverapp import list_running_servers
    except ImportError:
        return None
    for server in list_running_servers():
        if str(server.get("pid")) == parent:
            url = str(server.get("url") or "")
            return url if url.endswith("/") else url + "/"
    return None


def jupyter_endpoint_url(name: str) -> str | None:
    """The endpoint ``name`` through this kernel's Jupyter server, or ``None`` where there is none."""
    base = server_url()
    return f"{base}{JUPYTER_ROUTE}/{name}" if base else None
