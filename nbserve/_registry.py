"""The shared record of endpoints: written by kernels, read by the Jupyter server extension.

One SQLite file under ``NBSERVE_HOME`` (``registry.sqlite3``), in WAL mode so readers never
wait for a writer; every operation is one short transaction on a connection of its own
(processes and threads share nothing), and writers take the lock up front
(``BEGIN IMMEDIATE``) with a busy timeout, so several kernels deploying at once queue for
milliseconds instead of failing or losing an update. It survives kernel restarts because it
is a file, not process state.

An entry says who deployed what: the endpoint (name, backend, cluster, URL), what was last
observed of it (status, replicas, figures) and its owner (kernel id, notebook path, process).
Two kinds of staleness are told apart, and neither drops an entry:

- the deployment is gone (the cluster was stopped, or it was deleted behind nbserve's back):
  ``observe`` stores status ``"gone"``;
- the owning kernel exited: endpoints outlive kernels on purpose, so the deployment may still
  serve; ``owner_state`` says ``"exited"`` and the view shows it as such.

Deleting through nbserve (``Endpoint.down``, the sidebar) ``forget``s the entry instead.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import socket
import sqlite3
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from nbserve._config import nbserve_home, private_folder
from nbserve._types import EndpointInfo, EndpointStats

__all__ = [
    "EMBEDDED",
    "Entry",
    "LiveEndpoint",
    "Owner",
    "Registry",
    "default_registry",
    "forget_deleted",
    "owner_state",
    "record_deployed",
    "record_stats",
]

EMBEDDED = ""  # the address recorded for nbserve's embedded cluster
GONE = "gone"
BUSY_TIMEOUT_S = 30.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS endpoints (
    backend TEXT NOT NULL,
    address TEXT NOT NULL,
    name TEXT NOT NULL,
    url TEXT NOT NULL,
    status TEXT NOT NULL,
    replicas_running INTEGER NOT NULL DEFAULT 0,
    replicas_target INTEGER NOT NULL DEFAULT 0,
    figures TEXT NOT NULL DEFAULT '{}',
    kernel_id TEXT,
    notebook_path TEXT,
    owner_pid INTEGER,
    owner_started REAL,
    owner_host TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    public INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (backend, address, name)
)
"""
# Columns added after the first release, with their definition: added to older files on open.
_ADDED_COLUMNS = {"public": "INTEGER NOT NULL DEFAULT 0"}
_COLUMNS = (
    "backend, address, name, url, status, replicas_running, replicas_target, figures, kernel_id, "
    "notebook_path, owner_pid, owner_started, owner_host, created_at, updated_at, public"
)
_KERNEL_FILE = re.compile(r"kernel-([0-9a-fA-F-]{8,})\.json$")


@dataclass(frozen=True)
class Owner:
    """The process that deployed an endpoint: a kernel (with its notebook) or any Python process."""

    kernel_id: str | None = None
    notebook_path: str | None = None
    pid: int | None = None
    started: float | None = None  # the process's start time: a reused pid is not the same owner
    host: str | None = None

    @classmethod
    def current(cls, environ: Mapping[str, str] = os.environ, argv: Iterable[str] = sys.argv) -> Owner:
        """This process. A kernel's id is in its connection file's name (``-f .../kernel-ID.json``);
        Jupyter Server 2 puts the notebook's path in ``JPY_SESSION_NAME``."""
        import psutil

        kernel_id = next((m.group(1) for arg in argv if (m := _KERNEL_FILE.search(arg))), None)
        return cls(
            kernel_id=kernel_id,
            notebook_path=environ.get("JPY_SESSION_NAME") or None,
            pid=os.getpid(),
            started=psutil.Process().create_time(),
            host=socket.gethostname(),
        )


@dataclass(frozen=True)
class LiveEndpoint:
    """What the backend says of a deployed endpoint right now."""

    name: str
    url: str
    status: str
    replicas_running: int = 0
    replicas_target: int = 0
    figures: dict[str, Any] = field(default_factory=dict)  # EndpointStats.to_dict(), when known
    public: bool = False


@dataclass(frozen=True)
class Entry:
    backend: str
    address: str  # EMBEDDED, or the cluster address the endpoint was deployed to
    name: str
    url: str
    status: str  # the last observed state, or "gone"
    replicas_running: int
    replicas_target: int
    figures: dict[str, Any]
    owner: Owner
    created_at: float
    updated_at: float
    public: bool = False  # answers HTTP without the token

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def owner_state(owner: Owner, *, host: str | None = None) -> str:
    """``"running"``, ``"exited"``, or ``"unknown"`` (recorded on another machine, or no pid)."""
    import psutil

    if owner.pid is None or owner.host != (host or socket.gethostname()):
        return "unknown"
    try:
        started = psutil.Process(owner.pid).create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return "exited"
    # create_time is rounded differently across calls on some systems: allow a little slack.
    return "running" if owner.started is None or abs(started - owner.started) < 1.0 else "exited"


