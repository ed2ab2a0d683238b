"""nbserve's Jupyter server extension: ``/nbserve/api/endpoints[/NAME]`` for the sidebar.

Enabled on install by ``jupyter-config/jupyter_server_config.d/nbserve.json``.
"""

from __future__ import annotations

import atexit
from pathlib import Path
from typing import Any

from nbserve.config import nbserve_home

__all__ = ["ROUTE"]

ROUTE = "nbserve/api/endpoints"


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "nbserve.server"}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    from jupyter_server.utils import url_path_join

    from nbserve.registry import default_registry
    from nbserve.server.handlers import EndpointHandler, EndpointsHandler
    from nbserve.server.live import Monitor
    from nbserve.server.service import EndpointService

    monitor = Monitor(nbserve_home() / "monitor.log")
    service = EndpointService(default_registry(), monitor, Path(serverapp.root_dir))
    web_app = serverapp.web_app
    base = url_path_join(web_app.settings["base_url"], ROUTE)
    web_app.settings["nbserve_service"] = service
    web_app.add_handlers(".*$", [(base, EndpointsHandler), (url_path_join(base, "([^/]+)"), EndpointHandler)])
    atexit.register(monitor.close)  # the monitor is a child process: end it with the server
    serverapp.log.info("nbserve: endpoints API at %s", base)
