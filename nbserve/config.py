"""Where nbserve keeps its state and which ports the embedded cluster uses.

All settings come from environment variables so that a kernel, the command line and the
test suite agree without passing anything around:

``NBSERVE_HOME``        state folder (default ``~/.nbserve``)
``NBSERVE_RAY_PORT``    the embedded cluster's GCS port (default 6389); the dashboard, the
                        Ray client server and the dashboard agent take the next three ports
``NBSERVE_HTTP_PORT``   Ray Serve's HTTP port on 127.0.0.1 (default 8000)
``NBSERVE_NUM_CPUS``    CPUs the embedded cluster offers (default: all of this machine's)
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["EmbeddedSettings", "embedded_settings", "nbserve_home"]

LOOPBACK = "127.0.0.1"


def nbserve_home(environ: Mapping[str, str] = os.environ) -> Path:
    return Path(environ.get("NBSERVE_HOME", "~/.nbserve")).expanduser()


def _port(environ: Mapping[str, str], key: str, default: int) -> int:
    raw = environ.get(key)
    if raw is None:
        return default
    try:
        port = int(raw)
    except ValueError:
        raise ValueError(f"{key}={raw!r} is not a port number") from None
    if not 1024 <= port <= 65000:
        raise ValueError(f"{key}={port} must be between 1024 and 65000")
    return port


@dataclass(frozen=True)
class EmbeddedSettings:
    """The local cluster nbserve starts on first use (one per GCS port)."""

    home: Path
    gcs_port: int
    http_port: int
    num_cpus: int | None

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
    def temp_dir(self) -> Path:
        # Ray puts Unix sockets below this folder; their paths must stay under ~100
        # characters, so it lives in /tmp rather than under a possibly long home.
        return Path(tempfile.gettempdir()) / f"nbserve-{os.getuid()}-{self.gcs_port}"

    @property
    def state_file(self) -> Path:
        return self.home / f"cluster-{self.gcs_port}.json"

    @property
    def lock_file(self) -> Path:
        return self.home / f"cluster-{self.gcs_port}.lock"


def embedded_settings(environ: Mapping[str, str] = os.environ) -> EmbeddedSettings:
    cpus = environ.get("NBSERVE_NUM_CPUS")
    return EmbeddedSettings(
        home=nbserve_home(environ),
        gcs_port=_port(environ, "NBSERVE_RAY_PORT", 6389),
        http_port=_port(environ, "NBSERVE_HTTP_PORT", 8000),
        num_cpus=int(cpus) if cpus else None,
    )
