"""What the dashboard shows, as plain text, HTML and SVG: pure functions of the figures.

The live widget and the static fallbacks (nbval, GitHub, terminal IPython) render the same
way. Every figure's HTML element carries ``data-stat="..."``: browser and kernel tests read
what a user sees.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence

from nbserve._types import EndpointInfo, EndpointStats, SeriesPoint

__all__ = [
    "BADGE_COLORS",
    "figures_html",
    "figures_rows",
    "header_html",
    "plot_span",
    "plot_svg",
    "replica_steps",
    "text_summary",
]

PLOT_SPAN_S = 180.0  # the plot's time axis once the endpoint is that old
PLOT_MIN_SPAN_S = 30.0
PLOT_STEP_S = 5.0

BADGE_COLORS = {
    "deploying": "#1f6feb",
    "updating": "#1f6feb",
    "running": "#1a7f37",
    "unhealthy": "#bf8700",
    "failed": "#cf222e",
    "deleting": "#6e7781",
    "deleted": "#6e7781",
}


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.1f}" if value < 100 else f"{value:.0f}"


def _rate(value: float) -> str:
    return f"{value:.1f}" if value < 100 else f"{value:.0f}"


def figures_rows(stats: EndpointStats) -> list[tuple[str, str, str]]:
    """``(data-stat key, label, value)`` for each figure, in display order."""
    replicas = f"{stats.replicas_running}/{stats.replicas_target}"
    extra = [
        f"{n} {what}"
        for n, what in ((stats.replicas_starting, "starting"), (stats.replicas_recovering, "recovering"))
        if n
    ]
    if extra:
        replicas += f" ({', '.join(extra)})"
    window = f"{stats.window_s:g} s"
    batch = "-" if stats.batch_mean is None else f"mean {stats.batch_mean:.1f} · max {stats.batch_max}"
    rows = [
        ("replicas", "replicas running/target", replicas),
        (
            "latency",
            f"latency p50 / p95 / p99 (ms, last {window})",
            " / ".join(_ms(v) for v in (stats.p50_ms, stats.p95_ms, stats.p99_ms)),
        ),
        ("throughput", "throughput", f"{_rate(stats.requests_per_s)} req/s · {_rate(stats.items_per_s)} items/s"),
        ("error_rate", "errors", f"{stats.error_rate:.1%}"),
        ("batch", "batch size formed", batch),
        ("requests", "requests served (total)", f"{stats.requests}"),
    ]
    if stats.window_streams or stats.streams_in_flight:  # a streaming handler's own figures
        first = " / ".join(_ms(v) for v in (stats.first_chunk_p50_ms, stats.first_chunk_p95_ms))
        rows.insert(2, ("first_chunk", f"first chunk p50 / p95 (ms, last {window})", first))
        rows.insert(
            4,
            ("streams", "streams", f"{stats.streams_in_flight} open · {_rate(stats.chunks_per_s)} chunks/s"),
        )
    return rows


def header_html(info: EndpointInfo, state: str, note: str = "", jupyter_url: str | None = None) -> str:
    """The name, state, URLs and resources. ``jupyter_url``: the endpoint through the Jupyter
    server this kernel runs under, the URL a remote browser (Binder, JupyterHub) can reach."""
    color = BADGE_COLORS.get(state, "#6e7781")
    url = html.escape(info.url)
    # ipywidgets' HTML view assigns innerHTML: inline handlers run, <script> would not.
    copy = (
        f"<button title='copy the URL' style='margin-left:0.5em;cursor:pointer' "
        f"onclick=\"navigator.clipboard.writeText('{url}'); this.textContent='copied'\">copy</button>"
    )
    badge = (
        f"<span data-stat='state' style='background:{color};color:white;border-radius:1em;"
        f"padding:0 0.6em;margin-left:0.5em;font-size:90%'>{html.escape(state)}</span>"
    )
    if info.public:  # answers HTTP without the token: say so where the URL is
        badge += (
            "<span data-stat='public' title='answers HTTP without the token' style='border:1px solid #bf8700;"
            "color:#bf8700;border-radius:1em;padding:0 0.6em;margin-left:0.4em;font-size:90%'>public</span>"
        )
    note_html = f"<div style='color:#6e7781' data-stat='note'>{html.escape(note)}</div>" if note else ""
    if jupyter_url:
        note_html = (
            f"<div style='color:#57606a'>through Jupyter (its login): "
            f"<code data-stat='jupyter_url'>{html.escape(jupyter_url)}</code></div>{note_html}"
        )
    return (
        f"<div class='nbserve-header' data-endpoint='{html.escape(info.name)}'>"
        f"<b style='font-size:110%'>{html.escape(info.name)}</b> "
        f"<span style='color:#6e7781'>· {html.escape(info.backend)}</span>"
        f"{badge}<br><code data-stat='url'>{url}</code>{copy}"
        f"<div style='color:#57606a' data-stat='resources'>{html.escape(info.resources)}</div>{note_html}</div>"
    )


def figures_html(stats: EndpointStats) -> str:
    cells = "".join(
        f"<tr><th style='text-align:left;padding-right:1.5em;font-weight:normal;color:#57606a'>"
        f"{html.escape(label)}</th>"
        f"<td style='text-align:left' data-stat='{key}'>{html.escape(value)}</td></tr>"
        for key, label, value in figures_rows(stats)
    )
    return f"<table class='nbserve-figures'>{cells}</table>"


def _polyline(points: Sequence[tuple[float, float]], color: str, width: float = 1.5) -> str:
    coords = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
    return f"<polyline fill='none' stroke='{color}' stroke-width='{width}' points='{coords}'/>"


def plot_span(age_s: float) -> float:
    """The plot's time axis for an endpoint ``age_s`` old: its whole life, in whole steps,
    from 30 s up to 3 minutes, so a young endpoint's figures fill the plot instead of
    sitting at its right edge."""
    steps = -(-max(age_s, PLOT_MIN_SPAN_S) // PLOT_STEP_S)  # rounded up
    return min(PLOT_SPAN_S, steps * PLOT_STEP_S)


def replica_steps(
    samples: Sequence[tuple[float, int, int]], steps: Sequence[tuple[float, float]]
) -> list[tuple[int, int] | None]:
    """(running, target) replicas in each step ``(start, end]`` of ``steps``: the last sample
    taken in it, ``None`` where none was (the dashboard was not watching then).

    ``samples`` are (time, running, target), oldest first, as the dashboard polled them; the
    steps are the series' own (the newest runs up to now and has a length of its own)."""
    found: list[tuple[int, int] | None] = []
    for start, end in steps:
        inside = [(running, target) for at, running, target in samples if start < at <= end]
        found.append(inside[-1] if inside else None)
    return found


