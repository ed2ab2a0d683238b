"""One version of a cell, set up and serving: its program, its batcher, its answers.

What a Ray replica, the in-process backend and an exported app hold per version of the
cell. A request runs on one version from start to end; the replica swaps versions between
requests and retires the old one (its batcher finishes what it holds first).

It keeps an endpoint answering whatever the handler does:

- **Time limits.** An input unanswered after ``timeout_s`` fails alone with
  ``EndpointTimeoutError`` (HTTP 504). A batch that overruns frees the batcher for the next
  one, and a sync handler's call that never returns is left on its thread while later calls
  run on a new one; after ``STUCK_LIMIT`` such calls the cell reports itself unhealthy, so
  its replica is replaced.
- **A bounded queue.** Beyond the inputs one batch runs and ``max_queued`` more, new inputs
  are turned away at once with ``EndpointOverloadedError`` (HTTP 503 with ``Retry-After``),
  rather than waiting behind a queue that only grows.

A generator handler streams (``stream``): its time limit applies to each chunk, not to the
whole answer, and a call that does not stream gets the chunks collected into one output.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from typing import Any

from nbserve._errors import EndpointOverloadedError, EndpointTimeoutError, HandlerError, NbserveError
from nbserve.runtime.access import Access
from nbserve.runtime.batcher import Batcher
from nbserve.runtime.bundle import CellBundle, RuntimeOptions
from nbserve.runtime.http import answer, usage_body
from nbserve.runtime.program import CURRENT_REQUEST, CellProgram, Outcome, safe_str
from nbserve.runtime.recorder import Recorder
from nbserve.runtime.streams import StreamBatcher, collect
from nbserve.runtime.wire import HttpRequest, HttpResponse, HttpTarget

__all__ = ["STUCK_LIMIT", "ServedCell"]

# Handler calls left running past their time limit before the cell calls itself unhealthy:
# each holds a thread (and perhaps the GPU); a new replica is the clean way out.
STUCK_LIMIT = 2
# Seconds a turned-away caller is told to wait (HTTP Retry-After; Endpoint.map's first backoff).
RETRY_AFTER_S = 1.0
# How long the cell's own health() may take.
HEALTH_TIMEOUT_S = 10.0


class ServedCell:
    """Runs ``bundle``'s setup at construction (``SetupFailedError`` if it raises).

    ``access`` says who may call it over HTTP; ``provided`` are extra names of the cell's
    module (the handles of ``--uses``); ``recorder`` gets a sample per request and the size of
    every batch formed; ``on_failure`` is told of every input that failed.
    """

    def __init__(
        self,
        bundle: CellBundle,
        options: RuntimeOptions,
        deployed_at: float,
        access: Access,
        *,
        provided: Mapping[str, Any] | None = None,
        recorder: Recorder | None = None,
        on_failure: Callable[[NbserveError], None] | None = None,
    ) -> None:
        self.bundle = bundle
        self.options = options
        self.deployed_at = deployed_at
        self.access = access
        self.recorder = recorder
        self.on_failure = on_failure
        self.program = CellProgram(bundle, provided)
        self.batcher: Batcher[Outcome] | None = None
        self.stream_batcher: StreamBatcher | None = None
        if options.max_batch_size is not None:
            shape = (options.max_batch_size, options.batch_wait_s, recorder.batch if recorder is not None else None)
            limits: dict[str, Any] = {"timeout_s": options.timeout_s, "on_overrun": self._overrun}
            if bundle.streams:
                self.stream_batcher = StreamBatcher(self.program.stream, *shape, **limits)
            else:
                self.batcher = Batcher(self.program.run_batch, *shape, **limits)
        self.usage = usage_body(options, bundle, deployed_at)
        counter = self.program.module.__dict__.get("count_tokens")  # the cell's own, for OpenAI's usage
        self.target = HttpTarget(
            options,
            self.usage,
            access,
            self.run_each,
            self.stream,
            streams=bundle.streams,
            **({"count_tokens": counter} if callable(counter) else {}),
        )
        # Inputs admitted and not answered yet: at most one batch running and max_queued waiting.
        self.capacity = (options.max_batch_size or 1) + options.max_queued
        self.in_flight = 0
        self.timeouts = 0

    # -- admission ------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def _admitted(self, count: int) -> AsyncGenerator[None, None]:
        # A request larger than the whole limit still runs when nothing else is in hand
        # (a pipeline's setup that maps its corpus in one call), or it could never run.
        if self.in_flight and self.in_flight + count > self.capacity:
            raise EndpointOverloadedError(
                f"{self.options.name} has {self.in_flight} inputs in hand and takes at most {self.capacity} "
                f"(a batch and --max-queued {self.options.max_queued}); try again in {RETRY_AFTER_S:g} s",
                RETRY_AFTER_S,
            )
        self.in_flight += count
        try:
            yield
        finally:
            self.in_flight -= count

    # -- running ----------------------------------------------------------------------------
    async def run_one(self, item: Any) -> Outcome:
        """One input, through the batcher when the endpoint batches, within the time limit."""
        if self.bundle.streams:
            try:
                return Outcome(collect([chunk async for chunk in self._chunks(item)]))
            except (HandlerError, EndpointTimeoutError) as exc:
                return Outcome(error=exc)
        request = object()
        CURRENT_REQUEST.set(request)  # seen by the handler call (the task wait_for makes copies it)
        try:
            if self.batcher is not None:
                return await asyncio.wait_for(self.batcher.submit(item), self.options.timeout_s)
            return await asyncio.wait_for(self.program.run_one(item), self.options.timeout_s)
        except asyncio.TimeoutError:
            if self.batcher is None and self.program.overran(self.options.timeout_s, request):
                self._overrun()
            return Outcome(error=self._timeout())

    async def run_each(self, items: list[Any]) -> list[Outcome]:
        """Several inputs of one request, each joining the batches like a request of its own.

        Raises ``EndpointOverloadedError`` when they do not fit: a request runs whole or not at all.
        """
        async with self._admitted(len(items)):
            return self._checked(list(await asyncio.gather(*(self.run_one(item) for item in items))))

    async def call(self, item: Any) -> Outcome:
        """A call with one input (``endpoint(x)``, a used endpoint), recorded as one request."""
        started = time.perf_counter()
        try:
            async with self._admitted(1):
                outcome = self._checked([await self.run_one(item)])[0]
        except EndpointOverloadedError as exc:
            outcome = Outcome(error=exc)
        self._record(started, 1, not outcome.ok)
        return outcome

    async def call_batch(self, items: list[Any]) -> list[Outcome]:
        """A chunk that is already a batch (``Endpoint.map``): straight to the handler."""
        started = time.perf_counter()
        try:
            async with self._admitted(len(items)):
                outcomes = await self._run_chunk(items)
        except EndpointOverloadedError as exc:
            outcomes = [Outcome(error=exc) for _ in items]
        self._checked(outcomes)
        self._record(started, len(items), not all(o.ok for o in outcomes))
        return outcomes

    async def _run_chunk(self, items: list[Any]) -> list[Outcome]:
        if self.batcher is None:  # one input at a time, or streams (they join batches by themselves)
            return list(await asyncio.gather(*(self.run_one(x) for x in items)))
        if self.recorder is not None:
            self.recorder.batch(len(items))
        try:
            return await asyncio.wait_for(self.program.run_batch(items), self.options.timeout_s)
        except asyncio.TimeoutError:
            self._overrun()
            error = self._timeout()
            return [Outcome(error=error) for _ in items]

    # -- streaming ----------------------------------------------------------------------------
    async def stream(self, item: Any) -> AsyncGenerator[Any, None]:
        """The chunks of one input, as the handler yields them, recorded as one request.

        A handler that does not stream gives its output as one chunk. Raises ``HandlerError``
        when the handler raises midway, ``EndpointTimeoutError`` when a chunk is later than
        ``timeout_s``, ``EndpointOverloadedError`` when the queue is full (before any chunk).
        Closing the iterator early (the caller went) closes the handler's generator.
        """
        started = time.perf_counter()
        first: float | None = None
        chunks = 0
        failed = True
        async with self._admitted(1):
            if self.recorder is not None:
                self.recorder.streaming += 1
            try:
                source = self._chunks(item) if self.bundle.streams else _one(self.run_one(item))
                try:
                    async for chunk in source:
                        if first is None:
                            first = time.perf_counter() - started
                        chunks += 1
                        yield chunk
                finally:
                    await source.aclose()
                failed = False
            except (GeneratorExit, asyncio.CancelledError):
                failed = False  # the caller went: not the endpoint's failure
                raise
            except (HandlerError, EndpointTimeoutError, EndpointOverloadedError) as exc:
                self._checked([Outcome(error=exc)])
                raise
            finally:
                if self.recorder is not None:
                    self.recorder.streaming -= 1
                    self.recorder.request(started, 1, failed, first, chunks)

    async def _chunks(self, item: Any) -> AsyncGenerator[Any, None]:
        """The raw chunks of a generator handler for ``item``, each within the time limit."""
        source = self.stream_batcher.submit(item) if self.stream_batcher is not None else self.program.stream(item)
        try:
            while True:
                try:
                    chunk = await asyncio.wait_for(source.__anext__(), self.options.timeout_s)
                except StopAsyncIteration:
                    return
                except asyncio.TimeoutError:
                    if self.stream_batcher is None:
                        self._overrun()  # a batched stream's batcher frees its own handler
                    raise self._timeout() from None
                yield chunk
        finally:
            await source.aclose()

    async def http(self, request: HttpRequest) -> HttpResponse:
        """The answer to an HTTP request; every request but a ``GET`` is recorded (a stream by
        ``stream`` itself, when it ends)."""
        started = time.perf_counter()
        response = await answer(request, self.target)
        if request.method != "GET" and response.chunks is None:
            self._record(started, response.items, response.failed)
        return response

    # -- health -----------------------------------------------------------------------------
    def _timeout(self) -> EndpointTimeoutError:
        self.timeouts += 1
        limit = self.options.timeout_s
        return EndpointTimeoutError(
            f"{self.options.name} did not answer within {limit:g} s (--timeout {limit:g})", limit
        )

    def _overrun(self) -> None:
        """A batch or a call ran past the time limit: free the handler's worker for later calls."""
        if not self.bundle.is_async:  # an async handler was cancelled; a thread cannot be
            self.program.abandon_worker()

    async def check_health(self) -> None:
        """Raise while the cell should not serve: too many calls stuck, or its ``health()`` says so."""
        if self.program.stuck >= STUCK_LIMIT:
            raise RuntimeError(
                f"{self.program.stuck} handler calls never returned (each overran --timeout "
                f"{self.options.timeout_s:g}); this replica should be replaced"
            )
        probe = self.program.module.__dict__.get("health")
        if not callable(probe) or probe is self.program.handler:
            return
        try:
            result = await asyncio.wait_for(asyncio.to_thread(probe), HEALTH_TIMEOUT_S)
        except asyncio.TimeoutError:
            raise RuntimeError(f"the cell's health() did not return within {HEALTH_TIMEOUT_S:g} s") from None
        except Exception as exc:
            raise RuntimeError(f"the cell's health() raised {type(exc).__name__}: {safe_str(exc)}") from exc
        if result is False:
            raise RuntimeError("the cell's health() returned False")

    # -- bookkeeping --------------------------------------------------------------------------
    def _checked(self, outcomes: list[Outcome]) -> list[Outcome]:
        if self.on_failure is not None:
            for outcome in outcomes:
                if outcome.error is not None:
                    self.on_failure(outcome.error)
        return outcomes

    def _record(self, started: float, items: int, failed: bool) -> None:
        if self.recorder is not None:
            self.recorder.request(started, items, failed)

    async def retire(self) -> None:
        """Another version took over: finish the inputs this one's batcher holds.

        Its program stays open for requests still running on it; what it holds is freed
        with the last reference (``stop`` ends it at once, for an endpoint that goes away).
        """
        if self.batcher is not None:
            await self.batcher.close()
        if self.stream_batcher is not None:
            await self.stream_batcher.close()

    def stop(self) -> None:
        """The endpoint is gone: end the program's worker thread and unregister its module."""
        self.program.close()


async def _one(outcome: Awaitable[Outcome]) -> AsyncGenerator[Any, None]:
    """A plain handler's output as a stream of one chunk."""
    yield (await outcome).unwrap()
