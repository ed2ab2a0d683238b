"""Build the Modal app that serves one cell: a class that runs it, and a web function in front.

The class mirrors the Ray replica: ``@modal.enter`` builds a ``CellProgram`` from the cell's
source once per container, and the handler sits behind ``@modal.batched`` (or a plain
``@modal.method`` with ``--no-batch``). Modal refuses any other method on a class with a
batched method, so the HTTP contract lives in a separate ``@modal.asgi_app`` function: a
bare ASGI adapter around ``nbserve.runtime.http.answer`` that forwards each input to the
class.

Both are built inside a function, so they are registered with ``serialized=True`` (Modal
cannot import a class or function defined in a function's scope) and the container receives
them by cloudpickle. That is why the image runs the local Python's major.minor and carries the
local ``nbserve`` package. What the spec means to Modal is ``options`` (pure); the image
helpers and ``http_app`` here do no I/O and never contact Modal either.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

import modal

from nbserve._errors import HandlerError
from nbserve._spec import ServeSpec
from nbserve.backends.modal.options import (
    CLASS_NAME,
    STREAM_METHOD,
    WEB_FUNCTION_NAME,
    batch_options,
    cls_options,
    modal_app_name,
    service_method_name,
)
from nbserve.runtime import Access, CellBundle, CellProgram, Outcome, RuntimeOptions
from nbserve.runtime.http import answer, usage_body
from nbserve.runtime.streams import collect
from nbserve.runtime.wire import HttpRequest, HttpTarget, Runner, Streamer

__all__ = [
    "AsgiApp",
    "ModalCellApp",
    "as_outcome",
    "build_modal_app",
    "build_modal_parts",
    "cell_imports",
    "http_app",
    "image_for",
    "image_packages",
    "service_caller",
    "stream_caller",
]

# Requests one web container handles at once; each only awaits the class, so many fit.
WEB_MAX_CONCURRENT_INPUTS = 100
# Provided by Modal's own image setup or by add_local_python_source, never pip-installed.
_NOT_FROM_PIP = {"modal", "nbserve"}

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
AsgiApp = Callable[[Scope, Receive, Send], Awaitable[None]]


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
    # nbserve imports only the standard library (its runtime included), so the local
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


def service_caller(app_name: str, method_name: str) -> Runner:
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


def stream_caller(app_name: str) -> Streamer:
    """Stream one input's chunks from the deployed class's generator method (``remote_gen``)."""
    objects: list[Any] = []

    async def stream(item: Any) -> AsyncGenerator[Any, None]:
        if not objects:
            objects.append(modal.Cls.from_name(app_name, CLASS_NAME)())
        async for outcome in getattr(objects[0], STREAM_METHOD).remote_gen.aio(item):
            yield as_outcome(outcome).unwrap()  # a HandlerError midway ends the stream with its error

    return stream


# --- the HTTP contract as a bare ASGI app ---------------------------------------------------------


# Modal's proxy checks who calls (``requires_proxy_auth``: the Modal-Key and Modal-Secret
# headers) and fronts the app with a domain of its own, so the runtime checks neither the
# token nor the Host; it still refuses cross-site requests from browsers.
MODAL_ACCESS = Access(lambda: None, public=True, check_host=False)


def http_app(target: HttpTarget) -> AsgiApp:
    """An ASGI app for the runtime's HTTP contract (``answer``), served by ``target``.

    Bare ASGI keeps the container free of web frameworks (``@modal.asgi_app`` needs none). A
    stream goes out chunk by chunk (``more_body``), as Modal's web endpoints allow.
    """

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return

        async def read_body(limit: int) -> bytes:
            chunks: list[bytes] = []
            size = 0
            while size <= limit:
                message = await receive()
                if message["type"] == "http.disconnect":
                    break
                chunk = message.get("body", b"")
                chunks.append(chunk)
                size += len(chunk)
                if not message.get("more_body", False):
                    break
            return b"".join(chunks)

        headers = {bytes(k).decode("latin-1").lower(): bytes(v).decode("latin-1") for k, v in scope.get("headers", [])}
        path = scope.get("path", "")[len(scope.get("root_path", "")) :]
        response = await answer(HttpRequest(scope["method"], headers, read_body, path), target)
        raw_headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers]
        if response.chunks is None:
            raw_headers.append((b"content-length", str(len(response.body)).encode()))
        await send({"type": "http.response.start", "status": response.status, "headers": raw_headers})
        if response.chunks is None:
            await send({"type": "http.response.body", "body": response.body})
            return
        try:
            async for chunk in response.chunks:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        finally:
            await response.chunks.aclose()  # a client that went stops the handler

    return app


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


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
        if bundle.streams:

            class StreamingCellService(SingleCellService):
                # A generator method: Modal sends each yielded value to the caller as it comes
                # (``remote_gen``); the chunks travel as ``Outcome`` so an error ends the stream
                # as data, like ``handle``'s results.
                @modal.method()
                async def handle_stream(self, item: Any) -> AsyncGenerator[Outcome, None]:
                    try:
                        async for chunk in self.program().stream(item):
                            yield Outcome(chunk)
                    except HandlerError as exc:
                        yield Outcome(error=exc)

                # Without a stream, the chunks collected into one output (the HTTP contract's rule).
                @modal.method()
                async def handle(self, item: Any) -> Outcome:
                    try:
                        return Outcome(collect([chunk async for chunk in self.program().stream(item)]))
                    except HandlerError as exc:
                        return Outcome(error=exc)

            service = StreamingCellService
    # Modal tags the class by its __name__; one name for both variants keeps lookups simple.
    service.__name__ = service.__qualname__ = CLASS_NAME
    return service


def _web_factory(
    app_name: str, method_name: str, options: RuntimeOptions, usage: Mapping[str, Any], streams: bool
) -> Callable[[], AsgiApp]:
    """The function behind ``@modal.asgi_app``: it builds the ASGI app inside the web container.

    Its closure holds only plain values (no Modal objects), which is what lets Modal serialize it.
    """

    def web() -> AsgiApp:
        return http_app(modal_target(app_name, method_name, options, usage, streams))

    return web


def modal_target(
    app_name: str, method_name: str, options: RuntimeOptions, usage: Mapping[str, Any], streams: bool
) -> HttpTarget:
    """The endpoint as the web function serves it: each input a call of the deployed class."""
    call = service_caller(app_name, method_name)
    if streams:
        stream = stream_caller(app_name)
    else:

        async def stream(item: Any) -> AsyncGenerator[Any, None]:
            yield (await call([item]))[0].unwrap()  # a plain handler's output is a stream of one chunk

    return HttpTarget(options, usage, MODAL_ACCESS, call, stream, streams=streams)


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

    runtime = spec.runtime_options()
    usage = usage_body(runtime, bundle, time.time())
    web_factory = _web_factory(name, method_name, runtime, usage, bundle.streams)
    # A warm web container whenever the class keeps one, so a call is not two cold starts.
    # Callers show Modal's proxy credentials (Modal-Key, Modal-Secret) unless --public.
    web: modal.Function[..., Any, Any] = app.function(
        image=image, serialized=True, min_containers=min(spec.replicas.min, 1), name=WEB_FUNCTION_NAME
    )(
        modal.concurrent(max_inputs=WEB_MAX_CONCURRENT_INPUTS)(
            modal.asgi_app(requires_proxy_auth=not spec.public)(web_factory)
        )
    )
    return ModalCellApp(
        app=app, service=service, web=web, user_cls=user_cls, web_factory=web_factory, method_name=method_name
    )


def build_modal_app(spec: ServeSpec, bundle: CellBundle) -> modal.App:
    """The Modal app serving the cell: ``modal deploy`` or ``app.deploy()`` puts it online."""
    return build_modal_parts(spec, bundle).app
