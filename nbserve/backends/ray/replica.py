"""The Ray Serve deployment that runs a cell: one class for every endpoint, a thin adapter
around ``nbserve.runtime``.

Handle calls (``call``, ``call_batch``) return ``Outcome`` objects so the notebook can raise
a clean ``HandlerError``; HTTP requests go through ``__call__`` to the runtime's contract.

Re-running a cell reloads it inside the running replicas (a *hot redeploy*): the notebook
deploys with a fixed code version and the cell in Serve's ``user_config``, so Serve calls
``reconfigure`` on the live replicas instead of starting new processes (imports and the
process start are ~3 s of a ~5 s restart, see docs/performance.md). The new version's setup
runs beside the serving one; on success the replica swaps, on failure it keeps serving the
old version and reports why, and the notebook rolls the config back.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import gc
import hashlib
import os
import sys
from collections.abc import AsyncGenerator, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import ray
from ray import cloudpickle
from ray._private import state as ray_state
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from nbserve._errors import EndpointOverloadedError, EndpointTimeoutError, HandlerError, SetupFailedError
from nbserve.backends.ray.reports import ReplicaMetrics, report_load
from nbserve.backends.ray.token import ClusterToken
from nbserve.backends.ray.uses import UsedEndpoint
from nbserve.runtime import Access, CellBundle, Outcome, RuntimeOptions, ServedCell
from nbserve.runtime.threads import threads_for
from nbserve.runtime.wire import HttpRequest

__all__ = [
    "REPLICA_SOURCES",
    "CellReplica",
    "cell_config",
    "code_version_of",
    "config_version",
    "read_cell",
    "read_extra",
    "replica_code_version",
]

_PACKAGE = Path(__file__).resolve().parents[2]
# The code a replica runs: the runtime and this adapter. A change to any other part of
# nbserve (the sidebar's server, the magics) leaves running replicas to reload in place.
REPLICA_SOURCES = (
    "_errors.py",
    "runtime/*.py",
    "backends/ray/replica.py",
    "backends/ray/reports.py",
    "backends/ray/token.py",
    "backends/ray/uses.py",
)
# An exported app (``serve run``) finds its token here; see ``nbserve._export``.
TOKEN_ENV = "NBSERVE_TOKEN"


@functools.cache
def replica_code_version() -> str:
    """Serve's code version of every nbserve replica: it changes when the replica's code does,
    so replicas of another nbserve are replaced, and only a new cell is reloaded in place."""
    return code_version_of(_PACKAGE)


def code_version_of(package: Path) -> str:
    """The code version of the replica sources below ``package`` (an ``nbserve`` folder)."""
    digest = hashlib.sha256()
    for pattern in REPLICA_SOURCES:
        for path in sorted(package.glob(pattern)):
            digest.update(path.relative_to(package).as_posix().encode())
            digest.update(path.read_bytes())
    return f"nbserve-replica-{digest.hexdigest()[:16]}"


def _encode(value: Any) -> str:
    return base64.b64encode(cloudpickle.dumps(value)).decode("ascii")


def cell_config(
    bundle: CellBundle, options: RuntimeOptions, deployed_at: float, code_version: str, extra: Any = None
) -> dict[str, Any]:
    """Serve's ``user_config`` for a cell: JSON, as Serve requires, with the cell pickled inside.

    ``extra`` (the kernel's spec) rides along unread: the replica hands it back in
    ``describe``, so it never depends on how the kernel describes an endpoint.
    """
    return {
        "cell": _encode((bundle, options)),
        "extra": _encode(extra),
        "deployed_at": deployed_at,
        "code_version": code_version,
    }


def config_version(config: Any) -> tuple[float, str] | None:
    """The version a ``cell_config`` (or a replica's description) names: its ``deployed_at``
    and ``code_version``; ``None`` for a config nbserve did not write."""
    if not isinstance(config, Mapping) or "deployed_at" not in config:
        return None
    return float(config["deployed_at"]), str(config.get("code_version") or "")


def read_cell(config: dict[str, Any]) -> tuple[CellBundle, RuntimeOptions]:
    bundle, options = cloudpickle.loads(base64.b64decode(config["cell"]))
    return bundle, options


def read_extra(config: dict[str, Any]) -> Any:
    return cloudpickle.loads(base64.b64decode(config["extra"]))


def _release_memory() -> None:
    """Give back what a replaced version held: its model, and on a GPU the cached blocks.

    The cell's module and functions form reference cycles, which only the cyclic collector
    frees. Serve freezes the collector after a replica's first start (everything loaded
    until then is moved out of its reach), so the first version would never be freed:
    unfreeze, collect, then freeze what now lives, as Serve does.
    """
    frozen = gc.get_freeze_count() > 0
    gc.unfreeze()
    gc.collect()
    if frozen:
        gc.freeze()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()


class CellReplica:
    def __init__(
        self,
        bundle: CellBundle | None = None,
        options: RuntimeOptions | None = None,
        deployed_at: float = 0.0,
        token: str | None = None,
    ) -> None:
        """Without arguments (the notebook), the cell arrives through ``reconfigure`` and the
        token is the cluster's. An exported module passes the cell here, never reconfigures,
        and its token: the one ``NBSERVE_TOKEN`` held where the module was imported (``serve
        run``'s shell, or the cluster's containers), else the replica's own ``NBSERVE_TOKEN``."""
        self._served: ServedCell | None = None
        self._config: dict[str, Any] = {}
        self._metrics: ReplicaMetrics | None = None
        self._token: Callable[[], str | None] = ClusterToken()
        if bundle is not None and options is not None:
            fixed = token or os.environ.get(TOKEN_ENV)
            if not options.public and not fixed:
                raise RuntimeError(
                    f"{options.name} answers HTTP only with a token, and {TOKEN_ENV} is not set: set it where "
                    f"the app is started (`export {TOKEN_ENV}=$(nbserve token)`), or deploy the cell with --public"
                )
            self._token = lambda: fixed
            # Ray Serve runs constructors on an event loop, where blocking on a handle is
            # refused; setup that calls a used endpoint (`embed.map(corpus).result()`) runs
            # in a thread of its own. Serve's router thread delivers the answers meanwhile.
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="nbserve-setup") as pool:
                self._served = pool.submit(self._load, bundle, options, deployed_at).result()

    def _load(self, bundle: CellBundle, options: RuntimeOptions, deployed_at: float) -> ServedCell:
        """Set up one version of the cell (``SetupFailedError`` with the cell's traceback)."""
        if self._metrics is None:
            self._metrics = ReplicaMetrics(options.name, deployed_at)
        used = {name: UsedEndpoint(name) for name in options.uses}
        self._token()  # the first read of the token is here, off the request path
        access = Access(self._token, public=options.public, hosts=frozenset(options.hosts))
        return ServedCell(bundle, options, deployed_at, access, provided=used, recorder=self._metrics.recorder)

    async def reconfigure(self, config: dict[str, Any]) -> None:
        """Serve's hook for a new ``user_config``: load that version of the cell, then swap."""
        replica = _replica_id()
        current = self._served
        deployed_at = float(config["deployed_at"])
        if current is not None and current.deployed_at == deployed_at:
            # The version this replica serves (a rollback after another replica failed to load).
            self._config = config
            await report_load(current.options.name, deployed_at, replica, None)
            return
        try:
            bundle, options = read_cell(config)
            # Off the event loop: the serving version keeps answering while this one sets up.
            # A setup that hangs is given up at its limit (its thread is left behind), so Serve
            # can hand this replica the next config (the kernel's rollback, or a fix).
            loading = asyncio.to_thread(self._load, bundle, options, deployed_at)
            try:
                served = await asyncio.wait_for(loading, options.setup_timeout_s)
            except asyncio.TimeoutError:
                raise SetupFailedError(
                    f"the setup did not finish within {options.setup_timeout_s:g} s (--setup-timeout)"
                ) from None
        except Exception as exc:  # whatever fails, the serving version stays
            if current is None:
                raise  # a new replica has nothing to serve: Serve reports the failure
            await report_load(current.options.name, deployed_at, replica, str(exc))
            return  # keep serving the running version; the notebook rolls the config back
        self._served, self._config = served, config
        await report_load(options.name, deployed_at, replica, None)
        if current is not None:
            await current.retire()  # the inputs its batcher holds finish on the old version
            del current
            _release_memory()

    def _loaded(self) -> ServedCell:
        if self._served is None:
            raise RuntimeError("the cell is not loaded yet")  # Serve routes only to ready replicas
        return self._served

    async def call(self, item: Any) -> Outcome:
        """A handle call with one input (``endpoint(x)``, ``--uses``), recorded as one request."""
        return await self._loaded().call(item)

    async def call_batch(self, items: list[Any]) -> list[Outcome]:
        """A chunk that is already a batch (``Endpoint.map``): straight to the handler."""
        return await self._loaded().call_batch(items)

    async def stream(self, item: Any) -> AsyncGenerator[Outcome, None]:
        """A handle call that streams (``handle.options(stream=True).stream``): each chunk as an
        ``Outcome`` as soon as the handler yields it; an error ends the stream as a last one."""
        try:
            async for chunk in self._loaded().stream(item):
                yield Outcome(chunk)
        except (HandlerError, EndpointTimeoutError, EndpointOverloadedError) as exc:
            yield Outcome(error=exc)

    async def check_health(self) -> None:
        """Serve's health check: raises while the serving version should not serve (handler
        calls stuck past --timeout, or the cell's own ``health()`` failing); after three
        failures Serve replaces the replica. Every check also updates the threads torch may
        use from the CPUs the node has free (``runtime/threads.py``)."""
        if self._served is not None:
            with contextlib.suppress(Exception):  # a figure to follow, never a reason to fail
                self._served.program.threads.wanted = await asyncio.to_thread(_torch_threads)
            await self._served.check_health()

    def describe(self) -> dict[str, Any]:
        """The ``user_config`` of the version this replica serves, and that version's stamp."""
        served = self._loaded()
        return {**self._config, "deployed_at": served.deployed_at, "handler": served.bundle.handler}

    def __del__(self) -> None:  # Serve's shutdown hook: ship the last samples
        metrics = getattr(self, "_metrics", None)
        if metrics is not None:
            metrics.stop()

    async def __call__(self, request: Request) -> Response:
        async def read_body(limit: int) -> bytes:
            chunks: list[bytes] = []
            size = 0
            async for chunk in request.stream():
                chunks.append(chunk)
                size += len(chunk)
                if size > limit:
                    break
            return b"".join(chunks)

        # Serve puts the route prefix in root_path; what follows it is the endpoint's own route.
        path = request.scope.get("path", "")[len(request.scope.get("root_path", "")) :]
        headers = dict(request.headers.items())
        answer = await self._loaded().http(HttpRequest(request.method, headers, read_body, path))
        if answer.chunks is not None:  # each chunk leaves as soon as the handler yields it
            return StreamingResponse(answer.chunks, status_code=answer.status, headers=dict(answer.headers))
        return Response(answer.body, status_code=answer.status, headers=dict(answer.headers))


def _replica_id() -> str:
    try:
        from ray import serve

        return str(serve.get_replica_context().replica_id.unique_id)
    except Exception:  # noqa: BLE001 - outside Serve (tests): the process stands for the replica
        return str(os.getpid())


def _torch_threads() -> int:
    """This replica's CPUs and its node's free ones (a GCS call; run off the event loop)."""
    context = ray.get_runtime_context()
    reserved = context.get_assigned_resources().get("CPU", 1.0)
    free = ray_state.available_resources_per_node().get(context.get_node_id(), {}).get("CPU", 0.0)
    return threads_for(reserved, free, os.cpu_count() or 1)
