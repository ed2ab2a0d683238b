"""A Binder session as its user meets it, rebuilt on this machine without Docker.

repo2docker needs Docker, which this machine lacks, so the test runs repo2docker's steps for
this repository by hand: a fresh virtual environment made only from ``binder/``'s files
(``pip install -r binder/requirements.txt``, then ``binder/postBuild``), as a user who is not
root, and then the session through ``binder/start``: every tutorial notebook under nbval, a
Jupyter server, and one endpoint called through the Jupyter route with Jupyter's token only.

Binder's limits: every process of the session runs in a memory cgroup of 2 GB (Binder's
limit; the kernel kills past it) and this machine's 2 CPUs (Binder gives 1-2). Where no
cgroup can be made, the closest limit is a watchdog that sums the session's resident memory
and fails the test past 2 GB. Which one ran, and the peak, go to ``test-artifacts/binder/``.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import requests

from tests.support.helpers import free_port, wait_for

pytestmark = pytest.mark.binder

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "binder"
LIMIT = 2 * 1024**3
USER = "nbbinder"  # Binder's is jovyan; any user without root will do
# A session of its own: not the test cluster's ports, nor a user's.
PORTS = {"NBSERVE_RAY_PORT": "6689", "NBSERVE_HTTP_PORT": "8289"}


class MemoryLimit:
    """The session's processes in a 2 GB memory cgroup (v1 or v2), or a watchdog of their RSS."""

    def __init__(self, name: str) -> None:
        self.kind = "none"
        self.path: Path | None = None
        self.peak = 0
        self.over = False
        self._roots: list[int] = []
        self._stop = threading.Event()
        self._measuring = threading.Event()
        with contextlib.suppress(OSError):
            self.path = self._make_cgroup(name)
            self.kind = f"cgroup {self.path}"
        if self.path is None:
            self.kind = "watchdog on the session's summed resident memory (no cgroup could be made here)"
        threading.Thread(target=self._watch, daemon=True).start()

    @staticmethod
    def _make_cgroup(name: str) -> Path:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, where = line.split(":", 2)
            if "memory" in controllers.split(","):  # v1
                path = Path("/sys/fs/cgroup/memory") / where.lstrip("/") / name
                path.mkdir(exist_ok=True)
                (path / "memory.limit_in_bytes").write_text(str(LIMIT))
                with contextlib.suppress(OSError):  # no swap either, where swap accounting exists
                    (path / "memory.memsw.limit_in_bytes").write_text(str(LIMIT))
                return path
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            if line.startswith("0::"):  # v2
                path = Path("/sys/fs/cgroup") / line[3:].lstrip("/") / name
                path.mkdir(exist_ok=True)
                (path / "memory.max").write_text(str(LIMIT))
                (path / "memory.swap.max").write_text("0")
                return path
        raise OSError("no memory cgroup")

    def prefix(self) -> list[str]:
        """A command prefix that puts the command in the cgroup before it starts."""
        if self.path is None:
            return []
        return ["sh", "-c", f'echo $$ > {self.path / "cgroup.procs"} && exec "$@"', "sh"]

    def track(self, pid: int) -> None:
        self._roots.append(pid)

    def measure(self) -> None:
        """Record the peak from now on (the session; the build's file cache says nothing)."""
        self._measuring.set()

    def _resident(self) -> int:
        """The session's memory that cannot be reclaimed: the cgroup's anonymous memory, or the
        summed resident memory of the tracked processes and their children."""
        if self.path is not None:
            stat = dict(line.split() for line in (self.path / "memory.stat").read_text().splitlines())
            return int(stat.get("total_rss", stat.get("anon", 0)))
        total = 0
        for pid in list(self._roots):
            with contextlib.suppress(psutil.Error):
                root = psutil.Process(pid)
                for proc in [root, *root.children(recursive=True)]:
                    with contextlib.suppress(psutil.Error):
                        total += proc.memory_info().rss
        return total

    def _watch(self) -> None:
        while not self._stop.wait(0.25):
            if self._measuring.is_set():
                with contextlib.suppress(OSError, ValueError):
                    resident = self._resident()
                    self.peak = max(self.peak, resident)
                    self.over = self.over or (self.path is None and resident > LIMIT)

    def report(self) -> dict[str, int]:
        """The session's peak resident memory, and how many processes were killed for memory."""
        if self.path is None:
            return {"peak": self.peak, "oom_kills": int(self.over)}
        events = self.path / ("memory.oom_control" if (self.path / "memory.oom_control").exists() else "memory.events")
        kills = next(
            (int(line.split()[1]) for line in events.read_text().splitlines() if line.startswith("oom_kill ")), 0
        )
        return {"peak": self.peak, "oom_kills": kills}

    def close(self) -> None:
        self._stop.set()
        if self.path is None:
            return
        procs = self.path / "cgroup.procs"
        deadline = time.monotonic() + 30
        while (pids := [int(p) for p in procs.read_text().split()]) and time.monotonic() < deadline:
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.2)
        with contextlib.suppress(OSError):
            self.path.rmdir()


