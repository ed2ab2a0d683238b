"""Build the Modal app that serves one cell: a class that runs it, and a web function in front.

The class mirrors the Ray replica: ``@modal.enter`` builds a ``CellProgram`` from the cell's
source once per container, and the handler sits behind ``@modal.batched`` (or a plain
``@modal.method`` with ``--no-batch``). Modal refuses any other method on a class with a
batched method, so the HTTP contract of ``nbserve.protocol`` lives in a separate
``@modal.asgi_app`` function that forwards each input to the class.

Both are built inside a function, so they are registered with ``serialized=True`` (Modal
cannot import a class or function defined in a function's scope) and the container receives
them by cloudpickle. That is why the image runs the local Python's major.minor and carries the
local ``nbserve`` package. The pure helpers (``modal_gpu``, ``cls_options``, ``batch_options``,
``image_packages``, ``http_app``) do no I/O and never contact Modal.
"""

from __future__ import annotations

import ast
import importlib.metadata
import json
import math
import re
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

import modal

from nbserve import protocol
from nbserve.cell import CellBundle
from nbserve.errors import HandlerError, SpecError
from nbserve.program import CellProgram, Outcome
from nbserve.spec import ServeSpec

__all__ = [
    "CLASS_NAME",
    "DEFAULT_SCALEDOWN_WINDOW_S",
    "DEFAULT_STARTUP_TIMEOUT_S",
    "MODAL_GPU_TYPES",
    "WEB_FUNCTION_NAME",
    "AsgiApp",
    "Caller",
    "ModalCellApp",
    "as_outcome",
    "batch_options",
    "build_modal_app",
    "build_modal_parts",
    "cell_imports",
    "cls_options",
    "http_app",
    "image_for",
    "image_packages",
    "modal_app_name",
    "modal_gpu",
    "service_caller",
    "service_method_name",
    "usage_body",
]

# The class's tag in the app (``modal.Cls.from_name(app, CLASS_NAME)``) and the web function's.
CLASS_NAME = "CellService"
WEB_FUNCTION_NAME = "web"
BATCHED_METHOD = "handle_batch"
SINGLE_METHOD = "handle"

# Idle seconds before Modal stops a container above min_containers: long enough that a
# notebook's bursts of calls reuse a warm (model-loaded) container.
DEFAULT_SCALEDOWN_WINDOW_S = 300
# A cell's setup often downloads and loads a model, which can exceed Modal's 300 s default.
DEFAULT_STARTUP_TIMEOUT_S = 20 * 60
# Requests one web container handles at once; each only awaits the class, so many fit.
WEB_MAX_CONCURRENT_INPUTS = 100
# modal.batched refuses larger batches (modal._partial_function.MAX_MAX_BATCH_SIZE).
MODAL_MAX_BATCH_SIZE = 1000
MODAL_MAX_NAME_LENGTH = 64

# Ray's accelerator names (nbserve's) that Modal spells differently.
_MODAL_GPU_NAMES = {"A100-40G": "A100-40GB", "A100-80G": "A100-80GB"}
# The GPU types Modal offers (https://modal.com/docs/guide/gpu), in Modal's spelling.
MODAL_GPU_TYPES = (
    "T4", "L4", "A10G", "L40S", "A100", "A100-40GB", "A100-80GB", "RTX-PRO-6000", "H100", "H200", "B200",
)  # fmt: skip
# Provided by Modal's own image setup or by add_local_python_source, never pip-installed.
_NOT_FROM_PIP = {"modal", "nbserve"}

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
AsgiApp = Callable[[Scope, Receive, Send], Awaitable[None]]
Caller = Callable[[list[Any]], Awaitable[list[Outcome]]]


# --- spec -> Modal options (pure) -------------------------------------------------------------


def modal_app_name(spec: ServeSpec) -> str:
    name = f"nbserve-{spec.name}"
    if len(name) > MODAL_MAX_NAME_LENGTH:
        raise SpecError(
            "NAME",
            spec.name,
            f"the Modal app is named {name!r}, above Modal's limit of {MODAL_MAX_NAME_LENGTH} characters",
            f"Use an endpoint name of at most {MODAL_MAX_NAME_LENGTH - len('nbserve-')} characters.",
        )
    return name


