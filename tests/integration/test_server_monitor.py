"""The server's monitor process: answers over its pipe, and comes back after it died."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from nbserve._errors import EndpointNotFoundError, NbserveError
from nbserve.server.live import Monitor
from tests.support.helpers import free_port


def test_monitor_answers_and_is_restarted_after_it_died(tmp_path: Path) -> None:
    # A GCS port where no cluster runs: the monitor must say so, and never start one.
    env = {**os.environ, "NBSERVE_RAY_PORT": str(free_port()), "NBSERVE_HOME": str(tmp_path)}
    monitor = Monitor(tmp_path / "monitor.log", timeout_s=60, env=env)
    try:
        assert monitor.request({"op": "list"}) == {"ok": True, "cluster": False, "endpoints": []}
        first = monitor._process
        assert first is not None
        first.kill()
        first.wait()
        assert monitor.request({"op": "list"})["cluster"] is False
        assert monitor._process is not None and monitor._process.pid != first.pid
        with pytest.raises(NbserveError, match="unknown request"):
            monitor.request({"op": "frobnicate"})
        with pytest.raises(EndpointNotFoundError):  # rebuilt from its name on the pipe
            monitor.request({"op": "delete", "name": "x"})
    finally:
        monitor.close()
    assert monitor._process is None
    assert not list(tmp_path.glob("cluster-*.json")), "the monitor started a cluster"
