"""Ray Serve's view of an application, read into nbserve's terms: plain functions over the
values Serve's status API returns (tested without a cluster)."""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from nbserve._spec import ServeSpec
from nbserve._types import ReplicaCounts
from nbserve.backends.ray.options import ray_actor_options
from nbserve.runtime.program import SETUP_TRACEBACK_BEGIN, SETUP_TRACEBACK_END

__all__ = [
    "STATE_NAMES",
    "ApplicationView",
    "DeploymentView",
    "ServeView",
    "code_version_for",
    "fits",
    "format_resources",
    "messages",
    "proxy_trouble",
    "replica_counts",
    "resource_fix",
    "serve_view",
    "settled",
    "setup_traceback",
    "update_phase",
]

STATE_NAMES = {
    "NOT_STARTED": "deploying",
    "DEPLOYING": "deploying",
    "RUNNING": "running",
    "UNHEALTHY": "unhealthy",
    "DEPLOY_FAILED": "failed",
    "DELETING": "deleting",
}
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _name(value: Any) -> str:
    """An enum of Serve's, or its value already, as its value."""
    return str(getattr(value, "value", value))


@dataclass(frozen=True)
class DeploymentView:
    status: str
    message: str
    replica_states: dict[str, int]  # replica state -> replicas in it
    # The config's user_config, which names the version replicas are to serve (nbserve's
    # stamp, read by replica.config_version); serve.status() leaves it out.
    user_config: Any = None


@dataclass(frozen=True)
class ApplicationView:
    """An application as ``serve.status().applications[name]`` shows it."""

    status: str
    message: str
    last_deployed_time_s: float
    deployments: dict[str, DeploymentView]


@dataclass(frozen=True)
class ServeView:
    """What ``serve.status()`` says: applications by name, and each proxy's status by node."""

    applications: dict[str, ApplicationView]
    proxies: dict[str, str]


def serve_view(details: Mapping[str, Any]) -> ServeView:
    """``serve.status()``'s answer, read from the controller's instance details (the dict that
    ``serve.status()`` builds pydantic's ``ServeInstanceDetails`` from, then reduces to the same
    figures). That validation is most of ``serve.status()``'s cost: 11-13 ms of the kernel's
    CPU against 2 ms for this read (``benchmarks/dashboard_poll.py``), and a live dashboard
    asks once a second."""
    applications = {}
    for name, app in (details.get("applications") or {}).items():
        deployments = {}
        for deployment_name, deployment in (app.get("deployments") or {}).items():
            states: dict[str, int] = {}
            for replica in deployment.get("replicas") or ():
                key = _name(replica["state"])
                states[key] = states.get(key, 0) + 1
            deployments[deployment_name] = DeploymentView(
                _name(deployment["status"]),
                deployment.get("message") or "",
                states,
                (deployment.get("deployment_config") or {}).get("user_config"),
            )
        applications[name] = ApplicationView(
            _name(app["status"]), app.get("message") or "", float(app.get("last_deployed_time_s") or 0.0), deployments
        )
    proxies = {node: _name(proxy["status"]) for node, proxy in (details.get("proxies") or {}).items()}
    return ServeView(applications, proxies)


# A deployment's statuses while every replica runs the version its config names (scaling
# starts new replicas of that version; an update would show UPDATING).
_SETTLED = frozenset({"HEALTHY", "UPSCALING", "DOWNSCALING"})


def settled(overview: ApplicationView, deployment: str) -> DeploymentView | None:
    """``deployment``, when Serve says every replica serves the version its config names:
    the application running and the deployment settled. While that holds, what a replica
    said of that version stays true, so it need not be asked again."""
    view = overview.deployments.get(deployment)
    if overview.status != "RUNNING" or view is None or view.status not in _SETTLED:
        return None
    return view


def replica_counts(overview: ApplicationView, target: int) -> ReplicaCounts:
    """Replica counts of an application (``ServeView.applications[name]``)."""
    states: dict[str, int] = {}
    for deployment in overview.deployments.values():
        for key, count in deployment.replica_states.items():
            states[key] = states.get(key, 0) + count
    return ReplicaCounts(
        running=states.get("RUNNING", 0),
        target=target,
        starting=states.get("STARTING", 0) + states.get("UPDATING", 0),
        recovering=states.get("RECOVERING", 0),
        stopping=states.get("STOPPING", 0),
    )


