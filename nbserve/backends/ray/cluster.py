"""The Ray cluster behind the Ray backend: the embedded one, or one the user names.

The embedded cluster is started with ``ray start --head`` as processes of its own, not
inside the kernel, so endpoints outlive a kernel restart and the next kernel reuses the
warm cluster. Its ports and Ray temp folder are nbserve's own (see ``nbserve._config``), which
lets ``stop_embedded`` stop exactly that cluster and never another Ray on the machine.

Nothing of it is open to other users or hosts. Every service listens on loopback: Ray binds
its gRPC servers (GCS, raylet, workers) and agents to 127.0.0.1 only when the node's address
is 127.0.0.1, and ``ray start --node-ip-address=127.0.0.1`` alone swaps loopback for the
machine's address (``ray._private.services.resolve_ip_for_localhost``) unless Ray's switch
for single-machine clusters, ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``, is set: in ``ray
start``'s environment and in every driver's. The metrics ports get fixed ports of nbserve's
range. Ray's token authentication is always on, its token file and nbserve's folders are
readable by their owner only.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil

from nbserve._config import LOOPBACK, EmbeddedSettings, embedded_settings, private_folder
from nbserve._errors import ClusterError
from nbserve.backends.ray.haproxy import haproxy_environment
from nbserve.backends.ray.serve_start import start_serve

__all__ = ["ClusterInfo", "cluster_processes", "connect", "embedded_status", "start_embedded", "stop_embedded"]

log = logging.getLogger(__name__)
START_TIMEOUT_S = 90.0
# Ray's switch for token authentication. `ray start` turns it on only when a token file
# already exists, and a driver that connects by address never does: left alone, the
# embedded cluster would run without auth, or reject our own driver once a token appears.
# nbserve decides once for the cluster and every process that talks to it.
AUTH_MODE_VAR = "RAY_AUTH_MODE"
# Ray's own switch for a cluster on this machine alone (on by default on macOS and Windows):
# the node's address stays 127.0.0.1, and with it every socket Ray binds from that address.
LOCAL_ONLY_VAR = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


@dataclass(frozen=True)
class ClusterInfo:
    address: str
    http_host: str
    http_port: int
    embedded: bool
    dashboard_url: str | None = None
    started_at: float | None = None

    @property
    def http_url(self) -> str:
        return f"http://{self.http_host}:{self.http_port}"


def _listening(port: int, host: str = LOOPBACK) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


@contextlib.contextmanager
def _locked(settings: EmbeddedSettings) -> Iterator[None]:
    """One process at a time starts or stops the embedded cluster (several kernels may try)."""
    private_folder(settings.home)
    with os.fdopen(os.open(settings.lock_file, os.O_WRONLY | os.O_CREAT, 0o600), "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _info(settings: EmbeddedSettings, started_at: float | None) -> ClusterInfo:
    return ClusterInfo(
        address=settings.address,
        http_host=LOOPBACK,
        http_port=settings.http_port,
        embedded=True,
        dashboard_url=f"http://{LOOPBACK}:{settings.dashboard_port}" if settings.dashboard else None,
        started_at=started_at,
    )


def embedded_status(settings: EmbeddedSettings | None = None) -> ClusterInfo | None:
    """The embedded cluster if it is up, else ``None``."""
    settings = settings or embedded_settings()
    if not _listening(settings.gcs_port):
        return None
    started_at = None
    with contextlib.suppress(OSError, ValueError):
        started_at = json.loads(settings.state_file.read_text()).get("started_at")
    return _info(settings, started_at)


def _ray_command() -> list[str]:
    return [sys.executable, "-m", "ray.scripts.scripts"]


def _set_auth_mode(mode: str) -> None:
    """Make this process (and what it starts) speak ``mode`` to Ray."""
    os.environ[AUTH_MODE_VAR] = mode
    # Ray caches its C++ config when it is imported; refresh it so this process sees the mode
    # (what Ray's own token setup does after setting the variable).
    from ray import _raylet

    _raylet.Config.initialize("")  # type: ignore[attr-defined]  # Ray's stub omits Config


def _prepare_auth() -> str:
    """The auth mode for a new embedded cluster: token unless the user set RAY_AUTH_MODE.

    With token auth, makes sure ``~/.ray/auth_token`` exists (created, never printed) and that
    only its owner can read it (Ray writes it with the umask's mode, 0644 by default).
    """
    mode = os.environ.get(AUTH_MODE_VAR, "token").lower()
    if mode == "token" and not _token_available():
        result = subprocess.run(
            [*_ray_command(), "get-auth-token", "--generate"], capture_output=True, text=True, timeout=60
        )
        if result.returncode != 0:
            raise ClusterError(f"could not create Ray's authentication token: {result.stderr.strip()[-500:]}")
    if mode == "token":
        _make_private(ray_token_file())
    return mode


def ray_token_file() -> Path | None:
    """The file Ray reads its cluster token from, where that is a file of ours."""
    path = Path(os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token")
    return path if path.is_file() else None


def _make_private(path: Path | None) -> None:
    if path is not None and path.stat().st_uid == os.getuid() and path.stat().st_mode & 0o077:
        path.chmod(0o600)
        if path.parent.name == ".ray" and path.parent.stat().st_mode & 0o077:
            path.parent.chmod(0o700)


def _token_available() -> bool:
    """Whether Ray will find a token: generating one costs a Python start (~2 s of a cold start)."""
    if os.environ.get("RAY_AUTH_TOKEN"):
        return True
    for path in (os.environ.get("RAY_AUTH_TOKEN_PATH"), str(Path.home() / ".ray" / "auth_token")):
        if path and Path(path).is_file() and Path(path).stat().st_size > 0:
            return True
    return False


def _recorded_auth_mode(settings: EmbeddedSettings) -> str | None:
    with contextlib.suppress(OSError, ValueError):
        mode = json.loads(settings.state_file.read_text()).get("auth_mode")
        return str(mode) if mode else None
    return None


def _import_ray_serve() -> None:
    import ray.serve  # noqa: F401 - imported for its side effect: loaded once, used right after


def start_embedded(
    settings: EmbeddedSettings | None = None, on_status: Callable[[str], None] | None = None
) -> ClusterInfo:
    """Start the embedded cluster unless it already runs; return how to reach it."""
    settings = settings or embedded_settings()
    with _locked(settings):
        running = embedded_status(settings)
        if running is not None:
            return running
        _end_leftovers(settings)
        for port in settings.ports[1:]:
            if _listening(port):
                raise ClusterError(
                    f"port {port} on {LOOPBACK} is taken by another program, so the embedded Ray "
                    "cluster cannot start; free it, or choose other ports with NBSERVE_RAY_PORT "
                    f"(the cluster takes it and the {len(settings.ports) - 2} after it) and NBSERVE_HTTP_PORT"
                )
        private_folder(settings.private_root)
        if on_status:
            on_status(f"starting the local Ray cluster on {settings.address}")
        auth_mode = _prepare_auth()
        command = [
            *_ray_command(),
            "start",
            "--head",
            f"--port={settings.gcs_port}",
            f"--node-ip-address={LOOPBACK}",
            f"--dashboard-host={LOOPBACK}",
            f"--dashboard-port={settings.dashboard_port}",
            f"--ray-client-server-port={settings.client_server_port}",
            f"--dashboard-agent-listen-port={settings.agent_port}",
            f"--dashboard-agent-grpc-port={settings.agent_grpc_port}",
            f"--metrics-export-port={settings.metrics_export_port}",
            f"--node-manager-port={settings.node_manager_port}",
            f"--object-manager-port={settings.object_manager_port}",
            f"--runtime-env-agent-port={settings.runtime_env_agent_port}",
            f"--temp-dir={settings.temp_dir}",
            "--disable-usage-stats",
            # Two Python daemons that an embedded cluster has no use for, each ~1.5 s of CPU
            # at every start on the first deploy's path (and ~70 MB): the autoscaler's monitor
            # (one node, nothing to add; pending demands still reach the GCS from the raylet)
            # and the log monitor (it streams worker output to drivers, which nbserve's
            # connection turns off; logs() reads the log files).
            "--no-monitor",
            "--include-log-monitor=false",
        ]
        if settings.num_cpus is not None:
            command.append(f"--num-cpus={settings.num_cpus}")
        if not settings.dashboard:
            command.append("--include-dashboard=false")
        if settings.num_gpus is not None:
            command.append(f"--num-gpus={settings.num_gpus}")
        if settings.object_store_mb is not None:
            # Where /dev/shm is smaller than this (Binder's 64 MB), Ray puts the store in /tmp.
            command.append(f"--object-store-memory={settings.object_store_mb * 1024 * 1024}")
        env = {
            **os.environ,
            "RAY_USAGE_STATS_ENABLED": "0",
            AUTH_MODE_VAR: auth_mode,
            LOCAL_ONLY_VAR: "0",
            # No Prometheus exporter in the dashboard agent: it serves, without credentials,
            # every metric of every endpoint; nbserve's figures come from its own collector.
            "RAY_enable_metrics_collection": "0",
            # A Serve proxy that died is noticed after three failed health checks: one a second
            # (Serve's default is ten), so HTTP answers again within seconds, not half a minute.
            "RAY_SERVE_PROXY_HEALTH_CHECK_PERIOD_S": "1",
            "RAY_SERVE_PROXY_HEALTH_CHECK_TIMEOUT_S": "2",
            # The dashboard's Prometheus port: fixed, so two clusters on one machine do not
            # both take Ray's default (44227).
            "DASHBOARD_METRIC_PORT": str(settings.dashboard_metrics_port),
        }
        if settings.ingress == "haproxy":
            env.update(haproxy_environment(settings))
        env.pop("RAY_ADDRESS", None)
        started = time.time()
        # A session of its own: Ray's daemons would otherwise join the caller's process group,
        # and Jupyter stops a kernel by signalling its whole group (nbval always, JupyterLab
        # when a shutdown or restart does not finish in 5 s): the kernel that happened to start
        # the cluster would take every notebook's endpoints down with it.
        with subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True
        ) as process:
            # While `ray start` runs, import what connecting needs next: ~1.3 s that would
            # otherwise come after it on a cold start.
            _import_ray_serve()
            try:
                stdout, stderr = process.communicate(timeout=START_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                raise ClusterError(f"`ray start` did not finish within {START_TIMEOUT_S:.0f} s") from None
        if process.returncode != 0:
            tail = "\n".join((stdout + stderr).strip().splitlines()[-15:])
            raise ClusterError(f"`ray start` failed (exit {process.returncode}):\n{tail}")
        _write_private(
            settings.state_file,
            json.dumps(
                {
                    "started_at": started,
                    "address": settings.address,
                    "http_port": settings.http_port,
                    "auth_mode": auth_mode,
                }
            ),
        )
        return _info(settings, started)


def _write_private(path: Path, text: str) -> None:
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as file:
        file.write(text)


def cluster_processes(settings: EmbeddedSettings) -> list[psutil.Process]:
    """The head's processes (found by our temp folder or ports) and all their descendants, and
    the HAProxies that outlived the actor that started them (they name their folder)."""
    marker = str(settings.temp_dir)
    haproxy_marker = f"{settings.haproxy_dir}/"
    address_suffix = f":{settings.gcs_port}"
    roots: list[psutil.Process] = []
    for proc in psutil.process_iter(["cmdline", "uids"]):
        try:
            if proc.info["uids"] is not None and proc.info["uids"].real != os.getuid():
                continue
            args = proc.info["cmdline"] or []
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if proc.pid == os.getpid():
            continue
        # Ray's client server names the head by its node address, not our temp folder.
        by_address = any(a.startswith("--address=") and a.endswith(address_suffix) for a in args)
        ours = any(marker in a or haproxy_marker in a for a in args)
        if ours or (by_address and any("ray" in a for a in args)):
            roots.append(proc)
    found: dict[int, psutil.Process] = {}
    for proc in roots:
        found[proc.pid] = proc
        with contextlib.suppress(psutil.NoSuchProcess):
            for child in proc.children(recursive=True):
                found[child.pid] = child
    return list(found.values())


def _end_leftovers(settings: EmbeddedSettings) -> None:
    """End what a cluster that is not running left behind: a HAProxy in a session of its own
    (see haproxy.py) outlives a cluster that ended without `nbserve cluster stop`, and holds
    the HTTP port."""
    leftovers = []
    for proc in cluster_processes(settings):
        with contextlib.suppress(psutil.Error):
            if proc.name() == "haproxy":
                leftovers.append(proc)
    for proc in leftovers:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    psutil.wait_procs(leftovers, timeout=5)


def stop_embedded(settings: EmbeddedSettings | None = None, timeout_s: float = 20.0) -> bool:
    """Stop the embedded cluster and every endpoint on it. Returns whether anything ran."""
    settings = settings or embedded_settings()
    with _locked(settings):
        processes = cluster_processes(settings)
        if ray_connected_to(settings.address):
            import ray

            ray.shutdown()
        for proc in processes:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.send_signal(signal.SIGTERM)
        _gone, alive = psutil.wait_procs(processes, timeout=timeout_s / 2)
        for proc in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
        psutil.wait_procs(alive, timeout=timeout_s / 2)
        deadline = time.monotonic() + timeout_s
        while _listening(settings.gcs_port) and time.monotonic() < deadline:
            time.sleep(0.1)
        with contextlib.suppress(FileNotFoundError):
            settings.state_file.unlink()
        # HAProxy's config, sockets and answers: the next start writes them anew. Ray's own
        # temp folder stays, as `ray stop` leaves it: its session logs outlive the cluster.
        shutil.rmtree(settings.haproxy_dir, ignore_errors=True)
        return bool(processes)


def ray_connected_to(address: str) -> bool:
    import ray

    if not ray.is_initialized():
        return False
    return same_cluster(ray.get_runtime_context().gcs_address, address)


def _local_hosts() -> set[str]:
    hosts = {"localhost", "0.0.0.0", "::1", ""}
    for addresses in psutil.net_if_addrs().values():
        hosts.update(a.address for a in addresses if a.family in (socket.AF_INET, socket.AF_INET6))
    return hosts


def same_cluster(a: str, b: str) -> bool:
    """Whether two GCS addresses name one cluster (Ray reports the node's own IP for ours)."""
    host_a, _, port_a = a.removeprefix("ray://").rpartition(":")
    host_b, _, port_b = b.removeprefix("ray://").rpartition(":")
    if port_a != port_b:
        return False
    if host_a == host_b:
        return True
    local = _local_hosts()
    return host_a in local and host_b in local


def _disable_ray_auto_init() -> None:
    """Turn off Ray's auto-init in this process (nbserve always connects explicitly).

    Otherwise any Ray call after ``ray.shutdown()`` starts a whole new local cluster: Serve's
    handle router keeps pushing metrics from a thread of its own, so a process that called
    an endpoint and then shut down (or exits) would leave a stray cluster in /tmp/ray.
    """
    os.environ["RAY_ENABLE_AUTO_CONNECT"] = "0"
    hook = sys.modules.get("ray._private.auto_init_hook")
    if hook is not None:  # already imported: it read the variable at import time
        setattr(hook, "enable_auto_connect", False)  # noqa: B010 - a private flag, not typed


# How often a process connected to the embedded cluster checks that the cluster is still there.
WATCH_INTERVAL_S = 0.5
_watcher: threading.Thread | None = None


def _watch_embedded(settings: EmbeddedSettings) -> None:
    """Disconnect this process as soon as the embedded cluster is gone (``nbserve cluster stop``).

    A Ray driver whose cluster disappears is ended by Ray itself once it has failed to reach
    the cluster for ``gcs_rpc_server_reconnect_timeout_s`` (60 s): a kernel would lose its
    notebook's state. Shutting the driver down first keeps the process; the next ``%%serve``
    connects again (starting the cluster), and looking at endpoints says it is not running.
    """
    global _watcher
    if _watcher is not None and _watcher.is_alive():
        return

    def watch() -> None:
        import ray

        while ray.is_initialized():
            time.sleep(WATCH_INTERVAL_S)
            if not _listening(settings.gcs_port) and ray_connected_to(settings.address):
                log.info("the embedded Ray cluster at %s is gone; this process disconnected", settings.address)
                ray.shutdown()
                return

    _watcher = threading.Thread(target=watch, name="nbserve-cluster-watch", daemon=True)
    _watcher.start()


def _local_only_driver() -> None:
    """Make this process a driver of a loopback-only cluster: Ray must not swap 127.0.0.1 for the
    machine's address when it connects (the GCS listens on loopback alone)."""
    os.environ[LOCAL_ONLY_VAR] = "0"
    constants = sys.modules.get("ray._private.ray_constants")
    if constants is not None:  # already imported: it read the variable at import time
        setattr(constants, "ENABLE_RAY_CLUSTER", False)  # noqa: B010 - a module constant of Ray's


def connect(address: str | None, on_status: Callable[[str], None] | None = None) -> ClusterInfo:
    """Connect this process to the cluster (starting the embedded one if ``address`` is None)
    and make sure Ray Serve runs on it, its HTTP proxy bound to loopback."""
    _disable_ray_auto_init()
    auth_mode: str | None = None  # an external cluster's auth is the user's to configure
    if address is None:
        _local_only_driver()
        settings = embedded_settings()
        info = start_embedded(settings, on_status)  # imports Ray meanwhile, when it starts one
        target = settings.address
        # The auth mode the cluster was started with (nbserve's default, token, when the
        # cluster's state file is elsewhere).
        auth_mode = _recorded_auth_mode(settings) or os.environ.get(AUTH_MODE_VAR, "token")
    else:
        target = address
        info = ClusterInfo(address=address, http_host=LOOPBACK, http_port=8000, embedded=False)

    import ray

    if auth_mode is not None and not ray.is_initialized():
        _set_auth_mode(auth_mode)  # before ray.init: the driver must speak the cluster's mode
    if ray.is_initialized():
        current = ray.get_runtime_context().gcs_address
        if not target.startswith("ray://") and not same_cluster(current, target):
            raise ClusterError(
                f"this process is already connected to the Ray cluster at {current}, but nbserve was asked "
                f"for {target}. Use --address {current}, or restart the kernel to switch clusters."
            )
    else:
        try:
            ray.init(
                address=target,
                log_to_driver=False,  # replica output belongs in `logs()`, not in later cells
                logging_level=logging.WARNING,
                configure_logging=False,
            )
        except Exception as exc:
            hint = ""
            if not info.embedded:
                hint = (
                    f" If the cluster uses Ray's token authentication, set {AUTH_MODE_VAR}=token and put its "
                    "token in ~/.ray/auth_token (or RAY_AUTH_TOKEN) before the first %%serve."
                )
            raise ClusterError(f"cannot connect to the Ray cluster at {target}: {exc}.{hint}") from exc
    logging.getLogger("ray.serve").setLevel(logging.WARNING)
    # Its HTTP proxies start meanwhile: a deploy waits for them once its replicas run.
    start_serve({"host": LOOPBACK, "port": info.http_port if info.embedded else 8000})
    if info.embedded:
        _watch_embedded(embedded_settings())
    else:
        info = _external_http(info)
    return info


def _external_http(info: ClusterInfo) -> ClusterInfo:
    """Where an existing cluster's Serve proxy listens (its options may predate us)."""
    from ray.serve.context import _get_global_client

    client = _get_global_client()
    host, port = (client.http_config.host, client.http_config.port) if client is not None else (LOOPBACK, 8000)
    if host in ("0.0.0.0", "::", ""):
        host = info.address.removeprefix("ray://").rpartition(":")[0] or LOOPBACK
    return ClusterInfo(address=info.address, http_host=host, http_port=port, embedded=False)
