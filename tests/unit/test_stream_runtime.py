"""Streaming handlers: the runtime's stream batcher and program, and the whole path through the
in-process backend (the same runtime and HTTP contract as a Ray replica)."""

from __future__ import annotations

import asyncio
import json
import textwrap
import threading
import time
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

import pytest
import requests

import nbserve
from nbserve._cell import analyze_cell, make_bundle
from nbserve._errors import EndpointTimeoutError, HandlerError, SpecError
from nbserve.runtime import Access, CellProgram, RuntimeOptions, ServedCell
from nbserve.runtime.recorder import Recorder
from nbserve.runtime.streams import StreamBatcher, collect
from tests.support.helpers import wait_for

# Batched: each input is a word; step k yields its k-th letter, None once a word is spelled.
SPELL = textwrap.dedent(
    """
    import time
    STEP_S = 0.02

    def spell(words):
        for step in range(max(len(w) for w in words)):
            time.sleep(STEP_S)
            yield [w[step] if step < len(w) else None for w in words]
    """
)


def bundle_of(source: str, name: str = "s", batched: bool = True) -> Any:
    return make_bundle(name, source, analyze_cell(source, batched=batched), batched=batched)


def served(source: str, *, batched: bool = True, **options: Any) -> ServedCell:
    bundle = bundle_of(source, batched=batched)
    runtime = RuntimeOptions(name="s", max_batch_size=8 if batched else None, **options)
    return ServedCell(bundle, runtime, time.time(), Access(lambda: "t"), recorder=Recorder())


async def chunks_of(cell: ServedCell, item: Any) -> list[Any]:
    return [chunk async for chunk in cell.stream(item)]


# --- the cell -----------------------------------------------------------------------------------


def test_a_handler_that_yields_streams_and_a_nested_yield_does_not_count() -> None:
    assert analyze_cell(SPELL).is_generator
    nested = "def f(xs):\n    def inner():\n        yield 1\n    return [list(inner()) for _ in xs]\n"
    assert not analyze_cell(nested).is_generator
    assert analyze_cell("async def f(x):\n    yield x\n", batched=False).is_generator
    assert bundle_of(SPELL).streams


def test_collect_joins_text_and_lists_the_rest() -> None:
    assert collect(["a", "b"]) == "ab"
    assert collect([1, "b"]) == [1, "b"]
    assert collect([]) == []


# --- the stream batcher ---------------------------------------------------------------------------


def test_inputs_finish_at_their_own_step_and_late_inputs_wait_for_the_next_batch() -> None:
    cell = served(SPELL)

    async def scenario() -> tuple[list[list[Any]], list[int]]:
        first = [asyncio.ensure_future(chunks_of(cell, w)) for w in ("abc", "de", "fghij")]
        await asyncio.sleep(0.03)  # the first batch is generating
        late = asyncio.ensure_future(chunks_of(cell, "kl"))
        results = await asyncio.gather(*first, late)
        return results, [size for _, size in cell.recorder.drain()[1]]  # type: ignore[union-attr]

    results, batches = asyncio.run(scenario())
    assert results == [list("abc"), list("de"), list("fghij"), list("kl")]
    assert batches == [3, 1]  # "kl" arrived while the batch generated: it ran in the next one
    cell.stop()


def test_a_listener_that_leaves_stops_the_handler_at_its_yield() -> None:
    source = textwrap.dedent(
        """
        import time
        EVENTS = []

        def count(items):
            try:
                for i in range(1000):
                    time.sleep(0.01)
                    yield [i for _ in items]
            except GeneratorExit:
                EVENTS.append("stopped")
                raise
        """
    )
    cell = served(source)

    async def read_three() -> list[Any]:
        got = []
        async for chunk in cell.stream("x"):
            got.append(chunk)
            if len(got) == 3:
                break
        return got

    assert asyncio.run(read_three()) == [0, 1, 2]
    events = cell.program.module.EVENTS
    wait_for(lambda: events == ["stopped"], 5, "the handler to see GeneratorExit")
    cell.stop()


