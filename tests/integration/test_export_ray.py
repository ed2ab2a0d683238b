"""An exported Ray Serve module, served by Ray's own `serve run`, answers like the notebook."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import requests

import nbserve
from nbserve import _tokens
from tests.support.helpers import auth, wait_for

pytestmark = pytest.mark.integration

CELL = """
def check(items):
    out = []
    for x in items:
        if x == "bad":
            raise ValueError(f"cannot handle {x!r}")
        out.append(PREFIX + x.upper())
    return out
"""

PAYLOADS: list[bytes] = [
    b'{"input": "a"}',
    b'{"inputs": ["a", "bad", "c"]}',
    b'{"input": "bad"}',
    b"{not json",
    b'{"inputz": 1}',
]


def serve_cli(*args: str, cwd: Path, token: str | None = None) -> subprocess.CompletedProcess[str]:
    """Ray's ``serve`` command, with ``NBSERVE_TOKEN`` set as the export's docstring says."""
    command = [str(Path(sys.executable).parent / "serve"), *args]
    env = {k: v for k, v in os.environ.items() if k != "NBSERVE_TOKEN"}
    if token is not None:
        env["NBSERVE_TOKEN"] = token
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=300, env=env)


def test_exported_module_serves_the_same_contract(deploy: Any, ray_cluster: Any, tmp_path: Path) -> None:
    endpoint = nbserve.deploy(CELL, "exported_src", namespace={"PREFIX": ">"}, cpus=0.1, max_batch_size=4)
    try:
        written = nbserve.export("exported_src", "ray", tmp_path)
        assert [p.name for p in written] == ["exported_src_app.py"]

        build = serve_cli("build", "exported_src_app:app", "-o", "config.yaml", cwd=tmp_path)
        assert build.returncode == 0, build.stderr
        assert "import_path: exported_src_app:app" in (tmp_path / "config.yaml").read_text()

        run = serve_cli(
            "run",
            "exported_src_app:app",
            "--name",
            "exported_copy",
            "--route-prefix",
            "/exported_copy",
            "--address",
            ray_cluster.address,
            "--non-blocking",
            cwd=tmp_path,
            token=_tokens.read_or_create(),
        )
        assert run.returncode == 0, run.stderr
        copy_url = f"{ray_cluster.http_url}/exported_copy"
        answered = lambda: requests.post(copy_url, json={"input": "x"}, headers=auth(), timeout=30)  # noqa: E731
        wait_for(lambda: answered().status_code == 200, 60, "the copy")
        assert requests.post(copy_url, json={"input": "x"}, timeout=30).status_code == 401  # it keeps the token
        for payload in PAYLOADS:
            original = requests.post(endpoint.url, data=payload, headers=auth(), timeout=30)
            copy = requests.post(copy_url, data=payload, headers=auth(), timeout=30)
            assert (copy.status_code, copy.json()) == (original.status_code, original.json()), payload
    finally:
        endpoint.down()
        from ray import serve

        serve.delete("exported_copy")


def test_export_verb_on_the_command_line(deploy: Any, tmp_path: Path) -> None:
    deploy("def same(xs):\n    return xs\n", "to_export")
    result = subprocess.run(
        [sys.executable, "-m", "nbserve._cli", "export", "to_export", "--to", "kuberay", "-o", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["to_export_app.py", "to_export_rayservice.yaml"]
    assert f"wrote {tmp_path / 'to_export_rayservice.yaml'}" in result.stdout


def test_serve_run_of_an_export_refuses_to_start_without_a_token(deploy: Any, tmp_path: Path) -> None:
    """On a Ray of its own (``serve run`` shuts Serve down when a deploy fails)."""
    deploy("def guarded(xs):\n    return xs\n", "guarded_src")
    nbserve.export("guarded_src", "ray", tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "NBSERVE_TOKEN"))}
    command = [str(Path(sys.executable).parent / "serve"), "run", "guarded_src_app:app", "--non-blocking"]
    run = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)
    assert "NBSERVE_TOKEN is not set" in run.stdout + run.stderr, (run.stdout + run.stderr)[-3000:]