_F = TypeVar("_F", bound=Callable[..., Any])


def _recovering(method: _F) -> _F:
    """Run ``method``; if the file turns out not to be a database (damaged, or something else
    written over it), set it aside, start a new one and run it once more."""

    @functools.wraps(method)
    def wrapper(self: Registry, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError):  # busy or locked: not damage
                raise
            self._set_aside(exc)
            return method(self, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


class Registry:
    """The endpoints of every kernel of this user. A damaged file is set aside (renamed with a
    timestamp) and a new one started, with a warning: the entries come back from what the
    cluster runs at the next listing (the sidebar's), their owners do not."""

    def __init__(self, path: Path) -> None:
        self.path = path
        private_folder(path.parent)
        try:
            self._open()
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError):
                raise
            self._set_aside(exc)

    def _open(self) -> None:
        # Only its owner may read it; SQLite gives the -wal and -shm files the same mode.
        os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
        if self.path.stat().st_mode & 0o077:
            self.path.chmod(0o600)
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")  # persistent: set once per file
            db.execute(_SCHEMA)
            present = {row[1] for row in db.execute("PRAGMA table_info(endpoints)")}
            for column, definition in _ADDED_COLUMNS.items():
                if column not in present:
                    db.execute(f"ALTER TABLE endpoints ADD COLUMN {column} {definition}")

    def _set_aside(self, error: sqlite3.DatabaseError) -> None:
        aside = self.path.with_name(f"{self.path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                Path(f"{self.path}{suffix}").rename(f"{aside}{suffix}")
        warnings.warn(
            f"nbserve's registry {self.path} could not be read ({error}); it was set aside as {aside.name} and "
            "a new one started: the endpoints the cluster runs are listed again, without their notebooks",
            stacklevel=3,
        )
        self._open()

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        # isolation_level=None: transactions are explicit, so each write is exactly one.
        db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        try:
            yield db
        finally:
            db.close()

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")  # take the write lock now: no upgrade deadlocks later
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    # -- writes -------------------------------------------------------------------------
    @_recovering
    def record(
        self,
        *,
        backend: str,
        name: str,
        url: str,
        status: str,
        replicas_running: int = 0,
        replicas_target: int = 0,
        owner: Owner | None = None,
        address: str | None = None,
        now: float | None = None,
        public: bool = False,
    ) -> None:
        """A (re)deploy: the endpoint now belongs to ``owner``; first-created time is kept."""
        owner = owner or Owner()
        now = time.time() if now is None else now
        with self._write() as db:
            db.execute(
                f"INSERT INTO endpoints ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, '{{}}', ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (backend, address, name) DO UPDATE SET url=excluded.url, status=excluded.status, "
                "replicas_running=excluded.replicas_running, replicas_target=excluded.replicas_target, "
                "kernel_id=excluded.kernel_id, notebook_path=excluded.notebook_path, owner_pid=excluded.owner_pid, "
                "owner_started=excluded.owner_started, owner_host=excluded.owner_host, "
                "updated_at=excluded.updated_at, public=excluded.public",
                (
                    backend,
                    address or EMBEDDED,
                    name,
                    url,
                    status,
                    replicas_running,
                    replicas_target,
                    owner.kernel_id,
                    owner.notebook_path,
                    owner.pid,
                    owner.started,
                    owner.host,
                    now,
                    now,
                    int(public),
                ),
            )

    @_recovering
    def update_figures(
        self, backend: str, name: str, figures: Mapping[str, Any], *, address: str | None = None
    ) -> bool:
        """Store the latest figures (``EndpointStats.to_dict()``) and the state and replicas they
        carry; ``False`` if no such entry."""
        with self._write() as db:
            cursor = db.execute(
                "UPDATE endpoints SET figures=?, status=COALESCE(?, status), "
                "replicas_running=COALESCE(?, replicas_running), replicas_target=COALESCE(?, replicas_target), "
                "updated_at=? WHERE backend=? AND address=? AND name=?",
                (
                    json.dumps(dict(figures)),
                    _known_state(figures.get("state")),
                    figures.get("replicas_running"),
                    figures.get("replicas_target"),
                    time.time(),
                    backend,
                    address or EMBEDDED,
                    name,
                ),
            )
            return cursor.rowcount > 0

    @_recovering
    def observe(
        self, backend: str, live: Iterable[LiveEndpoint], *, address: str | None = None, now: float | None = None
    ) -> None:
        """Reconcile with what ``backend`` at ``address`` serves now, in one transaction.

        Live endpoints update their entries (one deployed outside nbserve's deploy path gets an
        entry with no owner); entries with no live deployment become ``"gone"``.
        """
        now = time.time() if now is None else now
        address = address or EMBEDDED
        seen = {endpoint.name: endpoint for endpoint in live}
        with self._write() as db:
            known = {
                row[0]
                for row in db.execute("SELECT name FROM endpoints WHERE backend=? AND address=?", (backend, address))
            }
            for endpoint in seen.values():
                figures = json.dumps(endpoint.figures) if endpoint.figures else None
                if endpoint.name in known:
                    db.execute(
                        "UPDATE endpoints SET url=?, status=?, replicas_running=?, replicas_target=?, "
                        "figures=COALESCE(?, figures), public=?, updated_at=? "
                        "WHERE backend=? AND address=? AND name=?",
                        (
                            endpoint.url,
                            endpoint.status,
                            endpoint.replicas_running,
                            endpoint.replicas_target,
                            figures,
                            int(endpoint.public),
                            now,
                            backend,
                            address,
                            endpoint.name,
                        ),
                    )
                else:
                    db.execute(
                        "INSERT INTO endpoints (backend, address, name, url, status, replicas_running, "
                        "replicas_target, figures, created_at, updated_at, public) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (
                            backend,
                            address,
                            endpoint.name,
                            endpoint.url,
                            endpoint.status,
                            endpoint.replicas_running,
                            endpoint.replicas_target,
                            figures or "{}",
                            now,
                            now,
                            int(endpoint.public),
                        ),
                    )
            for name in known - seen.keys():
                db.execute(
                    "UPDATE endpoints SET status=?, replicas_running=0, updated_at=? "
                    "WHERE backend=? AND address=? AND name=? AND status<>?",
                    (GONE, now, backend, address, name, GONE),
                )

    @_recovering
    def forget(self, backend: str, name: str, *, address: str | None = None) -> bool:
        """Remove an entry (the endpoint was deleted on purpose); ``False`` if there was none."""
        with self._write() as db:
            cursor = db.execute(
                "DELETE FROM endpoints WHERE backend=? AND address=? AND name=?", (backend, address or EMBEDDED, name)
            )
            return cursor.rowcount > 0

    # -- reads --------------------------------------------------------------------------
    @_recovering
    def entries(self) -> list[Entry]:
        with self._connect() as db:
            rows = db.execute(f"SELECT {_COLUMNS} FROM endpoints ORDER BY name, backend, address").fetchall()
        return [_entry(row) for row in rows]

    @_recovering
    def get(self, backend: str, name: str, *, address: str | None = None) -> Entry | None:
        with self._connect() as db:
            row = db.execute(
                f"SELECT {_COLUMNS} FROM endpoints WHERE backend=? AND address=? AND name=?",
                (backend, address or EMBEDDED, name),
            ).fetchone()
        return _entry(row) if row else None


