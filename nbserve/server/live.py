"""The server side of the monitor process (see ``monitor``): started on first use, restarted
when it dies or stops answering, one request at a time. A failure the monitor reports is
raised here again as the ``NbserveError`` it was.

``InProcess`` answers the same requests without a child process, for a backend that lives in
the calling process (the in-process backend, in tests).
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import subprocess
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from nbserve._config import private_folder
from nbserve._errors import MonitorError, from_wire
from nbserve.backends.base import Backend
from nbserve.server.monitor import handle

__all__ = ["InProcess", "Monitor", "checked"]


def checked(answer: dict[str, Any]) -> dict[str, Any]:
    """The monitor's answer, or the ``NbserveError`` it reports raised again."""
    if not answer.get("ok"):
        raise from_wire(str(answer.get("error")), str(answer.get("message")))
    return answer


class InProcess:
    """The monitor's answers for ``backend``, computed in this process."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    def request(self, payload: dict[str, Any]) -> dict[str, Any]:
        return checked(handle(payload, self.backend))


class _Died(MonitorError):
    """The monitor process ended (a fresh one is started on the next request)."""


class Monitor:
    def __init__(self, log_path: Path, timeout_s: float = 60.0, env: Mapping[str, str] | None = None) -> None:
        self.log_path = log_path
        self.env = dict(env) if env is not None else None  # None: the server's environment
        self.timeout_s = timeout_s
        self._process: subprocess.Popen[str] | None = None
        self._log: IO[bytes] | None = None
        self._lock = threading.Lock()  # requests and answers pair up on one pipe

    def _start(self) -> subprocess.Popen[str]:
        if self._process is not None and self._process.poll() is None:
            return self._process
        private_folder(self.log_path.parent)
        if self._log is None:
            # Ray's messages can name endpoints and addresses: its owner's to read only.
            self._log = os.fdopen(os.open(self.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600), "ab")
        self._process = subprocess.Popen(
            [sys.executable, "-m", "nbserve.server.monitor"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            env=self.env,
        )
        return self._process

    def request(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Send one request and wait for its answer (blocking: call it off the event loop).

        Raises the monitor's failure as the ``NbserveError`` it reported, and ``MonitorError``
        when the monitor did not answer.
        """
        with self._lock:
            try:
                answer = self._exchange(payload)
            except _Died:
                answer = self._exchange(payload)  # it may just have exited for idleness: once more
        return checked(answer)

    def _exchange(self, payload: dict[str, Any]) -> dict[str, Any]:
        process = self._start()
        assert process.stdin is not None and process.stdout is not None
        try:
            process.stdin.write(json.dumps(payload) + "\n")
            process.stdin.flush()
        except OSError as exc:
            self._stop()
            raise _Died(f"the nbserve monitor died: {exc} (its log: {self.log_path})") from None
        ready, _, _ = select.select([process.stdout], [], [], self.timeout_s)
        if not ready:
            self._stop()
            raise MonitorError(f"the nbserve monitor did not answer within {self.timeout_s:.0f} s")
        line = process.stdout.readline()
        if not line:
            self._stop()
            raise _Died(f"the nbserve monitor died (its log: {self.log_path})")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def _stop(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None

    def close(self) -> None:
        with self._lock:
            if self._process is not None and self._process.stdin is not None:
                self._process.stdin.close()  # the monitor ends at end of input
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self._process.wait(timeout=10)
            self._stop()
            if self._log is not None:
                self._log.close()
                self._log = None
