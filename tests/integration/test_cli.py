"""The ``nbserve`` command line against the real test cluster."""

from __future__ import annotations

import re
import subprocess
import sys
from typing import Any

import pytest

pytestmark = pytest.mark.integration


def nbserve(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "nbserve.cli", *args], capture_output=True, text=True, timeout=120)


def test_verbs_list_inspect_and_delete(deploy: Any) -> None:
    deploy("print('cli replica up')\ndef shout(items):\n    return [x.upper() for x in items]\n", "shout")

    listing = nbserve("ls")
    assert listing.returncode == 0, listing.stderr
    assert "shout" in listing.stdout and "running" in listing.stdout

    status = nbserve("status", "shout", "--window", "30")
    assert status.stdout.startswith("shout (ray) · running · http://127.0.0.1:")
    assert re.search(r"replicas running/target\s+1/1", status.stdout)
    assert "last 30 s" in status.stdout
    bad_window = nbserve("status", "shout", "--window", "0")
    assert bad_window.returncode == 2 and "--window must be a positive" in bad_window.stderr
    assert "cli replica up" in nbserve("logs", "shout").stdout

    assert nbserve("down", "shout").stdout.strip() == "deleted shout"
    assert "shout" not in nbserve("ls").stdout

    missing = nbserve("status", "shout")
    assert missing.returncode == 1
    assert "no nbserve endpoint named 'shout'" in missing.stderr


def test_cluster_status_and_usage_errors(ray_cluster: Any) -> None:
    status = nbserve("cluster", "status")
    assert status.returncode == 0
    assert ray_cluster.address in status.stdout
    assert nbserve("down").returncode == 2
    assert nbserve("frobnicate").returncode == 2


def test_embedded_cluster_requires_rays_token(ray_cluster: Any) -> None:
    """Security by default: the cluster's REST API refuses a request without the token."""
    import requests

    response = requests.get(f"{ray_cluster.dashboard_url}/api/serve/applications/", timeout=30)
    assert response.status_code == 401
