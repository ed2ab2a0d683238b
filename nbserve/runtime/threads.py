"""How many threads the cell's torch runs on: its own CPUs, plus those its node leaves free.

Ray starts a replica with ``OMP_NUM_THREADS`` set to its CPUs, so a 1-CPU replica runs torch
on one thread even when it has the machine to itself (measured: MiniLM's ``map`` at half the
raw model's throughput on 2 cores). The replica instead follows what its node has free: a
lone endpoint uses the idle cores; once another endpoint reserves them, the first one's next
health check lowers its count, so neither starves the other.

The count is set in the handler's own thread before each call: torch's OpenMP threads are a
per-thread setting, so setting it from any other thread would not reach the handler.
"""

from __future__ import annotations

import math
import os
import sys

__all__ = ["ThreadBudget", "threads_for"]


def threads_for(reserved_cpus: float, free_cpus: float, machine_cpus: int) -> int:
    """The replica's own CPUs and the node's free ones, whole; at least 1, at most the machine's."""
    return max(1, min(machine_cpus, math.floor(reserved_cpus + max(free_cpus, 0.0) + 1e-9)))


class ThreadBudget:
    """The thread count the replica wants for torch (``None``: leave torch as it is).

    Only a count that Ray chose is managed: where the handler's thread starts with another
    count than ``OMP_NUM_THREADS`` (the cell called ``torch.set_num_threads``, or no Ray set
    the variable), the cell's choice stands.
    """

    def __init__(self) -> None:
        self.wanted: int | None = None
        self._cell_chose: bool | None = None  # decided at the first call that has torch

    def apply(self) -> None:
        """Set torch's thread count in the calling thread (the handler's) if the cell uses torch."""
        wanted = self.wanted
        torch = sys.modules.get("torch")
        if wanted is None or torch is None or self._cell_chose:
            return
        current = torch.get_num_threads()
        if self._cell_chose is None:
            self._cell_chose = str(current) != os.environ.get("OMP_NUM_THREADS")
            if self._cell_chose:
                return
        if current != wanted:
            torch.set_num_threads(wanted)