def modal_gpu(spec: ServeSpec) -> str | None:
    """Modal's ``gpu=`` string for the spec's GPUs, e.g. ``"A10G"`` or ``"A100-80GB:2"``."""
    gpu = spec.gpu
    if gpu is None:
        return None
    if gpu.is_fractional:  # spec parsing refuses it with --backend modal; a ray spec may carry one
        raise SpecError(
            "--gpu",
            gpu,
            "Modal gives each container whole GPUs, so a fraction cannot be honoured",
            "Name a GPU type instead, e.g. --gpu T4 or --gpu A10G, or use --backend ray to share a GPU.",
        )
    if gpu.type is None:
        raise SpecError(
            "--gpu",
            gpu,
            "Modal needs a GPU type: a bare count does not say which card to rent",
            f"Name one, e.g. --gpu T4 or --gpu A10G (small, cheap GPUs){_count_hint(gpu.count)}.",
        )
    name = _MODAL_GPU_NAMES.get(gpu.type, gpu.type)
    if name not in MODAL_GPU_TYPES:
        raise SpecError(
            "--gpu",
            gpu,
            f"Modal offers no {gpu.type} GPUs (it offers {', '.join(MODAL_GPU_TYPES)})",
            "Pick one of those, or use --backend ray on a cluster that has this card.",
        )
    count = int(gpu.count)
    return name if count == 1 else f"{name}:{count}"


def _count_hint(count: float) -> str:
    return f", or --gpu A10G:{int(count)} for {int(count)} of them" if count > 1 else ""


def cls_options(spec: ServeSpec) -> dict[str, Any]:
    """Keyword arguments of ``@app.cls`` for the class that runs the cell."""
    options: dict[str, Any] = {
        "gpu": modal_gpu(spec),
        # Modal reads 0 (and None) as its default share; Ray's --cpus 0 means "no reservation".
        "cpu": spec.cpus or None,
        # Modal takes MiB; round up so the container never gets less than asked for.
        "memory": math.ceil(spec.memory_bytes / 2**20) if spec.memory_bytes else None,
        "min_containers": spec.replicas.min,
        "max_containers": spec.replicas.max,
        "scaledown_window": spec.scaledown_window_s or DEFAULT_SCALEDOWN_WINDOW_S,
        "startup_timeout": DEFAULT_STARTUP_TIMEOUT_S,
    }
    return options


def batch_options(spec: ServeSpec) -> dict[str, int] | None:
    """Keyword arguments of ``@modal.batched``, or None with ``--no-batch``."""
    if spec.batch is None:
        return None
    if spec.batch.max_size > MODAL_MAX_BATCH_SIZE:
        raise SpecError(
            "--max-batch-size",
            spec.batch.max_size,
            f"Modal batches at most {MODAL_MAX_BATCH_SIZE} inputs",
            f"Use --max-batch-size {MODAL_MAX_BATCH_SIZE} or less, or --backend ray.",
        )
    # Modal counts whole milliseconds; round so 0.005 s is 5 ms, not 4 from float error.
    return {"max_batch_size": spec.batch.max_size, "wait_ms": round(spec.batch.wait_s * 1000)}


def service_method_name(spec: ServeSpec) -> str:
    """The class's method that callers invoke with one input (batched or not)."""
    return BATCHED_METHOD if spec.batch is not None else SINGLE_METHOD


# --- image (pure helpers, then the Image) ------------------------------------------------------


def cell_imports(source: str) -> set[str]:
    """Top-level names of the modules ``source`` imports (absolute imports only)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def _canonical(distribution: str) -> str:
    return re.sub(r"[-_.]+", "-", distribution).lower()


def _requirement_name(requirement: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    return _canonical(match.group(1)) if match else requirement


def _pinned(distribution: str) -> str:
    """``dist==version`` as installed here, so the container runs what the notebook tested.

    A local version label (``2.3.0+cu121``) names no PyPI release, so it is dropped.
    """
    try:
        version = importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return distribution
    return f"{distribution}=={version.split('+')[0]}"


def image_packages(
    bundle: CellBundle,
    spec: ServeSpec,
    distributions: Mapping[str, list[str]] | None = None,
) -> list[str]:
    """The pip requirements of the container: what the cell imports, then ``spec.pip``.

    Import names map to distributions through the local environment (``import cv2`` needs
    ``opencv-python``); the standard library and modules installed nowhere here are skipped.
    A distribution that ``--pip`` names is left to the user's requirement. The order is
    stable, so Modal's image cache is hit again for the same cell.
    """
    if distributions is None:
        distributions = importlib.metadata.packages_distributions()
    modules = cell_imports(bundle.source) | {m.split(".")[0] for m in bundle.modules.values()}
    user_named = {_requirement_name(r) for r in spec.pip}
    found: dict[str, str] = {}
    for module in sorted(modules - set(sys.stdlib_module_names)):
        for distribution in distributions.get(module, []):
            key = _canonical(distribution)
            if key not in user_named and key not in _NOT_FROM_PIP:
                found.setdefault(key, distribution)
    return [_pinned(d) for _, d in sorted(found.items())] + list(spec.pip)


def image_for(bundle: CellBundle, spec: ServeSpec) -> modal.Image:
    """Debian slim with this Python, the cell's packages, ``--env`` and the local nbserve."""
    # cloudpickle (serialized=True) needs the same Python major.minor on both sides.
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    image = modal.Image.debian_slim(python_version=python)
    packages = image_packages(bundle, spec)
    if packages:
        image = image.pip_install(*packages)
    if spec.env:
        image = image.env(spec.env_vars)
    # nbserve's runtime (program, protocol) imports only the standard library, so the local
    # package is enough; Modal requires local files to be the last layer.
    return image.add_local_python_source("nbserve")


