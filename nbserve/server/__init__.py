"""nbserve's Jupyter server extension: ``/nbserve/api/endpoints[/NAME]`` for the sidebar, and
``/nbserve/endpoints/NAME`` (each endpoint, through the Jupyter server and its auth).

Enabled on install by ``jupyter-config/jupyter_server_config.d/nbserve.json``.
"""

from __future__ import annotations

import atexit
from pathlib import Path
from typing import Any

from nbserve._config import nbserve_home

__all__ = ["ROUTE"]

ROUTE = "nbserve/api/endpoints"


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "nbserve.server"}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    from jupyter_server.utils import url_path_join

    from nbserve._registry import default_registry
    from nbserve.server.handlers import EndpointHandler, EndpointProxyHandler, EndpointsHandler
    from nbserve.server.live import Monitor
    from nbserve.server.service import PROXY_ROUTE, EndpointService

    monitor = Monitor(nbserve_home() / "monitor.log")
    web_app = serverapp.web_app
    base_url = web_app.settings["base_url"]
    service = EndpointService(default_registry(), monitor, Path(serverapp.root_dir), base_url=base_url)
    base = url_path_join(base_url, ROUTE)
    proxy = url_path_join(base_url, PROXY_ROUTE, "([^/]+)")
    web_app.settings["nbserve_service"] = service
    web_app.add_handlers(
        ".*$",
        [
            (base, EndpointsHandler),
            (url_path_join(base, "([^/]+)"), EndpointHandler),
            (proxy + "(/.*)?", EndpointProxyHandler),
        ],
    )
    atexit.register(monitor.close)  # the monitor is a child process: end it with the server
    serverapp.log.info("nbserve: endpoints API at %s", base)