def proxy_trouble(proxies: Mapping[str, str]) -> str:
    """What is wrong with Serve's HTTP proxies (``ServeView.proxies``), or ''."""
    down = sorted(f"{status.lower()} on node {node[:8]}" for node, status in proxies.items() if status != "HEALTHY")
    if not down:
        return ""
    return f"the HTTP proxy is {', '.join(down)}: HTTP requests may fail until it is back (calls by handle go on)"


def messages(overview: ApplicationView) -> str:
    parts = [overview.message] + [d.message for d in overview.deployments.values()]
    return strip_ansi("\n".join(p for p in parts if p))


def strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


def setup_traceback(message: str) -> str | None:
    """The cell's traceback from a replica's constructor failure, if the message has one."""
    start = message.find(SETUP_TRACEBACK_BEGIN)
    if start >= 0:
        end = message.find(SETUP_TRACEBACK_END, start)
        text = message[start + len(SETUP_TRACEBACK_BEGIN) : end if end >= 0 else None]
        # Ray swaps the traceback's header line for its own actor line; put a plain one back.
        lines = [line for line in text.strip().splitlines() if not line.startswith("ray::")]
        return "\n".join(["Traceback (most recent call last):", *lines])
    if "failed to start" in message:
        lines = message.strip().splitlines()
        tb = next((i for i in range(len(lines) - 1, -1, -1) if lines[i].startswith("Traceback")), None)
        return "\n".join(lines[tb:] if tb is not None else lines[-12:])
    return None


def code_version_for(running: str | None, current: str, restart: bool) -> str:
    """Serve's code version for a deploy: the running one reloads the cell in place.

    It changes, and Serve starts new replica processes, when the replica's code changed
    (``current``, see ``replica_code_version``) or the user asked for ``--restart``.
    """
    if restart:
        return f"{current}-restart-{time.time_ns()}"
    return running if running and running.startswith(current) else current


def update_phase(previous_version: str, previous: ServeSpec, spec: ServeSpec, code_version: str) -> str:
    """What a redeploy does to the running replicas, in the words the progress line shows."""
    if previous_version != code_version:
        if previous.retry != spec.retry:
            return "replacing replicas (--no-retry changed, which HAProxy reads as replicas start)"
        return "replacing replicas (--restart, or a new nbserve)"
    if ray_actor_options(previous) != ray_actor_options(spec):
        return "replacing replicas (new resources or environment)"
    return "reloading in place"


def same_shape(bundle: dict[str, float], demand: dict[str, float]) -> bool:
    """Whether a resource request Ray reports is one replica's ``demand`` (zeros ignored)."""
    asked = {key: value for key, value in bundle.items() if value}
    wanted = {key: value for key, value in demand.items() if value}
    return asked.keys() == wanted.keys() and all(abs(asked[k] - wanted[k]) < 1e-6 for k in wanted)


def fits(demand: dict[str, float], resources: dict[str, float]) -> bool:
    return all(resources.get(key, 0.0) >= amount for key, amount in demand.items())


def format_resources(resources: dict[str, float], always: tuple[str, ...] = ("CPU",)) -> str:
    parts = []
    for key in ("CPU", "GPU"):
        if key in resources or key in always:
            parts.append(f"{resources.get(key, 0.0):g} {key}")
    if "memory" in resources:
        parts.append(f"{resources['memory'] / 2**30:.1f} GiB memory")
    parts += [k.split(":", 1)[1] for k in resources if k.startswith("accelerator_type:")]
    return ", ".join(parts) if parts else "nothing"


def resource_fix(demand: dict[str, float]) -> str:
    if demand.get("GPU") or any(k.startswith("accelerator_type:") for k in demand):
        return "Drop --gpu to run on the CPU here, or deploy to a cluster with GPUs (--address or RAY_ADDRESS)."
    return "Ask for less (--cpus, --memory), or deploy to a bigger cluster (--address or RAY_ADDRESS)."