# --- calls across Modal's boundary ---------------------------------------------------------------


def as_outcome(result: object) -> Outcome:
    """One result of ``map(..., return_exceptions=True)`` as an ``Outcome``.

    The class returns ``Outcome`` objects (they pickle, ``HandlerError`` included), so a
    handler error reaches the caller as data, with its type name and cell traceback, exactly
    as the Ray replica's handle calls return it. Raising instead would fail every input of
    the batch on Modal's side and lose nbserve's per-input isolation. An exception here is
    Modal's own (a container that could not start, a lost input) and fails only its input.
    """
    if isinstance(result, Outcome):
        return result
    if isinstance(result, BaseException):
        return Outcome(error=HandlerError(type(result).__name__, str(result)))
    return Outcome(error=HandlerError("TypeError", f"the endpoint returned a {type(result).__name__}, not an Outcome"))


def service_caller(app_name: str, method_name: str) -> Caller:
    """Call the deployed class's method once per input, from inside the app's web function.

    The class is looked up by name rather than captured: a serialized function can only carry
    Modal objects that are already hydrated, and Modal hydrates the class after it has
    serialized the web function. The lookup needs a deployed app (``modal deploy``).
    """
    objects: list[Any] = []  # the class instance, looked up once per web container

    async def call(items: list[Any]) -> list[Outcome]:
        if not objects:
            objects.append(modal.Cls.from_name(app_name, CLASS_NAME)())
        method = getattr(objects[0], method_name)
        return [as_outcome(r) async for r in method.map.aio(items, return_exceptions=True)]

    return call


# --- the HTTP contract as a bare ASGI app ---------------------------------------------------------


def http_app(call: Caller, usage: Mapping[str, Any]) -> AsgiApp:
    """An ASGI app for ``nbserve.protocol``: GET describes the endpoint, POST runs inputs.

    Bare ASGI keeps the container free of web frameworks (``@modal.asgi_app`` needs none).
    """

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        method = scope["method"]
        if method == "GET":
            await _send_json(send, 200, dict(usage))
            return
        if method != "POST":
            body = protocol.error_body("MethodNotAllowed", f"{method} is not supported; POST JSON inputs")
            await _send_json(send, 405, body, [(b"allow", b"GET, POST")])
            return
        try:
            protocol.check_length(_header(scope, b"content-length"))
            parsed = protocol.parse_request(await _read_body(receive))
        except protocol.RequestError as exc:
            await _send_json(send, exc.status, exc.body())
            return
        try:
            outcomes = await call(parsed.items) if parsed.items else []
        except Exception as exc:  # noqa: BLE001 - Modal could not reach the class at all
            message = f"the endpoint's class could not be called: {type(exc).__name__}: {exc}"
            await _send_json(send, 503, protocol.error_body("ServiceUnavailable", message))
            return
        status, body = protocol.render_outcomes(outcomes, parsed.single)
        await _send_json(send, status, body)

    return app


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


async def _read_body(receive: Receive) -> bytes:
    """The request body, read no further than one byte past the limit (which parse refuses)."""
    chunks: list[bytes] = []
    size = 0
    while size <= protocol.MAX_BODY_BYTES:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def _send_json(
    send: Send, status: int, body: Mapping[str, Any], headers: Iterable[tuple[bytes, bytes]] = ()
) -> None:
    # The same encoding as Starlette's JSONResponse, which the Ray endpoint answers with.
    data = json.dumps(body, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()
    response_headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(data)).encode()),
        *headers,
    ]
    await send({"type": "http.response.start", "status": status, "headers": response_headers})
    await send({"type": "http.response.body", "body": data})


