"""The Jupyter server's window on Ray: a child process that answers JSON lines on stdin/stdout.

Why a child process rather than ``ray.init`` inside the Jupyter server: a Ray driver is a
heavy guest (threads, signal handlers, and a process that Ray may end when its cluster goes
away, e.g. after ``nbserve cluster stop``). Here that can only take down this monitor, which
``live.Monitor`` starts again on the next request; the server and its kernels never notice.
A ``nbserve`` subprocess per request would be isolated too, but pays ``ray.init`` (seconds)
on every poll; this one connects once and stays.

Requests and answers, one JSON object a line:
``{"op": "list"}`` -> ``{"ok": true, "cluster": bool, "endpoints": [LiveEndpoint fields]}``;
``{"op": "delete", "name": N, "force": bool}`` -> ``{"ok": true}`` or
``{"ok": false, "error": "not_found" | "in_use" | "failed", "message": ...}``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import select
import sys
from typing import IO, Any

from nbserve.registry import LiveEndpoint

__all__ = ["handle", "main"]

IDLE_EXIT_S = 120.0  # the server starts it again on its next request


def _address() -> str | None:
    return os.environ.get("RAY_ADDRESS") or None


def _cluster_up(address: str | None) -> bool:
    """Never start the embedded cluster just to look at it."""
    if address is not None:
        return True
    from nbserve.backends.ray import cluster

    return cluster.embedded_status() is not None


def _figures(endpoint: Any) -> dict[str, Any]:
    # Endpoint.stats() (nbserve.metrics.EndpointStats) may not exist yet, or fail while
    # replicas start: the list still shows state and replicas.
    stats = getattr(endpoint, "stats", None)
    if not callable(stats):
        return {}
    try:
        figures: dict[str, Any] = stats().to_dict()
    except Exception:  # noqa: BLE001 - figures are optional; the listing must not fail for them
        return {}
    return figures


def list_live() -> dict[str, Any]:
    address = _address()
    if not _cluster_up(address):
        return {"ok": True, "cluster": False, "endpoints": []}
    from nbserve.backends import get_backend
    from nbserve.endpoint import Endpoint

    backend = get_backend("ray", address)
    endpoints = []
    for info in backend.list():
        live = LiveEndpoint(
            name=info.name,
            url=info.url,
            status=info.status.state,
            replicas_running=info.status.replicas.running,
            replicas_target=info.status.replicas.target,
            figures=_figures(Endpoint(backend, info)),
        )
        endpoints.append(dataclasses.asdict(live))
    return {"ok": True, "cluster": True, "endpoints": endpoints}


def delete(name: str, force: bool) -> dict[str, Any]:
    from nbserve.backends import get_backend
    from nbserve.errors import EndpointInUseError, EndpointNotFoundError

    if not _cluster_up(_address()):
        return {"ok": False, "error": "not_found", "message": "the embedded Ray cluster is not running"}
    try:
        get_backend("ray", _address()).delete(name, force=force)
    except EndpointNotFoundError as exc:
        return {"ok": False, "error": "not_found", "message": str(exc)}
    except EndpointInUseError as exc:
        return {"ok": False, "error": "in_use", "message": str(exc)}
    return {"ok": True}


def handle(request: dict[str, Any]) -> dict[str, Any]:
    try:
        if request.get("op") == "list":
            return list_live()
        if request.get("op") == "delete":
            return delete(str(request["name"]), bool(request.get("force")))
        return {"ok": False, "error": "failed", "message": f"unknown request {request!r}"}
    except Exception as exc:  # noqa: BLE001 - report any failure to the server, keep serving
        return {"ok": False, "error": "failed", "message": f"{type(exc).__name__}: {exc}"}


def main(stdin: IO[str] = sys.stdin, idle_exit_s: float = IDLE_EXIT_S) -> None:
    # Answers go out on a private copy of stdout; whatever Ray or a library prints lands on
    # stderr instead of corrupting the protocol.
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    while True:
        # Nobody polling (the panel is closed, or the server is gone): free the Ray driver.
        ready, _, _ = select.select([stdin], [], [], idle_exit_s)
        line = stdin.readline() if ready else ""
        if not line:
            return
        if line.strip():
            out.write(json.dumps(handle(json.loads(line))) + "\n")


if __name__ == "__main__":
    main()
