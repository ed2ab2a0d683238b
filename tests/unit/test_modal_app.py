"""Offline tests of the Modal backend's app: options, image, structure, and the class's outputs.

Nothing here contacts Modal: apps are only built (decorating is local) and methods run with
``.local()``, in this process. A guard makes any attempt to create a Modal client fail at once
instead of hanging on the network.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import json
import subprocess
import sys
import textwrap
import warnings
from collections.abc import AsyncIterator, Awaitable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import modal
import modal.client
import pytest

from nbserve._cell import analyze_cell, make_bundle
from nbserve._errors import HandlerError, SetupFailedError, SpecError
from nbserve._flags import build_spec
from nbserve._spec import ServeSpec
from nbserve.backends.modal.app import (
    MODAL_ACCESS,
    AsgiApp,
    ModalCellApp,
    as_outcome,
    build_modal_app,
    build_modal_parts,
    cell_imports,
    http_app,
    image_for,
    image_packages,
    service_caller,
)
from nbserve.backends.modal.options import (
    CLASS_NAME,
    DEFAULT_SCALEDOWN_WINDOW_S,
    DEFAULT_STARTUP_TIMEOUT_S,
    WEB_FUNCTION_NAME,
    batch_options,
    cls_options,
    modal_app_name,
    modal_gpu,
)
from nbserve.runtime import CellBundle, CellProgram, Outcome
from nbserve.runtime.wire import MAX_BODY_BYTES, HttpTarget, Runner, Streamer, render_outcomes

REPO = Path(__file__).resolve().parents[2]
T = TypeVar("T")

UPPER_CELL = textwrap.dedent(
    """
    import json

    SETUP_RUNS = 0
    SETUP_RUNS += 1

    def upper(xs):
        if "bad" in xs:
            raise ValueError("cannot handle bad")
        return [x.upper() for x in xs]
    """
).lstrip()

UPPER_ONE_CELL = textwrap.dedent(
    """
    def upper_one(x):
        if x == "bad":
            raise ValueError("cannot handle bad")
        return x.upper()
    """
).lstrip()


@pytest.fixture(autouse=True)
def no_modal_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fail fast if anything asks for a Modal client (offline, it would hang for a minute)."""

    async def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a unit test tried to contact Modal")

    monkeypatch.setattr(modal.client._Client, "from_env", classmethod(refuse))
    yield
    for name in [m for m in sys.modules if m.startswith("nbserve_cell_")]:
        sys.modules.pop(name, None)  # the cell modules of programs built by .local()


def wait(awaitable: Awaitable[T]) -> T:
    """asyncio.run for any awaitable (the ASGI and caller types promise only Awaitable)."""

    async def main() -> T:
        return await awaitable

    return asyncio.run(main())


def bundle_for(source: str, *, name: str = "up", batched: bool = True, namespace: Any = None) -> CellBundle:
    return make_bundle(name, source, analyze_cell(source, batched=batched), batched=batched, namespace=namespace)


def modal_spec(**flags: Any) -> ServeSpec:
    return build_spec(**{"name": "up", "backend": "modal", **flags})


def registered(app: modal.App) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    # Deprecated for modal 1.7 but the only public view of an app's layout before deploying.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return dict(app.registered_classes), dict(app.registered_functions), list(app.registered_web_endpoints)


def same_outcomes(got: list[Outcome], expected: list[Outcome]) -> None:
    assert len(got) == len(expected)
    for mine, theirs in zip(got, expected, strict=True):
        assert mine.ok == theirs.ok
        assert mine.value == theirs.value
        if theirs.error is not None:
            assert isinstance(mine.error, HandlerError)
            assert (mine.error.type_name, mine.error.detail) == (theirs.error.type_name, theirs.error.detail)
            assert mine.error.remote_traceback == theirs.error.remote_traceback


# --- GPU mapping -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flag", "expected"),
    [
        ("T4", "T4"),
        ("a10g", "A10G"),
        ("L40S", "L40S"),
        ("A100", "A100"),
        ("A100-40G", "A100-40GB"),
        ("A100-80G", "A100-80GB"),
        ("A100-80GB:4", "A100-80GB:4"),
        ("H100:2", "H100:2"),
        ("H100:1", "H100"),
        ("RTX-PRO-6000", "RTX-PRO-6000"),
    ],
)
def test_gpu_types_map_to_modal_names(flag: str, expected: str) -> None:
    assert modal_gpu(modal_spec(gpu=flag)) == expected