def test_a_batch_failing_before_its_first_step_is_split_so_the_bad_input_fails_alone() -> None:
    source = textwrap.dedent(
        """
        def spell(words):
            if "bad" in words:
                raise ValueError("cannot spell bad")
            for step in range(max(len(w) for w in words)):
                yield [w[step] if step < len(w) else None for w in words]
        """
    )
    cell = served(source, batch_wait_s=0.05)

    async def scenario() -> list[Any]:
        async def one(word: str) -> Any:
            try:
                return await chunks_of(cell, word)
            except HandlerError as exc:
                return exc

        return list(await asyncio.gather(one("ab"), one("bad"), one("cd")))

    good, bad, other = asyncio.run(scenario())
    assert (good, other) == (["a", "b"], ["c", "d"])
    assert isinstance(bad, HandlerError) and bad.type_name == "ValueError" and "cannot spell bad" in str(bad)
    cell.stop()


def test_an_error_midway_ends_every_open_stream_of_the_batch_with_it() -> None:
    source = textwrap.dedent(
        """
        def spell(words):
            yield [w[0] for w in words]
            raise RuntimeError("the model ran out of memory")
        """
    )
    cell = served(source, batch_wait_s=0.05)

    async def scenario() -> list[tuple[list[Any], BaseException | None]]:
        async def one(word: str) -> tuple[list[Any], BaseException | None]:
            got: list[Any] = []
            try:
                async for chunk in cell.stream(word):
                    got.append(chunk)
            except HandlerError as exc:
                return got, exc
            return got, None

        return list(await asyncio.gather(one("ab"), one("cd")))

    for got, error in asyncio.run(scenario()):
        assert len(got) == 1 and isinstance(error, HandlerError) and "ran out of memory" in str(error)
    assert cell.recorder is not None
    requests_, _ = cell.recorder.drain()
    assert [(s.failed, s.chunks) for s in requests_] == [(True, 1), (True, 1)]
    cell.stop()


def test_a_step_that_overruns_the_time_limit_fails_its_streams_and_frees_the_handler() -> None:
    source = textwrap.dedent(
        """
        import threading
        RELEASE = threading.Event()

        def slow(words):
            yield [w for w in words]
            if "hang" in words:
                RELEASE.wait(30)
            yield [None for _ in words]
        """
    )
    cell = served(source, timeout_s=0.3)

    async def scenario() -> tuple[list[Any], BaseException | None, list[Any]]:
        got: list[Any] = []
        error = None
        try:
            async for chunk in cell.stream("hang"):
                got.append(chunk)
        except EndpointTimeoutError as exc:
            error = exc
        after = await chunks_of(cell, "next")  # the handler is free again: a new worker thread
        return got, error, after

    got, error, after = asyncio.run(scenario())
    assert got == ["hang"] and isinstance(error, EndpointTimeoutError)
    assert after == ["next"]
    assert cell.program.stuck == 1
    cell.program.module.RELEASE.set()
    cell.stop()


def test_a_step_of_the_wrong_shape_says_what_a_batched_stream_must_yield() -> None:
    cell = served("def bad(words):\n    yield 'not a list'\n")
    with pytest.raises(HandlerError, match="must yield a list with one entry per input"):
        asyncio.run(chunks_of(cell, "x"))
    cell.stop()


def test_stream_batcher_alone_forms_batches_only_when_the_handler_is_free() -> None:
    sizes: list[int] = []

    async def run(items: list[Any]) -> AsyncGenerator[list[Any], None]:
        for step in range(2):
            await asyncio.sleep(0.02)
            yield [f"{item}{step}" for item in items]

    async def scenario() -> list[list[Any]]:
        batcher = StreamBatcher(run, max_size=4, wait_s=0.001, on_batch=sizes.append)

        async def one(item: str) -> list[Any]:
            return [chunk async for chunk in batcher.submit(item)]

        results = await asyncio.gather(*(one(str(i)) for i in range(6)))
        await batcher.close()
        return list(results)

    assert asyncio.run(scenario()) == [[f"{i}0", f"{i}1"] for i in range(6)]
    assert sum(sizes) == 6 and max(sizes) <= 4


# --- the program: sync and async generators --------------------------------------------------------


def test_an_unbatched_async_generator_streams_and_its_errors_name_the_cell() -> None:
    source = textwrap.dedent(
        """
        import asyncio

        async def words(text):
            for word in text.split():
                await asyncio.sleep(0)
                if word == "boom":
                    raise KeyError(word)
                yield word
        """
    )
    program = CellProgram(bundle_of(source, batched=False))

    async def read(text: str) -> list[Any]:
        return [chunk async for chunk in program.stream(text)]

    assert asyncio.run(read("a b c")) == ["a", "b", "c"]
    with pytest.raises(HandlerError) as caught:
        asyncio.run(read("a boom"))
    assert caught.value.type_name == "KeyError" and "<serve s>" in caught.value.remote_traceback
    program.close()


