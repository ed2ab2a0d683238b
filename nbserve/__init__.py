"""nbserve: turn a notebook cell into a batched inference endpoint.

In a notebook::

    %load_ext nbserve

    %%serve embed --max-batch-size 32
    def embed(texts):
        return [[len(t)] for t in texts]

From Python: ``nbserve.deploy(source, ...)``, ``nbserve.endpoint(name)`` and
``nbserve.export(name, to=...)``.

The names below (``__all__``) are the public API. Modules and packages whose names start
with an underscore are private. Three packages are reached by name from other processes:
``nbserve.runtime`` (imported by exported apps, Ray replicas and Modal containers),
``nbserve.backends`` (Ray and Modal load its classes by path) and ``nbserve.server`` (the
Jupyter server extension). Importing ``nbserve`` loads only the standard library: each name
is imported when first used, so a replica or a container pays for what it runs.
"""

from __future__ import annotations

import importlib
import os
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from nbserve._errors import (
    CellError,
    ClusterError,
    CommandError,
    ConfigError,
    CredentialsError,
    DeployError,
    EndpointInUseError,
    EndpointNotFoundError,
    EndpointOverloadedError,
    EndpointTimeoutError,
    EndpointUnavailableError,
    HandlerError,
    InsufficientResourcesError,
    MapError,
    MonitorError,
    NbserveError,
    PayloadError,
    RequestError,
    SetupFailedError,
    SpecError,
)
from nbserve._types import DeployEvent, EndpointInfo, EndpointStats, EndpointStatus, ReplicaCounts, SeriesPoint
from nbserve._version import __version__

if TYPE_CHECKING:
    from nbserve._api import deploy, endpoint, export, list_endpoints
    from nbserve._endpoint import Endpoint
    from nbserve._flags import build_spec
    from nbserve._spec import ServeSpec

__all__ = [
    "CellError",
    "ClusterError",
    "CommandError",
    "ConfigError",
    "CredentialsError",
    "DeployError",
    "DeployEvent",
    "Endpoint",
    "EndpointInUseError",
    "EndpointInfo",
    "EndpointNotFoundError",
    "EndpointOverloadedError",
    "EndpointStats",
    "EndpointStatus",
    "EndpointTimeoutError",
    "EndpointUnavailableError",
    "HandlerError",
    "InsufficientResourcesError",
    "MapError",
    "MonitorError",
    "NbserveError",
    "PayloadError",
    "ReplicaCounts",
    "RequestError",
    "SeriesPoint",
    "ServeSpec",
    "SetupFailedError",
    "SpecError",
    "__version__",
    "build_spec",
    "deploy",
    "endpoint",
    "export",
    "list_endpoints",
    "load_ipython_extension",
]

# Public names imported on first use, and the private module each lives in.
_LAZY = {
    "deploy": "nbserve._api",
    "endpoint": "nbserve._api",
    "export": "nbserve._api",
    "list_endpoints": "nbserve._api",
    "Endpoint": "nbserve._endpoint",
    "build_spec": "nbserve._flags",
    "ServeSpec": "nbserve._spec",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'nbserve' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups are plain attribute reads
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    """The built sidebar, for ``jupyter labextension develop`` (installs use the wheel's shared data)."""
    return [{"src": "labextension", "dest": "nbserve"}]


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext nbserve``: register ``%%serve`` and ``%serve``."""
    from nbserve._magics import ServeMagics

    ipython.register_magics(ServeMagics)
    _prestart(os.environ)


def _prestart(environ: Mapping[str, str]) -> threading.Thread | None:
    """Start the embedded cluster and Serve in the background (Ray's import included), so that
    the first ``%%serve`` finds them warm: silent, not with ``NBSERVE_PRESTART=0``, and never
    for a cluster that ``RAY_ADDRESS`` names. A failure is reported by the first ``%%serve``."""
    if environ.get("NBSERVE_PRESTART", "1") == "0" or environ.get("RAY_ADDRESS"):
        return None

    def start() -> None:
        from nbserve.backends import get_backend

        get_backend("ray").prestart()

    thread = threading.Thread(target=start, name="nbserve-prestart", daemon=True)
    thread.start()
    return thread
