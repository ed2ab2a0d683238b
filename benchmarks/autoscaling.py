"""Autoscaling under load, measured: how soon extra replicas serve, how long the first request
at zero replicas waits, and what 1 and 3 replicas serve, for the quickstart's MiniLM.

    python benchmarks/autoscaling.py [--rounds 3] [-o docs/benchmarks.md]

Every endpoint runs the quickstart's cell (``benchmarks/common.py``) on the benchmarks' embedded
cluster (ports 6589/8189 unless set), deployed from this process with ``nbserve.deploy``. The
load is wrk (one text per request, keep-alive connections, the endpoint's token), and the
replica counts are read from ``Endpoint.status()`` four times a second. The anchors, measured
in the same run: the raw model in this process (the machine's limit for throughput), the same
model loaded in this process (the floor for a start from zero), and Serve's own upscale delay
(30 s, which nbserve leaves at Ray's default) for the scale-up. Each figure is the median of
``--rounds`` runs; the section it writes in docs/benchmarks.md is kept when ``suite.py``
rewrites the file.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import requests

import nbserve
from benchmarks.common import (
    BATCH,
    ROOT,
    TEXT,
    Figure,
    machine,
    minilm_source,
    model_dir,
    raw_throughput,
    use_benchmark_cluster,
    write_section,
)
from benchmarks.wrk import WrkResult, run_wrk
from nbserve.backends.ray import cluster

# Ray Serve's default `upscale_delay_s`: the autoscaler adds replicas only after the load has
# stood above target this long. nbserve does not change it.
SERVE_UPSCALE_DELAY_S = 30.0
# Scale-up: 24 clients against a target of 2 ongoing requests per replica asks for all 3.
SCALE_FLAGS: dict[str, Any] = {
    "replicas": "1:3",
    "cpus": "0.5",
    "target_ongoing": 2,
    "max_queued": 32,  # one replica holds all 24 clients' requests while the others start
    "scaledown_window": 5,
}
LOAD_CONNECTIONS = 24
LOAD_S = 75.0
THROUGHPUT_CONNECTIONS = 32


@contextmanager
def endpoint(name: str, **flags: Any) -> Iterator[nbserve.Endpoint]:
    ep = nbserve.deploy(
        minilm_source(name),
        name,
        namespace={"MODEL_DIR": model_dir()},
        on_event=lambda event: None,
        max_batch_size=BATCH,
        batch_wait_ms=5,
        **flags,
    )
    try:
        yield ep
    finally:
        ep.down()


def wait_until(condition: Any, seconds: float, what: str) -> float:
    """Poll ``condition`` four times a second; the seconds it took. Fails past ``seconds``."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > seconds:
            raise SystemExit(f"timed out after {seconds:.0f} s waiting for {what}")
        time.sleep(0.25)
    return time.monotonic() - started


def throughput(ep: nbserve.Endpoint, seconds: float) -> WrkResult:
    run_wrk(ep.url, body=TEXT, connections=THROUGHPUT_CONNECTIONS, duration_s=2, headers=ep.headers())  # warm
    return run_wrk(
        ep.url, body=TEXT, connections=THROUGHPUT_CONNECTIONS, duration_s=seconds, threads=2, headers=ep.headers()
    )


def scale_up_round(ep: nbserve.Endpoint) -> tuple[float, float, float, WrkResult]:
    """Seconds from the load's start to 2 and to 3 replicas running, then back to 1 after it."""
    result: list[WrkResult] = []
    load = threading.Thread(
        target=lambda: result.append(
            run_wrk(ep.url, body=TEXT, connections=LOAD_CONNECTIONS, duration_s=LOAD_S, headers=ep.headers())
        )
    )
    load.start()
    started = time.monotonic()

    def running() -> int:
        return ep.status().replicas.running

    to_two = wait_until(lambda: running() >= 2, LOAD_S, "a second replica under load")
    wait_until(lambda: running() >= 3, LOAD_S, "3 replicas under load")
    to_three = time.monotonic() - started
    load.join()
    down = wait_until(lambda: running() == 1, 240, "the replicas to scale back down to 1")
    return to_two, to_three, down, result[0]


def from_zero_round(ep: nbserve.Endpoint) -> float:
    """Seconds from a request sent at zero replicas to its answer."""
    wait_until(lambda: ep.status().replicas.running == 0, 240, "the idle endpoint to scale to zero")
    started = time.monotonic()
    answer = requests.post(ep.url, json={"input": TEXT}, headers=ep.headers(), timeout=300)
    took = time.monotonic() - started
    if answer.status_code != 200:
        raise SystemExit(f"the first request at zero replicas failed: {answer.status_code} {answer.text[:300]}")
    return took


