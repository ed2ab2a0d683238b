"""A ``ServeSpec`` in Modal's terms, and the rules only Modal has (plain data: Modal is not imported).

Checked when the spec is built, so a cell that Modal cannot honour (a fraction of a GPU, a
card Modal does not rent) is a ``UsageError`` before anything is built or deployed.
"""

from __future__ import annotations

import math
from typing import Any

from nbserve._errors import SpecError
from nbserve._spec import ServeSpec

__all__ = [
    "CLASS_NAME",
    "DEFAULT_SCALEDOWN_WINDOW_S",
    "DEFAULT_STARTUP_TIMEOUT_S",
    "MODAL_GPU_TYPES",
    "STREAM_METHOD",
    "WEB_FUNCTION_NAME",
    "batch_options",
    "check",
    "cls_options",
    "modal_app_name",
    "modal_gpu",
    "service_method_name",
]

# The class's tag in the app (``modal.Cls.from_name(app, CLASS_NAME)``) and the web function's.
CLASS_NAME = "CellService"
WEB_FUNCTION_NAME = "web"
BATCHED_METHOD = "handle_batch"
SINGLE_METHOD = "handle"
STREAM_METHOD = "handle_stream"  # a streaming cell's generator method (with --no-batch)

# Idle seconds before Modal stops a container above min_containers: long enough that a
# notebook's bursts of calls reuse a warm (model-loaded) container.
DEFAULT_SCALEDOWN_WINDOW_S = 300
# A cell's setup often downloads and loads a model, which can exceed Modal's 300 s default.
DEFAULT_STARTUP_TIMEOUT_S = 20 * 60
# modal.batched refuses larger batches (modal._partial_function.MAX_MAX_BATCH_SIZE).
MODAL_MAX_BATCH_SIZE = 1000
MODAL_MAX_NAME_LENGTH = 64

# nbserve's (Ray's) spellings that Modal writes differently.
_MODAL_GPU_NAMES = {"A100-40G": "A100-40GB", "A100-80G": "A100-80GB"}
# The GPU types Modal offers (https://modal.com/docs/guide/gpu), in Modal's spelling.
MODAL_GPU_TYPES = (
    "T4", "L4", "A10G", "L40S", "A100", "A100-40GB", "A100-80GB", "RTX-PRO-6000", "H100", "H200", "B200",
)  # fmt: skip


def check(spec: ServeSpec) -> None:
    """Refuse what Modal cannot do, with the fix."""
    modal_app_name(spec)
    modal_gpu(spec)
    batch_options(spec)
    if spec.uses:
        raise SpecError(
            "--uses",
            ",".join(spec.uses),
            "pipelines run on the Ray backend only for now",
            "Deploy the steps with --backend ray (the default).",
        )
    if spec.address is not None:
        raise SpecError("--address", spec.address, "--address names a Ray cluster", "Drop it with --backend modal.")


def modal_app_name(spec: ServeSpec) -> str:
    name = f"nbserve-{spec.name}"
    if len(name) > MODAL_MAX_NAME_LENGTH:
        raise SpecError(
            "NAME",
            spec.name,
            f"the Modal app is named {name!r}, above Modal's limit of {MODAL_MAX_NAME_LENGTH} characters",
            f"Use an endpoint name of at most {MODAL_MAX_NAME_LENGTH - len('nbserve-')} characters.",
        )
    return name


def modal_gpu(spec: ServeSpec) -> str | None:
    """Modal's ``gpu=`` string for the spec's GPUs, e.g. ``"A10G"`` or ``"A100-80GB:2"``."""
    gpu = spec.gpu
    if gpu is None:
        return None
    if gpu.is_fractional:
        raise SpecError(
            "--gpu",
            gpu.as_written,
            "Modal gives each container whole GPUs, so a fraction cannot be honoured",
            "Name a GPU type instead, e.g. --gpu T4 or --gpu A10G (small, cheap GPUs), "
            "or use --backend ray to share one GPU between replicas.",
        )
    if gpu.type is None:
        raise SpecError(
            "--gpu",
            gpu.as_written,
            "Modal needs a GPU type: a bare count does not say which card to rent",
            f"Name one, e.g. --gpu T4 or --gpu A10G (small, cheap GPUs){_count_hint(gpu.count)}.",
        )
    name = _MODAL_GPU_NAMES.get(gpu.type, gpu.type)
    if name not in MODAL_GPU_TYPES:
        raise SpecError(
            "--gpu",
            gpu.as_written,
            f"Modal offers no {gpu.type} GPUs (it offers {', '.join(MODAL_GPU_TYPES)})",
            "Pick one of those, or use --backend ray on a cluster that has this card.",
        )
    count = int(gpu.count)
    return name if count == 1 else f"{name}:{count}"


def _count_hint(count: float) -> str:
    return f", or --gpu A10G:{int(count)} for {int(count)} of them" if count > 1 else ""


def cls_options(spec: ServeSpec) -> dict[str, Any]:
    """Keyword arguments of ``@app.cls`` for the class that runs the cell."""
    return {
        "gpu": modal_gpu(spec),
        # Modal reads 0 (and None) as its default share; Ray's --cpus 0 means "no reservation".
        "cpu": spec.cpus or None,
        # Modal takes MiB; round up so the container never gets less than asked for.
        "memory": math.ceil(spec.memory_bytes / 2**20) if spec.memory_bytes else None,
        "min_containers": spec.replicas.min,
        "max_containers": spec.replicas.max,
        "scaledown_window": spec.scaledown_window_s or DEFAULT_SCALEDOWN_WINDOW_S,
        "startup_timeout": DEFAULT_STARTUP_TIMEOUT_S,
    }


def batch_options(spec: ServeSpec) -> dict[str, int] | None:
    """Keyword arguments of ``@modal.batched``, or None with ``--no-batch``."""
    if spec.batch is None:
        return None
    if spec.batch.max_size > MODAL_MAX_BATCH_SIZE:
        raise SpecError(
            "--max-batch-size",
            spec.batch.max_size,
            f"Modal batches at most {MODAL_MAX_BATCH_SIZE} inputs",
            f"Use --max-batch-size {MODAL_MAX_BATCH_SIZE} or less, or --backend ray.",
        )
    # Modal counts whole milliseconds; round so 0.005 s is 5 ms, not 4 from float error.
    return {"max_batch_size": spec.batch.max_size, "wait_ms": round(spec.batch.wait_s * 1000)}


def service_method_name(spec: ServeSpec) -> str:
    """The class's method that callers invoke with one input (batched or not)."""
    return BATCHED_METHOD if spec.batch is not None else SINGLE_METHOD
