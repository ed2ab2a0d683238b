"""OpenAI's API in front of a cell (``--openai``), so the clients people already use call it as is.

``--openai embeddings``: ``POST /v1/embeddings`` runs the texts of ``input`` through the handler
(texts in, one vector per text out: the quickstart's batched handler) and answers OpenAI's
shape, ``encoding_format`` float or base64 (the ``openai`` client asks for base64 unless told
otherwise). ``--openai chat``: ``POST /v1/chat/completions`` and ``/v1/completions``;
``--openai completions``: only the latter. The handler gets the request's JSON object, e.g.
``{"messages": [...], "max_tokens": 32}`` or ``{"prompt": "...", ...}`` (``stream`` removed),
and returns text or yields text chunks; ``"stream": true`` answers OpenAI's SSE chunks ending
in ``data: [DONE]``. ``GET /v1/models`` lists the endpoint as the one model. The endpoint's
token is the client's ``api_key``; every error has OpenAI's shape
``{"error": {"message", "type", "param", "code"}}``.

``usage`` counts tokens with the cell's ``count_tokens(text)`` where it defines one, else words.
"""

from __future__ import annotations

import base64
import calendar
import json
import struct
import time
import uuid
from collections.abc import AsyncGenerator, Mapping, Sequence
from typing import Any

from nbserve._errors import EndpointOverloadedError, EndpointTimeoutError, RequestError
from nbserve.runtime.program import Outcome, safe_str
from nbserve.runtime.wire import (
    MAX_BODY_BYTES,
    MAX_INPUTS,
    HttpRequest,
    HttpResponse,
    HttpTarget,
    check_length,
    json_response,
    overloaded_response,
    refused_response,
    sse_event,
    sse_response,
    to_jsonable,
)

__all__ = ["ROUTES", "answer_openai", "openai_error", "routes"]

ROUTES = {
    "embeddings": ("/v1/embeddings",),
    "chat": ("/v1/chat/completions", "/v1/completions"),
    "completions": ("/v1/completions",),
}
DONE = b"data: [DONE]\n\n"
# Parameters nbserve itself reads; the rest of the request reaches the handler.
_OWN = ("stream", "stream_options")


def routes(kind: str) -> list[str]:
    """The OpenAI routes an endpoint with ``--openai kind`` answers, below its own route."""
    return [*ROUTES[kind], "/v1/models"]


def openai_error(status: int, message: str, *, kind: str | None = None, param: str | None = None) -> HttpResponse:
    """An error in OpenAI's shape, which its clients raise as ``APIError`` subclasses."""
    kind = kind or ("invalid_request_error" if status < 500 else "server_error")
    body = {"error": {"message": message, "type": kind, "param": param, "code": None}}
    return json_response(status, body, items=0)


async def answer_openai(request: HttpRequest, path: str, target: HttpTarget) -> HttpResponse:
    """The answer on one of OpenAI's routes below the endpoint (``path`` starts with ``/v1``)."""
    try:
        target.access.check(request.headers)
    except RequestError as exc:
        body = {"error": {"message": exc.message, "type": exc.type_name, "param": None, "code": None}}
        return refused_response(exc, body)
    kind = target.options.openai
    name = target.options.name
    if kind is None:
        return openai_error(
            404, f"{name} does not answer OpenAI's API; deploy it with --openai embeddings, chat or completions"
        )
    if path == "/v1/models":
        if request.method != "GET":
            return openai_error(405, f"{request.method} is not supported on /v1/models; use GET")
        return json_response(200, {"object": "list", "data": [_model(target)]})
    if path not in ROUTES[kind]:
        known = ", ".join(routes(kind))
        return openai_error(404, f"{name} (--openai {kind}) has no route {path}; it answers {known}")
    if request.method != "POST":
        return openai_error(405, f"{request.method} is not supported on {path}; POST a JSON request")
    try:
        check_length(request.headers.get("content-length"))
        body = _read_json(await request.read_body(MAX_BODY_BYTES))
    except RequestError as exc:
        return openai_error(exc.status, exc.message)
    if path == "/v1/embeddings":
        return await _embeddings(body, target)
    return await _generate(body, target, chat=path == "/v1/chat/completions")


