"""What a ``%%serve`` line asks for, as one frozen value in neutral units (seconds, bytes).

``ServeSpec`` does no I/O and knows no backend: each backend translates it into its own
options and checks its own rules (``nbserve.backends.*.options``). The flags that build it
are ``nbserve._flags``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from nbserve.runtime.bundle import DEFAULT_BATCH_WAIT_S, DEFAULT_MAX_BATCH_SIZE, DEFAULT_TIMEOUT_S, RuntimeOptions

__all__ = [
    "BACKENDS",
    "DEFAULT_SETUP_TIMEOUT_S",
    "OPENAI_ROUTES",
    "BatchConfig",
    "GpuRequest",
    "ReplicaRange",
    "ServeSpec",
]

BACKENDS = ("ray", "modal", "local")
# The OpenAI APIs an endpoint can answer beside its own contract (--openai).
OPENAI_ROUTES = ("embeddings", "chat", "completions")
# A setup that loads a large model may take minutes; one that takes ten is more likely hung.
DEFAULT_SETUP_TIMEOUT_S = 600.0
# Inputs a replica keeps waiting beyond the batch it runs (--max-queued's default): two more
# batches. Measured under wrk -c500 (benchmarks/chaos.py): answered requests then wait about
# three batches, and the rest are turned away at once instead of queueing without end.
QUEUED_BATCHES = 2
# Unbatched handlers are often async and run many calls at once (a pipeline's outer step):
# a queue as deep as two default batches keeps a few dozen concurrent callers all answered.
UNBATCHED_QUEUE = 64


@dataclass(frozen=True)
class GpuRequest:
    """GPUs for one replica: a count (a fraction shares one GPU) and an optional type."""

    count: float
    type: str | None = None  # in upper case; each backend maps it to its own names
    text: str = field(default="", compare=False)  # as the user wrote it, for messages

    @property
    def is_fractional(self) -> bool:
        return not float(self.count).is_integer()

    @property
    def as_written(self) -> str:
        return self.text or str(self)

    def __str__(self) -> str:
        count = f"{self.count:g}"
        return f"{self.type}:{count}" if self.type else count


@dataclass(frozen=True)
class ReplicaRange:
    """A fixed replica count (``min == max``) or an autoscaling range."""

    min: int
    max: int

    @property
    def autoscaling(self) -> bool:
        return self.min != self.max

    def __str__(self) -> str:
        return f"{self.min}:{self.max}" if self.autoscaling else str(self.min)


@dataclass(frozen=True)
class BatchConfig:
    """Dynamic batching: up to ``max_size`` inputs, waiting at most ``wait_s`` to fill."""

    max_size: int = DEFAULT_MAX_BATCH_SIZE
    wait_s: float = DEFAULT_BATCH_WAIT_S


@dataclass(frozen=True)
class ServeSpec:
    """Everything the magic line says about one endpoint."""

    name: str
    backend: str = "ray"
    handler: str | None = None
    batch: BatchConfig | None = field(default_factory=BatchConfig)
    gpu: GpuRequest | None = None
    cpus: float | None = None
    memory_bytes: int | None = None
    replicas: ReplicaRange = ReplicaRange(1, 1)
    target_ongoing: float | None = None
    scaledown_window_s: int | None = None  # idle seconds before a replica above MIN goes
    route: str = ""
    address: str | None = None  # a Ray cluster named on the line (the backend also reads RAY_ADDRESS)
    pip: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    uses: tuple[str, ...] = ()
    public: bool = False  # HTTP answers without the token
    timeout_s: float = DEFAULT_TIMEOUT_S  # per request; past it the input fails alone
    max_queued: int | None = None  # None: QUEUED_BATCHES batches (or UNBATCHED_QUEUE inputs)
    retry: bool = True  # re-run a call whose replica died (--no-retry for side effects)
    setup_timeout_s: float = DEFAULT_SETUP_TIMEOUT_S
    openai: str | None = None  # one of OPENAI_ROUTES: OpenAI's API beside the endpoint's contract

    def __post_init__(self) -> None:
        if not self.route:
            object.__setattr__(self, "route", f"/{self.name}")

    @property
    def batched(self) -> bool:
        return self.batch is not None

    @property
    def env_vars(self) -> dict[str, str]:
        return dict(self.env)

    @property
    def queue_limit(self) -> int:
        """Inputs a replica keeps waiting beyond the batch it runs; more are turned away (503)."""
        if self.max_queued is not None:
            return self.max_queued
        return QUEUED_BATCHES * self.batch.max_size if self.batch else UNBATCHED_QUEUE

    def resource_line(self) -> str:
        """A one-line summary, e.g. ``0.25 GPU · 1 CPU · batch 32 / 5 ms · replicas 1:4``."""
        parts = []
        if self.gpu is not None:
            parts.append(f"{self.gpu} GPU")
        parts.append(f"{self.cpus if self.cpus is not None else 1:g} CPU")
        if self.memory_bytes:
            parts.append(f"{self.memory_bytes / 2**30:.3g} GiB")
        if self.batch is not None:
            parts.append(f"batch {self.batch.max_size} / {self.batch.wait_s * 1000:g} ms")
        else:
            parts.append("no batching")
        parts.append(f"replicas {self.replicas}")
        if self.public:
            parts.append("public")
        return " · ".join(parts)

    def runtime_options(self, hosts: tuple[str, ...] = ()) -> RuntimeOptions:
        """What the runtime needs to serve the cell (it never sees the flags); ``hosts`` are
        the Host names its HTTP route accepts besides IP addresses and localhost."""
        return RuntimeOptions(
            name=self.name,
            max_batch_size=self.batch.max_size if self.batch else None,
            batch_wait_s=self.batch.wait_s if self.batch else DEFAULT_BATCH_WAIT_S,
            uses=self.uses,
            resources=self.resource_line(),
            public=self.public,
            hosts=hosts,
            timeout_s=self.timeout_s,
            max_queued=self.queue_limit,
            setup_timeout_s=self.setup_timeout_s,
            openai=self.openai,
        )
