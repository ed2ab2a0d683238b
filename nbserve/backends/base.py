"""The seam between nbserve and a serving platform: one small interface per backend.

A backend deploys cells and answers for the endpoints it runs. What every backend shares
lives here once: the registry of endpoints (written on every deploy and delete, so the
JupyterLab sidebar sees endpoints of every kernel) and how an ``EndpointInfo`` is made.
"""

from __future__ import annotations

import builtins
from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, Callable
from typing import Any, ClassVar, Protocol

from nbserve import _registry
from nbserve._errors import CommandError
from nbserve._metrics import DEFAULT_WINDOW_S
from nbserve._spec import ServeSpec
from nbserve._types import DeployEvent, EndpointInfo, EndpointStats, EndpointStatus, SeriesPoint
from nbserve.runtime import CellBundle, Outcome

__all__ = ["Backend", "EndpointClient", "endpoint_info"]


class EndpointClient(Protocol):
    """Calls into a deployed endpoint; used on nbserve's background event loop only."""

    async def call(self, item: Any) -> Outcome: ...

    async def call_batch(self, items: list[Any]) -> list[Outcome]: ...

    def stream(self, item: Any) -> AsyncGenerator[Any, None]:
        """The chunks of one input's answer as they come; raises the error that ends it
        (``HandlerError``, ``EndpointTimeoutError``...). Closing it early stops the handler."""
        ...


def endpoint_info(
    backend: str, spec: ServeSpec, bundle: CellBundle, url: str, deployed_at: float, status: EndpointStatus
) -> EndpointInfo:
    """What a user is shown of an endpoint deployed from ``spec`` and ``bundle``."""
    return EndpointInfo(
        name=spec.name,
        backend=backend,
        url=url,
        handler=bundle.handler,
        batched=spec.batched,
        max_batch_size=spec.batch.max_size if spec.batch else 1,
        resources=spec.resource_line(),
        deployed_at=deployed_at,
        status=status,
        uses=spec.uses,
        public=spec.public,
        retry=spec.retry,
        streams=bundle.streams,
        openai=spec.openai,
    )


class Backend(ABC):
    """Deploys cells and manages their endpoints on one platform (one cluster, one account)."""

    name: ClassVar[str]
    # How often a live view (the dashboard) asks for ``stats()``: as often as the figures change.
    refresh_s: ClassVar[float] = 1.0

    @property
    def address(self) -> str | None:
        """The cluster this backend talks to, as the user named it; ``None`` for the default one."""
        return None

    def token(self) -> str | None:
        """The token its HTTP endpoints ask for (``None`` where the platform has its own auth)."""
        return None

    def prestart(self) -> None:
        """Get ready for a first deploy ahead of time (``%load_ext`` calls it in a thread);
        nothing where there is nothing to warm up."""
        return None

    def rotate_token(self) -> str:
        """Replace the token; endpoints refuse the old one from then on (within seconds)."""
        raise CommandError(f"token --rotate: the {self.name} backend's endpoints have no token of nbserve's")

    def deploy(
        self,
        spec: ServeSpec,
        bundle: CellBundle,
        on_event: Callable[[DeployEvent], None],
        *,
        restart: bool = False,
    ) -> EndpointInfo:
        """Deploy (or redeploy in place) and return once the endpoint answers.

        ``restart`` asks for new replica processes where the backend would otherwise reload
        the cell in the running ones. Raises ``DeployError`` with nothing left half-deployed:
        a new endpoint is removed, a failed update is rolled back to the version that served
        before. The endpoint is recorded for the sidebar, as this process's.
        """
        info = self._deploy(spec, bundle, on_event, restart=restart)
        _registry.record_deployed(info, address=self.address)
        return info

    def delete(self, name: str, *, force: bool = False) -> None:
        """Delete ``name``; refused with ``EndpointInUseError`` while others use it, unless forced."""
        self._delete(name, force=force)
        _registry.forget_deleted(self.name, name, address=self.address)

    @abstractmethod
    def _deploy(
        self, spec: ServeSpec, bundle: CellBundle, on_event: Callable[[DeployEvent], None], *, restart: bool
    ) -> EndpointInfo: ...

    @abstractmethod
    def _delete(self, name: str, *, force: bool) -> None: ...

    @abstractmethod
    def list(self) -> list[EndpointInfo]: ...

    @abstractmethod
    def info(self, name: str) -> EndpointInfo: ...

    def status(self, name: str) -> EndpointStatus:
        return self.info(name).status

    @abstractmethod
    def logs(self, name: str, tail: int = 200) -> str: ...

    def stats(self, name: str, window_s: float = DEFAULT_WINDOW_S) -> EndpointStats:
        """Traffic figures over the last ``window_s`` seconds with the current replica counts.

        The default knows only the status; backends that measure traffic override it.
        """
        return EndpointStats(name=name, window_s=window_s).with_status(self.status(name))

    def series(self, name: str, span_s: float = 180.0, step_s: float = 5.0) -> builtins.list[SeriesPoint]:
        """Per-step throughput and latency over the last ``span_s`` seconds (for plots)."""
        return []

    @abstractmethod
    def deployed_cell(self, name: str) -> tuple[ServeSpec, CellBundle]:
        """The spec and cell a running endpoint was deployed from (for export)."""

    @abstractmethod
    def client(self, name: str) -> EndpointClient: ...
