"""A closed-loop HTTP load generator for one endpoint: ``concurrency`` clients, each sending
its next request as soon as the previous one is answered. A streaming endpoint is read as a
stream (``"stream": true``): the time to its first chunk is measured too.

It runs on an asyncio loop in the caller's process (aiohttp, keep-alive connections). On a
small machine it competes with the endpoint for CPU: for figures to publish, drive load
from outside with a compiled generator (``benchmarks/`` uses wrk).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from nbserve._errors import CommandError
from nbserve._metrics import percentile

__all__ = ["BenchProgress", "BenchResult", "LoadPlan", "histogram", "run_load"]


@dataclass(frozen=True)
class LoadPlan:
    url: str
    payloads: Sequence[Any]  # inputs, sent in turn as {"input": x}
    concurrency: int = 8
    duration_s: float | None = 10.0  # stop after this long ...
    requests: int | None = None  # ... or after this many requests
    timeout_s: float = 60.0
    headers: Mapping[str, str] = field(default_factory=dict)  # the endpoint's token, where it needs one
    stream: bool = False  # ask for Server-Sent Events and time the first chunk

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise CommandError(f"--concurrency must be at least 1, got {self.concurrency}")
        if (self.duration_s is None) == (self.requests is None):
            raise CommandError("give either --duration or --requests, not both")
        if self.duration_s is not None and self.duration_s <= 0:
            raise CommandError(f"--duration must be a positive number of seconds, got {self.duration_s:g}")
        if self.requests is not None and self.requests < 1:
            raise CommandError(f"--requests must be at least 1, got {self.requests}")
        if not self.payloads:
            raise CommandError("--payload gave no inputs")


@dataclass
class BenchResult:
    """What the load generator saw: every latency, and every failure by its cause."""

    plan: LoadPlan
    latencies_ms: list[float] = field(default_factory=list)  # successful requests, in order
    first_chunks_ms: list[float] = field(default_factory=list)  # streams: time to their first chunk
    chunks: int = 0  # streams: chunks received
    failures: Counter[str] = field(default_factory=Counter)  # "HTTP 500", "timeout", ...
    started: float = 0.0
    elapsed_s: float = 0.0

    @property
    def ok(self) -> int:
        return len(self.latencies_ms)

    @property
    def sent(self) -> int:
        return self.ok + sum(self.failures.values())

    @property
    def requests_per_s(self) -> float:
        return self.sent / self.elapsed_s if self.elapsed_s else 0.0

    def percentiles(self) -> dict[str, float | None]:
        ordered = sorted(self.latencies_ms)
        return {f"p{q}": percentile(ordered, q) if ordered else None for q in (50, 90, 95, 99)}

    def first_chunk_percentiles(self) -> dict[str, float | None]:
        ordered = sorted(self.first_chunks_ms)
        return {f"p{q}": percentile(ordered, q) if ordered else None for q in (50, 95)}


@dataclass(frozen=True)
class BenchProgress:
    sent: int
    ok: int
    failed: int
    elapsed_s: float
    requests_per_s: float  # over the last reporting interval
    p50_ms: float | None
    p99_ms: float | None
    fraction_done: float


def histogram(values: Sequence[float], bins: int = 20) -> list[tuple[float, float, int]]:
    """``(low, high, count)`` per bin, evenly spaced from the smallest to the largest value."""
    if not values:
        return []
    low, high = min(values), max(values)
    width = (high - low) / bins or 1.0
    counts = [0] * bins
    for value in values:
        counts[min(int((value - low) / width), bins - 1)] += 1
    return [(low + i * width, low + (i + 1) * width, counts[i]) for i in range(bins)]


async def run_load(
    plan: LoadPlan,
    on_progress: Callable[[BenchProgress], None] | None = None,
    progress_interval_s: float = 0.5,
) -> BenchResult:
    import aiohttp

    result = BenchResult(plan)
    extra = {"stream": True} if plan.stream else {}
    bodies = [json.dumps({"input": p, **extra}).encode() for p in plan.payloads]
    next_index = 0
    result.started = time.perf_counter()
    deadline = result.started + plan.duration_s if plan.duration_s is not None else None

    def claim() -> int | None:
        """The index of the next request to send, or None when the plan is done."""
        nonlocal next_index
        if plan.requests is not None and next_index >= plan.requests:
            return None
        if deadline is not None and time.perf_counter() >= deadline:
            return None
        next_index += 1
        return next_index - 1

    timeout = aiohttp.ClientTimeout(total=plan.timeout_s)
    connector = aiohttp.TCPConnector(limit=plan.concurrency, force_close=False)
    headers = {"Content-Type": "application/json", **plan.headers}
    async with aiohttp.ClientSession(timeout=timeout, connector=connector, headers=headers) as session:

        async def client() -> None:
            while (index := claim()) is not None:
                sent = time.perf_counter()
                try:
                    async with session.post(plan.url, data=bodies[index % len(bodies)]) as response:
                        status = response.status
                        if plan.stream and status == 200:
                            status = await _read_stream(response, sent, result)
                        else:
                            await response.read()
                except asyncio.TimeoutError:
                    result.failures[f"timeout after {plan.timeout_s:g} s"] += 1
                    continue
                except aiohttp.ClientError as exc:
                    result.failures[type(exc).__name__] += 1
                    continue
                if status == 200:
                    result.latencies_ms.append((time.perf_counter() - sent) * 1000)
                else:
                    result.failures[f"HTTP {status}"] += 1

        async def report() -> None:
            last_sent, last_time = 0, result.started
            while True:
                await asyncio.sleep(progress_interval_s)
                now = time.perf_counter()
                if on_progress is not None:
                    on_progress(_progress(result, now, last_sent, last_time))
                last_sent, last_time = result.sent, now

        reporter = asyncio.ensure_future(report())
        try:
            await asyncio.gather(*(client() for _ in range(plan.concurrency)))
        finally:
            reporter.cancel()
    result.elapsed_s = time.perf_counter() - result.started
    if on_progress is not None:
        on_progress(_progress(result, time.perf_counter(), 0, result.started, finished=True))
    return result


async def _read_stream(response: Any, sent: float, result: BenchResult) -> int:
    """Read a stream's events, noting when the first chunk came; an error event counts as a 500."""
    first = True
    async for line in response.content:
        if line.startswith(b'data: {"output"'):
            if first:
                result.first_chunks_ms.append((time.perf_counter() - sent) * 1000)
                first = False
            result.chunks += 1
        elif line.startswith(b"event: error"):
            return 500
    return 200


def _progress(
    result: BenchResult, now: float, last_sent: int, last_time: float, *, finished: bool = False
) -> BenchProgress:
    plan = result.plan
    elapsed = now - result.started
    done = result.sent / plan.requests if plan.requests is not None else elapsed / (plan.duration_s or 1.0)
    recent = sorted(result.latencies_ms[-2000:])  # the latest requests, cheap to sort every tick
    return BenchProgress(
        sent=result.sent,
        ok=result.ok,
        failed=sum(result.failures.values()),
        elapsed_s=elapsed,
        requests_per_s=(result.sent - last_sent) / max(now - last_time, 1e-9),
        p50_ms=percentile(recent, 50) if recent else None,
        p99_ms=percentile(recent, 99) if recent else None,
        fraction_done=1.0 if finished else min(done, 0.99),  # the last requests are still in flight
    )