def model_load_s() -> float:
    """Seconds to import and load MiniLM in a fresh interpreter: what any replica start pays."""
    code = (
        "import time; t = time.perf_counter()\n"
        "from transformers import AutoModel, AutoTokenizer\n"
        f"AutoTokenizer.from_pretrained({model_dir()!r}); AutoModel.from_pretrained({model_dir()!r}).eval()\n"
        "print(time.perf_counter() - t)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300)
    return float(done.stdout.split()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0, help="each throughput trial")
    parser.add_argument("-o", "--output", default=str(ROOT / "docs" / "benchmarks.md"))
    args = parser.parse_args()
    use_benchmark_cluster()

    def log(text: str) -> None:
        print(f"[autoscaling] {text}", file=sys.stderr, flush=True)

    names = ["raw", "one", "three", "to_two", "to_three", "down", "zero", "load"]
    units = ["texts/s", "req/s", "req/s", "s", "s", "s", "s", "s"]
    f = {name: Figure(unit) for name, unit in zip(names, units, strict=True)}
    sent = failed = 0
    try:
        for round_ in range(args.rounds):
            log(f"round {round_ + 1} of {args.rounds}: raw model, 1 and 3 fixed replicas")
            f["raw"].values.append(raw_throughput([TEXT] * 2000))
            f["load"].values.append(model_load_s())
            with endpoint("fixed1", replicas="1") as ep:
                f["one"].values.append(throughput(ep, args.seconds).requests_per_s)
            with endpoint("fixed3", replicas="3", cpus="0.5") as ep:
                f["three"].values.append(throughput(ep, args.seconds).requests_per_s)
            log("scale up under load and back down")
            with endpoint("auto", **SCALE_FLAGS) as ep:
                to_two, to_three, down, load = scale_up_round(ep)
            f["to_two"].values.append(to_two)
            f["to_three"].values.append(to_three)
            f["down"].values.append(down)
            sent += load.requests
            failed += load.non_2xx + load.socket_errors
            log("scale to zero and answer the first request")
            with endpoint("zero", replicas="0:1", cpus="0.5", scaledown_window=2) as ep:
                ep(TEXT)  # the replica runs once, so the scale-down that follows is the one timed
                f["zero"].values.append(from_zero_round(ep))
    finally:
        cluster.stop_embedded()

    m = {name: figure.median for name, figure in f.items()}
    flags = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in SCALE_FLAGS.items())
    machine_cpus = os.cpu_count()
    under = f"`{flags}` under wrk -c{LOAD_CONNECTIONS}"
    table = [
        ("figure", "nbserve", "anchor", "ratio"),
        ("---", "---", "---", "---"),
        (
            f"{under}: load start to 2 replicas running",
            f["to_two"],
            f"Serve's upscale delay {SERVE_UPSCALE_DELAY_S:.0f} s",
            f"{m['to_two'] / SERVE_UPSCALE_DELAY_S:.2f}x",
        ),
        ("the same: load start to 3 replicas running", f["to_three"], "", ""),
        ("the same: load end to 1 replica again (window 5 s)", f["down"], "", ""),
        ("requests failed while replicas came and went", f"{failed} of {sent}", "", ""),
        (
            "`--replicas 0:1`: a request at zero replicas to its answer",
            f["zero"],
            f"MiniLM loaded in a fresh Python {f['load']}",
            f"{m['zero'] / m['load']:.2f}x",
        ),
        (
            f"throughput, 1 replica (1 CPU), wrk -c{THROUGHPUT_CONNECTIONS}",
            f["one"],
            f"raw model in-process {f['raw']}",
            f"{m['one'] / m['raw']:.2f}x",
        ),
        (
            f"throughput, 3 replicas (0.5 CPU each), wrk -c{THROUGHPUT_CONNECTIONS}",
            f["three"],
            "1 replica",
            f"{m['three'] / m['one']:.2f}x",
        ),
    ]
    rows = "\n".join("| " + " | ".join(str(cell) for cell in row) + " |" for row in table)
    report = f"""## Autoscaling (MiniLM, {args.rounds} rounds)

Written by `python benchmarks/autoscaling.py` on {machine()}. The endpoints run the quickstart's
cell; load is wrk, one text per request, with the endpoint's token; replica counts come from
`Endpoint.status()`, four times a second.

{rows}

The scale-up time is Serve's upscale delay plus a replica's start. The start from zero is a
replica's whole start (its process, imports and the model's load) while the request waits in
Serve's proxy. The three fixed replicas share the node's {machine_cpus} CPUs with each other,
as the one replica does alone (each runs torch on the cores free on the node).
"""
    write_section(Path(args.output), "autoscaling", report)
    print(report)


if __name__ == "__main__":
    main()
