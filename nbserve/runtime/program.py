"""Run a cell: setup once, then the handler on batches or single inputs.

Backend-neutral plain Python, the same in a Ray replica, a Modal container, an exported app
and the in-process backend. A failing input never fails the inputs it shared a batch with:
the batch is split in halves until the failing inputs stand alone.
"""

from __future__ import annotations

import asyncio
import contextvars
import importlib
import linecache
import sys
import time
import traceback
import types
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from nbserve._errors import EndpointOverloadedError, EndpointTimeoutError, HandlerError, NbserveError, SetupFailedError
from nbserve.runtime.bundle import CellBundle
from nbserve.runtime.streams import iterate_async, iterate_sync
from nbserve.runtime.threads import ThreadBudget

__all__ = ["SETUP_TRACEBACK_BEGIN", "SETUP_TRACEBACK_END", "CellProgram", "Outcome", "cell_traceback"]

# Markers around the setup traceback, so the kernel can cut it out of Ray's status message.
SETUP_TRACEBACK_BEGIN = "--- nbserve setup traceback ---"
SETUP_TRACEBACK_END = "--- end of nbserve setup traceback ---"


@dataclass(frozen=True)
class Outcome:
    """The result of one input: a value, or why there is none.

    The error is the handler's (``HandlerError``), or the runtime's: the input overran the
    time limit (``EndpointTimeoutError``) or was turned away (``EndpointOverloadedError``).
    """

    value: Any = None
    error: HandlerError | EndpointTimeoutError | EndpointOverloadedError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def unwrap(self) -> Any:
        if self.error is not None:
            raise self.error
        return self.value


def cell_traceback(exc: BaseException, filename: str) -> str:
    """Format ``exc`` with only the frames of the cell (and below), not nbserve's or Ray's.

    When nbserve re-raised the error (``raise ... from``), the cell's frames are the cause's.
    """
    frames = _cell_frames(exc, filename)
    if not frames and exc.__cause__ is not None:
        frames = _cell_frames(exc.__cause__, filename)
    lines = ["Traceback (most recent call last):\n", *traceback.format_list(frames)] if frames else []
    lines += traceback.format_exception_only(type(exc), exc)
    return "".join(lines)


def _cell_frames(exc: BaseException, filename: str) -> list[traceback.FrameSummary]:
    frames = traceback.extract_tb(exc.__traceback__)
    first = next((i for i, f in enumerate(frames) if f.filename == filename), None)
    return list(frames[first:]) if first is not None else []


class _Escaped(NbserveError):
    """A ``BaseException`` the handler raised (``SystemExit``, ``KeyboardInterrupt``...), carried
    as an ordinary exception so that it fails its inputs and nothing else."""

    def __init__(self, original: BaseException) -> None:
        self.original = original
        super().__init__(f"the handler raised {type(original).__name__}: {safe_str(original)}")


def _call_guarded(handler: Callable[[Any], Any], argument: Any) -> Any:
    """Call a sync handler in the executor thread.

    A ``StopIteration`` cannot cross into an asyncio future (the await would never end), and
    a ``SystemExit`` or ``KeyboardInterrupt`` would take the replica's loop down with it: each
    becomes an ordinary exception that names it.
    """
    try:
        return handler(argument)
    except StopIteration as exc:
        raise RuntimeError(f"the handler raised StopIteration: {exc!r}") from exc
    except Exception:
        raise
    except BaseException as exc:
        raise _Escaped(exc) from exc


def _step_guarded(generator: Any) -> tuple[bool, Any]:
    """One ``next`` of a sync generator handler, in the executor thread: ``(finished, chunk)``,
    with the same guards as ``_call_guarded``."""
    try:
        return False, next(generator)
    except StopIteration:
        return True, None
    except Exception:
        raise
    except BaseException as exc:
        raise _Escaped(exc) from exc


def safe_str(exc: BaseException) -> str:
    """``str(exc)``, or what can be said of it when its ``__str__`` itself raises."""
    try:
        return str(exc)
    except BaseException:  # noqa: BLE001 - a broken __str__ must not break the answer
        return f"<{type(exc).__name__} whose message cannot be shown>"


