"""Ray Serve backend: each endpoint is a Serve application of its own at ``/NAME``."""

from __future__ import annotations

import builtins
import contextlib
import re
import time
from collections.abc import Callable
from typing import Any

from nbserve.backends.base import (
    Backend,
    DeployEvent,
    EndpointClient,
    EndpointInfo,
    EndpointStatus,
    ReplicaCounts,
    with_status,
)
from nbserve.backends.ray import cluster
from nbserve.backends.ray.options import deployment_options, ray_actor_options, replica_demand
from nbserve.cell import CellBundle
from nbserve.errors import (
    DeployError,
    EndpointInUseError,
    EndpointNotFoundError,
    InsufficientResourcesError,
    SetupFailedError,
)
from nbserve.metrics import DEFAULT_WINDOW_S, EndpointStats, SeriesPoint
from nbserve.program import SETUP_TRACEBACK_BEGIN, SETUP_TRACEBACK_END, Outcome
from nbserve.spec import ServeSpec

__all__ = ["RayBackend"]

POLL_S = 0.1
DEPLOY_TIMEOUT_S = 900.0
# How long replicas may wait for resources the cluster does not have free before the
# deploy is called off (the embedded cluster never grows, so waiting longer cannot help).
PENDING_GRACE_S = 4.0
PENDING_CHECK_S = 1.0
# How long Serve may show every replica running before nbserve stops waiting for their load
# reports and asks a replica which version it serves.
REPORT_GRACE_S = 10.0

_STATE_NAMES = {
    "NOT_STARTED": "deploying",
    "DEPLOYING": "deploying",
    "RUNNING": "running",
    "UNHEALTHY": "unhealthy",
    "DEPLOY_FAILED": "failed",
    "DELETING": "deleting",
}
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class RayEndpointClient:
    def __init__(self, name: str) -> None:
        from ray import serve

        self._handle = serve.get_app_handle(name)

    async def call(self, item: Any) -> Outcome:
        outcome: Outcome = await self._handle.call.remote(item)
        return outcome

    async def call_batch(self, items: list[Any]) -> list[Outcome]:
        outcomes: list[Outcome] = await self._handle.call_batch.remote(items)
        return outcomes


def _replica_counts(overview: Any, target: int) -> ReplicaCounts:
    states: dict[str, int] = {}
    for deployment in overview.deployments.values():
        for state, count in deployment.replica_states.items():
            key = str(getattr(state, "value", state))
            states[key] = states.get(key, 0) + count
    return ReplicaCounts(
        running=states.get("RUNNING", 0),
        target=target,
        starting=states.get("STARTING", 0) + states.get("UPDATING", 0),
        recovering=states.get("RECOVERING", 0),
        stopping=states.get("STOPPING", 0),
    )


def _messages(overview: Any) -> str:
    parts = [overview.message] + [d.message for d in overview.deployments.values()]
    return _ANSI.sub("", "\n".join(p for p in parts if p))


def _setup_traceback(message: str) -> str | None:
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


