"""A KubeRay RayService manifest for an exported Ray Serve module."""

from __future__ import annotations

import math
from typing import Any

import yaml

from nbserve._flags import magic_line
from nbserve._spec import ServeSpec
from nbserve._version import __version__
from nbserve.backends.ray.options import CELL_DEPLOYMENT, deployment_options

__all__ = ["RAY_IMAGE", "render_rayservice", "serve_config", "token_secret"]

RAY_VERSION = "2.60.0"
RAY_IMAGE = f"rayproject/ray:{RAY_VERSION}-py311"
# A placeholder the user must replace: Ray Serve only accepts a remote working_dir.
WORKING_DIR_PLACEHOLDER = "s3://REPLACE-ME/{module}.zip"


def serve_config(spec: ServeSpec, module: str) -> dict[str, Any]:
    """The ``serveConfigV2`` document: one application, one deployment."""
    options = deployment_options(spec)
    actor = dict(options["ray_actor_options"])
    runtime_env = actor.pop("runtime_env", {})
    deployment: dict[str, Any] = {
        "name": CELL_DEPLOYMENT,
        "max_ongoing_requests": options["max_ongoing_requests"],
        "max_queued_requests": options["max_queued_requests"],
        "health_check_period_s": options["health_check_period_s"],
    }
    if "autoscaling_config" in options:
        deployment["autoscaling_config"] = options["autoscaling_config"]
    else:
        deployment["num_replicas"] = options["num_replicas"]
    deployment["ray_actor_options"] = actor
    app_env: dict[str, Any] = {
        "working_dir": WORKING_DIR_PLACEHOLDER.format(module=module),
        "pip": [f"nbserve=={__version__}", *runtime_env.get("pip", [])],
    }
    if "env_vars" in runtime_env:
        app_env["env_vars"] = runtime_env["env_vars"]
    return {
        "applications": [
            {
                "name": spec.name,
                "route_prefix": spec.route,
                "import_path": f"{module}:app",
                "runtime_env": app_env,
                "deployments": [deployment],
            }
        ]
    }


def token_secret(spec: ServeSpec) -> str:
    """The Kubernetes Secret that holds the endpoint's token (key ``token``)."""
    return f"{_k8s_name(spec.name)}-nbserve-token"


def _k8s_name(name: str) -> str:
    return name.replace("_", "-").lower()


def _container(name: str, cpus: float, memory_gib: float, gpus: int, secret: str | None) -> dict[str, Any]:
    limits: dict[str, Any] = {"cpu": str(max(1, math.ceil(cpus))), "memory": f"{max(2, math.ceil(memory_gib))}Gi"}
    if gpus:
        limits["nvidia.com/gpu"] = str(gpus)
    resources = {"limits": limits, "requests": dict(limits)}
    container: dict[str, Any] = {"name": name, "image": RAY_IMAGE, "resources": resources}
    if secret is not None:
        # Ray's processes, the replicas among them, inherit the container's environment.
        container["env"] = [{"name": "NBSERVE_TOKEN", "valueFrom": {"secretKeyRef": {"name": secret, "key": "token"}}}]
    if name == "ray-head":
        container["ports"] = [
            {"containerPort": 6379, "name": "gcs"},
            {"containerPort": 8265, "name": "dashboard"},
            {"containerPort": 8000, "name": "serve"},
        ]
    return container


def render_rayservice(spec: ServeSpec, module: str) -> str:
    """The manifest as YAML, with a header comment on how to apply it."""
    per_replica_gpus = spec.gpu.count if spec.gpu else 0.0
    max_replicas = spec.replicas.max
    # Worker pods sized for whole replicas: fractional GPUs share one card in one pod.
    replicas_per_pod = max(1, math.floor(1 / per_replica_gpus)) if 0 < per_replica_gpus < 1 else 1
    pods = max(1, math.ceil(max_replicas / replicas_per_pod))
    pod_gpus = math.ceil(per_replica_gpus * replicas_per_pod) if per_replica_gpus else 0
    pod_cpus = (spec.cpus if spec.cpus is not None else 1.0) * replicas_per_pod
    pod_memory = (spec.memory_bytes or 2 * 2**30) * replicas_per_pod / 2**30
    secret = None if spec.public else token_secret(spec)
    worker: dict[str, Any] = {
        "groupName": "gpu-workers" if pod_gpus else "workers",
        "replicas": max(1, math.ceil(spec.replicas.min / replicas_per_pod)),
        "minReplicas": 0 if spec.replicas.min == 0 else 1,
        "maxReplicas": pods,
        "rayStartParams": {},
        "template": {"spec": {"containers": [_container("ray-worker", pod_cpus, pod_memory + 1, pod_gpus, secret)]}},
    }
    manifest = {
        "apiVersion": "ray.io/v1",
        "kind": "RayService",
        "metadata": {"name": _k8s_name(spec.name)},
        "spec": {
            "serveConfigV2": yaml.safe_dump(serve_config(spec, module), sort_keys=False),
            "rayClusterConfig": {
                "rayVersion": RAY_VERSION,
                "enableInTreeAutoscaling": spec.replicas.autoscaling,
                "headGroupSpec": {
                    "rayStartParams": {"dashboard-host": "0.0.0.0", "num-cpus": "0"},
                    "template": {"spec": {"containers": [_container("ray-head", 2, 4, 0, secret)]}},
                },
                "workerGroupSpecs": [worker],
            },
        },
    }
    header = (
        f"# RayService for the nbserve endpoint {spec.name}, exported by nbserve {__version__}.\n"
        f"# From the cell: {magic_line(spec)}\n"
        f"#\n"
        f"# Before `kubectl apply -f {spec.name}_rayservice.yaml`:\n"
        f"#   1. zip the folder holding {module}.py, upload it, and set runtime_env.working_dir in\n"
        f"#      serveConfigV2 to its URL (or bake {module}.py into the image and drop working_dir);\n"
        f"#   2. add the packages the cell imports to runtime_env.pip (or to the image).\n"
        + (
            f"#   3. create the Secret that holds the token its callers show (every pod reads it as\n"
            f"#      NBSERVE_TOKEN; without it the replicas refuse to start):\n"
            f"#        kubectl create secret generic {secret} --from-literal=token=$(nbserve token)\n"
            f"# The endpoint then answers POST {spec.route} on the head service's port 8000, to requests\n"
            f"# with the header 'Authorization: Bearer <token>'.\n"
            if secret
            else f"# The endpoint (--public: no token) answers POST {spec.route} on the head service's port 8000.\n"
        )
    )
    body: str = yaml.dump(manifest, Dumper=_LiteralDumper, sort_keys=False, width=100)
    return header + body


class _LiteralDumper(yaml.SafeDumper):
    """Writes multi-line strings (serveConfigV2) as readable ``|`` blocks."""


def _represent_str(dumper: yaml.SafeDumper, text: str) -> yaml.Node:
    style = "|" if "\n" in text else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_LiteralDumper.add_representer(str, _represent_str)
