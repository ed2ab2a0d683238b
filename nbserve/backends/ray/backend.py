"""Ray Serve backend: each endpoint is a Serve application of its own at ``/NAME``.

Imported only when a Ray endpoint is first used (``nbserve.backends.get_backend``): it
imports Ray and Serve at the top. What can be said without a cluster lives in ``options``
(the spec in Serve's terms) and ``state`` (Serve's status in nbserve's).
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import AsyncGenerator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray
from ray import serve
from ray._private import state as ray_state
from ray.autoscaler.v2.sdk import get_cluster_status
from ray.exceptions import RayActorError
from ray.serve.api import RunTarget
from ray.serve.context import _get_global_client
from ray.serve.handle import DeploymentResponse, DeploymentResponseGenerator
from ray.util.state import get_log

from nbserve import _tokens
from nbserve._aio import run_sync
from nbserve._config import allowed_hosts, embedded_settings
from nbserve._errors import (
    DeployError,
    EndpointInUseError,
    EndpointNotFoundError,
    EndpointUnavailableError,
    InsufficientResourcesError,
    SetupFailedError,
)
from nbserve._metrics import DEFAULT_WINDOW_S
from nbserve._spec import ServeSpec
from nbserve._types import DeployEvent, EndpointInfo, EndpointStats, EndpointStatus, ReplicaCounts, SeriesPoint
from nbserve.backends.base import Backend, EndpointClient, endpoint_info
from nbserve.backends.ray import cluster, collector, haproxy, state
from nbserve.backends.ray.lease import deploy_lease
from nbserve.backends.ray.options import CELL_DEPLOYMENT, deployment_options, replica_demand
from nbserve.backends.ray.replica import (
    CellReplica,
    cell_config,
    config_version,
    read_cell,
    read_extra,
    replica_code_version,
)
from nbserve.backends.ray.routes import wait_for_routes
from nbserve.backends.ray.serve_start import wait_for_ingress
from nbserve.backends.ray.token import get_token, put_token
from nbserve.runtime import CellBundle, Outcome

__all__ = ["RayBackend"]

POLL_S = 0.1
# Beyond the setup's own limit (--setup-timeout), for a replica's process to start and import.
START_MARGIN_S = 120.0
# How long replicas may wait for resources the cluster does not have free before the
# deploy is called off (the embedded cluster never grows, so waiting longer cannot help).
PENDING_GRACE_S = 4.0
PENDING_CHECK_S = 1.0
# How long Serve may show every replica running before nbserve stops waiting for their load
# reports and asks a replica which version it serves.
REPORT_GRACE_S = 10.0


class RayEndpointClient:
    def __init__(self, name: str) -> None:
        self._name = name
        self._handle = serve.get_app_handle(name)

    async def call(self, item: Any) -> Outcome:
        outcome: Outcome = await self._answer(self._handle.call.remote(item))
        return outcome

    async def call_batch(self, items: list[Any]) -> list[Outcome]:
        outcomes: list[Outcome] = await self._answer(self._handle.call_batch.remote(items))
        return outcomes

    async def _answer(self, response: DeploymentResponse[Any] | DeploymentResponseGenerator[Any]) -> Any:
        """The replica's answer. A caller that stops waiting (a timeout, Ctrl-C, a cancelled
        task) cancels the request in the replica as well, so inputs nobody waits for never run:
        awaiting a response does not cancel it by itself (Ray 2.60)."""
        with self._reachable():
            try:
                return await response
            except asyncio.CancelledError:
                response.cancel()  # returns at once: it cancels the router's future first
                raise

    async def stream(self, item: Any) -> AsyncGenerator[Any, None]:
        # Serve sends each chunk as the replica yields it; cancelling the generator (a caller
        # that stopped reading) cancels the replica's stream, which closes the handler's.
        chunks: Any = self._handle.options(stream=True).stream.remote(item)
        try:
            with self._reachable():
                async for outcome in chunks:
                    yield outcome.unwrap()
        finally:
            chunks.cancel()

    @contextlib.contextmanager
    def _reachable(self) -> Iterator[None]:
        """Ray's word for a replica that died with the call in hand, as nbserve's."""
        try:
            yield
        except RayActorError as exc:
            raise EndpointUnavailableError(f"the replica of {self._name} that had the call died: {exc}") from exc


class _Deployed:
    """What a running replica says it serves, decoded: the cell, its spec and its stamps."""

    def __init__(self, description: dict[str, Any]) -> None:
        self.bundle, self.options = read_cell(description)
        self.spec: ServeSpec = read_extra(description)
        version = config_version(description)
        if version is None:
            raise ValueError("the replica's description names no version")
        self.deployed_at, self.code_version = version
        self.handler = str(description.get("handler") or self.bundle.handler)


class RayBackend(Backend):
    name = "ray"

    def __init__(self, address: str | None = None) -> None:
        self._address = address
        self._cluster: cluster.ClusterInfo | None = None
        self._proxy_trouble = ""
        # One connection at a time: the prestart thread and a cell's deploy may both ask.
        self._connect_lock = threading.Lock()
        self._prestart_error: BaseException | None = None
        # What a replica said it serves, by endpoint, with the version it was said of.
        self._descriptions: dict[str, tuple[tuple[float, str], _Deployed]] = {}

    @property
    def address(self) -> str | None:
        return self._address

    # -- connection -------------------------------------------------------------------
    def prestart(self) -> None:
        """Connect now (starting the embedded cluster and Serve), keeping a failure for the
        next ``connect`` to report before it tries again. ``%load_ext`` runs this in a thread,
        so the first ``%%serve`` finds the cluster warm."""
        # Ray warns that ray.init outside the main thread sets no SIGTERM handler; expected
        # here (the kernel keeps its own), and a thread's output would land in a later cell.
        logging.getLogger("ray._private.worker").addFilter(_NOT_MAIN_THREAD_NOTE)
        try:
            self.connect()
        except BaseException as exc:  # noqa: BLE001 - kept for the first %%serve to report
            self._prestart_error = exc

    def connect(self, on_status: Callable[[str], None] | None = None) -> cluster.ClusterInfo:
        if not self._connect_lock.acquire(blocking=False):
            if on_status:
                on_status("waiting for the cluster that %load_ext is starting")
            self._connect_lock.acquire()
        try:
            error, self._prestart_error = self._prestart_error, None
            if error is not None and on_status:
                on_status(f"starting the cluster at %load_ext failed ({type(error).__name__}: {error}); trying again")
            return self._connect(on_status)
        finally:
            self._connect_lock.release()

    def _connect(self, on_status: Callable[[str], None] | None) -> cluster.ClusterInfo:
        if self._cluster is not None and self._cluster.embedded and cluster.embedded_status() is None:
            # The embedded cluster was stopped (`nbserve cluster stop`) since we connected:
            # drop the dead connection and start a fresh cluster on this use.
            ray.shutdown()
            self._cluster = None
        if self._cluster is None or not ray.is_initialized():
            self._cluster = cluster.connect(self._address, on_status)
            # Started now, beside Serve's controller: a first replica reports its load to it.
            collector.ensure_collector()
            # The embedded cluster takes this user's token; another cluster keeps its own,
            # made by the first kernel that needs one.
            if self._cluster.embedded:
                put_token(_tokens.read_or_create())
            else:
                put_token(_tokens.new_token(), replace=False)
        return self._cluster

    def token(self) -> str | None:
        """The cluster's token: this user's for the embedded cluster (no cluster needed to read it)."""
        if self._address is None:
            return _tokens.read_or_create()
        self.connect()
        return get_token()

    def rotate_token(self) -> str:
        """A new token for the cluster; its endpoints refuse the old one within ``REFRESH_S`` seconds.

        The embedded cluster's is this user's token: rotated in its file, and in the cluster
        when it runs (when it does not, it takes the new one when it starts).
        """
        if self._address is None:
            token = _tokens.rotate()
            if cluster.embedded_status() is not None:
                self.connect()
                put_token(token)
            return token
        self.connect()
        return put_token(_tokens.new_token())

    def url(self, route: str) -> str:
        return f"{self.connect().http_url}{route}"

    def _cluster_up(self) -> bool:
        """Whether there is a cluster to ask: a named one always; the embedded one if it runs."""
        return self._address is not None or cluster.embedded_status() is not None

    def _serve_view(self) -> state.ServeView:
        """``serve.status()``, read for a fraction of its CPU (``state.serve_view``)."""
        self.connect()
        client = _get_global_client(raise_if_no_controller_running=False)
        return state.serve_view(client.get_serve_details() if client is not None else {})

    def _applications(self) -> dict[str, state.ApplicationView]:
        """nbserve's applications on the cluster; none (and no cluster started) when the
        embedded cluster is not running: looking never starts it, only a deploy does."""
        if not self._cluster_up():
            return {}
        status = self._serve_view()
        # A proxy that is not healthy means HTTP fails on its node (handle calls go on):
        # every endpoint's status says so while it lasts.
        self._proxy_trouble = state.proxy_trouble(status.proxies)
        return {name: app for name, app in status.applications.items() if CELL_DEPLOYMENT in app.deployments}

    def _describe(self, name: str, timeout_s: float = 10.0) -> _Deployed | None:
        async def ask() -> dict[str, Any]:
            description: dict[str, Any] = await serve.get_app_handle(name).describe.remote()
            return description

        try:
            return _Deployed(run_sync(ask(), timeout=timeout_s))
        except Exception:  # noqa: BLE001 - an endpoint without a running replica cannot say
            return None

    def _described(self, name: str, overview: state.ApplicationView, timeout_s: float = 10.0) -> _Deployed | None:
        """``_describe``, asked once per version: while Serve shows the endpoint settled on the
        version a replica described, that description holds. A live dashboard reads it every
        second, and asking costs a call to a replica and the cell unpickled (5-9 ms of the kernel's CPU)."""
        view = state.settled(overview, CELL_DEPLOYMENT)
        version = config_version(view.user_config) if view is not None else None
        known = self._descriptions.get(name)
        if version is not None and known is not None and known[0] == version:
            return known[1]
        deployed = self._describe(name, timeout_s)
        if deployed is not None and version == (deployed.deployed_at, deployed.code_version):
            self._descriptions[name] = (version, deployed)
        return deployed

    # -- deploy -----------------------------------------------------------------------
    def _deploy(
        self, spec: ServeSpec, bundle: CellBundle, on_event: Callable[[DeployEvent], None], *, restart: bool
    ) -> EndpointInfo:
        started = time.monotonic()

        def event(phase: str, **kwargs: Any) -> None:
            on_event(DeployEvent(phase, time.monotonic() - started, **kwargs))

        info = self.connect(lambda text: event(text))  # the one place the embedded cluster starts
        self._check_fits(spec, info)
        # The deploy's longest honest run: the setup's limit, a process start, and a rollback.
        hold_s = 2 * (spec.setup_timeout_s + START_MARGIN_S)
        with deploy_lease(spec.name, hold_s, lambda text: event("queued", message=text)):
            return self._deploy_alone(spec, bundle, event, restart)

    def _deploy_alone(
        self, spec: ServeSpec, bundle: CellBundle, event: Callable[..., None], restart: bool
    ) -> EndpointInfo:
        """The deploy itself, while this process holds the name's lease."""
        missing = [used for used in spec.uses if used not in self._applications()]
        if missing:
            raise EndpointNotFoundError(
                f"--uses {','.join(spec.uses)}: {', '.join(missing)} is not deployed on this cluster; "
                "deploy it first (each endpoint a cell may use must already run)"
            )
        previous = self._describe(spec.name) if spec.name in self._applications() else None
        # HAProxy reads an endpoint's HTTP retry policy when it reloads, which new replicas bring.
        told = self._mark_endpoint(spec.name, spec.retry)
        new_retry = told and previous is not None and previous.spec.retry != spec.retry
        code_version = state.code_version_for(
            previous.code_version if previous else None, replica_code_version(), restart or new_retry
        )
        phase = (
            "starting"
            if previous is None
            else state.update_phase(previous.code_version, previous.spec, spec, code_version)
        )
        try:
            version = self._submit(spec, bundle, code_version)
            self._wait_running(spec, version, event, phase)
            wait_for_ingress()  # a fresh Serve's proxies started beside the replicas: the URL answers
        except BaseException as exc:  # KeyboardInterrupt too: never leave a half deployment
            self._undo(spec.name, previous, event)
            if isinstance(exc, DeployError) and previous is not None:
                raise type(exc)(f"{exc}\n\nThe previous version of {spec.name} is serving again.") from None
            raise
        if self._embedded_haproxy():  # a hot reload reloads HAProxy twice: return after the last
            wait_for_routes(spec.name)
        return self.info(spec.name)

    def _embedded_haproxy(self) -> bool:
        """Whether the endpoints are served through the embedded cluster's HAProxy."""
        return self._address is None and embedded_settings().ingress == "haproxy"

    def _mark_endpoint(self, name: str, retry: bool | None) -> bool:
        """Tell the embedded cluster's HAProxy that ``name`` is deployed and whether to re-send
        its requests whose replica died (``retry=None``: deleted); whether there is a HAProxy
        to tell (Serve's own proxy never re-sends them)."""
        if not self._embedded_haproxy():
            return False
        settings = embedded_settings()
        if retry is None:
            haproxy.unmark_endpoint(settings, name)
        else:
            haproxy.mark_endpoint(settings, name, retry)
        return True

    def _submit(
        self, spec: ServeSpec, bundle: CellBundle, code_version: str, deployed_at: float | None = None
    ) -> float:
        """Start a deploy of the cell; return the version's stamp (its ``deployed_at``).

        The cell travels in ``user_config`` under a fixed code version, so on a running
        endpoint Serve reloads it inside the live replicas (``CellReplica.reconfigure``)
        rather than replacing them; options that need new processes (resources, ``--pip``)
        still make Serve start new replicas, as it always does.
        """
        collector.ensure_collector()  # made anew if someone killed it: replicas report to it
        if deployed_at is None:
            version = time.time()  # a new stamp: no replica has reported on it yet
        else:
            version = deployed_at
            collector.clear_loads(spec.name, version)  # a rollback waits on fresh reports, not old ones
        deployment = serve.deployment(
            name=CELL_DEPLOYMENT,
            user_config=cell_config(bundle, spec.runtime_options(allowed_hosts()), version, code_version, extra=spec),
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

    def _undo(self, name: str, previous: _Deployed | None, event: Callable[..., None]) -> None:
        if previous is None:
            event("removing the failed deployment")
            with contextlib.suppress(Exception):
                serve.delete(name, _blocking=True)
            self._mark_endpoint(name, retry=None)
            return
        event("rolling back to the previous version")
        self._mark_endpoint(name, previous.spec.retry)
        # The previous stamp: replicas that kept serving that version have nothing to reload.
        code_version = previous.code_version or replica_code_version()
        version = self._submit(previous.spec, previous.bundle, code_version, deployed_at=previous.deployed_at)
        with contextlib.suppress(DeployError):
            self._wait_running(previous.spec, version, event, "rolling back")

    def _wait_running(self, spec: ServeSpec, version: float, event: Callable[..., None], phase: str) -> None:
        """Wait until every running replica has loaded ``version``, or raise as soon as one cannot."""
        target = spec.replicas.min
        began = time.monotonic()
        deadline = began + spec.setup_timeout_s + START_MARGIN_S
        pending_since: float | None = None
        next_pending_check = 0.0
        settled_since: float | None = None
        while True:
            overview = self._applications().get(spec.name)
            if overview is not None:
                status = overview.status
                counts = state.replica_counts(overview, target)
                message = state.messages(overview)
                setup_tb = state.setup_traceback(message)
                if setup_tb is not None:
                    raise SetupFailedError(f"the setup code of {spec.name} raised in its replica:\n\n{setup_tb}")
                if status == "DEPLOY_FAILED":
                    raise DeployError(f"{spec.name} failed to deploy:\n{message}")
                # Each replica reports the version it loaded; a running replica that could not
                # load it keeps serving the previous one, which Serve cannot see.
                reports = collector.load_reports(spec.name, version)
                failure = next((error for error in reports.values() if error), None)
                if failure is not None:
                    setup_tb = state.setup_traceback(failure) or failure
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
                waiting = f"setup running for {time.monotonic() - began:.0f} s of {spec.setup_timeout_s:g}"
                event(phase, running=counts.running, target=target, message=waiting)
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
                raise DeployError(
                    f"{spec.name} did not start within {time.monotonic() - began:.0f} s: its setup ran past "
                    f"--setup-timeout {spec.setup_timeout_s:g} (or its replicas could not start); the deploy "
                    "was called off. Raise the limit for a setup that is slow on purpose."
                )
            time.sleep(POLL_S)

    def _serving_version(self, name: str) -> float | None:
        description = self._describe(name, timeout_s=5.0)
        return description.deployed_at if description else None

    # -- resources --------------------------------------------------------------------
    def _check_fits(self, spec: ServeSpec, info: cluster.ClusterInfo) -> None:
        """Refuse at once a replica that no node of the embedded cluster could hold."""
        if not info.embedded:
            return  # an external cluster may autoscale: Serve reports what it waits for
        demand = replica_demand(spec)
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        if any(state.fits(demand, n["Resources"]) for n in nodes):
            return
        raise InsufficientResourcesError(
            f"one replica of {spec.name} needs {state.format_resources(demand)}, but no node of the local "
            f"Ray cluster has that much; it has {state.format_resources(ray.cluster_resources())}.\n"
            f"{state.resource_fix(demand)}"
        )

    def _fits_now(self, spec: ServeSpec) -> bool:
        return state.fits(replica_demand(spec), ray.available_resources())

    def _replica_actors(self, name: str, actor_state: str) -> builtins.list[ReplicaActor]:
        """The endpoint's replica actors in ``actor_state``, from the GCS's actor table: it needs
        no Ray dashboard (which a small machine may run without, NBSERVE_RAY_DASHBOARD=0)."""
        self.connect()
        wanted = f"ServeReplica:{name}:{CELL_DEPLOYMENT}"
        try:
            table = ray_state.actors(actor_state_name=actor_state)
        except Exception:  # noqa: BLE001 - an older or newer Ray without it: nothing known
            return []
        return [
            ReplicaActor(str(row["ActorID"]), int(row["Pid"]), str(row["Address"]["NodeID"]))
            for row in table.values()
            if row.get("ActorClassName") == wanted
        ]

    def _pending_replicas(self, spec: ServeSpec) -> int:
        """Replicas of this shape that wait for resources: the demand the raylets report to
        the GCS (the autoscaler's view). A replica that was placed and is only starting (its
        process imports) is not there, even where what it took leaves nothing free (four
        --gpu 0.25 replicas on one GPU), so it is never mistaken for one that cannot fit."""
        try:
            status = get_cluster_status(self.connect().address, timeout=5)
        except Exception:  # noqa: BLE001 - an older or newer Ray: nothing known, nothing refused
            return 0
        return sum(
            request.count
            for demand in status.resource_demands.ray_task_actor_demand
            for request in demand.bundles_by_count
            if state.same_shape(request.bundle, replica_demand(spec))
        )

    def _pending_report(self, spec: ServeSpec, pending: int) -> str:
        demand = replica_demand(spec)
        return (
            f"{pending} replica(s) of {spec.name} cannot be placed: each needs {state.format_resources(demand)}, "
            f"the local cluster has {state.format_resources(ray.cluster_resources())} in all and "
            f"{state.format_resources(ray.available_resources(), tuple(demand))} free.\n"
            "Free resources with `%serve down NAME` (see `%serve ls`), or ask for fewer replicas or "
            "fewer CPUs per replica (e.g. --cpus 0.5)."
        )

    # -- queries ----------------------------------------------------------------------
    def _status_of(self, name: str, overview: state.ApplicationView, deployed: _Deployed | None) -> EndpointStatus:
        status = overview.status
        endpoint_state = state.STATE_NAMES.get(status, status.lower())
        target = deployed.spec.replicas.min if deployed else 0
        counts = state.replica_counts(overview, target)
        if endpoint_state == "deploying" and deployed is not None:
            endpoint_state = "updating"  # a running version answers while the new one rolls out
        if deployed is not None and deployed.spec.replicas.autoscaling:
            counts = ReplicaCounts(counts.running, max(counts.running, target), counts.starting, counts.recovering)
        message = state.messages(overview)
        if self._proxy_trouble and endpoint_state == "running":
            endpoint_state, message = "unhealthy", "\n".join(filter(None, [self._proxy_trouble, message]))
        return EndpointStatus(name, endpoint_state, counts, message)

    def _info_of(self, name: str, overview: state.ApplicationView, deployed: _Deployed | None) -> EndpointInfo:
        status = self._status_of(name, overview, deployed)
        if deployed is None:
            return EndpointInfo(
                name, self.name, self.url(f"/{name}"), "?", True, 1, "?", overview.last_deployed_time_s, status
            )
        url = self.url(deployed.spec.route)
        return endpoint_info(self.name, deployed.spec, deployed.bundle, url, deployed.deployed_at, status)

    def info(self, name: str) -> EndpointInfo:
        overview = self._applications().get(name)
        if overview is None:
            raise self._not_found(name)
        return self._info_of(name, overview, self._described(name, overview))

    def _not_found(self, name: str) -> EndpointNotFoundError:
        if not self._cluster_up():
            return EndpointNotFoundError(
                f"{name!r} is not deployed: the embedded Ray cluster is not running (the first %%serve "
                "starts it, or `nbserve cluster start`)"
            )
        return EndpointNotFoundError(
            f"no nbserve endpoint named {name!r} on the Ray cluster at {self.connect().address}"
        )

    def list(self) -> builtins.list[EndpointInfo]:
        apps = self._applications()
        return [self._info_of(name, app, self._described(name, app, 3.0)) for name, app in sorted(apps.items())]

    def _require_running_cluster(self, name: str) -> None:
        """Refuse queries that would start a new embedded cluster (a dashboard outliving its cluster)."""
        if not self._cluster_up():
            raise self._not_found(name)

    def stats(self, name: str, window_s: float = DEFAULT_WINDOW_S) -> EndpointStats:
        self._require_running_cluster(name)
        status = self.status(name)  # connects; raises EndpointNotFoundError for a deleted endpoint
        measured = collector.read_stats(name, window_s) or EndpointStats(name=name, window_s=window_s)
        return measured.with_status(status)

    def series(self, name: str, span_s: float = 180.0, step_s: float = 5.0) -> builtins.list[SeriesPoint]:
        self._require_running_cluster(name)
        self.connect()
        return collector.read_series(name, span_s, step_s)

    def _delete(self, name: str, *, force: bool) -> None:
        if name not in self._applications():
            raise self._not_found(name)
        users = [info.name for info in self.list() if name in info.uses]
        if users and not force:
            raise EndpointInUseError(name, users)
        serve.delete(name, _blocking=True)
        collector.forget(name)
        self._descriptions.pop(name, None)
        self._mark_endpoint(name, retry=None)

    def deployed_cell(self, name: str) -> tuple[ServeSpec, CellBundle]:
        overview = self._applications().get(name)
        if overview is None:
            raise self._not_found(name)
        deployed = self._described(name, overview)
        if deployed is None:
            raise EndpointNotFoundError(f"{name!r} has no running replica to read its cell from; redeploy it first")
        return deployed.spec, deployed.bundle

    def client(self, name: str) -> EndpointClient:
        self._require_running_cluster(name)
        self.connect()
        return RayEndpointClient(name)

    def logs(self, name: str, tail: int = 200) -> str:
        """Output of the endpoint's replicas: what the cell printed, warnings, tracebacks."""
        self._require_running_cluster(name)
        address = self.connect().address
        actors = self._replica_actors(name, "ALIVE")
        if not actors:
            raise EndpointNotFoundError(f"no running replica of {name!r}")
        sections = []
        for actor in actors:
            lines = _local_log_lines(actor, tail)
            if lines is None:  # a replica on another node: Ray's log API (needs its dashboard)
                lines = []
                for suffix in ("out", "err"):
                    with contextlib.suppress(Exception):
                        for chunk in get_log(
                            address=address, actor_id=actor.actor_id, suffix=suffix, tail=tail, timeout=10
                        ):
                            lines.extend(chunk.splitlines())
            body = "\n".join(state.strip_ansi(line) for line in lines if line.strip()) or "(no output yet)"
            sections.append(f"--- replica {actor.actor_id[:8]} (pid {actor.pid}) ---\n{body}")
        return "\n".join(sections)


class _NotMainThreadNote(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "SIGTERM handler is not set" not in record.getMessage()


_NOT_MAIN_THREAD_NOTE = _NotMainThreadNote()


@dataclass(frozen=True)
class ReplicaActor:
    actor_id: str
    pid: int
    node_id: str  # hex


def _local_log_lines(actor: ReplicaActor, tail: int) -> list[str] | None:
    """The last ``tail`` lines of a replica's stdout and stderr, read from its log files where
    its node is this machine's (the embedded cluster always); ``None`` where it is not."""
    node = ray._private.worker.global_worker.node
    if node is None or node.unique_id != actor.node_id:
        return None
    logs = Path(node.get_logs_dir_path())
    lines: list[str] = []
    for suffix in ("out", "err"):
        for path in logs.glob(f"worker-*-{actor.pid}.{suffix}"):
            with contextlib.suppress(OSError), path.open(errors="replace") as file:
                lines.extend(deque(file, maxlen=tail))
    # Ray's own markers (":actor_name:...", ":task_name:...") are not the replica's output.
    return [line.rstrip("\n") for line in lines if not line.startswith((":actor_name:", ":task_name:"))]
