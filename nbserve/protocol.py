"""The HTTP contract, as plain functions of bytes and outcomes (no web framework here).

``POST {"input": x}`` answers ``{"output": y}``; ``POST {"inputs": [...]}`` answers
``{"outputs": [...]}``. Every error is JSON ``{"error": {"type", "message", ...}}`` with a
4xx status when the request is at fault and 500 when the handler raised.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from nbserve.errors import HandlerError
from nbserve.program import Outcome

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_INPUTS",
    "ParsedRequest",
    "RequestError",
    "error_body",
    "parse_request",
    "render_outcomes",
    "to_jsonable",
]

MAX_BODY_BYTES = 32 * 2**20
MAX_INPUTS = 10_000


class RequestError(Exception):
    """A request the endpoint refuses, with the HTTP status to answer."""

    def __init__(self, status: int, type_name: str, message: str) -> None:
        self.status = status
        self.type_name = type_name
        self.message = message
        super().__init__(message)

    def body(self) -> dict[str, Any]:
        return error_body(self.type_name, self.message)


@dataclass(frozen=True)
class ParsedRequest:
    items: list[Any]
    single: bool


def error_body(type_name: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"type": type_name, "message": message, **extra}}


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


_USAGE = 'send a JSON object {"input": x} for one input or {"inputs": [x, ...]} for several'


def parse_request(body: bytes) -> ParsedRequest:
    """Parse a request body, or raise ``RequestError`` saying what is wrong and how to fix it."""
    if len(body) > MAX_BODY_BYTES:
        raise _too_large(len(body))
    if not body.strip():
        raise RequestError(400, "EmptyBody", f"the request body is empty; {_USAGE}")
    try:
        payload = json.loads(body.decode("utf-8-sig"))  # a BOM is allowed (RFC 8259)
    except UnicodeDecodeError:
        raise RequestError(400, "MalformedJSON", f"the body is not UTF-8 text; {_USAGE}") from None
    except json.JSONDecodeError as exc:
        raise RequestError(
            400, "MalformedJSON", f"malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}; {_USAGE}"
        ) from None
    if not isinstance(payload, dict):
        raise RequestError(422, "WrongShape", f"the body is a JSON {_json_type(payload)}; {_USAGE}")
    keys = set(payload)
    if keys == {"input"}:
        return ParsedRequest([payload["input"]], single=True)
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
        return ParsedRequest(items, single=False)
    if {"input", "inputs"} <= keys:
        raise RequestError(422, "WrongShape", 'send either "input" or "inputs", not both')
    unknown = sorted(keys - {"input", "inputs"})
    if not ({"input", "inputs"} & keys):
        raise RequestError(422, "MissingInput", f'no "input" or "inputs" key (got {unknown}); {_USAGE}')
    raise RequestError(422, "WrongShape", f"unknown key(s) {unknown}; {_USAGE}")


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
    if outcome.error is not None:
        return outcome
    try:
        return Outcome(to_jsonable(outcome.value))
    except (TypeError, ValueError, RecursionError) as exc:
        return Outcome(error=HandlerError("OutputNotSerializable", str(exc)))


def render_outcomes(outcomes: Sequence[Outcome], single: bool) -> tuple[int, dict[str, Any]]:
    """The status and JSON body for the outcomes of one request."""
    converted = [_outcome_json(o) for o in outcomes]
    failed = [(i, o.error) for i, o in enumerate(converted) if o.error is not None]
    if single:
        outcome = converted[0]
        if outcome.error is None:
            return 200, {"output": outcome.value}
        return 500, error_body("HandlerError", str(outcome.error), exception=outcome.error.type_name)
    outputs = [o.value if o.error is None else None for o in converted]
    if not failed:
        return 200, {"outputs": outputs}
    errors = [{"index": i, "exception": e.type_name, "message": e.detail} for i, e in failed if e is not None]
    body = error_body("HandlerError", f"the handler raised for {len(failed)} of {len(converted)} inputs")
    return 500, {**body, "outputs": outputs, "errors": errors}