def test_no_gpu_is_none() -> None:
    assert modal_gpu(modal_spec()) is None


@pytest.mark.parametrize(("flag", "hint"), [("1", "--gpu T4"), ("2", "--gpu A10G:2")])
def test_a_bare_count_asks_for_a_type(flag: str, hint: str) -> None:
    with pytest.raises(SpecError, match="Modal needs a GPU type") as excinfo:
        modal_gpu(modal_spec(gpu=flag))
    assert hint in str(excinfo.value)


def test_a_fraction_is_refused_by_the_spec_and_guarded_here() -> None:
    with pytest.raises(SpecError, match="whole GPUs"):
        modal_spec(gpu="0.5")
    ray_spec = build_spec(name="up", gpu="0.5")  # a Ray spec may carry one into the Modal builder
    with pytest.raises(SpecError, match="whole GPUs"):
        modal_gpu(ray_spec)


@pytest.mark.parametrize("flag", ["V100", "K80", "AMD-Instinct-MI300A"])
def test_gpus_modal_does_not_offer_are_refused(flag: str) -> None:
    with pytest.raises(SpecError, match="Modal offers no"):
        modal_gpu(modal_spec(gpu=flag))


# --- class options ---------------------------------------------------------------------------


def test_cls_options_for_fixed_replicas() -> None:
    options = cls_options(modal_spec(gpu="A100-80G:2", cpus="2", memory="4GiB", replicas="2"))
    assert options["gpu"] == "A100-80GB:2"
    assert options["cpu"] == 2.0
    assert options["memory"] == 4096
    assert (options["min_containers"], options["max_containers"]) == (2, 2)
    assert options["scaledown_window"] == DEFAULT_SCALEDOWN_WINDOW_S


def test_cls_options_for_autoscaling_replicas() -> None:
    options = cls_options(modal_spec(replicas="0:4", memory="1.5GB", cpus="0", scaledown_window="45"))
    assert (options["min_containers"], options["max_containers"]) == (0, 4)
    assert options["scaledown_window"] == 45
    assert options["memory"] == 1431  # 1.5e9 bytes, rounded up to whole MiB
    assert options["cpu"] is None  # Modal's default share rather than a zero request
    assert options["gpu"] is None


def test_cls_options_defaults() -> None:
    options = cls_options(modal_spec())
    assert (options["min_containers"], options["max_containers"]) == (1, 1)
    assert options["cpu"] is None and options["memory"] is None


def test_batch_options() -> None:
    assert batch_options(modal_spec()) == {"max_batch_size": 32, "wait_ms": 5}
    assert batch_options(modal_spec(max_batch_size=8, batch_wait_ms=7)) == {"max_batch_size": 8, "wait_ms": 7}
    assert batch_options(modal_spec(batch_wait_ms=0.6)) == {"max_batch_size": 32, "wait_ms": 1}
    assert batch_options(modal_spec(no_batch=True)) is None


def test_batch_size_above_modals_limit_is_refused() -> None:
    with pytest.raises(SpecError, match="Modal batches at most 1000"):
        batch_options(modal_spec(max_batch_size=2000))


def test_app_name_and_its_length_limit() -> None:
    assert modal_app_name(modal_spec()) == "nbserve-up"
    assert modal_app_name(build_spec(name="e" * 56)) == "nbserve-" + "e" * 56
    with pytest.raises(SpecError, match="at most 56 characters"):
        modal_app_name(build_spec(name="e" * 57))


# --- image -----------------------------------------------------------------------------------


def test_cell_imports() -> None:
    source = "import os, numpy.linalg as la\nfrom torch import nn\nfrom . import sibling\nimport json\n"
    assert cell_imports(source) == {"os", "numpy", "torch", "json"}


def test_image_packages_include_third_party_imports_only() -> None:
    packages = image_packages(
        bundle_for("import numpy as np\nimport json\n\ndef f(xs):\n    return xs\n"), modal_spec()
    )
    assert packages == [f"numpy=={importlib.metadata.version('numpy')}"]


