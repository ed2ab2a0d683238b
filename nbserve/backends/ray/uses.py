"""Inside a cell deployed with ``--uses embed``: ``embed`` is the deployed endpoint ``embed``.

Calls go through Ray Serve's ``DeploymentHandle`` (no HTTP), so they join the used
endpoint's batches and its replicas scale on their own. A call returns a ``PendingOutput``:
``await`` it in an ``async def`` handler, or call ``.result()`` in a sync handler (which runs
in a worker thread, where blocking is allowed). ``embed.stream(x)`` gives a used streaming
endpoint's chunks as they come: ``for`` in a sync handler, ``async for`` in an async one.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator, Iterable, Iterator
from typing import Any

from nbserve.runtime.program import Outcome

__all__ = ["PendingOutput", "PendingStream", "UsedEndpoint"]


class PendingOutput:
    """The future output of a call into a used endpoint."""

    def __init__(self, response: Any, many: bool) -> None:
        self._response = response
        self._many = many

    @staticmethod
    def _unwrap(result: Outcome | list[Outcome], many: bool) -> Any:
        if many:
            assert isinstance(result, list)
            return [outcome.unwrap() for outcome in result]
        assert isinstance(result, Outcome)
        return result.unwrap()

    async def _resolve(self) -> Any:
        return self._unwrap(await self._response, self._many)

    def __await__(self) -> Generator[Any, None, Any]:
        return self._resolve().__await__()

    def result(self, timeout_s: float | None = None) -> Any:
        """Block until the output is there (sync handlers and setup code only)."""
        return self._unwrap(self._response.result(timeout_s=timeout_s), self._many)


class PendingStream:
    """The chunks of a call into a used streaming endpoint, as its replica yields them.

    A handler error ends the iteration by raising its ``HandlerError``.
    """

    def __init__(self, response: Any) -> None:
        self._response = response  # Serve's DeploymentResponseGenerator

    def __iter__(self) -> Iterator[Any]:
        for outcome in self._response:
            yield outcome.unwrap()

    async def __aiter__(self) -> AsyncGenerator[Any, None]:
        async for outcome in self._response:
            yield outcome.unwrap()

    def cancel(self) -> None:
        """Stop the used endpoint's stream (its handler's generator is closed)."""
        self._response.cancel()


class UsedEndpoint:
    """A deployed endpoint as the cells that use it see it."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._handle: Any = None

    def _get_handle(self) -> Any:
        if self._handle is None:
            from ray import serve

            self._handle = serve.get_app_handle(self.name)
        return self._handle

    def __call__(self, item: Any) -> PendingOutput:
        """One input, through the used endpoint's batcher."""
        return PendingOutput(self._get_handle().call.remote(item), many=False)

    def map(self, items: Iterable[Any]) -> PendingOutput:
        """Several inputs, run by the used endpoint as one batch; outputs in order.

        A failing input raises its ``HandlerError`` when the outputs are collected.
        """
        return PendingOutput(self._get_handle().call_batch.remote(list(items)), many=True)

    def stream(self, item: Any) -> PendingStream:
        """One input's answer in chunks, as the used endpoint yields them (one chunk if it does not stream)."""
        return PendingStream(self._get_handle().options(stream=True).stream.remote(item))

    def __repr__(self) -> str:
        return f"<used endpoint {self.name}>"
