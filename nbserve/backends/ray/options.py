"""A ``ServeSpec`` in Ray Serve's terms, and the rules only Ray has (plain data, no Ray calls)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nbserve._errors import SpecError
from nbserve._spec import ServeSpec

__all__ = [
    "CELL_DEPLOYMENT",
    "accelerator_type",
    "check",
    "cluster_address",
    "deployment_options",
    "max_ongoing_requests",
    "ray_actor_options",
    "replica_demand",
]

# Every nbserve application holds one deployment of this name; it marks our applications
# among others on a shared cluster.
CELL_DEPLOYMENT = "nbserve_cell"
# Ray's own default for unbatched deployments.
UNBATCHED_MAX_ONGOING = 5
HEALTH_CHECK_PERIOD_S = 5.0
# Ray's default autoscaling target for unbatched deployments.
UNBATCHED_TARGET_ONGOING = 2.0

# GPU types as Ray's accelerator_type names them (ray.util.accelerators). A type outside
# this list is far more often a typo than a card.
KNOWN_GPU_TYPES = (
    "T4", "L4", "A10G", "A100", "A100-40G", "A100-80G", "L40S", "H100", "H200", "H20",
    "B200", "B300", "GB200", "V100", "P100", "P4", "K80", "RTX-PRO-6000",
    "AMD-Instinct-MI100", "AMD-Instinct-MI210", "AMD-Instinct-MI250X-MI250", "AMD-Instinct-MI300A",
)  # fmt: skip
_BY_UPPER = {t.upper(): t for t in KNOWN_GPU_TYPES} | {"A100-40GB": "A100-40G", "A100-80GB": "A100-80G"}


def accelerator_type(spec: ServeSpec) -> str | None:
    """Ray's name for the GPU type the spec asks for (``a100-80gb`` is ``A100-80G``)."""
    if spec.gpu is None or spec.gpu.type is None:
        return None
    name = _BY_UPPER.get(spec.gpu.type.upper())
    if name is None:
        raise SpecError(
            "--gpu",
            spec.gpu.as_written,
            f"{spec.gpu.as_written.partition(':')[0]!r} is not a GPU type nbserve knows "
            f"(known: {', '.join(KNOWN_GPU_TYPES[:11])}, ...)",
            "Write a count such as --gpu 1 or --gpu 0.25, or a known type such as --gpu A10G or --gpu H100:2.",
        )
    return name


def cluster_address(address: str | None, environ: Mapping[str, str]) -> str | None:
    """The cluster a Ray endpoint goes to: ``--address``, else ``RAY_ADDRESS``, else ``None``
    (nbserve's embedded cluster)."""
    return address or environ.get("RAY_ADDRESS") or None


def check(spec: ServeSpec) -> None:
    """Refuse what Ray cannot do, before anything deploys."""
    accelerator_type(spec)


# Requests Serve passes to a replica beyond what the replica keeps (its batch and its queue):
# the replica turns them away at once with nbserve's JSON 503 and Retry-After, where Serve's
# proxy would otherwise hold them in a queue of its own that only grows.
SHED_HEADROOM = 1000
# Past the headroom Serve itself refuses requests (its own 503, as text): the last bound.
SERVE_MAX_QUEUED = 1000


def max_ongoing_requests(spec: ServeSpec) -> int:
    """Requests Serve sends one replica at once: every input it keeps, and the headroom.

    No batch can be larger than this (it must cover a full batch computed while the next
    fills), and inputs beyond the replica's queue must reach it to be turned away quickly.
    """
    kept = (spec.batch.max_size if spec.batch else 1) + spec.queue_limit
    return max(kept, 2 * spec.batch.max_size if spec.batch else UNBATCHED_MAX_ONGOING) + SHED_HEADROOM


def ray_actor_options(spec: ServeSpec) -> dict[str, Any]:
    options: dict[str, Any] = {"num_cpus": spec.cpus if spec.cpus is not None else 1.0}
    if spec.gpu is not None:
        options["num_gpus"] = spec.gpu.count
        accelerator = accelerator_type(spec)
        if accelerator is not None:
            options["accelerator_type"] = accelerator
    if spec.memory_bytes is not None:
        options["memory"] = spec.memory_bytes
    runtime_env: dict[str, Any] = {}
    if spec.pip:
        runtime_env["pip"] = list(spec.pip)
    if spec.env:
        runtime_env["env_vars"] = spec.env_vars
    if runtime_env:
        options["runtime_env"] = runtime_env
    return options


def deployment_options(spec: ServeSpec) -> dict[str, Any]:
    options: dict[str, Any] = {
        "ray_actor_options": ray_actor_options(spec),
        "max_ongoing_requests": max_ongoing_requests(spec),
        "max_queued_requests": SERVE_MAX_QUEUED,
        # A replica whose handler calls overran --timeout (or whose health() fails) says so
        # in check_health; Serve replaces it after three failed checks.
        "health_check_period_s": HEALTH_CHECK_PERIOD_S,
        # One log line per request costs the replica a write on every request: measurable on
        # a small machine (benchmarks/suite.py); errors and the cell's own output still log.
        "logging_config": {"enable_access_log": False},
    }
    if spec.replicas.autoscaling:
        default_target = float(spec.batch.max_size) if spec.batch else UNBATCHED_TARGET_ONGOING
        options["autoscaling_config"] = {
            "min_replicas": spec.replicas.min,
            "max_replicas": spec.replicas.max,
            "target_ongoing_requests": spec.target_ongoing or default_target,
        }
        if spec.scaledown_window_s is not None:
            options["autoscaling_config"]["downscale_delay_s"] = float(spec.scaledown_window_s)
    else:
        options["num_replicas"] = spec.replicas.min
    return options


def replica_demand(spec: ServeSpec) -> dict[str, float]:
    """The resources one replica reserves, keyed as Ray names them."""
    actor = ray_actor_options(spec)
    demand = {"CPU": float(actor["num_cpus"])}
    if "num_gpus" in actor:
        demand["GPU"] = float(actor["num_gpus"])
    if "memory" in actor:
        demand["memory"] = float(actor["memory"])
    if "accelerator_type" in actor:
        demand[f"accelerator_type:{actor['accelerator_type']}"] = 0.001
    return {k: v for k, v in demand.items() if v > 0}
