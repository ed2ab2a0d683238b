"""Streaming on the real cluster: Server-Sent Events through Serve's proxy, chunk by chunk;
handle streams from the notebook and from a cell that uses a streaming endpoint; a client
that goes stops the handler in the replica; the figures count first chunks and open streams."""

from __future__ import annotations

import asyncio
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support.helpers import auth, wait_for

pytestmark = pytest.mark.integration

# Batched: one word per input; a letter per step, None once the word is spelled.
SPELL = textwrap.dedent(
    """
    import time

    def spell(words):
        for step in range(max(len(w) for w in words)):
            time.sleep(0.05)
            yield [w[step] if step < len(w) else None for w in words]
    """
)


def test_chunks_leave_the_replica_as_they_are_yielded(deploy: Any) -> None:
    source = "import time\ndef slow(x):\n    yield 'first'\n    time.sleep(1.5)\n    yield 'second'\n"
    ep = deploy(source, "sslow", no_batch=True)
    started = time.perf_counter()
    with requests.post(ep.url, json={"input": 0, "stream": True}, headers=auth(), stream=True, timeout=30) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        lines = r.iter_lines()
        assert next(lines) == b'data: {"output":"first"}'
        first_s = time.perf_counter() - started
        rest = [line for line in lines if line]
    total_s = time.perf_counter() - started
    assert rest == [b'data: {"output":"second"}', b"event: end", b"data: {}"]
    assert first_s < total_s - 1.0, (first_s, total_s)  # the first chunk did not wait for the second


def test_batched_streams_from_the_notebook_http_and_plain_calls(deploy: Any) -> None:
    ep = deploy(SPELL, "sspell", batch_wait_ms=20)
    assert ep.info().streams
    assert list(ep.stream("hello")) == list("hello")

    async def both() -> list[list[Any]]:
        async def read(word: str) -> list[Any]:
            return [chunk async for chunk in ep.astream(word)]

        return list(await asyncio.gather(read("ab"), read("cdef")))

    assert asyncio.run(both()) == [list("ab"), list("cdef")]
    assert ep("abc") == "abc"
    assert ep.map(["xy", "z"], progress=False) == ["xy", "z"]
    events = requests.post(ep.url, json={"input": "ok", "stream": True}, headers=auth(), timeout=30).text
    assert events == 'data: {"output":"o"}\n\ndata: {"output":"k"}\n\nevent: end\ndata: {}\n\n'
    stats = wait_for(lambda: (s := ep.stats()).window_streams >= 4 and s, 20, "the streams in the figures")
    assert stats.first_chunk_p50_ms is not None and stats.chunks_per_s > 0 and stats.batch_max >= 1


def test_a_client_that_disconnects_stops_the_generator_in_the_replica(deploy: Any, tmp_path: Path) -> None:
    marker = tmp_path / "stopped"
    source = textwrap.dedent(
        """
        import pathlib, time

        def ticks(x):
            try:
                for i in range(100_000):
                    time.sleep(0.01)
                    yield i
            except GeneratorExit:
                pathlib.Path(MARKER).write_text("stopped")
                raise
        """
    )
    ep = deploy(source, "sticks", no_batch=True, namespace={"MARKER": str(marker)})
    with requests.post(ep.url, json={"input": 0, "stream": True}, headers=auth(), stream=True, timeout=30) as r:
        assert next(r.iter_lines()).startswith(b"data: ")
    wait_for(marker.exists, 30, "the replica's handler to see GeneratorExit after the HTTP client went")
    marker.unlink()
    for chunk in ep.stream(0):  # the notebook's handle stream, left early
        if chunk == 3:
            break
    wait_for(marker.exists, 30, "the handler to stop after the notebook stopped reading")
    wait_for(lambda: ep.stats().streams_in_flight == 0, 20, "no stream left open")


def test_a_cell_consumes_a_used_endpoints_stream_by_handle(deploy: Any) -> None:
    deploy(SPELL, "sgen")
    outer = deploy(
        textwrap.dedent(
            """
            def shout(words):
                for word in words:
                    yield [letter.upper() for letter in sgen.stream(word)]
            """
        ),
        "sshout",
        uses="sgen",
        no_batch=True,
    )
    assert list(outer.stream(["ab", "c"])) == [["A", "B"], ["C"]]
    async_outer = deploy(
        "async def aspell(word):\n    async for letter in sgen.stream(word):\n        yield letter + letter\n",
        "saspell",
        uses="sgen",
        no_batch=True,
    )
    assert async_outer("ab") == "aabb"


def test_an_error_midway_is_an_event_and_the_endpoint_keeps_serving(deploy: Any) -> None:
    source = textwrap.dedent(
        """
        def spell(word):
            for c in word:
                if c == "!":
                    raise ValueError("no shouting")
                yield c
        """
    )
    ep = deploy(source, "serr", no_batch=True)
    text = requests.post(ep.url, json={"input": "a!", "stream": True}, headers=auth(), timeout=30).text
    assert text.startswith('data: {"output":"a"}\n\nevent: error\ndata: {"error":{"type":"HandlerError"')
    assert "no shouting" in text
    with pytest.raises(Exception, match="no shouting"):
        list(ep.stream("b!"))
    assert list(ep.stream("ok")) == ["o", "k"]
