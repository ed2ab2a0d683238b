"""The threads a replica's torch may use: its own CPUs and its node's free ones."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import torch

from nbserve.runtime.threads import ThreadBudget, threads_for


@pytest.mark.parametrize(
    ("reserved", "free", "machine", "threads"),
    [
        (1.0, 1.0, 2, 2),  # alone on 2 cores: both
        (1.0, 0.0, 2, 1),  # another endpoint took the other core
        (0.25, 0.5, 2, 1),  # a fraction: at least one thread
        (1.0, 6.6, 4, 4),  # never more than the machine has
        (2.0, -0.5, 8, 2),  # an over-committed node: its own CPUs still
    ],
)
def test_threads_follow_the_free_cpus(reserved: float, free: float, machine: int, threads: int) -> None:
    assert threads_for(reserved, free, machine) == threads


def _in_a_new_thread(budget: ThreadBudget, before: int | None = None) -> int:
    seen: list[int] = []

    def handler_thread() -> None:
        if before is not None:
            torch.set_num_threads(before)  # what the thread starts with
        budget.apply()
        seen.append(torch.get_num_threads())

    thread = threading.Thread(target=handler_thread)
    thread.start()
    thread.join()
    return seen[0]


def test_the_count_is_set_in_the_handlers_thread_when_ray_chose_it(monkeypatch: Any) -> None:
    original = torch.get_num_threads()
    try:
        monkeypatch.setenv("OMP_NUM_THREADS", "1")  # as Ray starts a 1-CPU replica
        budget = ThreadBudget()
        budget.wanted = 2
        assert _in_a_new_thread(budget, before=1) == 2
        budget.wanted = 1  # another endpoint took the free core
        assert _in_a_new_thread(budget, before=2) == 1
    finally:
        torch.set_num_threads(original)


def test_a_count_the_cell_chose_is_left_alone(monkeypatch: Any) -> None:
    original = torch.get_num_threads()
    try:
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        budget = ThreadBudget()
        budget.wanted = 2
        assert _in_a_new_thread(budget, before=3) == 3  # the cell called torch.set_num_threads(3)
        assert _in_a_new_thread(budget, before=3) == 3  # and keeps it: decided once
    finally:
        torch.set_num_threads(original)
