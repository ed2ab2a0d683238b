"""How a spec becomes Ray Serve deployment options (no Ray needed)."""

from __future__ import annotations

from nbserve._flags import build_spec
from nbserve.backends.ray.options import (
    SERVE_MAX_QUEUED,
    SHED_HEADROOM,
    deployment_options,
    max_ongoing_requests,
    replica_demand,
)


def test_batched_defaults_leave_room_for_a_full_batch_and_for_turning_requests_away() -> None:
    spec = build_spec(name="e", max_batch_size=32)
    options = deployment_options(spec)
    # A batch running, two more queued, and the headroom the replica answers 503 from.
    assert options["max_ongoing_requests"] == 32 + 64 + SHED_HEADROOM == max_ongoing_requests(spec)
    assert options["max_queued_requests"] == SERVE_MAX_QUEUED
    assert options["num_replicas"] == 1
    assert options["ray_actor_options"] == {"num_cpus": 1.0}
    assert "autoscaling_config" not in options


def test_unbatched_and_explicit_queues() -> None:
    assert deployment_options(build_spec(name="e", no_batch=True))["max_ongoing_requests"] == 1 + 64 + SHED_HEADROOM
    assert deployment_options(build_spec(name="e", max_queued=0))["max_ongoing_requests"] == 64 + SHED_HEADROOM


def test_fractional_gpu_and_type_map_to_actor_options() -> None:
    fractional = deployment_options(build_spec(name="e", gpu="0.25", cpus="0.5", memory="2GiB"))
    assert fractional["ray_actor_options"] == {"num_cpus": 0.5, "num_gpus": 0.25, "memory": 2 * 2**30}
    typed = deployment_options(build_spec(name="e", gpu="h100:2"))["ray_actor_options"]
    assert typed["num_gpus"] == 2.0
    assert typed["accelerator_type"] == "H100"


def test_replica_range_becomes_autoscaling() -> None:
    options = deployment_options(build_spec(name="e", replicas="1:4", max_batch_size=16))
    assert "num_replicas" not in options
    assert options["autoscaling_config"] == {"min_replicas": 1, "max_replicas": 4, "target_ongoing_requests": 16.0}
    explicit = deployment_options(build_spec(name="e", replicas="0:2", target_ongoing="3"))
    assert explicit["autoscaling_config"]["target_ongoing_requests"] == 3.0
    assert explicit["autoscaling_config"]["min_replicas"] == 0
    assert "downscale_delay_s" not in explicit["autoscaling_config"]  # Ray's default (600 s)
    windowed = deployment_options(build_spec(name="e", replicas="0:2", scaledown_window=45))
    assert windowed["autoscaling_config"]["downscale_delay_s"] == 45.0


def test_runtime_environment_from_pip_and_env() -> None:
    actor = deployment_options(build_spec(name="e", pip=["numpy==2.*"], env=["A=1", "B=x=y"]))["ray_actor_options"]
    assert actor["runtime_env"] == {"pip": ["numpy==2.*"], "env_vars": {"A": "1", "B": "x=y"}}


def test_replica_demand_names_resources_as_ray_does() -> None:
    assert replica_demand(build_spec(name="e")) == {"CPU": 1.0}
    demand = replica_demand(build_spec(name="e", gpu="A10G", cpus=0, memory="1GiB"))
    assert demand == {"GPU": 1.0, "memory": float(2**30), "accelerator_type:A10G": 0.001}
