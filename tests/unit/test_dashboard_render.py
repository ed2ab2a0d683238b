"""The dashboard's HTML, SVG and text, from figures alone."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from nbserve.backends.base import EndpointInfo
from nbserve.dashboard import render
from nbserve.metrics import EndpointStats, SeriesPoint
from tests.helpers import endpoint_info

INFO = endpoint_info()
STATS = EndpointStats(
    name="embed",
    window_s=60,
    state="running",
    replicas_running=2,
    replicas_target=4,
    replicas_starting=1,
    requests=1234,
    requests_per_s=20.5,
    items_per_s=130.25,
    error_rate=0.015,
    p50_ms=12.34,
    p95_ms=45.6,
    p99_ms=250.0,
    batch_mean=6.5,
    batch_max=32,
)


def shown(html_text: str) -> dict[str, str]:
    return dict(re.findall(r"data-stat='(\w+)'[^>]*>([^<]*)<", html_text))


def test_figures_show_every_number_with_its_unit() -> None:
    figures = shown(render.figures_html(STATS))
    assert figures == {
        "replicas": "2/4 (1 starting)",
        "latency": "12.3 / 45.6 / 250",
        "throughput": "20.5 req/s · 130 items/s",
        "error_rate": "1.5%",
        "batch": "mean 6.5 · max 32",
        "requests": "1234",
    }


def test_an_idle_endpoint_shows_dashes_not_zeros_for_latency() -> None:
    figures = shown(render.figures_html(EndpointStats(name="embed", window_s=60)))
    assert figures["latency"] == "- / - / -" and figures["batch"] == "-"


def test_header_has_badge_url_copy_button_and_resources() -> None:
    header = render.header_html(INFO, "updating", note="figures unavailable")
    assert shown(header) == {
        "state": "updating",
        "url": INFO.url,
        "resources": "0.25 GPU · 1 CPU · batch 32 / 5 ms · replicas 1:4",
        "note": "figures unavailable",
    }
    assert f"navigator.clipboard.writeText('{INFO.url}')" in header
    assert render.BADGE_COLORS["updating"] in header


def test_names_are_escaped() -> None:
    info = EndpointInfo(**{**INFO.__dict__, "name": "<b>x</b>", "url": "http://h/'><script>"})
    header = render.header_html(info, "running")
    assert "<script>" not in header and "<b>x</b>" not in header


def test_plot_is_valid_svg_with_lines_gaps_and_lone_points() -> None:
    series = [SeriesPoint(float(t), 10.0, 5.0, 8.0, 9.0) for t in range(5)]
    series[2] = SeriesPoint(2.0, 0.0, None, None, None)  # a quiet step: a gap in the latency lines
    series += [SeriesPoint(5.0, 0.0, None, None, None), SeriesPoint(6.0, 3.0, 7.0, 7.0, 7.0)]
    svg_html = render.plot_svg(series)
    charts = re.findall(r"<svg.*?</svg>", svg_html)
    assert len(charts) == 2
    latency = ET.fromstring(charts[0])
    ns = "{http://www.w3.org/2000/svg}"
    # p50, p95, p99 each: two runs of two points (lines) and the lone last point (a dot).
    assert len(latency.findall(f"{ns}polyline")) == 6
    assert len(latency.findall(f"{ns}circle")) == 3
    throughput = ET.fromstring(charts[1])
    assert len(throughput.findall(f"{ns}polyline")) == 1  # never None: one unbroken line


def test_text_summary_reads_well_without_html() -> None:
    text = render.text_summary(INFO, STATS)
    assert text.splitlines()[0] == "embed (ray) · running · http://127.0.0.1:8000/embed"
    assert "latency p50 / p95 / p99 (ms, last 60 s)  12.3 / 45.6 / 250" in text
