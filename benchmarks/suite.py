"""The benchmark suite: nbserve beside its anchors, on the same model, in one run.

    python benchmarks/suite.py                        # full run, writes docs/benchmarks.md
    python benchmarks/suite.py --smoke -o /tmp/b.md   # short durations: proves the suite runs

Three ways to serve all-MiniLM-L6-v2 (the quickstart's model, batch 32, 5 ms wait):
- raw: the model in this process, batch after batch (the physical limit of the machine);
- anchor: ``anchor_app.py``, a hand-written Ray Serve app on a Ray cluster of its own with
  Ray's defaults;
- nbserve: the quickstart's ``%%serve`` cell as written (default flags), run by a real Jupyter
  kernel (whose ``%load_ext`` starts the cluster in the background).
HTTP load comes from wrk (one item per request, keep-alive connections). Anchor and nbserve
trials alternate within each round, and both clusters stay up the whole time, so background
load is the same for both. Every figure is a median over the rounds, with its range.
Uses its own ports (NBSERVE_RAY_PORT=6589, NBSERVE_HTTP_PORT=8189, anchor 8299) unless set.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import (
    NOOP_CELL,
    ROOT,
    TEXT,
    Figure,
    machine,
    model_dir,
    quickstart_cell,
    raw_throughput,
    sections_of,
    use_benchmark_cluster,
)
from benchmarks.wrk import WrkResult, run_wrk
from nbserve import _tokens
from nbserve.backends.ray import cluster
from nbserve.backends.ray.options import HEALTH_CHECK_PERIOD_S
from tests.support.kernels import Kernel

PRESTART_LEAD_S = 20.0
ANCHOR_PORT = int(os.environ.get("NBSERVE_BENCH_ANCHOR_PORT", "8299"))
CORPUS_CODE = """
import random
_rng = random.Random(7)
_WORDS = "the a cat dog river bank model batch serve notebook cluster fast small large data query".split()
TEXTS = [" ".join(_rng.choice(_WORDS) for _ in range(_rng.randint(6, 24))) for _ in range({count})]
"""
# The anchor for calls from a notebook: the no-op app written by hand with Ray Serve (the same
# batching as NOOP_CELL), deployed from the same kernel on the same cluster, called by handle.
# It reserves no CPU: embed and noop hold both of a 2-core machine's, and Serve would wait for one.
HAND_NOOP_CODE = """
from ray import serve

@serve.deployment(max_ongoing_requests=64, ray_actor_options={"num_cpus": 0})
class HandNoop:
    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.005)
    async def handle(self, items):
        return items

    async def __call__(self, item):
        return await self.handle(item)

hand = serve.run(HandNoop.bind(), name="hand_noop", route_prefix=None)
# Serve's own handle to nbserve's replica: the replica's side of noop(x), without nbserve's kernel side.
noop_replica = serve.get_app_handle("noop").call
import time, statistics
"""
# One round: `calls` sequential calls, each written as a notebook user would, timed one by one.
CALL_LOOP = """_ts = []
for _ in range({calls}):
    _t = time.perf_counter()
    {call}
    _ts.append(time.perf_counter() - _t)
