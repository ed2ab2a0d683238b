"""The server side of the monitor process (see ``monitor``): started on first use, restarted
when it dies or stops answering, one request at a time."""

from __future__ import annotations

import contextlib
import json
import select
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

__all__ = ["Monitor", "MonitorError"]


class MonitorError(RuntimeError):
    """The monitor did not answer (it died, or took longer than the timeout)."""


class Monitor:
    def __init__(self, log_path: Path, timeout_s: float = 60.0) -> None:
        self.log_path = log_path
        self.timeout_s = timeout_s
        self._process: subprocess.Popen[str] | None = None
        self._log: IO[bytes] | None = None
        self._lock = threading.Lock()  # requests and answers pair up on one pipe

    def _start(self) -> subprocess.Popen[str]:
        if self._process is not None and self._process.poll() is None:
            return self._process
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        if self._log is None:
            self._log = self.log_path.open("ab")
        self._process = subprocess.Popen(
            [sys.executable, "-m", "nbserve.server.monitor"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
        )
        return self._process

    def request(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Send one request and wait for its answer (blocking: call it off the event loop)."""
        with self._lock:
            process = self._start()
            assert process.stdin is not None and process.stdout is not None
            try:
                process.stdin.write(json.dumps(payload) + "\n")
                process.stdin.flush()
            except OSError as exc:
                self._stop()
                raise MonitorError(f"the nbserve monitor died: {exc}") from None
            deadline = time.monotonic() + self.timeout_s
            ready, _, _ = select.select([process.stdout], [], [], max(deadline - time.monotonic(), 0))
            line = process.stdout.readline() if ready else ""
            if not line:
                self._stop()
                what = "died" if ready else f"did not answer within {self.timeout_s:.0f} s"
                raise MonitorError(f"the nbserve monitor {what} (its log: {self.log_path})")
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