def test_image_packages_follow_modules_captured_from_the_notebook() -> None:
    bundle = bundle_for("def f(xs):\n    return np.asarray(xs)\n", namespace={"np": __import__("numpy")})
    assert bundle.modules == {"np": "numpy"}
    assert [p.split("==")[0] for p in image_packages(bundle, modal_spec())] == ["numpy"]


def test_image_packages_map_import_names_to_distributions() -> None:
    bundle = bundle_for("import cv2\nimport yaml\nimport nbserve\n\ndef f(xs):\n    return xs\n")
    distributions = {"cv2": ["opencv-python"], "yaml": ["PyYAML"], "nbserve": ["nbserve"]}
    packages = image_packages(bundle, modal_spec(), distributions)
    assert [p.split("==")[0] for p in packages] == ["opencv-python", "PyYAML"]  # nbserve ships as source


def test_image_packages_skip_unknown_modules_and_defer_to_pip() -> None:
    source = "import numpy\nimport not_installed_anywhere_xyz\n\ndef f(xs):\n    return xs\n"
    packages = image_packages(bundle_for(source), modal_spec(pip=["NumPy<2", "einops"]))
    assert packages == ["NumPy<2", "einops"]  # --pip names numpy, so the user's pin wins


def test_image_for_builds_an_image_offline() -> None:
    assert isinstance(image_for(bundle_for(UPPER_CELL), modal_spec(env=["HF_HUB_OFFLINE=1"])), modal.Image)


# --- the built app -----------------------------------------------------------------------------


def test_app_registers_the_class_and_the_web_function() -> None:
    parts = build_modal_parts(modal_spec(), bundle_for(UPPER_CELL))
    assert isinstance(parts, ModalCellApp)
    assert parts.app.name == "nbserve-up"
    classes, functions, web_endpoints = registered(parts.app)
    assert list(classes) == [CLASS_NAME]
    assert set(functions) == {f"{CLASS_NAME}.*", WEB_FUNCTION_NAME}
    assert web_endpoints == [WEB_FUNCTION_NAME]
    assert isinstance(build_modal_app(modal_spec(), bundle_for(UPPER_CELL)), modal.App)


def test_class_carries_batching_gpu_and_resources() -> None:
    spec = modal_spec(gpu="A100-80G:2", cpus="4", memory="8GiB", max_batch_size=8, batch_wait_ms=7, replicas="0:3")
    parts = build_modal_parts(spec, bundle_for(UPPER_CELL))
    _, functions, _ = registered(parts.app)
    info = functions[f"{CLASS_NAME}.*"].info()  # local metadata; no network for a local definition
    assert info.batching_info is not None
    assert (info.batching_info.max_batch_size, info.batching_info.wait_ms) == (8, 7)
    assert info.gpus == [("A100-80GB", 2)]
    assert (info.cpu, info.memory_mib) == (4.0, 8192)
    assert info.method_names == ["handle_batch"]
    assert info.startup_timeout == DEFAULT_STARTUP_TIMEOUT_S  # room for a model download in setup


def test_unbatched_class_has_a_plain_method() -> None:
    parts = build_modal_parts(modal_spec(no_batch=True), bundle_for(UPPER_ONE_CELL, batched=False))
    _, functions, _ = registered(parts.app)
    info = functions[f"{CLASS_NAME}.*"].info()
    assert info.batching_info is None
    assert info.method_names == ["handle"] and parts.method_name == "handle"


def test_web_function_is_an_asgi_endpoint_without_gpu() -> None:
    parts = build_modal_parts(modal_spec(gpu="H100"), bundle_for(UPPER_CELL))
    info = parts.web.info()
    assert info.web_info is not None
    assert info.gpus == []
    assert info.concurrency_info is not None and info.concurrency_info.max_inputs == 100


def test_web_function_asks_for_modals_proxy_auth_unless_public() -> None:
    guarded = build_modal_parts(modal_spec(), bundle_for(UPPER_CELL)).web.info().web_info
    public = build_modal_parts(modal_spec(public=True), bundle_for(UPPER_CELL)).web.info().web_info
    assert guarded is not None and guarded.unauthenticated is False  # Modal-Key / Modal-Secret required
    assert public is not None and public.unauthenticated is True


# --- the class's outputs: the same as nbserve's CellProgram (and so the Ray endpoint) ------------


