"""Shared fixtures: one real local Ray cluster for the whole session, on ports of its own.

This file sits at the root so it also governs the tutorial notebooks run by nbval. The
variables are set at import time so that every process the tests start (kernels, the
``nbserve`` command, notebooks) talks to the test cluster and never to a user's cluster.
"""

from __future__ import annotations

import contextlib
import os
import shutil
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
# Kernels do not start the cluster at %load_ext (tests/integration/test_prestart.py turns it on).
os.environ["NBSERVE_PRESTART"] = "0"
# One logical GPU: fractional-GPU placement is tested for real on machines without one.
os.environ["NBSERVE_NUM_GPUS"] = os.environ.get("NBSERVE_TEST_NUM_GPUS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

# Endpoints in tests reserve a sliver of a CPU so several fit on a 2-core machine.
SMALL = {"cpus": 0.1}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Live Modal tests need credentials: without them they are deselected (reported as
    such), never run against Modal's servers and never counted as passed."""
    if os.environ.get("MODAL_TOKEN_ID") and os.environ.get("MODAL_TOKEN_SECRET"):
        return
    live = [item for item in items if item.get_closest_marker("modal")]
    if live:
        config.hook.pytest_deselected(items=live)
        items[:] = [item for item in items if not item.get_closest_marker("modal")]


@pytest.fixture(scope="session", autouse=True)
def _stop_test_cluster_at_exit() -> Iterator[None]:
    """Stop the test cluster if this session started it (by a fixture or a notebook's cell);
    a cluster that was already up belongs to another run and is left alone. Then remove the
    session's nbserve home."""
    from nbserve.backends.ray import cluster

    already_running = cluster.embedded_status() is not None
    yield
    if not already_running:
        cluster.stop_embedded()
    shutil.rmtree(os.environ["NBSERVE_HOME"], ignore_errors=True)  # this session's own (mkdtemp above)


@pytest.fixture(scope="session")
def ray_cluster() -> Any:
    from nbserve.backends.ray import cluster

    subprocess.run([sys.executable, "-m", "nbserve._cli", "cluster", "start"], check=True, timeout=180)
    info = cluster.embedded_status()
    assert info is not None, "the embedded cluster did not come up"
    return info


@pytest.fixture
def deploy(ray_cluster: Any) -> Iterator[Callable[..., Any]]:
    """``deploy(source, name, **flags)``; every endpoint it made is deleted after the test."""
    import nbserve

    made: list[str] = []

    def _deploy(source: str, name: str, **flags: Any) -> Any:
        made.append(name)
        return nbserve.deploy(source, name, **{**SMALL, **flags})

    yield _deploy
    for name in reversed(made):  # users of an endpoint (--uses) go before it
        with contextlib.suppress(nbserve.EndpointNotFoundError):
            nbserve.endpoint(name).down(force=True)
