"""The endpoint registry: a SQLite file shared by processes, and how it tells stale entries."""

from __future__ import annotations

import multiprocessing
import socket
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from nbserve._registry import GONE, LiveEndpoint, Owner, Registry, owner_state

WRITERS = 4
PER_WRITER = 40


def _writer(path: str, index: int) -> None:
    """One 'kernel': records its endpoints, updates the shared one's figures, forgets some."""
    registry = Registry(Path(path))
    owner = Owner.current(environ={"JPY_SESSION_NAME": f"nb{index}.ipynb"}, argv=[f"-f=/run/kernel-{index:08d}.json"])
    for i in range(PER_WRITER):
        registry.record(
            backend="ray", name=f"w{index}-{i}", url=f"http://x/w{index}-{i}", status="running", owner=owner
        )
        registry.record(backend="ray", name="shared", url="http://x/shared", status="running", owner=owner)
        registry.update_figures("ray", "shared", {"requests": index * 1000 + i, "state": "running"})
    registry.forget("ray", f"w{index}-0")


def test_concurrent_writers_in_several_processes_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "registry.sqlite3"
    Registry(path)
    # spawn, not fork: the test process may hold Ray's threads from other tests.
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_writer, args=(str(path), i)) for i in range(WRITERS)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
        assert process.exitcode == 0, "a writer failed (e.g. 'database is locked')"

    entries = {e.name: e for e in Registry(path).entries()}  # a fresh handle, as after a restart
    expected = {f"w{w}-{i}" for w in range(WRITERS) for i in range(1, PER_WRITER)} | {"shared"}
    assert set(entries) == expected
    assert entries["w2-5"].owner.notebook_path == "nb2.ipynb"
    assert entries["w2-5"].owner.kernel_id == "00000002"
    # The shared entry holds one writer's last complete update, not a mix of two.
    shared = entries["shared"]
    assert shared.figures["requests"] % 1000 == PER_WRITER - 1


def test_redeploy_keeps_creation_time_and_takes_the_new_owner(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "r.sqlite3")
    registry.record(backend="ray", name="e", url="u1", status="running", owner=Owner(kernel_id="a"), now=100.0)
    registry.record(backend="ray", name="e", url="u2", status="updating", owner=Owner(kernel_id="b"), now=200.0)
    entry = registry.get("ray", "e")
    assert entry is not None
    assert (entry.created_at, entry.updated_at, entry.url, entry.owner.kernel_id) == (100.0, 200.0, "u2", "b")
    assert registry.get("ray", "e", address="10.0.0.1:6379") is None  # another cluster's namespace


def test_a_deployment_that_went_away_is_kept_and_shown_gone(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "r.sqlite3")
    for name in ("a", "b"):
        registry.record(backend="ray", name=name, url=f"u/{name}", status="running", replicas_running=1)
    registry.update_figures("ray", "b", {"p50_ms": 3.5})

    registry.observe(
        "ray", [LiveEndpoint("a", "u/a", "running", 2, 2, {"p50_ms": 1.0}), LiveEndpoint("c", "u/c", "running", 1, 1)]
    )
    entries = {e.name: e for e in registry.entries()}
    assert (entries["a"].status, entries["a"].replicas_running, entries["a"].figures) == ("running", 2, {"p50_ms": 1.0})
    # b's deployment is gone: still listed, never as live; its last figures are kept.
    assert (entries["b"].status, entries["b"].replicas_running, entries["b"].figures) == (GONE, 0, {"p50_ms": 3.5})
    # c was deployed outside nbserve's deploy path: listed, with no owner.
    assert entries["c"].owner == Owner()

    registry.observe("ray", [])  # the cluster was stopped
    assert {e.status for e in registry.entries()} == {GONE}
    assert registry.forget("ray", "b") and not registry.forget("ray", "b")


def test_owner_state_tells_a_running_owner_from_an_exited_one() -> None:
    assert owner_state(Owner.current()) == "running"

    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    owner = Owner(pid=child.pid, started=psutil.Process(child.pid).create_time(), host=socket.gethostname())
    assert owner_state(owner) == "running"
    child.communicate(b"")  # the kernel exits
    assert owner_state(owner) == "exited"

    me = Owner.current()
    assert owner_state(Owner(pid=me.pid, started=(me.started or 0) - 3600, host=me.host)) == "exited"  # pid reused
    assert owner_state(Owner(pid=me.pid, started=me.started, host="another-machine")) == "unknown"
    assert owner_state(Owner()) == "unknown"


@pytest.mark.parametrize(
    ("argv", "kernel_id"),
    [
        (
            ["-m", "ipykernel_launcher", "-f", "/root/.local/share/jupyter/runtime/kernel-4f2c9a1e-77b0.json"],
            "4f2c9a1e-77b0",
        ),
        (["script.py"], None),
    ],
)
def test_owner_of_a_kernel_process(argv: list[str], kernel_id: str | None) -> None:
    owner = Owner.current(environ={"JPY_SESSION_NAME": "/home/u/work/a.ipynb"}, argv=argv)
    assert (owner.kernel_id, owner.notebook_path) == (kernel_id, "/home/u/work/a.ipynb")
    assert owner.pid is not None and owner.host == socket.gethostname()


def test_a_damaged_file_is_set_aside_and_a_new_one_started(tmp_path: Path) -> None:
    path = tmp_path / "registry.sqlite3"
    Registry(path).record(backend="ray", name="kept", url="u", status="running")
    path.write_bytes(b"this is not a database, whatever wrote it" * 100)
    with pytest.warns(UserWarning, match="set aside"):
        fresh = Registry(path)
    assert fresh.entries() == []
    assert [p.name.startswith("registry.sqlite3.corrupt-") for p in tmp_path.iterdir()].count(True) == 1
    fresh.observe("ray", [LiveEndpoint("kept", "u", "running", 1, 1)])  # relisted from the cluster
    assert [e.name for e in fresh.entries()] == ["kept"]
    path.write_bytes(b"\0" * 4096 + b"damaged while open")  # damaged under an open registry
    with pytest.warns(UserWarning, match="set aside"):
        assert fresh.entries() == []
    fresh.record(backend="ray", name="again", url="u", status="running")
    assert [e.name for e in Registry(path).entries()] == ["again"]
