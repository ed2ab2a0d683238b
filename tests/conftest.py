"""Shared fixtures: one real local Ray cluster for the whole session, on ports of its own.

The variables are set at import time so that every process the tests start (kernels, the
``nbserve`` command) talks to the same test cluster and never to a user's cluster.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

import pytest

os.environ["NBSERVE_RAY_PORT"] = os.environ.get("NBSERVE_TEST_RAY_PORT", "6489")
os.environ["NBSERVE_HTTP_PORT"] = os.environ.get("NBSERVE_TEST_HTTP_PORT", "8089")
os.environ["NBSERVE_HOME"] = tempfile.mkdtemp(prefix="nbserve-test-home-")
os.environ.pop("RAY_ADDRESS", None)
os.environ.setdefault("HF_HUB_OFFLINE", "1")

# Endpoints in tests reserve a sliver of a CPU so several fit on a 2-core machine.
SMALL = {"cpus": 0.1}


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[Any]:
    from nbserve.backends.ray import cluster

    subprocess.run([sys.executable, "-m", "nbserve.cli", "cluster", "start"], check=True, timeout=180)
    info = cluster.embedded_status()
    assert info is not None, "the embedded cluster did not come up"
    yield info
    cluster.stop_embedded()


@pytest.fixture
def deploy(ray_cluster: Any) -> Iterator[Callable[..., Any]]:
    """``deploy(source, name, **flags)``; every endpoint it made is deleted after the test."""
    import nbserve

    made: list[str] = []

    def _deploy(source: str, name: str, **flags: Any) -> Any:
        made.append(name)
        return nbserve.deploy(source, name, **{**SMALL, **flags})

    yield _deploy
    for name in made:
        try:
            nbserve.endpoint(name).down()
        except nbserve.EndpointNotFoundError:
            pass
