"""Re-running a cell on a running endpoint reloads it inside the live replicas (real Ray).

What must hold: the same processes serve the new version; requests during the reload all
succeed; a version whose setup fails on any replica leaves every replica on the previous
version; the replaced version's objects are released; new resources still get new processes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import nbserve
from tests.support.helpers import PollingClient, wait_for

pytestmark = pytest.mark.integration

VERSIONED = """
import os
VERSION = {version!r}
def answer(items):
    return [[VERSION, os.getpid()] for _ in items]
"""


def answers_from_every_replica(ep: Any, replicas: int, calls: int = 200) -> dict[int, str]:
    """pid -> version, from enough calls that every replica answered (or fail)."""
    seen: dict[int, str] = {}
    for _ in range(calls):
        version, pid = ep("x")
        seen[pid] = version
        if len(seen) == replicas and len(set(seen.values())) == 1:
            break
    assert len(seen) == replicas, f"only {len(seen)} of {replicas} replicas answered"
    return seen


def test_rerun_reloads_the_cell_in_the_running_replica(deploy: Any) -> None:
    ep = deploy(VERSIONED.format(version="v1"), "hot")
    version, pid = ep("x")
    assert version == "v1"
    deploy(VERSIONED.format(version="v2"), "hot")
    assert ep("x") == ["v2", pid]  # the same process, the new code
    assert ep.status().replicas.running == 1


def test_requests_during_a_reload_all_succeed(deploy: Any) -> None:
    slow_setup = "import time\ntime.sleep(1.5)\n" + VERSIONED
    ep = deploy(slow_setup.format(version="v1"), "hot_traffic")
    _, pid = ep("x")
    with PollingClient(ep.url) as client:
        wait_for(lambda: len(client.answers) >= 5, 30, "the first answers")
        count_before = len(client.answers)
        deploy(slow_setup.format(version="v2"), "hot_traffic")
        count_after = len(client.answers)
        wait_for(lambda: len(client.answers) >= count_after + 5, 30, "answers after the reload")
    assert client.failures == []
    during = client.answers[count_before:count_after]
    assert ["v1", pid] in during  # v1 kept answering while v2's 1.5 s setup ran
    assert client.answers[-5:] == [["v2", pid]] * 5


def test_a_version_failing_on_one_replica_leaves_all_on_the_previous(deploy: Any, tmp_path: Path) -> None:
    ep = deploy(VERSIONED.format(version="v1"), "hot_rollback", replicas=2)
    before = answers_from_every_replica(ep, 2)
    assert set(before.values()) == {"v1"}
    # The first replica to run this setup loads it; the other one refuses.
    marker = tmp_path / "first"
    fails_once = f"""
import os
try:
    os.close(os.open({str(marker)!r}, os.O_CREAT | os.O_EXCL))
except FileExistsError:
    raise RuntimeError("this replica refuses v2") from None
""" + VERSIONED.format(version="v2")
    with pytest.raises(nbserve.SetupFailedError) as raised:
        deploy(fails_once, "hot_rollback", replicas=2)
    assert "this replica refuses v2" in str(raised.value)
    assert "serving again" in str(raised.value)
    assert marker.exists()  # one replica did load v2, and was rolled back
    after = answers_from_every_replica(ep, 2)
    assert after == before  # both on v1, in the same processes


def test_the_replaced_version_is_released(deploy: Any, tmp_path: Path) -> None:
    released = tmp_path / "released"
    holds_a_model = f"""
import weakref
class Model:
    pass
model = Model()
weakref.finalize(model, open, {str(released)!r}, "w")
def answer(items):
    return [type(model).__name__ for _ in items]
"""
    ep = deploy(holds_a_model, "hot_release")
    assert ep("x") == "Model"
    deploy(VERSIONED.format(version="v2"), "hot_release")
    wait_for(released.exists, 30, "the old version's model to be garbage-collected")
    assert ep("x")[0] == "v2"


def test_new_resources_start_new_replicas(deploy: Any) -> None:
    ep = deploy(VERSIONED.format(version="v1"), "hot_resources")
    _, pid = ep("x")
    deploy(VERSIONED.format(version="v2"), "hot_resources", cpus=0.2)
    version, new_pid = ep("x")
    assert version == "v2"
    assert new_pid != pid  # Serve replaced the process: the actor's resources changed
    assert ep.info().resources.startswith("0.2 CPU")


def test_restart_starts_new_processes_and_later_reruns_reload_in_them(deploy: Any) -> None:
    ep = deploy(VERSIONED.format(version="v1"), "hot_restart")
    _, first = ep("x")
    deploy(VERSIONED.format(version="v2"), "hot_restart", restart=True)
    version, restarted = ep("x")
    assert (version, restarted != first) == ("v2", True)
    deploy(VERSIONED.format(version="v3"), "hot_restart")
    assert ep("x") == ["v3", restarted]


def test_a_reload_survives_the_collector_being_killed(deploy: Any) -> None:
    """Load reports go through the collector actor; losing it must not lose the deploy."""
    import ray

    from nbserve.backends.ray.reports import find_collector

    ep = deploy(VERSIONED.format(version="v1"), "hot_no_collector")
    _, pid = ep("x")
    ray.kill(find_collector(), no_restart=True)
    wait_for(lambda: find_collector() is None, 30, "the collector to be gone")
    deploy(VERSIONED.format(version="v2"), "hot_no_collector")
    assert ep("x") == ["v2", pid]
    assert find_collector() is not None  # the deploy made a new one, for the replicas' reports
