"""A load test's figures as text, HTML and an SVG histogram: pure functions of the result."""

from __future__ import annotations

import html
from collections.abc import Sequence

from nbserve._bench.loadgen import BenchProgress, BenchResult, histogram

__all__ = ["histogram_svg", "progress_html", "progress_text", "summary_html", "summary_rows", "summary_text"]


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} ms"


def summary_rows(result: BenchResult) -> list[tuple[str, str]]:
    plan = result.plan
    stop = f"{plan.duration_s:g} s" if plan.duration_s is not None else f"{plan.requests} requests"
    rows = [
        ("target", plan.url),
        ("load", f"{plan.concurrency} concurrent clients, {stop}, {len(plan.payloads)} distinct input(s)"),
        ("requests", f"{result.sent} sent, {result.ok} ok, {result.sent - result.ok} failed"),
        ("throughput", f"{result.requests_per_s:.1f} requests/s over {result.elapsed_s:.1f} s"),
    ]
    rows += [(f"latency {q}", _ms(v)) for q, v in result.percentiles().items()]
    if plan.stream:  # the whole answer above; when its first chunk came, here
        rows += [(f"first chunk {q}", _ms(v)) for q, v in result.first_chunk_percentiles().items()]
        rows.append(("chunks", f"{result.chunks} received, {result.chunks / (result.elapsed_s or 1):.1f}/s"))
    if result.latencies_ms:
        rows.append(("latency min / max", f"{min(result.latencies_ms):.1f} / {max(result.latencies_ms):.1f} ms"))
    # Failures are never folded away: each cause with its count.
    rows += [(f"errors: {cause}", str(count)) for cause, count in result.failures.most_common()]
    return rows


def summary_text(result: BenchResult) -> str:
    return "\n".join(f"{label:<20} {value}" for label, value in summary_rows(result))


def summary_html(result: BenchResult) -> str:
    cells = "".join(
        f"<tr><th style='text-align:left;padding-right:1.5em;font-weight:normal'>{html.escape(label)}</th>"
        f"<td style='text-align:left' data-bench='{html.escape(label)}'>{html.escape(value)}</td></tr>"
        for label, value in summary_rows(result)
    )
    return f"<table class='nbserve-bench'>{cells}</table>"


def histogram_svg(latencies_ms: Sequence[float], width: int = 420, height: int = 140, bins: int = 24) -> str:
    """Bars of the latency distribution, with the axis in milliseconds."""
    bars = histogram(latencies_ms, bins)
    if not bars:
        return "<div>no successful requests: no latency histogram</div>"
    top, bottom, left = 14, 16, 4
    peak = max(count for _, _, count in bars)
    bar_w = (width - 2 * left) / len(bars)
    parts = [f"<text x='{left}' y='10' font-size='11'>latency histogram ({len(latencies_ms)} requests)</text>"]
    for i, (_, _, count) in enumerate(bars):
        h = (height - top - bottom) * count / peak
        parts.append(
            f"<rect x='{left + i * bar_w:.1f}' y='{height - bottom - h:.1f}' width='{max(bar_w - 1, 1):.1f}' "
            f"height='{h:.1f}' fill='#1f6feb'><title>{count}</title></rect>"
        )
    parts.append(f"<text x='{left}' y='{height - 3}' font-size='9'>{bars[0][0]:.1f} ms</text>")
    parts.append(
        f"<text x='{width - left}' y='{height - 3}' font-size='9' text-anchor='end'>{bars[-1][1]:.1f} ms</text>"
    )
    return f"<svg width='{width}' height='{height}' xmlns='http://www.w3.org/2000/svg'>{''.join(parts)}</svg>"


def progress_text(progress: BenchProgress) -> str:
    return (
        f"{progress.fraction_done:4.0%} · {progress.sent} sent · {progress.failed} failed · "
        f"{progress.requests_per_s:.1f} req/s · p50 {_ms(progress.p50_ms)} · p99 {_ms(progress.p99_ms)}"
    )


def progress_html(progress: BenchProgress) -> str:
    return f"<code data-bench='progress'>{html.escape(progress_text(progress))}</code>"