"""
CALLS = {
    "noop(x)": "noop(1)",
    "await noop.acall(x)": "await noop.acall(1)",
    "await handle.remote(x), by hand": "await hand.remote(1)",
    "await Serve's handle to noop's replica": "await noop_replica.remote(1)",
}


@dataclass
class Monitoring:
    """Monitoring's cost in throughput (the median over pairs of trials, with that median's 95 %
    confidence interval), and the rates."""

    cost: float
    cost_low: float
    cost_high: float
    on_rps: float
    off_rps: float
    pairs: int


@dataclass
class Settings:
    rounds: int
    seconds: float
    corpus: int
    smoke: bool
    calls: int  # sequential calls per round, for the notebook-call figures
    prestart_lead_s: float  # between %load_ext and the first %%serve, for the "prestarted" figure


# -- the three contenders ----------------------------------------------------------------
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
        self.kernel.ok(f"MODEL_DIR = {model_dir()!r}")

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
def http_trial(url: str, connections: int, seconds: float, body: object, headers: Mapping[str, str]) -> WrkResult:
    run_wrk(url, body=body, connections=connections, duration_s=min(2.0, seconds), headers=headers)  # warm the path
    result = run_wrk(url, body=body, connections=connections, duration_s=seconds, headers=headers)
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
    """Each contender at concurrency 1 and 32, alternating within rounds. nbserve's requests
    carry its token (its endpoints ask for one); the anchor, like Ray Serve, has no auth."""
    headers = {"nbserve": {"Authorization": f"Bearer {_tokens.read_or_create()}"}}
    figures: dict[tuple[str, int], HttpFigures] = {}
    names = list(urls)
    for round_ in range(settings.rounds):
        order = names if round_ % 2 == 0 else names[::-1]
        for connections in (1, 32):
            for name in order:
                result = http_trial(urls[name], connections, settings.seconds, body, headers.get(name, {}))
                figures.setdefault((name, connections), HttpFigures()).add(result)
                log(f"  {name} c{connections}: {result.requests_per_s:.1f} req/s, p50 {result.p50_ms:.1f} ms")
    return figures


def notebook_calls(notebook: Notebook, settings: Settings) -> dict[str, Figure]:
    """p50 of sequential calls from the kernel: the endpoint ``noop`` as a notebook calls it,
    and the hand-written app on the same cluster by its handle, alternating within rounds."""
    notebook.kernel.ok(HAND_NOOP_CODE, timeout=120)
    figures = {name: Figure("ms") for name in CALLS}
    try:
        for round_ in range(settings.rounds):
            for name in list(CALLS) if round_ % 2 == 0 else list(CALLS)[::-1]:
                notebook.kernel.ok(CALL_LOOP.format(calls=max(settings.calls // 10, 5), call=CALLS[name]))  # warm
                notebook.kernel.ok(CALL_LOOP.format(calls=settings.calls, call=CALLS[name]), timeout=600)
                figures[name].values.append(float(notebook.value("statistics.median(_ts) * 1000")))
    finally:
        notebook.kernel.ok("serve.delete('hand_noop')")
    return figures


def verdict(ok: bool) -> str:
    return "met" if ok else "**not met**"


def interval_verdict(low: float, high: float, limit: float) -> str:
    """A cost's verdict from its confidence interval: met only when the whole interval is
    below ``limit``, not met when all of it is above, and otherwise said to be unresolved."""
    if high < limit:
        return "met"
    if low >= limit:
        return "**not met**"
    return "**not resolved** (the interval spans the goal)"


def main() -> None:
    use_benchmark_cluster()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="seconds-long trials: checks the suite, not the figures")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("-o", "--output", default=str(ROOT / "docs" / "benchmarks.md"))
    args = parser.parse_args()
    settings = (
        Settings(rounds=1, seconds=1.0, corpus=64, smoke=True, calls=20, prestart_lead_s=2.0)
        if args.smoke
        else Settings(
            rounds=args.rounds, seconds=10.0, corpus=5000, smoke=False, calls=500, prestart_lead_s=PRESTART_LEAD_S
        )
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
        # %load_ext starts the cluster in the background: "cold" runs the quickstart's cells
        # back to back (the start overlaps only the cell in between); "prestarted" gives the
        # background start PRESTART_LEAD_S, as a user who reads the notebook before running it.
        log("deploy: cold (a fresh kernel, no cluster) each round, back to back and prestarted; then warm")
        cold, prestarted = Figure("s"), Figure("s")
        for round_index in range(settings.rounds):
            for figure, lead in ((cold, 0.0), (prestarted, settings.prestart_lead_s)):
                if round_index or figure is prestarted:
                    notebook.close()
                    cluster.stop_embedded()
                    notebook = Notebook()
                time.sleep(lead)
                figure.values.append(notebook.timed(quickstart_cell()) + notebook.timed("embed('first answer')"))
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
        log("calls from the notebook: noop(x) and a hand-written handle, alternating")
        calls = notebook_calls(notebook, settings)
        notebook.kernel.ok("noop.down()")

        # The quickstart's cell as written (1 CPU): its replica's torch uses the cores the node
        # leaves free (runtime/threads.py), set at its first health check, 5 s after it starts.
        log("bulk: embed.map over the corpus, at default flags")
        notebook.kernel.ok(CORPUS_CODE.format(count=settings.corpus))
        notebook.kernel.ok("embed.map(TEXTS[:64], progress=False)")  # warm the handle and the replica
        time.sleep(HEALTH_CHECK_PERIOD_S + 1)
        bulk = Figure("texts/s")
        for _ in range(settings.rounds):
            code = (
                "import time\n_t = time.perf_counter()\nembed.map(TEXTS, progress=False)\n_t = time.perf_counter() - _t"
            )
            notebook.kernel.ok(code, timeout=900)
            bulk.values.append(settings.corpus / float(notebook.value("_t")))
    finally:
        notebook.close()

    log("monitoring on and off, in pairs of trials")
    from benchmarks.monitoring_overhead import cost, figure_of, paired_trials

    # Short trials in pairs (monitoring_overhead.py says why): 20 pairs of 3 s at the suite's defaults.
    pair_s = 1.0 if settings.smoke else 3.0
    monitoring = paired_trials(max(2, round(2 * settings.rounds * settings.seconds / pair_s)), pair_s, 32, log)
    monitoring_cost = Monitoring(
        *cost(monitoring),
        figure_of(monitoring, True, "requests_per_s").median,
        figure_of(monitoring, False, "requests_per_s").median,
        len(monitoring) // 2,
    )
    cluster.stop_embedded()

    report = render(
        settings,
        machine(),
        raw=raw,
        bulk=bulk,
        cold=cold,
        prestarted=prestarted,
        warm=warm,
        minilm=minilm,
        noop=noop,
        calls=calls,
        monitoring=monitoring_cost,
    )
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    kept = sections_of(output.read_text()) if output.exists() else ""  # other scripts' figures
    output.write_text(report + ("\n" + kept if kept else ""))
    print(report)


def render(
    settings: Settings,
    machine_line: str,
    *,
    raw: Figure,
    bulk: Figure,
    cold: Figure,
    prestarted: Figure,
    warm: Figure,
    minilm: dict[tuple[str, int], HttpFigures],
    noop: dict[tuple[str, int], HttpFigures],
    calls: dict[str, Figure],
    monitoring: Monitoring,
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
    call_ratio = calls["noop(x)"].median / calls["await handle.remote(x), by hand"].median
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
        f"| cold first deploy, cells back to back, <= 15 s | {cold} | {verdict(cold.median <= 15.0)} |",
        f"| first deploy {settings.prestart_lead_s:g} s after `%load_ext` <= 6 s | {prestarted} | "
        f"{verdict(prestarted.median <= 6.0)} |",
        f"| `noop(x)` from the notebook: p50 no worse than a hand-written `await handle.remote(x)` | "
        f"{call_ratio:.2f} x ({calls['noop(x)']} vs {calls['await handle.remote(x), by hand']}) | "
        f"{verdict(call_ratio <= 1.0)} |",
        f"| monitoring costs < 3 % | {monitoring.cost:+.1%} (95 % interval {monitoring.cost_low:+.1%} to "
        f"{monitoring.cost_high:+.1%}, {monitoring.pairs} pairs of trials; {monitoring.on_rps:.0f} vs "
        f"{monitoring.off_rps:.0f} req/s) | {interval_verdict(monitoring.cost_low, monitoring.cost_high, 0.03)} |",
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
        f"## Calls from the notebook ({settings.calls} sequential calls per round, no-op handler)",
        "",
        "The endpoint `noop` (the cell above) as a notebook calls it, and the same no-op written by",
        "hand with Ray Serve, deployed from the same kernel on the same cluster and called by handle.",
        "The last row calls nbserve's replica by Serve's handle, as the hand-written app is called:",
        "against the hand-written app it is the replica's share of the difference, against `noop(x)`",
        "the kernel's (nbserve's event loop thread and the `Outcome` it unwraps).",
        "",
        "| call | p50 |",
        "| --- | --- |",
        *[f"| `{name}` | {figure} |" for name, figure in calls.items()],
        "",
        "## Bulk and deploys",
        "",
        "| what | figure |",
        "| --- | --- |",
        f"| raw: the model in-process, batch 32 | {raw} |",
        f"| nbserve: `embed.map` of {settings.corpus} texts from a kernel, default flags (1 CPU) | {bulk} |",
        f"| cold: a fresh kernel, no cluster; quickstart cells back to back to the first answer | {cold} |",
        f"| prestarted: the same, `%%serve` {settings.prestart_lead_s:g} s after `%load_ext` | {prestarted} |",
        f"| warm: redeploy to the new version's first answer | {warm} |",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
