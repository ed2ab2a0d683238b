"""Both ingresses of the embedded cluster (``NBSERVE_INGRESS``), each on a cluster of the test's
own: what a user sees is the same behind HAProxy (the default, which the rest of the suite
runs on) and behind Serve's proxy (auth, batching, streaming, hot reload, figures); behind
HAProxy a request whose replica dies runs again on another (unless ``--no-retry``), and nothing
of HAProxy listens beyond loopback."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.helpers import own_cluster_env

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]

# Runs in a process of its own (this one is the session cluster's driver) and prints what it saw.
DRIVER = textwrap.dedent(
    """
    import json, os, time
    from concurrent.futures import ThreadPoolExecutor
    import psutil, requests
    import nbserve
    from nbserve._config import embedded_settings
    from nbserve.backends.ray import cluster
    from nbserve.backends.ray.routes import routes_settled

    CELL = (
        "import os\\nVERSION = {v}\\ndef twice(items):\\n"
        "    return [dict(out=2 * x, pid=os.getpid(), v=VERSION) for x in items]\\n"
    )
    GEN = "def gen(prompt):\\n    for word in prompt.split():\\n        yield word\\n"
    seen = {}
    ep = nbserve.deploy(CELL.format(v=1), "twice", max_batch_size=8, batch_wait_ms=50, cpus=0.25)
    headers = ep.headers()
    first = requests.post(ep.url, json={"input": 1}, headers=headers, timeout=60)
    seen["with_token"] = [first.status_code, first.json()]
    seen["no_token"] = requests.post(ep.url, json={"input": 1}, timeout=60).status_code
    foreign = {**headers, "Host": "evil.example"}
    seen["foreign_host"] = requests.post(ep.url, json={"input": 1}, headers=foreign, timeout=60).status_code
    post = lambda i: requests.post(ep.url, json={"input": i}, headers=headers, timeout=60)
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(post, range(48)))
    seen["concurrent"] = sorted({a.status_code for a in answers})
    deadline = time.monotonic() + 30
    while (stats := ep.stats()).requests < 50 and time.monotonic() < deadline:
        time.sleep(0.5)
    seen["stats"] = [stats.requests, stats.batch_max, stats.errors]
    seen["call"] = ep(3)["out"]

    nbserve.deploy(CELL.format(v=2), "twice", max_batch_size=8, batch_wait_ms=50, cpus=0.25)
    # Behind HAProxy a reload in place reloads HAProxy twice (its replicas leave Serve's routes
    # while they reconfigure): the deploy returns once HAProxy runs the last routes.
    seen["routes_settled"] = routes_settled("twice")
    after = requests.post(ep.url, json={"input": 1}, headers=headers, timeout=60)
    assert after.status_code == 200, f"the first request after a reload: {after.status_code} {after.text}"
    seen["reloaded"] = [after.json()["output"]["v"], after.json()["output"]["pid"] == first.json()["output"]["pid"]]

    gen = nbserve.deploy(GEN, "gen", no_batch=True, cpus=0.25)
    body = {"input": "one two three", "stream": True}
    with requests.post(gen.url, json=body, headers=gen.headers(), stream=True, timeout=60) as r:
        seen["sse"] = [json.loads(line[6:])["output"] for line in r.iter_lines() if line.startswith(b'data: {"output"')]
    seen["stream"] = list(gen.stream("four five"))

    def listeners():
        wide, names, ports = [], set(), set()
        for process in cluster.cluster_processes(embedded_settings()):
            try:
                names.add(process.name())
                listening = [c for c in process.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN]
                cmdline = " ".join(process.cmdline())
            except psutil.Error:  # a process that ended meanwhile (an HAProxy replaced by a reload)
                continue
            ports |= {c.laddr.port for c in listening}
            for c in listening:
                if c.laddr.ip.removeprefix("::ffff:") not in ("127.0.0.1", "::1"):
                    wide.append([process.name(), "ServeReplica" in cmdline, c.laddr.ip, c.laddr.port])
        return wide, names, ports

    # A replica killed with requests in hand: HAProxy sends them to the other replica, unless
    # the endpoint was deployed with --no-retry (then each fails alone, with a JSON error).
    import ray

    import tempfile
    SLOW = (
        "import os, time\\ndef slow(x):\\n    open(os.path.join(STARTED, str(x)), 'w').close()\\n"
        "    time.sleep(2)\\n    return x\\n"
    )

    def kill_one_under(name, **flags):
        started = tempfile.mkdtemp()
        dying = nbserve.deploy(
            SLOW, name, replicas=2, cpus=0.25, no_batch=True, namespace={"STARTED": started}, **flags
        )
        dying(0)  # both replicas up and reached
        send = lambda i: requests.post(dying.url, json={"input": i}, headers=dying.headers(), timeout=60)
        with ThreadPoolExecutor(6) as pool:
            futures = [pool.submit(send, i) for i in range(1, 7)]
            deadline = time.monotonic() + 30  # every request in a replica's hands (each holds 2 s)
            while len(os.listdir(started)) < 7 and time.monotonic() < deadline:  # 0 and the six
                time.sleep(0.05)
            # Through the GCS this driver is connected to: Ray's state API finds its cluster by
            # looking for one on the machine, and the suite's own cluster runs beside this one.
            [victim, *_] = [
                actor["name"] for actor in ray.util.list_named_actors(all_namespaces=True)
                if actor["name"].startswith(f"SERVE_REPLICA::{name}#")
            ]
            ray.kill(ray.get_actor(victim, namespace="serve"), no_restart=True)
            answers = [f.result() for f in futures]
        failed = [a.json()["error"]["type"] for a in answers if a.status_code != 200]
        return [sorted(a.status_code for a in answers), failed]

    if embedded_settings().ingress == "haproxy":  # Serve's proxy answers such requests 500
        seen["replica_killed"] = kill_one_under("pure")
        seen["replica_killed_no_retry"] = kill_one_under("side_effects", no_retry=True)

    settings = embedded_settings()
    # A reload hands HAProxy's listening socket to a new process; read until a reading holds it.
    deadline = time.monotonic() + 30
    while settings.http_port not in (reading := listeners())[2] and time.monotonic() < deadline:
        time.sleep(0.5)
    wide, names, ports = reading
    seen["wide"] = wide
    seen["haproxy_running"] = "haproxy" in names
    seen["stats_or_exporter"] = sorted(ports & {settings.haproxy_stats_port, settings.haproxy_metrics_port})
    seen["http_port_served"] = settings.http_port in ports
    print(json.dumps(seen))
    """
)


@pytest.fixture(params=["haproxy", "proxy"])
def ingress_env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    env = own_cluster_env(tmp_path / "home", NBSERVE_INGRESS=request.param)
    try:
        yield env
    finally:
        subprocess.run([sys.executable, "-m", "nbserve._cli", "cluster", "stop"], env=env, timeout=120, check=False)


def test_each_ingress_keeps_auth_batching_streaming_and_reload_on_loopback(ingress_env: dict[str, str]) -> None:
    done = subprocess.run(
        [sys.executable, "-c", DRIVER], env=ingress_env, cwd=ROOT, capture_output=True, text=True, timeout=420
    )
    assert done.returncode == 0, done.stderr[-4000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    haproxy = ingress_env["NBSERVE_INGRESS"] == "haproxy"
    assert seen["haproxy_running"] == haproxy, "the cluster does not run the ingress asked for"
    assert seen["with_token"][0] == 200 and seen["with_token"][1]["output"]["out"] == 2
    assert seen["no_token"] == 401
    assert seen["foreign_host"] == 403
    assert seen["concurrent"] == [200]
    requests_seen, batch_max, errors = seen["stats"]
    assert requests_seen >= 50 and errors == 2  # the 401 and the 403 above count as the endpoint's errors
    assert batch_max > 1, "no batch formed behind the ingress"
    assert seen["call"] == 6
    assert seen["reloaded"] == [2, True], "a re-run must reload the cell in the same replica process"
    # Serve's proxy has no routes to wait for; behind HAProxy a deploy returns after its last reload.
    assert seen["routes_settled"] == (True if haproxy else None), "the deploy returned before HAProxy's routes did"
    assert seen["sse"] == ["one", "two", "three"]
    assert seen["stream"] == ["four", "five"]
    assert seen["http_port_served"]
    # What listens beyond loopback is each replica's gRPC port (test_security).
    assert all(is_replica for _, is_replica, _, _ in seen["wide"]), seen["wide"]
    if not haproxy:
        return
    # Six 2 s requests on two replicas, one killed 1 s in: its requests run again on the other.
    assert seen["replica_killed"] == [[200] * 6, []]
    # With --no-retry they fail, each with a JSON error naming the cause; the others answer.
    statuses, failed = seen["replica_killed_no_retry"]
    assert 200 in statuses and 502 in statuses and set(failed) == {"ReplicaDied"}, seen["replica_killed_no_retry"]
    # HAProxy's stats page and exporter (which Ray binds to every interface) are not served at all.
    assert seen["stats_or_exporter"] == []
