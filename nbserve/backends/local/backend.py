"""The in-process backend: each endpoint runs in this process, with an HTTP route on loopback.

One copy of the cell per endpoint, set up in the calling thread (its prints show in the
cell), served on nbserve's background event loop with the same runtime as a Ray replica:
the batcher, per-input failures, the HTTP contract and its access rules, the figures.
Nothing outlives the process. Resource flags reserve nothing here.
"""

from __future__ import annotations

import builtins
import time
from collections import deque
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from typing import Any

from nbserve import _tokens
from nbserve._aio import run_sync
from nbserve._config import allowed_hosts, local_http_port
from nbserve._errors import EndpointNotFoundError, HandlerError, NbserveError, SetupFailedError
from nbserve._metrics import DEFAULT_WINDOW_S, MetricsWindow
from nbserve._spec import ServeSpec
from nbserve._types import DeployEvent, EndpointInfo, EndpointStats, EndpointStatus, ReplicaCounts, SeriesPoint
from nbserve.backends.base import Backend, EndpointClient, endpoint_info
from nbserve.backends.local.server import LocalServer
from nbserve.runtime import Access, CellBundle, Outcome, Recorder, ServedCell
from nbserve.runtime.program import SETUP_TRACEBACK_BEGIN, SETUP_TRACEBACK_END

__all__ = ["LocalBackend"]

LOG_LINES = 1000


@dataclass
class _Log:
    """What happened to one endpoint: deploys, reloads, each failed input's traceback."""

    lines: deque[str] = field(default_factory=lambda: deque(maxlen=LOG_LINES))

    def note(self, text: str) -> None:
        stamp = time.strftime("%H:%M:%S")
        self.lines.extend(f"{stamp} {line}" for line in text.rstrip().splitlines())

    def failed(self, error: NbserveError) -> None:
        trace = error.remote_traceback if isinstance(error, HandlerError) else ""
        self.note(f"an input failed:\n{trace or f'{type(error).__name__}: {error}'}")


@dataclass
class _Endpoint:
    spec: ServeSpec
    served: ServedCell
    window: MetricsWindow
    recorder: Recorder
    log: _Log

    def drain(self) -> None:
        """Move the recorder's samples into the window (what a Ray replica ships once a second)."""
        requests, batches = self.recorder.drain()
        self.window.add("local", requests, batches, streaming=self.recorder.streaming)


class LocalClient:
    """Calls run the endpoint's current version on nbserve's background loop."""

    def __init__(self, backend: LocalBackend, name: str) -> None:
        self._backend = backend
        self._name = name

    async def call(self, item: Any) -> Outcome:
        return await self._backend._get(self._name).served.call(item)

    async def call_batch(self, items: list[Any]) -> list[Outcome]:
        return await self._backend._get(self._name).served.call_batch(items)

    async def stream(self, item: Any) -> AsyncGenerator[Any, None]:
        chunks = self._backend._get(self._name).served.stream(item)
        try:
            async for chunk in chunks:
                yield chunk
        finally:
            await chunks.aclose()


