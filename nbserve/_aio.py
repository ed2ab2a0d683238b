"""A private event loop on a daemon thread, for calling endpoints from synchronous code.

A Jupyter cell already runs inside an event loop, where Ray Serve refuses blocking calls.
Every call to a backend client runs on this loop instead, so sync code (``embed(x)``) and
async code (``await embed.acall(x)``) share one loop and one set of connections.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import AsyncGenerator, Coroutine, Iterator
from typing import Any, TypeVar

__all__ = ["iterate_async", "iterate_sync", "run_async", "run_sync"]

T = TypeVar("T")

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None


def _background_loop() -> asyncio.AbstractEventLoop:
    global _loop
    with _lock:
        if _loop is None or _loop.is_closed():
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name="nbserve-loop", daemon=True)
            thread.start()
            _loop = loop
        return _loop


def _submit(coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
    return asyncio.run_coroutine_threadsafe(coro, _background_loop())


def run_sync(coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
    """Run ``coro`` on the background loop and wait for it (Ctrl-C cancels it)."""
    future = _submit(coro)
    try:
        return future.result(timeout)
    except BaseException:
        future.cancel()
        raise


async def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Await ``coro`` from any event loop while it runs on the background loop."""
    return await asyncio.wrap_future(_submit(coro))


async def _step(generator: AsyncGenerator[T, None]) -> tuple[bool, T | None]:
    try:
        return False, await generator.__anext__()
    except StopAsyncIteration:
        return True, None


def iterate_sync(generator: AsyncGenerator[T, None]) -> Iterator[T]:
    """The items of ``generator``, stepped on the background loop; closing early closes it there."""
    try:
        while True:
            finished, item = run_sync(_step(generator))
            if finished:
                return
            yield item  # type: ignore[misc]
    finally:
        run_sync(generator.aclose())


async def iterate_async(generator: AsyncGenerator[T, None]) -> AsyncGenerator[T, None]:
    """The items of ``generator``, stepped on the background loop, from any event loop."""
    try:
        while True:
            finished, item = await run_async(_step(generator))
            if finished:
                return
            yield item  # type: ignore[misc]
    finally:
        await run_async(generator.aclose())
