"""The seam between nbserve and a serving platform: one small interface per backend."""

from __future__ import annotations

import builtins
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Protocol

from nbserve.cell import CellBundle
from nbserve.metrics import DEFAULT_WINDOW_S, EndpointStats, SeriesPoint
from nbserve.program import Outcome
from nbserve.spec import ServeSpec

__all__ = ["Backend", "DeployEvent", "EndpointClient", "EndpointInfo", "EndpointStatus", "ReplicaCounts"]

# Endpoint states shown to users, whatever the backend calls them.
STATES = ("deploying", "running", "updating", "unhealthy", "failed", "deleting", "deleted")


@dataclass(frozen=True)
class ReplicaCounts:
    running: int = 0
    target: int = 0
    starting: int = 0
    recovering: int = 0
    stopping: int = 0

    def __str__(self) -> str:
        text = f"{self.running}/{self.target}"
        extra = [f"{n} {what}" for n, what in ((self.starting, "starting"), (self.recovering, "recovering")) if n]
        return f"{text} ({', '.join(extra)})" if extra else text


@dataclass(frozen=True)
class EndpointStatus:
    name: str
    state: str
    replicas: ReplicaCounts
    message: str = ""


@dataclass(frozen=True)
class EndpointInfo:
    """What a backend knows of one deployed endpoint."""

    name: str
    backend: str
    url: str
    handler: str
    batched: bool
    max_batch_size: int
    resources: str
    deployed_at: float
    status: EndpointStatus
    uses: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DeployEvent:
    """A step of a deployment, for progress displays."""

    phase: str
    elapsed_s: float
    running: int = 0
    target: int = 0
    message: str = ""

    def __str__(self) -> str:
        text = f"{self.phase} · {self.elapsed_s:.1f} s"
        if self.target:
            text = f"{self.phase}: replicas {self.running}/{self.target} · {self.elapsed_s:.1f} s"
        return f"{text} · {self.message}" if self.message else text


def with_status(stats: EndpointStats, status: EndpointStatus) -> EndpointStats:
    """``stats`` with the state and replica counts of ``status``."""
    counts = status.replicas
    return replace(
        stats,
        state=status.state,
        replicas_running=counts.running,
        replicas_target=counts.target,
        replicas_starting=counts.starting,
        replicas_recovering=counts.recovering,
    )


class EndpointClient(Protocol):
    """Calls into a deployed endpoint; used on nbserve's background event loop only."""

    async def call(self, item: Any) -> Outcome: ...

    async def call_batch(self, items: list[Any]) -> list[Outcome]: ...


class Backend(ABC):
    """Deploys cells and manages their endpoints on one platform (one cluster, one account)."""

    name: ClassVar[str]
    # How often a live view (the dashboard) asks for ``stats()``: as often as the figures change.
    refresh_s: ClassVar[float] = 1.0

    @abstractmethod
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
        the cell in the running ones.

        Raises ``DeployError`` with nothing left half-deployed: a new endpoint is removed, a
        failed update is rolled back to the version that served before.
        """

    @abstractmethod
    def delete(self, name: str, *, force: bool = False) -> None:
        """Delete ``name``; refused with ``EndpointInUseError`` while others use it, unless forced."""

    @abstractmethod
    def list(self) -> list[EndpointInfo]: ...

    @abstractmethod
    def info(self, name: str) -> EndpointInfo: ...

    @abstractmethod
    def status(self, name: str) -> EndpointStatus: ...

    @abstractmethod
    def logs(self, name: str, tail: int = 200) -> str: ...

    def stats(self, name: str, window_s: float = DEFAULT_WINDOW_S) -> EndpointStats:
        """Traffic figures over the last ``window_s`` seconds with the current replica counts.

        The default knows only the status; backends that measure traffic override it.
        """
        return with_status(EndpointStats(name=name, window_s=window_s), self.status(name))

    def series(self, name: str, span_s: float = 180.0, step_s: float = 5.0) -> builtins.list[SeriesPoint]:
        """Per-step throughput and latency over the last ``span_s`` seconds (for plots)."""
        return []

    @abstractmethod
    def deployed_cell(self, name: str) -> tuple[ServeSpec, CellBundle]:
        """The spec and cell a running endpoint was deployed from (for export)."""

    @abstractmethod
    def client(self, name: str) -> EndpointClient: ...