class Session:
    """Commands as the Binder user, in a clean environment, through binder/start."""

    def __init__(self, base: Path, limit: MemoryLimit) -> None:
        self.base = base
        self.repo = base / "repo"
        self.venv = base / "venv"
        self.limit = limit
        self.as_root = os.geteuid() == 0
        # The Python CI runs (pyenv's, under root's home here). The Binder user may not enter
        # that home: each command then runs in a mount namespace of its own where the closed
        # folder is an empty tmpfs holding only that Python (no root's files, same paths).
        self.python = str(Path(sys.base_prefix) / "bin" / Path(sys.executable).name)
        self.closed = _closed_ancestor(Path(sys.base_prefix)) if self.as_root else None
        self.home = Path(pwd.getpwnam(USER).pw_dir) if self.as_root else Path.home()
        self.env = {
            "HOME": str(self.home),
            "USER": USER if self.as_root else pwd.getpwuid(os.getuid()).pw_name,
            "PATH": f"{self.venv / 'bin'}:/usr/local/bin:/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "TMPDIR": "/tmp",
            # This machine reaches neither Hugging Face's hub nor PyTorch's index, which Binder
            # does: the tutorials' models are local files, and pip should not wait on the index.
            "HF_HUB_OFFLINE": "1",
            **{key: value for key, value in os.environ.items() if key.startswith("PIP_")},  # this machine's mirrors
            "PIP_RETRIES": "0",
            **PORTS,
        }

    def command(self, args: list[str], *, start: bool = True) -> list[str]:
        user = ["runuser", "-u", USER, "--"] if self.as_root else []
        env = ["env", "-i", *(f"{key}={value}" for key, value in self.env.items())]
        started = [str(self.repo / "binder" / "start")] if start else []
        return [*self.limit.prefix(), *self._namespace(), *user, *env, *started, *args]

    def _namespace(self) -> list[str]:
        if self.closed is None:
            return []
        stage, python = self.base / "python-stage", sys.base_prefix
        script = (
            f"mkdir -p {stage} && mount --bind {python} {stage} && "
            f"mount -t tmpfs -o mode=755,size=1m nbserve-binder {self.closed} && "
            f'mkdir -p {python} && mount --move {stage} {python} && exec "$@"'
        )
        return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh"]

    def run(self, args: list[str], timeout: float, *, start: bool = True, log: str) -> str:
        with open(ARTIFACTS / log, "w") as out:
            process = subprocess.Popen(
                self.command(args, start=start), cwd=self.repo, stdout=out, stderr=subprocess.STDOUT
            )
            self.limit.track(process.pid)
            try:
                code = process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                raise AssertionError(f"{' '.join(args[:3])} did not finish in {timeout} s; see {log}") from None
        text = (ARTIFACTS / log).read_text()
        # The memory figures too: a process killed for memory shows up only as a failed cell.
        assert code == 0, (
            f"{' '.join(args[:3])} failed (exit {code}); memory so far {self.limit.report()}; "
            f"the end of {log}:\n{text[-4000:]}"
        )
        return text

    def spawn(self, args: list[str], log: str) -> subprocess.Popen[bytes]:
        out = open(ARTIFACTS / log, "w")  # noqa: SIM115 - closed with the process
        process = subprocess.Popen(self.command(args), cwd=self.repo, stdout=out, stderr=subprocess.STDOUT)
        self.limit.track(process.pid)
        return process


def _closed_ancestor(path: Path) -> Path | None:
    """The outermost folder above ``path`` that other users may not enter, if any."""
    for folder in reversed(path.parents):
        if not folder.stat().st_mode & 0o001:
            return folder
    return None


