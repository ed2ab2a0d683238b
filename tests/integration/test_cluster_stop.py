"""The embedded cluster and the kernels that use it end apart: stopping the cluster ends its
endpoints, never a kernel; ending a kernel, even the one that started it, never the cluster."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.helpers import own_cluster_env, wait_for
from tests.support.kernels import Kernel

pytestmark = [pytest.mark.integration, pytest.mark.kernel]

# Ray ends a driver that cannot reach its cluster for this long (60 s by default): short here,
# so that a kernel that was not disconnected in time would be seen to die within the test.
RAY_GIVES_UP_S = 8


@pytest.fixture
def own_cluster(tmp_path: Path) -> Iterator[dict[str, str]]:
    """The environment of an embedded cluster of this test's own (the session's is not touched)."""
    # Ray ends a driver after RAY_GIVES_UP_S without its cluster.
    env = own_cluster_env(tmp_path / "home", RAY_gcs_rpc_server_reconnect_timeout_s=str(RAY_GIVES_UP_S))
    yield env
    subprocess.run([sys.executable, "-m", "nbserve", "cluster", "stop"], env=env, timeout=120)


def test_the_cluster_and_its_kernels_outlive_each_other(own_cluster: dict[str, str]) -> None:
    # Jupyter ends a kernel by signalling its process group: nbval always, JupyterLab when a
    # shutdown or restart takes over 5 s. The cluster that kernel started serves on.
    starter = Kernel(env=own_cluster)
    starter.ok("%load_ext nbserve")
    starter.ok("%%serve survivor --cpus 0.1\ndef survivor(xs):\n    return [x + 1 for x in xs]\n", timeout=300)
    starter.client.stop_channels()
    starter.manager.shutdown_kernel(now=True)  # SIGKILL to the kernel's process group
    assert not starter.manager.is_alive()

    # And a kernel outlives `nbserve cluster stop`.
    kernel = Kernel(env=own_cluster)
    try:
        kernel.ok("%load_ext nbserve")
        kernel.ok("import nbserve\nsurvivor = nbserve.endpoint('survivor')", timeout=120)
        kernel.ok("state = 'the notebook keeps this'\nassert survivor(1) == 2")
        # HAProxy's runtime folder (the default ingress) goes with the cluster; a start writes it anew.
        haproxy_dir = Path(tempfile.gettempdir(), f"nbserve-{os.getuid()}", f"h{own_cluster['NBSERVE_RAY_PORT']}")
        assert (haproxy_dir / "haproxy").is_file()
        stopped = subprocess.run(
            [sys.executable, "-m", "nbserve", "cluster", "stop"], env=own_cluster, capture_output=True, text=True
        )
        assert "stopped the local Ray cluster" in stopped.stdout, stopped.stderr
        deadline = time.monotonic() + 2 * RAY_GIVES_UP_S
        while time.monotonic() < deadline:  # Ray would have ended the kernel within this window
            assert kernel.manager.is_alive(), "the kernel died with its cluster"
            kernel.ok("assert state == 'the notebook keeps this'")
        listing = kernel.ok("%serve ls").stdout
        assert "No endpoints" in listing  # looking does not start a cluster
        missing = kernel.run("%serve status survivor")
        assert missing.ename == "UsageError" and "not running" in missing.evalue
        assert not Path(own_cluster["NBSERVE_HOME"], f"cluster-{own_cluster['NBSERVE_RAY_PORT']}.json").exists()
        assert not haproxy_dir.exists(), sorted(p.name for p in haproxy_dir.iterdir())
        kernel.ok("%%serve survivor --cpus 0.1\ndef survivor(xs):\n    return [x + 2 for x in xs]\n", timeout=300)
        wait_for(lambda: "3" in kernel.ok("print(survivor(1))").stdout, 30, "the endpoint on a fresh cluster")
    finally:
        kernel.shutdown()
