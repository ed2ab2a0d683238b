"""The replica's batcher on a real event loop: batch sizes, waiting, errors and cancellation."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from nbserve.runtime.batcher import Batcher
from tests.support.helpers import REQUEST_TAG


class SlowHandler:
    """Takes ``seconds`` per batch (in a thread, as a sync handler runs) and records each batch."""

    def __init__(self, seconds: float = 0.05) -> None:
        self.seconds = seconds
        self.batches: list[list[Any]] = []

    async def __call__(self, items: list[Any]) -> list[Any]:
        self.batches.append(list(items))
        await asyncio.to_thread(time.sleep, self.seconds)
        return [x * 10 for x in items]


async def until(condition: Any, timeout: float = 5.0) -> None:
    """Yield to the loop until ``condition()`` holds, or fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.001)


def test_inputs_that_queue_during_a_batch_form_the_next_one() -> None:
    handler = SlowHandler()

    async def scenario() -> list[Any]:
        batcher = Batcher(handler, max_size=32, wait_s=0.005)
        first = asyncio.ensure_future(batcher.submit(0))
        await until(lambda: handler.batches)  # the first input is running alone now
        rest = [asyncio.ensure_future(batcher.submit(i)) for i in range(1, 41)]
        return list(await asyncio.gather(first, *rest))

    outputs = asyncio.run(scenario())
    assert outputs == [i * 10 for i in range(41)]
    # Everything that arrived while the first batch ran went in full batches, none cut small.
    assert [len(b) for b in handler.batches] == [1, 32, 8]


def test_a_lone_input_waits_no_longer_than_the_wait() -> None:
    handler = SlowHandler(seconds=0)

    async def scenario() -> float:
        batcher = Batcher(handler, max_size=8, wait_s=0.05)
        started = time.monotonic()
        assert await batcher.submit(3) == 30
        return time.monotonic() - started

    elapsed = asyncio.run(scenario())
    assert 0.04 <= elapsed < 1.0


def test_an_error_fails_its_batch_and_the_batcher_keeps_serving() -> None:
    calls = 0

    async def flaky(items: list[Any]) -> list[Any]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("boom")
        return items[:-1] if calls == 2 else items

    async def scenario() -> None:
        batcher = Batcher(flaky, max_size=4, wait_s=0.001)
        with pytest.raises(RuntimeError, match="boom"):
            await batcher.submit(1)
        with pytest.raises(RuntimeError, match="returned 0 outputs for 1 inputs"):
            await batcher.submit(2)
        assert await batcher.submit(3) == 3

    asyncio.run(scenario())


def test_cancelled_callers_are_left_out_of_the_batch() -> None:
    handler = SlowHandler(seconds=0.05)

    async def scenario() -> None:
        batcher = Batcher(handler, max_size=8, wait_s=0.001)
        busy = asyncio.ensure_future(batcher.submit(0))
        await until(lambda: handler.batches)
        gone = asyncio.ensure_future(batcher.submit(1))
        kept = asyncio.ensure_future(batcher.submit(2))
        await asyncio.sleep(0)
        gone.cancel()
        assert await kept == 20 and await busy == 0

    asyncio.run(scenario())
    assert handler.batches == [[0], [2]]


def test_a_batch_runs_in_none_of_its_callers_contexts() -> None:
    # Were it the first caller's, Ray would cancel the calls the batch makes into other
    # endpoints, for every caller, when that one gave up.
    seen: list[str] = []

    async def handler(items: list[Any]) -> list[Any]:
        seen.append(REQUEST_TAG.get())
        return items

    async def call(batcher: Batcher[Any], tag: str) -> Any:
        REQUEST_TAG.set(tag)
        return await batcher.submit(tag)

    async def scenario() -> list[Any]:
        batcher: Batcher[Any] = Batcher(handler, max_size=4, wait_s=0.01)
        first = await asyncio.gather(call(batcher, "first"), call(batcher, "second"))
        return [*first, await call(batcher, "third")]

    assert asyncio.run(scenario()) == ["first", "second", "third"]
    assert seen == ["none", "none"]


def test_close_finishes_what_was_submitted_then_ends_the_worker() -> None:
    handler = SlowHandler()

    async def scenario() -> tuple[list[Any], Any, bool]:
        batcher = Batcher(handler, max_size=4, wait_s=0.005)
        waiting = [asyncio.ensure_future(batcher.submit(i)) for i in range(6)]
        await until(lambda: handler.batches)  # a batch runs, more inputs queue behind it
        await batcher.close()
        worker_done = batcher._worker is not None and batcher._worker.done()
        late = await batcher.submit(7)  # an input that reached a closed batcher still gets its output
        return [await w for w in waiting], late, worker_done

    outputs, late, worker_done = asyncio.run(scenario())
    assert outputs == [0, 10, 20, 30, 40, 50]
    assert late == 70
    assert worker_done


def test_several_late_inputs_of_a_closed_batcher_all_get_outputs() -> None:
    handler = SlowHandler(seconds=0.01)

    async def scenario() -> tuple[list[Any], bool]:
        batcher = Batcher(handler, max_size=4, wait_s=0.005)
        await batcher.submit(0)
        await batcher.close()
        late = await asyncio.wait_for(asyncio.gather(*(batcher.submit(i) for i in range(1, 6))), 5)
        await until(lambda: batcher._worker is not None and batcher._worker.done())
        return list(late), batcher._queue is not None and batcher._queue.empty()

    late, drained = asyncio.run(scenario())
    assert late == [10, 20, 30, 40, 50]
    assert drained  # the worker ended with nothing left behind


def test_sizes_are_validated() -> None:
    with pytest.raises(ValueError, match="max_size"):
        Batcher(SlowHandler(), max_size=0, wait_s=0.01)