def _copy_working_tree(target: Path) -> None:
    """What a Binder build sees: the repository's files (tracked, or new and not ignored)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)


@pytest.fixture(scope="module")
def session() -> Iterator[Session]:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0 and USER not in {entry.pw_name for entry in pwd.getpwall()}:
        subprocess.run(["useradd", "--create-home", "--shell", "/bin/bash", USER], check=True)
    base = Path(f"/tmp/nbserve-binder-{os.getpid()}")
    shutil.rmtree(base, ignore_errors=True)
    (base / "repo").mkdir(parents=True)
    _copy_working_tree(base / "repo")
    if os.geteuid() == 0:
        subprocess.run(["chown", "-R", f"{USER}:{USER}", str(base)], check=True)
    limit = MemoryLimit(f"nbserve-binder-{os.getpid()}")
    session = Session(base, limit)
    try:
        yield session
    finally:
        with contextlib.suppress(Exception):  # the session's own cluster, if a step left it up
            session.run(["nbserve", "cluster", "stop"], 120, log="cluster-stop.log")
        limit.close()
        shutil.rmtree(base, ignore_errors=True)


def test_binder_session_runs_every_tutorial_and_serves_through_the_jupyter_route(session: Session) -> None:
    started = time.monotonic()
    # repo2docker's build, as the notebook user: the environment, then postBuild.
    session.run([session.python, "-m", "venv", str(session.venv)], 120, start=False, log="venv.log")
    session.run(["pip", "install", "-r", "binder/requirements.txt"], 900, start=False, log="requirements.log")
    session.run(["bash", "binder/postBuild"], 900, start=False, log="postBuild.log")
    built = time.monotonic() - started
    session.limit.measure()
    torch_build = session.run(["python", "-c", "import torch; print(torch.__version__)"], 60, log="torch.log")
    assert "+cpu" in torch_build, f"Binder's environment took a torch that is not the CPU build: {torch_build}"

    # The session: every tutorial under nbval, in Binder's limits.
    notebooks = sorted(p.name for p in (session.repo / "notebooks").glob("*.ipynb"))
    assert len(notebooks) >= 4
    report = session.run(
        ["python", "-m", "pytest", "--nbval-lax", "--noconftest", "-p", "no:cacheprovider", "-q", "notebooks"],
        1500,
        log="notebooks.log",
    )
    assert " failed" not in report and " error" not in report
    ran = time.monotonic() - started - built

    # JupyterLab's server as Binder runs it, and an endpoint called through its route.
    port, token = free_port(), secrets.token_hex(16)
    server = session.spawn(
        ["jupyter", "lab", "--no-browser", f"--port={port}", f"--IdentityProvider.token={token}"],
        log="jupyter.log",
    )
    try:
        session.run(
            [
                "python",
                "-c",
                "import nbserve; nbserve.deploy('def shout(xs):\\n    return [x.upper() for x in xs]\\n', "
                "'shout', cpus=0.25)",
            ],
            300,
            log="deploy.log",
        )
        jupyter = f"http://127.0.0.1:{port}"
        auth = {"Authorization": f"token {token}"}
        listed = wait_for(
            lambda: _listed(f"{jupyter}/nbserve/api/endpoints", auth), 120, "the sidebar's API to list shout"
        )
        assert listed["jupyter_url"] == "/nbserve/endpoints/shout"
        answer = requests.post(f"{jupyter}{listed['jupyter_url']}", json={"input": "hi"}, headers=auth, timeout=60)
        assert answer.status_code == 200, answer.text
        assert answer.json()["output"] == "HI"
        refused = requests.post(f"{jupyter}{listed['jupyter_url']}", json={"input": "hi"}, timeout=60)
        assert refused.status_code in (401, 403), refused.text
    finally:
        server.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            server.wait(30)
        session.run(["nbserve", "cluster", "stop"], 120, log="cluster-stop.log")

    memory = session.limit.report()
    (ARTIFACTS / "session.txt").write_text(
        f"memory limit: {session.limit.kind}, {LIMIT / 1024**2:.0f} MB\n"
        f"peak resident memory of the session (no file cache): {memory['peak'] / 1024**2:.0f} MB\n"
        f"processes killed for memory: {memory['oom_kills']}\n"
        f"build (requirements.txt + postBuild): {built:.0f} s; notebooks ({', '.join(notebooks)}): {ran:.0f} s\n"
    )
    assert memory["oom_kills"] == 0, f"the session went past Binder's 2 GB: {memory}"


def _listed(url: str, headers: dict[str, str]) -> dict[str, str] | None:
    response = requests.get(url, headers=headers, timeout=10)
    if response.status_code != 200:
        return None
    return next((entry for entry in response.json()["endpoints"] if entry["name"] == "shout"), None)