def _known_state(state: Any) -> str | None:
    return state if isinstance(state, str) and state and state != "unknown" else None


def _entry(row: tuple[Any, ...]) -> Entry:
    (backend, address, name, url, status, running, target, figures, kernel_id, notebook, pid, started, host) = row[:13]
    return Entry(
        backend=backend,
        address=address,
        name=name,
        url=url,
        status=status,
        replicas_running=running,
        replicas_target=target,
        figures=json.loads(figures or "{}"),
        owner=Owner(kernel_id, notebook, pid, started, host),
        created_at=row[13],
        updated_at=row[14],
        public=bool(row[15]),
    )


def default_registry(environ: Mapping[str, str] = os.environ) -> Registry:
    """The registry of this user's ``NBSERVE_HOME``."""
    return Registry(nbserve_home(environ) / "registry.sqlite3")


# -- best-effort hooks for the deploy path: the registry is a view, never a reason to fail ----
def _best_effort(what: str, action: Callable[[Registry], object]) -> None:
    try:
        action(default_registry())
    except (sqlite3.Error, OSError) as exc:
        warnings.warn(f"nbserve could not {what} in its registry ({exc}); the sidebar may be out of date", stacklevel=3)


def record_deployed(info: EndpointInfo, *, address: str | None = None) -> None:
    """After a (re)deploy: record ``info`` as owned by this process (kernel and notebook)."""
    owner = Owner.current()
    _best_effort(
        f"record endpoint {info.name!r}",
        lambda r: r.record(
            backend=info.backend,
            name=info.name,
            url=info.url,
            status=info.status.state,
            replicas_running=info.status.replicas.running,
            replicas_target=info.status.replicas.target,
            owner=owner,
            address=address,
            public=info.public,
        ),
    )


def forget_deleted(backend: str, name: str, *, address: str | None = None) -> None:
    """After a deliberate delete (``Endpoint.down``): drop the entry."""
    _best_effort(f"forget endpoint {name!r}", lambda r: r.forget(backend, name, address=address))


def record_stats(backend: str, stats: EndpointStats, *, address: str | None = None) -> None:
    """Store an endpoint's latest figures (e.g. from the dashboard's poller)."""
    _best_effort(
        f"store figures of {stats.name!r}",
        lambda r: r.update_figures(backend, stats.name, stats.to_dict(), address=address),
    )
