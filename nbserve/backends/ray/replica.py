"""The Ray Serve deployment that runs a cell: one class for every endpoint.

Handle calls (``call``, ``call_batch``) return ``Outcome`` objects so the notebook can raise
a clean ``HandlerError``; HTTP requests go through ``__call__`` and ``nbserve.protocol``.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from nbserve import protocol
from nbserve.backends.ray.collector import ReplicaMetrics
from nbserve.backends.ray.uses import UsedEndpoint
from nbserve.batcher import Batcher
from nbserve.cell import CellBundle
from nbserve.program import CellProgram, Outcome
from nbserve.spec import ServeSpec

__all__ = ["CELL_DEPLOYMENT", "CellReplica"]

# Every nbserve application holds one deployment of this name; it marks our applications
# among others on a shared cluster.
CELL_DEPLOYMENT = "nbserve_cell"


class CellReplica:
    def __init__(self, bundle: CellBundle, spec: ServeSpec, deployed_at: float) -> None:
        self._bundle = bundle
        self._spec = spec
        self._deployed_at = deployed_at
        used = {name: UsedEndpoint(name) for name in spec.uses}
        if used:
            # Ray Serve runs constructors on an event loop, where blocking on a handle is
            # refused; setup that calls a used endpoint (`embed.map(corpus).result()`) runs
            # in a thread of its own. Serve's router thread delivers the answers meanwhile.
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="nbserve-setup") as pool:
                self._program = pool.submit(CellProgram, bundle, used).result()
        else:
            self._program = CellProgram(bundle)  # SetupFailedError reaches the controller's status
        self._metrics = ReplicaMetrics(spec.name, deployed_at)
        self._recorder = self._metrics.recorder if self._metrics.enabled else None
        self._batcher: Batcher[Outcome] | None = None
        if spec.batch is not None:
            on_batch = self._recorder.batch if self._recorder is not None else None
            self._batcher = Batcher(self._program.run_batch, spec.batch.max_size, spec.batch.wait_s, on_batch)

    async def _run_one(self, item: Any) -> Outcome:
        """One input, through the batcher when the endpoint batches."""
        if self._batcher is not None:
            return await self._batcher.submit(item)
        return await self._program.run_one(item)

    async def call(self, item: Any) -> Outcome:
        """A handle call with one input (``endpoint(x)``, ``--uses``), recorded as one request."""
        started = time.perf_counter()
        outcome = await self._run_one(item)
        if self._recorder is not None:
            self._recorder.request(started, 1, not outcome.ok)
        return outcome

    async def call_batch(self, items: list[Any]) -> list[Outcome]:
        """A chunk that is already a batch (``Endpoint.map``): straight to the handler."""
        started = time.perf_counter()
        if self._spec.batch is not None:
            if self._recorder is not None:
                self._recorder.batch(len(items))
            outcomes = await self._program.run_batch(items)
        else:
            outcomes = list(await asyncio.gather(*(self._program.run_one(x) for x in items)))
        if self._recorder is not None:
            self._recorder.request(started, len(items), not all(o.ok for o in outcomes))
        return outcomes

    def describe(self) -> dict[str, Any]:
        return {
            "name": self._spec.name,
            "handler": self._bundle.handler,
            "batched": self._spec.batch is not None,
            "max_batch_size": self._spec.batch.max_size if self._spec.batch else 1,
            "resources": self._spec.resource_line(),
            "route": self._spec.route,
            "uses": list(self._spec.uses),
            "deployed_at": self._deployed_at,
            "spec": self._spec,
            "bundle": self._bundle,
        }

    def _usage(self) -> dict[str, Any]:
        description = self.describe()
        return {
            "endpoint": description["name"],
            "handler": description["handler"],
            "batched": description["batched"],
            "max_batch_size": description["max_batch_size"],
            "resources": description["resources"],
            "deployed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self._deployed_at)),
            "usage": 'POST {"input": x} -> {"output": y}; POST {"inputs": [x, ...]} -> {"outputs": [y, ...]}',
        }

    def __del__(self) -> None:  # Serve's shutdown hook: ship the last samples
        metrics = getattr(self, "_metrics", None)
        if metrics is not None:
            metrics.stop()

    async def __call__(self, request: Request) -> JSONResponse:
        if request.method == "GET":
            return JSONResponse(self._usage())  # a description, not traffic: not recorded
        started = time.perf_counter()
        status, body, items = await self._answer(request)
        if self._recorder is not None:
            self._recorder.request(started, items, status >= 400)
        headers = {"Allow": "GET, POST"} if status == 405 else None
        return JSONResponse(body, status_code=status, headers=headers)

    async def _answer(self, request: Request) -> tuple[int, Any, int]:
        """Status, JSON body and number of inputs of a non-GET request."""
        if request.method != "POST":
            body = protocol.error_body("MethodNotAllowed", f"{request.method} is not supported; POST JSON inputs")
            return 405, body, 0
        try:
            protocol.check_length(request.headers.get("content-length"))
            parsed = protocol.parse_request(await request.body())
        except protocol.RequestError as exc:
            return exc.status, exc.body(), 0
        outcomes = await asyncio.gather(*(self._run_one(item) for item in parsed.items))
        status, body = protocol.render_outcomes(outcomes, parsed.single)
        return status, body, len(parsed.items)
