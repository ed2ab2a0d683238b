"""Streaming handlers: a generator cell sends its output in chunks as it makes them.

A handler with ``yield`` streams. With ``--no-batch`` it takes one input and yields chunks.
With batching it takes a list of inputs and yields, at each step, a list with one entry per
input: a chunk, or ``None`` once that input has finished (its stream ends there, whatever the
others do). The ``StreamBatcher`` forms batches as ``Batcher`` does, only when the handler is
free: an input that arrives while a batch is generating waits for the next batch (there is no
continuous batching, where it would join the running one).

A sync generator runs on the program's worker thread, one ``next`` at a time, so the event
loop stays free between chunks. When every listener of a stream has gone (a client that
disconnected), the generator is closed, so the handler sees ``GeneratorExit`` at its
``yield`` and stops working for nobody.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import time
from collections.abc import AsyncGenerator, Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

from nbserve._errors import HandlerError, NbserveError
from nbserve.runtime.batcher import Gatherer

__all__ = ["StreamBatcher", "collect", "iterate_async", "iterate_sync"]


def collect(chunks: list[Any]) -> Any:
    """One answer from a stream's chunks: text joined, anything else as the list of chunks."""
    if chunks and all(isinstance(chunk, str) for chunk in chunks):
        return "".join(chunks)
    return chunks


async def iterate_sync(
    start: Callable[[], Any], step: Callable[[Any], tuple[bool, Any]], executor: Callable[[], Executor]
) -> AsyncGenerator[Any, None]:
    """The chunks of the sync generator ``start()`` makes, each ``step`` run on the worker ``executor()``.

    ``step(generator)`` gives ``(finished, chunk)``.
    """
    loop = asyncio.get_running_loop()
    # Each call in the caller's context, as CellProgram runs a sync handler.
    generator = await loop.run_in_executor(executor(), contextvars.copy_context().run, start)
    try:
        while True:
            finished, chunk = await loop.run_in_executor(executor(), contextvars.copy_context().run, step, generator)
            if finished:
                return
            yield chunk
    except asyncio.CancelledError:
        # A step was given up (a time limit) while it may still run: close the generator after
        # it, on its thread, without waiting here for a step that may never end.
        loop.run_in_executor(executor(), _close, generator)
        raise
    except GeneratorExit:
        # The listener went between chunks: the handler sees GeneratorExit at its yield.
        await asyncio.shield(loop.run_in_executor(executor(), _close, generator))
        raise


def _close(generator: Any) -> None:
    with contextlib.suppress(Exception):  # "generator already executing" on a stuck worker, or its own error
        generator.close()


async def iterate_async(generator: Any) -> AsyncGenerator[Any, None]:
    """The chunks of an async generator handler, closed when its listener goes."""
    try:
        async for chunk in generator:
            yield chunk
    finally:
        with contextlib.suppress(Exception):
            await generator.aclose()


@dataclass(eq=False)
class _Listener:
    """One input's stream: what the batch's steps put there, until it ends."""

    item: Any
    queued_at: float
    queue: asyncio.Queue[tuple[str, Any]] = field(default_factory=asyncio.Queue)
    done: bool = False  # its stream ended (None from the handler), or its listener went