def test_a_sync_generator_that_calls_sys_exit_fails_its_stream_only() -> None:
    source = "import sys\ndef quit_midway(x):\n    yield 1\n    if x == 'quit':\n        sys.exit(3)\n    yield 2\n"
    cell = served(source, batched=False)
    with pytest.raises(HandlerError, match="SystemExit"):
        asyncio.run(chunks_of(cell, "quit"))
    assert asyncio.run(chunks_of(cell, "again")) == [1, 2]  # the endpoint still serves
    cell.stop()


def test_an_unbatched_stream_times_out_per_chunk_not_per_answer() -> None:
    source = "import time\ndef slow(x):\n    for i in range(5):\n        time.sleep(0.1)\n        yield i\n"
    cell = served(source, batched=False, timeout_s=0.35)
    assert asyncio.run(chunks_of(cell, "x")) == [0, 1, 2, 3, 4]  # 0.5 s in all, 0.1 s per chunk
    cell.stop()


def test_a_plain_handler_streams_its_output_as_one_chunk() -> None:
    cell = served("def up(xs):\n    return [x.upper() for x in xs]\n")
    assert asyncio.run(chunks_of(cell, "abc")) == ["ABC"]
    cell.stop()


# --- through the in-process backend: the notebook API, HTTP and the figures -----------------------


def events(response: requests.Response) -> list[tuple[str, Any]]:
    """The Server-Sent Events of a response: ``(event name, data)``, the name "message" by default."""
    found = []
    for block in response.text.split("\n\n"):
        if not block.strip():
            continue
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        found.append((fields.get("event", "message"), json.loads(fields["data"])))
    return found


def test_stream_astream_and_plain_calls_of_a_streaming_endpoint(local: Any, capsys: pytest.CaptureFixture[str]) -> None:
    ep = local(SPELL, "lspell")
    assert ep.info().streams
    assert list(ep.stream("hello")) == list("hello")

    async def read() -> list[Any]:
        return [chunk async for chunk in ep.astream("hey")]

    assert asyncio.run(read()) == list("hey")
    assert ep("abc") == "abc"  # a call that does not stream gets the chunks joined
    assert ep.map(["ab", "c"], progress=False) == ["ab", "c"]
    stream = ep.stream("shown")
    stream._ipython_display_()  # what a cell showing the stream does
    assert capsys.readouterr().out == "shown\n"
    with pytest.raises(nbserve.CommandError, match="was read already"):
        list(stream)


def test_server_sent_events_chunk_by_chunk_and_an_error_event_midway(local: Any) -> None:
    source = textwrap.dedent(
        """
        def spell(word):
            for letter in word:
                if letter == "!":
                    raise ValueError("no shouting")
                yield letter
        """
    )
    ep = local(source, "lsse", no_batch=True)
    auth = ep.headers()
    answer = requests.post(ep.url, json={"input": "ab", "stream": True}, headers=auth, timeout=10)
    assert answer.headers["content-type"] == "text/event-stream"
    assert events(answer) == [("message", {"output": "a"}), ("message", {"output": "b"}), ("end", {})]
    accept = {**auth, "Accept": "text/event-stream"}
    assert events(requests.post(ep.url, json={"input": "c"}, headers=accept, timeout=10))[0] == (
        "message",
        {"output": "c"},
    )
    midway = events(requests.post(ep.url, json={"input": "a!", "stream": True}, headers=auth, timeout=10))
    assert midway[0] == ("message", {"output": "a"})
    assert midway[1][0] == "error" and midway[1][1]["error"]["exception"] == "ValueError"
    # Failing before the first chunk: an ordinary JSON error with its status.
    first = requests.post(ep.url, json={"input": "!", "stream": True}, headers=auth, timeout=10)
    assert first.status_code == 500 and first.json()["error"]["exception"] == "ValueError"
    many = requests.post(ep.url, json={"inputs": ["a"], "stream": True}, headers=auth, timeout=10)
    assert many.status_code == 422 and "one input" in many.json()["error"]["message"]
    odd = requests.post(ep.url, json={"input": "a", "stream": "yes"}, headers=auth, timeout=10)
    assert odd.status_code == 422
    assert requests.post(ep.url, json={"input": "ab"}, headers=auth, timeout=10).json() == {"output": "ab"}
    assert requests.get(ep.url, headers=auth, timeout=10).json()["streams"] is True


