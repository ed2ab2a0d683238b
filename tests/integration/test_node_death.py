"""A node dying under load, on a real Ray cluster of two nodes on this machine.

    .venv/bin/python -m pytest tests/integration/test_node_death.py -s    # prints the figures

The cluster is a user's own (``ray start``, Ray's token auth), reached with ``--address``, so
this also proves a cell deploys to a cluster of more than one node. The second node is a
second raylet with its own temp folder and ports; "the node dies" is every one of its
processes killed at once, as a machine that loses power. The driver finds replicas in the GCS's
actor table, not through Ray's state API: that goes through the head's dashboard, which beside
the suite's own cluster on a 2-core machine did not answer in time (the head runs without one).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from tests.support.helpers import free_port, free_port_range, wait_for

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class TwoNodes:
    address: str
    http_port: int
    env: dict[str, str]
    head_dir: str
    side_dir: str

    def ray(self, *args: str) -> None:
        done = subprocess.run(
            [sys.executable, "-m", "ray.scripts.scripts", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            start_new_session=True,  # the daemons must not share pytest's process group
        )
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]

    def processes(self, folder: str) -> list[psutil.Process]:
        found = []
        for proc in psutil.process_iter(["cmdline"]):
            with contextlib.suppress(psutil.Error):
                if any(folder in part for part in proc.info["cmdline"] or ()):
                    found.append(proc)
        return found

    def kill(self, folder: str) -> None:
        procs = self.processes(folder)
        for proc in procs:
            with contextlib.suppress(psutil.Error):
                proc.send_signal(signal.SIGKILL)
        psutil.wait_procs(procs, timeout=10)


def _node_ports(base: int) -> list[str]:
    names = [
        "node-manager-port",
        "object-manager-port",
        "dashboard-agent-listen-port",
        "dashboard-agent-grpc-port",
        "metrics-export-port",
        "runtime-env-agent-port",
    ]
    return [f"--{name}={base + i}" for i, name in enumerate(names)]


@pytest.fixture
def two_nodes() -> Iterator[TwoNodes]:
    head_dir = tempfile.mkdtemp(prefix="nbn-head-")  # short: Ray's socket paths must fit 107 bytes
    side_dir = tempfile.mkdtemp(prefix="nbn-side-")
    # One range split three ways: three calls could each return the same free range (one base
    # in 90), and a side node whose node-manager port was the GCS port failed to start in CI.
    gcs = free_port_range(30)
    head_ports, side_ports = gcs + 10, gcs + 20
    env = {
        **os.environ,
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": secrets.token_hex(32),
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_enable_metrics_collection": "0",
        "AUTOSCALER_METRIC_PORT": str(free_port()),
        "DASHBOARD_METRIC_PORT": str(free_port()),
    }
    env.pop("RAY_ADDRESS", None)
    # nbserve sets Ray's single-machine switch in this process once it has connected to the
    # session's cluster (RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0); with it, `ray start --address`
    # refuses to add a second node.
    env.pop("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", None)
    nodes = TwoNodes(f"127.0.0.1:{gcs}", free_port(), env, head_dir, side_dir)
    common = ["--node-ip-address=127.0.0.1", "--num-cpus=1", "--disable-usage-stats"]
    try:
        nodes.ray(
            "start",
            "--head",
            f"--port={gcs}",
            f"--temp-dir={head_dir}",
            "--include-dashboard=false",  # nothing here reads it; the machine has 2 cores
            f"--dashboard-port={head_ports + 8}",
            f"--ray-client-server-port={head_ports + 9}",
            *_node_ports(head_ports),
            *common,
        )
        nodes.ray(
            "start",
            f"--address={nodes.address}",
            f"--temp-dir={side_dir}",
            '--resources={"side": 1}',
            *_node_ports(side_ports),
            *common,
        )
        yield nodes
    finally:
        nodes.kill(side_dir)
        nodes.kill(head_dir)


# The driver: a script of a user's, deploying with --address, under a load of calls by handle;
# it prints what it saw as JSON. It runs in a process of its own (this one is the test
# cluster's driver).
DRIVER = textwrap.dedent(
    """
    import json, sys, threading, time
    import ray
    from ray import serve
    from ray._private import state as ray_state
    import nbserve

    address, http_port, kill_file, killed_file = sys.argv[1:5]
    HTTP_CALLERS = 2
    ray.init(address=address, log_to_driver=False, logging_level="WARNING")
    serve.start(http_options={"host": "127.0.0.1", "port": int(http_port)})  # not Serve's 8000
    side = next(n["NodeID"] for n in ray.nodes() if n["Alive"] and "side" in n["Resources"])

    source = "import time\\ndef nodes(xs):\\n    time.sleep(0.05)\\n    return [x + 1 for x in xs]\\n"
    ep = nbserve.deploy(source, "nodes", address=address, replicas="2", cpus="0.5", max_batch_size="4")

    def replica_nodes():
        # The GCS's actor table, as nbserve reads it: Ray's state API goes through the head's
        # dashboard, which on this 2-core machine beside the suite's own cluster did not answer.
        table = ray_state.actors(actor_state_name="ALIVE").values()
        wanted = "ServeReplica:nodes:nbserve_cell"
        return sorted(row["Address"]["NodeID"] for row in table if row["ActorClassName"] == wanted)

    def wait(condition, seconds, what, detail=lambda: ""):
        deadline = time.monotonic() + seconds
        while not condition():
            if time.monotonic() > deadline:
                raise SystemExit(f"timed out waiting for {what} {detail()}")
            time.sleep(0.2)

    wait(lambda: side in replica_nodes() and len(set(replica_nodes())) == 2, 120, "a replica on each node")
    failures, answered, running_seen = [], [0], []
    stop = threading.Event()

    def caller(offset):
        i = offset
        while not stop.is_set():
            try:
                assert ep(i) == i + 1
                answered[0] += 1
            except Exception as exc:
                failures.append(f"{type(exc).__name__}: {exc}"[:300])
            i += 8

    http_failures, http_answered = [], [0]

    def http_caller():
        import requests
        while not stop.is_set():
            try:
                answer = requests.post(ep.url, json={"input": 1}, headers=ep.headers(), timeout=30)
                if answer.status_code == 200:
                    http_answered[0] += 1
                else:
                    http_failures.append(f"HTTP {answer.status_code}: {answer.text[:200]}")
            except Exception as exc:
                http_failures.append(f"{type(exc).__name__}: {exc}"[:300])

    def watcher():
        # One reading more after stop: the last one is then taken after status() showed two.
        while True:
            running_seen.append(ep.status().replicas.running)
            if stop.is_set():
                return
            time.sleep(0.3)

    threads = [threading.Thread(target=caller, args=(k,)) for k in range(6)]
    threads += [threading.Thread(target=http_caller) for _ in range(HTTP_CALLERS)] + [threading.Thread(target=watcher)]
    for thread in threads:
        thread.start()
    wait(lambda: answered[0] >= 30, 120, "load on both replicas")
    before = answered[0]
    open(kill_file, "w").close()  # the test kills the side node now
    wait(lambda: __import__("os").path.exists(killed_file), 60, "the kill")
    killed_at = time.monotonic()
    at_kill = len(running_seen)
    wait(lambda: len(replica_nodes()) == 2 and side not in replica_nodes(), 180, "two replicas on the survivor")
    recovered_s = time.monotonic() - killed_at
    seen = answered[0]
    wait(lambda: answered[0] >= seen + 30, 60, "calls to go on after the recovery")
    # A replacement replica loads the cell before it counts as running: on a 2-core machine
    # beside the rest of the suite that took over a minute.
    wait(lambda: ep.status().replicas.running == 2, 180, "status to show two running replicas",
         lambda: f"(last: {ep.status()}; serve: {serve.status().applications['nodes'].deployments})")
    final_nodes = replica_nodes()
    stop.set()
    for thread in threads:
        thread.join()
    ep.down()
    print(json.dumps({
        "failures": failures, "answered": answered[0], "before_kill": before,
        "running_after_kill": running_seen[at_kill:], "recovered_s": recovered_s,
        "final_nodes": final_nodes, "side": side, "http_failures": http_failures, "http_answered": http_answered[0],
    }))
    """
)


def test_a_node_dying_under_load_fails_no_call_and_its_replica_comes_back_on_the_survivor(
    two_nodes: TwoNodes, tmp_path: Path
) -> None:
    kill_file, killed_file = tmp_path / "kill", tmp_path / "killed"
    driver = subprocess.Popen(
        [sys.executable, "-c", DRIVER, two_nodes.address, str(two_nodes.http_port), str(kill_file), str(killed_file)],
        env={**two_nodes.env, "NBSERVE_HOME": str(tmp_path / "home")},
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: kill_file.exists() or driver.poll() is not None, 240, "the driver to ask for the kill")
        assert driver.poll() is None, driver.communicate()[1][-3000:]
        assert two_nodes.processes(two_nodes.side_dir), "the side node has no processes to kill"
        two_nodes.kill(two_nodes.side_dir)
        killed_file.touch()
        out, err = driver.communicate(timeout=420)
    finally:
        if driver.poll() is None:
            driver.kill()
    assert driver.returncode == 0, err[-4000:]
    seen = json.loads(next(line for line in reversed(out.splitlines()) if line.startswith("{")))
    assert seen["failures"] == [], seen["failures"][:3]
    assert seen["answered"] > seen["before_kill"] + 30
    assert seen["side"] not in seen["final_nodes"] and len(seen["final_nodes"]) == 2
    # status() saw the count fall and come back (the dashboard shows the same counts).
    assert min(seen["running_after_kill"]) < 2 and seen["running_after_kill"][-1] == 2, str(seen["running_after_kill"])
    print(
        f"node death: {seen['answered']} calls by handle, 0 failed; HTTP {seen['http_answered']} answered, "
        f"failed {seen['http_failures']}; replicas back {seen['recovered_s']:.1f} s after"
    )
