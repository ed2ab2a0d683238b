"""What the sidebar's routes do, in plain Python (tested without Tornado).

``EndpointService`` joins two sources: the registry (who deployed what, from which notebook)
and the cluster as the monitor sees it now (status, replicas, figures). Every answer is a
JSON-ready dict.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from nbserve.registry import EMBEDDED, Entry, LiveEndpoint, Registry, owner_state

__all__ = ["EndpointInUse", "EndpointService", "LiveSource", "NotFound", "ServiceError"]

BACKEND = "ray"


class LiveSource(Protocol):
    def request(self, payload: dict[str, Any]) -> dict[str, Any]: ...


class ServiceError(Exception):
    status = 502


class NotFound(ServiceError):
    status = 404


class EndpointInUse(ServiceError):
    status = 409


class EndpointService:
    def __init__(
        self, registry: Registry, live: LiveSource, root_dir: Path, environ: Mapping[str, str] = os.environ
    ) -> None:
        self.registry = registry
        self.live = live
        self.root_dir = root_dir.resolve()
        # The cluster this server watches: RAY_ADDRESS, else nbserve's embedded cluster.
        self.address = environ.get("RAY_ADDRESS") or EMBEDDED

    def _refresh(self) -> str | None:
        """Reconcile the registry with the cluster; the problem, if it could not be reached."""
        from nbserve.server.live import MonitorError

        try:
            answer = self.live.request({"op": "list"})
        except MonitorError as exc:
            return str(exc)
        if not answer.get("ok"):
            return str(answer.get("message", "the cluster could not be listed"))
        live = [LiveEndpoint(**endpoint) for endpoint in answer["endpoints"]]
        self.registry.observe(BACKEND, live, address=self.address)
        return None

    def list(self) -> dict[str, Any]:
        problem = self._refresh()
        return {"endpoints": [self.view(e) for e in self.registry.entries()], "problem": problem}

    def get(self, name: str) -> dict[str, Any]:
        problem = self._refresh()
        entry = self.registry.get(BACKEND, name, address=self.address)
        if entry is None:
            raise NotFound(f"no endpoint named {name!r}")
        return {**self.view(entry), "problem": problem}

    def delete(self, name: str, *, force: bool = False) -> None:
        """Delete the deployment on the cluster (whoever owns it, alive or not) and forget it."""
        answer = self.live.request({"op": "delete", "name": name, "force": force})
        if answer.get("ok") or answer.get("error") == "not_found":
            forgotten = self.registry.forget(BACKEND, name, address=self.address)
            if not answer.get("ok") and not forgotten:
                raise NotFound(f"no endpoint named {name!r}")
            return
        if answer.get("error") == "in_use":
            raise EndpointInUse(str(answer.get("message")))
        raise ServiceError(str(answer.get("message")))

    def view(self, entry: Entry) -> dict[str, Any]:
        """An entry as the sidebar shows it."""
        watched = entry.backend == BACKEND and entry.address == self.address
        return {
            "name": entry.name,
            "backend": entry.backend,
            "address": entry.address or None,
            "url": entry.url,
            # Only endpoints on the watched cluster are checked live; others show what was last recorded.
            "status": entry.status,
            "checked": watched,
            "replicas": {"running": entry.replicas_running, "target": entry.replicas_target},
            "figures": entry.figures,
            "owner": {
                "kernel_id": entry.owner.kernel_id,
                "notebook": self._notebook(entry.owner.notebook_path),
                "state": owner_state(entry.owner),
            },
            "created_at": entry.created_at,
            "updated_at": entry.updated_at,
        }

    def _notebook(self, path: str | None) -> str | None:
        """A notebook path relative to the server's root (what JupyterLab opens), when it is below it."""
        if not path:
            return None
        absolute = Path(path) if os.path.isabs(path) else self.root_dir / path
        try:
            return absolute.resolve().relative_to(self.root_dir).as_posix()
        except ValueError:
            return None  # a notebook of another server: not openable here