def test_the_first_chunk_leaves_before_the_handler_finishes(local: Any) -> None:
    source = "import time\ndef slow(x):\n    yield 'first'\n    time.sleep(1.0)\n    yield 'second'\n"
    ep = local(source, "lfirst", no_batch=True)
    started = time.perf_counter()
    with requests.post(ep.url, json={"input": 0, "stream": True}, headers=ep.headers(), stream=True, timeout=10) as r:
        lines = r.iter_lines()
        assert next(lines) == b'data: {"output":"first"}'
        first_s = time.perf_counter() - started
        rest = list(lines)
    assert first_s < 0.8 and b'data: {"output":"second"}' in rest
    stats = ep.stats()
    assert stats.window_streams == 1 and stats.first_chunk_p50_ms is not None and stats.first_chunk_p50_ms < 800
    assert stats.p50_ms is not None and stats.p50_ms >= 1000  # the whole answer took the second too


def test_a_client_that_disconnects_stops_the_handler(local: Any, tmp_path: Path) -> None:
    marker = tmp_path / "stopped"
    source = textwrap.dedent(
        """
        import pathlib, time

        def ticks(x):
            try:
                for i in range(10_000):
                    time.sleep(0.01)
                    yield i
            except GeneratorExit:
                pathlib.Path(MARKER).write_text("stopped")
                raise
        """
    )
    ep = local(source, "lticks", no_batch=True, namespace={"MARKER": str(marker)})
    with requests.post(ep.url, json={"input": 0, "stream": True}, headers=ep.headers(), stream=True, timeout=10) as r:
        lines = r.iter_lines()
        assert next(lines).startswith(b"data: ")
    # The connection is closed: the server's next write fails and the generator is closed.
    wait_for(marker.exists, 10, "the handler to see GeneratorExit after the client went")
    wait_for(lambda: ep.stats().streams_in_flight == 0, 10, "the stream to be counted as closed")


def test_breaking_out_of_a_notebook_stream_stops_the_handler(local: Any) -> None:
    source = textwrap.dedent(
        """
        import time
        STOPPED = []

        def ticks(x):
            try:
                for i in range(10_000):
                    time.sleep(0.01)
                    yield i
            finally:
                STOPPED.append(x)
        """
    )
    ep = local(source, "lbreak", no_batch=True)
    for chunk in ep.stream("a"):
        if chunk == 2:
            break
    module = nbserve.backends.get_backend("local")._get("lbreak").served.program.module  # type: ignore[attr-defined]
    wait_for(lambda: module.STOPPED == ["a"], 10, "the handler's generator to be closed")


def test_openai_embeddings_refuse_a_streaming_handler() -> None:
    with pytest.raises(SpecError, match="yields"):
        nbserve.deploy(SPELL, "nope", backend="local", openai="embeddings")


def test_streams_in_flight_show_while_they_run(local: Any) -> None:
    source = "import threading\nGO = threading.Event()\ndef wait(x):\n    yield 1\n    GO.wait(10)\n    yield 2\n"
    ep = local(source, "lopen", no_batch=True)
    done: list[Any] = []
    reader = threading.Thread(target=lambda: done.extend(ep.stream(0)))
    reader.start()
    wait_for(lambda: ep.stats().streams_in_flight == 1, 10, "one stream open")
    nbserve.backends.get_backend("local")._get("lopen").served.program.module.GO.set()  # type: ignore[attr-defined]
    reader.join(10)
    assert done == [1, 2]
    stats = ep.stats()
    assert stats.streams_in_flight == 0 and stats.chunks_per_s > 0


def test_the_load_tester_times_the_first_chunk_of_streams(local: Any) -> None:
    from nbserve._aio import run_sync
    from nbserve._bench.loadgen import LoadPlan, run_load
    from nbserve._bench.report import summary_text

    source = "import time\ndef slow(x):\n    yield 'a'\n    time.sleep(0.2)\n    yield 'b'\n"
    ep = local(source, "lbench", no_batch=True)
    plan = LoadPlan(ep.url, ["x"], concurrency=2, duration_s=None, requests=6, headers=ep.headers(), stream=True)
    result = run_sync(run_load(plan))
    assert (result.ok, result.chunks) == (6, 12)
    first, whole = result.first_chunk_percentiles()["p50"], result.percentiles()["p50"]
    assert first is not None and whole is not None and first < whole - 150  # the first chunk did not wait
    assert "first chunk p50" in summary_text(result)
