"""An exported Ray Serve module, served by Ray's own `serve run`, answers like the notebook."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import requests

import nbserve
from tests.helpers import wait_for

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


def serve_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    command = [str(Path(sys.executable).parent / "serve"), *args]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=300)


def test_exported_module_serves_the_same_contract(deploy: Any, ray_cluster: Any, tmp_path: Path) -> None:
    endpoint = nbserve.deploy(CELL, "exported_src", namespace={"PREFIX": ">"}, cpus=0.1, max_batch_size=4)
    try:
        written = nbserve.api.export("exported_src", "ray", tmp_path)
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
        )
        assert run.returncode == 0, run.stderr
        copy_url = f"{ray_cluster.http_url}/exported_copy"
        wait_for(lambda: requests.post(copy_url, json={"input": "x"}, timeout=30).status_code == 200, 60, "the copy")
        for payload in PAYLOADS:
            original = requests.post(endpoint.url, data=payload, timeout=30)
            copy = requests.post(copy_url, data=payload, timeout=30)
            assert (copy.status_code, copy.json()) == (original.status_code, original.json()), payload
    finally:
        endpoint.down()
        from ray import serve

        serve.delete("exported_copy")


def test_export_verb_on_the_command_line(deploy: Any, tmp_path: Path) -> None:
    deploy("def same(xs):\n    return xs\n", "to_export")
    result = subprocess.run(
        [sys.executable, "-m", "nbserve.cli", "export", "to_export", "--to", "kuberay", "-o", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["to_export_app.py", "to_export_rayservice.yaml"]
    assert f"wrote {tmp_path / 'to_export_rayservice.yaml'}" in result.stdout
