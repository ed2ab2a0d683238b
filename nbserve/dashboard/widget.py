"""The live dashboard of one endpoint: an ipywidgets view fed by a poller thread.

One ``Dashboard`` per endpoint and kernel (``live_dashboard``); showing it again displays
the same widget, so every view of it updates together. The poller reads figures through the
endpoint's backend once a second, sends only what changed over the comm, never prints (a
thread's output would land in whichever cell runs next), and stops by itself when the
endpoint is deleted, when the widget is closed, or when the kernel exits.
"""

from __future__ import annotations

import atexit
import threading
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from nbserve.backends.base import EndpointInfo
from nbserve.dashboard import render
from nbserve.errors import EndpointNotFoundError
from nbserve.metrics import DEFAULT_WINDOW_S, EndpointStats, SeriesPoint
from nbserve.progress import in_kernel

if TYPE_CHECKING:
    from nbserve.endpoint import Endpoint

__all__ = ["Dashboard", "live_dashboard", "stop_all"]

MAX_BACKOFF_S = 10.0
PLOT_SPAN_S = 180.0
PLOT_STEP_S = 5.0

_live: dict[str, Dashboard] = {}
_live_lock = threading.Lock()


class Dashboard:
    """Latency, throughput, batching and replicas of one endpoint, updated in place."""

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        interval_s: float | None = None,
        window_s: float = DEFAULT_WINDOW_S,
    ) -> None:
        self.endpoint = endpoint
        # The backend's pace by default: 1 s on Ray, slower where each poll is a paid API call.
        self.interval_s = interval_s if interval_s is not None else endpoint._backend.refresh_s
        self.window_s = window_s
        self.info: EndpointInfo = endpoint._info
        self.stats = EndpointStats(name=endpoint.name, window_s=window_s, state=self.info.status.state)
        self.series: list[SeriesPoint] = []
        self.note = ""
        self.updates = 0  # polls that changed what is shown
        self._header = widgets.HTML()
        self._figures = widgets.HTML()
        self._plot = widgets.HTML()
        self.widget = widgets.VBox(
            [self._header, self._figures, self._plot],
            layout=widgets.Layout(border="1px solid #d0d7de", padding="4px 10px", width="fit-content"),
        )
        self.widget.add_class("nbserve-dashboard")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.refresh()

    # -- polling ------------------------------------------------------------------------
    @property
    def live(self) -> bool:
        """Whether the poller runs (it stops once the endpoint is deleted)."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def finished(self) -> bool:
        """Stopped for good: the endpoint was deleted, or ``stop()`` was called."""
        return self._stop.is_set()

    @property
    def state(self) -> str:
        return self.stats.state

    def refresh(self) -> bool:
        """Read the figures once and show them; ``False`` once the endpoint is gone."""
        try:
            self.stats = self.endpoint.stats(self.window_s)
            self.series = self.endpoint.series(PLOT_SPAN_S, PLOT_STEP_S)
            self.note = ""
            alive = True
        except EndpointNotFoundError:
            self.stats = EndpointStats(**{**self.stats.to_dict(), "state": "deleted", "replicas_running": 0})
            self.note = "deleted: the endpoint no longer exists; updates stopped"
            alive = False
        except Exception as exc:  # noqa: BLE001 - shown in the widget; the poller retries
            self.note = f"figures unavailable ({type(exc).__name__}: {exc}); retrying"
            alive = True
        self._show()
        return alive

    def _show(self) -> None:
        values = (
            render.header_html(self.info, self.stats.state, self.note),
            render.figures_html(self.stats),
            render.plot_svg(self.series),
        )
        changed = False
        for view, value in zip((self._header, self._figures, self._plot), values, strict=True):
            if view.value != value:
                view.value = value  # only changes cross the comm
                changed = True
        self.updates += changed

    def _poll(self) -> None:
        delay = self.interval_s
        while not self._stop.wait(delay):
            if self.widget.comm is None or not self.refresh():  # closed, or the endpoint is gone
                break
            delay = min(delay * 2, MAX_BACKOFF_S) if self.note else self.interval_s
        self._stop.set()
        with _live_lock:
            if _live.get(self.endpoint.name) is self:
                del _live[self.endpoint.name]

    def start(self) -> Dashboard:
        if not self.live and not self.finished:
            self._thread = threading.Thread(
                target=self._poll, name=f"nbserve-dashboard-{self.endpoint.name}", daemon=True
            )
            self._thread.start()
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop updating (the last figures stay shown)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout_s)

    # -- display ------------------------------------------------------------------------
    def text(self) -> str:
        return render.text_summary(self.info, self.stats, self.note)

    def html(self) -> str:
        return (
            f"<div class='nbserve-dashboard'>{render.header_html(self.info, self.stats.state, self.note)}"
            f"{render.figures_html(self.stats)}</div>"
        )

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        # The widget where a widget manager renders it (JupyterLab, Notebook 7, VS Code);
        # text/html and text/plain everywhere else (nbval, GitHub, terminal IPython).
        bundle: dict[str, Any] = {"text/plain": self.text(), "text/html": self.html()}
        if in_kernel():
            bundle.update({k: v for k, v in self.widget._repr_mimebundle_().items() if k != "text/plain"})
        return bundle

    def __repr__(self) -> str:
        return self.text()


def live_dashboard(endpoint: Endpoint, *, start: bool | None = None) -> Dashboard:
    """This kernel's dashboard of ``endpoint``, created (and its poller started) on first use.

    The poller runs only in a Jupyter kernel unless ``start`` says otherwise.
    """
    with _live_lock:
        dashboard = _live.get(endpoint.name)
        if dashboard is not None and dashboard.endpoint._backend is not endpoint._backend:
            dashboard.stop(0)  # another cluster's endpoint of the same name
            dashboard = None
        if dashboard is None or dashboard.finished:
            dashboard = Dashboard(endpoint)
            _live[endpoint.name] = dashboard
        else:
            dashboard.endpoint = endpoint
            dashboard.info = endpoint._info  # a redeploy may have changed resources
    if start if start is not None else in_kernel():
        dashboard.start()
    return dashboard


@atexit.register
def stop_all() -> None:
    """Stop every poller of this process (at kernel exit, and for tests)."""
    with _live_lock:
        dashboards = list(_live.values())
        _live.clear()
    for dashboard in dashboards:
        dashboard.stop(1.0)
