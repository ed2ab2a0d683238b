"""At default flags a replica's torch uses the cores its node leaves free, and gives them back
when another endpoint reserves them (``runtime/threads.py``)."""

from __future__ import annotations

import math
import os
from typing import Any

import pytest
import ray

from tests.support.helpers import wait_for

pytestmark = pytest.mark.integration

THREADS_CELL = "import torch\ndef {name}(items):\n    return [torch.get_num_threads() for _ in items]\n"


def test_a_lone_endpoint_uses_the_free_cores_and_shares_them_when_another_deploys(deploy: Any) -> None:
    first = deploy(THREADS_CELL.format(name="first"), "first", cpus=1)
    free = ray.available_resources().get("CPU", 0.0)
    alone = min(os.cpu_count() or 1, math.floor(1 + free))
    assert alone >= 2, f"the test needs a free core beside the endpoint's (free: {free})"
    # The replica follows the node at each health check (every 5 s).
    wait_for(lambda: first(0) == alone, 30, f"the lone endpoint's torch to use {alone} threads")

    second = deploy(THREADS_CELL.format(name="second"), "second", cpus=max(1, math.floor(free)))
    wait_for(lambda: first(0) == 1, 30, "the first endpoint to give the reserved cores back")
    assert second(0) == max(1, math.floor(free))  # its own CPUs, none free beside them
