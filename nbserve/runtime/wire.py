"""The shapes and encodings of nbserve's HTTP contract, below the routes that answer it.

A request as plain values (``HttpRequest``), an answer (``HttpResponse``), the endpoint as its
routes see it (``HttpTarget``); the body's limits and parsing, the JSON and Server-Sent Events
encodings, and the JSON errors. ``nbserve.runtime.http`` answers the contract with these and
``nbserve.runtime.openai_api`` answers OpenAI's routes with them, so neither imports the other's
routes.
"""

from __future__ import annotations

import json
import math
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from nbserve._errors import EndpointOverloadedError, EndpointTimeoutError, HandlerError, NbserveError, RequestError
from nbserve.runtime.access import Access
from nbserve.runtime.bundle import RuntimeOptions
from nbserve.runtime.program import Outcome, safe_str

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_INPUTS",
    "HttpRequest",
    "HttpResponse",
    "HttpTarget",
    "ParsedRequest",
    "Runner",
    "Streamer",
    "check_length",
    "encode_json",
    "error_body",
    "json_response",
    "overloaded_response",
    "parse_request",
    "refused_response",
    "render_outcomes",
    "sse_event",
    "sse_response",
    "to_jsonable",
    "wants_events",
]

MAX_BODY_BYTES = 32 * 2**20
MAX_INPUTS = 10_000
_HOWTO = 'send a JSON object {"input": x} for one input or {"inputs": [x, ...]} for several'

# Runs the inputs of one request and gives one outcome per input, in order.
Runner = Callable[[list[Any]], Awaitable[list[Outcome]]]
# The chunks of one input's answer, as the handler yields them (``ServedCell.stream``).
Streamer = Callable[[Any], AsyncGenerator[Any, None]]
# Reads the request body, at most ``limit + 1`` bytes (so that a body over the limit shows).
BodyReader = Callable[[int], Awaitable[bytes]]
SSE_HEADERS = (("content-type", "text/event-stream"), ("cache-control", "no-cache"), ("x-accel-buffering", "no"))


@dataclass(frozen=True)
class HttpTarget:
    """An endpoint as its HTTP routes see it: how it is served, what ``GET`` says, who may
    call, and how to run a request's inputs (``run``) or stream one input's answer (``stream``)."""

    options: RuntimeOptions
    usage: Mapping[str, Any]
    access: Access
    run: Runner
    stream: Streamer
    streams: bool = False  # the handler yields its output in chunks
    # Tokens in a text, for the usage figures of OpenAI's routes: the cell's count_tokens(text)
    # where it defines one, else words.
    count_tokens: Callable[[str], int] = lambda text: len(text.split())


@dataclass(frozen=True)
class HttpRequest:
    method: str
    headers: Mapping[str, str]  # names in lower case
    read_body: BodyReader
    path: str = ""  # below the endpoint's route: "" for its contract, "/v1/embeddings" for OpenAI's


@dataclass(frozen=True)
class HttpResponse:
    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = (("content-type", "application/json"),)
    items: int = 0  # inputs the request carried, for the recorder
    chunks: AsyncGenerator[bytes, None] | None = None  # a streamed body, sent as it comes (``body`` is empty)

    @property
    def failed(self) -> bool:
        return self.status >= 400


@dataclass(frozen=True)
class ParsedRequest:
    items: list[Any]
    single: bool
    stream: bool = False


def error_body(type_name: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"type": type_name, "message": message, **extra}}


