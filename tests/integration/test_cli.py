"""The ``nbserve`` command line against the real test cluster."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.support.helpers import run_cli

pytestmark = pytest.mark.integration


def test_verbs_list_inspect_and_delete(deploy: Any) -> None:
    deploy("print('cli replica up')\ndef shout(items):\n    return [x.upper() for x in items]\n", "shout")

    listing = run_cli("ls")
    assert listing.returncode == 0, listing.stderr
    assert "shout" in listing.stdout and "running" in listing.stdout

    status = run_cli("status", "shout", "--window", "30")
    assert status.stdout.startswith("shout (ray) · running · http://127.0.0.1:")
    assert re.search(r"replicas running/target\s+1/1", status.stdout)
    assert "last 30 s" in status.stdout
    bad_window = run_cli("status", "shout", "--window", "0")
    assert bad_window.returncode == 2 and "--window must be a positive" in bad_window.stderr
    assert "cli replica up" in run_cli("logs", "shout").stdout

    assert run_cli("down", "shout").stdout.strip() == "deleted shout"
    assert "shout" not in run_cli("ls").stdout

    missing = run_cli("status", "shout")
    assert missing.returncode == 1
    assert "no nbserve endpoint named 'shout'" in missing.stderr


def test_cluster_status_and_usage_errors(ray_cluster: Any) -> None:
    status = run_cli("cluster", "status")
    assert status.returncode == 0
    assert ray_cluster.address in status.stdout
    assert run_cli("down").returncode == 2
    assert run_cli("frobnicate").returncode == 2


def test_embedded_cluster_requires_rays_token(ray_cluster: Any) -> None:
    """Security by default: the cluster's REST API refuses a request without the token."""
    import requests

    response = requests.get(f"{ray_cluster.dashboard_url}/api/serve/applications/", timeout=30)
    assert response.status_code == 401
