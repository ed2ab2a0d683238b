"""What travels to wherever a cell runs: its source and values, and how to serve it.

Plain data only, so both pickle across processes and machines without the kernel, and an
exported app can write them out as Python literals.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["DEFAULT_BATCH_WAIT_S", "DEFAULT_MAX_BATCH_SIZE", "DEFAULT_TIMEOUT_S", "CellBundle", "RuntimeOptions"]

DEFAULT_MAX_BATCH_SIZE = 32
DEFAULT_BATCH_WAIT_S = 0.005
# Long enough for a big batch of a large model on a CPU; a request that waits longer is more
# likely stuck than slow (--timeout changes it).
DEFAULT_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class CellBundle:
    """Everything a replica needs to run the cell: source, handler, captured values."""

    name: str
    source: str
    handler: str
    batched: bool
    is_async: bool
    constants: Mapping[str, Any] = field(default_factory=dict)
    modules: Mapping[str, str] = field(default_factory=dict)
    streams: bool = False  # the handler is a generator: its output goes out in chunks

    @property
    def filename(self) -> str:
        """The pseudo file name that tracebacks from the cell show."""
        return f"<serve {self.name}>"


@dataclass(frozen=True)
class RuntimeOptions:
    """How one endpoint serves its cell, in the runtime's own terms (no backend, no flags).

    The kernel derives it from the ``%%serve`` line; a replica never sees the line itself,
    so the runtime does not change when the flag table does.
    """

    name: str
    max_batch_size: int | None = DEFAULT_MAX_BATCH_SIZE  # None: one input per call (--no-batch)
    batch_wait_s: float = DEFAULT_BATCH_WAIT_S
    uses: tuple[str, ...] = ()  # endpoints the cell calls by handle (Ray pipelines)
    resources: str = ""  # the resource line GET shows, e.g. "0.25 GPU · 1 CPU · batch 32 / 5 ms"
    public: bool = False  # HTTP without the token (--public)
    hosts: tuple[str, ...] = ()  # Host names accepted besides IP addresses and localhost
    timeout_s: float = DEFAULT_TIMEOUT_S  # an input unanswered after this fails alone (504)
    max_queued: int = 2 * DEFAULT_MAX_BATCH_SIZE  # inputs waiting beyond the running batch; more: 503
    setup_timeout_s: float = 600.0  # a setup still running after this is given up
    openai: str | None = None  # "embeddings", "chat" or "completions": OpenAI's routes beside the contract

    @property
    def batched(self) -> bool:
        return self.max_batch_size is not None
