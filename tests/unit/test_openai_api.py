"""OpenAI's API in front of a cell (``--openai``), called with the official ``openai`` client
(sync, async and streaming) through the in-process backend, which serves the same runtime and
HTTP routes as a Ray replica. ``tests/integration/test_openai.py`` does the same on Ray, with
LangChain and LlamaIndex too."""

from __future__ import annotations

import asyncio
import base64
import struct
import textwrap
from typing import Any

import openai
import pytest
import requests

import nbserve

EMBED = textwrap.dedent(
    """
    def count_tokens(text):
        return len(text)  # characters stand for tokens here

    def embed(texts):
        # A toy embedding: length, vowels, spaces; enough to tell texts apart.
        return [[float(len(t)), float(sum(c in "aeiou" for c in t)), float(t.count(" "))] for t in texts]
    """
)

# Batched streaming "generation": each request's answer is the words of its last message (or
# prompt) one by one, capped by max_tokens.
ECHO_CHAT = textwrap.dedent(
    """
    def chat(requests):
        words = []
        for r in requests:
            text = r["messages"][-1]["content"] if "messages" in r else r["prompt"]
            words.append(text.split()[: r.get("max_tokens") or 100])
        for step in range(max(len(w) for w in words)):
            yield [(w[step] + " ") if step < len(w) else None for w in words]
    """
)


def client_for(ep: nbserve.Endpoint, cls: Any = openai.OpenAI) -> Any:
    token = ep.headers()["Authorization"].removeprefix("Bearer ")
    return cls(base_url=ep.url + "/v1", api_key=token, max_retries=0)


def test_embeddings_match_the_endpoints_own_outputs_in_float_and_base64(local: Any) -> None:
    ep = local(EMBED, "oemb", openai="embeddings")
    client = client_for(ep)
    texts = ["hello world", "a", "serving from notebooks"]
    expected = ep.map(texts, progress=False)
    # The client asks for base64 unless told otherwise, and decodes it itself.
    default = client.embeddings.create(model="oemb", input=texts)
    assert [d.embedding for d in default.data] == expected
    assert [d.index for d in default.data] == [0, 1, 2]
    assert default.usage.prompt_tokens == sum(len(t) for t in texts)  # the cell's count_tokens
    floats = client.embeddings.create(model="oemb", input="hello world", encoding_format="float")
    assert floats.data[0].embedding == expected[0] and floats.model == "oemb"
    raw = requests.post(
        ep.url + "/v1/embeddings",
        json={"input": ["a"], "encoding_format": "base64", "model": "m"},
        headers=ep.headers(),
        timeout=10,
    ).json()
    assert list(struct.unpack("<3f", base64.b64decode(raw["data"][0]["embedding"]))) == expected[1]


def test_models_lists_the_endpoint(local: Any) -> None:
    ep = local(EMBED, "omodels", openai="embeddings")
    models = client_for(ep).models.list()
    assert [m.id for m in models.data] == ["omodels"] and models.data[0].owned_by == "nbserve"


def test_chat_whole_streamed_and_async_with_usage(local: Any) -> None:
    ep = local(ECHO_CHAT, "ochat", openai="chat")
    client = client_for(ep)
    messages = [{"role": "user", "content": "one two three"}]
    whole = client.chat.completions.create(model="ochat", messages=messages)
    assert whole.choices[0].message.content == "one two three "
    assert whole.choices[0].finish_reason == "stop" and whole.object == "chat.completion"
    assert (whole.usage.prompt_tokens, whole.usage.completion_tokens) == (3, 3)  # words, without count_tokens
    chunks = list(
        client.chat.completions.create(
            model="ochat", messages=messages, stream=True, stream_options={"include_usage": True}
        )
    )
    deltas = [c.choices[0].delta.content for c in chunks if c.choices]
    assert deltas == ["one ", "two ", "three ", None]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 6
    capped = client.chat.completions.create(model="ochat", messages=messages, max_tokens=2)
    assert capped.choices[0].message.content == "one two "  # the handler saw max_tokens

    async def streamed() -> list[Any]:
        aclient = client_for(ep, openai.AsyncOpenAI)
        stream = await aclient.chat.completions.create(model="ochat", messages=messages, stream=True)
        return [c.choices[0].delta.content async for c in stream]

    assert asyncio.run(streamed()) == ["one ", "two ", "three ", None]
    completion = client.completions.create(model="ochat", prompt="x y")
    assert completion.choices[0].text == "x y " and completion.object == "text_completion"
    streamed_completion = [
        c.choices[0].text for c in client.completions.create(model="ochat", prompt="x y", stream=True)
    ]
    assert streamed_completion == ["x ", "y ", ""]


def test_errors_come_in_openais_shape_and_the_client_raises_them(local: Any) -> None:
    ep = local(EMBED, "oerr", openai="embeddings")
    client = client_for(ep)
    with pytest.raises(openai.AuthenticationError) as caught:
        openai.OpenAI(base_url=ep.url + "/v1", api_key="wrong", max_retries=0).models.list()
    assert "token" in caught.value.message
    with pytest.raises(openai.NotFoundError, match="/v1/chat/completions"):
        client.chat.completions.create(model="oerr", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.BadRequestError, match="check_embedding_ctx_length=False"):
        client.embeddings.create(model="oerr", input=[[101, 2023]])
    with pytest.raises(openai.BadRequestError, match="encoding_format"):
        client.embeddings.create(model="oerr", input="a", encoding_format="int8")  # type: ignore[arg-type]
    body = requests.post(ep.url + "/v1/embeddings", data=b"{", headers=ep.headers(), timeout=10).json()
    assert (
        set(body["error"]) == {"message", "type", "param", "code"} and body["error"]["type"] == "invalid_request_error"
    )
    plain = local("def up(xs):\n    return xs\n", "oplain")
    response = requests.get(plain.url + "/v1/models", headers=plain.headers(), timeout=10)
    assert response.status_code == 404 and "--openai" in response.json()["error"]["message"]


def test_a_handler_error_midway_reaches_the_streaming_client_as_an_error(local: Any) -> None:
    source = textwrap.dedent(
        """
        def chat(request):
            yield "partial "
            raise RuntimeError("the model fell over")
        """
    )
    ep = local(source, "ofail", openai="chat", no_batch=True)
    stream = client_for(ep).chat.completions.create(
        model="ofail", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    got = []
    with pytest.raises(openai.APIError, match="the model fell over"):
        for chunk in stream:
            got.append(chunk.choices[0].delta.content)
    assert got == ["partial "]
