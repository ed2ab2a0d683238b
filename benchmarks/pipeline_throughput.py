"""Throughput of notebooks/02_pipeline.ipynb: the deployed pipeline vs its cells in one process.

    python benchmarks/pipeline_throughput.py [--questions 480] [--runs 3]

Both sides run the very cells of the tutorial (read from the notebook):
- in-process: the three cells as plain Python in this process. A cell's call to another
  (`embed.map(...)`) is a direct call, and questions go in chunks of 32, the pipeline's batch
  size. This is the anchor.
- pipeline: the three endpoints on the embedded cluster, with `answer.map(questions)`.
Prints questions/s for each (median of the runs, with the range) and the ratio.
Uses its own ports (NBSERVE_RAY_PORT=6589, NBSERVE_HTTP_PORT=8189) unless they are set.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Generator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import nbformat

import nbserve
from benchmarks.common import ROOT, Figure, model_dir, use_benchmark_cluster
from nbserve._cell import analyze_cell, make_bundle
from nbserve.backends.ray import cluster
from nbserve.runtime.program import CellProgram

NOTEBOOK = ROOT / "notebooks" / "02_pipeline.ipynb"
CHUNK = 32


def tutorial_cells() -> tuple[dict[str, tuple[str, str]], dict[str, Any]]:
    """The %%serve cells of the tutorial (name -> (magic line, body)) and its plain values."""
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    cells: dict[str, tuple[str, str]] = {}
    namespace: dict[str, Any] = {"MODEL_DIR": model_dir()}
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        if cell.source.startswith("%%serve "):
            line, _, body = cell.source.partition("\n")
            cells[line.split()[1]] = (line, body)
        elif cell.source.startswith("FACTS = "):
            exec(cell.source, namespace)  # the corpus, as the notebook builds it
    return cells, {k: v for k, v in namespace.items() if k.isupper()}


class _LocalPending:
    def __init__(self, program: CellProgram, items: list[Any], many: bool) -> None:
        self._program, self._items, self._many = program, items, many

    async def _run(self) -> Any:
        values = [o.unwrap() for o in await self._program.run_batch(self._items)]
        return values if self._many else values[0]

    def __await__(self) -> Generator[Any, None, Any]:
        return self._run().__await__()

    def result(self) -> Any:
        return asyncio.run(self._run())


class LocalEndpoint:
    """What `--uses NAME` gives a cell, as a direct call into a program in this process."""

    def __init__(self, program: CellProgram) -> None:
        self._program = program

    def __call__(self, item: Any) -> _LocalPending:
        return _LocalPending(self._program, [item], many=False)

    def map(self, items: Any) -> _LocalPending:
        return _LocalPending(self._program, list(items), many=True)


def in_process(cells: dict[str, tuple[str, str]], values: dict[str, Any]) -> CellProgram:
    programs: dict[str, CellProgram] = {}
    for name in ("embed", "search", "answer"):
        _, body = cells[name]
        provided = {used: LocalEndpoint(programs[used]) for used in programs}
        info = analyze_cell(body)
        bundle = make_bundle(name, body, info, batched=True, namespace=values, provided=frozenset(provided))
        programs[name] = CellProgram(bundle, provided)
    return programs["answer"]


def questions(count: int) -> list[str]:
    topics = ["Eiffel Tower", "bees", "the ocean", "penicillin", "Everest", "Python", "plants", "Jupiter"]
    return [f"Question {i}: what do you know about {topics[i % len(topics)]}?" for i in range(count)]


def time_in_process(answer: CellProgram, asked: list[str]) -> float:
    started = time.perf_counter()
    for i in range(0, len(asked), CHUNK):
        outcomes = asyncio.run(answer.run_batch(asked[i : i + CHUNK]))
        assert all(o.ok for o in outcomes)
    return len(asked) / (time.perf_counter() - started)


def deploy_pipeline(cells: dict[str, tuple[str, str]], values: dict[str, Any]) -> nbserve.Endpoint:
    endpoint = None
    for name in ("embed", "search", "answer"):
        line, body = cells[name]
        flags: dict[str, Any] = {}
        words = line.split()[2:]
        for flag, value in zip(words[::2], words[1::2], strict=True):
            flags[flag.removeprefix("--").replace("-", "_")] = value
        endpoint = nbserve.deploy(body, name, namespace=values, **flags)
    assert endpoint is not None
    return endpoint


def time_pipeline(answer: nbserve.Endpoint, asked: list[str]) -> float:
    started = time.perf_counter()
    answers = answer.map(asked, progress=False)
    assert len(answers) == len(asked)
    return len(asked) / (time.perf_counter() - started)


def main() -> None:
    use_benchmark_cluster()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", type=int, default=480)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    cells, values = tutorial_cells()
    asked = questions(args.questions)

    local_answer = in_process(cells, values)
    time_in_process(local_answer, asked[:CHUNK])  # warm-up
    local = Figure("questions/s", [time_in_process(local_answer, asked) for _ in range(args.runs)])

    pipeline_answer = deploy_pipeline(cells, values)
    try:
        time_pipeline(pipeline_answer, asked[:CHUNK])  # warm-up
        deployed = Figure("questions/s", [time_pipeline(pipeline_answer, asked) for _ in range(args.runs)])
    finally:
        for name in ("answer", "search", "embed"):
            nbserve.endpoint(name).down(force=True)
        cluster.stop_embedded()
    print(f"in one process: {local}")
    print(f"pipeline:       {deployed}")
    print(f"ratio pipeline / in-process: {deployed.median / local.median:.2f}")


if __name__ == "__main__":
    main()
