"""The rules of the in-process backend: one copy of the cell, in this process, as it is.

Resources (``--gpu``, ``--cpus``, ``--memory``) are accepted and shown but reserve nothing:
the cell uses whatever the kernel has. What only a cluster can do is refused with the fix,
so a line that works here works on Ray with ``--backend`` changed and nothing else.
"""

from __future__ import annotations

from nbserve._errors import SpecError
from nbserve._spec import ReplicaRange, ServeSpec
from nbserve.backends.ray.options import accelerator_type

__all__ = ["check"]

_FIX = "Drop it to try the cell here, or deploy with --backend ray."


def check(spec: ServeSpec) -> None:
    accelerator_type(spec)  # a GPU type must be one a cluster knows, though nothing is reserved here
    if spec.replicas != ReplicaRange(1, 1):
        raise SpecError(
            "--replicas", spec.replicas, "the local backend runs one copy of the cell, in this process", _FIX
        )
    refused = (
        ("--pip", " ".join(spec.pip), "the local backend runs in this kernel's environment"),
        ("--env", " ".join(f"{k}={v}" for k, v in spec.env), "the local backend shares this kernel's environment"),
        ("--address", spec.address or "", "--address names a Ray cluster"),
        ("--uses", ",".join(spec.uses), "pipelines call other endpoints by Ray handle"),
    )
    for flag, value, rule in refused:
        if value:
            raise SpecError(flag, value, rule, _FIX)
