"""Fractional GPUs placed for real on the test cluster's one logical GPU (``NBSERVE_NUM_GPUS=1``,
set by the root conftest): four ``--gpu 0.25`` replicas share it, a fifth is refused at once
with what the cluster has, each replica sees the device Ray assigned, and a cell that moves
its model to CUDA when CUDA is there runs on the CPU where it is not."""

from __future__ import annotations

import time
from typing import Any

import pytest

import nbserve
from tests.support.helpers import wait_for

pytestmark = pytest.mark.integration

DEVICE_CELL = """
import os
import torch

device = "cuda" if torch.cuda.is_available() else "cpu"  # the usual guard in a cell
layer = torch.nn.Linear(4, 2).to(device)

def where(items):
    with torch.inference_mode():
        out = layer(torch.ones(len(items), 4, device=device))
    return [{"pid": os.getpid(), "visible": os.environ.get("CUDA_VISIBLE_DEVICES"), "device": device,
             "width": out.shape[1]} for _ in items]
"""


def test_four_quarter_gpu_replicas_share_one_gpu_and_a_fifth_is_refused(deploy: Any) -> None:
    ep = deploy(DEVICE_CELL, "quarters", gpu="0.25", replicas=4, max_batch_size=4)
    assert ep.status().replicas.running == 4
    seen: dict[int, dict[str, Any]] = {}

    def every_replica_answered() -> bool:
        for answer in ep.map(list(range(32)), progress=False):
            seen[answer["pid"]] = answer
        return len(seen) == 4

    wait_for(every_replica_answered, 60, "answers from all four replicas")
    # Ray assigned each replica the one GPU (its id is 0) and the cell fell back to the CPU,
    # because nothing is behind the logical GPU.
    assert {answer["visible"] for answer in seen.values()} == {"0"}
    assert {answer["device"] for answer in seen.values()} == {"cpu"}
    assert {answer["width"] for answer in seen.values()} == {2}

    started = time.monotonic()
    with pytest.raises(nbserve.InsufficientResourcesError) as raised:
        deploy(DEVICE_CELL, "fifth_quarter", gpu="0.25")
    assert time.monotonic() - started < 30
    message = str(raised.value)
    assert "0.25 GPU" in message and "1 GPU" in message, message
    assert "fifth_quarter" not in {info.name for info in nbserve.list_endpoints()}
    assert ep.status().replicas.running == 4  # the refused deploy took nothing from them
