"""``Endpoint``: the notebook's handle on a deployed cell."""

from __future__ import annotations

import asyncio
import html
import json
import random
import shlex
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable, Iterator
from typing import Any

from nbserve._aio import iterate_async, iterate_sync, run_async, run_sync
from nbserve._errors import CommandError, EndpointOverloadedError, EndpointUnavailableError, MapError
from nbserve._metrics import DEFAULT_WINDOW_S
from nbserve._types import EndpointInfo, EndpointStats, EndpointStatus, SeriesPoint
from nbserve.backends.base import Backend, EndpointClient
from nbserve.runtime import Outcome

__all__ = ["ChunkStream", "Endpoint"]

UNBATCHED_CHUNK = 16
# map's wait before re-sending inputs the endpoint turned away, doubled each time up to the max.
OVERLOAD_BACKOFF_S = 0.2
MAX_OVERLOAD_BACKOFF_S = 5.0
# A call whose replica died is sent again this many times, after a pause in which Serve's
# router learns the replica is gone (a retry at once can reach the same dead replica).
REPLICA_RETRIES = 2
RETRY_PAUSE_S = 0.2


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
    def urls(self) -> dict[str, str | None]:
        """Where HTTP reaches it: ``direct`` (``url``, this machine and its cluster) and
        ``jupyter``, through the Jupyter server that runs this kernel (its own auth; the one a
        remote browser or a teammate reaches), ``None`` where the kernel knows no server."""
        from nbserve._jupyter import jupyter_endpoint_url

        return {"direct": self.url, "jupyter": jupyter_endpoint_url(self.name)}

    @property
    def backend(self) -> str:
        return self._info.backend

    @property
    def public(self) -> bool:
        """Whether its HTTP route answers without the token (``--public``)."""
        return self._info.public

    def headers(self) -> dict[str, str]:
        """The HTTP headers a call of ``url`` needs: the token, unless the endpoint is public."""
        token = None if self.public else self._backend.token()
        return {"Authorization": f"Bearer {token}"} if token else {}

    def api_key(self) -> str:
        """The token, for clients that take it as an ``api_key`` (OpenAI's, LangChain's); never
        shown. A public endpoint takes any key: ``"public"``."""
        return (None if self.public else self._backend.token()) or "public"

    @property
    def openai_url(self) -> str:
        """The ``base_url`` of OpenAI's clients for this endpoint (``--openai``): ``url + "/v1"``."""
        if self._info.openai is None:
            raise CommandError(f"{self.name} does not answer OpenAI's API; deploy it with --openai embeddings or chat")
        return self.url + "/v1"

    def curl(self, item: Any = "hello") -> str:
        """A shell command that sends ``item`` over HTTP, reading the token from ``$NBSERVE_TOKEN``
        (``export NBSERVE_TOKEN=$(nbserve token)``); the token itself is never written out."""
        body = shlex.quote(json.dumps({"input": item}))
        auth = "" if self.public else ' -H "Authorization: Bearer $NBSERVE_TOKEN"'
        return f"curl -s{auth} -H 'Content-Type: application/json' -d {body} {shlex.quote(self.url)}"

    @property
    def address(self) -> str | None:
        """The Ray cluster it runs on, where one was named (``--address``, ``RAY_ADDRESS``)."""
        return self._backend.address

    @property
    def key(self) -> tuple[str, str, str]:
        """Backend, cluster address ('' for the default one) and name: this endpoint, wherever it runs."""
        return (self.backend, self.address or "", self.name)

    @property
    def refresh_s(self) -> float:
        """How often its figures change; the dashboard polls at this pace."""
        return self._backend.refresh_s

    def info(self, *, fresh: bool = True) -> EndpointInfo:
        """Information from the backend (handler, resources, status); ``fresh=False`` gives
        what was last read, without asking."""
        if fresh:
            self._info = self._backend.info(self.name)
        return self._info

    # -- calls ------------------------------------------------------------------------
    def _get_client(self) -> EndpointClient:
        if self._client is None:
            self._client = self._backend.client(self.name)
        return self._client

    def __call__(self, item: Any, *, timeout: float | None = None) -> Any:
        """Send one input and return its output.

        Raises ``HandlerError`` when the handler raised for it, ``EndpointTimeoutError`` past
        the endpoint's time limit, ``EndpointOverloadedError`` when its queue is full. A call
        whose replica died is re-run on another, up to twice (unless deployed with ``--no-retry``).
        ``timeout`` bounds the wait in seconds, re-runs included (``TimeoutError``); the input
        is then cancelled where it waits, as it is when Ctrl-C interrupts the call.
        """
        outcome = run_sync(self._call(item), timeout=timeout)
        return outcome.unwrap()

    async def acall(self, item: Any) -> Any:
        """``await endpoint.acall(x)``: one input, without blocking the caller's event loop."""
        outcome = await run_async(self._call(item))
        return outcome.unwrap()

    def stream(self, item: Any) -> ChunkStream:
        """One input's answer in chunks, as the handler yields them: ``for chunk in
        endpoint.stream(x)``. Shown as a cell's result, it prints the chunks as they arrive.

        A handler that does not stream gives its output as one chunk. The handler's error
        midway is raised where it happens (``HandlerError``); stopping early (``break``)
        closes the handler's generator in the replica. A stream is not re-run when its replica dies.
        """
        return ChunkStream(self.name, lambda: self._get_client().stream(item))

    async def astream(self, item: Any) -> AsyncIterator[Any]:
        """``async for chunk in endpoint.astream(x)``: ``stream`` without blocking the caller's loop."""
        async for chunk in iterate_async(self._get_client().stream(item)):
            yield chunk

    def _retries(self, attempt: int) -> bool:
        """Whether a call whose replica died is sent again: inference is idempotent, so it is,
        after a pause in which Serve's router sees the replica go (unless ``--no-retry``)."""
        return self._info.retry and attempt < REPLICA_RETRIES

    async def _call(self, item: Any) -> Outcome:
        client = self._get_client()
        for attempt in range(REPLICA_RETRIES + 1):
            try:
                return await client.call(item)
            except EndpointUnavailableError:
                if not self._retries(attempt):
                    raise
                await asyncio.sleep(RETRY_PAUSE_S)
        raise AssertionError("unreachable")

    async def _call_batch(self, items: list[Any]) -> list[Outcome]:
        """A chunk; inputs the endpoint turns away (its queue is full) are sent again after a
        growing pause, and the chunk again if its replica died: nothing is lost."""
        client = self._get_client()
        outcomes: dict[int, Outcome] = {}
        pending = list(range(len(items)))
        delay = OVERLOAD_BACKOFF_S
        retried = 0
        while pending:
            try:
                answered = await client.call_batch([items[i] for i in pending])
            except EndpointUnavailableError:
                if not self._retries(retried):
                    raise
                retried += 1
                await asyncio.sleep(RETRY_PAUSE_S)
                continue
            for index, outcome in zip(pending, answered, strict=True):
                outcomes[index] = outcome
            pending = [i for i in pending if isinstance(outcomes[i].error, EndpointOverloadedError)]
            if pending:
                await asyncio.sleep(delay * random.uniform(0.5, 1.5))
                delay = min(delay * 2, MAX_OVERLOAD_BACKOFF_S)
        return [outcomes[i] for i in range(len(items))]

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
        Inputs the endpoint turns away while its queue is full are sent again after a pause
        that grows, so none is lost. With ``return_exceptions=True`` a failed input's place
        holds its error (``HandlerError``, ``EndpointTimeoutError``); otherwise ``MapError``
        is raised, carrying every result.
        """
        items = list(inputs)
        if not items:
            return []
        if chunk_size is None:
            chunk_size = self._info.max_batch_size if self._info.batched else UNBATCHED_CHUNK
        size = chunk_size
        if size < 1:
            raise CommandError(f"map: chunk_size must be at least 1, got {size}")
        chunks = [items[i : i + size] for i in range(0, len(items), size)]
        if max_in_flight is None:
            max_in_flight = max(2, 2 * self._info.status.replicas.running)
        show = progress if progress is not None else len(chunks) > 1
        bar = _progress_bar(len(items), self.name) if show else None

        async def run_all() -> list[list[Outcome]]:
            gate = asyncio.Semaphore(max_in_flight)

            async def one(chunk: list[Any]) -> list[Outcome]:
                async with gate:
                    outcomes = await self._call_batch(chunk)
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

        from nbserve._dashboard.widget import live_dashboard  # ipywidgets: only where a dashboard shows

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


class ChunkStream:
    """The chunks of one streamed answer, read once: iterate it, or show it as a cell's result
    to print the chunks as they come (text runs on; other chunks one per line)."""

    def __init__(self, name: str, open_stream: Callable[[], AsyncGenerator[Any, None]]) -> None:
        self._name = name
        self._open = open_stream
        self._read = False

    def __iter__(self) -> Iterator[Any]:
        if self._read:
            raise CommandError(f"this stream of {self._name} was read already; call {self._name}.stream(x) again")
        self._read = True
        return iterate_sync(self._open())

    def text(self) -> str:
        """The whole answer as one string (the chunks joined)."""
        return "".join(str(chunk) for chunk in self)

    def _ipython_display_(self) -> None:
        ended = True
        for chunk in self:
            if isinstance(chunk, str):
                print(chunk, end="", flush=True)
                ended = chunk.endswith("\n")
            else:
                if not ended:
                    print()
                print(chunk, flush=True)
                ended = True
        if not ended:
            print()

    def __repr__(self) -> str:
        return f"<stream of {self._name}{' (read)' if self._read else ''}>"


def _progress_bar(total: int, name: str) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=name, unit="input")