def _handler_error(exc: BaseException, filename: str) -> HandlerError:
    shown = exc.original if isinstance(exc, _Escaped) else exc
    try:
        trace = cell_traceback(shown, filename)
    except BaseException:  # noqa: BLE001 - formatting the traceback calls __str__ too
        trace = ""
    detail = safe_str(shown)
    if not detail and isinstance(shown, asyncio.CancelledError):
        # The handler's own: a call it awaited was cancelled (its task was not, see run_one).
        detail = "a call the handler awaited was cancelled"
    return HandlerError(type(shown).__name__, detail, trace)


def _cancelled_from_outside() -> bool:
    """Whether a ``CancelledError`` here is this task's own cancellation (its caller gave up, a
    time limit), not one the handler raised (a call it awaited was cancelled), which fails its
    inputs like any error of the handler's instead of ending the batcher's worker and leaving
    the batch's callers waiting."""
    task = asyncio.current_task()
    return task is None or task.cancelling() > 0


# The request a handler call serves (set by ``ServedCell`` around the call): a call that is
# still running when its request's time is up is given up, even if its thread started late.
CURRENT_REQUEST: ContextVar[object | None] = ContextVar("nbserve_request", default=None)


class CellProgram:
    """The cell, executed once as a module; ``run_batch`` and ``run_one`` call its handler."""

    def __init__(self, bundle: CellBundle, provided: Mapping[str, Any] | None = None) -> None:
        self.bundle = bundle
        self.module = types.ModuleType(f"nbserve_cell_{bundle.name}")
        self.module.__dict__.update(bundle.constants)
        self.module.__dict__.update(provided or {})  # e.g. handles of the endpoints it uses
        # A replica reloading the cell still serves the previous program, which registered the
        # same module name and pseudo file: a failed setup must give them back, not drop them.
        previous_module = sys.modules.get(self.module.__name__)
        previous_lines = linecache.cache.get(bundle.filename)
        try:
            self._run_setup()
            handler = self.module.__dict__.get(bundle.handler)
            if not callable(handler):
                raise SetupFailedError(f"after setup, {bundle.handler} is not a function of the cell")
        except SetupFailedError:
            if previous_module is None:
                sys.modules.pop(self.module.__name__, None)
            else:
                sys.modules[self.module.__name__] = previous_module
            if previous_lines is not None:
                linecache.cache[bundle.filename] = previous_lines
            raise
        self.handler: Callable[[Any], Any] = handler
        self.threads = ThreadBudget()  # the replica sets what torch may use; applied per call
        # One worker: a sync handler runs off the event loop (health checks and request
        # intake stay responsive) but never concurrently with itself, as models expect.
        self._executor = self._new_worker()
        # The worker's current call: its worker, when it started, and the request it is for.
        self._busy_since: tuple[ThreadPoolExecutor, float, object | None] | None = None
        self.stuck = 0  # workers given up on: each still runs a call that never returned

    def _run_setup(self) -> None:
        filename = self.bundle.filename
        source = self.bundle.source
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        try:
            for alias, module_name in self.bundle.modules.items():
                self.module.__dict__[alias] = importlib.import_module(module_name)
            # The cell may define classes and dataclasses that look themselves up by module.
            sys.modules[self.module.__name__] = self.module
            exec(compile(source, filename, "exec"), self.module.__dict__)
        except BaseException as exc:  # noqa: BLE001 - any setup failure must reach the kernel
            text = cell_traceback(exc, filename)
            raise SetupFailedError(f"{SETUP_TRACEBACK_BEGIN}\n{text}{SETUP_TRACEBACK_END}") from None

    async def _invoke(self, argument: Any) -> Any:
        if self.bundle.is_async:
            return await self.handler(argument)
        executor = self._executor
        request = CURRENT_REQUEST.get()

        def run() -> Any:
            self._busy_since = (executor, time.monotonic(), request)
            self.threads.apply()
            try:
                return _call_guarded(self.handler, argument)
            finally:
                if self._busy_since is not None and self._busy_since[0] is executor:
                    self._busy_since = None

        # In the caller's context, as Serve runs a sync method (anyio.to_thread does the same):
        # a call the handler makes into another endpoint is then the request's child, which Ray
        # cancels with it and Serve logs under its request id.
        context = contextvars.copy_context()
        try:
            return await asyncio.get_running_loop().run_in_executor(executor, context.run, run)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if executor is self._executor or (task is not None and task.cancelling()):
                raise
            # Queued behind a call that never returned, on a worker given up since: run it on the new one.
            return await self._invoke(argument)

    async def stream(self, argument: Any) -> AsyncGenerator[Any, None]:
        """The chunks a generator handler yields for ``argument`` (one input, or a batch's list).

        What the handler raises midway comes out as ``HandlerError``, with the cell's traceback.
        """
        if self.bundle.is_async:
            source = iterate_async(self.handler(argument))
        else:
            source = iterate_sync(lambda: _call_guarded(self.handler, argument), self._step, lambda: self._executor)
        try:
            async for chunk in source:
                yield chunk
        except (asyncio.CancelledError, GeneratorExit):
            raise
        except BaseException as exc:  # noqa: BLE001 - any handler error belongs to its stream
            raise _handler_error(exc, self.bundle.filename) from None
        finally:
            await source.aclose()

    def _step(self, generator: Any) -> tuple[bool, Any]:
        executor = self._executor
        self._busy_since = (executor, time.monotonic(), None)
        self.threads.apply()
        try:
            return _step_guarded(generator)
        finally:
            if self._busy_since is not None and self._busy_since[0] is executor:
                self._busy_since = None

    def overran(self, limit_s: float, request: object | None = None) -> bool:
        """Whether the sync handler's current call has run for more than ``limit_s`` seconds,
        or is the call for ``request`` (which has run out of time, however late it started)."""
        busy = self._busy_since
        if busy is None or busy[0] is not self._executor:
            return False
        return (request is not None and busy[2] is request) or time.monotonic() - busy[1] > limit_s

    def _new_worker(self) -> ThreadPoolExecutor:
        return ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"nbserve-{self.bundle.name}")

    def abandon_worker(self) -> None:
        """Give up on a sync handler call that overran its time: later calls run on a new
        thread. Python cannot stop the old one; it ends if its call ever returns."""
        stuck, self._executor = self._executor, self._new_worker()
        stuck.shutdown(wait=False, cancel_futures=True)
        self.stuck += 1

    async def run_one(self, item: Any) -> Outcome:
        """Call an unbatched handler with one input."""
        try:
            return Outcome(await self._invoke(item))
        except BaseException as exc:  # any handler error belongs to its input
            if isinstance(exc, asyncio.CancelledError) and _cancelled_from_outside():
                raise
            return Outcome(error=_handler_error(exc, self.bundle.filename))

    async def run_batch(self, items: Sequence[Any]) -> list[Outcome]:
        """Call a batched handler; isolate failures to the inputs that cause them."""
        items = list(items)
        if not items:
            return []
        try:
            outputs = await self._invoke(items)
            outputs = self._check_outputs(outputs, len(items))
        except BaseException as exc:  # isolate whatever the handler raised
            if isinstance(exc, asyncio.CancelledError) and _cancelled_from_outside():
                raise
            if len(items) == 1:
                return [Outcome(error=_handler_error(exc, self.bundle.filename))]
            middle = len(items) // 2
            return await self.run_batch(items[:middle]) + await self.run_batch(items[middle:])
        return [Outcome(value) for value in outputs]

    def _check_outputs(self, outputs: Any, expected: int) -> list[Any]:
        if isinstance(outputs, (str, bytes, Mapping)):
            raise TypeError(
                f"{self.bundle.handler}() returned a {type(outputs).__name__}, but a batched handler must "
                "return a list with one output per input (or add --no-batch)"
            )
        try:
            values = list(outputs)
        except TypeError:
            raise TypeError(
                f"{self.bundle.handler}() returned {type(outputs).__name__}, but a batched handler "
                "must return a list with one output per input (or add --no-batch)"
            ) from None
        if len(values) != expected:
            raise ValueError(
                f"{self.bundle.handler}() returned {len(values)} outputs for {expected} inputs; "
                "a batched handler must return exactly one output per input"
            )
        return values

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        if sys.modules.get(self.module.__name__) is self.module:  # not a newer program's
            sys.modules.pop(self.module.__name__, None)
