"""Dynamic batching that forms the next batch only when the handler is free.

Why not ``@serve.batch``: Ray's batcher forms a batch as soon as ``batch_wait_timeout_s``
has passed, whether or not the previous batch has finished, and queues it behind a
semaphore. nbserve runs sync handlers in a worker thread, so the event loop stays free
during a batch and Ray's loop cuts one small batch after another (measured: a mean of 2
inputs under 32 concurrent requests, where the handler could take 32). Here the worker takes
whatever queued while the handler ran, up to ``max_size``, and waits for more only until
the oldest waiting input has waited ``wait_s``.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Generic, TypeVar

__all__ = ["Batcher", "Gatherer"]

R = TypeVar("R")
E = TypeVar("E")
# Queued after the last input of a closed batcher: the worker ends when it gets there.
_STOP: Any = object()


class Gatherer:
    """What both batchers share: their settings, and gathering one batch from a queue."""

    def __init__(
        self,
        max_size: int,
        wait_s: float,
        on_batch: Callable[[int], None] | None = None,
        *,
        timeout_s: float | None = None,
        on_overrun: Callable[[], None] | None = None,
    ) -> None:
        """``timeout_s`` bounds one batch (or one step of a stream): past it, its callers get
        ``TimeoutError``, the next batch starts, and ``on_overrun`` is told (a sync handler's
        thread is still stuck)."""
        if max_size < 1 or wait_s < 0:
            raise ValueError(f"need max_size >= 1 and wait_s >= 0, got {max_size} and {wait_s}")
        self.max_size = max_size
        self.wait_s = wait_s
        self.timeout_s = timeout_s
        self._on_batch = on_batch
        self._on_overrun = on_overrun

    @staticmethod
    def _start_worker(work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """The worker's task, in a context of its own. A batch serves many requests, so it runs
        in none of theirs: were it the first caller's (what a new task inherits), the calls its
        handler makes into other endpoints would be that request's children, and Ray would
        cancel them, for the whole batch, when that one caller gave up."""
        return asyncio.get_running_loop().create_task(work, context=contextvars.Context())

    async def _fill(
        self, queue: asyncio.Queue[E], batch: list[E], deadline: float, is_stop: Callable[[E], bool]
    ) -> bool:
        """Add queued entries to ``batch`` until it holds ``max_size`` or ``deadline`` passes.

        Whatever queued while the previous batch ran is taken at once; more is awaited only
        until ``deadline``. Returns True at a stop entry (not added; the entries behind it stay).
        """
        while len(batch) < self.max_size:
            if not queue.empty():
                entry = queue.get_nowait()
            else:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                try:
                    entry = await asyncio.wait_for(queue.get(), remaining)
                except asyncio.TimeoutError:
                    return False
            if is_stop(entry):
                return True
            batch.append(entry)
        return False


class Batcher(Gatherer, Generic[R]):
    """Gathers single inputs into batches for ``run_batch`` (a list in, a list of the same length out).

    One batch runs at a time. Must be used from one event loop (a replica's).
    """

    def __init__(
        self,
        run_batch: Callable[[list[Any]], Awaitable[list[R]]],
        max_size: int,
        wait_s: float,
        on_batch: Callable[[int], None] | None = None,
        *,
        timeout_s: float | None = None,
        on_overrun: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(max_size, wait_s, on_batch, timeout_s=timeout_s, on_overrun=on_overrun)
        self._run_batch = run_batch
        self._queue: asyncio.Queue[tuple[float, Any, asyncio.Future[R]]] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._closed = False

    async def close(self) -> None:
        """Finish the inputs already submitted, then end the worker (and free ``run_batch``).

        For the batcher of a replaced version of the cell. An input submitted later still
        gets its output: the worker runs again for it and ends after it.
        """
        self._closed = True
        if self._queue is not None and self._worker is not None and not self._worker.done():
            self._queue.put_nowait((time.monotonic(), _STOP, None))  # type: ignore[arg-type]
            await asyncio.shield(self._worker)

    async def submit(self, item: Any) -> R:
        """The output for ``item``, computed in a batch with whatever else is waiting."""
        if self._queue is None:
            self._queue = asyncio.Queue()
        if self._worker is None or self._worker.done():
            self._worker = self._start_worker(self._work(self._queue))
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((time.monotonic(), item, future))
        if self._closed:
            self._queue.put_nowait((time.monotonic(), _STOP, None))  # type: ignore[arg-type]
        return await future

    async def _next_batch(self, queue: asyncio.Queue[tuple[float, Any, asyncio.Future[R]]]) -> tuple[list[Any], bool]:
        """The next batch, and whether the worker ends after it (it reached a stop mark)."""
        first = await queue.get()
        if first[1] is _STOP:
            return [], True
        batch = [first]
        # Counted from the oldest input's arrival.
        stop = await self._fill(queue, batch, first[0] + self.wait_s, lambda entry: entry[1] is _STOP)
        return self._live(batch), stop

    @staticmethod
    def _live(batch: list[tuple[float, Any, asyncio.Future[R]]]) -> list[tuple[float, Any, asyncio.Future[R]]]:
        return [entry for entry in batch if not entry[2].cancelled()]  # callers that gave up

    async def _work(self, queue: asyncio.Queue[tuple[float, Any, asyncio.Future[R]]]) -> None:
        while True:
            batch, stop = await self._next_batch(queue)
            if batch:
                await self._run(batch)
            # Late inputs of a closed batcher each bring a stop mark: end only at the last one.
            if stop and queue.empty():
                return

    async def _run(self, batch: list[tuple[float, Any, asyncio.Future[R]]]) -> None:
        if self._on_batch is not None:
            self._on_batch(len(batch))
        try:
            # One batch at a time, but never one without end: a handler that does not return
            # must not keep every later input waiting behind it.
            outputs = await asyncio.wait_for(self._run_batch([item for _, item, _ in batch]), self.timeout_s)
            if len(outputs) != len(batch):
                raise RuntimeError(f"the batch function returned {len(outputs)} outputs for {len(batch)} inputs")
        except asyncio.TimeoutError as exc:
            if self._on_overrun is not None:
                self._on_overrun()
            for _, _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        except Exception as exc:  # noqa: BLE001 - every caller of the batch gets the error
            for _, _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, _, future), output in zip(batch, outputs, strict=True):
            if not future.done():
                future.set_result(output)
