"""The live dashboard over the in-process backend: it polls, shows what happened, and stops."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator

import pytest

import nbserve
from nbserve._dashboard import widget
from nbserve._dashboard.widget import Dashboard, live_dashboard
from nbserve._errors import EndpointNotFoundError
from tests.support.helpers import wait_for

CELL = "def dash(items):\n    return items\n"


@pytest.fixture
def endpoint() -> Iterator[nbserve.Endpoint]:
    yield nbserve.deploy(CELL, "dash", backend="local")
    widget.stop_all()
    with contextlib.suppress(EndpointNotFoundError):
        nbserve.endpoint("dash", backend="local").down()


def test_a_static_rendering_shows_the_figures_of_that_moment(
    endpoint: nbserve.Endpoint, capsys: pytest.CaptureFixture[str]
) -> None:
    """Shown again after calls (``dashboard()``), the text is not the deploy's (0 requests)."""
    live_dashboard(endpoint, start=False)  # what the %%serve cell showed when it deployed
    for x in range(4):
        endpoint(x)
    endpoint.dashboard()
    shown = capsys.readouterr().out
    assert re.search(r"requests served \(total\)\s+4\b", shown), shown
    assert re.search(r"latency p50 / p95 / p99 \(ms, last 60 s\)\s+\d", shown), shown


def test_the_poller_follows_the_traffic_and_stops_when_the_endpoint_goes(endpoint: nbserve.Endpoint) -> None:
    dashboard = Dashboard(endpoint, interval_s=0.05).start()
    assert dashboard.live and dashboard.state == "running"
    for x in range(3):
        endpoint(x)
    wait_for(lambda: dashboard.stats.requests == 3, 5, "the poller to count the calls")
    assert "data-stat='requests'>3<" in dashboard._figures.value
    updates = dashboard.updates
    endpoint.down()
    wait_for(lambda: not dashboard.live, 5, "the poller to stop")
    assert dashboard.finished and dashboard.state == "deleted"
    assert "deleted" in dashboard.note and dashboard.updates > updates
    assert "0/" in dashboard.text()


def test_one_dashboard_per_endpoint_and_a_fresh_one_after_it_finished(endpoint: nbserve.Endpoint) -> None:
    first = live_dashboard(endpoint, start=False)
    assert live_dashboard(endpoint, start=False) is first
    first.stop()
    assert live_dashboard(endpoint, start=False) is not first
