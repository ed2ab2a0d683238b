"""The values every layer passes around: what an endpoint is, its state, its figures.

Plain frozen dataclasses and one protocol, no behaviour beyond formatting: backends build
them, the notebook's ``Endpoint``, the dashboard, the verbs and the Jupyter server read them.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

__all__ = [
    "STATES",
    "DeployEvent",
    "EndpointInfo",
    "EndpointStats",
    "EndpointStatus",
    "ReplicaCounts",
    "SeriesPoint",
    "Watchable",
]

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
    public: bool = False  # HTTP without the token (--public)
    retry: bool = True  # a call whose replica died is re-run once (--no-retry turns it off)
    streams: bool = False  # the handler yields: NAME.stream(x) and SSE give its chunks as they come
    openai: str | None = None  # OpenAI's API it also answers (--openai): embeddings, chat, completions
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


@dataclass(frozen=True)
class EndpointStats:
    """An endpoint's figures over the last ``window_s`` seconds, plus totals since it was first seen.

    Latencies are in milliseconds and ``None`` while the window holds no request; rates are
    per second of the window (or of the endpoint's life, when that is shorter).
    """

    name: str
    window_s: float
    state: str = "unknown"  # the backend's view, as in EndpointStatus
    replicas_running: int = 0
    replicas_target: int = 0
    replicas_starting: int = 0
    replicas_recovering: int = 0
    requests: int = 0  # totals, since the endpoint was first deployed on this cluster
    items: int = 0
    errors: int = 0
    window_requests: int = 0
    requests_per_s: float = 0.0
    items_per_s: float = 0.0
    error_rate: float = 0.0
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    batch_mean: float | None = None
    batch_max: int | None = None
    replicas_reporting: int = 0
    # Streams (generator handlers): those that finished in the window, those open now, the
    # time to their first chunk, and chunks sent per second.
    window_streams: int = 0
    streams_in_flight: int = 0
    first_chunk_p50_ms: float | None = None
    first_chunk_p95_ms: float | None = None
    chunks_per_s: float = 0.0
    updated_at: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def with_status(self, status: EndpointStatus) -> EndpointStats:
        """These figures with the state and replica counts of ``status``."""
        counts = status.replicas
        return EndpointStats(
            **{
                **self.to_dict(),
                "state": status.state,
                "replicas_running": counts.running,
                "replicas_target": counts.target,
                "replicas_starting": counts.starting,
                "replicas_recovering": counts.recovering,
            }
        )


@dataclass(frozen=True)
class SeriesPoint:
    """One step of the plot: the requests that finished in ``(t - step_s, t]``."""

    t: float
    requests_per_s: float
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    step_s: float


class Watchable(Protocol):
    """What a live view (the dashboard) needs of an endpoint: ``Endpoint`` is one."""

    @property
    def name(self) -> str: ...

    @property
    def key(self) -> tuple[str, str, str]:
        """Backend, cluster address ('' for the default) and name: one endpoint, wherever it runs."""
        ...

    @property
    def refresh_s(self) -> float:
        """How often its figures change: a view polls no faster."""
        ...

    def info(self, *, fresh: bool = True) -> EndpointInfo: ...

    def stats(self, window_s: float = ...) -> EndpointStats: ...

    def series(self, span_s: float = ..., step_s: float = ...) -> list[SeriesPoint]: ...
