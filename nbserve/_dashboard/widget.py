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
import time
from typing import Any

import ipywidgets as widgets

from nbserve._dashboard import render
from nbserve._errors import EndpointNotFoundError
from nbserve._jupyter import jupyter_endpoint_url
from nbserve._metrics import DEFAULT_WINDOW_S
from nbserve._progress import in_kernel
from nbserve._types import EndpointInfo, EndpointStats, SeriesPoint, Watchable

__all__ = ["Dashboard", "live_dashboard", "stop_all"]

MAX_BACKOFF_S = 10.0

_live: dict[tuple[str, str, str], Dashboard] = {}
_live_lock = threading.Lock()


class Dashboard:
    """Latency, throughput, batching and replicas of one endpoint, updated in place."""

    def __init__(
        self,
        endpoint: Watchable,
        *,
        interval_s: float | None = None,
        window_s: float = DEFAULT_WINDOW_S,
    ) -> None:
        self.endpoint = endpoint
        # The backend's pace by default: 1 s on Ray, slower where each poll is a paid API call.
        self.interval_s = interval_s if interval_s is not None else endpoint.refresh_s
        self.window_s = window_s
        self.info: EndpointInfo = endpoint.info(fresh=False)
        self.stats = EndpointStats(name=endpoint.name, window_s=window_s, state=self.info.status.state)
        self.series: list[SeriesPoint] = []
        # (time, running, target) at each poll, for the replicas plot; the collector keeps no
        # replica history, so the plot shows what this dashboard saw.
        self.replica_samples: list[tuple[float, int, int]] = []
        self.note = ""
        self.jupyter_url = jupyter_endpoint_url(endpoint.name)  # where this kernel's Jupyter server routes it
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
            now = time.time()
            self.series = self.endpoint.series(render.plot_span(now - self.info.deployed_at), render.PLOT_STEP_S)
            self.replica_samples = [
                *(s for s in self.replica_samples if s[0] > now - render.PLOT_SPAN_S),
                (now, self.stats.replicas_running, self.stats.replicas_target),
            ]
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
            self._header_html(),
            render.figures_html(self.stats),
            render.plot_svg(
                self.series, render.replica_steps(self.replica_samples, [(p.t - p.step_s, p.t) for p in self.series])
            ),
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
            if _live.get(self.endpoint.key) is self:
                del _live[self.endpoint.key]

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

    def _header_html(self) -> str:
        return render.header_html(self.info, self.stats.state, self.note, self.jupyter_url)

    def html(self) -> str:
        return f"<div class='nbserve-dashboard'>{self._header_html()}{render.figures_html(self.stats)}</div>"

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        # The widget where a widget manager renders it (JupyterLab, Notebook 7, VS Code);
        # text/html and text/plain everywhere else (nbval, GitHub, terminal IPython). Those
        # stay as they are once written, so they show the figures of this moment, not the
        # last poll's (which may be older than the requests just made).
        self._fresh()
        bundle: dict[str, Any] = {"text/plain": self.text(), "text/html": self.html()}
        if in_kernel():
            bundle.update({k: v for k, v in self.widget._repr_mimebundle_().items() if k != "text/plain"})
        return bundle

    def __repr__(self) -> str:
        self._fresh()
        return self.text()

    def _fresh(self) -> None:
        if not self.finished:
            self.refresh()


def live_dashboard(endpoint: Watchable, *, start: bool | None = None) -> Dashboard:
    """This kernel's dashboard of ``endpoint``, created (and its poller started) on first use.

    The poller runs only in a Jupyter kernel unless ``start`` says otherwise.
    """
    with _live_lock:
        dashboard = _live.get(endpoint.key)
        if dashboard is None or dashboard.finished:
            dashboard = Dashboard(endpoint)
            _live[endpoint.key] = dashboard
        else:
            dashboard.endpoint = endpoint
            dashboard.info = endpoint.info(fresh=False)  # a redeploy may have changed resources
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
