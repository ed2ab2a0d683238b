"""The dashboard's HTML, SVG and text, from figures alone."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from nbserve._dashboard import render
from nbserve._types import EndpointInfo, EndpointStats, SeriesPoint
from tests.support.helpers import endpoint_info

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
    series = [SeriesPoint(float(t), 10.0, 5.0, 8.0, 9.0, 5.0) for t in range(5)]
    series[2] = SeriesPoint(2.0, 0.0, None, None, None, 5.0)  # a quiet step: a gap in the latency lines
    series += [SeriesPoint(5.0, 0.0, None, None, None, 5.0), SeriesPoint(6.0, 3.0, 7.0, 7.0, 7.0, 5.0)]
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


def test_the_time_axis_follows_a_young_endpoint_and_stops_at_three_minutes() -> None:
    assert render.plot_span(0) == 30  # the least: six steps
    assert render.plot_span(41) == 45  # its whole life, in whole 5 s steps
    assert render.plot_span(3600) == 180
    series = [SeriesPoint(float(t), 1.0, 5.0, 5.0, 5.0, 5.0) for t in range(9)]  # 45 s of 5 s steps
    axis = re.findall(r"data-axis='start'>([^<]*)<", render.plot_svg(series))
    assert axis == ["-45 s", "-45 s"]
    long = [SeriesPoint(float(t), 1.0, 5.0, 5.0, 5.0, 5.0) for t in range(36)]
    assert re.findall(r"data-axis='start'>([^<]*)<", render.plot_svg(long))[0] == "-3 min"


def test_replicas_are_plotted_per_step_with_gaps_where_nobody_watched() -> None:
    samples = [(1.0, 1, 1), (3.0, 1, 3), (9.0, 2, 3), (14.0, 3, 3), (24.0, 2, 2), (26.0, 1, 1)]
    # The series' steps: on the 5 s grid, the newest running up to now (26.5 s).
    steps = render.replica_steps(samples, [(0.0, 5.0), (5.0, 10.0), (10.0, 15.0), (15.0, 20.0), (20.0, 26.5)])
    assert steps == [(1, 3), (2, 3), (3, 3), None, (1, 1)]  # the last sample of each step
    series = [SeriesPoint(float(t), 1.0, 5.0, 5.0, 5.0, 5.0) for t in range(5)]
    charts = re.findall(r"<svg.*?</svg>", render.plot_svg(series, steps))
    assert len(charts) == 3
    replicas = ET.fromstring(charts[2])
    ns = "{http://www.w3.org/2000/svg}"
    # running and target: a line over the first three steps each, a dot for the last.
    assert len(replicas.findall(f"{ns}polyline")) == 2 and len(replicas.findall(f"{ns}circle")) == 2
    assert "max 3" in charts[2]


def test_text_summary_reads_well_without_html() -> None:
    text = render.text_summary(INFO, STATS)
    assert text.splitlines()[0] == "embed (ray) · running · http://127.0.0.1:8000/embed"
    assert "latency p50 / p95 / p99 (ms, last 60 s)  12.3 / 45.6 / 250" in text


def test_a_streaming_endpoint_shows_its_first_chunk_and_open_streams() -> None:
    plain = {key for key, _, _ in render.figures_rows(EndpointStats(name="e", window_s=60))}
    assert not plain & {"first_chunk", "streams"}  # only where something streamed
    stats = EndpointStats(
        name="e", window_s=60, window_streams=4, streams_in_flight=2, first_chunk_p50_ms=41.5, first_chunk_p95_ms=88.0,
        chunks_per_s=230.0,
    )  # fmt: skip
    rows = {key: value for key, _, value in render.figures_rows(stats)}
    assert rows["first_chunk"] == "41.5 / 88.0" and rows["streams"] == "2 open · 230 chunks/s"
    assert "first chunk p50 / p95" in render.text_summary(endpoint_info(), stats)