def test_batched_method_gives_the_outputs_of_run_batch() -> None:
    bundle = bundle_for(UPPER_CELL)
    parts = build_modal_parts(modal_spec(), bundle)
    items = ["a", "bad", "c"]
    # .local() on an async method returns a coroutine and calls the function with the list as is.
    got = asyncio.run(parts.service().handle_batch.local(items))
    reference = CellProgram(bundle)
    try:
        expected = asyncio.run(reference.run_batch(items))
    finally:
        reference.close()
    same_outcomes(got, expected)
    assert [o.value for o in got] == ["A", None, "C"]
    assert got[1].error is not None and got[1].error.type_name == "ValueError"


def test_unbatched_method_gives_the_outputs_of_run_one() -> None:
    bundle = bundle_for(UPPER_ONE_CELL, batched=False)
    service = build_modal_parts(modal_spec(no_batch=True), bundle).service()
    reference = CellProgram(bundle)
    try:
        for item in ["a", "bad"]:
            same_outcomes([asyncio.run(service.handle.local(item))], [asyncio.run(reference.run_one(item))])
    finally:
        reference.close()


def test_enter_runs_the_setup_once_and_exit_closes() -> None:
    parts = build_modal_parts(modal_spec(), bundle_for(UPPER_CELL))
    instance = parts.user_cls()  # what a container builds; Modal then calls the @enter method
    instance.start()
    program = instance.program()
    assert program.module.SETUP_RUNS == 1
    assert instance.program() is program
    assert [o.value for o in asyncio.run(instance.handle_batch(["x", "y"]))] == ["X", "Y"]
    instance.stop()
    assert "nbserve_cell_up" not in sys.modules


def test_failing_setup_fails_the_containers_startup() -> None:
    parts = build_modal_parts(
        modal_spec(), bundle_for("raise RuntimeError('no weights')\n\ndef f(xs):\n    return xs\n")
    )
    with pytest.raises(SetupFailedError, match="no weights"):
        parts.user_cls().start()


