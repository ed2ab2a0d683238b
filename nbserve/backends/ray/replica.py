"""The Ray Serve deployment that runs a cell: one class for every endpoint.

Handle calls (``call``, ``call_batch``) return ``Outcome`` objects so the notebook can raise
a clean ``HandlerError``; HTTP requests go through ``__call__`` and ``nbserve.protocol``.

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
import functools
import gc
import hashlib
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ray import cloudpickle
from starlette.requests import Request
from starlette.responses import JSONResponse

from nbserve import protocol
from nbserve.backends.ray import collector
from nbserve.backends.ray.collector import ReplicaMetrics
from nbserve.backends.ray.uses import UsedEndpoint
from nbserve.batcher import Batcher
from nbserve.cell import CellBundle
from nbserve.program import CellProgram, Outcome
from nbserve.spec import ServeSpec

__all__ = ["CELL_DEPLOYMENT", "CellReplica", "cell_config", "read_cell_config", "replica_code_version"]

# Every nbserve application holds one deployment of this name; it marks our applications
# among others on a shared cluster.
CELL_DEPLOYMENT = "nbserve_cell"


@functools.cache
def replica_code_version() -> str:
    """Serve's code version of every nbserve replica: it changes when nbserve's code does, so
    replicas of another nbserve are replaced, and only a new cell is reloaded in place."""
    import nbserve

    digest = hashlib.sha256()
    for path in sorted(Path(nbserve.__file__).parent.rglob("*.py")):
        digest.update(path.read_bytes())
    return f"nbserve-{nbserve.__version__}-{digest.hexdigest()[:16]}"


def cell_config(bundle: CellBundle, spec: ServeSpec, deployed_at: float, code_version: str) -> dict[str, Any]:
    """Serve's ``user_config`` for a cell: JSON, as Serve requires, with the cell pickled inside."""
    cell = base64.b64encode(cloudpickle.dumps((bundle, spec))).decode("ascii")
    return {"cell": cell, "deployed_at": deployed_at, "code_version": code_version}


def read_cell_config(config: dict[str, Any]) -> tuple[CellBundle, ServeSpec, float, str]:
    bundle, spec = cloudpickle.loads(base64.b64decode(config["cell"]))
    return bundle, spec, float(config["deployed_at"]), str(config["code_version"])


@dataclass(frozen=True)
class LoadedCell:
    """One version of the cell, set up and ready: what a request runs on from start to end."""

    bundle: CellBundle
    spec: ServeSpec
    deployed_at: float
    program: CellProgram
    batcher: Batcher[Outcome] | None
    code_version: str  # Serve's, for the deploy after this one: the same means reload in place


