"""Deploy-to-first-answer times of the quickstart model (MiniLM) on the embedded cluster.

    python benchmarks/deploy_times.py [--runs 3]

cold: the embedded cluster is stopped first, so the time includes `ray start`, Serve's start
      and the replica loading the model. warm: the same cell deployed again on the running
      cluster (a rolling update), timed until the new version answers.
Uses its own ports (NBSERVE_RAY_PORT=6589, NBSERVE_HTTP_PORT=8189) unless they are set.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import nbserve
from benchmarks.common import Figure, minilm_source, model_dir, use_benchmark_cluster
from nbserve.backends.ray import cluster


def deploy_and_answer(version: int) -> float:
    started = time.perf_counter()
    source = minilm_source("embed_timing", version)
    endpoint = nbserve.deploy(source, "embed_timing", namespace={"MODEL_DIR": model_dir()})
    answer = endpoint("time to first answer")
    elapsed = time.perf_counter() - started
    assert len(answer) == 384, answer
    return elapsed


def main() -> None:
    use_benchmark_cluster()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    cold, warm = Figure("s"), Figure("s")
    for run in range(args.runs):
        cluster.stop_embedded()
        cold.values.append(deploy_and_answer(version=run * 10))
        warm.values.append(deploy_and_answer(version=run * 10 + 1))
    nbserve.endpoint("embed_timing").down()
    cluster.stop_embedded()
    print(f"| deploy to first answer | median (range) of {args.runs} |\n| --- | --- |")
    print(f"| cold (cluster start included) | {cold} |")
    print(f"| warm (redeploy on a running cluster) | {warm} |")


if __name__ == "__main__":
    main()