def _ago(seconds: float) -> str:
    return f"-{seconds:.0f} s" if seconds < 120 else f"-{seconds / 60:.0f} min"


def _chart(
    title: str,
    lines: Sequence[tuple[str, str, Sequence[float | None]]],
    width: int,
    height: int,
    span_s: float,
    peak_text: Callable[[float], str] = _ms,
) -> str:
    """One small line chart over the last ``span_s`` seconds; ``lines`` are (label, color,
    values) with ``None`` for gaps."""
    top, bottom, left = 16, 14, 4
    values = [v for _, _, series in lines for v in series if v is not None]
    peak = max(values, default=0.0) or 1.0
    count = max((len(series) for _, _, series in lines), default=0)
    plot_h = height - top - bottom

    def xy(index: int, value: float) -> tuple[float, float]:
        x = left + (width - 2 * left) * (index / max(count - 1, 1))
        return x, top + plot_h * (1 - value / peak)

    parts = [
        f"<text x='{left}' y='11' font-size='11' fill='#24292f'>{html.escape(title)} · max {peak_text(peak)}</text>",
        f"<line x1='{left}' y1='{top + plot_h}' x2='{width - left}' y2='{top + plot_h}' stroke='#d0d7de'/>",
        f"<text x='{left}' y='{height - 2}' font-size='9' fill='#6e7781' data-axis='start'>{_ago(span_s)}</text>"
        if count
        else "",
        f"<text x='{width - left}' y='{height - 2}' font-size='9' fill='#6e7781' text-anchor='end'>now</text>",
    ]
    legend_x = width - left
    for label, color, series in reversed(lines):
        parts.append(
            f"<text x='{legend_x}' y='11' font-size='10' fill='{color}' text-anchor='end'>{html.escape(label)}</text>"
        )
        legend_x -= 8 * len(label) + 6
        runs: list[list[tuple[float, float]]] = [[]]
        for index, value in enumerate(series):
            if value is None:
                runs.append([])
            else:
                runs[-1].append(xy(index, value))
        for run in runs:
            if len(run) > 1:
                parts.append(_polyline(run, color))
            elif run:  # a lone step between gaps: a dot, or it would not show at all
                parts.append(f"<circle cx='{run[0][0]:.1f}' cy='{run[0][1]:.1f}' r='2' fill='{color}'/>")
    return f"<svg width='{width}' height='{height}' xmlns='http://www.w3.org/2000/svg'>{''.join(parts)}</svg>"


def plot_svg(
    series: Sequence[SeriesPoint],
    replicas: Sequence[tuple[int, int] | None] = (),
    width: int = 240,
    height: int = 100,
) -> str:
    """Latency percentiles, throughput and (where given) replicas running and wanted over the
    series, as small inline SVG charts that wrap in a narrow notebook."""
    span_s = len(series) * PLOT_STEP_S
    charts = [
        _chart(
            "latency ms",
            [
                ("p50", "#1f6feb", [p.p50_ms for p in series]),
                ("p95", "#bf8700", [p.p95_ms for p in series]),
                ("p99", "#cf222e", [p.p99_ms for p in series]),
            ],
            width,
            height,
            span_s,
        ),
        _chart("req/s", [("req/s", "#1a7f37", [p.requests_per_s for p in series])], width, height, span_s, _rate),
    ]
    if replicas:
        charts.append(
            _chart(
                "replicas",
                [
                    ("target", "#6e7781", [None if r is None else float(r[1]) for r in replicas]),
                    ("running", "#8250df", [None if r is None else float(r[0]) for r in replicas]),
                ],
                width,
                height,
                span_s,
                lambda peak: f"{peak:.0f}",
            )
        )
    return f"<div class='nbserve-plot' style='display:flex;flex-wrap:wrap;gap:0.5em 1em'>{''.join(charts)}</div>"


def text_summary(info: EndpointInfo, stats: EndpointStats, note: str = "") -> str:
    """The dashboard as plain text: for terminals, nbval and ``%serve status``."""
    lines = [f"{info.name} ({info.backend}) · {stats.state} · {info.url}", f"  {info.resources}"]
    lines += [f"  {label:<40} {value}" for _, label, value in figures_rows(stats)]
    if note:
        lines.append(f"  {note}")
    return "\n".join(lines)