class RayBackend(Backend):
    name = "ray"

    def __init__(self, address: str | None = None) -> None:
        self.address = address
        self._cluster: cluster.ClusterInfo | None = None

    # -- connection -------------------------------------------------------------------
    def connect(self, on_status: Callable[[str], None] | None = None) -> cluster.ClusterInfo:
        import ray

        if self._cluster is not None and self._cluster.embedded and cluster.embedded_status() is None:
            # The embedded cluster was stopped (`nbserve cluster stop`) since we connected:
            # drop the dead connection and start a fresh cluster on this use.
            ray.shutdown()
            self._cluster = None
        if self._cluster is None or not ray.is_initialized():
            self._cluster = cluster.connect(self.address, on_status)
            from nbserve.backends.ray import collector

            # Started now, beside Serve's controller: a first replica reports its load to it.
            collector.get_collector(create=True)
        return self._cluster

    def url(self, route: str) -> str:
        return f"{self.connect().http_url}{route}"

    def _applications(self) -> dict[str, Any]:
        from ray import serve

        from nbserve.backends.ray.replica import CELL_DEPLOYMENT

        self.connect()
        apps = serve.status().applications
        return {name: app for name, app in apps.items() if CELL_DEPLOYMENT in app.deployments}

    def _describe(self, name: str, timeout_s: float = 10.0) -> dict[str, Any] | None:
        from ray import serve

        from nbserve._aio import run_sync

        async def ask() -> dict[str, Any]:
            handle = serve.get_app_handle(name)
            description: dict[str, Any] = await handle.describe.remote()
            return description

        try:
            return run_sync(ask(), timeout=timeout_s)
        except Exception:  # noqa: BLE001 - an endpoint without a running replica cannot say
            return None

    # -- deploy -----------------------------------------------------------------------
    def deploy(
        self,
        spec: ServeSpec,
        bundle: CellBundle,
        on_event: Callable[[DeployEvent], None],
        *,
        restart: bool = False,
    ) -> EndpointInfo:
        started = time.monotonic()

        def event(phase: str, **kwargs: Any) -> None:
            on_event(DeployEvent(phase, time.monotonic() - started, **kwargs))

        info = self.connect(lambda text: event(text))
        self._check_fits(spec, info)
        missing = [used for used in spec.uses if used not in self._applications()]
        if missing:
            raise EndpointNotFoundError(
                f"--uses {','.join(spec.uses)}: {', '.join(missing)} is not deployed on this cluster; "
                "deploy it first (each endpoint a cell may use must already run)"
            )
        previous = self._describe(spec.name) if spec.name in self._applications() else None
        code_version = _code_version(previous, restart)
        phase = "starting" if previous is None else _update_phase(previous, spec, code_version)
        try:
            version = self._submit(spec, bundle, code_version)
            self._wait_running(spec, version, event, phase)
        except BaseException as exc:  # KeyboardInterrupt too: never leave a half deployment
            self._undo(spec.name, previous, event)
            if isinstance(exc, DeployError) and previous is not None:
                raise type(exc)(f"{exc}\n\nThe previous version of {spec.name} is serving again.") from None
            raise
        return self.info(spec.name)

    def _submit(
        self, spec: ServeSpec, bundle: CellBundle, code_version: str, deployed_at: float | None = None
    ) -> float:
        """Start a deploy of the cell; return the version's stamp (its ``deployed_at``).

        The cell travels in ``user_config`` under a fixed code version, so on a running
        endpoint Serve reloads it inside the live replicas (``CellReplica.reconfigure``)
        rather than replacing them; options that need new processes (resources, ``--pip``)
        still make Serve start new replicas, as it always does.
        """
        from ray import serve
        from ray.serve.api import RunTarget

        from nbserve.backends.ray import collector
        from nbserve.backends.ray.replica import CELL_DEPLOYMENT, CellReplica, cell_config

        if deployed_at is None:
            version = time.time()  # a new stamp: no replica has reported on it yet
        else:
            version = deployed_at
            collector.clear_loads(spec.name, version)  # a rollback waits on fresh reports, not old ones
        deployment = serve.deployment(
            name=CELL_DEPLOYMENT,
            user_config=cell_config(bundle, spec, version, code_version),
            **deployment_options(spec),
        )(CellReplica)
        # Serve's public API gives every deploy a random code version, which restarts every
        # replica; `version` is only settable as an internal option (Ray 2.60).
        deployment = deployment.options(version=code_version, _internal=True)
        serve.run_many(
            [RunTarget(target=deployment.bind(), name=spec.name, route_prefix=spec.route)],
            wait_for_applications_running=False,
        )
        return version

    def _undo(self, name: str, previous: dict[str, Any] | None, event: Callable[..., None]) -> None:
        from ray import serve

        if previous is None:
            event("removing the failed deployment")
            with contextlib.suppress(Exception):
                serve.delete(name, _blocking=True)
            return
        event("rolling back to the previous version")
        spec: ServeSpec = previous["spec"]
        # The previous stamp: replicas that kept serving that version have nothing to reload.
        code_version = previous.get("code_version") or _code_version(None, restart=False)
        version = self._submit(spec, previous["bundle"], code_version, deployed_at=previous["deployed_at"])
        with contextlib.suppress(DeployError):
            self._wait_running(spec, version, event, "rolling back")

    def _wait_running(self, spec: ServeSpec, version: float, event: Callable[..., None], phase: str) -> None:
        """Wait until every running replica has loaded ``version``, or raise as soon as one cannot."""
        from nbserve.backends.ray import collector

        target = spec.replicas.min
        deadline = time.monotonic() + DEPLOY_TIMEOUT_S
        pending_since: float | None = None
        next_pending_check = 0.0
        settled_since: float | None = None
        while True:
            overview = self._applications().get(spec.name)
            if overview is not None:
                status = str(getattr(overview.status, "value", overview.status))
                counts = _replica_counts(overview, target)
                message = _messages(overview)
                setup_tb = _setup_traceback(message)
                if setup_tb is not None:
                    raise SetupFailedError(f"the setup code of {spec.name} raised in its replica:\n\n{setup_tb}")
                if status == "DEPLOY_FAILED":
                    raise DeployError(f"{spec.name} failed to deploy:\n{message}")
                # Each replica reports the version it loaded; a running replica that could not
                # load it keeps serving the previous one, which Serve cannot see.
                reports = collector.load_reports(spec.name, version)
                failure = next((error for error in reports.values() if error), None)
                if failure is not None:
                    setup_tb = _setup_traceback(failure) or failure
                    raise SetupFailedError(f"the setup code of {spec.name} raised in its replica:\n\n{setup_tb}")
                settled = (
                    status == "RUNNING" and counts.running >= target and not counts.starting and not counts.stopping
                )
                if settled and len(reports) >= counts.running:
                    event(phase, running=counts.running, target=target)
                    return
                # Reports travel through the collector actor; should one be lost (the actor
                # restarting), ask the replicas themselves rather than wait for the timeout.
                settled_since = (settled_since or time.monotonic()) if settled else None
                waited_for_reports = settled_since is not None and time.monotonic() - settled_since > REPORT_GRACE_S
                if waited_for_reports and self._serving_version(spec.name) == version:
                    event(phase, running=counts.running, target=target)
                    return
                event(phase, running=counts.running, target=target)
                # Only the embedded cluster cannot grow; elsewhere replicas may wait for nodes.
                # The check asks Ray's state API: once a second, not on every poll, so that it
                # does not take CPU from the replica that is starting.
                embedded = self._cluster is not None and self._cluster.embedded
                if embedded and counts.starting and time.monotonic() >= next_pending_check:
                    next_pending_check = time.monotonic() + PENDING_CHECK_S
                    pending = self._pending_replicas(spec)
                    # A replica also waits while Ray builds its runtime environment (--pip):
                    # only a replica that does not fit in what is free is short of resources.
                    if pending and not counts.stopping and not self._fits_now(spec):
                        pending_since = pending_since or time.monotonic()
                        if time.monotonic() - pending_since > PENDING_GRACE_S:
                            raise InsufficientResourcesError(self._pending_report(spec, pending))
                    else:
                        pending_since = None
            if time.monotonic() > deadline:
                raise DeployError(f"{spec.name} did not start within {DEPLOY_TIMEOUT_S:.0f} s")
            time.sleep(POLL_S)

    def _serving_version(self, name: str) -> float | None:
        description = self._describe(name, timeout_s=5.0)
        return description["deployed_at"] if description else None

    # -- resources --------------------------------------------------------------------
    def _check_fits(self, spec: ServeSpec, info: cluster.ClusterInfo) -> None:
        """Refuse at once a replica that no node of the embedded cluster could hold."""
        import ray

        if not info.embedded:
            return  # an external cluster may autoscale: Serve reports what it waits for
        demand = replica_demand(spec)
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        if any(_fits(demand, n["Resources"]) for n in nodes):
            return
        raise InsufficientResourcesError(
            f"one replica of {spec.name} needs {_format_resources(demand)}, but no node of the local "
            f"Ray cluster has that much; it has {_format_resources(ray.cluster_resources())}.\n"
            f"{_resource_fix(spec, demand)}"
        )

    def _fits_now(self, spec: ServeSpec) -> bool:
        import ray

        return _fits(replica_demand(spec), ray.available_resources())

    def _pending_replicas(self, spec: ServeSpec) -> int:
        from ray.util.state import list_actors

        from nbserve.backends.ray.replica import CELL_DEPLOYMENT

        try:
            actors = list_actors(
                filters=[
                    ("class_name", "=", f"ServeReplica:{spec.name}:{CELL_DEPLOYMENT}"),
                    ("state", "=", "PENDING_CREATION"),
                ],
                address=self.connect().address,
                timeout=5,
                raise_on_missing_output=False,
            )
        except Exception:  # noqa: BLE001 - the state API is optional (no dashboard)
            return 0
        return len(actors)

    def _pending_report(self, spec: ServeSpec, pending: int) -> str:
        import ray

        demand = replica_demand(spec)
        return (
            f"{pending} replica(s) of {spec.name} cannot be placed: each needs {_format_resources(demand)}, "
            f"the local cluster has {_format_resources(ray.cluster_resources())} in all and "
            f"{_format_resources(ray.available_resources(), tuple(demand))} free.\n"
            "Free resources with `%serve down NAME` (see `%serve ls`), or ask for fewer replicas or "
            "fewer CPUs per replica (e.g. --cpus 0.5)."
        )

    # -- queries ----------------------------------------------------------------------
    def _status_of(self, name: str, overview: Any, description: dict[str, Any] | None) -> EndpointStatus:
        status = str(getattr(overview.status, "value", overview.status))
        state = _STATE_NAMES.get(status, status.lower())
        target = description["spec"].replicas.min if description else 0
        counts = _replica_counts(overview, target)
        if state == "deploying" and description is not None:
            state = "updating"  # a running version answers while the new one rolls out
        if description is not None and description["spec"].replicas.autoscaling:
            counts = ReplicaCounts(counts.running, max(counts.running, target), counts.starting, counts.recovering)
        return EndpointStatus(name, state, counts, _messages(overview))

    def info(self, name: str) -> EndpointInfo:
        overview = self._applications().get(name)
        if overview is None:
            raise self._not_found(name)
        description = self._describe(name)
        return self._info_of(name, overview, description)

    def _not_found(self, name: str) -> EndpointNotFoundError:
        return EndpointNotFoundError(
            f"no nbserve endpoint named {name!r} on the Ray cluster at {self.connect().address}"
        )

    def _info_of(self, name: str, overview: Any, description: dict[str, Any] | None) -> EndpointInfo:
        status = self._status_of(name, overview, description)
        if description is None:
            return EndpointInfo(
                name, self.name, self.url(f"/{name}"), "?", True, 1, "?", overview.last_deployed_time_s, status
            )
        return EndpointInfo(
            name=name,
            backend=self.name,
            url=self.url(description["route"]),
            handler=description["handler"],
            batched=description["batched"],
            max_batch_size=description["max_batch_size"],
            resources=description["resources"],
            deployed_at=description["deployed_at"],
            status=status,
            uses=tuple(description.get("uses", ())),
        )

    def list(self) -> list[EndpointInfo]:
        apps = self._applications()
        return [self._info_of(name, overview, self._describe(name, 3.0)) for name, overview in sorted(apps.items())]

    def status(self, name: str) -> EndpointStatus:
        return self.info(name).status

    def _require_running_cluster(self, name: str) -> None:
        """Refuse queries that would start a new embedded cluster (a dashboard outliving its cluster)."""
        if self.address is None and cluster.embedded_status() is None:
            raise EndpointNotFoundError(f"{name!r} is gone: the embedded Ray cluster is not running")

    def stats(self, name: str, window_s: float = DEFAULT_WINDOW_S) -> EndpointStats:
        from nbserve.backends.ray import collector

        self._require_running_cluster(name)
        status = self.status(name)  # connects; raises EndpointNotFoundError for a deleted endpoint
        measured = collector.read_stats(name, window_s) or EndpointStats(name=name, window_s=window_s)
        return with_status(measured, status)

    def series(self, name: str, span_s: float = 180.0, step_s: float = 5.0) -> builtins.list[SeriesPoint]:
        from nbserve.backends.ray import collector

        self._require_running_cluster(name)
        self.connect()
        return collector.read_series(name, span_s, step_s)

    def delete(self, name: str, *, force: bool = False) -> None:
        from ray import serve

        if name not in self._applications():
            raise self._not_found(name)
        users = [info.name for info in self.list() if name in info.uses]
        if users and not force:
            raise EndpointInUseError(name, users)
        serve.delete(name, _blocking=True)
        from nbserve.backends.ray import collector

        collector.forget(name)

    def deployed_cell(self, name: str) -> tuple[ServeSpec, CellBundle]:
        if name not in self._applications():
            raise self._not_found(name)
        description = self._describe(name)
        if description is None:
            raise EndpointNotFoundError(f"{name!r} has no running replica to read its cell from; redeploy it first")
        return description["spec"], description["bundle"]

    def client(self, name: str) -> EndpointClient:
        self.connect()
        return RayEndpointClient(name)

    def logs(self, name: str, tail: int = 200) -> str:
        """Output of the endpoint's replicas: what the cell printed, warnings, tracebacks."""
        from ray.util.state import get_log, list_actors

        from nbserve.backends.ray.replica import CELL_DEPLOYMENT

        address = self.connect().address
        actors = list_actors(
            address=address,
            filters=[("class_name", "=", f"ServeReplica:{name}:{CELL_DEPLOYMENT}"), ("state", "=", "ALIVE")],
            timeout=10,
            raise_on_missing_output=False,
        )
        if not actors:
            raise EndpointNotFoundError(f"no running replica of {name!r}")
        sections = []
        for actor in actors:
            lines: list[str] = []
            for suffix in ("out", "err"):
                with contextlib.suppress(Exception):
                    for chunk in get_log(
                        address=address, actor_id=actor.actor_id, suffix=suffix, tail=tail, timeout=10
                    ):
                        lines.extend(chunk.splitlines())
            body = "\n".join(_ANSI.sub("", line) for line in lines if line.strip()) or "(no output yet)"
            sections.append(f"--- replica {actor.actor_id[:8]} (pid {actor.pid}) ---\n{body}")
        return "\n".join(sections)


