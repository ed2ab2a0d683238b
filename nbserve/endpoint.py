"""``Endpoint``: the notebook's handle on a deployed cell."""

from __future__ import annotations

import asyncio
import html
import time
from collections.abc import Iterable
from typing import Any

from nbserve._aio import run_async, run_sync
from nbserve.backends.base import Backend, EndpointClient, EndpointInfo, EndpointStatus
from nbserve.errors import MapError
from nbserve.metrics import DEFAULT_WINDOW_S, EndpointStats, SeriesPoint
from nbserve.program import Outcome

__all__ = ["Endpoint"]

UNBATCHED_CHUNK = 16


class Endpoint:
    """A deployed ``%%serve`` cell.

    ``endpoint(x)`` calls it with one input (blocking, also inside a Jupyter cell),
    ``await endpoint.acall(x)`` does the same asynchronously, and ``endpoint.map(xs)`` sends
    many inputs in batch-sized chunks with several chunks in flight.
    """

    def __init__(self, backend: Backend, info: EndpointInfo) -> None:
        self._backend = backend
        self._info = info
        self._client: EndpointClient | None = None

    # -- identity ---------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self._info.name

    @property
    def url(self) -> str:
        """The HTTP address: ``POST {"input": x}`` or ``{"inputs": [...]}`` as JSON."""
        return self._info.url

    @property
    def backend(self) -> str:
        return self._info.backend

    def info(self) -> EndpointInfo:
        """Fresh information from the backend (handler, resources, status)."""
        self._info = self._backend.info(self.name)
        return self._info

    # -- calls ------------------------------------------------------------------------
    def _get_client(self) -> EndpointClient:
        if self._client is None:
            self._client = self._backend.client(self.name)
        return self._client

    def __call__(self, item: Any, *, timeout: float | None = None) -> Any:
        """Send one input and return its output; a handler error raises ``HandlerError``."""
        client = self._get_client()
        outcome = run_sync(client.call(item), timeout=timeout)
        return outcome.unwrap()

    async def acall(self, item: Any) -> Any:
        """``await endpoint.acall(x)``: one input, without blocking the caller's event loop."""
        client = self._get_client()
        outcome = await run_async(client.call(item))
        return outcome.unwrap()

    def map(
        self,
        inputs: Iterable[Any],
        *,
        chunk_size: int | None = None,
        max_in_flight: int | None = None,
        progress: bool | None = None,
        return_exceptions: bool = False,
    ) -> list[Any]:
        """Outputs for many inputs, in order.

        Inputs go in chunks of the endpoint's batch size (``chunk_size`` to override), each
        chunk one call that the replica runs as one batch; ``max_in_flight`` chunks (default:
        two per running replica, at least 2) are sent at once so replicas never wait for the
        network. A progress bar shows in notebooks when there is more than one chunk.
        With ``return_exceptions=True`` a failed input's place holds its ``HandlerError``;
        otherwise ``MapError`` is raised, carrying every result.
        """
        items = list(inputs)
        if not items:
            return []
        size = chunk_size or (self._info.max_batch_size if self._info.batched else UNBATCHED_CHUNK)
        if size < 1:
            raise ValueError(f"chunk_size must be at least 1, got {size}")
        chunks = [items[i : i + size] for i in range(0, len(items), size)]
        if max_in_flight is None:
            max_in_flight = max(2, 2 * self._info.status.replicas.running)
        show = progress if progress is not None else len(chunks) > 1
        bar = _progress_bar(len(items), self.name) if show else None
        client = self._get_client()

        async def run_all() -> list[list[Outcome]]:
            gate = asyncio.Semaphore(max_in_flight)

            async def one(chunk: list[Any]) -> list[Outcome]:
                async with gate:
                    outcomes = await client.call_batch(chunk)
                if bar is not None:
                    bar.update(len(chunk))
                return outcomes

            return list(await asyncio.gather(*(one(c) for c in chunks)))

        try:
            per_chunk = run_sync(run_all())
        finally:
            if bar is not None:
                bar.close()
        outcomes = [o for chunk in per_chunk for o in chunk]
        results = [o.value if o.error is None else o.error for o in outcomes]
        failed = [i for i, o in enumerate(outcomes) if o.error is not None]
        if failed and not return_exceptions:
            raise MapError(results, failed)
        return results

    # -- management -------------------------------------------------------------------
    def status(self) -> EndpointStatus:
        """State and replica counts, as the backend reports them now."""
        return self.info().status

    def stats(self, window_s: float = DEFAULT_WINDOW_S) -> EndpointStats:
        """Latency percentiles, throughput, errors and batch sizes over the last ``window_s``
        seconds, with totals and replica counts: all traffic, from every caller and replica."""
        return self._backend.stats(self.name, window_s)

    def series(self, span_s: float = 180.0, step_s: float = 5.0) -> list[SeriesPoint]:
        """Throughput and latency percentiles per ``step_s`` over the last ``span_s`` seconds."""
        return self._backend.series(self.name, span_s, step_s)

    def dashboard(self) -> None:
        """Show the live dashboard (the same one the ``%%serve`` cell shows) in this cell."""
        from IPython.display import display

        from nbserve.dashboard import live_dashboard

        display(live_dashboard(self))  # type: ignore[no-untyped-call]

    def logs(self, tail: int = 200) -> str:
        """The last ``tail`` lines each replica printed (stdout and stderr)."""
        return self._backend.logs(self.name, tail)

    def down(self, force: bool = False) -> None:
        """Delete the deployment; its replicas stop and the URL stops answering.

        Refused with ``EndpointInUseError`` while other endpoints use this one, unless ``force``.
        """
        self._backend.delete(self.name, force=force)
        self._client = None
        from nbserve import registry

        registry.forget_deleted(self.backend, self.name, address=getattr(self._backend, "address", None))

    # -- display ----------------------------------------------------------------------
    def _summary(self) -> list[tuple[str, str]]:
        info = self._info
        deployed = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info.deployed_at))
        return [
            ("url", info.url),
            ("status", f"{info.status.state}, replicas {info.status.replicas}"),
            ("handler", f"{info.handler}({'batch' if info.batched else 'one input'})"),
            ("resources", info.resources),
            ("backend", f"{info.backend}, deployed {deployed}"),
        ]

    def __repr__(self) -> str:
        lines = [f"<Endpoint {self.name}>"] + [f"  {k:<9} {v}" for k, v in self._summary()]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><th style='text-align:left;padding-right:1em'>{html.escape(k)}</th>"
            f"<td style='text-align:left'><code>{html.escape(v)}</code></td></tr>"
            for k, v in self._summary()
        )
        return f"<div><b>Endpoint {html.escape(self.name)}</b><table>{rows}</table></div>"


def _progress_bar(total: int, name: str) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=name, unit="input")
