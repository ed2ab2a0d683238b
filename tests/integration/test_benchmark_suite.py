"""The benchmark suite's smoke run: every workload for a second or so, so the suite cannot rot.

Its figures mean nothing at these durations; what is checked is that every part runs (the
anchor app, a real kernel, wrk, the deploys) and that the report holds every table.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration


def test_suite_smoke_run_writes_every_table(tmp_path: Path) -> None:
    # Ports and a home of its own: the suite stops and starts its embedded cluster (the cold
    # deploy), which must never be the test session's.
    offset = 300
    env = {
        **os.environ,
        "NBSERVE_RAY_PORT": str(int(os.environ["NBSERVE_RAY_PORT"]) + offset),
        "NBSERVE_HTTP_PORT": str(int(os.environ["NBSERVE_HTTP_PORT"]) + offset),
        "NBSERVE_BENCH_ANCHOR_PORT": str(int(os.environ["NBSERVE_HTTP_PORT"]) + offset + 10),
        "NBSERVE_HOME": tempfile.mkdtemp(prefix="nbserve-bench-home-"),
        "NBSERVE_PRESTART": "1",  # the suite's kernels load nbserve as a user's do
    }
    output = tmp_path / "benchmarks.md"
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "suite.py"), "--smoke", "-o", str(output)],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    report = output.read_text()
    for heading in (
        "## Goals",
        "## MiniLM, one text per HTTP request",
        "## No-op handler",
        "## Calls from the notebook",
        "## Bulk and deploys",
    ):
        assert heading in report
    for row in ("| anchor | 32 |", "| nbserve | 32 |", "| anchor | 1 |", "| nbserve | 1 |"):
        assert row in report
    assert "Smoke run" in report
    assert "| - |" not in report and "| - (" not in report  # every figure was measured
