"""The HTTP contract, answered in one place for every backend.

``POST {"input": x}`` answers ``{"output": y}``; ``POST {"inputs": [...]}`` answers
``{"outputs": [...]}``; ``GET`` describes the endpoint. Every error is JSON
``{"error": {"type", "message", ...}}`` with a 4xx status when the request is at fault and
500 when the handler raised. ``POST {"input": x, "stream": true}`` (or any single input with
``Accept: text/event-stream``) answers Server-Sent Events: ``data: {"output": chunk}`` per
chunk, then ``event: end``, or ``event: error`` with the error's JSON if the handler fails
midway. Below the route, ``/v1/...`` is OpenAI's API when the endpoint has ``--openai``
(``nbserve.runtime.openai_api``).

``answer`` takes a request as plain values (a method, a path below the endpoint's route,
headers and a body reader) and the endpoint as an ``HttpTarget`` (its access rules: the
token, the Host, no cross-site requests; and runners for inputs and streams), and returns a
status, headers and bytes, or a stream of bytes. The Ray replica (Starlette), the Modal web
function (bare ASGI) and the in-process backend (aiohttp) are adapters of a few lines around
it, so a change to the contract is made here once.
"""

from __future__ import annotations

import time
from typing import Any

from nbserve._errors import EndpointOverloadedError, RequestError
from nbserve.runtime.bundle import CellBundle, RuntimeOptions
from nbserve.runtime.openai_api import answer_openai, routes
from nbserve.runtime.wire import (
    MAX_BODY_BYTES,
    HttpRequest,
    HttpResponse,
    HttpTarget,
    check_length,
    error_body,
    json_response,
    overloaded_response,
    parse_request,
    refused_response,
    render_outcomes,
    sse_response,
    to_jsonable,
    wants_events,
)

__all__ = ["STREAM_USAGE", "USAGE", "answer", "usage_body"]

USAGE = 'POST {"input": x} -> {"output": y}; POST {"inputs": [x, ...]} -> {"outputs": [y, ...]}'
STREAM_USAGE = 'POST {"input": x, "stream": true} -> Server-Sent Events: data: {"output": chunk} ..., event: end'


def usage_body(options: RuntimeOptions, bundle: CellBundle, deployed_at: float) -> dict[str, Any]:
    """What ``GET`` answers: the endpoint, its handler, batching, streaming and resources."""
    body = {
        "endpoint": options.name,
        "handler": bundle.handler,
        "batched": options.batched,
        "max_batch_size": options.max_batch_size or 1,
        "streams": bundle.streams,
        "resources": options.resources,
        "deployed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(deployed_at)),
        "usage": USAGE,
        "stream_usage": STREAM_USAGE,
    }
    if options.openai:
        body["openai"] = routes(options.openai)
    return body


async def answer(request: HttpRequest, target: HttpTarget) -> HttpResponse:
    """The whole HTTP contract: the answer to ``request``, served by ``target``."""
    path = request.path.rstrip("/")
    if path == "/v1" or path.startswith("/v1/"):  # OpenAI's API: its own error shape, access included
        return await answer_openai(request, path, target)
    try:
        target.access.check(request.headers)
    except RequestError as exc:
        return refused_response(exc, error_body(exc.type_name, exc.message))
    if path:
        message = f"no route {path} below the endpoint {target.options.name}; send requests to its URL itself"
        return json_response(404, error_body("NotFound", message))
    if request.method == "GET":
        return json_response(200, dict(target.usage))  # a description, not traffic
    if request.method != "POST":
        body = error_body("MethodNotAllowed", f"{request.method} is not supported; POST JSON inputs")
        return json_response(405, body, headers=[("allow", "GET, POST")])
    try:
        check_length(request.headers.get("content-length"))
        parsed = parse_request(await request.read_body(MAX_BODY_BYTES))
        streamed = parsed.stream or (parsed.single and wants_events(request.headers))
        if streamed and not parsed.single:
            raise RequestError(422, "WrongShape", 'a stream answers one input: send {"input": x, "stream": true}')
    except RequestError as exc:
        return json_response(exc.status, error_body(exc.type_name, exc.message))
    if streamed:
        return await sse_response(target.stream(parsed.items[0]), lambda chunk: {"output": to_jsonable(chunk)})
    try:
        outcomes = await target.run(parsed.items) if parsed.items else []
    except EndpointOverloadedError as exc:
        return overloaded_response(exc, len(parsed.items))
    except Exception as exc:  # noqa: BLE001 - the runner itself failed (Modal could not reach the class)
        message = f"the endpoint could not run the inputs: {type(exc).__name__}: {exc}"
        return json_response(503, error_body("ServiceUnavailable", message), items=len(parsed.items))
    status, body = render_outcomes(outcomes, parsed.single)
    return json_response(status, body, items=len(parsed.items))