def _code_version(previous: dict[str, Any] | None, restart: bool) -> str:
    """Serve's code version for a deploy: the running one reloads the cell in place.

    It changes, and Serve starts new replica processes, when nbserve's own code changed or
    the user asked for ``--restart``.
    """
    from nbserve.backends.ray.replica import replica_code_version

    current = replica_code_version()
    if restart:
        return f"{current}-restart-{time.time_ns()}"
    running = str(previous.get("code_version") or "") if previous else ""
    return running if running.startswith(current) else current


def _update_phase(previous: dict[str, Any], spec: ServeSpec, code_version: str) -> str:
    """What a redeploy does to the running replicas, in the words the progress line shows."""
    if previous.get("code_version") != code_version:
        return "replacing replicas (--restart, or a new nbserve)"
    if ray_actor_options(previous["spec"]) != ray_actor_options(spec):
        return "replacing replicas (new resources or environment)"
    return "reloading in place"


def _fits(demand: dict[str, float], resources: dict[str, float]) -> bool:
    return all(resources.get(key, 0.0) >= amount for key, amount in demand.items())


def _format_resources(resources: dict[str, float], always: tuple[str, ...] = ("CPU",)) -> str:
    parts = []
    for key in ("CPU", "GPU"):
        if key in resources or key in always:
            parts.append(f"{resources.get(key, 0.0):g} {key}")
    if "memory" in resources:
        parts.append(f"{resources['memory'] / 2**30:.1f} GiB memory")
    parts += [k.split(":", 1)[1] for k in resources if k.startswith("accelerator_type:")]
    return ", ".join(parts) if parts else "nothing"


def _resource_fix(spec: ServeSpec, demand: dict[str, float]) -> str:
    if demand.get("GPU") or any(k.startswith("accelerator_type:") for k in demand):
        return "Drop --gpu to run on the CPU here, or deploy to a cluster with GPUs (--address or RAY_ADDRESS)."
    return "Ask for less (--cpus, --memory), or deploy to a bigger cluster (--address or RAY_ADDRESS)."
