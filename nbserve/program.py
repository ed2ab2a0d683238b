"""Run a cell inside a replica: setup once, then the handler on batches or single inputs.

Backend-neutral plain Python: the Ray replica wraps it today, a Modal class or an exported
app can wrap it the same way. A failing input never fails the inputs it shared a batch with:
the batch is split in halves until the failing inputs stand alone.
"""

from __future__ import annotations

import asyncio
import importlib
import linecache
import sys
import traceback
import types
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from nbserve.cell import CellBundle
from nbserve.errors import HandlerError, SetupFailedError

__all__ = ["SETUP_TRACEBACK_BEGIN", "SETUP_TRACEBACK_END", "CellProgram", "Outcome", "cell_traceback"]

# Markers around the setup traceback, so the kernel can cut it out of Ray's status message.
SETUP_TRACEBACK_BEGIN = "--- nbserve setup traceback ---"
SETUP_TRACEBACK_END = "--- end of nbserve setup traceback ---"


@dataclass(frozen=True)
class Outcome:
    """The result of one input: a value, or the error its handler call raised."""

    value: Any = None
    error: HandlerError | None = None

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


def _call_guarded(handler: Callable[[Any], Any], argument: Any) -> Any:
    """Call a sync handler in the executor thread.

    A ``StopIteration`` cannot cross into an asyncio future (the await would never end), so
    it becomes a ``RuntimeError`` that names it.
    """
    try:
        return handler(argument)
    except StopIteration as exc:
        raise RuntimeError(f"the handler raised StopIteration: {exc!r}") from exc


def _handler_error(exc: BaseException, filename: str) -> HandlerError:
    return HandlerError(type(exc).__name__, str(exc), cell_traceback(exc, filename))


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
        # One worker: a sync handler runs off the event loop (health checks and request
        # intake stay responsive) but never concurrently with itself, as models expect.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"nbserve-{bundle.name}")

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
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, _call_guarded, self.handler, argument)

    async def run_one(self, item: Any) -> Outcome:
        """Call an unbatched handler with one input."""
        try:
            return Outcome(await self._invoke(item))
        except Exception as exc:  # noqa: BLE001 - any handler error belongs to its input
            return Outcome(error=_handler_error(exc, self.bundle.filename))

    async def run_batch(self, items: Sequence[Any]) -> list[Outcome]:
        """Call a batched handler; isolate failures to the inputs that cause them."""
        items = list(items)
        if not items:
            return []
        try:
            outputs = await self._invoke(items)
            outputs = self._check_outputs(outputs, len(items))
        except Exception as exc:  # noqa: BLE001 - isolate whatever the handler raised
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