def _model(target: HttpTarget) -> dict[str, Any]:
    deployed = target.usage.get("deployed_at")
    created = calendar.timegm(time.strptime(deployed, "%Y-%m-%dT%H:%M:%SZ")) if deployed else 0
    return {"id": target.options.name, "object": "model", "created": created, "owned_by": "nbserve"}


def _read_json(raw: bytes) -> dict[str, Any]:
    if len(raw) > MAX_BODY_BYTES:
        raise RequestError(413, "PayloadTooLarge", f"the request body is over {MAX_BODY_BYTES} bytes")
    try:
        body = json.loads(raw.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise RequestError(400, "MalformedJSON", f"the body is not a JSON request: {safe_str(exc)}") from None
    if not isinstance(body, dict):
        raise RequestError(400, "WrongShape", "the body must be a JSON object, as OpenAI's API takes")
    return body


def _failure(outcome: Outcome) -> HttpResponse:
    error = outcome.error
    if isinstance(error, EndpointOverloadedError):
        return overloaded_response(error)
    if isinstance(error, EndpointTimeoutError):
        return openai_error(504, str(error), kind="timeout")
    return openai_error(500, str(error))


# --- embeddings -----------------------------------------------------------------------------------


def _texts(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(text, str) for text in value):
        if len(value) > MAX_INPUTS:
            raise RequestError(413, "TooManyInputs", f"{len(value)} inputs, above the limit of {MAX_INPUTS}")
        return value
    if isinstance(value, list) and value and all(isinstance(t, (int, list)) for t in value):
        raise RequestError(
            400,
            "WrongShape",
            "input holds token ids; this endpoint embeds text. Send strings (LangChain's OpenAIEmbeddings: "
            "pass check_embedding_ctx_length=False)",
        )
    raise RequestError(400, "WrongShape", "input must be a string or a non-empty list of strings")


def _base64_floats(vector: Sequence[float]) -> str:
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")


async def _embeddings(body: Mapping[str, Any], target: HttpTarget) -> HttpResponse:
    try:
        texts = _texts(body.get("input"))
    except RequestError as exc:
        return openai_error(exc.status, exc.message, param="input")
    encoding = body.get("encoding_format") or "float"
    if encoding not in ("float", "base64"):
        return openai_error(400, f"encoding_format must be float or base64, got {encoding!r}", param="encoding_format")
    try:
        outcomes = await target.run(texts)
    except EndpointOverloadedError as exc:
        return overloaded_response(exc, len(texts))
    failed = next(((i, o) for i, o in enumerate(outcomes) if o.error is not None), None)
    if failed is not None:
        index, outcome = failed
        if isinstance(outcome.error, (EndpointOverloadedError, EndpointTimeoutError)):
            return _failure(outcome)
        return openai_error(500, f"the handler failed for input {index}: {outcome.error}")
    data = []
    for index, outcome in enumerate(outcomes):
        try:
            vector = [float(x) for x in to_jsonable(outcome.value)]
        except (TypeError, ValueError):
            return openai_error(
                500, f"the handler returned a {type(outcome.value).__name__} for input {index}, not a vector of numbers"
            )
        embedding: Any = _base64_floats(vector) if encoding == "base64" else vector
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    tokens = sum(target.count_tokens(text) for text in texts)
    return json_response(
        200,
        {
            "object": "list",
            "data": data,
            "model": body.get("model") or target.options.name,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        },
        items=len(texts),
    )


# --- chat and completions ---------------------------------------------------------------------------


def _prompt_text(body: Mapping[str, Any], chat: bool) -> str:
    """The request's text, checked: the messages' contents for chat, the prompt for completions."""
    if chat:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise RequestError(400, "WrongShape", "messages must be a non-empty list of {role, content} objects")
        texts = []
        for message in messages:
            if not isinstance(message, dict) or "role" not in message:
                raise RequestError(400, "WrongShape", "each message must be an object with a role and a content")
            content = message.get("content")
            texts.append(content if isinstance(content, str) else json.dumps(content))
        return "\n".join(texts)
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise RequestError(400, "WrongShape", "prompt must be a string (one prompt per request)")
    return prompt


async def _generate(body: dict[str, Any], target: HttpTarget, *, chat: bool) -> HttpResponse:
    try:
        prompt = _prompt_text(body, chat)
        if body.get("n", 1) != 1:
            raise RequestError(400, "WrongShape", "n must be 1: this endpoint writes one answer per request")
    except RequestError as exc:
        return openai_error(exc.status, exc.message, param="messages" if chat else "prompt")
    stream = body.get("stream", False) is True
    options = body.get("stream_options")
    include_usage = isinstance(options, dict) and options.get("include_usage") is True
    request = {k: v for k, v in body.items() if k not in _OWN}
    reply = _Reply(target, body.get("model") or target.options.name, chat, target.count_tokens(prompt))
    if stream:
        return await sse_response(
            _texts_of(target.stream(request)),
            reply.chunk,
            end=lambda: reply.ending(include_usage),
            error_event=sse_event,  # OpenAI's clients raise on a data event that holds "error"
        )
    try:
        outcomes = await target.run([request])
    except EndpointOverloadedError as exc:
        return overloaded_response(exc)
    outcome = outcomes[0]
    if outcome.error is not None:
        return _failure(outcome)
    if not isinstance(outcome.value, str):
        return openai_error(500, f"the handler returned a {type(outcome.value).__name__}; it must return text")
    return json_response(200, reply.whole(outcome.value), items=1)


async def _texts_of(chunks: AsyncGenerator[Any, None]) -> AsyncGenerator[str, None]:
    try:
        async for chunk in chunks:
            if not isinstance(chunk, str):
                raise TypeError(f"the handler yielded a {type(chunk).__name__}; it must yield text")
            yield chunk
    finally:
        await chunks.aclose()


class _Reply:
    """One answer in OpenAI's shapes: whole, or chunk by chunk."""

    def __init__(self, target: HttpTarget, model: str, chat: bool, prompt_tokens: int) -> None:
        self.target = target
        self.model = model
        self.chat = chat
        self.prompt_tokens = prompt_tokens
        self.id = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex[:24]
        self.created = int(time.time())
        self.text: list[str] = []

    def _envelope(self, choice: dict[str, Any], *, chunk: bool) -> dict[str, Any]:
        kind = ("chat.completion" + (".chunk" if chunk else "")) if self.chat else "text_completion"
        return {"id": self.id, "object": kind, "created": self.created, "model": self.model, "choices": [choice]}

    def _usage(self, text: str) -> dict[str, int]:
        completion = self.target.count_tokens(text)
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": self.prompt_tokens + completion,
        }

    def whole(self, text: str) -> dict[str, Any]:
        if self.chat:
            choice: dict[str, Any] = {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
                "logprobs": None,
            }
        else:
            choice = {"index": 0, "text": text, "finish_reason": "stop", "logprobs": None}
        return {**self._envelope(choice, chunk=False), "usage": self._usage(text)}

    def chunk(self, text: str) -> dict[str, Any]:
        first = not self.text
        self.text.append(text)
        if self.chat:
            delta = {"role": "assistant", "content": text} if first else {"content": text}
            return self._envelope({"index": 0, "delta": delta, "finish_reason": None, "logprobs": None}, chunk=True)
        return self._envelope({"index": 0, "text": text, "finish_reason": None, "logprobs": None}, chunk=True)

    def ending(self, include_usage: bool) -> bytes:
        """The events after the last chunk: the finish reason, the usage if asked, then ``[DONE]``."""
        key = "delta" if self.chat else "text"
        last = self._envelope(
            {"index": 0, key: {} if self.chat else "", "finish_reason": "stop", "logprobs": None}, chunk=True
        )
        events = sse_event(last)
        if include_usage:
            usage = {**self._envelope({}, chunk=True), "choices": [], "usage": self._usage("".join(self.text))}
            events += sse_event(usage)
        return events + DONE