def encode_json(body: Any) -> bytes:
    """JSON as Starlette's ``JSONResponse`` writes it: compact, UTF-8, no NaN.

    Text that UTF-8 cannot carry (a lone surrogate such as ``"\\ud800"``, which JSON input may
    hold) is written with JSON's ``\\u`` escapes instead, so every answer is valid JSON.
    """
    try:
        return json.dumps(body, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(body, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode("ascii")


def json_response(status: int, body: Any, *, items: int = 0, headers: Sequence[tuple[str, str]] = ()) -> HttpResponse:
    return HttpResponse(status, encode_json(body), (("content-type", "application/json"), *headers), items)


def refused_response(exc: RequestError, body: Mapping[str, Any]) -> HttpResponse:
    """The answer to a request the access rules refused (a 401 names the scheme it wants)."""
    challenge = [("www-authenticate", 'Bearer realm="nbserve"')] if exc.status == 401 else []
    return json_response(exc.status, body, headers=challenge)


def wants_events(headers: Mapping[str, str]) -> bool:
    """Whether the client asked for Server-Sent Events (``Accept: text/event-stream``)."""
    return "text/event-stream" in headers.get("accept", "").lower()


def overloaded_response(exc: EndpointOverloadedError, items: int = 1) -> HttpResponse:
    retry = [("retry-after", str(max(1, round(exc.retry_after_s))))]
    return json_response(503, error_body("Overloaded", str(exc)), items=items, headers=retry)


def error_response(error: NbserveError) -> HttpResponse:
    """The JSON answer for a stream that failed before its first chunk (nothing was sent yet)."""
    if isinstance(error, EndpointOverloadedError):
        return overloaded_response(error)
    if isinstance(error, EndpointTimeoutError):
        return json_response(504, error_body("Timeout", str(error)), items=1)
    return json_response(500, error_body("HandlerError", str(error), **_exception_of(error)), items=1)


def sse_event(data: Any, event: str | None = None) -> bytes:
    """One Server-Sent Event; compact JSON holds no line break, so ``data`` is one line."""
    head = f"event: {event}\n" if event else ""
    return head.encode() + b"data: " + (data if isinstance(data, bytes) else encode_json(data)) + b"\n\n"


def _stream_error(error: BaseException) -> dict[str, Any]:
    if isinstance(error, (TypeError, ValueError, RecursionError)):  # a chunk JSON cannot carry
        return error_body("OutputNotSerializable", safe_str(error))
    if isinstance(error, EndpointTimeoutError):
        return error_body("Timeout", str(error))
    return error_body("HandlerError", safe_str(error), **_exception_of(error))


async def sse_response(
    chunks: AsyncGenerator[Any, None],
    encode: Callable[[Any], Any],
    *,
    end: Callable[[], bytes] = lambda: sse_event({}, "end"),
    error_event: Callable[[dict[str, Any]], bytes] = lambda body: sse_event(body, "error"),
) -> HttpResponse:
    """A streamed answer: each chunk as the event ``encode(chunk)``, then the events ``end()``.

    The first chunk is awaited here, so a stream that fails before it (turned away, a handler
    error at the start, a timeout) is an ordinary JSON error with its status; an error after it
    is an error event, and the stream ends there.
    """
    try:
        first = await chunks.__anext__()
    except StopAsyncIteration:
        first = _EMPTY
    except NbserveError as exc:
        await chunks.aclose()
        return error_response(exc)

    async def body() -> AsyncGenerator[bytes, None]:
        try:
            if first is not _EMPTY:
                yield sse_event(encode_json(encode(first)))
                async for chunk in chunks:
                    yield sse_event(encode_json(encode(chunk)))
            yield end()
        except (NbserveError, TypeError, ValueError, RecursionError) as exc:
            yield error_event(_stream_error(exc))
        finally:
            await chunks.aclose()  # the client went, or the stream failed: the handler stops

    return HttpResponse(200, b"", SSE_HEADERS, items=1, chunks=body())


_EMPTY: Any = object()


def check_length(content_length: str | None) -> None:
    """Refuse a body announced as too large before reading it."""
    if content_length is None:
        return
    try:
        size = int(content_length)
    except ValueError:
        raise RequestError(400, "BadRequest", f"invalid Content-Length header {content_length!r}") from None
    if size < 0:
        raise RequestError(400, "BadRequest", f"invalid Content-Length header {content_length!r}")
    if size > MAX_BODY_BYTES:
        raise _too_large(size)


def _too_large(size: int) -> RequestError:
    return RequestError(
        413,
        "PayloadTooLarge",
        f"the request body is {size} bytes, above the limit of {MAX_BODY_BYTES} bytes; "
        "split the inputs over several requests",
    )


def parse_request(body: bytes) -> ParsedRequest:
    """Parse a request body, or raise ``RequestError`` saying what is wrong and how to fix it."""
    if len(body) > MAX_BODY_BYTES:
        raise _too_large(len(body))
    if not body.strip():
        raise RequestError(400, "EmptyBody", f"the request body is empty; {_HOWTO}")
    try:
        payload = json.loads(body.decode("utf-8-sig"))  # a BOM is allowed (RFC 8259)
    except UnicodeDecodeError:
        raise RequestError(400, "MalformedJSON", f"the body is not UTF-8 text; {_HOWTO}") from None
    except json.JSONDecodeError as exc:
        raise RequestError(
            400, "MalformedJSON", f"malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}; {_HOWTO}"
        ) from None
    except RecursionError:
        raise RequestError(400, "MalformedJSON", "the JSON is nested too deeply to read; flatten it") from None
    except ValueError as exc:  # e.g. an integer of more digits than Python converts (4300)
        raise RequestError(400, "MalformedJSON", f"the JSON holds a value that cannot be read: {exc}") from None
    if not isinstance(payload, dict):
        raise RequestError(422, "WrongShape", f"the body is a JSON {_json_type(payload)}; {_HOWTO}")
    stream = payload.pop("stream", False)
    if not isinstance(stream, bool):
        raise RequestError(422, "WrongShape", f'"stream" must be true or false, got a {_json_type(stream)}')
    keys = set(payload)
    if keys == {"input"}:
        return ParsedRequest([payload["input"]], single=True, stream=stream)
    if keys == {"inputs"}:
        items = payload["inputs"]
        if not isinstance(items, list):
            raise RequestError(422, "WrongShape", f'"inputs" must be a JSON array, got a {_json_type(items)}')
        if len(items) > MAX_INPUTS:
            raise RequestError(
                413,
                "TooManyInputs",
                f"{len(items)} inputs in one request, above the limit of {MAX_INPUTS}; split them",
            )
        return ParsedRequest(items, single=False, stream=stream)
    if {"input", "inputs"} <= keys:
        raise RequestError(422, "WrongShape", 'send either "input" or "inputs", not both')
    unknown = sorted(keys - {"input", "inputs"})
    if not ({"input", "inputs"} & keys):
        raise RequestError(422, "MissingInput", f'no "input" or "inputs" key (got {unknown}); {_HOWTO}')
    raise RequestError(422, "WrongShape", f"unknown key(s) {unknown}; {_HOWTO}")


def _json_type(value: Any) -> str:
    return {list: "array", str: "string", bool: "boolean", type(None): "null", dict: "object"}.get(
        type(value), "number"
    )


def to_jsonable(value: Any) -> Any:
    """Turn a handler's output into JSON types; arrays and tensors via ``tolist()``."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise TypeError(f"the output {value} is not a finite number, which JSON cannot carry")
        return value
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    tolist = getattr(value, "tolist", None)  # numpy arrays and scalars, torch tensors
    if callable(tolist):
        return to_jsonable(tolist())
    raise TypeError(
        f"an output of type {type(value).__name__} cannot be sent as JSON; return lists, numbers or strings"
    )


def _outcome_json(outcome: Outcome) -> Outcome:
    """The outcome with its value in JSON types, checked to encode; one that cannot fails alone."""
    if outcome.error is not None:
        return outcome
    try:
        value = to_jsonable(outcome.value)
        encode_json(value)
    except (TypeError, ValueError, RecursionError) as exc:
        return Outcome(error=HandlerError("OutputNotSerializable", safe_str(exc)))
    return Outcome(value)


def _exception_of(error: BaseException) -> dict[str, str]:
    """The handler's exception type, for an error body (``{"exception": "ValueError"}``)."""
    return {"exception": error.type_name if isinstance(error, HandlerError) else type(error).__name__}


def _item_error(error: NbserveError) -> dict[str, Any]:
    if isinstance(error, HandlerError):
        return {"exception": error.type_name, "message": error.detail}
    return {"exception": type(error).__name__, "message": str(error)}


def render_outcomes(outcomes: Sequence[Outcome], single: bool) -> tuple[int, dict[str, Any]]:
    """The status and JSON body for the outcomes of one request.

    A handler error is a 500; inputs that all timed out are a 504; every other input of the
    request keeps its output.
    """
    converted = [_outcome_json(o) for o in outcomes]
    failed = [(i, o.error) for i, o in enumerate(converted) if o.error is not None]
    timed_out = bool(failed) and all(isinstance(e, EndpointTimeoutError) for _, e in failed)
    if single:
        outcome = converted[0]
        if outcome.error is None:
            return 200, {"output": outcome.value}
        if isinstance(outcome.error, EndpointTimeoutError):
            return 504, error_body("Timeout", str(outcome.error))
        return 500, error_body("HandlerError", str(outcome.error), exception=_item_error(outcome.error)["exception"])
    outputs = [o.value if o.error is None else None for o in converted]
    if not failed:
        return 200, {"outputs": outputs}
    errors = [{"index": i, **_item_error(e)} for i, e in failed if e is not None]
    if timed_out and len(failed) == len(converted):
        body = error_body("Timeout", f"none of the {len(converted)} inputs was answered in time")
        return 504, {**body, "outputs": outputs, "errors": errors}
    body = error_body("HandlerError", f"the handler raised for {len(failed)} of {len(converted)} inputs")
    return 500, {**body, "outputs": outputs, "errors": errors}
