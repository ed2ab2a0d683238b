"""Translate a ``ServeSpec`` into Ray Serve deployment options (plain data, no Ray calls)."""

from __future__ import annotations

from typing import Any

from nbserve.spec import ServeSpec

__all__ = ["deployment_options", "max_ongoing_requests", "ray_actor_options", "replica_demand"]

# Ray's own default for unbatched deployments.
UNBATCHED_MAX_ONGOING = 5
# Ray's default autoscaling target for unbatched deployments.
UNBATCHED_TARGET_ONGOING = 2.0


def max_ongoing_requests(spec: ServeSpec) -> int:
    """Requests one replica accepts at once.

    No batch can be larger than this, so it must cover a full batch being computed while
    the next one fills: twice the batch size.
    """
    if spec.batch is None:
        return UNBATCHED_MAX_ONGOING
    return 2 * spec.batch.max_size


def ray_actor_options(spec: ServeSpec) -> dict[str, Any]:
    options: dict[str, Any] = {"num_cpus": spec.cpus if spec.cpus is not None else 1.0}
    if spec.gpu is not None:
        options["num_gpus"] = spec.gpu.count
        if spec.gpu.type is not None:
            options["accelerator_type"] = spec.gpu.type
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
