"""nbserve: turn a notebook cell into a batched inference endpoint.

In a notebook::

    %load_ext nbserve

    %%serve embed --max-batch-size 32
    def embed(texts):
        return [[len(t)] for t in texts]

From Python: ``nbserve.deploy(source, ...)``, ``nbserve.endpoint(name)`` and
``nbserve.export(name, to=...)``.
"""

from __future__ import annotations

from typing import Any

from nbserve.api import deploy, endpoint, export, list_endpoints
from nbserve.endpoint import Endpoint
from nbserve.errors import (
    CellError,
    ClusterError,
    CredentialsError,
    DeployError,
    EndpointInUseError,
    EndpointNotFoundError,
    HandlerError,
    InsufficientResourcesError,
    MapError,
    NbserveError,
    SetupFailedError,
    SpecError,
)
from nbserve.spec import ServeSpec

__version__ = "0.1.0"

__all__ = [
    "CellError",
    "ClusterError",
    "CredentialsError",
    "DeployError",
    "Endpoint",
    "EndpointInUseError",
    "EndpointNotFoundError",
    "HandlerError",
    "InsufficientResourcesError",
    "MapError",
    "NbserveError",
    "ServeSpec",
    "SetupFailedError",
    "SpecError",
    "__version__",
    "deploy",
    "endpoint",
    "export",
    "list_endpoints",
    "load_ipython_extension",
]


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    """The built sidebar, for ``jupyter labextension develop`` (installs use the wheel's shared data)."""
    return [{"src": "labextension", "dest": "nbserve"}]


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext nbserve``: register ``%%serve`` and ``%serve``."""
    from nbserve.magics import ServeMagics

    ipython.register_magics(ServeMagics)
