"""The Jupyter server's window on Ray: a child process that answers JSON lines on stdin/stdout.

Why a child process rather than ``ray.init`` inside the Jupyter server: a Ray driver is a
heavy guest (threads, signal handlers, and a process that Ray may end when its cluster goes
away, e.g. after ``nbserve cluster stop``). Here that can only take down this monitor, which
``live.Monitor`` starts again on the next request; the server and its kernels never notice.
A ``nbserve`` subprocess per request would be isolated too, but pays ``ray.init`` (seconds)
on every poll; this one connects once and stays.

Requests and answers, one JSON object a line:
``{"op": "list"}`` -> ``{"ok": true, "cluster": bool, "endpoints": [LiveEndpoint fields]}``;
``{"op": "delete", "name": N, "force": bool}`` -> ``{"ok": true}``;
``{"op": "token"}`` -> ``{"ok": true, "token": ...}`` (the cluster's, for the server's route).
A failure answers
``{"ok": false, "error": TYPE, "message": ...}`` with the name of the ``NbserveError`` raised
(``EndpointNotFoundError``, ``EndpointInUseError``...), which ``live.Monitor`` raises again.
"""

from __future__ import annotations

import dataclasses
import json
import os
import select
import sys
from typing import IO, Any

from nbserve._endpoint import Endpoint
from nbserve._errors import ClusterError, EndpointNotFoundError, NbserveError
from nbserve._registry import LiveEndpoint
from nbserve.backends import get_backend
from nbserve.backends.base import Backend
from nbserve.backends.ray import cluster

__all__ = ["handle", "main", "watched_backend"]

IDLE_EXIT_S = 120.0  # the server starts it again on its next request


def watched_backend() -> Backend | None:
    """The Ray backend this server watches (``RAY_ADDRESS``, else the embedded cluster), or
    ``None`` while the embedded cluster is not running: it is never started just to look."""
    address = os.environ.get("RAY_ADDRESS") or None
    if address is None and cluster.embedded_status() is None:
        return None
    return get_backend("ray", address)


def _figures(endpoint: Endpoint) -> dict[str, Any]:
    try:
        figures: dict[str, Any] = endpoint.stats().to_dict()
    except Exception:  # noqa: BLE001 - figures are optional; the listing must not fail for them
        return {}
    return figures


def list_live(backend: Backend | None) -> dict[str, Any]:
    if backend is None:
        return {"ok": True, "cluster": False, "endpoints": []}
    endpoints = []
    for info in backend.list():
        live = LiveEndpoint(
            name=info.name,
            url=info.url,
            status=info.status.state,
            replicas_running=info.status.replicas.running,
            replicas_target=info.status.replicas.target,
            figures=_figures(Endpoint(backend, info)),
            public=info.public,
        )
        endpoints.append(dataclasses.asdict(live))
    return {"ok": True, "cluster": True, "endpoints": endpoints}


def delete(backend: Backend | None, name: str, force: bool) -> dict[str, Any]:
    if backend is None:
        raise EndpointNotFoundError(f"{name!r} is gone: the embedded Ray cluster is not running")
    backend.delete(name, force=force)
    return {"ok": True}


def handle(request: dict[str, Any], backend: Backend | None) -> dict[str, Any]:
    """The answer to one request about ``backend``'s endpoints; failures are answers too."""
    try:
        if request.get("op") == "list":
            return list_live(backend)
        if request.get("op") == "delete":
            return delete(backend, str(request["name"]), bool(request.get("force")))
        if request.get("op") == "token":  # for the Jupyter server's route to a cluster's endpoints
            if backend is None:
                raise ClusterError("the embedded Ray cluster is not running")
            return {"ok": True, "token": backend.token()}
        raise NbserveError(f"unknown request {request!r}")
    except Exception as exc:  # noqa: BLE001 - report any failure to the server, keep serving
        message = str(exc) if isinstance(exc, NbserveError) else f"{type(exc).__name__}: {exc}"
        return {"ok": False, "error": type(exc).__name__, "message": message}


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
            out.write(json.dumps(handle(json.loads(line), watched_backend())) + "\n")


if __name__ == "__main__":
    main()
