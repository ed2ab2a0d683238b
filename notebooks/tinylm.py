"""A tiny character-level GPT-2, trained on this machine in about half a minute.

The streaming tutorial (``04_streaming_and_openai.ipynb``) needs a generative model, and no
model hub is reachable here, so it makes one: the GPT-2 architecture from ``transformers``,
two layers wide enough to memorise a few paragraphs, trained on ``TEXT`` from random
weights. It writes plausible continuations of prompts that look like its text and nonsense
otherwise; what the tutorial shows (batched decoding with a KV cache, tokens streamed one by
one) runs exactly as it would for a real model.

The vocabulary is the characters of ``TEXT``: token ``i`` is ``VOCAB[i]``.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

__all__ = ["TEXT", "VOCAB", "train"]

TEXT = """\
Ray Serve runs models behind HTTP and scales them out across a cluster.
A notebook cell becomes an endpoint: the cell is setup code, the last function is the handler.
Batching gathers requests that arrive together, so a GPU runs one batch instead of many calls.
Streaming sends each token as soon as the model makes it, so the first words arrive at once.
The dashboard shows latency, throughput, replicas and the time to the first token.
Jupyter is where models are made; serving them from the same place saves a day of glue code.
"""
VOCAB = sorted(set(TEXT))


def train(directory: str | Path, *, steps: int = 600, seed: int = 0) -> Path:
    """Train the model on ``TEXT`` and save it (``save_pretrained``) in ``directory``; return it.

    Skipped when ``directory`` already holds a model trained with the same settings.
    """
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    directory = Path(directory)
    stamp = directory / "trained.txt"
    # sha256, not hash(): a str's hash() differs from one process to the next.
    settings = f"steps={steps} seed={seed} text={hashlib.sha256(TEXT.encode()).hexdigest()[:12]}"
    if stamp.exists() and stamp.read_text() == settings:
        return directory
    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=len(VOCAB), n_positions=256, n_embd=96, n_layer=2, n_head=4, bos_token_id=0, eos_token_id=0
    )
    model = GPT2LMHeadModel(config)
    ids = torch.tensor([VOCAB.index(c) for c in TEXT])
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    context = 64
    started = time.perf_counter()
    model.train()
    for _ in range(steps):
        starts = torch.randint(0, len(ids) - context - 1, (16,))
        batch = torch.stack([ids[s : s + context] for s in starts])
        loss = model(input_ids=batch, labels=batch).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    stamp.write_text(settings)
    print(f"trained {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters in "
          f"{time.perf_counter() - started:.0f} s, final loss {loss.item():.3f}")  # fmt: skip
    return directory
