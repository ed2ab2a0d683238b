"""Deployment progress in the cell that deploys: one line, updated in place."""

from __future__ import annotations

import sys
import time
from typing import Any

from nbserve._types import DeployEvent

__all__ = ["DeployProgress", "in_kernel"]

MIN_UPDATE_INTERVAL_S = 0.25


def in_kernel() -> bool:
    """Whether this runs in a Jupyter kernel (where widgets and display updates render)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and hasattr(shell, "kernel")


class DeployProgress:
    """A callable for ``Backend.deploy``'s events.

    In a Jupyter kernel it keeps one output line and updates it (``display_id``); elsewhere
    (terminal IPython, scripts) it prints a line whenever the phase or replica count changes.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._kernel = in_kernel()
        self._handle: Any = None
        self._last_key: tuple[str, int, int] | None = None
        self._last_update = 0.0

    def __call__(self, event: DeployEvent) -> None:
        text = f"{self.name}: {event}"
        key = (event.phase, event.running, event.target)
        if self._kernel:
            now = time.monotonic()
            if key == self._last_key and now - self._last_update < MIN_UPDATE_INTERVAL_S:
                return
            self._last_update = now
            self._show(text)
        elif key != self._last_key:
            print(text, file=sys.stderr, flush=True)
        self._last_key = key

    def _show(self, text: str) -> None:
        from IPython.display import display

        bundle = {"text/plain": text}
        if self._handle is None:
            self._handle = display(bundle, raw=True, display_id=True)
        else:
            self._handle.update(bundle, raw=True)

    def finish(self, text: str) -> None:
        if self._kernel:
            self._show(f"{self.name}: {text}")
        else:
            print(f"{self.name}: {text}", file=sys.stderr, flush=True)