class LocalBackend(Backend):
    name = "local"

    def __init__(self) -> None:
        self._endpoints: dict[str, _Endpoint] = {}
        self._server = LocalServer(self._route)
        self._token = _tokens.FileToken()  # this user's token, read again when the file changes

    def token(self) -> str | None:
        return _tokens.read_or_create()

    def rotate_token(self) -> str:
        return _tokens.rotate()  # each endpoint reads the file again at its next request

    def _route(self, path: str) -> tuple[ServedCell, str] | None:
        for endpoint in self._endpoints.values():
            route = endpoint.spec.route
            if path == route or path.startswith(route + "/"):
                return endpoint.served, path[len(route) :]
        return None

    def _get(self, name: str) -> _Endpoint:
        endpoint = self._endpoints.get(name)
        if endpoint is None:
            raise EndpointNotFoundError(f"no local endpoint named {name!r} in this process")
        return endpoint

    def _url(self, spec: ServeSpec) -> str:
        return f"http://127.0.0.1:{self._server.port}{spec.route}"

    def _deploy(
        self, spec: ServeSpec, bundle: CellBundle, on_event: Callable[[DeployEvent], None], *, restart: bool
    ) -> EndpointInfo:
        started = time.monotonic()
        _tokens.read_or_create()  # made before the first request can ask for it
        run_sync(self._server.start(local_http_port()))
        taken = next((e.spec.name for e in self._endpoints.values() if e.spec.route == spec.route), None)
        if taken not in (None, spec.name):
            raise SetupFailedError(f"the route {spec.route} is {taken}'s; choose another with --route")
        previous = self._endpoints.get(spec.name)
        on_event(DeployEvent("running the setup in this process", time.monotonic() - started))
        recorder = previous.recorder if previous is not None else Recorder()
        log = previous.log if previous is not None else _Log()
        options = spec.runtime_options(allowed_hosts())
        access = Access(self._token, public=options.public, hosts=frozenset(options.hosts))
        try:
            served = ServedCell(bundle, options, time.time(), access, recorder=recorder, on_failure=log.failed)
        except SetupFailedError as exc:
            text = str(exc).replace(SETUP_TRACEBACK_BEGIN, "").replace(SETUP_TRACEBACK_END, "").strip()
            kept = f"\n\nThe previous version of {spec.name} is serving again." if previous else ""
            raise SetupFailedError(f"the setup code of {spec.name} raised:\n\n{text}{kept}") from None
        window = previous.window if previous is not None else MetricsWindow(spec.name, created_at=served.deployed_at)
        self._endpoints[spec.name] = _Endpoint(spec, served, window, recorder, log)
        if previous is not None:
            run_sync(previous.served.retire())  # its queued inputs finish on the old version
        log.note(f"{'reloaded' if previous else 'deployed'} in {time.monotonic() - started:.2f} s")
        on_event(DeployEvent("running", time.monotonic() - started, running=1, target=1))
        return self.info(spec.name)

    def _delete(self, name: str, *, force: bool) -> None:
        endpoint = self._get(name)
        del self._endpoints[name]
        run_sync(endpoint.served.retire())
        endpoint.served.stop()

    def list(self) -> builtins.list[EndpointInfo]:
        return [self.info(name) for name in sorted(self._endpoints)]

    def info(self, name: str) -> EndpointInfo:
        endpoint = self._get(name)
        try:
            run_sync(endpoint.served.check_health(), timeout=30)
            status = EndpointStatus(name, "running", ReplicaCounts(1, 1), "in this process")
        except Exception as exc:  # noqa: BLE001 - what check_health raises is the reason to show
            status = EndpointStatus(name, "unhealthy", ReplicaCounts(0, 1), str(exc))
        served = endpoint.served
        url = self._url(endpoint.spec)
        return endpoint_info(self.name, endpoint.spec, served.bundle, url, served.deployed_at, status)

    def stats(self, name: str, window_s: float = DEFAULT_WINDOW_S) -> EndpointStats:
        endpoint = self._get(name)
        endpoint.drain()
        return endpoint.window.stats(window_s, now=time.time()).with_status(self.status(name))

    def series(self, name: str, span_s: float = 180.0, step_s: float = 5.0) -> builtins.list[SeriesPoint]:
        endpoint = self._get(name)
        endpoint.drain()
        return endpoint.window.series(span_s, step_s, now=time.time())

    def logs(self, name: str, tail: int = 200) -> str:
        """Deploys, reloads and the traceback of every failed input (``print`` shows in the cell)."""
        lines = builtins.list(self._get(name).log.lines)[-tail:]
        return "\n".join(lines) or "(nothing logged yet)"

    def deployed_cell(self, name: str) -> tuple[ServeSpec, CellBundle]:
        endpoint = self._get(name)
        return endpoint.spec, endpoint.served.bundle

    def client(self, name: str) -> EndpointClient:
        self._get(name)
        return LocalClient(self, name)