def test_class_and_web_factory_survive_modals_serializer() -> None:
    """What serialized=True ships: unpickled in a fresh interpreter (as in a container), they run."""
    from modal._serialization import serialize  # the serializer Modal applies to both

    parts = build_modal_parts(modal_spec(), bundle_for(UPPER_CELL))
    payload = serialize((parts.user_cls, parts.web_factory))
    script = textwrap.dedent(
        """
        import asyncio, json, sys
        from modal._serialization import deserialize

        user_cls, web_factory = deserialize(sys.stdin.buffer.read(), None)
        service = user_cls()
        service.start()
        outcomes = asyncio.run(service.handle_batch(["a", "bad"]))
        service.stop()

        sent = []
        async def receive():
            return {"type": "http.request", "body": b"", "more_body": False}
        async def send(message):
            sent.append(message)
        asyncio.run(web_factory()({"type": "http", "method": "GET", "headers": []}, receive, send))
        print(json.dumps({
            "name": user_cls.__name__,
            "values": [o.value for o in outcomes],
            "errors": [o.error.type_name if o.error else None for o in outcomes],
            "usage": json.loads(sent[1]["body"]),
        }))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], input=payload, capture_output=True, cwd=REPO, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr.decode()
    report = json.loads(result.stdout)
    assert report["name"] == CLASS_NAME
    assert report["values"] == ["A", None]
    assert report["errors"] == [None, "ValueError"]
    assert report["usage"]["endpoint"] == "up" and report["usage"]["handler"] == "upper"


# --- calls across Modal's boundary -----------------------------------------------------------------


def test_as_outcome() -> None:
    outcome = Outcome("A")
    assert as_outcome(outcome) is outcome
    failed = as_outcome(TimeoutError("input lost"))
    assert failed.error is not None and (failed.error.type_name, failed.error.detail) == ("TimeoutError", "input lost")
    odd = as_outcome(42)
    assert odd.error is not None and odd.error.type_name == "TypeError"


def test_service_caller_looks_the_class_up_once_and_maps(monkeypatch: pytest.MonkeyPatch) -> None:
    lookups: list[tuple[str, str]] = []
    maps: list[tuple[list[Any], dict[str, Any]]] = []

    class FakeMap:
        async def aio(self, items: list[Any], **kwargs: Any) -> AsyncIterator[Any]:
            maps.append((items, kwargs))
            for item in items:
                yield RuntimeError("container lost") if item == "lost" else Outcome(item.upper())

    class FakeMethod:
        map = FakeMap()

    class FakeObj:
        handle_batch = FakeMethod()

    def from_name(app_name: str, name: str) -> Any:
        lookups.append((app_name, name))
        return FakeObj

    monkeypatch.setattr(modal.Cls, "from_name", from_name)
    call = service_caller("nbserve-up", "handle_batch")
    assert lookups == []  # nothing happens until the first request
    first = wait(call(["a", "lost"]))
    wait(call(["b"]))
    assert lookups == [("nbserve-up", CLASS_NAME)]
    assert maps == [(["a", "lost"], {"return_exceptions": True}), (["b"], {"return_exceptions": True})]
    assert first[0].value == "A"
    assert first[1].error is not None and first[1].error.type_name == "RuntimeError"


# --- the HTTP contract -------------------------------------------------------------------------------


def web_target(call: Runner, usage: dict[str, Any] | None = None, stream: Streamer | None = None) -> HttpTarget:
    """The web function's view of the endpoint, with ``call`` (and ``stream``) standing for the class."""

    async def one_chunk(item: Any) -> AsyncIterator[Any]:
        yield (await call([item]))[0].unwrap()

    options = modal_spec().runtime_options()
    return HttpTarget(options, usage or {}, MODAL_ACCESS, call, stream or one_chunk, streams=stream is not None)  # type: ignore[arg-type]


async def asgi_request(
    app: AsgiApp, method: str, body: bytes = b"", headers: list[tuple[bytes, bytes]] | None = None
) -> tuple[int, dict[bytes, bytes], Any]:
    chunks = [{"type": "http.request", "body": body, "more_body": False}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return chunks.pop(0) if chunks else {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        sent.append(message)

    await app({"type": "http", "method": method, "path": "/", "headers": headers or []}, receive, send)
    start, *bodies = sent
    raw = b"".join(message["body"] for message in bodies)
    if dict(start["headers"]).get(b"content-type") == b"text/event-stream":
        assert [m.get("more_body", False) for m in bodies] == [True] * (len(bodies) - 1) + [False]
        return start["status"], dict(start["headers"]), raw.decode()
    return start["status"], dict(start["headers"]), json.loads(raw)


@pytest.fixture
def local_web() -> Iterator[tuple[AsgiApp, CellProgram]]:
    """The web function's ASGI app, calling the class with .local() instead of over Modal."""
    bundle = bundle_for(UPPER_CELL)
    parts = build_modal_parts(modal_spec(), bundle)
    service = parts.service()

    async def call(items: list[Any]) -> list[Outcome]:
        outcomes: list[Outcome] = await service.handle_batch.local(items)
        return outcomes

    reference = CellProgram(bundle)
    yield http_app(web_target(call, {"endpoint": "up"})), reference
    reference.close()


def test_post_inputs_answers_like_the_ray_endpoint(local_web: tuple[AsgiApp, CellProgram]) -> None:
    app, reference = local_web
    items = ["a", "bad", "c"]
    status, headers, body = asyncio.run(asgi_request(app, "POST", json.dumps({"inputs": items}).encode()))
    assert (status, body) == render_outcomes(asyncio.run(reference.run_batch(items)), single=False)
    assert status == 500 and body["outputs"] == ["A", None, "C"]
    assert body["errors"] == [{"index": 1, "exception": "ValueError", "message": "cannot handle bad"}]
    assert headers[b"content-type"] == b"application/json"


def test_post_one_input(local_web: tuple[AsgiApp, CellProgram]) -> None:
    app, _ = local_web
    assert asyncio.run(asgi_request(app, "POST", b'{"input": "a"}'))[::2] == (200, {"output": "A"})
    assert asyncio.run(asgi_request(app, "POST", b'{"inputs": []}'))[::2] == (200, {"outputs": []})


def test_get_describes_and_other_methods_are_refused(local_web: tuple[AsgiApp, CellProgram]) -> None:
    app, _ = local_web
    assert asyncio.run(asgi_request(app, "GET"))[::2] == (200, {"endpoint": "up"})
    status, headers, body = asyncio.run(asgi_request(app, "PUT"))
    assert (status, headers[b"allow"], body["error"]["type"]) == (405, b"GET, POST", "MethodNotAllowed")


def test_bad_requests_get_the_protocols_errors(local_web: tuple[AsgiApp, CellProgram]) -> None:
    app, _ = local_web
    status, _, body = asyncio.run(asgi_request(app, "POST", b"{not json"))
    assert (status, body["error"]["type"]) == (400, "MalformedJSON")
    too_long = [(b"content-length", str(MAX_BODY_BYTES + 1).encode())]
    status, _, body = asyncio.run(asgi_request(app, "POST", b"{}", too_long))
    assert (status, body["error"]["type"]) == (413, "PayloadTooLarge")


def test_an_unreachable_class_is_a_503() -> None:
    async def broken(items: list[Any]) -> list[Outcome]:
        raise ConnectionError("app not deployed")

    caller: Runner = broken
    status, _, body = asyncio.run(asgi_request(http_app(web_target(caller)), "POST", b'{"input": 1}'))
    assert status == 503
    assert body["error"]["type"] == "ServiceUnavailable" and "app not deployed" in body["error"]["message"]


def test_lifespan_is_acknowledged() -> None:
    messages = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    async def send(message: Any) -> None:
        sent.append(message)

    wait(http_app(web_target(lambda items: asyncio.sleep(0, [])))({"type": "lifespan"}, receive, send))
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


# --- streaming ---------------------------------------------------------------------------------------

STREAM_CELL = textwrap.dedent(
    """
    def spell(word):
        for letter in word:
            if letter == "!":
                raise ValueError("no shouting")
            yield letter.upper()
    """
)


def test_a_streaming_cell_gets_a_generator_method_and_a_collecting_one() -> None:
    # The class as a container runs it: Modal's .local() cannot run an async generator method
    # (modal 1.x awaits what the method returns), so the methods are called on the class itself.
    bundle = bundle_for(STREAM_CELL, batched=False)
    service = build_modal_parts(modal_spec(no_batch=True), bundle).user_cls()
    service.start()

    async def chunks(item: str) -> list[Outcome]:
        return [outcome async for outcome in service.handle_stream(item)]

    streamed = asyncio.run(chunks("abc"))
    assert [o.value for o in streamed] == ["A", "B", "C"]
    failed = asyncio.run(chunks("a!"))
    assert failed[0].value == "A" and failed[-1].error is not None and failed[-1].error.type_name == "ValueError"
    assert asyncio.run(service.handle("abc")).value == "ABC"  # collected, as the HTTP contract does
    service.stop()


def test_a_batched_streaming_cell_is_refused_on_modal() -> None:
    with pytest.raises(SpecError, match="--no-batch"):
        nbserve_deploy_check(STREAM_CELL, modal_spec())


def nbserve_deploy_check(source: str, spec: ServeSpec) -> None:
    from nbserve._api import check_fits

    check_fits(spec, analyze_cell(source, batched=spec.batched))


def test_the_web_function_streams_server_sent_events_chunk_by_chunk() -> None:
    bundle = bundle_for(STREAM_CELL, batched=False)
    service = build_modal_parts(modal_spec(no_batch=True), bundle).user_cls()

    async def call(items: list[Any]) -> list[Outcome]:
        return [await service.handle(item) for item in items]

    async def stream(item: Any) -> AsyncIterator[Any]:
        async for outcome in service.handle_stream(item):
            yield outcome.unwrap()

    app = http_app(web_target(call, stream=stream))
    status, headers, text = asyncio.run(asgi_request(app, "POST", b'{"input": "ab", "stream": true}'))
    assert status == 200 and b"content-length" not in headers
    assert text == 'data: {"output":"A"}\n\ndata: {"output":"B"}\n\nevent: end\ndata: {}\n\n'
    status, _, text = asyncio.run(asgi_request(app, "POST", b'{"input": "a!", "stream": true}'))
    assert text.startswith('data: {"output":"A"}\n\nevent: error\ndata: {"error":{"type":"HandlerError"')
    assert asyncio.run(asgi_request(app, "POST", b'{"input": "ab"}'))[::2] == (200, {"output": "AB"})
