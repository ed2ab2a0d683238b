"""Where a redeploy's time goes: the cell stamps its own steps inside the replica.

    python benchmarks/redeploy_profile.py [--runs 4]

Prints, per deploy of the quickstart model: the time until a replica runs the cell's first
line (a new replica process on the first deploy; the running one, reloading, after that),
its imports, the model load, until nbserve sees every replica on the new version, and the
first answer. Also times `ray start` for the embedded cluster.
Uses its own ports (NBSERVE_RAY_PORT=6589, NBSERVE_HTTP_PORT=8189) unless they are set.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import nbserve
from benchmarks.common import model_dir, use_benchmark_cluster
from nbserve.backends.ray import cluster

CELL = """
import time
STARTED = time.time()
import torch
from transformers import AutoModel, AutoTokenizer
IMPORTED = time.time()
tokenizer = AutoTokenizer.from_pretrained(MODEL_DIR)
model = AutoModel.from_pretrained(MODEL_DIR).eval()
LOADED = time.time()
VERSION = {version}

def embed(texts):
    return [[STARTED, IMPORTED, LOADED] for _ in texts]
"""


def redeploy(version: int) -> tuple[float, ...]:
    namespace = {"MODEL_DIR": model_dir()}
    began = time.time()
    endpoint = nbserve.deploy(CELL.format(version=version), "embed_profile", namespace=namespace)
    returned = time.time()
    started, imported, loaded = endpoint("x")
    answered = time.time()
    return started - began, imported - started, loaded - imported, returned - loaded, answered - returned


def main() -> None:
    use_benchmark_cluster()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=4)
    args = parser.parse_args()
    cluster.stop_embedded()
    began = time.time()
    cluster.start_embedded()
    print(f"ray start: {time.time() - began:.1f} s")
    print("| until the cell's first line | imports | model load | rollout seen | first answer |")
    print("| --- | --- | --- | --- | --- |")
    for version in range(args.runs + 1):
        steps = redeploy(version)
        label = " (first deploy: Serve starts too)" if version == 0 else ""
        print("| " + " | ".join(f"{s:.2f} s" for s in steps) + f" |{label}")
    nbserve.endpoint("embed_profile").down()
    cluster.stop_embedded()


if __name__ == "__main__":
    main()
