"""Streaming: time to the first chunk against the whole answer, and batched decoding at 1 and 8
concurrent streams, for the tutorial's tiny GPT-2 (notebooks/04_streaming_and_openai.ipynb).

    python benchmarks/streaming.py [--rounds 5] [-o docs/benchmarks.md]

The endpoint runs the notebook's own ``%%serve chat`` cell (read from the notebook, so the
figures are the tutorial's) on the benchmarks' embedded cluster (ports 6589/8189 unless set).
The anchor is the same handler called in this process, with no serving in between: the raw
model's batched decoding. Each figure is the median of ``--rounds`` runs; the ratios compare
the endpoint with the anchor measured in the same run. The section it writes in
docs/benchmarks.md is kept when ``suite.py`` rewrites the file.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "notebooks"))
import requests
import tinylm

import nbserve
from benchmarks.common import ROOT, Figure, use_benchmark_cluster, write_section
from nbserve._flags import build_spec, magic_line
from nbserve.backends.ray import cluster

NOTEBOOK = ROOT / "notebooks" / "04_streaming_and_openai.ipynb"
FLAGS = {"openai": "chat", "max_batch_size": 8, "batch_wait_ms": 20.0}
PROMPTS = ["Ray Serve ", "A notebook ", "Batching ", "Streaming ", "The dashboard ", "Jupyter ", "Ray ", "A "]
MAX_TOKENS = 64


def notebook_cell() -> str:
    """The body of the notebook's ``%%serve chat`` cell; its line must ask for ``FLAGS``."""
    cells = json.loads(NOTEBOOK.read_text())["cells"]
    source = next("".join(c["source"]) for c in cells if "".join(c["source"]).startswith("%%serve chat"))
    line, body = source.split("\n", 1)
    expected = magic_line(build_spec(name="chat", **FLAGS))
    if line != expected:
        raise SystemExit(f"the notebook's line is {line!r}; this script measures {expected!r}: update FLAGS")
    return body


def sse_chunks(url: str, prompt: str, headers: dict[str, str]) -> Iterator[str]:
    body = {"input": {"prompt": prompt, "max_tokens": MAX_TOKENS}, "stream": True}
    with requests.post(url, json=body, headers=headers, stream=True, timeout=120) as response:
        for line in response.iter_lines():
            if line.startswith(b'data: {"output"'):
                yield json.loads(line[6:])["output"]


def first_and_total(chunks: Callable[[], Iterator[Any]]) -> tuple[float, float, int]:
    started = time.perf_counter()
    first = None
    count = 0
    for _ in chunks():
        first = first if first is not None else time.perf_counter() - started
        count += 1
    return (first or 0.0), time.perf_counter() - started, count


def concurrent_tokens_per_s(streams: int, one: Callable[[str], int]) -> float:
    """Chunks per second of ``streams`` prompts streamed at once (each ``one`` returns its count)."""
    prompts = [PROMPTS[i % len(PROMPTS)] for i in range(streams)]
    started = time.perf_counter()
    with ThreadPoolExecutor(streams) as pool:
        total = sum(pool.map(one, prompts))
    return total / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("-o", "--output", default=str(ROOT / "docs" / "benchmarks.md"))
    args = parser.parse_args()
    use_benchmark_cluster()
    body = notebook_cell()
    values = {"LM_DIR": str(tinylm.train(Path.home() / ".cache" / "nbserve-tinylm")), "VOCAB": tinylm.VOCAB}

    # The anchor: the handler in this process, a batch of 1 or 8 requests.
    module: dict[str, Any] = dict(values)
    exec(compile(body, "<chat cell>", "exec"), module)
    handler = module["chat"]

    def raw_steps(prompts: list[str]) -> Iterator[list[Any]]:
        return handler([{"prompt": p, "max_tokens": MAX_TOKENS} for p in prompts])

    def raw_batch_tokens_per_s(streams: int) -> float:
        prompts = [PROMPTS[i % len(PROMPTS)] for i in range(streams)]
        started = time.perf_counter()
        total = sum(sum(chunk is not None for chunk in step) for step in raw_steps(prompts))
        return total / (time.perf_counter() - started)

    ep = nbserve.deploy(body, "chat", namespace=values, on_event=lambda event: None, **FLAGS)
    headers = ep.headers()
    try:
        figures: dict[str, Figure] = {
            key: Figure(unit)
            for key, unit in [
                ("raw_first", "ms"), ("raw_total", "ms"), ("http_first", "ms"), ("http_total", "ms"),
                ("raw_1", "tokens/s"), ("raw_8", "tokens/s"), ("http_1", "tokens/s"), ("http_8", "tokens/s"),
            ]
        }  # fmt: skip
        chunks_per_answer = 0
        first_and_total(lambda: sse_chunks(ep.url, PROMPTS[0], headers))  # warm the route
        for _ in range(args.rounds):
            raw_first, raw_total, _ = first_and_total(lambda: (c for step in raw_steps([PROMPTS[3]]) for c in step))
            http_first, http_total, chunks_per_answer = first_and_total(lambda: sse_chunks(ep.url, PROMPTS[3], headers))
            figures["raw_first"].values.append(raw_first * 1000)
            figures["raw_total"].values.append(raw_total * 1000)
            figures["http_first"].values.append(http_first * 1000)
            figures["http_total"].values.append(http_total * 1000)
            for streams in (1, 8):
                figures[f"raw_{streams}"].values.append(raw_batch_tokens_per_s(streams))
                figures[f"http_{streams}"].values.append(
                    concurrent_tokens_per_s(streams, lambda p: sum(1 for _ in sse_chunks(ep.url, p, headers)))
                )
        stats = ep.stats()
    finally:
        ep.down()
        cluster.stop_embedded()

    f = {key: figure.median for key, figure in figures.items()}
    report = f"""## Streaming (the tutorial's tiny GPT-2, {args.rounds} rounds)

Written by `python benchmarks/streaming.py`. The endpoint is notebook 04's `%%serve chat` cell
(`{magic_line(build_spec(name="chat", **FLAGS))}`), streamed over HTTP (Server-Sent Events through
Serve's proxy); the anchor is the same handler called in-process. One answer is
{chunks_per_answer} chunks (characters), at most {MAX_TOKENS}.

| figure | endpoint (HTTP, SSE) | raw handler in-process | ratio |
| --- | --- | --- | --- |
| time to first chunk | {figures["http_first"]} | {figures["raw_first"]} | {f["http_first"] / f["raw_first"]:.2f}x |
| whole answer | {figures["http_total"]} | {figures["raw_total"]} | {f["http_total"] / f["raw_total"]:.2f}x |
| first chunk / whole answer | {f["http_first"] / f["http_total"]:.0%} | {f["raw_first"] / f["raw_total"]:.0%} | |
| batched decoding, 1 stream | {figures["http_1"]} | {figures["raw_1"]} | {f["http_1"] / f["raw_1"]:.2f}x |
| batched decoding, 8 concurrent streams | {figures["http_8"]} | {figures["raw_8"]} | {f["http_8"] / f["raw_8"]:.2f}x |
| 8 streams against 1 | {f["http_8"] / f["http_1"]:.2f}x | {f["raw_8"] / f["raw_1"]:.2f}x | |

The replica formed batches of up to {stats.batch_max} streams (mean {stats.batch_mean or 0:.1f});
its own figures: first chunk p50 {stats.first_chunk_p50_ms or 0:.0f} ms, p95
{stats.first_chunk_p95_ms or 0:.0f} ms.
"""
    write_section(Path(args.output), "streaming", report)
    print(report)


if __name__ == "__main__":
    main()