def _load(bundle: CellBundle, spec: ServeSpec) -> CellProgram:
    used = {name: UsedEndpoint(name) for name in spec.uses}
    return CellProgram(bundle, used)  # raises SetupFailedError with the cell's traceback


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
        self, bundle: CellBundle | None = None, spec: ServeSpec | None = None, deployed_at: float = 0.0
    ) -> None:
        """Without arguments (the notebook), the cell arrives through ``reconfigure``;
        an exported module passes it here and never reconfigures."""
        self._cell: LoadedCell | None = None
        self._metrics: ReplicaMetrics | None = None
        self._recorder: Any = None
        if bundle is not None and spec is not None:
            # Ray Serve runs constructors on an event loop, where blocking on a handle is
            # refused; setup that calls a used endpoint (`embed.map(corpus).result()`) runs
            # in a thread of its own. Serve's router thread delivers the answers meanwhile.
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="nbserve-setup") as pool:
                program = pool.submit(_load, bundle, spec).result()
            self._install(bundle, spec, deployed_at, program, code_version="")

    def _install(
        self, bundle: CellBundle, spec: ServeSpec, deployed_at: float, program: CellProgram, code_version: str
    ) -> None:
        if self._metrics is None:
            self._metrics = ReplicaMetrics(spec.name, deployed_at)
            self._recorder = self._metrics.recorder if self._metrics.enabled else None
        batcher: Batcher[Outcome] | None = None
        if spec.batch is not None:
            on_batch = self._recorder.batch if self._recorder is not None else None
            batcher = Batcher(program.run_batch, spec.batch.max_size, spec.batch.wait_s, on_batch)
        self._cell = LoadedCell(bundle, spec, deployed_at, program, batcher, code_version)

    async def reconfigure(self, config: dict[str, Any]) -> None:
        """Serve's hook for a new ``user_config``: load that version of the cell, then swap."""
        replica = _replica_id()
        current = self._cell
        deployed_at = float(config["deployed_at"])
        if current is not None and current.deployed_at == deployed_at:
            # The version this replica serves (a rollback after another replica failed to load).
            await collector.report_load(current.spec.name, deployed_at, replica, None)
            return
        try:
            bundle, spec, deployed_at, code_version = read_cell_config(config)
            # Off the event loop: the serving version keeps answering while this one sets up.
            program = await asyncio.to_thread(_load, bundle, spec)
        except Exception as exc:  # whatever fails, the serving version stays
            if current is None:
                raise  # a new replica has nothing to serve: Serve reports the failure
            await collector.report_load(current.spec.name, deployed_at, replica, str(exc))
            return  # keep serving the running version; the notebook rolls the config back
        self._install(bundle, spec, deployed_at, program, code_version)
        await collector.report_load(spec.name, deployed_at, replica, None)
        if current is not None:
            if current.batcher is not None:
                await current.batcher.close()  # the inputs it holds finish on the old version
            del current
            _release_memory()

    def _loaded(self) -> LoadedCell:
        if self._cell is None:
            raise RuntimeError("the cell is not loaded yet")  # Serve routes only to ready replicas
        return self._cell

    async def _run_one(self, cell: LoadedCell, item: Any) -> Outcome:
        """One input, through the batcher when the endpoint batches."""
        if cell.batcher is not None:
            return await cell.batcher.submit(item)
        return await cell.program.run_one(item)

    async def call(self, item: Any) -> Outcome:
        """A handle call with one input (``endpoint(x)``, ``--uses``), recorded as one request."""
        started = time.perf_counter()
        outcome = await self._run_one(self._loaded(), item)
        if self._recorder is not None:
            self._recorder.request(started, 1, not outcome.ok)
        return outcome

    async def call_batch(self, items: list[Any]) -> list[Outcome]:
        """A chunk that is already a batch (``Endpoint.map``): straight to the handler."""
        started = time.perf_counter()
        cell = self._loaded()
        if cell.spec.batch is not None:
            if self._recorder is not None:
                self._recorder.batch(len(items))
            outcomes = await cell.program.run_batch(items)
        else:
            outcomes = list(await asyncio.gather(*(cell.program.run_one(x) for x in items)))
        if self._recorder is not None:
            self._recorder.request(started, len(items), not all(o.ok for o in outcomes))
        return outcomes

    def describe(self) -> dict[str, Any]:
        cell = self._loaded()
        return {
            "name": cell.spec.name,
            "handler": cell.bundle.handler,
            "batched": cell.spec.batch is not None,
            "max_batch_size": cell.spec.batch.max_size if cell.spec.batch else 1,
            "resources": cell.spec.resource_line(),
            "route": cell.spec.route,
            "uses": list(cell.spec.uses),
            "deployed_at": cell.deployed_at,
            "code_version": cell.code_version,
            "spec": cell.spec,
            "bundle": cell.bundle,
        }

    def _usage(self) -> dict[str, Any]:
        description = self.describe()
        return {
            "endpoint": description["name"],
            "handler": description["handler"],
            "batched": description["batched"],
            "max_batch_size": description["max_batch_size"],
            "resources": description["resources"],
            "deployed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(description["deployed_at"])),
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
        cell = self._loaded()  # every input of one request runs on the same version
        outcomes = await asyncio.gather(*(self._run_one(cell, item) for item in parsed.items))
        status, body = protocol.render_outcomes(outcomes, parsed.single)
        return status, body, len(parsed.items)


def _replica_id() -> str:
    try:
        from ray import serve

        return str(serve.get_replica_context().replica_id.unique_id)
    except Exception:  # noqa: BLE001 - outside Serve (tests): the process stands for the replica
        return str(os.getpid())