def usage_body(spec: ServeSpec, bundle: CellBundle, deployed_at: float) -> dict[str, Any]:
    """What GET answers: the same fields as the Ray endpoint's."""
    return {
        "endpoint": spec.name,
        "handler": bundle.handler,
        "batched": spec.batch is not None,
        "max_batch_size": spec.batch.max_size if spec.batch else 1,
        "resources": spec.resource_line(),
        "deployed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(deployed_at)),
        "usage": 'POST {"input": x} -> {"output": y}; POST {"inputs": [x, ...]} -> {"outputs": [y, ...]}',
    }


# --- the app --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModalCellApp:
    """The built app and its parts.

    ``service`` is the registered ``modal.Cls`` and ``web`` the registered web function;
    ``user_cls`` and ``web_factory`` are what Modal serializes into the containers.
    """

    app: modal.App
    service: Any
    web: modal.Function[..., Any, Any]
    user_cls: type
    web_factory: Callable[[], AsgiApp]
    method_name: str


def _service_class(bundle: CellBundle, batch: Mapping[str, int] | None) -> type:
    """The class Modal runs in each GPU container (not yet registered with an app)."""

    class CellService:
        @modal.enter()
        def start(self) -> None:
            self.program()  # SetupFailedError fails the container's startup, with the traceback

        @modal.exit()
        def stop(self) -> None:
            program: CellProgram | None = getattr(self, "_program", None)
            if program is not None:
                program.close()

        def program(self) -> CellProgram:
            # Modal calls @modal.enter before any input in a container, but ``.local()`` on an
            # async method skips it (modal 1.6 only runs __aenter__ there), so start lazily too.
            program: CellProgram | None = getattr(self, "_program", None)
            if program is None:
                program = self._program = CellProgram(bundle)
            return program

    if batch is not None:
        max_batch_size, wait_ms = batch["max_batch_size"], batch["wait_ms"]

        class BatchedCellService(CellService):
            # Each caller passes one input; Modal gathers up to max_batch_size of them into
            # ``items`` and hands each caller its element of the returned list.
            @modal.batched(max_batch_size=max_batch_size, wait_ms=wait_ms)
            async def handle_batch(self, items: list[Any]) -> list[Outcome]:
                return await self.program().run_batch(items)

        service: type = BatchedCellService
    else:

        class SingleCellService(CellService):
            @modal.method()
            async def handle(self, item: Any) -> Outcome:
                return await self.program().run_one(item)

        service = SingleCellService
    # Modal tags the class by its __name__; one name for both variants keeps lookups simple.
    service.__name__ = service.__qualname__ = CLASS_NAME
    return service


def _web_factory(app_name: str, method_name: str, usage: Mapping[str, Any]) -> Callable[[], AsgiApp]:
    """The function behind ``@modal.asgi_app``: it builds the ASGI app inside the web container.

    Its closure holds only plain values (no Modal objects), which is what lets Modal serialize it.
    """

    def web() -> AsgiApp:
        return http_app(service_caller(app_name, method_name), usage)

    return web


def build_modal_parts(spec: ServeSpec, bundle: CellBundle) -> ModalCellApp:
    """Build (offline) the app for ``spec`` and ``bundle``; deploying it is the caller's step."""
    name = modal_app_name(spec)
    options = cls_options(spec)
    batch = batch_options(spec)
    method_name = service_method_name(spec)
    image = image_for(bundle, spec)
    app = modal.App(name)

    user_cls = _service_class(bundle, batch)
    service = app.cls(image=image, serialized=True, **options)(user_cls)

    web_factory = _web_factory(name, method_name, usage_body(spec, bundle, time.time()))
    # A warm web container whenever the class keeps one, so a call is not two cold starts.
    web: modal.Function[..., Any, Any] = app.function(
        image=image, serialized=True, min_containers=min(spec.replicas.min, 1), name=WEB_FUNCTION_NAME
    )(modal.concurrent(max_inputs=WEB_MAX_CONCURRENT_INPUTS)(modal.asgi_app()(web_factory)))
    return ModalCellApp(
        app=app, service=service, web=web, user_cls=user_cls, web_factory=web_factory, method_name=method_name
    )


def build_modal_app(spec: ServeSpec, bundle: CellBundle) -> modal.App:
    """The Modal app serving the cell: ``modal deploy`` or ``app.deploy()`` puts it online."""
    return build_modal_parts(spec, bundle).app