class StreamBatcher(Gatherer):
    """Gathers single inputs into batches for a batched streaming handler.

    ``run(items)`` is the handler's stream: an async iterator of lists, one entry per input.
    One batch streams at a time. A step that takes more than ``timeout_s`` fails the batch's
    open streams with ``TimeoutError`` and ``on_overrun`` is told (a sync handler's thread is
    still stuck). A batch that fails before its first step is split in halves, as
    ``CellProgram.run_batch`` splits a failing batch, so a bad input fails alone; once chunks
    have gone out, an error fails every stream of the batch still open (re-running it would
    send their first chunks twice). Must be used from one event loop (a replica's).
    """

    def __init__(
        self,
        run: Callable[[list[Any]], AsyncGenerator[Any, None]],
        max_size: int,
        wait_s: float,
        on_batch: Callable[[int], None] | None = None,
        *,
        timeout_s: float | None = None,
        on_overrun: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(max_size, wait_s, on_batch, timeout_s=timeout_s, on_overrun=on_overrun)
        self._run = run
        self._queue: asyncio.Queue[_Listener] | None = None
        self._worker: asyncio.Task[None] | None = None

    async def submit(self, item: Any) -> AsyncGenerator[Any, None]:
        """The chunks for ``item``, made in a batch with whatever else is waiting.

        Raises what the handler raised, or ``TimeoutError`` when a step overran ``timeout_s``.
        """
        if self._queue is None:
            self._queue = asyncio.Queue()
        if self._worker is None or self._worker.done():
            self._worker = self._start_worker(self._work(self._queue))
        listener = _Listener(item, time.monotonic())
        self._queue.put_nowait(listener)
        try:
            while True:
                kind, value = await listener.queue.get()
                if kind == "chunk":
                    yield value
                elif kind == "end":
                    return
                else:
                    raise value
        finally:
            listener.done = True  # gone: the batch stops generating once every listener is

    async def close(self) -> None:
        """Stop the worker (a replaced version of the cell); streams still open end with an error."""
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(BaseException):
                await self._worker

    async def _next_batch(self, queue: asyncio.Queue[_Listener]) -> list[_Listener]:
        batch = [await queue.get()]
        await self._fill(queue, batch, batch[0].queued_at + self.wait_s, lambda listener: False)
        return [listener for listener in batch if not listener.done]

    async def _work(self, queue: asyncio.Queue[_Listener]) -> None:
        while True:
            batch = await self._next_batch(queue)
            if batch:
                if self._on_batch is not None:
                    self._on_batch(len(batch))
                await self._stream(batch)

    async def _stream(self, batch: list[_Listener]) -> None:
        steps = self._run([listener.item for listener in batch])
        started = False
        try:
            while not all(listener.done for listener in batch):
                try:
                    step = await asyncio.wait_for(steps.__anext__(), self.timeout_s)
                except StopAsyncIteration:
                    break
                self._deliver(batch, step)
                started = True
        except asyncio.TimeoutError as exc:
            if self._on_overrun is not None:
                self._on_overrun()
            _fail(batch, exc)
        except asyncio.CancelledError:
            _fail(batch, RuntimeError("the endpoint's version was replaced while it streamed"))
            raise
        except Exception as exc:  # noqa: BLE001 - the handler's error belongs to the open streams
            if started or len(batch) == 1:
                _fail(batch, exc if isinstance(exc, NbserveError) else HandlerError(type(exc).__name__, str(exc)))
            else:  # nothing went out yet: find the inputs at fault, as run_batch does
                with contextlib.suppress(Exception):
                    await steps.aclose()
                middle = len(batch) // 2
                await self._stream(batch[:middle])
                await self._stream(batch[middle:])
                return
        else:
            for listener in batch:
                if not listener.done:
                    listener.done = True
                    listener.queue.put_nowait(("end", None))
        finally:
            with contextlib.suppress(Exception):
                await steps.aclose()

    @staticmethod
    def _deliver(batch: list[_Listener], step: Any) -> None:
        if not isinstance(step, (list, tuple)) or len(step) != len(batch):
            got = type(step).__name__ + (f" of {len(step)}" if isinstance(step, (list, tuple)) else "")
            raise TypeError(
                f"a batched streaming handler must yield a list with one entry per input ({len(batch)}), "
                f"got a {got}; yield None for an input that has finished"
            )
        for listener, chunk in zip(batch, step, strict=True):
            if listener.done:
                continue
            if chunk is None:  # this input has finished
                listener.done = True
                listener.queue.put_nowait(("end", None))
            else:
                listener.queue.put_nowait(("chunk", chunk))


def _fail(batch: list[_Listener], error: BaseException) -> None:
    for listener in batch:
        if not listener.done:
            listener.done = True
            listener.queue.put_nowait(("error", error))
