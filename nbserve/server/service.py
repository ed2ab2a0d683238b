"""What the sidebar's routes do, in plain Python (tested without Tornado).

``EndpointService`` joins two sources: the registry (who deployed what, from which notebook)
and the cluster as the monitor sees it now (status, replicas, figures). Every answer is a
JSON-ready dict; every failure an ``NbserveError`` (the handlers map types to statuses).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from nbserve import _tokens
from nbserve._config import JUPYTER_ROUTE
from nbserve._errors import EndpointNotFoundError, NbserveError
from nbserve._registry import EMBEDDED, GONE, Entry, LiveEndpoint, Registry, owner_state

__all__ = ["PROXY_ROUTE", "EndpointService", "LiveSource", "Target"]

PROXY_ROUTE = JUPYTER_ROUTE


@dataclass(frozen=True)
class Target:
    url: str
    token: str | None  # None for a public endpoint


class LiveSource(Protocol):
    """The cluster as it is now: ``nbserve.server.live.Monitor``, or ``InProcess`` in tests."""

    def request(self, payload: dict[str, Any]) -> dict[str, Any]:
        """The answer to a monitor request (``nbserve.server.monitor``); raises ``NbserveError``."""
        ...


class EndpointService:
    """The endpoints of every kernel (the registry), checked against what ``live`` runs now.

    ``live`` watches one backend: Ray's cluster at ``RAY_ADDRESS``, else nbserve's embedded
    one, unless told otherwise. Endpoints elsewhere show what was last recorded.
    """

    def __init__(
        self,
        registry: Registry,
        live: LiveSource,
        root_dir: Path,
        environ: Mapping[str, str] = os.environ,
        *,
        backend: str = "ray",
        base_url: str = "/",
    ) -> None:
        self.registry = registry
        self.live = live
        self.root_dir = root_dir.resolve()
        self.backend = backend
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self.address = (environ.get("RAY_ADDRESS") if backend == "ray" else None) or EMBEDDED

    def _refresh(self) -> str | None:
        """Reconcile the registry with the cluster; the problem, if it could not be reached."""
        try:
            answer = self.live.request({"op": "list"})
        except NbserveError as exc:
            return str(exc)
        live = [LiveEndpoint(**endpoint) for endpoint in answer["endpoints"]]
        self.registry.observe(self.backend, live, address=self.address)
        return None

    def list(self) -> dict[str, Any]:
        problem = self._refresh()
        return {"endpoints": [self.view(e) for e in self.registry.entries()], "problem": problem}

    def get(self, name: str) -> dict[str, Any]:
        problem = self._refresh()
        entry = self.registry.get(self.backend, name, address=self.address)
        if entry is None:
            raise EndpointNotFoundError(f"no endpoint named {name!r}")
        return {**self.view(entry), "problem": problem}

    def delete(self, name: str, *, force: bool = False) -> None:
        """Delete the deployment on the cluster (whoever owns it, alive or not) and forget it.

        An entry whose deployment is already gone is forgotten; ``EndpointInUseError`` and
        other failures of the cluster are raised as they are.
        """
        try:
            self.live.request({"op": "delete", "name": name, "force": force})
        except EndpointNotFoundError:
            if not self.registry.forget(self.backend, name, address=self.address):
                raise EndpointNotFoundError(f"no endpoint named {name!r}") from None
            return
        self.registry.forget(self.backend, name, address=self.address)

    def target(self, name: str) -> Target:
        """Where the Jupyter server's route for ``name`` forwards to, and with which token.

        Endpoints of this machine's user (the embedded cluster, kernels' local endpoints) take
        the token of ``NBSERVE_HOME``; a cluster named by ``RAY_ADDRESS`` keeps its own, which the
        monitor reads from it.
        """
        entry = self.registry.get(self.backend, name, address=self.address)
        if entry is None:
            entry = next((e for e in self.registry.entries() if e.name == name and e.backend == "local"), None)
        if entry is None or entry.status == GONE:
            raise EndpointNotFoundError(f"no endpoint named {name!r} is served here")
        token: str | None = None
        if not entry.public:
            if entry.backend == self.backend and self.address != EMBEDDED:
                token = str(self.live.request({"op": "token"})["token"])
            else:
                token = _tokens.read_or_create()
        return Target(entry.url, token)

    def jupyter_path(self, name: str) -> str:
        """The endpoint's route on this Jupyter server (below its base URL)."""
        return f"{self.base_url}{PROXY_ROUTE}/{name}"

    def view(self, entry: Entry) -> dict[str, Any]:
        """An entry as the sidebar shows it."""
        owner = owner_state(entry.owner)
        watched = entry.backend == self.backend and entry.address == self.address
        return {
            "name": entry.name,
            "backend": entry.backend,
            "address": entry.address or None,
            "url": entry.url,
            "jupyter_url": self.jupyter_path(entry.name),
            "public": entry.public,
            # Only endpoints on the watched cluster are checked live; others show what was last
            # recorded. A local endpoint lives and dies with its kernel.
            "status": GONE if entry.backend == "local" and owner == "exited" else entry.status,
            "checked": watched,
            "replicas": {"running": entry.replicas_running, "target": entry.replicas_target},
            "figures": entry.figures,
            "owner": {
                "kernel_id": entry.owner.kernel_id,
                "notebook": self._notebook(entry.owner.notebook_path),
                "state": owner,
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
