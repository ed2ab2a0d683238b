"""``nbserve bench`` and ``%serve bench`` against a real endpoint that fails some inputs."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.support.helpers import run_cli
from tests.support.kernels import Kernel

pytestmark = pytest.mark.integration

# Odd numbers fail: a load test must report them by status code, never hide them.
SOURCE = """
def picky(items):
    out = []
    for x in items:
        if x % 2:
            raise ValueError(f"odd input {x}")
        out.append(x // 2)
    return out
"""


def test_cli_bench_counts_successes_and_failures_by_status(deploy: Any, tmp_path: Path) -> None:
    deploy(SOURCE, "picky")
    inputs = tmp_path / "inputs.jsonl"
    inputs.write_text("2\n4\n1\n6\n")  # every fourth request fails

    done = run_cli("bench", "picky", "--payload", str(inputs), "-c", "4", "-n", "200")

    assert done.returncode == 0, done.stderr
    rows = dict(re.findall(r"^(.+?)\s{2,}(.+)$", done.stdout, re.MULTILINE))
    assert rows["requests"] == "200 sent, 150 ok, 50 failed"
    assert rows["errors: HTTP 500"] == "50"
    assert float(rows["latency p50"].split()[0]) > 0
    assert "100%" in done.stderr  # progress lines while it ran

    bad = run_cli("bench", "picky", "--payload", "2", "-d", "1", "-n", "5")
    assert bad.returncode == 2 and "not allowed with argument" in bad.stderr
    missing = run_cli("bench", "nobody", "--payload", "2", "-n", "5")
    assert missing.returncode == 1 and "no nbserve endpoint named 'nobody'" in missing.stderr


@pytest.mark.kernel
def test_magic_bench_shows_a_live_widget_and_keeps_the_result(kernel: Kernel) -> None:
    kernel.ok(f"%%serve picky --cpus 0.1 --max-batch-size 8\n{SOURCE}")
    kernel.ok("inputs = [2, 3]")

    reply = kernel.ok("%serve bench picky --payload inputs[0] -c 2 -d 1.5")

    assert any("application/vnd.jupyter.widget-view+json" in d for d in reply.data)
    assert "ok" in kernel.ok("print('ok' if _bench.ok > 0 and not _bench.failures else _bench.failures)").stdout
    failing = kernel.ok("%serve bench picky --payload inputs[1] -c 2 -n 10\nprint(dict(_bench.failures))")
    assert "{'HTTP 500': 10}" in failing.stdout
    refused = kernel.run("%serve bench picky -c 2 -n 10")
    assert refused.ename == "UsageError" and "--payload" in refused.evalue
    refused = kernel.run("%serve bench picky --payload no_such_name -n 10")
    assert refused.ename == "UsageError" and "not a valid expression" in refused.evalue
